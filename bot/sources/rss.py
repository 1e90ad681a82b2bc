"""RSS 2.0 and Atom incident feeds (Statuspage ``history.rss``/``.atom``, status.x.ai).

Where the feed is: ``url`` itself when its path ends in ``.xml``, ``.rss`` or ``.atom``
(``https://status.x.ai/feed.xml``); otherwise ``url`` is the page's root and the feed is at
``options["path"]`` under it (default ``/history.rss``, Statuspage's).

Feeds list incidents, not component states, so a reading is ``incidents_only``: an item whose
latest state is not resolved is an open incident. Two dialects are read:

- Statuspage: ``<description>`` is HTML, one ``<p>`` per update, newest first, each led by
  ``<strong>Resolved</strong>`` (Identified, Investigating, Monitoring, Update, ...).
- xAI: title ``[API Console] Console not loading``, categories = severity + state, and a
  description with ``<h3>Status: RESOLVED</h3>``, ``<p>Severity: ...</p>`` and one ``<div>``
  per update (``<strong>`` date, ``<h3>`` word, ``<p>`` text), oldest first.
- AWS Health (``status.aws.amazon.com/rss/<service>-<region>.rss``, ``all.rss``): one item per
  update, its state in the title's prefix (the dashboard's levels, as the ``aws`` source maps
  them): ``Service is operating normally:`` → resolved, ``Informational message:`` →
  ``degraded``, ``Performance issues:`` and ``Service degradation:`` → ``partial_outage``,
  ``Service disruption:`` → ``major_outage``; ``[RESOLVED]`` (or ``[解決済]``) anywhere in the
  title → resolved. The guid ends ``#<service>_<epoch>``. The items of one event (same service,
  same title once prefix and markers are gone) are read together: the newest (by ``pubDate``,
  PST/PDT understood; else the guid's epoch) decides, so the older ``Informational message``
  items left in the feed do not keep a resolved event open; after a resolved item the next one
  of that title starts a new event. An event's id is its first item's guid; the service key
  names its component. Only items no other dialect recognizes are read this way.

Components: an item names components by a bracketed title prefix (``[API Console]``), by the
first segment of its link (``/api-console/INC...``) and by categories that are neither a state
nor a severity; all are matched as slugs (``API Console`` = ``api-console``). An item naming
components applies to those and to the whole provider (``page``); an item naming none applies
to every watched component. With no ``components`` configured, the provider is one ``page``
component that every open incident affects.

Severity → status (categories, or a ``Severity:``/``Impact:`` line): critical, major_outage,
full_outage, outage, down, unavailable → ``major_outage``; major, partial_outage, partial →
``partial_outage``; minor, degraded, degraded_performance, disruption, degradation →
``degraded``; maintenance → ``maintenance``; none, available, operational, info → no change
(the page says the service is fine; the incident is still attached). An open incident with no
severity at all → ``degraded``; an in-progress maintenance → ``maintenance``; a scheduled one
changes nothing until it starts.

XML is parsed with ``defusedxml`` (entity declarations and external references refused), so a
hostile feed (billion laughs, XXE) is ``unknown`` with a diagnostic, never a hang or a read of
local files. Update HTML becomes plain text with the stdlib ``html.parser``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from urllib.parse import urlsplit
from xml.etree.ElementTree import Element, ParseError

import httpx
from defusedxml import DefusedXmlException  # type: ignore[import-untyped]
from defusedxml.ElementTree import fromstring  # type: ignore[import-untyped]

from bot.models import RESOLVED_INCIDENT_STATUSES, Incident, Status, worst
from bot.sources.fetch import Fetched, SourceError, fetch
from bot.sources.parsing import looks_like_html, parse_time
from bot.sources.reading import PAGE_COMPONENT, IncidentReading, PageReading
from bot.sources.source import PageSource

# ---------------------------------------------------------------------------------- source

_FEED_SUFFIXES = (".xml", ".rss", ".atom")


class RssSource(PageSource):
    kind_name = "rss"

    @property
    def feed_url(self) -> str:
        """``url`` when it names a feed file, else the page root plus ``options["path"]``."""
        if urlsplit(self.url).path.lower().endswith(_FEED_SUFFIXES):
            return self.url
        path = str(self.options.get("path") or "/history.rss")
        return f"{self.url}/{path.lstrip('/')}"

    async def read(self, client: httpx.AsyncClient) -> PageReading:
        fetched = await fetch(client, self.feed_url, self.limits)
        entries = parse_feed(fetched)
        items = interpret_all(entries)
        if items and not any(item.recognized for item in items):
            raise SourceError(
                f"{fetched.where}: none of its {len(entries)} items says whether it is open "
                "or resolved (not an incident feed?)"
            )
        self._learn_names(items)
        readings = [item.reading(self.watched or ()) for item in items]
        return PageReading(incidents=self.memory.settle(readings), incidents_only=True)

    def _learn_names(self, items: Sequence[FeedIncident]) -> None:
        for watched in self.watched or ():
            for item in items:
                if slug(watched) in item.components:
                    self._names[watched] = item.components[slug(watched)]


# ------------------------------------------------------------------------------- XML feeds

ATOM = "{http://www.w3.org/2005/Atom}"
_CONTENT_ENCODED = "{http://purl.org/rss/1.0/modules/content/}encoded"


@dataclass(frozen=True, slots=True)
class FeedEntry:
    """One ``<item>`` or ``<entry>``, dialect-neutral."""

    id: str
    title: str
    link: str | None
    html: str
    categories: tuple[str, ...] = ()
    published: datetime | None = None


def parse_feed(fetched: Fetched) -> list[FeedEntry]:
    """The entries of an RSS 2.0 or Atom body, or a :class:`SourceError` saying why not."""
    where = fetched.where
    if looks_like_html(fetched):
        raise SourceError(f"{where}: got an HTML page instead of a feed (a login or error page?)")
    if not fetched.body.strip():
        raise SourceError(f"{where}: empty body")
    root = _parse_xml(fetched.body, where)
    if root.tag == "rss":
        channel = root.find("channel")
        if channel is None:
            raise SourceError(f"{where}: an <rss> document without a <channel>")
        return [_rss_entry(item) for item in channel.iter("item")]
    if root.tag == f"{ATOM}feed":
        return [_atom_entry(entry) for entry in root.iter(f"{ATOM}entry")]
    raise SourceError(f"{where}: not an RSS or Atom feed (root element <{root.tag}>)")


def _parse_xml(body: bytes, where: str) -> Element:
    try:
        root: Element = fromstring(
            body, forbid_dtd=False, forbid_entities=True, forbid_external=True
        )
    except DefusedXmlException as exc:
        raise SourceError(
            f"{where}: refused hostile XML ({type(exc).__name__}: entity declarations and "
            "external references are not allowed)"
        ) from None
    except ParseError as exc:
        raise SourceError(f"{where}: not well-formed XML ({exc})") from None
    return root


def _rss_entry(item: Element) -> FeedEntry:
    title = _child_text(item, "title")
    link = _child_text(item, "link") or None
    html = _child_text(item, "description") or _child_text(item, _CONTENT_ENCODED)
    return FeedEntry(
        id=_child_text(item, "guid") or link or title,
        title=title,
        link=link,
        html=html,
        categories=tuple(text for c in item.findall("category") if (text := _text_of(c))),
        published=_rfc822(_child_text(item, "pubDate")),
    )


def _atom_entry(entry: Element) -> FeedEntry:
    title = _child_text(entry, f"{ATOM}title")
    link = _atom_link(entry)
    body = entry.find(f"{ATOM}content")
    if body is None:
        body = entry.find(f"{ATOM}summary")
    return FeedEntry(
        id=_child_text(entry, f"{ATOM}id") or link or title,
        title=title,
        link=link,
        html=_text_of(body) if body is not None else "",
        categories=tuple(
            term for c in entry.findall(f"{ATOM}category") if (term := c.get("term", "").strip())
        ),
        published=parse_time(_child_text(entry, f"{ATOM}published"))
        or parse_time(_child_text(entry, f"{ATOM}updated")),
    )


def _atom_link(entry: Element) -> str | None:
    for link in entry.findall(f"{ATOM}link"):
        if link.get("rel", "alternate") == "alternate" and link.get("href"):
            return link.get("href")
    return None


def _child_text(element: Element, tag: str) -> str:
    child = element.find(tag)
    return _text_of(child) if child is not None else ""


def _text_of(element: Element) -> str:
    return "".join(element.itertext()).strip()


def _rfc822(value: str) -> datetime | None:
    """An RSS date (``Mon, 18 May 2026 02:29:34 GMT``), or ``None``."""
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# ------------------------------------------------------------------------------ HTML to text

_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_BOLD = frozenset({"strong", "b"})
_BLOCKS = _HEADINGS | {"p", "div", "br", "hr", "li", "ul", "ol", "tr", "td", "table", "section"}
_VOID = frozenset({"br", "hr", "img", "input", "meta", "link", "wbr", "col", "source"})
_DASHES = "-\u2013\u2014: "  # hyphen, en and em dash: "Resolved - text"
_MAX_DEPTH = 64  # deeper markup is flattened: no recursion, no stack to blow


@dataclass(slots=True)
class Node:
    """An HTML element: just enough structure to find the status words in an update."""

    tag: str
    children: list[Node | str] = field(default_factory=list)


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root")
        self._stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag)
        self._stack[-1].children.append(node)
        if tag not in _VOID and len(self._stack) < _MAX_DEPTH:
            self._stack.append(node)

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self._stack) - 1, 0, -1):
            if self._stack[depth].tag == tag:
                del self._stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        self._stack[-1].children.append(data)


def parse_html(markup: str) -> Node:
    builder = _TreeBuilder()
    try:
        builder.feed(markup)
        builder.close()
    except AssertionError:  # html.parser's verdict on some malformed declarations
        return Node("#root", [re.sub(r"<[^>]*>", " ", markup)])
    return builder.root


def walk(node: Node) -> Iterator[Node]:
    """Elements in document order, without recursion."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed([c for c in current.children if isinstance(c, Node)]))


