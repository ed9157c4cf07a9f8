"""The scan's worker process (agent.scanwork): the same ledger and the same tallies as a scan
in one process, on a real Dovecot; a worker that dies or cannot start costs nothing; it
gets no password."""

from __future__ import annotations

import io
import logging
import os
import pickle
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agent import scanwork
from agent.classify import DELIVERED_FROM_OUTSIDE, Batch, Tally, process_batch
from agent.config import load_config
from agent.mailbox.client import Mailbox
from agent.mailbox.fetch import parse_internaldate
from agent.mailbox.records import FetchedHeader
from agent.model import LedgerBatch, ledger_batch
from agent.scan import ScanSummary
from agent.service import run_scan
from tests.kit import ME, generated_folders, message, plant, write_config
from tests.mailgen import generate, realistic
from tests.servers.account import ImapAccount
from tests.test_faults import assert_same_ledger, ledger_dump
from tests.test_review_ledger import DELIVERED

NOW = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
BATCH = 25


@pytest.fixture
def workers(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[scanwork.Worker]]:
    """The workers started, in order."""
    started: list[scanwork.Worker] = []
    original = scanwork.Worker.__init__

    def init(self: scanwork.Worker, *args: Any) -> None:
        original(self, *args)
        started.append(self)

    monkeypatch.setattr(scanwork.Worker, "__init__", init)
    yield started


def _with_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on every scan gets a worker (on one core too)."""
    monkeypatch.setattr(scanwork, "WORKER_MIN_MESSAGES", 1)
    monkeypatch.setattr(scanwork, "cores", lambda: 2)


def _asked_delivered(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The UIDs the scan asked Mailbox.delivered about."""
    asked: list[int] = []
    original = Mailbox.delivered

    def delivered(self: Mailbox, uids: Any) -> set[int]:
        asked.extend(uids)
        return original(self, uids)

    monkeypatch.setattr(Mailbox, "delivered", delivered)
    return asked


def _planted(account: ImapAccount, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
             seed: int) -> tuple[Path, ScanSummary, dict[str, list[tuple[Any, ...]]], list[int]]:
    """A generated mailbox and 400 realistic messages in ``account``; the config of a second
    scan, and the summary, ledger and delivered questions of a first one in this process;
    then every scan gets a worker."""
    generated = generate(seed, people=25, now=NOW, folders=generated_folders(account))
    plant(account, generated)
    account.append_many(realistic(seed + 1, 400, now=NOW, sent=account.sent_folder))
    for n in range(3):  # "From: you", delivered from outside into INBOX: not counted as sent
        account.append("INBOX", message(sender=f"Me <{ME}>",
                                        to=[f"stranger{n}@evil.example"],
                                        subject="Re: our deal", headers=[DELIVERED]))
    asked = _asked_delivered(monkeypatch)
    here = write_config(monkeypatch, account, tmp_path / "here", aliases=generated.aliases,
                        batch_size=BATCH)
    summary = run_scan(load_config(here), now=NOW)
    reference = ledger_dump(tmp_path / "here" / "followup.db")
    config = write_config(monkeypatch, account, tmp_path / "worker",
                          aliases=generated.aliases, batch_size=BATCH)
    _with_workers(monkeypatch)
    return config, summary, reference, list(asked)


def _same_tally(got: ScanSummary, want: ScanSummary) -> None:
    assert (got.fetched, got.counted, got.new_exchanges) == (
        want.fetched, want.counted, want.new_exchanges)
    assert got.skipped == want.skipped and got.repaired == want.repaired
    assert got.repairs == want.repairs


def test_a_scan_with_a_worker_gives_the_ledger_and_tallies_of_one_without(
        dovecot_account: ImapAccount, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        workers: list[scanwork.Worker]) -> None:
    config, reference_summary, reference, asked_here = _planted(
        dovecot_account, tmp_path, monkeypatch, 51)
    assert workers == []  # the reference: a scan of ~700 messages in this process
    asked = _asked_delivered(monkeypatch)
    summary = run_scan(load_config(config), now=NOW)
    assert len(workers) == 1  # one for the whole scan, kept from folder to folder
    assert not workers[0].alive  # closed with the scan
    _same_tally(summary, reference_summary)
    # The user's own mail in INBOX: the worker asked the scan about it, as a scan without
    # one does, and some of it came from outside.
    assert asked and sorted(asked) == sorted(asked_here)
    assert summary.skipped[DELIVERED_FROM_OUTSIDE] > 0
    assert_same_ledger(tmp_path / "worker" / "followup.db", reference)


