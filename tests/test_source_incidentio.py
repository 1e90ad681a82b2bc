"""incident.io source, through real HTTP against the fake status server and real payloads."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import httpx
import pytest

from bot.models import Observation, Status, utcnow
from bot.sources import page_source_class
from bot.sources.incidentio import IncidentioSource
from bot.sources.reading import PAGE_COMPONENT
from tests.fakes.status_server import FakeStatusServer, fixture_json

OPENAI = "incidentio_proxy_openai_operational.json"
GROQ = "incidentio_proxy_groq_maintenance.json"
PERPLEXITY = "incidentio_proxy_perplexity_operational.json"

GROQ_PATH = "/proxy/groqstatus.com"
GROQ_HISTORY = "/proxy/groqstatus.com/incidents"
GROQ_API = "01K053E2FAKWKEYHXEV7WAHJBM"  # "API"
MAVERICK = "01K6Y7AE9BSWJ2SGHJT92HG53X"  # the component under planned maintenance
GPT_OSS_120B = "01K6Y7AE9BBBKD92266DJ23AGX"  # "openai/gpt-oss-120b"
MAINTENANCE_ID = "01K8BQGTR04CGHB0Y254CSPX90"
MAINTENANCE_TITLE = (
    "Planned Maintenance: meta-llama/llama-4-maverick-17b-128e-instruct (me-central-1)"
)
PERPLEXITY_API = "01M2R6E5FPASTEW3A3V8TSYHJ0"
PERPLEXITY_WEBSITE = "01KZSFD424KQ6VQYV4R0KCA30P"


async def check(source: IncidentioSource) -> dict[str, Observation]:
    async with httpx.AsyncClient() as client:
        return {o.component: o for o in await source.check(client)}


def groq_source(server: FakeStatusServer, components: list[str] | None = None) -> IncidentioSource:
    return IncidentioSource(
        "groq",
        server.url,
        components=components or [GROQ_API, MAVERICK],
        options={"host": "groqstatus.com"},
    )


def iso(delta: timedelta) -> str:
    return (utcnow() + delta).isoformat().replace("+00:00", "Z")


def groq() -> dict[str, Any]:
    payload: dict[str, Any] = fixture_json(GROQ)
    return payload


def maintenance(payload: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = payload["summary"]["scheduled_maintenances"][0]
    return entry


def update(update_id: str, to_status: str, text: str, at: str) -> dict[str, Any]:
    return {
        "id": update_id,
        "published_at": at,
        "message_string": text,
        "to_status": to_status,
        "component_statuses": [],
        "automated_update": False,
    }


def incident_from_fixture(
    status: str, impact: str, updates: list[dict[str, Any]]
) -> dict[str, Any]:
    """An ongoing incident in the proxy's shape, built from the real maintenance entry."""
    entry = copy.deepcopy(maintenance(groq()))
    entry.update(
        id="01KAINCIDENT0000000000000",
        name="Elevated error rates on the API",
        type="incident",
        status=status,
        updates=updates,
        published_at="2026-03-01T10:00:00Z",
        affected_components=[
            {"component_id": GROQ_API, "status": impact, "current_status": impact}
        ],
        component_impacts=[
            {
                "start_at": "2026-03-01T10:00:00Z",
                "end_at": None,
                "id": "01KAIMPACT",
                "component_id": GROQ_API,
                "status_page_incident_id": "01KAINCIDENT0000000000000",
                "status": impact,
            }
        ],
        status_summaries=[],
    )
    return entry


def with_incident(incident: dict[str, Any] | None, affected: str | None) -> dict[str, Any]:
    payload = groq()
    summary = payload["summary"]
    summary["scheduled_maintenances"] = []
    summary["ongoing_incidents"] = [incident] if incident else []
    summary["affected_components"] = (
        [{"component_id": GROQ_API, "status": affected}] if affected else []
    )
    return payload


# ------------------------------------------------------------------- real payloads


