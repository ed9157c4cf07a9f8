"""Jinja2 rendering: the user's template dir over the packaged defaults, strict and escaped.

Templates run in Jinja2's immutable sandbox: a template can use the values it is given and
the filters below, but cannot reach Python internals (``cycler.__init__.__globals__``), change
the values, or build huge strings (repetition is capped); it still cannot touch a password,
which followup never hands to a template.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
import markupsafe
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from agent.config import Config
from agent.errors import ConfigError, TemplateError, UsageError

log = logging.getLogger(__name__)

MONTHS = {
    "de": ("Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September",
           "Oktober", "November", "Dezember"),
    "en": ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"),
}
WEEKDAYS = {
    "de": ("Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}


def default_templates_dir() -> Path:
    """The packaged defaults: agent/templates in a wheel, ../templates in a source checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "templates", here.parent / "templates"):
        if candidate.is_dir():
            return candidate
    raise TemplateError("the default templates are missing from this installation; "
                        "reinstall followup")


def user_templates_dir(config: Config) -> Path | None:
    """[templates] dir, else a `templates` folder next to the config file, if it exists.

    A [templates] dir that is not a folder is an error: a typo must not quietly bring back
    the defaults.
    """
    if config.templates.dir is not None:
        if not config.templates.dir.is_dir():
            raise ConfigError([f"[templates] dir {config.templates.dir} is not a folder; "
                               "create it (`followup templates export DIR`) or fix the path"])
        return config.templates.dir
    if config.source is not None:
        candidate = config.source.parent / "templates"
        if candidate.is_dir():
            return candidate
    return None


# HTML templates (digest.html.j2) are escaped; text templates and drafts are not.
_HTML = ("html.j2", "html", "htm")
# Longest string or list a template may make by repetition ("x" * n), and largest power.
MAX_REPEAT = 100_000


class Sandbox(ImmutableSandboxedEnvironment):
    """The sandbox, with ``*`` and ``**`` checked so that no template can exhaust memory.

    Intercepting them also stops Jinja2 from folding such constants while compiling (a
    ``{{ "x" * 3000000000 }}`` took 91 s and 8.8 GB before this).
    """

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any,
                   right: Any) -> Any:
        if operator == "**" and isinstance(right, int) and abs(right) > 64:
            raise SecurityError(f"a power of {right} is more than a template may compute")
        if operator == "*":
            for seq, count in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(count, int) and (
                        len(seq) * count > MAX_REPEAT):
                    raise SecurityError(f"repeating something {count} times makes more than "
                                        f"{MAX_REPEAT} characters or items")
        return super().call_binop(context, operator, left, right)


