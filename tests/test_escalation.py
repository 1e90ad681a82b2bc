"""Escalation decisions with an injected clock: ``after``, ``repeat``, quiet hours, resolves.

The pure rules (:func:`observe`, :func:`due`) first, then the :class:`Escalator` service on
both stores: it resumes after a restart, never pages twice, and routes only to its policy.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.dispatcher import route
from bot.escalation import (
    GROUP,
    Escalator,
    EscalatorSettings,
    Pending,
    due,
    escalation_event,
    observe,
    quiet,
)
from bot.models import Event, Status, utcnow
from bot.notices import compose
from bot.notify import Intent, Route, Target
from bot.store import MemoryStore, RedisStore, Store
from config.loader import ConfigError, build_config
from config.schema import EscalationPolicy, TocsinConfig
from handlers.escalation.webhook import sign
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


@pytest.mark.parametrize("garbage", ["{not json", "[1, 2]", '{"webhook|anthropic": {"x": 1}}'])
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
