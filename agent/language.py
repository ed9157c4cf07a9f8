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
    """A language from the mail exchanged with them, with the reason in words; None if no clue.

    First the language the conversation is written in (the subjects both ways: what the two
    of you actually use), then the Content-Language of their mail (German → de, any other →
    en: the templates know two), then the domain of their addresses.
    """
    spoken = of_conversation(recent)
    if spoken is not None:
        return spoken
    hint = (contact.language_hint or "").lower()
    if hint:
        return ("de" if hint == "de" else "en"), f"Content-Language {hint} of their mail"
    for address in (contact.email, *contact.addresses):
        found = from_address(address)
        if found is not None:
            return found
    return None


# --------------------------------------------------------------------------- the text itself

# Frequent words that belong to one of the two languages only (words both share, such as
# "in", "so", "was", "am", "an", "die" in English names, are left out). Measured on
# tests/data/language/subjects.tsv (bench/language.py prints the figures).
_GERMAN_WORDS = frozenset({
    "aber", "alle", "allem", "als", "also", "angenommen", "auch", "auf", "aus", "bei", "beim",
    "bestätigt", "bild", "bilder", "bis", "bitte", "da", "dank", "danke", "dass", "dem", "den",
    "der", "des", "dich", "dir", "doch", "du", "durch", "ein", "eine", "einem", "einen", "einer",
    "eines", "es", "euch", "frage", "fragen", "frohe", "für", "gern", "gerne", "gestern", "gibt",
    "gruß", "grüße", "gut", "habe", "haben", "hallo", "hast", "heute", "hier", "ich", "ihr",
    "ihre", "ihren", "im", "ist", "ja", "jetzt", "kann", "kein", "keine", "kommende", "kurz",
    "kurze", "kurzes", "liebe", "lieber", "liegen", "mal", "mehr", "mein", "meine", "mit",
    "morgen", "nach", "neue", "neuer", "neues", "nicht", "noch", "nur", "nächste", "nächsten",
    "oder", "rechnung", "schon", "schöne", "sehr", "sich", "sie", "sind", "termin", "tolle", "um",
    "und", "uns", "unser", "unsere", "unserem", "unseren", "verschoben", "vielen", "vom", "von",
    "vor", "war", "wegen", "wie", "wieder", "wir", "woche", "zeit", "zu", "zum", "zur", "zurück",
    "zusammen", "über",
})
_ENGLISH_WORDS = frozenset({
    "about", "after", "again", "all", "any", "are", "as", "back", "be", "been", "but", "by",
    "can", "could", "dear", "details", "do", "does", "done", "for", "free", "from", "get", "good",
    "great", "happy", "have", "hello", "hi", "how", "i", "if", "is", "it", "its", "just", "let",
    "long", "many", "me", "more", "moved", "moving", "my", "new", "next", "not", "now", "of",
    "on", "or", "our", "out", "please", "question", "quick", "ready", "regarding", "see", "send",
    "sent", "so", "some", "thank", "thanks", "that", "the", "their", "there", "this", "time",
    "to", "today", "tomorrow", "us", "was", "we", "week", "what", "when", "where", "will", "with",
    "would", "you", "your", "yours",
})
_GERMAN_ENDINGS = ("ung", "keit", "heit", "lich", "schaft", "chen", "ungen", "ieren", "rechte",
                   "eingang", "lage", "arbeit")
_ENGLISH_ENDINGS = ("ing", "tion", "ness", "ship", "ould", "ment", "ed", "ly", "ions")
# Letter groups that are common in one language and rare in the other.
_GERMAN_LETTERS_IN_WORD = re.compile(r"sch|tz|[äöüß]|^zu|^ver|^ge[^n]|^be[^e]|pf|chs")
_ENGLISH_LETTERS_IN_WORD = re.compile(r"th|wh|ght|ea|oo|ou|y$|^re[^c]|sh$|^sh|w[aeio]r")
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?")


def text_scores(text: str) -> tuple[float, float]:
    """(German, English) evidence in one text: words of one language only, letters, endings."""
    german = english = 0.0
    if _GERMAN_PREFIX.match(text):
        german += 2
    if _GERMAN_LETTERS.search(text):
        german += 2
    for word in _WORD.findall(text.lower()):
        if word in _GERMAN_WORDS:
            german += 1
        elif word in _ENGLISH_WORDS:
            english += 1
        elif len(word) > 4 and word.endswith(_GERMAN_ENDINGS):
            german += 0.5
        elif len(word) > 4 and word.endswith(_ENGLISH_ENDINGS):
            english += 0.5
        elif len(word) > 3:
            german += 0.25 * len(_GERMAN_LETTERS_IN_WORD.findall(word))
            english += 0.25 * len(_ENGLISH_LETTERS_IN_WORD.findall(word))
    return german, english


def of_texts(texts: Sequence[str], *, margin: float = 0.5) -> str | None:
    """"de" or "en" when the texts together lean that way by at least ``margin``, else None."""
    german = english = 0.0
    for text in texts:
        g, e = text_scores(text)
        german, english = german + g, english + e
    if german - english >= margin:
        return "de"
    if english - german >= margin:
        return "en"
    return None


def of_conversation(recent: Sequence[Exchange]) -> tuple[str, str] | None:
    """The language of what was written both ways (subjects, newest first), with why."""
    found = of_texts([e.subject for e in recent])
    if found is None:
        return None
    words = "German" if found == "de" else "English"
    return found, f"the {words} of your conversation with them"
