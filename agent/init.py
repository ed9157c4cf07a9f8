"""`followup init`: the built-in table of mail hosts, and the setup dialogue that writes the config.

The dialogue talks through a small `Dialogue` interface (the CLI provides one on top of
click), so that every question can also be answered by a flag: without a terminal, a question
with no flag takes its default or stops with a message naming the flag.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from agent import credentials, language
from agent.config import (
    CONVERTERS,
    DEFAULT_PORTS,
    LANGUAGES,
    SECURITY_CHOICES,
    SPEC,
    local_timezone_name,
    parse_config_text,
)
from agent.errors import CredentialError, MailboxError, UsageError
from agent.mailbox import FolderRoles, Mailbox

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- the host table

APP_LOGIN = "app password"
PLAIN_LOGIN = "password"
OAUTH_LOGIN = "OAuth2 only"


@dataclass(frozen=True)
class Provider:
    """What followup needs to know about one mail host, and what the user should know."""

    key: str  # for --provider
    name: str
    domains: tuple[str, ...]  # addresses recognised automatically
    imap_host: str
    imap_port: int
    imap_security: str
    smtp_host: str
    smtp_port: int
    smtp_security: str
    login: str  # PLAIN_LOGIN | APP_LOGIN | OAUTH_LOGIN
    login_note: str  # what to do before the first login
    folders: str  # what the folder layout looks like there

    @property
    def works(self) -> bool:
        """False where followup cannot log in at all (OAuth2 is not implemented yet)."""
        return self.login != OAUTH_LOGIN


PROVIDERS: tuple[Provider, ...] = (
    Provider(
        "gmail", "Gmail / Google Workspace", ("gmail.com", "googlemail.com"),
        "imap.gmail.com", 993, "ssl", "smtp.gmail.com", 465, "ssl", APP_LOGIN,
        "Create one under Google account → Security → 2-Step Verification → App passwords "
        "(Workspace admins can switch app passwords off).",
        "[Gmail]/… (or [Google Mail]/…); All Mail holds everything, so only All Mail is "
        "scanned. Folders hidden from IMAP in Gmail's settings are not seen."),
    Provider(
        "microsoft", "Microsoft 365 / Outlook.com",
        ("outlook.com", "outlook.de", "hotmail.com", "hotmail.de", "live.com", "live.de",
         "msn.com"),
        "outlook.office365.com", 993, "ssl", "smtp.office365.com", 587, "starttls", OAUTH_LOGIN,
        "Microsoft has switched off password login for IMAP; followup cannot log in there "
        "without OAuth2, which it does not implement yet.",
        "Sent Items, Drafts, Deleted Items, Junk Email; in German Gesendete Elemente, "
        "Entwürfe, Gelöschte Elemente."),
    Provider(
        "gmx", "GMX", ("gmx.de", "gmx.net", "gmx.at", "gmx.ch"),
        "imap.gmx.net", 993, "ssl", "mail.gmx.net", 587, "starttls", PLAIN_LOGIN,
        "Switch on IMAP access first (web mail → Settings → POP3 & IMAP); with two-factor "
        "login, use an app password.",
        "German names (Gesendet, Entwürfe, Gelöscht, Spamverdacht), found by name."),
    Provider(
        "webde", "web.de", ("web.de",),
        "imap.web.de", 993, "ssl", "smtp.web.de", 587, "starttls", PLAIN_LOGIN,
        "Switch on IMAP access first (web mail → Settings → POP3 & IMAP); with two-factor "
        "login, use an app password.",
        "German names (Gesendet, Entwürfe, Papierkorb, Spam); mail from unknown senders lands "
        "in an extra folder, which is scanned too."),
    Provider(
        "t-online", "T-Online (Telekom)", ("t-online.de", "magenta.de"),
        "secureimap.t-online.de", 993, "ssl", "securesmtp.t-online.de", 465, "ssl", PLAIN_LOGIN,
        "The separate e-mail password set in the Telekom E-Mail Center, not the password of "
        "your Telekom login.",
        "German names (Gesendet, Entwürfe, Gelöscht), found by name."),
    Provider(
        "ionos", "IONOS (1&1)", (),
        "imap.ionos.de", 993, "ssl", "smtp.ionos.de", 465, "ssl", PLAIN_LOGIN,
        "The password of the mailbox (set in the IONOS control panel).",
        "German names (Gesendete Objekte, Entwürfe, Papierkorb, Spam), found by name."),
    Provider(
        "mailbox.org", "mailbox.org", ("mailbox.org",),
        "imap.mailbox.org", 993, "ssl", "smtp.mailbox.org", 465, "ssl", PLAIN_LOGIN,
        "Your mailbox.org password (an app password if you use two-factor login).",
        "Sent, Drafts, Trash, Junk, marked with SPECIAL-USE flags."),
    Provider(
        "posteo", "Posteo", ("posteo.de", "posteo.net", "posteo.at", "posteo.ch", "posteo.eu",
                             "posteo.org"),
        "posteo.de", 993, "ssl", "posteo.de", 465, "ssl", PLAIN_LOGIN,
        "Your Posteo password.",
        "Sent, Drafts, Trash, Spam, marked with SPECIAL-USE flags."),
    Provider(
        "fastmail", "Fastmail", ("fastmail.com", "fastmail.fm"),
        "imap.fastmail.com", 993, "ssl", "smtp.fastmail.com", 465, "ssl", APP_LOGIN,
        "Create one with IMAP access under Settings → Privacy & Security → App passwords.",
        "Sent, Drafts, Trash, Spam, Archive, marked with SPECIAL-USE flags."),
    Provider(
        "icloud", "iCloud Mail", ("icloud.com", "me.com", "mac.com"),
        "imap.mail.me.com", 993, "ssl", "smtp.mail.me.com", 587, "starttls", APP_LOGIN,
        "Create an app-specific one at account.apple.com → Sign-In and Security. If the full "
        "address is refused as username, try the part before the @.",
        "Sent Messages, Drafts, Deleted Messages, Junk; no SPECIAL-USE flags, found by name."),
    Provider(
        "yahoo", "Yahoo Mail", ("yahoo.com", "yahoo.de", "yahoo.co.uk", "ymail.com",
                                "rocketmail.com"),
        "imap.mail.yahoo.com", 993, "ssl", "smtp.mail.yahoo.com", 465, "ssl", APP_LOGIN,
        "Create one under Account security → Generate app password.",
        "Sent, Draft, Trash, Bulk (spam), Archive."),
)


def provider_for_address(email: str) -> Provider | None:
    """The table entry for the domain of ``email``, if the domain is a known one."""
    domain = email.rpartition("@")[2].strip().lower()
    return next((p for p in PROVIDERS if domain in p.domains), None)


def provider_by_key(key: str) -> Provider:
    wanted = key.strip().lower()
    for provider in PROVIDERS:
        if wanted in (provider.key, provider.name.lower()):
            return provider
    raise UsageError(f"unknown provider {key!r}; use one of: "
                     f"{', '.join(p.key for p in PROVIDERS)}")


def provider_table_markdown() -> str:
    """The README's provider table, generated from PROVIDERS (`python -m agent.init`)."""
    rows = [
        "| Provider | `--provider` | Addresses | IMAP server | Login | Folders |",
        "|---|---|---|---|---|---|",
    ]
    for p in PROVIDERS:
        domains = ", ".join(p.domains) if p.domains else "your own domain"
        login = f"**{p.login}**" if p.login != PLAIN_LOGIN else p.login
        login += f": {p.login_note}"
        rows.append(f"| {p.name} | `{p.key}` | {domains} | `{p.imap_host}:{p.imap_port}` "
                    f"({p.imap_security}) | {login} | {p.folders} |")
    return "\n".join(rows) + "\n"


