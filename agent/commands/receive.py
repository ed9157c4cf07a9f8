"""The commands step of every run: find the user's command messages in INBOX and Sent,
prove they are the user's, apply each once, flag it \\Seen, confirm it.

Runs right after the scan (CLI and daemon alike), so a command sent from a phone works at
the next scan. Which new messages of INBOX and Sent are candidates is told from their
headers alone (the fields the scan fetches): From is the user's address or an alias, the
message is no automated mail, and it answers a digest of this installation (In-Reply-To or
References names a digest Message-ID whose secret part verifies) or its Subject carries a
one-click link's key. Only candidates get their text part fetched. Anything that looks
like a command but fails these tests is ignored and listed (``followup -v scan``).

Exactly once: a message is known by its Message-ID; its commands and the journal entry
recording it (with every line's result) are written in one transaction, so a kill at any
point leaves it applied and recorded, or neither. The confirmation follows; its
Message-ID is derived from the command's, so a crash after appending it never doubles it.
"""

from __future__ import annotations

import hmac
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from agent import policy
from agent.commands import grammar
from agent.config import Config
from agent.headers.meta import MessageMeta, parse_message
from agent.identity import self_keys
from agent.mailbox.client import Mailbox
from agent.mailbox.records import FetchedHeader
from agent.store import Store
from agent.store.commands import CommandRecord

log = logging.getLogger(__name__)

DIGEST_ID = re.compile(r"followup-digest\.(\d{4}-\d{2}-\d{2})\.[0-9a-f]+@", re.IGNORECASE)
# Where a folder was never looked at (or its UIDs changed meaning): answers to digests of
# the last two weeks are still read.
LOOK_BACK = timedelta(days=14)
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True)
class Ignored:
    """A message that looked like a command and was not taken as one, and why."""

    folder: str
    uid: int
    sender: str
    subject: str
    reason: str

    def line(self) -> str:
        return (f"{self.folder} UID {self.uid} from {self.sender or '(nobody)'} "
                f"{self.subject!r}: {self.reason}")


@dataclass
class CommandsResult:
    """What the commands step did in one run."""

    looked_at: int = 0  # new messages of INBOX and Sent whose headers were read
    candidates: int = 0  # the user's command messages not applied before
    fetched: int = 0  # text parts fetched (never more than candidates)
    applied: list[CommandRecord] = field(default_factory=list)
    ignored: list[Ignored] = field(default_factory=list)
    confirmations: int = 0

    def line(self) -> str:
        done = sum(1 for record in self.applied for r in record.results if r.ok)
        parts = [f"commands: {len(self.applied)} message(s) applied ({done} command(s) done)"]
        if self.ignored:
            parts.append(f"{len(self.ignored)} ignored (`followup -v scan` lists them)")
        if self.confirmations:
            parts.append(f"{self.confirmations} confirmation(s) in your INBOX")
        return "; ".join(parts)


def receive(config: Config, store: Store, mailbox: Mailbox, now: datetime) -> CommandsResult:
    """Look at what is new in INBOX and Sent, apply the user's commands, confirm them."""
    result = CommandsResult()
    secret = store.journal.secret()
    assert secret is not None  # made on first use
    sent = mailbox.roles().sent
    for folder in dict.fromkeys(f for f in ("INBOX", sent) if f):
        _folder(config, store, mailbox, folder, secret, now, result)
    _confirm(config, store, mailbox, secret, now, result)
    return result


def _since(day: date) -> str:
    return f"{day.day:02d}-{MONTHS[day.month - 1]}-{day.year}"  # IMAP date, not the locale's


def _folder(config: Config, store: Store, mailbox: Mailbox, folder: str, secret: bytes,
            now: datetime, result: CommandsResult) -> None:
    status = mailbox.status(folder)
    position = store.commands.position(folder)
    uids: Sequence[int]
    if position is not None and position[0] == status.uidvalidity:
        if status.uidnext and status.uidnext <= position[1] + 1:
            return  # nothing new
        mailbox.select(folder)
        uids = mailbox.uids_after(position[1])
    elif status.uidnext and not store.journal.any_digest():
        # No digest was ever made here, so nothing in the folder can answer one: the look
        # starts after what is there (a first scan then needs no SEARCH of the folder's
        # headers, ~0.4 s at 66,000 messages on Dovecot).
        store.commands.advance(folder, status.uidvalidity, status.uidnext - 1)
        return
    else:
        # A first look (or a folder whose UIDs changed meaning): only recent messages whose
        # headers could make them candidates, found by the server (a substring SEARCH).
        since = policy.today(now, config.digest.tz) - LOOK_BACK
        uids = mailbox.search(folder, [
            "SINCE", _since(since), "OR", "OR", "HEADER", "In-Reply-To", "followup-digest.",
            "HEADER", "References", "followup-digest.", "SUBJECT", "[followup "])
    for start in range(0, len(uids), config.imap.batch_size):
        batch = uids[start:start + config.imap.batch_size]
        mailbox.select(folder)
        for item in mailbox.fetch_headers(batch):
            result.looked_at += 1
            _message(config, store, mailbox, folder, item, secret, now, result)
        if position is not None and position[0] == status.uidvalidity:
            store.commands.advance(folder, status.uidvalidity, batch[-1])
    if position is None or position[0] != status.uidvalidity:
        store.commands.advance(folder, status.uidvalidity, max(status.uidnext - 1, 0, *uids))


