"""The one spec table of every config key: types, defaults, checks, and the example file.

agent.config reads a file through it; `followup init` asks its questions with it;
``python -m agent.configspec`` writes config.toml.example from it, so docs cannot drift.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import time as dtime
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

APP_NAME = "followup"
SECURITY_CHOICES = ("ssl", "starttls", "none")
AUTH_CHOICES = ("password", "oauth2")
OAUTH_PROVIDERS = ("google", "microsoft", "custom")
# The OAuth2 provider of well-known mail servers: [imap]/[smtp] oauth_provider by default.
OAUTH_HOSTS = {
    "imap.gmail.com": "google", "smtp.gmail.com": "google",
    "outlook.office365.com": "microsoft", "smtp.office365.com": "microsoft",
    "imap-mail.outlook.com": "microsoft", "smtp-mail.outlook.com": "microsoft",
}
LANGUAGES = ("de", "en")
DEFAULT_PORTS = {
    "imap": {"ssl": 993, "starttls": 143, "none": 143},
    "smtp": {"ssl": 465, "starttls": 587, "none": 25},
}


# --------------------------------------------------------------------------- the spec table


@dataclass(frozen=True)
class Key:
    """One configuration key: its type, default, and the help shown in the example file."""

    section: str
    name: str
    kind: str
    default: Any
    help: str
    example: Any = None  # shown uncommented in config.toml.example when set
    required: bool = False
    choices: tuple[str, ...] = ()
    minimum: int | None = None

    @property
    def label(self) -> str:
        return f"[{self.section}] {self.name}"


SECTION_HELP: dict[str, str] = {
    "account": "Who you are. Mail from these addresses is yours; they never become contacts.",
    "imap": "Your mailbox. followup only reads it, and writes drafts and (by default) the digest.",
    "smtp": "Optional. Only used when [digest] delivery = \"smtp\"; it only ever mails you.",
    "policy": "When someone is due: the line is cadence_days after your last exchange.",
    "digest": "The morning digest sent to you (never to anyone else).",
    "drafts": "Check-in drafts placed in your Drafts folder for today's picks.",
    "commands": "Answers to the digest and its one-click links (see README \"Answering the "
                "digest\").",
    "daemon": "`followup run`: how often it scans between digests.",
    "templates": "Your own copies of the templates (`followup templates export DIR`).",
    "storage": "Where the local database lives.",
    "mailbox": "Optional, any number: more mailboxes of yours (work, private), each with its own\n"
               "server and login ([imap] keys). One ledger spans them; a check-in draft goes to\n"
               "the Drafts of the mailbox that last exchanged mail with that person, From its\n"
               "email. [account] and [imap] stay your primary mailbox (the digest goes there).",
    "addressbook": "Optional, any number: address books to read (read-only) at every scan.\n"
                   "Give path (a vdir of .vcf files, or one .vcf export) or url (CardDAV).",
}

# Sections written as arrays of tables ([[addressbook]]): each entry has the section's keys.
ARRAY_SECTIONS = ("mailbox", "addressbook")

LOGIN_HELP = (
    "Password: never in this file. Looked up in the keyring (service \"followup\", this\n"
    "username; `followup password set`), else by running password_command, else from\n"
    "the environment variable {env}."
)
OAUTH_HELP = (
    "With auth = \"oauth2\" there is no password: sign in once with `followup login`; the\n"
    "refresh token goes to the keyring (service \"followup\", \"oauth2:\" + username)."
)


def login_keys(section: str) -> tuple[Key, ...]:
    """How followup signs in to a server: the keys [imap], [smtp] and [[mailbox]] share."""
    return (
        Key(section, "auth", "choice", "password",
            "password | oauth2 (SASL XOAUTH2/OAUTHBEARER with a token from `followup login`; "
            "Microsoft 365 needs it, Gmail allows it).", choices=AUTH_CHOICES),
        Key(section, "password_command", "command", None,
            "Command printing the password on its first line; run without a shell."
            if section == "imap" else "As for [imap]."),
        Key(section, "token_command", "command", None,
            "oauth2: command printing the refresh token on its first line (run without a "
            "shell). Default: the keyring entry `followup login` made."),
        Key(section, "oauth_provider", "choice", None,
            "oauth2: google | microsoft | custom. Default: from host (imap.gmail.com, "
            "smtp.gmail.com: google; outlook.office365.com, smtp.office365.com: microsoft).",
            choices=OAUTH_PROVIDERS),
        Key(section, "client_id", "str", None,
            "oauth2: the client ID of the app you registered (README: \"OAuth2\").",
            None),
        Key(section, "client_secret", "str", None,
            "oauth2: its client secret, where the provider issues one (Google desktop "
            "apps; not a password: Google documents it as not confidential)."),
        Key(section, "tenant", "str", "common",
            "microsoft: your directory (tenant) ID or domain; common, organizations or "
            "consumers."),
        Key(section, "authorization_url", "url", None,
            "custom (or to override): the authorization endpoint (browser sign-in)."),
        Key(section, "token_url", "url", None, "custom: the token endpoint."),
        Key(section, "device_authorization_url", "url", None,
            "custom: the device authorization endpoint (RFC 8628; sign-in on another device)."),
        Key(section, "scope", "str", None,
            "oauth2: scopes, space separated. Default: the provider's mail scopes "
            "(Google https://mail.google.com/; Microsoft IMAP.AccessAsUser.All, SMTP.Send, "
            "offline_access)."),
    )


def imap_keys(section: str) -> tuple[Key, ...]:
    """The keys of an IMAP mailbox: [imap], and each [[mailbox]] entry."""
    default_user = "[account] email" if section == "imap" else "this entry's email"
    return (
        Key(section, "host", "host", None, "IMAP server host name.",
            "imap.example.org" if section == "imap" else None, required=True),
        Key(section, "port", "port", None, "IMAP port. Default: 993 for ssl, 143 otherwise."),
        Key(section, "security", "choice", "ssl",
            "ssl | starttls | none. none sends your password in plaintext and is refused "
            "unless host is loopback.", "ssl" if section == "imap" else None,
            choices=SECURITY_CHOICES),
        Key(section, "username", "str", None, f"Login name. Default: {default_user}.",
            "alice@example.org" if section == "imap" else None),
        *login_keys(section),
        Key(section, "ca_file", "path", None,
            "PEM file of a private CA to trust. Verification is never switched off."),
        Key(section, "folders", "strs", None,
            "Scan only these folders. Default: every folder except Junk, Trash and Drafts "
            "(on Gmail only All Mail)."),
        Key(section, "exclude_folders", "strs", [], "Never scan these folders."),
        Key(section, "timeout", "seconds", 60.0,
            "Seconds to wait for the server before giving up on a connection.", minimum=1),
        Key(section, "batch_size", "int", 500, "UIDs per FETCH command while scanning.",
            minimum=10),
    )

SPEC: tuple[Key, ...] = (
    Key("account", "email", "email", None, "Your own address.", "alice@example.org",
        required=True),
    Key("account", "aliases", "emails", [], "More of your own addresses (old jobs, private).",
        ["alice@private.example"]),
    Key("account", "name", "str", "", "Your name, as it appears in From of drafts.",
        "Alice Example"),
    Key("account", "region", "region", None,
        "Two-letter country code for phone numbers written without +country code "
        "(\"DE\"). Default: the country of [digest] timezone, else of [digest] language."),
    *imap_keys("imap"),
    Key("smtp", "host", "host", None, "SMTP server host name.", None),
    Key("smtp", "port", "port", None, "Default: 465 for ssl, 587 for starttls, 25 for none."),
    Key("smtp", "security", "choice", "ssl", "ssl | starttls | none (none: loopback only).",
        choices=SECURITY_CHOICES),
    Key("smtp", "username", "str", None,
        "Login name. Without it mail is sent without AUTH (a local relay)."),
    *login_keys("smtp"),
    Key("smtp", "ca_file", "path", None, "As for [imap]."),
    Key("smtp", "timeout", "seconds", 60.0, "Seconds to wait for the server.", minimum=1),
    Key("policy", "cadence_days", "int", 90,
        "Days after your last exchange at which a contact is due (the line).", minimum=1),
    Key("policy", "lead_days", "int", 14, "Days before the line at which a contact is 'due soon'.",
        minimum=0),
    Key("policy", "reply_after_days", "int", 7,
        "They wrote last and you have not answered for this many days: 'waiting on you'.",
        minimum=1),
    Key("policy", "reply_window_days", "int", 30,
        "A reply is owed only this many days after their message; after that their clock "
        "runs like anyone's (a check-in, not an apology).", minimum=1),
    Key("policy", "two_way", "bool", True,
        "true: only people you wrote to AND who wrote to you become contacts."),
    Key("policy", "daily_picks", "int", 3,
        "How many people to get in touch with each day (overdue and due; replies owed "
        "have their own cap, [digest] max_replies).", minimum=1),
    Key("policy", "rule", "rules", [],
        "Per address, domain or tag: [[policy.rule]] match = \"*@bigcorp.example\" "
        "cadence_days = 60 (or ignore = true, language = \"de\")."),
    Key("digest", "time", "time", "07:30", "Local time (HH:MM) of the daily digest.", "07:30"),
    Key("digest", "timezone", "timezone", None,
        "IANA zone of your calendar. Default: this machine's zone.", "Europe/Berlin"),
    Key("digest", "language", "choice", "en", "de | en", "de", choices=LANGUAGES),
    Key("digest", "delivery", "choice", "imap",
        "imap: append to your INBOX (no SMTP needed) | smtp: send via [smtp].", "imap",
        choices=("imap", "smtp")),
    Key("digest", "send_empty", "bool", False, "Send a digest even when nobody is due."),
    Key("digest", "birthday_days", "int", 7,
        "\"Birthdays this week\": birthdays from today through this many days ahead, "
        "less one (0: no such section). A birthday today or tomorrow makes a pick.",
        minimum=0),
    Key("digest", "max_replies", "int", 3,
        "At most this many replies owed in their own section of the digest (each with a "
        "reply draft); the rest are listed below.", minimum=0),
    Key("digest", "prefer", "choice", "mail",
        "call: picks with a known phone number come first and the digest says \"call\" | "
        "mail: write first.", choices=("call", "mail")),
    Key("drafts", "enabled", "bool", True, "Create check-in drafts for today's picks.", True),
    Key("drafts", "max_per_day", "int", 3,
        "At most this many new check-in drafts per day (reply drafts: [digest] max_replies).",
        minimum=0),
    Key("drafts", "snooze_days", "int", 30,
        "A draft you deleted without sending snoozes that contact this long.", minimum=1),
    Key("commands", "confirm", "choice", "always",
        "always: a short confirmation into your INBOX for every command message | errors: "
        "only when a line could not be done.", choices=("always", "errors")),
    Key("daemon", "scan_interval", "duration", "30m",
        "How often `followup run` scans between digests (e.g. 30m, 2h).", "30m"),
    Key("templates", "dir", "path", None,
        "Directory with your own templates; missing files fall back to the defaults. "
        "Default: the templates folder next to this config file, if it exists."),
    Key("storage", "path", "path", None,
        "The database. Default: the platform's user data dir, e.g. "
        "~/.local/share/followup/followup.db."),
    Key("mailbox", "name", "str", None,
        "What followup calls this mailbox in messages (and keys its sync state by). "
        "Default: its email.", "work"),
    Key("mailbox", "email", "email", None, "Your address in this mailbox (From of its drafts).",
        "alice@work.example", required=True),
    Key("mailbox", "aliases", "emails", [], "More of your own addresses in this mailbox."),
    *imap_keys("mailbox"),
    Key("addressbook", "name", "str", None,
        "What followup calls this address book in messages. Default: its path or url."),
    Key("addressbook", "path", "path", None,
        "A vdir (khard, vdirsyncer: one .vcf per card) or a single .vcf export.",
        "~/.local/share/contacts/default"),
    Key("addressbook", "url", "url", None,
        "CardDAV: the address book's URL, or just the server's (found via .well-known)."),
    Key("addressbook", "username", "str", None, "CardDAV login name (needed with url)."),
    Key("addressbook", "password_command", "command", None, "As for [imap]."),
    Key("addressbook", "ca_file", "path", None, "As for [imap]."),
    Key("addressbook", "timeout", "seconds", 30.0, "Seconds to wait for the CardDAV server.",
        minimum=1),
    Key("addressbook", "include_without_mail", "bool", False,
        "true: everyone on these cards is a contact, also without mail (listed as 'no "
        "contact on record' until you are in touch)."),
)

RULE_KEYS: dict[str, str] = {
    "match": "an address or *@domain pattern",
    "tag": "a tag set with `followup tag`",
    "cadence_days": "days (integer >= 1)",
    "ignore": "true or false",
    "language": "de or en",
}


@dataclass(frozen=True)
class Rule:
    """One [[policy.rule]]: which addresses it matches and what it changes."""

    match: str | None
    tag: str | None
    cadence_days: int | None
    ignore: bool
    language: str | None


# --------------------------------------------------------------------------- converters


class BadValue(ValueError):
    """A value of the wrong shape; the message says what is expected."""


_EMAIL_RE = re.compile(r"^[^@\s<>\"]+@[^@\s<>\"]+$")
_HOST_RE = re.compile(r"^[A-Za-z0-9._:\-\[\]]+$")
_DURATION_RE = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "": 60}


def describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _str(value: Any, key: Key) -> str:
    if not isinstance(value, str):
        raise BadValue(f"is {describe(value)}, expected a string")
    return value.strip()


def _email(value: Any, key: Key) -> str:
    text = _str(value, key)
    if not _EMAIL_RE.match(text):
        raise BadValue(f"{describe(value)} is not an email address, expected e.g. "
                       "alice@example.org")
    return text


def _emails(value: Any, key: Key) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise BadValue(f"is {describe(value)}, expected a list of addresses like "
                       "[\"a@example.org\"]")
    return tuple(_email(v, key) for v in value)


def _strs(value: Any, key: Key) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadValue(f"is {describe(value)}, expected a list of strings like [\"INBOX\"]")
    return tuple(value)


def _int(value: Any, key: Key) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadValue(f"is {describe(value)}, expected a whole number")
    if key.minimum is not None and value < key.minimum:
        raise BadValue(f"is {value}, expected at least {key.minimum}")
    return value


def _port(value: Any, key: Key) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise BadValue(f"is {describe(value)}, expected a port number between 1 and 65535")
    return value


def _seconds(value: Any, key: Key) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadValue(f"is {describe(value)}, expected a number of seconds")
    if key.minimum is not None and value < key.minimum:
        raise BadValue(f"is {value}, expected at least {key.minimum}")
    return float(value)


def _bool(value: Any, key: Key) -> bool:
    if not isinstance(value, bool):
        raise BadValue(f"is {describe(value)}, expected true or false (without quotes)")
    return value


def _choice(value: Any, key: Key) -> str:
    if value not in key.choices:
        raise BadValue(f"is {describe(value)}, expected one of: {', '.join(key.choices)}")
    return str(value)


def _host(value: Any, key: Key) -> str:
    text = _str(value, key)
    if not text or not _HOST_RE.match(text):
        raise BadValue(f"is {describe(value)}, expected a host name like imap.example.org")
    return text


def _command(value: Any, key: Key) -> str:
    text = _str(value, key)
    if not text:
        raise BadValue("is empty, expected a command such as \"pass show mail/imap\"")
    return text


def _path(value: Any, key: Key) -> Path:
    text = _str(value, key)
    if not text:
        raise BadValue("is empty, expected a file path")
    return Path(os.path.expandvars(text)).expanduser()


def _time(value: Any, key: Key) -> dtime:
    text = _str(value, key)
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", text)
    if not match or int(match[1]) > 23 or int(match[2]) > 59:
        raise BadValue(f"is {describe(value)}, expected a time of day like \"07:30\"")
    return dtime(int(match[1]), int(match[2]))


def _region(value: Any, key: Key) -> str:
    text = _str(value, key).upper()
    if not re.fullmatch(r"[A-Z]{2}", text):
        raise BadValue(f"is {describe(value)}, expected a two-letter country code like \"DE\"")
    return text


def _url(value: Any, key: Key) -> str:
    text = _str(value, key)
    if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", text, re.IGNORECASE):
        raise BadValue(f"is {describe(value)}, expected an https:// URL")
    return text


def _timezone(value: Any, key: Key) -> str:
    text = _str(value, key)
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadValue(
            f"is {describe(value)}, expected an IANA time zone like \"Europe/Berlin\""
        ) from None
    return text


def parse_duration(value: Any) -> timedelta:
    """``30m``, ``2h``, ``90s``, ``1d`` or a bare number of minutes → timedelta."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    match = _DURATION_RE.match(value) if isinstance(value, str) else None
    if not match or int(match[1]) == 0:
        raise BadValue(f"is {describe(value)}, expected a duration like \"30m\", \"2h\" or \"1d\"")
    return timedelta(seconds=int(match[1]) * _DURATION_UNITS[match[2]])