def first(node: Node, tags: frozenset[str]) -> Node | None:
    return next((n for n in walk(node) if n is not node and n.tag in tags), None)


def plain_text(node: Node, skip: frozenset[str] = frozenset()) -> str:
    """The node's text on one line, block elements spaced, ``skip`` elements left out."""
    parts: list[str] = []
    stack: list[Node | str] = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            parts.append(item)
            continue
        if item is not node and item.tag in skip:
            continue
        if item.tag in _BLOCKS:
            parts.append(" ")
        stack.extend(reversed(item.children))
    return " ".join("".join(parts).split())


# --------------------------------------------------------------------------- interpretation

_LIFECYCLE = frozenset(
    {
        "investigating",
        "identified",
        "monitoring",
        "resolved",
        "postmortem",
        "scheduled",
        "in_progress",
        "verifying",
        "completed",
    }
)
_MAINTENANCE_STATES = frozenset({"scheduled", "in_progress", "verifying", "completed"})
_SEVERITY: dict[str, Status | None] = {
    "critical": Status.MAJOR_OUTAGE,
    "major_outage": Status.MAJOR_OUTAGE,
    "full_outage": Status.MAJOR_OUTAGE,
    "outage": Status.MAJOR_OUTAGE,
    "down": Status.MAJOR_OUTAGE,
    "unavailable": Status.MAJOR_OUTAGE,
    "major": Status.PARTIAL_OUTAGE,
    "partial_outage": Status.PARTIAL_OUTAGE,
    "partial": Status.PARTIAL_OUTAGE,
    "minor": Status.DEGRADED,
    "degraded": Status.DEGRADED,
    "degraded_performance": Status.DEGRADED,
    "disruption": Status.DEGRADED,
    "degradation": Status.DEGRADED,
    "maintenance": Status.MAINTENANCE,
    "under_maintenance": Status.MAINTENANCE,
    "none": None,
    "available": None,
    "operational": None,
    "info": None,
    "informational": None,
}
#: Link path segments that name a kind of page, not a component (``/incidents/<id>``).
_NOT_COMPONENTS = frozenset(
    {"incidents", "incident", "maintenances", "maintenance", "history", "status", "feed"}
)


