"""FETCH of header batches: imaplib's raw answer read by a fast parser, or imapclient's parsers."""

from __future__ import annotations

import imaplib
import logging
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import imapclient
from imapclient import exceptions as imap_errors
from imapclient.response_parser import parse_fetch_response

from agent.headers.meta import HEADER_FIELDS
from agent.mailbox.pipeline import Usual
from agent.mailbox.records import FetchedHeader, parse_internaldate

log = logging.getLogger(__name__)

FETCH_BODY = "BODY.PEEK[HEADER.FIELDS (" + " ".join(f.upper() for f in HEADER_FIELDS) + ")]"


def as_text(value: Any) -> str:
    """A name, flag or message from imapclient (bytes or str) as text."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


# --------------------------------------------------------------------------- the connection


def imaplib_of(client: imapclient.IMAPClient) -> imaplib.IMAP4 | None:
    """The imaplib connection IMAPClient talks through, or None (then FETCH goes through
    ``IMAPClient.fetch``, ~2.5x slower and one command at a time).

    IMAPClient keeps it private (``_imap``); FETCHes sent ahead (agent.mailbox.pipeline) need
    it, and use only what imaplib documents on it: ``send``, ``readline`` and ``read``.
    """
    imap = getattr(client, "_imap", None)
    return imap if isinstance(imap, imaplib.IMAP4) else None


def public_fetch(client: imapclient.IMAPClient, uids: Sequence[int],
                 items: Sequence[str]) -> dict[int, FetchedHeader]:
    """The records by imapclient's public ``IMAPClient.fetch``: slower, and no private calls."""
    try:
        response = client.fetch(list(uids), list(items))
    except _PARSE_ERRORS as exc:
        raise UnreadableFetch(str(exc)) from None
    return _records(response)


# --------------------------------------------------------------------------- FETCH parsing

# What imapclient's general parser raises for an answer it cannot read.
_PARSE_ERRORS: Final = (imap_errors.ProtocolError, ValueError, TypeError)


class UnreadableFetch(Exception):
    """A FETCH answer that no parser can read."""


def parse_fetch(data: list[Any]) -> dict[int, FetchedHeader]:
    """The records of a raw FETCH answer: by the fast parser when it knows the answer's shape
    (nearly always), else by imapclient's general parser, so the fast one can only make
    reading quicker.  UnreadableFetch when neither can read it. Records the pipeline read
    itself (USUAL) are taken as they are."""
    parsed = parse_fetch_fast(data)
    if parsed is not None:
        return parsed
    log.debug("unusual FETCH response shape; using the general parser")
    read = {item.uid: item for item in data if isinstance(item, FetchedHeader)}
    try:
        parsed = parse_fetch_general([item for item in data
                                      if not isinstance(item, FetchedHeader)])
    except _PARSE_ERRORS as exc:
        raise UnreadableFetch(str(exc)) from None
    return {**read, **parsed}

_FETCH_UNSOLICITED = re.compile(
    rb"^\d+ \((?:(?:UID \d+|FLAGS \([^()]*\)|MODSEQ \(\d+\)) ?)+\)$")
_FETCH_UID = re.compile(rb"[( ]UID (\d+)")
_FETCH_DATE = re.compile(rb'INTERNALDATE "([^"]*)"')
_FETCH_FLAGS = re.compile(rb"FLAGS \(([^)]*)\)")
_FETCH_GMID = re.compile(rb"X-GM-MSGID (\d+)")
_FETCH_BODY = re.compile(rb"BODY\[HEADER\.FIELDS [^\]]*\] \{(\d+)\}$")
# The whole text before the literal in the order Dovecot and Cyrus answer: one match
# instead of five searches.
_FETCH_USUAL = re.compile(rb'\d+ \(UID (\d+) INTERNALDATE "([^"]*)" FLAGS \(([^()]*)\) '
                          rb"BODY\[HEADER\.FIELDS [^\]]*\] \{(\d+)\}")
# The same as one line off the socket, "* n FETCH " and CRLF included: what the pipeline
# reads straight into a record (USUAL), without the imaplib-shaped answer in between.
_FETCH_USUAL_LINE = re.compile(rb'\* \d+ FETCH \(UID (\d+) INTERNALDATE "([^"]*)" '
                               rb"FLAGS \(([^()]*)\) BODY\[HEADER\.FIELDS [^\]]*\] "
                               rb"\{(?P<size>\d+)\}\r\n")


