"""Check-in drafts: composing (names, language, threading, header safety), the life cycle on
Dovecot and pymap, an independent imaplib client reading Drafts, and nothing ever sent."""

from __future__ import annotations

import ast
import email
import functools
import imaplib
import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.policy import default as default_policy
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest

from agent import plan, service
from agent.config import Config, load_config
from agent.decisions import resolve
from agent.drafts import compose as drafts
from agent.drafts.names import first_name
from agent.errors import MailboxError
from agent.language import guess as guess_language
from agent.message import reply_subject
from agent.model import Contact, ContactState, Exchange
from agent.render import Renderer
from agent.store import Store
from agent.store.journal import Journal
from tests.kit import ME, make_config, make_contact, message, run_cli, write_config
from tests.servers.account import ImapAccount
from tests.servers.smtp import SmtpSink

NOW = datetime(2026, 11, 20, 6, 30, tzinfo=UTC)  # 07:30 in Berlin
NOW_TEXT = "2026-11-20T06:30:00Z"
TODAY = date(2026, 11, 20)
REPO = Path(__file__).resolve().parent.parent

JUERGEN = "juergen@example.de"  # overdue, replied in a thread, German
ANNA = "anna@example.co.uk"  # wrote last 20 days ago: a reply owed, English
CARLA = "carla@example.net"  # overdue, no Message-ID to reply to: template subject
BOB = "bob@example.net"  # recent: not due


def ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


# --------------------------------------------------------------------------- a small mailbox


def seed(account: ImapAccount) -> None:
    """Four people; both directions each (two_way), Jürgen's thread with umlauts."""
    sent = account.sent_folder
    no_id: Any = False  # support.message leaves Message-ID out when given False
    items: list[tuple[str, bytes, tuple[str, ...], datetime]] = [
        ("INBOX", message(sender=f"Jürgen Müller <{JUERGEN}>", subject="Angebot für Fotos",
                          when=ago(120), message_id="angebot"), ("\\Seen",), ago(120)),
        (sent, message(sender=f"Mia Example <{ME}>", to=[f"Jürgen Müller <{JUERGEN}>"],
                       subject="AW: Angebot für Fotos", when=ago(110),
                       message_id="reply1"), ("\\Seen",), ago(110)),
        (sent, message(sender=ME, to=[f"Anna Smith <{ANNA}>"], subject="Lunch?", when=ago(200),
                       message_id="lunch"), ("\\Seen",), ago(200)),
        ("INBOX", message(sender=f"Anna Smith <{ANNA}>", subject="Re: Lunch?", when=ago(20),
                          message_id="anna-lunch"), ("\\Seen",), ago(20)),
        ("INBOX", message(sender=f"Carla Rossi <{CARLA}>", subject="Hello again", when=ago(96),
                          message_id=no_id), ("\\Seen",), ago(96)),
        (sent, message(sender=ME, to=[f"Carla Rossi <{CARLA}>"], subject="Hello again",
                       when=ago(95), message_id=no_id), ("\\Seen",), ago(95)),
        ("INBOX", message(sender=f"Bob Recent <{BOB}>", subject="Recent", when=ago(10)),
         ("\\Seen",), ago(10)),
        (sent, message(sender=ME, to=[BOB], subject="Re: Recent", when=ago(9)), ("\\Seen",),
         ago(9)),
    ]
    account.append_many(items)


def setup(monkeypatch: pytest.MonkeyPatch, account: ImapAccount, tmp_path: Path,
          extra: str = "") -> Config:
    seed(account)
    return load_config(write_config(monkeypatch, account, tmp_path, extra=extra))


def in_drafts(account: ImapAccount) -> dict[int, tuple[frozenset[str], EmailMessage, bytes]]:
    """UID → (flags, parsed message, raw bytes) of everything in the Drafts folder."""
    with account.client() as client:
        client.select_folder(account.drafts_folder, readonly=True)
        uids = client.search("ALL")
        if not uids:
            return {}
        response = client.fetch(uids, ["FLAGS", "BODY.PEEK[]"])
    out = {}
    for uid, data in response.items():
        raw = bytes(data[b"BODY[]"])
        flags = frozenset(f.decode() if isinstance(f, bytes) else str(f) for f in data[b"FLAGS"])
        parsed = email.message_from_bytes(raw, policy=default_policy)
        assert isinstance(parsed, EmailMessage)
        out[int(uid)] = (flags, parsed, raw)
    return out


