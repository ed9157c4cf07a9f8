"""The life cycle every test IMAP server shares: start with retries, wait for the greeting,
stop, hand out fresh accounts, show its log tail; usable as a context manager.

Dovecot and Cyrus run as a master process in a private temp dir (`MasterProcessServer`);
pymap runs in a thread of this process. A test asks a server for `new_account()` and never
needs to know which one it has.
"""

from __future__ import annotations

import abc
import atexit
import contextlib
import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Self

from agent.demo_server import LOOPBACK, ServerStartError, free_port, wait_for_greeting
from tests.servers.account import ImapAccount, ServerKind, rebuild_folder

__all__ = ["LOOPBACK", "ImapServer", "LoopbackService", "MasterProcessServer",
           "ServerStartError", "ServerUnavailable", "free_port"]

log = logging.getLogger(__name__)

# A user name becomes part of file paths and passwd-file lines: keep it plain.
USERNAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


class ServerUnavailable(Exception):
    """This machine cannot run a server; the message says why and how to fix that."""


def make_private_dir(prefix: str, parent: str = "/tmp") -> Path:
    """A fresh directory, traversable by the server's unprivileged processes."""
    # Short path under /tmp: Dovecot's Unix sockets must fit in ~108 bytes. The auth
    # and login processes run as other users, so the directory must be traversable.
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    path.chmod(0o755)
    return path


class LoopbackService:
    """Something a test starts on loopback and stops afterwards; `with` does both."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

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


class ImapServer(LoopbackService, abc.ABC):
    """An IMAP server on loopback that hands out fresh, isolated accounts.

    A subclass says how to start once (`_start_once`, raising ServerStartError when the
    server does not come up), how to stop (`_stop`, idempotent) and how to add a user.
    """

    kind: ClassVar[ServerKind]
    #: The first letter of generated user names (t0001, c0001, …).
    user_prefix: ClassVar[str]
    #: Folder names of a new account: (sent, drafts, trash, junk).
    folders: ClassVar[tuple[str, str, str, str]] = ("Sent", "Drafts", "Trash", "Junk")

    def __init__(self) -> None:
        self.host = LOOPBACK
        self.port = 0
        self._counter = 0
        self._lock = threading.Lock()

    @classmethod
    def unavailable(cls) -> str | None:
        """Why this machine cannot run the server (and how to fix that), or None."""
        return None

    # lifecycle ----------------------------------------------------------

    def start(self, timeout: float = 15.0, attempts: int = 3) -> None:
        """Start the server; retried (with fresh ports) if one was taken meanwhile."""
        for attempt in range(1, attempts + 1):
            try:
                self._start_once(timeout)
            except ServerStartError:
                self.stop()
                if attempt == attempts:
                    raise
                log.warning("%s did not start (attempt %d), retrying", self.kind, attempt,
                            exc_info=True)
            else:
                # Last line of defence against orphaned servers if the test run dies
                # without reaching its teardown; stop() is idempotent.
                atexit.register(self.stop)
                return

    @abc.abstractmethod
    def _start_once(self, timeout: float) -> None:
        """Start on fresh ports; raise ServerStartError (with the log tail) on failure."""

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server and remove what it left behind; safe to call twice."""
        atexit.unregister(self.stop)
        self._stop(timeout)

    @abc.abstractmethod
    def _stop(self, timeout: float) -> None: ...

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the server's log ("" where it keeps none)."""
        return ""

    # accounts -----------------------------------------------------------

    @abc.abstractmethod
    def add_user(self, username: str | None = None, password: str | None = None
                 ) -> tuple[str, str]:
        """Add a user (a generated name and password by default); (username, password)."""

    def _new_username(self, username: str | None) -> str:
        with self._lock:
            if username is None:
                self._counter += 1
                username = f"{self.user_prefix}{self._counter:04d}"
        if not USERNAME.fullmatch(username):
            raise ValueError(f"bad username {username!r}")
        return username

    def new_account(self) -> ImapAccount:
        """A fresh, empty user on this server."""
        username, password = self.add_user()
        return self.account(username, password)

    def account(self, username: str, password: str) -> ImapAccount:
        """The ImapAccount of an existing user (plaintext loopback, the standard folders)."""
        sent, drafts, trash, junk = self.folders
        return ImapAccount(
            kind=self.kind,
            host=self.host,
            port=self.port,
            tls_port=None,
            username=username,
            password=password,
            ca_file=None,
            sent_folder=sent,
            drafts_folder=drafts,
            trash_folder=trash,
            junk_folder=junk,
            personality=self.kind,
            uidvalidity_changer=rebuild_folder,
        )

    def forget(self, account: ImapAccount) -> None:
        """Free what a test's account used (a no-op where accounts cost nothing)."""


class MasterProcessServer(ImapServer):
    """A server run as one master process, everything in a private temp dir `root`.

    `_start_once` prepares `root` and calls `_spawn`; `_stop` ends the master (SIGTERM,
    then SIGKILL to its process group) and removes `root`.
    """

    #: Files under `root` that `log_tail` shows, in this order.
    log_files: ClassVar[tuple[str, ...]]
    #: Where, under `root`, the server keeps its users' messages (one file each).
    mail_dir: ClassVar[str]
    #: Its own files there (indexes, caches), by the start of their names.
    own_files: ClassVar[tuple[str, ...]]

    def __init__(self) -> None:
        super().__init__()
        self.root: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    def _path(self, *parts: str) -> Path:
        if self.root is None:
            raise RuntimeError(f"{self.kind} is not running")
        return self.root.joinpath(*parts)

    def message_file(self, needle: bytes) -> Path:
        """The file of the one stored message that holds ``needle`` (its Message-ID, say):
        what a test makes unreadable to see the server fail on that message."""
        found = [path for path in self._path(self.mail_dir).rglob("*")
                 if path.is_file() and not path.name.startswith(self.own_files)
                 and needle in path.read_bytes()]
        if len(found) != 1:
            raise LookupError(f"{len(found)} message files hold {needle!r}")
        return found[0]

    def _spawn(self, argv: list[str], output: str, timeout: float,
               env: dict[str, str] | None = None) -> None:
        """Start the master with stdout/stderr into `root/output`; wait for its greeting."""
        with self._path(output).open("wb") as out:
            self._process = process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                env=env,
                # Own process group: a Ctrl-C in the test run must not skip our stop().
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise ServerStartError(
                    f"{self.kind} exited with status {process.returncode}:\n{self.log_tail()}")
            if wait_for_greeting(self.host, self.port, timeout=0.5):
                return
            time.sleep(0.05)
        raise ServerStartError(f"{self.kind} did not answer on port {self.port} within "
                               f"{timeout}s:\n{self.log_tail()}")

    def _stop(self, timeout: float) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()  # the master ends its children
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s master %d ignored SIGTERM; killing its process group",
                            self.kind, process.pid)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout)
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def log_tail(self, lines: int = 40) -> str:
        text = ""
        for name in self.log_files:
            with contextlib.suppress(OSError, RuntimeError):
                text += self._path(name).read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])
