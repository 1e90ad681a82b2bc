"""The ``Source`` protocol, and what every status-page source shares.

A source turns one HTTP round into observations. Status pages differ only in where their JSON
lives and how it is shaped, so each page source is one file with a ``read`` that returns a
:class:`PageReading`; turning that into observations of the watched components (component
status, incident impact, maintenance) happens once, here. Anything wrong with the response
becomes :class:`SourceError`, which the base turns into ``unknown`` observations carrying the
diagnostic: never green, never a crash. Incidents a source saw open are remembered by
:class:`IncidentMemory`, so that each one's end is reported exactly once.
"""

from __future__ import annotations

import asyncio
import json
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol, runtime_checkable

import httpx

from bot.models import Incident, IncidentUpdate, Observation, SourceKind, Status, utcnow, worst
from bot.outside import clip, one_line, safe_url, why_not_url
from bot.sources import compression
from bot.sources.redirects import Resolver, judge_redirect, system_resolver


class SourceError(Exception):
    """The source could not be read; the message names the URL and what was wrong."""


@dataclass(frozen=True, slots=True)
class FetchLimits:
    """How much of a response we are willing to wait for and read."""

    timeout: float = 10.0
    max_bytes: int = 5 * 1024 * 1024


@runtime_checkable
class Source(Protocol):
    """Anything the watcher can schedule: one round of checks yields observations."""

    id: str
    provider: str
    kind: SourceKind
    interval: float

    async def check(self, client: httpx.AsyncClient) -> list[Observation]:
        """Run one round. Must not raise for bad input: return ``unknown`` observations."""
        ...


@dataclass(frozen=True, slots=True)
class Fetched:
    url: str
    status_code: int
    headers: httpx.Headers
    body: bytes
    redirected_from: str | None = None

    @property
    def etag(self) -> str | None:
        value: str | None = self.headers.get("etag")
        return value

    @property
    def where(self) -> str:
        """The URL asked for, and where it redirected to: how diagnostics name the response."""
        if self.redirected_from:
            return f"{self.redirected_from} (redirected to {self.url})"
        return self.url


#: At most this many redirects are followed for one fetch.
MAX_REDIRECTS = 5
#: How much of a refused redirect's target a diagnostic quotes.
_TARGET_SHOWN = 300


@dataclass(slots=True)
class FetchRound:
    """What the fetches of one round of a source share: how redirect targets are resolved,
    and the moves to another host they followed (the page's first move is told to admins)."""

    resolver: Resolver = system_resolver
    moves: list[tuple[str, str]] = field(default_factory=list)


_ROUND: ContextVar[FetchRound | None] = ContextVar("tocsin_fetch_round", default=None)


async def fetch(
    client: httpx.AsyncClient,
    url: str,
    limits: FetchLimits,
    *,
    headers: Mapping[str, str] | None = None,
    accept_not_modified: bool = False,
    resolver: Resolver | None = None,
) -> Fetched:
    """GET ``url`` with an overall deadline and a cap on the bytes read (decoded, and on the
    wire).

    Raises :class:`SourceError` for network errors, timeouts, non-2xx answers, oversized
    bodies and redirects the policy of :mod:`bot.sources.redirects` refuses. Redirects it
    allows are followed (at most :data:`MAX_REDIRECTS`) and reported; one to another host is
    also noted in the current :class:`FetchRound`. ``resolver`` defaults to the round's.
    """
    round_ = _ROUND.get()
    resolve = resolver or (round_.resolver if round_ else system_resolver)
    asked = {"Accept-Encoding": compression.ACCEPTED, **(headers or {})}
    try:
        async with asyncio.timeout(limits.timeout):
            fetched, moved = await _follow(client, url, limits, asked, resolve)
    except TimeoutError:
        raise SourceError(f"{url}: no answer within {limits.timeout:g}s") from None
    except httpx.TimeoutException:
        raise SourceError(f"{url}: timed out after {limits.timeout:g}s") from None
    except httpx.HTTPError as exc:
        raise SourceError(f"{url}: {type(exc).__name__}: {exc or 'connection failed'}") from None
    except httpx.InvalidURL as exc:
        raise SourceError(f"{url}: invalid URL ({exc})") from None
    if fetched.status_code == 304 and not accept_not_modified:
        raise SourceError(f"{fetched.where}: HTTP 304 to a request that was not conditional")
    if moved and round_ is not None:
        round_.moves.append((url, one_line(fetched.url, _TARGET_SHOWN)))
    return fetched


