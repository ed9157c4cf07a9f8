"""What the morning digest says: today's picks and the due list, as one email to the user.

agent.delivery takes it to the INBOX or through SMTP, once a day."""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from urllib.parse import quote

from agent import policy, sendmail
from agent.addressbook.phones import shown
from agent.commands.grammar import ACTIONS, Action, link_message
from agent.config import Config
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
from agent.text import one_line

log = logging.getLogger(__name__)

DIGEST_HEADER = "X-Followup-Digest"



# --------------------------------------------------------------------------- what templates see


@dataclass(frozen=True)
class Link:
    """A one-click action of a row: a mailto: link to the user that runs one command."""

    action: Action  # snooze | ignore | called
    url: str


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
    phone: str = ""  # the number to call (E.164; a card's first, else their signature's), ""
    draft_folder: str = ""  # where a prepared draft waits, in the client's words; "" none
    number: int = 0  # its number in this digest (1, 2, …): "snooze 2 30d" in an answer
    actions: tuple[Link, ...] = ()  # one-click links: snooze 30 days, not this person, called
    phone_shown: str = ""  # the number as people write it: "+49 30 1234567"
    phone_source: str = ""  # addressbook | signature
    tel: str = ""  # a tel: URL of the number ("tel:+49301234567"), "" without one

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
    """The numbers a digest's header line shows."""

    picks: int
    waiting: int
    overdue: int
    due: int
    snoozed: int
    contacts: int  # every contact that is not ignored
    replies: int = 0  # replies owed in today's own section

    @property
    def total_due(self) -> int:
        return self.waiting + self.overdue + self.due


@dataclass(frozen=True)
class User:
    """Whom the digest is for (its To and greeting)."""

    name: str
    email: str


def mailto(address: str, subject: str = "", in_reply_to: str | None = None,
           body: str = "") -> str:
    """A mailto: URL (RFC 6068) in which no address, subject or body can end the href or add
    fields.

    ``In-Reply-To`` carries its angle brackets (``%3C…%3E``, as in RFC 6068's example):
    Thunderbird and neomutt drop a bare id and the reply starts a new thread. Every value is
    UTF-8 percent-encoded, a space as ``%20`` and ``+`` as ``%2B`` (a web mailer reading the
    URL as a form would turn a bare ``+`` into a space), line breaks as ``%0D%0A``.
    """
    url = "mailto:" + quote(address, safe="@+")
    fields = []
    if subject:
        fields.append("subject=" + quote(subject, safe=""))
    if in_reply_to:
        fields.append("In-Reply-To=" + quote(f"<{in_reply_to.strip('<> ')}>", safe=""))
    if body:
        fields.append("body=" + quote(body.replace("\r\n", "\n").replace("\n", "\r\n"),
                                      safe=""))
    return url + ("?" + "&".join(fields) if fields else "")


def actions(config: Config, contact_id: int, name: str,
            secret: bytes | None) -> tuple[Link, ...]:
    """The one-click links of a row: each opens a message to the user with one command."""
    own = ascii_address(config.account.email) or config.account.email
    links = []
    for action in ACTIONS:
        subject, body = link_message(action, contact_id, name, config.digest.language, secret,
                                     config.account.email)
        links.append(Link(action, mailto(own, subject, body=body)))
    return tuple(links)


FOLDER_WORDS = {"inbox": {"de": "Posteingang", "en": "Inbox"},
                "drafts": {"de": "Entwürfe", "en": "Drafts"}}


def folder_words(name: str, language: str) -> str:
    """A folder as mail clients show it: INBOX → Posteingang/Inbox, "INBOX.Gesendet" →
    Gesendet, "[Gmail]/Sent Mail" → Sent Mail (the last part of the path)."""
    if name.upper() == "INBOX":
        return FOLDER_WORDS["inbox"][language]
    if name.upper().startswith("INBOX."):
        return name.rsplit(".", 1)[-1]
    return name.rsplit("/", 1)[-1] or name


def row(state: ContactState, day: date, config: Config, draft_folder: str | None = None,
        number: int = 0, secret: bytes | None = None) -> Row:
    """One contact for the templates; ``draft_folder``: where their prepared draft waits;
    ``number``: its place in the digest; ``secret`` keys its one-click links."""
    contact = state.contact
    language = config.digest.language
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
    number_to_call = policy.callable_phone(contact) or ""
    phone = next((p for p in contact.phones if p.number == number_to_call), None)
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
        folder=folder_words(one_line(contact.last_folder), language),
        due_date=due_date,
        days_to_line=(due_date - day).days if due_date else 0,
        cadence_days=state.cadence_days,
        mailto=link,
        on_record=on_record,
        birthday_in=policy.birthday_in(contact, day),
        phone=number_to_call,
        phone_shown=shown(number_to_call) if number_to_call else "",
        phone_source=phone.source if phone else "",
        tel=tel(number_to_call),
        draft_folder=("" if draft_folder is None else
                      folder_words(one_line(draft_folder), language) if draft_folder
                      else FOLDER_WORDS["drafts"][language]),
        number=number,
        actions=actions(config, contact.id, name or email, secret),
    )


def tel(number: str) -> str:
    """A tel: URL (RFC 3966) of an E.164 number: only "+" and digits get into the href."""
    digits = "".join(c for c in number if c.isdigit())
    return f"tel:+{digits}" if number.startswith("+") and digits else ""


def birthday_row(state: ContactState, when: date, day: date) -> BirthdayRow:
    contact = state.contact
    born = contact.birthday or ""
    age = when.year - int(born[:4]) if born[:4].isdigit() else None
    email = one_line(contact.email)
    return BirthdayRow(name=one_line(contact.name) or email, email=email, date=when,
                       days=(when - day).days, age=age, mailto=mailto(email) if email else "")


def numbered(plan: Plan) -> list[ContactState]:
    """The digest's rows in the order they are numbered: the picks (1, 2, …), the replies
    owed, then the rest."""
    return plan.shown


def context(config: Config, plan: Plan, now: datetime,
            drafts: Mapping[int, str] | None = None,
            secret: bytes | None = None) -> dict[str, object]:
    """Everything the digest templates may use (documented in the README).

    ``drafts`` maps a contact id to the folder their prepared draft waits in ("" when the
    folder is not known yet, as in a preview): such a row points there, not to a blank
    compose window that would make a second draft. ``secret`` keys the one-click links
    (without it, a preview, they carry a key that never works).
    """
    drafts = drafts or {}
    rows = [row(s, plan.day, config, drafts.get(s.contact.id), number, secret)
            for number, s in enumerate(numbered(plan), start=1)]
    statuses = [s.status for s in plan.states]
    counts = Counts(
        picks=len(plan.picks),
        waiting=statuses.count("waiting"),
        overdue=statuses.count("overdue"),
        due=statuses.count("due"),
        snoozed=statuses.count("snoozed"),
        contacts=sum(1 for s in statuses if s != "ignored"),
        replies=len(plan.replies),
    )
    picks, replies = len(plan.picks), len(plan.picks) + len(plan.replies)
    return {
        "day": plan.day,
        "now": now,
        "user": User(one_line(config.account.name), config.account.email),
        "picks": rows[:picks],
        "replies": rows[picks:replies],
        "rest": rows[replies:],
        "prefer": config.digest.prefer,
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


def render(config: Config, plan: Plan, now: datetime, renderer: Renderer,
           drafts: Mapping[int, str] | None = None, secret: bytes | None = None) -> Rendered:
    values = context(config, plan, now, drafts, secret)
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
