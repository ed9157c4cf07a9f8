"""Seeded mailboxes with known answers: an adversarial one for the ledger, a fast realistic one.

:func:`generate` plants a mailbox full of the cases SPEC "Words" talks about (encoded names,
odd dates, automated mail, lists, aliases, duplicates, drafts, junk …) and computes the ledger
the scanner must produce from its *own plan* — who wrote to whom, when — never by calling
agent code, so a test comparing the two proves something.

:func:`realistic` yields many ordinary messages quickly, for benchmarks and kill tests.
"""

from __future__ import annotations

import base64
import random
import string
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

Direction = Literal["in", "out"]
Kind = Literal["human", "list", "automated", "self"]

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

FIRST_DE = ("Jürgen", "Hans", "Anna", "Maria", "Lena", "Jörg", "Sören", "Käthe", "Günther",
            "Ulrike", "Björn", "Franziska", "Matthias", "Sabine", "Dörte", "Claudia", "Uwe",
            "Heike", "Bärbel", "Jens", "Tobias", "Mareike", "Özlem", "Ralf")
LAST_DE = ("Müller", "Schmidt", "Schneider", "Fischer", "Weiß", "Meyer", "Wagner", "Becker",
           "Schäfer", "Koch", "Groß", "Krüger", "Hoffmann", "Löwe", "Bäcker", "Schröder",
           "Neumann", "Zimmermann", "Braun", "Hartmann", "Lange", "Köhler", "Jäger")
FIRST_EN = ("Oliver", "Emily", "James", "Charlotte", "Harry", "Sophie", "Jack", "Grace",
            "Thomas", "Olivia", "George", "Amelia", "Noah", "Isla")
LAST_EN = ("Smith", "Jones", "Taylor", "Brown", "O'Neill", "Walker", "Wright", "Clarke",
           "Evans", "Roberts", "Hughes", "Green")
FREEMAIL = ("gmx.de", "web.de", "gmail.com", "t-online.de", "gmx.net", "posteo.de")
COMPANIES = ("bigcorp.example", "agentur-sonnenschein.de", "verlag-nord.example",
             "studio-elbe.de", "acme.co.uk", "hochzeitsmesse.example", "stadtwerke.example",
             "brightmedia.example")
SUBJECTS_DE = ("Fotoshooting am Donnerstag", "Angebot für die Hochzeitsreportage",
               "Rechnung 2024-114", "Kurze Frage zu den Bildern", "Termin nächste Woche?",
               "Bildauswahl für den Katalog", "Grüße aus München", "Übergabe der Dateien",
               "Portraits fürs Team", "Nutzungsrechte", "Kaffee?")
SUBJECTS_EN = ("Photo shoot on Thursday", "Quote for the wedding", "Quick question",
               "Meeting notes", "Lunch?", "Image selection", "Contract draft", "Catching up")
ZONES = ("+0100", "+0200", "-0700", "-0000", "+0000", "GMT", "-0500", "+0530", "+0100 (CET)",
         "+0200 (CEST)", "EST", "PDT")
_TRANSLIT = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "Ä": "Ae", "Ö": "Oe",
                           "Ü": "Ue", "'": "", " ": "", "Ç": "C", "ç": "c"})


# --------------------------------------------------------------------------- public records


@dataclass(frozen=True)
class Planted:
    """One message to APPEND: where, what, with which flags and INTERNALDATE (aware UTC)."""

    folder: str
    raw: bytes
    flags: tuple[str, ...]
    internaldate: datetime
    note: str = ""  # what case it plants, for failure messages

    def item(self) -> tuple[str, bytes, tuple[str, ...], datetime]:
        return self.folder, self.raw, self.flags, self.internaldate


@dataclass(frozen=True)
class Expected:
    """What the ledger must say about one identity key."""

    key: str
    name: str
    last_exchange: datetime  # aware UTC, whole seconds
    last_direction: Direction
    last_subject: str
    messages_in: int
    messages_out: int

    @property
    def two_way(self) -> bool:
        return bool(self.messages_in and self.messages_out)


@dataclass
class GeneratedMailbox:
    """A planted mailbox and the ledger it must produce.

    ``expected`` is the ledger with ``two_way = true`` (everyone who wrote to the user and
    was written to); ``expected_one_way`` the ledger with ``two_way = false`` (every human
    correspondent: ``expected`` plus those who only wrote or were only written to);
    :meth:`ledger` picks one.  ``never_contacts`` are keys that must not appear in any ledger.
    """

    seed: int
    now: datetime
    me: str
    aliases: tuple[str, ...]
    folders: dict[str, str]  # role → folder name (inbox, sent, drafts, junk, trash, archive…)
    create: tuple[str, ...]  # folders the test must create before appending
    messages: list[Planted]
    expected: dict[str, Expected]
    expected_one_way: dict[str, Expected]
    never_contacts: set[str]
    cases: dict[str, str] = field(default_factory=dict)  # case name → identity key it concerns

    def ledger(self, two_way: bool = True) -> dict[str, Expected]:
        return dict(self.expected if two_way else self.expected_one_way)

    def one_way_only(self) -> dict[str, Expected]:
        """Contacts with ``two_way = false`` that ``two_way = true`` leaves out."""
        return {k: e for k, e in self.expected_one_way.items() if k not in self.expected}

    def items(self) -> list[tuple[str, bytes, tuple[str, ...], datetime]]:
        """(folder, raw, flags, internaldate) for ``ImapAccount.append_many``."""
        return [m.item() for m in self.messages]

    def counted_folders(self) -> set[str]:
        """Folders the scanner reads (everything but Drafts, Junk and Trash)."""
        skipped = {self.folders["drafts"], self.folders["junk"], self.folders["trash"]}
        return {m.folder for m in self.messages} - skipped


# --------------------------------------------------------------------------- identity (own copy)


def identity_key(address: str) -> str:
    """SPEC "Identity", written independently of agent.headers: lowercase, ``+tag`` folded,
    Gmail dots and googlemail.com folded."""
    local, _, domain = address.strip().lower().rpartition("@")
    local = local.split("+", 1)[0] if not local.startswith("+") else local
    if domain in ("gmail.com", "googlemail.com"):
        local, domain = local.replace(".", ""), "gmail.com"
    return f"{local}@{domain}"


