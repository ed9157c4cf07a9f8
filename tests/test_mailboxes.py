"""Several mailboxes ([[mailbox]]): two Dovecot users as a work and a private mailbox, one
ledger, one person across both, each draft in the Drafts of the mailbox that last talked to
that person and From that address; a failing mailbox does not stop the other."""

from __future__ import annotations

import email
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import keyring
import pytest

from agent.config import parse_config_text
from agent.errors import ConfigError
from tests.kit import config_text, message, run_cli, write_config
from tests.servers.account import ImapAccount

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
NOW_TEXT = "2026-03-02T08:00:00Z"
WORK, PRIVATE = "mia@work.example", "mia@private.example"


def _exchange(account: ImapAccount, me: str, who: str, name: str, days: int,
              subject: str) -> None:
    """They wrote to ``me`` ``days`` before NOW, and ``me`` answered an hour later."""
    when = NOW - timedelta(days=days)
    account.append("INBOX", message(sender=f"{name} <{who}>", to=[me], subject=subject,
                                    when=when), when=when)
    later = when + timedelta(hours=1)
    account.append("Sent", message(sender=f"Mia Example <{me}>", to=[who],
                                   subject="Re: " + subject, when=later), when=later)


def _mailbox_entry(account: ImapAccount, *, name: str = "private", email: str = PRIVATE) -> str:
    return (f'\n[[mailbox]]\nname = "{name}"\nemail = "{email}"\nhost = "127.0.0.1"\n'
            f'port = {account.port}\nsecurity = "none"\nusername = "{account.username}"\n')


@pytest.fixture
def two_mailboxes(make_account: Callable[[str], ImapAccount], tmp_path: Path,
                  monkeypatch: pytest.MonkeyPatch) -> tuple[ImapAccount, ImapAccount]:
    work, private = make_account("standard"), make_account("standard")
    # Anna writes to both: work long ago, private more recently. Bob only at work, Carla
    # only privately. Mia writes from work to her private address once: no contact.
    _exchange(work, WORK, "anna@studio.example", "Anna Berg", 130, "Angebot")
    _exchange(private, PRIVATE, "anna@studio.example", "Anna Berg", 100, "Grillen")
    _exchange(work, WORK, "bob@bigcorp.example", "Bob Brandt", 110, "Rechnung")
    _exchange(private, PRIVATE, "carla@gmx.de", "Carla Christ", 105, "Urlaub")
    note = NOW - timedelta(days=90)
    work.append("Sent", message(sender=WORK, to=[PRIVATE], subject="note to self", when=note),
                when=note)
    write_config(monkeypatch, work, tmp_path, password="keyring", email=WORK,
                 extra=_mailbox_entry(private))
    keyring.set_password("followup", private.username, private.password)
    return work, private


def _drafts(account: ImapAccount) -> list[email.message.Message]:
    return [email.message_from_bytes(raw) for raw in account.fetch_raw("Drafts")]


