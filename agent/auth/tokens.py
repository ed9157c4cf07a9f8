"""OAuth2 tokens: the refresh token (keyring or token_command), access tokens renewed in time.

The refresh token lives in the keyring (service "followup", name ``oauth2:USERNAME``), or
comes from ``token_command``. Access tokens live only in this process's memory: renewed
``REFRESH_MARGIN`` before they expire, and once more when a server refuses one. Every token
is registered with ``credentials.remember`` the moment it is seen, so no log line or error
text can show it; none is ever written to the database.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import keyring
import keyring.errors

from agent import credentials
from agent.auth.endpoints import Endpoints, endpoints
from agent.config import ServerLogin
from agent.errors import CredentialError, SignInExpired, SignInUnavailable

log = logging.getLogger(__name__)

REFRESH_MARGIN = 120.0  # seconds before expiry at which an access token is renewed
Clock = Callable[[], float]


@dataclass(frozen=True)
class Account:
    """One OAuth2 sign-in: who, at which provider, with which registered client."""

    kind: str  # imap | smtp
    label: str  # the config section, for messages: "[imap]", "[[mailbox]] 'work'"
    username: str
    endpoints: Endpoints
    client_id: str
    client_secret: str | None = field(repr=False)
    token_command: str | None
    timeout: float

    @property
    def keyring_name(self) -> str:
        return f"oauth2:{self.username}"

    @property
    def cache_key(self) -> tuple[str, str, str]:
        return (self.endpoints.token_url, self.client_id, self.username.lower())

    def words(self) -> str:
        return f"{self.username} at {self.endpoints.provider} ({self.endpoints.host})"


def account(kind: str, settings: ServerLogin, username: str, label: str,
            timeout: float) -> Account:
    """The sign-in an ``auth = "oauth2"`` section describes."""
    if settings.client_secret:
        credentials.remember(settings.client_secret)
    return Account(kind, label, username, endpoints(kind, settings, label),
                   settings.client_id or "", settings.client_secret, settings.token_command,
                   timeout)


@dataclass(frozen=True)
class AccessToken:
    """An access token and what the provider said about it."""

    token: str = field(repr=False)
    expires_at: float | None  # epoch seconds; None: the provider did not say
    scopes: tuple[str, ...]
    source: str  # where its refresh token came from: "keyring" or "token_command"

    def seconds_left(self, clock: Clock = time.time) -> float | None:
        return None if self.expires_at is None else self.expires_at - clock()


_CACHE: dict[tuple[str, str, str], AccessToken] = {}
_LOCK = threading.Lock()


def forget_access_tokens() -> None:
    """Drop every access token this process holds (the next use renews)."""
    with _LOCK:
        _CACHE.clear()


def remember_access_token(acct: Account, token: AccessToken) -> None:
    """Keep an access token a sign-in just gave, so the first connection needs no refresh."""
    with _LOCK:
        _CACHE[acct.cache_key] = token


def access_token(acct: Account, *, renew: bool = False, clock: Clock = time.time) -> AccessToken:
    """A valid access token: the one held unless it expires within REFRESH_MARGIN (or
    ``renew``: a server just refused it), else a new one from the refresh token."""
    with _LOCK:
        held = _CACHE.get(acct.cache_key)
        if held is not None and not renew and (
                held.expires_at is None or held.expires_at - REFRESH_MARGIN > clock()):
            return held
        refresh, source = refresh_token(acct)
        fresh = _refresh(acct, refresh, source, clock)
        _CACHE[acct.cache_key] = fresh
        return fresh


def as_access_token(token: dict[str, Any], source: str, clock: Clock) -> AccessToken:
    """A token endpoint's answer as an AccessToken (its secrets remembered for scrubbing)."""
    value = str(token.get("access_token") or "")
    if not value:
        raise CredentialError("the token endpoint answered without an access token")
    credentials.remember(value)
    if token.get("refresh_token"):
        credentials.remember(str(token["refresh_token"]))
    expires_in = token.get("expires_in")
    try:
        expires_at = clock() + float(expires_in) if expires_in is not None else None
    except (TypeError, ValueError):
        expires_at = None
    scopes = tuple(str(token.get("scope") or "").split())
    return AccessToken(value, expires_at, scopes, source)


