"""Discord end to end, against the local fake Discord reached by the real discord.py over real
sockets: outage → one embed; updates → follow-ups in a thread; recovery → follow-up + the
embed edited to resolved; a restart in between changes none of it. For the bot and for
webhooks; and the commands through the fake gateway."""

from __future__ import annotations

import asyncio
import copy
import io
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import discord.gateway
import discord.http
import pytest

from bot.dispatcher import Dispatcher, DispatcherSettings, Outcome
from bot.logs import configure
from bot.models import Event, Status, utcnow
from bot.notice_context import NoticeContext
from bot.store import MemoryStore
from config.loader import build_config
from config.schema import TocsinConfig
from handlers import build_targets
from tests.fakes.discord import FakeDiscord, Message
from tests.fakes.status_server import FakeStatusServer, fixture_json
from tests.redis_server import RedisServer
from tests.running import Running

API = "k8w3r06qmzrp"
SUMMARY = "/api/v2/summary.json"
MODELS = "/v1/models"


@pytest.fixture(autouse=True)
def _restore_discord_globals() -> Iterator[None]:
    """tocsin points discord.py at the configured API (here, the fake): put it back after."""
    base = discord.http.Route.BASE
    gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    yield
    discord.http.Route.BASE = base
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = gateway


class World:
    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake
        self.guild = fake.add_guild(name="acme-eng")
        self.alerts = fake.add_channel(self.guild.id, name="ai-incidents").id
        self.majors = fake.add_channel(self.guild.id, name="outages").id
        self.admin = fake.add_channel(self.guild.id, name="tocsin-admin").id
        self.hooked = fake.add_channel(self.guild.id, name="webhook-alerts").id
        self.webhook_url = fake.add_webhook(self.hooked)
        self.webhook_id = self.webhook_url.rstrip("/").split("/")[-2]


@pytest.fixture
async def world() -> AsyncIterator[World]:
    fake = await FakeDiscord().start()
    yield World(fake)
    await fake.close()


def _config(world: World, page: FakeStatusServer, store: dict[str, Any]) -> TocsinConfig:
    return build_config(
        {
            "store": store,
            "server": {"enabled": False},
            "instance": "discord-test",
            "console": {"enabled": False},
            "watch": {"jitter": "0s", "timeout": "2s"},
            "providers": [
                {
                    "id": "acme",
                    "name": "Acme AI",
                    "status_page": {
                        "kind": "statuspage",
                        "url": page.url,
                        "components": [API],
                        "interval": "300ms",
                    },
                    "probe": {"url": f"{page.url}{MODELS}", "interval": "300ms", "timeout": "1s"},
                    "fallbacks": ["zeta"],
                    "litellm_model": "acme/large",
                    "openrouter_model": "acme/large",
                },
                {
                    "id": "zeta",
                    "name": "Zeta AI",
                    "probe": {
                        "url": f"{page.url}/zeta/models",
                        "interval": "300ms",
                        "timeout": "1s",
                    },
                    "openrouter_model": "zeta/large",
                },
            ],
            "discord": {
                "api_url": world.fake.api_url,
                "token": world.fake.token,
                "guilds": [world.guild.id],
                "admin_channel": world.admin,
                "channels": [
                    {"id": world.alerts, "providers": "all"},
                    {
                        "id": world.majors,
                        "providers": ["acme"],
                        "min_status": "major_outage",
                        "mention": "here",
                    },
                ],
                "webhooks": [{"url": world.webhook_url, "providers": "all"}],
            },
        }
    )


def _outage(status: str, updates: int) -> dict[str, Any]:
    payload = copy.deepcopy(fixture_json("statuspage_summary_anthropic_minor_monitoring.json"))
    incident = payload["incidents"][0]
    incident["components"][0]["id"] = API
    incident["status"] = status
    incident["incident_updates"] = incident["incident_updates"][-updates:]
    for component in payload["components"]:
        if component["id"] == API:
            component["status"] = "major_outage"
    return payload


async def _until(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.05)


def _title(message: Message) -> str:
    return str(message.embeds[0]["title"])


