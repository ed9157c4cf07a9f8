"""The words someone wrote in one message: decoded, without quotes, forwards or signature.

A text part fetched by ``Mailbox.fetch_text_part`` is read with mail-parser (charsets,
quoted-printable, base64; HTML-only mail from Outlook or Gmail web is turned into text, its
quoted blocks left out), then mail-parser-reply splits off what was quoted or forwarded
below German and English reply headers ("Am 2. Dez. 2026 um 07:30 schrieb …", "On … wrote:",
Outlook's "-----Original Message-----" and "Von: … Gesendet: …") and the signature.
"""

from __future__ import annotations

import html.parser
import logging
import re
from dataclasses import dataclass

import mailparser
from mailparser_reply import EmailReplyParser

log = logging.getLogger(__name__)

LANGUAGES = ("en", "de")


@dataclass(frozen=True)
class Written:
    """What one message says in its own words."""

    body: str  # the newest part, without quotes, forwards and signature
    signature: str  # the signature block under it ("" when none was found)


class _HtmlText(html.parser.HTMLParser):
    """HTML → text, leaving out quoted blocks (blockquote, Gmail's and Outlook's quotes)."""

    BLOCKS = frozenset({"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "table", "hr"})
    QUOTES = ("gmail_quote", "moz-cite-prefix", "yahoo_quoted")
    # Outlook puts the quoted message *after* its reply header, not inside it.
    QUOTE_FOLLOWS = ("divrplyfwdmsg", "outlookmessageheader", "appendonsend")

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self._skip: list[str] = []  # tags whose content is left out (a stack)
        self._ignored = 0  # <style>, <script>, <head>
        self._done = False  # everything from here on is quoted

    def _quoted(self, tag: str, attrs: list[tuple[str, str | None]]) -> bool:
        if tag == "blockquote":
            return True
        marks = " ".join((value or "") for name, value in attrs if name in ("class", "id"))
        if any(mark in marks.lower() for mark in self.QUOTE_FOLLOWS):
            self._done = True
        return any(mark in marks.lower() for mark in self.QUOTES)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._done:
            return
        if self._skip:
            if tag == self._skip[-1]:
                self._skip.append(tag)
            return
        if tag in ("style", "script", "head", "title"):
            self._ignored += 1
        elif self._quoted(tag, attrs):
            self._skip.append(tag)
        elif tag in self.BLOCKS:
            self.out.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if self._skip:
            if tag == self._skip[-1]:
                self._skip.pop()
            return
        if tag in ("style", "script", "head", "title"):
            self._ignored = max(0, self._ignored - 1)
        elif tag in self.BLOCKS:
            self.out.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip and not self._ignored and not self._done:
            self.out.append(data)


def html_text(markup: str) -> str:
    """The visible text of an HTML mail, without its quoted blocks, one line per block."""
    parser = _HtmlText()
    parser.feed(markup)
    parser.close()
    text = "".join(parser.out).replace("\xa0", " ")
    lines = [" ".join(line.split()) for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def text_of(raw: bytes) -> str:
    """The text of a message (or of a text part with its MIME headers), decoded."""
    mail = mailparser.parse_from_bytes(raw)
    if mail.text_plain:
        return "\n".join(mail.text_plain).replace("\r\n", "\n")
    if mail.text_html:
        return html_text("\n".join(mail.text_html))
    return ""


def written(text: str) -> Written:
    """The newest part of ``text`` (what was just written) and its signature."""
    if not text.strip():
        return Written("", "")
    try:
        mail = EmailReplyParser(languages=list(LANGUAGES)).read(text=text)
    except Exception:  # a library fed hostile mail: fall back to the whole text
        log.debug("reply parser failed; using the whole text", exc_info=True)
        return Written(text.strip(), "")
    if not mail.replies:
        return Written(text.strip(), "")
    newest = mail.replies[0]
    return Written((newest.body or "").strip(), (newest.signatures or "").strip())
