"""Plain records passed between the store, the policy and the renderers."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal, NamedTuple

Direction = Literal["in", "out"]
Status = Literal["ok", "due", "overdue", "waiting", "snoozed", "ignored"]
STATUSES: tuple[Status, ...] = ("ok", "due", "overdue", "waiting", "snoozed", "ignored")


@dataclass(frozen=True, slots=True)
class Exchange:
    """One message between the user and an address, as the ledger remembers it."""

    address: str
    direction: Direction
    time: datetime  # aware UTC
    subject: str
    folder: str
    message_id: str | None


@dataclass(frozen=True, slots=True)
class Phone:
    """A phone number of a person: E.164, its kind (cell, work, home, …) and where it was read.

    ``source`` is "addressbook" for a TEL of a card; later sources (a mail signature) add
    their own word and ``seen``, the time the number was read there.
    """

    number: str
    type: str
    source: str = "addressbook"
    seen: datetime | None = None


@dataclass(frozen=True)
class Card:
    """One vCard as read from an address book: what followup uses of it, already cleaned.

    ``href`` names it within its source (a file name, ``#3`` in a .vcf, a CardDAV href);
    ``etag`` changes whenever the card does. ``addresses`` are identity keys
    (``normalise_address``); ``birthday`` is ``YYYY-MM-DD`` or ``--MM-DD``; ``tags`` are the
    CATEGORIES, lower case.
    """

    href: str
    etag: str
    uid: str | None
    name: str
    addresses: tuple[str, ...]
    phones: tuple[Phone, ...] = ()
    birthday: str | None = None
    tags: tuple[str, ...] = ()


TouchKind = Literal["call", "meeting", "message"]
TOUCH_KINDS: tuple[TouchKind, ...] = ("call", "meeting", "message")


@dataclass(frozen=True, slots=True)
class Touch:
    """A touchpoint the user logged: contact outside the mailbox on a local calendar day."""

    kind: TouchKind
    day: date
    time: datetime  # aware UTC: the start of ``day`` in the user's time zone
    note: str = ""


@dataclass(frozen=True)
class Contact:
    """A person: one or more addresses, their mail history in numbers, and the user's decisions.

    ``last_*`` describe the newest exchange over all addresses. Decisions (``snooze_until``,
    ``ignored``, ``cadence_days``, ``language``, ``tags``) are the user's and survive rescans.
    """

    id: int
    name: str
    email: str  # primary address: the one of the newest exchange
    addresses: tuple[str, ...]
    last_exchange: datetime  # aware UTC
    last_direction: Direction
    last_subject: str
    last_folder: str
    last_message_id: str | None
    last_in: datetime | None
    last_out: datetime | None
    messages_in: int
    messages_out: int
    language_hint: str | None = None  # from their own mail's Content-Language
    snooze_until: date | None = None
    ignored: bool = False
    cadence_days: int | None = None
    language: str | None = None
    tags: frozenset[str] = field(default_factory=frozenset)  # the user's own (`followup tag`)
    # From the address book (rebuilt at every sync, never the user's decisions):
    card_tags: frozenset[str] = field(default_factory=frozenset)  # CATEGORIES
    phones: tuple[Phone, ...] = ()
    birthday: str | None = None  # YYYY-MM-DD, or --MM-DD without a year
    # The last logged touchpoint (a call, a meeting); the clock runs from the later of this
    # and last_exchange. ``touch`` is that touchpoint itself (kind, day, note).
    last_touch: datetime | None = None
    # The mailbox of the newest exchange ("" the primary, else a [[mailbox]] name): a
    # check-in draft goes to its Drafts folder, From its address.
    last_mailbox: str = ""
    touch: Touch | None = None

    @property
    def has_mail(self) -> bool:
        """Whether any mail was exchanged (address-book-only people have none)."""
        return bool(self.messages_in or self.messages_out)

    @property
    def all_tags(self) -> frozenset[str]:
        """The user's tags and the address book's: what ``[[policy.rule]] tag`` matches."""
        return self.tags | self.card_tags


@dataclass(frozen=True)
class ContactState:
    """What the policy decided about one contact on one day, and why."""

    contact: Contact
    status: Status
    due_date: date | None  # the day the contact reaches the line (None when ignored)
    cadence_days: int | None
    reason: str
    urgency: float  # higher is more urgent; only meaningful for due/overdue/waiting


# -- what a scan hands the ledger (agent.classify → agent.store.ledger) ---------------------


class MessageRow(NamedTuple):
    """One message of a scanned batch. Rows are tuples: cheap to make and to hand from the
    scan's worker process (agent.scanwork)."""

    uid: int
    msg_key: str
    time: datetime
    skipped: str | None


class ExchangeRow(NamedTuple):
    msg_key: str
    address: str
    direction: Direction
    time: datetime
    subject: str
    message_id: str | None
    name: str
    language: str | None


class HeldRow(NamedTuple):
    """An exchange that counts only once the user's message it answers is seen (issue 20)."""

    parent: str  # the Message-ID it answers
    exchange: ExchangeRow


class LedgerBatch(NamedTuple):
    """A classified batch in the shape of the ledger's INSERTs: plain tuples of numbers and
    text, keys digested (key_id) and times in epoch seconds. Made where the batch was
    classified (the scan's worker process, when there is one), so that the scan only writes
    them; and plain values cross the worker's pipe cheaply (a named tuple is pickled through
    a Python call each way, a datetime as an object, a message key as ~100 characters)."""

    # mailbox, folder, uid, key, time, skipped
    messages: list[tuple[str, str, int, int, int, str | None]]
    # key, address, direction, time, subject, folder, message_id, mailbox
    exchanges: list[tuple[int, str, Direction, int, str, str, str | None, str]]
    names: list[tuple[str, str, int, str | None]]  # address, name, time, language
    addresses: list[tuple[str]]  # each exchange's address, once: its aggregates to refresh
    lists: list[tuple[str]]  # mailing-list addresses seen
    sent_ids: list[str]  # Message-IDs of the user's own mail
    held: list[HeldRow]  # replies that count if they answer the user's mail (few)


def ledger_batch(messages: Sequence[MessageRow], exchanges: Sequence[ExchangeRow],
                 lists: Iterable[str], folder: str, mailbox: str = "",
                 sent_ids: Sequence[str] = (), held: Sequence[HeldRow] = ()) -> LedgerBatch:
    """The rows of one batch of ``folder`` in ``mailbox`` as the ledger writes them."""
    keys: dict[str, int] = {}
    message_rows = []
    for m in messages:
        key = keys.get(m.msg_key)
        if key is None:
            key = keys[m.msg_key] = key_id(m.msg_key)
        message_rows.append((mailbox, folder, m.uid, key, int(m.time.timestamp()), m.skipped))
    exchange_rows = []
    names = []
    for e in exchanges:
        key = keys.get(e.msg_key)
        if key is None:
            key = keys[e.msg_key] = key_id(e.msg_key)
        when = int(e.time.timestamp())
        exchange_rows.append((key, e.address, e.direction, when, e.subject, folder,
                              e.message_id, mailbox))
        if e.name:
            names.append((e.address, e.name, when, e.language if e.direction == "in" else None))
    return LedgerBatch(message_rows, exchange_rows, names,
                       [(address,) for address in dict.fromkeys(e.address for e in exchanges)],
                       [(address,) for address in lists], list(sent_ids), list(held))


def joined(first: LedgerBatch, second: LedgerBatch) -> LedgerBatch:
    """Two parts of one batch as one, in order."""
    return LedgerBatch(first.messages + second.messages, first.exchanges + second.exchanges,
                       first.names + second.names, first.addresses + second.addresses,
                       first.lists + second.lists, first.sent_ids + second.sent_ids,
                       first.held + second.held)


_HEX = frozenset("0123456789abcdef")


def key_id(msg_key: str) -> int:
    """A message's identity as a signed 64-bit integer for the ledger's unique index.

    Keys from classify.message_key start with the message's minute ("01b3f2a4:"); that
    minute becomes the high bits, so a scan, which reads mail roughly in time order, appends
    to the index instead of writing all over it (random keys made every batch dirty pages
    across the whole index, and the cost per message grew with the mailbox). The low 30
    bits are a digest of the whole key: a collision needs ~30,000 messages in one minute.
    Keys without a minute get the negative half, from a 62-bit digest.
    """
    data = msg_key.encode("utf-8", "surrogatepass")
    if len(msg_key) > 9 and msg_key[8] == ":" and _HEX.issuperset(msg_key[:8]):
        low = int.from_bytes(hashlib.blake2b(data, digest_size=4).digest(), "big")
        return (int(msg_key[:8], 16) << 30) | (low & 0x3FFFFFFF)
    digest = int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")
    return -1 - (digest & 0x3FFFFFFFFFFFFFFF)
