"""The test kit: one config builder, one contact factory, one message builder, `run_cli`,
and `servers_unavailable` for a test whose server (or browser) is not installed.

Environment changes go through pytest's ``monkeypatch`` only (`write_config` takes it), so
every test leaves the process environment as it found it.
"""

from __future__ import annotations

import email
import hashlib
import os
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import default as default_policy
from email.utils import format_datetime
from pathlib import Path
from typing import Any, Literal, NoReturn

import keyring
import pytest

from agent.auth import password_login
from agent.cli.root import main
from agent.config import Config, parse_config_text
from agent.mailbox.client import Mailbox
from agent.model import Contact, Direction
from tests.mailgen import Expected, GeneratedMailbox, build_message
from tests.servers.account import ImapAccount

ME = "me@example.org"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost")

# --------------------------------------------------------------------------- config


def config_text(
    account: ImapAccount | None = None,
    *,
    db: Path | None = None,
    email: str = ME,
    name: str | None = "Mia Example",
    aliases: Sequence[str] = (),
    region: str | None = None,
    host: str | None = None,
    port: int | None = None,
    security: str | None = "auto",
    username: str | None = None,
    timeout: float | None = 10,
    batch_size: int | None = None,
    password_command: str | None = None,
    timezone: str = "Europe/Berlin",
    language: str = "en",
    templates: Path | None = None,
    imap_extra: str = "",
    extra: str = "",
) -> str:
    """A followup config (TOML text): the one config builder of the test suite.

    With `account`, [imap] reaches that test account on loopback (its TLS port with
    ``security="ssl"``; `port` overrides, e.g. a proxy's); without, the host is
    imap.example.org (a config that is parsed, never connected). ``security="auto"``
    writes "none" for a loopback host and leaves the key out otherwise; None always
    leaves it out (followup's default: TLS). The CA file is the account's for starttls
    and ssl. `db` is [storage] path (no [storage] without it). `extra` is appended after
    the [digest] section: keys before any section header land in [digest]; `imap_extra`
    lines go into [imap] (e.g. auth = "oauth2" and its keys).
    """
    if account is not None:
        host = host or "127.0.0.1"
        port = port or (account.tls_port if security == "ssl" else account.port)
        username = username or account.username
    host = host or "imap.example.org"
    if security == "auto":
        security = "none" if host in LOOPBACK_HOSTS else None
    ca_file = account.ca_file if account and security in ("starttls", "ssl") else None

    lines = ["[account]", f'email = "{email}"']
    if aliases:
        lines.append("aliases = [" + ", ".join(f'"{a}"' for a in aliases) + "]")
    if name is not None:
        lines.append(f'name = "{name}"')
    if region is not None:
        lines.append(f'region = "{region}"')
    lines += ["", "[imap]", f'host = "{host}"']
    for key, value in (("port", port), ("security", security), ("username", username),
                       ("timeout", timeout), ("batch_size", batch_size),
                       ("password_command", password_command), ("ca_file", ca_file)):
        if value is None:
            continue
        if isinstance(value, str):
            lines.append(f'{key} = "{value}"')
        else:
            lines.append(f"{key} = {value:g}" if isinstance(value, float) else f"{key} = {value}")
    if imap_extra:
        lines.append(imap_extra.strip("\n"))
    if db is not None:
        lines += ["", "[storage]", f'path = "{db}"']
    if templates is not None:
        lines += ["", "[templates]", f'dir = "{templates}"']
    lines += ["", "[digest]", f'timezone = "{timezone}"', f'language = "{language}"', extra]
    return "\n".join(lines) + "\n"


def make_config(account: ImapAccount | None = None, **options: Any) -> Config:
    """The parsed config of `config_text(account, **options)`; no file, no environment."""
    return parse_config_text(config_text(account, **options))


