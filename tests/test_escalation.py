"""Escalation decisions with an injected clock: ``after``, ``repeat``, quiet hours, resolves.

The pure rules (:func:`observe`, :func:`due`) first, then the :class:`Escalator` service on
both stores: it resumes after a restart, never pages twice, and routes only to its policy.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from bot.compose import compose
from bot.escalation import (
    GROUP,
    Escalator,
    EscalatorSettings,
    Pending,
    due,
    escalation_event,
    observe,
    pending_escalations,
    quiet,
)
from bot.metrics import REGISTRY
from bot.models import Event, Status, utcnow
from bot.notifier import Intent, Target
from bot.routing import Route, route
from bot.store import MemoryStore, RedisStore, Store
from config.loader import ConfigError, build_config
from config.schema import EscalationPolicy, TocsinConfig
from handlers.escalation.webhook import sign
from tests.chaos import until
from tests.fakes.recording import RecordingNotifier
from tests.redis_server import RedisServer
from tests.test_cli import TOCSIN, cli_env

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
EPISODE = "ep1"


def _config(**policy: Any) -> TocsinConfig:
    body = {"kind": "webhook", "url": "http://127.0.0.1:9/hook", "after": "5m", **policy}
    return build_config(
        {"providers": [{"id": "anthropic"}, {"id": "openai"}], "escalation": [body]}
    )


def _policy(**policy: Any) -> EscalationPolicy:
    return _config(**policy).escalation[0]


def _event(
    status: Status,
    at: datetime,
    *,
    provider: str = "anthropic",
    episode: str | None = EPISODE,
    kind: str = "state_changed",
) -> Event:
    return Event(
        type=kind,
        provider=provider,
        provider_name=provider.title(),
        component="api",
        component_name="API",
        to=status,
        at=at,
        episode=episode,
        episode_started=T0,
        provider_status=status,
    )


def _fold(
    policy: EscalationPolicy, events: list[Event], pending: Pending | None = None
) -> tuple[Pending | None, list[str]]:
    kinds: list[str] = []
    for event in events:
        pending, actions = observe(policy, pending, event)
        kinds += [a.kind for a in actions]
    return pending, kinds


# ------------------------------------------------------------------ the rules


def test_an_outage_pages_only_after_it_lasted_after() -> None:
    policy = _policy()
    pending, _ = _fold(policy, [_event(Status.MAJOR_OUTAGE, T0)])
    assert pending is not None
    assert pending.since == T0
    still, actions = due(policy, pending, T0 + timedelta(minutes=4, seconds=59))
    assert actions == []
    assert still.paged_at is None
    paged, actions = due(policy, pending, T0 + timedelta(minutes=5))
    assert [a.kind for a in actions] == ["trigger"]
    assert paged.paged_at == T0 + timedelta(minutes=5)
    _again, actions = due(policy, paged, T0 + timedelta(hours=3))
    assert actions == []  # no repeat configured: once


def test_a_recovery_before_after_pages_nobody() -> None:
    policy = _policy()
    events = [
        _event(Status.MAJOR_OUTAGE, T0),
        _event(Status.OPERATIONAL, T0 + timedelta(minutes=4)),
    ]
    pending, kinds = _fold(policy, events)
    assert pending is None
    assert kinds == []


def test_easing_below_min_status_restarts_the_clock() -> None:
    policy = _policy()
    events = [
        _event(Status.MAJOR_OUTAGE, T0),
        _event(Status.PARTIAL_OUTAGE, T0 + timedelta(minutes=3)),
        _event(Status.MAJOR_OUTAGE, T0 + timedelta(minutes=4)),
    ]
    pending, _ = _fold(policy, events)
    assert pending is not None
    assert pending.since == T0 + timedelta(minutes=4)
    assert due(policy, pending, T0 + timedelta(minutes=6))[1] == []
    assert [a.kind for a in due(policy, pending, T0 + timedelta(minutes=9))[1]] == ["trigger"]


def test_degraded_never_pages_a_major_outage_policy() -> None:
    policy = _policy()
    pending, _ = _fold(policy, [_event(Status.DEGRADED, T0), _event(Status.PARTIAL_OUTAGE, T0)])
    assert pending is None


def test_not_knowing_neither_starts_nor_stops_the_clock() -> None:
    policy = _policy()
    pending, _ = _fold(policy, [_event(Status.UNKNOWN, T0)])
    assert pending is None
    pending, _ = _fold(
        policy, [_event(Status.MAJOR_OUTAGE, T0), _event(Status.UNKNOWN, T0 + timedelta(minutes=1))]
    )
    assert pending is not None
    assert pending.since == T0


def test_a_page_is_resolved_with_its_own_dedup_key_when_the_episode_closes() -> None:
    policy = _policy()
    pending, _ = _fold(policy, [_event(Status.MAJOR_OUTAGE, T0)])
    assert pending is not None
    paged, actions = due(policy, pending, T0 + timedelta(minutes=5))
    trigger = escalation_event(policy, actions[0], T0 + timedelta(minutes=5))
    eased, kinds = _fold(policy, [_event(Status.DEGRADED, T0 + timedelta(minutes=7))], paged)
    assert kinds == []
    assert eased is not None
    assert eased.below
    closed, actions = observe(policy, eased, _event(Status.OPERATIONAL, T0 + timedelta(minutes=9)))
    assert closed is None
    assert [a.kind for a in actions] == ["resolve"]
    resolve = escalation_event(policy, actions[0], T0 + timedelta(minutes=9))
    assert trigger.escalation
    assert resolve.escalation
    assert trigger.escalation.dedup_key == resolve.escalation.dedup_key == f"tocsin:{EPISODE}"
    assert trigger.id != resolve.id


def test_repeat_renotifies_while_it_lasts_and_stops_when_it_eases() -> None:
    policy = _policy(repeat="30m")
    pending, _ = _fold(policy, [_event(Status.MAJOR_OUTAGE, T0)])
    assert pending is not None
    pending, actions = due(policy, pending, T0 + timedelta(minutes=5))
    pending, actions = due(policy, pending, T0 + timedelta(minutes=34))
    assert actions == []
    pending, actions = due(policy, pending, T0 + timedelta(minutes=35))
    assert [a.kind for a in actions] == ["repeat"]
    assert pending.repeats == 1
    first_repeat = escalation_event(policy, actions[0], T0)
    pending, actions = due(policy, pending, T0 + timedelta(minutes=65))
    second_repeat = escalation_event(policy, actions[0], T0)
    assert first_repeat.id != second_repeat.id
    assert second_repeat.escalation
    assert second_repeat.escalation.count == 2
    eased, _ = _fold(policy, [_event(Status.PARTIAL_OUTAGE, T0 + timedelta(minutes=70))], pending)
    assert eased is not None
    assert due(policy, eased, T0 + timedelta(hours=5))[1] == []


def test_quiet_hours_postpone_the_page_until_they_end() -> None:
    policy = _policy(quiet_hours="22:00-07:00", timezone="Europe/Paris")
    night = datetime(2026, 11, 25, 22, 0, tzinfo=UTC)  # 23:00 in Paris
    pending, _ = _fold(policy, [_event(Status.MAJOR_OUTAGE, night)])
    assert pending is not None
    assert due(policy, pending, night + timedelta(hours=5))[1] == []  # 04:00 Paris
    morning = datetime(2026, 11, 26, 6, 0, tzinfo=UTC)  # 07:00 Paris
    assert [a.kind for a in due(policy, pending, morning)[1]] == ["trigger"]


def test_quiet_hours_never_hold_back_a_resolve() -> None:
    policy = _policy(quiet_hours="00:00-23:59")
    paged = Pending(
        policy=policy.policy_id,
        provider="anthropic",
        episode=EPISODE,
        since=T0,
        status=Status.MAJOR_OUTAGE,
        paged_at=T0,
        snapshot=_event(Status.MAJOR_OUTAGE, T0),
    )
    _, actions = observe(policy, paged, _event(Status.OPERATIONAL, T0 + timedelta(hours=1)))
    assert [a.kind for a in actions] == ["resolve"]


@pytest.mark.parametrize(
    ("hours", "zone", "at", "expected"),
    [
        ("09:00-17:00", "UTC", T0, True),
        ("09:00-17:00", "UTC", T0.replace(hour=17), False),
        ("22:00-07:00", "UTC", T0.replace(hour=23), True),
        ("22:00-07:00", "UTC", T0.replace(hour=6, minute=59), True),
        ("22:00-07:00", "UTC", T0.replace(hour=7), False),
        ("22:00-07:00", "America/New_York", T0.replace(hour=3), True),  # 22:00 in New York
        ("22:00-07:00", "America/New_York", T0.replace(hour=13), False),
    ],
)
def test_quiet_hours_in_the_policy_time_zone(
    hours: str, zone: str, at: datetime, expected: bool
) -> None:
    assert quiet(_policy(quiet_hours=hours, timezone=zone), at) is expected


def test_a_policy_hears_only_its_providers() -> None:
    policy = _policy(providers=["openai"])
    pending, _ = _fold(policy, [_event(Status.MAJOR_OUTAGE, T0, provider="anthropic")])
    assert pending is None
    pending, _ = _fold(policy, [_event(Status.MAJOR_OUTAGE, T0, provider="openai")])
    assert pending is not None


def test_a_new_episode_resolves_a_page_whose_close_went_unseen() -> None:
    policy = _policy(after="0s")
    pending, _ = _fold(policy, [_event(Status.MAJOR_OUTAGE, T0)])
    assert pending is not None
    paged, _ = due(policy, pending, T0)
    later = _event(Status.MAJOR_OUTAGE, T0 + timedelta(hours=1), episode="ep2")
    fresh, actions = observe(policy, paged, later)
    assert [a.kind for a in actions] == ["resolve"]
    assert actions[0].pending.episode == EPISODE
    assert fresh is not None
    assert fresh.episode == "ep2"
    assert fresh.paged_at is None


statuses = st.sampled_from(
    [
        Status.OPERATIONAL,
        Status.DEGRADED,
        Status.PARTIAL_OUTAGE,
        Status.MAJOR_OUTAGE,
        Status.UNKNOWN,
    ]
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(statuses, st.integers(0, 900)), max_size=30), st.integers(0, 600))
def test_never_two_pages_per_episode_and_every_resolve_follows_a_page(
    steps: list[tuple[Status, int]], after: int
) -> None:
    """Any sequence of provider statuses, with the clock ticking between them."""
    policy = _policy(after=f"{after}s")
    pending: Pending | None = None
    now, episode, counter = T0, EPISODE, 0
    triggered: dict[str, int] = {}
    resolved: set[str] = set()
    for status, gap in steps:
        now += timedelta(seconds=gap)
        event = _event(status, now, episode=episode)
        pending, actions = observe(policy, pending, event)
        if pending is not None:
            pending, more = due(policy, pending, now)
            actions += more
        for action in actions:
            key = action.pending.dedup_key
            if action.kind == "trigger":
                triggered[key] = triggered.get(key, 0) + 1
            else:
                assert action.kind == "resolve"
                assert key in triggered
                assert key not in resolved
                resolved.add(key)
        if status is Status.OPERATIONAL:
            counter += 1
            episode = f"ep{counter + 1}"
    assert all(count == 1 for count in triggered.values())


# --------------------------------------------------------------- configuration


def test_policy_ids_default_to_the_kind_and_must_be_unique() -> None:
    config = build_config(
        {
            "providers": [],
            "escalation": [
                {"kind": "pagerduty", "routing_key": "r" * 32},
                {"kind": "webhook", "url": "http://127.0.0.1:9/a"},
                {"kind": "webhook", "url": "http://127.0.0.1:9/b", "name": "Ops bridge"},
            ],
        }
    )
    assert [p.id for p in config.escalation] == ["pagerduty", "webhook-1", "webhook-2"]
    assert [p.label for p in config.escalation] == ["PagerDuty", "webhook", "Ops bridge"]
    with pytest.raises(ConfigError, match="id 'oncall' is also escalation\\[0\\]'s"):
        build_config(
            {
                "providers": [],
                "escalation": [
                    {"kind": "webhook", "url": "http://127.0.0.1:9/a", "id": "oncall"},
                    {"kind": "webhook", "url": "http://127.0.0.1:9/b", "id": "oncall"},
                ],
            }
        )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("quiet_hours", "10pm-7am", "write quiet hours like 22:00-07:00"),
        ("quiet_hours", "25:00-07:00", "not a time range within a day"),
        ("quiet_hours", "07:00-07:00", "are empty"),
        ("timezone", "Mars/Olympus", "unknown time zone 'Mars/Olympus'"),
        ("repeat", "10s", "repeat at most once a minute"),
        ("after", "soon", "escalation[0].after"),
    ],
)
def test_bad_policy_settings_are_named(field: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _config(**{field: value})
    assert message in str(caught.value)


# ------------------------------------------------------------------ routing


def test_only_the_policy_target_gets_its_pages_and_chat_threads_hear_of_it() -> None:
    policy = _policy(name="Platform on-call")
    pending, _ = _fold(policy, [_event(Status.MAJOR_OUTAGE, T0)])
    assert pending is not None
    _, actions = due(policy, pending, T0 + timedelta(minutes=5))
    page = escalation_event(policy, actions[0], T0 + timedelta(minutes=5))
    notifier = RecordingNotifier()
    pager = Target("escalation:webhook", notifier, Route(policy="webhook", updates=False))
    other = Target("escalation:other", notifier, Route(policy="other", updates=False))
    chat = notifier.target("chat")
    thread = {"ts": "1.000", "event": "x"}
    assert route(page, pager, None) is Intent.NOTICE
    assert route(page, other, None) is None
    assert route(page, chat, thread) is Intent.UPDATE
    assert route(page, chat, None) is None  # no thread there: nothing to add to
    outage = _event(Status.MAJOR_OUTAGE, T0)
    assert route(outage, pager, None) is None  # a pager hears nothing but its pages
    notice = compose(page)
    assert notice.title == "Anthropic: Paged Platform on-call (webhook)"
    assert "at 2026-11-25 12:05 UTC" in notice.text
    assert "for 5m" in notice.text


# ------------------------------------------------------------------ the service


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(params=["memory", "redis"])
async def store(
    request: pytest.FixtureRequest, redis_server: RedisServer, key_prefix: str
) -> AsyncIterator[Store]:
    made: Store = (
        MemoryStore()
        if request.param == "memory"
        else RedisStore(redis_server.url, prefix=key_prefix)
    )
    await made.open()
    yield made
    await made.close()


async def _escalations(store: Store) -> list[Event]:
    """Escalation events, oldest first."""
    newest_first = await store.recent_events(100)
    return [e for e in reversed(newest_first) if e.type == "escalation"]


async def test_the_escalator_resumes_after_a_restart_and_never_pages_twice(store: Store) -> None:
    config = _config()
    clock = Clock(T0)
    settings = EscalatorSettings(instance="one")
    first = Escalator(config, store, settings, clock=clock)
    await first.start()
    await store.append(_event(Status.MAJOR_OUTAGE, T0))
    assert await first.step() == 1
    await first.tick()
    assert await _escalations(store) == []
    assert len(first.pending) == 1

    # a new process (the first died): it knows what is pending from the store
    clock.now = T0 + timedelta(minutes=6)
    second = Escalator(config, store, settings, clock=clock)
    await second.start()
    await second.tick()
    await second.tick()
    pages = await _escalations(store)
    assert [p.escalation.action for p in pages if p.escalation] == ["trigger"]

    # the same decision made again after a crash before saving: the same event id
    third = Escalator(config, store, settings, clock=clock)
    await third.start()
    third.pending = {k: v.model_copy(update={"paged_at": None}) for k, v in third.pending.items()}
    await third.tick()
    again = await _escalations(store)
    assert len(again) == 2
    assert again[0].id == again[1].id

    await store.append(_event(Status.OPERATIONAL, T0 + timedelta(minutes=9)))
    await third.step()
    done = await _escalations(store)
    assert [p.escalation.action for p in done if p.escalation][-1] == "resolve"
    assert third.pending == {}
    assert await store.get_value("escalations") == "{}"


async def test_an_unread_backlog_is_caught_up_before_the_clock_speaks(store: Store) -> None:
    """Events that piled up while no escalator ran: an outage that already ended pages nobody."""
    config = _config()
    clock = Clock(T0 + timedelta(hours=1))
    escalator = Escalator(config, store, EscalatorSettings(instance="one", batch=1), clock=clock)
    await store.ensure_group(GROUP)
    await store.append(_event(Status.MAJOR_OUTAGE, T0))
    await store.append(_event(Status.OPERATIONAL, T0 + timedelta(minutes=20)))
    await escalator.start()
    while await escalator.step() == escalator.settings.batch:
        pass
    await escalator.tick()
    assert await _escalations(store) == []


async def test_a_policy_removed_from_the_config_drops_its_pending_escalations(
    store: Store,
) -> None:
    first = Escalator(_config(id="old"), store, EscalatorSettings(instance="a"), clock=Clock(T0))
    await first.start()
    await store.append(_event(Status.MAJOR_OUTAGE, T0))
    await first.step()
    assert first.pending
    second = Escalator(_config(id="new"), store, EscalatorSettings(instance="a"), clock=Clock(T0))
    await second.start()
    assert second.pending == {}


def test_the_readme_verification_snippet_accepts_our_signature_and_nothing_else() -> None:
    """The snippet users copy is run here, against the signer tocsin uses."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "def verify" in b)
    scope: dict[str, Any] = {}
    exec(block, scope)  # noqa: S102 - our own README, on purpose
    verify = scope["verify"]
    body = b'{"v": 1, "type": "escalation"}'
    stamp = str(int(time.time()))
    headers = {"X-Tocsin-Timestamp": stamp, "X-Tocsin-Signature": sign("s3cret", stamp, body)}
    assert verify("s3cret", headers, body)
    assert not verify("other", headers, body)
    assert not verify("s3cret", headers, body + b" ")
    stale = str(int(time.time()) - 600)
    old = {"X-Tocsin-Timestamp": stale, "X-Tocsin-Signature": sign("s3cret", stale, body)}
    assert not verify("s3cret", old, body)
    assert not verify("s3cret", {}, body)


