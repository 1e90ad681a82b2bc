"""Running an outage from Discord (issue 15), end to end over real sockets: a real tocsin (a
notifier and a bot, sharing a real Redis) against the fake Discord reached by discord.py.

A root carries its buttons (one action row), replies and webhook messages none; a click is a
component interaction the bot answers to the clicker only, changing state once (a double
click, a forged id, someone not among the operators change nothing); ``/tocsin`` subscribes a
channel; the root is then edited to what the chat did. Outages are seeded into the store as
the tracker writes them, so no watcher runs and nothing waits on a poll interval.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import discord.gateway
import discord.http
import pytest

import handlers.discord.bot
from bot.chatops.records import button_value
from bot.models import ComponentState, Event, StateUpdate, Status, utcnow
from bot.store import RedisStore
from config.loader import build_config
from config.schema import TocsinConfig
from tests.fakes.discord import FakeDiscord, Interaction, Message
from tests.fakes.status_server import FakeStatusServer
from tests.redis_server import RedisServer
from tests.running import Running

API = "k8w3r06qmzrp"
#: An episode as the tracker names them (``{provider}:{started}:{random}``).
EPISODE = "acme:20260101T000000Z:abc123"
VALUE = button_value("acme", EPISODE)
ACTIONS = ["ack", "silence_1h", "silence_4h", "silence_resolved"]
HOSTILE_NAME = "@everyone <@&1300000000000000099> **boss** [x](https://evil.example)"
#: What Discord would make a mention, a masked link or an <...> token of.
LIVE = re.compile(r"@(everyone|here)\b|(?<!\\)[\[<]|https?://evil")


@pytest.fixture(autouse=True)
def _restore_discord_globals() -> Iterator[None]:
    base = discord.http.Route.BASE
    gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    yield
    discord.http.Route.BASE = base
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = gateway


async def _until(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.05)


class Chat:
    """The fake Discord, its guild and channels, and a real tocsin against them."""

    def __init__(
        self, fake: FakeDiscord, page: FakeStatusServer, redis: RedisServer, prefix: str
    ) -> None:
        self.fake = fake
        self.page = page
        self.redis = redis
        self.prefix = prefix
        self.guild = fake.add_guild(name="acme-eng")
        self.alerts = fake.add_channel(self.guild.id, name="ai-incidents").id
        self.acme_only = fake.add_channel(self.guild.id, name="acme").id
        self.hooked = fake.add_channel(self.guild.id, name="webhook-alerts").id
        self.webhook_url = fake.add_webhook(self.hooked)
        self.webhook_id = self.webhook_url.rstrip("/").split("/")[-2]
        self.oncall = fake.add_role(self.guild.id, "on-call")
        self.maria = fake.add_user(
            username="maria", global_name="Maria", guild_id=self.guild.id, roles=[self.oncall]
        )
        self.store = RedisStore(redis.url, prefix=prefix)
        self.running: list[Running] = []

    def config(self, operators: list[str] | None = None) -> TocsinConfig:
        probe = {"url": f"{self.page.url}/models", "interval": "60s", "timeout": "1s"}
        return build_config(
            {
                "store": {"url": self.redis.url, "prefix": self.prefix},
                "server": {"enabled": False},
                "instance": "discord-chatops-test",
                "console": {"enabled": False},
                "watch": {"jitter": "0s", "timeout": "2s"},
                "providers": [
                    {"id": "acme", "name": "Acme AI", "probe": probe},
                    {"id": "openai", "name": "OpenAI", "probe": probe},
                ],
                "discord": {
                    "api_url": self.fake.api_url,
                    "token": self.fake.token,
                    "guilds": [self.guild.id],
                    "operators": operators or [],
                    "channels": [
                        {"id": self.alerts, "providers": "all"},
                        {"id": self.acme_only, "providers": ["acme"]},
                    ],
                    "webhooks": [{"url": self.webhook_url, "providers": "all"}],
                },
            }
        )

    async def start(self, operators: list[str] | None = None, *, bots: int = 1) -> None:
        """A notifier and ``bots`` bots (replicas of the gateway side), no watcher."""
        config = self.config(operators)
        self.running.append(Running(config, role="notifier"))
        self.running += [Running(config, role="bot") for _ in range(bots)]
        await _until(lambda: len(self.fake.ready_sessions) >= bots)
        await _until(lambda: "tocsin" in {c["name"] for c in self.fake.commands(self.guild.id)})

    async def halt(self) -> None:
        for running in self.running:
            await running.halt()
        self.running = []

    async def outage(self, *, confirmed: bool = False, episode: str = EPISODE) -> None:
        """Acme's API goes down, as the tracker writes it: the state and its event."""
        now = utcnow()
        state = ComponentState(
            provider="acme",
            component=API,
            name="API",
            status=Status.MAJOR_OUTAGE,
            confirmed=confirmed,
            last_known=Status.MAJOR_OUTAGE,
            episode=episode,
            episode_started=now,
        )
        event = Event(
            type="state_changed",
            provider="acme",
            provider_name="Acme AI",
            component=API,
            component_name="API",
            from_=Status.OPERATIONAL if not confirmed else Status.MAJOR_OUTAGE,
            to=Status.MAJOR_OUTAGE,
            provider_status=Status.MAJOR_OUTAGE,
            confirmed=confirmed,
            detail="confirmed by the status page" if confirmed else None,
            episode=episode,
            episode_started=now,
        )
        await self.store.apply([StateUpdate(state, event, status_changed=not confirmed)])

    async def root(self, channel: str | None = None) -> Message:
        where = channel or self.alerts
        await _until(lambda: len(self.fake.messages(where)) == 1)
        return self.fake.messages(where)[0]

    def current(self, message: Message) -> Message:
        return self.fake.message(message.channel_id, message.id)

    def thread(self, root: Message) -> list[Message]:
        try:
            return self.fake.thread_messages(root.id)
        except KeyError:
            return []

    async def events(self, kind: str) -> list[Event]:
        return [e for e in await self.store.recent_events(200) if e.type == kind]

    async def command(self, subcommand: str, channel: str, user: str, **options: str) -> str:
        given = [{"name": k, "type": 3, "value": v} for k, v in options.items()]
        answer = await self.fake.interaction(
            "tocsin",
            given,
            subcommand=subcommand,
            guild_id=self.guild.id,
            channel_id=channel,
            user_id=user,
        )
        assert answer["type"] == 4
        data = answer["data"]
        assert data["flags"] & 64  # only to whoever typed it
        assert data["allowed_mentions"] == {"parse": []}
        assert "components" not in data or not data["components"]
        return str(data["content"])


