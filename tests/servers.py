"""Real mail servers on loopback for tests and the demo: Dovecot, pymap, Cyrus, SMTP.

Nothing here imports pytest; the fixtures in conftest.py are thin wrappers around these
classes. The pymap server itself lives in the package (agent.demo_server, which `followup
demo` uses); `PymapServer` here adds `new_account()`.
"""

from __future__ import annotations

import atexit
import contextlib
import grp
import logging
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Literal, Self, TypeVar

import imapclient
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from keyring.backend import KeyringBackend
from keyring.compat import properties
from keyring.errors import PasswordDeleteError

from agent.demo_server import (
    LOOPBACK,
    ServerStartError,
    free_port,
    wait_for_greeting,
)
from agent.demo_server import PymapServer as EmbeddedPymapServer

log = logging.getLogger(__name__)

ServerKind = Literal["dovecot", "pymap", "cyrus"]
_T = TypeVar("_T")

# Batch sizes for seeding and reading back: big enough to be fast, small enough that no
# server refuses the command line (see notes/imap-pitfalls.md).
_APPEND_BATCH = 200
_USERNAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_FETCH_BATCH = 500


# --------------------------------------------------------------------------- utilities


def find_dovecot() -> str | None:
    """Path of the dovecot binary, or None when it is not installed."""
    if os.access("/usr/sbin/dovecot", os.X_OK):
        return "/usr/sbin/dovecot"
    return shutil.which("dovecot")


def _make_private_dir(prefix: str, parent: str = "/tmp") -> Path:
    # Short path under /tmp: Dovecot's Unix sockets must fit in ~108 bytes. The auth
    # and login processes run as other users, so the directory must be traversable.
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    path.chmod(0o755)
    return path


@dataclass(frozen=True)
class TlsFiles:
    """A self-signed certificate for localhost/127.0.0.1; `cert_file` doubles as CA file."""

    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert_file))


