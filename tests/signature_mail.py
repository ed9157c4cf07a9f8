"""A planted mailbox of realistic signatures, with the phone numbers each one must give.

Each `Person` below writes to Mia (the user) and gets an answer, as people do; their newest
message carries a signature the way real clients and companies write them: German and
English labels, a company disclaimer with a switchboard and a fax, a quoted signature of
someone else inside a reply, a forwarded message, an HTML-only mail (Outlook), a signature
that is only an image, and an Outlook top-post that quotes Mia's own signature. `truth` is
what followup must find in that newest message — nothing else, nothing less.

Used by tests/test_signatures.py (the parsing alone) and tests/test_signature_phones.py
(the whole run on Dovecot).
"""

from __future__ import annotations

import email.policy
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime

from tests.kit import ME

NOW = datetime(2026, 12, 3, 6, 30, tzinfo=UTC)  # 07:30 in Berlin
MIA = f"Mia Example <{ME}>"
# Mia's own signature, quoted in the replies of others: never a contact's number.
MIA_SIGNATURE = "Mia Example\nFotografie\nTel. +49 30 7654321\n"


def ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


@dataclass(frozen=True)
class Person:
    key: str  # a short name for the tables a test prints
    name: str
    address: str
    case: str  # what this signature shows
    their_days: int  # their newest message, days before NOW
    body: str = ""  # the plain text of their newest message ("" when `raw` builds it)
    html: str = ""  # an HTML-only newest message
    image_only: bool = False  # newest message: text + HTML with a signature image
    truth: frozenset[str] = field(default_factory=frozenset)  # E.164 numbers it must give
    folder: str = "INBOX"  # where their newest message is
    card_phone: str | None = None  # a number on their card in the address book
    older: str = ""  # an older message of theirs with another signature (never read)


def _sig(*lines: str) -> str:
    return "\n".join(lines) + "\n"