def by_recipient(account: ImapAccount) -> dict[str, EmailMessage]:
    found: dict[str, EmailMessage] = {}
    for _flags, parsed, _raw in in_drafts(account).values():
        address = parsed["To"].addresses[0].addr_spec
        assert address not in found, f"two drafts to {address}"
        found[address] = parsed
    return found


def delete_from_drafts(account: ImapAccount, uid: int) -> None:
    with account.client() as client:
        client.select_folder(account.drafts_folder)
        client.delete_messages([uid])
        client.expunge()


def records(config: Config) -> dict[str, Any]:
    """Address → the newest draft record."""
    with Store(config.storage.path) as store:
        return {r.address: r for r in store.journal.drafts()}


def contact_id(config: Config, address: str) -> int:
    with Store(config.storage.path) as store:
        return resolve(store, address)


def state_of(config: Config, address: str, now: datetime) -> ContactState:
    with Store(config.storage.path) as store:
        states = plan.decide(config, store, now)
    return next(s for s in states if address in s.contact.addresses)


# --------------------------------------------------------------------------- composing (no server)


# Jürgen, overdue, last written to 100 days ago in a thread: where composing tests start.
person = functools.partial(make_contact, 7, NOW - timedelta(days=100), addresses=[JUERGEN],
                           name="Jürgen Müller", subject="Angebot",
                           message_id="m1@example.de", messages=(2, 2))


def compose(contact: Contact, *, status: str = "overdue", language: str = "de",
            config: Config | None = None) -> drafts.Draft:
    config = config or make_config()
    state = ContactState(contact, status, TODAY, 90, "", 1.5)  # type: ignore[arg-type]
    draft = drafts.compose(config, state, language=language, language_reason="test", day=TODAY,
                           now=NOW, renderer=Renderer(config, language=language))
    assert draft is not None
    return draft


