"""Touchpoints: logging a call, a meeting or a message elsewhere (`followup log`, `called 1`).

A touchpoint restarts the contact's clock like an exchange (the policy takes the later of
the two) and is kept with the user's decisions. A check-in draft still waiting for someone
just logged has done its job: it is settled as ``done`` (left in Drafts, never made again).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from agent import policy
from agent.config import Config
from agent.decisions import Target, find, load
from agent.errors import UsageError
from agent.model import TOUCH_KINDS, Touch, TouchKind
from agent.store import Store
from agent.store.journal import DraftRecord

EARLIEST = date(1990, 1, 1)
MAX_NOTE = 500
_DOTTED = re.compile(r"(\d{1,2})\.(\d{1,2})\.(\d{4})")
_RELATIVE = {"today": 0, "heute": 0, "yesterday": 1, "gestern": 1}


@dataclass(frozen=True)
class Logged:
    """A logged touchpoint: whom (after), what, and the drafts it settled."""

    target: Target
    touch: Touch
    settled: tuple[DraftRecord, ...]


def touch_kind(text: str) -> TouchKind:
    value = text.strip().lower()
    for kind in TOUCH_KINDS:
        if value == kind:
            return kind
    raise UsageError(f"{text!r} is not a kind of touchpoint; use one of "
                     f"{', '.join(TOUCH_KINDS)}")


def touch_day(text: str | None, today: date) -> date:
    """The day of a touchpoint: ``YYYY-MM-DD`` (also ``2.12.2026``, ``today``, ``yesterday``,
    ``heute``, ``gestern``); today without one. Never in the future, never before 1990."""
    if text is None or not text.strip():
        return today
    value = text.strip().lower()
    day: date | None = None
    if value in _RELATIVE:
        day = today - timedelta(days=_RELATIVE[value])
    elif match := _DOTTED.fullmatch(value):
        try:
            day = date(int(match[3]), int(match[2]), int(match[1]))
        except ValueError:
            day = None
    else:
        try:
            day = date.fromisoformat(value) if len(value) == 10 else None
        except ValueError:
            day = None
    if day is None:
        raise UsageError(f"{text.strip()!r} is not a day; use a date like "
                         f"{today.isoformat()} (or today, yesterday)",
                         de=f"„{text.strip()}“ ist kein Tag; ein Datum wie "
                            f"{today.isoformat()} (oder heute, gestern)")
    if day > today:
        raise UsageError(f"{day.isoformat()} is in the future (today is {today.isoformat()}); "
                         "log a touchpoint once it happened",
                         de=f"{day.isoformat()} liegt in der Zukunft (heute ist "
                            f"{today.isoformat()})")
    if day < EARLIEST:
        raise UsageError(f"{day.isoformat()} is before {EARLIEST.year}; give the day it "
                         "happened", de=f"{day.isoformat()} liegt vor {EARLIEST.year}")
    return day


def log(config: Config, store: Store, ref: str, kind: str, day: str | None, note: str,
        now: datetime, source: str = "cli") -> Logged:
    """Record a touchpoint with the contact ``ref`` names, and settle their pending drafts.

    One transaction: the touchpoint and the settled drafts are written together.
    """
    tz = config.digest.tz
    when = touch_day(day, policy.today(now, tz))
    text = " ".join(note.split())
    if len(text) > MAX_NOTE:
        raise UsageError(f"the note is {len(text)} characters long; keep it under {MAX_NOTE}")
    touch = Touch(kind=touch_kind(kind), day=when, time=start_of(when, tz), note=text)
    target = find(config, store, ref)
    with store.transaction():
        store.touchpoints.add(target.id, touch, source, now)
        settled = tuple(d for d in store.journal.drafts("pending")
                        if d.contact_id == target.id)
        for draft in settled:
            store.journal.resolve_draft(draft.id, "done", now)
    return Logged(load(config, store, target.id), touch, settled)


def start_of(day: date, tz: ZoneInfo) -> datetime:
    """The first moment of ``day`` in the user's time zone, in UTC."""
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)
