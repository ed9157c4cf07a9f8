"""Bad input: a corpus of awkward real-world messages (tests/data/*.eml) scanned from real
servers, fuzzed scan batches, and bad files around the program (template, database, disk).

Every corpus file is APPENDed to Dovecot and to pymap (both store every one), scanned with
`followup -v scan`, and must be either counted correctly (contact, direction, time, name,
subject) or not counted with its reason in the scan summary; repairs are listed there too.
To add a file: drop it into tests/data/ and describe the outcome in CORPUS below (a test
fails for a file without an entry).

Covered elsewhere: Hypothesis fuzzing of the header parser and the address normaliser
(tests/test_headers.py: ``parse_message`` and ``normalise_address`` never raise at all, on
arbitrary bytes and on structured header blocks; normalisation is idempotent), bad config
files (tests/test_config.py, tests/test_doctor.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.classify import process_batch
from agent.errors import StoreError
from agent.mailbox.records import FetchedHeader
from agent.scan import ScanSummary
from agent.store import Store
from tests.kit import ME, iso, message, run_cli, write_config
from tests.mailgen import realistic
from tests.servers.account import ImapAccount

DATA = Path(__file__).resolve().parent / "data"
NOW_TEXT = "2026-03-01T07:30:00Z"
NOW = datetime(2026, 3, 1, 7, 30, tzinfo=UTC)
INTERNALDATE = datetime(2026, 2, 20, 12, 0, tzinfo=UTC)  # the server's arrival time
NO_COUNTERPART = "no counterpart (no usable From/To, or only your own addresses)"
# two_way off: one message makes a contact.
ONE_WAY = "[policy]\ntwo_way = false\n"


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 2, day, hour, minute, tzinfo=UTC)


@dataclass(frozen=True)
class Case:
    """What scanning one corpus file must lead to."""

    why: str  # the real-world shape it stands for
    sent: bool = False  # planted in Sent (the user wrote it) instead of INBOX
    counted: tuple[str, ...] = ()  # contact addresses (keys) it creates
    when: datetime | None = None  # their last exchange
    names: dict[str, str] = field(default_factory=dict)
    subject: str | None = None
    not_counted: str | None = None  # the reason `-v scan` prints
    repaired: tuple[str, ...] = ()  # reasons `-v scan` prints as repaired
    # Where a server stores the message differently: kind → fields that differ.
    servers: dict[str, dict[str, Any]] = field(default_factory=dict)

    def on(self, kind: str) -> Case:
        return dataclasses.replace(self, **self.servers.get(kind, {}))


CORPUS: dict[str, Case] = {
    "charset-unknown.eml": Case(
        "a charset no codec knows, in encoded words and Content-Type",
        counted=("kahless@qonos.example",), when=at(9, 8, 15),
        names={"kahless@qonos.example": "Kahless der Große"}, subject="Qapla' und Grüße",
        repaired=("From", "Subject")),
    "charset-wrong-declared.eml": Case(
        "Latin-1 bytes declared as us-ascii / utf-8",
        counted=("juergen.mueller@example.de",), when=at(9, 9),
        names={"juergen.mueller@example.de": "Jürgen Müller"}, subject="Grüße aus Köln",
        repaired=("From", "Subject")),
    "undeclared-8bit-latin1.eml": Case(
        "raw Latin-1 bytes in the header, no encoding declared",
        counted=("joerg@weiss.example",), when=at(9, 10),
        names={"joerg@weiss.example": "Jörg Weiß"}, subject="Übergabe der Bilder für Köln",
        repaired=("header",)),
    "undeclared-8bit-utf8.eml": Case(
        "raw UTF-8 in the header (RFC 6532 style)",
        counted=("soeren@baecker.example",), when=at(9, 11),
        names={"soeren@baecker.example": "Sören Bäcker"}, subject="Grüße aus München ☀"),
    "encoded-words-broken.eml": Case(
        "unterminated encoded word in From, non-base64 B word, spaces inside a B word",
        counted=("anna.berg@example.net",), when=at(9, 12),
        subject="=?utf-8?B?!!!nicht base64!!!?= und Hallo Welt =?utf-8?Q?halb",
        repaired=("Subject",)),
    "encoded-word-comma.eml": Case(
        "a comma inside an encoded display name must not split the address",
        counted=("hans.mueller@example.de",), when=at(9, 13),
        names={"hans.mueller@example.de": "Müller, Hans"}, subject="Angebot, gern geschehen"),
    "from-missing.eml": Case("no From header at all", not_counted=NO_COUNTERPART),
    "from-name-only.eml": Case("a From with a name and no address",
                               not_counted=NO_COUNTERPART, repaired=("From",)),
    "addresses-empty.eml": Case("From: <>, an empty To and a Cc of commas",
                                not_counted=NO_COUNTERPART),
    "from-two-headers.eml": Case(
        "two From headers: the first one counts",
        counted=("sabine@fischer.example",), when=at(10, 16)),
    "date-missing.eml": Case(
        "no Date: the server's INTERNALDATE is used",
        counted=("lena.koch@studio-elbe.de",), when=INTERNALDATE, repaired=("Date",)),
    "date-garbage.eml": Case(
        "an unparseable Date", counted=("ralf.braun@agentur.example",), when=INTERNALDATE,
        repaired=("Date",)),
    "date-far-future.eml": Case(
        "a Date in 2100", counted=("zeit@zukunft.example",), when=INTERNALDATE,
        repaired=("Date",)),
    "date-1970.eml": Case(
        "a Date of 1 Jan 1970 (a client with an empty clock battery)",
        counted=("uhr@batterie-leer.example",), when=INTERNALDATE, repaired=("Date",)),
    "date-bad-zone.eml": Case(
        "an impossible zone offset (+9900): the time is off by up to a day, so INTERNALDATE",
        counted=("heike.lange@example.org",), when=INTERNALDATE, repaired=("Date",)),
    "date-obsolete.eml": Case(
        "obsolete syntax: two-digit year, named zone, a space before the colon",
        counted=("grace.evans@acme.co.uk",), when=at(9, 19, 3)),
    "message-id-shared-1.eml": Case(
        "a Message-ID a broken client gives every message",
        counted=("tobias@hartmann.example",), when=at(10, 7), subject="Angebot"),
    "message-id-shared-2.eml": Case(
        "… and a different message with the same Message-ID",
        counted=("claudia@neumann.example",), when=at(11, 7), subject="Rechnung"),
    "header-line-1mb.eml": Case(
        "a 1 MB References line and a 96 kB Subject line, unfolded",
        counted=("baerbel@jaeger.example",), when=at(10, 8),
        names={"baerbel@jaeger.example": "Bärbel Jäger"},
        repaired=("Subject", "References")),
    "nul-bytes.eml": Case(
        "NUL bytes in the display name and the subject",
        counted=("uwe@zimmermann.example",), when=at(10, 9),
        names={"uwe@zimmermann.example": "Uwe Zimmermann"}, subject="Null bytes im Betreff",
        # Dovecot stores NUL as 0x80, which reads as "€" in windows-1252: a server's
        # repair we cannot tell from a real euro sign.
        servers={"dovecot": {"names": {"uwe@zimmermann.example": "Uwe€ Zimmermann"},
                             "subject": "Null€bytes€im Betreff", "repaired": ("header",)}}),
    "group-syntax.eml": Case(
        "sent to a named group, with an empty undisclosed-recipients group in Cc",
        sent=True, counted=("lena.berger@studio-elbe.de", "matthias@studio-elbe.de"),
        when=at(10, 10), names={"matthias@studio-elbe.de": "Matthias Groß"}),
    "group-undisclosed-bcc.eml": Case(
        "sent to undisclosed-recipients with the real recipient in Bcc",
        sent=True, counted=("oezlem@yilmaz.example",), when=at(10, 11)),
    "recipients-300.eml": Case(
        "sent to 300 recipients on folded lines",
        sent=True, counted=tuple(f"gast{i:03d}@hochzeit.example" for i in range(300)),
        when=at(11, 8), subject="Save the date"),
    "bare-lf.eml": Case("LF line ends instead of CRLF",
                        counted=("jens@koehler.example",), when=at(10, 14)),
    "header-only.eml": Case("a header without body or empty line",
                            counted=("franziska@lange.example",), when=at(10, 15),
                            subject="Nur Kopf"),
    "address-utf8.eml": Case(
        "an internationalised address (UTF-8 local part and domain)",
        counted=("jürgen@bücher.example",), when=at(11, 9),
        names={"jürgen@bücher.example": "Jürgen Groß"}),
    "comments-and-folding.eml": Case(
        "comments around the address, a folded From, Subject and Date",
        counted=("kaethe.weiss@example.com",), when=at(11, 10),
        subject="Gefaltete Betreffzeile"),
}


# --------------------------------------------------------------------------- helpers


def plant(account: ImapAccount, name: str) -> None:
    folder = account.sent_folder if CORPUS[name].sent else "INBOX"
    account.append(folder, (DATA / name).read_bytes(), flags=("\\Seen",), when=INTERNALDATE)


def scan_verbose(capsys: pytest.CaptureFixture[str]) -> tuple[dict[str, int], dict[str, int]]:
    """Run `followup -v scan`; the "not counted" and "repaired" reasons it prints."""
    code, out, err = run_cli(["--now", NOW_TEXT, "-v", "scan"], capsys)
    assert code == 0, err
    assert "Traceback" not in out + err
    not_counted: dict[str, int] = {}
    repaired: dict[str, int] = {}
    for line in out.splitlines():
        for prefix, into in (("  not counted: ", not_counted), ("  repaired: ", repaired)):
            if line.startswith(prefix):
                count, _, reason = line.removeprefix(prefix).partition(" × ")
                into[reason] = int(count)
    return not_counted, repaired


def contacts(capsys: pytest.CaptureFixture[str]) -> dict[str, dict[str, Any]]:
    code, out, err = run_cli(["--now", NOW_TEXT, "contacts", "--json"], capsys)
    assert code == 0, err
    return {c["email"]: c for c in json.loads(out)}


def check_contacts(found: dict[str, dict[str, Any]], name: str, kind: str) -> None:
    case = CORPUS[name].on(kind)
    assert sorted(found) == sorted(case.counted), f"{name} ({case.why})"
    direction = "out" if case.sent else "in"
    for address in case.counted:
        contact = found[address]
        assert contact["last_direction"] == direction, (name, contact)
        assert contact["last_exchange"] == iso(case.when or NOW), (name, contact)
        assert contact["messages_out" if case.sent else "messages_in"] == 1, (name, contact)
        if address in case.names:
            assert contact["name"] == case.names[address], (name, contact)
        if case.subject is not None:
            assert contact["last_subject"] == case.subject, (name, contact)
        assert contact["last_subject"].isprintable(), (name, contact)
        assert contact["name"].isprintable(), (name, contact)
        assert len(contact["last_subject"]) <= 500


# --------------------------------------------------------------------------- the corpus


def test_every_corpus_file_has_an_expected_outcome() -> None:
    files = sorted(p.name for p in DATA.glob("*.eml"))
    assert files == sorted(CORPUS), "describe each tests/data/*.eml in CORPUS"
    assert any((DATA / name).stat().st_size > 1_000_000 for name in files)
    assert any(b"\x00" in (DATA / name).read_bytes() for name in files)


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_corpus_file_is_counted_correctly_or_skipped_with_a_reason(
        imap_account: ImapAccount, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    case = CORPUS[name].on(imap_account.kind)
    plant(imap_account, name)
    write_config(monkeypatch, imap_account, tmp_path, extra=ONE_WAY)
    not_counted, repaired = scan_verbose(capsys)
    if case.not_counted:
        assert not_counted == {case.not_counted: 1}, f"{name} ({case.why})"
    else:
        assert not_counted == {}, f"{name} ({case.why})"
    assert sorted(repaired) == sorted(case.repaired), f"{name} ({case.why})"
    check_contacts(contacts(capsys), name, imap_account.kind)


def test_the_whole_corpus_in_one_mailbox(dovecot_account: ImapAccount, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """All files at once (plus the same message copied to a second folder): the summary
    adds up and the ledger is the union of the single-file outcomes."""
    for name in sorted(CORPUS):
        plant(dovecot_account, name)
    dovecot_account.create_folder("Archiv")
    dovecot_account.append("Archiv", (DATA / "message-id-shared-1.eml").read_bytes(),
                           when=INTERNALDATE + timedelta(days=1))
    write_config(monkeypatch, dovecot_account, tmp_path, extra=ONE_WAY)
    code, out, err = run_cli(["--now", NOW_TEXT, "-v", "scan"], capsys)
    assert code == 0, err
    planted = len(CORPUS) + 1
    assert f"{planted} new message(s)" in out
    skipped = [c for c in CORPUS.values() if c.not_counted]
    assert f"{len(skipped)} not counted" in out
    assert f"  not counted: {len(skipped)} × {NO_COUNTERPART}" in out
    found = contacts(capsys)
    assert sorted(found) == sorted({a for c in CORPUS.values() for a in c.counted})
    for name, case in CORPUS.items():
        check_contacts({a: found[a] for a in case.counted}, name, "dovecot")
    # The copy in Archiv is the same message: counted once.
    assert found["tobias@hartmann.example"]["messages_in"] == 1


def test_shared_message_id_counts_both_messages_and_a_copy_once(
        dovecot_account: ImapAccount, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Two different messages from one sender sharing a Message-ID both count; the same
    message in two folders counts once."""
    shared = "<1@localhost>"
    first = message(sender="Tobias <tobias@hartmann.example>", subject="Eins",
                    when=at(10, 7), message_id="1@localhost".removesuffix("@localhost"))
    first = first.replace(b"<1@test>", shared.encode())
    second = message(sender="Tobias <tobias@hartmann.example>", subject="Zwei",
                     when=at(12, 7), message_id="x").replace(b"<x@test>", shared.encode())
    dovecot_account.create_folder("Archiv")
    dovecot_account.append("INBOX", first, when=INTERNALDATE)
    dovecot_account.append("INBOX", second, when=INTERNALDATE)
    dovecot_account.append("Archiv", first, when=INTERNALDATE)
    write_config(monkeypatch, dovecot_account, tmp_path, extra=ONE_WAY)
    scan_verbose(capsys)
    tobias = contacts(capsys)["tobias@hartmann.example"]
    assert tobias["messages_in"] == 2
    assert tobias["last_subject"] == "Zwei"
    assert tobias["last_exchange"] == iso(at(12, 7))


