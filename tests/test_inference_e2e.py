"""Inference probes end to end: the fake inference APIs (tests/fakes/inference.py) misbehave,
the real watcher, tracker, Redis store and dispatcher run, and the fake Slack shows what a team
would see. Nothing is mocked but the providers, Cloudflare's status page and Slack."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.models import Status
from config.loader import build_config
from config.schema import TocsinConfig
from tests.chaos import until
from tests.fakes.inference import KEY, FakeInferenceAPI
from tests.fakes.slack import FakeSlack, Message
from tests.fakes.status_server import FakeStatusServer, fixture_json
from tests.redis_server import RedisServer
from tests.running import Running

ALL, TWO, ADMIN = "C0ALL00001", "C0TWO00001", "C0ADMIN001"
SONNET, HAIKU = "claude-sonnet-4-5", "claude-haiku-4-5"
SUMMARY = "/api/v2/summary.json"


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    fake = await FakeSlack().start()
    for channel, name in ((ALL, "ai-incidents"), (TWO, "team-two"), (ADMIN, "tocsin-admin")):
        fake.add_channel(channel, name)
    yield fake
    await fake.close()


@pytest.fixture
async def api() -> AsyncIterator[FakeInferenceAPI]:
    fake = await FakeInferenceAPI().start()
    yield fake
    await fake.close()


def shown(message: Message) -> str:
    """Everything a reader sees of a message (its latest version)."""
    return f"{message.text}\n{message.blocks}\n{message.attachments}"


def config(
    redis_server: RedisServer,
    key_prefix: str,
    slack: FakeSlack,
    providers: list[dict[str, Any]],
    two: list[str] | None = None,
    **extra: Any,
) -> TocsinConfig:
    channels: list[dict[str, Any]] = [{"id": ALL, "providers": "all", "min_status": "degraded"}]
    if two:
        channels.append({"id": TWO, "providers": two, "min_status": "degraded"})
    return build_config(
        {
            "store": {"url": redis_server.url, "prefix": key_prefix},
            "server": {"enabled": False},
            "console": {"enabled": False},
            "watch": {"jitter": "0s", "timeout": "2s", "self_check_min_providers": 5},
            "providers": providers,
            "slack": {
                "api_url": slack.api_url,
                "bot_token": slack.bot_token,
                "app_token": slack.app_token,
                "admin_channel": ADMIN,
                "channels": channels,
            },
            **extra,
        }
    )


def inference(provider: str, url: str, models: list[str], **probe: Any) -> dict[str, Any]:
    """A catalog provider probed only by inference against the fake (its page left out)."""
    settings = {
        "kind": "inference",
        "api_url": url,
        "models": models,
        "interval": "300ms",
        "timeout": "2s",
        "auth": {"key": KEY},
        **probe,
    }
    return {"id": provider, "status_page": None, "probe": settings, "upstreams": []}


async def test_one_model_of_two_failing_is_one_notice_naming_it_the_provider_partial(
    redis_server: RedisServer, key_prefix: str, slack: FakeSlack, api: FakeInferenceAPI
) -> None:
    cfg = config(
        redis_server, key_prefix, slack, [inference("anthropic", api.url, [SONNET, HAIKU])]
    )
    running = Running(cfg)
    try:
        await api.wait_calls(SONNET, 3)  # both healthy and known
        api.set(SONNET, "overloaded")
        await until(lambda: len(slack.top_level(ALL)) == 1)
        calls = api.count(SONNET)
        await api.wait_calls(SONNET, calls + 6)  # a few more rounds of the storm
        [root] = slack.top_level(ALL)
        text = shown(root)
        assert "partial outage" in text.lower()
        assert "Claude Sonnet 4.5" in text
        assert "529 overloaded" in text
        assert "Claude Haiku 4.5 operational" in text
        assert slack.replies(ALL, root.ts) == []  # one notice, nothing repeated
        states = await running.runtime.store.states()
        assert states[f"anthropic/{SONNET}"].status is Status.MAJOR_OUTAGE
        assert states[f"anthropic/{HAIKU}"].status is Status.OPERATIONAL
        assert KEY not in str(states)
        assert KEY not in text
    finally:
        await running.halt()


async def test_latency_creeping_over_the_budget_is_one_degraded_notice_without_flapping(
    redis_server: RedisServer, key_prefix: str, slack: FakeSlack, api: FakeInferenceAPI
) -> None:
    probe = inference(
        "anthropic", api.url, [HAIKU], latency_budget="250ms", latency_window=3, timeout="3s"
    )
    running = Running(config(redis_server, key_prefix, slack, [probe]))
    try:
        await api.wait_calls(HAIKU, 3)
        api.set(HAIKU, "ok", delay=0.4)  # over the budget
        await until(lambda: len(slack.top_level(ALL)) == 1, timeout=30)
        [root] = slack.top_level(ALL)
        assert "degraded" in shown(root).lower()
        assert "median" in shown(root)
        # hovering around the budget (over 80 % of it): no recovery, no flapping
        for delay in (0.22, 0.28, 0.23, 0.27, 0.22, 0.26):
            api.set(HAIKU, "ok", delay=delay)
            await api.wait_calls(HAIKU, api.count(HAIKU) + 1, timeout=10)
        assert slack.top_level(ALL) == [root]
        assert slack.replies(ALL, root.ts) == []
        api.set(HAIKU, "ok")
        await until(lambda: len(slack.replies(ALL, root.ts)) == 1, timeout=30)
        assert "recovered" in shown(slack.replies(ALL, root.ts)[0]).lower()
        assert len(slack.top_level(ALL)) == 1
    finally:
        await running.halt()


def cloudflare_incident() -> dict[str, Any]:
    """Cloudflare's page (Statuspage) with an open incident, from a real captured payload."""
    payload = copy.deepcopy(fixture_json("statuspage_summary_anthropic_minor_monitoring.json"))
    payload["incidents"][0]["name"] = "Widespread 5xx errors on the Cloudflare network"
    payload["incidents"][0]["status"] = "investigating"
    return payload


