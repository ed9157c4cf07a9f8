"""What the CLI prints, in words: contact tables, JSON, CSV, a contact's profile, drafts."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from agent.config import Config
from agent.decisions import Profile
from agent.drafts.compose import Draft
from agent.drafts.lifecycle import DraftsResult
from agent.identity import MergeSuggestion
from agent.model import ContactState, Direction, Exchange
from agent.policy import callable_phone
from agent.store.cards import SourceRecord
from agent.store.commands import CommandRecord

if TYPE_CHECKING:
    from rich.console import Console

FIELDS = ("id", "name", "email", "addresses", "last_exchange", "last_direction", "last_subject",
          "last_folder", "messages_in", "messages_out", "status", "due_date", "cadence_days",
          "snooze_until", "tags", "addressbook_tags", "phones", "birthday", "last_touch")


def iso_utc(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def state_record(state: ContactState) -> dict[str, Any]:
    contact = state.contact
    return {
        "id": contact.id,
        "name": contact.name,
        "email": contact.email,
        "addresses": list(contact.addresses),
        # Someone known only from an address book has no exchange: null, not year 1.
        "last_exchange": iso_utc(contact.last_exchange) if contact.has_mail else None,
        "last_direction": contact.last_direction if contact.has_mail else None,
        "last_subject": contact.last_subject,
        "last_folder": contact.last_folder,
        "messages_in": contact.messages_in,
        "messages_out": contact.messages_out,
        "status": state.status,
        "due_date": state.due_date.isoformat() if state.due_date else None,
        "cadence_days": state.cadence_days,
        "snooze_until": contact.snooze_until.isoformat() if contact.snooze_until else None,
        "tags": sorted(contact.tags),
        "addressbook_tags": sorted(contact.card_tags),
        "phones": [{"number": p.number, "type": p.type, "source": p.source}
                   | ({"seen": iso_utc(p.seen)} if p.seen is not None else {})
                   for p in contact.phones],
        "birthday": contact.birthday,
        "last_touch": None if contact.touch is None else {
            "kind": contact.touch.kind, "date": contact.touch.day.isoformat(),
            "note": contact.touch.note},
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
        record["addressbook_tags"] = " ".join(record["addressbook_tags"])
        record["phones"] = " ".join(p["number"] for p in record["phones"])
        touch = record["last_touch"]
        record["last_touch"] = f"{touch['date']} {touch['kind']}" if touch else ""
        writer.writerow({k: _csv_safe(v) for k, v in record.items()})
    return buffer.getvalue()


def _csv_safe(value: Any) -> Any:
    # A subject like "=HYPERLINK(...)" must not become a formula in a spreadsheet.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value


STATUS_STYLE = {"overdue": "bold red", "waiting": "bold magenta", "due": "yellow", "ok": "green",
                "snoozed": "dim", "ignored": "dim"}


def status_words(state: ContactState) -> str:
    """The status for a table cell; a snooze says until when (it ends by itself)."""
    until = state.contact.snooze_until
    if state.status == "snoozed" and until is not None:
        return f"snoozed until {until.isoformat()}"
    return state.status


def _console() -> Console:
    """A terminal console, or a wide one when piped (tables must not wrap into columns)."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=160)


def print_table(states: Sequence[ContactState], tz: ZoneInfo, now: datetime) -> None:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    console = _console()
    if not states:
        console.print("No contacts yet. Run `followup scan` first (with two_way = true a person "
                      "counts once you have written to each other).")
        return
    # One line per contact: long values are cut with "…", never wrapped; on a narrow
    # terminal the address column goes (`followup show ID` has everything).
    table = Table(box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False)
    table.add_column("id", justify="right", no_wrap=True)
    table.add_column("name", no_wrap=True, overflow="ellipsis", max_width=26)
    wide = console.width >= 110
    if wide:
        table.add_column("email", no_wrap=True, overflow="ellipsis", max_width=34)
    table.add_column("last exchange", no_wrap=True)
    table.add_column("subject", no_wrap=True, overflow="ellipsis", ratio=1, min_width=12)
    table.add_column("status", no_wrap=True)
    table.add_column("due", no_wrap=True)
    today = now.astimezone(tz).date()
    for state in states:
        contact = state.contact
        days = (today - contact.last_exchange.astimezone(tz).date()).days
        arrow = "→" if contact.last_direction == "out" else "←"
        cells: list[str | Text] = [str(contact.id), Text(contact.name or contact.email)]
        if wide:
            cells.append(Text(contact.email))
        last = f"{contact.last_exchange.astimezone(tz):%Y-%m-%d} {arrow} {days:>3} d" \
            if contact.has_mail else "no mail"
        cells += [
            last,
            Text(contact.last_subject),
            Text(status_words(state), style=STATUS_STYLE.get(state.status, "")),
            state.due_date.isoformat() if state.due_date else "",
        ]
        table.add_row(*cells)
    console.print(table)


