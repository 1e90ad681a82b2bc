"""The Datadog status page source against OpenRouter's real config.json, over real HTTP."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest

from bot.models import Observation, Status
from bot.sources.datadog import DatadogSource
from tests.fakes.status_server import FakeStatusServer, fixture_bytes, fixture_json

FIXTURE = "datadog_config_openrouter_resolved.json"
GROUP = "62d944d3-1acb-471b-81a0-099b3da0164f"  # "API - Gateway": a group, not a component
CHAT = "9fb5ccff-e128-455a-be20-59572f8d363a"
VIDEO = "bb2402ad-3e98-4c75-9eb5-ca68ca683c5a"
WEB = "2347916e-1f82-448c-b07d-8cfbbad57322"
OPEN = "5c1e0a57-9d1b-4c55-a1f1-3d2b7e0f6a10"


async def check(source: DatadogSource) -> list[Observation]:
    async with httpx.AsyncClient() as client:
        return await source.check(client)


def by_component(observations: list[Observation]) -> dict[str, Observation]:
    return {o.component: o for o in observations}


def config() -> Any:
    return copy.deepcopy(fixture_json(FIXTURE))


def set_component(payload: Any, component_id: str, status: str) -> None:
    stack = list(payload["components"])
    while stack:
        item = stack.pop()
        stack.extend(item.get("components") or [])
        if item["id"] == component_id:
            item["status"] = status
            return
    raise AssertionError(f"no component {component_id}")


def entry(entry_id: str, status: str, text: str, at: str, affected: str) -> dict[str, Any]:
    """A timeline entry shaped like the fixture's."""
    return {
        "componentsAffected": [
            {
                "id": CHAT,
                "name": "Chat (/api/v1/chat/completions)",
                "position": 0,
                "status": affected,
                "type": "Component",
            }
        ],
        "createdAt": at,
        "startedAt": at,
        "lastModifiedAt": at,
        "description": text,
        "id": entry_id,
        "status": status,
    }


def with_incident(payload: Any, status: str, affected: str, timeline: list[Any]) -> Any:
    """The config with one more incident on Chat, newest timeline entry first."""
    resolved = status == "resolved"
    payload["incidents"].insert(
        0,
        {
            "componentsAffected": [
                {
                    "id": CHAT,
                    "name": "Chat (/api/v1/chat/completions)",
                    "position": 0,
                    "status": affected,
                    "type": "Component",
                }
            ],
            "currentStatus": status,
            "description": timeline[0]["description"],
            "id": OPEN,
            "lastModifiedAt": timeline[0]["lastModifiedAt"],
            "publishedDate": timeline[-1]["startedAt"],
            "resolved": resolved,
            "resolvedDate": timeline[0]["startedAt"] if resolved else None,
            "timeline": timeline,
            "title": "Elevated errors on chat completions",
        },
    )
    return payload


# ------------------------------------------------------------------------- real payload


async def test_openrouter_config_all_operational(status_server: FakeStatusServer) -> None:
    status_server.set_fixture("/config.json", FIXTURE)
    source = DatadogSource("openrouter", status_server.url)

    observations = by_component(await check(source))

    assert status_server.count("/config.json") == 1
    assert len(observations) == 7  # six leaves in the API group, plus Web
    assert GROUP not in observations
    assert observations[CHAT].component_name == "Chat (/api/v1/chat/completions)"
    assert observations[WEB].component_name == "Web & Application Services"
    assert {o.status for o in observations.values()} == {Status.OPERATIONAL}
    # Four incidents, all resolved before we looked: none is pinned to a green component.
    assert all(o.incident is None for o in observations.values())


async def test_path_option(status_server: FakeStatusServer) -> None:
    status_server.set_fixture("/status/config.json", FIXTURE)
    source = DatadogSource(
        "openrouter", status_server.url, components=[VIDEO], options={"path": "/status/config.json"}
    )

    [video] = await check(source)

    assert status_server.count("/status/config.json") == 1
    assert video.status is Status.OPERATIONAL
    assert video.component_name == "Video (/api/v1/videos)"


async def test_component_status_words(status_server: FakeStatusServer) -> None:
    payload = config()
    set_component(payload, CHAT, "partial_outage")
    set_component(payload, VIDEO, "major_outage")
    set_component(payload, WEB, "degraded")
    status_server.set_json("/config.json", payload)

    observations = by_component(await check(DatadogSource("openrouter", status_server.url)))

    assert observations[CHAT].status is Status.PARTIAL_OUTAGE
    assert observations[VIDEO].status is Status.MAJOR_OUTAGE
    assert observations[WEB].status is Status.DEGRADED


# --------------------------------------------------------------- outage, update, recovery