def make_self_signed_cert(directory: Path) -> TlsFiles:
    """Create a self-signed certificate (CN=localhost, SAN DNS:localhost, IP:127.0.0.1)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key_file),
            "-out",
            str(cert_file),
            "-days",
            "30",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    cert_file.chmod(0o644)
    return TlsFiles(cert_file=cert_file, key_file=key_file)


# --------------------------------------------------------------------------- keyring


class MemoryKeyring(KeyringBackend):
    """A keyring that lives in a dict, so tests never touch the system keyring.

    Select it with ``PYTHON_KEYRING_BACKEND=tests.servers.MemoryKeyring``. The store is shared
    by all instances (keyring instantiates the class itself), so tests inspect and reset
    it through the class methods.
    """

    _store: ClassVar[dict[tuple[str, str], str]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # keyring's __init__ is unannotated

    @properties.classproperty
    def priority(cls) -> float:
        return 1.0

    def get_password(self, service: str, username: str) -> str | None:
        with self._lock:
            return self._store.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        with self._lock:
            self._store[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        with self._lock:
            try:
                del self._store[(service, username)]
            except KeyError:
                raise PasswordDeleteError("Password not found") from None

    @classmethod
    def clear(cls) -> None:
        with cls._lock:
            cls._store.clear()

    @classmethod
    def contents(cls) -> dict[tuple[str, str], str]:
        """A copy of every stored (service, username) -> password."""
        with cls._lock:
            return dict(cls._store)


# --------------------------------------------------------------------------- accounts


def _require_aware(when: datetime | None) -> None:
    if when is not None and when.utcoffset() is None:
        raise ValueError(f"INTERNALDATE must be an aware datetime, got naive {when!r}")


@dataclass
class ImapAccount:
    """One mailbox on a running test server, with helpers to seed and inspect it."""

    kind: ServerKind
    host: str
    port: int
    tls_port: int | None
    username: str
    password: str = field(repr=False)
    ca_file: str | None
    sent_folder: str
    drafts_folder: str
    trash_folder: str
    junk_folder: str
    personality: str = "standard"
    # How this server gives a folder a new UIDVALIDITY: (account, folder) -> None.
    uidvalidity_changer: Callable[[ImapAccount, str], None] | None = field(
        default=None, repr=False, compare=False
    )
    # The folder that shows every message (Gmail's "[Gmail]/All Mail", \All), if any.
    all_folder: str | None = None

    def client(self) -> imapclient.IMAPClient:
        """A logged-in IMAPClient over plaintext loopback; use it as a context manager."""
        client = imapclient.IMAPClient(
            self.host, port=self.port, use_uid=True, ssl=False, timeout=30
        )
        client.normalise_times = False
        # imaplib sends a literal and its closing CRLF separately; with Nagle on, each
        # APPEND then waits ~40 ms for a delayed ACK.
        client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            client.login(self.username, self.password)
        except BaseException:
            with contextlib.suppress(Exception):
                client.shutdown()
            raise
        return client

    def append(
        self,
        folder: str,
        message: bytes,
        *,
        flags: Sequence[str] = (),
        when: datetime | None = None,
    ) -> None:
        """APPEND one message; `when` (aware) becomes its INTERNALDATE."""
        _require_aware(when)
        with self.client() as client:
            client.append(folder, message, flags=tuple(flags), msg_time=when)

    def append_many(
        self, items: Iterable[tuple[str, bytes, Sequence[str], datetime | None]]
    ) -> None:
        """APPEND many (folder, message, flags, when) on one connection.

        Items are grouped by folder (order within a folder, and so UID order, is kept)
        and sent as MULTIAPPEND commands of a few hundred messages when the server
        offers it (Dovecot and pymap do); one APPEND each otherwise.
        """
        by_folder: dict[str, list[tuple[bytes, tuple[str, ...], datetime | None]]] = {}
        for folder, message, flags, when in items:
            _require_aware(when)
            by_folder.setdefault(folder, []).append((message, tuple(flags), when))
        with self.client() as client:
            multi = b"MULTIAPPEND" in client.capabilities()
            for folder, messages in by_folder.items():
                if not multi:
                    for message, flags, when in messages:
                        client.append(folder, message, flags=flags, msg_time=when)
                    continue
                for start in range(0, len(messages), _APPEND_BATCH):
                    batch: list[dict[str, Any]] = []
                    for message, flags, when in messages[start : start + _APPEND_BATCH]:
                        item: dict[str, Any] = {"msg": message, "flags": flags}
                        if when is not None:
                            item["date"] = when
                        batch.append(item)
                    client.multiappend(folder, batch)

    def create_folder(self, name: str) -> None:
        with self.client() as client:
            client.create_folder(name)
            client.subscribe_folder(name)

    def folder_uids(self, folder: str) -> list[int]:
        with self.client() as client:
            client.select_folder(folder, readonly=True)
            return sorted(int(uid) for uid in client.search("ALL"))

    def fetch_raw(self, folder: str) -> list[bytes]:
        """Every message of `folder` as full raw bytes, in UID order."""
        with self.client() as client:
            client.select_folder(folder, readonly=True)
            uids = sorted(int(uid) for uid in client.search("ALL"))
            messages: list[bytes] = []
            for start in range(0, len(uids), _FETCH_BATCH):
                chunk = uids[start : start + _FETCH_BATCH]
                response = client.fetch(chunk, [b"BODY.PEEK[]"])
                messages.extend(bytes(response[uid][b"BODY[]"]) for uid in chunk)
            return messages

    def uidvalidity(self, folder: str) -> int:
        with self.client() as client:
            status = client.folder_status(folder, [b"UIDVALIDITY"])
            return int(status[b"UIDVALIDITY"])

    def change_uidvalidity(self, folder: str) -> int:
        """Give `folder` a new UIDVALIDITY; return it.

        The messages survive with their flags and INTERNALDATE but get new UIDs, as
        when a provider rebuilds a mailbox. A session that has the folder selected may
        be disconnected (Dovecot does that), so open new clients afterwards.
        """
        if self.uidvalidity_changer is None:
            raise NotImplementedError(f"{self.kind} server cannot change UIDVALIDITY")
        before = self.uidvalidity(folder)
        # pymap draws a new value from the clock and 16 random bits: retry a collision.
        for _attempt in range(3):
            self.uidvalidity_changer(self, folder)
            after = self.uidvalidity(folder)
            if after != before:
                return after
        raise RuntimeError(f"UIDVALIDITY of {folder!r} did not change ({before})")


def _personal_prefix(client: imapclient.IMAPClient) -> str:
    """The personal namespace prefix ("" or e.g. "INBOX."); "" without NAMESPACE."""
    if b"NAMESPACE" not in client.capabilities():
        return ""
    personal = client.namespace().personal
    return str(personal[0][0]) if personal else ""


def _rebuild_folder(
    account: ImapAccount,
    folder: str,
    *,
    renew_empty_inbox: Callable[[], None] | None = None,
) -> None:
    """New UIDVALIDITY the IMAP way; messages survive with flags and INTERNALDATE.

    Another folder: RENAME it away, CREATE it anew, COPY the messages back, DELETE the
    parking folder — new UIDVALIDITY, UIDs start over. INBOX cannot be deleted (and
    Dovecot refuses to RENAME it): its messages are MOVEd out, `renew_empty_inbox`
    gives the empty INBOX a new UIDVALIDITY, and they are MOVEd back with new UIDs.
    """
    with account.client() as client:
        parking = f"{_personal_prefix(client)}fu-parking-{secrets.token_hex(4)}"
        if folder.upper() == "INBOX" and renew_empty_inbox is not None:
            client.create_folder(parking)
            client.select_folder(folder)
            uids = client.search("ALL")
            if uids:
                client.move(uids, parking)
            client.close_folder()
            renew_empty_inbox()
        else:
            # RENAME of INBOX (where allowed, e.g. pymap) moves its messages away and
            # leaves a fresh, empty INBOX behind (RFC 3501 6.3.5).
            client.rename_folder(folder, parking)
            if not client.folder_exists(folder):  # Dovecot may auto-create it again
                client.create_folder(folder)
            client.subscribe_folder(folder)
        client.select_folder(parking)
        uids = client.search("ALL")
        if uids:
            client.copy(uids, folder)
        client.close_folder()
        client.delete_folder(parking)


# --------------------------------------------------------------------------- dovecot


@dataclass(frozen=True)
class VirtualFolder:
    """A folder that is a live view over real ones (Dovecot's virtual plugin).

    That is how Gmail behaves: one message, many labels, each label a folder with its own
    UIDs. `rules` is the view's dovecot-virtual file: mailbox patterns, then an indented
    search program; a `!name` pattern is where APPENDs to the view are stored.
    """

    name: str  # full IMAP name, e.g. "[Gmail]/All Mail"
    special_use: str | None
    rules: str


@dataclass(frozen=True)
class Personality:
    """A mailbox layout a server presents: what hosting providers differ in.

    `folders` are full IMAP names as a client sees them (prefix included) with their
    SPECIAL-USE flag or None; sent/drafts/trash/junk name the folder in that role.
    `views` are virtual folders in their own namespace `views_prefix`, stored in real
    folders of a hidden namespace (`hidden_folders`, named ".real/<name>").
    `capability`, when set, is Dovecot's `imap_capability`: a full list replaces the
    defaults, "+X" adds X to them.
    """

    name: str
    separator: str
    prefix: str
    folders: tuple[tuple[str, str | None], ...]
    sent: str
    drafts: str
    trash: str
    junk: str
    extra_config: tuple[str, ...] = ()
    capability: str = ""
    views_prefix: str = ""
    views: tuple[VirtualFolder, ...] = ()
    hidden_folders: tuple[str, ...] = ()
    all_mail: str | None = None


STANDARD = Personality(
    name="standard",
    separator="/",
    prefix="",
    folders=(
        ("Sent", "\\Sent"),
        ("Drafts", "\\Drafts"),
        ("Junk", "\\Junk"),
        ("Trash", "\\Trash"),
        ("Archive", "\\Archive"),
    ),
    sent="Sent",
    drafts="Drafts",
    trash="Trash",
    junk="Junk",
)

# A German hosting provider (Courier heritage): everything below INBOX, "." separator,
# no SPECIAL-USE flags, umlauts in names (modified UTF-7 on the wire).
GERMAN = Personality(
    name="german",
    separator=".",
    prefix="INBOX.",
    folders=(
        ("INBOX.Gesendet", None),
        ("INBOX.Entwürfe", None),
        ("INBOX.Papierkorb", None),
        ("INBOX.Spam", None),
    ),
    sent="INBOX.Gesendet",
    drafts="INBOX.Entwürfe",
    trash="INBOX.Papierkorb",
    junk="INBOX.Spam",
)

# Gmail: INBOX and user labels are real folders; everything below "[Gmail]/" is a view.
# All Mail holds every message but Spam and Trash (drafts included, flagged \Draft), so
# each message shows up in at least two folders with different UIDs, as on Gmail; Starred
# shows the \Flagged ones. Sent Mail, Drafts, Spam and Trash store into hidden real
# folders. Where this differs from Gmail: a message put into INBOX and into a label is
# two copies, so All Mail lists it twice (Gmail: once); Dovecot gives no APPENDUID for an
# APPEND to a view (drafts come back without a UID); and it knows no X-GM-MSGID.
_REAL = ".real/"
_EVERYTHING = f"INBOX\n*\n{_REAL}*\n-{_REAL}Spam\n-{_REAL}Trash\n"


def _gmail(name: str, capability: str = "") -> Personality:
    def view(leaf: str, special_use: str, rules: str) -> VirtualFolder:
        return VirtualFolder(f"[Gmail]/{leaf}", special_use, rules)

    return Personality(
        name=name,
        separator="/",
        prefix="",
        folders=(),
        sent="[Gmail]/Sent Mail",
        drafts="[Gmail]/Drafts",
        trash="[Gmail]/Trash",
        junk="[Gmail]/Spam",
        capability=capability,
        views_prefix="[Gmail]/",
        views=(
            view("All Mail", "\\All", _EVERYTHING + "  all\n"),
            view("Sent Mail", "\\Sent", f"!{_REAL}Sent\n  all\n"),
            view("Drafts", "\\Drafts", f"!{_REAL}Drafts\n  all\n"),
            view("Spam", "\\Junk", f"!{_REAL}Spam\n  all\n"),
            view("Trash", "\\Trash", f"!{_REAL}Trash\n  all\n"),
            view("Starred", "\\Flagged", _EVERYTHING + "  flagged\n"),
        ),
        hidden_folders=("Sent", "Drafts", "Spam", "Trash"),
        all_mail="[Gmail]/All Mail",
    )


# Gmail's capability list (CONDSTORE without QRESYNC, no MULTIAPPEND) less what Dovecot
# does not implement here (QUOTA, XLIST, COMPRESS=DEFLATE, UTF8=ACCEPT, LITERAL-).
_GMAIL_CAPABILITY = ("IMAP4rev1 UNSELECT IDLE NAMESPACE ID CHILDREN {ext}UIDPLUS ENABLE MOVE "
                     "CONDSTORE ESEARCH LIST-EXTENDED LIST-STATUS SPECIAL-USE")
# Gmail as it is: the layout above and X-GM-EXT-1, so followup reads All Mail only (and
# asks for X-GM-MSGID, which Dovecot refuses: agent.mailbox must carry on without it).
GMAIL = _gmail("gmail", capability=_GMAIL_CAPABILITY.format(ext="X-GM-EXT-1 "))
# The same layout without X-GM-EXT-1 (a migrated copy, a proxy): followup reads every
# folder, and the copies of one message in INBOX, labels, All Mail and Sent Mail must
# count once.
GMAIL_NOEXT = _gmail("gmail-noext", capability=_GMAIL_CAPABILITY.format(ext=""))

# Microsoft Exchange / Microsoft 365 with German folder names: top-level folders, "/"
# separator, no SPECIAL-USE flags, and Exchange's short capability list (no CONDSTORE,
# QRESYNC, SPECIAL-USE, MULTIAPPEND, LITERAL+). After login Dovecot 2.3 advertises a
# full `imap_capability` list exactly as given (test_personalities checks it).
EXCHANGE = Personality(
    name="exchange",
    separator="/",
    prefix="",
    folders=(
        ("Gesendete Elemente", None),
        ("Entwürfe", None),
        ("Gelöschte Elemente", None),
        ("Junk-E-Mail", None),
        ("Postausgang", None),
        ("Archiv", None),
    ),
    sent="Gesendete Elemente",
    drafts="Entwürfe",
    trash="Gelöschte Elemente",
    junk="Junk-E-Mail",
    capability="IMAP4 IMAP4rev1 SASL-IR UIDPLUS ID UNSELECT CHILDREN IDLE NAMESPACE MOVE",
)

PERSONALITIES: dict[str, Personality] = {
    p.name: p for p in (STANDARD, GERMAN, GMAIL, GMAIL_NOEXT, EXCHANGE)
}
# Every server personality the tests know: the Dovecot layouts above, pymap, Cyrus.
ALL_PERSONALITIES: tuple[str, ...] = (*PERSONALITIES, "pymap", "cyrus")


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _mailbox_section(name: str, lines: Sequence[str], indent: str = "  ") -> str:
    inner = "\n".join(f"{indent}  {line}" for line in lines)
    return f"{indent}mailbox {_quote(name)} {{\n{inner}\n{indent}}}"


def _personality_settings(personality: Personality) -> list[str]:
    """Config beyond the inbox namespace: capability list, views and their hidden store."""
    settings: list[str] = []
    if personality.capability:
        settings.append(f"imap_capability = {personality.capability}")
    if not personality.views:
        return settings
    prefix = personality.views_prefix
    views: list[str] = []
    for folder in personality.views:
        if not folder.name.startswith(prefix):
            raise ValueError(f"view {folder.name!r} is outside its namespace prefix {prefix!r}")
        if folder.special_use:
            leaf = folder.name[len(prefix) :]
            views.append(_mailbox_section(leaf, [f"special_use = {folder.special_use}"]))
    hidden = [_mailbox_section(name, ["auto = create"]) for name in personality.hidden_folders]
    body, hidden_body = "\n".join(views), "\n".join(hidden)
    settings.append(f"""\
mail_plugins = $mail_plugins virtual
# The views: one directory with a dovecot-virtual file each, written by add_user().
namespace views {{
  prefix = {prefix}
  separator = {personality.separator}
  location = virtual:~/views
  list = yes
  subscriptions = no
{body}
}}
# Where the views store what is APPENDed to them; invisible to clients.
namespace real {{
  prefix = {_REAL}
  separator = {personality.separator}
  location = maildir:~/real
  hidden = yes
  list = no
  subscriptions = no
{hidden_body}
}}""")
    return settings


def dovecot_config(
    *,
    root: Path,
    port: int,
    tls_port: int,
    tls: TlsFiles,
    personality: Personality,
    mail_uid: int,
    mail_gid: int,
) -> str:
    """A complete Dovecot 2.3 config that keeps everything under `root`."""
    mailboxes: list[str] = []
    for name, special_use in personality.folders:
        # Mailbox sections name the mailbox inside the namespace, without its prefix.
        if not name.startswith(personality.prefix):
            raise ValueError(f"{name!r} is outside namespace prefix {personality.prefix!r}")
        lines = ["    auto = subscribe"]
        if special_use:
            lines.append(f"    special_use = {special_use}")
        inner = "\n".join(lines)
        mailboxes.append(f"  mailbox {_quote(name[len(personality.prefix) :])} {{\n{inner}\n  }}")
    extra = "\n".join([*_personality_settings(personality), *personality.extra_config])
    namespace_body = "\n".join(mailboxes)
    return f"""\
# Generated by tests/servers.py for a throwaway test server ({personality.name}).
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
protocols = imap
listen = {LOOPBACK}
shutdown_clients = yes

default_login_user = dovenull
default_internal_user = dovecot
first_valid_uid = {mail_uid}
last_valid_uid = {mail_uid}
first_valid_gid = {mail_gid}
last_valid_gid = {mail_gid}

ssl = yes
ssl_cert = <{tls.cert_file}
ssl_key = <{tls.key_file}

disable_plaintext_auth = no
auth_mechanisms = plain login
# A failed login still takes up to 0.5 s (Dovecot checks its failure queue twice a
# second), not the default 2 s.
auth_failure_delay = 0
mail_max_userip_connections = 1000

mail_location = maildir:~/Maildir
# A test server: durability does not matter, seeding speed does.
mail_fsync = never

# One passwd-file per user: a file Dovecot has never looked at is read at once. A
# single shared file is re-stat()ed at most once per second, so a user added right
# after another login would be unknown for up to a second.
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users/%u
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {root}/users/%u
}}

