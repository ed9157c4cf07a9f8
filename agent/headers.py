"""Raw header bytes → MessageMeta: addresses, an aware UTC time and the automated-mail verdict.

The scanner calls :func:`parse_message` once for every message of every folder, so this module
sits on the hot path of a scan (100,000+ messages).  It therefore does not use
``email.parser``/``email.message``: a small splitter unfolds the header block, RFC 2047 is
decoded only where ``=?`` occurs, the common address shapes are split by a fast path and only
unusual ones (comments, groups, escapes) go to ``email.utils.getaddresses``.  Parsed address
lists are memoised because the same ``From``/``To`` values recur all over a mailbox.

Nothing here raises on bad input: whatever is repaired or dropped is written to
``MessageMeta.problems`` so the scanner can log a reason (SPEC "Non-negotiables").
"""

from __future__ import annotations

import binascii
import codecs
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import getaddresses, parsedate_tz
from functools import lru_cache
from typing import Final, Literal, TypeVar
from urllib.parse import unquote

from agent.text import one_line

__all__ = [
    "HEADER_FIELDS",
    "Addr",
    "Exchanges",
    "MessageMeta",
    "exchanges",
    "is_automated_address",
    "normalise_address",
    "parse_message",
]

logger = logging.getLogger(__name__)

#: The fields the scanner asks for with ``BODY.PEEK[HEADER.FIELDS (...)]``.
HEADER_FIELDS: Final[tuple[str, ...]] = (
    "From",
    "To",
    "Cc",
    "Bcc",
    "Reply-To",
    "Date",
    "Subject",
    "Message-ID",
    "In-Reply-To",
    "References",
    "List-Id",
    "List-Post",
    "List-Unsubscribe",
    "List-Help",
    "List-Subscribe",
    "List-Owner",
    "List-Archive",
    "Precedence",
    "Auto-Submitted",
    "Return-Path",
    "X-Auto-Response-Suppress",
    "X-Autoreply",
    "X-Autorespond",
    "X-Followup-Digest",
    "X-Followup-Checkin",
    "Content-Language",
)

# -- limits: bound the work any single message can cause --------------------------------------

#: Header blocks beyond this are cut (a real HEADER.FIELDS answer is a few KiB).
MAX_BLOCK_BYTES: Final = 4 * 1024 * 1024
#: A single header value beyond this is cut before any parsing.
MAX_VALUE_CHARS: Final = 64 * 1024
#: Address lists longer than this skip the stdlib parser (it is recursive on nested
#: comments/groups) and go to the crude extractor.
_MAX_STDLIB_CHARS: Final = 16 * 1024
MAX_SUBJECT_CHARS: Final = 500
MAX_NAME_CHARS: Final = 200
MAX_ID_CHARS: Final = 998
#: Longest identity key we accept (RFC 5321 allows 254; bounce addresses run longer).
MAX_ADDRESS_CHARS: Final = 320

#: Oldest Date we believe; anything earlier is a broken clock (1970 epoch dates, etc.).
EARLIEST_SANE_TIME: Final = datetime(1990, 1, 1, tzinfo=UTC)
#: How far a Date may lie in the future of ``now`` (clock skew) before we distrust it.
FUTURE_TOLERANCE: Final = timedelta(days=1)


# -- public data -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Addr:
    """One mailbox of an address header."""

    name: str  # decoded display name ("" if none): whitespace collapsed, no control characters
    email: str  # the address as written, trimmed, domain lowercased
    key: str  # identity key: normalise_address(email); never empty


@dataclass(frozen=True, slots=True)
class MessageMeta:
    """Everything the rest of the program needs to know about one message."""

    message_id: str | None
    time: datetime  # aware, UTC
    time_source: Literal["date", "internaldate"]
    subject: str
    from_: tuple[Addr, ...]
    to: tuple[Addr, ...]
    cc: tuple[Addr, ...]
    bcc: tuple[Addr, ...]
    reply_to: tuple[Addr, ...]
    in_reply_to: str | None
    references: tuple[str, ...]
    automated: str | None  # None for human mail, else a short reason
    list_addresses: frozenset[str]  # identity keys of mailing lists this message reveals
    language: str | None  # primary subtag of Content-Language, lowercased
    followup_checkin: str | None  # value of X-Followup-Checkin if present
    # Repairs made, for the log.  Each note reads "Field: what happened" (the field, or
    # "header" for the block as a whole), so callers can count them by the part before ":".
    problems: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Exchanges:
    """The exchanges one message makes: ``direction`` is None exactly when ``addrs`` is empty."""

    direction: Literal["in", "out"] | None
    addrs: tuple[Addr, ...]


