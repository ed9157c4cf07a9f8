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
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from agent import __version__, credentials
from agent.config import Config, default_config_path, load_config
from agent.errors import EXIT_OPERATIONAL, EXIT_USAGE, FollowupError, UsageError

if TYPE_CHECKING:
    from agent.service import RunResult

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


# --------------------------------------------------------------------------- doctor


@cli.command()
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
        summary = service.run_scan(config, app.now(), full=full, progress=progress)
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


# --------------------------------------------------------------------------- contact management
# Issue 4: snooze, unsnooze, ignore, unignore, cadence, tag, merge, split, show, due.
# Decisions are written in one transaction each, without the run lock: a snooze must not
# wait for a long scan to finish.


@cli.command()
@click.argument("contact", metavar="ADDRESS|ID")
@click.argument("duration")
@pass_app
def snooze(app: App, contact: str, duration: str) -> None:
    """Leave a contact out until a day.

    DURATION is 30d, 6w, 3m (calendar months) or a date. The snooze lasts through
    that day in your [digest] timezone, e.g.
    `followup snooze anna@example.org 3m` or `followup snooze 12 2026-12-24`.
    """
    from agent import decisions, service

    with service.open_store(app.config) as store:
        target, until = decisions.snooze(app.config, store, contact, duration, app.now())
    click.echo(f"snoozed {target.label} until {until.isoformat()}")


@cli.command()
@click.argument("contact", metavar="ADDRESS|ID")
@pass_app
def unsnooze(app: App, contact: str) -> None:
    """End a contact's snooze now."""
    from agent import decisions, service

    with service.open_store(app.config) as store:
        target, until = decisions.unsnooze(app.config, store, contact, app.now())
    if until is None:
        click.echo(f"{target.label} was not snoozed; nothing changed")
    else:
        click.echo(f"unsnoozed {target.label} (the snooze ran until {until.isoformat()})")


@cli.command()
@click.argument("contact", metavar="ADDRESS|ID")
@pass_app
def ignore(app: App, contact: str) -> None:
    """Never suggest this contact again (until `followup unignore`)."""
    from agent import decisions, service

    with service.open_store(app.config) as store:
        target, already = decisions.ignore(app.config, store, contact)
    if already:
        click.echo(f"{target.label} was already ignored; nothing changed")
    else:
        click.echo(f"ignored {target.label}: no digest lines or drafts for them until "
                   "`followup unignore`")


@cli.command()
@click.argument("contact", metavar="ADDRESS|ID")
@pass_app
def unignore(app: App, contact: str) -> None:
    """Clear your ignore of a contact.

    A [[policy.rule]] that ignores them still does; `followup cadence` overrides it.
    """
    from agent import decisions, service

    with service.open_store(app.config) as store:
        target, was_ignored, effective = decisions.unignore(app.config, store, contact)
    done = f"unignored {target.label}" if was_ignored else \
        f"{target.label} was not ignored by you"
    if effective.ignored:
        click.echo(f"{done}; but {effective.source} still ignores them: remove that rule, or "
                   f"give them a cadence of their own (`followup cadence {target.id} DAYS`)")
    else:
        click.echo(f"{done}; now {decisions.every(effective)}")


@cli.command()
@click.argument("contact", metavar="ADDRESS|ID")
@click.argument("days", metavar="DAYS|default")
@pass_app
def cadence(app: App, contact: str, days: str) -> None:
    """Set how often to hear from a contact.

    Every DAYS days, or `default` to follow the [[policy.rule]] entries and [policy]
    cadence_days again. Your cadence for a contact wins over every rule.
    """
    from agent import decisions, service

    with service.open_store(app.config) as store:
        target, before, after = decisions.set_cadence(app.config, store, contact, days)
    click.echo(f"cadence of {target.label}: {decisions.every(after)}; "
               f"was {decisions.every(before)}")


