"""Every server personality: the mailbox contract, the same ledger, doctor and the daily cycle.

A personality is a real server configured like a kind of mail host (tests/servers/):
standard Dovecot, a German host without SPECIAL-USE, Gmail with and without X-GM-EXT-1,
Exchange, pymap and Cyrus. `EXPECT` below is the compatibility table of the README; every
test here is parametrized over `personality_account`, so its ids name the personality
(e.g. ``test_same_ledger[exchange]``).
"""

from __future__ import annotations

import email
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest

from agent import service
from agent.auth import password_login
from agent.config import load_config
from agent.doctor import CAPABILITY_WORDS
from agent.mailbox.client import Mailbox
from tests.kit import (
    ME,
    expected_ledger,
    generated_folders,
    iso,
    ledger_of,
    message,
    plant,
    run_cli,
    write_config,
)
from tests.mailgen import generate
from tests.servers.account import ImapAccount
from tests.servers.cyrus import Cyrus
from tests.servers.personalities import ALL_PERSONALITIES, PERSONALITIES

NOW = datetime(2026, 3, 1, 7, 30, tzinfo=UTC)  # 08:30 in Berlin
NOW_TEXT = "2026-03-01T07:30:00Z"


@dataclass(frozen=True)
class Expect:
    """What a personality is like, as followup sees it: one row of the compatibility table."""

    special_use: bool  # SPECIAL-USE in CAPABILITY
    flagged: bool  # its folders carry SPECIAL-USE flags (else found by name)
    condstore: bool
    qresync: bool
    gmail: bool  # X-GM-EXT-1: only All Mail is scanned
    appenduid: bool  # APPEND answers with the new UID (UIDPLUS APPENDUID)
    separator: str


EXPECT: dict[str, Expect] = {
    "standard": Expect(special_use=True, flagged=True, condstore=True, qresync=True,
                       gmail=False, appenduid=True, separator="/"),
    # Dovecot advertises SPECIAL-USE even when no folder has a flag.
    "german": Expect(special_use=True, flagged=False, condstore=True, qresync=True,
                     gmail=False, appenduid=True, separator="."),
    # An APPEND to a Dovecot virtual folder gets no APPENDUID (Gmail itself sends one).
    "gmail": Expect(special_use=True, flagged=True, condstore=True, qresync=False,
                    gmail=True, appenduid=False, separator="/"),
    "gmail-noext": Expect(special_use=True, flagged=True, condstore=True, qresync=False,
                          gmail=False, appenduid=False, separator="/"),
    "exchange": Expect(special_use=False, flagged=False, condstore=False, qresync=False,
                       gmail=False, appenduid=True, separator="/"),
    "pymap": Expect(special_use=False, flagged=False, condstore=False, qresync=False,
                    gmail=False, appenduid=True, separator="/"),
    "cyrus": Expect(special_use=True, flagged=True, condstore=True, qresync=True,
                    gmail=False, appenduid=True, separator="/"),
}

# Exchange Online's list after login, as the exchange personality must advertise it.
EXCHANGE_CAPABILITIES = {"IMAP4", "IMAP4REV1", "SASL-IR", "UIDPLUS", "ID", "UNSELECT",
                         "CHILDREN", "IDLE", "NAMESPACE", "MOVE"}


def _open(account: ImapAccount) -> Mailbox:
    return Mailbox.open(account.host, account.port, "none",
                        password_login(account.username, account.password), timeout=10)


def _expect(account: ImapAccount) -> Expect:
    return EXPECT[account.personality]


def cli_json(args: Sequence[str], capsys: pytest.CaptureFixture[str]) -> Any:
    code, out, err = run_cli(["--now", NOW_TEXT, *args], capsys)
    assert code == 0, f"followup {' '.join(args)} exited {code}: {out}{err}"
    return json.loads(out) if args[-1] == "--json" else out


# --------------------------------------------------------------------------- the table itself


def test_every_personality_has_a_row() -> None:
    assert set(EXPECT) == set(ALL_PERSONALITIES)
    assert {"standard", "german", "gmail", "gmail-noext", "exchange"} <= set(PERSONALITIES)


