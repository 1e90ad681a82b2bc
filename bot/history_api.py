"""History over HTTP (issue 16): the status pages, the read API ``/api/v1/...`` and badges.

- ``GET /``: the overview (a row per provider: state, 90-day bar, 30-day uptime, 24 h latency
  sparkline, open incident); ``GET /providers/{id}``: a provider's page (components, the
  current incident's timeline, its episodes with detection lead and page lag).
- ``GET /api/v1/providers``, ``/api/v1/providers/{id}``, ``/api/v1/episodes`` (``provider=``,
  ``since=`` an ISO 8601 date or time, or a duration like ``30d``) and ``/api/v1/episodes.csv``
  (the same rows for a spreadsheet). Times are ISO 8601 in UTC, durations in seconds, shares
  between 0 and 1.
- ``GET /badge/{id}.svg`` (the current state) and ``/badge/{id}/uptime.svg`` (30-day uptime).

Everything answers from the store (:mod:`bot.history.queries`), never a live check; read
only, like ``/api/status.json``. What the store holds is hostile: links pass
:func:`bot.outside.safe_url` or are dropped, text is clipped, HTML and SVG are escaped by the
templates (:mod:`bot.pages.render`), CSV cells that a spreadsheet would run as a formula are
defused (:func:`csv_cell`). Every answer is bounded (:data:`PROVIDERS_MAX` providers,
:data:`EPISODES_MAX` episodes). The clock is the app's (``now``), so tests can render the past.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from aiohttp import web

from bot.history import queries
from bot.history.model import DAYS_KEPT, EpisodeRecord
from bot.history.queries import DayCell, ProviderHistory
from bot.models import ComponentState, utcnow
from bot.outside import one_line, safe_url
from bot.pages import render
from bot.pages.badges import status_badge, unknown_badge, uptime_badge
from bot.queries import provider_row
from bot.store import Store
from config.durations import parse_duration
from config.schema import ProviderConfig, TocsinConfig

Clock = Callable[[], datetime]
PROVIDERS_MAX = 200
#: Episodes per answer of ``/api/v1/episodes`` (newest first; ``truncated`` says when cut).
EPISODES_MAX = 1000
#: Episodes in one provider's answer (its 90 days).
PROVIDER_EPISODES_MAX = 200
SINCE_DEFAULT = timedelta(days=90)
SINCE_MAX = timedelta(days=DAYS_KEPT)
TITLE_MAX = 200
TEXT_MAX = 500
#: A CSV cell starting with one of these is a formula to a spreadsheet (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CSV_COLUMNS = (
    "provider",
    "episode",
    "started",
    "ended",
    "duration_s",
    "worst",
    "suspected_at",
    "suspected_by",
    "confirmed_at",
    "lead_s",
    "page_lag_s",
    "incidents",
    "incident_urls",
)
BADGE_HEADERS = {"Cache-Control": "max-age=60"}
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+")


class BadQuery(ValueError):
    """A query parameter that cannot be read; its message is the 400's ``error``."""


def iso(at: datetime | None) -> str | None:
    return at.astimezone(UTC).isoformat() if at is not None else None


def seconds(length: timedelta | None) -> float | None:
    return round(length.total_seconds(), 3) if length is not None else None


def share(value: float | None) -> float | None:
    return round(value, 6) if value is not None else None


