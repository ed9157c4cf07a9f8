"""One run of the product, step by step: scan → decide → digest → drafts (CLI and daemon)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from datetime import datetime

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
