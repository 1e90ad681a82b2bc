"""The ``tocsin`` command as a user runs it: the real console script in a subprocess.

Every run happens in the test's temporary directory with an environment stripped of secrets,
proxies and the developer's own config, and talks to nothing but loopback: the fake status
server of the test (served from the test's own event loop, hence the non-blocking
``asyncio.create_subprocess_exec``) or the suite's own redis-server.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.chatops.actions import Actor, ChatOps
from bot.models import ComponentState, Incident, StateUpdate, Status
from bot.store import RedisStore
from config.loader import build_config
from tests.fakes.pager import FakePagerDuty
from tests.fakes.slack import FakeSlack
from tests.fakes.status_server import FakeStatusServer, fixture_json
from tests.redis_server import RedisServer, free_port

TOCSIN = Path(sys.executable).parent / "tocsin"
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "tocsin.yaml"
SUMMARY = "/api/v2/summary.json"
MODELS = "/v1/models"
FIXTURE = "statuspage_summary_anthropic_operational.json"
COMPONENT = "k8w3r06qmzrp"  # "Claude API" in the fixture

#: Never inherited by the subprocess: secrets, the developer's config, proxies, forced colour.
SCRUBBED = {
    "TOCSIN_CONFIG",
    "SLACK_BOT_TOKEN",
    "SLACK_APP_TOKEN",
    "SLACK_SIGNING_SECRET",
    "DISCORD_TOKEN",
    "REDIS_URL",
    "PAGERDUTY_ROUTING_KEY",
    "OPSGENIE_API_KEY",
    "FORCE_COLOR",
    "TTY_COMPATIBLE",
    "TTY_INTERACTIVE",
    "COLUMNS",
    "LINES",
}
SEVERITIES = ["operational", "degraded", "partial_outage", "major_outage"]
#: ``tocsin check``'s exit code when a watched component is unknown and nothing is down.
CANNOT_TELL = 3


def cli_env(*, columns: int | None = 200, **extra: str) -> dict[str, str]:
    """The subprocess's environment. ``columns=None``: rich's width when piped (80)."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in SCRUBBED and "PROXY" not in name.upper() and not name.endswith("_API_KEY")
    }
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env["NO_COLOR"] = "1"
    if columns is not None:
        env["COLUMNS"] = str(columns)  # wide enough that table cells are not folded
    env.update(extra)
    return env


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def both(self) -> str:
        return self.out + self.err

    def __str__(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.out}\n--- stderr\n{self.err}"


def tocsin(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 30) -> Result:
    """Run ``tocsin`` to completion (only for runs that need no server of the test's loop)."""
    done = subprocess.run(
        [str(TOCSIN), *args],
        cwd=cwd,
        env=env if env is not None else cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)


async def atocsin(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 30
) -> Result:
    """Run ``tocsin`` without blocking the event loop the fake status server runs on."""
    proc = await asyncio.create_subprocess_exec(
        str(TOCSIN),
        *args,
        cwd=cwd,
        env=env if env is not None else cli_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


def write_config(tmp_path: Path, document: dict[str, Any], name: str = "tocsin-test.yaml") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(document, indent=2))  # JSON is YAML
    return path


def acme(server: FakeStatusServer, *, page: bool = True, probe: bool = True) -> dict[str, Any]:
    """A custom provider whose status page and API are the fake server."""
    provider: dict[str, Any] = {"id": "acme", "name": "Acme AI"}
    if page:
        provider["status_page"] = {
            "kind": "statuspage",
            "url": server.url,
            "components": [COMPONENT],
        }
    if probe:
        provider["probe"] = {"url": server.url + MODELS, "timeout": "3s"}
    return provider


def check_config(tmp_path: Path, *providers: dict[str, Any]) -> Path:
    return write_config(tmp_path, {"server": {"enabled": False}, "providers": list(providers)})


def healthy(server: FakeStatusServer) -> None:
    server.set_fixture(SUMMARY, FIXTURE)
    server.set_json(MODELS, {"data": [{"id": "acme-large"}]})


def page_with(status: str) -> dict[str, Any]:
    """The operational fixture with the watched component at ``status``."""
    payload: dict[str, Any] = copy.deepcopy(fixture_json(FIXTURE))
    [component] = [c for c in payload["components"] if c["id"] == COMPONENT]
    component["status"] = status
    return payload


def table_status(result: Result, name: str = "Acme AI") -> str:
    """The Status cell of a provider's row in the ``check``/``status`` table."""
    for line in result.out.splitlines():
        cells = [cell.strip() for cell in line.split("│")]
        if len(cells) > 2 and cells[1] == name:
            return cells[2]
    raise AssertionError(f"no row for {name!r}:\n{result}")


def closed_port_url() -> str:
    return f"http://127.0.0.1:{free_port()}/v1/models"


# -- help --------------------------------------------------------------------------------------


