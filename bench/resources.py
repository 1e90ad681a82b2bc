"""Resources: CPU and memory of a real ``tocsin run`` watching 500 sources every 10 s.

A real ``tocsin run --config FILE`` process watches N status pages (kind ``statuspage``, each
serving a real captured ``summary.json`` from ``tests/fixtures``) and M probes (``GET
/v1/models`` with a bearer key), all on 127.0.0.1, every ``--interval`` seconds. The fake
status server (``tests/fakes/status_server.FakeStatusServer``) runs in a separate process, so
its CPU is not tocsin's. After a warm-up, over ``--seconds``:

* CPU seconds (user + system, ``/proc/<pid>/stat``) and the CPU % of one core they make;
* peak RSS (``VmHWM`` in ``/proc/<pid>/status``: the whole life of the process, start-up
  included) and RSS at the end (``VmRSS``);
* checks done, from ``/metrics`` on tocsin's server port: source checks (the count of
  ``tocsin_check_latency_seconds``, one per page read or probe call, with their mean time) and
  ``tocsin_checks_total`` by result (one per check, by the worst status it saw);
* how evenly the checks are spread: the busiest second at the fake server;
* for context, the CPU of redis-server (Redis row) and of the fake server.

Rows: the embedded store and a real ``redis-server`` the script starts; for each size
(``--sizes``, sources in all) and mix (``--mixes``: ``pages``, ``probes``, ``half``), and with
``--baseline REV`` the same run of that commit's tocsin beside this one (a ``git worktree`` of
REV in /tmp, run by this venv's Python with ``PYTHONPATH`` pointing at it: the script checks
that the baseline imports its ``bot`` from the worktree), then the two side by side with the
ratio of CPU per check (CPU seconds / source checks). The probes share ``--keys`` API keys
(each key is a secret the log scrubber learns at start-up, and learning them is quadratic:
5,000 distinct keys would take hours to start).

    python bench/resources.py --pages 250 --probes 250 --interval 10 --seconds 120
    python bench/resources.py --sizes 500 5000 --mixes pages probes half --baseline HEAD~1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.figures import machine
from tests.redis_server import RedisServer, free_port

ROOT = Path(__file__).resolve().parent.parent
TOCSIN = Path(sys.executable).parent / "tocsin"
PAGE_FIXTURE = "statuspage_summary_anthropic_operational.json"
TICK = os.sysconf("SC_CLK_TCK")


# -------------------------------------------------------------------- /proc readings


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime (fields 14 and 15)


def memory_kib(pid: int, key: str) -> int:
    """``VmHWM``, ``VmRSS``... from ``/proc/<pid>/status``, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    raise KeyError(key)


# ---------------------------------------------------------------- the fake's process


async def serve(pages: int, probes: int, etag: bool) -> None:
    """The fake status server with every page and probe route; prints its port, runs until
    stdin closes or SIGTERM."""
    from aiohttp import web

    from tests.fakes.status_server import FakeStatusServer, Route

    server = FakeStatusServer()
    for n in range(pages):
        server.set_fixture(f"/pages/{n}/api/v2/summary.json", PAGE_FIXTURE, etag=etag)
    for n in range(probes):
        server.set_json(f"/probes/{n}/v1/models", {"object": "list", "data": []})

    async def stats(request: web.Request) -> web.Response:
        since, until = float(request.query["since"]), float(request.query["until"])
        seconds: dict[int, int] = {}
        for seen in server.requests:
            if since <= seen.at < until and seen.path != "/_stats":
                slot = int(seen.at - since)
                seconds[slot] = seconds.get(slot, 0) + 1
        return web.json_response(
            {"requests": sum(seconds.values()), "busiest_second": max(seconds.values(), default=0)}
        )

    server.routes["/_stats"] = Route(behaviour=stats)
    await server.start()
    print(json.dumps({"url": server.url}), flush=True)
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
    server.requests.clear()
    await server.close()


