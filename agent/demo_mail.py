"""The demo's mailbox: two years of a freelance photographer's mail, generated from a seed.

About sixty people with German and English names, some writing regularly, some near or past
the line, some waiting on a reply, plus newsletters, a mailing list, notifications,
out-of-office replies and spam — the same for the same seed and day, dated relative to now.
Every address is in a reserved example domain (RFC 2606), so a draft sent by mistake from a
real mail client goes nowhere.
"""

from __future__ import annotations

import email.policy
import logging
import random
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from zoneinfo import ZoneInfo

log = logging.getLogger(__name__)

SEED = 20240607
ME_NAME = "Sam Berger"
ME = "sam@berger-foto.example"
DEMO_USER = "demo"
HISTORY_DAYS = 730

# --------------------------------------------------------------------------- the cast

FIRST_DE = ("Jürgen", "Anna", "Jörg", "Sören", "Käthe", "Günther", "Ulrike", "Björn",
            "Franziska", "Matthias", "Sabine", "Dörte", "Claudia", "Uwe", "Heike", "Bärbel",
            "Tobias", "Mareike", "Özlem", "Ralf", "Lena", "Maximilian", "Grete", "Till",
            "Henrike", "Lutz", "Friederike", "Ole", "Elke", "Malte", "Anke", "Detlef", "Wiebke",
            "Hauke", "Gesine", "Knut", "Ilse", "Wolfgang")
LAST_DE = ("Müller", "Schmidt", "Weiß", "Meyer", "Wagner", "Becker", "Schäfer", "Koch", "Groß",
           "Krüger", "Hoffmann", "Löwe", "Bäcker", "Schröder", "Neumann", "Zimmermann",
           "Braun", "Hartmann", "Köhler", "Jäger", "Fuchs", "Vogel", "Wölfel", "Kühn", "Strauß",
           "Dietrich", "Förster", "Brückner", "Sommer", "Lorenz", "Schulz", "Keller", "Richter",
           "Wolf", "Schwarz", "Hübner", "Seidel", "Pohl")
FIRST_EN = ("Oliver", "Emily", "James", "Charlotte", "Harry", "Sophie", "Jack", "Grace",
            "Thomas", "Olivia", "George", "Amelia", "Noah", "Isla", "Siobhán", "Zoë", "Chloé",
            "Rhys", "Niamh", "Eoin", "Freya", "Callum", "Imogen", "Alfie", "Poppy", "Fionn")
LAST_EN = ("Smith", "Jones", "Taylor", "Brown", "O'Neill", "Walker", "Wright", "Clarke",
           "Evans", "Roberts", "Hughes", "Green", "Murphy", "Kelly", "Price", "Bennett",
           "Fletcher", "Doyle", "Hale", "Marsh", "Harper", "Ellis", "Shaw", "Palmer", "Quinn",
           "Reid")
DOMAINS_DE = ("freemail.example", "post.example", "agentur-sonnenschein.example",
              "verlag-nord.example", "studio-elbe.example", "hochzeitsmesse.example",
              "stadtwerke.example", "kita-regenbogen.example")
DOMAINS_EN = ("mail.example", "brightmedia.example", "acme.example", "thefoundry.example",
              "gallery-north.example", "wedding-planners.example")
TOPICS_DE = ("Fotoshooting am Donnerstag", "Angebot für die Hochzeitsreportage",
             "Bildauswahl für den Katalog", "Übergabe der Dateien", "Portraits fürs Team",
             "Nutzungsrechte", "Termin nächste Woche?", "Grüße aus München", "Kaffee?",
             "Rechnung und Bilder", "Ausstellung im Frühjahr", "Produktfotos – Briefing",
             "Kurze Frage zu den Bildern", "Pressefotos für die Eröffnung")
TOPICS_EN = ("Photo shoot on Thursday", "Quote for the wedding", "Image selection",
             "Contract draft", "Catching up", "Lunch?", "Headshots for the team",
             "Usage rights", "Exhibition in spring", "Product shots – briefing",
             "Quick question about the prints", "Press photos for the opening")
LINES_DE = ("anbei wie besprochen die Unterlagen.", "passt euch Donnerstag um zehn?",
            "vielen Dank, die Bilder sind großartig geworden!", "kurze Rückfrage zum Angebot:",
            "wir melden uns nächste Woche mit dem Termin.", "schön, von dir zu hören.")
