"""The addresses on one card are one person: joining their contacts, and undoing it.

``apply_cards`` runs after every sync and every scan, in one transaction, and brings the
people in line with the cards as they are now:

1. An address a card moved (a row in ``card_links``: where it went, where it came from) that
   the user has moved since (``followup split``, ``followup merge``) is the user's now: the
   link is dropped and no card moves that address again while the user's move stands. A split
   address is also in ``kept_apart``, so no card joins it to anyone again.
2. Cards that share an address describe one person: they form a group. Addresses of the user
   (a card of their own), of mailing lists and those kept apart do not count.
3. A moved address whose group no longer holds it together (the card was deleted, or no
   longer lists it, or lists it without the address it was joined to) goes back to the
   contact it came from. An address is held together by an *anchor* on its contact: an
   address of the group that is there by itself (not moved by a card), or the contact that
   was made for the card.
4. A group whose addresses are on several contacts is joined on one: the contact made for
   one of its cards if there is one (it holds the user's decisions about that person), else
   the contact with the most addresses (a person the user merged by hand stays whole), the
   lowest id on a tie. Each address moved there is recorded with where it came from.
5. A group none of whose addresses has been in the mail, on a source with
   ``include_without_mail``, gets a contact of its own, kept under the card's source and UID
   so that it keeps its id (and the user's decisions) across syncs.

Only addresses that have a contact (they were in the mail) are moved: an address the mail
has never seen gets its contact when it first appears, and the next run joins it.
Decisions are not copied between contacts; the joined person has the decisions of the
contact they were joined on, and an undone join gives each contact back its own.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from agent.store.cards import card_key
from agent.store.database import Database, epoch
from agent.store.people import People

log = logging.getLogger(__name__)


@dataclass
class Applied:
    """What one run of ``apply_cards`` changed."""

    moved: list[str] = field(default_factory=list)  # addresses joined to another contact
    restored: list[str] = field(default_factory=list)  # addresses given back
    created: list[int] = field(default_factory=list)  # contacts made for card-only people


@dataclass
class _Group:
    """Cards joined by shared addresses: one person."""

    keys: list[str] = field(default_factory=list)  # card keys, in card order
    addresses: list[str] = field(default_factory=list)  # those that count
    listed: set[str] = field(default_factory=set)  # every address on the cards
    include: bool = False


def _groups(db: Database, excluded: set[str], own: set[str],
            include: set[str]) -> list[_Group]:
    """Cards joined by shared addresses (union-find over card ids)."""
    cards = db.query("SELECT id, source, href, uid FROM cards ORDER BY id")
    by_card: dict[int, list[str]] = {}
    for row in db.query("SELECT card_id, address FROM card_addresses ORDER BY card_id, position"):
        by_card.setdefault(row["card_id"], []).append(row["address"])
    parent = {card["id"]: card["id"] for card in cards}

    def root(item: int) -> int:
        while parent[item] != item:
            parent[item] = parent[parent[item]]
            item = parent[item]
        return item

    first_card: dict[str, int] = {}
    for card in cards:
        for address in by_card.get(card["id"], []):
            if address in first_card:
                parent[root(card["id"])] = root(first_card[address])
            else:
                first_card[address] = card["id"]
    groups: dict[int, _Group] = {}
    for card in cards:
        addresses = by_card.get(card["id"], [])
        if own.intersection(addresses):
            continue  # the user's own card: not a person to keep in touch with
        group = groups.setdefault(root(card["id"]), _Group())
        group.keys.append(card_key(card["source"], card["uid"], card["href"]))
        group.listed.update(addresses)
        group.addresses += [a for a in addresses
                            if a not in excluded and a not in group.addresses]
        group.include = group.include or card["source"] in include
    return list(groups.values())


def apply_cards(db: Database, own: Iterable[str], include_sources: Iterable[str],
                now: datetime) -> Applied:
    """Bring people in line with the cards (see the module docstring); one transaction."""
    own_keys, include = set(own), set(include_sources)
    result = Applied()
    with db.transaction() as conn:
        current = {r["address"]: r["contact_id"] for r in db.query(
            "SELECT address, contact_id FROM contact_addresses")}
        links = {r["address"]: (r["contact_id"], r["previous_contact_id"]) for r in db.query(
            "SELECT address, contact_id, previous_contact_id FROM card_links")}
        # 1. Moved by the user since: theirs now.
        for address, (into, _) in list(links.items()):
            if current.get(address) != into:
                conn.execute("DELETE FROM card_links WHERE address = ?", (address,))
                del links[address]
        apart = {r["address"] for r in db.query("SELECT address FROM kept_apart")}
        lists = {r["address"] for r in db.query("SELECT address FROM lists")}
        made = {r["card_key"]: r["contact_id"] for r in db.query(
            "SELECT card_key, contact_id FROM card_contacts")}
        # 2. Groups; a card with one of the user's own addresses is the user's own card.
        groups = _groups(db, apart | lists, own_keys, include)
        group_of = {a: g for g in groups for a in g.addresses}

        def anchors(group: _Group) -> set[int]:
            found = {current[a] for a in group.addresses if a in current and a not in links}
            return found | {made[k] for k in group.keys if k in made}

        # 3. Give back what no card holds together any more.
        for address, (into, previous) in sorted(links.items()):
            group = group_of.get(address)
            if group is not None and into in anchors(group):
                continue
            home = People(db).follow_merges(previous)
            conn.execute("UPDATE contact_addresses SET contact_id = ? WHERE address = ?",
                         (home, address))
            conn.execute("DELETE FROM card_links WHERE address = ?", (address,))
            current[address] = home
            del links[address]
            result.restored.append(address)

        # 4. and 5. Join each group on one contact; a contact for card-only people.
        for group in groups:
            cards_made = sorted({made[k] for k in group.keys if k in made})
            holders = {current[a] for a in group.addresses if a in current}
            if not holders and not cards_made:
                # A card-only person: none of the card's addresses (not even one the user
                # split off or a list's) has a contact of its own.
                if group.include and not group.listed.intersection(current):
                    contact_id = int(conn.execute("INSERT INTO contacts (created_at) VALUES (?)",
                                                  (epoch(now),)).lastrowid or 0)
                    conn.execute("INSERT INTO card_contacts (card_key, contact_id) VALUES (?, ?)",
                                 (group.keys[0], contact_id))
                    result.created.append(contact_id)
                continue
            if len(holders | set(cards_made)) <= 1:
                continue
            target = cards_made[0] if cards_made else _largest(db, holders)
            for address in group.addresses:
                where = current.get(address)
                if where is None or where == target:
                    continue
                previous = links[address][1] if address in links else where
                if previous == target:
                    conn.execute("DELETE FROM card_links WHERE address = ?", (address,))
                    links.pop(address, None)
                else:
                    conn.execute(
                        "INSERT INTO card_links (address, contact_id, previous_contact_id) "
                        "VALUES (?, ?, ?) ON CONFLICT (address) DO UPDATE SET "
                        "contact_id = excluded.contact_id", (address, target, previous))
                    links[address] = (target, previous)
                conn.execute("UPDATE contact_addresses SET contact_id = ? WHERE address = ?",
                             (target, address))
                current[address] = target
                result.moved.append(address)
    if result.moved or result.restored or result.created:
        log.info("address book: %d address(es) joined, %d given back, %d new card-only "
                 "contact(s)", len(result.moved), len(result.restored), len(result.created))
    return result


def _largest(db: Database, contact_ids: set[int]) -> int:
    """The contact with the most addresses; the lowest id on a tie."""
    counts = {row["contact_id"]: row["n"] for row in db.query(
        "SELECT contact_id, count(*) AS n FROM contact_addresses GROUP BY contact_id")}
    return min(contact_ids, key=lambda i: (-counts.get(i, 0), i))
