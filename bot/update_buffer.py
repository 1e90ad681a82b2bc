"""State updates on their way to the store, kept in order while it is unreachable.

The watcher goes on checking through a store outage: its updates wait here, bounded, and are
written in order once the store is back. When the buffer is full, refreshes of a state are
folded first (a later one overwrites them anyway); events are dropped, oldest first, only if
events alone overflow it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable

from bot import metrics
from bot.logs import get_logger
from bot.models import StateUpdate
from bot.store import Store, StoreUnavailable

log = get_logger("tocsin.watcher")


class UpdateBuffer:
    """Updates not yet written; :attr:`store_ok` says whether the store took the last ones."""

    def __init__(self, store: Store, limit: int) -> None:
        self.store = store
        self.limit = limit
        self.dropped = 0
        #: Whether the store answered when last asked (by :meth:`flush`, or the lease loop).
        self.store_ok = True
        self._updates: deque[StateUpdate] = deque()
        self._flush_lock = asyncio.Lock()

    def __len__(self) -> int:
        return len(self._updates)

    def add(self, updates: Iterable[StateUpdate]) -> None:
        """Queue ``updates`` behind the others; past the limit, make room (see module)."""
        self._updates.extend(updates)
        if len(self._updates) > self.limit:
            self._compact()
        while len(self._updates) > self.limit:
            self._updates.popleft()
            self.dropped += 1
            metrics.BUFFER_DROPPED.inc()
            if self.dropped == 1:
                log.error("the buffer is full of events: the oldest are dropped", limit=self.limit)
        metrics.BUFFERED.set(len(self._updates))

    def _compact(self) -> None:
        """Make room without losing anything that matters: an update that carries no event
        and no status change only refreshes a state a later update overwrites anyway, so only
        the newest of those per component is kept. Events are dropped only if events alone
        overflow the buffer."""
        newest = {u.state.key: i for i, u in enumerate(self._updates) if _plain(u)}
        kept = [u for i, u in enumerate(self._updates) if not _plain(u) or newest[u.state.key] == i]
        self._updates.clear()
        self._updates.extend(kept)

    async def flush(self) -> bool:
        """Write buffered updates in order; keep them if the store is unreachable."""
        async with self._flush_lock:
            if not self._updates:
                return True
            batch = list(self._updates)
            try:
                await self.store.apply(batch)
            except StoreUnavailable as exc:
                if self.store_ok:
                    log.warning("store unreachable; buffering updates", error=str(exc))
                self.store_ok = False
                metrics.STORE_UP.set(0)
                return False
            for _ in batch:
                self._updates.popleft()
            for update in batch:
                if update.event is not None:
                    metrics.EVENTS.labels(update.event.type).inc()
            if not self.store_ok:
                log.info("store reachable again; buffered updates written", updates=len(batch))
            self.store_ok = True
            metrics.STORE_UP.set(1)
            metrics.BUFFERED.set(len(self._updates))
            return True


def _plain(update: StateUpdate) -> bool:
    """A state refresh (checked_at, latency): no event, no status change for the history."""
    return update.event is None and not update.status_changed
