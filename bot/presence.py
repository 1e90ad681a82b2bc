"""One live process per instance name: the presence record that notices a second one.

A notifier reads the event stream under its instance name, stable across restarts on purpose:
restarted after a crash, it finds the deliveries it had not finished under that name. Two
live processes under one name (two replicas on one host, both named after it) would read as
one consumer and re-deliver each other's unfinished entries. So each process that consumes
under its name keeps a presence record for that name in a shared store: its boot token and a
beat counter, expiring after ``store.lease`` and renewed every lease / 3.

At start, a record holding another token is watched for one renewal period plus a margin.
If it moves, another live process has the name: this one runs under a derived name,
``<instance>-<token>``, and says so in one line. If it expires or does not move, its process
is dead (a restart after ``kill -9``): the name is taken over at once, so the restarted
process still finds its own unfinished deliveries. Nothing compares the clocks of two hosts:
only whether the record changes.
"""

from __future__ import annotations

import asyncio
from contextlib import suppress
from dataclasses import dataclass, field

from bot.lease import new_token, sleep_unless
from bot.logs import get_logger
from bot.store import Store, StoreUnavailable

log = get_logger("tocsin.presence")

#: Tries to take a name whose record keeps changing hands under us, before giving up on it.
CLAIM_TRIES = 3


@dataclass(frozen=True, slots=True)
class Identity:
    """Who this process is: its stable instance name and its per-boot token."""

    name: str
    token: str = field(default_factory=new_token)

    @property
    def holder(self) -> str:
        """The lease holder: unique per process, readable as its name."""
        return f"{self.name}#{self.token}"

    @property
    def derived(self) -> str:
        """The name it runs under when another live process already has :attr:`name`."""
        return f"{self.name}-{self.token}"


class Presence:
    """The presence record of one process: :meth:`claim` at start, :meth:`keep` until stop."""

    def __init__(self, store: Store, identity: Identity, ttl: float) -> None:
        self.store = store
        self.identity = identity
        self.ttl = ttl
        self.record: str | None = None  # what we last wrote, while the name is ours
        self._beat = 0
        self._taken_over = False

    @property
    def renew_every(self) -> float:
        return self.ttl / 3

    @property
    def window(self) -> float:
        """How long a record is watched at start: one renewal period, plus half of one for a
        busy holder's renewal to arrive late."""
        return self.renew_every * 1.5

    async def claim(self, stop: asyncio.Event) -> str:
        """The name this process runs under: its own, unless another live process has it."""
        name = self.identity.name
        try:
            for _ in range(CLAIM_TRIES):
                seen = found = await self.store.presence(name)
                if found is not None:
                    alive, seen = await self._watch(found, stop)
                    if stop.is_set():
                        return name  # stopping before it started: nothing to take
                    if alive:
                        break
                if await self._write(replacing=seen):
                    if found is not None:
                        log.info(
                            "took over the instance name: the process that had it stopped "
                            "renewing it (a restart after a crash)",
                            instance=name,
                        )
                    return name
        except StoreUnavailable:
            raise
        except Exception:  # a foreign value under the key: do not share a name by guessing
            log.exception("cannot read the presence record", instance=name)
        derived = self.identity.derived
        log.warning(
            f"another live tocsin on this store is already named {name!r}; this one runs as "
            f"{derived!r}. Give each replica its own stable name (TOCSIN_INSTANCE) so a "
            "restarted one finds its own unfinished deliveries",
            instance=name,
            runs_as=derived,
        )
        return derived

    async def _watch(self, seen: str, stop: asyncio.Event) -> tuple[bool, str | None]:
        """Whether the record ``seen`` is renewed within the window (its holder is alive),
        and what it holds when we stop watching (``None``: it expired)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.window
        every = min(0.1, self.window / 10)
        while loop.time() < deadline and not stop.is_set():
            await sleep_unless(stop, every)
            now = await self.store.presence(self.identity.name)
            if now is None:
                return False, None
            if now != seen:
                return True, now
        return False, seen

    async def _write(self, *, replacing: str | None) -> bool:
        record = f"{self.identity.token}:{self._beat + 1}"
        won = await self.store.claim_presence(
            self.identity.name, record, self.ttl, replacing=replacing
        )
        if won:
            self.record, self._beat = record, self._beat + 1
        return won

    async def keep(self, stop: asyncio.Event) -> None:
        """Renew the record every lease / 3 until ``stop``; then delete it, so a successor
        under this name need not wait for it to expire."""
        try:
            while not stop.is_set():
                await sleep_unless(stop, self.renew_every)
                if not stop.is_set():
                    await self._renew()
        finally:
            if self.record is not None:
                with suppress(StoreUnavailable):  # else it expires on its own
                    await self.store.release_presence(self.identity.name, self.record)
                self.record = None

    async def _renew(self) -> None:
        try:
            # ours (renewed), or gone (expired while the store was away): ours again
            if await self._write(replacing=self.record) or await self._write(replacing=None):
                self._taken_over = False
                return
        except StoreUnavailable:
            return  # the other loops say the store is away; the record waits for it
        if not self._taken_over:
            log.warning(
                "another tocsin took over this instance name (this one seemed dead to it): "
                "give each replica its own TOCSIN_INSTANCE",
                instance=self.identity.name,
            )
        self._taken_over = True
