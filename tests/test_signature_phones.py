"""Phone numbers from signatures, the whole run on Dovecot (issue 15).

A planted mailbox (tests/signature_mail.py: German and English signatures, a disclaimer with
switchboard and fax, a quoted signature of someone else, a forwarded message, HTML only, an
image only, Mia's own signature quoted back) goes through `followup run --once`. The numbers
followup keeps must be exactly the planted ones (precision and recall, printed), each body is
fetched at most once and only for the people the digest shows without a number, and the HTML
digest's Call link is a tel: URL in headless Chromium.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from agent import service
from agent.config import load_config
from agent.mailbox.client import Mailbox
from tests.browser import browser_session, dump_dom
from tests.kit import drafts_of, run_cli, write_config
from tests.servers.account import ImapAccount
from tests.signature_mail import NOW, PEOPLE, RECENT, ago, card, items, newest

NOW_TEXT = NOW.isoformat()
BY_ADDRESS = {p.address: p for p in (*PEOPLE, RECENT)}
CARDED = {p.key for p in PEOPLE if p.card_phone}


@pytest.fixture
def fetches(monkeypatch: pytest.MonkeyPatch) -> Counter[tuple[str, int]]:
    """Every text part followup fetches, counted by (folder, UID)."""
    counted: Counter[tuple[str, int]] = Counter()
    real: Callable[..., bytes | None] = Mailbox.fetch_text_part

    def counting(self: Mailbox, folder: str, uid: int, *args: Any, **kwargs: Any) -> bytes | None:
        found = real(self, folder, uid, *args, **kwargs)
        if found is not None:
            counted[(folder, uid)] += 1
        return found

    monkeypatch.setattr(Mailbox, "fetch_text_part", counting)
    return counted


@pytest.fixture
def planted(dovecot_account: ImapAccount, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Path:
    """The planted mailbox on Dovecot, an address book with Ben's card, and a config."""
    dovecot_account.create_folder("Archiv")
    dovecot_account.append_many(items(dovecot_account.sent_folder))
    book = tmp_path / "contacts"
    book.mkdir()
    for person in PEOPLE:
        if person.card_phone:
            (book / f"{person.key}.vcf").write_text(card(person), encoding="utf-8")
    monkeypatch.setenv("COLUMNS", "220")
    return write_config(monkeypatch, dovecot_account, tmp_path / "home", language="de",
                        extra=f'\n[[addressbook]]\npath = "{book}"\n')


def cli(capsys: pytest.CaptureFixture[str], *args: str, now: str = NOW_TEXT) -> str:
    code, out, err = run_cli(["--now", now, *args], capsys)
    assert code == 0, out + err
    return out


def due_records(capsys: pytest.CaptureFixture[str], now: str = NOW_TEXT) -> list[dict[str, Any]]:
    records = json.loads(cli(capsys, "due", "--json", now=now))
    assert isinstance(records, list)
    return records


def message_ids_of(account: ImapAccount, keys: list[tuple[str, int]]) -> list[str]:
    found = []
    with account.client() as client:
        for folder, uid in keys:
            client.select_folder(folder, readonly=True)
            header = client.fetch([uid], ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])[uid]
            value = next(v for k, v in header.items() if k.startswith(b"BODY["))
            found.append(value.decode().split(":", 1)[1].strip().strip("<>"))
    return found