def _in_thread(fake: FakeDiscord, root: str) -> list[Message]:
    """The messages in the thread started on ``root`` (none until it exists)."""
    try:
        return fake.thread_messages(root)
    except KeyError:
        return []


async def test_bot_and_webhook_notices_through_an_outage_and_a_restart(
    world: World, status_server: FakeStatusServer, redis_server: RedisServer, key_prefix: str
) -> None:
    fake = world.fake
    status_server.set_fixture(SUMMARY, "statuspage_summary_anthropic_operational.json")
    status_server.set_json(MODELS, {"data": []})
    status_server.set_json("/zeta/models", {"data": []})
    config = _config(world, status_server, {"url": redis_server.url, "prefix": key_prefix})
    first = Running(config)
    await asyncio.sleep(1.2)
    assert fake.messages(world.alerts) == []

    status_server.set_status(MODELS, 503)
    await _until(
        lambda: (
            len(fake.messages(world.alerts)) == 1
            and len(fake.webhook_messages(world.webhook_id)) == 1
        )
    )
    await _until(lambda: len(fake.messages(world.majors)) == 1)
    root = fake.messages(world.alerts)[0]
    assert _title(root) == "🔴 Acme AI: major outage (suspected)"
    assert root.nonce is not None
    assert "Zeta AI" in str(root.embeds)
    assert fake.messages(world.majors)[0].content == "@here"
    assert root.content in ("", None)
    hook_root = fake.webhook_messages(world.webhook_id)[0]

    status_server.set_json(SUMMARY, _outage("investigating", 1))
    await _until(lambda: len(_in_thread(fake, root.id)) == 1)
    assert "confirmed by the status page" in str(_in_thread(fake, root.id)[0].embeds)
    await _until(
        lambda: (
            _title(fake.message(world.alerts, root.id)) == "🔴 Acme AI: major outage (confirmed)"
        )
    )
    await _until(lambda: len(fake.webhook_messages(world.webhook_id)) == 2)

    await first.halt()  # a restart in the middle of the outage
    second = Running(config)
    await asyncio.sleep(1.5)
    assert len(fake.messages(world.alerts)) == 1
    assert len(_in_thread(fake, root.id)) == 1

    status_server.set_json(SUMMARY, _outage("identified", 3))
    await _until(lambda: len(_in_thread(fake, root.id)) == 2)
    assert "We've identified the cause" in str(_in_thread(fake, root.id)[1].embeds)

    status_server.set_json(MODELS, {"data": []})
    await asyncio.sleep(1.0)
    status_server.set_fixture(SUMMARY, "statuspage_summary_anthropic_operational.json")
    await _until(lambda: len(_in_thread(fake, root.id)) == 3)
    assert "Acme AI: recovered" in _title(_in_thread(fake, root.id)[2])
    await _until(
        lambda: _title(fake.message(world.alerts, root.id)).startswith(
            "✅ Resolved: Acme AI (lasted"
        )
    )
    await _until(lambda: len(fake.webhook_messages(world.webhook_id)) == 4)
    await _until(lambda: _title(fake.message(world.hooked, hook_root.id)).startswith("✅ Resolved"))
    await second.halt()

    assert len(fake.messages(world.alerts)) == 1
    assert len(fake.threads(world.alerts)) == 1
    assert len(fake.webhook_messages(world.webhook_id)) == 4
    assert fake.violations == []


