"""Where an OAuth2 provider signs people in: endpoints and mail scopes of Google, Microsoft
and a custom provider, resolved from an [imap]/[smtp]/[[mailbox]] section."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from agent.config import ServerLogin, is_loopback
from agent.errors import ConfigError

GOOGLE_SCOPE = "https://mail.google.com/"
MICROSOFT_IMAP = "https://outlook.office.com/IMAP.AccessAsUser.All"
MICROSOFT_SMTP = "https://outlook.office.com/SMTP.Send"
OFFLINE = "offline_access"  # Microsoft (and OpenID providers): ask for a refresh token
MICROSOFT_LOGIN = "https://login.microsoftonline.com"


@dataclass(frozen=True)
class Endpoints:
    """One provider's sign-in: endpoints, the scopes per protocol, extra browser parameters."""

    provider: str
    token_url: str
    authorization_url: str | None
    device_authorization_url: str | None
    scopes: tuple[str, ...]
    # Parameters of the browser sign-in beyond RFC 6749 (Google: ask for a refresh token).
    authorize_params: dict[str, str] = field(default_factory=dict)
    # Why the device flow cannot be used, when it cannot (Google: not for mail scopes).
    no_device_flow: str | None = None

    @property
    def scope(self) -> str:
        return " ".join(self.scopes)

    @property
    def host(self) -> str:
        return urlsplit(self.token_url).hostname or self.token_url


def _google(kind: str) -> Endpoints:
    return Endpoints(
        "google", "https://oauth2.googleapis.com/token",
        "https://accounts.google.com/o/oauth2/v2/auth", "https://oauth2.googleapis.com/device/code",
        (GOOGLE_SCOPE,), {"access_type": "offline", "prompt": "consent"},
        no_device_flow="Google does not allow the mail scope in its device flow (\"Invalid "
        "device flow scope\"); sign in with the browser (`followup login --browser`, also over "
        "ssh with `ssh -L PORT:127.0.0.1:PORT` and --port PORT)")


def _microsoft(kind: str, tenant: str) -> Endpoints:
    base = f"{MICROSOFT_LOGIN}/{tenant}/oauth2/v2.0"
    scope = MICROSOFT_SMTP if kind == "smtp" else MICROSOFT_IMAP
    return Endpoints("microsoft", f"{base}/token", f"{base}/authorize", f"{base}/devicecode",
                     (scope, OFFLINE))


def endpoints(kind: str, settings: ServerLogin, label: str) -> Endpoints:
    """The endpoints for ``settings`` (``kind`` imap or smtp); the section's own URLs and
    scope override the provider's. Plain http is refused except on loopback."""
    provider = settings.oauth_provider or "custom"
    if provider == "google":
        base = _google(kind)
    elif provider == "microsoft":
        base = _microsoft(kind, settings.tenant or "common")
    else:
        base = Endpoints("custom", settings.token_url or "", None, None, ())
    found = Endpoints(
        provider,
        settings.token_url or base.token_url,
        settings.authorization_url or base.authorization_url,
        settings.device_authorization_url or base.device_authorization_url,
        tuple(settings.scope.split()) if settings.scope else base.scopes,
        base.authorize_params,
        None if settings.device_authorization_url else base.no_device_flow,
    )
    for name in ("token_url", "authorization_url", "device_authorization_url"):
        url = getattr(found, name)
        parts = urlsplit(url or "")
        if url and parts.scheme.lower() != "https" and not is_loopback(parts.hostname or ""):
            raise ConfigError([f"{label} {name} {url} is not https: a token would travel "
                               "unencrypted (http is allowed only on loopback)"])
    if not found.token_url:
        raise ConfigError([f"{label} oauth_provider = \"custom\" needs token_url"])
    return found


def joined(first: Endpoints, second: Endpoints) -> Endpoints:
    """One sign-in for two protocols at the same provider: the union of their scopes."""
    scopes = tuple(dict.fromkeys((*first.scopes, *second.scopes)))
    return Endpoints(first.provider, first.token_url, first.authorization_url,
                     first.device_authorization_url, scopes, first.authorize_params,
                     first.no_device_flow)
