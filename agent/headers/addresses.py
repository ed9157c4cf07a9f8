"""Address headers → Addr records, and ``normalise_address``: the identity key of an address.

The common shapes (``a@x``, ``Name <a@x>``, ``"Last, First" <a@x>``) are split by a fast
path; only unusual ones (comments, groups, escapes) go to ``email.utils.getaddresses``.
Parsed lists and mailboxes are memoised because the same ``From``/``To`` values recur all
over a mailbox.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import getaddresses
from typing import Any, Final, TypeVar

from agent.headers.fields import (
    MAX_ADDRESS_CHARS,
    MAX_NAME_CHARS,
    MAX_STDLIB_CHARS,
    decode_text,
    snip,
)

__all__ = [
    "MEMO_VALUE_MAX",
    "Addr",
    "clear_memos",
    "new_memo",
    "normalise_address",
    "parse_addresses",
    "remember",
]


@dataclass(frozen=True, slots=True)
class Addr:
    """One mailbox of an address header."""

    name: str  # decoded display name ("" if none): whitespace collapsed, no control characters
    email: str  # the address as written, trimmed, domain lowercased
    key: str  # identity key: normalise_address(email); never empty


# -- memos -------------------------------------------------------------------------------------

_AddressCacheEntry = tuple[tuple[Addr, ...], tuple[str, ...]]
_MailboxCacheEntry = tuple[Addr | None, tuple[str, ...]]

# Memos: the same From/To values and the same mailboxes recur all over a mailbox.  Each is
# bounded by dropping everything when full, which costs one batch of misses.
_MEMO_MAX: Final = 20_000
MEMO_VALUE_MAX: Final = 1_000  # longer values are not memoised
_MEMOS: list[dict[Any, Any]] = []

_K = TypeVar("_K")
_V = TypeVar("_V")


def new_memo() -> dict[Any, Any]:
    """An empty memo, for :func:`remember`; :func:`clear_memos` empties it too."""
    memo: dict[Any, Any] = {}
    _MEMOS.append(memo)
    return memo


def remember(memo: dict[_K, _V], key: _K, value: _V) -> None:
    if len(memo) >= _MEMO_MAX:
        memo.clear()
    memo[key] = value


def clear_memos() -> None:
    """Forget memoised parses (for tests and benchmarks)."""
    for memo in _MEMOS:
        memo.clear()


_ADDRESS_CACHE: dict[str, _AddressCacheEntry] = new_memo()
_MAILBOX_MEMO: dict[tuple[str, str], _MailboxCacheEntry] = new_memo()


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
      characters, quotes or other RFC 5322 specials anywhere, except in a quoted local part
      (``"System Administrator"@x.org``, as bounce generators write): its quotes are dropped
      when they were not needed, else kept, with letters, digits, spaces, atext symbols,
      "." and "@" inside only; domain literals are dropped;
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
    if text[:1] == '"':
        return _quoted_key(text)
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


# What a quoted local part may hold: letters, digits, spaces and the atext symbols, and "@"
# and "." (an address quoted whole, as bounce generators write it). No quotes, backslashes or
# other specials, so a key can go into a header as it is.
_QUOTED_LOCAL = re.compile(r'"([\w !#$%&\'*+\-/=?^`{|}~.@]+)"@([^"@]+)')
_DOT_ATOM = re.compile(r"[\w!#$%&'*+\-/=?^`{|}~]+(?:\.[\w!#$%&'*+\-/=?^`{|}~]+)*")


def _quoted_key(text: str) -> str | None:
    """The key of an address with a quoted local part (``"System Administrator"@x.org``):
    unquoted when the quotes were not needed, else quoted, lowercased, spaces collapsed."""
    match = _QUOTED_LOCAL.fullmatch(text)
    if match is None:
        return None
    local = " ".join(match[1].split()).lower()
    if not local:
        return None
    if _DOT_ATOM.fullmatch(local) is not None:
        return normalise_address(f"{local}@{match[2]}")
    domain_key = normalise_address(f"x@{match[2]}")
    if domain_key is None:
        return None
    key = f'"{local}"@{domain_key[2:]}'
    if len(key) > MAX_ADDRESS_CHARS or key.lower() != key:
        return None  # see the end of normalise_address: keys must be stable
    return key


# -- address lists -----------------------------------------------------------------------------

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


# An address whose local part escapes characters with backslashes instead of quoting them,
# as old bounce generators write: <Postmaster\@example.com@relay.example>.
_ESCAPED_LOCAL = re.compile(r'<([^<>"\s]*\\[^<>"\s]*)@([^<>@\s\\]+)>')


def _quote_escaped(match: re.Match[str]) -> str:
    local = re.sub(r"\\(.)", r"\1", match[1])
    return f'<"{local}"@{match[2]}>'


def _parse_address_list(value: str) -> _AddressCacheEntry:
    """Split an address header into Addr objects; notes say what was dropped or repaired."""
    notes: list[str] = []
    if "=?" in value:
        # A comma (or other special) inside an encoded display name must not split the
        # address.  In Q encoding "=2C" *is* a comma, so this changes nothing but the parse.
        value = _Q_WORD.sub(_protect_q_word, value)
    if "\\" in value:
        # The stdlib splits <a\@b@c> into pieces and the salvage below would invent "b@c".
        value = _ESCAPED_LOCAL.sub(_quote_escaped, value)
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
            remember(_MAILBOX_MEMO, pair, entry)
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
            notes.append(f"salvaged address {snip(found)} from a malformed list")


def _parse_mailbox(raw_name: str, raw_address: str) -> tuple[Addr | None, tuple[str, ...]]:
    """One (display name, address) pair → Addr, or None if the address is unusable."""
    address = raw_address.strip()
    if address[:1] == "<" and address[-1:] == ">":
        address = address[1:-1].strip()
    if not address:
        return None, ()  # group labels, "undisclosed-recipients:;", empty elements
    key = normalise_address(address)
    if key is None:
        return None, (f"ignored unusable address {snip(address)}",)
    local, _, domain = address.rpartition("@")
    email = f"{local}@{domain.lower()}"
    notes: list[str] = []
    return Addr(_display_name(raw_name, email, notes), email, key), tuple(notes)


def _split_stdlib(value: str, notes: list[str]) -> list[tuple[str, str]]:
    """Unusual syntax via email.utils.getaddresses, guarded against its recursion."""
    if len(value) <= MAX_STDLIB_CHARS:
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
    name = _unquote(decode_text(_unquote(name), "display name", notes))
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


def parse_addresses(value: str | None, label: str, problems: list[str]) -> tuple[Addr, ...]:
    """The parsed addresses of one header, memoised by raw value."""
    if value is None:
        return ()
    entry = _ADDRESS_CACHE.get(value)
    if entry is None:
        entry = _parse_address_list(value)
        if len(value) <= MEMO_VALUE_MAX:
            remember(_ADDRESS_CACHE, value, entry)
    addrs, notes = entry
    if notes:
        problems.extend(f"{label}: {note}" for note in notes)
    return addrs

