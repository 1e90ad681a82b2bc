"""Fan-out: one outage to 1,000 Slack channels and to 1,000 Discord webhooks.

The real path from the store on: the event is written with ``Store.apply`` (as the watcher
writes it), the real dispatcher (``bot/dispatcher.py``) reads it from the ``notifiers``
consumer group, routes it to every target, composes the notice once and sends it through
tocsin's real notifiers: ``SlackNotifier`` (slack-sdk) and the Discord ``WebhookNotifier``
(discord.py webhooks). The targets are the local fakes (``tests/fakes``: FakeSlack and
FakeDiscord, each validating every request against the platform's spec), run in a separate
process so that their work does not share tocsin's event loop (a real Slack is on another
machine). Stores: a real ``redis-server`` the script starts (``tests/redis_server``), and
the embedded store.

Reported per row: the time from the event's write until the last target *has* its notice
(the fakes' own arrival clock: ``time.monotonic`` is the same clock in both processes), the
time until the dispatcher has recorded every delivery, and deliveries per second. Every run
starts with fresh notifiers (cold connections, as for the first outage in a while).

    python bench/fanout.py --channels 1000 --webhooks 1000 --repeat 3
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.figures import machine
from bot.dispatcher import Dispatcher, DispatcherSettings
from bot.logs import configure
from bot.models import ComponentState, Event, StateUpdate, Status, utcnow
from bot.notice_context import NoticeContext
from bot.notifier import Target
from bot.store import NOTIFIERS_GROUP, MemoryStore, RedisStore, Store
from config.loader import build_config
from handlers import build_targets

PROVIDER = "anthropic"
COMPONENT = "k8w3r06qmzrp"  # Claude API, as in the catalog


class LogTally(io.TextIOBase):
    """tocsin's log output, counted by message instead of printed (a thousand identical
    warnings say one thing)."""

    _STAMP = re.compile(r"^\S+\s+\[\s*(\w+)\s*\]\s+")

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()

    def write(self, text: str) -> int:
        for line in text.splitlines():
            if line.strip():
                self.counts[" ".join(self._STAMP.sub(r"\1: ", line).split())] += 1
        return len(text)

    def isatty(self) -> bool:
        return False

    def take(self) -> Counter[str]:
        counts, self.counts = self.counts, Counter()
        return counts


# --------------------------------------------------------------------- the fakes' process


async def serve_fakes(channels: int, webhooks: int) -> None:
    """FakeSlack and FakeDiscord with the channels and webhooks, plus a small control
    endpoint that says what arrived since a given moment. Runs until stdin closes."""
    from tests.fakes.discord import FakeDiscord
    from tests.fakes.slack import FakeSlack

    slack = await FakeSlack().start()
    slack_ids = [f"C{n:08d}" for n in range(channels)]
    for channel in slack_ids:
        slack.add_channel(channel, channel.lower())
    discord = await FakeDiscord().start()
    guild = discord.add_guild(name="bench")
    hooks: list[str] = []
    for n in range(webhooks):
        hook_channel = discord.add_channel(guild.id, name=f"alerts-{n}")
        hooks.append(discord.add_webhook(hook_channel.id))

    async def stats(request: web.Request) -> web.Response:
        since = float(request.query.get("since", "0"))
        slack_new = [m for c in slack_ids for m in slack.top_level(c) if m.at >= since and m.bot_id]
        discord_new = [m for m in discord.all_messages.values() if m.webhook_id and m.at >= since]
        return web.json_response(
            {
                "slack": {
                    "messages": len(slack_new),
                    "targets": len({m.channel for m in slack_new}),
                    "first": min((m.at for m in slack_new), default=None),
                    "last": max((m.at for m in slack_new), default=None),
                    "violations": len(slack.violations),
                },
                "discord": {
                    "messages": len(discord_new),
                    "targets": len({m.webhook_id for m in discord_new}),
                    "first": min((m.at for m in discord_new), default=None),
                    "last": max((m.at for m in discord_new), default=None),
                    "violations": len(discord.violations),
                },
            }
        )

    app = web.Application()
    app.router.add_get("/stats", stats)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    control = f"http://127.0.0.1:{runner.addresses[0][1]}"
    print(
        json.dumps(
            {
                "control": control,
                "slack_api": slack.api_url,
                "slack_token": slack.bot_token,
                "slack_channels": slack_ids,
                "discord_api": discord.api_url,
                "discord_webhooks": hooks,
            }
        ),
        flush=True,
    )
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, done.set)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    closed = asyncio.create_task(reader.read())
    waiting = asyncio.create_task(done.wait())
    await asyncio.wait([closed, waiting], return_when=asyncio.FIRST_COMPLETED)
    closed.cancel()
    waiting.cancel()
    await runner.cleanup()
    await slack.close()
    await discord.close()


class Fakes:
    """The fakes' process, seen from here."""

    def __init__(self, channels: int, webhooks: int) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--serve-fakes",
                "--channels",
                str(channels),
                "--webhooks",
                str(webhooks),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            self.stop()
            raise SystemExit("the fakes' process did not start (see its output above)")
        self.info: dict[str, Any] = json.loads(line)

    def stop(self) -> None:
        if self.process.poll() is None:
            if self.process.stdin is not None:
                self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# ----------------------------------------------------------------------------- one run


