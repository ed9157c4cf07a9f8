"""The only module that speaks IMAP: connect, discover folders, fetch header batches, append."""

from __future__ import annotations

import logging
import re
import socket
import ssl
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

import imapclient
from imapclient import exceptions as imap_errors
from imapclient.response_parser import parse_fetch_response

from agent import net
from agent.config import ImapConfig, is_loopback
from agent.errors import ConfigError, MailboxError, TransientMailboxError
from agent.headers.meta import HEADER_FIELDS

log = logging.getLogger(__name__)

# Folder roles, discovered from SPECIAL-USE flags (RFC 6154) first, then from names.
ROLES = ("sent", "drafts", "junk", "trash", "all", "archive")
SPECIAL_USE = {
    "\\sent": "sent", "\\drafts": "drafts", "\\junk": "junk", "\\trash": "trash",
    "\\all": "all", "\\archive": "archive",
}
# Names seen in the wild (compared case-insensitively on the last path component).
KNOWN_NAMES: dict[str, tuple[str, ...]] = {
    "sent": ("sent", "sent items", "sent messages", "sent mail", "sent-mail", "gesendet",
             "gesendete elemente", "gesendete objekte", "gesendete nachrichten",
             "gesendete e-mails", "envoyés", "éléments envoyés", "enviados", "inviata",
             "posta inviata", "verzonden items"),
    "drafts": ("drafts", "draft", "entwürfe", "entwurf", "brouillons", "borradores", "bozze",
               "concepten"),
    "junk": ("junk", "spam", "junk e-mail", "junk email", "junk-e-mail", "bulk mail",
             "unerwünscht", "spamverdacht", "courrier indésirable", "ongewenste e-mail"),
    "trash": ("trash", "deleted items", "deleted messages", "bin", "papierkorb",
              "gelöschte elemente", "gelöschte objekte", "gelöscht", "corbeille",
              "papelera", "cestino", "verwijderde items"),
    "all": ("all mail", "alle nachrichten"),
    "archive": ("archive", "archiv", "archives", "archivo"),
}
GMAIL_ROOTS = ("[gmail]", "[google mail]")

# What the user reads when the server refuses one of our calls: its IMAP command.
_COMMANDS = {
    "_raw_fetch": "FETCH", "fetch": "FETCH", "folder_status": "STATUS", "select_folder": "SELECT",
    "search": "SEARCH", "append": "APPEND", "list_folders": "LIST", "capabilities": "CAPABILITY",
    "delete_messages": "STORE +FLAGS (\\Deleted)", "expunge": "EXPUNGE",
}
_APPENDUID = re.compile(rb"\[APPENDUID (\d+) (\d+)\]", re.IGNORECASE)
FETCH_BODY = "BODY.PEEK[HEADER.FIELDS (" + " ".join(f.upper() for f in HEADER_FIELDS) + ")]"


@dataclass(frozen=True, slots=True)
class Folder:
    name: str
    delimiter: str
    flags: frozenset[str]  # lower-case, e.g. "\\sent", "\\noselect"

    @property
    def selectable(self) -> bool:
        return not self.flags & {"\\noselect", "\\nonexistent"}

    @property
    def leaf(self) -> str:
        return self.name.rsplit(self.delimiter, 1)[-1] if self.delimiter else self.name


@dataclass(frozen=True)
class FolderRoles:
    """Which folder plays which part; ``how`` says whether a flag or a name told us."""

    sent: str | None = None
    drafts: str | None = None
    junk: str | None = None
    trash: str | None = None
    all: str | None = None
    archive: tuple[str, ...] = ()
    how: dict[str, str] = field(default_factory=dict, compare=False)


@dataclass(frozen=True, slots=True)
class FolderStatus:
    uidvalidity: int
    uidnext: int
    messages: int
    highestmodseq: int | None = None


