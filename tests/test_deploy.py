"""The image and the compose file, tested without a Docker engine (there is none here).

The Dockerfile is read, not trusted: its final stage's ENV, ENTRYPOINT, CMD and HEALTHCHECK
are parsed, the entry command runs as a real process with exactly that environment (the
image's virtualenv path swapped for ours, nothing of the developer's) and no config file,
and the HEALTHCHECK command runs as written (exec form) against it. docker-compose.yml is
parsed, interpolated as compose would, and fed to tocsin's own loader.
"""

from __future__ import annotations

import json
import re
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
import yaml

from config.catalog import load_catalog
from config.loader import ENV_VARIABLES, EnvSecrets, load_config
from config.redis_urls import SENTINEL_SCHEME
from tests.redis_server import RedisServer, free_port

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"
DOCKERIGNORE = ROOT / ".dockerignore"
VENV_BIN = Path(sys.executable).parent
#: Where the image's virtualenv lives (the build stage's ``python -m venv``).
IMAGE_VENV_BIN = "/opt/tocsin/bin"
#: What python:3.11-slim itself sets before the Dockerfile's ENV.
BASE_IMAGE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
SECRETS = {field.alias for field in EnvSecrets.model_fields.values() if field.alias}


# -- reading the Dockerfile ----------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    name: str
    args: str


def instructions(text: str) -> list[Instruction]:
    """Instructions with their continuation lines joined; comments and blanks dropped."""
    found: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        name, _, args = (pending + line).partition(" ")
        found.append(Instruction(name.upper(), args.strip()))
        pending = ""
    return found


def final_stage() -> list[Instruction]:
    every = instructions(DOCKERFILE.read_text())
    last_from = max(i for i, instr in enumerate(every) if instr.name == "FROM")
    return every[last_from:]


def only(stage: list[Instruction], name: str) -> Instruction:
    [found] = [instr for instr in stage if instr.name == name]
    return found


def exec_form(args: str) -> list[str]:
    """A JSON array of strings (the exec form: no shell between Docker and the process)."""
    command = json.loads(args)
    assert isinstance(command, list), f"not the exec form: {args}"
    assert all(isinstance(part, str) for part in command)
    return command


def image_env(stage: list[Instruction]) -> dict[str, str]:
    """The final stage's environment as the container gets it: each ENV's ``$VAR`` expanded
    from the values before it, the image's virtualenv swapped for this one."""
    env = dict(BASE_IMAGE_ENV)
    for instr in stage:
        if instr.name != "ENV":
            continue
        before = dict(env)
        for pair in shlex.split(instr.args):
            key, _, value = pair.partition("=")
            env[key] = _expand(value, before)
    assert env["PATH"].startswith(IMAGE_VENV_BIN + ":"), env["PATH"]
    env["PATH"] = env["PATH"].replace(IMAGE_VENV_BIN, str(VENV_BIN), 1)
    return env


