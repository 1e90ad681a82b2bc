"""The HTTP side: health, readiness, metrics, a JSON status API, the status pages and the live
dashboard.

One aiohttp listener (``server.host``/``server.port``); Slack's HTTP mode mounts its route on
the same app. The status pages (``/``, ``/providers/{id}``), the read API (``/api/v1/...``) and
the badges (``/badge/...``) are :mod:`bot.history_api`; the live dashboard is at ``/live``.
Everything here answers from the store, never from a live check. With ``hooks.secret`` set it
also takes status page pushes (:mod:`bot.hooks`).

What is read back from the store came from outside (status pages) and is hostile: the JSON API
keeps only http(s) incident links, the dashboard puts every value in the page as text (its
script builds the DOM, never markup), and every answer carries a strict Content-Security-Policy
so that even a slip there could run no script but the dashboard's own. A failing handler is
a short 500 and one log line, never a traceback for the caller; the listener's own bounds
(connections, header and idle timeouts) are in :mod:`bot.listener`.
"""

from __future__ import annotations

import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bot.history_api import HistoryRoutes
from bot.hooks import StatuspageHooks
from bot.listener import BoundedSite, Limits, server_options
from bot.logs import get_logger
from bot.metrics import REGISTRY
from bot.models import Event, utcnow
from bot.outside import clip, one_line, safe_url
from bot.queries import ProviderRow, provider_rows
from bot.route_api import RouteApi
from bot.store import Store, StoreUnavailable
from config.schema import TocsinConfig


@dataclass
class Health:
    """What the health endpoints report; the running parts fill it in."""

    store: Store
    role: str = "all"
    leader: Callable[[], bool] = lambda: False
    buffered: Callable[[], int] = lambda: 0
    extra: dict[str, Callable[[], Any]] = field(default_factory=dict)

    async def snapshot(self) -> dict[str, Any]:
        store_ok = await self.store.ping()
        report: dict[str, Any] = {
            "status": "ok" if store_ok else "degraded: store unreachable",
            "store": "ok" if store_ok else "unreachable",
            "role": self.role,
            "leader": self.leader(),
            "buffered_updates": self.buffered(),
        }
        report.update({name: get() for name, get in self.extra.items()})
        return report


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
log = get_logger("tocsin.server")

#: The dashboard's own script and style, and nothing else: no inline script or style, no other
#: origin, no frames, no forms, no ``<base>``. Sent on every answer (JSON too: it costs nothing).
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
#: The live dashboard's page (at ``/live``), and the files the pages load from ``/static/``
#: (package data under ``bot/web/``) with the type each is served as.
DASHBOARD = "dashboard.html"
ASSETS = {
    "dashboard.js": "text/javascript",
    "dashboard.css": "text/css",
    "pages.css": "text/css",
}


def build_app(
    config: TocsinConfig,
    store: Store,
    health: Health,
    extra: Sequence[tuple[str, str, Handler]] = (),
    *,
    now: Callable[[], datetime] = utcnow,
) -> web.Application:
    """The app; ``extra`` routes come from the edges (Slack's HTTP mode). ``now`` is the
    pages' and the read API's clock (a test renders a scripted history's "today")."""
    app = web.Application(middlewares=[_answer_errors])
    app.on_response_prepare.append(_secure_headers)
    for method, path, handler in extra:
        app.router.add_route(method, path, handler)
    routes = _Routes(config, store, health)
    app.router.add_get("/healthz", routes.healthz)
    app.router.add_get("/readyz", routes.readyz)
    app.router.add_get("/metrics", routes.metrics)
    app.router.add_get("/api/status.json", routes.status_json)
    app.router.add_get("/api/events.json", routes.events_json)
    app.router.add_routes(HistoryRoutes(config, store, now).routes())
    app.router.add_get("/live", _web_file(DASHBOARD, "text/html"))
    for name, content_type in ASSETS.items():
        app.router.add_get(f"/static/{name}", _web_file(name, content_type))
    if config.hooks.enabled:  # never an unauthenticated inbound endpoint
        app.router.add_routes(StatuspageHooks(config, store).routes())
    if config.signals.enabled:  # apps' reported calls, behind their bearer tokens
        from bot.signals import SignalReceiver

        app.router.add_routes(SignalReceiver(config, store).routes())
    if config.routes:  # read-only, like /api/status.json
        route_api = RouteApi(config, store)
        app.router.add_routes(route_api.routes())
        app.on_shutdown.append(route_api.close)
    return app


