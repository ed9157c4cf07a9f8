"""The user's decisions about one contact, named by address or id: snooze, ignore, cadence, tags.

Also merge and split, and everything ``followup show`` tells about a contact. The CLI calls
these and prints; the store keeps the decisions, the policy says what they mean today.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from agent import policy
from agent.config import Config
from agent.errors import UsageError
from agent.headers.addresses import normalise_address
from agent.identity import self_keys
from agent.model import Contact, ContactState, Direction, Exchange
from agent.plan import include_sources, make_plan
from agent.store import Store
from agent.store.journal import DraftRecord
from agent.store.people import Decisions
from agent.store.touchpoints import TouchRecord

# A cadence longer than this is a typo or means "never": `followup ignore` says that better.
MAX_CADENCE_DAYS = 3650
RECENT_EXCHANGES = 5

_DURATION = re.compile(r"(\d+)\s*([dwm])", re.IGNORECASE)
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DAYS = re.compile(r"(\d+)\s*d?", re.IGNORECASE)
_TAG = re.compile(r"[^\s,]+")


@dataclass(frozen=True)
class Target:
    """A contact the user named: id, addresses, ledger record (None: no exchanges), decisions."""

    id: int
    addresses: tuple[str, ...]
    contact: Contact | None
    decisions: Decisions

    @property
    def name(self) -> str:
        return self.contact.name if self.contact else (self.decisions.name or "")

    @property
    def email(self) -> str:
        if self.contact is not None:
            return self.contact.email
        return self.addresses[0] if self.addresses else f"contact {self.id}"

    @property
    def label(self) -> str:
        """``Name <address>``, or the bare address when no name is known."""
        return f"{self.name} <{self.email}>" if self.name else self.email


# --------------------------------------------------------------------------- naming a contact


def load(config: Config, store: Store, contact_id: int) -> Target:
    decisions = store.people.decisions_of(contact_id)
    if decisions is None:
        raise UsageError(f"no contact has the id {contact_id}")
    contact = store.contact(contact_id, self_keys(config), include_sources(config))
    addresses = tuple(store.people.addresses_of(contact_id)) or (
        contact.addresses if contact is not None else ())
    return Target(id=contact_id, addresses=addresses, contact=contact, decisions=decisions)


def resolve(store: Store, ref: str) -> int:
    """The id of the contact ``ref`` names: an id, or an address in any spelling.

    The id of a contact merged into another resolves to the one it was merged into. An
    unknown one is a UsageError that lists close matches.
    """
    text = ref.strip()
    if not text:
        raise UsageError("give a contact id or an address; `followup contacts` lists them",
                         de="nenne eine Kontakt-Nummer oder eine Adresse")
    found = store.people.id_of(text)
    if found is None and (card_key := normalise_address(text)) is not None:
        found = store.cards.contact_of(card_key)  # someone known only from a card
    if found is not None:
        return found
    if text.isascii() and text.isdigit():
        raise UsageError(f"no contact has the id {text}; `followup contacts` lists them",
                         de=f"kein Kontakt hat die Nummer {text}")
    key = normalise_address(text)
    if key is not None:
        raise UsageError(f"no contact has the address {text}; {_hint(store, key)}",
                         de=f"kein Kontakt hat die Adresse {text}{_hint(store, key, 'de')}")
    raise UsageError(f"{text!r} is neither a contact id nor an address; {_hint(store, text)}",
                     de=f"„{text}“ ist weder eine Kontakt-Nummer noch eine Adresse"
                        f"{_hint(store, text, 'de')}")


def _hint(store: Store, text: str, language: str = "en") -> str:
    close = [f"{a} ({name})" if name else a for a, name in store.people.close_matches(text)]
    german = language == "de"
    if not close:
        return "" if german else "`followup contacts` lists everyone"
    joined = " oder " if german else " or "
    listed = close[0] if len(close) == 1 else f"{', '.join(close[:-1])}{joined}{close[-1]}"
    return f" – meintest du {listed}?" if german else f"did you mean {listed}?"


def find(config: Config, store: Store, ref: str) -> Target:
    """The contact ``ref`` names (an id or an address in any spelling); unknown → UsageError."""
    key = normalise_address(ref)
    if key is not None and key in self_keys(config):
        raise UsageError(f"{ref.strip()} is your own address ([account] email or aliases); "
                         "followup never treats you as a contact",
                         de=f"{ref.strip()} ist deine eigene Adresse")
    return load(config, store, resolve(store, ref))


def settings(config: Config, target: Target) -> policy.Effective:
    """Cadence, ignore and language that apply to ``target``, and why."""
    return policy.effective_settings(_as_contact(target), config.policy)


def every(effective: policy.Effective) -> str:
    """How often, in words: ``every 45 days (rule *@bigcorp.example)`` or ``ignored (…)``."""
    if effective.ignored:
        return f"ignored ({effective.source})"
    return f"every {effective.cadence_days} days ({effective.source})"


def _as_contact(target: Target) -> Contact:
    if target.contact is not None:
        return target.contact
    # No exchange in the ledger (e.g. right after `scan --full`): the rules still apply to
    # the addresses and decisions; the mail fields are placeholders nobody reads here.
    d = target.decisions
    never = datetime.min.replace(tzinfo=UTC)
    return Contact(id=target.id, name=target.name, email=target.email,
                   addresses=target.addresses, last_exchange=never, last_direction="out",
                   last_subject="", last_folder="", last_message_id=None, last_in=None,
                   last_out=None, messages_in=0, messages_out=0, snooze_until=d.snooze_until,
                   ignored=d.ignored, cadence_days=d.cadence_days, language=d.language,
                   tags=d.tags)


# --------------------------------------------------------------------------- parsing


def add_months(day: date, months: int) -> date:
    """``day`` plus calendar months, kept inside the month (Jan 31 + 1 month → Feb 28/29)."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def snooze_end(text: str, today: date) -> date:
    """The last snoozed day for DURATION: ``30d``, ``6w``, ``3m`` (calendar months) or a date.

    ``today`` is the user's calendar day; ``30d`` snoozes through today + 30 days.
    """
    value = text.strip()
    match = _DURATION.fullmatch(value)
    if match:
        count, unit = int(match[1]), match[2].lower()
        if count == 0:
            raise UsageError(f"a snooze of {value} ends before it starts; give at least 1d "
                             "(`followup unsnooze` ends a snooze)",
                             de=f"{value} ist keine Dauer; mindestens 1d (unsnooze beendet "
                                "das Zurückstellen)")
        try:
            if unit == "m":
                return add_months(today, count)
            return today + timedelta(days=count * (7 if unit == "w" else 1))
        except (OverflowError, ValueError):
            raise UsageError(f"a snooze of {value} ends after the year 9999; "
                             "`followup ignore` leaves a contact out for good",
                             de=f"{value} endet nach dem Jahr 9999; ignorieren lässt "
                                "jemanden für immer aus") from None
    if not _ISO_DATE.fullmatch(value):
        raise UsageError(f"{value!r} is not a snooze duration; use e.g. 30d, 6w, 3m (months) "
                         "or a date like 2026-12-24",
                         de=f"„{value}“ ist keine Dauer; z. B. 30d, 6w, 3m (Monate) oder ein "
                            "Datum wie 2026-12-24")
    try:
        until = date.fromisoformat(value)
    except ValueError:
        raise UsageError(f"{value} is not a day in the calendar; use a date like "
                         "2026-12-24", de=f"{value} gibt es im Kalender nicht; ein Datum wie "
                                          "2026-12-24") from None
    if until < today:
        raise UsageError(f"{value} is in the past (today is {today.isoformat()}); "
                         "give a later date",
                         de=f"{value} liegt in der Vergangenheit (heute ist "
                            f"{today.isoformat()})")
    return until


