"""Issue 17: a cheaper check. An unchanged page is not parsed again (yet reads the same), the
tracker's work per observation does not depend on how many tracks it has, and a state
refreshed by nothing but its check is not written every round."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from bot.models import ComponentState, Observation, SourceKind, StateUpdate, Status, utcnow
from bot.sources.statuspage import StatuspageSource
from bot.store.memory import MemoryStore
from bot.tracker import Tracker
from bot.update_buffer import UpdateBuffer
from tests.fakes.status_server import FakeStatusServer, fixture_json

SUMMARY = "/api/v2/summary.json"
OPERATIONAL = "statuspage_summary_anthropic_operational.json"
OUTAGE = "statuspage_summary_anthropic_minor_monitoring.json"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as made:
        yield made


def _shape(observations: list[Observation]) -> list[tuple[Any, ...]]:
    return [(o.component, o.component_name, o.status, o.incident, o.detail) for o in observations]


async def test_an_unchanged_body_is_not_parsed_again_and_reads_the_same(
    status_server: FakeStatusServer, client: httpx.AsyncClient
) -> None:
    status_server.set_fixture(SUMMARY, OUTAGE)
    source = StatuspageSource("anthropic", status_server.url)
    first = await source.check(client)
    second = await source.check(client)
    third = await source.check(client)
    assert (source.parsed, source.unchanged, source.not_modified) == (1, 2, 0)
    assert _shape(first) == _shape(second) == _shape(third)
    assert any(o.incident is not None for o in third)
    assert all(a.at <= b.at for a, b in zip(first, third, strict=True))


async def test_a_changed_body_is_parsed(
    status_server: FakeStatusServer, client: httpx.AsyncClient
) -> None:
    status_server.set_fixture(SUMMARY, OPERATIONAL)
    source = StatuspageSource("anthropic", status_server.url)
    before = await source.check(client)
    status_server.set_fixture(SUMMARY, OUTAGE)
    after = await source.check(client)
    assert source.parsed == 2
    assert {o.status for o in before} == {Status.OPERATIONAL}
    assert _shape(after) != _shape(before)
    assert any(o.incident is not None for o in after)


async def test_a_304_is_honoured_and_asked_for(
    status_server: FakeStatusServer, client: httpx.AsyncClient
) -> None:
    status_server.set_fixture(SUMMARY, OUTAGE, etag=True)
    source = StatuspageSource("anthropic", status_server.url)
    first = await source.check(client)
    second = await source.check(client)
    assert (source.parsed, source.not_modified) == (1, 1)
    asked = [r for r in status_server.requests if r.path == SUMMARY]
    assert "If-None-Match" not in {k.title() for k in asked[0].headers}
    assert any(k.lower() == "if-none-match" for k in asked[1].headers)
    assert _shape(first) == _shape(second)


async def test_a_body_that_does_not_parse_is_read_again(
    status_server: FakeStatusServer, client: httpx.AsyncClient
) -> None:
    status_server.set_json(SUMMARY, {"components": []})
    source = StatuspageSource("anthropic", status_server.url)
    for _ in range(2):
        [broken] = await source.check(client)
        assert broken.status is Status.UNKNOWN
    status_server.set_fixture(SUMMARY, OPERATIONAL)
    assert {o.status for o in await source.check(client)} == {Status.OPERATIONAL}
    assert source.parsed == 1  # only the good body parsed into a reading


async def test_planned_maintenance_stays_right_on_an_unchanged_body(
    status_server: FakeStatusServer, client: httpx.AsyncClient
) -> None:
    """What depends on the time is derived afresh: the observations' time, and the planned
    windows maintenance ahead reads (``source.planned``) are there on every read."""
    summary = fixture_json(OPERATIONAL)
    maintenance = copy.deepcopy(
        fixture_json("statuspage_maintenances_anthropic.json")["scheduled_maintenances"][0]
    )
    maintenance["status"] = "scheduled"
    start = utcnow() + timedelta(minutes=30)
    maintenance["scheduled_for"] = start.isoformat()
    maintenance["scheduled_until"] = (start + timedelta(hours=1)).isoformat()
    summary["scheduled_maintenances"] = [maintenance]
    status_server.set_json(SUMMARY, summary)
    source = StatuspageSource("anthropic", status_server.url)
    first = await source.check(client)
    planned = list(source.planned)
    second = await source.check(client)
    assert source.parsed == 1
    assert source.unchanged == 1
    assert planned
    assert source.planned == planned
    assert second[0].at >= first[0].at
    source.planned.clear()  # a caller changing what it was given changes no later read
    await source.check(client)
    assert source.planned == planned


# ------------------------------------------------------------------------------- tracker


class _NoScan(dict[str, Any]):
    """The tracker's table of all tracks, refusing to be walked."""

    def values(self) -> Any:
        raise AssertionError("walked every track")

    def items(self) -> Any:
        raise AssertionError("walked every track")

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("walked every track")


