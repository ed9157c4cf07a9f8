"""One mailbox on a running test server (`ImapAccount`), with helpers to seed and inspect it."""

from __future__ import annotations

import contextlib
import secrets
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import imapclient

ServerKind = Literal["dovecot", "pymap", "cyrus"]

# Batch sizes for seeding and reading back: big enough to be fast, small enough that no
# server refuses the command line (see notes/imap-pitfalls.md).
_APPEND_BATCH = 200
_FETCH_BATCH = 500


def _require_aware(when: datetime | None) -> None:
    if when is not None and when.utcoffset() is None:
        raise ValueError(f"INTERNALDATE must be an aware datetime, got naive {when!r}")


@dataclass
class ImapAccount:
    """One mailbox on a running test server, with helpers to seed and inspect it."""

    kind: ServerKind
    host: str
    port: int
    tls_port: int | None
    username: str
    password: str = field(repr=False)
    ca_file: str | None
    sent_folder: str
    drafts_folder: str
    trash_folder: str
    junk_folder: str
    personality: str = "standard"
    # How this server gives a folder a new UIDVALIDITY: (account, folder) -> None.
    uidvalidity_changer: Callable[[ImapAccount, str], None] | None = field(
        default=None, repr=False, compare=False
    )
    # The folder that shows every message (Gmail's "[Gmail]/All Mail", \All), if any.
    all_folder: str | None = None

    def client(self) -> imapclient.IMAPClient:
        """A logged-in IMAPClient over plaintext loopback; use it as a context manager."""
        client = imapclient.IMAPClient(
            self.host, port=self.port, use_uid=True, ssl=False, timeout=30
        )
        client.normalise_times = False
        # imaplib sends a literal and its closing CRLF separately; with Nagle on, each
        # APPEND then waits ~40 ms for a delayed ACK.
        client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            if self.password.isascii():
                client.login(self.username, self.password)
            else:  # LOGIN takes only ASCII: AUTHENTICATE PLAIN carries UTF-8
                client.plain_login(self.username, self.password)
        except BaseException:
            with contextlib.suppress(Exception):
                client.shutdown()
            raise
        return client

    def append(
        self,
        folder: str,
        message: bytes,
        *,
        flags: Sequence[str] = (),
        when: datetime | None = None,
    ) -> None:
        """APPEND one message; `when` (aware) becomes its INTERNALDATE."""
        _require_aware(when)
        with self.client() as client:
            client.append(folder, message, flags=tuple(flags), msg_time=when)

    def append_many(
        self, items: Iterable[tuple[str, bytes, Sequence[str], datetime | None]]
    ) -> None:
        """APPEND many (folder, message, flags, when) on one connection.

        Items are grouped by folder (order within a folder, and so UID order, is kept)
        and sent as MULTIAPPEND commands of a few hundred messages when the server
        offers it (Dovecot and pymap do); one APPEND each otherwise.
        """
        by_folder: dict[str, list[tuple[bytes, tuple[str, ...], datetime | None]]] = {}
        for folder, message, flags, when in items:
            _require_aware(when)
            by_folder.setdefault(folder, []).append((message, tuple(flags), when))
        with self.client() as client:
            multi = b"MULTIAPPEND" in client.capabilities()
            for folder, messages in by_folder.items():
                if not multi:
                    for message, flags, when in messages:
                        client.append(folder, message, flags=flags, msg_time=when)
                    continue
                for start in range(0, len(messages), _APPEND_BATCH):
                    batch: list[dict[str, Any]] = []
                    for message, flags, when in messages[start : start + _APPEND_BATCH]:
                        item: dict[str, Any] = {"msg": message, "flags": flags}
                        if when is not None:
                            item["date"] = when
                        batch.append(item)
                    client.multiappend(folder, batch)

    def create_folder(self, name: str) -> None:
        with self.client() as client:
            client.create_folder(name)
            client.subscribe_folder(name)

    def folder_uids(self, folder: str) -> list[int]:
        with self.client() as client:
            client.select_folder(folder, readonly=True)
            return sorted(int(uid) for uid in client.search("ALL"))

    def fetch_raw(self, folder: str) -> list[bytes]:
        """Every message of `folder` as full raw bytes, in UID order."""
        with self.client() as client:
            client.select_folder(folder, readonly=True)
            uids = sorted(int(uid) for uid in client.search("ALL"))
            messages: list[bytes] = []
            for start in range(0, len(uids), _FETCH_BATCH):
                chunk = uids[start : start + _FETCH_BATCH]
                response = client.fetch(chunk, [b"BODY.PEEK[]"])
                messages.extend(bytes(response[uid][b"BODY[]"]) for uid in chunk)
            return messages

    def uidvalidity(self, folder: str) -> int:
        with self.client() as client:
            status = client.folder_status(folder, [b"UIDVALIDITY"])
            return int(status[b"UIDVALIDITY"])

    def change_uidvalidity(self, folder: str) -> int:
        """Give `folder` a new UIDVALIDITY; return it.

        The messages survive with their flags and INTERNALDATE but get new UIDs, as
        when a provider rebuilds a mailbox. A session that has the folder selected may
        be disconnected (Dovecot does that), so open new clients afterwards.
        """
        if self.uidvalidity_changer is None:
            raise NotImplementedError(f"{self.kind} server cannot change UIDVALIDITY")
        before = self.uidvalidity(folder)
        # pymap draws a new value from the clock and 16 random bits: retry a collision.
        for _attempt in range(3):
            self.uidvalidity_changer(self, folder)
            after = self.uidvalidity(folder)
            if after != before:
                return after
        raise RuntimeError(f"UIDVALIDITY of {folder!r} did not change ({before})")


def personal_prefix(client: imapclient.IMAPClient) -> str:
    """The personal namespace prefix ("" or e.g. "INBOX."); "" without NAMESPACE."""
    if b"NAMESPACE" not in client.capabilities():
        return ""
    personal = client.namespace().personal
    return str(personal[0][0]) if personal else ""


def rebuild_folder(
    account: ImapAccount,
    folder: str,
    *,
    renew_empty_inbox: Callable[[], None] | None = None,
) -> None:
    """New UIDVALIDITY the IMAP way; messages survive with flags and INTERNALDATE.

    Another folder: RENAME it away, CREATE it anew, COPY the messages back, DELETE the
    parking folder — new UIDVALIDITY, UIDs start over. INBOX cannot be deleted (and
    Dovecot refuses to RENAME it): its messages are MOVEd out, `renew_empty_inbox`
    gives the empty INBOX a new UIDVALIDITY, and they are MOVEd back with new UIDs.
    """
    with account.client() as client:
        parking = f"{personal_prefix(client)}fu-parking-{secrets.token_hex(4)}"
        if folder.upper() == "INBOX" and renew_empty_inbox is not None:
            client.create_folder(parking)
            client.select_folder(folder)
            uids = client.search("ALL")
            if uids:
                client.move(uids, parking)
            client.close_folder()
            renew_empty_inbox()
        else:
            # RENAME of INBOX (where allowed, e.g. pymap) moves its messages away and
            # leaves a fresh, empty INBOX behind (RFC 3501 6.3.5).
            client.rename_folder(folder, parking)
            if not client.folder_exists(folder):  # Dovecot may auto-create it again
                client.create_folder(folder)
            client.subscribe_folder(folder)
        client.select_folder(parking)
        uids = client.search("ALL")
        if uids:
            client.copy(uids, folder)
        client.close_folder()
        client.delete_folder(parking)