# --------------------------------------------------------------------------- mailbox contract


def test_capabilities(personality_account: ImapAccount) -> None:
    """What the server says after login: SPECIAL-USE, CONDSTORE, QRESYNC, X-GM-EXT-1, UIDPLUS."""
    want = _expect(personality_account)
    with _open(personality_account) as mailbox:
        caps = mailbox.capabilities
        assert ("SPECIAL-USE" in caps) is want.special_use
        assert ("CONDSTORE" in caps) is want.condstore
        assert ("QRESYNC" in caps) is want.qresync
        assert mailbox.is_gmail is want.gmail
        assert "UIDPLUS" in caps  # every personality has it; Gmail's APPENDUID is another matter
        if personality_account.personality == "exchange":
            assert caps == EXCHANGE_CAPABILITIES
        # No CONDSTORE: STATUS must not ask for HIGHESTMODSEQ (the server would say BAD).
        status = mailbox.status("INBOX")
        assert (status.highestmodseq is not None) is want.condstore


def test_folder_roles(personality_account: ImapAccount) -> None:
    """Sent/Drafts/Trash/Junk found by flag or by name; what a scan reads."""
    account, want = personality_account, _expect(personality_account)
    with _open(account) as mailbox:
        roles = mailbox.roles()
        assert (roles.sent, roles.drafts, roles.trash, roles.junk) == (
            account.sent_folder, account.drafts_folder, account.trash_folder,
            account.junk_folder)
        how = "flag" if want.flagged else "name"
        assert {roles.how[r] for r in ("sent", "drafts", "trash", "junk")} == {how}
        assert roles.all == account.all_folder
        assert {f.delimiter for f in mailbox.list_folders()} == {want.separator}
        scan = mailbox.folders_to_scan()
    if want.gmail:
        assert scan == [account.all_folder]
        return
    assert "INBOX" in scan and account.sent_folder in scan
    assert not {account.drafts_folder, account.trash_folder, account.junk_folder} & set(scan)
    if account.all_folder:
        assert account.all_folder in scan  # without X-GM-EXT-1: All Mail is one folder more


def test_status_uids_and_headers(personality_account: ImapAccount,
                                 caplog: pytest.LogCaptureFixture) -> None:
    """STATUS, UID SEARCH above a UID, FETCH of headers; on Gmail in All Mail as well."""
    account = personality_account
    when = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)
    account.append_many([("INBOX", message(sender=f"p{n}@example.net", subject=f"Grüße {n}",
                                           when=when), ("\\Seen",), when) for n in range(3)])
    folders = ["INBOX", *([account.all_folder] if account.all_folder else [])]
    with _open(account) as mailbox:
        for folder in folders:
            status = mailbox.status(folder)
            assert status.messages == 3 and status.uidnext > 3 - 1
            mailbox.select(folder)
            uids = list(mailbox.uids_after(0))
            assert len(uids) == 3
            assert list(mailbox.uids_after(uids[-1])) == []
            assert list(mailbox.uids_after(uids[0])) == uids[1:]
            fetched = mailbox.fetch_headers(uids)
            assert [f.uid for f in fetched] == uids
            assert all(f.internaldate == when for f in fetched)
            assert b"Subject: =?utf-8?" in fetched[0].header or "Grüße".encode() in \
                fetched[0].header
            assert all("\\seen" in f.flags for f in fetched)
    refused = [r for r in caplog.records if "refused X-GM-MSGID" in r.getMessage()]
    assert len(refused) == (1 if _expect(account).gmail else 0)