@dataclass
class Result:
    store: str
    platform: str
    targets: int
    to_last_notice: float  # event written → the last target has its notice
    to_recorded: float  # event written → the dispatcher recorded every delivery
    first_notice: float
    logs: Counter[str] = field(default_factory=Counter)


def _config(fakes: Fakes, which: str) -> dict[str, Any]:
    info = fakes.info
    document: dict[str, Any] = {
        "console": {"enabled": False},
        "server": {"enabled": False},
        "providers": [{"id": PROVIDER}],
    }
    if which in ("slack", "both"):
        document["slack"] = {
            "api_url": info["slack_api"],
            "bot_token": info["slack_token"],
            "channels": [{"id": c} for c in info["slack_channels"]],
        }
    if which in ("discord", "both"):
        document["discord"] = {
            "api_url": info["discord_api"],
            "webhooks": [{"url": u} for u in info["discord_webhooks"]],
        }
    return document


def _outage() -> StateUpdate:
    now = utcnow()
    state = ComponentState(
        provider=PROVIDER,
        component=COMPONENT,
        name="Claude API",
        status=Status.MAJOR_OUTAGE,
        last_known=Status.MAJOR_OUTAGE,
        since=now,
    )
    event = Event(
        type="state_changed",
        provider=PROVIDER,
        component=COMPONENT,
        from_=Status.OPERATIONAL,
        to=Status.MAJOR_OUTAGE,
        source=f"{PROVIDER}:probe",
        detail="HTTP 529",
        provider_name="Anthropic (Claude)",
        component_name="Claude API",
        episode=f"{PROVIDER}:bench:{time.monotonic_ns()}",
        episode_started=now,
        provider_status=Status.MAJOR_OUTAGE,
    )
    return StateUpdate(state, event=event, status_changed=True)


async def one_run(
    fakes: Fakes, which: str, store_kind: str, redis_url: str, run: int, tally: LogTally
) -> Result:
    config = build_config(_config(fakes, which))
    tally.take()
    store: Store = (
        RedisStore(redis_url, prefix=f"bench{run}:") if store_kind == "redis" else MemoryStore()
    )
    await store.open()
    await store.ensure_group(NOTIFIERS_GROUP)
    targets: list[Target] = build_targets(config)
    dispatcher = Dispatcher(
        store, targets, NoticeContext(config, store), DispatcherSettings(consumer="bench")
    )
    outcomes: dict[str, int] = {}
    finished = asyncio.Event()
    last_outcome = 0.0

    def seen(event: Event, target: Target, outcome: str) -> None:
        nonlocal last_outcome
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        if sum(outcomes.values()) == len(targets):
            last_outcome = time.monotonic()
            finished.set()

    dispatcher.on_outcome = seen
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop))
    await asyncio.sleep(0.3)  # the dispatcher is waiting on the stream
    started = time.monotonic()
    await store.apply([_outage()])
    try:
        await asyncio.wait_for(finished.wait(), 300)
    finally:
        stop.set()
        await task
        for notifier in {id(t.notifier): t.notifier for t in targets}.values():
            await notifier.close()
        await store.close()
    async with httpx.AsyncClient() as client:
        stats = (await client.get(f"{fakes.info['control']}/stats?since={started}")).json()
    expect = {"slack": 0, "discord": 0}
    for target in targets:
        expect["discord" if target.notifier.kind == "discord-webhook" else "slack"] += 1
    last = 0.0
    first = float("inf")
    for name, count in expect.items():
        got = stats[name]
        if got["messages"] != count or got["targets"] != count or got["violations"]:
            raise SystemExit(f"{name}: expected {count} notices, the fake saw {got} ({outcomes})")
        if count:
            last = max(last, got["last"])
            first = min(first, got["first"])
    if outcomes.get("delivered") != len(targets):
        raise SystemExit(f"not every delivery succeeded: {outcomes}")
    return Result(
        store_kind,
        which,
        len(targets),
        last - started,
        last_outcome - started,
        first - started,
        tally.take(),
    )


