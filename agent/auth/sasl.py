"""SASL messages for signing in (RFC 4616 PLAIN, RFC 7628 OAUTHBEARER, Google's XOAUTH2).

Each function returns the client's initial response as bytes (UTF-8, not yet base64): IMAP
and SMTP both send it base64-encoded. A password in any script goes through PLAIN as UTF-8
(RFC 4616, RFC 6855); LOGIN (IMAP) and AUTH LOGIN (smtplib) only take ASCII.
"""

from __future__ import annotations

from collections.abc import Callable

OAUTH_MECHANISMS = ("OAUTHBEARER", "XOAUTH2")  # preferred first: the standard one


def plain(username: str, password: str) -> bytes:
    """RFC 4616: no authorization identity, the user, the password; NUL-separated UTF-8."""
    return b"\0" + username.encode("utf-8") + b"\0" + password.encode("utf-8")


def xoauth2(username: str, access_token: str) -> bytes:
    """Google's and Microsoft's XOAUTH2: ``user=U^Aauth=Bearer T^A^A``."""
    return f"user={username}\x01auth=Bearer {access_token}\x01\x01".encode()


def oauthbearer(username: str, access_token: str, host: str, port: int) -> bytes:
    """RFC 7628 OAUTHBEARER: a GS2 header naming the user, then host, port and the token."""
    user = username.replace("=", "=3D").replace(",", "=2C")
    return (f"n,a={user},\x01host={host}\x01port={port}\x01"
            f"auth=Bearer {access_token}\x01\x01").encode()


def initial_response(mechanism: str, username: str, access_token: str, host: str,
                     port: int) -> bytes:
    """The first message of ``mechanism`` (one of OAUTH_MECHANISMS) for an access token."""
    if mechanism == "OAUTHBEARER":
        return oauthbearer(username, access_token, host, port)
    return xoauth2(username, access_token)


def choose_oauth(offered: frozenset[str]) -> str:
    """OAUTHBEARER where the server offers it, else XOAUTH2 (also when it lists neither:
    some servers name their mechanisms only after STARTTLS, or not at all)."""
    return next((m for m in OAUTH_MECHANISMS if m in offered), "XOAUTH2")


def responder(initial: bytes) -> Callable[[bytes], bytes]:
    """The client side of a one-message mechanism.

    The first (empty) challenge gets ``initial``. A second challenge is the server's error
    report (XOAUTH2, OAUTHBEARER: base64 JSON such as ``{"status":"401"}``); RFC 7628 says
    to answer it with an empty message (a dummy ^A for OAUTHBEARER), after which the server
    says NO. Answering again with the token, as some clients do, gets the same NO.
    """
    def respond(challenge: bytes) -> bytes:
        if not challenge:
            return initial
        return b"\x01" if initial.startswith(b"n,") else b""

    return respond
