"""What the pages show, worked out once in Python so that the templates only display it.

Every value that came from outside (provider names from the config, incident titles, updates
and links from status pages, component names, anything read back from the store) is clipped
here and kept as plain text: the templates escape it (:mod:`bot.pages.render`), and a link is
a link only when :func:`bot.outside.safe_url` accepts it. Everything is bounded: at most
:data:`PROVIDERS_MAX` providers, :data:`CELLS_MAX` day cells, :data:`EPISODES_SHOWN` episodes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot.history.model import EpisodeRecord
from bot.history.queries import DayCell, ProviderHistory, report_row
from bot.models import ComponentState, Incident, Status
from bot.outside import one_line, safe_url

PROVIDERS_MAX = 200
CELLS_MAX = 90
EPISODES_SHOWN = 50
UPDATES_SHOWN = 50
INCIDENTS_PER_CELL = 5
COMPONENTS_SHOWN = 200
NAME_MAX = 100
TITLE_MAX = 200
TEXT_MAX = 500
#: The sparkline's box (SVG user units; CSS may scale it).
SPARK_WIDTH, SPARK_HEIGHT = 120, 28
WIDE_SPARK_WIDTH, WIDE_SPARK_HEIGHT = 320, 56


def when(at: datetime | None) -> str:
    """``2025-03-04 10:00 UTC`` (empty for ``None``)."""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if at else ""


def span(length: timedelta) -> str:
    """A length of time as people read it: ``45 s``, ``12 min``, ``1 h 5 min``, ``2 d 3 h``."""
    seconds = max(0, round(length.total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def percent(share: float | None) -> str:
    """``99.65 %`` (two decimals), or ``no data``."""
    return "no data" if share is None else f"{share * 100:.2f} %"


def status_words(status: Status) -> str:
    return status.label.lower()


@dataclass(frozen=True, slots=True)
class Cell:
    """One day of a bar: its colour (a status value, ``none`` without data) and what its
    tooltip and accessible name say."""

    day: str
    worst: str
    state: str
    minutes: str
    incidents: tuple[str, ...]
    #: Where its tooltip opens: ``start`` (left third), ``middle``, ``end`` (right third).
    anchor: str

    @property
    def label(self) -> str:
        parts = [f"{self.day}: {self.state}"]
        if self.minutes:
            parts.append(self.minutes)
        text = ", ".join(parts)
        if self.incidents:
            text += ". " + "; ".join(self.incidents)
        return text


def cells(days: Sequence[DayCell]) -> list[Cell]:
    shown = list(days)[-CELLS_MAX:]
    found = []
    for index, cell in enumerate(shown):
        worst = cell.worst
        third = 3 * index // max(1, len(shown))
        found.append(
            Cell(
                day=cell.day.isoformat(),
                worst=worst.value if worst else "none",
                state=status_words(worst) if worst else "no data",
                minutes=(
                    f"{cell.minutes_down} min down, {cell.minutes_degraded} min degraded"
                    if worst
                    else ""
                ),
                incidents=tuple(
                    one_line(t, TITLE_MAX) for t in cell.incidents[:INCIDENTS_PER_CELL]
                ),
                anchor=("start", "middle", "end")[min(third, 2)],
            )
        )
    return found


@dataclass(frozen=True, slots=True)
class Sparkline:
    """A polyline of the last 24 h's latency medians, in a box of ``width`` by ``height``."""

    points: str
    width: int
    height: int
    last_x: float
    last_y: float
    low: float
    high: float
    last: float

    @property
    def label(self) -> str:
        return (
            f"latency over the last 24 hours: {self.low:.0f} to {self.high:.0f} ms, "
            f"latest {self.last:.0f} ms"
        )


