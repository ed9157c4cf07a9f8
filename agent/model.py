"""Plain records passed between the store, the policy and the renderers."""

from __future__ import annotations

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
