"""Is a message automated mail (lists, autoresponders, bounces, reports, bulk mail)?"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import unquote

from agent.headers.addresses import MEMO_VALUE_MAX, Addr, new_memo, normalise_address, remember
from agent.headers.fields import ANGLE_ID

__all__ = [
    "Verdict",
    "automated_verdict",
    "envelope_local_part",
    "is_automated_address",
    "list_addresses",
]


# -- automated addresses -------------------------------------------------------------------------

# "Do not reply" in the languages of our users' correspondents: English, French, Spanish,
# Portuguese, Italian, German, Dutch; separators "-", "_", "." or none.
_NO_REPLY = r"""(?:
      (?:no|do[-_.]?not|dont)[-_.]?reply
    | ne[-_.]?pas[-_.]?r[eé]pondre | ne[-_.]?r[eé]pondez[-_.]?pas | pas[-_.]?de[-_.]?r[eé]ponse
    | no[-_.]?respon(?:der|da|das) | no[-_.]?contestar | n[aã]o[-_.]?respon(?:da|der)
    | non[-_.]?rispondere
    | (?:bitte[-_.]?)?nicht[-_.]?antworten | keine[-_.]?antwort(?:adresse)?
    | niet[-_.]?(?:be)?antwoorden | geen[-_.]?antwoord
)"""
# Machines that write: mail systems, list servers, non-delivery reports.
_ROBOT_LOCAL = r"""(?:mailer[-_.]?daemon|postmaster|ndr|listserv|majordomo|mailman)"""
# List administration: list-request, owner-list.
_LIST_ADMIN = r"""(?:.*-request|owner-.*)"""
# Mailman's and ezmlm's list-owner: in Sender and Return-Path only, because in From
# "product-owner@" may well be a person.
_LIST_OWNER = r"""(?:.*-owner)"""
# Bounce (and VERP) addresses: bounce, bounces, list-bounces, bounce-123, bounces+x.
_BOUNCE = r"""(?:bounces?|.*[-_.]bounces?|bounces?[-_.+=].*)"""

_FLAGS: Final = re.VERBOSE | re.DOTALL
_ROBOT_OR_LIST = rf"""
      {_ROBOT_LOCAL}
    | (?:.*[-_.+])?{_NO_REPLY}(?:[-_.+].*)?
    | {_LIST_ADMIN}
"""
#: Any automated local part: who sends from it is a machine (From, recipients).
_AUTOMATED_LOCAL = re.compile(rf"{_ROBOT_OR_LIST} | {_BOUNCE}", _FLAGS)
#: Sender: the same, and list owners.
_SENDER_LOCAL = re.compile(rf"{_ROBOT_OR_LIST} | {_BOUNCE} | {_LIST_OWNER}", _FLAGS)
#: Return-Path: without bounce addresses, because a VERP bounce address is the envelope
#: sender of much mail that people write (list posts, mail sent through a company's mailing
#: service), so there it proves nothing.
_ENVELOPE_LOCAL = re.compile(rf"{_ROBOT_OR_LIST} | {_LIST_OWNER}", _FLAGS)
#: Only bounce addresses and mail systems: mail *to* one of them answers an envelope sender,
#: which only bounces and autoresponders do (people never see those addresses).
_BOUNCE_LOCAL = re.compile(rf"{_BOUNCE} | mailer[-_.]?daemon", _FLAGS)

_AUTOMATED_MEMO: dict[str, bool] = new_memo()
_SENDER_MEMO: dict[str, bool] = new_memo()
_ENVELOPE_MEMO: dict[str, bool] = new_memo()
_BOUNCE_MEMO: dict[str, bool] = new_memo()


def envelope_local_part(key: str) -> str:
    """The local part that says who is behind an address: lowercased, without ``+tag``,
    quotes and a BATV signature (``prvs=1234abcd=ndr`` is ``ndr``); for a quoted local part
    holding a whole address (``"postmaster@x.org"@relay``), that address's local part."""
    local = key.rpartition("@")[0] if "@" in key else key
    local = local.strip().lstrip("<").lower()
    if local[:1] == '"':
        local = local.strip('"').partition("@")[0]
    if local.startswith(("prvs=", "btv1==", "msprvs1=")):
        local = local.rpartition("=")[2]  # BATV: prvs=TAG=local (RFC draft, Microsoft, Barracuda)
    plus = local.find("+")
    if plus > 0:
        local = local[:plus]
    return local


