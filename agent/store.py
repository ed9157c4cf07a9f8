"""The only module that writes SQL: the ledger (rebuildable) and the user's decisions (kept)."""

from __future__ import annotations

import contextlib
import difflib
import errno
import fcntl
import hashlib
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from agent.errors import StoreError, UsageError
from agent.model import Contact, Direction, Exchange

log = logging.getLogger(__name__)

# Tables rebuilt from the mailbox by `scan --full`. Everything else is the user's.
MAILBOX_TABLES = (
    "folders", "messages", "exchanges", "addresses", "address_names", "lists", "dirty",
)


_HEX = frozenset("0123456789abcdef")


def key_id(msg_key: str) -> int:
    """A message's identity as a signed 64-bit integer for the ledger's unique index.

    Keys from scan.message_key start with the message's minute ("01b3f2a4:"); that minute
    becomes the high bits, so a scan, which reads mail roughly in time order, appends to
    the index instead of writing all over it (random keys made every batch dirty pages
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


def _epoch(value: datetime) -> int:
    return int(value.timestamp())


def _from_epoch(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


# --------------------------------------------------------------------------- migrations


def _m1_initial(db: sqlite_utils.Database) -> None:
    db.executescript("""
    -- Derived from the mailbox; `scan --full` empties these.
    CREATE TABLE folders (
        name TEXT PRIMARY KEY,
        uidvalidity INTEGER NOT NULL,
        last_uid INTEGER NOT NULL DEFAULT 0,
        uidnext INTEGER NOT NULL DEFAULT 0,
        highestmodseq INTEGER,
        scanned_at INTEGER
    );
    CREATE TABLE messages (             -- every message seen, per folder and UID
        folder TEXT NOT NULL,
        uid INTEGER NOT NULL,
        msg_key INTEGER NOT NULL,       -- 64-bit digest of the message's identity
        time INTEGER NOT NULL,          -- epoch seconds, UTC
        skipped TEXT,                   -- why it does not count, NULL when it does
        PRIMARY KEY (folder, uid)
    ) WITHOUT ROWID;
    CREATE TABLE exchanges (            -- one per message and counterpart address
        msg_key INTEGER NOT NULL,
        address TEXT NOT NULL,
        direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
        time INTEGER NOT NULL,
        subject TEXT NOT NULL,
        folder TEXT NOT NULL,
        message_id TEXT,
        UNIQUE (msg_key, address, direction)
    );
    CREATE INDEX exchanges_by_address ON exchanges (address, time);
    CREATE TABLE addresses (            -- aggregates per address, refreshed from exchanges
        address TEXT PRIMARY KEY,
        name TEXT NOT NULL DEFAULT '',
        language TEXT,
        last_time INTEGER NOT NULL,
        last_direction TEXT NOT NULL,
        last_subject TEXT NOT NULL,
        last_folder TEXT NOT NULL,
        last_message_id TEXT,
        last_in INTEGER,
        last_out INTEGER,
        messages_in INTEGER NOT NULL,
        messages_out INTEGER NOT NULL
    );
    CREATE TABLE address_names (        -- newest display name and language seen per address
        address TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        time INTEGER NOT NULL,
        language TEXT
    );
    CREATE TABLE lists (address TEXT PRIMARY KEY);   -- known mailing-list addresses
    CREATE TABLE dirty (address TEXT PRIMARY KEY);   -- aggregates to refresh

    -- The user's decisions; never touched by a rescan.
    CREATE TABLE contacts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT,                      -- a name the user gave, else NULL
        snooze_until TEXT,              -- ISO date, inclusive
        ignored INTEGER NOT NULL DEFAULT 0,
        cadence_days INTEGER,
        language TEXT,
        merged_into INTEGER REFERENCES contacts (id),
        created_at INTEGER NOT NULL
    );
    CREATE TABLE contact_addresses (
        address TEXT PRIMARY KEY,
        contact_id INTEGER NOT NULL REFERENCES contacts (id)
    );
    CREATE INDEX contact_addresses_by_contact ON contact_addresses (contact_id);
    CREATE TABLE contact_tags (
        contact_id INTEGER NOT NULL REFERENCES contacts (id),
        tag TEXT NOT NULL,
        PRIMARY KEY (contact_id, tag)
    );
    CREATE TABLE digests (
        day TEXT PRIMARY KEY,           -- local calendar day, ISO
        delivered_at INTEGER NOT NULL,
        delivery TEXT NOT NULL,
        subject TEXT NOT NULL
    );
    CREATE TABLE drafts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        contact_id INTEGER NOT NULL REFERENCES contacts (id),
        address TEXT NOT NULL,
        day TEXT NOT NULL,
        kind TEXT NOT NULL,             -- checkin | reply
        message_id TEXT NOT NULL,
        folder TEXT NOT NULL,
        uid INTEGER,
        uidvalidity INTEGER,
        created_at INTEGER NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending',   -- pending | sent | declined
        resolved_at INTEGER
    );
    CREATE INDEX drafts_by_state ON drafts (state, contact_id);
    CREATE TABLE picks (                -- who was picked on which local day (fair rotation)
        day TEXT NOT NULL,
        contact_id INTEGER NOT NULL,
        PRIMARY KEY (day, contact_id)
    );
    CREATE TABLE cycles (               -- daily cycles done (`followup run` catches up once)
        day TEXT PRIMARY KEY,           -- local calendar day, ISO
        finished_at INTEGER NOT NULL
    );
    """)


MIGRATIONS: tuple[Callable[[sqlite_utils.Database], None], ...] = (_m1_initial,)
SCHEMA_VERSION = len(MIGRATIONS)


# --------------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class FolderState:
    name: str
    uidvalidity: int
    last_uid: int
    uidnext: int
    highestmodseq: int | None


@dataclass(frozen=True, slots=True)
class MessageRow:
    uid: int
    msg_key: str
    time: datetime
    skipped: str | None


@dataclass(frozen=True, slots=True)
class ExchangeRow:
    msg_key: str
    address: str
    direction: Direction
    time: datetime
    subject: str
    message_id: str | None
    name: str
    language: str | None


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


@dataclass(frozen=True)
class DraftRecord:
    id: int
    contact_id: int
    address: str
    day: date
    kind: str
    message_id: str
    folder: str
    uid: int | None
    uidvalidity: int | None
    created_at: datetime
    state: str


# --------------------------------------------------------------------------- the store


class Store:
    """One SQLite database: the ledger and the user's decisions, with versioned migrations."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.conn = _connect(path)
        self.db = sqlite_utils.Database(self.conn)
        self._migrate()

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ plumbing

    @property
    def schema_version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        current = self.schema_version
        if current > SCHEMA_VERSION:
            raise StoreError(
                f"the database {self.path} was written by a newer followup (schema {current}, "
                f"this one knows {SCHEMA_VERSION}); upgrade followup"
            )
        for version in range(current, SCHEMA_VERSION):
            with self.transaction():
                MIGRATIONS[version](self.db)
                self.conn.execute(f"PRAGMA user_version = {version + 1}")
            log.info("database migrated to schema %d", version + 1)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT, rolled back on any error; disk problems become StoreError."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise _store_error(exc, self.path) from None
        try:
            yield self.conn
        except sqlite3.OperationalError as exc:
            # A write failed (disk full, I/O error): one clear StoreError, not a traceback.
            self._rollback()
            raise _store_error(exc, self.path) from None
        except BaseException:
            self._rollback()
            raise
        try:
            self.conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            self._rollback()
            raise _store_error(exc, self.path) from None

    def _rollback(self) -> None:
        # SQLite rolls back by itself after some errors (SQLITE_FULL may); a second ROLLBACK
        # would then fail and hide the real error.
        if self.conn.in_transaction:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.Error:
                log.debug("rollback of %s failed", self.path, exc_info=True)

    def _query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Any]:
        try:
            return self.conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            raise _store_error(exc, self.path) from None

    # ------------------------------------------------------------------ sync state

    def folder_state(self, name: str) -> FolderState | None:
        rows = self._query("SELECT name, uidvalidity, last_uid, uidnext, highestmodseq "
                           "FROM folders WHERE name = ?", (name,))
        return FolderState(*rows[0]) if rows else None

    def folder_states(self) -> dict[str, FolderState]:
        rows = self._query("SELECT name, uidvalidity, last_uid, uidnext, highestmodseq "
                           "FROM folders")
        return {row[0]: FolderState(*row) for row in rows}

    def reset_folder(self, name: str, uidvalidity: int) -> None:
        """Forget what was seen in a folder (its UIDs mean nothing any more).

        Exchanges stay: they are keyed by message, so a rescan of the same mail adds nothing.
        """
        with self.transaction() as conn:
            conn.execute("DELETE FROM messages WHERE folder = ?", (name,))
            conn.execute(
                "INSERT INTO folders (name, uidvalidity, last_uid, uidnext) VALUES (?, ?, 0, 0) "
                "ON CONFLICT (name) DO UPDATE SET uidvalidity = excluded.uidvalidity, "
                "last_uid = 0, uidnext = 0, highestmodseq = NULL",
                (name, uidvalidity),
            )

    def save_batch(self, folder: str, uidvalidity: int, last_uid: int,
                   messages: Sequence[MessageRow], exchanges: Sequence[ExchangeRow],
                   list_addresses: Iterable[str]) -> int:
        """Record one fetched batch and advance the folder's sync state, atomically.

        Returns how many exchanges were new (a message seen in two folders counts once).
        """
        with self.transaction() as conn:
            conn.executemany(
                "INSERT OR IGNORE INTO messages (folder, uid, msg_key, time, skipped) "
                "VALUES (?, ?, ?, ?, ?)",
                [(folder, m.uid, key_id(m.msg_key), _epoch(m.time), m.skipped)
                 for m in messages],
            )
            before = conn.total_changes
            conn.executemany(
                "INSERT OR IGNORE INTO exchanges (msg_key, address, direction, time, subject, "
                "folder, message_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(key_id(e.msg_key), e.address, e.direction, _epoch(e.time), e.subject, folder,
                  e.message_id) for e in exchanges],
            )
            added = conn.total_changes - before
            conn.executemany(
                "INSERT INTO address_names (address, name, time, language) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (address) DO UPDATE SET name = excluded.name, "
                "time = excluded.time, language = coalesce(excluded.language, language) "
                "WHERE excluded.time >= address_names.time",
                [(e.address, e.name, _epoch(e.time), e.language if e.direction == "in" else None)
                 for e in exchanges if e.name],
            )
            conn.executemany("INSERT OR IGNORE INTO dirty (address) VALUES (?)",
                             [(e.address,) for e in exchanges])
            conn.executemany("INSERT OR IGNORE INTO lists (address) VALUES (?)",
                             [(a,) for a in list_addresses])
            conn.execute(
                "INSERT INTO folders (name, uidvalidity, last_uid) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET uidvalidity = excluded.uidvalidity, "
                "last_uid = max(last_uid, excluded.last_uid)",
                (folder, uidvalidity, last_uid),
            )
        return added

    def finish_folder(self, folder: str, uidvalidity: int, uidnext: int,
                      highestmodseq: int | None, now: datetime) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO folders (name, uidvalidity, last_uid, uidnext, highestmodseq, "
                "scanned_at) VALUES (?, ?, 0, ?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET uidvalidity = excluded.uidvalidity, "
                "uidnext = excluded.uidnext, highestmodseq = excluded.highestmodseq, "
                "scanned_at = excluded.scanned_at",
                (folder, uidvalidity, uidnext, highestmodseq, _epoch(now)),
            )

    def refresh_aggregates(self) -> int:
        """Recompute per-address aggregates for addresses touched since the last refresh.

        Batches only mark addresses dirty; a kill before this runs leaves them marked, so
        the next scan refreshes them. Returns how many addresses were refreshed.
        """
        with self.transaction() as conn:
            # The newest exchange per address decides last_*; on equal times 'out' wins
            # (the user answering within the same second is the later act).
            conn.execute("""
                INSERT OR REPLACE INTO addresses (address, name, language, last_time,
                    last_direction, last_subject, last_folder, last_message_id, last_in,
                    last_out, messages_in, messages_out)
                SELECT r.address, coalesce(n.name, ''), n.language, r.time, r.direction,
                    r.subject, r.folder, r.message_id, agg.last_in, agg.last_out,
                    agg.n_in, agg.n_out
                FROM (
                    SELECT address, direction, subject, folder, message_id, time,
                        row_number() OVER (PARTITION BY address
                                           ORDER BY time DESC, direction DESC, msg_key) AS rn
                    FROM exchanges WHERE address IN (SELECT address FROM dirty)
                ) AS r
                JOIN (
                    SELECT address,
                        max(CASE WHEN direction = 'in' THEN time END) AS last_in,
                        max(CASE WHEN direction = 'out' THEN time END) AS last_out,
                        sum(direction = 'in') AS n_in, sum(direction = 'out') AS n_out
                    FROM exchanges WHERE address IN (SELECT address FROM dirty)
                    GROUP BY address
                ) AS agg ON agg.address = r.address
                LEFT JOIN address_names AS n ON n.address = r.address
                WHERE r.rn = 1
            """)
            # Every address gets a stable contact id the first time it is seen.
            now = int(time.time())
            new = conn.execute(
                "SELECT address FROM dirty WHERE address NOT IN "
                "(SELECT address FROM contact_addresses) ORDER BY address"
            ).fetchall()
            for (address,) in new:
                cursor = conn.execute("INSERT INTO contacts (created_at) VALUES (?)", (now,))
                conn.execute("INSERT INTO contact_addresses (address, contact_id) VALUES (?, ?)",
                             (address, cursor.lastrowid))
            count = int(conn.execute("SELECT count(*) FROM dirty").fetchone()[0])
            conn.execute("DELETE FROM dirty")
        return count

    def checkpoint(self) -> None:
        """Fold the write-ahead log into the database file and truncate it."""
        try:
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.OperationalError as exc:
            log.debug("checkpoint skipped: %s", exc)

    def forget_mailbox(self) -> None:
        """`scan --full`: drop everything derived from the mailbox, keep every decision."""
        with self.transaction() as conn:
            for table in MAILBOX_TABLES:
                conn.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names

    # ------------------------------------------------------------------ reading the ledger

    def list_addresses(self) -> set[str]:
        return {row[0] for row in self._query("SELECT address FROM lists")}

    def message_count(self) -> int:
        return int(self._query("SELECT count(*) FROM messages")[0][0])

    def exchange_count(self) -> int:
        return int(self._query("SELECT count(*) FROM exchanges")[0][0])

    def skipped_counts(self) -> dict[str, int]:
        rows = self._query("SELECT skipped, count(*) FROM messages WHERE skipped IS NOT NULL "
                           "GROUP BY skipped")
        return {row[0]: int(row[1]) for row in rows}

    def contacts(self, self_addresses: Iterable[str] = (), two_way: bool = True,
                 include_ignored: bool = True) -> list[Contact]:
        """Every person with at least one exchange (both directions when ``two_way``)."""
        excluded = set(self_addresses) | self.list_addresses()
        rows = self._query("""
            SELECT ca.contact_id, a.address, a.name, a.language, a.last_time, a.last_direction,
                a.last_subject, a.last_folder, a.last_message_id, a.last_in, a.last_out,
                a.messages_in, a.messages_out
            FROM addresses AS a JOIN contact_addresses AS ca ON ca.address = a.address
            ORDER BY ca.contact_id, a.last_time DESC
        """)
        decisions = {
            row[0]: row[1:] for row in self._query(
                "SELECT id, name, snooze_until, ignored, cadence_days, language FROM contacts")
        }
        tags: dict[int, set[str]] = {}
        for contact_id, tag in self._query("SELECT contact_id, tag FROM contact_tags"):
            tags.setdefault(contact_id, set()).add(tag)

        grouped: dict[int, list[Any]] = {}
        for row in rows:
            if row[1] in excluded:
                continue
            grouped.setdefault(row[0], []).append(row)
        out = []
        for contact_id, group in grouped.items():
            contact = _contact_from_rows(contact_id, group, decisions.get(contact_id),
                                         tags.get(contact_id, set()))
            if two_way and not (contact.messages_in and contact.messages_out):
                continue
            if contact.ignored and not include_ignored:
                continue
            out.append(contact)
        out.sort(key=lambda c: c.last_exchange, reverse=True)
        return out

    def exchanges_of(self, addresses: Iterable[str], limit: int = 20) -> list[Exchange]:
        addresses = list(addresses)
        marks = ",".join("?" * len(addresses))
        rows = self._query(
            f"SELECT address, direction, time, subject, folder, message_id FROM exchanges "  # noqa: S608
            f"WHERE address IN ({marks}) ORDER BY time DESC LIMIT ?",
            (*addresses, limit),
        )
        return [Exchange(r[0], r[1], _from_epoch(r[2]) or datetime.min.replace(tzinfo=UTC),
                         r[3], r[4], r[5]) for r in rows]

    # ------------------------------------------------------------------ decisions

    def resolve(self, ref: str) -> int:
        """A contact id from ``ref``: an id, or an address in any spelling; unknown → UsageError.

        Addresses go through headers.normalise_address (case, ``+tag``, Gmail dots); the id of
        a contact merged into another resolves to the one it was merged into.
        """
        text = ref.strip()
        if not text:
            raise UsageError("give a contact id or an address; `followup contacts` lists them")
        if text.isascii() and text.isdigit():
            if self._query("SELECT 1 FROM contacts WHERE id = ?", (int(text),)):
                return self._follow_merges(int(text))
            raise UsageError(f"no contact has the id {text}; `followup contacts` lists them")
        from agent.headers.addresses import normalise_address

        key = normalise_address(text)
        if key:
            rows = self._query("SELECT contact_id FROM contact_addresses WHERE address = ?",
                               (key,))
            if rows:
                return self._follow_merges(int(rows[0][0]))
            raise UsageError(f"no contact has the address {text}; {self._hint(key)}")
        raise UsageError(f"{text!r} is neither a contact id nor an address; {self._hint(text)}")

    def close_matches(self, text: str, limit: int = 3) -> list[tuple[str, str]]:
        """Known (address, name) pairs that look like ``text``: a typo, or part of either."""
        needle = text.strip().lower()
        rows: dict[str, str] = dict(self._query(
            "SELECT ca.address, coalesce(n.name, '') FROM contact_addresses AS ca "
            "LEFT JOIN address_names AS n ON n.address = ca.address ORDER BY ca.address"))
        found = []
        if len(needle) >= 3:  # shorter parts match half the ledger and help nobody
            found = [a for a, name in rows.items() if needle in a or needle in name.lower()]
        similar = difflib.get_close_matches(needle, list(rows), n=limit, cutoff=0.6)
        if similar:
            # A shared domain makes every address on it look alike: keep the near-best only.
            best = difflib.SequenceMatcher(None, needle, similar[0]).ratio()
            found += [a for a in similar
                      if difflib.SequenceMatcher(None, needle, a).ratio() >= best - 0.1]
        return [(a, rows[a]) for a in dict.fromkeys(found)][:limit]

    def _hint(self, text: str) -> str:
        close = [f"{a} ({name})" if name else a for a, name in self.close_matches(text)]
        if not close:
            return "`followup contacts` lists everyone"
        listed = close[0] if len(close) == 1 else f"{', '.join(close[:-1])} or {close[-1]}"
        return f"did you mean {listed}?"

    def _follow_merges(self, contact_id: int) -> int:
        seen = set()
        while contact_id not in seen:
            seen.add(contact_id)
            rows = self._query("SELECT merged_into FROM contacts WHERE id = ?", (contact_id,))
            if not rows or rows[0][0] is None:
                return contact_id
            contact_id = int(rows[0][0])
        return contact_id

    def addresses_of(self, contact_id: int) -> list[str]:
        return [row[0] for row in self._query(
            "SELECT address FROM contact_addresses WHERE contact_id = ? ORDER BY address",
            (contact_id,))]

    def set_decision(self, contact_id: int, **values: Any) -> None:
        allowed = {"name", "snooze_until", "ignored", "cadence_days", "language"}
        unknown = set(values) - allowed
        if unknown:
            raise ValueError(f"unknown decision {unknown}")
        if not values:
            return
        sets = ", ".join(f"{k} = ?" for k in values)
        params = [v.isoformat() if isinstance(v, date) else v for v in values.values()]
        with self.transaction() as conn:
            conn.execute(f"UPDATE contacts SET {sets} WHERE id = ?",  # noqa: S608
                         (*params, contact_id))

    def add_tags(self, contact_id: int, tags: Iterable[str]) -> None:
        with self.transaction() as conn:
            conn.executemany("INSERT OR IGNORE INTO contact_tags (contact_id, tag) VALUES (?, ?)",
                             [(contact_id, t) for t in tags])

    def remove_tags(self, contact_id: int, tags: Iterable[str]) -> None:
        with self.transaction() as conn:
            conn.executemany("DELETE FROM contact_tags WHERE contact_id = ? AND tag = ?",
                             [(contact_id, t) for t in tags])

    def merge(self, keep: int, other: int) -> None:
        """Move every address of ``other`` to ``keep``; ``other``'s id then points at ``keep``.

        Decisions of ``keep`` win; tags are united; a snooze or ignore on ``other`` is kept
        when ``keep`` has none.
        """
        if keep == other:
            raise UsageError("both refer to the same contact; nothing to merge")
        with self.transaction() as conn:
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
            conn.execute("UPDATE drafts SET contact_id = ? WHERE contact_id = ?", (keep, other))
            # The pick history follows too, so the fair rotation sees one person.
            conn.execute("UPDATE OR IGNORE picks SET contact_id = ? WHERE contact_id = ?",
                         (keep, other))
            conn.execute("DELETE FROM picks WHERE contact_id = ?", (other,))

    def split(self, address: str) -> int:
        """Give ``address`` (any spelling) a contact of its own again; returns the new id.

        The new contact starts without decisions: it is a different person now.
        """
        from agent.headers.addresses import normalise_address

        key = normalise_address(address)
        if key is None:
            raise UsageError(f"{address!r} is not an address; split takes one address of a "
                             "contact (`followup show ID` lists them)")
        rows = self._query("SELECT contact_id FROM contact_addresses WHERE address = ?", (key,))
        if not rows:
            raise UsageError(f"no contact has the address {address}; {self._hint(key)}")
        if len(self.addresses_of(int(rows[0][0]))) == 1:
            raise UsageError(f"{key} is already a contact of its own; nothing to split")
        with self.transaction() as conn:
            cursor = conn.execute("INSERT INTO contacts (created_at) VALUES (?)",
                                  (int(time.time()),))
            new_id = int(cursor.lastrowid or 0)
            conn.execute("UPDATE contact_addresses SET contact_id = ? WHERE address = ?",
                         (new_id, key))
        return new_id

    def contact(self, contact_id: int, self_addresses: Iterable[str] = ()) -> Contact | None:
        """One contact with its decisions, whatever ``two_way`` says; None without exchanges.

        Like ``contacts()``, the user's own and mailing-list addresses are left out.
        """
        excluded = set(self_addresses) | self.list_addresses()
        rows = [row for row in self._query("""
            SELECT ca.contact_id, a.address, a.name, a.language, a.last_time, a.last_direction,
                a.last_subject, a.last_folder, a.last_message_id, a.last_in, a.last_out,
                a.messages_in, a.messages_out
            FROM addresses AS a JOIN contact_addresses AS ca ON ca.address = a.address
            WHERE ca.contact_id = ? ORDER BY a.last_time DESC
        """, (contact_id,)) if row[1] not in excluded]
        if not rows:
            return None
        decision = self._query("SELECT name, snooze_until, ignored, cadence_days, language "
                               "FROM contacts WHERE id = ?", (contact_id,))
        tags = {row[0] for row in self._query(
            "SELECT tag FROM contact_tags WHERE contact_id = ?", (contact_id,))}
        return _contact_from_rows(contact_id, rows, decision[0] if decision else None, tags)

    def decisions_of(self, contact_id: int) -> Decisions:
        """Everything the user decided about one contact, with or without exchanges."""
        rows = self._query("SELECT name, snooze_until, ignored, cadence_days, language "
                           "FROM contacts WHERE id = ?", (contact_id,))
        if not rows:
            raise UsageError(f"no contact has the id {contact_id}")
        name, snooze, ignored, cadence, language = rows[0]
        tags = frozenset(row[0] for row in self._query(
            "SELECT tag FROM contact_tags WHERE contact_id = ?", (contact_id,)))
        merged = tuple(int(row[0]) for row in self._query("""
            WITH RECURSIVE gone (id) AS (
                SELECT id FROM contacts WHERE merged_into = :id
                UNION SELECT c.id FROM contacts AS c JOIN gone ON c.merged_into = gone.id
            ) SELECT id FROM gone ORDER BY id""", {"id": contact_id}))
        return Decisions(name=name, snooze_until=date.fromisoformat(snooze) if snooze else None,
                         ignored=bool(ignored), cadence_days=cadence, language=language,
                         tags=tags, merged_ids=merged)

    def last_exchanges(self, addresses: Iterable[str]) -> dict[Direction, Exchange]:
        """The newest exchange each way ("in", "out") over ``addresses``, where there is one."""
        addresses = list(addresses)
        marks = ",".join("?" * len(addresses))
        out: dict[Direction, Exchange] = {}
        for direction in ("in", "out"):
            rows = self._query(
                f"SELECT address, direction, time, subject, folder, message_id "  # noqa: S608
                f"FROM exchanges WHERE address IN ({marks}) AND direction = ? "
                "ORDER BY time DESC, msg_key LIMIT 1", (*addresses, direction))
            if rows:
                r = rows[0]
                out[r[1]] = Exchange(r[0], r[1], _from_epoch(r[2]) or datetime.min.replace(
                    tzinfo=UTC), r[3], r[4], r[5])
        return out

    # ------------------------------------------------------------------ picks, digests, drafts

    def pick_history(self) -> dict[int, date]:
        """Contact id → the last local day they were picked."""
        return {int(r[0]): date.fromisoformat(r[1]) for r in self._query(
            "SELECT contact_id, max(day) FROM picks GROUP BY contact_id")}

    def record_picks(self, day: date, contact_ids: Iterable[int]) -> None:
        with self.transaction() as conn:
            conn.executemany("INSERT OR IGNORE INTO picks (day, contact_id) VALUES (?, ?)",
                             [(day.isoformat(), i) for i in contact_ids])

    def last_cycle_day(self) -> date | None:
        """The latest local day whose daily cycle (scan, digest, drafts) finished."""
        rows = self._query("SELECT max(day) FROM cycles")
        return date.fromisoformat(rows[0][0]) if rows and rows[0][0] else None

    def record_cycle(self, day: date, now: datetime) -> None:
        with self.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO cycles (day, finished_at) VALUES (?, ?)",
                         (day.isoformat(), _epoch(now)))

    def digest_sent(self, day: date) -> bool:
        return bool(self._query("SELECT 1 FROM digests WHERE day = ?", (day.isoformat(),)))

    def record_digest(self, day: date, delivery: str, subject: str, now: datetime) -> None:
        with self.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO digests (day, delivered_at, delivery, subject) "
                         "VALUES (?, ?, ?, ?)", (day.isoformat(), _epoch(now), delivery, subject))

    def add_draft(self, contact_id: int, address: str, day: date, kind: str, message_id: str,
                  folder: str, uid: int | None, uidvalidity: int | None, now: datetime) -> int:
        with self.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO drafts (contact_id, address, day, kind, message_id, folder, uid, "
                "uidvalidity, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (contact_id, address, day.isoformat(), kind, message_id, folder, uid,
                 uidvalidity, _epoch(now)))
            return int(cursor.lastrowid or 0)

    def drafts(self, state: str | None = None) -> list[DraftRecord]:
        sql = ("SELECT id, contact_id, address, day, kind, message_id, folder, uid, uidvalidity, "
               "created_at, state FROM drafts")
        params: tuple[Any, ...] = ()
        if state:
            sql += " WHERE state = ?"
            params = (state,)
        return [DraftRecord(r[0], r[1], r[2], date.fromisoformat(r[3]), r[4], r[5], r[6], r[7],
                            r[8], _from_epoch(r[9]) or datetime.min.replace(tzinfo=UTC), r[10])
                for r in self._query(sql + " ORDER BY id", params)]

    def resolve_draft(self, draft_id: int, state: str, now: datetime,
                      uid: int | None = None) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE drafts SET state = ?, resolved_at = ?, uid = coalesce(?, uid) "
                         "WHERE id = ?", (state, _epoch(now), uid, draft_id))

    def update_draft_uid(self, draft_id: int, uid: int, uidvalidity: int | None) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE drafts SET uid = ?, uidvalidity = ? WHERE id = ?",
                         (uid, uidvalidity, draft_id))

    def decline_draft(self, draft_id: int, contact_id: int, snooze_until: date,
                      now: datetime) -> date:
        """Mark a draft declined and snooze its contact until at least ``snooze_until``.

        One transaction, so a crash never leaves a declined draft without its snooze. A longer
        snooze the user set stays; returns the snooze now in force.
        """
        contact_id = self._follow_merges(contact_id)
        with self.transaction() as conn:
            conn.execute("UPDATE drafts SET state = 'declined', resolved_at = ? WHERE id = ?",
                         (_epoch(now), draft_id))
            # ISO dates compare correctly as text.
            conn.execute("UPDATE contacts SET snooze_until = max(coalesce(snooze_until, ''), ?) "
                         "WHERE id = ?", (snooze_until.isoformat(), contact_id))
            row = conn.execute("SELECT snooze_until FROM contacts WHERE id = ?",
                               (contact_id,)).fetchone()
        return date.fromisoformat(row[0]) if row and row[0] else snooze_until

    def sent_to_since(self, addresses: Iterable[str], since: datetime) -> bool:
        addresses = list(addresses)
        marks = ",".join("?" * len(addresses))
        rows = self._query(
            f"SELECT 1 FROM exchanges WHERE direction = 'out' AND address IN ({marks}) "  # noqa: S608
            "AND time >= ? LIMIT 1", (*addresses, _epoch(since)))
        return bool(rows)


