"""Two replicas on one host that nobody named: real ``tocsin run`` processes with the default
config (no ``instance``: both are named after the host), the suite's redis-server, the fake
Slack, a fake signed-webhook pager and a fake provider API on loopback sockets.

They used to hold every lease together (the holder was the instance name): each outage was
announced twice and paged twice. Now the holder is the name plus a boot token, so one process
leads; the second notices the first is alive and runs under a derived consumer name, saying
so in one line. A process restarted after ``kill -9`` under the same name takes its name back.

The presence record itself (:mod:`bot.presence`) is tested in-process below, on the same
Redis: a live holder keeps its name, a dead or expired one gives it up, a clean stop frees it.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from structlog.testing import capture_logs

from bot.presence import Identity, Presence
from bot.store import NOTIFIERS_GROUP, RedisStore
from tests.chaos import TocsinProcess, probed_provider_config, until
from tests.fakes.pager import WebhookReceiver
from tests.fakes.slack import FakeSlack, Message
from tests.fakes.status_server import FakeStatusServer
from tests.redis_server import RedisServer

CHANNEL = "C0SAMEHOST1"
MODELS = "/v1/models"
PROVIDER = "acme"
HOOK_SECRET = "placeholder-same-host-secret"
#: The lease, and so the presence record: a second process watches it for 1.5 s at most.
LEASE = 3.0
WARNING = "another live tocsin on this store is already named"
HOST = socket.gethostname()


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    fake = await FakeSlack().start()
    fake.add_channel(CHANNEL, "ai-incidents")
    yield fake
    await fake.close()


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    async with WebhookReceiver(HOOK_SECRET) as fake:
        yield fake


def _config(
    redis: RedisServer,
    prefix: str,
    slack: FakeSlack,
    probe: FakeStatusServer,
    receiver: WebhookReceiver,
) -> dict[str, Any]:
    """One probed provider, one Slack channel, a page at once for a major outage."""
    config = probed_provider_config(
        redis.url, prefix, slack.api_url, slack.bot_token, f"{probe.url}{MODELS}", [CHANNEL]
    )
    config["store"]["lease"] = f"{LEASE:g}s"
    config["escalation"] = [
        {"kind": "webhook", "url": receiver.url, "secret": HOOK_SECRET, "after": "0s"}
    ]
    return config


async def _health(process: TocsinProcess) -> dict[str, Any]:
    report = await process.health()
    assert report is not None, f"{process.name} stopped answering:\n{process.log()[-3000:]}"
    return report


async def _gauge(process: TocsinProcess, name: str) -> float:
    [value] = [
        float(line.split()[1])
        for line in (await process.metrics()).splitlines()
        if line.startswith(f"{name} ")
    ]
    return value


async def _watching(process: TocsinProcess) -> None:
    async def leads() -> bool:
        report = await process.health()
        return bool(report and report["leader"] and report["escalator"]["leader"])

    await until(leads)


def _roots(slack: FakeSlack) -> list[Message]:
    return [m for m in slack.top_level(CHANNEL) if "Acme AI" in m.text]


def _recoveries(slack: FakeSlack, root: Message) -> list[Message]:
    return [m for m in slack.replies(CHANNEL, root.ts) if "recovered" in m.text]


async def _stream(client: aioredis.Redis, prefix: str) -> list[dict[str, Any]]:
    entries: Any = await client.xrange(f"{prefix}events")
    return [json.loads(fields["event"]) for _, fields in entries]


async def _all_delivered(client: aioredis.Redis, prefix: str) -> bool:
    """Every entry of the stream was read by the notifiers' group and acknowledged."""
    groups: Any = await client.xinfo_groups(f"{prefix}events")
    [group] = [g for g in groups if g["name"] == NOTIFIERS_GROUP]
    last: Any = await client.xrevrange(f"{prefix}events", count=1)
    return bool(last) and group["last-delivered-id"] == last[0][0] and group["pending"] == 0


def _report(processes: Iterable[TocsinProcess]) -> str:
    return "\n".join(f"--- {p.name}\n{p.log()[-3000:]}" for p in processes)