def sandbox(loader: jinja2.BaseLoader) -> Sandbox:
    """The one way followup makes a Jinja2 environment: sandboxed, strict, escaping HTML."""
    return Sandbox(
        loader=loader,
        undefined=jinja2.StrictUndefined,
        autoescape=jinja2.select_autoescape(_HTML, default_for_string=True, default=False),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def writable_by_others(directory: Path) -> list[Path]:
    """The folder and templates in it that others may change (and so make you run)."""
    found = []
    for path in (directory, *sorted(directory.glob("*.j2"))):
        try:
            if path.stat().st_mode & 0o022:
                found.append(path)
        except OSError:
            continue
    return found


# --------------------------------------------------------------------------- filters


def days_ago(days: int, language: str) -> str:
    """'vor 93 Tagen' / '93 days ago', with today and yesterday in words."""
    if language == "de":
        if days == 0:
            return "heute"
        if days == 1:
            return "gestern"
        return f"vor {days} Tagen"
    if days == 0:
        return "today"
    if days == 1:
        return "yesterday"
    return f"{days} days ago"


def long_date(value: date | datetime, language: str) -> str:
    """'26. November 2026' / '26 November 2026'."""
    month = MONTHS[language][value.month - 1]
    if language == "de":
        return f"{value.day}. {month} {value.year}"
    return f"{value.day} {month} {value.year}"


def short_date(value: date | datetime, language: str) -> str:
    """'26.11.2026' / '2026-11-26'."""
    return f"{value:%d.%m.%Y}" if language == "de" else f"{value:%Y-%m-%d}"


def weekday(value: date | datetime, language: str) -> str:
    return WEEKDAYS[language][value.weekday()]


def breakable(address: str) -> markupsafe.Markup:
    """An address for HTML that a narrow screen may wrap only after "@" or before a dot:
    each part is kept whole (no break at its hyphens either), with ``<wbr>`` between."""
    local, at, domain = str(address).partition("@")
    parts = [local + at]
    if at:
        labels = domain.split(".")
        parts += [labels[0], *(f".{label}" for label in labels[1:])]
    whole = markupsafe.Markup('<span style="white-space:nowrap">{}</span>')
    return markupsafe.Markup("<wbr>").join(whole.format(part) for part in parts if part)


# --------------------------------------------------------------------------- the renderer


@dataclass(frozen=True)
class Source:
    """Where a template came from, for error messages."""

    name: str
    path: Path | None
    is_user: bool


class Renderer:
    """Renders named templates for one language and time zone.

    A user template that fails (syntax or runtime error) is reported with its file and line
    and the packaged default is used instead: a broken tweak must not stop the digest.
    """

    def __init__(self, config: Config, language: str | None = None,
                 tz: ZoneInfo | None = None) -> None:
        self.language = language or config.digest.language
        self.tz = tz or config.digest.tz
        self.user_dir = user_templates_dir(config)
        self.default_dir = default_templates_dir()
        self.problems: list[str] = []
        if self.user_dir is not None:
            for path in writable_by_others(self.user_dir):
                log.warning("%s can be changed by other users of this machine; run: chmod "
                            "go-w %s", path, path)
        loaders: list[jinja2.BaseLoader] = []
        # Absolute search paths: error messages then name absolute files, and a failing
        # frame is found by its file name (see describe_template_error).
        if self.user_dir is not None:
            loaders.append(jinja2.FileSystemLoader(str(self.user_dir.resolve())))
        loaders.append(jinja2.FileSystemLoader(str(self.default_dir)))
        self.env = self._environment(jinja2.ChoiceLoader(loaders))
        self.default_env = self._environment(jinja2.FileSystemLoader(str(self.default_dir)))

    def _environment(self, loader: jinja2.BaseLoader) -> jinja2.Environment:
        env = sandbox(loader)
        lang = self.language
        filters: dict[str, Callable[..., Any]] = {
            "days_ago": lambda days: days_ago(int(days), lang),
            "long_date": lambda value: long_date(self.local(value), lang),
            "short_date": lambda value: short_date(self.local(value), lang),
            "weekday": lambda value: weekday(self.local(value), lang),
            "local": self.local,
            "breakable": breakable,
        }
        env.filters.update(filters)
        env.globals["lang"] = lang
        return env

    def local(self, value: date | datetime) -> date | datetime:
        if isinstance(value, datetime):
            return value.astimezone(self.tz)
        return value

    def source_of(self, name: str) -> Source:
        if self.user_dir is not None and (self.user_dir / name).is_file():
            return Source(name, self.user_dir / name, True)
        path = self.default_dir / name
        return Source(name, path if path.is_file() else None, False)

    def render(self, name: str, /, **context: Any) -> str:
        """Render ``name``; a failing user template falls back to the packaged default.

        "Failing" covers the template itself and any user partial it includes: a user's
        ``_digest_row.html.j2`` that breaks makes the packaged ``digest.html.j2`` fail too, so
        the whole render is retried with the packaged defaults only.
        """
        try:
            return self.env.get_template(name).render(lang=self.language, **context)
        except jinja2.TemplateNotFound as exc:
            if exc.name == name or self.user_dir is None:
                raise TemplateError(f"template {name} not found in "
                                    f"{self.user_dir or ''} or the packaged defaults") from None
            failure: BaseException = exc  # a user template includes a file nobody has
        except Exception as exc:  # noqa: BLE001 - a user's template can raise anything at all
            failure = exc
        problem = describe_template_error(failure, self._search_path(), name)
        if self.user_dir is None or not (self.default_dir / name).is_file():
            raise TemplateError(problem) from None  # nothing to fall back to
        try:
            text = self.default_env.get_template(name).render(lang=self.language, **context)
        except Exception as exc:  # noqa: BLE001 - reported as one TemplateError
            raise TemplateError(describe_template_error(exc, [self.default_dir], name)) from None
        self.problems.append(problem)
        log.error("%s; using the default template instead", problem)
        return text

    def _search_path(self) -> list[Path]:
        return [d for d in (self.user_dir, self.default_dir) if d is not None]


def describe_template_error(exc: BaseException, search_path: Sequence[Path],
                            name: str | None = None) -> str:
    """'template /path/file.j2, line 7: message' for the template file that failed.

    The file is the one the error happened in (an included partial, not the template that was
    asked for), found from a syntax error's own name or the traceback's template frames.
    """
    dirs = [str(d.resolve()) for d in search_path]
    where: str | None = None
    line = getattr(exc, "lineno", None) if isinstance(exc, jinja2.TemplateSyntaxError) else None
    if isinstance(exc, jinja2.TemplateSyntaxError):
        where = exc.filename or exc.name
    if where is None:
        # Jinja rewrites tracebacks so that template frames carry the template's own file
        # name and line; the innermost one is where it went wrong.
        tb = exc.__traceback__
        while tb is not None:
            filename = tb.tb_frame.f_code.co_filename
            if any(filename.startswith(d + os.sep) for d in dirs):
                where, line = filename, tb.tb_lineno
            tb = tb.tb_next
    if where is None:
        where = name or "?"
    at = f"{where}, line {line}" if line else where
    if isinstance(exc, jinja2.TemplateNotFound):
        message = f"includes {exc.name}, which does not exist"
    elif isinstance(exc, UnicodeDecodeError):
        message = f"not UTF-8 text (byte {exc.start}); save it as UTF-8"
    elif isinstance(exc, SecurityError):
        message = f"not allowed in a template: {exc}"
    else:
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        if not isinstance(exc, jinja2.TemplateError):
            message = f"{type(exc).__name__}: {message}"
    return f"template {at}: {message}"


def export_templates(target: Path, overwrite: bool = False) -> tuple[list[Path], list[Path]]:
    """Copy the packaged templates into ``target``: (copied, kept because they exist)."""
    source = default_templates_dir()
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create {target}: {exc.strerror or exc}") from None
    copied: list[Path] = []
    kept: list[Path] = []
    for path in sorted(source.glob("*.j2")):
        destination = target / path.name
        if destination.exists() and not overwrite:
            kept.append(destination)  # never clobber the user's own tweaks
            continue
        try:
            shutil.copyfile(path, destination)
        except OSError as exc:
            raise UsageError(f"cannot write {destination}: {exc.strerror or exc}") from None
        copied.append(destination)
    return copied, kept


def check_user_templates(config: Config) -> Iterator[str]:
    """Problems in the user's templates (syntax only), for `followup doctor`."""
    user_dir = user_templates_dir(config)
    if user_dir is None or not user_dir.is_dir():
        return
    env = sandbox(jinja2.FileSystemLoader(str(user_dir)))
    for path in writable_by_others(user_dir):
        yield f"{path} can be changed by other users of this machine (run: chmod go-w {path})"
    for path in sorted(user_dir.glob("*.j2")):
        try:
            env.get_template(path.name)
        except jinja2.TemplateSyntaxError as exc:
            yield f"template {path}, line {exc.lineno}: {exc.message}"
        except UnicodeDecodeError as exc:
            yield f"template {path}: not UTF-8 text (byte {exc.start}); save it as UTF-8"
        except SecurityError as exc:
            yield f"template {path}: not allowed in a template: {exc}"
