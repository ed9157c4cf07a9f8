"""Several UID FETCH commands in flight on one connection, their answers read in order.

A scan that waits for each FETCH before sending the next waits one network round trip per
batch: 200 batches over a 40 ms link are 8 s of nothing. RFC 3501 (5.5) lets a client send
commands without waiting; the server answers them in turn, each answer ending in its tagged
line. :class:`FetchPipeline` keeps a few FETCHes ahead and hands their answers over in the
order they were sent, so a batch is still read, parsed and written on its own (one
transaction per batch), only without the wait.

It speaks through imaplib's documented ``send``, ``readline`` and ``read`` (the calls a
subclass may override, and that imaplib itself reads every response with), on the
connection IMAPClient opened; tags of its own ("fu1", "fu2", …) cannot meet imaplib's.
Each answer comes back in the shape imaplib's own FETCH gives (a list of lines, a line
with a literal as ``(text, literal)``), for the fast parser and imapclient's general one.
"""

from __future__ import annotations

import imaplib
import itertools
import re
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from imapclient import exceptions as imap_errors

#: What a FETCH answer is, as imaplib gives it: lines, and (line, literal) pairs.
FetchData = list[Any]

_TAGS = itertools.count(1)
# A command line longer than this is split (servers refuse lines of ~8 KB and more; a UID
# set of a batch of scattered UIDs can come near that).
MAX_COMMAND_BYTES: Final = 7000


def uid_set(uids: Sequence[int]) -> bytes:
    """``1,2,3,7,9,10`` → ``1:3,7,9:10``: the same UIDs in fewer bytes (RFC 3501 sequence-set).

    ``uids`` ascending, without duplicates; a range of existing UIDs has no gaps to fill.
    """
    parts: list[bytes] = []
    start = previous = uids[0]
    for uid in itertools.islice(uids, 1, None):
        if uid != previous + 1:
            parts.append(b"%d" % start if start == previous else b"%d:%d" % (start, previous))
            start = uid
        previous = uid
    parts.append(b"%d" % start if start == previous else b"%d:%d" % (start, previous))
    return b",".join(parts)


def fetch_command(tag: bytes, uids: Sequence[int], items: Sequence[str]) -> bytes:
    """The line of ``UID FETCH`` for ``uids`` and ``items``, with its CRLF."""
    return b"%s UID FETCH %s (%s)\r\n" % (tag, uid_set(uids), " ".join(items).encode("ascii"))


@dataclass
class _Sent:
    """A FETCH command in flight, and its answer once read."""

    tag: bytes
    uids: Sequence[int]
    sent_at: float
    answer: FetchData | None = None  # once read (perhaps ahead of its turn: settle)
    refused: str | None = None  # the server's NO or BAD, once read
    unsent: OSError | None = None  # why it could not be sent (the connection is gone)
    waited: float = 0.0  # seconds from sending to the answer's first line

    @property
    def read(self) -> bool:
        return self.answer is not None or self.refused is not None


class Usual(NamedTuple):
    """How the FETCH answer a pipeline asks for usually looks, to read it straight into a
    record: ``line`` matches the line of one message's answer (CRLF included) when it is
    the usual one, its group "size" the length of the one literal that follows; ``record``
    makes the record of a match and that literal, when the line after the literal is the
    answer's end, ")". Anything else is handed over in imaplib's shape, for the parsers."""

    line: Callable[[bytes], re.Match[bytes] | None]
    record: Callable[[re.Match[bytes], bytes], Any]


class FetchRefused(imaplib.IMAP4.error):  # imapclient's IMAPClientError is this class
    """The server answered one FETCH of the pipeline with NO or BAD."""