service imap-login {{
  inet_listener imap {{
    address = {LOOPBACK}
    port = {port}
  }}
  inet_listener imaps {{
    address = {LOOPBACK}
    port = {tls_port}
    ssl = yes
  }}
}}
# No growing delay for an IP after failed logins: tests log in wrongly on purpose.
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = 0
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}

namespace inbox {{
  inbox = yes
  separator = {personality.separator}
  prefix = {personality.prefix}
{namespace_body}
}}
{extra}
"""


def start_retrying(name: str, start_once: Callable[[float], None], stop: Callable[[], None],
                   timeout: float, attempts: int) -> None:
    """Start a server, with fresh ports on each attempt (one may be taken meanwhile)."""
    for attempt in range(1, attempts + 1):
        try:
            start_once(timeout)
            # Last line of defence against orphaned servers if the test run dies without
            # reaching its teardown; stop() is idempotent.
            atexit.register(stop)
            return
        except ServerStartError:
            stop()
            if attempt == attempts:
                raise
            log.warning("%s did not start (attempt %d), retrying", name, attempt, exc_info=True)


def await_greeting(name: str, process: subprocess.Popen[bytes], host: str, port: int,
                   timeout: float, log_tail: Callable[[], str]) -> None:
    """Wait until a freshly started server greets on ``port``; its log tail if it does not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerStartError(
                f"{name} exited with status {process.returncode}:\n{log_tail()}")
        if wait_for_greeting(host, port, timeout=0.5):
            return
        time.sleep(0.05)
    raise ServerStartError(f"{name} did not answer on port {port} within {timeout}s:\n"
                           f"{log_tail()}")


