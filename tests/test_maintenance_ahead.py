"""Maintenance ahead: the pure decision (which planned window owes which notice), and end to
end over real sockets: a fake status page announces a window; the real watcher appends one
``maintenance_scheduled``, one ``maintenance_soon`` an hour before, never again (more reads, a
restart on the same store, Redis or embedded); the window then shows as ``maintenance``;
Slack channels that hear degraded get both notices once, those that hear only major outages
none."""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from bot.compose import compose
from bot.maintenance_ahead import Due, MaintenanceAhead, decide, event_for, event_id, upcoming
from bot.models import MAINTENANCE_AHEAD_EVENTS, Event, Status
from bot.notifier import Intent
from bot.routing import route
from bot.sources.reading import PlannedWindow
from bot.sources.statuspage import StatuspageSource, parse_summary
from bot.store import MemoryStore, RedisStore, Store
from bot.tracker import Tracker, TrackerSettings
from bot.watcher import Watcher, WatcherSettings
from config.loader import build_config
from config.schema import TocsinConfig
from handlers import build_targets
from tests.fakes.slack import FakeSlack
from tests.fakes.status_server import FakeStatusServer, fixture_json
from tests.redis_server import RedisServer
from tests.running import Running

SUMMARY = "/api/v2/summary.json"
CLAUDE_AI = "rwppv331jlwc"
CONSOLE = "0qbwn08sd68x"
START = datetime(2026, 12, 5, 2, 0, tzinfo=UTC)  # a Saturday
UNTIL = datetime(2026, 12, 5, 4, 0, tzinfo=UTC)
LEAD = timedelta(hours=1)
ALL, MAJOR, ADMIN = "C0ALL00001", "C0MAJOR001", "C0ADMIN001"


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


def _window(
    start: datetime = START, components: tuple[tuple[str, str], ...] = ((CLAUDE_AI, "claude.ai"),)
) -> PlannedWindow:
    return PlannedWindow("m1", "Database upgrade", start, UNTIL, components)


def _maintenance(
    status: str = "scheduled", start: datetime = START, **changes: Any
) -> dict[str, Any]:
    """A real maintenance of the captured Anthropic page, moved to ``start``."""
    raw = copy.deepcopy(fixture_json("statuspage_maintenances_anthropic.json"))
    item: dict[str, Any] = raw["scheduled_maintenances"][0]
    item.update(
        status=status,
        scheduled_for=start.isoformat(),
        scheduled_until=(start + (UNTIL - START)).isoformat(),
        resolved_at=None,
    )
    item["incident_updates"] = [u for u in item["incident_updates"] if u["status"] == status][:1]
    item.update(changes)
    return item


def _summary(*maintenances: dict[str, Any]) -> dict[str, Any]:
    payload = copy.deepcopy(fixture_json("statuspage_summary_anthropic_operational.json"))
    payload["scheduled_maintenances"] = list(maintenances)
    return payload


# ------------------------------------------------------------------ the decision


def test_a_window_far_ahead_owes_one_scheduled_notice() -> None:
    now = START - timedelta(hours=3)
    assert decide(START, now, LEAD, told_scheduled=False, told_soon=False) == (
        "maintenance_scheduled",
        False,
    )
    assert decide(START, now, LEAD, told_scheduled=True, told_soon=False) is None


def test_inside_the_lead_it_owes_soon_once() -> None:
    now = START - timedelta(minutes=59)
    assert decide(START, now, LEAD, told_scheduled=True, told_soon=False) == (
        "maintenance_soon",
        False,
    )
    assert decide(START, now, LEAD, told_scheduled=True, told_soon=True) is None


def test_first_seen_inside_the_lead_is_one_notice_not_two() -> None:
    now = START - timedelta(minutes=10)
    assert decide(START, now, LEAD, told_scheduled=False, told_soon=False) == (
        "maintenance_soon",
        True,
    )
    assert decide(START, now, LEAD, told_scheduled=False, told_soon=True) is None


def test_a_started_window_owes_nothing() -> None:
    for now in (START, START + timedelta(minutes=1)):
        assert decide(START, now, LEAD, told_scheduled=False, told_soon=False) is None


def test_only_watched_future_windows_within_the_horizon_soonest_first_at_most_20() -> None:
    now = START - timedelta(days=1)
    past = _window(now - timedelta(minutes=1))
    far = _window(now + timedelta(days=61))
    doomsday = _window(datetime(9999, 12, 31, tzinfo=UTC))
    others = _window(components=((CONSOLE, "Console"),))
    everything = _window(START + timedelta(hours=1), components=())  # names none: all
    mine = _window()
    found = upcoming([past, far, doomsday, others, everything, mine], [CLAUDE_AI], now)
    assert [w for w, _ in found] == [mine, everything]
    assert found[1][1] == ()
    assert upcoming([others], None, now)[0][1] == ((CONSOLE, "Console"),)  # watching all
    many = [_window(START + timedelta(minutes=i)) for i in range(100, 0, -1)]
    found = upcoming(many, [CLAUDE_AI], now)
    assert len(found) == 20
    assert found[0][0].scheduled_for == START + timedelta(minutes=1)