class FetchPipeline:
    """UID FETCHes of ``items`` sent ahead on ``imap``; :meth:`receive` answers in order.

    Errors are imapclient's: ``IMAPClientAbortError`` when the connection breaks or the
    server says something no IMAP server may say here (then the connection is of no more
    use), :class:`FetchRefused` for a NO or BAD (then :meth:`settle` reads what is left, and
    the connection is free again).
    """

    def __init__(self, imap: imaplib.IMAP4, items: Sequence[str],
                 clock: Callable[[], float] = time.monotonic,
                 usual: Usual | None = None) -> None:
        self._imap = imap
        self._clock = clock
        self._items = tuple(items)
        self._usual = usual
        self._sent: deque[_Sent] = deque()
        self._data: FetchData = []  # untagged FETCH data read since the last tagged line
        # When the connection broke: the highest UID of the FETCHes not answered whole.
        self.broke_through: int | None = None

    @property
    def in_flight(self) -> int:
        """Commands sent and not yet handed back by :meth:`receive`."""
        return len(self._sent)

    @property
    def unread(self) -> bool:
        """Whether answers are still on their way (then no other command may be sent)."""
        return any(not sent.read for sent in self._sent)

    def send(self, uids: Sequence[int]) -> None:
        tag = b"fu%d" % next(_TAGS)
        command = fetch_command(tag, uids, self._items)
        if len(command) > MAX_COMMAND_BYTES and len(uids) > 1:
            half = len(uids) // 2
            self.send(uids[:half])
            self.send(uids[half:])
            return
        sent = _Sent(tag, uids, self._clock())
        try:
            self._imap.send(command)
        except OSError as exc:
            # The server closed the connection (a BYE, perhaps) while this was being sent:
            # what it answered before is still to be read, in turn (see _read).
            sent.unsent = exc
        self._sent.append(sent)

    def receive(self) -> tuple[Sequence[int], FetchData, float]:
        """The oldest command's UIDs, its answer, and the seconds until its first line came
        (about one round trip when nothing was in flight before it).

        Servers answer pipelined FETCHes one after the other; one that mixed them would
        still lose nothing: an answer holds every FETCH line read since the tagged line
        before it, whichever command asked, so callers go by the UID in each.
        """
        sent = self._sent[0]
        if not sent.read:
            self._read(sent)
        self._sent.popleft()
        if sent.answer is None:
            raise FetchRefused(f"FETCH failed: {sent.refused}")
        return sent.uids, sent.answer, sent.waited

    def settle(self) -> None:
        """Read every answer still on its way, so that the connection is free for other
        commands; :meth:`receive` hands them over later."""
        for sent in self._sent:
            if not sent.read:
                self._read(sent)

    def _read(self, sent: _Sent) -> None:
        """Read up to ``sent``'s tagged line (receive and settle go in order: every FETCH
        before it is read); a FETCH that could not be sent ends the reading there."""
        try:
            if sent.unsent is not None:
                raise imap_errors.IMAPClientAbortError(
                    f"connection closed while sending a FETCH: {sent.unsent}")
            self._answer(sent)
        except Exception:
            self._broke(sent.uids)
            raise

    def _broke(self, uids: Sequence[int]) -> None:
        """The connection broke while ``uids`` were being read: on one of the messages of
        the FETCHes not answered whole. Not always the one being read: Dovecot answers
        FETCHes sent ahead side by side and, failing on a message of a later one, closes
        the connection without what it had not yet sent of the answers before it."""
        self.broke_through = max(max(s.uids) for s in self._sent if not s.read) \
            if self.unread else max(uids)

    def _answer(self, sent: _Sent) -> None:
        """Read lines up to ``sent``'s tagged line."""
        imap = self._imap
        first = True
        while not sent.read:
            line = imap.readline()
            if first:
                sent.waited = self._clock() - sent.sent_at
                first = False
            if not line.endswith(b"\r\n"):
                raise imap_errors.IMAPClientAbortError(
                    "connection closed during FETCH" if not line else
                    f"unterminated line during FETCH: {line[:80]!r}")
            if line.startswith(b"* "):
                self._untagged(line, self._data)
                continue
            tag, _, said = line[:-2].partition(b" ")
            done = next((s for s in self._sent if s.tag == tag and not s.read), None)
            if done is None:
                raise imap_errors.IMAPClientAbortError(
                    f"unexpected response during FETCH: {line[:80]!r}")
            if said[:3].upper() == b"OK " or said.upper() == b"OK":
                done.answer, self._data = self._data, []
            else:
                # A refusal can come while an earlier FETCH is still being answered (Dovecot
                # says BAD to a command it cannot parse at once, in the middle of the FETCH
                # lines before it): what was read so far stays for the command that
                # completes next, which goes by the UIDs. Given to the refused one, it was
                # lost, and the earlier batch came back short.
                done.refused = said.decode("utf-8", "replace")

    def _untagged(self, line: bytes, data: FetchData) -> None:
        if self._usual is not None:
            match = self._usual.line(line)
            if match is not None:
                literal = self._literal(int(match["size"]))
                tail = self._line()
                if tail == b")\r\n":
                    data.append(self._usual.record(match, literal))
                    return
                # Not the usual end after all: handed over as imaplib would give it.
                number, _, rest = line[2:].partition(b" FETCH ")
                data.append((number + b" " + rest[:-2], literal))
                data.extend(_with_literals(self._imap, tail[:-2]))
                return
        number, fetch, rest = line[2:].partition(b" FETCH ")
        if not fetch or not number.isdigit():
            # Anything else untagged (EXISTS, EXPUNGE, OK [...]) says nothing about these
            # messages; BYE says the server is going away.
            if line[2:5].upper() == b"BYE":
                raise imap_errors.IMAPClientAbortError(
                    f"server closed the connection: {line[2:-2].decode('utf-8', 'replace')}")
            size = _literal_size(line[:-2])
            while size is not None:  # literals of an untagged answer we do not use
                self._imap.read(size)
                line = self._line()
                size = _literal_size(line[:-2])
            return
        # As imaplib stores an untagged FETCH: "n (...)", "* " and "FETCH " dropped.
        data.extend(_with_literals(self._imap, number + b" " + rest[:-2]))

    def _literal(self, size: int) -> bytes:
        return _literal(self._imap, size)

    def _line(self) -> bytes:
        return _checked_line(self._imap, "connection closed inside a FETCH answer")