def looks_like_command(meta: MessageMeta) -> bool:
    """Whether a message names a followup digest or carries a link's key (headers only)."""
    ids = [i for i in (meta.in_reply_to, *meta.references) if i]
    return any(DIGEST_ID.match(i) for i in ids) or grammar.has_key(meta.subject)


def answered_digest(config: Config, secret: bytes, meta: MessageMeta) -> date | None:
    """The day of this installation's digest the message answers (In-Reply-To first, then
    the newest of References), proven by recomputing the digest's Message-ID; else None."""
    for ident in (meta.in_reply_to, *reversed(meta.references)):
        match = DIGEST_ID.match(ident or "")
        if ident is None or match is None:
            continue
        try:
            day = date.fromisoformat(match[1])
        except ValueError:
            continue
        from agent.digest import message_id  # see _message

        if hmac.compare_digest(message_id(config, day, secret).strip("<>").lower(),
                               ident.lower()):
            return day
    return None


def _message(config: Config, store: Store, mailbox: Mailbox, folder: str,
             item: FetchedHeader, secret: bytes, now: datetime,
             result: CommandsResult) -> None:
    meta = parse_message(item.header, item.internaldate, now)
    if meta.automated or not looks_like_command(meta):
        return  # ordinary mail, the digest itself, our confirmations
    sender = meta.from_[0].key if len(meta.from_) == 1 else ""

    def ignore(reason: str) -> None:
        ignored = Ignored(folder, item.uid, sender, meta.subject, reason)
        log.info("not a command: %s", ignored.line())
        result.ignored.append(ignored)

    if "\\draft" in item.flags:
        return  # a reply still being written
    if sender not in self_keys(config):
        ignore("not from you: commands count only from [account] email or aliases")
        return
    if not meta.message_id:
        ignore("it has no Message-ID, so it could not be applied exactly once")
        return
    if store.commands.applied(meta.message_id):
        if "\\seen" not in item.flags:
            mailbox.mark_seen(folder, [item.uid])  # another copy (INBOX and Sent)
        return
    day = answered_digest(config, secret, meta)
    if day is None and not grammar.has_key(meta.subject):
        ignore("it names a followup digest, but not one of this installation (the "
               "digest's secret part does not match)")
        return

    # Imported here, for a candidate only: message bodies, the digest's templates and the
    # commands' effects take ~0.1 s to import, which every scan would pay (README "How
    # fast": the no-change rescan).
    from agent.bodies import text_of, written
    from agent.commands.apply import Context, apply

    result.candidates += 1
    raw = mailbox.fetch_text_part(folder, item.uid)
    result.fetched += 1
    text = text_of(raw) if raw else ""
    lines = _lines(grammar.parse(written(text).body), meta.subject)
    if day is None:
        # Only what a key binds runs: the key is the proof, and it proves one command.
        keys = grammar.keys_in(meta.subject, text)
        own = config.account.email
        bound: list[grammar.Line] = [
            ln for ln in lines
            if isinstance(ln, grammar.Command) and grammar.bound(secret, own, ln, keys)]
        if not bound:
            ignore("its link key does not match its command (changed, or from another "
                   "installation)")
            return
        lines = bound
    with store.transaction():
        results = apply(config, store, lines, Context(day, meta.time), now)
        store.commands.record(meta.message_id, folder, item.uid, meta.time,
                              "digest" if day is not None else "link", day, meta.subject,
                              results, now)
    if "\\seen" not in item.flags:
        mailbox.mark_seen(folder, [item.uid])
    record = store.commands.get(meta.message_id)
    if record is not None:
        result.applied.append(record)
    log.info("applied the commands of %s UID %d: %s", folder, item.uid,
             "; ".join(r.text for r in results) or "none found")


def _lines(body: Sequence[grammar.Line], subject: str) -> list[grammar.Line]:
    """The body's lines; a link's subject command too when the body lacks it (some clients
    drop a mailto body). The same command twice runs once."""
    lines = list(body)
    from_subject = grammar.subject_command(subject)
    canonical = {ln.canonical for ln in lines if isinstance(ln, grammar.Command)}
    if from_subject is not None and from_subject.canonical not in canonical:
        lines.append(from_subject)
    seen: set[str] = set()
    unique: list[grammar.Line] = []
    for line in lines:
        if isinstance(line, grammar.Command):
            if line.canonical in seen:
                continue
            seen.add(line.canonical)
        unique.append(line)
    return unique


def _confirm(config: Config, store: Store, mailbox: Mailbox, secret: bytes, now: datetime,
             result: CommandsResult) -> None:
    """One confirmation per applied message not yet confirmed (``[commands] confirm``)."""
    records = store.commands.unconfirmed()
    if not records:
        return
    from agent import sendmail  # as above: only with something to confirm
    from agent.commands import confirm

    for record in records:
        if confirm.wanted(config, record):
            ident = confirm.confirmation_id(config, record.message_id, secret)
            if not mailbox.search("INBOX", ["HEADER", "Message-ID", ident]):
                message = confirm.build(config, record, ident, now)
                sendmail.check_recipients(message, config.account.email)
                mailbox.append("INBOX", confirm.as_bytes(message), flags=())
                result.confirmations += 1
        store.commands.confirmed(record.message_id, now)
