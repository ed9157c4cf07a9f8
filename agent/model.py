"""Plain records passed between the store, the policy and the renderers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal

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
    tags: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class ContactState:
    """What the policy decided about one contact on one day, and why."""

    contact: Contact
    status: Status
    due_date: date | None  # the day the contact reaches the line (None when ignored)
    cadence_days: int | None
    reason: str
    urgency: float  # higher is more urgent; only meaningful for due/overdue/waiting
