"""Regression tests for the outside security review of 0.1.0 (issue 17), one per finding.

Each test names its finding and fails on 0.1.0; where the finding involves a server, the
test uses a real one (Dovecot for IMAP, the aiosmtpd sink for SMTP).
"""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path

import pytest

from agent import credentials, delivery, digest
from agent.config import Config, parse_config_text
from agent.errors import StoreError
from agent.plan import Plan
from agent.policy import evaluate, pick_today, ranked, today
from agent.render import Renderer
from agent.store import Store
from agent.store.database import exclusive_lock
from tests.kit import ME, make_contact, message, run_cli, write_config
from tests.servers.account import ImapAccount
from tests.servers.smtp import SmtpSink

NOW = datetime(2026, 11, 26, 6, 30, tzinfo=UTC)  # 07:30 in Berlin
NOW_TEXT = "2026-11-26T06:30:00Z"
TOMORROW = "2026-11-27T06:30:00Z"


def plant_a_due_contact(account: ImapAccount) -> None:
    """One person who wrote and got an answer 120 days ago: overdue, so a digest is due."""
    when = NOW - timedelta(days=120)
    account.append_many([
        ("INBOX", message(sender="Anna <anna@example.com>", subject="Fotos", when=when,
                          message_id="a1"), ("\\Seen",), when),
        (account.sent_folder, message(sender=ME, to=["anna@example.com"], subject="Re: Fotos",
                                      when=when + timedelta(hours=1), message_id="a2"),
         ("\\Seen",), when + timedelta(hours=1)),
    ])


def inbox_digests(account: ImapAccount) -> list[tuple[str, str]]:
    """(From, Message-ID) of every message in INBOX that says it is a followup digest."""
    found = []
    for raw in account.fetch_raw("INBOX"):
        parsed = message_from_bytes(raw, policy=default_policy)
        if parsed["X-Followup-Digest"]:
            found.append((str(parsed["From"]), str(parsed["Message-ID"])))
    return found


# --------------------------------------------------------------------------- 1. digest identity


def test_1_a_stranger_cannot_stop_the_digest(
        dovecot_account: ImapAccount, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """0.1.0 made the digest's Message-ID from the address and the day alone; a stranger who
    appended a mail with tomorrow's ID made followup record tomorrow as delivered."""
    plant_a_due_contact(dovecot_account)
    write_config(monkeypatch, dovecot_account, tmp_path)
    day = "2026-11-27"
    old_style = hashlib.sha256(f"{ME} {day}".encode()).hexdigest()[:16]
    forged = [f"followup-digest.{day}.{old_style}@example.org",
              f"followup-digest.{day}.preview@example.org"]
    for ident in forged:
        raw = (f"From: Stranger <stranger@evil.example>\r\nTo: {ME}\r\n"
               f"Subject: your digest\r\nDate: Thu, 26 Nov 2026 07:00:00 +0100\r\n"
               f"Message-ID: <{ident}>\r\nX-Followup-Digest: {day}\r\n"
               "Auto-Submitted: auto-generated\r\n\r\nnothing\r\n")
        dovecot_account.append("INBOX", raw.encode())
    code, out, err = run_cli(["--now", TOMORROW, "scan"], capsys)
    assert code == 0, err
    code, out, err = run_cli(["--now", TOMORROW, "digest"], capsys)
    assert code == 0, err
    assert "delivered" in out and "already" not in out, out
    ours = [(sender, ident) for sender, ident in inbox_digests(dovecot_account)
            if "stranger" not in sender]
    assert len(ours) == 1
    assert ours[0][1] not in {f"<{ident}>" for ident in forged}
    # Again the same day: now it really was delivered, once.
    code, out, err = run_cli(["--now", TOMORROW, "digest"], capsys)
    assert "already delivered" in out, out
    assert len([d for d in inbox_digests(dovecot_account) if "stranger" not in d[0]]) == 1


def test_1_the_digest_message_id_carries_a_secret_of_this_installation(tmp_path: Path) -> None:
    config = _config(tmp_path)
    with Store(config.storage.path) as one, Store(tmp_path / "other.db") as other:
        first, second = one.journal.secret(), other.journal.secret()
        assert first and second and first != second and len(first) == 32
        assert one.journal.secret() == first  # made once, kept
    day = NOW.date()
    ours = digest.message_id(config, day, first)
    assert ours == digest.message_id(config, day, first)
    assert ours != digest.message_id(config, day, second)
    assert hashlib.sha256(f"{ME} {day}".encode()).hexdigest()[:16] not in ours


# --------------------------------------------------------------------------- 2. header injection


HOSTILE = "=?utf-8?q?x=0D=0ABcc:_victim@attacker.example=0D=0A=0D=0A<b>owned</b>?="


def _config(tmp_path: Path, extra: str = "") -> Config:
    return parse_config_text(f"""
[account]
email = "{ME}"
name = "Mia Example"

[imap]
host = "imap.example.org"

[digest]
timezone = "Europe/Berlin"
language = "en"

[storage]
path = "{tmp_path / 'followup.db'}"
{extra}
""")


def _hostile_plan(config: Config) -> Plan:
    contact = make_contact(1, NOW - timedelta(days=130), "out", ("anna@example.com",),
                           name=HOSTILE, subject=HOSTILE, messages=(2, 2))
    states = evaluate([contact], config.policy, config.digest.tz, NOW)
    day = today(NOW, config.digest.tz)
    return Plan(day=day, states=states, due=ranked(states),
                picks=pick_today(states, config.policy.daily_picks, day))


def test_2_no_name_can_add_a_header_to_the_smtp_digest(tmp_path: Path, smtp_sink: SmtpSink) -> None:
    """0.1.0 set the rendered subject as a plain string; the email package decoded the encoded
    word in a contact's name and let its CR/LF through: a real Bcc header, or an HTML body."""
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "digest.subject.j2").write_text(
        "Today: {% for row in picks %}{{ row.name }} {{ row.subject }}{% endfor %}\n")
    config = _config(tmp_path, f"""
[smtp]
host = "127.0.0.1"
port = {smtp_sink.port}
security = "none"

[templates]
dir = "{templates}"
""")
    config = Config(**{**config.__dict__, "digest": type(config.digest)(
        **{**config.digest.__dict__, "delivery": "smtp"})})
    with Store(config.storage.path) as store:
        result = delivery.deliver(config, store, None, _hostile_plan(config), NOW)
    assert result.delivered
    (received,) = smtp_sink.wait_for(1)
    assert received.rcpt_tos == (ME,)
    head = received.data.split(b"\r\n\r\n", 1)[0]
    assert b"\r\nBcc:" not in head and b"victim" not in head.replace(b"\r\n ", b" ").split(
        b"Subject:", 1)[0]
    parsed = message_from_bytes(received.data, policy=default_policy)
    assert parsed["Bcc"] is None
    subject = str(parsed["Subject"])
    assert subject.startswith("Today:") and "\n" not in subject and "\r" not in subject
    assert HOSTILE in subject  # the name arrives as the text it is, not as a header
    # The body is the digest (text, then HTML), not the attacker's HTML.
    assert parsed.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in parsed.iter_parts()] == ["text/plain", "text/html"]


