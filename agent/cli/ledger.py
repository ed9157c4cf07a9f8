"""Reading the mailbox and the ledger: `scan`, `contacts`, `show`, `due`."""

from __future__ import annotations

import sys
from dataclasses import replace

import click

from agent.cli.app import App, pass_app
from agent.errors import UsageError


class RichProgress:
    """A per-folder progress bar with messages/s, for terminals."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskID,
            TextColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>7} msg/s"), TimeRemainingColumn(), transient=False,
        )
        self._task: TaskID | None = None
        self._progress.start()

    def folder_started(self, folder: str, total: int) -> None:
        self._task = self._progress.add_task(folder, total=total or 1, rate="-")
        if not total:
            self._progress.update(self._task, completed=1)

    def advanced(self, count: int) -> None:
        if self._task is not None:
            self._progress.advance(self._task, count)
            speed = self._progress.tasks[-1].speed
            self._progress.update(self._task, rate=f"{speed:.0f}" if speed else "-")

    def folder_done(self, folder: str) -> None:
        self._task = None

    def stop(self) -> None:
        self._progress.stop()


@click.command()
@click.option("--full", is_flag=True,
              help="Forget what was scanned and read every folder again (decisions are kept).")
@pass_app
def scan(app: App, full: bool) -> None:
    """Read new mail headers (incrementally) and update the ledger."""
    from agent import service

    config = app.config
    progress = RichProgress() if sys.stderr.isatty() else None
    try:
        result = service.run(config, app.now(), replace(service.SCAN, full=full),
                             progress=progress)
    finally:
        if progress:
            progress.stop()
    summary = result.scan
    assert summary is not None  # the SCAN steps always scan
    click.echo(summary.line())
    commands = result.commands
    if commands is not None and (commands.applied or commands.ignored):
        click.echo(commands.line())
    if commands is not None and app.verbose:
        for ignored in commands.ignored:
            click.echo(f"  not a command: {ignored.line()}")
    if summary.skipped and app.verbose:
        for reason, count in summary.skipped.most_common():
            click.echo(f"  not counted: {count} × {reason}")
    if app.verbose:
        for unread in summary.unread_messages:
            click.echo(f"  not given by the server: {unread}")
    if summary.repaired and app.verbose:
        for reason, count in summary.repaired.most_common():
            click.echo(f"  repaired: {count} × {reason}")
        for repair in summary.repairs:  # each with its folder, UID and Message-ID
            click.echo(f"    {repair}")


def _status_filter(value: str | None) -> set[str] | None:
    from agent.model import STATUSES

    if value is None:
        return None
    wanted = {s.strip().lower() for s in value.split(",") if s.strip()}
    if not wanted:
        raise UsageError(f"--status {value!r} names no status; use any of: "
                         f"{', '.join(STATUSES)}, separated by commas")
    unknown = wanted - set(STATUSES)
    if unknown:
        raise UsageError(f"--status {', '.join(sorted(unknown))} is not a status; "
                         f"use any of: {', '.join(STATUSES)}")
    return wanted


@click.command()
@click.option("--json", "as_json", is_flag=True, help="JSON list of objects.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV with a header row.")
@click.option("--status", "status", metavar="LIST",
              help="Only these statuses, e.g. due,overdue,waiting.")
@click.option("--suggest-merges", is_flag=True,
              help="List addresses that look like one person (same name, related domain).")
@pass_app
def contacts(app: App, as_json: bool, as_csv: bool, status: str | None,
             suggest_merges: bool) -> None:
    """The ledger: everyone you exchange mail with, and when you last did."""
    from agent import identity, output, plan, service

    if as_json and as_csv:
        raise UsageError("choose one of --json and --csv")
    wanted = _status_filter(status)
    config = app.config
    with service.open_store(config) as store:
        if suggest_merges:
            suggestions = identity.suggest_merges(plan.contacts(config, store))
            click.echo(output.merge_suggestions_text(suggestions))
            return
        states = plan.decide(config, store, app.now())
    if wanted is not None:
        states = [s for s in states if s.status in wanted]
    if as_json:
        click.echo(output.states_json(states))
    elif as_csv:
        click.echo(output.states_csv(states), nl=False)
    else:
        output.print_table(states, config.digest.tz, app.now())


@click.command()
@click.argument("contact", metavar="ADDRESS|ID")
@pass_app
def show(app: App, contact: str) -> None:
    """Everything about one contact, and why.

    Addresses, the last exchange each way (date, subject, folder), status and its reason,
    cadence and where it comes from, tags and decisions.
    """
    from agent import decisions, output, service

    with service.open_store(app.config) as store:
        profile = decisions.show(app.config, store, contact, app.now())
    click.echo(output.show_text(profile, app.config.digest.tz))


@click.command()
@click.option("--json", "as_json", is_flag=True,
              help="JSON list: the `contacts --json` fields plus urgency, picked and "
                   "reply_today.")
@pass_app
def due(app: App, as_json: bool) -> None:
    """Who to contact now, most urgent first.

    Waiting on your reply, overdue, then due soon; * marks today's picks, r today's
    replies owed (those the digest and drafts use); phone: the number to call.
    """
    from agent import output, plan, service

    with service.open_store(app.config) as store:
        today_plan = plan.make_plan(app.config, store, app.now())
    if as_json:
        click.echo(output.due_json(today_plan.listed, today_plan.picks, today_plan.replies))
    else:
        output.print_due(today_plan.listed, today_plan.picks, today_plan.replies)
