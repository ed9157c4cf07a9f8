"""Today's plan: every contact's state, the due list, the picks and the replies owed —
decided once, recorded once.

The digest, the drafts, ``followup due`` and ``followup show`` all read the same plan, so
they agree on who is picked today. ``plan_today`` records the picks before anything is
delivered: a retry, or a second run later the same day, keeps them. The replies owed today
follow from the states alone (oldest message first), so they need no record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from agent import policy
from agent.config import Config
from agent.identity import self_keys
from agent.model import Contact, ContactState
from agent.store import Store


@dataclass(frozen=True)
class Plan:
    """Today's decisions: every contact's state, the due list in order, and the picks."""

    day: date
    states: list[ContactState]
    due: list[ContactState]  # waiting, overdue and due, most urgent first
    picks: list[ContactState]  # people to get in touch with (overdue, due, birthdays …)
    birthdays: list[tuple[ContactState, date]] = field(default_factory=list)  # this week
    replies: list[ContactState] = field(default_factory=list)  # replies owed, own cap

    @property
    def listed(self) -> list[ContactState]:
        """The due list with the picks that are not on it (a birthday, no contact on
        record) in front: what `followup due` shows."""
        due_ids = {s.contact.id for s in self.due}
        return [s for s in self.picks if s.contact.id not in due_ids] + self.due

    @property
    def rest(self) -> list[ContactState]:
        """The due list without today's picks and replies: the digest's "Also due"."""
        shown = {s.contact.id for s in (*self.picks, *self.replies)}
        return [s for s in self.due if s.contact.id not in shown]

    @property
    def shown(self) -> list[ContactState]:
        """Everyone the digest names (picks, replies, the rest), in the digest's order."""
        return [*self.picks, *self.replies, *self.rest]


def include_sources(config: Config) -> list[str]:
    """Address books whose people are contacts also without mail (``include_without_mail``)."""
    return [book.source for book in config.addressbook if book.include_without_mail]


def contacts(config: Config, store: Store) -> list[Contact]:
    """The contacts as the ledger, the address books and the user's decisions have them
    (``two_way`` applied to people not on a card of an ``include_without_mail`` source)."""
    return store.contacts(self_keys(config), two_way=config.policy.two_way,
                          include_sources=include_sources(config))


def decide(config: Config, store: Store, now: datetime) -> list[ContactState]:
    """Every contact with its status today, most recent exchange first."""
    return policy.evaluate(contacts(config, store), config.policy, config.digest.tz, now)


def make_plan(config: Config, store: Store, now: datetime) -> Plan:
    """Today's plan without recording anything (picks already recorded today come first)."""
    states = decide(config, store, now)
    day = policy.today(now, config.digest.tz)
    picks = policy.pick_today(states, config.policy.daily_picks, day,
                              store.journal.pick_history())
    replies = policy.replies_today(states, config.digest.max_replies, picks)
    if config.digest.prefer == "call":
        picks, replies = policy.call_first(picks), policy.call_first(replies)
    birthdays = policy.upcoming_birthdays(states, day, config.digest.birthday_days)
    return Plan(day=day, states=states, due=policy.ranked(states), picks=picks,
                birthdays=birthdays, replies=replies)


def plan_today(config: Config, store: Store, now: datetime) -> Plan:
    """Today's plan, with its picks recorded first, so every later run today agrees."""
    plan = make_plan(config, store, now)
    store.journal.record_picks(plan.day, [s.contact.id for s in plan.picks])
    return plan
