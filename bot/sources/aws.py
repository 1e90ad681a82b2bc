"""AWS Health's public event feed (``<url>/public/currentevents``, health.aws.amazon.com).

The live endpoint answers UTF-16 with a byte-order mark; copies and proxies may be UTF-8: both
are read. The feed is a JSON array of events (usually empty: all is well), so the reading is
``incidents_only``. Each event names the services it impacts in ``impacted_services``, keyed
like ``bedrock-me-central-1`` (service, then region), each with a ``current`` code.

Codes, the dashboard's own (event ``status`` and per-service ``current``), mapped so the three
AWS levels stay three distinct severities:

- ``0`` resolved → operational,
- ``1`` informational → degraded (AWS posts these for real error rates and latencies),
- ``2`` degraded → partial_outage,
- ``3`` disrupted → major_outage.

An event is open unless its ``status`` is ``0`` or its ``end_time`` has passed. A service's
status is its ``current`` code in open events (worst wins; an unreadable code falls back to the
event's, then to degraded: an impacted service is never green by default); services of closed
events are operational. The feed has no lifecycle words: an open event is ``ongoing``, a closed
one ``resolved``; one we saw open is reported once more, resolved, when it closes or vanishes.

What to watch: ``components`` lists exact service keys (one region each). ``options["services"]``
lists service prefixes, e.g. ``["bedrock"]``: each becomes one component (named by the prefix)
that aggregates that service in every region (``bedrock-<region>``, worst wins), so a team that
uses a service anywhere hears about it wherever it breaks. With neither, every service key the
feed names is watched.
"""

from __future__ import annotations

import codecs
import dataclasses
import re
from datetime import UTC, datetime
from typing import Any

import httpx

from bot.models import Incident, IncidentUpdate, Status, utcnow, worst
from bot.sources.fetch import Fetched, SourceError, fetch
from bot.sources.parsing import decode_json
from bot.sources.reading import ComponentReading, IncidentReading, PageReading
from bot.sources.source import PageSource

_CODES = {
    0: Status.OPERATIONAL,
    1: Status.DEGRADED,
    2: Status.PARTIAL_OUTAGE,
    3: Status.MAJOR_OUTAGE,
}
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
#: A region suffix: us-east-1, me-central-1, us-gov-west-1, cn-northwest-1...
_REGION = r"[a-z]{2}(?:-[a-z]+)+-\d+"


class AwsSource(PageSource):
    kind_name = "aws"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.prefixes = _prefixes(self.options.get("services"))
        if self.prefixes:
            exact = [c for c in self.watched or [] if c not in self.prefixes]
            self.watched = exact + self.prefixes

    @property
    def feed_url(self) -> str:
        return f"{self.url}/public/currentevents"

    async def read(self, client: httpx.AsyncClient) -> PageReading:
        payload = decode_feed(await fetch(client, self.feed_url, self.limits))
        reading = parse_events(payload, self.feed_url, page_url=self.url)
        for prefix in self.prefixes:
            _aggregate(reading, prefix)
        reading.incidents = self.memory.settle(reading.incidents)
        return reading


def decode_feed(fetched: Fetched) -> Any:
    """JSON from UTF-16 (with its BOM, as the live endpoint sends it) or UTF-8."""
    if not fetched.body.startswith(_UTF16_BOMS):
        return decode_json(fetched)
    try:
        text = fetched.body.decode("utf-16")
    except UnicodeDecodeError:
        raise SourceError(
            f"{fetched.where}: body has a UTF-16 mark but is not UTF-16 text"
        ) from None
    return decode_json(dataclasses.replace(fetched, body=text.encode("utf-8")))


def parse_events(
    payload: Any, where: str, *, page_url: str = "", now: datetime | None = None
) -> PageReading:
    """Every event in the feed: open ones ``ongoing``, closed ones ``resolved``."""
    if not isinstance(payload, list):
        found = type(payload).__name__
        raise SourceError(f"{where}: expected a JSON array of events, got a {found}")
    moment = now or utcnow()
    reading = PageReading(incidents_only=True)
    for raw in payload:
        if not isinstance(raw, dict):
            raise SourceError(f"{where}: an event that is a {type(raw).__name__}, not an object")
        code = _code(raw.get("status"))
        if code is None:
            raise SourceError(f"{where}: an event without a readable 'status' code")
        is_open = code != 0 and not _past(raw.get("end_time"), moment)
        services = _services(raw, code if is_open else 0)
        for key, (name, status) in services.items():
            _merge(reading, ComponentReading(key, name, status))
        incident = parse_event(raw, where, page_url, code=code, is_open=is_open)
        reading.incidents.append(IncidentReading(incident, frozenset(services), None))
    return reading


