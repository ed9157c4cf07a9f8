"""`followup demo`: the generated mailbox, the whole loop, and the CLI end to end."""

from __future__ import annotations

import email
import email.policy
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import imapclient
import keyring
import pytest

from agent.demo import DemoSession
from agent.demo_mail import ME, STORIES, generate
from agent.digest import DIGEST_HEADER
from tests.kit import run_cli
from tests.servers.keyring import MemoryKeyring

NOW = datetime(2026, 3, 10, 8, 15, tzinfo=UTC)
NOW_TEXT = "2026-03-10T08:15:00Z"
# The demo's digest uses the machine's zone (TZ first): pin it, as the clock is pinned.
ZONE = "Europe/Berlin"


def parse(raw: bytes) -> email.message.EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    return message


def test_generated_mailbox_is_realistic_and_deterministic() -> None:
    box = generate(NOW)
    again = generate(NOW)
    assert [m.raw for m in box.messages] == [m.raw for m in again.messages]

    assert len(box.people) == sum(count for _, count, _ in STORIES) == 60
    languages = Counter(p.language for p in box.people)
    assert languages["de"] > 20 and languages["en"] > 20
    assert len({p.address for p in box.people}) == 60
    assert all(p.address.split("@")[1].endswith(".example") for p in box.people)
    assert any(re.search("[äöüßÄÖÜ]", p.name) for p in box.people)

    raws = [m.raw for m in box.messages]
    assert all(b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"") for raw in raws)
    # Umlauts in names and subjects travel as encoded words; bodies are 8-bit UTF-8.
    assert all(raw.split(b"\r\n\r\n", 1)[0].isascii() for raw in raws)
    assert any(not raw.isascii() for raw in raws)
    assert any(b"=?utf-8?" in raw.lower() for raw in raws)
    assert sum(b"List-Id:" in raw for raw in raws) > 50
    assert any(b"Auto-Submitted: auto-replied" in raw for raw in raws)
    folders = Counter(m.folder for m in box.messages)
    assert set(folders) == {"INBOX", "Sent", "Junk"}
    assert 600 < len(box.messages) < 2000
    # Two years, nothing in the future, INTERNALDATE and Date agree.
    assert all((NOW - m.when).days <= 800 and m.when < NOW for m in box.messages)
    for item in box.messages[:50]:
        assert parse(item.raw)["Date"].datetime == item.when