# --------------------------------------------------------------------------- fuzzed batches


_flags = st.frozensets(st.sampled_from(["\\seen", "\\draft", "\\flagged", "$junk"]))
_headers = st.one_of(
    st.binary(max_size=600),
    st.sampled_from([(DATA / name).read_bytes()[:4000] for name in sorted(CORPUS)]),
    st.builds(lambda raw, cut: raw[:cut],
              st.sampled_from([(DATA / n).read_bytes()[:2000] for n in sorted(CORPUS)]),
              st.integers(0, 2000)),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(_headers, _flags, st.one_of(st.none(), st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)))),
    max_size=20))
def test_scan_batches_of_garbage_never_raise_and_always_add_up(
        items: list[tuple[bytes, frozenset[str], datetime | None]]) -> None:
    """process_batch (parse + classify one FETCH batch) on any bytes: every message is
    either counted or skipped with a reason, and every exchange is well-formed."""
    fetched = [FetchedHeader(uid, when, raw, flags)
               for uid, (raw, flags, when) in enumerate(items, 1)]
    summary = ScanSummary()
    messages, rows, _lists, _sent, _held = process_batch(fetched, frozenset({"me@example.org"}),
                                                         NOW, summary)
    assert len(messages) == len(fetched)
    assert summary.counted + sum(summary.skipped.values()) == len(fetched)
    counted_keys = {m.msg_key for m in messages if m.skipped is None}
    for row in rows:
        assert row.msg_key in counted_keys
        assert row.direction in ("in", "out")
        assert row.time.tzinfo is not None
        assert row.address and row.address != "me@example.org"
    for m in messages:
        if "\\draft" in fetched[m.uid - 1].flags:
            assert m.skipped == "draft"


