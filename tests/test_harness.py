"""Tests of the test harness itself: the loopback servers behave like the real thing."""

from __future__ import annotations

import contextlib
import os
import smtplib
import ssl
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from email.message import EmailMessage
from pathlib import Path

import imapclient
import keyring
import keyring.core
import pytest
from imapclient.exceptions import LoginError

from tests.servers.account import ImapAccount
from tests.servers.dovecot import Dovecot, dovecot_config
from tests.servers.keyring import MemoryKeyring
from tests.servers.personalities import GERMAN, STANDARD, Personality
from tests.servers.pymap import PymapServer
from tests.servers.smtp import SmtpSink
from tests.servers.tls import TlsFiles

BERLIN_SUMMER = timezone(timedelta(hours=2))


def make_message(n: int = 1, *, subject: str = "Hallo", sender: str = "bob@example.org") -> bytes:
    return (
        f"From: Bob <{sender}>\r\n"
        "To: Alice <alice@example.org>\r\n"
        f"Subject: {subject} {n}\r\n"
        f"Message-ID: <harness-{n}@example.org>\r\n"
        "Date: Thu, 02 Jan 2020 03:04:05 +0200\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n"
        f"Message number {n}.\r\n"
    ).encode()


def internal_dates(account: ImapAccount, folder: str) -> dict[int, datetime]:
    with account.client() as client:
        client.select_folder(folder, readonly=True)
        uids = client.search("ALL")
        response = client.fetch(uids, ["INTERNALDATE"])
        return {uid: data[b"INTERNALDATE"] for uid, data in response.items()}


# --------------------------------------------------------------------------- dovecot


def test_dovecot_lists_special_use_folders(dovecot_account: ImapAccount) -> None:
    with dovecot_account.client() as client:
        capabilities = client.capabilities()
        folders = {name: set(flags) for flags, _sep, name in client.list_folders()}
    assert {b"SPECIAL-USE", b"CONDSTORE", b"QRESYNC", b"MULTIAPPEND"} <= set(capabilities)
    assert len(capabilities) == len(set(capabilities)), "a capability is listed twice"
    assert set(folders) == {"INBOX", "Sent", "Drafts", "Junk", "Trash", "Archive"}
    assert b"\\Sent" in folders["Sent"]
    assert b"\\Drafts" in folders["Drafts"]
    assert b"\\Junk" in folders["Junk"]
    assert b"\\Trash" in folders["Trash"]
    assert b"\\Archive" in folders["Archive"]
    assert dovecot_account.sent_folder == "Sent"
    assert dovecot_account.drafts_folder == "Drafts"


def test_dovecot_rejects_a_wrong_password_quickly(dovecot_account: ImapAccount) -> None:
    account = dovecot_account
    client = imapclient.IMAPClient(account.host, port=account.port, ssl=False, timeout=5)
    with pytest.raises(LoginError):
        client.login(dovecot_account.username, "wrong")
    client.shutdown()


def test_new_users_can_log_in_at_once(dovecot_server: Dovecot) -> None:
    # Several passwd-file rewrites within one second: Dovecot must see each of them.
    accounts = [dovecot_server.new_account() for _ in range(3)]
    for account in accounts:
        with account.client() as client:
            assert client.select_folder("INBOX")[b"EXISTS"] == 0


def test_accounts_are_isolated(dovecot_server: Dovecot) -> None:
    first, second = dovecot_server.new_account(), dovecot_server.new_account()
    assert first.username != second.username
    first.append("INBOX", make_message())
    assert first.folder_uids("INBOX") == [1]
    assert second.folder_uids("INBOX") == []
    intruder = ImapAccount(**{**vars(second), "password": first.password})
    with pytest.raises(LoginError):
        intruder.client()


def test_imaps_verifies_with_the_ca_file(dovecot_account: ImapAccount) -> None:
    assert dovecot_account.tls_port is not None and dovecot_account.ca_file is not None
    for host in ("127.0.0.1", "localhost"):
        context = ssl.create_default_context(cafile=dovecot_account.ca_file)
        port = dovecot_account.tls_port
        with imapclient.IMAPClient(host, port=port, ssl=True, ssl_context=context) as client:
            client.login(dovecot_account.username, dovecot_account.password)
            assert client.select_folder("INBOX")[b"EXISTS"] == 0


