"""The morning digest: today's picks and the due list as one email to the user, once a day."""

from __future__ import annotations

import errno
import hashlib
import hmac
import logging
import os
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from pathlib import Path
from typing import Literal
from urllib.parse import quote

from agent import auth, policy, sendmail
from agent.config import Config
from agent.errors import DeliveryError, FollowupError, TransientMailboxError, UsageError
from agent.mailbox.client import Mailbox
from agent.message import (
    Verbatim,
    address_header,
    ascii_address,
    reply_subject,
    text_header,
)
from agent.model import ContactState
from agent.plan import Plan
from agent.render import Renderer
from agent.store import Store
from agent.text import one_line

log = logging.getLogger(__name__)

DIGEST_HEADER = "X-Followup-Digest"

Outcome = Literal["delivered", "already_sent", "nothing_due", "preview"]


# --------------------------------------------------------------------------- what templates see


@dataclass(frozen=True)
class Row:
    """One contact as the digest templates see it; every string is one line, no CR/LF."""

    id: int
    name: str  # the display name, or the address when there is none
    has_name: bool
    email: str
    status: str  # waiting | overdue | due
    reply: bool  # waiting: they wrote last, so suggest a reply rather than a check-in
    days: int  # local calendar days since the last exchange
    last_exchange: datetime  # aware UTC; the `local` filters show it in the user's zone
    direction: str  # in (they wrote last) | out (you did)
    subject: str  # subject of the last exchange, "" when it had none
    folder: str
    due_date: date | None  # the day the contact reaches the line
    days_to_line: int  # negative: that many days past the line
    cadence_days: int | None
    mailto: str  # a URL-encoded mailto: link ("Re: subject" for replies)
    on_record: bool = True  # False: known only from the address book, no contact yet
    birthday_in: int | None = None  # days to their next birthday (0: today), None: unknown
    phone: str = ""  # the first phone number from the address book, "" without one

    @property
    def days_past_line(self) -> int:
        return -self.days_to_line


@dataclass(frozen=True)
class BirthdayRow:
    """One birthday of "Birthdays this week"."""

    name: str
    email: str
    date: date  # the day of the birthday this year (or next)
    days: int  # 0: today, 1: tomorrow, …
    age: int | None  # the age they turn, when the card gives the year
    mailto: str


@dataclass(frozen=True)
class Counts:
    picks: int
    waiting: int
    overdue: int
    due: int
    snoozed: int
    contacts: int  # every contact that is not ignored

    @property
    def total_due(self) -> int:
        return self.waiting + self.overdue + self.due


@dataclass(frozen=True)
class User:
    name: str
    email: str


def mailto(address: str, subject: str = "", in_reply_to: str | None = None) -> str:
    """A mailto: URL (RFC 6068) in which no address or subject can end the href or add fields."""
    url = "mailto:" + quote(address, safe="@+")
    fields = []
    if subject:
        fields.append("subject=" + quote(subject, safe=""))
    if in_reply_to:
        fields.append("In-Reply-To=" + quote(in_reply_to, safe=""))
    return url + ("?" + "&".join(fields) if fields else "")


def row(state: ContactState, day: date, config: Config) -> Row:
    contact = state.contact
    tz = config.digest.tz
    name = one_line(contact.name)
    email = one_line(contact.email)
    subject = one_line(contact.last_subject)
    reply = state.status == "waiting"
    link = (mailto(email, reply_subject(subject) if subject else "",
                   one_line(contact.last_message_id or "") or None)
            if reply else mailto(email))
    due_date = state.due_date
    on_record = policy.clock_start(contact) is not None
    return Row(
        id=contact.id,
        name=name or email,
        has_name=bool(name) and name.lower() != email.lower(),
        email=email,
        status=state.status,
        reply=reply,
        days=(day - contact.last_exchange.astimezone(tz).date()).days if on_record else 0,
        last_exchange=contact.last_exchange,
        direction=contact.last_direction,
        subject=subject,
        folder=one_line(contact.last_folder),
        due_date=due_date,
        days_to_line=(due_date - day).days if due_date else 0,
        cadence_days=state.cadence_days,
        mailto=link,
        on_record=on_record,
        birthday_in=policy.birthday_in(contact, day),
        phone=contact.phones[0].number if contact.phones else "",
    )


def birthday_row(state: ContactState, when: date, day: date) -> BirthdayRow:
    contact = state.contact
    born = contact.birthday or ""
    age = when.year - int(born[:4]) if born[:4].isdigit() else None
    email = one_line(contact.email)
    return BirthdayRow(name=one_line(contact.name) or email, email=email, date=when,
                       days=(when - day).days, age=age, mailto=mailto(email) if email else "")


def context(config: Config, plan: Plan, now: datetime) -> dict[str, object]:
    """Everything the digest templates may use (documented in the README)."""
    statuses = [s.status for s in plan.states]
    counts = Counts(
        picks=len(plan.picks),
        waiting=statuses.count("waiting"),
        overdue=statuses.count("overdue"),
        due=statuses.count("due"),
        snoozed=statuses.count("snoozed"),
        contacts=sum(1 for s in statuses if s != "ignored"),
    )
    return {
        "day": plan.day,
        "now": now,
        "user": User(one_line(config.account.name), config.account.email),
        "picks": [row(s, plan.day, config) for s in plan.picks],
        "rest": [row(s, plan.day, config) for s in plan.rest],
        "counts": counts,
        "drafts_enabled": config.drafts.enabled,
        "birthdays": [birthday_row(s, when, plan.day) for s, when in plan.birthdays],
    }


