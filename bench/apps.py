"""What apps pay for acting on tocsin, and what they get, side by side in one run:

1. the per-call overhead the LiteLLM callback and routing hook add (p50/p99, µs);
2. ingest throughput of ``POST /api/v1/signals`` (signals/s) into a real ``tocsin run --role
   all`` process (embedded store: the figure is the server's single core);
3. ``GET /api/v1/route/chat`` p50/p99 at 1, 10 and 100 concurrent clients against it;
4. a real LiteLLM Router between deployments A and B (the fake inference API, OpenAI
   dialect) with the hook and tocsin in this loop: from A's first failing call (529) to
   (a) the Slack notice (local fake Slack) and (b) the first call routed to B.

    python bench/apps.py
"""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # before litellm is imported
os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "integrations" / "litellm"))  # after ROOT: its tests/ is not ours

import litellm
from bench_overhead import measure
from tocsin_litellm import TocsinLiteLLM

from bench.figures import machine, pct
from bot.app import assemble, run
from bot.logs import configure
from bot.store import MemoryStore
from config.loader import build_config
from tests.fakes.inference import KEY, FakeInferenceAPI
from tests.fakes.slack import FakeSlack
from tests.redis_server import free_port

TOKEN = "bench-signal-token-1f2e3d4c5b"
CHANNEL = "C0ALL00001"


def tocsin_config(port: int, slack: FakeSlack | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": port},
        "console": {"enabled": False},
        "log": {"level": "warning"},
        "watch": {"jitter": "0s"},
        "upstreams": [],
        "providers": [
            {
                "id": "openai",
                "status_page": None,
                "probe": {"url": "http://127.0.0.1:9/v1/models", "enabled": False},
            }
        ],
        "signals": {
            "tokens": [{"name": "bench", "token": TOKEN}],
            "window": "10s",
            "min_calls": 5,
            "interval": "300ms",
            "rate": 10_000,
        },
        "routes": {"chat": ["openai/model-a", "openai/model-b"]},
    }
    if slack is not None:
        doc["slack"] = {
            "api_url": slack.api_url,
            "bot_token": slack.bot_token,
            "app_token": slack.app_token,
            "channels": [{"id": CHANNEL, "providers": "all", "min_status": "degraded"}],
        }
    return doc


async def overhead() -> dict[str, float]:
    # nothing listens on port 9: the sender's failures happen off the measured path
    hook = TocsinLiteLLM(url="http://127.0.0.1:9", token=TOKEN, app="bench", max_queue=10**7)
    hook.start()
    try:
        await measure(hook, 2_000)  # warm-up
        return await measure(hook, 20_000)
    finally:
        await hook.aclose()


async def served(port: int) -> subprocess.Popen[bytes]:
    path = Path(tempfile.mkdtemp()) / "tocsin.yaml"
    path.write_text(yaml.safe_dump(tocsin_config(port)))
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "tocsin"), "run", "--config", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    async with httpx.AsyncClient() as client:
        for _ in range(200):
            try:
                if (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                    return proc
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit("tocsin did not start")


async def ingest(url: str, batches: int, size: int, concurrency: int) -> float:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    body = {
        "app": "bench",
        "signals": [
            {
                "provider": "openai",
                "model": "model-b",
                "ok": True,
                "status": 200,
                "latency_ms": 300.0,
                "at": now,
            }
            for _ in range(size)
        ],
    }
    headers = {"Authorization": f"Bearer {TOKEN}"}
    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(timeout=30) as client:

        async def one() -> None:
            async with sem:
                r = await client.post(url + "/api/v1/signals", json=body, headers=headers)
                assert r.status_code == 202, r.text

        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(batches)))
        return batches * size / (time.perf_counter() - started)


