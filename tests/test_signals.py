"""``POST /api/v1/signals`` and ``POST /v1/traces`` over real HTTP into a real Redis."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp import web

from bot import metrics
from bot.server import Health, build_app, start_server
from bot.signals import GENAI_PROVIDERS, classify
from bot.sources.traffic import TrafficReader, TrafficSettings
from bot.store import RedisStore
from bot.store.base import SignalTally
from config.loader import build_config
from config.schema import TocsinConfig
from tests.redis_server import RedisServer, free_port

TOKEN = "tok-checkout-0123456789abcdef"
OTHER = "tok-search-0123456789abcdef00"
SONNET = "claude-sonnet-4-5"


def signals_config(redis_server: RedisServer, key_prefix: str, **signals: Any) -> TocsinConfig:
    return build_config(
        {
            "store": {"url": redis_server.url, "prefix": key_prefix},
            "console": {"enabled": False},
            "providers": [
                {"id": p, "status_page": None, "probe": {"enabled": False}, "upstreams": []}
                for p in ("anthropic", "openai", "google-gemini")
            ],
            "signals": {
                "tokens": [
                    {"name": "checkout", "token": TOKEN},
                    {"name": "search", "token": OTHER},
                ],
                **signals,
            },
        }
    )


class Served:
    def __init__(self, config: TocsinConfig, store: RedisStore, runner: web.AppRunner, url: str):
        self.config, self.store, self.runner, self.url = config, store, runner, url
        self.client = httpx.AsyncClient(base_url=url, timeout=10)

    async def post(self, path: str, body: Any, token: str | None = TOKEN, **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        headers.update(kw.pop("headers", {}))
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
        return await self.client.post(path, content=content, headers=headers, **kw)

    async def sums(self) -> dict[tuple[str, str], SignalTally]:
        s = self.config.signals
        settings = TrafficSettings(s.window, s.min_calls, s.error_rate, s.interval)
        reader = TrafficReader(self.store, settings, self.config.provider_ids)
        return (await reader.snapshot()).pairs


async def serve(config: TocsinConfig) -> Served:
    assert config.store.url is not None
    store = RedisStore(config.store.url.get_secret_value(), prefix=config.store.prefix)
    await store.open()
    port = free_port()
    runner = await start_server(build_app(config, store, Health(store=store)), "127.0.0.1", port)
    return Served(config, store, runner, f"http://127.0.0.1:{port}")


@pytest.fixture
async def served(redis_server: RedisServer, key_prefix: str) -> AsyncIterator[Served]:
    s = await serve(signals_config(redis_server, key_prefix))
    yield s
    await s.client.aclose()
    await s.runner.cleanup()
    await s.store.close()


def calls(n: int, *, ok: bool = False, status: int | None = 529, **extra: Any) -> list[Any]:
    item = {"provider": "anthropic", "model": SONNET, "ok": ok, "status": status, **extra}
    if status is None:
        item.pop("status")
    return [dict(item) for _ in range(n)]


def metric(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_good_token_is_counted_into_the_buckets(served: Served) -> None:
    body = {"signals": calls(37, error_type="overloaded") + calls(3, ok=True, status=200)}
    answer = await served.post("/api/v1/signals", body)
    assert answer.status_code == 202
    assert answer.json() == {"accepted": 40, "rejected": 0}
    tally = (await served.sums())[("anthropic", SONNET)]
    assert (tally.calls, tally.failures) == (40, 37)
    assert tally.errors == {"529 overloaded": 37}
    assert tally.app_calls == {"checkout": 40}  # the token's name, no app given


@pytest.mark.parametrize("token", [None, "wrong-token-0123456789abcd", "x", TOKEN[:-1]])
async def test_a_bad_or_missing_token_is_one_401(served: Served, token: str | None) -> None:
    before = metric("tocsin_signal_batches_total", endpoint="signals", result="unauthorized")
    answer = await served.post("/api/v1/signals", {"signals": calls(30)}, token=token)
    assert answer.status_code == 401
    assert answer.json() == {"error": "missing or wrong bearer token"}
    otlp = await served.post("/v1/traces", {"resourceSpans": []}, token=token)
    assert otlp.status_code == 401
    assert await served.sums() == {}
    after = metric("tocsin_signal_batches_total", endpoint="signals", result="unauthorized")
    assert after == before + 1


async def test_a_missing_and_a_wrong_token_take_the_same_path(served: Served) -> None:
    """Every configured token is compared (of equal-length digests) whatever is offered."""
    from bot import signals as module

    seen: list[tuple[bytes, bytes]] = []
    real = module.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        seen.append((a, b))
        return real(a, b)

    module.hmac.compare_digest = spy  # type: ignore[assignment]
    try:
        for token in (None, "x" * 40, TOKEN):
            seen.clear()
            await served.post("/api/v1/signals", {"signals": []}, token=token)
            assert len(seen) == 2  # both tokens, every time
            assert {len(a) for a, _ in seen} == {32}
    finally:
        module.hmac.compare_digest = real


async def test_an_oversized_body_and_batch_are_413(served: Served) -> None:
    big = b'{"signals": [' + b" " * (1024 * 1024 + 10) + b"]}"
    answer = await served.post("/api/v1/signals", big)
    assert answer.status_code == 413
    answer = await served.post("/api/v1/signals", {"signals": calls(1001)})
    assert answer.status_code == 413
    spans = [_span("anthropic", SONNET) for _ in range(1001)]
    assert (await served.post("/v1/traces", _otlp(spans))).status_code == 413
    assert await served.sums() == {}


async def test_garbage_items_are_rejected_never_a_500(served: Served) -> None:
    garbage: list[Any] = [
        None,
        7,
        "x",
        [],
        {},
        {"provider": "acme-unwatched", "model": SONNET, "ok": False},
        {"provider": "anthropic", "model": "bad model with spaces", "ok": False},
        {"provider": "anthropic", "model": "x" * 500, "ok": False},
        {"provider": "anthropic", "model": SONNET, "ok": "perhaps"},
        {"provider": "anthropic", "model": SONNET, "ok": False, "status": 99999},
        {"provider": "anthropic", "model": SONNET, "ok": False, "error_type": "<script>"},
        {"provider": "anthropic", "model": SONNET, "ok": False, "latency_ms": -5},
        {"provider": "anthropic", "model": SONNET, "ok": False, "at": "yesterday-ish"},
        {"provider": {"$gt": ""}, "model": SONNET, "ok": False},
        {"provider": "ANTHROPIC", "model": SONNET, "ok": False},
    ]
    answer = await served.post("/api/v1/signals", {"signals": garbage + calls(2)})
    assert answer.status_code == 202
    assert answer.json() == {"accepted": 2, "rejected": len(garbage)}
    for body in (b"not json", b"[1,2]", b'{"signals": 5}', b'{"signals": [], "app": "A B"}'):
        assert (await served.post("/api/v1/signals", body)).status_code == 400
    deep = b'{"signals": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    assert (await served.post("/api/v1/signals", deep)).status_code == 400
    assert (await served.sums())[("anthropic", SONNET)].calls == 2
    states = await served.store.states()
    assert states == {}  # no state from ingesting


async def test_times_are_clamped_to_the_window(served: Served) -> None:
    body = {"signals": calls(3, at=0) + calls(3, at=time.time() + 10**9)}
    assert (await served.post("/api/v1/signals", body)).json()["accepted"] == 6
    assert (await served.sums())[("anthropic", SONNET)].calls == 6  # all inside the window


async def test_a_flood_from_one_token_is_429_with_retry_after(
    redis_server: RedisServer, key_prefix: str
) -> None:
    s = await serve(signals_config(redis_server, key_prefix, rate=2))
    try:
        before = metric("tocsin_signals_rate_limited_total", token="checkout")
        answers = [
            (await s.post("/api/v1/signals", {"signals": calls(1)})).status_code for _ in range(6)
        ]
        assert answers[:2] == [202, 202]
        assert 429 in answers
        limited = await s.post("/api/v1/signals", {"signals": calls(1)})
        assert limited.status_code == 429
        assert int(limited.headers["Retry-After"]) >= 1
        assert metric("tocsin_signals_rate_limited_total", token="checkout") > before
        # another token has its own bucket
        assert (await s.post("/api/v1/signals", {"signals": []}, token=OTHER)).status_code == 202
        assert (await s.sums())[("anthropic", SONNET)].calls < 6
        assert await s.store.states() == {}  # never an outage
    finally:
        await s.client.aclose()
        await s.runner.cleanup()
        await s.store.close()


# -- OTLP ------------------------------------------------------------------------------------


def _attr(key: str, value: Any) -> dict[str, Any]:
    """As the OpenTelemetry SDK's JSON exporter writes an attribute (int64 as a string)."""
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    if isinstance(value, float):
        return {"key": key, "value": {"doubleValue": value}}
    return {"key": key, "value": {"stringValue": value}}


