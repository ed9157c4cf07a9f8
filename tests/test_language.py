"""The language guesser on labelled subjects and bodies: it may stay silent, never be wrong."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.language import guess, of_texts
from agent.model import Contact, Exchange
from tests.kit import make_contact

DATA = Path(__file__).resolve().parent / "data" / "language"
WHEN = datetime(2026, 6, 1, tzinfo=UTC)


def labelled(name: str) -> list[tuple[str, str]]:
    rows = []
    for line in (DATA / name).read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            language, text = line.split("\t", 1)
            rows.append((language, text))
    return rows


@pytest.mark.parametrize(("name", "least_decided"), [("subjects.tsv", 0.9),
                                                     ("heldout.tsv", 0.7)])
def test_single_subjects_are_never_wrong(name: str, least_decided: float) -> None:
    rows = [(lang, text) for lang, text in labelled(name) if lang in ("de", "en")]
    found = [(lang, of_texts([text]), text) for lang, text in rows]
    wrong = [(lang, text) for lang, guessed, text in found if guessed not in (None, lang)]
    assert wrong == []
    decided = sum(1 for _, guessed, _ in found if guessed is not None)
    assert decided / len(rows) >= least_decided, decided


def test_subjects_without_a_language_rarely_get_one() -> None:
    neutral = [text for lang, text in labelled("subjects.tsv") if lang == "?"]
    assert sum(1 for text in neutral if of_texts([text]) is not None) <= 1


BODIES = [
    ("de", "Hallo Sam, vielen Dank für die Bilder, sie sind wirklich schön geworden. "
           "Können wir nächste Woche telefonieren? Viele Grüße, Jürgen"),
    ("de", "anbei wie besprochen die Unterlagen. Die Rechnung kommt separat."),
    ("en", "Hi Sam, thanks for the pictures, they look great. Could we have a call "
           "next week? Best wishes, George"),
    ("en", "Please find attached the documents as discussed; the invoice will follow."),
]


@pytest.mark.parametrize(("language", "body"), BODIES)
def test_bodies(language: str, body: str) -> None:
    assert of_texts([body]) == language


def _contact(email: str, hint: str | None = None) -> Contact:
    return make_contact(1, WHEN, "in", (email,), name="George Quinn", messages=(2, 2),
                        language_hint=hint)


def _exchanges(*subjects: str) -> list[Exchange]:
    return [Exchange("george@studio.example", "in" if n % 2 else "out", WHEN, s, "INBOX",
                     None) for n, s in enumerate(subjects)]


def test_the_conversation_decides_over_the_address_and_the_header() -> None:
    """George Quinn writes in English from a .de address: the drafts are English."""
    george = _contact("george@studio.de")
    found = guess(george, _exchanges("Product shots – briefing", "Re: Image selection"))
    assert found is not None and found[0] == "en"
    assert "conversation" in found[1]
    # No language in the subjects: the next clues speak (Content-Language, then the domain).
    assert guess(_contact("g@studio.de", hint="en"), _exchanges("Q3", "Re: Q3")) == (
        "en", "Content-Language en of their mail")
    assert guess(george, _exchanges("Q3"))[0] == "de"  # type: ignore[index]
    assert guess(_contact("g@studio.example"), _exchanges("Q3")) is None
