"""OAuth2 end to end: `followup login` against a real local authorization server, then scan,
drafts and an SMTP digest with the token (Dovecot with an oauth2 passdb whose token check
calls that server; aiosmtpd with AUTH XOAUTH2); renewal of an expired access token, a
revoked sign-in in one line, and no token anywhere in output, logs or the database.
"""

from __future__ import annotations

import json
import webbrowser
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from agent.auth import tokens
from agent.config import parse_config_text
from agent.errors import ConfigError
from tests.kit import ME, config_text, message, run_cli, servers_unavailable, write_config
from tests.servers.account import ImapAccount
from tests.servers.base import ServerUnavailable
from tests.servers.dovecot import Dovecot
from tests.servers.keyring import MemoryKeyring
from tests.servers.oauth import AuthServer
from tests.servers.pool import ServerPool
from tests.servers.smtp import SmtpSink

pytestmark = pytest.mark.integration

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
NOW_TEXT = "2026-03-02T08:00:00Z"


# --------------------------------------------------------------------------- servers


@pytest.fixture(scope="module")
def auth_server() -> Iterator[AuthServer]:
    with AuthServer() as server:
        yield server


def _dovecot(server_pool: ServerPool, auth_server: AuthServer, mechanisms: str) -> Dovecot:
    reason = Dovecot.unavailable()
    if reason is not None:
        servers_unavailable(reason)
    try:
        tls = server_pool.tls()
    except ServerUnavailable as exc:
        servers_unavailable(str(exc))
    server = Dovecot(tls, introspection_url=auth_server.url("/introspect"),
                     mechanisms=mechanisms)
    server.start()
    return server


@pytest.fixture(scope="module")
def oauth_dovecot(server_pool: ServerPool, auth_server: AuthServer) -> Iterator[Dovecot]:
    """Dovecot that takes passwords and tokens (XOAUTH2, OAUTHBEARER)."""
    server = _dovecot(server_pool, auth_server, "plain login xoauth2 oauthbearer")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def xoauth2_dovecot(server_pool: ServerPool, auth_server: AuthServer) -> Iterator[Dovecot]:
    """Dovecot that offers XOAUTH2 but no OAUTHBEARER for tokens (as Microsoft 365 does)."""
    server = _dovecot(server_pool, auth_server, "plain login xoauth2")
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _no_held_tokens() -> Iterator[None]:
    tokens.forget_access_tokens()
    yield
    tokens.forget_access_tokens()


def oauth_keys(auth: AuthServer, *, browser: bool = False) -> str:
    lines = ['auth = "oauth2"', 'oauth_provider = "custom"', f'client_id = "{auth.client_id}"',
             f'token_url = "{auth.url("/token")}"',
             f'device_authorization_url = "{auth.url("/device")}"', 'scope = "mail"']
    if browser:
        lines.append(f'authorization_url = "{auth.url("/authorize")}"')
    return "\n".join(lines)


def new_user(server: Dovecot, auth: AuthServer) -> ImapAccount:
    username, password = server.add_user()
    auth.user = username  # the person who signs in at the "browser"
    return server.account(username, password)


def plant_due_contact(account: ImapAccount, who: str = "anna@studio.example") -> None:
    """One person written with both ways 100 days before NOW: due today, a pick."""
    when = NOW - timedelta(days=100)
    account.append("INBOX", message(sender=f"Anna Berg <{who}>", subject="Fotos", when=when),
                   when=when)
    account.append("Sent", message(sender=ME, to=[who], subject="Re: Fotos",
                                   when=when + timedelta(hours=2)),
                   when=when + timedelta(hours=2))


def setup_oauth(monkeypatch: pytest.MonkeyPatch, account: ImapAccount, auth: AuthServer,
                tmp_path: Path, extra: str = "", browser: bool = False) -> Path:
    return write_config(monkeypatch, account, tmp_path, password="none",
                        imap_extra=oauth_keys(auth, browser=browser), extra=extra)


def assert_no_token(auth: AuthServer, *texts: str) -> None:
    for token in auth.tokens_issued():
        for text in texts:
            assert token not in text


# --------------------------------------------------------------------------- the whole way


