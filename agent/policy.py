"""Whom to contact: each contact's status, due date and urgency today, and today's picks.

Pure functions of (contacts, the user's decisions, settings, now): no I/O, no clock reads.
Every "day" here is a calendar day in the user's ``[digest] timezone``: days between two
moments are counted as the difference of their local dates, never as elapsed seconds / 86400,
so a daylight-saving change never moves anyone by a day.

How often (cadence), ignore and language — the first of these that has a say wins:

1. the contact's own decisions from the command line (``followup ignore``, ``followup cadence``,
   the contact's language);
2. ``[[policy.rule]]`` entries whose ``match`` is one of the contact's addresses;
3. rules whose ``tag`` is one of the contact's tags;
4. rules whose ``match = "*@domain"`` is the domain of one of the contact's addresses
   (exactly that domain, not its subdomains);
5. the ``[policy]`` defaults (``cadence_days``, not ignored, no language).

Addresses, domains and tags compare case-insensitively. Within one level the first rule in the
file wins. Cadence and ignore are one question, "how often: every N days, or never": a more
specific rule that gives a cadence (an address rule inside an ignored domain) is an exception to
the ignore, and a contact's own cadence (``followup cadence``) brings them back from an ignored
domain. ``followup unignore`` only clears the contact's own ignore flag, so a contact
ignored by a rule stays ignored until the rule goes or the contact gets a cadence of their own.
Language is resolved on its own (a language-only rule does not end an ignore); without one
the caller falls back to the language of their mail, then ``[digest] language``.

Statuses, the first that applies wins:

``ignored``  ignored by the user or a rule; no due date.
``snoozed``  today is on or before ``snooze_until``.
``waiting``  a reply is owed: they wrote last, have had no answer for more than
             ``reply_after_days`` days, and their message is at most ``reply_window_days``
             (30) days old. After that window their clock runs like anyone's (overdue, due
             or ok below): someone who wrote 200 days ago and never got an answer needs a
             check-in that refers to their message, not an apology for a slow reply.
``overdue``  today is past the due date (the line: the local date of the last exchange plus
             the cadence).
``due``      today is within ``lead_days`` days before the due date, or on it.
``ok``       everyone else.

Urgency (higher is more urgent), one number that orders all three actionable statuses:

``waiting``  2 + w / (w + reply_after_days), w = days since their mail      → (2.5, 3)
``overdue``  1 + p / (p + cadence_days),     p = days past the line         → (1, 2)
``due``      1 / (2 + d),                    d = days until the line        → (0, 0.5]
others       0

So in the due list a reply owed ranks above any check-in, and lateness is measured in
cadences: a 45-day key client 20 days past the line outranks a 365-day acquaintance 20 days
past it.

The clock (``clock_start``) runs from the later of the last exchange and the last logged
touchpoint (``Contact.last_touch``). Someone with neither — a person known only from an
address book with ``include_without_mail`` — has **no contact on record**: status ``ok``, no
due date, reason "no contact on record"; they come up through the picks slowly (below).

Birthdays (``Contact.birthday``, from the address book): ``upcoming_birthdays`` lists those
from today through ``[digest] birthday_days`` − 1 days ahead (a 29 February birthday falls
on 28 February in other years); ignored and snoozed people are left out.

Today's picks (``pick_today``) are the ``daily_picks`` people to get in touch with: first
everyone whose birthday is today or tomorrow (not ignored, not snoozed; due or not), then
overdue, then due, each group taken whole while it fits in the remaining slots. Replies owed
are not picks: they have their own list and cap (``replies_today``, ``[digest]
max_replies``), so a backlog of replies never starves the network. Last, if a slot is still
free, **one** person with no contact on record: the one picked longest ago (never picked
first; ties by contact id), or without a history the one the day number points at in id
order. So with m such people they come up at most one a day, each within m days of free
slots, and never instead of anyone who is due. Due contacts that do not fit are taken
closest to the line first (they move on to overdue soon enough). An overdue group that does
not fit is rotated, because it does not move on by itself: the group is kept in an order that
does not change from day to day (by last exchange, then contact id), and the day number moves a
window of the free slots along that order. The same states and day give the same picks, with no
stored state; and with a fixed set of m overdue contacts and r free slots, every overdue
contact is picked within ceil(m / r) consecutive days. The caller may also pass when each
contact was last picked (from the drafts and digests in the store): in
a rotated group, contacts picked today come first (so a second run on the same day agrees with
the first), then those never picked, then the least recently picked; the window only breaks
ties. That keeps the rotation fair when the set changes from day to day, as it does in real life.

Replies owed today (``replies_today``): the waiting contacts that are not picks, oldest message
first (most urgent), at most ``max_replies``; the rest stay on the due list. They leave it by
themselves: by an answer, or when the window closes.

With ``[digest] prefer = "call"`` (``call_first``), picks and replies with a phone number come
first among equals (the same status), in urgency order otherwise; who is picked does not change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from agent.config import PolicyConfig
from agent.configspec import Rule
from agent.model import Contact, ContactState, Status

NO_RECORD = "no contact on record"

OWN_SETTING = "your setting for this contact"
# The statuses that ask the user to act (the due list), most urgent first.
ACTIONABLE: tuple[Status, ...] = ("waiting", "overdue", "due")
# The statuses of people to get in touch with, in the order pick_today serves them.
PICKED: tuple[Status, ...] = ("overdue", "due")
# Phone numbers that reach a person (a fax or a pager does not).
CALLABLE_TYPES = frozenset({"cell", "work", "home", "other"})


@dataclass(frozen=True)
class Effective:
    """The settings that apply to one contact, and in words why (``source``)."""

    cadence_days: int
    ignored: bool
    language: str | None
    source: str  # why the cadence (or the ignore) applies, e.g. "rule *@bigcorp.example"


def _default_words(policy: PolicyConfig) -> str:
    return f"default {policy.cadence_days} days"


def _rule_words(rule: Rule) -> str:
    return f"rule tag:{rule.tag}" if rule.tag else f"rule {rule.match}"


def _matching_rules(contact: Contact, rules: Sequence[Rule]) -> list[Rule]:
    """The rules that match the contact, in precedence order: address, tag, domain."""
    addresses = {a.lower() for a in (*contact.addresses, contact.email) if a}
    domains = {a.rpartition("@")[2] for a in addresses}
    tags = {t.strip().lower() for t in contact.all_tags}
    by_address = [r for r in rules
                  if r.match and not r.match.startswith("*@") and r.match in addresses]
    by_tag = [r for r in rules if r.tag and r.tag in tags]
    by_domain = [r for r in rules
                 if r.match and r.match.startswith("*@") and r.match[2:] in domains]
    return [*by_address, *by_tag, *by_domain]


def effective_settings(contact: Contact, policy: PolicyConfig) -> Effective:
    """Cadence, ignore and language for ``contact`` by the precedence in the module docstring."""
    rules = _matching_rules(contact, policy.rule)
    language = contact.language or next((r.language for r in rules if r.language), None)
    cadence, source = [
        *([(contact.cadence_days, OWN_SETTING)] if contact.cadence_days is not None else []),
        *((r.cadence_days, _rule_words(r)) for r in rules if r.cadence_days is not None),
        (policy.cadence_days, _default_words(policy)),
    ][0]
    if contact.ignored:
        return Effective(cadence, True, language, OWN_SETTING)
    if contact.cadence_days is None:
        # The most specific rule that says how often decides between "every N days" and never.
        deciding = next((r for r in rules if r.ignore or r.cadence_days is not None), None)
        if deciding is not None and deciding.ignore:
            return Effective(cadence, True, language, _rule_words(deciding))
    return Effective(cadence, False, language, source)


def _local_date(moment: datetime, tz: ZoneInfo) -> date:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment.isoformat()} has no time zone; policy needs aware datetimes")
    return moment.astimezone(tz).date()


def today(now: datetime, tz: ZoneInfo) -> date:
    """The user's calendar day at ``now`` (an aware datetime)."""
    return _local_date(now, tz)


