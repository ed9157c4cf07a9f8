"""Check-in and reply drafts in the user's own Drafts folder: compose, append once, settle later.

Drafts only: nothing here sends mail. A draft is appended to the Drafts folder with ``\\Draft
\\Seen`` and the user sends, edits or deletes it in their own mail client.

Life cycle of a draft (``reconcile``, run right after each scan):

* still in Drafts — the same UID, the same Message-ID, an edited copy carrying our
  ``X-Followup-Checkin: <contact id>`` header, or (for clients that drop unknown headers) a draft
  to one of the contact's addresses saved since ours was made → **pending**;
* gone, and the ledger has a message from the user to the contact since the draft was made
  (the scan reads Sent; up to a day before counts too, see ``SENT_SLACK``) → **sent**;
* gone with nothing sent → **declined**: the contact is snoozed ``[drafts] snooze_days`` from
  today (a longer snooze the user set stays).

Creating (``create``): for today's picks, at most ``[drafts] max_per_day`` a day, never while
the contact has a pending draft, never twice for one contact on one day. A draft is recorded
only after its APPEND succeeded; one appended but never recorded (a crash in between) is found
in Drafts by its header and adopted instead of being made again.

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
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from email.header import Header
from email.message import EmailMessage
from email.policy import SMTP, Policy
from email.utils import format_datetime, formataddr
from typing import Any

from agent import policy
from agent.config import Config
from agent.errors import MailboxError
from agent.headers import normalise_address, parse_message
from agent.mailbox import Mailbox, utc
from agent.model import Contact, ContactState, Exchange
from agent.plan import Plan
from agent.render import Renderer
from agent.store import Store
from agent.store.journal import DraftRecord

log = logging.getLogger(__name__)

CHECKIN_HEADER = "X-Followup-Checkin"
DRAFT_FLAGS = ("\\Draft", "\\Seen")
LANGUAGES = ("de", "en")

# A message to the contact this long *before* the draft was made still counts as "sent":
# clocks differ between the user's devices and this machine, and a mail the user wrote just
# before the draft appeared (not yet scanned) means the same thing — they got in touch.
SENT_SLACK = timedelta(days=1)
# An edited copy without our header is recognised by recipient when it was saved no earlier
# than this before the draft was made (clock differences again).
EDIT_SLACK = timedelta(hours=1)


# --------------------------------------------------------------------------- records


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


@dataclass(frozen=True)
class Skipped:
    contact_id: int
    name: str
    address: str
    reason: str


@dataclass
class DraftsResult:
    """What ``create`` did (or, with ``dry_run``, would do)."""

    dry_run: bool
    folder: str | None
    created: list[Draft] = field(default_factory=list)
    adopted: list[DraftRecord] = field(default_factory=list)  # found in Drafts, not made again
    skipped: list[Skipped] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # broken user templates (default used)
    reconciled: ReconcileResult | None = None


@dataclass
class ReconcileResult:
    """How each pending draft was settled."""

    pending: list[DraftRecord] = field(default_factory=list)
    moved: list[DraftRecord] = field(default_factory=list)  # pending, found as an edited copy
    sent: list[DraftRecord] = field(default_factory=list)
    declined: list[tuple[DraftRecord, date]] = field(default_factory=list)  # snoozed until
    problem: str | None = None  # why nothing could be checked


@dataclass(frozen=True)
class FolderDraft:
    """One message found in the Drafts folder, as much as matching needs."""

    uid: int
    message_id: str | None
    checkin: str | None  # X-Followup-Checkin value
    recipients: frozenset[str]  # identity keys of To, Cc and Bcc
    written: datetime  # its Date (else INTERNALDATE): when the draft says it was made
    saved: datetime  # the later of INTERNALDATE and Date: when this copy was last saved


# --------------------------------------------------------------------------- language


_GERMAN_PREFIX = re.compile(r"^\s*(?:aw|wg|antw)\s*:", re.IGNORECASE)
_GERMAN_LETTERS = re.compile("[äöüßÄÖÜ]")
_GERMAN_TLDS = frozenset({"de", "at", "ch"})
_ENGLISH_TLDS = frozenset({"uk", "ie", "us", "au", "nz", "ca"})


def guess_language(contact: Contact, recent: Sequence[Exchange]) -> tuple[str, str] | None:
    """A language from the contact's own mail, with the reason in words; None if no clue."""
    hint = (contact.language_hint or "").lower()
    if hint:
        return ("de" if hint == "de" else "en"), f"Content-Language {hint} of their mail"
    theirs = [e.subject for e in recent if e.direction == "in"]
    for subject in theirs:
        if _GERMAN_PREFIX.match(subject):
            return "de", "German reply prefix in their subjects"
    for subject in theirs:
        if _GERMAN_LETTERS.search(subject):
            return "de", "German letters in their subjects"
    for address in (contact.email, *contact.addresses):
        tld = address.rpartition(".")[2].lower()
        if tld in _GERMAN_TLDS:
            return "de", f"their address ends in .{tld}"
        if tld in _ENGLISH_TLDS:
            return "en", f"their address ends in .{tld}"
    return None


