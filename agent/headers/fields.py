"""Header bytes → unfolded field values: the block splitter, charsets, RFC 2047, and limits.

The scanner parses the header block of every message of every folder (100,000+ messages), so
this is the hot path of a scan.  It does not use ``email.parser``: a small splitter unfolds
the block and keeps only the fields asked for, and RFC 2047 is decoded only where ``=?``
occurs (``bench/headers.py`` times it against ``email.parser``).  Nothing here raises on bad
input: what is repaired or dropped is noted in ``problems``.
"""

from __future__ import annotations

import binascii
import codecs
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Final

from agent.text import one_line

__all__ = [
    "ANGLE_ID",
    "MAX_ADDRESS_CHARS",
    "MAX_ADDRESS_LIST_CHARS",
    "MAX_BLOCK_BYTES",
    "MAX_ID_CHARS",
    "MAX_NAME_CHARS",
    "MAX_STDLIB_CHARS",
    "MAX_SUBJECT_CHARS",
    "MAX_VALUE_CHARS",
    "decode_text",
    "snip",
    "split_fields",
]

# -- limits: bound the work any single message can cause ---------------------------------------

#: Header blocks beyond this are cut (a real HEADER.FIELDS answer is a few KiB).
MAX_BLOCK_BYTES: Final = 4 * 1024 * 1024
#: A single header value beyond this is cut before any parsing ...
MAX_VALUE_CHARS: Final = 64 * 1024
#: ... except an address list (To, Cc, Bcc, Reply-To), which is only cut with the block: a mail
#: to 10,000 people has a 300 KB To, and parsing plain lists is linear.
MAX_ADDRESS_LIST_CHARS: Final = MAX_BLOCK_BYTES
#: Address lists longer than this skip the stdlib parser (it is recursive on nested
#: comments/groups) and go to the crude extractor.
MAX_STDLIB_CHARS: Final = 16 * 1024
MAX_SUBJECT_CHARS: Final = 500
MAX_NAME_CHARS: Final = 200
MAX_ID_CHARS: Final = 998
#: Longest identity key we accept (RFC 5321 allows 254; bounce addresses run longer).
MAX_ADDRESS_CHARS: Final = 320


# -- notes and charsets ------------------------------------------------------------------------


def snip(text: str, limit: int = 60) -> str:
    """A short printable quote of bad input, for problem notes."""
    short = text if len(text) <= limit else text[:limit] + "…"
    return repr(short)


# Charset names that lie in practice: declared ISO-8859-1/ASCII text is very often
# windows-1252 or UTF-8 (the WHATWG encoding standard maps them the same way).
_CHARSET_ALIASES: Final = {
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "iso_8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "l1": "cp1252",
    "us-ascii": "utf-8",
    "ascii": "utf-8",
    "ansi_x3.4-1968": "utf-8",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "iso-8859-8-i": "iso-8859-8",
    "ks_c_5601-1987": "cp949",
    "euc-kr": "cp949",
    "windows-874": "cp874",
    "x-mac-roman": "mac-roman",
    "unicode-1-1-utf-7": "utf-7",
}
# Python codecs that are text encodings but would interpret mail text as escapes or IDNA.
_REFUSED_CODECS: Final = frozenset({"unicode-escape", "raw-unicode-escape", "punycode", "idna"})


@lru_cache(maxsize=512)
def _codec_for(charset: str) -> str | None:
    """The Python codec for a MIME charset name, or None if unknown."""
    name = charset.strip().lower().partition("*")[0]  # RFC 2231 language suffix: utf-8*de
    name = _CHARSET_ALIASES.get(name, name)
    try:
        info = codecs.lookup(name)
    except LookupError:
        return None
    if info.name in _REFUSED_CODECS or not getattr(info, "_is_text_encoding", True):
        return None
    return info.name


def _decode_bytes(data: bytes, charset: str, where: str, problems: list[str]) -> str:
    """Decode with the declared charset, else UTF-8, else cp1252, else latin-1; never fails."""
    codec = _codec_for(charset)
    if codec is not None:
        try:
            return data.decode(codec)
        except (UnicodeError, ValueError):
            pass
    if codec is None:
        problems.append(f"{where}: unknown charset {snip(charset, 40)}, guessed the text")
    else:
        problems.append(f"{where}: text is not valid {charset}, guessed the text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return data.decode("latin-1")


# An RFC 2047 encoded word.  Neither part can contain "?", so matching is linear.  The
# encoded text may (illegally, but it happens) contain spaces and raw 8-bit characters.
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?]*)\?=")