def _stored_pending(**fields: Any) -> str:
    """The escalations value with one pending escalation, some of its fields replaced."""
    pending = Pending(
        policy="webhook",
        provider="anthropic",
        episode=EPISODE,
        since=T0,
        status=Status.MAJOR_OUTAGE,
        snapshot=_event(Status.MAJOR_OUTAGE, T0),
    ).model_dump(mode="json", by_alias=True)
    return json.dumps({"webhook|anthropic": {**pending, **fields}})


#: Values under the escalations key that are not pending escalations tocsin wrote.
HOSTILE_ESCALATIONS = {
    "not JSON": "{not json",
    "a JSON list": "[1, 2]",
    "a field missing": '{"webhook|anthropic": {"x": 1}}',
    "nested 100,000 deep": "[" * 100_000 + "]" * 100_000,
    "an escalation nested 100,000 deep": '{"a": ' + '{"b": ' * 100_000 + "1" + "}" * 100_001,
    "5 MB": json.dumps({"webhook|anthropic": {"policy": "webhook", "x": "y" * 5_000_000}}),
    "the year 9999": _stored_pending(since="9999-12-31T23:59:59+00:00"),
    "the year 1": _stored_pending(paged_at="0001-01-01T00:00:00+14:00"),
    "no time zone": _stored_pending(since="2026-11-25T12:00:00"),
    "a wrong type": _stored_pending(status=["major_outage"]),
}