def choose_language(config: Config, store: Store, contact: Contact) -> tuple[str, str]:
    """(language, why) by the precedence in the module docstring."""
    if contact.language in LANGUAGES:
        return contact.language, "your setting for this contact"
    ruled = policy.effective_settings(contact, config.policy).language
    if ruled in LANGUAGES:
        return ruled, "a [[policy.rule]]"
    guessed = guess_language(contact, store.ledger.exchanges_of(contact.addresses, limit=20))
    if guessed is not None:
        return guessed
    return config.digest.language, "[digest] language"


# --------------------------------------------------------------------------- names


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Display names that are a role or an organisation, not a person: no "Hallo Info,".
_ROLE_WORDS = _words("""
    admin administration accounting accounts abo abteilung anfrage anfragen bestellung
    bestellungen billing booking bookings buchhaltung buchung büro buero career careers
    contact contacts customer customers einkauf empfang events hallo hello help helpdesk
    hilfe hr info infos information jobs karriere kontakt kundendienst kundenservice mail
    mailbox marketing news newsletter no-reply noreply office orders personal post postfach
    presse press purchasing rechnung rechnungen redaktion reception sales sekretariat
    service shop support team verkauf vertrieb webmaster zentrale
""")
_COMPANY_WORDS = _words("""
    gmbh ag kg ug ohg gbr e.v. ev mbh co. co ltd ltd. inc inc. llc plc corp corp. se sa sarl
    s.a. bv b.v. nv gesellschaft verlag agentur agency studio group gruppe
""")
# "Frau Müller", "Mr Smith": the word after a salutation is a surname, so no first name.
_SALUTATIONS = _words("herr frau hr. fr. mr mr. mrs mrs. ms ms. miss mx mx. sir dame")
# "Dr. Jürgen Müller": dropped; "Dr. Müller" (one word left) is a surname again.
_TITLES = _words("dr dr. prof prof. dipl dipl. dipl.-ing. ing ing. mag mag.")
_NAME_WORD = re.compile(r"[^\W\d_]+(?:[-'’][^\W\d_]+)*")


def _is_name_word(word: str) -> bool:
    return len(word) >= 2 and _NAME_WORD.fullmatch(word) is not None


def _one_line(text: str) -> str:
    """Control characters (CR, LF, tab …) become spaces; whitespace collapsed."""
    cleaned = "".join(" " if not ch.isprintable() else ch for ch in text)
    return " ".join(cleaned.split())


def _tidy_case(word: str) -> str:
    # "JÜRGEN" / "jürgen" → "Jürgen"; "McKenzie" and "Jean-Luc" stay as written.
    if word.isupper() or word.islower():
        return "-".join(part[:1].upper() + part[1:].lower() for part in word.split("-"))
    return word