# --------------------------------------------------------------------------- the refresh token


def refresh_token(acct: Account) -> tuple[str, str]:
    """The refresh token and where it came from; CredentialError when there is none."""
    if acct.token_command:
        command = credentials.run_password_command(acct.kind, acct.token_command,
                                                   key="token_command")
        return credentials.remember(command), "token_command"
    try:
        secret = keyring.get_password(credentials.SERVICE, acct.keyring_name)
    except keyring.errors.KeyringError as exc:
        raise CredentialError(
            f"no OAuth2 sign-in for {acct.username}: the keyring is not available "
            f"({type(exc).__name__}); set {acct.label} token_command to a command that "
            "prints the refresh token (see `followup login --store-command`)") from None
    if not secret:
        raise SignInExpired(f"no OAuth2 sign-in for {acct.words()} yet: run `followup login`")
    return credentials.remember(secret), "keyring"


def store_refresh_token(acct: Account, secret: str, store_command: str | None = None) -> str:
    """Keep a new refresh token: in the keyring, or piped to ``store_command``; where."""
    credentials.remember(secret)
    if store_command is not None:
        credentials.feed_command(acct.kind, store_command, secret)
        return "store_command"
    try:
        keyring.set_password(credentials.SERVICE, acct.keyring_name, secret)
    except keyring.errors.KeyringError as exc:
        raise CredentialError(
            f"the keyring cannot keep the refresh token ({type(exc).__name__}); run `followup "
            "login --store-command CMD` (CMD reads the token on its standard input, e.g. "
            f"\"pass insert -m mail/oauth\") and set {acct.label} token_command to print it"
        ) from None
    return "keyring"


def _refresh(acct: Account, refresh: str, source: str, clock: Clock) -> AccessToken:
    # Imported here: authlib and httpx take ~0.2 s to import, and a scan with a password
    # (or a token still valid) never needs them (README "How fast": the no-change rescan).
    import httpx

    from agent.auth.client import OAuthError, oauth_client

    try:
        with oauth_client(acct.client_id, acct.client_secret, acct.timeout) as client:
            token = client.refresh_token(acct.endpoints.token_url, refresh_token=refresh)
    except OAuthError as exc:
        raise refused(acct, exc) from None
    except (httpx.HTTPError, ValueError) as exc:
        raise SignInUnavailable(credentials.redact(
            f"cannot renew the OAuth2 access token at {acct.endpoints.host}: "
            f"{_http_reason(exc)}")) from None
    fresh = as_access_token(dict(token), source, clock)
    rotated = str(token.get("refresh_token") or "")
    if rotated and rotated != refresh:
        if source == "keyring":
            store_refresh_token(acct, rotated)
            log.debug("stored the renewed refresh token for %s", acct.username)
        else:
            log.info("%s issued a new refresh token for %s; token_command keeps the old one, "
                     "which works until the provider lets it expire", acct.endpoints.host,
                     acct.username)
    log.debug("renewed the OAuth2 access token for %s", acct.username)
    return fresh


def refused(acct: Account, exc: Any) -> CredentialError:
    """The error for a token endpoint's refusal (RFC 6749 5.2), in one line."""
    code = str(getattr(exc, "error", "") or "error")
    said = credentials.redact(" ".join(str(getattr(exc, "description", "") or "").split()))
    detail = f"{code}: {said[:200]}" if said else code
    if code == "invalid_grant":
        return SignInExpired(
            f"the OAuth2 sign-in for {acct.words()} has expired or was revoked ({detail}); "
            "run `followup login`")
    if code in ("invalid_client", "unauthorized_client"):
        return CredentialError(
            f"{acct.endpoints.host} refused the client ({detail}); check {acct.label} "
            "client_id (and client_secret) against your app registration")
    return CredentialError(f"{acct.endpoints.host} refused the OAuth2 request ({detail}); "
                           "run `followup login`")


def _http_reason(exc: BaseException) -> str:
    import httpx  # loaded already by whoever raised it

    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code}"
    if isinstance(exc, httpx.TimeoutException):
        return "no answer in time"
    return str(exc) or type(exc).__name__