class Dovecot:
    """A private Dovecot 2.3 on loopback with one mailbox layout and many users.

    Everything (config, sockets, state, log, passwd-file, mail) lives in a short temp dir
    under /tmp that is removed on stop. Users are added at runtime: Dovecot's passwd-file
    driver re-reads the file when its mtime/inode change, so no reload is needed.
    Needs root: Dovecot switches to dovenull/dovecot for its own processes and to the
    system user `mail` for mail access.
    """

    def __init__(
        self,
        tls: TlsFiles,
        personality: Personality = STANDARD,
        *,
        binary: str | None = None,
        mail_user: str = "mail",
    ) -> None:
        self.tls = tls
        self.personality = personality
        self.binary = binary or find_dovecot() or "/usr/sbin/dovecot"
        self.host = LOOPBACK
        self.port = 0
        self.tls_port = 0
        self.mail_uid = pwd.getpwnam(mail_user).pw_uid
        self.mail_gid = grp.getgrnam(mail_user).gr_gid
        self.root: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._users: dict[str, str] = {}
        self._counter = 0
        self._lock = threading.Lock()

    # paths --------------------------------------------------------------

    def _path(self, *parts: str) -> Path:
        if self.root is None:
            raise RuntimeError("Dovecot is not running")
        return self.root.joinpath(*parts)

    @property
    def config_file(self) -> Path:
        return self._path("dovecot.conf")

    @property
    def log_file(self) -> Path:
        return self._path("dovecot.log")

    def passwd_file(self, username: str) -> Path:
        return self._path("users", username)

    # lifecycle ----------------------------------------------------------

    def start(self, timeout: float = 15.0, attempts: int = 3) -> None:
        """Start the server; retried with new ports if one was taken meanwhile."""
        start_retrying("Dovecot", self._start_once, self.stop, timeout, attempts)

    def _start_once(self, timeout: float) -> None:
        self.root = root = _make_private_dir("fu-")
        for sub in ("run", "state", "home", "users"):
            (root / sub).mkdir(mode=0o755)
        self.port, self.tls_port = free_port(), free_port()
        while self.tls_port == self.port:
            self.tls_port = free_port()
        self.config_file.write_text(
            dovecot_config(
                root=root,
                port=self.port,
                tls_port=self.tls_port,
                tls=self.tls,
                personality=self.personality,
                mail_uid=self.mail_uid,
                mail_gid=self.mail_gid,
            ),
            encoding="utf-8",
        )
        stderr = (root / "stderr.log").open("wb")
        with stderr:
            self._process = subprocess.Popen(
                [self.binary, "-F", "-c", str(self.config_file)],
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                # Own process group: a Ctrl-C in the test run must not skip our stop().
                start_new_session=True,
            )
        await_greeting("dovecot", self._process, self.host, self.port, timeout, self.log_tail)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the master (PID from base_dir/master.pid), wait, remove the temp dir."""
        atexit.unregister(self.stop)
        process, self._process = self._process, None
        if process is not None:
            pid = process.pid
            with contextlib.suppress(OSError, ValueError):
                pid = int(self._path("run", "master.pid").read_text().strip())
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
                try:
                    process.wait(timeout)
                except subprocess.TimeoutExpired:
                    log.warning("dovecot %d ignored SIGTERM; killing its process group", pid)
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
                    process.wait(timeout)
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None
        self._users.clear()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def log_tail(self, lines: int = 40) -> str:
        text = ""
        for name in ("stderr.log", "dovecot.log"):
            with contextlib.suppress(OSError, RuntimeError):
                text += self._path(name).read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    # users --------------------------------------------------------------

    def add_user(self, username: str | None = None, password: str | None = None) -> tuple[str, str]:
        """Add a user with an empty home owned by the mail uid; return (username, password).

        The user's passwd-file ({PLAIN} password) is complete before it becomes visible
        (write, then rename), so a login right after this call succeeds.
        """
        with self._lock:
            if username is None:
                self._counter += 1
                username = f"t{self._counter:04d}"
            # The name is part of a file path (and of the passwd-file line format).
            if not _USERNAME.fullmatch(username) or username in self._users:
                raise ValueError(f"bad or duplicate username {username!r}")
            self._users[username] = password = password or secrets.token_urlsafe(12)
        home = self._path("home", username)
        home.mkdir(mode=0o700)
        os.chown(home, self.mail_uid, self.mail_gid)
        self._write_views(home)
        line = f"{username}:{{PLAIN}}{password}:{self.mail_uid}:{self.mail_gid}::{home}::\n"
        target = self.passwd_file(username)
        tmp = target.with_name(f".{username}.tmp")
        tmp.write_text(line, encoding="utf-8")
        tmp.chmod(0o644)
        os.replace(tmp, target)
        return username, password

    def _write_views(self, home: Path) -> None:
        # Dovecot cannot CREATE a virtual folder: each view is a directory with its
        # dovecot-virtual file, there before the user's first login.
        prefix = self.personality.views_prefix
        for view in self.personality.views:
            path = home
            for part in ["views", *view.name[len(prefix) :].split(self.personality.separator)]:
                path = path / part
                path.mkdir(mode=0o700, exist_ok=True)
                os.chown(path, self.mail_uid, self.mail_gid)
            rules = path / "dovecot-virtual"
            rules.write_text(view.rules, encoding="utf-8")
            os.chown(rules, self.mail_uid, self.mail_gid)

    def new_account(self) -> ImapAccount:
        username, password = self.add_user()
        p = self.personality
        return ImapAccount(
            kind="dovecot",
            host=self.host,
            port=self.port,
            tls_port=self.tls_port,
            username=username,
            password=password,
            ca_file=str(self.tls.cert_file),
            sent_folder=p.sent,
            drafts_folder=p.drafts,
            trash_folder=p.trash,
            junk_folder=p.junk,
            personality=p.name,
            uidvalidity_changer=self._change_uidvalidity,
            all_folder=p.all_mail,
        )

    def _change_uidvalidity(self, account: ImapAccount, folder: str) -> None:
        def renew_empty_inbox() -> None:
            # Dovecot cannot RENAME INBOX; its own admin tool can set a new UIDVALIDITY
            # (it disconnects sessions that have the folder selected, as on a real server).
            user = account.username
            status = self.doveadm("mailbox", "status", "-u", user, "uidvalidity", "INBOX")
            current = int(status.strip().rpartition("=")[2])
            self.doveadm(
                "mailbox", "update", "-u", user, "--uid-validity", str(current + 1), "INBOX"
            )

        _rebuild_folder(account, folder, renew_empty_inbox=renew_empty_inbox)

    def doveadm(self, *args: str) -> str:
        """Run `doveadm -c CONFIG ARGS...` against this instance; return stdout."""
        doveadm = shutil.which("doveadm") or "/usr/bin/doveadm"
        result = subprocess.run(
            [doveadm, "-c", str(self.config_file), *args],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"doveadm {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout


# --------------------------------------------------------------------------- pymap


class PymapServer(EmbeddedPymapServer):
    """The package's embedded pymap server (agent.demo_server), handing out ImapAccounts."""

    def new_account(self) -> ImapAccount:
        username, password = self.add_user()
        return ImapAccount(
            kind="pymap",
            host=self.host,
            port=self.port,
            tls_port=None,
            username=username,
            password=password,
            ca_file=None,
            sent_folder="Sent",
            drafts_folder="Drafts",
            trash_folder="Trash",
            junk_folder="Junk",
            personality="pymap",
            uidvalidity_changer=_rebuild_folder,
        )