PEOPLE: tuple[Person, ...] = (
    Person(
        "juergen", "Jürgen Weiß", "juergen.weiss@beispiel-ag.example",
        "German company signature: Tel. with (0) and extension, Mobil, Fax", 150,
        body=("Hallo Mia,\n\ndanke für die Fotos, die sind super geworden. Lass uns im "
              "Frühjahr über den Katalog sprechen.\n\nViele Grüße\nJürgen Weiß\n\n-- \n"
              + _sig("Jürgen Weiß", "Leiter Unternehmenskommunikation",
                     "Beispiel AG | Friedrichstraße 100 | 10117 Berlin",
                     "Tel.: +49 (0) 30 / 123 456-7", "Mobil 0171 2345678",
                     "Fax +49 (0) 30 / 123 456-9", "www.beispiel-ag.example")),
        truth=frozenset({"+49301234567", "+491712345678"}),
        older=("Hallo Mia,\n\nanbei das Briefing.\n\nGruß\nJürgen\n\n-- \nJürgen Weiß\n"
               "Tel. 030 / 111 222-3\n")),
    Person(
        "oliver", "Oliver Bennett", "oliver@northlight.example",
        "English signature: M with +44", 120,
        body=("Hi Mia,\n\nThanks so much, lovely to hear from you. The prints arrived safely."
              "\n\nBest,\nOliver\n\n"
              + _sig("Oliver Bennett", "Creative Director | Northlight Studio",
                     "M +44 7700 900123", "E oliver@northlight.example",
                     "W northlight.example")),
        truth=frozenset({"+447700900123"})),
    Person(
        "dana", "Dana Whitfield", "dana@bayline.example",
        "US contact: T: (415) 555-0134 without a country code, F: fax", 110,
        body=("Hi Mia,\n\nSounds great, looking forward to the shoot.\n\nThanks,\nDana\n\n"
              + _sig("Dana Whitfield | Photo Editor", "Bayline Magazine",
                     "T: (415) 555-0134", "F: (415) 555-0199")),
        truth=frozenset({"+14155550134"})),
    Person(
        "sabine", "Sabine Krüger", "sabine.krueger@muster-handel.example",
        "company disclaimer with switchboard and fax; the direct line wins", 100,
        folder="Archiv",
        body=("Hallo Mia,\n\npasst, danke! Die Rechnung geht diese Woche raus.\n\n"
              "Mit freundlichen Grüßen\nSabine Krüger\nSenior Buyer\n"
              "Durchwahl: +49 40 555 123-45\n\n"
              "Muster Handels GmbH · Hafenstraße 1 · 20457 Hamburg\n"
              "Zentrale: +49 40 555 123-0 · Fax: +49 40 555 123-99\n"
              "Geschäftsführer: Max Muster · Amtsgericht Hamburg HRB 12345 · "
              "USt-IdNr. DE 123456789\n\n"
              "Diese E-Mail enthält vertrauliche Informationen. Wenn Sie nicht der richtige "
              "Adressat sind, informieren Sie bitte sofort den Absender.\n\n"
              "Von: Mia Example <me@example.org>\nGesendet: Montag, 24. August 2026 09:12\n"
              "An: Sabine Krüger <sabine.krueger@muster-handel.example>\n"
              "Betreff: Rechnung\n\nHallo Sabine,\nanbei die Rechnung.\n\n" + MIA_SIGNATURE),
        truth=frozenset({"+494055512345"})),
    Person(
        "petra", "Petra Lang", "petra.lang@agentur-lang.example",
        "reply quoting another person's message with his signature", 96,
        body=("Hallo Mia,\n\nklingt gut, machen wir so. Klaus ist auch dabei.\n\nGruß\nPetra\n"
              "\n-- \nPetra Lang | Agentur Lang\nHandy 0160 9876543\n\n"
              "Am 25.08.2026 um 09:00 schrieb Klaus Meier <klaus@agentur-meier.example>:\n"
              "> Hallo Petra,\n> anbei das Angebot für das Shooting.\n>\n> Klaus Meier\n"
              "> Agentur Meier\n> Tel. 089 / 98 76 54-3\n> Mobil 0172 3456789\n"),
        truth=frozenset({"+491609876543"})),
    Person(
        "tobias", "Tobias Brandt", "tobias@brandt-fotografie.example",
        "a forwarded message with the signature of its author", 85,
        body=("Mia, schau mal – das könnte was für dich sein.\n\nViele Grüße\nTobias Brandt\n"
              "Mobil: 0151 23456789\n\n---------- Forwarded message ---------\n"
              "From: Lena Vogt <lena@galerie-vogt.example>\n"
              "Date: Mon, Aug 31, 2026 at 10:00 AM\nSubject: Ausstellung\n"
              "To: Tobias Brandt <tobias@brandt-fotografie.example>\n\n"
              "Hallo Tobias,\nwir suchen noch eine Fotografin für die Ausstellung.\n\n"
              "Lena Vogt\nGalerie Vogt\nTel. 0221 / 987 65 43\n"),
        truth=frozenset({"+4915123456789"})),
    Person(
        "nina", "Nina Hartmann", "nina@hartmann-design.example",
        "HTML-only mail (Outlook) with a table signature: Fon, Fax", 100,
        html=("<html><head><style>p{margin:0}</style></head><body>"
              "<div>Hallo Mia,</div><div><br></div>"
              "<div>die Entwürfe sehen toll aus – danke!</div><div><br></div>"
              "<div>Viele Grüße</div><div>Nina</div><div><br></div>"
              "<table><tr><td><b>Nina Hartmann</b> | Hartmann Design</td></tr>"
              "<tr><td>Fon</td><td>040 / 30 30 12 34</td></tr>"
              "<tr><td>Fax</td><td>040 / 30 30 12 35</td></tr>"
              '<tr><td><a href="https://hartmann-design.example">hartmann-design.example'
              "</a></td></tr></table>"
              '<hr style="display:inline-block;width:98%"><div id="divRplyFwdMsg" dir="ltr">'
              "<b>Von:</b> Mia Example &lt;me@example.org&gt;<br><b>Gesendet:</b> Montag, "
              "24. August 2026 09:12<br><b>Betreff:</b> Entwürfe</div>"
              "<div>Hallo Nina,<br>anbei die Entwürfe.<br><br>Mia Example<br>Fotografie<br>"
              "Tel. +49 30 7654321</div></body></html>"),
        truth=frozenset({"+494030301234"})),
    Person(
        "frank", "Frank Ott", "frank.ott@ott-immobilien.example",
        "a signature that is only an image", 125, image_only=True,
        body="Hallo Mia,\n\nbis Montag!\n\nHerzliche Grüße\nFrank Ott\n\n"
             "[cid:image001.png@01DA1234.56789]\n"),
    Person(
        "grace", "Grace Lee", "grace.lee@harbor-press.example",
        "Outlook top-post quoting Mia's own signature; a reply owed", 12,
        body=("Hi Mia,\n\nThanks – Tuesday works for me.\n\nBest,\nGrace\n\nGrace Lee\n"
              "Senior Editor, Harbor Press\nCell: +1 212 555 0187\n\n"
              "From: Mia Example <me@example.org>\n"
              "Sent: Friday, November 20, 2026 9:12 AM\n"
              "To: Grace Lee <grace.lee@harbor-press.example>\nSubject: Shoot next week\n\n"
              "Hi Grace,\nwould Tuesday work?\n\n" + MIA_SIGNATURE),
        truth=frozenset({"+12125550187"})),
    Person(
        "anke", "Anke Hartmann", "anke@fotostudio-hartmann.example",
        "a number without a label alone on its line; a date and a VAT id that are not", 98,
        body=("Hallo Mia,\n\nich melde mich nach dem Urlaub.\n\nLiebe Grüße\nAnke\n\n-- \n"
              + _sig("Anke Hartmann · Fotostudio Hartmann", "+49 351 4567890",
                     "Urlaub bis 15.12.2026", "USt-IdNr. DE123456789")),
        truth=frozenset({"+493514567890"})),
    Person(
        "ben", "Ben Card", "ben@card-studio.example",
        "a number in the address book: the signature is never read", 105,
        card_phone="+49 89 1234567",
        body=("Servus Mia,\n\nalles klar.\n\nBen\n\n-- \nBen Card\nTel. 089 7654321\n"),
        truth=frozenset({"+49897654321"})),
)

