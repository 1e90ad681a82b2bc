"""What the inference probes will cost, said before anybody is surprised by a bill.

Each probed model is one call per interval (a few more while a change is being confirmed:
rechecks run at ``confirm_interval``), each costing the catalog's ``tokens_per_call`` estimate.
"""

from __future__ import annotations

from dataclasses import dataclass

from config.schema import TocsinConfig

DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class ProbeCost:
    probes: int
    intervals: tuple[float, ...]
    calls_per_day: float
    tokens_per_day: float

    def __str__(self) -> str:
        if not self.probes:
            return "no inference probes"
        low, high = min(self.intervals), max(self.intervals)
        every = f"{low:g} s" if low == high else f"{low:g} to {high:g} s"
        noun = "probe" if self.probes == 1 else "probes"
        return (
            f"{self.probes} inference {noun} every {every} ≈ {self.calls_per_day:,.0f} calls/day, "
            f"≈ {_short(self.tokens_per_day)} tokens/day"
        )


def inference_cost(config: TocsinConfig) -> ProbeCost:
    """Calls and tokens a day of every enabled inference probe's models."""
    probes = 0
    intervals: list[float] = []
    calls = tokens = 0.0
    for provider in config.providers:
        probe = provider.probe
        if probe is None or probe.kind != "inference" or probe.enabled is False:
            continue
        interval = probe.interval or config.watch.interval
        per_model = DAY / interval
        probes += len(probe.models)
        intervals.append(interval)
        calls += per_model * len(probe.models)
        tokens += per_model * len(probe.models) * probe.tokens_per_call
    return ProbeCost(probes, tuple(intervals), calls, tokens)


def _short(count: float) -> str:
    """12k, 1.2M: a bill estimate needs no more digits than that."""
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if count >= limit:
            value = count / limit
            return f"{value:.1f}{suffix}" if value < 10 else f"{value:,.0f}{suffix}"
    return f"{count:.0f}"
