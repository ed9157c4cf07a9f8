"""Answering the digest on a real Dovecot (issue 13): replies as Thunderbird, Apple Mail,
Gmail web and Outlook build them, in INBOX, in Sent or both, applied exactly once with one
confirmation; what must change nothing; every one-click link sent back; bodies fetched only
for candidates; kill -9 between applying and recording."""

from __future__ import annotations

import base64
import email
import os
import quopri
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email.policy import default as default_policy
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from agent import digest, service
from agent.config import Config, load_config
from agent.decisions import resolve
from agent.mailbox.client import Mailbox
from agent.store import Store
from tests.faultproxy import FaultProxy
from tests.kit import ME, message, write_config
from tests.servers.account import ImapAccount

NOW = datetime(2026, 12, 2, 6, 30, tzinfo=UTC)  # 07:30 in Berlin: the digest goes out
TODAY = date(2026, 12, 2)
LATER = NOW + timedelta(hours=2)  # the scan that finds the answers
REPO = Path(__file__).resolve().parent.parent

# Three overdue people; the most overdue is row 1 of the digest.
PEOPLE = (("juergen@example.net", "Jürgen Weiß", 150), ("bea@example.com", "Bea Berg", 130),
          ("anna@studio.example", "Anna Groß", 110))


def ago(days: int) -> datetime:
    return NOW - timedelta(days=days)


@dataclass
class Setup:
    """A mailbox with three overdue people, today's digest in the INBOX, and followup's
    config; `fetches` counts the text parts followup fetched."""

    account: ImapAccount
    config: Config
    digest_id: str  # <…>, as in the digest's Message-ID
    fetches: list[tuple[str, int]]

    def store(self) -> Store:
        return Store(self.config.storage.path)

    def scan(self, now: datetime = LATER) -> service.RunResult:
        return service.run(self.config, now, service.SCAN)

    def contact(self, address: str) -> int:
        with self.store() as store:
            return resolve(store, address)


@pytest.fixture
def setup(dovecot_account: ImapAccount, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
          request: pytest.FixtureRequest) -> Iterator[Setup]:
    language = getattr(request, "param", "en")
    account = dovecot_account
    for address, name, days in PEOPLE:
        account.append(account.sent_folder, message(
            sender=ME, to=[f"{name} <{address}>"], subject=f"Fotos für {name}",
            when=ago(days + 2)), flags=["\\Seen"])
        account.append("INBOX", message(sender=f"{name} <{address}>", subject="Re: Fotos",
                                        when=ago(days)), flags=["\\Seen"])
    write_config(monkeypatch, account, tmp_path, language=language)
    config = load_config(tmp_path / "config.toml")
    result = service.run_cycle(config, NOW)
    assert result.digest is not None and result.digest.delivered
    with Store(config.storage.path) as store:
        secret = store.journal.secret()
    fetches: list[tuple[str, int]] = []
    original = Mailbox.fetch_text_part

    def counting(self: Mailbox, folder: str, uid: int, cap: int = 64 * 1024) -> bytes | None:
        fetches.append((folder, uid))
        return original(self, folder, uid, cap)

    monkeypatch.setattr(Mailbox, "fetch_text_part", counting)
    yield Setup(account, config, digest.message_id(config, TODAY, secret), fetches)


# --------------------------------------------------------------------------- client replies

REPLY_TEXT = "snooze 2 30d\r\nignore anna@studio.example\r\nangerufen 1\r\n"


def _head(reply_to: str, sender: str, subject: str, ident: str) -> str:
    refs = f"In-Reply-To: {reply_to}\r\nReferences: {reply_to}\r\n" if reply_to else ""
    return (f"From: Mia Example <{sender}>\r\nTo: {ME}\r\nSubject: {subject}\r\n"
            f"Date: {email.utils.format_datetime(NOW + timedelta(hours=1))}\r\n"
            f"Message-ID: <{ident}@client.example>\r\n{refs}MIME-Version: 1.0\r\n")


def thunderbird(reply_to: str, sender: str = ME, ident: str = "tb1",
                text: str = REPLY_TEXT) -> bytes:
    return (_head(reply_to, sender, "Re: 3 people to contact today", ident)
            + "Content-Type: text/plain; charset=UTF-8; format=flowed\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n" + text + "\r\n"
            "Am 02.12.26 um 07:30 schrieb Mia Example:\r\n> Get in touch today:\r\n>\r\n"
            "> 1. Jürgen Weiß <juergen@example.net>\r\n").encode()


