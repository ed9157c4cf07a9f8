"""FETCHes sent ahead (agent.mailbox.pipeline): the same ledger as one at a time, on real
servers, and nothing lost when a server refuses one, a scan stops early or the link drops."""

from __future__ import annotations

import contextlib
import imaplib
import io
import logging
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from imapclient import exceptions as imap_errors

from agent.config import load_config
from agent.errors import MailboxError
from agent.headers.meta import parse_message
from agent.mailbox import client as mailbox_client
from agent.mailbox.client import MAX_BATCH_GROWTH, next_batch_size
from agent.mailbox.fetch import USUAL, parse_fetch, parse_internaldate
from agent.mailbox.pipeline import (
    MAX_COMMAND_BYTES,
    STATUS_WINDOW,
    FetchPipeline,
    FetchRefused,
    fetch_command,
    status_answers,
    uid_set,
)
from agent.mailbox.records import FetchedHeader
from agent.scan import ScanSummary
from agent.service import Retry, run_scan
from tests.faultproxy import Fault, FaultProxy
from tests.kit import generated_folders, message, open_mailbox, plant, write_config
from tests.mailgen import GeneratedMailbox, generate, realistic
from tests.servers.account import ImapAccount
from tests.test_faults import assert_same_ledger, ledger_dump

NOW = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
BATCH = 10  # small batches (the least [imap] batch_size): many FETCHes in flight at once


# --------------------------------------------------------------------------- UID sets


def expand(text: bytes) -> list[int]:
    """An RFC 3501 sequence-set of UIDs back into the UIDs."""
    uids: list[int] = []
    for part in text.split(b","):
        first, _, last = part.partition(b":")
        uids.extend(range(int(first), int(last or first) + 1))
    return uids


def test_uid_set_writes_runs_as_ranges() -> None:
    assert uid_set([5]) == b"5"
    assert uid_set([1, 2, 3, 7, 9, 10]) == b"1:3,7,9:10"
    assert uid_set([4, 6, 8]) == b"4,6,8"
    assert uid_set(range(1, 501)) == b"1:500"


@given(st.sets(st.integers(min_value=1, max_value=2**32 - 1), min_size=1, max_size=300))
def test_uid_set_round_trips(uids: set[int]) -> None:
    ordered = sorted(uids)
    text = uid_set(ordered)
    assert expand(text) == ordered
    assert re.fullmatch(rb"\d+(:\d+)?(,\d+(:\d+)?)*", text)
    assert len(text) <= len(b",".join(b"%d" % uid for uid in ordered))


class _Recorder:
    """Stands in for imaplib's connection on the sending side only: records the lines."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []

    def send(self, data: bytes) -> None:
        self.lines.append(data)


class _Scripted(_Recorder):
    """Stands in for imaplib's connection: answers are read from a script of bytes."""

    def __init__(self, script: bytes) -> None:
        super().__init__()
        self._stream = io.BytesIO(script)

    def readline(self) -> bytes:
        return self._stream.readline()

    def read(self, size: int) -> bytes:
        return self._stream.read(size)


def _fetch_line(uid: int) -> bytes:
    header = b"From: p%d@example.net\r\n\r\n" % uid
    return (b"* %d FETCH (UID %d FLAGS () BODY[HEADER.FIELDS (FROM)] {%d}\r\n%s)\r\n"
            % (uid, uid, len(header), header))


