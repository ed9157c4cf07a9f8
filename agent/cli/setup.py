"""Setting up: `followup init`, `followup doctor`, `followup password set|delete`."""

from __future__ import annotations

import sys
from collections.abc import Callable

import click

from agent import credentials
from agent.cli.app import App, pass_app
from agent.errors import EXIT_OPERATIONAL, UsageError


@click.command()
@pass_app
def doctor(app: App) -> None:
    """Check config, password, server, TLS and folders, and say what is wrong."""
    from agent.doctor import run_checks

    failed = False
    for check in run_checks(app.config_path, now=app.now()):
        mark = {True: "ok  ", False: "FAIL", None: "warn"}[check.ok]
        click.echo(f"{mark} {credentials.redact(check.text)}")
        failed = failed or check.ok is False
    if failed:
        sys.exit(EXIT_OPERATIONAL)


@click.group()
def password() -> None:
    """Store or remove the IMAP, SMTP or CardDAV password in the system keyring."""


def _username_for(app: App, kind: str, mailbox: str | None = None) -> str:
    config = app.config
    if mailbox is not None:
        found = [m for m in config.mailboxes if mailbox.lower() in (m.name.lower(),
                                                                     m.email.lower())]
        if not found:
            raise UsageError(f"no mailbox named {mailbox!r}; mailboxes: "
                             + ", ".join(m.name for m in config.mailboxes))
        return found[0].imap.username
    if kind == "carddav":
        names = [b.username for b in config.addressbook if b.url and b.username]
        if not names:
            raise UsageError("the config has no [[addressbook]] with url and username, so no "
                             "CardDAV password is needed")
        return names[0]
    if kind == "smtp":
        if config.smtp is None or not config.smtp.username:
            raise UsageError("the config has no [smtp] username, so no SMTP password is needed")
        return config.smtp.username
    return config.imap.username


@password.command("set")
@click.option("--smtp", "kind", flag_value="smtp", help="The SMTP password instead.")
@click.option("--carddav", "kind", flag_value="carddav",
              help="The CardDAV password (username of the first [[addressbook]] url).")
@click.option("--imap", "kind", flag_value="imap", default=True, hidden=True)
@click.option("--mailbox", metavar="NAME", help="The IMAP password of this [[mailbox]].")
@click.option("--stdin", "from_stdin", is_flag=True,
              help="Read the password from standard input (scripts).")
@pass_app
def password_set(app: App, kind: str, mailbox: str | None, from_stdin: bool) -> None:
    """Store the password in the keyring (service "followup", your username)."""
    username = _username_for(app, kind, mailbox)
    if from_stdin:
        secret = sys.stdin.readline().rstrip("\r\n")
    else:
        secret = click.prompt(f"{kind.upper()} password for {username}", hide_input=True,
                              confirmation_prompt=True)
    if not secret:
        raise UsageError("the password is empty; nothing stored")
    credentials.set_password(username, secret)
    click.echo(f"stored the {kind.upper()} password for {username} in the keyring")


@password.command("delete")
@click.option("--smtp", "kind", flag_value="smtp", help="The SMTP password instead.")
@click.option("--carddav", "kind", flag_value="carddav",
              help="The CardDAV password (username of the first [[addressbook]] url).")
@click.option("--imap", "kind", flag_value="imap", default=True, hidden=True)
@pass_app
def password_delete(app: App, kind: str) -> None:
    """Remove the stored password from the keyring."""
    username = _username_for(app, kind)
    if credentials.delete_password(username):
        click.echo(f"removed the {kind.upper()} password for {username} from the keyring")
    else:
        click.echo(f"the keyring held no {kind.upper()} password for {username}")


@click.command()
@click.option("--mailbox", "mailbox_name", metavar="NAME",
              help="Sign in only for this mailbox (its [[mailbox]] name or email).")
@click.option("--device", "flow", flag_value="device",
              help="Sign in on any other device with a code (RFC 8628; headless machines).")
@click.option("--browser", "flow", flag_value="browser",
              help="Sign in in a browser; the answer comes back to 127.0.0.1 (PKCE).")
@click.option("--port", type=click.IntRange(0, 65535), default=0,
              help="Port of the browser sign-in's loopback listener (e.g. for ssh -L).")
@click.option("--store-command", metavar="CMD",
              help="Hand the refresh token to CMD's standard input instead of the keyring "
                   "(e.g. \"pass insert -m mail/oauth\"); then set token_command.")
@pass_app
def login(app: App, mailbox_name: str | None, flow: str | None, port: int,
          store_command: str | None) -> None:
    """OAuth2 sign-in for every section with auth = "oauth2" (device code or browser)."""
    from agent import auth
    from agent.auth.signin import sign_in

    config = app.config
    accounts = auth.oauth_accounts(config)
    if mailbox_name is not None:
        chosen = [m for m in config.mailboxes
                  if mailbox_name.lower() in (m.name.lower(), m.email.lower())]
        if not chosen:
            raise UsageError(f"no mailbox named {mailbox_name!r}; mailboxes: "
                             + ", ".join(m.name for m in config.mailboxes))
        users = {m.imap.username.lower() for m in chosen}
        accounts = [a for a in accounts if a.username.lower() in users]
    if not accounts:
        raise UsageError("nothing to sign in: no section of the config has auth = \"oauth2\" "
                         "(set it in [imap] with oauth_provider and client_id; README: OAuth2)")
    for acct in accounts:
        done = sign_in(acct, lambda text: click.echo(credentials.redact(text)), flow=flow,
                       port=port, store_command=store_command)
        click.echo(credentials.redact(done.line()))


