"""Turning contact states into what the CLI prints: a table, JSON or CSV."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from agent.identity import MergeSuggestion
from agent.model import ContactState

FIELDS = ("id", "name", "email", "addresses", "last_exchange", "last_direction", "last_subject",
          "last_folder", "messages_in", "messages_out", "status", "due_date", "cadence_days",
          "snooze_until", "tags")


def iso_utc(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def state_record(state: ContactState) -> dict[str, Any]:
    contact = state.contact
    return {
        "id": contact.id,
        "name": contact.name,
        "email": contact.email,
        "addresses": list(contact.addresses),
        "last_exchange": iso_utc(contact.last_exchange),
        "last_direction": contact.last_direction,
        "last_subject": contact.last_subject,
        "last_folder": contact.last_folder,
        "messages_in": contact.messages_in,
        "messages_out": contact.messages_out,
        "status": state.status,
        "due_date": state.due_date.isoformat() if state.due_date else None,
        "cadence_days": state.cadence_days,
        "snooze_until": contact.snooze_until.isoformat() if contact.snooze_until else None,
        "tags": sorted(contact.tags),
    }


def states_json(states: Sequence[ContactState]) -> str:
    return json.dumps([state_record(s) for s in states], ensure_ascii=False, indent=2)


def states_csv(states: Sequence[ContactState]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    for state in states:
        record = state_record(state)
        record["addresses"] = " ".join(record["addresses"])
        record["tags"] = " ".join(record["tags"])
        writer.writerow({k: _csv_safe(v) for k, v in record.items()})
    return buffer.getvalue()


def _csv_safe(value: Any) -> Any:
    # A subject like "=HYPERLINK(...)" must not become a formula in a spreadsheet.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value


STATUS_STYLE = {"overdue": "bold red", "waiting": "bold magenta", "due": "yellow", "ok": "green",
                "snoozed": "dim", "ignored": "dim"}


def print_table(states: Sequence[ContactState], tz: ZoneInfo, now: datetime) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console()
    if not states:
        console.print("No contacts yet. Run `followup scan` first (with two_way = true a person "
                      "counts once you have written to each other).")
        return
    table = Table(show_lines=False, header_style="bold")
    for column in ("id", "name", "email", "last exchange", "", "subject", "status", "due"):
        table.add_column(column, overflow="fold" if column == "subject" else "ellipsis")
    today = now.astimezone(tz).date()
    for state in states:
        contact = state.contact
        days = (today - contact.last_exchange.astimezone(tz).date()).days
        table.add_row(
            str(contact.id), Text(contact.name), Text(contact.email),
            f"{contact.last_exchange.astimezone(tz):%Y-%m-%d} ({days} d)",
            "→" if contact.last_direction == "out" else "←",
            Text(contact.last_subject[:60]),
            Text(state.status, style=STATUS_STYLE.get(state.status, "")),
            state.due_date.isoformat() if state.due_date else "",
        )
    console.print(table)


def merge_suggestions_text(suggestions: Sequence[MergeSuggestion]) -> str:
    if not suggestions:
        return "No merge suggestions."
    lines = []
    for s in suggestions:
        lines.append(f"{s.keep.id} {s.keep.email}  +  {s.other.id} {s.other.email}   ({s.reason})"
                     f"\n    followup merge {s.keep.id} {s.other.id}")
    return "\n".join(lines)