def word_key(word: str) -> str:
    """``In progress`` → ``in_progress``: how status words are compared."""
    return "_".join(word.lower().replace("-", " ").split())


def slug(name: str) -> str:
    """``API Console`` → ``api-console``: how feed component names are compared."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


@dataclass(frozen=True, slots=True)
class Update:
    word: str
    body: str
    at: datetime | None = None


@dataclass(frozen=True, slots=True)
class FeedIncident:
    """What one feed item says: its incident, what it does, and which components it names."""

    incident: Incident
    effect: Status | None
    components: dict[str, str]  # slug → name as written
    recognized: bool

    def reading(self, watched: Sequence[str]) -> IncidentReading:
        keys = set(self.components)
        if keys:
            keys |= {w for w in watched if slug(w) in self.components}
            keys.add(PAGE_COMPONENT)
        return IncidentReading(self.incident, frozenset(keys), self.effect)


def interpret(entry: FeedEntry) -> FeedIncident:
    root = parse_html(entry.html)
    updates = _newest_first(_updates(root))
    state = _state(root, entry.categories, updates)
    found, severity = _severity(root, entry.categories)
    lifecycle = state or "investigating"
    maintenance = lifecycle in _MAINTENANCE_STATES or (found and severity is Status.MAINTENANCE)
    latest = updates[0] if updates else None
    body = latest.body if latest else plain_text(root)
    incident = Incident(
        id=entry.id,
        title=entry.title or "Untitled incident",
        url=entry.link,
        status=lifecycle,
        impact=severity if severity is not None and severity.is_outage else None,
        update=body,
        update_id=_revision(entry.id, latest.word if latest else lifecycle, body),
        updated_at=(latest.at if latest else None) or entry.published,
        started_at=updates[-1].at if updates else None,
        maintenance=maintenance,
    )
    effect = _effect(lifecycle, found, severity, maintenance)
    return FeedIncident(incident, effect, _components(entry), state is not None)


def interpret_all(entries: Sequence[FeedEntry]) -> list[FeedIncident]:
    """Every entry as an incident; AWS Health items (one per update) grouped into events."""
    items: list[FeedIncident] = []
    aws: list[AwsItem] = []
    for entry in entries:
        item = interpret(entry)
        found = None if item.recognized else aws_item(entry)
        if found is None:
            items.append(item)
        else:
            aws.append(found)
    return items + [_aws_incident(event) for event in aws_events(aws)]


def _updates(root: Node) -> list[Update]:
    """xAI's ``<div>`` blocks if there are any, else Statuspage's ``<p><strong>`` paragraphs."""
    blocks = [n for n in walk(root) if n.tag == "div" and first(n, _HEADINGS)]
    if blocks:
        return [_block_update(block) for block in blocks]
    return [u for p in walk(root) if p.tag == "p" and (u := _paragraph_update(p)) is not None]


def _block_update(block: Node) -> Update:
    heading = first(block, _HEADINGS)
    stamp = first(block, _BOLD)
    texts = [plain_text(p) for p in walk(block) if p.tag == "p" and first(p, _BOLD) is None]
    return Update(
        word=plain_text(heading) if heading else "",
        body=" ".join(t for t in texts if t),
        at=_rfc822(plain_text(stamp)) if stamp else None,
    )


def _paragraph_update(paragraph: Node) -> Update | None:
    strong = first(paragraph, _BOLD)
    if strong is None:
        return None
    body = plain_text(paragraph, skip=_BOLD | {"small"})
    return Update(word=plain_text(strong), body=body.lstrip(_DASHES).strip())


def _newest_first(updates: list[Update]) -> list[Update]:
    """By time when every update has one; else as written (Statuspage writes newest first)."""
    if updates and all(u.at is not None for u in updates):
        return sorted(updates, key=lambda u: u.at or datetime.min.replace(tzinfo=UTC), reverse=True)
    return updates


def _state(root: Node, categories: Sequence[str], updates: Sequence[Update]) -> str | None:
    """The latest lifecycle word: a ``Status:`` line, a category, or the newest update's word."""
    candidates = [*_fields(root, "status"), *categories, *(u.word for u in updates)]
    return next((word_key(w) for w in candidates if word_key(w) in _LIFECYCLE), None)


