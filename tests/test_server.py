"""Health, readiness, metrics, the JSON API and the dashboard, over real HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bot.app import Runtime, assemble, run
from bot.models import ComponentState, Event, Incident, StateUpdate, Status
from bot.store import MemoryStore, RedisStore, Store
from config.loader import build_config
from config.schema import TocsinConfig
from tests.chaos import TocsinProcess, until
from tests.redis_server import RedisServer, free_port


def _config(port: int) -> TocsinConfig:
    return build_config(
        {
            "server": {"host": "127.0.0.1", "port": port},
            "console": {"enabled": False},
            "providers": [
                {
                    "id": "acme",
                    "name": "Acme AI",
                    "probe": {"url": "http://127.0.0.1:9/v1/models", "interval": "1h"},
                },
                {
                    "id": "zeta",
                    "name": "Zeta AI",
                    "probe": {"url": "http://127.0.0.1:9/v1/models", "interval": "1h"},
                },
            ],
        }
    )


async def _serving(store: Store) -> tuple[Runtime, asyncio.Event, asyncio.Task[None], str]:
    port = free_port()
    runtime = assemble(_config(port), "notifier", store=store, targets=[], env={})
    stop = asyncio.Event()
    task = asyncio.create_task(run(runtime, stop))
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient() as client:
        for _ in range(100):
            try:
                await client.get(f"{base}/healthz")
                break
            except httpx.TransportError:
                await asyncio.sleep(0.05)
    return runtime, stop, task, base


@pytest.fixture
async def served() -> AsyncIterator[tuple[Store, str]]:
    store = MemoryStore()
    _, stop, task, base = await _serving(store)
    yield store, base
    stop.set()
    await task


async def test_health_metrics_and_dashboard(served: tuple[Store, str]) -> None:
    _, base = served
    async with httpx.AsyncClient(base_url=base) as client:
        health = (await client.get("/healthz")).json()
        assert health["status"] == "ok"
        assert health["role"] == "notifier"
        assert (await client.get("/readyz")).status_code == 200
        metrics = await client.get("/metrics")
        assert metrics.status_code == 200
        assert "tocsin_deliveries_total" in metrics.text
        assert "tocsin_checks_total" in metrics.text
        page = await client.get("/")
        assert page.headers["content-type"].startswith("text/html")
        assert "api/status.json" in page.text


async def test_status_and_events_json_answer_from_the_store(served: tuple[Store, str]) -> None:
    store, base = served
    incident = Incident(
        id="inc1", title="Elevated errors", status="investigating", update="Looking into it"
    )
    down = ComponentState(
        provider="acme",
        component="api",
        name="API",
        status=Status.MAJOR_OUTAGE,
        confirmed=True,
        incident=incident,
    )
    event = Event(
        type="state_changed",
        provider="acme",
        component="api",
        from_=Status.OPERATIONAL,
        to=Status.MAJOR_OUTAGE,
    )
    await store.apply([StateUpdate(down, event, status_changed=True)])
    async with httpx.AsyncClient(base_url=base) as client:
        status = (await client.get("/api/status.json")).json()
        events = (await client.get("/api/events.json", params={"count": 5})).json()
        bad = await client.get("/api/events.json", params={"count": "lots"})
    by_id = {p["id"]: p for p in status["providers"]}
    assert by_id["acme"]["status"] == "major_outage"
    assert by_id["acme"]["confirmed"] is True
    assert by_id["acme"]["incident"]["title"] == "Elevated errors"
    assert by_id["zeta"]["status"] == "unknown"
    assert by_id["zeta"]["components"] == []
    assert [e["id"] for e in events["events"]] == [event.id]
    assert events["events"][0]["from"] == "operational"
    assert bad.status_code == 400


async def test_readiness_reports_an_unreachable_store(own_redis: RedisServer) -> None:
    store = RedisStore(own_redis.url)
    _, stop, task, base = await _serving(store)
    async with httpx.AsyncClient(base_url=base) as client:
        assert (await client.get("/readyz")).status_code == 200
        own_redis.kill()
        ready = await client.get("/readyz")
        health = await client.get("/healthz")
        own_redis.start()
        again = await client.get("/readyz")
    stop.set()
    await task
    assert ready.status_code == 503
    assert ready.json()["status"] == "degraded: store unreachable"
    assert health.status_code == 200
    assert health.json()["store"] == "unreachable"
    assert again.status_code == 200


async def test_a_replica_started_before_redis_answers_health_and_waits(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    """Redis comes up after tocsin (compose, a rolling restart): tocsin is alive and says
    what it waits for; reads answer 503, not a traceback; then it carries on."""
    own_redis.kill()
    config = {"store": {"url": own_redis.url}, "providers": [], "console": {"enabled": False}}
    replica = await TocsinProcess(tmp_path, "early", config).start()
    try:
        await replica.wait_healthy()
        health = await replica.health()
        assert health is not None
        assert health["status"] == "degraded: store unreachable"
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{replica.port}") as client:
            assert (await client.get("/readyz")).status_code == 503
            status = await client.get("/api/status.json")
            assert status.status_code == 503
            assert status.json()["error"] == "store unreachable"
            own_redis.start()

            async def ready() -> bool:
                return (await client.get("/readyz")).status_code == 200

            await until(ready, timeout=20)
            assert (await client.get("/api/status.json")).status_code == 200
    finally:
        assert await replica.stop() == 0, replica.log()
    assert "Traceback" not in replica.log()