def test_the_planted_signatures_give_exactly_the_right_numbers(
        planted: Path, dovecot_account: ImapAccount, fetches: Counter[tuple[str, int]],
        capsys: pytest.CaptureFixture[str]) -> None:
    out = cli(capsys, "run", "--once")
    assert "signatures: 10 people without a number in the address book; 10 message(s) read" \
        in out, out
    records = due_records(capsys)
    listed = {BY_ADDRESS[r["email"]].key: r for r in records}
    assert set(listed) == {p.key for p in PEOPLE}  # everyone planted is in the digest
    assert "lisa" not in listed  # Lisa is not: her signature is never read

    # Precision and recall over every number the planted signatures hold.
    truth = {(p.key, n) for p in PEOPLE if p.key not in CARDED for n in p.truth}
    found = {(key, phone["number"]) for key, r in listed.items() for phone in r["phones"]
             if phone["source"] == "signature"}
    right = truth & found
    precision = len(right) / len(found) if found else 1.0
    recall = len(right) / len(truth)
    with capsys.disabled():
        print("\n\nPhone numbers from signatures (planted mailbox on Dovecot)")
        print(f"{'person':8}  {'case':70}  {'expected':32}  {'found':32}")
        for person in PEOPLE:
            got = sorted(n for k, n in found if k == person.key)
            want = sorted(person.truth) if person.key not in CARDED else ["(card number)"]
            print(f"{person.key:8}  {person.case[:70]:70}  {', '.join(want) or '-':32}  "
                  f"{', '.join(got) or '-':32}")
        print(f"precision {precision:.2f} ({len(right)}/{len(found)}), "
              f"recall {recall:.2f} ({len(right)}/{len(truth)})")
    assert (precision, recall) == (1.0, 1.0), sorted(found ^ truth)

    # Each signature number carries the date of its message; types as the labels say.
    juergen = {p["number"]: p for p in listed["juergen"]["phones"]}
    assert juergen["+491712345678"]["type"] == "cell"
    assert juergen["+49301234567"]["type"] == "work"
    assert juergen["+49301234567"]["seen"] == ago(150).strftime("%Y-%m-%dT%H:%M:%SZ")
    # The address book wins: Ben's card number, and his signature was never read.
    assert [(p["number"], p["source"]) for p in listed["ben"]["phones"]] == [
        ("+49891234567", "addressbook")]

    # Bodies fetched == the people in the digest without a known number, each once.
    without = [key for key, r in listed.items()
               if not any(p["source"] == "addressbook" for p in r["phones"])]
    assert len(without) == 10
    assert sum(fetches.values()) == len(without) and set(fetches.values()) == {1}
    read = set(message_ids_of(dovecot_account, list(fetches)))
    assert read == {f"{key}-newest@test" for key in without}  # the newest, never the older
    assert ("Archiv", 1) in fetches  # Sabine's, where the ledger says it is

    # `followup due` shows the number to call, `followup show` where it comes from.
    table = cli(capsys, "due")
    row = next(line for line in table.splitlines() if "juergen.weiss@" in line)
    assert "+49301234567" in row
    shown = cli(capsys, "show", "juergen.weiss@beispiel-ag.example")
    assert f"+49301234567 (work, from their signature of {ago(150):%Y-%m-%d})" in shown

    # The next morning: nothing is fetched again (remembered by Message-ID).
    fetches.clear()
    tomorrow = (NOW + timedelta(days=1)).isoformat()
    out = cli(capsys, "run", "--once", now=tomorrow)
    assert "10 read before" in out, out
    assert sum(fetches.values()) == 0

    # Oliver writes again with a new number; ten days on he is owed a reply and in the
    # digest: only that message is read, and it replaces the older signature's number.
    oliver = next(p for p in PEOPLE if p.key == "oliver")
    later = NOW + timedelta(days=1)
    dovecot_account.append("INBOX", newest(oliver, ident="oliver-again@test", when=later,
                                           body="Hi Mia,\n\nnew phone!\n\nBest,\nOliver\n\n"
                                                "Oliver Bennett\nM +44 7700 900456\n"),
                           when=later)
    fetches.clear()
    day3 = (NOW + timedelta(days=10)).isoformat()
    cli(capsys, "run", "--once", now=day3)
    assert sum(fetches.values()) == 1
    assert message_ids_of(dovecot_account, list(fetches)) == ["oliver-again@test"]
    listed = {BY_ADDRESS[r["email"]].key: r for r in due_records(capsys, now=day3)}
    assert [p["number"] for p in listed["oliver"]["phones"]] == ["+447700900456"]


