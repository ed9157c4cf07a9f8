"""Who is who: the user's own identity keys, and merge suggestions (never automatic merges)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from agent.config import Config
from agent.headers.addresses import normalise_address
from agent.model import Contact

# Domains run by one provider under several names; addresses on them form one family.
FAMILIES: dict[str, str] = {
    "gmail.com": "google", "googlemail.com": "google",
    "gmx.de": "gmx", "gmx.net": "gmx", "gmx.at": "gmx", "gmx.ch": "gmx", "gmx.com": "gmx",
    "web.de": "webde",
    "outlook.com": "microsoft", "hotmail.com": "microsoft", "hotmail.de": "microsoft",
    "live.com": "microsoft", "live.de": "microsoft", "msn.com": "microsoft",
    "outlook.de": "microsoft",
    "icloud.com": "apple", "me.com": "apple", "mac.com": "apple",
    "yahoo.com": "yahoo", "yahoo.de": "yahoo", "ymail.com": "yahoo",
    "t-online.de": "telekom", "magenta.de": "telekom",
    "posteo.de": "posteo", "posteo.net": "posteo",
    "mailbox.org": "mailboxorg",
}
_SECOND_LEVEL = {"co", "com", "org", "net", "ac", "gov", "edu"}


def self_keys(config: Config) -> frozenset[str]:
    """Identity keys of the user's own addresses and aliases, in every mailbox: never a
    contact."""
    keys = (normalise_address(a) for a in config.own_addresses)
    return frozenset(k for k in keys if k)


def domain_family(domain: str) -> str:
    """gmx.net → gmx; mail.bigcorp.co.uk → bigcorp.co.uk; anything else → registrable part."""
    domain = domain.lower().strip(".")
    if domain in FAMILIES:
        return FAMILIES[domain]
    labels = domain.split(".")
    if len(labels) >= 3 and labels[-2] in _SECOND_LEVEL and len(labels[-1]) == 2:
        return ".".join(labels[-3:])
    return ".".join(labels[-2:])


def name_key(name: str) -> str:
    """A display name reduced for comparison: no accents, case, punctuation or word order."""
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    words = sorted(w for w in re.split(r"[^a-z0-9]+", text) if w)
    return " ".join(words)


@dataclass(frozen=True)
class MergeSuggestion:
    """Two contacts that are likely one person, and why."""

    keep: Contact
    other: Contact
    reason: str


def suggest_merges(contacts: Sequence[Contact]) -> list[MergeSuggestion]:
    """Pairs of contacts with the same full name (two words or more) on one domain family.

    Only suggestions: "Anna Schmidt" at gmx.de and at gmx.net is likely one person; the same
    name at two unrelated companies may be two people, so it is not suggested.
    """
    groups: dict[tuple[str, str], list[Contact]] = {}
    for contact in contacts:
        key = name_key(contact.name)
        if len(key.split()) < 2:
            continue
        families = {domain_family(a.rsplit("@", 1)[-1]) for a in contact.addresses}
        for family in families:
            groups.setdefault((key, family), []).append(contact)
    seen: set[tuple[int, int]] = set()
    out = []
    for (_, family), group in sorted(groups.items()):
        members = sorted(group, key=lambda c: (-(c.messages_in + c.messages_out), c.id))
        keep = members[0]
        for other in members[1:]:
            pair = (min(keep.id, other.id), max(keep.id, other.id))
            if pair in seen or keep.id == other.id:
                continue
            seen.add(pair)
            out.append(MergeSuggestion(keep, other,
                                       f"same name {keep.name!r} on the {family} domain family"))
    return out
