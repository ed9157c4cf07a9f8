"""Reading the few bodies followup fetches: the text part alone, decoded, without quotes.

Replies are built the way Thunderbird, Apple Mail, Gmail web and Outlook build them (quoted
digest, German and English reply headers, HTML-only, quoted-printable, base64).
"""

from __future__ import annotations

import base64
import quopri

import pytest

from agent.bodies import html_text, text_of, written
from agent.mailbox.parts import text_parts
from tests.kit import ME, open_mailbox
from tests.servers.account import ImapAccount

HEAD = f"From: Mia Example <{ME}>\r\nTo: {ME}\r\nSubject: Re: 3 Kontakte für heute\r\n"

THUNDERBIRD = (HEAD + "Content-Type: text/plain; charset=UTF-8; format=flowed\r\n"
               "Content-Transfer-Encoding: 8bit\r\n\r\n"
               "snooze 2 30d\r\nangerufen 1\r\n\r\n"
               "Am 02.12.26 um 07:30 schrieb Mia Example:\r\n"
               "> 3 Kontakte für heute\r\n> 1. Jürgen Weiß\r\n").encode()

APPLE = (HEAD + "Content-Type: text/plain; charset=utf-8\r\n"
         "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
         + quopri.encodestring(
             "ignore anna@studio.example\r\n\r\nViele Grüße\r\nMia\r\n\r\n"
             "> Am 02.12.2026 um 07:30 schrieb Mia Example <me@example.org>:\r\n>\r\n"
             "> Heute melden:\r\n".encode()).decode()).encode()

GMAIL_HTML = (
    '<div dir="ltr">called 1 2026-12-01<br>snooze 3 6w</div><br>'
    '<div class="gmail_quote"><div dir="ltr" class="gmail_attr">On Wed, Dec 2, 2026 at 7:30'
    ' AM Mia Example &lt;me@example.org&gt; wrote:<br></div><blockquote class="gmail_quote">'
    "Get in touch today: 3 people<br>1. Jürgen Weiß</blockquote></div>")
GMAIL = (HEAD + "Content-Type: text/html; charset=UTF-8\r\nContent-Transfer-Encoding: base64"
         "\r\n\r\n" + base64.encodebytes(GMAIL_HTML.encode()).decode()).encode()

OUTLOOK_HTML = (
    "<html><head><style>p{margin:0}</style></head><body><div>erledigt 2</div><div><br></div>"
    '<hr style="display:inline-block;width:98%"><div id="divRplyFwdMsg" dir="ltr">'
    "<b>Von:</b> Mia Example<br><b>Gesendet:</b> Mittwoch, 2. Dezember 2026 07:30<br>"
    "<b>Betreff:</b> 3 Kontakte</div><div>Heute melden: 1. Jürgen</div></body></html>")
OUTLOOK = (HEAD + "Content-Type: text/html; charset=iso-8859-1\r\n"
           "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
           + quopri.encodestring(OUTLOOK_HTML.encode("latin-1")).decode()).encode()

OUTLOOK_PLAIN = (HEAD + "Content-Type: text/plain; charset=utf-8\r\n\r\n"
                 "rhythmus anna@studio.example 45\r\n\r\n-----Original Message-----\r\n"
                 "From: Mia Example\r\nSent: Wednesday, December 2, 2026 7:30 AM\r\n"
                 "Subject: 3 people\r\n\r\nGet in touch today\r\n").encode()


@pytest.mark.parametrize(("raw", "expected"), [
    (THUNDERBIRD, "snooze 2 30d\nangerufen 1"),
    (APPLE, "ignore anna@studio.example"),
    (GMAIL, "called 1 2026-12-01\nsnooze 3 6w"),
    (OUTLOOK, "erledigt 2"),
    (OUTLOOK_PLAIN, "rhythmus anna@studio.example 45"),
], ids=["thunderbird", "apple-mail", "gmail-web-html", "outlook-html", "outlook-plain"])
def test_the_new_words_of_a_reply_without_its_quote(raw: bytes, expected: str) -> None:
    got = written(text_of(raw))
    assert got.body == expected
    assert "Jürgen" not in got.body and "Heute" not in got.body


