"""Hostile values under every key tocsin reads back, on the suite's real redis-server.

Whatever sits under a key (nesting 100,000 deep, 5 MB, the wrong JSON type, bytes that are not
UTF-8, an event of an unknown schema version, another kind of Redis value) costs only that
value: the reader gets everything else, says once that it dropped it, and never raises. A
detail read back is scrubbed of registered secrets (an older version may have stored one).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import redis.asyncio as aioredis
from structlog.testing import capture_logs

from bot.dispatcher import Dispatcher, DispatcherSettings
from bot.logs import register_secret
from bot.models import EVENT_SCHEMA_VERSION, ComponentState, Event, StateUpdate, Status, utcnow
from bot.notice_context import NoticeContext
from bot.store import NOTIFIERS_GROUP, RedisStore, StoreUnavailable
from bot.store.base import decode_entry
from config.loader import build_config
from tests.chaos import until
from tests.fakes.recording import RecordingNotifier
from tests.redis_server import RedisServer

DROPPED = "an unreadable value in the store is ignored"
#: A key tocsin never printed: it must not come back out of the store unmasked.
SECRET = "sk-hostile-7d1c0e9a55b2"

GOOD_EVENT = Event(type="state_changed", provider="acme", component="api", to=Status.DEGRADED)


def _event_json(**changes: Any) -> str:
    body = json.loads(GOOD_EVENT.model_copy(update={"id": f"e{id(changes)}"}).to_json())
    body.update(changes)
    return json.dumps(body)


#: Every kind of value a reader may find: each must be dropped, never raised.
HOSTILE: dict[str, bytes] = {
    "nested 100,000 deep": b"[" * 100_000 + b"]" * 100_000,
    "objects nested 100,000 deep": b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    "5 MB": json.dumps(
        {"provider": "acme", "component": "api", "detail": "x" * 5_000_000}
    ).encode(),
    "a JSON list": b"[1, 2, 3]",
    "a JSON string": b'"state"',
    "a JSON number": b"1e400",
    "fields of the wrong type": b'{"provider": ["a"], "component": {"b": 1}, "status": 7}',
    "not UTF-8": b"\xff\xfe\xfd{\x80",
    "not JSON": b"{nope",
}


@pytest.fixture
async def store(redis_server: RedisServer, key_prefix: str) -> AsyncIterator[RedisStore]:
    made = RedisStore(redis_server.url, prefix=key_prefix)
    await made.open()
    yield made
    await made.close()


@pytest.fixture
async def raw(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    """A client that writes bytes as given (tocsin's own decodes replies)."""
    client = aioredis.Redis.from_url(redis_server.url, decode_responses=False)
    yield client
    await client.aclose()


def _good_state(component: str = "api") -> ComponentState:
    return ComponentState(provider="acme", component=component, status=Status.DEGRADED)


def _dropped(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [entry for entry in logs if entry["event"] == DROPPED]


@pytest.mark.parametrize("value", HOSTILE.values(), ids=HOSTILE.keys())
async def test_a_hostile_state_is_dropped_once_and_the_others_are_read(
    store: RedisStore, raw: aioredis.Redis, key_prefix: str, value: bytes
) -> None:
    await store.apply([StateUpdate(_good_state(), status_changed=True)])
    await raw.hset(f"{key_prefix}state", "acme/evil", value)
    with capture_logs() as logs:
        for _ in range(3):  # the dashboard reads every few seconds: one line, not three
            states = await store.states()
            assert list(states) == ["acme/api"]
    assert len(_dropped(logs)) == 1, logs
    assert "acme/evil" in _dropped(logs)[0]["name"]


@pytest.mark.parametrize("value", HOSTILE.values(), ids=HOSTILE.keys())
async def test_a_hostile_stream_entry_comes_back_as_an_error_and_is_not_listed(
    store: RedisStore, raw: aioredis.Redis, key_prefix: str, value: bytes
) -> None:
    await store.ensure_group(NOTIFIERS_GROUP)
    await raw.xadd(f"{key_prefix}events", {"event": value})
    await store.append(GOOD_EVENT)
    entries = await store.read_group(NOTIFIERS_GROUP, "a", count=10, block_ms=100)
    assert [e.event is None for e in entries] == [True, False]
    assert "unreadable event" in (entries[0].error or "")
    with capture_logs() as logs:
        for _ in range(3):
            assert [e.id for e in await store.recent_events()] == [GOOD_EVENT.id]
    assert len(_dropped(logs)) == 1, logs


@pytest.mark.parametrize("version", [2, 0, "1", True, None, 1.5])
def test_an_event_of_another_schema_version_is_an_error_entry(version: object) -> None:
    entry = decode_entry("1-0", _event_json(v=version))
    assert entry.event is None
    assert "schema version" in (entry.error or "")
    assert decode_entry("2-0", _event_json(v=EVENT_SCHEMA_VERSION)).event is not None


@pytest.mark.parametrize("value", HOSTILE.values(), ids=HOSTILE.keys())
async def test_hostile_threads_dead_letters_and_history_are_dropped(
    store: RedisStore, raw: aioredis.Redis, key_prefix: str, value: bytes
) -> None:
    await raw.set(f"{key_prefix}thread:ep1:slack:C1", value)
    assert await store.get_thread("ep1", "slack:C1") is None
    await store.dead_letter({"target": "slack:C1", "error": "channel_not_found"})
    await raw.lpush(f"{key_prefix}dead", value)
    assert await store.dead_letters() == [{"target": "slack:C1", "error": "channel_not_found"}]
    now = utcnow()
    await raw.zadd(f"{key_prefix}history:acme/api", {value[:1000]: now.timestamp()})
    assert await store.history("acme/api", now.replace(year=now.year - 1)) == []


@pytest.mark.parametrize(
    "member", [b"nan|operational", b"1e400|operational", b"1e18|degraded", b"5|purple", b"|"]
)
async def test_a_history_entry_no_clock_can_read_is_dropped(
    store: RedisStore, raw: aioredis.Redis, key_prefix: str, member: bytes
) -> None:
    now = utcnow()
    good = f"{now.timestamp():.6f}|degraded"
    await raw.zadd(
        f"{key_prefix}history:acme/api", {member: now.timestamp(), good: now.timestamp()}
    )
    changes = await store.history("acme/api", now.replace(year=now.year - 1))
    assert [status for _, status in changes] == [Status.DEGRADED]


async def test_keys_holding_another_kind_of_redis_value_read_as_empty(
    store: RedisStore, raw: aioredis.Redis, key_prefix: str
) -> None:
    await raw.set(f"{key_prefix}state", b"not a hash")
    await raw.hset(f"{key_prefix}kv:escalations", "a", "b")
    await raw.rpush(f"{key_prefix}thread:ep1:slack:C1", b"x")
    await raw.set(f"{key_prefix}dead", b"not a list")
    await raw.set(f"{key_prefix}history:acme/api", b"not a sorted set")
    await raw.hset(f"{key_prefix}sent:e1:slack:C1", "a", "b")
    with capture_logs() as logs:
        assert await store.states() == {}
        assert await store.get_value("escalations") is None
        assert await store.get_thread("ep1", "slack:C1") is None
        assert await store.dead_letters() == []
        assert await store.history("acme/api", utcnow()) == []
        assert await store.sent("e1", "slack:C1") is None
    assert len(_dropped(logs)) == 6, logs
    await store.set_value("escalations", "{}")  # a write replaces the foreign value
    assert await store.get_value("escalations") == "{}"


async def test_details_read_back_are_scrubbed_of_secrets(
    store: RedisStore, raw: aioredis.Redis, key_prefix: str
) -> None:
    """Written by an older version that did not scrub: the key must not come back out."""
    register_secret(SECRET)
    leaked = f"401 for Authorization: Bearer {SECRET}"
    state = _good_state().model_copy(update={"detail": leaked})
    await raw.hset(f"{key_prefix}state", state.key, state.model_dump_json())
    event = GOOD_EVENT.model_copy(update={"detail": leaked})
    await raw.xadd(f"{key_prefix}events", {"event": event.to_json()})
    detail = (await store.states())[state.key].detail or ""
    assert SECRET not in detail
    assert "401 for Authorization" in detail
    [recent] = await store.recent_events()
    assert SECRET not in (recent.detail or "")


async def test_the_dispatcher_dead_letters_an_unknown_schema_version_and_delivers_the_rest(
    store: RedisStore, raw: aioredis.Redis, key_prefix: str
) -> None:
    """A newer tocsin's event is not guessed at: a notice built from fields this version
    does not know could say the wrong thing to every channel."""
    config = build_config(
        {"providers": [{"id": "acme", "name": "Acme AI", "probe": {"url": "http://127.0.0.1:9/"}}]}
    )
    notifier = RecordingNotifier()
    settings = DispatcherSettings(consumer="one", block_ms=50, store_retry=0.1)
    dispatcher = Dispatcher(
        store, [notifier.target("chat:a")], NoticeContext(config, store), settings
    )
    await store.ensure_group(NOTIFIERS_GROUP)
    future = _event_json(v=EVENT_SCHEMA_VERSION + 1, id="from-the-future")
    await raw.xadd(f"{key_prefix}events", {"event": future})
    good = Event(
        type="state_changed",
        provider="acme",
        component="api",
        to=Status.MAJOR_OUTAGE,
        episode="acme:ep1",
        provider_status=Status.MAJOR_OUTAGE,
    )
    await store.append(good)
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop))
    try:
        await until(lambda: bool(notifier.posts))

        async def settled() -> bool:
            summary = await raw.xpending(f"{key_prefix}events", NOTIFIERS_GROUP)
            return int(summary["pending"]) == 0

        await until(settled)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    assert [p.event_id for p in notifier.posts] == [good.id]
    [dead] = await store.dead_letters()
    assert "schema version" in dead["error"]


