"""Phone numbers in signatures, the parsing alone (issue 15): which block, which labels, which
country, never a fax, a quote, a forward or a switchboard beside a direct line.

The whole run against Dovecot, with precision and recall, is tests/test_signature_phones.py.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.addressbook.phones import read_written, region_of, region_of_domain, shown
from agent.bodies import text_of, written
from agent.signatures import Found, numbers, signature_block
from tests.signature_mail import PEOPLE, RECENT, Person, newest


def found_in(signature: str, *, sender: str = "anna@firma.example", region: str | None = "DE",
             body: str = "Hallo Mia,\n\ndanke!") -> list[Found]:
    return numbers(body, signature, sender=sender, default_region=region)


def numbers_in(signature: str, **options: str | None) -> list[str]:
    return [f.number for f in found_in(signature, **options)]  # type: ignore[arg-type]


@pytest.mark.parametrize("person", [*PEOPLE, RECENT], ids=lambda p: p.key)
def test_each_planted_signature_gives_exactly_its_numbers(person: Person) -> None:
    """The planted messages as their clients send them: MIME, quotes, HTML, images."""
    text = written(text_of(newest(person)))
    got = {f.number for f in numbers(text.body, text.signature, sender=person.address,
                                     default_region="DE")}
    assert got == set(person.truth), person.case


def test_the_issue_examples_with_their_types() -> None:
    found = found_in("Jürgen Weiß\nTel.: +49 (0) 30 / 123 456-7\nMobil 0171 2345678")
    assert [(f.number, f.type, f.label) for f in found] == [
        ("+49301234567", "work", "tel"), ("+491712345678", "cell", "mobil")]
    assert [(f.number, f.type) for f in found_in("Oliver\nM +44 7700 900123")] == [
        ("+447700900123", "cell")]
    # A US contact: the North American shape is never read as a German number.
    assert numbers_in("Dana\nT: (415) 555-0134", sender="dana@bayline.example") == [
        "+14155550134"]


@pytest.mark.parametrize("label", ["Tel.", "Telefon:", "Fon", "Phone:", "Mobile", "Cell:",
                                   "Handy", "Mobil:", "T:", "M", "Direkt:", "Durchwahl",
                                   "Office:", "P:"])
def test_every_label_is_read(label: str) -> None:
    assert numbers_in(f"Anna Berg\n{label} +49 30 1234567") == ["+49301234567"]


@pytest.mark.parametrize("line", ["Fax +49 30 1234568", "Telefax: 030 1234568",
                                  "F: +49 30 1234568", "+49 30 1234568 (Fax)",
                                  "Fax040 / 30 30 12 35"])
def test_a_fax_is_never_taken(line: str) -> None:
    assert numbers_in(f"Anna Berg\n{line}") == []


def test_tel_and_fax_on_one_line_and_a_combined_label() -> None:
    assert numbers_in("Tel. 030 1234567 | Fax 030 1234568") == ["+49301234567"]
    assert numbers_in("Tel. 030 1234567, Fax 030 1234568") == ["+49301234567"]
    assert numbers_in("Tel./Fax: 030 1234567") == ["+49301234567"]  # it rings too


def test_the_switchboard_only_without_a_direct_line() -> None:
    direct = "Durchwahl: +49 40 555 123-45\nZentrale: +49 40 555 123-0"
    assert numbers_in(direct) == ["+494055512345"]
    assert numbers_in("Zentrale: +49 40 555 123-0") == ["+49405551230"]
    # An extension "-0" is the switchboard, labelled or not.
    assert numbers_in("Tel. +49 40 555 123-0\nMobil 0171 2345678") == ["+491712345678"]
    # Numbers in a legal paragraph (register, managing director) are the company's.
    legal = ("Anna Berg\nTel. 030 1234567\n\nFirma GmbH · Sitz Berlin · Amtsgericht "
             "Charlottenburg HRB 12345\nTel. 030 1234500")
    assert numbers_in(legal) == ["+49301234567"]
    assert numbers_in("Firma GmbH, Amtsgericht Berlin HRB 12345\nTel. 030 1234500") == [
        "+49301234500"]


@pytest.mark.parametrize("line", [
    "IBAN DE89 3704 0044 0532 0130 00", "USt-IdNr. DE 123456789", "Amtsgericht HRB 123456",
    "Friedrichstraße 100 | 10117 Berlin", "Urlaub bis 15.12.2026", "© 2020 - 2026",
    "Ruf mich an unter 030 1234567, ich bin bis 18 Uhr da", "Raum 0815 1234",
    "www.studio-1234567.example", "anna.1234567@firma.example", "Bestellnr. 12345678",
])
def test_numbers_that_are_no_phone_numbers(line: str) -> None:
    assert numbers_in(f"Anna Berg\n{line}") == []


def test_a_number_without_a_label_counts_alone_in_its_segment() -> None:
    assert numbers_in("Anke Hartmann\n+49 351 4567890") == ["+493514567890"]
    assert numbers_in("Anke Hartmann · +49 351 4567890") == ["+493514567890"]
    found = found_in("Anke\n0351 4567890")
    assert [(f.number, f.type, f.label) for f in found] == [("+493514567890", "other", "")]
    assert numbers_in("Anke\n0351 4567890 Dresden") == []  # other words: not a label
    assert numbers_in("Anke\n0171 2345678 (mobil)") == ["+491712345678"]
    assert found_in("Anke\n0171 2345678")[0].type == "cell"  # the numbering plan says mobile


def test_the_country_of_a_number_without_its_code() -> None:
    # The sender's domain: 01 … in Vienna.
    assert numbers_in("Tel. 01 234 5678", sender="a@firma.at") == ["+4312345678"]
    # Countries the signature names, and the country of its other numbers.
    assert numbers_in("Tel. 020 7946 0958\nLondon, United Kingdom") == ["+442079460958"]
    assert numbers_in("T +44 20 7946 0000\nD 020 7946 0958") == ["+442079460000",
                                                               "+442079460958"]
    assert numbers_in("Phone (212) 555-0187\nNew York, NY 10001", region="DE") == [
        "+12125550187"]
    # Without any hint, the user's region; without one, nothing national at all.
    assert numbers_in("Tel. 030 1234567", region=None) == []
    assert numbers_in("Tel. +49 30 1234567", region=None) == ["+49301234567"]


def test_html_cells_glued_to_their_labels() -> None:
    assert numbers_in("Tel.030 1234567\nMobil:0171 2345678") == ["+49301234567",
                                                                "+491712345678"]
    assert numbers_in("T+1 415 555 0134") == ["+14155550134"]


def test_the_block_is_the_signature_else_the_last_paragraph() -> None:
    assert signature_block("Hi,\n\nok.\n\nOliver\nM +44 7700 900123", "") == \
        "Oliver\nM +44 7700 900123"
    assert signature_block("Tel. 030 1234567", "") == ""  # a one-paragraph mail is prose
    assert signature_block("a\n\n" + "x\n" * 11, "") == ""  # too long for a signature
    assert signature_block("a", "Gruß\n> Tel. 030 1234567\nTel. 030 7654321") == \
        "Gruß\nTel. 030 7654321"  # quoted lines never count


def test_written_numbers() -> None:
    assert read_written("(415) 555-0134", ["DE"]) is None  # no trunk 0: not German
    assert read_written("(415) 555-0134", ["DE", "US"]).number == "+14155550134"  # type: ignore[union-attr]
    assert read_written("0044 20 7946 0958", []).number == "+442079460958"  # type: ignore[union-attr]
    # A reserved range (Ofcom's drama numbers): possible, not valid.
    assert read_written("+44 7700 900123", []) is None
    assert read_written("+44 7700 900123", [], trust_international=True) is not None
    assert read_written("0171 2345678", ["DE"]).mobile  # type: ignore[union-attr]
    assert region_of("+14155550134") == "US" and region_of("+447700900123") == "GB"
    assert region_of_domain("firm.co.uk") == "GB" and region_of_domain("a.example") is None
    assert region_of_domain("studio.DE") == "DE" and region_of_domain("x.com") is None
    assert shown("+49301234567") == "+49 30 1234567"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=400),
       st.text(alphabet="+()0123456789 -/.:|·TelFaxMobil\n", max_size=200))
def test_never_raises(body: str, signature: str) -> None:
    for found in numbers(body, signature, sender="x@y.example", default_region="DE"):
        assert found.number.startswith("+") and found.type in ("cell", "work", "other")


def test_words_between_two_numbers_label_the_next_one() -> None:
    # Two spaces are not a segment's end: the F belongs to the fax, not to the phone.
    assert numbers_in("T +49 30 1234567  F +49 30 1234568") == ["+49301234567"]
    assert numbers_in("030 1234567 F 030 1234568") == ["+49301234567"]
    assert numbers_in("Tel 030 1234567 Mobil 0171 2345678") == ["+49301234567",
                                                                "+491712345678"]
    # A bracket after a number is its own label.
    assert numbers_in("Tel. 030 1234567 (Fax) 0171 2345678") == ["+491712345678"]


def test_a_private_exchange_written_without_its_dash() -> None:
    # "…1234 0" beside "…1234 567": the 0 is the switchboard, the extension is the line.
    assert numbers_in("Telefon +49 89 1234 0\nDurchwahl +49 89 1234 567") == [
        "+49891234567"]
    assert numbers_in("Telefon +49 89 1234 0") == ["+498912340"]  # alone, it is taken
    assert numbers_in("T +44 20 7946 0000\nD 020 7946 0958") == [
        "+442079460000", "+442079460958"]  # no common stem: two lines


@pytest.mark.parametrize(("line", "sender", "expected"), [
    ("DD: 020 7946 0018 | Mob: 07911 123456", "jane@firm.co.uk",
     ["+442079460018", "+447911123456"]),
    ("Tél. : +33 1 23 45 67 89\nPortable : 06 12 34 56 78", "luc@agence.fr",
     ["+33123456789", "+33612345678"]),
    ("Natel 079 123 45 67", "urs@firma.ch", ["+41791234567"]),
    ("Tel. +39 02 1234 5678 | Cellulare +39 347 123 4567", "gio@studio.it",
     ["+390212345678", "+393471234567"]),
])
def test_the_neighbours_labels(line: str, sender: str, expected: list[str]) -> None:
    assert numbers_in(f"Anna Berg\n{line}", sender=sender) == expected