# A word every automated local part above contains: most people's local parts have none, and
# one search for these is several times faster than the full patterns (bench/headers.py).
_HINT = re.compile(r"repl|r[eé]pon|respon|rispon|contest|antw|daemon|postmaster|ndr|listserv"
                   r"|majordomo|mailman|request|owner|bounce", re.IGNORECASE)


def _matches(pattern: re.Pattern[str], memo: dict[str, bool], key: str) -> bool:
    known = memo.get(key)
    if known is None:
        known = _HINT.search(key) is not None and pattern.fullmatch(
            envelope_local_part(key)) is not None
        if len(key) <= MEMO_VALUE_MAX:
            remember(memo, key, known)
    return known


def is_automated_address(key: str) -> bool:
    """True if the local part says a machine sends or receives mail there.

    Judged by the local part only — never by domain: gmx.de, web.de, gmail.com are people.
    Covers MAILER-DAEMON, postmaster, ndr, list servers (listserv, majordomo, mailman),
    "do not reply" in English, French, Spanish, Portuguese, Italian, German and Dutch
    (``noreply``, ``do-not-reply``, ``ne-pas-repondre``, ``no-responder``,
    ``non-rispondere``, ``keine-antwort``, ``niet-beantwoorden`` …, also inside
    ``x-noreply``/``noreply.x``), list administration addresses (``…-request``, ``owner-…``,
    ``…-owner``) and bounce addresses (``bounce``, ``bounces``, ``…-bounces``, ``bounce-…``).
    """
    # Asked for every From and every exchange candidate: a memo hit costs no further call.
    known = _AUTOMATED_MEMO.get(key)
    return known if known is not None else _matches(_AUTOMATED_LOCAL, _AUTOMATED_MEMO, key)


def _is_sender_robot(key: str) -> bool:
    return _matches(_SENDER_LOCAL, _SENDER_MEMO, key)


def _is_envelope_robot(key: str) -> bool:
    """For Return-Path: no bounce addresses, but list owners (see _ENVELOPE_LOCAL)."""
    return _matches(_ENVELOPE_LOCAL, _ENVELOPE_MEMO, key)


def _is_bounce_address(key: str) -> bool:
    return _matches(_BOUNCE_LOCAL, _BOUNCE_MEMO, key)


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
_AUTORESPONDER_FIELDS: Final = ("x-autoreply", "x-autorespond")
# Bulk-mailer marks that only campaign and notification systems write (README "What counts
# as a person" says why each is safe): Mailchimp/Mandrill, campaign tools, Exim's bounces.
_BULK_FIELDS: Final = ("x-mc-user", "x-campaign", "x-campaignid", "x-campaign-id",
                       "x-failed-recipients")
# Marks of mail services that also carry mail people write (Amazon SES behind WorkMail,
# helpdesks and CRMs sending through Mailgun, SendGrid or SES), and Exchange's
# X-Auto-Response-Suppress, which Outlook also stamps on mail people write: a *soft*
# verdict, overturned when the message answers mail the user sent (scan.py).
_SOFT_FIELDS: Final = ("feedback-id", "x-ses-outgoing", "x-mailgun-sid", "x-sg-eid",
                       "x-auto-response-suppress")
_MARKER_FIELDS: Final = frozenset({
    "x-followup-digest", *_LIST_FIELDS, "precedence", "auto-submitted",
    *_AUTORESPONDER_FIELDS, *_BULK_FIELDS, *_SOFT_FIELDS,
})
_BULK_PRECEDENCE: Final = frozenset({"bulk", "list", "junk"})
_AUTOREPLY_PRECEDENCE: Final = frozenset({"auto_reply", "auto-reply"})
# Reports (RFC 6522): delivery status (bounces), disposition notifications (read receipts),
# feedback reports (ARF complaints); also sent bare, without the multipart/report wrapper.
_REPORT_TYPES: Final = ("multipart/report", "message/delivery-status",
                        "message/disposition-notification", "message/feedback-report")

#: (reason, soft): why a message is automated, and whether answering the user's own mail
#: makes it a person's after all.
Verdict = tuple[str, bool]


