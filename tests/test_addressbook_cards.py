"""Reading vCards: 2.1/3.0/4.0, quoted-printable, groups, phones to E.164, birthdays, config."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.addressbook.phones import default_region, e164, phone_type
from agent.addressbook.vcard import decode, read_text
from agent.config import Config
from agent.errors import ConfigError
from agent.model import Phone
from tests.addressbook_cards import ANNA, BROKEN, CARLA, JUERGEN, book_config


def config(extra: str = "", timezone: str = "Europe/Berlin", language: str = "en") -> Config:
    return book_config(extra, timezone=timezone, language=language)


def test_a_3_0_card_gives_name_addresses_phones_birthday_and_tags() -> None:
    parsed = read_text(ANNA, "anna.vcf", "DE", href="anna.vcf")
    (card,) = parsed.cards
    assert card.uid == "anna-berg-1"
    assert card.name == "Anna Berg"
    assert card.addresses == ("anna@studio.example", "anna.private@gmx.de")
    assert card.phones == (Phone("+49301234567", "work"), Phone("+491712345678", "cell"))
    assert card.birthday == "1980-03-03"
    assert card.tags == ("kunden", "berlin")
    assert parsed.problems == []


def test_vcard_2_1_quoted_printable_soft_breaks_and_an_invalid_number() -> None:
    parsed = read_text(JUERGEN, "old-phone.vcf", "DE")
    (card,) = parsed.cards
    assert card.name == "Jürgen Müller"
    assert card.addresses == ("juergen@example.de",)
    assert card.phones == (Phone("+49407654321", "work"),)  # "+49 (0) 40": the trunk 0 goes
    assert card.birthday == "--04-12"
    # The invalid number is dropped with one line naming the file and the number.
    assert parsed.problems == ["old-phone.vcf: TEL '12' is not a valid phone number, left out"]


def test_vcard_4_0_groups_labels_tel_uris_and_apple_birthdays_without_year() -> None:
    (card,) = read_text(CARLA, "carla", "DE").cards
    assert card.addresses == ("carla@firma.example", "carla.c@example.net")
    assert card.phones == (Phone("+49891234567", "cell"), Phone("+49897654321", "home"))
    assert card.birthday == "--12-24"


def test_the_issue_example_number() -> None:
    assert e164("Tel.: 030 / 123 456-7", "DE") == "+49301234567"
    assert e164("030 / 123 456-7", None) is None  # no region: cannot be read
    assert e164("+44 20 7946 0000", "DE") == "+442079460000"
    assert phone_type(["WORK", "FAX"]) == "fax"
    assert phone_type(["_$!<Mobile>!$_"]) == "cell"
    assert phone_type([]) == "other"


def test_a_broken_card_is_one_problem_and_the_rest_is_read() -> None:
    parsed = read_text(ANNA + BROKEN + CARLA, "export.vcf", "DE")
    assert [c.name for c in parsed.cards] == ["Anna Berg", "Carla Christ"]
    assert len(parsed.problems) == 1
    assert parsed.problems[0].startswith("export.vcf, card 2 (line 13): not a readable vCard")


def test_files_in_windows_1252_are_read() -> None:
    text = decode(ANNA.replace("Anna Berg", "Anna Bérg").encode("cp1252"))
    assert read_text(text, "x", "DE").cards[0].name == "Anna Bérg"


def test_region_from_account_timezone_or_language() -> None:
    assert default_region(config()) == "DE"
    assert default_region(config(timezone="Europe/Vienna")) == "AT"
    assert default_region(config(timezone="UTC", language="de")) == "DE"
    assert default_region(config(timezone="UTC", language="en")) is None
    setting = book_config(timezone="UTC", region="ch")
    assert setting.account.region == "CH"
    assert default_region(setting) == "CH"


def test_addressbook_entries_are_checked_with_every_problem_named(tmp_path: Path) -> None:
    good = config(f"""
[[addressbook]]
path = "{tmp_path}"
include_without_mail = true

[[addressbook]]
name = "Work"
url = "https://dav.example.org/"
username = "anna"
""")
    assert [b.name for b in good.addressbook] == [str(tmp_path), "Work"]
    assert good.addressbook[0].include_without_mail
    assert good.addressbook[1].source == "https://dav.example.org/"
    with pytest.raises(ConfigError) as caught:
        config("""
[[addressbook]]
url = "http://dav.example.org/"

[[addressbook]]
name = "nothing"

[[addressbook]]
path = "/x"
timeout = "soon"
""")
    problems = caught.value.problems
    assert "[[addressbook]] #1 url needs username (the CardDAV login name)" in problems
    assert any(p.startswith("[[addressbook]] #1 url http://dav.example.org/ is plain http")
               for p in problems)
    assert "[[addressbook]] #2 needs exactly one of path (a vdir or .vcf file) or url " \
           "(CardDAV)" in problems
    assert any(p.startswith("[[addressbook]] #3 timeout is 'soon'") for p in problems)


def test_a_single_addressbook_table_is_a_clear_problem() -> None:
    with pytest.raises(ConfigError, match=r"\[\[addressbook\]\] entries \(double brackets\)"):
        config('[addressbook]\npath = "/x"\n')


def test_the_same_address_book_twice_is_a_problem(tmp_path: Path) -> None:
    twice = f'[[addressbook]]\npath = "{tmp_path}"\n'
    with pytest.raises(ConfigError, match=r"#2 is the same address book as #1"):
        config(twice + twice.replace(str(tmp_path), f"{tmp_path}/../{tmp_path.name}"))
