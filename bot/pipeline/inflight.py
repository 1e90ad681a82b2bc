"""Stream entries in flight: each is acknowledged when its last target is done with it."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from bot.models import Event
from bot.notifier import Target
from bot.store import StreamEntry

#: How many acknowledged entry ids are remembered (see :mod:`bot.pipeline.ordering`).
FINISHED_KEPT = 4096


@dataclass
class Flight:
    """One stream entry on its way to every target."""

    entry: StreamEntry
    remaining: int
    redelivery: bool
    started: float = field(default_factory=time.monotonic)
    #: The targets done with it (see :mod:`bot.pipeline.ordering`).
    done: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class Job:
    """One target's share of a flight."""

    flight: Flight
    event: Event
    #: The target as it was when the entry was read (its route may have grown a chat
    #: subscription since the worker started); ``None``: the worker's own.
    target: Target | None = None


class InFlight:
    """The entries taken from the stream and not yet acknowledged, bounded by ``limit``, and
    the ones acknowledged moments ago (a concurrent XPENDING may still list those)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._flights: dict[str, Flight] = {}
        self._finished: dict[str, None] = {}  # recently acknowledged entries, oldest first
        self._room = asyncio.Event()
        self._room.set()

    def __len__(self) -> int:
        return len(self._flights)

    def __contains__(self, entry_id: object) -> bool:
        return entry_id in self._flights

    def ids(self) -> list[str]:
        return list(self._flights)

    @property
    def room(self) -> int:
        return self.limit - len(self._flights)

    def take(self, entry: StreamEntry, targets: int, *, redelivery: bool) -> Flight:
        flight = Flight(entry, remaining=targets, redelivery=redelivery)
        self._flights[entry.id] = flight
        return flight

    def target_done(self, flight: Flight) -> bool:
        """One more target is done with ``flight``: whether it was the last."""
        flight.remaining -= 1
        return flight.remaining <= 0

    def finished(self, flight: Flight) -> None:
        """``flight``'s entry was acknowledged."""
        self._flights.pop(flight.entry.id, None)
        self._finished[flight.entry.id] = None
        while len(self._finished) > FINISHED_KEPT:
            self._finished.pop(next(iter(self._finished)))
        if len(self._flights) < self.limit:
            self._room.set()

    def done_here(self, entry_id: str, target_key: str) -> bool:
        """Is ``target_key`` done with this entry (or was it acknowledged moments ago)?"""
        if entry_id in self._finished:
            return True
        ours = self._flights.get(entry_id)
        return ours is not None and target_key in ours.done

    async def wait_for_room(self, within: float) -> bool:
        """Full: wait up to ``within`` seconds for an entry to finish; whether there is room."""
        if len(self._flights) < self.limit:
            return True
        self._room.clear()
        try:
            await asyncio.wait_for(self._room.wait(), within)
        except TimeoutError:
            return False
        return True
