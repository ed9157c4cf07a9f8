"""The ledger against real servers: a generated adversarial mailbox, incremental scans,
UIDVALIDITY changes, kill -9 in the middle, and `scan --full` keeping the user's decisions."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent import service
from agent.classify import process_batch
from agent.config import load_config
from agent.decisions import resolve
from agent.errors import MailboxError
from agent.mailbox.client import FolderStatus, Mailbox
from agent.mailbox.records import FetchedHeader
from agent.scan import ScanSummary, folder_plan
from agent.store import Store
from agent.store.ledger import FolderState
from tests.faultproxy import FaultProxy
from tests.kit import (
    config_text,
    expected_ledger,
    followup_process,
    generated_folders,
    iso,
    ledger_of,
    message,
    plant,
    run_cli,
    write_config,
)
from tests.mailgen import Expected, GeneratedMailbox, build_message, generate, realistic, rfc_date
from tests.servers.account import ImapAccount

NOW = datetime(2026, 3, 1, 7, 30, tzinfo=UTC)
NOW_TEXT = "2026-03-01T07:30:00Z"
REPO = Path(__file__).resolve().parent.parent
# The generated project folder: an umlaut, so folder names travel as modified UTF-7.
PROJECT = "Kunde Müller"

# --------------------------------------------------------------------------- helpers


def cli(args: Sequence[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run `followup --now NOW ARGS` in-process; its stdout (exit code must be 0)."""
    code, out, err = run_cli(["--now", NOW_TEXT, *args], capsys)
    assert code == 0, f"followup {' '.join(args)} exited {code}: {err}"
    return out


def contacts_json(capsys: pytest.CaptureFixture[str], config: Path | None = None
                  ) -> list[dict[str, Any]]:
    args = ["--config", str(config)] if config else []
    result = json.loads(cli([*args, "contacts", "--json"], capsys))
    assert isinstance(result, list)
    return result


def assert_ledger(contacts: list[dict[str, Any]], mailbox: GeneratedMailbox,
                  two_way: bool) -> None:
    got = ledger_of(contacts)
    want = expected_ledger(mailbox.ledger(two_way))
    every_address = {a for c in contacts for a in c["addresses"]}
    leaked = every_address & mailbox.never_contacts
    assert not leaked, f"never-contacts in the ledger: {sorted(leaked)}"
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    assert not missing and not extra, f"missing {missing}, unexpected {extra}"
    cases = {key: label for label, key in mailbox.cases.items()}
    wrong = {f"{key} ({cases.get(key, 'ordinary')})": {"got": got[key], "want": want[key]}
             for key in want if got[key] != want[key]}
    assert not wrong, json.dumps(wrong, indent=1, ensure_ascii=False)


def spy_fetches(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[int]]]:
    """Count the UIDs FETCHed: wraps Mailbox.header_batches and calls through."""
    calls: list[tuple[str, list[int]]] = []
    original = Mailbox.header_batches

    def counting(self: Mailbox, uids: Sequence[int], batch_size: int
                 ) -> Iterator[tuple[Sequence[int], list[FetchedHeader]]]:
        for chunk, fetched in original(self, uids, batch_size):
            calls.append((self._selected or "", list(chunk)))
            yield chunk, fetched

    monkeypatch.setattr(Mailbox, "header_batches", counting)
    return calls


