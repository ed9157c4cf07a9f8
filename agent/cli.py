"""The command line: parse options, call one service function, print; one error handler."""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from agent import __version__, credentials
from agent.config import Config, default_config_path, load_config
from agent.errors import EXIT_OPERATIONAL, EXIT_USAGE, FollowupError, UsageError

log = logging.getLogger("agent")

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class App:
    """What every command gets: where the config is, the clock, verbosity."""

    config_path: Path
    now_text: str | None = None
    verbose: int = 0
    _config: Config | None = field(default=None, repr=False)

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path)
            for warning in self._config.warnings:
                log.warning("%s", warning)
        return self._config

    def now(self) -> datetime:
        """The fixed clock of --now / FOLLOWUP_NOW, else the real one; always aware."""
        if not self.now_text:
            return datetime.now(UTC)
        try:
            value = datetime.fromisoformat(self.now_text.replace("Z", "+00:00"))
        except ValueError:
            raise UsageError(
                f"--now {self.now_text!r} is not an ISO 8601 time; use e.g. 2026-03-01T07:30:00Z"
            ) from None
        if value.tzinfo is None:
            value = value.replace(tzinfo=self.config.digest.tz)
        return value


pass_app = click.make_pass_decorator(App)


def setup_logging(verbose: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"
                                           if verbose else "%(message)s"))
    handler.addFilter(credentials.RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING)
    # imapclient logs whole protocol lines at DEBUG; keep them out even with -vv.
    logging.getLogger("imapclient").setLevel(logging.WARNING if verbose < 3 else logging.DEBUG)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="Config file (default: $FOLLOWUP_CONFIG or ~/.config/followup/config.toml).")
@click.option("--now", "now_text", envvar="FOLLOWUP_NOW", default=None, metavar="ISO8601",
              help="Fix the clock for every decision (tests, dry runs).")
@click.option("-v", "--verbose", count=True, help="More output; tracebacks on errors.")
@click.version_option(__version__, prog_name="followup")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, now_text: str | None,
        verbose: int) -> None:
    """followup: knows from your own mailbox who is slipping away.

    It reads your mailbox over IMAP, records when you last exchanged mail with each
    person, sends you a morning digest of whom to contact, and leaves check-in drafts in
    your Drafts folder. It never sends mail to anyone but you.
    """
    setup_logging(verbose)
    ctx.obj = App(config_path=config_path or default_config_path(), now_text=now_text,
                  verbose=verbose)


# --------------------------------------------------------------------------- doctor


@cli.command()
@pass_app
def doctor(app: App) -> None:
    """Check config, password, server, TLS and folders, and say what is wrong."""
    from agent.doctor import run_checks

    failed = False
    for check in run_checks(app.config_path):
        mark = {True: "ok  ", False: "FAIL", None: "warn"}[check.ok]
        click.echo(f"{mark} {credentials.redact(check.text)}")
        failed = failed or check.ok is False
    if failed:
        sys.exit(EXIT_OPERATIONAL)


# --------------------------------------------------------------------------- password


@cli.group()
def password() -> None:
    """Store or remove the IMAP/SMTP password in the system keyring."""


def _username_for(app: App, kind: str) -> str:
    config = app.config
    if kind == "smtp":
        if config.smtp is None or not config.smtp.username:
            raise UsageError("the config has no [smtp] username, so no SMTP password is needed")
        return config.smtp.username
    return config.imap.username


@password.command("set")
@click.option("--smtp", "kind", flag_value="smtp", help="The SMTP password instead.")
@click.option("--imap", "kind", flag_value="imap", default=True, hidden=True)
@click.option("--stdin", "from_stdin", is_flag=True,
              help="Read the password from standard input (scripts).")
@pass_app
def password_set(app: App, kind: str, from_stdin: bool) -> None:
    """Store the password in the keyring (service "followup", your username)."""
    username = _username_for(app, kind)
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
@click.option("--imap", "kind", flag_value="imap", default=True, hidden=True)
@pass_app
def password_delete(app: App, kind: str) -> None:
    """Remove the stored password from the keyring."""
    username = _username_for(app, kind)
    if credentials.delete_password(username):
        click.echo(f"removed the {kind.upper()} password for {username} from the keyring")
    else:
        click.echo(f"the keyring held no {kind.upper()} password for {username}")


# --------------------------------------------------------------------------- scan and ledger


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


@cli.command()
@click.option("--full", is_flag=True,
              help="Forget what was scanned and read every folder again (decisions are kept).")
@pass_app
def scan(app: App, full: bool) -> None:
    """Read new mail headers (incrementally) and update the ledger."""
    from agent import service

    config = app.config
    progress = RichProgress() if sys.stderr.isatty() else None
    try:
        summary = service.run_scan(config, full=full, now=app.now(), progress=progress)
    finally:
        if progress:
            progress.stop()
    click.echo(summary.line())
    if summary.skipped and app.verbose:
        for reason, count in summary.skipped.most_common():
            click.echo(f"  not counted: {count} × {reason}")
    if summary.repaired and app.verbose:
        for reason, count in summary.repaired.most_common():
            click.echo(f"  repaired: {count} × {reason}")


def _status_filter(value: str | None) -> set[str] | None:
    from agent.model import STATUSES

    if not value:
        return None
    wanted = {s.strip() for s in value.split(",") if s.strip()}
    unknown = wanted - set(STATUSES)
    if unknown:
        raise UsageError(f"--status {', '.join(sorted(unknown))} is not a status; "
                         f"use any of: {', '.join(STATUSES)}")
    return wanted


@cli.command()
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
    from agent import output, service

    if as_json and as_csv:
        raise UsageError("choose one of --json and --csv")
    wanted = _status_filter(status)
    config = app.config
    with service.open_store(config) as store:
        if suggest_merges:
            click.echo(output.merge_suggestions_text(service.merge_suggestions(config, store)))
            return
        states = service.decide(config, store, app.now())
    if wanted is not None:
        states = [s for s in states if s.status in wanted]
    if as_json:
        click.echo(output.states_json(states))
    elif as_csv:
        click.echo(output.states_csv(states), nl=False)
    else:
        output.print_table(states, config.digest.tz, app.now())


# --------------------------------------------------------------------------- entry point


def fail(message: str, code: int) -> NoReturn:
    click.echo(f"error: {credentials.redact(message)}", err=True)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; FollowupErrors become one line and an exit code (traceback with -v)."""
    verbose = any(a in ("-v", "--verbose") or (a.startswith("-v") and set(a[1:]) == {"v"})
                  for a in (argv if argv is not None else sys.argv[1:]))
    try:
        cli.main(args=argv, prog_name="followup", standalone_mode=False)
    except FollowupError as exc:
        if verbose:
            traceback.print_exc()
        fail(str(exc), exc.exit_code)
    except click.exceptions.Abort:
        fail("aborted", EXIT_OPERATIONAL)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_USAGE if exc.exit_code == 2 else exc.exit_code)
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except BrokenPipeError:
        os._exit(0)
    except Exception as exc:  # noqa: BLE001 - the one place that turns surprises into a line
        if verbose:
            traceback.print_exc()
        fail(f"unexpected {type(exc).__name__}: {exc} (run with -v for details, and please "
             "report it)", EXIT_OPERATIONAL)
