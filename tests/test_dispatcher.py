"""The dispatcher pipeline on a real store: routing, threads, retries that honour
Retry-After, dead letters, and no notice lost or doubled across a crash."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import timedelta

import pytest

from bot.chatops.controls import Controls
from bot.dispatcher import Dispatcher, DispatcherSettings, Outcome
from bot.models import ComponentState, Event, EventIncident, StateUpdate, Status, utcnow
from bot.notice_context import NoticeContext
from bot.notifier import (
    ContentRejected,
    Delivery,
    Intent,
    Receipt,
    RetryableError,
    Target,
)
from bot.pipeline import Mute
from bot.routing import Route
from bot.store import NOTIFIERS_GROUP, MemoryStore, RedisStore, Store
from config.loader import build_config
from config.schema import TocsinConfig
from tests.fakes.recording import RecordingNotifier
from tests.redis_server import RedisServer

CONFIG = build_config(
    {
        "providers": [
            {
                "id": "acme",
                "name": "Acme AI",
                "probe": {"url": "http://127.0.0.1:9/"},
                "fallbacks": ["zeta"],
            },
            {"id": "zeta", "name": "Zeta AI", "probe": {"url": "http://127.0.0.1:9/"}},
        ]
    }
)


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest, key_prefix: str) -> AsyncIterator[Store]:
    if request.param == "memory":
        made: Store = MemoryStore()
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        made = RedisStore(server.url, prefix=key_prefix)
    await made.open()
    await made.ensure_group("notifiers")
    yield made
    await made.close()


class Harness:
    """A dispatcher running in the background, and a way to wait for outcomes."""

    def __init__(
        self,
        store: Store,
        targets: list[Target],
        config: TocsinConfig = CONFIG,
        consumer: str = "one",
        mutes: Sequence[Mute] = (),
        controls: Controls | None = None,
    ) -> None:
        self.store = store
        self.outcomes: list[tuple[str, str, Outcome]] = []
        self.changed = asyncio.Event()
        settings = DispatcherSettings(
            consumer=consumer, block_ms=50, retry_initial=0.05, retry_max=0.2, store_retry=0.1
        )
        self.dispatcher = Dispatcher(
            store, targets, NoticeContext(config, store), settings, mutes=mutes, controls=controls
        )
        self.dispatcher.on_outcome = self._seen
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def _seen(self, event: Event, target: Target, outcome: Outcome) -> None:
        self.outcomes.append((event.id, target.key, outcome))
        self.changed.set()

    async def __aenter__(self) -> Harness:
        self.task = asyncio.create_task(self.dispatcher.run(self.stop))
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop.set()
        assert self.task is not None
        await asyncio.wait_for(self.task, 10)

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out; outcomes so far: {self.outcomes}")
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(remaining, 0.2))

    def done(self, event: Event, n_targets: int) -> Callable[[], bool]:
        return lambda: sum(1 for e, _, _ in self.outcomes if e == event.id) >= n_targets


def _event(
    to: Status,
    *,
    frm: Status = Status.OPERATIONAL,
    episode: str | None = "acme:ep1",
    provider_status: Status | None = None,
    **kw: object,
) -> Event:
    return Event(
        type=kw.pop("type", "state_changed"),  # type: ignore[arg-type]
        provider="acme",
        component="api",
        from_=frm,
        to=to,
        episode=episode,
        episode_started=utcnow() - timedelta(minutes=3),
        provider_status=provider_status or to,
        provider_name="Acme AI",
        component_name="API",
        source="acme:probe",
        **kw,  # type: ignore[arg-type]
    )


async def _publish(store: Store, *events: Event) -> None:
    updates = [
        StateUpdate(
            ComponentState(
                provider=e.provider, component=e.component or "api", status=e.to or Status.UNKNOWN
            ),
            e,
        )
        for e in events
    ]
    await store.apply(updates)


async def test_an_episode_opens_updates_and_resolves_in_one_thread(store: Store) -> None:
    platform = RecordingNotifier()
    channel = platform.target("chat:C1")
    async with Harness(store, [channel]) as h:
        opening = _event(Status.MAJOR_OUTAGE)
        update = _event(
            Status.MAJOR_OUTAGE,
            frm=Status.MAJOR_OUTAGE,
            confirmed=True,
            detail="confirmed by the status page",
        )
        recovery = _event(
            Status.OPERATIONAL, frm=Status.MAJOR_OUTAGE, provider_status=Status.OPERATIONAL
        )
        await _publish(store, opening, update, recovery)
        await h.wait_for(h.done(recovery, 1))
    intents = [(p.intent, p.thread_ts) for p in platform.posts]
    root = platform.posts[0].ts
    assert intents == [(Intent.OPEN, None), (Intent.UPDATE, root), (Intent.RESOLVE, root)]
    assert platform.posts[0].title == "Acme AI: major outage (suspected)"
    assert platform.posts[2].title == "Acme AI: recovered"
    assert [title for _, _, title in platform.edits][-1].startswith("Resolved: Acme AI (lasted 3m")
    assert await store.get_thread("acme:ep1", "chat:C1") == {"ts": root, "event": opening.id}


async def test_routes_respect_providers_min_status_and_admin(store: Store) -> None:
    platform = RecordingNotifier()
    everyone = platform.target("chat:all", Route(providers=None, min_status=Status.DEGRADED))
    majors = platform.target("chat:major", Route(providers=None, min_status=Status.MAJOR_OUTAGE))
    others = platform.target("chat:zeta", Route(providers=frozenset({"zeta"})))
    admins = platform.target("chat:admin", Route(providers=frozenset(), admin=True))
    targets = [everyone, majors, others, admins]
    async with Harness(store, targets) as h:
        degraded = _event(Status.DEGRADED)
        worse = _event(Status.MAJOR_OUTAGE, frm=Status.DEGRADED)
        back = _event(
            Status.OPERATIONAL, frm=Status.MAJOR_OUTAGE, provider_status=Status.OPERATIONAL
        )
        broken = _event(
            Status.UNKNOWN, audience="admins", episode=None, detail="page returned HTML"
        )
        await _publish(store, degraded, worse, back, broken)
        await h.wait_for(h.done(broken, len(targets)))
    assert [p.intent for p in platform.for_target("chat:all")] == [
        Intent.OPEN,
        Intent.UPDATE,
        Intent.RESOLVE,
    ]
    # the major-only channel hears of it when it becomes major, and of its end
    assert [(p.intent, p.event_id) for p in platform.for_target("chat:major")] == [
        (Intent.OPEN, worse.id),
        (Intent.RESOLVE, back.id),
    ]
    assert platform.for_target("chat:zeta") == []
    assert [(p.intent, p.event_id) for p in platform.for_target("chat:admin")] == [
        (Intent.NOTICE, broken.id)
    ]


async def test_retry_after_is_honoured_and_blocks_nobody_else(store: Store) -> None:
    platform = RecordingNotifier()
    slow, fast = platform.target("chat:slow"), platform.target("chat:fast")
    platform.rate_limit("chat:slow", times=2, retry_after=0.4)
    async with Harness(store, [slow, fast]) as h:
        event = _event(Status.MAJOR_OUTAGE)
        await _publish(store, event)
        await h.wait_for(h.done(event, 2))
    attempts = platform.attempts["chat:slow"]
    assert len(attempts) == 3
    assert attempts[1] - attempts[0] >= 0.39
    assert attempts[2] - attempts[1] >= 0.39
    [fast_post] = platform.for_target("chat:fast")
    [slow_post] = platform.for_target("chat:slow")
    assert fast_post.at < attempts[1]  # the fast channel did not wait for the slow one
    assert slow_post.intent is Intent.OPEN


async def test_5xx_and_network_errors_are_retried_until_delivered(store: Store) -> None:
    platform = RecordingNotifier()
    channel = platform.target("chat:C1")
    platform.fail_next["chat:C1"].extend(
        [RetryableError("HTTP 503"), RetryableError("connection reset")] * 2
    )
    async with Harness(store, [channel]) as h:
        event = _event(Status.MAJOR_OUTAGE)
        await _publish(store, event)
        await h.wait_for(h.done(event, 1))
    assert len(platform.attempts["chat:C1"]) == 5
    assert len(platform.for_target("chat:C1")) == 1


async def test_permanent_errors_are_dead_lettered_and_do_not_block(store: Store) -> None:
    platform = RecordingNotifier()
    gone, fine = platform.target("chat:gone"), platform.target("chat:fine")
    platform.permanent["chat:gone"] = "channel_not_found"
    async with Harness(store, [gone, fine]) as h:
        first, second = (
            _event(Status.MAJOR_OUTAGE),
            _event(Status.MAJOR_OUTAGE, frm=Status.MAJOR_OUTAGE, confirmed=True),
        )
        await _publish(store, first, second)
        await h.wait_for(h.done(second, 2))
    assert len(platform.for_target("chat:fine")) == 2
    dead = await store.dead_letters()
    # no root ever reached the broken channel, so each event tries to open one there
    assert {d["event"] for d in dead} == {first.id, second.id}
    assert {d["error"] for d in dead} == {"channel_not_found"}
    assert {d["target"] for d in dead} == {"chat:gone"}
    assert len(platform.attempts["chat:gone"]) == 2  # permanent: never retried


async def test_a_notifier_bug_is_retried_then_dead_lettered_without_a_crash(store: Store) -> None:
    platform = RecordingNotifier()
    buggy, fine = platform.target("chat:buggy"), platform.target("chat:fine")
    platform.fail_next["chat:buggy"].extend(KeyError("blocks") for _ in range(10))
    async with Harness(store, [buggy, fine]) as h:
        event = _event(Status.MAJOR_OUTAGE)
        await _publish(store, event)
        await h.wait_for(h.done(event, 2))
        later = _event(Status.DEGRADED, frm=Status.MAJOR_OUTAGE, episode="acme:ep2")
        await _publish(store, later)
        await h.wait_for(h.done(later, 2))
    assert len(platform.attempts["chat:buggy"]) == 5 + 5
    assert len(platform.for_target("chat:fine")) == 2
    assert "KeyError" in (await store.dead_letters())[0]["error"]


async def test_a_redelivered_entry_is_not_posted_twice(store: Store) -> None:
    """The process dies after the platform took the message but before anything was
    recorded: on restart the entry comes back, the notifier finds its own message."""
    platform = RecordingNotifier()
    channel = platform.target("chat:C1")
    platform.crash_after_post.add("chat:C1")
    event = _event(Status.MAJOR_OUTAGE)
    first = Harness(store, [channel])
    async with first:
        await _publish(store, event)
        await asyncio.wait_for(platform.posted.wait(), 5)
        await asyncio.sleep(0.1)
    assert await store.sent(event.id, "chat:C1") is None  # nothing was recorded
    async with Harness(store, [channel]) as second:  # same consumer name: a restart
        await second.wait_for(second.done(event, 1))
    assert [o for _, _, o in second.outcomes] == ["reconciled"]
    assert len(platform.for_target("chat:C1")) == 1
    assert await store.get_thread("acme:ep1", "chat:C1") == {
        "ts": platform.posts[0].ts,
        "event": event.id,
    }
    assert await store.pending_own("notifiers", "one", 10) == []


async def test_entries_of_a_dead_consumer_are_claimed_by_another(store: Store) -> None:
    platform = RecordingNotifier()
    channel = platform.target("chat:C1")
    event = _event(Status.MAJOR_OUTAGE)
    await _publish(store, event)
    taken = await store.read_group("notifiers", "dead-replica", 10, 100)  # and then it died
    assert [e.id for e in taken]
    harness = Harness(store, [channel], consumer="survivor")
    harness.dispatcher.settings = DispatcherSettings(
        consumer="survivor", block_ms=50, claim_idle_ms=100, touch_every=0.1, retry_initial=0.05
    )
    async with harness as h:
        await h.wait_for(h.done(event, 1))
    assert len(platform.for_target("chat:C1")) == 1
    assert await store.pending_own("notifiers", "dead-replica", 10) == []


async def test_an_already_marked_delivery_is_a_duplicate(store: Store) -> None:
    platform = RecordingNotifier()
    channel = platform.target("chat:C1")
    event = _event(Status.MAJOR_OUTAGE)
    await store.mark_sent(event.id, "chat:C1", '{"ts": "1.0"}')
    async with Harness(store, [channel]) as h:
        await _publish(store, event)
        await h.wait_for(h.done(event, 1))
    assert h.outcomes == [(event.id, "chat:C1", "duplicate")]
    assert platform.posts == []


async def test_deliveries_wait_out_a_redis_restart(own_redis: RedisServer) -> None:
    store = RedisStore(own_redis.url)
    await store.ensure_group("notifiers")
    platform = RecordingNotifier()
    channel = platform.target("chat:C1")
    async with Harness(store, [channel]) as h:
        first = _event(Status.MAJOR_OUTAGE)
        await _publish(store, first)
        await h.wait_for(h.done(first, 1))
        own_redis.kill()
        await asyncio.sleep(0.5)
        own_redis.start()
        second = _event(
            Status.OPERATIONAL, frm=Status.MAJOR_OUTAGE, provider_status=Status.OPERATIONAL
        )
        await _publish(store, second)
        await h.wait_for(h.done(second, 1), timeout=20)
    assert [p.intent for p in platform.posts] == [Intent.OPEN, Intent.RESOLVE]
    await store.close()


async def test_a_crash_between_recording_the_thread_and_the_mark_is_no_duplicate(
    store: Store,
) -> None:
    """The thread ref names the event that opened it: a redelivery of that event is done."""
    platform = RecordingNotifier()
    channel = platform.target("chat:C1")
    opening = _event(Status.MAJOR_OUTAGE)
    async with Harness(store, [channel]) as h:
        await _publish(store, opening)
        await h.wait_for(h.done(opening, 1))
    await _forget_mark(store, opening.id, "chat:C1")
    assert await store.sent(opening.id, "chat:C1") is None
    harness = Harness(store, [channel])
    outcome = await harness.dispatcher.process(channel, opening, redelivery=True)
    assert outcome == "reconciled"
    assert len(platform.posts) == 1
    assert await store.sent(opening.id, "chat:C1") is not None


async def _forget_mark(store: Store, event_id: str, target: str) -> None:
    """As if the process died before writing the idempotency mark."""
    if isinstance(store, RedisStore):
        await store.redis.delete(store.keys.sent(event_id, target))
    else:
        await store.delete_value(f"sent:{event_id}:{target}")


async def test_fanning_one_event_out_reads_the_state_once(
    redis_server: RedisServer, key_prefix: str
) -> None:
    """200 targets' workers compose the same event at once: one of them reads the state
    hash (Redis's own command counter says so), the others wait for that read."""
    store = RedisStore(redis_server.url, prefix=key_prefix)
    await store.open()
    await store.ensure_group(NOTIFIERS_GROUP)
    platform = RecordingNotifier()
    targets = [platform.target(f"chat:{i}") for i in range(200)]

    async def reads() -> int:
        stats = await store.redis.info("commandstats")
        return int(stats.get("cmdstat_hgetall", {}).get("calls", 0))

    async with Harness(store, targets) as h:
        event = _event(Status.MAJOR_OUTAGE)
        before = await reads()
        await _publish(store, event)
        await h.wait_for(h.done(event, len(targets)))
        after = await reads()
    await store.close()
    assert len(platform.posts) == 200
    assert after - before == 1


class Refusing(RecordingNotifier):
    """A platform that refuses the first ``refusals`` deliveries for their content."""

    def __init__(self, refusals: int) -> None:
        super().__init__()
        self.refusals = refusals
        self.seen: list[Delivery] = []

    async def deliver(self, target: Target, delivery: Delivery) -> Receipt:
        self.seen.append(delivery)
        if self.refusals:
            self.refusals -= 1
            raise ContentRejected("platform: HTTP 400 (code 50035): Invalid Form Body")
        return await super().deliver(target, delivery)


def _with_incident(
    to: Status, *, frm: Status = Status.OPERATIONAL, confirmed: bool = False
) -> Event:
    incident = EventIncident(
        id="i1", title="Elevated errors", status="investigating", url="https://s.example/i1"
    )
    return _event(to, frm=frm, incident=incident, confirmed=confirmed)


async def test_a_notice_refused_for_its_content_goes_again_without_its_optional_parts(
    store: Store,
) -> None:
    platform = Refusing(refusals=1)
    async with Harness(store, [platform.target("chat:C1")]) as h:
        event = _with_incident(Status.MAJOR_OUTAGE)
        await _publish(store, event)
        await h.wait_for(h.done(event, 1))
    assert h.outcomes == [(event.id, "chat:C1", "delivered")]
    first, again = platform.seen
    assert first.notice.url == "https://s.example/i1"
    assert first.notice.fields
    assert first.notice.fallbacks
    assert (again.notice.url, again.notice.fields, again.notice.fallbacks) == (None, (), ())
    assert again.notice.title == first.notice.title
    assert again.notice.text == first.notice.text
    assert await store.dead_letters() == []


async def test_an_update_refused_for_its_content_degrades_its_root_edit_too(
    store: Store,
) -> None:
    platform = Refusing(refusals=0)
    async with Harness(store, [platform.target("chat:C1")]) as h:
        opening = _with_incident(Status.MAJOR_OUTAGE)
        await _publish(store, opening)
        await h.wait_for(h.done(opening, 1))
        platform.refusals = 1
        update = _with_incident(Status.MAJOR_OUTAGE, frm=Status.MAJOR_OUTAGE, confirmed=True)
        await _publish(store, update)
        await h.wait_for(h.done(update, 1))
    refused, again = platform.seen[1:]
    assert refused.root is not None
    assert refused.root.url == "https://s.example/i1"
    assert again.root is not None
    assert (again.root.url, again.root.fields) == (None, ())
    assert [o for _, _, o in h.outcomes] == ["delivered", "delivered"]


async def test_a_notice_refused_again_or_with_nothing_to_drop_is_dead_lettered(
    store: Store,
) -> None:
    platform = Refusing(refusals=3)
    async with Harness(store, [platform.target("chat:C1")]) as h:
        event = _with_incident(Status.MAJOR_OUTAGE)
        await _publish(store, event)
        await h.wait_for(h.done(event, 1))
        drill = Event(type="drill", provider="tocsin")  # title and text only: nothing to drop
        await _publish(store, drill)
        await h.wait_for(h.done(drill, 1))
    assert [o for _, _, o in h.outcomes] == ["dead", "dead"]
    assert len(platform.seen) == 3  # the outage twice (whole, then degraded), the drill once
    assert platform.posts == []
    dead = await store.dead_letters()
    assert sorted(d["event"] for d in dead) == sorted([event.id, drill.id])
    assert all("50035" in d["error"] for d in dead)


async def test_a_mute_keeps_an_event_from_its_target_and_nobody_else(store: Store) -> None:
    platform = RecordingNotifier()
    quiet, loud = platform.target("chat:quiet"), platform.target("chat:loud")

    def quiet_during_maintenance(event: Event, target: Target) -> bool:
        return target.key == "chat:quiet" and event.provider == "acme"

    async with Harness(store, [quiet, loud], mutes=[quiet_during_maintenance]) as h:
        opening = _event(Status.MAJOR_OUTAGE)
        await _publish(store, opening)
        await h.wait_for(h.done(opening, 2))
    assert sorted((key, outcome) for _, key, outcome in h.outcomes) == [
        ("chat:loud", "delivered"),
        ("chat:quiet", "muted"),
    ]
    assert [p.intent for p in platform.for_target("chat:loud")] == [Intent.OPEN]
    assert platform.for_target("chat:quiet") == []
    assert not await store.sent(opening.id, "chat:quiet")  # unmuted later, it is not "sent"
    assert await store.pending_own(NOTIFIERS_GROUP, "one", 10) == []  # acknowledged