# --------------------------------------------------------------------------- the dialogue


class Dialogue(Protocol):
    """How init talks to the user; the CLI implements it on top of click."""

    def ask(self, question: str, *, flag: str, default: str | None = None,
            hide: bool = False, check: Callable[[str], str] | None = None) -> str:
        """An answer (passed through ``check``); without a terminal: the default, or a
        UsageError naming ``flag``."""
        ...

    def confirm(self, question: str, *, default: bool) -> bool:
        """Yes or no; without a terminal (``--yes``): yes."""
        ...

    def say(self, text: str) -> None: ...

    @property
    def interactive(self) -> bool: ...


@dataclass(frozen=True)
class InitOptions:
    """The answers given as flags; None means "ask" (or take the default)."""

    email: str | None = None
    name: str | None = None
    provider: str | None = None
    imap_host: str | None = None
    imap_port: int | None = None
    security: str | None = None
    username: str | None = None
    password: str | None = None  # read from stdin by the CLI, never from argv
    password_command: str | None = None
    language: str | None = None
    timezone: str | None = None
    digest_time: str | None = None
    force: bool = False


@dataclass(frozen=True)
class Answers:
    """Everything the config file is written from."""

    email: str
    name: str
    imap_host: str
    imap_port: int
    security: str
    username: str
    password_command: str | None
    language: str
    timezone: str
    digest_time: str
    keyring_missing: bool = False


