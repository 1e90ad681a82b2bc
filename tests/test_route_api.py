"""The routing answer (bot/route_answers.py, bot/route_api.py) over a real socket: a route
group ranked healthy-first, its ETag, and the stream of changes a client keeps a snapshot by."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from aiohttp import web

from bot.models import ComponentState, StateUpdate, Status, utcnow
from bot.route_api import RouteApi, StreamSettings
from bot.server import Health, build_app, start_server
from bot.store import MemoryStore
from config.loader import ConfigError, build_config
from config.schema import TocsinConfig
from tests.chaos import until
from tests.redis_server import free_port

SONNET = "claude-sonnet-4-5"
GROUP = ["anthropic/" + SONNET, "openai", "google-gemini/gemini-2.5-pro"]
HOSTILE = "<!channel> @everyone\n" + "x" * 50_000


@dataclass
class Served:
    url: str
    store: MemoryStore
    runner: web.AppRunner


def config() -> TocsinConfig:
    providers = [
        {"id": p, "status_page": None, "upstreams": []}
        for p in ("anthropic", "openai", "google-gemini")
    ]
    return build_config(
        {"console": {"enabled": False}, "providers": providers, "routes": {"chat": GROUP}}
    )


async def put(
    store: MemoryStore, provider: str, component: str, status: Status, **kw: object
) -> None:
    state = ComponentState(
        provider=provider, component=component, status=status, since=utcnow(), **kw
    )
    await store.apply([StateUpdate(state, status_changed=True)])


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    cfg, store, port = config(), MemoryStore(), free_port()
    await put(store, "anthropic", SONNET, Status.MAJOR_OUTAGE, model=SONNET, detail=HOSTILE)
    await put(store, "openai", "api", Status.OPERATIONAL, latency_ms=230.0)
    runner = await start_server(build_app(cfg, store, Health(store=store)), "127.0.0.1", port)
    yield Served(f"http://127.0.0.1:{port}", store, runner)
    await runner.cleanup()


async def test_a_group_is_ranked_healthy_first(served: Served) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(served.url + "/api/v1/route/chat")
    assert response.status_code == 200
    body = response.json()
    ranked = [(m["target"], m["status"], m["healthy"]) for m in body["members"]]
    assert ranked == [
        ("openai", "operational", True),
        ("google-gemini/gemini-2.5-pro", "unknown", True),  # unknown is fail-open
        ("anthropic/" + SONNET, "major_outage", False),
    ]
    down = body["members"][2]
    assert down["reason"].startswith("<!channel> @everyone x")  # JSON-escaped, one line
    assert len(down["reason"]) <= 300
    assert body["members"][0]["latency_ms"] == 230.0
    assert response.headers["cache-control"] == "max-age=5"


async def test_an_unchanged_group_is_a_304_and_a_change_a_new_etag(served: Served) -> None:
    async with httpx.AsyncClient() as client:
        first = await client.get(served.url + "/api/v1/route/chat")
        etag = first.headers["etag"]
        again = await client.get(served.url + "/api/v1/route/chat", headers={"If-None-Match": etag})
        assert again.status_code == 304
        await put(served.store, "anthropic", SONNET, Status.OPERATIONAL, model=SONNET)
        moved = await client.get(served.url + "/api/v1/route/chat", headers={"If-None-Match": etag})
    assert moved.status_code == 200
    assert moved.headers["etag"] != etag
    assert moved.json()["version"] > first.json()["version"]
    assert moved.json()["members"][0]["target"] == "anthropic/" + SONNET


async def test_an_unknown_group_is_a_404(served: Served) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(served.url + "/api/v1/route/%3Cscript%3E")
    assert response.status_code == 404
    assert response.json() == {"error": "no such route group"}


async def test_the_stream_sends_every_group_then_each_change(served: Served) -> None:
    events: list[dict[str, object]] = []
    async with (
        httpx.AsyncClient(timeout=10) as client,
        client.stream("GET", served.url + "/api/v1/route/stream") as response,
    ):
        assert response.headers["content-type"] == "text/event-stream"
        lines = response.aiter_lines()
        async for line in lines:
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
                break
        await put(served.store, "anthropic", SONNET, Status.OPERATIONAL, model=SONNET)
        async for line in lines:
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
                break
    first, second = events
    assert first["group"] == second["group"] == "chat"
    assert [m["healthy"] for m in first["members"]] == [True, True, False]  # type: ignore[index]
    assert [m["healthy"] for m in second["members"]] == [True, True, True]  # type: ignore[index]


async def test_streams_are_bounded() -> None:
    cfg, store, port = config(), MemoryStore(), free_port()
    api = RouteApi(cfg, store, StreamSettings(max_streams=1))
    app = web.Application()
    app.router.add_routes(api.routes())
    runner = await start_server(app, "127.0.0.1", port)
    url = f"http://127.0.0.1:{port}/api/v1/route/stream"
    try:
        async with httpx.AsyncClient(timeout=10) as client, client.stream("GET", url):
            await until(lambda: api.streams == 1)
            refused = await client.get(url)
            assert refused.status_code == 503
        await until(lambda: api.streams == 0)  # a client gone is noticed, its slot freed
    finally:
        await runner.cleanup()


def test_a_route_group_must_name_watched_providers() -> None:
    with pytest.raises(ConfigError) as caught:
        build_config({"providers": ["anthropic"], "routes": {"chat": ["openai/gpt-5"]}})
    assert "routes.chat[0]: 'openai' is not a watched provider" in str(caught.value)
