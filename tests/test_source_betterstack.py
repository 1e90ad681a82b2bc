"""The Better Stack source against status.together.ai's real index.json, over real HTTP."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from bot.models import Observation, Status
from bot.sources.betterstack import BetterStackSource
from tests.fakes.status_server import FakeStatusServer, fixture_bytes, fixture_json

FIXTURE = "betterstack_index_together_maintenance.json"
MINIMAX = "8911095"  # "MiniMax M3", named by the (resolved) maintenance report
GLM = "8918569"  # "GLM 5.2", same
WEBSITE = "8475065"  # "Website", in no report


async def check(source: BetterStackSource) -> list[Observation]:
    async with httpx.AsyncClient() as client:
        return await source.check(client)


def by_component(observations: list[Observation]) -> dict[str, Observation]:
    return {o.component: o for o in observations}


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def index() -> Any:
    return copy.deepcopy(fixture_json(FIXTURE))


def resource(payload: Any, resource_id: str) -> dict[str, Any]:
    return next(r for r in payload["included"] if r["id"] == resource_id)


def without_resources(payload: Any) -> list[Any]:
    return [r for r in payload["included"] if r["type"] != "status_page_resource"]


def with_report(
    payload: Any,
    report_id: str,
    *,
    report_type: str,
    aggregate: str,
    affected: dict[str, str],
    updates: list[tuple[str, str, datetime]],
    starts: datetime,
    ends: datetime | None = None,
) -> Any:
    """Add a status report (and its posts: id, message, time) the way the page lists them."""
    for update_id, message, at in updates:
        payload["included"].append(
            {
                "id": update_id,
                "type": "status_update",
                "attributes": {
                    "message": message,
                    "published_at": iso(at),
                    "published_at_timezone": None,
                    "notify_subscribers": True,
                    "affected_resources": [],
                },
            }
        )
    payload["included"].append(
        {
            "id": report_id,
            "type": "status_report",
            "attributes": {
                "title": "MiniMax M3 errors" if report_type != "maintenance" else "Model upgrade",
                "report_type": report_type,
                "starts_at": iso(starts),
                "ends_at": iso(ends) if ends else None,
                "affected_resources": [
                    {"status_page_resource_id": rid, "status": status}
                    for rid, status in affected.items()
                ],
                "aggregate_state": aggregate,
            },
            "relationships": {
                "status_updates": {
                    "data": [{"id": uid, "type": "status_update"} for uid, _, _ in updates]
                }
            },
        }
    )
    payload["data"]["relationships"]["status_reports"]["data"].append(
        {"id": report_id, "type": "status_report"}
    )
    return payload


# ------------------------------------------------------------------------- real payload


async def test_together_index_all_operational_and_old_maintenance_ignored(
    status_server: FakeStatusServer,
) -> None:
    status_server.set_fixture("/index.json", FIXTURE)
    source = BetterStackSource("together", status_server.url)

    observations = by_component(await check(source))

    assert status_server.count("/index.json") == 1
    assert len(observations) == 22
    assert {o.status for o in observations.values()} == {Status.OPERATIONAL}
    assert observations[MINIMAX].component_name == "MiniMax M3"
    assert observations[WEBSITE].component_name == "Website"
    # The maintenance report is resolved and ended in July: no stale narrative attached.
    assert all(o.incident is None for o in observations.values())


async def test_watched_resources_only(status_server: FakeStatusServer) -> None:
    status_server.set_fixture("/index.json", FIXTURE)
    source = BetterStackSource("together", status_server.url, components=[MINIMAX, GLM])

    observations = by_component(await check(source))

    assert set(observations) == {MINIMAX, GLM}
    assert observations[GLM].component_name == "GLM 5.2"
    assert observations[GLM].status is Status.OPERATIONAL


async def test_aggregate_state_is_not_trusted_either_way(status_server: FakeStatusServer) -> None:
    source = BetterStackSource("together", status_server.url, components=[WEBSITE, MINIMAX])

    loud = index()
    loud["data"]["attributes"]["aggregate_state"] = "downtime"  # something else is down
    status_server.set_json("/index.json", loud)
    observations = by_component(await check(source))
    assert observations[WEBSITE].status is Status.OPERATIONAL
    assert observations[MINIMAX].status is Status.OPERATIONAL

    quiet = index()  # says operational while a watched resource is down
    resource(quiet, MINIMAX)["attributes"]["status"] = "downtime"
    status_server.set_json("/index.json", quiet)
    observations = by_component(await check(source))
    assert observations[MINIMAX].status is Status.MAJOR_OUTAGE
    assert observations[WEBSITE].status is Status.OPERATIONAL


async def test_not_monitored_resource_is_unknown(status_server: FakeStatusServer) -> None:
    payload = index()
    resource(payload, MINIMAX)["attributes"]["status"] = "not_monitored"
    status_server.set_json("/index.json", payload)

    [minimax] = await check(BetterStackSource("together", status_server.url, components=[MINIMAX]))

    assert minimax.status is Status.UNKNOWN


# --------------------------------------------------------------- outage, update, recovery


async def test_report_from_outage_through_update_to_recovery(
    status_server: FakeStatusServer,
) -> None:
    now = datetime.now(UTC)
    source = BetterStackSource("together", status_server.url, components=[MINIMAX, GLM])
    first = ("990101", "MiniMax M3 is returning errors.", now - timedelta(minutes=9))
    second = ("990102", "Errors are decreasing; we are monitoring.", now - timedelta(minutes=4))
    third = ("990103", "Resolved: MiniMax M3 is healthy again.", now - timedelta(minutes=1))

    outage = index()
    resource(outage, MINIMAX)["attributes"]["status"] = "downtime"
    with_report(
        outage,
        "990001",
        report_type="manual",
        aggregate="downtime",
        affected={MINIMAX: "downtime"},
        updates=[first],
        starts=now - timedelta(minutes=10),
    )
    status_server.set_json("/index.json", outage)
    observations = by_component(await check(source))
    minimax = observations[MINIMAX]
    assert minimax.status is Status.MAJOR_OUTAGE
    assert minimax.incident is not None
    assert minimax.incident.id == "990001"
    assert minimax.incident.title == "MiniMax M3 errors"
    assert minimax.incident.status == "investigating"
    assert minimax.incident.impact is Status.MAJOR_OUTAGE
    assert minimax.incident.update == "MiniMax M3 is returning errors."
    assert minimax.incident.update_id == "990101"
    assert observations[GLM].status is Status.OPERATIONAL
    assert observations[GLM].incident is None

    update = index()
    resource(update, MINIMAX)["attributes"]["status"] = "degraded"
    with_report(
        update,
        "990001",
        report_type="manual",
        aggregate="degraded",
        affected={MINIMAX: "degraded"},
        updates=[second, first],
        starts=now - timedelta(minutes=10),
    )
    status_server.set_json("/index.json", update)
    minimax = by_component(await check(source))[MINIMAX]
    assert minimax.status is Status.DEGRADED
    assert minimax.incident is not None
    assert minimax.incident.update == "Errors are decreasing; we are monitoring."
    assert minimax.incident.update_id == "990102"

    recovery = index()
    with_report(
        recovery,
        "990001",
        report_type="manual",
        aggregate="resolved",
        affected={MINIMAX: "resolved"},
        updates=[first, third, second],
        starts=now - timedelta(minutes=10),
    )
    status_server.set_json("/index.json", recovery)
    minimax = by_component(await check(source))[MINIMAX]
    assert minimax.status is Status.OPERATIONAL
    assert minimax.incident is not None
    assert minimax.incident.status == "resolved"
    assert minimax.incident.update == "Resolved: MiniMax M3 is healthy again."

    again = by_component(await check(source))[MINIMAX]
    assert again.status is Status.OPERATIONAL
    assert again.incident is None  # told once


async def test_maintenance_in_progress_and_scheduled(status_server: FakeStatusServer) -> None:
    now = datetime.now(UTC)
    payload = index()
    with_report(
        payload,
        "990002",
        report_type="maintenance",
        aggregate="maintenance",
        affected={MINIMAX: "maintenance"},
        updates=[("990201", "Upgrading MiniMax M3.", now - timedelta(minutes=30))],
        starts=now - timedelta(minutes=30),
        ends=now + timedelta(minutes=30),
    )
    with_report(
        payload,
        "990003",
        report_type="maintenance",
        aggregate="maintenance",
        affected={GLM: "maintenance"},
        updates=[("990301", "GLM 5.2 moves tomorrow.", now - timedelta(hours=1))],
        starts=now + timedelta(days=1),
        ends=now + timedelta(days=1, hours=1),
    )
    status_server.set_json("/index.json", payload)

    observations = by_component(
        await check(BetterStackSource("together", status_server.url, components=[MINIMAX, GLM]))
    )

    assert observations[MINIMAX].status is Status.MAINTENANCE
    assert observations[MINIMAX].incident is not None
    assert observations[MINIMAX].incident.status == "in_progress"
    assert observations[MINIMAX].incident.maintenance
    assert observations[GLM].status is Status.OPERATIONAL
    assert observations[GLM].incident is not None
    assert observations[GLM].incident.status == "scheduled"


async def test_open_report_naming_no_resource_is_told_on_all_and_changes_none(
    status_server: FakeStatusServer,
) -> None:
    now = datetime.now(UTC)
    payload = with_report(
        index(),
        "990004",
        report_type="manual",
        aggregate="degraded",
        affected={},
        updates=[("990401", "Some models are slow.", now)],
        starts=now - timedelta(minutes=5),
    )
    status_server.set_json("/index.json", payload)

    observations = await check(BetterStackSource("together", status_server.url))

    assert len(observations) == 22
    # Every resource states its own status (operational here): the report's guess does not
    # override it, but the report is attached to every one of them.
    assert {o.status for o in observations} == {Status.OPERATIONAL}
    assert {o.incident.id for o in observations if o.incident} == {"990004"}
    assert all(o.incident is not None for o in observations)


# ---------------------------------------------------------------------- what must be unknown


async def test_html_page_is_unknown(status_server: FakeStatusServer) -> None:
    status_server.set_html("/index.json")
    [page] = await check(BetterStackSource("together", status_server.url))

    assert page.status is Status.UNKNOWN
    assert page.detail is not None
    assert f"{status_server.url}/index.json" in page.detail
    assert "HTML page instead of JSON" in page.detail


async def test_truncated_index_is_unknown(status_server: FakeStatusServer) -> None:
    body = fixture_bytes(FIXTURE)
    status_server.set_bytes("/index.json", body[: len(body) // 2])
    source = BetterStackSource("together", status_server.url, components=[MINIMAX])

    [minimax] = await check(source)

    assert minimax.status is Status.UNKNOWN
    assert minimax.detail is not None
    assert f"{status_server.url}/index.json" in minimax.detail
    assert "invalid JSON" in minimax.detail


@pytest.mark.parametrize(
    ("mutate", "complaint"),
    [
        (lambda p: p.pop("included"), "expected key 'included' (list), found missing"),
        (lambda p: p.pop("data"), "expected key 'data' (dict), found missing"),
        (lambda p: p["data"].update(type="monitor"), "expected a status_page"),
        (lambda p: p.update(included=without_resources(p)), "lists no resources"),
    ],
    ids=["no-included", "no-data", "not-a-page", "no-resources"],
)
async def test_index_missing_what_we_need_is_unknown(
    status_server: FakeStatusServer, mutate: Any, complaint: str
) -> None:
    payload = index()
    mutate(payload)
    status_server.set_json("/index.json", payload)
    source = BetterStackSource("together", status_server.url, components=[MINIMAX])

    [minimax] = await check(source)

    assert minimax.status is Status.UNKNOWN
    assert minimax.detail is not None
    assert f"{status_server.url}/index.json" in minimax.detail
    assert complaint in minimax.detail
