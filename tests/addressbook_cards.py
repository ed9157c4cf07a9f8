"""The cards the address book tests use (vCard 2.1, 3.0 and 4.0 as real exports write
them), where to put them, and the one config they are read with."""

from __future__ import annotations

from pathlib import Path

from agent.config import Config
from tests.kit import make_config


def book_config(extra: str = "", *, timezone: str = "Europe/Berlin", language: str = "en",
                database: Path | None = None, region: str | None = None) -> Config:
    """A config without a reachable mailbox: for tests of the address book alone."""
    return make_config(name=None, host="127.0.0.1", timeout=None, db=database,
                       timezone=timezone, language=language, region=region, extra=extra)

ANNA = """BEGIN:VCARD\r
VERSION:3.0\r
UID:anna-berg-1\r
FN:Anna Berg\r
N:Berg;Anna;;;\r
EMAIL;TYPE=INTERNET,WORK:anna@studio.example\r
EMAIL;TYPE=INTERNET,HOME:Anna.Private@GMX.de\r
TEL;TYPE=WORK,VOICE:Tel.: 030 / 123 456-7\r
TEL;TYPE=CELL:0171 2345678\r
BDAY:1980-03-03\r
CATEGORIES:Kunden,Berlin\r
END:VCARD\r
"""

# An old phone's export: vCard 2.1, quoted-printable with a soft line break, bare TYPEs.
JUERGEN = """BEGIN:VCARD\r
VERSION:2.1\r
UID:juergen-2\r
N;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:M=C3=BCller;J=C3=BCrgen;;;\r
FN;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:J=C3=BCrgen M=C3=BC=\r
ller\r
EMAIL;INTERNET;PREF:juergen@example.de\r
TEL;WORK;VOICE:+49 (0) 40 / 765 432-1\r
TEL;HOME:12\r
BDAY:--0412\r
END:VCARD\r
"""

# Apple Contacts: vCard 3.0 with grouped properties and labels; 4.0 style tel: URI.
CARLA = """BEGIN:VCARD\r
VERSION:4.0\r
UID:carla-3\r
FN:Carla Christ\r
item1.EMAIL;TYPE=INTERNET:carla@firma.example\r
item1.X-ABLabel:_$!<Work>!$_\r
item2.EMAIL;TYPE=INTERNET:carla.c@example.net\r
item3.TEL:+49 89 1234567\r
item3.X-ABLabel:_$!<Mobile>!$_\r
TEL;VALUE=uri;TYPE="voice,home":tel:+49-89-7654321\r
BDAY;X-APPLE-OMIT-YEAR=1604:1604-12-24\r
END:VCARD\r
"""

BROKEN = """BEGIN:VCARD\r
VERSION:3.0\r
FN:Broken\r
EMAIL this line has no colon\r
END:VCARD\r
"""

GOOD_CARDS = {"anna.vcf": ANNA, "juergen.vcf": JUERGEN, "carla.vcf": CARLA}


def write_vdir(directory: Path, cards: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in cards.items():
        (directory / name).write_text(text, encoding="utf-8", newline="")
    return directory


def write_vcf(path: Path, cards: list[str]) -> Path:
    path.write_text("".join(cards), encoding="utf-8", newline="")
    return path
