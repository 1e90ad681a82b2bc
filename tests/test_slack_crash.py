"""A real ``tocsin run`` process is killed (SIGKILL) after Slack took its message but before
it heard back: the restarted process must not post that notice again, and must still reply
in the right thread when the outage ends."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import yaml

from tests.fakes.slack import FakeSlack
from tests.fakes.status_server import FakeStatusServer
from tests.redis_server import RedisServer

CHANNEL = "C0CRASH001"
MODELS = "/v1/models"
TOCSIN = Path(sys.executable).parent / "tocsin"


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    fake = await FakeSlack().start()
    fake.add_channel(CHANNEL, "ai-incidents")
    yield fake
    await fake.close()


async def _until(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.05)


async def _start(config: Path, cwd: Path) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_TOKEN", "_KEY", "_SECRET"))}
    env.pop("REDIS_URL", None)
    return await asyncio.create_subprocess_exec(
        str(TOCSIN),
        "run",
        "--config",
        str(config),
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


@pytest.mark.chaos
async def test_killed_between_posting_and_recording(
    slack: FakeSlack,
    status_server: FakeStatusServer,
    redis_server: RedisServer,
    key_prefix: str,
    tmp_path: Path,
) -> None:
    status_server.set_json(MODELS, {"data": []})
    config = tmp_path / "tocsin.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "store": {"url": redis_server.url, "prefix": key_prefix},
                "server": {"enabled": False},
                "console": {"enabled": False},
                "instance": "crash-test",
                "watch": {"jitter": "0s"},
                "providers": [
                    {
                        "id": "acme",
                        "name": "Acme AI",
                        "probe": {
                            "url": f"{status_server.url}{MODELS}",
                            "interval": "300ms",
                            "timeout": "1s",
                        },
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
    first = await _start(config, tmp_path)
    await asyncio.sleep(2.0)  # healthy rounds
    slack.hold_answer("chat.postMessage", 60)
    status_server.set_status(MODELS, 503)
    await asyncio.wait_for(slack.held.wait(), 20)  # Slack has the message; tocsin does not know
    first.send_signal(signal.SIGKILL)
    await first.wait()
    slack.holds.clear()
    assert len(slack.top_level(CHANNEL)) == 1
    root = slack.top_level(CHANNEL)[0]

    second = await _start(config, tmp_path)
    try:
        await _until(lambda: bool(slack.calls_to("conversations.history")))  # it looked first
        await asyncio.sleep(1.0)
        assert len(slack.top_level(CHANNEL)) == 1, "the notice was posted twice"
        status_server.set_json(MODELS, {"data": []})
        await _until(lambda: len(slack.replies(CHANNEL, root.ts)) == 1)
    finally:
        second.send_signal(signal.SIGTERM)
        await asyncio.wait_for(second.wait(), 20)
    assert second.returncode == 0
    assert len(slack.top_level(CHANNEL)) == 1
    assert "recovered" in slack.replies(CHANNEL, root.ts)[0].text
    posts = [c for c in slack.calls_to("chat.postMessage") if c.params.get("thread_ts") is None]
    assert len(posts) == 1
    assert slack.violations == []
