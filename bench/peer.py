"""Side by side: tocsin against Prometheus + blackbox_exporter + Alertmanager.

The standard open-source way to be told that an HTTP API is down: blackbox_exporter probes
it, Prometheus scrapes the probe and evaluates an alert rule, Alertmanager groups the alert
and posts to Slack. Both watch the same fake provider endpoint (an HTTP server run here:
200, then 503 from the outage's start, then 200 again from its recovery), at the same probe
interval, and both post to local Slack receivers:

* **tocsin**: a real ``tocsin run`` process, one custom provider with a probe at the interval,
  everything else default (``failure_threshold: 2``, ``success_threshold: 2``, confirmation
  after a quarter interval, jitter a tenth), notices to a channel of the local fake Slack
  (``tests/fakes/slack.FakeSlack``). Time of a notice: when the fake Slack got it (the root
  message; on recovery the first of the thread reply and the root's edit).
* **Prometheus stack** (Debian packages ``prometheus``, ``prometheus-blackbox-exporter``,
  ``prometheus-alertmanager``, run here on free loopback ports with generated files, not
  as system services): blackbox ``http_2xx`` module scraped every interval,
  ``evaluation_interval`` = the interval, the rule ``probe_success == 0`` with ``for:`` one
  interval (two failing evaluations: the equivalent of two consecutive failures), sent to two
  Alertmanagers: one with Alertmanager's defaults (``group_wait`` 30s, ``group_interval``
  5m, ``repeat_interval`` 4h) and one tuned (``--tuned-group-wait``/``--tuned-group-interval``),
  each with ``slack_configs`` (``send_resolved: true``) whose ``api_url`` is a recording
  receiver here. Time of a notice: when the receiver got Alertmanager's POST.

Every trial starts everything afresh (an isolated outage, as the first one in a while: no
state, no flap damping, no Alertmanager group left over from the previous trial), waits until
all are watching, then starts the outage at a random phase; once every tool has told of it,
the recovery comes at another random phase. Nothing leaves 127.0.0.1.

    python bench/peer.py --trials 5 --interval 5
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import yaml
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.figures import machine, pct
from tests.fakes.slack import FakeSlack
from tests.redis_server import free_port

TOCSIN = Path(sys.executable).parent / "tocsin"
PACKAGES = ["prometheus", "prometheus-blackbox-exporter", "prometheus-alertmanager"]
#: Debian's binary names first, then upstream's.
BINARIES = {
    "prometheus": ["prometheus"],
    "blackbox": ["prometheus-blackbox-exporter", "blackbox_exporter"],
    "alertmanager": ["prometheus-alertmanager", "alertmanager"],
}
DEFAULT_PORTS = {9090: "prometheus", 9093: "alertmanager", 9094: "alertmanager cluster"}
DEFAULT_PORTS[9115] = "blackbox_exporter"
CHANNEL = "C0PEERBENCH"


def managers(args: argparse.Namespace) -> list[str]:
    """The Alertmanagers of this run: the tuned one, and the one with defaults unless
    ``--skip-default`` (whose recovery notice alone takes about five minutes a trial)."""
    return ["am-tuned"] if args.skip_default else ["am-default", "am-tuned"]


_processes: list[subprocess.Popen[bytes]] = []


# ------------------------------------------------------------------------- binaries


def find_binaries() -> dict[str, str]:
    found = {}
    for tool, names in BINARIES.items():
        for name in names:
            path = shutil.which(name)
            if path:
                found[tool] = path
                break
    return found


def ensure_binaries(install: bool) -> dict[str, str]:
    """The three binaries; installed with apt-get when missing (as root), else a clear exit."""
    found = find_binaries()
    if len(found) == len(BINARIES):
        return found
    how = f"apt-get install -y {' '.join(PACKAGES)}"
    missing = sorted(set(BINARIES) - set(found))
    if not install or os.geteuid() != 0 or not shutil.which("apt-get"):
        raise SystemExit(
            f"peer benchmark: {', '.join(missing)} not found. Install the Debian packages "
            f"(as root: apt-get update && {how}) and run again; no figures without them."
        )
    print(f"installing {' '.join(PACKAGES)} with apt-get (they were missing)...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", *PACKAGES]):
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(
                f"peer benchmark: `{' '.join(command)}` failed ({done.returncode}):\n"
                f"{done.stderr[-2000:]}\nInstall them by hand ({how}); no figures without them."
            )
    found = find_binaries()
    if len(found) != len(BINARIES):
        raise SystemExit(f"peer benchmark: still missing after {how}: {sorted(missing)}")
    return found


def version(binary: str) -> str:
    done = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    text = (done.stdout or done.stderr).strip().splitlines()
    return text[0] if text else "?"


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


# ------------------------------------------------------------------------ processes


def start(command: list[str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    out: IO[bytes] = log.open("wb")
    process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=cwd)
    out.close()
    _processes.append(process)
    return process


def stop_all() -> None:
    """Every process this script started: SIGTERM, then SIGKILL after 10 s."""
    for process in _processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + 10
    for process in _processes:
        if process.poll() is None:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    _processes.clear()


def _terminate(signum: int, frame: Any) -> None:
    raise SystemExit(f"stopped by signal {signum}")


# ---------------------------------------------------------------- the local servers


class Provider:
    """The fake provider's API: 200, or 503 while ``failing``."""

    def __init__(self) -> None:
        self.failing = False
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        async def models(request: web.Request) -> web.Response:
            if self.failing:
                return web.json_response({"error": "unavailable"}, status=503)
            return web.json_response({"object": "list", "data": []})

        app = web.Application()
        app.router.add_get("/v1/models", models)
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}/v1/models"