# -- memos ---------------------------------------------------------------------------------------

_AddressCacheEntry = tuple[tuple[Addr, ...], tuple[str, ...]]
_MailboxCacheEntry = tuple[Addr | None, tuple[str, ...]]

# Memos: the same From/To values and the same mailboxes recur all over a mailbox.  Each is
# bounded by dropping everything when full, which costs one batch of misses.
_MEMO_MAX: Final = 20_000
_MEMO_VALUE_MAX: Final = 1_000  # longer values are not memoised
_ADDRESS_CACHE: dict[str, _AddressCacheEntry] = {}
_MAILBOX_MEMO: dict[tuple[str, str], _MailboxCacheEntry] = {}
_AUTOMATED_MEMO: dict[str, bool] = {}

_K = TypeVar("_K")
_V = TypeVar("_V")


def _remember(memo: dict[_K, _V], key: _K, value: _V) -> None:
    if len(memo) >= _MEMO_MAX:
        memo.clear()
    memo[key] = value


def clear_memos() -> None:
    """Forget memoised parses (for tests and benchmarks)."""
    _ADDRESS_CACHE.clear()
    _MAILBOX_MEMO.clear()
    _AUTOMATED_MEMO.clear()


# -- identity ----------------------------------------------------------------------------------

# Anything that cannot appear in a plain, unquoted addr-spec: whitespace (incl. Unicode
# spaces), controls, RFC 5322 specials, and lone surrogates.
_BAD_ADDRESS_CHAR = re.compile(r'[\s\x00-\x1f\x7f-\x9f<>()\[\],;:\\"\ud800-\udfff]')
_GMAIL_DOMAINS: Final = frozenset({"gmail.com", "googlemail.com"})


def normalise_address(address: str) -> str | None:
    """The identity key of an address, or None if it is not a plausible plain address.

    Rules (SPEC "Identity"):

    * trim whitespace and one pair of surrounding ``<>``;
    * exactly one ``@``, a non-empty local part and domain; no whitespace, control
      characters, quotes or other RFC 5322 specials anywhere (quoted local parts and domain
      literals are so rare in personal mail that we drop them rather than mis-key them);
    * the domain must contain a dot with no empty labels, except the single-label
      ``localhost`` (used by test and demo servers); one trailing dot (FQDN form) is dropped;
    * local part and domain are lowercased (case-insensitive local parts are pragmatic:
      every big provider treats them so);
    * ``+tag`` subaddresses fold into the base: ``anna+news@x.org`` → ``anna@x.org``.  A
      local part that *starts* with ``+`` has no base and is kept whole (``+1555@x.org``);
    * Gmail: for gmail.com and googlemail.com dots in the local part are ignored and the
      domain becomes gmail.com;
    * the result is at most MAX_ADDRESS_CHARS long.

    The function is idempotent: ``normalise_address(k) == k`` for every key it returns.
    """
    if not isinstance(address, str):
        return None
    text = address.strip()
    if text[:1] == "<" and text[-1:] == ">":
        text = text[1:-1].strip()
    if len(text) > MAX_ADDRESS_CHARS or text.count("@") != 1:
        return None
    if _BAD_ADDRESS_CHAR.search(text) is not None:
        return None
    key = text.lower()
    local, _, domain = key.partition("@")
    if domain[-1:] == ".":
        domain = domain[:-1]  # FQDN form "x.org."
    if not local or not domain:
        return None
    if "." in domain:
        if domain[0] == "." or domain[-1] == "." or ".." in domain:
            return None
    elif domain != "localhost":
        return None
    plus = local.find("+")
    if plus > 0:
        local = local[:plus]
    if domain in _GMAIL_DOMAINS:
        local = local.replace(".", "")
        domain = "gmail.com"
        if not local:
            return None
    if len(local) + len(domain) + 1 != len(key):
        key = f"{local}@{domain}"  # every rule above only ever shortens the address
    if not key.isascii() and (len(key) > MAX_ADDRESS_CHARS or key.lower() != key):
        # Lowercasing can lengthen a string (İ → i̇) or, for a handful of code points, not be
        # stable; refusing such keys keeps the function idempotent.
        return None
    return key