def _decode_words(text: str, where: str, problems: list[str]) -> str:
    """Decode RFC 2047 encoded words in ``text`` leniently.

    Whitespace between adjacent encoded words is dropped (RFC 2047 §6.2), and the bytes of
    adjacent words in the same charset are joined *before* decoding, because broken encoders
    split multi-byte characters across words.  A word that cannot be decoded stays as written.
    """
    out: list[str] = []
    pos = 0
    pending = b""
    pending_charset = ""
    after_word = False
    for match in _ENCODED_WORD.finditer(text):
        gap = text[pos : match.start()]
        charset, encoding, payload = match.groups()
        data = _word_bytes(encoding, payload)
        if data is None:
            problems.append(f"{where}: undecodable encoded word {snip(match.group(0), 40)}")
            if pending:
                out.append(_decode_bytes(pending, pending_charset, where, problems))
                pending = b""
            out.append(gap)
            out.append(match.group(0))
            after_word = False
            pos = match.end()
            continue
        if after_word and (not gap or gap.isspace()):
            gap = ""
        if gap or charset.lower() != pending_charset.lower():
            if pending:
                out.append(_decode_bytes(pending, pending_charset, where, problems))
            out.append(gap)
            pending = data
            pending_charset = charset
        else:
            pending += data
        after_word = True
        pos = match.end()
    if pending:
        out.append(_decode_bytes(pending, pending_charset, where, problems))
    out.append(text[pos:])
    return "".join(out)


_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/]")
# Whitespace (broken folding) and padding are forgiven; any other character means the text
# is not base64 at all, and decoding around it would show the user garbage.
_FOREIGN_IN_BASE64 = re.compile(rb"[^A-Za-z0-9+/=\s]")


def _word_bytes(encoding: str, payload: str) -> bytes | None:
    """The raw bytes of one encoded word's text, or None if it is not decodable."""
    raw = payload.encode("utf-8", "surrogateescape")
    if encoding in "qQ":
        return binascii.a2b_qp(raw, header=True)
    if _FOREIGN_IN_BASE64.search(raw):
        return None
    raw = _NOT_BASE64.sub(b"", raw)
    raw += b"=" * (-len(raw) % 4)
    try:
        return binascii.a2b_base64(raw)
    except (binascii.Error, ValueError):
        return None


def decode_text(value: str, where: str, problems: list[str]) -> str:
    """Decoded, cleaned text of an unstructured header value (Subject, names)."""
    if "=?" in value:
        value = _decode_words(value, where, problems)
    return one_line(value)


# -- header block ------------------------------------------------------------------------------

# Splits a header block into logical (unfolded) lines: a line break not followed by WSP.
# Starting with a literal "\n" lets the regex engine skip ahead with a fast scan.
_LOGICAL_LINE = re.compile(r"\n(?![ \t])")

# Address headers may legitimately repeat in broken mail; all their values are kept.
_ADDRESS_LIST_FIELDS: Final = frozenset({"to", "cc", "bcc", "reply-to"})
#: A bracketed id (Message-ID, References, List-Id): the text between ``<`` and ``>``.
ANGLE_ID: Final = re.compile(r"<([^<>]*)>")


def _decode_block(raw: bytes, problems: list[str]) -> str:
    """Header bytes → text.  Raw 8-bit bytes are UTF-8 if valid, else cp1252/latin-1 per line."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    lines: list[str] = []
    for line in raw.split(b"\n"):
        try:
            lines.append(line.decode("utf-8"))
        except UnicodeDecodeError:
            try:
                lines.append(line.decode("cp1252"))
            except UnicodeDecodeError:
                lines.append(line.decode("latin-1"))
    problems.append("header: raw 8-bit bytes are not UTF-8; decoded them as windows-1252")
    return "\n".join(lines)


def split_fields(raw: bytes, labels: Mapping[str, str], problems: list[str]) -> dict[str, str]:
    """Unfolded header values by lowercased name: the first occurrence, or all for address
    lists (joined with commas).  Stops at the first empty line (end of the header).

    ``labels`` maps the lowercased names of the wanted fields to their spelling in notes;
    every other field in the block is skipped.
    """
    if len(raw) > MAX_BLOCK_BYTES:
        problems.append(f"header: block of {len(raw)} bytes cut to {MAX_BLOCK_BYTES}")
        raw = raw[:MAX_BLOCK_BYTES]
    text = _decode_block(raw, problems).lstrip("\r\n")
    if "\r" in text and "\n" not in text:
        text = text.replace("\r", "\n")  # old Mac line ends
    fields: dict[str, str] = {}
    for line in _LOGICAL_LINE.split(text):
        name, colon, value = line.partition(":")
        if not colon:
            if not line or line == "\r":
                break  # the empty line that ends the header
            continue  # garbage line
        lname = name.lower()
        if lname not in labels:
            lname = lname.strip()  # obsolete syntax allows "Subject :"
            if lname not in labels:
                continue
        if "\n" in value:
            # Unfold: drop the line breaks, keep the whitespace that starts each continuation.
            value = value.replace("\r\n", "").replace("\n", "")
        limit = MAX_ADDRESS_LIST_CHARS if lname in _ADDRESS_LIST_FIELDS else MAX_VALUE_CHARS
        if len(value) > limit:
            label = labels[lname]
            problems.append(f"{label}: value of {len(value)} characters cut to {limit}")
            value = value[:limit]
        old = fields.get(lname)
        if old is None:
            fields[lname] = value
        elif lname in _ADDRESS_LIST_FIELDS:
            joined = f"{old},{value}"
            if len(joined) > limit:
                problems.append(f"{labels[lname]}: repeated fields of {len(joined)} characters "
                                f"cut to {limit}")
                joined = joined[:limit]
            fields[lname] = joined
    return fields

