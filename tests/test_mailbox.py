"""The mailbox contract: the same behaviour on Dovecot and on pymap, plus TLS and folder names."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agent.auth import password_login
from agent.errors import ConfigError, MailboxError
from agent.mailbox.client import Mailbox
from agent.mailbox.folders import Folder, choose_scan_folders, discover_roles
from tests.kit import message, open_mailbox
from tests.servers.account import ImapAccount

_open = open_mailbox


def test_login_and_folder_roles(imap_account: ImapAccount) -> None:
    with _open(imap_account) as mailbox:
        roles = mailbox.roles()
        assert roles.sent == imap_account.sent_folder
        assert roles.drafts == imap_account.drafts_folder
        assert roles.trash == imap_account.trash_folder
        assert roles.junk == imap_account.junk_folder
        scan = mailbox.folders_to_scan()
        assert "INBOX" in scan
        assert imap_account.sent_folder in scan
        for skipped in (imap_account.drafts_folder, imap_account.trash_folder,
                        imap_account.junk_folder):
            assert skipped not in scan


def test_special_use_flags_found_on_dovecot(dovecot_account: ImapAccount) -> None:
    with _open(dovecot_account) as mailbox:
        roles = mailbox.roles()
        assert roles.how["sent"] == "flag"
        assert roles.how["drafts"] == "flag"
        assert "SPECIAL-USE" in mailbox.capabilities


def test_status_search_and_fetch_headers(imap_account: ImapAccount) -> None:
    when = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)
    for n in range(5):
        imap_account.append("INBOX", message(sender=f"p{n}@example.net", subject=f"S{n}"),
                            when=when)
    with _open(imap_account) as mailbox:
        status = mailbox.status("INBOX")
        assert status.messages == 5
        assert status.uidnext > 5 - 1
        mailbox.select("INBOX")
        uids = list(mailbox.uids_after(0))
        assert len(uids) == 5
        # `UID n:*` above every UID still answers the last message: it must be filtered.
        assert list(mailbox.uids_after(uids[-1])) == []
        assert list(mailbox.uids_after(uids[2])) == uids[3:]
        fetched = mailbox.fetch_headers(uids)
        assert [f.uid for f in fetched] == uids
        first = fetched[0]
        assert b"From: p0@example.net" in first.header
        assert b"Subject: S0" in first.header
        assert b"Hi." not in first.header  # never the body
        assert first.internaldate is not None
        assert first.internaldate.tzinfo is not None
        assert first.internaldate == when


def test_append_draft_returns_uid(imap_account: ImapAccount) -> None:
    with _open(imap_account) as mailbox:
        uid = mailbox.append(imap_account.drafts_folder, message(sender="me@example.org",
                             to=["x@example.net"], subject="Entwurf für Jürgen"),
                             flags=["\\Draft", "\\Seen"])
        assert uid is not None  # both servers have UIDPLUS
        mailbox.select(imap_account.drafts_folder)
        fetched = mailbox.fetch_headers([uid])
        assert "\\draft" in fetched[0].flags
    assert "Jürgen".encode() in imap_account.fetch_raw(imap_account.drafts_folder)[0]


def test_german_host_folders_by_name(make_account: object) -> None:
    account = make_account("german")  # type: ignore[operator]
    with _open(account) as mailbox:
        roles = mailbox.roles()
        assert roles.sent == "INBOX.Gesendet"
        assert roles.drafts == "INBOX.Entwürfe"
        assert roles.trash == "INBOX.Papierkorb"
        assert roles.junk == "INBOX.Spam"
        assert roles.how["drafts"] == "name"
        assert "INBOX.Entwürfe" not in mailbox.folders_to_scan()


def test_tls_verified_with_ca_file(dovecot_account: ImapAccount) -> None:
    assert dovecot_account.ca_file
    with _open(dovecot_account, "ssl", ca_file=Path(dovecot_account.ca_file)) as mailbox:
        assert mailbox.roles().sent
    with _open(dovecot_account, "starttls", ca_file=Path(dovecot_account.ca_file)) as mailbox:
        assert mailbox.roles().sent


def test_untrusted_certificate_is_refused(dovecot_account: ImapAccount) -> None:
    with pytest.raises(MailboxError, match=r"could not be verified.*ca_file"):
        _open(dovecot_account, "ssl")
    with pytest.raises(MailboxError, match="could not be verified"):
        _open(dovecot_account, "starttls")


def test_starttls_not_offered_is_refused(pymap_account: ImapAccount) -> None:
    with pytest.raises(MailboxError, match="does not offer STARTTLS"):
        _open(pymap_account, "starttls")


def test_wrong_password_and_closed_port(dovecot_account: ImapAccount) -> None:
    with pytest.raises(MailboxError, match=r"login as .* failed") as info:
        Mailbox.open("127.0.0.1", dovecot_account.port, "none",
                     password_login(dovecot_account.username, "wrong-password-123"), timeout=10)
    assert "wrong-password-123" not in str(info.value)
    from tests.servers.base import free_port

    with pytest.raises(MailboxError, match="refused the connection"):
        Mailbox.open("127.0.0.1", free_port(), "none", password_login("u", "p"), timeout=5)


def test_a_refused_login_is_a_login_refused_error(dovecot_account: ImapAccount) -> None:
    from agent.errors import LoginRefused

    with pytest.raises(LoginRefused, match=r"login as .* failed"):
        Mailbox.open("127.0.0.1", dovecot_account.port, "none",
                     password_login(dovecot_account.username, "wrong-password-123"), timeout=10)


def test_plaintext_refused_off_loopback() -> None:
    with pytest.raises(ConfigError, match="plaintext"):
        Mailbox.open("imap.example.org", 143, "none", password_login("u", "p"))


def _folders(*specs: tuple[str, str]) -> list[Folder]:
    return [Folder(name, "/", frozenset(flags.split())) for name, flags in specs]


def test_discovery_prefers_flags_then_names() -> None:
    folders = _folders(("INBOX", ""), ("Sent Items", ""), ("Gesendete Elemente", "\\sent"),
                       ("Entwürfe", ""), ("Gelöschte Elemente", ""), ("Junk-E-Mail", ""),
                       ("Projekte/Sent", ""))
    roles = discover_roles(folders)
    assert roles.sent == "Gesendete Elemente"
    assert roles.drafts == "Entwürfe"
    assert roles.trash == "Gelöschte Elemente"
    assert roles.junk == "Junk-E-Mail"


def test_gmail_scans_only_all_mail() -> None:
    folders = _folders(("INBOX", ""), ("[Gmail]", "\\noselect"), ("[Gmail]/All Mail", "\\all"),
                       ("[Gmail]/Sent Mail", "\\sent"), ("[Gmail]/Spam", "\\junk"),
                       ("[Gmail]/Drafts", "\\drafts"), ("Kunden", ""))
    roles = discover_roles(folders)
    assert choose_scan_folders(folders, roles, gmail=True) == ["[Gmail]/All Mail"]
    assert "[Gmail]/All Mail" in choose_scan_folders(folders, roles, gmail=False)


def test_google_mail_names_without_flags() -> None:
    folders = _folders(("INBOX", ""), ("[Google Mail]/Alle Nachrichten", ""),
                       ("[Google Mail]/Gesendet", ""), ("[Google Mail]/Entwürfe", ""),
                       ("[Google Mail]/Papierkorb", ""), ("[Google Mail]/Spam", ""))
    roles = discover_roles(folders)
    assert roles.all == "[Google Mail]/Alle Nachrichten"
    assert roles.sent == "[Google Mail]/Gesendet"
    assert roles.drafts == "[Google Mail]/Entwürfe"


def test_icloud_names() -> None:
    folders = _folders(("INBOX", ""), ("Sent Messages", ""), ("Deleted Messages", ""),
                       ("Drafts", ""), ("Junk", ""), ("Archive", ""))
    roles = discover_roles(folders)
    assert (roles.sent, roles.trash, roles.archive) == ("Sent Messages", "Deleted Messages",
                                                       ("Archive",))


def test_configured_folders_must_exist() -> None:
    folders = _folders(("INBOX", ""), ("Sent", "\\sent"))
    roles = discover_roles(folders)
    with pytest.raises(ConfigError, match=r"'Archiv'.*it has: INBOX, Sent"):
        choose_scan_folders(folders, roles, False, include=["INBOX", "Archiv"])
    assert choose_scan_folders(folders, roles, False, exclude=["Sent"]) == ["INBOX"]


def test_fast_fetch_parser_agrees_with_imapclient(imap_account: ImapAccount) -> None:
    """The fast path and imapclient's general parser read real responses identically."""
    from agent.mailbox.fetch import FETCH_BODY, parse_fetch_fast, parse_fetch_general

    imap_account.append("INBOX", message(sender='"Müller, Jürgen" <j@example.de>',
                                         subject="Grüße"), flags=["\\Seen", "\\Flagged"],
                        when=datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC))
    imap_account.append("INBOX", message(sender="a@example.net", message_id=None))
    with _open(imap_account) as mailbox:
        mailbox.select("INBOX")
        uids = mailbox.uids_after(0)
        raw = mailbox._raw_fetch(uids, ["INTERNALDATE", "FLAGS", FETCH_BODY])
        fast = parse_fetch_fast(raw)
        assert fast is not None
        assert fast == parse_fetch_general(raw)
        assert fast[uids[0]].flags - {"\\recent"} == {"\\seen", "\\flagged"}
        assert fast[uids[0]].internaldate == datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC)