LINES_EN = ("please find the documents attached as discussed.", "does Thursday at ten work?",
            "thanks so much, the photos look wonderful!", "a quick question about the quote:",
            "we'll come back to you next week with a date.", "lovely to hear from you.")

# How many people of each kind, and how many days ago their last exchange was.
STORIES: tuple[tuple[str, int, tuple[int, int]], ...] = (
    ("regular", 24, (1, 60)),  # fine
    ("drifting", 9, (77, 89)),  # due soon: within lead_days of the line
    ("overdue", 14, (92, 320)),  # past the line
    # They wrote last, no answer. Replies come first among the picks: two of them leave room
    # for a check-in draft in the demo.
    ("waiting", 2, (9, 40)),
    ("inbound", 6, (3, 300)),  # wrote to you once, never answered: not a contact (two-way)
    ("outbound", 5, (5, 400)),  # you wrote, they never answered: not a contact
)


@dataclass(frozen=True)
class Person:
    """One invented correspondent of the demo mailbox and their story."""

    name: str
    address: str
    language: str
    story: str
    last_days: int


@dataclass(frozen=True)
class DemoMessage:
    """One message to APPEND: folder, CRLF bytes, flags and INTERNALDATE (aware)."""

    folder: str
    raw: bytes
    flags: tuple[str, ...]
    when: datetime


@dataclass
class DemoMailbox:
    """The demo's people and the messages exchanged with them."""

    people: list[Person]
    messages: list[DemoMessage] = field(default_factory=list)


def _ascii(text: str) -> str:
    table = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "é": "e", "á": "a",
                           "ë": "e", "'": "", " ": ""})
    return text.lower().translate(table)


def cast(rng: random.Random) -> list[Person]:
    """Sixty people, a little more German than English, each with a story; no two share a
    name, so nobody looks like a second address of somebody else."""
    firsts = {"de": rng.sample(FIRST_DE, len(FIRST_DE)),
              "en": rng.sample(FIRST_EN, len(FIRST_EN))}
    lasts = {"de": rng.sample(LAST_DE, len(LAST_DE)), "en": rng.sample(LAST_EN, len(LAST_EN))}
    people: list[Person] = []
    number = 0
    for story, count, (low, high) in STORIES:
        for _ in range(count):
            language = "de" if number % 5 < 3 else "en"
            number += 1
            first = firsts[language].pop()
            last = lasts[language].pop()
            domain = rng.choice(DOMAINS_DE if language == "de" else DOMAINS_EN)
            address = f"{_ascii(first)}.{_ascii(last)}@{domain}"
            people.append(Person(f"{first} {last}", address, language, story,
                                 rng.randint(low, high)))
    return people


# --------------------------------------------------------------------------- the messages


class _Writer:
    """Builds realistic messages: encoded names and subjects, threads, local Date headers."""

    def __init__(self, rng: random.Random, now: datetime) -> None:
        self.rng = rng
        self.now = now
        self.box = DemoMailbox(people=[])
        self._counter = 0

    def message_id(self, domain: str) -> str:
        self._counter += 1
        return f"<{self._counter:05d}.{self.rng.getrandbits(40):010x}@{domain}>"

    def add(self, folder: str, *, sender: Address, to: list[Address], subject: str, body: str,
            when: datetime, language: str | None = None, headers: dict[str, str] | None = None,
            cc: list[Address] | None = None, in_reply_to: str | None = None,
            flags: tuple[str, ...] = ("\\Seen",)) -> str:
        msg = EmailMessage(policy=email.policy.SMTP)
        msg["From"] = sender
        msg["To"] = to
        if cc:
            msg["Cc"] = cc
        msg["Subject"] = subject
        zone = ZoneInfo("Europe/Berlin" if language != "en" else "Europe/London")
        msg["Date"] = format_datetime(when.astimezone(zone))
        ident = self.message_id(sender.domain)
        msg["Message-ID"] = ident
        if in_reply_to:
            msg["In-Reply-To"] = in_reply_to
            msg["References"] = in_reply_to
        if language:
            msg["Content-Language"] = language
        for name, value in (headers or {}).items():
            msg[name] = value
        msg.set_content(body)
        self.box.messages.append(DemoMessage(folder, msg.as_bytes(), flags, when))
        return ident

    def at(self, days_ago: float) -> datetime:
        # Office hours, in whole minutes: mail is written by day.
        moment = self.now - timedelta(days=days_ago)
        local = moment.astimezone(ZoneInfo("Europe/Berlin"))
        local = local.replace(hour=self.rng.randint(8, 19), minute=self.rng.randint(0, 59),
                              second=0, microsecond=0)
        return min(local.astimezone(UTC), self.now - timedelta(minutes=5))


