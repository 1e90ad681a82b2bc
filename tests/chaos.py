"""Real ``tocsin run`` processes for the chaos tests: start, kill -9, stop, ask their health.

Each process gets its own config file and log file (under the test's ``tmp_path``), its own
HTTP port for ``/healthz`` and ``/metrics``, and an environment without the developer's
secrets or proxies (``tests.test_cli.cli_env``). Extra environment (``env=``) lets a test cut
one replica's network (an unreachable proxy) while the others keep theirs.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.redis_server import free_port
from tests.test_cli import TOCSIN, cli_env


async def until(
    predicate: Callable[[], bool | Awaitable[bool]], timeout: float = 20.0, every: float = 0.05
) -> None:
    """Wait for ``predicate`` (sync or async) to hold; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s")
        await asyncio.sleep(every)


def probed_provider_config(
    redis_url: str,
    prefix: str,
    slack_api_url: str,
    slack_token: str,
    probe_url: str,
    channels: list[str],
    **store: Any,
) -> dict[str, Any]:
    """The chaos tests' usual world: provider ``acme`` probed at ``probe_url`` every 300 ms,
    every notice to the Slack ``channels``, no console, the store at ``redis_url``."""
    return {
        "store": {"url": redis_url, "prefix": prefix, **store},
        "console": {"enabled": False},
        "watch": {"jitter": "0s"},
        "providers": [
            {
                "id": "acme",
                "name": "Acme AI",
                "probe": {"url": probe_url, "interval": "300ms", "timeout": "1s"},
            }
        ],
        "slack": {
            "api_url": slack_api_url,
            "bot_token": slack_token,
            "channels": [{"id": channel} for channel in channels],
        },
    }


class TocsinProcess:
    """One replica: ``await p.start()``, ``p.kill()`` (SIGKILL), ``await p.stop()``.

    ``name`` names its files and, unless ``named=False``, its ``instance``; with
    ``named=False`` the config sets none (the default config), so the process is named
    after the host, as two replicas on one host that nobody named would be.
    """

    def __init__(
        self,
        directory: Path,
        name: str,
        config: dict[str, Any],
        *,
        role: str = "all",
        env: dict[str, str] | None = None,
        named: bool = True,
    ) -> None:
        self.name = name
        self.role = role
        self.port = free_port()
        self.directory = directory
        self.config = {
            **config,
            **({"instance": name} if named else {}),
            "server": {"enabled": True, "host": "127.0.0.1", "port": self.port},
        }
        if not named:
            self.config.pop("instance", None)
        self.config_path = directory / f"{name}.yaml"
        self.log_path = directory / f"{name}.log"
        self.env = cli_env()
        self.env.update(env or {})
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> TocsinProcess:
        self.config_path.write_text(yaml.safe_dump(self.config))
        log = self.log_path.open("ab")
        try:
            self.process = await asyncio.create_subprocess_exec(
                str(TOCSIN),
                "run",
                "--role",
                self.role,
                "--config",
                str(self.config_path),
                cwd=self.directory,
                env=self.env,
                stdout=log,
                stderr=log,
            )
        finally:
            log.close()
        return self

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def kill(self) -> None:
        """SIGKILL: no cleanup, no lease release, deliveries cut wherever they are."""
        if self.running and self.process is not None:
            self.process.send_signal(signal.SIGKILL)

    async def wait(self, timeout: float = 20.0) -> int | None:
        if self.process is None:
            return None
        return await asyncio.wait_for(self.process.wait(), timeout)

    async def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM and wait (SIGKILL if it does not stop in time); the exit code."""
        if self.process is None:
            return None
        if self.running:
            self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            self.kill()
            await self.process.wait()
            raise AssertionError(f"{self.name} did not stop within {timeout} s") from None

    async def health(self) -> dict[str, Any] | None:
        """``/healthz``, or ``None`` while it does not answer."""
        try:
            async with httpx.AsyncClient(trust_env=False, timeout=2.0) as client:
                response = await client.get(f"http://127.0.0.1:{self.port}/healthz")
            body: dict[str, Any] = response.json()
            return body
        except (httpx.HTTPError, ValueError):
            return None

    async def metrics(self) -> str:
        async with httpx.AsyncClient(trust_env=False, timeout=2.0) as client:
            response = await client.get(f"http://127.0.0.1:{self.port}/metrics")
        return response.text

    async def wait_healthy(self, timeout: float = 20.0) -> None:
        async def answers() -> bool:
            return await self.health() is not None

        await until(answers, timeout)

    async def start_healthy(self, timeout: float = 30.0, attempts: int = 3) -> TocsinProcess:
        """``start()`` and wait for ``/healthz``. Its port was free when chosen, but another
        process can take it before this one binds: then start again on a new port. Any other
        early exit, or no answer in time, fails with the end of the process's log."""
        for _ in range(attempts):
            printed = len(self.log())
            await self.start()

            async def settled() -> bool:
                return not self.running or await self.health() is not None

            try:
                await until(settled, timeout)
            except AssertionError:
                tail = self.log()[-3000:]
                raise AssertionError(f"{self.name} never answered /healthz:\n{tail}") from None
            if self.running:
                return self
            if "address already in use" not in self.log()[printed:]:
                break
            self.port = free_port()
            self.config["server"]["port"] = self.port
        raise AssertionError(f"{self.name} exited at start:\n{self.log()[-3000:]}")

    def log(self) -> str:
        """What the process printed (for assertions and for a failing test's report)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
