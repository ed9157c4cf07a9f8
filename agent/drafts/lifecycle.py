"""Drafts over time: create today's (appended once, recorded), settle earlier ones.

Drafts only: nothing here sends mail. A draft is appended to the Drafts folder with ``\\Draft
\\Seen`` and the user sends, edits or deletes it in their own mail client.

Life cycle of a draft (``reconcile``, run right after each scan):

* still in Drafts — the same UID, the same Message-ID (kept in the journal: a draft carries no
  mark of followup that the recipient could see), or an edited copy (a draft to one of the
  contact's addresses saved since ours was made) → **pending**;
* gone, and the ledger has a message from the user to the contact since the draft was made
  (the scan reads Sent; up to a day before counts too, see ``SENT_SLACK``) → **sent**;
* gone with nothing sent → **declined**: the contact is snoozed ``[drafts] snooze_days`` from
  today (a longer snooze the user set stays).

Creating (``create``): a check-in for each of today's picks, at most ``[drafts] max_per_day``
a day, and a reply for each of today's replies owed (at most ``[digest] max_replies`` of them
are in the plan); never while the contact has a pending draft, never twice for one contact on
one day. A draft is recorded
before its APPEND (``appending``) and confirmed after it; a crash in between leaves its
Message-ID on record, and the next ``reconcile`` finds it in Drafts (pending) or learns that
the server never got it (the record goes, and the draft is made again).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta

from agent import policy
from agent.config import Config
from agent.drafts.compose import Draft, choose_language, compose
from agent.drafts.folder import (
    DRAFT_FLAGS,
    FolderDraft,
    drafts_folder,
    edited_match,
    exact_match,
    inventory,
)
from agent.errors import MailboxError, TransientMailboxError
from agent.headers.meta import parse_message
from agent.mailbox.client import Mailbox
from agent.model import Contact
from agent.plan import Plan
from agent.render import Renderer
from agent.store import Store
from agent.store.journal import DraftRecord

log = logging.getLogger(__name__)

# A message to the contact this long *before* the draft was made still counts as "sent":
# clocks differ between the user's devices and this machine, and a mail the user wrote just
# before the draft appeared (not yet scanned) means the same thing — they got in touch.
SENT_SLACK = timedelta(days=1)


@dataclass(frozen=True)
class Skipped:
    """A contact that got no draft today, and why."""

    contact_id: int
    name: str
    address: str
    reason: str


@dataclass
class DraftsResult:
    """What ``create`` did (or, with ``dry_run``, would do)."""

    dry_run: bool
    folder: str | None
    created: list[Draft] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # broken user templates (default used)
    reconciled: ReconcileResult | None = None


@dataclass
class ReconcileResult:
    """How each pending draft was settled."""

    pending: list[DraftRecord] = field(default_factory=list)
    moved: list[DraftRecord] = field(default_factory=list)  # pending, found as an edited copy
    sent: list[DraftRecord] = field(default_factory=list)
    declined: list[tuple[DraftRecord, date]] = field(default_factory=list)  # snoozed until
    # Recorded before an APPEND whose answer never came (a crash, a dropped connection):
    # found in Drafts, so now pending ("confirmed"); or not there, so never stored ("lost").
    confirmed: list[DraftRecord] = field(default_factory=list)
    lost: list[DraftRecord] = field(default_factory=list)
    problem: str | None = None  # why nothing could be checked


def reconcile(config: Config, store: Store, mailbox: Mailbox, now: datetime) -> ReconcileResult:
    """Settle every pending draft: still pending, sent, or declined (snoozed). See the module doc.

    Run it after a scan, so that a draft the user sent is already in the ledger. Never raises for
    a missing Drafts folder: the digest must still go out; the pending drafts wait.
    """
    result = ReconcileResult()
    pending = store.journal.drafts("pending", "appending", mailbox=mailbox.name)
    if not pending:
        return result
    folder = mailbox.roles().drafts
    if folder is None:
        result.problem = "no Drafts folder found; pending drafts left as they are"
        log.warning("%s", result.problem)
        result.pending = pending
        return result
    names = {f.name for f in mailbox.list_folders() if f.selectable}
    by_folder: dict[str, list[DraftRecord]] = {}
    for record in pending:
        # A draft is looked for where it was put; if that folder is gone, in today's Drafts.
        by_folder.setdefault(record.folder if record.folder in names else folder, []).append(
            record)

    today = policy.today(now, config.digest.tz)
    for name, records in by_folder.items():
        uidvalidity, found = inventory(mailbox, name, batch_size=config.imap.batch_size, now=now)
        free = {c.uid: c for c in found}
        matched: dict[int, FolderDraft] = {}
        # Exact matches first, so that a loose recipient match never takes another's draft.
        for record in records:
            hit = exact_match(record, uidvalidity, free.values())
            if hit is not None:
                matched[record.id] = free.pop(hit.uid)
        for record in records:
            if record.id in matched:
                continue
            keys = frozenset({record.address, *store.people.addresses_of(record.contact_id)})
            hit = edited_match(record, keys, free.values())
            if hit is not None:
                matched[record.id] = free.pop(hit.uid)

        for record in records:
            hit = matched.get(record.id)
            if record.state == "appending":
                _settle_append(store, record, hit, uidvalidity, result)
                continue
            if hit is not None:
                result.pending.append(record)
                if hit.uid != record.uid or uidvalidity != record.uidvalidity:
                    store.journal.update_draft_uid(record.id, hit.uid, uidvalidity)
                    result.moved.append(record)
                continue
            addresses = {record.address, *store.people.addresses_of(record.contact_id)}
            if store.ledger.sent_to_since(addresses, record.created_at - SENT_SLACK):
                store.journal.resolve_draft(record.id, "sent", now)
                result.sent.append(record)
                log.info("draft to %s was sent", record.address)
            else:
                until = today + timedelta(days=config.drafts.snooze_days)
                # One transaction: a crash never leaves a declined draft without its snooze.
                with store.transaction():
                    store.journal.resolve_draft(record.id, "declined", now)
                    until = store.people.snooze_at_least(record.contact_id, until)
                result.declined.append((record, until))
                log.info("draft to %s was deleted unsent; contact snoozed until %s",
                         record.address, until.isoformat())
    return result


def parent_references(mailbox: Mailbox, contact: Contact, now: datetime) -> tuple[str, ...]:
    """The References of the message a draft replies to, read from the server.

    The ledger keeps each message's Message-ID but not its whole chain; drafts are few, so the
    parent's header is fetched once here. Nothing found (moved, deleted): no chain, just it.
    """
    ident, folder = contact.last_message_id, contact.last_folder
    if not ident or not folder:
        return ()
    try:
        uids = mailbox.search(folder, ["HEADER", "Message-ID", ident])
        fetched = mailbox.fetch_headers(uids[-1:]) if uids else []
    except TransientMailboxError:
        raise
    except MailboxError as exc:
        log.debug("references of %s in %s not read: %s", ident, folder, exc)
        return ()
    if not fetched:
        return ()
    return parse_message(fetched[0].header, fetched[0].internaldate, now).references


def _settle_append(store: Store, record: DraftRecord, hit: FolderDraft | None,
                   uidvalidity: int, result: ReconcileResult) -> None:
    """A draft whose APPEND never answered: the server has it (pending) or never got it."""
    if hit is not None and hit.message_id == record.message_id:
        store.journal.confirm_draft(record.id, hit.uid, uidvalidity)
        result.confirmed.append(record)
        result.pending.append(record)
        log.info("the draft to %s reached Drafts before the connection ended", record.address)
    else:
        store.journal.forget_draft(record.id)
        result.lost.append(record)
        log.info("the draft to %s never reached Drafts; it will be made again", record.address)


def _settle_unanswered(config: Config, store: Store, mailbox: Mailbox, now: datetime) -> None:
    appending = store.journal.drafts("appending", mailbox=mailbox.name)
    by_folder: dict[str, list[DraftRecord]] = {}
    for record in appending:
        by_folder.setdefault(record.folder, []).append(record)
    result = ReconcileResult()
    for folder, records in by_folder.items():
        uidvalidity, found = inventory(mailbox, folder, batch_size=config.imap.batch_size,
                                       now=now)
        for record in records:
            hit = exact_match(record, uidvalidity, found)
            _settle_append(store, record, hit, uidvalidity, result)


def create(config: Config, store: Store, mailbox: Mailbox | None, plan: Plan, now: datetime,
           *, dry_run: bool = False) -> DraftsResult:
    """Drafts for today's picks (``plan.picks``: check-ins, at most ``[drafts] max_per_day`` a
    day) and replies owed (``plan.replies``: replies, capped by the plan).

    Never two pending drafts for one person, never a second draft for one person on one day.
    A draft is recorded (``appending``) before its APPEND and confirmed after it: a crash in
    between leaves its Message-ID on record, and ``reconcile`` finds the draft or forgets it.
    ``dry_run`` composes the drafts from the ledger as it is and touches nothing (no mailbox
    needed).
    """
    if mailbox is None and not dry_run:
        raise ValueError("create() needs a mailbox unless dry_run")
    if mailbox is not None and not dry_run:
        # An APPEND of this run that never answered (the connection broke, and the step is
        # run again): settled first, so that its draft is not made twice nor left unknown.
        _settle_unanswered(config, store, mailbox, now)
    day = plan.day
    records = store.journal.drafts()
    pending = {r.contact_id: r for r in records if r.state in ("pending", "appending")}
    made_today = {r.contact_id for r in records if r.day == day}
    # Check-ins have their budget; replies are capped by the plan ([digest] max_replies), so a
    # backlog of replies never takes the drafts of the people to get in touch with.
    budget = config.drafts.max_per_day - sum(1 for r in records
                                             if r.day == day and r.kind != "reply")

    result = DraftsResult(dry_run=dry_run, folder=None)
    uidvalidity: int | None = None
    renderers: dict[str, Renderer] = {}

    for state in [*plan.picks, *plan.replies]:
        contact: Contact = state.contact
        reply = state.status == "waiting"
        earlier = pending.get(contact.id)
        reason: str | None = None
        if earlier is not None:
            reason = f"the draft of {earlier.day.isoformat()} is still in Drafts"
        elif contact.id in made_today:
            reason = "already had a draft today"
        elif not contact.has_mail or not contact.email:
            # Known only from the address book: no conversation to refer to, maybe no address.
            reason = "no mail with them on record (address book only): call or write yourself"
        elif budget <= 0 and not reply:
            reason = f"[drafts] max_per_day = {config.drafts.max_per_day} reached"
        if reason is not None:
            result.skipped.append(Skipped(contact.id, contact.name, contact.email, reason))
            continue

        folder = result.folder
        if mailbox is not None and not dry_run and folder is None:
            # Looked up only when there is a draft to make: no Drafts folder is an error then.
            folder = result.folder = drafts_folder(mailbox)
            uidvalidity = mailbox.select(folder).uidvalidity

        language, why = choose_language(config, store, contact)
        renderer = renderers.get(language)
        if renderer is None:
            renderer = renderers[language] = Renderer(config, language=language)
        parents = (parent_references(mailbox, contact, now)
                   if mailbox is not None and not dry_run else ())
        draft = compose(config, state, language=language, language_reason=why, day=day,
                        now=now, renderer=renderer, parent_references=parents)
        if draft is None:
            result.skipped.append(Skipped(contact.id, contact.name, contact.email,
                                          "the address cannot be written in a plain header"))
            continue
        budget -= 0 if reply else 1
        if dry_run or mailbox is None or folder is None:
            result.created.append(draft)
            continue
        draft_id = store.journal.add_draft(contact.id, draft.address, day, draft.kind,
                                           draft.message_id, folder, None, uidvalidity, now,
                                           mailbox=mailbox.name)
        uid = mailbox.append(folder, draft.raw, flags=DRAFT_FLAGS)
        if uid is None:  # no UIDPLUS: find it by its Message-ID
            hits = mailbox.search(folder, ["HEADER", "Message-ID", draft.message_id])
            uid = hits[-1] if hits else None
        store.journal.confirm_draft(draft_id, uid, uidvalidity)
        result.created.append(replace(draft, uid=uid))
        log.info("draft to %s in %s (%s, %s)", draft.address, folder, draft.kind, draft.language)
    result.problems = [p for r in renderers.values() for p in r.problems]
    return result

