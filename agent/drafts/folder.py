"""The Drafts folder: find it, list what is in it, and recognise our drafts there."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from agent.errors import MailboxError
from agent.headers.meta import parse_message
from agent.mailbox.client import Mailbox
from agent.mailbox.fetch import utc
from agent.store.journal import DraftRecord

DRAFT_FLAGS = ("\\Draft", "\\Seen")
# An edited copy (a new UID, on Gmail a new Message-ID too) is recognised by recipient when it
# was saved no earlier than this before the draft was made (clocks differ between devices).
EDIT_SLACK = timedelta(hours=1)


@dataclass(frozen=True)
class FolderDraft:
    """One message found in the Drafts folder, as much as matching needs."""

    uid: int
    message_id: str | None
    recipients: frozenset[str]  # identity keys of To, Cc and Bcc
    written: datetime  # its Date (else INTERNALDATE): when the draft says it was made
    saved: datetime  # the later of INTERNALDATE and Date: when this copy was last saved


def drafts_folder(mailbox: Mailbox) -> str:
    """The Drafts folder (SPECIAL-USE flag, else a known name); a clear error if there is none."""
    folder = mailbox.roles().drafts
    if folder is None:
        names = ", ".join(f.name for f in mailbox.list_folders() if f.selectable)
        raise MailboxError(
            f"{mailbox.host} has no Drafts folder (none is flagged \\Drafts and none has a known "
            f"name; folders: {names}); create a folder named \"Drafts\" in your mail client"
        )
    return folder


def inventory(mailbox: Mailbox, folder: str, *, batch_size: int,
              now: datetime) -> tuple[int, list[FolderDraft]]:
    """(UIDVALIDITY, every message in ``folder`` not marked \\Deleted) — headers only.

    One pass over the folder instead of a SEARCH per draft: some servers (Gmail) do not search
    arbitrary headers reliably, and Drafts folders are small.
    """
    status = mailbox.select(folder)
    found = []
    for _, batch in mailbox.header_batches(mailbox.uids_after(0), batch_size):
        for item in batch:
            if "\\deleted" in item.flags:
                continue
            meta = parse_message(item.header, item.internaldate, now)
            stored = utc(item.internaldate)
            found.append(FolderDraft(
                uid=item.uid, message_id=meta.message_id,
                recipients=frozenset(a.key for a in (*meta.to, *meta.cc, *meta.bcc)),
                written=meta.time, saved=max(stored, meta.time) if stored else meta.time,
            ))
    return status.uidvalidity, found


def exact_match(record: DraftRecord, uidvalidity: int,
                 candidates: Iterable[FolderDraft]) -> FolderDraft | None:
    """The draft itself (same UID) or a copy of it (same Message-ID)."""
    candidates = list(candidates)
    if record.uid is not None and record.uidvalidity == uidvalidity:
        same = next((c for c in candidates if c.uid == record.uid), None)
        if same is not None:
            return same
    return next((c for c in candidates if c.message_id == record.message_id), None)


def edited_match(record: DraftRecord, addresses: frozenset[str],
                  candidates: Iterable[FolderDraft]) -> FolderDraft | None:
    """A draft to one of the contact's addresses saved since ours was made: our draft as the
    user's client saved it again after an edit (it may have a new Message-ID)."""
    since = record.created_at - EDIT_SLACK
    return next((c for c in candidates if c.recipients & addresses and c.saved >= since), None)
