"""Applying the lines of one command message: each through the same functions as the CLI.

``apply`` never raises for a bad line: every line gets a ``Result`` saying in the user's
language what it did, or why it did nothing. The caller runs it inside the transaction that
records the message, so a message is applied completely, once, or not at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from agent import decisions, policy, touchpoints
from agent.commands.grammar import GERMAN, USAGE, USAGE_DE, Command, Line, NotCommand
from agent.config import Config
from agent.errors import UsageError
from agent.model import TouchKind
from agent.store import Store
from agent.store.commands import Result

KINDS: dict[str, TouchKind] = {"called": "call", "met": "meeting", "done": "message"}


@dataclass(frozen=True)
class Context:
    """What a message's lines are read against."""

    digest_day: date | None  # the digest it answers: a bare number is a row of that digest
    sent: datetime  # when the user sent it: the day of "called 1" without a date


def apply(config: Config, store: Store, lines: Sequence[Line], context: Context,
          now: datetime) -> list[Result]:
    """Every line's result, in order; commands are applied as they come."""
    german = config.digest.language == "de"
    results = []
    for line in lines:
        if isinstance(line, NotCommand):
            results.append(Result(line.line, False, _not_a_command(line, german)))
            continue
        try:
            results.append(Result(line.line, True, _run(config, store, line, context, now,
                                                         german)))
        except UsageError as exc:
            reason = exc.said_in(config.digest.language)
            text = (f"„{line.line}“ nicht ausgeführt: {reason}" if german
                    else f"'{line.line}' not done: {reason}")
            results.append(Result(line.line, False, text))
    return results


def _not_a_command(line: NotCommand, german: bool) -> str:
    if line.verb is not None:
        word = GERMAN.get(line.verb, line.verb) if german else line.verb
        return (f"„{line.line}“: so nicht – {word} {USAGE_DE[line.verb]}" if german
                else f"'{line.line}': expected {line.verb} {USAGE[line.verb]}")
    text = f"„{line.word}“ ist kein Befehl" if german else f"'{line.word}' is not a command"
    if line.suggestion:
        text += (f" – meintest du {line.suggestion}?" if german
                 else f" — did you mean {line.suggestion}?")
    return text


def _who(store: Store, text: str, context: Context) -> str:
    """WHO as decisions.find takes it: ``#12`` is an id; in an answer to a digest a bare
    number is a row of that digest; anything else (an address, an id) as written."""
    value = text.strip()
    if value.startswith("#") and value[1:].isdigit():
        return value[1:]
    if value.isascii() and value.isdigit() and context.digest_day is not None:
        found = store.commands.row(context.digest_day, int(value))
        if found is None:
            raise UsageError(f"the digest of {context.digest_day.isoformat()} has no number "
                             f"{value} (write #{value} for the contact with that id)",
                             de=f"die followup-Mail vom {context.digest_day.isoformat()} hat keine "
                                f"Nummer {value} (#{value} ist der Kontakt mit dieser Nummer)")
        return str(found)
    return value


def _name(target: decisions.Target) -> str:
    return target.name or target.email


def _run(config: Config, store: Store, command: Command, context: Context, now: datetime,
         german: bool) -> str:
    ref = _who(store, command.who, context)
    verb, args = command.verb, command.args
    if verb == "snooze":
        target, until = decisions.snooze(config, store, ref, args[0], now)
        return (f"{_name(target)} zurückgestellt bis {until.isoformat()}" if german
                else f"Snoozed {_name(target)} until {until.isoformat()}")
    if verb == "unsnooze":
        target, _ = decisions.unsnooze(config, store, ref, now)
        return (f"{_name(target)} nicht mehr zurückgestellt" if german
                else f"{_name(target)} is no longer snoozed")
    if verb == "ignore":
        target, _ = decisions.ignore(config, store, ref)
        return (f"Keine Erinnerungen mehr an {_name(target)}" if german
                else f"Ignored {_name(target)}: no more reminders")
    if verb == "unignore":
        target, _, effective = decisions.unignore(config, store, ref)
        text = (f"{_name(target)} wird nicht mehr ignoriert" if german
                else f"{_name(target)} is no longer ignored")
        if effective.ignored:
            text += (f", aber {effective.source} ignoriert sie weiterhin" if german
                     else f", but {effective.source} still ignores them")
        return text
    if verb in KINDS:
        today = policy.today(now, config.digest.tz)
        sent_day = min(policy.today(context.sent, config.digest.tz), today)
        logged = touchpoints.log(config, store, ref, KINDS[verb],
                                 args[0] if args else sent_day.isoformat(), "", now, "mail")
        day = logged.touch.day.isoformat()
        name = _name(logged.target)
        if german:
            return {"called": f"Anruf mit {name} am {day} eingetragen",
                    "met": f"Treffen mit {name} am {day} eingetragen",
                    "done": f"Kontakt mit {name} am {day} eingetragen"}[verb]
        return {"called": f"Logged a call with {name} on {day}",
                "met": f"Logged a meeting with {name} on {day}",
                "done": f"Noted you were in touch with {name} on {day}"}[verb]
    if verb == "cadence":
        days = "default" if args[0].lower() in ("default", "standard") else args[0]
        target, _, after = decisions.set_cadence(config, store, ref, days)
        if german:
            how = "ignoriert" if after.ignored else f"alle {after.cadence_days} Tage"
            return f"Rhythmus für {_name(target)}: {how} ({after.source})"
        return f"Cadence of {_name(target)}: {decisions.every(after)}"
    target, _, _ = decisions.tag(config, store, ref, args)
    tags = ", ".join(sorted(target.decisions.tags))
    return (f"Tags von {_name(target)}: {tags}" if german
            else f"Tags of {_name(target)}: {tags}")
