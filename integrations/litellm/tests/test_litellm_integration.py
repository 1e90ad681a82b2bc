"""tocsin_litellm against a real LiteLLM Router, fake model servers and a fake tocsin."""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime

import litellm
import pytest

from tocsin_litellm import TocsinLiteLLM, classify_error, from_env, target_of

from .conftest import call, wait_until

A, B = "openai/model-a", "openai/model-b"


async def test_outcomes_reach_tocsin_in_batches(router, model_a, model_b, tocsin, make_hook):
    hook = await make_hook(tocsin.url, batch_size=4, route=False)
    for _ in range(6):
        assert (await call(router)).startswith("hi from")
    model_a.status = model_b.status = 529
    for _ in range(3):
        with pytest.raises(litellm.APIError):
            await call(router)
    model_a.status = model_b.status = 503
    with pytest.raises(litellm.ServiceUnavailableError):
        await call(router)

    await wait_until(lambda: len(tocsin.signals) == 10)
    assert len(tocsin.batches) >= 3
    assert all(b["app"] == "test-app" and len(b["signals"]) <= 4 for b in tocsin.batches)
    signals = tocsin.signals
    ok = [s for s in signals if s["ok"]]
    failed = [s for s in signals if not s["ok"]]
    assert len(ok) == 6 and len(failed) == 4
    for s in signals:
        assert s["provider"] == "openai"
        assert s["model"] in {"model-a", "model-b"}
        assert s["latency_ms"] > 0
        assert s["at"].endswith("Z")
        assert abs(datetime.fromisoformat(s["at"]).timestamp() - time.time()) < 60
    assert all(s["status"] == 200 and s["error_type"] is None for s in ok)
    kinds = Counter((s["status"], s["error_type"]) for s in failed)
    assert kinds == {(529, "overloaded_error"): 3, (503, "service_unavailable_error"): 1}
    assert hook.sent == 10 and hook.dropped == 0 and hook.failed_posts == 0


async def test_router_avoids_what_tocsin_calls_unhealthy(
    router, model_a, model_b, tocsin, make_hook
):
    tocsin.set_route("chat", [(A, False), (B, True)])
    hook = await make_hook(tocsin.url, report=False)
    await wait_until(lambda: hook.routes.fresh() and A in hook.routes.unhealthy)
    assert {await call(router) for _ in range(12)} == {"hi from B"}
    assert model_a.hits == 0

    # A group change arrives on the open stream; the router follows it.
    tocsin.set_route("chat", [(A, True), (B, False)])
    await wait_until(lambda: hook.routes.unhealthy == {B})
    before = model_b.hits
    assert {await call(router) for _ in range(12)} == {"hi from A"}
    assert model_b.hits == before

    # Every candidate unhealthy: nothing left to prefer, so the router's own choice stands.
    tocsin.set_route("chat", [(A, False), (B, False)])
    await wait_until(lambda: hook.routes.unhealthy == {A, B})
    assert {await call(router) for _ in range(30)} == {"hi from A", "hi from B"}


async def test_tocsin_stopped_fails_open(router, model_a, model_b, tocsin, make_hook):
    tocsin.set_route("chat", [(A, False), (B, True)])
    hook = await make_hook(tocsin.url, max_age=0.5)
    await wait_until(lambda: hook.routes.fresh() and A in hook.routes.unhealthy)
    assert {await call(router) for _ in range(6)} == {"hi from B"}
    await tocsin.stop()

    # The snapshot ages out; then the router picks from both again, and no error surfaces.
    await wait_until(lambda: not hook.routes.fresh())
    assert {await call(router) for _ in range(30)} == {"hi from A", "hi from B"}
    await wait_until(lambda: hook.failed_posts >= 1)
    assert hook.dropped >= 1


async def test_tocsin_garbage_fails_open(router, model_a, model_b, tocsin, make_hook):
    tocsin.stream_mode = "garbage"
    tocsin.signal_mode = "garbage"
    tocsin.set_route("chat", [(A, False), (B, True)])
    hook = await make_hook(tocsin.url)
    await wait_until(lambda: hook.routes.bad_events >= 1)
    assert not hook.routes.fresh() and not hook.routes.unhealthy
    assert {await call(router) for _ in range(30)} == {"hi from A", "hi from B"}
    await wait_until(lambda: hook.sent >= 1)  # a 202 with an odd body still counts as posted


async def test_tocsin_unreachable_changes_nothing(router, model_a, model_b, make_hook):
    hook = await make_hook("http://127.0.0.1:9", batch_size=1)  # nothing listens on port 9
    assert {await call(router) for _ in range(30)} == {"hi from A", "hi from B"}
    await wait_until(lambda: hook.failed_posts >= 1)
    assert hook.sent == 0 and hook.routes.connects == 0


