"""Keeping it going: `followup run` (the daemon, or --once) and `followup demo`."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from agent.cli.app import App, pass_app

if TYPE_CHECKING:
    from agent.service import RunResult


def _cycle_lines(result: RunResult) -> list[str]:
    """What one cycle did, in the words of its parts: scan, signatures, digest, drafts."""
    from agent import output

    signatures = result.signatures if result.signatures and result.signatures.looked_for \
        else None  # nobody without a number: nothing to say
    lines = [part.line() for part in (result.scan, signatures, result.digest) if part is not None]
    if result.drafts is not None:
        lines += output.drafts_report(result.drafts)
    return lines


@click.command()
@click.option("--once", is_flag=True,
              help="Run one cycle (scan, digest, drafts) and exit: for cron or a timer.")
@pass_app
def run(app: App, once: bool) -> None:
    """The daemon: scan every [daemon] scan_interval, digest and drafts at [digest] time.

    It catches up once after sleep or downtime, retries network failures with growing
    pauses, and stops cleanly (exit 0) on SIGTERM or Ctrl-C.
    """
    from agent import daemon

    config = app.config
    if once:
        for line in _cycle_lines(daemon.run_once(config, app.now())):
            click.echo(line)
        return
    clock = daemon.utc_now
    if app.now_text:
        # --now sets where the daemon's clock starts; from there it runs with the real one.
        start, started = app.now(), datetime.now(UTC)

        def clock() -> datetime:
            return start + (datetime.now(UTC) - started)

    logger = logging.getLogger("agent")
    level = logger.level
    if app.verbose == 0:
        logger.setLevel(logging.INFO)  # a daemon says what it does, with the time
    for handler in logging.getLogger().handlers:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s",
                                               "%Y-%m-%d %H:%M:%S"))
    try:
        daemon.run_daemon(config, now=clock)
    finally:
        logger.setLevel(level)


def _heading(text: str) -> None:
    click.echo("")
    click.secho(text, bold=True)


@click.command()
@click.option("--keep-running", is_flag=True,
              help="Keep the demo server up for a mail client (host, port, user, password "
                   "are printed) until Ctrl-C.")
@click.option("--language", type=click.Choice(["de", "en"]),
              help="Language of the digest (default: from $LANG).")
@pass_app
def demo(app: App, keep_running: bool, language: str | None) -> None:
    """The whole loop on a generated mailbox in an embedded IMAP server: no account needed."""
    from agent import output
    from agent.demo import DemoSession

    now = app.now()
    with DemoSession(now, language=language) as session:
        click.echo(f"Embedded IMAP server on {session.host}:{session.port}; filling it with "
                   "two years of a photographer's mail …")
        result = session.run()
        tz = result.config.digest.tz
        click.echo(f"{result.messages} messages from {result.people} people, newsletters and "
                   "notifications; " + (result.cycle.scan.line() if result.cycle.scan else ""))

        contacts = [s for s in result.states if s.status != "ignored"]
        _heading(f"Contacts: {len(contacts)} people you have written with, both ways")
        output.print_table(contacts, tz, now)

        for heading, states in ((f"Today's picks ({len(result.picks)})", result.picks),
                                (f"Replies owed today ({len(result.replies)})", result.replies)):
            _heading(heading)
            for number, state in enumerate(states, start=1):
                contact = state.contact
                phone = f" ☎ {contact.phones[0].number}" if contact.phones else ""
                click.echo(f"  {number}. {contact.name} <{contact.email}>: {state.status}; "
                           f"{state.reason}{phone}")

        _heading("The digest (delivered to the demo INBOX)")
        click.echo(result.digest_text.rstrip())
        click.echo("")
        click.echo(f"HTML digest: {result.html_path}")

        _heading(f"Drafts now in the demo Drafts folder ({len(result.drafts)})")
        for draft in result.drafts:
            click.echo(f"  To: {draft.to}")
            click.echo(f"  Subject: {draft.subject}")
            previous = ""
            for line in draft.body.strip().splitlines():
                if line.strip() or previous.strip():  # one blank line is enough here
                    click.echo(f"    {line}".rstrip())
                previous = line
            click.echo("")
        click.echo(f"Demo files (config, database, HTML): {result.directory}")
        if not keep_running:
            click.echo("Run `followup demo --keep-running` to open the digest and the drafts "
                       "in a real mail client.")
            return
        _heading("The demo server keeps running; add it to a mail client as an IMAP account:")
        click.echo(f"  server {session.host}  port {session.port}  security: none (plain "
                   "IMAP, loopback only)")
        click.echo(f"  user {session.username}  password {session.password}")
        click.echo("Press Ctrl-C to stop.")
        session.wait()
