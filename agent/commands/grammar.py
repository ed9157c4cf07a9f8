"""The command language of answers to the digest, and the keys that bind a one-click link.

One command per line, case-insensitive, English or German::

    snooze WHO DURATION     zurückstellen WHO DURATION
    unsnooze WHO
    ignore WHO              ignorieren WHO
    unignore WHO
    called WHO [DATE]       angerufen WHO [DATE]
    met WHO [DATE]          getroffen WHO [DATE]
    done WHO [DATE]         erledigt WHO [DATE]
    cadence WHO DAYS        rhythmus WHO DAYS        (DAYS: a number, or default)
    tag WHO TAG…

WHO is ``#ID`` (a contact id), an address, or — in an answer to a digest — the number of a
row of that digest (elsewhere a bare number is an id, as on the command line).

A one-click link carries its command and a key: ``[followup KEY]``, KEY the first 128 bits
(hex) of HMAC-SHA256 with the installation's secret over the user's address and the
command's canonical form. The key binds that exact command; nothing else runs on it.
"""

from __future__ import annotations

import difflib
import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Literal

Verb = Literal["snooze", "unsnooze", "ignore", "unignore", "called", "met", "done", "cadence",
               "tag"]

VERBS: dict[str, Verb] = {
    "snooze": "snooze", "zurückstellen": "snooze", "zurueckstellen": "snooze",
    "unsnooze": "unsnooze",
    "ignore": "ignore", "ignorieren": "ignore",
    "unignore": "unignore",
    "called": "called", "angerufen": "called",
    "met": "met", "getroffen": "met",
    "done": "done", "erledigt": "done",
    "cadence": "cadence", "rhythmus": "cadence",
    "tag": "tag",
}
# The German word of each verb (for suggestions and confirmations in German).
GERMAN: dict[Verb, str] = {"snooze": "zurückstellen", "ignore": "ignorieren",
                           "called": "angerufen", "met": "getroffen", "done": "erledigt",
                           "cadence": "rhythmus"}
# (least, most) arguments after WHO; None: no limit.
ARGUMENTS: dict[Verb, tuple[int, int | None]] = {
    "snooze": (1, 1), "unsnooze": (0, 0), "ignore": (0, 0), "unignore": (0, 0),
    "called": (0, 1), "met": (0, 1), "done": (0, 1), "cadence": (1, 1), "tag": (1, None),
}
USAGE: dict[Verb, str] = {
    "snooze": "WHO DURATION", "unsnooze": "WHO", "ignore": "WHO", "unignore": "WHO",
    "called": "WHO [DATE]", "met": "WHO [DATE]", "done": "WHO [DATE]",
    "cadence": "WHO DAYS|default", "tag": "WHO TAG…",
}
USAGE_DE: dict[Verb, str] = {
    "snooze": "WER DAUER", "unsnooze": "WER", "ignore": "WER", "unignore": "WER",
    "called": "WER [DATUM]", "met": "WER [DATUM]", "done": "WER [DATUM]",
    "cadence": "WER TAGE|standard", "tag": "WER TAG…",
}

KEY_TAG = re.compile(r"\[followup ([0-9a-f]{32})\]", re.IGNORECASE)
# A link's subject: "<words> (<command>) [followup <key>]".
_SUBJECT_COMMAND = re.compile(r"\(([^()]+)\)\s*\[followup [0-9a-f]{32}\]", re.IGNORECASE)
_BULLET = re.compile(r"^(?:[-*•·]|\d+[.)])\s+")
PREVIEW_KEY = "0" * 32  # the key of a link rendered without a secret (a preview): never valid


@dataclass(frozen=True)
class Command:
    """One command line: the verb (English), WHO as written, the rest of the words."""

    verb: Verb
    who: str
    args: tuple[str, ...]
    line: str

    @property
    def canonical(self) -> str:
        """What a key binds: verb, WHO and arguments, lower case, single spaces."""
        return " ".join([self.verb, self.who.lower(), *(a.lower() for a in self.args)])


