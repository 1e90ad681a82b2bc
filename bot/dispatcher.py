"""The dispatcher: from the event stream to every target, exactly once.

It reads the ``notifiers`` consumer group and hands each event to one ordered queue per
target, so a target that is down (Slack for an hour) delays nobody else, and a target's
notices keep their order (the root before its replies). Each (event, target) goes through a
pipeline of small stages, Alertmanager-style:

    route → dedupe → compose → reconcile (after a crash) → send with retry → record

(a notice the platform refuses for its content is sent once more without its optional parts:
a bad link must not cost the outage notice; see ``Dispatcher._degrading``)

A stream entry is acknowledged only when every target is done with it (delivered, not for
it, or dead-lettered). If the process dies, its unacknowledged entries are read again on
restart (or claimed by another replica); the ``sent:{event}:{target}`` marks, and a
notifier's ``find_sent`` for the window between posting and marking, keep that from
doubling a notice.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_never,
    wait_exponential_jitter,
)

from bot import metrics
from bot.lease import sleep_unless
from bot.logs import get_logger
from bot.models import ComponentState, Event, utcnow
from bot.notices import FallbackOption, Notice, compose, compose_root, provider_components
from bot.notify import (
    ContentRejected,
    Delivery,
    Intent,
    PermanentError,
    Receipt,
    RetryableError,
    Route,
    Target,
    degraded,
)
from bot.queries import fallback_options
from bot.store import NOTIFIERS_GROUP, Store, StoreUnavailable, StreamEntry
from config.schema import TocsinConfig

log = get_logger("tocsin.dispatcher")

_T = TypeVar("_T")
#: How many acknowledged entry ids are remembered (see ``_behind_its_opener``).
FINISHED_KEPT = 4096
Outcome = Literal["delivered", "reconciled", "duplicate", "skipped", "dead"]


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


class NoticeContext:
    """What notices need besides the event: the provider's components and fallbacks.

    Looked up once per event (not per target), so fanning one outage out to a thousand
    channels reads the store once.
    """

    def __init__(self, config: TocsinConfig, store: Store, probed: Collection[str] = ()) -> None:
        self.config = config
        self.store = store
        self.probed = frozenset(probed)
        self._cache: dict[str, tuple[list[ComponentState], list[FallbackOption]]] = {}
        self._loading: dict[
            str, asyncio.Future[tuple[list[ComponentState], list[FallbackOption]]]
        ] = {}
        self._notices: dict[tuple[str, str], Notice] = {}

    async def lookup(self, event: Event) -> tuple[list[ComponentState], list[FallbackOption]]:
        cached = self._cache.get(event.id)
        if cached is not None:
            return cached
        # the targets' workers ask at once: the first one reads, the others wait for it
        loading = self._loading.get(event.id)
        if loading is None:
            loading = asyncio.ensure_future(self._load(event))
            self._loading[event.id] = loading
            loading.add_done_callback(lambda _: self._loading.pop(event.id, None))
        return await asyncio.shield(loading)

    async def _load(self, event: Event) -> tuple[list[ComponentState], list[FallbackOption]]:
        states = await self.store.states()
        loaded = (
            provider_components(states, event.provider),
            fallback_options(self.config, states, event.provider, probed=self.probed),
        )
        self._cache[event.id] = loaded
        while len(self._cache) > 256:
            self._cache.pop(next(iter(self._cache)))
        return loaded

    async def notice(self, event: Event, which: Literal["message", "root"]) -> Notice:
        key = (event.id, which)
        if key not in self._notices:
            components, fallbacks = await self.lookup(event)
            provider = self.config.provider(event.provider)
            status_url = provider.status_url if provider else None
            self._notices[key] = (
                compose_root(
                    event, components=components, fallbacks=fallbacks, status_url=status_url
                )
                if which == "root"
                else compose(event, fallbacks=fallbacks)
            )
            while len(self._notices) > 512:
                self._notices.pop(next(iter(self._notices)))
        return self._notices[key]


def route(event: Event, target: Target, thread: dict[str, Any] | None) -> Intent | None:
    """Does this target get this event, and as what?"""
    r = target.route
    if r.policy is not None or event.type == "escalation":
        return _route_escalation(event, r, thread)
    if event.type == "drill":
        return Intent.NOTICE
    if event.audience == "admins" or event.type in ("watcher_health", "config_alert"):
        return Intent.NOTICE if r.admin else None
    if not r.wants(event.provider):
        return None
    if thread is not None:
        if event.episode_closed and event.type != "incident_update":
            return Intent.RESOLVE
        return Intent.UPDATE if r.updates else None
    if event.episode_closed or event.episode is None:
        return None  # never told them it started: a recovery would be noise
    status = event.provider_status or event.to
    if status is not None and status.reaches(r.min_status):
        return Intent.OPEN
    return None


def _route_escalation(event: Event, r: Route, thread: dict[str, Any] | None) -> Intent | None:
    """A pager hears only its policy's pages; a chat thread hears that someone was paged."""
    escalation = event.escalation
    if escalation is None or event.type != "escalation":
        return None
    if r.policy is not None:
        return Intent.NOTICE if escalation.policy == r.policy else None
    if thread is not None and r.updates and escalation.action == "trigger":
        return Intent.UPDATE
    return None