def test_append_draft(personality_account: ImapAccount) -> None:
    """APPEND with \\Draft \\Seen: the UID when the server says it, else found by Message-ID."""
    account, want = personality_account, _expect(personality_account)
    draft = message(sender=f"Mia Example <{ME}>", to=["Jürgen <j@example.de>"],
                    subject="Entwurf für Jürgen", message_id="draft-1@example.org")
    with _open(account) as mailbox:
        uid = mailbox.append(account.drafts_folder, draft, flags=["\\Draft", "\\Seen"])
        assert (uid is not None) is want.appenduid
        found = mailbox.search(account.drafts_folder,
                               ["HEADER", "Message-ID", "draft-1@example.org"])
        assert len(found) == 1
        assert uid is None or found == [uid]
        (fetched,) = mailbox.fetch_headers(found)
        assert {"\\draft", "\\seen"} <= fetched.flags
        if account.all_folder:  # Gmail: drafts are in All Mail too, still flagged \Draft
            in_all = mailbox.search(account.all_folder, ["DRAFT"])
            assert len(in_all) == 1
    assert "Jürgen".encode() in account.fetch_raw(account.drafts_folder)[0]


def test_x_gm_msgid_refused_is_asked_once(make_account: Callable[[str], ImapAccount],
                                          monkeypatch: pytest.MonkeyPatch,
                                          caplog: pytest.LogCaptureFixture) -> None:
    """A server with X-GM-EXT-1 that answers BAD to X-GM-MSGID: retried without it, once."""
    account = make_account("gmail")
    account.append("INBOX", message(sender="a@example.net"))
    asked: list[list[str]] = []
    original = Mailbox._raw_fetch

    def recording(self: Mailbox, uids: Sequence[int], items: Sequence[str]) -> list[Any]:
        asked.append(list(items))
        return original(self, uids, items)

    monkeypatch.setattr(Mailbox, "_raw_fetch", recording)
    with caplog.at_level(logging.WARNING, logger="agent.mailbox"), _open(account) as mailbox:
        assert mailbox.is_gmail
        mailbox.select(account.all_folder or "")
        first = mailbox.fetch_headers([1])
        again = mailbox.fetch_headers([1])
    assert [("X-GM-MSGID" in items) for items in asked] == [True, False, False]
    assert first == again and first[0].gm_msgid is None
    assert b"From: a@example.net" in first[0].header
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "advertises X-GM-EXT-1" in warnings[0]


# --------------------------------------------------------------------------- Gmail's copies