def sparkline(
    latency: Sequence[tuple[datetime, float]],
    now: datetime,
    *,
    width: int = SPARK_WIDTH,
    height: int = SPARK_HEIGHT,
) -> Sparkline | None:
    """``None`` when there are no samples (the page then draws nothing)."""
    samples = list(latency)[-1000:]
    if not samples:
        return None
    values = [ms for _, ms in samples]
    low, high = min(values), max(values)
    start, window = now - timedelta(hours=24), 24 * 3600.0
    pad = 2.0
    points = []
    for at, ms in samples:
        x = pad + (width - 2 * pad) * min(1.0, max(0.0, (at - start).total_seconds() / window))
        y = height - pad - (height - 2 * pad) * ((ms - low) / (high - low) if high > low else 0.5)
        points.append((round(x, 1), round(y, 1)))
    if len(points) == 1:  # one point draws no line: a short dash ending at it
        points.insert(0, (max(pad, points[0][0] - 4), points[0][1]))
    return Sparkline(
        points=" ".join(f"{x},{y}" for x, y in points),
        width=width,
        height=height,
        last_x=points[-1][0],
        last_y=points[-1][1],
        low=low,
        high=high,
        last=values[-1],
    )


@dataclass(frozen=True, slots=True)
class IncidentView:
    title: str
    href: str | None
    status: str = ""
    update: str = ""


def incident_view(incident: Incident) -> IncidentView:
    return IncidentView(
        title=one_line(incident.title, TITLE_MAX) or "(untitled incident)",
        href=safe_url(incident.url),
        status=one_line(incident.status, 80),
        update=one_line(incident.update, TEXT_MAX),
    )


@dataclass(frozen=True, slots=True)
class UpdateView:
    at: str
    status: str
    text: str


@dataclass(frozen=True, slots=True)
class EpisodeView:
    id: str
    started: str
    ended: str
    duration: str
    worst: str
    worst_words: str
    suspected: str
    confirmed: str
    lead: str
    lag: str
    incidents: tuple[IncidentView, ...]
    updates: tuple[UpdateView, ...]


def lead_words(episode: EpisodeRecord) -> str:
    """``probes saw it 12 min before the status page`` and its kin."""
    lead = episode.lead
    if lead is not None:
        if lead > timedelta(0):
            return f"probes saw it {span(lead)} before the status page"
        if lead < timedelta(0):
            return f"the status page was {span(-lead)} ahead of the probes"
        return "probes and the status page saw it at once"
    if episode.suspected_at is not None:
        return "probes saw it; the status page never confirmed it"
    if episode.confirmed_at is not None:
        return "the status page saw it; no probe did"
    return "neither probes nor the status page called it an outage"


def lag_words(episode: EpisodeRecord) -> str:
    lag = episode.page_lag
    if lag is None:
        return "the status page never confirmed it"
    if lag < timedelta(seconds=1):
        return "the status page confirmed it as it began"
    return f"the status page confirmed it {span(lag)} after it began"


def episode_view(episode: EpisodeRecord, now: datetime) -> EpisodeView:
    suspected = ""
    if episode.suspected_at is not None:
        suspected = when(episode.suspected_at)
        if episode.suspected_by:
            suspected += f" by {one_line(episode.suspected_by, NAME_MAX)}"
    return EpisodeView(
        id=one_line(episode.id, 200),
        started=when(episode.started),
        ended=when(episode.ended) if episode.ended else "ongoing",
        duration=span(episode.duration(now)),
        worst=episode.worst.value,
        worst_words=status_words(episode.worst),
        suspected=suspected,
        confirmed=when(episode.confirmed_at),
        lead=lead_words(episode),
        lag=lag_words(episode),
        incidents=tuple(
            IncidentView(title=one_line(i.title, TITLE_MAX) or i.id, href=safe_url(i.url))
            for i in episode.incidents[-10:]
        ),
        updates=tuple(
            UpdateView(when(u.at), one_line(u.status, 80), one_line(u.text, TEXT_MAX))
            for u in episode.updates[-UPDATES_SHOWN:]
        ),
    )


@dataclass(frozen=True, slots=True)
class ComponentView:
    name: str
    status: str
    status_words: str
    model: str
    latency: str
    detail: str