def _span(
    system: str,
    model: str,
    *,
    error: str | None = None,
    http: int | None = None,
    old: bool = False,
) -> dict[str, Any]:
    end = time.time_ns()
    attrs = [
        _attr("gen_ai.system" if old else "gen_ai.provider.name", system),
        _attr("gen_ai.operation.name", "chat"),
        _attr("gen_ai.request.model", model),
        _attr("gen_ai.usage.input_tokens", 12),
    ]
    if error:
        attrs.append(_attr("error.type", error))
    if http is not None:
        attrs.append(_attr("http.response.status_code", http))
    return {
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": "eee19b7ec3c1b174",
        "name": f"chat {model}",
        "kind": 3,
        "startTimeUnixNano": str(end - 812_000_000),
        "endTimeUnixNano": str(end),
        "attributes": attrs,
        "status": {"code": 2, "message": "overloaded"} if error else {"code": 0},
    }


def _otlp(spans: list[Any], service: str | None = None) -> dict[str, Any]:
    resource: dict[str, Any] = {"attributes": []}
    if service:
        resource["attributes"].append(_attr("service.name", service))
    return {
        "resourceSpans": [
            {
                "resource": resource,
                "scopeSpans": [
                    {
                        "scope": {"name": "opentelemetry.instrumentation.anthropic"},
                        "spans": spans,
                    }
                ],
            }
        ]
    }


