"""Nobody let in: TLS verified by default, no silent downgrade, plaintext only on loopback,
the password in no output, file, process argument or mail, private file modes, and hostile
names and subjects that neither run in the digest's HTML nor add headers to mail we write.

Covered elsewhere and not repeated here: an untrusted certificate (tests/test_mailbox.py
``test_untrusted_certificate_is_refused``, tests/test_doctor.py), STARTTLS missing on a
server that never offers it (tests/test_mailbox.py ``test_starttls_not_offered_…``), plain
text refused off loopback in the config and in Mailbox.open (tests/test_config.py,
tests/test_mailbox.py), a world-readable config warned about by load_config
(tests/test_config.py), composing hostile drafts and digests from made-up contacts
(tests/test_drafts.py, tests/test_digest.py), SMTP with an unverified certificate or without
STARTTLS (tests/test_digest.py).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import email
import os
import re
import secrets
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

import pytest

from agent.store import Store
from agent.store.database import exclusive_lock
from tests.faultproxy import Fault, FaultProxy, strip_capability
from tests.kit import ME, message, run_cli, write_config
from tests.mailgen import realistic
from tests.servers.account import ImapAccount
from tests.servers.dovecot import Dovecot

NOW = datetime(2026, 3, 1, 7, 30, tzinfo=UTC)
NOW_TEXT = "2026-03-01T07:30:00Z"


def ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


@pytest.fixture
def secret_account(dovecot_server: Dovecot) -> ImapAccount:
    """A Dovecot user whose password is a string found nowhere else."""
    template = dovecot_server.new_account()
    username, password = dovecot_server.add_user(
        password=f"Pw-{secrets.token_hex(12)}-Unique")
    return dataclasses.replace(template, username=username, password=password)


def forms_of(secret: str, username: str) -> dict[str, bytes]:
    """The password as bytes, and the encodings it would travel or be logged in."""
    plain = f"\0{username}\0{secret}".encode()
    return {
        "raw": secret.encode(),
        "base64": base64.b64encode(secret.encode()).rstrip(b"="),
        "AUTH PLAIN": base64.b64encode(plain).rstrip(b"="),
        "UTF-16": secret.encode("utf-16-le"),
    }


def leaks(data: bytes | str, forms: dict[str, bytes]) -> list[str]:
    blob = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data
    return [name for name, form in forms.items() if form in blob]


def files_under(*roots: Path) -> Iterator[Path]:
    for root in roots:
        if root.is_dir():
            yield from (p for p in root.rglob("*") if p.is_file())


def followup(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent", *args], env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def one_error_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


# --------------------------------------------------------------------------- TLS


def test_tls_is_the_default_and_an_unknown_certificate_stops_before_login(
        secret_account: ImapAccount, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """No `security`, no `ca_file`: TLS with verification; Dovecot's self-signed
    certificate is refused, and nothing but the TLS handshake left the machine."""
    assert secret_account.tls_port
    forms = forms_of(secret_account.password, secret_account.username)
    with FaultProxy(secret_account.host, secret_account.tls_port,
                    record_upstream=True) as proxy:
        write_config(monkeypatch, secret_account, tmp_path, port=proxy.port, security=None)
        code, out, err = run_cli(["--now", NOW_TEXT, "scan"], capsys)
    assert code == 1, out + err
    line = one_error_line(err)
    assert "could not be verified" in line and "ca_file" in line, line
    sent = b"".join(bytes(c.upstream) for c in proxy.connections)
    assert sent.startswith(b"\x16\x03"), sent[:20]  # a TLS handshake record, nothing else
    assert leaks(sent, forms) == []
    assert leaks(out + err, forms) == []


def test_starttls_hidden_by_a_man_in_the_middle_is_refused_without_sending_the_password(
        secret_account: ImapAccount, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy strips STARTTLS from the server's capabilities (a downgrade attack): the
    client must refuse, not log in in plaintext."""
    forms = forms_of(secret_account.password, secret_account.username)
    with FaultProxy(secret_account.host, secret_account.port, record_upstream=True,
                    rewrite_down=strip_capability(b"STARTTLS")) as proxy:
        write_config(monkeypatch, secret_account, tmp_path, port=proxy.port, security="starttls")
        code, out, err = run_cli(["--now", NOW_TEXT, "scan"], capsys)
    assert code == 1, out + err
    line = one_error_line(err)
    assert "does not offer STARTTLS" in line, line
    sent = b"".join(bytes(c.upstream) for c in proxy.connections).upper()
    assert b"LOGIN" not in sent and b"AUTHENTICATE" not in sent, sent
    assert leaks(sent, forms) == []


