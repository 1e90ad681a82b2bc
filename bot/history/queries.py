"""What the pages, the read API and ``tocsin report`` ask of history.

A day's figures are the stored seconds of its closed spans plus, for the provider's current
status, the open span from its cursor to now (so today, and a quiet week, are counted without
a write). Uptime is time up (operational or in maintenance) over time measured (``unknown`` is
not measured), as ``/status`` has always counted it. Everything here is computed from the
store; nothing is cached between requests.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from bot.history.model import Cursor, DayRecord, EpisodeRecord, LatencySample
from bot.history.recorder import split_by_day
from bot.models import ComponentState, Status, utcnow
from bot.queries import ProviderRow, provider_row
from bot.store import Store
from config.schema import ProviderConfig, TocsinConfig

#: What the overview shows: 90 days of bars, 30-day uptime, 24 h of latency.
BAR_DAYS = 90
UPTIME_DAYS = 30
LATENCY_WINDOW = timedelta(hours=24)
#: The sparkline's resolution: one point per this many minutes (the median of the samples).
LATENCY_BUCKET = timedelta(minutes=10)
DOWN = (Status.PARTIAL_OUTAGE, Status.MAJOR_OUTAGE)
UP = (Status.OPERATIONAL, Status.MAINTENANCE)
#: How bad a day looks, worst first (unknown only when nothing else was measured).
SHOWN_ORDER = (
    Status.MAJOR_OUTAGE,
    Status.PARTIAL_OUTAGE,
    Status.DEGRADED,
    Status.MAINTENANCE,
    Status.OPERATIONAL,
    Status.UNKNOWN,
)


@dataclass(frozen=True, slots=True)
class DayCell:
    """One cell of a 90-day bar."""

    day: date
    seconds: dict[Status, float] = field(default_factory=dict)
    seen: frozenset[Status] = frozenset()
    #: The episodes that touched the day (their first incident's title, or their worst state).
    incidents: tuple[str, ...] = ()

    @property
    def worst(self) -> Status | None:
        """The day's colour: its worst status, ``None`` when nothing was measured."""
        present = {s for s, n in self.seconds.items() if n > 0} | set(self.seen)
        return next((s for s in SHOWN_ORDER if s in present), None)

    @property
    def minutes_down(self) -> int:
        return round(sum(self.seconds.get(s, 0.0) for s in DOWN) / 60)

    @property
    def minutes_degraded(self) -> int:
        return round(self.seconds.get(Status.DEGRADED, 0.0) / 60)

    @property
    def up(self) -> float:
        return sum(self.seconds.get(s, 0.0) for s in UP)

    @property
    def measured(self) -> float:
        return sum(n for s, n in self.seconds.items() if s is not Status.UNKNOWN)


@dataclass(frozen=True, slots=True)
class ProviderHistory:
    provider: str
    name: str
    row: ProviderRow
    days: tuple[DayCell, ...]
    #: Newest first: every episode that was open at some time in the window.
    episodes: tuple[EpisodeRecord, ...]
    latency: tuple[tuple[datetime, float], ...]

    @property
    def open_episode(self) -> EpisodeRecord | None:
        return next((e for e in self.episodes if e.ended is None), None)

    def uptime(self, days: int = UPTIME_DAYS) -> float | None:
        return uptime_of(self.days[-days:])


def uptime_of(cells: Sequence[DayCell]) -> float | None:
    measured = sum(c.measured for c in cells)
    return sum(c.up for c in cells) / measured if measured > 0 else None


async def provider_history(
    store: Store,
    config: TocsinConfig,
    provider: ProviderConfig,
    *,
    days: int = BAR_DAYS,
    now: datetime | None = None,
    states: Mapping[str, ComponentState] | None = None,
    cursors: dict[str, Cursor] | None = None,
) -> ProviderHistory:
    """One provider's last ``days`` days (today included), episodes and 24 h of latency."""
    now = now or utcnow()
    last = now.astimezone(UTC).date()
    first = last - timedelta(days=days - 1)
    all_states = states if states is not None else await store.states()
    cursor = (cursors if cursors is not None else await store.history_cursors()).get(provider.id)
    records = await store.day_records(provider.id, first, last)
    since = datetime.combine(first, datetime.min.time(), UTC)
    episodes = [
        e for e in await store.episodes(provider.id, since) if e.ended is None or e.ended >= since
    ]
    cells = day_cells(records, cursor, episodes, first, last, now)
    samples = await store.latency(provider.id, now - LATENCY_WINDOW)
    row = provider_row(provider, all_states)
    return ProviderHistory(
        provider=provider.id,
        name=provider.name or provider.id,
        row=row,
        days=tuple(cells),
        episodes=tuple(sorted(episodes, key=lambda e: e.started, reverse=True)),
        latency=tuple(sparkline(samples, now)),
    )


