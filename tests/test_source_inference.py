"""The inference probe (bot/sources/inference.py), built from the config as the watcher builds
it, against the fake inference APIs (tests/fakes/inference.py) over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from bot.models import Observation, ProbeError, Status
from bot.sources import build_sources
from bot.sources.inference import InferenceProbeSource, ModelWindow
from config.loader import build_config
from tests.fakes.inference import KEY, FakeInferenceAPI
from tests.fakes.status_server import FakeStatusServer

#: provider id → (the api_url under the fake's root, its key variable, a model)
PROVIDERS = {
    "anthropic": ("", "ANTHROPIC_API_KEY", "claude-haiku-4-5"),
    "openai": ("/v1", "OPENAI_API_KEY", "gpt-4.1-nano"),
    "groq": ("/v1", "GROQ_API_KEY", "llama-3.1-8b-instant"),
    "google-gemini": ("", "GEMINI_API_KEY", "gemini-2.5-flash-lite"),
    "cohere": ("", "COHERE_API_KEY", "command-r7b-12-2024"),
}


@pytest.fixture
async def fake() -> AsyncIterator[FakeInferenceAPI]:
    api = await FakeInferenceAPI().start()
    yield api
    await api.close()


def source_for(
    fake: FakeInferenceAPI, provider: str, key: str = KEY, **probe: Any
) -> InferenceProbeSource:
    suffix, env, model = PROVIDERS[provider]
    settings = {"kind": "inference", "api_url": fake.url + suffix, "models": [model], **probe}
    entry = {"id": provider, "probe": settings, "status_page": None}  # the probe alone
    config = build_config({"providers": [entry], "upstreams": []})
    [source] = build_sources(config, {env: key}).sources
    assert isinstance(source, InferenceProbeSource)
    return source


async def check(source: InferenceProbeSource) -> list[Observation]:
    async with httpx.AsyncClient() as client:
        return await source.check(client)


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("stream", [False, True])
async def test_a_healthy_model_is_its_own_operational_component(
    fake: FakeInferenceAPI, provider: str, stream: bool
) -> None:
    model = PROVIDERS[provider][2]
    [obs] = await check(source_for(fake, provider, stream=stream))
    assert (obs.component, obs.model, obs.status, obs.error) == (
        model,
        model,
        Status.OPERATIONAL,
        None,
    ), obs.detail
    assert obs.latency_ms is not None
    assert obs.latency_p50_ms is not None
    assert fake.count(model) == 1


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_an_overload_storm_is_a_failure_counted_over_the_window(
    fake: FakeInferenceAPI, provider: str
) -> None:
    source = source_for(fake, provider)
    model = PROVIDERS[provider][2]
    fake.set(model, "overloaded")
    for _ in range(6):
        [obs] = await check(source)
    assert obs.status is Status.MAJOR_OUTAGE
    assert obs.error is ProbeError.HTTP
    # Cohere's storm is a bare 503 (no overload word in it); the others say so
    said = "HTTP 503" if provider == "cohere" else "overloaded"
    assert obs.detail is not None
    assert obs.detail.startswith("5 of 5 calls answered ")
    assert said in obs.detail


@pytest.mark.parametrize(
    ("behaviour", "error", "status"),
    [
        ("retired", ProbeError.MODEL, Status.UNKNOWN),
        ("auth", ProbeError.AUTH, Status.UNKNOWN),
        ("rate_limited", ProbeError.RATE_LIMITED, Status.OPERATIONAL),
        ("error_in_200", ProbeError.ANSWER, Status.MAJOR_OUTAGE),
        ("empty_200", ProbeError.ANSWER, Status.MAJOR_OUTAGE),
        ("not_json_200", ProbeError.ANSWER, Status.MAJOR_OUTAGE),
        ("no_stop_reason", ProbeError.ANSWER, Status.MAJOR_OUTAGE),
    ],
)
@pytest.mark.parametrize("provider", ["anthropic", "openai", "google-gemini", "cohere"])
async def test_each_answer_is_read_by_the_taxonomy(
    fake: FakeInferenceAPI, provider: str, behaviour: str, error: ProbeError, status: Status
) -> None:
    model = PROVIDERS[provider][2]
    fake.set(model, behaviour)
    [obs] = await check(source_for(fake, provider))
    assert (obs.error, obs.status) == (error, status), obs.detail
    if error is ProbeError.MODEL:
        assert obs.detail is not None
        assert model in obs.detail
        assert "update probe.models" in obs.detail


@pytest.mark.parametrize("provider", ["anthropic", "openai", "google-gemini", "cohere"])
async def test_a_stream_cut_before_its_end_is_a_failure(
    fake: FakeInferenceAPI, provider: str
) -> None:
    model = PROVIDERS[provider][2]
    fake.set(model, "truncated_stream")
    [obs] = await check(source_for(fake, provider, stream=True))
    assert (obs.error, obs.status) == (ProbeError.ANSWER, Status.MAJOR_OUTAGE), obs.detail


async def test_streaming_latency_is_the_time_to_the_first_token(
    fake: FakeInferenceAPI,
) -> None:
    model = PROVIDERS["anthropic"][2]
    fake.set(model, "slow_first_token", delay=0.4)
    [obs] = await check(source_for(fake, "anthropic", stream=True, latency_budget="100ms"))
    assert obs.error is None
    assert obs.latency_ms is not None
    assert obs.latency_ms >= 400


async def test_a_wrong_key_echoed_back_never_leaves_the_request(fake: FakeInferenceAPI) -> None:
    wrong = "sk-wrong-77c1d0e2aa9b43f1"
    source = source_for(fake, "openai", key=wrong)  # OpenAI's 401 quotes the key it got
    [obs] = await check(source)
    assert obs.error is ProbeError.AUTH
    assert wrong not in repr(obs)
    assert wrong not in repr(source)
    assert wrong[-8:] not in (obs.detail or "")
    assert any(wrong in str(r.headers) for r in fake.requests)  # it was sent, only there


def test_latency_degrades_on_the_median_with_hysteresis() -> None:
    """Budget 1000 ms, window 5: one slow call is not news; the median over the budget is;
    back only under 800 ms, so a latency hovering at the budget does not flap."""
    window = ModelWindow(5)
    seen = []
    for latency in [300, 5000, 300, 300, 1200, 1300, 1250, 950, 1050, 900, 850, 700, 700, 700]:
        window.latencies.append(float(latency))
        seen.append(window.judge_latency(1000.0))
    # medians: 300 300 300 | 1200 1200 1200 1200 1050 950 900 850 (above 800: still slow) | 700
    assert seen == [False] * 5 + [True] * 8 + [False]


async def test_a_gzip_bomb_answer_is_refused_in_bounded_steps(
    status_server: FakeStatusServer,
) -> None:
    """200 MB of zeros gzipped into a 200 KB answer: inflated in steps under the 256 KiB cap
    (the shared bounded read of bot/sources/fetch.py), never whole in memory; a failure."""
    status_server.set_gzip_bomb("/v1/chat/completions")
    settings = {"kind": "inference", "api_url": status_server.url + "/v1", "models": ["m"]}
    entry = {"id": "openai", "probe": settings, "status_page": None}
    config = build_config({"providers": [entry], "upstreams": []})
    [source] = build_sources(config, {"OPENAI_API_KEY": KEY}).sources
    assert isinstance(source, InferenceProbeSource)
    [obs] = await check(source)
    assert (obs.error, obs.status) == (ProbeError.ANSWER, Status.MAJOR_OUTAGE)
    assert obs.detail == "1 of 1 calls answered an answer over 256 KiB"
    [seen] = [r for r in status_server.requests if r.path == "/v1/chat/completions"]
    assert seen.headers.get("Accept-Encoding") == "gzip, deflate"


async def test_an_endless_stream_is_cut_at_the_cap(status_server: FakeStatusServer) -> None:
    """A 200 event stream of 2 MB of pings (no end event): read up to the cap, then a failure."""
    body = b": ping\n\n" * (2 * 1024 * 1024 // 8)
    status_server.set_bytes("/v1/chat/completions", body, content_type="text/event-stream")
    settings = {
        "kind": "inference",
        "api_url": status_server.url + "/v1",
        "models": ["m"],
        "stream": True,
    }
    entry = {"id": "openai", "probe": settings, "status_page": None}
    config = build_config({"providers": [entry], "upstreams": []})
    [source] = build_sources(config, {"OPENAI_API_KEY": KEY}).sources
    [obs] = await check(source)  # type: ignore[arg-type]
    assert (obs.error, obs.detail) == (
        ProbeError.ANSWER,
        "1 of 1 calls answered an answer over 256 KiB",
    )
