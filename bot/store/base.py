"""The ``Store`` protocol: what the watcher, dispatcher and commands need from storage.

Two implementations speak it: :mod:`bot.store.redis` for production (shared by replicas, state
survives restarts) and :mod:`bot.store.memory` for the embedded default (one process, no
Redis). One contract test suite runs against both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol

from bot.history.model import Cursor, DayDelta, DayRecord, EpisodeRecord, LatencySample
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


#: (issue 15) At most this many records are read back from one table (silences,
#: acknowledgements, subscriptions): a table someone filled beyond it is read in part.
RECORDS_READ = 10_000
#: A record's key and value at most (what a table holds is small JSON).
RECORD_KEY_MAX = 512
RECORD_VALUE_MAX = 64 * 1024


#: Apps' reported calls are counted in buckets of this many seconds (bucket = epoch // it).
SIGNAL_BUCKET = 10
#: At most this many (provider, model) pairs are read back per bucket, and this many error
#: kinds and apps per pair and bucket are kept (the rest are counted as ``other``).
SIGNAL_PAIRS_READ = 2000
SIGNAL_LABELS_KEPT = 20
#: What a counter may hold back (a foreign or corrupt value beyond it is dropped).
SIGNAL_COUNT_MAX = 10**12


@dataclass(slots=True)
class SignalTally:
    """Counts of one (provider, model)'s reported calls over one bucket (or a window's sum):
    what ``sig:{provider}/{model}:{bucket}`` holds (README-free, see bot/signals.py)."""

    calls: int = 0
    failures: int = 0
    rate_limited: int = 0
    latency_ms: int = 0  # the sum over the calls that said how long they took
    latency_n: int = 0
    #: Failures by kind ("529 overloaded_error", "timeout").
    errors: dict[str, int] = field(default_factory=dict)
    #: Calls and failures by app.
    app_calls: dict[str, int] = field(default_factory=dict)
    app_failures: dict[str, int] = field(default_factory=dict)

    def add(self, other: SignalTally) -> None:
        self.calls += other.calls
        self.failures += other.failures
        self.rate_limited += other.rate_limited
        self.latency_ms += other.latency_ms
        self.latency_n += other.latency_n
        for mine, theirs in (
            (self.errors, other.errors),
            (self.app_calls, other.app_calls),
            (self.app_failures, other.app_failures),
        ):
            for name, count in theirs.items():
                mine[name] = mine.get(name, 0) + count

    def fields(self) -> dict[str, int]:
        """As hash fields (what HINCRBY adds)."""
        out = {
            "calls": self.calls,
            "failures": self.failures,
            "rate_limited": self.rate_limited,
            "latency_ms": self.latency_ms,
            "latency_n": self.latency_n,
        }
        out.update({f"err:{k}": v for k, v in self.errors.items()})
        out.update({f"app:{k}:calls": v for k, v in self.app_calls.items()})
        out.update({f"app:{k}:failures": v for k, v in self.app_failures.items()})
        return {k: v for k, v in out.items() if v}

    @classmethod
    def from_fields(cls, raw: Mapping[str, object]) -> SignalTally:
        """Decoded defensively: a field that is not a known name with a bounded
        non-negative integer is ignored."""
        tally = cls()
        for name, value in raw.items():
            count = _count(value)
            if count is None or len(name) > 200:
                continue
            if name in ("calls", "failures", "rate_limited", "latency_ms", "latency_n"):
                setattr(tally, name, count)
            elif name.startswith("err:") and len(tally.errors) < SIGNAL_LABELS_KEPT:
                tally.errors[name[4:]] = count
            elif name.startswith("app:") and name.endswith(":calls"):
                tally.app_calls[name[4:-6]] = count
            elif name.startswith("app:") and name.endswith(":failures"):
                tally.app_failures[name[4:-9]] = count
        return tally


def _count(value: object) -> int | None:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 13:
        number = int(value)
    else:
        return None
    return number if 0 <= number <= SIGNAL_COUNT_MAX else None


#: (provider, model, bucket) → what a batch adds there.
SignalCounts = Mapping[tuple[str, str, int], SignalTally]


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
    async def ensure_group(self, group: str, *, from_start: bool = False) -> None:
        """Create the consumer group if it is not there: reading from new entries on, or
        (``from_start``) from the oldest the stream still holds (history wants those)."""
        ...

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
    async def claim_value(self, name: str, value: str, ttl: float) -> bool:
        """Set ``name`` to ``value`` (expiring after ``ttl``) unless it is set: of two
        processes, one wins (a reminder's "sent" mark)."""
        ...

    # records: small tables of JSON values (silences, acks, subscriptions) ---------------
    async def put_record(self, table: str, key: str, value: str, *, only_new: bool = False) -> bool:
        """Write one record; with ``only_new``, only if the key is absent (then ``False``
        says someone else's record is there: a double click changes state once)."""
        ...

    async def record(self, table: str, key: str) -> str | None:
        """One record of a table, or ``None`` (an oversized one reads as none)."""
        ...

    async def records(self, table: str) -> dict[str, str]:
        """Every record of a table (at most :data:`RECORDS_READ`; oversized ones dropped)."""
        ...

    async def delete_record(self, table: str, key: str, *, only_if: str | None = None) -> bool:
        """Delete one record (with ``only_if``: only while it still holds that value);
        ``True`` for the one caller that deleted it."""
        ...

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

    # apps' reported calls (signals) ----------------------------------------------------
    async def add_signals(self, counts: SignalCounts, ttl: float) -> None:
        """Add a batch's counts to their buckets (kept ``ttl`` seconds), all at once."""
        ...

    async def signal_sums(self, buckets: Sequence[int]) -> dict[tuple[str, str], SignalTally]:
        """Every (provider, model) counted in these buckets, with its sums over them."""
        ...

    # history that lasts (issue 16, bot/history) ------------------------------------------
    async def write_history(
        self,
        provider: str,
        days: Mapping[date, DayDelta],
        cursor: Cursor,
        episode: EpisodeRecord | None,
    ) -> None:
        """Add one fold's seconds to the provider's days, move its cursor and write its
        episode, all at once (kept :data:`bot.history.model.DAYS_KEPT` days)."""
        ...

    async def history_cursors(self) -> dict[str, Cursor]:
        """Every provider's cursor (readable ones)."""
        ...

    async def day_records(self, provider: str, first: date, last: date) -> list[DayRecord]:
        """The provider's stored days in ``[first, last]``, oldest first (days without a
        record are not listed)."""
        ...

    async def episodes(self, provider: str, since: datetime) -> list[EpisodeRecord]:
        """The provider's episodes that started in the month before ``since`` or later,
        oldest first (the caller filters by end)."""
        ...

    async def add_latency(self, samples: Sequence[LatencySample]) -> None:
        """Keep latency samples (:data:`bot.history.model.LATENCY_KEPT`)."""
        ...

    async def latency(self, provider: str, since: datetime) -> list[LatencySample]:
        """The provider's latency samples since ``since``, oldest first."""
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
