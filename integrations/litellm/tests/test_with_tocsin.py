"""End to end with a real tocsin: a real LiteLLM Router between deployments A and B (fake
OpenAI-compatible servers), this package's hook, and tocsin itself (watcher, tracker, store,
dispatcher, HTTP server) in this event loop, telling the local fake Slack.

A starts answering 529 → the hook's signals make tocsin suspect it → tocsin's route stream says
so → the router sends calls to B, and Slack hears of it "from your app's traffic"; A recovers →
its calls return; tocsin stops → nothing changes for the app."""

from __future__ import annotations

import asyncio
import importlib.util
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import litellm
import pytest
from bot.app import assemble, run
from bot.store import MemoryStore
from config.loader import build_config
from litellm import Router

from tocsin_litellm import TocsinLiteLLM

from .conftest import call, wait_until
from .fakes import FakeModel

REPO = Path(__file__).resolve().parents[3]
TOKEN = "checkout-signal-token-7d1f0a9e3c"
CHANNEL = "C0ALL00001"


def _load(name: str, path: Path) -> ModuleType:
    """tocsin's own fake Slack, by path (this suite's package is also called ``tests``)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


fake_slack = _load("tocsin_fake_slack", REPO / "tests" / "fakes" / "slack.py")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
async def slack() -> AsyncIterator[Any]:
    fake = await fake_slack.FakeSlack().start()
    fake.add_channel(CHANNEL, "ai-incidents")
    yield fake
    await fake.close()


class Tocsin:
    """tocsin run, in this loop; ``stop()`` is SIGTERM's clean stop."""

    def __init__(self, slack: Any) -> None:
        self.port = _free_port()
        config = build_config(
            {
                "server": {"host": "127.0.0.1", "port": self.port},
                "console": {"enabled": False},
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
                    "tokens": [{"name": "checkout", "token": TOKEN}],
                    "window": "10s",
                    "min_calls": 5,
                    "interval": "300ms",
                },
                "routes": {"chat": ["openai/model-a", "openai/model-b"]},
                "slack": {
                    "api_url": slack.api_url,
                    "bot_token": slack.bot_token,
                    "app_token": slack.app_token,
                    "channels": [{"id": CHANNEL, "providers": "all", "min_status": "degraded"}],
                },
            }
        )
        runtime = assemble(config, "all", store=MemoryStore(), env={})
        self.halt = asyncio.Event()
        self.task = asyncio.create_task(run(runtime, self.halt))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        self.halt.set()
        await asyncio.wait_for(self.task, 20)


async def calls(router: Router, count: int) -> int:
    """``count`` calls; how many raised (the app would have seen the error)."""
    failed = 0
    for _ in range(count):
        try:
            await call(router)
        except Exception:
            failed += 1
    return failed


@pytest.mark.timeout(120)
async def test_an_app_routes_around_an_outage_its_own_traffic_showed(
    router: Router,
    model_a: FakeModel,
    model_b: FakeModel,
    slack: Any,
    make_hook: Callable[..., Awaitable[TocsinLiteLLM]],
) -> None:
    tocsin = Tocsin(slack)
    try:
        await wait_until(lambda: _listening(tocsin.port), 20)
        hook = await make_hook(tocsin.url, token=TOKEN, app="checkout", max_age=30)
        assert await calls(router, 10) == 0
        await wait_until(hook.routes.fresh, 10)
        # A starts answering 529: the app's calls to it fail until tocsin routes it away
        model_a.status = 529
        failed = made = 0
        while "openai/model-a" not in hook.routes.unhealthy and made < 400:
            failed += await calls(router, 1)
            made += 1
            await asyncio.sleep(0.05)  # an app making 20 calls a second
        assert "openai/model-a" in hook.routes.unhealthy
        # the first few fail (half the calls of about two seconds), not the outage's worth
        assert failed <= 60, (failed, made)
        hits_a = model_a.hits
        assert await calls(router, 30) == 0  # every call now goes to B
        assert model_a.hits == hits_a
        await wait_until(lambda: len(slack.top_level(CHANNEL)) == 1, 20)
        notice = _shown(slack.top_level(CHANNEL)[0])
        assert "from your app's traffic" in notice
        assert "model-a" in notice
        assert TOKEN not in notice
        # A recovers: tocsin no longer sees it failing (no calls reach it), releases it, and
        # its share of the calls comes back
        model_a.status = 200
        for _ in range(600):
            await calls(router, 1)
            if model_a.hits > hits_a:
                break
            await asyncio.sleep(0.05)
        assert model_a.hits > hits_a
        # tocsin stops: the app carries on, routing as LiteLLM would, raising nothing
        await tocsin.stop()
        assert await calls(router, 20) == 0
        await wait_until(
            lambda: hook.dropped > 0 or hook.failed_posts > 0, 15
        )  # counted, not raised
    finally:
        if not tocsin.task.done():
            await tocsin.stop()
        litellm.callbacks = []


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _shown(message: Any) -> str:
    return f"{message.text}\n{message.blocks}\n{message.attachments}"