def parse_event(
    raw: dict[str, Any], where: str, page_url: str, *, code: int, is_open: bool
) -> Incident:
    event_id = _event_id(raw, where)
    latest = _latest(raw, event_id)
    summary = str(raw.get("summary") or raw.get("service_name") or "AWS event").strip()
    region = str(raw.get("region_name") or "").strip()
    return Incident(
        id=event_id,
        title=f"{summary} ({region})" if region else summary,
        url=f"{page_url}/health/status" if page_url else None,
        status="ongoing" if is_open else "resolved",
        impact=_CODES.get(code, Status.DEGRADED) if code else None,
        update=latest.body if latest else "",
        update_id=latest.id if latest else None,
        updated_at=latest.at if latest else None,
        started_at=_epoch(raw.get("date")),
    )


def _event_id(raw: dict[str, Any], where: str) -> str:
    """The ARN, stable across updates; the service and start time when it is missing."""
    arn = raw.get("arn")
    if isinstance(arn, str) and arn:
        return arn
    service, date = raw.get("service"), raw.get("date")
    if isinstance(service, str) and service and date is not None:
        return f"{service}:{date}"
    raise SourceError(f"{where}: an event without an 'arn'")


def _services(raw: dict[str, Any], event_code: int) -> dict[str, tuple[str, Status]]:
    """Service key → (name, status) for what the event impacts."""
    impacted = raw.get("impacted_services")
    if not isinstance(impacted, dict):
        service = raw.get("service")
        impacted = (
            {service: {"service_name": raw.get("service_name")}}
            if isinstance(service, str) and service
            else {}
        )
    found = {}
    for key, detail in impacted.items():
        info = detail if isinstance(detail, dict) else {}
        code = _code(info.get("current")) if event_code else 0
        if code is None or code not in _CODES:
            code = event_code if event_code in _CODES else 1
        found[str(key).lower()] = (str(info.get("service_name") or key), _CODES[code])
    return found


def _merge(reading: PageReading, component: ComponentReading) -> None:
    known = reading.components.get(component.id)
    if known is not None:
        status = worst([known.status, component.status])
        component = ComponentReading(component.id, known.name, status)
    reading.components[component.id] = component


def _aggregate(reading: PageReading, prefix: str) -> None:
    """One component for ``prefix`` in every region: the worst of its keys, and their events."""
    pattern = re.compile(rf"{re.escape(prefix)}-{_REGION}")
    keys = [k for k in reading.components if pattern.fullmatch(k)]
    if keys:
        name = reading.components[keys[0]].name
        status = worst(reading.components[k].status for k in keys)
        reading.components[prefix] = ComponentReading(prefix, name, status)

    def widen(r: IncidentReading) -> IncidentReading:
        if not any(pattern.fullmatch(k) for k in r.components):
            return r
        return dataclasses.replace(r, components=r.components | {prefix})

    reading.incidents = [widen(r) for r in reading.incidents]


def _latest(raw: dict[str, Any], event_id: str) -> IncidentUpdate | None:
    log = [e for e in raw.get("event_log") or [] if isinstance(e, dict)]
    if not log:
        return None
    entry = max(log, key=lambda e: _number(e.get("timestamp")) or 0.0)
    stamp = _number(entry.get("timestamp"))
    return IncidentUpdate(
        id=f"{event_id}@{stamp:.0f}" if stamp is not None else f"{event_id}@{len(log)}",
        status=str(entry.get("status") or ""),
        body=str(entry.get("message") or entry.get("summary") or "").strip(),
        at=_epoch(stamp),
    )


def _prefixes(value: object) -> list[str]:
    """``options["services"]``: a list of prefixes (a single string is one prefix)."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ValueError('options["services"] must be a list of service prefixes')
    return [str(p).strip().lower() for p in items if str(p).strip()]


def _code(value: object) -> int | None:
    number = _number(value)
    return int(number) if number is not None and number.is_integer() else None


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _epoch(value: object) -> datetime | None:
    number = _number(value)
    if number is None:
        return None
    try:
        return datetime.fromtimestamp(number, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _past(value: object, now: datetime) -> bool:
    end = _epoch(value)
    return end is not None and end <= now