def first_name(name: str, address: str) -> str | None:
    """The first name to greet, or None when none can be told (then the greeting is neutral).

    From the display name ("Jürgen Müller", "Müller, Jürgen", "Dr. Jürgen Müller"), else from
    an address of the form first.last@. Roles and organisations ("info", "Team Acme",
    "Acme GmbH"), initials ("J. Müller") and bare user names give None.
    """
    local = address.rpartition("@")[0].lower()
    text = _one_line(re.sub(r"\([^)]*\)", " ", name)).strip(" \"'")
    if "@" in text or text.lower() == local:
        text = ""
    if "," in text:
        last, _, first = text.partition(",")
        text = f"{first} {last}"
    all_words = text.split()
    words = [w for w in all_words if w.lower() not in _TITLES]
    if words:
        lowered = {w.lower().strip(".,") for w in words} | {w.lower() for w in words}
        if lowered & (_ROLE_WORDS | _COMPANY_WORDS | _SALUTATIONS):
            return None
        if len(words) == 1 and len(all_words) > 1:
            return None  # "Dr. Müller"
        return _tidy_case(words[0]) if _is_name_word(words[0]) else None
    # No display name: "juergen.mueller@" → "Juergen"; "jmueller@" or "info@" → None.
    parts = [p for p in re.split(r"[._-]", local.split("+", 1)[0]) if p]
    if len(parts) >= 2 and parts[0] not in _ROLE_WORDS and all(map(_is_name_word, parts[:2])):
        return _tidy_case(parts[0])
    return None


# --------------------------------------------------------------------------- subjects


_REPLY_PREFIXES = re.compile(
    r"^(?:\s*(?:re|aw|antw|wg|fwd?|wtr)\s*(?:\[\d+\]|\(\d+\))?\s*[:：])+\s*", re.IGNORECASE)


def reply_subject(subject: str) -> str:
    """'Re: <subject>' without stacking: 'AW: Re: WG: Angebot' → 'Re: Angebot'."""
    core = _REPLY_PREFIXES.sub("", _one_line(subject))
    return f"Re: {core}" if core else ""


# --------------------------------------------------------------------------- headers


class _Verbatim(str):
    """A header value we encoded and folded ourselves.

    The email package decodes RFC 2047 words found in a header value it is given (so a subject
    containing the *text* "=?utf-8?q?=0D=0ABcc:...?=" would turn into a line break and a new
    header) and, in Python 3.11, drops spaces when it folds long encoded subjects. An object with
    a ``name`` is kept as is by the policy (``EmailPolicy.header_store_parse``) and written with
    its own ``fold`` — that is this class. ``str()`` of it is the decoded text.
    """

    name: str
    folded: str

    def __new__(cls, name: str, text: str, folded: str) -> _Verbatim:
        value = super().__new__(cls, text)
        value.name = name
        value.folded = folded
        return value

    def fold(self, *, policy: Policy) -> str:
        return self.folded


def _encoded(text: str, header_name: str) -> str:
    """``text`` as header content: plain ASCII folded at spaces, else UTF-8 encoded words.

    ASCII text that contains ``=?`` is encoded too, so that no reader decodes it as an
    encoded word of its own.
    """
    charset = "us-ascii" if text.isascii() and "=?" not in text else "utf-8"
    return Header(text, charset, header_name=header_name).encode(linesep="\r\n")


def _text_header(name: str, text: str) -> _Verbatim:
    text = _one_line(text)
    return _Verbatim(name, text, f"{name}: {_encoded(text, name)}\r\n")


def _ascii_address(address: str) -> str | None:
    """The address for a header: ASCII local part, IDNA domain; None if it cannot be written."""
    local, _, domain = address.partition("@")
    if not local or not domain or not local.isascii() or normalise_address(address) is None:
        return None
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    return f"{local}@{domain}"


def _address_header(name: str, display: str, address: str) -> _Verbatim:
    display = _one_line(display)
    if not display:
        return _Verbatim(name, address, f"{name}: {address}\r\n")
    if display.isascii() and "=?" not in display:
        mailbox = formataddr((display, address))  # quotes the name when it needs it
    else:
        mailbox = f"{_encoded(display, name)} <{address}>"
    return _Verbatim(name, f"{display} <{address}>", f"{name}: {mailbox}\r\n")


_MSG_ID = re.compile(r"[!-;=?-~]+@[!-;=?-~]+")  # printable ASCII without < > and spaces


def _message_id_ok(ident: str | None) -> bool:
    return bool(ident) and _MSG_ID.fullmatch(ident or "") is not None


