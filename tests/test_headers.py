"""Tests for agent.headers: real-world header shapes, the SPEC rules, and never crashing."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.headers.addresses import Addr, clear_memos, normalise_address
from agent.headers.automated import is_automated_address
from agent.headers.dates import EARLIEST_SANE_TIME
from agent.headers.fields import MAX_BLOCK_BYTES
from agent.headers.meta import HEADER_FIELDS, Exchanges, MessageMeta, exchanges, parse_message

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
INTERNALDATE = datetime(2024, 5, 1, 8, 30, tzinfo=UTC)
SELF = frozenset({"alice@example.org", "alice@private.example"})


def block(*lines: str | bytes) -> bytes:
    """A header block as the server sends it: CRLF line ends and a final empty line."""
    parts = [line if isinstance(line, bytes) else line.encode("utf-8") for line in lines]
    return b"\r\n".join(parts) + b"\r\n\r\n"


def parse(*lines: str | bytes, internaldate: datetime | None = INTERNALDATE) -> MessageMeta:
    return parse_message(block(*lines), internaldate, NOW)


def b64(text: str) -> str:
    return "=?utf-8?B?" + base64.b64encode(text.encode()).decode() + "?="


@pytest.fixture(autouse=True)
def _fresh_memos() -> None:
    clear_memos()


# -- the field list ------------------------------------------------------------------------------


def test_header_fields_are_exactly_what_the_scanner_asks_for() -> None:
    assert HEADER_FIELDS == (
        "From", "To", "Cc", "Bcc", "Reply-To", "Date", "Subject", "Message-ID", "In-Reply-To",
        "References", "List-Id", "List-Post", "List-Unsubscribe", "List-Help", "List-Subscribe",
        "List-Owner", "List-Archive", "Precedence", "Auto-Submitted", "Return-Path", "Sender",
        "Content-Type", "X-Auto-Response-Suppress", "X-Autoreply", "X-Autorespond",
        "X-Followup-Digest", "Content-Language", "Feedback-ID",
        "X-SES-Outgoing", "X-Mailgun-Sid", "X-SG-EID", "X-MC-User", "X-Campaign", "X-CampaignID",
        "X-Campaign-Id", "X-Failed-Recipients",
    )  # fmt: skip


# -- display names -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("from_value", "name", "email"),
    [
        ("=?iso-8859-1?Q?J=FCrgen_M=FCller?= <j@x.de>", "Jürgen Müller", "j@x.de"),
        ("=?ISO-8859-1?q?J=FCrgen?= <j@x.de>", "Jürgen", "j@x.de"),
        (f"{b64('Zoë Łukasz')} <z@x.de>", "Zoë Łukasz", "z@x.de"),
        ("=?iso-8859-15?Q?=A4uro_Bank?= <e@x.de>", "€uro Bank", "e@x.de"),
        ("=?windows-1252?Q?=80_sign?= <e@x.de>", "€ sign", "e@x.de"),
        ("=?utf-8*de?Q?M=C3=BCller?= <m@x.de>", "Müller", "m@x.de"),  # RFC 2231 language
        # adjacent encoded words: the space between them is not part of the text
        ("=?utf-8?Q?Hans?= =?utf-8?Q?_M=C3=BCller?= <h@x.de>", "Hans Müller", "h@x.de"),
        ("=?utf-8?Q?Hans?==?utf-8?Q?_M=C3=BCller?= <h@x.de>", "Hans Müller", "h@x.de"),
        # a UTF-8 character split across two encoded words by a broken encoder
        ("=?utf-8?Q?J=C3?= =?utf-8?Q?=BCrgen?= <j@x.de>", "Jürgen", "j@x.de"),
        ("=?utf-8?B?SsO8?= =?utf-8?B?cmdlbg==?= <j@x.de>", "Jürgen", "j@x.de"),
        # base64 without padding
        ("=?utf-8?B?SsO8cmdlbg?= <j@x.de>", "Jürgen", "j@x.de"),
        ('"Müller, Hans" <h@x.de>', "Müller, Hans", "h@x.de"),
        ('"=?utf-8?Q?M=C3=BCller=2C_Hans?=" <h@x.de>', "Müller, Hans", "h@x.de"),
        ("'Hans Müller' <h@x.de>", "Hans Müller", "h@x.de"),
        ('"  Hans \t  Müller  " <h@x.de>', "Hans Müller", "h@x.de"),
        ("h@x.de (Hans Müller)", "Hans Müller", "h@x.de"),
        ('"h@x.de" <h@x.de>', "", "h@x.de"),
        ("H@X.DE <h@x.de>", "", "h@x.de"),
        ("<h@x.de>", "", "h@x.de"),
        ("h@x.de", "", "h@x.de"),
        ('"Hans \\"Hansi\\" M." <h@x.de>', 'Hans "Hansi" M.', "h@x.de"),
        ("Anna Berg <Anna.Berg@Example.ORG>", "Anna Berg", "Anna.Berg@example.org"),
        ("Plain Name <p@x.de>", "Plain Name", "p@x.de"),
        ("=?utf-8?Q?Zo=C3=AB?= Smith <z@x.de>", "Zoë Smith", "z@x.de"),
        ("=?us-ascii?Q?J=FCrgen?= <j@x.de>", "Jürgen", "j@x.de"),  # 8-bit despite ASCII
        ("=?gb2312?B?1tDOxA==?= <c@x.cn>", "中文", "c@x.cn"),
    ],
)
def test_display_names_decode(from_value: str, name: str, email: str) -> None:
    meta = parse(f"From: {from_value}")
    assert [(a.name, a.email) for a in meta.from_] == [(name, email)]


def test_encoded_words_split_across_folded_lines() -> None:
    meta = parse("From: =?utf-8?Q?J=C3=BC?=\r\n =?utf-8?Q?rgen?=\r\n\t<j@x.de>")
    assert meta.from_ == (Addr("Jürgen", "j@x.de", "j@x.de"),)


def test_unknown_charset_falls_back_and_says_so() -> None:
    meta = parse("From: =?x-unknown?Q?J=FCrgen?= <j@x.de>")
    assert meta.from_[0].name == "Jürgen"  # not UTF-8, so windows-1252
    assert any("x-unknown" in p for p in meta.problems)
    meta = parse("From: =?x-unknown?Q?J=C3=BCrgen?= <j@x.de>")
    assert meta.from_[0].name == "Jürgen"  # valid UTF-8 wins


def test_wrong_declared_charset_is_repaired() -> None:
    meta = parse("Subject: =?utf-8?Q?Gr=FC=DFe?=")
    assert meta.subject == "Grüße"
    assert any("not valid utf-8" in p for p in meta.problems)


def test_undecodable_encoded_word_stays_as_written() -> None:
    meta = parse("Subject: =?utf-8?B?A?= rest")
    assert meta.subject == "=?utf-8?B?A?= rest"
    assert any("undecodable" in p for p in meta.problems)


def test_codecs_that_are_not_text_encodings_are_refused() -> None:
    meta = parse("Subject: =?base64?Q?abc?= =?unicode-escape?Q?=5Cu0041?=")
    assert meta.subject == "abc\\u0041"


def test_raw_utf8_header_bytes() -> None:
    meta = parse(b"From: J\xc3\xbcrgen M\xc3\xbcller <j@x.de>", b"Subject: Gr\xc3\xbc\xc3\x9fe")
    assert meta.from_[0].name == "Jürgen Müller"
    assert meta.subject == "Grüße"
    assert not any("8-bit" in p for p in meta.problems)


def test_raw_latin1_header_bytes() -> None:
    meta = parse(b"From: J\xfcrgen M\xfcller <j@x.de>", b"Subject: Gr\xfc\xdfe \x80")
    assert meta.from_[0].name == "Jürgen Müller"
    assert meta.subject == "Grüße €"
    assert any("8-bit" in p for p in meta.problems)


def test_mixed_raw_encodings_are_decoded_per_line() -> None:
    meta = parse(b"From: J\xfcrgen <j@x.de>", b"Subject: Gr\xc3\xbc\xc3\x9fe")
    assert meta.from_[0].name == "Jürgen"
    assert meta.subject == "Grüße"


@pytest.mark.parametrize(
    "from_value",
    [
        "=?utf-8?Q?Evil=0D=0ABcc:_x@y.org?= <e@x.de>",
        "=?utf-8?B?" + base64.b64encode(b"Evil\r\nBcc: x@y.org").decode() + "?= <e@x.de>",
        '"Evil\x00\x1b[31m\u2028Bcc: x@y.org" <e@x.de>',
    ],
)
def test_names_cannot_carry_line_breaks_or_controls(from_value: str) -> None:
    (addr,) = parse(f"From: {from_value}").from_
    assert addr.email == "e@x.de"
    assert addr.name.isprintable()
    assert "Bcc: x@y.org" in addr.name


def test_bidi_overrides_are_removed_from_names() -> None:
    (addr,) = parse("From: =?utf-8?Q?Anna=E2=80=AE_Berg?= <a@x.de>").from_
    assert addr.name == "Anna Berg"


# -- address lists -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("to_value", "expected"),
    [
        ('"Müller, Hans" <h@x.de>, b@y.org', [("Müller, Hans", "h@x.de"), ("", "b@y.org")]),
        (
            "=?utf-8?Q?M=C3=BCller,_Hans?= <h@x.de>, Bob <b@y.org>",
            [("Müller, Hans", "h@x.de"), ("Bob", "b@y.org")],
        ),
        (
            "=?utf-8?Q?M=C3=BCller=2C_Hans?= <h@x.de>, b@y.org",
            [("Müller, Hans", "h@x.de"), ("", "b@y.org")],
        ),
        (f"{b64('Müller, Hans')} <h@x.de>, b@y.org", [("Müller, Hans", "h@x.de"), ("", "b@y.org")]),
        ("undisclosed-recipients:;", []),
        ("Team: a@x.org, b@y.org;", [("", "a@x.org"), ("", "b@y.org")]),
        ("Team: a@x.org, b@y.org;, c@z.org", [("", "a@x.org"), ("", "b@y.org"), ("", "c@z.org")]),
        (",, ,a@x.org,,", [("", "a@x.org")]),
        ("", []),
        ("<>", []),
        ('"a <b@c.de>, d" <e@f.de>', [("a <b@c.de>, d", "e@f.de")]),
        ("a@x.org (Anna, Team) , b@y.org", [("Anna, Team", "a@x.org"), ("", "b@y.org")]),
        ("a@x.org\r\n\t, b@y.org", [("", "a@x.org"), ("", "b@y.org")]),
        # what people paste from Outlook or type by hand
        ('"Berg, Anna" <a@x.org>; b@y.org', [("Berg, Anna", "a@x.org"), ("", "b@y.org")]),
        ("a@x.org b@y.org", [("", "a@x.org"), ("", "b@y.org")]),
        ('"Anna (Work)" <a@x.org>', [("Anna (Work)", "a@x.org")]),
        ("Anna <a@x.org", [("Anna", "a@x.org")]),
        ("Anna Berg a@x.org", [("", "a@x.org")]),
    ],
)
def test_address_lists(to_value: str, expected: list[tuple[str, str]]) -> None:
    meta = parse(f"To: {to_value}")
    assert [(a.name, a.email) for a in meta.to] == expected


def test_unusable_addresses_are_dropped_with_a_note() -> None:
    meta = parse("To: Just A Name, <not an address>, ok@x.org")
    assert [a.email for a in meta.to] == ["ok@x.org"]
    assert any(p.startswith("To:") for p in meta.problems)


def test_repeated_address_headers_are_all_kept() -> None:
    meta = parse("To: a@x.org", "To: b@y.org", "From: c@z.org", "From: d@z.org")
    assert [a.email for a in meta.to] == ["a@x.org", "b@y.org"]
    assert [a.email for a in meta.from_] == ["c@z.org"]  # the first From wins


def test_all_address_fields() -> None:
    meta = parse(
        "From: A <a@x.org>",
        "To: B <b@x.org>",
        "Cc: C <c@x.org>",
        "Bcc: D <d@x.org>",
        "Reply-To: E <e@x.org>",
    )
    assert [a.key for a in (*meta.from_, *meta.to, *meta.cc, *meta.bcc, *meta.reply_to)] == [
        f"{c}@x.org" for c in "abcde"
    ]


def test_memoised_parses_report_the_same_problems() -> None:
    lines = ("From: =?x-unknown?Q?J=FCrgen?= <j@x.de>", "To: nonsense")
    first, second = parse(*lines), parse(*lines)
    assert first == second
    assert any(p.startswith("From:") for p in first.problems)
    assert any(p.startswith("To:") for p in first.problems)


# -- identity ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("anna@x.org", "anna@x.org"),
        ("  <Anna@X.ORG>  ", "anna@x.org"),
        ("anna+news@x.org", "anna@x.org"),
        ("anna+news+more@x.org", "anna@x.org"),
        ("+1555@sms.example", "+1555@sms.example"),  # no base: kept whole
        ("+@x.org", "+@x.org"),
        ("Anna.Berg@gmail.com", "annaberg@gmail.com"),
        ("a.n.n.a+tag@googlemail.com", "anna@gmail.com"),
        ("anna.berg@GoogleMail.com", "annaberg@gmail.com"),
        ("anna.berg@gmx.de", "anna.berg@gmx.de"),  # dots matter elsewhere
        ("anna@x.org.", "anna@x.org"),
        ("root@localhost", "root@localhost"),
        ("jürgen@müller.de", "jürgen@müller.de"),
        ("a..b@docomo.ne.jp", "a..b@docomo.ne.jp"),
        ("", None),
        ("anna", None),
        ("@x.org", None),
        ("anna@", None),
        ("anna@x", None),
        ("anna@@x.org", None),
        ("a@b@x.org", None),
        ("anna berg@x.org", None),
        ("anna@x .org", None),
        ('"anna"@x.org', "anna@x.org"),  # needless quotes
        ('"Anna  Berg"@X.org', '"anna berg"@x.org'),  # needed ones stay (bounce generators)
        ('"a\\"b"@x.org', None),
        ("anna@[127.0.0.1]", None),
        ("anna@.x.org", None),
        ("anna@x..org", None),
        ("anna@x.org..", None),
        ("anna\x00@x.org", None),
        ("anna@x.org\r\nBcc: b@y.org", None),
        ("...@gmail.com", None),
        ("a" * 400 + "@x.org", None),
        ("<>", None),
    ],
)
def test_normalise_address(address: str, key: str | None) -> None:
    assert normalise_address(address) == key
    if key is not None:
        assert normalise_address(key) == key


@settings(max_examples=500, deadline=None)
@given(st.text())
def test_normalise_address_never_raises_and_is_idempotent(text: str) -> None:
    key = normalise_address(text)
    if key is not None:
        assert normalise_address(key) == key
        assert key == key.strip()
        assert key.count("@") == 1


_local = st.text(alphabet="abcXYZ.+-_09İßK", min_size=1, max_size=12)
_domain = st.sampled_from(
    ["x.org", "GMAIL.com", "googlemail.com", "gmx.de", "localhost", "x.org.", "Ünï.de"]
)


@given(_local, _domain, st.sampled_from(["", " ", "<", "\t"]))
def test_normalise_address_idempotent_on_plausible_addresses(
    local: str, domain: str, wrap: str
) -> None:
    text = f"{wrap}{local}@{domain}{'>' if wrap == '<' else wrap}"
    key = normalise_address(text)
    if key is not None:
        assert normalise_address(key) == key
        local_part = key.split("@")[0]
        assert local_part.startswith("+") or "+" not in local_part


# -- automated mail ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("List-Id: Photo talk <photo.lists.example.org>", "list-id"),
        ("List-Post: <mailto:photo@lists.example.org>", "list-post"),
        ("List-Unsubscribe: <https://x.example/u>", "list-unsubscribe"),
        ("List-Help: <mailto:help@x.example>", "list-help"),
        ("List-Subscribe: <mailto:sub@x.example>", "list-subscribe"),
        ("List-Owner: <mailto:owner@x.example>", "list-owner"),
        ("List-Archive: <https://x.example/a>", "list-archive"),
        ("Precedence: bulk", "precedence:bulk"),
        ("Precedence: List", "precedence:list"),
        ("Precedence: junk", "precedence:junk"),
        ("Precedence: auto_reply", "precedence:auto_reply"),
        ("Auto-Submitted: auto-replied", "auto-submitted:auto-replied"),
        ("Auto-Submitted: auto-generated; owner-email=x@y.org", "auto-submitted:auto-generated"),
        ("Auto-Submitted: auto-notified", "auto-submitted:auto-notified"),
        ("X-Autoreply: yes", "x-autoreply"),
        ("X-Autorespond: Vacation", "x-autorespond"),
        ("X-Auto-Response-Suppress: All", "x-auto-response-suppress"),
        ("Return-Path: <>", "null-return-path"),
        ("Return-Path: < >", "null-return-path"),
        ("X-Followup-Digest: 2024-06-01", "followup-digest"),
    ],
)
def test_automated_markers(line: str, reason: str) -> None:
    meta = parse("From: Anna <anna@gmx.de>", "To: alice@example.org", line)
    assert meta.automated == reason
    assert exchanges(meta, SELF) == Exchanges(None, ())


@pytest.mark.parametrize(
    "line",
    [
        "Precedence: first-class",
        "Auto-Submitted: no",
        "Auto-Submitted: No ",
        "Return-Path: <anna@gmx.de>",
        "X-Followup-Checkin: 42",
        "Subject: List-Id: not a header",
    ],
)
def test_not_automated(line: str) -> None:
    meta = parse("From: Anna <anna@gmx.de>", "To: alice@example.org", line)
    assert meta.automated is None


def test_a_sent_draft_of_followup_0_1_is_mail_the_user_sent() -> None:
    """0.1 marked drafts with X-Followup-Checkin; sent, such a draft is the user's mail."""
    meta = parse("From: alice@example.org", "To: bob@x.org", "X-Followup-Checkin: 17")
    assert meta.automated is None
    assert exchanges(meta, SELF).direction == "out"