def _kwargs(provider: str = "openai", model: str = "model-a") -> dict[str, object]:
    return {"model": model, "custom_llm_provider": provider, "litellm_params": {}}


async def test_full_queue_drops_and_counts(make_hook):
    hook = await make_hook("http://127.0.0.1:9", max_queue=10, route=False)
    now = time.time()
    for _ in range(25):
        await hook.async_log_success_event(_kwargs(), None, now, now + 0.1)
    assert hook.reporter.queued <= 10
    assert hook.dropped == 25 - hook.reporter.queued
    # Unknown providers are not tocsin's to judge: counted, not sent.
    await hook.async_log_success_event(_kwargs("bedrock"), None, now, now + 0.1)
    assert hook.counters.unmapped == 1


async def test_rate_limited_post_honours_retry_after(tocsin, make_hook):
    tocsin.signal_mode = "429"
    hook = await make_hook(tocsin.url, batch_size=2, route=False)
    now = time.time()
    for _ in range(2):
        await hook.async_log_failure_event(_kwargs(), None, now, now + 0.1)
    await wait_until(lambda: hook.failed_posts == 1)
    # The batch is kept for later, and nothing is posted before Retry-After (7 s) is over.
    assert hook.reporter.queued == 2 and hook.dropped == 0
    assert hook.reporter._not_before - time.monotonic() > 5
    await hook.reporter.flush()
    assert tocsin.posts == 1


async def test_hooks_never_raise_on_odd_input(make_hook):
    hook = await make_hook("http://127.0.0.1:9")
    hook.routes.unhealthy = frozenset({"openai/x"})
    hook.routes.seen_at = time.monotonic()
    odd: list[object] = [None, 3, {"litellm_params": None}, {"model_info": 5}]
    assert await hook.async_filter_deployments("chat", odd, None) == odd  # type: ignore[arg-type]
    await hook.async_log_failure_event({"exception": object()}, None, None, None)
    await hook.async_log_success_event({}, None, "x", 3)


async def test_callback_adds_little_time_per_call(make_hook):
    from bench_overhead import measure

    hook = await make_hook("http://127.0.0.1:9", max_queue=1_000_000)
    figures = await measure(hook, n=3000)
    # Generous bounds for a loaded CI box; the bench prints the real figures (a few µs).
    assert figures["report_p50_us"] < 100 and figures["route_p50_us"] < 100


def test_mapping():
    assert target_of({"model": "vertex_ai/gemini-2.5-pro"}, {"vertex_ai": "google-gemini"}) == (
        "google-gemini/gemini-2.5-pro"
    )
    assert target_of({"model": "gpt-4o", "custom_llm_provider": "openai"}, {"openai": "openai"})
    assert target_of({"model": "bedrock/claude"}, {"openai": "openai"}) is None

    class Overloaded(Exception):
        status_code = 529

    assert classify_error(Overloaded("x")) == (529, "overloaded_error")
    assert classify_error(litellm.RateLimitError("slow", "openai", "m")) == (
        429,
        "rate_limit_error",
    )


def test_proxy_entry_point(monkeypatch):
    off = from_env({})
    assert not off.report and not off.route
    on = from_env({"TOCSIN_URL": "http://t:1", "TOCSIN_TOKEN": "k", "TOCSIN_APP": "p"})
    assert on.report and on.route and on.reporter.app == "p"
    monkeypatch.setenv("TOCSIN_URL", "http://t:1")
    import tocsin_litellm

    monkeypatch.setattr(tocsin_litellm, "_proxy_instance", None)
    from litellm.proxy.types_utils.utils import get_instance_fn

    instance = get_instance_fn("tocsin_litellm.proxy_handler_instance")
    assert isinstance(instance, TocsinLiteLLM) and instance.route


async def test_unknown_group_is_ignored(model_a, model_b, tocsin, make_hook):
    tocsin.set_route("other", [(A, False)])
    hook = await make_hook(tocsin.url, groups=["chat"])
    await wait_until(lambda: hook.routes.connects >= 1 and hook.routes.seen_at is not None)
    assert not hook.routes.unhealthy


def test_it_imports_without_tocsins_server() -> None:
    """Installable into a LiteLLM proxy's environment: importing it loads none of tocsin's
    own packages (bot, config, handlers), only httpx and LiteLLM's."""
    import subprocess
    import sys

    probe = (
        "import sys, tocsin_litellm; "
        "mine = sorted({m.split('.')[0] for m in sys.modules} & {'bot', 'config', 'handlers'}); "
        "print(mine)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
