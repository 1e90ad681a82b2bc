"""State updates on their way to the store, kept in order while it is unreachable.

The watcher goes on checking through a store outage: its updates wait here, bounded, and are
written in order once the store is back. When the buffer is full, refreshes of a state are
folded first (a later one overwrites them anyway); events are dropped, oldest first, only if
events alone overflow it.

Most rounds change nothing but when a state was checked (and a probe's latency): with
``refresh`` (off by default: callers such as tests count rounds by ``checked_at``; the
watcher may pass :data:`REFRESH`), such a refresh is written at most every that many seconds
per state (measured in the states'
own ``checked_at``), so ``checked_at`` in the store (``/status``) is at most that old while a
source is being checked. Anything else that differs, an event or a status change is written
at once, as before.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from bot import metrics
from bot.logs import get_logger
from bot.models import ComponentState, StateUpdate
from bot.store import Store, StoreUnavailable

log = get_logger("tocsin.watcher")

#: Seconds (of ``checked_at``) a state refreshed by nothing but its check is not written again.
REFRESH = 30.0
#: What a mere refresh changes: ignored when telling whether a state is unchanged.
_VOLATILE = frozenset({"checked_at", "latency_ms", "latency_p50_ms", "latency_p95_ms"})


class UpdateBuffer:
    """Updates not yet written; :attr:`store_ok` says whether the store took the last ones."""

    def __init__(self, store: Store, limit: int, *, refresh: float = 0.0) -> None:
        self.store = store
        self.limit = limit
        self.refresh = refresh
        self.dropped = 0
        #: Refreshes not written (the state was written unchanged less than ``refresh`` ago).
        self.skipped = 0
        #: Per state key: what the last update queued held, and its ``checked_at``.
        self._queued: dict[str, tuple[tuple[Any, ...], datetime | None]] = {}
        #: Whether the store answered when last asked (by :meth:`flush`, or the lease loop).
        self.store_ok = True
        self._updates: deque[StateUpdate] = deque()
        self._flush_lock = asyncio.Lock()

    def __len__(self) -> int:
        return len(self._updates)

    def add(self, updates: Iterable[StateUpdate]) -> None:
        """Queue ``updates`` behind the others; past the limit, make room (see module)."""
        self._updates.extend(u for u in updates if self._news(u))
        if len(self._updates) > self.limit:
            self._compact()
        while len(self._updates) > self.limit:
            self._updates.popleft()
            self.dropped += 1
            metrics.BUFFER_DROPPED.inc()
            if self.dropped == 1:
                log.error("the buffer is full of events: the oldest are dropped", limit=self.limit)
        metrics.BUFFERED.set(len(self._updates))

    def _news(self, update: StateUpdate) -> bool:
        """Whether ``update`` is to be written: all are, but a mere refresh of a state queued
        unchanged less than ``refresh`` seconds (of ``checked_at``) before."""
        state = update.state
        mark = _mark(state)
        at = state.checked_at
        if self.refresh > 0 and _plain(update) and at is not None:
            before = self._queued.get(state.key)
            last = before[1] if before is not None and before[0] == mark else None
            if last is not None and (at - last).total_seconds() < self.refresh:
                self.skipped += 1
                return False
        self._queued[state.key] = (mark, at)
        return True

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


def _mark(state: ComponentState) -> tuple[Any, ...]:
    """A state without what a mere refresh changes: equal marks, nothing worth writing."""
    fields: dict[str, Any] = state.__dict__
    return tuple(v for k, v in fields.items() if k not in _VOLATILE)


def _plain(update: StateUpdate) -> bool:
    """A state refresh (checked_at, latency): no event, no status change for the history."""
    return update.event is None and not update.status_changed
