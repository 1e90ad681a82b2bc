"""Start-up time of the commands people run by hand or from CI: ``tocsin --help``, ``tocsin
config validate FILE`` and ``tocsin check`` (one provider whose status page is a local
server in this process that answers at once: the figure is start-up, not the network).
Wall time of the real console script in a fresh process, median (and min/max) of N runs;
and which heavy libraries each command imported.

    python bench/startup.py --runs 10
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.figures import machine

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ["slack_bolt", "slack_sdk", "discord", "aiohttp", "apprise", "jinja2", "redis"]
HEAVY += ["prometheus_client", "litellm", "httpx", "apscheduler"]

#: What a command's fresh interpreter imported, printed as one line: the HEAVY roots.
PROBE = """
import sys
from typer.testing import CliRunner
from bot.cli import app
result = CliRunner().invoke(app, {args!r})
roots = {{m.split('.')[0] for m in sys.modules}}
print(' '.join(sorted(roots & set({heavy!r}))))
"""


def commands(config: Path) -> dict[str, list[str]]:
    example = str(ROOT / "examples" / "tocsin.yaml")  # every section
    return {
        "--help": ["--help"],
        "config validate FILE": ["config", "validate", example],
        "check": ["check", "--config", str(config)],
    }


SUMMARY = {
    "page": {"id": "bench", "name": "Bench", "url": "http://127.0.0.1/"},
    "components": [{"id": "api", "name": "API", "status": "operational"}],
    "incidents": [],
    "scheduled_maintenances": [],
    "status": {"indicator": "none", "description": "All Systems Operational"},
}


class Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps(SUMMARY).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


def write_config(scratch: Path, port: int) -> Path:
    page = {"kind": "statuspage", "url": f"http://127.0.0.1:{port}"}
    document = {
        "console": {"enabled": False},
        "upstreams": [],
        "providers": [{"id": "bench", "name": "Bench", "status_page": page}],
    }
    path = scratch / "tocsin.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def wall(argv: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def imported(args: list[str], cwd: Path) -> str:
    code = PROBE.format(args=args, heavy=HEAVY)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, check=True
    )
    return done.stdout.strip() or "-"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    tocsin = str(Path(sys.executable).parent / "tocsin")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        config = write_config(scratch, server.server_address[1])
        print(f"\n{'command':24}{'median':>9}{'min':>9}{'max':>9}   heavy modules imported")
        for name, argv in commands(config).items():
            wall([tocsin, *argv], scratch)  # warm the page cache and the bytecode
            times = [wall([tocsin, *argv], scratch) for _ in range(args.runs)]
            print(
                f"{name:24}{statistics.median(times):>8.2f}s{min(times):>8.2f}s"
                f"{max(times):>8.2f}s   {imported(argv, scratch)}"
            )


if __name__ == "__main__":
    main()
