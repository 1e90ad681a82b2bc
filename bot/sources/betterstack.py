"""Better Stack status pages (status.together.ai and others): ``<root>/index.json``.

The JSON:API document (betterstack.com/docs/uptime/status-pages/subscribing-to-status-updates/
subscribing-to-api) has the page in ``data`` and everything else in ``included``: resources
(``status_page_resource``: ``public_name``, ``status``), reports (``status_report``:
``report_type`` manual/automatic/maintenance, ``aggregate_state``, ``affected_resources``,
``starts_at``/``ends_at``) and their posts (``status_update``: ``message``, ``published_at``).

A component is a resource, by its ``id``. The page's ``aggregate_state`` is never used: it
speaks for every resource, and we judge the watched ones. Resource status → status:
operational, degraded, ``downtime`` → ``major_outage``, maintenance; ``not_monitored`` (and
anything new) → ``unknown``, since the page itself does not know.

A report is over when its ``aggregate_state`` is resolved (or operational), or when its
``ends_at`` has passed. A maintenance report is ``scheduled`` before ``starts_at``,
``in_progress`` until it ends, then ``completed``. While a report is open, each affected
resource gets its own status in the report: ``downtime`` → ``major_outage``, ``degraded``,
``maintenance``, ``resolved`` → no change. That word is the page's own on the resource, as
its ``status`` is: the worse of the two wins. An open report naming no resources is attached to
all of them and changes none of their statuses (every resource has one of its own), except that
an open maintenance report puts the green ones in ``maintenance``.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

import httpx

from bot.models import RESOLVED_INCIDENT_STATUSES, Incident, IncidentUpdate, Status, utcnow, worst
from bot.sources.fetch import SourceError
from bot.sources.parsing import fetch_json, newest_first, parse_time, require
from bot.sources.reading import ComponentReading, IncidentReading, PageReading, state_status
from bot.sources.source import PageSource

_RESOURCE_STATUS = {
    "operational": Status.OPERATIONAL,
    "degraded": Status.DEGRADED,
    "downtime": Status.MAJOR_OUTAGE,
    "maintenance": Status.MAINTENANCE,
}
_AFFECTED_STATUS: dict[str, Status | None] = {
    "downtime": Status.MAJOR_OUTAGE,
    "degraded": Status.DEGRADED,
    "maintenance": Status.MAINTENANCE,
    "resolved": None,
    "operational": None,
}
_OVER = frozenset({"resolved", "operational"})


class BetterStackSource(PageSource):
    kind_name = "betterstack"

    @property
    def index_url(self) -> str:
        return f"{self.url}/index.json"

    async def read(self, client: httpx.AsyncClient) -> PageReading:
        payload = await fetch_json(client, self.index_url, self.limits)
        reading = parse_index(payload, self.index_url, page_url=self.url, now=utcnow())
        reading.incidents = self.memory.settle(reading.incidents)
        return reading


def parse_index(payload: Any, where: str, *, page_url: str, now: datetime) -> PageReading:
    """Resources required; reports optional. Raises :class:`SourceError` on a wrong shape."""
    data = require(payload, "data", dict, where)
    if data.get("type") != "status_page":
        raise SourceError(f"{where}: 'data' is a {data.get('type')!r}, expected a status_page")
    included = _by_type(require(payload, "included", list, where), where)
    reading = PageReading()
    for raw in included["status_page_resource"]:
        attrs = _attributes(raw, where)
        reading.components[raw["id"]] = ComponentReading(
            id=raw["id"],
            name=str(attrs.get("public_name") or raw["id"]),
            status=_RESOURCE_STATUS.get(str(attrs.get("status")).lower(), Status.UNKNOWN),
        )
    if not reading.components:
        raise SourceError(f"{where}: the page lists no resources (did it move?)")
    posts = _posts(included["status_update"], where)
    everything = frozenset(reading.components)
    for raw in included["status_report"]:
        readings = _report(raw, posts, where, page_url, now, everything)
        reading.incidents.extend(readings)
        report = readings[0].incident
        if not report.resolved and report.status != "scheduled":
            for resource_id, status in _stated(_attributes(raw, where)).items():
                state_status(reading, resource_id, status)
    return reading


def _stated(attrs: dict[str, Any]) -> dict[str, Status]:
    """What an open report says each resource it names is (the page's own word on it)."""
    stated = {}
    for item in attrs.get("affected_resources") or []:
        if isinstance(item, dict) and item.get("status_page_resource_id") is not None:
            status = _AFFECTED_STATUS.get(str(item.get("status") or "").lower())
            if status is not None:
                stated[str(item["status_page_resource_id"])] = status
    return stated


def _by_type(included: list[Any], where: str) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for raw in included:
        if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
            raise SourceError(f"{where}: an 'included' entry without a type")
        if raw.get("id") is None:
            raise SourceError(f"{where}: an included {raw['type']} without an id")
        grouped[raw["type"]].append({**raw, "id": str(raw["id"])})
    return grouped


def _attributes(raw: dict[str, Any], where: str) -> dict[str, Any]:
    attrs = raw.get("attributes")
    if not isinstance(attrs, dict):
        raise SourceError(f"{where}: {raw['type']} {raw['id']} has no attributes")
    return attrs


def _posts(raws: list[dict[str, Any]], where: str) -> dict[str, tuple[IncidentUpdate, str]]:
    """Status updates by id, with the report id they name (when they name one)."""
    posts = {}
    for raw in raws:
        attrs = _attributes(raw, where)
        update = IncidentUpdate(
            id=raw["id"],
            status="",
            body=str(attrs.get("message") or ""),
            at=parse_time(attrs.get("published_at")),
        )
        posts[raw["id"]] = (update, str(attrs.get("status_report_id") or ""))
    return posts


def _report(
    raw: dict[str, Any],
    posts: dict[str, tuple[IncidentUpdate, str]],
    where: str,
    page_url: str,
    now: datetime,
    everything: frozenset[str],
) -> list[IncidentReading]:
    """One report as readings: one per distinct effect on the resources it names."""
    attrs = _attributes(raw, where)
    maintenance = str(attrs.get("report_type") or "").lower() == "maintenance"
    state = _state(attrs, maintenance, now)
    effects = _effects(attrs, state, maintenance, everything)
    outages = [s for s in effects if s is not None and s.is_outage]
    updates = _report_updates(raw, posts)
    latest = updates[0] if updates else None
    incident = Incident(
        id=raw["id"],
        title=str(attrs.get("title") or "Untitled report"),
        url=page_url or None,
        status=state,
        impact=worst(outages) if outages else None,
        update=latest.body if latest else "",
        update_id=latest.id if latest else None,
        updated_at=latest.at if latest else None,
        started_at=parse_time(attrs.get("starts_at")),
        maintenance=maintenance,
    )
    return [IncidentReading(incident, ids, effect) for effect, ids in effects.items()]


def _state(attrs: dict[str, Any], maintenance: bool, now: datetime) -> str:
    aggregate = str(attrs.get("aggregate_state") or "").lower()
    starts, ends = parse_time(attrs.get("starts_at")), parse_time(attrs.get("ends_at"))
    over = aggregate in _OVER or (ends is not None and ends <= now)
    if maintenance:
        if over:
            return "completed"
        return "scheduled" if starts is not None and starts > now else "in_progress"
    return "resolved" if over else "investigating"


def _effects(
    attrs: dict[str, Any], state: str, maintenance: bool, everything: frozenset[str]
) -> dict[Status | None, frozenset[str]]:
    """Resource ids grouped by what the report does to them while it is open."""
    closed = state in RESOLVED_INCIDENT_STATUSES or state == "scheduled"
    fallback = Status.MAINTENANCE if maintenance else Status.DEGRADED
    grouped: dict[Status | None, set[str]] = defaultdict(set)
    for item in attrs.get("affected_resources") or []:
        if not isinstance(item, dict) or item.get("status_page_resource_id") is None:
            continue
        word = str(item.get("status") or "").lower()
        effect = None if closed else _AFFECTED_STATUS.get(word, fallback)
        grouped[effect].add(str(item["status_page_resource_id"]))
    if not grouped:
        grouped[None if closed else fallback] = set(everything)
    return {effect: frozenset(ids) for effect, ids in grouped.items()}


def _report_updates(
    raw: dict[str, Any], posts: dict[str, tuple[IncidentUpdate, str]]
) -> list[IncidentUpdate]:
    """The report's posts, newest first: linked from the report, or naming it."""
    related = ((raw.get("relationships") or {}).get("status_updates") or {}).get("data") or []
    ids = {str(r.get("id")) for r in related if isinstance(r, dict)}
    mine = [u for pid, (u, report) in posts.items() if pid in ids or report == raw["id"]]
    return newest_first(mine)
