"""Chaos on the delivery path, with real ``tocsin run`` processes, a real redis-server the test
starts itself, the fake Slack and the fake status server (a probe-watched provider).

* a notifier killed with SIGKILL in the middle of fanning an outage out to 200 channels,
  restarted under its own name (it re-reads its pending entries), and later killed again
  mid recovery and replaced by a notifier with another name (XAUTOCLAIM takes the entries
  over): every channel gets exactly one notice and every thread exactly one recovery reply;
* Redis stopped for 10 s while the provider goes down and comes back: the watcher buffers,
  and once Redis is back the notice and the reply arrive once each, in order;
* Slack answering 429 (``Retry-After: 2``) and 500 for a while: every notice arrives once,
  and no retry came before the Retry-After Slack asked for.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from bot.store import NOTIFIERS_GROUP
from tests.chaos import TocsinProcess, probed_provider_config, until
from tests.fakes.slack import Call, FakeSlack
from tests.fakes.status_server import FakeStatusServer
from tests.redis_server import RedisServer

pytestmark = pytest.mark.chaos

MODELS = "/v1/models"
PROVIDER = "acme"
FANOUT = [f"C0FAN{n:05d}" for n in range(200)]
#: Slack holds each chat.postMessage answer this long (the message is already posted): with
#: the notifier's 64 connections, 200 channels take a few waves, and a kill lands mid-wave.
HOLD = 1.0


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    fake = await FakeSlack().start()
    yield fake
    await fake.close()


@pytest.fixture
def probe(status_server: FakeStatusServer) -> FakeStatusServer:
    """The provider's API, healthy to begin with."""
    status_server.set_json(MODELS, {"data": []})
    return status_server


def _config(
    redis_url: str,
    prefix: str,
    slack: FakeSlack,
    probe: FakeStatusServer,
    channels: list[str],
    **store: Any,
) -> dict[str, Any]:
    """One provider probed every 300 ms, Slack channels for every notice, no console."""
    for channel in channels:
        slack.add_channel(channel)
    return probed_provider_config(
        redis_url, prefix, slack.api_url, slack.bot_token, f"{probe.url}{MODELS}", channels, **store
    )


async def _watching(process: TocsinProcess, probe: FakeStatusServer, rounds: int = 3) -> None:
    """The process leads and has seen the provider healthy a few times (a baseline)."""

    async def leads() -> bool:
        health = await process.health()
        return bool(health and health.get("leader"))

    await until(leads)
    seen = probe.count(MODELS)
    await until(lambda: probe.count(MODELS) >= seen + rounds)


async def _pending(client: aioredis.Redis, prefix: str) -> int:
    """Stream entries some notifier took and has not acknowledged."""
    summary = await client.xpending(f"{prefix}events", NOTIFIERS_GROUP)
    return int(summary["pending"])


async def _marks(client: aioredis.Redis, prefix: str) -> int:
    """``sent`` marks: deliveries the notifier recorded (Slack may have more)."""
    return len([key async for key in client.scan_iter(match=f"{prefix}sent:*", count=1000)])


def _with_notice(slack: FakeSlack, channels: list[str]) -> int:
    return sum(1 for channel in channels if slack.top_level(channel))


def _with_reply(slack: FakeSlack, channels: list[str]) -> int:
    return sum(
        1
        for channel in channels
        if any(slack.replies(channel, root.ts) for root in slack.top_level(channel))
    )


async def _delivered(
    client: aioredis.Redis,
    prefix: str,
    slack: FakeSlack,
    count: Callable[[FakeSlack, list[str]], int],
) -> None:
    """Every channel has what it should, and nothing is left pending in the group."""

    async def settled() -> bool:
        return count(slack, FANOUT) == len(FANOUT) and await _pending(client, prefix) == 0

    await until(settled, timeout=30)


