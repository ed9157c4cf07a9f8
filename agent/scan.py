"""The incremental scan: new UIDs of every relevant folder → parsed headers → the ledger."""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from agent.config import Config, MailboxConfig
from agent.headers.meta import exchanges, parse_message
from agent.identity import self_keys
from agent.mailbox.client import FolderStatus, Mailbox
from agent.mailbox.fetch import FetchedHeader
from agent.store import Store
from agent.store.ledger import ExchangeRow, FolderState, MessageRow

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


def process_batch(fetched: Sequence[FetchedHeader], own: frozenset[str], now: datetime,
                  summary: ScanSummary) -> tuple[list[MessageRow], list[ExchangeRow], set[str]]:
    """Parse and classify one batch; pure apart from counting into ``summary``."""
    messages: list[MessageRow] = []
    rows: list[ExchangeRow] = []
    lists: set[str] = set()
    for item in fetched:
        meta = parse_message(item.header, item.internaldate, now)
        for problem in meta.problems:
            summary.repaired[problem.split(":", 1)[0]] += 1
        if meta.list_addresses:
            lists.update(meta.list_addresses)
        from_key = meta.from_[0].key if meta.from_ else ""
        key = message_key(meta.message_id, from_key,
                          meta.time if meta.time_source == "date" else None, item.header,
                          item.gm_msgid)
        skipped: str | None = None
        if "\\draft" in item.flags:
            skipped = "draft"
        elif meta.automated:
            skipped = f"automated: {meta.automated}"
        else:
            found = exchanges(meta, own)
            if not found.addrs or found.direction is None:
                skipped = "no counterpart (no usable From/To, or only your own addresses)"
            else:
                direction = found.direction
                for addr in found.addrs:
                    rows.append(ExchangeRow(
                        msg_key=key, address=addr.key, direction=direction, time=meta.time,
                        subject=meta.subject, message_id=meta.message_id, name=addr.name,
                        language=meta.language,
                    ))
        if skipped:
            summary.skipped[skipped] += 1
        else:
            summary.counted += 1
        messages.append(MessageRow(uid=item.uid, msg_key=key, time=meta.time, skipped=skipped))
    return messages, rows, lists


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
    folders = mailbox.folders_to_scan(source.imap.folders, source.imap.exclude_folders)
    states = store.ledger.folder_states(source.key)
    for folder in folders:
        _scan_folder(config, source, mailbox, store, folder, states.get(folder), now, progress,
                     should_stop, summary)
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
                 should_stop: Callable[[], bool], summary: ScanSummary) -> None:
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
    batch_size = source.imap.batch_size
    progress.folder_started(folder, len(uids))
    for start in range(0, len(uids), batch_size):
        if should_stop():
            summary.interrupted = True
            break
        batch = uids[start:start + batch_size]
        fetched = mailbox.fetch_headers(batch)
        messages, rows, lists = process_batch(fetched, own, now, summary)
        # One transaction: the batch and the folder's new sync state, together.
        summary.new_exchanges += store.ledger.save_batch(folder, uidvalidity, batch[-1], messages,
                                                  rows, lists, source.key)
        summary.fetched += len(fetched)
        progress.advanced(len(batch))
    progress.folder_done(folder)
    if not summary.interrupted:
        uidnext = max(status.uidnext, selected.uidnext)
        store.ledger.finish_folder(folder, status.uidvalidity, uidnext, status.highestmodseq, now,
                                   source.key)
