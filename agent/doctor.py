"""`followup doctor`: check config, password, server, folders and say in words what is wrong."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agent import auth, digest, policy, render, sendmail
from agent.addressbook import sources as addressbook_source
from agent.addressbook.phones import default_region
from agent.auth import tokens
from agent.config import Config, MailboxConfig, ServerLogin, load_config
from agent.errors import FollowupError, MailboxError, TransientMailboxError
from agent.mailbox.client import Mailbox
from agent.model import Contact, Direction
from agent.plan import Plan
from agent.store import Store

CAPABILITY_WORDS = {
    "SPECIAL-USE": "marks its Sent/Drafts/Junk/Trash folders (SPECIAL-USE)",
    "CONDSTORE": "can tell cheaply what changed (CONDSTORE)",
    "QRESYNC": "can resynchronise quickly (QRESYNC)",
    "UIDPLUS": "reports the UID of appended drafts (UIDPLUS)",
    "X-GM-EXT-1": "is Gmail: only All Mail is scanned (X-GM-EXT-1)",
    "MOVE": "can move messages (MOVE)",
}


@dataclass(frozen=True)
class Check:
    """One line of the doctor's report; ``ok`` None means a warning."""

    ok: bool | None
    text: str


def run_checks(config_path: Path | None,
               load: Callable[[Path | None], Config] = load_config,
               now: datetime | None = None) -> Iterator[Check]:
    """Yield checks in order; stop at the first failure that makes later checks pointless.

    Templates, IMAP and SMTP are checked independently: a wrong IMAP password does not hide
    a broken template. ``now`` dates the sample digest the templates are tried on.
    """
    try:
        config = load(config_path)
    except FollowupError as exc:
        yield Check(False, str(exc))
        return
    where = config.source or config_path
    yield Check(True, f"configuration {where} is valid")
    for warning in config.warnings:
        yield Check(None, warning)
    yield from _template_checks(config, now or datetime.now(UTC))
    for mailbox in config.mailboxes:
        yield from _imap_checks(config, mailbox)
        yield from _unread_checks(config, mailbox)
    if config.digest.delivery == "smtp":
        yield from _smtp_checks(config)
    yield from _addressbook_checks(config)


def _addressbook_checks(config: Config) -> Iterator[Check]:
    """Each [[addressbook]]: password, reachable and logged in, every card readable."""
    if not config.addressbook:
        return
    region = default_region(config)
    if region is None:
        yield Check(None, "no region for phone numbers without a country code: set "
                          "[account] region (e.g. \"DE\")")
    else:
        yield Check(True, f"phone numbers without a country code are read as {region}"
                          + ("" if config.account.region else
                             " (from [digest] timezone; [account] region overrides)"))
    for book in config.addressbook:
        for check in addressbook_source.check(book, region):
            yield Check(check.ok, check.text)


def _login_check(kind: str, settings: ServerLogin, username: str,
                 label: str) -> tuple[Check, auth.Login | None]:
    """How followup signs in: the password found, or the OAuth2 sign-in with the access
    token's expiry and scopes; and the Login, when there is one."""
    try:
        login = auth.login(kind, settings, username, label)
    except FollowupError as exc:
        return Check(False, str(exc)), None
    if not login.oauth2:
        return Check(True, f"{kind.upper()} password for {username} found "
                           f"({login.source})"), login
    acct = auth.oauth_account(kind, settings, username, label)
    token = tokens.access_token(acct)
    left = token.seconds_left()
    expiry = ("the provider gave no expiry" if left is None
              else f"valid for {max(0, left) / 60:.0f} more minutes")
    scopes = " ".join(token.scopes) or "not named by the provider"
    return Check(True, f"{kind.upper()} sign-in for {username}: {login.source}; access "
                       f"token {expiry}; scopes: {scopes}"), login