def _literal_size(text: bytes) -> int | None:
    """The n of a line (without CRLF) that announces a literal ``{n}``, else None."""
    if not text.endswith(b"}"):
        return None
    start = text.rfind(b"{")
    size = text[start + 1:-1]
    return int(size) if start >= 0 and size.isdigit() else None


#: STATUS commands sent at once (:func:`status_answers`): few enough that neither side's
#: socket buffer fills while the other has not read yet.
STATUS_WINDOW: Final = 32

#: One untagged STATUS response as imaplib gives a response: its text after "* STATUS ",
#: a name sent as a literal being a ``(text, literal)`` pair followed by the rest.
StatusData = list[Any]


def status_answers(imap: imaplib.IMAP4, mailboxes: Sequence[bytes], items: bytes
                   ) -> list[list[StatusData] | None]:
    """``STATUS`` of each of ``mailboxes`` (encoded and quoted), up to STATUS_WINDOW sent at
    once: one round trip for them all, where asking one after the other waits one per folder.

    Each command's answer is the untagged STATUS responses read before its tagged OK (one,
    from any server that answers in turn), None for a command the server refused. Errors
    are imapclient's, as in :class:`FetchPipeline`: ``IMAPClientAbortError`` when the
    connection breaks or the server says what no IMAP server may say here.
    """
    answers: list[list[StatusData] | None] = []
    for start in range(0, len(mailboxes), STATUS_WINDOW):
        window = mailboxes[start:start + STATUS_WINDOW]
        tags = [b"fu%d" % next(_TAGS) for _ in window]
        imap.send(b"".join(b"%s STATUS %s (%s)\r\n" % (tag, mailbox, items)
                           for tag, mailbox in zip(tags, window, strict=True)))
        answers.extend(_status_window(imap, tags))
    return answers


def _status_window(imap: imaplib.IMAP4, tags: Sequence[bytes]) -> list[list[StatusData] | None]:
    done: dict[bytes, list[StatusData] | None] = {}
    responses: list[StatusData] = []  # untagged STATUS read since the last tagged line
    while len(done) < len(tags):
        line = _checked_line(imap, "connection closed during STATUS")
        if line.startswith(b"* "):
            kind = line[2:].split(b" ", 1)[0].upper()
            if kind == b"BYE":
                raise imap_errors.IMAPClientAbortError(
                    f"server closed the connection: {line[2:-2].decode('utf-8', 'replace')}")
            response = _with_literals(imap, line[2:-2])
            if kind == b"STATUS":
                first = response[0]
                if isinstance(first, tuple):
                    response[0] = (first[0][len(b"STATUS "):], first[1])
                else:
                    response[0] = first[len(b"STATUS "):]
                responses.append(response)
            continue  # anything else untagged (EXISTS, OK [...]) is not about these
        tag, _, said = line[:-2].partition(b" ")
        if tag not in tags or tag in done:
            raise imap_errors.IMAPClientAbortError(
                f"unexpected response during STATUS: {line[:80]!r}")
        if said[:3].upper() == b"OK " or said.upper() == b"OK":
            done[tag], responses = responses, []
        else:
            done[tag] = None  # what was read stays for the command that completes next
    return [done[tag] for tag in tags]


def _with_literals(imap: imaplib.IMAP4, text: bytes) -> list[Any]:
    """A response line (without CRLF) and the literals it announces with the lines after
    them, in imaplib's shape: ``(line, literal)`` pairs, then the last line."""
    parts: list[Any] = []
    size = _literal_size(text)
    while size is not None:
        parts.append((text, _literal(imap, size)))
        text = _checked_line(imap, "connection closed inside a response")[:-2]
        size = _literal_size(text)
    parts.append(text)
    return parts


def _literal(imap: imaplib.IMAP4, size: int) -> bytes:
    literal = imap.read(size)
    if len(literal) != size:
        raise imap_errors.IMAPClientAbortError("connection closed inside a literal")
    return literal


def _checked_line(imap: imaplib.IMAP4, closed: str) -> bytes:
    line = imap.readline()
    if not line.endswith(b"\r\n"):
        raise imap_errors.IMAPClientAbortError(
            closed if not line else f"unterminated line: {line[:80]!r}")
    return line