_AUTOMATED_LOCAL = re.compile(
    r"""
      (?:mailer[-_.]?daemon|postmaster|bounces?)        # the whole local part
    | (?:no|do[-_.]?not)[-_.]?reply(?:[-_.+].*)?         # noreply, do-not-reply, noreply-x
    | .*[-_.+](?:no|do[-_.]?not)[-_.]?reply              # x-noreply, x_noreply, x.noreply
    | .*-request                                         # list admin: list-request
    | owner-.*                                           # list admin: owner-list
    | .*[-_.]bounces?                                    # list-bounces, x-bounce
    | bounces?[-_.+].*                                   # VERP: bounce-123, bounces+x
    """,
    re.VERBOSE | re.DOTALL,
)


def is_automated_address(key: str) -> bool:
    """True if the local part says a machine sends or receives mail there.

    Judged by the local part only — never by domain: gmx.de, web.de, gmail.com are people.
    Covers MAILER-DAEMON, postmaster, noreply/no-reply/no_reply/donotreply/do-not-reply/
    do_not_reply and ``…-noreply``/``noreply-…`` variants (``-``, ``_``, ``.``, ``+``),
    list administration addresses (``…-request``, ``owner-…``) and bounce addresses
    (``bounce``, ``bounces``, ``…-bounces``, ``bounce-…``).
    """
    known = _AUTOMATED_MEMO.get(key)
    if known is None:
        local = key.rpartition("@")[0].strip().lstrip("<").lower() if "@" in key else key.lower()
        plus = local.find("+")
        if plus > 0:
            local = local[:plus]
        known = _AUTOMATED_LOCAL.fullmatch(local) is not None
        if len(key) <= _MEMO_VALUE_MAX:
            _remember(_AUTOMATED_MEMO, key, known)
    return known


# -- text repair -------------------------------------------------------------------------------


def _snip(text: str, limit: int = 60) -> str:
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
        problems.append(f"{where}: unknown charset {_snip(charset, 40)}, guessed the text")
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
            problems.append(f"{where}: undecodable encoded word {_snip(match.group(0), 40)}")
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


def _decode_text(value: str, where: str, problems: list[str]) -> str:
    """Decoded, cleaned text of an unstructured header value (Subject, names)."""
    if "=?" in value:
        value = _decode_words(value, where, problems)
    return one_line(value)


# -- header block ------------------------------------------------------------------------------

# Splits a header block into logical (unfolded) lines: a line break not followed by WSP.
# Starting with a literal "\n" lets the regex engine skip ahead with a fast scan.
_LOGICAL_LINE = re.compile(r"\n(?![ \t])")

#: Lowercased names of the fields we use; any other field in the block is skipped.
_FIELD_LABELS: Final = {name.lower(): name for name in HEADER_FIELDS}
_WANTED_FIELDS: Final = frozenset(_FIELD_LABELS)

# Address headers may legitimately repeat in broken mail; all their values are kept.
_ADDRESS_LIST_FIELDS: Final = frozenset({"to", "cc", "bcc", "reply-to"})


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


def _split_fields(raw: bytes, problems: list[str]) -> dict[str, str]:
    """Unfolded header values by lowercased name: the first occurrence, or all for address
    lists (joined with commas).  Stops at the first empty line (end of the header)."""
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
        if lname not in _WANTED_FIELDS:
            lname = lname.strip()  # obsolete syntax allows "Subject :"
            if lname not in _WANTED_FIELDS:
                continue
        if "\n" in value:
            # Unfold: drop the line breaks, keep the whitespace that starts each continuation.
            value = value.replace("\r\n", "").replace("\n", "")
        if len(value) > MAX_VALUE_CHARS:
            label = _FIELD_LABELS[lname]
            problems.append(f"{label}: value of {len(value)} characters cut to {MAX_VALUE_CHARS}")
            value = value[:MAX_VALUE_CHARS]
        old = fields.get(lname)
        if old is None:
            fields[lname] = value
        elif lname in _ADDRESS_LIST_FIELDS:
            fields[lname] = f"{old},{value}"[:MAX_VALUE_CHARS]
    return fields


# -- addresses ---------------------------------------------------------------------------------

# Comments, groups, quoted-pairs, route addresses: left to the stdlib parser.
_UNUSUAL_ADDRESS_SYNTAX = re.compile(r"[():;\\]")
# One list element: quoted strings may contain commas.  Possessive, so no backtracking.
_LIST_ELEMENT = re.compile(r'(?:"[^"]*"|[^",]++)++')
# A Q-encoded word, whose text may (illegally) hold a raw comma: "=?utf-8?Q?M=C3=BCller,_H?=".
_Q_WORD = re.compile(r"=\?[^?\s]+\?[qQ]\?[^?]*\?=")
# Last resort for hostile input: anything that looks like an addr-spec.
_CRUDE_ADDRESS = re.compile(r"[^\s<>()\[\],;:\"\\@]{1,256}@[^\s<>()\[\],;:\"\\@]{1,256}")


