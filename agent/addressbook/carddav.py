"""CardDAV (RFC 6352) over httpx: find the address books, then read only what changed.

Discovery: the configured URL itself when it is an address book; else its principal
(``current-user-principal``, asked at the URL and then at ``/.well-known/carddav``), the
principal's ``addressbook-home-set``, and every address book in that home. Changes: with a
``sync-token`` on the collection, an RFC 6578 ``sync-collection`` REPORT from the saved token
(an expired token reads everything again); else the ``getctag`` says whether anything changed
and a PROPFIND of every ``getetag`` says what. Changed cards come in ``addressbook-multiget``
REPORTs. Redirects are followed on the same origin only, never from https to http. The
server may name a principal, home or address book on another host (iCloud does), but the
password goes there only over https: a plain-http URL off loopback is refused before any
request, whoever names it.
"""

from __future__ import annotations

import json
import ssl
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote, urljoin, urlsplit

import httpx

from agent.addressbook.changes import Changes
from agent.addressbook.vcard import read_text
from agent.config import AddressbookConfig, is_loopback
from agent.errors import AddressbookError
from agent.net import tls_context

DAV, CARD, CS = "DAV:", "urn:ietf:params:xml:ns:carddav", "http://calendarserver.org/ns/"
MULTIGET_BATCH = 50
MAX_REDIRECTS = 5
_NS = f'xmlns:d="{DAV}" xmlns:c="{CARD}" xmlns:cs="{CS}"'


class InvalidSyncToken(AddressbookError):
    """The server no longer knows the saved sync token (RFC 6578 valid-sync-token)."""


@dataclass
class Response:
    """One <response> of a multistatus: its href, status and the props found (200)."""

    href: str
    status: int
    props: dict[str, ET.Element] = field(default_factory=dict)


def _parse(body: bytes, where: str) -> ET.Element:
    # The standard library's parser never fetches external entities, and the expat it uses
    # (2.4.1 and later) caps entity expansion, so a hostile server cannot blow it up.
    try:
        return ET.fromstring(body)  # noqa: S314
    except ET.ParseError as exc:
        raise AddressbookError(f"{where}: the server's answer is not XML ({exc})") from None


def _status(text: str | None) -> int:
    parts = (text or "").split()
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def responses(body: bytes, where: str) -> list[Response]:
    out = []
    for item in _parse(body, where).iter(f"{{{DAV}}}response"):
        href = (item.findtext(f"{{{DAV}}}href") or "").strip()
        status = _status(item.findtext(f"{{{DAV}}}status"))
        found: dict[str, ET.Element] = {}
        for propstat in item.iter(f"{{{DAV}}}propstat"):
            if _status(propstat.findtext(f"{{{DAV}}}status")) // 100 != 2:
                continue
            for prop in propstat.iter(f"{{{DAV}}}prop"):
                for child in prop:
                    found[child.tag] = child
        out.append(Response(href, status or (200 if found else 0), found))
    return out


def _text(response: Response, tag: str) -> str | None:
    element = response.props.get(tag)
    return None if element is None else (element.text or "").strip() or None


def _href_in(response: Response, tag: str) -> str | None:
    element = response.props.get(tag)
    href = None if element is None else element.findtext(f"{{{DAV}}}href")
    return href.strip() if href else None


def _is_addressbook(response: Response) -> bool:
    kind = response.props.get(f"{{{DAV}}}resourcetype")
    return kind is not None and kind.find(f"{{{CARD}}}addressbook") is not None


def key(url: str, href: str) -> str:
    """An href as followup stores it: the unquoted path, whatever form the server used."""
    return unquote(urlsplit(urljoin(url, href)).path)