def _greeting(person: Person, body: str) -> str:
    first = person.name.split()[0]
    hello = f"Hallo {first}," if person.language == "de" else f"Hi {first},"
    bye = "Viele Grüße\nSam" if person.language == "de" else "Best,\nSam"
    return f"{hello}\n\n{body}\n\n{bye}\n"


def _their_mail(person: Person, body: str) -> str:
    first = person.name.split()[0]
    hello = "Hallo Sam," if person.language == "de" else "Hi Sam,"
    bye = "Beste Grüße" if person.language == "de" else "Cheers"
    return f"{hello}\n\n{body}\n\n{bye}\n{first}\n{_signature(person)}"


def _signature(person: Person) -> str:
    """Two in three people sign with a phone number (the digest's Call button reads it);
    fixed by the address, so every message of one person has the same signature."""
    number = zlib.crc32(person.address.encode())
    if number % 3 == 0:
        return ""
    if person.language == "de":
        return (f"\n-- \n{person.name}\nTel. +49 (0)30 / 2345 6{number % 100:02d}\n"
                f"Fax +49 (0)30 / 2345 6999\n")
    # Ofcom's range for drama: numbers that reach nobody.
    return f"\n-- \n{person.name}\nM +44 7700 900{number % 1000:03d}\n"


def _reply(subject: str, language: str) -> str:
    return ("AW: " if language == "de" else "Re: ") + subject


def write_history(writer: _Writer, person: Person, me: Address) -> None:
    """Threads between Sam and one person, ending ``last_days`` ago as the story wants."""
    rng = writer.rng
    them = Address(person.name, addr_spec=person.address)
    topics = TOPICS_DE if person.language == "de" else TOPICS_EN
    lines = LINES_DE if person.language == "de" else LINES_EN
    if person.story in ("inbound", "outbound"):
        # One or two messages in one direction only.
        for index in range(rng.randint(1, 2)):
            ago = person.last_days + index * rng.randint(20, 90)
            subject = rng.choice(topics)
            if person.story == "inbound":
                writer.add("INBOX", sender=them, to=[me], subject=subject,
                           body=_their_mail(person, rng.choice(lines)), when=writer.at(ago),
                           language=person.language)
            else:
                writer.add("Sent", sender=me, to=[them], subject=subject,
                           body=_greeting(person, rng.choice(lines)), when=writer.at(ago),
                           language=person.language)
        return
    threads = rng.randint(4, 9) if person.story == "regular" else rng.randint(2, 6)
    starts = sorted((rng.uniform(person.last_days + 5, HISTORY_DAYS) for _ in range(threads - 1)),
                    reverse=True)
    for number, start in enumerate([*starts, float(person.last_days)]):
        last_thread = number == threads - 1
        subject = rng.choice(topics)
        length = rng.randint(1, 4)
        they_start = rng.random() < 0.5
        if last_thread:
            # The last message decides the story: theirs for "waiting", else yours (a reply
            # of theirs older than a week would make them "waiting" too).
            ends_with_them = person.story == "waiting" or (person.last_days < 7 and
                                                          rng.random() < 0.5)
            length = max(length, 2)
            they_start = ends_with_them == (length % 2 == 1)
        parent: str | None = None
        for step in range(length):
            days = start + (length - 1 - step) * rng.uniform(0.2, 2.0) if not last_thread \
                else person.last_days + (length - 1 - step) * rng.uniform(0.5, 2.5)
            theirs = (step % 2 == 0) == they_start
            title = subject if step == 0 else _reply(subject, person.language)
            if theirs:
                parent = writer.add("INBOX", sender=them, to=[me], subject=title,
                                    body=_their_mail(person, rng.choice(lines)),
                                    when=writer.at(days), language=person.language,
                                    in_reply_to=parent,
                                    flags=() if last_thread and person.story == "waiting"
                                    else ("\\Seen",))
            else:
                parent = writer.add("Sent", sender=me, to=[them], subject=title,
                                    body=_greeting(person, rng.choice(lines)),
                                    when=writer.at(days), language=person.language,
                                    in_reply_to=parent)


