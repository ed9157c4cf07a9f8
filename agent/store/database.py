"""The SQLite file itself: opening it privately, migrating it, transactions, the run lock."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.errors import StoreError
from agent.store.migrations import MIGRATIONS, SCHEMA_VERSION

if TYPE_CHECKING:
    import sqlite_utils

log = logging.getLogger(__name__)

Row = dict[str, Any]

#: A grouped transaction commits after this many rows or seconds (see Database.grouped).
GROUP_ROWS = 5_000
GROUP_SECONDS = 2.0


class LockBusy(StoreError):
    """Another followup holds the lock of this database."""


def epoch(value: datetime) -> int:
    return int(value.timestamp())


def from_epoch(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


class Database:
    """One connection, migrated to the current schema; every write in one transaction.

    ``transaction()`` nests: an inner block joins the outer one, so the table families
    (ledger, people, journal) can each write in their own methods and a caller can still
    make several of those writes one atomic step.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.conn = connect(path)
        self._depth = 0
        self._migrate()

    @cached_property
    def db(self) -> sqlite_utils.Database:
        """sqlite-utils on this connection: migrations and the table writes. Imported when
        first needed: it takes ~0.06 s, which a no-change rescan (reads and plain inserts
        only) does not pay (README "How fast")."""
        import sqlite_utils

        return sqlite_utils.Database(self.conn)

    def close(self) -> None:
        self.conn.close()

    @property
    def schema_version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        current = self.schema_version
        if current > SCHEMA_VERSION:
            raise StoreError(
                f"the database {self.path} was written by a newer followup (schema {current}, "
                f"this one knows {SCHEMA_VERSION}); upgrade followup"
            )
        for version in range(current, SCHEMA_VERSION):
            with self.transaction():
                MIGRATIONS[version](self.db)
                self.conn.execute(f"PRAGMA user_version = {version + 1}")
            log.info("database migrated to schema %d", version + 1)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT, rolled back on any error; disk problems become StoreError.

        Inside another transaction it is a SAVEPOINT: an error undoes this block's writes
        (and goes on to the caller), so a block is all or nothing even when the outer
        transaction goes on (``grouped``).
        """
        if self._depth:
            mark = f"nested{self._depth}"
            self.conn.execute(f"SAVEPOINT {mark}")
            self._depth += 1
            try:
                yield self.conn
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute(f"ROLLBACK TO {mark}")
                    self.conn.execute(f"RELEASE {mark}")
                raise
            else:
                self.conn.execute(f"RELEASE {mark}")
            finally:
                self._depth -= 1
            return
        self._begin()
        try:
            yield self.conn
        except sqlite3.OperationalError as exc:
            # A write failed (disk full, I/O error): one clear StoreError, not a traceback.
            self._end(commit=False)
            raise store_error(exc, self.path) from None
        except BaseException:
            self._end(commit=False)
            raise
        self._end(commit=True)

    @contextlib.contextmanager
    def grouped(self, max_rows: int | None = None, max_seconds: float | None = None,
                clock: Callable[[], float] = time.monotonic) -> Iterator[Callable[[int], None]]:
        """One transaction for many small steps, each a ``transaction()`` of its own (so all
        or nothing), committed every ``max_rows`` rows or ``max_seconds`` seconds:
        ``wrote(rows)`` after each step may commit and begin anew.

        When the work stops with an error (a connection that broke, an interrupt, a full
        disk), the steps finished so far are committed if the database still can: each is
        whole, and a step that failed half-way was undone to its savepoint. A crash (kill -9,
        power) loses at most the steps since the last commit, and they are done again.

        Why: a commit writes every page the transaction dirtied to the write-ahead log, and
        a scan's batches dirty the same index pages over and over; committing each batch of
        500 was ~25 % of a first scan's SQLite time at 100k, and grew with the ledger
        (README "How fast").
        """
        if self._depth:  # already inside a transaction: it decides
            yield lambda _count: None
            return
        max_rows = GROUP_ROWS if max_rows is None else max_rows
        max_seconds = GROUP_SECONDS if max_seconds is None else max_seconds
        rows, began = 0, clock()

        def wrote(count: int) -> None:
            nonlocal rows, began
            rows += count
            if rows >= max_rows or clock() - began >= max_seconds:
                self._end(commit=True)
                self._begin()
                rows, began = 0, clock()

        self._begin()
        try:
            yield wrote
        except BaseException:
            # The steps finished so far are whole (a failed statement changes nothing, a
            # failed step was undone to its savepoint): keep them if the disk still can.
            with contextlib.suppress(StoreError):
                self._end(commit=True)
            raise
        self._end(commit=True)

    def _begin(self) -> None:
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise store_error(exc, self.path) from None
        self._depth = 1

    def _end(self, commit: bool) -> None:
        """COMMIT (or roll back) the outermost transaction; a failed COMMIT rolls back."""
        self._depth = 0
        if not self.conn.in_transaction:
            return  # SQLite ended it already (some errors roll back by themselves)
        if not commit:
            self._rollback()
            return
        try:
            self.conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            self._rollback()
            raise store_error(exc, self.path) from None

    def _rollback(self) -> None:
        # SQLite rolls back by itself after some errors (SQLITE_FULL may); a second ROLLBACK
        # would then fail and hide the real error.
        if self.conn.in_transaction:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.Error:
                log.debug("rollback of %s failed", self.path, exc_info=True)

    def table(self, name: str) -> sqlite_utils.db.Table:
        """A table for sqlite-utils' writes; they join an open transaction (savepoints)."""
        return self.db.table(name)

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Row]:
        """Rows as dicts keyed by column name (as sqlite-utils' ``query`` gives them), read
        errors as StoreError."""
        try:
            cursor = self.conn.execute(sql, params)
            names = [column[0] for column in cursor.description or ()]
            return [dict(zip(names, row, strict=True)) for row in cursor]
        except sqlite3.OperationalError as exc:
            raise store_error(exc, self.path) from None

    def value(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Any:
        """The first column of the first row, None when there is no row."""
        try:
            row = self.conn.execute(sql, params).fetchone()
        except sqlite3.OperationalError as exc:
            raise store_error(exc, self.path) from None
        return row[0] if row else None

    def checkpoint(self) -> None:
        """Fold the write-ahead log into the database file and truncate it."""
        try:
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.OperationalError as exc:
            log.debug("checkpoint skipped: %s", exc)


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating it 0600 from the first byte) and tune the database file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        conn = sqlite3.connect(path, isolation_level=None, timeout=30)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        # Checkpoint (copy the WAL back, with its fsyncs) every ~32 MB instead of every 4 MB:
        # a scan rewrites the same index pages in every batch, and each page is then copied
        # once per checkpoint rather than many times. Database.checkpoint() runs after a scan.
        conn.execute("PRAGMA wal_autocheckpoint = 8000")
        conn.execute("PRAGMA cache_size = -32768")  # KiB: the ledger's indexes stay in memory
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except OSError as exc:
        raise StoreError(f"cannot open the database {path}: {exc.strerror}; check "
                         "[storage] path and its permissions") from None
    except sqlite3.DatabaseError as exc:
        raise store_error(exc, path) from None
    return conn


