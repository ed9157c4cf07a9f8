"""Real mail servers on loopback for tests and the demo: Dovecot, pymap, an SMTP sink.

Nothing here imports pytest: `followup demo` reuses `PymapServer`, and the fixtures in
conftest.py are thin wrappers around these classes.
"""

from __future__ import annotations

import asyncio
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
from argparse import Namespace
from collections.abc import Callable, Coroutine, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
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

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
ServerKind = Literal["dovecot", "pymap"]
_T = TypeVar("_T")

# Batch sizes for seeding and reading back: big enough to be fast, small enough that no
# server refuses the command line (see notes/imap-pitfalls.md).
_APPEND_BATCH = 200
_USERNAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_FETCH_BATCH = 500


# --------------------------------------------------------------------------- utilities


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def find_dovecot() -> str | None:
    """Path of the dovecot binary, or None when it is not installed."""
    if os.access("/usr/sbin/dovecot", os.X_OK):
        return "/usr/sbin/dovecot"
    return shutil.which("dovecot")


def wait_for_greeting(
    host: str, port: int, *, prefix: bytes = b"* OK", timeout: float = 1.0
) -> bool:
    """True when a server accepts on host:port and its first line starts with prefix."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            return sock.recv(1024).startswith(prefix)
    except OSError:
        return False


def _make_private_dir(prefix: str) -> Path:
    # Short path under /tmp: Dovecot's Unix sockets must fit in ~108 bytes. The auth
    # and login processes run as other users, so the directory must be traversable.
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
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

    Select it with ``PYTHON_KEYRING_BACKEND=servers.MemoryKeyring``. The store is shared
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
class Personality:
    """A mailbox layout a server presents: what hosting providers differ in.

    `folders` are full IMAP names as a client sees them (prefix included) with their
    SPECIAL-USE flag or None; sent/drafts/trash/junk name the folder in that role.
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

PERSONALITIES: dict[str, Personality] = {p.name: p for p in (STANDARD, GERMAN)}


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


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
    extra = "\n".join(personality.extra_config)
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


class ServerStartError(RuntimeError):
    """A test server did not come up; the message carries its log tail."""


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
        for attempt in range(1, attempts + 1):
            try:
                self._start_once(timeout)
                # Last line of defence against orphaned servers if the test run dies
                # without reaching its teardown; stop() is idempotent.
                atexit.register(self.stop)
                return
            except ServerStartError:
                self.stop()
                if attempt == attempts:
                    raise
                log.warning("Dovecot did not start (attempt %d), retrying", attempt, exc_info=True)

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
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise ServerStartError(
                    f"dovecot exited with status {self._process.returncode}:\n{self.log_tail()}"
                )
            if wait_for_greeting(self.host, self.port, timeout=0.5):
                return
            time.sleep(0.05)
        raise ServerStartError(
            f"dovecot did not answer on port {self.port} within {timeout}s:\n{self.log_tail()}"
        )

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
        line = f"{username}:{{PLAIN}}{password}:{self.mail_uid}:{self.mail_gid}::{home}::\n"
        target = self.passwd_file(username)
        tmp = target.with_name(f".{username}.tmp")
        tmp.write_text(line, encoding="utf-8")
        tmp.chmod(0o644)
        os.replace(tmp, target)
        return username, password

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