def test_a_rescheduled_window_is_another_window() -> None:
    moved = _window(START + timedelta(hours=2))
    assert event_id("p", _window(), "maintenance_soon") != event_id("p", moved, "maintenance_soon")
    assert event_id("p", _window(), "maintenance_soon") == event_id(
        "p", _window(), "maintenance_soon"
    )


async def test_rescheduled_notices_again_and_a_store_keeps_the_marks() -> None:
    store = MemoryStore()
    clock = Clock(START - timedelta(hours=3))
    source = StatuspageSource("anthropic", "https://status.example", components=[CLAUDE_AI])
    ahead = MaintenanceAhead(store, {"anthropic": "Anthropic"}, clock=clock)
    source.planned = [_window()]
    assert [e.type for e in await ahead.after_read(source)] == ["maintenance_scheduled"]
    assert await ahead.after_read(source) == []
    source.planned = [_window(START + timedelta(hours=2))]  # moved: a new window
    assert [e.type for e in await ahead.after_read(source)] == ["maintenance_scheduled"]
    upstream = StatuspageSource("cloudflare", "https://cf.example")
    upstream.planned = [_window(components=())]
    assert await ahead.after_read(upstream) == []  # not a watched provider: never announced


def test_hostile_windows_are_bounded_or_ignored_and_the_page_still_reads() -> None:
    now = START - timedelta(hours=3)
    hostile = [
        _maintenance(id="huge", name="<!channel> @everyone " + "x" * 1_000_000),
        _maintenance(id="js", shortlink="javascript:alert(1)"),
        _maintenance(id="doom", scheduled_for="9999-12-31T23:59:59-05:00"),
        _maintenance(id="garbage", scheduled_for="next tuesday"),
        _maintenance(id="dict", components={"id": CLAUDE_AI}),
        _maintenance(id="posts", incident_updates=5),
        _maintenance(id=["not", "a", "string"]),
        *(_maintenance(id=f"many{i}", start=START + timedelta(minutes=i)) for i in range(200)),
    ]
    reading = parse_summary(_summary(*hostile), "test", page_url="https://status.example")
    assert len(reading.components) == 6  # the page's own readings are all there
    assert len(reading.planned) == 50
    by_id = {w.id: w for w in reading.planned}
    assert len(by_id["huge"].title) <= 200
    assert by_id["js"].url == "https://status.example/incidents/js"
    assert "dict" not in by_id
    assert "garbage" not in by_id
    assert by_id["posts"].update == ""
    found = upcoming(reading.planned, [CLAUDE_AI], now)
    assert len(found) == 20
    assert "doom" not in {w.id for w, _ in found}
    huge = next(w for w in reading.planned if w.id == "huge")
    event = event_for(
        Due("maintenance_scheduled", huge, huge.components),
        provider="anthropic",
        provider_name="Anthropic",
        source="anthropic:statuspage",
        now=now,
        lead=3600,
    )
    notice = compose(Event.from_json(event.to_json()))
    assert len(notice.title) < 100
    assert len(notice.text) < 700


# ------------------------------------------------------------------ end to end


@pytest.fixture(params=["memory", "redis"])
async def store(
    request: pytest.FixtureRequest, redis_server: RedisServer, key_prefix: str
) -> AsyncIterator[Store]:
    made: Store = (
        MemoryStore()
        if request.param == "memory"
        else RedisStore(redis_server.url, prefix=key_prefix)
    )
    yield made
    await made.close()


async def _ahead_events(store: Store) -> list[Event]:
    return [
        e for e in reversed(await store.recent_events(100)) if e.type in MAINTENANCE_AHEAD_EVENTS
    ]


def _watcher(
    server: FakeStatusServer, store: Store, clock: Clock, client: httpx.AsyncClient
) -> tuple[Watcher, StatuspageSource]:
    source = StatuspageSource("anthropic", server.url, components=[CLAUDE_AI])
    ahead = MaintenanceAhead(store, {"anthropic": "Anthropic"}, clock=clock)
    settings = WatcherSettings(instance="solo", jitter=0.0)
    tracker = Tracker(TrackerSettings(), names={"anthropic": "Anthropic"})
    return Watcher([source], tracker, store, settings, client, maintenance=ahead), source


