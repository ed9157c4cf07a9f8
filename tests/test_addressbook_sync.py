"""Address books synced into the store: a vdir, a .vcf file and a real CardDAV server (Radicale)
give the same people; cards join contacts, a split survives, a deleted card takes back what
it gave; incremental CardDAV; failures are one line each and keep what was read."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from agent import cardsync, decisions, plan, policy
from agent.config import Config
from agent.model import Contact, ExchangeRow, MessageRow
from agent.store import Store
from tests.addressbook_cards import ANNA, CARLA, GOOD_CARDS, book_config, write_vcf, write_vdir
from tests.carddav_server import CardDavAccount, free_port

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)  # a Sunday; Anna's birthday is on 3 March

MAIL = {  # address → display name in mail; each gets one exchange each way
    "anna@studio.example": "A. Berg (Studio)",
    "anna.private@gmx.de": "anna",
    "juergen@example.de": "JM",
    "carla@firma.example": "Carla C.",
    "dora@example.com": "Dora Dahl",
}


def make_config(tmp_path: Path, books: str, extra: str = "") -> Config:
    return book_config(extra + "\n" + books, database=tmp_path / "followup.db")


def book_for(kind: str, tmp_path: Path, account: CardDavAccount | None = None,
             cards: dict[str, str] | None = None) -> str:
    cards = GOOD_CARDS if cards is None else cards
    if kind == "vdir":
        return f'[[addressbook]]\npath = "{write_vdir(tmp_path / "vdir", cards)}"\n'
    if kind == "vcf":
        path = write_vcf(tmp_path / "all.vcf", list(cards.values()))
        return f'[[addressbook]]\npath = "{path}"\n'
    assert account is not None
    for name, text in cards.items():
        account.put(name, text)
    url = account.collection if kind == "carddav" else account.base
    ca = f'ca_file = "{account.ca_file}"\n' if account.ca_file else ""
    return (f'[[addressbook]]\nname = "dav"\nurl = "{url}"\nusername = "{account.username}"\n'
            f'password_command = "printf {account.password}"\n{ca}')


def fill_ledger(store: Store, addresses: dict[str, str] = MAIL) -> None:
    """One message from and one to each address, ten days before NOW."""
    when = NOW - timedelta(days=10)
    for uid, (address, name) in enumerate(sorted(addresses.items()), start=1):
        for folder, direction in (("INBOX", "in"), ("Sent", "out")):
            key = f"{address}-{direction}"
            row = ExchangeRow(msg_key=key, address=address, direction=direction,  # type: ignore[arg-type]
                              time=when, subject=f"Hello {name}", message_id=f"<{key}>",
                              name=name, language=None)
            store.ledger.save_batch(folder, 1, uid, [MessageRow(uid, key, when, None)], [row],
                                    [])
    store.refresh(when)


def people(config: Config, store: Store) -> dict[tuple[str, ...], Contact]:
    return {c.addresses if len(c.addresses) < 2 else tuple(sorted(c.addresses)): c
            for c in plan.contacts(config, store)}


def summary(config: Config, store: Store) -> list[tuple[object, ...]]:
    return sorted((c.name, tuple(sorted(c.addresses)), tuple(p.number for p in c.phones),
                   c.birthday, tuple(sorted(c.card_tags)))
                  for c in plan.contacts(config, store))


EXPECTED = [
    ("Anna Berg", ("anna.private@gmx.de", "anna@studio.example"),
     ("+49301234567", "+491712345678"), "1980-03-03", ("berlin", "kunden")),
    ("Carla Christ", ("carla@firma.example",), ("+49891234567", "+49897654321"), "--12-24", ()),
    ("Dora Dahl", ("dora@example.com",), (), None, ()),
    ("Jürgen Müller", ("juergen@example.de",), ("+49407654321",), "--04-12", ()),
]


@pytest.mark.parametrize("kind", ["vdir", "vcf", "carddav", "carddav-root"])
def test_the_same_cards_give_the_same_people(kind: str, tmp_path: Path,
                                             request: pytest.FixtureRequest) -> None:
    account = request.getfixturevalue("carddav_account") if kind.startswith("carddav") \
        else None
    config = make_config(tmp_path, book_for(kind, tmp_path, account))
    with Store(config.storage.path) as store:
        fill_ledger(store)
        result = cardsync.sync(config, store, NOW)
        (source,) = result.sources
        assert source.error is None
        assert source.changed == 3
        # The invalid "12" on Jürgen's card is the one warning, naming where it is.
        assert len(source.problems) == 1 and "TEL '12' is not a valid phone number" in \
            source.problems[0]
        assert summary(config, store) == EXPECTED
        (record,) = store.cards.sources()
        assert (record.cards, record.phones, record.birthdays, record.merged) == (3, 5, 3, 1)


def test_a_card_joins_two_contacts_and_a_split_survives_the_next_sync(tmp_path: Path) -> None:
    config = make_config(tmp_path, book_for("vdir", tmp_path))
    with Store(config.storage.path) as store:
        fill_ledger(store)
        before = people(config, store)
        assert ("anna@studio.example",) in before and ("anna.private@gmx.de",) in before
        cardsync.sync(config, store, NOW)
        anna = people(config, store)[("anna.private@gmx.de", "anna@studio.example")]
        assert anna.name == "Anna Berg"  # FN over the display names of the mail
        assert anna.messages_in == 2

        new, _ = decisions.split(config, store, "Anna.Private@gmx.de", NOW)
        for _ in range(2):  # the next sync, and one after the card changed
            cardsync.sync(config, store, NOW)
            after = people(config, store)
            assert ("anna@studio.example",) in after
            assert after[("anna.private@gmx.de",)].id == new.id
            (tmp_path / "vdir" / "anna.vcf").write_text(ANNA.replace("Kunden", "Presse"))


def test_a_deleted_or_changed_card_gives_back_what_it_joined(tmp_path: Path,
                                                             carddav_account: CardDavAccount
                                                             ) -> None:
    config = make_config(tmp_path, book_for("carddav", tmp_path, carddav_account))
    with Store(config.storage.path) as store:
        fill_ledger(store)
        cardsync.sync(config, store, NOW)
        ids = {a: store.people.id_of(a) for a in MAIL}
        assert ids["anna@studio.example"] == ids["anna.private@gmx.de"]

        # The card now lists Anna's work address with Dora's: the private one goes home.
        carddav_account.put("anna.vcf", ANNA.replace("Anna.Private@GMX.de", "dora@example.com"))
        cardsync.sync(config, store, NOW)
        now_ids = {a: store.people.id_of(a) for a in MAIL}
        assert now_ids["anna.private@gmx.de"] != now_ids["anna@studio.example"]
        assert now_ids["dora@example.com"] == now_ids["anna@studio.example"]

        carddav_account.delete("anna.vcf")
        cardsync.sync(config, store, NOW)
        found = people(config, store)
        assert {("anna@studio.example",), ("anna.private@gmx.de",), ("dora@example.com",)} \
            <= set(found)
        assert found[("anna@studio.example",)].name == "A. Berg (Studio)"
        assert found[("anna@studio.example",)].phones == ()
        assert found[("dora@example.com",)].birthday is None
        assert store.cards.sources()[0].cards == 2


def test_carddav_reads_only_what_changed(tmp_path: Path,
                                         carddav_account: CardDavAccount) -> None:
    config = make_config(tmp_path, book_for("carddav", tmp_path, carddav_account))
    with Store(config.storage.path) as store:
        first = cardsync.sync(config, store, NOW).sources[0]
        assert first.changed == 3
        again = cardsync.sync(config, store, NOW).sources[0]
        assert again.unchanged and again.changed == 0
        assert again.requests == 2  # the collection's PROPFIND and its sync-token: no REPORT
        carddav_account.put("carla.vcf", CARLA.replace("Carla Christ", "Carla Christ-Ohm"))
        carddav_account.delete("juergen.vcf")
        third = cardsync.sync(config, store, NOW).sources[0]
        assert (third.changed, third.deleted) == (1, 1)
        names = {c.name for c in plan.contacts(config, store)}
        assert names == set()  # nobody in the mail, no include_without_mail: nobody listed
        assert store.cards.sources()[0].cards == 2

        # An expired sync token: the whole listing is asked for again; the cards whose etag
        # is unchanged are not fetched again, nothing is lost or doubled.
        state = json.loads(store.cards.state(config.addressbook[0].source) or "{}")
        for collection in state["collections"].values():
            collection["token"] = "http://radicale.org/ns/sync/" + "0" * 64
        store.cards.save(config.addressbook[0].source, name="dav", kind="carddav",
                         state=json.dumps(state), changed=[], deleted=[], now=NOW)
        fourth = cardsync.sync(config, store, NOW).sources[0]
        assert fourth.error is None and (fourth.changed, fourth.deleted) == (0, 0)
        assert store.cards.sources()[0].cards == 2


def test_tls_is_verified_and_ca_file_trusts_a_private_ca(tmp_path: Path,
                                                         carddav_tls_account: CardDavAccount
                                                         ) -> None:
    book = book_for("carddav-root", tmp_path, carddav_tls_account, cards={"anna.vcf": ANNA})
    config = make_config(tmp_path, book)
    with Store(config.storage.path) as store:
        fill_ledger(store)
        assert cardsync.sync(config, store, NOW).sources[0].error is None
        assert people(config, store)[("anna.private@gmx.de", "anna@studio.example")].phones
    unverified = make_config(tmp_path / "2", book.replace(
        f'ca_file = "{carddav_tls_account.ca_file}"\n', ""))
    with Store(unverified.storage.path) as store:
        error = cardsync.sync(unverified, store, NOW).sources[0].error
    assert error is not None and "certificate" in error and "ca_file" in error


def test_wrong_password_and_unreachable_server_are_one_line_and_keep_the_cards(
        tmp_path: Path, carddav_account: CardDavAccount, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    config = make_config(tmp_path, book_for("carddav", tmp_path, carddav_account))
    with Store(config.storage.path) as store:
        fill_ledger(store)
        cardsync.sync(config, store, NOW)
        wrong = make_config(tmp_path, book_for("carddav", tmp_path, carddav_account).replace(
            carddav_account.password, "not-the-password"))
        error = cardsync.sync(wrong, store, NOW).sources[0].error
        assert error == (f"the server refused the login for {carddav_account.username} "
                         "(HTTP 401): check the password (keyring, [[addressbook]] "
                         "password_command or FOLLOWUP_CARDDAV_PASSWORD) and username")
        # What was read before stays: Anna is still one person with her phones.
        assert people(config, store)[("anna.private@gmx.de", "anna@studio.example")].phones
        problems = store.cards.sources()[0].problems
        assert len(problems) == 1 and "HTTP 401" in problems[0]
    down = make_config(tmp_path / "down", book_for("carddav", tmp_path, carddav_account).replace(
        carddav_account.base, f"http://127.0.0.1:{free_port()}/"))
    with Store(down.storage.path) as store:
        error = cardsync.sync(down, store, NOW).sources[0].error
    assert error is not None and error.startswith("cannot connect to 127.0.0.1:")
    output = capsys.readouterr()
    everything = output.out + output.err + caplog.text + json.dumps(problems)
    assert carddav_account.password not in everything


def test_people_without_mail_come_up_slowly_and_can_be_named(tmp_path: Path) -> None:
    oma = ("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:oma\r\nFN:Oma Hilde\r\n"
           "TEL;TYPE=HOME:030 987654\r\nEND:VCARD\r\n")
    book = book_for("vdir", tmp_path, cards={"anna.vcf": ANNA, "oma.vcf": oma})
    config = make_config(tmp_path, book + "include_without_mail = true\n")
    with Store(config.storage.path) as store:
        fill_ledger(store, {"dora@example.com": "Dora Dahl"})
        cardsync.sync(config, store, NOW)
        found = {c.name: c for c in plan.contacts(config, store)}
        assert set(found) == {"Anna Berg", "Oma Hilde", "Dora Dahl"}
        assert found["Oma Hilde"].addresses == () and not found["Oma Hilde"].has_mail
        states = {s.contact.name: s for s in plan.decide(config, store, NOW)}
        assert (states["Oma Hilde"].status, states["Oma Hilde"].reason) == \
            ("ok", policy.NO_RECORD)
        assert states["Oma Hilde"].due_date is None
        # Anna by a card address: her id does not change once mail from her arrives.
        anna = decisions.find(config, store, "anna@studio.example").id
        decisions.snooze(config, store, "anna@studio.example", "5d", NOW)
        fill_ledger(store, {"anna@studio.example": "A. Berg"})
        cardsync.sync(config, store, NOW)
        assert store.people.id_of("anna@studio.example") == anna
        assert store.contact(anna, (), plan.include_sources(config)).snooze_until == \
            date(2026, 3, 6)
        # One person without contact on record a day, when a slot is free.
        today = plan.plan_today(config, store, NOW)
        assert [s.contact.name for s in today.picks] == ["Oma Hilde"]


def test_a_split_address_alone_on_its_card_does_not_become_a_second_person(
        tmp_path: Path) -> None:
    dora = ("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:dora\r\nFN:Dora Dahl\r\n"
            "EMAIL:dora@example.com\r\nEMAIL:dora.alt@example.com\r\nEND:VCARD\r\n")
    book = book_for("vdir", tmp_path, cards={"dora.vcf": dora})
    config = make_config(tmp_path, book + "include_without_mail = true\n")
    with Store(config.storage.path) as store:
        fill_ledger(store, {"dora@example.com": "Dora", "dora.alt@example.com": "Dora"})
        cardsync.sync(config, store, NOW)
        decisions.split(config, store, "dora.alt@example.com", NOW)
        (tmp_path / "vdir" / "dora.vcf").write_text(dora.replace(
            "EMAIL:dora@example.com\r\n", ""))
        cardsync.sync(config, store, NOW)
        assert sorted(c.addresses for c in plan.contacts(config, store)) == [
            ("dora.alt@example.com",), ("dora@example.com",)]


@pytest.mark.parametrize("names", ["current-user-principal", "addressbook-home-set"])
def test_a_server_that_points_to_plain_http_elsewhere_gets_no_password(
        tmp_path: Path, names: str) -> None:
    """A hostile (or misconfigured) server names a principal or home on another host over
    plain http: followup refuses before any request goes there. Real servers do not do this,
    so a small stand-in on loopback plays it."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    elsewhere = "http://contacts.example.net/dav/"
    seen: list[tuple[str, str]] = []

    class Hostile(BaseHTTPRequestHandler):
        def do_PROPFIND(self) -> None:
            seen.append((self.path, self.headers.get("Authorization", "")))
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if names == "current-user-principal" or self.path != "/principal/":
                prop = (f"<d:current-user-principal><d:href>"
                        f"{elsewhere if names == 'current-user-principal' else '/principal/'}"
                        "</d:href></d:current-user-principal>")
            else:
                prop = (f"<c:addressbook-home-set><d:href>{elsewhere}</d:href>"
                        "</c:addressbook-home-set>")
            body = ('<?xml version="1.0"?><d:multistatus xmlns:d="DAV:" '
                    'xmlns:c="urn:ietf:params:xml:ns:carddav"><d:response>'
                    f"<d:href>{self.path}</d:href><d:propstat><d:prop>{prop}</d:prop>"
                    "<d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>"
                    "</d:multistatus>").encode()
            self.send_response(207)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}/"
        config = make_config(tmp_path, f'[[addressbook]]\nname = "dav"\nurl = "{base}"\n'
                                       'username = "mia"\npassword_command = "printf s3cret-pw"\n')
        with Store(config.storage.path) as store:
            error = cardsync.sync(config, store, NOW).sources[0].error
    finally:
        server.shutdown()
        server.server_close()
    assert error == (f"{base} leads to {elsewhere}: that is not https, and your password "
                     "would travel unencrypted; nothing was sent there (give the address "
                     "book's own https URL)")
    assert all(path in ("/", "/principal/") for path, _ in seen)