@pytest.fixture
async def chat(
    status_server: FakeStatusServer, redis_server: RedisServer, key_prefix: str
) -> AsyncIterator[Chat]:
    fake = await FakeDiscord().start()
    made = Chat(fake, status_server, redis_server, key_prefix)
    await made.store.open()
    try:
        yield made
    finally:
        await made.halt()
        await made.store.close()
        await fake.close()


def _custom_ids(message: Message) -> list[str]:
    return [
        str(button["custom_id"])
        for row in message.components
        for button in row.get("components", [])
    ]


def _answer(chat: Chat, body: dict[str, Any]) -> str:
    """A click's answer: a message to the clicker only, pinging nobody, with no buttons."""
    assert body["type"] == 4, body
    data = body["data"]
    assert data["flags"] & 64
    assert data["allowed_mentions"] == {"parse": []}
    assert not data.get("components")
    return str(data["content"])


def _last(fake: FakeDiscord) -> Interaction:
    return fake.interactions[-1]


def _harmless(text: str) -> None:
    assert LIVE.search(text) is None, text


# --------------------------------------------------------------------------- buttons


async def test_a_root_carries_the_buttons_its_replies_and_webhooks_none(chat: Chat) -> None:
    await chat.start()
    await chat.outage()
    root = await chat.root()
    [row] = root.components
    assert row["type"] == 1
    assert [b["type"] for b in row["components"]] == [2, 2, 2, 2]
    assert _custom_ids(root) == [f"tocsin:{a}:{VALUE}" for a in ACTIONS]
    labels = [b["label"] for b in row["components"]]
    assert labels == ["Acknowledge", "Silence 1 h", "Silence 4 h", "Silence until resolved"]
    assert [b["style"] for b in row["components"]] == [1, 2, 2, 4]
    assert _custom_ids(await chat.root(chat.acme_only)) == _custom_ids(root)
    await _until(lambda: len(chat.fake.webhook_messages(chat.webhook_id)) == 1)
    assert chat.fake.webhook_messages(chat.webhook_id)[0].components == []

    await chat.outage(confirmed=True)  # an update: a reply in the thread, the root edited
    await _until(lambda: len(chat.thread(root)) == 1 and bool(chat.current(root).edits))
    assert chat.thread(root)[0].components == []
    assert _custom_ids(chat.current(root)) == _custom_ids(root)  # still the four
    await _until(lambda: len(chat.fake.webhook_messages(chat.webhook_id)) == 2)
    assert all(m.components == [] for m in chat.fake.webhook_messages(chat.webhook_id))
    assert chat.fake.violations == []
    # (the fake's own GET /gateway/bot answers a ws:// url the spec's uri format refuses)
    assert [e for e in chat.fake.response_errors if not e.startswith("GET /gateway")] == []


