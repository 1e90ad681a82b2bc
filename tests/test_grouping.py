"""Grouping by likely cause, end to end: real ``Event``s with a ``cause`` appended to a real
redis-server as the watcher would (state and event together), real dispatchers reading the
stream, and the fake Slack over HTTP (every call checked against Slack's OpenAPI spec).

Per channel, the providers down with one upstream incident get one root that names the cause
and lists them; a provider alone keeps its own root ("Possibly related"); an outage without a
cause is never slowed; a late provider replies in the group's thread; two replicas, a leader
that dies waiting and a crash between posting and recording still leave one root."""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import discord.gateway
import discord.http
import pytest
from rich.console import Console

from bot.app import assemble
from bot.compose import GroupMember, compose_group_root
from bot.dispatcher import Dispatcher, DispatcherSettings, Outcome
from bot.models import Event, EventCause, StateUpdate, Status, utcnow
from bot.notice_context import NoticeContext
from bot.notifier import Intent, Target
from bot.pipeline.groups import group_key
from bot.store import NOTIFIERS_GROUP, MemoryStore, RedisStore
from config.loader import build_config
from config.schema import TocsinConfig
from handlers import build_targets
from handlers.console import render
from handlers.discord.render import notice_embed
from handlers.slack.render import notice_message
from tests.chaos import until
from tests.fakes.discord import FakeDiscord
from tests.fakes.slack import FakeSlack, Message, attachment_errors
from tests.outages import outage
from tests.redis_server import RedisServer
from tests.test_slack import BROADCAST, _header, _live_tokens, _parsed

A, B = "C0GROUPA01", "C0GROUPB01"
TARGET_A, TARGET_B = f"slack:{A}", f"slack:{B}"
NAMES = {"acme": "Acme AI", "zeta": "Zeta AI", "omega": "Omega AI"}
WAIT = 0.4
CAUSE = EventCause(
    upstream="cloudflare",
    name="Cloudflare",
    incident="Elevated errors on the edge network",
    url="https://www.cloudflarestatus.com/incidents/abc123",
    group="cloudflare:abc123",
)


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    fake = await FakeSlack().start()
    fake.add_channel(A, "ai-incidents")
    fake.add_channel(B, "two-providers")
    yield fake
    await fake.close()


def _config(slack: FakeSlack, **grouping: Any) -> TocsinConfig:
    return build_config(
        {
            "console": {"enabled": False},
            "providers": [
                {"id": p, "name": name, "probe": {"url": "http://127.0.0.1:9/"}}
                for p, name in NAMES.items()
            ],
            "slack": {
                "api_url": slack.api_url,
                "bot_token": slack.bot_token,
                "channels": [
                    {"id": A, "providers": "all"},
                    {"id": B, "providers": ["acme", "zeta"]},
                ],
            },
            "grouping": grouping,
        }
    )


class Replica:
    """One dispatcher process: its own store connection, targets and consumer name."""

    def __init__(
        self,
        redis: RedisServer,
        prefix: str,
        config: TocsinConfig,
        consumer: str = "one",
        *,
        wait: float = WAIT,
        grouping: bool = True,
        targets: list[Target] | None = None,
    ) -> None:
        self.store = RedisStore(redis.url, prefix=prefix)
        self.targets: list[Target] = build_targets(config) if targets is None else targets
        settings = DispatcherSettings(
            consumer=consumer,
            batch=1,
            block_ms=50,
            retry_initial=0.05,
            retry_max=0.2,
            store_retry=0.1,
            drain_grace=0.3,
            grouping=grouping,
            group_wait=wait,
            group_grace=1.0,
            group_poll=0.05,
        )
        self.dispatcher = Dispatcher(
            self.store, self.targets, NoticeContext(config, self.store), settings
        )
        self.dispatcher.on_outcome = self._seen
        self.outcomes: list[tuple[str, str, Outcome]] = []
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def _seen(self, event: Event, target: Target, outcome: Outcome) -> None:
        self.outcomes.append((event.id, target.key, outcome))

    async def start(self) -> Replica:
        await self.store.open()
        await self.store.ensure_group(NOTIFIERS_GROUP)
        self.task = asyncio.create_task(self.dispatcher.run(self.stop))
        return self

    async def halt(self) -> None:
        self.stop.set()
        assert self.task is not None
        await asyncio.wait_for(self.task, 10)
        for notifier in {id(t.notifier): t.notifier for t in self.targets}.values():
            await notifier.close()
        await self.store.close()

    def done(self, events: Sequence[Event], *others: Replica) -> bool:
        seen = {(e, t) for r in (self, *others) for e, t, _ in r.outcomes}
        return all((e.id, t.key) in seen for e in events for t in self.targets)