def write_config(monkeypatch: pytest.MonkeyPatch, account: ImapAccount | None,
                 directory: Path, *, password: Literal["env", "keyring", "none"] = "env",
                 **options: Any) -> Path:
    """Write `config_text` to DIRECTORY/config.toml (mode 0600) and make followup use it.

    The database goes to DIRECTORY/followup.db unless `db` is given. FOLLOWUP_CONFIG
    points at the file; the account's password goes into FOLLOWUP_IMAP_PASSWORD
    (``password="env"``), the in-memory keyring ("keyring") or nowhere ("none").
    """
    directory.mkdir(parents=True, exist_ok=True)
    options.setdefault("db", directory / "followup.db")
    path = directory / "config.toml"
    path.write_text(config_text(account, **options), encoding="utf-8")
    path.chmod(0o600)
    if account is not None and password == "keyring":
        keyring.set_password("followup", account.username, account.password)
    elif account is not None and password == "env":
        monkeypatch.setenv("FOLLOWUP_IMAP_PASSWORD", account.password)
    monkeypatch.setenv("FOLLOWUP_CONFIG", str(path))
    return path


# --------------------------------------------------------------------------- contacts


def make_contact(contact_id: int = 1, last: datetime = datetime(2026, 1, 1, 12, tzinfo=UTC),
            direction: Direction = "out", addresses: Sequence[str] = ("ann@studio.example",),
            *, name: str | None = None, subject: str = "Hello",
            message_id: str | None = "", messages: tuple[int, int] = (1, 1),
            tags: Iterable[str] = (), **decisions: Any) -> Contact:
    """A contact as the store would return it: the one contact factory of the test suite.

    The newest exchange is at `last` in `direction` (folder INBOX or Sent to match), the
    first address is the primary one, `messages` is (in, out). The name defaults to
    "Contact <id>", the Message-ID to "<m<id>@example.net>" (None: there was none).
    `decisions` are the user's: snooze_until, ignored, cadence_days, language.
    """
    return Contact(
        id=contact_id,
        name=f"Contact {contact_id}" if name is None else name,
        email=addresses[0],
        addresses=tuple(addresses),
        last_exchange=last,
        last_direction=direction,
        last_subject=subject,
        last_folder="INBOX" if direction == "in" else "Sent",
        last_message_id=f"<m{contact_id}@example.net>" if message_id == "" else message_id,
        last_in=last if direction == "in" else None,
        last_out=last if direction == "out" else None,
        messages_in=messages[0],
        messages_out=messages[1],
        tags=frozenset(tags),
        **decisions,
    )


# --------------------------------------------------------------------------- messages


def message(*, sender: str, to: Sequence[str] = (ME,), subject: str = "Hello",
            when: datetime | None = None, message_id: str | Literal[False] | None = None,
            cc: Sequence[str] = (), headers: Sequence[tuple[str, str]] = (),
            body: str = "Hi.\r\n") -> bytes:
    """A small RFC 5322 message as CRLF bytes (UTF-8 allowed in headers for 8-bit tests).

    Without `message_id`, one is derived from sender, subject and time; False leaves the
    Message-ID header out.
    """
    when = when or datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
    fields = [("From", sender), ("To", ", ".join(to))]
    if cc:
        fields.append(("Cc", ", ".join(cc)))
    fields += [("Subject", subject), ("Date", format_datetime(when))]
    if message_id is None:
        message_id = hashlib.sha256(f"{sender}\0{subject}\0{when}".encode()).hexdigest()[:16]
    if message_id is not False:
        fields.append(("Message-ID", f"<{message_id}@test>"))
    return build_message([*fields, *headers], body)


def drafts_of(account: ImapAccount) -> dict[str, EmailMessage]:
    """The messages in the account's Drafts folder, by their first recipient's address."""
    found: dict[str, EmailMessage] = {}
    with account.client() as client:
        client.select_folder(account.drafts_folder, readonly=True)
        uids = client.search("ALL")
        for data in (client.fetch(uids, ["BODY.PEEK[]"]).values() if uids else []):
            parsed = email.message_from_bytes(bytes(data[b"BODY[]"]), policy=default_policy)
            assert isinstance(parsed, EmailMessage)
            found[parsed["To"].addresses[0].addr_spec] = parsed
    return found