def _duration(value: Any, key: Key) -> timedelta:
    return parse_duration(value)


def _rules(value: Any, key: Key) -> tuple[Rule, ...]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise BadValue("expected [[policy.rule]] tables")
    rules = []
    problems = []
    for number, table in enumerate(value, start=1):
        where = f"[[policy.rule]] #{number}"
        unknown = sorted(set(table) - set(RULE_KEYS))
        for name in unknown:
            problems.append(f"{where}: unknown key {name!r}, expected one of: "
                            f"{', '.join(RULE_KEYS)}")
        match, tag = table.get("match"), table.get("tag")
        if (match is None) == (tag is None):
            problems.append(f"{where}: needs exactly one of match (an address or *@domain) "
                            "or tag")
        if match is not None and (
            not isinstance(match, str)
            or not (_EMAIL_RE.match(match) or re.fullmatch(r"\*@[^@\s]+\.[^@\s]+", match))
        ):
            problems.append(f"{where}: match {describe(match)} is not an address or "
                            "*@domain pattern")
        if tag is not None and (not isinstance(tag, str) or not tag.strip()):
            problems.append(f"{where}: tag {describe(tag)} is not a tag name")
        cadence = table.get("cadence_days")
        if cadence is not None and (isinstance(cadence, bool) or not isinstance(cadence, int)
                                    or cadence < 1):
            problems.append(f"{where}: cadence_days {describe(cadence)}, expected days >= 1")
        ignore = table.get("ignore", False)
        if not isinstance(ignore, bool):
            problems.append(f"{where}: ignore {describe(ignore)}, expected true or false")
        language = table.get("language")
        if language is not None and language not in LANGUAGES:
            problems.append(f"{where}: language {describe(language)}, expected de or en")
        if cadence is None and ignore is False and language is None:
            problems.append(f"{where}: sets nothing; give cadence_days, ignore or language")
        rules.append(Rule(
            match=match.lower() if isinstance(match, str) else None,
            tag=tag.strip().lower() if isinstance(tag, str) else None,
            cadence_days=cadence if isinstance(cadence, int) else None,
            ignore=ignore is True,
            language=language if isinstance(language, str) else None,
        ))
    if problems:
        raise BadValue("; ".join(problems))
    return tuple(rules)


