"""Faults: dropped, reset, stalled and garbled connections (a proxy of our own in front of
Dovecot), `kill -9` at random points of a scan and of the daily cycle, a lost reply to an
APPEND, two processes on one database.

Whatever happens to a scan, the end state must be *exactly* the ledger of an uninterrupted
scan of the same mailbox (:func:`ledger_dump` reads every mailbox-derived table); whatever
happens to the daily cycle, no digest and no draft exists twice and no decision is lost.
A full disk and broken database files are in tests/test_badinput.py.

Covered elsewhere and not repeated here: a UIDVALIDITY change and a UIDNEXT that goes
backwards (tests/test_scan.py: ``test_uidvalidity_change_…``, ``test_uidnext_backwards_…``,
``test_store_reset_path_…``), five cumulative kills of `scan`/`scan --full`
(tests/test_scan.py ``test_kill_9_during_scans_…``), a garbled FETCH response parsed in
isolation (tests/test_mailbox.py ``test_garbage_fetch_response_…``).
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest

from agent import service
from agent.config import load_config
from agent.decisions import resolve
from agent.errors import StoreError, TransientMailboxError
from agent.mailbox.client import Mailbox
from agent.mailbox.records import FetchedHeader
from agent.scan import ScanSummary
from agent.service import RETRY_DELAYS, Retry, run_scan
from agent.store import Store
from tests.faultproxy import Connection, Fault, FaultProxy
from tests.kit import followup_process, generated_folders, run_cli, write_config
from tests.mailgen import GeneratedMailbox, generate, realistic
from tests.servers.account import ImapAccount
from tests.servers.dovecot import Dovecot

NOW = datetime(2026, 3, 1, 7, 30, tzinfo=UTC)
NOW_TEXT = "2026-03-01T07:30:00Z"
VOLUME = 3000  # ordinary messages on top of the adversarial generated mailbox
BATCH = 100  # small batches: many sync-state saves for a fault to fall between


# --------------------------------------------------------------------------- the mailbox


@dataclass
class BigMailbox:
    """One Dovecot user with a few thousand messages, planted once per module."""

    account: ImapAccount
    generated: GeneratedMailbox
    total: int  # messages in the folders a scan reads
    reference: dict[str, list[tuple[Any, ...]]]  # ledger_dump of an uninterrupted scan
    reference_seconds: float


@pytest.fixture(scope="module")
def big(dovecot_server: Dovecot, tmp_path_factory: pytest.TempPathFactory) -> BigMailbox:
    account = dovecot_server.new_account()
    generated = generate(21, people=25, now=NOW, folders=generated_folders(account))
    for folder in generated.create:
        account.create_folder(folder)
    account.append_many(generated.items())
    account.append_many(realistic(22, VOLUME, now=NOW, sent=account.sent_folder))
    counted = generated.counted_folders()
    total = sum(m.folder in counted for m in generated.messages) + VOLUME

    with pytest.MonkeyPatch.context() as monkeypatch:
        path = write_config(monkeypatch, account, tmp_path_factory.mktemp("reference"),
                            aliases=generated.aliases, batch_size=BATCH)
        started = time.monotonic()
        summary = run_scan(load_config(path), now=NOW)
        seconds = time.monotonic() - started
    assert summary.fetched == total
    reference = ledger_dump(path.parent / "followup.db")
    assert len(reference["messages"]) == total
    return BigMailbox(account, generated, total, reference, seconds)


def ledger_dump(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every mailbox-derived row, sorted; contacts as groups of addresses (ids may differ)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        queries = {
            "folders": "SELECT name, uidvalidity, last_uid, uidnext, highestmodseq FROM folders",
            "messages": "SELECT folder, uid, msg_key, time, skipped FROM messages",
            "exchanges": "SELECT * FROM exchanges",
            "addresses": "SELECT * FROM addresses",
            "address_names": "SELECT * FROM address_names",
            "lists": "SELECT * FROM lists",
            "dirty": "SELECT * FROM dirty",
            "people": "SELECT group_concat(address, ' ') FROM (SELECT * FROM contact_addresses "
                      "ORDER BY address) GROUP BY contact_id",
        }
        return {name: sorted(conn.execute(sql).fetchall(), key=repr)
                for name, sql in queries.items()}
    finally:
        conn.close()


def integrity(db: Path) -> str:
    conn = sqlite3.connect(db)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


def assert_same_ledger(db: Path, reference: dict[str, list[tuple[Any, ...]]]) -> None:
    assert integrity(db) == "ok"
    got = ledger_dump(db)
    for table, rows in reference.items():
        if got[table] != rows:
            missing = [r for r in rows if r not in set(got[table])][:5]
            extra = [r for r in got[table] if r not in set(rows)][:5]
            pytest.fail(f"table {table}: {len(got[table])} rows, want {len(rows)}; "
                        f"missing {missing}; unexpected {extra}")


def assert_sync_state_consistent(db: Path) -> None:
    """Nothing half-written: each folder's saved last_uid is its newest saved message."""
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT f.name, f.last_uid, max(m.uid) FROM folders AS f "
                            "LEFT JOIN messages AS m ON m.folder = f.name GROUP BY f.name")
        for name, last_uid, newest in rows:
            assert last_uid == (newest or 0), f"{name}: last_uid {last_uid}, newest {newest}"
    finally:
        conn.close()


