"""Slack command latency under load, and the fan-out of one outage to many channels.

1. ``/status``, ``/status <provider>`` and ``/fallback <provider>`` through Slack's HTTP mode:
   correctly signed requests from 1, 10 and 50 concurrent clients to a real ``tocsin run
   --role bot`` process (aiohttp server, slack-bolt app, Redis store holding the whole
   catalog); p50/p99 per command.
2. One outage notice fanned out to N Slack channels through the real dispatcher and
   SlackNotifier (slack-sdk) against the local fake Slack: time until every channel has it.

    python bench/commands.py --clients 1 10 50 --requests 3000 --channels 1000
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.figures import machine, pct
from bot.dispatcher import Dispatcher, DispatcherSettings
from bot.logs import configure
from bot.models import ComponentState, Event, StateUpdate, Status, utcnow
from bot.notice_context import NoticeContext
from bot.notifier import Target
from bot.store import MemoryStore, RedisStore, Store
from config.catalog import load_catalog
from config.loader import build_config
from handlers import build_targets
from tests.fakes.slack import FakeSlack, signed_request, slash_command_body
from tests.redis_server import RedisServer, free_port

SECRET = "bench-signing-secret-0123456789"
COMMANDS = [("/status", ""), ("/status", "anthropic"), ("/fallback", "anthropic")]


async def seed(store: Store, provider_ids: list[str]) -> None:
    """Every catalog provider with a few components, one of them in an outage."""
    updates = []
    for index, provider in enumerate(provider_ids):
        for n in range(3):
            down = provider == "anthropic" and n == 0
            status = Status.MAJOR_OUTAGE if down else Status.OPERATIONAL
            state = ComponentState(
                provider=provider,
                component=f"c{n}",
                name=f"Component {n}",
                status=status,
                last_known=status,
                latency_ms=100.0 + index,
                since=utcnow(),
            )
            updates.append(StateUpdate(state, status_changed=True))
    await store.apply(updates)


async def command_load(
    args: argparse.Namespace, redis_url: str
) -> dict[int, dict[str, list[float]]]:
    """A real ``tocsin run --role bot`` process (HTTP mode, Redis store) under load from
    this one: the server and the load generator do not share a CPU-bound event loop."""
    ids = [entry["id"] for entry in load_catalog().entries]
    store = RedisStore(redis_url, prefix="bench:")
    await seed(store, ids)
    await store.close()
    port = free_port()
    document = {
        "store": {"url": redis_url, "prefix": "bench:"},
        "server": {"port": port},
        "console": {"enabled": False},
        "log": {"level": "error"},
        "providers": [{"id": i} for i in ids],
        "slack": {
            "api_url": "http://127.0.0.1:9/api/",
            "bot_token": "xoxb-bench",
            "signing_secret": SECRET,
        },
    }
    with tempfile.TemporaryDirectory() as scratch:
        config = Path(scratch) / "tocsin.yaml"
        config.write_text(yaml.safe_dump(document))
        tocsin = Path(sys.executable).parent / "tocsin"
        server = subprocess.Popen(
            [str(tocsin), "run", "--role", "bot", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=scratch,
        )
        try:
            return await _load(args, f"http://127.0.0.1:{port}")
        finally:
            server.terminate()
            server.wait(timeout=20)


async def _load(args: argparse.Namespace, base: str) -> dict[int, dict[str, list[float]]]:
    url = f"{base}/slack/events"
    results: dict[int, dict[str, list[float]]] = {}
    limits = httpx.Limits(
        max_connections=max(args.clients), max_keepalive_connections=max(args.clients)
    )
    async with httpx.AsyncClient(limits=limits, timeout=10) as client:
        for _ in range(400):
            try:
                await client.get(f"{base}/healthz")
                break
            except httpx.TransportError:
                await asyncio.sleep(0.05)
        for command, text in COMMANDS:  # warm up
            await _ask(client, url, command, text)
        for clients in args.clients:
            latencies: dict[str, list[float]] = {f"{c} {t}".strip(): [] for c, t in COMMANDS}
            queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
            for i in range(args.requests):
                queue.put_nowait(COMMANDS[i % len(COMMANDS)])
            started = time.perf_counter()
            await asyncio.gather(*(_worker(client, url, queue, latencies) for _ in range(clients)))
            elapsed = time.perf_counter() - started
            print(
                f"{args.requests} commands, {clients} concurrent clients: {elapsed:.2f}s "
                f"({args.requests / elapsed:.0f}/s)"
            )
            results[clients] = latencies
    return results


async def _worker(
    client: httpx.AsyncClient,
    url: str,
    queue: asyncio.Queue[tuple[str, str]],
    latencies: dict[str, list[float]],
) -> None:
    while not queue.empty():
        command, text = queue.get_nowait()
        latencies[f"{command} {text}".strip()].append(await _ask(client, url, command, text))


async def _ask(client: httpx.AsyncClient, url: str, command: str, text: str) -> float:
    body = slash_command_body(command, text)
    headers = {**signed_request(SECRET, body), "Content-Type": "application/x-www-form-urlencoded"}
    started = time.perf_counter()
    response = await client.post(url, content=body, headers=headers)
    took = time.perf_counter() - started
    if response.status_code != 200:
        raise SystemExit(f"{command} {text}: HTTP {response.status_code} {response.text[:200]}")
    return took


async def fan_out(args: argparse.Namespace) -> tuple[float, int]:
    slack = await FakeSlack().start()
    channels = [f"C{n:08d}" for n in range(args.channels)]
    for channel in channels:
        slack.add_channel(channel, channel.lower())
    config = build_config(
        {
            "console": {"enabled": False},
            "providers": [{"id": "anthropic"}],
            "slack": {
                "api_url": slack.api_url,
                "bot_token": slack.bot_token,
                "channels": [{"id": c} for c in channels],
            },
        }
    )
    store = MemoryStore()
    targets: list[Target] = build_targets(config)
    dispatcher = Dispatcher(
        store, targets, NoticeContext(config, store), DispatcherSettings(consumer="bench")
    )
    event = Event(
        type="state_changed",
        provider="anthropic",
        component="k8w3r06qmzrp",
        from_=Status.OPERATIONAL,
        to=Status.MAJOR_OUTAGE,
        provider_status=Status.MAJOR_OUTAGE,
        provider_name="Anthropic (Claude)",
        episode="anthropic:bench",
        episode_started=utcnow(),
    )
    started = time.perf_counter()
    outcomes = await dispatcher.deliver_now(event)
    elapsed = time.perf_counter() - started
    delivered = sum(1 for o in outcomes.values() if o == "delivered")
    posted = sum(len(slack.top_level(c)) for c in channels)
    for notifier in {id(t.notifier): t.notifier for t in targets}.values():
        await notifier.close()
    await slack.close()
    assert posted == delivered == args.channels, (posted, delivered)
    assert not slack.violations
    return elapsed, delivered


def _row(name: str, values: list[float], p50: float) -> str:
    return f"{name:28}{len(values):>7}{p50 * 1000:>8.1f}ms{pct(values, 0.99) * 1000:>8.1f}ms"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--channels", type=int, default=1000)
    args = parser.parse_args()
    configure("error")
    print(f"machine: {machine()}")
    redis = RedisServer(Path(tempfile.mkdtemp()), persist=False)
    redis.start()
    try:
        results = asyncio.run(command_load(args, redis.url))
    finally:
        redis.stop()
    for clients, latencies in results.items():
        print(f"\n{'HTTP mode, ' + str(clients) + ' clients':28}{'n':>7}{'p50':>10}{'p99':>10}")
        for name, values in latencies.items():
            print(_row(name, values, pct(values, 0.5)))
        overall = [v for values in latencies.values() for v in values]
        print(_row("all", overall, statistics.median(overall)))
    elapsed, delivered = asyncio.run(fan_out(args))
    print(
        f"\nfan-out: one outage to {delivered} Slack channels in {elapsed:.2f}s "
        f"({delivered / elapsed:.0f} channels/s, against the local fake Slack)"
    )


if __name__ == "__main__":
    main()
