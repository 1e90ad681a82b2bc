"""The ``Store`` protocol: what the watcher, dispatcher and commands need from storage.

Two implementations speak it: :mod:`bot.store.redis` for production (shared by replicas, state
survives restarts) and :mod:`bot.store.memory` for the embedded default (one process, no
Redis). One contract test suite runs against both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from bot.models import ComponentState, Event, StateUpdate, Status
from bot.outside import Unreadable
from bot.store.decode import decode_event

#: How long idempotency marks and thread references are kept.
SENT_TTL = 7 * 24 * 3600
THREAD_TTL = 30 * 24 * 3600
HISTORY_DAYS = 30
DEAD_LETTERS_KEPT = 1000
#: Pending poll requests kept at most (a flood of pushes with no watcher running stays small).
POLL_REQUESTS_KEPT = 1000


class StoreUnavailable(Exception):
    """The store cannot be reached right now (Redis down or restarting); retry later."""


@dataclass(frozen=True, slots=True)
class StreamEntry:
    """One entry read from the event stream; ``event`` is ``None`` if it did not parse."""

    id: str
    event: Event | None
    error: str | None = None
    deliveries: int = 1


class Store(Protocol):
    #: Whether other processes share this store (then leases and consumer names matter).
    shared: bool

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def ping(self) -> bool: ...

    # state and events ---------------------------------------------------------
    async def apply(self, updates: Sequence[StateUpdate]) -> list[str]:
        """Write states, history and events atomically; return the new stream ids."""
        ...

    async def append(self, event: Event) -> str:
        """Append an event that changes no state (escalations); return its stream id."""
        ...

    async def states(self) -> dict[str, ComponentState]: ...
    async def history(self, key: str, since: datetime) -> list[tuple[datetime, Status]]: ...
    async def recent_events(self, count: int = 50) -> list[Event]: ...

    # the notifiers' consumer group ----------------------------------------------
    async def ensure_group(self, group: str) -> None: ...
    async def read_group(
        self, group: str, consumer: str, count: int, block_ms: int
    ) -> list[StreamEntry]: ...
    async def pending_own(self, group: str, consumer: str, count: int) -> list[StreamEntry]:
        """Entries delivered to this consumer and never acknowledged (after a crash)."""
        ...

    async def claim_stale(
        self, group: str, consumer: str, min_idle_ms: int, count: int
    ) -> list[StreamEntry]:
        """Take over entries another (dead) consumer left pending for ``min_idle_ms``."""
        ...

    async def pending_before(self, group: str, entry_id: str, count: int) -> list[StreamEntry]:
        """Entries older than ``entry_id`` that some consumer (any) took and has not
        acknowledged yet, oldest first."""
        ...

    async def touch(self, group: str, consumer: str, entry_ids: Sequence[str]) -> None:
        """Still working on these: reset their idle time so nobody claims them."""
        ...

    async def ack(self, group: str, entry_id: str) -> None: ...

    # delivery bookkeeping ---------------------------------------------------------
    async def mark_sent(self, event_id: str, target: str, receipt: str = "1") -> None: ...
    async def sent(self, event_id: str, target: str) -> str | None: ...
    async def get_thread(self, episode: str, target: str) -> dict[str, Any] | None: ...
    async def set_thread(self, episode: str, target: str, ref: dict[str, Any]) -> None: ...
    async def dead_letter(self, record: dict[str, Any]) -> None: ...
    async def dead_letters(self, count: int = 100) -> list[dict[str, Any]]: ...

    # small named values -----------------------------------------------------------
    async def get_value(self, name: str) -> str | None: ...
    async def set_value(self, name: str, value: str, ttl: float | None = None) -> None: ...
    async def delete_value(self, name: str) -> None: ...

    # leases ---------------------------------------------------------------------
    async def acquire_lease(self, name: str, holder: str, ttl: float) -> bool:
        """Take or renew the lease; ``False`` if someone else holds it."""
        ...

    async def release_lease(self, name: str, holder: str) -> None: ...
    async def lease_holder(self, name: str) -> str | None: ...

    # presence records (one live process per instance name) --------------------------
    async def presence(self, instance: str) -> str | None:
        """The presence record of this instance name (its live process's token and beat)."""
        ...

    async def claim_presence(
        self, instance: str, record: str, ttl: float, *, replacing: str | None
    ) -> bool:
        """Set the record to ``record`` (expiring after ``ttl``) if it holds ``replacing`` now
        (``None``: if there is none). Compare-and-set: of two processes, one wins."""
        ...

    async def release_presence(self, instance: str, record: str) -> None:
        """Delete the record if it still is ``record`` (a clean stop)."""
        ...

    # poll requests (status page pushes) ----------------------------------------------
    async def request_poll(self, provider: str) -> None:
        """Ask the leading watcher, in whichever replica, to read this provider's page now."""
        ...

    async def take_poll_requests(self) -> list[str]:
        """Take (and clear) every pending request: provider ids, each once, oldest first."""
        ...


def decode_entry(entry_id: str, raw: str | bytes | None, deliveries: int = 1) -> StreamEntry:
    """Parse one stream entry's JSON, keeping a poison entry (not JSON, too big or deep, not
    an event, an unknown schema version) as an error instead of raising: the dispatcher
    dead-letters it, the escalator skips it."""
    if raw is None:
        return StreamEntry(entry_id, None, "entry has no event field (trimmed or foreign)")
    try:
        return StreamEntry(entry_id, decode_event(raw), None, deliveries)
    except Unreadable as exc:
        return StreamEntry(entry_id, None, f"unreadable event: {exc}", deliveries)
