"""A consumer group that one process at a time reads, by lease: the escalator's pages and the
history's records are decided once, whichever replica holds the lease.

:class:`LeasedReader` is the loop (:func:`bot.lease.hold` drives it): on a takeover it
reloads its state (:meth:`load`) and finishes what a predecessor read and never acknowledged
(under the same consumer name); while leading it reads a batch, folds each event
(:meth:`fold`), acknowledges it, and when caught up looks at the clock (:meth:`tick`), until
the lease is due for renewal. A failure lets go of the lease and starts over after
``store_retry``, state reloaded on the next takeover. Subclasses say what a fold and a tick do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from bot.lease import Lease, hold, sleep_unless
from bot.logs import get_logger
from bot.models import Event
from bot.store import Store, StoreUnavailable, StreamEntry

log = get_logger("tocsin.lease")


@dataclass(frozen=True, slots=True)
class LeaseSettings:
    """How a leased reader runs in this process (the escalator's and the history's)."""

    instance: str
    lease: float = 15.0
    #: Who holds the lease: unique per process (``<instance>#<boot token>``); ``None``: a
    #: fresh token of this reader's own.
    holder: str | None = None
    #: How often the clock is looked at, events read per batch, the wait after a failure.
    tick: float = 1.0
    batch: int = 100
    store_retry: float = 1.0

    def reading(self, group: str, *, from_start: bool = False) -> ReaderSettings:
        """The group's reading, one consumer name (``group``) for every holder."""
        return ReaderSettings(
            group, group, self.tick, self.batch, self.store_retry, from_start=from_start
        )


@dataclass(frozen=True, slots=True)
class ReaderSettings:
    #: The consumer group, and its one consumer name (one decider at a time, by lease, so a
    #: successor finds what its predecessor read and never acknowledged under that name).
    group: str
    consumer: str
    #: How often the clock is looked at, events read per batch, the wait after a failure.
    tick: float = 1.0
    batch: int = 100
    store_retry: float = 1.0
    #: A new group reads what the stream still holds (history), not only what comes next.
    from_start: bool = False


class LeasedReader:
    #: What the log lines call this reader ("escalator", "history").
    name = "reader"

    def __init__(self, store: Store, lease: Lease, reading: ReaderSettings) -> None:
        self.store = store
        self.lease = lease
        self.reading = reading

    @property
    def leader(self) -> bool:
        """Whether this process decides now (its gauge says the same: both are the lease)."""
        return self.lease.held

    # ----------------------------------------------------------------- what subclasses do

    async def load(self) -> None:
        """Reload what the store holds of this reader's state."""

    async def fold(self, event: Event) -> None:
        """Fold one event into the state (and the store)."""

    async def tick(self) -> None:
        """Do what the clock owes (called when caught up)."""

    # ----------------------------------------------------------------- the service

    async def run(self, stop: asyncio.Event) -> None:
        """Decide while holding the lease, until ``stop``."""
        await hold(self.lease, stop, self)

    async def take_over(self) -> None:
        """State is reloaded on every takeover: a predecessor may have decided meanwhile."""
        log.info(f"{self.name} lease taken", holder=self.lease.holder)
        await self.start()

    def step_down(self) -> None:
        log.info(f"{self.name} lease lost", holder=self.lease.holder)

    async def between_rounds(self, stop: asyncio.Event) -> None:
        """Decide until the lease is due for renewal (a follower only waits)."""
        if not self.leader:
            await sleep_unless(stop, self.lease.renew_every)
            return
        try:
            await self._decide(stop)
        except Exception as exc:
            await sleep_unless(stop, self._start_over(exc))

    def after_round(self, error: Exception | None) -> float | None:
        return None if error is None else self._start_over(error)

    async def stop_work(self) -> None:
        """Nothing runs beside the loop: :meth:`between_rounds` has returned."""

    def _start_over(self, error: Exception) -> float:
        """Let go of the lease (a bug must not end the work for good): say why; how long to
        wait before trying again."""
        self.lease.forget()
        if isinstance(error, StoreUnavailable):
            log.warning(f"store unreachable; the {self.name} waits", error=str(error))
        else:
            log.exception(f"the {self.name} failed; starting over")
        return self.reading.store_retry

    async def _decide(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        renew_at = loop.time() + self.lease.renew_every
        while not stop.is_set():
            count = await self.step(block_ms=int(self.reading.tick * 1000))
            if count < self.reading.batch:  # caught up: the clock may speak now
                await self.tick()
            if loop.time() >= renew_at:
                return

    async def start(self) -> None:
        """Load the state, and finish what a predecessor read and left unfinished."""
        await self.store.ensure_group(self.reading.group, from_start=self.reading.from_start)
        await self.load()
        pending = await self.store.pending_own(self.reading.group, self.reading.consumer, 10_000)
        await self.consume(pending)

    async def step(self, block_ms: int = 0) -> int:
        """Read and fold one batch of new events; returns how many there were."""
        group, consumer = self.reading.group, self.reading.consumer
        entries = await self.store.read_group(group, consumer, self.reading.batch, block_ms)
        await self.consume(entries)
        return len(entries)

    async def consume(self, entries: Sequence[StreamEntry]) -> None:
        for entry in entries:
            if entry.event is not None:
                await self.fold(entry.event)
            await self.store.ack(self.reading.group, entry.id)