# --------------------------------------------------------------------------- cyrus

CYRUS_BIN = Path("/usr/lib/cyrus/bin")
# Debian's cyrus-imapd and dovecot-imapd conflict (both provide imap-server), so the test
# machine installs cyrus-common (master, libraries) and only unpacks cyrus-imapd's imapd
# here (see .ci/run); FOLLOWUP_CYRUS_IMAPD names another imapd binary.
CYRUS_UNPACKED_IMAPD = Path("/opt/cyrus-imapd/usr/lib/cyrus/bin/imapd")


def find_cyrus() -> tuple[str, str] | None:
    """(master, imapd) of Cyrus IMAP 3, or None when it (or saslpasswd2) is missing."""
    master = CYRUS_BIN / "master"
    if not os.access(master, os.X_OK) or shutil.which("saslpasswd2") is None:
        return None
    for imapd in (os.environ.get("FOLLOWUP_CYRUS_IMAPD"), CYRUS_BIN / "imapd",
                  CYRUS_UNPACKED_IMAPD):
        if imapd and os.access(imapd, os.X_OK):
            return str(master), str(imapd)
    return None


def cyrus_config(*, root: Path, port: int, imapd: str, munge8bit: bool = False
                 ) -> tuple[str, str]:
    """(imapd.conf, cyrus.conf) for a private Cyrus that keeps everything under `root`."""
    folders = " | ".join(name for name, _flag in Cyrus.FOLDERS)
    special_use = "\n".join(f"xlist-{flag}: {name}" for name, flag in Cyrus.FOLDERS)
    imapd_conf = f"""\
# Generated by tests/servers.py for a throwaway test server (cyrus).
configdirectory: {root}/conf
defaultpartition: default
partition-default: {root}/spool
proc_path: {root}/run/proc
mboxname_lockpath: {root}/run/lock
lmtpsocket: {root}/run/socket/lmtp
idlesocket: {root}/run/socket/idle
notifysocket: {root}/run/socket/notify
syslog_prefix: fu-cyrus
# Plaintext LOGIN on loopback; users and {{PLAIN}}-like secrets in a private sasldb.
allowplaintext: yes
sasl_pwcheck_method: auxprop
sasl_auxprop_plugin: sasldb
sasl_sasldb_path: {root}/sasldb2
sasl_mech_list: PLAIN LOGIN
# A user's INBOX and folders (with SPECIAL-USE flags) appear at the first login.
autocreate_quota: 0
autocreate_inbox_folders: {folders}
autocreate_subscribe_folders: {folders}
{special_use}
# Stock Cyrus turns raw 8-bit bytes in headers into "X", on APPEND too: such names are
# lost before any client sees them. Off here, so the ledger compares like with like.
munge8bit: {"yes" if munge8bit else "no"}
"""
    cyrus_conf = f"""\
START {{
  recover cmd="{CYRUS_BIN}/ctl_cyrusdb -C {root}/imapd.conf -r"
}}
SERVICES {{
  imap cmd="{imapd} -C {root}/imapd.conf" listen="{LOOPBACK}:{port}" prefork=0 maxchild=100
}}
EVENTS {{
}}
"""
    return imapd_conf, cyrus_conf