async def test_commands_through_the_gateway(world: World, status_server: FakeStatusServer) -> None:
    fake = world.fake
    config = _config(world, status_server, {})
    running = Running(config, role="bot")
    try:
        await fake.wait_until_ready(timeout=10)
        await _until(
            lambda: (
                {c["name"] for c in fake.commands(world.guild.id)}
                == {"status", "fallback", "tocsin"}
            )
        )
        overview = await fake.interaction(
            "status", guild_id=world.guild.id, channel_id=world.alerts
        )
        detail = await fake.interaction(
            "status",
            [{"name": "provider", "type": 3, "value": "acme"}],
            guild_id=world.guild.id,
            channel_id=world.alerts,
        )
        fallback = await fake.interaction(
            "fallback",
            [{"name": "provider", "type": 3, "value": "acme"}],
            guild_id=world.guild.id,
            channel_id=world.alerts,
        )
        unknown = await fake.interaction(
            "status",
            [{"name": "provider", "type": 3, "value": "acmee"}],
            guild_id=world.guild.id,
            channel_id=world.alerts,
        )
        choices = await fake.autocomplete(
            "status", "provider", "ac", guild_id=world.guild.id, channel_id=world.alerts
        )
        everything = await fake.autocomplete(
            "fallback", "provider", "", guild_id=world.guild.id, channel_id=world.alerts
        )
    finally:
        await running.halt()
    for answer in (overview, detail, fallback, unknown):
        assert answer["type"] == 4
        assert answer["data"]["flags"] & 64  # ephemeral
    assert "AI provider status" in str(overview["data"]["embeds"])
    assert "Acme AI" in str(detail["data"]["embeds"])
    assert "Uptime (24 h)" in str(detail["data"]["embeds"])
    assert "Zeta AI" in str(fallback["data"]["embeds"])
    assert "Did you mean `acme`?" in str(unknown["data"]["embeds"])
    assert [c["value"] for c in choices] == ["acme"]
    assert [c["value"] for c in everything] == ["acme", "zeta"]
    assert all(record.latency < 3.0 and not record.late for record in fake.interactions)
    assert fake.violations == []


# --------------------------------------------------------------------------- delivery


def _event(**kw: Any) -> Event:
    fields: dict[str, Any] = {
        "type": "state_changed",
        "provider": "acme",
        "component": API,
        "from_": Status.OPERATIONAL,
        "to": Status.MAJOR_OUTAGE,
        "provider_status": Status.MAJOR_OUTAGE,
        "provider_name": "Acme AI",
        "episode": "acme:ep1",
        "episode_started": utcnow(),
    }
    fields.update(kw)
    return Event(**fields)


class Delivering:
    """The real dispatcher pipeline and Discord targets, on an embedded store."""

    def __init__(self, config: TocsinConfig) -> None:
        self.store = MemoryStore()
        self.targets = build_targets(config)
        settings = DispatcherSettings(consumer="t", retry_initial=0.05, retry_max=0.5)
        self.dispatcher = Dispatcher(
            self.store, self.targets, NoticeContext(config, self.store), settings
        )

    async def __call__(self, event: Event, *, redelivery: bool = False) -> dict[str, Outcome]:
        results = await asyncio.gather(
            *(self.dispatcher.process(t, event, redelivery=redelivery) for t in self.targets)
        )
        return {t.key: o for t, o in zip(self.targets, results, strict=True)}

    async def close(self) -> None:
        for notifier in {id(t.notifier): t.notifier for t in self.targets}.values():
            await notifier.close()


@pytest.fixture
async def delivering(world: World, status_server: FakeStatusServer) -> AsyncIterator[Delivering]:
    made = Delivering(_config(world, status_server, {}))
    yield made
    await made.close()


async def test_webhook_rate_limits_are_honoured(world: World, delivering: Delivering) -> None:
    world.fake.rate_limit(
        f"POST /webhooks/{world.webhook_id}/{{webhook_token}}", times=2, retry_after=0.4
    )
    world.fake.rate_limit("POST /webhooks/{webhook_id}/{webhook_token}", times=2, retry_after=0.4)
    outcomes = await delivering(_event())
    assert outcomes[f"discord-webhook:{world.webhook_id}"] == "delivered"
    calls = [c for c in world.fake.calls if c.method == "POST" and "/webhooks/" in c.path]
    limited = [c for c in calls if c.status == 429]
    assert limited
    after = [c for c in calls if c.at > limited[-1].at]
    assert after
    assert after[0].at - limited[-1].at >= 0.39
    assert len(world.fake.webhook_messages(world.webhook_id)) == 1


async def test_bot_rate_limits_are_honoured(world: World, delivering: Delivering) -> None:
    world.fake.rate_limit(f"POST /channels/{world.alerts}/messages", times=1, retry_after=0.5)
    outcomes = await delivering(_event())
    assert outcomes[f"discord:{world.alerts}"] == "delivered"
    assert len(world.fake.messages(world.alerts)) == 1