@pytest.mark.parametrize(
    "address",
    [
        "MAILER-DAEMON@mx.example",
        "mailer_daemon@x.org",
        "postmaster@x.org",
        "noreply@x.org",
        "no-reply@x.org",
        "no_reply@x.org",
        "No.Reply@x.org",
        "donotreply@x.org",
        "do-not-reply@x.org",
        "do_not_reply@x.org",
        "DoNotReply@x.org",
        "shop-noreply@x.org",
        "shop_noreply@x.org",
        "shop.noreply@x.org",
        "shop-no-reply@x.org",
        "noreply-alerts@x.org",
        "noreply.alerts@x.org",
        "noreply+abc@x.org",
        "no-reply-123@x.org",
        "photo-request@lists.example.org",
        "owner-photo@lists.example.org",
        "bounce@x.org",
        "bounces@x.org",
        "photo-bounces@lists.example.org",
        "photo-bounces+anna=gmx.de@lists.example.org",
        "bounce-12345-abc@mailer.example",
        "bounces+123@sendgrid.example",
    ],
)
def test_automated_addresses(address: str) -> None:
    assert is_automated_address(address)
    key = normalise_address(address)
    assert key is not None
    assert is_automated_address(key)
    meta = parse(f"From: {address}", "To: alice@example.org")
    assert meta.automated == "noreply-sender"


