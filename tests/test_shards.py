"""Shards (issue 17): watcher replicas share the providers by rendezvous hashing, each held by a
lease; a replica that joins or dies moves only its share, within one lease.

The unit tests drive :class:`bot.shards.Shards` on the suite's real redis-server; the end to
end test runs three real ``tocsin run --role watcher`` processes sharing 300 status pages,
each process with a User-Agent of its own so the fake status server can say who read what:
every page is read by exactly one replica per round; one is killed, its share is read by the
others within the lease, none twice in a round; an outage afterwards is one notice per
provider (a notifier in the test's process, the fake Slack).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.shards import Shards, owner
from bot.store import RedisStore
from config.loader import ConfigError, build_config
from tests.chaos import TocsinProcess, until
from tests.fakes.slack import FakeSlack
from tests.fakes.status_server import FakeStatusServer, fixture_bytes
from tests.redis_server import RedisServer
from tests.running import Running

PROVIDERS = [f"p{n:03d}" for n in range(300)]
CHANNEL = "C0SHARDS01"


class Clock:
    """Wall and monotonic time the test moves (a member that stops renewing "dies")."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def wall(self) -> float:
        return self.now

    def mono(self) -> float:
        return self.now


def test_rendezvous_moves_only_the_share_of_who_joins_or_leaves() -> None:
    three = ["a", "b", "c"]
    before = {p: owner(p, three) for p in PROVIDERS}
    assert set(before.values()) == set(three)
    joined = {p: owner(p, [*three, "d"]) for p in PROVIDERS}
    moved = [p for p in PROVIDERS if joined[p] != before[p]]
    assert moved
    assert all(joined[p] == "d" for p in moved)  # only what the newcomer wins moves
    assert 40 <= len(moved) <= 110  # about a quarter
    left = {p: owner(p, ["a", "c"]) for p in PROVIDERS}
    assert all(left[p] == before[p] for p in PROVIDERS if before[p] != "b")


@pytest.fixture
async def store(redis_server: RedisServer, key_prefix: str) -> AsyncIterator[RedisStore]:
    made = RedisStore(redis_server.url, prefix=key_prefix)
    await made.open()
    yield made
    await made.close()


async def test_each_provider_has_one_owner_and_a_dead_member_s_share_moves_in_a_lease(
    store: RedisStore,
) -> None:
    """Membership expires by the members' clock (moved here); shard leases by Redis's own
    (a short lease, waited out on a condition)."""
    clock = Clock()
    members = [
        Shards(store, f"w{i}", lease=1.0, clock=clock.wall, monotonic=clock.mono) for i in range(3)
    ]
    for _ in range(2):  # the first round sees the others only once they joined
        for member in members:
            await member.round(PROVIDERS)
    owned = [set(m.owned) for m in members]
    assert set().union(*owned) == set(PROVIDERS)
    assert sum(len(o) for o in owned) == len(PROVIDERS)  # nobody twice
    assert all(60 <= len(o) <= 140 for o in owned)
    dead, *alive = members
    share = set(dead.owned)
    clock.now += 1.5  # w0 stops renewing: its membership is over by the clock...
    assert not dead.holds(next(iter(share)))  # ...and its own clock says its lease is stale
    gained_by_alive: set[str] = set()

    async def adopted() -> bool:  # ...and once Redis drops its shard leases, they move
        for member in alive:
            gained, lost = await member.round(PROVIDERS)
            assert lost == set()
            gained_by_alive.update(gained)
        clock.now += 0.3
        return set(alive[0].owned) | set(alive[1].owned) == set(PROVIDERS)

    await until(adopted, timeout=10)
    assert gained_by_alive == share  # only the dead member's share moved
    # a member that joins takes only what it wins, once the old owner let go of it
    newcomer = Shards(store, "w9", lease=1.0, clock=clock.wall, monotonic=clock.mono)
    gained, _ = await newcomer.round(PROVIDERS)
    assert gained == set()  # the owners hold the leases until their next round
    for member in alive:
        _, lost = await member.round(PROVIDERS)
        assert all(owner(p, ["w1", "w2", "w9"]) == "w9" for p in lost)
    gained, _ = await newcomer.round(PROVIDERS)
    assert gained
    assert all(owner(p, ["w1", "w2", "w9"]) == "w9" for p in gained)
    await newcomer.leave()
    assert newcomer.owned == {}


def test_shards_and_a_quorum_are_refused_together() -> None:
    with pytest.raises(ConfigError, match="cannot be combined"):
        build_config({"watch": {"sharding": True, "quorum": 2}})
    assert build_config({"watch": {"sharding": "on"}}).watch.sharding is True


def _pages(page: FakeStatusServer) -> list[dict[str, object]]:
    body = fixture_bytes("statuspage_summary_anthropic_operational.json")
    for provider in PROVIDERS:
        page.set_bytes(f"/{provider}/api/v2/summary.json", body)
    return [
        {
            "id": provider,
            "name": f"Provider {provider}",
            "status_page": {
                "kind": "statuspage",
                "url": f"{page.url}/{provider}",
                "interval": "3s",
            },
        }
        for provider in PROVIDERS
    ]