@pytest.mark.parametrize("garbage", HOSTILE_ESCALATIONS.values(), ids=HOSTILE_ESCALATIONS.keys())
async def test_unreadable_pending_escalations_are_dropped_not_fatal(
    store: Store, garbage: str
) -> None:
    await store.set_value("escalations", garbage)
    escalator = Escalator(_config(), store, EscalatorSettings(instance="a"), clock=Clock(T0))
    await escalator.start()
    assert escalator.pending == {}
    await store.append(_event(Status.MAJOR_OUTAGE, T0))
    await escalator.step()
    assert len(escalator.pending) == 1  # and it works on
    await escalator.tick()
    assert await pending_escalations(store) != []


async def test_an_event_of_an_unknown_schema_version_starts_no_escalation(
    redis_server: RedisServer, key_prefix: str
) -> None:
    """A newer tocsin's event is not guessed at: it pages nobody (the dispatcher
    dead-letters it), and the escalator reads on past it."""
    store = RedisStore(redis_server.url, prefix=key_prefix)
    escalator = Escalator(_config(), store, EscalatorSettings(instance="a"), clock=Clock(T0))
    raw = aioredis.Redis.from_url(redis_server.url)
    try:
        await escalator.start()
        future = json.loads(_event(Status.MAJOR_OUTAGE, T0).to_json())
        await raw.xadd(f"{key_prefix}events", {"event": json.dumps({**future, "v": 2})})
        assert await escalator.step() == 1
        assert escalator.pending == {}
        await store.append(_event(Status.MAJOR_OUTAGE, T0))
        assert await escalator.step() == 1
        assert len(escalator.pending) == 1
    finally:
        await raw.aclose()
        await store.close()