async def test_acknowledge_answers_the_clicker_and_changes_state_once(chat: Chat) -> None:
    await chat.start()
    await chat.outage()
    root = await chat.root()
    ack = f"tocsin:ack:{VALUE}"
    first = _answer(chat, await chat.fake.click(chat.alerts, root.id, ack, user_id=chat.maria))
    assert "Acknowledged" in first
    record = _last(chat.fake)
    assert record.latency is not None
    assert record.latency < 3.0
    assert [m.ephemeral for m in chat.fake.responses(record)] == [True]
    assert list(await chat.store.records("acks")) == [EPISODE]
    assert len(await chat.events("acknowledged")) == 1

    again = _answer(chat, await chat.fake.click(chat.alerts, root.id, ack, user_id=chat.maria))
    assert again.startswith("Already acknowledged by @Maria")
    assert len(await chat.events("acknowledged")) == 1
    assert chat.fake.violations == []


async def test_forged_button_ids_are_refused_and_change_nothing(chat: Chat) -> None:
    await chat.start()
    await chat.outage()
    root = await chat.root()
    forged = [
        "tocsin:ack:<!channel>",
        "tocsin:ack:acme|" + "x" * 10_000,
        "tocsin:rm:x|y",
        f"tocsin:ack:{VALUE}|more",
        f"other:ack:{VALUE}",
        "tocsin:ack:@everyone|x",
    ]
    for custom_id in forged:
        body = await chat.fake.click(chat.alerts, root.id, custom_id, forge=True)
        text = _answer(chat, body)
        assert text == "That button is not one of tocsin's.", text
    assert await chat.store.records("acks") == {}
    assert await chat.store.records("silences") == {}
    assert await chat.events("acknowledged") == []
    assert await chat.events("silenced") == []


async def test_only_the_configured_operators_may_click(chat: Chat) -> None:
    await chat.start(operators=["1300000000000000777"])
    await chat.outage()
    root = await chat.root()
    body = await chat.fake.click(
        chat.alerts, root.id, f"tocsin:silence_1h:{VALUE}", user_id=chat.maria
    )
    assert "Only the configured operators" in _answer(chat, body)
    assert await chat.store.records("silences") == {}
    assert await chat.events("silenced") == []


async def test_an_operator_role_may_click(chat: Chat) -> None:
    await chat.start(operators=["1300000000000000777", chat.oncall])
    await chat.outage()
    root = await chat.root()
    body = await chat.fake.click(
        chat.alerts, root.id, f"tocsin:silence_1h:{VALUE}", user_id=chat.maria
    )
    assert _answer(chat, body).startswith("Silenced Acme AI here for 1h by @Maria")
    assert list(await chat.store.records("silences")) == [f"discord:{chat.alerts}|acme"]
    assert len(await chat.events("silenced")) == 1