def _obs(provider: str, kind: SourceKind, status: Status, **kw: Any) -> Observation:
    source = f"{provider}:{'probe' if kind is SourceKind.PROBE else 'statuspage'}"
    return Observation(
        provider=provider, component="api", status=status, source=source, kind=kind, **kw
    )


def test_observing_one_provider_touches_only_its_tracks() -> None:
    tracker = Tracker()
    many = 5000
    tracker.observe(
        [_obs(f"p{n:04d}", SourceKind.PAGE, Status.OPERATIONAL) for n in range(many // 2)]
        + [_obs(f"q{n:04d}", SourceKind.PROBE, Status.OPERATIONAL) for n in range(many // 2)]
    )
    assert len(tracker.states()) == many
    tracker._tracks = _NoScan(tracker._tracks)
    # a page outage (an event, an episode), a probe's failures (debounce), a recheck
    [outage] = tracker.observe([_obs("p0001", SourceKind.PAGE, Status.MAJOR_OUTAGE)])
    assert outage.event is not None
    assert outage.event.provider_status is Status.MAJOR_OUTAGE
    for _ in range(3):
        tracker.observe([_obs("q0001", SourceKind.PROBE, Status.MAJOR_OUTAGE)])
    assert tracker.needs_recheck("q0001:probe") is False
    tracker.observe([_obs("q0002", SourceKind.PROBE, Status.MAJOR_OUTAGE)])
    assert tracker.needs_recheck("q0002:probe") is True
    assert tracker.needs_recheck("q0003:probe") is False


def test_forgetting_a_provider_leaves_the_others_indexed() -> None:
    tracker = Tracker()
    tracker.observe([_obs(p, SourceKind.PROBE, Status.OPERATIONAL) for p in ("a", "b")])
    tracker.forget(["a"])
    assert set(tracker.states()) == {"b/api"}
    tracker.observe([_obs("b", SourceKind.PROBE, Status.MAJOR_OUTAGE)])
    assert tracker.needs_recheck("b:probe")
    assert not tracker.needs_recheck("a:probe")


# ------------------------------------------------------------------------------- writes


def _refresh(state: ComponentState, seconds: float, **kw: Any) -> StateUpdate:
    assert state.checked_at is not None
    at = state.checked_at + timedelta(seconds=seconds)
    return StateUpdate(state=state.model_copy(update={"checked_at": at, **kw}))


async def test_a_mere_refresh_is_written_at_most_every_refresh_seconds() -> None:
    store = MemoryStore()
    buffer = UpdateBuffer(store, 100, refresh=30.0)
    state = ComponentState(provider="p", component="api", checked_at=utcnow())
    buffer.add([StateUpdate(state=state)])
    buffer.add([_refresh(state, 10, latency_ms=12.0), _refresh(state, 20)])
    assert len(buffer) == 1
    assert buffer.skipped == 2
    buffer.add([_refresh(state, 31)])  # due: checked_at in the store at most 30 s old
    buffer.add([_refresh(state, 32, detail="something else")])  # a real change: at once
    buffer.add([StateUpdate(state=state, status_changed=True)])  # history: at once
    assert len(buffer) == 4
    await buffer.flush()
    written = (await store.states())["p/api"]
    assert written.detail is None
    assert written.checked_at == state.checked_at
