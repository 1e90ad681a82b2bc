"""Google Cloud's public incident feed (``<url>/incidents.json``, status.cloud.google.com).

The feed lists incidents, not product states, so the reading is ``incidents_only``: a watched
product (the config's ``components`` hold product ids, e.g. ``Z0FZJAMvEB4j3NbCJs6B`` for the
Vertex Gemini API) is operational unless an open incident names it in ``affected_products``.
Without ``components``, every product the feed names is watched. Names come from
``affected_products[].title`` (display only: ids are the stable key).

An incident is open while it has no ``end`` (or one in the future). What it does to the products
it names, from ``status_impact`` (the dashboard's own icon):

- ``SERVICE_INFORMATION`` → degraded (Google files real error-rate incidents this way),
- ``SERVICE_DISRUPTION`` → partial_outage,
- ``SERVICE_OUTAGE`` → major_outage;

when ``status_impact`` is missing or new, ``severity`` decides (low → degraded, medium →
partial_outage, high → major_outage), and failing both an open incident is still degraded.

The feed has no lifecycle words: an open incident is ``ongoing``, a closed one ``resolved``.
Closed incidents stay in the feed, so one we saw open is reported once more, resolved, when it
gains its ``end`` (and called resolved, no longer listed, if it vanishes).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import httpx

from bot.models import Incident, IncidentUpdate, Status, utcnow
from bot.sources.fetch import SourceError
from bot.sources.parsing import fetch_json, newest_first, parse_time
from bot.sources.reading import ComponentReading, IncidentReading, PageReading
from bot.sources.source import PageSource

_STATUS_IMPACT = {
    "SERVICE_INFORMATION": Status.DEGRADED,
    "SERVICE_DISRUPTION": Status.PARTIAL_OUTAGE,
    "SERVICE_OUTAGE": Status.MAJOR_OUTAGE,
}
_SEVERITY = {
    "low": Status.DEGRADED,
    "medium": Status.PARTIAL_OUTAGE,
    "high": Status.MAJOR_OUTAGE,
}


class GcloudSource(PageSource):
    kind_name = "gcloud"
    #: incidents.json is Google Cloud's whole incident history: megabytes, and growing.
    body_floor = 64 * 1024 * 1024

    @property
    def feed_url(self) -> str:
        return f"{self.url}/incidents.json"

    async def read(self, client: httpx.AsyncClient) -> PageReading:
        payload = await fetch_json(client, self.feed_url, self.limits)
        reading = parse_feed(payload, self.feed_url, page_url=self.url)
        reading.incidents = self.memory.settle(reading.incidents)
        return reading


def parse_feed(
    payload: Any, where: str, *, page_url: str = "", now: datetime | None = None
) -> PageReading:
    """Every incident in the feed: open ones with their impact, closed ones resolved."""
    if not isinstance(payload, list):
        found = type(payload).__name__
        raise SourceError(f"{where}: expected a JSON array of incidents, got a {found}")
    moment = now or utcnow()
    reading = PageReading(incidents_only=True)
    for raw in payload:
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str) or not raw["id"]:
            raise SourceError(f"{where}: an incident without an id")
        products = _products(raw)
        for product_id, title in products.items():
            reading.components[product_id] = ComponentReading(
                product_id, title, Status.OPERATIONAL, stated=False
            )
        is_open = _is_open(raw, moment)
        incident = parse_incident(raw, page_url, is_open=is_open)
        effect = _impact(raw) if is_open else None
        reading.incidents.append(IncidentReading(incident, frozenset(products), effect))
    return reading


def parse_incident(raw: dict[str, Any], page_url: str, *, is_open: bool) -> Incident:
    latest = _latest_update(raw)
    uri = raw.get("uri")
    link = f"{page_url}/{uri.lstrip('/')}" if isinstance(uri, str) and uri else None
    return Incident(
        id=raw["id"],
        title=_title(raw),
        url=link or (f"{page_url}/incidents/{raw['id']}" if page_url else None),
        status="ongoing" if is_open else "resolved",
        impact=_impact(raw),
        update=latest.body if latest else "",
        update_id=latest.id if latest else None,
        updated_at=parse_time(raw.get("modified")) or (latest.at if latest else None),
        started_at=parse_time(raw.get("begin")) or parse_time(raw.get("created")),
    )


def _is_open(raw: dict[str, Any], now: datetime) -> bool:
    """Open until ``end`` says otherwise (an ``end`` we cannot read does not close it)."""
    end = parse_time(raw.get("end"))
    return end is None or end > now


def _impact(raw: dict[str, Any]) -> Status:
    impact = _STATUS_IMPACT.get(str(raw.get("status_impact") or "").strip().upper())
    severity = _SEVERITY.get(str(raw.get("severity") or "").strip().lower())
    return impact or severity or Status.DEGRADED


def _products(raw: dict[str, Any]) -> dict[str, str]:
    """Product id → title; the deprecated ``service_key`` when ``affected_products`` is absent."""
    listed = raw.get("affected_products")
    if not isinstance(listed, list):
        key = raw.get("service_key")
        return {key: str(raw.get("service_name") or key)} if isinstance(key, str) and key else {}
    return {
        p["id"]: str(p.get("title") or p.get("current_title") or p["id"])
        for p in listed
        if isinstance(p, dict) and isinstance(p.get("id"), str) and p["id"]
    }


def _title(raw: dict[str, Any]) -> str:
    text = str(raw.get("external_desc") or "").strip()
    first = text.splitlines()[0].strip() if text else ""
    return first or str(raw.get("service_name") or "Google Cloud incident")


def _latest_update(raw: dict[str, Any]) -> IncidentUpdate | None:
    """The newest update: ``updates`` (newest first, but sorted anyway), else
    ``most_recent_update``."""
    updates = [_update(u) for u in raw.get("updates") or [] if isinstance(u, dict)]
    recent = raw.get("most_recent_update")
    if not updates and isinstance(recent, dict):
        updates = [_update(recent)]
    return newest_first(updates)[0] if updates else None


def _update(raw: dict[str, Any]) -> IncidentUpdate:
    """Updates have no id: their timestamp (or, lacking one, their text) identifies them."""
    stamp = raw.get("modified") or raw.get("when") or raw.get("created")
    body = str(raw.get("text") or "").strip()
    digest = hashlib.sha256(body.encode()).hexdigest()[:16]
    return IncidentUpdate(
        id=str(stamp) if stamp else f"text:{digest}",
        status=str(raw.get("status") or ""),
        body=body,
        at=parse_time(raw.get("when")) or parse_time(raw.get("created")),
    )
