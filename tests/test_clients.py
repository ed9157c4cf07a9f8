"""The digest and the drafts as real mail clients see them (issue 19): byte-level checks of
every mailto and draft header, drafts in the conversation's language, and the HTML digest at
phone width in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from agent import digest, policy, service
from agent.config import Config, load_config
from agent.model import Contact
from agent.plan import Plan
from agent.render import Renderer
from agent.store import Store
from tests.browser import browser_session, dump_dom
from tests.kit import ME, drafts_of, make_config, make_contact, message, write_config
from tests.servers.account import ImapAccount

NOW = datetime(2026, 11, 26, 6, 30, tzinfo=UTC)  # 07:30 in Berlin
REPO = Path(__file__).resolve().parent.parent
LONG = "anna-katharina.schmidt-mueller@marketing-abteilung.grossunternehmen-beispiel.example"


def ago(days: int) -> datetime:
    return NOW - timedelta(days=days, hours=3)


PEOPLE = [
    make_contact(1, ago(12), "in", ("juergen@example.net",), name="Jürgen Weiß",
                 subject="Angebot für März?", message_id="m1@example.net"),
    make_contact(2, ago(100), "out", (LONG,), name="Anna-Katharina Schmidt-Müller",
                 subject="Fotos & Rechnung"),
    make_contact(3, ago(95), "out", ("zoe+work@example.org",), name="Zoë O'Brien",
                 subject="Re: Fotos"),
    make_contact(4, ago(120), "out", ("ann@studio.example",), name="Ann Example"),
    make_contact(5, ago(89), "in", ("carl@example.com",), name="Carl Diaz", subject="Hi"),
]


def plan_of(config: Config, people: list[Contact] = PEOPLE) -> Plan:
    states = policy.evaluate(people, config.policy, config.digest.tz, NOW)
    day = policy.today(NOW, config.digest.tz)
    picks = policy.pick_today(states, config.policy.daily_picks, day)
    return Plan(day=day, states=states, due=policy.ranked(states), picks=picks,
                replies=policy.replies_today(states, config.digest.max_replies, picks))


def hrefs(html: str) -> list[str]:
    return [unquote_entities(h) for h in re.findall(r'href="([^"]*)"', html)]


def unquote_entities(value: str) -> str:
    return value.replace("&amp;", "&").replace("&#34;", '"').replace("&#39;", "'")


# --------------------------------------------------------------------------- mailto links


@pytest.mark.parametrize("language", ["de", "en"])
def test_every_mailto_of_the_digest_parses_and_threads(language: str) -> None:
    config = make_config(language=language)
    rendered = digest.render(config, plan_of(config), NOW, Renderer(config))
    links = [h for h in hrefs(rendered.html) if h.startswith("mailto:")]
    links += re.findall(r"mailto:\S+", rendered.text)
    assert len(links) >= 6
    replies = 0
    for link in links:
        parts = urlsplit(link)  # RFC 6068: mailto:addr?hfields, every value percent-encoded
        assert parts.scheme == "mailto" and not parts.netloc and not parts.fragment
        address = unquote(parts.path)
        assert re.fullmatch(r"[^@\s<>]+@[^@\s<>]+", address), link
        fields = parse_qs(parts.query, strict_parsing=bool(parts.query))
        # One-click actions go to the user, with a body holding their command.
        own = {"body"} if address == ME else set()
        assert set(fields) <= {"subject", "In-Reply-To", *own}, link
        for value in fields.get("In-Reply-To", []):
            assert value.startswith("<") and value.endswith(">"), link
            assert value in {"<m1@example.net>", "<m5@example.net>"}
            replies += 1
        assert all(len(values) == 1 for values in fields.values())
    assert replies >= 2  # the replies owed, in the HTML and in the text part


def test_a_pick_with_a_prepared_draft_points_to_it_not_to_a_blank_draft() -> None:
    config = make_config(language="de")
    plan = plan_of(config)
    drafted = plan.picks[0].contact
    rendered = digest.render(config, plan, NOW, Renderer(config),
                             drafts={drafted.id: "INBOX.Entwürfe"})
    assert "Dein Entwurf liegt im Ordner „Entwürfe“" in rendered.text
    assert f"mailto:{drafted.email}" not in rendered.text
    assert f"mailto:{drafted.email}" not in rendered.html
    assert "Ordner <b>Entwürfe</b>" in rendered.html
    # The others keep their link: they have no draft to open.
    for state in plan.picks[1:]:
        assert f"mailto:{state.contact.email}" in rendered.text.replace("%2B", "+")
    # No promise of drafts for everyone on the list.
    assert "Für jeden von ihnen" not in rendered.text


# --------------------------------------------------------------------------- drafts in Drafts


def converse(account: ImapAccount, person: str, subjects: list[str], days: int,
             *, references: str = "", last_id: str | None = None) -> None:
    """Mail both ways with ``person``, the last one from them ``days`` ago."""
    items = []
    for n, subject in enumerate(subjects):
        when = NOW - timedelta(days=days + 2 * (len(subjects) - n))
        items.append((account.sent_folder, message(sender=ME, to=[person], subject=subject,
                                                   when=when), ("\\Seen",), when))
    when = NOW - timedelta(days=days)
    headers = [("References", references)] if references else []
    items.append(("INBOX", message(sender=person, subject=f"Re: {subjects[-1]}", when=when,
                                   message_id=last_id, headers=headers), ("\\Seen",), when))
    account.append_many(items)


def test_a_draft_carries_no_mark_of_followup_and_the_whole_thread(
        dovecot_account: ImapAccount, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    converse(dovecot_account, "Jürgen <juergen@example.net>", ["Angebot für Fotos"], 100,
             references="<first@example.net> <second@example.net>", last_id="parent")
    config = load_config(write_config(monkeypatch, dovecot_account, tmp_path))
    result = service.run_drafts(config, NOW)
    assert len(result.created) == 1
    draft = drafts_of(dovecot_account)["juergen@example.net"]
    assert not [name for name in draft if name.lower().startswith("x-")]
    ident = str(draft["Message-ID"])
    assert "followup" not in ident.lower() and ident.endswith("@example.org>")
    assert draft["In-Reply-To"] == "<parent@test>"
    # RFC 5322 3.6.4: the parent's References, then the parent's Message-ID.
    assert str(draft["References"]).split() == [
        "<first@example.net>", "<second@example.net>", "<parent@test>"]


@pytest.mark.parametrize("setting", ["de", "en"])
def test_every_draft_is_in_the_language_of_its_conversation(
        dovecot_account: ImapAccount, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        setting: str) -> None:
    """George Quinn writes English from a .de address; Heike writes German from a .com one."""
    people = {
        "George Quinn <george@studio-quinn.de>": (
            ["Product shots – briefing", "Image selection for the catalogue"], "en"),
        "Heike Brandt <heike@brightmedia.com>": (
            ["Angebot für die Hochzeitsreportage", "Termin nächste Woche"], "de"),
        "Jürgen Weiß <juergen@example.de>": (
            ["Fotos vom Sommerfest", "Kurze Frage zu den Bildern"], "de"),
        "Oliver Smith <oliver@acme.example>": (
            ["Quote for the wedding", "Thanks for the lovely photos!"], "en"),
    }
    for days, (person, (subjects, _)) in enumerate(people.items(), start=100):
        converse(dovecot_account, person, subjects, days)
    config = load_config(write_config(
        monkeypatch, dovecot_account, tmp_path, language=setting,
        extra="\n[policy]\ndaily_picks = 4\n\n[drafts]\nmax_per_day = 4\n"))
    result = service.run_drafts(config, NOW)
    assert len(result.created) == 4
    by_address = {d.address: d for d in result.created}
    for person, (_, language) in people.items():
        address = person.split("<")[1].rstrip(">")
        assert by_address[address].language == language, (person, setting)
        greeting = drafts_of(dovecot_account)[address].get_content().split(",")[0]
        assert greeting.startswith("Hallo" if language == "de" else "Hi"), greeting


def test_the_daily_cycle_drafts_first_and_the_digest_points_to_each_draft(
        dovecot_account: ImapAccount, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for days, person in enumerate(["Anna <anna@example.com>", "Ben <ben@example.com>",
                                   "Cleo <cleo@example.com>"], start=100):
        converse(dovecot_account, person, ["Hello"], days)
    config = load_config(write_config(monkeypatch, dovecot_account, tmp_path, language="de"))
    result = service.run_cycle(config, NOW)
    assert result.drafts is not None and len(result.drafts.created) == 3
    assert result.digest is not None and result.digest.delivered
    text = result.digest.text or ""
    assert text.count(f"Dein Entwurf liegt im Ordner „{dovecot_account.drafts_folder}“") == 3
    # No link opens a blank message to a picked person; the one-click links go to the user.
    picks = text.split("Außerdem fällig")[0]
    assert set(re.findall(r"mailto:([^?\s]+)", picks)) <= {ME}
    with Store(config.storage.path) as store:
        assert {d.state for d in store.journal.drafts()} == {"pending"}


# --------------------------------------------------------------------------- phone width


# Chromium's windows are at least 500 px wide: the digest is shown in a 420 px frame, and
# measures itself there (file pages may read each other with --allow-file-access-from-files).
FRAME = """<html><body style="margin:0">
<iframe src="digest.html" style="width:420px;height:2400px;border:0"></iframe>
<pre id="report">not measured</pre></body></html>"""
REPORT = """
<script>
(function () {
  var report = {width: window.innerWidth, scroll: document.documentElement.scrollWidth,
                broken: [], parts: 0};
  var walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  var node;
  while ((node = walker.nextNode())) {
    var holder = node.parentElement;
    if (!holder || holder.style.whiteSpace !== "nowrap") continue;  // parts of addresses
    report.parts += 1;
    var range = document.createRange();
    range.selectNodeContents(node);
    var tops = {};
    Array.prototype.forEach.call(range.getClientRects(), function (r) {
      tops[Math.round(r.top)] = true;
    });
    if (Object.keys(tops).length > 1) report.broken.push(node.textContent);
  }
  window.parent.document.getElementById("report").textContent = JSON.stringify(report);
})();
</script>
"""


@pytest.mark.integration
def test_the_html_digest_at_phone_width(tmp_path: Path) -> None:
    """420 px: no horizontal scrolling, and no address broken inside a word."""
    config = make_config(language="de")
    html = digest.render(config, plan_of(config), NOW, Renderer(config)).html
    assert LONG.split("@", maxsplit=1)[0] in html
    (tmp_path / "digest.html").write_text(html.replace("</body>", REPORT + "</body>"),
                                          encoding="utf-8")
    frame = tmp_path / "frame.html"
    frame.write_text(FRAME, encoding="utf-8")
    shot = tmp_path / "digest-420px.png"
    args = ("--window-size=500,2400", "--allow-file-access-from-files")
    with browser_session(tmp_path) as binary:
        dom = dump_dom(binary, frame, tmp_path / "profile", extra=(*args, "--dump-dom"))
        dump_dom(binary, frame, tmp_path / "profile2", extra=(*args, f"--screenshot={shot}"))
    found = re.search(r'<pre id="report">([^<]*)</pre>', dom)
    assert found, dom[-500:]
    report = json.loads(found[1].replace("&quot;", '"'))
    assert report["width"] == 420, report
    assert report["scroll"] <= report["width"], report  # nothing wider than the screen
    assert report["parts"] >= 10, report  # the addresses' parts were found and measured
    assert report["broken"] == [], report  # an address wraps only after @ or before a dot
    # The screenshot stays as an artefact of the run (build/ is not in git).
    artefacts = REPO / "build" / "test-artefacts"
    artefacts.mkdir(parents=True, exist_ok=True)
    assert shot.stat().st_size > 10_000
    shutil.copy(shot, artefacts / shot.name)