async def test_permanent_errors_are_dead_lettered_one_line_each(
    world: World, delivering: Delivering
) -> None:
    log = io.StringIO()
    configure("info", stream=log)
    world.fake.remove_channel(world.majors)
    world.fake.delete_webhook(world.webhook_id)
    outcomes = await delivering(_event())
    assert outcomes[f"discord:{world.majors}"] == "dead"
    assert outcomes[f"discord-webhook:{world.webhook_id}"] == "dead"
    assert outcomes[f"discord:{world.alerts}"] == "delivered"
    errors = {d["target"]: d["error"] for d in await delivering.store.dead_letters()}
    assert "10003" in errors[f"discord:{world.majors}"]
    assert "10015" in errors[f"discord-webhook:{world.webhook_id}"]
    lines = [line for line in log.getvalue().splitlines() if "dead-lettered" in line]
    assert len(lines) == 2


async def test_missing_access_is_dead_lettered(world: World, delivering: Delivering) -> None:
    world.fake.set_permissions(world.majors, view=False)
    outcomes = await delivering(_event())
    assert outcomes[f"discord:{world.majors}"] == "dead"
    [dead] = await delivering.store.dead_letters()
    assert "50001" in dead["error"]


async def test_replies_where_threads_are_off(world: World, delivering: Delivering) -> None:
    world.fake.set_permissions(world.alerts, threads=False)
    opening = _event()
    await delivering(opening)
    update = _event(
        from_=Status.MAJOR_OUTAGE, confirmed=True, detail="confirmed by the status page"
    )
    outcomes = await delivering(update)
    assert outcomes[f"discord:{world.alerts}"] == "delivered"
    messages = world.fake.messages(world.alerts)
    assert len(messages) == 2
    assert messages[1].message_reference is not None
    assert messages[1].message_reference["message_id"] == messages[0].id
    assert world.fake.threads(world.alerts) == []
    assert world.fake.violations == []


async def test_a_redelivery_finds_the_bots_own_message_instead_of_posting_again(
    world: World, delivering: Delivering
) -> None:
    """The process died after Discord took the message and before tocsin recorded it."""
    opening = _event()
    await delivering(opening)
    target = f"discord:{world.alerts}"
    await delivering.store.set_value(f"sent:{opening.id}:{target}", "")  # forget the record
    await delivering.store.delete_value(f"sent:{opening.id}:{target}")
    outcomes = await delivering(opening, redelivery=True)
    assert outcomes[target] == "reconciled"
    assert len(world.fake.messages(world.alerts)) == 1
    update = _event(from_=Status.MAJOR_OUTAGE, confirmed=True)
    await delivering(update)
    await delivering.store.delete_value(f"sent:{update.id}:{target}")
    again = await delivering(update, redelivery=True)
    assert again[target] == "reconciled"
    root = world.fake.messages(world.alerts)[0]
    assert len(_in_thread(world.fake, root.id)) == 1


async def test_the_same_nonce_is_not_posted_twice(world: World, delivering: Delivering) -> None:
    """Even without our own record, Discord refuses the duplicate (enforce_nonce)."""
    opening = _event()
    await delivering(opening)
    for target in delivering.targets:
        await delivering.store.delete_value(f"sent:{opening.id}:{target.key}")
    await delivering(opening)  # not a redelivery: the retry path, deduplicated by Discord
    assert len(world.fake.messages(world.alerts)) == 1


async def test_drill_reaches_every_discord_target(world: World, delivering: Delivering) -> None:
    outcomes = await delivering(Event(type="drill", provider="tocsin"))
    assert set(outcomes.values()) == {"delivered"}
    for channel in (world.alerts, world.majors, world.admin):
        [message] = world.fake.messages(channel)
        assert "tocsin drill" in _title(message)
    assert len(world.fake.webhook_messages(world.webhook_id)) == 1
    assert world.fake.violations == []


