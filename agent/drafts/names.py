"""Whom a draft greets: the first name in a display name or an address, or nobody."""

from __future__ import annotations

import re

from agent.text import one_line


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Display names that are a role or an organisation, not a person: no "Hallo Info,".
_ROLE_WORDS = _words("""
    admin administration accounting accounts abo abteilung anfrage anfragen bestellung
    bestellungen billing booking bookings buchhaltung buchung büro buero career careers
    contact contacts customer customers einkauf empfang events hallo hello help helpdesk
    hilfe hr info infos information jobs karriere kontakt kundendienst kundenservice mail
    mailbox marketing news newsletter no-reply noreply office orders personal post postfach
    presse press purchasing rechnung rechnungen redaktion reception sales sekretariat
    service shop support team verkauf vertrieb webmaster zentrale
""")
_COMPANY_WORDS = _words("""
    gmbh ag kg ug ohg gbr e.v. ev mbh co. co ltd ltd. inc inc. llc plc corp corp. se sa sarl
    s.a. bv b.v. nv gesellschaft verlag agentur agency studio group gruppe
""")
# "Frau Müller", "Mr Smith": the word after a salutation is a surname, so no first name.
_SALUTATIONS = _words("herr frau hr. fr. mr mr. mrs mrs. ms ms. miss mx mx. sir dame")
# "Dr. Jürgen Müller": dropped; "Dr. Müller" (one word left) is a surname again.
_TITLES = _words("dr dr. prof prof. dipl dipl. dipl.-ing. ing ing. mag mag.")
_NAME_WORD = re.compile(r"[^\W\d_]+(?:[-'’][^\W\d_]+)*")


def _is_name_word(word: str) -> bool:
    return len(word) >= 2 and _NAME_WORD.fullmatch(word) is not None


def _tidy_case(word: str) -> str:
    # "JÜRGEN" / "jürgen" → "Jürgen"; "McKenzie" and "Jean-Luc" stay as written.
    if word.isupper() or word.islower():
        return "-".join(part[:1].upper() + part[1:].lower() for part in word.split("-"))
    return word


def first_name(name: str, address: str) -> str | None:
    """The first name to greet, or None when none can be told (then the greeting is neutral).

    From the display name ("Jürgen Müller", "Müller, Jürgen", "Dr. Jürgen Müller"), else from
    an address of the form first.last@. Roles and organisations ("info", "Team Acme",
    "Acme GmbH"), initials ("J. Müller") and bare user names give None.
    """
    local = address.rpartition("@")[0].lower()
    text = one_line(re.sub(r"\([^)]*\)", " ", name)).strip(" \"'")
    if "@" in text or text.lower() == local:
        text = ""
    if "," in text:
        last, _, first = text.partition(",")
        text = f"{first} {last}"
    all_words = text.split()
    words = [w for w in all_words if w.lower() not in _TITLES]
    if words:
        lowered = {w.lower().strip(".,") for w in words} | {w.lower() for w in words}
        if lowered & (_ROLE_WORDS | _COMPANY_WORDS | _SALUTATIONS):
            return None
        if len(words) == 1 and len(all_words) > 1:
            return None  # "Dr. Müller"
        return _tidy_case(words[0]) if _is_name_word(words[0]) else None
    # No display name: "juergen.mueller@" → "Juergen"; "jmueller@" or "info@" → None.
    parts = [p for p in re.split(r"[._-]", local.split("+", 1)[0]) if p]
    if len(parts) >= 2 and parts[0] not in _ROLE_WORDS and all(map(_is_name_word, parts[:2])):
        return _tidy_case(parts[0])
    return None
