"""Slack command latency under load, and the fan-out of one outage to many channels.

1. ``/status``, ``/status <provider>`` and ``/fallback <provider>`` through Slack's HTTP mode:
   correctly signed requests from 1, 10 and 50 concurrent clients (closed loop: each sends
   its next when its last is answered) to a real ``tocsin run --role bot`` process (aiohttp
   server, slack-bolt app, Redis store holding the whole catalog); p50/p95/p99 per command.
   Then ``/status`` open loop: ``--rate`` requests/s at fixed times over ``--connections``
   connections, each latency from its *scheduled* time, so a stalled server (or client)
   shows as queueing instead of hiding it (coordinated omission). The client is aiohttp:
   httpx under 50 concurrent requests from one process costs hundreds of ms at p99 itself.
   Client and server share the machine (its cores are printed).
2. One outage notice fanned out to N Slack channels through the real dispatcher and
   SlackNotifier (slack-sdk) against the local fake Slack: time until every channel has it.

    python bench/commands.py --clients 1 10 50 --requests 3000 --rate 200 --seconds 15 \
        --connections 50 --channels 1000
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
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


Results = dict[str, dict[str, list[float]]]


async def command_load(args: argparse.Namespace, redis_url: str) -> Results:
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


async def _load(args: argparse.Namespace, base: str) -> Results:
    url = f"{base}/slack/events"
    results: Results = {}
    most = max([*args.clients, args.connections])
    connector = aiohttp.TCPConnector(limit=most)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=30)
    ) as session:
        for _ in range(400):
            try:
                async with session.get(f"{base}/healthz") as response:
                    if response.status < 500:
                        break
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
        for _ in range(20):  # warm up
            for command, text in COMMANDS:
                await _ask(session, url, command, text)
        for clients in args.clients:
            latencies: dict[str, list[float]] = {f"{c} {t}".strip(): [] for c, t in COMMANDS}
            queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
            for i in range(args.requests):
                queue.put_nowait(COMMANDS[i % len(COMMANDS)])
            started = time.perf_counter()
            await asyncio.gather(*(_worker(session, url, queue, latencies) for _ in range(clients)))
            elapsed = time.perf_counter() - started
            print(
                f"{args.requests} commands, {clients} concurrent clients: {elapsed:.2f}s "
                f"({args.requests / elapsed:.0f}/s)"
            )
            results[f"{clients} clients"] = latencies
        if args.rate:
            name = f"{args.rate}/s open loop, {args.connections} conns"
            results[name] = {"/status": await _open_loop(session, url, args)}
    return results


async def _open_loop(
    session: aiohttp.ClientSession, url: str, args: argparse.Namespace
) -> list[float]:
    """``/status`` at fixed times (``--rate`` per second for ``--seconds``), at most
    ``--connections`` in flight; a request that waits for a connection waits on the clock."""
    total = args.rate * args.seconds
    gate = asyncio.Semaphore(args.connections)
    latencies: list[float] = []
    late: list[float] = []
    start = time.perf_counter() + 0.1

    async def one(scheduled: float) -> None:
        async with gate:
            late.append(time.perf_counter() - scheduled)
            await _ask(session, url, "/status", "")
        latencies.append(time.perf_counter() - scheduled)

    tasks = []
    for n in range(total):
        scheduled = start + n / args.rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(scheduled)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    print(
        f"{total} /status at {args.rate}/s over {args.connections} connections: done in "
        f"{elapsed:.2f}s ({total / elapsed:.0f}/s); sent late by p99 "
        f"{pct(late, 0.99) * 1000:.1f}ms (client side)"
    )
    return latencies


async def _worker(
    session: aiohttp.ClientSession,
    url: str,
    queue: asyncio.Queue[tuple[str, str]],
    latencies: dict[str, list[float]],
) -> None:
    while not queue.empty():
        command, text = queue.get_nowait()
        started = time.perf_counter()
        await _ask(session, url, command, text)
        latencies[f"{command} {text}".strip()].append(time.perf_counter() - started)


async def _ask(session: aiohttp.ClientSession, url: str, command: str, text: str) -> None:
    body = slash_command_body(command, text)
    headers = {**signed_request(SECRET, body), "Content-Type": "application/x-www-form-urlencoded"}
    async with session.post(url, data=body, headers=headers) as response:
        answer = await response.read()
        if response.status != 200:
            raise SystemExit(f"{command} {text}: HTTP {response.status} {answer[:200]!r}")


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


def _row(name: str, values: list[float]) -> str:
    shown = "".join(f"{pct(values, q) * 1000:>8.1f}ms" for q in (0.5, 0.95, 0.99))
    return f"{name:36}{len(values):>7}{shown}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rate", type=int, default=200, help="open-loop /status per second")
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=50)
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
    for run, latencies in results.items():
        print(f"\n{'HTTP mode, ' + run:36}{'n':>7}{'p50':>10}{'p95':>10}{'p99':>10}")
        for name, values in latencies.items():
            print(_row(name, values))
        if len(latencies) > 1:
            print(_row("all", [v for values in latencies.values() for v in values]))
    if not args.channels:
        return
    elapsed, delivered = asyncio.run(fan_out(args))
    print(
        f"\nfan-out: one outage to {delivered} Slack channels in {elapsed:.2f}s "
        f"({delivered / elapsed:.0f} channels/s, against the local fake Slack)"
    )


if __name__ == "__main__":
    main()