class Cyrus:
    """A private Cyrus IMAP 3 on loopback (plaintext only) with many users.

    Started as root, its master switches to the system user `cyrus`; everything lives in
    a temp dir owned by that user. Users go into a private sasldb (saslpasswd2) and get
    INBOX, Sent, Drafts, Trash, Junk and Archive, with SPECIAL-USE flags, at first login.
    Cyrus writes its logs to syslog only; the master's own output goes to master.log.
    """

    FOLDERS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("Sent", "sent"), ("Drafts", "drafts"), ("Trash", "trash"), ("Junk", "junk"),
        ("Archive", "archive"),
    )

    def __init__(self, *, master: str | None = None, imapd: str | None = None,
                 user: str = "cyrus", munge8bit: bool = False) -> None:
        found = find_cyrus()
        self.munge8bit = munge8bit
        self.master = master or (found[0] if found else str(CYRUS_BIN / "master"))
        self.imapd = imapd or (found[1] if found else str(CYRUS_BIN / "imapd"))
        self.host = LOOPBACK
        self.port = 0
        self.uid = pwd.getpwnam(user).pw_uid
        self.gid = pwd.getpwnam(user).pw_gid
        self.root: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._counter = 0
        self._lock = threading.Lock()

    def _path(self, *parts: str) -> Path:
        if self.root is None:
            raise RuntimeError("Cyrus is not running")
        return self.root.joinpath(*parts)

    def start(self, timeout: float = 15.0, attempts: int = 3) -> None:
        """Start the server; retried with a new port if one was taken meanwhile."""
        start_retrying("Cyrus", self._start_once, self.stop, timeout, attempts)

    def _start_once(self, timeout: float) -> None:
        # On tmpfs where there is one: Cyrus fsyncs every APPEND and cannot be told not to.
        self.root = root = _make_private_dir(
            "cy-", "/dev/shm" if os.path.isdir("/dev/shm") else "/tmp")
        for sub in ("conf", "conf/socket", "spool", "run", "run/socket", "run/lock",
                    "run/proc"):
            (root / sub).mkdir(mode=0o750)
        self.port = free_port()
        imapd_conf, cyrus_conf = cyrus_config(root=root, port=self.port, imapd=self.imapd,
                                              munge8bit=self.munge8bit)
        (root / "imapd.conf").write_text(imapd_conf, encoding="utf-8")
        (root / "cyrus.conf").write_text(cyrus_conf, encoding="utf-8")
        for path in (root, *root.rglob("*")):
            os.chown(path, self.uid, self.gid)
        with (root / "master.log").open("wb") as output:
            self._process = subprocess.Popen(
                [self.master, "-C", str(root / "imapd.conf"), "-M", str(root / "cyrus.conf"),
                 "-p", str(root / "run" / "master.pid")],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=output,
                start_new_session=True,
            )
        await_greeting("cyrus master", self._process, self.host, self.port, timeout,
                       self.log_tail)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the master (it ends its children), wait, remove the temp dir."""
        atexit.unregister(self.stop)
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("cyrus master %d ignored SIGTERM; killing its group", process.pid)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout)
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def log_tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError, RuntimeError):
            text = self._path("master.log").read_text(errors="replace")
            return "\n".join(text.splitlines()[-lines:])
        return ""

    def add_user(self, username: str | None = None, password: str | None = None) -> tuple[str, str]:
        """Add a user to the sasldb; its mailboxes appear at its first login."""
        password = password or secrets.token_urlsafe(12)
        with self._lock:
            if username is None:
                self._counter += 1
                username = f"c{self._counter:04d}"
            if not _USERNAME.fullmatch(username):
                raise ValueError(f"bad username {username!r}")
            sasldb = self._path("sasldb2")
            result = subprocess.run(
                ["saslpasswd2", "-f", str(sasldb), "-p", "-c", username],
                input=password.encode(),
                capture_output=True,
                check=False,
            )
            if result.returncode != 0:
                raise RuntimeError(f"saslpasswd2 failed: {result.stderr.decode(errors='replace')}")
            os.chown(sasldb, self.uid, self.gid)
        return username, password

    def new_account(self) -> ImapAccount:
        username, password = self.add_user()
        return ImapAccount(
            kind="cyrus",
            host=self.host,
            port=self.port,
            tls_port=None,
            username=username,
            password=password,
            ca_file=None,
            sent_folder="Sent",
            drafts_folder="Drafts",
            trash_folder="Trash",
            junk_folder="Junk",
            personality="cyrus",
            uidvalidity_changer=_rebuild_folder,
        )


# --------------------------------------------------------------------------- smtp


@dataclass(frozen=True)
class ReceivedMessage:
    """One message as the SMTP sink received it."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    authenticated_as: str | None
    tls: bool


