"""Mailbox layouts a Dovecot test server can present: what hosting providers differ in.

Standard (SPECIAL-USE), a German host below INBOX., Gmail (with and without X-GM-EXT-1,
views over real folders), Exchange with German names. pymap and Cyrus are personalities of
their own (`ALL_PERSONALITIES`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VirtualFolder:
    """A folder that is a live view over real ones (Dovecot's virtual plugin).

    That is how Gmail behaves: one message, many labels, each label a folder with its own
    UIDs. `rules` is the view's dovecot-virtual file: mailbox patterns, then an indented
    search program; a `!name` pattern is where APPENDs to the view are stored.
    """

    name: str  # full IMAP name, e.g. "[Gmail]/All Mail"
    special_use: str | None
    rules: str


@dataclass(frozen=True)
class Personality:
    """A mailbox layout a server presents: what hosting providers differ in.

    `folders` are full IMAP names as a client sees them (prefix included) with their
    SPECIAL-USE flag or None; sent/drafts/trash/junk name the folder in that role.
    `views` are virtual folders in their own namespace `views_prefix`, stored in real
    folders of a hidden namespace (`hidden_folders`, named ".real/<name>").
    `capability`, when set, is Dovecot's `imap_capability`: a full list replaces the
    defaults, "+X" adds X to them.
    """

    name: str
    separator: str
    prefix: str
    folders: tuple[tuple[str, str | None], ...]
    sent: str
    drafts: str
    trash: str
    junk: str
    extra_config: tuple[str, ...] = ()
    capability: str = ""
    views_prefix: str = ""
    views: tuple[VirtualFolder, ...] = ()
    hidden_folders: tuple[str, ...] = ()
    all_mail: str | None = None


STANDARD = Personality(
    name="standard",
    separator="/",
    prefix="",
    folders=(
        ("Sent", "\\Sent"),
        ("Drafts", "\\Drafts"),
        ("Junk", "\\Junk"),
        ("Trash", "\\Trash"),
        ("Archive", "\\Archive"),
    ),
    sent="Sent",
    drafts="Drafts",
    trash="Trash",
    junk="Junk",
)

# A German hosting provider (Courier heritage): everything below INBOX, "." separator,
# no SPECIAL-USE flags, umlauts in names (modified UTF-7 on the wire).
GERMAN = Personality(
    name="german",
    separator=".",
    prefix="INBOX.",
    folders=(
        ("INBOX.Gesendet", None),
        ("INBOX.Entwürfe", None),
        ("INBOX.Papierkorb", None),
        ("INBOX.Spam", None),
    ),
    sent="INBOX.Gesendet",
    drafts="INBOX.Entwürfe",
    trash="INBOX.Papierkorb",
    junk="INBOX.Spam",
)

# Gmail: INBOX and user labels are real folders; everything below "[Gmail]/" is a view.
# All Mail holds every message but Spam and Trash (drafts included, flagged \Draft), so
# each message shows up in at least two folders with different UIDs, as on Gmail; Starred
# shows the \Flagged ones. Sent Mail, Drafts, Spam and Trash store into hidden real
# folders. Where this differs from Gmail: a message put into INBOX and into a label is
# two copies, so All Mail lists it twice (Gmail: once); Dovecot gives no APPENDUID for an
# APPEND to a view (drafts come back without a UID); and it knows no X-GM-MSGID.
REAL_PREFIX = ".real/"
_EVERYTHING = f"INBOX\n*\n{REAL_PREFIX}*\n-{REAL_PREFIX}Spam\n-{REAL_PREFIX}Trash\n"


def _gmail(name: str, capability: str = "") -> Personality:
    def view(leaf: str, special_use: str, rules: str) -> VirtualFolder:
        return VirtualFolder(f"[Gmail]/{leaf}", special_use, rules)

    return Personality(
        name=name,
        separator="/",
        prefix="",
        folders=(),
        sent="[Gmail]/Sent Mail",
        drafts="[Gmail]/Drafts",
        trash="[Gmail]/Trash",
        junk="[Gmail]/Spam",
        capability=capability,
        views_prefix="[Gmail]/",
        views=(
            view("All Mail", "\\All", _EVERYTHING + "  all\n"),
            view("Sent Mail", "\\Sent", f"!{REAL_PREFIX}Sent\n  all\n"),
            view("Drafts", "\\Drafts", f"!{REAL_PREFIX}Drafts\n  all\n"),
            view("Spam", "\\Junk", f"!{REAL_PREFIX}Spam\n  all\n"),
            view("Trash", "\\Trash", f"!{REAL_PREFIX}Trash\n  all\n"),
            view("Starred", "\\Flagged", _EVERYTHING + "  flagged\n"),
        ),
        hidden_folders=("Sent", "Drafts", "Spam", "Trash"),
        all_mail="[Gmail]/All Mail",
    )


# Gmail's capability list (CONDSTORE without QRESYNC, no MULTIAPPEND) less what Dovecot
# does not implement here (QUOTA, XLIST, COMPRESS=DEFLATE, UTF8=ACCEPT, LITERAL-).
_GMAIL_CAPABILITY = ("IMAP4rev1 UNSELECT IDLE NAMESPACE ID CHILDREN {ext}UIDPLUS ENABLE MOVE "
                     "CONDSTORE ESEARCH LIST-EXTENDED LIST-STATUS SPECIAL-USE")
# Gmail as it is: the layout above and X-GM-EXT-1, so followup reads All Mail only (and
# asks for X-GM-MSGID, which Dovecot refuses: agent.mailbox must carry on without it).
GMAIL = _gmail("gmail", capability=_GMAIL_CAPABILITY.format(ext="X-GM-EXT-1 "))
# The same layout without X-GM-EXT-1 (a migrated copy, a proxy): followup reads every
# folder, and the copies of one message in INBOX, labels, All Mail and Sent Mail must
# count once.
GMAIL_NOEXT = _gmail("gmail-noext", capability=_GMAIL_CAPABILITY.format(ext=""))

# Microsoft Exchange / Microsoft 365 with German folder names: top-level folders, "/"
# separator, no SPECIAL-USE flags, and Exchange's short capability list (no CONDSTORE,
# QRESYNC, SPECIAL-USE, MULTIAPPEND, LITERAL+). After login Dovecot 2.3 advertises a
# full `imap_capability` list exactly as given (test_personalities checks it).
EXCHANGE = Personality(
    name="exchange",
    separator="/",
    prefix="",
    folders=(
        ("Gesendete Elemente", None),
        ("Entwürfe", None),
        ("Gelöschte Elemente", None),
        ("Junk-E-Mail", None),
        ("Postausgang", None),
        ("Archiv", None),
    ),
    sent="Gesendete Elemente",
    drafts="Entwürfe",
    trash="Gelöschte Elemente",
    junk="Junk-E-Mail",
    capability="IMAP4 IMAP4rev1 SASL-IR UIDPLUS ID UNSELECT CHILDREN IDLE NAMESPACE MOVE",
)

PERSONALITIES: dict[str, Personality] = {
    p.name: p for p in (STANDARD, GERMAN, GMAIL, GMAIL_NOEXT, EXCHANGE)
}
# Every server personality the tests know: the Dovecot layouts above, pymap, Cyrus.
ALL_PERSONALITIES: tuple[str, ...] = (*PERSONALITIES, "pymap", "cyrus")