def parse(raw: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(raw, policy=default_policy)
    assert isinstance(parsed, EmailMessage)
    return parsed


def text_of(msg: EmailMessage) -> str:
    """The body as a reader shows it (lines end in \\n; the wire has CRLF)."""
    content = msg.get_content()
    assert isinstance(content, str)
    return content.replace("\r\n", "\n")


def header_names(raw: bytes) -> list[str]:
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    return [line.split(":", 1)[0] for line in head.split("\r\n") if line[:1] not in (" ", "\t")]


@pytest.mark.parametrize(("name", "address", "expected"), [
    ("Jürgen Müller", JUERGEN, "Jürgen"),
    ("Müller, Jürgen", JUERGEN, "Jürgen"),
    ("Dr. Jürgen Müller", JUERGEN, "Jürgen"),
    ("JÜRGEN MÜLLER", JUERGEN, "Jürgen"),
    ("Anna-Lena Schmidt (ACME)", "a@x.org", "Anna-Lena"),
    ("", "juergen.mueller@example.de", "Juergen"),
    ("info", "info@firma.example", None),
    ("", "info@firma.example", None),
    ("", "jmueller@example.de", None),
    ("jmueller", "jmueller@example.de", None),
    ("Team Acme", "team@acme.example", None),
    ("Acme GmbH", "kontakt@acme.example", None),
    ("Kundenservice Acme", "service@acme.example", None),
    ("J. Müller", "j@example.de", None),
    ("Frau Müller", "m@example.de", None),
    ("Dr. Müller", "m@example.de", None),
    ("someone@example.org", "someone@example.org", None),
])
def test_first_name(name: str, address: str, expected: str | None) -> None:
    assert first_name(name, address) == expected


@pytest.mark.parametrize(("subject", "expected"), [
    ("Angebot", "Re: Angebot"),
    ("Re: Angebot", "Re: Angebot"),
    ("RE: Re: Angebot", "Re: Angebot"),
    ("AW: Angebot", "Re: Angebot"),
    ("Aw: AW: Re: Angebot", "Re: Angebot"),
    ("WG: Angebot", "Re: Angebot"),
    ("Fwd: Re[2]: Angebot", "Re: Angebot"),
    ("Rechnung März", "Re: Rechnung März"),
    ("Report", "Re: Report"),
    ("Re:", ""),
])
def test_reply_subject_never_stacks(subject: str, expected: str) -> None:
    assert reply_subject(subject) == expected


def test_german_check_in_greets_by_first_name_and_replies_in_the_thread() -> None:
    draft = compose(person(subject="AW: Angebot für Fotos"), language="de")
    msg = parse(draft.raw)
    assert draft.kind == "checkin"
    assert msg["Subject"] == "Re: Angebot für Fotos"
    assert msg["In-Reply-To"] == "<m1@example.de>"
    assert msg["References"] == "<m1@example.de>"
    # Nothing tells the recipient a program wrote it: no private header, a neutral id.
    assert not [name for name in msg if name.lower().startswith("x-")]
    assert msg["From"].addresses[0].display_name == "Mia Example"
    assert msg["From"].addresses[0].addr_spec == ME
    assert msg["To"].addresses[0].display_name == "Jürgen Müller"
    assert msg["To"].addresses[0].addr_spec == JUERGEN
    assert msg["MIME-Version"] == "1.0"
    assert msg["Message-ID"] == f"<{draft.message_id}>"
    assert draft.message_id.endswith("@example.org") and "followup" not in draft.message_id
    assert re.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}@example\.org",
                        draft.message_id)
    assert parsedate_to_datetime(msg["Date"]) == NOW
    assert msg.get_content_type() == "text/plain"
    assert msg.get_content_charset() == "utf-8"
    body = text_of(msg)
    assert body.startswith("Hallo Jürgen,\n\n")
    assert "vor 100 Tagen („Angebot für Fotos“)" in body  # the subject without its "AW:"
    assert body.rstrip().endswith("Viele Grüße\nMia")
    assert b"\n" not in draft.raw.replace(b"\r\n", b"")  # CRLF everywhere


def test_english_reply_draft_for_a_waiting_contact() -> None:
    contact = person(name="Anna Smith", addresses=[ANNA], subject="Lunch?", direction="in")
    draft = compose(contact, status="waiting", language="en")
    msg = parse(draft.raw)
    assert draft.kind == "reply"
    assert msg["Subject"] == "Re: Lunch?"
    body = text_of(msg)
    assert body.startswith("Hi Anna,\n\nThank you for your message of 12 August 2026 (“Lunch?”)")
    assert "Best wishes,\nMia" in body


def test_without_a_thread_the_template_subject_and_a_neutral_greeting() -> None:
    contact = person(name="info", addresses=["info@firma.example"], subject="Anfrage",
                     message_id=None)
    for language, subject, greeting in (("de", "Lange nichts voneinander gehört", "Guten Tag,"),
                                        ("en", "Catching up", "Hello,")):
        msg = parse(compose(contact, language=language).raw)
        assert msg["Subject"] == subject
        assert msg["In-Reply-To"] is None and msg["References"] is None
        assert text_of(msg).startswith(greeting + "\n")
        assert "info," not in text_of(msg)