def test_help_lists_every_command(tmp_path: Path) -> None:
    result = tocsin("--help", cwd=tmp_path)
    assert result.code == 0, result
    for command in ("run", "check", "status", "config", "demo", "drill"):
        assert re.search(rf"│ {command}\s", result.out), f"{command} missing:\n{result}"
    sub = tocsin("config", "--help", cwd=tmp_path)
    assert sub.code == 0, sub
    assert "validate" in sub.out


@pytest.mark.parametrize(
    "command",
    [
        ("run",),
        ("check",),
        ("status",),
        ("report",),
        ("config", "validate"),
        ("demo",),
        ("drill",),
        ("slack-manifest",),
    ],
)
def test_every_command_help_works_with_its_imports_deferred(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    """(issue 17) Each command imports what it needs when it runs: its options still
    register and its help still shows them, defaults included."""
    result = tocsin(*command, "--help", cwd=tmp_path)
    assert result.code == 0, result
    assert "--help" in result.out
    if command == ("run",):
        assert "TOCSIN_ROLE" in result.out
    if command == ("check",):
        assert "partial_outage" in result.out
        assert "major_outage" in result.out


def test_slack_manifest_command_exists(tmp_path: Path) -> None:
    result = tocsin("slack-manifest", cwd=tmp_path)
    assert result.code == 0, result
    manifest = yaml.safe_load(result.out)
    commands = {c["command"]: c for c in manifest["features"]["slash_commands"]}
    assert set(commands) == {"/status", "/fallback", "/tocsin"}
    assert "subscribe <provider>" in commands["/tocsin"]["usage_hint"]
    assert all("url" not in c for c in commands.values())  # Socket Mode: no public URL
    assert manifest["settings"]["socket_mode_enabled"] is True
    assert manifest["settings"]["interactivity"] == {"is_enabled": True}  # buttons, no URL
    assert {"chat:write", "commands", "channels:history"} <= set(
        manifest["oauth_config"]["scopes"]["bot"]
    )


def test_slack_manifest_for_http_mode(tmp_path: Path) -> None:
    result = tocsin(
        "slack-manifest", "--http", "https://tocsin.example.com/", "--json", cwd=tmp_path
    )
    assert result.code == 0, result
    manifest = json.loads(result.out)
    urls = {c["url"] for c in manifest["features"]["slash_commands"]}
    assert urls == {"https://tocsin.example.com/slack/events"}
    assert manifest["settings"]["socket_mode_enabled"] is False
    assert manifest["settings"]["interactivity"] == {
        "is_enabled": True,
        "request_url": "https://tocsin.example.com/slack/events",
    }
    bad = tocsin("slack-manifest", "--http", "tocsin.example.com", cwd=tmp_path)
    assert bad.code == 2


# -- config validate ---------------------------------------------------------------------------


def test_config_validate_accepts_the_example(tmp_path: Path) -> None:
    result = tocsin("config", "validate", str(EXAMPLE), cwd=tmp_path)
    assert result.code == 0, result
    assert "is valid" in result.out
    assert "providers: openai, anthropic, acme" in result.out
    assert "store: redis" in result.out
    assert "slack channels: 2" in result.out
    assert "discord channels: 1, webhooks: 1" in result.out
    assert "escalation policies: 3" in result.out
    assert result.err == ""


def test_config_validate_summarises_a_small_file(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        {"providers": [{"id": "acme", "name": "Acme AI", "probe": {"url": closed_port_url()}}]},
        name="small.json",
    )
    result = tocsin("config", "validate", str(path), cwd=tmp_path)
    assert result.code == 0, result
    assert "is valid" in result.out
    assert "providers: acme" in result.out
    assert "store: embedded" in result.out


BROKEN = """\
watch:
  interval: 5 minutes
  failure_treshold: 3
providers:
  - id: anthropic
    probe: {interval: soon}
  - id: acme
    name: Acme AI
    probe: {url: "ftp://127.0.0.1/v1/models"}
  - id: beta
    name: Beta
    probe: {url: "http://127.0.0.1:9/v1/models", timeout: true}
  - id: opneai
slack:
  channels: [{id: C1, min_status: maintenance}]
"""
BROKEN_PATHS = {
    "watch.interval": "'5 minutes' is not a duration",
    "watch.failure_treshold": "unknown key (typo?)",
    "providers[0].probe.interval": "'soon' is not a duration",
    "providers[1].probe.url": "is not an http(s) URL",
    "providers[2].probe.timeout": "not a boolean",
    "providers[3].id": "'opneai' is not in the catalog (did you mean 'openai'?)",
    "slack.channels[0].min_status": "must be one of operational, degraded",
}


def test_config_validate_prints_every_error_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN)
    result = tocsin("config", "validate", str(path), cwd=tmp_path)
    assert result.code == 2, result
    assert f"{path} is not a valid tocsin config" in result.err
    lines = [line.strip() for line in result.err.splitlines()]
    for where, message in BROKEN_PATHS.items():
        found = [line for line in lines if line.startswith(f"{where}: ")]
        assert len(found) == 1, f"{where} missing:\n{result}"
        assert message in found[0], found[0]
    assert "is valid" not in result.out
    assert "Traceback" not in result.both


