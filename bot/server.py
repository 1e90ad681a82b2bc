"""The HTTP side: health, readiness, metrics, a JSON status API and the local dashboard.

One aiohttp listener (``server.host``/``server.port``); Slack's HTTP mode mounts its route on
the same app. Everything here answers from the store, never from a live check. With
``hooks.secret`` set it also takes status page pushes (:mod:`bot.hooks`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bot.hooks import StatuspageHooks
from bot.logs import get_logger
from bot.metrics import REGISTRY
from bot.models import Event
from bot.queries import ProviderRow, provider_rows
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


def build_app(
    config: TocsinConfig,
    store: Store,
    health: Health,
    extra: Sequence[tuple[str, str, Handler]] = (),
) -> web.Application:
    """The app; ``extra`` routes come from the edges (Slack's HTTP mode)."""
    app = web.Application(middlewares=[_store_unavailable])
    for method, path, handler in extra:
        app.router.add_route(method, path, handler)
    routes = _Routes(config, store, health)
    app.router.add_get("/healthz", routes.healthz)
    app.router.add_get("/readyz", routes.readyz)
    app.router.add_get("/metrics", routes.metrics)
    app.router.add_get("/api/status.json", routes.status_json)
    app.router.add_get("/api/events.json", routes.events_json)
    app.router.add_get("/", routes.dashboard)
    if config.hooks.enabled:  # never an unauthenticated inbound endpoint
        app.router.add_routes(StatuspageHooks(config, store).routes())
    return app


@web.middleware
async def _store_unavailable(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A read while Redis is away is a 503 that says so, not a 500 with a traceback."""
    try:
        return await handler(request)
    except StoreUnavailable as exc:
        log.warning("a request needed the store, which is unreachable", path=request.path)
        return web.json_response({"error": "store unreachable", "detail": str(exc)}, status=503)


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

    async def dashboard(self, request: web.Request) -> web.Response:
        page = resources.files("bot").joinpath("web/dashboard.html").read_text(encoding="utf-8")
        return web.Response(text=page, content_type="text/html")


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
        "incident": row.incident.model_dump(mode="json") if row.incident else None,
        "components": [
            {
                "id": c.component,
                "name": c.display_name,
                "status": c.status.value,
                "confirmed": c.confirmed,
                "since": c.since.isoformat(),
                "detail": c.detail,
            }
            for c in row.components
        ],
    }


def _event_json(event: Event) -> dict[str, Any]:
    data: dict[str, Any] = event.model_dump(mode="json", by_alias=True)
    return data


async def start_server(app: web.Application, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
