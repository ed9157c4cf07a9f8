"""Delivering today's digest once a day: into the INBOX or through SMTP, or as a preview."""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from typing import Literal

from agent import auth, sendmail
from agent.config import Config
from agent.digest import message_id, numbered, render, to_message
from agent.errors import DeliveryError, FollowupError, TransientMailboxError, UsageError
from agent.mailbox.client import Mailbox
from agent.plan import Plan
from agent.render import Renderer
from agent.store import Store

log = logging.getLogger(__name__)

Outcome = Literal["delivered", "already_sent", "nothing_due", "preview"]


@dataclass(frozen=True)
class DigestResult:
    """What happened to today's digest."""

    day: date
    outcome: Outcome
    delivery: str  # imap | smtp
    subject: str | None = None
    text: str | None = None  # the plain-text part (printed by --dry-run)
    message: EmailMessage | None = field(default=None, repr=False)
    output: Path | None = None  # where the HTML was written
    uid: int | None = None  # the INBOX UID of an IMAP delivery, when the server says
    problems: tuple[str, ...] = ()
    picks: int = 0
    due: int = 0
    already_delivered: bool = False  # today's digest had been delivered before this run

    @property
    def delivered(self) -> bool:
        return self.outcome == "delivered"

    def line(self) -> str:
        where = "your INBOX" if self.delivery == "imap" else "you through SMTP"
        if self.outcome == "delivered":
            return f"digest for {self.day.isoformat()} delivered to {where}: {self.subject}"
        if self.outcome == "already_sent":
            return (f"today's digest ({self.day.isoformat()}) was already delivered; "
                    "nothing sent")
        if self.outcome == "nothing_due":
            return ("nobody is due today, so no digest was sent (set [digest] send_empty = true "
                    "to get one anyway)")
        return f"preview of the digest for {self.day.isoformat()}: {self.subject}"


def wanted(config: Config, store: Store, plan: Plan) -> bool:
    """Whether a real run would deliver a digest now: not yet today, and something to say."""
    if store.journal.digest_sent(plan.day):
        return False
    return bool(plan.picks or plan.due or plan.birthdays) or config.digest.send_empty


def deliver(config: Config, store: Store, mailbox: Mailbox | None, plan: Plan, now: datetime,
            *, dry_run: bool = False, output: Path | None = None,
            drafts: Mapping[int, str] | None = None) -> DigestResult:
    """Build today's digest and deliver it, at most once per local day.

    The day is recorded only after the server took the message: a crash before that retries
    on the next run, a crash after it does not send twice. ``dry_run`` builds everything and
    delivers nothing; ``output`` also writes the HTML part there. ``mailbox`` is needed only
    for ``[digest] delivery = "imap"``. ``drafts``: contact id → the folder of a draft that
    waits for them (default: the pending drafts in the journal).
    """
    if drafts is None:
        drafts = {d.contact_id: d.folder for d in store.journal.drafts("pending")}
    delivery = config.digest.delivery
    already = store.journal.digest_sent(plan.day)
    send = not dry_run and wanted(config, store, plan)
    skipped: Outcome = "preview" if dry_run else "already_sent" if already else "nothing_due"
    result = DigestResult(plan.day, skipped, delivery, picks=len(plan.picks),
                          due=len(plan.due), already_delivered=already)
    if not send and not dry_run and output is None:
        log.info("no digest for %s: %s", plan.day, skipped.replace("_", " "))
        return result

    secret = store.journal.secret(create=send)
    rendered = render(config, plan, now, Renderer(config), drafts, secret)
    ident = message_id(config, plan.day, secret)
    message = to_message(config, rendered, plan.day, now, ident)
    result = replace(result, subject=rendered.subject, text=rendered.text, message=message,
                     problems=rendered.problems)
    if output is not None:
        write_html(output, rendered.html)
        result = replace(result, output=output)
    if not send:
        return result

    uid = None
    # The numbers the user sees ("snooze 2 30d" in an answer), kept before the digest leaves.
    rows = [s.contact.id for s in numbered(plan)]
    if delivery == "smtp":
        store.commands.record_rows(plan.day, rows)
        send_smtp(config, message)
    else:
        if mailbox is None:
            raise DeliveryError("delivery to the INBOX needs an IMAP connection")
        if store.journal.digest_attempted(plan.day, ident) and in_inbox(mailbox, ident):
            # Appended by an earlier run that never heard the server's OK (killed, or the
            # connection broke): recording it now is all that is left to do. Only a copy
            # this installation tried to append, carrying its secret, counts.
            log.info("today's digest is already in the INBOX; recording it")
        else:
            with store.transaction():
                store.journal.attempt_digest(plan.day, ident, now)
                store.commands.record_rows(plan.day, rows)
            uid = append_to_inbox(mailbox, message, config.account.email)
    store.journal.record_digest(plan.day, delivery, rendered.subject, now)
    log.info("digest for %s delivered (%s): %s", plan.day, delivery, rendered.subject)
    return replace(result, outcome="delivered", uid=uid)


def in_inbox(mailbox: Mailbox, ident: str) -> bool:
    """Whether the INBOX already holds the message with Message-ID ``ident``."""
    return bool(mailbox.search("INBOX", ["HEADER", "Message-ID", ident]))


def append_to_inbox(mailbox: Mailbox, message: EmailMessage, own_address: str) -> int | None:
    """APPEND to INBOX without \\Seen, so it shows up as a new, unread message."""
    sendmail.check_recipients(message, own_address)
    try:
        return mailbox.append("INBOX", message.as_bytes(policy=SMTP), flags=())
    except TransientMailboxError:
        raise  # the caller retries; the retry finds the message if the server kept it
    except FollowupError as exc:
        raise DeliveryError(f"the digest could not be put into your INBOX: {exc}") from None


def send_smtp(config: Config, message: EmailMessage) -> None:
    smtp = config.smtp
    if smtp is None:  # config validation makes this impossible; say so plainly anyway
        raise DeliveryError("[digest] delivery = \"smtp\" needs an [smtp] section")
    sendmail.send(smtp, message, config.account.email, login=auth.smtp_login(config))


def write_html(path: Path, html: str) -> None:
    """Write the HTML digest privately: 0600 (also over an existing file), folders made 0700,
    and never through a symbolic link (it could point at any file of yours)."""
    try:
        _private_parents(path.parent)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UsageError(f"{path} is a symbolic link; give the path of a real file") from None
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        # Names and subjects of the user's contacts: private like the database.
        os.fchmod(fd, 0o600)
        os.ftruncate(fd, 0)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            fd = -1
            file.write(html)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        if fd >= 0:
            os.close(fd)


def _private_parents(folder: Path) -> None:
    """Create ``folder`` and missing parents as 0700, whatever the umask."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for new in reversed(missing):
        new.mkdir(mode=0o700)
        new.chmod(0o700)  # mkdir's mode is filtered by the umask
