"""One entry point per address book, whatever it is: read what changed, or check it works."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from agent import credentials
from agent.addressbook.changes import Changes
from agent.addressbook.files import read_path
from agent.config import AddressbookConfig
from agent.errors import AddressbookError, FollowupError


def kind_of(book: AddressbookConfig) -> str:
    if book.url is not None:
        return "carddav"
    return "vdir" if book.path is not None and book.path.is_dir() else "file"


def password(book: AddressbookConfig) -> tuple[str, str]:
    """The CardDAV password and where it was found: keyring (service "followup", the
    username), ``password_command``, then FOLLOWUP_CARDDAV_PASSWORD."""
    return credentials.lookup_password("carddav", book.username or "", book.password_command)


def read(book: AddressbookConfig, region: str | None, state: str | None,
         etags: Mapping[str, str]) -> Changes:
    """What changed at ``book`` since ``state`` and the saved ``etags`` (href → etag).

    Raises AddressbookError (or CredentialError) naming the source when it cannot be read.
    """
    try:
        if book.url is None:
            return read_path(book, region, state, etags)
        from agent.addressbook.carddav import read_carddav  # httpx only when it is needed

        secret, _ = password(book)
        return read_carddav(book, secret, region, state, etags)
    except AddressbookError as exc:
        raise AddressbookError(f"address book {book.name!r}: {exc}") from None
    except FollowupError as exc:
        raise AddressbookError(f"address book {book.name!r}: {exc}") from None


@dataclass(frozen=True)
class Check:
    """One line of ``followup doctor`` about an address book; ``ok`` None is a warning."""

    ok: bool | None
    text: str


def check(book: AddressbookConfig, region: str | None) -> Iterator[Check]:
    """Reachable, logged in, readable: a full read, saved nowhere."""
    label = f"address book {book.name!r}"
    if book.url is not None:
        try:
            _, source = password(book)
        except FollowupError as exc:
            yield Check(False, f"{label}: {exc}")
            return
        yield Check(True, f"{label}: CardDAV password for {book.username} found ({source})")
    try:
        changes = read(book, region, None, {})
    except FollowupError as exc:
        yield Check(False, str(exc))
        return
    how = {"carddav": f"logged in to {book.url} as {book.username}",
           "vdir": f"vdir {book.path}", "file": f"file {book.path}"}[changes.kind]
    phones = sum(len(c.phones) for c in changes.changed)
    yield Check(True, f"{label}: {how}; {len(changes.changed)} card(s) read, {phones} phone "
                      f"number(s)")
    for problem in changes.problems[:10]:
        yield Check(None, f"{label}: {problem}")
    if len(changes.problems) > 10:
        yield Check(None, f"{label}: … and {len(changes.problems) - 10} more problem(s)")
