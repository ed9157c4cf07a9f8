"""A message the server will not give (README "A message the server will not give").

Real servers fail on a message they cannot read, each in its own way, and every time:

- Dovecot answers the FETCH up to it, then says ``BYE FETCH failed: Internal error`` and
  closes the connection (here: its maildir file made unreadable to Dovecot);
- Cyrus leaves it out (``* OK Message 5 no longer exists``) and says OK;
- Gmail ("NO Some messages could not be FETCHed"), Yahoo and Exchange refuse the FETCH.
  None of our servers refuses for one message, so a FETCH that holds the message is sent
  with an item Dovecot does not know, and the real Dovecot refuses it (BAD).

Each time the scan counts every other message, names the one it could not read, and asks
for it again at later scans until it comes (then the ledger is what it would have been) or
the scans of a day have failed. A server that refuses everything (it throttles) still
fails the scan, and no message is left out for it.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent import scanwork, service
from agent.config import load_config
from agent.errors import MailboxError, TransientMailboxError
from agent.mailbox import pipeline
from agent.mailbox.client import REFUSALS_IN_A_ROW, Mailbox
from agent.mailbox.records import FetchedHeader
from agent.model import LedgerBatch
from agent.scan import ScanSummary
from agent.service import Retry
from agent.store import Store
from agent.store.ledger import UNREAD_TRIES
from tests.faultproxy import FaultProxy
from tests.kit import ME, message, run_cli, write_config
from tests.mailgen import realistic
from tests.servers.account import ImapAccount
from tests.servers.base import MasterProcessServer
from tests.servers.cyrus import Cyrus
from tests.servers.dovecot import Dovecot
from tests.test_faults import Sleeps

NOW = datetime(2026, 3, 1, 7, 30, tzinfo=UTC)
MESSAGES = 60
BATCH = 10
INBOX_ONLY = 23


def scan(config: Path, now: datetime = NOW, sleeps: Sleeps | None = None) -> ScanSummary:
    summary = service.run(load_config(config), now, replace(service.SCAN, commands=False),
                          retry=Retry(sleep=sleeps if sleeps is not None else Sleeps())).scan
    assert summary is not None
    return summary


def ledger(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    """What the mail says: messages, exchanges and aggregates (not the sync state)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return {table: sorted(conn.execute(sql).fetchall(), key=repr) for table, sql in {
            "messages": "SELECT folder, uid, msg_key, time, skipped FROM messages",
            "exchanges": "SELECT * FROM exchanges",
            "addresses": "SELECT * FROM addresses",
            "address_names": "SELECT * FROM address_names",
        }.items()}
    finally:
        conn.close()


