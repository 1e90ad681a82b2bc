"""A named lease in the store: one process at a time does the work it guards.

The watcher (lease ``leader``) and the escalator (lease ``escalator``) each hold one. The
holder string is unique per process, the stable instance name plus a per-boot token
(``web-1#3f9a1c``): two processes that share an instance name (two replicas on one host, both
named after it) are still two holders, so they never both lead. A holder that dies keeps the
lease until it expires (``store.lease``); a clean stop releases it at once.

:func:`hold` is the loop around one: try to take or renew it every round, start the work it
guards when it becomes ours, stop it when it is another's, and hand it over on stop. What the
work is, and what a failed round means for it, the :class:`Duty` says.
"""

from __future__ import annotations

import asyncio
import secrets
from contextlib import suppress
from typing import Protocol

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


class Duty(Protocol):
    """The work a lease guards, as :func:`hold` drives it (the watcher's, the escalator's)."""

    @property
    def leader(self) -> bool:
        """Whether the work runs now (a takeover that failed leaves it false)."""
        ...

    async def take_over(self) -> None:
        """The lease is ours and the work does not run: start it. If it cannot start,
        :attr:`leader` stays false and the next round tries again."""
        ...

    def step_down(self) -> None:
        """The lease is another's now: stop the work."""
        ...

    async def between_rounds(self, stop: asyncio.Event) -> None:
        """Until the next round: wait while the work runs on its own, or do it meanwhile."""
        ...

    def after_round(self, error: Exception | None) -> float | None:
        """How the round went: ``None`` if it went through, else what broke it
        (:class:`StoreUnavailable`: the store is away; anything else: a bug or a foreign
        value). Say so, and return how long to wait before the next round (having let go of
        the lease), or ``None``: go on as before. Called while ``error`` is being handled, so
        a traceback logged here is its own."""
        ...

    async def stop_work(self) -> None:
        """Stopping for good: end the work before the lease is released, so a successor
        never overlaps it."""
        ...


async def hold(lease: Lease, stop: asyncio.Event, duty: Duty) -> None:
    """Lead while ``lease`` is ours and follow while it is another's, until ``stop``; then
    hand it over: the work ends first, then the lease is released at once."""
    try:
        while not stop.is_set():
            pause = await _round(lease, duty)
            if pause is None:
                await duty.between_rounds(stop)
            else:
                await sleep_unless(stop, pause)
    finally:
        await duty.stop_work()
        await lease.release()


async def _round(lease: Lease, duty: Duty) -> float | None:
    """Take or renew the lease, and start or stop the work if its holder changed; what
    ``duty`` says to do next."""
    try:
        was = duty.leader
        held = await lease.acquire()
        if held and not was:
            await duty.take_over()
        elif not held and was:
            duty.step_down()
    except Exception as exc:
        return duty.after_round(exc)
    return duty.after_round(None)
