"""The incremental scan: new UIDs of every relevant folder → parsed headers → the ledger."""

from __future__ import annotations

import bisect
import contextlib
import logging
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from agent.classify import Tally
from agent.config import Config, MailboxConfig
from agent.errors import MailboxError, TransientMailboxError
from agent.identity import self_keys
from agent.mailbox.client import FolderStatus, Mailbox
from agent.mailbox.records import FetchedHeader
from agent.model import LedgerBatch
from agent.scanwork import Classifier, Classifiers
from agent.store import Store
from agent.store.ledger import UNREAD_TRIES, FolderState

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
    unread: int = 0  # messages of the mailbox the server would not give, in the ledger
    refused: dict[str, str] = field(default_factory=dict)  # folder → why it was skipped
    unread_messages: list[str] = field(default_factory=list)  # a line for each (`-v`)

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
        if self.unread:
            parts.append(f"{self.unread} the server would not give")
        if self.reset:
            parts.append("reset: " + ", ".join(f"{f} ({why})" for f, why in self.reset.items()))
        if self.refused:
            parts.append("skipped, the server refused: " + ", ".join(self.refused))
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
            try:
                status = statuses.get(folder) or mailbox.status(folder)
            except TransientMailboxError:
                raise
            except MailboxError as exc:
                _refused(folder, exc, summary)
                continue
            _scan_folder(source, mailbox, store, folder, states.get(folder), status, now,
                         progress, should_stop, summary, sent_folders, work)
            if summary.interrupted:
                break
    finally:
        work.close()
    if summary.refused and len(summary.refused) == len(folders):
        # Not one folder could be read: the server's trouble, and the run's failure.
        raise MailboxError(next(iter(summary.refused.values())))
    summary.addresses_refreshed = store.refresh(now)
    store.ledger.unread_only_in(folders, source.key)
    summary.unread_messages = store.ledger.unread_messages(source.key)
    summary.unread = len(summary.unread_messages)
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
    """One folder: skip it if unchanged, reset it if its UIDs changed meaning, fetch the rest,
    and ask again for what the server would not give before."""
    summary.folders.append(folder)
    plan, last_uid = folder_plan(state, status)
    due = (store.ledger.unread_due(folder, status.uidvalidity, now, source.key)
           if plan != "reset" and state is not None else [])
    if plan == "skip" and not due:
        summary.unchanged.append(folder)
        return
    if plan == "reset" and state is not None:
        why = ("UIDVALIDITY changed" if state.uidvalidity != status.uidvalidity
               else "UIDNEXT went backwards")
        log.warning("folder %s: %s, rescanning it", folder, why)
        summary.reset[folder] = why
        store.ledger.reset_folder(folder, status.uidvalidity, source.key)
    try:
        selected = mailbox.select(folder)
        uids: Sequence[int] = mailbox.uids_after(last_uid) if plan != "skip" else []
    except TransientMailboxError:
        raise
    except MailboxError as exc:
        _refused(folder, exc, summary)
        return
    uidvalidity = selected.uidvalidity or status.uidvalidity
    # Reading the folder broke the connection twice before the scan got past broke_through:
    # the messages up to it are read one FETCH each, nothing sent ahead, to find the one
    # that breaks it (Dovecot says BYE to a FETCH of a message it cannot read, every time);
    # one that breaks it alone twice is left out (README "A message the server will not
    # give").
    through = state.one_by_one_through if state is not None and plan == "fetch" else None
    careful = bisect.bisect_right(uids, through) if through is not None else 0
    # Mail From the user counts as sent where the user files sent mail; anywhere else (INBOX,
    # folders a server-side filter delivers into) only if it was not delivered from outside.
    delivered = None if folder in sent_folders else mailbox.delivered
    progress.folder_started(folder, len(uids))
    read = _Reader(source, mailbox, store, folder, uidvalidity, now, summary, progress,
                   delivered, work.for_folder(len(uids)))
    try:
        read.run(uids, careful, should_stop)
    except TransientMailboxError:
        uid = read.failed_alone
        if uid is not None and state is not None and state.alone == uid:
            log.warning("folder %s: the connection broke twice on the message with UID %d "
                        "alone; it is not counted for now, and asked for again at later scans",
                        folder, uid)
            store.ledger.save(folder, uidvalidity, uid, LedgerBatch([], [], [], [], [], [], []),
                              source.key, unread=[uid], now=now)
            store.ledger.note_break(folder, uidvalidity, None, source.key)  # found: start anew
        elif uid is not None:
            # Once more, before it is left out: a network that drops at the same point (a
            # byte limit, a proxy) breaks it on another message next time.
            log.info("folder %s: the connection broke on the message with UID %d alone; "
                     "asking for it alone once more", folder, uid)
            store.ledger.note_break(folder, uidvalidity, uid, source.key, alone=True)
        elif (broke_through := mailbox.broke_through) is not None:
            store.ledger.note_break(folder, uidvalidity, broke_through, source.key)
        raise
    if due and not summary.interrupted:
        _ask_again(read, folder, due, should_stop)
    progress.folder_done(folder)
    if not summary.interrupted:
        # Unchanged at its STATUS, the folder was opened only to ask again: mail that came
        # since that STATUS was not read, and waits for the next scan.
        uidnext = status.uidnext if plan == "skip" else max(status.uidnext, selected.uidnext)
        store.ledger.finish_folder(folder, status.uidvalidity, uidnext, status.highestmodseq, now,
                                   source.key)


