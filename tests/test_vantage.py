"""Vantage points and a quorum (issue 17), in process, on the suite's real redis-server.

Another vantage's results are written through the store API, as its witness would; the
leader's batches go through :meth:`bot.vantage.Quorum.combine` into a real tracker.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiohttp import web

from bot.answers import Answers, ProviderDetail
from bot.models import Event, Observation, ProbeError, SourceKind, Status
from bot.sources.probe import ProbeSource
from bot.store import RedisStore, Store
from bot.tracker import Thresholds, Tracker, TrackerSettings
from bot.vantage import (
    TABLE,
    Quorum,
    VantageResult,
    Witness,
    WitnessSettings,
    read_results,
    record_key,
    vantage_views,
)
from config.loader import load_config
from config.schema import TocsinConfig
from tests.chaos import until
from tests.fakes.status_server import FakeStatusServer
from tests.redis_server import RedisServer

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PROVIDERS = ("acme", "zeta")


@pytest.fixture
async def store(redis_server: RedisServer, key_prefix: str) -> AsyncIterator[Store]:
    store = RedisStore(redis_server.url, prefix=key_prefix)
    await store.open()
    yield store
    await store.close()


def config(quorum: int = 2, **watch: Any) -> TocsinConfig:
    return TocsinConfig.model_validate(
        {
            "vantage": "a",
            "watch": {"quorum": quorum, "quorum_window": "30s", **watch},
            "providers": [
                {"id": p, "name": p.title(), "probe": {"url": f"https://{p}.test/v1/models"}}
                for p in PROVIDERS
            ],
        }
    )


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def probe(provider: str, at: datetime, *, failing: bool = False) -> Observation:
    return Observation(
        provider=provider,
        component="probe",
        status=Status.MAJOR_OUTAGE if failing else Status.OPERATIONAL,
        source=f"{provider}:probe",
        kind=SourceKind.PROBE,
        at=at,
        latency_ms=None if failing else 120.0,
        error=ProbeError.TIMEOUT if failing else None,
        detail="no answer within 10s" if failing else None,
    )


async def witness_says(
    store: Store, vantage: str, provider: str, at: datetime, *, failing: bool, since: Any = None
) -> None:
    """Another vantage's result, as its witness writes it."""
    result = VantageResult(
        vantage=vantage,
        source=f"{provider}:probe",
        provider=provider,
        component="probe",
        failing=failing,
        status=Status.MAJOR_OUTAGE if failing else Status.OPERATIONAL,
        error=ProbeError.TIMEOUT if failing else None,
        detail="no answer within 10s" if failing else None,
        at=at,
        since=(since or at) if failing else None,
    )
    await store.put_record(TABLE, result.key, result.model_dump_json())


def tracker() -> Tracker:
    return Tracker(TrackerSettings(thresholds=Thresholds(2, 2), probed=frozenset(PROVIDERS)))


async def admin_events(store: Store) -> list[Event]:
    return [e for e in await store.recent_events(100) if e.type == "watcher_health"]


async def rounds(
    quorum: Quorum, track: Tracker, clock: Clock, *, own_failing: bool, count: int = 6
) -> list[Observation]:
    """``count`` leader rounds of both providers, 2 s apart; the last round's observations."""
    seen: list[Observation] = []
    for _ in range(count):
        clock.now += timedelta(seconds=2)
        batch = [probe(p, clock.now, failing=own_failing) for p in PROVIDERS]
        seen = await quorum.combine(batch)
        track.observe(seen)
        quorum._read_at = None  # the table is read again (a second has passed, as it were)
    return seen


async def test_one_vantage_failing_alone_is_its_own_problem_one_admin_notice(
    store: Store,
) -> None:
    clock = Clock()
    quorum = Quorum(config(), store, "a", clock)
    track = tracker()
    # vantage b fails both providers; the leader (a) checks after b's failures began: fine
    for provider in PROVIDERS:
        await witness_says(store, "b", provider, T0, failing=True)
    last = await rounds(quorum, track, clock, own_failing=False)
    assert [o.status for o in last] == [Status.OPERATIONAL] * 2
    assert all(s.status is Status.OPERATIONAL for s in track.states().values())
    (notice,) = await admin_events(store)
    assert notice.audience == "admins"
    assert notice.to is Status.MAJOR_OUTAGE
    assert notice.detail is not None
    assert "vantage b sees failures the others do not: Acme, Zeta" in notice.detail

    # more rounds, a second leader (a handover): no second notice
    await rounds(quorum, track, clock, own_failing=False)
    successor = Quorum(config(), store, "a", clock)
    await rounds(successor, track, clock, own_failing=False)
    assert len(await admin_events(store)) == 1

    # b recovers: one recovery notice, once
    for provider in PROVIDERS:
        await witness_says(store, "b", provider, clock.now, failing=False)
    await rounds(successor, track, clock, own_failing=False)
    await rounds(quorum, track, clock, own_failing=False)
    told = await admin_events(store)
    assert len(told) == 2, [e.detail for e in told]
    assert told[0].to is Status.OPERATIONAL
    assert "agree with the other vantages again" in (told[0].detail or "")