MOVED_ASIDE = "a value of another Redis type was under one of tocsin's keys; moved aside"


async def test_foreign_values_under_the_keys_tocsin_writes_are_moved_aside_not_fatal(
    redis_server: RedisServer, raw: aioredis.Redis, key_prefix: str
) -> None:
    """A string where the state hash or the event stream belongs would make every write fail
    (WRONGTYPE) and stop watching and delivering for good: the value is moved aside (kept:
    it may be someone's), said once, and tocsin's writes go on."""
    await raw.set(f"{key_prefix}state", b"not a hash")
    await raw.set(f"{key_prefix}events", b"not a stream")
    await raw.set(f"{key_prefix}dead", b"not a list")
    store = RedisStore(redis_server.url, prefix=key_prefix)
    try:
        with capture_logs() as logs:
            await store.open()
            await store.ensure_group(NOTIFIERS_GROUP)
            [entry_id] = await store.apply([StateUpdate(state=_good_state(), event=GOOD_EVENT)])
            await store.dead_letter({"error": "x"})
        assert entry_id
        assert [e["key"] for e in logs if e["event"] == MOVED_ASIDE] == [
            f"{key_prefix}state",
            f"{key_prefix}events",
            f"{key_prefix}dead",
        ]
        kept = sorted(k.decode() for k in await raw.keys(f"{key_prefix}*:foreign:*"))
        assert [k.rsplit(":foreign:", 1)[0] for k in kept] == [
            f"{key_prefix}dead",
            f"{key_prefix}events",
            f"{key_prefix}state",
        ]
        assert list(await store.states()) == [_good_state().key]

        # and one put there while tocsin runs: one failed write (retried, as for an outage)
        await raw.delete(f"{key_prefix}events")
        await raw.set(f"{key_prefix}events", b"again")
        await raw.set(f"{key_prefix}history:acme/api", b"not a sorted set")
        changed = StateUpdate(state=_good_state(), event=GOOD_EVENT, status_changed=True)
        with pytest.raises(StoreUnavailable):
            await store.apply([changed])
        await store.apply([changed])
        assert await store.history("acme/api", datetime(2000, 1, 1, tzinfo=UTC))
        assert [e.id for e in await store.recent_events()] == [GOOD_EVENT.id]
    finally:
        await store.close()


