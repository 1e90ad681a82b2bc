"""AWS Health source, through real HTTP against the fake status server and the real feed."""

from __future__ import annotations

import codecs
import copy
import json
from typing import Any

import httpx
import pytest

from bot.models import Observation, Status
from bot.sources import page_source_class
from bot.sources.aws import AwsSource
from tests.fakes.status_server import FakeStatusServer, fixture_bytes, fixture_json

FEED = "aws_currentevents_bedrock_disrupted.json"
PATH = "/public/currentevents"
UAE_ARN = (
    "arn:aws:health:me-central-1::event/MULTIPLE_SERVICES/AWS_MULTIPLE_SERVICES_OPERATIONAL_ISSUE/"
    "AWS_MULTIPLE_SERVICES_OPERATIONAL_ISSUE_5E6B8_EF2498889B5"
)
BAHRAIN_ARN = (
    "arn:aws:health:me-south-1::event/MULTIPLE_SERVICES/AWS_MULTIPLE_SERVICES_OPERATIONAL_ISSUE/"
    "AWS_MULTIPLE_SERVICES_OPERATIONAL_ISSUE_E6426_01AD72B4E1E"
)
WATCHED = ["bedrock-me-central-1", "bedrock-me-south-1", "sts-us-west-2", "bedrock-us-east-1"]


async def check(source: AwsSource) -> dict[str, Observation]:
    async with httpx.AsyncClient() as client:
        return {o.component: o for o in await source.check(client)}


def aws_source(server: FakeStatusServer, **kwargs: Any) -> AwsSource:
    kwargs.setdefault("components", WATCHED)
    return AwsSource("aws-bedrock", server.url, **kwargs)


def feed() -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = fixture_json(FEED)
    return events


def us_east_event(status: str, current: str, log: list[tuple[int, str]]) -> dict[str, Any]:
    """A Bedrock event in us-east-1, built from the real UAE event."""
    event = copy.deepcopy(feed()[1])
    event.update(
        arn="arn:aws:health:us-east-1::event/BEDROCK/AWS_BEDROCK_OPERATIONAL_ISSUE/TEST_1",
        region_name="N. Virginia",
        status=status,
        service="bedrock-us-east-1",
        service_name="Amazon Bedrock",
        summary="Increased Invocation Latency",
        date="1772369485",
        event_log=[
            {
                "summary": "Increased Invocation Latency",
                "message": text,
                "status": int(status),
                "timestamp": at,
            }
            for at, text in log
        ],
        impacted_services={
            "bedrock-us-east-1": {
                "service_name": "Amazon Bedrock",
                "current": current,
                "max": current,
            }
        },
    )
    return event


# ------------------------------------------------------------------- the real feed


async def test_fixture_statuses_and_incidents(status_server: FakeStatusServer) -> None:
    status_server.set_fixture(PATH, FEED)
    observations = await check(aws_source(status_server))
    assert {c: o.status for c, o in observations.items()} == {
        "bedrock-me-central-1": Status.MAJOR_OUTAGE,
        "bedrock-me-south-1": Status.MAJOR_OUTAGE,
        "sts-us-west-2": Status.OPERATIONAL,  # its event is resolved (status 0)
        "bedrock-us-east-1": Status.OPERATIONAL,  # not in the feed at all
    }
    uae = observations["bedrock-me-central-1"]
    assert uae.component_name == "Amazon Bedrock"
    assert uae.incident is not None
    assert uae.incident.id == UAE_ARN
    assert uae.incident.title == "Increased Error Rates (UAE)"
    assert uae.incident.status == "ongoing"
    assert uae.incident.impact is Status.MAJOR_OUTAGE
    assert (
        uae.incident.update
        == "We are investigating issues with AWS services in the ME-CENTRAL-1 Region."
    )
    assert uae.incident.started_at is not None
    assert uae.incident.started_at.timestamp() == 1772369485
    bahrain = observations["bedrock-me-south-1"]
    assert bahrain.incident is not None
    assert bahrain.incident.id == BAHRAIN_ARN
    assert bahrain.incident.title == "Increased Error Rates (Bahrain)"
    sts = observations["sts-us-west-2"]
    assert (sts.incident, sts.component_name) == (None, "AWS Security Token Service")
    assert observations["bedrock-us-east-1"].incident is None


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
async def test_utf16_with_a_bom_reads_like_utf8(
    status_server: FakeStatusServer, encoding: str
) -> None:
    text = fixture_bytes(FEED).decode("utf-8")
    bom = {"utf-16-le": codecs.BOM_UTF16_LE, "utf-16-be": codecs.BOM_UTF16_BE}.get(encoding, b"")
    status_server.set_bytes(PATH, bom + text.encode(encoding))
    observations = await check(aws_source(status_server))
    assert observations["bedrock-me-central-1"].status is Status.MAJOR_OUTAGE
    assert observations["sts-us-west-2"].status is Status.OPERATIONAL
    assert observations["bedrock-me-central-1"].detail is None


