"""The only module that speaks SMTP: send the digest to the user, and to nobody else."""

from __future__ import annotations

import base64
import contextlib
import logging
import smtplib
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import getaddresses

from agent import credentials, net
from agent.auth import Login, sasl
from agent.config import SmtpConfig, is_loopback
from agent.errors import ConfigError, CredentialError, DeliveryError

log = logging.getLogger(__name__)

# Every header that names a recipient; smtplib.send_message reads the first three.
RECIPIENT_HEADERS = ("To", "Cc", "Bcc", "Resent-To", "Resent-Cc", "Resent-Bcc")
HOW = {"ssl": "TLS", "starttls": "STARTTLS", "none": "plaintext (loopback)"}


class RecipientRefused(DeliveryError):
    """A message addressed to anyone but the user: followup never mails anyone else."""


@dataclass(frozen=True)
class Session:
    """What an SMTP connection turned out to be, in words for `followup doctor`."""

    host: str
    port: int
    how: str  # "TLS", "STARTTLS" or "plaintext (loopback)"
    authenticated_as: str | None
    server_name: str

    def words(self) -> str:
        auth = (f"logged in as {self.authenticated_as}" if self.authenticated_as
                else "without AUTH (no [smtp] username)")
        return f"SMTP server {self.host}:{self.port} answered over {self.how}, {auth}"


def local_hostname(own_address: str) -> str:
    """The EHLO name: the domain of the user's address, else "localhost".

    smtplib's default is socket.getfqdn(), which can block for seconds on a machine without
    working reverse DNS; a submission server that authenticates us does not care about it.
    """
    domain = own_address.rpartition("@")[2].strip().strip("[]")
    return domain if domain and all(c.isalnum() or c in ".-" for c in domain) else "localhost"


def check_recipients(message: EmailMessage, own_address: str) -> None:
    """Raise RecipientRefused unless every recipient of ``message`` is ``own_address``."""
    own = own_address.strip().lower()
    found: list[str] = []
    for header in RECIPIENT_HEADERS:
        values = [str(v) for v in message.get_all(header, [])]
        found += [address for _, address in getaddresses(values)]
    others = sorted({a for a in found if a.strip().lower() != own})
    if others or not found:
        who = ", ".join(others) if others else "nobody"
        raise RecipientRefused(
            f"refusing to send a message addressed to {who}: followup only ever mails you "
            f"({own_address})"
        )


def send(settings: SmtpConfig, message: EmailMessage, own_address: str, *,
         login: Login | None, hostname: str | None = None) -> None:
    """Send ``message`` to ``own_address`` (envelope and headers); DeliveryError on failure.

    ``login`` is used only when ``settings.username`` is set (AUTH); without a username the
    message goes out unauthenticated, as to a local relay.
    """
    check_recipients(message, own_address)
    password = login.secret if login else None
    with connect(settings, login=login,
                 hostname=hostname or local_hostname(own_address)) as (client, _):
        try:
            # The envelope is given explicitly: whatever the headers say, only the user's
            # own address is a recipient.
            refused = client.send_message(message, from_addr=own_address, to_addrs=[own_address])
        except smtplib.SMTPRecipientsRefused as exc:
            raise DeliveryError(_refused(settings, "the recipient " + own_address,
                                         next(iter(exc.recipients.values()), None),
                                         password)) from None
        except smtplib.SMTPSenderRefused as exc:
            raise DeliveryError(_refused(settings, "the sender " + own_address,
                                         (exc.smtp_code, exc.smtp_error), password)) from None
        except smtplib.SMTPDataError as exc:
            raise DeliveryError(_refused(settings, "the digest",
                                         (exc.smtp_code, exc.smtp_error), password)) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(net.scrub(f"sending to {settings.host}:{settings.port} failed: "
                                       f"{_reason(exc)}", password)) from None
        if refused:  # pragma: no cover - one recipient: refusal raises SMTPRecipientsRefused
            raise DeliveryError(f"{settings.host} refused {own_address}: {refused}")
    log.info("digest sent through %s:%d", settings.host, settings.port)


def probe(settings: SmtpConfig, own_address: str, *, login: Login | None) -> Session:
    """Connect, EHLO, STARTTLS and AUTH as ``send`` would, and send nothing."""
    with connect(settings, login=login, hostname=local_hostname(own_address)) as (_, s):
        return s


@contextlib.contextmanager
def connect(settings: SmtpConfig, *, login: Login | None,
            hostname: str) -> Iterator[tuple[smtplib.SMTP, Session]]:
    """A connected, encrypted (unless loopback "none") and, with a username, logged-in client."""
    host, port, security = settings.host, settings.port, settings.security
    password = login.secret if login else None
    if security == "none" and not is_loopback(host):
        raise ConfigError([f"[smtp] security = \"none\" is refused for {host}: mail and password "
                           "would travel in plaintext; use ssl or starttls"])
    context = net.tls_context(settings.ca_file, "smtp") if security != "none" else None
    client: smtplib.SMTP
    try:
        if security == "ssl":
            client = smtplib.SMTP_SSL(host, port, local_hostname=hostname,
                                      timeout=settings.timeout, context=context)
        else:
            client = smtplib.SMTP(host, port, local_hostname=hostname, timeout=settings.timeout)
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryError(net.scrub(_connect_error(exc, settings), password)) from None
    try:
        session = _start(client, settings, context, login, hostname)
        yield client, session
    finally:
        _close(client)


