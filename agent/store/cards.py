"""Cards: what the address books say (rebuilt from the sources) and what it adds to people.

Each sync of one source is one transaction (``save``): its changed cards replace the old
ones, deleted cards go with their addresses, tags and phones (ON DELETE CASCADE). Which
addresses the cards put together is ``agent.store.cardlinks``; reading a contact's card
details (FN, phones, birthday, CATEGORIES) is ``profiles``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from agent.model import Card, Phone
from agent.store.database import Database, epoch, from_epoch


@dataclass(frozen=True)
class SourceRecord:
    """One address book as last synced, with what was read from it."""

    source: str
    name: str
    kind: str
    synced_at: datetime | None
    problems: tuple[str, ...]
    cards: int
    addresses: int
    merged: int  # addresses a card of this source moved to the contact of another address
    phones: int
    birthdays: int


@dataclass
class CardProfile:
    """What the cards say about one contact (several cards of one person are combined)."""

    name: str = ""
    user_name: str | None = None  # a name the user gave: it wins over FN
    addresses: list[str] = field(default_factory=list)
    phones: list[Phone] = field(default_factory=list)
    birthday: str | None = None
    tags: set[str] = field(default_factory=set)
    include: bool = False  # on a card of a source with include_without_mail = true


def card_key(source: str, card_uid: str | None, href: str) -> str:
    """A card's lasting name: its source and UID (the href when it has none)."""
    return f"{source}\x00{card_uid or href}"


