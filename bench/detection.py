"""Detection latency: a local fake provider flips from healthy to failing; how long until the
event is in the store, and until the console notice is out?

Runs the real pipeline (probe source, watcher with apscheduler, tracker, embedded store,
dispatcher, console notifier writing to a buffer) against an aiohttp fake API on loopback, and
prints the median and p95 next to the floor the settings allow:

* naive floor: (failure_threshold - 1) x interval + probe time (a pinger that confirms on its
  regular schedule, flipped right before a check);
* tocsin's expected: the phase until the next check (uniform in [0, interval)) + the
  confirmations at ``confirm_interval`` + probe time.

    python bench/detection.py --interval 1 --trials 20
    python bench/detection.py --mode inference --interval 10 --trials 10

``--mode inference`` probes one model with ``kind: inference`` (the Anthropic Messages format)
against the fake inference API of tests/fakes/inference.py, flipped into a 529
``overloaded_error`` storm; it then measures the CPU one inference probe call costs this
process (the fake runs in a child process, so its work is not counted).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import random
import statistics
import sys
import time
from pathlib import Path

from aiohttp import web
from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.figures import machine, pct
from bot.app import assemble, run
from bot.logs import configure
from bot.models import Event, StateUpdate, Status
from bot.notifier import Target
from bot.store import MemoryStore
from config.loader import build_config
from handlers.console import targets as console_targets
from tests.fakes.inference import KEY, FakeInferenceAPI


class FakeAPI:
    def __init__(self) -> None:
        self.failing = False
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        async def models(request: web.Request) -> web.Response:
            if self.failing:
                return web.json_response({"error": "overloaded"}, status=529)
            return web.json_response({"data": []})

        app = web.Application()
        app.router.add_get("/v1/models", models)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}/v1/models"


class TimedStore(MemoryStore):
    """The embedded store, noting when each event lands (the bench's only instrument)."""

    def __init__(self) -> None:
        super().__init__()
        self.landed: list[tuple[float, Event]] = []

    async def apply(self, updates: list[StateUpdate]) -> list[str]:  # type: ignore[override]
        ids = await super().apply(updates)
        now = time.perf_counter()
        self.landed += [(now, u.event) for u in updates if u.event is not None]
        return ids


MODEL = "claude-haiku-4-5"


class FakeInference:
    """The fake inference API, flipped between healthy and a 529 storm."""

    def __init__(self) -> None:
        self.api = FakeInferenceAPI()

    async def start(self) -> None:
        await self.api.start()

    @property
    def failing(self) -> bool:
        mode = self.api.modes.get(MODEL)
        return mode is not None and mode.behaviour == "overloaded"

    @failing.setter
    def failing(self, value: bool) -> None:
        self.api.set(MODEL, "overloaded" if value else "ok")

    async def close(self) -> None:
        await self.api.close()


def _provider(args: argparse.Namespace, api: FakeAPI | FakeInference) -> dict[str, object]:
    if isinstance(api, FakeInference):
        probe = {
            "kind": "inference",
            "api_url": api.api.url,
            "models": [MODEL],
            "timeout": "2s",
            "auth": {"key": KEY},
        }
        return {"id": "anthropic", "status_page": None, "upstreams": [], "probe": probe}
    return {"id": "fake", "name": "Fake AI", "probe": {"url": api.url, "timeout": "2s"}}


async def trial_loop(args: argparse.Namespace) -> tuple[list[float], list[float], float]:
    api: FakeAPI | FakeInference = FakeInference() if args.mode == "inference" else FakeAPI()
    await api.start()
    key = f"anthropic/{MODEL}" if args.mode == "inference" else "fake/api"
    config = build_config(
        {
            "server": {"enabled": False},
            "watch": {
                "interval": f"{args.interval}s",
                "failure_threshold": args.threshold,
                "success_threshold": 2,
                "jitter": "0s",
                "flap_threshold": 100_000,  # we flip it on purpose: no flap damping here
            },
            "providers": [_provider(args, api)],
        }
    )
    store = TimedStore()
    screen = Console(file=io.StringIO(), width=120)
    runtime = assemble(
        config, "all", store=store, targets=console_targets(config, console=screen), env={}
    )
    assert runtime.dispatcher is not None
    noticed: list[tuple[float, Event]] = []

    async def seen(event: Event, _: Target, outcome: str) -> None:
        if outcome == "delivered":
            noticed.append((time.perf_counter(), event))

    runtime.dispatcher.on_outcome = seen
    stop = asyncio.Event()
    task = asyncio.create_task(run(runtime, stop))
    to_store: list[float] = []
    to_notice: list[float] = []
    probe_ms: list[float] = []
    await asyncio.sleep(args.interval * 2.5)  # settle: healthy and known
    for trial in range(args.trials):
        await asyncio.sleep(random.uniform(0, args.interval))  # a random phase
        flipped = time.perf_counter()
        api.failing = True
        down = await _wait_for(store.landed, noticed, Status.MAJOR_OUTAGE, flipped)
        to_store.append(down[0] - flipped)
        to_notice.append(down[1] - flipped)
        state = (await store.states()).get(key)
        if state and state.latency_ms:
            probe_ms.append(state.latency_ms)
        api.failing = False
        await _wait_for(store.landed, noticed, Status.OPERATIONAL, time.perf_counter())
        event_ms, notice_ms = to_store[-1] * 1000, to_notice[-1] * 1000
        print(f"  trial {trial + 1:>2}: event {event_ms:7.0f} ms, notice {notice_ms:7.0f} ms")
    stop.set()
    await task
    if isinstance(api, FakeInference):
        await api.close()
    else:
        assert api.runner is not None
        await api.runner.cleanup()
    return to_store, to_notice, statistics.median(probe_ms) / 1000 if probe_ms else 0.0


async def _wait_for(
    landed: list[tuple[float, Event]],
    noticed: list[tuple[float, Event]],
    status: Status,
    since: float,
) -> tuple[float, float]:
    while True:
        stored = [
            t for t, e in landed if e.to is status and e.type == "state_changed" and t >= since
        ]
        shown = [
            t for t, e in noticed if e.to is status and e.type == "state_changed" and t >= since
        ]
        if stored and shown:
            return stored[0], shown[0]
        await asyncio.sleep(0.002)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--interval", type=float, default=1.0, help="probe interval in seconds")
    parser.add_argument("--threshold", type=int, default=2, help="failure_threshold")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--mode", choices=["models", "inference"], default="models")
    parser.add_argument("--calls", type=int, default=500, help="inference CPU: calls measured")
    args = parser.parse_args()
    configure("error")
    print(
        f"detection latency ({args.mode} probe): {args.trials} trials, interval "
        f"{args.interval:g}s, failure_threshold {args.threshold}"
    )
    print(f"machine: {machine()}")
    to_store, to_notice, probe = asyncio.run(trial_loop(args))
    confirm = max(0.25, args.interval / 4)
    naive_floor = (args.threshold - 1) * args.interval + probe
    expected = args.interval / 2 + (args.threshold - 1) * confirm + probe
    print()
    print(f"{'':28}{'median':>10}{'p95':>10}")
    for label, values in (
        ("flip → event in store", to_store),
        ("flip → console notice", to_notice),
    ):
        print(f"{label:28}{statistics.median(values):>9.3f}s{pct(values, 0.95):>9.3f}s")
    print()
    print(f"floor the settings allow, naive ((threshold-1) x interval + probe): {naive_floor:.3f}s")
    print(
        f"tocsin's expected median (interval/2 phase + (threshold-1) x confirm_interval "
        f"{confirm:g}s + probe): {expected:.3f}s"
    )
    print(f"median probe time: {probe * 1000:.1f} ms")
    if args.mode == "inference":
        cpu_ms, stream_ms = asyncio.run(inference_cpu(args.calls))
        print(
            f"CPU per inference probe call (this process): {cpu_ms:.2f} ms plain, "
            f"{stream_ms:.2f} ms streamed ({args.calls} calls each)"
        )


CHILD = """
import asyncio, sys
sys.path.insert(0, {root!r})
from tests.fakes.inference import FakeInferenceAPI
async def main():
    api = await FakeInferenceAPI().start()
    print(api.url, flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""


async def inference_cpu(calls: int) -> tuple[float, float]:
    """CPU time of this process per inference probe call (plain and streamed), against the
    fake served by a child process."""
    import subprocess

    import httpx

    from bot.sources import build_sources

    root = str(Path(__file__).resolve().parent.parent)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD.format(root=root)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        url = child.stdout.readline().strip()
        figures = []
        for stream in (False, True):
            probe = {
                "kind": "inference",
                "api_url": url,
                "models": [MODEL],
                "auth": {"key": KEY},
                "stream": stream,
            }
            entry = {"id": "anthropic", "status_page": None, "upstreams": [], "probe": probe}
            config = build_config({"providers": [entry]})
            [source] = build_sources(config, {}).sources
            async with httpx.AsyncClient() as client:
                for _ in range(20):  # warm: connections, imports, caches
                    await source.check(client)
                started = time.process_time()
                for _ in range(calls):
                    await source.check(client)
                figures.append((time.process_time() - started) * 1000 / calls)
        return figures[0], figures[1]
    finally:
        child.terminate()
        child.wait()


if __name__ == "__main__":
    main()
