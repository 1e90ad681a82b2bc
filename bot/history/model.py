"""What history keeps: day records, episode records, a cursor per provider, latency samples.

Stored as small JSON (episodes) and counters (days); everything read back is hostile and
decoded defensively by the stores (a record that does not validate is dropped, alone).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from pydantic import BaseModel, Field

from bot.models import Status

#: Fine-grained history (component changes, latency) is kept this long...
FINE_DAYS = 30
#: ...and the per-day records and episodes this long (more than a year, for year-on-year).
DAYS_KEPT = 400
#: Latency samples: one per provider and 5 minutes (the median of its probes' calls in
#: them), for a little more than the sparkline's day before the newest sample.
LATENCY_KEPT = timedelta(hours=26)
LATENCY_EVERY = 300.0
#: At most this many samples per provider are kept and read.
LATENCY_SAMPLES_MAX = 2_000
#: At most this many episodes per provider and month are read back.
EPISODES_READ = 1000
#: Per episode, at most this many incidents and timeline updates are kept (the newest).
EPISODE_INCIDENTS_MAX = 10
EPISODE_UPDATES_MAX = 50
TEXT_MAX = 500
TITLE_MAX = 200


@dataclass(slots=True)
class DayDelta:
    """What one fold adds to one provider's UTC day: seconds per status, statuses seen."""

    seconds: dict[Status, float] = field(default_factory=dict)
    seen: set[Status] = field(default_factory=set)

    def add(self, status: Status, seconds: float) -> None:
        if seconds > 0:
            self.seconds[status] = self.seconds.get(status, 0.0) + seconds


@dataclass(slots=True)
class DayRecord:
    """One provider's UTC day as stored: seconds per status (of closed spans) and statuses
    seen that day."""

    day: date
    seconds: dict[Status, float] = field(default_factory=dict)
    seen: set[Status] = field(default_factory=set)


class Cursor(BaseModel):
    """Where a provider's history stands: its status since when, and the last event folded
    (a replayed event is recognised and skipped)."""

    status: Status
    since: datetime
    event_id: str = Field(max_length=100)


class TimelineUpdate(BaseModel):
    at: datetime
    status: str = Field(max_length=80)
    text: str = Field(max_length=TEXT_MAX)


class EpisodeIncident(BaseModel):
    id: str = Field(max_length=200)
    title: str = Field(max_length=TITLE_MAX)
    url: str | None = Field(default=None, max_length=2000)


class EpisodeRecord(BaseModel):
    """One outage episode of one provider, as history keeps it."""

    id: str = Field(max_length=200)
    provider: str = Field(max_length=100)
    started: datetime
    ended: datetime | None = None
    worst: Status = Status.DEGRADED
    #: When our own evidence (probes, apps' traffic) first said so, and by which source...
    suspected_at: datetime | None = None
    suspected_by: str | None = Field(default=None, max_length=100)
    #: ...and when the status page first confirmed it.
    confirmed_at: datetime | None = None
    incidents: list[EpisodeIncident] = Field(default_factory=list)
    updates: list[TimelineUpdate] = Field(default_factory=list)

    def duration(self, now: datetime) -> timedelta:
        return (self.ended or now) - self.started

    @property
    def lead(self) -> timedelta | None:
        """How long before the status page our own evidence saw it (negative: the page
        was first); ``None`` unless both saw it."""
        if self.suspected_at is None or self.confirmed_at is None:
            return None
        return self.confirmed_at - self.suspected_at

    @property
    def page_lag(self) -> timedelta | None:
        """How long after the episode started the status page confirmed it."""
        if self.confirmed_at is None:
            return None
        return max(timedelta(), self.confirmed_at - self.started)


@dataclass(frozen=True, slots=True)
class LatencySample:
    provider: str
    component: str
    at: datetime
    ms: float


def month_of(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def months(first: date, last: date) -> list[str]:
    """The months (``YYYY-MM``) from ``first``'s to ``last``'s, in order."""
    found: list[str] = []
    year, month = first.year, first.month
    while (year, month) <= (last.year, last.month):
        found.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return found


def month_expiry(month: str) -> datetime:
    """When a month's records may go: :data:`DAYS_KEPT` days after the month ends."""
    year, number = (int(part) for part in month.split("-"))
    first_after = date(year + 1, 1, 1) if number == 12 else date(year, number + 1, 1)
    return datetime(first_after.year, first_after.month, 1, tzinfo=UTC) + timedelta(days=DAYS_KEPT)


def day_field(day: date, status: Status) -> str:
    return f"{day.day:02d}|{status.value}"


def seen_field(day: date, status: Status) -> str:
    return f"{day.day:02d}|seen:{status.value}"


def read_day_fields(month: str, fields: dict[str, str]) -> list[DayRecord]:
    """A month hash's fields as day records; a field that is not ``DD|status`` with a
    plausible number (or ``DD|seen:status``) is ignored."""
    year, number = (int(part) for part in month.split("-"))
    found: dict[int, DayRecord] = {}
    for name, value in fields.items():
        day_text, _, what = name.partition("|")
        if not (day_text.isdigit() and len(day_text) == 2 and 1 <= int(day_text) <= 31):
            continue
        try:
            day = date(year, number, int(day_text))
        except ValueError:
            continue
        record = found.setdefault(day.day, DayRecord(day))
        if what.startswith("seen:"):
            status = _status(what[5:])
            if status is not None:
                record.seen.add(status)
            continue
        status = _status(what)
        seconds = _seconds(value)
        if status is not None and seconds is not None:
            record.seconds[status] = seconds
    return [found[d] for d in sorted(found)]


def _status(text: str) -> Status | None:
    try:
        return Status(text)
    except ValueError:
        return None


def _seconds(value: str) -> float | None:
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if 0 <= seconds <= 86_400 * 1.01 else None
