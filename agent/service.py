"""One run of the product, step by step: scan → decide → digest → drafts (CLI and daemon)."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from agent import credentials, policy
from agent.config import Config
from agent.errors import TransientMailboxError
from agent.identity import MergeSuggestion, suggest_merges
from agent.mailbox.client import Mailbox
from agent.model import Contact, ContactState
from agent.scan import Progress, ScanSummary, scan, self_keys
from agent.store import Store, exclusive_lock

if TYPE_CHECKING:
    from agent.digest import DigestResult
    from agent.drafts import DraftsResult

log = logging.getLogger(__name__)


def open_store(config: Config) -> Store:
    return Store(config.storage.path)


def connect(config: Config) -> Mailbox:
    """Find the password and log in; the password goes no further than the IMAP LOGIN."""
    imap = config.imap
    password = credentials.get_password("imap", imap.username, imap.password_command)
    return Mailbox.connect(imap, password)


@contextlib.contextmanager
def working(config: Config, wait: float = 10.0) -> Iterator[Store]:
    """The store, held exclusively for a run that writes (scan, digest, drafts)."""
    with exclusive_lock(config.storage.path, wait=wait), open_store(config) as store:
        yield store


T = TypeVar("T")
RETRY_DELAYS = (2.0, 5.0, 15.0, 30.0)  # seconds between attempts after a network failure


def with_retries(work: Callable[[Mailbox, int], T], config: Config, *,
                 delays: Sequence[float] = RETRY_DELAYS,
                 sleep: Callable[[float], None] = time.sleep,
                 should_stop: Callable[[], bool] = lambda: False) -> T:
    """Connect and run ``work(mailbox, attempt)``; on a dropped connection or timeout, wait
    and try again (a scan resumes from its saved sync state, so nothing is done twice)."""
    attempt = 0
    while True:
        try:
            with connect(config) as mailbox:
                return work(mailbox, attempt)
        except TransientMailboxError as exc:
            if attempt >= len(delays) or should_stop():
                raise
            delay = delays[attempt]
            attempt += 1
            log.warning("%s; trying again in %g s (attempt %d of %d)", exc, delay,
                        attempt + 1, len(delays) + 1)
            sleep(delay)


def run_scan(config: Config, *, full: bool = False, now: datetime | None = None,
             progress: Progress | None = None,
             should_stop: Callable[[], bool] = lambda: False,
             sleep: Callable[[float], None] = time.sleep) -> ScanSummary:
    with working(config) as store:
        # --full forgets the sync state once; a retry resumes instead of starting over.
        return with_retries(
            lambda mailbox, attempt: scan(config, mailbox, store, full=full and attempt == 0,
                                          now=now, progress=progress, should_stop=should_stop),
            config, sleep=sleep, should_stop=should_stop)


def contacts(config: Config, store: Store) -> list[Contact]:
    return store.contacts(self_keys(config), two_way=config.policy.two_way)


def decide(config: Config, store: Store, now: datetime) -> list[ContactState]:
    """Every contact with its status today, most recent exchange first."""
    return policy.evaluate(contacts(config, store), config.policy, config.digest.tz, now)


def merge_suggestions(config: Config, store: Store) -> list[MergeSuggestion]:
    return suggest_merges(contacts(config, store))


@dataclass(frozen=True)
class Plan:
    """Today's decisions: every contact's state, the due list in order, and the picks."""

    day: date
    states: list[ContactState]
    due: list[ContactState]  # waiting, overdue and due, most urgent first
    picks: list[ContactState]

    @property
    def rest(self) -> list[ContactState]:
        picked = {s.contact.id for s in self.picks}
        return [s for s in self.due if s.contact.id not in picked]


def plan(config: Config, store: Store, now: datetime) -> Plan:
    """Decide today's picks; the same all day (picks already recorded today come first)."""
    states = decide(config, store, now)
    day = policy.today(now, config.digest.tz)
    picks = policy.pick_today(states, config.policy.daily_picks, day, store.pick_history())
    return Plan(day=day, states=states, due=policy.ranked(states), picks=picks)


