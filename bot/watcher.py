"""The watcher: runs every source on its schedule and records what the tracker concludes.

Only the replica holding the ``leader`` lease (:func:`bot.lease.hold`, under a holder unique
to the process) watches, every source through one shared ``httpx.AsyncClient``;
:class:`Watcher` composes what it does then, one module each:

- :mod:`bot.schedule`: one apscheduler job per source, each on a phase of its own. A probe
  whose result differs from the current state is run again after ``confirm_interval``
  instead of a whole interval, so detection costs one interval's phase plus the
  confirmations;
- :mod:`bot.pushed_reads`: a status page's push (:mod:`bot.hooks`) is only a hint: the leader
  takes poll requests from the store and reads that page now, at most once a second per
  provider, so a forged or stale push can cost one extra read but never set a state;
- :mod:`bot.update_buffer`: when the store is unreachable, updates wait in a bounded
  in-memory buffer and are written in order once it is back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from contextlib import suppress
from typing import Any

import httpx

from bot import metrics
from bot.checks import WatcherSettings, check_all, check_source, make_client
from bot.history.recorder import LatencySampler
from bot.lease import Lease, hold, sleep_unless, unique_holder
from bot.logs import get_logger
from bot.maintenance_ahead import MaintenanceAhead
from bot.models import Observation, SourceKind, StateUpdate
from bot.pushed_reads import PushedReads
from bot.schedule import Schedule
from bot.shards import Shards
from bot.sources.source import PageSource, Source
from bot.store import NOTIFIERS_GROUP, Store, StoreUnavailable
from bot.tracker import Thresholds, Tracker, TrackerSettings
from bot.update_buffer import UpdateBuffer
from bot.vantage import Quorum
from config.schema import TocsinConfig

log = get_logger("tocsin.watcher")

LEASE_NAME = "leader"


def tracker_for(config: TocsinConfig, sources: Sequence[Source]) -> Tracker:
    """A tracker with the config's thresholds and damping."""
    watch = config.watch
    probe_intervals = [s.interval for s in sources if s.kind is SourceKind.PROBE]
    settings = TrackerSettings(
        thresholds=Thresholds(watch.failure_threshold, watch.success_threshold),
        flap_threshold=watch.flap_threshold,
        flap_window=watch.flap_window,
        flap_quiet=watch.flap_quiet,
        self_check_min_providers=watch.self_check_min_providers,
        self_check_window=3 * max(probe_intervals, default=watch.interval),
        probed=frozenset(s.provider for s in sources if s.kind is SourceKind.PROBE),
        upstreams={p.id: tuple(p.upstreams) for p in config.providers if p.upstreams},
        upstream_names={u.id: u.name for u in config.upstreams},
    )
    thresholds = {
        p.id: Thresholds(
            p.failure_threshold or watch.failure_threshold,
            p.success_threshold or watch.success_threshold,
        )
        for p in config.providers
        if p.failure_threshold or p.success_threshold
    }
    return Tracker(settings, names={p.id: p.name for p in config.providers}, thresholds=thresholds)


