"""End to end through the real pipeline: a fake status page and API on loopback, the watcher
(apscheduler), the tracker, a real redis-server, the dispatcher and the console. A page that
switches payloads mid-test drives outage → update → recovery; a restart in the middle changes
none of it."""

from __future__ import annotations

import asyncio
import copy
import io
import time
from collections.abc import Callable
from typing import Any

import pytest
from rich.console import Console

from bot.app import Runtime, assemble, run
from bot.models import Status
from bot.notifier import Intent, Target
from bot.store import RedisStore
from config.loader import build_config
from config.schema import TocsinConfig
from handlers.console import targets as console_targets
from tests.fakes.recording import RecordingNotifier
from tests.fakes.status_server import FakeStatusServer, fixture_json
from tests.redis_server import RedisServer

API = "k8w3r06qmzrp"
SUMMARY = "/api/v2/summary.json"
MODELS = "/v1/models"


def _config(server: FakeStatusServer, prefix: str, url: str) -> TocsinConfig:
    return build_config(
        {
            "store": {"url": url, "prefix": prefix},
            "server": {"enabled": False},
            "instance": "pipeline-test",
            "watch": {"jitter": "0s", "timeout": "2s"},
            "providers": [
                {
                    "id": "acme",
                    "name": "Acme AI",
                    "status_page": {
                        "kind": "statuspage",
                        "url": server.url,
                        "components": [API],
                        "interval": "300ms",
                    },
                    "probe": {"url": f"{server.url}{MODELS}", "interval": "300ms", "timeout": "1s"},
                }
            ],
        }
    )


def _outage(status: str, updates: int) -> dict[str, Any]:
    """The real fixture's incident, moved onto the API component with its first updates."""
    payload = copy.deepcopy(fixture_json("statuspage_summary_anthropic_minor_monitoring.json"))
    incident = payload["incidents"][0]
    incident["components"][0]["id"] = API
    incident["status"] = status
    incident["incident_updates"] = incident["incident_updates"][-updates:]
    for component in payload["components"]:
        if component["id"] == API:
            component["status"] = "major_outage"
    return payload


class Pipeline:
    def __init__(self, config: TocsinConfig, targets: list[Target]) -> None:
        assert config.store.url
        url = config.store.url.get_secret_value()
        self.store = RedisStore(url, prefix=config.store.prefix)
        self.runtime: Runtime = assemble(config, "all", store=self.store, targets=targets, env={})
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> Pipeline:
        self.task = asyncio.create_task(run(self.runtime, self.stop))
        return self

    async def halt(self) -> None:
        self.stop.set()
        assert self.task is not None
        await asyncio.wait_for(self.task, 15)


async def _until(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the pipeline")
        await asyncio.sleep(0.05)


@pytest.fixture
def world(
    status_server: FakeStatusServer, redis_server: RedisServer, key_prefix: str
) -> tuple[FakeStatusServer, TocsinConfig]:
    status_server.set_fixture(SUMMARY, "statuspage_summary_anthropic_operational.json", etag=True)
    status_server.set_json(MODELS, {"data": []})
    return status_server, _config(status_server, key_prefix, redis_server.url)


async def test_outage_update_recovery_survives_a_restart(
    world: tuple[FakeStatusServer, TocsinConfig],
) -> None:
    server, config = world
    platform = RecordingNotifier()
    screen = io.StringIO()
    console = Console(file=screen, width=100, force_terminal=False)

    def targets() -> list[Target]:
        return [platform.target("chat:C1"), *console_targets(config, console=console)]

    first = await Pipeline(config, targets()).start()
    await asyncio.sleep(1.2)  # several healthy rounds: a healthy start says nothing
    assert platform.posts == []

    server.set_status(MODELS, 503, b'{"error": "overloaded"}')
    await _until(lambda: len(platform.posts) == 1)
    opening = platform.posts[0]
    assert opening.intent is Intent.OPEN
    assert opening.title == "Acme AI: major outage (suspected)"

    server.set_json(SUMMARY, _outage("investigating", 1))
    await _until(lambda: len(platform.posts) == 2)
    confirmed = platform.posts[1]
    assert (confirmed.intent, confirmed.thread_ts) == (Intent.UPDATE, opening.ts)
    assert "confirmed by the status page" in confirmed.text

    await first.halt()  # a restart in the middle of the outage
    second = await Pipeline(config, targets()).start()
    await asyncio.sleep(1.2)
    assert len(platform.posts) == 2, "a restarted tocsin must not announce the outage again"

    server.set_json(SUMMARY, _outage("identified", 3))
    await _until(lambda: len(platform.posts) == 3)
    update = platform.posts[2]
    assert (update.intent, update.thread_ts) == (Intent.UPDATE, opening.ts)
    assert update.text.startswith("We've identified the cause")

    server.set_json(MODELS, {"data": []})
    await asyncio.sleep(1.0)  # probes recover; the page still reports the outage
    assert len(platform.posts) == 3
    resolved = copy.deepcopy(_outage("resolved", 4)["incidents"][0])
    resolved["incident_updates"].insert(
        0,
        {
            "id": "done1",
            "status": "resolved",
            "body": "This incident has been resolved.",
            "created_at": "2026-10-08T01:00:00Z",
        },
    )
    server.set_json("/api/v2/incidents.json", {"incidents": [resolved]})
    server.set_fixture(SUMMARY, "statuspage_summary_anthropic_operational.json")
    await _until(lambda: len(platform.posts) == 4)
    recovery = platform.posts[3]
    assert (recovery.intent, recovery.thread_ts) == (Intent.RESOLVE, opening.ts)
    assert recovery.title == "Acme AI: recovered"
    await asyncio.sleep(0.8)
    await second.halt()

    assert [p.intent for p in platform.posts] == [
        Intent.OPEN,
        Intent.UPDATE,
        Intent.UPDATE,
        Intent.RESOLVE,
    ]
    assert len({p.event_id for p in platform.posts}) == 4
    assert platform.edits[-1][2].startswith("Resolved: Acme AI")
    text = screen.getvalue()
    assert "Acme AI: major outage (suspected)" in text
    assert "Acme AI: recovered" in text
    assert config.store.url
    store = RedisStore(config.store.url.get_secret_value(), prefix=config.store.prefix)
    states = await store.states()
    await store.close()
    assert states[f"acme/{API}"].status is Status.OPERATIONAL
    assert states[f"acme/{API}"].episode is None
