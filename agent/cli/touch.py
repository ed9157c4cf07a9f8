"""Contact outside the mailbox and commands by mail: `log`, `commands`."""

from __future__ import annotations

import json

import click

from agent.cli.app import App, pass_app


@click.command("log")
@click.argument("contact", metavar="WHO")
@click.argument("kind", type=click.Choice(["call", "meeting", "message"],
                                          case_sensitive=False))
@click.option("--date", "day", metavar="YYYY-MM-DD", help="When it happened (default: today).")
@click.option("--note", default="", metavar="TEXT", help="A few words to remember it by.")
@pass_app
def log(app: App, contact: str, kind: str, day: str | None, note: str) -> None:
    """Record a call, a meeting or a message elsewhere with a contact.

    It restarts their clock like an exchange; a check-in draft still waiting for them is
    settled as done (it stays in Drafts, and no new one is made). WHO is an id or any of
    their addresses, e.g. `followup log anna@studio.example call --note "Angebot März"`.
    """
    from agent import service, touchpoints

    with service.open_store(app.config) as store:
        logged = touchpoints.log(app.config, store, contact, kind, day, note, app.now())
    words = {"call": "a call", "meeting": "a meeting", "message": "a message elsewhere"}
    click.echo(f"logged {words[logged.touch.kind]} with {logged.target.label} on "
               f"{logged.touch.day.isoformat()}" + (f": {logged.touch.note}"
                                                   if logged.touch.note else ""))
    for draft in logged.settled:
        click.echo(f"their {draft.kind} draft of {draft.day.isoformat()} in {draft.folder} is "
                   "settled as done (it stays there; delete or send it as you like)")


@click.command("commands")
@click.option("--json", "as_json", is_flag=True, help="JSON list of objects.")
@pass_app
def commands(app: App, as_json: bool) -> None:
    """Commands received by mail (answers to the digest, one-click links) and what they did."""
    from agent import output, service

    with service.open_store(app.config) as store:
        records = store.commands.all()
    if as_json:
        click.echo(json.dumps(output.command_records(records), ensure_ascii=False, indent=2))
    else:
        click.echo(output.commands_text(records, app.config.digest.tz))