def component_view(component: ComponentState) -> ComponentView:
    p50, p95 = component.latency_p50_ms, component.latency_p95_ms
    latency = ""
    if p50 is not None and p95 is not None:
        latency = f"p50 {p50:.0f} ms · p95 {p95:.0f} ms"
    elif component.latency_ms is not None:
        latency = f"{component.latency_ms:.0f} ms"
    return ComponentView(
        name=one_line(component.display_name, NAME_MAX),
        status=component.status.value,
        status_words=status_words(component.status),
        model=one_line(component.model, NAME_MAX) if component.model else "",
        latency=latency,
        detail=one_line(component.detail, TEXT_MAX) if component.detail else "",
    )


@dataclass(frozen=True, slots=True)
class ProviderView:
    """One provider on the overview (and the head of its own page)."""

    id: str
    name: str
    status: str
    status_text: str
    uptime_30d: str
    uptime_90d: str
    cells: tuple[Cell, ...]
    spark: Sparkline | None
    latency_now: str
    incident: IncidentView | None


def provider_view(history: ProviderHistory, now: datetime, *, wide: bool = False) -> ProviderView:
    row = history.row
    incident = incident_view(row.incident) if row.incident else None
    episode = history.open_episode
    if incident is None and episode is not None and episode.incidents:
        last = episode.incidents[-1]
        incident = IncidentView(
            title=one_line(last.title, TITLE_MAX) or last.id, href=safe_url(last.url)
        )
    size = (WIDE_SPARK_WIDTH, WIDE_SPARK_HEIGHT) if wide else (SPARK_WIDTH, SPARK_HEIGHT)
    spark = sparkline(history.latency, now, width=size[0], height=size[1])
    return ProviderView(
        id=history.provider,
        name=one_line(history.name, NAME_MAX),
        status=row.status.value,
        status_text=row.status_text,
        uptime_30d=percent(history.uptime(30)),
        uptime_90d=percent(history.uptime(90)),
        cells=tuple(cells(history.days)),
        spark=spark,
        latency_now=f"{spark.last:.0f} ms" if spark else "",
        incident=incident,
    )


@dataclass(frozen=True, slots=True)
class ProviderPage:
    head: ProviderView
    components: tuple[ComponentView, ...]
    #: The open episode's timeline (every update kept), or the page's latest update.
    timeline: tuple[UpdateView, ...]
    episodes: tuple[EpisodeView, ...]
    more_episodes: int
    summary: tuple[tuple[str, str], ...]


def provider_page(history: ProviderHistory, now: datetime) -> ProviderPage:
    episode = history.open_episode
    timeline: tuple[UpdateView, ...] = ()
    if episode is not None:
        timeline = episode_view(episode, now).updates
    elif history.row.incident is not None and history.row.incident.update:
        shown = incident_view(history.row.incident)
        timeline = (UpdateView("", shown.status, shown.update),)
    report = report_row(history, now)
    summary = (
        ("30-day uptime", percent(history.uptime(30))),
        ("90-day uptime", percent(history.uptime(90))),
        ("episodes in 90 days", str(report.incidents)),
        ("time down in 90 days", span(report.downtime)),
        ("mean time to recovery", span(report.mttr) if report.mttr is not None else "—"),
        (
            "median detection lead",
            span(report.median_lead) if report.median_lead is not None else "—",
        ),
        (
            "median page lag",
            span(report.median_page_lag) if report.median_page_lag is not None else "—",
        ),
    )
    return ProviderPage(
        head=provider_view(history, now, wide=True),
        components=tuple(component_view(c) for c in history.row.components[:COMPONENTS_SHOWN]),
        timeline=timeline,
        episodes=tuple(episode_view(e, now) for e in history.episodes[:EPISODES_SHOWN]),
        more_episodes=max(0, len(history.episodes) - EPISODES_SHOWN),
        summary=summary,
    )