class Session:
    """One logged-in conversation with a CardDAV server."""

    def __init__(self, book: AddressbookConfig, password: str) -> None:
        self.book = book
        self.requests = 0
        context: ssl.SSLContext = tls_context(book.ca_file, "addressbook")
        self._client = httpx.Client(
            auth=httpx.BasicAuth(book.username or "", password), verify=context,
            timeout=book.timeout, follow_redirects=False,
            headers={"User-Agent": "followup (CardDAV, read-only)"})

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.close()

    # ------------------------------------------------------------------ HTTP

    def request(self, method: str, url: str, body: str = "", depth: str | None = None,
                ok: Sequence[int] = (200, 207)) -> tuple[str, httpx.Response]:
        """Send one request (following same-origin redirects); (final url, response)."""
        headers = {"Content-Type": "application/xml; charset=utf-8"} if body else {}
        if depth is not None:
            headers["Depth"] = depth
        for _ in range(MAX_REDIRECTS + 1):
            _refuse_plaintext(url, self.book)
            self.requests += 1
            try:
                response = self._client.request(method, url, content=body.encode(),
                                                headers=headers)
            except httpx.HTTPError as exc:
                raise AddressbookError(describe(exc, url, self.book)) from None
            if response.status_code in (301, 302, 303, 307, 308):
                target = urljoin(url, response.headers.get("Location", ""))
                if not _same_origin(url, target):
                    raise AddressbookError(f"{url} redirects to {target}, another server; "
                                           "give that URL as [[addressbook]] url")
                url = target
                continue
            if response.status_code == 401:
                raise AddressbookError(
                    f"the server refused the login for {self.book.username} (HTTP 401): check "
                    "the password (keyring, [[addressbook]] password_command or "
                    "FOLLOWUP_CARDDAV_PASSWORD) and username")
            if response.status_code not in ok:
                if response.status_code == 403 and b"valid-sync-token" in response.content:
                    raise InvalidSyncToken("the saved sync token has expired")
                raise AddressbookError(f"{method} {url} failed: HTTP {response.status_code} "
                                       f"{response.reason_phrase}".rstrip())
            return url, response
        raise AddressbookError(f"{url}: too many redirects")

    def propfind(self, url: str, props: str, depth: str) -> tuple[str, list[Response]]:
        body = f'<?xml version="1.0"?><d:propfind {_NS}><d:prop>{props}</d:prop></d:propfind>'
        url, response = self.request("PROPFIND", url, body, depth)
        return url, responses(response.content, url)

    # ------------------------------------------------------------------ discovery

    def discover(self) -> list[str]:
        """The address book collections of the configured URL (see the module docstring)."""
        start = self.book.url or ""
        props = "<d:resourcetype/><d:current-user-principal/><c:addressbook-home-set/>"
        url, found = self.propfind(start, props, "0")
        if found and _is_addressbook(found[0]):
            return [url]
        principal = next((p for r in found if (p := _href_in(r, f"{{{DAV}}}current-user-"
                                                              "principal"))), None)
        if principal is None:
            well_known = urljoin(start, "/.well-known/carddav")
            url, found = self.propfind(well_known, props, "0")
            principal = next((p for r in found if (p := _href_in(
                r, f"{{{DAV}}}current-user-principal"))), None)
        if principal is None:
            raise AddressbookError(f"{start} is no address book, and the server names no "
                                   "principal for this login; give the address book's own URL")
        url, found = self.propfind(urljoin(url, principal), props, "0")
        home = next((h for r in found if (h := _href_in(r, f"{{{CARD}}}addressbook-home-set"))),
                    None)
        if home is None:
            raise AddressbookError(f"the server names no address book home for "
                                   f"{self.book.username}; give the address book's own URL")
        url, found = self.propfind(urljoin(url, home), "<d:resourcetype/>", "1")
        books = sorted({urljoin(url, r.href) for r in found if _is_addressbook(r)})
        if not books:
            raise AddressbookError(f"no address book found in {urljoin(url, home)}")
        return books

    # ------------------------------------------------------------------ changes

    def collection_state(self, url: str) -> tuple[str | None, str | None]:
        """(sync-token, getctag) of a collection, each None when the server has none."""
        _, found = self.propfind(url, "<d:sync-token/><cs:getctag/>", "0")
        here = found[0] if found else Response(url, 0)
        return _text(here, f"{{{DAV}}}sync-token"), _text(here, f"{{{CS}}}getctag")

    def sync_collection(self, url: str, token: str) -> tuple[dict[str, str], list[str], str]:
        """RFC 6578: ({href: etag} changed, [href] deleted, new token) since ``token``."""
        body = (f'<?xml version="1.0"?><d:sync-collection {_NS}>'
                f"<d:sync-token>{_escape(token)}</d:sync-token><d:sync-level>1</d:sync-level>"
                "<d:prop><d:getetag/></d:prop></d:sync-collection>")
        url, response = self.request("REPORT", url, body, "1")
        root = _parse(response.content, url)
        changed, deleted = {}, []
        for item in responses(response.content, url):
            if item.status == 404:
                deleted.append(item.href)
            elif (etag := _text(item, f"{{{DAV}}}getetag")) is not None:
                changed[item.href] = etag
        token = (root.findtext(f"{{{DAV}}}sync-token") or "").strip()
        return changed, deleted, token

    def etags(self, url: str) -> dict[str, str]:
        """{href: etag} of every card in a collection."""
        url, found = self.propfind(url, "<d:getetag/><d:resourcetype/>", "1")
        return {r.href: etag for r in found
                if (etag := _text(r, f"{{{DAV}}}getetag")) is not None
                and key(url, r.href) != key(url, url)}

    def multiget(self, url: str, hrefs: Sequence[str]) -> Iterator[tuple[str, str, str]]:
        """(href, etag, vCard text) of each href that still exists, in batches."""
        for start in range(0, len(hrefs), MULTIGET_BATCH):
            wanted = "".join(f"<d:href>{_escape(h)}</d:href>"
                             for h in hrefs[start:start + MULTIGET_BATCH])
            body = (f'<?xml version="1.0"?><c:addressbook-multiget {_NS}><d:prop><d:getetag/>'
                    f"<c:address-data/></d:prop>{wanted}</c:addressbook-multiget>")
            _, response = self.request("REPORT", url, body, "1")
            for item in responses(response.content, url):
                data = _text(item, f"{{{CARD}}}address-data")
                if data is not None:
                    yield item.href, _text(item, f"{{{DAV}}}getetag") or "", data


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _refuse_plaintext(url: str, book: AddressbookConfig) -> None:
    """The password (Basic auth) goes only over https, or plain http on loopback."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "https" or (scheme == "http" and is_loopback(parts.hostname or "")):
        return
    raise AddressbookError(
        f"{book.url} leads to {url}: that is not https, and your password would travel "
        "unencrypted; nothing was sent there (give the address book's own https URL)")


def _same_origin(a: str, b: str) -> bool:
    one, two = urlsplit(a), urlsplit(b)
    return one.scheme == two.scheme and one.netloc == two.netloc


def describe(exc: httpx.HTTPError, url: str, book: AddressbookConfig) -> str:
    """One plain sentence for a failure to talk to the server."""
    where = urlsplit(url).netloc or url
    reason = exc.__context__ or exc.__cause__ or exc
    if isinstance(reason, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY" in str(exc):
        return (f"the TLS certificate of {where} could not be verified; if the server uses a "
                "private CA, set [[addressbook]] ca_file to its PEM file")
    if isinstance(exc, httpx.TimeoutException):
        return f"{where} did not answer within {book.timeout:g} s"
    if isinstance(exc, httpx.ConnectError):
        text = str(exc) or type(reason).__name__
        return f"cannot connect to {where} ({text}): check [[addressbook]] url and your network"
    return f"talking to {where} failed: {type(exc).__name__}: {exc}"


def read_carddav(book: AddressbookConfig, password: str, region: str | None,
                 state: str | None, etags: Mapping[str, str]) -> Changes:
    """What changed in the CardDAV address book(s) of ``book`` since ``state``."""
    saved: dict[str, dict[str, str | None]] = json.loads(state).get("collections", {}) \
        if state else {}
    changes = Changes(kind="carddav", state=None)
    new_state: dict[str, dict[str, str | None]] = {}
    with Session(book, password) as session:
        collections = session.discover()
        stored = dict(etags)
        for url in collections:
            prefix = key(url, url).rstrip("/") + "/"
            mine = {h: e for h, e in stored.items() if h.startswith(prefix)}
            new_state[url] = _read_collection(session, url, saved.get(url, {}), mine, region,
                                              changes)
        # Cards of collections no longer found are gone.
        prefixes = [key(u, u).rstrip("/") + "/" for u in collections]
        changes.deleted += [h for h in stored if not any(h.startswith(p) for p in prefixes)]
        changes.requests = session.requests
    changes.state = json.dumps({"collections": new_state}, sort_keys=True)
    changes.unchanged = not (changes.changed or changes.deleted) and new_state == saved
    return changes


def _read_collection(session: Session, url: str, saved: Mapping[str, str | None],
                     stored: Mapping[str, str], region: str | None,
                     changes: Changes) -> dict[str, str | None]:
    token, ctag = session.collection_state(url)
    if token is not None:
        if token == saved.get("token"):
            return {"token": token, "ctag": ctag}
        try:
            listed, gone, token = session.sync_collection(url, saved.get("token") or "")
            complete = not saved.get("token")
        except InvalidSyncToken:
            listed, gone, token = session.sync_collection(url, "")
            complete = True
        present = {key(url, h): (h, e) for h, e in listed.items()}
        deleted = {key(url, h) for h in gone} & set(stored)
        if complete:  # a listing from an empty token names every card there is
            deleted |= set(stored) - set(present)
    else:
        if ctag is not None and ctag == saved.get("ctag"):
            return {"token": None, "ctag": ctag}
        present = {key(url, h): (h, e) for h, e in session.etags(url).items()}
        deleted = set(stored) - set(present)
    wanted = [raw for k, (raw, etag) in sorted(present.items()) if stored.get(k) != etag]
    got: set[str] = set()
    for href, etag, data in session.multiget(url, wanted):
        name = key(url, href)
        got.add(name)
        parsed = read_text(data, href, region, href=name, etag=etag)
        changes.problems += parsed.problems
        changes.changed += parsed.cards[:1]
        if not parsed.cards:
            deleted.add(name)
    changes.deleted += sorted(deleted | ({key(url, h) for h in wanted} - got) & set(stored))
    return {"token": token, "ctag": ctag}