async def test_openai_fixture_reads_all_37_components_operational(
    status_server: FakeStatusServer,
) -> None:
    status_server.set_fixture("/proxy/status.openai.com", OPENAI)
    source = IncidentioSource("openai", status_server.url, options={"host": "status.openai.com"})
    observations = await check(source)
    components = fixture_json(OPENAI)["summary"]["components"]
    assert list(observations) == [c["id"] for c in components]
    assert {o.status for o in observations.values()} == {Status.OPERATIONAL}
    assert all(o.incident is None and o.detail is None for o in observations.values())
    assert observations["01JMXBRMFE6N2NNT7DG6XZQ6PW"].component_name == "Chat Completions"
    assert observations["01KMKFAMWKNQ84Z1766MV08ZDE"].component_name == "CLI"


async def test_perplexity_fixture_watched_components(status_server: FakeStatusServer) -> None:
    status_server.set_fixture("/proxy/status.perplexity.com", PERPLEXITY)
    source = IncidentioSource(
        "perplexity",
        status_server.url,
        components=[PERPLEXITY_API, PERPLEXITY_WEBSITE],
        options={"host": "status.perplexity.com"},
    )
    observations = await check(source)
    assert [(o.component, o.component_name, o.status) for o in observations.values()] == [
        (PERPLEXITY_API, "API", Status.OPERATIONAL),
        (PERPLEXITY_WEBSITE, "Website", Status.OPERATIONAL),
    ]
    assert source.id == "perplexity:incidentio"


async def test_host_defaults_to_the_page_host(status_server: FakeStatusServer) -> None:
    status_server.set_fixture("/proxy/127.0.0.1", PERPLEXITY)
    source = IncidentioSource("perplexity", status_server.url, components=[PERPLEXITY_API])
    observations = await check(source)
    assert observations[PERPLEXITY_API].status is Status.OPERATIONAL
    assert status_server.count("/proxy/127.0.0.1") == 1


async def test_groq_fixture_past_scheduled_window_is_not_maintenance(
    status_server: FakeStatusServer,
) -> None:
    # The real maintenance says maintenance_scheduled for 2025-11-03 00:00-03:00: long over.
    status_server.set_fixture(GROQ_PATH, GROQ)
    observations = await check(groq_source(status_server))
    assert observations[GROQ_API].status is Status.OPERATIONAL
    assert observations[MAVERICK].status is Status.OPERATIONAL
    assert observations[MAVERICK].incident is None
    assert observations[MAVERICK].component_name == "meta-llama/llama-4-maverick-17b-128e-instruct"


async def test_maintenance_scheduled_in_the_future_is_not_maintenance_yet(
    status_server: FakeStatusServer,
) -> None:
    payload = groq()
    window = maintenance(payload)["component_impacts"][0]
    window["start_at"], window["end_at"] = iso(timedelta(days=1)), iso(timedelta(days=1, hours=3))
    status_server.set_json(GROQ_PATH, payload)
    observations = await check(groq_source(status_server))
    assert observations[MAVERICK].status is Status.OPERATIONAL
    assert observations[MAVERICK].incident is None


async def test_maintenance_in_progress_marks_only_its_component(
    status_server: FakeStatusServer,
) -> None:
    payload = groq()
    entry = maintenance(payload)
    entry["status"] = "maintenance_in_progress"
    entry["updates"].append(
        update(
            "01KSTART",
            "maintenance_in_progress",
            "Maintenance has started.",
            iso(-timedelta(minutes=5)),
        )
    )
    status_server.set_json(GROQ_PATH, payload)
    observations = await check(groq_source(status_server))
    assert observations[GROQ_API].status is Status.OPERATIONAL
    assert observations[GROQ_API].incident is None
    maint = observations[MAVERICK]
    assert maint.status is Status.MAINTENANCE
    assert maint.incident is not None
    assert maint.incident.id == MAINTENANCE_ID
    assert maint.incident.title == MAINTENANCE_TITLE
    assert maint.incident.maintenance is True
    assert maint.incident.status == "in_progress"
    assert maint.incident.update == "Maintenance has started."
    assert maint.incident.update_id == "01KSTART"
    assert maint.incident.url == f"{status_server.url}/incidents/{MAINTENANCE_ID}"