class Sleeps(list[float]):
    """An injectable sleep that records the back-off instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def spy_fetches(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every UID FETCHed, across all connections."""
    fetched: list[int] = []
    original = Mailbox.header_batches

    def counting(self: Mailbox, uids: Sequence[int], batch_size: int
                 ) -> Iterator[tuple[Sequence[int], list[FetchedHeader]]]:
        for chunk, found in original(self, uids, batch_size):
            fetched.extend(chunk)
            yield chunk, found

    monkeypatch.setattr(Mailbox, "header_batches", counting)
    return fetched


@pytest.fixture
def proxy(big: BigMailbox) -> Iterator[FaultProxy]:
    with FaultProxy(big.account.host, big.account.port) as running:
        yield running


@dataclass
class ProxiedScan:
    """One uninterrupted scan of the big mailbox through a fault proxy with no faults."""

    summary: ScanSummary
    database: Path
    connections: list[Connection]
    fired: list[Connection]


@pytest.fixture(scope="module")
def proxied_scan(big: BigMailbox, tmp_path_factory: pytest.TempPathFactory) -> ProxiedScan:
    with pytest.MonkeyPatch.context() as monkeypatch, \
            FaultProxy(big.account.host, big.account.port) as measuring:
        path = write_config(monkeypatch, big.account, tmp_path_factory.mktemp("measure"),
                            port=measuring.port, aliases=big.generated.aliases,
                            batch_size=BATCH)
        summary = run_scan(load_config(path), now=NOW)
    return ProxiedScan(summary, path.parent / "followup.db", measuring.connections,
                       measuring.fired())


@pytest.fixture(scope="module")
def scan_bytes(proxied_scan: ProxiedScan) -> int:
    """Bytes the server sends during one uninterrupted scan (for placing faults)."""
    assert len(proxied_scan.connections) == 1
    total = proxied_scan.connections[0].bytes_down
    assert total > 500_000, total  # a few thousand header blocks
    return total


# --------------------------------------------------------------------------- network faults


def test_proxy_without_faults_changes_nothing(big: BigMailbox,
                                             proxied_scan: ProxiedScan) -> None:
    """A scan through the proxy (no faults planned) gives exactly the ledger of a scan
    straight from the server: the proxy itself changes nothing the other tests measure."""
    assert proxied_scan.fired == []
    assert len(proxied_scan.connections) == 1  # no retry was needed
    assert proxied_scan.summary.fetched == big.total
    assert_same_ledger(proxied_scan.database, big.reference)
    assert_sync_state_consistent(proxied_scan.database)


