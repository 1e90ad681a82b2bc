"""Health, readiness, metrics, the JSON API and the dashboard, over real HTTP."""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from bot import logs
from bot.app import Runtime, assemble, run
from bot.models import ComponentState, Event, EventIncident, Incident, StateUpdate, Status
from bot.server import CONTENT_SECURITY_POLICY, Health, build_app, start_server
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
        assert '<script src="static/dashboard.js"' in page.text
        script = await client.get("/static/dashboard.js")
        assert script.headers["content-type"].startswith("text/javascript")
        assert "api/status.json" in script.text


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


# -- what the listener tells browsers, and what it never tells anyone --------------------------

HOSTILE_URL = 'javascript:alert(1)//" onmouseover="alert(2)"'
SAFE_URL = "https://status.acme.example/incidents/inc2"


async def _hostile_incidents(store: Store) -> None:
    """One component whose incident links to ``javascript:``, one with a real page."""
    for component, incident_id, url in (("api", "inc1", HOSTILE_URL), ("chat", "inc2", SAFE_URL)):
        incident = Incident(id=incident_id, title=f"Trouble {component}", url=url)
        state = ComponentState(
            provider="acme" if component == "api" else "zeta",
            component=component,
            status=Status.MAJOR_OUTAGE,
            incident=incident,
        )
        event = Event(
            type="state_changed",
            provider=state.provider,
            component=component,
            to=Status.MAJOR_OUTAGE,
            incident=EventIncident.of(incident),
        )
        await store.apply([StateUpdate(state, event, status_changed=True)])


async def test_every_answer_carries_the_security_headers(served: tuple[Store, str]) -> None:
    _, base = served
    paths = [
        "/",
        "/static/dashboard.js",
        "/static/dashboard.css",
        "/healthz",
        "/metrics",
        "/api/status.json",
        "/api/events.json?count=lots",  # a 400
        "/no/such/page",  # a 404
    ]
    async with httpx.AsyncClient(base_url=base) as client:
        answers = {path: await client.get(path) for path in paths}
        wrong_method = await client.post("/healthz")
    assert answers["/api/events.json?count=lots"].status_code == 400
    assert answers["/no/such/page"].status_code == 404
    assert wrong_method.status_code == 405
    for path, answer in [*answers.items(), ("POST /healthz", wrong_method)]:
        assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY, path
        assert answer.headers["x-content-type-options"] == "nosniff", path
        assert answer.headers["referrer-policy"] == "no-referrer", path
    policy = dict(part.strip().split(" ", 1) for part in CONTENT_SECURITY_POLICY.split(";"))
    assert policy["script-src"] == policy["style-src"] == "'self'"  # no 'unsafe-inline'
    assert policy["default-src"] == policy["base-uri"] == policy["frame-ancestors"] == "'none'"
    assert answers["/static/dashboard.js"].headers["content-type"].startswith("text/javascript")
    assert answers["/static/dashboard.css"].headers["content-type"].startswith("text/css")


async def test_the_page_has_no_inline_script_or_style(served: tuple[Store, str]) -> None:
    """The policy allows only files from tocsin: an inline one would not run, so none is there."""
    _, base = served
    async with httpx.AsyncClient(base_url=base) as client:
        page = (await client.get("/")).text
    assert re.findall(r"<script\b[^>]*>", page) == ['<script src="static/dashboard.js" defer>']
    assert "<style" not in page
    assert " style=" not in page
    assert not re.search(r"\son[a-z]+=", page)  # no inline event handlers either


async def test_the_api_shows_only_http_links(served: tuple[Store, str]) -> None:
    """What the store holds came from a status page (or from anyone who can write to Redis):
    a ``javascript:`` link is dropped from the answer, a real one kept."""
    store, base = served
    await _hostile_incidents(store)
    async with httpx.AsyncClient(base_url=base) as client:
        status = (await client.get("/api/status.json")).json()
        events = (await client.get("/api/events.json")).json()
    by_id = {p["id"]: p for p in status["providers"]}
    assert by_id["acme"]["incident"]["url"] is None
    assert by_id["acme"]["incident"]["title"] == "Trouble api"  # the rest of it is kept
    assert by_id["zeta"]["incident"]["url"] == SAFE_URL
    urls = {e["component"]: e["incident"]["url"] for e in events["events"]}
    assert urls == {"api": None, "chat": SAFE_URL}
    assert "javascript" not in str(status) + str(events)


async def test_an_unreachable_store_is_a_503_that_names_no_address() -> None:
    """The Redis host and port are for the operator's log, not for whoever asks."""
    out = io.StringIO()
    logs.configure("info", "json", stream=out)
    closed = free_port()  # nothing listens there
    store = RedisStore(f"redis://127.0.0.1:{closed}/0")
    port = free_port()
    runner = await start_server(
        build_app(_config(port), store, Health(store=store)), "127.0.0.1", port
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            status = await client.get("/api/status.json")
            events = await client.get("/api/events.json")
    finally:
        await runner.cleanup()
        await store.close()
    for answer in (status, events):
        assert answer.status_code == 503
        assert answer.json() == {"error": "store unreachable"}
        assert str(closed) not in answer.text
        assert "127.0.0.1" not in answer.text
    logged = [line for line in out.getvalue().splitlines() if "store, which is unreachable" in line]
    assert len(logged) == 2
    assert all(f"127.0.0.1:{closed}" in line for line in logged)


async def test_a_failing_handler_is_a_short_500_and_one_log_line() -> None:
    """Whatever a handler raises, the caller learns only that it failed."""
    out = io.StringIO()
    logs.configure("info", "json", stream=out)

    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("internal detail: /srv/tocsin/state.db at 10.0.0.7:7000\n" * 1000)

    store = MemoryStore()
    port = free_port()
    app = build_app(_config(port), store, Health(store=store), [("GET", "/broken", broken)])
    runner = await start_server(app, "127.0.0.1", port)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            failed = await client.get("/broken")
            health = await client.get("/healthz")
    finally:
        await runner.cleanup()
    assert failed.status_code == 500
    assert failed.json() == {"error": "internal error"}
    assert failed.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert health.status_code == 200
    lines = out.getvalue().splitlines()
    [line] = [line for line in lines if "a request failed" in line]
    assert "RuntimeError: internal detail" in line
    assert "test_server.py" in line  # where it was raised, for whoever reads the log
    assert len(line) < 1000  # one bounded line, not the 57,000 characters of the message
    assert "Traceback" not in out.getvalue()