@pytest.fixture
async def replicas() -> AsyncIterator[list[Replica]]:
    """Every replica a test starts, halted at its end (whatever happened)."""
    started: list[Replica] = []
    yield started
    for replica in started:
        if replica.task is not None and not replica.task.done():
            await replica.halt()


async def _start(replicas: list[Replica], replica: Replica) -> Replica:
    replicas.append(replica)
    return await replica.start()


def _down(
    provider: str, cause: EventCause | None = CAUSE, status: Status = Status.MAJOR_OUTAGE
) -> StateUpdate:
    return outage(provider, NAMES[provider], cause, status)


def _up(down: StateUpdate) -> StateUpdate:
    opened = down.event
    assert opened is not None
    at = utcnow()
    state = down.state.model_copy(
        update={"status": Status.OPERATIONAL, "since": at, "last_known": Status.OPERATIONAL}
    )
    event = opened.model_copy(
        update={
            "id": uuid.uuid4().hex,
            "from_": opened.to,
            "to": Status.OPERATIONAL,
            "at": at,
            "provider_status": Status.OPERATIONAL,
        }
    )
    return StateUpdate(state, event, status_changed=True)


async def _append(store: RedisStore, *updates: StateUpdate) -> list[Event]:
    for update in updates:
        await store.apply([update])
    return [u.event for u in updates if u.event is not None]


def _body(message: Message) -> str:
    return json.dumps(message.attachments, ensure_ascii=False) + message.text


def _delivered(*replicas: Replica) -> list[tuple[str, str]]:
    return [(e, t) for r in replicas for e, t, o in r.outcomes if o == "delivered"]


# --------------------------------------------------------------------------- the story


async def test_three_providers_one_cause_one_root_per_channel_then_a_recovery(
    slack: FakeSlack, redis_server: RedisServer, key_prefix: str, replicas: list[Replica]
) -> None:
    replica = await _start(replicas, Replica(redis_server, key_prefix, _config(slack)))
    downs = [_down(p) for p in NAMES]
    events = await _append(replica.store, *downs)
    await until(lambda: replica.done(events), timeout=10)

    [root_a], [root_b] = slack.top_level(A), slack.top_level(B)
    assert _header(root_a) == "🔴 3 providers down — likely cause: Cloudflare"
    assert _header(root_b) == "🔴 2 providers down — likely cause: Cloudflare"
    for name in NAMES.values():
        assert name in _body(root_a)
    assert "Acme AI" in _body(root_b)
    assert "Zeta AI" in _body(root_b)
    assert "Omega AI" not in _body(root_b)
    assert "Likely cause: Cloudflare — Elevated errors on the edge network" in root_a.text
    links = {t[1:-1].split("|")[0] for t in _live_tokens({"attachments": root_a.attachments})}
    assert links == {CAUSE.url}
    # one delivery per channel; every other member found itself delivered with it
    assert sorted(t for _, t in _delivered(replica)) == [TARGET_A, TARGET_B]
    for event in events:
        assert await replica.store.sent(event.id, TARGET_A)
    for event in events[:2]:
        assert await replica.store.sent(event.id, TARGET_B)
    assert (events[2].id, TARGET_B, "skipped") in replica.outcomes

    [recovery] = await _append(replica.store, _up(downs[0]))
    await until(lambda: replica.done([recovery]), timeout=10)
    for channel, root in ((A, root_a), (B, root_b)):
        [reply] = slack.replies(channel, root.ts)
        assert "Acme AI: recovered" in reply.text
    edited_a, edited_b = slack.message(A, root_a.ts), slack.message(B, root_b.ts)
    assert _header(edited_a) == "🔴 2 of 3 providers down — likely cause: Cloudflare"
    assert _header(edited_b) == "🔴 1 of 2 providers down — likely cause: Cloudflare"
    for name in NAMES.values():
        assert name in _body(edited_a)  # the group's story, not one provider's root
    assert "✅ Acme AI" in _body(edited_a)
    assert "Operational" in _body(edited_a)
    assert len(slack.top_level(A)) == len(slack.top_level(B)) == 1
    assert slack.violations == []


