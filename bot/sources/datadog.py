"""Datadog-hosted status pages (OpenRouter and others): the page's ``config.json``.

A Datadog status page (``https://<prefix>.statuspage.datadoghq.com`` or a custom domain) is a
client-rendered app that loads everything from ``<root>/config.json``
(``https://status.openrouter.ai/config.json``). ``options["path"]`` overrides the path.

The document holds a ``components`` tree (``ComponentGroup`` entries with nested
``components``; leaves of type ``Component`` with a ``status``), ``incidents`` (kept after
they resolve, with ``resolved``, ``currentStatus``, ``componentsAffected`` and a newest-first
``timeline``) and ``maintenances``. A component is a leaf, by its ``id``; groups have no
status of their own and are not components here.

Component status → status: operational, degraded, partial_outage, major_outage (Datadog's own
words, one to one). What an open incident says a component it names is (the incident's own
``componentsAffected``, else the newest timeline entry naming it) is the page's word on that
component too: the worse of it and the component's own status wins (``operational`` changes
nothing). An open incident that names a component without a status, or names none, changes no
component's status (the page lists every component with one); it is still attached to them.
Links are ``<root>/incidents/<id>``.

Maintenances were ``null`` in every payload seen, so their shape is assumed from Datadog's
Status Pages API (``status`` scheduled/in_progress/completed, ``components_affected``,
``start_date``/``completed_date``, per-status descriptions), read in camelCase or snake_case.
An in-progress maintenance puts the components it names (all, if it names none) in
``maintenance``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx

from bot.models import RESOLVED_INCIDENT_STATUSES, Incident, Status, utcnow, worst
from bot.sources.fetch import SourceError
from bot.sources.parsing import fetch_json, optional_list, parse_time, require, status_word
from bot.sources.reading import ComponentReading, IncidentReading, PageReading, state_status
from bot.sources.source import PageSource

_MAINTENANCE_WORDS = {"inprogress": "in_progress", "notstartedyet": "scheduled"}


class DatadogSource(PageSource):
    kind_name = "datadog"

    @property
    def config_url(self) -> str:
        path = str(self.options.get("path") or "/config.json")
        return f"{self.url}/{path.lstrip('/')}"

    async def read(self, client: httpx.AsyncClient) -> PageReading:
        payload = await fetch_json(client, self.config_url, self.limits)
        reading = parse_config(payload, self.config_url, page_url=self.url, now=utcnow())
        reading.incidents = self.memory.settle(reading.incidents)
        return reading


def parse_config(payload: Any, where: str, *, page_url: str, now: datetime) -> PageReading:
    """Components required; incidents and maintenances optional (``null`` when none)."""
    reading = PageReading()
    for leaf in _leaves(require(payload, "components", list, where), where):
        reading.components[leaf.id] = leaf
    if not reading.components:
        raise SourceError(f"{where}: the page lists no components (did it move?)")
    everything = frozenset(reading.components)
    for raw in optional_list(payload, "incidents", where):
        readings = _incident(raw, where, page_url, everything)
        reading.incidents.extend(readings)
        if not readings[0].incident.resolved:
            for component, word in _words(raw, _timeline(raw)).items():
                state_status(reading, component, status_word(word))
    for raw in optional_list(payload, "maintenances", where):
        reading.incidents.append(_maintenance(raw, where, page_url, now, everything))
    return reading


def _leaves(tree: list[Any], where: str) -> list[ComponentReading]:
    """The tree's leaf components in page order, without recursion."""
    leaves = []
    stack = list(reversed(tree))
    while stack:
        raw = stack.pop()
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
            raise SourceError(f"{where}: a component without an id")
        children = raw.get("components")
        if raw.get("type") == "ComponentGroup" or isinstance(children, list):
            stack.extend(reversed(children or []))
            continue
        name = str(raw.get("name") or raw["id"])
        leaves.append(ComponentReading(raw["id"], name, status_word(raw.get("status"))))
    return leaves


def _incident(
    raw: dict[str, Any], where: str, page_url: str, everything: frozenset[str]
) -> list[IncidentReading]:
    """One incident as readings: one per distinct effect on the components it names."""
    incident_id = _id(raw, "incident", where)
    timeline = _timeline(raw)
    latest = timeline[0] if timeline else {}
    status = str(raw.get("currentStatus") or latest.get("status") or "investigating").lower()
    if raw.get("resolved") is True and status not in RESOLVED_INCIDENT_STATUSES:
        status = "resolved"
    effects = _effects(raw, timeline) or {Status.DEGRADED: everything}
    outages = [s for s in effects if s is not None and s.is_outage]
    incident = Incident(
        id=incident_id,
        title=str(raw.get("title") or "Untitled incident"),
        url=f"{page_url}/incidents/{incident_id}" if page_url else None,
        status=status,
        impact=worst(outages) if outages else None,
        update=str(latest.get("description") or raw.get("description") or ""),
        update_id=str(latest["id"]) if latest.get("id") else f"{incident_id}:{status}",
        updated_at=_when(latest) or parse_time(raw.get("lastModifiedAt")),
        started_at=parse_time(raw.get("publishedDate")),
    )
    return [IncidentReading(incident, ids, effect) for effect, ids in effects.items()]