async def test_still_scheduled_inside_its_window_counts_as_maintenance(
    status_server: FakeStatusServer,
) -> None:
    payload = groq()
    window = maintenance(payload)["component_impacts"][0]
    window["start_at"], window["end_at"] = iso(-timedelta(hours=1)), iso(timedelta(hours=1))
    status_server.set_json(GROQ_PATH, payload)
    observations = await check(groq_source(status_server))
    maint = observations[MAVERICK]
    assert maint.status is Status.MAINTENANCE
    assert maint.incident is not None
    assert maint.incident.status == "scheduled"
    assert maint.incident.update.startswith("When: Monday, Nov 3, 2025")


async def test_maintenance_completing_on_the_page_is_reported_once(
    status_server: FakeStatusServer,
) -> None:
    source = groq_source(status_server)
    payload = groq()
    maintenance(payload)["status"] = "maintenance_in_progress"
    status_server.set_json(GROQ_PATH, payload)
    assert (await check(source))[MAVERICK].status is Status.MAINTENANCE

    entry = maintenance(payload)
    entry["status"] = "maintenance_complete"
    entry["updates"].append(
        update("01KDONE", "maintenance_complete", "Maintenance is complete.", iso(timedelta(0)))
    )
    status_server.set_json(GROQ_PATH, payload)
    done = (await check(source))[MAVERICK]
    assert done.status is Status.OPERATIONAL
    assert done.incident is not None
    assert (done.incident.status, done.incident.update) == ("completed", "Maintenance is complete.")
    assert done.incident.resolved
    assert status_server.count(GROQ_HISTORY) == 0  # the summary itself said how it ended

    assert (await check(source))[MAVERICK].incident is None


# ------------------------------------------------------------------- incident lifecycle


async def test_outage_update_and_recovery(status_server: FakeStatusServer) -> None:
    source = groq_source(status_server)
    first = update(
        "01KU1", "investigating", "We are investigating elevated errors.", "2026-03-01T10:00:00Z"
    )
    opened = incident_from_fixture("investigating", "full_outage", [first])
    status_server.set_json(GROQ_PATH, with_incident(opened, "full_outage"))
    observations = await check(source)
    outage = observations[GROQ_API]
    assert outage.status is Status.MAJOR_OUTAGE
    assert outage.incident is not None
    assert outage.incident.id == "01KAINCIDENT0000000000000"
    assert outage.incident.title == "Elevated error rates on the API"
    assert outage.incident.status == "investigating"
    assert outage.incident.impact is Status.MAJOR_OUTAGE
    assert outage.incident.update == "We are investigating elevated errors."
    assert outage.incident.maintenance is False
    assert observations[MAVERICK].status is Status.OPERATIONAL
    assert observations[MAVERICK].incident is None

    second = update("01KU2", "identified", "A fix is rolling out.", "2026-03-01T10:30:00Z")
    better = incident_from_fixture("identified", "degraded_performance", [first, second])
    status_server.set_json(GROQ_PATH, with_incident(better, "degraded_performance"))
    degraded = (await check(source))[GROQ_API]
    assert degraded.status is Status.DEGRADED
    assert degraded.incident is not None
    assert (degraded.incident.status, degraded.incident.update) == (
        "identified",
        "A fix is rolling out.",
    )
    assert degraded.incident.update_id == "01KU2"
    assert degraded.incident.revision != outage.incident.revision

    final = update("01KU3", "resolved", "This incident has been resolved.", "2026-03-01T11:00:00Z")
    resolved = incident_from_fixture("resolved", "degraded_performance", [first, second, final])
    resolved["component_impacts"][0]["end_at"] = "2026-03-01T11:00:00Z"
    status_server.set_json(GROQ_PATH, with_incident(None, None))
    status_server.set_json(GROQ_HISTORY, {"incidents": [resolved]})
    recovered = (await check(source))[GROQ_API]
    assert recovered.status is Status.OPERATIONAL
    assert recovered.incident is not None
    assert recovered.incident.id == "01KAINCIDENT0000000000000"
    assert recovered.incident.status == "resolved"
    assert recovered.incident.update == "This incident has been resolved."
    assert status_server.count(GROQ_HISTORY) == 1

    quiet = (await check(source))[GROQ_API]
    assert (quiet.status, quiet.incident) == (Status.OPERATIONAL, None)
    assert status_server.count(GROQ_HISTORY) == 1  # asked once, not every round


