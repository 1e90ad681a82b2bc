"""Google Cloud source, through real HTTP against the fake status server and the real feed."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import httpx
import pytest

from bot.models import Observation, Status, utcnow
from bot.sources import page_source_class
from bot.sources.fetch import FetchLimits
from bot.sources.gcloud import GcloudSource
from tests.fakes.status_server import FakeStatusServer, fixture_json

FEED = "gcloud_incidents_vertex_gemini_trimmed.json"
PATH = "/incidents.json"
GEMINI = "Z0FZJAMvEB4j3NbCJs6B"  # Vertex Gemini API
DIALOGFLOW = "BnCicQdHSdxaCv8Ya6Vm"  # Dialogflow CX, named by the same incident
BIGQUERY = "9CcrhHUcFevXPSVaSxkf"  # a product the feed does not mention
INCIDENT_ID = "41E5S3mkTGDfkZuJZH5k"
TITLE = (
    "Vertex AI Gemini API customers experienced increased error rates when accessing the "
    "global endpoint."
)


async def check(source: GcloudSource) -> dict[str, Observation]:
    async with httpx.AsyncClient() as client:
        return {o.component: o for o in await source.check(client)}


def gemini_source(server: FakeStatusServer, components: list[str] | None = None) -> GcloudSource:
    return GcloudSource("google-gemini", server.url, components=components or [GEMINI, BIGQUERY])


def feed() -> list[dict[str, Any]]:
    incidents: list[dict[str, Any]] = fixture_json(FEED)
    return incidents


def gcloud_update(text: str, when: str, status: str) -> dict[str, Any]:
    return {"created": when, "modified": when, "when": when, "text": text, "status": status}


def opened(updates: list[dict[str, Any]], **changes: Any) -> list[dict[str, Any]]:
    """The real incident, still open: no ``end``, with the updates given (newest first)."""
    incidents = copy.deepcopy(feed())
    incident = incidents[0]
    del incident["end"]
    incident.update(changes)
    if updates:
        incident["updates"] = updates
        incident["most_recent_update"] = updates[0]
    return incidents


# ------------------------------------------------------------------- the real feed


async def test_closed_fixture_incident_leaves_products_operational(
    status_server: FakeStatusServer,
) -> None:
    status_server.set_fixture(PATH, FEED)
    observations = await check(gemini_source(status_server))
    gemini, bigquery = observations[GEMINI], observations[BIGQUERY]
    assert (gemini.status, gemini.incident, gemini.detail) == (Status.OPERATIONAL, None, None)
    assert gemini.component_name == "Vertex Gemini API"
    # Not in the feed: no incident names it, so it is fine (not unknown).
    assert (bigquery.status, bigquery.incident, bigquery.detail) == (Status.OPERATIONAL, None, None)
    assert bigquery.component_name is None


async def test_without_components_every_named_product_is_watched(
    status_server: FakeStatusServer,
) -> None:
    status_server.set_fixture(PATH, FEED)
    observations = await check(GcloudSource("gcp", status_server.url))
    assert {c: (o.component_name, o.status) for c, o in observations.items()} == {
        "eUntUKqUrHdbBLNcVVXq": ("Agent Assist", Status.OPERATIONAL),
        DIALOGFLOW: ("Dialogflow CX", Status.OPERATIONAL),
        GEMINI: ("Vertex Gemini API", Status.OPERATIONAL),
        "bGThzF7oEGP5jcuDdMuk": ("Google Cloud Support", Status.OPERATIONAL),
    }


# ------------------------------------------------------------------- lifecycle


async def test_outage_update_and_recovery(status_server: FakeStatusServer) -> None:
    source = gemini_source(status_server)
    first = gcloud_update(
        "We are investigating elevated error rates.",
        "2026-02-27T12:45:00+00:00",
        "SERVICE_INFORMATION",
    )
    status_server.set_json(PATH, opened([first]))
    observations = await check(source)
    open_ = observations[GEMINI]
    assert open_.status is Status.DEGRADED  # SERVICE_INFORMATION, severity low
    assert open_.incident is not None
    assert open_.incident.id == INCIDENT_ID
    assert open_.incident.title == TITLE
    assert open_.incident.status == "ongoing"
    assert open_.incident.impact is Status.DEGRADED
    assert open_.incident.update == "We are investigating elevated error rates."
    assert open_.incident.url == f"{status_server.url}/incidents/{INCIDENT_ID}"
    assert open_.incident.started_at is not None
    assert open_.incident.started_at.isoformat() == "2026-02-27T12:37:00+00:00"
    assert observations[BIGQUERY].status is Status.OPERATIONAL
    assert observations[BIGQUERY].incident is None

    second = gcloud_update(
        "Mitigation is in progress.", "2026-02-27T13:30:00+00:00", "SERVICE_OUTAGE"
    )
    worse = opened([second, first], status_impact="SERVICE_OUTAGE", severity="high")
    status_server.set_json(PATH, worse)
    outage = (await check(source))[GEMINI]
    assert outage.status is Status.MAJOR_OUTAGE
    assert outage.incident is not None
    assert outage.incident.update == "Mitigation is in progress."
    assert outage.incident.revision != open_.incident.revision

    final = gcloud_update(
        "The issue with Vertex Gemini API has been resolved.",
        "2026-02-27T14:35:00+00:00",
        "AVAILABLE",
    )
    closed = opened([final, second, first], status_impact="SERVICE_OUTAGE", severity="high")
    closed[0]["end"] = "2026-02-27T14:35:00+00:00"
    status_server.set_json(PATH, closed)
    recovered = (await check(source))[GEMINI]
    assert recovered.status is Status.OPERATIONAL
    assert recovered.incident is not None
    assert recovered.incident.id == INCIDENT_ID
    assert recovered.incident.status == "resolved"
    assert recovered.incident.update == "The issue with Vertex Gemini API has been resolved."

    quiet = (await check(source))[GEMINI]
    assert (quiet.status, quiet.incident) == (Status.OPERATIONAL, None)


async def test_trimmed_incident_reopened_then_back_to_the_real_closed_copy(
    status_server: FakeStatusServer,
) -> None:
    source = gemini_source(status_server)
    status_server.set_json(PATH, opened([]))  # the fixture as captured, minus its end
    open_ = (await check(source))[GEMINI]
    assert open_.status is Status.DEGRADED
    assert open_.incident is not None
    assert (open_.incident.title, open_.incident.update) == (TITLE, "")

    status_server.set_fixture(PATH, FEED)  # the real, closed copy: no closing update at all
    closed = (await check(source))[GEMINI]
    assert closed.status is Status.OPERATIONAL
    assert closed.incident is not None
    assert closed.incident.status == "resolved"
    assert closed.incident.revision != open_.incident.revision  # the end alone is news


async def test_an_end_without_a_closing_update_is_still_news(
    status_server: FakeStatusServer,
) -> None:
    source = gemini_source(status_server)
    first = gcloud_update("Investigating.", "2026-02-27T12:45:00+00:00", "SERVICE_INFORMATION")
    status_server.set_json(PATH, opened([first]))
    open_ = (await check(source))[GEMINI]
    closed = opened([first], end="2026-02-27T14:35:00+00:00")
    status_server.set_json(PATH, closed)
    ended = (await check(source))[GEMINI]
    assert open_.incident is not None
    assert ended.incident is not None
    assert (ended.status, ended.incident.status, ended.incident.update) == (
        Status.OPERATIONAL,
        "resolved",
        "Investigating.",
    )
    assert ended.incident.revision != open_.incident.revision


async def test_an_end_in_the_future_is_still_open(status_server: FakeStatusServer) -> None:
    later = (utcnow() + timedelta(hours=2)).isoformat()
    status_server.set_json(PATH, opened([], end=later))
    assert (await check(gemini_source(status_server)))[GEMINI].status is Status.DEGRADED


async def test_vanished_open_incident_is_called_resolved(status_server: FakeStatusServer) -> None:
    source = gemini_source(status_server)
    status_server.set_json(PATH, opened([]))
    assert (await check(source))[GEMINI].status is Status.DEGRADED
    status_server.set_json(PATH, [])
    gone = (await check(source))[GEMINI]
    assert gone.status is Status.OPERATIONAL
    assert gone.incident is not None
    assert (gone.incident.status, gone.incident.update) == (
        "resolved",
        "No longer listed on the status page.",
    )


async def test_an_open_incident_elsewhere_does_not_touch_the_watched_product(
    status_server: FakeStatusServer,
) -> None:
    incidents = opened([])
    incidents[0]["affected_products"] = [{"id": DIALOGFLOW, "title": "Dialogflow CX"}]
    status_server.set_json(PATH, incidents)
    observations = await check(gemini_source(status_server, [GEMINI, DIALOGFLOW]))
    assert (observations[GEMINI].status, observations[GEMINI].incident) == (
        Status.OPERATIONAL,
        None,
    )
    assert observations[DIALOGFLOW].status is Status.DEGRADED


@pytest.mark.parametrize(
    ("status_impact", "severity", "expected"),
    [
        ("SERVICE_INFORMATION", "low", Status.DEGRADED),
        ("SERVICE_DISRUPTION", "medium", Status.PARTIAL_OUTAGE),
        ("SERVICE_OUTAGE", "high", Status.MAJOR_OUTAGE),
        ("SERVICE_DISRUPTION", "low", Status.PARTIAL_OUTAGE),  # status_impact wins
        (None, "medium", Status.PARTIAL_OUTAGE),
        (None, "high", Status.MAJOR_OUTAGE),
        ("SOMETHING_NEW", None, Status.DEGRADED),
    ],
)
async def test_impact_mapping(
    status_server: FakeStatusServer,
    status_impact: str | None,
    severity: str | None,
    expected: Status,
) -> None:
    incidents = opened([])
    for key, value in (("status_impact", status_impact), ("severity", severity)):
        if value is None:
            del incidents[0][key]
        else:
            incidents[0][key] = value
    status_server.set_json(PATH, incidents)
    assert (await check(gemini_source(status_server)))[GEMINI].status is expected


# ------------------------------------------------------------------- broken feeds


@pytest.mark.parametrize(
    ("serve", "needle"),
    [
        (lambda s: s.set_html(PATH), "HTML page instead of JSON"),
        (
            lambda s: s.set_bytes(PATH, b'[{"id": "41E5S3mkTGDfkZuJZH5k", "begin": "2026-02'),
            "invalid JSON",
        ),
        (lambda s: s.set_json(PATH, {"incidents": []}), "expected a JSON array of incidents"),
        (
            lambda s: s.set_json(PATH, [{"external_desc": "no id here"}]),
            "an incident without an id",
        ),
        (lambda s: s.set_status(PATH, 502), "HTTP 502"),
    ],
)
async def test_broken_feeds_are_unknown_with_a_diagnostic(
    status_server: FakeStatusServer, serve: Any, needle: str
) -> None:
    serve(status_server)
    observations = await check(gemini_source(status_server))
    assert list(observations) == [GEMINI, BIGQUERY]
    for observation in observations.values():
        assert observation.status is Status.UNKNOWN
        assert observation.detail is not None
        assert f"{status_server.url}{PATH}" in observation.detail
        assert needle in observation.detail


def test_registry_finds_the_source() -> None:
    assert page_source_class("gcloud") is GcloudSource


def test_the_byte_cap_never_cuts_the_whole_history_feed() -> None:
    """incidents.json is Google Cloud's entire incident history: the usual cap is too small."""
    source = GcloudSource(
        "gemini", "https://status.cloud.google.com", limits=FetchLimits(max_bytes=1024)
    )
    assert source.limits.max_bytes == 64 * 1024 * 1024
