"""Network plumbing shared by IMAP and SMTP: verifying TLS contexts, errors in plain words."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

from agent.errors import ConfigError

# Usual ports per protocol, for the hint in "refused the connection".
USUAL_PORTS = {"imap": "993 for ssl, 143 for starttls", "smtp": "465 for ssl, 587 for starttls"}


def tls_context(ca_file: Path | None, section: str) -> ssl.SSLContext:
    """A verifying context; ``ca_file`` adds a private CA to the system's trust store."""
    context = ssl.create_default_context()
    if ca_file is not None:
        try:
            context.load_verify_locations(cafile=str(ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError([f"[{section}] ca_file {ca_file} cannot be used: {exc}"]) from None
    return context


def describe_connect_error(exc: BaseException, host: str, port: int, section: str,
                           timeout: float) -> str | None:
    """One plain sentence for a failure to reach a server; None when it is none of these."""
    where = f"{host}:{port}"
    server = "the SMTP server" if section == "smtp" else "the server"
    if isinstance(exc, socket.gaierror):
        return (f"cannot find {server} {host!r} (DNS lookup failed): check [{section}] host "
                "and your network")
    if isinstance(exc, ConnectionRefusedError):
        return (f"{where} refused the connection: check [{section}] port and security "
                f"(usually {USUAL_PORTS.get(section, 'see your provider')})")
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = exc.verify_message or exc.reason or "unknown reason"
        return (f"the TLS certificate of {host} could not be verified ({reason}); if the "
                f"server uses a private CA, set [{section}] ca_file to its PEM file")
    if isinstance(exc, ssl.SSLError):
        return (f"TLS handshake with {where} failed ({exc.reason or exc}): check [{section}] "
                "security and port (ssl and starttls use different ports)")
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"{where} did not answer within {timeout:g} s: check [{section}] host and port"
    return None


def scrub(text: str, secret: str | None) -> str:
    """``text`` with ``secret`` replaced by ``***``."""
    return text.replace(secret, "***") if secret else text
