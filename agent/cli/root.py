"""The `followup` command: global options, every command, and the one error handler."""

from __future__ import annotations

import logging
import os
import sys
import traceback
from pathlib import Path
from typing import NoReturn

import click

from agent import __version__, credentials
from agent.cli import books, decide, ledger, mail, run, setup, touch
from agent.cli.app import App
from agent.config import default_config_path
from agent.errors import EXIT_OPERATIONAL, EXIT_USAGE, FollowupError


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
    # Each invocation starts from the same levels (in-process callers run several commands).
    logging.getLogger("agent").setLevel(logging.NOTSET)


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


for command in (setup.init, setup.doctor, setup.password, setup.login, ledger.scan, ledger.contacts,
                ledger.due, ledger.show, decide.snooze, decide.unsnooze, decide.ignore,
                decide.unignore, decide.cadence, decide.tag, decide.merge, decide.split,
                mail.digest, mail.drafts, mail.templates, run.run, run.demo,
                books.addressbook, touch.log, touch.commands):
    cli.add_command(command)


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
