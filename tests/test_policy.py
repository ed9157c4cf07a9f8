"""The policy: statuses, due dates across DST, rule precedence, urgency and fair daily picks."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.config import PolicyConfig
from agent.configspec import Rule
from agent.model import STATUSES, Contact, ContactState, Direction
from agent.policy import Effective, effective_settings, evaluate, pick_today, ranked, today
from tests.kit import make_contact

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
ZONES = [BERLIN, NEW_YORK, ZoneInfo("UTC"), ZoneInfo("Pacific/Auckland"),
         ZoneInfo("Asia/Kolkata")]
TAGS = ["family", "client", "Friends"]
DOMAINS = ["bigcorp.example", "gmx.de", "studio.example"]

quick = settings(max_examples=100, deadline=None)
thorough = settings(max_examples=200, deadline=None)


def make_policy(cadence: int = 90, lead: int = 14, reply_after: int = 7, picks: int = 3,
                rules: Sequence[Rule] = ()) -> PolicyConfig:
    return PolicyConfig(cadence_days=cadence, lead_days=lead, reply_after_days=reply_after,
                        two_way=True, daily_picks=picks, rule=tuple(rules))


def make_rule(match: str | None = None, tag: str | None = None, cadence_days: int | None = None,
              ignore: bool = False, language: str | None = None) -> Rule:
    return Rule(match=match, tag=tag, cadence_days=cadence_days, ignore=ignore, language=language)


def noon(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(12), tzinfo=tz).astimezone(UTC)


def state_on(contact: Contact, day: date, policy: PolicyConfig | None = None,
             tz: ZoneInfo = BERLIN) -> ContactState:
    return evaluate([contact], policy or make_policy(), tz, noon(day, tz))[0]


# --------------------------------------------------------------------------- strategies

moments = st.datetimes(datetime(2024, 1, 1), datetime(2027, 1, 1), timezones=st.just(UTC))
Scene = tuple[list[Contact], PolicyConfig, ZoneInfo, datetime]


def contact_lists(now: datetime, tz: ZoneInfo) -> st.SearchStrategy[list[Contact]]:
    day = today(now, tz)
    row = st.tuples(
        # Minutes before now; a little into the future too: --now may precede the newest mail.
        st.integers(-2 * 1440, 500 * 1440),
        st.sampled_from(["in", "out"]),
        st.sampled_from(DOMAINS),
        st.none() | st.integers(-30, 30),  # snooze_until, in days from today
        st.integers(0, 9),  # 0: the user ignored them
        st.none() | st.integers(1, 400),
        st.frozensets(st.sampled_from(TAGS), max_size=2),
    )

    def build(rows: list[tuple[int, Direction, str, int | None, int, int | None,
                                frozenset[str]]]) -> list[Contact]:
        return [make_contact(
            7 * number % 101, now - timedelta(minutes=minutes), direction,
            [f"p{number}@{domain}"],
            snooze_until=None if snooze is None else day + timedelta(days=snooze),
            ignored=ignore == 0, cadence_days=cadence, tags=sorted(tags),
        ) for number, (minutes, direction, domain, snooze, ignore, cadence, tags)
            in enumerate(rows)]

    return st.lists(row, max_size=12).map(build)


@st.composite
def scenes(draw: st.DrawFn) -> Scene:
    tz = draw(st.sampled_from(ZONES))
    now = draw(moments)
    rules = draw(st.lists(st.one_of(
        st.builds(make_rule, match=st.sampled_from([f"*@{d}" for d in DOMAINS]),
                  cadence_days=st.none() | st.integers(1, 400), ignore=st.booleans()),
        st.builds(make_rule, tag=st.sampled_from([t.lower() for t in TAGS]),
                  cadence_days=st.integers(1, 400)),
    ), max_size=3))
    policy = make_policy(cadence=draw(st.integers(1, 400)), lead=draw(st.integers(0, 30)),
                         reply_after=draw(st.integers(1, 30)), rules=rules)
    return draw(contact_lists(now, tz)), policy, tz, now


# --------------------------------------------------------------------------- statuses


@quick
@given(scenes())
def test_statuses_partition_the_contacts(scene: Scene) -> None:
    contacts, policy, tz, now = scene
    states = evaluate(contacts, policy, tz, now)
    assert [s.contact for s in states] == contacts
    day = today(now, tz)
    groups = {status: [s for s in states if s.status == status] for status in STATUSES}
    assert sum(len(g) for g in groups.values()) == len(contacts)
    for state in states:
        contact, due = state.contact, state.due_date
        settings_ = effective_settings(contact, policy)
        if state.status == "ignored":
            assert settings_.ignored and due is None and state.cadence_days is None
            continue
        assert not settings_.ignored and due is not None
        assert due == contact.last_exchange.astimezone(tz).date() + timedelta(
            days=settings_.cadence_days)
        since = (day - contact.last_exchange.astimezone(tz).date()).days
        snoozed = contact.snooze_until is not None and day <= contact.snooze_until
        waiting = contact.last_direction == "in" and \
            policy.reply_after_days < since <= policy.reply_window_days
        assert (state.status == "snoozed") == snoozed
        if snoozed:
            continue
        assert (state.status == "waiting") == waiting
        if waiting:
            assert 2.5 < state.urgency < 3
            continue
        if state.status == "overdue":
            assert day > due and 1 < state.urgency < 2
        elif state.status == "due":
            assert due - timedelta(days=policy.lead_days) <= day <= due
            assert 0 < state.urgency <= 0.5
        else:
            assert state.status == "ok" and day < due - timedelta(days=policy.lead_days)
            assert state.urgency == 0
    actionable = ranked(states)
    assert {s.contact.id for s in actionable} == {
        s.contact.id for s in states if s.status in ("waiting", "overdue", "due")}
    assert [s.urgency for s in actionable] == sorted((s.urgency for s in actionable),
                                                     reverse=True)


@quick
@given(scenes(), st.integers(0, 40))
def test_snooze_wins_until_it_ends(scene: Scene, length: int) -> None:
    contacts, policy, tz, now = scene
    day = today(now, tz)
    until = day + timedelta(days=length)
    for contact in contacts:
        snoozed, free = replace(contact, snooze_until=until), replace(contact, snooze_until=None)
        ignored = effective_settings(free, policy).ignored
        for offset in sorted({0, length // 2, length}):
            status = state_on(snoozed, day + timedelta(days=offset), policy, tz).status
            assert status == ("ignored" if ignored else "snoozed")
        after = until + timedelta(days=1)
        then, normal = state_on(snoozed, after, policy, tz), state_on(free, after, policy, tz)
        assert (then.status, then.due_date, then.urgency, then.reason) == (
            normal.status, normal.due_date, normal.urgency, normal.reason)


@quick
@given(scenes(), st.integers(0, 400))
def test_ignore_always_wins(scene: Scene, later: int) -> None:
    contacts, policy, tz, now = scene
    policy = make_policy(policy.cadence_days, policy.lead_days, policy.reply_after_days,
                         rules=[*policy.rule, make_rule(match="*@gmx.de", ignore=True)])
    day = today(now, tz) + timedelta(days=later)
    for state in evaluate(contacts, policy, tz, noon(day, tz)):
        ignored = effective_settings(state.contact, policy).ignored
        assert (state.status == "ignored") == ignored
        assert (state.due_date is None) == ignored
        if state.contact.ignored:
            assert ignored


# --------------------------------------------------------------------------- DST

TRANSITIONS = {
    BERLIN: [datetime(2025, 3, 30, 1, tzinfo=UTC), datetime(2025, 10, 26, 1, tzinfo=UTC),
             datetime(2026, 3, 29, 1, tzinfo=UTC), datetime(2026, 10, 25, 1, tzinfo=UTC)],
    NEW_YORK: [datetime(2025, 3, 9, 7, tzinfo=UTC), datetime(2025, 11, 2, 6, tzinfo=UTC),
               datetime(2026, 3, 8, 7, tzinfo=UTC), datetime(2026, 11, 1, 6, tzinfo=UTC)],
}
near = st.integers(-3 * 1440, 3 * 1440).map(lambda m: timedelta(minutes=m))


def first_moment(day: date, tz: ZoneInfo) -> datetime:
    """Local midnight starting ``day``, as UTC (midnight exists in Berlin and New York)."""
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


@quick
@given(st.sampled_from([BERLIN, NEW_YORK]), st.integers(0, 3), st.integers(0, 3), near, near,
       st.integers(0, 30))
def test_dst_never_shifts_a_contact_by_a_day(tz: ZoneInfo, first: int, second: int,
                                             last_shift: timedelta, line_shift: timedelta,
                                             lead: int) -> None:
    # The last exchange near one DST change and the line near another (or the same) one.
    last = TRANSITIONS[tz][min(first, second)] + last_shift
    line = TRANSITIONS[tz][max(first, second)] + line_shift
    last_day, line_day = last.astimezone(tz).date(), line.astimezone(tz).date()
    cadence = (line_day - last_day).days
    if cadence < 1:
        return
    contact = make_contact(last=last)
    policy = make_policy(cadence=cadence, lead=lead)
    state = evaluate([contact], policy, tz, line)[0]
    assert state.due_date == last_day + timedelta(days=cadence) == line_day

    def status_at(moment: datetime) -> str:
        return evaluate([contact], policy, tz, moment)[0].status

    # Overdue exactly from local midnight after the due day, not a microsecond earlier.
    overdue_from = first_moment(line_day + timedelta(days=1), tz)
    assert status_at(overdue_from) == "overdue"
    assert status_at(overdue_from - timedelta(microseconds=1)) == "due"
    # Due soon exactly from local midnight of due_date - lead_days.
    due_day = line_day - timedelta(days=lead)
    if due_day > last_day:
        assert status_at(first_moment(due_day, tz)) == "due"
        assert status_at(first_moment(due_day, tz) - timedelta(microseconds=1)) == "ok"


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        evaluate([make_contact()], make_policy(), BERLIN, datetime(2026, 3, 2, 8))


# --------------------------------------------------------------------------- precedence

ADDRESS = make_rule(match="ann@bigcorp.example", cadence_days=20)
TAG = make_rule(tag="client", cadence_days=45)
DOMAIN = make_rule(match="*@bigcorp.example", cadence_days=60)
# In the file the least specific rule comes first: the level decides, not the file order.
TABLE_RULES = [DOMAIN, TAG, ADDRESS]


@pytest.mark.parametrize(("addresses", "tags", "own", "expected"), [
    (["ann@bigcorp.example"], ["client"], None, (20, "rule ann@bigcorp.example")),
    (["ANN@BigCorp.example"], [], None, (20, "rule ann@bigcorp.example")),
    (["bob@bigcorp.example"], ["client"], None, (45, "rule tag:client")),
    (["bob@bigcorp.example"], ["Client"], None, (45, "rule tag:client")),
    (["bob@bigcorp.example"], [], None, (60, "rule *@bigcorp.example")),
    (["bob@gmx.de", "bob@bigcorp.example"], [], None, (60, "rule *@bigcorp.example")),
    (["bob@mail.bigcorp.example"], [], None, (90, "default 90 days")),
    (["carl@gmx.de"], ["family"], None, (90, "default 90 days")),
    (["ann@bigcorp.example"], ["client"], 10, (10, "your setting for this contact")),
    (["carl@gmx.de"], [], 200, (200, "your setting for this contact")),
])
def test_rule_precedence(addresses: list[str], tags: list[str], own: int | None,
                         expected: tuple[int, str]) -> None:
    contact = make_contact(addresses=addresses, tags=tags, cadence_days=own)
    settings_ = effective_settings(contact, make_policy(rules=TABLE_RULES))
    assert (settings_.cadence_days, settings_.source) == expected
    assert not settings_.ignored


def test_within_one_level_the_first_rule_in_the_file_wins() -> None:
    contact = make_contact(addresses=["ann@gmx.de", "ann@bigcorp.example"],
                           tags=["client", "family"])
    rules = [make_rule(tag="family", cadence_days=30), make_rule(match="*@gmx.de", cadence_days=70),
             make_rule(tag="client", cadence_days=45),
             make_rule(match="*@bigcorp.example", cadence_days=60)]
    assert effective_settings(contact, make_policy(rules=rules)).cadence_days == 30
    assert effective_settings(contact, make_policy(rules=rules[1:])).cadence_days == 45
    assert effective_settings(contact, make_policy(rules=[rules[3], rules[1]])).cadence_days == 60


RECRUITERS = make_rule(match="*@recruiter.example", ignore=True)


@pytest.mark.parametrize(("rules", "own", "flag", "expected"), [
    ([RECRUITERS], None, False, (True, "rule *@recruiter.example")),
    # An exception for one person, by address rule or by their own cadence.
    ([RECRUITERS, make_rule(match="jo@recruiter.example", cadence_days=30)], None, False,
     (False, "rule jo@recruiter.example")),
    ([RECRUITERS], 30, False, (False, "your setting for this contact")),
    # A tag rule that only sets a language says nothing about how often.
    ([RECRUITERS, make_rule(tag="client", language="de")], None, False,
     (True, "rule *@recruiter.example")),
    ([make_rule(match="jo@recruiter.example", ignore=True),
      make_rule(match="*@recruiter.example", cadence_days=30)], None, False,
     (True, "rule jo@recruiter.example")),
    # The contact's own ignore beats every rule, and `unignore` (flag off) leaves rules standing.
    ([make_rule(match="jo@recruiter.example", cadence_days=30)], None, True,
     (True, "your setting for this contact")),
    ([], 30, True, (True, "your setting for this contact")),
])
def test_ignore_precedence(rules: list[Rule], own: int | None, flag: bool,
                           expected: tuple[bool, str]) -> None:
    contact = make_contact(addresses=["jo@recruiter.example"], tags=["client"], cadence_days=own,
                           ignored=flag)
    settings_ = effective_settings(contact, make_policy(rules=rules))
    assert (settings_.ignored, settings_.source) == expected
    if settings_.ignored:
        assert state_on(contact, date(2026, 3, 2), make_policy(rules=rules)).status == "ignored"


def test_language_precedence() -> None:
    rules = [make_rule(match="*@bigcorp.example", language="en"),
             make_rule(tag="family", language="de"),
             make_rule(match="ann@bigcorp.example", language="en")]
    policy = make_policy(rules=rules)
    ann = make_contact(addresses=["ann@bigcorp.example"], tags=["family"])
    bob = make_contact(addresses=["bob@bigcorp.example"], tags=["family"])
    assert effective_settings(ann, policy).language == "en"
    assert effective_settings(bob, policy).language == "de"
    assert effective_settings(make_contact(addresses=["bob@bigcorp.example"]),
                              policy).language == "en"
    assert effective_settings(make_contact(addresses=["x@gmx.de"]), policy).language is None
    own = make_contact(addresses=["ann@bigcorp.example"], language="de")
    assert effective_settings(own, policy) == Effective(90, False, "de", "default 90 days")


# --------------------------------------------------------------------------- worked examples

MARCH_2 = datetime(2026, 3, 2, 8, 0, tzinfo=BERLIN)


def test_overdue_example() -> None:
    contact = make_contact(last=datetime(2025, 11, 25, 10, tzinfo=UTC))
    state = evaluate([contact], make_policy(), BERLIN, MARCH_2)[0]
    assert state.status == "overdue"
    assert state.due_date == date(2026, 2, 23)
    assert state.cadence_days == 90
    assert state.reason == ("last exchange 97 days ago (out), past the 90-day line "
                            "on 2026-02-23")
    assert state.urgency == 1 + 7 / 97


def test_due_example_with_rule_in_the_reason() -> None:
    contact = make_contact(last=datetime(2026, 1, 1, 9, tzinfo=UTC), direction="in",
                           addresses=["ann@bigcorp.example"])
    policy = make_policy(rules=[DOMAIN], reply_after=90)
    state = evaluate([contact], policy, BERLIN, MARCH_2)[0]
    assert (state.status, state.due_date) == ("due", date(2026, 3, 2))
    assert state.reason == ("they wrote last, 60 days ago: past the 30-day reply window, so "
                            "their clock runs, reaches the 60-day line (rule *@bigcorp.example) "
                            "on 2026-03-02 (today)")
    assert state.urgency == 1 / 2


def test_waiting_starts_after_reply_after_days() -> None:
    policy = make_policy()
    contact = make_contact(last=datetime(2026, 2, 23, 18, tzinfo=UTC), direction="in")
    assert evaluate([contact], policy, BERLIN, MARCH_2)[0].status == "ok"  # 7 days: not yet
    state = evaluate([contact], policy, BERLIN, MARCH_2 + timedelta(days=1))[0]
    assert state.status == "waiting"
    assert state.reason == "they wrote last, 8 days ago, and are waiting for your reply"
    # They wrote 200 days ago and never got an answer: past the 30-day reply window their
    # clock runs like anyone's (issue 15): a check-in, not an apology.
    old = make_contact(last=datetime(2025, 8, 14, 12, tzinfo=UTC), direction="in")
    assert evaluate([old], policy, BERLIN, MARCH_2)[0].status == "overdue"


def test_the_local_calendar_day_counts_not_utc() -> None:
    # 23:30 UTC on New Year's Eve is already 1 January in Berlin, still 31 December in New York.
    contact = make_contact(last=datetime(2025, 12, 31, 23, 30, tzinfo=UTC))
    berlin = evaluate([contact], make_policy(), BERLIN, MARCH_2)[0]
    new_york = evaluate([contact], make_policy(), NEW_YORK, MARCH_2)[0]
    assert berlin.due_date == date(2026, 4, 1)
    assert new_york.due_date == date(2026, 3, 31)
    assert today(datetime(2026, 3, 1, 23, 30, tzinfo=UTC), BERLIN) == date(2026, 3, 2)


def test_snoozed_and_ignored_examples() -> None:
    last = datetime(2025, 11, 25, 10, tzinfo=UTC)
    snoozed = make_contact(last=last, snooze_until=date(2026, 3, 2))
    state = evaluate([snoozed], make_policy(), BERLIN, MARCH_2)[0]
    assert (state.status, state.due_date) == ("snoozed", date(2026, 2, 23))
    assert state.reason == "snoozed until 2026-03-02; last exchange 97 days ago (out)"
    assert evaluate([snoozed], make_policy(), BERLIN, MARCH_2 + timedelta(days=1))[0].status \
        == "overdue"
    ignored = make_contact(last=last, ignored=True, snooze_until=date(2026, 3, 2))
    state = evaluate([ignored], make_policy(), BERLIN, MARCH_2)[0]
    assert (state.status, state.due_date, state.reason) == (
        "ignored", None, "ignored (your setting for this contact)")


def test_lateness_counts_in_cadences() -> None:
    key_client = make_contact(1, datetime(2025, 12, 18, 12, tzinfo=UTC), tags=["client"])
    acquaintance = make_contact(2, datetime(2025, 2, 10, 12, tzinfo=UTC), cadence_days=365)
    waiting = make_contact(3, datetime(2026, 2, 1, 12, tzinfo=UTC), direction="in")
    due = make_contact(4, datetime(2025, 12, 10, 12, tzinfo=UTC))
    fine = make_contact(5, datetime(2026, 2, 1, 12, tzinfo=UTC))
    states = evaluate([fine, due, acquaintance, key_client, waiting],
                      make_policy(rules=[TAG]), BERLIN, MARCH_2)
    assert [s.status for s in states] == ["ok", "due", "overdue", "overdue", "waiting"]
    assert [s.due_date for s in states[2:4]] == [date(2026, 2, 10), date(2026, 2, 1)]
    assert [s.contact.id for s in ranked(states)] == [3, 1, 2, 4]


# --------------------------------------------------------------------------- picks


@quick
@given(scenes(), st.integers(0, 1439), st.integers(0, 1439), st.integers(1, 5))
def test_picks_are_stable_within_a_day(scene: Scene, early: int, late: int,
                                       daily_picks: int) -> None:
    contacts, policy, tz, now = scene
    day = today(now, tz)
    moments_today = [datetime.combine(day, time(0), tzinfo=tz) + timedelta(minutes=m)
                     for m in (early, late)]
    moments_today = [m for m in moments_today if today(m, tz) == day]  # skip DST gaps
    runs = []
    for moment in moments_today:
        states = evaluate(contacts, policy, tz, moment.astimezone(UTC))
        runs.append((states, pick_today(states, daily_picks, today(moment, tz))))
    for states, picks in runs:
        assert (states, picks) == runs[0]
        # Replies owed are not picks (issue 15): the picks are people to get in touch with.
        candidates = [s for s in ranked(states) if s.status != "waiting"]
        assert len(picks) == min(daily_picks, len(candidates))
        assert len({p.contact.id for p in picks}) == len(picks)
        assert all(p in candidates for p in picks)
        assert picks == sorted(picks, key=lambda s: (-s.urgency, s.contact.id))


def backlog(overdue: int, waiting: int, day: date) -> list[Contact]:
    """Overdue people (written to 100..700 days ago) and people waiting for a reply."""
    contacts = [make_contact(i, noon(day - timedelta(days=100 + 37 * i % 600), BERLIN))
                for i in range(1, overdue + 1)]
    contacts += [make_contact(1000 + i, noon(day - timedelta(days=8 + i), BERLIN), "in")
                 for i in range(waiting)]
    return contacts


@thorough
@given(st.integers(0, 30), st.integers(1, 5), st.data(), st.booleans(),
       st.dates(date(2024, 1, 1), date(2030, 1, 1)))
def test_every_overdue_contact_is_picked_within_ceil_n_over_k_days(
        overdue: int, daily_picks: int, data: st.DataObject, remember: bool, start: date) -> None:
    # Waiting people take no slots (issue 15): a backlog of replies never starves the network.
    waiting = data.draw(st.integers(0, 2 * daily_picks))
    contacts = backlog(overdue, waiting, start)
    days = max(1, math.ceil(overdue / daily_picks))
    history: dict[int, date] | None = {} if remember else None
    seen: set[int] = set()
    for offset in range(days):
        day = start + timedelta(days=offset)
        # Nobody is contacted meanwhile: the statuses stay, only the urgencies grow.
        states = evaluate(contacts, make_policy(picks=daily_picks), BERLIN, noon(day, BERLIN))
        assert sum(s.status == "overdue" for s in states) == overdue
        picks = pick_today(states, daily_picks, day, history)
        assert not any(p.status == "waiting" for p in picks)
        seen |= {p.contact.id for p in picks if p.status == "overdue"}
        if history is not None:
            history.update((p.contact.id, day) for p in picks)
            # The digest and the drafts run later the same day: the same people.
            assert pick_today(states, daily_picks, day, history) == picks
    assert seen == set(range(1, overdue + 1))


def test_rotation_example() -> None:
    # Seven people overdue, three picks a day. The steady order is by last exchange, oldest
    # first: 7, 6, 5, 4, 3, 2, 1; each day the window moves on by three (wrapping around), so
    # everyone is picked within ceil(7 / 3) = 3 days. Picks are listed most urgent first.
    start = date(2026, 3, 2)
    contacts = backlog(7, 0, start)
    picked = []
    for offset in range(4):
        day = start + timedelta(days=offset)
        states = evaluate(contacts, make_policy(), BERLIN, noon(day, BERLIN))
        picked.append([p.contact.id for p in pick_today(states, 3, day)])
    assert picked == [[4, 3, 2], [7, 6, 1], [5, 4, 3], [7, 2, 1]]


def test_due_contacts_fill_the_free_slots_closest_to_the_line_first() -> None:
    day = date(2026, 3, 2)
    contacts = [make_contact(1, noon(day - timedelta(days=120), BERLIN)),
                make_contact(2, noon(day - timedelta(days=80), BERLIN)),
                make_contact(3, noon(day - timedelta(days=88), BERLIN)),
                make_contact(4, noon(day - timedelta(days=30), BERLIN))]
    states = evaluate(contacts, make_policy(), BERLIN, noon(day, BERLIN))
    assert [s.contact.id for s in pick_today(states, 2, day)] == [1, 3]
    assert [s.contact.id for s in pick_today(states, 5, day)] == [1, 3, 2]
    assert pick_today(states, 0, day) == []


def test_history_puts_the_least_recently_picked_first() -> None:
    day = date(2026, 3, 2)
    states = evaluate(backlog(5, 0, day), make_policy(), BERLIN, noon(day, BERLIN))
    history = {1: day - timedelta(days=1), 2: day - timedelta(days=9), 3: day - timedelta(days=3),
               4: day - timedelta(days=2)}
    assert {s.contact.id for s in pick_today(states, 2, day, history)} == {5, 2}
    history[4] = day  # already picked today, say by this morning's digest
    assert {s.contact.id for s in pick_today(states, 2, day, history)} == {4, 5}