class Cards:
    """Address book sources, their cards, and each contact's card details."""

    def __init__(self, database: Database) -> None:
        self._db = database

    # ------------------------------------------------------------------ sync state

    def state(self, source: str) -> str | None:
        """The source's saved change marker (JSON text), None before its first sync."""
        value = self._db.value("SELECT state FROM addressbooks WHERE source = ?", (source,))
        return None if value is None else str(value)

    def etags(self, source: str) -> dict[str, str]:
        """href → etag of every card saved from ``source``."""
        return {row["href"]: row["etag"] for row in self._db.query(
            "SELECT href, etag FROM cards WHERE source = ?", (source,))}

    def save(self, source: str, *, name: str, kind: str, state: str | None,
             changed: Sequence[Card], deleted: Iterable[str], now: datetime,
             problems: Sequence[str] = (), replace_all: bool = False) -> None:
        """Record one sync of ``source`` atomically.

        ``changed`` cards replace the saved ones with the same href; ``deleted`` hrefs go
        (with everything that came from them); ``replace_all`` also drops every card not in
        ``changed`` (a source that was read whole).
        """
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO addressbooks (source, name, kind, state, synced_at, problems) "
                "VALUES (:source, :name, :kind, :state, :at, :problems) "
                "ON CONFLICT (source) DO UPDATE SET name = excluded.name, kind = excluded.kind, "
                "state = excluded.state, synced_at = excluded.synced_at, "
                "problems = excluded.problems",
                {"source": source, "name": name, "kind": kind, "state": state,
                 "at": epoch(now), "problems": json.dumps(list(problems))})
            gone = set(deleted) | {card.href for card in changed}
            if replace_all:
                gone |= set(self.etags(source))
            conn.executemany("DELETE FROM cards WHERE source = ? AND href = ?",
                             [(source, href) for href in sorted(gone)])
            for card in changed:
                self._insert(source, card)

    def _insert(self, source: str, card: Card) -> None:
        card_id = self._db.table("cards").insert({
            "source": source, "href": card.href, "etag": card.etag, "uid": card.uid,
            "name": card.name, "birthday": card.birthday}).last_pk
        self._db.table("card_addresses").insert_all(
            [{"card_id": card_id, "address": a, "position": i}
             for i, a in enumerate(dict.fromkeys(card.addresses))])
        self._db.table("card_tags").insert_all(
            [{"card_id": card_id, "tag": t} for t in dict.fromkeys(card.tags)])
        self._db.table("phones").insert_all(
            [{"number": p.number, "type": p.type, "source": "addressbook", "card_id": card_id,
              "position": i} for i, p in enumerate(card.phones)])

    def note_problems(self, source: str, name: str, kind: str, problems: Sequence[str]) -> None:
        """A sync that failed: keep the cards read before, remember why it failed."""
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO addressbooks (source, name, kind, problems) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (source) DO UPDATE SET name = excluded.name, "
                "problems = excluded.problems",
                (source, name, kind, json.dumps(list(problems))))
        # synced_at stays: it is the time of the last *successful* read.

    def forget_state(self) -> None:
        """`scan --full`: read every source whole again at the next sync (cards stay)."""
        with self._db.transaction() as conn:
            conn.execute("UPDATE addressbooks SET state = NULL")

    def drop_sources_except(self, sources: Iterable[str]) -> list[str]:
        """Forget sources no longer in the config, and what came from them; their names."""
        keep = set(sources)
        gone = [row["source"] for row in self._db.query("SELECT source FROM addressbooks")
                if row["source"] not in keep]
        with self._db.transaction() as conn:
            conn.executemany("DELETE FROM addressbooks WHERE source = ?", [(s,) for s in gone])
        return gone

    # ------------------------------------------------------------------ reading

    def sources(self) -> list[SourceRecord]:
        """Every synced source with its counts, in the order first synced."""
        out = []
        for row in self._db.query("""
            SELECT b.source, b.name, b.kind, b.synced_at, b.problems,
                (SELECT count(*) FROM cards WHERE source = b.source) AS cards,
                (SELECT count(DISTINCT ca.address) FROM card_addresses AS ca
                 JOIN cards AS c ON c.id = ca.card_id WHERE c.source = b.source) AS addresses,
                (SELECT count(DISTINCT ca.address) FROM card_addresses AS ca
                 JOIN cards AS c ON c.id = ca.card_id JOIN card_links AS l
                 ON l.address = ca.address WHERE c.source = b.source) AS merged,
                (SELECT count(*) FROM phones AS p JOIN cards AS c ON c.id = p.card_id
                 WHERE c.source = b.source) AS phones,
                (SELECT count(*) FROM cards WHERE source = b.source
                 AND birthday IS NOT NULL) AS birthdays
            FROM addressbooks AS b ORDER BY b.rowid"""):
            out.append(SourceRecord(
                source=row["source"], name=row["name"], kind=row["kind"],
                synced_at=from_epoch(row["synced_at"]),
                problems=tuple(json.loads(row["problems"] or "[]")), cards=row["cards"],
                addresses=row["addresses"], merged=row["merged"], phones=row["phones"],
                birthdays=row["birthdays"]))
        return out

    def profiles(self, include_sources: Iterable[str] = ()) -> dict[int, CardProfile]:
        """Contact id → what its cards say.

        A card belongs to the contacts of its addresses (not those the user split off), or,
        for someone known only from a card, to the contact made for that card. Several cards
        of one contact: the first card's FN and birthday, every phone and tag.
        """
        include = set(include_sources)
        owners: dict[int, list[int]] = {}  # card id → contact ids
        for row in self._db.query("""
            SELECT DISTINCT ca.card_id, x.contact_id FROM card_addresses AS ca
            JOIN contact_addresses AS x ON x.address = ca.address
            WHERE ca.address NOT IN (SELECT address FROM kept_apart)
            ORDER BY ca.card_id, x.contact_id"""):
            owners.setdefault(row["card_id"], []).append(row["contact_id"])
        keys = {row["card_key"]: row["contact_id"] for row in self._db.query(
            "SELECT card_key, contact_id FROM card_contacts")}
        addresses: dict[int, list[str]] = {}
        for row in self._db.query(
                "SELECT card_id, address FROM card_addresses ORDER BY card_id, position"):
            addresses.setdefault(row["card_id"], []).append(row["address"])
        tags: dict[int, set[str]] = {}
        for row in self._db.query("SELECT card_id, tag FROM card_tags"):
            tags.setdefault(row["card_id"], set()).add(row["tag"])
        phones: dict[int, list[Phone]] = {}
        for row in self._db.query("SELECT card_id, number, type FROM phones "
                                  "WHERE card_id IS NOT NULL ORDER BY card_id, position"):
            phones.setdefault(row["card_id"], []).append(Phone(row["number"], row["type"]))
        names = {row["id"]: row["name"] for row in self._db.query(
            "SELECT id, name FROM contacts WHERE name IS NOT NULL")}

        out: dict[int, CardProfile] = {}
        for card in self._db.query(
                "SELECT id, source, href, uid, name, birthday FROM cards ORDER BY id"):
            contacts = owners.get(card["id"]) or []
            made = keys.get(card_key(card["source"], card["uid"], card["href"]))
            if not contacts and made is not None:
                contacts = [made]
            for contact_id in contacts:
                profile = out.setdefault(contact_id, CardProfile(user_name=names.get(contact_id)))
                profile.name = profile.name or card["name"]
                profile.birthday = profile.birthday or card["birthday"]
                profile.include = profile.include or card["source"] in include
                profile.addresses += [a for a in addresses.get(card["id"], [])
                                      if a not in profile.addresses]
                profile.tags |= tags.get(card["id"], set())
                have = {p.number for p in profile.phones}
                profile.phones += [p for p in phones.get(card["id"], []) if p.number not in have]
        return out

    def contact_of(self, address: str) -> int | None:
        """The contact made for a card-only person with this address on their card."""
        rows = self._db.query("""
            SELECT k.contact_id FROM card_addresses AS ca JOIN cards AS c ON c.id = ca.card_id
            JOIN card_contacts AS k
                ON k.card_key = c.source || char(0) || coalesce(c.uid, c.href)
            WHERE ca.address = ? ORDER BY c.id LIMIT 1""", (address,))
        return int(rows[0]["contact_id"]) if rows else None