@dataclass
class _Entry:
    """A stream entry in flight: acknowledged when its last target is done."""

    entry: StreamEntry
    remaining: int
    redelivery: bool
    started: float = field(default_factory=time.monotonic)
    #: The targets done with it (see ``_behind_its_opener``).
    done: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class _Job:
    flight: _Entry
    event: Event


class Dispatcher:
    def __init__(
        self,
        store: Store,
        targets: Sequence[Target],
        context: NoticeContext,
        settings: DispatcherSettings,
    ) -> None:
        self.store = store
        self.targets = list(targets)
        self.context = context
        self.settings = settings
        self._queues: dict[str, asyncio.Queue[_Job]] = {t.key: asyncio.Queue() for t in targets}
        self._inflight: dict[str, _Entry] = {}
        self._finished: dict[str, None] = {}  # recently acknowledged entries, oldest first
        self._store_away = False
        self._failing: str | None = None  # what last broke the reading loop (said once)
        self._room = asyncio.Event()
        self._store_slots = asyncio.Semaphore(settings.store_concurrency)
        self._room.set()
        self._workers: list[asyncio.Task[None]] = []
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
            await self._drain()

    async def _consume(self, stop: asyncio.Event) -> None:
        await self._until_store(self.store.ensure_group, self.settings.group, stop=stop)
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
        entries = await self._until_store(
            self.store.pending_own,
            self.settings.group,
            self.settings.consumer,
            self.settings.max_inflight,
            stop=stop,
        )
        if entries:
            log.info("resuming deliveries interrupted by a restart", entries=len(entries))
        for entry in entries or []:
            await self._dispatch(entry, redelivery=True)

    async def _read_once(self, stop: asyncio.Event) -> None:
        if len(self._inflight) >= self.settings.max_inflight:
            self._room.clear()
            try:
                await asyncio.wait_for(self._room.wait(), self.settings.block_ms / 1000)
            except TimeoutError:
                return
        room = self.settings.max_inflight - len(self._inflight)
        try:
            entries = await self.store.read_group(
                self.settings.group,
                self.settings.consumer,
                min(self.settings.batch, room),
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
        for entry in entries:
            await self._dispatch(entry, redelivery=entry.deliveries > 1)

    async def _housekeeping(self) -> None:
        """Keep our in-flight entries ours, and adopt those of dead consumers."""
        try:
            await self.store.touch(
                self.settings.group, self.settings.consumer, list(self._inflight)
            )
            claimed = await self.store.claim_stale(
                self.settings.group,
                self.settings.consumer,
                self.settings.claim_idle_ms,
                self.settings.batch,
            )
        except StoreUnavailable:
            return
        for entry in claimed:
            if entry.id not in self._inflight:
                log.info("claimed an entry a dead consumer left pending", entry=entry.id)
                await self._dispatch(entry, redelivery=True)

    async def _dispatch(self, entry: StreamEntry, *, redelivery: bool) -> None:
        if entry.id in self._inflight:
            return
        if entry.event is None:
            log.error("unreadable stream entry dead-lettered", entry=entry.id, error=entry.error)
            await self._record_dead({"entry": entry.id, "error": entry.error})
            await self._ack(entry.id)
            return
        if not self.targets:
            await self._ack(entry.id)
            return
        flight = _Entry(entry, remaining=len(self.targets), redelivery=redelivery)
        self._inflight[entry.id] = flight
        for target in self.targets:
            self._queues[target.key].put_nowait(_Job(flight, entry.event))

    async def _finish(self, flight: _Entry) -> None:
        flight.remaining -= 1
        if flight.remaining > 0:
            return
        await self._ack(flight.entry.id)
        self._inflight.pop(flight.entry.id, None)
        self._finished[flight.entry.id] = None  # acked: a concurrent XPENDING may still list it
        while len(self._finished) > FINISHED_KEPT:
            self._finished.pop(next(iter(self._finished)))
        if len(self._inflight) < self.settings.max_inflight:
            self._room.set()

    async def _ack(self, entry_id: str) -> None:
        await self._until_store(self.store.ack, self.settings.group, entry_id)

    async def _drain(self, grace: float = 5.0) -> None:
        """Give in-progress deliveries a moment, then stop; the rest stay pending."""
        with suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(q.join() for q in self._queues.values())), grace
            )
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)

    # -------------------------------------------------------------- per target

    async def _work(self, target: Target) -> None:
        queue = self._queues[target.key]
        while True:
            job = await queue.get()
            try:
                if await self._behind_its_opener(target, job):
                    loop = asyncio.get_running_loop()
                    loop.call_later(self.settings.store_retry, queue.put_nowait, job)
                    continue  # not done: the entry stays unacknowledged (and ours)
                outcome = await self._process_safely(target, job)
                job.flight.done.add(target.key)
                await self._notify(job.event, target, outcome)
            finally:
                queue.task_done()
            await self._finish(job.flight)

    async def _behind_its_opener(self, target: Target, job: _Job) -> bool:
        """Must this event wait for an earlier one of its episode? Replicas share the
        stream, not an order: the event that opens the episode's thread may still be with
        another replica (a dead one's until it is claimed), and routing a later event
        without that thread would post a second root, or drop the recovery as noise.
        The wait never blocks the queue (the job is put back a moment later): the earlier
        event may be queued behind it, claimed by this very replica."""
        event = job.event
        if (
            event.episode is None
            or event.episode_started == event.at  # it opened the episode
            or event.audience != "all"
            or event.type in ("drill", "escalation")
            or target.route.policy is not None
        ):
            return False
        try:
            if await self._until_store(self.store.get_thread, event.episode, target.key):
                return False
            earlier = await self._until_store(
                self.store.pending_before,
                self.settings.group,
                job.flight.entry.id,
                self.settings.max_inflight,
            )
        except Exception:  # a bug here must not stop the target's worker
            log.exception("cannot tell whether an earlier notice is pending", target=target.label)
            return False
        for entry in earlier or []:
            if entry.event is None or entry.event.episode != event.episode:
                continue
            if entry.id in self._finished:
                continue  # done here moments ago: listed before our acknowledgement landed
            ours = self._inflight.get(entry.id)
            if ours is None or target.key not in ours.done:
                log.debug("waiting for an earlier notice", event_id=event.id, entry=entry.id)
                return True
        return False

    async def _process_safely(self, target: Target, job: _Job) -> Outcome:
        """A bug in a stage must not silence a target for good: record it and move on."""
        try:
            return await self.process(target, job.event, redelivery=job.flight.redelivery)
        except Exception as exc:
            log.exception("delivery pipeline failed", target=target.label, event_id=job.event.id)
            await self._record_dead(
                {
                    "target": target.key,
                    "event": job.event.id,
                    "provider": job.event.provider,
                    "error": f"pipeline error: {type(exc).__name__}: {exc}",
                    "at": utcnow().isoformat(),
                }
            )
            return "dead"

    async def _notify(self, event: Event, target: Target, outcome: Outcome) -> None:
        metrics.DELIVERIES.labels(target.notifier.kind, outcome).inc()
        if self.on_outcome is not None:
            result = self.on_outcome(event, target, outcome)
            if result is not None:
                await result

    async def process(self, target: Target, event: Event, *, redelivery: bool = False) -> Outcome:
        """The pipeline for one (event, target). Never raises (but may be cancelled)."""
        thread = await self._thread(event, target)
        if thread is not None and thread.get("event") == event.id:
            # this event opened the thread: it was delivered, the mark did not get written
            await self._until_store(self.store.mark_sent, event.id, target.key, "thread")
            return "reconciled"
        intent = route(event, target, thread)
        if intent is None:
            return "skipped"
        if await self._until_store(self.store.sent, event.id, target.key):
            return "duplicate"
        delivery = await self._delivery(event, intent, thread, redelivery)
        if redelivery:
            found = await self._reconcile(target, delivery)
            if found is not None:
                await self._record(target, delivery, found)
                return "reconciled"
        try:
            receipt = await self._degrading(target, delivery, target.notifier.deliver)
        except PermanentError as exc:
            await self._dead(target, delivery, str(exc))
            return "dead"
        await self._record(target, delivery, receipt)
        return "delivered"

    async def _thread(self, event: Event, target: Target) -> dict[str, Any] | None:
        if event.episode is None or event.type == "drill":
            return None
        thread: dict[str, Any] | None = await self._until_store(
            self.store.get_thread, event.episode, target.key
        )
        return thread

    async def _delivery(
        self, event: Event, intent: Intent, thread: dict[str, Any] | None, redelivery: bool
    ) -> Delivery:
        async def notice(which: Literal["message", "root"]) -> Notice:
            result: Notice = await self._until_store(self.context.notice, event, which)
            return result

        if intent is Intent.OPEN:
            return Delivery(event, await notice("root"), intent, None, None, redelivery)
        # the root says what the episode is now; after it closed (a late incident update) it
        # already says resolved, and is left alone
        edits_root = intent is Intent.RESOLVE or (
            intent is Intent.UPDATE and not event.episode_closed and event.type != "escalation"
        )
        root = await notice("root") if edits_root else None
        return Delivery(event, await notice("message"), intent, thread, root, redelivery)

    async def _reconcile(self, target: Target, delivery: Delivery) -> Receipt | None:
        """Did a process that died already post this? Asked with the same retries as a send:
        guessing "no" while the platform is down could post it twice."""
        try:
            return await self._degrading(target, delivery, target.notifier.find_sent)
        except PermanentError as exc:
            log.warning(
                "cannot tell whether a notice was already posted; posting it",
                target=target.label,
                event_id=delivery.event.id,
                reason=str(exc),
            )
            return None

    async def _degrading(
        self,
        target: Target,
        delivery: Delivery,
        call: Callable[[Target, Delivery], Awaitable[_T]],
    ) -> _T:
        """``call`` with retries; if the platform refuses the notice's content, once more with
        the notice cut to its title and text (a bad link or list must not cost the notice).
        Refused again, or nothing left to drop: the :class:`ContentRejected` is raised."""
        try:
            return await self._retrying(target, delivery, lambda: call(target, delivery))
        except ContentRejected as exc:
            plainer, dropped = degraded(delivery)
            if not dropped:
                raise
            log.warning(
                "notice refused for its content; sending it without " + ", ".join(dropped),
                target=target.label,
                event_id=delivery.event.id,
                dropped=list(dropped),
                reason=str(exc),
            )
            return await self._retrying(target, plainer, lambda: call(target, plainer))

    async def _retrying(
        self,
        target: Target,
        delivery: Delivery,
        call: Callable[[], Awaitable[_T]],
    ) -> _T:
        """``call`` until it works: retryable errors wait (Retry-After when given, else
        exponential backoff with jitter), permanent ones are raised, and a notifier's bug
        gets a few tries before it counts as permanent."""
        unexpected = 0

        def wait(state: RetryCallState) -> float:
            backoff = wait_exponential_jitter(
                multiplier=self.settings.retry_initial, max=self.settings.retry_max
            )(state)
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, RetryableError) and exc.retry_after is not None:
                return max(exc.retry_after, 0.0)
            return backoff

        def before_sleep(state: RetryCallState) -> None:
            metrics.RETRIES.labels(target.notifier.kind).inc()
            exc = state.outcome.exception() if state.outcome else None
            log.warning(
                "delivery failed; retrying",
                target=target.label,
                event_id=delivery.event.id,
                attempt=state.attempt_number,
                error=str(exc),
                retry_in=round(state.upcoming_sleep, 2),
            )

        retrying = AsyncRetrying(
            retry=retry_if_exception_type((RetryableError, _Unexpected)),
            wait=wait,
            stop=stop_never,
            before_sleep=before_sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                try:
                    return await call()
                except (RetryableError, PermanentError):
                    raise
                except Exception as exc:  # a bug in a notifier must not lose the notice
                    unexpected += 1
                    log.exception("notifier raised unexpectedly", target=target.label)
                    if unexpected >= self.settings.unexpected_attempts:
                        raise PermanentError(f"{type(exc).__name__}: {exc}") from exc
                    raise _Unexpected(str(exc)) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def _record(self, target: Target, delivery: Delivery, receipt: Receipt) -> None:
        event = delivery.event
        if delivery.intent is Intent.OPEN and event.episode:
            ref = {**receipt.ref, "event": event.id}  # which event opened it (see process)
            await self._until_store(self.store.set_thread, event.episode, target.key, ref)
        await self._until_store(
            self.store.mark_sent, event.id, target.key, json.dumps(receipt.ref) or "1"
        )

    async def _dead(self, target: Target, delivery: Delivery, reason: str) -> None:
        metrics.DEAD_LETTERS.labels(target.notifier.kind).inc()
        log.error(
            "delivery failed for good; dead-lettered",
            target=target.label,
            event_id=delivery.event.id,
            provider=delivery.event.provider,
            reason=reason,
        )
        await self._record_dead(
            {
                "target": target.key,
                "event": delivery.event.id,
                "provider": delivery.event.provider,
                "intent": delivery.intent.value,
                "error": reason,
                "at": utcnow().isoformat(),
            }
        )

    async def _record_dead(self, record: dict[str, Any]) -> None:
        await self._until_store(self.store.dead_letter, record)

    async def _until_store(
        self, call: Callable[..., Awaitable[Any]], *args: Any, stop: asyncio.Event | None = None
    ) -> Any:
        """Run a store call, waiting out an unreachable store (nothing is dropped)."""
        warned = False
        while True:
            try:
                async with self._store_slots:
                    return await call(*args)
            except StoreUnavailable as exc:
                if not warned:
                    log.warning("store unreachable; waiting", error=str(exc))
                    warned = True
                if stop is not None and stop.is_set():
                    return None
                await asyncio.sleep(self.settings.store_retry)

    # ------------------------------------------------------------------- direct

    async def deliver_now(self, event: Event) -> dict[str, Outcome]:
        """Run one event through every target's pipeline right away (drills, checks)."""
        outcomes = await asyncio.gather(*(self.process(t, event) for t in self.targets))
        return {t.key: o for t, o in zip(self.targets, outcomes, strict=True)}


class _Unexpected(Exception):
    """Marks an unexpected notifier error as worth a few more tries."""