CONVERTERS: dict[str, Callable[[Any, Key], Any]] = {
    "str": _str, "email": _email, "emails": _emails, "strs": _strs, "int": _int,
    "port": _port, "seconds": _seconds, "bool": _bool, "choice": _choice, "host": _host,
    "command": _command, "path": _path, "time": _time, "timezone": _timezone,
    "duration": _duration, "rules": _rules, "region": _region, "url": _url,
}


# --------------------------------------------------------------------------- the example file


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_example() -> str:
    """The text of config.toml.example, generated from SPEC so it can never drift."""
    lines = [
        "# followup configuration. Copy to ~/.config/followup/config.toml (or run",
        "# `followup init`). Every key is listed; commented keys show their default.",
        "# Generated from the SPEC table: python -m agent.configspec > config.toml.example",
    ]
    section = None
    for key in SPEC:
        if key.section != section:
            section = key.section
            # [smtp] is optional: an empty [smtp] table would ask for a host.
            header = f"# [{section}]" if section == "smtp" else f"[{section}]"
            if section in ARRAY_SECTIONS:
                header = f"# [[{section}]]"
            lines += ["", header, *(f"# {line}" for line in SECTION_HELP[section].splitlines())]
            if section in ("imap", "smtp", "mailbox", "addressbook"):
                kind = {"addressbook": "carddav", "mailbox": "imap"}.get(section, section)
                env = f"FOLLOWUP_{kind.upper()}_PASSWORD"
                lines += [f"# {line}" for line in LOGIN_HELP.format(env=env).splitlines()]
                if section != "addressbook":
                    lines += [f"# {line}" for line in OAUTH_HELP.splitlines()]
        if key.kind == "rules":
            lines += [f"# {key.name}: {key.help}",
                      "# [[policy.rule]]", '# match = "*@bigcorp.example"', "# cadence_days = 60",
                      "# [[policy.rule]]", '# tag = "family"', "# cadence_days = 30",
                      "# [[policy.rule]]", '# match = "*@recruiter.example"', "# ignore = true"]
            continue
        lines.append(f"# {key.name}: {key.help}")
        if key.example is not None and key.section in ARRAY_SECTIONS:
            lines.append(f"# {key.name} = {_toml_value(key.example)}")
        elif key.example is not None:
            lines.append(f"{key.name} = {_toml_value(key.example)}")
        elif key.default is not None:
            lines.append(f"# {key.name} = {_toml_value(key.default)}")
        else:
            lines.append(f"# {key.name} =")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(render_example(), end="")  # noqa: T201