def _split_simple(value: str) -> list[tuple[str, str]] | None:
    """(name, address) pairs for the common shapes, or None to ask the stdlib parser.

    Handles ``a@x``, ``Name <a@x>``, ``"Name, Quoted" <a@x>`` and lists of these.
    """
    if _UNUSUAL_ADDRESS_SYNTAX.search(value) is not None:
        return None
    if '"' in value:
        if value.count('"') % 2:
            return None
        parts = _LIST_ELEMENT.findall(value)
    else:
        parts = value.split(",")
    pairs: list[tuple[str, str]] = []
    for part in parts:
        lt = part.find("<")
        if lt < 0:
            address = part.strip()
            if not address:
                continue
            if '"' in address or ">" in address or len(address.split()) != 1:
                return None
            pairs.append(("", address))
            continue
        gt = part.find(">", lt)
        if gt < 0 or part.find("<", lt + 1) >= 0 or part[gt + 1 :].strip():
            return None
        pairs.append((part[:lt], part[lt + 1 : gt]))
    return pairs


# RFC 5322 specials inside a Q-encoded word, as their own Q escapes (identical text once
# decoded): real mailers put raw commas, colons and even "@" into encoded display names.
_Q_SPECIALS: Final = {ord(c): f"={ord(c):02X}" for c in ',:;@<>()"\\[]'}


def _protect_q_word(match: re.Match[str]) -> str:
    return match.group(0).translate(_Q_SPECIALS)


def _parse_address_list(value: str) -> _AddressCacheEntry:
    """Split an address header into Addr objects; notes say what was dropped or repaired."""
    notes: list[str] = []
    if "=?" in value:
        # A comma (or other special) inside an encoded display name must not split the
        # address.  In Q encoding "=2C" *is* a comma, so this changes nothing but the parse.
        value = _Q_WORD.sub(_protect_q_word, value)
    pairs = _split_simple(value)
    unusual = pairs is None
    if pairs is None:
        pairs = _split_stdlib(value, notes)
    addrs: list[Addr] = []
    lost = False
    for pair in pairs:
        entry = _MAILBOX_MEMO.get(pair)
        if entry is None:
            entry = _parse_mailbox(*pair)
            _remember(_MAILBOX_MEMO, pair, entry)
        addr, mailbox_notes = entry
        if addr is not None:
            addrs.append(addr)
        if mailbox_notes:
            notes.extend(mailbox_notes)
            lost = lost or addr is None
    if unusual and lost:
        _salvage(value, addrs, notes)
    return tuple(addrs), tuple(notes)


def _salvage(value: str, addrs: list[Addr], notes: list[str]) -> None:
    """Add bare addresses the parser lost in malformed lists ("a@x.org b@y.org")."""
    known = {addr.key for addr in addrs}
    for found in _CRUDE_ADDRESS.findall(value):
        key = normalise_address(found)
        if key is not None and key not in known:
            known.add(key)
            local, _, domain = found.rpartition("@")
            addrs.append(Addr("", f"{local}@{domain.lower()}", key))
            notes.append(f"salvaged address {_snip(found)} from a malformed list")


def _parse_mailbox(raw_name: str, raw_address: str) -> tuple[Addr | None, tuple[str, ...]]:
    """One (display name, address) pair → Addr, or None if the address is unusable."""
    address = raw_address.strip()
    if address[:1] == "<" and address[-1:] == ">":
        address = address[1:-1].strip()
    if not address:
        return None, ()  # group labels, "undisclosed-recipients:;", empty elements
    key = normalise_address(address)
    if key is None:
        return None, (f"ignored unusable address {_snip(address)}",)
    local, _, domain = address.rpartition("@")
    email = f"{local}@{domain.lower()}"
    notes: list[str] = []
    return Addr(_display_name(raw_name, email, notes), email, key), tuple(notes)


def _split_stdlib(value: str, notes: list[str]) -> list[tuple[str, str]]:
    """Unusual syntax via email.utils.getaddresses, guarded against its recursion."""
    if len(value) <= _MAX_STDLIB_CHARS:
        try:
            return getaddresses([value])
        except (RecursionError, ValueError, IndexError, TypeError):
            pass
    notes.append("address list could not be parsed; kept only bare addresses")
    return [("", found) for found in _CRUDE_ADDRESS.findall(value)]