async def test_vanished_incident_without_history_is_called_resolved(
    status_server: FakeStatusServer,
) -> None:
    source = groq_source(status_server)
    first = update("01KU1", "investigating", "Investigating.", "2026-03-01T10:00:00Z")
    status_server.set_json(
        GROQ_PATH,
        with_incident(
            incident_from_fixture("investigating", "partial_outage", [first]), "partial_outage"
        ),
    )
    assert (await check(source))[GROQ_API].status is Status.PARTIAL_OUTAGE

    status_server.set_json(GROQ_PATH, with_incident(None, None))  # the history path 404s
    gone = (await check(source))[GROQ_API]
    assert gone.status is Status.OPERATIONAL
    assert gone.incident is not None
    assert gone.incident.status == "resolved"
    assert gone.incident.update == "No longer listed on the status page."
    assert gone.incident.update_id == "01KU1:gone"
    assert status_server.count(GROQ_HISTORY) == 1


async def test_monitoring_incident_leaves_a_recovered_component_green(
    status_server: FakeStatusServer,
) -> None:
    first = update("01KU1", "monitoring", "We are monitoring the fix.", "2026-03-01T10:00:00Z")
    monitoring = incident_from_fixture("monitoring", "operational", [first])
    monitoring["affected_components"][0]["status"] = "full_outage"  # its worst, not its now
    monitoring["component_impacts"][0]["end_at"] = "2026-03-01T10:20:00Z"
    status_server.set_json(GROQ_PATH, with_incident(monitoring, None))
    observation = (await check(groq_source(status_server)))[GROQ_API]
    assert observation.status is Status.OPERATIONAL
    assert observation.incident is not None
    assert observation.incident.status == "monitoring"


async def test_open_impact_applies_when_the_page_left_the_component_green(
    status_server: FakeStatusServer,
) -> None:
    first = update("01KU1", "investigating", "Investigating.", "2026-03-01T10:00:00Z")
    opened = incident_from_fixture("investigating", "partial_outage", [first])
    status_server.set_json(GROQ_PATH, with_incident(opened, None))
    assert (await check(groq_source(status_server)))[GROQ_API].status is Status.PARTIAL_OUTAGE


