"""A logged-in IMAP connection: connect, log in, list and select folders, fetch, append."""

from __future__ import annotations

import base64
import logging
import re
import socket
import ssl
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import imapclient
from imapclient import exceptions as imap_errors

from agent import credentials, net
from agent.auth import Login, sasl
from agent.config import ImapConfig, is_loopback
from agent.errors import (
    ConfigError,
    CredentialError,
    LoginRefused,
    MailboxError,
    TransientMailboxError,
)
from agent.mailbox.fetch import (
    FETCH_BODY,
    PRIVATE_CALL_ERRORS,
    FetchedHeader,
    UnreadableFetch,
    as_text,
    parse_fetch,
    private_fetch_problem,
    public_fetch,
    raw_fetch,
)
from agent.mailbox.folders import Folder, FolderRoles, choose_scan_folders, discover_roles
from agent.mailbox.parts import TEXT_CAP, as_message, text_parts

log = logging.getLogger(__name__)

# What the user reads when the server refuses one of our calls: its IMAP command.
_COMMANDS = {
    "_raw_fetch": "FETCH", "public_fetch": "FETCH", "fetch": "FETCH", "folder_status": "STATUS",
    "select_folder": "SELECT", "search": "SEARCH", "append": "APPEND", "list_folders": "LIST",
    "capabilities": "CAPABILITY", "delete_messages": "STORE +FLAGS (\\Deleted)",
    "expunge": "EXPUNGE",
}
_APPENDUID = re.compile(rb"\[APPENDUID (\d+) (\d+)\]", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class FolderStatus:
    uidvalidity: int
    uidnext: int
    messages: int
    highestmodseq: int | None = None


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


def _start_tls(client: imapclient.IMAPClient, context: ssl.SSLContext | None, host: str,
               port: int) -> None:
    if not client.has_capability("STARTTLS"):
        raise MailboxError(
            f"{host}:{port} does not offer STARTTLS, so the connection would not be "
            "encrypted; use security = \"ssl\" (usually port 993)"
        )
    client.starttls(context)
    _no_delay(client)


def _log_in(client: imapclient.IMAPClient, host: str, port: int, login: Login) -> None:
    """LOGIN, or AUTHENTICATE: OAUTHBEARER/XOAUTH2 for a token (renewed once if refused),
    PLAIN with UTF-8 (RFC 4616, RFC 6855) for a password LOGIN cannot carry (not ASCII) or
    when the server disables LOGIN."""
    capabilities = frozenset(as_text(c).upper() for c in client.capabilities())
    offered = frozenset(c[5:] for c in capabilities if c.startswith("AUTH="))
    try:
        if login.oauth2:
            _oauth_login(client, host, port, login, offered)
        elif (login.secret.isascii() and login.username.isascii()
              and "LOGINDISABLED" not in capabilities):
            _refused_as_error(client.login, host, login, login.username, login.secret)
        elif "PLAIN" in offered:
            _sasl(client, host, login, "PLAIN", sasl.plain(login.username, login.secret))
        else:
            why = ("disables LOGIN" if "LOGINDISABLED" in capabilities
                   else "takes only ASCII passwords with LOGIN")
            raise CredentialError(
                f"{host} {why} and does not offer AUTHENTICATE PLAIN, so followup cannot log "
                f"in as {login.username} with this password; ask the provider, or use a "
                "password of ASCII letters, digits and punctuation")
    except UnicodeError:
        # Never show the exception: its text quotes the character it could not encode.
        raise CredentialError(f"the login name or password for {host} cannot be sent "
                              "(a character the server's login cannot carry)") from None


def _oauth_login(client: imapclient.IMAPClient, host: str, port: int, login: Login,
                 offered: frozenset[str]) -> None:
    mechanism = sasl.choose_oauth(offered)
    initial = sasl.initial_response(mechanism, login.username, login.secret, host, port)
    try:
        _sasl(client, host, login, mechanism, initial)
    except LoginRefused:
        if login.renew is None:
            raise
        log.info("%s refused the access token; renewing it once", host)
        token = login.renew()
        _sasl(client, host, login, mechanism,
              sasl.initial_response(mechanism, login.username, token, host, port),
              hint="even after renewing the access token; check that the sign-in's scopes "
                   "include IMAP, or run `followup login`")


def _sasl(client: imapclient.IMAPClient, host: str, login: Login, mechanism: str,
          initial: bytes, hint: str = "") -> None:
    # The base64 form is what a protocol log would show: scrub it like the secret.
    credentials.remember(base64.b64encode(initial).decode())
    _refused_as_error(client.sasl_login, host, login, mechanism, sasl.responder(initial),
                      hint=hint)


def _refused_as_error(call: Any, host: str, login: Login, *args: Any, hint: str = "") -> None:
    username = login.username
    try:
        call(*args)
    except imap_errors.LoginError as exc:
        if isinstance(exc.__context__, imap_errors.IMAPClientAbortError | OSError):
            # imapclient turns every failure of LOGIN into LoginError, a connection that
            # broke half-way too: that is worth a retry, and no reason to doubt the password.
            raise TransientMailboxError(f"connection to {host} broke during login") from None
        said = credentials.redact(net.scrub(as_text(exc.args[0] if exc.args else exc),
                                            login.secret))
        said = said.removeprefix("b'").removesuffix("'")
        if login.oauth2:
            raise LoginRefused(f"{host} refused the OAuth2 access token for {username} "
                               f"(server said: {said}){'; ' + hint if hint else ''}") from None
        raise LoginRefused(
            f"login as {username} on {host} failed (server said: {said}); check "
            "[imap] username and the password (Gmail and iCloud need an app password)"
        ) from None
    except imap_errors.IMAPClientError as exc:
        said = credentials.redact(net.scrub(str(exc), login.secret))
        raise LoginRefused(f"login as {username} on {host} failed: {said}") from None


class Mailbox:
    """A logged-in IMAP connection; every imapclient error becomes a MailboxError."""

    def __init__(self, client: imapclient.IMAPClient, host: str,
                 timeout: float | None = None) -> None:
        self._client = client
        self.host = host
        self.name = ""  # the key of the mailbox in the config ("" for the primary)
        self.timeout = timeout  # the socket timeout, for "did not answer" errors
        self._capabilities: frozenset[str] | None = None
        self._selected: str | None = None
        self._folders: list[Folder] | None = None
        # False once the server refused X-GM-MSGID although it advertises X-GM-EXT-1.
        self._gm_msgid = True
        # Whether FETCH takes the fast path through imaplib's private calls; decided at the
        # first FETCH of this connection, and False for good once they fail.
        self._private_fetch: bool | None = None

    # ------------------------------------------------------------------ connect

    @classmethod
    def connect(cls, settings: ImapConfig, login: Login, name: str = "") -> Mailbox:
        mailbox = cls.open(settings.host, settings.port, settings.security, login,
                           ca_file=settings.ca_file, timeout=settings.timeout)
        mailbox.name = name
        return mailbox

    @classmethod
    def open(cls, host: str, port: int, security: str, login: Login, *,
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
            raise _connect_error(exc, host, port, timeout, login.secret) from None
        client.normalise_times = False
        _no_delay(client)
        mailbox = cls(client, host, timeout)
        try:
            if security == "starttls":
                _start_tls(client, context, host, port)
            _log_in(client, host, port, login)
        except (MailboxError, CredentialError):
            mailbox.close()
            raise
        except (OSError, imap_errors.IMAPClientError) as exc:
            mailbox.close()
            raise _connect_error(exc, host, port, timeout, login.secret) from None
        return mailbox

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
            self._capabilities = frozenset(as_text(c).upper() for c in raw)
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
            raise MailboxError(f"{self.host} refused {command}: {as_text(exc)}") from None

    # ------------------------------------------------------------------ folders

    def list_folders(self) -> list[Folder]:
        if self._folders is None:
            folders = []
            for flags, delimiter, name in self._call(self._client.list_folders):
                folders.append(Folder(
                    name=as_text(name),
                    delimiter=as_text(delimiter) if delimiter else "",
                    flags=frozenset(as_text(f).lower() for f in flags),
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
        """Headers (only the fields we need), INTERNALDATE and FLAGS for ``uids``."""
        if not uids:
            return []
        items = ["INTERNALDATE", "FLAGS", FETCH_BODY]
        if self.is_gmail and self._gm_msgid:
            try:
                parsed = self._fetch(uids, [*items, "X-GM-MSGID"])
            except TransientMailboxError:
                raise
            except MailboxError as exc:
                # Proxies and look-alikes advertise X-GM-EXT-1 but answer BAD to its fetch
                # items: ask again without it, once, and not again on this connection.
                log.warning("%s advertises X-GM-EXT-1 but refused X-GM-MSGID (%s); "
                            "fetching without it", self.host, exc)
                self._gm_msgid = False
                parsed = self._fetch(uids, items)
        else:
            parsed = self._fetch(uids, items)
        return [parsed[uid] for uid in uids if uid in parsed]  # the rest: expunged meanwhile

    def delivered(self, uids: Sequence[int]) -> set[int]:
        """Which of ``uids`` (in the selected folder) were delivered by a mail server.

        Every server that delivers a message adds a Received line to it (RFC 5321 4.4), the
        receiving server's own on top, and a sender cannot remove it; a message that the
        user's mail program APPENDed (a sent mail filed away) has none. Only the first bytes
        of the field are fetched: presence is the answer. A server that refuses the FETCH
        makes every one count as delivered (then the user's own mail there is not counted as
        sent, which is the safe side: README "Security").
        """
        if not uids:
            return set()
        item = "BODY.PEEK[HEADER.FIELDS (RECEIVED)]<0.16>"
        try:
            response = self._call(self._client.fetch, list(uids), [item])
        except TransientMailboxError:
            raise
        except MailboxError as exc:
            log.warning("%s refused to show Received fields (%s); your own mail in this "
                        "folder is not counted as sent", self.host, exc)
            return set(uids)
        found = set()
        for uid, fields in response.items():
            value = next((v for k, v in fields.items()
                          if isinstance(k, bytes) and k.startswith(b"BODY[")), b"")
            if isinstance(value, bytes) and value.strip():
                found.add(uid)
        return found

    def _fetch(self, uids: Sequence[int], items: Sequence[str]) -> dict[int, FetchedHeader]:
        """One FETCH: the fast path while imaplib's private calls work on this connection,
        else imapclient's public fetch (another Python may change or drop those calls)."""
        if self._private_fetch is None:
            problem = private_fetch_problem(self._client)
            self._private_fetch = problem is None
            if problem is not None:
                log.debug("%s; FETCH through IMAPClient.fetch on this connection", problem)
        try:
            if self._private_fetch:
                try:
                    raw = self._call(self._raw_fetch, uids, items)
                except PRIVATE_CALL_ERRORS as exc:
                    log.debug("imaplib's private calls failed (%s: %s); FETCH through "
                              "IMAPClient.fetch on this connection", type(exc).__name__, exc)
                    self._private_fetch = False
                else:
                    return parse_fetch(raw)
            found: dict[int, FetchedHeader] = self._call(public_fetch, self._client, uids, items)
            return found
        except UnreadableFetch as exc:
            raise TransientMailboxError(
                f"{self.host} sent a FETCH response that cannot be parsed ({exc})") from None

    def _raw_fetch(self, uids: Sequence[int], items: Sequence[str]) -> list[Any]:
        return raw_fetch(self._client, uids, items)

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

    # ------------------------------------------------------------------ text parts

    def fetch_text_part(self, folder: str, uid: int, cap: int = TEXT_CAP) -> bytes | None:
        """The message's text part (at most ``cap`` bytes) as a small message, or None.

        Two FETCHes: BODYSTRUCTURE, then only the chosen part (agent.mailbox.parts).
        """
        self.select(folder)
        answer = self._call(self._client.fetch, [uid], ["BODYSTRUCTURE"])
        structure = answer.get(uid, {}).get(b"BODYSTRUCTURE")
        parts = text_parts(structure) if structure is not None else []
        if not parts:
            return None
        part = next((p for p in parts if p.subtype == "plain"), parts[0])
        answer = self._call(self._client.fetch, [uid], [f"BODY.PEEK[{part.section}]<0.{cap}>"])
        content = next((value for key, value in answer.get(uid, {}).items()
                        if isinstance(key, bytes) and key.startswith(b"BODY[")
                        and isinstance(value, bytes)), None)
        return None if content is None else as_message(part, content)

    def mark_seen(self, folder: str, uids: Sequence[int]) -> None:
        """Set \\Seen on ``uids`` in ``folder``."""
        if uids:
            self.select(folder, readonly=False)
            self._call(self._client.add_flags, list(uids), [b"\\Seen"])