# --------------------------------------------------------------------------- bad files


def _one_line_error(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("command", [["scan"], ["contacts", "--json"]])
def test_directory_in_place_of_the_database(dovecot_account: ImapAccount, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str],
                                            command: list[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(monkeypatch, dovecot_account, tmp_path, extra=ONE_WAY)
    (tmp_path / "followup.db").mkdir()
    code, _out, err = run_cli(["--now", NOW_TEXT, *command], capsys)
    assert code == 1
    line = _one_line_error(err)
    assert str(tmp_path / "followup.db") in line
    assert list((tmp_path / "followup.db").iterdir()) == []


@pytest.mark.parametrize("content", [b"this is my shopping list\n" * 100,
                                     b"SQLite format 3\x00" + b"\xff" * 4000],
                         ids=["text", "damaged"])
@pytest.mark.parametrize("command", [["scan"], ["contacts", "--json"]])
def test_not_a_database_file(dovecot_account: ImapAccount, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str], content: bytes,
                             command: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(monkeypatch, dovecot_account, tmp_path, extra=ONE_WAY)
    db = tmp_path / "followup.db"
    db.write_bytes(content)
    code, _out, err = run_cli(["--now", NOW_TEXT, *command], capsys)
    assert code == 1
    line = _one_line_error(err)
    assert "is not a followup database or is damaged" in line, line
    assert db.read_bytes() == content  # left as it was, for the user to rescue


def test_database_from_a_newer_followup(dovecot_account: ImapAccount, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(monkeypatch, dovecot_account, tmp_path, extra=ONE_WAY)
    db = tmp_path / "followup.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE future (x)")
    conn.execute("PRAGMA user_version = 999")
    conn.close()
    code, _out, err = run_cli(["--now", NOW_TEXT, "scan"], capsys)
    assert code == 1
    assert "newer followup" in _one_line_error(err)
    conn = sqlite3.connect(db)
    try:  # untouched: no migration ran, no table was added
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 999
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == [("future",)]
    finally:
        conn.close()


def test_read_only_database_directory(dovecot_account: ImapAccount, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A database that cannot be written (a read-only bind mount, as root cannot be stopped
    by permissions): one line, no traceback."""
    dovecot_account.append("INBOX", message(sender="a@example.net"), when=INTERNALDATE)
    write_config(monkeypatch, dovecot_account, tmp_path / "data", extra=ONE_WAY)
    code, _out, err = run_cli(["--now", NOW_TEXT, "scan"], capsys)
    assert code == 0, err
    with read_only_mount(tmp_path / "data") as mounted:
        if not mounted:
            pytest.skip("cannot bind-mount read-only here (needs root)")
        code, _out, err = run_cli(["--now", NOW_TEXT, "scan"], capsys)
    assert code == 1
    line = _one_line_error(err)
    assert "followup.db" in line, line


@contextlib.contextmanager
def read_only_mount(directory: Path) -> Iterator[bool]:
    done = subprocess.run(["mount", "--bind", "-o", "ro", str(directory), str(directory)],
                          capture_output=True, check=False)
    if done.returncode != 0:
        yield False
        return
    try:
        # Older util-linux ignores "ro" on the first bind: remount to be sure.
        subprocess.run(["mount", "-o", "remount,bind,ro", str(directory)],
                       capture_output=True, check=False)
        yield True
    finally:
        subprocess.run(["umount", str(directory)], capture_output=True, check=True)


# --------------------------------------------------------------------------- full disk


@contextlib.contextmanager
def tiny_disk(directory: Path, size: str) -> Iterator[Callable[[str], None]]:
    """A tmpfs of ``size`` at ``directory`` (root only); yields a function to resize it."""
    directory.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs",
                           str(directory)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")

    def resize(new_size: str) -> None:
        subprocess.run(["mount", "-o", f"remount,size={new_size}", str(directory)],
                       capture_output=True, check=True)

    try:
        yield resize
    finally:
        subprocess.run(["umount", "-l", str(directory)], capture_output=True, check=False)


def _ledger(db: Path) -> list[Any]:
    conn = sqlite3.connect(db)
    try:
        return [conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall()
                for t in ("messages", "exchanges", "addresses", "folders")]
    finally:
        conn.close()


def _assert_nothing_half_written(db: Path) -> None:
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        for name, last_uid, newest in conn.execute(
                "SELECT f.name, f.last_uid, max(m.uid) FROM folders AS f LEFT JOIN messages "
                "AS m ON m.folder = f.name GROUP BY f.name"):
            assert last_uid == (newest or 0), (name, last_uid, newest)
    finally:
        conn.close()


def test_full_disk_during_a_scan(dovecot_account: ImapAccount, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The database lives on a tiny tmpfs: the scan stops with one clear line, the
    database is consistent, and after making room the next scan completes the ledger."""
    dovecot_account.append_many(realistic(5, 1500, now=NOW, sent=dovecot_account.sent_folder))
    reference = tmp_path / "reference"
    write_config(monkeypatch, dovecot_account, reference, extra=ONE_WAY)
    code, _out, err = run_cli(["--now", NOW_TEXT, "scan"], capsys)
    assert code == 0, err

    # An empty database and half of what the ledger adds to it: the disk fills up in the
    # middle of the scan.
    needed = (reference / "followup.db").stat().st_size
    with Store(tmp_path / "empty.db"):
        pass
    empty = (tmp_path / "empty.db").stat().st_size
    data = tmp_path / "small"
    # Each batch committed on its own here (every 5,000 messages or 2 s in use): the disk
    # fills after some commits.
    import agent.store.database

    monkeypatch.setattr(agent.store.database, "GROUP_ROWS", 100)
    with tiny_disk(data, f"{max((empty + (needed - empty) // 2) // 1024, 256)}k") as resize:
        write_config(monkeypatch, dovecot_account, data, batch_size=100, extra=ONE_WAY)
        code, _out, err = run_cli(["--now", NOW_TEXT, "scan"], capsys)
        assert code == 1
        line = _one_line_error(err)
        assert "is full" in line and "nothing was half-written" in line, line
        _assert_nothing_half_written(data / "followup.db")
        with Store(data / "followup.db") as store:
            # Stopped in the middle, kept the batches committed before.
            assert 0 < store.ledger.message_count() < 1500
        resize("64m")
        code, _out, err = run_cli(["--now", NOW_TEXT, "scan"], capsys)
        assert code == 0, err
        _assert_nothing_half_written(data / "followup.db")
        assert _ledger(data / "followup.db") == _ledger(reference / "followup.db")


def test_full_disk_simulated_with_max_page_count(dovecot_account: ImapAccount, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The same without privileges: SQLite's page limit makes every write fail as on a full
    disk, at whatever point the scan has reached."""
    import agent.store

    dovecot_account.append_many(realistic(6, 800, now=NOW, sent=dovecot_account.sent_folder))
    write_config(monkeypatch, dovecot_account, tmp_path, extra=ONE_WAY)
    original = agent.store.database.connect

    def limited(path: Path) -> sqlite3.Connection:
        conn = original(path)
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {max(pages, 40) + 5}")
        return conn

    monkeypatch.setattr(agent.store.database, "connect", limited)
    code, _out, err = run_cli(["--now", NOW_TEXT, "scan"], capsys)
    assert code == 1
    line = _one_line_error(err)
    assert "is full" in line and "nothing was half-written" in line, line
    _assert_nothing_half_written(tmp_path / "followup.db")
    monkeypatch.setattr(agent.store.database, "connect", original)
    code, _out, err = run_cli(["--now", NOW_TEXT, "scan"], capsys)
    assert code == 0, err
    with Store(tmp_path / "followup.db") as store:
        assert store.ledger.message_count() == 800


def test_store_error_for_full_disk_names_the_way_out(tmp_path: Path) -> None:
    with Store(tmp_path / "x.db") as store:
        store.database.conn.execute("PRAGMA max_page_count = 1")
        with pytest.raises(StoreError, match="is full; nothing was half-written"), \
                store.transaction() as conn:
            conn.execute("CREATE TABLE big (x)")
            conn.executemany("INSERT INTO big VALUES (?)", [("x" * 1000,)] * 100)


# --------------------------------------------------------------------------- bad template


def test_broken_user_templates_fall_back_with_one_warning_each(
        dovecot_account: ImapAccount, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A syntax error in the digest template and an unknown variable in the check-in
    template: the command still works with the defaults and names file and line."""
    account = dovecot_account
    for days, folder, sender, to in ((130, "INBOX", "Jana Roth <jana@example.net>", ME),
                                     (120, account.sent_folder, ME, "jana@example.net")):
        when = NOW - timedelta(days=days)
        account.append(folder, message(sender=sender, to=[to], subject="Fotos", when=when),
                       when=when)
    user = tmp_path / "templates"
    user.mkdir()
    (user / "digest.txt.j2").write_text("Hallo\n\n{% for p in picks %}\n{{ p.name }\n")
    (user / "checkin.txt.j2").write_text("Hallo,\n{{ nonsense.x }}\n")
    write_config(monkeypatch, account, tmp_path, extra=ONE_WAY)
    config = tmp_path / "config.toml"
    config.write_text(config.read_text() + f'\n[templates]\ndir = "{user}"\n')
    code, _out, err = run_cli(["--now", NOW_TEXT, "scan"], capsys)
    assert code == 0, err

    code, out, err = run_cli(["--now", NOW_TEXT, "digest", "--dry-run"], capsys)
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, err
    assert f"{user / 'digest.txt.j2'}, line " in warnings[0], warnings
    assert warnings[0].endswith("the default template was used")
    assert "jana@example.net" in out or "Jana" in out  # the default text, with the contact

    code, out, err = run_cli(["--now", NOW_TEXT, "drafts", "--dry-run"], capsys)
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, err
    assert f"{user / 'checkin.txt.j2'}, line 2" in warnings[0], warnings
    assert "nonsense" in warnings[0]
    assert "Traceback" not in err