async def test_own_vantage_failing_alone_passes_operational_keeping_latency(
    store: Store,
) -> None:
    clock = Clock()
    quorum = Quorum(config(), store, "a", clock, hold=0.0)
    track = tracker()
    clock.now += timedelta(seconds=1)
    own = [probe(p, clock.now, failing=True) for p in PROVIDERS]
    own[0] = dataclasses.replace(own[0], latency_ms=900.0)
    await quorum.combine(own)  # a starts failing; b has not looked since
    for provider in PROVIDERS:
        await witness_says(store, "b", provider, clock.now + timedelta(seconds=1), failing=False)
    clock.now += timedelta(seconds=2)
    own = [probe(p, clock.now, failing=True) for p in PROVIDERS]
    own[0] = dataclasses.replace(own[0], latency_ms=900.0)
    quorum._read_at = None
    seen = await quorum.combine(own)
    assert [o.status for o in seen] == [Status.OPERATIONAL] * 2
    assert [o.error for o in seen] == [None, None]
    assert seen[0].latency_ms == 900.0
    assert "failing only from a" in (seen[0].detail or "")
    assert track.observe(seen)  # the tracker takes it like any probe result
    (notice,) = await admin_events(store)
    assert "vantage a sees failures" in (notice.detail or "")


async def test_both_vantages_failing_pass_a_failing_observation_naming_them(
    store: Store,
) -> None:
    clock = Clock()
    quorum = Quorum(config(), store, "a", clock)
    track = tracker()
    for provider in PROVIDERS:
        await witness_says(store, "b", provider, T0, failing=True)
    last = await rounds(quorum, track, clock, own_failing=True)
    assert [o.status for o in last] == [Status.MAJOR_OUTAGE] * 2
    assert last[0].detail == "failing from a and b: no answer within 10s"
    states = track.states()
    assert states["acme/probe"].status is Status.MAJOR_OUTAGE
    assert await admin_events(store) == []  # nobody failing alone


async def test_other_vantages_failing_make_a_failing_observation_from_their_result(
    store: Store,
) -> None:
    clock = Clock()
    quorum = Quorum(config(), store, "a", clock)
    for vantage in ("b", "c"):
        await witness_says(store, vantage, "acme", T0, failing=True)
    clock.now += timedelta(seconds=1)
    (seen,) = await quorum.combine([probe("acme", clock.now)])
    assert seen.status is Status.MAJOR_OUTAGE
    assert seen.error is ProbeError.TIMEOUT
    assert seen.source == "acme:probe"
    assert seen.detail == "failing from b and c: no answer within 10s"


async def test_results_outside_the_window_do_not_count(store: Store) -> None:
    clock = Clock()
    quorum = Quorum(config(), store, "a", clock)
    await witness_says(store, "b", "acme", T0 - timedelta(seconds=31), failing=True)
    (seen,) = await quorum.combine([probe("acme", T0, failing=True)])
    assert seen.status is Status.OPERATIONAL  # b's result is stale: quorum 2 cannot be met


async def test_pages_pass_untouched_and_quorum_one_changes_nothing(store: Store) -> None:
    clock = Clock()
    page = Observation(
        provider="acme",
        component="api",
        status=Status.MAJOR_OUTAGE,
        source="acme:statuspage",
        kind=SourceKind.PAGE,
        at=T0,
    )
    failing = probe("acme", T0, failing=True)
    quorum = Quorum(config(), store, "a", clock)
    assert (await quorum.combine([page]))[0] is page
    assert await store.records(TABLE) == {}  # nothing to publish for a page
    single = Quorum(config(quorum=1), store, "a", clock)
    assert await single.combine([page, failing]) == [page, failing]
    assert await store.records(TABLE) == {}
    mixed = await quorum.combine([page, failing])
    assert mixed[0] is page
    assert mixed[1].status is Status.OPERATIONAL
    assert set(await store.records(TABLE)) == {record_key("a", "acme:probe", "probe")}


async def test_hostile_records_are_ignored(store: Store) -> None:
    clock = Clock()
    good = record_key("b", "acme:probe", "probe")
    hostile = {
        "b|zeta:probe|probe": "not json",
        "c|acme:probe|probe": json.dumps({"vantage": "c"}),  # missing fields
        "d|acme:probe|probe": json.dumps(  # under another's key
            {
                "vantage": "e",
                "source": "acme:probe",
                "provider": "acme",
                "component": "probe",
                "failing": True,
                "status": "major_outage",
                "at": T0.isoformat(),
                "since": T0.isoformat(),
            }
        ),
        "X Y|acme:probe|probe": json.dumps(  # a vantage name that is no name
            {
                "vantage": "X Y",
                "source": "acme:probe",
                "provider": "acme",
                "component": "probe",
                "failing": True,
                "status": "major_outage",
                "at": T0.isoformat(),
            }
        ),
        "f|acme:probe|probe": json.dumps([1, 2]),
        "g|acme:probe|probe": json.dumps(
            {
                "vantage": "g",
                "source": "acme:probe",
                "provider": "acme",
                "component": "probe",
                "failing": True,
                "status": "on_fire",
                "at": T0.isoformat(),
            }
        ),
    }
    for key, value in hostile.items():
        await store.put_record(TABLE, key, value)
    await witness_says(store, "b", "acme", T0, failing=False)
    results = read_results(await store.records(TABLE))
    assert [r.key for r in results] == [good]
    quorum = Quorum(config(), store, "a", clock)
    (seen,) = await quorum.combine([probe("acme", T0 + timedelta(seconds=1), failing=True)])
    assert seen.status is Status.OPERATIONAL  # none of the hostile ones made a quorum


