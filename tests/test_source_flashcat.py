"""The Flashcat source against DeepSeek's real summary/active answer, over real HTTP.

The captured answer has no active changes, so the changes here are built on the shape a
public parser of this API reads (``change_id``, ``status``, ``affected_components``,
``updates[].component_changes``...); the source reads that shape defensively.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import httpx
import pytest

from bot.models import Observation, Status
from bot.sources.flashcat import FlashcatSource
from tests.fakes.status_server import FakeStatusServer, fixture_bytes, fixture_json

FIXTURE = "flashcat_active_deepseek_operational.json"
PAGE_ID = "6410630422455"
PATH = f"/api/status-page/{PAGE_ID}/summary/active"
PRO = "01KY4MVS8BM3F9JSYWACGQVG7A"  # DeepSeek V4 Pro API服务(API Service)
FLASH = "01KY4MVS8BSBSVW6053QJ37RJE"  # DeepSeek V4 Flash API服务(API Service)
PRO_NAME = "DeepSeek V4 Pro API服务(API Service)"
BILINGUAL = "我们正在调查 API 错误。\n\nWe are investigating elevated API errors."


async def check(source: FlashcatSource) -> list[Observation]:
    async with httpx.AsyncClient() as client:
        return await source.check(client)


def by_component(observations: list[Observation]) -> dict[str, Observation]:
    return {o.component: o for o in observations}


def source_for(server: FakeStatusServer, *components: str) -> FlashcatSource:
    return FlashcatSource(
        "deepseek", server.url, components=list(components) or None, options={"page_id": PAGE_ID}
    )


def summary(*changes: dict[str, Any]) -> Any:
    payload = copy.deepcopy(fixture_json(FIXTURE))
    payload["data"]["active_changes"] = list(changes)
    return payload


def update(update_id: str, at: int, status: str, text: str, pro: str) -> dict[str, Any]:
    return {
        "update_id": update_id,
        "at_seconds": at,
        "status": status,
        "description": text,
        "component_changes": [{"component_id": PRO, "component_name": PRO_NAME, "status": pro}],
    }


def change(status: str, updates: list[dict[str, Any]], *, start: int) -> dict[str, Any]:
    return {
        "change_id": 7788001,
        "type": "incident",
        "title": "DeepSeek V4 Pro API errors",
        "status": status,
        "affected_components": [{"component_id": PRO, "name": PRO_NAME, "status": "degraded"}],
        "start_at_seconds": start,
        "updates": updates,
    }


# ------------------------------------------------------------------------- real payload


async def test_deepseek_active_summary_is_operational(status_server: FakeStatusServer) -> None:
    status_server.set_fixture(PATH, FIXTURE)

    observations = by_component(await check(source_for(status_server)))

    assert status_server.count(PATH) == 1
    assert len(observations) == 8
    assert {o.status for o in observations.values()} == {Status.OPERATIONAL}
    assert observations[PRO].component_name == PRO_NAME
    assert all(o.incident is None for o in observations.values())


async def test_null_active_changes_means_none(status_server: FakeStatusServer) -> None:
    payload = summary()
    payload["data"]["active_changes"] = None  # how a Go backend writes an empty list
    status_server.set_json(PATH, payload)

    [pro] = await check(source_for(status_server, PRO))

    assert pro.status is Status.OPERATIONAL


async def test_missing_page_id_is_unknown_with_a_hint(status_server: FakeStatusServer) -> None:
    status_server.set_fixture(PATH, FIXTURE)
    source = FlashcatSource("deepseek", status_server.url, components=[PRO])

    [pro] = await check(source)

    assert pro.status is Status.UNKNOWN
    assert pro.detail is not None
    assert status_server.url in pro.detail
    assert "options.page_id is required" in pro.detail
    assert status_server.count(PATH) == 0


# --------------------------------------------------------------- outage, update, recovery


async def test_change_from_outage_through_update_to_recovery(
    status_server: FakeStatusServer,
) -> None:
    now = int(time.time())
    source = source_for(status_server, PRO, FLASH)
    first = update("u1", now - 600, "investigating", BILINGUAL, "partial_outage")
    second = update("u2", now - 300, "identified", "The cause is found; fixing.", "full_outage")

    status_server.set_json(PATH, summary(change("investigating", [first], start=now - 600)))
    observations = by_component(await check(source))
    pro = observations[PRO]
    assert pro.status is Status.PARTIAL_OUTAGE  # its component_changes outrank affected_components
    assert pro.incident is not None
    assert pro.incident.id == "7788001"
    assert pro.incident.title == "DeepSeek V4 Pro API errors"
    assert pro.incident.status == "investigating"
    assert pro.incident.update == BILINGUAL  # both halves, as the page shows them
    assert pro.incident.update_id == "u1"
    assert pro.incident.impact is Status.PARTIAL_OUTAGE
    assert observations[FLASH].status is Status.OPERATIONAL
    assert observations[FLASH].incident is None

    status_server.set_json(PATH, summary(change("identified", [second, first], start=now - 600)))
    pro = by_component(await check(source))[PRO]
    assert pro.status is Status.MAJOR_OUTAGE
    assert pro.incident is not None
    assert pro.incident.status == "identified"
    assert pro.incident.update == "The cause is found; fixing."
    assert pro.incident.update_id == "u2"

    status_server.set_json(PATH, summary())  # the change leaves the active list
    pro = by_component(await check(source))[PRO]
    assert pro.status is Status.OPERATIONAL
    assert pro.incident is not None
    assert pro.incident.id == "7788001"
    assert pro.incident.status == "resolved"
    assert pro.incident.update == "No longer listed on the status page."

    pro = by_component(await check(source))[PRO]
    assert pro.status is Status.OPERATIONAL
    assert pro.incident is None  # told once


async def test_change_naming_a_component_without_status_is_degraded(
    status_server: FakeStatusServer,
) -> None:
    bare = {
        "change_id": 1,
        "title": "Slow answers",
        "status": "investigating",
        "affected_components": [{"component_id": FLASH}],
    }
    status_server.set_json(PATH, summary(bare))

    observations = by_component(await check(source_for(status_server, PRO, FLASH)))

    assert observations[FLASH].status is Status.DEGRADED
    assert observations[FLASH].incident is not None
    assert observations[FLASH].incident.title == "Slow answers"
    assert observations[PRO].status is Status.OPERATIONAL


async def test_change_naming_no_component_touches_all(status_server: FakeStatusServer) -> None:
    status_server.set_json(PATH, summary({"change_id": 2, "title": "Login trouble"}))

    observations = await check(source_for(status_server))

    assert len(observations) == 8
    assert {o.status for o in observations} == {Status.DEGRADED}


async def test_maintenance_change(status_server: FakeStatusServer) -> None:
    now = int(time.time())
    planned = {
        "change_id": 3,
        "type": "maintenance",
        "title": "Network upgrade",
        "status": "in_progress",
        "start_at_seconds": now - 60,
        "affected_components": [{"component_id": FLASH, "status": "maintenance"}],
    }
    status_server.set_json(PATH, summary(planned))

    [flash] = await check(source_for(status_server, FLASH))

    assert flash.status is Status.MAINTENANCE
    assert flash.incident is not None
    assert flash.incident.maintenance


# ---------------------------------------------------------------------- what must be unknown


async def test_html_page_is_unknown(status_server: FakeStatusServer) -> None:
    status_server.set_html(PATH)
    [pro] = await check(source_for(status_server, PRO))

    assert pro.status is Status.UNKNOWN
    assert pro.detail is not None
    assert f"{status_server.url}{PATH}" in pro.detail
    assert "HTML page instead of JSON" in pro.detail


async def test_truncated_answer_is_unknown(status_server: FakeStatusServer) -> None:
    body = fixture_bytes(FIXTURE)
    status_server.set_bytes(PATH, body[: len(body) // 2])
    [pro] = await check(source_for(status_server, PRO))

    assert pro.status is Status.UNKNOWN
    assert pro.detail is not None
    assert f"{status_server.url}{PATH}" in pro.detail
    assert "invalid JSON" in pro.detail


@pytest.mark.parametrize(
    ("mutate", "complaint"),
    [
        (lambda p: p["data"].pop("page"), "expected key 'page' (dict), found missing"),
        (lambda p: p["data"]["page"].pop("components"), "expected key 'components' (list)"),
        (lambda p: p["data"].pop("active_changes"), "expected key 'active_changes'"),
        (lambda p: p["data"]["page"].update(components=[]), "lists no components"),
        (
            lambda p: p.update(data=None, error={"code": "NotFound", "message": "no page"}),
            "answered with an error",
        ),
    ],
    ids=["no-page", "no-components", "no-active-changes", "empty", "error"],
)
async def test_answer_missing_what_we_need_is_unknown(
    status_server: FakeStatusServer, mutate: Any, complaint: str
) -> None:
    payload = summary()
    mutate(payload)
    status_server.set_json(PATH, payload)

    [pro] = await check(source_for(status_server, PRO))

    assert pro.status is Status.UNKNOWN
    assert pro.detail is not None
    assert f"{status_server.url}{PATH}" in pro.detail
    assert complaint in pro.detail