async def test_empty_feed_is_all_well(status_server: FakeStatusServer) -> None:
    status_server.set_json(PATH, [])
    observations = await check(aws_source(status_server, options={"services": ["bedrock"]}))
    assert list(observations) == [*WATCHED, "bedrock"]
    assert {o.status for o in observations.values()} == {Status.OPERATIONAL}
    assert all(o.incident is None and o.detail is None for o in observations.values())


async def test_service_prefix_aggregates_every_region(status_server: FakeStatusServer) -> None:
    status_server.set_fixture(PATH, FEED)
    source = aws_source(status_server, components=None, options={"services": ["bedrock"]})
    observations = await check(source)
    assert list(observations) == ["bedrock"]
    bedrock = observations["bedrock"]
    assert (bedrock.status, bedrock.component_name) == (Status.MAJOR_OUTAGE, "Amazon Bedrock")
    assert bedrock.incident is not None
    assert bedrock.incident.id == BAHRAIN_ARN  # the most recently updated of the two


async def test_service_prefix_does_not_match_another_service(
    status_server: FakeStatusServer,
) -> None:
    event = us_east_event("3", "3", [(1772369485, "Agents are failing.")])
    event["impacted_services"] = {
        "bedrock-agent-us-east-1": {
            "service_name": "Amazon Bedrock Agents",
            "current": "3",
            "max": "3",
        }
    }
    status_server.set_json(PATH, [event])
    source = aws_source(status_server, components=None, options={"services": "bedrock"})
    bedrock = (await check(source))["bedrock"]
    assert (bedrock.status, bedrock.incident) == (Status.OPERATIONAL, None)


# ------------------------------------------------------------------- lifecycle


async def test_outage_update_and_recovery(status_server: FakeStatusServer) -> None:
    source = aws_source(status_server, options={"services": ["bedrock"]})
    status_server.set_json(PATH, [])
    assert (await check(source))["bedrock-us-east-1"].status is Status.OPERATIONAL

    log = [(1772369485, "We are investigating increased latency.")]
    status_server.set_json(PATH, [us_east_event("1", "1", log)])
    observations = await check(source)
    degraded = observations["bedrock-us-east-1"]
    assert degraded.status is Status.DEGRADED
    assert degraded.incident is not None
    assert degraded.incident.title == "Increased Invocation Latency (N. Virginia)"
    assert degraded.incident.update == "We are investigating increased latency."
    assert degraded.incident.url == f"{status_server.url}/health/status"
    assert observations["bedrock"].status is Status.DEGRADED
    assert observations["bedrock-me-central-1"].status is Status.OPERATIONAL

    log.append((1772371285, "Invocations are failing for some customers."))
    status_server.set_json(PATH, [us_east_event("3", "3", log)])
    disrupted = (await check(source))["bedrock-us-east-1"]
    assert disrupted.status is Status.MAJOR_OUTAGE
    assert disrupted.incident is not None
    assert disrupted.incident.update == "Invocations are failing for some customers."
    assert disrupted.incident.revision != degraded.incident.revision

    log.append((1772373085, "The issue has been resolved and the service is operating normally."))
    resolved = us_east_event("0", "0", log)
    resolved.update(summary="[RESOLVED] Increased Invocation Latency", end_time="1772373085")
    status_server.set_json(PATH, [resolved])
    observations = await check(source)
    recovered = observations["bedrock-us-east-1"]
    assert recovered.status is Status.OPERATIONAL
    assert recovered.incident is not None
    assert recovered.incident.status == "resolved"
    assert (
        recovered.incident.update
        == "The issue has been resolved and the service is operating normally."
    )
    assert observations["bedrock"].incident is not None
    assert observations["bedrock"].incident.resolved

    quiet = await check(source)
    assert (quiet["bedrock-us-east-1"].incident, quiet["bedrock"].incident) == (None, None)