class ClickDialogue:
    """init's questions on a terminal; without one, defaults or an error naming the flag."""

    def __init__(self, interactive: bool, assume_yes: bool) -> None:
        self._interactive = interactive
        self._assume_yes = assume_yes

    @property
    def interactive(self) -> bool:
        return self._interactive

    def ask(self, question: str, *, flag: str, default: str | None = None,
            hide: bool = False, check: Callable[[str], str] | None = None) -> str:
        if not self._interactive:
            if default is None:
                raise UsageError(f"no answer to \"{question}\": give {flag} (or run "
                                 "`followup init` on a terminal)")
            try:
                return check(default) if check else default
            except ValueError as exc:
                raise UsageError(f"{flag}: {exc}") from None
        while True:
            answer = click.prompt(question, default=default, hide_input=hide,
                                  show_default=bool(default) and not hide)
            try:
                return check(answer) if check else str(answer)
            except ValueError as exc:
                click.echo(f"  {exc}", err=True)

    def confirm(self, question: str, *, default: bool) -> bool:
        if not self._interactive:
            return self._assume_yes or default
        return click.confirm(question, default=default)

    def say(self, text: str) -> None:
        click.echo(credentials.redact(text))


@click.command()
@click.option("--email", help="Your email address.")
@click.option("--name", help="Your name, as in the From of drafts.")
@click.option("--provider", metavar="KEY",
              help="A host from the built-in table (gmail, microsoft, gmx, webde, t-online, "
                   "ionos, mailbox.org, posteo, fastmail, icloud, yahoo) or 'other'.")
@click.option("--imap-host", help="IMAP server (default: from the table, by your address).")
@click.option("--imap-port", type=click.IntRange(1, 65535), help="IMAP port.")
@click.option("--security", type=click.Choice(["ssl", "starttls", "none"]),
              help="Connection security (none: loopback only).")
@click.option("--username", help="Login name (default: your address).")
@click.option("--password-stdin", is_flag=True,
              help="Read the password from the first line of standard input.")
@click.option("--password-command", metavar="CMD",
              help="A command that prints the password (stored in the config, not the "
                   "password).")
@click.option("--language", type=click.Choice(["de", "en"]), help="Language of the digest.")
@click.option("--timezone", help="IANA time zone, e.g. Europe/Berlin.")
@click.option("--digest-time", metavar="HH:MM", help="Local time of the digest (07:30).")
@click.option("--auth", type=click.Choice(["password", "oauth2"]),
              help="How to log in (default: oauth2 where only that works, e.g. Microsoft 365).")
@click.option("--client-id", help="OAuth2: the client ID of your app registration.")
@click.option("--client-secret", help="OAuth2: its client secret (Google desktop apps).")
@click.option("--device", "oauth_flow", flag_value="device",
              help="OAuth2: sign in on another device with a code.")
@click.option("--browser", "oauth_flow", flag_value="browser",
              help="OAuth2: sign in in a browser on this machine.")
@click.option("-y", "--yes", is_flag=True,
              help="Ask nothing: take flags and defaults (scripts).")
@click.option("--force", is_flag=True, help="Replace an existing config file.")
@pass_app
def init(app: App, email: str | None, name: str | None, provider: str | None,
         imap_host: str | None, imap_port: int | None, security: str | None,
         username: str | None, password_stdin: bool, password_command: str | None,
         language: str | None, timezone: str | None, digest_time: str | None,
         auth: str | None, client_id: str | None, client_secret: str | None,
         oauth_flow: str | None, yes: bool, force: bool) -> None:
    """Set up: your address, server, password (into the keyring), and the config file."""
    from agent.init import InitOptions, run_init

    if password_stdin and password_command:
        raise UsageError("choose one of --password-stdin and --password-command")
    password = None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise UsageError("--password-stdin: standard input held no password")
    options = InitOptions(
        email=email, name=name, provider=provider, imap_host=imap_host, imap_port=imap_port,
        security=security, username=username, password=password,
        password_command=password_command, language=language, timezone=timezone,
        digest_time=digest_time, force=force, auth=auth, client_id=client_id,
        client_secret=client_secret, oauth_flow=oauth_flow)
    interactive = not yes and not password_stdin and sys.stdin.isatty()
    run_init(options, app.config_path, ClickDialogue(interactive, assume_yes=yes))
    click.echo("Next: `followup doctor` checks everything, `followup scan` reads your "
               "mailbox, `followup run` keeps going (see contrib/ for a service).")