async def test_the_dispatcher_delivers_on_after_a_foreign_value_replaces_the_stream(
    store: RedisStore, raw: aioredis.Redis, key_prefix: str
) -> None:
    config = build_config(
        {"providers": [{"id": "acme", "name": "Acme AI", "probe": {"url": "http://127.0.0.1:9/"}}]}
    )
    notifier = RecordingNotifier()
    settings = DispatcherSettings(consumer="one", block_ms=50, store_retry=0.05)
    dispatcher = Dispatcher(
        store, [notifier.target("chat:a")], NoticeContext(config, store), settings
    )
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop))
    try:
        await until(lambda: raw.exists(f"{key_prefix}events"))
        await raw.delete(f"{key_prefix}events")
        await raw.set(f"{key_prefix}events", b"someone else's")
        outage = Event(
            type="state_changed",
            provider="acme",
            component="api",
            to=Status.MAJOR_OUTAGE,
            episode="acme:ep9",
            provider_status=Status.MAJOR_OUTAGE,
        )

        async def appended() -> bool:
            try:
                await store.append(outage)
            except StoreUnavailable:
                return False
            return True

        await until(appended)
        await until(lambda: bool(notifier.posts))
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    assert [p.event_id for p in notifier.posts] == [outage.id]


async def test_a_chat_table_of_another_type_or_with_garbage_costs_only_itself(
    redis_server: RedisServer, raw: aioredis.Redis, key_prefix: str
) -> None:
    """(issue 15) A string where the silences hash belongs reads as no silences and is moved
    aside on the next write; a record that is not one of ours is dropped, the rest kept."""
    from bot.chatops.controls import Controls
    from bot.chatops.records import SILENCES

    await raw.set(f"{key_prefix}table:{SILENCES}", b"not a hash")
    store = RedisStore(redis_server.url, prefix=key_prefix)
    try:
        await store.open()
        assert await store.records(SILENCES) == {}
        with pytest.raises(StoreUnavailable):  # one failed write, retried as for an outage
            await store.put_record(SILENCES, "k", "v")
        assert await store.put_record(SILENCES, "k", "v")
        assert await raw.keys(f"{key_prefix}table:{SILENCES}:foreign:*")
        good = {
            "target": "slack:C1",
            "provider": "acme",
            "mode": "1h",
            "until": "2999-01-01T00:00:00+00:00",
            "by": {"platform": "slack", "id": "U1", "name": "maria"},
            "at": utcnow().isoformat(),
        }
        await raw.hset(f"{key_prefix}table:{SILENCES}", "slack:C1|acme", json.dumps(good))
        hostile = {
            "deep": "[" * 100_000,
            "huge": json.dumps({**good, "provider": "x" * 1_000_000}),
            "year": json.dumps({**good, "at": "9999-01-01T00:00:00+00:00"}),
            "type": json.dumps([1, 2, 3]),
        }
        for key, value in hostile.items():
            await raw.hset(f"{key_prefix}table:{SILENCES}", key, value)
        controls = Controls(store)
        with capture_logs():
            await controls.refresh()
        assert list(controls.silences) == ["slack:C1|acme"]
        assert await store.record(SILENCES, "huge") is None  # over the record bound: none
        assert await store.record(SILENCES, "slack:C1|acme") is not None
    finally:
        await store.close()