async def test_a_broken_config_starts_nothing(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN)
    commands = ("run", "check", "drill")
    results = await asyncio.gather(
        *(atocsin(command, "--config", str(path), cwd=tmp_path) for command in commands)
    )
    for command, result in zip(commands, results, strict=True):
        assert result.code == 2, f"{command}: {result}"
        assert "providers[1].probe.url" in result.err
        assert "watching" not in result.out  # no banner: nothing was started
        assert "tocsin drill" not in result.out


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("watch:\n  interval: 30s\n   bad: [\n", "line 3, column"),
        ("- anthropic\n- openai\n", "the top level must be a mapping"),
        (None, "file not found"),
    ],
)
def test_config_validate_reports_unusable_files(
    tmp_path: Path, content: str | None, needle: str
) -> None:
    path = tmp_path / "tocsin.yaml"
    if content is not None:
        path.write_text(content)
    result = tocsin("config", "validate", str(path), cwd=tmp_path)
    assert result.code == 2, result
    assert needle in result.err
    assert "Traceback" not in result.both


def test_config_errors_are_not_wrapped_when_piped(tmp_path: Path) -> None:
    path = tmp_path / "tocsin.yaml"
    path.write_text("providers:\n  - id: opneai\n")
    result = tocsin("config", "validate", str(path), cwd=tmp_path, env=cli_env(columns=None))
    assert result.code == 2, result
    expected = (
        "providers[0].id: 'opneai' is not in the catalog (did you mean 'openai'?); "
        "give name and status_page or probe for a custom provider"
    )
    assert expected in [line.strip() for line in result.err.splitlines()], result


# -- where the config comes from ---------------------------------------------------------------


def test_config_file_precedence(tmp_path: Path) -> None:
    (tmp_path / "tocsin.yaml").write_text("watch: {intervall: 5s}\n")  # ./tocsin.yaml, broken
    env_file = tmp_path / "from-env.yaml"
    env_file.write_text("watch: {timeout: never}\n")  # $TOCSIN_CONFIG, broken differently
    good = write_config(tmp_path, {"server": {"enabled": False}, "providers": []}, "good.json")

    used = tocsin("drill", cwd=tmp_path)
    assert used.code == 2, used
    assert "tocsin.yaml is not a valid tocsin config" in used.err
    assert "watch.intervall" in used.err

    used = tocsin("drill", cwd=tmp_path, env=cli_env(TOCSIN_CONFIG=str(env_file)))
    assert used.code == 2, used
    assert "watch.timeout" in used.err
    assert "watch.intervall" not in used.err

    used = tocsin(
        "drill", "--config", str(good), cwd=tmp_path, env=cli_env(TOCSIN_CONFIG=str(env_file))
    )
    assert used.code == 0, used


# -- check -------------------------------------------------------------------------------------


async def test_check_healthy_provider_exits_0(
    tmp_path: Path, status_server: FakeStatusServer
) -> None:
    healthy(status_server)
    config = check_config(tmp_path, acme(status_server))
    result = await atocsin("check", "--config", str(config), cwd=tmp_path)
    assert result.code == 0, result
    assert "tocsin check" in result.out
    assert table_status(result) == "operational"
    assert "Claude API (api.anthropic.com) (statuspage): operational" in result.out
    # one round: each source was asked exactly once
    assert status_server.count(SUMMARY) == 1
    assert status_server.count(MODELS) == 1


async def test_check_probe_503_exits_1(tmp_path: Path, status_server: FakeStatusServer) -> None:
    healthy(status_server)
    status_server.set_status(MODELS, 503, b'{"error": "overloaded"}')
    config = check_config(tmp_path, acme(status_server))
    result = await atocsin("check", "--config", str(config), cwd=tmp_path)
    assert result.code == 1, result
    assert table_status(result) == "major_outage"
    assert "HTTP 503" in result.out


async def test_check_page_major_outage_exits_1(
    tmp_path: Path, status_server: FakeStatusServer
) -> None:
    healthy(status_server)
    status_server.set_json(SUMMARY, page_with("major_outage"))
    config = check_config(tmp_path, acme(status_server))
    result = await atocsin("check", "--config", str(config), cwd=tmp_path)
    assert result.code == 1, result
    assert table_status(result) == "major_outage"


