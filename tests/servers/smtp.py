"""An SMTP server on loopback (aiosmtpd) that keeps every message it receives."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.servers.base import LOOPBACK, LoopbackService, free_port
from tests.servers.tls import TlsFiles


@dataclass(frozen=True)
class ReceivedMessage:
    """One message as the SMTP sink received it."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    authenticated_as: str | None
    tls: bool


class _SinkHandler:
    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content or b""
        if isinstance(envelope.content, bytes) and not envelope.original_content:
            data = envelope.content
        auth = session.auth_data
        message = ReceivedMessage(
            mail_from=envelope.mail_from or "",
            rcpt_tos=tuple(envelope.rcpt_tos),
            data=data,
            authenticated_as=(auth.login.decode() if isinstance(auth, LoginPassword)
                              else auth if isinstance(auth, str) else None),
            tls=session.ssl is not None,
        )
        self._sink._record(message)
        return "250 Message accepted for delivery"


def _fields(blob: bytes) -> dict[str, str]:
    """The key=value fields of an XOAUTH2 or OAUTHBEARER message."""
    return dict(p.split("=", 1) for p in blob.decode().split("\x01") if "=" in p)


class _TokenSinkHandler(_SinkHandler):
    """AUTH XOAUTH2 and OAUTHBEARER: aiosmtpd offers every ``auth_<MECH>`` of the handler."""

    async def _token_auth(self, server: SMTP, args: list[str], user_of: Callable[
            [dict[str, str], bytes], str]) -> AuthResult:
        blob = (base64.b64decode(args[1]) if len(args) == 2
                else await server.challenge_auth(""))
        assert isinstance(blob, bytes)
        fields = _fields(blob)
        user, token = user_of(fields, blob), fields.get("auth", "")[len("Bearer "):]
        if self._sink.token_check is not None and self._sink.token_check(user, token):
            return AuthResult(success=True, auth_data=user)
        await server.challenge_auth(json.dumps({"status": "401", "schemes": "bearer"}))
        return AuthResult(success=False, handled=False,
                          message="535 5.7.8 Username and Password not accepted")

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        return await self._token_auth(server, args, lambda f, _b: f.get("user", ""))

    async def auth_OAUTHBEARER(self, server: SMTP, args: list[str]) -> AuthResult:
        def user(_fields: dict[str, str], blob: bytes) -> str:
            gs2 = blob.decode().split("\x01", 1)[0]  # n,a=USER,
            return gs2.split("a=", 1)[1].rstrip(",").replace("=2C", ",").replace("=3D", "=")

        return await self._token_auth(server, args, user)


class SmtpSink(LoopbackService):
    """An aiosmtpd server on loopback that keeps every message it receives.

    With `tls`, STARTTLS is offered and required; with `username`/`password`, AUTH
    PLAIN/LOGIN is required (over TLS when TLS is on).
    """

    def __init__(
        self,
        *,
        host: str = LOOPBACK,
        port: int | None = None,
        tls: TlsFiles | None = None,
        username: str | None = None,
        password: str | None = None,
        token_check: Callable[[str, str], bool] | None = None,
        mechanisms: tuple[str, ...] = ("XOAUTH2", "OAUTHBEARER"),
        auth_exclude: tuple[str, ...] = (),
    ) -> None:
        if (username is None) != (password is None):
            raise ValueError("give both username and password, or neither")
        # With token_check: AUTH takes OAuth2 tokens (`mechanisms` of XOAUTH2, OAUTHBEARER)
        # and nothing else; token_check(user, token) says whether a token is good.
        self.token_check = token_check
        self.mechanisms = mechanisms
        self.auth_exclude = auth_exclude  # built-in mechanisms not to offer (e.g. PLAIN)
        self.host = host
        self.port = port or 0
        self.tls = tls
        self.username = username
        self.password = password
        self._messages: list[ReceivedMessage] = []
        self._cond = threading.Condition()
        self._controller: Controller | None = None

    @property
    def ca_file(self) -> str | None:
        return str(self.tls.cert_file) if self.tls else None

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and self.username is not None
            and self.password is not None
            and auth_data.login == self.username.encode()
            and auth_data.password == self.password.encode()
        )
        # handled=False: let aiosmtpd send the 535 reply on failure.
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    def start(self) -> None:
        if self.port == 0:
            self.port = free_port()
        kwargs: dict[str, Any] = {}
        if self.tls is not None:
            kwargs.update(tls_context=self.tls.server_context(), require_starttls=True)
        if self.username is not None:
            kwargs.update(
                authenticator=self._authenticate,
                auth_required=True,
                auth_require_tls=self.tls is not None,
                auth_exclude_mechanism=list(self.auth_exclude),
            )
        handler = _SinkHandler(self)
        if self.token_check is not None:
            handler = _TokenSinkHandler(self)
            hidden = ["LOGIN", "PLAIN", *({"XOAUTH2", "OAUTHBEARER"} - set(self.mechanisms))]
            kwargs.update(auth_required=True, auth_require_tls=self.tls is not None,
                          auth_exclude_mechanism=hidden)
        self._controller = Controller(
            handler,
            hostname=self.host,
            port=self.port,
            server_hostname="localhost",  # else socket.getfqdn(): slow without DNS
            ready_timeout=10.0,
            **kwargs,
        )
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def _record(self, message: ReceivedMessage) -> None:
        with self._cond:
            self._messages.append(message)
            self._cond.notify_all()

    @property
    def messages(self) -> list[ReceivedMessage]:
        with self._cond:
            return list(self._messages)

    def wait_for(self, count: int = 1, timeout: float = 5.0) -> list[ReceivedMessage]:
        """Block until at least `count` messages arrived; return all of them."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._messages) >= count, timeout):
                raise TimeoutError(f"SMTP sink got {len(self._messages)} of {count} messages")
            return list(self._messages)

    def clear(self) -> None:
        with self._cond:
            self._messages.clear()