@dataclass(frozen=True)
class InitResult:
    path: Path
    answers: Answers
    folders: list[str]
    scan_folders: list[str]
    roles: FolderRoles
    password_in_keyring: bool


Connect = Callable[[str, int, str, str, str], Mailbox]


def _open_mailbox(host: str, port: int, security: str, username: str,
                  password: str) -> Mailbox:
    return Mailbox.open(host, port, security, username, password, timeout=30)


def _checker(section: str, name: str) -> Callable[[str], str]:
    """Validate an answer with the config's own converter for ``[section] name``."""
    key = next(k for k in SPEC if k.section == section and k.name == name)

    def check(text: str) -> str:
        value: object = text.strip()
        if key.kind == "port":
            try:
                value = int(str(value))
            except ValueError:
                raise ValueError(f"{text!r} is not a port number") from None
        try:
            CONVERTERS[key.kind](value, key)
        except ValueError as exc:
            raise ValueError(f"{key.label} {exc}") from None
        return str(value)

    return check


def _given(value: str | None, check: Callable[[str], str], flag: str) -> str | None:
    """A flag's value, validated; a bad one stops init with the flag's name."""
    if value is None:
        return None
    try:
        return check(value)
    except ValueError as exc:
        raise UsageError(f"{flag}: {exc}") from None


def guess_name(email: str) -> str:
    """'anna.mueller@…' → 'Anna Mueller': a starting point the user can correct."""
    local = email.partition("@")[0].split("+", 1)[0]
    parts = [p for p in re.split(r"[._\-]+", local) if p.isalpha()]
    return " ".join(p.capitalize() for p in parts) if len(parts) >= 2 else ""


def default_language(email: str) -> str:
    """The digest's language to offer: from the address's domain, else from $LANG."""
    found = language.from_address(email)
    if found is not None:
        return found[0]
    return "de" if os.environ.get("LANG", "").startswith("de") else "en"


