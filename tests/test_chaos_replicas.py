"""Chaos between replicas, with real ``tocsin run --role all`` processes on one real Redis (the
suite's own redis-server), the fake Slack and fake providers on loopback sockets.

* three replicas, the leader killed with SIGKILL while Slack holds back its answer to the
  outage's root notice (posted, but the leader never hears so): another replica leads within
  the lease, the dead one's unacknowledged entry is claimed and reconciled, and every episode
  (one before the kill, one after) gets exactly one root notice and one recovery reply;
* the leader alone cut off from the providers (an unreachable proxy in its environment): the
  self-check tells the admins once and no provider is announced down; once it is killed, a
  healthy replica leads, still announces nothing, and tells the admins the network is back.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from bot.store import NOTIFIERS_GROUP
from tests.chaos import TocsinProcess, until
from tests.fakes.slack import FakeSlack, Message
from tests.fakes.status_server import FakeStatusServer
from tests.redis_server import RedisServer, free_port

pytestmark = pytest.mark.chaos

CHANNEL = "C0REPLICA01"
ADMIN = "C0REPLADM01"
MODELS = "/v1/models"
#: The watcher lease, and how often every replica tries to take or renew it (``lease / 3``).
LEASE = 3.0
RENEW = LEASE / 3
#: Noticing a new leader: a /healthz round trip to each survivor, three processes on 2 cores.
NOTICE = 0.25
#: A dead notifier's entries are claimed after this: longer than a failover plus a recovery
#: (so the recovery is told while the root notice is still the dead replica's), far shorter
#: than the 30 s default.
CLAIM_IDLE = 10.0
PROVIDERS = {"alpha": "Alpha AI", "bravo": "Bravo AI", "charlie": "Charlie AI"}
BRAVO_COMPONENT = "bravoapi0001"
HEALTHY: dict[str, Any] = {"data": []}


def _summary(status: str) -> dict[str, Any]:
    """A Statuspage summary with Bravo's one component in ``status``."""
    return {
        "page": {"id": "bravo", "name": "Bravo", "url": "https://status.bravo.example"},
        "status": {"indicator": "none", "description": "All Systems Operational"},
        "components": [{"id": BRAVO_COMPONENT, "name": "Bravo API", "status": status}],
        "incidents": [],
        "scheduled_maintenances": [],
    }


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    fake = await FakeSlack().start()
    fake.add_channel(CHANNEL, "ai-incidents")
    fake.add_channel(ADMIN, "tocsin-admins")
    yield fake
    await fake.close()


def _serve_healthy(server: FakeStatusServer, *, page: bool) -> None:
    for provider in PROVIDERS:
        server.set_json(f"/{provider}{MODELS}", HEALTHY)
    if page:
        server.set_json("/bravo/api/v2/summary.json", _summary("operational"))


def _config(
    redis: RedisServer,
    prefix: str,
    slack: FakeSlack,
    server: FakeStatusServer,
    *,
    page: bool,
    interval: str = "300ms",
) -> dict[str, Any]:
    """Three probed providers (the self-check's minimum), Bravo's status page if ``page``."""
    providers: list[dict[str, Any]] = []
    for provider, name in PROVIDERS.items():
        entry: dict[str, Any] = {
            "id": provider,
            "name": name,
            "fallbacks": [],
            "probe": {
                "url": f"{server.url}/{provider}{MODELS}",
                "interval": interval,
                "timeout": "1s",
            },
        }
        if page and provider == "bravo":
            entry["status_page"] = {
                "kind": "statuspage",
                "url": f"{server.url}/bravo",
                "components": [BRAVO_COMPONENT],
                "interval": "300ms",
            }
        providers.append(entry)
    return {
        "store": {
            "url": redis.url,
            "prefix": prefix,
            "lease": f"{LEASE:g}s",
            "claim_idle": f"{CLAIM_IDLE:g}s",
        },
        "console": {"enabled": False},
        "watch": {"jitter": "0s"},
        "providers": providers,
        "slack": {
            "api_url": slack.api_url,
            "bot_token": slack.bot_token,
            "channels": [{"id": CHANNEL}],
            "admin_channel": ADMIN,
        },
    }


async def _leaders(replicas: Iterable[TocsinProcess]) -> list[str]:
    """The replicas whose health says they hold the watcher lease."""
    found = []
    for replica in replicas:
        health = await replica.health() if replica.running else None
        if health and health.get("leader"):
            found.append(replica.name)
    return found


async def _leads(replica: TocsinProcess) -> None:
    await replica.wait_healthy()

    async def leads() -> bool:
        return await _leaders([replica]) == [replica.name]

    await until(leads)


async def _rounds(server: FakeStatusServer, paths: Iterable[str], rounds: int = 3) -> None:
    """Every path has been read ``rounds`` more times from now on."""
    seen = {path: server.count(path) for path in paths}
    await until(lambda: all(server.count(path) >= n + rounds for path, n in seen.items()))


def _roots(slack: FakeSlack, name: str) -> list[Message]:
    return [m for m in slack.top_level(CHANNEL) if name in m.text]


