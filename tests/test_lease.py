"""The lease loop the watcher and the escalator share (:func:`bot.lease.hold`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from bot.lease import Lease, hold
from bot.store import StoreUnavailable
from bot.store.memory import MemoryStore

#: Short enough that a test sees several rounds in a fraction of a second.
TTL = 0.15


class Recorder:
    """A duty that only says what :func:`hold` asked of it."""

    def __init__(self, *, takes: bool = True, pause: float | None = None) -> None:
        self.leader = False
        self.calls: list[str] = []
        self.errors: list[Exception | None] = []
        self._takes = takes
        self._pause = pause

    async def take_over(self) -> None:
        self.calls.append("take_over")
        self.leader = self._takes

    def step_down(self) -> None:
        self.calls.append("step_down")
        self.leader = False

    async def between_rounds(self, stop: asyncio.Event) -> None:
        await asyncio.sleep(TTL / 3)

    def after_round(self, error: Exception | None) -> float | None:
        self.errors.append(error)
        return None if error is None else self._pause

    async def stop_work(self) -> None:
        self.calls.append("stop_work")


class AwayStore(MemoryStore):
    """A store that cannot be reached while ``away`` is set."""

    away = False

    async def acquire_lease(self, name: str, holder: str, ttl: float) -> bool:
        if self.away:
            raise StoreUnavailable("gone")
        return await super().acquire_lease(name, holder, ttl)


async def _until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


async def test_one_holder_leads_and_a_clean_stop_hands_over_at_once() -> None:
    store = MemoryStore()
    duties = [Recorder(), Recorder()]
    leases = [Lease(store, "work", f"h{i}", TTL * 100) for i in range(2)]
    stops = [asyncio.Event(), asyncio.Event()]
    first = asyncio.create_task(hold(leases[0], stops[0], duties[0]))
    await _until(lambda: duties[0].leader)
    second = asyncio.create_task(hold(leases[1], stops[1], duties[1]))
    await asyncio.sleep(TTL)  # several rounds: the lease (long) is the first one's
    assert not duties[1].leader
    stops[0].set()
    await first
    assert duties[0].calls == ["take_over", "stop_work"]  # work ended before the release
    await _until(lambda: duties[1].leader)  # released, not expired: taken within a round
    stops[1].set()
    await second
    assert await store.lease_holder("work") is None


async def test_a_failed_takeover_is_tried_again_next_round() -> None:
    duty = Recorder(takes=False)
    stop = asyncio.Event()
    task = asyncio.create_task(hold(Lease(MemoryStore(), "work", "h", TTL), stop, duty))
    await _until(lambda: duty.calls.count("take_over") >= 2)
    stop.set()
    await task
    assert "step_down" not in duty.calls


async def test_a_store_outage_is_the_dutys_to_judge() -> None:
    """The duty hears of it; ``None`` goes on as before (no step down), the lease is still
    released on stop."""
    store = AwayStore()
    duty = Recorder()
    stop = asyncio.Event()
    task = asyncio.create_task(hold(Lease(store, "work", "h", TTL * 100), stop, duty))
    await _until(lambda: duty.leader)
    store.away = True
    await _until(lambda: any(isinstance(e, StoreUnavailable) for e in duty.errors))
    assert duty.leader
    assert duty.calls == ["take_over"]
    store.away = False
    stop.set()
    await task
    assert await store.lease_holder("work") is None


async def test_a_pause_from_the_duty_waits_that_long_and_ends_early_on_stop() -> None:
    store = AwayStore()
    store.away = True
    duty = Recorder(pause=60.0)
    stop = asyncio.Event()
    task = asyncio.create_task(hold(Lease(store, "work", "h", TTL), stop, duty))
    await _until(lambda: bool(duty.errors))
    await asyncio.sleep(TTL)
    assert len(duty.errors) == 1  # waiting the pause, not trying every round
    stop.set()
    await asyncio.wait_for(task, 1.0)