async def test_check_fail_on_is_at_or_above(
    tmp_path: Path, status_server: FakeStatusServer
) -> None:
    healthy(status_server)
    status_server.set_json(SUMMARY, page_with("partial_outage"))
    config = check_config(tmp_path, acme(status_server, probe=False))
    at_default, above = await asyncio.gather(
        atocsin("check", "--config", str(config), cwd=tmp_path),
        atocsin("check", "--config", str(config), "--fail-on", "major_outage", cwd=tmp_path),
    )
    assert at_default.code == 1, at_default  # partial_outage is the default threshold
    assert table_status(at_default) == "partial_outage"
    assert above.code == 0, above


async def test_check_degraded_passes_unless_fail_on_degraded(
    tmp_path: Path, status_server: FakeStatusServer
) -> None:
    healthy(status_server)
    status_server.set_json(SUMMARY, page_with("degraded_performance"))
    config = check_config(tmp_path, acme(status_server))
    default, strict = await asyncio.gather(
        atocsin("check", "--config", str(config), cwd=tmp_path),
        atocsin("check", "--config", str(config), "--fail-on", "degraded", cwd=tmp_path),
    )
    assert default.code == 0, default
    assert table_status(default) == "degraded"
    assert strict.code == 1, strict
    assert table_status(strict) == "degraded"


async def test_check_only_the_named_providers(
    tmp_path: Path, status_server: FakeStatusServer
) -> None:
    healthy(status_server)
    status_server.set_status("/down/v1/models", 503)
    down = {
        "id": "zeta",
        "name": "Zeta AI",
        "probe": {"url": status_server.url + "/down/v1/models"},
    }
    config = check_config(tmp_path, acme(status_server), down)
    everything, only_acme = await asyncio.gather(
        atocsin("check", "--config", str(config), cwd=tmp_path),
        atocsin("check", "acme", "--config", str(config), cwd=tmp_path),
    )
    assert everything.code == 1, everything
    assert table_status(everything, "Zeta AI") == "major_outage"
    assert only_acme.code == 0, only_acme
    assert "Zeta AI" not in only_acme.out
    assert status_server.count("/down/v1/models") == 1  # only the first run probed it


async def test_check_html_instead_of_json_is_unknown_not_down(
    tmp_path: Path, status_server: FakeStatusServer
) -> None:
    status_server.set_html(SUMMARY)
    config = check_config(tmp_path, acme(status_server, probe=False))
    result = await atocsin("check", "--config", str(config), "--fail-on", "degraded", cwd=tmp_path)
    # unknown is not down, even at the strictest threshold; but it is not green either
    assert result.code == CANNOT_TELL, result
    assert table_status(result) == "unknown"
    assert f"{status_server.url}{SUMMARY}" in result.out
    assert "HTML" in result.out


async def test_check_diagnostic_names_the_url_when_piped(
    tmp_path: Path, status_server: FakeStatusServer
) -> None:
    status_server.set_html(SUMMARY)
    config = check_config(tmp_path, acme(status_server, probe=False))
    result = await atocsin(
        "check", "--config", str(config), cwd=tmp_path, env=cli_env(columns=None)
    )
    assert result.code == CANNOT_TELL, result
    assert f"{status_server.url}{SUMMARY}" in result.out, result


async def test_check_bad_fail_on_exits_2(tmp_path: Path, status_server: FakeStatusServer) -> None:
    healthy(status_server)
    config = check_config(tmp_path, acme(status_server))
    result = await atocsin("check", "--config", str(config), "--fail-on", "critical", cwd=tmp_path)
    assert result.code == 2, result
    assert "--fail-on must be one of" in result.err
    for word in SEVERITIES:
        assert word in result.err
    assert status_server.requests == []  # nothing was checked


async def test_check_unknown_provider_exits_2_with_a_suggestion(
    tmp_path: Path, status_server: FakeStatusServer
) -> None:
    healthy(status_server)
    other = {"id": "zeta", "name": "Zeta AI", "probe": {"url": status_server.url + "/z"}}
    config = check_config(tmp_path, acme(status_server), other)
    result = await atocsin("check", "acm", "--config", str(config), cwd=tmp_path)
    assert result.code == 2, result
    assert "unknown provider 'acm'" in result.err
    assert "did you mean 'acme'?" in result.err
    assert "acme, zeta" in result.err  # the valid ids
    assert status_server.requests == []


async def test_check_bad_config_exits_2(tmp_path: Path, status_server: FakeStatusServer) -> None:
    healthy(status_server)
    provider = acme(status_server)
    provider["probe"]["interval"] = "5 minutes"
    config = check_config(tmp_path, provider)
    result = await atocsin("check", "--config", str(config), cwd=tmp_path)
    assert result.code == 2, result
    assert "providers[0].probe.interval" in result.err
    assert status_server.requests == []


# -- drill -------------------------------------------------------------------------------------


def test_drill_with_the_default_config_reaches_the_console(tmp_path: Path) -> None:
    result = tocsin("drill", cwd=tmp_path)
    assert result.code == 0, result
    assert "tocsin drill: this is a test notice" in result.out
    assert re.search(r"console\s*│\s*delivered", result.out), result
    assert "Traceback" not in result.both


