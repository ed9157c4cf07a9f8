"""Password lookup order, failure messages, and the keyring commands."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import keyring
import keyring.backends.fail
import pytest

from agent import credentials
from agent.errors import CredentialError
from tests.servers.keyring import MemoryKeyring


def _script(tmp_path: Path, body: str) -> str:
    path = tmp_path / "secret.py"
    path.write_text(body)
    return f"{sys.executable} {path}"


def test_keyring_comes_first(memory_keyring: MemoryKeyring, tmp_path: Path) -> None:
    memory_keyring.set_password("followup", "alice", "from-keyring")
    command = _script(tmp_path, "print('from-command')")
    found = credentials.lookup_password("imap", "alice", command,
                                        {"FOLLOWUP_IMAP_PASSWORD": "from-env"})
    assert found == ("from-keyring", "keyring")


def test_command_before_environment(tmp_path: Path) -> None:
    command = _script(tmp_path, "print('from-command')\nprint('second line ignored')")
    found = credentials.lookup_password("imap", "alice", command,
                                        {"FOLLOWUP_IMAP_PASSWORD": "from-env"})
    assert found == ("from-command", "password_command")


def test_environment_last() -> None:
    found = credentials.lookup_password("smtp", "alice", None,
                                        {"FOLLOWUP_SMTP_PASSWORD": "from-env"})
    assert found == ("from-env", "FOLLOWUP_SMTP_PASSWORD")


def test_command_runs_without_a_shell(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    command = _script(tmp_path, "import sys; print(sys.argv[1])") + f" ';touch {marker}'"
    assert credentials.get_password("imap", "alice", command, {}) == f";touch {marker}"
    assert not marker.exists()


def test_failing_command_is_a_clear_error_without_stdout(tmp_path: Path) -> None:
    command = _script(tmp_path, "import sys\nprint('hunter2-leak')\n"
                                "print('gpg: decryption failed', file=sys.stderr)\nsys.exit(3)")
    with pytest.raises(CredentialError) as info:
        credentials.get_password("imap", "alice", command, {})
    text = str(info.value)
    assert "exit status 3" in text
    assert "decryption failed" in text
    assert "hunter2-leak" not in text


def test_missing_program_and_empty_output(tmp_path: Path) -> None:
    with pytest.raises(CredentialError, match="not found"):
        credentials.get_password("imap", "alice", "/nonexistent/pass show x", {})
    with pytest.raises(CredentialError, match="printed nothing"):
        credentials.get_password("imap", "alice", _script(tmp_path, "pass"), {})


def test_nothing_found_names_every_way() -> None:
    with pytest.raises(CredentialError) as info:
        credentials.get_password("imap", "alice", None, {})
    text = str(info.value)
    assert "followup password set" in text
    assert "password_command" in text
    assert "FOLLOWUP_IMAP_PASSWORD" in text


def test_headless_machine_without_keyring_names_the_other_ways() -> None:
    keyring.set_keyring(keyring.backends.fail.Keyring())
    with pytest.raises(CredentialError) as info:
        credentials.get_password("imap", "alice", None, {})
    text = str(info.value)
    assert "no keyring is available" in text
    assert "password_command" in text
    assert "FOLLOWUP_IMAP_PASSWORD" in text
    # ... and the other ways still work there.
    assert credentials.get_password("imap", "alice", None,
                                    {"FOLLOWUP_IMAP_PASSWORD": "x-pass"}) == "x-pass"
    with pytest.raises(CredentialError, match="password_command"):
        credentials.set_password("alice", "x-pass")


def test_set_and_delete(memory_keyring: MemoryKeyring) -> None:
    credentials.set_password("alice", "s3cret")
    assert memory_keyring.contents() == {("followup", "alice"): "s3cret"}
    assert credentials.delete_password("alice") is True
    assert credentials.delete_password("alice") is False


def test_redacting_filter_scrubs_known_secrets(caplog: pytest.LogCaptureFixture) -> None:
    credentials.get_password("imap", "alice", None, {"FOLLOWUP_IMAP_PASSWORD": "Zq-unique-77"})
    logger = logging.getLogger("test.redact")
    logger.addFilter(credentials.RedactingFilter())
    with caplog.at_level(logging.INFO):
        logger.info("server said %s", "bad password Zq-unique-77")
    assert "Zq-unique-77" not in caplog.text
    assert "***" in caplog.text
    assert credentials.redact("x Zq-unique-77 y") == "x *** y"
