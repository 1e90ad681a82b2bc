"""Instatus pages: ``<root>/summary.json``.

The public summary (instatus.com/help/api/public-data) has only a page-level status, so the
provider is one pseudo component, ``page``, named after the page:

- ``page.status``: ``UP`` → operational, ``UNDERMAINTENANCE`` → maintenance, ``HASISSUES`` →
  the worst impact of the active incidents, ``degraded`` when they state none. Any other word
  is a change of format we cannot read: ``unknown``, never green. It is the page's own word:
  an active incident on an ``UP`` page (one being monitored) is attached but changes nothing.
- ``activeIncidents`` (``name``, ``started``, ``status`` INVESTIGATING/IDENTIFIED/MONITORING/
  RESOLVED, ``impact``, ``url``): impact ``MAJOROUTAGE`` → major_outage, ``PARTIALOUTAGE`` →
  partial_outage, ``MINOROUTAGE``/``DEGRADEDPERFORMANCE`` → degraded, ``UNDERMAINTENANCE`` →
  maintenance, ``OPERATIONAL`` → no change, none → degraded.
- ``activeMaintenances`` (``status`` NOTSTARTEDYET/INPROGRESS/COMPLETED): in progress →
  maintenance; not started yet → no change.

The summary carries no update text: a notice gets the incident's name and status word, and an
incident or maintenance that leaves the summary is reported once as over.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import httpx

from bot.models import RESOLVED_INCIDENT_STATUSES, Incident, Status, worst
from bot.sources.fetch import SourceError
from bot.sources.parsing import fetch_json, optional_list, parse_time, require
from bot.sources.reading import PAGE_COMPONENT, ComponentReading, IncidentReading, PageReading
from bot.sources.source import PageSource

_IMPACT: dict[str, Status | None] = {
    "MAJOROUTAGE": Status.MAJOR_OUTAGE,
    "PARTIALOUTAGE": Status.PARTIAL_OUTAGE,
    "MINOROUTAGE": Status.DEGRADED,
    "DEGRADEDPERFORMANCE": Status.DEGRADED,
    "UNDERMAINTENANCE": Status.MAINTENANCE,
    "MAINTENANCE": Status.MAINTENANCE,
    "OPERATIONAL": None,
}
_MAINTENANCE_STATUS = {"NOTSTARTEDYET": "scheduled", "INPROGRESS": "in_progress"}


class InstatusSource(PageSource):
    kind_name = "instatus"

    @property
    def summary_url(self) -> str:
        return f"{self.url}/summary.json"

    async def read(self, client: httpx.AsyncClient) -> PageReading:
        payload = await fetch_json(client, self.summary_url, self.limits)
        reading = parse_summary(payload, self.summary_url)
        reading.incidents = self.memory.settle(reading.incidents)
        return reading


def parse_summary(payload: Any, where: str) -> PageReading:
    """``page.status`` required; the active lists optional (older pages omit them)."""
    page = require(payload, "page", dict, where)
    word = require(page, "status", str, where).strip().upper()
    readings = [
        *(_incident(raw, where) for raw in optional_list(payload, "activeIncidents", where)),
        *(_maintenance(raw, where) for raw in optional_list(payload, "activeMaintenances", where)),
    ]
    reading = PageReading(incidents=readings)
    name = str(page.get("name") or "Status page")
    reading.components[PAGE_COMPONENT] = ComponentReading(
        PAGE_COMPONENT, name, _page_status(word, readings, where)
    )
    return reading


def _page_status(word: str, readings: list[IncidentReading], where: str) -> Status:
    if word == "UP":
        return Status.OPERATIONAL
    if word == "UNDERMAINTENANCE":
        return Status.MAINTENANCE
    if word == "HASISSUES":
        open_ = [r.status for r in readings if not r.incident.resolved and r.status is not None]
        outages = [s for s in open_ if s.is_outage]
        return worst(outages) if outages else Status.DEGRADED
    raise SourceError(
        f"{where}: unrecognized page.status {word!r} (expected UP, HASISSUES or UNDERMAINTENANCE)"
    )


def _incident(raw: dict[str, Any], where: str) -> IncidentReading:
    status = str(raw.get("status") or "investigating").lower()
    impact_word = str(raw.get("impact") or "").upper()
    impact = _IMPACT.get(impact_word, Status.DEGRADED) if impact_word else Status.DEGRADED
    incident = Incident(
        id=_id(raw, where),
        title=str(raw.get("name") or "Untitled incident"),
        url=raw.get("url") if isinstance(raw.get("url"), str) else None,
        status=status,
        impact=impact if impact is not None and impact.is_outage else None,
        update_id=f"{_id(raw, where)}:{status}",
        updated_at=_time(raw.get("updatedAt")),
        started_at=_time(raw.get("started")),
    )
    effect = None if status in RESOLVED_INCIDENT_STATUSES else impact
    return IncidentReading(incident, frozenset({PAGE_COMPONENT}), effect)


def _maintenance(raw: dict[str, Any], where: str) -> IncidentReading:
    word = str(raw.get("status") or "").upper()
    status = _MAINTENANCE_STATUS.get(word, word.lower() or "scheduled")
    incident = Incident(
        id=_id(raw, where),
        title=str(raw.get("name") or "Maintenance"),
        url=raw.get("url") if isinstance(raw.get("url"), str) else None,
        status=status,
        update_id=f"{_id(raw, where)}:{status}",
        updated_at=_time(raw.get("updatedAt")),
        started_at=_time(raw.get("start")),
        maintenance=True,
    )
    effect = Status.MAINTENANCE if status == "in_progress" else None
    return IncidentReading(incident, frozenset({PAGE_COMPONENT}), effect)


def _id(raw: dict[str, Any], where: str) -> str:
    """The incident's id, else its URL (``.../incident/<id>``), else its name."""
    for key in ("id", "url", "name"):
        if isinstance(raw.get(key), str) and raw[key]:
            return str(raw[key])
    raise SourceError(f"{where}: an active incident or maintenance with no id, url or name")


def _time(value: Any) -> datetime | None:
    """ISO-8601, or JavaScript's ``Sat Jun 11 2022 18:55:50 GMT+0000 (Coordinated ...)``."""
    if not isinstance(value, str):
        return None
    parsed = parse_time(value)
    if parsed is not None:
        return parsed
    bare = re.sub(r"\s*\(.*\)\s*$", "", value.strip())
    try:
        return datetime.strptime(bare, "%a %b %d %Y %H:%M:%S GMT%z")
    except ValueError:
        return None
