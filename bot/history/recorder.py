"""Folding the event stream into history: days, episodes, a cursor per provider.

A provider's status changes only by events (``provider_status`` after each), so the stream
is the whole story: each relevant event closes the span since the provider's last one (its
seconds added to each UTC day it covers), marks the status seen on its day, and updates its
episode (worst state, when probes first suspected it, when the page first confirmed it, the
incidents and their updates). :func:`fold` is pure; :class:`HistoryRecorder` runs it as one
decider by lease (:class:`bot.leased_reader.LeasedReader`), so two replicas never count a
span twice. A replayed event (a takeover re-reading what was not acknowledged) is at or before
the cursor and is skipped.
"""

from __future__ import annotations

import statistics
import time as clock
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from bot import metrics
from bot.history.model import (
    EPISODE_INCIDENTS_MAX,
    EPISODE_UPDATES_MAX,
    LATENCY_EVERY,
    TEXT_MAX,
    TITLE_MAX,
    Cursor,
    DayDelta,
    EpisodeIncident,
    EpisodeRecord,
    LatencySample,
    TimelineUpdate,
)
from bot.lease import Lease, unique_holder
from bot.leased_reader import LeasedReader, LeaseSettings
from bot.models import ComponentState, Event, Observation, Status, provider_status_of
from bot.outside import one_line, safe_url
from bot.store import Store

GROUP = LEASE = "history"
#: Events that say where a provider stands (``provider_status`` after them).
STATUS_EVENTS = frozenset({"state_changed", "incident_update", "flapping"})
#: A span longer than this is not one tocsin lived through (a clock jump, a foreign event).
SPAN_MAX = timedelta(days=400)


@dataclass(frozen=True, slots=True)
class Fold:
    """What one event changes: the provider's new cursor, its days, its episode."""

    cursor: Cursor
    days: dict[date, DayDelta]
    episode: EpisodeRecord | None


def fold(cursor: Cursor | None, episode: EpisodeRecord | None, event: Event) -> Fold | None:
    """The history an event makes (``None``: it says nothing of the provider's status, or
    it was folded already)."""
    status = event.provider_status
    if event.type not in STATUS_EVENTS or event.audience != "all" or status is None:
        return None
    if cursor is not None and (event.id == cursor.event_id or event.at < cursor.since):
        return None
    days: dict[date, DayDelta] = {}
    if cursor is not None and event.at - cursor.since <= SPAN_MAX:
        for day, seconds in split_by_day(cursor.since, event.at):
            days.setdefault(day, DayDelta()).add(cursor.status, seconds)
    days.setdefault(event.at.astimezone(UTC).date(), DayDelta()).seen.add(status)
    return Fold(
        Cursor(status=status, since=event.at, event_id=event.id[:100]),
        days,
        _episode(episode, event, status),
    )


def split_by_day(start: datetime, end: datetime) -> list[tuple[date, float]]:
    """``[start, end)`` as seconds per UTC day."""
    found: list[tuple[date, float]] = []
    cursor = start.astimezone(UTC)
    end = end.astimezone(UTC)
    while cursor < end:
        midnight = datetime.combine(cursor.date() + timedelta(days=1), time(), UTC)
        upto = min(midnight, end)
        found.append((cursor.date(), (upto - cursor).total_seconds()))
        cursor = upto
    return found


def _episode(record: EpisodeRecord | None, event: Event, status: Status) -> EpisodeRecord | None:
    """The episode after ``event``: opened by its first event, its worst state, when our
    own evidence first suspected it and the page first confirmed it, its incidents and their
    updates (each bounded), and its end when the provider is fully back."""
    if event.episode is None:
        return None
    if record is None or record.id != event.episode:
        record = EpisodeRecord(
            id=event.episode[:200],
            provider=event.provider[:100],
            started=event.episode_started or event.at,
            worst=status if status.is_outage or status is Status.MAINTENANCE else Status.DEGRADED,
        )
    else:
        record = record.model_copy(deep=True)
    if status.is_outage and (status.rank > record.worst.rank or not record.worst.is_outage):
        record.worst = status
    elif status is Status.MAINTENANCE and not record.worst.is_outage:
        record.worst = status  # planned work, unless it also went down
    ours = bool(event.source) and str(event.source).endswith((":probe", ":traffic"))
    if status.is_outage and record.suspected_at is None and ours and not event.confirmed:
        record.suspected_at, record.suspected_by = event.at, one_line(event.source, 100)
    if event.confirmed and record.confirmed_at is None and status.is_outage:
        record.confirmed_at = event.at
    _incident(record, event)
    if event.episode_closed:
        record.ended = event.at
    return record


