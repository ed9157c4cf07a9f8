"""`followup run` with an injected clock: DST, catch-up, backoff, signals, the lock."""

from __future__ import annotations

import functools
import itertools
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from agent import service
from agent.config import Config, load_config
from agent.daemon import Backoff, Daemon, digest_moment
from agent.errors import CredentialError
from agent.store import Store
from agent.store.database import exclusive_lock
from tests.kit import ME, followup_process, message, run_cli, write_config
from tests.servers.account import ImapAccount
from tests.servers.base import free_port
from tests.servers.pymap import PymapServer

BERLIN = ZoneInfo("Europe/Berlin")


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN)  # type: ignore[misc]


class FakeClock:
    """The daemon's clock and sleep: sleeping moves the clock, and ``hooks`` run after."""

    def __init__(self, start: datetime) -> None:
        self.now = start.astimezone(UTC)
        self.hooks: list[Callable[[], None]] = []
        self.naps: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.naps.append(seconds)
        self.now += timedelta(seconds=seconds)
        for hook in self.hooks:
            hook()

    def stop_at(self, daemon: Daemon, end: datetime) -> None:
        self.hooks.append(lambda: daemon.stop() if self.now >= end else None)


def seed(account: ImapAccount, now: datetime) -> None:
    """Three people: one overdue, one due soon, one fine (two-way each)."""
    items = []
    for number, days in enumerate((130, 80, 10)):
        person = f"person{number}@example.com"
        when = now - timedelta(days=days)
        items.append(("INBOX", message(sender=person, subject=f"Hi {number}",
                                       when=when - timedelta(days=1)), (), when))
        items.append((account.sent_folder, message(sender=ME, to=[person], subject=f"Re {number}",
                                                   when=when), ("\\Seen",), when))
    account.append_many(items)


