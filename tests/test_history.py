"""History that lasts (issue 16): the scripted 90 days folded by the real recorder into the
embedded store and a real redis-server, read back as bars, uptime, episodes and the report,
against figures worked out by hand (tests/history_script.py)."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.history.model import Cursor, EpisodeRecord, LatencySample
from bot.history.queries import overview, report
from bot.history.recorder import HistoryRecorder, RecorderSettings, fold, split_by_day
from bot.models import Event, Status
from bot.store import MemoryStore, RedisStore, Store
from bot.store.sqlite import SqliteStore
from config.loader import build_config
from tests.chaos import until
from tests.fakes.status_server import FakeStatusServer, fixture_json
from tests.history_script import (
    ACME_UPTIME_30D,
    INCIDENT_TITLES,
    NOW,
    PROVIDERS,
    day,
    events,
    write_scripted_history,
)
from tests.redis_server import RedisServer
from tests.running import Running
from tests.test_cli import atocsin, write_config

API = "k8w3r06qmzrp"
SUMMARY = "/api/v2/summary.json"
MODELS = "/v1/models"

CONFIG = build_config(
    {
        "providers": [
            {"id": provider, "name": name, "probe": {"url": "http://127.0.0.1:9/"}}
            for provider, name in PROVIDERS.items()
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
    yield made
    await made.close()


def test_a_span_is_split_at_each_utc_midnight() -> None:
    parts = split_by_day(day(-1, 23, 30), day(1, 0, 15))
    assert [(d, s) for d, s in parts] == [
        (day(-1).date(), 1800.0),
        (day(0).date(), 86_400.0),
        (day(1).date(), 900.0),
    ]


def test_a_replayed_or_older_event_is_not_counted_twice() -> None:
    first, second = events()[0], events()[3]
    made = fold(None, None, first)
    assert made is not None
    assert fold(made.cursor, None, first) is None  # the same event again
    later = fold(made.cursor, None, second)
    assert later is not None
    older = second.model_copy(update={"id": "other", "at": first.at - timedelta(days=1)})
    assert fold(later.cursor, later.episode, older) is None
    assert fold(made.cursor, None, Event(type="drill", provider="acme")) is None


async def test_the_scripted_history_reads_back_as_worked_out_by_hand(store: Store) -> None:
    assert await write_scripted_history(store) == len(events())
    found = {h.provider: h for h in await overview(store, CONFIG, now=NOW)}
    acme, zeta, newco = found["acme"], found["zeta"], found["newco"]
    assert len(acme.days) == 90
    assert acme.days[-1].day == NOW.date()
    assert acme.uptime(30) == pytest.approx(ACME_UPTIME_30D, abs=1e-9)
    assert f"{acme.uptime(30):.4%}" == "99.6469%"
    colours = {c.day: c.worst for c in acme.days}
    assert colours[day(-60).date()] is Status.MAJOR_OUTAGE
    assert colours[day(-20).date()] is Status.PARTIAL_OUTAGE
    assert colours[day(-1).date()] is Status.MAJOR_OUTAGE
    assert colours[day(0).date()] is Status.MAJOR_OUTAGE  # the half hour after midnight
    assert colours[day(-30).date()] is Status.OPERATIONAL
    by_day = {c.day: c for c in acme.days}
    assert by_day[day(-60).date()].minutes_down == 60
    assert by_day[day(-20).date()].minutes_down == 60
    assert by_day[day(-20).date()].minutes_degraded == 30
    assert by_day[day(-1).date()].minutes_down == 30
    assert by_day[day(0).date()].minutes_down == 30
    assert by_day[day(-60).date()].incidents == (INCIDENT_TITLES[0],)
    assert by_day[day(0).date()].incidents == (INCIDENT_TITLES[2],)
    assert by_day[day(0).date()].measured == 12 * 3600  # today, until noon
    # zeta: maintenance is up, and shows as maintenance
    assert {c.day: c.worst for c in zeta.days}[day(-10).date()] is Status.MAINTENANCE
    assert zeta.uptime(90) == 1.0
    assert [e.worst for e in zeta.episodes] == [Status.MAINTENANCE]
    # newco: nothing measured before it was first seen
    assert [c.worst for c in newco.days[:84]] == [None] * 84
    assert newco.days[85].worst is Status.OPERATIONAL
    assert newco.uptime(90) == 1.0
    # episodes, newest first, with lead and lag
    assert [e.started for e in acme.episodes] == [day(-1, 23, 30), day(-20, 8), day(-60, 10)]
    last, middle, first = acme.episodes
    assert first.lead == timedelta(minutes=12)
    assert first.page_lag == timedelta(minutes=12)
    assert first.worst is Status.MAJOR_OUTAGE
    assert first.suspected_by == "acme:probe"
    assert first.updates[0].text == "We are investigating elevated errors."
    assert middle.lead is None  # the page was first: no probe suspicion
    assert middle.page_lag == timedelta(0)
    assert middle.worst is Status.PARTIAL_OUTAGE
    assert last.lead == timedelta(minutes=10)
    assert last.duration(NOW) == timedelta(hours=1)
    assert acme.open_episode is None


async def test_the_report_as_worked_out_by_hand(store: Store) -> None:
    await write_scripted_history(store)
    rows = {r.provider: r for r in await report(store, CONFIG, days=30, now=NOW)}
    acme = rows["acme"]
    assert acme.uptime == pytest.approx(ACME_UPTIME_30D, abs=1e-9)
    assert acme.incidents == 2  # days -20 and -1 fall in the last 30 days; day -60 does not
    assert acme.downtime == timedelta(minutes=120)  # 60 partial + 60 major (degraded is not down)
    assert acme.mttr == timedelta(minutes=75)  # (90 + 60) / 2
    assert acme.median_lead == timedelta(minutes=10)  # only episode 3 has one
    assert acme.median_page_lag == timedelta(minutes=5)  # median of 0 and 10
    ninety = {r.provider: r for r in await report(store, CONFIG, days=90, now=NOW)}["acme"]
    assert ninety.incidents == 3
    assert ninety.median_lead == timedelta(minutes=11)
    assert ninety.mttr == timedelta(minutes=70)  # (60 + 90 + 60) / 3
    assert rows["zeta"].incidents == 0  # planned work is an episode, not an incident
    assert rows["zeta"].downtime == timedelta(0)
    assert rows["newco"].uptime == 1.0


async def test_a_restart_in_the_middle_changes_no_figure(store: Store) -> None:
    """The recorder stops after day -20's outage began and a new one takes over from the
    store's cursors and open episodes: the figures are those of one run."""
    await write_scripted_history(store, until=day(-20, 8, 30))
    await write_scripted_history(store)  # a new recorder: replays from the start, skips
    rows = {r.provider: r for r in await report(store, CONFIG, days=90, now=NOW)}
    assert rows["acme"].uptime == pytest.approx(
        1 - (60 + 90 + 60) * 60 / ((89 * 86_400) + 12 * 3600), abs=1e-9
    )
    assert rows["acme"].incidents == 3


