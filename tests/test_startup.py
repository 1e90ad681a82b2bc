"""(issue 17) What makes the one-shot commands start fast: each imports only what it uses.

No wall time is asserted here (speed is measured in benchmarks: ``bench/startup.py``). Each
test runs a command's entry in a fresh interpreter and lists the heavy libraries that got
imported: a chat platform, the HTTP server, the templates or the metrics a command never
uses must not be among them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "tocsin.yaml"

HEAVY = {
    "slack_bolt",
    "slack_sdk",
    "discord",
    "aiohttp",
    "apprise",
    "jinja2",
    "redis",
    "prometheus_client",
    "litellm",
    "httpx",
    "apscheduler",
}
#: What no command here may import: the chat platforms, the server and its templates.
NEVER = {"slack_bolt", "slack_sdk", "discord", "aiohttp", "jinja2", "litellm"}

#: Runs in the fresh interpreter: an optional local status page (stdlib only), the command
#: through typer's runner, then the heavy roots found in ``sys.modules``, as JSON.
PROBE = textwrap.dedent(
    """
    import json, sys, threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    SUMMARY = {summary!r}

    class Page(BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps(SUMMARY).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", {port}), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    from typer.testing import CliRunner
    from bot.cli import app

    result = CliRunner().invoke(app, {args!r})
    roots = sorted({{m.split(".")[0] for m in sys.modules}} & set({heavy!r}))
    print(json.dumps({{"code": result.exit_code, "output": result.output, "roots": roots}}))
    """
)

SUMMARY = {
    "page": {"id": "local", "name": "Local", "url": "http://127.0.0.1/"},
    "components": [{"id": "api", "name": "API", "status": "operational"}],
    "incidents": [],
    "scheduled_maintenances": [],
    "status": {"indicator": "none", "description": "All Systems Operational"},
}


def run_fresh(args: list[str], cwd: Path, port: int = 0) -> tuple[int, str, set[str]]:
    code = PROBE.format(summary=SUMMARY, port=port, args=args, heavy=sorted(HEAVY))
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(cwd)},
    )
    found = json.loads(done.stdout.strip().splitlines()[-1])
    return found["code"], found["output"], set(found["roots"])


def test_help_imports_no_heavy_library(tmp_path: Path) -> None:
    code, output, roots = run_fresh(["--help"], tmp_path)
    assert code == 0
    assert "config" in output
    assert "check" in output
    assert roots == set()


def test_a_command_help_imports_no_heavy_library(tmp_path: Path) -> None:
    code, output, roots = run_fresh(["run", "--help"], tmp_path)
    assert code == 0
    assert "TOCSIN_ROLE" in output
    assert roots == set()


def test_config_validate_imports_no_platform_nor_server(tmp_path: Path) -> None:
    """The whole example config (Slack, Discord, escalation...) is validated without the
    platforms' libraries, the server, the scheduler or the metrics."""
    code, output, roots = run_fresh(["config", "validate", str(EXAMPLE)], tmp_path)
    assert code == 0, output
    assert "is valid" in output
    assert "slack channels" in output
    assert not roots & (NEVER | {"apprise", "prometheus_client", "apscheduler"})


def test_config_validate_still_checks_apprise_urls(tmp_path: Path) -> None:
    """An ``apprise:`` section is where apprise is truly needed: a bad URL is still caught."""
    config = tmp_path / "tocsin.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "providers": [{"id": "openai"}],
                "apprise": {"targets": [{"url": "json://", "name": "broken"}]},
            }
        )
    )
    code, output, roots = run_fresh(["config", "validate", str(config)], tmp_path)
    assert code == 2, output
    assert "apprise.targets[0].url" in output
    assert "apprise" in roots
    assert not roots & NEVER


@pytest.mark.parametrize("as_json", [False, True])
def test_check_imports_no_platform_nor_server(tmp_path: Path, as_json: bool) -> None:
    """``check`` reads the sources (httpx) and nothing of the chat or the server."""
    from tests.redis_server import free_port

    port = free_port()
    page = {"kind": "statuspage", "url": f"http://127.0.0.1:{port}"}
    config = tmp_path / "tocsin.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "console": {"enabled": False},
                "upstreams": [],
                "providers": [{"id": "local", "name": "Local", "status_page": page}],
                "slack": {"bot_token": "xoxb-startup", "channels": [{"id": "C0STARTUP"}]},
            }
        )
    )
    args = ["check", "--config", str(config), *(["--json"] if as_json else [])]
    code, output, roots = run_fresh(args, tmp_path, port)
    assert code == 0, output
    assert "operational" in output
    assert "httpx" in roots
    assert not roots & (NEVER | {"apprise"})


def test_the_role_variable_is_the_loaders() -> None:
    """``bot.cli`` spells ``TOCSIN_ROLE`` itself (registering ``run`` loads no config
    models): it must stay the loader's."""
    from bot import cli
    from config.loader import ROLE_ENV

    assert cli.ROLE_ENV == ROLE_ENV
