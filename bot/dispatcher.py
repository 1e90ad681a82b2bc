"""The dispatcher: from the event stream to every target, exactly once.

It reads the ``notifiers`` consumer group and hands each event to one ordered queue per
target, so a target that is down (Slack for an hour) delays nobody else, and a target's
notices keep their order (the root before its replies). Each (event, target) then goes
through the delivery pipeline of small stages, Alertmanager-style (:mod:`bot.pipeline`):

    look up thread → route → mute → dedupe → group (by likely cause) → compose
        → reconcile (after a crash) → send with retry → record

A target's jobs run one after the other, except that a job whose stage has to wait a while
(grouping's ``group_wait``) *parks*: it goes on in a task of its own and the target's next
job starts; :mod:`bot.pipeline.ordering` keeps an episode's later events behind its opener
meanwhile. The reading loop never waits for a delivery, only for room in flight.

A stream entry is acknowledged only when every target is done with it (delivered, not for
it, or dead-lettered). If the process dies, its unacknowledged entries are read again on
restart (or claimed by another replica); the ``sent:{event}:{target}`` marks, and a
notifier's ``find_sent`` for the window between posting and marking, keep that from
doubling a notice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass

from bot import metrics
from bot.chatops.controls import Controls
from bot.lease import sleep_unless
from bot.logs import get_logger
from bot.models import Event
from bot.notice_context import NoticeContext
from bot.notifier import Target
from bot.pipeline import GroupSettings, Mute, Outcome, Work, delivery_pipeline
from bot.pipeline.dead_letters import DeadLetters
from bot.pipeline.groups import Sleep
from bot.pipeline.inflight import InFlight, Job
from bot.pipeline.ordering import Ordering
from bot.pipeline.patience import Patience
from bot.pipeline.retry import RetryPolicy
from bot.store import NOTIFIERS_GROUP, Store, StoreUnavailable, StreamEntry

__all__ = ["Dispatcher", "DispatcherSettings", "Outcome"]

log = get_logger("tocsin.dispatcher")


@dataclass(frozen=True, slots=True)
class DispatcherSettings:
    consumer: str
    group: str = NOTIFIERS_GROUP
    batch: int = 100
    block_ms: int = 1000
    claim_idle_ms: int = 30_000
    touch_every: float = 10.0
    max_inflight: int = 2000
    retry_initial: float = 0.5
    retry_max: float = 60.0
    store_retry: float = 1.0
    #: Store calls the per-target workers make at once: a fan-out to hundreds of channels
    #: must not take every connection of the pool the watcher and health checks share.
    store_concurrency: int = 32
    #: Unexpected errors (bugs) get this many tries before the delivery is dead-lettered.
    unexpected_attempts: int = 5
    #: How long a stop waits for deliveries in progress (the rest stay pending).
    drain_grace: float = 5.0
    #: Grouping by likely cause (config ``grouping``, :mod:`bot.pipeline.grouping`): whether,
    #: how long the first of a group waits for the others, how long past that a dead leader's
    #: claim holds, and how often a waiting member looks (one in this process is woken).
    grouping: bool = True
    group_wait: float = 15.0
    group_grace: float = 10.0
    group_poll: float = 1.0

    @property
    def group_settings(self) -> GroupSettings:
        return GroupSettings(
            enabled=self.grouping,
            wait=self.group_wait,
            grace=self.group_grace,
            poll=self.group_poll,
        )


class Dispatcher:
    def __init__(
        self,
        store: Store,
        targets: Sequence[Target],
        context: NoticeContext,
        settings: DispatcherSettings,
        *,
        mutes: Sequence[Mute] = (),
        sleep: Sleep = asyncio.sleep,
        controls: Controls | None = None,
    ) -> None:
        self.store = store
        self.targets = list(targets)
        #: (issue 15) The chat's silences, acknowledgements and subscriptions, read once per
        #: batch: they mute, decorate roots, and add the channels subscribed from the chat.
        self.controls = controls
        if controls is not None:
            mutes = (*mutes, controls.muted)
        self.context = context
        self.settings = settings
        self._patience = Patience(settings.store_retry, settings.store_concurrency)
        self._dead_letters = DeadLetters(store, self._patience)
        self._inflight = InFlight(settings.max_inflight)
        self._ordering = Ordering(store, self._patience, self._inflight, settings.group)
        self._pipeline = delivery_pipeline(
            store,
            context,
            patience=self._patience,
            retry=RetryPolicy(
                settings.retry_initial, settings.retry_max, settings.unexpected_attempts
            ),
            dead_letters=self._dead_letters,
            mutes=mutes,
            grouping=settings.group_settings,
            sleep=sleep,
            decorate=controls.decorate if controls is not None else None,
        )
        self._queues: dict[str, asyncio.Queue[Job]] = {t.key: asyncio.Queue() for t in targets}
        #: The targets of the batch being dispatched (with chat subscriptions, see _refresh).
        self._now: list[Target] = list(targets)
        self._store_away = False
        self._failing: str | None = None  # what last broke the reading loop (said once)
        self._workers: list[asyncio.Task[None]] = []
        #: Jobs that parked (waiting for their group) and go on in tasks of their own.
        self._parked: set[asyncio.Task[None]] = set()
        #: Called after every (event, target) outcome: tests and benchmarks watch this.
        self.on_outcome: Callable[[Event, Target, Outcome], Awaitable[None] | None] | None = None

    # ------------------------------------------------------------------ main loop

    async def run(self, stop: asyncio.Event) -> None:
        self._workers = [
            asyncio.create_task(self._work(t), name=f"deliver:{t.key}") for t in self.targets
        ]
        try:
            while not stop.is_set():
                try:
                    await self._consume(stop)
                except Exception as exc:  # a bug or a foreign value must not end delivery
                    self._failed(exc)
                    await sleep_unless(stop, self.settings.store_retry)
        finally:
            await self._drain(self.settings.drain_grace)

    async def _consume(self, stop: asyncio.Event) -> None:
        await self._patience.run(self.store.ensure_group, self.settings.group, stop=stop)
        await self._recover(stop)
        last_touch = time.monotonic()
        while not stop.is_set():
            await self._read_once(stop)
            if time.monotonic() - last_touch >= self.settings.touch_every:
                await self._housekeeping()
                last_touch = time.monotonic()
            self._failing = None

    def _failed(self, exc: Exception) -> None:
        """Say what broke the reading loop, once per kind of failure: it starts over."""
        kind = f"{type(exc).__name__}: {exc}"
        if kind != self._failing:
            log.exception("reading the event stream failed; starting over")
        self._failing = kind

    async def _recover(self, stop: asyncio.Event) -> None:
        """Entries this consumer took before it died: deliver them again (marks dedupe)."""
        entries = await self._patience.run(
            self.store.pending_own,
            self.settings.group,
            self.settings.consumer,
            self.settings.max_inflight,
            stop=stop,
        )
        if entries:
            log.info("resuming deliveries interrupted by a restart", entries=len(entries))
        await self._refresh(entries or [])
        for entry in entries or []:
            await self._dispatch(entry, redelivery=True)

    async def _read_once(self, stop: asyncio.Event) -> None:
        if not await self._inflight.wait_for_room(self.settings.block_ms / 1000):
            return
        try:
            entries = await self.store.read_group(
                self.settings.group,
                self.settings.consumer,
                min(self.settings.batch, self._inflight.room),
                self.settings.block_ms,
            )
        except StoreUnavailable as exc:
            if not self._store_away:  # once per outage, not once a second
                log.warning("store unreachable; notices wait", error=str(exc))
            self._store_away = True
            await sleep_unless(stop, self.settings.store_retry)
            return
        if self._store_away:
            log.info("store reachable again; notices go on")
            self._store_away = False
        await self._refresh(entries)
        for entry in entries:
            await self._dispatch(entry, redelivery=entry.deliveries > 1)

    async def _housekeeping(self) -> None:
        """Keep our in-flight entries ours, and adopt those of dead consumers."""
        try:
            await self.store.touch(
                self.settings.group, self.settings.consumer, self._inflight.ids()
            )
            claimed = await self.store.claim_stale(
                self.settings.group,
                self.settings.consumer,
                self.settings.claim_idle_ms,
                self.settings.batch,
            )
        except StoreUnavailable:
            return
        await self._refresh(claimed)
        for entry in claimed:
            if entry.id not in self._inflight:
                log.info("claimed an entry a dead consumer left pending", entry=entry.id)
                await self._dispatch(entry, redelivery=True)

    async def _refresh(self, entries: Sequence[StreamEntry]) -> None:
        """Before a batch goes out: the chat's state now, and the targets it makes (a
        channel subscribed from the chat gets its queue and worker here, on any replica)."""
        if self.controls is None or not entries:
            return
        await self.controls.refresh()
        self._now = self.controls.targets(self.targets)
        for target in self._now:
            if target.key not in self._queues:
                self._queues[target.key] = asyncio.Queue()
                task = asyncio.create_task(self._work(target), name=f"deliver:{target.key}")
                self._workers.append(task)

    async def _dispatch(self, entry: StreamEntry, *, redelivery: bool) -> None:
        if entry.id in self._inflight:
            return
        if entry.event is None:
            await self._dead_letters.unreadable(entry.id, entry.error)
            await self._ack(entry.id)
            return
        targets = self._now if self.controls is not None else self.targets
        if not targets:
            await self._ack(entry.id)
            return
        flight = self._inflight.take(entry, len(targets), redelivery=redelivery)
        for target in targets:
            self._queues[target.key].put_nowait(Job(flight, entry.event, target))

    async def _ack(self, entry_id: str) -> None:
        await self._patience.run(self.store.ack, self.settings.group, entry_id)

    async def _drain(self, grace: float = 5.0) -> None:
        """Give in-progress deliveries a moment, then stop; the rest stay pending (a parked
        job too: its entry is delivered again on restart, its group claim expires)."""
        deadline = time.monotonic() + grace
        with suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(q.join() for q in self._queues.values())), grace
            )
        if self._parked:
            await asyncio.wait(set(self._parked), timeout=max(0.0, deadline - time.monotonic()))
        for task in [*self._workers, *self._parked]:
            task.cancel()
        await asyncio.gather(*self._workers, *self._parked, return_exceptions=True)

    # -------------------------------------------------------------- per target

    async def _work(self, target: Target) -> None:
        queue = self._queues[target.key]
        while True:
            job = await queue.get()
            try:
                now = job.target or target
                if await self._ordering.waits(now, job):
                    loop = asyncio.get_running_loop()
                    loop.call_later(self.settings.store_retry, queue.put_nowait, job)
                    continue  # not done: the entry stays unacknowledged (and ours)
                await self._run(now, job)
            finally:
                queue.task_done()

    async def _run(self, target: Target, job: Job) -> None:
        """One job, to its end; or until it parks, when it goes on in its own task."""
        parked: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def park() -> None:
            if not parked.done():
                parked.set_result(None)

        task = asyncio.create_task(self._finish(target, job, park), name=f"job:{target.key}")
        try:
            await asyncio.wait({task, parked}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if not task.done():
            self._parked.add(task)
            task.add_done_callback(self._unparked)
        else:
            task.result()

    def _unparked(self, task: asyncio.Task[None]) -> None:
        self._parked.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a parked delivery failed", exc_info=task.exception())

    async def _finish(self, target: Target, job: Job, park: Callable[[], None]) -> None:
        outcome = await self.process(target, job.event, redelivery=job.flight.redelivery, park=park)
        job.flight.done.add(target.key)
        await self._notify(job.event, target, outcome)
        if self._inflight.target_done(job.flight):
            await self._ack(job.flight.entry.id)
            self._inflight.finished(job.flight)

    async def _notify(self, event: Event, target: Target, outcome: Outcome) -> None:
        metrics.DELIVERIES.labels(target.notifier.kind, outcome).inc()
        if self.on_outcome is not None:
            result = self.on_outcome(event, target, outcome)
            if result is not None:
                await result

    async def process(
        self,
        target: Target,
        event: Event,
        *,
        redelivery: bool = False,
        park: Callable[[], None] | None = None,
    ) -> Outcome:
        """The pipeline for one (event, target). Never raises (but may be cancelled): a bug
        in a stage must not silence a target for good, so it is recorded and passed over."""
        try:
            return await self._pipeline.run(Work(event, target, redelivery, park=park))
        except Exception as exc:
            log.exception("delivery pipeline failed", target=target.label, event_id=event.id)
            await self._dead_letters.broken(target, event, exc)
            return "dead"

    # ------------------------------------------------------------------- direct

    async def deliver_now(self, event: Event) -> dict[str, Outcome]:
        """Run one event through every target's pipeline right away (drills, checks)."""
        outcomes = await asyncio.gather(*(self.process(t, event) for t in self.targets))
        return {t.key: o for t, o in zip(self.targets, outcomes, strict=True)}