async def test_the_recorder_reads_the_stream_once_by_lease(store: Store) -> None:
    await store.ensure_group("history")
    replicas = [
        HistoryRecorder(store, RecorderSettings(instance=f"r{i}", lease=5)) for i in range(2)
    ]
    for made in events()[:6]:
        await store.append(made)
    for recorder in replicas:
        if await recorder.lease.acquire():
            await recorder.start()
            await recorder.step()
    leaders = [r for r in replicas if r.leader]
    assert len(leaders) == 1
    cursors = await store.history_cursors()
    assert cursors["acme"] == Cursor(  # the sixth event: day -20's outage began
        status=Status.DEGRADED, since=day(-20, 8), event_id="script-005"
    )


async def test_latency_samples_make_a_sparkline(store: Store) -> None:
    from bot.history.queries import sparkline
    from bot.models import utcnow

    now = utcnow()
    samples = [
        LatencySample("acme", "api", now - timedelta(minutes=m), 100.0 + m) for m in range(0, 60)
    ]
    await store.add_latency(samples)
    back = await store.latency("acme", now - timedelta(hours=24))
    assert len(back) == 60
    points = sparkline(back, now)
    assert 6 <= len(points) <= 7  # an hour of samples in 10-minute buckets
    assert all(100.0 <= ms <= 160.0 for _, ms in points)


async def test_a_running_tocsin_records_the_episode_with_its_lead(
    status_server: FakeStatusServer, redis_server: RedisServer, key_prefix: str
) -> None:
    """End to end: the probe fails first (suspected), the page confirms later, both recover;
    the history recorder (by lease, in the running process) keeps one episode whose lead is
    the time between, the day's seconds, and the cursor."""
    status_server.set_fixture(SUMMARY, "statuspage_summary_anthropic_operational.json")
    status_server.set_status(MODELS, 200, b'{"data": []}')
    config = build_config(
        {
            "store": {"url": redis_server.url, "prefix": key_prefix},
            "server": {"enabled": False},
            "console": {"enabled": False},
            "watch": {"jitter": "0s", "timeout": "2s"},
            "providers": [
                {
                    "id": "acme",
                    "name": "Acme AI",
                    "status_page": {
                        "kind": "statuspage",
                        "url": status_server.url,
                        "components": [API],
                        "interval": "300ms",
                    },
                    "probe": {
                        "url": f"{status_server.url}{MODELS}",
                        "interval": "300ms",
                        "timeout": "1s",
                    },
                }
            ],
        }
    )
    running = Running(config)
    store = running.runtime.store
    try:
        await until(lambda: _cursor_is(store, Status.OPERATIONAL))
        status_server.set_status(MODELS, 503, b'{"error": "overloaded"}')
        await until(lambda: _episode_where(store, lambda e: e.suspected_at is not None))
        status_server.set_json(SUMMARY, _down_page())
        await until(lambda: _episode_where(store, lambda e: e.confirmed_at is not None))
        status_server.set_status(MODELS, 200, b'{"data": []}')
        status_server.set_fixture(SUMMARY, "statuspage_summary_anthropic_operational.json")
        await until(lambda: _episode_where(store, lambda e: e.ended is not None))
        [episode] = await store.episodes("acme", NOW - timedelta(days=400))
        days = await store.day_records("acme", NOW.date(), (NOW + timedelta(days=2)).date())
    finally:
        await running.halt()
    assert episode.suspected_by == "acme:probe"
    assert episode.lead is not None
    assert episode.lead > timedelta(0)
    assert episode.worst.is_outage
    assert running.runtime.history is not None
    assert any(Status.OPERATIONAL in d.seconds or Status.OPERATIONAL in d.seen for d in days)