def test_imaps_without_the_ca_file_fails_verification(dovecot_account: ImapAccount) -> None:
    assert dovecot_account.tls_port is not None
    with pytest.raises(ssl.SSLCertVerificationError):
        imapclient.IMAPClient("127.0.0.1", port=dovecot_account.tls_port, ssl=True, timeout=5)


def test_starttls_with_the_ca_file(dovecot_account: ImapAccount) -> None:
    assert dovecot_account.ca_file is not None
    port = dovecot_account.port
    with imapclient.IMAPClient("127.0.0.1", port=port, ssl=False, timeout=5) as client:
        assert b"STARTTLS" in client.capabilities()
        client.starttls(ssl.create_default_context(cafile=dovecot_account.ca_file))
        client.login(dovecot_account.username, dovecot_account.password)
        assert client.select_folder("INBOX")[b"EXISTS"] == 0


def test_starttls_without_the_ca_file_fails(dovecot_account: ImapAccount) -> None:
    client = imapclient.IMAPClient("127.0.0.1", port=dovecot_account.port, ssl=False, timeout=5)
    with pytest.raises(ssl.SSLCertVerificationError):
        client.starttls(ssl.create_default_context())
    with contextlib.suppress(OSError):  # imaplib already closed the socket
        client.shutdown()


def test_german_personality(make_account: Callable[[str], ImapAccount]) -> None:
    account = make_account("german")
    assert (account.sent_folder, account.drafts_folder) == ("INBOX.Gesendet", "INBOX.Entwürfe")
    with account.client() as client:
        folders = {name: (set(flags), sep) for flags, sep, name in client.list_folders()}
        namespace = client.namespace()
        client.folder_encode = False
        raw_names = {name for _flags, _sep, name in client.list_folders()}
    assert set(folders) == {
        "INBOX",
        "INBOX.Gesendet",
        "INBOX.Entwürfe",
        "INBOX.Papierkorb",
        "INBOX.Spam",
    }
    special_use = {b"\\Sent", b"\\Drafts", b"\\Trash", b"\\Junk", b"\\Archive", b"\\All"}
    assert all(not (flags & special_use) for flags, _sep in folders.values())
    assert {sep for _flags, sep in folders.values()} == {b"."}
    assert namespace.personal[0][0] == "INBOX."
    assert b"INBOX.Entw&APw-rfe" in raw_names  # modified UTF-7 on the wire
    account.append(account.drafts_folder, make_message(), flags=["\\Draft", "\\Seen"])
    assert account.folder_uids(account.drafts_folder) == [1]
    assert account.change_uidvalidity(account.sent_folder) > 0


def test_dovecot_stops_cleanly(tls_files: TlsFiles, dovecot_server: Dovecot) -> None:
    server = Dovecot(tls_files, binary=dovecot_server.binary)
    server.start()
    root = server.root
    assert root is not None
    pid = int((root / "run" / "master.pid").read_text())
    account = server.new_account()
    with account.client() as client:
        assert client.select_folder("INBOX")[b"EXISTS"] == 0
    server.stop()
    assert not root.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    server.stop()  # idempotent


def test_config_writer_takes_the_personality(tls_files: TlsFiles) -> None:
    def config(personality: Personality) -> str:
        return dovecot_config(
            root=Path("/tmp/fu-x"),
            port=1,
            tls_port=2,
            tls=tls_files,
            personality=personality,
            mail_uid=8,
            mail_gid=8,
        )

    standard, german = config(STANDARD), config(GERMAN)
    assert "special_use = \\Sent" in standard and "separator = /" in standard
    assert 'mailbox "Gesendet"' in german and "prefix = INBOX." in german
    assert "special_use" not in german


# --------------------------------------------------------------------------- contract suite


