"""Find the IMAP/SMTP password: keyring, then password_command, then the environment."""

from __future__ import annotations

import logging
import os
import re
import shlex
import subprocess
from collections.abc import Mapping

import keyring
import keyring.errors

from agent.errors import CredentialError

log = logging.getLogger(__name__)

SERVICE = "followup"
COMMAND_TIMEOUT = 60

# Every secret this process has seen, so that log lines and error texts can be scrubbed.
_SECRETS: set[str] = set()
# Secrets shorter than this are scrubbed only where they stand alone (not inside a word):
# replacing every "ab" in every line would make all output unreadable.
SHORT_SECRET = 4


def remember(secret: str) -> str:
    if secret:
        _SECRETS.add(secret)
    return secret


def redact(text: str) -> str:
    """Replace every known secret in ``text`` by ``***``."""
    for secret in _SECRETS:
        if secret not in text:
            continue
        if len(secret) >= SHORT_SECRET:
            text = text.replace(secret, "***")
        else:
            text = re.sub(rf"(?<![^\W_]){re.escape(secret)}(?![^\W_])", "***", text)
    return text


class RedactingFilter(logging.Filter):
    """A logging filter that scrubs known secrets from every record it passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def env_variable(kind: str) -> str:
    return f"FOLLOWUP_{kind.upper()}_PASSWORD"


def section(kind: str) -> str:
    """The config section a kind of password belongs to, as the user writes it."""
    return "[[addressbook]]" if kind == "carddav" else f"[{kind}]"


def get_password(
    kind: str,
    username: str,
    password_command: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> str:
    """Return the password for ``kind`` ("imap" or "smtp"); never log or echo it."""
    return lookup_password(kind, username, password_command, environ)[0]


def lookup_password(
    kind: str,
    username: str,
    password_command: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[str, str]:
    """The password and where it came from ("keyring", "password_command", or the variable)."""
    environ = os.environ if environ is None else environ
    keyring_problem = None
    try:
        secret = keyring.get_password(SERVICE, username)
    except keyring.errors.NoKeyringError:
        keyring_problem = "no keyring is available on this machine"
        secret = None
    except keyring.errors.KeyringError as exc:
        keyring_problem = f"the keyring failed ({type(exc).__name__})"
        secret = None
    if secret:
        log.debug("%s password for %s found in the keyring", kind, username)
        return remember(secret), "keyring"

    if password_command:
        return remember(run_password_command(kind, password_command)), "password_command"

    secret = environ.get(env_variable(kind))
    if secret:
        log.debug("%s password taken from %s", kind, env_variable(kind))
        return remember(secret), env_variable(kind)

    ways = (
        f"set {section(kind)} password_command (e.g. \"pass show mail/{kind}\") or the environment "
        f"variable {env_variable(kind)}"
    )
    if keyring_problem:
        raise CredentialError(
            f"no {kind.upper()} password for {username}: {keyring_problem}; {ways}"
        )
    raise CredentialError(
        f"no {kind.upper()} password for {username}: run `followup password set"
        f"{' --' + kind if kind != 'imap' else ''}` to store it "
        f"in the keyring, or {ways}"
    )


def run_password_command(kind: str, command: str, key: str = "password_command") -> str:
    """Run ``command`` without a shell; its first line of output is the password (or, for
    ``key`` token_command, the refresh token)."""
    where = f"{section(kind)} {key}"
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise CredentialError(f"{where} cannot be parsed: {exc}") from None
    if not argv:
        raise CredentialError(f"{where} is empty")
    try:
        result = subprocess.run(
            argv, capture_output=True, timeout=COMMAND_TIMEOUT, check=False,
            stdin=subprocess.DEVNULL, env=child_environment(),
        )
    except FileNotFoundError:
        raise CredentialError(
            f"{where}: program {argv[0]!r} not found; check the path"
        ) from None
    except PermissionError:
        raise CredentialError(
            f"{where}: {argv[0]!r} is not executable"
        ) from None
    except subprocess.TimeoutExpired:
        raise CredentialError(
            f"{where} did not finish within {COMMAND_TIMEOUT} s "
            "(is it waiting for input?)"
        ) from None
    if result.returncode != 0:
        # stderr is shown (it usually says why) but never stdout, which may hold a secret.
        reason = redact(result.stderr.decode("utf-8", "replace")).strip().splitlines()
        detail = f": {reason[0][:200]}" if reason else ""
        raise CredentialError(
            f"{where} {argv[0]!r} failed with exit status "
            f"{result.returncode}{detail}"
        )
    lines = result.stdout.decode("utf-8", "replace").splitlines()
    secret = lines[0].rstrip("\r") if lines else ""
    if not secret:
        raise CredentialError(f"{where} {argv[0]!r} printed nothing")
    return secret


def feed_command(kind: str, command: str, secret: str) -> None:
    """Run ``command`` without a shell with ``secret`` on its standard input (a password
    manager's insert command: `followup login --store-command`)."""
    argv = shlex.split(command) if command.strip() else []
    if not argv:
        raise CredentialError("--store-command is empty")
    try:
        result = subprocess.run(
            argv, input=(secret + "\n").encode(), capture_output=True,
            timeout=COMMAND_TIMEOUT, check=False, env=child_environment())
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CredentialError(f"--store-command {argv[0]!r} could not run "
                              f"({type(exc).__name__})") from None
    if result.returncode != 0:
        reason = redact(result.stderr.decode("utf-8", "replace")).strip().splitlines()
        detail = f": {reason[0][:200]}" if reason else ""
        raise CredentialError(f"--store-command {argv[0]!r} failed with exit status "
                              f"{result.returncode}{detail}")
    log.debug("%s refresh token handed to %s", kind, argv[0])


def child_environment() -> dict[str, str]:
    """This process's environment without any password followup was handed in it (those
    are remembered as secrets, so that the command's error output is scrubbed of them)."""
    kept = {}
    for name, value in os.environ.items():
        if name.startswith("FOLLOWUP_") and name.endswith("_PASSWORD"):
            remember(value)
        else:
            kept[name] = value
    return kept


def set_password(username: str, secret: str) -> None:
    remember(secret)
    try:
        keyring.set_password(SERVICE, username, secret)
    except keyring.errors.NoKeyringError:
        raise CredentialError(
            "no keyring is available on this machine; use password_command in the config "
            "(e.g. \"pass show mail/imap\") or the environment variable FOLLOWUP_IMAP_PASSWORD"
        ) from None
    except keyring.errors.KeyringError as exc:
        raise CredentialError(f"the keyring refused to store the password ({type(exc).__name__})"
                              ) from None


def delete_password(username: str) -> bool:
    """Remove the stored password; False when there was none."""
    try:
        keyring.delete_password(SERVICE, username)
    except keyring.errors.PasswordDeleteError:
        return False
    except keyring.errors.NoKeyringError:
        raise CredentialError("no keyring is available on this machine; nothing to delete"
                              ) from None
    return True