def _severity(root: Node, categories: Sequence[str]) -> tuple[bool, Status | None]:
    """Whether the item states a severity, and what it maps to."""
    candidates = [*_fields(root, "severity"), *_fields(root, "impact"), *categories]
    for word in candidates:
        if word_key(word) in _SEVERITY:
            return True, _SEVERITY[word_key(word)]
    return False, None


def _fields(root: Node, name: str) -> list[str]:
    """Values of ``Name: value`` lines in headings and paragraphs."""
    pattern = re.compile(rf"^{name}\s*:\s*(.+)$", re.IGNORECASE)
    values = []
    for node in walk(root):
        if node.tag in _HEADINGS or node.tag == "p":
            match = pattern.match(plain_text(node))
            if match:
                values.append(match.group(1).strip())
    return values


def _effect(state: str, found: bool, severity: Status | None, maintenance: bool) -> Status | None:
    if state in RESOLVED_INCIDENT_STATUSES or state == "scheduled":
        return None
    if severity is not None and severity.is_outage:
        return severity
    if maintenance:
        return Status.MAINTENANCE
    return None if found else Status.DEGRADED


def _components(entry: FeedEntry) -> dict[str, str]:
    names: dict[str, str] = {}
    bracket = re.match(r"^\s*\[([^\]]+)\]", entry.title)
    if bracket and slug(bracket.group(1)):
        names[slug(bracket.group(1))] = bracket.group(1).strip()
    segment = _link_segment(entry.link)
    if segment:
        names.setdefault(segment, segment)
    for category in entry.categories:
        key = word_key(category)
        if key not in _LIFECYCLE and key not in _SEVERITY and slug(category):
            names.setdefault(slug(category), category)
    return names


