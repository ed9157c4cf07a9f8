"""The digest hands over the phone, and replies owed have their own place (issue 15).

Replies owed only within [policy] reply_window_days, in their own section with their own
cap ([digest] max_replies), so a backlog of replies never takes the picks; [digest] prefer =
"call" puts the picks with a number first and says "call"; every pick with a number has a
Call link (tel:) beside Write/Reply and the number in the text part.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent import digest, policy
from agent.config import Config
from agent.configspec import render_example
from agent.errors import ConfigError
from agent.model import Contact, Phone
from agent.plan import Plan
from agent.render import Renderer
from tests.kit import make_config, make_contact

NOW = datetime(2026, 12, 3, 6, 30, tzinfo=UTC)  # 07:30 in Berlin


def ago(days: int) -> datetime:
    return NOW - timedelta(days=days, hours=3)


def with_phone(contact: Contact, number: str, kind: str = "cell",
               source: str = "signature") -> Contact:
    return Contact(**{**contact.__dict__, "phones": (Phone(number, kind, source, ago(10)),)})


PEOPLE = [
    make_contact(1, ago(130), "out", ("anna@studio.example",), name="Anna Berg"),
    with_phone(make_contact(2, ago(110), "out", ("bernd@firma.example",), name="Bernd Weber"),
               "+49301234567", "work"),
    with_phone(make_contact(3, ago(100), "in", ("clara@agentur.example",), name="Clara Vogel",
                            subject="Angebot"), "+491712345678"),
    make_contact(4, ago(12), "in", ("dora@example.net",), name="Dora Fink", subject="Frage"),
    with_phone(make_contact(5, ago(20), "in", ("emil@example.net",), name="Emil Ernst",
                            subject="Termin"), "+447700900123"),
    make_contact(6, ago(85), "out", ("fritz@example.net",), name="Fritz Fuchs"),
]


def plan_for(config: Config, people: list[Contact] = PEOPLE) -> Plan:
    """What agent.plan.make_plan decides, from contacts instead of a store."""
    states = policy.evaluate(people, config.policy, config.digest.tz, NOW)
    day = policy.today(NOW, config.digest.tz)
    picks = policy.pick_today(states, config.policy.daily_picks, day)
    replies = policy.replies_today(states, config.digest.max_replies, picks)
    if config.digest.prefer == "call":
        picks, replies = policy.call_first(picks), policy.call_first(replies)
    return Plan(day=day, states=states, due=policy.ranked(states), picks=picks,
                replies=replies)


def test_a_reply_is_owed_only_within_the_window() -> None:
    config = make_config(extra="\n[policy]\nreply_window_days = 30\n")
    plan = plan_for(config)
    statuses = {s.contact.id: s.status for s in plan.states}
    assert statuses[4] == statuses[5] == "waiting"  # 12 and 20 days: replies owed
    assert statuses[3] == "overdue"  # wrote 100 days ago: the clock runs like anyone's
    reason = next(s.reason for s in plan.states if s.contact.id == 3)
    assert "past the 30-day reply window" in reason
    assert [s.contact.id for s in plan.replies] == [5, 4]  # the older message first
    assert [s.contact.id for s in plan.picks] == [1, 2, 3]  # people to get in touch with
    assert [s.contact.id for s in plan.rest] == [6]
    # A wider window: Clara is owed a reply again.
    wide = make_config(extra="\n[policy]\nreply_window_days = 120\n")
    assert {s.contact.id for s in plan_for(wide).replies} == {3, 4, 5}


def test_replies_have_their_own_cap() -> None:
    config = make_config(extra="max_replies = 1\n")
    plan = plan_for(config)
    assert [s.contact.id for s in plan.replies] == [5]
    assert 4 in {s.contact.id for s in plan.rest}  # the reply that did not fit is listed
    none = plan_for(make_config(extra="max_replies = 0\n"))
    assert none.replies == [] and len(none.picks) == 3


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 25), st.integers(1, 6), st.integers(1, 5))
def test_a_backlog_of_replies_never_starves_the_network(waiting: int, overdue: int,
                                                        daily_picks: int) -> None:
    people = [make_contact(100 + i, ago(8 + i % 20), "in", (f"w{i}@example.net",))
              for i in range(waiting)]
    people += [make_contact(i + 1, ago(100 + i), "out", (f"o{i}@example.net",))
               for i in range(overdue)]
    config = make_config(extra=f"\n[policy]\ndaily_picks = {daily_picks}\n")
    plan = plan_for(config, people)
    assert len(plan.picks) == min(daily_picks, overdue)
    assert all(s.status == "overdue" for s in plan.picks)
    assert len(plan.replies) == min(3, waiting)


def test_prefer_call_puts_the_picks_with_a_number_first_among_equals() -> None:
    mail = plan_for(make_config())
    assert [s.contact.id for s in mail.picks] == [1, 2, 3]  # most overdue first
    call = plan_for(make_config(extra='prefer = "call"\n'))
    assert [s.contact.id for s in call.picks] == [2, 3, 1]  # the same people, callers first
    assert [s.contact.id for s in call.replies] == [5, 4]
    # Among equals only: a due person with a number stays behind the overdue.
    due = with_phone(make_contact(7, ago(80), "out", ("gina@example.net",)), "+49301111111")
    ranked = policy.call_first(policy.evaluate([PEOPLE[0], due], make_config().policy,
                                               make_config().digest.tz, NOW))
    assert [s.contact.id for s in ranked] == [1, 7]


@pytest.mark.parametrize("language", ["de", "en"])
def test_the_digest_says_call_and_hands_over_the_number(language: str) -> None:
    config = make_config(language=language, extra='prefer = "call"\n')
    rendered = digest.render(config, plan_for(config), NOW, Renderer(config))
    call, write, replies = {"de": ("Ruf heute an:", "Heute schreiben:", "Offene Antworten (2)"),
                            "en": ("Call today:", "Write today:", "Replies owed (2)")}[language]
    assert rendered.subject.startswith(f"{call} Bernd Weber, Clara Vogel (+1), 2 ")
    text = rendered.text
    assert text.index(call) < text.index("Bernd Weber") < text.index("Clara Vogel") \
        < text.index(write) < text.index("Anna Berg") < text.index(replies) \
        < text.index("Emil Ernst") < text.index("Dora Fink")
    number = {"de": "Anrufen: +49 30 1234567 (aus der Signatur)",
              "en": "Call: +49 30 1234567 (from their signature)"}[language]
    assert number in text
    # HTML: a Call button (tel:) beside Write, and it leads.
    html = rendered.html[rendered.html.index("<body"):]
    card = html[html.index("Bernd Weber"):html.index("Clara Vogel")]
    links = re.findall(r'<a href="([^"]*)" data-action="(\w+)" style="([^"]*)"', card)
    assert [(href, action) for href, action, _ in links] == [
        ("tel:+49301234567", "call"), ("mailto:bernd@firma.example", "write")]
    assert "background:#0969da" in links[0][2] and "background:#ffffff" in links[1][2]
    assert ">+49 30 1234567</a>" in card  # the number itself, tappable
    # A reply owed with a number: Call beside Reply.
    emil = html[html.index("Emil Ernst"):]
    assert [a for _, a, _ in re.findall(r'<a href="([^"]*)" data-action="(\w+)" style="([^"]*)"',
                                        emil)][:2] == ["call", "reply"]


def test_with_prefer_mail_the_words_stay_and_write_leads() -> None:
    config = make_config(language="de")
    rendered = digest.render(config, plan_for(config), NOW, Renderer(config))
    assert rendered.subject.startswith("3 Kontakte für heute, 2 offene Antworten – ")
    assert "Heute melden:" in rendered.text and "Ruf heute an" not in rendered.text
    assert "Anrufen: +49 30 1234567" in rendered.text  # the number is there all the same
    links = re.findall(r'data-action="(\w+)" style="([^"]*)"', rendered.html)
    call = next(style for action, style in links if action == "call")
    assert "background:#ffffff" in call  # the Call button is the second one


def test_no_call_link_for_a_fax_and_nothing_but_digits_in_a_tel_url() -> None:
    fax = with_phone(make_contact(8, ago(120), "out", ("hans@example.net",)), "+49301234569",
                     "fax", "addressbook")
    config = make_config()
    rendered = digest.render(config, plan_for(config, [fax]), NOW, Renderer(config))
    assert "tel:" not in rendered.html and "+49 30 1234569" not in rendered.text
    assert digest.tel("+49 30 123\" onclick=\"x") == "tel:+4930123"
    assert digest.tel("") == "" and digest.tel("030 1234") == ""


def test_only_replies_today() -> None:
    config = make_config(language="en")
    plan = plan_for(config, [PEOPLE[3]])
    rendered = digest.render(config, plan, NOW, Renderer(config))
    assert rendered.subject.startswith("1 reply owed – ")
    assert "Nobody is due today" not in rendered.text
    assert "1 reply owed</h1>" in rendered.html.replace("\n", "")


def test_the_new_keys_are_checked_and_documented() -> None:
    config = make_config()
    assert (config.policy.reply_window_days, config.digest.max_replies,
            config.digest.prefer) == (30, 3, "mail")
    with pytest.raises(ConfigError) as caught:
        make_config(extra='prefer = "phone"\nmax_replies = -1\n[policy]\nreply_window_days = 0\n')
    problems = "\n".join(caught.value.problems)
    assert "[digest] prefer" in problems and "call, mail" in problems
    assert "[digest] max_replies" in problems and "[policy] reply_window_days" in problems
    example = render_example()
    for key in ("reply_window_days = 30", "max_replies = 3", 'prefer = "mail"'):
        assert f"# {key}" in example
