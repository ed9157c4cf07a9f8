"""TOML configuration → frozen dataclasses, checked by the spec table in agent.configspec."""

from __future__ import annotations

import difflib
import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time as dtime
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import platformdirs

from agent.configspec import (
    APP_NAME,
    ARRAY_SECTIONS,
    CONVERTERS,
    DEFAULT_PORTS,
    SPEC,
    BadValue,
    Key,
    Rule,
    describe,
)
from agent.errors import ConfigError

# --------------------------------------------------------------------------- the dataclasses


@dataclass(frozen=True)
class AccountConfig:
    email: str
    aliases: tuple[str, ...]
    name: str
    region: str | None  # for phone numbers without a country code; None: derived

    @property
    def addresses(self) -> tuple[str, ...]:
        return (self.email, *self.aliases)


@dataclass(frozen=True)
class ImapConfig:
    host: str
    port: int
    security: str
    username: str
    password_command: str | None
    ca_file: Path | None
    folders: tuple[str, ...] | None
    exclude_folders: tuple[str, ...]
    timeout: float
    batch_size: int


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    security: str
    username: str | None
    password_command: str | None
    ca_file: Path | None
    timeout: float


@dataclass(frozen=True)
class PolicyConfig:
    cadence_days: int
    lead_days: int
    reply_after_days: int
    two_way: bool
    daily_picks: int
    rule: tuple[Rule, ...]
    reply_window_days: int = 30  # a reply is owed this long after their message


@dataclass(frozen=True)
class DigestConfig:
    time: dtime
    timezone: str
    language: str
    delivery: str
    send_empty: bool
    birthday_days: int
    max_replies: int = 3  # replies owed in their own section
    prefer: str = "mail"  # call | mail: what the digest puts first

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class DraftsConfig:
    enabled: bool
    max_per_day: int
    snooze_days: int


@dataclass(frozen=True)
class DaemonConfig:
    scan_interval: timedelta


@dataclass(frozen=True)
class TemplatesConfig:
    dir: Path | None


@dataclass(frozen=True)
class StorageConfig:
    path: Path


@dataclass(frozen=True)
class AddressbookConfig:
    """One ``[[addressbook]]`` entry: a vdir or .vcf file (``path``) or CardDAV (``url``)."""

    name: str
    path: Path | None
    url: str | None
    username: str | None
    password_command: str | None
    ca_file: Path | None
    timeout: float
    include_without_mail: bool

    @property
    def source(self) -> str:
        """What the store knows this address book by: its url, or its absolute path."""
        return self.url if self.url is not None else str(self.path)


@dataclass(frozen=True)
class Config:
    account: AccountConfig
    imap: ImapConfig
    smtp: SmtpConfig | None
    policy: PolicyConfig
    digest: DigestConfig
    drafts: DraftsConfig
    daemon: DaemonConfig
    templates: TemplatesConfig
    storage: StorageConfig
    addressbook: tuple[AddressbookConfig, ...] = ()
    source: Path | None = None
    warnings: tuple[str, ...] = field(default=(), compare=False)


SECTION_CLASSES: dict[str, type[Any]] = {
    "account": AccountConfig,
    "imap": ImapConfig,
    "smtp": SmtpConfig,
    "policy": PolicyConfig,
    "digest": DigestConfig,
    "drafts": DraftsConfig,
    "daemon": DaemonConfig,
    "templates": TemplatesConfig,
    "storage": StorageConfig,
}


# --------------------------------------------------------------------------- loading


def default_config_path() -> Path:
    env = os.environ.get("FOLLOWUP_CONFIG")
    if env:
        return Path(env).expanduser()
    return platformdirs.user_config_path(APP_NAME) / "config.toml"


def default_database_path() -> Path:
    return platformdirs.user_data_path(APP_NAME) / "followup.db"


def local_timezone_name() -> str:
    """The machine's IANA zone name (TZ, /etc/localtime, /etc/timezone), else UTC."""
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    localtime = Path("/etc/localtime")
    if localtime.is_symlink():
        target = str(localtime.resolve())
        if "zoneinfo/" in target:
            candidates.append(target.split("zoneinfo/", 1)[1])
    timezone_file = Path("/etc/timezone")
    if timezone_file.is_file():
        candidates.append(timezone_file.read_text(errors="replace").strip())
    for name in candidates:
        if not name:
            continue
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            continue
        return name
    return "UTC"


