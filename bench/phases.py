"""Where a first scan's time goes: ``followup scan`` in this process, with a timer around
each phase. Run by bench/scan.py on a fresh database (FOLLOWUP_CONFIG and the password in the
environment, as for ``followup scan``); prints one line of seconds per phase.

- read: waiting for and reading the FETCH answers (the generator of header batches);
- parse: ``parse_message`` of every header block;
- classify: the rest of ``process_batch`` (exchanges, keys, automated mail, held replies)
  and the rows as the ledger writes them (``model.ledger_batch``: key digests, epoch times);
- write: ``Ledger.save`` (the inserts and their indexes);
- commit: every COMMIT (a scan's batches are committed every few thousand messages);
- refresh: the per-address aggregates at the end;
- checkpoint: the write-ahead log folded into the database file after the scan;
- commands: the mail-commands step (its own look at new INBOX and Sent headers);
- rest: everything else in the process (start-up, login, SEARCH, the mail commands).

The scan runs in this process alone (no worker process: agent.scanwork), so that the
phases follow one another. The timers add ~1 µs a message; cProfile, by comparison, doubles
the parser's time.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from collections.abc import Callable, Generator
from typing import Any

STARTED = time.perf_counter()

# ruff: noqa: E402 - the clock starts before the product is imported
import agent.classify
import agent.commands.receive
import agent.scanwork
import agent.service
from agent.cli.root import main
from agent.mailbox.client import Mailbox
from agent.store.database import Database
from agent.store.ledger import Ledger

SPENT: defaultdict[str, float] = defaultdict(float)


def timed(phase: str, function: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            SPENT[phase] += time.perf_counter() - began
    return wrapper


def timed_batches(function: Callable[..., Generator[Any, None, None]]
                  ) -> Callable[..., Generator[Any, None, None]]:
    def wrapper(*args: Any, **kwargs: Any) -> Generator[Any, None, None]:
        batches = function(*args, **kwargs)
        try:
            while True:
                began = time.perf_counter()
                try:
                    batch = next(batches)
                except StopIteration:
                    return
                finally:
                    SPENT["read"] += time.perf_counter() - began
                yield batch
        finally:
            batches.close()
    return wrapper


def run() -> None:
    # In this process (no worker): the phases one after the other, each timed.
    agent.scanwork.WORKER_MIN_MESSAGES = 2**62  # type: ignore[misc]
    agent.classify.parse_message = timed("parse", agent.classify.parse_message)
    agent.scanwork.process_batch = timed("process", agent.scanwork.process_batch)
    agent.scanwork.ledger_batch = timed("rows", agent.scanwork.ledger_batch)
    Ledger.save = timed("write", Ledger.save)  # type: ignore[method-assign]
    Ledger.refresh_aggregates = timed("refresh", Ledger.refresh_aggregates)  # type: ignore[method-assign]
    Mailbox.header_batches = timed_batches(Mailbox.header_batches)  # type: ignore[method-assign]
    Database.checkpoint = timed("checkpoint", Database.checkpoint)  # type: ignore[method-assign]
    Database._end = timed("commit", Database._end)  # type: ignore[method-assign]
    agent.commands.receive.receive = timed("commands", agent.commands.receive.receive)
    sys.argv = ["followup", "scan"]
    try:
        main()
    except SystemExit as exc:
        if exc.code:
            raise
    total = time.perf_counter() - STARTED
    phases = {
        "read": SPENT["read"],
        "parse": SPENT["parse"],
        "classify": SPENT["process"] - SPENT["parse"] + SPENT["rows"],
        "write": SPENT["write"],
        "commit": SPENT["commit"],
        "refresh": SPENT["refresh"],
        "checkpoint": SPENT["checkpoint"],
        "commands": SPENT["commands"],
    }
    phases["rest"] = total - sum(phases.values())
    print("phases: " + ", ".join(f"{name} {seconds:.2f} s ({seconds / total:.0%})"
                                 for name, seconds in phases.items())
          + f"; total {total:.2f} s", flush=True)


if __name__ == "__main__":
    run()