@dataclass(frozen=True, slots=True)
class FetchedHeader:
    uid: int
    internaldate: datetime | None
    header: bytes
    flags: frozenset[str]  # lower-case
    gm_msgid: int | None = None


def describe_connect_error(exc: BaseException, host: str, port: int, section: str,
                           timeout: float) -> str:
    """One plain sentence for what went wrong while reaching an IMAP server."""
    known = net.describe_connect_error(exc, host, port, section, timeout)
    if known is not None:
        return known
    if isinstance(exc, OSError):
        return f"cannot connect to {host}:{port}: {exc.strerror or exc}"
    return f"cannot talk to {host}:{port}: {exc}"


def _no_delay(client: imapclient.IMAPClient) -> None:
    # imaplib sends a literal and its closing CRLF separately; with Nagle's algorithm on,
    # every APPEND then waits ~40 ms for a delayed ACK.
    try:
        client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        log.debug("TCP_NODELAY not available on this connection")


def _connect_error(exc: BaseException, host: str, port: int, timeout: float,
                   password: str) -> MailboxError:
    text = net.scrub(describe_connect_error(exc, host, port, "imap", timeout), password)
    if isinstance(exc, ssl.SSLCertVerificationError):
        # The same certificate will fail the same way in a minute: no retries.
        return MailboxError(text)
    return TransientMailboxError(text)


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