async def test_a_huge_notice_stays_within_discord_limits(
    world: World, delivering: Delivering
) -> None:
    from bot.models import EventIncident

    incident = EventIncident(
        id="i", title="T" * 500, status="investigating", update="word " * 20_000, url="https://x/y"
    )
    outcomes = await delivering(_event(incident=incident, detail="d" * 10_000))
    assert outcomes[f"discord:{world.alerts}"] == "delivered"
    assert world.fake.violations == []


# --------------------------------------------------------------------------- hostile text

#: A status page's incident title and component name as an attacker would write them.
HOSTILE_TITLE = (
    "@everyone Elevated errors <@&1300000000000000099> <@1300000000000000003> "
    "[click](https://evil.example) `x` **y**"
)
HOSTILE_COMPONENT = "@here Claude API <@!1300000000000000003> <t:0:R> [a](https://evil.example)"
#: What Discord would make a mention, a masked link, a bare link or an <...> token of.
LIVE = re.compile(r"@(everyone|here)\b|(?<!\\)[\[<]|https?://evil")


def _embed_texts(embed: dict[str, Any]) -> list[str]:
    texts = [str(embed.get(key) or "") for key in ("title", "description")]
    texts += [f"{f['name']}\n{f['value']}" for f in embed.get("fields") or []]
    return [t for t in texts if t]


def _assert_harmless(message: Message, *, mention: str | None = None) -> None:
    """Nothing in the message pings or links but what tocsin meant to."""
    for version, (_content, embeds) in enumerate(message.history):
        for embed in embeds:
            for text in _embed_texts(embed):
                assert LIVE.search(text) is None, (version, text)
            url = embed.get("url")
            assert url is None or str(url).startswith(("https://", "http://")), url
            assert "evil" not in str(url)
    assert message.content == (mention or "")
    assert message.mentions == []
    assert message.mention_roles == []
    assert message.mention_everyone is (mention is not None)
    parse = ["everyone"] if mention else []
    assert message.allowed_mentions == {"parse": parse}, message.allowed_mentions
    for edit in message.edits:
        assert edit.body.get("allowed_mentions") == {"parse": []}, edit.body


def _hostile(page: dict[str, Any]) -> dict[str, Any]:
    page["incidents"][0]["name"] = HOSTILE_TITLE
    for component in page["components"]:
        if component["id"] == API:
            component["name"] = HOSTILE_COMPONENT
    return page


async def test_hostile_status_page_text_neither_pings_nor_links_in_discord(
    world: World, status_server: FakeStatusServer
) -> None:
    """Mentions, masked links and markdown in a page's incident title and component name,
    through the whole pipeline to the bot's channels (root, thread reply, root edit) and the
    webhook: all shown as text; only the configured @here pings, and only where configured."""
    fake = world.fake
    status_server.set_json(SUMMARY, _hostile(_outage("investigating", 1)))
    status_server.set_json(MODELS, {"data": []})
    status_server.set_json("/zeta/models", {"data": []})
    running = Running(_config(world, status_server, {}))
    try:
        await _until(
            lambda: (
                len(fake.messages(world.alerts)) == 1
                and len(fake.messages(world.majors)) == 1
                and len(fake.webhook_messages(world.webhook_id)) == 1
            )
        )
        root = fake.messages(world.alerts)[0]
        status_server.set_json(SUMMARY, _hostile(_outage("identified", 3)))
        await _until(
            lambda: (
                len(_in_thread(fake, root.id)) == 1
                and bool(fake.message(world.alerts, root.id).edits)
                and len(fake.webhook_messages(world.webhook_id)) == 2
                and bool(fake.webhook_messages(world.webhook_id)[0].edits)
            )
        )
    finally:
        await running.halt()
    assert "Elevated errors" in str(root.embeds)  # the hostile title is there, as text
    _assert_harmless(fake.message(world.alerts, root.id))
    _assert_harmless(_in_thread(fake, root.id)[0])
    _assert_harmless(fake.messages(world.majors)[0], mention="@here")
    for message in fake.webhook_messages(world.webhook_id):
        _assert_harmless(message)
    assert fake.violations == []