def _days(count: int) -> str:
    return "1 day" if count == 1 else f"{count} days"


def _ago(count: int, on: date) -> str:
    if count == 0:
        return "today"
    if count == 1:
        return "yesterday"
    return f"{count} days ago" if count > 1 else f"on {on.isoformat()}"


def _state(contact: Contact, policy: PolicyConfig, tz: ZoneInfo, day: date) -> ContactState:
    settings = effective_settings(contact, policy)
    if settings.ignored:
        return ContactState(contact, "ignored", None, None, f"ignored ({settings.source})", 0.0)

    start = clock_start(contact)
    snoozed = contact.snooze_until is not None and day <= contact.snooze_until
    if start is None:
        if snoozed and contact.snooze_until is not None:
            return ContactState(contact, "snoozed", None, settings.cadence_days,
                                f"snoozed until {contact.snooze_until.isoformat()}; "
                                f"{NO_RECORD}", 0.0)
        return ContactState(contact, "ok", None, settings.cadence_days, NO_RECORD, 0.0)
    last = _local_date(start, tz)
    cadence = settings.cadence_days
    due_date = last + timedelta(days=cadence)
    since = (day - last).days
    until_line = (due_date - day).days
    line = f"the {cadence}-day line"
    if settings.source != _default_words(policy):
        line += f" ({settings.source})"
    exchange = f"last exchange {_ago(since, last)} ({contact.last_direction})"
    if start is not contact.last_exchange:
        exchange = f"last touchpoint {_ago(since, last)}"
    elif contact.last_direction == "in" and since > policy.reply_window_days:
        exchange = (f"they wrote last, {_ago(since, last)}: past the "
                    f"{policy.reply_window_days}-day reply window, so their clock runs")

    status: Status
    urgency = 0.0
    if snoozed and contact.snooze_until is not None:
        status, reason = "snoozed", f"snoozed until {contact.snooze_until.isoformat()}; {exchange}"
    elif contact.last_direction == "in" and start is contact.last_exchange \
            and policy.reply_after_days < since <= policy.reply_window_days:
        status = "waiting"
        reason = f"they wrote last, {_ago(since, last)}, and are waiting for your reply"
        urgency = 2 + since / (since + policy.reply_after_days)
    elif until_line < 0:
        status, reason = "overdue", f"{exchange}, past {line} on {due_date.isoformat()}"
        urgency = 1 + -until_line / (-until_line + cadence)
    elif until_line <= policy.lead_days:
        when = "today" if until_line == 0 else f"in {_days(until_line)}"
        status = "due"
        reason = f"{exchange}, reaches {line} on {due_date.isoformat()} ({when})"
        urgency = 1 / (2 + until_line)
    else:
        status, reason = "ok", f"{exchange}, reaches {line} on {due_date.isoformat()}"
    return ContactState(contact, status, due_date, cadence, reason, urgency)