def automated_verdict(fields: dict[str, str], from_: tuple[Addr, ...],
                      to: tuple[Addr, ...]) -> Verdict | None:
    """SPEC "Automated mail" (README "What counts as a person"): the first marker found, as
    a short reason, and whether it is soft; None for a person's mail.

    Hard markers, with their reasons: ``X-Followup-Digest`` ("followup-digest"); any
    ``List-*`` field (its name); ``Auto-Submitted`` other than ``no``
    ("auto-submitted:auto-replied"); ``Precedence: auto_reply``; ``X-Autoreply``,
    ``X-Autorespond``; a report ("report:multipart/report"); the bulk marks ``X-MC-User``,
    ``X-Campaign``, ``X-CampaignID``, ``X-Campaign-Id``, ``X-Failed-Recipients`` (the field
    name); ``Return-Path: <>`` ("null-return-path"); an automated address in From
    ("noreply-sender"), Sender ("automated-sender") or Return-Path ("automated-return-path",
    bounce addresses excepted; in both also list owners ``…-owner``); mail to a bounce
    address ("to-bounce-address").

    Soft markers: ``Precedence: bulk|list|junk`` ("precedence:bulk"), ``Feedback-ID``,
    ``X-SES-Outgoing``, ``X-Mailgun-Sid``, ``X-SG-EID``, ``X-Auto-Response-Suppress``.

    """
    if fields.keys().isdisjoint(_MARKER_FIELDS):
        # The common case: no marker field, so only the envelope and addresses can tell.
        hard = _hard_envelope(fields, from_, to)
        return (hard, False) if hard is not None else None
    if "x-followup-digest" in fields:
        return "followup-digest", False
    for name in _LIST_FIELDS:
        if name in fields:
            return name, False
    submitted = fields.get("auto-submitted")
    if submitted is not None:
        word = submitted.split(";", 1)[0].strip().lower()
        if word != "no":
            return (f"auto-submitted:{word}" if word else "auto-submitted"), False
    precedence = fields.get("precedence")
    word = precedence.split(";", 1)[0].strip().lower() if precedence is not None else ""
    if word in _AUTOREPLY_PRECEDENCE:
        return f"precedence:{word}", False
    for name in (*_AUTORESPONDER_FIELDS, *_BULK_FIELDS):
        if name in fields:
            return name, False
    hard = _hard_envelope(fields, from_, to)
    if hard is not None:
        return hard, False
    if word in _BULK_PRECEDENCE:
        return f"precedence:{word}", True
    for name in _SOFT_FIELDS:
        if name in fields:
            return name, True
    return None


def _hard_envelope(fields: dict[str, str], from_: tuple[Addr, ...],
                   to: tuple[Addr, ...]) -> str | None:
    """The markers that need no special field: reports, envelope and robot addresses."""
    content_type = fields.get("content-type")
    if content_type is not None:
        kind = content_type.lstrip()[:32].lower()
        if kind.startswith(_REPORT_TYPES):
            return "report:" + kind.split(";", 1)[0].strip()
    return_path = fields.get("return-path")
    if return_path is not None:
        verdict = _RETURN_PATH_MEMO.get(return_path, _UNKNOWN)
        if verdict == _UNKNOWN:
            verdict = _return_path_verdict(return_path)
            if len(return_path) <= MEMO_VALUE_MAX:
                remember(_RETURN_PATH_MEMO, return_path, verdict)
        if verdict:
            return verdict
    for addr in from_:
        if is_automated_address(addr.key):
            return "noreply-sender"
    sender = fields.get("sender")
    if sender is not None and _is_sender_robot(_angle_address("".join(sender.split()))):
        return "automated-sender"
    for addr in to:
        key = addr.key
        if ("bounce" in key or "daemon" in key) and _is_bounce_address(key):
            return "to-bounce-address"
    return None


# Return-Path values recur (people's own address, a list's bounce address): their verdicts.
_RETURN_PATH_MEMO: dict[str, str] = new_memo()
_UNKNOWN: Final = "?"


def _return_path_verdict(return_path: str) -> str:
    """The reason a Return-Path gives, "" for none."""
    path = "".join(return_path.split())
    if path == "<>":
        return "null-return-path"
    if _is_envelope_robot(_angle_address(path)):
        return "automated-return-path"
    return ""


def _angle_address(value: str) -> str:
    """The address of a one-address field without spaces: between ``<`` and ``>`` if any."""
    lt = value.rfind("<")
    if lt >= 0:
        gt = value.find(">", lt)
        return value[lt + 1 : gt if gt > lt else len(value)]
    return value
