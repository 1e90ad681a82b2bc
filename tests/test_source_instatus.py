"""The Instatus source against Perplexity's real summary.json, over real HTTP.

Incident and maintenance entries follow Instatus's documented example
(instatus.com/help/api/public-data), including its JavaScript-style dates.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from bot.models import Observation, Status
from bot.sources.instatus import InstatusSource
from bot.sources.reading import PAGE_COMPONENT
from tests.fakes.status_server import FakeStatusServer, fixture_bytes, fixture_json

FIXTURE = "instatus_summary_perplexity_up.json"
INCIDENT_URL = "https://status.perplexity.com/incident/cl4a8n3070721qtmzvts760c4"


async def check(source: InstatusSource) -> list[Observation]:
    async with httpx.AsyncClient() as client:
        return await source.check(client)


def summary(
    status: str, incidents: list[Any] | None = None, maintenances: list[Any] | None = None
) -> Any:
    payload = copy.deepcopy(fixture_json(FIXTURE))
    payload["page"]["status"] = status
    payload["activeIncidents"] = incidents or []
    payload["activeMaintenances"] = maintenances or []
    return payload


def incident(status: str, impact: str) -> dict[str, Any]:
    return {
        "name": "We're facing an issue with our API",
        "started": "Sat Jun 11 2022 18:55:50 GMT+0000 (Coordinated Universal Time)",
        "status": status,
        "impact": impact,
        "url": INCIDENT_URL,
    }


# ------------------------------------------------------------------------- real payload


async def test_perplexity_summary_up(status_server: FakeStatusServer) -> None:
    status_server.set_fixture("/summary.json", FIXTURE)

    [page] = await check(InstatusSource("perplexity", status_server.url))

    assert status_server.count("/summary.json") == 1
    assert page.component == PAGE_COMPONENT
    assert page.component_name == "Perplexity"
    assert page.status is Status.OPERATIONAL
    assert page.incident is None


async def test_has_issues_without_incidents_is_degraded(status_server: FakeStatusServer) -> None:
    status_server.set_json("/summary.json", summary("HASISSUES"))

    [page] = await check(InstatusSource("perplexity", status_server.url))

    assert page.status is Status.DEGRADED


# --------------------------------------------------------------- outage, update, recovery


async def test_incident_from_outage_through_update_to_recovery(
    status_server: FakeStatusServer,
) -> None:
    source = InstatusSource("perplexity", status_server.url)

    opened = summary("HASISSUES", [incident("INVESTIGATING", "MAJOROUTAGE")])
    status_server.set_json("/summary.json", opened)
    [outage] = await check(source)
    assert outage.status is Status.MAJOR_OUTAGE
    assert outage.incident is not None
    assert outage.incident.id == INCIDENT_URL  # the summary gives no id: the link is stable
    assert outage.incident.title == "We're facing an issue with our API"
    assert outage.incident.url == INCIDENT_URL
    assert outage.incident.status == "investigating"
    assert outage.incident.impact is Status.MAJOR_OUTAGE
    assert outage.incident.started_at == datetime(2022, 6, 11, 18, 55, 50, tzinfo=UTC)

    identified = summary("HASISSUES", [incident("IDENTIFIED", "PARTIALOUTAGE")])
    status_server.set_json("/summary.json", identified)
    [update] = await check(source)
    assert update.status is Status.PARTIAL_OUTAGE
    assert update.incident is not None
    assert update.incident.status == "identified"
    assert update.incident.update_id != outage.incident.update_id

    status_server.set_json("/summary.json", summary("UP"))  # resolved incidents leave the list
    [recovery] = await check(source)
    assert recovery.status is Status.OPERATIONAL
    assert recovery.incident is not None
    assert recovery.incident.id == INCIDENT_URL
    assert recovery.incident.status == "resolved"
    assert recovery.incident.update == "No longer listed on the status page."

    [later] = await check(source)
    assert later.status is Status.OPERATIONAL
    assert later.incident is None  # told once


async def test_open_incident_on_an_up_page_is_told_but_the_page_status_wins(
    status_server: FakeStatusServer,
) -> None:
    status_server.set_json("/summary.json", summary("UP", [incident("MONITORING", "MINOROUTAGE")]))

    [page] = await check(InstatusSource("perplexity", status_server.url))

    # The page says UP: the provider's word wins over the incident's impact (it is monitoring a
    # fix); the incident is still attached.
    assert page.status is Status.OPERATIONAL
    assert page.incident is not None
    assert page.incident.status == "monitoring"


async def test_maintenance(status_server: FakeStatusServer) -> None:
    work = {
        "name": "Database maintenance",
        "start": "Sat Jun 11 2022 18:55:54 GMT+0000 (Coordinated Universal Time)",
        "status": "INPROGRESS",
        "duration": "60",
        "url": "https://status.perplexity.com/maintenance/cl4a8nlv50918qtmzdlw60ivu",
    }
    source = InstatusSource("perplexity", status_server.url)

    status_server.set_json("/summary.json", summary("UNDERMAINTENANCE", maintenances=[work]))
    [page] = await check(source)
    assert page.status is Status.MAINTENANCE
    assert page.incident is not None
    assert page.incident.maintenance
    assert page.incident.status == "in_progress"

    later = {**work, "status": "NOTSTARTEDYET"}
    status_server.set_json("/summary.json", summary("UP", maintenances=[later]))
    [page] = await check(InstatusSource("perplexity", status_server.url))
    assert page.status is Status.OPERATIONAL
    assert page.incident is not None
    assert page.incident.status == "scheduled"


# ---------------------------------------------------------------------- what must be unknown


async def test_html_page_is_unknown(status_server: FakeStatusServer) -> None:
    status_server.set_html("/summary.json")
    [page] = await check(InstatusSource("perplexity", status_server.url))

    assert page.status is Status.UNKNOWN
    assert page.detail is not None
    assert f"{status_server.url}/summary.json" in page.detail
    assert "HTML page instead of JSON" in page.detail


async def test_truncated_summary_is_unknown(status_server: FakeStatusServer) -> None:
    body = fixture_bytes(FIXTURE)
    status_server.set_bytes("/summary.json", body[: len(body) // 2])
    [page] = await check(InstatusSource("perplexity", status_server.url))

    assert page.status is Status.UNKNOWN
    assert page.detail is not None
    assert f"{status_server.url}/summary.json" in page.detail
    assert "invalid JSON" in page.detail


@pytest.mark.parametrize(
    ("payload", "complaint"),
    [
        ({"page": {"name": "Perplexity"}}, "expected key 'status' (str), found missing"),
        ({"name": "Perplexity", "status": "UP"}, "expected key 'page' (dict), found missing"),
        ({"page": {"status": "ALLGOOD"}}, "unrecognized page.status 'ALLGOOD'"),
        ({"page": {"status": "UP"}, "activeIncidents": {}}, "'activeIncidents' is a dict"),
    ],
    ids=["no-status", "no-page", "new-status-word", "incidents-not-a-list"],
)
async def test_summary_missing_what_we_need_is_unknown(
    status_server: FakeStatusServer, payload: Any, complaint: str
) -> None:
    status_server.set_json("/summary.json", payload)

    [page] = await check(InstatusSource("perplexity", status_server.url))

    assert page.status is Status.UNKNOWN
    assert page.detail is not None
    assert f"{status_server.url}/summary.json" in page.detail
    assert complaint in page.detail