def is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def load_config(path: Path | None = None) -> Config:
    """Read and validate the config file; raise ConfigError listing every problem."""
    path = path or default_config_path()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            [f"no configuration file at {path}; run `followup init` or copy "
             "config.toml.example there (or point FOLLOWUP_CONFIG / --config at yours)"]
        ) from None
    except OSError as exc:
        raise ConfigError([f"cannot read {path}: {exc.strerror}"]) from None
    warnings = []
    try:
        mode = path.stat().st_mode
    except OSError:  # pragma: no cover - it was readable a moment ago
        mode = 0
    if mode & 0o077:
        warnings.append(f"{path} is readable by other users; run: chmod 600 {path}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([f"not UTF-8 text (byte {exc.start}); save it as UTF-8"],
                          str(path)) from None
    config = parse_config_text(text, source=path)
    return Config(**{**config.__dict__, "warnings": (*warnings, *config.warnings)})


def parse_config_text(text: str, source: Path | None = None) -> Config:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"not valid TOML: {exc}"], str(source or "")) from None
    return parse_config(data, source)


def parse_config(data: Mapping[str, Any], source: Path | None = None) -> Config:
    problems: list[str] = []
    warnings: list[str] = []
    known_sections = {k.section for k in SPEC}
    keys_by_section: dict[str, dict[str, Key]] = {}
    for key in SPEC:
        keys_by_section.setdefault(key.section, {})[key.name] = key

    for section, table in data.items():
        if section not in known_sections:
            warnings.append(_unknown(f"section [{section}]", section, known_sections))
            continue
        if section in ARRAY_SECTIONS:
            continue  # checked entry by entry in _read_entries
        if not isinstance(table, dict):
            problems.append(f"[{section}] must be a table (a [{section}] header), "
                            f"not {describe(table)}")
            continue
        for name in table:
            if name not in keys_by_section[section]:
                warnings.append(_unknown(f"[{section}] {name}", name, keys_by_section[section]))

    values: dict[str, dict[str, Any]] = {}
    for section, keys in keys_by_section.items():
        if section in ARRAY_SECTIONS:
            continue
        table = data.get(section)
        table = table if isinstance(table, dict) else {}
        values[section] = _read_table(keys, table, f"[{section}]", problems)
    entries = _read_entries(data, keys_by_section["addressbook"], problems, warnings)

    _derive(values, data, problems)
    addressbooks = tuple(_addressbook(number, entry, problems)
                         for number, entry in enumerate(entries, start=1))
    seen: dict[str, int] = {}
    for number, book in enumerate(addressbooks, start=1):
        if book is not None and seen.setdefault(book.source, number) != number:
            problems.append(f"[[addressbook]] #{number} is the same address book as "
                            f"#{seen[book.source]} ({book.source}); keep one of them")
    if problems:
        # A misspelt key is often the cause of a "missing" one: show both together.
        raise ConfigError(problems + warnings, str(source or ""))

    smtp = SmtpConfig(**values["smtp"]) if values["smtp"].get("host") else None
    return Config(
        account=AccountConfig(**values["account"]),
        imap=ImapConfig(**values["imap"]),
        smtp=smtp,
        policy=PolicyConfig(**values["policy"]),
        digest=DigestConfig(**values["digest"]),
        drafts=DraftsConfig(**values["drafts"]),
        daemon=DaemonConfig(**values["daemon"]),
        templates=TemplatesConfig(**values["templates"]),
        storage=StorageConfig(**values["storage"]),
        addressbook=tuple(a for a in addressbooks if a is not None),
        source=source,
        warnings=tuple(warnings),
    )