def _imap_checks(config: Config, source: MailboxConfig) -> Iterator[Check]:
    imap = source.imap
    label = auth.mailbox_label(source)
    if len(config.mailboxes) > 1:
        yield Check(True, f"mailbox {source.name} ({source.email}), {label}:")
    check, login = _login_check("imap", imap, imap.username, label)
    yield check
    if login is None:
        return
    try:
        mailbox = Mailbox.connect(imap, login, source.key)
    except FollowupError as exc:
        yield Check(False, str(exc))
        return
    with mailbox:
        how = {"ssl": "TLS", "starttls": "STARTTLS", "none": "plaintext (loopback)"}[imap.security]
        method = "with an OAuth2 token" if login.oauth2 else "with a password"
        yield Check(True, f"logged in to {imap.host}:{imap.port} as {imap.username} over {how} "
                          f"{method}")
        caps = mailbox.capabilities
        try:
            roles = mailbox.roles()
            scan = mailbox.folders_to_scan(imap.folders, imap.exclude_folders)
        except FollowupError as exc:
            yield Check(False, str(exc))
            return
        words = dict(CAPABILITY_WORDS)
        if "flag" not in roles.how.values():
            # Some servers (German hosts on Dovecot) advertise it but flag no folder.
            words["SPECIAL-USE"] = "advertises SPECIAL-USE but flags no folder (found by name)"
        has = [text for cap, text in words.items() if cap in caps]
        lacks = [cap for cap in ("SPECIAL-USE", "CONDSTORE", "UIDPLUS") if cap not in caps]
        yield Check(True, "server " + ("; ".join(has) if has else "has none of the extensions "
                                        "followup can use"))
        if lacks:
            yield Check(True, f"server lacks {', '.join(lacks)}; followup works without them")
        yield from _folder_checks(config, roles.sent, roles.drafts, roles.how)
        for role in ("junk", "trash", "all"):
            name = getattr(roles, role)
            if name:
                yield Check(True, f"{role.capitalize()} folder: {name!r} "
                                  f"(found by {roles.how.get(role, 'name')})")
        yield Check(True, f"will scan {len(scan)} folder(s): {', '.join(scan)}")
        yield from _refused_folders(mailbox, scan)


def _refused_folders(mailbox: Mailbox, folders: Sequence[str]) -> Iterator[Check]:
    """A folder the server lists but will not give its STATUS (no right to read it, a broken
    folder): every scan skips it with a warning (README "A message the server will not
    give"), which the user ends by excluding it."""
    try:
        answered = mailbox.statuses(folders)
        for folder in (name for name in folders if name not in answered):
            try:
                mailbox.status(folder)
            except TransientMailboxError:
                raise  # the connection, not the folder: a failure, below
            except MailboxError as exc:
                yield Check(None, f"folder {folder!r}: {str(exc).rstrip('.')}; every scan "
                                  "skips it (add it to [imap] exclude_folders to stop the "
                                  "warning)")
    except FollowupError as exc:
        yield Check(False, str(exc))


#: How many of the messages the server would not give the doctor names (-v scan: all).
UNREAD_SHOWN = 5


def _unread_checks(config: Config, source: MailboxConfig) -> Iterator[Check]:
    """The messages of this mailbox the server would not give at the last scans, from the
    ledger (none before the first scan): their exchanges are not counted."""
    path = config.storage.path
    if not path.is_file():
        return
    try:
        with Store(path) as store:
            lines = store.ledger.unread_messages(source.key)
    except FollowupError as exc:
        yield Check(False, str(exc))
        return
    if not lines:
        return
    named = "; ".join(lines[:UNREAD_SHOWN])
    more = f"; and {len(lines) - UNREAD_SHOWN} more" if len(lines) > UNREAD_SHOWN else ""
    yield Check(None, f"{source.imap.host} would not give {len(lines)} message(s) of "
                      f"{source.email} at the last scans, so their mail is not counted: "
                      f"{named}{more}. If your mail program cannot open them either, "
                      "they are damaged on the server, which its administrator can repair")


