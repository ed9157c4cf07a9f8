"""What followup writes for you: `digest`, `drafts`, `templates export`."""

from __future__ import annotations

from pathlib import Path

import click

from agent.cli.app import App, pass_app


@click.command()
@click.option("--dry-run", is_flag=True,
              help="Print the plain-text digest and deliver nothing.")
@click.option("--output", "output", type=click.Path(dir_okay=False, path_type=Path),
              metavar="FILE", help="Write the HTML digest to FILE (to look at it); "
                                   "delivers nothing.")
@pass_app
def digest(app: App, dry_run: bool, output: Path | None) -> None:
    """Build today's digest from the ledger and deliver it (at most once a day).

    It does not scan first (run `followup scan`, or let `followup run` do both). The digest
    goes to your INBOX, or through [smtp] with [digest] delivery = "smtp", and only to you.
    """
    from agent import service

    result = service.run_digest(app.config, app.now(), dry_run=dry_run, output=output)
    for problem in result.problems:
        click.echo(f"warning: {problem}; the default template was used", err=True)
    if dry_run:
        click.echo(result.text or "", nl=False)
        if result.already_delivered:
            click.echo("(today's digest was already delivered)", err=True)
        elif not result.picks and not result.due and not app.config.digest.send_empty:
            click.echo("(nobody is due today, so no digest would be sent)", err=True)
    if output is not None:
        click.echo(f"wrote the HTML digest to {output}", err=dry_run)
    if not dry_run and output is None:
        click.echo(result.line())


@click.group()
def templates() -> None:
    """The digest and draft templates (Jinja2) that you can copy and change."""


@templates.command("export")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite files that already exist there.")
@pass_app
def templates_export(app: App, directory: Path, force: bool) -> None:
    """Copy the default templates into DIRECTORY for tweaking.

    Files already there are kept unless --force. followup uses them when DIRECTORY is
    [templates] dir in the config, or the `templates` folder next to the config file.
    """
    from agent import render

    copied, kept = render.export_templates(directory, overwrite=force)
    for path in copied:
        click.echo(f"copied {path}")
    for path in kept:
        click.echo(f"kept   {path} (exists; --force overwrites)")
    if not _templates_in_use(app, directory):
        click.echo(f"to use them, set in the config: [templates] dir = \"{directory}\"")


def _templates_in_use(app: App, directory: Path) -> bool:
    from agent.errors import ConfigError
    from agent.render import user_templates_dir

    try:
        in_use = user_templates_dir(app.config)
    except ConfigError:
        return False  # no usable config yet: exporting still works
    return in_use is not None and in_use.resolve() == directory.resolve()


@click.command()
@click.option("--dry-run", is_flag=True,
              help="Print the drafts that would be created; change nothing, connect to nothing.")
@pass_app
def drafts(app: App, dry_run: bool) -> None:
    """Put check-in drafts for today's picks into your Drafts folder.

    First a quick scan, then pending drafts are settled (sent, or deleted: that contact is
    snoozed [drafts] snooze_days), then new drafts are made, at most [drafts] max_per_day a
    day and never two for one person. Nothing is ever sent: you send, edit or delete them.
    """
    from agent import output, service

    config = app.config
    if not config.drafts.enabled:
        click.echo("note: [drafts] enabled = false stops the daily drafts; making them now "
                   "because you asked", err=True)
    result = service.run_drafts(config, app.now(), dry_run=dry_run)
    for problem in result.problems:
        click.echo(f"warning: {problem}; the default template was used", err=True)
    for line in output.drafts_report(result):
        click.echo(line)
