"""Versioned schema migrations; the database's ``user_version`` says how many have run.

Tables fall into families that ``scan --full`` treats differently: the ledger (derived from
the mailbox, rebuildable: ``LEDGER_TABLES``), the address book's cards (rebuilt from their
sources at every sync: ``CARD_TABLES``; ``phones`` also holds the numbers read from
signatures, ``SIGNATURE_TABLES``) and everything else (the user's decisions and the journal
of what followup did: kept for good).

Add a migration by appending a function to ``MIGRATIONS``; use sqlite-utils' table API or
``db.execute`` (both stay inside the migration's transaction; ``sqlite3.Connection
.executescript`` would COMMIT half-way). tests/test_migrations.py explains the saved dumps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only annotations: opening a current database needs no sqlite-utils
    import sqlite_utils

# Tables rebuilt from the mailbox by `scan --full`. Everything else is the user's.
LEDGER_TABLES = (
    "folders", "messages", "exchanges", "addresses", "address_names", "lists", "dirty",
    "sent_ids", "held", "unread",
)
# Tables read from the address books; each sync replaces what changed at a source.
CARD_TABLES = ("addressbooks", "cards", "card_addresses", "card_tags", "phones")
# Read from the newest message of a contact: which messages were read (numbers in `phones`).
SIGNATURE_TABLES = ("signature_reads",)


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


def _m3_address_books(db: sqlite_utils.Database) -> None:
    db.executescript("""
    -- Read from the address books ([[addressbook]]); every sync brings these up to date
    -- and a card deleted at its source takes its rows with it (ON DELETE CASCADE).
    CREATE TABLE addressbooks (
        source TEXT PRIMARY KEY,        -- the source's url, or the absolute path of its files
        name TEXT NOT NULL,
        kind TEXT NOT NULL,             -- vdir | file | carddav
        state TEXT,                     -- how to ask for changes only (sync tokens, ctags; JSON)
        synced_at INTEGER,              -- epoch seconds of the last successful read
        problems TEXT NOT NULL DEFAULT '[]'   -- warnings of the last sync (JSON list of lines)
    );
    CREATE TABLE cards (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        source TEXT NOT NULL REFERENCES addressbooks (source) ON DELETE CASCADE,
        href TEXT NOT NULL,             -- file name, #N in a .vcf, or the CardDAV href
        etag TEXT NOT NULL,             -- changes whenever the card does
        uid TEXT,
        name TEXT NOT NULL DEFAULT '',  -- FN
        birthday TEXT,                  -- YYYY-MM-DD or --MM-DD
        UNIQUE (source, href)
    );
    CREATE TABLE card_addresses (
        card_id INTEGER NOT NULL REFERENCES cards (id) ON DELETE CASCADE,
        address TEXT NOT NULL,          -- identity key (normalise_address)
        position INTEGER NOT NULL,      -- order on the card
        PRIMARY KEY (card_id, address)
    ) WITHOUT ROWID;
    CREATE INDEX card_addresses_by_address ON card_addresses (address);
    CREATE TABLE card_tags (            -- CATEGORIES, lower case; apart from the user's tags
        card_id INTEGER NOT NULL REFERENCES cards (id) ON DELETE CASCADE,
        tag TEXT NOT NULL,
        PRIMARY KEY (card_id, tag)
    ) WITHOUT ROWID;
    CREATE TABLE phones (               -- phone numbers, from a card or (later) a signature
        number TEXT NOT NULL,           -- E.164
        type TEXT NOT NULL,             -- cell | work | home | fax | pager | other
        source TEXT NOT NULL,           -- addressbook | signature
        card_id INTEGER REFERENCES cards (id) ON DELETE CASCADE,   -- source addressbook
        address TEXT,                   -- the address it came with (a signature's sender)
        seen INTEGER,                   -- epoch seconds: when it was read there
        position INTEGER NOT NULL DEFAULT 0,
        CHECK ((card_id IS NULL) <> (address IS NULL))
    );
    CREATE INDEX phones_by_card ON phones (card_id);
    CREATE INDEX phones_by_address ON phones (address);

    -- What the cards did to people, and the user's word against them: kept like decisions.
    CREATE TABLE card_links (           -- an address a card moved to another contact
        address TEXT PRIMARY KEY,
        contact_id INTEGER NOT NULL REFERENCES contacts (id),
        previous_contact_id INTEGER NOT NULL REFERENCES contacts (id)   -- where it came from
    );
    CREATE TABLE card_contacts (        -- the contact of someone known only from a card
        card_key TEXT PRIMARY KEY,      -- source, then the card's UID (or href)
        contact_id INTEGER NOT NULL REFERENCES contacts (id)
    );
    CREATE TABLE kept_apart (           -- addresses the user split off: no card joins them again
        address TEXT PRIMARY KEY,
        since INTEGER NOT NULL
    );
    """)


def _m4_replies_to_the_user(db: sqlite_utils.Database) -> None:
    db.executescript("""
    -- Derived from the mailbox like the ledger: a reply to the user's own mail is a person's
    -- even when it carries a bulk mark (issue 20). The scan remembers what the user sent and
    -- holds such replies until the message they answer is seen, in any folder, at any scan.
    CREATE TABLE sent_ids (id INTEGER PRIMARY KEY);  -- 63-bit digests of sent Message-IDs
    CREATE TABLE held (                 -- soft-automated replies waiting for their parent
        parent INTEGER NOT NULL,        -- digest of the Message-ID they answer
        msg_key INTEGER NOT NULL,
        address TEXT NOT NULL,
        time INTEGER NOT NULL,
        subject TEXT NOT NULL,
        folder TEXT NOT NULL,
        message_id TEXT,
        name TEXT NOT NULL,
        language TEXT,
        UNIQUE (msg_key, address)
    );
    CREATE INDEX held_by_parent ON held (parent);
    """)


def _m5_several_mailboxes(db: sqlite_utils.Database) -> None:
    """Several mailboxes ([[mailbox]]): sync state and messages are kept per mailbox; each
    exchange, address and draft remembers its mailbox. '' is the primary ([account]/[imap]),
    which is what everything before this version was."""
    db.executescript("""
    CREATE TABLE folders_by_mailbox (
        mailbox TEXT NOT NULL DEFAULT '',   -- '' the primary, else the [[mailbox]] name
        name TEXT NOT NULL,
        uidvalidity INTEGER NOT NULL,
        last_uid INTEGER NOT NULL DEFAULT 0,
        uidnext INTEGER NOT NULL DEFAULT 0,
        highestmodseq INTEGER,
        scanned_at INTEGER,
        PRIMARY KEY (mailbox, name)
    );
    INSERT INTO folders_by_mailbox (name, uidvalidity, last_uid, uidnext, highestmodseq,
                                    scanned_at)
        SELECT name, uidvalidity, last_uid, uidnext, highestmodseq, scanned_at FROM folders;
    DROP TABLE folders;
    ALTER TABLE folders_by_mailbox RENAME TO folders;

    CREATE TABLE messages_by_mailbox (
        mailbox TEXT NOT NULL DEFAULT '',
        folder TEXT NOT NULL,
        uid INTEGER NOT NULL,
        msg_key INTEGER NOT NULL,
        time INTEGER NOT NULL,
        skipped TEXT,
        PRIMARY KEY (mailbox, folder, uid)
    ) WITHOUT ROWID;
    INSERT INTO messages_by_mailbox (folder, uid, msg_key, time, skipped)
        SELECT folder, uid, msg_key, time, skipped FROM messages;
    DROP TABLE messages;
    ALTER TABLE messages_by_mailbox RENAME TO messages;

    -- The mailbox a message was first seen in; a message in two mailboxes counts once.
    ALTER TABLE exchanges ADD COLUMN mailbox TEXT NOT NULL DEFAULT '';
    -- The mailbox of the newest exchange: where a check-in draft goes, From which address.
    ALTER TABLE addresses ADD COLUMN last_mailbox TEXT NOT NULL DEFAULT '';
    ALTER TABLE drafts ADD COLUMN mailbox TEXT NOT NULL DEFAULT '';
    -- Replies held for their parent (schema 4) remember their mailbox too.
    ALTER TABLE held ADD COLUMN mailbox TEXT NOT NULL DEFAULT '';
    """)


def _m6_touchpoints_and_commands(db: sqlite_utils.Database) -> None:
    db.executescript("""
    -- The user's: contact outside the mailbox (a call, a meeting), kept like decisions.
    CREATE TABLE touchpoints (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        contact_id INTEGER NOT NULL REFERENCES contacts (id),
        kind TEXT NOT NULL CHECK (kind IN ('call', 'meeting', 'message')),
        day TEXT NOT NULL,              -- local calendar day, ISO
        time INTEGER NOT NULL,          -- epoch seconds: the start of that day, local time
        note TEXT NOT NULL DEFAULT '',
        source TEXT NOT NULL,           -- cli | mail (a command in a message to followup)
        created_at INTEGER NOT NULL
    );
    CREATE INDEX touchpoints_by_contact ON touchpoints (contact_id, time);

    -- The journal: commands received by mail, each applied once, with what they did.
    CREATE TABLE commands (
        message_id TEXT PRIMARY KEY,    -- of the command message, without < >
        folder TEXT NOT NULL,           -- where it was found first
        uid INTEGER NOT NULL,
        sent_at INTEGER NOT NULL,       -- its Date (epoch seconds)
        applied_at INTEGER NOT NULL,
        proof TEXT NOT NULL,            -- digest | link: how it showed it came from the user
        digest_day TEXT,                -- the digest it answers, ISO day
        subject TEXT NOT NULL,
        results TEXT NOT NULL,          -- JSON list of {line, ok, text}
        confirmed_at INTEGER            -- the confirmation reached the INBOX (NULL: not yet)
    );
    CREATE TABLE command_folders (      -- how far INBOX and Sent were looked at for commands
        folder TEXT PRIMARY KEY,
        uidvalidity INTEGER NOT NULL,
        last_uid INTEGER NOT NULL
    );
    CREATE TABLE digest_rows (          -- each digest's numbered rows, as the user saw them
        day TEXT NOT NULL,
        number INTEGER NOT NULL,
        contact_id INTEGER NOT NULL,
        PRIMARY KEY (day, number)
    );
    """)


def _m7_signatures(db: sqlite_utils.Database) -> None:
    db.executescript("""
    -- Messages whose signature was read for phone numbers (agent.signature_sync): each is
    -- fetched once. Its numbers are rows of `phones` with source 'signature', the sender's
    -- address and `seen` = the message's time. Kept through `scan --full` (the same message
    -- gives the same numbers); nobody's decision.
    CREATE TABLE signature_reads (
        message TEXT PRIMARY KEY,       -- its Message-ID (or the ledger's key without one)
        address TEXT NOT NULL,          -- the sender (identity key)
        sent INTEGER NOT NULL,          -- epoch seconds: the message's time
        read_at INTEGER NOT NULL,
        numbers INTEGER NOT NULL,       -- how many numbers its signature gave
        outcome TEXT NOT NULL           -- read | no text | gone | unreadable
    );
    CREATE INDEX phones_by_source ON phones (source, address);
    """)


def _m8_messages_by_key(db: sqlite_utils.Database) -> None:
    db.executescript("""
    -- A message's copies by its key: releasing a held reply marks every copy counted, and a
    -- signature is read from a copy of the newest message. Without it both read the whole
    -- table (~0.5 s of a 100k first scan; README "How fast"). Keys lead with the message's
    -- minute, so a scan appends to this index.
    CREATE INDEX messages_by_key ON messages (msg_key);
    """)


def _m9_unread_messages(db: sqlite_utils.Database) -> None:
    db.executescript("""
    -- Messages the server would not give (it refused their FETCH, left them out of its
    -- answer, or broke the connection on them): not counted yet, asked for again at later
    -- scans until they come or UNREAD_TRIES scans over a day have failed (README "A
    -- message the server will not give").
    CREATE TABLE unread (
        mailbox TEXT NOT NULL,
        folder TEXT NOT NULL,
        uid INTEGER NOT NULL,
        uidvalidity INTEGER NOT NULL,
        first_seen INTEGER NOT NULL,    -- epoch seconds: the scan that first missed it
        asked_at INTEGER NOT NULL,      -- epoch seconds: the last scan that asked for it
        tries INTEGER NOT NULL,         -- scans that asked for it in vain
        PRIMARY KEY (mailbox, folder, uid)
    ) WITHOUT ROWID;
    -- When reading the folder broke the connection: the highest UID asked for and not
    -- answered, and how many times it broke before the scan got past that UID. Twice, and
    -- the next attempt reads the messages up to it one FETCH each, to find the one that
    -- breaks it (a connection that broke once is more likely the network).
    ALTER TABLE folders ADD COLUMN broke_through INTEGER;
    ALTER TABLE folders ADD COLUMN breaks INTEGER NOT NULL DEFAULT 0;
    """)


MIGRATIONS: tuple[Callable[[sqlite_utils.Database], None], ...] = (
    _m1_initial,
    _m2_secret_and_digest_attempts,
    _m3_address_books,
    _m4_replies_to_the_user,
    _m5_several_mailboxes,
    _m6_touchpoints_and_commands,
    _m7_signatures,
    _m8_messages_by_key,
    _m9_unread_messages,
)
SCHEMA_VERSION = len(MIGRATIONS)
