"""Schema migrations keep every user decision: a saved database of each schema version is
opened with the current code, migrated, and must still hold every snooze, ignore, cadence,
name, language, tag, merge, split, draft, digest and pick.

tests/data/schema/vN.sql is a dump of a database written by the code at schema version N,
with a ledger and the decisions of :func:`populate`. How to add schema version N+1:

1. Append the migration to ``agent.store.migrations.MIGRATIONS`` (use ``db.execute`` /
   ``db.executescript`` of sqlite-utils, which stay inside the migration's transaction;
   ``sqlite3.Connection.executescript`` would COMMIT half-way).
2. If the version adds a kind of decision, record one in :func:`populate` and check it in
   :func:`check_decisions` (the older dumps simply lack it: check it only for versions
   that have it).
3. Write the new dump: ``.venv/bin/python tests/test_migrations.py`` (it refuses to
   overwrite an existing one). Keep every older dump: each is a test that upgrading from
   that version keeps everything.

While a schema version is unreleased, its migration may still change (nothing to upgrade
from yet): then regenerate its dump with ``--force``; the test that compares the dump with
the schema the code creates says when that is needed.
"""

from __future__ import annotations

import re
import sqlite3
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

import agent.store.database
import agent.store.migrations
from agent.decisions import resolve
from agent.model import Direction, ExchangeRow, MessageRow, Touch
from agent.store import Store
from agent.store.commands import Result
from agent.store.migrations import SCHEMA_VERSION

SCHEMA_DIR = Path(__file__).resolve().parent / "data" / "schema"
T0 = datetime(2025, 11, 3, 9, 30, tzinfo=UTC)


def dumps() -> dict[int, Path]:
    found = {}
    for path in SCHEMA_DIR.glob("v*.sql"):
        match = re.fullmatch(r"v(\d+)\.sql", path.name)
        if match:
            found[int(match[1])] = path
    return dict(sorted(found.items()))


# --------------------------------------------------------------------------- the sample


def _exchange(key: str, address: str, direction: Direction, day: int, subject: str,
              name: str) -> ExchangeRow:
    return ExchangeRow(msg_key=key, address=address, direction=direction,
                       time=T0.replace(day=day), subject=subject, message_id=f"<{key}>",
                       name=name, language="de")


LEDGER = [
    ("INBOX", 1, _exchange("m1", "anna@example.org", "in", 3, "Fotos", "Anna Berg")),
    ("Sent", 1, _exchange("m2", "anna@example.org", "out", 4, "Re: Fotos", "Anna Berg")),
    ("INBOX", 2, _exchange("m3", "bob@example.net", "in", 5, "Rechnung", "Bob Brandt")),
    ("INBOX", 3, _exchange("m4", "carla@gmx.de", "in", 6, "Privat", "Carla Christ")),
    ("INBOX", 4, _exchange("m5", "carla@firma.example", "in", 7, "Dienstlich", "Carla Christ")),
    ("INBOX", 5, _exchange("m6", "dora@example.com", "in", 8, "Hallo", "Dora Dahl")),
    ("INBOX", 6, _exchange("m7", "dora.alt@example.com", "in", 9, "Alt", "Dora Dahl")),
    ("INBOX", 7, _exchange("m8", "emil@example.de", "in", 10, "Moin", "Emil Ernst")),
]