def _link_segment(link: str | None) -> str | None:
    """``/api-console/INC702624e4`` → ``api-console`` (not ``/incidents/<id>``)."""
    if not link:
        return None
    segments = [s for s in urlsplit(link).path.split("/") if s]
    if len(segments) >= 2 and segments[0].lower() not in _NOT_COMPONENTS:
        return slug(segments[0]) or None
    return None


def _revision(entry_id: str, word: str, body: str) -> str:
    """Changes whenever the item's newest update does (feeds give updates no ids)."""
    digest = hashlib.sha256(f"{word}\n{body}".encode()).hexdigest()[:12]
    return f"{entry_id}:{digest}"


# ------------------------------------------------------------------------- AWS Health items

#: AWS Service Health Dashboard title prefixes → what an open item does (None: resolved).
_AWS_PREFIXES: dict[str, Status | None] = {
    "service is operating normally": None,
    "informational message": Status.DEGRADED,
    "performance issues": Status.PARTIAL_OUTAGE,
    "service degradation": Status.PARTIAL_OUTAGE,
    "service disruption": Status.MAJOR_OUTAGE,
}
_AWS_TITLE = re.compile(r"^\s*(?P<prefix>[^:\[\]]{1,40}):\s*(?P<rest>.*)$", re.DOTALL)
_RESOLVED_MARK = re.compile(r"\[\s*(?:resolved|解決済)\s*\]", re.IGNORECASE)
_AWS_GUID = re.compile(r"#(?P<service>[A-Za-z0-9][A-Za-z0-9.-]{0,99})_(?P<epoch>\d{9,11})\s*$")