# --------------------------------------------------------------------------- compose


def _days_since(contact: Contact, day: date, config: Config) -> int:
    return max(0, (day - contact.last_exchange.astimezone(config.digest.tz).date()).days)


def compose(config: Config, state: ContactState, *, language: str, language_reason: str,
            day: date, now: datetime, renderer: Renderer) -> Draft | None:
    """Render and build one draft for ``state``'s contact; None (logged) if it cannot be written.

    Waiting contacts get a reply, everyone else a check-in. With a last message to refer to,
    the draft replies in its thread (In-Reply-To, References, "Re: <subject>").
    """
    contact = state.contact
    address = _ascii_address(contact.email)
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
        "last_subject": _REPLY_PREFIXES.sub("", _one_line(contact.last_subject)),
        "last_direction": contact.last_direction,
        "sender_name": sender.name,
        "sender_first_name": first_name(sender.name, sender.email) or "",
        "status": state.status,
        "kind": kind,
        "contact": contact,
        "state": state,
    }
    body = renderer.render(f"{kind}.txt.j2", **context).strip("\n") + "\n"
    thread = contact.last_message_id if _message_id_ok(contact.last_message_id) else None
    subject = reply_subject(contact.last_subject) if thread else ""
    if not subject:
        subject = _one_line(renderer.render(f"{kind}.subject.j2", **context))

    own_domain = (_ascii_address(sender.email) or sender.email).rpartition("@")[2]
    message_id = f"followup.{uuid.uuid4().hex}@{own_domain}"
    msg = EmailMessage(policy=SMTP)
    msg["From"] = _address_header("From", sender.name, _ascii_address(sender.email)
                                  or sender.email)
    msg["To"] = _address_header("To", contact.name, address)
    msg["Subject"] = _text_header("Subject", subject)
    msg["Date"] = format_datetime(now.astimezone(config.digest.tz))
    msg["Message-ID"] = _Verbatim("Message-ID", f"<{message_id}>",
                                  f"Message-ID: <{message_id}>\r\n")
    if thread:
        for name in ("In-Reply-To", "References"):
            msg[name] = _Verbatim(name, f"<{thread}>", f"{name}: <{thread}>\r\n")
    msg[CHECKIN_HEADER] = str(contact.id)
    msg.set_content(body, charset="utf-8", cte="quoted-printable")
    return Draft(
        contact_id=contact.id, name=contact.name, address=address, kind=kind,
        language=language, language_reason=language_reason, subject=subject, body=body,
        message_id=message_id, in_reply_to=thread, raw=msg.as_bytes(),
    )


# --------------------------------------------------------------------------- the Drafts folder


def drafts_folder(mailbox: Mailbox) -> str:
    """The Drafts folder (SPECIAL-USE flag, else a known name); a clear error if there is none."""
    folder = mailbox.roles().drafts
    if folder is None:
        names = ", ".join(f.name for f in mailbox.list_folders() if f.selectable)
        raise MailboxError(
            f"{mailbox.host} has no Drafts folder (none is flagged \\Drafts and none has a known "
            f"name; folders: {names}); create a folder named \"Drafts\" in your mail client"
        )
    return folder


def inventory(mailbox: Mailbox, folder: str, *, batch_size: int,
              now: datetime) -> tuple[int, list[FolderDraft]]:
    """(UIDVALIDITY, every message in ``folder`` not marked \\Deleted) — headers only.

    One pass over the folder instead of a SEARCH per draft: some servers (Gmail) do not search
    arbitrary headers reliably, and Drafts folders are small.
    """
    status = mailbox.select(folder)
    found = []
    for batch in mailbox.iter_headers(mailbox.uids_after(0), batch_size):
        for item in batch:
            if "\\deleted" in item.flags:
                continue
            meta = parse_message(item.header, item.internaldate, now)
            stored = utc(item.internaldate)
            found.append(FolderDraft(
                uid=item.uid, message_id=meta.message_id, checkin=meta.followup_checkin,
                recipients=frozenset(a.key for a in (*meta.to, *meta.cc, *meta.bcc)),
                written=meta.time, saved=max(stored, meta.time) if stored else meta.time,
            ))
    return status.uidvalidity, found