def populate(store: Store) -> None:
    """A small ledger and one of every kind of decision, through the store's own API."""
    for folder, uid, row in LEDGER:
        store.ledger.save_batch(folder, 1000 + (folder == "Sent"), uid,
                         [MessageRow(uid, row.msg_key, row.time, None)], [row], [])
    store.ledger.save_batch("INBOX", 1000, 8, [MessageRow(8, "list", T0, "automated: list")], [],
                     ["team@lists.example.org"])
    store.refresh(T0)

    anna = resolve(store, "anna@example.org")
    store.people.set_decision(anna, snooze_until=date(2026, 6, 1), cadence_days=30,
                       name="Anna (Agentur)", language="en")
    store.people.add_tags(anna, ["kunde", "wichtig"])
    store.people.set_decision(resolve(store, "bob@example.net"), ignored=1)
    carla = resolve(store, "carla@firma.example")
    store.people.merge(carla, resolve(store, "carla@gmx.de"))
    store.people.add_tags(carla, ["presse"])
    dora = resolve(store, "dora@example.com")
    store.people.merge(dora, resolve(store, "dora.alt@example.com"))
    store.people.split("dora.alt@example.com", T0)  # merged, then split again: two people
    emil = resolve(store, "emil@example.de")
    store.people.set_decision(emil, cadence_days=180)

    day = date(2026, 2, 27)
    pending = store.journal.add_draft(anna, "anna@example.org", day, "checkin", "<d1@followup>",
                              "Drafts", 11, 2000, T0, state="pending")
    store.journal.add_draft(emil, "emil@example.de", day, "reply", "<d2@followup>", "Drafts",
                            12, 2000, T0, state="pending")
    sent = store.journal.add_draft(carla, "carla@firma.example", date(2026, 2, 20), "checkin",
                           "<d3@followup>", "Drafts", 9, 2000, T0, state="pending")
    store.journal.update_draft_uid(sent, 44, 2000)
    store.journal.resolve_draft(sent, "sent", T0)
    declined = store.journal.add_draft(dora, "dora@example.com", date(2026, 2, 21), "checkin",
                               "<d4@followup>", "Drafts", 10, 2000, T0, state="pending")
    store.journal.resolve_draft(declined, "declined", T0)
    del pending
    store.journal.record_digest(day, "imap", "followup: 3 people to contact today", T0)
    store.journal.record_digest(date(2026, 2, 26), "smtp", "followup: 2 people to contact today",
                                T0)
    store.journal.record_picks(day, [anna, emil, carla])
    store.journal.record_picks(date(2026, 2, 26), [dora])

    # Schema 4: a touchpoint (a decision), a command by mail and a digest's numbered rows.
    store.touchpoints.add(emil, Touch("call", date(2026, 2, 25), T0, "Angebot"), "cli", T0)
    store.commands.record_rows(day, [anna, emil, carla])
    store.commands.record("cmd1@example.org", "INBOX", 20, T0, "digest", day, "Re: digest",
                          [Result("snooze 1 30d", True, "Snoozed Anna until 2026-03-29")], T0)


def check_decisions(store: Store, version: int = SCHEMA_VERSION) -> None:
    """Everything :func:`populate` decided (at schema ``version``), read back through the
    current API."""
    anna = resolve(store, "anna@example.org")
    decided = store.people.decisions_of(anna)
    assert decided.snooze_until == date(2026, 6, 1)
    assert decided.cadence_days == 30
    assert decided.name == "Anna (Agentur)"
    assert decided.language == "en"
    assert decided.tags == frozenset({"kunde", "wichtig"})
    assert not decided.ignored

    assert store.people.decisions_of(resolve(store, "bob@example.net")).ignored

    carla = resolve(store, "carla@firma.example")
    assert resolve(store, "carla@gmx.de") == carla
    assert store.people.decisions_of(carla).tags == frozenset({"presse"})
    assert len(store.people.decisions_of(carla).merged_ids) == 1
    merged_id = store.people.decisions_of(carla).merged_ids[0]
    assert resolve(store, str(merged_id)) == carla  # the old id still leads to her

    dora, dora_alt = resolve(store, "dora@example.com"), resolve(store, "dora.alt@example.com")
    assert dora != dora_alt

    emil = resolve(store, "emil@example.de")
    assert store.people.decisions_of(emil).cadence_days == 180

    drafts = {d.message_id: d for d in store.journal.drafts()}
    assert {m: (d.contact_id, d.state, d.kind, d.uid) for m, d in drafts.items()} == {
        "<d1@followup>": (anna, "pending", "checkin", 11),
        "<d2@followup>": (emil, "pending", "reply", 12),
        "<d3@followup>": (carla, "sent", "checkin", 44),
        "<d4@followup>": (dora, "declined", "checkin", 10),
    }
    pending = [d.message_id for d in store.journal.drafts("pending")]
    assert pending == ["<d1@followup>", "<d2@followup>"]
    assert store.journal.digest_sent(date(2026, 2, 27))
    assert store.journal.digest_sent(date(2026, 2, 26))
    assert not store.journal.digest_sent(date(2026, 2, 28))
    assert store.journal.pick_history() == {anna: date(2026, 2, 27), emil: date(2026, 2, 27),
                                    carla: date(2026, 2, 27), dora: date(2026, 2, 26)}
    # The ledger is rebuildable, but a migration must not lose it either.
    assert store.ledger.message_count() == len(LEDGER) + 1
    assert store.ledger.exchange_count() == len(LEDGER)
    assert store.ledger.list_addresses() == {"team@lists.example.org"}
    if version < 6:  # touchpoints and commands came with schema 6
        return
    (touch,) = store.touchpoints.of(emil)
    assert (touch.touch.kind, touch.touch.day, touch.touch.note) == ("call", date(2026, 2, 25),
                                                                     "Angebot")
    assert store.commands.row(date(2026, 2, 27), 2) == emil
    assert store.commands.applied("cmd1@example.org")
    assert [r.text for r in store.commands.all()[0].results] == ["Snoozed Anna until 2026-03-29"]