class PymapServer:
    """pymap's in-memory `dict` backend in a background thread with its own event loop.

    Plaintext IMAP on 127.0.0.1 (STARTTLS off, so LOGIN works without TLS), cleartext
    password storage and no failed-login delay: fast enough to start per test.
    Advertised capabilities (pymap 0.36.7): before login ``IMAP4rev1 LITERAL+ ID
    AUTH=PLAIN AUTH=LOGIN`` (plus ``STARTTLS`` when TLS is on); after login also
    ``BINARY UIDPLUS MOVE CHILDREN APPENDLIMIT=... IDLE OBJECTID MULTIAPPEND`` (see the
    harness tests). No SPECIAL-USE, CONDSTORE, QRESYNC or NAMESPACE: folders are found by
    name only. Separator ``/``; a new mailbox gets a time+random UIDVALIDITY.
    """

    FOLDERS: ClassVar[tuple[str, ...]] = ("Sent", "Drafts", "Trash", "Junk")

    def __init__(self, host: str = LOOPBACK, port: int | None = None) -> None:
        self.host = host
        self.port = port or 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._config: Any = None
        self._login: Any = None
        self._counter = 0
        self._lock = threading.Lock()

    def _run(self, coro: Coroutine[Any, Any, _T], timeout: float = 30.0) -> _T:
        if self._loop is None:
            raise RuntimeError("pymap server is not running")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def start(self, timeout: float = 10.0) -> None:
        if self.port == 0:
            self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="pymap", daemon=True)
        self._thread.start()
        try:
            self._run(self._start(), timeout)
        except BaseException as exc:
            self.stop()
            raise ServerStartError(f"pymap did not start on port {self.port}: {exc}") from exc
        if not wait_for_greeting(self.host, self.port, timeout=timeout):
            self.stop()
            raise ServerStartError(f"pymap did not answer on port {self.port}")

    async def _start(self) -> None:
        # Imported here so that merely importing this module stays cheap.
        from pymap.backend.dict import Config, DictBackend, Login
        from pymap.concurrent import Subsystem
        from pymap.imap import IMAPService
        from pysasl.hashing import Cleartext

        class _Config(Config):
            @property
            def greeting(self) -> bytes:
                # The default asks socket.getfqdn() on every connection: slow without DNS.
                return b"Server ready pymap"

        args = Namespace(debug=False, passlib_cfg=None, proxy_protocol=None, inherited_sockets=None)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pymap-cpu")
        config = _Config(
            args,
            host=self.host,
            port=self.port,
            demo_data=False,
            demo_user="demouser",
            demo_password=secrets.token_urlsafe(12),
            tls_enabled=False,
            hash_context=Cleartext(),
            invalid_user_sleep=0.0,
            reject_dnsbl=False,
            cpu_subsystem=Subsystem.for_threading(self._executor),
        )
        config.apply_context()
        login = Login(config)
        backend = DictBackend(login, config)
        self._config, self._login = config, login
        self._stack = contextlib.AsyncExitStack()
        await backend.start(self._stack)
        await IMAPService(backend, config).start(self._stack)

    def stop(self, timeout: float = 10.0) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if self._stack is not None and loop.is_running():
            with contextlib.suppress(Exception):
                self._run(self._shutdown(), timeout)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        loop.close()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        self._loop = self._thread = self._stack = self._executor = None

    async def _shutdown(self) -> None:
        if self._stack is not None:
            await self._stack.aclose()
        current = asyncio.current_task()
        tasks = [task for task in asyncio.all_tasks() if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

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

    def add_user(self, username: str | None = None, password: str | None = None) -> tuple[str, str]:
        """Add a user whose mailbox has INBOX plus FOLDERS (subscribed)."""
        with self._lock:
            if username is None:
                self._counter += 1
                username = f"p{self._counter:04d}"
        password = password or secrets.token_urlsafe(12)
        self._run(self._add_user(username, password))
        return username, password

    async def _add_user(self, username: str, password: str) -> None:
        from pymap.backend.dict.filter import FilterSet
        from pymap.backend.dict.mailbox import MailboxSet
        from pymap.user import UserMetadata

        config = self._config
        if username in self._login.users_dict:
            raise ValueError(f"duplicate username {username!r}")
        self._login.users_dict[username] = UserMetadata(config, username, password=password)
        mailbox_set = MailboxSet()
        for name in self.FOLDERS:
            await mailbox_set.add_mailbox(name)
            await mailbox_set.set_subscribed(name, True)
        config.set_cache[username] = (mailbox_set, FilterSet())

    def remove_user(self, username: str) -> None:
        """Forget a user and all of its mail (frees the memory)."""
        self._run(self._remove_user(username))

    async def _remove_user(self, username: str) -> None:
        self._login.users_dict.pop(username, None)
        self._config.set_cache.pop(username, None)

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
