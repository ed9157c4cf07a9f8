"""The built-in table of mail hosts: servers, how to log in, what the folders look like."""

from __future__ import annotations

from dataclasses import dataclass

from agent.errors import UsageError

APP_LOGIN = "app password"
APP_OR_OAUTH = "app password or OAuth2"
PLAIN_LOGIN = "password"
OAUTH_LOGIN = "OAuth2"


@dataclass(frozen=True)
class Provider:
    """What followup needs to know about one mail host, and what the user should know."""

    key: str  # for --provider
    name: str
    domains: tuple[str, ...]  # addresses recognised automatically
    imap_host: str
    imap_port: int
    imap_security: str
    smtp_host: str
    smtp_port: int
    smtp_security: str
    login: str  # PLAIN_LOGIN | APP_LOGIN | APP_OR_OAUTH | OAUTH_LOGIN
    login_note: str  # what to do before the first login
    folders: str  # what the folder layout looks like there
    oauth: str | None = None  # the OAuth2 provider ([imap] oauth_provider), where there is one

    @property
    def works(self) -> bool:
        """Whether followup can log in there: with a password, or with OAuth2."""
        return self.login != OAUTH_LOGIN or self.oauth is not None


PROVIDERS: tuple[Provider, ...] = (
    Provider(
        "gmail", "Gmail / Google Workspace", ("gmail.com", "googlemail.com"),
        "imap.gmail.com", 993, "ssl", "smtp.gmail.com", 465, "ssl", APP_OR_OAUTH,
        "An app password: Google account → Security → 2-Step Verification → App passwords. "
        "Or OAuth2 (`followup init --auth oauth2`, works where Workspace admins switched app "
        "passwords off) with a client ID you register once (README: OAuth2).",
        "[Gmail]/… (or [Google Mail]/…); All Mail holds everything, so only All Mail is "
        "scanned. Folders hidden from IMAP in Gmail's settings are not seen.", "google"),
    Provider(
        "microsoft", "Microsoft 365 / Outlook.com",
        ("outlook.com", "outlook.de", "hotmail.com", "hotmail.de", "live.com", "live.de",
         "msn.com"),
        "outlook.office365.com", 993, "ssl", "smtp.office365.com", 587, "starttls", OAUTH_LOGIN,
        "Works with OAuth2 (XOAUTH2; Microsoft has switched off password login for IMAP): "
        "register an app in Microsoft Entra once (README: OAuth2), `followup init` signs in "
        "with its client ID (device code).",
        "Sent Items, Drafts, Deleted Items, Junk Email; in German Gesendete Elemente, "
        "Entwürfe, Gelöschte Elemente.", "microsoft"),
    Provider(
        "gmx", "GMX", ("gmx.de", "gmx.net", "gmx.at", "gmx.ch"),
        "imap.gmx.net", 993, "ssl", "mail.gmx.net", 587, "starttls", PLAIN_LOGIN,
        "Switch on IMAP access first (web mail → Settings → POP3 & IMAP); with two-factor "
        "login, use an app password.",
        "German names (Gesendet, Entwürfe, Gelöscht, Spamverdacht), found by name."),
    Provider(
        "webde", "web.de", ("web.de",),
        "imap.web.de", 993, "ssl", "smtp.web.de", 587, "starttls", PLAIN_LOGIN,
        "Switch on IMAP access first (web mail → Settings → POP3 & IMAP); with two-factor "
        "login, use an app password.",
        "German names (Gesendet, Entwürfe, Papierkorb, Spam); mail from unknown senders lands "
        "in an extra folder, which is scanned too."),
    Provider(
        "t-online", "T-Online (Telekom)", ("t-online.de", "magenta.de"),
        "secureimap.t-online.de", 993, "ssl", "securesmtp.t-online.de", 465, "ssl", PLAIN_LOGIN,
        "The separate e-mail password set in the Telekom E-Mail Center, not the password of "
        "your Telekom login.",
        "German names (Gesendet, Entwürfe, Gelöscht), found by name."),
    Provider(
        "ionos", "IONOS (1&1)", (),
        "imap.ionos.de", 993, "ssl", "smtp.ionos.de", 465, "ssl", PLAIN_LOGIN,
        "The password of the mailbox (set in the IONOS control panel).",
        "German names (Gesendete Objekte, Entwürfe, Papierkorb, Spam), found by name."),
    Provider(
        "mailbox.org", "mailbox.org", ("mailbox.org",),
        "imap.mailbox.org", 993, "ssl", "smtp.mailbox.org", 465, "ssl", PLAIN_LOGIN,
        "Your mailbox.org password (an app password if you use two-factor login).",
        "Sent, Drafts, Trash, Junk, marked with SPECIAL-USE flags."),
    Provider(
        "posteo", "Posteo", ("posteo.de", "posteo.net", "posteo.at", "posteo.ch", "posteo.eu",
                             "posteo.org"),
        "posteo.de", 993, "ssl", "posteo.de", 465, "ssl", PLAIN_LOGIN,
        "Your Posteo password.",
        "Sent, Drafts, Trash, Spam, marked with SPECIAL-USE flags."),
    Provider(
        "fastmail", "Fastmail", ("fastmail.com", "fastmail.fm"),
        "imap.fastmail.com", 993, "ssl", "smtp.fastmail.com", 465, "ssl", APP_LOGIN,
        "Create one with IMAP access under Settings → Privacy & Security → App passwords.",
        "Sent, Drafts, Trash, Spam, Archive, marked with SPECIAL-USE flags."),
    Provider(
        "icloud", "iCloud Mail", ("icloud.com", "me.com", "mac.com"),
        "imap.mail.me.com", 993, "ssl", "smtp.mail.me.com", 587, "starttls", APP_LOGIN,
        "Create an app-specific one at account.apple.com → Sign-In and Security. If the full "
        "address is refused as username, try the part before the @.",
        "Sent Messages, Drafts, Deleted Messages, Junk; no SPECIAL-USE flags, found by name."),
    Provider(
        "yahoo", "Yahoo Mail", ("yahoo.com", "yahoo.de", "yahoo.co.uk", "ymail.com",
                                "rocketmail.com"),
        "imap.mail.yahoo.com", 993, "ssl", "smtp.mail.yahoo.com", 465, "ssl", APP_LOGIN,
        "Create one under Account security → Generate app password.",
        "Sent, Draft, Trash, Bulk (spam), Archive."),
)