def cadence_value(text: str) -> int | None:
    """Days from ``DAYS`` (``45`` or ``45d``); None for ``default``."""
    value = text.strip().lower()
    if value == "default":
        return None
    match = _DAYS.fullmatch(value)
    if match is None:
        raise UsageError(f"{text!r} is not a number of days; give e.g. 45, or `default` to "
                         "follow the rules and [policy] cadence_days again",
                         de=f"„{text}“ ist keine Zahl von Tagen; z. B. 45, oder standard")
    days = int(match[1])
    if days < 1:
        raise UsageError("a cadence of 0 days is not a cadence; `followup ignore` stops "
                         "reminders for a contact",
                         de="ein Rhythmus von 0 Tagen ist keiner; ignorieren beendet die "
                            "Erinnerungen")
    if days > MAX_CADENCE_DAYS:
        raise UsageError(f"a cadence of {days} days is more than {MAX_CADENCE_DAYS} (ten "
                         "years); `followup ignore` stops reminders for a contact",
                         de=f"{days} Tage sind mehr als {MAX_CADENCE_DAYS} (zehn Jahre); "
                            "ignorieren beendet die Erinnerungen")
    return days


def clean_tags(values: Sequence[str]) -> list[str]:
    """Tags as the rules compare them: lowercase words; ``a,b`` is two tags."""
    tags = []
    for value in values:
        for part in value.split(","):
            tag = part.strip().lower()
            if not tag:
                continue
            if not _TAG.fullmatch(tag):
                raise UsageError(f"tag {part.strip()!r} has a space in it; a tag is one word "
                                 "like client or family",
                                 de=f"der Tag „{part.strip()}“ enthält ein Leerzeichen; ein "
                                    "Tag ist ein Wort wie kunde oder familie")
            tags.append(tag)
    if not tags:
        raise UsageError("give at least one tag, e.g. client or family",
                         de="nenne mindestens einen Tag, z. B. kunde oder familie")
    return list(dict.fromkeys(tags))


