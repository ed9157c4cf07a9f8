"""What the address book means for the decisions (pure): birthdays, people with no contact on
record, tags from CATEGORIES, the touchpoint clock; and how the digest shows them."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from agent import digest, policy
from agent.config import Config
from agent.model import Contact, Phone
from agent.plan import Plan
from agent.render import Renderer
from tests.addressbook_cards import book_config
from tests.kit import make_contact

TZ = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
DAY = date(2026, 3, 1)
NEVER = datetime.min.replace(tzinfo=UTC)


def config(extra: str = "", language: str = "en") -> Config:
    return book_config(extra, language=language)


def person(contact_id: int, days_ago: int | None, **values: object) -> Contact:
    """A contact with mail ``days_ago`` (both ways), or None: known only from a card."""
    mail = days_ago is not None
    when = NOW - timedelta(days=days_ago or 0) if mail else NEVER
    base = make_contact(contact_id, when, "out", (f"p{contact_id}@example.org",),
                        name=f"Person {contact_id}", subject="Hi" if mail else "",
                        message_id=None, messages=(int(mail), int(mail)))
    return replace(base, last_in=when if mail else None, last_out=when if mail else None,
                   **values)  # type: ignore[arg-type]


def states(contacts: list[Contact], extra: str = "") -> list[policy.ContactState]:
    return policy.evaluate(contacts, config(extra).policy, TZ, NOW)


def test_next_birthday_with_and_without_year_and_on_29_february() -> None:
    assert policy.next_birthday("1980-03-03", DAY) == date(2026, 3, 3)
    assert policy.next_birthday("--02-14", DAY) == date(2027, 2, 14)
    assert policy.next_birthday("2000-02-29", DAY) == date(2027, 2, 28)
    assert policy.next_birthday("2000-02-29", date(2028, 2, 1)) == date(2028, 2, 29)
    assert policy.next_birthday(None, DAY) is None


def test_a_birthday_today_or_tomorrow_is_a_pick_even_when_not_due() -> None:
    people = [person(1, 200), person(2, 150), person(3, 120),  # three overdue
              person(4, 10, birthday="1990-03-02"),  # ok, birthday tomorrow
              person(5, 10, birthday="1990-03-03"),  # ok, in two days: listed, not picked
              person(6, 10, birthday="1990-03-01", snooze_until=date(2026, 3, 10))]
    found = states(people)
    picks = policy.pick_today(found, 3, DAY)
    assert 4 in {s.contact.id for s in picks} and len(picks) == 3
    upcoming = policy.upcoming_birthdays(found, DAY, 7)
    assert [(s.contact.id, when) for s, when in upcoming] == [
        (4, date(2026, 3, 2)), (5, date(2026, 3, 3))]  # the snoozed one is left out


def test_no_contact_on_record_comes_up_one_a_day_and_never_instead_of_someone_due() -> None:
    book_only = [person(i, None) for i in (10, 11, 12)]
    found = states(book_only)
    assert {(s.status, s.due_date, s.reason) for s in found} == {("ok", None, policy.NO_RECORD)}
    # One a day, in turn: over three days each of the three once.
    picked = [policy.pick_today(found, 3, DAY + timedelta(days=n))[0].contact.id
              for n in range(3)]
    assert sorted(picked) == [10, 11, 12]
    # With a history, the one picked longest ago (never first).
    history = {10: DAY - timedelta(days=1), 11: DAY - timedelta(days=5)}
    assert policy.pick_today(found, 3, DAY, history)[0].contact.id == 12
    # Someone due takes the slots first.
    crowded = states([*book_only, person(1, 200), person(2, 150), person(3, 120)])
    assert {s.contact.id for s in policy.pick_today(crowded, 3, DAY)} == {1, 2, 3}


def test_the_clock_runs_from_a_touchpoint_when_there_is_one() -> None:
    called = person(7, None, last_touch=NOW - timedelta(days=100))
    (state,) = states([called])
    assert state.status == "overdue" and state.due_date == DAY - timedelta(days=10)
    assert state.reason.startswith("last touchpoint 100 days ago")


def test_card_tags_drive_tag_rules_and_stay_apart_from_the_users_tags() -> None:
    rule = '[[policy.rule]]\ntag = "kunden"\ncadence_days = 30\n'
    client = person(8, 50, card_tags=frozenset({"kunden"}))
    (state,) = states([client], rule)
    assert (state.status, state.cadence_days) == ("overdue", 30)
    assert client.tags == frozenset() and client.all_tags == {"kunden"}


@pytest.mark.parametrize("language", ["en", "de"])
def test_the_digest_shows_birthday_and_book_only_picks_and_the_week(language: str) -> None:
    settings = config(language=language)
    birthday = person(4, 10, name="Anna Berg", birthday="1980-03-02")
    oma = person(10, None, name="Oma Hilde", email="", addresses=(),
                 phones=(Phone("+4930987654", "home"),))
    found = policy.evaluate([birthday, oma], settings.policy, TZ, NOW)
    plan = Plan(day=DAY, states=found, due=[], picks=found,
                birthdays=policy.upcoming_birthdays(found, DAY, 7))
    rendered = digest.render(settings, plan, NOW, Renderer(settings))
    assert not rendered.problems
    words = {"en": ("Birthday tomorrow", "No contact on record", "No mail yet",
                    "Phone +4930987654", "Birthdays this week", "(turns 46)"),
             "de": ("Hat morgen Geburtstag", "Noch kein Kontakt verzeichnet", "Noch keine Mail",
                    "Tel. +4930987654", "Geburtstage diese Woche", "(46 Jahre)")}[language]
    for text in (rendered.text, rendered.html):
        for word in words:
            assert word in text, (word, text)
    assert "mailto:?" not in rendered.html and 'href="mailto:"' not in rendered.html