def _refused(folder: str, refusal: MailboxError, summary: ScanSummary) -> None:
    """A folder the server will not open or search (deleted since the LIST, no right to
    read it, a broken folder): this scan goes on without it, and says so."""
    log.warning("folder %s skipped: %s; the next scan tries it again", folder, refusal)
    summary.refused[folder] = str(refusal)


def _ask_again(read: _Reader, folder: str, due: Sequence[int],
               should_stop: Callable[[], bool]) -> None:
    """Ask again for the messages of ``folder`` the server would not give at earlier scans
    (README "A message the server will not give"): those that come are counted, those gone
    from the folder are forgotten, the others wait for the next scan, or are given up."""
    ledger, key = read.store.ledger, read.source.key
    still: list[int] = []
    # One at a time, each kept (or forgotten, when gone) before the next is asked: one that
    # still breaks the connection costs nobody else's answer, and a folder with many that
    # are still refused is not taken for a server that refuses everything.
    for uid in due:
        ledger.asking_again(folder, [uid], read.now, key)  # counted first, should it break
        read.mailbox.asking_again()
        try:
            asked, refused = read.run([uid], 1, should_stop, again=True)
        except TransientMailboxError:
            # It still breaks the connection (or the network did): this attempt ends, and
            # the retry goes on without asking for it within the hour.
            _given_up(read, folder, [uid])
            raise
        if not asked:
            break  # stopped
        if refused:
            still.extend(refused)
        else:
            ledger.given(folder, [uid], key)
    if still:
        log.info("folder %s: %d message(s) the server would not give at earlier scans "
                 "still not given", folder, len(still))
    _given_up(read, folder, still)


def _given_up(read: _Reader, folder: str, still: Sequence[int]) -> None:
    """Warn of those of ``still`` that this scan asked for the last time."""
    given_up = read.store.ledger.given_up(folder, still, read.source.key)
    if given_up:
        log.warning("folder %s: the server has not given the message(s) with UID %s at "
                    "%d scans or more over a day; they are not asked for again (`followup "
                    "scan --full` asks for everything again)", folder,
                    ", ".join(map(str, given_up)), UNREAD_TRIES)