def apple_mail(reply_to: str, sender: str = ME, ident: str = "apple1",
               text: str = REPLY_TEXT) -> bytes:
    body = (text + "\r\nViele Grüße\r\nMia\r\n\r\n"
            "> Am 02.12.2026 um 07:30 schrieb Mia Example <me@example.org>:\r\n>\r\n"
            "> Get in touch today:\r\n")
    return (_head(reply_to, sender, "Re: 3 people to contact today", ident)
            + "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
            + quopri.encodestring(body.encode()).decode()).encode()


def gmail_web(reply_to: str, sender: str = ME, ident: str = "gmail1",
              text: str = REPLY_TEXT) -> bytes:
    lines = "<br>".join(text.strip().splitlines())
    html = (f'<div dir="ltr">{lines}</div><br><div class="gmail_quote"><div dir="ltr" '
            'class="gmail_attr">On Wed, Dec 2, 2026 at 7:30 AM Mia Example &lt;me@example.org'
            '&gt; wrote:<br></div><blockquote class="gmail_quote">Get in touch today: 3 '
            "people<br>1. Jürgen Weiß</blockquote></div>")
    return (_head(reply_to, sender, "Re: 3 people to contact today", ident)
            + "Content-Type: text/html; charset=UTF-8\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n"
            + base64.encodebytes(html.encode()).decode()).encode()


def outlook(reply_to: str, sender: str = ME, ident: str = "outlook1",
            text: str = REPLY_TEXT) -> bytes:
    lines = "".join(f"<div>{line}</div>" for line in text.strip().splitlines())
    html = ("<html><head><style>p{margin:0}</style></head><body>" + lines
            + '<div><br></div><hr style="display:inline-block;width:98%"><div id="divRplyFwdMsg"'
            ' dir="ltr"><b>Von:</b> Mia Example<br><b>Gesendet:</b> Mittwoch, 2. Dezember 2026 '
            "07:30<br><b>Betreff:</b> 3 people</div><div>Get in touch today: 1. Jürgen</div>"
            "</body></html>")
    return (_head(reply_to, sender, "AW: 3 people to contact today", ident)
            + "Content-Type: text/html; charset=iso-8859-1\r\n"
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
            + quopri.encodestring(html.encode("latin-1")).decode()).encode()


CLIENTS: dict[str, Callable[..., bytes]] = {
    "thunderbird": thunderbird, "apple-mail": apple_mail, "gmail-web": gmail_web,
    "outlook": outlook}

IDENTS = {"thunderbird": "tb1", "apple-mail": "apple1", "gmail-web": "gmail1",
          "outlook": "outlook1"}


def put(setup: Setup, raw: bytes, where: str) -> None:
    """Where a reply to yourself lands: INBOX, Sent, or both (the same message twice)."""
    if where in ("inbox", "both"):
        setup.account.append("INBOX", raw)
    if where in ("sent", "both"):
        setup.account.append(setup.account.sent_folder, raw, flags=["\\Seen"])


def confirmations(account: ImapAccount) -> list[email.message.EmailMessage]:
    found = []
    for raw in account.fetch_raw("INBOX"):
        parsed = email.message_from_bytes(raw, policy=default_policy)
        if parsed["X-Followup-Confirmation"]:
            found.append(parsed)  # type: ignore[arg-type]
    return found


def state(setup: Setup) -> dict[str, object]:
    """Everything a command could change, to compare before and after."""
    with setup.store() as store:
        people = {a: store.people.decisions_of(resolve(store, a)) for a, _, _ in PEOPLE}
        return {"decisions": people, "touchpoints": store.touchpoints.count(),
                "commands": len(store.commands.all())}


def flags_of(account: ImapAccount, folder: str, ident: str) -> set[bytes]:
    """The flags of every copy of the message with Message-ID ``ident`` in ``folder``."""
    with account.client() as client:
        client.select_folder(folder, readonly=True)
        uids = client.search(["HEADER", "Message-ID", ident])
        assert uids
        return {f for data in client.get_flags(uids).values() for f in data}


# --------------------------------------------------------------------------- applied once


def check_applied_once(setup: Setup) -> None:
    juergen, bea, anna = (setup.contact(a) for a, _, _ in PEOPLE)
    with setup.store() as store:
        assert store.people.decisions_of(bea).snooze_until == TODAY + timedelta(days=30)
        assert store.people.decisions_of(anna).ignored
        (call,) = store.touchpoints.of(juergen)
        assert (call.touch.kind, call.touch.day, call.source) == ("call", TODAY, "mail")
        (record,) = store.commands.all()
        assert record.proof == "digest" and record.digest_day == TODAY
        assert [r.ok for r in record.results] == [True, True, True]
    (confirmation,) = confirmations(setup.account)
    assert "Snoozed Bea Berg until 2027-01-01" in confirmation["Subject"]
    assert confirmation["Auto-Submitted"] == "auto-replied"
    assert confirmation["In-Reply-To"].endswith("@client.example>")