@pytest.mark.parametrize(
    "address",
    [
        "anna@gmx.de",
        "peter@web.de",
        "tom@gmail.com",
        "noreplyjoe@x.org",
        "reply@x.org",
        "bouncer@x.org",
        "owner@x.org",
        "request@x.org",
        "postmaster.general@x.org",
        "info@noreply.example",  # the domain never decides
        "requests@x.org",
    ],
)
def test_people_are_not_automated(address: str) -> None:
    assert not is_automated_address(address)
    meta = parse(f"From: {address}", "To: alice@example.org")
    assert meta.automated is None
    assert [a.email for a in exchanges(meta, SELF).addrs] == [address]


def test_list_addresses_from_list_post_and_list_id() -> None:
    meta = parse(
        "From: Anna <anna@gmx.de>",
        "To: photo@lists.example.org",
        "List-Id: Photo talk <photo-talk.lists.example.org>",
        "List-Post: <mailto:Photo@Lists.Example.org?subject=hi>, <https://lists.example.org/p>",
    )
    assert meta.list_addresses == frozenset(
        {"photo@lists.example.org", "photo-talk@lists.example.org"}
    )
    assert meta.automated == "list-id"


@pytest.mark.parametrize(
    ("line", "keys"),
    [
        ("List-Id: <users.googlegroups.com>", {"users@googlegroups.com"}),
        ("List-Id: users.example.org", {"users@example.org"}),
        ('List-Id: "Users, the list" <users.example.org>', {"users@example.org"}),
        ("List-Id: <nodots>", set()),
        ("List-Id: <bad id.example.org>", set()),
        ("List-Post: NO", set()),
        ("List-Post: <mailto:list%2Bx@example.org>", {"list@example.org"}),
    ],
)
def test_list_address_shapes(line: str, keys: set[str]) -> None:
    assert parse("From: a@x.org", line).list_addresses == frozenset(keys)


