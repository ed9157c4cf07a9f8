"""What one read of an address book found: changed and deleted cards, and a change marker."""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.model import Card


@dataclass
class Changes:
    """The result of reading one source, ready for ``store.cards.save``.

    ``state`` is the marker to ask for changes only next time (a file's size and time, CardDAV
    sync tokens or ctags as JSON); ``replace_all`` means the source was read whole.
    """

    kind: str  # vdir | file | carddav
    state: str | None
    changed: list[Card] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    replace_all: bool = False
    unchanged: bool = False  # nothing changed since the last read: nothing to save
    requests: int = 0  # HTTP requests made (CardDAV)
