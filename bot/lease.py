"""A named lease in the store: one process at a time does the work it guards.

The watcher (lease ``leader``) and the escalator (lease ``escalator``) each hold one. The
holder string is unique per process, the stable instance name plus a per-boot token
(``web-1#3f9a1c``): two processes that share an instance name (two replicas on one host, both
named after it) are still two holders, so they never both lead. A holder that dies keeps the
lease until it expires (``store.lease``); a clean stop releases it at once.
"""

from __future__ import annotations

import asyncio
import secrets
from contextlib import suppress

from prometheus_client import Gauge

from bot.store import Store, StoreUnavailable


def new_token() -> str:
    """A per-boot token: six hex digits, never the same for two processes in practice."""
    return secrets.token_hex(3)


def unique_holder(instance: str, token: str | None = None) -> str:
    """The holder string of a process named ``instance`` (a fresh token unless given)."""
    return f"{instance}#{token or new_token()}"


class Lease:
    """Take, renew and release one named lease under one holder; :attr:`held` says whether
    the last answer was "ours" (and ``gauge``, if given, always says the same)."""

    def __init__(
        self, store: Store, name: str, holder: str, ttl: float, *, gauge: Gauge | None = None
    ) -> None:
        self.store = store
        self.name = name
        self.holder = holder
        self.ttl = ttl
        self._gauge = gauge
        self._held = False
        self._taken = False  # acquired at least once since the last release: worth releasing
        self._set(False)

    @property
    def held(self) -> bool:
        return self._held

    @property
    def renew_every(self) -> float:
        """How often a holder renews it (and a follower tries): a third of its length, so a
        holder that misses one renewal still holds it."""
        return self.ttl / 3

    async def acquire(self) -> bool:
        """Take the lease, or renew it if ours; whether we hold it now. Raises
        :class:`StoreUnavailable`: the caller decides what leading means meanwhile."""
        held = await self.store.acquire_lease(self.name, self.holder, self.ttl)
        self._taken |= held
        self._set(held)
        return held

    def forget(self) -> None:
        """Stop claiming to hold it (the store is away, or the work it guards failed) without
        telling the store: it expires unless renewed."""
        self._set(False)

    async def release(self) -> None:
        """Give it up now, so a successor need not wait for it to expire (a clean stop)."""
        if self._taken:
            with suppress(StoreUnavailable):
                await self.store.release_lease(self.name, self.holder)
        self._taken = False
        self._set(False)

    def _set(self, held: bool) -> None:
        """The one place ``held`` changes, so the gauge and the health report never differ."""
        self._held = held
        if self._gauge is not None:
            self._gauge.set(1 if held else 0)


async def sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    """Wait ``seconds``, or less if ``stop`` is set meanwhile (the lease loops' pause)."""
    with suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
