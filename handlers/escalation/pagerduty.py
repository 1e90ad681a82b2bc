"""PagerDuty: the Events API v2 (``POST /v2/enqueue``), one service integration per policy.

A page is ``trigger`` with a ``dedup_key`` per provider incident, so a repeat (or a trigger
sent twice after a crash) lands on the same PagerDuty incident; recovery sends ``resolve``
with the same key. Shapes: developer.pagerduty.com/docs/events-api-v2/trigger-events and
/resolve-events; answers 202 on success, 400 for an invalid event, 429 when throttled.
"""

from __future__ import annotations

from typing import Any

import httpx

from bot.models import Event, Status
from bot.notifier import Delivery, Receipt, Target
from handlers.escalation.http import error_for, post

SEVERITY = {
    Status.MAJOR_OUTAGE: "critical",
    Status.PARTIAL_OUTAGE: "error",
    Status.DEGRADED: "warning",
    Status.MAINTENANCE: "info",
}
SUMMARY_LIMIT = 1024


class PagerDutyNotifier:
    kind = "pagerduty"

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def deliver(self, target: Target, delivery: Delivery) -> Receipt:
        event = delivery.event
        body = events_v2(event, target.options["routing_key"].get_secret_value())
        what = f"PagerDuty ({target.options['policy']})"
        response = await post(self.client, what, target.options["url"], json=body)
        if response.status_code != 202 and not response.is_success:
            raise error_for(what, response)
        return Receipt({"dedup_key": body["dedup_key"]})

    async def find_sent(self, target: Target, delivery: Delivery) -> Receipt | None:
        return None  # sending again is harmless: PagerDuty folds it by dedup_key

    async def close(self) -> None:
        await self.client.aclose()


def events_v2(event: Event, routing_key: str) -> dict[str, Any]:
    """The Events API v2 body for an ``escalation`` event."""
    escalation = event.escalation
    assert escalation is not None
    if escalation.action in ("resolve", "acknowledge"):  # acknowledged from the chat
        return {
            "routing_key": routing_key,
            "event_action": escalation.action,
            "dedup_key": escalation.dedup_key,
        }
    status = event.to or Status.UNKNOWN
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": escalation.dedup_key,
        "payload": {
            "summary": summary(event)[:SUMMARY_LIMIT],
            "source": "tocsin",
            "severity": SEVERITY.get(status, "error"),
            "timestamp": escalation.since.isoformat(),
            "component": event.component_name or event.component or event.provider,
            "group": event.provider,
            "class": status.value,
            "custom_details": details(event),
        },
        "client": "tocsin",
    }
    if event.incident is not None and event.incident.url:
        body["links"] = [{"href": event.incident.url, "text": event.incident.title[:200]}]
    return body


def summary(event: Event) -> str:
    """``Anthropic: major outage (confirmed) — Elevated errors on Claude API``."""
    name = event.provider_name or event.provider
    status = (event.to or Status.UNKNOWN).label.lower()
    state = "confirmed" if event.confirmed else "suspected"
    title = event.incident.title if event.incident else event.detail
    return f"{name}: {status} ({state})" + (f" — {title}" if title else "")


def details(event: Event) -> dict[str, Any]:
    """What the responder reads first; shared with Opsgenie's ``details``."""
    escalation = event.escalation
    assert escalation is not None
    found: dict[str, Any] = {
        "provider": event.provider_name or event.provider,
        "status": (event.to or Status.UNKNOWN).value,
        "since": escalation.since.isoformat(),
        "detection": "confirmed by the status page" if event.confirmed else "our probes",
        "policy": escalation.policy,
        "tocsin_event": event.id,
    }
    if event.component_name or event.component:
        found["component"] = event.component_name or event.component
    if event.incident is not None:
        found["incident"] = event.incident.title
        found["incident_status"] = event.incident.status
        if event.incident.update:
            found["latest_update"] = event.incident.update[:2000]
        if event.incident.url:
            found["incident_url"] = event.incident.url
    if escalation.action == "repeat":
        found["repeat"] = escalation.count
    return found