def provider_for_address(email: str) -> Provider | None:
    """The table entry for the domain of ``email``, if the domain is a known one."""
    domain = email.rpartition("@")[2].strip().lower()
    return next((p for p in PROVIDERS if domain in p.domains), None)


def provider_by_key(key: str) -> Provider:
    wanted = key.strip().lower()
    for provider in PROVIDERS:
        if wanted in (provider.key, provider.name.lower()):
            return provider
    raise UsageError(f"unknown provider {key!r}; use one of: "
                     f"{', '.join(p.key for p in PROVIDERS)}")


def provider_table_markdown() -> str:
    """The README's provider table, generated from PROVIDERS (`python -m agent.providers`)."""
    rows = [
        "| Provider | `--provider` | Addresses | IMAP server | Login | Folders |",
        "|---|---|---|---|---|---|",
    ]
    for p in PROVIDERS:
        domains = ", ".join(p.domains) if p.domains else "your own domain"
        login = f"**{p.login}**" if p.login != PLAIN_LOGIN else p.login
        login += f": {p.login_note}"
        rows.append(f"| {p.name} | `{p.key}` | {domains} | `{p.imap_host}:{p.imap_port}` "
                    f"({p.imap_security}) | {login} | {p.folders} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(provider_table_markdown(), end="")  # noqa: T201