class FakeServer:
    def __init__(self, args: argparse.Namespace) -> None:
        command = [
            sys.executable,
            __file__,
            "--serve",
            "--pages",
            str(args.pages),
            "--probes",
            str(args.probes),
        ]
        if args.etag:
            command.append("--etag")
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            self.stop()
            raise SystemExit("the fake status server did not start")
        self.url: str = json.loads(line)["url"]

    def stop(self) -> None:
        if self.process.poll() is None:
            if self.process.stdin is not None:
                self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# ----------------------------------------------------------------------------- tocsin


@dataclass(frozen=True)
class Code:
    """Which tocsin runs: this tree's (``root`` None) or a worktree of an earlier commit."""

    label: str
    root: Path | None = None

    def command(self) -> list[str]:
        if self.root is None:
            return [str(TOCSIN)]
        return [
            sys.executable,
            "-c",
            "import sys; from bot.cli import app; sys.argv[0] = 'tocsin'; app()",
        ]

    def env(self) -> dict[str, str]:
        env = {**os.environ, "TOCSIN_INSTANCE": "bench"}
        if self.root is not None:
            env["PYTHONPATH"] = str(self.root)
        return env


def baseline(rev: str) -> Code:
    """A worktree of ``rev`` (made once, under /tmp), checked to be what the baseline imports."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", rev], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()
    tree = Path(tempfile.gettempdir()) / f"tocsin-baseline-{commit}"
    if not tree.exists():
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(tree), commit],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
    code = Code(f"base {commit}", tree)
    found = subprocess.run(
        [sys.executable, "-c", "import bot; print(bot.__file__)"],
        env=code.env(),
        cwd=tempfile.gettempdir(),
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    if not found.startswith(str(tree)):
        raise SystemExit(f"the baseline would import {found}, not {tree}")
    print(f"baseline: {rev} = {commit} in {tree} (imports {found})")
    return code


def tocsin_config(args: argparse.Namespace, fake: str, port: int, redis_url: str | None) -> Any:
    interval = f"{args.interval:g}s"
    providers: list[dict[str, Any]] = []
    for n in range(args.pages):
        providers.append(
            {
                "id": f"page-{n:04d}",
                "name": f"Page {n}",
                "status_page": {
                    "kind": "statuspage",
                    "url": f"{fake}/pages/{n}",
                    "interval": interval,
                },
            }
        )
    for n in range(args.probes):
        providers.append(
            {
                "id": f"probe-{n:04d}",
                "name": f"Probe {n}",
                "probe": {
                    "url": f"{fake}/probes/{n}/v1/models",
                    "interval": interval,
                    "auth": {
                        "kind": "bearer",
                        "key": f"bench-key-{n % max(1, args.keys):04d}-0123456789",
                    },
                },
            }
        )
    document: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": port},
        "watch": {"interval": interval, "page_interval": interval},
        "console": {"enabled": False},
        "log": {"level": "warning"},
        "providers": providers,
    }
    if redis_url:
        document["store"] = {"url": redis_url, "prefix": "bench:"}
    return document


@dataclass
class Scrape:
    observations: dict[str, float]  # tocsin_checks_total by result
    checks: dict[str, float]  # tocsin_check_latency_seconds_count by source kind
    latency_sum: float

    def minus(self, before: Scrape) -> Scrape:
        def sub(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
            return {k: v - b.get(k, 0.0) for k, v in a.items() if v - b.get(k, 0.0)}

        return Scrape(
            sub(self.observations, before.observations),
            sub(self.checks, before.checks),
            self.latency_sum - before.latency_sum,
        )


def scrape(text: str) -> Scrape:
    """From /metrics: observations by result, source checks by kind, total check time."""
    found = Scrape({}, {}, 0.0)
    for line in text.splitlines():
        value = line.rsplit(" ", 1)[-1]
        if line.startswith("tocsin_checks_total{"):
            match = re.search(r'result="([^"]*)"', line)
            key = match.group(1) if match else "?"
            found.observations[key] = found.observations.get(key, 0.0) + float(value)
        elif line.startswith("tocsin_check_latency_seconds_count"):
            match = re.search(r'source_kind="([^"]*)"', line)
            key = match.group(1) if match else "?"
            found.checks[key] = found.checks.get(key, 0.0) + float(value)
        elif line.startswith("tocsin_check_latency_seconds_sum"):
            found.latency_sum += float(value)
    return found


def get(url: str) -> httpx.Response:
    return httpx.get(url, timeout=10)


@dataclass
class Row:
    store: str
    code: str
    pages: int
    probes: int
    seconds: float
    cpu: float
    peak_rss_kib: int
    end_rss_kib: int
    metrics: Scrape
    busiest_second: int
    redis_cpu: float | None
    fake_cpu: float
    startup: float


def measure(
    args: argparse.Namespace,
    fake: FakeServer,
    store: str,
    redis: RedisServer | None,
    code: Code = Code("this"),
) -> Row:
    """One row: one ``tocsin run`` (a single leader), or with ``store == "shards"``
    ``args.shards`` watcher replicas with ``watch.sharding: on`` on one redis-server, their
    CPU, checks and memory summed (the peak RSS is the largest replica's)."""
    sharded = store == "shards"
    count = args.shards if sharded else 1
    redis_url = redis.url if redis else None
    scratch = Path(tempfile.mkdtemp(prefix="tocsin-resources-"))
    ports = [free_port() for _ in range(count)]
    processes: list[subprocess.Popen[bytes]] = []
    logs: list[IO[bytes]] = []
    for index, port in enumerate(ports):
        document = tocsin_config(args, fake.url, port, redis_url)
        command = [*code.command(), "run"]
        if sharded:
            document["watch"]["sharding"] = True
            document["instance"] = f"shard-{index}"
            command += ["--role", "watcher"]
        config = scratch / f"tocsin-{index}.yaml"
        config.write_text(yaml.safe_dump(document))
        log = (scratch / f"tocsin-{index}.log").open("wb")
        logs.append(log)
        processes.append(
            subprocess.Popen(
                [*command, "--config", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=scratch,
                env=code.env(),
            )
        )
    launched = time.monotonic()
    label = f"{count} shards" if sharded else store
    store = f"{label} {code.label} {args.pages}p+{args.probes}q"
    bases = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        _wait_watching(args, processes, bases, scratch, count if sharded else 0)
        startup = time.monotonic() - launched
        print(f"  [{store}] watching after {startup:.1f}s; warming up {args.warmup:g}s", flush=True)
        time.sleep(args.warmup)
        before = _scrapes(bases)
        cpu0 = sum(cpu_seconds(p.pid) for p in processes)
        redis0 = cpu_seconds(redis.process.pid) if redis and redis.process else None
        fake0 = cpu_seconds(fake.process.pid)
        t0 = time.monotonic()
        print(f"  [{store}] measuring {args.seconds:g}s", flush=True)
        while time.monotonic() - t0 < args.seconds:
            time.sleep(min(1.0, args.seconds - (time.monotonic() - t0)))
            if any(p.poll() is not None for p in processes):
                raise SystemExit(f"tocsin exited during the run; see {scratch}")
        cpu1 = sum(cpu_seconds(p.pid) for p in processes)
        elapsed = time.monotonic() - t0
        redis1 = cpu_seconds(redis.process.pid) if redis and redis.process else None
        fake1 = cpu_seconds(fake.process.pid)
        peak = max(memory_kib(p.pid, "VmHWM") for p in processes)
        end_rss = sum(memory_kib(p.pid, "VmRSS") for p in processes)
        after = _scrapes(bases)
        t1 = time.monotonic()
        spread = get(f"{fake.url}/_stats?since={t0}&until={t1}").json()
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for log in logs:
            log.close()
    warnings = [
        line
        for path in scratch.glob("tocsin-*.log")
        for line in path.read_text(errors="replace").splitlines()
        if "[warning" in line or "[error" in line
    ]
    if warnings:
        print(f"  [{store}] tocsin logged {len(warnings)} warnings/errors, e.g. {warnings[0]}")
    shutil.rmtree(scratch, ignore_errors=True)
    return Row(
        store=store,
        code=code.label,
        pages=args.pages,
        probes=args.probes,
        seconds=elapsed,
        cpu=cpu1 - cpu0,
        peak_rss_kib=peak,
        end_rss_kib=max(end_rss, 0),
        metrics=after.minus(before),
        busiest_second=int(spread["busiest_second"]),
        redis_cpu=(redis1 - redis0) if redis1 is not None and redis0 is not None else None,
        fake_cpu=fake1 - fake0,
        startup=startup,
    )


def _wait_watching(
    args: argparse.Namespace,
    processes: list[subprocess.Popen[bytes]],
    bases: list[str],
    scratch: Path,
    members: int,
) -> None:
    """Until every replica watches (with shards: sees all the members and owns sources)."""
    deadline = time.monotonic() + args.start_timeout
    while True:
        if any(p.poll() is not None for p in processes):
            raise SystemExit(f"tocsin exited; see the logs in {scratch}")
        ready = 0
        for base in bases:
            try:
                health = get(f"{base}/healthz").json()
            except (httpx.HTTPError, ValueError):
                continue
            shards = health.get("shards") or {}
            if health.get("leader") and (not members or shards.get("members") == members):
                ready += 1
        if ready == len(bases):
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"tocsin did not start watching in time; see {scratch}")
        time.sleep(0.2)


def _scrapes(bases: list[str]) -> Scrape:
    """Every replica's /metrics, summed."""
    total = Scrape({}, {}, 0.0)
    for base in bases:
        one = scrape(get(f"{base}/metrics").text)
        for mine, theirs in ((total.observations, one.observations), (total.checks, one.checks)):
            for key, value in theirs.items():
                mine[key] = mine.get(key, 0.0) + value
        total.latency_sum += one.latency_sum
    return total


def per_check(r: Row) -> float:
    """CPU milliseconds per source check."""
    total = sum(r.metrics.checks.values())
    return 1000 * r.cpu / total if total else float("nan")


def report(args: argparse.Namespace, rows: list[Row]) -> None:
    print()
    print(
        f"{'run':34}{'window':>8}{'CPU s':>8}{'CPU %':>8}{'CPU/check':>11}{'peak RSS':>11}"
        f"{'end RSS':>10}{'checks':>8}{'checks/s':>10}{'expected':>10}{'mean check':>12}"
        f"{'redis CPU %':>13}"
    )
    for r in rows:
        total = sum(r.metrics.checks.values())
        mean = r.metrics.latency_sum / total if total else 0.0
        redis = f"{100 * r.redis_cpu / r.seconds:.1f}" if r.redis_cpu is not None else "-"
        print(
            f"{r.store:34}{r.seconds:>7.0f}s{r.cpu:>8.1f}{100 * r.cpu / r.seconds:>7.1f}%"
            f"{per_check(r):>8.2f} ms"
            f"{r.peak_rss_kib / 1024:>8.0f} MiB{r.end_rss_kib / 1024:>6.0f} MiB"
            f"{total:>8.0f}{total / r.seconds:>10.1f}{(r.pages + r.probes) / args.interval:>10.1f}"
            f"{mean * 1000:>9.1f} ms{redis:>13}"
        )
    bases = [r for r in rows if r.code != "this"]
    if bases:
        print()
        print(
            f"{'side by side':34}{'baseline CPU/check':>20}{'this CPU/check':>16}{'ratio':>8}"
            f"{'baseline RSS':>14}{'this RSS':>10}"
        )
        for b in bases:
            for r in rows:
                if (
                    r.code == "this"
                    and r.store.split()[0] == b.store.split()[0]
                    and (
                        r.pages,
                        r.probes,
                    )
                    == (b.pages, b.probes)
                ):
                    print(
                        f"{r.store.split()[0] + f' {r.pages}p+{r.probes}q':34}"
                        f"{per_check(b):>17.2f} ms{per_check(r):>13.2f} ms"
                        f"{per_check(b) / per_check(r):>7.1f}x"
                        f"{b.peak_rss_kib / 1024:>10.0f} MiB{r.peak_rss_kib / 1024:>6.0f} MiB"
                    )
    print()
    print("checks: source checks (page reads + probe calls); expected: sources / interval")
    for r in rows:
        kinds = ", ".join(f"{k} {v:.0f}" for k, v in sorted(r.metrics.checks.items()))
        results = ", ".join(f"{k} {v:.0f}" for k, v in sorted(r.metrics.observations.items()))
        print(
            f"{r.store}: checks by kind: {kinds}; tocsin_checks_total by "
            f"result: {results}; busiest second at the fake: {r.busiest_second} requests; "
            f"watching {r.startup:.1f}s after launch; the fake server's own CPU "
            f"{100 * r.fake_cpu / r.seconds:.1f}% (not counted)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pages", type=int, default=250, help="statuspage sources")
    parser.add_argument("--probes", type=int, default=250, help="probe sources")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds, every source")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured window")
    parser.add_argument("--warmup", type=float, default=15.0, help="seconds before measuring")
    parser.add_argument(
        "--sizes", type=int, nargs="+", help="sources in all, split by --mixes (over --pages)"
    )
    parser.add_argument("--mixes", nargs="+", choices=["pages", "probes", "half"], default=["half"])
    parser.add_argument("--keys", type=int, default=10, help="distinct API keys the probes use")
    parser.add_argument("--baseline", metavar="REV", help="also run this commit's tocsin")
    parser.add_argument("--start-timeout", type=float, default=300.0, help="seconds")
    parser.add_argument(
        "--stores",
        nargs="+",
        choices=["embedded", "redis", "shards"],
        default=["embedded"],
        help="shards: --shards watcher replicas with watch.sharding on one redis-server",
    )
    parser.add_argument("--shards", type=int, default=2, help="replicas for the shards row")
    parser.add_argument(
        "--etag", action="store_true", help="pages send ETags (tocsin then gets 304s)"
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.pages, args.probes, args.etag))
        return
    print(
        f"resources: tocsin run watching status pages (statuspage, {PAGE_FIXTURE}"
        f"{', with ETag' if args.etag else ', no ETag: a full body each time'}) and probes "
        f"({args.keys} keys), every {args.interval:g}s; warm-up {args.warmup:g}s, window "
        f"{args.seconds:g}s"
    )
    print(f"machine: {machine()}")
    print(f"tocsin: {TOCSIN}; the fake status server runs in its own process")
    codes = [Code("this")]
    if args.baseline:
        codes.insert(0, baseline(args.baseline))
    shapes = [(args.pages, args.probes)]
    if args.sizes:
        shapes = [mix(m, n) for n in args.sizes for m in args.mixes]
    rows = []
    for pages, probes in shapes:
        args.pages, args.probes = pages, probes
        fake = FakeServer(args)
        try:
            for store in args.stores:
                for code in codes:
                    if store == "shards" and code.label != "this":
                        continue  # the baseline has no shards to run
                    rows.append(measure_in(args, fake, store, code))
        finally:
            fake.stop()
    report(args, rows)


def mix(kind: str, sources: int) -> tuple[int, int]:
    """(pages, probes) of ``sources`` in all."""
    if kind == "pages":
        return sources, 0
    if kind == "probes":
        return 0, sources
    return sources // 2, sources - sources // 2


def measure_in(args: argparse.Namespace, fake: FakeServer, store: str, code: Code) -> Row:
    """One row, with a fresh redis-server of its own for the redis store."""
    if store not in ("redis", "shards"):
        return measure(args, fake, store, None, code)
    redis = RedisServer(Path(tempfile.mkdtemp(prefix="tocsin-redis-")), persist=False)
    redis.start()
    print(f"  [redis] {redis.binary} on {redis.url} (no persistence)")
    try:
        return measure(args, fake, store, redis, code)
    finally:
        redis.stop()
        shutil.rmtree(redis.directory, ignore_errors=True)


if __name__ == "__main__":
    main()
