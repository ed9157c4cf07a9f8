"""Touchpoints: contact outside the mailbox that the user logged (kept like decisions).

A touchpoint belongs to a contact id; a merge moves it along (``move_contact``), and
``scan --full`` never touches it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from agent.model import Touch
from agent.store.database import Database, Row, epoch, from_epoch

_NEVER = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class TouchRecord:
    """A stored touchpoint: whose, what, and how it was logged."""

    id: int
    contact_id: int
    touch: Touch
    source: str  # cli | mail


def _touch(row: Row) -> Touch:
    return Touch(kind=row["kind"], day=date.fromisoformat(row["day"]),
                 time=from_epoch(row["time"]) or _NEVER, note=row["note"])


class Touchpoints:
    """Calls, meetings and messages elsewhere, per contact."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def add(self, contact_id: int, touch: Touch, source: str, now: datetime) -> int:
        with self._db.transaction():
            table = self._db.table("touchpoints").insert(
                {"contact_id": contact_id, "kind": touch.kind, "day": touch.day.isoformat(),
                 "time": epoch(touch.time), "note": touch.note, "source": source,
                 "created_at": epoch(now)})
            return int(table.last_rowid or 0)

    def latest(self) -> dict[int, Touch]:
        """Contact id → its newest touchpoint (the later day; on one day the last logged)."""
        rows = self._db.query(
            "SELECT * FROM touchpoints ORDER BY contact_id, time DESC, id DESC")
        out: dict[int, Touch] = {}
        for row in rows:
            out.setdefault(row["contact_id"], _touch(row))
        return out

    def of(self, contact_id: int) -> list[TouchRecord]:
        """The contact's touchpoints, newest first."""
        return [TouchRecord(r["id"], r["contact_id"], _touch(r), r["source"])
                for r in self._db.query(
                    "SELECT * FROM touchpoints WHERE contact_id = ? ORDER BY time DESC, id DESC",
                    (contact_id,))]

    def count(self) -> int:
        return int(self._db.value("SELECT count(*) FROM touchpoints"))

    def move_contact(self, old: int, new: int) -> None:
        """After a merge: ``old``'s touchpoints belong to ``new``."""
        with self._db.transaction() as conn:
            conn.execute("UPDATE touchpoints SET contact_id = ? WHERE contact_id = ?", (new, old))