def _contact_from_rows(contact_id: int, rows: list[Any], decision: Any,
                       tags: set[str]) -> Contact:
    newest = rows[0]  # rows are ordered newest first
    last_in = max((r[9] for r in rows if r[9] is not None), default=None)
    last_out = max((r[10] for r in rows if r[10] is not None), default=None)
    given_name, snooze, ignored, cadence, language = decision or (None, None, 0, None, None)
    name = given_name or next((r[2] for r in rows if r[2]), "")
    return Contact(
        id=contact_id,
        name=name,
        email=newest[1],
        addresses=tuple(r[1] for r in rows),
        last_exchange=_from_epoch(newest[4]) or datetime.min.replace(tzinfo=UTC),
        last_direction=newest[5],
        last_subject=newest[6],
        last_folder=newest[7],
        last_message_id=newest[8],
        last_in=_from_epoch(last_in),
        last_out=_from_epoch(last_out),
        messages_in=sum(r[11] for r in rows),
        messages_out=sum(r[12] for r in rows),
        language_hint=next((r[3] for r in rows if r[3]), None),
        snooze_until=date.fromisoformat(snooze) if snooze else None,
        ignored=bool(ignored),
        cadence_days=cadence,
        language=language,
        tags=frozenset(tags),
    )


# --------------------------------------------------------------------------- opening


