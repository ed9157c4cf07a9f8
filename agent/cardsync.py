"""The address book step of every scan: read each ``[[addressbook]]``, save each in one
transaction, then let the cards join people (``store.apply_cards``).

A source that cannot be read (missing file, server down, login refused) is one warning
naming it; the cards read from it before stay, and nothing else stops. A broken card is a
warning naming its file or href; the rest of the source is read.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from agent.config import Config
from agent.errors import FollowupError
from agent.identity import self_keys
from agent.plan import include_sources
from agent.store import Store
from agent.store.cardlinks import Applied

log = logging.getLogger(__name__)


@dataclass
class SourceSync:
    """What one sync did with one source."""

    name: str
    kind: str
    changed: int = 0
    deleted: int = 0
    unchanged: bool = False
    problems: list[str] = field(default_factory=list)
    error: str | None = None  # the source could not be read at all
    requests: int = 0

    def line(self) -> str:
        if self.error is not None:
            return f"address book {self.name!r}: not read ({self.error})"
        what = "unchanged" if self.unchanged else \
            f"{self.changed} card(s) new or changed, {self.deleted} deleted"
        warned = f", {len(self.problems)} warning(s)" if self.problems else ""
        return f"address book {self.name!r}: {what}{warned}"


@dataclass
class CardSync:
    """What one address-book sync did: each source, then the cards applied to people."""

    sources: list[SourceSync] = field(default_factory=list)
    applied: Applied | None = None


def sync(config: Config, store: Store, now: datetime, *, full: bool = False) -> CardSync:
    """Bring the cards up to date with every source, then the people with the cards."""
    result = CardSync()
    if full:
        store.cards.forget_state()
    for gone in store.cards.drop_sources_except(b.source for b in config.addressbook):
        log.info("address book %s is no longer in the config: its cards are forgotten", gone)
    if config.addressbook:
        _read_books(config, store, now, result)
    result.applied = store.apply_cards(self_keys(config), include_sources(config), now)
    return result


def _read_books(config: Config, store: Store, now: datetime, result: CardSync) -> None:
    # Imported here: vCard and phone-number parsing take ~0.1 s to import, which every scan
    # without an address book would pay (README "How fast": the no-change rescan).
    from agent.addressbook import sources
    from agent.addressbook.phones import default_region

    region = default_region(config)
    for book in config.addressbook:
        done = SourceSync(book.name, sources.kind_of(book))
        result.sources.append(done)
        try:
            changes = sources.read(book, region, store.cards.state(book.source),
                                   store.cards.etags(book.source))
        except FollowupError as exc:
            done.error = str(exc).removeprefix(f"address book {book.name!r}: ")
            log.warning("%s (the mail scan goes on)", exc)
            store.cards.note_problems(book.source, book.name, done.kind, [str(exc)])
            continue
        done.kind, done.unchanged, done.requests = changes.kind, changes.unchanged, \
            changes.requests
        done.changed, done.deleted = len(changes.changed), len(changes.deleted)
        done.problems = changes.problems
        for problem in changes.problems:
            log.warning("address book %r: %s", book.name, problem)
        if not changes.unchanged:
            store.cards.save(book.source, name=book.name, kind=changes.kind,
                             state=changes.state, changed=changes.changed,
                             deleted=changes.deleted, problems=changes.problems,
                             replace_all=changes.replace_all, now=now)
        log.info("%s", done.line())