# -- time ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("date", "expected"),
    [
        ("Tue, 14 Nov 2023 10:12:33 +0100", datetime(2023, 11, 14, 9, 12, 33, tzinfo=UTC)),
        ("Tue, 14 Nov 2023 10:12:33 -0000", datetime(2023, 11, 14, 10, 12, 33, tzinfo=UTC)),
        ("Tue, 14 Nov 2023 10:12:33 +0000", datetime(2023, 11, 14, 10, 12, 33, tzinfo=UTC)),
        ("Tue, 14 Nov 2023 10:12:33 -0530", datetime(2023, 11, 14, 15, 42, 33, tzinfo=UTC)),
        ("Tue, 14 Nov 23 10:12:33 +0100", datetime(2023, 11, 14, 9, 12, 33, tzinfo=UTC)),
        ("Sun, 14 Nov 99 10:12:33 +0100", datetime(1999, 11, 14, 9, 12, 33, tzinfo=UTC)),
        ("14 Nov 2023 10:12 +0100", datetime(2023, 11, 14, 9, 12, tzinfo=UTC)),
        ("Tue, 14 Nov 2023 10:12:33 GMT", datetime(2023, 11, 14, 10, 12, 33, tzinfo=UTC)),
        ("Tue, 14 Nov 2023 10:12:33 UT", datetime(2023, 11, 14, 10, 12, 33, tzinfo=UTC)),
        ("Tue, 14 Nov 2023 10:12:33 EST", datetime(2023, 11, 14, 15, 12, 33, tzinfo=UTC)),
        ("Tue, 14 Nov 2023 10:12:33 PDT", datetime(2023, 11, 14, 17, 12, 33, tzinfo=UTC)),
        ("Tue, 14 Nov 2023 10:12:33 CET", datetime(2023, 11, 14, 9, 12, 33, tzinfo=UTC)),
        ("Wed, 14 Jun 2023 10:12:33 CEST", datetime(2023, 6, 14, 8, 12, 33, tzinfo=UTC)),
        ("Tue, 14 Nov 2023 10:12:33 +0100 (CET)", datetime(2023, 11, 14, 9, 12, 33, tzinfo=UTC)),
        ("Tue,14 Nov 2023 10:12:33 +0100", datetime(2023, 11, 14, 9, 12, 33, tzinfo=UTC)),
        ("  Tue, 14 Nov 2023 10:12:33 +0100  ", datetime(2023, 11, 14, 9, 12, 33, tzinfo=UTC)),
        ("Tue, 14 November 2023 10:12:33 +0100", datetime(2023, 11, 14, 9, 12, 33, tzinfo=UTC)),
        ("Tue, 14 Nov 2023 23:59:60 +0000", datetime(2023, 11, 14, 23, 59, 59, tzinfo=UTC)),
        ("Mon, 1 Jan 1990 00:00:00 +0000", datetime(1990, 1, 1, tzinfo=UTC)),
        ("Tue, 01 Jan 1990 00:30:00 +0100", INTERNALDATE),  # 1989-12-31 23:30 UTC
    ],
)
def test_dates(date: str, expected: datetime) -> None:
    meta = parse("From: a@x.org", f"Date: {date}")
    assert meta.time == expected
    assert meta.time.tzinfo is UTC
    assert meta.time_source == ("internaldate" if expected is INTERNALDATE else "date")