def unread(db: Path) -> list[tuple[str, int, int]]:
    """(folder, uid, tries) of every message the ledger waits for."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT folder, uid, tries FROM unread ORDER BY folder, uid"
                            ).fetchall()
    finally:
        conn.close()


def planted(account: ImapAccount, seed: int = 31) -> list[bytes]:
    """MESSAGES ordinary messages; the Message-ID lines of those in INBOX, in UID order.

    INBOX gets INBOX_ONLY and more UIDs, its other folder fewer: a UID from INBOX_ONLY on
    is a message of INBOX."""
    items = list(realistic(seed, MESSAGES, now=NOW, sent=account.sent_folder))
    account.append_many(items)
    inbox = [_message_id(raw) for folder, raw, _, _ in items if folder == "INBOX"]
    assert len(items) - len(inbox) < INBOX_ONLY <= len(inbox) - 10
    return inbox


def _message_id(raw: bytes) -> bytes:
    return next(line for line in raw.split(b"\r\n") if line.lower().startswith(b"message-id:"))


@pytest.fixture
def account_on(make_account: Callable[[str], ImapAccount]) -> Callable[[str], ImapAccount]:
    return make_account


def reference(account: ImapAccount, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
              now: datetime) -> dict[str, list[tuple[Any, ...]]]:
    """The ledger of an uneventful scan of ``account`` at ``now``, in a database apart."""
    path = write_config(monkeypatch, account, tmp_path / "reference", batch_size=BATCH)
    scan(path, now)
    return ledger(tmp_path / "reference" / "followup.db")


@pytest.fixture
def records(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.INFO, logger="agent")
    yield caplog


def _unreadable(server: MasterProcessServer, message_id: bytes) -> Path:
    path = server.message_file(message_id)
    path.chmod(0)
    return path


# --------------------------------------------------------------------------- real servers


def test_dovecot_breaking_the_connection_on_one_message(
        dovecot_server: Dovecot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        records: pytest.LogCaptureFixture) -> None:
    account = dovecot_server.new_account()
    inbox = planted(account)
    bad = _unreadable(dovecot_server, inbox[len(inbox) // 2])
    uid = len(inbox) // 2 + 1
    path = write_config(monkeypatch, account, tmp_path / "main", batch_size=BATCH)
    db = tmp_path / "main" / "followup.db"
    sleeps = Sleeps()

    summary = scan(path, NOW, sleeps)

    # Two attempts broke on the FETCHes that hold it (once could be the network); the
    # third read those messages one FETCH each and broke on it alone, and so did the
    # fourth, asking for it alone once more; the fifth read on.
    assert len(sleeps) == 4, records.text
    assert summary.unread == 1
    assert unread(db) == [("INBOX", uid, 1)]
    assert f"broke twice on the message with UID {uid} alone" in records.text
    with Store(db) as store:
        assert store.ledger.message_count() == MESSAGES - 1
        state = store.ledger.folder_state("INBOX")
        assert state is not None and state.broke_through is None  # the folder was finished

    # Readable again: the next scan an hour later asks for it, and the ledger is whole.
    bad.chmod(0o600)
    later = NOW + timedelta(hours=2)
    summary = scan(path, later)
    assert summary.unread == 0 and summary.fetched == 1
    assert unread(db) == []
    assert ledger(db) == reference(account, tmp_path, monkeypatch, later)


def test_cyrus_leaving_one_message_out(cyrus_server: Cyrus, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch,
                                       records: pytest.LogCaptureFixture) -> None:
    account = cyrus_server.new_account()
    inbox = planted(account)
    bad = _unreadable(cyrus_server, inbox[3])
    path = write_config(monkeypatch, account, tmp_path / "main", batch_size=BATCH)
    db = tmp_path / "main" / "followup.db"

    summary = scan(path)

    assert summary.unread == 1
    assert unread(db) == [("INBOX", 4, 1)]
    assert "gave no headers for UID 4 in INBOX twice" in records.text
    with Store(db) as store:
        assert store.ledger.message_count() == MESSAGES - 1

    bad.chmod(0o600)
    later = NOW + timedelta(hours=2)
    assert scan(path, later).unread == 0
    assert unread(db) == []
    assert ledger(db) == reference(account, tmp_path, monkeypatch, later)


def _unreadable_answer(uid: int) -> Callable[[bytes], bytes]:
    """A FaultProxy ``rewrite_down`` that makes the server's FETCH answer for ``uid`` one
    no parser can read, every time: the ``]`` of its BODY[…] dropped. Lines are rewritten
    whole: a line cut between two reads waits for its end (per connection)."""
    line = re.compile(rb"(FETCH \(UID %d [^\r\n]*\))\] \{" % uid)
    held: dict[str, bytes] = {}

    def rewrite(chunk: bytes) -> bytes:
        name = threading.current_thread().name  # one thread reads each connection
        data = held.pop(name, b"") + chunk
        end = data.rfind(b"\n") + 1
        held[name] = data[end:]
        return line.sub(rb"\1 {", data[:end])

    return rewrite


def test_an_answer_that_cannot_be_read_for_one_message(
        dovecot_account: ImapAccount, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        records: pytest.LogCaptureFixture) -> None:
    """A server whose answer for one message no parser can read, every time: found as a
    message that breaks the connection, and left out; everything else counts."""
    planted(dovecot_account)
    uid = INBOX_ONLY + 3
    with FaultProxy(dovecot_account.host, dovecot_account.port,
                    rewrite_down=_unreadable_answer(uid)) as proxy:
        path = write_config(monkeypatch, dovecot_account, tmp_path / "main",
                            port=proxy.port, batch_size=BATCH)
        sleeps = Sleeps()
        summary = scan(path, NOW, sleeps)
    assert "cannot be parsed" in records.text
    assert len(sleeps) == 4, records.text
    assert summary.unread == 1
    db = tmp_path / "main" / "followup.db"
    assert unread(db) == [("INBOX", uid, 1)]
    with Store(db) as store:
        assert store.ledger.message_count() == MESSAGES - 1


# --------------------------------------------------------------------------- refusals


@pytest.fixture
def refusing(monkeypatch: pytest.MonkeyPatch) -> set[int]:
    """UIDs whose FETCH the (real) Dovecot refuses: a FETCH that holds one of them asks for
    an item Dovecot does not know, and Dovecot answers BAD. Holds every UID from 0 on when
    it holds 0 (a server that refuses everything)."""
    bad: set[int] = set()
    real = pipeline.fetch_command

    def command(tag: bytes, uids: Sequence[int], items: Sequence[str]) -> bytes:
        if 0 in bad or bad.intersection(uids):
            items = [*items, "X-NO-SUCH-ITEM"]
        return real(tag, uids, items)

    monkeypatch.setattr(pipeline, "fetch_command", command)
    return bad


def fetched_uids(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every UID the scan was given, across connections (test_faults' spy_fetches counts
    those asked for: a refused message is asked for and not given)."""
    given: list[int] = []

    def spying(read: Callable[..., Iterator[tuple[Sequence[int], list[FetchedHeader]]]]
               ) -> Callable[..., Iterator[tuple[Sequence[int], list[FetchedHeader]]]]:
        def spy(self: Mailbox, *args: Any) -> Iterator[tuple[Sequence[int],
                                                              list[FetchedHeader]]]:
            for chunk, found in read(self, *args):
                given.extend(record.uid for record in found)
                yield chunk, found
        return spy

    # In batches, and one at a time (asking again, and reading to find a message that
    # breaks the connection).
    monkeypatch.setattr(Mailbox, "header_batches", spying(Mailbox.header_batches))
    monkeypatch.setattr(Mailbox, "one_by_one", spying(Mailbox.one_by_one))
    return given