def _timeline(raw: dict[str, Any]) -> list[dict[str, Any]]:
    entries = [e for e in raw.get("timeline") or [] if isinstance(e, dict)]
    return sorted(entries, key=_stamp, reverse=True)


def _stamp(entry: dict[str, Any]) -> float:
    when = _when(entry)
    return when.timestamp() if when else 0.0


def _when(entry: dict[str, Any]) -> datetime | None:
    return parse_time(entry.get("startedAt")) or parse_time(entry.get("createdAt"))


def _effects(
    raw: dict[str, Any], timeline: list[dict[str, Any]]
) -> dict[Status | None, frozenset[str]]:
    """Component ids grouped by what the incident does to them: newest word wins."""
    grouped: dict[Status | None, set[str]] = {}
    for component, word in _words(raw, timeline).items():
        grouped.setdefault(_effect(word), set()).add(component)
    return {effect: frozenset(ids) for effect, ids in grouped.items()}


def _words(raw: dict[str, Any], timeline: list[dict[str, Any]]) -> dict[str, str]:
    """What the incident says each component it names is: the newest word for each."""
    words: dict[str, str] = {}
    for source in [*reversed(timeline), raw]:  # oldest entry first, the incident's own last
        for affected in source.get("componentsAffected") or []:
            if isinstance(affected, dict) and isinstance(affected.get("id"), str):
                words[affected["id"]] = str(affected.get("status") or "")
    return words


def _effect(word: str) -> Status | None:
    status = status_word(word)
    if status is Status.OPERATIONAL:
        return None
    return status if status.is_outage or status is Status.MAINTENANCE else Status.DEGRADED


def _maintenance(
    raw: dict[str, Any], where: str, page_url: str, now: datetime, everything: frozenset[str]
) -> IncidentReading:
    maintenance_id = _id(raw, "maintenance", where)
    start = parse_time(_pick(raw, "startDate", "start_date", "scheduledStart"))
    end = parse_time(_pick(raw, "completedDate", "completed_date", "endDate", "end_date"))
    status = _maintenance_status(raw, start, end, now)
    named = frozenset(
        str(c.get("id"))
        for c in _pick(raw, "componentsAffected", "components_affected") or []
        if isinstance(c, dict) and c.get("id")
    )
    incident = Incident(
        id=maintenance_id,
        title=str(raw.get("title") or "Maintenance"),
        url=page_url or None,
        status=status,
        update=_maintenance_text(raw, status),
        update_id=f"{maintenance_id}:{status}",
        updated_at=parse_time(_pick(raw, "lastModifiedAt", "modified_at")),
        started_at=start,
        maintenance=True,
    )
    effect = Status.MAINTENANCE if status == "in_progress" else None
    return IncidentReading(incident, named or everything, effect)


def _maintenance_status(
    raw: dict[str, Any], start: datetime | None, end: datetime | None, now: datetime
) -> str:
    word = str(_pick(raw, "currentStatus", "status") or "").lower().replace(" ", "_")
    word = _MAINTENANCE_WORDS.get(word.replace("_", ""), word)
    if word:
        return word
    if start is None or start > now:
        return "scheduled"
    return "completed" if end is not None and end <= now else "in_progress"


def _maintenance_text(raw: dict[str, Any], status: str) -> str:
    camel = {"scheduled": "scheduledDescription", "in_progress": "inProgressDescription"}
    snake = {"scheduled": "scheduled_description", "in_progress": "in_progress_description"}
    own = _pick(
        raw,
        camel.get(status, "completedDescription"),
        snake.get(status, "completed_description"),
        "description",
    )
    return str(own or "")


def _pick(raw: dict[str, Any], *keys: str) -> Any:
    return next((raw[k] for k in keys if raw.get(k) not in (None, "")), None)


def _id(raw: dict[str, Any], what: str, where: str) -> str:
    value = raw.get("id")
    if not isinstance(value, str | int) or isinstance(value, bool) or value == "":
        raise SourceError(f"{where}: a {what} without an id")
    return str(value)