def parse_since(text: str | None, now: datetime) -> datetime:
    """``since=``: an ISO 8601 date (midnight UTC) or time (UTC unless it says otherwise), or
    a duration back from now (``30d``, ``12h``, ``2w``, ``1h30m``); at most
    :data:`SINCE_MAX` back, 90 days when absent."""
    if text is None or not text.strip():
        return now - SINCE_DEFAULT
    text = text.strip()
    if len(text) > 64:
        raise BadQuery("since is too long")
    found: datetime | None = None
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        try:
            found = datetime.combine(date.fromisoformat(text), time(), UTC)
        except ValueError:
            raise BadQuery(f"since={text!r} is not a date") from None
    elif re.fullmatch(r"\d{4}-\d{2}-\d{2}[T ].+", text):
        # An unencoded "+02:00" arrives as " 02:00" (a "+" in a query is a space).
        text = re.sub(r"(\d) (\d{2}:?\d{2})$", r"\1+\2", text)
        try:
            found = datetime.fromisoformat(text)
        except ValueError:
            raise BadQuery(f"since={text!r} is not an ISO 8601 time") from None
        if found.tzinfo is None:
            found = found.replace(tzinfo=UTC)
    elif _DURATION.fullmatch(text.lower()):
        lower = text.lower()
        weeks = sum(float(n) for n in re.findall(r"(\d+(?:\.\d+)?)w", lower))
        rest = re.sub(r"\d+(?:\.\d+)?w", "", lower)
        back = weeks * 7 * 86400 + (parse_duration(rest) if rest else 0.0)
        found = now - timedelta(seconds=min(back, SINCE_MAX.total_seconds()))
    else:
        raise BadQuery(
            f"since={one_line(text, 64)!r} is neither an ISO 8601 date or time "
            "(2025-01-31, 2025-01-31T08:00:00Z) nor a duration (30d, 12h, 2w)"
        )
    return max(found, now - SINCE_MAX)


