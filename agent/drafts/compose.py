"""One draft: its language, greeting, subject, thread and headers, rendered from templates.

Which language a draft is written in — the first that has a say wins:

1. the contact's own language setting;
2. a ``[[policy.rule]]`` with ``language`` (see ``policy.effective_settings``);
3. a guess from the mail exchanged with them: its Content-Language (German → ``de``, any
   other language → ``en``, as the templates know only these two); else German reply or
   forward prefixes (``AW:``, ``WG:``) or German letters (ä ö ü ß) in the subjects of their
   recent mail → ``de``; else the country domain of their address (``.de``, ``.at``, ``.ch``
   → ``de``; ``.uk``, ``.ie``, ``.us``, ``.au``, ``.nz``, ``.ca`` → ``en``);
4. ``[digest] language``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from typing import Any

from agent import language, policy
from agent.config import Config
from agent.drafts.names import first_name
from agent.message import (
    REPLY_PREFIXES,
    Verbatim,
    address_header,
    ascii_address,
    id_list_header,
    message_id_ok,
    reply_subject,
    text_header,
)
from agent.message import references as message_references
from agent.model import Contact, ContactState
from agent.render import Renderer
from agent.store import Store
from agent.text import one_line

log = logging.getLogger(__name__)

LANGUAGES = ("de", "en")


@dataclass(frozen=True)
class Draft:
    """One composed draft: what the user will find in Drafts (``raw``) and what it says."""

    contact_id: int
    name: str
    address: str
    kind: str  # checkin | reply
    language: str
    language_reason: str
    subject: str
    body: str
    message_id: str  # without angle brackets
    in_reply_to: str | None
    raw: bytes  # CRLF line endings, ready for APPEND
    uid: int | None = None


def choose_language(config: Config, store: Store, contact: Contact) -> tuple[str, str]:
    """(language, why) by the precedence in the module docstring."""
    if contact.language in LANGUAGES:
        return contact.language, "your setting for this contact"
    ruled = policy.effective_settings(contact, config.policy).language
    if ruled in LANGUAGES:
        return ruled, "a [[policy.rule]]"
    guessed = language.guess(contact, store.ledger.exchanges_of(contact.addresses, limit=20))
    if guessed is not None:
        return guessed
    return config.digest.language, "[digest] language"


def _days_since(contact: Contact, day: date, config: Config) -> int:
    return max(0, (day - contact.last_exchange.astimezone(config.digest.tz).date()).days)


def compose(config: Config, state: ContactState, *, language: str, language_reason: str,
            day: date, now: datetime, renderer: Renderer,
            parent_references: Sequence[str] = ()) -> Draft | None:
    """Render and build one draft for ``state``'s contact; None (logged) if it cannot be written.

    Waiting contacts get a reply, everyone else a check-in. With a last message to refer to,
    the draft replies in its thread (In-Reply-To, "Re: <subject>", and References: that
    message's own ``parent_references`` followed by its Message-ID).
    """
    contact = state.contact
    address = ascii_address(contact.email)
    if address is None:
        log.warning("no draft for %s: the address cannot be written in a plain header",
                    contact.email)
        return None
    kind = "reply" if state.status == "waiting" else "checkin"
    sender = config.account
    context: dict[str, Any] = {
        "first_name": first_name(contact.name, contact.email),
        "full_name": contact.name,
        "email": contact.email,
        "days": _days_since(contact, day, config),
        "last_exchange": contact.last_exchange,
        "last_subject": REPLY_PREFIXES.sub("", one_line(contact.last_subject)),
        "last_direction": contact.last_direction,
        "sender_name": sender.name,
        "sender_first_name": first_name(sender.name, sender.email) or "",
        "status": state.status,
        "kind": kind,
        "contact": contact,
        "state": state,
    }
    body = renderer.render(f"{kind}.txt.j2", **context).strip("\n") + "\n"
    thread = contact.last_message_id if message_id_ok(contact.last_message_id) else None
    subject = reply_subject(contact.last_subject) if thread else ""
    if not subject:
        subject = one_line(renderer.render(f"{kind}.subject.j2", **context))

    own_domain = (ascii_address(sender.email) or sender.email).rpartition("@")[2]
    # Like a mail client's: nothing in a sent draft tells the recipient a program wrote it.
    message_id = f"{uuid.uuid4()}@{own_domain}"
    msg = EmailMessage(policy=SMTP)
    msg["From"] = address_header("From", sender.name, ascii_address(sender.email)
                                  or sender.email)
    msg["To"] = address_header("To", contact.name, address)
    msg["Subject"] = text_header("Subject", subject)
    msg["Date"] = format_datetime(now.astimezone(config.digest.tz))
    msg["Message-ID"] = Verbatim("Message-ID", f"<{message_id}>",
                                  f"Message-ID: <{message_id}>\r\n")
    if thread:
        msg["In-Reply-To"] = id_list_header("In-Reply-To", [thread])
        msg["References"] = id_list_header("References",
                                           message_references(thread, parent_references))
    msg.set_content(body, charset="utf-8", cte="quoted-printable")
    return Draft(
        contact_id=contact.id, name=contact.name, address=address, kind=kind,
        language=language, language_reason=language_reason, subject=subject, body=body,
        message_id=message_id, in_reply_to=thread, raw=msg.as_bytes(),
    )