def test_device_login_then_scan_drafts_and_smtp_digest(
        oauth_dovecot: Dovecot, auth_server: AuthServer, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    account = new_user(oauth_dovecot, auth_server)
    plant_due_contact(account)
    with SmtpSink(token_check=lambda user, token: (
            (grant := auth_server.grant_of(token)) is not None
            and token in grant.access_tokens and grant.user == user)) as sink:
        smtp = (f'\n[smtp]\nhost = "127.0.0.1"\nport = {sink.port}\nsecurity = "none"\n'
                f'username = "{account.username}"\nauth = "oauth2"\n')
        setup_oauth(monkeypatch, account, auth_server, tmp_path, extra='delivery = "smtp"\n' + smtp)

        code, out, err = run_cli(["login", "--device"], capsys)
        assert code == 0, out + err
        assert "WDJB-MJHT" in out and auth_server.url("/device-page") in out
        assert "signed in" in out and "oauth2:" + account.username in out
        assert ("followup", "oauth2:" + account.username) in MemoryKeyring.contents()
        # IMAP and SMTP of one account at one provider: one sign-in, not two.
        assert auth_server.count("urn:ietf:params:oauth:grant-type:device_code") == 2

        code, out2, err2 = run_cli(["-vvv", "--now", NOW_TEXT, "run", "--once"], capsys)
        assert code == 0, out2 + err2
        received = sink.wait_for(1)
    assert received[0].authenticated_as == account.username
    assert b"X-Followup-Digest" in received[0].data
    drafts = account.fetch_raw("Drafts")
    assert len(drafts) == 1 and b"anna@studio.example" in drafts[0]
    # The token never shows: not in output, not in the (protocol) log, not in the database.
    assert_no_token(auth_server, out, err, out2, err2)
    database = (tmp_path / "followup.db").read_bytes()
    for token in auth_server.tokens_issued():
        assert token.encode() not in database
    assert "AUTHENTICATE" in err2  # -vvv did log the protocol, scrubbed
    # The standard mechanism where the server offers it (Dovecot's log names it).
    assert f"user=<{account.username}>, method=OAUTHBEARER" in oauth_dovecot.log_tail(400)


def test_an_expired_access_token_is_renewed_without_the_user(
        oauth_dovecot: Dovecot, auth_server: AuthServer, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    account = new_user(oauth_dovecot, auth_server)
    plant_due_contact(account)
    setup_oauth(monkeypatch, account, auth_server, tmp_path)
    assert run_cli(["login", "--device"], capsys)[0] == 0
    refreshes = auth_server.count("refresh_token")

    # The hour is over: the server refuses the token followup holds; it renews it once.
    auth_server.expire_access_tokens()
    code, out, err = run_cli(["--now", NOW_TEXT, "scan"], capsys)
    assert code == 0, out + err
    assert auth_server.count("refresh_token") == refreshes + 1
    assert "1 new exchange" in out or "new exchange" in out

    # A token about to expire is renewed before it is used: the server never sees it.
    tokens.forget_access_tokens()
    auth_server.access_lifetime = 60  # below followup's two-minute margin
    code, out, err = run_cli(["--now", NOW_TEXT, "scan"], capsys)
    assert code == 0, out + err
    before = len(auth_server.introspected)
    code, out, err = run_cli(["--now", NOW_TEXT, "scan"], capsys)
    assert code == 0, out + err
    assert all(auth_server.introspected[before:]), "an expiring token was sent to the server"
    assert auth_server.count("refresh_token") == refreshes + 3
    auth_server.access_lifetime = 3600


def test_a_revoked_sign_in_is_one_line_exit_2_and_stops_the_daemon(
        oauth_dovecot: Dovecot, auth_server: AuthServer, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    account = new_user(oauth_dovecot, auth_server)
    setup_oauth(monkeypatch, account, auth_server, tmp_path)
    assert run_cli(["login", "--device"], capsys)[0] == 0
    auth_server.revoke(account.username)
    tokens.forget_access_tokens()

    code, out, err = run_cli(["--now", NOW_TEXT, "scan"], capsys)
    assert code == 2, out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: the OAuth2 sign-in for " + account.username)
    assert "expired or was revoked" in lines[0] and "run `followup login`" in lines[0]

    code, out, err = run_cli(["--now", NOW_TEXT, "doctor"], capsys)
    assert code == 1 and "run `followup login`" in out

    # The daemon stops with it instead of retrying for ever.
    code, out, err = run_cli(["--now", NOW_TEXT, "run"], capsys)
    assert code == 2, out + err
    assert err.strip().splitlines()[-1].startswith("error: the OAuth2 sign-in for")
    assert "trying again" not in err
    assert_no_token(auth_server, out, err)


def test_browser_login_with_pkce_and_xoauth2_only_server(
        xoauth2_dovecot: Dovecot, auth_server: AuthServer, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The loopback-redirect flow (the provider's page consents and redirects back), then
    IMAP with XOAUTH2 on a server that offers no OAUTHBEARER."""
    account = new_user(xoauth2_dovecot, auth_server)
    plant_due_contact(account)
    setup_oauth(monkeypatch, account, auth_server, tmp_path, browser=True)
    opened: list[str] = []

    def browser(url: str) -> bool:
        opened.append(url)
        assert "code_challenge=" in url and "code_challenge_method=S256" in url
        assert httpx.get(url, follow_redirects=True, timeout=10).status_code == 200
        return True

    monkeypatch.setattr(webbrowser, "open", browser)
    code, out, err = run_cli(["login", "--browser"], capsys)
    assert code == 0, out + err
    assert opened and "browser flow" in out
    assert auth_server.count("authorization_code") == 1

    code, out, err = run_cli(["--now", NOW_TEXT, "doctor"], capsys)
    assert code == 0, out + err
    assert "OAuth2 (custom), refresh token from keyring" in out
    assert "valid for 60 more minutes" in out and "scopes: mail" in out
    assert "with an OAuth2 token" in out
    code, out, err = run_cli(["--now", NOW_TEXT, "scan"], capsys)
    assert code == 0, out + err
    code, out, err = run_cli(["contacts", "--json"], capsys)
    assert [c["email"] for c in json.loads(out)] == ["anna@studio.example"]
    assert f"user=<{account.username}>, method=XOAUTH2" in xoauth2_dovecot.log_tail(400)


def test_smtp_oauthbearer_and_a_refused_token_renewed_once(
        oauth_dovecot: Dovecot, auth_server: AuthServer, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    account = new_user(oauth_dovecot, auth_server)
    plant_due_contact(account)
    seen: list[str] = []

    def check(user: str, token: str) -> bool:
        seen.append(token)
        return len(seen) > 1 and user == account.username  # refuse the first token

    with SmtpSink(token_check=check, mechanisms=("OAUTHBEARER",)) as sink:
        smtp = (f'\n[smtp]\nhost = "127.0.0.1"\nport = {sink.port}\nsecurity = "none"\n'
                f'username = "{account.username}"\nauth = "oauth2"\n')
        setup_oauth(monkeypatch, account, auth_server, tmp_path, extra='delivery = "smtp"\n' + smtp)
        assert run_cli(["login", "--device"], capsys)[0] == 0
        assert run_cli(["--now", NOW_TEXT, "scan"], capsys)[0] == 0
        code, out, err = run_cli(["--now", NOW_TEXT, "digest"], capsys)
        assert code == 0, out + err
        assert len(sink.wait_for(1)) == 1
    assert len(seen) == 2 and seen[0] != seen[1]


def test_store_command_and_token_command(
        oauth_dovecot: Dovecot, auth_server: AuthServer, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Without the keyring: the refresh token goes to a command, and comes from one."""
    account = new_user(oauth_dovecot, auth_server)
    stored = tmp_path / "token"
    setup_oauth(monkeypatch, account, auth_server, tmp_path)
    code, out, err = run_cli(["login", "--device", "--store-command",
                              f"tee {stored}"], capsys)
    assert code == 0, out + err
    assert stored.read_text().startswith("rt-") and MemoryKeyring.contents() == {}
    assert_no_token(auth_server, out, err)
    config = tmp_path / "config.toml"
    config.write_text(config.read_text().replace(
        'auth = "oauth2"', f'auth = "oauth2"\ntoken_command = "cat {stored}"'))
    tokens.forget_access_tokens()
    code, out, err = run_cli(["--now", NOW_TEXT, "scan"], capsys)
    assert code == 0, out + err


def test_init_signs_in_to_microsoft_with_the_device_flow(
        oauth_dovecot: Dovecot, auth_server: AuthServer, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """`followup init --provider microsoft`: asks for the client ID, signs in (device code),
    logs in with the token and writes auth = "oauth2" (Microsoft's sign-in server played by
    the local one)."""
    import agent.auth.endpoints

    monkeypatch.setattr(agent.auth.endpoints, "MICROSOFT_LOGIN", auth_server.url("/ms"))
    account = new_user(oauth_dovecot, auth_server)
    path = tmp_path / "config.toml"
    code, out, err = run_cli([
        "--config", str(path), "init", "--yes", "--email", "anna@contoso.example",
        "--provider", "microsoft", "--imap-host", "127.0.0.1", "--imap-port",
        str(account.port), "--security", "none", "--username", account.username,
        "--client-id", auth_server.client_id, "--device", "--name", "Anna",
        "--language", "en", "--timezone", "Europe/Berlin"], capsys)
    assert code == 0, out + err
    assert "WDJB-MJHT" in out and "Logged in. Folders on the server:" in out
    text = path.read_text()
    assert 'auth = "oauth2"' in text and 'oauth_provider = "microsoft"' in text
    assert ("followup", "oauth2:" + account.username) in MemoryKeyring.contents()
    assert_no_token(auth_server, out, err, text)
    tokens.forget_access_tokens()
    code, out, err = run_cli(["--config", str(path), "--now", NOW_TEXT, "scan"], capsys)
    assert code == 0, out + err


# --------------------------------------------------------------------------- config


def test_oauth2_config_problems_are_named() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config_text(config_text(imap_extra='auth = "oauth2"'))
    assert "[imap] auth = \"oauth2\" needs oauth_provider" in str(info.value)
    assert "[imap] auth = \"oauth2\" needs client_id" in str(info.value)
    with pytest.raises(ConfigError, match="needs token_url"):
        parse_config_text(config_text(imap_extra='auth = "oauth2"\noauth_provider = "custom"\n'
                                                 'client_id = "x"'))


def test_provider_defaults_from_the_host_and_smtp_shares_the_sign_in() -> None:
    config = parse_config_text(config_text(
        host="outlook.office365.com", security=None,
        imap_extra='auth = "oauth2"\nclient_id = "abc"\ntenant = "contoso.example"',
        extra='delivery = "smtp"\n[smtp]\nhost = "smtp.office365.com"\nport = 587\n'
              'security = "starttls"\nusername = "me@example.org"\nauth = "oauth2"\n'))
    assert config.imap.oauth_provider == "microsoft"
    assert config.smtp is not None and config.smtp.client_id == "abc"
    from agent import auth

    (acct,) = auth.oauth_accounts(config)  # one sign-in for IMAP and SMTP
    assert acct.endpoints.token_url == (
        "https://login.microsoftonline.com/contoso.example/oauth2/v2.0/token")
    assert acct.endpoints.scopes == ("https://outlook.office.com/IMAP.AccessAsUser.All",
                                     "offline_access", "https://outlook.office.com/SMTP.Send")
    google = parse_config_text(config_text(
        host="imap.gmail.com", security=None, imap_extra='auth = "oauth2"\nclient_id = "g"'))
    (gacct,) = auth.oauth_accounts(google)
    assert gacct.endpoints.scope == "https://mail.google.com/"
    assert gacct.endpoints.no_device_flow is not None


def test_plain_http_token_endpoints_are_refused_off_loopback() -> None:
    from agent import auth

    config = parse_config_text(config_text(imap_extra=(
        'auth = "oauth2"\noauth_provider = "custom"\nclient_id = "x"\n'
        'token_url = "http://sso.example.org/token"\n'
        'device_authorization_url = "https://sso.example.org/device"')))
    with pytest.raises(ConfigError, match="not https"):
        auth.oauth_accounts(config)
