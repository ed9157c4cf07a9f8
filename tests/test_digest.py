"""The morning digest: golden renders in both languages, the message, escaping, delivery into
real IMAP and SMTP servers, once a day, the CLI, and the HTML in a real (headless) browser."""

from __future__ import annotations

import email
import html.parser
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage, Message
from email.policy import SMTP
from email.policy import default as default_policy
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope

from agent import delivery, digest, doctor, policy, sendmail, service
from agent.config import Config, load_config
from agent.errors import DeliveryError
from agent.model import Contact
from agent.plan import Plan
from agent.render import Renderer
from agent.store import Store
from tests.browser import browser_session, dump_dom
from tests.kit import (
    ME,
    flag,
    make_config,
    make_contact,
    message,
    run_cli,
    write_config,
)
from tests.servers.account import ImapAccount
from tests.servers.base import free_port
from tests.servers.smtp import SmtpSink
from tests.servers.tls import TlsFiles

NOW = datetime(2026, 11, 26, 6, 30, tzinfo=UTC)  # 07:30 in Berlin, a Thursday
NOW_TEXT = "2026-11-26T06:30:00Z"
GOLDEN = Path(__file__).resolve().parent / "golden"
# FOLLOWUP_UPDATE_GOLDEN=1 pytest tests/test_digest.py rewrites the golden files.
UPDATE_GOLDEN = flag("FOLLOWUP_UPDATE_GOLDEN")
EVIL_NAME = "<script>alert(1)</script>"
EVIL_SUBJECT = '"><img src=x onerror=alert(2)> & more'


# --------------------------------------------------------------------------- a fixed day


def ago(days: int) -> datetime:
    """A last exchange `days` (and three hours) before NOW."""
    return NOW - timedelta(days=days, hours=3)


PEOPLE = [
    make_contact(1, ago(12), "in", ["juergen@example.net"], name="Jürgen Weiß",
                 subject="Angebot für März?"),
    make_contact(2, ago(120), "out", ["ann@studio.example"], name="Ann Example",
                 subject="Photos from the launch"),
    make_contact(3, ago(80), "out", ["booking@bigcorp.example"], name="", subject=""),
    make_contact(4, ago(100), "out", ["evil@example.com"], name=EVIL_NAME, subject=EVIL_SUBJECT),
    make_contact(5, ago(95), "out", ["zoe+work@example.org"], name="Zoë O'Brien",
                 subject="Re: Fotos & Rechnung"),
    make_contact(6, ago(89), "out", ["carl@example.com"], name="Carl Diaz", subject="Lunch?"),
    make_contact(7, ago(3), "in", ["dora@example.com"], name="Dora Fine", subject="Thanks!"),
    make_contact(8, ago(200), "out", ["sam@example.com"], name="Sam Snooze", subject="Later",
                 snooze_until=date(2026, 12, 31)),
    make_contact(9, ago(300), "out", ["ivy@example.com"], name="Ivy Ignored", subject="Old",
                 ignored=True),
]


def make_plan(config: Config, people: list[Contact] = PEOPLE) -> Plan:
    states = policy.evaluate(people, config.policy, config.digest.tz, NOW)
    day = policy.today(NOW, config.digest.tz)
    picks = policy.pick_today(states, config.policy.daily_picks, day)
    return Plan(day=day, states=states, due=policy.ranked(states), picks=picks,
                replies=policy.replies_today(states, config.digest.max_replies, picks))


def empty_plan(config: Config) -> Plan:
    return make_plan(config, [PEOPLE[6]])


