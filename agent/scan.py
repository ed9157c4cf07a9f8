"""The incremental scan: new UIDs of every relevant folder → parsed headers → the ledger."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from agent.classify import Tally
from agent.config import Config, MailboxConfig
from agent.identity import self_keys
from agent.mailbox.client import FolderStatus, Mailbox
from agent.model import LedgerBatch
from agent.scanwork import Classifiers
from agent.store import Store
from agent.store.ledger import FolderState

log = logging.getLogger(__name__)


class Progress(Protocol):
    """What the CLI shows while a scan runs (a rich bar on a terminal, nothing otherwise)."""

    def folder_started(self, folder: str, total: int) -> None: ...

    def advanced(self, count: int) -> None: ...

    def folder_done(self, folder: str) -> None: ...


class NoProgress:
    def folder_started(self, folder: str, total: int) -> None:
        pass

    def advanced(self, count: int) -> None:
        pass

    def folder_done(self, folder: str) -> None:
        pass


@dataclass
class ScanSummary(Tally):
    """What a scan did: the folders, the messages and exchanges, and (its Tally) what counted,
    what did not and why, what was repaired."""

    folders: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    reset: dict[str, str] = field(default_factory=dict)  # folder → why its state was reset
    fetched: int = 0
    new_exchanges: int = 0
    addresses_refreshed: int = 0
    seconds: float = 0.0
    interrupted: bool = False

    def line(self) -> str:
        """The one-line summary printed when not on a terminal."""
        rate = self.fetched / self.seconds if self.seconds > 0 else 0.0
        parts = [
            f"scanned {len(self.folders)} folder(s) ({len(self.unchanged)} unchanged)",
            f"{self.fetched} new message(s) in {self.seconds:.2f} s ({rate:.0f}/s)",
            f"{self.new_exchanges} new exchange(s)",
        ]
        if self.skipped:
            parts.append(f"{sum(self.skipped.values())} not counted")
        if self.reset:
            parts.append("reset: " + ", ".join(f"{f} ({why})" for f, why in self.reset.items()))
        if self.interrupted:
            parts.append("interrupted (resumes next time)")
        return "; ".join(parts)


def folder_plan(state: FolderState | None, status: FolderStatus) -> tuple[str, int]:
    """What to do with a folder: ("skip"|"reset"|"fetch", last UID already seen)."""
    if state is None:
        return "fetch", 0
    if state.uidvalidity != status.uidvalidity:
        return "reset", 0
    if state.uidnext and status.uidnext and status.uidnext < state.uidnext:
        return "reset", 0  # UIDNEXT went backwards (seen on GMX): trust nothing
    if state.uidnext and status.uidnext == state.uidnext:
        return "skip", state.last_uid
    return "fetch", state.last_uid


def scan(config: Config, mailbox: Mailbox, store: Store, *, full: bool = False,
         now: datetime | None = None, progress: Progress | None = None,
         should_stop: Callable[[], bool] = lambda: False,
         source: MailboxConfig | None = None) -> ScanSummary:
    """Bring the ledger up to date with the mailbox ``source`` (default: the primary) that
    ``mailbox`` is connected to; safe to interrupt at any point."""
    started = time.monotonic()
    now = now or datetime.now(UTC)
    progress = progress or NoProgress()
    summary = ScanSummary()
    source = source or config.primary
    if full:
        store.ledger.forget()
    states = store.ledger.folder_states(source.key)
    if "INBOX" in states and "INBOX" not in source.imap.exclude_folders:
        # INBOX's STATUS before the LIST: after a LIST, Dovecot reads a maildir INBOX whole
        # for its STATUS (~70 ms at 66,000 messages); before it, from its index (~8 ms).
        mailbox.status("INBOX")
    folders = mailbox.folders_to_scan(source.imap.folders, source.imap.exclude_folders)
    # Every folder's STATUS in one round trip, not one each; what they say at the start of
    # the scan decides which folders it reads (new mail after that waits for the next scan,
    # as mail that comes just after the scan does).
    statuses = mailbox.statuses(folders)
    roles = mailbox.roles()
    sent_folders = frozenset(name for name in (roles.sent, roles.all, *roles.archive) if name)
    work = Classifiers(self_keys(config), now, source.key)
    try:
        for folder in folders:
            _scan_folder(source, mailbox, store, folder, states.get(folder),
                         statuses.get(folder) or mailbox.status(folder), now, progress,
                         should_stop, summary, sent_folders, work)
            if summary.interrupted:
                break
    finally:
        work.close()
    summary.addresses_refreshed = store.refresh(now)
    if summary.fetched:
        store.database.checkpoint()
    summary.seconds = time.monotonic() - started
    log.info("%s", summary.line())
    return summary


def _scan_folder(source: MailboxConfig, mailbox: Mailbox, store: Store, folder: str,
                 state: FolderState | None, status: FolderStatus, now: datetime,
                 progress: Progress,
                 should_stop: Callable[[], bool], summary: ScanSummary,
                 sent_folders: frozenset[str], work: Classifiers) -> None:
    """One folder: skip it if unchanged, reset it if its UIDs changed meaning, fetch the rest."""
    summary.folders.append(folder)
    plan, last_uid = folder_plan(state, status)
    if plan == "skip":
        summary.unchanged.append(folder)
        return
    if plan == "reset" and state is not None:
        why = ("UIDVALIDITY changed" if state.uidvalidity != status.uidvalidity
               else "UIDNEXT went backwards")
        log.warning("folder %s: %s, rescanning it", folder, why)
        summary.reset[folder] = why
        store.ledger.reset_folder(folder, status.uidvalidity, source.key)
    selected = mailbox.select(folder)
    uidvalidity = selected.uidvalidity or status.uidvalidity
    uids = mailbox.uids_after(last_uid)
    # Mail From the user counts as sent where the user files sent mail; anywhere else (INBOX,
    # folders a server-side filter delivers into) only if it was not delivered from outside.
    delivered = None if folder in sent_folders else mailbox.delivered
    progress.folder_started(folder, len(uids))
    classify = work.for_folder(len(uids))

    def save(chunk: Sequence[int], count: int, batch: LedgerBatch, tally: Tally) -> None:
        summary.add(tally)
        summary.new_exchanges += store.ledger.save(folder, uidvalidity, chunk[-1], batch,
                                                   source.key)
        summary.fetched += count
        progress.advanced(len(chunk))
        wrote(count)

    # Several FETCHes are on their way while a batch is classified and the one before it is
    # written (README "How fast"); leaving early, closing reads what is still coming.
    # Each batch is saved with the folder's new sync state in the same transaction, and a
    # transaction is committed every few thousand messages or seconds (store.grouped).
    waiting: tuple[Sequence[int], int] | None = None  # submitted, not yet saved
    done: tuple[LedgerBatch, Tally] | None = None  # its classification, once collected
    with contextlib.closing(mailbox.header_batches(uids, source.imap.batch_size)) as batches, \
            store.database.grouped() as wrote:
        try:
            for chunk, fetched in batches:
                if should_stop():
                    summary.interrupted = True
                    break
                if waiting is not None:
                    done = classify.collect()
                classify.submit(fetched, folder, delivered)  # the worker starts on it
                if waiting is not None and done is not None:
                    save(*waiting, *done)  # meanwhile, the batch before is written
                    waiting = done = None
                waiting = (chunk, len(fetched))
        except Exception:
            # A batch failed to come (a dropped connection) or to be classified: the one
            # before it was read whole, and is kept unless classifying it needs the broken
            # connection too.
            if waiting is not None:
                with contextlib.suppress(Exception):
                    save(*waiting, *(done or classify.collect()))
            raise
        if waiting is not None:  # the last batch (or, when stopped, the one in hand)
            save(*waiting, *classify.collect())
    progress.folder_done(folder)
    if not summary.interrupted:
        uidnext = max(status.uidnext, selected.uidnext)
        store.ledger.finish_folder(folder, status.uidvalidity, uidnext, status.highestmodseq, now,
                                   source.key)