def test_a_refused_message_is_left_out_asked_again_and_counted_once_given(
        dovecot_account: ImapAccount, refusing: set[int], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, records: pytest.LogCaptureFixture) -> None:
    planted(dovecot_account)
    uid = INBOX_ONLY + 4
    refusing.add(uid)
    path = write_config(monkeypatch, dovecot_account, tmp_path / "main", batch_size=BATCH)
    db = tmp_path / "main" / "followup.db"
    sleeps = Sleeps()

    summary = scan(path, NOW, sleeps)
    assert sleeps == []  # the connection went on
    assert summary.unread == 1
    assert unread(db) == [("INBOX", uid, 1)]
    assert f"would not give the message with UID {uid} in INBOX" in records.text
    assert "asked for again at later scans" in records.text
    assert "1 the server would not give" in summary.line()
    assert summary.unread_messages == [
        f"INBOX UID {uid}: not given since 2026-03-01 07:30 UTC, asked at 1 scan(s); asked "
        "for again at later scans"]

    # Not asked again within the hour; then asked, and refused again: one try more.
    given = fetched_uids(monkeypatch)
    assert scan(path, NOW + timedelta(minutes=30)).unread == 1
    assert given == []
    assert scan(path, NOW + timedelta(hours=2)).unread == 1
    assert unread(db) == [("INBOX", uid, 2)]

    # Given at last: counted, and the ledger is the one of a scan that never missed it.
    refusing.clear()
    later = NOW + timedelta(hours=4)
    summary = scan(path, later)
    assert given == [uid] and summary.unread == 0 and summary.fetched == 1
    assert unread(db) == []
    assert ledger(db) == reference(dovecot_account, tmp_path, monkeypatch, later)