async def all_runs(
    args: argparse.Namespace, fakes: Fakes, redis_url: str, tally: LogTally
) -> list[Result]:
    results = []
    run = 0
    for store_kind in args.stores:
        for which in args.platforms:
            for _ in range(args.repeat):
                run += 1
                result = await one_run(fakes, which, store_kind, redis_url, run, tally)
                print(
                    f"  {store_kind:6} {which:8} {result.targets:>5} targets: first notice "
                    f"{result.first_notice:.3f}s, all notices {result.to_last_notice:.3f}s, "
                    f"all recorded {result.to_recorded:.3f}s",
                    flush=True,
                )
                for line, count in result.logs.most_common(3):
                    print(f"      tocsin logged {count} x {line[:150]}")
                results.append(result)
    return results


def report(results: list[Result]) -> None:
    print()
    header = (
        f"{'store':8}{'targets':22}{'runs':>5}{'all notices (median)':>22}"
        f"{'best':>9}{'recorded':>10}{'deliveries/s':>14}"
    )
    print(header)
    rows: dict[tuple[str, str], list[Result]] = {}
    for r in results:
        rows.setdefault((r.store, r.platform), []).append(r)
    names = {
        "slack": "Slack channels",
        "discord": "Discord webhooks",
        "both": "Slack + Discord",
    }
    for (store, which), runs in rows.items():
        median = statistics.median(r.to_last_notice for r in runs)
        best = min(r.to_last_notice for r in runs)
        recorded = statistics.median(r.to_recorded for r in runs)
        label = f"{runs[0].targets} {names[which]}"
        print(
            f"{store:8}{label:22}{len(runs):>5}{median:>21.2f}s{best:>8.2f}s"
            f"{recorded:>9.2f}s{runs[0].targets / median:>14.0f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--channels", type=int, default=1000, help="Slack channels")
    parser.add_argument("--webhooks", type=int, default=1000, help="Discord webhooks")
    parser.add_argument("--repeat", type=int, default=3, help="runs per row")
    parser.add_argument(
        "--stores", nargs="+", choices=["redis", "memory"], default=["redis", "memory"]
    )
    parser.add_argument(
        "--platforms",
        nargs="+",
        choices=["slack", "discord", "both"],
        default=["slack", "discord", "both"],
    )
    parser.add_argument("--serve-fakes", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fakes:
        asyncio.run(serve_fakes(args.channels, args.webhooks))
        return
    tally = LogTally()
    configure("warning", stream=tally)
    print(
        f"fan-out of one outage: {args.channels} Slack channels, {args.webhooks} Discord "
        f"webhooks, {args.repeat} runs per row, stores: {', '.join(args.stores)}"
    )
    print(f"machine: {machine()}")
    print("fakes (FakeSlack, FakeDiscord) in a separate process; tocsin's dispatcher here")
    fakes = Fakes(args.channels, args.webhooks)
    redis = None
    try:
        redis_url = ""
        if "redis" in args.stores:
            from tests.redis_server import RedisServer

            redis = RedisServer(Path(tempfile.mkdtemp(prefix="tocsin-fanout-")), persist=False)
            redis.start()
            redis_url = redis.url
            print(f"redis: {redis.binary} (no persistence), {redis_url}")
        results = asyncio.run(all_runs(args, fakes, redis_url, tally))
    finally:
        if redis is not None:
            redis.stop()
            shutil.rmtree(redis.directory, ignore_errors=True)
        fakes.stop()
    report(results)


if __name__ == "__main__":
    main()
