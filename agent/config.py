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
    OAUTH_HOSTS,
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
    """[account]: the user's address, aliases, name and phone region."""

    email: str
    aliases: tuple[str, ...]
    name: str
    region: str | None  # for phone numbers without a country code; None: derived

    @property
    def addresses(self) -> tuple[str, ...]:
        return (self.email, *self.aliases)


@dataclass(frozen=True)
class ServerLogin:
    """How followup signs in to one server: the keys [imap], [smtp] and [[mailbox]] share."""

    host: str
    auth: str  # password | oauth2
    password_command: str | None
    token_command: str | None  # oauth2: prints the refresh token
    oauth_provider: str | None  # google | microsoft | custom (set whenever auth = oauth2)
    client_id: str | None
    client_secret: str | None
    tenant: str
    authorization_url: str | None
    token_url: str | None
    device_authorization_url: str | None
    scope: str | None

    @property
    def oauth2(self) -> bool:
        return self.auth == "oauth2"


@dataclass(frozen=True)
class ImapConfig(ServerLogin):
    """[imap]: where and how the primary mailbox is read."""

    port: int
    security: str
    username: str
    ca_file: Path | None
    folders: tuple[str, ...] | None
    exclude_folders: tuple[str, ...]
    timeout: float
    batch_size: int


@dataclass(frozen=True)
class SmtpConfig(ServerLogin):
    """[smtp]: where the digest is sent from (absent: it is filed by IMAP)."""

    port: int
    security: str
    username: str | None
    ca_file: Path | None
    timeout: float


@dataclass(frozen=True)
class MailboxConfig:
    """One mailbox of the user: [account] with [imap] (the primary), or a [[mailbox]] entry.

    ``key`` names it in the database: "" for the primary (what a database from before
    several mailboxes holds), the entry's name for the others.
    """

    key: str
    name: str
    email: str
    aliases: tuple[str, ...]
    imap: ImapConfig

    @property
    def primary(self) -> bool:
        return self.key == ""

    @property
    def addresses(self) -> tuple[str, ...]:
        return (self.email, *self.aliases)


@dataclass(frozen=True)
class PolicyConfig:
    """[policy]: when a contact is due, and the [[policy.rule]] entries."""

    cadence_days: int
    lead_days: int
    reply_after_days: int
    two_way: bool
    daily_picks: int
    rule: tuple[Rule, ...]
    reply_window_days: int = 30  # a reply is owed this long after their message


@dataclass(frozen=True)
class DigestConfig:
    """[digest]: when, in which language and how the morning digest arrives."""

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
    """[drafts]: whether and how many check-in drafts are written a day."""

    enabled: bool
    max_per_day: int
    snooze_days: int


@dataclass(frozen=True)
class CommandsConfig:
    """[commands]: when a mail command is answered with a confirmation."""

    confirm: str  # always | errors


@dataclass(frozen=True)
class DaemonConfig:
    """[daemon]: how often `followup daemon` scans between digests."""

    scan_interval: timedelta


@dataclass(frozen=True)
class TemplatesConfig:
    """[templates]: the user's own template directory, if any."""

    dir: Path | None


@dataclass(frozen=True)
class StorageConfig:
    """[storage]: where the database lives."""

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
    """The whole config file, read and checked (agent.configspec names every key)."""

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
    mailbox: tuple[MailboxConfig, ...] = ()  # the [[mailbox]] entries, beyond the primary
    commands: CommandsConfig = CommandsConfig(confirm="always")
    source: Path | None = None
    warnings: tuple[str, ...] = field(default=(), compare=False)

    @property
    def primary(self) -> MailboxConfig:
        """[account] and [imap]: where the digest goes."""
        return MailboxConfig(key="", name=self.account.email, email=self.account.email,
                             aliases=self.account.aliases, imap=self.imap)

    @property
    def mailboxes(self) -> tuple[MailboxConfig, ...]:
        """Every mailbox, the primary first."""
        return (self.primary, *self.mailbox)

    @property
    def own_addresses(self) -> tuple[str, ...]:
        """The user's addresses and aliases in every mailbox: never a contact."""
        return tuple(a for m in self.mailboxes for a in m.addresses)