def _connect(path: Path) -> sqlite3.Connection:
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Create the file ourselves so that it is 0600 from the first byte.
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        conn = sqlite3.connect(path, isolation_level=None, timeout=30)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        # Checkpoint (copy the WAL back, with its fsyncs) every ~32 MB instead of every 4 MB:
        # a scan rewrites the same index pages in every batch, and each page is then copied
        # once per checkpoint rather than many times. Store.checkpoint() runs after a scan.
        conn.execute("PRAGMA wal_autocheckpoint = 8000")
        conn.execute("PRAGMA cache_size = -32768")  # KiB: the ledger's indexes stay in memory
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except OSError as exc:
        raise StoreError(f"cannot open the database {path}: {exc.strerror}; check "
                         "[storage] path and its permissions") from None
    except sqlite3.DatabaseError as exc:
        raise _store_error(exc, path) from None
    return conn


def _store_error(exc: sqlite3.Error, path: Path) -> StoreError:
    text = str(exc)
    if "locked" in text or "busy" in text:
        return StoreError(f"the database {path} is busy (another followup is writing); try again")
    if "full" in text:
        return StoreError(f"the disk holding {path} is full; nothing was half-written, free "
                          "some space and run again")
    if "not a database" in text or "malformed" in text:
        return StoreError(f"{path} is not a followup database or is damaged; move it away and "
                          "run `followup scan` to rebuild the ledger")
    if "readonly" in text or "unable to open" in text:
        return StoreError(f"cannot write the database {path}: check its permissions")
    return StoreError(f"database error on {path}: {text}")


@contextlib.contextmanager
def exclusive_lock(path: Path, wait: float = 10.0) -> Iterator[None]:
    """Hold ``<database>.lock`` so that two runs never work on one database at once."""
    lock_path = path.with_name(path.name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    raise StoreError(
                        f"another followup is working on {path} (lock {lock_path}); wait for it "
                        "to finish or stop it"
                    ) from None
                time.sleep(0.1)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)
