"""Opsgenie: the Alert API v2. A page creates an alert with an ``alias`` per provider
incident (Opsgenie folds a repeat into the open alert and counts it); recovery closes it by
that alias. US and EU accounts live on different hosts (``region``).

Shapes: docs.opsgenie.com/docs/alert-api (create: ``POST /v2/alerts``; close:
``POST /v2/alerts/{alias}/close?identifierType=alias``; ``Authorization: GenieKey <key>``;
answers 202 "Request will be processed"; 422 for an invalid request; 429 when throttled).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from bot.models import Event, Status
from bot.notifier import Delivery, Receipt, Target
from handlers.escalation.http import error_for, post
from handlers.escalation.pagerduty import details, summary

HOSTS = {"us": "https://api.opsgenie.com", "eu": "https://api.eu.opsgenie.com"}
PRIORITY = {Status.MAJOR_OUTAGE: "P1", Status.PARTIAL_OUTAGE: "P2", Status.DEGRADED: "P3"}
MESSAGE_LIMIT = 130
DESCRIPTION_LIMIT = 15000
#: Opsgenie caps all details together at 8000 characters; no single one may crowd out the rest.
DETAIL_LIMIT = 1000


class OpsgenieNotifier:
    kind = "opsgenie"

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def deliver(self, target: Target, delivery: Delivery) -> Receipt:
        event = delivery.event
        escalation = event.escalation
        assert escalation is not None
        base = target.options["url"].rstrip("/")
        key = target.options["api_key"].get_secret_value()
        what = f"Opsgenie ({target.options['policy']})"
        if escalation.action == "resolve":
            url = f"{base}/v2/alerts/{quote(escalation.dedup_key, safe='')}/close"
            params = {"identifierType": "alias"}
            body: dict[str, Any] = {"source": "tocsin", "note": close_note(event)}
        elif escalation.action == "acknowledge":  # acknowledged from the chat
            url = f"{base}/v2/alerts/{quote(escalation.dedup_key, safe='')}/acknowledge"
            params = {"identifierType": "alias"}
            body = {"source": "tocsin", "note": "Acknowledged from the chat (tocsin)."}
        else:
            url, params, body = f"{base}/v2/alerts", {}, create_alert(event)
        response = await post(
            self.client,
            what,
            url,
            params=params,
            json=body,
            headers={"Authorization": f"GenieKey {key}"},
        )
        if not response.is_success:
            raise error_for(what, response)
        return Receipt({"alias": escalation.dedup_key})

    async def find_sent(self, target: Target, delivery: Delivery) -> Receipt | None:
        return None  # sending again is harmless: Opsgenie folds it by alias

    async def close(self) -> None:
        await self.client.aclose()


def create_alert(event: Event) -> dict[str, Any]:
    escalation = event.escalation
    assert escalation is not None
    status = event.to or Status.UNKNOWN
    message = summary(event)
    if len(message) > MESSAGE_LIMIT:
        message = message[: MESSAGE_LIMIT - 1] + "…"
    lines = [summary(event)]
    if event.incident is not None and event.incident.update:
        lines.append(event.incident.update)
    if event.incident is not None and event.incident.url:
        lines.append(event.incident.url)
    return {
        "message": message,
        "alias": escalation.dedup_key,
        "description": "\n\n".join(lines)[:DESCRIPTION_LIMIT],
        "details": {k: str(v)[:DETAIL_LIMIT] for k, v in details(event).items()},
        "entity": event.provider,
        "source": "tocsin",
        "priority": PRIORITY.get(status, "P3"),
        "tags": ["tocsin", event.provider[:50], status.value],
    }


def close_note(event: Event) -> str:
    name = event.provider_name or event.provider
    return f"{name} is operational again (tocsin)."
