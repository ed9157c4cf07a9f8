"""The time of a message: its Date header inside a sanity window, else INTERNALDATE."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_tz
from typing import Final, Literal

from agent.headers.fields import snip

__all__ = ["EARLIEST_SANE_TIME", "FUTURE_TOLERANCE", "as_utc", "message_time"]

#: Oldest Date we believe; anything earlier is a broken clock (1970 epoch dates, etc.).
EARLIEST_SANE_TIME: Final = datetime(1990, 1, 1, tzinfo=UTC)
#: How far a Date may lie in the future of ``now`` (clock skew) before we distrust it.
FUTURE_TOLERANCE: Final = timedelta(days=1)


# -- the Date header ---------------------------------------------------------------------------

# Named zones parsedate_tz does not know (it maps them to +0000), in minutes east of UTC.
# Ambiguous abbreviations (IST, CST in Asia, …) are deliberately left out.
_EXTRA_ZONES: Final = {
    "CET": 60,
    "MET": 60,
    "MEZ": 60,
    "CEST": 120,
    "MEST": 120,
    "MESZ": 120,
    "WET": 0,
    "WEST": 60,
    "BST": 60,
    "EET": 120,
    "EEST": 180,
    "MSK": 180,
    "JST": 540,
    "KST": 540,
    "HKT": 480,
    "SGT": 480,
    "AEST": 600,
    "AEDT": 660,
    "NZST": 720,
    "NZDT": 780,
    "HST": -600,
    "AKST": -540,
    "AKDT": -480,
}
_CANONICAL_DATE = re.compile(
    r"(?:[A-Za-z]{3},\s*)?(\d{1,2})\s+([A-Za-z]{3})\s+(\d{4})\s+(\d\d):(\d\d):(\d\d)"
    r"\s*([+-])(\d\d)(\d\d)(?!\d)"
)
# The same with a zone name instead of an offset ("Fri, 10 Nov 2023 00:03:48 GMT", "… EST":
# a quarter of real mail), for the names in _ZONE_MINUTES.  ASCII digits and a year from
# 1000 on only, so that parsedate_tz and _year_written would accept it as it is; anything
# else takes the full path below.
_NAMED_ZONE_DATE = re.compile(
    r"(?:[A-Za-z]{3},\s*)?([0-9]{1,2})\s+([A-Za-z]{3})\s+([1-9][0-9]{3})\s+"
    r"([0-9]{2}):([0-9]{2}):([0-9]{2})\s+([A-Z]{1,4})\Z",
    re.ASCII,
)
_MONTHS: Final = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}
_UTC_ZONES: Final = frozenset({"UT", "UTC", "GMT", "Z"})
_ZONE_AFTER_TIME = re.compile(r"\d:\d\d(?::\d\d(?:\.\d+)?)?\s*([A-Za-z]{1,5})\b")
_NUMERIC_ZONE = re.compile(r"[+-]\d{4}\b")
_MAX_ZONE_SECONDS: Final = 14 * 3600  # the widest real offset (Kiribati)
# A numeric zone in a non-RFC spelling right after the time: "+01:00", "GMT+0100", "UTC+1".
_OFFSET_ZONE = re.compile(r"(\d:\d\d)\s*(?:GMT|UTC|UT)?\s*([+-])(\d\d?)(?::?(\d\d))?(?!\d)",
                          re.IGNORECASE)


def _offset_zone(match: re.Match[str]) -> str:
    time_end, sign, hours, minutes = match.groups()
    return f"{time_end} {sign}{int(hours):02d}{minutes or '00'}"


# Zone names and their offsets as the full path reads them: parsedate_tz's own table (the
# UTC names and the North American zones), then _EXTRA_ZONES.
_ZONE_MINUTES: Final = {
    "UT": 0, "UTC": 0, "GMT": 0, "Z": 0,
    "AST": -240, "ADT": -180, "EST": -300, "EDT": -240, "CST": -360, "CDT": -300,
    "MST": -420, "MDT": -360, "PST": -480, "PDT": -420,
    **_EXTRA_ZONES,
}  # fmt: skip


class _ImpossibleDate(ValueError):
    """A Date that parses but cannot be a real instant (say why in the message)."""


# Numbers standing alone (not part of a time, a zone or a negative number): where the year is.
_STANDALONE_NUMBER = re.compile(r"(?<![\d:+-])(\d{1,4})(?![\d:])")


def _year_written(text: str, year: int) -> bool:
    """Whether ``text`` writes ``year`` as a year: four digits, or two (three) digits of an
    obsolete year.  parsedate_tz reads "Mon, 01 Jan -5 00:00:00 +0000" as 1 Jan 2000."""
    numbers = set(_STANDALONE_NUMBER.findall(text))
    return bool(numbers & {str(year), f"{year % 100:02d}", str(year - 1900)})


def _parse_date(value: str, problems: list[str]) -> datetime | None:
    """An RFC 5322 Date (lenient: two-digit years, named zones) as aware UTC, or None.

    ``-0000`` ("no zone information") is taken as UTC; so is an unknown zone name, with a
    note.  A zone beyond ±14 hours or a year that is not written as one raises
    _ImpossibleDate.  The sanity window is applied by the caller.
    """
    text = value.strip()
    if not text or len(text) > 200:
        return None
    match = _CANONICAL_DATE.match(text)
    month = _MONTHS.get(match.group(2).lower(), 0) if match is not None else 0
    if match is not None and month:
        # Fast path for what nearly every mailer writes: "Tue, 14 Nov 2023 10:12:33 +0100".
        day_s, _, year_s, hour_s, minute_s, second_s, sign, zone_h, zone_m = match.groups()
        day, year, hour, minute = int(day_s), int(year_s), int(hour_s), int(minute_s)
        second = int(second_s)
        offset = (int(zone_h) * 60 + int(zone_m)) * (60 if sign == "+" else -60)
    elif (named := _named_zone_date(text)) is not None:
        # Second fast path (message_time 2.9 against 7.3 µs): a known zone name, nothing
        # to note.
        return _instant(*named)
    else:
        # "+01:00", "GMT+0100", "UTC+1" (scripts, JavaScript's Date.toString) mean that offset;
        # parsedate_tz would silently read them as UTC.
        text = _OFFSET_ZONE.sub(_offset_zone, text)
        try:
            parsed = parsedate_tz(text)
        except (ValueError, IndexError, TypeError, OverflowError):
            return None
        if parsed is None:
            return None
        year, month, day, hour, minute, second = parsed[:6]
        offset = parsed[9] or 0
        if not _year_written(text, year):
            raise _ImpossibleDate(f"Date: {snip(text)} is unparseable (no valid year)")
    if offset == 0 and _NUMERIC_ZONE.search(text) is None:
        zone_match = _ZONE_AFTER_TIME.search(text)
        zone = zone_match.group(1).upper() if zone_match else ""
        if zone in _EXTRA_ZONES:
            offset = _EXTRA_ZONES[zone] * 60
        elif zone not in _UTC_ZONES:
            problems.append(f"Date: no usable time zone in {snip(text)}; assumed UTC")
    if abs(offset) > _MAX_ZONE_SECONDS:
        # The zone is wrong, so the time is too, by up to a day: the server's time is better.
        raise _ImpossibleDate(f"Date: {snip(text)} has an impossible zone offset")
    return _instant(year, month, day, hour, minute, second, offset)


def _named_zone_date(text: str) -> tuple[int, int, int, int, int, int, int] | None:
    """(year, month, day, hour, minute, second, offset) of a canonical date with a known zone
    name, exactly as the full path of _parse_date reads it; None for any other text."""
    match = _NAMED_ZONE_DATE.match(text)
    if match is None:
        return None
    day_s, month_s, year_s, hour_s, minute_s, second_s, zone = match.groups()
    month = _MONTHS.get(month_s.lower())
    minutes = _ZONE_MINUTES.get(zone)
    if month is None or minutes is None:
        return None
    return (int(year_s), month, int(day_s), int(hour_s), int(minute_s), int(second_s),
            minutes * 60)


def _instant(year: int, month: int, day: int, hour: int, minute: int, second: int,
             offset: int) -> datetime | None:
    """The UTC instant of a local time ``offset`` seconds east of UTC; None if impossible."""
    if second == 60:
        second = 59  # leap second
    try:
        local = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
        return local - _offset_delta(offset) if offset else local
    except (ValueError, OverflowError):
        return None


_OFFSET_DELTAS: dict[int, timedelta] = {}


def _offset_delta(seconds: int) -> timedelta:
    """timedelta(seconds=...) for a zone offset; there are only a few dozen real ones."""
    delta = _OFFSET_DELTAS.get(seconds)
    if delta is None:
        delta = _OFFSET_DELTAS[seconds] = timedelta(seconds=seconds)
    return delta


def as_utc(moment: datetime | None) -> datetime | None:
    """An aware UTC datetime; a naive one is taken to be UTC already."""
    if moment is None or moment.tzinfo is UTC:
        return moment
    try:
        if moment.tzinfo is None or moment.utcoffset() is None:
            return moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)
    except (ValueError, OverflowError, TypeError, AttributeError):
        return None


def message_time(
    date_value: str | None,
    internaldate: datetime | None,
    now: datetime | None,
    problems: list[str],
) -> tuple[datetime, Literal["date", "internaldate"]]:
    """SPEC "Last exchange": the Date header when it parses to a sane instant — not before
    1990-01-01 and not more than a day after ``now`` — else the server's INTERNALDATE.  With
    neither, ``now`` (a deterministic stand-in, noted as a problem)."""
    if date_value is not None:
        try:
            parsed = _parse_date(date_value, problems)
        except _ImpossibleDate as exc:
            parsed, reason = None, str(exc)
        else:
            reason = f"Date: {snip(date_value.strip())} is unparseable"
        if parsed is not None:
            clock = as_utc(now) or datetime.now(UTC)
            if parsed >= EARLIEST_SANE_TIME and parsed - FUTURE_TOLERANCE <= clock:
                return parsed, "date"
            when = "in the future" if parsed > clock else "before 1990"
            reason = f"Date: {snip(date_value.strip())} is {when}"
    else:
        reason = "Date: missing"
    fallback = as_utc(internaldate)
    if fallback is not None:
        problems.append(f"{reason}; used INTERNALDATE")
        return fallback, "internaldate"
    problems.append(f"{reason} and no INTERNALDATE; used the current time")
    return as_utc(now) or datetime.now(UTC), "internaldate"