class Watcher:
    """Runs the sources while this replica holds the ``leader`` lease: the
    :class:`bot.lease.Duty` that :func:`bot.lease.hold` drives."""

    def __init__(
        self,
        sources: Sequence[Source],
        tracker: Tracker,
        store: Store,
        settings: WatcherSettings,
        client: httpx.AsyncClient | None = None,
        *,
        maintenance: MaintenanceAhead | None = None,
        latency: LatencySampler | None = None,
        quorum: Quorum | None = None,
        shards: Shards | None = None,
        shared_providers: frozenset[str] = frozenset(),
    ) -> None:
        self.sources = list(sources)
        #: (issue 17) With ``watch.sharding``, this replica watches its share of the
        #: providers (:mod:`bot.shards`) instead of everything under the ``leader`` lease; the
        #: ``shared_providers`` (upstreams, never announced) are read by every member.
        self.shards = shards
        self.shared_providers = shared_providers
        #: (issue 17) With ``watch.quorum``, our own evidence counts only when enough vantage
        #: points agree (:mod:`bot.vantage`); None: this replica's checks decide alone.
        self.quorum = quorum
        #: Announces planned maintenance after each page read (None: off).
        self.maintenance = maintenance
        #: Samples the probes' latencies for history (None: off).
        self.latency = latency
        self.tracker = tracker
        self.store = store
        self.settings = settings
        self.client = client or make_client(settings)
        self._own_client = client is None
        self.schedule = Schedule(settings.jitter_for)
        self.pushed = PushedReads(
            store,
            self.sources,
            self.schedule,
            poll_check=settings.poll_check,
            pushed_gap=settings.pushed_gap,
            owns=self._owns if shards is not None else None,
        )
        self.updates = UpdateBuffer(store, settings.buffer_limit)
        self._observe_lock = asyncio.Lock()
        self._running: set[asyncio.Task[None]] = set()
        self.lease = Lease(
            store, LEASE_NAME, settings.holder or unique_holder(settings.instance), settings.lease
        )
        self.leader = False
        self._failing: str | None = None  # what last broke a lease round (said once)

    @property
    def leader(self) -> bool:
        """Whether this replica watches now (it holds the lease and has taken over)."""
        return self._leader

    @leader.setter
    def leader(self, value: bool) -> None:
        """The one place leading changes, so ``/healthz`` and the metric always agree."""
        self._leader = value
        metrics.LEADER.set(1 if value else 0)

    @property
    def buffered(self) -> int:
        return len(self.updates)

    @property
    def dropped(self) -> int:
        return self.updates.dropped

    @property
    def store_ok(self) -> bool:
        return self.updates.store_ok

    # ------------------------------------------------------------------ the lease

    async def run(self, stop: asyncio.Event) -> None:
        """Watch until ``stop`` is set (SIGTERM/SIGINT), leading only while holding the lease."""
        try:
            if self.shards is not None:
                await self._run_sharded(stop, self.shards)
            else:
                await hold(self.lease, stop, self)
        finally:
            self.leader = False
            if self._own_client:
                await self.client.aclose()

    async def take_over(self) -> None:
        try:
            states = await self.store.states()
            await self.store.ensure_group(NOTIFIERS_GROUP)  # no event written before the group
        except StoreUnavailable:
            return
        self.tracker.restore(states.values())
        self.leader = True
        log.info(
            "watching",
            instance=self.settings.instance,
            holder=self.lease.holder,
            sources=len(self.sources),
        )
        self.schedule.start(self.sources, self._job)
        self._spawn(self.pushed.take_requests(), "poll-requests")

    def step_down(self) -> None:
        log.warning("lost the watcher lease; another replica watches now")
        self.leader = False
        self._stop_runs()
        self.pushed.forget()

    async def between_rounds(self, stop: asyncio.Event) -> None:
        await sleep_unless(stop, self.lease.renew_every if self.store.shared else 5.0)
        if self.updates:
            await self._surviving(self.flush)

    def after_round(self, error: Exception | None) -> None:
        """Whatever broke the round, watching goes on as it was: a leader keeps watching (its
        updates buffered while the store is away), a follower waits."""
        if isinstance(error, StoreUnavailable):
            self.updates.store_ok = False
            log.warning("store unreachable; watching on, updates buffered", error=str(error))
            error = None
        elif error is None:
            self.updates.store_ok = True
        self._say_once(error)

    async def stop_work(self) -> None:
        self._stop_runs()
        await asyncio.gather(*self._running, return_exceptions=True)
        if self.updates:
            await self.flush()

    async def _surviving(self, step: Callable[[], Awaitable[object]]) -> None:
        """Run one step between rounds; a bug or a foreign value in the store must not end
        watching for good (see :meth:`_say_once`)."""
        try:
            await step()
        except Exception as exc:
            self._say_once(exc)
        else:
            self._say_once(None)

    def _say_once(self, error: Exception | None) -> None:
        """Log what broke a step once per kind of failure (while handling it: its
        traceback); the next round tries again."""
        if error is None:
            self._failing = None
            return
        kind = f"{type(error).__name__}: {error}"
        if kind != self._failing:
            log.exception("a watcher round failed; trying again")
        self._failing = kind

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        """Run ``work`` beside the jobs, stopped with them."""
        task = asyncio.create_task(work, name=name)
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    def _stop_runs(self) -> None:
        """No more runs: the schedule stops, and what is under way is cancelled."""
        self.schedule.stop()
        for task in list(self._running):
            task.cancel()

    # ---------------------------------------------------------------------- shards

    @property
    def sources_owned(self) -> int:
        """How many sources this replica checks now (``/healthz``, ``tocsin_sources_owned``)."""
        return self.schedule.count

    def _owns(self, provider: str) -> bool:
        if self.shards is None or provider in self.shared_providers:
            return self.leader
        return self.shards.holds(provider)

    async def _run_sharded(self, stop: asyncio.Event, shards: Shards) -> None:
        """Member rounds until ``stop``: every third of the lease, take and give back shares
        (:meth:`Shards.round`); the shared providers' sources run from the first round on."""
        providers = sorted({s.provider for s in self.sources} - self.shared_providers)
        try:
            while not stop.is_set():
                try:
                    gained, lost = await shards.round(providers)
                    if not self.leader:
                        await self.store.ensure_group(NOTIFIERS_GROUP)
                        self.leader = True
                        self.schedule.start(self._of(self.shared_providers), self._job)
                        self._spawn(self.pushed.take_requests(), "poll-requests")
                    await self._reshard(gained, lost)
                    self.after_round(None)
                except Exception as exc:
                    self.after_round(exc)
                await sleep_unless(stop, shards.every)
                if self.updates:
                    await self._surviving(self.flush)
        finally:
            await self.stop_work()
            with suppress(Exception):
                await shards.leave()

    async def _reshard(self, gained: set[str], lost: set[str]) -> None:
        """Stop the sources of the providers lost (and forget them), start those gained from
        the states the store holds (their last owner wrote them)."""
        if lost:
            self.schedule.remove(self._of(lost))
            for task in list(self._running):
                if task.get_name() in lost:
                    task.cancel()
            self.tracker.forget(lost)
        if gained:
            states = await self.store.states()
            self.tracker.forget(gained)
            self.tracker.restore(s for s in states.values() if s.provider in gained)
            self.schedule.add(self._of(gained), soon=False)
        if gained or lost:
            log.info(
                "shards moved",
                gained=len(gained),
                lost=len(lost),
                providers=len(self.shards.owned) if self.shards else 0,
                members=len(self.shards.members) if self.shards else 0,
            )
        metrics.SOURCES_OWNED.set(self.sources_owned)

    def _of(self, providers: set[str] | frozenset[str]) -> list[Source]:
        return [s for s in self.sources if s.provider in providers]

    # ---------------------------------------------------------------------- work

    async def _job(self, source: Source) -> None:
        if self.shards is not None and not self._owns(source.provider):
            return  # another member's now (or our lease went stale): not checked here
        task = asyncio.current_task()
        if task is not None:
            task.set_name(source.provider)  # a shard lost cancels its provider's runs
            self._running.add(task)
        try:
            with self.pushed.reading(source):
                await self.run_source(source)
        except asyncio.CancelledError:
            return  # stopping (shutdown or lost lease): the round is simply not recorded
        finally:
            if task is not None:
                self._running.discard(task)
        self.schedule.rephase(source)
        if self.tracker.needs_recheck(source.id):
            # a differing result needs confirming: run it again shortly
            self.schedule.run_soon(source, self.settings.confirm_for(source.interval))
        self.pushed.after_run(source)

    async def run_source(self, source: Source) -> list[StateUpdate]:
        """One round of one source through the tracker into the store."""
        observations = await check_source(source, self.client)
        updates = await self.record(observations)
        if self.latency is not None:  # the sparkline's points (issue 16)
            for observation in observations:
                self.latency.observe(observation)
            with suppress(StoreUnavailable):  # kept for the next round
                await self.latency.flush()
        if self.maintenance is not None and isinstance(source, PageSource):
            try:
                await self.maintenance.after_read(source)
            except Exception:  # a bug here must not stop the page's rounds
                log.exception("maintenance ahead failed", source=source.id)
        return updates

    async def record(self, observations: Sequence[Observation]) -> list[StateUpdate]:
        if self.quorum is not None:
            observations = await self.quorum.combine(observations)
        async with self._observe_lock:
            updates = self.tracker.observe(observations)
            self.updates.add(updates)
        await self.flush()
        return updates

    async def flush(self) -> bool:
        """Write buffered updates in order; keep them if the store is unreachable."""
        return await self.updates.flush()


__all__ = [
    "LEASE_NAME",
    "Watcher",
    "WatcherSettings",
    "check_all",
    "check_source",
    "make_client",
    "tracker_for",
]