# --------------------------------------------------------------------------- rendering


def _q_word(text: str, charset: str = "utf-8", *, raw_comma: bool = False) -> str:
    out = []
    for byte in text.encode(charset):
        char = chr(byte)
        if char == " ":
            out.append("_")
        elif byte < 128 and (char.isalnum() or (raw_comma and char == ",")):
            out.append(char)
        else:
            out.append(f"={byte:02X}")
    return f"=?{charset}?Q?{''.join(out)}?="


def _b_word(text: str, charset: str = "UTF-8") -> str:
    return f"=?{charset}?B?{base64.b64encode(text.encode(charset)).decode()}?="


_NEEDS_QUOTES = set('()<>[]:;@\\,."')


def render_name(name: str, style: str) -> str:
    """A display name as a mailer writes it; every style decodes to ``name``."""
    if not name or style == "bare":
        return ""
    if style == "q":
        return _q_word(name)
    if style == "q-comma":  # raw comma inside a Q word: illegal, and common
        return _q_word(name, raw_comma=True)
    if style == "b":
        return _b_word(name)
    if style == "latin1":
        return _q_word(name, "iso-8859-1")
    if style == "split":  # two adjacent encoded words: the space between them vanishes
        first, _, rest = name.partition(" ")
        return f"{_b_word(first)} {_q_word(' ' + rest)}" if rest else _b_word(first)
    if style == "quoted-encoded":  # "=?utf-8?Q?...?=": against the RFC, seen in the wild
        return f'"{_q_word(name)}"'
    if style == "quoted" or set(name) & _NEEDS_QUOTES:
        return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return name  # plain: raw 8-bit UTF-8 when not ASCII


def render_mailbox(name: str, address: str, style: str) -> str:
    shown = render_name(name, style)
    if style == "comment":  # the old form: address (Name)
        return f"{address} ({name})"
    if style == "bare" or not shown:
        return address if style != "angle" else f"<{address}>"
    return f"{shown} <{address}>"


def render_subject(subject: str, style: str) -> str:
    if style == "q":
        return _q_word(subject)
    if style == "b":
        return _b_word(subject)
    if style == "re-q" and subject.startswith("Re: "):
        return "Re: " + _q_word(subject[4:])
    if style == "folded" and len(subject) > 1:  # two encoded words on two lines
        half = len(subject) // 2
        return f"{_q_word(subject[:half])}\r\n {_b_word(subject[half:])}"
    return subject  # raw (8-bit UTF-8 where not ASCII)


# RFC 5322 obs-zone names (section 4.3) in minutes east of UTC.
OBS_ZONES = {"GMT": 0, "UT": 0, "EST": -300, "EDT": -240, "CST": -360, "CDT": -300,
             "MST": -420, "MDT": -360, "PST": -480, "PDT": -420}


def _zone_minutes(zone: str) -> int:
    word = zone.split(maxsplit=1)[0]
    if word in OBS_ZONES:
        return OBS_ZONES[word]
    sign = -1 if word[0] == "-" else 1
    return sign * (int(word[1:3]) * 60 + int(word[3:5]))


def rfc_date(instant: datetime, zone: str = "+0100", *, weekday: bool = True,
             two_digit_year: bool = False, seconds: bool = True) -> str:
    """An RFC 5322 date for ``instant`` written in ``zone`` (e.g. "+0100", "-0000", "GMT")."""
    local = instant.astimezone(UTC) + timedelta(minutes=_zone_minutes(zone))
    year = f"{local.year % 100:02d}" if two_digit_year else str(local.year)
    day = f"{WEEKDAYS[local.weekday()]}, " if weekday else ""
    clock = f"{local.hour:02d}:{local.minute:02d}"
    if seconds:
        clock += f":{local.second:02d}"
    elif local.second:
        raise ValueError("a Date without seconds needs a time on the full minute")
    return f"{day}{local.day} {MONTHS[local.month - 1]} {year} {clock} {zone}"


def build_message(headers: Sequence[tuple[str, str]],
                  body: str = "Hallo,\r\n\r\nGruß\r\n") -> bytes:
    """Header fields (values may hold raw UTF-8) and a body as CRLF bytes."""
    lines = [f"{name}: {value}" for name, value in headers]
    lines += ["MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8",
              "Content-Transfer-Encoding: 8bit", "", body]
    return "\r\n".join(lines).encode("utf-8")


def _fold_addresses(items: Sequence[str]) -> str:
    """An address list folded the way mailers do once it gets long."""
    if len(items) <= 2:
        return ", ".join(items)
    return ",\r\n\t".join(items)


# --------------------------------------------------------------------------- the plan


@dataclass
class Who:
    """Someone (or something) that appears in headers."""

    name: str
    address: str  # as usually written
    kind: Kind = "human"
    style: str = "plain"  # how they write their own name
    lang: str = "de"

    @property
    def key(self) -> str:
        return identity_key(self.address)

    def header(self, style: str | None = None, address: str | None = None) -> str:
        return render_mailbox(self.name, address or self.address, style or self.style)


@dataclass
class _Event:
    time: datetime
    direction: Direction
    name: str
    subject: str


@dataclass
class _Thread:
    subject: str
    ids: list[str] = field(default_factory=list)

    def reply_subject(self, lang: str) -> str:
        return ("Aw: " if lang == "de" and len(self.ids) % 3 == 2 else "Re: ") + self.subject