def _recoveries(slack: FakeSlack, root: Message) -> list[Message]:
    return [m for m in slack.replies(CHANNEL, root.ts) if "recovered" in m.text]


async def _pending(client: aioredis.Redis, prefix: str) -> list[dict[str, Any]]:
    """The group's unacknowledged entries: id, consumer, idle time, deliveries."""
    found: list[dict[str, Any]] = await client.xpending_range(
        f"{prefix}events", NOTIFIERS_GROUP, min="-", max="+", count=100
    )
    return found


async def _events(client: aioredis.Redis, prefix: str) -> list[tuple[str, dict[str, Any]]]:
    """The stream as written: (entry id, event JSON)."""
    entries: Any = await client.xrange(f"{prefix}events")
    return [(entry_id, json.loads(fields["event"])) for entry_id, fields in entries]


def _failed_probes(metrics: str) -> float:
    """Probe rounds that failed, from ``/metrics`` (``tocsin_checks_total``)."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("tocsin_checks_total{")
        and ':probe"' in line
        and 'result="major_outage"' in line
    )


async def _killed(replica: TocsinProcess) -> None:
    """SIGKILL (if still running) and reap it."""
    replica.kill()
    if replica.process is not None:
        await replica.wait()


def _report(replicas: Iterable[TocsinProcess]) -> str:
    return "\n".join(f"--- {r.name}\n{r.log()[-3000:]}" for r in replicas)


@pytest.mark.timeout(90)
async def test_three_replicas_leader_killed_new_leader_within_the_lease_no_duplicate_or_missed_notice(  # noqa: E501
    redis_server: RedisServer,
    key_prefix: str,
    slack: FakeSlack,
    status_server: FakeStatusServer,
    tmp_path: Path,
) -> None:
    """The leader dies (SIGKILL) after Slack took Alpha's root notice but before tocsin heard
    back, and Alpha recovers before anyone claims that delivery.

    Bound: the dead leader renewed its lease (``store.lease``, 3 s) at most one renew period
    (lease / 3 = 1 s) before it died, and followers try every renew period, so another replica
    reports ``leader`` within lease + lease / 3 = 4 s of the kill (plus ``NOTICE``, 0.25 s, to
    see it), and never before the dead one's lease ran out. The dead replica's entry is
    claimed after ``store.claim_idle`` and reconciled (found in Slack, not posted again); the
    recovery waits for it instead of being dropped for want of a thread, while Bravo's
    episode, meanwhile, is not held up by Alpha's.
    """
    _serve_healthy(status_server, page=True)
    config = _config(redis_server, key_prefix, slack, status_server, page=True)
    first, second, third = (
        TocsinProcess(tmp_path, name, config) for name in ("replica-a", "replica-b", "replica-c")
    )
    replicas = [first, second, third]
    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    alpha, bravo_page = f"/alpha{MODELS}", "/bravo/api/v2/summary.json"
    try:
        await first.start()
        await _leads(first)
        await _rounds(status_server, [f"/{p}{MODELS}" for p in PROVIDERS] + [bravo_page])

        # Alpha goes down; Slack posts the root notice and holds its answer back.
        slack.hold_answer("chat.postMessage", 60)
        status_server.set_status(alpha, 503)
        await asyncio.wait_for(slack.held.wait(), 20)
        assert len(_roots(slack, "Alpha AI")) == 1
        await asyncio.gather(second.start(), third.start())
        await asyncio.gather(second.wait_healthy(), third.wait_healthy())
        assert await _leaders(replicas) == ["replica-a"], _report(replicas)
        held = await _pending(client, key_prefix)
        assert [p["consumer"] for p in held] == ["replica-a"], held
        held_entry = held[0]["message_id"]

        first.kill()
        killed = time.monotonic()
        remaining = await client.pttl(f"{key_prefix}leader") / 1000  # what the dead one holds
        await _killed(first)
        slack.holds.clear()  # from now on Slack answers at once

        async def new_leader() -> bool:
            return bool(await _leaders([second, third]))

        await until(new_leader, timeout=LEASE + RENEW + 5, every=0.02)
        failover = time.monotonic() - killed
        print(f"failover: {failover:.2f} s after the kill ({remaining:.2f} s of lease left)")
        assert remaining <= failover <= remaining + RENEW + NOTICE, (remaining, failover)
        assert failover <= LEASE + RENEW + NOTICE
        assert len(await _leaders([second, third])) == 1

        # Alpha recovers and Bravo's page reports an outage, both under the new leader.
        status_server.set_json(alpha, HEALTHY)
        status_server.set_json(bravo_page, _summary("major_outage"))

        async def alpha_recovery_written() -> bool:
            return any(
                e["provider"] == "alpha" and e.get("provider_status") == "operational"
                for _, e in await _events(client, key_prefix)
            )

        await until(alpha_recovery_written)
        still = [p["consumer"] for p in await _pending(client, key_prefix)]
        assert "replica-a" in still, "the claim came before the recovery: nothing was tested"

        await until(lambda: len(_roots(slack, "Bravo AI")) == 1)
        (alpha_root,) = _roots(slack, "Alpha AI")
        await until(lambda: bool(_recoveries(slack, alpha_root)), timeout=CLAIM_IDLE + 15)
        status_server.set_json(bravo_page, _summary("operational"))
        (bravo_root,) = _roots(slack, "Bravo AI")
        await until(lambda: bool(_recoveries(slack, bravo_root)))

        async def settled() -> bool:
            return not await _pending(client, key_prefix)

        await until(settled)
        await asyncio.sleep(1.0)  # anything doubled would show up now
    finally:
        codes = list(await asyncio.gather(second.stop(), third.stop()))
        await _killed(first)
        await client.aclose()

    assert codes == [0, 0], _report(replicas)
    claims = [
        line
        for line in (second.log() + third.log()).splitlines()
        if "claimed an entry a dead consumer left pending" in line
    ]
    assert [f"entry={held_entry}" in line for line in claims] == [True], _report(replicas)
    assert slack.calls_to("conversations.history"), "the claimed root was not looked for"
    for name in ("Alpha AI", "Bravo AI"):
        (root,) = _roots(slack, name)
        assert len(_recoveries(slack, root)) == 1, slack.replies(CHANNEL, root.ts)
        assert len(slack.replies(CHANNEL, root.ts)) == 1, slack.replies(CHANNEL, root.ts)
        assert "Resolved" in slack.message(CHANNEL, root.ts).text
    assert len(slack.top_level(CHANNEL)) == 2, [m.text for m in slack.top_level(CHANNEL)]
    assert not _roots(slack, "Charlie AI")
    assert bravo_root.at < _recoveries(slack, alpha_root)[0].at  # Bravo did not wait for Alpha
    assert slack.violations == []


@pytest.mark.timeout(90)
async def test_a_replica_cut_off_from_the_providers_sends_no_outage_notice(
    redis_server: RedisServer,
    key_prefix: str,
    slack: FakeSlack,
    tmp_path: Path,
) -> None:
    """Only the leader's provider traffic fails, with network errors: ``ALL_PROXY`` points at
    a closed port (httpx, the watcher's client, honours it; Slack's client and Redis do not
    use it), and the providers listen on 127.0.0.2, outside ``NO_PROXY``. The self-check must
    blame the watcher's network (one admin notice), never the providers.

    Probes run every second: the first round then spreads over a second while a failure is
    confirmed after a quarter of one, so a provider can fail twice before the others have
    run at all (which once got it announced down). When the cut-off leader dies, a healthy
    replica takes over, finds every provider up and tells the admins the network is back.
    """
    providers = await FakeStatusServer(host="127.0.0.2").start()
    closed = f"http://127.0.0.1:{free_port()}"
    _serve_healthy(providers, page=False)
    config = _config(redis_server, key_prefix, slack, providers, page=False, interval="1s")
    cut = TocsinProcess(tmp_path, "cut-off", config, env={"ALL_PROXY": closed, "all_proxy": closed})
    healthy = [TocsinProcess(tmp_path, name, config) for name in ("healthy-b", "healthy-c")]
    replicas = [cut, *healthy]
    try:
        await cut.start()
        await _leads(cut)
        await asyncio.gather(*(r.start() for r in healthy))
        await asyncio.gather(*(r.wait_healthy() for r in healthy))
        await until(lambda: bool(slack.top_level(ADMIN)))

        # Leading and probing all along, failing only: many more rounds, no provider notice.
        before = _failed_probes(await cut.metrics())

        async def more_failures() -> bool:
            return _failed_probes(await cut.metrics()) >= before + 3 * len(PROVIDERS)

        await until(more_failures)
        health = await cut.health()
        assert health is not None
        assert health["leader"] is True
        assert health["store"] == "ok"
        assert await _leaders(replicas) == ["cut-off"]
        assert providers.requests == [], "the cut-off leader reached the providers"
        assert slack.top_level(CHANNEL) == [], [m.text for m in slack.top_level(CHANNEL)]
        (suspect,) = slack.top_level(ADMIN)
        assert "own network is the suspect" in suspect.text, suspect.text

        # The cut-off replica dies; a healthy one leads and finds every provider up.
        await _killed(cut)

        async def healthy_leads() -> bool:
            return bool(await _leaders(healthy))

        await until(healthy_leads, timeout=LEASE + RENEW + 5)
        await _rounds(providers, [f"/{p}{MODELS}" for p in PROVIDERS])
        await until(lambda: len(slack.top_level(ADMIN)) == 2)
        await asyncio.sleep(1.0)  # a late notice would show up now
    finally:
        codes = list(await asyncio.gather(*(r.stop() for r in healthy)))
        await _killed(cut)
        await providers.close()

    assert codes == [0, 0], _report(replicas)
    assert slack.top_level(CHANNEL) == [], [m.text for m in slack.top_level(CHANNEL)]
    assert slack.top_level(ADMIN)[0] is suspect
    assert "network has recovered" in slack.top_level(ADMIN)[1].text
    assert slack.violations == []
