"""The apps' traffic as a source: two replicas take signals, the leader reads the sums; end to
end with the real runtime, Redis and the fake Slack."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from bot.models import SourceKind, Status
from bot.sources.traffic import TrafficReader, TrafficSettings, TrafficSource
from bot.store import RedisStore
from config.loader import build_config
from config.schema import TocsinConfig
from tests.chaos import until
from tests.fakes.slack import FakeSlack, Message
from tests.redis_server import RedisServer, free_port
from tests.running import Running
from tests.test_signals import SONNET, TOKEN, calls, serve, signals_config

ALL, ADMIN = "C0ALL00001", "C0ADMIN001"


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    fake = await FakeSlack().start()
    fake.add_channel(ALL, "ai-incidents")
    fake.add_channel(ADMIN, "tocsin-admin")
    yield fake
    await fake.close()


def shown(message: Message) -> str:
    return f"{message.text}\n{message.blocks}\n{message.attachments}"


async def test_two_replicas_take_signals_and_the_leader_sees_the_sum(
    redis_server: RedisServer, key_prefix: str
) -> None:
    config = signals_config(redis_server, key_prefix, min_calls=20)
    one, two = await serve(config), await serve(config)
    leader = RedisStore(redis_server.url, prefix=key_prefix)
    try:
        body = {"signals": calls(20, error_type="overloaded")}
        assert (await one.post("/api/v1/signals", body)).status_code == 202
        assert (await two.post("/api/v1/signals", {"app": "search", **body})).status_code == 202
        ok = {"signals": calls(4, ok=True, status=200)}
        assert (await two.post("/api/v1/signals", ok)).status_code == 202
        reader = TrafficReader(leader, TrafficSettings(min_calls=20), config.provider_ids)
        source = TrafficSource("anthropic", reader, model_names={SONNET: "Claude Sonnet 4.5"})
        async with httpx.AsyncClient() as client:
            [obs] = await source.check(client)
        assert obs.kind is SourceKind.TRAFFIC
        assert (obs.component, obs.model, obs.status) == (SONNET, SONNET, Status.MAJOR_OUTAGE)
        assert obs.source == "anthropic:traffic"
        assert obs.detail is not None
        assert "40 of 44 calls to Claude Sonnet 4.5 failed in the last 60 s" in obs.detail
        assert "529 overloaded" in obs.detail
        assert "checkout" in obs.detail
        assert "search" in obs.detail
    finally:
        for s in (one, two):
            await s.client.aclose()
            await s.runner.cleanup()
            await s.store.close()
        await leader.close()


def runtime_config(
    redis_server: RedisServer, key_prefix: str, slack: FakeSlack, port: int
) -> TocsinConfig:
    providers: list[dict[str, Any]] = [
        {"id": p, "status_page": None, "probe": {"enabled": False}, "upstreams": []}
        for p in ("anthropic", "openai", "google-gemini")
    ]
    return build_config(
        {
            "store": {"url": redis_server.url, "prefix": key_prefix},
            "server": {"host": "127.0.0.1", "port": port},
            "console": {"enabled": False},
            "watch": {"jitter": "0s"},
            "providers": providers,
            "signals": {
                "tokens": [{"name": "checkout", "token": TOKEN}],
                "interval": "300ms",
                "min_calls": 20,
            },
            "slack": {
                "api_url": slack.api_url,
                "bot_token": slack.bot_token,
                "app_token": slack.app_token,
                "admin_channel": ADMIN,
                "channels": [{"id": ALL, "providers": "all", "min_status": "degraded"}],
            },
        }
    )


class App:
    """A running tocsin and an app reporting to it."""

    def __init__(self, running: Running, port: int) -> None:
        self.running = running
        self.client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10)

    async def report(self, body: dict[str, Any]) -> httpx.Response:
        await until(self._listening)
        return await self.client.post(
            "/api/v1/signals", json=body, headers={"Authorization": f"Bearer {TOKEN}"}
        )

    async def _listening(self) -> bool:
        try:
            await self.client.get("/healthz")
        except httpx.TransportError:
            return False
        return True

    async def traffic_rounds(self, key: str, rounds: int = 4) -> None:
        """Wait until the leader's traffic source read ``key`` a few more times."""
        store = self.running.runtime.store
        seen: set[object] = set()

        async def more() -> bool:
            state = (await store.states()).get(key)
            if state is not None and state.checked_at is not None:
                seen.add(state.checked_at)
            return len(seen) >= rounds

        await until(more)