# --------------------------------------------------------------------------- helpers


def load_dump(dump: Path, target: Path) -> None:
    conn = sqlite3.connect(target)
    try:
        conn.executescript(dump.read_text(encoding="utf-8"))
    finally:
        conn.close()


def schema_of(db: Path) -> list[tuple[str, str, str]]:
    """Tables, indexes and triggers with their SQL, whitespace-normalised."""
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT type, name, sql FROM sqlite_master "
                            "WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name").fetchall()
    finally:
        conn.close()
    return [(kind, name, re.sub(r"\s+", " ", sql or "")) for kind, name, sql in rows]


def write_dump(path: Path) -> None:
    """A dump of a database at the current schema version holding :func:`populate`."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "followup.db"
        with Store(db) as store:
            populate(store)
            check_decisions(store)
        conn = sqlite3.connect(db)
        try:
            conn.execute("PRAGMA journal_mode = DELETE")
            lines = list(conn.iterdump())
        finally:
            conn.close()
    header = (f"-- followup database at schema version {SCHEMA_VERSION}, written by "
              "tests/test_migrations.py; load with sqlite3.executescript.\n"
              f"PRAGMA user_version = {SCHEMA_VERSION};\n")
    path.write_text(header + "\n".join(lines) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------- tests


def test_every_schema_version_has_a_dump() -> None:
    assert list(dumps()) == list(range(1, SCHEMA_VERSION + 1)), (
        f"tests/data/schema needs v1.sql … v{SCHEMA_VERSION}.sql; write the missing one with "
        "`.venv/bin/python tests/test_migrations.py` (see this file's docstring)")


def test_the_newest_dump_is_the_schema_the_code_creates(tmp_path: Path) -> None:
    newest = dumps()[max(dumps())]
    load_dump(newest, tmp_path / "dumped.db")
    with Store(tmp_path / "fresh.db"):
        pass
    assert schema_of(tmp_path / "dumped.db") == schema_of(tmp_path / "fresh.db"), (
        f"{newest.name} no longer matches the schema of migration {SCHEMA_VERSION}. While that "
        "version is unreleased, regenerate it: `.venv/bin/python tests/test_migrations.py "
        "--force`; once released, change the schema with a new migration instead.")


@pytest.mark.parametrize("version", list(dumps()), ids=lambda v: f"v{v}")
def test_upgrading_keeps_every_decision(tmp_path: Path, version: int) -> None:
    db = tmp_path / "followup.db"
    load_dump(dumps()[version], db)
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == version
    conn.close()
    with Store(db) as store:
        assert store.database.schema_version == SCHEMA_VERSION
        check_decisions(store, version)
    # A migrated database has exactly the schema of a new one.
    with Store(tmp_path / "fresh.db"):
        pass
    assert schema_of(db) == schema_of(tmp_path / "fresh.db")
    # And opening it again changes nothing.
    with Store(db) as store:
        check_decisions(store, version)


def test_v0_an_empty_file_becomes_a_current_database(tmp_path: Path) -> None:
    db = tmp_path / "followup.db"
    db.touch()
    with Store(db) as store:
        assert store.database.schema_version == SCHEMA_VERSION
        populate(store)
        check_decisions(store)


def test_a_failing_migration_leaves_the_old_version_untouched(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each migration is one transaction: a failure half-way leaves no trace."""
    db = tmp_path / "followup.db"
    with Store(db) as store:
        populate(store)
    before = schema_of(db)

    def broken(database: object) -> None:
        assert hasattr(database, "executescript")
        database.executescript("CREATE TABLE half_done (x); "  # type: ignore[attr-defined]
                               "ALTER TABLE contacts ADD COLUMN colour TEXT;")
        raise RuntimeError("migration bug")

    monkeypatch.setattr(agent.store.database, "MIGRATIONS",
                        (*agent.store.migrations.MIGRATIONS, broken))
    monkeypatch.setattr(agent.store.database, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with pytest.raises(RuntimeError, match="migration bug"):
        Store(db)
    monkeypatch.undo()
    assert schema_of(db) == before
    with Store(db) as store:
        assert store.database.schema_version == SCHEMA_VERSION
        check_decisions(store)


if __name__ == "__main__":
    target = SCHEMA_DIR / f"v{SCHEMA_VERSION}.sql"
    if target.exists() and "--force" not in sys.argv[1:]:
        sys.exit(f"{target} exists; a released version's dump must not change "
                 "(--force only while it is unreleased)")
    SCHEMA_DIR.mkdir(parents=True, exist_ok=True)
    write_dump(target)
    print(f"wrote {target}")