# -- status ------------------------------------------------------------------------------------


def test_status_without_redis_explains_the_embedded_store(tmp_path: Path) -> None:
    result = tocsin("status", cwd=tmp_path)
    assert result.code == 0, result
    assert "embedded store" in result.out
    assert "REDIS_URL" in result.out


async def test_status_with_redis_shows_the_table(
    tmp_path: Path, redis_server: RedisServer, key_prefix: str
) -> None:
    incident = Incident(id="inc-1", title="Elevated errors on the API", status="identified")
    down = ComponentState(
        provider="acme",
        component="api",
        name="Acme API",
        status=Status.MAJOR_OUTAGE,
        last_known=Status.MAJOR_OUTAGE,
        confirmed=True,
        incident=incident,
    )
    await _store_holding(redis_server, key_prefix, down)
    config = write_config(
        tmp_path,
        {
            "store": {"prefix": key_prefix},
            "providers": [
                {"id": "acme", "name": "Acme AI", "probe": {"url": closed_port_url()}},
                {"id": "zeta", "name": "Zeta AI", "probe": {"url": closed_port_url()}},
            ],
        },
    )
    result = await atocsin(
        "status", "--config", str(config), cwd=tmp_path, env=cli_env(REDIS_URL=redis_server.url)
    )
    assert result.code == 0, result
    assert "tocsin status" in result.out
    assert table_status(result) == "major_outage (confirmed)"
    assert "Acme API: major_outage" in result.out
    assert "Elevated errors on the API (identified)" in result.out
    assert "Zeta AI" in result.out  # watched, no data yet
    assert "no data" in result.out


def test_status_with_unreachable_redis_says_so(tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    result = tocsin("status", cwd=tmp_path, env=cli_env(REDIS_URL=url))
    assert result.code == 1, result
    assert "redis unreachable" in result.err
    assert "Traceback" not in result.both


# -- demo --------------------------------------------------------------------------------------


def test_demo_runs_an_outage_update_and_recovery(tmp_path: Path) -> None:
    started = time.monotonic()
    result = tocsin("demo", cwd=tmp_path, timeout=60)  # a guard, not a timing test
    assert result.code == 0, result
    titles = [
        "Demo AI: major outage (suspected)",
        "Demo AI: identified",
        "Demo AI: recovered",
    ]
    positions = [result.out.find(title) for title in titles]
    assert all(p >= 0 for p in positions), result
    assert positions == sorted(positions), result
    assert "Demo complete." in result.out
    assert "Traceback" not in result.both
    assert time.monotonic() - started < 60


# -- run ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_run_stops_cleanly_on_a_signal(tmp_path: Path, sig: signal.Signals) -> None:
    config = write_config(
        tmp_path,
        {
            "server": {"enabled": False},
            "providers": [
                {
                    "id": "acme",
                    "name": "Acme AI",
                    "probe": {"url": closed_port_url(), "interval": "60s"},
                }
            ],
        },
    )
    proc = await asyncio.create_subprocess_exec(
        str(TOCSIN),
        "run",
        "--config",
        str(config),
        cwd=tmp_path,
        env=cli_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        banner = await asyncio.wait_for(proc.stdout.readline(), 20)
        assert re.search(r"tocsin all · watching 1 providers?: acme", banner.decode()), banner
        await asyncio.sleep(0.5)  # let it settle into its loop
        sent = time.monotonic()
        proc.send_signal(sig)
        out, err = await asyncio.wait_for(proc.communicate(), 10)
        elapsed = time.monotonic() - sent
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    result = Result(proc.returncode or 0, banner.decode() + out.decode(), err.decode())
    assert proc.returncode == 0, result
    assert elapsed < 5, f"took {elapsed:.1f}s to stop"
    assert "store: embedded" in result.out
    assert "notices to: console" in result.out
    assert "dashboard" not in result.out  # the server is disabled
    assert "tocsin stopped." in result.out
    assert "Traceback" not in result.both


def test_run_rejects_an_unknown_role(tmp_path: Path) -> None:
    result = tocsin("run", "--role", "everything", cwd=tmp_path)
    assert result.code == 2, result
    assert "--role must be all, watcher, notifier or bot" in result.err


def test_run_on_a_taken_port_is_one_clear_line_not_a_traceback(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [str(TOCSIN), "run"],
            cwd=tmp_path,
            env=cli_env(TOCSIN_SERVER_PORT=str(port), TOCSIN_PROVIDERS="anthropic"),
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 1, result.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "address already in use" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


# -- hostile config files (issue 11, item 14) ----------------------------------------------------

#: A regression must not take the machine with it: a guard, not what the tests assert.
MEMORY_GUARD = 2 << 30


async def _store_holding(redis_server: RedisServer, prefix: str, state: ComponentState) -> None:
    """The suite's redis-server, holding ``state`` as a watcher would have written it."""
    store = RedisStore(redis_server.url, prefix=prefix)
    await store.open()
    try:
        await store.apply([StateUpdate(state=state, status_changed=True)])
    finally:
        await store.close()


def _memory_guard() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_GUARD, MEMORY_GUARD))


def guarded_tocsin(*args: str, cwd: Path, timeout: float = 60) -> Result:
    """``tocsin`` with its memory capped; the generous timeout only guards against a hang."""
    done = subprocess.run(
        [str(TOCSIN), *args],
        cwd=cwd,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        preexec_fn=_memory_guard,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def alias_bomb(levels: int = 9, width: int = 10) -> str:
    """A few hundred bytes of YAML whose aliases expand to ``width ** levels`` strings."""
    lines = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    lines += [f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * width)}]" for n in range(1, levels)]
    return "\n".join(lines)


