"""The watcher: runs every source on its schedule and records what the tracker concludes.

One apscheduler job per source (interval with jitter, ``max_instances=1``, coalescing), one
shared ``httpx.AsyncClient``. A probe whose result differs from the current state is run
again after ``confirm_interval`` instead of a whole interval, so detection costs one
interval's phase plus the confirmations. Only the replica holding the ``leader`` lease
(:mod:`bot.lease`, under a holder unique to the process) watches. When the store is
unreachable, updates wait in a bounded in-memory buffer and are written in order once it is
back. A status page's push (:mod:`bot.hooks`) is only a hint: the leader takes poll requests
from the store and reads that page now, at most once a second per provider, so a forged or
stale push can cost one extra read but never set a state.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from bot import metrics
from bot.lease import Lease, sleep_unless, unique_holder
from bot.logs import get_logger, scrub_detail
from bot.models import Observation, SourceKind, StateUpdate, Status, worst
from bot.sources.base import Source
from bot.store import NOTIFIERS_GROUP, Store, StoreUnavailable
from bot.tracker import Thresholds, Tracker, TrackerSettings
from config.schema import TocsinConfig

log = get_logger("tocsin.watcher")

LEASE_NAME = "leader"
#: Seconds between the end of a read and the re-read a push asked for during it.
_RERUN_AFTER = 0.05


@dataclass(frozen=True, slots=True)
class WatcherSettings:
    instance: str
    lease: float = 15.0
    #: Who holds the lease: unique per process (``<instance>#<boot token>``); ``None``: a
    #: fresh token of this watcher's own.
    holder: str | None = None
    confirm_interval: float | None = None  # None: a quarter of the source's interval
    jitter: float | None = None  # None: a tenth of the source's interval
    buffer_limit: int = 10_000
    timeout: float = 10.0
    max_connections: int = 100
    user_agent: str = "tocsin"
    #: How often the leader takes poll requests (pushes), and the least time between two
    #: pushed reads of one page (a burst of pushes costs one read a second, not one each).
    poll_check: float = 0.5
    pushed_gap: float = 1.0

    def confirm_for(self, interval: float) -> float:
        if self.confirm_interval is not None:
            return self.confirm_interval
        return max(0.25, interval / 4)

    def jitter_for(self, interval: float) -> float:
        return self.jitter if self.jitter is not None else interval / 10


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


def make_client(settings: WatcherSettings) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.timeout),
        limits=httpx.Limits(
            max_connections=settings.max_connections,
            max_keepalive_connections=settings.max_connections,
        ),
        headers={"User-Agent": settings.user_agent},
    )


async def check_source(source: Source, client: httpx.AsyncClient) -> list[Observation]:
    """One round of one source, timed and counted. Never raises for bad input."""
    started = time.perf_counter()
    try:
        observations = await source.check(client)
    except Exception as exc:  # a source bug must not stop the watcher
        log.exception("source check crashed", source=source.id)
        observations = [
            Observation(
                provider=source.provider,
                component="page",
                status=Status.UNKNOWN,
                source=source.id,
                kind=source.kind,
                detail=f"{source.id} failed: {type(exc).__name__}: {exc}",
            )
        ]
    metrics.CHECK_LATENCY.labels(source.kind.value).observe(time.perf_counter() - started)
    result = worst(obs.status for obs in observations).value if observations else "empty"
    metrics.CHECKS.labels(source.provider, source.id, result).inc()
    return [_scrubbed(obs) for obs in observations]


def _scrubbed(obs: Observation) -> Observation:
    """A diagnostic may quote what was sent (an exception naming a header carries the key):
    secrets are masked before the tracker stores it or anyone is shown it."""
    detail = scrub_detail(obs.detail)
    return obs if detail == obs.detail else dataclasses.replace(obs, detail=detail)


class Watcher:
    def __init__(
        self,
        sources: Sequence[Source],
        tracker: Tracker,
        store: Store,
        settings: WatcherSettings,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.sources = list(sources)
        self.tracker = tracker
        self.store = store
        self.settings = settings
        self.client = client or make_client(settings)
        self._own_client = client is None
        self._scheduler: AsyncIOScheduler | None = None
        self._buffer: deque[StateUpdate] = deque()
        self._observe_lock = asyncio.Lock()
        self._flush_lock = asyncio.Lock()
        self._running: set[asyncio.Task[None]] = set()
        self._pages = {s.provider: s for s in self.sources if s.kind is SourceKind.PAGE}
        self._phases: dict[str, datetime] = {}  # source id → its steady phase (see _rephase)
        self._pushed_at: dict[str, float] = {}  # source id → when its last pushed read runs
        self._in_flight: set[str] = set()
        self._rerun: set[str] = set()  # pushed while running: read again once it is done
        self._polls_failing = False
        self.lease = Lease(
            store, LEASE_NAME, settings.holder or unique_holder(settings.instance), settings.lease
        )
        self.leader = False
        self.dropped = 0
        self._failing: str | None = None  # what last broke a lease round (said once)
        self.store_ok = True

    @property
    def leader(self) -> bool:
        """Whether this replica watches now (it holds the lease and has taken over)."""
        return self._leader

    @leader.setter
    def leader(self, value: bool) -> None:
        """The one place leading changes, so ``/healthz`` and the metric always agree."""
        self._leader = value
        metrics.LEADER.set(1 if value else 0)

    # ------------------------------------------------------------------ lifecycle

    async def run(self, stop: asyncio.Event) -> None:
        """Watch until ``stop`` is set (SIGTERM/SIGINT), leading only while holding the lease."""
        try:
            while not stop.is_set():
                await self._surviving(self._lead_or_follow)
                await sleep_unless(stop, self.lease.renew_every if self.store.shared else 5.0)
                if self._buffer:
                    await self._surviving(self.flush)
        finally:
            await self.shutdown()

    async def _surviving(self, step: Callable[[], Awaitable[object]]) -> None:
        """Run one step of the lease loop; a bug or a foreign value in the store must not end
        watching for good: said once per kind of failure, and the next round tries again."""
        try:
            await step()
        except Exception as exc:
            kind = f"{type(exc).__name__}: {exc}"
            if kind != self._failing:
                log.exception("a watcher round failed; trying again")
            self._failing = kind
        else:
            self._failing = None

    async def _lead_or_follow(self) -> None:
        try:
            held = await self.lease.acquire()
            self.store_ok = True
        except StoreUnavailable as exc:
            self.store_ok = False
            log.warning("store unreachable; watching on, updates buffered", error=str(exc))
            return  # keep doing what we did: a leader keeps watching, a follower waits
        if held and not self.leader:
            await self._become_leader()
        elif not held and self.leader:
            self._step_down()

    async def _become_leader(self) -> None:
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
        self._start_scheduler()
        self._running.add(asyncio.create_task(self._take_polls(), name="poll-requests"))

    def _step_down(self) -> None:
        log.warning("lost the watcher lease; another replica watches now")
        self.leader = False
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
        for task in list(self._running):
            task.cancel()
        self._pushed_at.clear()
        self._rerun.clear()

    def _start_scheduler(self) -> None:
        scheduler = AsyncIOScheduler(timezone="UTC")
        now = datetime.now().astimezone()
        for source in self.sources:
            jitter = min(self.settings.jitter_for(source.interval), source.interval)
            phase = random.uniform(0, min(source.interval, 2.0))  # spread the first round
            # ...and after it, each source keeps a phase of its own across the whole interval
            # (see _rephase): 500 sources at 10 s are 50 checks a second, not a burst.
            self._phases[source.id] = now + timedelta(seconds=random.uniform(0, source.interval))
            scheduler.add_job(
                self._job,
                # apscheduler only adds jitter (0 to j): half of it comes off the period so
                # a source still runs every `interval` on average
                IntervalTrigger(seconds=source.interval - jitter / 2, jitter=jitter),
                args=[source],
                id=source.id,
                name=source.id,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=max(1, int(source.interval)),
                next_run_time=now + timedelta(seconds=phase),
            )
        scheduler.start()
        self._scheduler = scheduler

    async def shutdown(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
        for task in list(self._running):
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)
        if self._buffer:
            await self.flush()
        await self.lease.release()
        self.leader = False
        if self._own_client:
            await self.client.aclose()

    # ---------------------------------------------------------------------- work

    async def _job(self, source: Source) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        self._in_flight.add(source.id)
        try:
            await self.run_source(source)
        except asyncio.CancelledError:
            return  # stopping (shutdown or lost lease): the round is simply not recorded
        finally:
            self._in_flight.discard(source.id)
            if task is not None:
                self._running.discard(task)
        anchor = self._phases.pop(source.id, None)
        if anchor is not None:
            self._rephase(source, anchor)
        if self.tracker.needs_recheck(source.id):
            self._confirm_soon(source)
        if source.id in self._rerun:
            self._rerun.discard(source.id)
            # Once apscheduler has counted this run as over: it skips a run while one is on.
            asyncio.get_running_loop().call_later(_RERUN_AFTER, self._read_pushed, source.provider)

    def _rephase(self, source: Source, anchor: datetime) -> None:
        """Move the source's next run onto its own phase (``anchor`` + k * interval).

        apscheduler computes each run from the previous one, so without this every source
        would keep the phase of its first run: all within the first 2 s."""
        if self._scheduler is None:
            return
        job = self._scheduler.get_job(source.id)
        if job is None:
            return
        now = datetime.now().astimezone()
        steps = max(1, math.ceil((now - anchor).total_seconds() / source.interval))
        job.modify(next_run_time=anchor + timedelta(seconds=steps * source.interval))

    def _confirm_soon(self, source: Source) -> None:
        """Run this source again shortly: a differing result needs confirming."""
        self._run_soon(source, self.settings.confirm_for(source.interval))

    async def _take_polls(self) -> None:
        """While leading: take the poll requests pushes left in the store (any replica may
        have received them) and read those pages now."""
        task = asyncio.current_task()
        try:
            while True:
                await asyncio.sleep(self.settings.poll_check)
                for provider in await self._poll_requests():
                    self._read_pushed(provider)
        finally:
            if task is not None:
                self._running.discard(task)

    async def _poll_requests(self) -> list[str]:
        """The pending requests; none (and the loop goes on) when the store cannot say."""
        try:
            providers = await self.store.take_poll_requests()
        except StoreUnavailable:
            return []  # the lease loop already says the store is away
        except Exception:  # e.g. a foreign value under our key: say so once, keep watching
            if not self._polls_failing:
                log.exception("cannot take poll requests from the store")
            self._polls_failing = True
            return []
        self._polls_failing = False
        return providers

    def _read_pushed(self, provider: str) -> None:
        """Read this provider's page now, or a gap after its last pushed read if that was
        recent; one read already on its way covers every push until it runs."""
        source = self._pages.get(provider)
        if source is None or self._scheduler is None:  # not ours, or no longer leading
            log.debug("poll request not for this watcher", provider=provider)
            return
        if source.id in self._in_flight:
            self._rerun.add(source.id)  # it may have fetched the page before the change
            return
        now = time.monotonic()
        last = self._pushed_at.get(source.id)
        if last is not None and last > now:
            return
        when = now if last is None else max(now, last + self.settings.pushed_gap)
        self._pushed_at[source.id] = when
        self._run_soon(source, when - now)
        metrics.POLLS_REQUESTED.labels(provider).inc()
        delay = round(when - now, 2)
        log.info("reading a status page early: a push asked", source=source.id, in_s=delay)

    def _run_soon(self, source: Source, delay: float) -> None:
        """Move the source's next run to ``delay`` seconds from now, unless it is sooner."""
        if self._scheduler is None:
            return
        when = datetime.now().astimezone() + timedelta(seconds=delay)
        job = self._scheduler.get_job(source.id)
        if job is not None and (job.next_run_time is None or job.next_run_time > when):
            job.modify(next_run_time=when)

    async def run_source(self, source: Source) -> list[StateUpdate]:
        """One round of one source through the tracker into the store."""
        observations = await check_source(source, self.client)
        return await self.record(observations)

    async def record(self, observations: Sequence[Observation]) -> list[StateUpdate]:
        async with self._observe_lock:
            updates = self.tracker.observe(observations)
            self._buffer.extend(updates)
            if len(self._buffer) > self.settings.buffer_limit:
                self._compact()
            while len(self._buffer) > self.settings.buffer_limit:
                self._buffer.popleft()
                self.dropped += 1
                metrics.BUFFER_DROPPED.inc()
                if self.dropped == 1:
                    log.error(
                        "the buffer is full of events: the oldest are dropped",
                        limit=self.settings.buffer_limit,
                    )
            metrics.BUFFERED.set(len(self._buffer))
        await self.flush()
        return updates

    def _compact(self) -> None:
        """Make room without losing anything that matters: an update that carries no event
        and no status change only refreshes a state a later update overwrites anyway, so only
        the newest of those per component is kept. Events are dropped only if events alone
        overflow the buffer."""
        newest = {u.state.key: i for i, u in enumerate(self._buffer) if _plain(u)}
        kept = [u for i, u in enumerate(self._buffer) if not _plain(u) or newest[u.state.key] == i]
        self._buffer.clear()
        self._buffer.extend(kept)

    async def flush(self) -> bool:
        """Write buffered updates in order; keep them if the store is unreachable."""
        async with self._flush_lock:
            if not self._buffer:
                return True
            batch = list(self._buffer)
            try:
                await self.store.apply(batch)
            except StoreUnavailable as exc:
                if self.store_ok:
                    log.warning("store unreachable; buffering updates", error=str(exc))
                self.store_ok = False
                metrics.STORE_UP.set(0)
                return False
            for _ in batch:
                self._buffer.popleft()
            for update in batch:
                if update.event is not None:
                    metrics.EVENTS.labels(update.event.type).inc()
            if not self.store_ok:
                log.info("store reachable again; buffered updates written", updates=len(batch))
            self.store_ok = True
            metrics.STORE_UP.set(1)
            metrics.BUFFERED.set(len(self._buffer))
            return True

    @property
    def buffered(self) -> int:
        return len(self._buffer)


def _plain(update: StateUpdate) -> bool:
    """A state refresh (checked_at, latency): no event, no status change for the history."""
    return update.event is None and not update.status_changed


async def check_all(sources: Sequence[Source], client: httpx.AsyncClient) -> list[Observation]:
    """One round of every source at once (``tocsin check``)."""
    rounds = await asyncio.gather(*(check_source(s, client) for s in sources))
    return [obs for observations in rounds for obs in observations]