def test_after_a_refusal_for_one_message_fetches_are_sent_ahead_again(
        dovecot_account: ImapAccount, refusing: set[int], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, records: pytest.LogCaptureFixture) -> None:
    """Gmail refuses a FETCH for one message it cannot serve, not for being sent ahead: once
    the message is found, the scan goes on with FETCHes sent ahead (a server that answers
    the refused FETCH alone refuses FETCHes sent ahead: tests/test_pipeline.py)."""
    planted(dovecot_account)
    refusing.add(INBOX_ONLY)
    one_at_a_time: list[int] = []  # how many UIDs were read one FETCH at a time
    original = Mailbox._one_at_a_time

    def spy(self: Mailbox, uids: Sequence[int], batch_size: int
            ) -> Iterator[tuple[Sequence[int], list[FetchedHeader]]]:
        one_at_a_time.append(len(uids))
        return original(self, uids, batch_size)

    monkeypatch.setattr(Mailbox, "_one_at_a_time", spy)
    path = write_config(monkeypatch, dovecot_account, tmp_path / "main", batch_size=BATCH)
    scan(path)
    assert unread(tmp_path / "main" / "followup.db") == [("INBOX", INBOX_ONLY, 1)]
    assert one_at_a_time and set(one_at_a_time) == {0}
    assert "one FETCH at a time" not in records.text


def _gmail(make_account: Callable[[str], ImapAccount], monkeypatch: pytest.MonkeyPatch, *,
           knows_x_gm_msgid: bool) -> tuple[ImapAccount, list[bool]]:
    """A user of our "gmail" Dovecot with the planted messages, and whether each FETCH
    asked for X-GM-MSGID. That Dovecot refuses the item; ``knows_x_gm_msgid`` takes it out
    of each command on its way, as if the server answered it (the answers lack it)."""
    account = make_account("gmail")
    account.append_many(realistic(31, MESSAGES, now=NOW, sent=account.sent_folder))
    asked: list[bool] = []
    sent = pipeline.fetch_command  # the `refusing` fixture's, when the test has it

    def command(tag: bytes, uids: Sequence[int], items: Sequence[str]) -> bytes:
        asked.append("X-GM-MSGID" in items)
        if knows_x_gm_msgid:
            items = [item for item in items if item != "X-GM-MSGID"]
        return sent(tag, uids, items)

    monkeypatch.setattr(pipeline, "fetch_command", command)
    return account, asked


def test_a_gmail_look_alike_that_refuses_x_gm_msgid_still_finds_the_message(
        make_account: Callable[[str], ImapAccount], refusing: set[int], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, records: pytest.LogCaptureFixture) -> None:
    """Two refusals at once: a server that advertises X-GM-EXT-1 but refuses X-GM-MSGID (our
    "gmail" Dovecot; proxies do it), and one message it will not give. X-GM-MSGID is given
    up once, for the item; the message is found and left out; everything else counts."""
    account, asked = _gmail(make_account, monkeypatch, knows_x_gm_msgid=False)
    refusing.add(INBOX_ONLY)
    path = write_config(monkeypatch, account, tmp_path / "main", batch_size=BATCH)
    summary = scan(path)
    assert summary.unread == 1
    assert records.text.count("refused X-GM-MSGID") == 1
    assert asked[0] and not asked[-1]
    with Store(tmp_path / "main" / "followup.db") as store:
        assert store.ledger.message_count() == MESSAGES - 1


