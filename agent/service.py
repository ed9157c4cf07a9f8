"""One run of the product, step by step: scan → decide → digest → drafts (CLI and daemon)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from agent import credentials, policy
from agent.config import Config
from agent.identity import MergeSuggestion, suggest_merges
from agent.mailbox import Mailbox
from agent.model import Contact, ContactState
from agent.scan import Progress, ScanSummary, scan, self_keys
from agent.store import Store, exclusive_lock

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


def run_scan(config: Config, *, full: bool = False, now: datetime | None = None,
             progress: Progress | None = None,
             should_stop: Callable[[], bool] = lambda: False) -> ScanSummary:
    with working(config) as store, connect(config) as mailbox:
        return scan(config, mailbox, store, full=full, now=now, progress=progress,
                    should_stop=should_stop)


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
              should_stop: Callable[[], bool] = lambda: False) -> CycleResult:
    """The daily job: scan, settle yesterday's drafts, decide, digest, drafts.

    One lock and one connection for the whole cycle. Digest and drafts are idempotent per
    local day, so a cycle that runs twice (catch-up, a retry) delivers nothing twice.
    """
    from agent import digest, drafts

    result = CycleResult()
    with working(config) as store, connect(config) as mailbox:
        result.scan = scan(config, mailbox, store, now=now, should_stop=should_stop)
        if should_stop():
            return result
        drafts.reconcile(config, store, mailbox, now)
        result.plan = today_plan = plan(config, store, now)
        if with_digest:
            result.digest = digest.deliver(config, store, mailbox, today_plan, now)
        if with_drafts and config.drafts.enabled:
            result.drafts = drafts.create(config, store, mailbox, today_plan, now)
        store.record_picks(today_plan.day, [s.contact.id for s in today_plan.picks])
    return result
