"""Store calls that wait out an unreachable store: a notice waits, it is never dropped."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from bot.logs import get_logger
from bot.store import StoreUnavailable

log = get_logger("tocsin.dispatcher")


class Patience:
    """Runs store calls for the dispatcher and its stages, at most ``concurrency`` at once: a
    fan-out to hundreds of channels must not take every connection of the pool the watcher
    and health checks share."""

    def __init__(self, retry: float, concurrency: int) -> None:
        self.retry = retry
        self._slots = asyncio.Semaphore(concurrency)

    async def run(
        self, call: Callable[..., Awaitable[Any]], *args: Any, stop: asyncio.Event | None = None
    ) -> Any:
        """``call(*args)``, again every ``retry`` seconds while the store is unreachable
        (``None`` once ``stop`` is set)."""
        warned = False
        while True:
            try:
                async with self._slots:
                    return await call(*args)
            except StoreUnavailable as exc:
                if not warned:
                    log.warning("store unreachable; waiting", error=str(exc))
                    warned = True
                if stop is not None and stop.is_set():
                    return None
                await asyncio.sleep(self.retry)
