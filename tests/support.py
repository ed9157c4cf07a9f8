"""Small helpers for tests: a config for a test account, and a simple message builder."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

from agent.config import Config, load_config
from tests.servers.account import ImapAccount

ME = "me@example.org"


def config_text(account: ImapAccount, db_path: Path, *, email: str = ME,
                aliases: Sequence[str] = (), security: str = "none", extra: str = "") -> str:
    port = account.port if security != "ssl" else account.tls_port
    ca = f'ca_file = "{account.ca_file}"\n' if account.ca_file and security != "none" else ""
    alias_list = ", ".join(f'"{a}"' for a in aliases)
    return f"""
[account]
email = "{email}"
aliases = [{alias_list}]
name = "Mia Example"

[imap]
host = "127.0.0.1"
port = {port}
security = "{security}"
username = "{account.username}"
timeout = 10
{ca}
[storage]
path = "{db_path}"

[digest]
timezone = "Europe/Berlin"
language = "en"
{extra}
"""


def write_config(account: ImapAccount, directory: Path, *, keyring_password: bool = False,
                 **kwargs: object) -> Path:
    """Write a config for ``account`` (mode 0600) and make its password findable.

    The password goes to the in-memory keyring when asked, else into
    FOLLOWUP_IMAP_PASSWORD of this process (tests restore the environment).
    """
    import os

    import keyring

    path = directory / "config.toml"
    path.write_text(config_text(account, directory / "followup.db", **kwargs))  # type: ignore[arg-type]
    path.chmod(0o600)
    if keyring_password:
        keyring.set_password("followup", account.username, account.password)
    else:
        os.environ["FOLLOWUP_IMAP_PASSWORD"] = account.password
    os.environ["FOLLOWUP_CONFIG"] = str(path)
    return path


def load(path: Path) -> Config:
    return load_config(path)


def message(*, sender: str, to: Sequence[str] = (ME,), subject: str = "Hello",
            when: datetime | None = None, message_id: str | None = None,
            cc: Sequence[str] = (), headers: Sequence[tuple[str, str]] = (),
            body: str = "Hi.\r\n") -> bytes:
    """A small RFC 5322 message as CRLF bytes (UTF-8 allowed in headers for 8-bit tests)."""
    when = when or datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
    lines = [f"From: {sender}", f"To: {', '.join(to)}"]
    if cc:
        lines.append(f"Cc: {', '.join(cc)}")
    lines += [f"Subject: {subject}", f"Date: {format_datetime(when)}"]
    if message_id is not False:
        lines.append(f"Message-ID: <{message_id or abs(hash((sender, subject, when)))}@test>")
    lines += [f"{k}: {v}" for k, v in headers]
    lines += ["MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8", "", body]
    return "\r\n".join(lines).encode("utf-8")


def run_cli(args: Sequence[str], capsys: object) -> tuple[int, str, str]:
    """Run ``followup ARGS`` in-process through the real entry point; (exit code, out, err)."""
    import pytest

    from agent.cli import main

    assert isinstance(capsys, pytest.CaptureFixture)
    capsys.readouterr()
    code = 0
    try:
        main(list(args))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    captured = capsys.readouterr()
    return code, captured.out, captured.err