async def test_one_provider_with_a_cause_keeps_its_own_root_naming_the_cause(
    slack: FakeSlack, redis_server: RedisServer, key_prefix: str, replicas: list[Replica]
) -> None:
    replica = await _start(replicas, Replica(redis_server, key_prefix, _config(slack)))
    events = await _append(replica.store, _down("acme"))
    await until(lambda: replica.done(events), timeout=10)
    for channel in (A, B):
        [root] = slack.top_level(channel)
        assert _header(root) == "🔴 Acme AI: major outage (confirmed)"
        assert "Possibly related" in _body(root)
        assert "Cloudflare — Elevated errors on the edge network" in _body(root)
    assert sorted(t for _, t in _delivered(replica)) == [TARGET_A, TARGET_B]
    assert slack.violations == []


async def test_an_outage_without_a_cause_is_not_slowed_by_a_group_waiting(
    slack: FakeSlack, redis_server: RedisServer, key_prefix: str, replicas: list[Replica]
) -> None:
    """A group waits 600 s in both channels' queues; an outage without a cause behind it
    (same channels, same workers) is out at once."""
    replica = await _start(replicas, Replica(redis_server, key_prefix, _config(slack), wait=600))
    [grouped] = await _append(replica.store, _down("acme"))
    [alone] = await _append(replica.store, _down("zeta", cause=None))
    await until(lambda: replica.done([alone]), timeout=5)
    for channel in (A, B):
        [root] = slack.top_level(channel)
        assert _header(root) == "🔴 Zeta AI: major outage (confirmed)"
        assert "Possibly related" not in _body(root)
    assert not any(e == grouped.id for e, _, _ in replica.outcomes)  # still waiting


async def test_a_late_provider_replies_in_the_groups_thread(
    slack: FakeSlack, redis_server: RedisServer, key_prefix: str, replicas: list[Replica]
) -> None:
    replica = await _start(replicas, Replica(redis_server, key_prefix, _config(slack)))
    first = await _append(replica.store, _down("acme"), _down("zeta"))
    await until(lambda: replica.done(first), timeout=10)
    [root] = slack.top_level(A)
    assert _header(root) == "🔴 2 providers down — likely cause: Cloudflare"

    late = _down("omega")
    await _append(replica.store, late)
    await until(lambda: len(slack.replies(A, root.ts)) == 1, timeout=10)
    [joined] = slack.replies(A, root.ts)
    assert _header(joined) == "🔴 Also down: Omega AI: major outage (confirmed)"
    await until(
        lambda: (
            _header(slack.message(A, root.ts)) == "🔴 3 providers down — likely cause: Cloudflare"
        )
    )
    assert "Omega AI" in _body(slack.message(A, root.ts))

    await _append(replica.store, _up(late))  # its episode's thread is the group's now
    await until(lambda: len(slack.replies(A, root.ts)) == 2, timeout=10)
    assert "Omega AI: recovered" in slack.replies(A, root.ts)[1].text
    await until(
        lambda: (
            _header(slack.message(A, root.ts))
            == "🔴 2 of 3 providers down — likely cause: Cloudflare"
        )
    )
    assert len(slack.top_level(A)) == len(slack.top_level(B)) == 1
    assert slack.violations == []


# --------------------------------------------------------------------------- replicas


async def _take(store: RedisStore, consumer: str, count: int = 1) -> None:
    """Hand the next ``count`` stream entries to ``consumer`` (as its read would)."""
    taken = await store.read_group(NOTIFIERS_GROUP, consumer, count, 0)
    assert len(taken) == count