@pytest.mark.chaos
@pytest.mark.timeout(120)
async def test_two_replicas_on_one_host_with_the_default_config_announce_and_page_once(
    redis_server: RedisServer,
    key_prefix: str,
    slack: FakeSlack,
    receiver: WebhookReceiver,
    status_server: FakeStatusServer,
    tmp_path: Path,
) -> None:
    status_server.set_json(MODELS, {"data": []})
    config = _config(redis_server, key_prefix, slack, status_server, receiver)
    first, second = (TocsinProcess(tmp_path, n, config, named=False) for n in ("first", "second"))
    processes = [first, second]
    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        await first.start_healthy()
        await _watching(first)
        await second.start_healthy()
        await until(lambda: WARNING in second.log())
        assert (await _health(first))["instance"] == HOST
        derived = (await _health(second))["instance"]
        assert re.fullmatch(rf"{re.escape(HOST)}-[0-9a-f]{{6}}", derived), derived
        holder = await client.get(f"{key_prefix}leader")
        assert re.fullmatch(rf"{re.escape(HOST)}#[0-9a-f]{{6}}", holder or ""), holder

        # the outage and its recovery, with both processes running all along
        seen = status_server.count(MODELS)
        await until(lambda: status_server.count(MODELS) >= seen + 3)
        status_server.set_status(MODELS, 503)
        await until(lambda: len(_roots(slack)) >= 1)
        await until(lambda: len(receiver.accepted) >= 1)
        status_server.set_json(MODELS, {"data": []})
        await until(lambda: bool(_recoveries(slack, _roots(slack)[0])))

        async def settled() -> bool:
            events = await _stream(client, key_prefix)
            resolved = any((e.get("escalation") or {}).get("action") == "resolve" for e in events)
            return resolved and await _all_delivered(client, key_prefix)

        await until(settled)
        for process in processes:  # one leads each lease, the whole time
            assert process.running, _report(processes)
        reports = [await _health(p) for p in processes]
        assert [r["leader"] for r in reports] == [True, False]
        assert [r["escalator"]["leader"] for r in reports] == [True, False]
        watching = [await _gauge(p, "tocsin_watcher_leader") for p in processes]
        deciding = [await _gauge(p, "tocsin_escalator_leader") for p in processes]
        assert (sum(watching), sum(deciding)) == (1, 1), (watching, deciding)
        events = await _stream(client, key_prefix)
    finally:
        codes = list(await asyncio.gather(*(p.stop() for p in processes)))
        await client.aclose()

    assert codes == [0, 0], _report(processes)
    changes = [e["to"] for e in events if e["type"] == "state_changed"]
    assert changes == ["major_outage", "operational"], changes
    (root,) = _roots(slack)
    assert len(_recoveries(slack, root)) == 1
    triggers = [
        h for h in receiver.accepted if h.json and h.json["escalation"]["action"] == "trigger"
    ]
    assert len(triggers) == 1, [h.json for h in receiver.accepted]
    assert len(receiver.accepted) == 2  # the trigger and its resolve
    assert first.log().count(WARNING) == 0
    assert second.log().count(WARNING) == 1, second.log()
    assert "TOCSIN_INSTANCE" in second.log()
    assert slack.violations == []