async def _run_escalator(
    escalator: Escalator, pages: int, store: Store, clock: Clock
) -> list[dict[str, Any]]:
    """Run the service until ``pages`` escalation events are in the stream (moving the clock
    past ``after``); the log lines it wrote meanwhile."""
    stop = asyncio.Event()
    await store.ensure_group(GROUP)  # the outage is appended after the group exists
    with capture_logs() as logs:
        task = asyncio.create_task(escalator.run(stop))
        try:
            await store.append(_event(Status.MAJOR_OUTAGE, T0))
            await until(lambda: bool(escalator.pending))
            clock.now = T0 + timedelta(minutes=6)

            async def paged() -> bool:
                return len(await _escalations(store)) >= pages

            await until(paged)
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
    return logs


#: Hostile values no other test stored (``tag``: the test's own), so "said once" is this
#: test's line, not one an earlier test's identical value already had.
FRESH_HOSTILE_ESCALATIONS: dict[str, Callable[[str], str]] = {
    "nested 100,000 deep": lambda tag: f'["{tag}", ' + "[" * 99_999 + "]" * 100_000,
    "the year 9999": lambda tag: _stored_pending(since="9999-12-31T23:59:59+00:00", episode=tag),
}


@pytest.mark.parametrize("kind", FRESH_HOSTILE_ESCALATIONS)
async def test_a_hostile_escalations_value_is_said_once_and_a_new_outage_still_pages(
    store: Store, key_prefix: str, kind: str
) -> None:
    """It used to crash the escalator once a second (RecursionError, OverflowError), paging
    nobody; and ``/healthz`` said "not leading" while the metric said 1."""
    await store.set_value("escalations", FRESH_HOSTILE_ESCALATIONS[kind](key_prefix))
    clock = Clock(T0)
    settings = EscalatorSettings(instance="a", tick=0.05, store_retry=0.05)
    escalator = Escalator(_config(), store, settings, clock=clock)
    logs = await _run_escalator(escalator, 1, store, clock)
    [page] = await _escalations(store)
    assert page.escalation is not None
    assert page.escalation.action == "trigger"
    dropped = [e for e in logs if e["event"] == "an unreadable value in the store is ignored"]
    assert len(dropped) == 1, logs
    assert not [e for e in logs if e["event"] == "the escalator failed; starting over"], logs