async def _follow(
    client: httpx.AsyncClient,
    url: str,
    limits: FetchLimits,
    headers: Mapping[str, str],
    resolver: Resolver,
) -> tuple[Fetched, bool]:
    """Send, and follow the redirects the policy allows; whether one left for another host."""
    request = client.build_request("GET", url, headers=headers)
    moved = False
    for _hop in range(MAX_REDIRECTS + 1):
        response = await client.send(request, stream=True, follow_redirects=False)
        try:
            target = response.next_request
            if target is None:
                return await _arrived(url, response, limits), moved
        finally:
            await response.aclose()
        verdict = await judge_redirect(request.url, target.url, resolver)
        if not verdict.follow:
            shown = one_line(str(target.url), _TARGET_SHOWN)
            raise SourceError(f"{url}: redirected to {shown} ({verdict.reason}): not followed")
        moved = moved or verdict.moved
        request = target
    shown = one_line(str(request.url), _TARGET_SHOWN)
    raise SourceError(f"{url}: too many redirects (more than {MAX_REDIRECTS}, the last to {shown})")


async def _arrived(url: str, response: httpx.Response, limits: FetchLimits) -> Fetched:
    """The answer that is not a redirect, read, with the URL first asked for if it moved."""
    final = str(response.request.url)
    moved_from = url if final != url else None
    where = f"{url} (redirected to {final})" if moved_from else url
    body = await _read(response, where, limits)
    return Fetched(final, response.status_code, response.headers, body, moved_from)


async def _read(response: httpx.Response, where: str, limits: FetchLimits) -> bytes:
    """The body, decoded in bounded steps: the cap bounds the decoded size, and memory."""
    if response.status_code == 304:
        return b""  # not modified: nothing to read (and nothing to decode if not asked for)
    if response.status_code >= 400 or response.status_code < 200:
        raise SourceError(f"{where}: HTTP {response.status_code}")
    cap = limits.max_bytes
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > cap:
        raise SourceError(f"{where}: body of {int(declared)} bytes exceeds the {cap} byte cap")
    encoding = response.headers.get("content-encoding")
    try:
        decode = compression.decoder(encoding)
    except compression.Unsupported as exc:
        raise SourceError(f"{where}: unsupported Content-Encoding {clip(str(exc), 60)!r}") from None
    body = bytearray()
    wire = 0
    try:
        async for chunk in response.aiter_raw():
            wire += len(chunk)
            if wire > cap:
                raise compression.TooBig
            body += decode(chunk, cap - len(body))
    except compression.TooBig:
        raise SourceError(f"{where}: body exceeds the {cap} byte cap") from None
    except compression.Undecodable as exc:
        raise SourceError(f"{where}: not valid {one_line(encoding, 20)} data ({exc})") from None
    return bytes(body)


def looks_like_html(fetched: Fetched) -> bool:
    ctype = fetched.headers.get("content-type", "").lower()
    head = fetched.body[:512].lstrip().lower()
    return "html" in ctype or head.startswith((b"<!doctype html", b"<html"))