def test_a_worker_that_dies_leaves_its_batch_and_the_rest_to_the_scan(
        dovecot_account: ImapAccount, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        workers: list[scanwork.Worker], caplog: pytest.LogCaptureFixture) -> None:
    config, reference_summary, reference, _ = _planted(dovecot_account, tmp_path,
                                                       monkeypatch, 53)
    collected = 0
    original = scanwork.Worker.collect

    def collect(self: scanwork.Worker) -> Any:
        nonlocal collected
        collected += 1
        if collected == 3:
            process = self._process
            assert process is not None
            process.kill()  # with a batch in hand
            process.wait()
        return original(self)

    monkeypatch.setattr(scanwork.Worker, "collect", collect)
    with caplog.at_level(logging.WARNING, logger="agent.scanwork"):
        summary = run_scan(load_config(config), now=NOW)
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "classifying in this process" in said[0], said
    assert collected > 3
    _same_tally(summary, reference_summary)
    assert_same_ledger(tmp_path / "worker" / "followup.db", reference)


def test_a_worker_that_cannot_start_is_no_worker(
        dovecot_account: ImapAccount, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        workers: list[scanwork.Worker], caplog: pytest.LogCaptureFixture) -> None:
    config, reference_summary, reference, _ = _planted(dovecot_account, tmp_path,
                                                       monkeypatch, 55)
    monkeypatch.setattr(scanwork.sys, "executable", str(tmp_path / "no-such-python"))
    with caplog.at_level(logging.WARNING, logger="agent.scanwork"):
        summary = run_scan(load_config(config), now=NOW)
    assert workers and not any(w.alive for w in workers)
    assert any("could not start" in r.getMessage() for r in caplog.records)
    _same_tally(summary, reference_summary)
    assert_same_ledger(tmp_path / "worker" / "followup.db", reference)