async def test_health_and_the_leader_metric_agree_when_the_escalator_fails(
    redis_server: RedisServer, key_prefix: str
) -> None:
    """A Redis user without the right to read the stream (a managed Redis's ACL): every
    takeover fails. Whatever the escalator says of itself, the metric says too (it used to
    stay 1)."""
    raw = aioredis.Redis.from_url(redis_server.url)
    user = f"limited-{key_prefix.rstrip(':')}"
    await raw.execute_command(
        "ACL", "SETUSER", user, "on", ">pw-limited", "~*", "&*", "+@all", "-xreadgroup"
    )
    url = redis_server.url.replace("redis://", f"redis://{user}:pw-limited@")
    store = RedisStore(url, prefix=key_prefix)
    settings = EscalatorSettings(instance="a", store_retry=30.0)
    escalator = Escalator(_config(), store, settings, clock=Clock(T0))
    stop = asyncio.Event()
    with capture_logs() as logs:
        task = asyncio.create_task(escalator.run(stop))
        try:
            await until(lambda: any(e["event"].startswith("the escalator failed") for e in logs))
            assert escalator.leader is False
            assert REGISTRY.get_sample_value("tocsin_escalator_leader") == 0
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
            await store.close()
            await raw.execute_command("ACL", "DELUSER", user)
            await raw.aclose()