@pytest.mark.parametrize("client", list(CLIENTS))
@pytest.mark.parametrize("where", ["inbox", "sent", "both"])
def test_an_answer_is_applied_exactly_once(setup: Setup, client: str, where: str) -> None:
    put(setup, CLIENTS[client](setup.digest_id), where)
    result = setup.scan()
    assert result.commands is not None
    assert len(result.commands.applied) == 1
    assert result.commands.fetched == result.commands.candidates == len(setup.fetches) == 1
    check_applied_once(setup)
    ident = f"{IDENTS[client]}@client.example"
    for folder in (["INBOX"] if where != "sent" else []) + (
            [setup.account.sent_folder] if where != "inbox" else []):
        assert b"\\Seen" in flags_of(setup.account, folder, ident)
    # Later scans (and the second copy) change nothing and confirm nothing again.
    again = setup.scan(LATER + timedelta(hours=1))
    assert again.commands is not None and not again.commands.applied
    assert len(setup.fetches) == 1
    check_applied_once(setup)
    # The answer never became an exchange, and followup never made a contact of the user.
    with setup.store() as store:
        assert store.people.id_of(ME) is None or ME not in {
            a for c in store.contacts() for a in c.addresses}


@pytest.mark.parametrize("setup", ["de"], indirect=True)
def test_the_confirmation_speaks_the_users_language(setup: Setup) -> None:
    text = "zurückstellen 2 30d\r\nsnoz 3 30d\r\nerledigt 1 2026-11-30\r\n"
    put(setup, thunderbird(setup.digest_id, text=text), "inbox")
    setup.scan()
    (confirmation,) = confirmations(setup.account)
    subject = confirmation["Subject"]
    assert "Bea Berg zurückgestellt bis 2027-01-01" in subject
    assert "„snoz“ ist kein Befehl – meintest du snooze?" in subject
    assert "Kontakt mit Jürgen Weiß am 2026-11-30 eingetragen" in subject
    with setup.store() as store:
        (record,) = store.commands.all()
        assert [r.ok for r in record.results] == [True, False, True]


@pytest.mark.parametrize("setup", ["de"], indirect=True)
def test_why_a_line_did_nothing_is_said_in_german_too(setup: Setup) -> None:
    text = ("zurückstellen 9 30d\r\nignorieren niemand@nirgends.example\r\n"
            "zurückstellen 1 bald\r\nangerufen 1 2027-05-01\r\nrhythmus 1 0\r\n"
            "ignorieren\r\n")
    put(setup, thunderbird(setup.digest_id, text=text), "inbox")
    setup.scan()
    (confirmation,) = confirmations(setup.account)
    body = confirmation.get_body(("plain",)).get_content()
    for said in ("hat keine Nummer 9", "kein Kontakt hat die Adresse niemand@nirgends.example",
                 "„bald“ ist keine Dauer", "2027-05-01 liegt in der Zukunft",
                 "ein Rhythmus von 0 Tagen ist keiner", "„ignorieren“: so nicht – ignorieren WER"):
        assert said in body, body
    for english in ("not done", "is not", "give ", "did you mean", "followup contacts", "WHO"):
        assert english not in body, body