async def test_each_notice_once_across_reads_and_a_restart_then_maintenance(
    status_server: FakeStatusServer, store: Store
) -> None:
    status_server.set_json(SUMMARY, _summary(_maintenance()), etag=True)
    clock = Clock(START - timedelta(hours=3))
    async with httpx.AsyncClient() as client:
        watcher, source = _watcher(status_server, store, clock, client)
        await watcher.run_source(source)
        [scheduled] = await _ahead_events(store)
        assert scheduled.type == "maintenance_scheduled"
        assert scheduled.incident is not None
        assert scheduled.incident.scheduled_for == START
        assert scheduled.component == CLAUDE_AI
        assert scheduled.component_name == "claude.ai"
        for _ in range(3):
            await watcher.run_source(source)
        assert len(await _ahead_events(store)) == 1

        clock.now = START - timedelta(minutes=59)
        await watcher.run_source(source)
        events = await _ahead_events(store)
        assert [e.type for e in events] == ["maintenance_scheduled", "maintenance_soon"]
        assert compose(events[1]).title == "Anthropic: maintenance starts in 59 min"
        await watcher.run_source(source)

        again, fresh = _watcher(status_server, store, clock, client)  # a restart
        await again.run_source(fresh)
        await again.run_source(fresh)
        assert len(await _ahead_events(store)) == 2

        status_server.set_json(SUMMARY, _summary(_maintenance("in_progress")), etag=True)
        clock.now = START + timedelta(minutes=1)
        await again.run_source(fresh)
        state = (await store.states())[f"anthropic/{CLAUDE_AI}"]
        assert state.status is Status.MAINTENANCE
        assert len(await _ahead_events(store)) == 2


async def test_a_window_first_seen_inside_the_lead_gets_one_notice(
    status_server: FakeStatusServer,
) -> None:
    status_server.set_json(SUMMARY, _summary(_maintenance()))
    store = MemoryStore()
    clock = Clock(START - timedelta(minutes=20))
    async with httpx.AsyncClient() as client:
        watcher, source = _watcher(status_server, store, clock, client)
        await watcher.run_source(source)
        await watcher.run_source(source)
    [soon] = await _ahead_events(store)
    assert soon.type == "maintenance_soon"
    notice = compose(soon)
    assert notice.title == "Anthropic: maintenance starts in 20 min"
    assert "Just scheduled" in notice.text


# ------------------------------------------------------------------ routing and Slack


def _config(page: FakeStatusServer, slack: FakeSlack | None = None) -> TocsinConfig:
    api_url = slack.api_url if slack else "http://127.0.0.1:9/api"
    return build_config(
        {
            "store": {},
            "server": {"enabled": False},
            "instance": "maint",
            "console": {"enabled": False},
            "watch": {"jitter": "0s", "timeout": "2s"},
            "providers": [
                {
                    "id": "anthropic",
                    "name": "Anthropic",
                    "status_page": {
                        "kind": "statuspage",
                        "url": page.url,
                        "components": [CLAUDE_AI],
                        "interval": "200ms",
                    },
                }
            ],
            "slack": {
                "api_url": api_url,
                "bot_token": slack.bot_token if slack else "xoxb-test",
                "app_token": slack.app_token if slack else "xapp-test",
                "admin_channel": ADMIN,
                "channels": [
                    {"id": ALL, "providers": "all", "min_status": "degraded"},
                    {"id": MAJOR, "providers": ["anthropic"], "min_status": "major_outage"},
                ],
            },
        }
    )


def test_degraded_channels_get_a_notice_and_major_only_ones_do_not(
    status_server: FakeStatusServer,
) -> None:
    targets = {t.key: t for t in build_targets(_config(status_server), store=MemoryStore())}
    window = _window()
    for kind in ("maintenance_scheduled", "maintenance_soon"):
        event = Event(
            id=event_id("anthropic", window, kind),
            type=kind,
            provider="anthropic",
            provider_name="Anthropic",
            at=START - timedelta(hours=3),
        )
        assert route(event, targets[f"slack:{ALL}"], None) is Intent.NOTICE
        assert route(event, targets[f"slack:{MAJOR}"], None) is None
        assert route(event, targets[f"slack-admin:{ADMIN}"], None) is None
        elsewhere = event.model_copy(update={"provider": "openai"})
        assert route(elsewhere, targets[f"slack:{MAJOR}"], None) is None


async def _until(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.05)


async def test_slack_hears_each_notice_once(status_server: FakeStatusServer) -> None:
    status_server.set_json(SUMMARY, _summary(_maintenance()))
    async with FakeSlack() as slack:
        for channel, name in ((ALL, "ai-incidents"), (MAJOR, "outages"), (ADMIN, "admin")):
            slack.add_channel(channel, name)
        running = Running(_config(status_server, slack))
        watcher = running.runtime.watcher
        assert watcher is not None
        assert watcher.maintenance is not None
        clock = Clock(START - timedelta(hours=3))
        watcher.maintenance.clock = clock
        try:
            await _until(lambda: len(slack.top_level(ALL)) == 1)
            clock.now = START - timedelta(minutes=59)
            await _until(lambda: len(slack.top_level(ALL)) == 2)
            reads = status_server.count(SUMMARY)
            await _until(lambda: status_server.count(SUMMARY) >= reads + 4)
            await asyncio.sleep(0.5)  # time for a duplicate to arrive, if any
        finally:
            await running.halt()
        texts = [m.text for m in slack.top_level(ALL)]
        assert len(texts) == 2
        assert "maintenance scheduled" in texts[0]
        assert "starts in 59 min" in texts[1]
        assert slack.top_level(MAJOR) == []
        assert slack.top_level(ADMIN) == []
        assert slack.violations == []
