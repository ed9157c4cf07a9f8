"""`followup demo`: the whole loop against an embedded IMAP server with a generated mailbox.

The mailbox comes from agent.demo_mail (seeded, dated relative to now).

The demo never touches the user's own config, keyring or data: it writes a config into a
temporary directory, gives the password through the environment of this process only, and
runs the same service functions as `followup run --once`.
"""

from __future__ import annotations

import email
import email.policy
import logging
import os
import secrets
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Self

import keyring
import keyring.backend
import keyring.backends.null

from agent import plan, service
from agent.auth import password_login
from agent.config import Config, load_config, local_timezone_name
from agent.demo_mail import DEMO_USER, ME, ME_NAME, DemoMailbox, generate
from agent.demo_server import LOOPBACK, PymapServer, require_pymap
from agent.digest import DIGEST_HEADER
from agent.mailbox.client import Mailbox
from agent.model import ContactState

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- the session


@dataclass(frozen=True)
class DemoDraft:
    """A draft as it now sits in the demo Drafts folder (read back from the server)."""

    to: str
    subject: str
    body: str
    message_id: str | None


@dataclass
class DemoResult:
    """What `followup demo` built and where it left the digest."""

    directory: Path
    config: Config
    now: datetime
    people: int
    messages: int
    states: list[ContactState]
    cycle: service.RunResult
    digest_text: str
    html_path: Path
    digests_in_inbox: int
    drafts: list[DemoDraft]

    @property
    def picks(self) -> list[ContactState]:
        return self.cycle.plan.picks if self.cycle.plan else []

    @property
    def replies(self) -> list[ContactState]:
        return self.cycle.plan.replies if self.cycle.plan else []


def config_text(port: int, directory: Path, language: str, timezone: str) -> str:
    return f"""# Written by `followup demo`: the embedded demo server, nothing of yours.
[account]
email = "{ME}"
name = "{ME_NAME}"

[imap]
host = "{LOOPBACK}"
port = {port}
security = "none"
username = "{DEMO_USER}"

[digest]
timezone = "{timezone}"
language = "{language}"
send_empty = true

[storage]
path = "{directory / 'followup.db'}"
"""


class DemoSession:
    """The embedded server with the demo mailbox, and one run of the pipeline against it.

    While the session is open, this process's FOLLOWUP_IMAP_PASSWORD holds the demo password
    and the keyring is an empty one; both are put back on exit.
    """

    def __init__(self, now: datetime, *, language: str | None = None,
                 directory: Path | None = None) -> None:
        require_pymap()
        self.now = now
        self.language = language or ("de" if os.environ.get("LANG", "").startswith("de")
                                     else "en")
        self.directory = directory or Path(tempfile.mkdtemp(prefix="followup-demo-"))
        self.password = secrets.token_urlsafe(12)
        self.server = PymapServer()
        self._saved_env: str | None = None
        self._saved_keyring: keyring.backend.KeyringBackend | None = None

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def username(self) -> str:
        return DEMO_USER

    def __enter__(self) -> Self:
        self._saved_env = os.environ.get("FOLLOWUP_IMAP_PASSWORD")
        self._saved_keyring = keyring.get_keyring()
        os.environ["FOLLOWUP_IMAP_PASSWORD"] = self.password
        # Never the user's keyring: the password lookup finds nothing there and goes on to
        # the environment. keyring's classes are not annotated.
        keyring.set_keyring(keyring.backends.null.Keyring())  # type: ignore[no-untyped-call]
        try:
            self.server.start()
            self.server.add_user(DEMO_USER, self.password)
        except BaseException:
            self._restore()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.server.stop()
        self._restore()

    def _restore(self) -> None:
        if self._saved_env is None:
            os.environ.pop("FOLLOWUP_IMAP_PASSWORD", None)
        else:
            os.environ["FOLLOWUP_IMAP_PASSWORD"] = self._saved_env
        if self._saved_keyring is not None:
            keyring.set_keyring(self._saved_keyring)

    def _mailbox(self) -> Mailbox:
        return Mailbox.open(self.host, self.port, "none",
                            password_login(DEMO_USER, self.password), timeout=30)

    def fill(self) -> DemoMailbox:
        box = generate(self.now)
        with self._mailbox() as mailbox:
            for item in box.messages:
                mailbox.append(item.folder, item.raw, flags=item.flags, when=item.when)
        return box

    def run(self) -> DemoResult:
        """Fill the mailbox, then scan, decide, digest (INBOX + HTML file), drafts."""
        box = self.fill()
        path = self.directory / "config.toml"
        path.write_text(config_text(self.port, self.directory, self.language,
                                    local_timezone_name()), encoding="utf-8")
        path.chmod(0o600)
        config = load_config(path)
        cycle = service.run_cycle(config, self.now)
        html_path = self.directory / "digest.html"
        # The same plan (today's picks are recorded), rendered once more into a file.
        preview = service.run_digest(config, self.now, output=html_path)
        with service.open_store(config) as store:
            states = plan.decide(config, store, self.now)
            ours = {d.message_id for d in store.journal.drafts("pending")}
        digest_text = (cycle.digest.text if cycle.digest is not None and cycle.digest.text
                       else preview.text or "")
        with self._mailbox() as mailbox:
            digests = _with_header(mailbox, "INBOX", DIGEST_HEADER)
            drafts_folder = mailbox.roles().drafts or "Drafts"
            drafts = [d for d in map(_draft, _all(mailbox, drafts_folder))
                      if d.message_id in ours]
        return DemoResult(
            directory=self.directory, config=config, now=self.now, people=len(box.people),
            messages=len(box.messages), states=states, cycle=cycle, digest_text=digest_text,
            html_path=html_path, digests_in_inbox=len(digests), drafts=drafts)

    def wait(self) -> None:
        """Keep the server up until SIGINT/SIGTERM."""
        from agent.daemon import stop_on_signals

        stopped = threading.Event()
        with stop_on_signals(stopped.set):
            while not stopped.wait(1.0):
                pass


def _all(mailbox: Mailbox, folder: str) -> Iterator[bytes]:
    uids = mailbox.search(folder, ["ALL"])
    messages = mailbox.fetch_messages(folder, uids) if uids else {}
    for uid in sorted(messages):
        yield messages[uid]


def _with_header(mailbox: Mailbox, folder: str, header: str) -> list[bytes]:
    return [raw for raw in _all(mailbox, folder)
            if email.message_from_bytes(raw, policy=email.policy.default).get(header)]


def _draft(raw: bytes) -> DemoDraft:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    body = message.get_body(("plain",)) if isinstance(message, EmailMessage) else None
    text = body.get_content() if body is not None else ""
    return DemoDraft(to=str(message.get("To", "")), subject=str(message.get("Subject", "")),
                     body=text, message_id=str(message.get("Message-ID", "")).strip("<> ") or None)