class Mailbox:
    """A logged-in IMAP connection; every imapclient error becomes a MailboxError."""

    def __init__(self, client: imapclient.IMAPClient, host: str) -> None:
        self._client = client
        self.host = host
        self._capabilities: frozenset[str] | None = None
        self._selected: str | None = None
        self._folders: list[Folder] | None = None
        # False once the server refused X-GM-MSGID although it advertises X-GM-EXT-1.
        self._gm_msgid = True
        self.timeout: float | None = None  # the socket timeout, for "did not answer" errors

    # ------------------------------------------------------------------ connect

    @classmethod
    def connect(cls, settings: ImapConfig, password: str) -> Mailbox:
        return cls.open(
            settings.host, settings.port, settings.security, settings.username, password,
            ca_file=settings.ca_file, timeout=settings.timeout,
        )

    @classmethod
    def open(cls, host: str, port: int, security: str, username: str, password: str, *,
             ca_file: Path | None = None, timeout: float = 60.0) -> Mailbox:
        if security == "none" and not is_loopback(host):
            raise ConfigError([f"[imap] security = \"none\" is refused for {host}: the password "
                               "would travel in plaintext; use ssl or starttls"])
        context = net.tls_context(ca_file, "imap") if security != "none" else None
        try:
            client = imapclient.IMAPClient(
                host, port=port, ssl=security == "ssl", ssl_context=context, timeout=timeout,
                use_uid=True,
            )
        except (OSError, imap_errors.IMAPClientError) as exc:
            raise _connect_error(exc, host, port, timeout, password) from None
        client.normalise_times = False
        _no_delay(client)
        mailbox = cls(client, host)
        mailbox.timeout = timeout
        try:
            if security == "starttls":
                if not client.has_capability("STARTTLS"):
                    raise MailboxError(
                        f"{host}:{port} does not offer STARTTLS, so the connection would not be "
                        "encrypted; use security = \"ssl\" (usually port 993)"
                    )
                client.starttls(context)
                _no_delay(client)
                mailbox._capabilities = None
            mailbox._login(username, password, port)
        except MailboxError:
            mailbox.close()
            raise
        except (OSError, imap_errors.IMAPClientError) as exc:
            mailbox.close()
            raise _connect_error(exc, host, port, timeout, password) from None
        return mailbox

    def _login(self, username: str, password: str, port: int) -> None:
        try:
            self._client.login(username, password)
        except imap_errors.LoginError as exc:
            if isinstance(exc.__context__, imap_errors.IMAPClientAbortError | OSError):
                # imapclient turns every failure of LOGIN into LoginError, a connection that
                # broke half-way too: that is worth a retry, and no reason to doubt the password.
                raise TransientMailboxError(
                    f"connection to {self.host} broke during login") from None
            said = net.scrub(_text(exc.args[0] if exc.args else exc), password)
            said = said.removeprefix("b'").removesuffix("'")
            raise MailboxError(
                f"login as {username} on {self.host} failed (server said: {said}); check "
                "[imap] username and the password (Gmail and iCloud need an app password)"
            ) from None
        except imap_errors.IMAPClientError as exc:
            said = net.scrub(str(exc), password)
            raise MailboxError(f"login as {username} on {self.host} failed: {said}") from None

    def close(self) -> None:
        try:
            self._client.logout()
        except (OSError, imap_errors.IMAPClientError):
            try:
                self._client.shutdown()
            except (OSError, imap_errors.IMAPClientError):
                log.debug("connection to %s already gone", self.host)

    def __enter__(self) -> Mailbox:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    # ------------------------------------------------------------------ capabilities

    @property
    def capabilities(self) -> frozenset[str]:
        if self._capabilities is None:
            raw = self._call(self._client.capabilities)
            self._capabilities = frozenset(_text(c).upper() for c in raw)
        return self._capabilities

    @property
    def is_gmail(self) -> bool:
        return "X-GM-EXT-1" in self.capabilities

    def _call(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        """Run one imapclient call, turning its failures into our errors."""
        try:
            return function(*args, **kwargs)
        except imap_errors.IMAPClientAbortError as exc:
            raise TransientMailboxError(f"connection to {self.host} broke: {exc}") from None
        except TimeoutError:
            # A stalled server: say so, rather than the bare exception name.
            within = f" within {self.timeout:g} s" if self.timeout else ""
            raise TransientMailboxError(
                f"{self.host} stopped answering (no reply{within}); check the network, or "
                "raise [imap] timeout for a slow server") from None
        except OSError as exc:
            raise TransientMailboxError(
                f"connection to {self.host} broke: {exc.strerror or type(exc).__name__}"
            ) from None
        except imap_errors.IMAPClientError as exc:
            name = getattr(function, "__name__", "")
            command = _COMMANDS.get(name, name.lstrip("_").upper() or "a command")
            raise MailboxError(f"{self.host} refused {command}: {_text(exc)}") from None

    # ------------------------------------------------------------------ folders

    def list_folders(self) -> list[Folder]:
        if self._folders is None:
            folders = []
            for flags, delimiter, name in self._call(self._client.list_folders):
                folders.append(Folder(
                    name=_text(name),
                    delimiter=_text(delimiter) if delimiter else "",
                    flags=frozenset(_text(f).lower() for f in flags),
                ))
            self._folders = folders
        return self._folders

    def roles(self) -> FolderRoles:
        return discover_roles(self.list_folders())

    def folders_to_scan(self, include: Sequence[str] | None = None,
                        exclude: Sequence[str] = ()) -> list[str]:
        return choose_scan_folders(self.list_folders(), self.roles(), self.is_gmail,
                                   include, exclude)

    def status(self, folder: str) -> FolderStatus:
        items = [b"UIDNEXT", b"UIDVALIDITY", b"MESSAGES"]
        if "CONDSTORE" in self.capabilities:
            items.append(b"HIGHESTMODSEQ")
        data = self._call(self._client.folder_status, folder, items)
        return FolderStatus(
            uidvalidity=int(data[b"UIDVALIDITY"]),
            uidnext=int(data.get(b"UIDNEXT", 0)),
            messages=int(data.get(b"MESSAGES", 0)),
            highestmodseq=int(data[b"HIGHESTMODSEQ"]) if b"HIGHESTMODSEQ" in data else None,
        )

    def select(self, folder: str, readonly: bool = True) -> FolderStatus:
        data = self._call(self._client.select_folder, folder, readonly=readonly)
        self._selected = folder
        return FolderStatus(
            uidvalidity=int(data.get(b"UIDVALIDITY", 0)),
            uidnext=int(data.get(b"UIDNEXT", 0)),
            messages=int(data.get(b"EXISTS", 0)),
            highestmodseq=int(data[b"HIGHESTMODSEQ"]) if b"HIGHESTMODSEQ" in data else None,
        )

    # ------------------------------------------------------------------ reading

    def uids_after(self, last_uid: int) -> list[int]:
        """UIDs above ``last_uid`` in the selected folder, ascending.

        ``UID SEARCH UID n:*`` always matches the highest UID even when it is below n
        (RFC 3501 6.4.8), hence the filter.
        """
        found = self._call(self._client.search, ["UID", f"{last_uid + 1}:*"])
        return sorted(uid for uid in found if uid > last_uid)

    def fetch_headers(self, uids: Sequence[int]) -> list[FetchedHeader]:
        """Headers (only the fields we need), INTERNALDATE and FLAGS for ``uids``.

        The response is read by a fast parser for the one shape we ask for; anything it does
        not recognise (NIL or quoted headers, extra literals, odd servers) goes through
        imapclient's general parser instead, so the fast path can only make it quicker.
        """
        if not uids:
            return []
        items = ["INTERNALDATE", "FLAGS", FETCH_BODY]
        if self.is_gmail and self._gm_msgid:
            try:
                raw = self._call(self._raw_fetch, uids, [*items, "X-GM-MSGID"])
            except TransientMailboxError:
                raise
            except MailboxError as exc:
                # Proxies and look-alikes advertise X-GM-EXT-1 but answer BAD to its fetch
                # items: ask again without it, once, and not again on this connection.
                log.warning("%s advertises X-GM-EXT-1 but refused X-GM-MSGID (%s); "
                            "fetching without it", self.host, exc)
                self._gm_msgid = False
                raw = self._call(self._raw_fetch, uids, items)
        else:
            raw = self._call(self._raw_fetch, uids, items)
        parsed = parse_fetch_fast(raw)
        if parsed is None:
            log.debug("unusual FETCH response shape; using the general parser")
            try:
                parsed = parse_fetch_general(raw)
            except (imap_errors.ProtocolError, ValueError, TypeError) as exc:
                raise TransientMailboxError(
                    f"{self.host} sent a FETCH response that cannot be parsed ({exc})"
                ) from None
        out = []
        for uid in uids:
            found = parsed.get(uid)
            if found is not None:  # else: expunged meanwhile
                out.append(found)
        return out

    def _raw_fetch(self, uids: Sequence[int], items: Sequence[str]) -> list[Any]:
        # What IMAPClient.fetch does (same private calls, imapclient pinned < 5), minus its
        # generic response parsing, which is ~90 % of a bare header scan's client time.
        imap = self._client._imap
        ids = b",".join(str(uid).encode() for uid in uids)
        tag = imap._command("UID", "FETCH", ids, "(" + " ".join(items) + ")")
        typ, data = imap._command_complete("FETCH", tag)
        if typ != "OK":
            said = _text(data[0] if data else b"")
            raise imap_errors.IMAPClientError(f"FETCH failed: {said}")
        typ, data = imap._untagged_response(typ, data, "FETCH")
        return list(data) if data != [None] else []

    def iter_headers(self, uids: Sequence[int], batch_size: int) -> Iterator[list[FetchedHeader]]:
        for start in range(0, len(uids), batch_size):
            yield self.fetch_headers(uids[start:start + batch_size])

    def fetch_messages(self, folder: str, uids: Iterable[int]) -> dict[int, bytes]:
        """Whole messages (drafts checks only; the scan never downloads bodies)."""
        self.select(folder)
        response = self._call(self._client.fetch, list(uids), ["BODY.PEEK[]"])
        return {uid: data.get(b"BODY[]", b"") for uid, data in response.items()}

    def search(self, folder: str, criteria: list[str]) -> list[int]:
        self.select(folder)
        return sorted(self._call(self._client.search, criteria))

    # ------------------------------------------------------------------ writing

    def append(self, folder: str, message: bytes, flags: Sequence[str] = (),
               when: datetime | None = None) -> int | None:
        """APPEND ``message`` (bytes with CRLF endings); return its UID when the server says."""
        response = self._call(self._client.append, folder, message, flags=list(flags),
                              msg_time=when)
        match = _APPENDUID.search(response if isinstance(response, bytes) else b"")
        return int(match[2]) if match else None

    def delete(self, folder: str, uids: Sequence[int]) -> None:
        self.select(folder, readonly=False)
        self._call(self._client.delete_messages, list(uids))
        self._call(self._client.expunge)


# --------------------------------------------------------------------------- FETCH parsing

_FETCH_UNSOLICITED = re.compile(
    rb"^\d+ \((?:(?:UID \d+|FLAGS \([^()]*\)|MODSEQ \(\d+\)) ?)+\)$")
_FETCH_UID = re.compile(rb"[( ]UID (\d+)")
_FETCH_DATE = re.compile(rb'INTERNALDATE "([^"]*)"')
_FETCH_FLAGS = re.compile(rb"FLAGS \(([^)]*)\)")
_FETCH_GMID = re.compile(rb"X-GM-MSGID (\d+)")
_FETCH_BODY = re.compile(rb"BODY\[HEADER\.FIELDS [^\]]*\] \{(\d+)\}$")
_MONTHS = {m.encode(): i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}
_ZONES: dict[int, timezone] = {}


def parse_internaldate(raw: bytes) -> datetime | None:
    """``" 5-Jan-2026 10:00:00 +0100"`` → aware datetime; None when malformed."""
    try:
        day_part, time_part, zone = raw.split()
        day, month, year = day_part.split(b"-")
        hour, minute, second = time_part.split(b":")
        sign = -1 if zone[:1] == b"-" else 1
        offset = sign * (int(zone[1:3]) * 60 + int(zone[3:5]))
        tz = _ZONES.get(offset)
        if tz is None:
            tz = _ZONES.setdefault(offset, timezone(timedelta(minutes=offset)))
        return datetime(int(year), _MONTHS[month], int(day), int(hour), int(minute),
                        int(second), tzinfo=tz)
    except (ValueError, KeyError):
        return None


def parse_fetch_fast(data: Sequence[Any]) -> dict[int, FetchedHeader] | None:
    """Parse ``UID INTERNALDATE FLAGS BODY[HEADER.FIELDS ...] {n}`` responses, or give up.

    imaplib hands a response with a literal over as ``(text before the literal, literal)``
    followed by the rest of the line as bytes. Returns None for any other shape.
    """
    out: dict[int, FetchedHeader] = {}
    index, count = 0, len(data)
    while index < count:
        item = data[index]
        if isinstance(item, bytes):
            if not _FETCH_UNSOLICITED.match(item):
                return None  # e.g. a header sent as "" or NIL: left to the general parser
            index += 1  # an unsolicited update (FLAGS changed by another client)
            continue
        if not isinstance(item, tuple) or len(item) != 2:
            return None
        head, literal = item
        tail = data[index + 1] if index + 1 < count else b""
        if not isinstance(tail, bytes) or not isinstance(literal, bytes):
            return None
        body = _FETCH_BODY.search(head)
        if body is None or int(body[1]) != len(literal) or b"{" in tail:
            return None
        meta = head + tail
        uid = _FETCH_UID.search(meta)
        flags = _FETCH_FLAGS.search(meta)
        if uid is None or flags is None:
            return None
        date = _FETCH_DATE.search(meta)
        gmid = _FETCH_GMID.search(meta)
        out[int(uid[1])] = FetchedHeader(
            uid=int(uid[1]),
            internaldate=parse_internaldate(date[1]) if date else None,
            header=literal,
            flags=frozenset(flags[1].decode("ascii", "replace").lower().split()),
            gm_msgid=int(gmid[1]) if gmid else None,
        )
        index += 2
    return out


def parse_fetch_general(data: list[Any]) -> dict[int, FetchedHeader]:
    """The same result through imapclient's general response parser."""
    response = parse_fetch_response(data, False, True)
    out: dict[int, FetchedHeader] = {}
    for uid, fields in response.items():
        body_key = next((k for k in fields if isinstance(k, bytes)
                         and k.startswith(b"BODY[HEADER.FIELDS")), None)
        header = fields.get(body_key) if body_key else b""
        internaldate = fields.get(b"INTERNALDATE")
        out[uid] = FetchedHeader(
            uid=uid,
            internaldate=internaldate if isinstance(internaldate, datetime) else None,
            header=header if isinstance(header, bytes) else b"",
            flags=frozenset(_text(f).lower() for f in fields.get(b"FLAGS") or ()),
            gm_msgid=fields.get(b"X-GM-MSGID"),
        )
    return out


def discover_roles(folders: Sequence[Folder]) -> FolderRoles:
    """SPECIAL-USE flags first, then known names (German, Exchange, iCloud, Gmail)."""
    found: dict[str, str] = {}
    how: dict[str, str] = {}
    archive: list[str] = []
    for folder in folders:
        if not folder.selectable:
            continue
        for flag in folder.flags:
            role = SPECIAL_USE.get(flag)
            if role == "archive":
                archive.append(folder.name)
                how.setdefault("archive", "flag")
            elif role and role not in found:
                found[role] = folder.name
                how[role] = "flag"
    for role, names in KNOWN_NAMES.items():
        if role in found or (role == "archive" and archive):
            continue
        for folder in _by_name_preference(folders):
            if folder.selectable and folder.leaf.lower() in names:
                if role == "all" and not _under_gmail_root(folder):
                    continue
                if role == "archive":
                    archive.append(folder.name)
                else:
                    found[role] = folder.name
                how[role] = "name"
                break
    return FolderRoles(
        sent=found.get("sent"), drafts=found.get("drafts"), junk=found.get("junk"),
        trash=found.get("trash"), all=found.get("all"), archive=tuple(archive), how=how,
    )


def _by_name_preference(folders: Sequence[Folder]) -> list[Folder]:
    # Prefer top-level folders and INBOX children over deeper user folders of the same name.
    def depth(folder: Folder) -> int:
        parts = folder.name.split(folder.delimiter) if folder.delimiter else [folder.name]
        if parts[0].upper() == "INBOX" or parts[0].lower() in GMAIL_ROOTS:
            return len(parts) - 1
        return len(parts)
    return sorted(folders, key=depth)


def _under_gmail_root(folder: Folder) -> bool:
    head = folder.name.split(folder.delimiter, 1)[0] if folder.delimiter else ""
    return head.lower() in GMAIL_ROOTS


def choose_scan_folders(folders: Sequence[Folder], roles: FolderRoles, gmail: bool,
                        include: Sequence[str] | None = None,
                        exclude: Sequence[str] = ()) -> list[str]:
    """Which folders a scan reads: explicit ``include``, else every selectable folder but
    Junk, Trash and Drafts; on Gmail only All Mail (it holds everything else)."""
    names = [f.name for f in folders if f.selectable]
    if include is not None:
        missing = [name for name in include if name not in names]
        if missing:
            raise ConfigError([
                f"[imap] folders names {', '.join(repr(m) for m in missing)}, which the server "
                f"does not have; it has: {', '.join(names)}"
            ])
        chosen = list(include)
    elif gmail and roles.all:
        chosen = [roles.all]
    else:
        skip = {roles.junk, roles.trash, roles.drafts}
        chosen = [name for name in names if name not in skip]
    return [name for name in chosen if name not in set(exclude)]


def utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
