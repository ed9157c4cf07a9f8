"""What a header FETCH gives for one message: a plain record, importable without the IMAP
client (the scan's worker process, agent.scanwork, needs only this of agent.mailbox)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(slots=True)
class FetchedHeader:
    """One message's FETCH answer: UID, INTERNALDATE, header block, flags."""

    uid: int
    internaldate: datetime | None
    header: bytes
    flags: frozenset[str]  # lower-case
    gm_msgid: int | None = None