async def test_a_slow_click_is_deferred_then_answered(
    chat: Chat, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(handlers.discord.bot, "ANSWER_WITHIN", 0.0)
    await chat.start()
    await chat.outage()
    root = await chat.root()
    body = await chat.fake.click(chat.alerts, root.id, f"tocsin:ack:{VALUE}", user_id=chat.maria)
    assert body["type"] == 5  # "thinking…", only to the clicker
    assert body["data"]["flags"] & 64
    record = _last(chat.fake)
    await _until(lambda: "Acknowledged" in chat.fake.responses(record)[0].content)
    [answer] = chat.fake.responses(record)
    assert answer.ephemeral
    assert answer.edits[-1].body["allowed_mentions"] == {"parse": []}
    assert len(await chat.events("acknowledged")) == 1
    assert chat.fake.violations == []


async def test_two_replicas_receive_one_click_it_counts_once(chat: Chat) -> None:
    await chat.start(bots=2)
    await chat.outage()
    root = await chat.root()
    await chat.fake.click(
        chat.alerts, root.id, f"tocsin:ack:{VALUE}", user_id=chat.maria, everywhere=True
    )
    record = _last(chat.fake)
    await _until(lambda: len(record.refused) == 1)  # the other replica's answer: 40060
    assert len(chat.fake.responses(record)) == 1
    assert len(await chat.events("acknowledged")) == 1
    assert list(await chat.store.records("acks")) == [EPISODE]
    assert {v.code for v in chat.fake.violations} <= {40060}


# --------------------------------------------------------------------------- /tocsin


async def test_tocsin_subscribe_unsubscribe_and_autocomplete(chat: Chat) -> None:
    await chat.start()
    fake = chat.fake
    text = await chat.command("subscribe", chat.acme_only, chat.maria, provider="openai")
    assert text.startswith("This channel now hears OpenAI at degraded or worse")
    rows = await chat.store.records("subscriptions")
    assert list(rows) == [f"discord:{chat.acme_only}|openai"]

    choices = await fake.autocomplete(
        "tocsin",
        "provider",
        "op",
        subcommand="subscribe",
        guild_id=chat.guild.id,
        channel_id=chat.acme_only,
    )
    assert [c["value"] for c in choices] == ["openai"]
    everything = await fake.autocomplete(
        "tocsin",
        "provider",
        "",
        subcommand="unsubscribe",
        guild_id=chat.guild.id,
        channel_id=chat.acme_only,
    )
    assert [c["value"] for c in everything] == ["acme", "openai"]
    assert all(len(c["name"]) <= 100 for c in everything)

    listed = await chat.command("subscriptions", chat.acme_only, chat.maria)
    assert "Acme AI" in listed
    assert "OpenAI" in listed
    refused = await chat.command("unsubscribe", chat.acme_only, chat.maria, provider="acme")
    assert "from the config" in refused
    assert "cannot be removed" in refused
    done = await chat.command("unsubscribe", chat.acme_only, chat.maria, provider="openai")
    assert done.startswith("Unsubscribed from OpenAI")
    assert await chat.store.records("subscriptions") == {}
    kinds = [e.type for e in await chat.store.recent_events(50)]
    assert kinds.count("subscribed") == 1
    assert kinds.count("unsubscribed") == 1
    assert "Nothing is silenced here" in await chat.command("silences", chat.acme_only, chat.maria)
    bad = await chat.command(
        "subscribe", chat.acme_only, chat.maria, provider="openai", duration="forever"
    )
    assert "duration" in bad.lower()
    assert fake.violations == []


async def test_a_hostile_display_name_is_shown_escaped_and_pings_nobody(chat: Chat) -> None:
    await chat.start()
    mallory = chat.fake.add_user(
        username="mallory", global_name=HOSTILE_NAME, guild_id=chat.guild.id
    )
    await chat.command("subscribe", chat.alerts, mallory, provider="openai")
    listed = await chat.command("subscriptions", chat.alerts, chat.maria)
    assert "boss" in listed
    _harmless(listed)
    await chat.outage()
    root = await chat.root()
    body = await chat.fake.click(chat.alerts, root.id, f"tocsin:ack:{VALUE}", user_id=mallory)
    _answer(chat, body)
    again = _answer(
        chat,
        await chat.fake.click(chat.alerts, root.id, f"tocsin:ack:{VALUE}", user_id=mallory),
    )
    assert "boss" in again
    _harmless(again)
    for record in chat.fake.interactions:
        for message in chat.fake.responses(record):
            assert message.mentions == []
            assert message.mention_roles == []
            assert message.mention_everyone is False
    assert chat.fake.violations == []


# --------------------------------------------------------------------------- the root


async def test_after_acknowledge_the_root_says_so_and_loses_the_button(chat: Chat) -> None:
    await chat.start()
    await chat.outage()
    root = await chat.root()
    await chat.fake.click(chat.alerts, root.id, f"tocsin:ack:{VALUE}", user_id=chat.maria)
    await _until(lambda: any("Acknowledged by @Maria" in str(m.embeds) for m in chat.thread(root)))
    await _until(lambda: "Acknowledged" in str(chat.current(root).embeds))
    edited = chat.current(root)
    assert _custom_ids(edited) == [
        f"tocsin:{a}:{VALUE}" for a in ("silence_1h", "silence_4h", "silence_resolved")
    ]
    for reply in chat.thread(root):
        assert reply.components == []
    assert chat.fake.violations == []
