"""The package's embedded pymap server (agent.demo_server) on the test servers' base class."""

from __future__ import annotations

import importlib.util

from agent.demo_server import PymapServer as EmbeddedPymapServer
from tests.servers.account import ImapAccount
from tests.servers.base import ImapServer


class PymapServer(ImapServer):
    """pymap's in-memory backend in a thread of this process: fast enough per test.

    The server itself is the one `followup demo` uses; this adds the shared life cycle
    (retries on a fresh port) and accounts. With `port`, it always listens there (a test
    that brings a server up late on a port followup already knows).
    """

    kind = "pymap"
    user_prefix = "p"

    def __init__(self, port: int | None = None) -> None:
        super().__init__()
        self._fixed_port = port
        self._embedded: EmbeddedPymapServer | None = None

    @classmethod
    def unavailable(cls) -> str | None:
        if importlib.util.find_spec("pymap") is None:
            return "pymap is not installed (pip install 'followup-agent[demo]')"
        return None

    def _start_once(self, timeout: float) -> None:
        self._embedded = EmbeddedPymapServer(self.host, self._fixed_port)
        self._embedded.start(timeout)
        self.port = self._embedded.port

    def _stop(self, timeout: float) -> None:
        embedded, self._embedded = self._embedded, None
        if embedded is not None:
            embedded.stop(timeout)

    def _running(self) -> EmbeddedPymapServer:
        if self._embedded is None:
            raise RuntimeError("pymap is not running")
        return self._embedded

    def add_user(self, username: str | None = None, password: str | None = None
                 ) -> tuple[str, str]:
        """Add a user whose mailbox has INBOX, Sent, Drafts, Trash and Junk (subscribed)."""
        return self._running().add_user(self._new_username(username), password)

    def remove_user(self, username: str) -> None:
        """Forget a user and all of its mail (frees the memory)."""
        self._running().remove_user(username)

    def forget(self, account: ImapAccount) -> None:
        self.remove_user(account.username)