def run_init(options: InitOptions, path: Path, ui: Dialogue, *,
             connect: Connect = _open_mailbox) -> InitResult:
    """Ask (or take from flags) every setting, log in, show the folders, write the config.

    Nothing is written before the login worked; the password goes to the keyring, never into
    the file.
    """
    if path.exists() and not options.force:
        raise UsageError(f"{path} already exists; use --force to replace it "
                         "(or --config PATH to write another file)")

    email = _given(options.email, _checker("account", "email"), "--email") or ui.ask(
        "Your email address", flag="--email", check=_checker("account", "email"))
    provider = _choose_provider(options, email, ui)
    if provider is not None:
        _describe_provider(provider, ui)
        if not provider.works and not ui.confirm("Continue anyway?", default=False):
            raise UsageError(f"setup stopped: followup cannot log in to {provider.name} yet; "
                             "nothing was written")

    security = _given(options.security, _checker("imap", "security"), "--security")
    if security is None:
        security = provider.imap_security if provider else ui.ask(
            f"Connection security ({', '.join(SECURITY_CHOICES)})", flag="--security",
            default="ssl", check=_checker("imap", "security"))
    host = _given(options.imap_host, _checker("imap", "host"), "--imap-host")
    if host is None:
        host = provider.imap_host if provider else ui.ask(
            "IMAP server", flag="--imap-host",
            default=f"imap.{email.rpartition('@')[2]}", check=_checker("imap", "host"))
    port = options.imap_port
    if port is None:
        if provider and provider.imap_security == security:
            port = provider.imap_port
        else:
            port = int(ui.ask("IMAP port", flag="--imap-port",
                              default=str(DEFAULT_PORTS["imap"][security]),
                              check=_checker("imap", "port")))
    username = _given(options.username, _checker("imap", "username"), "--username") or ui.ask(
        "Login name", flag="--username", default=email, check=_checker("imap", "username"))
    name = options.name if options.name is not None else ui.ask(
        "Your name (shown in the From of drafts)", flag="--name", default=guess_name(email),
        check=_checker("account", "name"))
    language = _given(options.language, _checker("digest", "language"), "--language") or ui.ask(
        f"Language of the digest ({' | '.join(LANGUAGES)})", flag="--language",
        default=default_language(email), check=_checker("digest", "language"))
    timezone = _given(options.timezone, _checker("digest", "timezone"), "--timezone") or ui.ask(
        "Your time zone", flag="--timezone", default=local_timezone_name(),
        check=_checker("digest", "timezone"))
    digest_time = _given(options.digest_time, _checker("digest", "time"),
                         "--digest-time") or ui.ask(
        "Time of the morning digest (HH:MM)", flag="--digest-time", default="07:30",
        check=_checker("digest", "time"))

    mailbox, password = _log_in(options, ui, provider, host, port, security, username, connect)
    with mailbox:
        folders = [f.name for f in mailbox.list_folders() if f.selectable]
        roles = mailbox.roles()
        scan_folders = mailbox.folders_to_scan()
    _show_folders(ui, folders, roles, scan_folders)

    keyring_missing = False
    in_keyring = False
    if password is not None:
        try:
            credentials.set_password(username, password)
            in_keyring = True
            ui.say(f"Stored the password in the system keyring (service \"followup\", "
                   f"user {username}).")
        except CredentialError as exc:
            keyring_missing = True
            ui.say(f"Could not store the password: {exc}.")
            ui.say("The config file gets a commented password_command line to fill in: a "
                   "command that prints the password on its first line.")

    answers = Answers(email=email, name=name, imap_host=host, imap_port=port, security=security,
                      username=username, password_command=options.password_command,
                      language=language, timezone=timezone, digest_time=digest_time,
                      keyring_missing=keyring_missing)
    text = config_text(answers)
    parse_config_text(text, source=path)  # the file must load exactly as written
    write_private_file(path, text, replace=options.force)
    ui.say(f"Wrote {path} (readable only by you).")
    return InitResult(path=path, answers=answers, folders=folders, scan_folders=scan_folders,
                      roles=roles, password_in_keyring=in_keyring)


def _choose_provider(options: InitOptions, email: str, ui: Dialogue) -> Provider | None:
    if options.provider is not None:
        return None if options.provider.lower() == "other" else provider_by_key(options.provider)
    provider = provider_for_address(email)
    if provider is not None or options.imap_host is not None or not ui.interactive:
        return provider
    keys = [p.key for p in PROVIDERS]
    answer = ui.ask(f"Which provider hosts {email}? ({', '.join(keys)}, or other)",
                    flag="--provider", default="other",
                    check=lambda text: text if text.strip().lower() == "other"
                    else provider_by_key(text).key)
    return None if answer.strip().lower() == "other" else provider_by_key(answer)


def _describe_provider(provider: Provider, ui: Dialogue) -> None:
    ui.say(f"{provider.name}: IMAP {provider.imap_host}:{provider.imap_port} "
           f"({provider.imap_security}).")
    if provider.login == OAUTH_LOGIN:
        ui.say(f"Warning: {provider.login_note} If your organisation still allows password "
               "login (some on-premises Exchange servers do), you can try.")
    else:
        ui.say(f"Login: {provider.login}. {provider.login_note}")
    ui.say(f"Folders: {provider.folders}")