def clock_start(contact: Contact) -> datetime | None:
    """When the contact's clock started: the later of the last exchange and the last
    touchpoint; None when there is neither (no contact on record)."""
    moments = [m for m in (contact.last_exchange if contact.has_mail else None,
                           contact.last_touch) if m is not None]
    return max(moments, default=None)


def next_birthday(birthday: str | None, day: date) -> date | None:
    """The first birthday on or after ``day`` (``YYYY-MM-DD`` or ``--MM-DD``); None: none."""
    if not birthday or len(birthday) < 7:
        return None
    try:
        month, dom = int(birthday[-5:-3]), int(birthday[-2:])
    except ValueError:
        return None
    for year in (day.year, day.year + 1):
        try:
            when = date(year, month, dom)
        except ValueError:
            if (month, dom) != (2, 29):
                return None
            when = date(year, 2, 28)  # born on 29 February: celebrated on the 28th
        if when >= day:
            return when
    return None  # pragma: no cover - one of the two years is always on or after day


def birthday_in(contact: Contact, day: date) -> int | None:
    """Days from ``day`` to the contact's next birthday (0: today); None without one."""
    when = next_birthday(contact.birthday, day)
    return None if when is None else (when - day).days


def upcoming_birthdays(states: Sequence[ContactState], day: date,
                       days: int) -> list[tuple[ContactState, date]]:
    """Birthdays from ``day`` through ``days`` − 1 days ahead, soonest first (then by name);
    ignored and snoozed people are left out."""
    found = []
    for state in states:
        if state.status in ("ignored", "snoozed"):
            continue
        when = next_birthday(state.contact.birthday, day)
        if when is not None and (when - day).days < days:
            found.append((state, when))
    return sorted(found, key=lambda item: (item[1], item[0].contact.name.lower(),
                                           item[0].contact.id))


def evaluate(contacts: Sequence[Contact], policy: PolicyConfig, tz: ZoneInfo,
             now: datetime) -> list[ContactState]:
    """One state per contact, in the order given, as of the user's calendar day at ``now``."""
    day = today(now, tz)
    return [_state(contact, policy, tz, day) for contact in contacts]


