"""``tocsin demo``: a simulated provider goes down, updates and recovers, end to end.

Two pretend providers run on loopback: "Demo AI" (a Statuspage-style status page and an API)
and "Backup AI" (healthy, its fallback). The real pipeline watches them (sources, tracker,
store, dispatcher, console notices), so a newcomer sees in half a minute, with no network and
no keys, exactly what tocsin would post: a suspected outage from the probes, the status page's
confirmation and updates, and the recovery.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from rich.console import Console

from bot.app import assemble, run
from bot.models import Event
from bot.notifier import Target
from bot.store import MemoryStore
from config.loader import build_config
from handlers.console import targets as console_targets

COMPONENT = "demoapi00001"
TIMELINE_SECONDS = 34


@dataclass
class DemoWorld:
    """What the pretend provider shows right now."""

    api_status: int = 200
    component: str = "operational"
    incident: dict[str, Any] | None = None
    resolved: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        now = datetime.now(UTC).isoformat()
        return {
            "page": {"id": "demo", "name": "Demo AI", "url": "http://demo.invalid"},
            "status": {"indicator": "none" if self.incident is None else "major"},
            "components": [
                {"id": COMPONENT, "name": "Demo API", "status": self.component, "updated_at": now}
            ],
            "incidents": [self.incident] if self.incident else [],
            "scheduled_maintenances": [],
        }

    def open_incident(self, status: str, body: str, component: str) -> None:
        now = datetime.now(UTC).isoformat()
        incident = self.incident or {
            "id": "demo-incident-1",
            "name": "Elevated errors on the Demo API",
            "impact": "major",
            "shortlink": "http://demo.invalid/incidents/demo-incident-1",
            "started_at": now,
            "components": [{"id": COMPONENT, "name": "Demo API"}],
            "incident_updates": [],
        }
        updates = incident["incident_updates"]
        updates.insert(
            0,
            {
                "id": f"u{len(updates) + 1}",
                "status": status,
                "body": body,
                "created_at": now,
                "display_at": now,
            },
        )
        incident.update(status=status, updated_at=now)
        self.incident, self.component = incident, component

    def fail_api(self, code: int) -> None:
        self.api_status = code

    def recover_api(self, body: str) -> None:
        self.api_status = 200
        self.open_incident("monitoring", body, "degraded_performance")

    def resolve(self, body: str) -> None:
        if self.incident is None:
            return
        self.open_incident("resolved", body, "operational")
        assert self.incident is not None
        self.resolved.insert(0, self.incident)
        self.incident = None


async def _serve(world: DemoWorld) -> tuple[web.AppRunner, str]:
    async def summary(request: web.Request) -> web.Response:
        return web.json_response(world.summary())

    async def incidents(request: web.Request) -> web.Response:
        return web.json_response({"incidents": world.resolved})

    async def models(request: web.Request) -> web.Response:
        if world.api_status >= 500:
            return web.json_response({"error": "overloaded"}, status=world.api_status)
        return web.json_response({"data": [{"id": "demo-large"}]})

    async def backup(request: web.Request) -> web.Response:
        return web.json_response({"data": [{"id": "backup-large"}]})

    app = web.Application()
    app.router.add_get("/api/v2/summary.json", summary)
    app.router.add_get("/api/v2/incidents.json", incidents)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/backup/v1/models", backup)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


def demo_config(base: str) -> dict[str, Any]:
    return {
        "server": {"enabled": False},
        "watch": {"interval": "1s", "page_interval": "1s", "timeout": "2s", "jitter": "0s"},
        "providers": [
            {
                "id": "demo",
                "name": "Demo AI",
                "status_page": {"kind": "statuspage", "url": base, "components": [COMPONENT]},
                "probe": {"url": f"{base}/v1/models", "timeout": "1s"},
                "fallbacks": ["backup"],
                "status_url": "http://demo.invalid",
            },
            {
                "id": "backup",
                "name": "Backup AI",
                "probe": {"url": f"{base}/backup/v1/models", "timeout": "1s"},
            },
        ],
    }


Step = tuple[float, str, Callable[[DemoWorld], None]]

SCRIPT: list[Step] = [
    (4, "The Demo API starts answering HTTP 503. Probes notice first…", lambda w: w.fail_api(503)),
    (
        10,
        "The status page admits it: an incident is opened (investigating).",
        lambda w: w.open_incident(
            "investigating", "We are investigating elevated errors on the Demo API.", "major_outage"
        ),
    ),
    (
        16,
        "The provider posts an update (identified): it becomes a thread reply.",
        lambda w: w.open_incident(
            "identified",
            "The cause has been identified: a bad deploy is being rolled back.",
            "major_outage",
        ),
    ),
    (
        22,
        "The API answers again; the status page is monitoring (degraded).",
        lambda w: w.recover_api("A fix has been deployed; we are monitoring the results."),
    ),
    (
        28,
        "The provider resolves the incident.",
        lambda w: w.resolve("This incident has been resolved. Error rates are back to normal."),
    ),
]


async def run_demo(console: Console | None = None, *, speed: float = 1.0) -> list[Event]:
    """Play the script through the real pipeline; returns the events that were notified."""
    console = console or Console(highlight=False)
    world = DemoWorld()
    runner, base = await _serve(world)
    config = build_config(demo_config(base), source="demo")
    targets = console_targets(config, console=console)
    runtime = assemble(config, "all", store=MemoryStore(), targets=targets, env={})
    assert runtime.dispatcher is not None
    notified: list[Event] = []
    done = asyncio.Event()

    async def seen(event: Event, _: Target, outcome: str) -> None:
        if outcome == "delivered":
            notified.append(event)
            if event.episode_closed:
                done.set()

    runtime.dispatcher.on_outcome = seen
    stop = asyncio.Event()
    console.print(
        "[bold]tocsin demo[/]: a simulated provider goes down, updates and recovers. "
        "Everything below is the real pipeline (probes, status page, tracker, store, "
        "dispatcher) running on loopback.\n"
    )
    pipeline = asyncio.create_task(run(runtime, stop))
    started = time.monotonic()
    try:
        for at, narration, change in SCRIPT:
            await asyncio.sleep(max(0.0, at / speed - (time.monotonic() - started)))
            console.print(f"[dim]▶ {narration}[/]")
            change(world)
        await asyncio.wait_for(done.wait(), timeout=max(5.0, 20 / speed))
        console.print(
            "\n[bold green]Demo complete.[/] Run [bold]tocsin run[/] to watch real "
            "providers, or see the README to connect Slack and Discord."
        )
    finally:
        stop.set()
        await pipeline
        await runner.cleanup()
    return notified