async def test_a_stored_javascript_url_is_dropped_not_the_discord_notice(
    world: World, delivering: Delivering
) -> None:
    """An incident URL read back from the store as a page wrote it: Discord refuses such an
    embed url (50035); the notice goes without it, to every bot channel and the webhook."""
    from bot.models import EventIncident

    incident = EventIncident(
        id="i", title="Elevated errors", status="investigating", url="javascript:alert(1)"
    )
    outcomes = await delivering(_event(incident=incident))
    assert outcomes[f"discord:{world.alerts}"] == "delivered"
    assert outcomes[f"discord:{world.majors}"] == "delivered"
    assert outcomes[f"discord-webhook:{world.webhook_id}"] == "delivered"
    assert await delivering.store.dead_letters() == []
    for message in (
        fake_message
        for channel in (world.alerts, world.majors)
        for fake_message in world.fake.messages(channel)
    ):
        assert "url" not in message.embeds[0]
        assert "javascript" not in str(message.embeds)
    assert world.fake.violations == []


async def test_a_notice_discord_refuses_for_its_content_lands_degraded(
    world: World, delivering: Delivering
) -> None:
    """Discord answers 50035 Invalid Form Body once: the notice goes again without its link,
    fields and fallbacks, with one log line saying so; nothing is dead-lettered."""
    from bot.models import EventIncident

    log = io.StringIO()
    configure("info", stream=log)
    world.fake.error(f"POST /channels/{world.alerts}/messages", 50035, times=1)
    incident = EventIncident(
        id="i", title="Elevated errors", status="investigating", url="https://status.example/1"
    )
    outcomes = await delivering(_event(incident=incident))
    assert outcomes[f"discord:{world.alerts}"] == "delivered"
    assert await delivering.store.dead_letters() == []
    [message] = world.fake.messages(world.alerts)
    [embed] = message.embeds
    assert "Acme AI: major outage" in embed["title"]
    assert "url" not in embed
    assert not embed.get("fields")
    [other] = world.fake.messages(world.majors)  # not refused: delivered whole
    assert other.embeds[0]["url"] == "https://status.example/1"
    lines = [line for line in log.getvalue().splitlines() if "refused for its content" in line]
    assert len(lines) == 1
    assert "url, fields, fallbacks" in lines[0]
    assert "50035" in lines[0]


async def test_a_notice_refused_again_when_degraded_is_dead_lettered_once(
    world: World, delivering: Delivering
) -> None:
    world.fake.error(f"POST /channels/{world.majors}/messages", 50035, times=2)
    outcomes = await delivering(_event())
    assert outcomes[f"discord:{world.majors}"] == "dead"
    assert outcomes[f"discord:{world.alerts}"] == "delivered"
    [dead] = await delivering.store.dead_letters()
    assert "50035" in dead["error"]
    tries = world.fake.calls_to(f"POST /channels/{world.majors}/messages")
    assert len(tries) == 2


async def test_an_unknown_provider_answer_quotes_hostile_text_harmlessly(
    world: World, status_server: FakeStatusServer
) -> None:
    fake = world.fake
    running = Running(_config(world, status_server, {}), role="bot")
    typed = [
        "x` <!channel> @everyone [a](https://evil.example) `",
        "`@everyone`<@&1300000000000000099>[a](https://e.x)`",
    ]
    try:
        await fake.wait_until_ready(timeout=10)
        await _until(
            lambda: (
                {c["name"] for c in fake.commands(world.guild.id)}
                == {"status", "fallback", "tocsin"}
            )
        )
        answers = [
            await fake.interaction(
                command,
                [{"name": "provider", "type": 3, "value": value}],
                guild_id=world.guild.id,
                channel_id=world.alerts,
            )
            for command in ("status", "fallback")
            for value in typed
        ]
    finally:
        await running.halt()
    for answer in answers:
        data = answer["data"]
        assert data["allowed_mentions"] == {"parse": []}
        [embed] = data["embeds"]
        description = str(embed["description"])
        quoted = re.search(r"called `([^`]*)`\.", description)
        assert quoted is not None, description
        assert len(quoted[1]) <= 40
        outside = description.replace(quoted[0], "")
        assert LIVE.search(outside) is None, outside  # nothing typed got out of the span
    assert fake.violations == []
