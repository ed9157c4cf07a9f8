"""One running server per personality for a whole test session, started on first use."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

from tests.servers.base import ImapServer, ServerUnavailable
from tests.servers.cyrus import Cyrus
from tests.servers.dovecot import Dovecot
from tests.servers.personalities import PERSONALITIES
from tests.servers.pymap import PymapServer
from tests.servers.tls import TlsFiles, make_self_signed_cert


class ServerPool:
    """Servers by personality: the Dovecot layouts of PERSONALITIES, "pymap" and "cyrus".

    `get` starts a server the first time it is asked for, or raises ServerUnavailable when
    this machine cannot run it; `stop` ends them all. One self-signed certificate (made on
    first use, in `tls_dir`) serves every Dovecot and the SMTP sink.
    """

    def __init__(self, tls_dir: Path) -> None:
        self._tls_dir = tls_dir
        self._tls: TlsFiles | None = None
        self._servers: dict[str, ImapServer] = {}
        self._lock = threading.RLock()

    def tls(self) -> TlsFiles:
        with self._lock:
            if self._tls is None:
                if shutil.which("openssl") is None:
                    raise ServerUnavailable("openssl is not installed")
                self._tls = make_self_signed_cert(self._tls_dir)
            return self._tls

    def get(self, personality: str = "standard") -> ImapServer:
        with self._lock:
            server = self._servers.get(personality)
            if server is None:
                server = self._make(personality)
                server.start()
                self._servers[personality] = server
            return server

    def _make(self, personality: str) -> ImapServer:
        if personality not in (*PERSONALITIES, "pymap", "cyrus"):
            raise ValueError(f"no server personality {personality!r}")
        kind: type[ImapServer] = {"pymap": PymapServer, "cyrus": Cyrus}.get(personality, Dovecot)
        reason = kind.unavailable()
        if reason is not None:
            raise ServerUnavailable(reason)
        if personality == "pymap":
            return PymapServer()
        if personality == "cyrus":
            return Cyrus()
        return Dovecot(self.tls(), PERSONALITIES[personality])

    def stop(self) -> None:
        # In parallel: each Dovecot takes ~1 s to exit (its log process lingers).
        with self._lock:
            stoppers = [threading.Thread(target=server.stop) for server in self._servers.values()]
            for thread in stoppers:
                thread.start()
            for thread in stoppers:
                thread.join()
            self._servers.clear()