async def test_three_providers_failing_under_a_cloudflare_incident_are_one_root_per_channel(
    redis_server: RedisServer,
    key_prefix: str,
    slack: FakeSlack,
    api: FakeInferenceAPI,
    status_server: FakeStatusServer,
) -> None:
    status_server.set_json(SUMMARY, cloudflare_incident())
    openai_url = api.url + "/v1"
    providers = [
        {**inference(p, openai_url, [model]), "upstreams": ["cloudflare"]}
        for p, model in (("openai", "gpt-4.1-nano"), ("groq", "llama-3.1-8b"), ("xai", "grok"))
    ]
    upstream = {
        "id": "cloudflare",
        "name": "Cloudflare",
        "status_page": {"kind": "statuspage", "url": status_server.url, "interval": "300ms"},
    }
    cfg = config(
        redis_server,
        key_prefix,
        slack,
        providers,
        two=["openai", "groq"],
        upstreams=[upstream],
        grouping={"group_wait": "3s"},
    )
    running = Running(cfg)
    try:
        for model in ("gpt-4.1-nano", "llama-3.1-8b", "grok"):
            await api.wait_calls(model, 2)
        await until(lambda: status_server.count(SUMMARY) >= 1)
        for model in ("gpt-4.1-nano", "llama-3.1-8b", "grok"):
            api.set(model, "status", code=502)
        await until(lambda: slack.top_level(ALL) != [] and slack.top_level(TWO) != [], 30)
        await until(lambda: len(slack.top_level(ALL)[0].edits) >= 0 and _settled(slack), 30)
        [root_all] = slack.top_level(ALL)
        [root_two] = slack.top_level(TWO)
        for root, names in ((root_all, ("OpenAI", "Groq", "xAI")), (root_two, ("OpenAI", "Groq"))):
            text = shown(root)
            assert "likely cause: Cloudflare" in text, text
            assert "Widespread 5xx errors on the Cloudflare network" in text
            assert all(name in text for name in names), text
        assert "xAI" not in shown(root_two)
        events = await running.runtime.store.recent_events(50)
        causes = {e.provider: e.cause for e in events if e.type == "state_changed" and e.cause}
        assert set(causes) == {"openai", "groq", "xai"}
    finally:
        await running.halt()


def _settled(slack: FakeSlack) -> bool:
    """Every provider's notice is accounted for: no second root appeared in either channel."""
    return len(slack.top_level(ALL)) == 1 and len(slack.top_level(TWO)) == 1
