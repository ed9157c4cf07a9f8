"""The only package that writes SQL: one database, three families of tables.

``Store(path)`` opens (and migrates) the database and gives each family its own small class:
``store.ledger`` (what the mailbox says, rebuildable), ``store.people`` (contacts and the
user's decisions, kept) with ``store.touchpoints`` (calls and meetings the user logged, kept),
``store.journal`` (what followup did, kept) with ``store.commands`` (commands received by
mail), ``store.cards`` (what the address books say, rebuilt at every sync) and
``store.signatures`` (phone numbers read from signatures). ``store.contacts()`` reads people
with what their cards and touchpoints add (and, without a number on a card, the numbers of
their newest signature).
``store.transaction()`` makes several of their writes one atomic step.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from agent.model import Contact, Touch
from agent.store.cardlinks import Applied, apply_cards
from agent.store.cards import CardProfile, Cards
from agent.store.commands import CommandLog
from agent.store.database import Database
from agent.store.journal import Journal
from agent.store.ledger import Ledger
from agent.store.people import People
from agent.store.signatures import SignatureNumbers, Signatures, newest_of
from agent.store.touchpoints import Touchpoints

_NEVER = datetime.min.replace(tzinfo=UTC)


class Store:
    """An open database with its ledger, people, journal and cards."""

    def __init__(self, path: Path) -> None:
        self.database = Database(path)
        self.ledger = Ledger(self.database)
        self.people = People(self.database)
        self.journal = Journal(self.database)
        self.cards = Cards(self.database)
        self.touchpoints = Touchpoints(self.database)
        self.commands = CommandLog(self.database)
        self.signatures = Signatures(self.database)

    @property
    def path(self) -> Path:
        return self.database.path

    def transaction(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return self.database.transaction()

    def refresh(self, now: datetime) -> int:
        """After new exchanges: per-address aggregates, and a contact for every new address.

        One transaction; returns how many addresses were refreshed.
        """
        with self.transaction():
            count = self.ledger.refresh_aggregates()
            self.people.adopt_new_addresses(now)
        return count

    def apply_cards(self, own: Iterable[str], include_sources: Iterable[str],
                    now: datetime) -> Applied:
        """Join the contacts of addresses that share a card (``agent.store.cardlinks``)."""
        return apply_cards(self.database, own, include_sources, now)

    def contacts(self, self_addresses: Iterable[str] = (), two_way: bool = True,
                 include_ignored: bool = True,
                 include_sources: Iterable[str] = ()) -> list[Contact]:
        """People as ``people.contacts`` has them, with their cards' name, phones, birthday
        and CATEGORIES; and, from ``include_sources``, people known only from a card.

        Someone on a card of an ``include_sources`` source is listed whatever ``two_way``
        says: the card shows that the user knows them. Newest exchange first.
        """
        own = frozenset(self_addresses)
        profiles = self.cards.profiles(include_sources)
        touches = self.touchpoints.latest()
        signed = self.signatures.numbers()
        out = []
        for contact in self.people.contacts(own, two_way=False,
                                            include_ignored=include_ignored):
            profile = profiles.pop(contact.id, None)
            if two_way and not (contact.messages_in and contact.messages_out) and not (
                    profile is not None and profile.include):
                continue
            out.append(with_touch(with_signature(with_card(contact, profile), signed),
                                  touches.get(contact.id)))
        for contact_id, profile in sorted(profiles.items()):
            card_only = self._card_only(contact_id, profile, own)
            if card_only is not None and (include_ignored or not card_only.ignored):
                out.append(with_touch(card_only, touches.get(contact_id)))
        return out

    def contact(self, contact_id: int, self_addresses: Iterable[str] = (),
                include_sources: Iterable[str] = ()) -> Contact | None:
        """One contact with its card details; None without exchanges and without a card."""
        own = frozenset(self_addresses)
        profile = self.cards.profiles(include_sources).get(contact_id)
        touch = self.touchpoints.latest().get(contact_id)
        contact = self.people.contact(contact_id, own)
        if contact is not None:
            return with_touch(with_signature(with_card(contact, profile),
                                             self.signatures.numbers()), touch)
        card_only = None if profile is None else self._card_only(contact_id, profile, own)
        return None if card_only is None else with_touch(card_only, touch)

    def _card_only(self, contact_id: int, profile: CardProfile,
                   own: frozenset[str]) -> Contact | None:
        """Someone known only from a card (``include_without_mail``), or None."""
        addresses = tuple(a for a in profile.addresses if a not in own)
        decisions = self.people.decisions_of(contact_id)
        if not profile.include or decisions is None or self.people.addresses_of(contact_id) \
                or self.people.follow_merges(contact_id) != contact_id:
            return None
        return Contact(
            id=contact_id, name=decisions.name or profile.name,
            email=addresses[0] if addresses else "", addresses=addresses,
            last_exchange=_NEVER, last_direction="out", last_subject="", last_folder="",
            last_message_id=None, last_in=None, last_out=None, messages_in=0, messages_out=0,
            snooze_until=decisions.snooze_until, ignored=decisions.ignored,
            cadence_days=decisions.cadence_days, language=decisions.language,
            tags=decisions.tags, card_tags=frozenset(profile.tags),
            phones=tuple(profile.phones), birthday=profile.birthday)

    def close(self) -> None:
        self.database.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def with_touch(contact: Contact, touch: Touch | None) -> Contact:
    """``contact`` with its newest logged touchpoint (the clock runs from the later of that
    and the last exchange)."""
    if touch is None:
        return contact
    return replace(contact, last_touch=touch.time, touch=touch)


def with_card(contact: Contact, profile: CardProfile | None) -> Contact:
    """``contact`` with what its cards say: FN names them unless the user named them."""
    if profile is None:
        return contact
    return replace(contact, name=profile.user_name or profile.name or contact.name,
                   card_tags=frozenset(profile.tags), phones=tuple(profile.phones),
                   birthday=profile.birthday)


def with_signature(contact: Contact, numbers: dict[str, SignatureNumbers]) -> Contact:
    """``contact`` with the numbers of their newest signature, unless a card gives one:
    an address book's number always wins."""
    if contact.phones:
        return contact
    return replace(contact, phones=newest_of(contact.addresses, numbers))