@dataclass
class Received:
    at: float
    status: str  # firing | resolved
    title: str


class Receiver:
    """Where the Alertmanagers' ``slack_configs`` post: arrival time and firing/resolved."""

    def __init__(self) -> None:
        self.received: dict[str, list[Received]] = {}
        self.runner: web.AppRunner | None = None
        self.base = ""

    async def start(self) -> None:
        async def hook(request: web.Request) -> web.Response:
            at = time.monotonic()
            payload = await request.json()
            title = ""
            for attachment in payload.get("attachments") or []:
                title = str(attachment.get("title") or "")
                break
            status = "resolved" if title.upper().startswith("[RESOLVED") else "firing"
            name = request.match_info["name"]
            self.received.setdefault(name, []).append(Received(at, status, title))
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_post("/slack/{name}", hook)
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.base = f"http://127.0.0.1:{self.runner.addresses[0][1]}"

    def first(self, name: str, status: str, since: float) -> float | None:
        return next(
            (r.at for r in self.received.get(name, []) if r.status == status and r.at >= since),
            None,
        )


# ------------------------------------------------------------------------- configs


def seconds(value: float) -> str:
    return f"{value:g}s"


def write_stack(
    args: argparse.Namespace, scratch: Path, provider: str, receiver: str, ports: dict[str, int]
) -> None:
    interval = seconds(args.interval)
    (scratch / "blackbox.yml").write_text(
        yaml.safe_dump(
            {"modules": {"http_2xx": {"prober": "http", "http": {"preferred_ip_protocol": "ip4"}}}}
        )
    )
    (scratch / "rules.yml").write_text(
        yaml.safe_dump(
            {
                "groups": [
                    {
                        "name": "provider",
                        "rules": [
                            {
                                "alert": "ProviderDown",
                                "expr": "probe_success == 0",
                                "for": interval,
                                "labels": {"severity": "page"},
                                "annotations": {"summary": "the provider's API is down"},
                            }
                        ],
                    }
                ]
            }
        )
    )
    (scratch / "prometheus.yml").write_text(
        yaml.safe_dump(
            {
                "global": {
                    "scrape_interval": interval,
                    "scrape_timeout": interval,
                    "evaluation_interval": interval,
                },
                "rule_files": [str(scratch / "rules.yml")],
                "alerting": {
                    "alertmanagers": [
                        {
                            "static_configs": [
                                {"targets": [f"127.0.0.1:{ports[m]}" for m in managers(args)]}
                            ]
                        }
                    ]
                },
                "scrape_configs": [
                    {
                        "job_name": "blackbox",
                        "metrics_path": "/probe",
                        "params": {"module": ["http_2xx"]},
                        "static_configs": [{"targets": [provider]}],
                        "relabel_configs": [
                            {"source_labels": ["__address__"], "target_label": "__param_target"},
                            {"source_labels": ["__param_target"], "target_label": "instance"},
                            {
                                "target_label": "__address__",
                                "replacement": f"127.0.0.1:{ports['blackbox']}",
                            },
                        ],
                    }
                ],
            }
        )
    )
    timings: dict[str, dict[str, str]] = {
        "am-default": {},  # Alertmanager's own defaults: 30s / 5m / 4h
        "am-tuned": {
            "group_wait": args.tuned_group_wait,
            "group_interval": args.tuned_group_interval,
            "repeat_interval": "4h",
        },
    }
    for name in managers(args):
        timing = timings[name]
        (scratch / f"{name}.yml").write_text(
            yaml.safe_dump(
                {
                    "route": {"receiver": "slack", "group_by": ["alertname"], **timing},
                    "receivers": [
                        {
                            "name": "slack",
                            "slack_configs": [
                                {
                                    "api_url": f"{receiver}/slack/{name}",
                                    "channel": "#ai-incidents",
                                    "send_resolved": True,
                                }
                            ],
                        }
                    ],
                }
            )
        )