def _display_name(raw_name: str, email: str, notes: list[str]) -> str:
    """Decoded, unquoted, one-line display name; "" if it only repeats the address."""
    name = raw_name.strip()
    if not name:
        return ""
    name = _unquote(_decode_text(_unquote(name), "display name", notes))
    if len(name) > MAX_NAME_CHARS:
        name = name[:MAX_NAME_CHARS].rstrip()
    if name.strip("<>'\" ").lower() == email.lower():
        return ""
    return name


def _unquote(name: str) -> str:
    """Remove one pair of surrounding double or single quotes (Outlook writes 'Name')."""
    if len(name) >= 2 and name[0] == name[-1] and name[0] in "\"'":
        return name[1:-1].strip()
    return name


def _addresses(value: str | None, label: str, problems: list[str]) -> tuple[Addr, ...]:
    """The parsed addresses of one header, memoised by raw value."""
    if value is None:
        return ()
    entry = _ADDRESS_CACHE.get(value)
    if entry is None:
        entry = _parse_address_list(value)
        if len(value) <= _MEMO_VALUE_MAX:
            _remember(_ADDRESS_CACHE, value, entry)
    addrs, notes = entry
    if notes:
        problems.extend(f"{label}: {note}" for note in notes)
    return addrs


# -- dates -------------------------------------------------------------------------------------

# Named zones parsedate_tz does not know (it maps them to +0000), in minutes east of UTC.
# Ambiguous abbreviations (IST, CST in Asia, …) are deliberately left out.
_EXTRA_ZONES: Final = {
    "CET": 60,
    "MET": 60,
    "MEZ": 60,
    "CEST": 120,
    "MEST": 120,
    "MESZ": 120,
    "WET": 0,
    "WEST": 60,
    "BST": 60,
    "EET": 120,
    "EEST": 180,
    "MSK": 180,
    "JST": 540,
    "KST": 540,
    "HKT": 480,
    "SGT": 480,
    "AEST": 600,
    "AEDT": 660,
    "NZST": 720,
    "NZDT": 780,
    "HST": -600,
    "AKST": -540,
    "AKDT": -480,
}
_CANONICAL_DATE = re.compile(
    r"(?:[A-Za-z]{3},\s*)?(\d{1,2})\s+([A-Za-z]{3})\s+(\d{4})\s+(\d\d):(\d\d):(\d\d)"
    r"\s*([+-])(\d\d)(\d\d)(?!\d)"
)
_MONTHS: Final = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}
_UTC_ZONES: Final = frozenset({"UT", "UTC", "GMT", "Z"})
_ZONE_AFTER_TIME = re.compile(r"\d:\d\d(?::\d\d(?:\.\d+)?)?\s*([A-Za-z]{1,5})\b")
_NUMERIC_ZONE = re.compile(r"[+-]\d{4}\b")
_MAX_ZONE_SECONDS: Final = 14 * 3600  # the widest real offset (Kiribati)
# A numeric zone in a non-RFC spelling right after the time: "+01:00", "GMT+0100", "UTC+1".
_OFFSET_ZONE = re.compile(r"(\d:\d\d)\s*(?:GMT|UTC|UT)?\s*([+-])(\d\d?)(?::?(\d\d))?(?!\d)",
                          re.IGNORECASE)


def _offset_zone(match: re.Match[str]) -> str:
    time_end, sign, hours, minutes = match.groups()
    return f"{time_end} {sign}{int(hours):02d}{minutes or '00'}"


def _parse_date(value: str, problems: list[str]) -> datetime | None:
    """An RFC 5322 Date (lenient: two-digit years, named zones) as aware UTC, or None.

    ``-0000`` ("no zone information") is taken as UTC; so is an unknown zone name, with a
    note.  The sanity window is applied by the caller.
    """
    text = value.strip()
    if not text or len(text) > 200:
        return None
    match = _CANONICAL_DATE.match(text)
    month = _MONTHS.get(match.group(2).lower(), 0) if match is not None else 0
    if match is not None and month:
        # Fast path for what nearly every mailer writes: "Tue, 14 Nov 2023 10:12:33 +0100".
        day_s, _, year_s, hour_s, minute_s, second_s, sign, zone_h, zone_m = match.groups()
        day, year, hour, minute = int(day_s), int(year_s), int(hour_s), int(minute_s)
        second = int(second_s)
        offset = (int(zone_h) * 60 + int(zone_m)) * (60 if sign == "+" else -60)
    else:
        # "+01:00", "GMT+0100", "UTC+1" (scripts, JavaScript's Date.toString) mean that offset;
        # parsedate_tz would silently read them as UTC.
        text = _OFFSET_ZONE.sub(_offset_zone, text)
        try:
            parsed = parsedate_tz(text)
        except (ValueError, IndexError, TypeError, OverflowError):
            return None
        if parsed is None:
            return None
        year, month, day, hour, minute, second = parsed[:6]
        offset = parsed[9] or 0
    if offset == 0 and _NUMERIC_ZONE.search(text) is None:
        zone_match = _ZONE_AFTER_TIME.search(text)
        zone = zone_match.group(1).upper() if zone_match else ""
        if zone in _EXTRA_ZONES:
            offset = _EXTRA_ZONES[zone] * 60
        elif zone not in _UTC_ZONES:
            problems.append(f"Date: no usable time zone in {_snip(text)}; assumed UTC")
    if abs(offset) > _MAX_ZONE_SECONDS:
        problems.append(f"Date: impossible zone offset in {_snip(text)}; assumed UTC")
        offset = 0
    if second == 60:
        second = 59  # leap second
    try:
        local = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
        return local - _offset_delta(offset) if offset else local
    except (ValueError, OverflowError):
        return None