# --------------------------------------------------------------------------- generated mailboxes

#: The fields of `contacts --json` that come from the mailbox (not from decisions or policy).
LEDGER_FIELDS = ("addresses", "name", "last_exchange", "last_direction", "last_subject",
                 "messages_in", "messages_out")


def generated_folders(account: ImapAccount, project: str = "Kunde A") -> dict[str, str]:
    """tests.mailgen's folder roles on this account's layout: its own Sent, Drafts, Junk and
    Trash, and an archive and a project folder (below "INBOX." on the German host)."""
    if account.personality == "german":
        extra = {"archive": "INBOX.Archiv.2024", "project": f"INBOX.Projekte.{project}"}
    else:
        extra = {"archive": "Archiv/2024", "project": f"Projekte/{project}"}
    return {"sent": account.sent_folder, "drafts": account.drafts_folder,
            "junk": account.junk_folder, "trash": account.trash_folder, **extra}


def plant(account: ImapAccount, mailbox: GeneratedMailbox) -> None:
    """Create the generated mailbox's folders in `account` and APPEND its messages."""
    for folder in mailbox.create:
        account.create_folder(folder)
    account.append_many(mailbox.items())


def iso(moment: datetime) -> str:
    """A time as `contacts --json` writes it (UTC, whole seconds, "Z")."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ledger_of(contacts: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The mailbox-derived fields of `contacts --json`, by primary address."""
    ledger = {c["email"]: {f: c[f] for f in LEDGER_FIELDS} for c in contacts}
    assert len(ledger) == len(contacts), "two contacts share a primary address"
    return ledger


def expected_ledger(expected: dict[str, Expected]) -> dict[str, dict[str, Any]]:
    """What `ledger_of` must give for a generated mailbox's independently computed answers."""
    return {key: {"addresses": [key], "name": e.name, "last_exchange": iso(e.last_exchange),
                  "last_direction": e.last_direction, "last_subject": e.last_subject,
                  "messages_in": e.messages_in, "messages_out": e.messages_out}
            for key, e in expected.items()}


# --------------------------------------------------------------------------- the CLI


def open_mailbox(account: ImapAccount, security: str = "none", **options: Any) -> Mailbox:
    """followup's own connection to a test account (its TLS port with ``security="ssl"``)."""
    port = account.tls_port if security == "ssl" else account.port
    assert port is not None
    return Mailbox.open("127.0.0.1", port, security,
                        password_login(account.username, account.password), timeout=10,
                        **options)


def followup_process(*args: str, commit_every: int) -> list[str]:
    """The command line of ``followup ARGS`` in a process of its own whose scans commit every
    ``commit_every`` messages (in use: every 5,000 or 2 s, which in a test's small mailbox
    is only at the end), for tests that watch a scan's progress from outside."""
    code = (f"import agent.store.database as d; d.GROUP_ROWS = {commit_every}; "
            "from agent.cli.root import main; main()")
    return [sys.executable, "-c", code, *args]


def run_cli(args: Sequence[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run ``followup ARGS`` in-process through the real entry point; (exit code, out, err)."""
    capsys.readouterr()
    code = 0
    try:
        main(list(args))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --------------------------------------------------------------------------- missing servers


def flag(name: str) -> bool:
    """An environment switch: set and not "", "0", "false" or "no"."""
    return os.environ.get(name, "") not in ("", "0", "false", "no")


def servers_unavailable(reason: str) -> NoReturn:
    """Skip a test that needs a server; fail instead when FOLLOWUP_REQUIRE_SERVERS=1."""
    if flag("FOLLOWUP_REQUIRE_SERVERS"):
        pytest.fail(f"{reason} (and FOLLOWUP_REQUIRE_SERVERS is set)", pytrace=False)
    pytest.skip(reason)