def recording(calls: list[datetime], work: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(work)
    def wrapper(config: Config, now: datetime | None = None, **kwargs: Any) -> Any:
        assert now is not None
        calls.append(now)
        return work(config, now, **kwargs) if work is service.run_cycle else \
            work(config, now=now, **kwargs)
    return wrapper


def digests(config: Config) -> dict[str, datetime]:
    with sqlite3.connect(config.storage.path) as conn:
        rows = conn.execute("SELECT day, delivered_at FROM digests ORDER BY day").fetchall()
    return {day: datetime.fromtimestamp(at, UTC) for day, at in rows}


@pytest.fixture
def pymap_config(pymap_account: ImapAccount, tmp_path: Path,
                 monkeypatch: pytest.MonkeyPatch) -> Config:
    path = write_config(monkeypatch, pymap_account, tmp_path, extra="send_empty = true\n\n"
                        "[daemon]\nscan_interval = \"6h\"\n")
    return load_config(path)


# --------------------------------------------------------------------------- the digest moment


def test_digest_moment_is_local_time_on_dst_days() -> None:
    at = dtime(7, 30)
    # Clocks go forward on 2026-03-29 and back on 2026-10-25 in Europe/Berlin.
    assert digest_moment(date(2026, 3, 28), at, BERLIN) == datetime(2026, 3, 28, 6, 30, tzinfo=UTC)
    assert digest_moment(date(2026, 3, 29), at, BERLIN) == datetime(2026, 3, 29, 5, 30, tzinfo=UTC)
    assert digest_moment(date(2026, 10, 24), at, BERLIN) == datetime(2026, 10, 24, 5, 30,
                                                                     tzinfo=UTC)
    assert digest_moment(date(2026, 10, 25), at, BERLIN) == datetime(2026, 10, 25, 6, 30,
                                                                     tzinfo=UTC)
    # 02:30 does not exist on 2026-03-29: it is served at 03:30 local, once.
    gap = digest_moment(date(2026, 3, 29), dtime(2, 30), BERLIN)
    assert gap.astimezone(BERLIN).strftime("%H:%M %Z") == "03:30 CEST"
    # 02:30 exists twice on 2026-10-25: the first one.
    twice = digest_moment(date(2026, 10, 25), dtime(2, 30), BERLIN)
    assert twice.astimezone(BERLIN).strftime("%H:%M %Z") == "02:30 CEST"


def test_backoff_doubles_up_to_fifteen_minutes() -> None:
    backoff = Backoff()
    assert [backoff.next_delay() for _ in range(7)] == [60, 120, 240, 480, 900, 900, 900]
    backoff.reset()
    assert backoff.next_delay() == 60


# --------------------------------------------------------------------------- the schedule


@pytest.mark.parametrize(("start", "expected"), [
    # Saturday before and the Sunday of the spring change, then Monday.
    (berlin(2026, 3, 28, 0, 0), [datetime(2026, 3, 28, 6, 30, tzinfo=UTC),
                                 datetime(2026, 3, 29, 5, 30, tzinfo=UTC),
                                 datetime(2026, 3, 30, 5, 30, tzinfo=UTC)]),
    # ... and of the autumn change.
    (berlin(2026, 10, 24, 0, 0), [datetime(2026, 10, 24, 5, 30, tzinfo=UTC),
                                  datetime(2026, 10, 25, 6, 30, tzinfo=UTC),
                                  datetime(2026, 10, 26, 6, 30, tzinfo=UTC)]),
], ids=["march", "october"])
def test_digest_at_local_time_across_dst(pymap_account: ImapAccount, pymap_config: Config,
                                         start: datetime, expected: list[datetime]) -> None:
    seed(pymap_account, start)
    clock = FakeClock(start)
    cycles: list[datetime] = []
    scans: list[datetime] = []
    daemon = Daemon(pymap_config, now=clock, sleep=clock.sleep,
                    cycle=recording(cycles, service.run_cycle),
                    scan=recording(scans, service.run_scan))
    clock.stop_at(daemon, start + timedelta(days=2, hours=12))
    daemon.run()

    assert cycles == expected
    assert [c.astimezone(BERLIN).strftime("%H:%M") for c in cycles] == ["07:30"] * 3
    # One digest a day, delivered at the digest moment, and it is in the INBOX.
    delivered = digests(pymap_config)
    assert list(delivered.values()) == expected
    inbox = [m for m in pymap_account.fetch_raw("INBOX") if b"X-Followup-Digest" in m]
    assert len(inbox) == 3
    # Scans: one at start, then every 6 h counted from the last scan or cycle.
    assert scans[0] == start
    assert all(later - earlier >= timedelta(hours=6) - timedelta(minutes=1)
               for earlier, later in itertools.pairwise(scans))
    assert daemon.failures == 0
    assert max(clock.naps) <= 60


def test_catch_up_once_after_sleep_and_not_again_after_restart(
        pymap_account: ImapAccount, pymap_config: Config) -> None:
    start = berlin(2026, 5, 5, 6, 0)
    seed(pymap_account, start)
    clock = FakeClock(start)
    cycles: list[datetime] = []
    daemon = Daemon(pymap_config, now=clock, sleep=clock.sleep,
                    cycle=recording(cycles, service.run_cycle))
    slept = []

    def suspend() -> None:
        # The laptop lid closes at 06:01 and opens at 11:00: far past the 07:30 digest.
        if not slept:
            slept.append(True)
            clock.now = berlin(2026, 5, 5, 11, 0).astimezone(UTC)

    clock.hooks.append(suspend)
    clock.stop_at(daemon, berlin(2026, 5, 5, 20, 0))
    daemon.run()
    assert [c.astimezone(BERLIN) for c in cycles] == [berlin(2026, 5, 5, 11, 0)]

    # A restart later the same day (a reboot, systemd restarting it) does not run it again;
    # the next morning runs on time.
    clock = FakeClock(berlin(2026, 5, 5, 21, 0))
    cycles.clear()
    daemon = Daemon(pymap_config, now=clock, sleep=clock.sleep,
                    cycle=recording(cycles, service.run_cycle))
    clock.stop_at(daemon, berlin(2026, 5, 6, 9, 0))
    daemon.run()
    assert [c.astimezone(BERLIN) for c in cycles] == [berlin(2026, 5, 6, 7, 30)]
    assert sorted(digests(pymap_config)) == ["2026-05-05", "2026-05-06"]


def test_missed_days_are_not_replayed(pymap_account: ImapAccount, pymap_config: Config) -> None:
    """Down from Friday to Monday noon: one catch-up for Monday, none for the weekend."""
    with Store(pymap_config.storage.path) as store:
        store.journal.record_cycle(date(2026, 6, 5), berlin(2026, 6, 5, 7, 30))
    start = berlin(2026, 6, 8, 12, 0)
    seed(pymap_account, start)
    clock = FakeClock(start)
    cycles: list[datetime] = []
    daemon = Daemon(pymap_config, now=clock, sleep=clock.sleep,
                    cycle=recording(cycles, service.run_cycle))
    clock.stop_at(daemon, berlin(2026, 6, 8, 18, 0))
    daemon.run()
    assert cycles == [start.astimezone(UTC)]


def test_survives_the_server_going_away_and_coming_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """Nothing listens at first, then the server refuses the login, then all is well."""
    port = free_port()
    password = "demo-Pa55-" + os.urandom(4).hex()
    config = load_config(write_config(monkeypatch, None, tmp_path, host="127.0.0.1", port=port,
                                      username="later", timeout=5, extra='time = "07:30"\n'))
    monkeypatch.setenv("FOLLOWUP_IMAP_PASSWORD", password)

    start = berlin(2026, 2, 2, 5, 0)
    clock = FakeClock(start)
    daemon = Daemon(config, now=clock, sleep=clock.sleep)
    server = PymapServer(port=port)
    events: list[str] = []

    def world() -> None:
        if daemon.failures >= 2 and not events:
            server.start()  # the server is back, but does not know the user yet
            events.append("server up")
        elif daemon.failures >= 3 and len(events) == 1:
            server.add_user("later", password)
            with server_client(server, password) as client:
                client.append("INBOX", message(sender="anna@example.com", subject="Hallo"))
            events.append("user added")
        if daemon.scans:
            daemon.stop()

    clock.hooks.append(world)
    caplog.set_level(logging.INFO, logger="agent")
    try:
        daemon.run()
    finally:
        server.stop()

    assert events == ["server up", "user added"]
    assert daemon.failures == 3 and daemon.scans == 1
    warnings = [r.getMessage() for r in caplog.records if "failed:" in r.getMessage()]
    assert "refused the connection" in warnings[0] and "trying again in 1 min" in warnings[0]
    assert "trying again in 2 min" in warnings[1]
    assert "login as later" in warnings[2] and "trying again in 4 min" in warnings[2]
    assert password not in caplog.text
    with Store(config.storage.path) as store:
        assert store.ledger.message_count() == 1
    # Waited with growing pauses (plus the connection retries inside one attempt).
    assert clock.now - start > timedelta(minutes=7)


def server_client(server: PymapServer, password: str) -> Any:
    import imapclient

    client = imapclient.IMAPClient(server.host, port=server.port, ssl=False, timeout=10)
    client.login("later", password)
    return client


def test_config_and_credential_errors_stop_the_daemon(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    config = load_config(write_config(monkeypatch, None, tmp_path, host="127.0.0.1", port=port))
    clock = FakeClock(berlin(2026, 2, 2, 5, 0))
    daemon = Daemon(config, now=clock, sleep=clock.sleep)
    with pytest.raises(CredentialError, match="no IMAP password"):
        daemon.run()


# --------------------------------------------------------------------------- the CLI


def test_run_once_runs_one_cycle_and_records_it(
        pymap_account: ImapAccount, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    now = berlin(2026, 4, 14, 9, 0)
    seed(pymap_account, now)
    path = write_config(monkeypatch, pymap_account, tmp_path)
    code, out, err = run_cli(["--now", now.isoformat(), "run", "--once"], capsys)
    assert code == 0, out + err
    assert "scanned" in out
    assert "digest for 2026-04-14 delivered" in out
    assert "draft" in out
    with Store(load_config(path).storage.path) as store:
        assert store.journal.last_cycle_day() == date(2026, 4, 14)
    assert len(pymap_account.fetch_raw(pymap_account.drafts_folder)) >= 1


def test_second_daemon_on_one_database_stops_with_a_message(
        pymap_account: ImapAccount, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_config(monkeypatch, pymap_account, tmp_path)
    database = load_config(path).storage.path
    with exclusive_lock(database.with_name(database.name + ".run"), wait=0):
        started = time.monotonic()
        code, _, err = run_cli(["run"], capsys)
    assert code == 1
    assert "another `followup run` is already running" in err
    assert time.monotonic() - started < 10


def test_run_once_waits_briefly_for_a_busy_database_then_says_so(
        pymap_account: ImapAccount, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_config(monkeypatch, pymap_account, tmp_path)
    monkeypatch.setattr(service, "working", functools.partial(service.working, wait=0.5))
    with exclusive_lock(load_config(path).storage.path, wait=0):
        code, _, err = run_cli(["run", "--once"], capsys)
    assert code == 1
    assert "another followup is working on" in err


@pytest.fixture
def big_mailbox(dovecot_account: ImapAccount) -> Iterator[tuple[ImapAccount, int]]:
    count = 4000
    when = datetime(2025, 11, 3, 9, 0, tzinfo=UTC)
    items = []
    for number in range(count):
        person = f"p{number % 50}@example.com"
        items.append(("INBOX", message(sender=person, subject=f"n{number}",
                                       when=when + timedelta(minutes=number),
                                       message_id=f"m{number}"), (), when))
    dovecot_account.append_many(items)
    yield dovecot_account, count


@pytest.mark.slow
def test_sigterm_finishes_the_batch_and_exits_0(big_mailbox: tuple[ImapAccount, int],
                                                tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    account, count = big_mailbox
    path = write_config(monkeypatch, account, tmp_path, batch_size=10)
    database = load_config(path).storage.path
    env = {**os.environ, "FOLLOWUP_NOW": "2026-01-10T05:00:00+01:00"}
    # Each batch committed as it is saved, so that this test sees the scan under way.
    process = subprocess.Popen(followup_process("run", commit_every=10), env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if database.exists() and _count(database, "messages") >= 200:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the daemon did not start scanning")
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert "received SIGTERM" in err
    assert "interrupted (resumes next time)" in err
    assert "stopped" in err

    with sqlite3.connect(database) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        seen = conn.execute("SELECT count(*) FROM messages").fetchone()[0]
        last_uid = conn.execute("SELECT max(uid) FROM messages").fetchone()[0]
    assert 0 < seen < count
    assert last_uid == seen  # every batch saved whole, none half

    # The next run resumes where it stopped; nothing is counted twice.
    done = subprocess.run([sys.executable, "-m", "agent", "scan"], env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert _count(database, "messages") == count
    assert _count(database, "exchanges") == count


def _count(database: Path, table: str) -> int:
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=1) as conn:
            return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    except sqlite3.Error:
        return 0


# --------------------------------------------------------------------------- contrib/


CONTRIB = Path(__file__).resolve().parent.parent / "contrib"


def unit(name: str) -> dict[str, dict[str, str]]:
    import configparser

    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(CONTRIB / name, encoding="utf-8")
    return {section: dict(parser[section]) for section in parser.sections()}


def test_contrib_service_files_run_the_right_commands() -> None:
    import plistlib
    import shlex
    import shutil

    service_unit = unit("followup.service")
    assert shlex.split(service_unit["Service"]["ExecStart"])[1:] == ["run"]
    assert service_unit["Service"]["RestartPreventExitStatus"] == "2"
    once = unit("followup-once.service")
    assert once["Service"]["Type"] == "oneshot"
    assert shlex.split(once["Service"]["ExecStart"])[1:] == ["run", "--once"]
    timer = unit("followup.timer")
    assert timer["Timer"]["Unit"] == "followup-once.service"
    assert timer["Timer"]["Persistent"] == "true"
    if shutil.which("systemd-analyze"):
        checked = subprocess.run(["systemd-analyze", "calendar", timer["Timer"]["OnCalendar"]],
                                 capture_output=True, text=True, check=False)
        assert checked.returncode == 0, checked.stderr

    with (CONTRIB / "org.followup.run.plist").open("rb") as handle:
        plist = plistlib.load(handle)
    assert plist["ProgramArguments"][1:] == ["run"]
    assert plist["KeepAlive"] == {"SuccessfulExit": False}

    lines = [line for line in (CONTRIB / "crontab").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert len(lines) == 1
    fields = lines[0].split()
    assert len(fields[:5]) == 5 and fields[5].endswith("/followup")
    assert fields[6:8] == ["run", "--once"]