async def _cursor_is(store: Store, status: Status) -> bool:
    cursor = (await store.history_cursors()).get("acme")
    return cursor is not None and cursor.status is status


async def _episode_where(store: Store, test: Callable[[EpisodeRecord], bool]) -> bool:
    return any(test(e) for e in await store.episodes("acme", NOW - timedelta(days=400)))


def _down_page() -> dict[str, Any]:
    payload = copy.deepcopy(fixture_json("statuspage_summary_anthropic_minor_monitoring.json"))
    incident = payload["incidents"][0]
    incident["components"][0]["id"] = API
    incident["status"] = "investigating"
    for component in payload["components"]:
        if component["id"] == API:
            component["status"] = "major_outage"
    return payload


# ------------------------------------------------------------------ tocsin report


async def test_tocsin_report_reads_redis_and_the_embedded_file(
    tmp_path: Path, redis_server: RedisServer, key_prefix: str
) -> None:
    """The command over the scripted history: JSON figures that do not depend on today's
    clock (incidents, downtime, MTTR, lead, lag), a table, and CSV whose formula-looking
    cells are quoted; the same from the embedded store's SQLite file."""
    redis_store = RedisStore(redis_server.url, prefix=key_prefix)
    await redis_store.open()
    await write_scripted_history(redis_store)
    await redis_store.close()
    embedded = SqliteStore(tmp_path / "data")
    await embedded.open()
    await write_scripted_history(embedded)
    await embedded.close()
    providers = [
        {"id": p, "name": n, "probe": {"url": "http://127.0.0.1:9/"}} for p, n in PROVIDERS.items()
    ]
    providers[2]["name"] = '=HYPERLINK("http://x")'
    providers[1]["name"] = "[bold red]Zeta[/] <!channel>"  # Rich markup: printed as text
    spec = {"store": {"url": redis_server.url, "prefix": key_prefix}, "providers": providers}
    with_redis = write_config(tmp_path, spec)
    shown = await atocsin("report", "--config", str(with_redis), "--json", cwd=tmp_path)
    assert shown.code == 0, shown
    acme = json.loads(shown.out)["providers"][0]
    assert acme["provider"] == "acme"
    assert acme["incidents"] == 2
    assert acme["downtime_s"] == 7200
    assert acme["mttr_s"] == 4500
    assert acme["median_lead_s"] == 600
    assert acme["median_page_lag_s"] == 300
    table = await atocsin("report", "--config", str(with_redis), "--since", "90d", cwd=tmp_path)
    assert table.code == 0, table
    assert "tocsin report: the last 90 days" in table.out
    assert "Acme AI" in table.out
    assert "[bold red]Zeta[/] <!channel>" in table.out
    del spec["store"]
    embedded_config = write_config(tmp_path, spec)
    csv_out = await atocsin(
        "report",
        "--config",
        str(embedded_config),
        "--data-dir",
        str(tmp_path / "data"),
        "--csv",
        cwd=tmp_path,
    )
    assert csv_out.code == 0, csv_out
    lines = csv_out.out.splitlines()
    assert lines[0].startswith("provider,name,uptime,incidents,downtime_s")
    assert lines[1].startswith("acme,Acme AI,")
    assert lines[3].startswith('newco,"\'=HYPERLINK(""http://x"")"')  # quoted: no formula
    bad = await atocsin("report", "--config", str(with_redis), "--since", "forever", cwd=tmp_path)
    assert bad.code == 2
    assert "--since is a duration like 30d" in bad.err


async def test_the_embedded_store_restarted_in_the_middle_keeps_every_figure(
    tmp_path: Path,
) -> None:
    """The SQLite file closed after day -20's outage began and opened again by a new process
    (a new store, a new recorder): the report is the hand-worked one of a single run."""
    first = SqliteStore(tmp_path / "data")
    await first.open()
    await write_scripted_history(first, until=day(-20, 8, 30))
    await first.close()
    again = SqliteStore(tmp_path / "data")
    await again.open()
    try:
        await write_scripted_history(again)
        rows = {r.provider: r for r in await report(again, CONFIG, days=30, now=NOW)}
        acme = rows["acme"]
        assert acme.uptime == pytest.approx(ACME_UPTIME_30D, abs=1e-9)
        assert acme.incidents == 2
        assert acme.downtime == timedelta(minutes=120)
        assert acme.mttr == timedelta(minutes=75)
        assert acme.median_lead == timedelta(minutes=10)
        assert acme.median_page_lag == timedelta(minutes=5)
    finally:
        await again.close()