async def test_a_detail_is_clipped_and_scrubbed() -> None:
    result = VantageResult.model_validate(
        {
            "vantage": "b",
            "source": "acme:probe",
            "provider": "acme",
            "component": "probe",
            "failing": True,
            "status": "major_outage",
            "detail": "x\n" * 5000,
            "at": T0.isoformat(),
        }
    )
    assert result.detail is not None
    assert len(result.detail) <= 300
    assert "\n" not in result.detail


def test_the_vantage_is_validated_and_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert TocsinConfig().vantage == "default"
    assert TocsinConfig().watch.quorum == 1
    with pytest.raises(ValueError, match="vantage"):
        TocsinConfig.model_validate({"vantage": "eu|west"})
    monkeypatch.setenv("TOCSIN_VANTAGE", "eu-west")
    assert load_config(None).vantage == "eu-west"


async def test_views_show_each_vantage_in_status_and_answers(store: Store) -> None:
    now = datetime.now(UTC)
    await witness_says(store, "b", "acme", now, failing=True)
    quorum = Quorum(config(), store, "a", lambda: now)
    await quorum.combine([probe("acme", now)])
    views = await vantage_views(store, "acme", now=now)
    assert [(v.vantage, v.failing) for v in views] == [("a", False), ("b", True)]
    assert [v.label for v in views] == ["a ✅", "b ❌ timeout"]
    assert await vantage_views(store, "zeta", now=now) == []
    assert await vantage_views(store, "acme", now=now + timedelta(days=2)) == []  # retired
    answer = await Answers(config(), store).status("acme")
    assert isinstance(answer, ProviderDetail)
    assert answer.seen_from == "Seen from: a ✅ · b ❌ timeout"
    single = await Answers(config(quorum=1), store).status("acme")
    assert isinstance(single, ProviderDetail)
    assert single.seen_from is None


async def test_a_witness_publishes_its_probe_results(
    store: Store, status_server: FakeStatusServer
) -> None:
    status_server.set_json("/acme/v1/models", {"data": []})
    status_server.set_status("/zeta/v1/models", 503)
    sources = [
        ProbeSource(p, f"{status_server.url}/{p}/v1/models", interval=0.3, timeout=1.0)
        for p in PROVIDERS
    ]
    leading = False
    witness = Witness(
        sources,
        store,
        "b",
        WitnessSettings(instance="w", lease=3.0, jitter=0.0),
        httpx.AsyncClient(trust_env=False),
        leading=lambda: leading,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(witness.run(stop))
    try:

        async def published() -> bool:
            return len(read_results(await store.records(TABLE))) == 2

        await until(published)
        results = {r.provider: r for r in read_results(await store.records(TABLE))}
        assert results["acme"].vantage == "b"
        assert not results["acme"].failing
        assert results["zeta"].failing
        assert results["zeta"].error is ProbeError.HTTP
        assert results["zeta"].since is not None
        assert witness.leader
        assert await store.lease_holder("witness:b") == witness.lease.holder

        # while its replica leads the watcher, the witness probes nothing
        leading = True
        await asyncio.sleep(0.5)  # let a round under way end
        before = status_server.count("/acme/v1/models")
        await asyncio.sleep(1.0)
        assert status_server.count("/acme/v1/models") == before
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    assert await store.lease_holder("witness:b") is None  # handed over on stop


async def test_the_api_lists_each_vantage(store: Store) -> None:
    from aiohttp.test_utils import make_mocked_request

    from bot.history_api import HistoryRoutes

    now = datetime.now(UTC)
    await witness_says(store, "b", "acme", now, failing=True)
    request = make_mocked_request("GET", "/api/v1/providers/acme", match_info={"provider": "acme"})
    for quorum, expected in ((2, [("b", True)]), (1, [])):
        response = await HistoryRoutes(config(quorum), store).provider_json(request)
        assert isinstance(response, web.Response)
        assert response.text is not None
        body = json.loads(response.text)["provider"]
        assert [(v["vantage"], v["failing"]) for v in body["vantages"]] == expected
    response = await HistoryRoutes(config(), store).provider_json(request)
    assert response.text is not None
    (view,) = json.loads(response.text)["provider"]["vantages"]
    assert view["components"][0]["error"] == "timeout"
