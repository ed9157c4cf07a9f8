"""The only package that writes SQL: one database, three families of tables.

``Store(path)`` opens (and migrates) the database and gives each family its own small class:
``store.ledger`` (what the mailbox says, rebuildable), ``store.people`` (contacts and the
user's decisions, kept) and ``store.journal`` (what followup did, kept).
``store.transaction()`` makes several of their writes one atomic step.
"""

from __future__ import annotations

import contextlib
import sqlite3
from datetime import datetime
from pathlib import Path

from agent.store.database import Database
from agent.store.journal import Journal
from agent.store.ledger import Ledger
from agent.store.people import People


class Store:
    """An open database with its ledger, people and journal."""

    def __init__(self, path: Path) -> None:
        self.database = Database(path)
        self.ledger = Ledger(self.database)
        self.people = People(self.database)
        self.journal = Journal(self.database)

    @property
    def path(self) -> Path:
        return self.database.path

    def transaction(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return self.database.transaction()

    def refresh(self, now: datetime) -> int:
        """After new exchanges: per-address aggregates, and a contact for every new address.

        One transaction; returns how many addresses were refreshed.
        """
        with self.transaction():
            count = self.ledger.refresh_aggregates()
            self.people.adopt_new_addresses(now)
        return count

    def close(self) -> None:
        self.database.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