def test_unknown_zone_is_utc_with_a_note() -> None:
    meta = parse("Date: Tue, 14 Nov 2023 10:12:33 XYZ")
    assert meta.time == datetime(2023, 11, 14, 10, 12, 33, tzinfo=UTC)
    assert any("time zone" in p for p in meta.problems)


@pytest.mark.parametrize(
    ("date", "why"),
    [
        ((NOW + timedelta(days=1, minutes=1)).strftime("%a, %d %b %Y %H:%M:%S +0000"), "future"),
        ("Thu, 01 Jan 1970 00:00:00 +0000", "1990"),
        ("Fri, 31 Dec 1989 23:59:59 +0000", "1990"),
        ("Mon, 1 Jan 2424 10:00:00 +0000", "future"),
        ("Tue, 30 Feb 2023 10:12:33 +0100", "unparseable"),
        ("Tue, 14 Nov 2023 25:12:33 +0100", "unparseable"),
        ("yesterday", "unparseable"),
        ("", "unparseable"),
        ("Tue, 14 Nov 99999 10:12:33 +0100", "unparseable"),
        ("\x00\x00", "unparseable"),
    ],
)
def test_insane_dates_fall_back_to_internaldate(date: str, why: str) -> None:
    meta = parse("From: a@x.org", f"Date: {date}")
    assert meta.time == INTERNALDATE
    assert meta.time_source == "internaldate"
    assert any(why in p and "INTERNALDATE" in p for p in meta.problems), meta.problems


def test_date_up_to_a_day_ahead_is_believed() -> None:
    ahead = NOW + timedelta(hours=23)
    meta = parse(ahead.strftime("Date: %a, %d %b %Y %H:%M:%S +0000"))
    assert meta.time == ahead
    assert meta.time_source == "date"


def test_impossible_zone_offset_falls_back_to_internaldate() -> None:
    """Issue 20: a zone beyond ±14 h makes the time wrong by up to a day; the server's is
    better than the Date read as UTC."""
    for zone in ("+9999", "-3000"):
        meta = parse(f"Date: Tue, 14 Nov 2023 10:12:33 {zone}")
        assert (meta.time, meta.time_source) == (INTERNALDATE, "internaldate")
        assert any("impossible zone offset" in p and "INTERNALDATE" in p
                   for p in meta.problems)


@pytest.mark.parametrize("date", ["Mon, 01 Jan -5 00:00:00 +0000",
                                  "Mon, 01 Jan -05 10:00:00 +0100"])
def test_a_date_without_a_year_falls_back_to_internaldate(date: str) -> None:
    """Issue 17 finding 10: parsedate_tz reads "-5" as the year 2000."""
    meta = parse(f"Date: {date}")
    assert (meta.time, meta.time_source) == (INTERNALDATE, "internaldate")
    assert any("no valid year" in p for p in meta.problems)


def test_missing_date_uses_internaldate() -> None:
    meta = parse("From: a@x.org")
    assert (meta.time, meta.time_source) == (INTERNALDATE, "internaldate")
    assert "Date: missing; used INTERNALDATE" in meta.problems


def test_naive_internaldate_is_utc() -> None:
    meta = parse("From: a@x.org", internaldate=datetime(2024, 5, 1, 8, 30))
    assert meta.time == INTERNALDATE
    assert meta.time.tzinfo is UTC