async def test_a_recovered_service_in_an_open_event_is_green_with_the_event(
    status_server: FakeStatusServer,
) -> None:
    status_server.set_json(PATH, [us_east_event("3", "0", [(1772369485, "Recovering.")])])
    observation = (await check(aws_source(status_server)))["bedrock-us-east-1"]
    assert observation.status is Status.OPERATIONAL
    assert observation.incident is not None
    assert observation.incident.status == "ongoing"


@pytest.mark.parametrize(
    ("current", "expected"),
    [
        ("0", Status.OPERATIONAL),
        ("1", Status.DEGRADED),
        ("2", Status.PARTIAL_OUTAGE),
        ("3", Status.MAJOR_OUTAGE),
        ("9", Status.PARTIAL_OUTAGE),  # unreadable: the event's own code (2) decides
    ],
)
async def test_service_codes(
    status_server: FakeStatusServer, current: str, expected: Status
) -> None:
    status_server.set_json(PATH, [us_east_event("2", current, [(1772369485, "Something.")])])
    assert (await check(aws_source(status_server)))["bedrock-us-east-1"].status is expected


@pytest.mark.parametrize(
    ("status", "current", "end_time"),
    [("3", "3", "1772373085"), ("0", "3", None)],
    ids=["end-time-passed", "status-0"],
)
async def test_closed_events_leave_services_green(
    status_server: FakeStatusServer, status: str, current: str, end_time: str | None
) -> None:
    event = us_east_event(status, current, [(1772369485, "Old news.")])
    if end_time:
        event["end_time"] = end_time
    status_server.set_json(PATH, [event])
    observation = (await check(aws_source(status_server)))["bedrock-us-east-1"]
    assert (observation.status, observation.incident) == (Status.OPERATIONAL, None)


async def test_vanished_open_event_is_called_resolved(status_server: FakeStatusServer) -> None:
    source = aws_source(status_server)
    status_server.set_fixture(PATH, FEED)
    assert (await check(source))["bedrock-me-central-1"].status is Status.MAJOR_OUTAGE
    status_server.set_json(PATH, [])
    gone = (await check(source))["bedrock-me-central-1"]
    assert gone.status is Status.OPERATIONAL
    assert gone.incident is not None
    assert (gone.incident.id, gone.incident.status, gone.incident.update) == (
        UAE_ARN,
        "resolved",
        "No longer listed on the status page.",
    )


# ------------------------------------------------------------------- broken feeds


def _no_status() -> bytes:
    events = feed()
    del events[1]["status"]
    return json.dumps(events).encode()


@pytest.mark.parametrize(
    ("serve", "needle"),
    [
        (lambda s: s.set_html(PATH), "HTML page instead of JSON"),
        (lambda s: s.set_bytes(PATH, fixture_bytes(FEED)[:700]), "invalid JSON"),
        (lambda s: s.set_json(PATH, {"events": []}), "expected a JSON array of events"),
        (lambda s: s.set_bytes(PATH, _no_status()), "without a readable 'status' code"),
        (lambda s: s.set_bytes(PATH, codecs.BOM_UTF16_LE + b"[\x00{"), "not UTF-16 text"),
        (lambda s: s.set_status(PATH, 500), "HTTP 500"),
    ],
)
async def test_broken_feeds_are_unknown_with_a_diagnostic(
    status_server: FakeStatusServer, serve: Any, needle: str
) -> None:
    serve(status_server)
    observations = await check(aws_source(status_server))
    assert list(observations) == WATCHED
    for observation in observations.values():
        assert observation.status is Status.UNKNOWN
        assert observation.detail is not None
        assert f"{status_server.url}{PATH}" in observation.detail
        assert needle in observation.detail


def test_services_option_must_be_a_list() -> None:
    with pytest.raises(ValueError, match="services"):
        AwsSource("aws", "https://health.aws.amazon.com", options={"services": {"bedrock": True}})


def test_registry_finds_the_source() -> None:
    assert page_source_class("aws") is AwsSource
