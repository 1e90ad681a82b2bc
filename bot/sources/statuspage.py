"""Atlassian Statuspage v2 (status.claude.com and many others).

Live state comes from ``/api/v2/summary.json`` (components, unresolved incidents, scheduled
maintenances), fetched with ``If-None-Match`` (or ``If-Modified-Since``) so an unchanged page
costs a 304; a 200 whose body is byte for byte the last one (by its digest) is not parsed
again either: the last parse is reused (it holds nothing that depends on the time; what
does, the observations' time and maintenance ahead's "starts in", is derived afresh). Resolved
incidents vanish from the summary, so when one we saw open on a watched component disappears
we read ``/api/v2/incidents.json`` once to learn how it ended and pass the resolution on (if
that fails, it is resolved because it is no longer listed).
"""

from __future__ import annotations

import hashlib
from typing import Any

import httpx

from bot.models import Incident, IncidentUpdate, Status
from bot.outside import one_line, safe_url
from bot.sources.fetch import Fetched, SourceError, fetch
from bot.sources.parsing import (
    IMPACT,
    decode_json,
    fetch_json,
    newest_first,
    optional_list,
    parse_time,
    require,
    status_word,
)
from bot.sources.reading import (
    PLANNED_KEPT,
    ComponentReading,
    IncidentReading,
    PageReading,
    PlannedWindow,
)
from bot.sources.source import PageSource

_ACTIVE_MAINTENANCE = frozenset({"in_progress", "verifying"})


class StatuspageSource(PageSource):
    kind_name = "statuspage"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._etag: str | None = None
        self._modified: str | None = None
        #: The digest of the last body parsed, and its parse (kept whole: never handed out).
        self._digest: bytes | None = None
        self._last: PageReading | None = None

    @property
    def summary_url(self) -> str:
        return f"{self.url}/api/v2/summary.json"

    async def read(self, client: httpx.AsyncClient) -> PageReading:
        reading = await self._summary(client)
        vanished = self.memory.vanished(reading.incidents)
        ended = await self._endings(client, vanished) if vanished else {}
        watched = self.watched or list(reading.components)
        reading.incidents = self.memory.settle(reading.incidents, ended, watched=watched)
        return reading

    async def _summary(self, client: httpx.AsyncClient) -> PageReading:
        """The summary's reading: parsed afresh only when the body changed."""
        headers: dict[str, str] = {}
        if self._last is not None:
            if self._etag:
                headers["If-None-Match"] = self._etag
            elif self._modified:
                headers["If-Modified-Since"] = self._modified
        fetched: Fetched = await fetch(
            client,
            self.summary_url,
            self.limits,
            headers=headers,
            accept_not_modified=self._last is not None,
        )
        if fetched.status_code == 304 and self._last is not None:
            self.not_modified += 1
            return _copy(self._last)
        digest = hashlib.blake2b(fetched.body, digest_size=16).digest()
        if digest != self._digest or self._last is None:
            self._last = None  # a body that does not parse is read again next time
            reading = parse_summary(decode_json(fetched), self.summary_url, page_url=self.url)
            self.parsed += 1
            self._digest, self._last = digest, reading
        else:
            self.unchanged += 1
        self._etag, self._modified = fetched.etag, fetched.headers.get("last-modified")
        return _copy(self._last)

    async def _endings(self, client: httpx.AsyncClient, ids: list[str]) -> dict[str, Incident]:
        """How the incidents that left the summary ended, as ``incidents.json`` tells it."""
        url = f"{self.url}/api/v2/incidents.json"
        try:
            payload = await fetch_json(client, url, self.limits)
            incidents = require(payload, "incidents", list, url)
        except SourceError:
            return {}  # we will say it is no longer listed; the summary is what matters
        found = {}
        for raw in incidents:
            if isinstance(raw, dict) and raw.get("id") in ids:
                found[raw["id"]] = parse_incident(raw, self.url)
        return found


def _copy(reading: PageReading) -> PageReading:
    """A reading to hand out: its lists are the caller's to change (incident memory and
    :func:`~bot.sources.reading.drop_unsafe_links` replace items), what they hold is immutable."""
    return PageReading(
        components=dict(reading.components),
        incidents=list(reading.incidents),
        incidents_only=reading.incidents_only,
        planned=list(reading.planned),
    )