def test_login_append_fetch(imap_account: ImapAccount) -> None:
    message = make_message(7)
    imap_account.append("INBOX", message, flags=["\\Seen"])
    assert len(imap_account.folder_uids("INBOX")) == 1
    assert imap_account.fetch_raw("INBOX") == [message]
    with imap_account.client() as client:
        client.select_folder("INBOX", readonly=True)
        (data,) = client.fetch(client.search("ALL"), ["FLAGS"]).values()
    assert b"\\Seen" in data[b"FLAGS"]


def test_append_sets_internaldate(imap_account: ImapAccount) -> None:
    when = datetime(2021, 3, 4, 5, 6, 7, tzinfo=BERLIN_SUMMER)
    imap_account.append(imap_account.sent_folder, make_message(), when=when)
    (stored,) = internal_dates(imap_account, imap_account.sent_folder).values()
    assert stored.utcoffset() is not None, "normalise_times=False gives aware datetimes"
    # The instant survives; Dovecot (maildir: file mtime) reports it in its own zone.
    assert stored == when


def test_append_rejects_naive_datetimes(imap_account: ImapAccount) -> None:
    with pytest.raises(ValueError, match="aware"):
        imap_account.append("INBOX", make_message(), when=datetime(2021, 3, 4))


def test_append_many_on_one_connection(imap_account: ImapAccount) -> None:
    start = datetime(2020, 1, 1, tzinfo=UTC)
    sent = imap_account.sent_folder
    items = [
        ("INBOX" if n % 3 else sent, make_message(n), ("\\Seen",), start + timedelta(days=n))
        for n in range(600)
    ]
    imap_account.append_many(items)
    assert len(imap_account.folder_uids("INBOX")) == 400
    assert imap_account.fetch_raw(sent) == [make_message(n) for n in range(0, 600, 3)]
    dates = sorted(internal_dates(imap_account, imap_account.sent_folder).values())
    assert dates[0] == start and dates[-1] == start + timedelta(days=597)


def test_create_folder(imap_account: ImapAccount) -> None:
    imap_account.create_folder("Kunden")
    imap_account.append("Kunden", make_message())
    assert len(imap_account.folder_uids("Kunden")) == 1


@pytest.mark.parametrize("which", ["INBOX", "sent"])
def test_change_uidvalidity_keeps_the_messages(imap_account: ImapAccount, which: str) -> None:
    folder = "INBOX" if which == "INBOX" else imap_account.sent_folder
    when = datetime(2019, 5, 6, 7, 8, 9, tzinfo=UTC)
    imap_account.append_many([(folder, make_message(n), ("\\Seen",), when) for n in range(3)])
    before = imap_account.uidvalidity(folder)
    after = imap_account.change_uidvalidity(folder)
    assert after != before
    assert imap_account.uidvalidity(folder) == after
    assert sorted(imap_account.fetch_raw(folder)) == sorted(make_message(n) for n in range(3))
    assert set(internal_dates(imap_account, folder).values()) == {when}
    with imap_account.client() as client:
        names = {name for _flags, _sep, name in client.list_folders()}
    assert not any("fu-parking" in name for name in names)
    assert folder in names


def test_pymap_capabilities(pymap_account: ImapAccount) -> None:
    with pymap_account.client() as client:
        capabilities = set(client.capabilities())
        folders = {name: set(flags) for flags, _sep, name in client.list_folders()}
    assert {b"MULTIAPPEND", b"UIDPLUS", b"MOVE", b"IDLE"} <= capabilities
    assert not capabilities & {b"SPECIAL-USE", b"CONDSTORE", b"QRESYNC", b"NAMESPACE"}
    assert set(folders) == {"INBOX", "Sent", "Drafts", "Trash", "Junk"}
    assert all(b"\\Sent" not in flags for flags in folders.values())


def test_pymap_server_starts_and_stops() -> None:
    with PymapServer() as server:
        account = server.new_account()
        account.append("INBOX", make_message())
        assert len(account.fetch_raw("INBOX")) == 1
    with pytest.raises(OSError):
        imapclient.IMAPClient(server.host, port=server.port, ssl=False, timeout=2)


# --------------------------------------------------------------------------- smtp


