-- followup database at schema version 9, written by tests/test_migrations.py; load with sqlite3.executescript.
PRAGMA user_version = 9;
BEGIN TRANSACTION;
CREATE TABLE address_names (        -- newest display name and language seen per address
        address TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        time INTEGER NOT NULL,
        language TEXT
    );
INSERT INTO "address_names" VALUES('anna@example.org','Anna Berg',1762248600,'de');
INSERT INTO "address_names" VALUES('bob@example.net','Bob Brandt',1762335000,'de');
INSERT INTO "address_names" VALUES('carla@gmx.de','Carla Christ',1762421400,'de');
INSERT INTO "address_names" VALUES('carla@firma.example','Carla Christ',1762507800,'de');
INSERT INTO "address_names" VALUES('dora@example.com','Dora Dahl',1762594200,'de');
INSERT INTO "address_names" VALUES('dora.alt@example.com','Dora Dahl',1762680600,'de');
INSERT INTO "address_names" VALUES('emil@example.de','Emil Ernst',1762767000,'de');
CREATE TABLE addressbooks (
        source TEXT PRIMARY KEY,        -- the source's url, or the absolute path of its files
        name TEXT NOT NULL,
        kind TEXT NOT NULL,             -- vdir | file | carddav
        state TEXT,                     -- how to ask for changes only (sync tokens, ctags; JSON)
        synced_at INTEGER,              -- epoch seconds of the last successful read
        problems TEXT NOT NULL DEFAULT '[]'   -- warnings of the last sync (JSON list of lines)
    );
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
    , last_mailbox TEXT NOT NULL DEFAULT '');
INSERT INTO "addresses" VALUES('anna@example.org','Anna Berg','de',1762248600,'out','Re: Fotos','Sent','<m2>',1762162200,1762248600,1,1,'');
INSERT INTO "addresses" VALUES('bob@example.net','Bob Brandt','de',1762335000,'in','Rechnung','INBOX','<m3>',1762335000,NULL,1,0,'');
INSERT INTO "addresses" VALUES('carla@firma.example','Carla Christ','de',1762507800,'in','Dienstlich','INBOX','<m5>',1762507800,NULL,1,0,'');
INSERT INTO "addresses" VALUES('carla@gmx.de','Carla Christ','de',1762421400,'in','Privat','INBOX','<m4>',1762421400,NULL,1,0,'');
INSERT INTO "addresses" VALUES('dora.alt@example.com','Dora Dahl','de',1762680600,'in','Alt','INBOX','<m7>',1762680600,NULL,1,0,'');
INSERT INTO "addresses" VALUES('dora@example.com','Dora Dahl','de',1762594200,'in','Hallo','INBOX','<m6>',1762594200,NULL,1,0,'');
INSERT INTO "addresses" VALUES('emil@example.de','Emil Ernst','de',1762767000,'in','Moin','INBOX','<m8>',1762767000,NULL,1,0,'');
CREATE TABLE card_addresses (
        card_id INTEGER NOT NULL REFERENCES cards (id) ON DELETE CASCADE,
        address TEXT NOT NULL,          -- identity key (normalise_address)
        position INTEGER NOT NULL,      -- order on the card
        PRIMARY KEY (card_id, address)
    ) WITHOUT ROWID;
CREATE TABLE card_contacts (        -- the contact of someone known only from a card
        card_key TEXT PRIMARY KEY,      -- source, then the card's UID (or href)
        contact_id INTEGER NOT NULL REFERENCES contacts (id)
    );
CREATE TABLE card_links (           -- an address a card moved to another contact
        address TEXT PRIMARY KEY,
        contact_id INTEGER NOT NULL REFERENCES contacts (id),
        previous_contact_id INTEGER NOT NULL REFERENCES contacts (id)   -- where it came from
    );