def test_a_refusal_in_the_middle_of_an_earlier_answer_takes_none_of_it() -> None:
    """Dovecot answers BAD to a command sent ahead that it cannot parse as soon as it reads
    it, while the FETCH before it is still streaming: the earlier FETCH keeps every line of
    its answer (it used to lose the lines read before the BAD, so its batch came back
    short and those messages were never counted; seen on Dovecot in tests/test_pipeline)."""
    pipeline = FetchPipeline(_Scripted(b""), ["FLAGS"])  # type: ignore[arg-type]
    pipeline.send([1, 2, 3])
    pipeline.send([4, 5, 6])
    first, second = (line.split(b" ")[0] for line in pipeline._imap.lines)  # type: ignore[attr-defined]
    pipeline._imap = _Scripted(  # type: ignore[assignment]
        _fetch_line(1) + second + b" BAD Error in IMAP command: Unknown command\r\n"
        + _fetch_line(2) + _fetch_line(3) + first + b" OK Fetch completed.\r\n")
    uids, answer, _ = pipeline.receive()
    assert list(uids) == [1, 2, 3]
    assert sorted(parse_fetch(answer)) == [1, 2, 3]
    with pytest.raises(FetchRefused, match="BAD"):
        pipeline.receive()


class _Closing(_Scripted):
    """A connection the server closed after its script: the third command sent fails."""

    def send(self, data: bytes) -> None:
        if len(self.lines) == 2:
            raise BrokenPipeError(32, "Broken pipe")
        super().send(data)


def test_what_came_before_a_connection_closed_while_sending_is_still_read() -> None:
    """A server that fails on a message closes the connection (Dovecot: "BYE FETCH failed")
    while later FETCHes are still being sent: the answers it gave before are read in turn,
    and the pipeline names the highest UID not answered (Mailbox.broke_through)."""
    imap = _Closing(b"")
    pipeline = FetchPipeline(imap, ["FLAGS"])  # type: ignore[arg-type]
    pipeline.send([1, 2])
    pipeline.send([3, 4])
    pipeline.send([5, 6])  # the server is gone: this one cannot be sent
    first = imap.lines[0].split(b" ")[0]
    imap._stream = io.BytesIO(
        _fetch_line(1) + _fetch_line(2) + first + b" OK Fetch completed.\r\n"
        + b"* 3 FETCH (UID 3)\r\n* BYE FETCH failed: Internal error occurred.\r\n")
    uids, answer, _ = pipeline.receive()
    assert list(uids) == [1, 2] and sorted(parse_fetch(answer)) == [1, 2]
    with pytest.raises(imap_errors.IMAPClientAbortError, match="BYE FETCH failed"):
        pipeline.receive()
    assert pipeline.broke_through == 6


def _usual_line(uid: int, header: bytes, tail: bytes = b")") -> bytes:
    return (b'* %d FETCH (UID %d INTERNALDATE " 5-Jan-2026 10:00:00 +0100" FLAGS (\\Seen) '
            b"BODY[HEADER.FIELDS (FROM)] {%d}\r\n%s%s\r\n" % (uid, uid, len(header), header, tail))


def test_the_usual_answer_is_read_into_records_and_any_other_is_handed_over() -> None:
    """The pipeline reads the usual answer line straight into a record; a line that only
    starts like it (more items after the literal), and an answer of another shape (a header
    sent as NIL), are handed over in imaplib's shape, and the parsers read them the same."""
    header = b"From: a@example.net\r\n\r\n"
    pipeline = FetchPipeline(_Scripted(b""), ["FLAGS"], usual=USUAL)  # type: ignore[arg-type]
    pipeline.send([1, 2, 3])
    tag = pipeline._imap.lines[0].split(b" ")[0]  # type: ignore[attr-defined]
    pipeline._imap = _Scripted(  # type: ignore[assignment]
        _usual_line(1, header) + _usual_line(2, header, b" X-GM-MSGID 77)")
        + b"* 3 FETCH (UID 3 FLAGS () BODY[HEADER.FIELDS (FROM)] NIL)\r\n"
        + tag + b" OK Fetch completed.\r\n")
    _, answer, _ = pipeline.receive()
    assert isinstance(answer[0], FetchedHeader)  # read straight into a record
    assert not any(isinstance(item, FetchedHeader) for item in answer[1:])
    records = parse_fetch(answer)
    assert sorted(records) == [1, 2, 3]
    assert records[1].header == records[2].header == header
    assert records[1].flags == records[2].flags == frozenset({"\\seen"})
    assert records[1].internaldate == records[2].internaldate is not None
    assert records[2].gm_msgid == 77 and records[1].gm_msgid is None
    assert records[3].header == b""