def fetched_by_folder(calls: list[tuple[str, list[int]]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for folder, uids in calls:
        counts[folder] = counts.get(folder, 0) + len(uids)
    return counts


def scan(path: Path, **kwargs: Any) -> ScanSummary:
    """The scan step alone: the commands step after it reads new INBOX and Sent headers on
    its own (tests/test_commands.py), which these fetch counts leave out."""
    full = kwargs.pop("full", False)
    summary = service.run(load_config(path), NOW,
                          replace(service.SCAN, full=full, commands=False), **kwargs).scan
    assert summary is not None
    return summary


# --------------------------------------------------------------------------- the ledger


@pytest.mark.parametrize("two_way", [True, False], ids=["two_way", "one_way"])
def test_ledger_of_generated_mailbox(imap_account: ImapAccount, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str], two_way: bool,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    folders = generated_folders(imap_account, PROJECT)
    mailbox = generate(1 if two_way else 2, now=NOW, folders=folders)
    plant(imap_account, mailbox)
    write_config(monkeypatch, imap_account, tmp_path, aliases=mailbox.aliases,
                 extra="" if two_way else "[policy]\ntwo_way = false\n")
    cli(["scan"], capsys)
    assert_ledger(contacts_json(capsys), mailbox, two_way)


def test_ledger_on_german_layout(make_account: Callable[[str], ImapAccount],
                                 tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """INBOX.Gesendet, INBOX.Entwürfe, INBOX.Spam, INBOX.Papierkorb found by name only."""
    account = make_account("german")
    mailbox = generate(5, people=15, now=NOW, folders=generated_folders(account, PROJECT))
    plant(account, mailbox)
    write_config(monkeypatch, account, tmp_path, aliases=mailbox.aliases)
    cli(["scan"], capsys)
    assert_ledger(contacts_json(capsys), mailbox, True)


@pytest.mark.parametrize("seed", range(100, 116))
def test_pipeline_matches_generated_ledger_for_many_seeds(tmp_path: Path, seed: int) -> None:
    """process_batch → Store for many random mailboxes, without a server (fast): every
    name style, date zone and case the generator draws, in many combinations."""
    mailbox = generate(seed, people=25, now=NOW)
    own = frozenset({"me@example.org", "mia.private@gmx.de"})
    counted = mailbox.counted_folders()
    with Store(tmp_path / "followup.db") as store:
        for folder in sorted(counted):
            fetched = [_fetched(uid, m.raw, m.internaldate,
                                frozenset(f.lower() for f in m.flags))
                       for uid, m in enumerate((m for m in mailbox.messages
                                                if m.folder == folder), start=1)]
            batch = process_batch(fetched, own, NOW, ScanSummary())
            store.ledger.save_batch(folder, 1, len(fetched), batch.messages, batch.rows,
                                    batch.lists, sent_ids=batch.sent_ids, held=batch.held)
        store.refresh(NOW)
        for two_way in (True, False):
            contacts = store.people.contacts(own, two_way=two_way)
            got = {c.email: (c.name, c.last_exchange, c.last_direction, c.last_subject,
                             c.messages_in, c.messages_out, c.addresses) for c in contacts}
            want = {k: (e.name, e.last_exchange, e.last_direction, e.last_subject,
                        e.messages_in, e.messages_out, (k,))
                    for k, e in mailbox.ledger(two_way).items()}
            assert got == want


def test_generator_is_deterministic_and_self_consistent() -> None:
    first, again = generate(9, now=NOW), generate(9, now=NOW)
    assert [m.raw for m in first.messages] == [m.raw for m in again.messages]
    assert first.expected == again.expected
    assert generate(10, now=NOW).expected != first.expected
    assert set(first.expected) < set(first.expected_one_way)
    assert all(e.two_way for e in first.expected.values())
    one_way_only = first.one_way_only()
    assert len(one_way_only) >= 5
    assert not any(e.two_way for e in one_way_only.values())
    assert not (first.never_contacts & set(first.ledger(two_way=False)))
    assert all(m.raw.count(b"\n") == m.raw.count(b"\r\n") for m in first.messages)
    assert all(m.internaldate.tzinfo is not None for m in first.messages)
    # The realistic generator: distinct Message-IDs, the promised mix.
    many = list(realistic(3, 3000, now=NOW))
    message_ids = {raw.split(b"Message-ID: ", 1)[1].split(b"\r\n", 1)[0] for _, raw, _, _ in many}
    assert len(message_ids) == 3000
    sent = sum(folder == "Sent" for folder, _, _, _ in many)
    assert 0.28 < sent / 3000 < 0.38
    automated = sum(b"List-Id" in raw or b"noreply" in raw or b"Auto-Submitted" in raw
                    or b"Precedence" in raw or b"donotreply" in raw or b"MAILER-DAEMON" in raw
                    for _, raw, _, _ in many)
    assert 0.15 < automated / 3000 < 0.25


# --------------------------------------------------------------------------- incremental


def _extra_messages(mailbox: GeneratedMailbox, sent_folder: str) -> tuple[
        list[tuple[str, bytes, tuple[str, ...], datetime]], dict[str, Expected]]:
    """A few new messages after a first scan, and the ledger they lead to."""
    anna_key = mailbox.cases["gmail-dots"]
    anna = mailbox.expected[anna_key]
    newcomer = "neu.kundin@web.de"
    t1, t2, t3 = NOW - timedelta(hours=5), NOW - timedelta(hours=4), NOW - timedelta(hours=3)
    items = [
        ("INBOX", build_message([
            ("From", "Anna Schmidt <anna.schmidt@gmail.com>"), ("To", "me@example.org"),
            ("Subject", "Noch eine Frage"), ("Date", rfc_date(t1, "+0100")),
            ("Message-ID", "<extra-1@gmail.com>")]), ("\\Seen",), t1 + timedelta(seconds=30)),
        ("INBOX", build_message([
            ("From", "=?utf-8?Q?Neue_K=C3=BCndin?= <Neu.Kundin@web.de>"),
            ("To", "me@example.org"), ("Subject", "Anfrage Hochzeit"),
            ("Date", rfc_date(t2, "-0000")), ("Message-ID", "<extra-2@web.de>")]),
         (), t2 + timedelta(seconds=30)),
        (sent_folder, build_message([
            ("From", "Mia Example <me@example.org>"),
            ("To", "annaschmidt@googlemail.com, =?utf-8?Q?Neue_K=C3=BCndin?= <neu.kundin@web.de>"),
            ("Subject", "Re: Anfrage Hochzeit"), ("Date", rfc_date(t3, "+0200")),
            ("Message-ID", "<extra-3@example.org>")]), ("\\Seen",), t3),
    ]
    expected = dict(mailbox.expected)
    expected[anna_key] = Expected(anna_key, anna.name, t3, "out", "Re: Anfrage Hochzeit",
                                  anna.messages_in + 1, anna.messages_out + 1)
    expected[newcomer] = Expected(newcomer, "Neue Kündin", t3, "out", "Re: Anfrage Hochzeit",
                                  1, 1)
    return items, expected


def test_incremental_scan_fetches_only_new_messages(
        imap_account: ImapAccount, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    mailbox = generate(3, people=15, now=NOW, folders=generated_folders(imap_account, PROJECT))
    plant(imap_account, mailbox)
    path = write_config(monkeypatch, imap_account, tmp_path, aliases=mailbox.aliases)
    calls = spy_fetches(monkeypatch)

    first = scan(path)
    scanned = set(first.folders)
    assert mailbox.counted_folders() <= scanned
    assert not scanned & {imap_account.drafts_folder, imap_account.junk_folder,
                          imap_account.trash_folder}
    planted = {f: sum(m.folder == f for m in mailbox.messages) for f in scanned}
    assert fetched_by_folder(calls) == {f: n for f, n in planted.items() if n}
    assert first.fetched == sum(planted.values())
    assert_ledger(contacts_json(capsys), mailbox, True)

    items, expected = _extra_messages(mailbox, imap_account.sent_folder)
    imap_account.append_many(items)
    calls.clear()
    second = scan(path)
    assert fetched_by_folder(calls) == {"INBOX": 2, imap_account.sent_folder: 1}
    assert second.fetched == 3
    assert second.new_exchanges == 4  # Anna in, newcomer in, Anna out, newcomer out
    assert set(second.unchanged) == scanned - {"INBOX", imap_account.sent_folder}
    assert ledger_of(contacts_json(capsys)) == expected_ledger(expected)

    calls.clear()
    third = scan(path)
    assert calls == []
    assert third.fetched == 0
    assert third.new_exchanges == 0
    assert sorted(third.unchanged) == sorted(third.folders) == sorted(scanned)
    assert third.reset == {}
    assert ledger_of(contacts_json(capsys)) == expected_ledger(expected)


def test_a_no_change_rescan_says_little(imap_account: ImapAccount, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """With nothing new, `followup scan` (the commands step included) sends one STATUS per
    folder, INBOX's before the LIST (after a LIST, Dovecot reads a big maildir INBOX whole
    for its STATUS: README "How fast"), and nothing that reads a folder."""
    plant(imap_account, generate(4, people=6, now=NOW,
                                 folders=generated_folders(imap_account, PROJECT)))
    path = write_config(monkeypatch, imap_account, tmp_path)
    service.run(load_config(path), NOW, service.SCAN)
    with FaultProxy(imap_account.host, imap_account.port, record_upstream=True) as proxy:
        write_config(monkeypatch, imap_account, tmp_path, port=proxy.port)
        summary = service.run(load_config(path), NOW, service.SCAN).scan
        said = bytes(proxy.connections[0].upstream).decode("utf-8", "replace")
    assert summary is not None and summary.fetched == 0
    verbs = [line.split(" ", 2)[1].upper() for line in said.splitlines() if " " in line]
    statuses = [line for line in said.splitlines() if " STATUS " in line]
    assert verbs.index("STATUS") < verbs.index("LIST"), said
    assert '"INBOX"' in statuses[0] or " INBOX " in statuses[0], said
    assert len(statuses) == len(summary.folders) == len(set(statuses)), said
    assert not {"SELECT", "EXAMINE", "FETCH", "UID", "SEARCH"} & set(verbs), said


# What a no-change rescan must not import (README "How fast": each of these costs start-up
# time that `followup scan` from cron or a shell would pay every time).
NOT_FOR_A_RESCAN = ("sqlite_utils", "jinja2", "vobject", "phonenumbers", "authlib", "httpx",
                    "mailparser", "agent.delivery", "agent.render", "agent.drafts.lifecycle",
                    "agent.signature_sync", "agent.addressbook", "agent.commands.apply",
                    "agent.commands.confirm", "agent.sendmail")


def test_a_no_change_rescan_imports_only_what_it_uses(
        dovecot_account: ImapAccount, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plant(dovecot_account, generate(3, people=5, now=NOW,
                                    folders=generated_folders(dovecot_account, PROJECT)))
    path = write_config(monkeypatch, dovecot_account, tmp_path)
    service.run(load_config(path), NOW, service.SCAN)
    probe = ("import sys\nfrom agent.cli.root import main\nsys.argv = ['followup', '--now', "
             f"'{iso(NOW)}', 'scan']\n"
             "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc\n"
             "print(' '.join(sorted(sys.modules)))\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          env=os.environ.copy(), timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    scanned, loaded = done.stdout.splitlines()[0], set(done.stdout.splitlines()[-1].split())
    assert "0 new message(s)" in scanned
    assert [m for m in loaded if m.split(".")[0] in NOT_FOR_A_RESCAN
            or m.startswith(NOT_FOR_A_RESCAN)] == []


def test_mail_moved_between_folders_counts_once(
        imap_account: ImapAccount, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The user files mail into an archive folder after a scan: new UIDs, same messages."""
    folders = generated_folders(imap_account, PROJECT)
    mailbox = generate(13, people=10, now=NOW, folders=folders)
    plant(imap_account, mailbox)
    path = write_config(monkeypatch, imap_account, tmp_path, aliases=mailbox.aliases)
    scan(path)
    before = contacts_json(capsys)
    with imap_account.client() as client:
        for source in ("INBOX", imap_account.sent_folder):
            client.select_folder(source)
            uids = sorted(client.search("ALL"))[::2]
            client.move(uids, folders["archive"])
            client.close_folder()
        client.select_folder(folders["archive"], readonly=True)
        archived = len(client.search("ALL"))
    calls = spy_fetches(monkeypatch)
    summary = scan(path)
    moved = archived - sum(m.folder == folders["archive"] for m in mailbox.messages)
    assert moved > 20
    assert fetched_by_folder(calls) == {folders["archive"]: moved}
    assert summary.new_exchanges == 0
    assert contacts_json(capsys) == before


def test_uidvalidity_change_rescans_the_folder_without_double_counting(
        imap_account: ImapAccount, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    folders = generated_folders(imap_account, PROJECT)
    mailbox = generate(4, people=15, now=NOW, folders=folders)
    plant(imap_account, mailbox)
    path = write_config(monkeypatch, imap_account, tmp_path, aliases=mailbox.aliases)
    scan(path)
    before = contacts_json(capsys)
    assert_ledger(before, mailbox, True)
    with Store(load_config(path).storage.path) as store:
        exchanges_before = store.ledger.exchange_count()
        messages_before = store.ledger.message_count()

    changed = ["INBOX", folders["archive"]]
    for folder in changed:
        imap_account.change_uidvalidity(folder)
    calls = spy_fetches(monkeypatch)
    summary = scan(path)
    assert set(summary.reset) == set(changed)
    assert all(why == "UIDVALIDITY changed" for why in summary.reset.values())
    in_folder = {f: sum(m.folder == f for m in mailbox.messages) for f in changed}
    assert fetched_by_folder(calls) == in_folder
    assert summary.new_exchanges == 0
    assert contacts_json(capsys) == before
    with Store(load_config(path).storage.path) as store:
        assert store.ledger.exchange_count() == exchanges_before
        assert store.ledger.message_count() == messages_before

    calls.clear()
    assert scan(path).reset == {}
    assert calls == []


def test_uidnext_backwards_on_a_real_server_resets_the_folder(
        imap_account: ImapAccount, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """No real server moves UIDNEXT back on demand: the stored state claims a higher one."""
    mailbox = generate(6, people=10, now=NOW, folders=generated_folders(imap_account, PROJECT))
    plant(imap_account, mailbox)
    path = write_config(monkeypatch, imap_account, tmp_path, aliases=mailbox.aliases)
    scan(path)
    before = contacts_json(capsys)
    sent = imap_account.sent_folder
    with Store(load_config(path).storage.path) as store:
        state = store.ledger.folder_state(sent)
        assert state is not None and state.uidnext > 0
        store.ledger.finish_folder(sent, state.uidvalidity, state.uidnext + 100, None, NOW)
    calls = spy_fetches(monkeypatch)
    summary = scan(path)
    assert summary.reset == {sent: "UIDNEXT went backwards"}
    assert fetched_by_folder(calls) == {sent: sum(m.folder == sent for m in mailbox.messages)}
    assert summary.new_exchanges == 0
    assert contacts_json(capsys) == before


# --------------------------------------------------------------------------- sync decisions


def _state(uidvalidity: int = 7, last_uid: int = 40, uidnext: int = 41) -> FolderState:
    return FolderState("INBOX", uidvalidity, last_uid, uidnext, None)


@pytest.mark.parametrize(("state", "status", "plan"), [
    (None, FolderStatus(7, 41, 40), ("fetch", 0)),
    (_state(), FolderStatus(7, 41, 40), ("skip", 40)),
    (_state(), FolderStatus(7, 45, 44), ("fetch", 40)),
    (_state(), FolderStatus(8, 41, 40), ("reset", 0)),
    (_state(), FolderStatus(8, 90, 89), ("reset", 0)),
    (_state(), FolderStatus(7, 30, 29), ("reset", 0)),  # UIDNEXT went backwards (GMX)
    (_state(), FolderStatus(7, 40, 39), ("reset", 0)),
    # Interrupted before the folder was finished: no UIDNEXT stored yet, resume after last_uid.
    (_state(uidnext=0), FolderStatus(7, 41, 40), ("fetch", 40)),
    # A server that does not report UIDNEXT: never "unchanged", never reset by it.
    (_state(), FolderStatus(7, 0, 40), ("fetch", 40)),
], ids=["new", "unchanged", "grown", "uidvalidity", "uidvalidity-grown", "uidnext-back",
        "uidnext-back-by-one", "unfinished", "no-uidnext"])
def test_folder_plan(state: FolderState | None, status: FolderStatus,
                     plan: tuple[str, int]) -> None:
    assert folder_plan(state, status) == plan


def _fetched(uid: int, raw: bytes, when: datetime, flags: frozenset[str] = frozenset()
             ) -> FetchedHeader:
    return FetchedHeader(uid=uid, internaldate=when, header=raw.split(b"\r\n\r\n")[0] + b"\r\n",
                         flags=flags)


def test_store_reset_path_after_uidnext_went_backwards(tmp_path: Path) -> None:
    """reset_folder forgets the folder's UIDs but not its exchanges: a rescan adds nothing."""
    mailbox = generate(8, people=6, now=NOW)
    own = frozenset({"me@example.org", "mia.private@gmx.de"})
    by_folder: dict[str, list[FetchedHeader]] = {}
    for planted in mailbox.messages:
        if planted.folder in mailbox.counted_folders():
            box = by_folder.setdefault(planted.folder, [])
            box.append(_fetched(len(box) + 1, planted.raw, planted.internaldate,
                                frozenset(f.lower() for f in planted.flags)))
    with Store(tmp_path / "db.sqlite") as store:
        for folder, fetched in by_folder.items():
            batch = process_batch(fetched, own, NOW, ScanSummary())
            store.ledger.save_batch(folder, 7, fetched[-1].uid, batch.messages, batch.rows,
                                    batch.lists, sent_ids=batch.sent_ids, held=batch.held)
            store.ledger.finish_folder(folder, 7, fetched[-1].uid + 1, None, NOW)
        store.refresh(NOW)
        before = store.people.contacts(own)
        exchanges, messages = store.ledger.exchange_count(), store.ledger.message_count()
        inbox = by_folder["INBOX"]

        state = store.ledger.folder_state("INBOX")
        assert state is not None
        plan = folder_plan(state, FolderStatus(7, state.uidnext - 5, len(inbox)))
        assert plan == ("reset", 0)
        store.ledger.reset_folder("INBOX", 7)
        after_reset = store.ledger.folder_state("INBOX")
        assert after_reset is not None
        assert (after_reset.last_uid, after_reset.uidnext) == (0, 0)
        assert store.ledger.message_count() == messages - len(inbox)
        assert store.ledger.exchange_count() == exchanges  # exchanges are keyed by message
        assert store.ledger.folder_states().keys() == by_folder.keys()

        # The server renumbered: the same messages come back under new UIDs.
        renumbered = [FetchedHeader(100 + n, f.internaldate, f.header, f.flags)
                      for n, f in enumerate(inbox)]
        messages_rows, rows, lists, _sent, _held = process_batch(renumbered, own, NOW,
                                                                 ScanSummary())
        added = store.ledger.save_batch("INBOX", 7, renumbered[-1].uid, messages_rows, rows,
                                        lists)
        assert added == 0
        store.refresh(NOW)
        assert store.ledger.exchange_count() == exchanges
        assert store.ledger.message_count() == messages
        assert store.people.contacts(own) == before
        assert {c.email for c in before} >= set(mailbox.expected)


# --------------------------------------------------------------------------- kill -9


def _subprocess_env(config: Path, account: ImapAccount) -> dict[str, str]:
    env = dict(os.environ)
    env.update(FOLLOWUP_CONFIG=str(config), FOLLOWUP_IMAP_PASSWORD=account.password,
               FOLLOWUP_NOW=NOW_TEXT)
    return env


def _message_count(database: Path) -> int:
    """Messages recorded so far, read while another process writes (WAL); 0 before any."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True,
                                                timeout=1)) as conn:
            return int(conn.execute("SELECT count(*) FROM messages").fetchone()[0])
    except sqlite3.Error:
        return 0


def _wait_for(process: subprocess.Popen[bytes], condition: Callable[[], bool],
              timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while process.poll() is None and not condition():
        assert time.monotonic() < deadline, "the scan made no progress"
        time.sleep(0.003)


@pytest.mark.slow
def test_kill_9_during_scans_loses_and_doubles_nothing(
        dovecot_account: ImapAccount, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    account = dovecot_account
    rng = random.Random(20260301)
    mailbox = generate(11, people=20, now=NOW, folders=generated_folders(account, PROJECT))
    plant(account, mailbox)
    account.append_many(realistic(12, 3000, now=NOW, sent=account.sent_folder))

    fresh = write_config(monkeypatch, account, tmp_path / "fresh", aliases=mailbox.aliases,
                         batch_size=50)
    scan(fresh)
    killed = tmp_path / "killed"
    killed.mkdir()
    config = killed / "config.toml"
    config.write_text(config_text(account, db=killed / "followup.db", aliases=mailbox.aliases,
                                  batch_size=50))
    env = _subprocess_env(config, account)

    total = _message_count(tmp_path / "fresh" / "followup.db")
    database = killed / "followup.db"
    # Five kills at random points of progress (two of them during `scan --full`, one as the
    # last batch lands: refresh_aggregates/finish_folder), each followed by another run.
    interrupted = 0
    for full, late in ((False, False), (True, False), (False, False), (False, True),
                       (True, False)):
        done = _message_count(database)
        target = total if late else rng.randint(min(done + 1, total) if not full else 1,
                                                total - 1)
        # Committing every three batches, so that the kill can wait for progress it sees
        # and then land among batches not yet committed.
        command = followup_process("scan", *(["--full"] if full else []), commit_every=150)
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE)
        if full and done:  # wait for `--full` to have forgotten the old messages first
            _wait_for(process, lambda done=done: _message_count(database) < done)
        _wait_for(process, lambda target=target: _message_count(database) >= target)
        time.sleep(rng.uniform(0, 0.03))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            interrupted += 1
        _, err = process.communicate(timeout=30)
        assert process.returncode in (0, -signal.SIGKILL), err.decode()
    assert interrupted >= 4, "the kills should land in the middle of scans"
    final = subprocess.run([sys.executable, "-m", "agent", "scan"], cwd=REPO, env=env,
                           capture_output=True, timeout=60, check=False)
    assert final.returncode == 0, final.stderr.decode()

    def without_ids(contacts: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return {c["email"]: {k: v for k, v in c.items() if k != "id"} for c in contacts}

    assert without_ids(contacts_json(capsys, config)) == without_ids(contacts_json(capsys, fresh))
    with Store(killed / "followup.db") as a, Store(tmp_path / "fresh" / "followup.db") as b:
        assert a.ledger.exchange_count() == b.ledger.exchange_count()
        assert a.ledger.message_count() == b.ledger.message_count()
        assert a.ledger.list_addresses() == b.ledger.list_addresses()


# --------------------------------------------------------------------------- decisions


def test_full_rescan_keeps_decisions(imap_account: ImapAccount, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    mailbox = generate(7, people=12, now=NOW, folders=generated_folders(imap_account, PROJECT))
    plant(imap_account, mailbox)
    path = write_config(monkeypatch, imap_account, tmp_path, aliases=mailbox.aliases)
    cli(["scan"], capsys)
    keys = sorted(mailbox.expected)
    snoozed, ignored, keep, other = keys[0], keys[1], keys[2], keys[3]
    with Store(load_config(path).storage.path) as store:
        snoozed_id = resolve(store, snoozed)
        store.people.set_decision(snoozed_id, snooze_until=date(2026, 6, 1), cadence_days=30,
                           name="Die Gute")
        store.people.add_tags(snoozed_id, ["kunde", "wichtig"])
        store.people.set_decision(resolve(store, ignored), ignored=1)
        keep_id = resolve(store, keep)
        store.people.merge(keep_id, resolve(store, other))
    decided = contacts_json(capsys)
    by_id = {c["id"]: c for c in decided}
    assert by_id[snoozed_id]["status"] == "snoozed"
    assert by_id[snoozed_id]["tags"] == ["kunde", "wichtig"]
    assert by_id[snoozed_id]["name"] == "Die Gute"
    assert sorted(by_id[keep_id]["addresses"]) == sorted([keep, other])
    assert by_id[keep_id]["messages_in"] == (mailbox.expected[keep].messages_in
                                             + mailbox.expected[other].messages_in)
    newest = max(mailbox.expected[keep].last_exchange, mailbox.expected[other].last_exchange)
    assert by_id[keep_id]["last_exchange"] == iso(newest)

    calls = spy_fetches(monkeypatch)
    out = cli(["scan", "--full"], capsys)
    assert len(out.splitlines()) == 1
    assert sum(len(uids) for _, uids in calls) == sum(
        m.folder in mailbox.counted_folders() for m in mailbox.messages)
    assert contacts_json(capsys) == decided
    with Store(load_config(path).storage.path) as store:
        assert resolve(store, other) == keep_id
        assert resolve(store, snoozed) == snoozed_id


# --------------------------------------------------------------------------- output


@pytest.fixture
def default_log_levels() -> Iterator[None]:
    """The `agent` logger at its default level: an in-process `followup run` elsewhere in
    the session sets it to INFO (right for a daemon process, sticky in a test process)."""
    logger = logging.getLogger("agent")
    level = logger.level
    logger.setLevel(logging.NOTSET)
    yield
    logger.setLevel(level)


@pytest.mark.usefixtures("default_log_levels")
def test_scan_prints_one_summary_line_when_not_on_a_terminal(
        imap_account: ImapAccount, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    mailbox = generate(12, people=5, now=NOW, folders=generated_folders(imap_account, PROJECT))
    plant(imap_account, mailbox)
    write_config(monkeypatch, imap_account, tmp_path, aliases=mailbox.aliases)
    code, out, err = run_cli(["--now", NOW_TEXT, "scan"], capsys)
    assert code == 0, err
    assert err == ""
    lines = out.splitlines()
    assert len(lines) == 1, out
    counted = sum(m.folder in mailbox.counted_folders() for m in mailbox.messages)
    assert lines[0].startswith("scanned ")
    assert f"{counted} new message(s)" in lines[0]
    assert "\x1b" not in out and "\r" not in out  # no progress bar, no colours

    code, out, err = run_cli(["--now", NOW_TEXT, "scan"], capsys)
    assert code == 0, err
    assert len(out.splitlines()) == 1
    assert " 0 new message(s)" in out


def test_an_empty_mailbox_scans_to_an_empty_ledger(
        imap_account: ImapAccount, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(monkeypatch, imap_account, tmp_path, aliases=["mia.private@gmx.de"])
    out = cli(["scan"], capsys)
    assert len(out.splitlines()) == 1
    assert " 0 new message(s)" in out
    assert contacts_json(capsys) == []


def deleted_after_the_list(monkeypatch: pytest.MonkeyPatch, account: ImapAccount,
                            *names: str) -> None:
    """Another mail program deletes ``names`` just after the scan listed the folders."""
    chosen = Mailbox.folders_to_scan

    def choosing(self: Mailbox, include: Sequence[str] | None = None,
                 exclude: Sequence[str] = ()) -> list[str]:
        folders = chosen(self, include, exclude)
        with account.client() as client:
            for name in names:
                client.delete_folder(name)
        return folders

    monkeypatch.setattr(Mailbox, "folders_to_scan", choosing)


def test_a_folder_the_server_refuses_is_skipped_and_the_rest_is_read(
        dovecot_account: ImapAccount, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder listed but then refused (deleted meanwhile, no right to read it, broken):
    every other folder is read, the summary names the one skipped, and the scan succeeds."""
    account = dovecot_account
    account.create_folder("Projekt")
    account.append("Projekt", message(sender="projekt@example.net", subject="Projekt"))
    account.append("INBOX", message(sender="anna@example.net", subject="Hallo"))
    path = write_config(monkeypatch, account, tmp_path)
    deleted_after_the_list(monkeypatch, account, "Projekt")
    summary = scan(path)
    assert list(summary.refused) == ["Projekt"]
    assert "Projekt" in summary.refused["Projekt"] and "refused" in summary.refused["Projekt"]
    assert "skipped, the server refused: Projekt" in summary.line()
    assert summary.fetched == 1  # INBOX's

    monkeypatch.undo()
    write_config(monkeypatch, account, tmp_path)
    assert scan(path).refused == {}  # gone from the LIST: nothing to refuse


def test_a_scan_whose_every_folder_is_refused_fails(
        dovecot_account: ImapAccount, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    account = dovecot_account
    account.create_folder("Projekt")
    path = write_config(monkeypatch, account, tmp_path, imap_extra='folders = ["Projekt"]')
    deleted_after_the_list(monkeypatch, account, "Projekt")
    with pytest.raises(MailboxError, match=r"refused .*Projekt"):
        scan(path)


def test_message_keys_sort_by_minute_and_gmail_ids_win() -> None:
    """Same message → same key in every folder; Gmail's own id beats the headers."""
    from agent.classify import message_key
    from agent.store.ledger import key_id

    when = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    inbox = message_key("a@x", "b@y", when, b"From: b@y\r\n")
    copy = message_key("a@x", "b@y", when, b"From: b@y\r\nReturn-Path: <b@y>\r\n")
    assert inbox == copy  # delivery headers differ between copies; the identity does not
    later = message_key("c@x", "b@y", when + timedelta(minutes=1), b"")
    assert key_id(inbox) < key_id(later)  # keys of later mail sort later
    assert message_key("a@x", "b@y", when, b"", 42) == message_key(None, "", when, b"x", 42)
    undated = message_key(None, "", None, b"From: b@y\r\n")
    assert key_id(undated) < 0 <= key_id(inbox)


# --------------------------------------------------------------------------- without imaplib's
#                                                                             connection


@contextlib.contextmanager
def _records_of(name: str) -> Iterator[list[logging.LogRecord]]:
    """Every record of logger ``name`` and below, DEBUG too (the in-process CLI replaces the
    root handlers, caplog's among them)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger(name)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_scan_without_imaplibs_connection_gives_the_same_ledger(
        dovecot_account: ImapAccount, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """When IMAPClient no longer shows the imaplib connection the fast path (FETCHes sent
    ahead, read off that connection) needs, each connection falls back to IMAPClient.fetch,
    one FETCH at a time, says so once, and the scan gives the ledger the fast path gives."""
    import imapclient

    from agent.mailbox import client as mailbox_client
    from agent.mailbox.fetch import FETCH_BODY

    mailbox = generate(4, people=15, now=NOW, folders=generated_folders(dovecot_account))
    plant(dovecot_account, mailbox)
    public_fetches: list[int] = []  # the connection of every header FETCH by IMAPClient.fetch
    public_fetch = imapclient.IMAPClient.fetch

    def spied_fetch(client: imapclient.IMAPClient, messages: Any, data: Any,
                    modifiers: Any = None) -> Any:
        if FETCH_BODY in data:
            public_fetches.append(id(client))
        return public_fetch(client, messages, data, modifiers)

    monkeypatch.setattr(imapclient.IMAPClient, "fetch", spied_fetch)

    fast = write_config(monkeypatch, dovecot_account, tmp_path / "fast", aliases=mailbox.aliases,
                        batch_size=20)
    scan(fast)
    assert public_fetches == []
    fast_ledger = ledger_of(contacts_json(capsys, fast))

    monkeypatch.setattr(mailbox_client, "imaplib_of", lambda client: None)
    public = write_config(monkeypatch, dovecot_account, tmp_path / "public",
                          aliases=mailbox.aliases, batch_size=20)
    with _records_of("agent.mailbox") as records:
        scan(public)
    contacts = contacts_json(capsys, public)
    assert ledger_of(contacts) == fast_ledger
    assert_ledger(contacts, mailbox, True)
    connections = set(public_fetches)
    assert len(public_fetches) > len(connections) >= 1  # several batches per connection
    fallbacks = [record for record in records
                 if "FETCH through IMAPClient.fetch on this connection" in record.getMessage()]
    assert len(fallbacks) == len(connections)  # said once per connection
    assert all(record.levelno == logging.DEBUG for record in fallbacks)