async def test_two_escalators_with_the_same_instance_name_never_both_lead(
    redis_server: RedisServer, key_prefix: str
) -> None:
    """Two processes on one host, both named after it: the lease holder is the name plus a
    boot token, so one decides; the other takes over once it stops (released at once)."""
    stores = [RedisStore(redis_server.url, prefix=key_prefix) for _ in range(2)]
    settings = EscalatorSettings(instance="web-1", lease=1.0, tick=0.05)
    escalators = [Escalator(_config(), s, settings, clock=Clock(T0)) for s in stores]
    assert escalators[0].lease.holder != escalators[1].lease.holder
    stops = [asyncio.Event(), asyncio.Event()]
    tasks = [asyncio.create_task(e.run(stop)) for e, stop in zip(escalators, stops, strict=True)]
    try:
        await until(lambda: any(e.leader for e in escalators))
        first = next(i for i, e in enumerate(escalators) if e.leader)
        other = 1 - first
        # both keep trying every lease / 3 (a third of a second): several rounds, one leader
        holder = escalators[first].lease.holder
        for _ in range(6):
            assert await stores[other].lease_holder("escalator") == holder
            assert not escalators[other].leader
            await escalators[other].lease.acquire()  # what its loop does; never ours
        stops[first].set()
        await asyncio.wait_for(tasks[first], 10)
        await until(lambda: escalators[other].leader, timeout=5)
        assert not escalators[first].leader
    finally:
        for stop in stops:
            stop.set()
        await asyncio.gather(*tasks)
        for made in stores:
            await made.close()