def merge_suggestions_text(suggestions: Sequence[MergeSuggestion]) -> str:
    if not suggestions:
        return "No merge suggestions."
    lines = []
    for s in suggestions:
        lines.append(f"{s.keep.id} {s.keep.email}  +  {s.other.id} {s.other.email}   ({s.reason})"
                     f"\n    followup merge {s.keep.id} {s.other.id}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- due and show


def due_records(due: Sequence[ContactState], picks: Sequence[ContactState],
                replies: Sequence[ContactState] = ()) -> list[dict[str, Any]]:
    """``contacts --json`` records plus ``urgency``, ``picked`` and ``reply_today`` (in
    today's replies owed), in the order given."""
    picked = {s.contact.id for s in picks}
    replying = {s.contact.id for s in replies}
    return [{**state_record(s), "urgency": round(s.urgency, 4), "picked": s.contact.id in picked,
             "reply_today": s.contact.id in replying} for s in due]


def due_json(due: Sequence[ContactState], picks: Sequence[ContactState],
             replies: Sequence[ContactState] = ()) -> str:
    return json.dumps(due_records(due, picks, replies), ensure_ascii=False, indent=2)


def print_due(due: Sequence[ContactState], picks: Sequence[ContactState],
              replies: Sequence[ContactState] = ()) -> None:
    """The due list as a table, most urgent first; ``*`` marks today's picks, ``r`` today's
    replies owed; the phone number to call, where one is known."""
    from rich.table import Table
    from rich.text import Text

    console = _console()
    if not due:
        console.print("Nobody is waiting, overdue or due today.")
        return
    picked = {s.contact.id for s in picks}
    replying = {s.contact.id for s in replies}
    table = Table(header_style="bold")
    for column in ("", "id", "name", "email", "status", "due", "phone", "why"):
        table.add_column(column, overflow="fold" if column == "why" else "ellipsis",
                         no_wrap=column == "phone")
    for state in due:
        contact = state.contact
        mark = "*" if contact.id in picked else "r" if contact.id in replying else ""
        table.add_row(
            mark, str(contact.id), Text(contact.name),
            Text(contact.email), Text(state.status, style=STATUS_STYLE.get(state.status, "")),
            state.due_date.isoformat() if state.due_date else "", callable_phone(contact) or "",
            Text(state.reason),
        )
    console.print(table)
    line = f"* today's picks ({len(picked)} of {len(due)})"
    if replying:
        line += f"; r: today's replies owed ({len(replying)})"
    console.print(line)


TOUCH_WORDS = {"call": "call", "meeting": "meeting", "message": "in touch elsewhere"}


def _when(value: datetime, tz: ZoneInfo) -> str:
    return f"{value.astimezone(tz):%Y-%m-%d %H:%M %Z}"


def _subject(exchange: Exchange) -> str:
    return repr(exchange.subject) if exchange.subject else "(no subject)"


def show_text(profile: Profile, tz: ZoneInfo) -> str:
    """``followup show``: addresses, status and why, last exchanges, tags and decisions."""
    target, state, effective = profile.target, profile.state, profile.settings
    contact = target.contact
    rows: list[tuple[str, str]] = [("addresses", ", ".join(target.addresses) or "none")]

    if profile.not_listed:
        rows.append(("status", profile.not_listed))
    if state is not None:
        # Reasons of ignored and snoozed contacts start with their status already.
        words = state.reason if state.reason.startswith(state.status) else \
            f"{state.status}: {state.reason}"
        rows.append(("status" if not profile.not_listed else "would be", words))
    if profile.rank is not None:
        place = f"number {profile.rank} of {profile.due_count} on today's due list"
        rows.append(("", place + ("; one of today's picks" if profile.picked else "")))
    if effective.ignored:
        rows.append(("cadence", f"never: ignored ({effective.source})"))
    else:
        rows.append(("cadence", f"every {effective.cadence_days} days ({effective.source})"))

    ways: tuple[tuple[Direction, str, str], ...] = (("in", "last in", "from"),
                                                   ("out", "last out", "to"))
    for direction, label, preposition in ways:
        exchange = profile.last.get(direction)
        rows.append((label, "never" if exchange is None else
                     f"{_when(exchange.time, tz)} {preposition} {exchange.address}: "
                     f"{_subject(exchange)} in {exchange.folder}"))
    if contact is not None:
        rows.append(("messages", f"{contact.messages_in} in, {contact.messages_out} out"))
    if profile.touches:
        newest = profile.touches[0].touch
        rows.append(("last touch", f"{newest.day.isoformat()} {TOUCH_WORDS[newest.kind]}"
                                   + (f": {newest.note}" if newest.note else "")
                                   + (f" ({len(profile.touches)} logged)"
                                      if len(profile.touches) > 1 else "")))

    decisions = target.decisions
    card_tags = sorted(contact.card_tags) if contact is not None else []
    rows.append(("tags", ", ".join([*sorted(decisions.tags),
                                    *(f"{t} (address book)" for t in card_tags)]) or "none"))
    if contact is not None and contact.phones:
        rows.append(("phones", ", ".join(
            f"{p.number} ({p.type}" + (f", from their signature of {p.seen:%Y-%m-%d})"
                                       if p.source == "signature" and p.seen else ")")
            for p in contact.phones)))
    if contact is not None and contact.birthday:
        rows.append(("birthday", contact.birthday))
    chosen = []
    if decisions.snooze_until is not None:
        chosen.append(f"snoozed until {decisions.snooze_until.isoformat()}")
    if decisions.ignored:
        chosen.append("ignored")
    if decisions.cadence_days is not None:
        chosen.append(f"cadence {decisions.cadence_days} days")
    if decisions.language:
        chosen.append(f"language {decisions.language}")
    if decisions.name:
        chosen.append(f"name {decisions.name!r}")
    rows.append(("decisions", "; ".join(chosen) or "none"))
    if decisions.merged_ids:
        ids = ", ".join(str(i) for i in decisions.merged_ids)
        rows.append(("merged ids", f"{ids} (they name this contact)"))
    for draft in profile.pending_drafts:
        rows.append(("draft", f"{draft.kind} draft of {draft.day.isoformat()} waiting in "
                              f"{draft.folder}, to {draft.address}"))

    lines = [f"{target.label} (id {target.id})"]
    lines += [f"  {label + ':' if label else '':<12}{text}" for label, text in rows]
    if profile.recent:
        lines.append("  recent exchanges:")
        lines += [f"    {_when(e.time, tz)}  {'→' if e.direction == 'out' else '←'} "
                  f"{e.address}  {_subject(e)}  {e.folder}"
                  for e in profile.recent]
    return "\n".join(lines)


# --------------------------------------------------------------------------- drafts


KIND_WORDS = {"checkin": "check-in", "reply": "reply"}
LANGUAGE_WORDS = {"de": "German", "en": "English"}


def first_lines(draft: Draft, count: int = 4) -> list[str]:
    """The first non-empty lines of the body, for `followup drafts --dry-run`."""
    return [line for line in draft.body.splitlines() if line.strip()][:count]


def drafts_report(result: DraftsResult) -> list[str]:
    """What `followup drafts` prints: settled drafts, new (or would-be) drafts, skipped picks."""
    lines: list[str] = []
    settled = result.reconciled
    if settled is not None and (settled.sent or settled.declined or settled.pending):
        parts = [f"{len(settled.sent)} sent"] if settled.sent else []
        parts += [f"deleted: {r.address} (snoozed until {until.isoformat()})"
                  for r, until in settled.declined]
        if settled.pending:
            parts.append(f"{len(settled.pending)} still in Drafts")
        lines.append("earlier drafts: " + "; ".join(parts))
    if settled is not None and settled.problem:
        lines.append(f"earlier drafts: {settled.problem}")
    if result.dry_run:
        lines.append(f"would create {len(result.created)} draft(s) (dry run: nothing changed; "
                     "working from the ledger of the last scan)")
    elif result.created:
        lines.append(f"created {len(result.created)} draft(s) in {result.folder}:")
    else:
        lines.append("no new drafts today")
    for draft in result.created:
        to = f"{draft.name} <{draft.address}>" if draft.name else draft.address
        kind = KIND_WORDS.get(draft.kind, draft.kind)
        language = LANGUAGE_WORDS.get(draft.language, draft.language)
        if not result.dry_run:
            lines.append(f"  {to}: {draft.subject} ({kind}, {language})")
            continue
        lines += ["", f"To:       {to}", f"Subject:  {draft.subject}",
                  f"Kind:     {kind} in {language} ({draft.language_reason})"]
        lines += [f"    {line}" for line in first_lines(draft)]
    if settled is not None and settled.confirmed:
        lines.append("found in Drafts from an earlier run (kept, not made again): "
                     + ", ".join(r.address for r in settled.confirmed))
    if result.skipped:
        if result.dry_run:
            lines.append("")
        lines.append("not drafted:")
        lines += [f"  {s.address}: {s.reason}" for s in result.skipped]
    return lines


# --------------------------------------------------------------------------- address books


def addressbook_records(config: Config, records: Sequence[SourceRecord]) -> list[dict[str, Any]]:
    """One object per configured source (in config order), with what its last sync read."""
    found = {r.source: r for r in records}
    out = []
    for book in config.addressbook:
        record = found.get(book.source)
        out.append({
            "name": book.name,
            "source": book.source,
            "kind": record.kind if record else ("carddav" if book.url else "path"),
            "include_without_mail": book.include_without_mail,
            "synced_at": iso_utc(record.synced_at) if record and record.synced_at else None,
            "cards": record.cards if record else 0,
            "addresses": record.addresses if record else 0,
            "merged": record.merged if record else 0,
            "phones": record.phones if record else 0,
            "birthdays": record.birthdays if record else 0,
            "warnings": list(record.problems) if record else [],
        })
    return out


def addressbook_text(config: Config, records: Sequence[SourceRecord]) -> str:
    if not config.addressbook:
        return ("No address book is configured. Add [[addressbook]] entries with path (a vdir "
                "or .vcf file) or url (CardDAV) to the config; see README \"Your address book\".")
    lines = []
    for item in addressbook_records(config, records):
        when = item["synced_at"] or "never read yet (run `followup scan`)"
        lines.append(f"{item['name']} ({item['kind']}): {item['cards']} cards, "
                     f"{item['merged']} merged, {item['phones']} phones, "
                     f"{item['birthdays']} birthdays, {len(item['warnings'])} warnings; "
                     f"last read {when}")
        lines += [f"  warning: {w}" for w in item["warnings"]]
    return "\n".join(lines)


# --------------------------------------------------------------------------- commands by mail


def command_records(records: Sequence[CommandRecord]) -> list[dict[str, Any]]:
    """`followup commands --json`: one object per applied message, oldest first."""
    return [{
        "message_id": r.message_id,
        "folder": r.folder,
        "sent": iso_utc(r.sent_at),
        "applied": iso_utc(r.applied_at),
        "proof": r.proof,
        "digest": r.digest_day.isoformat() if r.digest_day else None,
        "subject": r.subject,
        "results": [{"line": x.line, "ok": x.ok, "text": x.text} for x in r.results],
        "confirmed": iso_utc(r.confirmed_at) if r.confirmed_at else None,
    } for r in records]


def commands_text(records: Sequence[CommandRecord], tz: ZoneInfo) -> str:
    if not records:
        return ("No commands received by mail yet. Answer a digest (e.g. \"snooze 2 30d\") or "
                "use one of its links; the next scan applies it.")
    lines = []
    for r in records:
        via = f"answer to the digest of {r.digest_day.isoformat()}" if r.digest_day else \
            "one-click link"
        lines.append(f"{_when(r.applied_at, tz)}  {via}: {r.subject!r}")
        lines += [f"    {'ok ' if x.ok else 'no '} {x.text}" for x in r.results]
        if not r.results:
            lines.append("    (no command in it)")
    return "\n".join(lines)
