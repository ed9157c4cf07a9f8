"""Shared fixtures: real IMAP/SMTP servers on loopback, per-test isolation, Hypothesis profiles."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import keyring
import pytest
from hypothesis import settings

from tests.carddav_server import CardDavAccount, Radicale
from tests.kit import flag, servers_unavailable
from tests.servers.account import ImapAccount
from tests.servers.base import ImapServer, ServerUnavailable
from tests.servers.cyrus import Cyrus
from tests.servers.dovecot import Dovecot
from tests.servers.keyring import MemoryKeyring
from tests.servers.personalities import ALL_PERSONALITIES
from tests.servers.pool import ServerPool
from tests.servers.pymap import PymapServer
from tests.servers.smtp import SmtpSink
from tests.servers.tls import TlsFiles

REPO = Path(__file__).resolve().parent.parent
_T = TypeVar("_T")

# Tests that need one of these fixtures talk to a real server: marked `integration`.
SERVER_FIXTURES = frozenset(
    {
        "server_pool",
        "dovecot_server",
        "dovecot_account",
        "make_account",
        "pymap_server",
        "pymap_account",
        "imap_account",
        "smtp_sink",
        "smtp_sink_tls",
        "cyrus_server",
        "cyrus_account",
        "personality_account",
        "carddav_account",
        "carddav_tls_account",
    }
)


# --------------------------------------------------------------------------- hypothesis

settings.register_profile("ci", deadline=None, derandomize=True, max_examples=200, print_blob=True)
settings.register_profile("dev", deadline=None, max_examples=50)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE")
    or ("ci" if flag("CI") or flag("FOLLOWUP_REQUIRE_SERVERS") else "dev")
)


# --------------------------------------------------------------------------- pytest hooks


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: takes more than a second or two")
    config.addinivalue_line("markers", "integration: talks to a real server on loopback")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


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
    for name in ("FOLLOWUP_IMAP_PASSWORD", "FOLLOWUP_SMTP_PASSWORD", "FOLLOWUP_CARDDAV_PASSWORD",
                 "FOLLOWUP_NOW"):
        monkeypatch.delenv(name, raising=False)
    # The dotted path is importable here (pytest puts the repository root on sys.path for
    # the `tests` package) and, through PYTHONPATH, in `followup` subprocesses.
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "tests.servers.keyring.MemoryKeyring")
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


def available(get: Callable[..., _T], *args: str) -> _T:
    """``get(*args)``, or skip (fail under FOLLOWUP_REQUIRE_SERVERS) if the server is missing."""
    try:
        return get(*args)
    except ServerUnavailable as exc:
        servers_unavailable(str(exc))


@pytest.fixture(scope="session")
def server_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerPool]:
    """Every server the session needs, one per personality, stopped at session end."""
    pool = ServerPool(tmp_path_factory.mktemp("tls"))
    yield pool
    pool.stop()


@pytest.fixture(scope="session")
def tls_files(server_pool: ServerPool) -> TlsFiles:
    """One self-signed certificate per session, shared by Dovecot and the SMTP sink."""
    return available(server_pool.tls)


@pytest.fixture(scope="session")
def dovecot_server(server_pool: ServerPool) -> Dovecot:
    """The session's Dovecot with the standard personality."""
    server = available(server_pool.get, "standard")
    assert isinstance(server, Dovecot)
    return server


@pytest.fixture(scope="session")
def pymap_server(server_pool: ServerPool) -> PymapServer:
    """The session's in-memory pymap server."""
    server = available(server_pool.get, "pymap")
    assert isinstance(server, PymapServer)
    return server


@pytest.fixture(scope="session")
def cyrus_server(server_pool: ServerPool) -> Cyrus:
    """The session's Cyrus IMAP (plaintext loopback, SPECIAL-USE folders)."""
    server = available(server_pool.get, "cyrus")
    assert isinstance(server, Cyrus)
    return server


@pytest.fixture
def make_account(server_pool: ServerPool) -> Iterator[Callable[[str], ImapAccount]]:
    """make_account("german") -> a fresh user on that personality's server (any of
    ALL_PERSONALITIES); what it used is freed after the test."""
    made: list[tuple[ImapServer, ImapAccount]] = []

    def make(personality: str = "standard") -> ImapAccount:
        server = available(server_pool.get, personality)
        account = server.new_account()
        made.append((server, account))
        return account

    yield make
    for server, account in made:
        server.forget(account)


@pytest.fixture
def dovecot_account(make_account: Callable[[str], ImapAccount]) -> ImapAccount:
    """A fresh, empty user on the standard Dovecot."""
    return make_account("standard")


@pytest.fixture
def pymap_account(make_account: Callable[[str], ImapAccount]) -> ImapAccount:
    """A fresh user on the session's in-memory pymap server (forgotten afterwards)."""
    return make_account("pymap")


@pytest.fixture
def cyrus_account(make_account: Callable[[str], ImapAccount]) -> ImapAccount:
    """A fresh user on the session's Cyrus."""
    return make_account("cyrus")


@pytest.fixture(params=["dovecot", "pymap"])
def imap_account(request: pytest.FixtureRequest,
                 make_account: Callable[[str], ImapAccount]) -> ImapAccount:
    """The contract-suite account: the test runs once on Dovecot and once on pymap."""
    return make_account("standard" if request.param == "dovecot" else "pymap")


@pytest.fixture(params=ALL_PERSONALITIES)
def personality_account(request: pytest.FixtureRequest,
                        make_account: Callable[[str], ImapAccount]) -> ImapAccount:
    """A fresh account on each server personality in turn (one server per personality)."""
    return make_account(request.param)


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


# --------------------------------------------------------------------------- CardDAV


@pytest.fixture(scope="session")
def radicale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Radicale]:
    """The session's Radicale (CardDAV) on loopback, plain HTTP, passwords in htpasswd."""
    server = Radicale(tmp_path_factory.mktemp("radicale"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def radicale_tls(tmp_path_factory: pytest.TempPathFactory,
                 tls_files: TlsFiles) -> Iterator[Radicale]:
    """A second Radicale speaking only HTTPS, with the session's self-signed certificate."""
    server = Radicale(tmp_path_factory.mktemp("radicale-tls"), tls=tls_files)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def carddav_account(radicale: Radicale) -> CardDavAccount:
    """A fresh user with an empty address book on the session's Radicale."""
    return radicale.new_account()


@pytest.fixture
def carddav_tls_account(radicale_tls: Radicale) -> CardDavAccount:
    return radicale_tls.new_account()