class _SinkHandler:
    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content or b""
        if isinstance(envelope.content, bytes) and not envelope.original_content:
            data = envelope.content
        auth = session.auth_data
        message = ReceivedMessage(
            mail_from=envelope.mail_from or "",
            rcpt_tos=tuple(envelope.rcpt_tos),
            data=data,
            authenticated_as=auth.login.decode() if isinstance(auth, LoginPassword) else None,
            tls=session.ssl is not None,
        )
        self._sink._record(message)
        return "250 Message accepted for delivery"


class SmtpSink:
    """An aiosmtpd server on loopback that keeps every message it receives.

    With `tls`, STARTTLS is offered and required; with `username`/`password`, AUTH
    PLAIN/LOGIN is required (over TLS when TLS is on).
    """

    def __init__(
        self,
        *,
        host: str = LOOPBACK,
        port: int | None = None,
        tls: TlsFiles | None = None,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        if (username is None) != (password is None):
            raise ValueError("give both username and password, or neither")
        self.host = host
        self.port = port or 0
        self.tls = tls
        self.username = username
        self.password = password
        self._messages: list[ReceivedMessage] = []
        self._cond = threading.Condition()
        self._controller: Controller | None = None

    @property
    def ca_file(self) -> str | None:
        return str(self.tls.cert_file) if self.tls else None

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and self.username is not None
            and self.password is not None
            and auth_data.login == self.username.encode()
            and auth_data.password == self.password.encode()
        )
        # handled=False: let aiosmtpd send the 535 reply on failure.
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    def start(self) -> None:
        if self.port == 0:
            self.port = free_port()
        kwargs: dict[str, Any] = {}
        if self.tls is not None:
            kwargs.update(tls_context=self.tls.server_context(), require_starttls=True)
        if self.username is not None:
            kwargs.update(
                authenticator=self._authenticate,
                auth_required=True,
                auth_require_tls=self.tls is not None,
            )
        self._controller = Controller(
            _SinkHandler(self),
            hostname=self.host,
            port=self.port,
            server_hostname="localhost",  # else socket.getfqdn(): slow without DNS
            ready_timeout=10.0,
            **kwargs,
        )
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _record(self, message: ReceivedMessage) -> None:
        with self._cond:
            self._messages.append(message)
            self._cond.notify_all()

    @property
    def messages(self) -> list[ReceivedMessage]:
        with self._cond:
            return list(self._messages)

    def wait_for(self, count: int = 1, timeout: float = 5.0) -> list[ReceivedMessage]:
        """Block until at least `count` messages arrived; return all of them."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._messages) >= count, timeout):
                raise TimeoutError(f"SMTP sink got {len(self._messages)} of {count} messages")
            return list(self._messages)

    def clear(self) -> None:
        with self._cond:
            self._messages.clear()