def _usual_record(match: re.Match[bytes], literal: bytes) -> FetchedHeader:
    # INTERNALDATE as the server's text: parsed if ever read (records.FetchedHeader).
    return FetchedHeader(int(match[1]), match[2], literal, _flags(match[3]))


#: How a header batch's answer usually looks (Dovecot, Cyrus), for FetchPipeline.
USUAL = Usual(_FETCH_USUAL_LINE.fullmatch, _usual_record)

def parse_fetch_fast(data: Sequence[Any]) -> dict[int, FetchedHeader] | None:
    """Parse ``UID INTERNALDATE FLAGS BODY[HEADER.FIELDS ...] {n}`` responses, or give up.

    imaplib hands a response with a literal over as ``(text before the literal, literal)``
    followed by the rest of the line as bytes. Returns None for any other shape.
    """
    out: dict[int, FetchedHeader] = {}
    index, count = 0, len(data)
    while index < count:
        item = data[index]
        if isinstance(item, FetchedHeader):  # read by the pipeline itself (USUAL)
            out[item.uid] = item
            index += 1
            continue
        if isinstance(item, bytes):
            if not _FETCH_UNSOLICITED.match(item):
                return None  # e.g. a header sent as "" or NIL: left to the general parser
            index += 1  # an unsolicited update (FLAGS changed by another client)
            continue
        if not isinstance(item, tuple) or len(item) != 2:
            return None
        head, literal = item
        tail = data[index + 1] if index + 1 < count else b""
        if not isinstance(tail, bytes) or not isinstance(literal, bytes):
            return None
        usual = _FETCH_USUAL.fullmatch(head) if tail == b")" else None
        if usual is not None and int(usual[4]) == len(literal):
            uid_value = int(usual[1])
            out[uid_value] = FetchedHeader(uid_value, parse_internaldate(usual[2]), literal,
                                           _flags(usual[3]))
            index += 2
            continue
        body = _FETCH_BODY.search(head)
        if body is None or int(body[1]) != len(literal) or b"{" in tail:
            return None
        meta = head + tail
        uid = _FETCH_UID.search(meta)
        flags = _FETCH_FLAGS.search(meta)
        if uid is None or flags is None:
            return None
        date = _FETCH_DATE.search(meta)
        gmid = _FETCH_GMID.search(meta)
        out[int(uid[1])] = FetchedHeader(
            uid=int(uid[1]),
            internaldate=parse_internaldate(date[1]) if date else None,
            header=literal,
            flags=_flags(flags[1]),
            gm_msgid=int(gmid[1]) if gmid else None,
        )
        index += 2
    return out


_FLAG_SETS: dict[bytes, frozenset[str]] = {}


def _flags(raw: bytes) -> frozenset[str]:
    """``\\Seen \\Recent`` → {"\\seen", "\\recent"}; the few sets a mailbox has, memoised."""
    flags = _FLAG_SETS.get(raw)
    if flags is None:
        flags = frozenset(raw.decode("ascii", "replace").lower().split())
        if len(_FLAG_SETS) < 1000:  # keywords can make many: keep the memo small
            _FLAG_SETS[raw] = flags
    return flags


def parse_fetch_general(data: list[Any]) -> dict[int, FetchedHeader]:
    """The same result through imapclient's general response parser."""
    return _records(parse_fetch_response(data, False, True))


def _records(response: Mapping[int, Mapping[bytes, Any]]) -> dict[int, FetchedHeader]:
    """imapclient's parsed FETCH answer (by UID, times not normalised) as FetchedHeaders."""
    out: dict[int, FetchedHeader] = {}
    for uid, fields in response.items():
        body_key = next((k for k in fields if isinstance(k, bytes)
                         and k.startswith(b"BODY[HEADER.FIELDS")), None)
        header = fields.get(body_key) if body_key else b""
        internaldate = fields.get(b"INTERNALDATE")
        out[uid] = FetchedHeader(
            uid=uid,
            internaldate=internaldate if isinstance(internaldate, datetime) else None,
            header=header if isinstance(header, bytes) else b"",
            flags=frozenset(as_text(f).lower() for f in fields.get(b"FLAGS") or ()),
            gm_msgid=fields.get(b"X-GM-MSGID"),
        )
    return out


def utc(value: datetime | None) -> datetime | None:
    """An INTERNALDATE (or any time) as aware UTC; naive means UTC already."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