def _exact_match(record: DraftRecord, uidvalidity: int,
                 candidates: Iterable[FolderDraft]) -> FolderDraft | None:
    """The draft itself (same UID) or a copy of it (same Message-ID, or our header)."""
    candidates = list(candidates)
    if record.uid is not None and record.uidvalidity == uidvalidity:
        same = next((c for c in candidates if c.uid == record.uid), None)
        if same is not None:
            return same
    by_id = next((c for c in candidates if c.message_id == record.message_id), None)
    if by_id is not None:
        return by_id
    return next((c for c in candidates if c.checkin == str(record.contact_id)), None)


def _edited_match(record: DraftRecord, addresses: frozenset[str],
                  candidates: Iterable[FolderDraft]) -> FolderDraft | None:
    """A draft to one of the contact's addresses saved since ours was made (header dropped)."""
    since = record.created_at - EDIT_SLACK
    return next((c for c in candidates if c.recipients & addresses and c.saved >= since
                 and c.checkin is None), None)


# --------------------------------------------------------------------------- reconcile


def reconcile(config: Config, store: Store, mailbox: Mailbox, now: datetime) -> ReconcileResult:
    """Settle every pending draft: still pending, sent, or declined (snoozed). See the module doc.

    Run it after a scan, so that a draft the user sent is already in the ledger. Never raises for
    a missing Drafts folder: the digest must still go out; the pending drafts wait.
    """
    result = ReconcileResult()
    pending = store.journal.drafts("pending")
    if not pending:
        return result
    folder = mailbox.roles().drafts
    if folder is None:
        result.problem = "no Drafts folder found; pending drafts left as they are"
        log.warning("%s", result.problem)
        result.pending = pending
        return result
    names = {f.name for f in mailbox.list_folders() if f.selectable}
    by_folder: dict[str, list[DraftRecord]] = {}
    for record in pending:
        # A draft is looked for where it was put; if that folder is gone, in today's Drafts.
        by_folder.setdefault(record.folder if record.folder in names else folder, []).append(
            record)

    today = policy.today(now, config.digest.tz)
    for name, records in by_folder.items():
        uidvalidity, found = inventory(mailbox, name, batch_size=config.imap.batch_size, now=now)
        free = {c.uid: c for c in found}
        matched: dict[int, FolderDraft] = {}
        # Exact matches first, so that a loose recipient match never takes another's draft.
        for record in records:
            hit = _exact_match(record, uidvalidity, free.values())
            if hit is not None:
                matched[record.id] = free.pop(hit.uid)
        for record in records:
            if record.id in matched:
                continue
            keys = frozenset({record.address, *store.people.addresses_of(record.contact_id)})
            hit = _edited_match(record, keys, free.values())
            if hit is not None:
                matched[record.id] = free.pop(hit.uid)

        for record in records:
            hit = matched.get(record.id)
            if hit is not None:
                result.pending.append(record)
                if hit.uid != record.uid or uidvalidity != record.uidvalidity:
                    store.journal.update_draft_uid(record.id, hit.uid, uidvalidity)
                    result.moved.append(record)
                continue
            addresses = {record.address, *store.people.addresses_of(record.contact_id)}
            if store.ledger.sent_to_since(addresses, record.created_at - SENT_SLACK):
                store.journal.resolve_draft(record.id, "sent", now)
                result.sent.append(record)
                log.info("draft to %s was sent", record.address)
            else:
                until = today + timedelta(days=config.drafts.snooze_days)
                # One transaction: a crash never leaves a declined draft without its snooze.
                with store.transaction():
                    store.journal.resolve_draft(record.id, "declined", now)
                    until = store.people.snooze_at_least(record.contact_id, until)
                result.declined.append((record, until))
                log.info("draft to %s was deleted unsent; contact snoozed until %s",
                         record.address, until.isoformat())
    return result


# --------------------------------------------------------------------------- create