def test_the_signature_is_told_apart() -> None:
    text = ("Danke, bis bald!\n\nViele Grüße\nAnna Berg\nTel.: +49 30 1234567\n\n"
            "Am 01.12.2026 um 09:00 schrieb Mia:\n> Hallo Anna\n")
    got = written(text)
    assert got.body == "Danke, bis bald!"
    assert "+49 30 1234567" in got.signature and "Hallo Anna" not in got.signature


def test_html_text_keeps_lines_and_drops_quotes_and_styles() -> None:
    assert html_text("<style>x{}</style><p>a &amp; b</p><blockquote>old</blockquote><div>c"
                     "</div>") == "a & b\n\nc"


# --------------------------------------------------------------------------- on real servers


ALTERNATIVE = (HEAD + 'Content-Type: multipart/mixed; boundary="m"\r\n\r\n--m\r\n'
               'Content-Type: multipart/alternative; boundary="a"\r\n\r\n--a\r\n'
               "Content-Type: text/plain; charset=utf-8\r\n"
               "Content-Transfer-Encoding: quoted-printable\r\n\r\nsnooze 1 3m=0D=0A\r\n--a\r\n"
               "Content-Type: text/html; charset=utf-8\r\n\r\n<p>snooze 1 3m</p>\r\n--a--\r\n"
               "--m\r\nContent-Type: text/plain; name=notes.txt\r\n"
               "Content-Disposition: attachment; filename=notes.txt\r\n\r\n"
               + "attachment " * 5000 + "\r\n--m--\r\n").encode()


@pytest.mark.parametrize(("raw", "expected"), [
    (ALTERNATIVE, "snooze 1 3m"),
    (GMAIL, "called 1 2026-12-01\nsnooze 3 6w"),
    (OUTLOOK, "erledigt 2"),
], ids=["plain-of-alternative", "html-only-base64", "html-only-latin1"])
def test_only_the_text_part_is_fetched(imap_account: ImapAccount, raw: bytes,
                                       expected: str) -> None:
    imap_account.append("INBOX", raw)
    (uid,) = imap_account.folder_uids("INBOX")
    with open_mailbox(imap_account) as mailbox:
        part = mailbox.fetch_text_part("INBOX", uid, cap=2000)
    assert part is not None and len(part) < 2300  # the attachment never came
    assert written(text_of(part)).body == expected


def test_a_capped_part_still_decodes(imap_account: ImapAccount) -> None:
    long_text = "snooze 1 30d\r\n\r\n" + "Zeile mit Umlauten äöü\r\n" * 2000
    raw = (HEAD + "Content-Type: text/plain; charset=utf-8\r\n"
           "Content-Transfer-Encoding: base64\r\n\r\n"
           + base64.encodebytes(long_text.encode()).decode()).encode()
    imap_account.append("INBOX", raw)
    (uid,) = imap_account.folder_uids("INBOX")
    with open_mailbox(imap_account) as mailbox:
        part = mailbox.fetch_text_part("INBOX", uid, cap=4096)
    assert part is not None
    assert text_of(part).startswith("snooze 1 30d\n")


def test_text_parts_of_a_structure_skip_attachments() -> None:
    structure = ([(b"text", b"plain", (b"charset", b"utf-8"), None, None, b"7bit", 10, 1),
                  (b"text", b"plain", (b"name", b"a.txt"), None, None, b"base64", 99, 2, None,
                   (b"attachment", (b"filename", b"a.txt")))], b"mixed")
    parts = text_parts(structure)
    assert [(p.section, p.subtype, p.charset) for p in parts] == [("1", "plain", "utf-8")]