async def test_an_incident_saying_a_component_is_operational_now_leaves_it_green(
    status_server: FakeStatusServer,
) -> None:
    """One open incident names the API (recovered: ``current_status`` operational, its window
    closed) and Maverick (still down): its worst impact is Maverick's, not the API's. A component
    nothing speaks for (gpt-oss-120b: no ``current_status``, an open impact window) still gets
    the incident's impact."""
    first = update("01KU1", "identified", "Maverick requests fail.", "2026-03-01T10:00:00Z")
    opened = incident_from_fixture("identified", "full_outage", [first])
    opened["affected_components"] = [
        {"component_id": GROQ_API, "status": "full_outage", "current_status": "operational"},
        {"component_id": MAVERICK, "status": "full_outage", "current_status": "full_outage"},
        {"component_id": GPT_OSS_120B, "status": "partial_outage"},
    ]
    window = opened["component_impacts"][0]
    opened["component_impacts"] = [
        {**window, "component_id": GROQ_API, "end_at": "2026-03-01T10:20:00Z"},
        {**window, "id": "01KAIMPACT2", "component_id": MAVERICK},
        {**window, "id": "01KAIMPACT3", "component_id": GPT_OSS_120B, "status": "partial_outage"},
    ]
    payload = with_incident(opened, None)
    payload["summary"]["affected_components"] = [
        {"component_id": MAVERICK, "status": "full_outage"}
    ]
    status_server.set_json(GROQ_PATH, payload)

    observations = await check(groq_source(status_server, [GROQ_API, MAVERICK, GPT_OSS_120B]))

    api = observations[GROQ_API]
    assert api.status is Status.OPERATIONAL
    assert api.incident is not None
    assert api.incident.id == "01KAINCIDENT0000000000000"  # still told on the API
    assert observations[MAVERICK].status is Status.MAJOR_OUTAGE
    assert observations[GPT_OSS_120B].status is Status.MAJOR_OUTAGE  # the incident's worst


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("degraded_performance", Status.DEGRADED),
        ("partial_outage", Status.PARTIAL_OUTAGE),
        ("full_outage", Status.MAJOR_OUTAGE),
        ("under_maintenance", Status.MAINTENANCE),
        ("a_word_from_the_future", Status.DEGRADED),
    ],
)
async def test_affected_component_words(
    status_server: FakeStatusServer, word: str, expected: Status
) -> None:
    status_server.set_json(GROQ_PATH, with_incident(None, word))
    observations = await check(groq_source(status_server))
    assert observations[GROQ_API].status is expected
    assert observations[MAVERICK].status is Status.OPERATIONAL


# ------------------------------------------------------------------- broken pages


@pytest.mark.parametrize(
    ("serve", "needle"),
    [
        (lambda s: s.set_html(GROQ_PATH), "HTML page instead of JSON"),
        (
            lambda s: s.set_bytes(GROQ_PATH, b'{"summary": {"components": [{"id": "01K'),
            "invalid JSON",
        ),
        (lambda s: s.set_json(GROQ_PATH, {"page": {"name": "Groq"}}), "'summary'"),
        (lambda s: s.set_json(GROQ_PATH, {"summary": {"name": "Groq"}}), "'components'"),
        (lambda s: s.set_json(GROQ_PATH, {"summary": {"components": []}}), "lists no components"),
        (
            lambda s: s.set_json(GROQ_PATH, {"summary": {"components": [{"name": "API"}]}}),
            "without an id",
        ),
        (lambda s: s.set_redirect(GROQ_PATH, "/login"), "HTML page"),
        (lambda s: s.set_status(GROQ_PATH, 503), "HTTP 503"),
    ],
)
async def test_broken_pages_are_unknown_with_a_diagnostic(
    status_server: FakeStatusServer, serve: Any, needle: str
) -> None:
    serve(status_server)
    observations = await check(groq_source(status_server))
    assert list(observations) == [GROQ_API, MAVERICK]
    for observation in observations.values():
        assert observation.status is Status.UNKNOWN
        assert observation.detail is not None
        assert f"{status_server.url}{GROQ_PATH}" in observation.detail
        assert needle in observation.detail


async def test_broken_page_without_watched_components_is_one_unknown(
    status_server: FakeStatusServer,
) -> None:
    status_server.set_html(GROQ_PATH)
    source = IncidentioSource("groq", status_server.url, options={"host": "groqstatus.com"})
    observations = await check(source)
    assert list(observations) == [PAGE_COMPONENT]
    assert observations[PAGE_COMPONENT].status is Status.UNKNOWN


async def test_a_removed_component_is_unknown(status_server: FakeStatusServer) -> None:
    status_server.set_fixture(GROQ_PATH, GROQ)
    observations = await check(groq_source(status_server, ["01KGONE0000000000000000000"]))
    gone = observations["01KGONE0000000000000000000"]
    assert gone.status is Status.UNKNOWN
    assert gone.detail is not None
    assert "not on the page" in gone.detail


def test_registry_finds_the_source() -> None:
    assert page_source_class("incidentio") is IncidentioSource
