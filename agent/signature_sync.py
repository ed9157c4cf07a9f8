"""Phone numbers from signatures, for the people today's digest names who have none.

A step of the daily run, after the plan and before drafts and digest: for each person the
digest will show (picks, replies owed, the rest of the due list) without a number in the
address book, read the text part of their newest message to the user — once: a message is
remembered by its Message-ID and never fetched again — and keep the numbers of its
signature (agent.signatures) with the message's date.

Where that message is: the ledger keeps every exchange with its mailbox, folder and the
message's key, and every scanned message with its (mailbox, folder, UID) under the same key,
so the newest incoming message's UID is one query away and costs no SEARCH. Only when the
ledger has no UID for it (a folder reset since) is it looked for with ``UID SEARCH HEADER
Message-ID`` in the folder the ledger names: one more command (README: "Phone numbers from
signatures"). With several mailboxes the step runs once per mailbox, on its connection, for
the people whose newest message is in it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from agent import bodies, signatures
from agent.addressbook.phones import default_region
from agent.config import Config
from agent.errors import MailboxError, TransientMailboxError
from agent.mailbox.client import Mailbox
from agent.model import Contact, Phone
from agent.plan import Plan
from agent.store import Store
from agent.store.ledger import Incoming

log = logging.getLogger(__name__)

ADDRESSBOOK = "addressbook"


@dataclass
class SignatureResult:
    """What the step did, person by person."""

    looked_for: int = 0  # people in the digest without a number in the address book
    fetched: list[str] = field(default_factory=list)  # messages whose text was fetched now
    known: int = 0  # their newest message was read before (by Message-ID): not fetched
    no_mail: int = 0  # no message from them on record
    searched: int = 0  # found by Message-ID SEARCH (the ledger had no UID)
    found: dict[int, tuple[Phone, ...]] = field(default_factory=dict)  # contact id → numbers
    problems: list[str] = field(default_factory=list)

    def add(self, other: SignatureResult) -> None:
        """Count ``other`` (another mailbox's turn) in."""
        self.looked_for += other.looked_for
        self.fetched += other.fetched
        self.known += other.known
        self.no_mail += other.no_mail
        self.searched += other.searched
        self.found.update(other.found)
        self.problems += other.problems

    def line(self) -> str:
        numbers = sum(len(p) for p in self.found.values())
        return (f"signatures: {self.looked_for} people without a number in the address book; "
                f"{len(self.fetched)} message(s) read, {self.known} read before, "
                f"{numbers} number(s) found for {len(self.found)} of them")


def message_key(incoming: Incoming) -> str:
    """What a read message is remembered by: its Message-ID, else the ledger's key."""
    return incoming.message_id or f"key:{incoming.msg_key}"


def read(config: Config, store: Store, mailbox: Mailbox, plan: Plan, now: datetime, *,
         source: str = "", should_stop: Callable[[], bool] = lambda: False) -> SignatureResult:
    """Read the signatures of the people ``plan``'s digest shows without a known number,
    whose newest message is in the mailbox ``source`` ("" the primary) on ``mailbox``.

    Each message is read at most once, ever. A dropped connection raises (the run retries,
    and what was read is kept); anything else about one message is logged and skipped.
    """
    result = SignatureResult()
    region = default_region(config)
    seen: set[int] = set()
    for state in plan.shown:
        contact = state.contact
        if contact.id in seen or any(p.source == ADDRESSBOOK for p in contact.phones):
            continue
        seen.add(contact.id)
        if not contact.has_mail:
            continue
        incoming = store.ledger.newest_incoming(contact.addresses)
        if incoming is None:
            if source == "":
                result.looked_for += 1
                result.no_mail += 1
            continue
        if incoming.mailbox != source:
            continue  # in another mailbox: its own turn
        result.looked_for += 1
        if should_stop():
            break
        key = message_key(incoming)
        if store.signatures.was_read(key):
            result.known += 1
            continue
        _read_one(store, mailbox, contact, incoming, key, region, now, result)
    if result.looked_for:
        log.info("%s", result.line())
    return result


def _read_one(store: Store, mailbox: Mailbox, contact: Contact, incoming: Incoming, key: str,
              region: str | None, now: datetime, result: SignatureResult) -> None:
    try:
        raw, outcome = _fetch(mailbox, incoming, result)
    except TransientMailboxError:
        raise
    except MailboxError as exc:
        # A folder gone or refused: not remembered, so a later run may find the message.
        result.problems.append(f"{incoming.address}: {exc}")
        log.warning("signature of %s not read: %s", incoming.address, exc)
        return
    found: list[signatures.Found] = []
    if raw is not None:
        result.fetched.append(key)
        try:
            written = bodies.written(bodies.text_of(raw))
            found = signatures.numbers(written.body, written.signature,
                                       sender=incoming.address, default_region=region)
        except Exception as exc:  # noqa: BLE001 - hostile mail must never stop the digest
            outcome = "unreadable"
            log.warning("signature of %s not readable: %s", incoming.address, exc)
    phones = [Phone(f.number, f.type, "signature", incoming.time) for f in found]
    if store.signatures.save(key, incoming.address, incoming.time, phones, outcome, now):
        result.found[contact.id] = tuple(phones)
        log.info("phone number(s) of %s from their signature of %s: %s", incoming.address,
                 incoming.time.date().isoformat(), ", ".join(p.number for p in phones))


def _fetch(mailbox: Mailbox, incoming: Incoming,
           result: SignatureResult) -> tuple[bytes | None, str]:
    """The message's text part and what became of it: read | no text (or gone)."""
    copies = list(incoming.copies)
    if not copies and incoming.message_id:
        # The ledger has no UID for it: look for it where the ledger says it is.
        uids = mailbox.search(incoming.folder, ["HEADER", "Message-ID", incoming.message_id])
        result.searched += 1
        copies = [(incoming.folder, uid) for uid in uids[-1:]]
    for folder, uid in copies:
        # A copy expunged or moved since the scan gives nothing: then the next copy.
        raw = mailbox.fetch_text_part(folder, uid)
        if raw is not None:
            return raw, "read"
    return None, "no text" if copies else "gone"
