"""The journal: what followup did and must not do twice — picks, daily cycles, digests, drafts.

It also keeps this installation's secret: random bytes, made once, that mark what followup
itself wrote (the digest's Message-ID) so that nobody else can pass for it.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime

from agent.store.database import Database, Row, epoch, from_epoch

_NEVER = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class DraftRecord:
    """A draft followup wrote, and where it was filed."""

    id: int
    contact_id: int
    address: str
    day: date
    kind: str
    message_id: str
    folder: str
    uid: int | None
    uidvalidity: int | None
    created_at: datetime
    state: str
    mailbox: str = ""  # whose Drafts folder: "" the primary, else a [[mailbox]] name


def _draft(row: Row) -> DraftRecord:
    return DraftRecord(
        id=row["id"], contact_id=row["contact_id"], address=row["address"],
        day=date.fromisoformat(row["day"]), kind=row["kind"], message_id=row["message_id"],
        folder=row["folder"], uid=row["uid"], uidvalidity=row["uidvalidity"],
        created_at=from_epoch(row["created_at"]) or _NEVER, state=row["state"],
        mailbox=row["mailbox"])


class Journal:
    """Picks, cycles, digests and drafts, each recorded once."""

    def __init__(self, database: Database) -> None:
        self._db = database

    # ------------------------------------------------------------------ picks and cycles

    def pick_history(self) -> dict[int, date]:
        """Contact id → the last local day they were picked."""
        return {row["contact_id"]: date.fromisoformat(row["day"]) for row in self._db.query(
            "SELECT contact_id, max(day) AS day FROM picks GROUP BY contact_id")}

    def record_picks(self, day: date, contact_ids: Iterable[int]) -> None:
        with self._db.transaction():
            self._db.table("picks").insert_all(
                [{"day": day.isoformat(), "contact_id": i} for i in contact_ids], ignore=True)

    def last_cycle_day(self) -> date | None:
        """The latest local day whose daily cycle (scan, digest, drafts) finished."""
        day = self._db.value("SELECT max(day) FROM cycles")
        return date.fromisoformat(day) if day else None

    def record_cycle(self, day: date, now: datetime) -> None:
        with self._db.transaction():
            self._db.table("cycles").upsert({"day": day.isoformat(), "finished_at": epoch(now)},
                                         pk="day")

    # ------------------------------------------------------------------ the secret

    def secret(self, *, create: bool = True) -> bytes | None:
        """This installation's secret (32 random bytes), made on first use; None when there
        is none yet and ``create`` is false (a dry run changes nothing)."""
        found = self._db.value("SELECT value FROM secrets WHERE name = 'installation'")
        if found is None and create:
            with self._db.transaction():
                self._db.table("secrets").insert(
                    {"name": "installation", "value": secrets.token_hex(32)}, ignore=True)
            found = self._db.value("SELECT value FROM secrets WHERE name = 'installation'")
        return bytes.fromhex(found) if found else None

    # ------------------------------------------------------------------ digests

    def attempt_digest(self, day: date, message_id: str, now: datetime) -> None:
        """Recorded before a digest is appended: only then may a copy found later be ours."""
        with self._db.transaction():
            self._db.table("digest_attempts").upsert(
                {"day": day.isoformat(), "message_id": message_id, "started_at": epoch(now)},
                pk="day")

    def digest_attempted(self, day: date, message_id: str) -> bool:
        return self._db.value("SELECT 1 FROM digest_attempts WHERE day = ? AND message_id = ?",
                              (day.isoformat(), message_id)) is not None

    def any_digest(self) -> bool:
        """Whether a digest was ever delivered or tried here (only then can mail answer one)."""
        return bool(self._db.value("SELECT EXISTS (SELECT 1 FROM digests) "
                                   "OR EXISTS (SELECT 1 FROM digest_attempts)"))

    def digest_sent(self, day: date) -> bool:
        return self._db.value("SELECT 1 FROM digests WHERE day = ?",
                              (day.isoformat(),)) is not None

    def record_digest(self, day: date, delivery: str, subject: str, now: datetime) -> None:
        with self._db.transaction():
            self._db.table("digests").upsert(
                {"day": day.isoformat(), "delivered_at": epoch(now), "delivery": delivery,
                 "subject": subject}, pk="day")

    # ------------------------------------------------------------------ drafts

    def add_draft(self, contact_id: int, address: str, day: date, kind: str, message_id: str,
                  folder: str, uid: int | None, uidvalidity: int | None, now: datetime,
                  mailbox: str = "", state: str = "appending") -> int:
        """Record a draft; ``appending`` (the default) before its APPEND, so that a draft the
        server stored is always known by its Message-ID, whatever happens next."""
        with self._db.transaction():
            table = self._db.table("drafts").insert(
                {"contact_id": contact_id, "address": address, "day": day.isoformat(),
                 "kind": kind, "message_id": message_id, "folder": folder, "uid": uid,
                 "uidvalidity": uidvalidity, "created_at": epoch(now), "mailbox": mailbox,
                 "state": state})
            return int(table.last_rowid or 0)

    def confirm_draft(self, draft_id: int, uid: int | None, uidvalidity: int | None) -> None:
        """The server has the draft: it is pending (waiting for the user)."""
        with self._db.transaction():
            self._db.table("drafts").update(
                draft_id, {"state": "pending", "uid": uid, "uidvalidity": uidvalidity})

    def forget_draft(self, draft_id: int) -> None:
        """A draft recorded before an APPEND that never reached the server."""
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM drafts WHERE id = ? AND state = 'appending'", (draft_id,))

    def drafts(self, *states: str, mailbox: str | None = None) -> list[DraftRecord]:
        """Drafts in any of ``states`` (all when none is given) of ``mailbox`` (every
        mailbox: None), oldest first."""
        rows = self._db.query("SELECT * FROM drafts ORDER BY id")
        return [_draft(r) for r in rows if (not states or r["state"] in states)
                and (mailbox is None or r["mailbox"] == mailbox)]

    def resolve_draft(self, draft_id: int, state: str, now: datetime) -> None:
        """Settle a draft: ``sent`` or ``declined``."""
        with self._db.transaction():
            self._db.table("drafts").update(draft_id, {"state": state, "resolved_at": epoch(now)})

    def update_draft_uid(self, draft_id: int, uid: int, uidvalidity: int | None) -> None:
        with self._db.transaction():
            self._db.table("drafts").update(draft_id, {"uid": uid, "uidvalidity": uidvalidity})

    def move_contact(self, old: int, new: int) -> None:
        """After a merge: the drafts and pick history of ``old`` belong to ``new``."""
        with self._db.transaction() as conn:
            conn.execute("UPDATE drafts SET contact_id = ? WHERE contact_id = ?", (new, old))
            # The pick history follows too, so the fair rotation sees one person.
            conn.execute("UPDATE OR IGNORE picks SET contact_id = ? WHERE contact_id = ?",
                         (new, old))
            conn.execute("DELETE FROM picks WHERE contact_id = ?", (old,))