async def test_an_otlp_batch_as_the_sdk_exports_it(served: Served) -> None:
    spans = (
        [_span("anthropic", SONNET, error="overloaded_error", http=529) for _ in range(5)]
        + [_span("anthropic", SONNET) for _ in range(2)]
        + [_span("openai", "gpt-5", error="RateLimitError", http=429, old=True)]
        + [_span("gcp.gemini", "gemini-2.5-flash", error="timeout")]
    )
    not_genai = {"name": "GET /", "attributes": [_attr("http.route", "/")], "status": {}}
    answer = await served.post("/v1/traces", _otlp([*spans, not_genai], service="checkout"))
    assert answer.status_code == 200
    assert answer.json() == {"partialSuccess": {"rejectedSpans": 0}}
    sums = await served.sums()
    sonnet = sums[("anthropic", SONNET)]
    assert (sonnet.calls, sonnet.failures) == (7, 5)
    assert sonnet.errors == {"529 overloaded_error": 5}
    assert 800 <= sonnet.latency_ms / sonnet.latency_n <= 825
    gpt = sums[("openai", "gpt-5")]
    assert (gpt.calls, gpt.failures, gpt.rate_limited) == (1, 0, 1)
    assert sums[("google-gemini", "gemini-2.5-flash")].failures == 1


async def test_garbage_spans_are_rejected_and_counted(served: Served) -> None:
    good = _span("anthropic", SONNET)
    garbage: list[Any] = [
        None,
        "span",
        _span("acme", SONNET),  # unknown provider
        _span("anthropic", "bad model"),
        {**good, "endTimeUnixNano": "soon"} | {"startTimeUnixNano": "123"},
        {**good, "startTimeUnixNano": str(10**30)},
        {
            **good,
            "attributes": [*good["attributes"], _attr("http.response.status_code", 99999)],
        },
        {**good, "attributes": [_attr("gen_ai.system", "anthropic")]},  # no model
    ]
    answer = await served.post("/v1/traces", _otlp([good, *garbage]))
    assert answer.status_code == 200
    partial = answer.json()["partialSuccess"]
    assert partial["rejectedSpans"] >= 6
    assert "errorMessage" in partial
    for body in (b"{}", b'{"resourceSpans": 1}', b"\xff\xfe"):
        assert (await served.post("/v1/traces", body)).status_code == 400
    proto = await served.post(
        "/v1/traces", b"\x0a\x00", headers={"Content-Type": "application/x-protobuf"}
    )
    assert proto.status_code == 415
    assert (await served.sums())[("anthropic", SONNET)].calls <= 2
    assert await served.store.states() == {}


def test_classification() -> None:
    assert classify(False, 429, None) == "rate_limited"
    assert classify(False, None, "rate_limit_error") == "rate_limited"
    assert classify(False, 529, "overloaded") == "failure"
    assert classify(False, None, "timeout") == "failure"
    assert classify(False, 400, "invalid_request") == "client_error"
    assert classify(True, 200, None) == "ok"
    assert GENAI_PROVIDERS["mistral_ai"] == "mistral"
    assert GENAI_PROVIDERS["x_ai"] == "xai"
