"""Benchmark agent.headers: µs per message for parse_message and parse_message + exchanges.

Run: ``.venv/bin/python bench/headers.py [--messages N] [--profile]``.  The budget is
≤ 20 µs per typical message (scan must stay within 1.3× of a bare FETCH).

The generated mailbox mimics a real one: a few hundred correspondents who recur, the user on
most messages, a share of encoded (German) names, mailing-list posts with List-* headers,
replies with References chains, several recipients.  "cold" clears the address memo before
every message, i.e. the cost when every address value is new.

The last row is the standard library doing the same job: ``email.parser.BytesHeaderParser``
with ``email.policy.default``, reading the same fields (addresses, Date, the rest as text).
It is why agent.headers has a hand-written parser; it runs on the first ``--stdlib-messages``
messages only, because it is slow.
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import pstats
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from email import policy
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.headers.addresses import clear_memos, normalise_address
from agent.headers.meta import HEADER_FIELDS, exchanges, parse_message

FIRST = ["Anna", "Jürgen", "Hans", "Maria", "Peter", "Zoë", "Łukasz", "Sophie", "Tom", "Ines"]
LAST = ["Müller", "Schmidt", "Meyer", "Weiß", "Becker", "O'Brien", "Nowak", "Dubois", "Lee"]
DOMAINS = ["gmx.de", "web.de", "gmail.com", "bigcorp.example", "studio.example", "uni.example"]
SUBJECTS = [
    "Re: Fotoshooting am Donnerstag",
    "Angebot für die Hochzeitsreportage",
    "Fwd: Rechnung 2023-114",
    "Kurze Frage zu den Bildern",
    "Re: Re: Termin nächste Woche?",
    "Meeting notes",
    "Lunch?",
]
USER = "Alice Example <alice@example.org>"


def _encoded(text: str, rng: random.Random) -> str:
    if rng.random() < 0.5:
        return "=?utf-8?B?" + base64.b64encode(text.encode()).decode() + "?="
    q = "".join(
        c
        if c.isascii() and c.isalnum()
        else "_"
        if c == " "
        else "".join(f"={b:02X}" for b in c.encode("iso-8859-1", "replace"))
        for c in text
    )
    return f"=?iso-8859-1?Q?{q}?="


def _message_id(rng: random.Random) -> str:
    """Message-IDs as big mailers write them (Gmail's run to ~70 characters)."""
    token = base64.b64encode(rng.randbytes(rng.choice([12, 24, 36]))).decode()
    return f"<{token}@{rng.choice(['mail.gmail.com', 'mx.gmx.net', 'EX01.bigcorp.example'])}>"


def _contacts(rng: random.Random, count: int) -> list[str]:
    people = []
    for i in range(count):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        email = f"{first.lower()[:3]}.{last.lower()[:4]}{i}@{rng.choice(DOMAINS)}"
        style = rng.random()
        if style < 0.25:
            people.append(f"{_encoded(f'{first} {last}', rng)} <{email}>")
        elif style < 0.45:
            people.append(f'"{last}, {first}" <{email}>')
        elif style < 0.9:
            people.append(f"{first} {last} <{email}>")
        else:
            people.append(email)
    return people


def build_mailbox(count: int, seed: int = 1) -> list[tuple[bytes, datetime]]:
    """``count`` realistic header blocks with their INTERNALDATEs."""
    rng = random.Random(seed)
    people = _contacts(rng, 600)
    start = datetime(2022, 1, 1, tzinfo=UTC)
    mailbox = []
    for n in range(count):
        when = start + timedelta(minutes=37 * n)
        kind = rng.random()
        lines = []
        if kind < 0.45:  # received from a contact
            lines.append(f"From: {rng.choice(people)}")
            recipients = [USER, *rng.sample(people, rng.choice([0, 0, 0, 1, 2]))]
            lines.append("To: " + ", ".join(recipients))
        elif kind < 0.8:  # sent by the user
            lines.append(f"From: {USER}")
            lines.append("To: " + ", ".join(rng.sample(people, rng.choice([1, 1, 1, 2, 3]))))
            if rng.random() < 0.3:
                lines.append(f"Cc: {rng.choice(people)}")
        else:  # a list post
            lines.append(f"From: {rng.choice(people)}")
            lines.append("To: photo-talk@lists.example.org")
            lines.append("List-Id: Photo talk <photo-talk.lists.example.org>")
            lines.append("List-Post: <mailto:photo-talk@lists.example.org>")
            lines.append(
                "List-Unsubscribe: <https://lists.example.org/unsub>,\r\n"
                " <mailto:photo-talk-request@lists.example.org?subject=unsubscribe>"
            )
            lines.append("Precedence: list")
        subject = rng.choice(SUBJECTS)
        if rng.random() < 0.2:
            subject = _encoded(subject, rng)
        lines.append(f"Subject: {subject}")
        lines.append(when.strftime("Date: %a, %d %b %Y %H:%M:%S +0100"))
        lines.append(f"Message-ID: {_message_id(rng)}")
        if subject.startswith("Re:") or rng.random() < 0.4:
            refs = [_message_id(rng) for _ in range(rng.randint(1, 6))]
            lines.append(f"In-Reply-To: {refs[-1]}")
            lines.append("References: " + "\r\n ".join(refs))
        lines.append("Return-Path: <bounce@mail.example.org>")
        lines.append(rng.choice(["Content-Language: de-DE", "Content-Language: en-US", ""]))
        raw = "\r\n".join(line for line in lines if line) + "\r\n\r\n"
        mailbox.append((raw.encode("utf-8"), when + timedelta(seconds=3)))
    return mailbox


def _run(mailbox: list[tuple[bytes, datetime]], *, with_exchanges: bool, cold: bool) -> float:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    self_keys = frozenset({normalise_address("alice@example.org") or ""})
    started = time.perf_counter()
    for raw, internaldate in mailbox:
        if cold:
            clear_memos()
        meta = parse_message(raw, internaldate, now)
        if with_exchanges:
            exchanges(meta, self_keys)
    return (time.perf_counter() - started) / len(mailbox) * 1e6


_ADDRESS_FIELDS = frozenset({"From", "To", "Cc", "Bcc", "Reply-To"})


def _run_stdlib(mailbox: list[tuple[bytes, datetime]]) -> float:
    """The same fields through the standard library's header parser (no memo, no verdicts)."""
    parser = BytesHeaderParser(policy=policy.default)
    started = time.perf_counter()
    for raw, _ in mailbox:
        message = parser.parsebytes(raw)
        fields: dict[str, Any] = {}
        for name in HEADER_FIELDS:
            value = message.get(name)  # policy.default parses a header when it is read
            if value is None:
                continue
            if name in _ADDRESS_FIELDS:
                fields[name] = [(a.display_name, a.addr_spec) for a in value.addresses]
            elif name == "Date":
                fields[name] = value.datetime
            else:
                fields[name] = str(value)
    return (time.perf_counter() - started) / len(mailbox) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--stdlib-messages", type=int, default=2_000,
                        help="messages for the (slow) standard-library row")
    parser.add_argument("--profile", action="store_true", help="cProfile one warm run")
    args = parser.parse_args()

    mailbox = build_mailbox(args.messages)
    sizes = sorted(len(raw) for raw, _ in mailbox)
    p10, p50, p90 = (sizes[len(sizes) * q // 100] for q in (10, 50, 90))
    print(f"{len(mailbox)} header blocks, bytes p10/p50/p90 = {p10}/{p50}/{p90}")
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        _run(mailbox, with_exchanges=True, cold=False)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
        return
    timings: dict[str, float] = {}
    for label, with_exchanges, cold in (
        ("parse_message (warm memo)", False, False),
        ("parse_message + exchanges (warm memo)", True, False),
        ("parse_message (cold memo)", False, True),
        ("parse_message + exchanges (cold memo)", True, True),
    ):
        clear_memos()
        best = min(
            _run(mailbox, with_exchanges=with_exchanges, cold=cold) for _ in range(args.rounds)
        )
        print(f"{label:40s} {best:6.1f} µs/message")
        timings[label] = best
    sample = mailbox[: args.stdlib_messages]
    stdlib = min(_run_stdlib(sample) for _ in range(args.rounds))
    label = f"stdlib BytesHeaderParser ({len(sample)} msgs)"
    times = stdlib / timings["parse_message (cold memo)"]
    print(f"{label:40s} {stdlib:6.1f} µs/message ({times:.0f}× parse_message, cold memo)")


if __name__ == "__main__":
    main()