_OFFSET_DELTAS: dict[int, timedelta] = {}


def _offset_delta(seconds: int) -> timedelta:
    """timedelta(seconds=...) for a zone offset; there are only a few dozen real ones."""
    delta = _OFFSET_DELTAS.get(seconds)
    if delta is None:
        delta = _OFFSET_DELTAS[seconds] = timedelta(seconds=seconds)
    return delta


def _as_utc(moment: datetime | None) -> datetime | None:
    """An aware UTC datetime; a naive one is taken to be UTC already."""
    if moment is None or moment.tzinfo is UTC:
        return moment
    try:
        if moment.tzinfo is None or moment.utcoffset() is None:
            return moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)
    except (ValueError, OverflowError, TypeError, AttributeError):
        return None


def _message_time(
    date_value: str | None,
    internaldate: datetime | None,
    now: datetime | None,
    problems: list[str],
) -> tuple[datetime, Literal["date", "internaldate"]]:
    """SPEC "Last exchange": the Date header when it parses to a sane instant — not before
    1990-01-01 and not more than a day after ``now`` — else the server's INTERNALDATE.  With
    neither, ``now`` (a deterministic stand-in, noted as a problem)."""
    if date_value is not None:
        parsed = _parse_date(date_value, problems)
        if parsed is None:
            reason = f"Date: {_snip(date_value.strip())} is unparseable"
        else:
            clock = _as_utc(now) or datetime.now(UTC)
            if parsed >= EARLIEST_SANE_TIME and parsed - FUTURE_TOLERANCE <= clock:
                return parsed, "date"
            when = "in the future" if parsed > clock else "before 1990"
            reason = f"Date: {_snip(date_value.strip())} is {when}"
    else:
        reason = "Date: missing"
    fallback = _as_utc(internaldate)
    if fallback is not None:
        problems.append(f"{reason}; used INTERNALDATE")
        return fallback, "internaldate"
    problems.append(f"{reason} and no INTERNALDATE; used the current time")
    return _as_utc(now) or datetime.now(UTC), "internaldate"


# -- ids and small fields ----------------------------------------------------------------------

_ANGLE_ID = re.compile(r"<([^<>]*)>")


def _clean_id(text: str) -> str | None:
    """A message id without brackets, whitespace or control characters; None if empty."""
    ident = text.strip()
    if " " in ident or not ident.isprintable():
        ident = "".join(one_line(ident).split())
    ident = ident.strip("<>")
    return ident[:MAX_ID_CHARS] if ident else None


def _first_id(value: str | None) -> str | None:
    """The first ``<id>`` of a Message-ID/In-Reply-To value, without brackets.

    Values without brackets (some mailers omit them) are taken whole when they are one word.
    """
    if value is None:
        return None
    lt = value.find("<")
    if lt >= 0:
        gt = value.find(">", lt)
        if gt > lt:
            return _clean_id(value[lt + 1 : gt])
    words = value.split()
    if len(words) == 1:
        return _clean_id(words[0])
    return None


def _all_ids(value: str | None) -> tuple[str, ...]:
    """Every id of a References value, in order, without brackets."""
    if value is None:
        return ()
    found = _ANGLE_ID.findall(value) if "<" in value else value.split()
    return tuple(ident for ident in map(_clean_id, found) if ident is not None)


def _language(value: str | None) -> str | None:
    """Primary subtag of the first Content-Language tag ("de-DE, en" → "de")."""
    if value is None:
        return None
    first = value.split(",", 1)[0].strip().replace("_", "-")
    primary = first.split("-", 1)[0].lower()
    if 2 <= len(primary) <= 3 and primary.isascii() and primary.isalpha():
        return primary
    return None