@dataclass(frozen=True, slots=True)
class AwsItem:
    """One AWS Health feed item: one update of one event."""

    entry: FeedEntry
    service: str  # the guid's service key (``bedrock-us-east-1``), or "" when it has none
    title: str  # without the prefix and the resolved markers
    resolved: bool
    effect: Status | None
    at: datetime | None

    @property
    def event_key(self) -> tuple[str, str]:
        return self.service, " ".join(self.title.split()).casefold()

    @property
    def order(self) -> float:
        return self.at.timestamp() if self.at else 0.0


def aws_item(entry: FeedEntry) -> AwsItem | None:
    """The entry read as an AWS Health item, or ``None`` when its title has no AWS prefix."""
    match = _AWS_TITLE.match(entry.title)
    prefix = " ".join(match["prefix"].split()).lower() if match else ""
    if match is None or prefix not in _AWS_PREFIXES:
        return None
    effect = _AWS_PREFIXES[prefix]
    resolved = effect is None or _RESOLVED_MARK.search(match["rest"]) is not None
    title = " ".join(_RESOLVED_MARK.sub(" ", match["rest"]).split())
    guid = _AWS_GUID.search(entry.id)
    return AwsItem(
        entry=entry,
        service=guid["service"].lower() if guid else "",
        title=title or entry.title.strip(),
        resolved=resolved,
        effect=None if resolved else effect,
        at=entry.published or (_epoch(guid["epoch"]) if guid else None),
    )


def aws_events(items: Sequence[AwsItem]) -> list[list[AwsItem]]:
    """Items grouped into events, oldest item first: one title's items up to a resolved one
    are one event; the next item of that title starts another."""
    groups: dict[tuple[str, str], list[AwsItem]] = {}
    for item in items:
        groups.setdefault(item.event_key, []).append(item)
    events: list[list[AwsItem]] = []
    for group in groups.values():
        current: list[AwsItem] = []
        for item in sorted(group, key=lambda i: i.order):
            current.append(item)
            if item.resolved:
                events.append(current)
                current = []
        if current:
            events.append(current)
    return events


def _aws_incident(event: Sequence[AwsItem]) -> FeedIncident:
    first, latest = event[0], event[-1]
    body = plain_text(parse_html(latest.entry.html))
    state = "resolved" if latest.resolved else "ongoing"
    outages = [i.effect for i in event if i.effect is not None]
    impact = latest.effect if latest.effect is not None else (worst(outages) if outages else None)
    incident = Incident(
        id=_aws_event_id(first),
        title=f"{first.title} ({first.service})" if first.service else first.title,
        url=latest.entry.link,
        status=state,
        impact=impact,
        update=body,
        update_id=_revision(latest.entry.id, state, body),
        updated_at=latest.at,
        started_at=first.at,
    )
    components = {slug(first.service): first.service} if slug(first.service) else {}
    return FeedIncident(incident, latest.effect, components, recognized=True)


def _aws_event_id(first: AwsItem) -> str:
    """The first item's guid (unique per update); made unique when the feed gives none."""
    if _AWS_GUID.search(first.entry.id):
        return first.entry.id
    stamp = f"{first.order:.0f}"
    return f"{first.entry.id}#{first.service or 'aws'}:{slug(first.title)}@{stamp}"


def _epoch(value: str) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(value), UTC)
    except (OverflowError, OSError, ValueError):
        return None