def decode_json(fetched: Fetched) -> Any:
    """The body as JSON, or a :class:`SourceError` saying why it is not."""
    where = fetched.where
    if looks_like_html(fetched):
        raise SourceError(
            f"{where}: got an HTML page instead of JSON (a login, challenge or error page?)"
        )
    if not fetched.body.strip():
        raise SourceError(f"{where}: empty body")
    try:
        return json.loads(fetched.body.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise SourceError(f"{where}: body is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise SourceError(f"{where}: invalid JSON ({exc.msg} at byte {exc.pos})") from None
    except RecursionError:
        raise SourceError(f"{where}: JSON nested too deeply") from None


async def fetch_json(
    client: httpx.AsyncClient, url: str, limits: FetchLimits, **kwargs: Any
) -> Any:
    return decode_json(await fetch(client, url, limits, **kwargs))


@dataclass(frozen=True, slots=True)
class ComponentReading:
    id: str
    name: str
    status: Status
    #: Whether the page gives this status as the component's own. ``False`` where a platform
    #: lists components bare (incident.io, Flashcat) or builds them from incidents (Google
    #: Cloud): there the incidents' impacts decide.
    stated: bool = True


@dataclass(frozen=True, slots=True)
class IncidentReading:
    """An open (or just resolved) incident or maintenance and the component ids it names.

    ``components`` empty means the page did not say which components are affected.
    ``status`` is what the incident does to the components it names while it is open (the
    impact, or maintenance) where the page gives them no status of their own (see
    :func:`derive_component`); ``None`` leaves the components' own statuses alone.
    """

    incident: Incident
    components: frozenset[str] = frozenset()
    status: Status | None = None


@dataclass(slots=True)
class PageReading:
    """A page source's parse of one response, before watched-component filtering."""

    components: dict[str, ComponentReading] = field(default_factory=dict)
    incidents: list[IncidentReading] = field(default_factory=list)
    #: Set when the page gives no per-component statuses (feeds): incidents alone decide.
    incidents_only: bool = False


#: What a vanished incident's end says when nothing tells how it ended.
NO_LONGER_LISTED = "No longer listed on the status page."


class IncidentMemory:
    """Incidents a source saw open, so that each one's end is reported exactly once.

    Pages keep resolved incidents for weeks, or drop one the moment it ends. Passing old
    resolutions on would pin stale narratives to green components; a vanished one would never
    be told as over. So :meth:`settle`, once a round: open incidents pass; a resolved one
    passes only if we saw it open; one that vanished while open comes back once, resolved. A
    source that can look up how an incident ended asks :meth:`vanished` which ones to look up
    and hands the answers to :meth:`settle` as ``ended``. An end is always a new revision,
    even when the page added no update to say so.
    """

    def __init__(self) -> None:
        self._open: dict[str, tuple[Incident, frozenset[str]]] = {}

    def vanished(self, readings: Iterable[IncidentReading]) -> list[str]:
        """Ids of incidents seen open that ``readings`` no longer list (to look up their end)."""
        present = {r.incident.id for r in readings}
        return [incident_id for incident_id in self._open if incident_id not in present]

    def settle(
        self,
        readings: Iterable[IncidentReading],
        ended: Mapping[str, Incident] | None = None,
        *,
        watched: Collection[str] | None = None,
    ) -> list[IncidentReading]:
        """The readings to pass on this round, and remember the open ones for the next.

        A vanished incident comes back as ``ended`` has it when that version is resolved,
        else closed as no longer listed (``completed``, for a maintenance), on the components
        it had when open. With ``watched``, only incidents naming one of those components are
        remembered (for sources where a vanished incident costs a lookup).
        """
        readings = list(readings)
        ended = ended or {}
        out = [r for r in readings if not r.incident.resolved]
        out += [
            _news(r, self._open[r.incident.id][0])
            for r in readings
            if r.incident.resolved and r.incident.id in self._open
        ]
        for incident_id in self.vanished(readings):
            known, components = self._open[incident_id]
            end = ended.get(incident_id)
            incident = end if end is not None and end.resolved else _gone(known)
            out.append(_news(IncidentReading(incident, components), known))
        still_open: dict[str, tuple[Incident, frozenset[str]]] = {}
        for r in readings:
            if not r.incident.resolved:
                earlier = still_open.get(r.incident.id, (r.incident, frozenset()))[1]
                still_open[r.incident.id] = (r.incident, earlier | r.components)
        self._open = {
            incident_id: entry
            for incident_id, entry in still_open.items()
            if watched is None or not entry[1].isdisjoint(watched)
        }
        return out


def _news(reading: IncidentReading, known: Incident) -> IncidentReading:
    """The end must read as news even when the page added no update to say so."""
    if reading.incident.revision != known.revision:
        return reading
    update_id = f"{reading.incident.update_id}:{reading.incident.status}"
    return replace(reading, incident=reading.incident.model_copy(update={"update_id": update_id}))


def _gone(incident: Incident) -> Incident:
    """An incident that left the page without a trace of its end: call it over."""
    return incident.model_copy(
        update={
            "status": "completed" if incident.maintenance else "resolved",
            "update": NO_LONGER_LISTED,
            "update_id": f"{incident.update_id or incident.status}:gone",
        }
    )


class PageSource(ABC):
    """Shared behaviour of status-page sources; subclasses implement :meth:`read`."""

    kind: SourceKind = SourceKind.PAGE
    kind_name: ClassVar[str]
    #: The byte cap never goes below this for the platform (feeds that are whole histories).
    body_floor: ClassVar[int] = 0

    def __init__(
        self,
        provider: str,
        url: str,
        *,
        components: Sequence[str] | None = None,
        interval: float = 60.0,
        limits: FetchLimits | None = None,
        options: Mapping[str, Any] | None = None,
        names: Mapping[str, str] | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        self.provider = provider
        self.url = url.rstrip("/")
        self.watched = list(components) if components else None
        self.interval = interval
        limits = limits or FetchLimits()
        if limits.max_bytes < self.body_floor:
            limits = FetchLimits(timeout=limits.timeout, max_bytes=self.body_floor)
        self.limits = limits
        self.options = dict(options or {})
        self.id = f"{provider}:{self.kind_name}"
        #: Component id → name: the config's until the page gives its own.
        self._names: dict[str, str] = dict(names or {})
        #: Incidents seen open: :meth:`read` passes its incidents through ``memory.settle``.
        self.memory = IncidentMemory()
        #: How the hosts of redirect targets are resolved (the system's DNS by default).
        self.resolver = resolver or system_resolver

    @abstractmethod
    async def read(self, client: httpx.AsyncClient) -> PageReading:
        """Fetch and parse the page. Raise :class:`SourceError` for anything unexpected."""

    async def check(self, client: httpx.AsyncClient) -> list[Observation]:
        """One round: :meth:`read`'s fetches share a :class:`FetchRound`, and a move to
        another host they followed is carried by every observation (the tracker tells it)."""
        round_ = FetchRound(self.resolver)
        token = _ROUND.set(round_)
        try:
            observations = await self._check(client)
        finally:
            _ROUND.reset(token)
        if not round_.moves:
            return observations
        return [replace(o, moved=round_.moves[0]) for o in observations]

    async def _check(self, client: httpx.AsyncClient) -> list[Observation]:
        try:
            reading = await self.read(client)
            return self.observe(reading)
        except SourceError as exc:
            return self.unknown(str(exc))
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            return self.unknown(
                f"{self.url}: unexpected payload shape ({type(exc).__name__}: {exc})"
            )

    def unknown(self, diagnostic: str) -> list[Observation]:
        """Observations saying we cannot tell, for every component we know of."""
        known = self.watched or list(self._names) or [PAGE_COMPONENT]
        return [
            Observation(
                provider=self.provider,
                component=component,
                component_name=self._names.get(component),
                status=Status.UNKNOWN,
                source=self.id,
                kind=self.kind,
                detail=diagnostic,
            )
            for component in known
        ]

    def observe(self, reading: PageReading) -> list[Observation]:
        """Observations of the watched components (all, when none are configured)."""
        if not reading.components and not reading.incidents_only:
            raise SourceError(f"{self.url}: the page lists no components (did it move?)")
        dropped = drop_unsafe_links(reading)
        ids = self.watched or list(reading.components) or [PAGE_COMPONENT]
        now = utcnow()
        observations = []
        for component in ids:
            status, incident, detail = derive_component(component, reading)
            if incident is not None and incident.id in dropped:
                detail = "; ".join(filter(None, (detail, dropped[incident.id])))
            name = reading.components[component].name if component in reading.components else None
            if name:
                self._names[component] = name
            observations.append(
                Observation(
                    provider=self.provider,
                    component=component,
                    component_name=name or self._names.get(component),
                    status=status,
                    source=self.id,
                    kind=self.kind,
                    at=now,
                    incident=incident,
                    detail=detail,
                )
            )
        return observations


#: The pseudo component used when a page offers no components to name.
PAGE_COMPONENT = "page"


def drop_unsafe_links(reading: PageReading) -> dict[str, str]:
    """Every incident leaves a source through here: a link that is not a plain http(s) URL
    (``javascript:``, ``data:``, a line break inside) is dropped, never shown as a link.

    Returns a diagnostic per incident id whose link was dropped: it goes into the detail of
    the observations carrying the incident (shown by ``tocsin check``, ``tocsin status`` and
    the dashboard; a detail is not a notice, so it cannot spam anyone).
    """
    dropped: dict[str, str] = {}
    for index, r in enumerate(reading.incidents):
        url = r.incident.url
        if url is None or safe_url(url) is not None:
            continue
        dropped[r.incident.id] = (
            f"incident {one_line(r.incident.id, 40)!r}: link dropped ({why_not_url(url)})"
        )
        incident = r.incident.model_copy(update={"url": None})
        reading.incidents[index] = replace(r, incident=incident)
    return dropped


def derive_component(
    component: str, reading: PageReading
) -> tuple[Status, Incident | None, str | None]:
    """One component's status, the incident to attach, and a diagnostic.

    A component the page lists with a status of its own keeps that status: the provider's word
    on the component wins over an incident's impact (the incident is still attached, so its
    story is told). An open incident's impact applies only where the page gives no status of
    its own: feeds (``incidents_only``), the ``page`` pseudo component, components a platform
    lists bare (``stated=False``), and components an open incident names that the page's list
    lacks. An open maintenance that names a green component turns it into ``maintenance``
    either way: platforms rarely set a component's status for planned work, and maintenance is
    never an outage. A page indicator never enters into it: a page may say ``minor`` while the
    component we watch is fine.
    """
    own = reading.components.get(component)
    relevant = [
        r
        for r in reading.incidents
        if component in r.components
        or (not r.components and (reading.incidents_only or component == PAGE_COMPONENT))
    ]
    open_ = [r for r in relevant if not r.incident.resolved]
    if own is None and not reading.incidents_only and not _named_by(component, open_):
        return (
            Status.UNKNOWN,
            None,
            f"component {component!r} is not on the page any more (renamed or removed?)",
        )
    status = own.status if own else Status.OPERATIONAL
    impacts = [r.status for r in open_ if r.status is not None and r.status.is_outage]
    if impacts and not (own and own.stated) and status is Status.OPERATIONAL:
        status = worst(impacts)
    elif status is Status.OPERATIONAL and any(r.status is Status.MAINTENANCE for r in open_):
        status = Status.MAINTENANCE
    incident = _most_relevant(open_ or relevant)
    return status, incident, None


def _named_by(component: str, readings: Sequence[IncidentReading]) -> bool:
    """Whether one of ``readings`` names ``component`` and does something to it."""
    return any(component in r.components and r.status is not None for r in readings)


def state_status(reading: PageReading, component_id: str, status: Status) -> None:
    """Record the page's own word on a listed component's status now.

    An open incident's per-component status (incident.io's ``current_status``, Datadog's
    ``componentsAffected``, Better Stack's ``affected_resources``) is the page speaking for that
    component, as its component list does; the worst of the page's words wins. Components the
    page does not list, and words we cannot read, are left alone.
    """
    known = reading.components.get(component_id)
    if known is None or status is Status.UNKNOWN:
        return
    if known.stated:
        status = worst([known.status, status])
    reading.components[component_id] = replace(known, status=status, stated=True)


def _most_relevant(readings: Sequence[IncidentReading]) -> Incident | None:
    """Prefer real incidents over maintenances, then the most recently updated."""
    if not readings:
        return None

    def order(r: IncidentReading) -> tuple[int, float]:
        stamp = r.incident.updated_at or r.incident.started_at
        return (0 if r.incident.maintenance else 1, stamp.timestamp() if stamp else 0.0)

    return max(readings, key=order).incident


_WORDS = {
    "operational": Status.OPERATIONAL,
    "up": Status.OPERATIONAL,
    "degraded_performance": Status.DEGRADED,
    "degraded": Status.DEGRADED,
    "partial_outage": Status.PARTIAL_OUTAGE,
    "major_outage": Status.MAJOR_OUTAGE,
    "full_outage": Status.MAJOR_OUTAGE,
    "downtime": Status.MAJOR_OUTAGE,
    "under_maintenance": Status.MAINTENANCE,
    "maintenance": Status.MAINTENANCE,
}

#: Statuspage incident ``impact`` → what it does to the components it names.
IMPACT = {
    "none": None,
    "maintenance": Status.MAINTENANCE,
    "minor": Status.DEGRADED,
    "major": Status.PARTIAL_OUTAGE,
    "critical": Status.MAJOR_OUTAGE,
}


def status_word(word: object) -> Status:
    """A component status as the common status platforms spell it (``unknown`` otherwise)."""
    if not isinstance(word, str):
        return Status.UNKNOWN
    return _WORDS.get(word.strip().lower(), Status.UNKNOWN)


def parse_time(value: object) -> datetime | None:
    """An ISO-8601 time (``Z`` accepted), or ``None`` for anything else."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def require(payload: Any, key: str, kind: type, where: str) -> Any:
    """``payload[key]`` if it is a ``kind``; a :class:`SourceError` naming the key otherwise."""
    if not isinstance(payload, dict):
        raise SourceError(f"{where}: expected a JSON object, got {type(payload).__name__}")
    value = payload.get(key)
    if not isinstance(value, kind):
        found = "missing" if key not in payload else f"a {type(value).__name__}"
        raise SourceError(f"{where}: expected key {key!r} ({kind.__name__}), found {found}")
    return value


def optional_list(payload: dict[str, Any], key: str, where: str) -> list[dict[str, Any]]:
    """The objects in the list at ``payload[key]``: none when the key is missing or ``null``,
    a :class:`SourceError` when it holds anything but a list."""
    value = payload.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise SourceError(f"{where}: {key!r} is a {type(value).__name__}, expected a list")
    return [item for item in value if isinstance(item, dict)]


def newest_first(updates: Iterable[IncidentUpdate]) -> list[IncidentUpdate]:
    """An incident's updates, newest first (undated ones last, in their given order)."""
    return sorted(updates, key=lambda u: u.at.timestamp() if u.at else 0.0, reverse=True)