CREATE TABLE card_tags (            -- CATEGORIES, lower case; apart from the user's tags
        card_id INTEGER NOT NULL REFERENCES cards (id) ON DELETE CASCADE,
        tag TEXT NOT NULL,
        PRIMARY KEY (card_id, tag)
    ) WITHOUT ROWID;
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
CREATE TABLE command_folders (      -- how far INBOX and Sent were looked at for commands
        folder TEXT PRIMARY KEY,
        uidvalidity INTEGER NOT NULL,
        last_uid INTEGER NOT NULL
    );
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
INSERT INTO "commands" VALUES('cmd1@example.org','INBOX',20,1762162200,1762162200,'digest','2026-02-27','Re: digest','[{"line": "snooze 1 30d", "ok": true, "text": "Snoozed Anna until 2026-03-29"}]',NULL);
CREATE TABLE contact_addresses (
        address TEXT PRIMARY KEY,
        contact_id INTEGER NOT NULL REFERENCES contacts (id)
    );
INSERT INTO "contact_addresses" VALUES('anna@example.org',1);
INSERT INTO "contact_addresses" VALUES('bob@example.net',2);
INSERT INTO "contact_addresses" VALUES('carla@firma.example',3);
INSERT INTO "contact_addresses" VALUES('carla@gmx.de',3);
INSERT INTO "contact_addresses" VALUES('dora.alt@example.com',8);
INSERT INTO "contact_addresses" VALUES('dora@example.com',6);
INSERT INTO "contact_addresses" VALUES('emil@example.de',7);
CREATE TABLE contact_tags (
        contact_id INTEGER NOT NULL REFERENCES contacts (id),
        tag TEXT NOT NULL,
        PRIMARY KEY (contact_id, tag)
    );
INSERT INTO "contact_tags" VALUES(1,'kunde');
INSERT INTO "contact_tags" VALUES(1,'wichtig');
INSERT INTO "contact_tags" VALUES(3,'presse');
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
INSERT INTO "contacts" VALUES(1,'Anna (Agentur)','2026-06-01',0,30,'en',NULL,1762162200);
INSERT INTO "contacts" VALUES(2,NULL,NULL,1,NULL,NULL,NULL,1762162200);
INSERT INTO "contacts" VALUES(3,NULL,NULL,0,NULL,NULL,NULL,1762162200);
INSERT INTO "contacts" VALUES(4,NULL,NULL,0,NULL,NULL,3,1762162200);
INSERT INTO "contacts" VALUES(5,NULL,NULL,0,NULL,NULL,6,1762162200);
INSERT INTO "contacts" VALUES(6,NULL,NULL,0,NULL,NULL,NULL,1762162200);
INSERT INTO "contacts" VALUES(7,NULL,NULL,0,180,NULL,NULL,1762162200);
INSERT INTO "contacts" VALUES(8,NULL,NULL,0,NULL,NULL,NULL,1762162200);
CREATE TABLE cycles (               -- daily cycles done (`followup run` catches up once)
        day TEXT PRIMARY KEY,           -- local calendar day, ISO
        finished_at INTEGER NOT NULL
    );
CREATE TABLE "digest_attempts" (
   "day" TEXT PRIMARY KEY,
   "message_id" TEXT NOT NULL,
   "started_at" INTEGER NOT NULL
);
CREATE TABLE digest_rows (          -- each digest's numbered rows, as the user saw them
        day TEXT NOT NULL,
        number INTEGER NOT NULL,
        contact_id INTEGER NOT NULL,
        PRIMARY KEY (day, number)
    );
INSERT INTO "digest_rows" VALUES('2026-02-27',1,1);
INSERT INTO "digest_rows" VALUES('2026-02-27',2,7);
INSERT INTO "digest_rows" VALUES('2026-02-27',3,3);
CREATE TABLE digests (
        day TEXT PRIMARY KEY,           -- local calendar day, ISO
        delivered_at INTEGER NOT NULL,
        delivery TEXT NOT NULL,
        subject TEXT NOT NULL
    );
