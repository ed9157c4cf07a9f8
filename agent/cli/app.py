"""What every command gets: the config path, the clock (--now) and verbosity."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import click

from agent.config import Config, load_config
from agent.errors import UsageError

log = logging.getLogger("agent")

# Years a --now may name: every date followup computes (a line, a ten-year snooze) must
# still fit in the calendar.
NOW_YEARS = (1990, 9000)


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
        if not NOW_YEARS[0] <= value.year <= NOW_YEARS[1]:
            raise UsageError(f"--now {self.now_text!r} is outside the years followup works "
                             f"with ({NOW_YEARS[0]} to {NOW_YEARS[1]})")
        if value.tzinfo is None:
            value = value.replace(tzinfo=self.config.digest.tz)
        return value


pass_app = click.make_pass_decorator(App)
