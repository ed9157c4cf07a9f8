"""Shared fixtures: real IMAP/SMTP servers on loopback, per-test isolation, Hypothesis profiles."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import keyring
import pytest
from hypothesis import settings

from tests.servers import (
    ALL_PERSONALITIES,
    PERSONALITIES,
    Cyrus,
    Dovecot,
    ImapAccount,
    MemoryKeyring,
    PymapServer,
    SmtpSink,
    TlsFiles,
    find_cyrus,
    find_dovecot,
    make_self_signed_cert,
)

REPO = Path(__file__).resolve().parent.parent

# Tests that need one of these fixtures talk to a real server: marked `integration`.
SERVER_FIXTURES = frozenset(
    {
        "dovecot_server",
        "dovecot_account",
        "make_dovecot_account",
        "pymap_server",
        "pymap_account",
        "imap_account",
        "smtp_sink",
        "smtp_sink_tls",
        "cyrus_server",
        "cyrus_account",
        "personality_account",
    }
)


def _flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0", "false", "no")


# --------------------------------------------------------------------------- hypothesis

settings.register_profile("ci", deadline=None, derandomize=True, max_examples=200, print_blob=True)
settings.register_profile("dev", deadline=None, max_examples=50)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE")
    or ("ci" if _flag("CI") or _flag("FOLLOWUP_REQUIRE_SERVERS") else "dev")
)


# --------------------------------------------------------------------------- pytest hooks


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: takes more than a second or two")
    config.addinivalue_line("markers", "integration: talks to a real server on loopback")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


def servers_unavailable(reason: str) -> NoReturn:
    """Skip a test that needs a server; fail instead when FOLLOWUP_REQUIRE_SERVERS=1."""
    if _flag("FOLLOWUP_REQUIRE_SERVERS"):
        pytest.fail(f"{reason} (and FOLLOWUP_REQUIRE_SERVERS is set)", pytrace=False)
    pytest.skip(reason)


# --------------------------------------------------------------------------- isolation


@pytest.fixture(autouse=True)
def _isolated_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """No test reads or writes the real config, data dirs, keyring or credentials."""
    base = tmp_path_factory.mktemp("env")
    monkeypatch.setenv("FOLLOWUP_CONFIG", str(base / "config" / "followup" / "config.toml"))
    for name, sub in (
        ("XDG_CONFIG_HOME", "config"),
        ("XDG_DATA_HOME", "data"),
        ("XDG_STATE_HOME", "state"),
        ("XDG_CACHE_HOME", "cache"),
    ):
        monkeypatch.setenv(name, str(base / sub))
    for name in ("FOLLOWUP_IMAP_PASSWORD", "FOLLOWUP_SMTP_PASSWORD", "FOLLOWUP_NOW"):
        monkeypatch.delenv(name, raising=False)
    # The dotted path is importable here (pytest puts the repository root on sys.path for
    # the `tests` package) and, through PYTHONPATH, in `followup` subprocesses.
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "tests.servers.MemoryKeyring")
    pythonpath = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), pythonpath])))
    MemoryKeyring.clear()
    # keyring caches its backend on first use; pin ours whatever happened before.
    keyring.set_keyring(MemoryKeyring())
    yield
    MemoryKeyring.clear()


@pytest.fixture
def memory_keyring() -> MemoryKeyring:
    """The in-memory keyring every test runs with (empty at test start)."""
    backend = keyring.get_keyring()
    assert isinstance(backend, MemoryKeyring)
    return backend


# --------------------------------------------------------------------------- servers


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """One self-signed certificate per session, shared by Dovecot and the SMTP sink."""
    if shutil.which("openssl") is None:
        servers_unavailable("openssl is not installed")
    return make_self_signed_cert(tmp_path_factory.mktemp("tls"))


class DovecotPool:
    """One Dovecot per personality, started on first use, stopped at session end."""

    def __init__(self, tls: TlsFiles, binary: str) -> None:
        self._tls = tls
        self._binary = binary
        self._servers: dict[str, Dovecot] = {}
        self._lock = threading.Lock()

    def get(self, personality: str = "standard") -> Dovecot:
        with self._lock:
            server = self._servers.get(personality)
            if server is None:
                server = Dovecot(self._tls, PERSONALITIES[personality], binary=self._binary)
                server.start()
                self._servers[personality] = server
            return server

    def stop(self) -> None:
        # In parallel: each Dovecot takes ~1 s to exit (its log process lingers).
        with self._lock:
            stoppers = [threading.Thread(target=server.stop) for server in self._servers.values()]
            for thread in stoppers:
                thread.start()
            for thread in stoppers:
                thread.join()
            self._servers.clear()


@pytest.fixture(scope="session")
def dovecot_pool(tls_files: TlsFiles) -> Iterator[DovecotPool]:
    binary = find_dovecot()
    if binary is None:
        servers_unavailable("dovecot is not installed (Debian: apt-get install dovecot-imapd)")
    if os.geteuid() != 0:
        servers_unavailable("the Dovecot test server needs root (it runs as dovenull/dovecot/mail)")
    pool = DovecotPool(tls_files, binary)
    yield pool
    pool.stop()


@pytest.fixture(scope="session")
def dovecot_server(dovecot_pool: DovecotPool) -> Dovecot:
    """The session's Dovecot with the standard personality."""
    return dovecot_pool.get("standard")


