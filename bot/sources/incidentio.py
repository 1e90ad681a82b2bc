"""incident.io-hosted status pages (status.openai.com, groqstatus.com, status.perplexity.com...).

The page's own front end reads ``<page>/proxy/<host>`` (``host`` is the page URL's host unless
``options["host"]`` says otherwise). Its ``summary`` lists every component without a status:
only ``affected_components`` names the ones that are not operational (incident.io says
``full_outage`` where Statuspage says ``major_outage``). ``ongoing_incidents`` and
``scheduled_maintenances`` name components by id in ``affected_components`` and
``component_impacts``, and carry rich-text ``updates`` (we read ``message_string``).

A component's own status is what the summary's ``affected_components`` says of it, and what
an open incident's ``affected_components`` entry says of it *now* (``current_status``; its
``status`` is the worst it reached): worst wins, and an incident's impact does not override
it (an incident that says the component is operational again leaves it green). A component
nothing speaks for has no status of its own, so the open incidents naming it decide.

A maintenance counts only while it is in progress: status ``maintenance_in_progress``, or still
``maintenance_scheduled`` while the clock is inside one of its ``component_impacts`` windows
(the word can lag the clock). Planned work in the future is not maintenance yet.

Resolved incidents vanish from the summary. When one we saw open on a watched component
disappears and the summary does not say how it ended (a completed maintenance may stay
listed), we read ``<page>/proxy/<host>/incidents`` once, the same front end's history list
(undocumented but observed: ``{"incidents": [...]}`` in the summary's incident shape), to
learn how it ended; if that fails we call it resolved because it is no longer listed, or, for
a maintenance still listed but no longer under way, completed because it is no longer in
progress.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from bot.models import Incident, IncidentUpdate, Status, utcnow, worst
from bot.sources.fetch import SourceError
from bot.sources.parsing import (
    fetch_json,
    newest_first,
    optional_list,
    parse_time,
    require,
    status_word,
)
from bot.sources.reading import ComponentReading, IncidentReading, PageReading, state_status
from bot.sources.source import PageSource

#: incident.io's maintenance words → the lifecycle words the rest of tocsin knows.
_MAINTENANCE_WORDS = {
    "maintenance_scheduled": "scheduled",
    "maintenance_in_progress": "in_progress",
    "maintenance_complete": "completed",
    "maintenance_completed": "completed",
}


class IncidentioSource(PageSource):
    kind_name = "incidentio"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.host = str(self.options.get("host") or urlsplit(self.url).hostname or "")

    @property
    def summary_url(self) -> str:
        return f"{self.url}/proxy/{self.host}"

    @property
    def incidents_url(self) -> str:
        return f"{self.summary_url}/incidents"

    async def read(self, client: httpx.AsyncClient) -> PageReading:
        payload = await fetch_json(client, self.summary_url, self.limits)
        reading, listed = parse_summary(payload, self.summary_url, page_url=self.url)
        ended = await self._endings(client, self.memory.vanished(reading.incidents), listed)
        watched = self.watched or list(reading.components)
        reading.incidents = self.memory.settle(reading.incidents, ended, watched=watched)
        return reading

    async def _endings(
        self, client: httpx.AsyncClient, vanished: list[str], listed: dict[str, Incident]
    ) -> dict[str, Incident]:
        """How incidents that left the active list ended: as the summary still lists them,
        else as the history tells it. A maintenance still listed, neither under way nor over,
        is no longer in progress."""
        ended = {i: listed[i] for i in vanished if i in listed and listed[i].resolved}
        unsettled = [i for i in vanished if i not in ended]
        if unsettled:
            history = await self._history(client, unsettled)
            ended.update({i: found for i, found in history.items() if found.resolved})
        for i in vanished:
            if i not in ended and i in listed:
                ended[i] = _no_longer_in_progress(listed[i])
        return ended

    async def _history(self, client: httpx.AsyncClient, ids: list[str]) -> dict[str, Incident]:
        url = self.incidents_url
        try:
            payload = await fetch_json(client, url, self.limits)
            incidents = require(payload, "incidents", list, url)
        except SourceError:
            return {}  # we will say it is no longer listed; the summary is what matters
        return {
            raw["id"]: parse_incident(raw, url, page_url=self.url)
            for raw in incidents
            if isinstance(raw, dict) and raw.get("id") in ids
        }


def parse_summary(
    payload: Any, where: str, *, page_url: str = "", now: datetime | None = None
) -> tuple[PageReading, dict[str, Incident]]:
    """The reading, and every incident or maintenance the summary lists (active or not)."""
    summary = require(payload, "summary", dict, where)
    components = require(summary, "components", list, where)
    if not components:
        raise SourceError(f"{where}: the page lists no components (did it move?)")
    reading = PageReading()
    for raw in components:
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
            raise SourceError(f"{where}: a component without an id")
        name = str(raw.get("name") or raw["id"])
        reading.components[raw["id"]] = ComponentReading(
            raw["id"], name, Status.OPERATIONAL, stated=False
        )
    for raw in optional_list(summary, "affected_components", where):
        _apply_affected(reading, raw, where)
    listed: dict[str, Incident] = {}
    moment = now or utcnow()
    for raw in [
        *optional_list(summary, "ongoing_incidents", where),
        *optional_list(summary, "scheduled_maintenances", where),
    ]:
        incident = parse_incident(raw, where, page_url=page_url)
        listed[incident.id] = incident
        entry = _entry(incident, raw, moment)
        if entry is not None:
            reading.incidents.append(entry)
            if not incident.maintenance and not incident.resolved:
                _apply_current(reading, raw)
    return reading, listed


def _apply_affected(reading: PageReading, raw: dict[str, Any], where: str) -> None:
    """A component the page says is not operational; a word we do not know is still not green."""
    component_id = raw.get("component_id")
    if not isinstance(component_id, str):
        raise SourceError(f"{where}: an affected component without a component_id")
    status = status_word(raw.get("status") or raw.get("current_status"))
    if status is Status.UNKNOWN:
        status = Status.DEGRADED
    known = reading.components.get(component_id)
    name = known.name if known else component_id
    status = worst([status, known.status]) if known else status
    reading.components[component_id] = ComponentReading(component_id, name, status)


def _apply_current(reading: PageReading, raw: dict[str, Any]) -> None:
    """An open incident's word on what each component it names is now (``current_status``;
    its ``status`` is the worst it reached): the page's own status for that component."""
    for item in _dicts(raw.get("affected_components")):
        if isinstance(item.get("component_id"), str):
            state_status(reading, item["component_id"], status_word(item.get("current_status")))


