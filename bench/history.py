"""History at scale (issue 16): Redis memory per provider-day, and the overview page's
server time with 50 providers x 90 days of history.

A real redis-server of its own; the history is folded by the real recorder from a synthetic
stream of events (an outage every few days per provider, each with a few status changes, an
incident and its updates, probes first, the page some minutes later) and latency samples
(one per minute for 24 h, three components per provider). Then:

1. bytes per provider-day: Redis's own ``MEMORY USAGE`` of each provider's day hashes and
   episode hashes, over the days they cover (and the 400 days kept, projected);
2. the overview: ``GET /`` from a real tocsin HTTP server on that store, one client, p50/p95
   of the whole answer (server time: loopback, sequential, so no queueing), and the history
   query alone (``bot.history.queries.overview``) for comparison.

    python bench/history.py --providers 50 --days 90 --requests 50
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.figures import machine, pct
from bot.history.model import LatencySample
from bot.history.queries import overview
from bot.history.recorder import HistoryRecorder, RecorderSettings
from bot.logs import configure
from bot.models import Event, EventIncident, Status, utcnow
from bot.server import Health, build_app, start_server
from bot.store import RedisStore
from config.loader import build_config
from tests.redis_server import RedisServer, free_port

PREFIX = "bench:"


def synthetic_events(provider: str, days: int, now: datetime, rng: random.Random) -> list[Event]:
    """Up ``days`` ago, then an outage every 2 to 6 days: probe first, the page 5 to 20
    minutes later with an incident and two updates, partial or major, back 20 to 180
    minutes after it began."""
    start = now - timedelta(days=days)
    found = [_event(provider, start, Status.OPERATIONAL, None, None, False, "page")]
    at = start + timedelta(days=rng.uniform(1, 4))
    index = 0
    while at < now - timedelta(hours=4):
        index += 1
        episode = f"{provider}:{at:%Y%m%dT%H%M%SZ}:bench{index}"
        worst = rng.choice([Status.PARTIAL_OUTAGE, Status.MAJOR_OUTAGE, Status.DEGRADED])
        page = at + timedelta(minutes=rng.uniform(5, 20))
        back = at + timedelta(minutes=rng.uniform(20, 180))
        incident = f"inc-{provider}-{index}"
        found += [
            _event(provider, at, worst, episode, at, False, "probe"),
            _event(provider, page, worst, episode, at, True, "page", incident, "Investigating."),
            _event(
                provider,
                page + (back - page) / 2,
                worst,
                episode,
                at,
                True,
                "page",
                incident,
                "A fix is being rolled out.",
            ),
            _event(provider, back, Status.OPERATIONAL, episode, at, True, "page", incident),
        ]
        at = back + timedelta(days=rng.uniform(2, 6))
    return found


def _event(
    provider: str,
    at: datetime,
    status: Status,
    episode: str | None,
    started: datetime | None,
    confirmed: bool,
    source: str,
    incident: str | None = None,
    update: str = "",
) -> Event:
    return Event(
        type="state_changed",
        provider=provider,
        component="api",
        to=status,
        at=at,
        source=f"{provider}:{source}",
        confirmed=confirmed,
        episode=episode,
        episode_started=started,
        provider_status=status,
        incident=EventIncident(
            id=incident,
            title=f"Elevated errors ({incident})",
            status="investigating",
            update=update,
        )
        if incident
        else None,
    )


async def fill(store: RedisStore, providers: list[str], days: int, now: datetime) -> int:
    rng = random.Random(7)
    recorder = HistoryRecorder(store, RecorderSettings(instance="bench"))
    await recorder.load()
    count = 0
    for provider in providers:
        for event in synthetic_events(provider, days, now, rng):
            await recorder.fold(event)
            count += 1
        samples = [  # what the sampler writes: one per provider and 5 minutes
            LatencySample(provider, "", now - timedelta(minutes=m), rng.uniform(80, 900))
            for m in range(0, 26 * 60, 5)
        ]
        await store.add_latency(samples)
    return count


async def memory_per_provider_day(
    store: RedisStore, providers: list[str], days: int
) -> tuple[float, float, float]:
    """Bytes per provider-day of the day hashes, of the episode hashes, and of latency
    (which is kept 26 h, whatever the days)."""
    client = store.redis
    day_bytes = episode_bytes = latency_bytes = 0
    for provider in providers:
        for pattern, kind in (
            (f"{PREFIX}days:{provider}:*", "days"),
            (f"{PREFIX}episodes:{provider}:*", "episodes"),
        ):
            async for key in client.scan_iter(match=pattern, count=1000):
                used = int(await client.memory_usage(key) or 0)
                if kind == "days":
                    day_bytes += used
                else:
                    episode_bytes += used
        latency_bytes += int(await client.memory_usage(f"{PREFIX}latency:{provider}") or 0)
    cells = len(providers) * days
    return day_bytes / cells, episode_bytes / cells, latency_bytes / len(providers)


async def time_overview(
    store: RedisStore, providers: list[str], requests: int
) -> tuple[list[float], list[float], int]:
    config = build_config(
        {
            "server": {"host": "127.0.0.1", "port": free_port()},
            "providers": [
                {"id": p, "name": p.title(), "probe": {"url": "http://127.0.0.1:9/"}}
                for p in providers
            ],
        }
    )
    query: list[float] = []
    for _ in range(max(5, requests // 5)):
        started = time.perf_counter()
        await overview(store, config)
        query.append((time.perf_counter() - started) * 1000)
    app = build_app(config, store, Health(store=store))
    runner = await start_server(app, config.server.host, config.server.port)
    page: list[float] = []
    size = 0
    try:
        async with aiohttp.ClientSession() as session:
            url = f"http://{config.server.host}:{config.server.port}/"
            for _ in range(requests):
                started = time.perf_counter()
                async with session.get(url) as answer:
                    body = await answer.read()
                    assert answer.status == 200, answer.status
                page.append((time.perf_counter() - started) * 1000)
                size = len(body)
    finally:
        await runner.cleanup()
    return query, page, size


async def main(arguments: argparse.Namespace) -> None:
    configure("warning", "console")
    providers = [f"provider{n:02d}" for n in range(arguments.providers)]
    with tempfile.TemporaryDirectory() as directory:
        server = RedisServer(Path(directory), persist=False)
        server.start()
        store = RedisStore(server.url, prefix=PREFIX)
        try:
            await store.open()
            now = utcnow()
            started = time.perf_counter()
            folded = await fill(store, providers, arguments.days, now)
            took = time.perf_counter() - started
            per_day, per_episode_day, latency = await memory_per_provider_day(
                store, providers, arguments.days
            )
            query, page, size = await time_overview(store, providers, arguments.requests)
        finally:
            await store.close()
            server.stop()
    print(f"machine: {machine()}")
    print(
        f"history: {arguments.providers} providers x {arguments.days} days, {folded} events "
        f"folded in {took:.1f} s ({folded / took:,.0f} events/s), "
        f"{datetime.now(UTC):%Y-%m-%d}"
    )
    print(
        f"redis memory per provider-day: days {per_day:.0f} B + episodes {per_episode_day:.0f} B "
        f"= {per_day + per_episode_day:.0f} B; 400 days kept: "
        f"{(per_day + per_episode_day) * 400 / 1024:.0f} KiB per provider; latency (26 h at "
        f"one point per 5 min): {latency / 1024:.0f} KiB per provider"
    )
    print(
        f"overview query ({arguments.providers} providers): p50 {pct(query, 0.5):.1f} ms, "
        f"p95 {pct(query, 0.95):.1f} ms"
    )
    print(
        f"GET / ({size / 1024:.0f} KiB of HTML): p50 {pct(page, 0.5):.1f} ms, "
        f"p95 {pct(page, 0.95):.1f} ms over {len(page)} requests"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--providers", type=int, default=50)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--requests", type=int, default=50)
    asyncio.run(main(parser.parse_args()))