async def test_two_replicas_on_one_redis_post_one_root_per_channel(
    slack: FakeSlack, redis_server: RedisServer, key_prefix: str, replicas: list[Replica]
) -> None:
    """The first event is with one replica, the second with the other (each had read it
    before it died and restarted: a redelivery), the third goes to whichever reads first."""
    config = _config(slack)
    one = Replica(redis_server, key_prefix, config, "one")
    two = Replica(redis_server, key_prefix, config, "two")
    setup = RedisStore(redis_server.url, prefix=key_prefix)
    await setup.open()
    await setup.ensure_group(NOTIFIERS_GROUP)
    downs = [_down(p) for p in NAMES]
    events = await _append(setup, *downs[:2])
    await _take(setup, "one")
    await _take(setup, "two")
    await setup.close()
    await _start(replicas, one)
    await _start(replicas, two)
    events += await _append(one.store, downs[2])
    await until(lambda: one.done(events, two), timeout=10)

    [root_a], [root_b] = slack.top_level(A), slack.top_level(B)
    assert _header(root_a) == "🔴 3 providers down — likely cause: Cloudflare"
    assert _header(root_b) == "🔴 2 providers down — likely cause: Cloudflare"
    assert sorted(t for _, t in _delivered(one, two)) == [TARGET_A, TARGET_B]
    assert one.outcomes
    assert two.outcomes
    assert slack.violations == []


async def test_a_leader_that_dies_waiting_is_taken_over(
    slack: FakeSlack, redis_server: RedisServer, key_prefix: str, replicas: list[Replica]
) -> None:
    """Replica one claims the group and stops while it waits (its claim left to expire);
    replica two's waiting members take the claim over and post the root, as the oldest
    member; one restarted finds its event delivered."""
    config = _config(slack)
    one = await _start(replicas, Replica(redis_server, key_prefix, config, "one", wait=1.5))
    downs = [_down(p) for p in NAMES]
    events = await _append(one.store, downs[0])
    claim = f"grouping:{group_key(CAUSE.group)}:{TARGET_A}"

    async def claimed() -> bool:
        return await one.store.lease_holder(claim) == events[0].id

    await until(claimed, timeout=5)
    await one.halt()  # mid-wait: the parked job is cancelled, its entry stays pending
    two = await _start(replicas, Replica(redis_server, key_prefix, config, "two", wait=1.5))
    events += await _append(two.store, *downs[1:])
    await until(lambda: two.done(events[1:]), timeout=10)
    [root_a], [root_b] = slack.top_level(A), slack.top_level(B)
    assert _header(root_a) == "🔴 3 providers down — likely cause: Cloudflare"
    assert _header(root_b) == "🔴 2 providers down — likely cause: Cloudflare"
    assert root_a.metadata is not None
    assert root_a.metadata["event_payload"]["event_id"] == events[0].id

    again = await _start(replicas, Replica(redis_server, key_prefix, config, "one", wait=1.5))
    await until(lambda: again.done(events[:1]), timeout=10)
    assert {o for e, _, o in again.outcomes if e == events[0].id} <= {"reconciled", "duplicate"}
    assert len(slack.top_level(A)) == len(slack.top_level(B)) == 1
    assert slack.violations == []


async def test_a_crash_between_posting_the_group_root_and_recording_it(
    slack: FakeSlack, redis_server: RedisServer, key_prefix: str, replicas: list[Replica]
) -> None:
    """Slack takes the group root but its answer never reaches the dispatcher, which stops;
    restarted, it asks Slack (the root's metadata) instead of posting it again."""
    config = _config(slack)
    first = await _start(replicas, Replica(redis_server, key_prefix, config))
    slack.hold_answer("chat.postMessage", 5)
    events = await _append(first.store, *(_down(p) for p in NAMES))
    await until(lambda: bool(slack.top_level(A)) and bool(slack.top_level(B)), timeout=10)
    await first.halt()
    assert _delivered(first) == []
    slack.holds.clear()
    history = len(slack.calls_to("conversations.history"))

    again = await _start(replicas, Replica(redis_server, key_prefix, config))
    await until(lambda: again.done(events), timeout=10)
    assert len(slack.calls_to("conversations.history")) > history
    [root_a], [root_b] = slack.top_level(A), slack.top_level(B)
    assert _header(root_a) == "🔴 3 providers down — likely cause: Cloudflare"
    assert _header(root_b) == "🔴 2 providers down — likely cause: Cloudflare"
    assert _delivered(again) == []  # found, not posted again
    for event in events:
        assert await again.store.sent(event.id, TARGET_A)
    assert slack.violations == []


