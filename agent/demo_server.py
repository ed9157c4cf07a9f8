"""An in-memory IMAP server (pymap) on loopback, for `followup demo` and the test suite.

pymap is an optional dependency (the ``demo`` extra); nothing here imports it before a server
is started, so importing this module is cheap and safe without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import secrets
import socket
import threading
from argparse import Namespace
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any, ClassVar, Self, TypeVar

from agent.errors import UsageError

LOOPBACK = "127.0.0.1"
_T = TypeVar("_T")


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_greeting(
    host: str, port: int, *, prefix: bytes = b"* OK", timeout: float = 1.0
) -> bool:
    """True when a server accepts on host:port and its first line starts with prefix."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            return sock.recv(1024).startswith(prefix)
    except OSError:
        return False


class ServerStartError(RuntimeError):
    """A server did not come up; the message says why (for tests: with its log tail)."""


def require_pymap() -> None:
    """Raise a one-line UsageError when the optional pymap package is missing."""
    if importlib.util.find_spec("pymap") is None:
        raise UsageError("the demo needs the pymap package: install followup-agent[demo] "
                         "(pip install 'followup-agent[demo]')")


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
        require_pymap()
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
        # Imported here so that merely importing this module stays cheap (and works without
        # the optional dependency).
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