def test_demo_session_runs_the_loop_against_its_server(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FOLLOWUP_IMAP_PASSWORD", "the user's own, untouched")
    monkeypatch.setenv("TZ", ZONE)
    before = keyring.get_keyring()
    with DemoSession(NOW, language="de", directory=tmp_path) as session:
        result = session.run()
        stories = {p.address: p.story for p in generate(NOW).people}

        # Today's picks are people to get in touch with (the most overdue); the two waiting
        # for a reply have their own section and their own drafts (issue 15).
        picks = result.picks
        assert [s.status for s in picks] == ["overdue", "overdue", "overdue"]
        assert [stories[s.contact.email] for s in picks] == ["overdue", "overdue", "overdue"]
        assert [stories[s.contact.email] for s in result.replies] == ["waiting", "waiting"]
        statuses = Counter(s.status for s in result.states)
        assert statuses["overdue"] >= 10 and statuses["due"] >= 5 and statuses["ok"] >= 20
        # One-way correspondents, lists and machines are not contacts.
        contacts = {s.contact.email for s in result.states}
        assert all(stories.get(a) not in ("inbound", "outbound") for a in contacts)
        assert not any("example" in a and a.split("@")[0] in ("noreply", "no-reply")
                       for a in contacts)
        assert len(contacts) == sum(c for story, c, _ in STORIES
                                    if story not in ("inbound", "outbound"))

        # The digest is in the demo INBOX and in the HTML file; it names every pick.
        client = imapclient.IMAPClient(session.host, port=session.port, ssl=False)
        client.login(session.username, session.password)
        client.select_folder("INBOX", readonly=True)
        uids = client.search(["HEADER", DIGEST_HEADER, ""])
        assert len(uids) == 1
        digest = parse(client.fetch(uids, ["BODY.PEEK[]"])[uids[0]][b"BODY[]"])
        assert digest["To"].addresses[0].addr_spec == ME
        # Addresses may wrap after "@" and before dots (<wbr>), never inside a word.
        html = re.sub(r"<wbr>|</?span[^>]*>", "", result.html_path.read_text(encoding="utf-8"))
        for state in [*picks, *result.replies]:
            assert state.contact.email in result.digest_text
            assert state.contact.email in html

        # A draft for each pick and reply in the Drafts folder, addressed to the contact.
        client.select_folder("Drafts", readonly=True)
        drafts = client.fetch(client.search("ALL"), ["BODY.PEEK[]", "FLAGS"])
        client.logout()
        assert len(drafts) == 5 == len(result.drafts)
        recipients = set()
        ours = {d.message_id for d in result.drafts}
        for data in drafts.values():
            assert b"\\Draft" in data[b"FLAGS"]
            message = parse(data[b"BODY[]"])
            assert str(message["Message-ID"]).strip("<>") in ours  # known by its Message-ID
            assert not [name for name in message if name.lower().startswith("x-followup")]
            recipients.add(message["To"].addresses[0].addr_spec)
        assert recipients == {s.contact.email for s in [*picks, *result.replies]}
        assert result.cycle.digest is not None and result.cycle.digest.delivered

    # Nothing of the user's was changed, and the password never reached a keyring.
    assert os.environ["FOLLOWUP_IMAP_PASSWORD"] == "the user's own, untouched"
    assert keyring.get_keyring() is before
    assert MemoryKeyring.contents() == {}


def test_demo_without_pymap_says_what_to_install(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "pymap", None)  # as if it were not installed
    code, _, err = run_cli(["demo"], capsys)
    assert code == 2
    assert err.count("\n") == 1
    assert "install followup-agent[demo]" in err


@pytest.mark.slow
def test_followup_demo_end_to_end(tmp_path: Path) -> None:
    """What `make demo` runs: the real command in a fresh process, then a mail client's look."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "150", "LANG": "C.UTF-8",
           "FOLLOWUP_CONFIG": str(tmp_path / "nothing-here.toml"), "TMPDIR": str(tmp_path),
           "TZ": ZONE}
    env.pop("FOLLOWUP_IMAP_PASSWORD", None)
    started = time.monotonic()
    # A fixed day: which contacts are picked depends on the date and the time of day.
    process = subprocess.Popen([sys.executable, "-m", "agent", "--now", NOW_TEXT, "demo",
                                "--keep-running"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=env, cwd=tmp_path)
    lines: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if line.startswith("Press Ctrl-C"):
                break
        elapsed = time.monotonic() - started
        out = "".join(lines)
        assert "Press Ctrl-C" in out, out + (process.stderr.read() if process.stderr else "")
        assert elapsed < 45, f"the demo took {elapsed:.0f} s"

        # What it printed: contacts, picks, the text digest, the HTML file, the drafts.
        assert re.search(r"Contacts: \d+ people", out)
        picks = re.findall(r"^  \d\. (.+) <(.+@.+)>: (waiting|overdue|due);", out, re.M)
        assert [p[2] for p in picks] == ["overdue", "overdue", "overdue", "waiting", "waiting"]
        assert "The digest (delivered to the demo INBOX)" in out
        assert "people to contact today" in out
        html = Path(re.search(r"^HTML digest: (.+)$", out, re.M)[1])  # type: ignore[index]
        assert "<html" in html.read_text(encoding="utf-8").lower()
        assert html.is_relative_to(tmp_path)
        assert "Drafts now in the demo Drafts folder (5)" in out
        assert {a for _, a, _ in picks} == set(re.findall(r"^  To: .*<(.+)>$", out, re.M))

        # A mail client sees the digest in INBOX and the drafts in Drafts.
        server = re.search(r"server (\S+)\s+port (\d+)", out)
        login = re.search(r"user (\S+)\s+password (\S+)", out)
        assert server and login
        with imapclient.IMAPClient(server[1], port=int(server[2]), ssl=False) as client:
            client.login(login[1], login[2])
            client.select_folder("INBOX", readonly=True)
            assert len(client.search(["HEADER", DIGEST_HEADER, ""])) == 1
            client.select_folder("Drafts", readonly=True)
            drafts = client.fetch(client.search("ALL"), ["BODY.PEEK[HEADER]"])
            to = {parse(d[b"BODY[HEADER]"])["To"].addresses[0].addr_spec
                  for d in drafts.values()}
            assert to == {a for _, a, _ in picks}

        process.send_signal(signal.SIGINT)
        process.wait(timeout=15)
        assert process.returncode == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert not (tmp_path / "nothing-here.toml").exists()
