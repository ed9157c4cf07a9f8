"""What a header FETCH gives for one message: a plain record, importable without the IMAP
client (the scan's worker process, agent.scanwork, needs only this of agent.mailbox)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

_MONTHS = {m.encode(): i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}
_ZONES: dict[int, timezone] = {}


def parse_internaldate(raw: bytes) -> datetime | None:
    """``" 5-Jan-2026 10:00:00 +0100"`` → aware datetime; None when malformed."""
    try:
        day_part, time_part, zone = raw.split()
        day, month, year = day_part.split(b"-")
        hour, minute, second = time_part.split(b":")
        sign = -1 if zone[:1] == b"-" else 1
        offset = sign * (int(zone[1:3]) * 60 + int(zone[3:5]))
        tz = _ZONES.get(offset)
        if tz is None:
            tz = _ZONES.setdefault(offset, timezone(timedelta(minutes=offset)))
        return datetime(int(year), _MONTHS[month], int(day), int(hour), int(minute),
                        int(second), tzinfo=tz)
    except (ValueError, KeyError):
        return None


class FetchedHeader:
    """One message's FETCH answer: UID, INTERNALDATE, header block, flags (lower-case).

    INTERNALDATE may be given as the server's text: it is parsed when first read, and a scan
    reads it only for a message without a usable Date (~2 µs a message saved, in the
    process that reads the socket). ``given_internaldate`` hands it on as it came.
    """

    __slots__ = ("_internaldate", "flags", "gm_msgid", "header", "uid")

    def __init__(self, uid: int, internaldate: datetime | bytes | None, header: bytes,
                 flags: frozenset[str], gm_msgid: int | None = None) -> None:
        self.uid = uid
        self._internaldate = internaldate
        self.header = header
        self.flags = flags
        self.gm_msgid = gm_msgid

    @property
    def internaldate(self) -> datetime | None:
        value = self._internaldate
        if isinstance(value, bytes):
            value = self._internaldate = parse_internaldate(value)
        return value

    @property
    def given_internaldate(self) -> datetime | bytes | None:
        """INTERNALDATE as given: parsed, or still the server's text."""
        return self._internaldate

    def _fields(self) -> tuple[object, ...]:
        return (self.uid, self.internaldate, self.header, self.flags, self.gm_msgid)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FetchedHeader):
            return NotImplemented
        return self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]  # mutable, as a plain dataclass is

    def __repr__(self) -> str:
        return (f"FetchedHeader(uid={self.uid!r}, internaldate={self.internaldate!r}, "
                f"header={self.header!r}, flags={self.flags!r}, gm_msgid={self.gm_msgid!r})")
