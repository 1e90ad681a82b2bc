"""The embedded store: the same contract as Redis, in this process's memory.

It is the default so tocsin runs with nothing installed. It keeps Redis's stream semantics
(consumer groups, pending entries, claims) so the dispatcher cannot tell the difference; it
forgets everything when the process exits, which is why production uses Redis.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from bot.history.model import (
    DAYS_KEPT,
    LATENCY_KEPT,
    LATENCY_SAMPLES_MAX,
    Cursor,
    DayDelta,
    DayRecord,
    EpisodeRecord,
    LatencySample,
)
from bot.models import ComponentState, Event, StateUpdate, Status, utcnow
from bot.store.base import (
    DEAD_LETTERS_KEPT,
    HISTORY_DAYS,
    POLL_REQUESTS_KEPT,
    RECORDS_READ,
    SENT_TTL,
    SIGNAL_PAIRS_READ,
    THREAD_TTL,
    SignalCounts,
    SignalTally,
    StreamEntry,
    decode_entry,
)
from bot.store.decode import read_thread


@dataclass
class _Pending:
    consumer: str
    delivered_at: float
    deliveries: int = 1


@dataclass
class _Group:
    last: int = 0  # sequence number of the last entry handed out
    pending: dict[int, _Pending] = field(default_factory=dict)


class MemoryStore:
    shared = False

    def __init__(self, *, stream_maxlen: int = 10_000) -> None:
        self.stream_maxlen = stream_maxlen
        self._states: dict[str, ComponentState] = {}
        self._history: dict[str, list[tuple[datetime, Status]]] = {}
        self._stream: deque[tuple[int, str]] = deque()
        self._seq = 0
        self._groups: dict[str, _Group] = {}
        self._values: dict[str, tuple[str, float | None]] = {}
        self._dead: deque[dict[str, Any]] = deque(maxlen=DEAD_LETTERS_KEPT)
        self._polls: deque[str] = deque(maxlen=POLL_REQUESTS_KEPT)
        self._tables: dict[str, dict[str, str]] = {}
        #: (provider, model, bucket) → (counts, expires at, monotonic).
        self._signals: dict[tuple[str, str, int], tuple[SignalTally, float]] = {}
        self._changed = asyncio.Condition()
        #: (issue 16) history that lasts: days, episodes, cursors, latency by provider.
        self._days: dict[str, dict[date, DayRecord]] = {}
        self._episodes: dict[str, dict[str, EpisodeRecord]] = {}
        self._cursors: dict[str, Cursor] = {}
        self._latency: dict[str, list[LatencySample]] = {}

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def ping(self) -> bool:
        return True

    # state and events -----------------------------------------------------------

    async def apply(self, updates: Sequence[StateUpdate]) -> list[str]:
        ids: list[str] = []
        horizon = utcnow() - timedelta(days=HISTORY_DAYS)
        for update in updates:
            state = update.state
            self._states[state.key] = state.model_copy(deep=True)
            if update.status_changed:
                changes = self._history.setdefault(state.key, [])
                changes.append((state.since, state.status))
                changes[:] = [c for c in changes if c[0] >= horizon]
            if update.event is not None:
                ids.append(self._append(update.event))
        if ids:
            async with self._changed:
                self._changed.notify_all()
        return ids

    async def append(self, event: Event) -> str:
        entry_id = self._append(event)
        async with self._changed:
            self._changed.notify_all()
        return entry_id

    def _append(self, event: Event) -> str:
        self._seq += 1
        self._stream.append((self._seq, event.to_json()))
        while len(self._stream) > self.stream_maxlen:
            self._stream.popleft()
        return _entry_id(self._seq)

    async def states(self) -> dict[str, ComponentState]:
        return {k: v.model_copy(deep=True) for k, v in self._states.items()}

    async def history(self, key: str, since: datetime) -> list[tuple[datetime, Status]]:
        return [c for c in self._history.get(key, []) if c[0] >= since]

    async def recent_events(self, count: int = 50) -> list[Event]:
        entries = [_decode(seq, raw) for seq, raw in list(self._stream)[-count:]][::-1]
        return [entry.event for entry in entries if entry.event is not None]

    # consumer groups ---------------------------------------------------------------

    async def ensure_group(self, group: str, *, from_start: bool = False) -> None:
        oldest = self._stream[0][0] - 1 if self._stream else self._seq
        self._groups.setdefault(group, _Group(last=oldest if from_start else self._seq))

    async def read_group(
        self, group: str, consumer: str, count: int, block_ms: int
    ) -> list[StreamEntry]:
        state = self._groups[group]
        if not self._newer(state) and block_ms > 0:
            async with self._changed:
                try:
                    await asyncio.wait_for(
                        self._changed.wait_for(lambda: self._newer(state)), block_ms / 1000
                    )
                except TimeoutError:
                    return []
        out: list[StreamEntry] = []
        now = time.monotonic()
        for seq, raw in self._stream:
            if seq <= state.last:
                continue
            if len(out) >= count:
                break
            state.last = seq
            state.pending[seq] = _Pending(consumer, now)
            out.append(_decode(seq, raw))
        return out

    def _newer(self, state: _Group) -> bool:
        return bool(self._stream) and self._stream[-1][0] > state.last

    async def pending_own(self, group: str, consumer: str, count: int) -> list[StreamEntry]:
        state = self._groups[group]
        seqs = sorted(s for s, p in state.pending.items() if p.consumer == consumer)[:count]
        return [self._redeliver(state, seq, consumer) for seq in seqs]

    async def claim_stale(
        self, group: str, consumer: str, min_idle_ms: int, count: int
    ) -> list[StreamEntry]:
        state = self._groups[group]
        cutoff = time.monotonic() - min_idle_ms / 1000
        seqs = sorted(
            s
            for s, p in state.pending.items()
            if p.delivered_at <= cutoff and p.consumer != consumer
        )[:count]
        return [self._redeliver(state, seq, consumer) for seq in seqs]

    async def pending_before(self, group: str, entry_id: str, count: int) -> list[StreamEntry]:
        state = self._groups.get(group)
        before = _seq_of(entry_id)
        seqs = sorted(s for s in (state.pending if state else ()) if s < before)[:count]
        stream = dict(self._stream) if seqs else {}
        return [_decode(seq, stream[seq]) for seq in seqs if seq in stream]

    def _redeliver(self, state: _Group, seq: int, consumer: str) -> StreamEntry:
        pending = state.pending[seq]
        pending.consumer, pending.delivered_at = consumer, time.monotonic()
        pending.deliveries += 1
        raw = next((r for s, r in self._stream if s == seq), None)
        return _decode(seq, raw, pending.deliveries)

    async def touch(self, group: str, consumer: str, entry_ids: Sequence[str]) -> None:
        state = self._groups[group]
        for entry_id in entry_ids:
            pending = state.pending.get(_seq_of(entry_id))
            if pending is not None:
                pending.consumer, pending.delivered_at = consumer, time.monotonic()

    async def ack(self, group: str, entry_id: str) -> None:
        self._groups[group].pending.pop(_seq_of(entry_id), None)

    # delivery bookkeeping -------------------------------------------------------------

    async def mark_sent(self, event_id: str, target: str, receipt: str = "1") -> None:
        await self.set_value(f"sent:{event_id}:{target}", receipt, SENT_TTL)

    async def sent(self, event_id: str, target: str) -> str | None:
        return await self.get_value(f"sent:{event_id}:{target}")

    async def get_thread(self, episode: str, target: str) -> dict[str, Any] | None:
        name = f"thread:{episode}:{target}"
        return read_thread(name, await self.get_value(name))

    async def set_thread(self, episode: str, target: str, ref: dict[str, Any]) -> None:
        await self.set_value(f"thread:{episode}:{target}", _json_dumps(ref), THREAD_TTL)

    async def dead_letter(self, record: dict[str, Any]) -> None:
        self._dead.appendleft(dict(record))

    async def dead_letters(self, count: int = 100) -> list[dict[str, Any]]:
        return list(self._dead)[:count]

    # values and leases ------------------------------------------------------------------

    async def get_value(self, name: str) -> str | None:
        item = self._values.get(name)
        if item is None:
            return None
        value, expires = item
        if expires is not None and expires <= time.monotonic():
            del self._values[name]
            return None
        return value

    async def set_value(self, name: str, value: str, ttl: float | None = None) -> None:
        now = time.monotonic()
        if len(self._values) % 1024 == 0:  # now and then, forget what has expired
            self._values = {k: v for k, v in self._values.items() if v[1] is None or v[1] > now}
        self._values[name] = (value, now + ttl if ttl else None)

    async def delete_value(self, name: str) -> None:
        self._values.pop(name, None)

    # history that lasts --------------------------------------------------------------

    async def write_history(
        self,
        provider: str,
        days: Mapping[date, DayDelta],
        cursor: Cursor,
        episode: EpisodeRecord | None,
    ) -> None:
        kept = self._days.setdefault(provider, {})
        for day, delta in days.items():
            record = kept.setdefault(day, DayRecord(day))
            for status, seconds in delta.seconds.items():
                record.seconds[status] = record.seconds.get(status, 0.0) + seconds
            record.seen |= delta.seen
        horizon = utcnow().date() - timedelta(days=DAYS_KEPT)
        for day in [d for d in kept if d < horizon]:
            del kept[day]
        self._cursors[provider] = cursor.model_copy()
        if episode is not None:
            self._episodes.setdefault(provider, {})[episode.id] = episode.model_copy(deep=True)

    async def history_cursors(self) -> dict[str, Cursor]:
        return {k: v.model_copy() for k, v in self._cursors.items()}

    async def day_records(self, provider: str, first: date, last: date) -> list[DayRecord]:
        kept = self._days.get(provider, {})
        return [
            DayRecord(d, dict(r.seconds), set(r.seen))
            for d, r in sorted(kept.items())
            if first <= d <= last
        ]

    async def episodes(self, provider: str, since: datetime) -> list[EpisodeRecord]:
        start = (since - timedelta(days=31)).date().replace(day=1)
        found = [
            e.model_copy(deep=True)
            for e in self._episodes.get(provider, {}).values()
            if e.started.date() >= start
        ]
        return sorted(found, key=lambda e: e.started)

    async def add_latency(self, samples: Sequence[LatencySample]) -> None:
        for sample in samples:
            self._latency.setdefault(sample.provider, []).append(sample)
        for provider in {s.provider for s in samples}:
            kept = sorted(self._latency[provider], key=lambda s: s.at)
            horizon = kept[-1].at - LATENCY_KEPT  # by the newest sample, not the clock
            self._latency[provider] = [s for s in kept if s.at >= horizon][-LATENCY_SAMPLES_MAX:]

    async def latency(self, provider: str, since: datetime) -> list[LatencySample]:
        return [s for s in self._latency.get(provider, []) if s.at >= since]

    async def claim_value(self, name: str, value: str, ttl: float) -> bool:
        if await self.get_value(name) is not None:
            return False
        await self.set_value(name, value, ttl)
        return True

    async def put_record(self, table: str, key: str, value: str, *, only_new: bool = False) -> bool:
        rows = self._tables.setdefault(table, {})
        if only_new and key in rows:
            return False
        rows[key] = value
        return True

    async def record(self, table: str, key: str) -> str | None:
        return self._tables.get(table, {}).get(key)

    async def records(self, table: str) -> dict[str, str]:
        rows = self._tables.get(table, {})
        return dict(list(rows.items())[:RECORDS_READ])

    async def delete_record(self, table: str, key: str, *, only_if: str | None = None) -> bool:
        rows = self._tables.get(table, {})
        if key not in rows or (only_if is not None and rows[key] != only_if):
            return False
        del rows[key]
        return True

    async def acquire_lease(self, name: str, holder: str, ttl: float) -> bool:
        current = await self.get_value(f"lease:{name}")
        if current not in (None, holder):
            return False
        await self.set_value(f"lease:{name}", holder, ttl)
        return True

    async def release_lease(self, name: str, holder: str) -> None:
        if await self.get_value(f"lease:{name}") == holder:
            await self.delete_value(f"lease:{name}")

    async def lease_holder(self, name: str) -> str | None:
        return await self.get_value(f"lease:{name}")

    # presence records (one process here, but the same contract) ---------------------------

    async def presence(self, instance: str) -> str | None:
        return await self.get_value(f"presence:{instance}")

    async def claim_presence(
        self, instance: str, record: str, ttl: float, *, replacing: str | None
    ) -> bool:
        if await self.presence(instance) != replacing:
            return False
        await self.set_value(f"presence:{instance}", record, ttl)
        return True

    async def release_presence(self, instance: str, record: str) -> None:
        if await self.presence(instance) == record:
            await self.delete_value(f"presence:{instance}")

    # poll requests ------------------------------------------------------------------------

    async def request_poll(self, provider: str) -> None:
        self._polls.append(provider)

    async def take_poll_requests(self) -> list[str]:
        taken = list(dict.fromkeys(self._polls))
        self._polls.clear()
        return taken

    # apps' reported calls -------------------------------------------------------------------

    async def add_signals(self, counts: SignalCounts, ttl: float) -> None:
        now = time.monotonic()
        self._signals = {k: v for k, v in self._signals.items() if v[1] > now}
        for key, tally in counts.items():
            kept = self._signals.get(key)
            total = kept[0] if kept else SignalTally()
            total.add(tally)
            self._signals[key] = (total, now + ttl)

    async def signal_sums(self, buckets: Sequence[int]) -> dict[tuple[str, str], SignalTally]:
        now, wanted = time.monotonic(), set(buckets)
        out: dict[tuple[str, str], SignalTally] = {}
        read: dict[int, int] = {}
        for (provider, model, bucket), (tally, expires) in list(self._signals.items()):
            if bucket not in wanted or expires <= now:
                continue
            read[bucket] = read.get(bucket, 0) + 1
            if read[bucket] > SIGNAL_PAIRS_READ:
                continue
            out.setdefault((provider, model), SignalTally()).add(tally)
        return out


def _entry_id(seq: int) -> str:
    return f"{seq}-0"


def _seq_of(entry_id: str) -> int:
    return int(entry_id.split("-", 1)[0])


def _decode(seq: int, raw: str | None, deliveries: int = 1) -> StreamEntry:
    return decode_entry(_entry_id(seq), raw, deliveries)


def _json_dumps(value: dict[str, Any]) -> str:
    return json.dumps(value)