def test_one_ledger_and_each_draft_in_its_own_mailbox(
        two_mailboxes: tuple[ImapAccount, ImapAccount],
        capsys: pytest.CaptureFixture[str]) -> None:
    work, private = two_mailboxes
    code, out, err = run_cli(["--now", NOW_TEXT, "run", "--once"], capsys)
    assert code == 0, out + err

    code, out, err = run_cli(["contacts", "--json"], capsys)
    contacts = {c["email"]: c for c in json.loads(out)}
    assert set(contacts) == {"anna@studio.example", "bob@bigcorp.example", "carla@gmx.de"}
    anna = contacts["anna@studio.example"]
    assert (anna["messages_in"], anna["messages_out"]) == (2, 2)  # one person, both boxes
    assert anna["last_subject"] == "Re: Grillen"

    at_work = {d["To"].split("<")[-1].rstrip(">"): d for d in _drafts(work)}
    at_home = {d["To"].split("<")[-1].rstrip(">"): d for d in _drafts(private)}
    assert set(at_work) == {"bob@bigcorp.example"}
    assert set(at_home) == {"anna@studio.example", "carla@gmx.de"}
    assert all(WORK in d["From"] for d in at_work.values())
    assert all(PRIVATE in d["From"] for d in at_home.values())
    # The digest goes to the primary mailbox only.
    assert any(b"X-Followup-Digest" in raw for raw in work.fetch_raw("INBOX"))
    assert not any(b"X-Followup-Digest" in raw for raw in private.fetch_raw("INBOX"))

    # A second cycle adds nothing; deleting the private draft declines it there only.
    code, out, err = run_cli(["--now", NOW_TEXT, "run", "--once"], capsys)
    assert code == 0, out + err
    assert len(_drafts(work)) == 1 and len(_drafts(private)) == 2
    with private.client() as client:
        client.select_folder("Drafts")
        client.delete_messages(client.search(["HEADER", "To", "carla@gmx.de"]))
        client.expunge()
    later = (NOW + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    code, out, err = run_cli(["--now", later, "drafts"], capsys)
    assert code == 0, out + err
    code, out, err = run_cli(["--now", later, "contacts", "--json"], capsys)
    statuses = {c["email"]: c["status"] for c in json.loads(out)}
    assert statuses["carla@gmx.de"] == "snoozed"
    assert statuses["anna@studio.example"] != "snoozed"


def test_a_failing_mailbox_does_not_stop_the_others(
        two_mailboxes: tuple[ImapAccount, ImapAccount],
        capsys: pytest.CaptureFixture[str]) -> None:
    work, private = two_mailboxes
    keyring.set_password("followup", private.username, "not-the-password")
    code, out, err = run_cli(["--now", NOW_TEXT, "run", "--once"], capsys)
    assert code == 0, out + err
    assert f"mailbox private: login as {private.username}" in err
    assert "not-the-password" not in out + err
    code, out, err = run_cli(["contacts", "--json"], capsys)
    assert {c["email"] for c in json.loads(out)} == {"anna@studio.example",
                                                      "bob@bigcorp.example"}
    assert len(_drafts(work)) == 2  # Anna's last mail is at work as far as followup knows
    assert _drafts(private) == []


def test_a_failing_primary_is_an_error_after_the_others_ran(
        two_mailboxes: tuple[ImapAccount, ImapAccount],
        capsys: pytest.CaptureFixture[str]) -> None:
    work, _private = two_mailboxes
    keyring.set_password("followup", work.username, "not-the-password")
    code, out, err = run_cli(["--now", NOW_TEXT, "scan"], capsys)
    assert code == 1, out + err
    assert err.strip().splitlines()[-1].startswith(f"error: login as {work.username}")
    code, out, err = run_cli(["contacts", "--json"], capsys)
    assert {c["email"] for c in json.loads(out)} == {"anna@studio.example", "carla@gmx.de"}


def test_mailbox_entries_are_checked() -> None:
    base = config_text(email=WORK)
    with pytest.raises(ConfigError) as info:
        parse_config_text(base + '\n[[mailbox]]\nname = "x"\nhost = "imap.example.org"\n'
                          f'\n[[mailbox]]\nname = "x"\nemail = "{WORK}"\n'
                          'host = "imap.example.org"\n')
    text = str(info.value)
    assert "[[mailbox]] #1 email is missing" in text
    assert f"[[mailbox]] #2 email {WORK} is already another mailbox's" in text
    config = parse_config_text(base + '\n[[mailbox]]\nemail = "mia@gmx.de"\n'
                               'host = "imap.gmx.net"\naliases = ["mia@gmx.net"]\n')
    (extra,) = config.mailbox
    assert (extra.name, extra.key, extra.imap.username, extra.imap.port) == (
        "mia@gmx.de", "mia@gmx.de", "mia@gmx.de", 993)
    assert config.own_addresses == (WORK, "mia@gmx.de", "mia@gmx.net")
    # Today's config without [[mailbox]]: one mailbox, the primary, as before.
    assert [m.key for m in parse_config_text(base).mailboxes] == [""]
