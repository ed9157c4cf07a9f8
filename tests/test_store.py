"""The store without a server: migrations, idempotent batches, aggregates, identity decisions,
`scan --full` keeping decisions, and the exclusive lock."""

from __future__ import annotations

import sqlite3
import stat
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from agent.decisions import resolve
from agent.errors import StoreError, UsageError
from agent.model import Contact, ExchangeRow, MessageRow
from agent.store import Store
from agent.store.database import exclusive_lock
from agent.store.migrations import SCHEMA_VERSION

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
ME = "me@example.org"


def hours(n: float) -> datetime:
    return T0 + timedelta(hours=n)


def row(key: str, address: str, direction: str, when: datetime | None, *, subject: str = "",
        name: str = "", language: str | None = None) -> ExchangeRow:
    return ExchangeRow(msg_key=key, address=address, direction=direction,  # type: ignore[arg-type]
                       time=when, subject=subject or f"subject of {key}",
                       message_id=f"{key}@example.net", name=name, language=language)


def save(store: Store, folder: str, rows: list[ExchangeRow], *, first_uid: int = 1,
         lists: tuple[str, ...] = (), refresh: bool = True) -> int:
    """Save one batch: a message per distinct msg_key (UIDs from first_uid), then refresh."""
    keys = list(dict.fromkeys(r.msg_key for r in rows))
    times = {r.msg_key: r.time for r in rows}
    messages = [MessageRow(first_uid + n, key, times[key], None) for n, key in enumerate(keys)]
    last_uid = messages[-1].uid if messages else first_uid
    added = store.ledger.save_batch(folder, 7, last_uid, messages, rows, lists)
    if refresh:
        store.refresh(T0)
    return added


def by_email(store: Store, **kwargs: object) -> dict[str, Contact]:
    contacts = store.people.contacts(**kwargs)  # type: ignore[arg-type]
    return {c.email: c for c in contacts}


@pytest.fixture
def store(tmp_path: Path) -> Store:
    with Store(tmp_path / "followup.db") as opened:
        yield opened  # type: ignore[misc]


# --------------------------------------------------------------------------- migrations


def test_fresh_database_has_the_current_schema_and_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "data" / "followup" / "followup.db"
    with Store(path) as store:
        assert store.database.schema_version == SCHEMA_VERSION
        tables = {r[0] for r in store.database.conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"folders", "messages", "exchanges", "addresses", "contacts",
            "contact_addresses", "contact_tags", "digests", "drafts"} <= tables
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) & 0o077 == 0


