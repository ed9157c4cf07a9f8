"""Parsing and classifying a scan's batches in a second process (README "How fast").

A first scan is Python on our side: parsing and classifying header blocks take about half
of its time, writing the ledger and reading the socket the other half. With a core to
spare, a worker process (``python -m agent.scanwork``) parses and classifies one batch
while the scan writes the batch before it and reads the batch after it. Both sides run
:func:`agent.classify.process_batch`, so the rows are the same either way.

The worker is a plain child process speaking pickle over its stdin and stdout, with no
network, no database and no secret (its environment is this one's without passwords, as
for every program followup starts). It asks the scan one question, the only one
classifying needs the server for: which of the user's own messages in a folder where
the user files no sent mail came from outside (``Mailbox.delivered``). If the worker
cannot be started, or dies, the batch it had is classified here, and so is the rest.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Final, Protocol

from agent.classify import Tally, process_batch
from agent.mailbox.records import FetchedHeader
from agent.model import LedgerBatch, joined, ledger_batch

log = logging.getLogger(__name__)

#: A folder needs this many new messages before a worker is worth its start (~0.2 s of
#: imports in the child, while this process reads the first batches).
WORKER_MIN_MESSAGES: Final = 5000

Delivered = Callable[[Sequence[int]], set[int]]


class Classifier(Protocol):
    """Batches go in with :meth:`submit` and come out, classified, with :meth:`collect`, one
    at a time and in order: the scan submits a batch, then writes the one before."""

    def submit(self, fetched: list[FetchedHeader], folder: str,
               delivered: Delivered | None) -> None: ...

    def collect(self) -> tuple[LedgerBatch, Tally]: ...

    def close(self) -> None: ...


Part = tuple[list[FetchedHeader], str, Delivered | None]  # a batch, its folder, the question


def _here(part: Part, own: frozenset[str], now: datetime, mailbox: str
          ) -> tuple[LedgerBatch, Tally]:
    """Classify a part of a batch; its rows as the ledger writes them."""
    fetched, folder, delivered = part
    tally = Tally()
    batch = process_batch(fetched, own, now, tally, folder=folder, delivered=delivered)
    return ledger_batch(batch.messages, batch.rows, batch.lists, folder, mailbox,
                        batch.sent_ids, batch.held), tally


def _joined(first: tuple[LedgerBatch, Tally], second: tuple[LedgerBatch, Tally]
            ) -> tuple[LedgerBatch, Tally]:
    """Two classified parts of one batch as one, in order."""
    (a, tally), (b, more) = first, second
    tally.add(more)
    return joined(a, b), tally


class InProcess:
    """Classifies in this process, as the batch is submitted (so that a connection that
    breaks while the next batch is read costs no batch already read)."""

    def __init__(self, own: frozenset[str], now: datetime, mailbox: str = "") -> None:
        self._own = own
        self._now = now
        self._mailbox = mailbox
        self._done: tuple[LedgerBatch, Tally] | None = None

    def submit(self, fetched: list[FetchedHeader], folder: str,
               delivered: Delivered | None) -> None:
        self._done = None
        self._done = _here((fetched, folder, delivered), self._own, self._now, self._mailbox)

    def collect(self) -> tuple[LedgerBatch, Tally]:
        done, self._done = self._done, None
        if done is None:
            raise RuntimeError("collect() without a submit() that finished")
        return done

    def close(self) -> None:
        self._done = None


class WorkerGone(Exception):
    """The worker process cannot be written to or read from any more."""


class Worker:
    """Classifies the first part of each batch in a child process while this one goes on,
    and the rest here; falls back to this process alone if the child fails.

    The part kept here follows the worker: it grows while collecting waits for the worker
    (SHARE_STEP a batch, up to MAX_SHARE), and shrinks while it does not, so neither side
    idles for long whatever the machine (here a third of the time was waiting, before).
    """

    SHARE_STEP: Final = 0.02
    MAX_SHARE: Final = 0.5
    LATE: Final = 0.002  # seconds of waiting for the worker's answer that count as late

    def __init__(self, own: frozenset[str], now: datetime, mailbox: str = "",
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._own = own
        self._now = now
        self._mailbox = mailbox
        self._clock = clock
        self.share = 0.1  # of each batch, classified here
        self._process: subprocess.Popen[bytes] | None = None
        self._theirs: Part | None = None  # with the worker (done here if the worker dies)
        self._mine: Part | None = None
        from agent.credentials import child_environment  # not in the worker: no keyring

        root = str(Path(__file__).resolve().parent.parent)  # where the agent package is
        env = child_environment()
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (root, env.get("PYTHONPATH"))))
        # Its stderr (a traceback, should it fail) goes to a file, not under the scan's
        # progress bar: its last line is named in the warning (_give_up).
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed with the worker
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "agent.scanwork"], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=self._stderr, env=env, close_fds=True)
            self._send(("start", own, now, mailbox))
        except (OSError, WorkerGone) as exc:
            log.warning("scan worker process could not start (%s); classifying in this "
                        "process", exc)
            self._give_up(None)

    @property
    def alive(self) -> bool:
        return self._process is not None

    def submit(self, fetched: list[FetchedHeader], folder: str,
               delivered: Delivered | None) -> None:
        cut = len(fetched) - int(len(fetched) * self.share) if self._process else 0
        self._theirs = (fetched[:cut], folder, delivered) if cut else None
        self._mine = (fetched[cut:], folder, delivered)
        if self._theirs is None:
            return
        items = [(f.uid, f.given_internaldate, f.header, f.flags, f.gm_msgid)
                 for f in fetched[:cut]]
        try:
            self._send(("batch", folder, delivered is not None, items))
        except WorkerGone as exc:
            self._give_up(str(exc))

    def collect(self) -> tuple[LedgerBatch, Tally]:
        mine, theirs = self._mine, self._theirs
        if mine is None:
            raise RuntimeError("collect() without submit()")
        try:
            done = _here(mine, self._own, self._now, self._mailbox)
            if theirs is not None:
                done = _joined(self._collect_theirs(theirs), done)
        except BaseException:
            # Never half a batch: the worker, perhaps waiting for an answer that will not
            # come (the connection broke), is stopped, and the batch is gone.
            self._mine = self._theirs = None
            self._give_up(None)
            raise
        self._mine = self._theirs = None
        return done

    def _collect_theirs(self, theirs: Part) -> tuple[LedgerBatch, Tally]:
        if self._process is not None:
            try:
                began = self._clock()
                first = self._receive()
                late = self._clock() - began > self.LATE
                self.share = (min(self.share + self.SHARE_STEP, self.MAX_SHARE) if late
                              else max(self.share - self.SHARE_STEP, 0.0))
                return self._answered(first, theirs[2])
            except WorkerGone as exc:
                self._give_up(str(exc))
        return _here(theirs, self._own, self._now, self._mailbox)

    def _answered(self, said: tuple[str, Any], delivered: Delivered | None
                  ) -> tuple[LedgerBatch, Tally]:
        kind, value = said
        while kind != "done":
            # "delivered": the worker asks which of the user's messages came from outside;
            # the connection is this process's.
            assert delivered is not None
            self._send(("delivered", delivered(value)))
            kind, value = self._receive()
        batch, tally = value
        return batch, tally

    def close(self) -> None:
        process, self._process = self._process, None
        if process is None:
            self._stderr.close()
            return
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()  # EOF: the worker ends
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        self._stderr.close()

    def _give_up(self, why: str | None) -> None:
        """Stop the worker (``why`` it failed, for the log; None: the scan did); collect
        classifies here what it had."""
        process, self._process = self._process, None
        if process is not None:
            process.kill()
            process.wait()
            if why is not None:
                said = self._last_words()
                log.warning("scan worker process %s%s; classifying in this process", why,
                            f" ({said})" if said else "")
        self._stderr.close()

    def _last_words(self) -> str:
        """The last line the worker wrote to its stderr (the exception that ended it)."""
        try:
            self._stderr.seek(0, os.SEEK_END)
            self._stderr.seek(max(0, self._stderr.tell() - 2000))
            lines = self._stderr.read().decode("utf-8", "replace").strip().splitlines()
        except (OSError, ValueError):
            return ""
        return lines[-1][:300] if lines else ""

    def _send(self, message: tuple[Any, ...]) -> None:
        process = self._process
        assert process is not None and process.stdin is not None
        try:
            _dump(process.stdin, message)
        except (OSError, ValueError) as exc:
            raise WorkerGone(f"stopped taking work ({type(exc).__name__})") from None

    def _receive(self) -> tuple[str, Any]:
        process = self._process
        assert process is not None and process.stdout is not None
        try:
            kind, value = _load(process.stdout)
        except (OSError, EOFError, pickle.UnpicklingError, ValueError) as exc:
            raise WorkerGone(f"ended (exit status {process.poll()}, "
                             f"{type(exc).__name__})") from None
        return str(kind), value


def cores() -> int:
    """The CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class Classifiers:
    """A scan's classifier for each folder: InProcess, until a folder of WORKER_MIN_MESSAGES
    new messages or more on a machine with a core to spare starts a Worker, which then
    serves every later folder of the scan; :meth:`close` ends it."""

    def __init__(self, own: frozenset[str], now: datetime, mailbox: str = "") -> None:
        self._own = own
        self._now = now
        self._mailbox = mailbox  # the key of the mailbox scanned, for its ledger rows
        self._worker: Worker | None = None

    def for_folder(self, messages: int) -> Classifier:
        if self._worker is not None:
            return self._worker
        if messages < WORKER_MIN_MESSAGES or cores() < 2:
            return InProcess(self._own, self._now, self._mailbox)
        worker = Worker(self._own, self._now, self._mailbox)
        if not worker.alive:
            return InProcess(self._own, self._now, self._mailbox)
        self._worker = worker
        return worker

    def close(self) -> None:
        if self._worker is not None:
            self._worker.close()


