"""Contact management on the command line: snooze, unsnooze, ignore, unignore, cadence, tag,
merge, split, show, and how contacts are named — with every error a user can make.

A small mailbox on Dovecot, scanned through the real CLI; decisions are checked through
`contacts --json` (what other tools see) and through `show`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.kit import ME, message, run_cli, write_config
from tests.servers.account import ImapAccount

NOW = "2026-06-15T07:00:00Z"  # the user's day in Berlin: 2026-06-15
ANNA = "anna@studio.example"
ANNA_GMAIL = "annaschmidt@gmail.com"  # she writes as Anna.Schmidt+work@googlemail.com
BOB = "bob@bigcorp.example"
COLD = "cold@studio.example"  # the user wrote once; no answer: not a contact

Capsys = pytest.CaptureFixture[str]


def plant(account: ImapAccount) -> None:
    def at(month: int, day: int) -> datetime:
        return datetime(2026, month, day, 10, tzinfo=UTC)

    mail = [
        ("INBOX", "Anna Schmidt <anna@studio.example>", [ME], "Shoot in May?", at(1, 5)),
        (account.sent_folder, ME, [f"Anna Schmidt <{ANNA}>"], "Re: Shoot in May?", at(1, 10)),
        ("INBOX", "Anna Schmidt <Anna.Schmidt+work@googlemail.com>", [ME], "Private", at(2, 1)),
        (account.sent_folder, ME, ["anna.schmidt@gmail.com"], "Re: Private", at(2, 3)),
        (account.sent_folder, ME, [f"Bob Baker <{BOB}>"], "Invoice", at(6, 1)),
        ("INBOX", f"Bob Baker <{BOB}>", [ME], "Re: Invoice", at(6, 2)),
        (account.sent_folder, ME, [COLD], "Hello", at(3, 1)),
    ]
    account.append_many([
        (folder, message(sender=sender, to=to, subject=subject, when=when), [], when)
        for folder, sender, to, subject, when in mail
    ])


@pytest.fixture
def mailbox(dovecot_account: ImapAccount) -> ImapAccount:
    plant(dovecot_account)
    return dovecot_account


@pytest.fixture
def ledger(mailbox: ImapAccount, tmp_path: Path, capsys: Capsys,
           monkeypatch: pytest.MonkeyPatch) -> ImapAccount:
    """The mailbox, scanned with the default policy."""
    write_config(monkeypatch, mailbox, tmp_path)
    ok(capsys, "scan")
    return mailbox


def scanned_with(monkeypatch: pytest.MonkeyPatch, account: ImapAccount, tmp_path: Path,
                 capsys: Capsys, extra: str) -> None:
    write_config(monkeypatch, account, tmp_path, extra=extra)
    ok(capsys, "scan")


def ok(capsys: Capsys, *args: str, now: str = NOW) -> str:
    code, out, err = run_cli(["--now", now, *args], capsys)
    assert code == 0, err
    return out


def fails(capsys: Capsys, *args: str, now: str = NOW) -> str:
    """Run a command that must fail as a usage error: exit 2, one line, no traceback."""
    code, out, err = run_cli(["--now", now, *args], capsys)
    assert code == 2, (out, err)
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    return lines[0]


def records(capsys: Capsys, now: str = NOW) -> dict[str, dict[str, Any]]:
    """`contacts --json` keyed by every address of each contact."""
    out = ok(capsys, "contacts", "--json", now=now)
    return {address: r for r in json.loads(out) for address in r["addresses"]}


def contact_id(capsys: Capsys, address: str) -> int:
    return int(records(capsys)[address]["id"])


# --------------------------------------------------------------------------- naming a contact


@pytest.mark.parametrize("spelling", [
    ANNA, "ANNA@Studio.Example", "anna+newsletter@studio.example", " <anna@studio.example> ",
])
def test_an_address_resolves_in_any_spelling(ledger: ImapAccount, capsys: Capsys,
                                             spelling: str) -> None:
    anna = contact_id(capsys, ANNA)
    assert ok(capsys, "show", spelling).startswith(f"Anna Schmidt <{ANNA}> (id {anna})")


def test_gmail_dots_and_googlemail_resolve_to_one_contact(ledger: ImapAccount,
                                                          capsys: Capsys) -> None:
    gmail = contact_id(capsys, ANNA_GMAIL)
    for spelling in ("Anna.Schmidt@googlemail.com", "a.n.n.a.schmidt+x@GMAIL.com", str(gmail)):
        assert f"(id {gmail})" in ok(capsys, "show", spelling).splitlines()[0]


COMMANDS_WITH_A_CONTACT = [
    ["snooze", "{ref}", "30d"], ["unsnooze", "{ref}"], ["ignore", "{ref}"], ["unignore", "{ref}"],
    ["cadence", "{ref}", "30"], ["tag", "{ref}", "client"], ["show", "{ref}"],
    ["merge", "{ref}", ANNA], ["merge", ANNA, "{ref}"],
]


@pytest.mark.parametrize("command", COMMANDS_WITH_A_CONTACT, ids=lambda c: "-".join(c[:2]))
def test_an_unknown_contact_is_a_usage_error_with_close_matches(
        ledger: ImapAccount, capsys: Capsys, command: list[str]) -> None:
    line = fails(capsys, *[a.format(ref="anna@studio.exmaple") for a in command])
    assert line == ("error: no contact has the address anna@studio.exmaple; did you mean "
                    "anna@studio.example (Anna Schmidt)?")


def test_unknown_contacts_say_what_to_do(ledger: ImapAccount, capsys: Capsys) -> None:
    assert fails(capsys, "show", "999") == \
        "error: no contact has the id 999; `followup contacts` lists them"
    # A part of a name or address is not enough, but it finds the candidates.
    line = fails(capsys, "snooze", "anna", "30d")
    assert line.startswith("error: 'anna' is neither a contact id nor an address; did you mean ")
    assert ANNA in line
    assert ANNA_GMAIL in line
    assert fails(capsys, "ignore", "zed@nowhere.example") == \
        "error: no contact has the address zed@nowhere.example; `followup contacts` lists everyone"
    assert "give a contact id or an address" in fails(capsys, "show", " ")


def test_your_own_address_is_never_a_contact(ledger: ImapAccount, capsys: Capsys) -> None:
    assert "is your own address" in fails(capsys, "snooze", "Me@Example.org", "30d")
    assert "is your own address" in fails(capsys, "split", ME)


def test_missing_arguments_are_usage_errors(ledger: ImapAccount, capsys: Capsys) -> None:
    for args in (["snooze", ANNA], ["cadence", ANNA], ["tag", ANNA], ["merge", ANNA], ["show"],
                 ["split"], ["due", "--nope"]):
        code, _, err = run_cli(["--now", NOW, *args], capsys)
        assert code == 2, args
        assert "Traceback" not in err
        assert "Error:" in err


# --------------------------------------------------------------------------- snooze


@pytest.mark.parametrize(("now", "duration", "until"), [
    (NOW, "30d", "2026-07-15"),
    (NOW, "6w", "2026-07-27"),
    (NOW, "3m", "2026-09-15"),
    (NOW, "1D", "2026-06-16"),
    (NOW, "2026-12-24", "2026-12-24"),
    (NOW, "2026-06-15", "2026-06-15"),  # today: out of today's digest only
    # 23:30 UTC is already the next day in Berlin: durations count from the local day.
    ("2026-06-14T23:30:00Z", "1d", "2026-06-16"),
    # Calendar months stay inside the month.
    ("2026-01-31T12:00:00Z", "1m", "2026-02-28"),
    ("2027-12-31T12:00:00Z", "2m", "2028-02-29"),
])
def test_snooze_until_a_local_day(ledger: ImapAccount, capsys: Capsys, now: str,
                                  duration: str, until: str) -> None:
    out = ok(capsys, "snooze", ANNA, duration, now=now)
    assert out == f"snoozed Anna Schmidt <{ANNA}> until {until}\n"
    anna = records(capsys, now=now)[ANNA]
    assert anna["snooze_until"] == until
    assert anna["status"] == "snoozed"


def test_a_snooze_ends_after_its_last_day(ledger: ImapAccount, capsys: Capsys) -> None:
    ok(capsys, "snooze", ANNA, "2026-06-20")
    assert records(capsys, now="2026-06-20T21:00:00Z")[ANNA]["status"] == "snoozed"
    assert records(capsys, now="2026-06-20T22:30:00Z")[ANNA]["status"] == "overdue"  # 21st


@pytest.mark.parametrize(("duration", "words"), [
    ("0d", "a snooze of 0d ends before it starts"),
    ("0m", "a snooze of 0m ends before it starts"),
    ("2026-06-14", "2026-06-14 is in the past (today is 2026-06-15)"),
    ("2026-02-30", "2026-02-30 is not a day in the calendar"),
    ("soon", "'soon' is not a snooze duration; use e.g. 30d, 6w, 3m (months) or a date"),
    ("3y", "'3y' is not a snooze duration"),
    ("24.12.2026", "'24.12.2026' is not a snooze duration"),
    ("99999999d", "a snooze of 99999999d ends after the year 9999"),
])
def test_snooze_errors(ledger: ImapAccount, capsys: Capsys, duration: str, words: str) -> None:
    assert words in fails(capsys, "snooze", ANNA, duration)
    assert records(capsys)[ANNA]["snooze_until"] is None


def test_unsnooze(ledger: ImapAccount, capsys: Capsys) -> None:
    ok(capsys, "snooze", ANNA, "30d")
    assert ok(capsys, "unsnooze", ANNA) == \
        f"unsnoozed Anna Schmidt <{ANNA}> (the snooze ran until 2026-07-15)\n"
    assert records(capsys)[ANNA]["status"] == "overdue"
    assert ok(capsys, "unsnooze", ANNA) == \
        f"Anna Schmidt <{ANNA}> was not snoozed; nothing changed\n"


# --------------------------------------------------------------------------- ignore


def test_ignore_and_unignore(ledger: ImapAccount, capsys: Capsys) -> None:
    anna = str(contact_id(capsys, ANNA))
    assert ok(capsys, "ignore", anna).startswith(f"ignored Anna Schmidt <{ANNA}>")
    assert records(capsys)[ANNA]["status"] == "ignored"
    assert records(capsys)[ANNA]["due_date"] is None
    assert ok(capsys, "ignore", ANNA) == f"Anna Schmidt <{ANNA}> was already ignored; " \
        "nothing changed\n"
    assert ok(capsys, "unignore", ANNA) == \
        f"unignored Anna Schmidt <{ANNA}>; now every 90 days (default 90 days)\n"
    assert records(capsys)[ANNA]["status"] == "overdue"
    assert ok(capsys, "unignore", ANNA).startswith(f"Anna Schmidt <{ANNA}> was not ignored by you")


def test_unignore_says_when_a_rule_still_ignores(mailbox: ImapAccount, tmp_path: Path,
                                                 capsys: Capsys,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    scanned_with(monkeypatch, mailbox, tmp_path, capsys,
                 '[[policy.rule]]\nmatch = "*@bigcorp.example"\nignore = true\n')
    bob = contact_id(capsys, BOB)
    ok(capsys, "ignore", BOB)
    out = ok(capsys, "unignore", BOB)
    assert out == (f"unignored Bob Baker <{BOB}>; but rule *@bigcorp.example still ignores "
                   f"them: remove that rule, or give them a cadence of their own "
                   f"(`followup cadence {bob} DAYS`)\n")
    assert records(capsys)[BOB]["status"] == "ignored"
    # A cadence of their own brings them back from the ignored domain.
    assert "every 10 days (your setting for this contact)" in ok(capsys, "cadence", BOB, "10")
    assert records(capsys)[BOB]["status"] == "waiting"  # Bob wrote last, 13 days ago


# --------------------------------------------------------------------------- cadence


def test_cadence_and_back_to_default(mailbox: ImapAccount, tmp_path: Path,
                                     capsys: Capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    scanned_with(monkeypatch, mailbox, tmp_path, capsys,
                 '[[policy.rule]]\nmatch = "*@studio.example"\ncadence_days = 200\n')
    assert records(capsys)[ANNA]["status"] == "ok"  # 2026-01-10 + 200 days
    out = ok(capsys, "cadence", ANNA, "30")
    assert out == (f"cadence of Anna Schmidt <{ANNA}>: every 30 days (your setting for this "
                   "contact); was every 200 days (rule *@studio.example)\n")
    anna = records(capsys)[ANNA]
    assert (anna["cadence_days"], anna["due_date"], anna["status"]) == (30, "2026-02-09", "overdue")
    assert "every 45 days" in ok(capsys, "cadence", ANNA, "45d")
    out = ok(capsys, "cadence", ANNA, "Default")
    assert out.startswith(f"cadence of Anna Schmidt <{ANNA}>: every 200 days "
                          "(rule *@studio.example); was every 45 days")
    assert records(capsys)[ANNA]["cadence_days"] == 200


@pytest.mark.parametrize(("days", "words"), [
    ("0", "a cadence of 0 days is not a cadence"),
    ("often", "'often' is not a number of days; give e.g. 45, or `default`"),
    ("3m", "'3m' is not a number of days"),
    ("36500", "a cadence of 36500 days is more than 3650"),
])
def test_cadence_errors(ledger: ImapAccount, capsys: Capsys, days: str, words: str) -> None:
    assert words in fails(capsys, "cadence", ANNA, days)
    assert records(capsys)[ANNA]["cadence_days"] == 90


def test_a_negative_cadence_is_refused(ledger: ImapAccount, capsys: Capsys) -> None:
    code, _, err = run_cli(["--now", NOW, "cadence", ANNA, "-5"], capsys)
    assert code == 2
    assert "Traceback" not in err


# --------------------------------------------------------------------------- tags


def test_tags_and_a_tag_rule(mailbox: ImapAccount, tmp_path: Path, capsys: Capsys,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    scanned_with(monkeypatch, mailbox, tmp_path, capsys,
                 '[[policy.rule]]\ntag = "client"\ncadence_days = 30\n')
    out = ok(capsys, "tag", BOB, "Client", "family,friends")
    assert out == (f"tags of Bob Baker <{BOB}>: client, family, friends; cadence every 30 days "
                   "(rule tag:client)\n")
    bob = records(capsys)[BOB]
    assert (bob["tags"], bob["due_date"]) == (["client", "family", "friends"], "2026-07-02")
    assert ok(capsys, "tag", BOB, "client").startswith(
        f"Bob Baker <{BOB}> already had the tag(s) client\n")
    out = ok(capsys, "tag", "--remove", BOB, "client", "stranger")
    assert out == (f"Bob Baker <{BOB}> did not have the tag(s) stranger\n"
                   f"tags of Bob Baker <{BOB}>: family, friends; cadence every 90 days "
                   "(default 90 days)\n")
    assert records(capsys)[BOB]["tags"] == ["family", "friends"]


@pytest.mark.parametrize(("tags", "words"), [
    (["key client"], "tag 'key client' has a space in it; a tag is one word"),
    ([","], "give at least one tag"),
])
def test_tag_errors(ledger: ImapAccount, capsys: Capsys, tags: list[str], words: str) -> None:
    assert words in fails(capsys, "tag", BOB, *tags)
    assert records(capsys)[BOB]["tags"] == []


# --------------------------------------------------------------------------- merge and split


def test_merge_keeps_the_first_and_its_id_names_both(ledger: ImapAccount,
                                                     capsys: Capsys) -> None:
    anna, gmail = contact_id(capsys, ANNA), contact_id(capsys, ANNA_GMAIL)
    ok(capsys, "snooze", ANNA_GMAIL, "2026-07-01")
    ok(capsys, "tag", ANNA_GMAIL, "friends")
    ok(capsys, "tag", ANNA, "client")
    out = ok(capsys, "merge", ANNA, "Anna.Schmidt@googlemail.com")
    assert out == (f"merged Anna Schmidt <{ANNA_GMAIL}> (id {gmail}) into Anna Schmidt <{ANNA}> "
                   f"(id {anna})\naddresses of contact {anna}: {ANNA}, {ANNA_GMAIL}\n")
    merged = records(capsys)[ANNA]
    assert merged["id"] == anna
    assert sorted(merged["addresses"]) == [ANNA, ANNA_GMAIL]
    assert (merged["messages_in"], merged["messages_out"]) == (2, 2)
    assert merged["tags"] == ["client", "friends"]
    assert merged["snooze_until"] == "2026-07-01"  # anna had none: the other's fills in
    # The merged-away id still names the person.
    assert ok(capsys, "show", str(gmail)).startswith(f"Anna Schmidt <{ANNA_GMAIL}> (id {anna})")
    assert f"merged ids: {gmail}" in ok(capsys, "show", ANNA)
    assert "already one contact" in fails(capsys, "merge", ANNA, str(gmail))
    assert "already one contact" in fails(capsys, "merge", str(anna), str(anna))


def test_split_gives_an_address_its_own_contact_again(ledger: ImapAccount,
                                                      capsys: Capsys) -> None:
    anna = contact_id(capsys, ANNA)
    ok(capsys, "merge", ANNA, ANNA_GMAIL)
    ok(capsys, "cadence", ANNA, "30")
    out = ok(capsys, "split", "anna.schmidt@GMAIL.com")
    new = contact_id(capsys, ANNA_GMAIL)
    assert new != anna
    assert out.splitlines()[0].startswith(f"split {ANNA_GMAIL} off Anna Schmidt <")
    assert out.splitlines()[0].endswith(f"(id {anna}): now contact {new}, "
                                        f"Anna Schmidt <{ANNA_GMAIL}>")
    assert out.splitlines()[1] == f"Anna Schmidt <{ANNA}> keeps: {ANNA}"
    after = records(capsys)
    assert after[ANNA]["cadence_days"] == 30  # the decisions stay with the contact
    assert after[ANNA_GMAIL]["cadence_days"] == 90  # the split-off address starts afresh
    assert "already a contact of its own" in fails(capsys, "split", ANNA)
    assert "split takes an address, not an id" in fails(capsys, "split", str(anna))
    assert "did you mean anna@studio.example" in fails(capsys, "split", "anna@studio.exmaple")
    assert "'anna' is neither a contact id nor an address" in fails(capsys, "split", "anna")


# --------------------------------------------------------------------------- show


def test_show_tells_everything_about_a_contact(ledger: ImapAccount, capsys: Capsys) -> None:
    anna = contact_id(capsys, ANNA)
    ok(capsys, "merge", ANNA, ANNA_GMAIL)
    ok(capsys, "tag", ANNA, "client")
    ok(capsys, "cadence", ANNA, "100")
    lines = ok(capsys, "show", ANNA).splitlines()
    assert lines[0] == f"Anna Schmidt <{ANNA_GMAIL}> (id {anna})"
    assert lines[1:9] == [
        f"  addresses:  {ANNA}, {ANNA_GMAIL}",
        "  status:     overdue: last exchange 132 days ago (out), past the 100-day line "
        "(your setting for this contact) on 2026-05-14",
        "              number 2 of 2 on today's due list; one of today's picks",  # Bob: 1
        "  cadence:    every 100 days (your setting for this contact)",
        # Local time, with the subject and the folder of the newest mail each way.
        f"  last in:    2026-02-01 11:00 CET from {ANNA_GMAIL}: 'Private' in INBOX",
        f"  last out:   2026-02-03 11:00 CET to {ANNA_GMAIL}: 'Re: Private' in Sent",
        "  messages:   2 in, 2 out",
        "  tags:       client",
    ]
    assert "  decisions:  cadence 100 days" in lines
    assert "  recent exchanges:" in lines
    assert lines[-1] == f"    2026-01-05 11:00 CET  ← {ANNA}  'Shoot in May?'  INBOX"


def test_show_explains_snoozed_ignored_and_not_yet_contacts(ledger: ImapAccount,
                                                            capsys: Capsys) -> None:
    ok(capsys, "snooze", BOB, "2026-07-01")
    ok(capsys, "ignore", ANNA)
    bob = ok(capsys, "show", BOB)
    assert "  status:     snoozed until 2026-07-01; last exchange 13 days ago (in)" in bob
    assert "  decisions:  snoozed until 2026-07-01" in bob
    anna = ok(capsys, "show", ANNA)
    assert "  status:     ignored (your setting for this contact)" in anna
    assert "  cadence:    never: ignored (your setting for this contact)" in anna
    cold = ok(capsys, "show", COLD)
    assert "  status:     not a contact yet: you have only written to them " \
        "([policy] two_way = true)" in cold
    assert "  would be:   overdue:" in cold
    assert "  last in:    never" in cold


# --------------------------------------------------------------------------- contacts


def test_contacts_table_shows_snoozed_and_ignored(ledger: ImapAccount, capsys: Capsys,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    ok(capsys, "snooze", BOB, "2026-07-01")
    ok(capsys, "ignore", ANNA)
    table = ok(capsys, "contacts")
    row = {word: line for line in table.splitlines() for word in line.split()
           if word in (ANNA, BOB)}
    assert "snoozed until 2026-07-01" in row[BOB]
    assert "ignored" in row[ANNA]
    only = records_with_status(capsys, "IGNORED, snoozed")
    assert only == {ANNA: "ignored", BOB: "snoozed"}


def records_with_status(capsys: Capsys, wanted: str) -> dict[str, str]:
    out = ok(capsys, "contacts", "--json", "--status", wanted)
    return {r["email"]: r["status"] for r in json.loads(out)}


@pytest.mark.parametrize(("value", "words"), [
    ("nope", "--status nope is not a status; use any of: ok, due, overdue, waiting, snoozed, "
             "ignored"),
    ("due,later", "--status later is not a status"),
    (",", "--status ',' names no status"),
    ("", "--status '' names no status"),
])
def test_contacts_status_filter_errors(ledger: ImapAccount, capsys: Capsys, value: str,
                                       words: str) -> None:
    assert words in fails(capsys, "contacts", "--status", value)


# --------------------------------------------------------------------------- kept for good


def test_decisions_survive_a_full_rescan(ledger: ImapAccount, capsys: Capsys) -> None:
    ok(capsys, "merge", ANNA, ANNA_GMAIL)
    ok(capsys, "snooze", ANNA, "3m")
    ok(capsys, "cadence", ANNA, "45")
    ok(capsys, "tag", BOB, "client")
    ok(capsys, "ignore", BOB)
    before = records(capsys)
    ok(capsys, "scan", "--full")
    assert records(capsys) == before
    assert before[ANNA] is before[ANNA_GMAIL]  # still one contact with both addresses
    assert (before[ANNA]["snooze_until"], before[ANNA]["cadence_days"]) == ("2026-09-15", 45)
    assert (before[BOB]["status"], before[BOB]["tags"]) == ("ignored", ["client"])
