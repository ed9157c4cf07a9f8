"""Which part of a message is its text, from its BODYSTRUCTURE (the scan never reads bodies).

Commands in the user's answers to the digest and phone numbers in signatures need some text:
``Mailbox.fetch_text_part`` fetches the structure, picks the part named here (text/plain,
else text/html; never an attachment) and fetches only that, size-capped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

TEXT_CAP = 64 * 1024  # bytes of a text part; a command or a signature is far shorter


@dataclass(frozen=True)
class Part:
    """A text part of a message's BODYSTRUCTURE, and how to decode it."""

    section: str  # IMAP section number: "1", "2.1" …
    subtype: str  # plain | html
    charset: str
    encoding: str  # 7bit | 8bit | quoted-printable | base64 | …


def _text(value: Any) -> str:
    return value.decode("ascii", "replace") if isinstance(value, bytes) else str(value or "")


def _params(value: Any) -> dict[str, str]:
    if not isinstance(value, tuple | list):
        return {}
    items = [_text(v) for v in value]
    return {items[i].lower(): items[i + 1] for i in range(0, len(items) - 1, 2)}


def _is_attachment(structure: Sequence[Any], first_extension: int) -> bool:
    """Whether a single part's disposition (after its MD5) says "attachment"."""
    for value in structure[first_extension:]:
        if isinstance(value, tuple) and value and _text(value[0]).lower() == "attachment":
            return True
    return False


def text_parts(structure: Sequence[Any], prefix: str = "") -> list[Part]:
    """Every inline text/plain and text/html part of a BODYSTRUCTURE, in order."""
    found: list[Part] = []
    if structure and isinstance(structure[0], list):  # multipart: (parts, subtype, …)
        for number, child in enumerate(structure[0], start=1):
            found += text_parts(child, f"{prefix}{number}.")
        return found
    if len(structure) < 7:
        return found
    kind, subtype = _text(structure[0]).lower(), _text(structure[1]).lower()
    if kind != "text" or subtype not in ("plain", "html"):
        return found
    # text parts: type subtype params id description encoding size lines [md5 disposition …]
    if _is_attachment(structure, 9):
        return found
    charset = _params(structure[2]).get("charset", "us-ascii")
    found.append(Part(prefix.rstrip(".") or "1", subtype, charset, _text(structure[5]).lower()))
    return found


def as_message(part: Part, content: bytes) -> bytes:
    """The part's content with MIME headers of its own: a small message agent.bodies reads."""
    if part.encoding == "base64":
        # A capped base64 part ends on a whole quantum, so that what there is decodes.
        clean = b"".join(content.split())
        content = clean[:len(clean) - len(clean) % 4]
    head = (f"Content-Type: text/{part.subtype}; charset=\"{part.charset}\"\r\n"
            f"Content-Transfer-Encoding: {part.encoding or '7bit'}\r\n\r\n").encode()
    return head + content