# --------------------------------------------------------------------------- decisions


def snooze(config: Config, store: Store, ref: str, duration: str,
           now: datetime) -> tuple[Target, date]:
    """Snooze through the returned local day (computed from ``now`` in ``[digest] timezone``)."""
    until = snooze_end(duration, policy.today(now, config.digest.tz))
    target = find(config, store, ref)
    store.people.set_decision(target.id, snooze_until=until)
    return load(config, store, target.id), until


def unsnooze(config: Config, store: Store, ref: str, now: datetime) -> tuple[Target, date | None]:
    """End a snooze; returns the day it would have ended, None when none was running."""
    target = find(config, store, ref)
    until = target.decisions.snooze_until
    store.people.set_decision(target.id, snooze_until=None)
    running = until is not None and until >= policy.today(now, config.digest.tz)
    return load(config, store, target.id), until if running else None


def ignore(config: Config, store: Store, ref: str) -> tuple[Target, bool]:
    """Ignore a contact; the flag says whether they were already ignored by the user."""
    target = find(config, store, ref)
    store.people.set_decision(target.id, ignored=1)
    return load(config, store, target.id), target.decisions.ignored


def unignore(config: Config, store: Store,
             ref: str) -> tuple[Target, bool, policy.Effective]:
    """Clear the contact's own ignore flag only; a rule that ignores them still does.

    Returns the contact, whether the user had ignored them, and the settings now in force.
    """
    target = find(config, store, ref)
    store.people.set_decision(target.id, ignored=0)
    after = load(config, store, target.id)
    return after, target.decisions.ignored, settings(config, after)


def set_cadence(config: Config, store: Store, ref: str,
                days: str) -> tuple[Target, policy.Effective, policy.Effective]:
    """Set (or with ``default`` clear) the contact's own cadence; settings before and after."""
    value = cadence_value(days)
    target = find(config, store, ref)
    before = settings(config, target)
    store.people.set_decision(target.id, cadence_days=value)
    after = load(config, store, target.id)
    return after, before, settings(config, after)


def tag(config: Config, store: Store, ref: str, values: Sequence[str],
        remove: bool = False) -> tuple[Target, list[str], policy.Effective]:
    """Add (or remove) tags; returns the contact, the tags that changed, the settings now."""
    tags = clean_tags(values)
    target = find(config, store, ref)
    have = target.decisions.tags
    changed = [t for t in tags if (t in have) == remove]
    if remove:
        store.people.remove_tags(target.id, tags)
    else:
        store.people.add_tags(target.id, tags)
    after = load(config, store, target.id)
    return after, changed, settings(config, after)


