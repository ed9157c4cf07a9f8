"""One run of the product as one pipeline: scan → settle drafts → plan → signatures → drafts →
digest.

The CLI commands and the daemon all call ``run``, asking for the steps they need
(``followup scan`` only the scan, ``followup digest`` only plan and digest, the daily cycle
everything). One lock and at most one IMAP connection per run; a dropped connection runs
the pipeline again (``Retry``), and every step is idempotent, so nothing happens twice.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from agent import cardsync, credentials, delivery, signature_sync
from agent.cardsync import CardSync
from agent.config import Config
from agent.delivery import DigestResult
from agent.drafts import lifecycle as drafts
from agent.drafts.lifecycle import DraftsResult, ReconcileResult
from agent.errors import MailboxError, TransientMailboxError
from agent.mailbox.client import Mailbox
from agent.plan import Plan, make_plan, plan_today
from agent.scan import Progress, ScanSummary, scan
from agent.signature_sync import SignatureResult
from agent.store import Store
from agent.store.database import exclusive_lock

log = logging.getLogger(__name__)

T = TypeVar("T")
RETRY_DELAYS = (2.0, 5.0, 15.0, 30.0)  # seconds between attempts after a network failure


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


@dataclass(frozen=True)
class Retry:
    """How a run meets a dropped connection or a timeout: wait ``delays[i]``, try again.

    A scan resumes from its saved sync state, so an attempt never repeats finished work.
    The daemon passes ``Retry(delays=())``: it has its own, longer backoff between runs.
    """

    delays: Sequence[float] = RETRY_DELAYS
    sleep: Callable[[float], None] = time.sleep
    should_stop: Callable[[], bool] = lambda: False

    def run(self, work: Callable[[Mailbox, int], T], config: Config) -> T:
        """Connect and run ``work(mailbox, attempt)`` until it succeeds or retries run out."""
        attempt = 0
        while True:
            try:
                with connect(config) as mailbox:
                    return work(mailbox, attempt)
            except TransientMailboxError as exc:
                if attempt >= len(self.delays) or self.should_stop():
                    raise
                delay = self.delays[attempt]
                attempt += 1
                log.warning("%s; trying again in %g s (attempt %d of %d)", exc, delay,
                            attempt + 1, len(self.delays) + 1)
                self.sleep(delay)


@dataclass(frozen=True)
class Steps:
    """Which steps of the pipeline a run takes."""

    scan: bool = True
    settle: bool = True  # settle pending drafts (sent, deleted, still there)
    digest: bool = True
    drafts: bool = True
    full: bool = False  # the scan forgets the ledger first (`scan --full`)
    dry_run: bool = False  # plan, digest and drafts from the ledger; connect to nothing
    output: Path | None = None  # write the HTML digest here; delivers nothing


# What a run without an explicit ``retry`` uses (the CLI); tests may swap it for a quick one.
DEFAULT_RETRY = Retry()
SCAN = Steps(settle=False, digest=False, drafts=False)
CYCLE = Steps()


@dataclass
class RunResult:
    """What a run did, step by step (None: the step did not run)."""

    scan: ScanSummary | None = None
    addressbook: CardSync | None = None
    settled: ReconcileResult | None = None
    plan: Plan | None = None
    signatures: SignatureResult | None = None
    digest: DigestResult | None = None
    drafts: DraftsResult | None = None


def run(config: Config, now: datetime, steps: Steps = CYCLE, *, retry: Retry | None = None,
        progress: Progress | None = None) -> RunResult:
    """Run ``steps`` of the pipeline under the store's lock (a dry run reads without it).

    The scan comes before settling because settling needs Sent up to date: a draft sent
    since the last scan would otherwise look deleted and snooze the contact. A run that
    needs no server (a digest through SMTP, a dry run) does not connect.
    """
    retry = retry or DEFAULT_RETRY
    if steps.dry_run or steps.output is not None:
        with open_store(config) as store:  # read-only: no lock, a running scan may go on
            return _preview(config, store, now, steps)
    with working(config) as store:
        if not _needs_mailbox(config, store, now, steps):
            today = plan_today(config, store, now)
            result = RunResult(plan=today)
            if steps.digest:
                result.digest = delivery.deliver(config, store, None, today, now)
            return result
        return retry.run(lambda mailbox, attempt: _pipeline(
            config, store, mailbox, now, steps, attempt, progress, retry.should_stop), config)


def _needs_mailbox(config: Config, store: Store, now: datetime, steps: Steps) -> bool:
    if steps.scan or steps.settle or steps.drafts:
        return True
    if not steps.digest or config.digest.delivery != "imap":
        return False
    return delivery.wanted(config, store, make_plan(config, store, now))


def _pipeline(config: Config, store: Store, mailbox: Mailbox, now: datetime, steps: Steps,
              attempt: int, progress: Progress | None,
              should_stop: Callable[[], bool]) -> RunResult:
    result = RunResult()
    if steps.scan:
        # --full forgets the ledger once; a retry resumes instead of starting over.
        result.scan = scan(config, mailbox, store, full=steps.full and attempt == 0, now=now,
                           progress=progress, should_stop=should_stop)
        if should_stop() or result.scan.interrupted:
            return result
        # The address books after the mail: addresses the scan just met join their cards.
        result.addressbook = cardsync.sync(config, store, now, full=steps.full and attempt == 0)
    if steps.settle:
        result.settled = drafts.reconcile(config, store, mailbox, now)
    if not (steps.digest or steps.drafts):
        return result
    result.plan = today = plan_today(config, store, now)
    if steps.digest and delivery.wanted(config, store, today):
        # Phone numbers for the people the digest will name, from their newest signature;
        # then the plan once more, so that their rows (and prefer = "call") have them.
        result.signatures = signature_sync.read(config, store, mailbox, today, now,
                                                should_stop=should_stop)
        if result.signatures.found:
            result.plan = today = plan_today(config, store, now)
    # Drafts first, so that the digest can point at each prepared draft instead of offering
    # a blank compose window (which would make a second, competing draft). A Drafts folder
    # that cannot be used must not cost the user the digest: that error waits for it.
    failed: MailboxError | None = None
    if steps.drafts:
        try:
            result.drafts = drafts.create(config, store, mailbox, today, now)
            result.drafts.reconciled = result.settled
        except TransientMailboxError:
            raise
        except MailboxError as exc:
            failed = exc
    if steps.digest:
        result.digest = delivery.deliver(config, store, mailbox, today, now)
    if failed is not None:
        raise failed
    return result


def _preview(config: Config, store: Store, now: datetime, steps: Steps) -> RunResult:
    """A dry run: what the digest and the drafts would be, from the ledger as it is."""
    result = RunResult(plan=(today := make_plan(config, store, now)))
    if steps.drafts:
        result.drafts = drafts.create(config, store, None, today, now, dry_run=True)
    if steps.digest:
        waiting = {d.contact_id: d.folder for d in store.journal.drafts("pending")}
        if config.drafts.enabled:
            would = result.drafts or drafts.create(config, store, None, today, now,
                                                   dry_run=True)
            waiting.update({d.contact_id: "" for d in would.created})
        result.digest = delivery.deliver(config, store, None, today, now, dry_run=True,
                                       output=steps.output, drafts=waiting)
    return result


# --------------------------------------------------------------------------- the commands


def cycle_steps(config: Config) -> Steps:
    """The daily cycle: everything, drafts only when ``[drafts] enabled``."""
    return replace(CYCLE, drafts=config.drafts.enabled)


def run_cycle(config: Config, now: datetime, *, retry: Retry | None = None) -> RunResult:
    """The daily job (`followup run`): scan, settle drafts, plan, digest, drafts."""
    return run(config, now, cycle_steps(config), retry=retry)


def run_scan(config: Config, now: datetime, *, full: bool = False,
             progress: Progress | None = None, retry: Retry | None = None) -> ScanSummary:
    """`followup scan`: bring the ledger up to date."""
    summary = run(config, now, replace(SCAN, full=full), retry=retry, progress=progress).scan
    assert summary is not None  # the SCAN steps always scan
    return summary


def run_digest(config: Config, now: datetime, *, dry_run: bool = False,
               output: Path | None = None, retry: Retry | None = None) -> DigestResult:
    """`followup digest`: today's digest from the ledger as it is (no scan), once a day.

    ``dry_run`` or ``output`` only show it (text, or HTML in a file): a look at today's
    digest never uses up today's one delivery.
    """
    steps = Steps(scan=False, settle=False, drafts=False, dry_run=dry_run, output=output)
    result = run(config, now, steps, retry=retry).digest
    assert result is not None  # these steps always make a digest
    return result


def run_drafts(config: Config, now: datetime, *, dry_run: bool = False,
               retry: Retry | None = None) -> DraftsResult:
    """`followup drafts`: a quick scan, settle pending drafts, then today's drafts."""
    result = run(config, now, Steps(digest=False, dry_run=dry_run), retry=retry).drafts
    return result or DraftsResult(dry_run=dry_run, folder=None)  # None: the scan was stopped
