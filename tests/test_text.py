"""agent.text.one_line: the one cleaner for names, subjects and every other one-line value."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.text import one_line


@pytest.mark.parametrize(("raw", "clean"), [
    ("Anna Müller", "Anna Müller"),
    ("  Anna \t Müller \r\n", "Anna Müller"),
    ("Anna\r\nBcc: x@evil.example", "Anna Bcc: x@evil.example"),
    ("a\x0bb\x0cc\x85d\u2028e\u2029f\x00g\x7fh\x9bi", "a b c d e f g h i"),
    ("Anna\u00a0\u2003Müller", "Anna Müller"),  # Unicode spaces are whitespace too
    ("\ufeffAnna", "Anna"),
    ("Anna \u202egnp.exe", "Anna gnp.exe"),  # a right-to-left override
    ("\u2066Anna\u2069 \u202aMüller\u202c", "Anna Müller"),
    ("An\u200bna\u200c \u200dM\u200e\u200fü\u061cl\u180el\u2060e\u2064r", "Anna Müller"),
    ("Anna\U000e0041\U000e007f", "Anna"),  # tag characters can hide text
    ("Anna \ud800 Müller", "Anna ? Müller"),  # a lone surrogate cannot be written as UTF-8
    ("", ""),
    (" \u200b ", ""),
])  # fmt: skip
def test_one_line(raw: str, clean: str) -> None:
    assert one_line(raw) == clean


def test_every_control_and_format_character_is_handled() -> None:
    """What this Python's Unicode database calls a control, separator line or format character
    never survives: controls become spaces, format characters disappear."""
    for point in range(0x110000):
        char = chr(point)
        category = unicodedata.category(char)
        if category in ("Cc", "Zl", "Zp"):
            assert one_line(f"a{char}b") == "a b", hex(point)
        elif category == "Cf":
            assert one_line(f"a{char}b") == "ab", hex(point)


@given(st.text())
def test_one_line_is_one_visible_line_and_idempotent(text: str) -> None:
    """Private-use and unassigned characters stay (a font or a newer Unicode may show them)."""
    line = one_line(text)
    kept = {unicodedata.category(char) for char in line}
    assert not kept & {"Cc", "Cf", "Cs", "Zl", "Zp"}
    assert " ".join(line.split()) == line
    assert line == line.strip()
    assert one_line(line) == line
