"""Touchpoints (`followup log`) and the command grammar: the clock restarts at a logged call,
last_exchange stays mail-only, touchpoints survive `scan --full` and follow merges, a
pending draft is settled as done; the lines of an answer and the keys of one-click links."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.commands import grammar
from agent.commands.grammar import Command, NotCommand
from agent.decisions import resolve
from agent.model import Direction, ExchangeRow, MessageRow
from agent.store import Store
from agent.store.commands import Result
from tests.kit import ME, run_cli, write_config

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
T0 = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)  # the last mail with everyone: 154 days ago


def _row(key: str, address: str, direction: Direction, name: str) -> ExchangeRow:
    return ExchangeRow(msg_key=key, address=address, direction=direction, time=T0,
                       subject="Fotos", message_id=f"<{key}>", name=name, language="de")


def fill_ledger(store: Store) -> None:
    uid = 0
    for address, name in (("anna@studio.example", "Anna Groß"), ("bea@example.com", "Bea Berg")):
        for direction in ("in", "out"):
            uid += 1
            row = _row(f"{address}-{direction}", address, direction, name)
            store.ledger.save_batch("INBOX", 1, uid, [MessageRow(uid, row.msg_key, T0, None)],
                                    [row], [])
    store.refresh(T0)


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    write_config(monkeypatch, None, tmp_path)
    monkeypatch.setenv("FOLLOWUP_NOW", NOW.isoformat())
    path = tmp_path / "followup.db"
    with Store(path) as store:
        fill_ledger(store)
    return path


def contacts(capsys: pytest.CaptureFixture[str]) -> dict[str, dict[str, Any]]:
    code, out, err = run_cli(["contacts", "--json"], capsys)
    assert code == 0, err
    return {c["email"]: c for c in json.loads(out)}


def test_a_logged_call_restarts_the_clock(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = contacts(capsys)["anna@studio.example"]
    assert before["status"] == "overdue" and before["last_touch"] is None
    code, out, err = run_cli(["log", "ANNA+work@Studio.Example", "call", "--date", "2026-11-20",
                              "--note", "Angebot für März"], capsys)
    assert code == 0, err
    assert "logged a call with Anna Groß <anna@studio.example> on 2026-11-20" in out
    after = contacts(capsys)["anna@studio.example"]
    assert after["last_touch"] == {"kind": "call", "date": "2026-11-20",
                                   "note": "Angebot für März"}
    assert after["last_exchange"] == before["last_exchange"]  # mail only
    assert after["status"] == "ok"
    assert after["due_date"] == (date(2026, 11, 20) + timedelta(days=90)).isoformat()
    code, out, _ = run_cli(["due", "--json"], capsys)
    assert "anna@studio.example" not in out
    code, out, _ = run_cli(["show", "anna@studio.example"], capsys)
    assert "last touch: 2026-11-20 call: Angebot für März" in out
    assert "last touchpoint 12 days ago" in out


@pytest.mark.parametrize(("args", "message"), [
    (["log", "anna@studio.example", "call", "--date", "2026-12-03"], "in the future"),
    (["log", "anna@studio.example", "call", "--date", "2026-13-01"], "is not a day"),
    (["log", "nobody@example.org", "meeting"], "no contact has the address"),
    (["log", ME, "call"], "your own address"),
    (["log", "anna@studio.example", "lunch"], "Invalid value"),
])
def test_log_refuses_what_is_not_a_touchpoint(db: Path, capsys: pytest.CaptureFixture[str],
                                              args: list[str], message: str) -> None:
    code, out, err = run_cli(args, capsys)
    assert code == 2 and message in out + err
    with Store(db) as store:
        assert store.touchpoints.count() == 0


def test_touchpoints_survive_a_full_rescan_and_follow_merges(
        db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["log", "bea@example.com", "meeting", "--date", "2026-11-01"], capsys)[0] == 0
    with Store(db) as store:
        store.ledger.forget()  # what `scan --full` does first
        fill_ledger(store)
        bea, anna = resolve(store, "bea@example.com"), resolve(store, "anna@studio.example")
    assert contacts(capsys)["bea@example.com"]["last_touch"]["kind"] == "meeting"
    assert run_cli(["merge", str(anna), str(bea)], capsys)[0] == 0
    merged = contacts(capsys)["anna@studio.example"]
    assert merged["last_touch"] == {"kind": "meeting", "date": "2026-11-01", "note": ""}


def test_a_pending_draft_of_someone_just_called_is_settled_as_done(
        db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with Store(db) as store:
        anna = resolve(store, "anna@studio.example")
        store.journal.add_draft(anna, "anna@studio.example", date(2026, 12, 1), "checkin",
                                "<d1@example.org>", "Drafts", 5, 1, NOW, state="pending")
    code, out, _ = run_cli(["log", "anna@studio.example", "call"], capsys)
    assert code == 0 and "settled as done" in out
    with Store(db) as store:
        (draft,) = store.journal.drafts()
        assert draft.state == "done"
        assert store.journal.drafts("pending") == []


def test_followup_commands_lists_what_came_by_mail(
        db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["commands"], capsys)
    assert code == 0 and "No commands received by mail yet" in out
    with Store(db) as store:
        store.commands.record("a1@phone.example", "INBOX", 7, NOW, "digest", date(2026, 12, 2),
                              "Re: 3 people", [Result("snooze 2 30d", True, "Snoozed Bea"),
                                               Result("snoz 1", False, "'snoz' is not a "
                                                      "command — did you mean snooze?")], NOW)
    code, out, _ = run_cli(["commands", "--json"], capsys)
    (record,) = json.loads(out)
    assert record["proof"] == "digest" and record["digest"] == "2026-12-02"
    assert [r["ok"] for r in record["results"]] == [True, False]
    code, out, _ = run_cli(["commands"], capsys)
    assert "answer to the digest of 2026-12-02" in out and "did you mean snooze?" in out


# --------------------------------------------------------------------------- the grammar


@pytest.mark.parametrize(("line", "canonical"), [
    ("snooze 2 30d", "snooze 2 30d"),
    ("Zurückstellen 2 3M", "snooze 2 3m"),
    ("SNOOZE anna@Studio.example 2026-12-24", "snooze anna@studio.example 2026-12-24"),
    ("- ignorieren #12", "ignore #12"),
    ("1. angerufen 1 2026-11-30", "called 1 2026-11-30"),
    ("getroffen 3", "met 3"),
    ("erledigt: 2", "done 2"),
    ("rhythmus 2 default", "cadence 2 default"),
    ("cadence 2 45", "cadence 2 45"),
    ("tag 2 Kunde Presse", "tag 2 kunde presse"),
    ("unignore 4", "unignore 4"),
])
def test_command_lines_in_both_languages(line: str, canonical: str) -> None:
    parsed = grammar.parse_line(line)
    assert isinstance(parsed, Command) and parsed.canonical == canonical


@pytest.mark.parametrize(("line", "suggestion", "verb"), [
    ("snoz 2 30d", "snooze", None),
    ("ignorier 3", "ignorieren", None),
    ("Thanks!", None, None),
    ("snooze 2", None, "snooze"),  # no duration
    ("ignore", None, "ignore"),  # nobody named
    ("cadence 2 45 60", None, "cadence"),
])
def test_what_is_not_a_command(line: str, suggestion: str | None, verb: str | None) -> None:
    parsed = grammar.parse_line(line)
    assert isinstance(parsed, NotCommand)
    assert (parsed.suggestion, parsed.verb) == (suggestion, verb)


def test_lines_after_a_links_key_are_not_read() -> None:
    lines = grammar.parse("snooze #4 30d\n\n[followup " + "a" * 32 + "]\nSent from my iPhone\n")
    assert [ln.canonical for ln in lines if isinstance(ln, Command)] == ["snooze #4 30d"]
    assert len(lines) == 1
    assert grammar.parse("> snooze 2 30d\n>\n") == []  # a quote is never a command


def test_a_key_binds_one_exact_command() -> None:
    secret = b"s" * 32
    subject, body = grammar.link_message("snooze", 4, "Anna (Agentur)", "de", secret, ME)
    assert subject.startswith("Anna (Agentur) 30 Tage zurückstellen (snooze #4 30d) [followup ")
    command = grammar.subject_command(subject)
    assert command is not None and command.canonical == "snooze #4 30d"
    keys = grammar.keys_in(subject, body)
    assert len(keys) == 1
    assert grammar.bound(secret, ME, command, keys)
    assert grammar.bound(secret, ME.upper(), command, keys)  # the address in any case
    for other in ("snooze #4 300d", "ignore #4", "snooze #5 30d"):
        changed = grammar.parse_line(other)
        assert isinstance(changed, Command) and not grammar.bound(secret, ME, changed, keys)
    assert not grammar.bound(b"t" * 32, ME, command, keys)  # another installation
    assert not grammar.bound(secret, "someone@example.org", command, keys)
    assert grammar.key(None, ME, command.canonical) == grammar.PREVIEW_KEY