def test_a_worker_that_fails_says_why_in_the_log_not_on_the_terminal(
        caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> None:
    """A worker that ends with an exception: its traceback does not land under the scan's
    progress bar; the warning names the exception, and the batch is classified here."""
    own = frozenset({"me@example.org"})
    worker = scanwork.Worker(own, NOW)
    try:
        fetched = _synthetic(20, 1)
        worker._send(("batch", "INBOX", False, [(1, 2)]))  # no record: the worker fails
        worker._theirs = (fetched, "INBOX", None)
        worker._mine = ([], "INBOX", None)
        with caplog.at_level(logging.WARNING, logger="agent.scanwork"):
            batch, tally = worker.collect()
    finally:
        worker.close()
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "TypeError" in said[0] and "classifying in this process" in said[0]
    assert not worker.alive
    assert tally.counted == len(batch.messages) == len(fetched)
    # No traceback of the worker's own (its serve() loop) on this process's stderr.
    assert ", in serve" not in capfd.readouterr().err


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
def test_the_worker_gets_no_password(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "worker-must-not-see-this-9f3a"
    monkeypatch.setenv("FOLLOWUP_IMAP_PASSWORD", secret)
    worker = scanwork.Worker(frozenset({"me@example.org"}), NOW)
    try:
        process = worker._process
        assert process is not None
        environ = Path(f"/proc/{process.pid}/environ").read_bytes()
        arguments = Path(f"/proc/{process.pid}/cmdline").read_bytes()
    finally:
        worker.close()
    assert secret.encode() not in environ + arguments
    assert b"FOLLOWUP_IMAP_PASSWORD" not in environ
    assert process.poll() is not None  # closing ended it


def test_the_worker_loop_classifies_as_process_batch_does() -> None:
    """serve() on pipes of bytes: the same batch (as the ledger's rows) and tally as
    process_batch here, and the delivered question goes out and its answer comes back in."""
    own = frozenset({"me@example.org"})
    blocks = [
        b"From: Anna <anna@example.net>\r\nTo: me@example.org\r\nSubject: Hallo\r\n"
        b"Date: Mon, 5 Oct 2026 10:00:00 +0200\r\nMessage-ID: <a1@example.net>\r\n\r\n",
        b"From: me@example.org\r\nTo: bob@example.com\r\nSubject: Re: x\r\n"
        b"Date: Tue, 6 Oct 2026 10:00:00 +0000\r\nMessage-ID: <m1@example.org>\r\n\r\n",
        b"From: =?utf-8?q?broken\r\nDate: yesterday\r\n\r\n",
    ]
    when = parse_internaldate(b"07-Oct-2026 09:00:00 +0000")
    fetched = [FetchedHeader(uid, when, block, frozenset())
               for uid, block in enumerate(blocks, 1)]
    items = [(f.uid, f.internaldate, f.header, f.flags, f.gm_msgid) for f in fetched]
    stdin = io.BytesIO()
    for said in (("start", own, NOW, "work"), ("batch", "INBOX", True, items),
                 ("delivered", {fetched[1].uid})):
        pickle.dump(said, stdin)
    stdin.seek(0)
    stdout = io.BytesIO()
    scanwork.serve(stdin, stdout)
    stdout.seek(0)
    question = pickle.load(stdout)
    answer = pickle.load(stdout)
    assert question == ("delivered", [fetched[1].uid])
    tally = Tally()
    want = process_batch(fetched, own, NOW, tally, folder="INBOX",
                         delivered=lambda uids: {fetched[1].uid})
    assert answer == ("done", (ledger_batch(want.messages, want.rows, want.lists, "INBOX",
                                            "work", want.sent_ids, want.held), tally))
    assert {row[0] for row in answer[1][0].messages} == {"work"}  # the mailbox's rows
    assert tally.skipped[DELIVERED_FROM_OUTSIDE] == 1


def test_one_core_or_a_small_folder_gets_no_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    own = frozenset({"me@example.org"})
    monkeypatch.setattr(scanwork, "cores", lambda: 1)
    assert isinstance(scanwork.Classifiers(own, NOW).for_folder(10**6), scanwork.InProcess)
    monkeypatch.setattr(scanwork, "cores", lambda: 8)
    small = scanwork.WORKER_MIN_MESSAGES - 1
    assert isinstance(scanwork.Classifiers(own, NOW).for_folder(small), scanwork.InProcess)
    assert os.path.basename(sys.executable)  # the worker runs under this same Python


def _synthetic(count: int, start: int) -> list[FetchedHeader]:
    when = parse_internaldate(b"07-Oct-2026 09:00:00 +0000")
    return [FetchedHeader(uid, when,
                          b"From: P%d <p%d@example.net>\r\nTo: me@example.org\r\n"
                          b"Subject: s%d\r\nMessage-ID: <%d@example.net>\r\n\r\n"
                          % (uid, uid % 7, uid, uid), frozenset())
            for uid in range(start, start + count)]


def _rows(batch: Batch) -> LedgerBatch:
    return ledger_batch(batch.messages, batch.rows, batch.lists, "INBOX", "", batch.sent_ids,
                        batch.held)


def _same_effect(batch: LedgerBatch) -> tuple[object, ...]:
    """A batch's rows, but the address lists as sets: parts of a batch each name an
    address once, and the ledger inserts them or ignores them."""
    return (*batch[:3], set(batch.addresses), set(batch.lists), *batch[5:])


@pytest.mark.parametrize(("step", "grows"), [(1.0, True), (0.0, False)])
def test_the_part_classified_here_follows_the_worker(step: float, grows: bool) -> None:
    """Each batch is split between the worker and this process; this process takes more
    while collecting waits for the worker (a clock where every wait is long), less while
    it does not (a clock that stands still). Either way the batch is whole and in order."""
    own = frozenset({"me@example.org"})
    ticks = iter(range(10**6))
    worker = scanwork.Worker(own, NOW, clock=lambda: next(ticks) * step)
    shares = []
    try:
        for n in range(40):
            fetched = _synthetic(20, 1 + 20 * n)
            worker.submit(fetched, "INBOX", None)
            batch, tally = worker.collect()
            shares.append(worker.share)
            want = _rows(process_batch(fetched, own, NOW, Tally(), folder="INBOX"))
            assert _same_effect(batch) == _same_effect(want)
            assert tally.counted == len(fetched) == len(batch.messages)
    finally:
        worker.close()
    assert worker.alive is False
    if grows:
        assert shares[-1] == scanwork.Worker.MAX_SHARE and shares == sorted(shares)
    else:
        assert shares[-1] == 0.0 and shares == sorted(shares, reverse=True)


def test_the_worker_imports_neither_the_keyring_nor_imap_nor_sqlite() -> None:
    """The worker's memory is its parser's: it starts without the modules it has no use for
    (its peak RSS adds to the scan's: README "How fast")."""
    probe = "import sys, agent.scanwork; print(' '.join(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=60, check=True)
    loaded = set(done.stdout.split())
    assert "agent.classify" in loaded
    assert not {m for m in loaded if m.split(".")[0] in (
        "keyring", "imapclient", "imaplib", "sqlite3", "sqlite_utils", "click", "rich")}


def test_a_stop_signal_to_every_process_leaves_the_worker_to_the_scan() -> None:
    """A service manager's stop sends SIGTERM (Ctrl-C: SIGINT) to the scan and its worker
    alike; the scan finishes the batch in hand, so the worker goes on until it is closed."""
    own = frozenset({"me@example.org"})
    worker = scanwork.Worker(own, NOW)
    try:
        process = worker._process
        assert process is not None
        worker.submit(_synthetic(20, 1), "INBOX", None)
        worker.collect()  # answered: the worker is in its loop, its signals set
        worker.submit(_synthetic(20, 21), "INBOX", None)
        for stop in (signal.SIGTERM, signal.SIGINT):
            process.send_signal(stop)
        batch, _ = worker.collect()
        assert worker.alive and len(batch.messages) == 20
    finally:
        worker.close()
    assert process.returncode == 0