async def route_latency(url: str, clients: int, requests: int) -> tuple[float, float]:
    """aiohttp as the client: under 100 concurrent requests from one process, httpx's own pool
    cost seconds at p99 here and hid the server's figure."""
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        times: list[float] = []

        async def worker(count: int) -> None:
            for _ in range(count):
                t0 = time.perf_counter()
                async with session.get(url + "/api/v1/route/chat") as response:
                    await response.read()
                    assert response.status == 200
                times.append(time.perf_counter() - t0)

        await asyncio.gather(*(worker(requests // clients) for _ in range(clients)))
    return pct(times, 0.5) * 1000, pct(times, 0.99) * 1000


async def detection() -> tuple[float, float, int]:
    api = await FakeInferenceAPI().start()
    slack = await FakeSlack().start()
    slack.add_channel(CHANNEL, "ai-incidents")
    port = free_port()
    runtime = assemble(build_config(tocsin_config(port, slack)), "all", store=MemoryStore(), env={})
    stop = asyncio.Event()
    task = asyncio.create_task(run(runtime, stop))
    hook = TocsinLiteLLM(
        url=f"http://127.0.0.1:{port}", token=TOKEN, app="bench", flush_interval=0.05
    )
    litellm.callbacks = [hook]
    hook.start()
    deployments = [
        {
            "model_name": "chat",
            "litellm_params": {"model": f"openai/{m}", "api_base": api.url + "/v1", "api_key": KEY},
        }
        for m in ("model-a", "model-b")
    ]
    router = litellm.Router(model_list=deployments, num_retries=0, disable_cooldowns=True)
    try:
        while not hook.routes.fresh():
            await call(router)
            await asyncio.sleep(0.05)
        api.set("model-a", "status", code=529)
        first_fail: float | None = None
        routed = notice = None
        failed = 0
        while routed is None or notice is None:
            before = api.count("model-b")
            ok = await call(router)
            now = time.perf_counter()
            if not ok:
                failed += 1
                first_fail = first_fail or now
            if (
                first_fail
                and routed is None
                and "openai/model-a" in hook.routes.unhealthy
                and api.count("model-b") > before
            ):
                routed = now - first_fail
            if first_fail and notice is None and slack.top_level(CHANNEL):
                notice = now - first_fail
            await asyncio.sleep(0.05)  # an app making about 20 calls a second
        return notice, routed, failed
    finally:
        await hook.aclose()
        litellm.callbacks = []
        stop.set()
        await task
        await slack.close()
        await api.close()


async def call(router: litellm.Router) -> bool:
    try:
        await router.acompletion(model="chat", messages=[{"role": "user", "content": "hi"}])
        return True
    except Exception:
        return False


async def main(args: argparse.Namespace) -> None:
    configure("error")
    print(f"machine: {machine()}")
    cost = await overhead()
    print("\nper-call overhead of the LiteLLM hooks (µs)      p50      p99")
    for name, key in (
        ("success report", "report"),
        ("failure report", "failure"),
        ("route filter", "route"),
    ):
        print(f"  {name:42}{cost[key + '_p50_us']:>8.2f} {cost[key + '_p99_us']:>8.2f}")
    port = free_port()
    proc = await served(port)
    url = f"http://127.0.0.1:{port}"
    try:
        rate = await ingest(url, args.batches, 1000, 8)
        print(f"\ningest: {rate:,.0f} signals/s ({args.batches} batches of 1,000, 8 at a time)")
        print("\nGET /api/v1/route/chat              p50 ms   p99 ms")
        for clients in (1, 10, 100):
            p50, p99 = await route_latency(url, clients, args.requests)
            print(f"  {clients:>3} concurrent clients          {p50:>7.2f}  {p99:>7.2f}")
    finally:
        proc.terminate()
        proc.wait()
    notice, routed, failed = await detection()
    print("\nA answers 529 (an app making ~20 calls/s through LiteLLM):")
    print(f"  first failing call → Slack notice:           {notice:6.2f} s")
    print(f"  first failing call → first call routed to B: {routed:6.2f} s ({failed} calls failed)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--requests", type=int, default=3000)
    asyncio.run(main(parser.parse_args()))