def csv_cell(value: object) -> str:
    """A cell as a spreadsheet will read it: text that starts like a formula (``=``, ``+``,
    ``-``, ``@``, a tab or a carriage return) gets a leading ``'`` so that it stays text.
    Numbers are written by us (``-120.0`` is a number, not a formula) and kept as they are."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def day_json(cell: DayCell) -> dict[str, Any]:
    worst = cell.worst
    return {
        "date": cell.day.isoformat(),
        "worst": worst.value if worst else None,
        "minutes_down": cell.minutes_down,
        "minutes_degraded": cell.minutes_degraded,
        "incidents": [one_line(t, TITLE_MAX) for t in cell.incidents[:10]],
    }


def episode_json(episode: EpisodeRecord, now: datetime) -> dict[str, Any]:
    return {
        "id": one_line(episode.id, 200),
        "provider": one_line(episode.provider, 100),
        "started": iso(episode.started),
        "ended": iso(episode.ended),
        "open": episode.ended is None,
        "duration_s": seconds(episode.duration(now)),
        "worst": episode.worst.value,
        "suspected_at": iso(episode.suspected_at),
        "suspected_by": one_line(episode.suspected_by, 100) if episode.suspected_by else None,
        "confirmed_at": iso(episode.confirmed_at),
        "lead_s": seconds(episode.lead),
        "page_lag_s": seconds(episode.page_lag),
        "incidents": [
            {
                "id": one_line(i.id, 200),
                "title": one_line(i.title, TITLE_MAX),
                "url": safe_url(i.url),
            }
            for i in episode.incidents[-10:]
        ],
        "updates": [
            {"at": iso(u.at), "status": one_line(u.status, 80), "text": one_line(u.text, TEXT_MAX)}
            for u in episode.updates[-50:]
        ],
    }


def component_json(component: ComponentState) -> dict[str, Any]:
    return {
        "id": one_line(component.component, 200),
        "name": one_line(component.display_name, 100),
        "status": component.status.value,
        "confirmed": component.confirmed,
        "since": iso(component.since),
        "model": one_line(component.model, 100) if component.model else None,
        "latency_ms": component.latency_ms,
        "latency_p50_ms": component.latency_p50_ms,
        "latency_p95_ms": component.latency_p95_ms,
    }


def provider_json(history: ProviderHistory, now: datetime) -> dict[str, Any]:
    row = history.row
    episode = history.open_episode
    return {
        "id": history.provider,
        "name": one_line(history.name, 100),
        "status": row.status.value,
        "confirmed": row.confirmed,
        "since": iso(row.since),
        "uptime_30d": share(history.uptime(30)),
        "uptime_90d": share(history.uptime(90)),
        "open_episode": episode_json(episode, now) if episode else None,
        "days": [day_json(c) for c in history.days[-90:]],
    }


def provider_detail_json(history: ProviderHistory, now: datetime) -> dict[str, Any]:
    report = queries.report_row(history, now)
    incident = history.row.incident
    return {
        **provider_json(history, now),
        "incident": (
            {
                "id": one_line(incident.id, 200),
                "title": one_line(incident.title, TITLE_MAX),
                "url": safe_url(incident.url),
                "status": one_line(incident.status, 80),
                "update": one_line(incident.update, TEXT_MAX),
            }
            if incident
            else None
        ),
        "summary_90d": {
            "uptime": share(report.uptime),
            "episodes": report.incidents,
            "downtime_s": seconds(report.downtime),
            "mttr_s": seconds(report.mttr),
            "median_lead_s": seconds(report.median_lead),
            "median_page_lag_s": seconds(report.median_page_lag),
        },
        "components": [component_json(c) for c in history.row.components[:200]],
        "episodes": [episode_json(e, now) for e in history.episodes[:PROVIDER_EPISODES_MAX]],
        "latency": [{"at": iso(at), "ms": round(ms, 1)} for at, ms in history.latency[-200:]],
    }


def csv_rows(episodes: Iterable[EpisodeRecord], now: datetime) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for episode in episodes:
        shown = episode_json(episode, now)
        row = [
            shown["provider"],
            shown["id"],
            shown["started"],
            shown["ended"],
            shown["duration_s"],
            shown["worst"],
            shown["suspected_at"],
            shown["suspected_by"],
            shown["confirmed_at"],
            shown["lead_s"],
            shown["page_lag_s"],
            " | ".join(i["title"] for i in shown["incidents"]),
            " ".join(i["url"] for i in shown["incidents"] if i["url"]),
        ]
        writer.writerow([csv_cell(v) for v in row])
    return out.getvalue()


def _not_found_json() -> web.Response:
    return web.json_response({"error": "unknown provider"}, status=404)


class HistoryRoutes:
    """The pages, the read API and the badges, on one store and one clock."""

    def __init__(self, config: TocsinConfig, store: Store, now: Clock = utcnow) -> None:
        self.config = config
        self.store = store
        self.now = now

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/", self.overview_page),
            web.get("/providers/{provider}", self.provider_page),
            web.get("/api/v1/providers", self.providers_json),
            web.get("/api/v1/providers/{provider}", self.provider_json),
            web.get("/api/v1/episodes", self.episodes_json),
            web.get("/api/v1/episodes.csv", self.episodes_csv),
            web.get("/badge/{provider}/uptime.svg", self.uptime_badge),
            web.get("/badge/{provider}.svg", self.status_badge),
        ]

    def _provider(self, request: web.Request) -> ProviderConfig | None:
        wanted = request.match_info.get("provider", "")
        return next((p for p in self.config.providers if p.id == wanted), None)

    def _clock(self) -> datetime:
        return self.now().astimezone(UTC)

    async def _overview(self, now: datetime) -> list[ProviderHistory]:
        histories = await queries.overview(self.store, self.config, now=now)
        return histories[:PROVIDERS_MAX]

    async def _history(self, provider: ProviderConfig, now: datetime) -> ProviderHistory:
        return await queries.provider_history(self.store, self.config, provider, now=now)

    # ------------------------------------------------------------------ pages
    async def overview_page(self, request: web.Request) -> web.Response:
        now = self._clock()
        return _html(render.overview(await self._overview(now), now))

    async def provider_page(self, request: web.Request) -> web.Response:
        provider = self._provider(request)
        if provider is None:
            return _html(render.not_found(request.match_info.get("provider", "")), status=404)
        now = self._clock()
        return _html(render.provider(await self._history(provider, now), now))

    # ------------------------------------------------------------------ JSON and CSV
    async def providers_json(self, request: web.Request) -> web.Response:
        now = self._clock()
        histories = await self._overview(now)
        return web.json_response(
            {"generated_at": iso(now), "providers": [provider_json(h, now) for h in histories]}
        )

    async def provider_json(self, request: web.Request) -> web.Response:
        provider = self._provider(request)
        if provider is None:
            return _not_found_json()
        now = self._clock()
        history = await self._history(provider, now)
        detail = provider_detail_json(history, now)
        detail["vantages"] = []  # (issue 17) each vantage's view, with a quorum of vantages
        if self.config.watch.quorum > 1:
            from bot.vantage import vantage_views  # imported only when it is used

            views = await vantage_views(self.store, provider.id, now=now)
            detail["vantages"] = [view.as_json() for view in views]
        return web.json_response({"generated_at": iso(now), "provider": detail})

    async def _episodes(
        self, request: web.Request, now: datetime
    ) -> tuple[list[EpisodeRecord], bool] | web.Response:
        wanted = request.query.get("provider")
        if wanted:
            provider = next((p for p in self.config.providers if p.id == wanted), None)
            if provider is None:
                return _not_found_json()
            providers: Sequence[ProviderConfig] = [provider]
        else:
            providers = self.config.providers[:PROVIDERS_MAX]
        try:
            since = parse_since(request.query.get("since"), now)
        except BadQuery as exc:
            return web.json_response({"error": str(exc)}, status=400)
        found: list[EpisodeRecord] = []
        for provider in providers:
            for episode in await self.store.episodes(provider.id, since):
                if episode.started <= now and (episode.ended is None or episode.ended >= since):
                    found.append(episode)
        found.sort(key=lambda e: e.started, reverse=True)
        return found[:EPISODES_MAX], len(found) > EPISODES_MAX

    async def episodes_json(self, request: web.Request) -> web.Response:
        now = self._clock()
        got = await self._episodes(request, now)
        if isinstance(got, web.Response):
            return got
        episodes, truncated = got
        return web.json_response(
            {
                "generated_at": iso(now),
                "episodes": [episode_json(e, now) for e in episodes],
                "truncated": truncated,
            }
        )

    async def episodes_csv(self, request: web.Request) -> web.Response:
        now = self._clock()
        got = await self._episodes(request, now)
        if isinstance(got, web.Response):
            return got
        episodes, _ = got
        return web.Response(
            text=csv_rows(episodes, now),
            content_type="text/csv",
            charset="utf-8",
            headers={"Content-Disposition": 'attachment; filename="tocsin-episodes.csv"'},
        )

    # ------------------------------------------------------------------ badges
    async def status_badge(self, request: web.Request) -> web.Response:
        provider = self._provider(request)
        if provider is None:
            return _svg(render.badge_svg(unknown_badge()), status=404)
        states = await self.store.states()
        row = provider_row(provider, states)
        return _svg(render.badge_svg(status_badge(provider.name or provider.id, row.status)))

    async def uptime_badge(self, request: web.Request) -> web.Response:
        provider = self._provider(request)
        if provider is None:
            return _svg(render.badge_svg(unknown_badge()), status=404)
        now = self._clock()
        history = await queries.provider_history(
            self.store, self.config, provider, days=30, now=now
        )
        return _svg(render.badge_svg(uptime_badge(history.uptime(30))))


def _html(body: str, status: int = 200) -> web.Response:
    return web.Response(
        text=body,
        status=status,
        content_type="text/html",
        charset="utf-8",
        headers={"Cache-Control": "no-cache"},
    )


def _svg(body: str, status: int = 200) -> web.Response:
    return web.Response(
        text=body,
        status=status,
        content_type="image/svg+xml",
        charset="utf-8",
        headers=BADGE_HEADERS,
    )