# --------------------------------------------------------------------------- hostile, off


HOSTILE = (
    "<!channel> @everyone Edge down <https://evil.example|click> <@U0ATTACKER> " + "x" * 50_000
)


async def test_a_hostile_cause_is_escaped_and_clipped_and_still_posts(
    slack: FakeSlack, redis_server: RedisServer, key_prefix: str, replicas: list[Replica]
) -> None:
    """A group root (acme and zeta) and a lone provider's root (omega, another incident),
    both naming an upstream incident whose title is an attack and 50 kB long."""
    hostile = CAUSE.model_copy(update={"incident": HOSTILE, "group": "cloudflare:<evil>\n" * 20})
    other = CAUSE.model_copy(
        update={"incident": HOSTILE, "group": "cloudflare:other", "url": "javascript:alert(1)"}
    )
    replica = await _start(replicas, Replica(redis_server, key_prefix, _config(slack)))
    events = await _append(
        replica.store,
        _down("acme", cause=hostile),
        _down("zeta", cause=hostile),
        _down("omega", cause=other),
    )
    await until(lambda: replica.done(events), timeout=10)
    headers = sorted(_header(r) for r in slack.top_level(A))
    assert len(headers) == 2
    assert headers[0].startswith("🔴 2 providers down — likely cause: Cloudflare")
    assert headers[1].startswith("🔴 Omega AI: major outage")
    assert len(slack.top_level(B)) == 1
    for call in slack.calls_to("chat.postMessage"):
        payload = call.params
        text = "\n".join(_parsed(payload))
        assert "&lt;!channel&gt;" in text
        assert "<!channel>" not in text
        assert "<@U0ATTACKER>" not in text
        assert BROADCAST.search(text) is None
        links = {t[1:-1].split("|")[0] for t in _live_tokens(payload)}
        assert links <= {CAUSE.url}  # never evil.example, never javascript:
        assert len(json.dumps(payload)) < 40_000  # clipped, not 50 kB
    assert await replica.store.dead_letters() == []
    assert slack.violations == []


async def test_grouping_off_is_one_root_per_provider(
    slack: FakeSlack, redis_server: RedisServer, key_prefix: str, replicas: list[Replica]
) -> None:
    config = _config(slack, enabled=False)
    replica = await _start(replicas, Replica(redis_server, key_prefix, config, grouping=False))
    events = await _append(replica.store, *(_down(p) for p in NAMES))
    await until(lambda: replica.done(events), timeout=10)
    assert sorted(_header(m) for m in slack.top_level(A)) == [
        f"🔴 {name}: major outage (confirmed)" for name in sorted(NAMES.values())
    ]
    assert len(slack.top_level(B)) == 2
    assert len(_delivered(replica)) == 5
    assert slack.violations == []


def test_the_config_reaches_the_dispatcher(slack: FakeSlack) -> None:
    for grouping, enabled, wait in (
        ({}, True, 15.0),
        ({"group_wait": "2s"}, True, 2.0),
        ({"enabled": False}, False, 15.0),
    ):
        runtime = assemble(_config(slack, **grouping), "notifier", store=MemoryStore(), env={})
        assert runtime.dispatcher is not None
        settings = runtime.dispatcher.settings
        assert (settings.grouping, settings.group_wait) == (enabled, wait)


