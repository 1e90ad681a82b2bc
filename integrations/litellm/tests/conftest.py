"""Fixtures: real LiteLLM Router, two fake model servers, a fake tocsin; all on 127.0.0.1."""

from __future__ import annotations

import os

# Before litellm is imported: no remote cost map, no other self-initiated fetches, no proxies.
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
os.environ["LITELLM_OFFLINE_MODE"] = "true"
os.environ["LITELLM_TELEMETRY"] = "False"
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
for _var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
    os.environ.pop(_var, None)

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import litellm
import pytest
from litellm import Router

from tocsin_litellm import TocsinLiteLLM

from .fakes import FakeModel, FakeTocsin

litellm.telemetry = False


async def wait_until(cond: Callable[[], bool], within: float = 5.0) -> None:
    """Poll a condition (no fixed sleeps): fail after ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {within}s: {cond}")
        await asyncio.sleep(0.01)


@pytest.fixture
async def model_a() -> AsyncIterator[FakeModel]:
    fake = FakeModel("A")
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def model_b() -> AsyncIterator[FakeModel]:
    fake = FakeModel("B")
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def tocsin() -> AsyncIterator[FakeTocsin]:
    fake = FakeTocsin()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
def router(model_a: FakeModel, model_b: FakeModel) -> Router:
    return Router(
        model_list=[
            {
                "model_name": "chat",
                "litellm_params": {
                    "model": "openai/model-a",
                    "api_base": model_a.api_base,
                    "api_key": "sk-fake",
                },
            },
            {
                "model_name": "chat",
                "litellm_params": {
                    "model": "openai/model-b",
                    "api_base": model_b.api_base,
                    "api_key": "sk-fake",
                },
            },
        ],
        num_retries=0,
        disable_cooldowns=True,
    )


@pytest.fixture
async def make_hook() -> AsyncIterator[Callable[..., Awaitable[TocsinLiteLLM]]]:
    """Build a TocsinLiteLLM, register it in ``litellm.callbacks`` and tear it down after."""
    made: list[TocsinLiteLLM] = []
    saved = list(litellm.callbacks)

    async def make(url: str, **kwargs: Any) -> TocsinLiteLLM:
        kwargs.setdefault("token", "secret")
        kwargs.setdefault("app", "test-app")
        kwargs.setdefault("flush_interval", 0.05)
        hook = TocsinLiteLLM(url=url, **kwargs)
        made.append(hook)
        litellm.callbacks = [*saved, hook]
        hook.start()
        return hook

    yield make
    litellm.callbacks = saved
    # LiteLLM copies ``callbacks`` into its dispatch lists on first use; take ours out of all of
    # them, or a later test's calls would still reach (and restart) a closed hook.
    for name in _DISPATCH_LISTS:
        listed = getattr(litellm, name, None)
        if isinstance(listed, list):
            listed[:] = [cb for cb in listed if not any(cb is hook for hook in made)]
    for hook in made:
        await hook.aclose()


_DISPATCH_LISTS = (
    "callbacks",
    "input_callback",
    "success_callback",
    "failure_callback",
    "_async_input_callback",
    "_async_success_callback",
    "_async_failure_callback",
    "service_callback",
)


async def call(router: Router) -> str:
    response = await router.acompletion(model="chat", messages=[{"role": "user", "content": "hi"}])
    content: str = response.choices[0].message.content
    return content
