"""Signing in once (`followup login`): the device flow (RFC 8628) and the browser flow with
a loopback redirect and PKCE (RFC 8252, RFC 7636), both through authlib.

The device flow suits a machine without a browser: followup shows a short code and a web
address, the user signs in on any device, and followup polls the token endpoint until they
did. The browser flow opens the provider's sign-in page and catches the answer on
``http://127.0.0.1:PORT/``; the code is bound to this run by PKCE and ``state``.
"""

from __future__ import annotations

import contextlib
import http.server
import logging
import threading
import time
import webbrowser
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from authlib.common.security import generate_token

from agent import credentials
from agent.auth.client import DEVICE_GRANT, OAuthError, oauth_client
from agent.auth.tokens import Account, refused
from agent.errors import CredentialError, SignInUnavailable, UsageError

log = logging.getLogger(__name__)

Say = Callable[[str], None]
Sleep = Callable[[float], None]
SLOW_DOWN = 5.0  # RFC 8628 3.5: "slow_down" adds five seconds to the interval


@dataclass(frozen=True)
class DeviceCode:
    """What the device authorization endpoint answered (RFC 8628 3.2)."""

    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_in: float
    interval: float


def device_flow(acct: Account, say: Say, *, sleep: Sleep = time.sleep,
                clock: Callable[[], float] = time.monotonic) -> dict[str, Any]:
    """Sign in on another device; returns the token endpoint's answer."""
    ends = acct.endpoints
    if ends.no_device_flow:
        raise UsageError(ends.no_device_flow)
    if not ends.device_authorization_url:
        raise UsageError(f"{acct.label} has no device_authorization_url, so this provider "
                         "cannot sign in on another device; use `followup login --browser`")
    with oauth_client(acct.client_id, acct.client_secret, acct.timeout) as client:
        code = _device_code(client, acct)
        shown = code.verification_uri_complete or code.verification_uri
        say(f"To sign in {acct.words()}, open {shown} on any device and enter the code "
            f"{code.user_code} (valid for {code.expires_in / 60:.0f} minutes).")
        deadline = clock() + code.expires_in
        interval = code.interval
        while True:
            sleep(interval)
            try:
                return dict(client.fetch_token(ends.token_url, grant_type=DEVICE_GRANT,
                                               device_code=code.device_code))
            except OAuthError as exc:
                if exc.error == "authorization_pending" and clock() < deadline:
                    continue
                if exc.error == "slow_down" and clock() < deadline:
                    interval += SLOW_DOWN
                    continue
                if exc.error in ("expired_token", "authorization_pending"):
                    raise CredentialError("the sign-in code expired before it was used; run "
                                          "`followup login` again") from None
                if exc.error == "access_denied":
                    raise CredentialError("the sign-in was declined") from None
                raise refused(acct, exc) from None
            except httpx.HTTPError as exc:
                raise _unreachable(acct, exc) from None


def _device_code(client: Any, acct: Account) -> DeviceCode:
    url = acct.endpoints.device_authorization_url or ""
    data = {"client_id": acct.client_id, "scope": acct.endpoints.scope}
    if acct.client_secret:
        data["client_secret"] = acct.client_secret
    try:
        response = client.request("POST", url, data=data, withhold_token=True,
                                  headers={"Accept": "application/json"})
        answer = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise _unreachable(acct, exc) from None
    if not isinstance(answer, dict) or response.status_code >= 400 or "error" in answer:
        error = answer.get("error", f"HTTP {response.status_code}") if isinstance(
            answer, dict) else f"HTTP {response.status_code}"
        description = answer.get("error_description", "") if isinstance(answer, dict) else ""
        raise refused(acct, OAuthError(error=error, description=description))
    try:
        code = DeviceCode(
            device_code=str(answer["device_code"]), user_code=str(answer["user_code"]),
            verification_uri=str(answer.get("verification_uri")
                                 or answer["verification_url"]),  # Google's older name
            verification_uri_complete=answer.get("verification_uri_complete"),
            expires_in=float(answer.get("expires_in", 900)),
            interval=max(0.0, float(answer.get("interval", 5))))
    except (KeyError, TypeError, ValueError):
        raise CredentialError(f"{acct.endpoints.host} gave an unusable device code answer "
                              "(device_code, user_code or verification_uri missing)") from None
    credentials.remember(code.device_code)
    return code


