"""People: which addresses make one contact, and what the user decided about each (kept).

A contact id is given to every address the first time the ledger sees it and never changes;
merging points one id at another. The decisions (name, snooze, ignore, cadence, language,
tags) survive any rescan. Reading a ``Contact`` joins them with the ledger's per-address
aggregates. Wording for the user (unknown contact, did you mean) lives in agent.decisions.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from agent.headers.addresses import normalise_address
from agent.model import Contact
from agent.store.database import Database, Row, epoch, from_epoch

_NEVER = datetime.min.replace(tzinfo=UTC)
DECISION_COLUMNS = ("name", "snooze_until", "ignored", "cadence_days", "language")
_DECISIONS = "SELECT id, name, snooze_until, ignored, cadence_days, language FROM contacts"

_ADDRESS_ROWS = """
    SELECT ca.contact_id, a.address, a.name, a.language, a.last_time, a.last_direction,
        a.last_subject, a.last_folder, a.last_message_id, a.last_in, a.last_out,
        a.messages_in, a.messages_out, a.last_mailbox
    FROM addresses AS a JOIN contact_addresses AS ca ON ca.address = a.address
"""


@dataclass(frozen=True)
class Decisions:
    """What the user decided about one contact; kept across rescans."""

    name: str | None
    snooze_until: date | None
    ignored: bool
    cadence_days: int | None
    language: str | None
    tags: frozenset[str]
    merged_ids: tuple[int, ...]  # contacts merged into this one; their ids resolve to it


def _day(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


def _contact(contact_id: int, rows: list[Row], decision: Row | None,
             tags: Iterable[str]) -> Contact:
    """One Contact from its addresses' aggregate rows (newest first) and its decisions."""
    newest = rows[0]
    last_in = max((r["last_in"] for r in rows if r["last_in"] is not None), default=None)
    last_out = max((r["last_out"] for r in rows if r["last_out"] is not None), default=None)
    decision = decision or {}
    return Contact(
        id=contact_id,
        name=decision.get("name") or next((r["name"] for r in rows if r["name"]), ""),
        email=newest["address"],
        addresses=tuple(r["address"] for r in rows),
        last_exchange=from_epoch(newest["last_time"]) or _NEVER,
        last_direction=newest["last_direction"],
        last_subject=newest["last_subject"],
        last_folder=newest["last_folder"],
        last_mailbox=newest["last_mailbox"],
        last_message_id=newest["last_message_id"],
        last_in=from_epoch(last_in),
        last_out=from_epoch(last_out),
        messages_in=sum(r["messages_in"] for r in rows),
        messages_out=sum(r["messages_out"] for r in rows),
        language_hint=next((r["language"] for r in rows if r["language"]), None),
        snooze_until=_day(decision.get("snooze_until")),
        ignored=bool(decision.get("ignored")),
        cadence_days=decision.get("cadence_days"),
        language=decision.get("language"),
        tags=frozenset(tags),
    )


