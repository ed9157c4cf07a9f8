"""How followup signs in to a server: a password, or an OAuth2 access token (SASL).

``login(...)`` turns an [imap], [smtp] or [[mailbox]] section into a ``Login`` that the IMAP
and SMTP code hand to the server: the password (keyring, password_command, environment), or
an access token renewed from the refresh token `followup login` stored. The OAuth2 details
live in this package: endpoints, tokens, the sign-in flows, the SASL messages.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from agent import credentials
from agent.config import Config, MailboxConfig, ServerLogin

if TYPE_CHECKING:
    from agent.auth import tokens

# The OAuth2 modules (tokens, endpoints: ~5 ms to import) are imported where an OAuth2 sign-in
# needs them: a password login, like every no-change rescan with one, goes without.

PASSWORD = "password"  # noqa: S105 - the name of a sign-in method
OAUTH2 = "oauth2"


@dataclass(frozen=True)
class Login:
    """What a connection needs to sign in: who, and a password or an access token."""

    username: str
    secret: str = field(repr=False)  # the password, or the OAuth2 access token
    method: str = PASSWORD  # password | oauth2
    # oauth2: a new access token, asked for once when the server refuses the first.
    renew: Callable[[], str] | None = field(default=None, repr=False, compare=False)
    source: str = ""  # where the secret came from (`followup doctor` says)

    @property
    def oauth2(self) -> bool:
        return self.method == OAUTH2


def password_login(username: str, password: str) -> Login:
    """A login with a password already at hand (init, the demo)."""
    return Login(username, credentials.remember(password))


def oauth_account(kind: str, settings: ServerLogin, username: str,
                  label: str) -> tokens.Account:
    from agent.auth import tokens

    timeout = getattr(settings, "timeout", 60.0)
    return tokens.account(kind, settings, username, label, timeout)


def login(kind: str, settings: ServerLogin, username: str, label: str) -> Login:
    """The Login for ``settings`` (``kind`` imap or smtp; ``label`` names the section)."""
    if not settings.oauth2:
        password, source = credentials.lookup_password(kind, username, settings.password_command)
        return Login(username, password, source=source)
    from agent.auth import tokens

    acct = oauth_account(kind, settings, username, label)
    token = tokens.access_token(acct)
    return Login(username, token.token, OAUTH2,
                 renew=lambda: tokens.access_token(acct, renew=True).token,
                 source=f"OAuth2 ({acct.endpoints.provider}), refresh token from {token.source}")


def mailbox_label(mailbox: MailboxConfig) -> str:
    return "[imap]" if mailbox.primary else f"[[mailbox]] {mailbox.name!r}"


def imap_login(mailbox: MailboxConfig) -> Login:
    return login("imap", mailbox.imap, mailbox.imap.username, mailbox_label(mailbox))


def smtp_login(config: Config) -> Login | None:
    """The [smtp] login; None when [smtp] has no username (a relay without AUTH)."""
    smtp = config.smtp
    if smtp is None or not smtp.username:
        return None
    return login("smtp", smtp, smtp.username, "[smtp]")


def oauth_accounts(config: Config) -> list[tokens.Account]:
    """Every OAuth2 sign-in the config uses, once each (IMAP and SMTP of one account at one
    provider share one sign-in with the scopes of both)."""
    from agent.auth.endpoints import joined

    found: dict[tuple[str, str, str], tokens.Account] = {}
    sections: list[tuple[str, ServerLogin, str, str]] = [
        ("imap", m.imap, m.imap.username, mailbox_label(m)) for m in config.mailboxes]
    if config.smtp is not None and config.smtp.username:
        sections.append(("smtp", config.smtp, config.smtp.username, "[smtp]"))
    for kind, settings, username, label in sections:
        if not settings.oauth2:
            continue
        acct = oauth_account(kind, settings, username, label)
        held = found.get(acct.cache_key)
        if held is None:
            found[acct.cache_key] = acct
        else:
            found[acct.cache_key] = replace(held, endpoints=joined(held.endpoints,
                                                                   acct.endpoints))
    return list(found.values())