# --------------------------------------------------------------------------- the browser


class _Redirect(http.server.BaseHTTPRequestHandler):
    """Catches the one redirect the provider sends the browser back with."""

    server: _Listener

    def do_GET(self) -> None:
        query = parse_qs(urlsplit(self.path).query)
        if "code" not in query and "error" not in query:
            self.send_error(404)
            return
        self.server.answer = f"http://127.0.0.1:{self.server.server_port}{self.path}"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.end_headers()
        self.wfile.write(b"followup: signed in; you can close this page.\n"
                         if "code" in query else b"followup: the sign-in did not work.\n")
        self.server.done.set()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("loopback redirect: %s", format % args)


class _Listener(http.server.HTTPServer):
    def __init__(self, port: int) -> None:
        super().__init__(("127.0.0.1", port), _Redirect)
        self.answer: str | None = None
        self.done = threading.Event()


@contextlib.contextmanager
def _listening(port: int) -> Iterator[_Listener]:
    try:
        listener = _Listener(port)
    except OSError as exc:
        raise UsageError(f"cannot listen on 127.0.0.1:{port} for the sign-in's answer "
                         f"({exc.strerror or exc}); choose another --port") from None
    thread = threading.Thread(target=listener.serve_forever, daemon=True)
    thread.start()
    try:
        yield listener
    finally:
        listener.shutdown()
        listener.server_close()


def browser_flow(acct: Account, say: Say, *, port: int = 0,
                 open_browser: Callable[[str], object] = webbrowser.open,
                 wait: float = 300.0) -> dict[str, Any]:
    """Sign in in a browser; the answer comes back to a listener on 127.0.0.1."""
    ends = acct.endpoints
    if not ends.authorization_url:
        raise UsageError(f"{acct.label} has no authorization_url, so there is no browser "
                         "sign-in; use `followup login --device`")
    with _listening(port) as listener:
        redirect_uri = f"http://127.0.0.1:{listener.server_port}/"
        verifier = generate_token(64)
        with oauth_client(acct.client_id, acct.client_secret, acct.timeout,
                          redirect_uri=redirect_uri, code_challenge_method="S256",
                          scope=ends.scope or None) as client:
            url, state = client.create_authorization_url(
                ends.authorization_url, code_verifier=verifier, **ends.authorize_params)
            say(f"To sign in {acct.words()}, open this page (if no browser opens by "
                f"itself):\n{url}")
            with contextlib.suppress(webbrowser.Error):
                open_browser(url)
            if not listener.done.wait(wait):
                raise CredentialError(f"no answer from the browser within {wait / 60:.0f} "
                                      "minutes; run `followup login` again")
            answer = listener.answer or ""
            error = parse_qs(urlsplit(answer).query).get("error")
            if error:
                raise refused(acct, OAuthError(error=error[0], description=""))
            try:
                token = client.fetch_token(ends.token_url, authorization_response=answer,
                                           state=state, code_verifier=verifier)
            except OAuthError as exc:
                raise refused(acct, exc) from None
            except httpx.HTTPError as exc:
                raise _unreachable(acct, exc) from None
            except Exception as exc:  # noqa: BLE001 - authlib's state check raises its own
                raise CredentialError(f"the browser's answer was not for this sign-in "
                                      f"({type(exc).__name__}); run `followup login` "
                                      "again") from None
    return dict(token)


def _unreachable(acct: Account, exc: BaseException) -> SignInUnavailable:
    return SignInUnavailable(credentials.redact(
        f"cannot reach {acct.endpoints.host} to sign in: {type(exc).__name__}: {exc}"))