class People:
    """Contacts, their addresses and tags, and the user's decisions about them."""

    def __init__(self, database: Database) -> None:
        self._db = database

    # ------------------------------------------------------------------ reading

    def contacts(self, self_addresses: Iterable[str] = (), two_way: bool = True,
                 include_ignored: bool = True) -> list[Contact]:
        """Every person with at least one exchange (both directions when ``two_way``).

        The user's own addresses and mailing-list addresses are left out. Newest first.
        """
        excluded = self._excluded(self_addresses)
        grouped: dict[int, list[Row]] = {}
        for row in self._db.query(_ADDRESS_ROWS + " ORDER BY ca.contact_id, a.last_time DESC"):
            if row["address"] not in excluded:
                grouped.setdefault(row["contact_id"], []).append(row)
        decisions = {row["id"]: row for row in self._db.query(_DECISIONS)}
        tags: dict[int, set[str]] = {}
        for row in self._db.query("SELECT contact_id, tag FROM contact_tags"):
            tags.setdefault(row["contact_id"], set()).add(row["tag"])
        out = []
        for contact_id, rows in grouped.items():
            contact = _contact(contact_id, rows, decisions.get(contact_id),
                               tags.get(contact_id, ()))
            if two_way and not (contact.messages_in and contact.messages_out):
                continue
            if contact.ignored and not include_ignored:
                continue
            out.append(contact)
        out.sort(key=lambda c: c.last_exchange, reverse=True)
        return out

    def contact(self, contact_id: int, self_addresses: Iterable[str] = ()) -> Contact | None:
        """One contact with its decisions, whatever ``two_way`` says; None without exchanges.

        Like ``contacts()``, the user's own and mailing-list addresses are left out.
        """
        excluded = self._excluded(self_addresses)
        rows = [row for row in self._db.query(
            _ADDRESS_ROWS + " WHERE ca.contact_id = ? ORDER BY a.last_time DESC", (contact_id,))
            if row["address"] not in excluded]
        if not rows:
            return None
        decision = self._db.query(_DECISIONS + " WHERE id = ?", (contact_id,))
        return _contact(contact_id, rows, decision[0] if decision else None,
                        self._tags(contact_id))

    def _excluded(self, self_addresses: Iterable[str]) -> set[str]:
        lists = {row["address"] for row in self._db.query("SELECT address FROM lists")}
        return set(self_addresses) | lists

    def _tags(self, contact_id: int) -> frozenset[str]:
        return frozenset(row["tag"] for row in self._db.query(
            "SELECT tag FROM contact_tags WHERE contact_id = ?", (contact_id,)))

    def exists(self, contact_id: int) -> bool:
        return self._db.value("SELECT 1 FROM contacts WHERE id = ?", (contact_id,)) is not None

    def decisions_of(self, contact_id: int) -> Decisions | None:
        """Everything the user decided about one contact, with or without exchanges."""
        rows = self._db.query(_DECISIONS + " WHERE id = ?", (contact_id,))
        if not rows:
            return None
        row = rows[0]
        merged = tuple(r["id"] for r in self._db.query("""
            WITH RECURSIVE gone (id) AS (
                SELECT id FROM contacts WHERE merged_into = :id
                UNION SELECT c.id FROM contacts AS c JOIN gone ON c.merged_into = gone.id
            ) SELECT id FROM gone ORDER BY id""", {"id": contact_id}))
        return Decisions(name=row["name"], snooze_until=_day(row["snooze_until"]),
                         ignored=bool(row["ignored"]), cadence_days=row["cadence_days"],
                         language=row["language"], tags=self._tags(contact_id),
                         merged_ids=merged)

    def addresses_of(self, contact_id: int) -> list[str]:
        return [row["address"] for row in self._db.query(
            "SELECT address FROM contact_addresses WHERE contact_id = ? ORDER BY address",
            (contact_id,))]

    def id_of(self, ref: str) -> int | None:
        """The contact an id or an address (any spelling) names, following merges; None if
        unknown. Addresses go through ``normalise_address`` (case, ``+tag``, Gmail dots)."""
        text = ref.strip()
        if text.isascii() and text.isdigit():
            if len(text) > 18:  # beyond SQLite's 64-bit integers: no such contact
                return None
            return self.follow_merges(int(text)) if self.exists(int(text)) else None
        key = normalise_address(text)
        if key is None:
            return None
        found = self._db.value("SELECT contact_id FROM contact_addresses WHERE address = ?",
                               (key,))
        return None if found is None else self.follow_merges(int(found))

    def follow_merges(self, contact_id: int) -> int:
        seen = set()
        while contact_id not in seen:
            seen.add(contact_id)
            into = self._db.value("SELECT merged_into FROM contacts WHERE id = ?", (contact_id,))
            if into is None:
                return contact_id
            contact_id = int(into)
        return contact_id

    def close_matches(self, text: str, limit: int = 3) -> list[tuple[str, str]]:
        """Known (address, name) pairs that look like ``text``: a typo, or part of either."""
        needle = text.strip().lower()
        names: dict[str, str] = {row["address"]: row["name"] for row in self._db.query(
            "SELECT ca.address, coalesce(n.name, '') AS name FROM contact_addresses AS ca "
            "LEFT JOIN address_names AS n ON n.address = ca.address ORDER BY ca.address")}
        found = []
        if len(needle) >= 3:  # shorter parts match half the ledger and help nobody
            found = [a for a, name in names.items() if needle in a or needle in name.lower()]
        similar = difflib.get_close_matches(needle, list(names), n=limit, cutoff=0.6)
        if similar:
            # A shared domain makes every address on it look alike: keep the near-best only.
            best = difflib.SequenceMatcher(None, needle, similar[0]).ratio()
            found += [a for a in similar
                      if difflib.SequenceMatcher(None, needle, a).ratio() >= best - 0.1]
        return [(a, names[a]) for a in dict.fromkeys(found)][:limit]

    # ------------------------------------------------------------------ writing

    def adopt_new_addresses(self, now: datetime) -> int:
        """Give every ledger address without a contact one of its own; returns how many.

        Idempotent: run after each scan, it also heals a scan killed before it ran.
        """
        with self._db.transaction() as conn:
            new = conn.execute(
                "SELECT address FROM addresses WHERE address NOT IN "
                "(SELECT address FROM contact_addresses) ORDER BY address").fetchall()
            for (address,) in new:
                cursor = conn.execute("INSERT INTO contacts (created_at) VALUES (?)",
                                      (epoch(now),))
                conn.execute("INSERT INTO contact_addresses (address, contact_id) VALUES (?, ?)",
                             (address, cursor.lastrowid))
        return len(new)

    def set_decision(self, contact_id: int, **values: Any) -> None:
        unknown = set(values) - set(DECISION_COLUMNS)
        if unknown:
            raise ValueError(f"unknown decision {unknown}")
        if not values:
            return
        updates = {k: v.isoformat() if isinstance(v, date) else v for k, v in values.items()}
        with self._db.transaction():
            self._db.table("contacts").update(contact_id, updates)

    def snooze_at_least(self, contact_id: int, until: date) -> date:
        """Snooze through ``until`` unless a longer snooze is set; the snooze now in force."""
        contact_id = self.follow_merges(contact_id)
        with self._db.transaction() as conn:
            # ISO dates compare correctly as text.
            conn.execute("UPDATE contacts SET snooze_until = max(coalesce(snooze_until, ''), ?) "
                         "WHERE id = ?", (until.isoformat(), contact_id))
            value = conn.execute("SELECT snooze_until FROM contacts WHERE id = ?",
                                 (contact_id,)).fetchone()
        return _day(value[0] if value else None) or until

    def add_tags(self, contact_id: int, tags: Iterable[str]) -> None:
        with self._db.transaction():
            self._db.table("contact_tags").insert_all(
                [{"contact_id": contact_id, "tag": t} for t in tags], ignore=True)

    def remove_tags(self, contact_id: int, tags: Iterable[str]) -> None:
        with self._db.transaction() as conn:
            conn.executemany("DELETE FROM contact_tags WHERE contact_id = ? AND tag = ?",
                             [(contact_id, t) for t in tags])

    def merge(self, keep: int, other: int) -> None:
        """Move every address of ``other`` to ``keep``; ``other``'s id then points at ``keep``.

        Decisions of ``keep`` win; tags are united; a snooze or ignore on ``other`` is kept
        when ``keep`` has none.
        """
        if keep == other:
            raise ValueError("merge needs two different contacts")
        with self._db.transaction() as conn:
            conn.execute("UPDATE contact_addresses SET contact_id = ? WHERE contact_id = ?",
                         (keep, other))
            conn.execute("INSERT OR IGNORE INTO contact_tags (contact_id, tag) "
                         "SELECT ?, tag FROM contact_tags WHERE contact_id = ?", (keep, other))
            conn.execute("DELETE FROM contact_tags WHERE contact_id = ?", (other,))
            conn.execute("""
                UPDATE contacts SET
                    name = coalesce(name, (SELECT name FROM contacts WHERE id = :other)),
                    snooze_until = coalesce(snooze_until,
                        (SELECT snooze_until FROM contacts WHERE id = :other)),
                    ignored = max(ignored, (SELECT ignored FROM contacts WHERE id = :other)),
                    cadence_days = coalesce(cadence_days,
                        (SELECT cadence_days FROM contacts WHERE id = :other)),
                    language = coalesce(language,
                        (SELECT language FROM contacts WHERE id = :other))
                WHERE id = :keep""", {"keep": keep, "other": other})
            conn.execute("UPDATE contacts SET merged_into = ? WHERE id = ?", (keep, other))

    def split(self, address: str, now: datetime) -> int:
        """Give ``address`` (an identity key) a contact of its own again; returns the new id.

        The new contact starts without decisions: it is a different person now. The split
        is kept (``kept_apart``): no address book card joins the address to anyone again.
        """
        with self._db.transaction() as conn:
            cursor = conn.execute("INSERT INTO contacts (created_at) VALUES (?)", (epoch(now),))
            new_id = int(cursor.lastrowid or 0)
            conn.execute("UPDATE contact_addresses SET contact_id = ? WHERE address = ?",
                         (new_id, address))
            conn.execute("INSERT OR REPLACE INTO kept_apart (address, since) VALUES (?, ?)",
                         (address, epoch(now)))
        return new_id
