"""One cleaner that makes any text from a mailbox or a template one safe line."""

from __future__ import annotations

from typing import Final

__all__ = ["one_line"]


def _code_points(*spans: tuple[int, int]) -> list[int]:
    return [point for first, last in spans for point in range(first, last + 1)]


# Controls (C0 with TAB/LF/VT/FF/CR, DEL, C1 with NEL) and the line and paragraph separators
# become spaces: each of them can end a header or a line of text.
_BREAKING: Final = _code_points((0x00, 0x1F), (0x7F, 0x9F), (0x2028, 0x2029))
# Every format character (Unicode category Cf, as of Unicode 15.1) is removed: they are
# invisible and can make a name display as something else.  Among them the bidi embeddings,
# overrides and isolates (U+202A-202E, U+2066-2069), the BOM (U+FEFF), zero-width spaces and
# joiners and the LRM/RLM marks (U+200B-200F), the Arabic letter mark (U+061C), the Mongolian
# vowel separator (U+180E), the word joiner and invisible operators (U+2060-2064), the soft
# hyphen and the tag characters (U+E0000 block).
_INVISIBLE: Final = _code_points(
    (0x00AD, 0x00AD), (0x0600, 0x0605), (0x061C, 0x061C), (0x06DD, 0x06DD),
    (0x070F, 0x070F), (0x0890, 0x0891), (0x08E2, 0x08E2), (0x180E, 0x180E),
    (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x2064), (0x2066, 0x206F),
    (0xFEFF, 0xFEFF), (0xFFF9, 0xFFFB), (0x110BD, 0x110BD), (0x110CD, 0x110CD),
    (0x13430, 0x1343F), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A), (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
)  # fmt: skip
_TABLE: Final[dict[int, str | None]] = {
    **dict.fromkeys(_BREAKING, " "),
    **dict.fromkeys(_INVISIBLE, None),
}


def one_line(text: str) -> str:
    """``text`` as one line: controls become spaces, invisible format characters go, runs of
    whitespace become one space, no space at either end."""
    text = text.strip()
    if text.isprintable() and "  " not in text:
        # The common case, at the cost of two C-level scans: every character the table
        # touches is unprintable to Python, and so is every space but U+0020.
        return text
    text = text.translate(_TABLE)
    if not text.isprintable():
        # Lone surrogates (from exotic codecs) cannot be stored or sent as UTF-8 later.
        text = text.encode("utf-8", "replace").decode("utf-8")
    return " ".join(text.split())