def _log_in(options: InitOptions, ui: Dialogue, provider: Provider | None, host: str, port: int,
            security: str, username: str, connect: Connect) -> tuple[Mailbox, str | None]:
    """Log in; returns the mailbox and the password to store (None: password_command)."""
    if options.password_command is not None:
        secret = credentials.run_password_command("imap", options.password_command)
        ui.say(f"Connecting to {host}:{port} …")
        return connect(host, port, security, username, secret), None
    if options.password is not None:
        credentials.remember(options.password)
        ui.say(f"Connecting to {host}:{port} …")
        return connect(host, port, security, username, options.password), options.password
    hint = " (an app password)" if provider and provider.login == APP_LOGIN else ""
    attempts = 3
    for attempt in range(1, attempts + 1):
        secret = ui.ask(f"Password{hint} for {username}", flag="--password-stdin or "
                        "--password-command", hide=True)
        credentials.remember(secret)
        ui.say(f"Connecting to {host}:{port} …")
        try:
            return connect(host, port, security, username, secret), secret
        except MailboxError as exc:
            if attempt == attempts or "login" not in str(exc):
                raise
            ui.say(f"{exc}. Try again.")
    raise AssertionError("unreachable")  # pragma: no cover


def _show_folders(ui: Dialogue, folders: Sequence[str], roles: FolderRoles,
                  scan_folders: Sequence[str]) -> None:
    role_of = {getattr(roles, r): r for r in ("sent", "drafts", "junk", "trash", "all")
               if getattr(roles, r)}
    ui.say("Logged in. Folders on the server:")
    for folder in folders:
        role = role_of.get(folder)
        how = f" (found by {roles.how.get(role, 'name')})" if role else ""
        mark = "scan" if folder in scan_folders else "    "
        ui.say(f"  {mark}  {folder}" + (f"  ← {role}{how}" if role else ""))
    if not roles.sent:
        ui.say("No Sent folder found: mail you sent is only seen where it is filed; name the "
               "folders in [imap] folders if needed.")
    if not roles.drafts:
        ui.say("No Drafts folder found: create one (named Drafts) before followup can leave "
               "check-in drafts.")


# --------------------------------------------------------------------------- the file


def _q(value: str) -> str:
    # A JSON string is a valid TOML basic string (same escapes).
    return json.dumps(value, ensure_ascii=False)


def config_text(answers: Answers) -> str:
    """The config file: the answers, and pointers to everything else."""
    lines = [
        "# followup configuration, written by `followup init`.",
        "# Every other key, with its default, is documented in config.toml.example",
        "# (`python -m agent.config` prints it). Check the setup with `followup doctor`.",
        "",
        "[account]",
        f"email = {_q(answers.email)}",
        f"name = {_q(answers.name)}",
        "# aliases = [\"you@old-job.example\"]   # more of your own addresses",
        "",
        "[imap]",
        f"host = {_q(answers.imap_host)}",
        f"port = {answers.imap_port}",
        f"security = {_q(answers.security)}",
        f"username = {_q(answers.username)}",
    ]
    if answers.password_command:
        lines.append(f"password_command = {_q(answers.password_command)}")
    elif answers.keyring_missing:
        lines += [
            "# No keyring was available when this file was written. Put a command here that",
            "# prints the password on its first line, or set FOLLOWUP_IMAP_PASSWORD:",
            "# password_command = \"pass show mail/imap\"",
        ]
    else:
        lines.append(f"# password: in the system keyring (service \"followup\", user "
                     f"{answers.username}); never in this file")
    lines += [
        "",
        "[digest]",
        f"time = {_q(answers.digest_time)}",
        f"timezone = {_q(answers.timezone)}",
        f"language = {_q(answers.language)}",
        "",
        "[daemon]",
        "scan_interval = \"30m\"",
    ]
    return "\n".join(lines) + "\n"


def write_private_file(path: Path, text: str, *, replace: bool) -> None:
    """Write ``text`` atomically (temp file + rename) with mode 0600.

    A reader never sees half a file, and an existing file is replaced only when asked.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        temp.chmod(0o600)  # mkstemp already does; say it anyway, umask cannot widen it
        if not replace and path.exists():
            raise UsageError(f"{path} appeared while init was running; use --force to replace it")
        temp.replace(path)
    finally:
        temp.unlink(missing_ok=True)


if __name__ == "__main__":  # pragma: no cover
    print(provider_table_markdown(), end="")  # noqa: T201