INSERT INTO "digests" VALUES('2026-02-27',1762162200,'imap','followup: 3 people to contact today');
INSERT INTO "digests" VALUES('2026-02-26',1762162200,'smtp','followup: 2 people to contact today');
CREATE TABLE dirty (address TEXT PRIMARY KEY);
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
    , mailbox TEXT NOT NULL DEFAULT '');
INSERT INTO "drafts" VALUES(1,1,'anna@example.org','2026-02-27','checkin','<d1@followup>','Drafts',11,2000,1762162200,'pending',NULL,'');
INSERT INTO "drafts" VALUES(2,7,'emil@example.de','2026-02-27','reply','<d2@followup>','Drafts',12,2000,1762162200,'pending',NULL,'');
INSERT INTO "drafts" VALUES(3,3,'carla@firma.example','2026-02-20','checkin','<d3@followup>','Drafts',44,2000,1762162200,'sent',1762162200,'');
INSERT INTO "drafts" VALUES(4,6,'dora@example.com','2026-02-21','checkin','<d4@followup>','Drafts',10,2000,1762162200,'declined',1762162200,'');
CREATE TABLE exchanges (            -- one per message and counterpart address
        msg_key INTEGER NOT NULL,
        address TEXT NOT NULL,
        direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
        time INTEGER NOT NULL,
        subject TEXT NOT NULL,
        folder TEXT NOT NULL,
        message_id TEXT, mailbox TEXT NOT NULL DEFAULT '',
        UNIQUE (msg_key, address, direction)
    );
INSERT INTO "exchanges" VALUES(-1233838777392215637,'anna@example.org','in',1762162200,'Fotos','INBOX','<m1>','');
INSERT INTO "exchanges" VALUES(-144980053644644497,'anna@example.org','out',1762248600,'Re: Fotos','Sent','<m2>','');
INSERT INTO "exchanges" VALUES(-4080670475245411173,'bob@example.net','in',1762335000,'Rechnung','INBOX','<m3>','');
INSERT INTO "exchanges" VALUES(-1676001225321572710,'carla@gmx.de','in',1762421400,'Privat','INBOX','<m4>','');
INSERT INTO "exchanges" VALUES(-1629713361590164594,'carla@firma.example','in',1762507800,'Dienstlich','INBOX','<m5>','');
INSERT INTO "exchanges" VALUES(-2156486522219103516,'dora@example.com','in',1762594200,'Hallo','INBOX','<m6>','');
INSERT INTO "exchanges" VALUES(-1052298628898974760,'dora.alt@example.com','in',1762680600,'Alt','INBOX','<m7>','');
INSERT INTO "exchanges" VALUES(-3092894083010480432,'emil@example.de','in',1762767000,'Moin','INBOX','<m8>','');
CREATE TABLE "folders" (
        mailbox TEXT NOT NULL DEFAULT '',   -- '' the primary, else the [[mailbox]] name
        name TEXT NOT NULL,
        uidvalidity INTEGER NOT NULL,
        last_uid INTEGER NOT NULL DEFAULT 0,
        uidnext INTEGER NOT NULL DEFAULT 0,
        highestmodseq INTEGER,
        scanned_at INTEGER, broke_through INTEGER, breaks INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (mailbox, name)
    );
INSERT INTO "folders" VALUES('','INBOX',1000,8,0,NULL,NULL,NULL,0);
INSERT INTO "folders" VALUES('','Sent',1001,1,0,NULL,NULL,NULL,0);
CREATE TABLE held (                 -- soft-automated replies waiting for their parent
        parent INTEGER NOT NULL,        -- digest of the Message-ID they answer
        msg_key INTEGER NOT NULL,
        address TEXT NOT NULL,
        time INTEGER NOT NULL,
        subject TEXT NOT NULL,
        folder TEXT NOT NULL,
        message_id TEXT,
        name TEXT NOT NULL,
        language TEXT, mailbox TEXT NOT NULL DEFAULT '',
        UNIQUE (msg_key, address)
    );