def test_only_errors_are_confirmed_with_confirm_errors(
        setup: Setup, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from dataclasses import replace

    from agent.config import CommandsConfig

    setup.config = replace(setup.config, commands=CommandsConfig(confirm="errors"))
    put(setup, thunderbird(setup.digest_id), "inbox")
    setup.scan()
    assert confirmations(setup.account) == []
    put(setup, thunderbird(setup.digest_id, ident="tb2", text="ignorier 3\r\n"), "inbox")
    setup.scan(LATER + timedelta(hours=1))
    (confirmation,) = confirmations(setup.account)
    assert "did you mean ignorieren?" in confirmation["Subject"]


# --------------------------------------------------------------------------- nothing changes


def other_installation_id(config: Config) -> str:
    return digest.message_id(config, TODAY, b"another installation's secret....")


@pytest.mark.parametrize("case", ["other-sender", "no-reference", "other-installation",
                                  "tampered-key", "changed-command", "key-for-another-line"])
def test_what_must_change_nothing(setup: Setup, case: str) -> None:
    before = state(setup)
    with setup.store() as store:
        secret = store.journal.secret()
    from agent.commands.grammar import key, link_message

    bea = setup.contact("bea@example.com")
    subject, body = link_message("snooze", bea, "Bea Berg", "en", secret, ME)
    right_key = key(secret, ME, f"snooze #{bea} 30d")
    # A key that differs in its last digit, whatever that digit is (the secret is random).
    wrong_key = right_key[:-1] + ("1" if right_key.endswith("0") else "0")
    raw = {
        "other-sender": thunderbird(setup.digest_id, sender="mallory@example.net"),
        # Knowing the user's address is not enough.
        "no-reference": thunderbird("", ident="noref"),
        "other-installation": thunderbird(f"<{other_installation_id(setup.config).strip('<>')}>"),
        "tampered-key": message(
            sender=ME, subject=subject.replace(right_key, wrong_key),
            body=body.replace(right_key, wrong_key), message_id="tampered"),
        "changed-command": message(
            sender=ME, subject=subject.replace("30d", "300d"),
            body=body.replace("30d", "300d"), message_id="changed"),
        "key-for-another-line": message(
            sender=ME, subject=f"Hello [followup {right_key}]",
            body=f"ignore #{bea}\r\n\r\n[followup {right_key}]\r\n", message_id="otherline"),
    }[case]
    put(setup, raw, "both")
    result = setup.scan()
    assert result.commands is not None and not result.commands.applied
    assert state(setup) == before
    assert confirmations(setup.account) == []
    assert result.commands.fetched == result.commands.candidates == len(setup.fetches)
    if case != "no-reference":
        assert result.commands.ignored, "ignored messages are listed for -v"


def test_ignored_messages_are_listed_by_verbose_scan(
        setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.kit import run_cli

    put(setup, thunderbird(setup.digest_id, sender="mallory@example.net"), "inbox")
    code, out, _ = run_cli(["--now", LATER.isoformat(), "-v", "scan"], capsys)
    assert code == 0
    assert "not a command: INBOX" in out and "mallory@example.net" in out
    assert "not from you" in out


def test_ordinary_mail_fetches_no_body(setup: Setup) -> None:
    juergen = PEOPLE[0][0]
    setup.account.append("INBOX", message(sender=juergen, subject="Re: 3 people to contact "
                                          "today", when=NOW, message_id="ordinary1"))
    setup.account.append(setup.account.sent_folder, message(
        sender=ME, to=[juergen], subject="snooze 2 30d", when=NOW, body="snooze 2 30d\r\n",
        message_id="ordinary2"), flags=["\\Seen"])
    result = setup.scan()
    assert result.commands is not None
    assert result.commands.looked_at >= 2
    assert result.commands.candidates == result.commands.fetched == len(setup.fetches) == 0


# --------------------------------------------------------------------------- one-click links


def digest_links(account: ImapAccount) -> list[str]:
    """Every one-click link (a mailto: to the user) of the delivered digest, HTML and text."""
    import re

    raw = next(r for r in account.fetch_raw("INBOX") if b"X-Followup-Digest" in r)
    parsed = email.message_from_bytes(raw, policy=default_policy)
    links: list[str] = []
    for part in parsed.walk():
        if part.get_content_type() == "text/html":
            html = part.get_content()
            links += [h.replace("&amp;", "&") for h in re.findall(r'href="(mailto:[^"]+)"', html)]
        elif part.get_content_type() == "text/plain":
            links += re.findall(r"mailto:\S+", part.get_content())
    return [link for link in dict.fromkeys(links) if unquote(urlsplit(link).path) == ME]


def message_from_link(link: str, ident: str, with_body: bool = True) -> bytes:
    """What a mail client sends for a mailto: link (RFC 6068): To, Subject and body as given."""
    parts = urlsplit(link)
    fields = parse_qs(parts.query, strict_parsing=True)
    assert set(fields) == {"subject", "body"}
    body = fields["body"][0].replace("\r\n", "\n").replace("\n", "\r\n") if with_body else ""
    return message(sender=f"Mia Example <{ME}>", to=[unquote(parts.path)],
                   subject=fields["subject"][0], body=body + "\r\n-- \r\nSent from my iPhone\r\n",
                   when=NOW + timedelta(hours=1), message_id=ident)


def test_every_one_click_link_runs_its_command(setup: Setup) -> None:
    links = digest_links(setup.account)
    assert len(links) == 3 * len(PEOPLE)  # snooze, ignore, called on every row
    for number, link in enumerate(links):
        setup.account.append(setup.account.sent_folder, message_from_link(link, f"link{number}"),
                             flags=["\\Seen"])
    result = setup.scan()
    assert result.commands is not None
    assert len(result.commands.applied) == len(links)
    assert result.commands.fetched == result.commands.candidates == len(links)
    with setup.store() as store:
        for record in store.commands.all():
            assert record.proof == "link" and all(r.ok for r in record.results), record
            assert len(record.results) == 1
        for address, _, _ in PEOPLE:
            contact = resolve(store, address)
            decided = store.people.decisions_of(contact)
            assert decided.ignored and decided.snooze_until == TODAY + timedelta(days=30)
            assert [t.touch.kind for t in store.touchpoints.of(contact)] == ["call"]


def test_a_link_works_when_the_client_dropped_the_body(setup: Setup) -> None:
    link = next(link for link in digest_links(setup.account) if "body=ignore" in link)
    setup.account.append("INBOX", message_from_link(link, "nobody", with_body=False))
    result = setup.scan()
    assert result.commands is not None and len(result.commands.applied) == 1
    assert sum(1 for a, _, _ in PEOPLE if state(setup)["decisions"][a].ignored) == 1


# --------------------------------------------------------------------------- kill -9

KILLER = """
import os, signal, sys
from pathlib import Path
from datetime import datetime
from agent import service
from agent.config import load_config
from agent.mailbox.client import Mailbox
from agent.store.commands import CommandLog

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

if sys.argv[2] == "before-recording":
    CommandLog.record = die     # applied (in the open transaction), not yet recorded
else:
    Mailbox.mark_seen = die     # applied and recorded; not yet flagged, not confirmed
service.run(load_config(Path(sys.argv[1])), datetime.fromisoformat(sys.argv[3]), service.SCAN)
"""


@pytest.mark.parametrize("point", ["before-recording", "after-recording"])
def test_kill_9_never_applies_a_command_twice(setup: Setup, point: str) -> None:
    put(setup, thunderbird(setup.digest_id), "both")
    process = subprocess.run(
        [sys.executable, "-c", KILLER, str(setup.config.source), point, LATER.isoformat()],
        cwd=REPO, capture_output=True, timeout=120, env=os.environ.copy(), check=False)
    assert process.returncode == -signal.SIGKILL, process.stderr.decode()
    with setup.store() as store:
        assert len(store.commands.all()) == (0 if point == "before-recording" else 1)
        assert store.touchpoints.count() == (0 if point == "before-recording" else 1)
    setup.scan(LATER + timedelta(minutes=5))
    setup.scan(LATER + timedelta(minutes=10))
    check_applied_once(setup)


def test_before_any_digest_a_first_scan_searches_for_no_answers(
        dovecot_account: ImapAccount, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A new installation has sent no digest, so nothing can answer one: its first scan
    asks the server for no answers (a header SEARCH of INBOX and Sent) and starts looking
    after what is there; the first digest's answers are then found (the fixture above)."""
    account = dovecot_account
    for number in range(3):
        account.append("INBOX", message(sender=PEOPLE[0][0], subject=f"Hallo {number}",
                                        when=ago(number + 1)))
    with FaultProxy(account.host, account.port, record_upstream=True) as proxy:
        write_config(monkeypatch, account, tmp_path, port=proxy.port)
        result = service.run(load_config(tmp_path / "config.toml"), NOW, service.SCAN)
        said = b"".join(bytes(c.upstream) for c in proxy.connections)
    assert result.commands is not None and result.commands.looked_at == 0
    assert b"SEARCH" not in said.replace(b"UID SEARCH UID", b"")  # the scan's own SEARCH
    with Store(tmp_path / "followup.db") as store:
        assert store.commands.position("INBOX") is not None


def test_a_first_look_finds_recent_answers_by_server_search(setup: Setup) -> None:
    """A folder never looked at before (an upgrade, a changed UIDVALIDITY): the server finds
    recent answers by their headers; nothing else's headers are fetched."""
    with setup.store() as store, store.transaction() as conn:
        conn.execute("DELETE FROM command_folders")
    setup.account.append("INBOX", message(sender=PEOPLE[0][0], subject="Hallo", when=NOW),
                         when=NOW)
    setup.account.append("INBOX", thunderbird(setup.digest_id), when=NOW + timedelta(hours=1))
    result = setup.scan()
    assert result.commands is not None and len(result.commands.applied) == 1
    assert result.commands.looked_at == 1  # only the answer's headers were read
    check_applied_once(setup)