@web.middleware
async def _answer_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A read while Redis is away is a 503 that says so; any other failure a 500 that says
    nothing more. The caller never sees a traceback or an address (the Redis host and port
    are for the log, not for whoever asks); the log gets one bounded line."""
    try:
        return await handler(request)
    except (web.HTTPException, ConnectionError):  # an answer, or a caller gone away
        raise
    except StoreUnavailable as exc:
        log.warning(
            "a request needed the store, which is unreachable",
            path=clip(request.path, 200),
            error=str(exc),
        )
        return web.json_response({"error": "store unreachable"}, status=503)
    except Exception as exc:
        log.error(
            "a request failed",
            method=clip(request.method, 20),
            path=clip(request.path, 200),
            error=_describe(exc),
        )
        return web.json_response({"error": "internal error"}, status=500)


def _describe(exc: BaseException) -> str:
    """The exception and where it was raised, on one bounded line (a hostile request may
    have chosen the message, so it is clipped like any other outside text)."""
    frames = traceback.extract_tb(exc.__traceback__)[-3:]
    where = " < ".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} {f.name}" for f in frames)
    return f"{type(exc).__name__}: {one_line(str(exc), 300)} (at {where or 'unknown'})"


async def _secure_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Every answer, errors and 404s included, goes out with :data:`SECURITY_HEADERS`."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


def _web_file(name: str, content_type: str) -> Handler:
    """A handler for one of the dashboard's files, read once (they are package data: a
    missing one stops the start, not a later request)."""
    body = resources.files("bot").joinpath(f"web/{name}").read_text(encoding="utf-8")

    async def serve(request: web.Request) -> web.Response:
        return web.Response(
            text=body,
            content_type=content_type,
            charset="utf-8",
            headers={"Cache-Control": "no-cache"},
        )

    return serve


class _Routes:
    def __init__(self, config: TocsinConfig, store: Store, health: Health) -> None:
        self.config = config
        self.store = store
        self.health = health

    async def healthz(self, request: web.Request) -> web.Response:
        """Liveness: the process answers. The body says whether it is degraded."""
        return web.json_response(await self.health.snapshot())

    async def readyz(self, request: web.Request) -> web.Response:
        report = await self.health.snapshot()
        return web.json_response(report, status=200 if report["store"] == "ok" else 503)

    async def metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def status_json(self, request: web.Request) -> web.Response:
        states = await self.store.states()
        rows = provider_rows(self.config, states)
        return web.json_response({"providers": [_row_json(r) for r in rows]})

    async def events_json(self, request: web.Request) -> web.Response:
        try:
            count = max(1, min(500, int(request.query.get("count", "50"))))
        except ValueError:
            raise web.HTTPBadRequest(text="count must be a number") from None
        events = await self.store.recent_events(count)
        return web.json_response({"events": [_event_json(e) for e in events]})


def _row_json(row: ProviderRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "status": row.status.value,
        "confirmed": row.confirmed,
        "since": row.since.isoformat() if row.since else None,
        "checked_at": row.checked_at.isoformat() if row.checked_at else None,
        "latency_ms": row.latency_ms,
        "detail": row.detail,
        "incident": _incident_json(row.incident.model_dump(mode="json") if row.incident else None),
        "components": [
            {
                "id": c.component,
                "name": c.display_name,
                "status": c.status.value,
                "confirmed": c.confirmed,
                "since": c.since.isoformat(),
                "detail": c.detail,
                "model": c.model,
                "latency_p50_ms": c.latency_p50_ms,
                "latency_p95_ms": c.latency_p95_ms,
            }
            for c in row.components
        ],
    }


def _event_json(event: Event) -> dict[str, Any]:
    data: dict[str, Any] = event.model_dump(mode="json", by_alias=True)
    data["incident"] = _incident_json(data.get("incident"))
    return data


def _incident_json(incident: dict[str, Any] | None) -> dict[str, Any] | None:
    """An incident as the API shows it: its link only if it is an http(s) URL. The store's
    copy came from a status page (or from whoever can write to Redis): a ``javascript:`` link
    is dropped here, whatever the dashboard's script would have done with it."""
    if incident is not None:
        incident["url"] = safe_url(incident.get("url"))
    return incident


async def start_server(
    app: web.Application, host: str, port: int, limits: Limits | None = None
) -> web.AppRunner:
    """Listen on ``host:port`` within ``limits`` (:mod:`bot.listener`; the defaults unless a
    test wants smaller ones)."""
    limits = limits or Limits()
    runner = web.AppRunner(app, handle_signals=False, access_log=None, **server_options(limits))
    await runner.setup()
    await BoundedSite(runner, host, port, limits).start()
    return runner
