"""Vantage points and a quorum (issue 17) with two real ``tocsin run`` processes, vantages
``a`` and ``b``, on the suite's redis-server, ``watch.quorum: 2``, one probed provider on the
fake status server (listening on 127.0.0.2, outside ``NO_PROXY``) and the fake Slack.

* ``b`` cut off from the providers (``ALL_PROXY`` at a closed port: httpx honours it, Slack's
  client and Redis do not use it): no outage notice, one admin notice naming ``b``;
* the provider really fails (503 for both): exactly one outage notice.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from bot.vantage import TABLE, VantageResult, read_results
from tests.chaos import TocsinProcess, until
from tests.fakes.slack import FakeSlack
from tests.fakes.status_server import FakeStatusServer
from tests.redis_server import RedisServer, free_port

pytestmark = pytest.mark.chaos

CHANNEL = "C0VANTAGE01"
ADMIN = "C0VANTADM01"
PATH = "/acme/v1/models"


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    fake = await FakeSlack().start()
    fake.add_channel(CHANNEL, "ai-incidents")
    fake.add_channel(ADMIN, "tocsin-admins")
    yield fake
    await fake.close()


@pytest.fixture
async def providers() -> AsyncIterator[FakeStatusServer]:
    server = await FakeStatusServer(host="127.0.0.2").start()
    server.set_json(PATH, {"data": []})
    yield server
    await server.close()


def _config(
    redis: RedisServer, prefix: str, slack: FakeSlack, server: FakeStatusServer, vantage: str
) -> dict[str, Any]:
    return {
        "vantage": vantage,
        "store": {"url": redis.url, "prefix": prefix, "lease": "3s"},
        "console": {"enabled": False},
        "watch": {"jitter": "0s", "quorum": 2, "quorum_window": "5s"},
        "providers": [
            {
                "id": "acme",
                "name": "Acme AI",
                "fallbacks": [],
                "probe": {"url": f"{server.url}{PATH}", "interval": "500ms", "timeout": "1s"},
            }
        ],
        "slack": {
            "api_url": slack.api_url,
            "bot_token": slack.bot_token,
            "channels": [{"id": CHANNEL}],
            "admin_channel": ADMIN,
        },
    }


async def _results(redis: RedisServer, prefix: str) -> dict[str, VantageResult]:
    client = aioredis.Redis.from_url(redis.url, decode_responses=True)
    try:
        raw = await client.hgetall(f"{prefix}table:{TABLE}")
    finally:
        await client.aclose()
    return {r.vantage: r for r in read_results(raw)}


async def _leader(replica: TocsinProcess) -> bool:
    health = await replica.health()
    return bool(health and health.get("leader"))


def _report(replicas: list[TocsinProcess]) -> str:
    return "\n".join(f"--- {r.name}\n{r.log()[-3000:]}" for r in replicas)


@pytest.mark.timeout(90)
async def test_a_vantage_cut_off_sends_no_outage_notice_and_one_admin_notice_naming_it(
    redis_server: RedisServer,
    key_prefix: str,
    slack: FakeSlack,
    providers: FakeStatusServer,
    tmp_path: Path,
) -> None:
    """``b`` leads (its own probes fail, ``a``'s witness sees the provider fine): the tracker
    sees operational results, the admins hear that ``b`` is the suspect."""
    closed = f"http://127.0.0.1:{free_port()}"
    cut = TocsinProcess(
        tmp_path,
        "b",
        _config(redis_server, key_prefix, slack, providers, "b"),
        env={"ALL_PROXY": closed, "all_proxy": closed},
    )
    fine = TocsinProcess(tmp_path, "a", _config(redis_server, key_prefix, slack, providers, "a"))
    replicas = [cut, fine]
    try:
        await cut.start_healthy()
        await until(lambda: _leader(cut))
        await fine.start_healthy()
        await until(lambda: bool(slack.top_level(ADMIN)), timeout=30)
        (notice,) = slack.top_level(ADMIN)
        assert "vantage b sees failures the others do not: Acme AI" in notice.text, notice.text

        # Both vantages keep checking well past the notice: still no outage notice.
        seen = await _results(redis_server, key_prefix)
        marks = {v: r.at for v, r in seen.items()}
        assert set(marks) == {"a", "b"}

        async def checked_again() -> bool:
            now = await _results(redis_server, key_prefix)
            return all(now[v].at > marks[v] for v in marks) and now["b"].failing

        for _ in range(4):
            await until(checked_again)
            marks = {v: r.at for v, r in (await _results(redis_server, key_prefix)).items()}
        assert not (await _results(redis_server, key_prefix))["a"].failing
        assert await _leader(cut)
    finally:
        codes = [await r.stop() for r in replicas]
    assert codes == [0, 0], _report(replicas)
    assert slack.top_level(CHANNEL) == [], [m.text for m in slack.top_level(CHANNEL)]
    assert len(slack.top_level(ADMIN)) == 1, [m.text for m in slack.top_level(ADMIN)]
    assert slack.violations == []


@pytest.mark.timeout(90)
async def test_a_provider_failing_from_both_vantages_is_announced_once(
    redis_server: RedisServer,
    key_prefix: str,
    slack: FakeSlack,
    providers: FakeStatusServer,
    tmp_path: Path,
) -> None:
    first = TocsinProcess(tmp_path, "a", _config(redis_server, key_prefix, slack, providers, "a"))
    second = TocsinProcess(tmp_path, "b", _config(redis_server, key_prefix, slack, providers, "b"))
    replicas = [first, second]
    try:
        await first.start_healthy()
        await until(lambda: _leader(first))
        await second.start_healthy()

        async def both_fine() -> bool:
            now = await _results(redis_server, key_prefix)
            return set(now) == {"a", "b"} and not any(r.failing for r in now.values())

        await until(both_fine)
        providers.set_status(PATH, 503)
        await until(lambda: bool(slack.top_level(CHANNEL)), timeout=30)
        (outage,) = slack.top_level(CHANNEL)
        assert "Acme AI" in outage.text, outage.text

        # both vantages keep failing for several more rounds: still one notice
        marks = {v: r.at for v, r in (await _results(redis_server, key_prefix)).items()}

        async def failed_again() -> bool:
            now = await _results(redis_server, key_prefix)
            return all(now[v].at > marks[v] and now[v].failing for v in marks)

        for _ in range(4):
            await until(failed_again)
            marks = {v: r.at for v, r in (await _results(redis_server, key_prefix)).items()}
    finally:
        codes = [await r.stop() for r in replicas]
    assert codes == [0, 0], _report(replicas)
    assert len(slack.top_level(CHANNEL)) == 1, [m.text for m in slack.top_level(CHANNEL)]
    assert slack.top_level(ADMIN) == [], [m.text for m in slack.top_level(ADMIN)]
    assert slack.violations == []
