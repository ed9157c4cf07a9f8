"""One run of the product as one pipeline: scan → commands → address books → settle drafts →
plan → signatures → drafts → digest.

The CLI commands and the daemon all call ``run``, asking for the steps they need
(``followup scan`` only the scan, ``followup digest`` only plan and digest, the daily cycle
everything). One lock and at most one IMAP connection per mailbox and run (``Sessions``); a dropped
connection runs the step again (``Retry``), and every step is idempotent, so nothing happens
twice. Several mailbox ([[mailbox]]) are scanned one after another into one ledger.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from agent import auth
from agent.config import Config, MailboxConfig
from agent.errors import (
    EXIT_USAGE,
    CredentialError,
    FollowupError,
    MailboxError,
    TransientMailboxError,
)
from agent.mailbox.client import Mailbox
from agent.model import Contact, ContactState
from agent.scan import Progress, ScanSummary, scan
from agent.store import Store
from agent.store.database import exclusive_lock

if TYPE_CHECKING:
    from agent.cardsync import CardSync
    from agent.commands.receive import CommandsResult
    from agent.delivery import DigestResult
    from agent.drafts.lifecycle import DraftsResult, ReconcileResult
    from agent.plan import Plan
    from agent.signature_sync import SignatureResult

# The steps after the scan (commands, address books, plan, drafts, digest) are imported where
# they run: a no-change rescan imports only what it uses (README "How fast": ~0.1 s less).

log = logging.getLogger(__name__)

T = TypeVar("T")
RETRY_DELAYS = (2.0, 5.0, 15.0, 30.0)  # seconds between attempts after a network failure


def open_store(config: Config) -> Store:
    return Store(config.storage.path)


def connect(config: Config, source: MailboxConfig | None = None) -> Mailbox:
    """Sign in to one mailbox (the primary by default); the password or token goes no
    further than the server's LOGIN or AUTHENTICATE."""
    source = source or config.primary
    return Mailbox.connect(source.imap, auth.imap_login(source), source.key)


def as_seen_from(config: Config, source: MailboxConfig) -> Config:
    """``config`` from one mailbox's side: its address is the user's (the From of its
    drafts), its [imap] settings are [imap]."""
    if source.primary:
        return config
    account = replace(config.account, email=source.email, aliases=source.aliases)
    return replace(config, account=account, imap=source.imap)


def mailbox_of(config: Config, contact: Contact) -> MailboxConfig:
    """The mailbox that last exchanged mail with ``contact`` (the primary if it is gone)."""
    return next((m for m in config.mailboxes if m.key == contact.last_mailbox), config.primary)


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

    def attempts(self, work: Callable[[int], T],
                 after_failure: Callable[[], None] = lambda: None) -> T:
        """``work(attempt)`` until it succeeds or retries run out; ``after_failure`` drops
        what the failure left broken (the connection)."""
        attempt = 0
        while True:
            try:
                return work(attempt)
            except TransientMailboxError as exc:
                after_failure()
                if attempt >= len(self.delays) or self.should_stop():
                    raise
                delay = self.delays[attempt]
                attempt += 1
                log.warning("%s; trying again in %g s (attempt %d of %d)", exc, delay,
                            attempt + 1, len(self.delays) + 1)
                self.sleep(delay)

    def run(self, work: Callable[[Mailbox, int], T], config: Config,
            source: MailboxConfig | None = None) -> T:
        """Connect and run ``work(mailbox, attempt)`` until it succeeds or retries run out."""
        def once(attempt: int) -> T:
            with connect(config, source) as mailbox:
                return work(mailbox, attempt)

        return self.attempts(once)


class Sessions:
    """A run's IMAP connections: one per mailbox, opened when a step first needs it, kept
    for the following steps, and opened again (with ``retry``) after it broke."""

    def __init__(self, config: Config, retry: Retry) -> None:
        self._config = config
        self._retry = retry
        self._open: dict[str, Mailbox] = {}

    def run(self, source: MailboxConfig, work: Callable[[MailboxConfig, Mailbox], T]) -> T:
        """``work(source, mailbox)`` on the connection to ``source``."""
        def once(_attempt: int) -> T:
            mailbox = self._open.get(source.key)
            if mailbox is None:
                mailbox = self._open[source.key] = connect(self._config, source)
            return work(source, mailbox)

        return self._retry.attempts(once, after_failure=lambda: self._drop(source.key))

    def _drop(self, key: str) -> None:
        mailbox = self._open.pop(key, None)
        if mailbox is not None:
            mailbox.close()

    def close(self) -> None:
        for key in list(self._open):
            self._drop(key)


@dataclass(frozen=True)
class Steps:
    """Which steps of the pipeline a run takes."""

    scan: bool = True
    commands: bool = True  # after the scan: the user's answers to the digest, link messages
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
    commands: CommandsResult | None = None
    addressbook: CardSync | None = None
    settled: ReconcileResult | None = None
    plan: Plan | None = None
    signatures: SignatureResult | None = None
    digest: DigestResult | None = None
    drafts: DraftsResult | None = None
    # Mailboxes that failed (with several: the others went on), by name.
    failures: dict[str, FollowupError] = field(default_factory=dict)


