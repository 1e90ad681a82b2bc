"""One check of one source, as the watcher and ``tocsin check`` run it (light to import: a
one-shot command needs this and the sources, not the watcher's scheduler, leases or history).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
from prometheus_client import Counter, Histogram

from bot import metrics
from bot.logs import get_logger, scrub_detail
from bot.models import Observation, Status, worst
from bot.sources.source import Source

log = get_logger("tocsin.watcher")


@dataclass(frozen=True, slots=True)
class WatcherSettings:
    instance: str
    lease: float = 15.0
    #: Who holds the lease: unique per process (``<instance>#<boot token>``); ``None``: a
    #: fresh token of this watcher's own.
    holder: str | None = None
    confirm_interval: float | None = None  # None: a quarter of the source's interval
    jitter: float | None = None  # None: a tenth of the source's interval
    buffer_limit: int = 10_000
    timeout: float = 10.0
    max_connections: int = 100
    user_agent: str = "tocsin"
    #: How often the leader takes poll requests (pushes), and the least time between two
    #: pushed reads of one page (a burst of pushes costs one read a second, not one each).
    poll_check: float = 0.5
    pushed_gap: float = 1.0

    def confirm_for(self, interval: float) -> float:
        if self.confirm_interval is not None:
            return self.confirm_interval
        return max(0.25, interval / 4)

    def jitter_for(self, interval: float) -> float:
        return self.jitter if self.jitter is not None else interval / 10


def make_client(settings: WatcherSettings) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.timeout),
        limits=httpx.Limits(
            max_connections=settings.max_connections,
            max_keepalive_connections=settings.max_connections,
        ),
        headers={"User-Agent": settings.user_agent},
    )


async def check_source(source: Source, client: httpx.AsyncClient) -> list[Observation]:
    """One round of one source, timed and counted. Never raises for bad input."""
    started = time.perf_counter()
    try:
        observations = await source.check(client)
    except Exception as exc:  # a source bug must not stop the watcher
        log.exception("source check crashed", source=source.id)
        observations = [
            Observation(
                provider=source.provider,
                component="page",
                status=Status.UNKNOWN,
                source=source.id,
                kind=source.kind,
                detail=f"{source.id} failed: {type(exc).__name__}: {exc}",
            )
        ]
    _latency(source.kind.value).observe(time.perf_counter() - started)
    result = worst(obs.status for obs in observations).value if observations else "empty"
    _checks(source.provider, source.id, result).inc()
    return [_scrubbed(obs) for obs in observations]


@functools.lru_cache(maxsize=8)
def _latency(kind: str) -> Histogram:
    """The histogram child of a kind (prometheus-client's ``labels`` looks it up, under a
    lock, on every call: once is enough)."""
    return metrics.CHECK_LATENCY.labels(kind)


@functools.lru_cache(maxsize=65_536)
def _checks(provider: str, source: str, result: str) -> Counter:
    return metrics.CHECKS.labels(provider, source, result)


def _scrubbed(obs: Observation) -> Observation:
    """A diagnostic may quote what was sent (an exception naming a header carries the key):
    secrets are masked before the tracker stores it or anyone is shown it."""
    detail = scrub_detail(obs.detail)
    return obs if detail == obs.detail else dataclasses.replace(obs, detail=detail)


async def check_all(sources: Sequence[Source], client: httpx.AsyncClient) -> list[Observation]:
    """One round of every source at once (``tocsin check``)."""
    rounds = await asyncio.gather(*(check_source(s, client) for s in sources))
    return [obs for observations in rounds for obs in observations]
