"""The confirmation of a command message: one short message into the user's INBOX.

It answers the command message (In-Reply-To, References), in the user's language, and says
what each line did. ``Auto-Submitted: auto-replied`` keeps it from ever counting as an
exchange (the scan skips automated mail) and from ever being read as a command itself.
Its Message-ID is derived from the command message's, so a confirmation appended by a run
that was killed before it could note so is found again instead of appended twice.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime

from agent.config import Config
from agent.message import (
    Verbatim,
    address_header,
    ascii_address,
    id_list_header,
    message_id_ok,
    references,
    text_header,
)
from agent.sendmail import local_hostname
from agent.store.commands import CommandRecord

CONFIRMATION_HEADER = "X-Followup-Confirmation"
MAX_SUBJECT = 160


def confirmation_id(config: Config, command_id: str, secret: bytes) -> str:
    """``<followup-confirm.…@host>``: the same for the same command message, unguessable."""
    own = config.account.email.lower()
    token = hmac.new(secret, f"confirm {own} {command_id}".encode(),
                     hashlib.sha256).hexdigest()[:32]
    return f"<followup-confirm.{token}@{local_hostname(own)}>"


def wanted(config: Config, record: CommandRecord) -> bool:
    """``[commands] confirm``: always, or only when a line did nothing."""
    return config.commands.confirm == "always" or not all(r.ok for r in record.results)


def subject(config: Config, record: CommandRecord) -> str:
    texts = [r.text for r in record.results]
    if not texts:
        texts = ["Keine Befehle gefunden" if config.digest.language == "de"
                 else "No commands found"]
    line = "followup: " + " · ".join(texts)
    return line if len(line) <= MAX_SUBJECT else line[:MAX_SUBJECT - 1] + "…"


def body(config: Config, record: CommandRecord) -> str:
    german = config.digest.language == "de"
    lines = [("✓ " if r.ok else "✗ ") + r.text for r in record.results]
    if not lines:
        lines = ["Deine Antwort enthielt keinen Befehl." if german
                 else "Your answer held no command."]
    when = format_datetime(record.sent_at.astimezone(config.digest.tz))
    lines += ["", (f"Zu deiner Nachricht „{record.subject}“ vom {when}." if german
                   else f"About your message \"{record.subject}\" of {when}.")]
    if not all(r.ok for r in record.results):
        lines.append("Ein Befehl pro Zeile, z. B. „zurückstellen 2 30d“, „ignorieren 3“, "
                     "„angerufen 1“." if german else
                     "One command per line, e.g. \"snooze 2 30d\", \"ignore 3\", \"called 1\".")
    return "\n".join(lines) + "\n"


def build(config: Config, record: CommandRecord, ident: str, now: datetime) -> EmailMessage:
    """The confirmation of ``record`` (from the user to the user), threaded under it.

    Its References name only the command message, not the digest that one answers.
    """
    own = ascii_address(config.account.email) or config.account.email
    msg = EmailMessage(policy=SMTP)
    msg["From"] = address_header("From", config.account.name, own)
    msg["To"] = address_header("To", config.account.name, own)
    msg["Subject"] = text_header("Subject", subject(config, record))
    msg["Date"] = format_datetime(now.astimezone(config.digest.tz))
    msg["Message-ID"] = Verbatim("Message-ID", ident, f"Message-ID: {ident}\r\n")
    if message_id_ok(record.message_id):
        msg["In-Reply-To"] = id_list_header("In-Reply-To", [record.message_id])
        msg["References"] = id_list_header(
            "References", references(record.message_id, ()))
    msg["Auto-Submitted"] = "auto-replied"
    msg["X-Auto-Response-Suppress"] = "All"
    msg[CONFIRMATION_HEADER] = "yes"
    msg.set_content(body(config, record), subtype="plain", charset="utf-8",
                    cte="quoted-printable")
    msg["Content-Language"] = config.digest.language
    return msg


def as_bytes(message: EmailMessage) -> bytes:
    return message.as_bytes(policy=SMTP)
