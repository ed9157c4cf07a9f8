"""Versioned schema migrations; the database's ``user_version`` says how many have run.

Tables fall into families that ``scan --full`` treats differently: the ledger (derived from
the mailbox, rebuildable: ``LEDGER_TABLES``) and everything else (the user's decisions and
the journal of what followup did: kept for good).

Add a migration by appending a function to ``MIGRATIONS``; use sqlite-utils' table API or
``db.execute`` (both stay inside the migration's transaction; ``sqlite3.Connection
.executescript`` would COMMIT half-way). tests/test_migrations.py explains the saved dumps.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlite_utils

# Tables rebuilt from the mailbox by `scan --full`. Everything else is the user's.
LEDGER_TABLES = (
    "folders", "messages", "exchanges", "addresses", "address_names", "lists", "dirty",
)


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


def _m2_secret_and_digest_attempts(db: sqlite_utils.Database) -> None:
    """A random secret of this installation, and every digest before it is appended."""
    db.table("secrets").create({"name": str, "value": str}, pk="name", not_null={"value"})
    # Written before the APPEND: a digest found in the INBOX counts as delivered only when
    # this installation tried to deliver it (and it carries the secret in its Message-ID).
    db.table("digest_attempts").create(
        {"day": str, "message_id": str, "started_at": int}, pk="day",
        not_null={"message_id", "started_at"})


MIGRATIONS: tuple[Callable[[sqlite_utils.Database], None], ...] = (
    _m1_initial,
    _m2_secret_and_digest_attempts,
)
SCHEMA_VERSION = len(MIGRATIONS)
