"""The incremental scan: new UIDs of every relevant folder → parsed headers → the ledger."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple, Protocol

from agent.config import Config, MailboxConfig
from agent.headers.meta import Exchanges, MessageMeta, exchanges, from_user, parse_message
from agent.identity import self_keys
from agent.mailbox.client import FolderStatus, Mailbox
from agent.mailbox.fetch import FetchedHeader
from agent.store import Store
from agent.store.ledger import ExchangeRow, FolderState, HeldRow, MessageRow

log = logging.getLogger(__name__)


class Progress(Protocol):
    """What the CLI shows while a scan runs (a rich bar on a terminal, nothing otherwise)."""

    def folder_started(self, folder: str, total: int) -> None: ...

    def advanced(self, count: int) -> None: ...

    def folder_done(self, folder: str) -> None: ...


class NoProgress:
    def folder_started(self, folder: str, total: int) -> None:
        pass

    def advanced(self, count: int) -> None:
        pass

    def folder_done(self, folder: str) -> None:
        pass


@dataclass
class ScanSummary:
    folders: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    reset: dict[str, str] = field(default_factory=dict)  # folder → why its state was reset
    fetched: int = 0
    counted: int = 0
    new_exchanges: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    repaired: Counter[str] = field(default_factory=Counter)
    # Every repair with the message it was made to: "FOLDER UID n <Message-ID>: what".
    repairs: list[str] = field(default_factory=list)
    addresses_refreshed: int = 0
    seconds: float = 0.0
    interrupted: bool = False

    def line(self) -> str:
        """The one-line summary printed when not on a terminal."""
        rate = self.fetched / self.seconds if self.seconds > 0 else 0.0
        parts = [
            f"scanned {len(self.folders)} folder(s) ({len(self.unchanged)} unchanged)",
            f"{self.fetched} new message(s) in {self.seconds:.2f} s ({rate:.0f}/s)",
            f"{self.new_exchanges} new exchange(s)",
        ]
        if self.skipped:
            parts.append(f"{sum(self.skipped.values())} not counted")
        if self.reset:
            parts.append("reset: " + ", ".join(f"{f} ({why})" for f, why in self.reset.items()))
        if self.interrupted:
            parts.append("interrupted (resumes next time)")
        return "; ".join(parts)


def message_key(meta_message_id: str | None, from_key: str, time_value: datetime | None,
                header: bytes, gm_msgid: int | None = None) -> str:
    """Identity of a message across folders.

    The Message-ID, qualified by sender and Date so two different messages sharing one
    broken Message-ID stay two; without a Message-ID, a digest of the fetched headers
    (identical in every copy of the same message). Gmail names every message itself
    (X-GM-MSGID, the same under every label): that wins when present. A sane Date leads
    the key as a sortable prefix (minutes since 1970, hex) so that keys of mail scanned in
    time order land next to each other in the ledger's index (see store.key_id).
    """
    prefix = f"{int(time_value.timestamp()) // 60:08x}:" if time_value else ""
    if gm_msgid is not None:
        return f"{prefix}gm:{gm_msgid}"
    if meta_message_id:
        stamp = time_value.isoformat() if time_value else ""
        return f"{prefix}{meta_message_id}\x00{from_key}\x00{stamp}"
    return prefix + "sha1:" + hashlib.sha1(header, usedforsecurity=False).hexdigest()


#: Why a message From the user does not count as sent (README "Security").
DELIVERED_FROM_OUTSIDE = ("your address in From, but delivered from outside into a folder you "
                          "do not file sent mail in")
NO_COUNTERPART = "no counterpart (no usable From/To, or only your own addresses)"


class Batch(NamedTuple):
    """One parsed FETCH batch, ready for ``Ledger.save_batch``."""

    messages: list[MessageRow]
    rows: list[ExchangeRow]
    lists: set[str]
    sent_ids: list[str]  # Message-IDs of the user's own mail
    held: list[HeldRow]  # replies that count if they answer the user's mail


def process_batch(fetched: Sequence[FetchedHeader], own: frozenset[str], now: datetime,
                  summary: ScanSummary, *, folder: str = "",
                  delivered: Callable[[Sequence[int]], set[int]] | None = None) -> Batch:
    """Parse and classify one batch; pure apart from counting into ``summary`` and asking
    ``delivered`` which of the UIDs From the user came from outside (None: a folder where
    the user's own mail is what it says: Sent, Archive, All Mail)."""
    metas = [parse_message(item.header, item.internaldate, now) for item in fetched]
    outside: set[int] = set()
    if delivered is not None:
        from_me = [item.uid for item, meta in zip(fetched, metas, strict=True)
                   if from_user(meta, own) and "\\draft" not in item.flags]
        if from_me:
            outside = delivered(from_me)
    batch = Batch([], [], set(), [], [])
    for item, meta in zip(fetched, metas, strict=True):
        for problem in meta.problems:
            summary.repaired[problem.split(":", 1)[0]] += 1
            summary.repairs.append(
                f"{folder} UID {item.uid} <{meta.message_id or 'no Message-ID'}>: {problem}")
        if meta.list_addresses:
            batch.lists.update(meta.list_addresses)
        from_key = meta.from_[0].key if meta.from_ else ""
        key = message_key(meta.message_id, from_key,
                          meta.time if meta.time_source == "date" else None, item.header,
                          item.gm_msgid)
        skipped = _classify(item, meta, key, own, outside, batch)
        if skipped:
            summary.skipped[skipped] += 1
        else:
            summary.counted += 1
        batch.messages.append(MessageRow(uid=item.uid, msg_key=key, time=meta.time,
                                         skipped=skipped))
    return batch


def _classify(item: FetchedHeader, meta: MessageMeta, key: str, own: frozenset[str],
              outside: set[int], batch: Batch) -> str | None:
    """Add the message's exchanges (or held exchanges) to ``batch``; why it does not count."""
    if "\\draft" in item.flags:
        return "draft"
    if item.uid in outside:
        return DELIVERED_FROM_OUTSIDE
    if meta.message_id and from_user(meta, own):
        batch.sent_ids.append(meta.message_id)
    if meta.automated:
        parent = meta.parent
        if meta.automated_soft and parent is not None:
            # A person's reply can carry a bulk mark; it counts if it answers the user.
            found = exchanges(meta, own, answers_the_user=True)
            if found.direction == "in":
                batch.held.extend(HeldRow(parent, row) for row in _rows(meta, key, found))
        return f"automated: {meta.automated}"
    found = exchanges(meta, own)
    if not found.addrs or found.direction is None:
        return NO_COUNTERPART
    batch.rows.extend(_rows(meta, key, found))
    return None


def _rows(meta: MessageMeta, key: str, found: Exchanges) -> list[ExchangeRow]:
    direction = found.direction or "in"
    if len(found.addrs) == 1:  # most messages: no list comprehension
        addr = found.addrs[0]
        return [ExchangeRow(msg_key=key, address=addr.key, direction=direction, time=meta.time,
                            subject=meta.subject, message_id=meta.message_id, name=addr.name,
                            language=meta.language)]
    return [ExchangeRow(msg_key=key, address=addr.key, direction=direction, time=meta.time,
                        subject=meta.subject, message_id=meta.message_id, name=addr.name,
                        language=meta.language) for addr in found.addrs]


def folder_plan(state: FolderState | None, status: FolderStatus) -> tuple[str, int]:
    """What to do with a folder: ("skip"|"reset"|"fetch", last UID already seen)."""
    if state is None:
        return "fetch", 0
    if state.uidvalidity != status.uidvalidity:
        return "reset", 0
    if state.uidnext and status.uidnext and status.uidnext < state.uidnext:
        return "reset", 0  # UIDNEXT went backwards (seen on GMX): trust nothing
    if state.uidnext and status.uidnext == state.uidnext:
        return "skip", state.last_uid
    return "fetch", state.last_uid


def scan(config: Config, mailbox: Mailbox, store: Store, *, full: bool = False,
         now: datetime | None = None, progress: Progress | None = None,
         should_stop: Callable[[], bool] = lambda: False,
         source: MailboxConfig | None = None) -> ScanSummary:
    """Bring the ledger up to date with the mailbox ``source`` (default: the primary) that
    ``mailbox`` is connected to; safe to interrupt at any point."""
    started = time.monotonic()
    now = now or datetime.now(UTC)
    progress = progress or NoProgress()
    summary = ScanSummary()
    source = source or config.primary
    if full:
        store.ledger.forget()
    states = store.ledger.folder_states(source.key)
    if "INBOX" in states and "INBOX" not in source.imap.exclude_folders:
        # INBOX's STATUS before the LIST: after a LIST, Dovecot reads a maildir INBOX whole
        # for its STATUS (~70 ms at 66,000 messages); before it, from its index (~8 ms).
        mailbox.status("INBOX")
    folders = mailbox.folders_to_scan(source.imap.folders, source.imap.exclude_folders)
    roles = mailbox.roles()
    sent_folders = frozenset(name for name in (roles.sent, roles.all, *roles.archive) if name)
    for folder in folders:
        _scan_folder(config, source, mailbox, store, folder, states.get(folder), now, progress,
                     should_stop, summary, sent_folders)
        if summary.interrupted:
            break
    summary.addresses_refreshed = store.refresh(now)
    if summary.fetched:
        store.database.checkpoint()
    summary.seconds = time.monotonic() - started
    log.info("%s", summary.line())
    return summary


def _scan_folder(config: Config, source: MailboxConfig, mailbox: Mailbox, store: Store,
                 folder: str, state: FolderState | None, now: datetime, progress: Progress,
                 should_stop: Callable[[], bool], summary: ScanSummary,
                 sent_folders: frozenset[str]) -> None:
    """One folder: skip it if unchanged, reset it if its UIDs changed meaning, fetch the rest."""
    summary.folders.append(folder)
    status = mailbox.status(folder)
    plan, last_uid = folder_plan(state, status)
    if plan == "skip":
        summary.unchanged.append(folder)
        return
    if plan == "reset" and state is not None:
        why = ("UIDVALIDITY changed" if state.uidvalidity != status.uidvalidity
               else "UIDNEXT went backwards")
        log.warning("folder %s: %s, rescanning it", folder, why)
        summary.reset[folder] = why
        store.ledger.reset_folder(folder, status.uidvalidity, source.key)
    selected = mailbox.select(folder)
    uidvalidity = selected.uidvalidity or status.uidvalidity
    uids = mailbox.uids_after(last_uid)
    own = self_keys(config)
    # Mail From the user counts as sent where the user files sent mail; anywhere else (INBOX,
    # folders a server-side filter delivers into) only if it was not delivered from outside.
    delivered = None if folder in sent_folders else mailbox.delivered
    batch_size = source.imap.batch_size
    progress.folder_started(folder, len(uids))
    # Several FETCHes are on their way while a batch is parsed and written (README "How
    # fast"); leaving early, closing reads what is still coming.
    # Each batch is saved with the folder's new sync state in the same transaction, and a
    # transaction is committed every few thousand messages or seconds (store.grouped).
    with contextlib.closing(mailbox.header_batches(uids, batch_size)) as batches, \
            store.database.grouped() as wrote:
        for chunk, fetched in batches:
            if should_stop():
                summary.interrupted = True
                break
            batch = process_batch(fetched, own, now, summary, folder=folder,
                                  delivered=delivered)
            summary.new_exchanges += store.ledger.save_batch(
                folder, uidvalidity, chunk[-1], batch.messages, batch.rows, batch.lists,
                source.key, sent_ids=batch.sent_ids, held=batch.held)
            summary.fetched += len(fetched)
            progress.advanced(len(chunk))
            wrote(len(fetched))
    progress.folder_done(folder)
    if not summary.interrupted:
        uidnext = max(status.uidnext, selected.uidnext)
        store.ledger.finish_folder(folder, status.uidvalidity, uidnext, status.highestmodseq, now,
                                   source.key)