@pytest.mark.timeout(90)
async def test_notifier_killed_mid_fanout_every_channel_gets_exactly_one_notice(
    own_redis: RedisServer,
    slack: FakeSlack,
    probe: FakeStatusServer,
    tmp_path: Path,
) -> None:
    """The crash lands between "Slack posted it" and "we recorded it" for a whole wave of
    channels: marks cover what was recorded, message metadata what was not."""
    prefix = "chaos:"
    config = _config(own_redis.url, prefix, slack, probe, FANOUT, claim_idle="3s")
    watcher = TocsinProcess(tmp_path, "watcher", config, role="watcher")
    notifier = TocsinProcess(tmp_path, "notifier-a", config, role="notifier")
    successor = TocsinProcess(tmp_path, "notifier-b", config, role="notifier")
    client = aioredis.Redis.from_url(own_redis.url, decode_responses=True)
    try:
        await asyncio.gather(watcher.start_healthy(), notifier.start_healthy())
        await _watching(watcher, probe)

        # 1. The outage fans out slowly; the notifier dies with about half the channels told.
        slack.hold_answer("chat.postMessage", HOLD)
        probe.set_status(MODELS, 503)
        await until(lambda: _with_notice(slack, FANOUT) >= 100, timeout=30)
        notifier.kill()
        await notifier.wait()
        told = _with_notice(slack, FANOUT)
        assert 50 <= told <= 150, f"the kill was meant to land mid fan-out, {told} were told"
        marked = await _marks(client, prefix)
        assert marked < told, "no notice was caught between posting and recording"
        slack.holds.clear()

        # 2. The same name again: it reads its own pending entries, asks Slack before posting.
        history_before = len(slack.calls_to("conversations.history"))
        await notifier.start_healthy()
        await _delivered(client, prefix, slack, _with_notice)
        assert len(slack.calls_to("conversations.history")) > history_before
        assert "resuming deliveries interrupted by a restart" in notifier.log()
        doubled = [c for c in FANOUT if len(slack.top_level(c)) != 1]
        assert doubled == [], f"{len(doubled)} channels do not have exactly one notice"

        # 3. Recovery fans out slowly; the notifier dies again, and another one (another
        #    name, so nothing is "its own") must claim the dead consumer's entry.
        slack.hold_answer("chat.postMessage", HOLD)
        probe.set_json(MODELS, {"data": []})
        await until(lambda: _with_reply(slack, FANOUT) >= 100, timeout=30)
        notifier.kill()
        await notifier.wait()
        replied = _with_reply(slack, FANOUT)
        assert 50 <= replied <= 150, f"the kill was meant to land mid fan-out, {replied} told"
        assert await _marks(client, prefix) - len(FANOUT) < replied
        slack.holds.clear()
        await successor.start_healthy()
        await _delivered(client, prefix, slack, _with_reply)
        assert "claimed an entry a dead consumer left pending" in successor.log()

        for channel in FANOUT:
            roots = slack.top_level(channel)
            assert len(roots) == 1, f"{channel}: {len(roots)} notices"
            replies = slack.replies(channel, roots[0].ts)
            assert len(replies) == 1, f"{channel}: {len(replies)} recovery replies"
            assert "recovered" in replies[0].text
            assert "Resolved" in slack.message(channel, roots[0].ts).text
        assert await client.llen(f"{prefix}dead") == 0
        assert slack.violations == []
        for process in (watcher, notifier, successor):  # Redis never went away here
            assert "store unreachable" not in process.log(), process.name
    finally:
        await asyncio.gather(watcher.stop(), notifier.stop(), successor.stop())
        await client.aclose()


@pytest.mark.timeout(90)
async def test_redis_stopped_for_10s_during_outage_and_recovery_events_arrive_in_order(
    own_redis: RedisServer,
    slack: FakeSlack,
    probe: FakeStatusServer,
    tmp_path: Path,
) -> None:
    """A whole outage, start to end, happens while Redis is away: the watcher keeps its
    updates in order in memory and writes them once Redis is back; nothing is lost."""
    assert own_redis.persist  # its AOF keeps the stream and the group across the kill
    channel = "C0REDIS001"
    prefix = "gap:"
    process = TocsinProcess(
        tmp_path, "solo", _config(own_redis.url, prefix, slack, probe, [channel])
    )

    async def health() -> dict[str, Any]:
        report = await process.health()
        assert report is not None, "tocsin stopped answering /healthz"
        return report

    async def degraded_and_buffering() -> bool:
        report = await health()
        degraded = report["status"] == "degraded: store unreachable"
        return bool(degraded and report["buffered_updates"] > 0)

    try:
        await process.start_healthy()
        await _watching(process, probe)

        own_redis.kill()
        down_at = time.monotonic()
        probe.set_status(MODELS, 503)
        failing = probe.count(MODELS)
        await until(degraded_and_buffering)
        # the 4th request starts only once the 3rd's result is recorded: the threshold is met
        await until(lambda: probe.count(MODELS) >= failing + 4)
        probe.set_json(MODELS, {"data": []})
        healthy = probe.count(MODELS)
        await until(lambda: probe.count(MODELS) >= healthy + 4)
        await asyncio.sleep(max(0.0, 10.0 - (time.monotonic() - down_at)))  # the 10 s gap
        assert await degraded_and_buffering()
        assert slack.top_level(channel) == []

        back_at = datetime.now(UTC)
        own_redis.start()  # same port, same AOF
        client = aioredis.Redis.from_url(own_redis.url, decode_responses=True)
        try:

            async def delivered() -> bool:
                roots = slack.top_level(channel)
                return (
                    len(roots) == 1
                    and len(slack.replies(channel, roots[0].ts)) == 1
                    and await _pending(client, prefix) == 0
                )

            await until(delivered, timeout=30)
            stream = await client.xrange(f"{prefix}events")
        finally:
            await client.aclose()

        async def caught_up() -> bool:
            """The watcher's rounds go on meanwhile: each update sits in the buffer until its
            write returns, so a single sample can see one there (it once saw exactly 1)."""
            report = await health()
            return report["status"] == "ok" and report["buffered_updates"] == 0

        await until(caught_up)
        root = slack.top_level(channel)[0]
        reply = slack.replies(channel, root.ts)[0]
        assert float(root.ts) < float(reply.ts)
        assert root.at < reply.at
        assert "recovered" in reply.text
        assert "Resolved" in slack.message(channel, root.ts).text

        events = [json.loads(fields["event"]) for _, fields in stream or [] if fields]
        changes = [e for e in events if e["type"] == "state_changed" and e["provider"] == PROVIDER]
        stamps = [datetime.fromisoformat(e["at"]) for e in events]
        assert stamps == sorted(stamps), "the stream is not in time order"
        assert len(changes) >= 2, changes
        assert changes[0]["to"] in ("major_outage", "partial_outage"), changes[0]
        assert changes[-1]["to"] == "operational", changes[-1]
        assert changes[0]["episode"] == changes[-1]["episode"] is not None
        decided = [datetime.fromisoformat(e["at"]) for e in changes]
        assert max(decided) < back_at, "both changes were decided while Redis was away"
        assert "store reachable again; buffered updates written" in process.log()
        assert slack.violations == []
    finally:
        await process.stop()