def _reads(page: FakeStatusServer, since: float) -> dict[str, list[tuple[float, str]]]:
    """Per provider: (when, which replica) of each read of its page since ``since``."""
    found: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for seen in page.requests:
        if seen.at >= since and seen.path.endswith("/api/v2/summary.json"):
            found[seen.path.split("/")[1]].append((seen.at, seen.headers.get("User-Agent", "")))
    return found


def _counts_at_least(page: FakeStatusServer, since: float, n: int) -> bool:
    reads = _reads(page, since)
    return len(reads) == len(PROVIDERS) and all(len(r) >= n for r in reads.values())


def _one_reader_per_round(reads: dict[str, list[tuple[float, str]]]) -> None:
    """Each page read by one replica, and never twice within a round (3 s)."""
    for provider, seen in reads.items():
        assert len({who for _, who in seen}) == 1, (provider, seen)
        gaps = [b - a for (a, _), (b, _) in itertools.pairwise(sorted(seen))]
        assert all(gap > 1.5 for gap in gaps), (provider, seen)


@pytest.mark.chaos
@pytest.mark.timeout(180)
async def test_three_watchers_share_300_pages_and_one_dies(
    tmp_path: Path, redis_server: RedisServer, key_prefix: str, status_server: FakeStatusServer
) -> None:
    slack = await FakeSlack().start()
    slack.add_channel(CHANNEL, "ai-incidents")
    world = {
        "store": {"url": redis_server.url, "prefix": key_prefix, "lease": "4s"},
        "console": {"enabled": False},
        "upstreams": [],
        "providers": _pages(status_server),
    }
    watchers = [
        TocsinProcess(
            tmp_path,
            f"shard-{i}",
            {**world, "watch": {"jitter": "0s", "sharding": True, "user_agent": f"shard-{i}"}},
            role="watcher",
        )
        for i in range(3)
    ]
    notifier_config = build_config(
        {
            **world,
            "server": {"enabled": False},
            "instance": "notifier",
            "slack": {
                "api_url": slack.api_url,
                "bot_token": slack.bot_token,
                "channels": [{"id": CHANNEL}],
            },
        }
    )
    notifier: Running | None = None
    loop = asyncio.get_running_loop()
    try:
        for watcher in watchers:
            await watcher.start_healthy()
        notifier = Running(notifier_config, role="notifier")

        async def all_see_three() -> bool:
            for watcher in watchers:
                health = await watcher.health()
                if not health or (health.get("shards") or {}).get("members") != 3:
                    return False
            return True

        await until(all_see_three, timeout=60)
        steady = loop.time() + 3  # the shares settle within a member round (lease / 3)
        await until(lambda: _counts_at_least(status_server, steady, 3), timeout=60)
        window = _reads(status_server, steady)
        _one_reader_per_round(window)
        shares: dict[str, list[str]] = defaultdict(list)
        for provider, seen in window.items():
            shares[seen[0][1]].append(provider)
        assert set(shares) == {"shard-0", "shard-1", "shard-2"}
        owned = [(await w.health() or {}).get("sources_owned") for w in watchers]
        assert sorted(owned) == sorted(len(v) for v in shares.values())  # /healthz says so

        # kill one: its share is read by the others within the lease, and nothing twice
        watchers[0].kill()
        killed = loop.time()
        orphaned = shares["shard-0"]

        def adopted() -> bool:
            reads = _reads(status_server, killed)
            return all(any(who != "shard-0" for _, who in reads.get(p, [])) for p in orphaned)

        await until(adopted, timeout=20)
        assert loop.time() - killed < 4 + 2 + 3  # a lease, a member round, a first read
        after = loop.time() + 1
        await until(lambda: _counts_at_least(status_server, after, 2), timeout=30)
        later = _reads(status_server, after)
        _one_reader_per_round(later)
        assert all(seen[0][1] != "shard-0" for seen in later.values())

        # an outage now: one notice per provider, whoever watches it
        down = json.loads(fixture_bytes("statuspage_summary_anthropic_operational.json"))
        down["components"][0]["status"] = "major_outage"
        flipped = orphaned[:5] + shares["shard-1"][:5]
        flipped_at = loop.time()
        for provider in flipped:
            status_server.set_json(f"/{provider}/api/v2/summary.json", down)
        await until(lambda: len(slack.top_level(CHANNEL)) >= len(flipped), timeout=30)
        # each flipped page read twice more since: a second notice would have come by now
        await until(
            lambda: all(len(_reads(status_server, flipped_at).get(p, [])) >= 3 for p in flipped),
            timeout=30,
        )
        roots = slack.top_level(CHANNEL)
        named = sorted(
            p
            for r in roots
            for p in flipped
            if f"Provider {p}" in json.dumps([r.text, r.blocks, r.attachments])
        )
        assert named == sorted(flipped)  # each once
    finally:
        for watcher in watchers:
            await watcher.stop()
        if notifier is not None:
            await notifier.halt()
        await slack.close()
