"""Every header of every message followup writes, built so that no name or subject can add one.

Drafts, the digest and any other message followup stores or sends take their header values
from here: text is one line (CR/LF and other controls gone) and encoded or folded by us,
addresses are plain ASCII with an IDNA domain, Message-IDs are checked. ``reply_subject``
makes "Re: <subject>" without stacking prefixes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from email.header import Header
from email.policy import Policy
from email.utils import formataddr

from agent.headers.addresses import normalise_address
from agent.text import one_line

REPLY_PREFIXES = re.compile(
    r"^(?:\s*(?:re|aw|antw|wg|fwd?|wtr)\s*(?:\[\d+\]|\(\d+\))?\s*[:：])+\s*", re.IGNORECASE)


def reply_subject(subject: str) -> str:
    """'Re: <subject>' without stacking: 'AW: Re: WG: Angebot' → 'Re: Angebot'."""
    core = REPLY_PREFIXES.sub("", one_line(subject))
    return f"Re: {core}" if core else ""


class Verbatim(str):
    """A header value we encoded and folded ourselves.

    The email package decodes RFC 2047 words found in a header value it is given (so a subject
    containing the *text* "=?utf-8?q?=0D=0ABcc:...?=" would turn into a line break and a new
    header) and, in Python 3.11, drops spaces when it folds long encoded subjects. An object with
    a ``name`` is kept as is by the policy (``EmailPolicy.header_store_parse``) and written with
    its own ``fold`` — that is this class. ``str()`` of it is the decoded text.
    """

    name: str
    folded: str

    def __new__(cls, name: str, text: str, folded: str) -> Verbatim:
        value = super().__new__(cls, text)
        value.name = name
        value.folded = folded
        return value

    def fold(self, *, policy: Policy) -> str:
        return self.folded


def encoded(text: str, header_name: str) -> str:
    """``text`` as header content: plain ASCII folded at spaces, else UTF-8 encoded words.

    ASCII text that contains ``=?`` is encoded too, so that no reader decodes it as an
    encoded word of its own.
    """
    charset = "us-ascii" if text.isascii() and "=?" not in text else "utf-8"
    return Header(text, charset, header_name=header_name).encode(linesep="\r\n")


def text_header(name: str, text: str) -> Verbatim:
    text = one_line(text)
    return Verbatim(name, text, f"{name}: {encoded(text, name)}\r\n")


def ascii_address(address: str) -> str | None:
    """The address for a header: ASCII local part, IDNA domain; None if it cannot be written."""
    local, _, domain = address.partition("@")
    if not local or not domain or not local.isascii() or normalise_address(address) is None:
        return None
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    return f"{local}@{domain}"


def address_header(name: str, display: str, address: str) -> Verbatim:
    display = one_line(display)
    if not display:
        return Verbatim(name, address, f"{name}: {address}\r\n")
    if display.isascii() and "=?" not in display:
        mailbox = formataddr((display, address))  # quotes the name when it needs it
    else:
        mailbox = f"{encoded(display, name)} <{address}>"
    return Verbatim(name, f"{display} <{address}>", f"{name}: {mailbox}\r\n")


_MSG_ID = re.compile(r"[!-;=?-~]+@[!-;=?-~]+")  # printable ASCII without < > and spaces


def message_id_ok(ident: str | None) -> bool:
    return bool(ident) and _MSG_ID.fullmatch(ident or "") is not None


# RFC 5322 §3.6.4: References is the parent's References plus the parent's Message-ID. Very
# long chains are trimmed as clients do: the thread's first message and the newest ones stay.
MAX_REFERENCES = 20


def references(parent: str, parent_references: Sequence[str]) -> list[str]:
    """The References of a reply to ``parent``: its chain, then ``parent`` (valid ids only)."""
    chain = [i for i in dict.fromkeys(parent_references) if message_id_ok(i) and i != parent]
    chain.append(parent)
    if len(chain) > MAX_REFERENCES:
        chain = [chain[0], *chain[-(MAX_REFERENCES - 1):]]
    return chain


def id_list_header(name: str, idents: Sequence[str]) -> Verbatim:
    """``name: <a>`` with every further id on a folded line of its own (ids checked first)."""
    valid = [i for i in idents if message_id_ok(i)]
    folded = "\r\n ".join(f"<{i}>" for i in valid)
    return Verbatim(name, " ".join(f"<{i}>" for i in valid), f"{name}: {folded}\r\n")
