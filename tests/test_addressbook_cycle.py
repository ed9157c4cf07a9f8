"""The address book in the whole product, against real Dovecot and Radicale, through the CLI:
`followup scan` reads mail and cards, the digest lists birthdays, CATEGORIES drive rules,
failing address books are one line each and never stop the mail scan."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.addressbook_cards import ANNA, BROKEN, write_vdir
from tests.carddav_server import CardDavAccount, free_port
from tests.kit import ME, message, run_cli, write_config
from tests.servers.account import ImapAccount

NOW_TEXT = "2026-03-01T08:00:00Z"  # Anna's birthday (3 March) is two days ahead
NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def seed_mail(account: ImapAccount) -> None:
    """Anna wrote from both addresses and got answers, 50 days ago: not due on 90 days."""
    when = NOW - timedelta(days=50)
    for number, address in enumerate(("anna@studio.example", "anna.private@gmx.de")):
        at = when + timedelta(minutes=number)
        account.append("INBOX", message(sender=f"Anna <{address}>", subject="Fotos", when=at))
        account.append(account.sent_folder, message(sender=ME, to=[address], subject="Re: Fotos",
                                                    when=at + timedelta(minutes=5)))


def dav_book(account: CardDavAccount, password: str | None = None, url: str | None = None) -> str:
    return (f'[[addressbook]]\nname = "Nextcloud"\nurl = "{url or account.base}"\n'
            f'username = "{account.username}"\n'
            f'password_command = "printf {password or account.password}"\n')


def contacts_json(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    code, out, err = run_cli(["--now", NOW_TEXT, "contacts", "--json"], capsys)
    assert code == 0, err
    return list(json.loads(out))


def test_a_scan_reads_the_cards_and_a_deleted_card_goes_at_the_next_scan(
        dovecot_account: ImapAccount, carddav_account: CardDavAccount, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    seed_mail(dovecot_account)
    carddav_account.put("anna.vcf", ANNA)
    write_config(monkeypatch, dovecot_account, tmp_path, extra=dav_book(carddav_account))
    code, out, err = run_cli(["--now", NOW_TEXT, "scan"], capsys)
    assert code == 0, err
    (anna,) = contacts_json(capsys)
    assert anna["name"] == "Anna Berg"
    assert sorted(anna["addresses"]) == ["anna.private@gmx.de", "anna@studio.example"]  # type: ignore[arg-type]
    assert anna["phones"] == [
        {"number": "+49301234567", "type": "work", "source": "addressbook"},
        {"number": "+491712345678", "type": "cell", "source": "addressbook"}]
    assert anna["birthday"] == "1980-03-03"
    assert anna["addressbook_tags"] == ["berlin", "kunden"]
    code, out, _ = run_cli(["--now", NOW_TEXT, "show", "anna@studio.example"], capsys)
    assert "+49301234567 (work)" in out and "birthday:   1980-03-03" in out
    code, out, _ = run_cli(["--now", NOW_TEXT, "addressbook", "--json"], capsys)
    (source,) = json.loads(out)
    assert {k: source[k] for k in ("name", "kind", "cards", "merged", "phones", "birthdays")} \
        == {"name": "Nextcloud", "kind": "carddav", "cards": 1, "merged": 1, "phones": 2,
            "birthdays": 1}

    carddav_account.delete("anna.vcf")
    code, out, err = run_cli(["--now", NOW_TEXT, "scan"], capsys)
    assert code == 0, err
    found = contacts_json(capsys)
    assert sorted(tuple(c["addresses"]) for c in found) == [  # type: ignore[arg-type]
        ("anna.private@gmx.de",), ("anna@studio.example",)]
    assert all(c["phones"] == [] and c["birthday"] is None for c in found)


def test_birthday_in_two_days_is_in_the_digest_and_kunden_changes_the_cadence(
        dovecot_account: ImapAccount, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    seed_mail(dovecot_account)
    vdir = write_vdir(tmp_path / "contacts", {"anna.vcf": ANNA})
    write_config(monkeypatch, dovecot_account, tmp_path,
                 extra=f'[[addressbook]]\npath = "{vdir}"\n')
    assert run_cli(["--now", NOW_TEXT, "scan"], capsys)[0] == 0
    (anna,) = contacts_json(capsys)
    assert (anna["status"], anna["cadence_days"]) == ("ok", 90)
    code, out, err = run_cli(["--now", NOW_TEXT, "digest", "--dry-run"], capsys)
    assert code == 0, err
    assert "Birthdays this week\n-------------------\n- Anna Berg: Tuesday, " in out
    assert "(turns 46)" in out

    # CATEGORIES:Kunden + a tag rule: every 30 days, so 50 days after the last mail she is
    # overdue; the rule is named as the reason.
    write_config(monkeypatch, dovecot_account, tmp_path, extra=f"""
[[policy.rule]]
tag = "kunden"
cadence_days = 30

[[addressbook]]
path = "{vdir}"
""")
    (anna,) = contacts_json(capsys)
    assert (anna["status"], anna["cadence_days"]) == ("overdue", 30)
    code, out, _ = run_cli(["--now", NOW_TEXT, "show", "anna@studio.example"], capsys)
    assert "every 30 days (rule tag:kunden)" in out
    assert "kunden (address book)" in out


def test_broken_cards_a_wrong_password_and_a_dead_server_never_stop_the_mail_scan(
        dovecot_account: ImapAccount, carddav_account: CardDavAccount, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    seed_mail(dovecot_account)
    vdir = write_vdir(tmp_path / "contacts", {"anna.vcf": ANNA, "broken.vcf": BROKEN})
    books = (f'[[addressbook]]\nname = "Files"\npath = "{vdir}"\n'
             + dav_book(carddav_account, password="wrong-password-1234")
             + dav_book(carddav_account, url=f"http://127.0.0.1:{free_port()}/").replace(
                 'name = "Nextcloud"', 'name = "Old server"'))
    write_config(monkeypatch, dovecot_account, tmp_path, extra=books)
    code, out, err = run_cli(["--now", NOW_TEXT, "-v", "scan"], capsys)
    assert code == 0, err
    assert "new exchange(s)" in out  # the mail scan completed
    lines = [line for line in err.splitlines() if "address book" in line and "WARNING" in line]
    assert len(lines) == 3, err
    assert f"{vdir / 'broken.vcf'}: not a readable vCard, skipped" in lines[0]
    assert "'Nextcloud': the server refused the login for" in lines[1]
    assert "'Old server': cannot connect to 127.0.0.1:" in lines[2]
    (anna,) = contacts_json(capsys)
    assert anna["name"] == "Anna Berg" and len(anna["addresses"]) == 2  # type: ignore[arg-type]
    code, out, err = run_cli(["--now", NOW_TEXT, "doctor"], capsys)
    doctor = out
    assert "ok   address book 'Files': vdir" in doctor
    assert "FAIL address book 'Nextcloud': the server refused the login" in doctor
    everything = out + err + doctor + (tmp_path / "followup.db").read_bytes().decode(
        "utf-8", "replace")
    assert carddav_account.password not in everything
    assert "wrong-password-1234" not in everything