@dataclass
class CycleResult:
    scan: ScanSummary | None = None
    plan: Plan | None = None
    digest: Any = None
    drafts: Any = None


def run_cycle(config: Config, now: datetime, *, with_digest: bool = True,
              with_drafts: bool = True,
              should_stop: Callable[[], bool] = lambda: False,
              sleep: Callable[[float], None] = time.sleep) -> CycleResult:
    """The daily job: scan, settle yesterday's drafts, decide, digest, drafts.

    One lock and one connection for the whole cycle; a dropped connection retries the
    cycle. Digest and drafts are idempotent per local day, so a cycle that runs twice
    (catch-up, a retry) delivers nothing twice.
    """
    from agent import digest, drafts

    def cycle(mailbox: Mailbox, attempt: int) -> CycleResult:
        result = CycleResult()
        result.scan = scan(config, mailbox, store, now=now, should_stop=should_stop)
        if should_stop() or result.scan.interrupted:
            return result
        settled = drafts.reconcile(config, store, mailbox, now)
        result.plan = today_plan = plan(config, store, now)
        # Recorded first, so a retry or a second run today agrees with these picks.
        store.record_picks(today_plan.day, [s.contact.id for s in today_plan.picks])
        if with_digest:
            result.digest = digest.deliver(config, store, mailbox, today_plan, now)
        if with_drafts and config.drafts.enabled:
            result.drafts = drafts.create(config, store, mailbox, today_plan, now)
            result.drafts.reconciled = settled
        return result

    with working(config) as store:
        return with_retries(cycle, config, sleep=sleep, should_stop=should_stop)


def run_digest(config: Config, now: datetime, *, dry_run: bool = False,
               output: Path | None = None) -> DigestResult:
    """`followup digest`: today's digest from the ledger as it is (no scan), at most once a day.

    ``dry_run`` or ``output`` only show the digest (text, or HTML in a file) and deliver
    nothing, so a look at today's digest never uses up today's one delivery. A real run
    connects to IMAP only when the digest goes to the INBOX and is still due today.
    """
    from agent import digest

    if dry_run or output is not None:
        with open_store(config) as store:  # read-only: no lock, a running scan may go on
            return digest.deliver(config, store, None, plan(config, store, now), now,
                                  dry_run=True, output=output)
    with working(config) as store:
        today_plan = plan(config, store, now)
        # As in run_cycle: recorded first, so `followup drafts` later today agrees.
        store.record_picks(today_plan.day, [s.contact.id for s in today_plan.picks])
        if config.digest.delivery != "imap" or not digest.wanted(config, store, today_plan):
            return digest.deliver(config, store, None, today_plan, now)
        return with_retries(
            lambda mailbox, _: digest.deliver(config, store, mailbox, today_plan, now), config)


def run_drafts(config: Config, now: datetime, *, dry_run: bool = False,
               sleep: Callable[[float], None] = time.sleep) -> DraftsResult:
    """`followup drafts`: an incremental scan, settle pending drafts, then today's drafts.

    The scan comes first (cheap when little changed) because settling needs Sent up to date:
    a draft sent since the last scan would otherwise look deleted and snooze the contact.
    ``dry_run`` works from the ledger as it is, connects to nothing and changes nothing.
    """
    from agent import drafts

    if dry_run:
        with open_store(config) as store:  # read-only: no lock, a running scan may go on
            return drafts.create(config, store, None, plan(config, store, now), now,
                                 dry_run=True)

    def work(mailbox: Mailbox, attempt: int) -> DraftsResult:
        summary = scan(config, mailbox, store, now=now)
        settled = None if summary.interrupted else drafts.reconcile(config, store, mailbox, now)
        today_plan = plan(config, store, now)
        # As in run_cycle: recorded first, so the digest later today agrees with these picks.
        store.record_picks(today_plan.day, [s.contact.id for s in today_plan.picks])
        result = drafts.create(config, store, mailbox, today_plan, now)
        result.reconciled = settled
        return result

    with working(config) as store:
        return with_retries(work, config, sleep=sleep)
