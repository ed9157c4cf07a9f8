"""Phone numbers as followup keeps them: E.164 with a type, read with ``phonenumbers``.

A number written without a country code ("030 / 123 456-7") is read in the default region:
``[account] region``, else the country of ``[digest] timezone`` (from the time zone
database's zone.tab: Europe/Berlin → DE), else the digest language's country (de → DE).
"""

from __future__ import annotations

import functools
import zoneinfo
from collections.abc import Iterable
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


def e164(raw: str, region: str | None) -> str | None:
    """The number in E.164 (``+49301234567``), or None when it is not a valid number.

    Labels, spaces, slashes, dashes, brackets, a trunk "(0)" and ``tel:`` URIs are fine.
    """
    text = raw.strip()
    if text.lower().startswith("tel:"):
        text = text[4:].split(";", 1)[0]
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


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