@pytest.mark.chaos
@pytest.mark.timeout(90)
async def test_a_restart_after_sigkill_under_the_same_name_takes_the_stable_name_back(
    redis_server: RedisServer,
    key_prefix: str,
    slack: FakeSlack,
    receiver: WebhookReceiver,
    status_server: FakeStatusServer,
    tmp_path: Path,
) -> None:
    """The dead process's presence record is still there (nobody released it) but no longer
    renewed: the restarted one waits at most one renewal period, then is itself again, so it
    finds its own unfinished deliveries under its name (no derived name, no warning)."""
    status_server.set_json(MODELS, {"data": []})
    config = _config(redis_server, key_prefix, slack, status_server, receiver)
    crashed = TocsinProcess(tmp_path, "crashed", config, named=False)
    again = TocsinProcess(tmp_path, "again", config, named=False)
    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        await crashed.start_healthy()
        await _watching(crashed)
        record = await client.get(f"{key_prefix}presence:{HOST}")
        assert record is not None
        crashed.kill()
        await crashed.wait()
        assert await client.get(f"{key_prefix}presence:{HOST}") is not None  # not released

        await again.start_healthy()
        await until(lambda: "took over the instance name" in again.log(), timeout=45)
        assert (await _health(again))["instance"] == HOST
        await _watching(again)
        renewed = await client.get(f"{key_prefix}presence:{HOST}")
        assert renewed is not None
        assert renewed.split(":")[0] != record.split(":")[0]  # the new boot's token
    finally:
        await again.stop()
        crashed.kill()
        await client.aclose()
    assert WARNING not in again.log()
    assert await _released(redis_server, f"{key_prefix}presence:{HOST}")


async def _released(redis: RedisServer, key: str) -> bool:
    client = aioredis.Redis.from_url(redis.url)
    try:
        return not await client.exists(key)
    finally:
        await client.aclose()


# ------------------------------------------------------------------ the presence record


@pytest.fixture
async def stores(redis_server: RedisServer, key_prefix: str) -> AsyncIterator[list[RedisStore]]:
    """Two processes' connections to one Redis."""
    made = [RedisStore(redis_server.url, prefix=key_prefix) for _ in range(2)]
    yield made
    for store in made:
        await store.close()


async def test_a_live_holder_keeps_its_name_and_the_second_runs_under_a_derived_one(
    stores: list[RedisStore],
) -> None:
    stop = asyncio.Event()
    first = Presence(stores[0], Identity("web-1"), ttl=0.6)
    second = Presence(stores[1], Identity("web-1"), ttl=0.6)
    assert await first.claim(stop) == "web-1"
    keeping = asyncio.create_task(first.keep(stop))
    try:
        with capture_logs() as logs:
            name = await second.claim(stop)
        assert name == second.identity.derived == f"web-1-{second.identity.token}"
        [line] = [entry for entry in logs if WARNING in entry["event"]]
        assert line["log_level"] == "warning"
        assert "TOCSIN_INSTANCE" in line["event"]
        assert second.record is None  # a derived name keeps no record
    finally:
        stop.set()
        await keeping
    assert await stores[0].presence("web-1") is None  # a clean stop releases it


async def test_a_record_nobody_renews_is_taken_over_and_an_expired_one_at_once(
    stores: list[RedisStore],
) -> None:
    stop = asyncio.Event()
    dead = Presence(stores[0], Identity("web-1"), ttl=30.0)  # killed: claimed, never renewed
    assert await dead.claim(stop) == "web-1"
    successor = Presence(stores[1], Identity("web-1"), ttl=0.6)
    assert await successor.claim(stop) == "web-1"  # after one renewal period, not 30 s
    assert await stores[1].presence("web-1") == successor.record

    gone = Presence(stores[0], Identity("web-2"), ttl=0.2)
    assert await gone.claim(stop) == "web-2"
    await until(lambda: _absent(stores[1], "web-2"))
    assert await Presence(stores[1], Identity("web-2"), ttl=0.6).claim(stop) == "web-2"


async def _absent(store: RedisStore, name: str) -> bool:
    return await store.presence(name) is None


async def test_a_renewal_after_the_record_expired_takes_it_again(
    stores: list[RedisStore],
) -> None:
    """The store was away longer than the record lives: the next renewal writes it anew."""
    stop = asyncio.Event()
    presence = Presence(stores[0], Identity("web-1"), ttl=0.3)
    assert await presence.claim(stop) == "web-1"
    await until(lambda: _absent(stores[0], "web-1"))
    keeping = asyncio.create_task(presence.keep(stop))
    try:

        async def back() -> bool:
            return await stores[1].presence("web-1") is not None

        await until(back)
    finally:
        stop.set()
        await keeping