def test_on_gmail_a_refused_message_is_not_taken_for_a_refused_x_gm_msgid(
        make_account: Callable[[str], ImapAccount], refusing: set[int], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, records: pytest.LogCaptureFixture) -> None:
    """Gmail itself: X-GM-MSGID is answered, one message is refused. The refusal is not
    blamed on X-GM-MSGID, which every later FETCH still asks for (the ledger's keys are
    Gmail's ids)."""
    account, asked = _gmail(make_account, monkeypatch, knows_x_gm_msgid=True)
    refusing.add(INBOX_ONLY)
    path = write_config(monkeypatch, account, tmp_path / "main", batch_size=BATCH)
    assert scan(path).unread == 1
    assert "refused X-GM-MSGID" not in records.text
    # Each refusal is asked once without it (was it the item?), then with it again.
    assert asked[-1] and asked.count(False) < asked.count(True) / 2


def test_a_message_refused_for_a_day_of_scans_is_given_up(
        dovecot_account: ImapAccount, refusing: set[int], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, records: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str]) -> None:
    planted(dovecot_account)
    refusing.add(INBOX_ONLY)
    path = write_config(monkeypatch, dovecot_account, tmp_path / "main", batch_size=BATCH)
    db = tmp_path / "main" / "followup.db"
    hours = [0, 2, 4, 30]  # the fourth try is more than a day after the first
    assert len(hours) == UNREAD_TRIES
    for hour in hours:
        assert scan(path, NOW + timedelta(hours=hour)).unread == 1
    assert unread(db) == [("INBOX", INBOX_ONLY, UNREAD_TRIES)]
    assert "they are not asked for again" in records.text
    code, out, err = run_cli(["--now", "2026-03-04T07:30:00Z", "-v", "scan"], capsys)
    assert code == 0, err
    assert (f"  not given by the server: INBOX UID {INBOX_ONLY}: not given since 2026-03-01 "
            "07:30 UTC, asked at 4 scan(s); given up (`followup scan --full` asks again)"
            in out.splitlines())
    # The doctor names it too, as a warning: nothing the user must mend for followup.
    code, out, err = run_cli(["--now", "2026-03-04T07:30:00Z", "doctor"], capsys)
    assert code == 0, out + err
    warning = next(line for line in out.splitlines() if "would not give" in line)
    assert warning.startswith("warn ")
    assert "would not give 1 message(s) of" in warning and "not counted" in warning
    assert f"INBOX UID {INBOX_ONLY}: not given since 2026-03-01 07:30 UTC" in warning

    given = fetched_uids(monkeypatch)
    refusing.clear()
    assert scan(path, NOW + timedelta(days=3)).unread == 1
    assert given == []  # no longer asked for
    # `scan --full` asks for everything again.
    with Store(db) as store:
        store.ledger.forget()
    scan(path, NOW + timedelta(days=3))
    assert unread(db) == []
    with Store(db) as store:
        assert store.ledger.message_count() == MESSAGES