def _retries_after(calls: list[Call], failed: Call) -> Call | None:
    """The next call of the same method to the same channel (and thread) after ``failed``."""
    same = [
        c
        for c in calls
        if c.at > failed.at
        and c.method == failed.method
        and c.params.get("channel") == failed.params.get("channel")
        and c.params.get("thread_ts") == failed.params.get("thread_ts")
        and c.params.get("ts") == failed.params.get("ts")
    ]
    return min(same, key=lambda c: c.at, default=None)


@pytest.mark.timeout(90)
async def test_slack_429_and_500_for_a_while_then_every_notice_arrives_once(
    redis_server: RedisServer,
    key_prefix: str,
    slack: FakeSlack,
    probe: FakeStatusServer,
    tmp_path: Path,
) -> None:
    """Slack's bad moments delay notices; they neither lose nor double them, and a 429's
    Retry-After is waited out in full."""
    channels = ["C0RATE0001", "C0RATE0002", "C0RATE0003"]
    retry_after = 2
    process = TocsinProcess(
        tmp_path, "solo", _config(redis_server.url, key_prefix, slack, probe, channels)
    )
    try:
        await process.start_healthy()
        await _watching(process, probe)

        # the outage: every channel's first post is rate limited, then a 500, then it works
        slack.rate_limit("chat.postMessage", times=3, retry_after=retry_after)
        slack.fail("chat.postMessage", times=3, status=500)
        probe.set_status(MODELS, 503)
        await until(lambda: _with_notice(slack, channels) == len(channels), timeout=30)

        # the recovery: the reply is rate limited, then the root edit fails with a 500 (the
        # retry must edit the root again, not post the reply again)
        slack.rate_limit("chat.postMessage", times=3, retry_after=retry_after)
        slack.fail("chat.update", times=3, status=500)
        probe.set_json(MODELS, {"data": []})

        def resolved() -> bool:
            return all(
                slack.replies(c, slack.top_level(c)[0].ts)
                and "Resolved" in slack.message(c, slack.top_level(c)[0].ts).text
                for c in channels
            )

        await until(resolved, timeout=30)
        client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
        try:  # every entry acknowledged: no delivery is still on its way to double one

            async def acknowledged() -> bool:
                return await _pending(client, key_prefix) == 0

            await until(acknowledged)
        finally:
            await client.aclose()
    finally:
        await process.stop()

    for channel in channels:
        roots = slack.top_level(channel)
        assert len(roots) == 1, f"{channel}: {len(roots)} notices"
        replies = slack.replies(channel, roots[0].ts)
        assert len(replies) == 1, f"{channel}: {len(replies)} recovery replies"
        assert "recovered" in replies[0].text

    calls = list(slack.calls)
    limited = [c for c in calls if c.status == 429]
    failed = [c for c in calls if c.status == 500]
    assert len(limited) == 6, "every injected 429 was met"
    assert len(failed) == 6, "every injected 500 was met"
    for call in limited:
        retry = _retries_after(calls, call)
        assert retry is not None, f"{call.method} to {call.params.get('channel')} never retried"
        waited = retry.at - call.at
        assert waited >= retry_after, f"retried after {waited:.2f} s, Slack said {retry_after}"
    for call in failed:
        assert _retries_after(calls, call) is not None, "a 500 was not retried"
    assert slack.violations == []
