"""Passwords in any script (issue 16; review finding 4): a Dovecot user whose password is
`Pässwort-ÜÜ-2026` logs in for scan, doctor and run (AUTHENTICATE PLAIN with UTF-8), SMTP
AUTH takes it too, and where a server offers no way to send it the error is one line that
quotes no character of it, and the daemon stops instead of retrying for ever."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.kit import ME, message, run_cli, write_config
from tests.servers.account import ImapAccount
from tests.servers.dovecot import Dovecot
from tests.servers.smtp import SmtpSink

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
NOW_TEXT = "2026-03-02T08:00:00Z"
PASSWORD = "Pässwort-ÜÜ-2026"


@pytest.fixture
def umlaut_account(dovecot_server: Dovecot) -> Iterator[ImapAccount]:
    username, password = dovecot_server.add_user(password=PASSWORD)
    account = dovecot_server.account(username, password)
    when = NOW - timedelta(days=100)
    account.append("INBOX", message(sender="Jürgen Weiß <juergen@example.de>", subject="Hallo",
                                    when=when), when=when)
    account.append("Sent", message(sender=ME, to=["juergen@example.de"], subject="Re: Hallo",
                                   when=when + timedelta(hours=1)),
                   when=when + timedelta(hours=1))
    yield account


def _smtp_config(monkeypatch: pytest.MonkeyPatch, account: ImapAccount, tmp_path: Path,
                 sink: SmtpSink) -> None:
    """delivery = "smtp" through ``sink``, logging in with the umlaut password."""
    smtp = (f'delivery = "smtp"\n[smtp]\nhost = "127.0.0.1"\nport = {sink.port}\n'
            'security = "none"\nusername = "mia@example.org"\n'
            f'password_command = "printf {PASSWORD}"\n')
    write_config(monkeypatch, account, tmp_path, password="keyring", extra=smtp)


def _clean(text: str) -> None:
    """No password, no character of it as Python quotes it, no encoder's complaint."""
    assert PASSWORD not in text
    for quoted in ("\\xe4", "\\xdc", "'ä'", "'Ü'", "UnicodeEncodeError", "codec"):
        assert quoted not in text, text


@pytest.mark.parametrize("where", ["keyring", "env"])
def test_scan_doctor_and_run_log_in_with_a_non_ascii_password(
        umlaut_account: ImapAccount, dovecot_server: Dovecot, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        where: str) -> None:
    write_config(monkeypatch, umlaut_account, tmp_path, password=where)  # type: ignore[arg-type]
    code, out, err = run_cli(["--now", NOW_TEXT, "scan"], capsys)
    assert code == 0, out + err
    code, out, err = run_cli(["--now", NOW_TEXT, "doctor"], capsys)
    assert code == 0, out + err
    assert f"logged in to 127.0.0.1:{umlaut_account.port} as {umlaut_account.username}" in out
    code, out, err = run_cli(["-vvv", "--now", NOW_TEXT, "run", "--once"], capsys)
    assert code == 0, out + err
    _clean(out + err)
    code, out, _ = run_cli(["contacts", "--json"], capsys)
    assert [c["email"] for c in json.loads(out)] == ["juergen@example.de"]
    assert len(umlaut_account.fetch_raw("Drafts")) == 1
    assert f"user=<{umlaut_account.username}>, method=PLAIN" in dovecot_server.log_tail(2000)


def test_a_wrong_non_ascii_password_is_refused_without_echo(
        umlaut_account: ImapAccount, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    write_config(monkeypatch, umlaut_account, tmp_path, password="none")
    monkeypatch.setenv("FOLLOWUP_IMAP_PASSWORD", "Pässwort-ÄÄ-2025")
    code, out, err = run_cli(["--now", NOW_TEXT, "scan"], capsys)
    assert code == 1, out + err
    assert err.startswith(f"error: login as {umlaut_account.username} on 127.0.0.1 failed")
    assert "Pässwort-ÄÄ-2025" not in err and "\\xc4" not in err
    _clean(err)


def test_smtp_auth_with_a_non_ascii_password(
        umlaut_account: ImapAccount, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    with SmtpSink(username="mia@example.org", password=PASSWORD) as sink:
        _smtp_config(monkeypatch, umlaut_account, tmp_path, sink)
        assert run_cli(["--now", NOW_TEXT, "scan"], capsys)[0] == 0
        code, out, err = run_cli(["--now", NOW_TEXT, "digest"], capsys)
        assert code == 0, out + err
        (received,) = sink.wait_for(1)
    assert received.authenticated_as == "mia@example.org"
    _clean(out + err)


def test_an_smtp_server_without_auth_plain_is_one_line_and_stops_the_daemon(
        umlaut_account: ImapAccount, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """smtplib's AUTH takes only ASCII; without AUTH PLAIN there is no way to send this
    password: one line, exit 2 (only the user can change that), and `followup run` stops."""
    with SmtpSink(username="mia@example.org", password=PASSWORD,
                  auth_exclude=("PLAIN",)) as sink:
        _smtp_config(monkeypatch, umlaut_account, tmp_path, sink)
        assert run_cli(["--now", NOW_TEXT, "scan"], capsys)[0] == 0
        code, out, err = run_cli(["--now", NOW_TEXT, "digest"], capsys)
        assert code == 2, out + err
        ours = [line for line in err.splitlines() if "auth_require_tls" not in line]
        assert len(ours) == 1 and ours[0].startswith("error: "), err  # (the sink's warning)
        assert "does not offer AUTH PLAIN" in err
        _clean(out + err)
        code, out, err = run_cli(["--now", NOW_TEXT, "run"], capsys)
        assert code == 2, out + err
        assert "does not offer AUTH PLAIN" in err.strip().splitlines()[-1]
        assert "trying again" not in err
        _clean(out + err)
        assert sink.messages == []


def test_an_imap_server_without_auth_plain_is_a_credential_error_without_echo() -> None:
    """Dovecot cannot hide AUTH=PLAIN (its LOGIN runs through PLAIN), so this one case is
    a scripted server: LOGIN only. No LOGIN is even tried with a password it cannot carry."""
    from agent.auth import password_login
    from agent.errors import CredentialError
    from agent.mailbox.client import _log_in

    class LoginOnly:
        def capabilities(self) -> tuple[bytes, ...]:
            return (b"IMAP4REV1", b"AUTH=LOGIN")

        def login(self, *args: object) -> None:
            raise AssertionError("LOGIN with a non-ASCII password")

    with pytest.raises(CredentialError) as info:
        _log_in(LoginOnly(), "imap.example.org", 993,  # type: ignore[arg-type]
                password_login("mia", PASSWORD))
    assert info.value.exit_code == 2
    assert "does not offer AUTHENTICATE PLAIN" in str(info.value)
    _clean(str(info.value))