@pytest.fixture
def dovecot_account(dovecot_server: Dovecot) -> ImapAccount:
    """A fresh, empty user on the standard Dovecot."""
    return dovecot_server.new_account()


@pytest.fixture
def make_dovecot_account(dovecot_pool: DovecotPool) -> Callable[[str], ImapAccount]:
    """make_dovecot_account("german") -> a fresh user on that personality's Dovecot."""

    def make(personality: str = "standard") -> ImapAccount:
        return dovecot_pool.get(personality).new_account()

    return make


@pytest.fixture(scope="session")
def pymap_server() -> Iterator[PymapServer]:
    with PymapServer() as server:
        yield server


@pytest.fixture
def pymap_account(pymap_server: PymapServer) -> Iterator[ImapAccount]:
    """A fresh user on the session's in-memory pymap server (forgotten afterwards)."""
    account = pymap_server.new_account()
    yield account
    pymap_server.remove_user(account.username)


@pytest.fixture(params=["dovecot", "pymap"], ids=["dovecot", "pymap"])
def imap_account(request: pytest.FixtureRequest) -> ImapAccount:
    """The contract-suite account: the test runs once on Dovecot and once on pymap."""
    account = request.getfixturevalue(f"{request.param}_account")
    assert isinstance(account, ImapAccount)
    return account


@pytest.fixture(scope="session")
def cyrus_server() -> Iterator[Cyrus]:
    """The session's Cyrus IMAP (plaintext loopback, SPECIAL-USE folders)."""
    if find_cyrus() is None:
        servers_unavailable(
            "Cyrus IMAP is not installed (Debian: apt-get install cyrus-common sasl2-bin, "
            "then unpack cyrus-imapd's imapd, see .ci/run)"
        )
    if os.geteuid() != 0:
        servers_unavailable("the Cyrus test server needs root (it runs as the cyrus user)")
    with Cyrus() as server:
        yield server


@pytest.fixture
def cyrus_account(cyrus_server: Cyrus) -> ImapAccount:
    """A fresh user on the session's Cyrus."""
    return cyrus_server.new_account()


@pytest.fixture(params=ALL_PERSONALITIES)
def personality_account(request: pytest.FixtureRequest) -> ImapAccount:
    """A fresh account on each server personality in turn (one server per personality)."""
    name = request.param
    if name in ("pymap", "cyrus"):
        account = request.getfixturevalue(f"{name}_account")
    else:
        account = request.getfixturevalue("make_dovecot_account")(name)
    assert isinstance(account, ImapAccount)
    return account


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """A plaintext SMTP server without AUTH that records what it receives."""
    with SmtpSink() as sink:
        yield sink


@pytest.fixture
def smtp_sink_tls(tls_files: TlsFiles) -> Iterator[SmtpSink]:
    """An SMTP sink that requires STARTTLS (the session cert) and AUTH as sink.username."""
    password = "sink-" + os.urandom(6).hex()
    with SmtpSink(tls=tls_files, username="digest@example.org", password=password) as sink:
        yield sink