def parse(raw: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(raw, policy=default_policy)
    assert isinstance(parsed, EmailMessage)
    return parsed


def parts(msg: Message) -> tuple[str, str]:
    """(text, html) of a parsed digest, checking the structure on the way."""
    assert msg.get_content_type() == "multipart/alternative"
    payload = msg.get_payload()
    assert isinstance(payload, list) and len(payload) == 2
    text_part, html_part = payload
    assert text_part.get_content_type() == "text/plain"  # text first: the fallback
    assert html_part.get_content_type() == "text/html"
    for part in payload:
        assert part.get_content_charset() == "utf-8"
    assert isinstance(text_part, EmailMessage) and isinstance(html_part, EmailMessage)
    return text_part.get_content(), html_part.get_content()


class TextOf(html.parser.HTMLParser):
    """The visible text and the element names of an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.chunks: list[str] = []
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str | None]] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes += attrs
        if tag in ("head", "title", "style"):
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("head", "title", "style"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.chunks.append(data)

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.chunks).split())


def page_text(markup: str) -> TextOf:
    parser = TextOf()
    parser.feed(markup)
    parser.close()
    return parser


# --------------------------------------------------------------------------- golden renders


@pytest.mark.parametrize("language", ["en", "de"])
def test_golden_digest(language: str) -> None:
    config = make_config(language=language)
    rendered = digest.render(config, make_plan(config), NOW, Renderer(config))
    assert rendered.problems == ()
    for suffix, content in (("txt", rendered.text), ("html", rendered.html)):
        golden = GOLDEN / f"digest-{language}.{suffix}"
        if UPDATE_GOLDEN:
            golden.parent.mkdir(exist_ok=True)
            golden.write_text(content, encoding="utf-8")
        assert golden.is_file(), f"{golden} is missing; run with FOLLOWUP_UPDATE_GOLDEN=1"
        assert content == golden.read_text(encoding="utf-8"), (
            f"{golden.name} differs; if the change is intended, rerun with "
            "FOLLOWUP_UPDATE_GOLDEN=1 and review the diff")


def test_subject_says_the_count_in_both_languages() -> None:
    en, de = make_config(language="en"), make_config(language="de")
    assert digest.render(en, make_plan(en), NOW, Renderer(en)).subject == (
        "3 people to contact today, 1 reply owed – Thursday 2026-11-26")
    assert digest.render(de, make_plan(de), NOW, Renderer(de)).subject == (
        "3 Kontakte für heute, 1 offene Antwort – Donnerstag, 26.11.2026")
    one = replace(de, policy=replace(de.policy, daily_picks=1))
    assert digest.render(one, make_plan(one), NOW, Renderer(one)).subject.startswith(
        "1 Kontakt für heute")
    assert digest.render(en, empty_plan(en), NOW, Renderer(en)).subject.startswith(
        "Nobody to contact today")


def test_content_picks_first_then_the_rest_with_evidence() -> None:
    config = make_config(language="en")
    plan = make_plan(config)
    rendered = digest.render(config, plan, NOW, Renderer(config))
    text = rendered.text
    # The reply owed has its own section after the picks (issue 15), the rest below.
    assert [s.contact.id for s in plan.replies] == [1]
    assert 1 not in {s.contact.id for s in plan.picks}
    picks_end, replies_end = text.index("Replies owed (1)"), text.index("Also due")
    for state in plan.picks:
        assert state.contact.email in text[:picks_end]
    assert "juergen@example.net" in text[picks_end:replies_end]
    for state in plan.rest:
        assert state.contact.email in text[replies_end:]
    # The evidence for a pick: days, date, direction, subject, folder; reply wording.
    assert "Waiting 12 days for your reply – their mail of 2026-11-14" in text
    assert "Subject: “Angebot für März?”, folder Inbox" in text  # the folder as clients say
    assert "Reply: mailto:juergen@example.net?subject=Re%3A%20Angebot" in text
    # Everyone due, and nobody who is not.
    for absent in ("dora@", "sam@", "ivy@"):
        assert absent not in text
    assert "Waiting for a reply: 1 · Overdue: 3 · Due soon: 2" in text
    assert "Contacts: 8 · Snoozed: 1" in text
    # The footer says how to answer the digest, not which terminal command to type.
    assert '"snooze 2 30d", "ignore 3", "called 1"' in text
    assert "followup snooze" not in text and "followup snooze" not in rendered.html
    # The HTML says the same to a reader.
    visible = page_text(rendered.html).text
    assert "Waiting 12 days for your reply" in visible
    assert "Their mail of 14 November 2026" in visible
    assert "Last mail 120 days ago (29 July 2026), you wrote" in visible
    assert "Just answer this mail" in visible and "“snooze 2 30d”" in visible


def test_german_wording() -> None:
    config = make_config(language="de")
    rendered = digest.render(config, make_plan(config), NOW, Renderer(config))
    assert "Wartet seit 12 Tagen auf deine Antwort" in rendered.text
    assert "Wartet seit 12 Tagen auf deine Antwort – Mail an dich vom 14.11.2026" in rendered.text
    assert "Ordner Posteingang" in rendered.text
    assert "Antworten: mailto:" in rendered.text
    visible = page_text(rendered.html).text
    assert "Letzte Mail vor 120 Tagen (29. Juli 2026), von dir" in visible
    assert "Donnerstag, 26. November 2026" in visible
    assert '<html lang="de">' in rendered.html


def test_hostile_names_and_subjects_are_escaped_and_links_stay_links() -> None:
    config = make_config(extra="send_empty = true")
    evil = [make_contact(1, ago(20), "in", ['x"><script>@evil.example'], name=EVIL_NAME,
                         subject=EVIL_SUBJECT),
            make_contact(2, ago(120), "out", ["two@example.com"],
                         name="Line\r\nBcc: victim@example.com", subject="Hi\r\nX-Injected: yes")]
    plan = make_plan(config, evil)
    rendered = digest.render(config, plan, NOW, Renderer(config))
    page = page_text(rendered.html)
    assert "script" not in page.tags and "img" not in page.tags
    assert not [name for name, _ in page.attributes if name.startswith("on")]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered.html
    assert EVIL_NAME in page.text  # shown as text, not run
    links = [value or "" for name, value in page.attributes if name == "href"]
    assert links and all(link.startswith("mailto:") for link in links)
    # The reply owed (its own section, after the picks' one-click links to the user).
    reply = next(link for link in links if "subject=" in link
                 and unquote(urlsplit(link).path) != config.account.email)
    url = urlsplit(reply)
    assert unquote(url.path) == 'x"><script>@evil.example'
    assert parse_qs(url.query)["subject"] == [f"Re: {EVIL_SUBJECT}"]
    assert set(parse_qs(url.query)) == {"subject", "In-Reply-To"}
    # A line break in a name or subject cannot add lines to the text or the header.
    assert "\nBcc:" not in rendered.text and "\nX-Injected" not in rendered.text
    msg = digest.to_message(config, rendered, plan.day, NOW)
    raw = msg.as_bytes(policy=SMTP)
    assert b"\r\nBcc:" not in raw and b"\r\nX-Injected" not in raw


def test_mailto_encoding() -> None:
    assert digest.mailto("zoe+work@example.org") == "mailto:zoe+work@example.org"
    link = digest.mailto("a&b@example.org", "Re: 50% & \"more\"?", "<id@x>")
    assert "&b" not in link.split("?")[0] and '"' not in link and " " not in link
    query = parse_qs(urlsplit(link).query)
    assert query == {"subject": ['Re: 50% & "more"?'], "In-Reply-To": ["<id@x>"]}
    assert digest.reply_subject("AW: Angebot") == "Re: Angebot"  # as the reply draft says
    assert digest.reply_subject("Angebot") == "Re: Angebot"


# --------------------------------------------------------------------------- the message


def test_message_headers_and_parts() -> None:
    config = make_config(language="de", name="Mia Exämple")
    msg = digest.build(config, make_plan(config), NOW, Renderer(config))
    raw = msg.as_bytes(policy=SMTP)
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")  # CRLF only
    assert max(len(line) for line in raw.split(b"\r\n")) <= 78
    assert all(byte < 128 for byte in raw)  # encoded words and quoted-printable
    parsed = parse(raw)
    assert parsed["From"] == parsed["To"] == "Mia Exämple <me@example.org>"
    assert b"=?utf-8?" in raw.split(b"\r\n\r\n", 1)[0]  # the umlaut travels encoded
    assert parsed["Subject"] == "3 Kontakte für heute, 1 offene Antwort – Donnerstag, 26.11.2026"
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert parsed["X-Followup-Digest"] == "2026-11-26"
    assert parsed["Date"] == "Thu, 26 Nov 2026 07:30:00 +0100"
    assert parsed["Message-ID"] == digest.message_id(config, date(2026, 11, 26), None)
    assert parsed["Content-Language"] == "de"
    text, html_body = parts(parsed)
    assert "Jürgen Weiß" in text and "Jürgen Weiß" in html_body
    # Same day and secret, same Message-ID: a digest re-sent after a crash is recognisably
    # the same; another day or another installation's secret, another one.
    secret = b"s" * 32
    day = date(2026, 11, 26)
    assert digest.message_id(config, day, secret) == digest.message_id(config, day, secret)
    assert digest.message_id(config, day, secret) != digest.message_id(
        config, date(2026, 11, 27), secret)
    assert digest.message_id(config, day, secret) != digest.message_id(config, day, b"t" * 32)


def test_the_scanner_does_not_count_the_digest() -> None:
    from agent.headers.meta import parse_message

    config = make_config(language="en")
    raw = digest.build(config, make_plan(config), NOW, Renderer(config)).as_bytes(policy=SMTP)
    meta = parse_message(raw.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n", NOW, NOW)
    assert meta.automated == "followup-digest"


def test_a_broken_user_template_falls_back_and_names_file_and_line(tmp_path: Path) -> None:
    user = tmp_path / "templates"
    user.mkdir()
    (user / "digest.txt.j2").write_text("Hello\n{{ picks[0].nmae }}\n")
    (user / "digest.subject.j2").write_text("Heute: {{ picks|length }}\n")
    config = make_config(templates=user)
    rendered = digest.render(config, make_plan(config), NOW, Renderer(config))
    assert rendered.subject == "Heute: 3"  # a working user template is used
    assert rendered.text.startswith("Heute: 3\n")  # the default text, with that subject
    assert len(rendered.problems) == 1
    assert f"{user / 'digest.txt.j2'}, line 2" in rendered.problems[0]
    assert "nmae" in rendered.problems[0]
    assert doctor.check_templates(config, NOW) == list(rendered.problems)


def test_sendmail_refuses_anyone_but_the_user() -> None:
    msg = EmailMessage()
    msg["From"] = ME
    msg["To"] = ME
    sendmail.check_recipients(msg, ME)
    sendmail.check_recipients(msg, ME.upper())
    msg["Cc"] = "someone@example.com"
    with pytest.raises(sendmail.RecipientRefused, match=r"someone@example\.com"):
        sendmail.check_recipients(msg, ME)
    bare = EmailMessage()
    with pytest.raises(sendmail.RecipientRefused, match="nobody"):
        sendmail.check_recipients(bare, ME)
    assert sendmail.local_hostname("me@example.org") == "example.org"
    assert sendmail.local_hostname("odd@[bad host]") == "localhost"


# --------------------------------------------------------------------------- delivery: IMAP


def inbox(account: ImapAccount) -> list[tuple[bytes, set[str]]]:
    with account.client() as client:
        client.select_folder("INBOX", readonly=True)
        uids = client.search("ALL")
        data = client.fetch(uids, ["BODY.PEEK[]", "FLAGS"]) if uids else {}
        return [(bytes(data[uid][b"BODY[]"]),
                 {f.decode() if isinstance(f, bytes) else str(f) for f in data[uid][b"FLAGS"]})
                for uid in sorted(data)]


def digests_in(account: ImapAccount) -> list[tuple[bytes, set[str]]]:
    return [(raw, flags) for raw, flags in inbox(account) if b"X-Followup-Digest:" in raw]


def test_imap_delivery_appends_unseen_once_a_day(imap_account: ImapAccount,
                                                  tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config(write_config(monkeypatch, imap_account, tmp_path))
    config = replace(config, digest=replace(config.digest, language="de"))
    plan = make_plan(config)
    with Store(config.storage.path) as store, service.connect(config) as mailbox:
        first = delivery.deliver(config, store, mailbox, plan, NOW)
        second = delivery.deliver(config, store, mailbox, plan, NOW + timedelta(hours=3))
    assert first.delivered and first.outcome == "delivered"
    assert second.outcome == "already_sent"
    messages = inbox(imap_account)
    assert len(messages) == 1
    raw, flags = messages[0]
    assert "\\Seen" not in flags  # shows up as unread
    parsed = parse(raw)
    assert parsed["Subject"] == "3 Kontakte für heute, 1 offene Antwort – Donnerstag, 26.11.2026"
    assert parsed["X-Followup-Digest"] == "2026-11-26"
    assert parsed["Auto-Submitted"] == "auto-generated"
    text, html_body = parts(parsed)
    assert "Jürgen Weiß" in text and "„Angebot für März?“" in text
    assert "Jürgen Weiß" in html_body and "Außerdem fällig" in html_body
    if first.uid is not None:  # UIDPLUS
        assert first.uid == imap_account.folder_uids("INBOX")[0]


# --------------------------------------------------------------------------- delivery: SMTP


def smtp_extra(sink: SmtpSink | Controller, *, security: str, username: str | None = None,
               ca_file: str | None = None, digest_keys: str = "") -> str:
    """Keys for [digest] (write_config's `extra` lands there), then an [smtp] section."""
    lines = ['delivery = "smtp"', digest_keys, "", "[smtp]", 'host = "127.0.0.1"',
             f"port = {sink.port}", f'security = "{security}"', "timeout = 10"]
    if username:
        lines.append(f'username = "{username}"')
    if ca_file:
        lines.append(f'ca_file = "{ca_file}"')
    return "\n".join(lines)


def smtp_config(monkeypatch: pytest.MonkeyPatch, account: ImapAccount, tmp_path: Path,
                sink: SmtpSink | Controller, **kwargs: str) -> Config:
    return load_config(write_config(monkeypatch, account, tmp_path,
                                    extra=smtp_extra(sink, **kwargs)))


@pytest.fixture
def offline_account() -> ImapAccount:
    """An IMAP account nobody listens for: SMTP delivery must not need IMAP at all."""
    return ImapAccount(kind="dovecot", host="127.0.0.1", port=free_port(), tls_port=None,
                       username="nobody", password="unused-password", ca_file=None,
                       sent_folder="Sent", drafts_folder="Drafts", trash_folder="Trash",
                       junk_folder="Junk")


def test_smtp_delivery_plain_relay_without_auth(smtp_sink: SmtpSink, tmp_path: Path,
                                                 offline_account: ImapAccount,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    config = smtp_config(monkeypatch, offline_account, tmp_path, smtp_sink, security="none")
    with Store(config.storage.path) as store:
        result = delivery.deliver(config, store, None, make_plan(config), NOW)
        assert store.journal.digest_sent(result.day)
    assert result.delivered
    (received,) = smtp_sink.wait_for(1)
    assert received.rcpt_tos == (ME,) and received.mail_from == ME
    assert received.authenticated_as is None
    parsed = parse(received.data)
    assert parsed["X-Followup-Digest"] == "2026-11-26"
    assert parsed["Subject"] == "3 people to contact today, 1 reply owed – Thursday 2026-11-26"
    text, _ = parts(parsed)
    assert "Zoë O'Brien" in text


def test_smtp_delivery_starttls_and_auth(smtp_sink_tls: SmtpSink, tmp_path: Path,
                                         offline_account: ImapAccount,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    assert smtp_sink_tls.password and smtp_sink_tls.username
    monkeypatch.setenv("FOLLOWUP_SMTP_PASSWORD", smtp_sink_tls.password)
    config = smtp_config(monkeypatch, offline_account, tmp_path, smtp_sink_tls, security="starttls",
                         username=smtp_sink_tls.username, ca_file=smtp_sink_tls.ca_file or "")
    config = replace(config, digest=replace(config.digest, language="de"))
    with Store(config.storage.path) as store:
        assert delivery.deliver(config, store, None, make_plan(config), NOW).delivered
    (received,) = smtp_sink_tls.wait_for(1)
    assert received.tls and received.authenticated_as == smtp_sink_tls.username
    assert received.rcpt_tos == (ME,)
    parsed = parse(received.data)
    assert parsed["From"] == "Mia Example <me@example.org>"
    text, html_body = parts(parsed)
    assert "Überfällig" in text and "überfällig" in html_body


class Collector:
    """An aiosmtpd handler that keeps the envelopes (for the implicit-TLS server below)."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []

    async def handle_DATA(self, server: object, session: object, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 OK"


@pytest.fixture
def smtps_server(tls_files: TlsFiles) -> Iterator[tuple[Controller, Collector]]:
    """SMTP over implicit TLS (port-465 style), which the shared sink does not offer."""
    handler = Collector()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(),
                            ssl_context=tls_files.server_context(), server_hostname="localhost",
                            ready_timeout=10.0)
    controller.start()
    yield controller, handler
    controller.stop()


@pytest.mark.integration
def test_smtp_delivery_over_implicit_tls(smtps_server: tuple[Controller, Collector],
                                         tls_files: TlsFiles, tmp_path: Path,
                                         offline_account: ImapAccount,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    controller, handler = smtps_server
    untrusting = smtp_config(monkeypatch, offline_account, tmp_path, controller, security="ssl")
    with Store(untrusting.storage.path) as store, pytest.raises(DeliveryError,
                                                                match="could not be verified"):
        delivery.deliver(untrusting, store, None, make_plan(untrusting), NOW)
    config = smtp_config(monkeypatch, offline_account, tmp_path, controller, security="ssl",
                         ca_file=str(tls_files.cert_file))
    with Store(config.storage.path) as store:
        assert delivery.deliver(config, store, None, make_plan(config), NOW).delivered
    (envelope,) = handler.envelopes
    assert envelope.rcpt_tos == [ME]
    assert isinstance(envelope.original_content, bytes)
    assert parse(envelope.original_content)["X-Followup-Digest"] == "2026-11-26"


def test_smtp_refuses_a_server_without_starttls(smtp_sink: SmtpSink, tmp_path: Path,
                                                offline_account: ImapAccount,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    config = smtp_config(monkeypatch, offline_account, tmp_path, smtp_sink, security="starttls")
    with Store(config.storage.path) as store:
        with pytest.raises(DeliveryError, match="does not offer STARTTLS"):
            delivery.deliver(config, store, None, make_plan(config), NOW)
        assert not store.journal.digest_sent(date(2026, 11, 26))  # the next run tries again
    assert smtp_sink.messages == []


def test_smtp_wrong_password_is_one_clear_line(smtp_sink_tls: SmtpSink, tmp_path: Path,
                                               offline_account: ImapAccount,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOLLOWUP_SMTP_PASSWORD", "Wr0ng-Pa55word-xyz")
    config = smtp_config(monkeypatch, offline_account, tmp_path, smtp_sink_tls, security="starttls",
                         username=smtp_sink_tls.username or "",
                         ca_file=smtp_sink_tls.ca_file or "")
    with Store(config.storage.path) as store, pytest.raises(DeliveryError) as caught:
        delivery.deliver(config, store, None, make_plan(config), NOW)
    message_text = str(caught.value)
    assert "login as digest@example.org" in message_text and "failed" in message_text
    assert "Wr0ng-Pa55word-xyz" not in message_text and "\n" not in message_text


def test_smtp_unverified_certificate(smtp_sink_tls: SmtpSink, tmp_path: Path,
                                     offline_account: ImapAccount,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOLLOWUP_SMTP_PASSWORD", smtp_sink_tls.password or "")
    config = smtp_config(monkeypatch, offline_account, tmp_path, smtp_sink_tls, security="starttls",
                         username=smtp_sink_tls.username or "")
    with Store(config.storage.path) as store, pytest.raises(DeliveryError,
                                                            match="could not be verified"):
        delivery.deliver(config, store, None, make_plan(config), NOW)


def test_smtp_server_wanting_auth_from_a_config_without_username(
        smtp_sink_tls: SmtpSink, tmp_path: Path, offline_account: ImapAccount,
        monkeypatch: pytest.MonkeyPatch) -> None:
    config = smtp_config(monkeypatch, offline_account, tmp_path, smtp_sink_tls, security="starttls",
                         ca_file=smtp_sink_tls.ca_file or "")
    with Store(config.storage.path) as store, pytest.raises(DeliveryError) as caught:
        delivery.deliver(config, store, None, make_plan(config), NOW)
    assert "refused" in str(caught.value) and "[smtp] username" in str(caught.value)


def test_smtp_closed_port(tmp_path: Path, offline_account: ImapAccount,
                          monkeypatch: pytest.MonkeyPatch) -> None:
    sink = SmtpSink(port=free_port())  # never started
    config = smtp_config(monkeypatch, offline_account, tmp_path, sink, security="none")
    with Store(config.storage.path) as store, pytest.raises(DeliveryError,
                                                            match="refused the connection"):
        delivery.deliver(config, store, None, make_plan(config), NOW)


def test_sendmail_refuses_other_recipients_on_the_wire(smtp_sink: SmtpSink,
                                                       tmp_path: Path,
                                                       offline_account: ImapAccount,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    config = smtp_config(monkeypatch, offline_account, tmp_path, smtp_sink, security="none")
    assert config.smtp is not None
    msg = digest.build(config, make_plan(config), NOW, Renderer(config))
    msg.replace_header("To", "someone@example.com")
    with pytest.raises(sendmail.RecipientRefused):
        sendmail.send(config.smtp, msg, ME, login=None)
    assert smtp_sink.messages == []


# --------------------------------------------------------------------------- empty days


def test_an_empty_day_sends_nothing_unless_asked(smtp_sink: SmtpSink, tmp_path: Path,
                                                 offline_account: ImapAccount,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    config = smtp_config(monkeypatch, offline_account, tmp_path, smtp_sink, security="none")
    with Store(config.storage.path) as store:
        result = delivery.deliver(config, store, None, empty_plan(config), NOW)
        assert result.outcome == "nothing_due" and not store.journal.digest_sent(result.day)
        eager = replace(config, digest=replace(config.digest, send_empty=True))
        assert delivery.deliver(eager, store, None, empty_plan(eager), NOW).delivered
    (received,) = smtp_sink.wait_for(1)
    text, _ = parts(parse(received.data))
    assert "Nobody is due today" in text


# --------------------------------------------------------------------------- the CLI


def seed(account: ImapAccount) -> None:
    """Three people over real folders: one waiting, one overdue, one due tomorrow."""
    def ago(days: int) -> datetime:
        return NOW - timedelta(days=days)

    account.append_many([
        ("INBOX", message(sender="Jürgen Weiß <juergen@example.net>", subject="Angebot?",
                          when=ago(12)), (), ago(12)),
        (account.sent_folder, message(sender=ME, to=["juergen@example.net"],
                                      subject="Hallo", when=ago(40)), ("\\Seen",), ago(40)),
        ("INBOX", message(sender="Ann Example <ann@studio.example>", subject="Photos",
                          when=ago(125)), (), ago(125)),
        (account.sent_folder, message(sender=ME, to=["ann@studio.example"],
                                      subject="Re: Photos", when=ago(120)), ("\\Seen",),
         ago(120)),
        ("INBOX", message(sender="Carl Diaz <carl@example.com>", subject="Lunch?",
                          when=ago(100)), (), ago(100)),
        (account.sent_folder, message(sender=ME, to=["carl@example.com"], subject="Re: Lunch?",
                                      when=ago(89)), ("\\Seen",), ago(89)),
    ])


def test_cli_digest_end_to_end_once_a_day(dovecot_account: ImapAccount, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    seed(dovecot_account)
    write_config(monkeypatch, dovecot_account, tmp_path)
    code, out, err = run_cli(["--now", NOW_TEXT, "scan"], capsys)
    assert code == 0, out + err

    code, out, err = run_cli(["--now", NOW_TEXT, "digest", "--dry-run"], capsys)
    assert code == 0, err
    assert out.startswith("2 people to contact today, 1 reply owed – Thursday 2026-11-26\n")
    assert "juergen@example.net" in out and "Waiting 12 days for your reply" in out
    assert digests_in(dovecot_account) == []  # a dry run delivers nothing

    page = tmp_path / "look" / "digest.html"
    code, out, err = run_cli(["--now", NOW_TEXT, "digest", "--output", str(page)], capsys)
    assert code == 0, err
    assert page.is_file() and "Jürgen Weiß" in page.read_text()
    assert digests_in(dovecot_account) == []  # looking at it does not use up today's digest

    code, out, err = run_cli(["--now", NOW_TEXT, "digest"], capsys)
    assert code == 0, err
    assert "delivered to your INBOX: 2 people to contact today, 1 reply owed" in out
    later = "2026-11-26T20:00:00Z"
    code, out, err = run_cli(["--now", later, "digest"], capsys)
    assert code == 0, err
    assert "already delivered" in out
    assert len(digests_in(dovecot_account)) == 1

    # The digest in the INBOX is nobody's exchange: a rescan leaves the ledger as it was.
    code, before, _ = run_cli(["--now", later, "contacts", "--json"], capsys)
    code, out, err = run_cli(["--now", later, "scan"], capsys)
    assert code == 0, err
    code, after, _ = run_cli(["--now", later, "contacts", "--json"], capsys)
    assert before == after and ME not in after

    # The next morning brings the next digest.
    code, out, err = run_cli(["--now", "2026-11-27T06:30:00Z", "digest"], capsys)
    assert code == 0 and "delivered" in out
    assert len(digests_in(dovecot_account)) == 2


def test_cli_digest_over_smtp_needs_no_imap(smtp_sink: SmtpSink, tmp_path: Path,
                                            offline_account: ImapAccount,
                                            capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(monkeypatch, offline_account, tmp_path,
                 extra=smtp_extra(smtp_sink, security="none", digest_keys="send_empty = true"))
    code, out, err = run_cli(["--now", NOW_TEXT, "digest"], capsys)
    assert code == 0, err
    assert "delivered to you through SMTP: Nobody to contact today" in out
    code, out, err = run_cli(["--now", NOW_TEXT, "digest"], capsys)
    assert "already delivered" in out
    assert len(smtp_sink.messages) == 1


def test_cli_digest_smtp_failure_exits_1_without_recording(
        smtp_sink: SmtpSink, tmp_path: Path, offline_account: ImapAccount,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(monkeypatch, offline_account, tmp_path,
                 extra=smtp_extra(smtp_sink, security="starttls",
                                  digest_keys="send_empty = true"))
    code, _, err = run_cli(["--now", NOW_TEXT, "digest"], capsys)
    assert code == 1
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "does not offer STARTTLS" in errors[0]


def test_cli_templates_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "mine"
    code, out, err = run_cli(["templates", "export", str(target)], capsys)
    assert code == 0, err
    names = {p.name for p in target.iterdir()}
    assert {"digest.html.j2", "digest.txt.j2", "digest.subject.j2",
            "_digest_row.html.j2", "_digest_row.txt.j2"} <= names
    assert "[templates] dir" in out
    (target / "digest.subject.j2").write_text("mine\n")
    code, out, err = run_cli(["templates", "export", str(target)], capsys)
    assert code == 0 and "kept" in out
    assert (target / "digest.subject.j2").read_text() == "mine\n"
    code, out, err = run_cli(["templates", "export", "--force", str(target)], capsys)
    assert (target / "digest.subject.j2").read_text() != "mine\n"


def test_exported_templates_next_to_the_config_are_used(
        dovecot_account: ImapAccount, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(monkeypatch, dovecot_account, tmp_path, extra="send_empty = true")
    code, _, err = run_cli(["templates", "export", str(tmp_path / "templates")], capsys)
    assert code == 0, err
    subject = tmp_path / "templates" / "digest.subject.j2"
    subject.write_text("Guten Morgen {{ user.name }}\n")
    code, out, err = run_cli(["--now", NOW_TEXT, "digest", "--dry-run"], capsys)
    assert code == 0, err
    assert out.startswith("Guten Morgen Mia Example\n")
    subject.write_text("{% if %}\n")
    code, out, err = run_cli(["--now", NOW_TEXT, "digest", "--dry-run"], capsys)
    assert code == 0, err
    assert out.startswith("Nobody to contact today")
    assert f"{subject}, line 1" in err and "the default template was used" in err


# --------------------------------------------------------------------------- doctor


def test_doctor_checks_smtp_and_templates(dovecot_account: ImapAccount, smtp_sink_tls: SmtpSink,
                                          tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FOLLOWUP_SMTP_PASSWORD", smtp_sink_tls.password or "")
    write_config(monkeypatch, dovecot_account, tmp_path, extra=smtp_extra(
        smtp_sink_tls, security="starttls", username=smtp_sink_tls.username,
        ca_file=smtp_sink_tls.ca_file))
    code, out, err = run_cli(["doctor"], capsys)
    assert code == 0, out + err
    assert "SMTP password for digest@example.org found (FOLLOWUP_SMTP_PASSWORD)" in out
    assert "answered over STARTTLS, logged in as digest@example.org" in out
    assert "templates: the packaged defaults" in out
    assert smtp_sink_tls.messages == []  # a check sends nothing

    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "digest.html.j2").write_text("<p>{{ picks[0].nmae }}</p>\n")
    monkeypatch.setenv("FOLLOWUP_SMTP_PASSWORD", "Wr0ng-Pa55word-xyz")
    code, out, err = run_cli(["doctor"], capsys)
    assert code == 1
    failures = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert len(failures) == 2, out
    assert "digest.html.j2, line 1" in failures[0] and "nmae" in failures[0]
    assert "login as digest@example.org" in failures[1]
    assert "Wr0ng-Pa55word-xyz" not in out + err


# --------------------------------------------------------------------------- a real browser



@pytest.mark.integration
def test_html_digest_in_headless_chromium(tmp_path: Path) -> None:
    config = make_config(language="en")
    plan = make_plan(config)
    page = tmp_path / "digest.html"
    page.write_text(digest.render(config, plan, NOW, Renderer(config)).html, encoding="utf-8")
    with browser_session(tmp_path) as binary:
        started = time.monotonic()
        dom = dump_dom(binary, page, tmp_path / "profile")
        elapsed = time.monotonic() - started
    shown = page_text(dom)
    for state in plan.picks:
        assert (state.contact.name or state.contact.email) in shown.text
    assert "Get in touch today: 3 people" in shown.text
    assert EVIL_NAME in shown.text  # rendered as text...
    assert "script" not in shown.tags  # ...and not as an element the browser ran
    assert elapsed < 20, f"Chromium took {elapsed:.1f} s"