def bomb_config(tmp_path: Path, where: str) -> Path:
    """A config whose probe ``json_body`` or status page ``options`` is an alias bomb."""
    bomb = textwrap.indent(alias_bomb(), " " * 8)
    if where == "json_body":
        source = (
            f'    probe:\n      url: "{closed_port_url()}"\n      method: POST\n      json_body:\n'
        )
    else:
        source = (
            f'    status_page:\n      kind: statuspage\n      url: "{closed_port_url()}"\n'
            "      options:\n"
        )
    path = tmp_path / f"bomb-{where}.yaml"
    path.write_text(
        "server: {enabled: false}\nproviders:\n  - id: acme\n    name: Acme AI\n"
        + source
        + bomb
        + "\n"
    )
    return path


@pytest.mark.parametrize("where", ["json_body", "options"])
def test_config_validate_refuses_an_alias_bomb(tmp_path: Path, where: str) -> None:
    result = guarded_tocsin("config", "validate", str(bomb_config(tmp_path, where)), cwd=tmp_path)
    assert result.code == 2, result
    [line] = [line.strip() for line in result.err.splitlines() if "50,000" in line]
    assert re.match(r"line \d+, column \d+: this value expands to more than 50,000 values", line)
    assert "is valid" not in result.out
    assert "Traceback" not in result.both


@pytest.mark.parametrize("where", ["json_body", "options"])
def test_run_refuses_an_alias_bomb_instead_of_hanging(tmp_path: Path, where: str) -> None:
    result = guarded_tocsin("run", "--config", str(bomb_config(tmp_path, where)), cwd=tmp_path)
    assert result.code == 2, result
    assert "expands to more than 50,000 values" in result.err
    assert "watching" not in result.out  # nothing was started
    assert "Traceback" not in result.both


