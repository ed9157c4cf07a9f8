"""authlib's OAuth2 client on httpx, made once: verifying TLS, a timeout, public or secret.

authlib 1.9 announces that its httpx integration will move to the httpx2 fork and warns when
it falls back to httpx, which followup already uses (CardDAV); that warning is silenced here
and nowhere else, and pyproject pins authlib below 1.10 so that a release without the
fallback cannot arrive unnoticed.
"""

from __future__ import annotations

import ssl
import warnings
from typing import Any

import authlib.deprecate

with warnings.catch_warnings():
    warnings.simplefilter("ignore", authlib.deprecate.AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import OAuth2Client, OAuthError

__all__ = ["OAuth2Client", "OAuthError", "oauth_client"]

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"  # RFC 8628 3.4


def oauth_client(client_id: str, client_secret: str | None, timeout: float,
                 **options: Any) -> Any:
    """An authlib ``OAuth2Client`` (an ``httpx.Client``): a public client without a secret,
    else the secret in the form body (what Google documents for installed apps)."""
    return OAuth2Client(
        client_id=client_id, client_secret=client_secret,
        token_endpoint_auth_method="client_secret_post" if client_secret else "none",
        timeout=timeout, verify=ssl.create_default_context(), **options)