def _start(client: smtplib.SMTP, settings: SmtpConfig, context: ssl.SSLContext | None,
           login: Login | None, hostname: str) -> Session:
    host, port = settings.host, settings.port
    password = login.secret if login else None
    try:
        client.ehlo()
        if settings.security == "starttls":
            if not client.has_extn("starttls"):
                # No silent downgrade: a server (or something in between) that hides
                # STARTTLS would otherwise see the password and the digest in plaintext.
                raise DeliveryError(
                    f"{host}:{port} does not offer STARTTLS, so the connection would not be "
                    "encrypted; use [smtp] security = \"ssl\" (usually port 465)"
                )
            client.starttls(context=context)
            client.ehlo()
        user = settings.username
        if user:
            if login is None:
                raise DeliveryError(f"no SMTP password for {user}")
            if not client.has_extn("auth"):
                raise DeliveryError(
                    f"{host}:{port} does not offer AUTH, so followup cannot log in as {user}; "
                    "remove [smtp] username to send without logging in (local relays), or "
                    "check [smtp] port and security"
                )
            _authenticate(client, host, port, login)
    except (DeliveryError, CredentialError):
        raise
    except UnicodeError:
        # Never show the exception: its text quotes the character it could not encode.
        raise CredentialError(f"the login name or password for {host} cannot be sent "
                              "(a character the server's login cannot carry)") from None
    except smtplib.SMTPAuthenticationError as exc:
        said = credentials.redact(_said(exc.smtp_code, exc.smtp_error))
        what = ("the OAuth2 access token was refused (even after renewing it); check that "
                "the sign-in's scopes include SMTP, or run `followup login`"
                if login is not None and login.oauth2 else
                "check [smtp] username and the password (Gmail and iCloud need an app "
                "password)")
        raise DeliveryError(net.scrub(
            f"login as {settings.username} on {host} failed (server said: {said}); {what}",
            password)) from None
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryError(net.scrub(_connect_error(exc, settings), password)) from None
    server_name = (client.ehlo_resp or b"").split(b"\n", 1)[0].decode("utf-8", "replace")
    return Session(host, port, HOW[settings.security], settings.username or None,
                   server_name.strip())


def _authenticate(client: smtplib.SMTP, host: str, port: int, login: Login) -> None:
    """AUTH: OAUTHBEARER/XOAUTH2 for a token (renewed once if refused); PLAIN with UTF-8
    (RFC 4616) for a password that is not ASCII (smtplib's own AUTH takes only ASCII);
    else smtplib's login (CRAM-MD5, PLAIN or LOGIN, as offered)."""
    offered = frozenset(client.esmtp_features.get("auth", "").upper().split())
    if login.oauth2:
        mechanism = sasl.choose_oauth(offered)
        initial = sasl.initial_response(mechanism, login.username, login.secret, host, port)
        try:
            _sasl(client, mechanism, initial)
        except smtplib.SMTPAuthenticationError:
            if login.renew is None:
                raise
            log.info("%s refused the access token; renewing it once", host)
            _sasl(client, mechanism, sasl.initial_response(
                mechanism, login.username, login.renew(), host, port))
    elif login.secret.isascii() and login.username.isascii():
        client.login(login.username, login.secret)
    elif "PLAIN" in offered:
        _sasl(client, "PLAIN", sasl.plain(login.username, login.secret))
    else:
        raise CredentialError(
            f"{host} does not offer AUTH PLAIN, the only way to send a password that is not "
            f"ASCII, so followup cannot log in as {login.username}; ask the provider, or use "
            "a password of ASCII letters, digits and punctuation")


def _sasl(client: smtplib.SMTP, mechanism: str, initial: bytes) -> None:
    """One AUTH exchange with an initial response (RFC 4954), through smtplib's public
    ``docmd``: ``SMTP.auth`` would encode the response as ASCII."""
    encoded = base64.b64encode(initial).decode("ascii")
    credentials.remember(encoded)
    code, reply = client.docmd("AUTH", f"{mechanism} {encoded}")
    if code == 334:  # an error challenge (XOAUTH2, OAUTHBEARER): end it, then comes the NO
        code, reply = client.docmd(base64.b64encode(sasl.responder(initial)(b"?")).decode()
                                   if mechanism == "OAUTHBEARER" else "")
    if code not in (235, 503):  # 503: already authenticated
        raise smtplib.SMTPAuthenticationError(code, reply)


def _close(client: smtplib.SMTP) -> None:
    try:
        client.quit()
    except (OSError, smtplib.SMTPException):
        with contextlib.suppress(OSError):
            client.close()


# --------------------------------------------------------------------------- error words


def _said(code: int | None, text: bytes | str | None) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    words = " ".join((text or "").split())
    return f"{code} {words}".strip() if code else words or "nothing"


def _refused(settings: SmtpConfig, what: str, reply: tuple[int, bytes | str] | None,
             password: str | None) -> str:
    code, text = reply if reply else (None, None)
    said = _said(code, text)
    hint = ""
    if code in (530, 550, 554) and not settings.username and "auth" in said.lower():
        hint = "; the server wants a login: set [smtp] username (and its password)"
    return net.scrub(f"{settings.host} refused {what} (server said: {said}){hint}", password)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _connect_error(exc: BaseException, settings: SmtpConfig) -> str:
    """One plain sentence for what went wrong while reaching the SMTP server."""
    host, port = settings.host, settings.port
    where = f"{host}:{port}"
    known = net.describe_connect_error(exc, host, port, "smtp", settings.timeout)
    if known is not None:
        return known
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return (f"{where} closed the connection ({_reason(exc)}): check [smtp] port and security "
                "(ssl and starttls use different ports)")
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{where} refused us (server said: {_said(exc.smtp_code, exc.smtp_error)})"
    return f"cannot talk to the SMTP server {where}: {_reason(exc)}"