def _expand(value: str, env: Mapping[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda match: env.get(match[1], ""), value)


@dataclass(frozen=True)
class Healthcheck:
    command: list[str]
    options: dict[str, str]

    def seconds(self, name: str) -> float:
        match = re.fullmatch(r"(\d+)s", self.options[name])
        assert match, self.options[name]
        return float(match[1])


def healthcheck(stage: list[Instruction]) -> Healthcheck:
    args = only(stage, "HEALTHCHECK").args
    options: dict[str, str] = {}
    while args.startswith("--"):
        option, _, args = args.partition(" ")
        name, _, value = option[2:].partition("=")
        options[name] = value
        args = args.strip()
    kind, _, command = args.partition(" ")
    assert kind == "CMD", args
    return Healthcheck(exec_form(command), options)


def test_the_image_is_multi_stage_slim_and_not_root() -> None:
    every = instructions(DOCKERFILE.read_text())
    bases = [instr.args for instr in every if instr.name == "FROM"]
    assert len(bases) >= 2, bases
    stage = final_stage()
    assert bases[-1].endswith("-slim"), bases[-1]
    assert "--from=build" in only(stage, "COPY").args  # the build tools stay behind
    user = only(stage, "USER").args.split(":")[0]
    assert user not in ("root", "0"), user
    assert only(stage, "EXPOSE").args == image_env(stage)["TOCSIN_SERVER_PORT"]
    assert "TOCSIN_CONFIG" not in image_env(stage)  # no file is expected: env alone works


def test_hadolint_passes() -> None:
    done = subprocess.run(
        [str(VENV_BIN / "hadolint"), str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


# -- running the image's command ------------------------------------------------------------------


@dataclass
class Container:
    """The image's entry command as a process, with the container's environment."""

    process: subprocess.Popen[bytes]
    env: dict[str, str]
    workdir: Path

    @property
    def out(self) -> str:
        return (self.workdir / "stdout").read_text()

    @property
    def err(self) -> str:
        return (self.workdir / "stderr").read_text()

    def healthcheck(self, check: Healthcheck) -> int:
        """The HEALTHCHECK command exactly as written, with the container's environment."""
        done = subprocess.run(
            check.command,
            env=self.env,
            cwd=self.workdir,
            capture_output=True,
            timeout=check.seconds("timeout"),
            check=False,
        )
        return done.returncode

    def wait_healthy(self, check: Healthcheck) -> float:
        """Seconds until the healthcheck first passes; it must within the start period."""
        started = time.monotonic()
        while self.healthcheck(check) != 0:
            assert self.process.poll() is None, f"exited {self.process.returncode}: {self.err}"
            elapsed = time.monotonic() - started
            assert elapsed < check.seconds("start-period"), f"never healthy: {self.err}"
            time.sleep(0.2)
        return time.monotonic() - started

    def stop(self, timeout: float = 10.0) -> int:
        """``docker stop``: SIGTERM, then 10 s before it would be killed."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)


@contextmanager
def run_image(workdir: Path, **docker_run_env: str) -> Iterator[Container]:
    """``docker run -e ...`` of the image: ENTRYPOINT + CMD, the Dockerfile's ENV plus the
    given variables, in an empty WORKDIR (no config file, no .env). Every outbound request
    goes to a closed loopback port through the proxy variables, so nothing leaves."""
    stage = final_stage()
    command = exec_form(only(stage, "ENTRYPOINT").args) + exec_form(only(stage, "CMD").args)
    closed = f"http://127.0.0.1:{free_port()}"
    env = image_env(stage) | {"HOME": str(workdir), "NO_COLOR": "1"}
    env |= {"HTTP_PROXY": closed, "HTTPS_PROXY": closed, "NO_PROXY": "127.0.0.1,localhost"}
    env |= docker_run_env
    workdir.mkdir(parents=True, exist_ok=True)
    with (workdir / "stdout").open("wb") as out, (workdir / "stderr").open("wb") as err:
        process = subprocess.Popen(command, env=env, cwd=workdir, stdout=out, stderr=err)
    container = Container(process, env, workdir)
    try:
        yield container
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture
def image_run(tmp_path: Path) -> Iterator[Container]:
    """The image with environment-only settings and no Redis: the embedded store."""
    with run_image(
        tmp_path / "workdir",
        TOCSIN_SERVER_PORT=str(free_port()),  # the port a second container would get
        TOCSIN_PROVIDERS="anthropic, openai",
        TOCSIN_INSTANCE="deploy-test",
    ) as container:
        yield container


def test_the_entry_command_passes_its_healthcheck_and_fails_it_once_stopped(
    image_run: Container,
) -> None:
    check = healthcheck(final_stage())
    image_run.wait_healthy(check)
    port = image_run.env["TOCSIN_SERVER_PORT"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
        assert json.load(answer)["status"] == "ok"
    assert image_run.stop() == 0, image_run.err
    assert image_run.healthcheck(check) == 1  # Docker's "unhealthy" (2 is reserved)
    out = image_run.out
    assert "tocsin all · watching 2 providers: anthropic, openai" in out, out
    assert "store: embedded" in out
    assert f"dashboard: http://0.0.0.0:{port}/" in out  # TOCSIN_SERVER_HOST from the image
    assert "tocsin stopped." in out
    assert "Traceback" not in image_run.err


def test_the_entry_command_takes_redis_role_and_names_from_the_environment(
    tmp_path: Path, redis_server: RedisServer, key_prefix: str
) -> None:
    with run_image(
        tmp_path / "workdir",
        TOCSIN_SERVER_PORT=str(free_port()),
        REDIS_URL=redis_server.url,
        TOCSIN_STORE_PREFIX=key_prefix,
        TOCSIN_ROLE="watcher",
        TOCSIN_INSTANCE="watcher-7",
    ) as container:
        container.wait_healthy(healthcheck(final_stage()))
        with redis.Redis.from_url(redis_server.url) as client:
            deadline = time.monotonic() + 10
            while client.get(f"{key_prefix}leader") is None and time.monotonic() < deadline:
                time.sleep(0.1)
            holder = client.get(f"{key_prefix}leader")
            # the lease, by name and this boot's token (unique per process)
            assert re.fullmatch(rb"watcher-7#[0-9a-f]{6}", holder or b""), holder
        assert container.stop() == 0, container.err
    assert "tocsin watcher · watching" in container.out
    assert f"store: redis (redis://127.0.0.1:{redis_server.port}/0)" in container.out


def test_a_bad_environment_value_stops_the_entry_command_naming_the_variable(
    tmp_path: Path,
) -> None:
    with run_image(
        tmp_path / "workdir", TOCSIN_SERVER_PORT="http", TOCSIN_PROVIDERS="opneai"
    ) as container:
        assert container.process.wait(timeout=30) == 2
    err = container.err
    assert "TOCSIN_SERVER_PORT: Input should be a valid integer" in err, err
    assert "TOCSIN_PROVIDERS (providers[0].id): 'opneai' is not in the catalog" in err, err
    assert "(did you mean 'openai'?)" in err
    assert "watching" not in container.out


# -- .dockerignore -------------------------------------------------------------------------------


def _pattern(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go's filepath.Match plus ``**``) as a regular expression."""
    parts = re.split(r"(\*\*/?|\*|\?|\[[^\]]+\])", pattern.strip("/"))
    table = {"**/": "(.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}
    return re.compile(
        "".join(
            part if part.startswith("[") else table.get(part, re.escape(part)) for part in parts
        )
    )


def in_context(path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    lines = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()]
    rules = [(line.startswith("!"), _pattern(line.lstrip("!"))) for line in lines]
    parents = [path] + [str(p) for p in Path(path).parents if str(p) != "."]
    included = True
    for keep, pattern in (rule for rule in rules if rule[1].pattern):
        if any(pattern.fullmatch(candidate) for candidate in parents):
            included = keep
    return included


def test_the_build_context_holds_what_the_dockerfile_copies_and_no_secrets() -> None:
    build = [i for i in instructions(DOCKERFILE.read_text()) if i.name == "COPY"]
    sources = [s for i in build if "--from" not in i.args for s in i.args.split()[:-1]]
    assert sources, "the build stage copies nothing?"
    for source in sources:
        files = [source] if (ROOT / source).is_file() else []
        files += [str(p.relative_to(ROOT)) for p in (ROOT / source).rglob("*.py")]
        files += [str(p.relative_to(ROOT)) for p in (ROOT / source).rglob("*.yaml")]
        assert files, source
        left_out = [f for f in files if "__pycache__" not in f and not in_context(f)]
        assert not left_out, left_out
    assert in_context("config/providers.yaml")
    assert in_context("bot/web/dashboard.html")
    for private in (".env", "tocsin.yaml", ".venv/bin/python", ".git/config", "dump.rdb"):
        assert not in_context(private), private
    assert not in_context("bot/__pycache__/cli.cpython-311.pyc")
    assert not in_context("bot/stray.pyc")
    assert not in_context("tests/test_deploy.py")


# -- docker-compose.yml --------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def interpolate(value: str, shell: Mapping[str, str]) -> str:
    """Compose's ``${NAME:-default}``: the shell's value when set and not empty."""
    return re.sub(
        r"\$\{(\w+)(?::-([^}]*))?\}",
        lambda match: shell.get(match[1]) or (match[2] or ""),
        value,
    )


def tocsin_environment(shell: Mapping[str, str]) -> dict[str, str]:
    environment = compose()["services"]["tocsin"]["environment"]
    return {key: interpolate(str(value), shell) for key, value in environment.items()}


def probe_key_variables() -> set[str]:
    catalog = load_catalog()
    entries = [catalog.get(provider_id) or {} for provider_id in catalog.ids()]
    return {
        entry["probe"]["auth"]["env"]
        for entry in entries
        if entry.get("probe", {}).get("auth", {}).get("env")
    }


def test_compose_sets_only_variables_tocsin_reads_and_no_secret_values() -> None:
    environment = compose()["services"]["tocsin"]["environment"]
    readable = set(ENV_VARIABLES) | probe_key_variables()
    unknown = sorted(set(environment) - readable)
    assert not unknown, f"tocsin reads none of {unknown}"
    assert urlsplit(environment["REDIS_URL"]).password is None  # the one secret written out
    for name in (SECRETS | probe_key_variables()) - {"REDIS_URL"}:
        if name in environment:
            assert environment[name] == f"${{{name}:-}}", f"{name}: only a placeholder here"
    assert {"SLACK_BOT_TOKEN", "TOCSIN_SLACK_CHANNELS", "REDIS_URL"} <= set(environment)


def test_compose_wires_tocsin_to_its_redis_service() -> None:
    services = compose()["services"]
    tocsin, store = services["tocsin"], services["redis"]
    url = urlsplit(tocsin["environment"]["REDIS_URL"])
    assert url.scheme in ("redis", "rediss", SENTINEL_SCHEME)
    assert url.hostname in services, url.hostname  # a service name on compose's network
    assert url.port == 6379  # redis-server's default: the command sets no --port
    assert "--port" not in store["command"]
    assert tocsin["depends_on"]["redis"]["condition"] == "service_healthy"
    assert store["image"].startswith("redis:7")
    assert store["command"][store["command"].index("--appendonly") + 1] == "yes"
    [volume] = store["volumes"]
    name, _, mount = volume.partition(":")
    assert mount == "/data"
    assert name in compose()["volumes"]  # a named volume, declared
    assert {tocsin["restart"], store["restart"]} == {"unless-stopped"}
    assert (ROOT / tocsin["build"] / "Dockerfile").is_file()


def test_compose_port_and_healthcheck_are_the_images() -> None:
    tocsin = compose()["services"]["tocsin"]
    stage = final_stage()
    container_port = image_env(stage)["TOCSIN_SERVER_PORT"]
    assert "TOCSIN_SERVER_PORT" not in tocsin["environment"]  # the image's port, then
    [published] = tocsin["ports"]
    assert published.rsplit(":", 1)[1] == container_port
    image_check = healthcheck(stage)
    assert tocsin["healthcheck"]["test"] == ["CMD", *image_check.command]
    for name in ("interval", "timeout", "start-period", "retries"):
        assert str(tocsin["healthcheck"][name.replace("-", "_")]) == image_check.options[name]


def test_compose_environment_loads_as_tocsin_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the container gets from compose, given a user's shell, through tocsin's loader."""
    shell = {"SLACK_BOT_TOKEN": "xoxb-compose-test", "TOCSIN_SLACK_CHANNELS": "C01,C02"}
    for name, value in tocsin_environment(shell).items():
        monkeypatch.setenv(name, value)
    config = load_config(None)
    assert config.store.url is not None
    assert config.store.url.get_secret_value() == "redis://redis:6379/0"
    assert config.slack is not None
    assert config.slack.bot_token is not None
    assert config.slack.bot_token.get_secret_value() == "xoxb-compose-test"
    assert [(c.id, c.providers) for c in config.slack.channels] == [("C01", "all"), ("C02", "all")]
    assert config.discord is None  # the empty placeholders count as unset
    assert config.instance == "tocsin-1"
    assert (config.log.level, config.log.format) == ("info", "console")
    main = [entry["id"] for entry in load_catalog().main()]
    assert config.provider_ids == main


def test_the_commented_replica_example_is_valid_compose_for_tocsin(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Uncommented, the example parses, shares the environment and picks a real role."""
    lines = COMPOSE.read_text().splitlines()
    start = lines.index("  # tocsin-notifier:")
    end = next(i for i in range(start, len(lines)) if not lines[i].startswith("  #"))
    lines[start:end] = ["  " + line.removeprefix("  # ") for line in lines[start:end]]
    notifier = yaml.safe_load("\n".join(lines))["services"]["tocsin-notifier"]
    assert notifier["image"] == compose()["services"]["tocsin"]["image"]
    environment = {key: interpolate(str(v), {}) for key, v in notifier["environment"].items()}
    assert environment["REDIS_URL"] == "redis://redis:6379/0"  # the same store
    assert environment["TOCSIN_ROLE"] in ("watcher", "notifier", "bot")
    assert environment["TOCSIN_INSTANCE"] != tocsin_environment({})["TOCSIN_INSTANCE"]
    assert set(environment) <= set(ENV_VARIABLES) | probe_key_variables()
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert load_config(None).instance == environment["TOCSIN_INSTANCE"]