def test_the_html_digest_has_a_call_link_per_pick(
        planted: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cli(capsys, "run", "--once")
    page = tmp_path / "digest.html"
    cli(capsys, "digest", "--output", str(page))
    picks = [r for r in due_records(capsys) if r["picked"] or r["reply_today"]]
    with browser_session(tmp_path) as binary:
        dom = dump_dom(binary, page, tmp_path / "profile")
    calls = re.findall(r'<a href="([^"]*)" data-action="call"', dom)
    expected = [r["phones"][0]["number"] for r in picks if r["phones"]]
    assert expected and all(href.startswith("tel:+") for href in calls)
    assert sorted(calls) == sorted(f"tel:{n}" for n in expected)
    # Beside the Write/Reply button of the same card, or beside the draft waiting for it.
    assert len(calls) == len(expected)
    # The text part has the number too.
    text = cli(capsys, "digest", "--dry-run")
    calls_in_text = [re.sub(r"\D", "", line) for line in text.splitlines()
                     if line.strip().startswith("Anrufen: +")]
    assert sorted(calls_in_text) == sorted(n.lstrip("+") for n in expected)


def test_a_reply_owed_past_the_window_gets_a_check_in_not_an_apology(
        planted: Path, dovecot_account: ImapAccount, capsys: pytest.CaptureFixture[str]) -> None:
    cli(capsys, "run", "--once")
    records = {r["email"]: r for r in due_records(capsys)}
    drafts = drafts_of(dovecot_account)
    old = [a for a, r in records.items() if r["picked"] and r["last_direction"] == "in"]
    assert len(old) == 3  # every pick wrote last, long ago: no reply owed any more
    for address in old:
        assert records[address]["status"] in ("overdue", "due")
        body = drafts[address].get_content()
        assert "Entschuldigung" not in body and "sorry" not in body.lower()
        assert "Nachricht vom" in body or "message of" in body  # it refers to their mail
        assert drafts[address]["In-Reply-To"] == f"<{BY_ADDRESS[address].key}-newest@test>"
    # Grace wrote 12 days ago: a reply owed, in its own section, with a reply draft.
    grace = records["grace.lee@harbor-press.example"]
    assert (grace["status"], grace["reply_today"], grace["picked"]) == ("waiting", True, False)
    reply = drafts["grace.lee@harbor-press.example"]
    assert reply["Subject"] == "Re: Unser Projekt"
    assert "Entschuldigung" in reply.get_content() or "sorry" in reply.get_content()


def test_found_by_message_id_when_the_ledger_has_no_uid(
        dovecot_account: ImapAccount, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        fetches: Counter[tuple[str, int]]) -> None:
    dana = next(p for p in PEOPLE if p.key == "dana")
    dovecot_account.append_many(items(dovecot_account.sent_folder, (dana,)))
    config = load_config(write_config(monkeypatch, dovecot_account, tmp_path))
    service.run_scan(config, NOW)
    db = sqlite3.connect(config.storage.path)
    db.execute("DELETE FROM messages")  # as if the ledger had kept no UID for it
    db.commit()
    db.close()
    result = service.run_cycle(config, NOW)
    assert result.signatures is not None and result.plan is not None
    assert (result.signatures.searched, len(result.signatures.fetched)) == (1, 1)
    (numbers,) = result.signatures.found.values()
    assert [p.number for p in numbers] == ["+14155550134"]
    assert sum(fetches.values()) == 1
    assert result.plan.picks[0].contact.phones == numbers  # the digest's plan has it


def test_no_signature_step_without_a_digest_to_send(
        planted: Path, fetches: Counter[tuple[str, int]],
        capsys: pytest.CaptureFixture[str]) -> None:
    cli(capsys, "scan")
    cli(capsys, "drafts")  # drafts alone: no digest, so no signatures are read
    assert sum(fetches.values()) == 0