async def test_incident_from_outage_through_update_to_recovery(
    status_server: FakeStatusServer,
) -> None:
    source = DatadogSource("openrouter", status_server.url, components=[CHAT, VIDEO])
    first = entry(
        "e1",
        "investigating",
        "Chat requests fail for some users.",
        "2026-09-13T20:00:00Z",
        "partial_outage",
    )
    second = entry(
        "e2",
        "identified",
        "An upstream provider is rate limiting us.",
        "2026-09-13T20:30:00Z",
        "degraded",
    )
    third = entry(
        "e3", "resolved", "Chat is back to normal.", "2026-09-13T21:00:00Z", "operational"
    )

    # The page left the component green; the incident's own word for it decides.
    status_server.set_json(
        "/config.json", with_incident(config(), "investigating", "partial_outage", [first])
    )
    observations = by_component(await check(source))
    chat = observations[CHAT]
    assert chat.status is Status.PARTIAL_OUTAGE
    assert chat.incident is not None
    assert chat.incident.id == OPEN
    assert chat.incident.title == "Elevated errors on chat completions"
    assert chat.incident.url == f"{status_server.url}/incidents/{OPEN}"
    assert chat.incident.status == "investigating"
    assert chat.incident.impact is Status.PARTIAL_OUTAGE
    assert chat.incident.update == "Chat requests fail for some users."
    assert chat.incident.update_id == "e1"
    assert observations[VIDEO].status is Status.OPERATIONAL
    assert observations[VIDEO].incident is None

    # Now the component itself is marked degraded: its own status is authoritative.
    update = with_incident(config(), "identified", "degraded", [second, first])
    set_component(update, CHAT, "degraded")
    status_server.set_json("/config.json", update)
    chat = by_component(await check(source))[CHAT]
    assert chat.status is Status.DEGRADED
    assert chat.incident is not None
    assert chat.incident.status == "identified"
    assert chat.incident.update == "An upstream provider is rate limiting us."
    assert chat.incident.update_id == "e2"

    status_server.set_json(
        "/config.json", with_incident(config(), "resolved", "operational", [third, second, first])
    )
    chat = by_component(await check(source))[CHAT]
    assert chat.status is Status.OPERATIONAL
    assert chat.incident is not None
    assert chat.incident.status == "resolved"
    assert chat.incident.update == "Chat is back to normal."

    chat = by_component(await check(source))[CHAT]
    assert chat.status is Status.OPERATIONAL
    assert chat.incident is None  # told once


async def test_open_incident_without_component_status_leaves_its_own_status(
    status_server: FakeStatusServer,
) -> None:
    quiet = entry("e1", "investigating", "Looking into reports.", "2026-09-13T20:00:00Z", "")
    payload = with_incident(config(), "investigating", "", [quiet])
    status_server.set_json("/config.json", payload)

    [chat] = await check(DatadogSource("openrouter", status_server.url, components=[CHAT]))

    # The incident says nothing of what Chat is; the page lists it operational, and that wins.
    assert chat.status is Status.OPERATIONAL
    assert chat.incident is not None
    assert chat.incident.id == OPEN


async def test_maintenance_in_progress(status_server: FakeStatusServer) -> None:
    payload = config()
    payload["maintenances"] = [
        {
            "id": "m-1",
            "title": "Database upgrade",
            "status": "in_progress",
            "componentsAffected": [{"id": WEB, "name": "Web & Application Services"}],
            "startDate": "2026-09-13T20:00:00Z",
            "completedDate": "2026-09-13T22:00:00Z",
            "inProgressDescription": "The dashboard may be slow.",
        },
        {
            "id": "m-2",
            "title": "Gateway upgrade",
            "status": "scheduled",
            "componentsAffected": [{"id": CHAT, "name": "Chat"}],
            "startDate": "2099-01-01T00:00:00Z",
        },
    ]
    status_server.set_json("/config.json", payload)

    observations = by_component(
        await check(DatadogSource("openrouter", status_server.url, components=[WEB, CHAT]))
    )

    assert observations[WEB].status is Status.MAINTENANCE
    assert observations[WEB].incident is not None
    assert observations[WEB].incident.maintenance
    assert observations[WEB].incident.update == "The dashboard may be slow."
    assert observations[CHAT].status is Status.OPERATIONAL
    assert observations[CHAT].incident is not None
    assert observations[CHAT].incident.status == "scheduled"


# ---------------------------------------------------------------------- what must be unknown


async def test_spa_shell_instead_of_config_is_unknown(status_server: FakeStatusServer) -> None:
    status_server.set_html("/config.json")
    [page] = await check(DatadogSource("openrouter", status_server.url))

    assert page.status is Status.UNKNOWN
    assert page.detail is not None
    assert f"{status_server.url}/config.json" in page.detail
    assert "HTML page instead of JSON" in page.detail


async def test_truncated_config_is_unknown(status_server: FakeStatusServer) -> None:
    body = fixture_bytes(FIXTURE)
    status_server.set_bytes("/config.json", body[: len(body) // 3])
    [chat] = await check(DatadogSource("openrouter", status_server.url, components=[CHAT]))

    assert chat.status is Status.UNKNOWN
    assert chat.detail is not None
    assert f"{status_server.url}/config.json" in chat.detail
    assert "invalid JSON" in chat.detail


@pytest.mark.parametrize(
    ("mutate", "complaint"),
    [
        (lambda p: p.pop("components"), "expected key 'components' (list), found missing"),
        (lambda p: p.update(components=[]), "lists no components"),
        (lambda p: p.update(incidents={"open": 1}), "'incidents' is a dict, expected a list"),
        (lambda p: p["components"][1].pop("id"), "a component without an id"),
    ],
    ids=["no-components", "empty", "incidents-not-a-list", "component-without-id"],
)
async def test_config_missing_what_we_need_is_unknown(
    status_server: FakeStatusServer, mutate: Any, complaint: str
) -> None:
    payload = config()
    mutate(payload)
    status_server.set_json("/config.json", payload)

    [chat] = await check(DatadogSource("openrouter", status_server.url, components=[CHAT]))

    assert chat.status is Status.UNKNOWN
    assert chat.detail is not None
    assert f"{status_server.url}/config.json" in chat.detail
    assert complaint in chat.detail