SECTION_CLASSES: dict[str, type[Any]] = {
    "account": AccountConfig,
    "imap": ImapConfig,
    "smtp": SmtpConfig,
    "policy": PolicyConfig,
    "digest": DigestConfig,
    "drafts": DraftsConfig,
    "commands": CommandsConfig,
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
    entries = _read_entries(data, "addressbook", keys_by_section["addressbook"], problems,
                            warnings)
    mailbox_entries = _read_entries(data, "mailbox", keys_by_section["mailbox"], problems,
                                    warnings)

    _derive(values, data, problems)
    mailboxes = _mailboxes(mailbox_entries, values, problems)
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
        commands=CommandsConfig(**values["commands"]),
        daemon=DaemonConfig(**values["daemon"]),
        templates=TemplatesConfig(**values["templates"]),
        storage=StorageConfig(**values["storage"]),
        addressbook=tuple(a for a in addressbooks if a is not None),
        mailbox=mailboxes,
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


_ENTRY_NEEDS = {"addressbook": "path or url", "mailbox": "email and host"}


def _read_entries(data: Mapping[str, Any], section: str, keys: Mapping[str, Key],
                  problems: list[str], warnings: list[str]) -> list[dict[str, Any]]:
    """The ``[[section]]`` entries, each read like a table; #N names them in problems."""
    raw = data.get(section, [])
    if not isinstance(raw, list) or not all(isinstance(e, dict) for e in raw):
        problems.append(f"{section} must be written as [[{section}]] entries (double "
                        f"brackets), each with {_ENTRY_NEEDS[section]}")
        return []
    entries = []
    for number, table in enumerate(raw, start=1):
        label = f"[[{section}]] #{number}"
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
    _derive_server("imap", "[imap]", imap, account["email"], problems)
    if smtp["auth"] == "oauth2" and imap["auth"] == "oauth2" and smtp["client_id"] is None:
        # One app registration signs in to both: [smtp] takes [imap]'s unless it has its own.
        for name in OAUTH_KEYS:
            if smtp[name] is None or name == "tenant":
                smtp[name] = imap[name]
    _derive_server("smtp", "[smtp]", smtp, None, problems)
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


# The keys of an OAuth2 sign-in that [smtp] may share with [imap].
OAUTH_KEYS = ("token_command", "oauth_provider", "client_id", "client_secret", "tenant",
              "authorization_url", "token_url", "device_authorization_url", "scope")


def _derive_server(kind: str, label: str, section: dict[str, Any], email: str | None,
                   problems: list[str]) -> None:
    """Defaults and checks of one server's keys: port, username, plaintext, OAuth2."""
    if section.get("username", "") is None and email is not None:
        section["username"] = email
    security = section["security"] or "ssl"
    if section["port"] is None:
        section["port"] = DEFAULT_PORTS[kind][security]
    host = section["host"]
    if section["security"] == "none" and host and not is_loopback(host):
        problems.append(
            f"{label} security = \"none\" would send your password in plaintext to "
            f"{host}; use \"ssl\" or \"starttls\" (plaintext is allowed only on loopback)"
        )
    if section["auth"] != "oauth2":
        return
    if section["oauth_provider"] is None:
        section["oauth_provider"] = OAUTH_HOSTS.get((host or "").lower())
    provider = section["oauth_provider"]
    if provider is None:
        problems.append(f"{label} auth = \"oauth2\" needs oauth_provider (google, microsoft "
                        "or custom)")
    if section["client_id"] is None:
        problems.append(f"{label} auth = \"oauth2\" needs client_id: register followup "
                        "with your provider once (README: \"OAuth2\") and put its client ID here")
    if provider == "custom" and (section["token_url"] is None or (
            section["authorization_url"] is None
            and section["device_authorization_url"] is None)):
        problems.append(f"{label} oauth_provider = \"custom\" needs token_url and "
                        "authorization_url or device_authorization_url")
    if kind == "smtp" and not section["username"]:
        problems.append(f"{label} auth = \"oauth2\" needs username (the account the token "
                        "is for)")


def _mailboxes(entries: list[dict[str, Any]], values: dict[str, dict[str, Any]],
               problems: list[str]) -> tuple[MailboxConfig, ...]:
    """The ``[[mailbox]]`` entries: each like [imap], with its own name and addresses."""
    out = []
    seen = {values["account"]["email"] or ""}
    names: set[str] = set()
    imap_keys = set(ImapConfig.__dataclass_fields__)
    for number, entry in enumerate(entries, start=1):
        label = f"[[mailbox]] #{number}"
        email = entry["email"]
        if email is None:
            continue  # already a problem: email is required
        name = entry["name"] or email
        if email.lower() in {s.lower() for s in seen}:
            problems.append(f"{label} email {email} is already another mailbox's; give each "
                            "mailbox its own address")
        if name in names:
            problems.append(f"{label} name {name!r} is taken by another [[mailbox]]; names "
                            "must differ")
        seen.add(email)
        names.add(name)
        before = len(problems)
        _derive_server("imap", label, entry, email, problems)
        if len(problems) > before or entry["host"] is None:
            continue
        out.append(MailboxConfig(
            key=name, name=name, email=email, aliases=entry["aliases"],
            imap=ImapConfig(**{k: v for k, v in entry.items() if k in imap_keys})))
    return tuple(out)


def _unknown(what: str, name: str, known: Any) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown {what} is ignored{hint}"
