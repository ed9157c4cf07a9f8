"""Which language (de or en) to write to someone in, guessed from what their mail shows."""

from __future__ import annotations

import re
from collections.abc import Sequence

from agent.model import Contact, Exchange

_GERMAN_PREFIX = re.compile(r"^\s*(?:aw|wg|antw)\s*:", re.IGNORECASE)
_GERMAN_LETTERS = re.compile("[äöüßÄÖÜ]")
_GERMAN_TLDS = frozenset({"de", "at", "ch"})
_ENGLISH_TLDS = frozenset({"uk", "ie", "us", "au", "nz", "ca"})
# German mail providers whose addresses do not end in .de.
_GERMAN_PROVIDERS = frozenset({"gmx.net", "gmx.at", "gmx.ch", "posteo.net"})


def from_address(address: str) -> tuple[str, str] | None:
    """A language from an address's domain (country or a German provider), with why."""
    domain = address.rpartition("@")[2].lower()
    if domain in _GERMAN_PROVIDERS:
        return "de", f"their address is at {domain}"
    tld = domain.rpartition(".")[2]
    if tld in _GERMAN_TLDS:
        return "de", f"their address ends in .{tld}"
    if tld in _ENGLISH_TLDS:
        return "en", f"their address ends in .{tld}"
    return None


def guess(contact: Contact, recent: Sequence[Exchange]) -> tuple[str, str] | None:
    """A language from the contact's own mail, with the reason in words; None if no clue.

    Their Content-Language first (German → de, any other → en: the templates know two),
    then German reply prefixes or letters in the subjects of their recent mail, then the
    domain of their addresses.
    """
    hint = (contact.language_hint or "").lower()
    if hint:
        return ("de" if hint == "de" else "en"), f"Content-Language {hint} of their mail"
    theirs = [e.subject for e in recent if e.direction == "in"]
    for subject in theirs:
        if _GERMAN_PREFIX.match(subject):
            return "de", "German reply prefix in their subjects"
    for subject in theirs:
        if _GERMAN_LETTERS.search(subject):
            return "de", "German letters in their subjects"
    for address in (contact.email, *contact.addresses):
        found = from_address(address)
        if found is not None:
            return found
    return None
