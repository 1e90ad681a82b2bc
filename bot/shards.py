"""Shards: several watcher replicas share the providers, each checked by exactly one.

With ``watch.sharding: on`` there is no single watching leader. Every watcher replica keeps a
membership record in the store (``table:watchers``: its holder → when it expires, renewed
every third of ``store.lease``) and, each round, computes who owns each provider by
rendezvous hashing over the live members (the highest ``sha256(member|provider)`` wins):
a member that joins or leaves moves only the providers it wins or held, nobody else's.

Owning is not computing: a provider is watched only under its lease (``shard:{provider}``,
held by the member's unique holder, :mod:`bot.lease`). A member that no longer wins a
provider stops its sources and releases the lease; the winner takes it on its next round
(or when a dead member's lease runs out): so each provider's sources run in one replica at a
time, and a replica that dies moves its share within one lease. Before each check a member
also asks itself whether its lease is still fresh by its own clock (:meth:`Shards.holds`),
so a replica that stalled past its lease does not check what another now owns.

A provider's sources all go to one member: the tracker's state machine for a provider (its
components, its episode) lives in one process. The upstreams the providers stand on (their
pages are never announced) are read by every member, so each tracker knows the causes.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from bot import metrics
from bot.logs import get_logger
from bot.store import Store

log = get_logger("tocsin.shards")

MEMBERS = "watchers"
#: A membership record's largest size and the most members read (a foreign table is bounded).
MEMBERS_MAX = 1000


def owner(key: str, members: Iterable[str]) -> str | None:
    """Rendezvous (highest random weight) hashing: the member that wins ``key``."""
    return max(members, key=lambda m: hashlib.sha256(f"{m}|{key}".encode()).digest(), default=None)


def lease_name(provider: str) -> str:
    return f"shard:{provider}"


@dataclass
class Shards:
    """One member's view: who is live, what it owns, and when it last renewed each."""

    store: Store
    holder: str
    lease: float
    clock: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic
    #: Provider → when (monotonic) this member last took or renewed its lease.
    owned: dict[str, float] = field(default_factory=dict)
    members: tuple[str, ...] = ()

    @property
    def every(self) -> float:
        """How often a round runs: a third of the lease, as leases are renewed."""
        return self.lease / 3

    def holds(self, provider: str) -> bool:
        """Whether this member may check ``provider`` now: it holds its lease, renewed less
        than a lease ago by its own clock (a stalled member does not trust a stale lease)."""
        renewed = self.owned.get(provider)
        return renewed is not None and self.monotonic() - renewed < self.lease * 0.9

    async def join(self) -> None:
        """Say this member is live (renewed every round)."""
        record = json.dumps({"expires": self.clock() + self.lease})
        await self.store.put_record(MEMBERS, self.holder, record)

    async def live_members(self) -> list[str]:
        """The members whose record has not expired (expired ones are removed, each by the
        one caller that deletes it)."""
        now = self.clock()
        live: list[str] = []
        raw = await self.store.records(MEMBERS)
        for member, value in list(raw.items())[:MEMBERS_MAX]:
            expires = _expiry(value)
            if expires is not None and expires > now:
                live.append(member)
            elif expires is None or expires < now - self.lease:
                await self.store.delete_record(MEMBERS, member, only_if=value)
        if self.holder not in live:
            live.append(self.holder)  # this member, whatever the table says
        return sorted(live)

    async def round(self, providers: Sequence[str]) -> tuple[set[str], set[str]]:
        """Renew membership, recompute the shares, let go of what is no longer ours and take
        or renew what is: the providers gained and lost this round."""
        await self.join()
        self.members = tuple(await self.live_members())
        mine = {p for p in providers if owner(p, self.members) == self.holder}
        lost = {p for p in self.owned if p not in mine}
        for provider in lost:
            self.owned.pop(provider, None)
            await self.store.release_lease(lease_name(provider), self.holder)
        gained: set[str] = set()
        for provider in sorted(mine):
            if await self.store.acquire_lease(lease_name(provider), self.holder, self.lease):
                if provider not in self.owned:
                    gained.add(provider)
                self.owned[provider] = self.monotonic()
            elif provider in self.owned:  # someone else holds it now: we stalled
                self.owned.pop(provider)
                lost.add(provider)
        metrics.SOURCES_OWNED_PROVIDERS.set(len(self.owned))
        return gained, lost

    async def leave(self) -> None:
        """A clean stop: release every lease and the membership at once (no wait for
        expiry: the others take the share on their next round)."""
        for provider in list(self.owned):
            await self.store.release_lease(lease_name(provider), self.holder)
        self.owned.clear()
        await self.store.delete_record(MEMBERS, self.holder)
        metrics.SOURCES_OWNED_PROVIDERS.set(0)


def _expiry(value: str) -> float | None:
    try:
        found = json.loads(value) if len(value) < 1000 else None
    except ValueError:
        return None
    expires = found.get("expires") if isinstance(found, dict) else None
    return float(expires) if isinstance(expires, int | float) and expires < 1e12 else None