_NO_KEYS: Final[frozenset[str]] = frozenset()
_MAILTO = re.compile(r"<\s*mailto:\s*([^>?\s]+)", re.IGNORECASE)


def _list_addresses(fields: dict[str, str]) -> frozenset[str]:
    """Identity keys of the mailing list(s) a message reveals.

    ``List-Post: <mailto:list@host>`` gives the posting address; ``List-Id: Desc <a.b.c>``
    gives ``a@b.c`` (RFC 2919 list ids are "listname.domain": Mailman and Google Groups
    build them exactly so).
    """
    post = fields.get("list-post")
    list_id = fields.get("list-id")
    if post is None and list_id is None:
        return _NO_KEYS
    keys: set[str] = set()
    if post is not None:
        for target in _MAILTO.findall(post[:4096]):
            key = normalise_address(unquote(target))
            if key is not None:
                keys.add(key)
    if list_id is not None:
        ids = _ANGLE_ID.findall(list_id[:4096])
        candidate = ids[-1] if ids else list_id
        candidate = candidate.strip()
        local, dot, domain = candidate.partition(".")
        if dot and " " not in candidate:
            key = normalise_address(f"{local}@{domain}")
            if key is not None:
                keys.add(key)
    return frozenset(keys)


# -- automated mail ----------------------------------------------------------------------------

_LIST_FIELDS: Final = (
    "list-id",
    "list-post",
    "list-unsubscribe",
    "list-help",
    "list-subscribe",
    "list-owner",
    "list-archive",
)
# X-Auto-Response-Suppress is a marker because SPEC says so.  Beware: Exchange also stamps it
# on some mail that people write (it asks *receivers* not to auto-reply), so helpdesk
# vendors warn that filtering on it drops real mail.  Removing it here is a one-word change.
_AUTORESPONDER_FIELDS: Final = ("x-autoreply", "x-autorespond", "x-auto-response-suppress")
_MARKER_FIELDS: Final = frozenset(
    {"x-followup-digest", *_LIST_FIELDS, "precedence", "auto-submitted", *_AUTORESPONDER_FIELDS}
)
_BULK_PRECEDENCE: Final = frozenset({"bulk", "list", "junk", "auto_reply", "auto-reply"})


def _automated(fields: dict[str, str], from_: tuple[Addr, ...]) -> str | None:
    """SPEC "Automated mail": the first marker found, as a short reason, or None.

    Markers, with their reasons: ``X-Followup-Digest`` (our own digest: "followup-digest");
    any ``List-Id``/``List-Post``/``List-Unsubscribe``/``List-Help``/``List-Subscribe``/
    ``List-Owner``/``List-Archive`` (the field name); ``Precedence: bulk|list|junk|auto_reply``
    ("precedence:bulk"); ``Auto-Submitted`` other than ``no`` ("auto-submitted:auto-replied");
    ``X-Autoreply``, ``X-Autorespond``, ``X-Auto-Response-Suppress`` present (the field name);
    ``Return-Path: <>`` ("null-return-path"); a From address whose local part is automated
    ("noreply-sender", see :func:`is_automated_address`).

    X-Followup-Checkin is *not* a marker: it is our draft, which the user sends to a person.
    """
    if fields.keys().isdisjoint(_MARKER_FIELDS):
        return _automated_by_envelope(fields, from_)  # the common case: a human's header
    if "x-followup-digest" in fields:
        return "followup-digest"
    for name in _LIST_FIELDS:
        if name in fields:
            return name
    precedence = fields.get("precedence")
    if precedence is not None:
        word = precedence.split(";", 1)[0].strip().lower()
        if word in _BULK_PRECEDENCE:
            return f"precedence:{word}"
    submitted = fields.get("auto-submitted")
    if submitted is not None:
        word = submitted.split(";", 1)[0].strip().lower()
        if word != "no":
            return f"auto-submitted:{word}" if word else "auto-submitted"
    for name in _AUTORESPONDER_FIELDS:
        if name in fields:
            return name
    return _automated_by_envelope(fields, from_)


def _automated_by_envelope(fields: dict[str, str], from_: tuple[Addr, ...]) -> str | None:
    """The markers that need no special header: null return path, noreply-style sender."""
    return_path = fields.get("return-path")
    if return_path is not None and "".join(return_path.split()) == "<>":
        return "null-return-path"
    for addr in from_:
        if is_automated_address(addr.key):
            return "noreply-sender"
    return None