def _dump(stream: IO[bytes], message: tuple[Any, ...]) -> None:
    """One message to the other end (see _load)."""
    pickle.dump(message, stream, pickle.HIGHEST_PROTOCOL)
    stream.flush()


def _load(stream: IO[bytes]) -> Any:
    """One message from the other end. Pickle, because both ends are this program: the scan
    and the child it started, on the pipes between them and no one else's. The header
    bytes the worker reads from the server are data inside a message, never a pickle."""
    return pickle.load(stream)  # noqa: S301 - see above


# --------------------------------------------------------------------------- the worker


def serve(stdin: IO[bytes], stdout: IO[bytes]) -> None:
    """The worker's loop: batches in, classified batches out, until stdin ends."""
    try:
        _, own, now, mailbox = _load(stdin)
    except EOFError:
        return
    while True:
        try:
            _, folder, ask, items = _load(stdin)
        except EOFError:
            return
        fetched = [FetchedHeader(*item) for item in items]

        def delivered(uids: Sequence[int]) -> set[int]:
            _dump(stdout, ("delivered", list(uids)))
            _, outside = _load(stdin)
            return set(outside)

        _dump(stdout, ("done", _here((fetched, folder, delivered if ask else None), own, now,
                                     mailbox)))


def main() -> None:
    # Ctrl-C and SIGTERM are the scan's to handle (it finishes the batch in hand; a service
    # manager's stop reaches every process of the service): the worker ends when the scan
    # closes its stdin, or ends itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    serve(sys.stdin.buffer, sys.stdout.buffer)


if __name__ == "__main__":
    main()