def test_unusual_fetch_shapes_fall_back_to_the_general_parser() -> None:
    from agent.mailbox.fetch import parse_fetch_fast, parse_fetch_general

    header = b"From: a@example.net\r\nSubject: x\r\n\r\n"
    literal = (b'7 (UID 12 INTERNALDATE " 5-Jan-2026 10:00:00 +0100" FLAGS (\\Seen) '
               b"BODY[HEADER.FIELDS (FROM SUBJECT)] {" + str(len(header)).encode() + b"}",
               header)
    normal = [literal, b")"]
    unsolicited = [b"3 (FLAGS (\\Deleted))", literal, b")"]
    quoted = [b'8 (UID 13 FLAGS () INTERNALDATE " 5-Jan-2026 10:00:00 +0000" '
              b'BODY[HEADER.FIELDS (FROM)] "")']
    fast = parse_fetch_fast(normal)
    assert fast is not None and fast[12].header == header
    assert fast[12].internaldate == datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    assert parse_fetch_fast(unsolicited) == fast  # the stray FLAGS update is skipped
    assert parse_fetch_fast(quoted) is None
    general = parse_fetch_general(quoted)
    assert general[13].header == b""
    assert general[13].flags == frozenset()


def test_garbage_fetch_response_is_a_transient_error(dovecot_account: ImapAccount,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.errors import TransientMailboxError

    dovecot_account.append("INBOX", message(sender="a@example.net"))
    with _open(dovecot_account) as mailbox:
        mailbox.select("INBOX")
        monkeypatch.setattr(mailbox, "_raw_fetch",
                            lambda uids, items: [b"1 FETCH (UID (((garbage"])
        with pytest.raises(TransientMailboxError, match="cannot be parsed"):
            mailbox.fetch_headers([1])


def test_a_fetch_answer_the_fast_parser_refuses_is_read_by_the_general_parser(
        dovecot_account: ImapAccount, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a real connection: an item the fast parser does not know (here an extra FETCH line
    with RFC822.SIZE) sends the whole answer to imapclient's parser, and the result is the
    same."""
    from agent.mailbox import fetch

    for n in range(3):
        dovecot_account.append("INBOX", message(sender=f"p{n}@example.net", subject=f"S{n}"),
                               flags=["\\Seen"], when=datetime(2025, 3, 4, 5, n, tzinfo=UTC))
    with _open(dovecot_account) as mailbox:
        mailbox.select("INBOX")
        uids = mailbox.uids_after(0)
        usual = mailbox.fetch_headers(uids)
        assert len(usual) == 3

        original = mailbox._raw_fetch
        answers: list[list[object]] = []

        def with_an_extra_line(uids: list[int], items: list[str]) -> list[object]:
            answer = [*original(uids, items), b"9 (UID 99 RFC822.SIZE 1234)"]
            answers.append(answer)
            return answer

        general: list[int] = []
        parse_fetch_general = fetch.parse_fetch_general

        def counting_general(data: list[object]) -> dict[int, fetch.FetchedHeader]:
            general.append(len(data))
            return parse_fetch_general(data)

        monkeypatch.setattr(mailbox, "_raw_fetch", with_an_extra_line)
        monkeypatch.setattr(fetch, "parse_fetch_general", counting_general)
        assert mailbox.fetch_headers(uids) == usual
        (answer,) = answers
        assert fetch.parse_fetch_fast(answer) is None
        assert general == [len(answer)]


def test_imaplib_of_finds_the_connection_or_says_none() -> None:
    from types import SimpleNamespace

    from agent.mailbox.fetch import imaplib_of

    assert imaplib_of(SimpleNamespace()) is None  # type: ignore[arg-type]
    assert imaplib_of(SimpleNamespace(_imap=object())) is None  # type: ignore[arg-type]


def test_fetch_reads_off_imaplibs_connection_on_this_python(dovecot_account: ImapAccount) -> None:
    """The fast path is what a scan uses here: if this fails, imapclient changed under us."""
    import imaplib

    from agent.mailbox.fetch import imaplib_of

    with _open(dovecot_account) as mailbox:
        assert isinstance(imaplib_of(mailbox._client), imaplib.IMAP4)


def test_a_big_folder_is_searched_in_windows_of_uids(imap_account: ImapAccount,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """One SEARCH answer is one line, and imaplib refuses lines over 1 MB: a folder of more
    than SEARCH_WINDOW messages is searched window by window, with the same result."""
    import imapclient

    from agent.mailbox import client as mailbox_client

    for n in range(30):
        imap_account.append("INBOX", message(sender=f"p{n}@example.net"))
    with _open(imap_account) as mailbox:
        mailbox.select("INBOX")
        whole = list(mailbox.uids_after(0))
        later = list(mailbox.uids_after(whole[9]))
    assert len(whole) == 30 and later == whole[10:]

    searches: list[str] = []
    search = imapclient.IMAPClient.search

    def counting(client: imapclient.IMAPClient, criteria: Any, charset: Any = None) -> Any:
        searches.append(" ".join(criteria))
        return search(client, criteria, charset)

    monkeypatch.setattr(imapclient.IMAPClient, "search", counting)
    monkeypatch.setattr(mailbox_client, "SEARCH_WINDOW", 7)
    with _open(imap_account) as mailbox:
        mailbox.select("INBOX")
        assert list(mailbox.uids_after(0)) == whole
        *windows, last = searches
        assert len(windows) >= 5 and last.endswith(":*")  # windows up to UIDNEXT, then on
        for window in windows:
            first, end = (int(n) for n in window.removeprefix("UID ").split(":"))
            assert end - first < 7
        assert list(mailbox.uids_after(whole[9])) == later


def test_status_is_asked_again_only_after_another_command(dovecot_account: ImapAccount,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    import imapclient

    asked: list[str] = []
    folder_status = imapclient.IMAPClient.folder_status

    def counting(client: imapclient.IMAPClient, folder: str, what: Any = None) -> Any:
        asked.append(folder)
        return folder_status(client, folder, what)

    monkeypatch.setattr(imapclient.IMAPClient, "folder_status", counting)
    sent = dovecot_account.sent_folder
    with _open(dovecot_account) as mailbox:
        first = mailbox.status("INBOX")
        mailbox.status(sent)
        assert mailbox.status("INBOX") == first and asked == ["INBOX", sent]
        mailbox.select(sent)  # any other command: the answers may be old now
        dovecot_account.append("INBOX", message(sender="a@example.net"))
        assert mailbox.status("INBOX").messages == first.messages + 1
        assert asked == ["INBOX", sent, "INBOX"]