def create(config: Config, store: Store, mailbox: Mailbox | None, plan: Plan, now: datetime,
           *, dry_run: bool = False) -> DraftsResult:
    """Drafts for today's picks (``plan.picks``), at most ``[drafts] max_per_day`` a day.

    Never two pending drafts for one person, never a second draft for one person on one day.
    A draft is recorded only after its APPEND succeeded; a draft that was appended but not
    recorded (a crash in between) is found in Drafts by its header and adopted, not made again.
    ``dry_run`` composes the drafts from the ledger as it is and touches nothing (no mailbox
    needed).
    """
    if mailbox is None and not dry_run:
        raise ValueError("create() needs a mailbox unless dry_run")
    day = plan.day
    records = store.journal.drafts()
    pending = {r.contact_id: r for r in records if r.state == "pending"}
    made_today = {r.contact_id for r in records if r.day == day}
    budget = config.drafts.max_per_day - sum(1 for r in records if r.day == day)

    result = DraftsResult(dry_run=dry_run, folder=None)
    uidvalidity: int | None = None
    found: list[FolderDraft] = []
    renderers: dict[str, Renderer] = {}

    for state in plan.picks:
        contact: Contact = state.contact
        earlier = pending.get(contact.id)
        reason: str | None = None
        if earlier is not None:
            reason = f"the draft of {earlier.day.isoformat()} is still in Drafts"
        elif contact.id in made_today:
            reason = "already had a draft today"
        elif budget <= 0:
            reason = f"[drafts] max_per_day = {config.drafts.max_per_day} reached"
        if reason is not None:
            result.skipped.append(Skipped(contact.id, contact.name, contact.email, reason))
            continue

        folder = result.folder
        if mailbox is not None and not dry_run and folder is None:
            # Looked up only when there is a draft to make: no Drafts folder is an error then.
            folder = result.folder = drafts_folder(mailbox)
            uidvalidity, found = inventory(mailbox, folder, batch_size=config.imap.batch_size,
                                           now=now)
        orphan = next((c for c in found if c.checkin == str(contact.id)
                       and c.recipients & set(contact.addresses)), None)
        if orphan is not None and folder is not None:
            # Appended by an earlier run that stopped before recording it: adopt it.
            result.adopted.append(_adopt(store, state, orphan, folder, uidvalidity, config))
            log.info("found an unrecorded draft to %s in %s; keeping it", contact.email, folder)
            if result.adopted[-1].day == day:
                budget -= 1
            continue

        language, why = choose_language(config, store, contact)
        renderer = renderers.get(language)
        if renderer is None:
            renderer = renderers[language] = Renderer(config, language=language)
        draft = compose(config, state, language=language, language_reason=why, day=day,
                        now=now, renderer=renderer)
        if draft is None:
            result.skipped.append(Skipped(contact.id, contact.name, contact.email,
                                          "the address cannot be written in a plain header"))
            continue
        budget -= 1
        if dry_run or mailbox is None or folder is None:
            result.created.append(draft)
            continue
        uid = mailbox.append(folder, draft.raw, flags=DRAFT_FLAGS)
        if uid is None:  # no UIDPLUS: find it by its Message-ID
            hits = mailbox.search(folder, ["HEADER", "Message-ID", draft.message_id])
            uid = hits[-1] if hits else None
        store.journal.add_draft(contact.id, draft.address, day, draft.kind, draft.message_id,
                                folder, uid, uidvalidity, now)
        result.created.append(replace(draft, uid=uid))
        log.info("draft to %s in %s (%s, %s)", draft.address, folder, draft.kind, draft.language)
    result.problems = [p for r in renderers.values() for p in r.problems]
    return result


def _adopt(store: Store, state: ContactState, orphan: FolderDraft, folder: str,
           uidvalidity: int | None, config: Config) -> DraftRecord:
    contact = state.contact
    kind = "reply" if state.status == "waiting" else "checkin"
    adopted_day = policy.today(orphan.written, config.digest.tz)
    message_id = orphan.message_id or ""
    draft_id = store.journal.add_draft(contact.id, contact.email, adopted_day, kind, message_id,
                                       folder, orphan.uid, uidvalidity, orphan.written)
    return DraftRecord(draft_id, contact.id, contact.email, adopted_day, kind, message_id, folder,
                       orphan.uid, uidvalidity, orphan.written, "pending")