def _entry(incident: Incident, raw: dict[str, Any], now: datetime) -> IncidentReading | None:
    """What one listed incident does now; ``None`` for maintenance not (or no longer) under way."""
    components = _component_ids(raw)
    if not incident.maintenance:
        return IncidentReading(incident, components, _impact(raw, now))
    if _maintenance_active(incident, raw, now):
        return IncidentReading(incident, components, Status.MAINTENANCE)
    return None


def parse_incident(raw: dict[str, Any], where: str, *, page_url: str = "") -> Incident:
    """An incident or maintenance in the proxy's shape (summary or incidents list)."""
    incident_id = raw.get("id")
    if not isinstance(incident_id, str) or not incident_id:
        raise SourceError(f"{where}: an incident without an id")
    updates = newest_first(_update(u) for u in _dicts(raw.get("updates")))
    latest = updates[0] if updates else None
    maintenance = _is_maintenance(raw)
    word = raw.get("status") or (latest.status if latest else "")
    starts = [start for start, _ in _windows(raw)]
    return Incident(
        id=incident_id,
        title=str(raw.get("name") or "Untitled incident").strip(),
        url=f"{page_url}/incidents/{incident_id}" if page_url else None,
        status=_lifecycle(word, maintenance=maintenance),
        impact=None if maintenance else _impact(raw, None),
        update=latest.body if latest else "",
        update_id=latest.id if latest else None,
        updated_at=(latest.at if latest else None) or parse_time(raw.get("published_at")),
        started_at=min(starts) if starts else parse_time(raw.get("published_at")),
        maintenance=maintenance,
    )


def _update(raw: dict[str, Any]) -> IncidentUpdate:
    message = raw.get("message_string")
    if not isinstance(message, str):
        rich = raw.get("message")
        markdown = rich.get("markdown") if isinstance(rich, dict) else None
        message = markdown if isinstance(markdown, str) else ""
    return IncidentUpdate(
        id=str(raw.get("id")),
        status=_lifecycle(raw.get("to_status"), maintenance=False),
        body=message.strip(),
        at=parse_time(raw.get("published_at")),
    )


def _lifecycle(word: object, *, maintenance: bool) -> str:
    text = str(word or "").strip().lower()
    if text in _MAINTENANCE_WORDS:
        return _MAINTENANCE_WORDS[text]
    if maintenance and text == "resolved":
        return "completed"
    return text or ("scheduled" if maintenance else "investigating")


def _is_maintenance(raw: dict[str, Any]) -> bool:
    return raw.get("type") == "maintenance" or str(raw.get("status") or "").startswith(
        "maintenance_"
    )


def _maintenance_active(incident: Incident, raw: dict[str, Any], now: datetime) -> bool:
    if incident.status == "in_progress":
        return True
    if incident.status != "scheduled":
        return False
    return any(start <= now and (end is None or now < end) for start, end in _windows(raw))


def _impact(raw: dict[str, Any], now: datetime | None) -> Status | None:
    """The worst outage the incident causes now: its live component words and open impact
    windows (``None`` when it names no outage; the components' own statuses then stand)."""
    words: list[object] = [raw.get("current_worst_impact")]
    for affected in _dicts(raw.get("affected_components")):
        words.append(affected.get("current_status") or affected.get("status"))
    for impact in _dicts(raw.get("component_impacts")):
        end = parse_time(impact.get("end_at"))
        if end is None or (now is not None and now < end):
            words.append(impact.get("status"))
    outages = [s for s in map(status_word, words) if s.is_outage]
    return worst(outages) if outages else None


def _windows(raw: dict[str, Any]) -> list[tuple[datetime, datetime | None]]:
    windows = []
    for impact in _dicts(raw.get("component_impacts")):
        start = parse_time(impact.get("start_at"))
        if start is not None:
            windows.append((start, parse_time(impact.get("end_at"))))
    return windows


def _component_ids(raw: dict[str, Any]) -> frozenset[str]:
    ids = {
        item["component_id"]
        for key in ("affected_components", "component_impacts")
        for item in _dicts(raw.get(key))
        if isinstance(item.get("component_id"), str)
    }
    for update in _dicts(raw.get("updates")):
        for item in _dicts(update.get("component_statuses")):
            if isinstance(item.get("component_id"), str):
                ids.add(item["component_id"])
    return frozenset(ids)


def _dicts(value: object) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _no_longer_in_progress(maintenance: Incident) -> Incident:
    """A maintenance the summary still lists but no longer runs: call it completed."""
    return maintenance.model_copy(
        update={"status": "completed", "update": "No longer in progress on the status page."}
    )