# --------------------------------------------------------------------------- 5 and 6. templates


@pytest.mark.parametrize("body", [
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ self._TemplateReference__context }}",
])
def test_5_templates_cannot_run_code(tmp_path: Path, body: str) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "digest.txt.j2").write_text(body + "\n")
    config = _config(tmp_path, f'[templates]\ndir = "{templates}"\n')
    plan = _hostile_plan(config)
    renderer = Renderer(config)
    rendered = digest.render(config, plan, NOW, renderer)
    assert "uid=" not in rendered.text
    assert len(rendered.problems) == 1
    assert "digest.txt.j2" in rendered.problems[0]


def test_6_doctor_survives_broken_templates_and_a_missing_dir(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "digest.txt.j2").write_bytes(b"Hallo \xff\xfe {{ day }}\n")
    (templates / "digest.subject.j2").write_text('{{ "x" * 3000000000 }}\n')
    path = tmp_path / "config.toml"
    path.write_text(_config_text(tmp_path, f'[templates]\ndir = "{templates}"\n'))
    path.chmod(0o600)
    monkeypatch.setenv("FOLLOWUP_IMAP_PASSWORD", "unused-password")
    started = datetime.now(UTC)
    code, out, err = run_cli(["--config", str(path), "--now", NOW_TEXT, "doctor"], capsys)
    assert datetime.now(UTC) - started < timedelta(seconds=20)
    assert "Traceback" not in out + err
    assert "not UTF-8" in out
    assert "3000000000" in out
    # A [templates] dir that does not exist is an error, not a silent fallback.
    path.write_text(_config_text(tmp_path, f'[templates]\ndir = "{tmp_path / "nope"}"\n'))
    code, out, err = run_cli(["--config", str(path), "--now", NOW_TEXT, "digest", "--dry-run"],
                             capsys)
    assert code == 2
    assert "[templates] dir" in err and "nope" in err


def _config_text(tmp_path: Path, extra: str) -> str:
    return f"""
[account]
email = "{ME}"

[imap]
host = "127.0.0.1"
port = 9
security = "none"

[digest]
timezone = "Europe/Berlin"

[storage]
path = "{tmp_path / 'followup.db'}"
{extra}
"""


