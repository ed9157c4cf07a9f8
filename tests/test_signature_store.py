"""What the store keeps of signatures (issue 15): each message read once, the newest
signature's numbers per address, an address-book number always first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from agent.model import Card, ExchangeRow, MessageRow, Phone
from agent.store import Store

T0 = datetime(2026, 6, 1, 9, tzinfo=UTC)
ANNA = "anna@firma.example"


def exchange(key: str, address: str, direction: str, days: int,
             message_id: str | None = None) -> ExchangeRow:
    return ExchangeRow(msg_key=key, address=address, direction=direction,  # type: ignore[arg-type]
                       time=T0 + timedelta(days=days), subject=key,
                       message_id=message_id or f"<{key}@test>", name="Anna Berg", language=None)


def ledger(store: Store, rows: list[tuple[str, int, ExchangeRow]]) -> None:
    for folder, uid, row in rows:
        store.ledger.save_batch(folder, 7, uid, [MessageRow(uid, row.msg_key, row.time, None)],
                                [row], [])
    store.refresh(T0)


def phone(number: str, days: int, kind: str = "work") -> Phone:
    return Phone(number, kind, "signature", T0 + timedelta(days=days))


def test_newest_incoming_with_the_uid_of_every_copy(tmp_path: Path) -> None:
    with Store(tmp_path / "f.db") as store:
        ledger(store, [("INBOX", 3, exchange("old", ANNA, "in", 1)),
                       ("Sent", 4, exchange("mine", ANNA, "out", 5)),
                       ("INBOX", 9, exchange("new", ANNA, "in", 3)),
                       ("Archiv", 2, exchange("new", ANNA, "in", 3))])
        found = store.ledger.newest_incoming([ANNA, "other@x.example"])
        assert found is not None
        assert (found.message_id, found.folder, found.time) == ("<new@test>", "INBOX",
                                                               T0 + timedelta(days=3))
        assert found.copies == (("INBOX", 9), ("Archiv", 2))  # the ledger's folder first
        assert store.ledger.newest_incoming(["nobody@x.example"]) is None
        assert store.ledger.newest_incoming([]) is None


def test_a_newer_signature_replaces_an_older_one(tmp_path: Path) -> None:
    with Store(tmp_path / "f.db") as store:
        signatures = store.signatures
        assert not signatures.was_read("<m1@test>")
        assert signatures.save("<m1@test>", ANNA, T0, [phone("+49301111111", 0)], "read", T0)
        assert signatures.was_read("<m1@test>")
        assert signatures.save("<m2@test>", ANNA, T0 + timedelta(days=9),
                               [phone("+49302222222", 9), phone("+491712345678", 9, "cell")],
                               "read", T0)
        numbers = signatures.numbers()[ANNA]
        assert [p.number for p in numbers.phones] == ["+49302222222", "+491712345678"]
        assert numbers.seen == T0 + timedelta(days=9)
        assert {p.source for p in numbers.phones} == {"signature"}
        # An older message read later changes nothing; a newer one without numbers (a reply
        # from a phone) leaves the numbers there are.
        assert not signatures.save("<m0@test>", ANNA, T0 - timedelta(days=9),
                                   [phone("+49300000000", -9)], "read", T0)
        assert not signatures.save("<m3@test>", ANNA, T0 + timedelta(days=20), [], "read", T0)
        assert [p.number for p in signatures.numbers()[ANNA].phones] == ["+49302222222",
                                                                         "+491712345678"]
        assert signatures.read_count() == 4


def test_contacts_get_the_newest_signature_unless_a_card_has_a_number(tmp_path: Path) -> None:
    second = "anna.berg@privat.example"
    with Store(tmp_path / "f.db") as store:
        ledger(store, [("INBOX", 1, exchange("a", ANNA, "in", 1)),
                       ("Sent", 1, exchange("b", ANNA, "out", 2)),
                       ("INBOX", 2, exchange("c", second, "in", 3)),
                       ("Sent", 2, exchange("d", second, "out", 4))])
        anna = next(c for c in store.contacts() if c.email == ANNA)
        store.people.merge(anna.id, next(c.id for c in store.contacts() if c.email == second))
        store.signatures.save("<a@test>", ANNA, T0 + timedelta(days=1),
                              [phone("+49301111111", 1)], "read", T0)
        store.signatures.save("<c@test>", second, T0 + timedelta(days=3),
                              [phone("+491712345678", 3, "cell")], "read", T0)
        (merged,) = store.contacts()
        assert [(p.number, p.source) for p in merged.phones] == [("+491712345678", "signature")]
        assert store.contact(merged.id) == merged

        # A card with a number: the address book wins, the signature waits behind it.
        card = Card(href="anna.vcf", etag="1", uid="anna", name="Anna Berg",
                    addresses=(ANNA,), phones=(Phone("+49897654321", "work"),))
        store.cards.save("/books/main", name="main", kind="vdir", state=None, changed=[card],
                         deleted=[], now=T0)
        (merged,) = store.contacts()
        assert [(p.number, p.source) for p in merged.phones] == [("+49897654321",
                                                                 "addressbook")]
        # Cards rebuilt from their source never take the signature's numbers with them.
        store.cards.save("/books/main", name="main", kind="vdir", state=None, changed=[],
                         deleted=["anna.vcf"], now=T0)
        (merged,) = store.contacts()
        assert [p.number for p in merged.phones] == ["+491712345678"]


def test_scan_full_keeps_what_was_read(tmp_path: Path) -> None:
    with Store(tmp_path / "f.db") as store:
        ledger(store, [("INBOX", 1, exchange("a", ANNA, "in", 1)),
                       ("Sent", 1, exchange("b", ANNA, "out", 2))])
        store.signatures.save("<a@test>", ANNA, T0, [phone("+49301111111", 0)], "read", T0)
        store.ledger.forget()
        assert store.signatures.was_read("<a@test>")  # never fetched again
        assert ANNA in store.signatures.numbers()