@pytest.mark.parametrize(("kind", "where"), [
    ("cut", 0.0),      # the greeting never arrives
    ("cut", 0.001),    # during LOGIN / LIST / STATUS
    ("cut", 0.3),
    ("cut", 0.75),
    ("cut", 0.999),    # in the last FETCH or at LOGOUT
    ("reset", 0.5),
    ("garbage", 0.0),  # a greeting that is not IMAP
    ("garbage", 0.4),
    ("garbage", 0.9),
    ("cut-up", 0.5),   # the client's own command never reaches the server
])
def test_dropped_connection_retries_and_resumes(
        big: BigMailbox, scan_bytes: int, proxy: FaultProxy, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, kind: str, where: float) -> None:
    after = int(scan_bytes * where)
    fault = {"cut": Fault.cut(after), "reset": Fault.reset(after),
             "garbage": Fault.garbage(after), "cut-up": Fault.cut(int(where * 20_000), "up")
             }[kind]
    proxy.plan(fault)
    path = write_config(monkeypatch, big.account, tmp_path, port=proxy.port,
                        aliases=big.generated.aliases, batch_size=BATCH)
    fetched = spy_fetches(monkeypatch)
    sleeps = Sleeps()
    run_scan(load_config(path), now=NOW, retry=Retry(sleep=sleeps))

    assert proxy.fired(), proxy.describe()
    db = tmp_path / "followup.db"
    assert_same_ledger(db, big.reference)
    if kind == "cut" and where == 0.999 and sleeps == []:
        return  # the cut hit LOGOUT, after the work was done: nothing to retry
    assert sleeps == [RETRY_DELAYS[0]], proxy.describe()
    assert len(proxy.connections) == 2
    # Resumed from the saved sync state: at most the interrupted batch is fetched again.
    assert len(fetched) <= big.total + BATCH, (len(fetched), big.total)