def merge(config: Config, store: Store, keep_ref: str,
          other_ref: str) -> tuple[Target, Target, Target]:
    """Merge ``other`` into ``keep`` (keep's id stays); returns keep and other before, keep after.

    The merged contact's decisions are keep's, with other's snooze, ignore, cadence and
    language filling the gaps, and the tags of both (``Store.merge``).
    """
    keep, other = find(config, store, keep_ref), find(config, store, other_ref)
    if keep.id == other.id:
        raise UsageError(f"{keep_ref} and {other_ref} are already one contact "
                         f"({keep.label}, id {keep.id}); nothing to merge")
    with store.transaction():
        store.people.merge(keep.id, other.id)
        store.journal.move_contact(other.id, keep.id)
        store.touchpoints.move_contact(other.id, keep.id)
    return keep, other, load(config, store, keep.id)


def split(config: Config, store: Store, address: str,
          now: datetime) -> tuple[Target, Target]:
    """Give ``address`` its own contact again; returns (the new contact, the one it left)."""
    text = address.strip()
    if text.isascii() and text.isdigit():
        raise UsageError(f"split takes an address, not an id; `followup show {text}` lists "
                         "the contact's addresses")
    key = normalise_address(text)
    if key is not None and key in self_keys(config):
        raise UsageError(f"{text} is your own address; it belongs to no contact")
    old_id = resolve(store, text)
    if key is None:
        raise UsageError(f"{address!r} is not an address; split takes one address of a "
                         "contact (`followup show ID` lists them)")
    if len(store.people.addresses_of(old_id)) == 1:
        raise UsageError(f"{key} is already a contact of its own; nothing to split")
    new_id = store.people.split(key, now)
    return load(config, store, new_id), load(config, store, old_id)


# --------------------------------------------------------------------------- show


@dataclass(frozen=True)
class Profile:
    """Everything ``followup show`` tells about one contact."""

    target: Target
    settings: policy.Effective
    state: ContactState | None  # None without exchanges in the ledger
    not_listed: str | None  # why `followup contacts` leaves them out, None when it lists them
    last: dict[Direction, Exchange]
    recent: list[Exchange]
    rank: int | None  # place in today's due list, 1 = most urgent
    due_count: int
    picked: bool  # one of today's picks
    pending_drafts: list[DraftRecord]
    touches: list[TouchRecord]  # logged touchpoints, newest first


def show(config: Config, store: Store, ref: str, now: datetime) -> Profile:
    target = find(config, store, ref)
    contact = target.contact
    state = None
    if contact is not None:
        state = policy.evaluate([contact], config.policy, config.digest.tz, now)[0]
    plan = make_plan(config, store, now)
    due_ids = [s.contact.id for s in plan.due]
    return Profile(
        target=target,
        settings=settings(config, target),
        state=state,
        not_listed=_not_listed(config, store, target),
        last=store.ledger.last_exchanges(target.addresses),
        recent=store.ledger.exchanges_of(target.addresses, limit=RECENT_EXCHANGES),
        rank=due_ids.index(target.id) + 1 if target.id in due_ids else None,
        due_count=len(due_ids),
        picked=any(s.contact.id == target.id for s in plan.picks),
        pending_drafts=[d for d in store.journal.drafts("pending") if d.contact_id == target.id],
        touches=store.touchpoints.of(target.id),
    )


def _not_listed(config: Config, store: Store, target: Target) -> str | None:
    contact = target.contact
    if contact is None:
        if target.addresses and set(target.addresses) <= store.ledger.list_addresses():
            return "a mailing list address: never a contact"
        return "no exchanges in the ledger (yet): `followup scan` reads them"
    if config.policy.two_way and not (contact.messages_in and contact.messages_out):
        who = "you have only written to them" if contact.messages_out else \
            "they have only written to you"
        return f"not a contact yet: {who} ([policy] two_way = true)"
    return None
