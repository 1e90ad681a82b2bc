"""Running incidents from the chat, on a real store and the real dispatcher: acknowledge,
silence, subscribe, reminders, each changing state once and told as an event.

Platforms only turn their payloads into :class:`bot.chatops.actions.ChatOps` calls (their
own tests click real Slack and Discord buttons); here the verbs, the muting, the roots' words
and buttons, the subscriptions that reach a channel on another replica, and the chat's clock
are driven directly, on the embedded store and on a real redis-server.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest

from bot.chatops.actions import Actor, ChatOps, configured_routes
from bot.chatops.controls import Controls
from bot.chatops.records import ACKS, SILENCES, SUBSCRIPTIONS, button_value
from bot.chatops.reminders import Reminders
from bot.dispatcher import Dispatcher, DispatcherSettings
from bot.escalation import Escalator, EscalatorSettings, observe
from bot.models import ComponentState, Event, StateUpdate, Status, utcnow
from bot.notice_context import NoticeContext
from bot.notifier import Intent, Target
from bot.routing import Route
from bot.store import MemoryStore, RedisStore, Store
from config.loader import build_config
from handlers.chat import subscribed_target
from tests.fakes.recording import RecordingNotifier
from tests.redis_server import RedisServer
from tests.test_dispatcher import Harness

CONFIG = build_config(
    {
        "providers": [
            {"id": "acme", "name": "Acme AI", "probe": {"url": "http://127.0.0.1:9/"}},
            {"id": "zeta", "name": "Zeta AI", "probe": {"url": "http://127.0.0.1:9/"}},
        ]
    }
)
MARIA = Actor("slack", "U0MARIA", "maria")
EPISODE = "acme:20261204T185000Z:abc123"


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


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


def _state(
    status: Status, episode: str | None = EPISODE, started: datetime | None = None
) -> ComponentState:
    return ComponentState(
        provider="acme",
        component="api",
        name="API",
        status=status,
        episode=episode,
        episode_started=started or utcnow() - timedelta(minutes=3),
    )


def _event(to: Status, frm: Status = Status.OPERATIONAL, started: datetime | None = None) -> Event:
    return Event(
        type="state_changed",
        provider="acme",
        provider_name="Acme AI",
        component="api",
        component_name="API",
        from_=frm,
        to=to,
        episode=EPISODE,
        episode_started=started or utcnow() - timedelta(minutes=3),
        provider_status=to,
        source="acme:probe",
    )


async def _outage(store: Store, to: Status, frm: Status = Status.OPERATIONAL) -> Event:
    event = _event(to, frm)
    episode = None if to is Status.OPERATIONAL else EPISODE
    await store.apply([StateUpdate(_state(to, episode), event, status_changed=True)])
    return event


def _channel(platform: RecordingNotifier, key: str, **options: object) -> Target:
    return Target(
        key, platform, Route(providers=None), {"channel": key, "buttons": True, **options}
    )


def _kinds(events: list[Event], kind: str) -> list[Event]:
    return [e for e in events if e.type == kind]


# ------------------------------------------------------------------- acknowledge


async def test_acknowledge_changes_state_once_and_shows_on_every_root(store: Store) -> None:
    platform = RecordingNotifier()
    one, two = _channel(platform, "slack:C1"), _channel(platform, "slack:C2")
    chatops = ChatOps(CONFIG, store)
    controls = Controls(store)
    async with Harness(store, [one, two], CONFIG, controls=controls) as h:
        opening = await _outage(store, Status.MAJOR_OUTAGE)
        await h.wait_for(h.done(opening, 2))
        first_root = dict(platform.roots)["slack:C1"]
        assert [b.action for b in first_root.buttons] == [
            "ack",
            "silence_1h",
            "silence_4h",
            "silence_resolved",
        ]
        value = first_root.buttons[0].value
        assert value == EPISODE  # the episode names its provider
        replies = await asyncio.gather(
            *(chatops.press("slack", "C1", "ack", value, MARIA) for _ in range(5))
        )
        assert sum(r.changed for r in replies) == 1
        assert any("Already acknowledged by @maria" in r.text for r in replies)
        acks = [e for e in await store.recent_events() if e.type == "acknowledged"]
        assert len(acks) == 1
        await h.wait_for(h.done(acks[0], 2))
    told = [p for p in platform.posts if p.event_id == acks[0].id]
    assert {(p.target, p.intent) for p in told} == {
        ("slack:C1", Intent.UPDATE),
        ("slack:C2", Intent.UPDATE),
    }
    assert all(p.text.startswith("Acknowledged by @maria at ") for p in told)
    for key in ("slack:C1", "slack:C2"):
        root = [n for k, n in platform.roots if k == key][-1]
        assert ("Acknowledged", root.fields[-1][1]) == root.fields[-1]
        assert root.fields[-1][1].startswith("by @maria at ")
        assert [b.action for b in root.buttons] == ["silence_1h", "silence_4h", "silence_resolved"]
    assert list(await store.records(ACKS)) == [EPISODE]


async def test_a_button_of_an_outage_that_is_over_or_not_ours_changes_nothing(store: Store) -> None:
    chatops = ChatOps(CONFIG, store)
    await _outage(store, Status.MAJOR_OUTAGE)
    over = await chatops.press(
        "slack", "C1", "ack", button_value("acme", "acme:20261101T000000Z:0ld0ld"), MARIA
    )
    assert over.text == "That outage is over: nothing to do."
    assert not over.changed
    for value in (
        "x|y",
        "acme",
        "a|b|c",
        "<!channel>|x",
        "acme|" + "e" * 10_000,
        "nope|" + EPISODE,
        "zeta:20261204T185000Z:abc123",  # watched, but no such outage
        "acme:" + "9" * 300,
        "acme:x;DROP",
    ):
        reply = await chatops.press("slack", "C1", "ack", value, MARIA)
        assert not reply.changed, value
    for action in ("rm", "ack; drop", ""):
        reply = await chatops.press("slack", "C1", action, button_value("acme", EPISODE), MARIA)
        assert reply.refused
        assert not reply.changed
    assert await store.records(ACKS) == {}
    assert _kinds(await store.recent_events(), "acknowledged") == []


async def test_operators_only_when_configured(store: Store) -> None:
    config = build_config(
        {
            "providers": [
                {"id": "acme", "name": "Acme AI", "probe": {"url": "http://127.0.0.1:9/"}}
            ],
            "slack": {"bot_token": "xoxb-1", "operators": ["U0BOSS"]},
        }
    )
    chatops = ChatOps(config, store)
    await _outage(store, Status.MAJOR_OUTAGE)
    value = button_value("acme", EPISODE)
    refused = await chatops.press("slack", "C1", "ack", value, MARIA)
    assert refused.refused
    assert refused.text == "Only the configured operators can do that here."
    assert await store.records(ACKS) == {}
    boss = await chatops.press("slack", "C1", "ack", value, Actor("slack", "U0BOSS", "boss"))
    assert boss.changed
    # a Discord role named in the list counts as the person
    discord = build_config(
        {
            "providers": [
                {"id": "acme", "name": "Acme AI", "probe": {"url": "http://127.0.0.1:9/"}}
            ],
            "discord": {"token": "t", "operators": ["777"]},
        }
    )
    role = Actor("discord", "123", "x", roles=("777",))
    reply = await ChatOps(discord, store).press("discord", "9", "silence_1h", value, role)
    assert reply.changed


async def test_a_hostile_name_is_kept_short_on_one_line(store: Store) -> None:
    chatops = ChatOps(CONFIG, store)
    await _outage(store, Status.MAJOR_OUTAGE)
    name = "<!channel>\n@everyone " + "x" * 10_000
    await chatops.press(
        "slack", "C1", "ack", button_value("acme", EPISODE), Actor("slack", "U1", name)
    )
    stored = json.loads((await store.records(ACKS))[EPISODE])
    assert len(stored["by"]["name"]) <= 80
    assert "\n" not in stored["by"]["name"]
    event = _kinds(await store.recent_events(), "acknowledged")[0]
    assert event.control is not None
    assert len(event.control.by_name) <= 80


# ------------------------------------------------------------------- silence


async def test_silence_mutes_updates_in_that_channel_only_and_the_recovery_still_posts(
    store: Store,
) -> None:
    clock = Clock()
    platform = RecordingNotifier()
    quiet, loud = _channel(platform, "slack:C1"), _channel(platform, "slack:C2")
    chatops = ChatOps(CONFIG, store, clock=clock)
    controls = Controls(store, clock=clock)
    settings = DispatcherSettings(consumer="one", block_ms=50, retry_initial=0.05, store_retry=0.1)
    dispatcher = Dispatcher(
        store, [quiet, loud], NoticeContext(CONFIG, store), settings, controls=controls
    )
    outcomes: list[tuple[str, str, str]] = []
    dispatcher.on_outcome = lambda e, t, o: outcomes.append((e.id, t.key, o))  # type: ignore[func-returns-value]
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop))

    async def done(event: Event, n: int = 2) -> None:
        for _ in range(400):
            if sum(1 for e, _, _ in outcomes if e == event.id) >= n:
                return
            await asyncio.sleep(0.025)
        raise AssertionError(outcomes)

    try:
        opening = await _outage(store, Status.PARTIAL_OUTAGE)
        await done(opening)
        reply = await chatops.press(
            "slack", "C1", "silence_1h", button_value("acme", EPISODE), MARIA
        )
        assert reply.changed
        assert "for 1h by @maria" in reply.text
        again = await chatops.press(
            "slack", "C1", "silence_1h", button_value("acme", EPISODE), MARIA
        )
        assert not again.changed
        assert again.text.startswith("Already silenced here")
        silenced = _kinds(await store.recent_events(), "silenced")
        assert len(silenced) == 1
        await done(silenced[0], 2)
        worse = await _outage(store, Status.MAJOR_OUTAGE, Status.PARTIAL_OUTAGE)
        await done(worse)
        assert (worse.id, "slack:C1", "muted") in outcomes
        assert (worse.id, "slack:C2", "delivered") in outcomes
        root = [n for k, n in platform.roots if k == "slack:C1"][-1]
        assert dict(root.fields)["Silenced here"].endswith("by @maria")
        assert [b.action for b in root.buttons] == ["ack", "unsilence"]
        back = await _outage(store, Status.OPERATIONAL, Status.MAJOR_OUTAGE)
        await done(back)
        assert (back.id, "slack:C1", "delivered") in outcomes  # the recovery still posts
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    silenced_replies = [p for p in platform.posts if p.event_id == silenced[0].id]
    assert [p.target for p in silenced_replies] == ["slack:C1"]  # only where it was silenced


async def test_a_silence_ends_on_time_without_a_restart_and_says_so_once(store: Store) -> None:
    clock = Clock()
    chatops = ChatOps(CONFIG, store, clock=clock)
    await _outage(store, Status.MAJOR_OUTAGE)
    await chatops.press("slack", "C1", "silence_1h", button_value("acme", EPISODE), MARIA)
    controls = [Controls(store, clock=clock) for _ in range(2)]
    replicas = [Reminders(chatops, c, [], clock=clock) for c in controls]
    target = _channel(RecordingNotifier(), "slack:C1")
    event = _event(Status.MAJOR_OUTAGE, Status.PARTIAL_OUTAGE)
    await controls[0].refresh()
    assert controls[0].muted(event, target)
    clock.advance(3600)
    assert not controls[0].muted(event, target)  # no read needed: expiry is the clock's
    appended = await asyncio.gather(*(r.tick() for r in replicas))
    assert sum(appended) == 1
    ended = _kinds(await store.recent_events(), "unsilenced")
    assert len(ended) == 1
    assert ended[0].control is not None
    assert ended[0].control.reason == "expired"
    assert await store.records(SILENCES) == {}
    silences = await chatops.silences()
    assert silences.text == "Nothing is silenced."


async def test_silence_until_resolved_ends_with_the_episode(store: Store) -> None:
    chatops = ChatOps(CONFIG, store)
    await _outage(store, Status.MAJOR_OUTAGE)
    await chatops.press("slack", "C1", "silence_resolved", button_value("acme", EPISODE), MARIA)
    listed = await chatops.silences("slack", "C1")
    assert listed.lines == ("Acme AI in slack:C1 until resolved, by @maria",)
    await _outage(store, Status.OPERATIONAL, Status.MAJOR_OUTAGE)
    controls = Controls(store)
    assert await Reminders(chatops, controls, []).tick() == 1
    ended = _kinds(await store.recent_events(), "unsilenced")[0]
    assert ended.control is not None
    assert ended.control.reason == "resolved"
    target = _channel(RecordingNotifier(), "slack:C1")
    from bot.routing import route

    assert route(ended, target, {"ts": "1"}) is None  # the recovery already said it is over


# ------------------------------------------------------------------- subscriptions


async def test_a_subscription_from_the_chat_reaches_a_new_channel_on_another_replica(
    redis_server: RedisServer, key_prefix: str
) -> None:
    stores = [RedisStore(redis_server.url, prefix=key_prefix) for _ in range(2)]
    for s in stores:
        await s.open()
        await s.ensure_group("notifiers")
    platform = RecordingNotifier()
    configured = platform.target("slack:C1", Route(providers=frozenset({"zeta"})))
    configured = Target("slack:C1", platform, configured.route, {"channel": "C1", "buttons": True})

    def make(sub: object) -> Target | None:
        return subscribed_target("slack", platform, sub.channel, buttons=True)

    # replica A answers the command; replica B delivers
    chatops = ChatOps(CONFIG, stores[0], configured=configured_routes([configured]))
    controls = Controls(stores[1], make_target=make)
    settings = DispatcherSettings(consumer="b", block_ms=50, retry_initial=0.05, store_retry=0.1)
    b = Dispatcher(
        stores[1], [configured], NoticeContext(CONFIG, stores[1]), settings, controls=controls
    )
    outcomes: list[tuple[str, str, str]] = []
    b.on_outcome = lambda e, t, o: outcomes.append((e.id, t.key, o))  # type: ignore[func-returns-value]
    stop = asyncio.Event()
    task = asyncio.create_task(b.run(stop))
    try:
        reply = await chatops.subscribe("slack", "C9", "ACME", "major_outage", MARIA)
        assert reply.changed
        assert "Acme AI at major_outage or worse" in reply.text
        also = await chatops.subscribe("slack", "C1", "acme", None, MARIA)
        assert also.changed
        minor = await _outage(stores[0], Status.DEGRADED)
        major = await _outage(stores[0], Status.MAJOR_OUTAGE, Status.DEGRADED)
        for _ in range(400):
            if sum(1 for e, _, _ in outcomes if e == major.id) >= 2:
                break
            await asyncio.sleep(0.025)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    c9 = platform.for_target("slack:C9")
    assert [(p.event_id, p.intent) for p in c9] == [(major.id, Intent.OPEN)]  # its threshold
    c1 = platform.for_target("slack:C1")
    assert [p.event_id for p in c1][:2] == [minor.id, major.id]  # degraded or worse, merged
    listed = await chatops.subscriptions("slack", "C1")
    assert listed.lines == (
        "Acme AI: degraded or worse (by @maria)",
        "Zeta AI: degraded or worse (from the config)",
    )
    refused = await chatops.unsubscribe("slack", "C1", "zeta", MARIA)
    assert refused.refused
    assert "from the config" in refused.text
    gone = await chatops.unsubscribe("slack", "C9", "acme", MARIA)
    assert gone.changed
    kinds = [e.type for e in await stores[0].recent_events()]
    assert kinds.count("subscribed") == 2
    assert kinds.count("unsubscribed") == 1
    assert list(await stores[0].records(SUBSCRIPTIONS)) == ["slack:C1|acme"]
    for s in stores:
        await s.close()


async def test_subscribe_refuses_what_it_cannot_keep(store: Store) -> None:
    chatops = ChatOps(CONFIG, store)
    for provider, status, duration in (
        ("nobody", None, None),
        ("acme", "operational", None),
        ("acme", "<!channel>", None),
        ("acme", None, "forever"),
        ("acme", None, "900d"),
    ):
        reply = await chatops.subscribe("slack", "C1", provider, status, MARIA, duration=duration)
        assert reply.refused, (provider, status, duration)
    assert await store.records(SUBSCRIPTIONS) == {}
    clock = Clock()
    timed = ChatOps(CONFIG, store, clock=clock)
    assert (await timed.subscribe("slack", "C1", "acme", None, MARIA, duration="1h")).changed
    controls = Controls(store, clock=clock)
    await controls.refresh()
    assert [t.key for t in controls.targets([])] == []  # no platform to make it: none
    assert len(controls.subscriptions) == 1
    assert controls.subscriptions[0].active(clock())
    clock.advance(3601)
    assert not controls.subscriptions[0].active(clock())


# ------------------------------------------------------------------- reminders


async def test_reminders_once_per_interval_across_replicas_and_not_after_an_ack(
    store: Store,
) -> None:
    clock = Clock()
    platform = RecordingNotifier()
    every = _channel(platform, "slack:C1", remind_every=1800.0)
    never = _channel(platform, "slack:C2")
    started = clock() - timedelta(minutes=1)
    event = _event(Status.MAJOR_OUTAGE, started=started)
    await store.apply([StateUpdate(_state(Status.MAJOR_OUTAGE, started=started), event, True)])
    for target in (every, never):
        await store.set_thread(EPISODE, target.key, {"ts": "1.0", "event": event.id})
    chatops = ChatOps(CONFIG, store, clock=clock)
    replicas = [
        Reminders(chatops, Controls(store, clock=clock), [every, never], clock=clock)
        for _ in range(3)
    ]

    async def tick_all() -> int:
        return sum(await asyncio.gather(*(r.tick() for r in replicas)))

    assert await tick_all() == 0  # one minute in
    clock.advance(29 * 60)
    assert await tick_all() == 1  # 30 minutes: one, whichever replica
    assert await tick_all() == 0
    clock.advance(30 * 60)
    assert await tick_all() == 1
    reminders = _kinds(await store.recent_events(), "reminder")
    assert sorted(r.control.count for r in reminders if r.control) == [1, 2]
    assert {r.control.target for r in reminders if r.control} == {"slack:C1"}
    await chatops.press("slack", "C1", "ack", button_value("acme", EPISODE), MARIA)
    clock.advance(30 * 60)
    assert await tick_all() == 0  # acknowledged: no more


# ------------------------------------------------------------------- escalation


def test_an_acknowledgement_holds_the_page_and_acknowledges_it() -> None:
    config = build_config(
        {
            "providers": [
                {"id": "acme", "name": "Acme AI", "probe": {"url": "http://127.0.0.1:9/"}}
            ],
            "escalation": [
                {
                    "kind": "pagerduty",
                    "routing_key": "a" * 32,
                    "after": "5m",
                    "repeat": "10m",
                    "min_status": "major_outage",
                }
            ],
        }
    )
    policy = config.escalation[0]
    pending, _ = observe(policy, None, _event(Status.MAJOR_OUTAGE))
    assert pending is not None
    ack = Event(type="acknowledged", provider="acme", episode=EPISODE)
    held, actions = observe(policy, pending, ack)
    assert held is not None
    assert held.acknowledged
    assert actions == []
    from bot.escalation import due

    later = utcnow() + timedelta(hours=1)
    assert due(policy, held, later) == (held, [])  # no first page once acknowledged
    paged = pending.model_copy(update={"paged_at": utcnow(), "last_sent": utcnow()})
    acked, actions = observe(policy, paged, ack)
    assert [a.kind for a in actions] == ["acknowledge"]
    assert acked is not None
    assert due(policy, acked, later) == (acked, [])
    assert observe(policy, acked, ack) == (acked, [])  # twice is once
    _, resolved = observe(policy, acked, _event(Status.OPERATIONAL, Status.MAJOR_OUTAGE))
    assert [a.kind for a in resolved] == ["resolve"]


async def test_an_escalator_appends_one_acknowledge_for_a_paged_outage(store: Store) -> None:
    config = build_config(
        {
            "providers": [
                {"id": "acme", "name": "Acme AI", "probe": {"url": "http://127.0.0.1:9/"}}
            ],
            "escalation": [
                {"kind": "pagerduty", "routing_key": "a" * 32, "after": "0s", "repeat": "1m"}
            ],
        }
    )
    clock = Clock()
    escalator = Escalator(config, store, EscalatorSettings(instance="x"), clock=clock)
    await escalator.start()
    await _outage(store, Status.MAJOR_OUTAGE)
    await escalator.step()
    clock.advance(1)  # the outage's own time has passed: the page is due
    await escalator.tick()
    await ChatOps(config, store, clock=clock).press(
        "slack", "C1", "ack", button_value("acme", EPISODE), MARIA
    )
    await escalator.step()
    clock.advance(3600)
    await escalator.tick()
    events = await store.recent_events()
    actions = sorted(e.escalation.action for e in events if e.escalation is not None)
    assert actions == ["acknowledge", "trigger"]  # and no repeat an hour on


async def test_an_unreachable_store_is_an_answer_not_a_failed_click() -> None:
    from tests.redis_server import free_port

    store = RedisStore(f"redis://127.0.0.1:{free_port()}/0")
    chatops = ChatOps(CONFIG, store)
    reply = await chatops.press("slack", "C1", "ack", button_value("acme", EPISODE), MARIA)
    assert reply.refused
    assert reply.text.startswith("tocsin cannot reach its store right now")
    listed = await chatops.command("slack", "C1", "subscriptions", MARIA)
    assert listed.refused
    await store.close()