async def test_tocsin_status_shows_waiting_and_sent_pages(
    redis_server: RedisServer, key_prefix: str, tmp_path: Path
) -> None:
    document = {
        "store": {"url": redis_server.url, "prefix": key_prefix},
        "providers": [{"id": "anthropic"}, {"id": "openai"}],
        "escalation": [
            {"kind": "webhook", "url": "http://127.0.0.1:9/hook", "name": "Ops bridge"},
            {"kind": "webhook", "url": "http://127.0.0.1:9/b", "after": "1h", "id": "slow"},
        ],
    }
    path = tmp_path / "tocsin.yaml"
    path.write_text(yaml.safe_dump(document))
    store = RedisStore(redis_server.url, prefix=key_prefix)
    await store.open()
    escalator = Escalator(
        build_config(document), store, EscalatorSettings(instance="a"), clock=utcnow
    )
    await escalator.start()
    await store.append(_event(Status.MAJOR_OUTAGE, utcnow()))
    await escalator.step()
    await escalator.tick()
    await store.close()
    proc = await asyncio.create_subprocess_exec(
        str(TOCSIN),
        "status",
        "--config",
        str(path),
        env=cli_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output = (await proc.communicate())[0].decode()
    assert proc.returncode == 0, output
    assert "escalations" in output
    assert "Ops bridge" in output
    assert re.search(rf"sent \d+s ago \(tocsin:{EPISODE}\)", output), output
    assert "waiting: due in 59m" in output or "waiting: due in 1h" in output


#: What ``tocsin status`` used to crash on (RecursionError, OverflowError, UnicodeDecodeError).
STATUS_HOSTILE: dict[str, bytes] = {
    "nested 100,000 deep": HOSTILE_ESCALATIONS["nested 100,000 deep"].encode(),
    "5 MB": HOSTILE_ESCALATIONS["5 MB"].encode(),
    "the year 9999": HOSTILE_ESCALATIONS["the year 9999"].encode(),
    "not UTF-8": b"\xff\xfe" + HOSTILE_ESCALATIONS["the year 9999"].encode(),
}


@pytest.mark.parametrize("garbage", STATUS_HOSTILE.values(), ids=STATUS_HOSTILE.keys())
async def test_tocsin_status_prints_its_table_despite_hostile_values_in_redis(
    redis_server: RedisServer, key_prefix: str, tmp_path: Path, garbage: bytes
) -> None:
    document = {
        "store": {"url": redis_server.url, "prefix": key_prefix},
        "providers": [{"id": "anthropic"}, {"id": "openai"}],
        "escalation": [{"kind": "webhook", "url": "http://127.0.0.1:9/hook", "after": "5m"}],
    }
    path = tmp_path / "tocsin.yaml"
    path.write_text(yaml.safe_dump(document))
    raw = aioredis.Redis.from_url(redis_server.url)
    try:
        await raw.set(f"{key_prefix}kv:escalations", garbage)
        await raw.hset(f"{key_prefix}state", "openai/api", garbage)  # and a hostile state
    finally:
        await raw.aclose()
    proc = await asyncio.create_subprocess_exec(
        str(TOCSIN),
        "status",
        "--config",
        str(path),
        env=cli_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out_bytes, err_bytes = await proc.communicate()
    out, err = out_bytes.decode(), err_bytes.decode()
    assert proc.returncode == 0, out + err
    assert "tocsin status" in out
    assert "Anthropic" in out
    assert "OpenAI" in out
    assert "Traceback" not in out + err
    assert "unreadable value" not in out  # the store's word on it is a log line: stderr
    assert "unreadable value" in err
