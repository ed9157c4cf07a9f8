"""A real OAuth2 authorization server on loopback for the tests (http.server in a thread).

It speaks what followup and Dovecot use: device authorization (RFC 8628), the token
endpoint (device code, refresh token with rotation, authorization code with PKCE S256), a
browser sign-in page that consents at once and redirects back (RFC 8252), and token
introspection (RFC 7662) for Dovecot's oauth2 passdb. The test decides who signs in
(``user``), how long access tokens live, and can expire or revoke tokens at any moment.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from tests.servers.base import LOOPBACK, LoopbackService, free_port


@dataclass
class Grant:
    """One sign-in: its user, scope and current tokens."""

    user: str
    scope: str
    refresh_token: str
    access_tokens: set[str] = field(default_factory=set)
    revoked: bool = False


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _HttpServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _form(self) -> dict[str, str]:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode()
        return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        auth = self.server.auth
        path = urlsplit(self.path).path
        form = self._form()
        with auth.lock:
            auth.requests.append((path, {k: v for k, v in form.items()
                                         if k in ("grant_type", "client_id", "scope")}))
            status, answer = auth.handle_post(path, form)
        self._json(status, answer)

    def do_GET(self) -> None:
        auth = self.server.auth
        parts = urlsplit(self.path)
        if parts.path != "/authorize":
            self.send_error(404)
            return
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        with auth.lock:
            location = auth.authorize(query)
        self.send_response(302)
        self.send_header("Location", location)
        self.end_headers()


class _HttpServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    auth: AuthServer


class AuthServer(LoopbackService):
    """The authorization server; ``url(path)`` gives its endpoints."""

    def __init__(self, client_id: str = "followup-test-client") -> None:
        self.client_id = client_id
        self.client_secret: str | None = None  # require it when set
        self.user = "nobody"  # who signs in next (the "person at the browser")
        self.access_lifetime = 3600
        self.rotate = False  # a new refresh token with every refresh (Microsoft does)
        self.approve_after = 1  # device polls answered "authorization_pending" first
        self.lock = threading.RLock()
        self.grants: list[Grant] = []
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.introspected: list[bool] = []
        self._devices: dict[str, dict[str, Any]] = {}
        self._codes: dict[str, dict[str, str]] = {}
        self._http: _HttpServer | None = None
        self.port = 0

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self.port = free_port()
        self._http = _HttpServer((LOOPBACK, self.port), _Handler)
        self._http.auth = self
        threading.Thread(target=self._http.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None

    def url(self, path: str) -> str:
        return f"http://{LOOPBACK}:{self.port}{path}"

    # ------------------------------------------------------------------ what tests do

    def grant_of(self, token: str) -> Grant | None:
        return next((g for g in self.grants if token in g.access_tokens
                     or token == g.refresh_token), None)

    def expire_access_tokens(self) -> None:
        """Every access token issued so far stops working (as when its hour is over)."""
        with self.lock:
            for grant in self.grants:
                grant.access_tokens.clear()

    def revoke(self, user: str) -> None:
        """The user revokes followup's access (or the refresh token expires)."""
        with self.lock:
            for grant in self.grants:
                if grant.user == user:
                    grant.revoked = True
                    grant.access_tokens.clear()

    def count(self, grant_type: str) -> int:
        with self.lock:
            return sum(1 for path, form in self.requests
                       if path == "/token" and form.get("grant_type") == grant_type)

    def tokens_issued(self) -> list[str]:
        """Every token this server ever gave out (to look for them in followup's output)."""
        with self.lock:
            return [t for g in self.grants for t in (g.refresh_token, *g.access_tokens)]

    # ------------------------------------------------------------------ the endpoints

    def handle_post(self, path: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if path == "/introspect":
            return 200, self._introspect(form.get("token", ""))
        if form.get("client_id") != self.client_id or (
                self.client_secret is not None
                and form.get("client_secret") != self.client_secret):
            return 401, {"error": "invalid_client", "error_description": "unknown client"}
        if path == "/device" or path.endswith("/devicecode"):  # Microsoft's name
            code = secrets.token_urlsafe(24)
            self._devices[code] = {"user": self.user, "scope": form.get("scope", ""),
                                   "polls": 0}
            return 200, {"device_code": code, "user_code": "WDJB-MJHT",
                         "verification_uri": self.url("/device-page"), "expires_in": 600,
                         "interval": 0}
        if path.endswith("/token"):
            return self._token(form)
        return 404, {"error": "not_found"}

    def _issue(self, grant: Grant) -> dict[str, Any]:
        access = "at-" + secrets.token_urlsafe(24)
        grant.access_tokens.add(access)
        return {"access_token": access, "token_type": "Bearer",
                "expires_in": self.access_lifetime, "scope": grant.scope,
                "refresh_token": grant.refresh_token}

    def _new_grant(self, user: str, scope: str) -> dict[str, Any]:
        grant = Grant(user, scope, "rt-" + secrets.token_urlsafe(24))
        self.grants.append(grant)
        return self._issue(grant)

    def _token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        kind = form.get("grant_type")
        if kind == "urn:ietf:params:oauth:grant-type:device_code":
            device = self._devices.get(form.get("device_code", ""))
            if device is None:
                return 400, {"error": "expired_token"}
            device["polls"] += 1
            if device["polls"] <= self.approve_after:
                return 400, {"error": "authorization_pending"}
            del self._devices[form["device_code"]]
            return 200, self._new_grant(device["user"], device["scope"])
        if kind == "refresh_token":
            grant = next((g for g in self.grants
                          if g.refresh_token == form.get("refresh_token")), None)
            if grant is None or grant.revoked:
                return 400, {"error": "invalid_grant",
                             "error_description": "Token has been expired or revoked."}
            if self.rotate:
                grant.refresh_token = "rt-" + secrets.token_urlsafe(24)
            return 200, self._issue(grant)
        if kind == "authorization_code":
            code = self._codes.pop(form.get("code", ""), None)
            if code is None or code["redirect_uri"] != form.get("redirect_uri"):
                return 400, {"error": "invalid_grant", "error_description": "bad code"}
            digest = hashlib.sha256(form.get("code_verifier", "").encode()).digest()
            challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
            if challenge != code["challenge"]:
                return 400, {"error": "invalid_grant", "error_description": "PKCE failed"}
            return 200, self._new_grant(code["user"], code["scope"])
        return 400, {"error": "unsupported_grant_type"}

    def authorize(self, query: dict[str, str]) -> str:
        """The sign-in page: the user consents at once; back to the redirect URI."""
        redirect = query.get("redirect_uri", "")
        if query.get("client_id") != self.client_id or query.get(
                "code_challenge_method") != "S256" or not urlsplit(redirect).hostname:
            return redirect + "?" + urlencode({"error": "invalid_request",
                                               "state": query.get("state", "")})
        code = secrets.token_urlsafe(16)
        self._codes[code] = {"user": self.user, "scope": query.get("scope", ""),
                             "redirect_uri": redirect,
                             "challenge": query.get("code_challenge", "")}
        return redirect + "?" + urlencode({"code": code, "state": query.get("state", "")})

    def _introspect(self, token: str) -> dict[str, Any]:
        grant = next((g for g in self.grants if token in g.access_tokens), None)
        self.introspected.append(grant is not None)
        if grant is None or grant.revoked:
            return {"active": False}
        return {"active": True, "username": grant.user, "scope": grant.scope}