def test_starttls_through_the_proxy_works_when_nothing_is_stripped(
        secret_account: ImapAccount, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The control for the test above: the same path upgrades and logs in, encrypted."""
    forms = forms_of(secret_account.password, secret_account.username)
    with FaultProxy(secret_account.host, secret_account.port, record_upstream=True) as proxy:
        write_config(monkeypatch, secret_account, tmp_path, port=proxy.port, security="starttls")
        code, out, err = run_cli(["--now", NOW_TEXT, "scan"], capsys)
    assert code == 0, out + err
    sent = b"".join(bytes(c.upstream) for c in proxy.connections)
    assert b"STARTTLS" in sent.upper()
    assert leaks(sent, forms) == []  # the LOGIN went inside TLS


@pytest.mark.parametrize("host", ["imap.example.org", "127.0.0.1.example.org",
                                  "localhost.example.invalid"])
def test_plaintext_to_a_remote_host_is_refused_before_connecting(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        host: str) -> None:
    import socket

    def no_network(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("followup tried to connect")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    write_config(monkeypatch, None, tmp_path, host=host, port=143, security="none",
                 db=tmp_path / "x.db")
    monkeypatch.setenv("FOLLOWUP_IMAP_PASSWORD", "not-used-1234")
    code, _out, err = run_cli(["scan"], capsys)
    assert code == 2
    assert "plaintext" in one_error_line(err)
    assert not (tmp_path / "x.db").exists()


# --------------------------------------------------------------------------- the password


def _proc_text(pid: int, name: str) -> bytes:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/{name}").read_bytes()
    return b""


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def test_the_password_never_leaves_the_login(secret_account: ImapAccount,
                                             tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A unique password through every command, with -vvv (imapclient's protocol log), a
    dropped connection during LOGIN, a wrong password, digest and drafts: it is in no
    output, no file the runs wrote, no process's arguments or environment, no mail in the
    account — and it did reach the server (so the search looked for the right thing)."""
    account = secret_account
    forms = forms_of(account.password, account.username)
    secret_file = tmp_path / "secret" / "password"
    secret_file.parent.mkdir()
    secret_file.write_text(account.password + "\n")
    secret_file.chmod(0o600)
    # Due contacts, so that digest and drafts have something to write.
    sent = account.sent_folder
    account.append_many([
        ("INBOX", message(sender="Jana Roth <jana@example.net>", subject="Fotos",
                          when=ago(130)), ("\\Seen",), ago(130)),
        (sent, message(sender=ME, to=["jana@example.net"], subject="Re: Fotos",
                       when=ago(120)), ("\\Seen",), ago(120)),
        *realistic(3, 300, now=NOW, sent=sent),
    ])
    data = tmp_path / "data"
    outputs: dict[str, str] = {}
    with FaultProxy(account.host, account.port, record_upstream=True) as proxy:
        config = write_config(monkeypatch, account, data, port=proxy.port, password="none",
                              password_command=f"cat {secret_file}")
        env = {k: v for k, v in os.environ.items() if not k.startswith("FOLLOWUP_IMAP")}
        env.update(FOLLOWUP_CONFIG=str(config), FOLLOWUP_NOW=NOW_TEXT)

        # 1. A scan that hangs right after LOGIN: look at the live process meanwhile.
        proxy.plan(Fault.stall_before(b"Logged in", seconds=1.5))
        process = subprocess.Popen([sys.executable, "-m", "agent", "-vvv", "scan"], env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 30
            while not proxy.fired() and time.monotonic() < deadline:
                time.sleep(0.02)
            assert proxy.fired(), proxy.describe()
            for pid in (process.pid, *_children(process.pid)):
                for name in ("cmdline", "environ"):
                    assert leaks(_proc_text(pid, name), forms) == [], (pid, name)
            out, err = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        assert process.returncode == 0, err
        outputs["scan, stalled at login"] = out + err

        # 2. The connection drops during LOGIN: a retry, warnings and a traceback-free line.
        proxy.plan(Fault.cut_before(b"Logged in"))
        done = followup("-vvv", "scan", env=env)
        assert done.returncode == 0, done.stderr
        assert "trying again" in done.stderr
        outputs["scan, dropped at login"] = done.stdout + done.stderr

        # 3. Everything else a user runs, as chatty as it gets.
        html = data / "digest.html"
        for args in (["-vvv", "doctor"], ["-v", "contacts", "--json"], ["-vvv", "due"],
                     ["-vvv", "digest", "--dry-run"], ["-vvv", "digest", "--output", str(html)],
                     ["-vvv", "digest"], ["-vvv", "drafts"], ["-vvv", "run", "--once"],
                     ["-vvv", "scan", "--full"]):
            done = followup(*args, env=env)
            assert done.returncode == 0, (args, done.stdout + done.stderr)
            outputs[" ".join(args)] = done.stdout + done.stderr

    # 4. A wrong password that is itself a unique string: not echoed in the error.
    wrong = f"Wrong-{secrets.token_hex(12)}-Pw"
    wrong_forms = forms_of(wrong, account.username)
    done = followup("-vvv", "scan", env={**env, "FOLLOWUP_CONFIG": str(write_config(monkeypatch,
        account, tmp_path / "wrong", password="none", password_command=f"echo {wrong}"))})
    assert done.returncode != 0
    assert "login" in done.stderr.strip().splitlines()[-1]
    assert leaks(done.stdout + done.stderr, wrong_forms) == []

    # The password did go to the server, in the LOGIN command.
    assert "raw" in leaks(b"".join(bytes(c.upstream) for c in proxy.connections), forms)
    for what, text in outputs.items():
        assert leaks(text, forms) == [], what
    assert html.exists()
    roots = [data, tmp_path / "wrong", *(Path(os.environ[k]) for k in (
        "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"))]
    checked = []
    for path in files_under(*roots):
        assert leaks(path.read_bytes(), forms) == [], path
        checked.append(path.name)
    assert {"followup.db", "config.toml", "digest.html", "followup.db.lock"} <= set(checked)
    # The mail the runs wrote (the digest in INBOX, the drafts) never carries it either.
    written = 0
    for folder in ("INBOX", account.drafts_folder):
        for raw in account.fetch_raw(folder):
            assert leaks(raw, forms) == [], folder
            written += b"X-Followup-Digest" in raw or folder == account.drafts_folder
    assert written >= 2  # a digest and at least one draft


def test_password_set_from_stdin_is_not_echoed(secret_account: ImapAccount, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    config = write_config(monkeypatch, secret_account, tmp_path, password="none")
    env = {**os.environ, "FOLLOWUP_CONFIG": str(config)}
    done = subprocess.run([sys.executable, "-m", "agent", "-vvv", "password", "set", "--stdin"],
                          input=secret_account.password + "\n", env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    forms = forms_of(secret_account.password, secret_account.username)
    assert leaks(done.stdout + done.stderr, forms) == []
    for path in files_under(tmp_path):
        assert leaks(path.read_bytes(), forms) == [], path


# --------------------------------------------------------------------------- file modes


@contextlib.contextmanager
def umask(value: int) -> Iterator[None]:
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_database_wal_shm_and_lock_are_private_even_with_umask_0(tmp_path: Path) -> None:
    db = tmp_path / "new" / "deeper" / "followup.db"
    with umask(0), exclusive_lock(db), Store(db) as store:
        store.journal.record_picks(NOW.date(), [1])  # a write: the WAL and shared memory exist now
        assert mode(db) == 0o600
        assert mode(db.with_name("followup.db-wal")) == 0o600
        assert mode(db.with_name("followup.db-shm")) == 0o600
        assert mode(db.with_name("followup.db.lock")) == 0o600
        assert mode(db.parent) == 0o700


def test_init_writes_a_private_config_even_with_umask_0(
        dovecot_account: ImapAccount, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    path = tmp_path / "conf" / "config.toml"
    monkeypatch.setattr(sys, "stdin", io.StringIO(dovecot_account.password + "\n"))
    with umask(0):
        code, out, err = run_cli([
            "--config", str(path), "init", "--email", ME, "--name", "Mia Example",
            "--provider", "other", "--imap-host", "127.0.0.1",
            "--imap-port", str(dovecot_account.port), "--security", "none",
            "--username", dovecot_account.username, "--password-stdin", "--language", "en",
            "--timezone", "Europe/Berlin", "--yes"], capsys)
    assert code == 0, out + err
    assert mode(path) == 0o600
    assert dovecot_account.password not in path.read_text()
    assert [p.name for p in path.parent.iterdir()] == ["config.toml"]  # no temp file left


def test_world_readable_config_is_warned_about_on_every_command(
        dovecot_account: ImapAccount, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_config(monkeypatch, dovecot_account, tmp_path, password="none")
    path.chmod(0o644)
    code, _out, err = run_cli(["contacts", "--json"], capsys)
    assert code == 0, err
    assert f"{path} is readable by other users; run: chmod 600 {path}" in err


# --------------------------------------------------------------------------- hostile mail


def _b64_word(text: str) -> str:
    return "=?utf-8?B?" + base64.b64encode(text.encode()).decode() + "?="


HOSTILE = [
    # (From, Subject, Message-ID): names and subjects that try to become markup or headers.
    ('"<script>alert(1)</script>" <evil1@example.net>',
     '<img src=x onerror=alert(2)> & "quotes" \'too\'', "<evil1@example.net>"),
    (f"{_b64_word('Mallory' + chr(13) + chr(10) + 'Bcc: victim@evil.example')} "
     "<evil2@example.net>",
     "=?utf-8?Q?Hi=0D=0ABcc:_victim2@evil.example=0D=0A=0D=0A<b>body</b>?=",
     "<evil2@example.net>\r\n Bcc: victim3@evil.example"),
    ('"Eve =?utf-8?Q?=3Ca_href=3Djavascript:alert(3)=3E?=click" <evil3@example.net>',
     "=?utf-8?Q?=3D=3Futf-8=3FQ=3FBcc=3A_x=40evil.example=3F=3D?= </textarea><svg onload=x>",
     "<evil3@example.net>"),
]
INJECTED = re.compile(rb"^(bcc|cc|x-injected|content-type):.*evil", re.IGNORECASE | re.MULTILINE)


def _plant_hostile(account: ImapAccount) -> None:
    items: list[tuple[str, bytes, tuple[str, ...], datetime]] = []
    for n, (sender, subject, message_id) in enumerate(HOSTILE):
        address = f"evil{n + 1}@example.net"
        items.append((account.sent_folder, message(
            sender=ME, to=[address], subject="Fotos", when=ago(140 + n)), ("\\Seen",),
            ago(140 + n)))
        raw = (f"From: {sender}\r\nTo: {ME}\r\nSubject: {subject}\r\n"
               f"Date: {email.utils.format_datetime(ago(100 + n))}\r\n"
               f"Message-ID: {message_id}\r\nMIME-Version: 1.0\r\n"
               "Content-Type: text/plain; charset=utf-8\r\n\r\nHallo\r\n").encode()
        items.append(("INBOX", raw, ("\\Seen",), ago(100 + n)))
    account.append_many(items)


def _header_names(raw: bytes) -> list[str]:
    head = raw.split(b"\r\n\r\n", 1)[0]
    return [line.split(b":", 1)[0].decode().lower() for line in head.split(b"\r\n")
            if line and not line[:1].isspace()]


def test_hostile_names_and_subjects_in_the_real_digest_and_drafts(
        dovecot_account: ImapAccount, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Scanned from a real server, delivered to the real INBOX and Drafts: the HTML shows
    the markup as text, and no header grows out of a name, subject or Message-ID."""
    account = dovecot_account
    _plant_hostile(account)
    write_config(monkeypatch, account, tmp_path)
    code, out, err = run_cli(["--now", NOW_TEXT, "run", "--once"], capsys)
    assert code == 0, out + err

    digests = [raw for raw in account.fetch_raw("INBOX") if b"X-Followup-Digest" in raw]
    assert len(digests) == 1
    drafts = account.fetch_raw(account.drafts_folder)
    assert len(drafts) == 3, out
    for raw in [*digests, *drafts]:
        assert not INJECTED.search(raw.split(b"\r\n\r\n", 1)[0]), raw[:2000]
        names = _header_names(raw)
        assert "bcc" not in names and "cc" not in names, names
        parsed = email.message_from_bytes(raw, policy=default_policy)
        assert isinstance(parsed, EmailMessage)
        assert "\n" not in str(parsed["Subject"]) and "\r" not in str(parsed["Subject"])
        for part in parsed.walk():
            if part.get_content_type() == "text/html":
                html = part.get_content()
                for bad in ("<script", "<img", "<svg", "</textarea", "<a href=javascript",
                            "<b>body"):
                    assert bad not in html.lower(), bad
                assert "&lt;script&gt;" in html
    digest = email.message_from_bytes(digests[0], policy=default_policy)
    assert [a.addr_spec for a in digest["To"].addresses] == [ME]
    recipients = set()
    for raw in drafts:
        parsed = email.message_from_bytes(raw, policy=default_policy)
        to = [a.addr_spec for a in parsed["To"].addresses]
        assert len(to) == 1 and re.fullmatch(r"evil\d@example\.net", to[0]), to
        recipients.add(to[0])
        for name in ("In-Reply-To", "References"):
            if parsed[name]:
                assert "evil.example" not in str(parsed[name]), parsed[name]
    assert recipients == {"evil1@example.net", "evil2@example.net", "evil3@example.net"}


def test_html_digest_written_to_a_file_is_private(dovecot_account: ImapAccount,
                                                   tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(monkeypatch, dovecot_account, tmp_path, password="none")
    html = tmp_path / "out" / "digest.html"
    with umask(0):
        code, _out, err = run_cli(["--now", NOW_TEXT, "digest", "--output", str(html)], capsys)
    assert code == 0, err
    assert mode(html) == 0o600
