"""A real CardDAV server for tests: Radicale 3 in this process, on loopback, with passwords.

One server per session (plain HTTP, and one with TLS on first use); every test gets a user
of its own (``new_account``), whose address book ``/USER/contacts/`` Radicale creates at the
first login. The test puts, changes and deletes cards over HTTP like any CardDAV client.
"""

from __future__ import annotations

import os
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.servers.tls import TlsFiles


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class CardDavAccount:
    """One user on the test Radicale, and a plain client to change their cards with."""

    base: str  # the server root, e.g. http://127.0.0.1:5232/
    username: str
    password: str
    ca_file: Path | None

    @property
    def collection(self) -> str:
        return f"{self.base}{self.username}/contacts/"

    def _client(self) -> httpx.Client:
        verify: bool | ssl.SSLContext = True
        if self.ca_file is not None:
            verify = ssl.create_default_context(cafile=str(self.ca_file))
        return httpx.Client(auth=(self.username, self.password), verify=verify, timeout=10)

    def put(self, name: str, card: str) -> str:
        """Create or replace ``name`` (e.g. ``anna.vcf``) in the address book; its ETag."""
        with self._client() as client:
            response = client.put(self.collection + name, content=card.encode(),
                                  headers={"Content-Type": "text/vcard; charset=utf-8"})
        assert response.status_code in (201, 204), (response.status_code, response.text)
        return response.headers.get("ETag", "")

    def delete(self, name: str) -> None:
        with self._client() as client:
            response = client.delete(self.collection + name)
        assert response.status_code in (200, 204), (response.status_code, response.text)

    def touch(self) -> None:
        """Log in once, so that Radicale creates the user's address book."""
        with self._client() as client:
            response = client.request("PROPFIND", self.collection, headers={"Depth": "0"})
        assert response.status_code == 207, response.status_code


class Radicale:
    """Radicale serving ``root`` on a free loopback port, in a thread of this process."""

    def __init__(self, root: Path, tls: TlsFiles | None = None) -> None:
        self.root = root
        self.tls = tls
        self.port = free_port()
        self.users = root / "users"
        self._stop: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._count = 0

    @property
    def base(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}/"

    def start(self) -> None:
        from radicale import config, server

        self.root.mkdir(parents=True, exist_ok=True)
        self.users.write_text("")
        ssl_lines = ""
        if self.tls is not None:
            ssl_lines = (f"ssl = True\ncertificate = {self.tls.cert_file}\n"
                         f"key = {self.tls.key_file}\n")
        path = self.root / "config"
        path.write_text(f"""
[server]
hosts = 127.0.0.1:{self.port}
{ssl_lines}
[auth]
type = htpasswd
htpasswd_filename = {self.users}
htpasswd_encryption = plain
delay = 0
[rights]
type = owner_only
[storage]
filesystem_folder = {self.root / "collections"}
predefined_collections = {{"contacts": {{"tag": "VADDRESSBOOK", "D:displayname": "Contacts"}}}}
[logging]
level = warning
""")
        conf = config.load([(str(path), False)])
        self._stop, stop_server = socket.socketpair()
        self._thread = threading.Thread(target=server.serve, args=(conf, stop_server),
                                        daemon=True, name="radicale")
        self._thread.start()
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("Radicale did not start within 10 s") from None
                time.sleep(0.02)

    def stop(self) -> None:
        if self._stop is not None:
            self._stop.close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def new_account(self) -> CardDavAccount:
        """A user of its own with a unique password, and their (empty) address book."""
        self._count += 1
        username = f"user{self._count}"
        password = "dav-" + os.urandom(8).hex()
        with self.users.open("a") as users:
            users.write(f"{username}:{password}\n")
        account = CardDavAccount(self.base, username, password,
                                 self.tls.cert_file if self.tls else None)
        account.touch()
        return account