def run(config: Config, now: datetime, steps: Steps = CYCLE, *, retry: Retry | None = None,
        progress: Progress | None = None) -> RunResult:
    """Run ``steps`` of the pipeline under the store's lock (a dry run reads without it).

    The scan comes before settling because settling needs Sent up to date: a draft sent
    since the last scan would otherwise look deleted and snooze the contact. A run that
    needs no server (a digest through SMTP, a dry run) does not connect. With several
    mailboxes, one that fails (unreachable, login refused) is logged and skipped and the
    others go on; its error is raised at the end when it needs the user (a sign-in to
    renew: exit 2) or when it is the primary (the digest's mailbox).
    """
    retry = retry or DEFAULT_RETRY
    if steps.dry_run or steps.output is not None:
        with open_store(config) as store:  # read-only: no lock, a running scan may go on
            return _preview(config, store, now, steps)
    with working(config) as store:
        if not _needs_mailbox(config, store, now, steps):
            from agent.plan import plan_today

            today = plan_today(config, store, now)
            result = RunResult(plan=today)
            if steps.digest:
                from agent import delivery

                result.digest = delivery.deliver(config, store, None, today, now)
            return result
        sessions = Sessions(config, retry)
        try:
            result = _pipeline(config, store, sessions, now, steps, progress,
                               retry.should_stop)
        finally:
            sessions.close()
    _raise_failures(config, result)
    return result


def _needs_mailbox(config: Config, store: Store, now: datetime, steps: Steps) -> bool:
    if steps.scan or steps.settle or steps.drafts:
        return True
    if not steps.digest or config.digest.delivery != "imap":
        return False
    from agent import delivery
    from agent.plan import make_plan

    return delivery.wanted(config, store, make_plan(config, store, now))


def _each(config: Config, result: RunResult, sessions: Sessions,
          step: Callable[[MailboxConfig, Mailbox], T],
          sources: Sequence[MailboxConfig] | None = None,
          stop: Callable[[T], bool] = lambda _done: False) -> list[tuple[MailboxConfig, T]]:
    """``step(source, mailbox)`` for every mailbox (or ``sources``), each on its connection.

    With several mailboxes, one that fails (server, network, login) is recorded in
    ``result.failures``, logged and skipped by later steps; the others go on.
    """
    done: list[tuple[MailboxConfig, T]] = []
    for source in config.mailboxes if sources is None else sources:
        if source.name in result.failures:
            continue
        try:
            found = sessions.run(source, step)
        except (MailboxError, CredentialError) as exc:
            if len(config.mailboxes) == 1:
                raise
            result.failures[source.name] = exc
            log.warning("mailbox %s: %s; the other mailboxes go on", source.name, exc)
            continue
        done.append((source, found))
        if stop(found):
            break
    return done


def _raise_failures(config: Config, result: RunResult) -> None:
    for name, exc in result.failures.items():
        if exc.exit_code == EXIT_USAGE or name == config.primary.name:
            raise exc


def _pipeline(config: Config, store: Store, sessions: Sessions, now: datetime, steps: Steps,
              progress: Progress | None, should_stop: Callable[[], bool]) -> RunResult:
    from agent import cardsync
    from agent.commands.receive import receive

    result = RunResult()
    if steps.scan:
        if steps.full:
            store.ledger.forget()  # once, before every mailbox
        scans = _each(config, result, sessions, lambda source, mailbox: scan(
            config, mailbox, store, now=now, progress=progress, should_stop=should_stop,
            source=source), stop=lambda summary: should_stop() or summary.interrupted)
        result.scan = merge_scans(config, scans)
        if should_stop() or result.scan.interrupted:
            return result
        if steps.commands:
            # Before anything is planned: a snooze sent from the phone counts today.
            # The digest goes to the primary mailbox, and so do the answers to it.
            received = _each(config, result, sessions, lambda _source, mailbox: receive(
                config, store, mailbox, now), sources=[config.primary])
            result.commands = received[0][1] if received else None
        # The address books after the mail: addresses the scan just met join their cards.
        result.addressbook = cardsync.sync(config, store, now, full=steps.full)
    if steps.settle:
        from agent.drafts import lifecycle as drafts

        settled = _each(config, result, sessions, lambda source, mailbox: drafts.reconcile(
            as_seen_from(config, source), store, mailbox, now))
        result.settled = merge_settled([r for _, r in settled])
    if not (steps.digest or steps.drafts):
        return result
    from agent import delivery
    from agent.plan import plan_today

    result.plan = today = plan_today(config, store, now)
    if steps.digest and delivery.wanted(config, store, today):
        # Phone numbers for the people the digest will name, from their newest signature
        # (each mailbox for the messages in it); then the plan once more, so that their rows
        # (and prefer = "call") have them.
        result.signatures = read_signatures(config, store, sessions, result, today, now,
                                            should_stop)
        if result.signatures.found:
            result.plan = today = plan_today(config, store, now)
    # Drafts first, so that the digest can point at each prepared draft instead of offering
    # a blank compose window (which would make a second, competing draft). A Drafts folder
    # that cannot be used must not cost the user the digest: that error waits for it.
    failed: MailboxError | None = None
    if steps.drafts:
        from agent.drafts import lifecycle as drafts

        try:
            made = _each(config, result, sessions, lambda source, mailbox: drafts.create(
                as_seen_from(config, source), store, mailbox, _picks_of(config, today, source),
                now))
        except TransientMailboxError:
            raise
        except MailboxError as exc:
            failed, made = exc, []
        result.drafts = merge_drafts([r for _, r in made]) if made else None
        if result.drafts is not None:
            result.drafts.reconciled = result.settled
    if steps.digest:
        if config.digest.delivery == "imap":
            delivered = _each(config, result, sessions, lambda _source, mailbox: delivery.deliver(
                config, store, mailbox, today, now), sources=[config.primary])
            result.digest = delivered[0][1] if delivered else None
        else:
            result.digest = delivery.deliver(config, store, None, today, now)
    if failed is not None:
        raise failed
    return result