# --------------------------------------------------------------------------- the message


@dataclass(frozen=True)
class Rendered:
    """The three rendered parts, and any user-template problems met on the way."""

    subject: str
    text: str
    html: str
    problems: tuple[str, ...] = ()


def render(config: Config, plan: Plan, now: datetime, renderer: Renderer) -> Rendered:
    values = context(config, plan, now)
    before = len(renderer.problems)
    subject = one_line(renderer.render("digest.subject.j2", **values))
    text = renderer.render("digest.txt.j2", subject=subject, **values)
    html = renderer.render("digest.html.j2", subject=subject, **values)
    return Rendered(subject, text, html, tuple(renderer.problems[before:]))


def message_id(config: Config, day: date, secret: bytes | None) -> str:
    """One Message-ID per day, unguessable without this installation's ``secret``.

    The same day gives the same ID, so a digest re-sent after a crash is a duplicate by ID;
    the secret part means nobody else can make a message that passes for today's (or
    tomorrow's) digest, and a reply that names it proves it answers our digest. Without a
    secret (a preview that must change nothing) the part is "preview".
    """
    own = config.account.email.lower()
    if secret is None:
        token = "preview"  # noqa: S105 - the Message-ID part of a preview, not a password
    else:
        token = hmac.new(secret, f"digest {own} {day.isoformat()}".encode(),
                         hashlib.sha256).hexdigest()[:32]
    return f"<followup-digest.{day.isoformat()}.{token}@{sendmail.local_hostname(own)}>"


def to_message(config: Config, rendered: Rendered, day: date, now: datetime,
               ident: str | None = None) -> EmailMessage:
    """multipart/alternative (text, then HTML), from the user to the user.

    ``ident`` is the Message-ID (``message_id``); without one, a preview's.
    """
    own = ascii_address(config.account.email) or config.account.email
    ident = ident or message_id(config, day, None)
    msg = EmailMessage(policy=SMTP)
    # Every header through the one safe builder: a name or subject can never add a header.
    msg["From"] = address_header("From", config.account.name, own)
    msg["To"] = address_header("To", config.account.name, own)
    msg["Subject"] = text_header("Subject", rendered.subject)
    msg["Date"] = format_datetime(now.astimezone(config.digest.tz))
    msg["Message-ID"] = Verbatim("Message-ID", ident, f"Message-ID: {ident}\r\n")
    # Auto-Submitted keeps auto-responders (out of office) quiet and, with the private
    # header, tells our own scanner that this is no exchange with anybody.
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"
    msg[DIGEST_HEADER] = day.isoformat()
    # quoted-printable keeps every line 7-bit and short, whatever relay or server it meets.
    msg.set_content(rendered.text, subtype="plain", charset="utf-8", cte="quoted-printable")
    msg.add_alternative(rendered.html, subtype="html", charset="utf-8", cte="quoted-printable")
    msg["Content-Language"] = config.digest.language  # after set_content, which drops Content-*
    return msg


def build(config: Config, plan: Plan, now: datetime, renderer: Renderer) -> EmailMessage:
    """The digest for ``plan`` as an email (pure: no I/O but reading templates)."""
    return to_message(config, render(config, plan, now, renderer), plan.day, now)


# --------------------------------------------------------------------------- delivery


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
            *, dry_run: bool = False, output: Path | None = None) -> DigestResult:
    """Build today's digest and deliver it, at most once per local day.

    The day is recorded only after the server took the message: a crash before that retries
    on the next run, a crash after it does not send twice. ``dry_run`` builds everything and
    delivers nothing; ``output`` also writes the HTML part there. ``mailbox`` is needed only
    for ``[digest] delivery = "imap"``.
    """
    delivery = config.digest.delivery
    already = store.journal.digest_sent(plan.day)
    send = not dry_run and wanted(config, store, plan)
    skipped: Outcome = "preview" if dry_run else "already_sent" if already else "nothing_due"
    result = DigestResult(plan.day, skipped, delivery, picks=len(plan.picks),
                          due=len(plan.due), already_delivered=already)
    if not send and not dry_run and output is None:
        log.info("no digest for %s: %s", plan.day, skipped.replace("_", " "))
        return result

    rendered = render(config, plan, now, Renderer(config))
    ident = message_id(config, plan.day, store.journal.secret(create=send))
    message = to_message(config, rendered, plan.day, now, ident)
    result = replace(result, subject=rendered.subject, text=rendered.text, message=message,
                     problems=rendered.problems)
    if output is not None:
        write_html(output, rendered.html)
        result = replace(result, output=output)
    if not send:
        return result

    uid = None
    if delivery == "smtp":
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
            store.journal.attempt_digest(plan.day, ident, now)
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