def test_aware_internaldate_is_converted_to_utc() -> None:
    berlin_summer = timezone(timedelta(hours=2))
    meta = parse("From: a@x.org", internaldate=datetime(2024, 5, 1, 10, 30, tzinfo=berlin_summer))
    assert meta.time == INTERNALDATE
    assert meta.time.tzinfo is UTC


def test_no_usable_time_at_all_uses_now() -> None:
    meta = parse("Date: garbage", internaldate=None)
    assert meta.time == NOW
    assert meta.time_source == "internaldate"
    assert any("current time" in p for p in meta.problems)


def test_default_now_is_the_real_clock() -> None:
    future = datetime.now(UTC) + timedelta(days=3)
    meta = parse_message(block(future.strftime("Date: %a, %d %b %Y %H:%M:%S +0000")), INTERNALDATE)
    assert meta.time == INTERNALDATE
    recent = datetime.now(UTC) - timedelta(days=3)
    meta = parse_message(block(recent.strftime("Date: %a, %d %b %Y %H:%M:%S +0000")), None)
    assert meta.time_source == "date"


# -- other fields --------------------------------------------------------------------------------


def test_ids() -> None:
    meta = parse(
        "Message-ID:  <CAH+w=7a@mail.gmail.com> ",
        "In-Reply-To: <parent@x.org> (Anna's message of Tue)",
        "References: <a@x.org>\r\n <b@x.org>\r\n\t<parent@x.org>",
    )
    assert meta.message_id == "CAH+w=7a@mail.gmail.com"
    assert meta.in_reply_to == "parent@x.org"
    assert meta.references == ("a@x.org", "b@x.org", "parent@x.org")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("<abc@x.org>", "abc@x.org"),
        ("abc@x.org", "abc@x.org"),
        ("<abc\r\n @x.org>", "abc@x.org"),
        ("<>", None),
        ("", None),
        ("   ", None),
        ("two words", None),
        ("<a\x00b@x.org>", "ab@x.org"),
    ],
)
def test_message_id_shapes(value: str, expected: str | None) -> None:
    assert parse(f"Message-ID: {value}").message_id == expected


def test_references_without_brackets() -> None:
    assert parse("References: a@x.org b@x.org").references == ("a@x.org", "b@x.org")


def test_missing_ids() -> None:
    meta = parse("From: a@x.org")
    assert (meta.message_id, meta.in_reply_to, meta.references) == (None, None, ())


def test_subject_decoded_collapsed_and_truncated() -> None:
    assert parse("Subject: =?utf-8?Q?Gr=C3=BC=C3=9Fe?=  aus\r\n\tBerlin").subject == (
        "Grüße aus Berlin"
    )
    assert parse("Subject: " + "x" * 2000).subject == "x" * 500
    assert parse("From: a@x.org").subject == ""
    assert parse("Subject:").subject == ""


@pytest.mark.parametrize(
    ("value", "language"),
    [
        ("de-DE", "de"),
        ("DE", "de"),
        ("en-US, de", "en"),
        ("de_AT", "de"),
        (" fr ", "fr"),
        ("x-klingon", None),
        ("*", None),
        ("", None),
        ("1234", None),
    ],
)
def test_content_language(value: str, language: str | None) -> None:
    assert parse(f"Content-Language: {value}").language == language


def test_no_content_language() -> None:
    assert parse("From: a@x.org").language is None


# -- the header block ----------------------------------------------------------------------------


def test_field_names_are_case_insensitive_and_obsolete_space_is_allowed() -> None:
    meta = parse("FROM: a@x.org", "subject : Hi", "message-id:<m@x.org>")
    assert meta.from_[0].email == "a@x.org"
    assert meta.subject == "Hi"
    assert meta.message_id == "m@x.org"


def test_bare_lf_and_bare_cr_line_ends() -> None:
    meta = parse_message(b"From: a@x.org\nSubject: Hi\n there\n\n", INTERNALDATE, NOW)
    assert (meta.from_[0].email, meta.subject) == ("a@x.org", "Hi there")
    meta = parse_message(b"From: a@x.org\rSubject: Hi\r\r", INTERNALDATE, NOW)
    assert (meta.from_[0].email, meta.subject) == ("a@x.org", "Hi")


def test_stops_at_the_end_of_the_header() -> None:
    raw = b"From: a@x.org\r\n\r\nList-Id: <body.example.org>\r\nFrom: b@y.org\r\n"
    meta = parse_message(raw, INTERNALDATE, NOW)
    assert [a.email for a in meta.from_] == ["a@x.org"]
    assert meta.automated is None


def test_leading_empty_lines_and_garbage_lines_are_skipped() -> None:
    raw = b"\r\n\r\nnot a header line\r\n: no name\r\nFrom: a@x.org\r\n"
    assert parse_message(raw, INTERNALDATE, NOW).from_[0].email == "a@x.org"


def test_full_header_with_other_fields() -> None:
    raw = block(
        "Received: from mx (mx [1.2.3.4]) by host; Tue, 14 Nov 2023 10:12:33 +0100",
        "From: Anna <anna@gmx.de>",
        "X-Mailer: something",
        "Date: Tue, 14 Nov 2023 10:12:33 +0100",
    )
    meta = parse_message(raw, INTERNALDATE, NOW)
    assert meta.from_[0].key == "anna@gmx.de"
    assert meta.time_source == "date"


def test_empty_and_missing_everything() -> None:
    for raw in (b"", b"\r\n", b"\r\n\r\n", b"garbage", b"\x00" * 100):
        meta = parse_message(raw, INTERNALDATE, NOW)
        assert meta.from_ == ()
        assert meta.time == INTERNALDATE
        assert meta.automated is None
        assert exchanges(meta, SELF) == Exchanges(None, ())


