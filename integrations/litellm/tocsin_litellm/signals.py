"""Signal reporting: a bounded queue the call path only appends to, drained by one sender task.

The app's call must never wait on tocsin or fail because of it, so the hot path is a deque
append; everything that can block or raise (HTTP, JSON, timestamps) happens in the sender.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, NamedTuple

import httpx

log: Final = logging.getLogger("tocsin_litellm")

#: The contract's batch ceiling (a larger body gets 413).
MAX_BATCH: Final = 1000


async def stop_task(task: asyncio.Task[None] | None, grace: float = 1.0) -> None:
    """Cancel and reap a background task without hanging: a cancel swallowed inside a library
    (a connect attempt) is repeated, and after ``grace`` seconds the task is left to the flag."""
    if task is None:
        return
    for _ in range(3):
        task.cancel()
        done, _pending = await asyncio.wait({task}, timeout=grace / 3)
        if done:
            with contextlib.suppress(BaseException):
                task.result()
            return


class Signal(NamedTuple):
    """One call's outcome, kept raw (a tuple, an epoch float) until the sender formats it."""

    provider: str
    model: str
    ok: bool
    status: int | None
    error_type: str | None
    latency_ms: float
    at: float


@dataclass
class Counters:
    """What happened to the signals, for the app's own metrics (tocsin may be the thing down)."""

    sent: int = 0
    dropped: int = 0
    failed_posts: int = 0
    rejected: int = 0
    unmapped: int = 0


def _iso(epoch: float) -> str:
    return (
        datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def _retry_after(value: str | None, default: float) -> float:
    """Seconds from a ``Retry-After`` header; only the delta-seconds form is worth parsing here."""
    if value is None:
        return default
    try:
        return max(0.0, min(float(value), 300.0))
    except ValueError:
        return default


class SignalReporter:
    """Queues signals and posts them to ``{url}/api/v1/signals`` in batches."""

    def __init__(
        self,
        url: str,
        token: str,
        app: str,
        *,
        batch_size: int = 200,
        flush_interval: float = 1.0,
        max_queue: int = 10_000,
        timeout: float = 2.0,
        max_backoff: float = 30.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.endpoint: Final = url.rstrip("/") + "/api/v1/signals"
        self.app: Final = app
        self.batch_size: Final = max(1, min(batch_size, MAX_BATCH))
        self.flush_interval: Final = flush_interval
        self.max_queue: Final = max_queue
        self.max_backoff: Final = max_backoff
        self.counters: Final = Counters()
        self._headers: Final = {"Authorization": f"Bearer {token}"}
        self._timeout: Final = timeout
        self._client = client
        self._queue: deque[Signal] = deque()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._not_before = 0.0  # monotonic: a 429's Retry-After or a failure's backoff
        self._backoff = 0.0

    # -- call path -------------------------------------------------------------------------

    def put(self, signal: Signal) -> None:
        """Enqueue without blocking; a full queue drops the signal and counts it."""
        queue = self._queue
        if len(queue) >= self.max_queue:
            self.counters.dropped += 1
            return
        queue.append(signal)
        if len(queue) >= self.batch_size and self._wake is not None:
            self._wake.set()

    @property
    def queued(self) -> int:
        return len(self._queue)

    # -- lifecycle -------------------------------------------------------------------------

    def ensure_started(self) -> None:
        """Start the sender on the running loop (the proxy builds us before any loop exists)."""
        if self._closed:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self._task is not None and self._loop is loop and not self._task.done():
            return
        self._loop = loop
        self._wake = asyncio.Event()
        self._task = loop.create_task(self._run(), name="tocsin-signals")

    async def flush(self) -> None:
        """Post everything queued now (tests, shutdown); still never raises."""
        while self._queue:
            if not await self._post_one():
                return

    async def aclose(self) -> None:
        """Stop the sender after a last flush attempt."""
        self._closed = True  # a closed one is not restarted by a late callback
        task, self._task = self._task, None
        await stop_task(task)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.flush(), timeout=self._timeout)
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.aclose()
            self._client = None

    # -- sender ----------------------------------------------------------------------------

    async def _run(self) -> None:
        wake = self._wake
        if wake is None:
            return
        while not self._closed:
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), timeout=self.flush_interval)
                wake.clear()
                wait = self._not_before - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                while self._queue and await self._post_one():
                    pass
            except asyncio.CancelledError:
                raise
            except Exception:  # the sender must outlive any bug or network error
                log.debug("tocsin signal sender error", exc_info=True)
                await asyncio.sleep(self.flush_interval)

    def _take(self) -> list[Signal]:
        queue = self._queue
        return [queue.popleft() for _ in range(min(self.batch_size, len(queue)))]

    def _give_back(self, batch: list[Signal]) -> None:
        """Re-queue a batch tocsin refused only for rate (429), as far as the bound allows."""
        room = self.max_queue - len(self._queue)
        kept = batch[:room] if room > 0 else []
        self.counters.dropped += len(batch) - len(kept)
        self._queue.extendleft(reversed(kept))

    def _fail(self, batch: list[Signal]) -> None:
        self.counters.failed_posts += 1
        self.counters.dropped += len(batch)
        self._backoff = min(self.max_backoff, max(0.5, self._backoff * 2))
        self._not_before = time.monotonic() + self._backoff

    async def _post_one(self) -> bool:
        """Post one batch; False when the sender should stop for now (failure or rate limit)."""
        if time.monotonic() < self._not_before:
            return False
        batch = self._take()
        if not batch:
            return False
        body = {
            "app": self.app,
            "signals": [
                {
                    "provider": s.provider,
                    "model": s.model,
                    "ok": s.ok,
                    "status": s.status,
                    "error_type": s.error_type,
                    "latency_ms": round(s.latency_ms, 3),
                    "at": _iso(s.at),
                }
                for s in batch
            ],
        }
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout)
        try:
            response = await self._client.post(self.endpoint, json=body, headers=self._headers)
        except Exception:
            self._fail(batch)
            return False
        if response.status_code == 429:
            self.counters.failed_posts += 1
            self._give_back(batch)
            delay = _retry_after(response.headers.get("Retry-After"), 1.0)
            self._not_before = time.monotonic() + delay
            return False
        if response.status_code >= 300:
            log.debug("tocsin refused a signal batch: HTTP %s", response.status_code)
            self._fail(batch)
            return False
        self._backoff = 0.0
        self.counters.sent += len(batch)
        with contextlib.suppress(Exception):
            rejected = response.json().get("rejected", 0)
            if isinstance(rejected, int):
                self.counters.rejected += rejected
        return True