def digest_message() -> EmailMessage:
    message = EmailMessage()
    message["From"] = "followup@example.org"
    message["To"] = "alice@example.org"
    message["Subject"] = "Heute melden: 3 Kontakte"
    message.set_content("Grüße\n")
    return message


def connect(sink: SmtpSink) -> smtplib.SMTP:
    # local_hostname: smtplib would otherwise ask socket.getfqdn(), slow without DNS.
    return smtplib.SMTP(sink.host, sink.port, local_hostname="localhost", timeout=5)


def test_smtp_sink_receives(smtp_sink: SmtpSink) -> None:
    with connect(smtp_sink) as smtp:
        smtp.send_message(digest_message(), to_addrs=["alice@example.org", "bcc@example.org"])
    (received,) = smtp_sink.wait_for(1)
    assert received.mail_from == "followup@example.org"
    assert received.rcpt_tos == ("alice@example.org", "bcc@example.org")
    assert b"Subject: Heute melden: 3 Kontakte" in received.data
    assert received.authenticated_as is None and not received.tls


def test_smtp_sink_with_starttls_and_auth(smtp_sink_tls: SmtpSink) -> None:
    assert smtp_sink_tls.ca_file is not None
    assert smtp_sink_tls.username is not None and smtp_sink_tls.password is not None
    with connect(smtp_sink_tls) as smtp:
        smtp.starttls(context=ssl.create_default_context(cafile=smtp_sink_tls.ca_file))
        smtp.login(smtp_sink_tls.username, smtp_sink_tls.password)
        smtp.send_message(digest_message())
    (received,) = smtp_sink_tls.wait_for(1)
    assert received.tls and received.authenticated_as == smtp_sink_tls.username


def test_smtp_sink_tls_refuses_shortcuts(smtp_sink_tls: SmtpSink) -> None:
    assert smtp_sink_tls.ca_file is not None and smtp_sink_tls.username is not None
    with connect(smtp_sink_tls) as smtp, pytest.raises(smtplib.SMTPSenderRefused):
        smtp.send_message(digest_message())  # no STARTTLS
    with connect(smtp_sink_tls) as smtp, pytest.raises(ssl.SSLCertVerificationError):
        smtp.starttls(context=ssl.create_default_context())  # no CA file
    with connect(smtp_sink_tls) as smtp:
        smtp.starttls(context=ssl.create_default_context(cafile=smtp_sink_tls.ca_file))
        with pytest.raises(smtplib.SMTPAuthenticationError):
            smtp.login(smtp_sink_tls.username, "wrong")
    assert smtp_sink_tls.messages == []


# --------------------------------------------------------------------------- isolation


def test_keyring_is_in_memory(memory_keyring: MemoryKeyring) -> None:
    assert os.environ["PYTHON_KEYRING_BACKEND"] == "tests.servers.keyring.MemoryKeyring"
    assert isinstance(keyring.core.load_env(), MemoryKeyring)
    keyring.set_password("followup", "alice@example.org", "s3cret")
    assert memory_keyring.get_password("followup", "alice@example.org") == "s3cret"
    assert MemoryKeyring.contents() == {("followup", "alice@example.org"): "s3cret"}


def test_keyring_starts_empty_in_every_test(memory_keyring: MemoryKeyring) -> None:
    assert MemoryKeyring.contents() == {}
    with pytest.raises(keyring.errors.PasswordDeleteError):
        keyring.delete_password("followup", "nobody")


def test_keyring_backend_reaches_subprocesses() -> None:
    # `followup` run as a subprocess must not fall back to the system keyring either.
    code = "import keyring; print(type(keyring.get_keyring()).__name__)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "MemoryKeyring"


def test_environment_is_isolated(tmp_path_factory: pytest.TempPathFactory) -> None:
    base = tmp_path_factory.getbasetemp()
    for name in ("FOLLOWUP_CONFIG", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME"):
        assert Path(os.environ[name]).is_relative_to(base), name
    for name in ("FOLLOWUP_IMAP_PASSWORD", "FOLLOWUP_SMTP_PASSWORD", "FOLLOWUP_NOW"):
        assert name not in os.environ
