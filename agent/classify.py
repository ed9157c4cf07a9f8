"""One FETCH batch of header blocks → the rows the ledger keeps, and why a message does not
count: parsing (agent.headers) and classifying, pure apart from one question to the server.

Runs in the scan's process, or in its worker process (agent.scanwork) while the scan writes
the batch before and reads the batch after; either way the rows are the same.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from agent.headers.meta import Exchanges, MessageMeta, exchanges, from_user, parse_message
from agent.mailbox.records import FetchedHeader
from agent.model import ExchangeRow, HeldRow, MessageRow


@dataclass
class Tally:
    """What a scan counts while it classifies (a part of agent.scan.ScanSummary)."""

    counted: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    repaired: Counter[str] = field(default_factory=Counter)
    # Every repair with the message it was made to: "FOLDER UID n <Message-ID>: what".
    repairs: list[str] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        self.counted += other.counted
        self.skipped.update(other.skipped)
        self.repaired.update(other.repaired)
        self.repairs.extend(other.repairs)


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
    """One parsed FETCH batch (``model.ledger_batch`` makes it the rows ``Ledger.save`` writes)."""

    messages: list[MessageRow]
    rows: list[ExchangeRow]
    lists: set[str]
    sent_ids: list[str]  # Message-IDs of the user's own mail
    held: list[HeldRow]  # replies that count if they answer the user's mail


def process_batch(fetched: Sequence[FetchedHeader], own: frozenset[str], now: datetime,
                  summary: Tally, *, folder: str = "",
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