class _Planner:
    """Builds messages and, alongside, the ledger they must produce (from the plan alone)."""

    def __init__(self, seed: int, now: datetime, me: str, aliases: Sequence[str],
                 folders: dict[str, str]) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.now = now.astimezone(UTC).replace(microsecond=0)
        self.folders = folders
        self.me = Who("Mia Example", me, "self", "plain")
        self.aliases = [Who("Mia Example", a, "self", "plain") for a in aliases]
        self.messages: list[Planted] = []
        self.events: dict[str, list[_Event]] = {}
        self.never: set[str] = set()
        self.cases: dict[str, str] = {}
        self._times: set[datetime] = set()
        self._ids: set[str] = set()
        self._keys: set[str] = {self.me.key, *(a.key for a in self.aliases)}
        self.never.update(self._keys)

    # ----------------------------------------------------------------- primitives

    def unique_time(self, start: datetime, end: datetime) -> datetime:
        span = int((end - start).total_seconds())
        while True:
            moment = start + timedelta(seconds=self.rng.randrange(max(span, 1)))
            if moment not in self._times:
                self._times.add(moment)
                return moment

    def message_id(self, domain: str) -> str:
        while True:
            token = "".join(self.rng.choices(string.ascii_letters + string.digits, k=20))
            ident = f"{token}.{self.seed}@{domain}"
            if ident not in self._ids:
                self._ids.add(ident)
                return ident

    def person(self, *, lang: str | None = None, domain: str | None = None,
               style: str | None = None, name: str | None = None,
               address: str | None = None) -> Who:
        rng = self.rng
        lang = lang or rng.choice(("de", "de", "de", "en"))
        for _attempt in range(1000):
            if name is None:
                first = rng.choice(FIRST_DE if lang == "de" else FIRST_EN)
                last = rng.choice(LAST_DE if lang == "de" else LAST_EN)
                full = f"{first} {last}"
            else:
                full = name
                first, _, last = name.partition(" ")
            if address is None:
                host = domain or rng.choice(FREEMAIL + COMPANIES)
                f, la = first.translate(_TRANSLIT).lower(), last.translate(_TRANSLIT).lower()
                local = rng.choice((f"{f}.{la}", f"{f[0]}.{la}", f"{f}{la}", f"{f}_{la}",
                                    f"{f}.{la}{rng.randint(1, 99)}"))
                candidate = f"{local}@{host}"
            else:
                candidate = address
            key = identity_key(candidate)
            if key not in self._keys:
                self._keys.add(key)
                if style is None:
                    style = rng.choice(("plain", "plain", "plain", "quoted", "q", "b",
                                        "latin1" if _latin1(full) else "q", "split"))
                return Who(full, candidate, "human", style, lang)
            if address is not None:
                raise ValueError(f"duplicate address {address}")
        raise RuntimeError("could not find a fresh address")

    def thing(self, name: str, address: str, kind: Kind) -> Who:
        who = Who(name, address, kind, "quoted" if name else "bare", "de")
        self._keys.add(who.key)
        self.never.add(who.key)
        return who

    def record(self, who: Who, direction: Direction, when: datetime, name: str,
               subject: str) -> None:
        assert who.kind == "human", who
        self.events.setdefault(who.key, []).append(_Event(when, direction, name, subject))

    def plant(self, folder: str, headers: list[tuple[str, str]], internaldate: datetime,
              flags: tuple[str, ...] = ("\\Seen",), note: str = "",
              copies: Sequence[str] = ()) -> bytes:
        raw = build_message(headers)
        for where in (folder, *copies):
            self.messages.append(Planted(where, raw, flags, internaldate, note))
        return raw

    def last_time(self, who: Who) -> datetime:
        return max(e.time for e in self.events[who.key])

    # ----------------------------------------------------------------- messages

    def date_fields(self, when: datetime, quirk: str | None, delay: int) -> tuple[
            list[tuple[str, str]], datetime]:
        """The Date header for a message whose true time is ``when``, and its INTERNALDATE.

        Sane Dates carry ``when`` (INTERNALDATE is a little later, as after delivery);
        insane ones (missing, garbage, future, 1970) leave ``when`` to the INTERNALDATE.
        """
        rng = self.rng
        later = when + timedelta(seconds=delay)
        if quirk is None:
            zone = rng.choice(ZONES)
            return [("Date", rfc_date(when, zone, weekday=rng.random() < 0.9))], later
        if quirk in ("-0000", "-0700", "+0530", "GMT", "+1400", "PDT", "EST"):
            return [("Date", rfc_date(when, quirk))], later
        if quirk == "colon-zone":  # "+01:00": not RFC 5322, common from scripts
            date = rfc_date(when, "-0700")
            return [("Date", date[:-2] + ":" + date[-2:])], later
        if quirk == "gmt-offset":  # "GMT+0100", as JavaScript's Date.toString writes it
            return [("Date", rfc_date(when, "+0100").replace("+0100", "GMT+0100"))], later
        if quirk == "no-seconds":  # seconds are optional in RFC 5322
            return [("Date", rfc_date(when, "+0100", seconds=False))], later
        if quirk == "2digit":
            return [("Date", rfc_date(when, "+0100", two_digit_year=True))], later
        if quirk == "skewed-future":  # a sender clock 4 h fast: within a day, so believed
            return [("Date", rfc_date(when, "+0200"))], when - timedelta(hours=4)
        if quirk == "missing":
            return [], when
        if quirk == "garbage":
            return [("Date", "Donnerstag, irgendwann nachmittags")], when
        if quirk == "future":
            return [("Date", rfc_date(self.now + timedelta(days=900), "+0100"))], when
        if quirk == "1970":
            return [("Date", "Thu, 01 Jan 1970 00:00:00 +0000")], when
        raise ValueError(quirk)

    def received(self, sender: Who, when: datetime, subject: str, *,
                 to: Sequence[str] | None = None, cc: Sequence[str] = (),
                 thread: _Thread | None = None, extra: Sequence[tuple[str, str]] = (),
                 quirk: str | None = None, counts: bool = True, folder: str = "INBOX",
                 flags: tuple[str, ...] = ("\\Seen",), copies: Sequence[str] = (),
                 reply_to: Who | None = None, reply_to_counts: bool = False,
                 subject_style: str | None = None, sender_style: str | None = None,
                 sender_address: str | None = None, message_id: bool = True,
                 note: str = "") -> None:
        rng = self.rng
        date, internaldate = self.date_fields(when, quirk, rng.randint(5, 400))
        headers: list[tuple[str, str]] = []
        if rng.random() < 0.3 and not any(n == "Return-Path" for n, _ in extra):
            headers.append(("Return-Path", f"<{sender_address or sender.address}>"))
        headers.append(("From", sender.header(sender_style, sender_address)))
        headers.append(("To", _fold_addresses(to if to is not None else [self.me.header()])))
        if cc:
            headers.append(("Cc", _fold_addresses(cc)))
        if reply_to is not None:
            headers.append(("Reply-To", reply_to.header()))
        headers.append(("Subject", render_subject(subject, subject_style or rng.choice(
            ("raw", "raw", "q", "b", "re-q", "folded")))))
        headers += date
        if message_id:
            domain = (sender_address or sender.address).rpartition("@")[2].lower()
            ident = self.message_id(domain)
            headers.append(("Message-ID", f"<{ident}>"))
            if thread is not None:
                if thread.ids:
                    headers.append(("In-Reply-To", f"<{thread.ids[-1]}>"))
                    headers.append(("References", "\r\n ".join(f"<{i}>" for i in thread.ids)))
                thread.ids.append(ident)
        if rng.random() < 0.5:
            headers.append(("Content-Language", "de-DE" if sender.lang == "de" else "en-GB"))
        headers += extra
        self.plant(folder, headers, internaldate, flags, note, copies)
        if counts:
            self.record(sender, "in", when, sender.name, subject)
            if reply_to is not None and reply_to_counts:
                self.record(reply_to, "in", when, reply_to.name, subject)

    def sent(self, to: Sequence[Who], when: datetime, subject: str, *, cc: Sequence[Who] = (),
             bcc: Sequence[Who] = (), thread: _Thread | None = None,
             sender: Who | None = None, quirk: str | None = None, counts: bool = True,
             folder: str | None = None, flags: tuple[str, ...] = ("\\Seen",),
             copies: Sequence[str] = (), styles: dict[str, str] | None = None,
             addresses: dict[str, str] | None = None, extra: Sequence[tuple[str, str]] = (),
             raw_to: Sequence[str] = (), delivered_copy: bool = False,
             note: str = "") -> None:
        """The user writes; every human recipient (To, Cc, Bcc; once each) gets an "out".

        ``delivered_copy``: the user is a recipient too, so a copy arrives in INBOX, with the
        header fields delivery adds and a later INTERNALDATE (the same message: counts once).
        """
        rng = self.rng
        sender = sender or self.me
        styles = styles or {}
        addresses = addresses or {}
        date, internaldate = self.date_fields(when, quirk, rng.randint(0, 2))

        def shown(who: Who) -> tuple[str, str]:
            # The user's client writes names its own way (or not at all).
            style = styles.get(who.key) or rng.choice(("q", "b", "plain", "quoted", "bare"))
            return who.header(style, addresses.get(who.key)), ("" if style == "bare" else who.name)

        headers: list[tuple[str, str]] = [("From", sender.header())]
        names: dict[str, str] = {}
        for label, group in (("To", to), ("Cc", cc), ("Bcc", bcc)):
            rendered = []
            for who in group:
                text, name = shown(who)
                rendered.append(text)
                names.setdefault(who.key, name)
            if label == "To":
                rendered += raw_to
            if rendered:
                headers.append((label, _fold_addresses(rendered)))
        headers.append(("Subject", render_subject(subject, rng.choice(("raw", "q", "re-q")))))
        headers += date
        ident = self.message_id(sender.address.rpartition("@")[2].lower())
        headers.append(("Message-ID", f"<{ident}>"))
        if thread is not None:
            if thread.ids:
                headers.append(("In-Reply-To", f"<{thread.ids[-1]}>"))
                headers.append(("References", "\r\n ".join(f"<{i}>" for i in thread.ids)))
            thread.ids.append(ident)
        headers.append(("User-Agent", "Mozilla Thunderbird"))
        headers += extra
        self.plant(folder or self.folders["sent"], headers, internaldate, flags, note, copies)
        if delivered_copy:
            # Delivery adds trace fields and drops Bcc.
            delivered = [("Return-Path", f"<{sender.address}>"),
                         ("Delivered-To", self.me.address),
                         *(h for h in headers if h[0] != "Bcc")]
            self.plant("INBOX", delivered, internaldate + timedelta(seconds=rng.randint(2, 90)),
                       (), note + " (delivered copy)")
        if counts:
            seen: set[str] = set()
            for who in (*to, *cc, *bcc):
                if who.kind == "human" and who.key not in seen:
                    seen.add(who.key)
                    self.record(who, "out", when, names[who.key], subject)

    # ----------------------------------------------------------------- conversations

    def conversation(self, who: Who, start: datetime, end: datetime, *,
                     directions: Sequence[Direction] | None = None) -> _Thread:
        """A thread with ``who``: alternating mostly, both directions unless told otherwise."""
        rng = self.rng
        if directions is None:
            count = rng.randint(2, 6)
            first: Direction = rng.choice(("in", "out"))
            directions = [first]
            while len(directions) < count:
                previous = directions[-1]
                flip = rng.random() < 0.8
                directions.append(("out" if previous == "in" else "in") if flip else previous)
            if len(set(directions)) == 1:
                directions.append("out" if directions[0] == "in" else "in")
        times = sorted(self.unique_time(start, end) for _ in directions)
        thread = _Thread(rng.choice(SUBJECTS_DE if who.lang == "de" else SUBJECTS_EN))
        for n, (direction, when) in enumerate(zip(directions, times, strict=True)):
            subject = thread.subject if n == 0 else thread.reply_subject(who.lang)
            if direction == "in":
                self.received(who, when, subject, thread=thread)
            else:
                self.sent([who], when, subject, thread=thread)
        return thread


