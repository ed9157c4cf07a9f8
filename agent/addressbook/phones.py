"""Phone numbers as followup keeps them: E.164 with a type, read with ``phonenumbers``.

A number written without a country code ("030 / 123 456-7") is read in the default region:
``[account] region``, else the country of ``[digest] timezone`` (from the time zone
database's zone.tab: Europe/Berlin → DE), else the digest language's country (de → DE).
Numbers in running text (a mail signature, ``agent.signatures``) are read with
``read_written``, which weighs several candidate regions.
"""

from __future__ import annotations

import functools
import re
import zoneinfo
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import phonenumbers

from agent.config import Config

# vCard TYPE words (and Apple's X-ABLabel words) → the type followup shows; the first kind
# in this order wins ("work,fax" is a fax, "work,cell" a cell phone).
TYPE_ORDER = ("fax", "pager", "cell", "work", "home")
TYPE_WORDS = {
    "fax": "fax", "workfax": "fax", "homefax": "fax", "pager": "pager",
    "cell": "cell", "mobile": "cell", "iphone": "cell", "handy": "cell", "mobil": "cell",
    "work": "work", "main": "work", "company": "work", "home": "home",
}
LANGUAGE_REGIONS = {"de": "DE"}


def phone_type(words: Iterable[str]) -> str:
    """cell | work | home | fax | pager | other, from TYPE values and labels."""
    found = set()
    for word in words:
        for part in word.replace(";", ",").split(","):
            key = part.strip().strip("_$!<>").lower()
            if key in TYPE_WORDS:
                found.add(TYPE_WORDS[key])
    return next((kind for kind in TYPE_ORDER if kind in found), "other")


def _parse(text: str, region: str | None) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None


def _e164(number: phonenumbers.PhoneNumber) -> str:
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def e164(raw: str, region: str | None) -> str | None:
    """The number in E.164 (``+49301234567``), or None when it is not a valid number.

    Labels, spaces, slashes, dashes, brackets, a trunk "(0)" and ``tel:`` URIs are fine.
    """
    text = raw.strip()
    if text.lower().startswith("tel:"):
        text = text[4:].split(";", 1)[0]
    number = _parse(text, region)
    if number is None or not phonenumbers.is_valid_number(number):
        return None
    return _e164(number)


@dataclass(frozen=True)
class Written:
    """A number read from running text: E.164, and whether the numbering plan says mobile."""

    number: str
    mobile: bool


def read_written(raw: str, regions: Sequence[str], *,
                 trust_international: bool = False) -> Written | None:
    """A number as someone wrote it in a text, or None.

    Written with its country code (``+44 …``, ``0044 …``) it needs no region; with
    ``trust_international`` a *possible* number is enough (libphonenumber leaves out ranges
    that are real but reserved or too new for its data, e.g. +44 7700 900xxx). Written
    nationally it is read in the first of ``regions`` where it is valid and written as that
    country writes its numbers: where the trunk prefix is 0 (DE, AT, CH, GB, FR …) a
    national number starts with 0, so "(415) 555-0134" is never a German number.
    """
    text = raw.strip()
    if text.startswith("00"):
        text = "+" + text[2:]
    if text.startswith("+"):
        number = _parse(text, None)
        if number is None:
            return None
        if not (phonenumbers.is_valid_number(number)
                or (trust_international and phonenumbers.is_possible_number(number))):
            return None
        return Written(_e164(number), _is_mobile(number))
    digits = re.sub(r"\D", "", text)
    for region in regions:
        metadata = phonenumbers.PhoneMetadata.metadata_for_region(region.upper())
        if metadata is None:
            continue
        if metadata.national_prefix == "0" and not digits.startswith("0"):
            continue
        number = _parse(text, region.upper())
        if number is not None and phonenumbers.is_valid_number(number):
            return Written(_e164(number), _is_mobile(number))
    return None


def _is_mobile(number: phonenumbers.PhoneNumber) -> bool:
    return bool(phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.MOBILE)


def region_of(number: str) -> str | None:
    """The country of an E.164 number's calling code (+44 → GB, +1 → US)."""
    parsed = _parse(number, None)
    if parsed is None or parsed.country_code is None:
        return None
    region = phonenumbers.region_code_for_country_code(parsed.country_code)
    return None if region in (None, "ZZ", "001") else str(region)


def region_of_domain(domain: str) -> str | None:
    """The country of a country-code top-level domain (studio.de → DE, firm.co.uk → GB)."""
    top = domain.rstrip(".").rpartition(".")[2].upper()
    top = {"UK": "GB"}.get(top, top)
    return top if len(top) == 2 and valid_region(top) else None


def shown(number: str) -> str:
    """An E.164 number as people write it internationally: ``+49 30 1234567``."""
    parsed = _parse(number, None)
    if parsed is None:
        return number
    return str(phonenumbers.format_number(parsed,
                                          phonenumbers.PhoneNumberFormat.INTERNATIONAL))


def valid_region(code: str) -> bool:
    return code.upper() in phonenumbers.SUPPORTED_REGIONS


@functools.cache
def _zone_countries() -> dict[str, str]:
    """IANA zone → ISO country code, from zone.tab (one country per zone)."""
    for directory in zoneinfo.TZPATH:
        path = Path(directory) / "zone.tab"
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            continue
        table: dict[str, str] = {}
        for line in text.splitlines():
            if line.startswith("#"):
                continue
            fields = line.split("\t")
            if len(fields) >= 3:
                table.setdefault(fields[2], fields[0])
        return table
    return {}


def default_region(config: Config) -> str | None:
    """``[account] region``, else the country of the time zone, else of the language."""
    if config.account.region:
        return config.account.region
    country = _zone_countries().get(config.digest.timezone)
    if country and valid_region(country):
        return country
    return LANGUAGE_REGIONS.get(config.digest.language)
