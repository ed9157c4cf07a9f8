"""A logged-in IMAP connection: connect, log in, list and select folders, fetch, append."""

from __future__ import annotations

import base64
import logging
import re
import socket
import ssl
import time
from array import array
from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import imapclient
from imapclient import exceptions as imap_errors
from imapclient import imap_utf7
from imapclient.response_parser import parse_response

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
    USUAL,
    UnreadableFetch,
    as_text,
    imaplib_of,
    parse_fetch,
    public_fetch,
)
from agent.mailbox.folders import Folder, FolderRoles, choose_scan_folders, discover_roles
from agent.mailbox.parts import TEXT_CAP, as_message, text_parts
from agent.mailbox.pipeline import FetchData, FetchPipeline, status_answers, uid_set
from agent.mailbox.records import FetchedHeader

log = logging.getLogger(__name__)

#: UIDs one SEARCH may answer with: at 11 bytes each (10 digits and a space) the answer line
#: stays below imaplib's limit of 1,000,000 bytes.
SEARCH_WINDOW = 80_000
#: FETCH commands in flight while scanning: enough to cover the round trip of a slow link
#: (4 batches of 500 are ~2 MB; 50 Mbit/s with 40 ms round trip has 250 KB on the way).
PIPELINE_DEPTH = 4
#: One FETCH at a time (a server that refused a FETCH sent ahead): batches grow up to this
#: many times [imap] batch_size while the wait for the first answer line is more than this
#: share of a batch's time.
MAX_BATCH_GROWTH = 16
ROUND_TRIP_SHARE = 0.05
#: A refused FETCH is asked again in halves, down to single messages, to find the message
#: the server will not give (fetch_headers); this many refusals in a row, with no FETCH
#: answered in between, say the server refuses everything (it throttles): the refusal
#: stands. Halving a batch of 8,000 down to one message is 13.
REFUSALS_IN_A_ROW = 16

