"""The watcher with its real scheduler: quick confirmation of a differing probe result, one
leader among replicas, buffering while Redis is away, a clean stop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import httpx

from bot.models import Observation, SourceKind, Status
from bot.sources.probe import ProbeSource
from bot.sources.statuspage import StatuspageSource
from bot.store import MemoryStore, RedisStore, Store
from bot.tracker import Tracker, TrackerSettings
from bot.watcher import LEASE_NAME, Watcher, WatcherSettings, check_source
from tests.fakes.status_server import FakeStatusServer, fixture_bytes
from tests.redis_server import RedisServer

MODELS = "/v1/models"


async def _until(predicate: Callable[[], bool | Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result if isinstance(result, bool) else await result:
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def _watcher(
    server: FakeStatusServer,
    store: Store,
    instance: str,
    *,
    interval: float = 0.3,
    lease: float = 15.0,
    buffer_limit: int = 10_000,
) -> Watcher:
    probe = ProbeSource("acme", f"{server.url}{MODELS}", interval=interval, timeout=1.0)
    settings = WatcherSettings(
        instance=instance,
        lease=lease,
        jitter=0.0,
        user_agent=f"tocsin-{instance}",
        buffer_limit=buffer_limit,
    )
    return Watcher([probe], Tracker(TrackerSettings()), store, settings)


async def _events(store: Store) -> list[tuple[Status | None, Status | None]]:
    return [(e.from_, e.to) for e in reversed(await store.recent_events(100))]


async def test_a_differing_result_is_confirmed_before_the_next_interval(
    status_server: FakeStatusServer,
) -> None:
    status_server.set_json(MODELS, {"data": []})
    store = MemoryStore()
    watcher = _watcher(status_server, store, "solo", interval=2.0)
    stop = asyncio.Event()
    task = asyncio.create_task(watcher.run(stop))
    await _until(lambda: status_server.count(MODELS) >= 1)
    status_server.set_status(MODELS, 503)
    flipped = len(status_server.requests)

    async def announced() -> bool:
        return (Status.OPERATIONAL, Status.MAJOR_OUTAGE) in await _events(store)

    await _until(announced, timeout=10)
    stop.set()
    await task
    failing = [r for r in status_server.requests[flipped:] if r.path == MODELS]
    assert len(failing) >= 2
    # the confirming run came a quarter interval (0.5 s) after the first failure, not 2 s
    assert failing[1].at - failing[0].at < 1.0


async def test_only_the_lease_holder_watches_and_another_takes_over(
    status_server: FakeStatusServer, redis_server: RedisServer, key_prefix: str
) -> None:
    status_server.set_json(MODELS, {"data": []})
    stores = [RedisStore(redis_server.url, prefix=key_prefix) for _ in range(2)]
    one = _watcher(status_server, stores[0], "one", lease=1.0)
    two = _watcher(status_server, stores[1], "two", lease=1.0)
    stop_one, stop_two = asyncio.Event(), asyncio.Event()
    task_one = asyncio.create_task(one.run(stop_one))
    await _until(lambda: one.leader)
    task_two = asyncio.create_task(two.run(stop_two))
    await asyncio.sleep(1.5)
    agents = {r.headers.get("User-Agent") for r in status_server.requests}
    assert agents == {"tocsin-one"}
    assert not two.leader
    assert await stores[0].lease_holder(LEASE_NAME) == one.lease.holder  # "one#<boot token>"

    stop_one.set()  # a clean stop releases the lease: the other replica takes over at once
    await task_one
    await _until(lambda: two.leader, timeout=5)
    before = len(status_server.requests)
    await _until(lambda: len(status_server.requests) > before + 2)
    assert status_server.requests[-1].headers.get("User-Agent") == "tocsin-two"
    stop_two.set()
    await task_two
    assert await stores[1].lease_holder(LEASE_NAME) is None
    for store in stores:
        await store.close()


async def test_updates_are_buffered_while_redis_is_away_and_written_in_order(
    status_server: FakeStatusServer, own_redis: RedisServer
) -> None:
    status_server.set_json(MODELS, {"data": []})
    store = RedisStore(own_redis.url)
    watcher = _watcher(status_server, store, "solo", lease=30.0)
    stop = asyncio.Event()
    task = asyncio.create_task(watcher.run(stop))
    await _until(lambda: watcher.leader)
    await _until(lambda: status_server.count(MODELS) >= 2)

    own_redis.kill()
    status_server.set_status(MODELS, 503)

    def status() -> Status:
        return watcher.tracker.states()["acme/api"].status

    await _until(lambda: status() is Status.MAJOR_OUTAGE, timeout=10)
    status_server.set_json(MODELS, {"data": []})
    await _until(lambda: status() is Status.OPERATIONAL, timeout=10)
    assert not watcher.store_ok  # the outage and the recovery both happened while Redis was down
    assert watcher.buffered >= 2
    own_redis.start()
    await _until(lambda: watcher.buffered == 0 and watcher.store_ok, timeout=15)
    stop.set()
    await task
    events = await _events(store)
    assert events == [
        (Status.OPERATIONAL, Status.MAJOR_OUTAGE),
        (Status.MAJOR_OUTAGE, Status.OPERATIONAL),
    ]
    await store.close()


async def test_a_source_that_crashes_is_unknown_not_fatal() -> None:
    class Broken:
        id = "acme:broken"
        provider = "acme"
        kind = SourceKind.PAGE
        interval = 1.0

        async def check(self, client: httpx.AsyncClient) -> list[Observation]:
            raise RuntimeError("bug in a parser")

    async with httpx.AsyncClient() as client:
        [obs] = await check_source(Broken(), client)
    assert obs.status is Status.UNKNOWN
    assert "bug in a parser" in (obs.detail or "")


SUMMARY = "/api/v2/summary.json"


def _page_watcher(server: FakeStatusServer, store: Store) -> Watcher:
    """A watcher of one status page read hourly: any read within a test is a pushed one."""
    page = StatuspageSource("acme", server.url, interval=3600.0)
    settings = WatcherSettings(instance="solo", jitter=0.0)
    return Watcher([page], Tracker(TrackerSettings()), store, settings)


def _reads(server: FakeStatusServer) -> list[float]:
    return [r.at for r in server.requests if r.path == SUMMARY]


async def test_poll_requests_read_the_page_now_at_most_once_a_second(
    status_server: FakeStatusServer,
) -> None:
    status_server.set_fixture(SUMMARY, "statuspage_summary_anthropic_operational.json")
    store = MemoryStore()
    watcher = _page_watcher(status_server, store)
    stop = asyncio.Event()
    task = asyncio.create_task(watcher.run(stop))
    await _until(lambda: len(_reads(status_server)) == 1)  # the first round, then an hour
    for _ in range(50):
        await store.request_poll("acme")
    await _until(lambda: len(_reads(status_server)) == 2, timeout=3)
    for _ in range(10):  # spread over ~0.2 s right after the pushed read: one read, a second on
        await store.request_poll("acme")
        await asyncio.sleep(0.02)
    await _until(lambda: len(_reads(status_server)) == 3, timeout=4)
    await asyncio.sleep(1.5)
    stop.set()
    await task
    reads = _reads(status_server)
    assert len(reads) == 3  # 60 pushes, two reads
    assert reads[2] - reads[1] >= watcher.settings.pushed_gap - 0.05


async def test_a_push_during_a_read_reads_the_page_again_after_it(
    status_server: FakeStatusServer,
) -> None:
    """The read under way may have fetched the page before the change the push announces."""
    body = fixture_bytes("statuspage_summary_anthropic_operational.json")
    status_server.set_slow(SUMMARY, 1.0, body=body)
    store = MemoryStore()
    watcher = _page_watcher(status_server, store)
    stop = asyncio.Event()
    task = asyncio.create_task(watcher.run(stop))
    await _until(lambda: len(_reads(status_server)) == 1)
    await store.request_poll("acme")  # taken within 0.5 s, while the slow read is running
    await _until(lambda: len(_reads(status_server)) == 2, timeout=5)
    stop.set()
    await task
    reads = _reads(status_server)
    assert reads[1] - reads[0] >= 1.0  # after the first read finished, not skipped


async def test_poll_requests_for_other_providers_are_ignored(
    status_server: FakeStatusServer,
) -> None:
    status_server.set_fixture(SUMMARY, "statuspage_summary_anthropic_operational.json")
    store = MemoryStore()
    watcher = _page_watcher(status_server, store)
    stop = asyncio.Event()
    task = asyncio.create_task(watcher.run(stop))
    await _until(lambda: len(_reads(status_server)) == 1)
    await store.request_poll("zeta")
    await asyncio.sleep(1.2)
    assert await store.take_poll_requests() == []  # taken by the watcher...
    stop.set()
    await task
    assert len(_reads(status_server)) == 1  # ...and nothing read for it


async def test_a_long_redis_outage_overflows_with_state_refreshes_not_events(
    status_server: FakeStatusServer, own_redis: RedisServer
) -> None:
    """A small buffer, many rounds while Redis is away: the refreshes of a state are folded
    into the newest, and the outage and recovery events all survive to be written."""
    status_server.set_json(MODELS, {"data": []})
    store = RedisStore(own_redis.url)
    watcher = _watcher(status_server, store, "solo", interval=0.1, lease=30.0, buffer_limit=4)
    stop = asyncio.Event()
    task = asyncio.create_task(watcher.run(stop))
    await _until(lambda: watcher.leader)
    own_redis.kill()
    before = status_server.count(MODELS)
    await _until(lambda: status_server.count(MODELS) >= before + 8)  # twice the buffer
    status_server.set_status(MODELS, 503)

    def status() -> Status:
        return watcher.tracker.states()["acme/api"].status

    await _until(lambda: status() is Status.MAJOR_OUTAGE, timeout=10)
    status_server.set_json(MODELS, {"data": []})
    await _until(lambda: status() is Status.OPERATIONAL, timeout=10)
    settled = status_server.count(MODELS)
    await _until(lambda: status_server.count(MODELS) >= settled + 8)
    assert 0 < watcher.buffered <= 4
    own_redis.start()
    await _until(lambda: watcher.buffered == 0 and watcher.store_ok, timeout=15)
    stop.set()
    await task
    assert watcher.dropped == 0
    assert await _events(store) == [
        (Status.OPERATIONAL, Status.MAJOR_OUTAGE),
        (Status.MAJOR_OUTAGE, Status.OPERATIONAL),
    ]
    assert (await store.states())["acme/api"].status is Status.OPERATIONAL
    await store.close()