def write_tocsin(
    args: argparse.Namespace, scratch: Path, provider: str, slack: FakeSlack, port: int
) -> Path:
    path = scratch / "tocsin.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "server": {"host": "127.0.0.1", "port": port},
                "console": {"enabled": False},
                "log": {"level": "warning"},
                "providers": [
                    {
                        "id": "peer",
                        "name": "Peer AI",
                        "probe": {"url": provider, "interval": seconds(args.interval)},
                    }
                ],
                "slack": {
                    "api_url": slack.api_url,
                    "bot_token": slack.bot_token,
                    "channels": [{"id": CHANNEL}],
                },
            }
        )
    )
    return path


# -------------------------------------------------------------------------- a trial


@dataclass
class Trial:
    down: dict[str, float | None] = field(default_factory=dict)
    up: dict[str, float | None] = field(default_factory=dict)


async def wait_http(client: httpx.AsyncClient, url: str, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if (await client.get(url)).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.2)
    raise SystemExit(f"{what} did not answer at {url} within {timeout:g}s")


def tocsin_notice(slack: FakeSlack, since: float, recovery: bool) -> float | None:
    """The root message of the outage; on recovery the first reply or edit after ``since``."""
    if not recovery:
        return next((m.at for m in slack.top_level(CHANNEL) if m.at >= since), None)
    calls = [
        c.at
        for c in slack.calls
        if c.at >= since and c.ok and c.method in ("chat.postMessage", "chat.update")
    ]
    return min(calls, default=None)