@dataclass(frozen=True)
class NotCommand:
    """A line that is no command: an unknown word (with a suggestion), or wrong arguments."""

    line: str
    word: str
    verb: Verb | None  # the verb, when only its arguments were wrong
    suggestion: str | None  # the verb it looks like, for an unknown word


Line = Command | NotCommand


def parse_line(text: str) -> Line | None:
    """One line → a Command, a NotCommand, or None for a blank line."""
    line = " ".join(text.split())
    line = _BULLET.sub("", line)
    if not line:
        return None
    words = line.split(" ")
    word = words[0].lower().rstrip(":")
    verb = VERBS.get(word)
    if verb is None:
        close = difflib.get_close_matches(word, list(VERBS), n=1, cutoff=0.6)
        return NotCommand(line, words[0], None, close[0] if close else None)
    rest = words[1:]
    least, most = ARGUMENTS[verb]
    if not rest or len(rest) - 1 < least or (most is not None and len(rest) - 1 > most):
        return NotCommand(line, words[0], verb, None)
    return Command(verb, rest[0], tuple(rest[1:]), line)


def parse(text: str) -> list[Line]:
    """Every non-blank line of ``text`` up to a link's key (what follows it is not read);
    quoted lines (``> …``) are never commands."""
    found: list[Line] = []
    for raw in text.splitlines():
        if KEY_TAG.search(raw):
            break
        if raw.lstrip().startswith(">"):
            continue
        parsed = parse_line(raw)
        if parsed is not None:
            found.append(parsed)
    return found


def subject_command(subject: str) -> Command | None:
    """The command a link put into its subject, if the subject has that shape."""
    match = _SUBJECT_COMMAND.search(subject)
    parsed = parse_line(match[1]) if match else None
    return parsed if isinstance(parsed, Command) else None


def keys_in(*texts: str) -> frozenset[str]:
    return frozenset(m.lower() for text in texts for m in KEY_TAG.findall(text))


def has_key(text: str) -> bool:
    return KEY_TAG.search(text) is not None


def key(secret: bytes | None, own: str, canonical: str) -> str:
    """The key that binds ``canonical`` for the user ``own`` (PREVIEW_KEY without a secret)."""
    if secret is None:
        return PREVIEW_KEY
    message = f"command {own.strip().lower()} {canonical}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()[:32]


def bound(secret: bytes, own: str, command: Command, keys: frozenset[str]) -> bool:
    """Whether one of ``keys`` binds exactly ``command``."""
    want = key(secret, own, command.canonical)
    return any(hmac.compare_digest(want, k) for k in keys)


# --------------------------------------------------------------------------- one-click links

Action = Literal["snooze", "ignore", "called"]
ACTIONS: tuple[Action, ...] = ("snooze", "ignore", "called")
LINK_SNOOZE = "30d"


def link_command(action: Action, contact_id: int) -> Command:
    """The command of a one-click link for a contact (by id: ``#12``)."""
    args = (LINK_SNOOZE,) if action == "snooze" else ()
    text = " ".join([action, f"#{contact_id}", *args])
    return Command(action, f"#{contact_id}", args, text)


def link_words(action: Action, name: str, language: str) -> str:
    """What a link's message is about, in words, for its subject."""
    if language == "de":
        return {"snooze": f"{name} 30 Tage zurückstellen",
                "ignore": f"Keine Erinnerungen mehr an {name}",
                "called": f"{name} angerufen"}[action]
    return {"snooze": f"Snooze {name} for 30 days", "ignore": f"Stop reminders for {name}",
            "called": f"I called {name}"}[action]


def link_message(action: Action, contact_id: int, name: str, language: str,
                 secret: bytes | None, own: str) -> tuple[str, str]:
    """(subject, body) of the message a link prefills: the command in both, with its key.

    The subject alone is enough (some clients drop a mailto body); the body shows the user
    what will run.
    """
    command = link_command(action, contact_id)
    tag = f"[followup {key(secret, own, command.canonical)}]"
    subject = f"{link_words(action, name, language)} ({command.line}) {tag}"
    return subject, f"{command.line}\r\n\r\n{tag}\r\n"