def test_nul_bytes() -> None:
    meta = parse(b"From: An\x00na <a\x00@x.org>, b@y.org", b"Subject: a\x00b")
    assert [a.email for a in meta.to + meta.from_] == ["b@y.org"]
    assert meta.subject == "a b"


def test_bytearray_and_memoryview_input() -> None:
    raw = block("From: a@x.org")
    for data in (bytearray(raw), memoryview(raw)):
        meta = parse_message(data, INTERNALDATE, NOW)  # type: ignore[arg-type]
        assert meta.from_[0].email == "a@x.org"


def test_wrong_input_type_does_not_raise() -> None:
    meta = parse_message("From: a@x.org", INTERNALDATE, NOW)  # type: ignore[arg-type]
    assert meta.time == INTERNALDATE
    assert any("could not be parsed" in p for p in meta.problems)


@pytest.mark.parametrize(
    "raw",
    [
        b"Subject: " + b"x" * 1_000_000,
        b"To: " + b"a@x.org, " * 120_000,
        b"To: " + b'"' * 1_000_000,
        b"To: " + b"(" * 200_000,
        b"To: " + b'"(' * 100_000,
        b"To: " + b":" * 200_000,
        b"To: " + b"<" * 200_000,
        b"To: " + b"=?utf-8?q?" * 100_000,
        b"To: " + b"=?a?q?=?" * 100_000,
        b"From: " + b"\\" * 200_000,
        b"From: (" * 5000 + b"a@x.org",
        b"Subject: " + b"=?utf-8?B?" + b"QUFB" * 200_000 + b"?=",
        b"References: " + b"<a@b> " * 200_000,
        b"Date: " + b"1 " * 200_000,
        b"From: a@x.org\r\n" + b" continued\r\n" * 100_000,
        b"X: y\r\n" * 300_000,
        b"\n" * 1_000_000,
    ],
    ids=lambda raw: repr(raw[:24]),
)
def test_huge_and_hostile_inputs_are_fast_and_safe(raw: bytes) -> None:
    started = time.perf_counter()
    meta = parse_message(raw, INTERNALDATE, NOW)
    assert time.perf_counter() - started < 5
    assert meta.time.tzinfo is UTC
    assert len(meta.subject) <= 500
    for addr in meta.from_ + meta.to:
        assert addr.key and len(addr.name) <= 200


def test_huge_block_is_cut() -> None:
    raw = b"From: a@x.org\r\nSubject: " + b"y" * (MAX_BLOCK_BYTES + 10)
    meta = parse_message(raw, INTERNALDATE, NOW)
    assert meta.from_[0].email == "a@x.org"
    assert any("cut" in p for p in meta.problems)


# -- exchanges -----------------------------------------------------------------------------------


def test_sent_mail_is_out_to_every_recipient() -> None:
    meta = parse(
        "From: Alice <Alice+work@Example.org>",
        'To: "Berg, Anna" <anna@gmx.de>, alice@private.example',
        "Cc: Tom <tom.lee@googlemail.com>, noreply@x.org",
        "Bcc: anna+x@gmx.de, Pat <pat@y.org>",
    )
    result = exchanges(meta, SELF)
    assert result.direction == "out"
    assert [a.key for a in result.addrs] == ["anna@gmx.de", "tomlee@gmail.com", "pat@y.org"]
    assert result.addrs[0] == Addr("Berg, Anna", "anna@gmx.de", "anna@gmx.de")


def test_sent_mail_to_a_list_address_is_not_an_exchange_with_the_list() -> None:
    # the user's own post to a list: the list address is excluded (and the list headers
    # that the server adds to the copy make the message automated anyway)
    meta = parse("From: alice@example.org", "To: photo@lists.example.org, bob@x.org")
    result = exchanges(meta, SELF)
    assert [a.key for a in result.addrs] == ["photo@lists.example.org", "bob@x.org"]
    meta = parse(
        "From: alice@example.org",
        "To: photo@lists.example.org",
        "List-Post: <mailto:photo@lists.example.org>",
    )
    assert exchanges(meta, SELF) == Exchanges(None, ())


def test_received_mail_is_in_from_the_sender_only() -> None:
    meta = parse(
        "From: Anna <anna@gmx.de>",
        "To: alice@example.org, bob@x.org",
        "Cc: carol@y.org",
    )
    result = exchanges(meta, SELF)
    assert result.direction == "in"
    assert [a.key for a in result.addrs] == ["anna@gmx.de"]


def test_reply_to_counts_when_human() -> None:
    meta = parse(
        "From: form@shop.example", "Reply-To: Kunde <kunde@web.de>", "To: alice@example.org"
    )
    assert [a.key for a in exchanges(meta, SELF).addrs] == ["form@shop.example", "kunde@web.de"]


@pytest.mark.parametrize(
    "reply_to",
    ["noreply@x.org", "alice@example.org", "anna@gmx.de", "Anna <ANNA+x@gmx.de>"],
)
def test_reply_to_that_is_not_a_new_human_adds_nothing(reply_to: str) -> None:
    meta = parse("From: anna@gmx.de", f"Reply-To: {reply_to}")
    assert [a.key for a in exchanges(meta, SELF).addrs] == ["anna@gmx.de"]


def test_reply_to_of_a_noreply_sender_does_not_rescue_it() -> None:
    meta = parse("From: noreply@shop.example", "Reply-To: support@shop.example")
    assert meta.automated == "noreply-sender"
    assert exchanges(meta, SELF) == Exchanges(None, ())