def test_5_a_templates_folder_others_can_change_is_named(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "digest.txt.j2").write_text("{{ day }}\n")
    templates.chmod(0o777)
    from agent.render import check_user_templates

    config = _config(tmp_path, f'[templates]\ndir = "{templates}"\n')
    found = list(check_user_templates(config))
    assert any("other users" in line and str(templates) in line for line in found)


# --------------------------------------------------------------------------- 7 and 8. files


def test_7_digest_output_never_follows_a_symlink_and_is_private(tmp_path: Path) -> None:
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    link = tmp_path / "digest.html"
    link.symlink_to(target)
    with pytest.raises(Exception, match="symbolic link"):
        delivery.write_html(link, "<p>x</p>")
    assert target.read_text() == "keep me"

    existing = tmp_path / "old.html"
    existing.write_text("old")
    existing.chmod(0o644)
    delivery.write_html(existing, "<p>new</p>")
    assert existing.read_text() == "<p>new</p>"
    assert stat.S_IMODE(existing.stat().st_mode) == 0o600

    old = os.umask(0)
    try:
        nested = tmp_path / "a" / "b" / "digest.html"
        delivery.write_html(nested, "<p>x</p>")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "a" / "b").stat().st_mode) == 0o700
    assert stat.S_IMODE(nested.stat().st_mode) == 0o600


def test_8_the_lock_file_never_follows_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "shared-notes.txt"
    target.write_text("a file someone else owns")
    database = tmp_path / "followup.db"
    (tmp_path / "followup.db.lock").symlink_to(target)
    with pytest.raises(StoreError, match="symbolic link"), exclusive_lock(database, wait=0):
        pass
    assert target.read_text() == "a file someone else owns"


# --------------------------------------------------------------------------- 9. huge numbers


@pytest.mark.parametrize("args", [
    ["show", "99999999999999999999999"],
    ["snooze", "99999999999999999999999", "3d"],
    ["--now", "9999-12-31T23:00:00Z", "due"],
    ["--now", "0001-01-01T00:00:00Z", "due"],
    ["snooze", "anna@example.com", "99999999999999999999d"],
])
def test_9_huge_numbers_and_dates_are_a_usage_error(
        dovecot_account: ImapAccount, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        args: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    plant_a_due_contact(dovecot_account)
    write_config(monkeypatch, dovecot_account, tmp_path)
    assert run_cli(["--now", NOW_TEXT, "scan"], capsys)[0] == 0
    code, out, err = run_cli(args if args[0] == "--now" else ["--now", NOW_TEXT, *args], capsys)
    assert code == 2, out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "please report" not in err


# --------------------------------------------------------------------------- 11. smaller ones


def test_11_password_command_gets_no_password_and_its_stderr_is_scrubbed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "leaky"
    script.write_text("#!/bin/sh\necho \"env: [$FOLLOWUP_IMAP_PASSWORD]\" >&2\nexit 3\n")
    script.chmod(0o700)
    secret = "smtp-secret-" + os.urandom(4).hex()
    monkeypatch.setenv("FOLLOWUP_IMAP_PASSWORD", secret)
    with pytest.raises(credentials.CredentialError) as info:
        credentials.run_password_command("smtp", str(script))
    assert secret not in str(info.value)
    assert "env: []" in str(info.value)  # the child saw no password at all
    # And a child that echoes a password it was given some other way is scrubbed.
    script.write_text(f"#!/bin/sh\necho 'token {secret}' >&2\nexit 3\n")
    with pytest.raises(credentials.CredentialError) as info:
        credentials.run_password_command("smtp", str(script))
    assert secret not in str(info.value) and "***" in str(info.value)


def test_11_short_passwords_are_scrubbed_where_they_stand_alone() -> None:
    credentials.remember("x9!")
    assert credentials.redact("login with x9! failed") == "login with *** failed"
    assert credentials.redact("'x9!'") == "'***'"


def test_11_a_password_command_child_cannot_read_the_imap_password_from_a_real_run(
        tmp_path: Path) -> None:
    """Through the real entry point: the child's environment has no FOLLOWUP_*_PASSWORD."""
    out = tmp_path / "seen"
    script = tmp_path / "cmd"
    script.write_text(f"#!/bin/sh\nenv > {out}\necho smtp-password\n")
    script.chmod(0o700)
    env = {**os.environ, "FOLLOWUP_IMAP_PASSWORD": "imap-secret-123456"}
    code = ("from agent.credentials import run_password_command as r; "
            f"print(r('smtp', {str(script)!r}) == 'smtp-password')")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, check=False)
    assert result.stdout.strip() == "True", result.stderr
    assert "imap-secret-123456" not in out.read_text()