def read_signatures(config: Config, store: Store, sessions: Sessions, result: RunResult,
                    plan: Plan, now: datetime,
                    should_stop: Callable[[], bool]) -> SignatureResult:
    """The signature step on every mailbox's connection, as one result."""
    # Imported here: message bodies and phone numbers are for the digest, and a scan would
    # pay ~0.07 s to import them (README "How fast": the no-change rescan).
    from agent import signature_sync
    from agent.signature_sync import SignatureResult

    read = _each(config, result, sessions, lambda source, mailbox: signature_sync.read(
        config, store, mailbox, plan, now, source=source.key, should_stop=should_stop))
    total = SignatureResult()
    for _source, part in read:
        total.add(part)
    return total


def _picks_of(config: Config, plan: Plan, source: MailboxConfig) -> Plan:
    """``plan`` with the picks and replies whose drafts go to ``source`` (all of them with
    one mailbox)."""
    if len(config.mailboxes) == 1:
        return plan

    def here(states: list[ContactState]) -> list[ContactState]:
        return [s for s in states if mailbox_of(config, s.contact).key == source.key]

    return replace(plan, picks=here(plan.picks), replies=here(plan.replies))


def merge_scans(config: Config,
                scans: Sequence[tuple[MailboxConfig, ScanSummary]]) -> ScanSummary:
    """One summary for the scans of every mailbox (folders named "mailbox: folder")."""
    if len(scans) == 1 and len(config.mailboxes) == 1:
        return scans[0][1]
    total = ScanSummary()
    for source, summary in scans:
        prefix = "" if source.primary else f"{source.name}: "
        total.folders += [prefix + f for f in summary.folders]
        total.unchanged += [prefix + f for f in summary.unchanged]
        total.reset.update({prefix + f: why for f, why in summary.reset.items()})
        total.refused.update({prefix + f: why for f, why in summary.refused.items()})
        total.fetched += summary.fetched
        total.counted += summary.counted
        total.new_exchanges += summary.new_exchanges
        total.skipped.update(summary.skipped)
        total.repaired.update(summary.repaired)
        total.addresses_refreshed += summary.addresses_refreshed
        total.unread += summary.unread
        total.unread_messages += [prefix + line for line in summary.unread_messages]
        total.seconds += summary.seconds
        total.interrupted = total.interrupted or summary.interrupted
    return total


def merge_settled(results: Sequence[ReconcileResult]) -> ReconcileResult:
    """How the drafts of every mailbox were settled, as one result."""
    if len(results) == 1:
        return results[0]
    from agent.drafts.lifecycle import ReconcileResult

    total = ReconcileResult()
    _extend(total, results, ("pending", "moved", "sent", "declined", "confirmed", "lost"))
    total.problem = next((p.problem for p in results if p.problem), None)
    return total


def merge_drafts(results: Sequence[DraftsResult]) -> DraftsResult:
    """The drafts made in every mailbox, as one result (the folder: the first one's)."""
    if len(results) == 1:
        return results[0]
    from agent.drafts.lifecycle import DraftsResult

    total = DraftsResult(dry_run=False, folder=next((p.folder for p in results if p.folder),
                                                    None))
    _extend(total, results, ("created", "skipped", "problems"))
    return total


def _extend(total: object, parts: Sequence[object], names: Sequence[str]) -> None:
    """Append each part's lists ``names`` to the same lists of ``total``."""
    for part in parts:
        for name in names:
            getattr(total, name).extend(getattr(part, name))


def _preview(config: Config, store: Store, now: datetime, steps: Steps) -> RunResult:
    """A dry run: what the digest and the drafts would be, from the ledger as it is."""
    from agent import delivery
    from agent.drafts import lifecycle as drafts
    from agent.plan import make_plan

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
    from agent.drafts.lifecycle import DraftsResult

    result = run(config, now, Steps(digest=False, dry_run=dry_run), retry=retry).drafts
    return result or DraftsResult(dry_run=dry_run, folder=None)  # None: the scan was stopped
