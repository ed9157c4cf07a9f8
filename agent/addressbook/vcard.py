"""vCard 2.1, 3.0 and 4.0 text → ``Card`` records, through vobject.

Folded lines, quoted-printable (2.1, with soft line breaks), grouped properties
(``item1.EMAIL`` with Apple's ``item1.X-ABLabel``), several EMAIL and TEL per card. A card
that cannot be read is a problem naming where it is; the other cards are read.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import vobject

from agent.addressbook.phones import e164, phone_type
from agent.headers.addresses import normalise_address
from agent.model import Card, Phone

_BEGIN = re.compile(r"^BEGIN:VCARD\s*$", re.IGNORECASE)
_END = re.compile(r"^END:VCARD\s*$", re.IGNORECASE)
_DATE = re.compile(r"^(\d{4}|--)-?(\d{2})-?(\d{2})(?:T.*)?$")


@dataclass
class Parsed:
    """The cards read from one text, and one line per problem met on the way."""

    cards: list[Card] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def decode(data: bytes) -> str:
    """File bytes as text: UTF-8 (with or without BOM), else Windows-1252 (old exports)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def blocks(text: str) -> Iterator[tuple[int, str]]:
    """Each BEGIN:VCARD … END:VCARD block with its first line number (1-based)."""
    start: int | None = None
    lines: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if start is None:
            if _BEGIN.match(line):
                start, lines = number, [line]
            continue
        lines.append(line)
        if _END.match(line):
            yield start, "\r\n".join(lines) + "\r\n"
            start = None
    if start is not None:
        yield start, "\r\n".join(lines) + "\r\n"  # no END: vobject says what is wrong


def etag_of(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def read_text(text: str, where: str, region: str | None, *, href: str | None = None,
              etag: str | None = None) -> Parsed:
    """Every card in ``text`` (a .vcf file, a vdir item, a CardDAV resource).

    ``where`` names the text in problems (a file, an href). Several cards in one text get
    hrefs ``#1``, ``#2``… after ``href`` (or their UIDs when ``href`` is None).
    """
    parsed = Parsed()
    found = list(blocks(text))
    if not found:
        parsed.problems.append(f"{where}: no vCard in it (no BEGIN:VCARD line)")
    for index, (line, block) in enumerate(found, start=1):
        place = f"{where}, card {index} (line {line})" if len(found) > 1 else where
        card, problems = read_card(block, place, region)
        parsed.problems += problems
        if card is None:
            continue
        if href is not None:
            name = href if len(found) == 1 else f"{href}#{index}"
        else:
            name = card.uid or f"#{index}"
        parsed.cards.append(Card(
            href=name, etag=etag or etag_of(block), uid=card.uid, name=card.name,
            addresses=card.addresses, phones=card.phones, birthday=card.birthday,
            tags=card.tags))
    return parsed


def read_card(block: str, where: str, region: str | None) -> tuple[Card | None, list[str]]:
    """One vCard block → a Card (href and etag still empty) and its problems."""
    try:
        component = vobject.readOne(block, allowQP=True)
    except Exception as exc:  # noqa: BLE001 - vobject raises many kinds for bad input
        reason = " ".join(str(exc).split())[:160] or type(exc).__name__
        return None, [f"{where}: not a readable vCard, skipped ({reason})"]
    problems: list[str] = []
    try:
        contents: dict[str, list[Any]] = component.contents
        labels = {line.group: str(line.value) for line in contents.get("x-ablabel", [])
                  if line.group}
        addresses = []
        for line in contents.get("email", []):
            key = normalise_address(str(line.value))
            if key is None:
                problems.append(f"{where}: EMAIL {str(line.value)[:80]!r} is not an address, "
                                "left out")
            elif key not in addresses:
                addresses.append(key)
        phones: list[Phone] = []
        for line in contents.get("tel", []):
            raw = str(line.value)
            number = e164(raw, region)
            if number is None:
                hint = "" if region or raw.strip().startswith(("+", "00", "tel:+")) else \
                    " (no country code, and no [account] region to read it in)"
                problems.append(f"{where}: TEL {raw[:40]!r} is not a valid phone number{hint}, "
                                "left out")
                continue
            if all(p.number != number for p in phones):
                words = [*line.singletonparams, *line.params.get("TYPE", []),
                         labels.get(line.group, "")]
                phones.append(Phone(number, phone_type(words)))
        card = Card(
            href="", etag="", uid=_text(contents, "uid") or None, name=_name(contents),
            addresses=tuple(addresses), phones=tuple(phones),
            birthday=_birthday(contents, where, problems), tags=_tags(contents))
    except Exception as exc:  # noqa: BLE001 - a value of an unexpected shape in one card
        return None, [f"{where}: not a readable vCard, skipped ({type(exc).__name__}: {exc})"]
    return card, problems


def _text(contents: dict[str, list[Any]], name: str) -> str:
    lines = contents.get(name) or []
    return " ".join(str(lines[0].value).split()) if lines else ""


def _name(contents: dict[str, list[Any]]) -> str:
    """FN; else N as "Given Family"; else ORG; else nothing."""
    full = _text(contents, "fn")
    if full:
        return full
    for line in contents.get("n", []):
        value = line.value
        parts = [getattr(value, "given", ""), getattr(value, "family", "")]
        joined = " ".join(" ".join(p) if isinstance(p, list) else str(p) for p in parts)
        if joined.strip():
            return " ".join(joined.split())
    return _text(contents, "org").strip(";")


def _birthday(contents: dict[str, list[Any]], where: str, problems: list[str]) -> str | None:
    """BDAY as YYYY-MM-DD or --MM-DD (Apple's X-APPLE-OMIT-YEAR year means "no year")."""
    for line in contents.get("bday", []):
        raw = str(line.value).strip()
        match = _DATE.match(raw)
        if match is None:
            problems.append(f"{where}: BDAY {raw[:40]!r} is not a date, left out")
            continue
        year, month, day = match.groups()
        if year in line.params.get("X-APPLE-OMIT-YEAR", []):
            year = "--"
        if not (1 <= int(month) <= 12 and 1 <= int(day) <= 31):
            problems.append(f"{where}: BDAY {raw!r} is not a date, left out")
            continue
        return f"{year}-{month}-{day}" if year != "--" else f"--{month}-{day}"
    return None


def _tags(contents: dict[str, list[Any]]) -> tuple[str, ...]:
    """CATEGORIES as tags: lower case, one word each (spaces become dashes)."""
    tags: list[str] = []
    for line in contents.get("categories", []):
        values = line.value if isinstance(line.value, list) else str(line.value).split(",")
        for value in values:
            tag = "-".join(str(value).lower().split())
            if tag and tag not in tags:
                tags.append(tag)
    return tuple(tags)