def test_names_and_subjects_cannot_inject_headers() -> None:
    evil_name = "Jürgen\r\nBcc: evil@x.example"
    evil_subjects = [
        "=?utf-8?q?Hi=0D=0ABcc:_evil@x.example?=",
        "Hi =?utf-8?b?DQpCY2M6IGV2aWxAeC5leGFtcGxl?= there",
        "plain\r\nBcc: evil@x.example",
        "Angebot\nX-Evil: 1",
    ]
    for subject in evil_subjects:
        draft = compose(person(name=evil_name, subject=subject), language="en")
        names = header_names(draft.raw)
        assert "Bcc" not in names and "X-Evil" not in names, draft.raw
        assert sorted(names) == sorted([
            "From", "To", "Subject", "Date", "Message-ID", "In-Reply-To", "References",
            "Content-Type", "Content-Transfer-Encoding", "MIME-Version"])
        msg = parse(draft.raw)
        # What a reader decodes is the text itself, on one line, never a second header.
        assert "\r" not in msg["Subject"] and "\n" not in msg["Subject"]
        assert msg["Subject"].startswith("Re: ")
        if subject.startswith("=?"):
            assert msg["Subject"] == f"Re: {subject}"  # shown literally, not decoded
        to = msg["To"].addresses
        assert len(to) == 1 and to[0].addr_spec == JUERGEN
        assert "\n" not in to[0].display_name


def test_long_umlaut_subjects_and_names_survive_folding() -> None:
    subject = "Fotos für die Präsentation " + "Jürgen Weiß Öl Straße " * 12
    name = "Jürgen-Ölaf Weiß-Größenwahn " * 5
    raw = compose(person(name=name.strip(), subject=subject.strip()), language="de").raw
    msg = parse(raw)
    assert msg["Subject"] == "Re: " + " ".join(subject.split())
    # Decoded by the RFC 2047 rules (Python's address parser keeps the folding whitespace
    # between encoded words of a display name, which the RFC says to drop).
    folded = raw.split(b"\r\nTo: ", 1)[1].split(b"\r\nSubject:", 1)[0].decode("ascii")
    assert str(make_header(decode_header(folded))) == f"{' '.join(name.split())} <{JUERGEN}>"
    for line in compose(person(name=name.strip(), subject=subject.strip())).raw.split(b"\r\n"):
        assert len(line) <= 998


def test_language_precedence(tmp_path: Path) -> None:
    rule = '\n[[policy.rule]]\nmatch = "*@example.de"\nlanguage = "en"\n'
    with Store(tmp_path / "db.sqlite") as store:
        plain = make_config(language="en")
        ruled = make_config(extra=rule, language="en")
        assert drafts.choose_language(plain, store, person(language="de"))[0] == "de"
        assert drafts.choose_language(ruled, store, person(language="de"))[0] == "de"
        assert drafts.choose_language(ruled, store, person()) == ("en", "a [[policy.rule]]")
        assert drafts.choose_language(plain, store, person())[0] == "de"  # .de address
        other = person(name="Ann", addresses=["ann@example.com"])
        assert drafts.choose_language(plain, store, other) == ("en", "[digest] language")
        assert drafts.choose_language(make_config(language="de"), store, other)[0] == "de"

    def guess(contact: Contact, subjects: Sequence[str] = ()) -> str | None:
        recent = [Exchange(contact.email, "in", NOW, s, "INBOX", None) for s in subjects]
        found = guess_language(contact, recent)
        return found[0] if found else None

    com = person(name="Ann", addresses=["ann@example.com"])
    assert guess(com) is None
    assert guess(replace(com, language_hint="de")) == "de"
    assert guess(replace(com, language_hint="fr")) == "en"
    assert guess(com, ["AW: Termin"]) == "de"
    assert guess(com, ["Grüße aus Köln"]) == "de"
    assert guess(com, ["Re: lunch"]) is None
    assert guess(person(name="Ann", addresses=["ann@example.co.uk"])) == "en"
    assert guess(person(name="Ann", addresses=["ann@example.at"])) == "de"


def test_drafts_module_cannot_send_mail() -> None:
    """Drafts only: the package imports nothing that could send (SPEC non-negotiable)."""
    imported = set()
    for path in (REPO / "agent" / "drafts").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                imported.add(node.module or "")
                imported |= {f"{node.module}.{alias.name}" for alias in node.names}
    assert len(list((REPO / "agent" / "drafts").glob("*.py"))) >= 4
    assert not {name for name in imported
                if "smtplib" in name or "sendmail" in name or name.endswith(".digest")}