def parse_summary(payload: Any, where: str, *, page_url: str = "") -> PageReading:
    """A Statuspage (or compatible) summary: components required, the rest optional."""
    components = require(payload, "components", list, where)
    if not components:  # before any incident bookkeeping: a broken page must not eat endings
        raise SourceError(f"{where}: the page lists no components (did it move?)")
    reading = PageReading()
    for raw in components:
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
            raise SourceError(f"{where}: a component without an id")
        reading.components[raw["id"]] = ComponentReading(
            id=raw["id"],
            name=str(raw.get("name") or raw["id"]),
            status=status_word(raw.get("status")),
        )
    # The incident.io compatibility shim omits both lists.
    for raw in optional_list(payload, "incidents", where):
        incident = parse_incident(raw, page_url)
        reading.incidents.append(
            IncidentReading(incident, _component_ids(raw), IMPACT.get(str(raw.get("impact"))))
        )
    for raw in optional_list(payload, "scheduled_maintenances", where):
        if raw.get("status") == "scheduled":  # for later: maintenance ahead, not maintenance
            window = planned_window(raw, page_url)
            if window is not None and len(reading.planned) < PLANNED_KEPT:
                reading.planned.append(window)
            continue
        if raw.get("status") not in _ACTIVE_MAINTENANCE:
            continue  # already over
        incident = parse_incident(raw, page_url, maintenance=True)
        reading.incidents.append(IncidentReading(incident, _component_ids(raw), Status.MAINTENANCE))
    return reading


def parse_incident(raw: dict[str, Any], page_url: str, *, maintenance: bool = False) -> Incident:
    updates = newest_first(
        _update(u) for u in raw.get("incident_updates") or [] if isinstance(u, dict)
    )
    latest = updates[0] if updates else None
    incident_id = str(raw["id"])
    return Incident(
        id=incident_id,
        title=str(raw.get("name") or "Untitled incident"),
        url=_text(raw.get("shortlink"))
        or (f"{page_url}/incidents/{incident_id}" if page_url else None),
        status=str(raw.get("status") or "investigating"),
        impact=IMPACT.get(str(raw.get("impact"))),
        update=latest.body if latest else "",
        update_id=latest.id if latest else None,
        updated_at=parse_time(raw.get("updated_at")) or (latest.at if latest else None),
        started_at=parse_time(raw.get("started_at")) or parse_time(raw.get("created_at")),
        maintenance=maintenance or raw.get("impact") == "maintenance",
    )


def planned_window(raw: dict[str, Any], page_url: str) -> PlannedWindow | None:
    """A scheduled maintenance's window, or ``None`` when it cannot be told safely (no id or
    start, components that are not a list): a bad window costs that window, never the page."""
    start = parse_time(raw.get("scheduled_for"))
    components = raw.get("components")
    if not isinstance(raw.get("id"), str) or start is None:
        return None
    if components is not None and not isinstance(components, list):
        return None
    named = [c for c in components or [] if isinstance(c, dict) and isinstance(c.get("id"), str)]
    posts = raw.get("incident_updates")
    updates = (
        newest_first(_update(u) for u in posts if isinstance(u, dict))
        if isinstance(posts, list)
        else []
    )
    until = parse_time(raw.get("scheduled_until"))
    return PlannedWindow(
        id=one_line(raw["id"], 64),
        title=one_line(raw.get("name") or "Scheduled maintenance", 200),
        scheduled_for=start,
        scheduled_until=until if until is not None and until > start else None,
        components=tuple(
            (one_line(c["id"], 64), one_line(c.get("name") or c["id"], 100)) for c in named[:50]
        ),
        url=safe_url(raw.get("shortlink"))
        or (safe_url(f"{page_url}/incidents/{raw['id']}") if page_url else None),
        update=one_line(updates[0].body, 500) if updates else "",
    )


def _update(raw: dict[str, Any]) -> IncidentUpdate:
    return IncidentUpdate(
        id=str(raw.get("id")),
        status=str(raw.get("status") or ""),
        body=str(raw.get("body") or ""),
        at=parse_time(raw.get("display_at")) or parse_time(raw.get("created_at")),
    )


def _component_ids(raw: dict[str, Any]) -> frozenset[str]:
    ids = {c["id"] for c in raw.get("components") or [] if isinstance(c, dict) and "id" in c}
    for update in raw.get("incident_updates") or []:
        for affected in (update or {}).get("affected_components") or []:
            if isinstance(affected, dict) and isinstance(affected.get("code"), str):
                ids.add(affected["code"])
    return frozenset(ids)


def _text(value: object) -> str | None:
    """A string field, or ``None`` for anything else (a hostile page may send a number where
    a link belongs: that costs the link, not the page)."""
    return value if isinstance(value, str) and value else None