async def run_trial(
    args: argparse.Namespace,
    number: int,
    binaries: dict[str, str],
    provider: Provider,
    receiver: Receiver,
    slack: FakeSlack,
) -> Trial:
    scratch = Path(tempfile.mkdtemp(prefix=f"tocsin-peer-{number}-"))
    ports = {name: free_port() for name in ("prometheus", "blackbox", *managers(args))}
    ports["tocsin"] = free_port()
    write_stack(args, scratch, provider.url, receiver.base, ports)
    tocsin_config = write_tocsin(args, scratch, provider.url, slack, ports["tocsin"])
    provider.failing = False
    for name in managers(args):
        (scratch / name).mkdir()
        start(
            [
                binaries["alertmanager"],
                f"--config.file={scratch / name}.yml",
                f"--storage.path={scratch / name}",
                f"--web.listen-address=127.0.0.1:{ports[name]}",
                "--cluster.listen-address=",  # no gossip port: a single, local instance
                "--log.level=warn",
            ],
            scratch / f"{name}.log",
            scratch,
        )
    start(
        [
            binaries["blackbox"],
            f"--config.file={scratch / 'blackbox.yml'}",
            f"--web.listen-address=127.0.0.1:{ports['blackbox']}",
            "--log.level=warn",
        ],
        scratch / "blackbox.log",
        scratch,
    )
    start(
        [
            binaries["prometheus"],
            f"--config.file={scratch / 'prometheus.yml'}",
            f"--storage.tsdb.path={scratch / 'data'}",
            f"--web.listen-address=127.0.0.1:{ports['prometheus']}",
            "--log.level=warn",
        ],
        scratch / "prometheus.log",
        scratch,
    )
    start(
        [str(TOCSIN), "run", "--config", str(tocsin_config)],
        scratch / "tocsin.log",
        scratch,
    )
    trial = Trial()
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            for name in managers(args):
                await wait_http(client, f"http://127.0.0.1:{ports[name]}/-/ready", name)
            await wait_http(client, f"http://127.0.0.1:{ports['blackbox']}/-/healthy", "blackbox")
            await wait_http(client, f"http://127.0.0.1:{ports['prometheus']}/-/ready", "prom")
            await wait_http(client, f"http://127.0.0.1:{ports['tocsin']}/healthz", "tocsin")
            await _until_watching(client, ports, args.interval)
        print(f"  trial {number}: everything is watching; outage at a random phase", flush=True)
        await asyncio.sleep(random.uniform(0, args.interval))  # a random phase
        provider.failing = True
        down = time.monotonic()
        deadline = down + args.interval * 6 + 30 + 60  # the default group_wait, and room
        while True:
            trial.down = {
                "tocsin": tocsin_notice(slack, down, recovery=False),
                **{m: receiver.first(m, "firing", down) for m in managers(args)},
            }
            if all(trial.down.values()) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        print(f"  trial {number}: outage told (or timed out); recovery at a random phase")
        await asyncio.sleep(random.uniform(0, args.interval))  # another random phase
        provider.failing = False
        up = time.monotonic()
        deadline = up + args.interval * 6 + 300 + 30 + 60  # the default group_interval, and room
        while True:
            trial.up = {
                "tocsin": tocsin_notice(slack, up, recovery=True),
                **{m: receiver.first(m, "resolved", up) for m in managers(args)},
            }
            if all(trial.up.values()) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        trial.down = {k: (v - down if v else None) for k, v in trial.down.items()}
        trial.up = {k: (v - up if v else None) for k, v in trial.up.items()}
    except BaseException:
        print(f"  trial {number} stopped; its configs and logs are in {scratch}", flush=True)
        raise
    finally:
        stop_all()
    if all(trial.down.values()) and all(trial.up.values()):
        shutil.rmtree(scratch, ignore_errors=True)
    else:
        print(f"  trial {number}: a notice is missing; configs and logs kept in {scratch}")
    return trial


async def _until_watching(
    client: httpx.AsyncClient, ports: dict[str, int], interval: float
) -> None:
    """Both sides have seen the provider up (and had an interval to settle)."""
    deadline = time.monotonic() + 60 + 4 * interval
    query = f"http://127.0.0.1:{ports['prometheus']}/api/v1/query"
    status = f"http://127.0.0.1:{ports['tocsin']}/api/status.json"
    while time.monotonic() < deadline:
        try:
            prom = (await client.get(query, params={"query": "probe_success"})).json()
            values = [r["value"][1] for r in prom["data"]["result"]]
            rows = (await client.get(status)).json()["providers"]
            if values == ["1"] and rows and rows[0]["status"] == "operational":
                await asyncio.sleep(interval * 2)
                return
        except (httpx.HTTPError, KeyError, ValueError, IndexError):
            pass
        await asyncio.sleep(0.5)
    raise SystemExit("the provider never showed as up on both sides")


# --------------------------------------------------------------------------- report


def fmt(value: float | None) -> str:
    return "  missed" if value is None else f"{value:7.2f}s"