def test_a_server_that_refuses_everything_fails_the_scan_and_leaves_nothing_out(
        dovecot_account: ImapAccount, refusing: set[int], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    planted(dovecot_account)
    path = write_config(monkeypatch, dovecot_account, tmp_path / "main", batch_size=BATCH)
    db = tmp_path / "main" / "followup.db"
    refusing.add(0)
    with pytest.raises(MailboxError, match="refused FETCH"):
        scan(path)
    assert unread(db) == []
    with Store(db) as store:
        assert store.ledger.message_count() == 0
        assert all(state.last_uid == 0 for state in store.ledger.folder_states().values())

    refusing.clear()
    scan(path, NOW + timedelta(minutes=5))
    with Store(db) as store:
        assert store.ledger.message_count() == MESSAGES


def _one_refused(account: ImapAccount, refusing: set[int], uid: int, tmp_path: Path,
                 monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A first scan of the planted mailbox with ``uid`` of INBOX refused: its config and
    database."""
    planted(account)
    refusing.add(uid)
    path = write_config(monkeypatch, account, tmp_path / "main", batch_size=BATCH)
    scan(path)
    db = tmp_path / "main" / "followup.db"
    assert unread(db) == [("INBOX", uid, 1)]
    return path, db


def test_a_message_gone_before_it_is_asked_for_again_is_forgotten(
        dovecot_account: ImapAccount, refusing: set[int], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    path, db = _one_refused(dovecot_account, refusing, INBOX_ONLY + 1, tmp_path, monkeypatch)
    with dovecot_account.client() as client:
        client.select_folder("INBOX")
        client.delete_messages([INBOX_ONLY + 1])
        client.expunge()
    assert scan(path, NOW + timedelta(hours=2)).unread == 0
    assert unread(db) == []


def test_a_new_uidvalidity_forgets_what_the_folder_did_not_give(
        dovecot_account: ImapAccount, refusing: set[int], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    path, db = _one_refused(dovecot_account, refusing, INBOX_ONLY + 2, tmp_path, monkeypatch)
    refusing.clear()
    dovecot_account.change_uidvalidity("INBOX")
    summary = scan(path, NOW + timedelta(minutes=5))
    assert "INBOX" in summary.reset
    assert unread(db) == []
    with Store(db) as store:
        assert store.ledger.message_count() == MESSAGES


# --------------------------------------------------------------------------- the ledger


def test_a_connection_that_broke_once_is_the_network_twice_a_message(tmp_path: Path) -> None:
    """Breaks are counted until the scan gets past the highest UID asked for: one, and the
    next attempt reads as ever (a network that dropped); two before getting past it, and
    the next attempt reads up to it one message at a time."""
    with Store(tmp_path / "followup.db") as store:
        ledger = store.ledger

        def state() -> tuple[int | None, int]:
            folder = ledger.folder_state("INBOX")
            assert folder is not None
            return folder.broke_through, folder.breaks

        ledger.note_break("INBOX", 7, 40)
        assert state() == (40, 1)
        ledger.save("INBOX", 7, 50, _empty())  # got past it: the count starts again
        ledger.note_break("INBOX", 7, 90)
        assert state() == (90, 1)
        ledger.note_break("INBOX", 7, 70)  # broke again before getting past 90
        assert state() == (90, 2)
        ledger.note_break("INBOX", 7, 77, alone=True)  # on 77 asked for alone
        folder = ledger.folder_state("INBOX")
        assert folder is not None and folder.alone == 77
        ledger.note_break("INBOX", 7, None)  # the message that breaks it was found
        assert state() == (None, 0)
        ledger.note_break("INBOX", 7, 95)
        ledger.finish_folder("INBOX", 7, 101, None, NOW)
        assert state() == (None, 0)
        ledger.note_break("INBOX", 7, 120)
        ledger.reset_folder("INBOX", 8)
        assert state() == (None, 0)


def test_unread_messages_are_asked_for_at_most_hourly_and_given_up_after_a_day(
        tmp_path: Path) -> None:
    with Store(tmp_path / "followup.db") as store:
        ledger = store.ledger
        ledger.save("INBOX", 7, 10, _empty(), unread=[4, 9], now=NOW)
        ledger.save("INBOX", 7, 10, _empty(), unread=[4], now=NOW)  # the same scan: one try
        assert ledger.unread_due("INBOX", 7, NOW + timedelta(minutes=59)) == []
        assert ledger.unread_due("INBOX", 8, NOW + timedelta(hours=2)) == []  # other UIDs
        assert ledger.unread_due("Sent", 7, NOW + timedelta(hours=2)) == []
        assert ledger.unread_due("INBOX", 7, NOW + timedelta(hours=2), "work") == []
        when = NOW + timedelta(hours=9)
        assert ledger.unread_due("INBOX", 7, when) == [4, 9]
        ledger.asking_again("INBOX", [4, 9], when)
        ledger.save("INBOX", 7, 10, _empty(), unread=[4], now=when)  # 9 came, 4 did not
        ledger.given("INBOX", [9])
        assert len(ledger.unread_messages()) == 1
        for _ in range(UNREAD_TRIES - 2):
            when += timedelta(hours=9)
            assert ledger.unread_due("INBOX", 7, when) == [4]
            assert ledger.given_up("INBOX", [4]) == []
            ledger.asking_again("INBOX", [4], when)
            ledger.save("INBOX", 7, 10, _empty(), unread=[4], now=when)
        # UNREAD_TRIES tries, the first of them a day ago: given up.
        assert ledger.given_up("INBOX", [4]) == [4]
        assert ledger.unread_due("INBOX", 7, when + timedelta(hours=2)) == []


def _empty() -> LedgerBatch:
    return LedgerBatch([], [], [], [], [], [], [])


# --------------------------------------------------------------------------- asking again


def test_many_refused_messages_asked_again_are_not_taken_for_a_refusing_server(
        dovecot_account: ImapAccount, refusing: set[int], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Ten messages of INBOX refused: asked for again, each is refused alone, which is the
    message, not a server refusing everything (asked for together, halving their FETCH
    would make more than REFUSALS_IN_A_ROW refusals in a row)."""
    inbox = planted(dovecot_account)
    bad = [24, 25, 27, 28, 30, 31, 33, 34, 36, 37]  # above INBOX_ONLY: INBOX's alone
    assert 2 * len(bad) - 1 > REFUSALS_IN_A_ROW
    refusing.update(bad)
    path = write_config(monkeypatch, dovecot_account, tmp_path / "main", batch_size=BATCH)
    db = tmp_path / "main" / "followup.db"
    assert scan(path).unread == len(bad)
    summary = scan(path, NOW + timedelta(hours=2))
    assert summary.unread == len(bad)
    assert unread(db) == [("INBOX", uid, 2) for uid in bad]
    refusing.difference_update(bad[::2])  # half of them come at last
    assert scan(path, NOW + timedelta(hours=4)).unread == len(bad) // 2
    with Store(db) as store:
        assert store.ledger.message_count() == MESSAGES - len(bad) // 2
    assert len(inbox) >= max(bad)


def test_a_message_that_still_breaks_the_connection_costs_no_other_its_turn(
        dovecot_server: Dovecot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        records: pytest.LogCaptureFixture) -> None:
    """Two messages Dovecot breaks the connection on, left out; one is readable again. Asked
    for again one at a time, it comes, though the other still breaks the connection (each
    time: that attempt ends, and the retry goes on without it); the other is given up after
    a day, with a warning."""
    account = dovecot_server.new_account()
    inbox = planted(account, seed=33)  # not the Message-IDs of another test's files
    first = _unreadable(dovecot_server, inbox[5])
    _unreadable(dovecot_server, inbox[25])
    path = write_config(monkeypatch, account, tmp_path / "main", batch_size=BATCH)
    db = tmp_path / "main" / "followup.db"
    for _ in range(2):  # each costs four broken attempts of a scan's five
        with contextlib.suppress(TransientMailboxError):
            scan(path, NOW)
    assert [uid for _, uid, _ in unread(db)] == [6, 26]
    first.chmod(0o600)
    sleeps = Sleeps()
    assert scan(path, NOW + timedelta(hours=2), sleeps).unread == 1
    assert len(sleeps) == 1  # the other broke it once; the retry went on
    assert unread(db) == [("INBOX", 26, 2)]
    for hour in (4, 6, 30):
        scan(path, NOW + timedelta(hours=hour), Sleeps())
    assert "UID 26 at 4 scans or more over a day; they are not asked for again" in records.text
    with Store(db) as store:
        assert store.ledger.message_count() == MESSAGES - 1


def test_hourly_scans_ask_for_a_day_and_the_last_one_says_it_gives_up(
        dovecot_account: ImapAccount, refusing: set[int], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, records: pytest.LogCaptureFixture) -> None:
    planted(dovecot_account)
    refusing.add(INBOX_ONLY)
    path = write_config(monkeypatch, dovecot_account, tmp_path / "main", batch_size=BATCH)
    db = tmp_path / "main" / "followup.db"
    for hour in range(24):
        scan(path, NOW + timedelta(hours=hour, minutes=1 if hour else 0))
        assert "they are not asked for again" not in records.text, hour
    scan(path, NOW + timedelta(hours=24, minutes=2))  # a day after the first: the last ask
    assert "they are not asked for again" in records.text
    tries = unread(db)[0][2]
    scan(path, NOW + timedelta(hours=27))
    assert unread(db) == [("INBOX", INBOX_ONLY, tries)]  # no longer asked for


def test_mail_that_comes_while_a_folder_is_opened_only_to_ask_again_is_read_later(
        dovecot_account: ImapAccount, refusing: set[int], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """INBOX unchanged at its STATUS, opened to ask for a message again: mail that came
    between the STATUS and the SELECT is not read then, and not taken for read either."""
    planted(dovecot_account)
    refusing.add(INBOX_ONLY)
    path = write_config(monkeypatch, dovecot_account, tmp_path / "main", batch_size=BATCH)
    db = tmp_path / "main" / "followup.db"
    scan(path)
    refusing.clear()
    _, raw, flags, when = next(iter(realistic(99, 1, now=NOW, sent="Sent")))
    select = Mailbox.select

    def mail_comes_first(self: Mailbox, folder: str, readonly: bool = True) -> Any:
        if folder == "INBOX":
            dovecot_account.append("INBOX", raw, flags=flags, when=when)
            monkeypatch.setattr(Mailbox, "select", select)
        return select(self, folder, readonly)

    monkeypatch.setattr(Mailbox, "select", mail_comes_first)
    assert scan(path, NOW + timedelta(hours=2)).fetched == 1  # the one asked for again
    assert scan(path, NOW + timedelta(hours=3)).fetched == 1  # the new one
    with Store(db) as store:
        assert store.ledger.message_count() == MESSAGES + 1


def test_a_folder_no_longer_scanned_forgets_what_it_did_not_give(
        dovecot_account: ImapAccount, refusing: set[int], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    dovecot_account.create_folder("Projekt")
    dovecot_account.append("Projekt", message(sender="projekt@example.net", subject="Projekt"))
    refusing.add(1)
    path = write_config(monkeypatch, dovecot_account, tmp_path / "main", batch_size=BATCH)
    db = tmp_path / "main" / "followup.db"
    assert scan(path).unread == 1
    assert unread(db) == [("Projekt", 1, 1)]
    with dovecot_account.client() as client:
        client.delete_folder("Projekt")
    assert scan(path, NOW + timedelta(days=2)).unread == 0
    assert unread(db) == []


def test_reading_one_at_a_time_keeps_each_message_before_asking_the_next(
        dovecot_server: Dovecot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the scan's worker: the message before the one that breaks the connection is the
    user's own in INBOX, so classifying it asks the server (delivered). Read one at a time,
    it is kept before the next is asked for, so the one that breaks it is found."""
    monkeypatch.setattr(scanwork, "WORKER_MIN_MESSAGES", 1)
    account = dovecot_server.new_account()
    when = datetime(2026, 3, 1, 6, tzinfo=UTC)

    def mail(n: int, sender: str, to: str) -> tuple[str, bytes, tuple[str, ...], datetime]:
        return ("INBOX", message(sender=sender, to=[to], subject=f"Notiz {n}",
                                 message_id=f"n{n}.worker", when=when), (), when)

    items = [mail(n, f"p{n}@example.net", ME) for n in range(1, 15)]
    items.append(mail(15, ME, "bob@example.net"))
    items.append(mail(16, "x@example.net", ME))
    items += [mail(n, f"p{n}@example.net", ME) for n in range(17, 40)]
    account.append_many(items)
    _unreadable(dovecot_server, b"<n16.worker@test>")
    path = write_config(monkeypatch, account, tmp_path / "main", batch_size=10)
    db = tmp_path / "main" / "followup.db"
    sleeps = Sleeps()
    summary = scan(path, NOW, sleeps)
    assert len(sleeps) == 4
    assert summary.unread == 1 and unread(db) == [("INBOX", 16, 1)]
    with Store(db) as store:
        assert store.ledger.message_count() == 38
