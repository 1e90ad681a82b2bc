"""One contract, three stores: the embedded ones (memory, SQLite) must behave like Redis (a
real redis-server the suite started itself)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from bot.models import ComponentState, Event, StateUpdate, Status, utcnow
from bot.queries import uptime
from bot.store import MemoryStore, RedisStore, SqliteStore, Store, StoreUnavailable
from bot.store.base import POLL_REQUESTS_KEPT
from tests.redis_server import RedisServer

GROUP = "notifiers"


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def store(
    request: pytest.FixtureRequest, key_prefix: str, tmp_path: Path
) -> AsyncIterator[Store]:
    if request.param == "memory":
        made: Store = MemoryStore(stream_maxlen=100)
    elif request.param == "sqlite":
        made = SqliteStore(tmp_path / "data", stream_maxlen=100)
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        made = RedisStore(server.url, prefix=key_prefix, stream_maxlen=100)
    await made.open()
    yield made
    await made.close()


def _update(status: Status, *, event: bool = True, component: str = "api") -> StateUpdate:
    state = ComponentState(provider="acme", component=component, status=status, last_known=status)
    made = Event(type="state_changed", provider="acme", component=component, to=status)
    return StateUpdate(state=state, event=made if event else None, status_changed=True)


async def test_apply_writes_state_and_event_together(store: Store) -> None:
    await store.ensure_group(GROUP)
    ids = await store.apply(
        [_update(Status.MAJOR_OUTAGE), _update(Status.DEGRADED, event=False, component="web")]
    )
    assert len(ids) == 1
    states = await store.states()
    assert states["acme/api"].status is Status.MAJOR_OUTAGE
    assert states["acme/web"].status is Status.DEGRADED
    [recent] = await store.recent_events()
    assert recent.to is Status.MAJOR_OUTAGE
    assert recent.provider == "acme"


async def test_consumer_group_delivers_each_entry_once_and_keeps_unacked(store: Store) -> None:
    await store.ensure_group(GROUP)
    await store.apply([_update(Status.MAJOR_OUTAGE), _update(Status.OPERATIONAL)])
    first = await store.read_group(GROUP, "a", count=10, block_ms=100)
    assert [e.event.to for e in first if e.event] == [Status.MAJOR_OUTAGE, Status.OPERATIONAL]
    assert await store.read_group(GROUP, "b", count=10, block_ms=50) == []
    await store.ack(GROUP, first[0].id)
    # "a" crashed before acking the second: it finds it again on restart
    again = await store.pending_own(GROUP, "a", count=10)
    assert [e.id for e in again] == [first[1].id]


async def test_stale_entries_of_a_dead_consumer_are_claimed(store: Store) -> None:
    await store.ensure_group(GROUP)
    await store.apply([_update(Status.MAJOR_OUTAGE)])
    [taken] = await store.read_group(GROUP, "dead", count=10, block_ms=100)
    assert await store.claim_stale(GROUP, "alive", min_idle_ms=60_000, count=10) == []
    await asyncio.sleep(0.05)
    [claimed] = await store.claim_stale(GROUP, "alive", min_idle_ms=20, count=10)
    assert claimed.id == taken.id
    assert claimed.event == taken.event
    assert await store.pending_own(GROUP, "dead", count=10) == []


async def test_blocking_read_wakes_on_a_new_event(store: Store) -> None:
    await store.ensure_group(GROUP)
    reader = asyncio.create_task(store.read_group(GROUP, "a", count=10, block_ms=2000))
    await asyncio.sleep(0.05)
    await store.apply([_update(Status.DEGRADED)])
    entries = await asyncio.wait_for(reader, 3)
    assert [e.event.to for e in entries if e.event] == [Status.DEGRADED]


async def test_marks_threads_values_and_dead_letters(store: Store) -> None:
    assert await store.sent("e1", "slack:C1") is None
    await store.mark_sent("e1", "slack:C1", "ts-1")
    assert await store.sent("e1", "slack:C1") == "ts-1"
    assert await store.sent("e1", "slack:C2") is None
    await store.set_thread("ep1", "slack:C1", {"ts": "1.2"})
    assert await store.get_thread("ep1", "slack:C1") == {"ts": "1.2"}
    assert await store.get_thread("ep2", "slack:C1") is None
    await store.set_value("short", "x", ttl=0.05)
    assert await store.get_value("short") == "x"
    await asyncio.sleep(0.1)
    assert await store.get_value("short") is None
    await store.dead_letter({"target": "slack:C9", "error": "channel_not_found"})
    assert (await store.dead_letters())[0]["error"] == "channel_not_found"


async def test_lease_is_exclusive_renewable_and_expires(store: Store) -> None:
    assert await store.acquire_lease("leader", "one", ttl=0.2)
    assert not await store.acquire_lease("leader", "two", ttl=0.2)
    assert await store.acquire_lease("leader", "one", ttl=0.2)  # renewal
    assert await store.lease_holder("leader") == "one"
    await asyncio.sleep(0.3)
    assert await store.acquire_lease("leader", "two", ttl=5)
    await store.release_lease("leader", "one")  # not the holder: no effect
    assert await store.lease_holder("leader") == "two"
    await store.release_lease("leader", "two")
    assert await store.lease_holder("leader") is None


async def test_presence_record_is_compare_and_set_expires_and_releases(store: Store) -> None:
    """What keeps one live process per instance name: of two claims one wins, only the
    record's holder renews it, anyone may take it once it expired, a release is the owner's."""
    assert await store.presence("web-1") is None
    assert await store.claim_presence("web-1", "aaaaaa:1", 0.2, replacing=None)
    assert not await store.claim_presence("web-1", "bbbbbb:1", 0.2, replacing=None)
    assert not await store.claim_presence("web-1", "bbbbbb:1", 0.2, replacing="aaaaaa:0")
    assert await store.claim_presence("web-1", "aaaaaa:2", 0.2, replacing="aaaaaa:1")  # a beat
    assert await store.presence("web-1") == "aaaaaa:2"
    assert await store.presence("web-2") is None  # one record per name
    await asyncio.sleep(0.3)
    assert await store.presence("web-1") is None  # not renewed: expired
    assert await store.claim_presence("web-1", "bbbbbb:1", 5, replacing=None)
    await store.release_presence("web-1", "aaaaaa:2")  # not the owner's record: no effect
    assert await store.presence("web-1") == "bbbbbb:1"
    await store.release_presence("web-1", "bbbbbb:1")
    assert await store.presence("web-1") is None


async def test_history_feeds_uptime(store: Store) -> None:
    now = utcnow()
    down = ComponentState(
        provider="acme", component="api", status=Status.MAJOR_OUTAGE, since=now - timedelta(hours=2)
    )
    up = down.model_copy(update={"status": Status.OPERATIONAL, "since": now - timedelta(hours=1)})
    await store.apply(
        [StateUpdate(down, status_changed=True), StateUpdate(up, status_changed=True)]
    )
    changes = await store.history("acme/api", now - timedelta(hours=3))
    assert [s for _, s in changes] == [Status.MAJOR_OUTAGE, Status.OPERATIONAL]
    share = uptime(changes, Status.OPERATIONAL, now - timedelta(hours=2), now)
    assert share == pytest.approx(0.5, abs=0.01)


def test_uptime_ignores_unknown_and_time_before_records() -> None:
    now = utcnow()
    h = timedelta(hours=1)
    changes = [
        (now - 4 * h, Status.UNKNOWN),
        (now - 3 * h, Status.OPERATIONAL),
        (now - h, Status.PARTIAL_OUTAGE),
    ]
    assert uptime(changes, Status.PARTIAL_OUTAGE, now - 24 * h, now) == pytest.approx(2 / 3)
    assert uptime([], Status.OPERATIONAL, now - h, now) == 1.0
    assert uptime([], Status.UNKNOWN, now - h, now) is None


async def test_poison_stream_entries_come_back_as_errors(
    redis_server: RedisServer, key_prefix: str
) -> None:
    store = RedisStore(redis_server.url, prefix=key_prefix)
    await store.ensure_group(GROUP)
    raw = aioredis.Redis.from_url(redis_server.url)
    await raw.xadd(f"{key_prefix}events", {"event": b"{not json"})
    await raw.xadd(f"{key_prefix}events", {"other": b"x"})
    entries = await store.read_group(GROUP, "a", count=10, block_ms=100)
    assert [e.event for e in entries] == [None, None]
    assert "unreadable event" in (entries[0].error or "")
    assert "no event field" in (entries[1].error or "")
    await raw.aclose()
    await store.close()


async def test_state_survives_a_restart_of_redis(own_redis: RedisServer) -> None:
    store = RedisStore(own_redis.url)
    await store.apply([_update(Status.MAJOR_OUTAGE)])
    own_redis.kill()
    with pytest.raises(StoreUnavailable):
        await store.states()
    assert not await store.ping()
    own_redis.start()
    states = await store.states()
    assert states["acme/api"].status is Status.MAJOR_OUTAGE
    await store.close()


async def test_poll_requests_are_taken_once_each_in_order(store: Store) -> None:
    assert await store.take_poll_requests() == []
    for provider in ["acme", "zeta", "acme", "acme", "beta", "zeta"]:
        await store.request_poll(provider)
    assert await store.take_poll_requests() == ["acme", "zeta", "beta"]
    assert await store.take_poll_requests() == []  # taking clears them
    await store.request_poll("zeta")
    assert await store.take_poll_requests() == ["zeta"]


async def test_poll_requests_keep_only_the_newest(store: Store) -> None:
    """Pushes with no watcher running to take them cannot grow the store without bound."""
    for i in range(POLL_REQUESTS_KEPT + 5):
        await store.request_poll(f"p{i}")
    taken = await store.take_poll_requests()
    assert len(taken) == POLL_REQUESTS_KEPT
    assert taken[0] == "p5"
    assert taken[-1] == f"p{POLL_REQUESTS_KEPT + 4}"


async def test_a_poll_request_crosses_replicas_and_only_one_takes_it(
    redis_server: RedisServer, key_prefix: str
) -> None:
    receiver, *watchers = [RedisStore(redis_server.url, prefix=key_prefix) for _ in range(3)]
    await receiver.request_poll("acme")
    await receiver.request_poll("acme")
    taken = await asyncio.gather(*(w.take_poll_requests() for w in watchers))
    assert sorted(taken) == [[], ["acme"]]
    for store in (receiver, *watchers):
        await store.close()


async def test_pending_before_lists_older_unacknowledged_entries_of_any_consumer(
    store: Store,
) -> None:
    """What the dispatcher asks before a later notice: is an earlier one still with someone?"""
    await store.ensure_group(GROUP)
    ids = await store.apply([_update(s) for s in (Status.MAJOR_OUTAGE,) * 4])
    await store.read_group(GROUP, "a", count=2, block_ms=100)
    await store.read_group(GROUP, "b", count=2, block_ms=100)
    await store.ack(GROUP, ids[0])
    found = await store.pending_before(GROUP, ids[3], count=10)
    assert [e.id for e in found] == [ids[1], ids[2]]  # oldest first, itself excluded
    assert all(e.event is not None for e in found)
    assert await store.pending_before(GROUP, ids[1], count=10) == []
    assert [e.id for e in await store.pending_before(GROUP, ids[3], count=1)] == [ids[1]]
    assert await store.pending_before("no-such-group", ids[3], count=10) == []


async def test_a_burst_of_calls_waits_for_a_connection_instead_of_failing(
    redis_server: RedisServer, key_prefix: str
) -> None:
    """A fan-out makes hundreds of store calls at once: more than the pool has connections.
    They queue for one; none may fail as if Redis were away."""
    store = RedisStore(redis_server.url, prefix=key_prefix)
    await store.open()
    try:
        await store.set_value("burst", "ok")
        answers = await asyncio.gather(*(store.get_value("burst") for _ in range(600)))
    finally:
        await store.close()
    assert answers == ["ok"] * 600


# ------------------------------------------------------------ (issue 15) records and claims


async def test_records_change_once_and_end_for_the_one_who_deletes(store: Store) -> None:
    assert await store.put_record("silences", "slack:C1|acme", "one", only_new=True)
    assert not await store.put_record("silences", "slack:C1|acme", "two", only_new=True)
    assert await store.records("silences") == {"slack:C1|acme": "one"}
    assert await store.record("silences", "slack:C1|acme") == "one"
    assert await store.record("silences", "slack:C9|acme") is None
    assert await store.record("never-written", "x") is None
    assert await store.put_record("silences", "slack:C1|acme", "three")  # a plain write replaces
    assert not await store.delete_record("silences", "slack:C1|acme", only_if="one")
    results = await asyncio.gather(
        *(store.delete_record("silences", "slack:C1|acme", only_if="three") for _ in range(5))
    )
    assert sorted(results) == [False, False, False, False, True]
    assert await store.records("silences") == {}
    assert await store.records("never-written") == {}


async def test_a_claimed_value_is_one_callers_until_it_expires(store: Store) -> None:
    won = await asyncio.gather(*(store.claim_value("remind:x", str(i), ttl=0.2) for i in range(5)))
    assert won.count(True) == 1
    deadline = asyncio.get_running_loop().time() + 5
    while await store.get_value("remind:x") is not None:  # wait for the expiry, not a sleep
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)
    assert await store.claim_value("remind:x", "again", ttl=10)