def store_error(exc: sqlite3.Error, path: Path) -> StoreError:
    text = str(exc)
    if "locked" in text or "busy" in text:
        return StoreError(f"the database {path} is busy (another followup is writing); try again")
    if "full" in text:
        return StoreError(f"the disk holding {path} is full; nothing was half-written, free "
                          "some space and run again")
    if "not a database" in text or "malformed" in text:
        return StoreError(f"{path} is not a followup database or is damaged; move it away and "
                          "run `followup scan` to rebuild the ledger")
    if "readonly" in text or "unable to open" in text:
        return StoreError(f"cannot write the database {path}: check its permissions")
    return StoreError(f"database error on {path}: {text}")


@contextlib.contextmanager
def exclusive_lock(path: Path, wait: float = 10.0) -> Iterator[None]:
    """Hold ``<path>.lock`` so that two runs never work on one database at once."""
    lock_path = path.with_name(path.name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        # Never through a symbolic link: its target would be truncated below.
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise StoreError(f"{lock_path} is a symbolic link; remove it (followup makes its "
                             "own lock file there)") from None
        raise StoreError(f"cannot open the lock file {lock_path}: {exc.strerror}") from None
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    raise LockBusy(
                        f"another followup is working on {path} (lock {lock_path}); wait for it "
                        "to finish or stop it"
                    ) from None
                time.sleep(0.1)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)
