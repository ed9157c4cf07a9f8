"""The journal of commands received by mail: each message applied once, with its results.

Also how far INBOX and Sent were looked at for commands, and each digest's numbered rows
(so that "snooze 2 30d" in an answer means the second row of *that* digest).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from agent.store.database import Database, Row, epoch, from_epoch

_NEVER = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Result:
    """What one line of a command message did (``ok``) or why not, in the user's words."""

    line: str
    ok: bool
    text: str


@dataclass(frozen=True)
class CommandRecord:
    """One applied command message."""

    message_id: str
    folder: str
    uid: int
    sent_at: datetime
    applied_at: datetime
    proof: str  # digest | link
    digest_day: date | None
    subject: str
    results: tuple[Result, ...]
    confirmed_at: datetime | None


def _record(row: Row) -> CommandRecord:
    results = tuple(Result(r["line"], bool(r["ok"]), r["text"])
                    for r in json.loads(row["results"]))
    return CommandRecord(
        message_id=row["message_id"], folder=row["folder"], uid=row["uid"],
        sent_at=from_epoch(row["sent_at"]) or _NEVER,
        applied_at=from_epoch(row["applied_at"]) or _NEVER, proof=row["proof"],
        digest_day=date.fromisoformat(row["digest_day"]) if row["digest_day"] else None,
        subject=row["subject"], results=results,
        confirmed_at=from_epoch(row["confirmed_at"]))


class CommandLog:
    """Applied command messages, the command scan's position, and the digests' rows."""

    def __init__(self, database: Database) -> None:
        self._db = database

    # ------------------------------------------------------------------ applied messages

    def applied(self, message_id: str) -> bool:
        return self._db.value("SELECT 1 FROM commands WHERE message_id = ?",
                              (message_id,)) is not None

    def record(self, message_id: str, folder: str, uid: int, sent_at: datetime, proof: str,
               digest_day: date | None, subject: str, results: Sequence[Result],
               now: datetime) -> None:
        """Record a message as applied; call it in the transaction that applied it."""
        with self._db.transaction():
            self._db.table("commands").insert({
                "message_id": message_id, "folder": folder, "uid": uid,
                "sent_at": epoch(sent_at), "applied_at": epoch(now), "proof": proof,
                "digest_day": digest_day.isoformat() if digest_day else None,
                "subject": subject,
                "results": json.dumps([{"line": r.line, "ok": r.ok, "text": r.text}
                                       for r in results], ensure_ascii=False),
                "confirmed_at": None})

    def confirmed(self, message_id: str, now: datetime) -> None:
        with self._db.transaction() as conn:
            conn.execute("UPDATE commands SET confirmed_at = ? WHERE message_id = ?",
                         (epoch(now), message_id))

    def all(self) -> list[CommandRecord]:
        """Every applied command message, oldest first."""
        return [_record(r) for r in self._db.query(
            "SELECT * FROM commands ORDER BY applied_at, rowid")]

    def get(self, message_id: str) -> CommandRecord | None:
        rows = self._db.query("SELECT * FROM commands WHERE message_id = ?", (message_id,))
        return _record(rows[0]) if rows else None

    def unconfirmed(self) -> list[CommandRecord]:
        return [_record(r) for r in self._db.query(
            "SELECT * FROM commands WHERE confirmed_at IS NULL ORDER BY applied_at, rowid")]

    # ------------------------------------------------------------------ where to look

    def position(self, folder: str) -> tuple[int, int] | None:
        """(UIDVALIDITY, last UID looked at) of ``folder``; None before the first look."""
        rows = self._db.query("SELECT uidvalidity, last_uid FROM command_folders "
                              "WHERE folder = ?", (folder,))
        return (rows[0]["uidvalidity"], rows[0]["last_uid"]) if rows else None

    def advance(self, folder: str, uidvalidity: int, last_uid: int) -> None:
        with self._db.transaction():
            self._db.table("command_folders").upsert(
                {"folder": folder, "uidvalidity": uidvalidity, "last_uid": last_uid},
                pk="folder")

    # ------------------------------------------------------------------ digest rows

    def record_rows(self, day: date, contact_ids: Sequence[int]) -> None:
        """The digest of ``day`` shows ``contact_ids`` as rows 1, 2, …; replaces earlier ones."""
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM digest_rows WHERE day = ?", (day.isoformat(),))
            self._db.table("digest_rows").insert_all(
                [{"day": day.isoformat(), "number": n, "contact_id": c}
                 for n, c in enumerate(contact_ids, start=1)])

    def row(self, day: date, number: int) -> int | None:
        """The contact id of row ``number`` of the digest of ``day``; None if there is none."""
        found = self._db.value("SELECT contact_id FROM digest_rows WHERE day = ? AND number = ?",
                               (day.isoformat(), number))
        return None if found is None else int(found)