def write_noise(writer: _Writer, people: list[Person], me: Address) -> None:
    """Newsletters, a mailing list, notifications, out-of-office replies, spam."""
    rng = writer.rng
    newsletters = (
        ("Fotografie Heute", "newsletter@fotografie-heute.example", "Die Woche in Bildern"),
        ("The Weekly Frame", "hello@weeklyframe.example", "This week in photography"),
        ("Kamera-Shop Süd", "angebote@kamerashop-sued.example", "Angebote der Woche"),
    )
    for name, address, title in newsletters:
        sender = Address(name, addr_spec=address)
        for week in range(0, HISTORY_DAYS, rng.randint(10, 21)):
            writer.add("INBOX", sender=sender, to=[me], subject=f"{title} #{week // 7 + 1}",
                       body="Unsubscribe at any time.\n", when=writer.at(week + rng.random()),
                       headers={"List-Id": f"<{address.replace('@', '.')}>",
                                "List-Unsubscribe": f"<mailto:{address}?subject=unsubscribe>",
                                "Precedence": "bulk"},
                       flags=() if week < 14 else ("\\Seen",))
    # A mailing list where people (some of them contacts) post: not an exchange with them.
    club = Address("Fotoclub Elbe", addr_spec="fotoclub@lists.example")
    posters = rng.sample([p for p in people if p.language == "de"], 4)
    for number in range(30):
        poster = posters[number % len(posters)]
        writer.add("INBOX", sender=Address(poster.name, addr_spec=poster.address), to=[club],
                   subject=f"[Fotoclub] Treffen im {['Januar', 'März', 'Mai', 'Juli'][number % 4]}",
                   body="Wer kommt mit?\n", when=writer.at(rng.uniform(1, HISTORY_DAYS)),
                   headers={"List-Id": "Fotoclub Elbe <fotoclub.lists.example>",
                            "List-Post": "<mailto:fotoclub@lists.example>"})
    writer.add("Sent", sender=me, to=[club], subject="[Fotoclub] Bilder vom Sommerfest",
               body="Die Bilder sind online.\n", when=writer.at(rng.uniform(30, 300)))
    # Notifications from machines.
    machines = (
        ("Paketdienst", "noreply@paket.example", "Ihre Sendung ist unterwegs"),
        ("Online-Banking", "no-reply@bank.example", "Neuer Kontoauszug verfügbar"),
        ("Calendar", "calendar-notification@mail.example", "Reminder: shoot at 10:00"),
        ("Cloud Storage", "donotreply@cloud.example", "Your storage is 80% full"),
    )
    for name, address, title in machines:
        for _ in range(rng.randint(8, 16)):
            writer.add("INBOX", sender=Address(name, addr_spec=address), to=[me], subject=title,
                       body="This is an automated message.\n",
                       when=writer.at(rng.uniform(0.5, HISTORY_DAYS)))
    # Out-of-office replies from overdue people do not bring them back.
    for person in [p for p in people if p.story == "overdue"][:3]:
        writer.add("INBOX", sender=Address(person.name, addr_spec=person.address), to=[me],
                   subject=("Abwesenheitsnotiz" if person.language == "de"
                            else "Automatic reply: out of office"),
                   body="Ich bin bis Montag nicht im Büro.\n" if person.language == "de"
                   else "I am out of the office until Monday.\n",
                   when=writer.at(rng.uniform(2, 20)), language=person.language,
                   headers={"Auto-Submitted": "auto-replied"})
    for number in range(12):
        writer.add("Junk", sender=Address("Gewinnspiel", addr_spec="winner@lottery.example"),
                   to=[me], subject=f"Sie haben gewonnen! ({number + 1})", body="Klicken!\n",
                   when=writer.at(rng.uniform(0.2, 200)), flags=())


def generate(now: datetime, seed: int = SEED) -> DemoMailbox:
    """The demo mailbox: the same for the same seed and day (times of day are drawn, too)."""
    rng = random.Random(seed)  # noqa: S311 - sample data, not secrets
    writer = _Writer(rng, now)
    people = cast(rng)
    writer.box.people = people
    me = Address(ME_NAME, addr_spec=ME)
    for person in people:
        write_history(writer, person, me)
    write_noise(writer, people, me)
    log.debug("generated %d messages from %d people", len(writer.box.messages), len(people))
    return writer.box
