"""`followup init`: the setup dialogue that asks (or takes flags), logs in and writes the config.

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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from agent import auth, credentials, language
from agent.auth import password_login
from agent.auth.signin import sign_in
from agent.config import local_timezone_name, parse_config_text
from agent.configspec import (
    CONVERTERS,
    DEFAULT_PORTS,
    LANGUAGES,
    OAUTH_HOSTS,
    SECURITY_CHOICES,
    SPEC,
)
from agent.errors import CredentialError, LoginRefused, UsageError
from agent.mailbox.client import Mailbox
from agent.mailbox.folders import FolderRoles
from agent.providers import (
    APP_LOGIN,
    APP_OR_OAUTH,
    OAUTH_LOGIN,
    PROVIDERS,
    Provider,
    provider_by_key,
    provider_for_address,
)

log = logging.getLogger(__name__)

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
    auth: str | None = None  # password | oauth2; default: oauth2 where only that works
    client_id: str | None = None
    client_secret: str | None = None
    oauth_flow: str | None = None  # device | browser; default: signin.choose_flow


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
    oauth_provider: str | None = None  # set: auth = "oauth2"
    client_id: str | None = None
    client_secret: str | None = None


@dataclass(frozen=True)
class InitResult:
    """What `followup init` wrote and found on the server."""

    path: Path
    answers: Answers
    folders: list[str]
    scan_folders: list[str]
    roles: FolderRoles
    password_in_keyring: bool


Connect = Callable[[str, int, str, str, str], Mailbox]


def _open_mailbox(host: str, port: int, security: str, username: str,
                  password: str) -> Mailbox:
    return Mailbox.open(host, port, security, password_login(username, password), timeout=30)


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

    answers = Answers(email=email, name=name, imap_host=host, imap_port=port, security=security,
                      username=username, password_command=options.password_command,
                      language=language, timezone=timezone, digest_time=digest_time)
    password: str | None = None
    oauth_provider = _oauth_provider(options, provider, host)
    if oauth_provider is not None:
        answers = _oauth_answers(options, ui, answers, oauth_provider)
        mailbox = _oauth_log_in(options, ui, answers, path)
    else:
        mailbox, password = _log_in(options, ui, provider, host, port, security, username,
                                    connect)
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

    answers = replace(answers, keyring_missing=keyring_missing)
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
    hint = (" (an app password)" if provider and provider.login in (APP_LOGIN, APP_OR_OAUTH)
            else "")
    attempts = 3
    for attempt in range(1, attempts + 1):
        secret = ui.ask(f"Password{hint} for {username}", flag="--password-stdin or "
                        "--password-command", hide=True)
        credentials.remember(secret)
        ui.say(f"Connecting to {host}:{port} …")
        try:
            return connect(host, port, security, username, secret), secret
        except LoginRefused as exc:
            if attempt == attempts:
                raise
            ui.say(f"{exc}. Try again.")
    raise AssertionError("unreachable")  # pragma: no cover


def _oauth_provider(options: InitOptions, provider: Provider | None, host: str) -> str | None:
    """The OAuth2 provider to sign in with, or None for a password."""
    wanted = options.auth or ("oauth2" if provider and provider.login == OAUTH_LOGIN
                              else "password")
    if wanted != "oauth2":
        return None
    found = (provider.oauth if provider else None) or OAUTH_HOSTS.get(host.lower())
    if found is None:
        raise UsageError("init signs in with OAuth2 at Google and Microsoft; for another "
                         "provider set [imap] auth = \"oauth2\", oauth_provider = \"custom\" and "
                         "its URLs by hand (README: OAuth2), then run `followup login`")
    return found


def _oauth_answers(options: InitOptions, ui: Dialogue, answers: Answers,
                   oauth_provider: str) -> Answers:
    ui.say("OAuth2: followup signs in with an app registration of your own (README: "
           "\"OAuth2\" shows the few steps at Google Cloud or Microsoft Entra).")
    client_id = options.client_id or ui.ask("Client ID of your app registration",
                                            flag="--client-id")
    secret = options.client_secret
    if secret is None and oauth_provider == "google":
        secret = ui.ask("Client secret of that registration (Google issues one to desktop "
                        "apps; it is not a password)", flag="--client-secret", default="")
    return replace(answers, oauth_provider=oauth_provider, client_id=client_id.strip(),
                   client_secret=(secret or "").strip() or None, password_command=None)


def _oauth_log_in(options: InitOptions, ui: Dialogue, answers: Answers, path: Path) -> Mailbox:
    """Sign in (device code or browser), keep the refresh token, log in with the token."""
    config = parse_config_text(config_text(answers), source=path)
    (account,) = auth.oauth_accounts(config)
    done = sign_in(account, ui.say, flow=options.oauth_flow)
    ui.say(done.line())
    ui.say(f"Connecting to {answers.imap_host}:{answers.imap_port} …")
    return Mailbox.connect(config.imap, auth.imap_login(config.primary))


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
        "# (`python -m agent.configspec` prints it). Check the setup with `followup doctor`.",
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
    if answers.oauth_provider:
        lines += ["auth = \"oauth2\"", f"oauth_provider = {_q(answers.oauth_provider)}",
                  f"client_id = {_q(answers.client_id or '')}"]
        if answers.client_secret:
            lines.append(f"client_secret = {_q(answers.client_secret)}")
        lines.append(f"# refresh token: in the system keyring (service \"followup\", "
                     f"oauth2:{answers.username}); `followup login` renews the sign-in")
    elif answers.password_command:
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