# Someone not in today's digest (an exchange 10 days ago, Mia wrote last): never read.
RECENT = Person("lisa", "Lisa Recent", "lisa@recent.example", "not in the digest", 12,
                body="Hi Mia,\n\nsee you!\n\nLisa\nMobile: +49 170 5555555\n",
                truth=frozenset({"+491705555555"}))


def _headers(msg: EmailMessage, sender: str, to: str, subject: str, when: datetime,
             ident: str) -> None:
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = f"<{ident}>"


def newest(person: Person, *, body: str | None = None, ident: str | None = None,
           when: datetime | None = None) -> bytes:
    """Their newest message to Mia, as their mail client sends it."""
    msg = EmailMessage(policy=email.policy.SMTP)
    _headers(msg, f"{person.name} <{person.address}>", MIA, "Re: Unser Projekt",
             when or ago(person.their_days), ident or f"{person.key}-newest@test")
    if person.html:
        msg.set_content(person.html, subtype="html")
    elif person.image_only:
        msg.set_content(body or person.body)
        html = ("<html><body><p>Hallo Mia,</p><p>bis Montag!</p><p>Herzliche Grüße<br>Frank Ott"
                '</p><p><img src="cid:image001.png@01DA1234.56789" alt="Frank Ott · Ott '
                'Immobilien"></p></body></html>')
        msg.add_alternative(html, subtype="html")
        related = msg.get_payload()[1]
        related.add_related(b"\x89PNG\r\n\x1a\n" + bytes(200), maintype="image",
                            subtype="png", cid="<image001.png@01DA1234.56789>")
    else:
        msg.set_content(body or person.body)
    return msg.as_bytes()


def mine(person: Person, days: float) -> bytes:
    """Mia's message to them (so that they are a contact: mail both ways)."""
    msg = EmailMessage(policy=email.policy.SMTP)
    _headers(msg, MIA, f"{person.name} <{person.address}>", "Unser Projekt", ago(days),
             f"{person.key}-mine@test")
    msg.set_content(f"Hallo {person.name.split()[0]},\n\nwie besprochen.\n\n{MIA_SIGNATURE}")
    return msg.as_bytes()


def older(person: Person) -> bytes:
    msg = EmailMessage(policy=email.policy.SMTP)
    _headers(msg, f"{person.name} <{person.address}>", MIA, "Briefing",
             ago(person.their_days + 150), f"{person.key}-older@test")
    msg.set_content(person.older)
    return msg.as_bytes()


def items(sent: str, people: tuple[Person, ...] = (*PEOPLE, RECENT)) -> list[
        tuple[str, bytes, tuple[str, ...], datetime]]:
    """(folder, raw, flags, INTERNALDATE) of the whole planted mailbox."""
    out: list[tuple[str, bytes, tuple[str, ...], datetime]] = []
    for person in people:
        if person is RECENT:  # they wrote, Mia answered last: 10 days ago
            out.append((person.folder, newest(person), ("\\Seen",), ago(person.their_days)))
            out.append((sent, mine(person, 10), ("\\Seen",), ago(10)))
            continue
        mine_days = person.their_days + 5
        out.append((sent, mine(person, mine_days), ("\\Seen",), ago(mine_days)))
        if person.older:
            out.append((person.folder, older(person), ("\\Seen",),
                        ago(person.their_days + 150)))
        out.append((person.folder, newest(person), ("\\Seen",), ago(person.their_days)))
    return out


def card(person: Person) -> str:
    """A vCard of `person` with their card number."""
    return (f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{person.key}\r\nFN:{person.name}\r\n"
            f"EMAIL:{person.address}\r\nTEL;TYPE=work:{person.card_phone}\r\nEND:VCARD\r\n")