class _Reader:
    """Reads UIDs of the selected folder batch by batch into the ledger: several FETCHes are
    on their way while a batch is classified and the one before it is written (README "How
    fast"). Each batch is saved with the folder's new sync state in the same transaction,
    and a transaction is committed every few thousand messages or seconds (store.grouped).
    """

    def __init__(self, source: MailboxConfig, mailbox: Mailbox, store: Store, folder: str,
                 uidvalidity: int, now: datetime, summary: ScanSummary, progress: Progress,
                 delivered: Callable[[Sequence[int]], set[int]] | None,
                 classify: Classifier) -> None:
        self.source, self.mailbox, self.store, self.folder = source, mailbox, store, folder
        self.uidvalidity, self.now, self.summary = uidvalidity, now, summary
        self._progress, self._delivered, self._classify = progress, delivered, classify
        self.through: int | None = None  # the last UID saved
        self.fetching = False  # whether an error came while waiting for a batch
        self.failed_alone: int | None = None  # the UID whose FETCH alone broke the link
        self._unread: list[int] = []

    def run(self, uids: Sequence[int], careful: int, should_stop: Callable[[], bool],
            again: bool = False) -> tuple[int, list[int]]:
        """Read ``uids``; the first ``careful`` of them one FETCH each. Returns how many of
        them were read (all, unless ``should_stop`` said stop), and the UIDs among them the
        server would not give. ``again``: they were read before (no progress shown)."""
        classify, summary = self._classify, self.summary
        self._unread = []
        waiting: tuple[Sequence[int], int] | None = None  # submitted, not yet saved
        done: tuple[LedgerBatch, Tally] | None = None  # its classification, once collected
        read = 0  # UIDs handed over
        # Leaving early, closing reads what is still coming.
        with contextlib.closing(self._batches(uids, careful)) as batches, \
                self.store.database.grouped() as wrote:
            try:
                while True:
                    self.fetching = True
                    step = next(batches, None)
                    self.fetching = False
                    if step is None:
                        break
                    chunk, fetched = step
                    if should_stop():
                        summary.interrupted = True
                        break
                    read += len(chunk)
                    if waiting is not None:
                        done = classify.collect()
                    classify.submit(fetched, self.folder, self._delivered)  # the worker starts
                    if waiting is not None and done is not None:
                        self._save(*waiting, *done, wrote, again)  # meanwhile, the one before
                        waiting = done = None
                    waiting = (chunk, len(fetched))
                    if read <= careful:
                        # Read one message at a time to find the one that breaks the
                        # connection: each is kept before the next is asked for, also when
                        # classifying it asks the server (delivered), which that one would
                        # break.
                        self._save(*waiting, *classify.collect(), wrote, again)
                        waiting = None
            except Exception:
                # A batch failed to come (a dropped connection) or to be classified: the one
                # before it was read whole, and is kept unless classifying it needs the
                # broken connection too.
                if waiting is not None:
                    with contextlib.suppress(Exception):
                        self._save(*waiting, *(done or classify.collect()), wrote, again)
                if (self.fetching and read < careful and not again
                        and (read == 0 or self.through == uids[read - 1])):
                    self.failed_alone = uids[read]  # and every message before it is kept
                raise
            if waiting is not None:  # the last batch (or, when stopped, the one in hand)
                self._save(*waiting, *classify.collect(), wrote, again)
        return read, self._unread

    def _batches(self, uids: Sequence[int], careful: int
                 ) -> Generator[tuple[Sequence[int], list[FetchedHeader]], None, None]:
        size = self.source.imap.batch_size
        if careful:
            yield from self.mailbox.one_by_one(uids[:careful])
        yield from self.mailbox.header_batches(uids[careful:], size)

    def _save(self, chunk: Sequence[int], count: int, batch: LedgerBatch, tally: Tally,
              wrote: Callable[[int], None], again: bool) -> None:
        summary = self.summary
        unread = self.mailbox.take_unread(chunk[-1])
        summary.add(tally)
        summary.new_exchanges += self.store.ledger.save(
            self.folder, self.uidvalidity, chunk[-1], batch, self.source.key,
            unread=unread, now=self.now)
        summary.fetched += count
        self._unread.extend(unread)
        self.through = max(self.through or 0, chunk[-1])
        if not again:
            self._progress.advanced(len(chunk))
        wrote(count)
