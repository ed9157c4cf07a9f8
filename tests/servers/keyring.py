"""An in-memory keyring backend, so no test ever touches the system keyring."""

from __future__ import annotations

import threading
from typing import ClassVar

from keyring.backend import KeyringBackend
from keyring.compat import properties
from keyring.errors import PasswordDeleteError


class MemoryKeyring(KeyringBackend):
    """A keyring that lives in a dict, so tests never touch the system keyring.

    Select it with ``PYTHON_KEYRING_BACKEND=tests.servers.keyring.MemoryKeyring``. The
    store is shared by all instances (keyring instantiates the class itself), so tests
    inspect and reset it through the class methods.
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