async def overview(
    store: Store, config: TocsinConfig, *, days: int = BAR_DAYS, now: datetime | None = None
) -> list[ProviderHistory]:
    """Every watched provider, in the config's order (one read of the states and cursors)."""
    now = now or utcnow()
    states = await store.states()
    cursors = await store.history_cursors()
    return [
        await provider_history(store, config, p, days=days, now=now, states=states, cursors=cursors)
        for p in config.providers
    ]


def day_cells(
    records: Sequence[DayRecord],
    cursor: Cursor | None,
    episodes: Sequence[EpisodeRecord],
    first: date,
    last: date,
    now: datetime,
) -> list[DayCell]:
    """``[first, last]``'s cells: stored seconds, the open span from the cursor added."""
    seconds: dict[date, dict[Status, float]] = {r.day: dict(r.seconds) for r in records}
    seen: dict[date, set[Status]] = {r.day: set(r.seen) for r in records}
    if cursor is not None and cursor.since < now:
        for day, spent in split_by_day(max(cursor.since, _midnight(first)), now):
            kept = seconds.setdefault(day, {})
            kept[cursor.status] = kept.get(cursor.status, 0.0) + spent
    spans = _spans(episodes, now)
    cells = []
    day = first
    while day <= last:
        touching = [title for start, end, title in spans if start <= day <= end][:10]
        cells.append(
            DayCell(
                day=day,
                seconds=seconds.get(day, {}),
                seen=frozenset(seen.get(day, set())),
                incidents=tuple(touching),
            )
        )
        day += timedelta(days=1)
    return cells


def _spans(episodes: Sequence[EpisodeRecord], now: datetime) -> list[tuple[date, date, str]]:
    """Each episode's first and last UTC day, and what a cell says of it (its first
    incident's title, or its worst state)."""
    found = []
    for episode in episodes:
        start = episode.started.astimezone(UTC).date()
        end = (episode.ended or now).astimezone(UTC).date()
        title = episode.incidents[0].title if episode.incidents else None
        found.append((start, end, title or f"{episode.worst.label} ({episode.id})"))
    return found


def sparkline(samples: Sequence[LatencySample], now: datetime) -> list[tuple[datetime, float]]:
    """The median latency of each 10-minute bucket of the last 24 h that has samples."""
    start = now - LATENCY_WINDOW
    buckets: dict[int, list[float]] = {}
    size = LATENCY_BUCKET.total_seconds()
    for sample in samples:
        if start <= sample.at <= now:
            index = int((sample.at - start).total_seconds() // size)
            buckets.setdefault(index, []).append(sample.ms)
    return [
        (start + timedelta(seconds=(index + 0.5) * size), statistics.median(values))
        for index, values in sorted(buckets.items())
    ]


def _midnight(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), UTC)


# ------------------------------------------------------------------------- the report


@dataclass(frozen=True, slots=True)
class ReportRow:
    """One provider's line of ``tocsin report``."""

    provider: str
    name: str
    uptime: float | None
    incidents: int
    downtime: timedelta
    mttr: timedelta | None
    median_lead: timedelta | None
    median_page_lag: timedelta | None


def report_row(history: ProviderHistory, now: datetime) -> ReportRow:
    """Uptime over the days, incidents (outage episodes in the window: maintenance is not
    one), downtime (partial or major outage), mean time to recovery over the outages that
    ended, median detection lead and median page lag over the outages that have them."""
    outages = [e for e in history.episodes if e.worst.is_outage]  # planned work is not one
    ended = [e.duration(now) for e in outages if e.ended is not None]
    leads = [e.lead for e in outages if e.lead is not None]
    lags = [e.page_lag for e in outages if e.page_lag is not None]
    down = sum(sum(c.seconds.get(s, 0.0) for s in DOWN) for c in history.days)
    return ReportRow(
        provider=history.provider,
        name=history.name,
        uptime=uptime_of(history.days),
        incidents=len(outages),
        downtime=timedelta(seconds=round(down)),
        mttr=sum(ended, timedelta()) / len(ended) if ended else None,
        median_lead=_median(leads),
        median_page_lag=_median(lags),
    )


async def report(
    store: Store, config: TocsinConfig, *, days: int, now: datetime | None = None
) -> list[ReportRow]:
    """``tocsin report --since {days}d``: the last ``days`` UTC days, today included."""
    now = now or utcnow()
    return [report_row(h, now) for h in await overview(store, config, days=days, now=now)]


def _median(values: Sequence[timedelta]) -> timedelta | None:
    if not values:
        return None
    return timedelta(seconds=statistics.median(v.total_seconds() for v in values))