def _most_urgent_first(state: ContactState) -> tuple[float, int]:
    return -state.urgency, state.contact.id


def ranked(states: Sequence[ContactState]) -> list[ContactState]:
    """The waiting, overdue and due states, most urgent first (ties: lower contact id first)."""
    return sorted((s for s in states if s.status in ACTIONABLE), key=_most_urgent_first)


def _rotate(group: list[ContactState], slots: int, day: date,
            history: Mapping[int, date] | None) -> list[ContactState]:
    # An order that stays put from day to day while nobody is contacted; the day moves the
    # window along it by `slots` places, so consecutive days show consecutive windows.
    group = sorted(group, key=lambda s: (s.contact.last_exchange, s.contact.id))
    offset = day.toordinal() * slots % len(group)
    group = group[offset:] + group[:offset]
    if history is not None:

        def recency(state: ContactState) -> tuple[int, int]:
            last = history.get(state.contact.id)
            if last == day:
                return 0, 0  # already today's pick: a second run today agrees with the first
            return 1, last.toordinal() if last is not None and last < day else 0

        group.sort(key=recency)  # stable: within one recency the window order stays
    return group[:slots]


def pick_today(states: Sequence[ContactState], daily_picks: int, day: date,
               history: Mapping[int, date] | None = None) -> list[ContactState]:
    """Today's ``daily_picks`` contacts, most urgent first; see the module docstring.

    ``history`` maps contact id → the day that contact was last picked (from the store's
    drafts and digests); picks dated ``day`` are today's and are kept.
    """
    birthdays = sorted(((days, s.contact.id, s) for s in states
                        if s.status not in ("ignored", "snoozed")
                        and (days := birthday_in(s.contact, day)) is not None and days <= 1),
                       key=lambda item: item[:2])
    picks: list[ContactState] = [s for _, _, s in birthdays][:daily_picks]
    chosen = {s.contact.id for s in picks}
    candidates = [s for s in ranked(states) if s.contact.id not in chosen]
    for status in PICKED:
        slots = daily_picks - len(picks)
        if slots <= 0:
            break
        group = [s for s in candidates if s.status == status]
        if len(group) <= slots or status == "due":
            picks += group[:slots]  # most urgent first, as ranked
        else:
            picks += _rotate(group, slots, day, history)
    unrecorded = [s for s in states if s.status == "ok" and s.reason == NO_RECORD
                  and s.contact.id not in chosen]
    if len(picks) < daily_picks and unrecorded:
        picks.append(_slowly(unrecorded, day, history))
    return sorted(picks, key=_most_urgent_first)


def replies_today(states: Sequence[ContactState], max_replies: int,
                  picks: Sequence[ContactState] = ()) -> list[ContactState]:
    """Today's replies owed: waiting contacts that are not ``picks``, most urgent (oldest
    message) first, at most ``max_replies``."""
    picked = {s.contact.id for s in picks}
    return [s for s in ranked(states)
            if s.status == "waiting" and s.contact.id not in picked][:max_replies]


def callable_phone(contact: Contact) -> str | None:
    """The first number that reaches the person (not a fax or pager), None without one."""
    return next((p.number for p in contact.phones if p.type in CALLABLE_TYPES), None)


def call_first(states: Sequence[ContactState]) -> list[ContactState]:
    """``states`` with those who have a phone number first among equals (the same status),
    the order otherwise kept (``[digest] prefer = "call"``)."""
    order = list(dict.fromkeys(s.status for s in states))  # as the states come, by urgency
    return sorted(states, key=lambda s: (order.index(s.status), callable_phone(s.contact) is None))


def _slowly(group: list[ContactState], day: date,
            history: Mapping[int, date] | None) -> ContactState:
    """The one person with no contact on record to pick today (see the module docstring)."""
    group = sorted(group, key=lambda s: s.contact.id)
    if history is None:
        return group[day.toordinal() % len(group)]

    def turn(state: ContactState) -> tuple[int, int, int]:
        last = history.get(state.contact.id)
        if last == day:
            return 0, 0, state.contact.id  # already today's: a second run agrees
        return 1, last.toordinal() if last is not None and last < day else 0, state.contact.id

    return min(group, key=turn)
