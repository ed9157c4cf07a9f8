"""Is a message automated mail (lists, autoresponders, bounces, noreply senders)?"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import unquote

from agent.headers.addresses import MEMO_VALUE_MAX, Addr, new_memo, normalise_address, remember
from agent.headers.fields import ANGLE_ID

__all__ = ["automated_reason", "is_automated_address", "list_addresses"]


# -- automated addresses -------------------------------------------------------------------------

_AUTOMATED_MEMO: dict[str, bool] = new_memo()
_AUTOMATED_LOCAL = re.compile(
    r"""
      (?:mailer[-_.]?daemon|postmaster|bounces?)        # the whole local part
    | (?:no|do[-_.]?not)[-_.]?reply(?:[-_.+].*)?         # noreply, do-not-reply, noreply-x
    | .*[-_.+](?:no|do[-_.]?not)[-_.]?reply              # x-noreply, x_noreply, x.noreply
    | .*-request                                         # list admin: list-request
    | owner-.*                                           # list admin: owner-list
    | .*[-_.]bounces?                                    # list-bounces, x-bounce
    | bounces?[-_.+].*                                   # VERP: bounce-123, bounces+x
    """,
    re.VERBOSE | re.DOTALL,
)


def is_automated_address(key: str) -> bool:
    """True if the local part says a machine sends or receives mail there.

    Judged by the local part only — never by domain: gmx.de, web.de, gmail.com are people.
    Covers MAILER-DAEMON, postmaster, noreply/no-reply/no_reply/donotreply/do-not-reply/
    do_not_reply and ``…-noreply``/``noreply-…`` variants (``-``, ``_``, ``.``, ``+``),
    list administration addresses (``…-request``, ``owner-…``) and bounce addresses
    (``bounce``, ``bounces``, ``…-bounces``, ``bounce-…``).
    """
    known = _AUTOMATED_MEMO.get(key)
    if known is None:
        local = key.rpartition("@")[0].strip().lstrip("<").lower() if "@" in key else key.lower()
        plus = local.find("+")
        if plus > 0:
            local = local[:plus]
        known = _AUTOMATED_LOCAL.fullmatch(local) is not None
        if len(key) <= MEMO_VALUE_MAX:
            remember(_AUTOMATED_MEMO, key, known)
    return known


# -- list addresses ------------------------------------------------------------------------------

_NO_KEYS: Final[frozenset[str]] = frozenset()
_MAILTO = re.compile(r"<\s*mailto:\s*([^>?\s]+)", re.IGNORECASE)


def list_addresses(fields: dict[str, str]) -> frozenset[str]:
    """Identity keys of the mailing list(s) a message reveals.

    ``List-Post: <mailto:list@host>`` gives the posting address; ``List-Id: Desc <a.b.c>``
    gives ``a@b.c`` (RFC 2919 list ids are "listname.domain": Mailman and Google Groups
    build them exactly so).
    """
    post = fields.get("list-post")
    list_id = fields.get("list-id")
    if post is None and list_id is None:
        return _NO_KEYS
    keys: set[str] = set()
    if post is not None:
        for target in _MAILTO.findall(post[:4096]):
            key = normalise_address(unquote(target))
            if key is not None:
                keys.add(key)
    if list_id is not None:
        ids = ANGLE_ID.findall(list_id[:4096])
        candidate = ids[-1] if ids else list_id
        candidate = candidate.strip()
        local, dot, domain = candidate.partition(".")
        if dot and " " not in candidate:
            key = normalise_address(f"{local}@{domain}")
            if key is not None:
                keys.add(key)
    return frozenset(keys)


# -- automated mail ----------------------------------------------------------------------------

_LIST_FIELDS: Final = (
    "list-id",
    "list-post",
    "list-unsubscribe",
    "list-help",
    "list-subscribe",
    "list-owner",
    "list-archive",
)
# X-Auto-Response-Suppress is a marker because SPEC says so.  Beware: Exchange also stamps it
# on some mail that people write (it asks *receivers* not to auto-reply), so helpdesk
# vendors warn that filtering on it drops real mail.  Removing it here is a one-word change.
_AUTORESPONDER_FIELDS: Final = ("x-autoreply", "x-autorespond", "x-auto-response-suppress")
_MARKER_FIELDS: Final = frozenset(
    {"x-followup-digest", *_LIST_FIELDS, "precedence", "auto-submitted", *_AUTORESPONDER_FIELDS}
)
_BULK_PRECEDENCE: Final = frozenset({"bulk", "list", "junk", "auto_reply", "auto-reply"})


def automated_reason(fields: dict[str, str], from_: tuple[Addr, ...]) -> str | None:
    """SPEC "Automated mail": the first marker found, as a short reason, or None.

    Markers, with their reasons: ``X-Followup-Digest`` (our own digest: "followup-digest");
    any ``List-Id``/``List-Post``/``List-Unsubscribe``/``List-Help``/``List-Subscribe``/
    ``List-Owner``/``List-Archive`` (the field name); ``Precedence: bulk|list|junk|auto_reply``
    ("precedence:bulk"); ``Auto-Submitted`` other than ``no`` ("auto-submitted:auto-replied");
    ``X-Autoreply``, ``X-Autorespond``, ``X-Auto-Response-Suppress`` present (the field name);
    ``Return-Path: <>`` ("null-return-path"); a From address whose local part is automated
    ("noreply-sender", see :func:`is_automated_address`).
    """
    if fields.keys().isdisjoint(_MARKER_FIELDS):
        return _automated_by_envelope(fields, from_)  # the common case: a human's header
    if "x-followup-digest" in fields:
        return "followup-digest"
    for name in _LIST_FIELDS:
        if name in fields:
            return name
    precedence = fields.get("precedence")
    if precedence is not None:
        word = precedence.split(";", 1)[0].strip().lower()
        if word in _BULK_PRECEDENCE:
            return f"precedence:{word}"
    submitted = fields.get("auto-submitted")
    if submitted is not None:
        word = submitted.split(";", 1)[0].strip().lower()
        if word != "no":
            return f"auto-submitted:{word}" if word else "auto-submitted"
    for name in _AUTORESPONDER_FIELDS:
        if name in fields:
            return name
    return _automated_by_envelope(fields, from_)


def _automated_by_envelope(fields: dict[str, str], from_: tuple[Addr, ...]) -> str | None:
    """The markers that need no special header: null return path, noreply-style sender."""
    return_path = fields.get("return-path")
    if return_path is not None and "".join(return_path.split()) == "<>":
        return "null-return-path"
    for addr in from_:
        if is_automated_address(addr.key):
            return "noreply-sender"
    return None


