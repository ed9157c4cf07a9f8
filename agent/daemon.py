"""`followup run`: scan every scan_interval, one full cycle at the digest time, catch up, back off.

The clock and the sleep are parameters, so tests can drive days (and DST changes) in
milliseconds. Both schedules are computed here from that clock: the next interval scan is
the last scan (or cycle) plus ``scan_interval``, and the digest moment is 07:30 local in the
configured zone on every day, including the two days a year the clocks change. (The
``schedule`` package was dropped: its jobs read ``datetime.now()`` with no way to pass a
clock, and its time zones need pytz.)
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from types import FrameType
from typing import Any
from zoneinfo import ZoneInfo

from agent import service
from agent.config import Config
from agent.errors import EXIT_USAGE, FollowupError
from agent.store.database import LockBusy, exclusive_lock

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Sleep = Callable[[float], None]
Cycle = Callable[..., Any]  # service.run_cycle(config, now, *, retry)
Scan = Callable[..., Any]  # service.run_scan(config, now, *, retry)

# Longest single sleep. time.sleep and Event.wait count on a monotonic clock that stands
# still while the machine is suspended: waking up at least once a minute notices a resume
# (and a missed digest time) within a minute instead of after the rest of a long nap.
MAX_NAP = 60.0
RUN_LOCK_WAIT = 3.0  # a second `followup run` waits this long for the first to go away


def utc_now() -> datetime:
    return datetime.now(UTC)


def digest_moment(day: date, at: dtime, tz: ZoneInfo) -> datetime:
    """The UTC instant of local time ``at`` on ``day`` in ``tz``.

    On the day the clocks go forward, a time inside the gap (02:30 in Europe/Berlin) is taken
    with the offset from before the change, which lands one hour later on the wall clock
    (03:30); on the day they go back, an ambiguous time is the first of the two.
    """
    return datetime.combine(day, at, tzinfo=tz).astimezone(UTC)


def human(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@dataclass
class Backoff:
    """Seconds to wait after consecutive failures: 1, 2, 4, 8 min … at most 15 min."""

    first: float = 60.0
    cap: float = 900.0
    failures: int = 0

    def next_delay(self) -> float:
        delay = min(self.cap, self.first * (1 << min(self.failures, 20)))
        self.failures += 1
        return delay

    def reset(self) -> None:
        self.failures = 0


# --------------------------------------------------------------------------- the daemon


class Daemon:
    """The loop behind `followup run`.

    Each turn: if today's digest moment has passed and
    today's cycle has not run, run the cycle (scan, digest, drafts) — once, however long the
    machine slept; else run a due scan. A failure that a retry can cure (network, server,
    login refused, busy database) is logged and retried after a growing pause; a failure only
    the user can fix (configuration, credentials) ends the loop with that error. ``stop()``
    (SIGTERM, SIGINT) lets the current batch finish and ends the loop.
    """

    def __init__(self, config: Config, *, now: Clock = utc_now, sleep: Sleep | None = None,
                 cycle: Cycle = service.run_cycle, scan: Scan = service.run_scan,
                 backoff: Backoff | None = None, max_nap: float = MAX_NAP) -> None:
        self.config = config
        self.tz = config.digest.tz
        self._now = now
        self._stop = threading.Event()
        self._sleep: Sleep = sleep or self._wait
        self._cycle = cycle
        self._scan = scan
        self._backoff = backoff or Backoff()
        self._max_nap = max_nap
        self._next_scan: datetime | None = None  # None: scan now (once at start)
        self._retry_at: datetime | None = None
        self.last_cycle_day: date | None = None
        self.cycles = 0
        self.scans = 0
        self.failures = 0

    # ------------------------------------------------------------------ control

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _wait(self, seconds: float) -> None:
        self._stop.wait(seconds)

    # ------------------------------------------------------------------ the loop

    def run(self) -> None:
        """Run until stopped; raises the FollowupError that made it give up."""
        with service.open_store(self.config) as store:
            self.last_cycle_day = store.journal.last_cycle_day()
        now = self._now()
        log.info("followup run: scanning every %s, digest and drafts daily at %s %s "
                 "(next: %s)", human(self._interval.total_seconds()),
                 self.config.digest.time.strftime("%H:%M"), self.config.digest.timezone,
                 self._local(self.next_digest(now)))
        while not self.stopping:
            self.turn()
            if self.stopping:
                break
            self._sleep(self.nap_seconds(self._now()))
        log.info("followup run: stopped")

    def turn(self) -> None:
        """One pass of the loop: at most one cycle or one scan."""
        now = self._now()
        if self._retry_at is not None and now < self._retry_at:
            return
        if self.cycle_due(now):
            self._attempt("daily cycle", self._run_cycle, now)
        elif self._next_scan is None or now >= self._next_scan:
            self._attempt("scan", self._run_scan, now)

    @property
    def _interval(self) -> timedelta:
        return max(timedelta(seconds=1), self.config.daemon.scan_interval)

    def _scanned(self) -> None:
        """The next interval scan is one scan_interval from now."""
        self._next_scan = self._now() + self._interval

    def cycle_due(self, now: datetime) -> bool:
        today = now.astimezone(self.tz).date()
        if self.last_cycle_day is not None and self.last_cycle_day >= today:
            return False
        return now >= digest_moment(today, self.config.digest.time, self.tz)

    def next_digest(self, now: datetime) -> datetime:
        """The next digest moment that has not been served (now, when one is due)."""
        today = now.astimezone(self.tz).date()
        if self.cycle_due(now):
            return now
        moment = digest_moment(today, self.config.digest.time, self.tz)
        if moment > now and (self.last_cycle_day is None or self.last_cycle_day < today):
            return moment
        return digest_moment(today + timedelta(days=1), self.config.digest.time, self.tz)

    def nap_seconds(self, now: datetime) -> float:
        """How long to sleep: until the next scan, digest or retry, at most max_nap."""
        if self._retry_at is not None:
            wake = [self._retry_at]  # nothing else runs before the retry
        else:
            wake = [self.next_digest(now), self._next_scan or now]
        seconds = (min(wake) - now).total_seconds()
        return min(self._max_nap, max(1.0, seconds))

    def _attempt(self, what: str, work: Callable[[datetime], None], now: datetime) -> None:
        try:
            work(now)
        except FollowupError as exc:
            if exc.exit_code == EXIT_USAGE:
                raise  # configuration or credentials: retrying cannot help
            self._failed(what, str(exc))
        except Exception as exc:  # a daemon outlives one bad run; logged in full
            log.exception("%s failed unexpectedly", what)
            self._failed(what, f"unexpected {type(exc).__name__}: {exc}")
        else:
            if self.failures and self._backoff.failures:
                log.info("%s worked again", what)
            self._backoff.reset()
            self._retry_at = None

    def _failed(self, what: str, reason: str) -> None:
        self.failures += 1
        delay = self._backoff.next_delay()
        self._retry_at = self._now() + timedelta(seconds=delay)
        log.warning("%s failed: %s; trying again in %s", what, reason, human(delay))

    @property
    def _retry(self) -> service.Retry:
        # No retries inside a run: a failed run is retried by the daemon's own backoff.
        return service.Retry(delays=(), sleep=self._sleep, should_stop=self._stop.is_set)

    def _run_scan(self, now: datetime) -> None:
        self._scan(self.config, now, retry=self._retry)
        self.scans += 1
        self._scanned()

    def _run_cycle(self, now: datetime) -> None:
        day = now.astimezone(self.tz).date()
        log.info("daily cycle for %s: scan, digest, drafts", day.isoformat())
        self._cycle(self.config, now, retry=self._retry)
        if self.stopping:
            return  # interrupted: the cycle runs again after the restart
        self.cycles += 1
        with service.working(self.config) as store:
            store.journal.record_cycle(day, self._now())
        self.last_cycle_day = day
        self._scanned()  # the cycle scanned: the next interval scan counts from now

    def _local(self, moment: datetime) -> str:
        return moment.astimezone(self.tz).strftime("%Y-%m-%d %H:%M %Z")


# --------------------------------------------------------------------------- entry points


@contextlib.contextmanager
def single_run(config: Config, wait: float = RUN_LOCK_WAIT) -> Iterator[None]:
    """Held for the life of `followup run`: a second daemon on the same database stops."""
    database = config.storage.path
    try:
        with exclusive_lock(database.with_name(database.name + ".run"), wait=wait):
            yield
    except LockBusy:
        raise LockBusy(f"another `followup run` is already running on {database}; stop it "
                       "first (one daemon per database)") from None


@contextlib.contextmanager
def stop_on_signals(stop: Callable[[], None]) -> Iterator[None]:
    """SIGTERM and SIGINT call ``stop`` (finish the current batch); a second one kills."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set in the main thread (tests drive others)
        return

    def handler(number: int, frame: FrameType | None) -> None:
        log.warning("received %s: finishing the current batch, then stopping",
                    signal.Signals(number).name)
        stop()
        # Back to the defaults: a second Ctrl-C or SIGTERM ends the process at once.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for number, old in previous.items():
            signal.signal(number, old)


def run_daemon(config: Config, *, now: Clock = utc_now) -> Daemon:
    """`followup run`: the daemon, until SIGTERM/SIGINT (then it returns normally)."""
    daemon = Daemon(config, now=now)
    with single_run(config), stop_on_signals(daemon.stop):
        daemon.run()
    return daemon


def run_once(config: Config, now: datetime) -> service.RunResult:
    """`followup run --once`: one full cycle now (cron, systemd timers), recorded as today's.

    SIGTERM/SIGINT end it after the current batch; an interrupted cycle is not recorded, so
    the daemon or the next timer run does it again.
    """
    stopped = threading.Event()
    with stop_on_signals(stopped.set):
        result = service.run_cycle(config, now, retry=service.Retry(should_stop=stopped.is_set))
    if not stopped.is_set():
        with service.working(config) as store:
            store.journal.record_cycle(now.astimezone(config.digest.tz).date(), now)
    return result
