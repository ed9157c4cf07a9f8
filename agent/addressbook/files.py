"""Address books on disk: a vdir (one .vcf per card, as khard and vdirsyncer keep them) or a
single .vcf export (Google Contacts, Apple Contacts, Thunderbird, Outlook, an old phone).

A vdir is read incrementally: only files whose size or modification time changed are read
again. A single file is read whole whenever it changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from agent.addressbook.changes import Changes
from agent.addressbook.vcard import decode, read_text
from agent.config import AddressbookConfig
from agent.errors import AddressbookError
from agent.model import Card


def _stamp(path: Path) -> str:
    info = path.stat()
    return f"{info.st_mtime_ns}-{info.st_size}"


def read_path(book: AddressbookConfig, region: str | None, state: str | None,
              etags: Mapping[str, str]) -> Changes:
    """What changed in ``book.path`` since ``state`` / the saved ``etags``."""
    path = book.path
    if path is None:  # pragma: no cover - the config makes path or url
        raise AddressbookError(f"address book {book.name!r} has no path")
    try:
        if path.is_dir():
            return _read_vdir(path, region, state, etags)
        if path.is_file():
            return _read_file(path, region, state)
    except OSError as exc:
        raise AddressbookError(f"address book {book.name!r}: cannot read {path}: "
                               f"{exc.strerror or exc}") from None
    raise AddressbookError(f"address book {book.name!r}: {path} does not exist; check "
                           "[[addressbook]] path")


def _read_vdir(path: Path, region: str | None, state: str | None,
               etags: Mapping[str, str]) -> Changes:
    changes = Changes(kind="vdir", state=None)
    present: dict[str, str] = {}
    for item in sorted(path.iterdir()):
        if item.name.startswith(".") or item.suffix.lower() != ".vcf" or not item.is_file():
            continue
        present[item.name] = stamp = _stamp(item)
        if etags.get(item.name) == stamp:
            continue
        parsed = read_text(decode(item.read_bytes()), str(item), region, href=item.name,
                           etag=stamp)
        changes.problems += parsed.problems
        changes.changed += parsed.cards[:1]  # a vdir item is one card
        if not parsed.cards:
            changes.deleted.append(item.name)  # unreadable now: its old card goes too
        elif len(parsed.cards) > 1:
            changes.problems.append(f"{item}: holds {len(parsed.cards)} cards; a vdir item "
                                    "should hold one, only the first is read")
    changes.deleted += [href for href in etags if href not in present]
    # A vdir has no marker of its own; "vdir" says it was read before (its etags count).
    changes.unchanged = state == "vdir" and not (changes.changed or changes.deleted
                                                 or changes.problems)
    changes.state = "vdir"
    return changes


def _read_file(path: Path, region: str | None, state: str | None) -> Changes:
    stamp = _stamp(path)
    if state == stamp:
        return Changes(kind="file", state=state, unchanged=True)
    parsed = read_text(decode(path.read_bytes()), str(path), region)
    cards: list[Card] = []
    used: set[str] = set()
    for index, card in enumerate(parsed.cards, start=1):
        href = card.href if card.href not in used else f"{card.href}#{index}"
        used.add(href)
        cards.append(card if href == card.href else replace(card, href=href))
    return Changes(kind="file", state=stamp, changed=cards, problems=parsed.problems,
                   replace_all=True)