def test_slack_discord_and_the_console_render_a_big_hostile_group_root() -> None:
    """Twelve providers (nine listed, the rest counted), a hostile 50 kB incident title: each
    renderer keeps its platform's limits and shows no markup from the page."""
    hostile = CAUSE.model_copy(update={"incident": HOSTILE})
    members = [
        GroupMember(
            f"p{i}",
            f"Provider {i} <!here>",
            Status.MAJOR_OUTAGE if i % 3 else Status.OPERATIONAL,
            "API: major outage @everyone",
        )
        for i in range(12)
    ]
    notice = compose_group_root(hostile, members, event_id="e" * 32, provider="p0")
    assert notice.title == "8 of 12 providers down — likely cause: Cloudflare"
    assert len(notice.fields) == 10
    assert notice.fields[-1][0] == "… and 3 more"

    message = notice_message(notice, Intent.OPEN, event_id="e" * 32)
    assert attachment_errors(message["attachments"]) == (None, [])
    assert "<!here>" not in "\n".join(_parsed(message))
    assert len(message["text"]) <= 3000

    embed = notice_embed(notice, Intent.OPEN, "e" * 32)
    assert len(embed) <= 6000
    assert len(embed.fields) <= 25
    assert "@everyone" not in json.dumps(embed.to_dict(), ensure_ascii=False)
    assert embed.title is not None
    assert embed.title.startswith("🔴 8 of 12 providers down")

    out = io.StringIO()
    Console(file=out, width=120, color_system=None).print(render(notice, Intent.OPEN, "12:00"))
    shown = out.getvalue()
    assert "8 of 12 providers down" in shown
    assert "Provider 1 <!here>" in shown  # literal text, never markup
    assert "… and 3 more" in shown


# --------------------------------------------------------------------------- other platforms


@pytest.fixture
def _discord_globals() -> Iterator[None]:
    """tocsin points discord.py at the configured API (here, the fake): put it back after."""
    base = discord.http.Route.BASE
    gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    yield
    discord.http.Route.BASE = base
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = gateway


@pytest.mark.usefixtures("_discord_globals")
async def test_discord_bot_and_webhook_and_the_console_get_one_group_root(
    redis_server: RedisServer, key_prefix: str, replicas: list[Replica]
) -> None:
    fake = await FakeDiscord().start()
    try:
        guild = fake.add_guild(name="acme-eng")
        alerts = fake.add_channel(guild.id, name="ai-incidents").id
        hooked = fake.add_channel(guild.id, name="webhook-alerts").id
        webhook_url = fake.add_webhook(hooked)
        webhook_id = webhook_url.rstrip("/").split("/")[-2]
        config = build_config(
            {
                "providers": [
                    {"id": p, "name": name, "probe": {"url": "http://127.0.0.1:9/"}}
                    for p, name in NAMES.items()
                ],
                "discord": {
                    "api_url": fake.api_url,
                    "token": fake.token,
                    "channels": [{"id": alerts, "providers": "all"}],
                    "webhooks": [{"url": webhook_url, "providers": ["acme", "zeta"]}],
                },
            }
        )
        screen = io.StringIO()
        console = Console(file=screen, width=140)
        targets = build_targets(config, console=console)
        replica = await _start(replicas, Replica(redis_server, key_prefix, config, targets=targets))
        downs = [_down(p) for p in NAMES]
        events = await _append(replica.store, *downs)
        await until(lambda: replica.done(events), timeout=10)

        [root] = fake.messages(alerts)
        assert root.embeds[0]["title"] == "🔴 3 providers down — likely cause: Cloudflare"
        [hook_root] = fake.webhook_messages(webhook_id)
        assert hook_root.embeds[0]["title"] == "🔴 2 providers down — likely cause: Cloudflare"
        for name in NAMES.values():
            assert name in json.dumps(root.embeds, ensure_ascii=False)
        printed = screen.getvalue()
        assert printed.count("NEW ·") == 1
        assert "3 providers down — likely cause: Cloudflare" in printed

        [recovery] = await _append(replica.store, _up(downs[0]))
        await until(lambda: replica.done([recovery]), timeout=10)
        await until(lambda: len(fake.thread_messages(root.id)) == 1, timeout=10)
        assert "Acme AI: recovered" in fake.thread_messages(root.id)[0].embeds[0]["title"]
        assert (
            fake.message(alerts, root.id).embeds[0]["title"]
            == "🔴 2 of 3 providers down — likely cause: Cloudflare"
        )
        assert len(fake.webhook_messages(webhook_id)) == 2  # the follow-up
        assert (
            fake.message(hooked, hook_root.id).embeds[0]["title"]
            == "🔴 1 of 2 providers down — likely cause: Cloudflare"
        )
        assert "2 of 3 providers down" not in printed  # the console prints, never edits
        assert screen.getvalue().count("NEW ·") == 1
        assert fake.violations == []
    finally:
        await fake.close()