def test_mail_to_self_is_no_exchange() -> None:
    meta = parse("From: alice@example.org", "To: Alice <alice+notes@example.org>")
    assert exchanges(meta, SELF) == Exchanges(None, ())


def test_missing_from_is_no_exchange() -> None:
    meta = parse("To: alice@example.org", "Subject: ?")
    assert meta.from_ == ()
    assert exchanges(meta, SELF) == Exchanges(None, ())


def test_exchanges_deduplicate_by_key_keeping_order() -> None:
    meta = parse(
        "From: alice@example.org",
        "To: Anna <anna@gmail.com>, a.n.n.a@googlemail.com, bob@x.org",
        "Cc: ANNA+cc@gmail.com, bob@X.org",
    )
    result = exchanges(meta, SELF)
    assert [a.email for a in result.addrs] == ["anna@gmail.com", "bob@x.org"]
    assert result.addrs[0].name == "Anna"


# -- properties ----------------------------------------------------------------------------------


def _assert_invariants(meta: MessageMeta, internaldate: datetime | None, now: datetime) -> None:
    # the safety net in parse_message must never be what saved us
    assert not any("could not be parsed" in p for p in meta.problems), meta.problems
    # every note is "Field: what happened", for counting by field
    assert all(p.split(":", 1)[0] in {*HEADER_FIELDS, "header"} for p in meta.problems)
    assert meta.time.tzinfo is UTC
    if meta.time_source == "date":
        assert EARLIEST_SANE_TIME <= meta.time <= now + timedelta(days=1)
    elif internaldate is not None:
        expected = internaldate if internaldate.tzinfo else internaldate.replace(tzinfo=UTC)
        assert meta.time == expected
    else:
        assert meta.time == now
    assert len(meta.subject) <= 500
    assert meta.subject.isprintable()
    for addr in (*meta.from_, *meta.to, *meta.cc, *meta.bcc, *meta.reply_to):
        assert addr.key == normalise_address(addr.email)
        assert addr.name.isprintable()
        assert addr.name == addr.name.strip()
        assert "  " not in addr.name
    for key in meta.list_addresses:
        assert normalise_address(key) == key
    for ident in (meta.message_id, meta.in_reply_to, *meta.references):
        assert ident is None or (ident and ident.isprintable() and " " not in ident)
    assert meta.language is None or meta.language.isalpha()
    ex = exchanges(meta, SELF)
    assert (ex.direction is None) == (ex.addrs == ())
    assert len({a.key for a in ex.addrs}) == len(ex.addrs)
    assert not any(a.key in SELF for a in ex.addrs)


_internaldates = st.one_of(
    st.none(),
    st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2100, 1, 1)),
    st.datetimes(
        min_value=datetime(1970, 1, 2), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000), _internaldates)
def test_parse_message_never_raises_on_arbitrary_bytes(
    raw: bytes, internaldate: datetime | None
) -> None:
    meta = parse_message(raw, internaldate, NOW)
    _assert_invariants(meta, internaldate, NOW)


_field_names = st.sampled_from([*HEADER_FIELDS, "X-Other", "from", "TO", "Subject "])
_atoms = st.sampled_from(
    [
        "a@x.org", "<b@y.de>", "Anna", '"Berg, Anna"', "=?utf-8?Q?M=C3=BCller,_H?=",
        "=?iso-8859-1?Q?J=FCrgen?=", "=?x-bad?B?!!?=", "=?utf-8?B?SsO8cmdlbg?=", ",", ";", ":",
        "(", ")", "<>", "<", ">", '"', "\\", " ", "\t", "\r\n ", "\r\n", "\x00", "ü",
        "noreply@x.org", "alice@example.org", "Tue, 14 Nov 2023 10:12:33 +0100", "-0000",
        "Thu, 01 Jan 1970 00:00:00 GMT", "99", "CEST", "mailto:", "list.example.org", "bulk",
        "auto-replied", "no", "+tag", "@", ".", "de-DE", "\u2028", "\u202e",
    ]
)  # fmt: skip
_values = st.lists(_atoms, max_size=12).map("".join)
_header_blocks = st.lists(st.tuples(_field_names, _values), max_size=12).map(
    lambda fields: "".join(f"{name}:{value}\r\n" for name, value in fields)
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_header_blocks, st.sampled_from(["utf-8", "latin-1"]), _internaldates)
def test_parse_message_never_raises_on_structured_header_blocks(
    text: str, encoding: str, internaldate: datetime | None
) -> None:
    raw = text.encode(encoding, "replace")
    meta = parse_message(raw, internaldate, NOW)
    _assert_invariants(meta, internaldate, NOW)
    assert parse_message(raw, internaldate, NOW) == meta  # memos change nothing


@settings(deadline=None)
@given(
    st.datetimes(
        min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    ),
    st.integers(min_value=-14 * 60, max_value=14 * 60),
    _internaldates,
)
def test_time_is_the_date_when_sane_else_internaldate(
    moment: datetime, offset_minutes: int, internaldate: datetime | None
) -> None:
    zone = timezone(timedelta(minutes=offset_minutes))
    local = moment.astimezone(zone).replace(microsecond=0)
    sign = "+" if offset_minutes >= 0 else "-"
    hours, minutes = divmod(abs(offset_minutes), 60)
    date = local.strftime(f"%a, %d %b %Y %H:%M:%S {sign}{hours:02d}{minutes:02d}")
    meta = parse_message(block(f"Date: {date}"), internaldate, NOW)
    _assert_invariants(meta, internaldate, NOW)
    sane = EARLIEST_SANE_TIME <= local <= NOW + timedelta(days=1)
    assert meta.time_source == ("date" if sane else "internaldate")
    if sane:
        assert meta.time == local
