"""`followup doctor` against the Dovecot fixture: folders found, and one clear line per failure."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from tests.kit import run_cli, write_config
from tests.servers.account import ImapAccount
from tests.servers.base import free_port
from tests.test_scan import deleted_after_the_list


def test_doctor_reports_sent_and_drafts(dovecot_account: ImapAccount, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(monkeypatch, dovecot_account, tmp_path, password="keyring")
    code, out, err = run_cli(["doctor"], capsys)
    assert code == 0, out + err
    assert "Sent folder: 'Sent' (found by flag)" in out
    assert "Drafts folder: 'Drafts' (found by flag)" in out
    assert "password for" in out and "(keyring)" in out
    assert "will scan" in out
    assert dovecot_account.password not in out + err


def test_doctor_over_verified_tls(dovecot_account: ImapAccount, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(monkeypatch, dovecot_account, tmp_path, security="ssl")
    code, out, err = run_cli(["doctor"], capsys)
    assert code == 0, out + err
    assert "over TLS" in out


def test_doctor_warns_of_a_folder_the_server_refuses(
        dovecot_account: ImapAccount, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder listed but refused (here deleted just after the LIST; in life also one the
    user may not read): every scan would skip it, so the doctor says which, and how to stop
    the warning; nothing fails."""
    dovecot_account.create_folder("Projekt")
    write_config(monkeypatch, dovecot_account, tmp_path)
    deleted_after_the_list(monkeypatch, dovecot_account, "Projekt")
    code, out, err = run_cli(["doctor"], capsys)
    assert code == 0, out + err
    warnings = [line for line in out.splitlines() if line.startswith("warn")]
    assert len(warnings) == 1, out
    assert "folder 'Projekt'" in warnings[0] and "refused STATUS" in warnings[0]
    assert "exclude_folders" in warnings[0]


def _failure(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("FAIL")]


def test_doctor_wrong_password(dovecot_account: ImapAccount, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str],
                               monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(monkeypatch, dovecot_account, tmp_path)
    monkeypatch.setenv("FOLLOWUP_IMAP_PASSWORD", "Wr0ng-Pa55word-xyz")
    code, out, err = run_cli(["doctor"], capsys)
    assert code == 1
    failures = _failure(out)
    assert len(failures) == 1
    assert "login as" in failures[0] and "failed" in failures[0]
    assert "Wr0ng-Pa55word-xyz" not in out + err


def test_doctor_closed_port(dovecot_account: ImapAccount, tmp_path: Path,
                            capsys: pytest.CaptureFixture[str],
                            monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(monkeypatch, dovecot_account, tmp_path, port=free_port())
    code, out, _ = run_cli(["doctor"], capsys)
    assert code == 1
    failures = _failure(out)
    assert len(failures) == 1
    assert "refused the connection" in failures[0]


def test_doctor_untrusted_certificate(dovecot_account: ImapAccount, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    without_ca = dataclasses.replace(dovecot_account, ca_file=None)
    write_config(monkeypatch, without_ca, tmp_path, security="ssl")
    code, out, _ = run_cli(["doctor"], capsys)
    assert code == 1
    failures = _failure(out)
    assert len(failures) == 1
    assert "could not be verified" in failures[0] and "ca_file" in failures[0]


def test_doctor_unknown_host(dovecot_account: ImapAccount, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str],
                             monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(monkeypatch, dovecot_account, tmp_path, security="ssl", host="imap.invalid")
    code, out, _ = run_cli(["doctor"], capsys)
    assert code == 1
    assert "cannot find the server 'imap.invalid'" in _failure(out)[0]


def test_doctor_without_password(dovecot_account: ImapAccount, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(monkeypatch, dovecot_account, tmp_path, password="none")
    code, out, _ = run_cli(["doctor"], capsys)
    assert code == 1
    assert "followup password set" in _failure(out)[0]


def test_doctor_bad_config_lists_every_problem(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[account]\nemail = "x"\n[imap]\nport = 0\n')
    monkeypatch.setenv("FOLLOWUP_CONFIG", str(path))
    code, out, _ = run_cli(["doctor"], capsys)
    assert code == 1
    assert "[account] email" in out and "[imap] host" in out and "[imap] port" in out


def test_password_never_in_any_output_of_a_real_process(dovecot_account: ImapAccount,
                                                        tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A subprocess with -vvv (imapclient's protocol log on) must still never show it."""
    write_config(monkeypatch, dovecot_account, tmp_path)
    for args in (["-vvv", "doctor"], ["-vvv", "scan"], ["-v", "contacts", "--json"]):
        result = subprocess.run([sys.executable, "-m", "agent", *args], capture_output=True,
                                text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        assert dovecot_account.password not in result.stdout + result.stderr
    # The database and config never hold it either.
    for path in tmp_path.iterdir():
        if path.is_file():
            assert dovecot_account.password.encode() not in path.read_bytes(), path


def test_cli_usage_errors_exit_2(capsys: pytest.CaptureFixture[str],
                                 monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FOLLOWUP_CONFIG", str(tmp_path / "missing.toml"))
    code, _, err = run_cli(["contacts"], capsys)
    assert code == 2
    assert err.startswith("error: ") and "followup init" in err
    assert "Traceback" not in err
    code, _, err = run_cli(["no-such-command"], capsys)
    assert code == 2
