"""Per-call overhead of tocsin_litellm's two hooks, in µs (p50/p99).

Measures what LiteLLM runs per call on our behalf: ``async_log_success_event`` /
``async_log_failure_event`` (build a signal, append it to the queue) and
``async_filter_deployments`` (a fresh snapshot with one unhealthy target, two candidates).
Run: ``.venv/bin/python integrations/litellm/bench_overhead.py``.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from datetime import datetime, timedelta

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")

from tocsin_litellm import TocsinLiteLLM


class _Overloaded(Exception):
    status_code = 529


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(hook: TocsinLiteLLM, n: int = 20_000) -> dict[str, float]:
    """Time each hook ``n`` times on the running loop; returns p50/p99 in µs."""
    start = datetime.now()
    end = start + timedelta(milliseconds=420)
    ok_kwargs = {"model": "model-a", "custom_llm_provider": "openai", "litellm_params": {}}
    fail_kwargs = {**ok_kwargs, "exception": _Overloaded("Overloaded")}
    deployments = [
        {"litellm_params": {"model": "openai/model-a"}, "model_info": {"id": "a"}},
        {"litellm_params": {"model": "openai/model-b"}, "model_info": {"id": "b"}},
    ]
    hook.routes.unhealthy = frozenset({"openai/model-a"})
    hook.routes.seen_at = time.monotonic() + 3600  # fresh throughout the run
    clock = time.perf_counter_ns
    report: list[float] = []
    failure: list[float] = []
    route: list[float] = []
    for _ in range(n):
        t0 = clock()
        await hook.async_log_success_event(ok_kwargs, None, start, end)
        t1 = clock()
        await hook.async_log_failure_event(fail_kwargs, None, start, end)
        t2 = clock()
        kept = await hook.async_filter_deployments("chat", deployments, None)
        t3 = clock()
        report.append((t1 - t0) / 1000)
        failure.append((t2 - t1) / 1000)
        route.append((t3 - t2) / 1000)
    assert len(kept) == 1
    return {
        "report_p50_us": statistics.median(report),
        "report_p99_us": _pct(report, 0.99),
        "failure_p50_us": statistics.median(failure),
        "failure_p99_us": _pct(failure, 0.99),
        "route_p50_us": statistics.median(route),
        "route_p99_us": _pct(route, 0.99),
    }


async def _main() -> None:
    # Nothing listens on port 9: the sender's failures happen off the measured path.
    hook = TocsinLiteLLM(url="http://127.0.0.1:9", token="t", app="bench", max_queue=10**7)
    hook.start()
    await measure(hook, n=2000)  # warm-up
    figures = await measure(hook)
    await hook.aclose()
    for name, value in figures.items():
        print(f"{name:16s} {value:8.2f}")


if __name__ == "__main__":
    asyncio.run(_main())
