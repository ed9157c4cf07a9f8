"""Regression tests for the ledger findings of the outside review of 0.1.0 (issue 17): 3,
"From: you" in INBOX counted as sent mail, and 10, recipient lists cut silently, repairs that
name no message, and a Date of "-5" taken for 2000. Each fails on 0.1.0; all run on Dovecot.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.classify import DELIVERED_FROM_OUTSIDE
from agent.store import Store
from tests.kit import ME, iso, message, run_cli, write_config
from tests.servers.account import ImapAccount

NOW = datetime(2026, 11, 26, 6, 30, tzinfo=UTC)
NOW_TEXT = "2026-11-26T06:30:00Z"
INTERNALDATE = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
ONE_WAY = "[policy]\ntwo_way = false\n"
# What the user's own mail server writes on top of every message it delivers (the sender
# cannot remove it); a message the user's mail program APPENDs has none.
DELIVERED = ("Received", "from mail.evil.example (mail.evil.example [203.0.113.9]) by "
                         "mx.example.org (Postfix) with ESMTPS id 4XyZ1; Wed, 25 Nov 2026 "
                         "09:00:01 +0000")


def scan(capsys: pytest.CaptureFixture[str]) -> str:
    code, out, err = run_cli(["--now", NOW_TEXT, "-v", "scan"], capsys)
    assert code == 0, err
    return out


def contacts(capsys: pytest.CaptureFixture[str]) -> dict[str, dict[str, Any]]:
    code, out, err = run_cli(["--now", NOW_TEXT, "contacts", "--json"], capsys)
    assert code == 0, err
    return {c["email"]: c for c in json.loads(out)}


# --------------------------------------------------------------------------- 3. From: you


def test_3_a_strangers_forged_mail_from_you_makes_no_contact_pick_or_draft(
        dovecot_account: ImapAccount, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """0.1.0 took a mail "From: you" to the stranger, delivered into INBOX, for mail the
    user sent: with one real mail from the stranger that made a two-way contact "waiting for
    your reply", a pick of the digest and a prepared reply draft."""
    when = NOW - timedelta(days=3)
    forged = message(sender=f"Mia Example <{ME}>", to=["stranger@evil.example"],
                     subject="Re: our deal", when=when - timedelta(days=1),
                     headers=[DELIVERED])
    real = message(sender="Stranger <stranger@evil.example>", subject="our deal", when=when)
    dovecot_account.append("INBOX", forged, when=when - timedelta(days=1))
    dovecot_account.append("INBOX", real, when=when)
    write_config(monkeypatch, dovecot_account, tmp_path)
    out = scan(capsys)
    assert f"not counted: 1 × {DELIVERED_FROM_OUTSIDE}" in out
    assert contacts(capsys) == {}
    for command in (["digest", "--dry-run"], ["drafts", "--dry-run"]):
        code, out, err = run_cli(["--now", NOW_TEXT, *command], capsys)
        assert code == 0, err
        assert "stranger" not in (out + err).lower()