def _latin1(text: str) -> bool:
    try:
        text.encode("iso-8859-1")
    except UnicodeEncodeError:
        return False
    return True


DEFAULT_FOLDERS = {
    "inbox": "INBOX",
    "sent": "Sent",
    "drafts": "Drafts",
    "junk": "Junk",
    "trash": "Trash",
    "archive": "Archiv/2024",
    "project": "Projekte/Kunde Müller",
}


def generate(seed: int, *, people: int = 40, now: datetime, me: str = "me@example.org",
             aliases: Sequence[str] = ("mia.private@gmx.de",),
             folders: dict[str, str] | None = None) -> GeneratedMailbox:
    """An adversarial mailbox and the ledger it must produce.

    ``people`` ordinary correspondents with plain threads, plus about 45 fixed special cases.
    ``folders`` maps roles to the account's folder names (defaults: :data:`DEFAULT_FOLDERS`);
    "archive" and "project" are to be created by the caller (see ``create``).
    """
    names = {**DEFAULT_FOLDERS, **(folders or {})}
    plan = _Planner(seed, now, me, aliases, names)
    rng = plan.rng
    now = plan.now
    old, recent = now - timedelta(days=700), now - timedelta(days=30)
    latest = now - timedelta(hours=2)

    def newer(who: Who, *, at_most: datetime = latest) -> datetime:
        """A fresh time after everything planted for ``who`` so far."""
        return plan.unique_time(plan.last_time(who) + timedelta(minutes=10), at_most)

    # -- names and addresses in every shape (fixed addresses first: no random one takes them)
    def case(label: str, who: Who) -> Who:
        plan.cases[label] = who.key
        return who

    anna = case("gmail-dots", plan.person(name="Anna Schmidt",
                                          address="Anna.Schmidt@gmail.com", style="plain"))
    hans = case("uppercase-quoted-comma", plan.person(
        name="Müller, Hans", address="HANS.MUELLER@T-Online.de", style="quoted"))
    juergen = case("latin1-q", plan.person(name="Jürgen Müller",
                                           address="j.mueller@stadtwerke.example",
                                           style="latin1"))
    kaethe = case("q-raw-comma", plan.person(name="Weiß, Käthe", address="kaethe@web.de",
                                             style="q-comma"))
    joerg = case("b-comma", plan.person(name="Groß, Jörg", address="j.gross@verlag-nord.example",
                                        style="b"))
    soeren = case("quoted-encoded", plan.person(name="Sören Krüger", address="soeren@posteo.de",
                                                style="quoted-encoded"))
    oezlem = case("split-words", plan.person(name="Özlem Çelik",
                                             address="oezlem.celik@brightmedia.example",
                                             style="split"))
    bjoern = case("raw-8bit", plan.person(name="Björn Weiß", address="bjoern@gmx.de",
                                          style="plain"))
    plus = case("plus-tag", plan.person(name="Jonas Weber", address="j.weber@bigcorp.example",
                                        style="plain"))
    noname = case("no-name", plan.person(name="", address="kontakt@studio-elbe.de",
                                         style="bare"))
    helga = case("comment-name", plan.person(name="Helga Brandt", address="helga.brandt@web.de",
                                             style="comment"))
    emily = case("english", plan.person(name="Emily O'Neill", address="emily@acme.co.uk",
                                        style="plain", lang="en"))

    # -- ordinary people: threads in both directions ------------------------------------------
    ordinary = [plan.person() for _ in range(people)]
    for who in ordinary:
        plan.conversation(who, old, recent)

    # The special cases' mail.
    plan.conversation(anna, old, recent)
    # Anna writes from the dotted gmail address; the user answers her googlemail one.
    plan.sent([anna], newer(anna, at_most=recent), "Re: Bilder vom Sommerfest",
              addresses={anna.key: "annaschmidt@googlemail.com"},
              styles={anna.key: "plain"})
    plan.received(anna, newer(anna, at_most=recent), "Danke!",
                  sender_address="anna.schmidt@gmail.com")
    for who in (hans, juergen, kaethe, joerg, soeren, oezlem, bjoern, emily, helga):
        plan.conversation(who, old, recent)
    # Mixed case and +tag: they write from the base address, the user to a +tag variant.
    plan.conversation(plus, old, recent, directions=("in", "in"))
    plan.sent([plus], newer(plus, at_most=recent), "Re: Projekt Nordlicht",
              addresses={plus.key: "J.Weber+projekt@BigCorp.Example"})
    # Only bare addresses, both ways (angle brackets, no name).
    plan.received(noname, plan.unique_time(old, recent), "Anfrage", sender_style="angle")
    plan.sent([noname], newer(noname, at_most=recent), "Re: Anfrage",
              styles={noname.key: "bare"})

    # -- dates: each quirk decides the person's last exchange ---------------------------------
    for quirk in ("-0000", "-0700", "+1400", "PDT", "EST", "colon-zone", "gmt-offset",
                  "no-seconds", "2digit", "missing", "garbage", "future", "1970",
                  "skewed-future"):
        who = case(f"date:{quirk}", plan.person())
        plan.conversation(who, old, recent)
        when = now + timedelta(hours=3) if quirk == "skewed-future" else newer(who)
        if quirk == "no-seconds":
            when = when.replace(second=0)
        if quirk in ("1970", "2digit"):  # the user's own client with a broken clock
            plan.sent([who], when, "Re: Nachtrag", quirk=quirk)
        else:
            plan.received(who, when, "Nachtrag", quirk=quirk)
    # Two-digit years only make sense within 2000–2068 (RFC 5322 obs-year).
    assert 2000 <= now.year < 2068

    # -- the same second both ways: the user's answer is the later act ------------------------
    tie = case("tie", plan.person())
    plan.conversation(tie, old, recent)
    moment = newer(tie)
    thread = _Thread("Kurze Rückfrage")
    plan.received(tie, moment, "Kurze Rückfrage", thread=thread, quirk="-0700")
    plan.sent([tie], moment, "Re: Kurze Rückfrage", thread=thread, quirk="GMT")

    # -- several recipients: To, Cc and Bcc each count out, once per person -------------------
    team = [plan.person(domain="bigcorp.example") for _ in range(3)]
    bcc_only = case("bcc-one-way-out", plan.person())
    for who in team:
        plan.conversation(who, old, recent)
    team_time = plan.unique_time(max(plan.last_time(w) for w in team), latest)
    plan.sent([team[0], team[1]], team_time, "Abstimmung Katalog", cc=[team[2], team[0]],
              bcc=[bcc_only], note="several recipients; team[0] in To and Cc")
    # Received mail with other recipients: only the sender is an exchange.
    cc_only = case("cc-only", plan.person())
    other_to = case("other-to-only", plan.person())
    plan.never.update({cc_only.key, other_to.key})
    plan.received(team[1], plan.unique_time(old, recent), "Runde mit allen",
                  to=[plan.me.header(), other_to.header()], cc=[cc_only.header(),
                                                                team[2].header("b")])
    # Received, the user only in Cc / only in Bcc: still an exchange with the sender.
    plan.received(team[2], plan.unique_time(old, recent), "FYI",
                  to=[team[0].header()], cc=[plan.me.header()])
    plan.received(team[0], plan.unique_time(old, recent), "Einladung", to=[team[1].header()])

    # Undisclosed recipients: the user writes to a group (an empty one) and Bcc.
    quiet = [case("undisclosed-bcc", plan.person()), plan.person()]
    for who in quiet:
        plan.conversation(who, old, recent)
    plan.sent([], plan.unique_time(old, latest), "Einladung zur Ausstellung", bcc=quiet,
              raw_to=["undisclosed-recipients:;"])

    # -- Reply-To: a human one counts, a noreply one does not ---------------------------------
    boss = case("reply-to-from", plan.person(domain="hochzeitsmesse.example"))
    assistant = case("reply-to-human", plan.person(domain="hochzeitsmesse.example"))
    plan.conversation(boss, old, recent)
    plan.sent([assistant], plan.unique_time(old, recent), "Standfotos")
    plan.received(boss, plan.unique_time(plan.last_time(assistant), latest), "Messe 2025",
                  reply_to=assistant, reply_to_counts=True)
    noreply_rt = plan.thing("Messe Service", "no-reply@hochzeitsmesse.example", "automated")
    plan.received(boss, plan.unique_time(old, recent), "Anmeldung bestätigt", reply_to=noreply_rt)

    # -- the user's own addresses -------------------------------------------------------------
    alias_friend = case("alias", plan.person(domain="gmx.de"))
    alias = plan.aliases[0] if plan.aliases else plan.me
    plan.received(alias_friend, plan.unique_time(old, recent), "Geburtstag",
                  to=[alias.header()])
    plan.sent([alias_friend], newer(alias_friend), "Re: Geburtstag", sender=alias)
    plan.sent([], plan.unique_time(old, latest), "Notiz an mich",
              raw_to=[plan.me.header(), *(a.address for a in plan.aliases)],
              note="to self and aliases only")
    upper_me = case("mixed-case-self", plan.person())
    plan.received(upper_me, plan.unique_time(old, recent), "Hallo",
                  to=[f"Mia <{me.upper()}>"])
    local, _, domain = me.partition("@")
    plan.sent([upper_me], newer(upper_me), "Re: Hallo",
              sender=Who("Mia Example", f"{local.capitalize()}+shop@{domain.title()}", "self"))

    # -- the same message in several folders counts once --------------------------------------
    dup = case("duplicate-in", plan.person())
    plan.conversation(dup, old, recent)
    plan.received(dup, newer(dup), "Vertrag unterschrieben", copies=[names["archive"]],
                  note="INBOX and archive copy")
    dup_out = case("duplicate-out", plan.person())
    plan.conversation(dup_out, old, recent)
    plan.sent([dup_out], newer(dup_out), "Angebot Kunde A", copies=[names["project"]],
              note="sent, copied to a project folder")
    cc_self = case("cc-self", plan.person())
    plan.conversation(cc_self, old, recent)
    plan.sent([cc_self], newer(cc_self), "Bitte ablegen", raw_to=[plan.me.address],
              delivered_copy=True, note="sent with a copy to self: also in INBOX")
    no_id = case("no-message-id", plan.person())
    plan.conversation(no_id, old, recent)
    plan.received(no_id, newer(no_id), "Ohne Kennung", message_id=False,
                  copies=[names["archive"]])

    # -- one-way correspondents ---------------------------------------------------------------
    for n in range(3):
        plan.conversation(case(f"one-way-in-{n}", plan.person()), old, latest,
                          directions=("in",) * (n + 1))
    for n in range(2):
        plan.conversation(case(f"one-way-out-{n}", plan.person()), old, latest,
                          directions=("out",) * (n + 1))

    # -- automated mail -----------------------------------------------------------------------
    list_addr = "stammtisch@lists.fotografen.example"
    mailing_list = plan.thing("Fotografen-Stammtisch", list_addr, "list")
    list_request = plan.thing("", "stammtisch-request@lists.fotografen.example", "automated")
    list_headers = [
        ("List-Id", "Fotografen-Stammtisch <stammtisch.lists.fotografen.example>"),
        ("List-Post", f"<mailto:{list_addr}>"),
        ("List-Unsubscribe", "<mailto:stammtisch-request@lists.fotografen.example"
                             "?subject=unsubscribe>"),
        ("Precedence", "list"),
        ("Reply-To", f"Fotografen-Stammtisch <{list_addr}>"),
    ]
    poster = case("list-poster-only", plan.person())
    plan.never.add(poster.key)
    list_contact = case("list-poster-contact", plan.person())
    plan.conversation(list_contact, old, recent)
    for who in (poster, poster, list_contact):
        plan.received(who, plan.unique_time(plan.last_time(list_contact), latest),
                      "Stammtisch im März", to=[mailing_list.header()], extra=list_headers,
                      counts=False, note="list post")
    plan.sent([mailing_list], plan.unique_time(old, latest), "Re: Stammtisch im März",
              note="the user writes to the list")
    plan.sent([list_request], plan.unique_time(old, latest), "unsubscribe")
    # The user's own post coming back through the list.
    plan.received(plan.me, plan.unique_time(old, latest), "Re: Stammtisch im März",
                  to=[mailing_list.header()], extra=list_headers, counts=False)

    shop = plan.thing("Fotoladen Newsletter", "newsletter@fotoladen.example", "automated")
    plan.received(shop, plan.unique_time(old, latest), "Neue Objektive im Angebot",
                  counts=False, extra=[
                      ("List-Id", "<newsletter.fotoladen.example>"),
                      ("List-Unsubscribe", "<https://fotoladen.example/abmelden?u=1>"),
                      ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")])
    verein = plan.thing("Kunstverein", "info@kunstverein.example", "automated")
    plan.received(verein, plan.unique_time(old, latest), "Einladung zur Vernissage",
                  counts=False, extra=[("Precedence", "bulk")])
    for label, address in (("noreply", "noreply@bahn.example"),
                           ("no-reply", "no-reply@accounts.example"),
                           ("donotreply", "DoNotReply@bank.example"),
                           ("news-noreply", "news-noreply@fotoladen.example")):
        sender = plan.thing(f"Service {label}", address, "automated")
        plan.received(sender, plan.unique_time(old, latest), "Ihre Buchung", counts=False)
    # Replying to a no-reply address by mistake still makes no contact.
    plan.sent([plan.thing("", "no-reply@accounts.example", "automated")],
              plan.unique_time(old, latest), "Re: Ihre Buchung", counts=False)
    daemon = plan.thing("Mail Delivery System", "MAILER-DAEMON@mx.gmx.net", "automated")
    plan.received(daemon, plan.unique_time(old, latest), "Undelivered Mail Returned to Sender",
                  counts=False, extra=[("Return-Path", "<>"), ("Auto-Submitted", "auto-replied")])
    postmaster = plan.thing("", "postmaster@bigcorp.example", "automated")
    plan.received(postmaster, plan.unique_time(old, latest), "Delivery Status Notification",
                  counts=False, extra=[("Return-Path", "<>")])
    # Out-of-office replies: from an otherwise unknown address, and from real contacts
    # (newer than their last exchange, which they must not refresh).
    stand_in = plan.thing("Vertretung", "vertretung@agentur-sonnenschein.de", "automated")
    plan.received(stand_in, plan.unique_time(old, latest), "Abwesenheitsnotiz", counts=False,
                  extra=[("Auto-Submitted", "auto-replied")])
    ooo = case("ooo-contact", plan.person())
    plan.conversation(ooo, old, recent)
    plan.received(ooo, newer(ooo), "Automatische Antwort: Termin", counts=False,
                  extra=[("Auto-Submitted", "auto-replied"),
                         ("X-Auto-Response-Suppress", "All")])
    ooo2 = case("ooo-x-autoreply", plan.person())
    plan.conversation(ooo2, old, recent)
    plan.received(ooo2, newer(ooo2), "Out of office", counts=False,
                  extra=[("X-Autoreply", "yes")])
    # "Auto-Submitted: no" says explicitly that a person wrote it.
    not_auto = case("auto-submitted-no", plan.person())
    plan.conversation(not_auto, old, recent)
    plan.received(not_auto, newer(not_auto), "Persönlich", extra=[("Auto-Submitted", "no")])
    bulk_contact = case("bulk-from-contact", plan.person())
    plan.conversation(bulk_contact, old, recent)
    plan.received(bulk_contact, newer(bulk_contact), "Rundbrief", counts=False,
                  extra=[("Precedence", "bulk")])

    # -- never counted: Drafts, \Draft, Junk, Trash -------------------------------------------
    drafted = case("drafts-folder-only", plan.person())
    plan.never.add(drafted.key)
    plan.sent([drafted], plan.unique_time(old, latest), "Entwurf", counts=False,
              folder=names["drafts"], flags=("\\Draft", "\\Seen"))
    flagged = case("draft-flag-only", plan.person())
    plan.never.add(flagged.key)
    plan.sent([flagged], plan.unique_time(old, latest), "Entwurf im Posteingang", counts=False,
              folder="INBOX", flags=("\\Draft",))
    refreshed_not = case("draft-and-trash-contact", plan.person())
    plan.conversation(refreshed_not, old, recent)
    plan.sent([refreshed_not], newer(refreshed_not), "Neuer Entwurf", counts=False,
              folder=names["drafts"], flags=("\\Draft", "\\Seen"))
    plan.received(refreshed_not, newer(refreshed_not), "Gelöscht", counts=False,
                  folder=names["trash"], flags=("\\Seen", "\\Deleted"))
    spammer = case("junk-only", plan.person())
    plan.never.add(spammer.key)
    plan.received(spammer, plan.unique_time(old, latest), "Sie haben gewonnen", counts=False,
                  folder=names["junk"])
    trashed = case("trash-only", plan.person())
    plan.never.add(trashed.key)
    plan.received(trashed, plan.unique_time(old, latest), "Alte Mail", counts=False,
                  folder=names["trash"])

    # -- a little noise: received mail with known contacts in Cc (not exchanges) --------------
    contacts = [w for w in ordinary if w.key in plan.events]
    for _ in range(min(6, len(contacts) // 2)):
        sender, bystander = rng.sample(contacts, 2)
        plan.received(sender, plan.unique_time(old, recent), "Zur Info",
                      cc=[bystander.header(), plan.me.header()], to=[bystander.header()])

    # A party invitation to many people in Bcc, the user in To.
    invited = rng.sample(contacts, min(10, len(contacts)))
    plan.sent([], plan.unique_time(old, recent), "Sommerfest im Atelier", bcc=invited,
              raw_to=[plan.me.header()], delivered_copy=True)

    return _finish(plan)


def _finish(plan: _Planner) -> GeneratedMailbox:
    expected: dict[str, Expected] = {}
    one_way: dict[str, Expected] = {}
    for key, events in plan.events.items():
        # Newest first; on equal times the user's answer ("out") is the later act.
        ordered = sorted(events, key=lambda e: (e.time, e.direction == "out"), reverse=True)
        newest = ordered[0]
        name = next((e.name for e in ordered if e.name), "")
        record = Expected(
            key=key,
            name=name,
            last_exchange=newest.time,
            last_direction=newest.direction,
            last_subject=newest.subject,
            messages_in=sum(e.direction == "in" for e in events),
            messages_out=sum(e.direction == "out" for e in events),
        )
        one_way[key] = record
        if record.two_way:
            expected[key] = record
    clash = plan.never & set(plan.events)
    if clash:
        raise AssertionError(f"generator bug: never-contacts with exchanges: {sorted(clash)}")
    # Folders to create: the archive and project folders (and Drafts/Junk/Trash exist).
    create = tuple(dict.fromkeys(
        m.folder for m in plan.messages
        if m.folder in (plan.folders["archive"], plan.folders["project"])))
    messages = sorted(plan.messages, key=lambda m: (m.folder, m.internaldate))
    return GeneratedMailbox(
        seed=plan.seed,
        now=plan.now,
        me=plan.me.address,
        aliases=tuple(a.address for a in plan.aliases),
        folders=dict(plan.folders),
        create=create,
        messages=messages,
        expected=expected,
        expected_one_way=one_way,
        never_contacts=set(plan.never),
        cases=dict(plan.cases),
    )


# --------------------------------------------------------------------------- realistic volume


def realistic(seed: int, n: int, *, now: datetime, me: str = "me@example.org",
              sent: str = "Sent", correspondents: int | None = None, start: int = 0,
              ) -> Iterator[tuple[str, bytes, tuple[str, ...], datetime]]:
    """``n`` ordinary messages, oldest first: (folder, raw CRLF bytes, flags, INTERNALDATE).

    About 2/3 land in INBOX and 1/3 in ``sent``; about 20 % are automated (newsletters with
    List-*, mailing-list posts, noreply senders, out-of-office replies).  300–2000 human
    correspondents (scaled with ``n``); 1–4 recipients; Message-IDs (all distinct),
    In-Reply-To/References chains on replies; some RFC 2047 names and subjects.  Fast enough
    for 100,000 messages in a few seconds.

    ``start`` numbers the messages from there, for "new mail" after a first call: with the
    same seed their Message-IDs differ from those of messages ``0 … start-1``, and they fall
    into the last day before ``now`` (a first call with ``start = 0`` spans three years up to
    a day before ``now``).
    """
    rng = random.Random(seed * 1_000_003 + start)
    now = now.astimezone(UTC).replace(microsecond=0)
    count = correspondents or min(2000, max(300, (n + start) // 25))
    user = f"Mia Example <{me}>"
    people: list[str] = []
    for i in range(count):
        lang = "de" if rng.random() < 0.7 else "en"
        first = rng.choice(FIRST_DE if lang == "de" else FIRST_EN)
        last = rng.choice(LAST_DE if lang == "de" else LAST_EN)
        local = f"{first.translate(_TRANSLIT).lower()}.{last.translate(_TRANSLIT).lower()}{i}"
        address = f"{local}@{rng.choice(FREEMAIL + COMPANIES)}"
        style = rng.random()
        if style < 0.15:
            people.append(render_mailbox(f"{first} {last}", address, "q"))
        elif style < 0.25:
            people.append(render_mailbox(f"{first} {last}", address, "b"))
        elif style < 0.35:
            people.append(render_mailbox(f"{last}, {first}", address, "quoted"))
        elif style < 0.9:
            people.append(render_mailbox(f"{first} {last}", address, "plain"))
        else:
            people.append(address)
    # A few people write a lot (Zipf-like): pick by index with a skewed distribution.
    weights = [1.0 / (i + 1) ** 0.8 for i in range(count)]
    cumulative: list[float] = []
    total = 0.0
    for weight in weights:
        total += weight
        cumulative.append(total)

    def anyone() -> str:
        return rng.choices(people, cum_weights=cumulative, k=1)[0]

    automated = [
        ("Fotoladen Newsletter <newsletter@fotoladen.example>",
         [("List-Id", "<newsletter.fotoladen.example>"),
          ("List-Unsubscribe", "<https://fotoladen.example/abmelden>, "
                               "<mailto:abmelden@fotoladen.example>")]),
        ("Deutsche Bahn <noreply@bahn.example>", []),
        ("Kunstverein <info@kunstverein.example>", [("Precedence", "bulk")]),
        ("Bank <donotreply@bank.example>", []),
        ("Mail Delivery System <MAILER-DAEMON@mx.example.net>",
         [("Return-Path", "<>"), ("Auto-Submitted", "auto-replied")]),
    ]
    list_headers = [("List-Id", "Fotografen <fotografen.lists.example.org>"),
                    ("List-Post", "<mailto:fotografen@lists.example.org>"),
                    ("List-Unsubscribe", "<mailto:fotografen-request@lists.example.org>"),
                    ("Precedence", "list")]
    subjects = SUBJECTS_DE + SUBJECTS_EN
    encoded_subjects = [_q_word(s) if i % 2 else _b_word(s) for i, s in enumerate(subjects)]
    if start:
        first, last = now - timedelta(days=1), now - timedelta(hours=1)
    else:
        first, last = now - timedelta(days=3 * 365), now - timedelta(days=1)
    step = (last - first) / max(n, 1)
    recent_ids: list[str] = []
    for i in range(start, start + n):
        offset = step * (i - start) + timedelta(seconds=rng.randrange(min(60, max(1, int(
            step.total_seconds())))))
        when = (first + offset).replace(microsecond=0)
        roll = rng.random()
        headers: list[tuple[str, str]] = []
        folder = "INBOX"
        if roll < 0.2:
            kind = rng.random()
            if kind < 0.5:
                sender, extra = automated[rng.randrange(len(automated))]
                headers += [("From", sender), ("To", user)]
                headers += extra
            elif kind < 0.9:
                headers += [("From", anyone()), ("To", "Fotografen <fotografen@lists.example.org>")]
                headers += list_headers
            else:
                headers += [("From", anyone()), ("To", user),
                            ("Auto-Submitted", "auto-replied")]
        elif roll < 0.2 + 0.8 * 0.42:
            folder = sent
            recipients = [anyone() for _ in range(rng.choice((1, 1, 1, 1, 2, 2, 3, 4)))]
            headers += [("From", user), ("To", ", ".join(recipients))]
            if rng.random() < 0.15:
                headers.append(("Cc", anyone()))
        else:
            others = [anyone() for _ in range(rng.choice((0, 0, 0, 1, 2)))]
            headers += [("From", anyone()), ("To", ", ".join([user, *others]))]
            if rng.random() < 0.1:
                headers.append(("Cc", anyone()))
        subject_index = rng.randrange(len(subjects))
        reply = recent_ids and rng.random() < 0.45
        subject = (encoded_subjects if rng.random() < 0.15 else subjects)[subject_index]
        headers.append(("Subject", f"Re: {subject}" if reply else subject))
        headers.append(("Date", rfc_date(when, ZONES[i % len(ZONES)])))
        ident = f"{i:x}.{seed:x}.{rng.getrandbits(48):012x}@mail.example.net"
        headers.append(("Message-ID", f"<{ident}>"))
        if reply:
            chain = recent_ids[-rng.randint(1, min(8, len(recent_ids))):]
            headers.append(("In-Reply-To", f"<{chain[-1]}>"))
            headers.append(("References", "\r\n ".join(f"<{c}>" for c in chain)))
        if rng.random() < 0.4:
            headers.append(("Content-Language", "de-DE"))
        recent_ids.append(ident)
        if len(recent_ids) > 50:
            del recent_ids[:25]
        delay = timedelta(seconds=rng.randint(0, 2) if folder == sent else rng.randint(5, 600))
        flags = ("\\Seen",) if rng.random() < 0.9 else ()
        yield folder, build_message(headers, "Hallo,\r\n\r\nbis bald\r\n"), flags, when + delay