def _incident(record: EpisodeRecord, event: Event) -> None:
    incident = event.incident
    if incident is None:
        return
    known = {i.id for i in record.incidents}
    if incident.id[:200] not in known:
        record.incidents.append(
            EpisodeIncident(
                id=incident.id[:200],
                title=one_line(incident.title, TITLE_MAX),
                url=safe_url(incident.url),
            )
        )
        record.incidents = record.incidents[-EPISODE_INCIDENTS_MAX:]
    if incident.update and incident.new_update:
        record.updates.append(
            TimelineUpdate(
                at=event.at,
                status=one_line(incident.status, 80),
                text=one_line(incident.update, TEXT_MAX),
            )
        )
        record.updates = record.updates[-EPISODE_UPDATES_MAX:]


@dataclass(frozen=True, slots=True)
class RecorderSettings(LeaseSettings):
    batch: int = 200
    #: How often providers without history are looked for in the states...
    first_look: float = 5.0
    #: ...until every one of these has a cursor (``None``: always look).
    providers: frozenset[str] | None = None


class HistoryRecorder(LeasedReader):
    """Keeps the history: one replica at a time, resumable, never counting a span twice."""

    name = "history"

    def __init__(self, store: Store, settings: RecorderSettings) -> None:
        holder = settings.holder or unique_holder(settings.instance)
        lease = Lease(store, LEASE, holder, settings.lease, gauge=metrics.HISTORY_LEADER)
        super().__init__(store, lease, settings.reading(GROUP, from_start=True))
        self.settings = settings
        self.cursors: dict[str, Cursor] = {}
        self.open: dict[str, EpisodeRecord] = {}
        self._looked: float | None = None

    async def load(self) -> None:
        self.cursors = await self.store.history_cursors()
        self.open = {}
        for provider, cursor in self.cursors.items():
            for record in await self.store.episodes(provider, cursor.since):
                if record.ended is None:
                    self.open[provider] = record

    async def tick(self) -> None:
        """A provider that is known and has never changed has no event to start its history
        with: its first known status starts it, from now (looked at every ``first_look``)."""
        now = clock.monotonic()
        if self._looked is not None and now - self._looked < self.settings.first_look:
            return
        self._looked = now
        watched = self.settings.providers
        if watched is not None and watched <= self.cursors.keys():
            return  # every watched provider has its history: nothing to look for
        by_provider: dict[str, list[ComponentState]] = {}
        for state in (await self.store.states()).values():
            if state.provider not in self.cursors and state.status is not Status.UNKNOWN:
                by_provider.setdefault(state.provider, []).append(state)
        for provider, states in by_provider.items():
            status = provider_status_of([s.status for s in states], states)
            since = max(s.checked_at or s.since for s in states)
            cursor = Cursor(status=status, since=since, event_id="first-known")
            await self.store.write_history(provider, {}, cursor, None)
            self.cursors[provider] = cursor

    async def fold(self, event: Event) -> None:
        provider = event.provider
        made = fold(self.cursors.get(provider), self.open.get(provider), event)
        if made is None:
            return
        await self.store.write_history(provider, made.days, made.cursor, made.episode)
        self.cursors[provider] = made.cursor
        if made.episode is None or made.episode.ended is not None:
            self.open.pop(provider, None)
        else:
            self.open[provider] = made.episode


class LatencySampler:
    """The probes' latencies as the sparkline's points: per provider, the median of its
    successful calls in each 5-minute bucket, one sample when the bucket closes (written
    after the watcher's round that closed it)."""

    def __init__(self, store: Store, *, every: float = LATENCY_EVERY) -> None:
        self.store = store
        self.every = every
        #: provider → (bucket number, latencies seen in it)
        self._open: dict[str, tuple[int, list[float]]] = {}
        self._waiting: list[LatencySample] = []

    def observe(self, observation: Observation) -> None:
        if observation.latency_ms is None or observation.error is not None:
            return
        bucket = int(observation.at.timestamp() // self.every)
        current = self._open.get(observation.provider)
        if current is not None and current[0] != bucket:
            self._close(observation.provider, *current)
            current = None
        if current is None:
            current = (bucket, [])
            self._open[observation.provider] = current
        if len(current[1]) < 10_000:
            current[1].append(observation.latency_ms)

    def _close(self, provider: str, bucket: int, values: list[float]) -> None:
        middle = datetime.fromtimestamp((bucket + 0.5) * self.every, UTC)
        self._waiting.append(LatencySample(provider, "", middle, statistics.median(values)))

    async def flush(self) -> None:
        """Write the closed buckets (kept for the next flush if the store is away)."""
        if not self._waiting:
            return
        waiting, self._waiting = self._waiting, []
        try:
            await self.store.add_latency(waiting)
        except Exception:
            self._waiting = (waiting + self._waiting)[-1000:]
            raise