def report(args: argparse.Namespace, trials: list[Trial]) -> None:
    names = {
        "tocsin": "tocsin (defaults)",
        "am-tuned": (
            f"Prometheus + AM tuned (group_wait {args.tuned_group_wait}, "
            f"group_interval {args.tuned_group_interval})"
        ),
        "am-default": "Prometheus + AM defaults (group_wait 30s, group_interval 5m)",
    }
    print()
    print(f"{'':70}{'median':>9}{'p95':>9}{'÷ tocsin':>10}{'missed':>8}")
    for phase, label in (
        ("down", "outage start → first Slack notice"),
        ("up", "recovery → recovery notice"),
    ):
        print(label)
        medians: dict[str, float] = {}
        for tool in ["tocsin", *sorted(managers(args), reverse=True)]:
            values = [v for t in trials if (v := (t.down if phase == "down" else t.up).get(tool))]
            missed = len(trials) - len(values)
            if not values:
                print(f"  {names[tool]:68}{'-':>9}{'-':>9}{'-':>10}{missed:>8}")
                continue
            medians[tool] = statistics.median(values)
            ratio = (
                f"{medians[tool] / medians['tocsin']:9.1f}x"
                if tool != "tocsin" and medians.get("tocsin")
                else f"{'':10}"
            )
            print(
                f"  {names[tool]:68}{medians[tool]:>8.2f}s{pct(values, 0.95):>8.2f}s"
                f"{ratio}{missed:>8}"
            )
    print()
    print(
        f"p95 is the nearest-rank value of {len(trials)} trials"
        f"{' (the slowest)' if len(trials) < 10 else ''}. "
        f"Expected medians: tocsin interval/2 + (threshold-1) x confirm ({args.interval / 4:g}s) "
        f"≈ {args.interval / 2 + args.interval / 4:.2f}s; Prometheus: scrape phase + evaluation "
        f"phase + for ({args.interval:g}s) + group_wait."
    )


async def main_async(args: argparse.Namespace, binaries: dict[str, str]) -> list[Trial]:
    provider = Provider()
    await provider.start()
    receiver = Receiver()
    await receiver.start()
    slack = await FakeSlack().start()
    slack.add_channel(CHANNEL, "ai-incidents")
    trials: list[Trial] = []
    try:
        for number in range(1, args.trials + 1):
            trial = await run_trial(args, number, binaries, provider, receiver, slack)
            trials.append(trial)
            down = "  ".join(f"{k} {fmt(v)}" for k, v in trial.down.items())
            up = "  ".join(f"{k} {fmt(v)}" for k, v in trial.up.items())
            print(f"  trial {number}: down: {down}\n           up:   {up}", flush=True)
        if slack.violations:
            print(f"note: tocsin sent {len(slack.violations)} requests the fake Slack refused")
    finally:
        stop_all()
        await slack.close()
        for runner in (provider.runner, receiver.runner):
            if runner is not None:
                await runner.cleanup()
    return trials


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--interval", type=float, default=5.0, help="probe/scrape interval, s")
    parser.add_argument("--tuned-group-wait", default="0s")
    parser.add_argument("--tuned-group-interval", default="1s")
    parser.add_argument(
        "--skip-default",
        action="store_true",
        help="leave out the Alertmanager with defaults (trials of about a minute, not six)",
    )
    parser.add_argument(
        "--no-install", action="store_true", help="never run apt-get; fail if missing"
    )
    parser.add_argument("--seed", type=int, default=None, help="random phases (repeatable)")
    args = parser.parse_args()
    random.seed(args.seed)
    signal.signal(signal.SIGTERM, _terminate)
    atexit.register(stop_all)
    binaries = ensure_binaries(install=not args.no_install)
    print(
        f"peer: {args.trials} trials, interval {args.interval:g}s; tocsin defaults; Prometheus "
        f"rule probe_success == 0 for {args.interval:g}s; Alertmanager "
        f"{'' if args.skip_default else 'defaults and '}tuned "
        f"(group_wait {args.tuned_group_wait}, group_interval {args.tuned_group_interval})"
    )
    print(f"machine: {machine()}")
    for tool, path in binaries.items():
        print(f"{tool}: {path}: {version(path)}")
    busy = [f"{port} ({name})" for port, name in sorted(DEFAULT_PORTS.items()) if listening(port)]
    if busy:
        print(f"note: default ports in use, left alone (we use free ports): {', '.join(busy)}")
    try:
        trials = asyncio.run(main_async(args, binaries))
    finally:
        stop_all()
    report(args, trials)


if __name__ == "__main__":
    main()