def test_four_drops_in_one_scan_back_off_and_still_finish(
        big: BigMailbox, scan_bytes: int, proxy: FaultProxy, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Each connection gets further than the last before it breaks.
    proxy.plan(*(Fault.cut(int(scan_bytes * share)) for share in (0.2, 0.15, 0.3, 0.1)))
    path = write_config(monkeypatch, big.account, tmp_path, port=proxy.port,
                        aliases=big.generated.aliases, batch_size=BATCH)
    fetched = spy_fetches(monkeypatch)
    sleeps = Sleeps()
    summary = run_scan(load_config(path), now=NOW, retry=Retry(sleep=sleeps))
    assert sleeps == list(RETRY_DELAYS), proxy.describe()
    assert len(proxy.fired()) == 4
    assert_same_ledger(tmp_path / "followup.db", big.reference)
    assert len(fetched) <= big.total + 4 * BATCH
    assert summary.fetched <= big.total  # the last attempt only read what was left


def test_more_drops_than_retries_fail_cleanly_and_the_next_scan_completes(
        big: BigMailbox, scan_bytes: int, proxy: FaultProxy, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    proxy.plan(*(Fault.cut(int(scan_bytes * 0.1)) for _ in range(len(RETRY_DELAYS) + 1)))
    write_config(monkeypatch, big.account, tmp_path, port=proxy.port,
                 aliases=big.generated.aliases, batch_size=BATCH)
    # The real back-off would wait 52 s; the CLI path is what matters here.
    monkeypatch.setattr(service, "DEFAULT_RETRY", Retry(sleep=lambda _seconds: None))
    code, out, err = run_cli(["--now", NOW_TEXT, "scan"], capsys)
    assert code == 1, out + err
    lines = err.strip().splitlines()
    assert lines[-1].startswith("error: connection to 127.0.0.1 broke"), err
    assert len([line for line in lines if line.startswith("error:")]) == 1
    assert "Traceback" not in err
    assert err.count("trying again in") == len(RETRY_DELAYS)
    assert proxy.unused == 0
    db = tmp_path / "followup.db"
    assert integrity(db) == "ok"
    assert_sync_state_consistent(db)
    with Store(db) as store:
        assert 0 < store.ledger.message_count() < big.total  # progress was kept

    code, out, err = run_cli(["--now", NOW_TEXT, "scan"], capsys)
    assert code == 0, err
    assert_same_ledger(db, big.reference)


def test_stalled_server_times_out_and_the_retry_resumes(
        big: BigMailbox, scan_bytes: int, proxy: FaultProxy, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    proxy.plan(Fault.stall(int(scan_bytes * 0.5)))
    path = write_config(monkeypatch, big.account, tmp_path, port=proxy.port, timeout=1,
                        aliases=big.generated.aliases, batch_size=BATCH)
    sleeps = Sleeps()
    started = time.monotonic()
    run_scan(load_config(path), now=NOW, retry=Retry(sleep=sleeps))
    elapsed = time.monotonic() - started
    assert sleeps == [RETRY_DELAYS[0]], proxy.describe()
    assert 1 <= elapsed < 1 + big.reference_seconds * 3 + 5, elapsed
    assert_same_ledger(tmp_path / "followup.db", big.reference)


@pytest.mark.parametrize("where", ["greeting", "fetch"])
def test_server_that_never_answers_gives_up_in_bounded_time(
        big: BigMailbox, scan_bytes: int, proxy: FaultProxy, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        where: str) -> None:
    """Every connection stalls: two attempts of 1 s each, then one clear line, exit 1."""
    after = 0 if where == "greeting" else int(scan_bytes * 0.5)
    proxy.plan(*(Fault.stall(after) for _ in range(3)))
    write_config(monkeypatch, big.account, tmp_path, port=proxy.port, timeout=1,
                 aliases=big.generated.aliases, batch_size=BATCH)
    monkeypatch.setattr(service, "DEFAULT_RETRY", Retry(delays=(0.0,)))
    started = time.monotonic()
    code, out, err = run_cli(["--now", NOW_TEXT, "scan"], capsys)
    elapsed = time.monotonic() - started
    assert code == 1, out + err
    assert elapsed < 2 * (1 + big.reference_seconds) + 5, elapsed
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: ") and "within 1 s" in last, err
    assert len(proxy.connections) == 2
    assert proxy.unused == 1


def test_transient_error_without_retries_left_is_raised(
        big: BigMailbox, proxy: FaultProxy, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    proxy.plan(Fault.cut(0), Fault.cut(0))
    path = write_config(monkeypatch, big.account, tmp_path, port=proxy.port, batch_size=BATCH)
    config = load_config(path)
    with pytest.raises(TransientMailboxError):
        Retry(delays=(0.0,), sleep=lambda _s: None).run(lambda mailbox, attempt: None, config)
    assert len(proxy.connections) == 2


# --------------------------------------------------------------------------- kill -9


def _env() -> dict[str, str]:
    """The environment of a `followup` subprocess: this test's config and password."""
    return {**os.environ, "FOLLOWUP_NOW": NOW_TEXT}


def _followup(*args: str) -> list[str]:
    # Committing every three batches: the kills below wait for commits they can see, and
    # then land among batches saved but not yet committed.
    return followup_process(*args, commit_every=3 * BATCH)


def _messages_saved(db: Path) -> int | None:
    """Messages rows in a database another process is writing; None if not readable yet."""
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.5)
        try:
            return int(conn.execute("SELECT count(*) FROM messages").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return None


def _copy_database(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()
    target.chmod(0o600)


@pytest.mark.slow
def test_kill_9_at_20_random_points_then_rescan_gives_the_same_ledger(
        big: BigMailbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """20 rounds: a real `followup scan` process is killed with SIGKILL somewhere, then a
    rescan must produce exactly the uninterrupted ledger.

    Even rounds kill a first scan into an empty database, odd rounds a `scan --full` over a
    complete ledger. Most kills wait until a random number of messages is saved (so they
    spread over the whole scan, mid-batch included); every fourth lands at a random time
    (start-up, forgetting the mailbox tables, refreshing aggregates, logging out).
    FOLLOWUP_KILL_SEED replays a run.
    """
    seed = int(os.environ.get("FOLLOWUP_KILL_SEED", "20260301"))
    rng = random.Random(seed)
    # How long a whole `followup scan` process takes here, start-up included.
    calibration = write_config(monkeypatch, big.account, tmp_path / "calibration",
                               aliases=big.generated.aliases, batch_size=BATCH)
    started = time.monotonic()
    subprocess.run(_followup("scan"), env=_env(), check=True, capture_output=True, timeout=120)
    whole = time.monotonic() - started
    complete = calibration.parent / "followup.db"
    assert_same_ledger(complete, big.reference)

    where: list[str] = []
    for round_ in range(20):
        directory = tmp_path / f"round-{round_:02d}"
        config = write_config(monkeypatch, big.account, directory, aliases=big.generated.aliases,
                              batch_size=BATCH)
        db = directory / "followup.db"
        full = round_ % 2 == 1
        if full:
            _copy_database(complete, db)
        process = subprocess.Popen(_followup("scan", *(["--full"] if full else [])),
                                   env=_env(), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE)
        try:
            if round_ % 4 == 3:
                time.sleep(rng.uniform(0.0, whole))  # anywhere: start-up, logout …
            else:
                target = rng.randrange(big.total + 1)
                deadline = time.monotonic() + whole * 3 + 10
                forgotten = not full  # --full first empties the table, then refills it
                while process.poll() is None and time.monotonic() < deadline:
                    saved = _messages_saved(db)
                    if saved is not None:
                        forgotten = forgotten or saved < big.total
                        if forgotten and saved >= target:
                            break
                    time.sleep(0.003)
                time.sleep(rng.uniform(0.0, 0.03))  # into the next batch, or not
            alive = process.poll() is None
            process.kill()
            _, err = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        assert process.returncode in (0, -signal.SIGKILL), err.decode()
        saved = _messages_saved(db)
        where.append(f"{'full' if full else 'first'}: "
                     f"{'killed' if alive else 'had finished'} at {saved}/{big.total}")

        summary = run_scan(load_config(config), now=NOW)
        assert not summary.interrupted
        assert_sync_state_consistent(db)
        assert_same_ledger(db, big.reference)

    print(f"kill points (seed {seed}):", *where, sep="\n")
    killed_mid_scan = [w for w in where
                       if "killed" in w and not w.endswith((f" {big.total}/{big.total}",
                                                            " None/" + str(big.total)))]
    assert len([w for w in where if "killed" in w]) >= 16, "\n".join(where)
    assert len(killed_mid_scan) >= 8, "\n".join(where)


# --------------------------------------------------------------------------- two processes


def test_two_scans_at_once_take_turns(big: BigMailbox, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Started together on one database: one scans, the other waits for the lock, then
    finds nothing new. No corruption, the reference ledger."""
    write_config(monkeypatch, big.account, tmp_path, aliases=big.generated.aliases,
                 batch_size=BATCH)
    first = subprocess.Popen(_followup("scan"), env=_env(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    second = subprocess.Popen(_followup("scan"), env=_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    outputs = [p.communicate(timeout=60) for p in (first, second)]
    assert [p.returncode for p in (first, second)] == [0, 0], outputs
    news = sorted(out.split(" new message(s)")[0].rsplit(" ", 1)[-1] for out, _ in outputs)
    assert news == sorted(["0", str(big.total)]), outputs
    assert_same_ledger(tmp_path / "followup.db", big.reference)


@pytest.mark.slow
def test_second_process_gives_up_with_one_line_while_the_first_holds_the_lock(
        big: BigMailbox, scan_bytes: int, proxy: FaultProxy, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The first scan stalls for 14 s (a slow server); a second scan waits 10 s for the
    lock and gives up with one clear line; reading the ledger meanwhile still works."""
    proxy.plan(Fault.stall(int(scan_bytes * 0.4), seconds=14))
    write_config(monkeypatch, big.account, tmp_path, port=proxy.port, timeout=30,
                 aliases=big.generated.aliases, batch_size=BATCH)
    db = tmp_path / "followup.db"
    first = subprocess.Popen(_followup("scan"), env=_env(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    running = [first]
    try:
        deadline = time.monotonic() + 30
        while not proxy.fired() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proxy.fired(), proxy.describe()
        saved = _messages_saved(db)
        assert saved is not None and 0 < saved < big.total

        # The second scan waits for the lock; a reader meanwhile needs no lock at all.
        second = subprocess.Popen(_followup("scan"), env=_env(), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        running.append(second)
        started = time.monotonic()
        reader = subprocess.run(_followup("contacts", "--json"), env=_env(),
                                capture_output=True, text=True, timeout=30, check=False)
        assert reader.returncode == 0, reader.stderr
        assert time.monotonic() - started < 5
        json.loads(reader.stdout)

        second_out, second_err = second.communicate(timeout=60)
        assert second.returncode == 1, second_out + second_err
        assert second_err.startswith("error: another followup is working on"), second_err
        assert len(second_err.strip().splitlines()) == 1
        assert first.poll() is None, "the first scan should still be stalled"

        out, err = first.communicate(timeout=60)
    finally:
        for process in running:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert first.returncode == 0, err
    assert f"{big.total} new message(s)" in out
    assert_same_ledger(db, big.reference)


def test_lock_error_is_a_store_error(tmp_path: Path) -> None:
    from agent.store.database import exclusive_lock

    db = tmp_path / "x.db"
    with exclusive_lock(db), pytest.raises(StoreError, match="another followup is working"), \
            exclusive_lock(db, wait=0.2):
        pass


# --------------------------------------------------------------------------- digest and drafts

APPENDED = b"Append completed"  # Dovecot's OK for an APPEND it has carried out


def _planted_with_due_contacts(account: ImapAccount, seed: int) -> GeneratedMailbox:
    generated = generate(seed, people=20, now=NOW, folders=generated_folders(account))
    for folder in generated.create:
        account.create_folder(folder)
    account.append_many(generated.items())
    return generated


def _mail_we_wrote(account: ImapAccount, db: Path) -> tuple[list[str], list[tuple[str, str]]]:
    """(digest days in INBOX, (contact id, recipient) of every draft of ours in Drafts).

    Our drafts carry no mark a recipient could see: they are known by the Message-ID the
    journal records before each APPEND (the user's own drafts are in Drafts too).
    """
    digests = []
    for raw in account.fetch_raw("INBOX"):
        parsed = message_from_bytes(raw, policy=default_policy)
        if parsed["X-Followup-Digest"]:
            digests.append(str(parsed["X-Followup-Digest"]))
    with Store(db) as store:
        ours = {d.message_id: d.contact_id for d in store.journal.drafts()}
    drafts = []
    for raw in account.fetch_raw(account.drafts_folder):
        parsed = message_from_bytes(raw, policy=default_policy)
        contact = ours.get(str(parsed["Message-ID"] or "").strip("<> "))
        if contact is not None:
            drafts.append((str(contact), str(parsed["To"])))
    return digests, drafts


def _assert_no_duplicates(account: ImapAccount, db: Path,
                          settled: bool = True) -> tuple[list[str], list[str]]:
    """One digest per day and one draft per person in the mailbox; when ``settled`` (a
    run finished), the database knows each of them."""
    digests, drafts = _mail_we_wrote(account, db)
    assert len(digests) == len(set(digests)), f"a digest delivered twice: {sorted(digests)}"
    contacts = [contact for contact, _to in drafts]
    assert len(contacts) == len(set(contacts)), f"two drafts for one person: {drafts}"
    if not settled:
        return digests, contacts
    with Store(db) as store:
        pending = store.journal.drafts("pending")
        assert sorted(str(d.contact_id) for d in pending) == sorted(contacts), (pending, drafts)
        for day in digests:
            assert store.journal.digest_sent(date.fromisoformat(day))
    return digests, contacts


def test_lost_append_reply_sends_no_second_digest(
        dovecot_account: ImapAccount, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The server stores the digest, the connection breaks before its OK arrives, the
    delivery is retried: the INBOX must still hold one digest."""
    _planted_with_due_contacts(dovecot_account, 31)
    write_config(monkeypatch, dovecot_account, tmp_path, batch_size=BATCH)
    code, _out, err = run_cli(["--now", NOW_TEXT, "scan"], capsys)
    assert code == 0, err
    monkeypatch.setattr(service, "DEFAULT_RETRY", Retry(sleep=lambda _seconds: None))
    with FaultProxy(dovecot_account.host, dovecot_account.port) as proxy:
        proxy.plan(Fault.cut_before(APPENDED))
        write_config(monkeypatch, dovecot_account, tmp_path, port=proxy.port, batch_size=BATCH)
        code, out, err = run_cli(["--now", NOW_TEXT, "digest"], capsys)
        assert proxy.fired(), proxy.describe()
        assert code == 0, out + err  # retried: a dropped connection is no reason to give up
        # Once more, as the daemon would later today.
        code, out, err = run_cli(["--now", NOW_TEXT, "digest"], capsys)
        assert code == 0, err
        assert "already delivered" in out
    digests, _ = _assert_no_duplicates(dovecot_account, tmp_path / "followup.db")
    assert digests == [NOW.date().isoformat()]


def test_lost_append_reply_makes_no_second_draft(
        dovecot_account: ImapAccount, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    _planted_with_due_contacts(dovecot_account, 32)
    monkeypatch.setattr(service, "DEFAULT_RETRY", Retry(sleep=lambda _seconds: None))
    with FaultProxy(dovecot_account.host, dovecot_account.port) as proxy:
        proxy.plan(Fault.cut_before(APPENDED))
        write_config(monkeypatch, dovecot_account, tmp_path, port=proxy.port, batch_size=BATCH)
        code, out, err = run_cli(["--now", NOW_TEXT, "drafts"], capsys)
        assert proxy.fired(), proxy.describe()
    assert code == 0, out + err
    _, contacts = _assert_no_duplicates(dovecot_account, tmp_path / "followup.db")
    assert len(contacts) == 6  # 3 picks ([policy] daily_picks), 3 replies ([digest] max_replies)


@pytest.mark.slow
def test_kill_9_at_every_append_of_a_daily_cycle(
        dovecot_account: ImapAccount, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`followup run --once` is killed the moment the server has stored its digest, then
    each draft, but before the client heard so (the worst moment); run again each time
    until a run appends nothing. One digest, one draft per person, decisions kept."""
    account = dovecot_account
    _planted_with_due_contacts(account, 33)
    db = tmp_path / "followup.db"
    killed: list[subprocess.Popen[bytes]] = []

    def kill(_connection: object) -> None:
        for process in killed:
            if process.poll() is None:
                process.kill()

    with FaultProxy(account.host, account.port, on_fault=kill) as proxy:
        write_config(monkeypatch, account, tmp_path, port=proxy.port, batch_size=BATCH)
        subprocess.run(_followup("scan"), env=_env(), check=True, capture_output=True,
                       timeout=60)
        decisions = _decide_something(db)
        for round_ in range(10):
            proxy.plan(Fault.stall_before(APPENDED, seconds=30))
            process = subprocess.Popen(_followup("run", "--once"), env=_env(),
                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            killed.append(process)
            _, err = process.communicate(timeout=60)
            if not proxy.fired() or len(proxy.fired()) <= round_:
                assert process.returncode == 0, err.decode()
                break
            assert process.returncode == -signal.SIGKILL, err.decode()
            proxy.plan()
            _assert_no_duplicates(account, db, settled=False)
        else:
            pytest.fail("the cycle kept appending")
    # Killed at the digest and at each of 6 drafts: 3 check-ins and 3 replies owed.
    assert round_ == 7, proxy.describe()
    digests, contacts = _assert_no_duplicates(account, db)
    assert digests == [NOW.date().isoformat()]
    assert len(contacts) == 6
    _check_decisions(db, decisions)


def _decide_something(db: Path) -> dict[str, Any]:
    """Snooze, ignore, re-cadence and tag three contacts; what was decided, by address."""
    with Store(db) as store:
        states = sorted(store.people.contacts(), key=lambda c: c.email)
        assert len(states) >= 6
        snoozed, ignored, slow = states[0].email, states[1].email, states[2].email
        store.people.set_decision(resolve(store, snoozed), snooze_until=date(2027, 1, 1))
        store.people.set_decision(resolve(store, ignored), ignored=1)
        store.people.set_decision(resolve(store, slow), cadence_days=365)
        store.people.add_tags(resolve(store, slow), ["wichtig"])
        return {address: store.people.decisions_of(resolve(store, address))
                for address in (snoozed, ignored, slow)}


def _check_decisions(db: Path, decisions: dict[str, Any]) -> None:
    with Store(db) as store:
        for address, decided in decisions.items():
            assert store.people.decisions_of(resolve(store, address)) == decided, address


@pytest.mark.slow
def test_kill_9_at_random_points_of_ten_daily_cycles(
        dovecot_account: ImapAccount, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ten days; each day `followup run --once` is killed at a random moment of its work
    (scan, settling drafts, digest, drafts), then run again. Every day: at most one digest,
    never two drafts for one person, every pending draft in the Drafts folder, and the
    user's decisions untouched. FOLLOWUP_KILL_SEED replays a run."""
    account = dovecot_account
    rng = random.Random(int(os.environ.get("FOLLOWUP_KILL_SEED", "20260302")))
    _planted_with_due_contacts(account, 34)
    account.append_many(realistic(35, 600, now=NOW, sent=account.sent_folder))
    db = tmp_path / "followup.db"
    with FaultProxy(account.host, account.port) as proxy:
        write_config(monkeypatch, account, tmp_path, port=proxy.port, batch_size=BATCH)
        subprocess.run(_followup("run", "--once"), env=_env(), check=True, capture_output=True,
                       timeout=120)
        decisions = _decide_something(db)

        def cycle(day: int, kill_after: float | None) -> tuple[bool, float]:
            """Run day ``day``'s cycle; kill it ``kill_after`` s after it connected."""
            now = (NOW + timedelta(days=day)).strftime("%Y-%m-%dT%H:%M:%SZ")
            before = len(proxy.connections)
            process = subprocess.Popen(_followup("run", "--once"),
                                       env={**_env(), "FOLLOWUP_NOW": now},
                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            try:
                deadline = time.monotonic() + 60
                while len(proxy.connections) == before and process.poll() is None \
                        and time.monotonic() < deadline:
                    time.sleep(0.005)
                connected = time.monotonic()
                if kill_after is not None:
                    time.sleep(kill_after)
                alive = process.poll() is None
                if kill_after is not None:
                    process.kill()
                _, err = process.communicate(timeout=60)
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()
            assert process.returncode in (0, -signal.SIGKILL), err.decode()
            return alive, time.monotonic() - connected

        _, active = cycle(1, None)  # how long a day's work takes once connected
        where = []
        for day in range(2, 12):
            # One kill in each tenth of the first 90 % of a day's work, at a random moment
            # of it: every step is hit, and a day a little faster than day 1 is still
            # killed (uniform draws over the whole day bunched near its end and finished).
            alive, _ = cycle(day, (day - 2 + rng.random()) / 10 * 0.9 * active)
            where.append(f"day {day}: {'killed' if alive else 'had finished'}")
            cycle(day, None)
            digests, _ = _assert_no_duplicates(account, db)
            assert (NOW + timedelta(days=day)).date().isoformat() in digests or not digests
            _check_decisions(db, decisions)
    print(f"a day's work: {active:.2f} s", *where, sep="\n")
    assert sum("killed" in w for w in where) >= 7, where