def _folder_checks(config: Config, sent: str | None, drafts: str | None,
                   how: dict[str, str]) -> Iterator[Check]:
    if sent:
        yield Check(True, f"Sent folder: {sent!r} (found by {how.get('sent', 'name')})")
    else:
        yield Check(None, "no Sent folder found: mail you sent is only seen if it is in a "
                          "scanned folder; name it in [imap] folders")
    if drafts:
        yield Check(True, f"Drafts folder: {drafts!r} (found by {how.get('drafts', 'name')})")
    elif config.drafts.enabled:
        yield Check(False, "no Drafts folder found, so check-in drafts cannot be created; "
                           "create a folder named Drafts or set [drafts] enabled = false")


def _template_checks(config: Config, now: datetime) -> Iterator[Check]:
    """Syntax of every user template, then a trial digest on sample data (both languages)."""
    user_dir = render.user_templates_dir(config)
    problems = list(render.check_user_templates(config))
    for language in ("de", "en"):
        problems += check_templates(_with_language(config, language), now)
    for problem in dict.fromkeys(problems):
        yield Check(False, f"{problem}; the default template is used until it is fixed")
    if problems:
        return
    if user_dir is None:
        yield Check(True, "templates: the packaged defaults (`followup templates export DIR` "
                          "copies them for tweaking)")
    else:
        count = len(list(user_dir.glob("*.j2"))) if user_dir.is_dir() else 0
        yield Check(True, f"templates: {count} of your own in {user_dir}, the rest packaged; "
                          "the digest renders")


def sample_plan(config: Config, now: datetime) -> Plan:
    """A made-up day with one contact of each kind, to try templates on (`followup doctor`)."""
    people: list[tuple[int, str, str, Direction, int, str]] = [
        (1, "Jürgen Weiß", "juergen@example.net", "in", 12, "Angebot für März?"),
        (2, "Ann Example", "ann@example.com", "out", 120, "Photos from the launch"),
        (3, "", "booking@example.org", "out", 80, ""),
    ]
    contacts = [
        Contact(id=i, name=name, email=email, addresses=(email,),
                last_exchange=now - timedelta(days=days), last_direction=direction,
                last_subject=subject, last_folder="INBOX" if direction == "in" else "Sent",
                last_message_id=f"<sample-{i}@example.net>", last_in=None, last_out=None,
                messages_in=3, messages_out=2)
        for i, name, email, direction, days, subject in people
    ]
    states = policy.evaluate(contacts, config.policy, config.digest.tz, now)
    day = policy.today(now, config.digest.tz)
    ranked = policy.ranked(states)
    return Plan(day=day, states=states, due=ranked, picks=ranked[:config.policy.daily_picks])


def check_templates(config: Config, now: datetime) -> list[str]:
    """Problems the user's digest templates have when rendered with sample data.

    A syntax check alone misses what only shows with data (a misspelt ``row.nmae`` under
    StrictUndefined); found here, it does not wait for a morning digest to fall back.
    """
    renderer = render.Renderer(config)
    try:
        digest.render(config, sample_plan(config, now), now, renderer)
    except FollowupError as exc:
        return [str(exc)]
    return list(dict.fromkeys(renderer.problems))


def _with_language(config: Config, language: str) -> Config:
    return replace(config, digest=replace(config.digest, language=language))


def _smtp_checks(config: Config) -> Iterator[Check]:
    smtp = config.smtp
    if smtp is None:  # the config check already demands [smtp] for delivery = "smtp"
        return
    login = None
    if smtp.username:
        check, login = _login_check("smtp", smtp, smtp.username, "[smtp]")
        yield check
        if login is None:
            return
    try:
        session = sendmail.probe(smtp, config.account.email, login=login)
    except FollowupError as exc:
        yield Check(False, str(exc))
        return
    yield Check(True, session.words() + "; the digest can go out this way")
