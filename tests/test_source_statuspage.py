"""Atlassian Statuspage over real HTTP, on the real captured payloads, and every way a
response can be wrong (HTML, truncated, huge, silent, redirected to a login page)."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from bot.models import Observation, Status
from bot.sources.fetch import FetchLimits
from bot.sources.statuspage import StatuspageSource
from tests.fakes.status_server import FakeStatusServer, fixture_json

SUMMARY = "/api/v2/summary.json"
INCIDENTS = "/api/v2/incidents.json"
API = "k8w3r06qmzrp"  # Claude API (api.anthropic.com)
CONSOLE = "0qbwn08sd68x"  # Claude Console (platform.claude.com)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as made:
        yield made


def _source(
    server: FakeStatusServer, components: list[str] | None = None, **kw: Any
) -> StatuspageSource:
    return StatuspageSource("anthropic", server.url, components=components, **kw)


def _by_component(observations: list[Observation]) -> dict[str, Observation]:
    return {o.component: o for o in observations}


async def test_operational_summary_is_all_green(
    status_server: FakeStatusServer, client: httpx.AsyncClient
) -> None:
    status_server.set_fixture(SUMMARY, "statuspage_summary_anthropic_operational.json")
    observations = await _source(status_server).check(client)
    assert len(observations) == 6
    assert {o.status for o in observations} == {Status.OPERATIONAL}
    assert all(o.incident is None and o.detail is None for o in observations)
    names = {o.component: o.component_name for o in observations}
    assert names[API] == "Claude API (api.anthropic.com)"


async def test_minor_indicator_is_judged_by_watched_components(
    status_server: FakeStatusServer, client: httpx.AsyncClient
) -> None:
    """The page says `minor` and has a `major`-impact incident on the Console; the API we
    watch is fine, and the Console is degraded (its own status), not partial_outage."""
    status_server.set_fixture(SUMMARY, "statuspage_summary_anthropic_minor_monitoring.json")
    api_only = await _source(status_server, [API]).check(client)
    assert [(o.component, o.status, o.incident) for o in api_only] == [
        (API, Status.OPERATIONAL, None)
    ]
    both = _by_component(await _source(status_server, [API, CONSOLE]).check(client))
    console = both[CONSOLE]
    assert console.status is Status.DEGRADED
    assert console.incident is not None
    assert console.incident.id == "978mjkgw6mh7"
    assert console.incident.title == "Elevated errors on platform.claude.com"
    assert console.incident.status == "monitoring"
    assert console.incident.impact is Status.PARTIAL_OUTAGE
    assert console.incident.update_id == "1nnyzdbn2qkg"
    assert console.incident.update.startswith("We've mitigated the errors")
    assert console.incident.url == "https://stspg.io/sjkw7njwf0mt"


async def test_incident_impact_does_not_override_a_component_the_page_lists_green(
    status_server: FakeStatusServer, client: httpx.AsyncClient
) -> None:
    """The component's own status wins over the incident's impact; the incident stays attached."""
    payload = fixture_json("statuspage_summary_anthropic_minor_monitoring.json")
    for component in payload["components"]:
        component["status"] = "operational"
    payload["incidents"][0]["impact"] = "critical"
    status_server.set_json(SUMMARY, payload)
    [console] = await _source(status_server, [CONSOLE]).check(client)
    assert console.status is Status.OPERATIONAL
    assert console.incident is not None
    assert console.incident.impact is Status.MAJOR_OUTAGE


async def test_active_maintenance_is_maintenance_and_scheduled_is_not(
    status_server: FakeStatusServer, client: httpx.AsyncClient
) -> None:
    summary = fixture_json("statuspage_summary_anthropic_operational.json")
    maintenance = copy.deepcopy(
        fixture_json("statuspage_maintenances_anthropic.json")["scheduled_maintenances"][0]
    )
    maintenance["status"] = "scheduled"
    summary["scheduled_maintenances"] = [maintenance]
    status_server.set_json(SUMMARY, summary)
    source = _source(status_server, ["rwppv331jlwc"])
    [before] = await source.check(client)
    assert before.status is Status.OPERATIONAL
    maintenance["status"] = "in_progress"
    status_server.set_json(SUMMARY, summary)
    [during] = await source.check(client)
    assert during.status is Status.MAINTENANCE
    assert during.incident is not None
    assert during.incident.maintenance
    assert during.incident.title == "Upgrades to Connector Auth Storage"


async def test_outage_update_and_resolution_read_from_incidents_json(
    status_server: FakeStatusServer, client: httpx.AsyncClient
) -> None:
    """A page switched mid-test: outage → update → resolved (gone from the summary)."""
    source = _source(status_server, [CONSOLE])
    status_server.set_fixture(SUMMARY, "statuspage_summary_anthropic_operational.json")
    assert (await source.check(client))[0].status is Status.OPERATIONAL

    outage = fixture_json("statuspage_summary_anthropic_minor_monitoring.json")
    incident = outage["incidents"][0]
    history = incident["incident_updates"]
    incident["incident_updates"] = history[-1:]  # only "investigating" so far
    incident["status"] = "investigating"
    for component in outage["components"]:
        if component["id"] == CONSOLE:
            component["status"] = "partial_outage"
    status_server.set_json(SUMMARY, outage)
    [first] = await source.check(client)
    assert first.status is Status.PARTIAL_OUTAGE
    assert first.incident is not None
    assert (first.incident.status, first.incident.update_id) == ("investigating", "c56sq7q6flhm")

    incident["incident_updates"] = history[-3:]
    incident["status"] = "identified"
    status_server.set_json(SUMMARY, outage)
    [update] = await source.check(client)
    assert update.incident is not None
    assert (update.incident.status, update.incident.update_id) == ("identified", "l3390gw3zj8k")

    resolved = copy.deepcopy(incident)
    resolved["status"] = "resolved"
    resolved["incident_updates"].insert(
        0,
        {
            "id": "final1",
            "status": "resolved",
            "body": "This incident has been resolved.",
            "created_at": "2026-10-08T01:00:00Z",
        },
    )
    status_server.set_fixture(SUMMARY, "statuspage_summary_anthropic_operational.json")
    status_server.set_json(INCIDENTS, {"incidents": [resolved]})
    [after] = await source.check(client)
    assert after.status is Status.OPERATIONAL
    assert after.incident is not None
    assert after.incident.resolved
    assert after.incident.update == "This incident has been resolved."
    assert status_server.count(INCIDENTS) == 1
    [later] = await source.check(client)  # the resolution is reported once
    assert later.incident is None
    assert status_server.count(INCIDENTS) == 1


async def test_a_vanished_incident_missing_from_incidents_json_is_closed(
    status_server: FakeStatusServer, client: httpx.AsyncClient
) -> None:
    source = _source(status_server, [CONSOLE])
    status_server.set_fixture(SUMMARY, "statuspage_summary_anthropic_minor_monitoring.json")
    await source.check(client)
    status_server.set_fixture(SUMMARY, "statuspage_summary_anthropic_operational.json")
    status_server.set_html(INCIDENTS)  # even a broken incidents.json must not hide the end
    [after] = await source.check(client)
    assert after.status is Status.OPERATIONAL
    assert after.incident is not None
    assert after.incident.status == "resolved"
    assert "No longer listed" in after.incident.update


async def test_etag_makes_an_unchanged_page_a_304(
    status_server: FakeStatusServer, client: httpx.AsyncClient
) -> None:
    status_server.set_fixture(
        SUMMARY, "statuspage_summary_anthropic_minor_monitoring.json", etag=True
    )
    source = _source(status_server, [CONSOLE])
    first = await source.check(client)
    second = await source.check(client)
    assert [o.status for o in second] == [o.status for o in first] == [Status.DEGRADED]
    conditional = [r for r in status_server.requests if r.path == SUMMARY]
    assert "If-None-Match" not in conditional[0].headers
    assert conditional[1].headers.get("If-None-Match", "").startswith('"')


async def test_incidentio_compatibility_shim_without_incident_keys(
    status_server: FakeStatusServer, client: httpx.AsyncClient
) -> None:
    status_server.set_fixture(SUMMARY, "incidentio_compat_summary_openai_operational.json")
    source = StatuspageSource(
        "openai", status_server.url, components=["01JMXBRMFE4MAP2BHSJNZ787WX"]
    )
    [images] = await source.check(client)
    assert images.status is Status.OPERATIONAL
    assert images.component_name == "Images"


# ------------------------------------------------------------------ bad input


async def _unknown(server: FakeStatusServer, client: httpx.AsyncClient, **kw: Any) -> Observation:
    observations = await _source(server, [API], **kw).check(client)
    assert [o.status for o in observations] == [Status.UNKNOWN]
    assert observations[0].detail is not None
    return observations[0]


async def test_html_instead_of_json(
    status_server: FakeStatusServer, client: httpx.AsyncClient
) -> None:
    status_server.set_html(SUMMARY)
    obs = await _unknown(status_server, client)
    assert f"{status_server.url}{SUMMARY}" in (obs.detail or "")
    assert "HTML" in (obs.detail or "")


async def test_truncated_json(status_server: FakeStatusServer, client: httpx.AsyncClient) -> None:
    raw = b'{"components": [{"id": "k8w3r06qmzrp", "status": "operatio'
    status_server.set_bytes(SUMMARY, raw)
    obs = await _unknown(status_server, client)
    assert "invalid JSON" in (obs.detail or "")


async def test_missing_keys_and_wrong_shapes(
    status_server: FakeStatusServer, client: httpx.AsyncClient
) -> None:
    status_server.set_json(SUMMARY, {"page": {"id": "x"}, "status": {"indicator": "none"}})
    obs = await _unknown(status_server, client)
    assert "'components'" in (obs.detail or "")
    status_server.set_json(SUMMARY, {"components": "nope"})
    await _unknown(status_server, client)
    status_server.set_json(SUMMARY, [1, 2, 3])
    await _unknown(status_server, client)
    status_server.set_json(SUMMARY, {"components": [{"name": "no id"}]})
    await _unknown(status_server, client)
    status_server.set_json(SUMMARY, {"components": []})
    obs = await _unknown(status_server, client)
    assert "lists no components" in (obs.detail or "") or "not on the page" in (obs.detail or "")


async def test_a_watched_component_that_vanished_is_unknown_not_green(
    status_server: FakeStatusServer, client: httpx.AsyncClient
) -> None:
    status_server.set_fixture(SUMMARY, "statuspage_summary_anthropic_operational.json")
    [obs] = await _source(status_server, ["gone00000000"]).check(client)
    assert obs.status is Status.UNKNOWN
    assert "renamed or removed" in (obs.detail or "")


async def test_a_50_megabyte_body_is_cut_off(
    status_server: FakeStatusServer, client: httpx.AsyncClient
) -> None:
    status_server.set_huge(SUMMARY, declare=True)
    obs = await _unknown(status_server, client)
    assert "byte cap" in (obs.detail or "")
    status_server.set_huge(SUMMARY, declare=False)  # no Content-Length: cut while streaming
    obs = await _unknown(status_server, client)
    assert "exceeds" in (obs.detail or "")


async def test_a_server_that_never_answers(
    status_server: FakeStatusServer, client: httpx.AsyncClient
) -> None:
    status_server.set_hang(SUMMARY)
    obs = await _unknown(status_server, client, limits=FetchLimits(timeout=0.5))
    assert "0.5s" in (obs.detail or "")


async def test_a_redirect_to_a_login_page(
    status_server: FakeStatusServer, client: httpx.AsyncClient
) -> None:
    status_server.set_redirect(SUMMARY, "/login")
    obs = await _unknown(status_server, client)
    assert "redirected to" in (obs.detail or "")
    assert "/login" in (obs.detail or "")


async def test_http_errors_and_refused_connections(
    status_server: FakeStatusServer, client: httpx.AsyncClient
) -> None:
    status_server.set_status(SUMMARY, 503)
    obs = await _unknown(status_server, client)
    assert "HTTP 503" in (obs.detail or "")
    dead = StatuspageSource("anthropic", "http://127.0.0.1:9", components=[API])
    [refused] = await dead.check(client)
    assert refused.status is Status.UNKNOWN
    assert "127.0.0.1:9" in (refused.detail or "")


async def test_hostile_json_does_not_crash(
    status_server: FakeStatusServer, client: httpx.AsyncClient
) -> None:
    status_server.set_bytes(SUMMARY, b"[" * 100_000 + b"]" * 100_000)
    await _unknown(status_server, client)
    status_server.set_json(
        SUMMARY,
        {
            "components": [{"id": API, "name": {"x": 1}, "status": ["operational"]}],
            "incidents": {"a": 1},
        },
    )
    await _unknown(status_server, client)


# --------------------------------------- the page's word on a component wins (issue 11, item 4)


async def test_a_component_the_provider_marks_operational_stays_green_under_an_open_incident(
    status_server: FakeStatusServer, client: httpx.AsyncClient
) -> None:
    """The real monitoring fixture, with the Console back to operational in the component list,
    in the incident's components and in the latest update's affected_components: the `major`
    impact of the still-open incident does not make it a partial outage, and the incident is
    still attached so its story is told."""
    payload = fixture_json("statuspage_summary_anthropic_minor_monitoring.json")
    incident = payload["incidents"][0]
    for component in [*payload["components"], *incident["components"]]:
        if component["id"] == CONSOLE:
            component["status"] = "operational"
    latest = incident["incident_updates"][0]
    assert latest["id"] == "1nnyzdbn2qkg"  # the newest update: monitoring
    [affected] = latest["affected_components"]
    assert affected["code"] == CONSOLE
    affected["new_status"] = "operational"
    status_server.set_json(SUMMARY, payload)

    observations = _by_component(await _source(status_server, [CONSOLE, API]).check(client))

    console = observations[CONSOLE]
    assert console.status is Status.OPERATIONAL
    assert console.incident is not None
    assert (console.incident.id, console.incident.status) == ("978mjkgw6mh7", "monitoring")
    assert console.incident.impact is Status.PARTIAL_OUTAGE  # what the incident says of itself
    assert console.detail is None
    assert (observations[API].status, observations[API].incident) == (Status.OPERATIONAL, None)


@pytest.mark.parametrize(
    ("shortlink", "why"),
    [
        ("javascript:alert(1)", "scheme 'javascript' is not http(s)"),
        ('javascript:alert(1)//" onmouseover="x', "scheme 'javascript' is not http(s)"),
        ("data:text/html,<script>x</script>", "scheme 'data' is not http(s)"),
        ("https://stspg.io/x\nhttps://evil.example", "not an absolute http(s) URL"),
    ],
)
async def test_a_hostile_incident_link_is_dropped_with_a_diagnostic(
    status_server: FakeStatusServer, client: httpx.AsyncClient, shortlink: str, why: str
) -> None:
    """The incident still counts and is attached; only its link goes, and the component's
    detail (what `tocsin check`, `tocsin status` and the dashboard show) says why."""
    payload = fixture_json("statuspage_summary_anthropic_minor_monitoring.json")
    payload["incidents"][0]["shortlink"] = shortlink
    status_server.set_json(SUMMARY, payload)
    both = _by_component(await _source(status_server, [API, CONSOLE]).check(client))
    console = both[CONSOLE]
    assert console.status is Status.DEGRADED
    assert console.incident is not None
    assert console.incident.id == "978mjkgw6mh7"
    assert console.incident.url is None
    assert console.detail == f"incident '978mjkgw6mh7': link dropped ({why})"
    assert both[API].detail is None  # the API carries no incident: nothing to say there


@pytest.mark.parametrize("shortlink", [123, ["https://a.example"], {"href": "x"}, True])
async def test_a_link_that_is_not_a_string_costs_the_link_not_the_page(
    status_server: FakeStatusServer, client: httpx.AsyncClient, shortlink: object
) -> None:
    payload = fixture_json("statuspage_summary_anthropic_minor_monitoring.json")
    payload["incidents"][0]["shortlink"] = shortlink
    status_server.set_json(SUMMARY, payload)
    console = _by_component(await _source(status_server, [API, CONSOLE]).check(client))[CONSOLE]
    assert console.status is Status.DEGRADED
    assert console.incident is not None
    assert console.incident.url == f"{status_server.url}/incidents/978mjkgw6mh7"


async def test_an_open_incident_speaks_for_a_component_the_list_lacks(
    status_server: FakeStatusServer, client: httpx.AsyncClient
) -> None:
    """A component with no status of its own on the page (gone from the list) but named by an
    open incident gets the incident's impact, not `unknown`; once nothing speaks for it, it is
    `unknown` with a diagnostic again."""
    payload = fixture_json("statuspage_summary_anthropic_minor_monitoring.json")
    payload["components"] = [c for c in payload["components"] if c["id"] != CONSOLE]
    status_server.set_json(SUMMARY, payload)
    source = _source(status_server, [CONSOLE])

    [console] = await source.check(client)
    assert console.status is Status.PARTIAL_OUTAGE  # impact `major`
    assert console.incident is not None
    assert console.incident.id == "978mjkgw6mh7"
    assert console.detail is None

    payload["incidents"] = []
    status_server.set_json(SUMMARY, payload)
    status_server.set_json(INCIDENTS, {"incidents": []})
    [gone] = await source.check(client)
    assert gone.status is Status.UNKNOWN
    assert "not on the page any more" in (gone.detail or "")
