"""One error hierarchy: every error the user can fix has an exit code and one clear sentence."""

from __future__ import annotations

from collections.abc import Iterable

EXIT_OPERATIONAL = 1
EXIT_USAGE = 2


class FollowupError(Exception):
    """Base of every error shown to the user without a traceback."""

    exit_code = EXIT_OPERATIONAL


class UsageError(FollowupError):
    """The command line asks for something impossible (unknown contact, bad duration).

    ``de`` is the same in German, where a command in a mail can lead to it: the answer to a
    digest confirms in the digest's language (agent.commands).
    """

    exit_code = EXIT_USAGE

    def __init__(self, message: str, *, de: str | None = None) -> None:
        super().__init__(message)
        self.de = de

    def said_in(self, language: str) -> str:
        """The message in ``language`` (``de`` or English)."""
        return self.de if language == "de" and self.de is not None else str(self)


class ConfigError(FollowupError):
    """The configuration has one or more problems; all of them are listed at once."""

    exit_code = EXIT_USAGE

    def __init__(self, problems: Iterable[str], source: str = "") -> None:
        self.problems = list(problems)
        self.source = source
        where = f" in {source}" if source else ""
        if len(self.problems) == 1:
            message = f"configuration problem{where}: {self.problems[0]}"
        else:
            lines = "\n".join(f"  - {p}" for p in self.problems)
            message = f"{len(self.problems)} configuration problems{where}:\n{lines}"
        super().__init__(message)


class CredentialError(FollowupError):
    """No password could be found, or a password_command failed."""

    exit_code = EXIT_USAGE


class MailboxError(FollowupError):
    """The IMAP server could not be reached, refused us, or answered nonsense."""


class TransientMailboxError(MailboxError):
    """A network-level failure that is worth retrying (drop, timeout, server going away)."""


class LoginRefused(MailboxError):
    """The IMAP server refused the login: username or password (or app password) is wrong."""


class DeliveryError(FollowupError):
    """The digest could not be delivered (SMTP or IMAP APPEND failed)."""


class StoreError(FollowupError):
    """The database cannot be opened or written (locked, unreadable, disk full)."""


class TemplateError(FollowupError):
    """A user template is broken; the message names the file and line."""

    exit_code = EXIT_USAGE


class AddressbookError(FollowupError):
    """An address book could not be read (missing file, server unreachable, login refused).

    Never stops the mail scan: the sync step shows it as a warning naming the source.
    """


class SignInExpired(CredentialError):
    """The OAuth2 sign-in is gone (refresh token revoked or expired): `followup login` again."""


class SignInUnavailable(TransientMailboxError):
    """The OAuth2 token endpoint could not be reached or failed; worth retrying."""