@pytest.mark.parametrize("personality", ["gmail", "gmail-noext"])
def test_gmail_one_message_in_many_folders_counts_once(
        personality: str, make_account: Callable[[str], ImapAccount], tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """INBOX + a label + All Mail (+ Starred): one exchange; Drafts/Spam/Trash never count."""
    account = make_account(personality)
    account.create_folder("Kunden")
    then = NOW - timedelta(days=20)
    received = message(sender="Jana Novak <jana@example.cz>", subject="Vertrag", when=then,
                       message_id="vertrag@example.cz")
    answer = message(sender=f"Mia Example <{ME}>", to=["jana@example.cz"], subject="Re: Vertrag",
                     when=then + timedelta(hours=1), message_id="re-vertrag@example.org")
    account.append_many([
        ("INBOX", received, ("\\Seen", "\\Flagged"), then),
        ("Kunden", received, ("\\Seen",), then),
        (account.sent_folder, answer, ("\\Seen",), then + timedelta(hours=1)),
        (account.drafts_folder, message(sender=ME, to=["jana@example.cz"], subject="Entwurf",
                                        when=NOW - timedelta(days=1)), ("\\Draft",), None),
        (account.junk_folder, message(sender="jana@example.cz", subject="Spam?",
                                      when=NOW - timedelta(days=2)), (), None),
        (account.trash_folder, message(sender="jana@example.cz", subject="Gelöscht",
                                       when=NOW - timedelta(days=3)), (), None),
    ])
    assert account.all_folder == "[Gmail]/All Mail"
    # All Mail: both copies of the received mail, the answer, the draft; not Spam or Trash.
    assert len(account.folder_uids(account.all_folder)) == 4
    assert len(account.folder_uids("[Gmail]/Starred")) == 1

    write_config(monkeypatch, account, tmp_path)
    cli_json(["scan"], capsys)
    (jana,) = cli_json(["contacts", "--json"], capsys)
    assert (jana["email"], jana["messages_in"], jana["messages_out"]) == (
        "jana@example.cz", 1, 1)
    assert (jana["last_subject"], jana["last_direction"]) == ("Re: Vertrag", "out")
    assert jana["last_exchange"] == iso(then + timedelta(hours=1))


# --------------------------------------------------------------------------- the same ledger


def test_same_ledger(personality_account: ImapAccount, tmp_path: Path,
                     capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """mailgen's adversarial mailbox, on this layout: exactly the ledger it must produce."""
    account = personality_account
    planted = generate(7, people=12, now=NOW, folders=generated_folders(account))
    plant(account, planted)
    write_config(monkeypatch, account, tmp_path, aliases=planted.aliases)
    cli_json(["scan"], capsys)
    contacts = cli_json(["contacts", "--json"], capsys)
    got = ledger_of(contacts)
    assert len(got) == len(contacts), "two contacts share a primary address"
    want = expected_ledger(planted.ledger(two_way=True))
    assert sorted(got) == sorted(want)
    wrong = {key: {"got": got[key], "want": want[key]} for key in want if got[key] != want[key]}
    assert not wrong, json.dumps(wrong, indent=1, ensure_ascii=False)
    assert not {a for c in contacts for a in c["addresses"]} & planted.never_contacts

    # Nothing changed: the second scan finds every folder unchanged and reads nothing.
    config = load_config(tmp_path / "config.toml")
    again = service.run_scan(config, now=NOW)
    assert again.fetched == 0 and sorted(again.unchanged) == sorted(again.folders)

    # Two new messages: the next scan sees them (on Gmail through All Mail's new UIDs).
    then = NOW - timedelta(hours=3)
    account.append_many([
        ("INBOX", message(sender="Neue Kundin <neu@example.de>", subject="Anfrage", when=then,
                          message_id="neu-1@example.de"), (), then),
        (account.sent_folder, message(sender=ME, to=["neu@example.de"], subject="Re: Anfrage",
                                      when=then + timedelta(minutes=5),
                                      message_id="neu-2@example.org"), ("\\Seen",),
         then + timedelta(minutes=5)),
    ])
    third = service.run_scan(config, now=NOW)
    assert third.new_exchanges == 2
    contacts = cli_json(["contacts", "--json"], capsys)
    newcomer = [(c["messages_in"], c["messages_out"], c["last_subject"]) for c in contacts
                if c["email"] == "neu@example.de"]
    assert newcomer == [(1, 1, "Re: Anfrage")]


def test_stock_cyrus_turns_8bit_header_bytes_into_x(cyrus_server: Cyrus) -> None:
    """Why the cyrus personality sets munge8bit: off: stock Cyrus rewrites raw UTF-8 in
    headers on APPEND, so such names reach followup as "BjXXrn" (nothing a client can undo)."""
    with Cyrus(munge8bit=True) as stock:
        root = stock.root
        account = stock.new_account()
        account.append("INBOX", message(sender="Björn <bjoern@example.de>", subject="Grüße"))
        (raw,) = account.fetch_raw("INBOX")
    assert b"From: BjXXrn <bjoern@example.de>" in raw and b"Subject: GrXXXXe" in raw
    assert root is not None and not root.exists()  # stopped and cleaned up
    assert cyrus_server.munge8bit is False


# --------------------------------------------------------------------------- doctor


def test_doctor(personality_account: ImapAccount, tmp_path: Path,
                capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Capabilities that matter, in words, and the folders doctor picked."""
    account, want = personality_account, _expect(personality_account)
    write_config(monkeypatch, account, tmp_path)
    code, out, err = run_cli(["doctor"], capsys)
    assert code == 0, out + err
    has = {"SPECIAL-USE": want.special_use, "CONDSTORE": want.condstore, "UIDPLUS": True,
           "X-GM-EXT-1": want.gmail}
    for capability, present in has.items():
        if capability == "SPECIAL-USE" and present and not want.flagged:
            # Advertised, but no folder carries a flag: doctor must not claim it marks them.
            assert CAPABILITY_WORDS[capability] not in out
            assert "advertises SPECIAL-USE but flags no folder" in out
            continue
        assert (CAPABILITY_WORDS[capability] in out) is present, capability
    lacks = [c for c in ("SPECIAL-USE", "CONDSTORE", "UIDPLUS") if not has[c]]
    if lacks:
        assert f"server lacks {', '.join(lacks)}; followup works without them" in out
    else:
        assert "server lacks" not in out
    how = "flag" if want.flagged else "name"
    for role, folder in (("Sent", account.sent_folder), ("Drafts", account.drafts_folder),
                         ("Junk", account.junk_folder), ("Trash", account.trash_folder),
                         ("All", account.all_folder)):
        if folder is not None:
            assert f"{role} folder: {folder!r} (found by {how})" in out
    (scan_line,) = [line for line in out.splitlines() if "will scan" in line]
    if want.gmail:
        assert scan_line.endswith(f"will scan 1 folder(s): {account.all_folder}")
    else:
        assert "INBOX" in scan_line and account.sent_folder in scan_line
        assert account.drafts_folder not in scan_line
    assert not [line for line in out.splitlines() if line.startswith("FAIL")]


# --------------------------------------------------------------------------- the daily cycle


def ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


# Three people overdue (last exchange ~100 days ago), one recent: three picks, three drafts.
CYCLE_PEOPLE = (("Jürgen Müller", "juergen@example.de", 120, 110),
                ("Anna Smith", "anna@example.co.uk", 130, 100),
                ("Carla Rossi", "carla@example.net", 98, 96),
                ("Bob Recent", "bob@example.net", 10, 9))


def _seed_cycle(account: ImapAccount) -> None:
    items: list[tuple[str, bytes, tuple[str, ...], datetime | None]] = []
    for name, address, wrote, answered in CYCLE_PEOPLE:
        local = address.split("@")[0]
        items.append(("INBOX", message(sender=f"{name} <{address}>", subject=f"Hallo {local}",
                                       when=ago(wrote), message_id=f"in-{local}@example"),
                      ("\\Seen",), ago(wrote)))
        items.append((account.sent_folder, message(
            sender=f"Mia Example <{ME}>", to=[f"{name} <{address}>"],
            subject=f"Re: Hallo {local}", when=ago(answered), message_id=f"out-{local}@example"),
            ("\\Seen",), ago(answered)))
    account.append_many(items)


def _messages(account: ImapAccount, folder: str) -> list[EmailMessage]:
    parsed = [email.message_from_bytes(raw, policy=default_policy)
              for raw in account.fetch_raw(folder)]
    return [m for m in parsed if isinstance(m, EmailMessage)]


def test_daily_cycle(personality_account: ImapAccount, tmp_path: Path,
                     capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """scan → digest into INBOX → three drafts in Drafts; a second cycle adds nothing, and
    neither the digest nor the drafts change the ledger (on Gmail they are in All Mail too)."""
    account = personality_account
    _seed_cycle(account)
    config = load_config(write_config(monkeypatch, account, tmp_path, extra='delivery = "imap"\n'))
    cli_json(["scan"], capsys)
    before = cli_json(["contacts", "--json"], capsys)

    result = service.run_cycle(config, NOW)
    assert result.digest is not None and result.digest.delivered
    assert result.drafts is not None and len(result.drafts.created) == 3
    again = service.run_cycle(config, NOW + timedelta(hours=2))
    assert again.digest is not None and not again.digest.delivered
    assert again.drafts is not None and again.drafts.created == []

    digests = [m for m in _messages(account, "INBOX") if m["X-Followup-Digest"]]
    assert len(digests) == 1
    assert [a.addr_spec for a in digests[0]["To"].addresses] == [ME]
    drafts = _messages(account, account.drafts_folder)
    overdue = {address for _name, address, wrote, _answered in CYCLE_PEOPLE if wrote > 90}
    assert sorted(m["To"].addresses[0].addr_spec for m in drafts) == sorted(overdue)
    assert all(m["From"].addresses[0].addr_spec == ME for m in drafts)
    if account.all_folder:
        assert len(_messages(account, account.all_folder)) == 2 * len(CYCLE_PEOPLE) + 1 + 3

    cli_json(["scan"], capsys)
    after = cli_json(["contacts", "--json"], capsys)
    assert ledger_of(after) == ledger_of(before)