@pytest.fixture
async def app(redis_server: RedisServer, key_prefix: str, slack: FakeSlack) -> AsyncIterator[App]:
    port = free_port()
    running = Running(runtime_config(redis_server, key_prefix, slack, port))
    reporting = App(running, port)
    yield reporting
    await reporting.client.aclose()
    await running.halt()


async def test_an_app_seeing_a_model_fail_is_one_suspected_notice(
    app: App, slack: FakeSlack
) -> None:
    body = {"signals": calls(37, error_type="overloaded") + calls(3, ok=True, status=200)}
    assert (await app.report(body)).json() == {"accepted": 40, "rejected": 0}
    await until(lambda: len(slack.top_level(ALL)) == 1)
    await app.traffic_rounds(f"anthropic/{SONNET}")
    [root] = slack.top_level(ALL)
    text = shown(root)
    assert "your app" in text
    assert "suspected from your app's traffic" in text  # who saw it, in the Detection field
    assert "Claude Sonnet 4.5" in text
    assert "37 of 40 calls" in text
    assert "529 overloaded" in text
    assert "suspected" in text.lower()
    assert slack.replies(ALL, root.ts) == []  # one notice, nothing repeated
    assert slack.top_level(ADMIN) == []
    state = (await app.running.runtime.store.states())[f"anthropic/{SONNET}"]
    assert state.status is Status.MAJOR_OUTAGE
    assert not state.confirmed
    assert state.model == SONNET


async def test_rate_limiting_only_is_no_notice(app: App, slack: FakeSlack) -> None:
    body = {"signals": calls(40, status=429, error_type="rate_limit_error")}
    assert (await app.report(body)).status_code == 202
    key = f"anthropic/{SONNET}"
    await app.traffic_rounds(key)
    state = (await app.running.runtime.store.states())[key]
    assert state.status is Status.OPERATIONAL
    events = await app.running.runtime.store.recent_events()
    assert [e for e in events if e.provider == "anthropic"] == []
    assert slack.top_level(ALL) == []


async def test_one_app_failing_everywhere_is_one_admin_notice(app: App, slack: FakeSlack) -> None:
    failing = []
    for provider, model in (
        ("anthropic", SONNET),
        ("openai", "gpt-5"),
        ("google-gemini", "gemini-2.5-flash"),
    ):
        failing += [
            {"provider": provider, "model": model, "ok": False, "error_type": "ConnectError"}
        ] * 30
    assert (await app.report({"signals": failing})).json()["accepted"] == 90
    await until(lambda: len(slack.top_level(ADMIN)) == 1)
    await app.traffic_rounds("tocsin/app:checkout")
    [notice] = slack.top_level(ADMIN)
    text = shown(notice)
    assert "checkout" in text
    assert "network" in text
    assert slack.top_level(ADMIN) == [notice]
    assert slack.top_level(ALL) == []
    states = await app.running.runtime.store.states()
    assert not [k for k in states if k.startswith(("anthropic/", "openai/", "google-gemini/"))]


async def test_the_token_is_never_logged_nor_stored(
    app: App,
    slack: FakeSlack,
    redis_server: RedisServer,
    key_prefix: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sneaky = [
        {"provider": "anthropic", "model": TOKEN, "ok": False, "status": 529},
        {"provider": "anthropic", "model": SONNET, "ok": False, "error_type": TOKEN},
    ]
    answer = await app.report({"signals": sneaky + calls(25)})
    assert answer.json() == {"accepted": 25, "rejected": 2}
    assert (await app.report({"app": TOKEN, "signals": calls(1)})).status_code == 400
    wrong = await app.client.post(
        "/api/v1/signals", json={"signals": []}, headers={"Authorization": f"Bearer {TOKEN}x"}
    )
    assert wrong.status_code == 401
    await until(lambda: len(slack.top_level(ALL)) == 1)
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        keys = [k async for k in client.scan_iter(match=f"{key_prefix}*")]
        assert keys
        for key in keys:
            assert TOKEN.encode() not in key
            kind = (await client.type(key)).decode()
            if kind == "hash":
                dump = str(await client.hgetall(key))
            elif kind == "string":
                dump = str(await client.get(key))
            elif kind == "set":
                dump = str(await client.smembers(key))
            elif kind == "stream":
                dump = str(await client.xrange(key))
            else:
                dump = ""
            assert TOKEN not in dump
    finally:
        await client.aclose()
    out = capsys.readouterr()
    assert TOKEN not in out.out + out.err
    assert all(TOKEN not in shown(m) for m in slack.messages(ALL))