def test_a_long_command_is_split_into_lines_a_server_takes() -> None:
    uids = list(range(1, 20_000, 2))  # no two neighbours: the longest UID set there is
    recorder = _Recorder()
    pipeline = FetchPipeline(recorder, ["FLAGS"])  # type: ignore[arg-type]
    pipeline.send(uids)
    assert len(recorder.lines) > 1
    sent: list[int] = []
    for line in recorder.lines:
        assert len(line) <= MAX_COMMAND_BYTES
        match = re.fullmatch(rb"fu\d+ UID FETCH ([\d:,]+) \(FLAGS\)\r\n", line)
        assert match is not None, line[:60]
        sent.extend(expand(match[1]))
    assert sent == uids  # every UID once, in order
    assert pipeline.in_flight == len(recorder.lines)
    assert len({line.split(b" ")[0] for line in recorder.lines}) == len(recorder.lines)


def test_a_short_command_is_one_line() -> None:
    line = fetch_command(b"fu9", [1, 2, 3], ["INTERNALDATE", "FLAGS"])
    assert line == b"fu9 UID FETCH 1:3 (INTERNALDATE FLAGS)\r\n"


# --------------------------------------------------------------------------- batch growth


def test_batches_grow_while_the_round_trip_is_a_noticeable_share() -> None:
    # 40 ms round trip, a batch of 500 read in 100 ms: the wait is 40 %, grow.
    assert next_batch_size(500, 500, 0.040, 0.100) == 1000
    # Loopback: 0.1 ms of 100 ms, stay.
    assert next_batch_size(500, 500, 0.0001, 0.100) == 500
    # Exactly the share: stay.
    assert next_batch_size(500, 500, 0.005, 0.100) == 500
    # Unknown round trip (FETCH through IMAPClient.fetch): stay.
    assert next_batch_size(500, 500, None, 0.100) == 500
    # Never beyond MAX_BATCH_GROWTH times the configured size.
    largest = 500 * MAX_BATCH_GROWTH
    assert next_batch_size(largest, 500, 1.0, 1.5) == largest
    assert next_batch_size(largest // 2 + 10, 500, 1.0, 1.5) == largest


def test_one_at_a_time_batches_double_up_to_the_cap(dovecot_account: ImapAccount,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """With FETCHes sent ahead off, the batch sizes follow next_batch_size: a clock that
    makes every wait for the first answer line long doubles them, up to the cap."""
    monkeypatch.setattr(mailbox_client, "PIPELINE_DEPTH", 1)
    dovecot_account.append_many(realistic(3, 200, now=NOW, sent=dovecot_account.sent_folder))
    ticks = iter(range(1_000_000))
    with contextlib.closing(open_mailbox(dovecot_account)) as mailbox:
        mailbox.clock = lambda: float(next(ticks))  # each reading one second later
        mailbox.select("INBOX")
        uids = mailbox.uids_after(0)
        sizes = [len(chunk) for chunk, _ in mailbox.header_batches(uids, 2)]
        fetched = [len(found) for _, found in mailbox.header_batches(uids, 2)]
    largest = 2 * MAX_BATCH_GROWTH
    assert sizes[:5] == [2, 4, 8, 16, 32][:5]
    assert max(sizes) == largest
    assert sum(sizes) == len(uids) == sum(fetched)


# --------------------------------------------------------------------------- real servers


def _max_in_flight(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Records how many FETCHes were in flight after each one was sent."""
    seen: list[int] = []
    original = FetchPipeline.send

    def send(self: FetchPipeline, uids: Sequence[int]) -> None:
        original(self, uids)
        seen.append(self.in_flight)

    monkeypatch.setattr(FetchPipeline, "send", send)
    return seen


@pytest.mark.parametrize("personality", ["standard", "cyrus", "pymap"])
def test_pipelined_scan_gives_the_ledger_of_one_fetch_at_a_time(
        personality: str, make_account: Callable[[str], ImapAccount], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    account = make_account(personality)
    generated = generate(31, people=20, now=NOW, folders=generated_folders(account))
    plant(account, generated)
    account.append_many(realistic(32, 300, now=NOW, sent=account.sent_folder))

    in_flight = _max_in_flight(monkeypatch)
    pipelined = write_config(monkeypatch, account, tmp_path / "pipelined",
                             aliases=generated.aliases, batch_size=BATCH)
    first = run_scan(load_config(pipelined), now=NOW)
    assert max(in_flight) == mailbox_client.PIPELINE_DEPTH > 1  # really sent ahead

    monkeypatch.setattr(mailbox_client, "PIPELINE_DEPTH", 1)
    in_flight.clear()
    single = write_config(monkeypatch, account, tmp_path / "single",
                          aliases=generated.aliases, batch_size=BATCH)
    second = run_scan(load_config(single), now=NOW)
    assert max(in_flight) == 1

    assert first.fetched == second.fetched > 300
    reference = ledger_dump(tmp_path / "single" / "followup.db")
    assert_same_ledger(tmp_path / "pipelined" / "followup.db", reference)


def _refuse_second_fetch() -> Callable[[bytes], bytes]:
    """A ``rewrite_up`` that turns the second UID FETCH the client sends into a command the
    server does not know: a real server's BAD to a FETCH sent ahead."""
    seen = 0

    def rewrite(chunk: bytes) -> bytes:
        nonlocal seen
        out = []
        for line in chunk.split(b"\r\n"):
            if b" UID FETCH " in line:
                seen += 1
            out.append(line.replace(b" UID FETCH ", b" UID FETCHNOT ")
                       if seen == 2 and b" UID FETCH " in line else line)
        return b"\r\n".join(out)

    return rewrite


def _planted_with_reference(account: ImapAccount, seed: int, tmp_path: Path,
                            monkeypatch: pytest.MonkeyPatch
                            ) -> tuple[GeneratedMailbox, dict[str, list[tuple[Any, ...]]]]:
    """A generated mailbox (seed) and 200 realistic messages (seed + 1) planted in
    ``account``, and the ledger of a scan without faults (tmp_path/whole), to compare with."""
    generated = generate(seed, people=20, now=NOW, folders=generated_folders(account))
    plant(account, generated)
    account.append_many(realistic(seed + 1, 200, now=NOW, sent=account.sent_folder))
    whole = write_config(monkeypatch, account, tmp_path / "whole", aliases=generated.aliases,
                         batch_size=BATCH)
    run_scan(load_config(whole), now=NOW)
    return generated, ledger_dump(tmp_path / "whole" / "followup.db")


def test_a_refused_fetch_sent_ahead_falls_back_and_loses_nothing(
        dovecot_account: ImapAccount, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    account = dovecot_account
    generated, reference = _planted_with_reference(account, 33, tmp_path, monkeypatch)

    in_flight = _max_in_flight(monkeypatch)
    with FaultProxy(account.host, account.port, rewrite_up=_refuse_second_fetch(),
                    record_upstream=True) as proxy, \
            caplog.at_level(logging.INFO, logger="agent.mailbox"):
        refused = write_config(monkeypatch, account, tmp_path / "refused", port=proxy.port,
                               aliases=generated.aliases, batch_size=BATCH)
        summary = run_scan(load_config(refused), now=NOW)
        upstream = bytes(proxy.connections[0].upstream)
    assert b" UID FETCH " in upstream
    assert len(proxy.connections) == 1  # a refusal is no reason to reconnect
    said = [r.getMessage() for r in caplog.records if "one FETCH at a time" in r.getMessage()]
    assert len(said) == 1, said
    # After the refusal: one FETCH at a time for the rest of the connection.
    refusal = in_flight.index(max(in_flight))
    assert max(in_flight) > 1 and set(in_flight[refusal + 4:]) == {1}
    assert not summary.interrupted
    assert_same_ledger(tmp_path / "refused" / "followup.db", reference)


def _leave_out(uid: int, commands: int) -> Callable[[bytes], bytes]:
    """A ``rewrite_up`` that takes ``uid`` out of the UID set of the first ``commands`` UID
    FETCHes that ask for it: the server answers them without it, as if the answer had come
    back short, while the client still expects it."""
    done = 0

    def rewrite(chunk: bytes) -> bytes:
        nonlocal done
        out = []
        for line in chunk.split(b"\r\n"):
            head, fetch, rest = line.partition(b" UID FETCH ")
            if fetch and done < commands:
                wanted, _, items = rest.partition(b" ")
                uids = expand(wanted)
                if uid in uids:
                    done += 1
                    # Asked alone, it is swapped for a UID that no message has.
                    others = [u for u in uids if u != uid] or [2**32 - 1]
                    out.append(head + fetch + uid_set(others) + b" " + items)
                    continue
            out.append(line)
        return b"\r\n".join(out)

    return rewrite


@pytest.mark.parametrize("depth", [mailbox_client.PIPELINE_DEPTH, 1])
def test_a_fetch_answer_short_of_a_message_that_exists_loses_nothing(
        dovecot_account: ImapAccount, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture, depth: int) -> None:
    """A message missing from a FETCH answer is not taken for expunged while it is still
    there: it is fetched again, and the ledger is that of a scan without the fault (FETCHes
    sent ahead, and one at a time)."""
    account = dovecot_account
    generated, reference = _planted_with_reference(account, 39, tmp_path, monkeypatch)
    monkeypatch.setattr(mailbox_client, "PIPELINE_DEPTH", depth)
    with FaultProxy(account.host, account.port, rewrite_up=_leave_out(3, commands=1),
                    record_upstream=True) as proxy, \
            caplog.at_level(logging.INFO, logger="agent.mailbox"):
        short = write_config(monkeypatch, account, tmp_path / "short", port=proxy.port,
                             aliases=generated.aliases, batch_size=BATCH)
        summary = run_scan(load_config(short), now=NOW)
        upstream = bytes(proxy.connections[0].upstream)
    assert b" UID SEARCH UID 3" in upstream
    said = [r.getMessage() for r in caplog.records if "still there" in r.getMessage()]
    assert len(said) == 1, said
    assert not summary.interrupted and len(proxy.connections) == 1
    assert_same_ledger(tmp_path / "short" / "followup.db", reference)


def test_a_message_the_server_never_gives_is_named_and_the_rest_is_counted(
        dovecot_account: ImapAccount, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    account = dovecot_account
    generated, reference = _planted_with_reference(account, 41, tmp_path, monkeypatch)
    with FaultProxy(account.host, account.port, rewrite_up=_leave_out(4, commands=10**6)
                    ) as proxy, caplog.at_level(logging.INFO, logger="agent.mailbox"):
        never = write_config(monkeypatch, account, tmp_path / "never", port=proxy.port,
                             aliases=generated.aliases, batch_size=BATCH)
        summary = run_scan(load_config(never), now=NOW)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warned and all("gave no headers for UID 4 in " in w for w in warned), warned
    assert not summary.interrupted
    # Every other message is in the ledger; UID 4 of each folder that has one is not.
    got = {row[:2] for row in ledger_dump(tmp_path / "never" / "followup.db")["messages"]}
    want = {row[:2] for row in reference["messages"]}
    assert got == {(folder, uid) for folder, uid in want if uid != 4}
    assert len(warned) == len(want - got) > 0


def test_uids_expunged_before_their_fetch_are_checked_once_and_not_fetched_again(
        dovecot_account: ImapAccount, caplog: pytest.LogCaptureFixture) -> None:
    account = dovecot_account
    for n in range(12):
        account.append("INBOX", message(sender=f"p{n}@example.net", subject=f"S{n}"))
    with contextlib.closing(open_mailbox(account)) as mailbox, \
            caplog.at_level(logging.INFO, logger="agent.mailbox"):
        mailbox.select("INBOX")
        uids = list(mailbox.uids_after(0))
        gone = [uids[-1] + 5, uids[-1] + 6]  # never there (as if expunged meanwhile)
        batches = list(mailbox.header_batches([*uids, *gone], 5))
        single = mailbox.fetch_headers([uids[0], *gone])
    assert [f.uid for _, found in batches for f in found] == uids
    assert [f.uid for f in single] == uids[:1]
    assert not [r for r in caplog.records if "still there" in r.getMessage()
                or r.levelno >= logging.WARNING]


@pytest.mark.parametrize("personality", ["standard", "cyrus", "pymap"])
def test_leaving_the_batches_early_leaves_the_connection_usable(
        personality: str, make_account: Callable[[str], ImapAccount]) -> None:
    account = make_account(personality)
    for n in range(40):
        account.append("INBOX", message(sender=f"p{n}@example.net", subject=f"S{n}"))
    with contextlib.closing(open_mailbox(account)) as mailbox:
        mailbox.select("INBOX")
        uids = list(mailbox.uids_after(0))
        with contextlib.closing(mailbox.header_batches(uids, 5)) as batches:
            chunk, fetched = next(batches)
            assert [f.uid for f in fetched] == list(chunk) == uids[:5]
        # The FETCHes still on their way were read: the next commands get their own answers.
        assert mailbox.status("INBOX").messages == 40
        again = mailbox.fetch_headers(uids[5:12])
        assert [f.uid for f in again] == uids[5:12]
        assert b"From: p5@example.net" in again[0].header
        assert sum(len(f) for _, f in mailbox.header_batches(uids, 5)) == 40


def test_an_interrupted_scan_resumes_and_loses_nothing(
        dovecot_account: ImapAccount, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    account = dovecot_account
    generated, reference = _planted_with_reference(account, 35, tmp_path, monkeypatch)

    asked = 0

    def stop_after_a_few_batches() -> bool:
        nonlocal asked
        asked += 1
        return asked > 5

    config = write_config(monkeypatch, account, tmp_path / "stopped", aliases=generated.aliases,
                          batch_size=BATCH)
    first = run_scan(load_config(config), now=NOW,
                     retry=Retry(should_stop=stop_after_a_few_batches))
    assert first.interrupted
    second = run_scan(load_config(config), now=NOW)
    assert not second.interrupted
    assert_same_ledger(tmp_path / "stopped" / "followup.db", reference)


def test_a_link_dropped_with_fetches_in_flight_is_retried_and_loses_nothing(
        dovecot_account: ImapAccount, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    account = dovecot_account
    account.append_many(realistic(37, 400, now=NOW, sent=account.sent_folder))
    # The first FETCH's tagged OK never arrives: the link drops with every FETCH that was
    # sent ahead still unanswered.
    summary, said, sleeps, in_flight = _scan_with_a_dropped_link(
        account, tmp_path, monkeypatch, b"OK Fetch completed")
    # Sent ahead, none of them answered. (Counted as sent, not as seen by the proxy: on a
    # busy machine the proxy may cut before the later ones reach it.)
    assert b" UID FETCH " in said[0] and max(in_flight[:2]) == 2
    assert len(sleeps) == 1 and len(said) == 2
    assert not summary.interrupted


def _scan_with_a_dropped_link(account: ImapAccount, tmp_path: Path,
                              monkeypatch: pytest.MonkeyPatch, before: bytes
                              ) -> tuple[ScanSummary, list[bytes], list[float], list[int]]:
    """A scan through a proxy that drops the link just ``before`` what the server says,
    retried; the ledger is the one a scan without the fault made. What the scan said on
    each connection, the retry's sleeps, and the FETCHes in flight after each was sent."""
    whole = write_config(monkeypatch, account, tmp_path / "whole", batch_size=BATCH)
    run_scan(load_config(whole), now=NOW)
    reference = ledger_dump(tmp_path / "whole" / "followup.db")
    sleeps: list[float] = []
    in_flight = _max_in_flight(monkeypatch)
    with FaultProxy(account.host, account.port, record_upstream=True) as proxy:
        proxy.plan(Fault.cut_before(before))
        config = write_config(monkeypatch, account, tmp_path / "dropped", port=proxy.port,
                              batch_size=BATCH)
        summary = run_scan(load_config(config), now=NOW, retry=Retry(sleep=sleeps.append))
        assert proxy.fired(), proxy.describe()
        said = [bytes(connection.upstream) for connection in proxy.connections]
    assert_same_ledger(tmp_path / "dropped" / "followup.db", reference)
    return summary, said, sleeps, in_flight



# --------------------------------------------------------------------------- STATUS at once

# Names a scan meets: spaces, quotes, umlauts (modified UTF-7 on the wire), all digits (an
# atom the parser reads as a number), and more folders than one window of STATUS commands.
ODD_NAMES = ["Projekte 2026", 'Kunde "Nord"', "Entwürfe alt", "Ärger & Ölkännchen", "2024"]


@pytest.mark.parametrize("personality", ["standard", "cyrus", "pymap"])
def test_every_status_at_once_is_what_each_alone_says(
        personality: str, make_account: Callable[[str], ImapAccount]) -> None:
    account = make_account(personality)
    names = []
    for name in [*ODD_NAMES, *(f"F{n:02d}" for n in range(STATUS_WINDOW))]:
        try:
            account.create_folder(name)
        except imaplib.IMAP4.error:  # Cyrus refuses '"' in a name
            continue
        names.append(name)
    assert len(names) >= len(ODD_NAMES) - 1 + STATUS_WINDOW
    for n, name in enumerate(names):
        for m in range(n % 3):
            account.append(name, message(sender=f"p{n}.{m}@example.net", subject=f"S{m}"))
    account.append("INBOX", message(sender="inbox@example.net", subject="hello"))
    folders = ["INBOX", *names]
    with contextlib.closing(open_mailbox(account)) as alone:
        expected = {name: alone.status(name) for name in folders}
    assert [expected[name].messages for name in names] == [n % 3 for n in range(len(names))]

    with contextlib.closing(open_mailbox(account)) as mailbox:
        mailbox.statuses(folders)

        def asked_alone(*_args: Any, **_kwargs: Any) -> Any:
            raise AssertionError("a STATUS was asked again, one folder at a time")

        mailbox._client.folder_status = asked_alone  # type: ignore[method-assign]
        assert {name: mailbox.status(name) for name in folders} == expected


def test_a_status_the_server_refuses_is_asked_alone_and_says_why(
        dovecot_account: ImapAccount) -> None:
    account = dovecot_account
    account.create_folder("Archiv")
    with contextlib.closing(open_mailbox(account)) as mailbox:
        mailbox.statuses(["INBOX", "Gibt es nicht", "Archiv"])
        assert mailbox.status("Archiv").messages == 0  # the answer after the refusal kept
        with pytest.raises(MailboxError, match="refused") as refused:
            mailbox.status("Gibt es nicht")
        assert "Gibt es nicht" in str(refused.value)
        assert mailbox.status("INBOX").uidvalidity > 0  # and the connection still works


def test_status_answers_keep_literal_names_and_pass_over_other_lines() -> None:
    """A name sent back as a literal, an unrelated untagged line, a refusal: each command
    gets the STATUS lines read before its own tagged OK, in imaplib's shape."""
    imap = _Scripted(b"")

    def answer(data: bytes) -> None:  # the server's side: answers to the tags just sent
        first, second, third = re.findall(rb"^(fu\d+) STATUS", data, re.M)
        imap._stream = io.BytesIO(
            b"* STATUS {5}\r\nInbox (MESSAGES 3 UIDNEXT 9 UIDVALIDITY 7)\r\n"
            + first + b" OK Status completed.\r\n"
            + b"* 4 EXISTS\r\n"
            + second + b" NO Mailbox doesn't exist: Nope\r\n"
            + b'* STATUS "A b" (MESSAGES 0 UIDNEXT 1 UIDVALIDITY 8)\r\n'
            + third + b" OK Status completed.\r\n")

    imap.send = answer  # type: ignore[method-assign]
    answers = status_answers(imap, [b'"INBOX"', b'"Nope"', b'"A b"'],  # type: ignore[arg-type]
                             b"MESSAGES UIDNEXT UIDVALIDITY")
    assert answers == [
        [[(b"{5}", b"Inbox"), b" (MESSAGES 3 UIDNEXT 9 UIDVALIDITY 7)"]],
        None,
        [[b'"A b" (MESSAGES 0 UIDNEXT 1 UIDVALIDITY 8)']],
    ]


def test_a_link_dropped_between_status_answers_is_retried_and_loses_nothing(
        dovecot_account: ImapAccount, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    account = dovecot_account
    for name in ("Projekte", "Kunden", "Verein"):
        account.create_folder(name)
        account.append(name, message(sender=f"{name.lower()}@example.net", subject=name))
    account.append_many(realistic(38, 60, now=NOW, sent=account.sent_folder))
    summary, said, sleeps, _ = _scan_with_a_dropped_link(account, tmp_path, monkeypatch,
                                                         b"OK Status completed")
    first, second = said
    assert re.findall(rb"fu\d+ STATUS ", first)  # sent at once, then the link dropped
    # The retry asks one folder at a time (a server that drops the connection when STATUS
    # commands come at once would drop it again), and every folder still once.
    assert not re.findall(rb"fu\d+ STATUS ", second)
    assert second.count(b" STATUS ") >= len(summary.folders)
    assert len(sleeps) == 1
    assert not summary.interrupted


def test_a_rescan_asks_every_status_before_reading_a_folder(
        dovecot_account: ImapAccount, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """New mail in every folder: every folder's STATUS was asked at once before the first
    was read (the scan's snapshot decides), not one round trip each between the reads."""
    account = dovecot_account
    projects = [f"Projekt {n}" for n in range(6)]
    for name in projects:
        account.create_folder(name)
        account.append(name, message(sender=f"{name[-1]}@example.net", subject=name))
    config = write_config(monkeypatch, account, tmp_path, batch_size=BATCH)
    first = run_scan(load_config(config), now=NOW)
    assert first.fetched == len(projects) and len(first.folders) > len(projects)
    for name in first.folders:
        account.append(name, message(sender="new@example.net", subject=f"Neu in {name}"))
    with FaultProxy(account.host, account.port, record_upstream=True) as proxy:
        write_config(monkeypatch, account, tmp_path, port=proxy.port, batch_size=BATCH)
        again = run_scan(load_config(config), now=NOW)
        upstream = bytes(proxy.connections[0].upstream)
    assert again.fetched == len(first.folders) and sorted(again.folders) == sorted(first.folders)
    before_reading = upstream.split(b" EXAMINE ")[0]  # SELECT read-only: the folder read
    assert before_reading.count(b" STATUS ") == len(again.folders), upstream.decode()


def test_an_internaldate_given_as_text_is_read_when_needed_and_equals_the_parsed_one() -> None:
    parsed = parse_internaldate(b" 5-Jan-2026 10:00:00 +0100")
    lazy = FetchedHeader(7, b" 5-Jan-2026 10:00:00 +0100", b"X: y\r\n\r\n", frozenset())
    assert lazy.given_internaldate == b" 5-Jan-2026 10:00:00 +0100"  # not parsed yet
    assert lazy == FetchedHeader(7, parsed, b"X: y\r\n\r\n", frozenset())
    assert lazy.internaldate == datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    assert lazy.given_internaldate == lazy.internaldate  # parsed once, kept
    assert FetchedHeader(8, b"yesterday", b"", frozenset()).internaldate is None
    # What a scan without a usable Date gets from it: the server's time.
    meta = parse_message(b"From: a@example.net\r\n\r\n", lazy.internaldate, NOW)
    assert meta.time == datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    assert meta.time_source == "internaldate"