# -- the entry point ---------------------------------------------------------------------------


def parse_message(
    raw: bytes, internaldate: datetime | None, now: datetime | None = None
) -> MessageMeta:
    """Parse one message's header block (``BODY[HEADER.FIELDS (...)]`` bytes).

    ``internaldate`` is the server's INTERNALDATE (naive means UTC); ``now`` is the clock for
    the "not in the future" test (default: the real clock).  Never raises: anything repaired
    or dropped is described in ``problems``.
    """
    try:
        return _parse(raw, internaldate, now)
    except Exception:  # a bug must cost one message, not the scan
        logger.warning("header parser failed; keeping only the message time", exc_info=True)
        return _fallback_meta(internaldate, now)


def _parse(raw: bytes, internaldate: datetime | None, now: datetime | None) -> MessageMeta:
    problems: list[str] = []
    if not isinstance(raw, bytes):
        raw = bytes(raw)
    fields = _split_fields(raw, problems)
    get = fields.get

    moment, source = _message_time(get("date"), internaldate, now, problems)
    from_ = _addresses(get("from"), "From", problems)
    subject_value = get("subject")
    subject = (
        _decode_text(subject_value, "Subject", problems)[:MAX_SUBJECT_CHARS]
        if subject_value is not None
        else ""
    )
    checkin = get("x-followup-checkin")
    return MessageMeta(
        message_id=_first_id(get("message-id")),
        time=moment,
        time_source=source,
        subject=subject,
        from_=from_,
        to=_addresses(get("to"), "To", problems),
        cc=_addresses(get("cc"), "Cc", problems),
        bcc=_addresses(get("bcc"), "Bcc", problems),
        reply_to=_addresses(get("reply-to"), "Reply-To", problems),
        in_reply_to=_first_id(get("in-reply-to")),
        references=_all_ids(get("references")),
        automated=_automated(fields, from_),
        list_addresses=_list_addresses(fields),
        language=_language(get("content-language")),
        followup_checkin=one_line(checkin) if checkin is not None else None,
        problems=tuple(problems),
    )


def _fallback_meta(internaldate: datetime | None, now: datetime | None) -> MessageMeta:
    moment = _as_utc(internaldate)
    source: Literal["date", "internaldate"] = "internaldate"
    if moment is None:
        moment = _as_utc(now) or datetime.now(UTC)
    return MessageMeta(
        message_id=None,
        time=moment,
        time_source=source,
        subject="",
        from_=(),
        to=(),
        cc=(),
        bcc=(),
        reply_to=(),
        in_reply_to=None,
        references=(),
        automated=None,
        list_addresses=frozenset(),
        language=None,
        followup_checkin=None,
        problems=("header: block could not be parsed; kept only the message time",),
    )


# -- exchanges ---------------------------------------------------------------------------------


def exchanges(meta: MessageMeta, self_keys: frozenset[str]) -> Exchanges:
    """SPEC "Exchange": whom this message is an exchange with, and in which direction.

    * Automated mail (including every list post) is no exchange at all.
    * Sent by the user (a From key in ``self_keys``): "out" to every address in To, Cc and
      Bcc, except the user's own addresses, this message's list addresses and automated
      addresses.
    * Otherwise "in" from the From address(es), plus Reply-To when it is a human (not
      automated, not a list, not the user).  Other recipients of a received mail are not
      exchanges with the user.

    Addresses are deduplicated by key, first occurrence kept.  Lists seen in *other* messages
    are the store's business (SPEC: a known list is never a contact).
    """
    if meta.automated is not None:
        return _NO_EXCHANGE
    excluded = meta.list_addresses
    senders = meta.from_
    if (senders[0].key in self_keys) if len(senders) == 1 else _any_in(senders, self_keys):
        direction: Literal["in", "out"] = "out"
        candidates = (*meta.to, *meta.cc, *meta.bcc)
    else:
        direction = "in"
        candidates = (*meta.from_, *meta.reply_to)
    seen: set[str] = set()
    picked: list[Addr] = []
    for addr in candidates:
        key = addr.key
        if key in seen or key in self_keys or key in excluded or is_automated_address(key):
            continue
        seen.add(key)
        picked.append(addr)
    if not picked:
        return _NO_EXCHANGE
    return Exchanges(direction, tuple(picked))


_NO_EXCHANGE: Final = Exchanges(None, ())


def _any_in(addrs: tuple[Addr, ...], keys: frozenset[str]) -> bool:
    return any(addr.key in keys for addr in addrs)