CREATE TABLE kept_apart (           -- addresses the user split off: no card joins them again
        address TEXT PRIMARY KEY,
        since INTEGER NOT NULL
    );
INSERT INTO "kept_apart" VALUES('dora.alt@example.com',1762162200);
CREATE TABLE lists (address TEXT PRIMARY KEY);
INSERT INTO "lists" VALUES('team@lists.example.org');
CREATE TABLE "messages" (
        mailbox TEXT NOT NULL DEFAULT '',
        folder TEXT NOT NULL,
        uid INTEGER NOT NULL,
        msg_key INTEGER NOT NULL,
        time INTEGER NOT NULL,
        skipped TEXT,
        PRIMARY KEY (mailbox, folder, uid)
    ) WITHOUT ROWID;
INSERT INTO "messages" VALUES('','INBOX',1,-1233838777392215637,1762162200,NULL);
INSERT INTO "messages" VALUES('','INBOX',2,-4080670475245411173,1762335000,NULL);
INSERT INTO "messages" VALUES('','INBOX',3,-1676001225321572710,1762421400,NULL);
INSERT INTO "messages" VALUES('','INBOX',4,-1629713361590164594,1762507800,NULL);
INSERT INTO "messages" VALUES('','INBOX',5,-2156486522219103516,1762594200,NULL);
INSERT INTO "messages" VALUES('','INBOX',6,-1052298628898974760,1762680600,NULL);
INSERT INTO "messages" VALUES('','INBOX',7,-3092894083010480432,1762767000,NULL);
INSERT INTO "messages" VALUES('','INBOX',8,-3972001196682798148,1762162200,'automated: list');
INSERT INTO "messages" VALUES('','Sent',1,-144980053644644497,1762248600,NULL);
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
CREATE TABLE picks (                -- who was picked on which local day (fair rotation)
        day TEXT NOT NULL,
        contact_id INTEGER NOT NULL,
        PRIMARY KEY (day, contact_id)
    );
INSERT INTO "picks" VALUES('2026-02-27',1);
INSERT INTO "picks" VALUES('2026-02-27',7);
INSERT INTO "picks" VALUES('2026-02-27',3);
INSERT INTO "picks" VALUES('2026-02-26',6);
CREATE TABLE "secrets" (
   "name" TEXT PRIMARY KEY,
   "value" TEXT NOT NULL
);
CREATE TABLE sent_ids (id INTEGER PRIMARY KEY);
CREATE TABLE signature_reads (
        message TEXT PRIMARY KEY,       -- its Message-ID (or the ledger's key without one)
        address TEXT NOT NULL,          -- the sender (identity key)
        sent INTEGER NOT NULL,          -- epoch seconds: the message's time
        read_at INTEGER NOT NULL,
        numbers INTEGER NOT NULL,       -- how many numbers its signature gave
        outcome TEXT NOT NULL           -- read | no text | gone | unreadable
    );
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
INSERT INTO "touchpoints" VALUES(1,7,'call','2026-02-25',1762162200,'Angebot','cli',1762162200);
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
CREATE INDEX exchanges_by_address ON exchanges (address, time);
CREATE INDEX contact_addresses_by_contact ON contact_addresses (contact_id);
CREATE INDEX drafts_by_state ON drafts (state, contact_id);
CREATE INDEX card_addresses_by_address ON card_addresses (address);
CREATE INDEX phones_by_card ON phones (card_id);
CREATE INDEX phones_by_address ON phones (address);
CREATE INDEX held_by_parent ON held (parent);
CREATE INDEX touchpoints_by_contact ON touchpoints (contact_id, time);
CREATE INDEX phones_by_source ON phones (source, address);
CREATE INDEX messages_by_key ON messages (msg_key);
DELETE FROM "sqlite_sequence";
INSERT INTO "sqlite_sequence" VALUES('contacts',8);
INSERT INTO "sqlite_sequence" VALUES('drafts',4);
INSERT INTO "sqlite_sequence" VALUES('touchpoints',1);
COMMIT;
