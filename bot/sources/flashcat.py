"""Flashcat (Flashduty) status pages, e.g. status.deepseek.com.

Reads ``GET <root>/api/status-page/<page_id>/summary/active``; the page id is
``options["page_id"]`` (DeepSeek's: 6410630422455). The answer is
``{"data": {"page": {"components": [...]}, "active_changes": [...]}}``: the components (by
``component_id``) carry no status, and ``active_changes`` lists what is open now.

No active change → the watched components are operational. An active change naming
components makes each of them degraded or worse. The shape of a change was not in any payload
we captured; it is taken from a public parser of this API (see the tests' notes) and read
defensively: ``change_id``, ``title``, ``status`` (investigating, identified, monitoring,
resolved), ``type`` (``maintenance`` for planned work), ``affected_components``
(``component_id``, ``name``, ``status``), ``start_at_seconds`` and ``updates`` (``update_id``,
``at_seconds``, ``status``, ``description``, ``component_changes``). A component's status in a
change is its newest ``component_changes`` entry, else its ``affected_components`` entry:
``full_outage``/``major_outage`` → ``major_outage``, ``partial_outage``, ``maintenance``,
anything else (``degraded``, none, unknown) → ``degraded``. A change naming no component
applies to all of them. A change that leaves the list is reported once as resolved.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx

from bot.models import RESOLVED_INCIDENT_STATUSES, Incident, IncidentUpdate, Status, utcnow, worst
from bot.sources.fetch import SourceError
from bot.sources.parsing import fetch_json, newest_first, optional_list, require, status_word
from bot.sources.reading import ComponentReading, IncidentReading, PageReading
from bot.sources.source import PageSource


class FlashcatSource(PageSource):
    kind_name = "flashcat"

    @property
    def active_url(self) -> str:
        page_id = str(self.options.get("page_id") or "").strip()
        if not page_id.isalnum():
            raise SourceError(
                f"{self.url}: options.page_id is required for a flashcat page "
                "(the number in /api/status-page/<page_id>/...)"
            )
        return f"{self.url}/api/status-page/{page_id}/summary/active"

    async def read(self, client: httpx.AsyncClient) -> PageReading:
        url = self.active_url
        payload = await fetch_json(client, url, self.limits)
        reading = parse_active(payload, url, page_url=self.url, now=utcnow())
        reading.incidents = self.memory.settle(reading.incidents)
        return reading


def parse_active(payload: Any, where: str, *, page_url: str, now: datetime) -> PageReading:
    """Components and the active-changes list are both required (``null`` means none)."""
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        raise SourceError(f"{where}: the page answered with an error: {payload['error']}")
    data = require(payload, "data", dict, where)
    page = require(data, "page", dict, where)
    reading = PageReading()
    for raw in require(page, "components", list, where):
        if not isinstance(raw, dict) or not raw.get("component_id"):
            raise SourceError(f"{where}: a component without a component_id")
        component_id = str(raw["component_id"])
        name = str(raw.get("name") or component_id)
        reading.components[component_id] = ComponentReading(
            component_id, name, Status.OPERATIONAL, stated=False
        )
    if not reading.components:
        raise SourceError(f"{where}: the page lists no components (did it move?)")
    if "active_changes" not in data:
        raise SourceError(f"{where}: expected key 'active_changes' (list), found missing")
    everything = frozenset(reading.components)
    for raw in optional_list(data, "active_changes", where):  # required, but null means none
        reading.incidents.extend(_change(raw, where, page_url, now, everything))
    return reading


def _change(
    raw: dict[str, Any], where: str, page_url: str, now: datetime, everything: frozenset[str]
) -> list[IncidentReading]:
    """One active change as readings: one per distinct effect on the components it names."""
    if raw.get("change_id") in (None, ""):
        raise SourceError(f"{where}: an active change without a change_id")
    change_id = str(raw["change_id"])
    updates = _updates(raw)
    latest = updates[0] if updates else None
    maintenance = "maintenance" in str(raw.get("type") or "").lower()
    status = str(raw.get("status") or (latest.status if latest else "") or "investigating")
    status = status.lower()
    started = _seconds(raw.get("start_at_seconds"))
    effects = _effects(raw, status, maintenance, started, now) or {
        _fallback(status, maintenance, started, now): everything
    }
    outages = [s for s in effects if s is not None and s.is_outage]
    incident = Incident(
        id=change_id,
        title=str(raw.get("title") or "Untitled incident"),
        url=page_url or None,
        status=status,
        impact=worst(outages) if outages else None,
        update=latest.body if latest else str(raw.get("description") or "").strip(),
        update_id=latest.id if latest else f"{change_id}:{status}",
        updated_at=latest.at if latest else started,
        started_at=started,
        maintenance=maintenance,
    )
    return [IncidentReading(incident, ids, effect) for effect, ids in effects.items()]


def _updates(raw: dict[str, Any]) -> list[IncidentUpdate]:
    """The change's updates, newest first."""
    return newest_first(
        IncidentUpdate(
            id=str(item.get("update_id") or f"{raw.get('change_id')}:{index}"),
            status=str(item.get("status") or "").lower(),
            body=str(item.get("description") or "").strip(),
            at=_seconds(item.get("at_seconds")),
        )
        for index, item in enumerate(raw.get("updates") or [])
        if isinstance(item, dict)
    )


def _effects(
    raw: dict[str, Any], status: str, maintenance: bool, started: datetime | None, now: datetime
) -> dict[Status | None, frozenset[str]]:
    """Component ids grouped by what the change does to them: the newest word wins."""
    words: dict[str, str] = {}
    for item in raw.get("affected_components") or []:
        if isinstance(item, dict) and item.get("component_id"):
            words[str(item["component_id"])] = str(item.get("status") or "")
    timeline = [u for u in raw.get("updates") or [] if isinstance(u, dict)]
    for update in sorted(timeline, key=lambda u: _number(u.get("at_seconds"))):
        for item in update.get("component_changes") or []:
            if isinstance(item, dict) and item.get("component_id"):
                words[str(item["component_id"])] = str(item.get("status") or "")
    grouped: dict[Status | None, set[str]] = {}
    for component, word in words.items():
        effect = _effect(word, status, maintenance, started, now)
        grouped.setdefault(effect, set()).add(component)
    return {effect: frozenset(ids) for effect, ids in grouped.items()}


def _effect(
    word: str, status: str, maintenance: bool, started: datetime | None, now: datetime
) -> Status | None:
    named = status_word(word)
    if status not in RESOLVED_INCIDENT_STATUSES and named.is_outage:
        return named
    return _fallback(status, maintenance or named is Status.MAINTENANCE, started, now)


def _fallback(
    status: str, maintenance: bool, started: datetime | None, now: datetime
) -> Status | None:
    """What an open change does where it gives no (outage) status: never green."""
    if status in RESOLVED_INCIDENT_STATUSES:
        return None
    if maintenance:
        return None if started is not None and started > now else Status.MAINTENANCE
    return Status.DEGRADED


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _seconds(value: Any) -> datetime | None:
    stamp = _number(value)
    if stamp <= 0:
        return None
    try:
        return datetime.fromtimestamp(stamp, UTC)
    except (OverflowError, OSError, ValueError):
        return None