@cli.command()
@click.argument("contact", metavar="ADDRESS|ID")
@click.argument("tags", metavar="TAG...", nargs=-1, required=True)
@click.option("--remove", is_flag=True, help="Remove these tags instead.")
@pass_app
def tag(app: App, contact: str, tags: tuple[str, ...], remove: bool) -> None:
    """Tag a contact, or --remove tags.

    Rules with e.g. `tag = "client"` then apply to the contact. Tags are single words,
    compared in lowercase; `a,b` is two tags.
    """
    from agent import decisions, service

    with service.open_store(app.config) as store:
        target, changed, effective = decisions.tag(app.config, store, contact, tags, remove)
    asked = decisions.clean_tags(tags)
    unchanged = [t for t in asked if t not in changed]
    if unchanged:
        verb = "did not have" if remove else "already had"
        click.echo(f"{target.label} {verb} the tag(s) {', '.join(unchanged)}")
    have = ", ".join(sorted(target.decisions.tags)) or "none"
    click.echo(f"tags of {target.label}: {have}; cadence {decisions.every(effective)}")


@cli.command()
@click.argument("keep", metavar="A")
@click.argument("other", metavar="B")
@pass_app
def merge(app: App, keep: str, other: str) -> None:
    """Merge contact B into contact A.

    A keeps its id and decisions (B's snooze, ignore and cadence fill in what A lacks;
    tags are united). B's id keeps naming the merged contact.
    """
    from agent import decisions, service

    with service.open_store(app.config) as store:
        kept, gone, merged = decisions.merge(app.config, store, keep, other)
    click.echo(f"merged {gone.label} (id {gone.id}) into {kept.label} (id {kept.id})")
    click.echo(f"addresses of contact {merged.id}: {', '.join(merged.addresses)}")


@cli.command()
@click.argument("address")
@pass_app
def split(app: App, address: str) -> None:
    """Give one address its own contact again.

    The new contact starts without decisions; the rest keep theirs.
    """
    from agent import decisions, service

    with service.open_store(app.config) as store:
        new, old = decisions.split(app.config, store, address, app.now())
    click.echo(f"split {new.email} off {old.label} (id {old.id}): now contact {new.id}, "
               f"{new.label}")
    click.echo(f"{old.label} keeps: {', '.join(old.addresses)}")


@cli.command()
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


@cli.command()
@click.option("--json", "as_json", is_flag=True,
              help="JSON list: the `contacts --json` fields plus urgency and picked.")
@pass_app
def due(app: App, as_json: bool) -> None:
    """Who to contact now, most urgent first.

    Waiting on your reply, overdue, then due soon; * marks today's picks (those the
    digest and drafts use).
    """
    from agent import output, plan, service

    with service.open_store(app.config) as store:
        today_plan = plan.make_plan(app.config, store, app.now())
    if as_json:
        click.echo(output.due_json(today_plan.due, today_plan.picks))
    else:
        output.print_due(today_plan.due, today_plan.picks)


# --------------------------------------------------------------------------- digest and templates
# Issue 5: `followup digest` and `followup templates export`.


@cli.command()
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


@cli.group()
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


# --------------------------------------------------------------------------- drafts
# Issue 6: `followup drafts`.


@cli.command()
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


# --------------------------------------------------------------------------- setup, daemon, demo
# (issue #7: `followup init`, `followup run`, `followup demo`)


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


@cli.command()
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
@click.option("-y", "--yes", is_flag=True,
              help="Ask nothing: take flags and defaults (scripts).")
@click.option("--force", is_flag=True, help="Replace an existing config file.")
@pass_app
def init(app: App, email: str | None, name: str | None, provider: str | None,
         imap_host: str | None, imap_port: int | None, security: str | None,
         username: str | None, password_stdin: bool, password_command: str | None,
         language: str | None, timezone: str | None, digest_time: str | None, yes: bool,
         force: bool) -> None:
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
        digest_time=digest_time, force=force)
    interactive = not yes and not password_stdin and sys.stdin.isatty()
    run_init(options, app.config_path, ClickDialogue(interactive, assume_yes=yes))
    click.echo("Next: `followup doctor` checks everything, `followup scan` reads your "
               "mailbox, `followup run` keeps going (see contrib/ for a service).")


def _cycle_lines(result: RunResult) -> list[str]:
    """What one cycle did, in the words of its parts: scan, digest, drafts."""
    from agent import output

    lines = [part.line() for part in (result.scan, result.digest) if part is not None]
    if result.drafts is not None:
        lines += output.drafts_report(result.drafts)
    return lines


@cli.command()
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


@cli.command()
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

        _heading(f"Today's picks ({len(result.picks)})")
        for number, state in enumerate(result.picks, start=1):
            contact = state.contact
            click.echo(f"  {number}. {contact.name} <{contact.email}>: {state.status}; "
                       f"{state.reason}")

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
