"""Signatures: which messages were read for phone numbers, and the numbers they gave.

A message is read once (``read``, keyed by its Message-ID); its numbers become rows of
``phones`` with source "signature", the sender's address and ``seen`` = the message's time.
Per address the newest signature with numbers wins: a newer one replaces the numbers of an
older one, an older one (read later) changes nothing, and a signature without numbers (a
reply from a phone) leaves the numbers there are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from agent.model import Phone
from agent.store.database import Database, epoch, from_epoch

SOURCE = "signature"


@dataclass(frozen=True)
class SignatureNumbers:
    """The numbers of one address's newest signature that had any."""

    address: str
    seen: datetime  # the time of that message
    phones: tuple[Phone, ...]


class Signatures:
    """Reads of signatures and the phone numbers they gave."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def was_read(self, message: str) -> bool:
        return self._db.value("SELECT 1 FROM signature_reads WHERE message = ?",
                              (message,)) is not None

    def save(self, message: str, address: str, sent: datetime, numbers: Sequence[Phone],
             outcome: str, now: datetime) -> bool:
        """Record one read message and its numbers, atomically; whether they were taken."""
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO signature_reads (message, address, sent, read_at, "
                "numbers, outcome) VALUES (?, ?, ?, ?, ?, ?)",
                (message, address, epoch(sent), epoch(now), len(numbers), outcome))
            if not numbers:
                return False
            newest = self._db.value(
                "SELECT max(seen) FROM phones WHERE source = ? AND address = ?",
                (SOURCE, address))
            if newest is not None and newest > epoch(sent):
                return False  # a newer signature of theirs is already on record
            conn.execute("DELETE FROM phones WHERE source = ? AND address = ?",
                         (SOURCE, address))
            conn.executemany(
                "INSERT INTO phones (number, type, source, address, seen, position) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(p.number, p.type, SOURCE, address, epoch(sent), i)
                 for i, p in enumerate(numbers)])
        return True

    def numbers(self) -> dict[str, SignatureNumbers]:
        """Address → the numbers of its newest signature that had any."""
        out: dict[str, SignatureNumbers] = {}
        for row in self._db.query(
                "SELECT address, number, type, seen FROM phones WHERE source = ? "
                "ORDER BY address, position", (SOURCE,)):
            seen = from_epoch(row["seen"])
            if seen is None:
                continue
            phone = Phone(row["number"], row["type"], SOURCE, seen)
            known = out.get(row["address"])
            phones = (*known.phones, phone) if known else (phone,)
            out[row["address"]] = SignatureNumbers(row["address"], seen, phones)
        return out

    def read_count(self) -> int:
        return int(self._db.value("SELECT count(*) FROM signature_reads"))


def newest_of(addresses: Sequence[str],
              numbers: dict[str, SignatureNumbers]) -> tuple[Phone, ...]:
    """The numbers of the newest signature over a contact's ``addresses`` (none: ())."""
    found = [numbers[a] for a in addresses if a in numbers]
    return max(found, key=lambda n: n.seen).phones if found else ()