def _read_table(keys: Mapping[str, Key], table: Mapping[str, Any], label: str,
                problems: list[str]) -> dict[str, Any]:
    """One table's values through the spec: converted, defaulted, problems named by label."""
    out: dict[str, Any] = {}
    for key in keys.values():
        where = f"{label} {key.name}"
        if key.name not in table:
            if key.required:
                problems.append(f"{where} is missing, expected {key.help.lower()}".rstrip("."))
                out[key.name] = None
                continue
            # Defaults go through the same converter, so they have the same types.
            default = key.default
            out[key.name] = None if default is None else CONVERTERS[key.kind](default, key)
            continue
        try:
            out[key.name] = CONVERTERS[key.kind](table[key.name], key)
        except BadValue as exc:
            problems.append(f"{where} {exc}")
            out[key.name] = None
    return out


def _read_entries(data: Mapping[str, Any], keys: Mapping[str, Key], problems: list[str],
                  warnings: list[str]) -> list[dict[str, Any]]:
    """The ``[[addressbook]]`` entries, each read like a table; #N names them in problems."""
    raw = data.get("addressbook", [])
    if not isinstance(raw, list) or not all(isinstance(e, dict) for e in raw):
        problems.append("addressbook must be written as [[addressbook]] entries (double "
                        "brackets), each with path or url")
        return []
    entries = []
    for number, table in enumerate(raw, start=1):
        label = f"[[addressbook]] #{number}"
        for name in table:
            if name not in keys:
                warnings.append(_unknown(f"{label} {name}", name, keys))
        entries.append(_read_table(keys, table, label, problems))
    return entries


def _addressbook(number: int, entry: dict[str, Any],
                 problems: list[str]) -> AddressbookConfig | None:
    """Check one entry's keys together: path or url, a username and https for url."""
    label = f"[[addressbook]] #{number}"
    path, url = entry["path"], entry["url"]
    if (path is None) == (url is None):
        problems.append(f"{label} needs exactly one of path (a vdir or .vcf file) or url "
                        "(CardDAV)")
        return None
    if url is not None:
        parts = urlsplit(url)
        if entry["username"] is None:
            problems.append(f"{label} url needs username (the CardDAV login name)")
        if parts.scheme.lower() == "http" and not is_loopback(parts.hostname or ""):
            problems.append(f"{label} url {url} is plain http: your password would travel "
                            "unencrypted; use https:// (http is allowed only on loopback)")
    elif path is not None:
        path = path.resolve()
    return AddressbookConfig(
        name=entry["name"] or (url or str(path)), path=path, url=url,
        username=entry["username"], password_command=entry["password_command"],
        ca_file=entry["ca_file"], timeout=entry["timeout"],
        include_without_mail=entry["include_without_mail"])


def _derive(values: dict[str, dict[str, Any]], data: Mapping[str, Any],
            problems: list[str]) -> None:
    """Fill defaults that depend on other keys and check rules that span keys."""
    account, imap, smtp = values["account"], values["imap"], values["smtp"]
    if imap["username"] is None:
        imap["username"] = account["email"]
    for kind, section in (("imap", imap), ("smtp", smtp)):
        security = section["security"] or "ssl"
        if section["port"] is None:
            section["port"] = DEFAULT_PORTS[kind][security]
        host = section["host"]
        if section["security"] == "none" and host and not is_loopback(host):
            problems.append(
                f"[{kind}] security = \"none\" would send your password in plaintext to "
                f"{host}; use \"ssl\" or \"starttls\" (plaintext is allowed only on loopback)"
            )
    if data.get("smtp") and not smtp["host"]:
        problems.append("[smtp] host is missing, expected the SMTP server host name")
    if values["digest"]["delivery"] == "smtp" and not smtp["host"]:
        problems.append("[digest] delivery = \"smtp\" needs an [smtp] section with host; "
                        "or use delivery = \"imap\"")
    if values["digest"]["timezone"] is None:
        values["digest"]["timezone"] = local_timezone_name()
    if values["storage"]["path"] is None:
        values["storage"]["path"] = default_database_path()
    own = [a.lower() for a in [account["email"] or "", *(account["aliases"] or ())]]
    for rule in values["policy"]["rule"] or ():
        if rule.match and rule.match in own:
            problems.append(f"[[policy.rule]] match {rule.match!r} is one of your own addresses")


def _unknown(what: str, name: str, known: Any) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown {what} is ignored{hint}"