def test_config_validate_refuses_a_document_nested_100000_deep(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("providers: " + "[" * 100_000 + "]" * 100_000 + "\n")
    result = guarded_tocsin("config", "validate", str(path), cwd=tmp_path)
    assert result.code == 2, result
    assert re.search(r"line 1, column \d+: nested deeper than 64 levels", result.err), result
    assert "RecursionError" not in result.both
    assert "Traceback" not in result.both


def test_config_validate_accepts_merge_keys(tmp_path: Path) -> None:
    path = tmp_path / "merged.yaml"
    path.write_text(
        "providers:\n"
        "  - id: acme\n"
        "    name: Acme AI\n"
        f"    probe: &probe {{url: '{closed_port_url()}', timeout: 3s, interval: 15s}}\n"
        "  - id: zeta\n"
        "    name: Zeta AI\n"
        "    probe:\n"
        "      <<: *probe\n"
        "      timeout: 5s\n"
    )
    result = tocsin("config", "validate", str(path), cwd=tmp_path)
    assert result.code == 0, result
    assert "providers: acme, zeta" in result.out


# -- targets Discord or Slack would refuse (issue 11, item 7) ------------------------------------


def test_config_validate_refuses_a_webhook_discord_would_refuse_without_showing_it(
    tmp_path: Path,
) -> None:
    token = "sekrit-token-" + "x" * 10  # too short: no Discord webhook has such a token
    config = write_config(
        tmp_path,
        {
            "providers": [{"id": "acme", "name": "Acme AI", "probe": {"url": closed_port_url()}}],
            "discord": {
                "webhooks": [
                    {"url": f"https://discord.com/api/webhooks/123456789012345678/{token}"},
                    {"url": "https://discord.com/api/webhooks/hooky/" + "t" * 68},
                ]
            },
        },
    )
    result = tocsin("config", "validate", str(config), cwd=tmp_path)
    assert result.code == 2, result
    lines = [line.strip() for line in result.err.splitlines()]
    [short] = [line for line in lines if line.startswith("discord.webhooks[0].url: ")]
    assert "token" in short
    [not_an_id] = [line for line in lines if line.startswith("discord.webhooks[1].url: ")]
    assert "not a Discord id" in not_an_id
    assert "sekrit" not in result.both
    assert "t" * 68 not in result.both


# -- Rich markup from outside is text (issue 11, item 10) ----------------------------------------

MARKUP = "[bold red]x[/]"
CLOSING = "[/]"


async def test_check_prints_markup_in_names_literally(
    tmp_path: Path, status_server: FakeStatusServer
) -> None:
    payload = page_with("operational")
    [component] = [c for c in payload["components"] if c["id"] == COMPONENT]
    component["name"] = f"{CLOSING} {MARKUP}"
    status_server.set_json(SUMMARY, payload)
    provider = acme(status_server, probe=False)
    provider["name"] = f"Acme {MARKUP}"
    result = await atocsin("check", "--config", str(check_config(tmp_path, provider)), cwd=tmp_path)
    assert result.code == 0, result
    assert f"{CLOSING} {MARKUP} (statuspage): operational" in result.out
    assert table_status(result, f"Acme {MARKUP}") == "operational"
    assert "Traceback" not in result.both


async def test_status_prints_markup_from_the_store_literally(
    tmp_path: Path, redis_server: RedisServer, key_prefix: str
) -> None:
    down = ComponentState(
        provider="acme",
        component="api",
        name=f"{CLOSING} {MARKUP}",
        status=Status.MAJOR_OUTAGE,
        last_known=Status.MAJOR_OUTAGE,
        confirmed=True,
        incident=Incident(id="inc-1", title=f"Errors {CLOSING}{MARKUP}", status="[i]dentified"),
    )
    await _store_holding(redis_server, key_prefix, down)
    config = write_config(
        tmp_path,
        {
            "store": {"prefix": key_prefix},
            "providers": [
                {"id": "acme", "name": f"Acme {MARKUP}", "probe": {"url": closed_port_url()}}
            ],
        },
    )
    result = await atocsin(
        "status", "--config", str(config), cwd=tmp_path, env=cli_env(REDIS_URL=redis_server.url)
    )
    assert result.code == 0, result
    assert table_status(result, f"Acme {MARKUP}") == "major_outage (confirmed)"
    assert f"{CLOSING} {MARKUP}: major_outage" in result.out
    assert f"Errors {CLOSING}{MARKUP} ([i]dentified)" in result.out
    assert "Traceback" not in result.both


# -- drill with escalation policies (issue 11, item 18) ------------------------------------------


async def test_drill_with_an_escalation_policy_passes_when_every_chat_target_got_it(
    tmp_path: Path,
) -> None:
    slack = await FakeSlack().start()
    pager = await FakePagerDuty().start()
    try:
        slack.add_channel("C0DRILL001", "ai-incidents")
        config = write_config(
            tmp_path,
            {
                "server": {"enabled": False},
                "console": {"enabled": False},
                "providers": [
                    {"id": "acme", "name": "Acme AI", "probe": {"url": closed_port_url()}}
                ],
                "slack": {
                    "api_url": slack.api_url,
                    "bot_token": slack.bot_token,
                    "channels": [{"id": "C0DRILL001"}],
                },
                "escalation": [
                    {"kind": "pagerduty", "routing_key": pager.routing_key, "url": pager.url}
                ],
            },
        )
        result = await atocsin("drill", "--config", str(config), cwd=tmp_path)
    finally:
        await slack.close()
        await pager.stop()
    assert result.code == 0, result
    assert re.search(r"slack:C0DRILL001\s*│\s*delivered", result.out), result
    assert re.search(r"pagerduty\S*\s*│\s*skipped", result.out), result
    [posted] = slack.channels["C0DRILL001"].messages
    assert "tocsin drill" in json.dumps(posted.blocks) + str(posted.text)
    assert pager.requests == 0  # a drill pages nobody


# -- check: cannot tell, and --json (issue 11, item 20) ------------------------------------------


async def test_check_an_unknown_component_is_cannot_tell_but_down_wins(
    tmp_path: Path, status_server: FakeStatusServer
) -> None:
    status_server.set_html(SUMMARY)  # acme's page is unreadable: unknown
    status_server.set_status("/zeta/v1/models", 503)
    zeta = {
        "id": "zeta",
        "name": "Zeta AI",
        "probe": {"url": status_server.url + "/zeta/v1/models"},
    }
    config = check_config(tmp_path, acme(status_server, probe=False), zeta)
    unknown_only, with_an_outage = await asyncio.gather(
        atocsin("check", "acme", "--config", str(config), cwd=tmp_path),
        atocsin("check", "--config", str(config), cwd=tmp_path),
    )
    assert unknown_only.code == CANNOT_TELL, unknown_only
    assert with_an_outage.code == 1, with_an_outage  # down wins over cannot tell
    assert table_status(with_an_outage, "Zeta AI") == "major_outage"
    assert table_status(with_an_outage) == "unknown"


async def test_check_a_probe_with_a_rejected_key_is_cannot_tell(
    tmp_path: Path, status_server: FakeStatusServer
) -> None:
    status_server.set_status(MODELS, 401, b'{"error": "invalid x-api-key"}')
    config = check_config(tmp_path, acme(status_server, page=False))
    result = await atocsin("check", "--config", str(config), cwd=tmp_path)
    assert result.code == CANNOT_TELL, result  # the key is wrong: nobody knows if it is up


async def test_check_json_has_every_component_status_source_detail_and_incident(
    tmp_path: Path, status_server: FakeStatusServer
) -> None:
    payload = copy.deepcopy(fixture_json("statuspage_summary_anthropic_minor_monitoring.json"))
    title = 'Usage "delayed" [/] [bold red]x[/] \\ <b>'
    payload["incidents"][0]["name"] = title
    status_server.set_json(SUMMARY, payload)
    status_server.set_status("/zeta/v1/models", 503, b'{"error": "overloaded"}')
    page = acme(status_server, probe=False)
    page["status_page"]["components"] = ["0qbwn08sd68x", COMPONENT]
    zeta = {
        "id": "zeta",
        "name": "Zeta AI",
        "probe": {"url": status_server.url + "/zeta/v1/models"},
    }
    config = check_config(tmp_path, page, zeta)
    result = await atocsin("check", "--json", "--config", str(config), cwd=tmp_path)
    assert result.code == 1, result
    document = json.loads(result.out)  # the whole of stdout is one JSON document
    assert (document["verdict"], document["exit_code"], document["fail_on"]) == (
        "down",
        1,
        "partial_outage",
    )
    by_id = {p["id"]: p for p in document["providers"]}
    assert (by_id["acme"]["status"], by_id["acme"]["verdict"]) == ("degraded", "ok")
    assert (by_id["zeta"]["status"], by_id["zeta"]["verdict"]) == ("major_outage", "down")
    components = {c["id"]: c for c in by_id["acme"]["components"]}
    assert set(components) == {"0qbwn08sd68x", COMPONENT}
    console = components["0qbwn08sd68x"]
    assert (console["status"], console["source"]) == ("degraded", "acme:statuspage")
    assert console["name"] == "Claude Console (platform.claude.com)"
    assert console["incident"]["title"] == title  # as the page wrote it, JSON-escaped
    assert console["incident"]["status"] == "monitoring"
    assert components[COMPONENT]["status"] == "operational"
    [probe] = by_id["zeta"]["components"]
    assert (probe["source"], probe["status"], probe["error"]) == (
        "zeta:probe",
        "major_outage",
        "http",
    )
    assert "HTTP 503" in probe["detail"]
    assert "┃" not in result.out  # no table, no Rich


async def test_check_json_says_cannot_tell_and_which_component(
    tmp_path: Path, status_server: FakeStatusServer
) -> None:
    status_server.set_html(SUMMARY)
    config = check_config(tmp_path, acme(status_server, probe=False))
    result = await atocsin("check", "--json", "--config", str(config), cwd=tmp_path)
    assert result.code == CANNOT_TELL, result
    document = json.loads(result.out)
    assert (document["verdict"], document["exit_code"]) == ("cannot_tell", CANNOT_TELL)
    [provider] = document["providers"]
    assert (provider["status"], provider["verdict"]) == ("unknown", "cannot_tell")
    assert provider["unknown"] == [COMPONENT]
    [component] = provider["components"]
    assert f"{status_server.url}{SUMMARY}" in component["detail"]


async def test_status_lists_silences_and_subscriptions_from_the_chat(
    tmp_path: Path, redis_server: RedisServer, key_prefix: str
) -> None:
    """(issue 15) What people set from the chat is listed; a hostile name prints literally."""
    down = ComponentState(
        provider="acme", component="api", status=Status.MAJOR_OUTAGE, episode="acme-ep"
    )
    await _store_holding(redis_server, key_prefix, down)
    spec = {
        "store": {"prefix": key_prefix},
        "providers": [{"id": "acme", "name": "Acme AI", "probe": {"url": closed_port_url()}}],
    }
    store = RedisStore(redis_server.url, prefix=key_prefix)
    await store.open()
    try:
        chatops = ChatOps(build_config(spec), store)
        who = Actor("slack", "U1", "[bold red]maria[/]")
        await chatops.press("slack", "C1", "silence_4h", "acme|acme-ep", who)
        await chatops.subscribe("slack", "C9", "acme", "major_outage", who, duration="7d")
    finally:
        await store.close()
    config = write_config(tmp_path, spec)
    result = await atocsin(
        "status", "--config", str(config), cwd=tmp_path, env=cli_env(REDIS_URL=redis_server.url)
    )
    assert result.code == 0, result
    assert "from the chat" in result.out
    assert "slack:C1" in result.out
    assert "slack:C9" in result.out
    assert "subscription (major_outage)" in result.out
    assert "[bold red]maria[/]" in result.out  # Rich markup from the chat, shown as text
