"""Phone numbers in someone's own signature: the block, its labels; never a fax or a quote.

The input is what agent.bodies made of their newest message: ``Written(body, signature)``,
quotes and forwarded messages already cut (mail-parser-reply), so a number from someone
else's message never gets this far. The rules, in order:

1. **The block**: the signature the reply parser split off; when it found none, the last
   paragraph of the body if it looks like one (at most 10 lines of at most 100 characters,
   after at least one paragraph of text). Quoted lines ("> …") never count.
2. **Numbers**: runs of digits with spaces, brackets, dots, slashes and dashes on one line
   (``+49 (0) 30 / 123 456-7``), read with ``agent.addressbook.phones.read_written``.
3. **Labels**: the words before a number in its segment of the line (segments end at
   ``|``, ``·``, ``•``, ``,`` and ``;``), or after it when no other number follows, or in
   brackets ("030 1234567 (Büro)"):
   Tel., Telefon, Fon, Phone, Office, Direkt, Durchwahl → work (cell when the numbering plan
   says mobile); Mobil, Handy, Mobile, Cell → cell; Fax, Telefax → never taken; Zentrale,
   Switchboard, Main, Empfang, Reception, Sekretariat, Hotline → the switchboard. A single
   letter (T, P, O, D → phone; M → cell; F → fax) counts only as the whole label. No label at
   all counts when the number stands alone in its segment. Other words before it (IBAN,
   USt-IdNr., HRB, a date, a sentence) and it is left alone.
4. **The switchboard**: numbers labelled so, numbers written with a "-0" extension
   (``+49 40 555 123-0``), a number ending in 0 that starts another one of the signature
   (``+49 89 1234 0`` beside ``+49 89 1234 567``) and every number in a legal paragraph
   (HRB, Amtsgericht, "Geschäftsführer:", Registered office, VAT, confidential …) are
   taken only when the signature gives no other number: a direct line wins.
5. **Country** of a number written without its country code: the first country where it is
   valid and written as there (a national number starts with the trunk 0 in DE, AT, CH, GB …),
   out of the countries the signature names (Deutschland, UK, USA, "CA 94107" …), the
   countries of its international numbers and the country of the sender's domain (.de,
   .co.uk …); without any of these, the user's region. The North American shape
   "(415) 555-0134" is tried in the US last.
6. A number written with its country code after a phone label is taken when it is possible
   in that country, also when libphonenumber does not know its range yet.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from agent.addressbook import phones

MAX_BLOCK_LINES = 10
MAX_LINE = 100

PHONE_WORDS = frozenset({
    "tel", "telefon", "telephone", "tele", "fon", "phone", "ph", "office", "büro", "buero",
    "direkt", "direct", "durchwahl", "dw", "festnetz", "landline", "work", "geschäftlich",
    "call", "nr", "nummer", "number", "no", "rufnummer", "telefonnummer", "dd", "ddi",
    # the neighbours' words, for contacts abroad
    "tél", "téléphone", "telefono", "teléfono", "tlf", "tfn",
})
CELL_WORDS = frozenset({"mobil", "mobile", "handy", "cell", "cellphone", "mob", "mobiltelefon",
                        "mobilnummer", "whatsapp", "signal", "natel", "gsm", "portable",
                        "cellulare", "móvil", "movil", "mobiel"})
FAX_WORDS = frozenset({"fax", "telefax", "fx", "faxnummer", "télécopie"})
SWITCHBOARD_WORDS = frozenset({
    "zentrale", "vermittlung", "switchboard", "main", "empfang", "reception", "sekretariat",
    "hotline", "hauptnummer", "service", "kundenservice", "support", "info",
})
LETTERS = {"t": "phone", "p": "phone", "o": "phone", "d": "phone", "m": "cell", "f": "fax"}

# A number starts with "+" (after anything but a digit) or with a digit, "00" or "(" that
# does not continue a word, an address, a URL or another number.
NUMBER = re.compile(r"(?:(?<![\d+])\+|(?<![\w@/.+-]))\(?\d[\d ().\/-]{4,}\d(?![\w@])")
SEGMENT_END = re.compile(r"[|·•;,]|\s[–—]\s|\t| {3,}")
# "Tel.030 …", "Fon040 …", "T:+1 …" (HTML table cells glued to their label): a space after
# the label; a single letter only with its "." or ":".
GLUED = re.compile(r"(?i)\b(tel|telefon|fon|fax|mobil|handy|phone|mobile|cell)([.:]?)(?=[\d+(])"
                   r"|\b([tmfpdo])([.:])(?=[\d+(])")
EXTENSION_ZERO = re.compile(r"-\s?0$")
LEGAL = re.compile(
    r"(?i)\b(?:HRB|HRA|Amtsgericht|Registergericht|Handelsregister|Sitz der Gesellschaft|"
    r"Geschäftsführ(?:er|erin|ung)\s*:|Vorstand\s*:|Aufsichtsrat\w*|USt\.?-?Id\w*|"
    r"Steuernummer|Registered (?:office|in)|Company (?:No|number|registration)|VAT|"
    r"confidential|vertraulich\w*|intended recipient|Empfänger|privileged|disclaimer|"
    r"Haftungsausschluss)\b")
COUNTRIES = (
    (re.compile(r"(?i)\b(?:deutschland|germany)\b"), "DE"),
    (re.compile(r"(?i)\b(?:österreich|austria)\b"), "AT"),
    (re.compile(r"(?i)\b(?:schweiz|switzerland|suisse|svizzera)\b"), "CH"),
    (re.compile(r"(?i)\b(?:united kingdom|great britain|england|scotland|wales)\b|\bUK\b"),
     "GB"),
    (re.compile(r"(?i)\b(?:united states|u\.s\.a\.?)|\bUSA\b"), "US"),
    (re.compile(r"(?i)\b(?:canada|kanada)\b"), "CA"),
    (re.compile(r"(?i)\b(?:france|frankreich)\b"), "FR"),
    (re.compile(r"(?i)\b(?:netherlands|nederland|niederlande)\b"), "NL"),
    (re.compile(r"(?i)\b(?:ireland|irland)\b"), "IE"),
)
_STATES = ("AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT "
           "NE NV NH NJ NM NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY")
US_STATES = frozenset(_STATES.split())
STATE_ZIP = re.compile(r"\b([A-Z]{2})\s+\d{5}(?:-\d{4})?\b")
NANP_SHAPE = re.compile(r"^\(?[2-9]\d{2}\)?[ .\-/]*[2-9]\d{2}[ .\-]*\d{4}$")


@dataclass(frozen=True)
class Found:
    """One number of a signature: E.164, its type (cell | work | other) and its label."""

    number: str
    type: str
    label: str  # the words that labelled it, "" for none
    switchboard: bool = False


@dataclass(frozen=True)
class _Candidate:
    """A phone number found in a signature, with its label and surrounding words."""

    raw: str
    label: str  # phone | cell | fax | switchboard | none
    words: str
    legal: bool


def signature_block(body: str, signature: str) -> str:
    """The signature, else the last paragraph of the body when it looks like one."""
    block = signature
    if not block.strip():
        paragraphs = [p for p in re.split(r"\n\s*\n", body.strip()) if p.strip()]
        last = paragraphs[-1].splitlines() if len(paragraphs) > 1 else []
        if last and len(last) <= MAX_BLOCK_LINES and all(len(x) <= MAX_LINE for x in last):
            block = "\n".join(last)
    return "\n".join(line for line in block.splitlines() if not line.lstrip().startswith(">"))


def numbers(body: str, signature: str, *, sender: str,
            default_region: str | None) -> list[Found]:
    """The phone numbers in the signature of a message from ``sender`` (rules above)."""
    block = signature_block(body, signature)
    candidates = list(_candidates(block))
    regions = _regions(block, candidates, sender, default_region)
    read_ones: list[Found] = []
    for candidate in candidates:
        if candidate.label == "fax":
            continue
        labelled = candidate.label in ("phone", "cell", "switchboard")
        read = phones.read_written(candidate.raw, _for(candidate.raw, regions),
                                   trust_international=labelled)
        if read is None:
            continue
        kind = "cell" if candidate.label == "cell" or read.mobile else (
            "other" if candidate.label == "none" else "work")
        is_switchboard = (candidate.label == "switchboard" or candidate.legal
                          or bool(EXTENSION_ZERO.search(candidate.raw)))
        read_ones.append(Found(read.number, kind, candidate.words, is_switchboard))
    marked = [replace(f, switchboard=True) if not f.switchboard and _base_of(f.number, read_ones)
              else f for f in read_ones]
    direct = [f for f in marked if not f.switchboard]
    switchboard = [f for f in marked if f.switchboard]
    taken: dict[str, Found] = {}
    for found in direct or switchboard:
        taken.setdefault(found.number, found)
    return list(taken.values())


def _base_of(number: str, others: Sequence[Found]) -> bool:
    """Whether ``number`` is the "0" of a private exchange whose extension is among
    ``others``: ``+49 89 1234 0`` beside ``+49 89 1234 567`` (written without "-0")."""
    if not number.endswith("0"):
        return False
    base = number[:-1]
    return any(o.number != number and o.number.startswith(base) and len(o.number) >= len(number)
               for o in others)


def _candidates(block: str) -> list[_Candidate]:
    out = []
    for paragraph in re.split(r"\n\s*\n", block):
        legal = bool(LEGAL.search(paragraph))
        for written in paragraph.splitlines():
            line = GLUED.sub(lambda m: m[0] + " ", written.replace("\xa0", " ")
                             .replace("\u2011", "-"))
            for segment in SEGMENT_END.split(line):
                out += _in_segment(segment, legal)
    return out


def _in_segment(segment: str, legal: bool) -> list[_Candidate]:
    matches = list(NUMBER.finditer(segment))
    out = []
    for index, match in enumerate(matches):
        start = matches[index - 1].end() if index else 0
        end = matches[index + 1].start() if index + 1 < len(matches) else len(segment)
        before = segment[start:match.start()]
        if index and before.lstrip().startswith("(") and ")" in before:
            before = before[before.index(")") + 1:]  # the bracket belongs to the number before
        after = segment[match.end():end]
        if index + 1 < len(matches) and not after.lstrip().startswith("("):
            # "T 030 1234567  F 030 1234568": words between two numbers label the next one;
            # only a bracket after a number is its own ("030 1234567 (Büro) 0171 …").
            after = ""
        label, words = _label(before, after)
        if label is not None:
            out.append(_Candidate(match.group().strip(), label, words, legal))
    return out


def _words(text: str) -> list[str]:
    return re.findall(r"[^\W\d_]+", text.lower())


def _kind(words: Sequence[str]) -> str | None:
    """phone | cell | fax | switchboard from label words; None when none is a label."""
    if len(words) == 1 and words[0] in LETTERS:
        return LETTERS[words[0]]
    found = set(words)
    if found & SWITCHBOARD_WORDS:
        return "switchboard"
    if found & CELL_WORDS:
        return "cell"
    if found & PHONE_WORDS:
        return "phone"
    if found & FAX_WORDS:
        return "fax"
    return None


def _label(before: str, after: str) -> tuple[str | None, str]:
    """The number's label (None: not a phone number to take) and its words."""
    ahead, behind = _words(before), _words(after)
    kind = _kind(ahead) if ahead else None
    if ahead and kind is None:
        return None, " ".join(ahead)  # other words before it: not a labelled number
    trailing = _kind(behind) if behind else None
    if trailing == "fax" or (kind is None and trailing is not None):
        return trailing, " ".join(behind)  # "030 1234-99 (Fax)", "0171 2345678 (mobil)"
    if kind is None:
        return ("none", "") if not behind else (None, " ".join(behind))
    return kind, " ".join(ahead)


def _regions(block: str, candidates: Sequence[_Candidate], sender: str,
             default_region: str | None) -> list[str]:
    """Where a number written without its country code is read, in order (rule 5)."""
    hints = [region for pattern, region in COUNTRIES if pattern.search(block)]
    hints += ["US" for state in STATE_ZIP.findall(block) if state in US_STATES]
    for candidate in candidates:
        if candidate.raw.startswith(("+", "00")):
            region = phones.region_of("+" + candidate.raw.lstrip("+").removeprefix("00"))
            if region:
                hints.append(region)
    domain = phones.region_of_domain(sender.rpartition("@")[2])
    if domain:
        hints.append(domain)
    if not hints and default_region:
        hints.append(default_region)
    return list(dict.fromkeys(hints))


def _for(raw: str, regions: list[str]) -> list[str]:
    """``regions``, and the US last for a number of the North American shape."""
    if NANP_SHAPE.match(raw.strip()) and "US" not in regions:
        return [*regions, "US"]
    return regions