def test_reopening_is_a_no_op(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "followup.db"
    with Store(path) as store:
        save(store, "INBOX", [row("m1", "anna@example.org", "in", hours(1))])
        schema = store.database.conn.execute("SELECT type, name, sql FROM sqlite_master").fetchall()
        before = store.people.contacts()
    caplog.clear()
    with caplog.at_level("INFO", logger="agent.store"), Store(path) as store:
        assert store.database.schema_version == SCHEMA_VERSION
        assert store.database.conn.execute(
            "SELECT type, name, sql FROM sqlite_master").fetchall() == schema
        assert store.people.contacts() == before
    assert not [r for r in caplog.records if "migrated" in r.getMessage()]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_database_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "followup.db"
    Store(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match=r"newer followup .*upgrade followup") as info:
        Store(path)
    assert str(path) in str(info.value)
    assert info.value.exit_code == 1


def test_a_file_that_is_no_database_gives_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "followup.db"
    path.write_bytes(b"this is a text file, not SQLite\n" * 100)
    with pytest.raises(StoreError, match="not a followup database"):
        Store(path)


# --------------------------------------------------------------------------- batches


def test_saving_the_same_batch_twice_adds_nothing(store: Store) -> None:
    rows = [row("m1", "anna@example.org", "in", hours(1), name="Anna"),
            row("m2", "anna@example.org", "out", hours(2)),
            row("m2", "bernd@example.org", "out", hours(2)),
            row("m3", "carla@example.org", "in", hours(3))]
    assert save(store, "INBOX", rows) == 4
    contacts = store.people.contacts(two_way=False)
    counts = (store.ledger.message_count(), store.ledger.exchange_count())
    assert save(store, "INBOX", rows) == 0
    assert (store.ledger.message_count(), store.ledger.exchange_count()) == counts
    assert store.people.contacts(two_way=False) == contacts
    anna = by_email(store)["anna@example.org"]
    assert (anna.messages_in, anna.messages_out) == (1, 1)


def test_the_same_message_in_two_folders_counts_once(store: Store) -> None:
    message = [row("<id-1>\x00anna@example.org\x00t", "anna@example.org", "in", hours(1))]
    assert save(store, "INBOX", message) == 1
    assert save(store, "Archiv/2024", message, first_uid=50) == 0
    assert store.ledger.message_count() == 2  # one row per folder and UID …
    assert store.ledger.exchange_count() == 1  # … but one exchange
    anna = by_email(store, two_way=False)["anna@example.org"]
    assert (anna.messages_in, anna.messages_out) == (1, 0)
    assert anna.last_folder == "INBOX"


def test_a_failing_batch_leaves_nothing_behind(store: Store) -> None:
    """An error half-way through save_batch (here: a row without a time, after the messages
    were inserted) rolls the whole batch back, the folder's progress included."""
    good = row("m1", "anna@example.org", "in", hours(1))
    bad = row("m2", "bernd@example.org", "in", None)  # type: ignore[arg-type]
    messages = [MessageRow(1, "m1", hours(1), None), MessageRow(2, "m2", hours(2), None)]
    with pytest.raises(AttributeError):
        store.ledger.save_batch("INBOX", 7, 2, messages, [good, bad], ["list@example.org"])
    assert store.ledger.message_count() == 0
    assert store.ledger.exchange_count() == 0
    assert store.ledger.folder_state("INBOX") is None
    assert store.ledger.list_addresses() == set()
    assert store.ledger.refresh_aggregates() == 0


def _batch(store: Store, uid: int, *, bad: bool = False) -> None:
    """One message of one batch, saved with INBOX's progress (a row without a time fails
    after the message row was written)."""
    key = f"g{uid}"
    store.ledger.save_batch("INBOX", 7, uid, [MessageRow(uid, key, hours(uid), None)],
                            [row(key, f"p{uid}@example.org", "in", None if bad else hours(uid))],
                            [])


def _committed(store: Store) -> tuple[int, int | None]:
    """Messages and INBOX's last UID as another connection sees them (what a crash keeps)."""
    other = sqlite3.connect(store.path)
    try:
        count = other.execute("SELECT count(*) FROM messages").fetchone()[0]
        last = other.execute("SELECT last_uid FROM folders WHERE name = 'INBOX'").fetchone()
    finally:
        other.close()
    return count, last[0] if last else None


def test_grouped_batches_commit_every_few_thousand_rows_or_seconds(store: Store) -> None:
    """A scan's batches share a transaction, committed every max_rows rows or max_seconds
    (a clock passed in: no waiting); each batch carries its folder's progress."""
    clock = iter([0.0, 0.1, 0.2, 0.3, 5.0, 5.1, 5.2, 5.3]).__next__
    with store.database.grouped(max_rows=3, max_seconds=2.0, clock=clock) as wrote:
        for uid in (1, 2):
            _batch(store, uid)
            wrote(1)
        assert _committed(store) == (0, None)  # nothing committed yet
        _batch(store, 3)
        wrote(1)  # the third row: committed
        assert _committed(store) == (3, 3)
        _batch(store, 4)
        wrote(1)  # 4.7 s after the last commit: committed
        assert _committed(store) == (4, 4)
        _batch(store, 5)
        wrote(1)
    assert _committed(store) == (5, 5)  # the end commits the rest


def test_grouped_keeps_whole_batches_when_the_connection_breaks(store: Store) -> None:
    """A failure that is not the database's (a dropped connection, an interrupt) commits
    the batches finished so far; a batch that failed half-way leaves nothing."""
    class Dropped(Exception):
        pass

    with pytest.raises(Dropped), store.database.grouped(max_rows=100) as wrote:
        _batch(store, 1)
        wrote(1)
        _batch(store, 2)
        wrote(1)
        with pytest.raises(AttributeError):
            _batch(store, 3, bad=True)  # its message row was written, then undone
        raise Dropped
    assert _committed(store) == (2, 2)
    assert store.ledger.exchange_count() == 2


def test_grouped_keeps_whole_batches_on_a_database_error(store: Store) -> None:
    """A failed statement changes nothing and a failed batch is undone to its savepoint, so
    the batches before it are kept (when the disk is full, the COMMIT fails too: then the
    group is rolled back, tests/test_badinput.py)."""
    with pytest.raises(sqlite3.IntegrityError), store.database.grouped() as wrote:
        _batch(store, 1)
        wrote(1)
        store.database.conn.execute("INSERT INTO folders (name) VALUES (NULL)")
    assert _committed(store) == (1, 1)


def test_refresh_picks_the_newest_exchange_and_counts_both_ways(store: Store) -> None:
    save(store, "INBOX", [
        row("a1", "anna@example.org", "in", hours(1), name="Anna"),
        row("a2", "anna@example.org", "out", hours(5), subject="Re: Angebot"),
        row("a3", "anna@example.org", "in", hours(3)),
        # The same second both ways: the user's answer is the later act, whatever the keys.
        row("zz-in", "bernd@example.org", "in", hours(9), subject="Frage"),
        row("aa-out", "bernd@example.org", "out", hours(9), subject="Re: Frage"),
        row("b0", "bernd@example.org", "out", hours(2)),
    ])
    contacts = by_email(store)
    anna, bernd = contacts["anna@example.org"], contacts["bernd@example.org"]
    assert (anna.last_exchange, anna.last_direction, anna.last_subject) == (
        hours(5), "out", "Re: Angebot")
    assert (anna.messages_in, anna.messages_out) == (2, 1)
    assert (anna.last_in, anna.last_out) == (hours(3), hours(5))
    assert (bernd.last_exchange, bernd.last_direction, bernd.last_subject) == (
        hours(9), "out", "Re: Frage")
    assert (bernd.messages_in, bernd.messages_out) == (1, 2)
    assert store.ledger.refresh_aggregates() == 0  # nothing dirty any more

    # A later batch refreshes only what it touched; ids stay.
    save(store, "INBOX", [row("a4", "anna@example.org", "in", hours(20))], first_uid=10)
    again = by_email(store)
    assert again["anna@example.org"].id == anna.id
    assert (again["anna@example.org"].last_direction, again["anna@example.org"].messages_in) \
        == ("in", 3)
    assert again["bernd@example.org"] == bernd


def test_the_newest_display_name_wins_and_empty_names_erase_nothing(store: Store) -> None:
    save(store, "INBOX", [row("m2", "anna@example.org", "in", hours(2), name="Anna Schmidt")])
    save(store, "Sent", [row("m3", "anna@example.org", "out", hours(3), name="")])
    save(store, "Archiv", [row("m1", "anna@example.org", "in", hours(1), name="A. S.")])
    assert by_email(store)["anna@example.org"].name == "Anna Schmidt"
    save(store, "INBOX", [row("m4", "anna@example.org", "in", hours(4), name="Anna Müller")],
         first_uid=9)
    assert by_email(store)["anna@example.org"].name == "Anna Müller"


def test_contacts_leave_out_self_lists_and_one_way_people(store: Store) -> None:
    save(store, "INBOX", [
        row("m1", "anna@example.org", "in", hours(1)),
        row("m2", "anna@example.org", "out", hours(2)),
        row("m3", "only-in@example.org", "in", hours(3)),
        row("m4", "only-out@example.org", "out", hours(4)),
        row("m5", "talk@lists.example.org", "out", hours(5)),
        row("m6", ME, "in", hours(6)),
        row("m7", ME, "out", hours(7)),
    ], lists=("talk@lists.example.org",))
    assert set(by_email(store, self_addresses=[ME])) == {"anna@example.org"}
    assert set(by_email(store, self_addresses=[ME], two_way=False)) == {
        "anna@example.org", "only-in@example.org", "only-out@example.org"}
    assert store.ledger.list_addresses() == {"talk@lists.example.org"}
    anna_id = resolve(store, "anna@example.org")
    store.people.set_decision(anna_id, ignored=1)
    assert by_email(store, self_addresses=[ME])["anna@example.org"].ignored
    assert by_email(store, self_addresses=[ME], include_ignored=False) == {}


# --------------------------------------------------------------------------- identity decisions


@pytest.fixture
def people(store: Store) -> Store:
    save(store, "INBOX", [
        row("a1", "annaschmidt@gmail.com", "in", hours(1), name="Anna Schmidt"),
        row("a2", "annaschmidt@gmail.com", "out", hours(2)),
        row("b1", "anna.schmidt@bigcorp.example", "in", hours(10), name="Anna Schmidt"),
        row("b2", "anna.schmidt@bigcorp.example", "out", hours(4)),
        row("c1", "carla@example.org", "in", hours(3)),
        row("c2", "carla@example.org", "out", hours(5)),
    ])
    return store


def test_resolve_by_id_and_by_address_variants(people: Store) -> None:
    anna = resolve(people, "annaschmidt@gmail.com")
    assert resolve(people, str(anna)) == anna
    assert resolve(people, f"  {anna} ") == anna
    for variant in ("Anna.Schmidt+fotos@GoogleMail.com", "ANNASCHMIDT@GMAIL.COM",
                    "<anna.schmidt@gmail.com>", " annaschmidt+x@gmail.com "):
        assert resolve(people, variant) == anna, variant
    carla = resolve(people, "Carla+Newsletter@Example.ORG")
    assert carla != anna
    assert people.people.addresses_of(carla) == ["carla@example.org"]


def test_resolve_unknown_says_what_is_close(people: Store) -> None:
    with pytest.raises(UsageError, match=r"did you mean carla@example\.org") as info:
        resolve(people, "karla@example.org")
    assert info.value.exit_code == 2
    with pytest.raises(UsageError, match=r"\b999\b.*followup contacts"):
        resolve(people, "999")
    with pytest.raises(UsageError, match="followup contacts"):
        resolve(people, "zzz@nowhere.invalid")


def test_merge_and_split(people: Store) -> None:
    gmail = resolve(people, "annaschmidt@gmail.com")
    work = resolve(people, "anna.schmidt@bigcorp.example")
    people.people.add_tags(work, ["kunde"])
    people.people.set_decision(work, snooze_until=date(2025, 9, 1), cadence_days=45)
    people.people.set_decision(gmail, cadence_days=30)
    people.people.merge(gmail, work)

    contacts = {c.id: c for c in people.people.contacts()}
    assert set(contacts) == {gmail, resolve(people, "carla@example.org")}
    anna = contacts[gmail]
    assert sorted(anna.addresses) == ["anna.schmidt@bigcorp.example", "annaschmidt@gmail.com"]
    assert anna.email == "anna.schmidt@bigcorp.example"  # the newest exchange's address
    assert (anna.last_exchange, anna.last_direction) == (hours(10), "in")
    assert (anna.messages_in, anna.messages_out) == (2, 2)
    assert anna.tags == frozenset({"kunde"})
    assert anna.cadence_days == 30  # keep's decision wins …
    assert anna.snooze_until == date(2025, 9, 1)  # … the other's fills the gaps
    assert resolve(people, str(work)) == gmail  # the old id follows the merge
    assert resolve(people, "Anna.Schmidt+x@BigCorp.example") == gmail
    with pytest.raises(ValueError, match="two different contacts"):
        people.people.merge(gmail, resolve(people, "anna.schmidt@bigcorp.example"))

    new = people.people.split("anna.schmidt@bigcorp.example", T0)
    assert new not in (gmail, work)
    contacts = {c.id: c for c in people.people.contacts()}
    assert contacts[new].addresses == ("anna.schmidt@bigcorp.example",)
    assert contacts[gmail].addresses == ("annaschmidt@gmail.com",)
    assert (contacts[gmail].messages_in, contacts[gmail].messages_out) == (1, 1)
    assert resolve(people, "anna.schmidt@bigcorp.example") == new


def test_tags(people: Store) -> None:
    carla = resolve(people, "carla@example.org")
    people.people.add_tags(carla, ["kunde", "presse"])
    people.people.add_tags(carla, ["kunde"])
    people.people.remove_tags(carla, ["presse", "not-there"])
    assert by_email(people)["carla@example.org"].tags == frozenset({"kunde"})


def test_forget_mailbox_keeps_every_decision(people: Store) -> None:
    gmail = resolve(people, "annaschmidt@gmail.com")
    people.people.merge(gmail, resolve(people, "anna.schmidt@bigcorp.example"))
    carla = resolve(people, "carla@example.org")
    people.people.set_decision(carla, snooze_until=date(2025, 12, 24), name="Carla K.",
                        language="en", cadence_days=60)
    people.people.add_tags(carla, ["presse"])
    before = people.people.contacts()

    people.ledger.forget()
    assert people.people.contacts() == []
    assert (people.ledger.message_count(), people.ledger.exchange_count()) == (0, 0)
    assert people.ledger.folder_states() == {}
    assert people.ledger.list_addresses() == set()

    save(people, "INBOX", [
        row("a1", "annaschmidt@gmail.com", "in", hours(1), name="Anna Schmidt"),
        row("a2", "annaschmidt@gmail.com", "out", hours(2)),
        row("b1", "anna.schmidt@bigcorp.example", "in", hours(10), name="Anna Schmidt"),
        row("b2", "anna.schmidt@bigcorp.example", "out", hours(4)),
        row("c1", "carla@example.org", "in", hours(3)),
        row("c2", "carla@example.org", "out", hours(5)),
    ])
    assert people.people.contacts() == before
    carla_again = by_email(people)["carla@example.org"]
    assert (carla_again.name, carla_again.language, carla_again.cadence_days) == (
        "Carla K.", "en", 60)
    assert carla_again.snooze_until == date(2025, 12, 24)


# --------------------------------------------------------------------------- the lock


def test_a_second_lock_holder_waits_then_fails_clearly(tmp_path: Path) -> None:
    path = tmp_path / "followup.db"
    with exclusive_lock(path, wait=1):
        assert path.with_name("followup.db.lock").read_text().strip().isdigit()
        started = time.monotonic()
        with pytest.raises(StoreError, match="another followup is working on") as info, \
                exclusive_lock(path, wait=0.3):
            pass
        waited = time.monotonic() - started
    assert 0.3 <= waited < 2
    assert "followup.db.lock" in str(info.value)
    with exclusive_lock(path, wait=0):  # free again
        pass


def test_a_second_lock_holder_gets_it_once_released(tmp_path: Path) -> None:
    path = tmp_path / "followup.db"
    holding = threading.Event()
    release = threading.Event()

    def first() -> None:
        with exclusive_lock(path):
            holding.set()
            release.wait(5)
            time.sleep(0.2)

    thread = threading.Thread(target=first)
    thread.start()
    assert holding.wait(5)
    release.set()
    started = time.monotonic()
    with exclusive_lock(path, wait=5):
        assert time.monotonic() - started >= 0.1
    thread.join(5)
