"""`followup login`: sign in once per OAuth2 account and keep the refresh token.

Which flow: ``--device`` or ``--browser`` when asked; else the browser where one is at hand
(a desktop session) and the provider has a browser sign-in, the device flow otherwise — and
always the browser for Google, whose device flow does not allow the mail scope.
"""

from __future__ import annotations

import os
import sys
import time
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass

from agent.auth import flows, tokens
from agent.errors import CredentialError


@dataclass(frozen=True)
class SignedIn:
    """What one sign-in gave: where the refresh token went, the access token's life."""

    account: tokens.Account
    flow: str  # device | browser
    stored: str  # keyring | store_command
    token: tokens.AccessToken

    def line(self) -> str:
        where = (f"the keyring (service \"followup\", {self.account.keyring_name})"
                 if self.stored == "keyring" else "--store-command")
        left = self.token.seconds_left()
        life = "" if left is None else f"; access token valid for {left / 60:.0f} minutes"
        scopes = " ".join(self.token.scopes) or "as asked"
        return (f"signed in {self.account.words()} ({self.flow} flow); refresh token in "
                f"{where}{life}; scopes: {scopes}")


def browser_at_hand() -> bool:
    """Whether a graphical browser can be opened here (not over plain ssh, not in cron)."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def choose_flow(acct: tokens.Account, asked: str | None) -> str:
    if asked is not None:
        return asked
    ends = acct.endpoints
    if ends.no_device_flow or not ends.device_authorization_url:
        return "browser"
    if not ends.authorization_url:
        return "device"
    return "browser" if browser_at_hand() else "device"


def sign_in(acct: tokens.Account, say: flows.Say, *, flow: str | None = None, port: int = 0,
            store_command: str | None = None,
            open_browser: Callable[[str], object] | None = None,
            sleep: flows.Sleep = time.sleep) -> SignedIn:
    """Run a sign-in flow for ``acct``, keep its refresh token, hold its access token."""
    chosen = choose_flow(acct, flow)
    if chosen == "device":
        answer = flows.device_flow(acct, say, sleep=sleep)
    else:
        answer = flows.browser_flow(acct, say, port=port,
                                    open_browser=open_browser or webbrowser.open)
    refresh = str(answer.get("refresh_token") or "")
    token = tokens.as_access_token(answer, "keyring", time.time)
    if not refresh:
        raise CredentialError(
            f"{acct.endpoints.host} signed you in but gave no refresh token, so followup "
            "would have to ask again within the hour; Microsoft needs the scope "
            "offline_access, Google access_type=offline (both are asked for by default: "
            f"check {acct.label} scope)")
    stored = tokens.store_refresh_token(acct, refresh, store_command)
    token = tokens.AccessToken(token.token, token.expires_at, token.scopes,
                               "token_command" if stored == "store_command" else stored)
    tokens.remember_access_token(acct, token)
    return SignedIn(acct, chosen, stored, token)