# What the user reads when the server refuses one of our calls: its IMAP command.
_COMMANDS = {
    "send": "FETCH", "receive": "FETCH", "settle": "FETCH", "_raw_fetch": "FETCH",
    "public_fetch": "FETCH",
    "fetch": "FETCH", "folder_status": "STATUS",
    "select_folder": "SELECT", "search": "SEARCH", "append": "APPEND", "list_folders": "LIST",
    "capabilities": "CAPABILITY", "delete_messages": "STORE +FLAGS (\\Deleted)",
    "expunge": "EXPUNGE",
}
_APPENDUID = re.compile(rb"\[APPENDUID (\d+) (\d+)\]", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class FolderStatus:
    """What STATUS (or SELECT) tells of a folder."""

    uidvalidity: int
    uidnext: int
    messages: int
    highestmodseq: int | None = None


#: Servers (host, port) whose connection broke while STATUS commands were sent at once: this
#: process asks them one folder at a time (Mailbox.statuses).
_STATUS_ALONE: set[tuple[str, int]] = set()


def _folder_status(data: dict[bytes, Any]) -> FolderStatus:
    """A STATUS answer's items (imapclient's ``folder_status`` shape) as a FolderStatus."""
    return FolderStatus(
        uidvalidity=int(data[b"UIDVALIDITY"]),
        uidnext=int(data.get(b"UIDNEXT", 0)),
        messages=int(data.get(b"MESSAGES", 0)),
        highestmodseq=int(data[b"HIGHESTMODSEQ"]) if b"HIGHESTMODSEQ" in data else None,
    )


def _quoted(name: bytes) -> bytes:
    """An encoded folder name as an IMAP quoted string (as imapclient quotes it)."""
    return b'"' + name.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


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
        self.port = 0  # as opened (Mailbox.open)
        self.name = ""  # the key of the mailbox in the config ("" for the primary)
        self.timeout = timeout  # the socket timeout, for "did not answer" errors
        self._capabilities: frozenset[str] | None = None
        self._selected: str | None = None
        self._selected_status: FolderStatus | None = None  # as SELECT said
        # STATUS answers since the last other command (status()).
        self._statuses: dict[str, FolderStatus] = {}
        self._folders: list[Folder] | None = None
        # False once the server refused X-GM-MSGID although it advertises X-GM-EXT-1.
        self._gm_msgid = True
        # FETCHes sent ahead while header_batches runs (None otherwise): every other
        # command first reads their answers (_call).
        self._pipeline: FetchPipeline | None = None
        self._reading: FetchPipeline | None = None  # the last FETCHes sent (broke_through)
        self._unparsed_through: int | None = None  # of an answer that could not be read
        # False once the server refused a FETCH sent ahead: one at a time from then on.
        self._pipelining = True
        # Seconds from sending the last FETCH to its first answer line (fast path only).
        self._round_trip: float | None = None
        # Whether FETCH through IMAPClient.fetch has been logged on this connection.
        self._public_fetch_said = False
        # UIDs (in the selected folder) the server would not give: it refused their FETCH
        # even alone, or left them out of its answer twice. The scan takes them
        # (take_unread) to ask for them again at later scans.
        self._unread: list[int] = []
        self._refusals = 0  # FETCHes refused since the last one answered
        self._refused = 0  # FETCHes refused on this connection
        # What batch growth (one FETCH at a time) measures time with; tests set their own.
        self.clock = time.monotonic

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
        mailbox.port = port
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
        if self._pipeline is not None and self._pipeline.unread:
            self._errors(self._pipeline.settle)  # the answers on their way come first
        return self._errors(function, *args, **kwargs)

    def _errors(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        """``function(*args, **kwargs)``, with imapclient's and the socket's failures as ours."""
        if function not in (self._client.folder_status, self._client.list_folders,
                            status_answers):
            # Any other command makes the STATUS answers old (a LIST changes no folder).
            self._statuses.clear()
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

    def statuses(self, folders: Sequence[str]) -> dict[str, FolderStatus]:
        """The STATUS of every one of ``folders``, asked at once: one round trip instead of
        one per folder (a no-change rescan of 31 folders over a 40 ms link took 1.9 s, now
        0.6 s). :meth:`status` answers from them until another command is sent. A folder
        whose answer is not clear (refused, or named differently) is left out, for
        :meth:`status` to ask alone."""
        self._ask_statuses([name for name in dict.fromkeys(folders)
                            if name not in self._statuses])
        return {name: self._statuses[name] for name in folders if name in self._statuses}

    def _ask_statuses(self, wanted: Sequence[str]) -> None:
        imap = imaplib_of(self._client)
        if len(wanted) < 2 or imap is None or (self.host, self.port) in _STATUS_ALONE:
            return
        items = self._status_items()
        names = [_quoted(imap_utf7.encode(name)) for name in wanted]
        try:
            answers = self._call(status_answers, imap, names, b" ".join(items))
        except TransientMailboxError:
            # A server that drops the connection when STATUS commands come at once (or a
            # link that broke just then): the retry, and this process from now on, ask it
            # one folder at a time, which costs round trips and nothing else.
            _STATUS_ALONE.add((self.host, self.port))
            log.info("%s: the connection broke while STATUS commands were on their way; one "
                     "folder at a time from now on", self.host)
            raise
        for folder, answer in zip(wanted, answers, strict=True):
            for response in answer or ():
                try:
                    name, values = parse_response(response)
                    data = {as_text(key).upper().encode(): value
                            for key, value in zip(values[::2], values[1::2], strict=True)}
                except (imap_errors.ProtocolError, ValueError, TypeError, AttributeError):
                    continue
                said = imap_utf7.decode(name) if isinstance(name, bytes) else str(name)
                same = said == folder or said.upper() == folder.upper() == "INBOX"
                if same and b"UIDVALIDITY" in data:
                    self._statuses[folder] = _folder_status(data)

    def _status_items(self) -> list[bytes]:
        items = [b"UIDNEXT", b"UIDVALIDITY", b"MESSAGES"]
        if "CONDSTORE" in self.capabilities:
            items.append(b"HIGHESTMODSEQ")
        return items

    def status(self, folder: str) -> FolderStatus:
        """The folder's STATUS; asked again only after another command was sent (the scan
        and then the mail commands look at INBOX and Sent: with nothing new, two round
        trips fewer, and on Dovecot's maildir ~30 ms each at 100,000 messages)."""
        known = self._statuses.get(folder)
        if known is not None:
            return known
        data = self._call(self._client.folder_status, folder, self._status_items())
        self._statuses[folder] = status = _folder_status(data)
        return status

    def select(self, folder: str, readonly: bool = True) -> FolderStatus:
        data = self._call(self._client.select_folder, folder, readonly=readonly)
        self._selected = folder
        self._unread = []  # UIDs of the folder selected before
        self._reading = self._unparsed_through = None
        self._selected_status = FolderStatus(
            uidvalidity=int(data.get(b"UIDVALIDITY", 0)),
            uidnext=int(data.get(b"UIDNEXT", 0)),
            messages=int(data.get(b"EXISTS", 0)),
            highestmodseq=int(data[b"HIGHESTMODSEQ"]) if b"HIGHESTMODSEQ" in data else None,
        )
        return self._selected_status

    # ------------------------------------------------------------------ reading

    def uids_after(self, last_uid: int) -> array[int]:
        """UIDs above ``last_uid`` in the selected folder, ascending.

        ``UID SEARCH UID n:*`` always matches the highest UID even when it is below n
        (RFC 3501 6.4.8), hence the filter. A folder of more than SEARCH_WINDOW messages is
        searched in windows of UIDs up to its UIDNEXT, then from there on: one answer is one
        line, and imaplib refuses lines over 1 MB (~90,000 UIDs). The UIDs are kept as an
        array of C longs (a UID has 32 bits): 8 bytes each at most, where a list of Python
        ints takes 36 (24 MB for a folder of 667,000 messages).
        """
        status = self._selected_status
        found = array("L")
        start = last_uid + 1
        if status is not None and status.messages > SEARCH_WINDOW:
            while start < status.uidnext:
                end = min(start + SEARCH_WINDOW, status.uidnext) - 1
                # Each window's UIDs lie above the last one's: sorted windows, sorted UIDs.
                found.extend(sorted(self._call(self._client.search, ["UID", f"{start}:{end}"])))
                start = end + 1
        # Windows hold only their own UIDs; "n:*" may add the highest one again, below n.
        found.extend(sorted(uid for uid in self._call(self._client.search, ["UID", f"{start}:*"])
                            if uid >= start))
        return found

    def _header_items(self) -> list[str]:
        items = ["INTERNALDATE", "FLAGS", FETCH_BODY]
        if self.is_gmail and self._gm_msgid:
            items.append("X-GM-MSGID")
        return items

    def fetch_headers(self, uids: Sequence[int]) -> list[FetchedHeader]:
        """Headers (only the fields we need), INTERNALDATE and FLAGS for ``uids``."""
        if not uids:
            return []
        items = self._header_items()
        try:
            parsed = self._fetch(uids, items)
        except TransientMailboxError:
            raise
        except MailboxError as exc:
            if "X-GM-MSGID" not in items:
                return self._apart(uids, exc)
            # Proxies and look-alikes advertise X-GM-EXT-1 but answer BAD to its fetch
            # items: ask again without it, once, and not again on this connection. Refused
            # without it too, it was a message Gmail will not give, not the item.
            self._gm_msgid = False
            try:
                parsed = self._fetch(uids, self._header_items())
            except TransientMailboxError:
                raise
            except MailboxError as again:
                self._gm_msgid = True
                return self._apart(uids, again)
            log.warning("%s advertises X-GM-EXT-1 but refused X-GM-MSGID (%s); "
                        "fetching without it", self.host, exc)
        self._refusals = 0
        found = [parsed[uid] for uid in uids if uid in parsed]
        return found if len(found) == len(uids) else self._complete(uids, found)

    def _apart(self, uids: Sequence[int], refusal: MailboxError) -> list[FetchedHeader]:
        """The headers of ``uids`` whose FETCH the server refused: each half asked for
        apart, down to single messages.

        Gmail ("Some messages could not be FETCHed"), Yahoo and Exchange refuse a FETCH
        every time for one message they cannot serve; refusing the whole batch for it would
        stop every scan of the folder there. A message refused alone that is still in the
        folder is left out and named (take_unread): the scan asks for it again later, so a
        message refused only for a while still counts. REFUSALS_IN_A_ROW refusals with
        nothing answered in between mean the server refuses everything: then the refusal
        stands, and no message is left out for it.
        """
        self._refusals += 1
        self._refused += 1
        if self._refusals >= REFUSALS_IN_A_ROW:
            raise refusal
        if len(uids) == 1:
            there = self._call(self._client.search, ["UID", str(uids[0])])
            if uids[0] in there:
                log.warning("%s would not give the message with UID %d in %s (%s); it is "
                            "not counted for now, and asked for again at later scans",
                            self.host, uids[0], self._selected or "the selected folder",
                            refusal)
                self._unread.append(uids[0])
            return []
        half = len(uids) // 2
        return self.fetch_headers(uids[:half]) + self.fetch_headers(uids[half:])

    def asking_again(self) -> None:
        """The next FETCH asks for a message the server would not give before: refused
        again, that is the message, not a server that refuses everything, so the count of
        refusals in a row (REFUSALS_IN_A_ROW) starts anew."""
        self._refusals = 0

    @property
    def broke_through(self) -> int | None:
        """When the connection broke while FETCH answers were on their way, or an answer
        could not be read: the highest UID asked for and not answered (the message it broke
        on is at most that)."""
        broke = self._reading.broke_through if self._reading is not None else None
        return max(filter(None, (broke, self._unparsed_through)), default=None)

    def take_unread(self, through: int) -> list[int]:
        """The UIDs up to ``through`` that the server would not give (see _apart and
        _complete), each once."""
        if not self._unread:
            return []
        taken = [uid for uid in self._unread if uid <= through]
        self._unread = [uid for uid in self._unread if uid > through]
        return taken

    def header_batches(self, uids: Sequence[int], batch_size: int
                       ) -> Generator[tuple[Sequence[int], list[FetchedHeader]], None, None]:
        """The headers of ``uids`` (ascending, in the selected folder) batch by batch and in
        order, each with the UIDs it asked for (those missing were expunged meanwhile: a
        short answer is checked, see ``_complete``).

        PIPELINE_DEPTH FETCHes are in flight at a time, so no batch waits for a network
        round trip. A FETCH sent ahead that the server refuses is asked again alone: if
        that is refused too, for one message it will not give (fetch_headers), FETCHes are
        sent ahead again; if not, the server refuses FETCHes sent ahead, and this connection
        goes on one FETCH at a time, in batches that grow while the round trip is a
        noticeable part of their time. Close the iterator when leaving early
        (``contextlib.closing``): it reads the answers still on their way, so the
        connection can go on.
        """
        done = 0
        while (done < len(uids) and self._pipelining and PIPELINE_DEPTH > 1
               and imaplib_of(self._client) is not None):
            done += yield from self._pipelined(uids[done:], batch_size)
            if done < len(uids):  # a FETCH sent ahead was refused: that batch alone
                chunk = uids[done:done + batch_size]
                refused = self._refused
                found = self.fetch_headers(chunk)
                if self._refused == refused:
                    log.info("%s refused a FETCH sent ahead and answered it alone; one FETCH "
                             "at a time on this connection from now on", self.host)
                else:
                    self._pipelining = True  # it was the message, not the FETCHes sent ahead
                yield chunk, found
                done += len(chunk)
        yield from self._one_at_a_time(uids[done:], batch_size)

    def one_by_one(self, uids: Sequence[int]
                   ) -> Iterator[tuple[Sequence[int], list[FetchedHeader]]]:
        """The headers of ``uids`` as header_batches gives them, one FETCH of one message at
        a time and nothing sent ahead: a connection that breaks, breaks on the message
        asked for."""
        for uid in uids:
            chunk = [uid]
            yield chunk, self.fetch_headers(chunk)

    def _pipelined(self, uids: Sequence[int], batch_size: int
                   ) -> Generator[tuple[Sequence[int], list[FetchedHeader]], None, int]:
        """Batches of ``uids`` with PIPELINE_DEPTH FETCHes in flight; returns how many UIDs
        it handed over (all, unless the server refused a FETCH)."""
        imap = imaplib_of(self._client)
        assert imap is not None
        pipeline = self._pipeline = self._reading = FetchPipeline(
            imap, self._header_items(), self.clock, USUAL)
        early: dict[int, FetchedHeader] = {}  # answers that came with an earlier batch
        sent = done = 0
        broken = False
        try:
            while done < len(uids):
                while sent < len(uids) and pipeline.in_flight < PIPELINE_DEPTH:
                    self._errors(pipeline.send, uids[sent:sent + batch_size])
                    sent += batch_size
                try:
                    chunk, answer, _ = self._errors(pipeline.receive)
                except TransientMailboxError:
                    raise
                except MailboxError as exc:
                    self._errors(pipeline.settle)
                    log.info("%s refused a FETCH sent ahead (%s); asking for it alone",
                             self.host, exc)
                    self._pipelining = False
                    return done
                # The answer may hold lines of the FETCHes after it (servers that answer
                # them side by side): any of the UIDs sent so far.
                found = _in_order(chunk, self._parsed(answer, uids[min(sent, len(uids)) - 1]),
                                  early)
                self._refusals = 0  # answered: refusals before it were not "in a row"
                if len(found) < len(chunk):
                    found = self._complete(chunk, found)
                yield chunk, found
                done += len(chunk)
        except MailboxError:
            broken = True  # the connection is of no more use; Retry opens another
            raise
        finally:
            self._pipeline = None
            if pipeline.unread and not broken:
                self._abandon(pipeline)  # the caller left early
        return done

    def _complete(self, uids: Sequence[int], found: list[FetchedHeader]) -> list[FetchedHeader]:
        """``found``, the answer to a FETCH of ``uids`` that lacks some of them, with those
        that still exist fetched again.

        A UID missing from an answer was expunged meanwhile, nearly always. But an answer
        read short (by a fault of ours or of the server) must not pass for that: the folder's
        sync state would move past messages never counted. A UID SEARCH of the missing UIDs
        says which are still there; they are fetched once more. Those the server still does
        not give are named in the log and left out (a message it cannot read).
        """
        have = {record.uid for record in found}
        missing = [uid for uid in uids if uid not in have]
        there = sorted(self._call(self._client.search,
                                  ["UID", uid_set(missing).decode("ascii")]))
        if not there:
            return found  # expunged meanwhile
        log.info("%s: %d message(s) missing from a FETCH answer are still there; fetching "
                 "them again", self.host, len(there))
        again = self._fetch(there, self._header_items())
        lost = [uid for uid in there if uid not in again]
        if lost:
            log.warning("%s gave no headers for UID %s in %s twice, though the message(s) "
                        "exist; not counted for now, and asked for again at later scans",
                        self.host, ", ".join(map(str, lost)),
                        self._selected or "the selected folder")
            self._unread.extend(lost)
        records = {record.uid: record for record in found}
        records.update(again)
        return [records[uid] for uid in uids if uid in records]

    def _abandon(self, pipeline: FetchPipeline) -> None:
        """Read the answers still on their way (the caller left early), or give up the
        connection if they cannot be read."""
        try:
            self._errors(pipeline.settle)
        except MailboxError as exc:
            log.debug("answers to FETCHes sent ahead not read (%s); closing the connection", exc)
            self.close()

    def _one_at_a_time(self, uids: Sequence[int], batch_size: int
                       ) -> Iterator[tuple[Sequence[int], list[FetchedHeader]]]:
        """Batches of ``uids``, one FETCH at a time; a batch twice as big whenever the last
        one waited for its first answer line longer than ROUND_TRIP_SHARE of its time."""
        size, start = batch_size, 0
        while start < len(uids):
            chunk = uids[start:start + size]
            start += size
            began = self.clock()
            fetched = self.fetch_headers(chunk)
            took = self.clock() - began
            yield chunk, fetched
            size = next_batch_size(size, batch_size, self._round_trip, took)

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
        """One FETCH: read by the fast parser from imaplib's connection, else through
        imapclient's public fetch (when IMAPClient no longer shows that connection)."""
        imap = imaplib_of(self._client)
        if imap is None:
            if not self._public_fetch_said:
                log.debug("IMAPClient shows no imaplib connection; FETCH through "
                          "IMAPClient.fetch on this connection")
                self._public_fetch_said = True
            self._round_trip = None
            found: dict[int, FetchedHeader] = self._call(public_fetch, self._client, uids, items)
            return found
        return self._parsed(self._call(self._raw_fetch, uids, items), max(uids))

    def _raw_fetch(self, uids: Sequence[int], items: Sequence[str]) -> FetchData:
        """imaplib-shaped answer to one ``UID FETCH``, read off imaplib's connection."""
        imap = imaplib_of(self._client)
        assert imap is not None
        pipeline = self._reading = FetchPipeline(imap, items, self.clock)
        pipeline.send(uids)
        _, answer, self._round_trip = pipeline.receive()
        return answer

    def _parsed(self, answer: FetchData, through: int) -> dict[int, FetchedHeader]:
        try:
            return parse_fetch(answer)
        except UnreadableFetch as exc:
            # Taken as a break on a message up to UID ``through`` (broke_through): one whose
            # answer cannot be read, every time, is found and left out as one that breaks
            # the connection.
            self._unparsed_through = through
            raise TransientMailboxError(
                f"{self.host} sent a FETCH response that cannot be parsed ({exc})") from None

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


def next_batch_size(size: int, base: int, round_trip: float | None, took: float) -> int:
    """The size of the next batch after one of ``size`` (one FETCH at a time) that took
    ``took`` seconds, ``round_trip`` of them waiting for its first answer line (None: not
    known): twice as big while that wait is more than ROUND_TRIP_SHARE of the batch's time,
    up to MAX_BATCH_GROWTH times ``base`` ([imap] batch_size)."""
    largest = base * MAX_BATCH_GROWTH
    if round_trip is None or size >= largest or round_trip <= ROUND_TRIP_SHARE * took:
        return size
    return min(size * 2, largest)


def _in_order(chunk: Sequence[int], parsed: dict[int, FetchedHeader],
              early: dict[int, FetchedHeader]) -> list[FetchedHeader]:
    """The records of ``chunk``'s UIDs in its order, from its answer (``parsed``) or from
    ``early`` (what an earlier answer brought); records of later UIDs go to ``early``."""
    found = [parsed.pop(uid) if uid in parsed else early.pop(uid)
             for uid in chunk if uid in parsed or uid in early]
    if parsed or early:  # rare: a server that mixed answers, or unsolicited FETCH lines
        last = chunk[-1]
        for uid in [uid for uid in early if uid <= last]:
            del early[uid]
        early.update((uid, record) for uid, record in parsed.items() if uid > last)
    return found
