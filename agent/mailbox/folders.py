"""Folders: what the server lists, which folder plays which part, and which ones a scan reads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from agent.errors import ConfigError

# Folder roles, discovered from SPECIAL-USE flags (RFC 6154) first, then from names.
ROLES = ("sent", "drafts", "junk", "trash", "all", "archive")
SPECIAL_USE = {
    "\\sent": "sent", "\\drafts": "drafts", "\\junk": "junk", "\\trash": "trash",
    "\\all": "all", "\\archive": "archive",
}
# Names seen in the wild (compared case-insensitively on the last path component).
KNOWN_NAMES: dict[str, tuple[str, ...]] = {
    "sent": ("sent", "sent items", "sent messages", "sent mail", "sent-mail", "gesendet",
             "gesendete elemente", "gesendete objekte", "gesendete nachrichten",
             "gesendete e-mails", "envoyés", "éléments envoyés", "enviados", "inviata",
             "posta inviata", "verzonden items"),
    "drafts": ("drafts", "draft", "entwürfe", "entwurf", "brouillons", "borradores", "bozze",
               "concepten"),
    "junk": ("junk", "spam", "junk e-mail", "junk email", "junk-e-mail", "bulk mail",
             "unerwünscht", "spamverdacht", "courrier indésirable", "ongewenste e-mail"),
    "trash": ("trash", "deleted items", "deleted messages", "bin", "papierkorb",
              "gelöschte elemente", "gelöschte objekte", "gelöscht", "corbeille",
              "papelera", "cestino", "verwijderde items"),
    "all": ("all mail", "alle nachrichten"),
    "archive": ("archive", "archiv", "archives", "archivo"),
}
GMAIL_ROOTS = ("[gmail]", "[google mail]")


@dataclass(frozen=True, slots=True)
class Folder:
    """One LIST entry: name, hierarchy delimiter and flags."""

    name: str
    delimiter: str
    flags: frozenset[str]  # lower-case, e.g. "\\sent", "\\noselect"

    @property
    def selectable(self) -> bool:
        return not self.flags & {"\\noselect", "\\nonexistent"}

    @property
    def leaf(self) -> str:
        return self.name.rsplit(self.delimiter, 1)[-1] if self.delimiter else self.name


@dataclass(frozen=True)
class FolderRoles:
    """Which folder plays which part; ``how`` says whether a flag or a name told us."""

    sent: str | None = None
    drafts: str | None = None
    junk: str | None = None
    trash: str | None = None
    all: str | None = None
    archive: tuple[str, ...] = ()
    how: dict[str, str] = field(default_factory=dict, compare=False)


def discover_roles(folders: Sequence[Folder]) -> FolderRoles:
    """SPECIAL-USE flags first, then known names (German, Exchange, iCloud, Gmail)."""
    found: dict[str, str] = {}
    how: dict[str, str] = {}
    archive: list[str] = []
    for folder in folders:
        if not folder.selectable:
            continue
        for flag in folder.flags:
            role = SPECIAL_USE.get(flag)
            if role == "archive":
                archive.append(folder.name)
                how.setdefault("archive", "flag")
            elif role and role not in found:
                found[role] = folder.name
                how[role] = "flag"
    for role, names in KNOWN_NAMES.items():
        if role in found or (role == "archive" and archive):
            continue
        for folder in _by_name_preference(folders):
            if folder.selectable and folder.leaf.lower() in names:
                if role == "all" and not _under_gmail_root(folder):
                    continue
                if role == "archive":
                    archive.append(folder.name)
                else:
                    found[role] = folder.name
                how[role] = "name"
                break
    return FolderRoles(
        sent=found.get("sent"), drafts=found.get("drafts"), junk=found.get("junk"),
        trash=found.get("trash"), all=found.get("all"), archive=tuple(archive), how=how,
    )


def _by_name_preference(folders: Sequence[Folder]) -> list[Folder]:
    # Prefer top-level folders and INBOX children over deeper user folders of the same name.
    def depth(folder: Folder) -> int:
        parts = folder.name.split(folder.delimiter) if folder.delimiter else [folder.name]
        if parts[0].upper() == "INBOX" or parts[0].lower() in GMAIL_ROOTS:
            return len(parts) - 1
        return len(parts)
    return sorted(folders, key=depth)


def _under_gmail_root(folder: Folder) -> bool:
    head = folder.name.split(folder.delimiter, 1)[0] if folder.delimiter else ""
    return head.lower() in GMAIL_ROOTS


def choose_scan_folders(folders: Sequence[Folder], roles: FolderRoles, gmail: bool,
                        include: Sequence[str] | None = None,
                        exclude: Sequence[str] = ()) -> list[str]:
    """Which folders a scan reads: explicit ``include``, else every selectable folder but
    Junk, Trash and Drafts; on Gmail only All Mail (it holds everything else)."""
    names = [f.name for f in folders if f.selectable]
    if include is not None:
        missing = [name for name in include if name not in names]
        if missing:
            raise ConfigError([
                f"[imap] folders names {', '.join(repr(m) for m in missing)}, which the server "
                f"does not have; it has: {', '.join(names)}"
            ])
        chosen = list(include)
    elif gmail and roles.all:
        chosen = [roles.all]
    else:
        skip = {roles.junk, roles.trash, roles.drafts}
        chosen = [name for name in names if name not in skip]
    return [name for name in chosen if name not in set(exclude)]