# --------------------------------------------------------------------------- on real servers


def test_drafts_land_in_drafts_with_headers_threading_and_umlauts(
        imap_account: ImapAccount, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = setup(monkeypatch, imap_account, tmp_path)
    result = service.run_drafts(config, NOW)

    assert {d.address for d in result.created} == {JUERGEN, ANNA, CARLA}
    assert result.skipped == []
    assert result.folder == imap_account.drafts_folder
    found = in_drafts(imap_account)
    assert len(found) == 3
    for flags, _parsed, _raw in found.values():
        assert {"\\Draft", "\\Seen"} <= flags
    mails = by_recipient(imap_account)

    juergen = mails[JUERGEN]
    assert juergen["From"].addresses[0].addr_spec == ME
    assert juergen["From"].addresses[0].display_name == "Mia Example"
    assert juergen["To"].addresses[0].display_name == "Jürgen Müller"
    assert juergen["Subject"] == "Re: Angebot für Fotos"
    assert juergen["In-Reply-To"] == "<reply1@test>"
    assert juergen["References"] == "<reply1@test>"
    assert not [name for name in juergen if name.lower().startswith("x-followup")]
    assert text_of(juergen).startswith("Hallo Jürgen,\n\nlange nichts voneinander gehört")
    assert "vor 110 Tagen („Angebot für Fotos“)" in text_of(juergen)

    anna = mails[ANNA]
    assert anna["Subject"] == "Re: Lunch?"
    assert anna["In-Reply-To"] == "<anna-lunch@test>"
    assert text_of(anna).startswith("Hi Anna,\n\nThank you for your message")

    carla = mails[CARLA]
    assert carla["Subject"] == "Catching up"
    assert carla["In-Reply-To"] is None
    assert text_of(carla).startswith("Hi Carla,\n\nIt’s been a while")

    # The store knows each draft by the UID the server gave it (APPENDUID).
    known = records(config)
    assert {r.state for r in known.values()} == {"pending"}
    assert {r.uid for r in known.values()} == set(found)
    assert {r.kind for r in known.values()} == {"checkin", "reply"}
    assert known[ANNA].kind == "reply"

    # A scan never counts a draft as an exchange.
    before = state_of(config, JUERGEN, NOW).contact
    service.run_scan(config, now=NOW + timedelta(hours=1))
    assert state_of(config, JUERGEN, NOW).contact == before


def test_no_duplicates_the_same_day_or_the_next(imap_account: ImapAccount,
                                                tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    config = setup(monkeypatch, imap_account, tmp_path)
    service.run_drafts(config, NOW)
    first = set(in_drafts(imap_account))

    again = service.run_drafts(config, NOW + timedelta(hours=3))
    assert again.created == []
    assert {s.address: s.reason for s in again.skipped} == {
        a: f"the draft of {TODAY.isoformat()} is still in Drafts" for a in (JUERGEN, ANNA, CARLA)}
    assert again.reconciled is not None and len(again.reconciled.pending) == 3

    tomorrow = service.run_drafts(config, NOW + timedelta(days=1))
    assert tomorrow.created == []
    assert set(in_drafts(imap_account)) == first
    assert len(records(config)) == 3


def test_at_most_max_per_day(dovecot_account: ImapAccount, tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    config = setup(monkeypatch, dovecot_account, tmp_path, extra="\n[drafts]\nmax_per_day = 1\n")
    day1 = service.run_drafts(config, NOW)
    # One check-in (the most overdue), and the reply owed, which has its own cap (issue 15).
    assert [(d.address, d.kind) for d in day1.created] == [(JUERGEN, "checkin"),
                                                           (ANNA, "reply")]
    assert {s.reason for s in day1.skipped} == {"[drafts] max_per_day = 1 reached"}
    assert service.run_drafts(config, NOW + timedelta(hours=2)).created == []

    day2 = service.run_drafts(config, NOW + timedelta(days=1))
    assert [d.address for d in day2.created] == [CARLA]
    assert len(in_drafts(dovecot_account)) == 3


def test_sent_draft_refreshes_the_contact(imap_account: ImapAccount, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    config = setup(monkeypatch, imap_account, tmp_path)
    service.run_drafts(config, NOW)
    draft = records(config)[JUERGEN]

    # The user sends it from their mail client: the draft leaves Drafts, a copy lands in Sent.
    delete_from_drafts(imap_account, draft.uid)
    sent_at = NOW + timedelta(hours=3)
    imap_account.append(imap_account.sent_folder, message(
        sender=f"Mia Example <{ME}>", to=[f"Jürgen Müller <{JUERGEN}>"],
        subject="Re: Angebot für Fotos", when=sent_at, message_id="sent-checkin",
        headers=[("In-Reply-To", "<reply1@test>")]), flags=["\\Seen"], when=sent_at)

    later = NOW + timedelta(days=1)
    result = service.run_drafts(config, later)  # scans first, then settles
    assert result.reconciled is not None
    assert [r.address for r in result.reconciled.sent] == [JUERGEN]
    assert result.reconciled.declined == []
    assert records(config)[JUERGEN].state == "sent"

    state = state_of(config, JUERGEN, later)
    assert state.status == "ok"
    assert state.contact.last_exchange == sent_at
    assert state.contact.snooze_until is None
    assert JUERGEN not in {d.address for d in result.created}
    assert set(by_recipient(imap_account)) == {ANNA, CARLA}


def test_deleted_draft_snoozes_the_contact(imap_account: ImapAccount, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    config = setup(monkeypatch, imap_account, tmp_path)
    service.run_drafts(config, NOW)
    known = records(config)
    delete_from_drafts(imap_account, known[CARLA].uid)
    # Anna's snooze set by the user runs longer than snooze_days: it must stay.
    with Store(config.storage.path) as store:
        store.people.set_decision(contact_id(config, ANNA), snooze_until=date(2027, 6, 1))
    delete_from_drafts(imap_account, known[ANNA].uid)

    later = NOW + timedelta(days=1)
    result = service.run_drafts(config, later)
    assert result.reconciled is not None
    declined = {r.address: until for r, until in result.reconciled.declined}
    assert declined == {CARLA: TODAY + timedelta(days=1 + 30), ANNA: date(2027, 6, 1)}
    assert [r.address for r in result.reconciled.pending] == [JUERGEN]
    assert records(config)[CARLA].state == "declined"

    state = state_of(config, CARLA, later)
    assert state.status == "snoozed"
    assert state.contact.snooze_until == TODAY + timedelta(days=31)
    assert result.created == []
    # And in a week: still snoozed, still no new draft.
    assert service.run_drafts(config, NOW + timedelta(days=8)).created == []
    assert set(by_recipient(imap_account)) == {JUERGEN}


@pytest.mark.parametrize("new_id", [False, True], ids=["same-message-id", "new-message-id"])
def test_edited_draft_is_still_pending(imap_account: ImapAccount, tmp_path: Path,
                                       new_id: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    config = setup(monkeypatch, imap_account, tmp_path)
    service.run_drafts(config, NOW)
    original = records(config)[JUERGEN]

    # A client saves an edited draft as a new message (a new UID; Gmail also gives it a new
    # Message-ID) and removes the old one.
    saved = NOW + timedelta(hours=1)
    raw = message(sender=f"Mia Example <{ME}>", to=[f"Jürgen Müller <{JUERGEN}>"],
                  subject="Re: Angebot für Fotos", when=saved, message_id="edited",
                  body="Hallo Jürgen, geändert.\r\n")
    if not new_id:
        raw = raw.replace(b"<edited@test>", f"<{original.message_id}>".encode())
    imap_account.append(imap_account.drafts_folder, raw, flags=["\\Draft", "\\Seen"],
                        when=saved)
    delete_from_drafts(imap_account, original.uid)

    result = service.run_drafts(config, NOW + timedelta(days=1))
    assert result.reconciled is not None
    assert JUERGEN in {r.address for r in result.reconciled.moved}
    assert result.reconciled.declined == [] and result.reconciled.sent == []
    now_known = records(config)[JUERGEN]
    assert now_known.state == "pending" and now_known.uid != original.uid
    assert state_of(config, JUERGEN, NOW + timedelta(days=1)).contact.snooze_until is None
    assert result.created == []
    assert len(in_drafts(imap_account)) == 3


def test_append_then_crash_before_recording_makes_no_duplicate(
        dovecot_account: ImapAccount, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = setup(monkeypatch, dovecot_account, tmp_path)

    def crash(*args: object, **kwargs: object) -> int:
        raise RuntimeError("killed between APPEND and recording")

    # A fault a real server cannot produce: the process dies right after the APPEND, before
    # it could confirm the draft it recorded (by Message-ID) just before.
    with monkeypatch.context() as patch, pytest.raises(RuntimeError):
        patch.setattr(Journal, "confirm_draft", crash)
        service.run_drafts(config, NOW)
    assert len(in_drafts(dovecot_account)) == 1
    assert {r.state for r in records(config).values()} == {"appending"}

    result = service.run_drafts(config, NOW + timedelta(minutes=5))
    assert result.reconciled is not None and len(result.reconciled.confirmed) == 1
    assert len(result.created) == 2
    assert len(in_drafts(dovecot_account)) == 3
    assert len(by_recipient(dovecot_account)) == 3  # one each
    assert {r.state for r in records(config).values()} == {"pending"}
    assert service.run_drafts(config, NOW + timedelta(hours=1)).created == []


def test_cli_dry_run_prints_and_changes_nothing(dovecot_account: ImapAccount, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    config = setup(monkeypatch, dovecot_account, tmp_path)
    assert run_cli(["--now", NOW_TEXT, "scan"], capsys)[0] == 0

    code, out, err = run_cli(["--now", NOW_TEXT, "drafts", "--dry-run"], capsys)
    assert code == 0, err
    assert "would create 3 draft(s) (dry run: nothing changed" in out
    assert f"To:       Jürgen Müller <{JUERGEN}>" in out
    assert "Subject:  Re: Angebot für Fotos" in out
    assert "Kind:     check-in in German (the German of your conversation with them)" in out
    assert "    Hallo Jürgen," in out
    assert "Kind:     reply in English (their address ends in .uk)" in out
    assert in_drafts(dovecot_account) == {}
    assert records(config) == {}

    code, out, err = run_cli(["--now", NOW_TEXT, "drafts"], capsys)
    assert code == 0, err
    assert f"created 3 draft(s) in {dovecot_account.drafts_folder}:" in out
    assert f"  Jürgen Müller <{JUERGEN}>: Re: Angebot für Fotos (check-in, German)" in out

    code, out, err = run_cli(["--now", NOW_TEXT, "drafts"], capsys)
    assert code == 0, err
    assert "earlier drafts: 3 still in Drafts" in out
    assert "no new drafts today" in out
    assert f"  {CARLA}: the draft of 2026-11-20 is still in Drafts" in out


def test_a_real_mail_client_can_open_every_draft(imap_account: ImapAccount,
                                                 tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A second IMAP client (imaplib + email, not imapclient) lists Drafts and opens each."""
    config = setup(monkeypatch, imap_account, tmp_path)
    service.run_drafts(config, NOW)

    client = imaplib.IMAP4(imap_account.host, imap_account.port, timeout=10)
    try:
        client.login(imap_account.username, imap_account.password)
        typ, listing = client.list()
        assert typ == "OK"
        assert any(imap_account.drafts_folder.encode() in line for line in listing
                   if isinstance(line, bytes))
        typ, _ = client.select(f'"{imap_account.drafts_folder}"', readonly=True)
        assert typ == "OK"
        typ, data = client.uid("SEARCH", "DRAFT")
        assert typ == "OK"
        uids = data[0].split()
        assert len(uids) == 3  # every one of them flagged \Draft
        for uid in uids:
            typ, fetched = client.uid("FETCH", uid, "(FLAGS BODY.PEEK[])")
            assert typ == "OK"
            envelope, raw = fetched[0]
            assert isinstance(envelope, bytes) and isinstance(raw, bytes)
            flags = {f.decode() for f in imaplib.ParseFlags(envelope)}
            assert "\\Draft" in flags and "\\Seen" in flags
            assert b"\n" not in raw.replace(b"\r\n", b""), "bare LF in a draft"
            msg = email.message_from_bytes(raw, policy=default_policy)
            assert isinstance(msg, EmailMessage)
            for name in ("From", "To", "Subject", "Date", "Message-ID", "MIME-Version"):
                assert msg[name], f"{name} missing"
            assert msg["From"].addresses[0].addr_spec == ME
            assert msg["To"].addresses[0].addr_spec in (JUERGEN, ANNA, CARLA)
            assert msg["Bcc"] is None and msg["Cc"] is None
            assert parsedate_to_datetime(msg["Date"]).tzinfo is not None
            assert msg["Message-ID"].startswith("<") and msg["Message-ID"].endswith(">")
            assert not msg.is_multipart()
            assert msg.get_content_type() == "text/plain"
            assert msg.get_content_charset() == "utf-8"
            payload = msg.get_payload(decode=True)
            assert isinstance(payload, bytes)
            text = payload.decode("utf-8")  # strict: really UTF-8
            assert text == msg.get_content()
            assert text.strip()
    finally:
        client.logout()


def test_german_host_layout(make_account: Callable[[str], ImapAccount],
                            tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    account = make_account("german")
    config = setup(monkeypatch, account, tmp_path)
    result = service.run_drafts(config, NOW)
    assert result.folder == "INBOX.Entwürfe"
    assert len(in_drafts(account)) == 3
    assert by_recipient(account)[JUERGEN]["Subject"] == "Re: Angebot für Fotos"


def test_no_drafts_folder_is_one_clear_error(pymap_account: ImapAccount, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    config = setup(monkeypatch, pymap_account, tmp_path)
    with pymap_account.client() as client:
        client.delete_folder(pymap_account.drafts_folder)
    with pytest.raises(MailboxError, match="no Drafts folder"):
        service.run_drafts(config, NOW)
    code, _out, err = run_cli(["--now", NOW_TEXT, "drafts"], capsys)
    assert code == 1
    (line,) = [line for line in err.splitlines() if line.startswith("error: ")]
    assert "has no Drafts folder" in line and "create a folder named \"Drafts\"" in line


def test_the_daily_cycle_never_sends_to_a_contact(dovecot_account: ImapAccount, tmp_path: Path,
                                                  smtp_sink: SmtpSink,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 6 must-show: the whole cycle with SMTP delivery sends the digest to the user only."""
    extra = (f'delivery = "smtp"\n\n[smtp]\nhost = "127.0.0.1"\nport = {smtp_sink.port}\n'
             'security = "none"\n')
    config = setup(monkeypatch, dovecot_account, tmp_path, extra=extra)

    result = service.run_cycle(config, NOW)
    assert result.drafts is not None and len(result.drafts.created) == 3
    again = service.run_cycle(config, NOW + timedelta(hours=2))  # a catch-up: nothing twice
    assert again.drafts is not None and again.drafts.created == []

    received = smtp_sink.messages
    assert len(received) == 1
    (digest,) = received
    assert digest.rcpt_tos == (ME,)
    assert digest.mail_from == ME
    parsed = email.message_from_bytes(digest.data, policy=default_policy)
    assert [a.addr_spec for a in parsed["To"].addresses] == [ME]
    assert parsed["X-Followup-Digest"] == TODAY.isoformat()
    assert parsed["Cc"] is None and parsed["Bcc"] is None
    contacts = {JUERGEN, ANNA, CARLA, BOB}
    assert not contacts & {r.lower() for m in received for r in m.rcpt_tos}
    # The drafts wait in Drafts, for the user to send.
    assert set(by_recipient(dovecot_account)) == {JUERGEN, ANNA, CARLA}