def test_3_a_forged_out_mail_does_not_silence_a_real_contact(
        dovecot_account: ImapAccount, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Anna is overdue (the last exchange was 120 days ago); a forged mail "From: you" to
    her, delivered into INBOX yesterday, made her "ok" on 0.1.0."""
    old = NOW - timedelta(days=120)
    dovecot_account.append("INBOX", message(sender="Anna <anna@example.com>", subject="Fotos",
                                            when=old), when=old)
    dovecot_account.append(dovecot_account.sent_folder,
                           message(sender=ME, to=["anna@example.com"], subject="Re: Fotos",
                                   when=old + timedelta(hours=1)), when=old)
    forged = message(sender=ME, to=["anna@example.com"], subject="Hi again",
                     when=NOW - timedelta(days=1), headers=[DELIVERED])
    dovecot_account.append("INBOX", forged, when=NOW - timedelta(days=1))
    write_config(monkeypatch, dovecot_account, tmp_path)
    scan(capsys)
    anna = contacts(capsys)["anna@example.com"]
    assert anna["status"] == "overdue"
    assert anna["last_exchange"] == iso(old + timedelta(hours=1))
    assert (anna["messages_in"], anna["messages_out"]) == (1, 1)


def test_3_own_mail_filed_by_the_mail_program_still_counts_wherever_it_is(
        dovecot_account: ImapAccount, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """What must keep working: a reply filed next to the mail it answers (Thunderbird's
    "place replies in the folder of the message being replied to": APPENDed, no Received),
    sent mail in Sent and in a project folder, and a Bcc copy to yourself that was
    delivered into INBOX (it counts through its copy in Sent, once)."""
    base = NOW - timedelta(days=10)
    filed = message(sender=ME, to=["bert@example.com"], subject="Re: Termin", when=base)
    dovecot_account.append("INBOX", filed, when=base)
    dovecot_account.create_folder("Projekte")
    dovecot_account.append("Projekte", message(sender=ME, to=["carla@example.com"],
                                               subject="Entwurf", when=base), when=base)
    copy = message(sender=ME, to=["dora@example.com"], subject="Angebot", when=base)
    dovecot_account.append(dovecot_account.sent_folder, copy, when=base)
    bcc_delivered = copy.replace(b"From:", b"Received: from smtp.example.org by mx.example.org"
                                           b" with LMTP; Mon, 16 Nov 2026 06:30:00 +0000\r\n"
                                           b"From:", 1)
    dovecot_account.append("INBOX", bcc_delivered, when=base)
    write_config(monkeypatch, dovecot_account, tmp_path, extra=ONE_WAY)
    scan(capsys)
    found = contacts(capsys)
    assert set(found) == {"bert@example.com", "carla@example.com", "dora@example.com"}
    for person in found.values():
        assert (person["last_direction"], person["messages_out"]) == ("out", 1)


# --------------------------------------------------------------------------- 10. repairs


def test_10_a_mail_to_10000_people_counts_every_one(
        dovecot_account: ImapAccount, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """0.1.0 cut the To value at 64 KiB and counted 2,185 of 10,000, saying only
    "repaired: 4 × To"."""
    people = [f"gast{n:05d}@hochzeit.example" for n in range(10_000)]
    raw = message(sender=ME, to=people, subject="Save the date", when=NOW - timedelta(days=2))
    assert len(raw) > 4 * 64 * 1024
    dovecot_account.append(dovecot_account.sent_folder, raw, when=NOW - timedelta(days=2))
    write_config(monkeypatch, dovecot_account, tmp_path, extra=ONE_WAY)
    out = scan(capsys)
    assert "repaired" not in out
    with Store(tmp_path / "followup.db") as store:
        assert store.ledger.exchange_count() == 10_000


def test_10_every_repair_names_its_message_and_a_yearless_date_is_not_2000(
        dovecot_account: ImapAccount, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """0.1.0 printed "repaired: 1 × Date" and took "Mon, 01 Jan -5 …" for 1 January 2000."""
    raw = message(sender="Eva <eva@example.com>", subject="Hallo", message_id="yearless",
                  when=NOW).replace(b"Date: ", b"Date: Mon, 01 Jan -5 00:00:00 +0000\r\nX-Old: ")
    dovecot_account.append("INBOX", message(sender="Udo <udo@example.com>", when=NOW),
                           when=INTERNALDATE)
    dovecot_account.append("INBOX", raw, when=INTERNALDATE)
    write_config(monkeypatch, dovecot_account, tmp_path, extra=ONE_WAY)
    out = scan(capsys)
    assert "  repaired: 1 × Date" in out
    assert ("    INBOX UID 2 <yearless@test>: Date: 'Mon, 01 Jan -5 00:00:00 +0000' is "
            "unparseable (no valid year); used INTERNALDATE") in out.splitlines()
    assert contacts(capsys)["eva@example.com"]["last_exchange"] == iso(INTERNALDATE)
