"""The fake Discord (tests/fakes/discord.py) behaves like Discord, shown with the real
discord.py 2.7: a ``discord.Client`` with an ``app_commands.CommandTree`` logs in, connects
through the fake gateway (zlib-stream), syncs commands, answers interactions; messages,
threads and edits go over REST; ``discord.Webhook`` posts through webhooks; discord.py's
own rate-limit and error handling meet the fake's 429s and Discord error codes.
Everything stays on 127.0.0.1 (:func:`use_fake_discord` points discord.py there).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import discord
import discord.gateway
import discord.http
import pytest
from discord import app_commands

from tests.fakes.discord import (
    APP_ID,
    BOT_USER_ID,
    FAKE_BOT_TOKEN,
    TEST_USER_ID,
    FakeDiscord,
    InteractionTimeout,
    UnknownCommand,
    use_fake_discord,
)

pytestmark = pytest.mark.timeout(30)

GUILD = "1100000000000000001"
ALERTS = "1100000000000000010"
OTHER = "1100000000000000011"
PROVIDERS = ("anthropic", "openai", "google", "mistral")
MESSAGES = "POST /channels/{channel_id}/messages"
EXECUTE = "POST /webhooks/{webhook_id}/{webhook_token}"


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as server:
        server.add_guild(GUILD, "tocsin test")
        server.add_channel(GUILD, ALERTS, "ai-alerts")
        server.add_channel(GUILD, OTHER, "elsewhere")
        with use_fake_discord(server):
            yield server
        # Whatever a test did, the fake's own answers matched Discord's response schemas.
        assert server.response_errors == []


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@dataclass
class Bot:
    """A discord.py bot shaped like tocsin's: /status (with provider autocomplete) and
    /fallback (deferred, then the original edited and a follow-up sent)."""

    client: discord.Client
    tree: app_commands.CommandTree[discord.Client]
    task: asyncio.Task[None] | None = None
    delay: float = 0.0
    errors: list[BaseException] = field(default_factory=list)
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def guild(self) -> discord.Guild:
        guild = self.client.get_guild(int(GUILD))
        assert guild is not None
        return guild

    def channel(self, channel_id: str = ALERTS) -> discord.TextChannel:
        channel = self.client.get_channel(int(channel_id))
        assert isinstance(channel, discord.TextChannel)
        return channel


def make_bot(intents: discord.Intents | None = None) -> Bot:
    client = discord.Client(intents=intents or discord.Intents.default(), guild_ready_timeout=0.05)
    tree: app_commands.CommandTree[discord.Client] = app_commands.CommandTree(client)
    bot = Bot(client, tree)
    here = discord.Object(int(GUILD))

    @tree.command(name="status", description="Status of the AI providers", guild=here)
    @app_commands.describe(provider="A provider, e.g. anthropic")
    async def status(interaction: discord.Interaction, provider: str | None = None) -> None:
        await asyncio.sleep(bot.delay)
        embed = discord.Embed(title=f"{provider or 'All providers'}: operational", color=0x1A7F37)
        embed.add_field(name="Since", value="12:03 UTC").set_footer(text="tocsin")
        await interaction.response.send_message(embed=embed, ephemeral=True)

    @status.autocomplete("provider")
    async def provider_choices(
        interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return [app_commands.Choice(name=p, value=p) for p in PROVIDERS if p.startswith(current)]

    @tree.command(name="fallback", description="Where to go while a provider is down", guild=here)
    @app_commands.choices(
        provider=[app_commands.Choice(name=p.title(), value=p) for p in PROVIDERS[:2]]
    )
    async def fallback(
        interaction: discord.Interaction, provider: app_commands.Choice[str]
    ) -> None:
        await interaction.response.defer(thinking=True)
        await interaction.edit_original_response(content=f"Fallbacks for {provider.value}: …")
        await interaction.followup.send("Also see the provider's status page", ephemeral=True)

    @tree.error
    async def on_error(interaction: discord.Interaction, error: Exception) -> None:
        bot.errors.append(error)

    @client.event
    async def on_ready() -> None:
        bot.ready.set()

    return bot


async def start(bot: Bot, *, sync: bool = True) -> Bot:
    await bot.client.login(FAKE_BOT_TOKEN)
    bot.task = asyncio.create_task(bot.client.connect(reconnect=False))
    await asyncio.wait_for(bot.ready.wait(), 5)
    if sync:
        await bot.tree.sync(guild=discord.Object(int(GUILD)))
    return bot


async def stop(bot: Bot) -> None:
    await bot.client.close()
    if bot.task is not None:
        with contextlib.suppress(discord.ConnectionClosed):
            await bot.task


@pytest.fixture
async def bot(fake: FakeDiscord) -> AsyncIterator[Bot]:
    running = await start(make_bot())
    yield running
    await stop(running)


async def http_error(call: Awaitable[Any]) -> discord.HTTPException:
    with pytest.raises(discord.HTTPException) as caught:
        await call
    return caught.value


async def timed(call: Callable[[], Awaitable[Any]]) -> tuple[Any, float]:
    started = time.monotonic()
    result = await call()
    return result, time.monotonic() - started


# -------------------------------------------------------------------- gateway


async def test_login_and_gateway_ready(fake: FakeDiscord, bot: Bot) -> None:
    """discord.py logs in (GET /users/@me, /oauth2/applications/@me), dials the gateway with
    zlib-stream, identifies, heartbeats, and sees READY then GUILD_CREATE: the guild is
    available with its channels and the bot's member."""
    assert bot.client.user is not None
    assert str(bot.client.user.id) == BOT_USER_ID
    assert bot.client.application_id == int(APP_ID)
    assert [c.route for c in fake.calls[:2]] == ["GET /users/@me", "GET /oauth2/applications/@me"]
    assert not bot.guild.unavailable
    assert {c.name for c in bot.guild.text_channels} == {"ai-alerts", "elsewhere"}
    assert bot.guild.me is not None
    assert bot.channel().permissions_for(bot.guild.me).send_messages

    conn = fake.connections[0]
    assert (conn.version, conn.encoding, conn.compress) == ("10", "json", "zlib-stream")
    identify = next(f for f in conn.received if f["op"] == 2)
    assert identify["d"]["token"] == FAKE_BOT_TOKEN
    assert identify["d"]["intents"] == bot.client.intents.value
    assert conn.heartbeats  # discord.py beats once right after HELLO
    assert any(f["op"] == 11 for f in conn.sent)
    dispatches = [(f["t"], f["s"]) for f in conn.sent if f["op"] == 0]
    assert dispatches[:2] == [("READY", 1), ("GUILD_CREATE", 2)]
    assert fake.violations == []


async def test_raw_gateway_uncompressed_and_close_codes(
    fake: FakeDiscord, session: aiohttp.ClientSession
) -> None:
    """Without ``compress`` the gateway speaks JSON text; a wrong token closes 4004,
    privileged intents the app lacks 4014, unknown intent bits 4013, anything but a
    heartbeat before IDENTIFY 4003."""
    url = f"{fake.gateway_url}?v=10&encoding=json"

    async def attempt(first: dict[str, Any]) -> tuple[int | None, list[dict[str, Any]]]:
        async with session.ws_connect(url) as ws:
            hello = await ws.receive_json(timeout=2)
            await ws.send_json({"op": 1, "d": None})
            ack = await ws.receive_json(timeout=2)
            await ws.send_json(first)
            closing = await ws.receive(timeout=2)
            assert closing.type == aiohttp.WSMsgType.CLOSE
            return ws.close_code, [hello, ack]

    identify = {"token": FAKE_BOT_TOKEN, "intents": 1, "properties": {}}
    code, (hello, ack) = await attempt({"op": 2, "d": {**identify, "token": "nope"}})
    assert hello["op"] == 10
    assert hello["d"]["heartbeat_interval"] == 41_250
    assert ack["op"] == 11
    assert code == 4004
    assert (await attempt({"op": 2, "d": {**identify, "intents": 1 << 1}}))[0] == 4014
    assert (await attempt({"op": 2, "d": {**identify, "intents": 1 << 30}}))[0] == 4013
    assert (await attempt({"op": 3, "d": {"status": "online"}}))[0] == 4003


async def test_zlib_stream_frames(fake: FakeDiscord, session: aiohttp.ClientSession) -> None:
    """With zlib-stream every frame is binary, from one compressor per connection, and ends
    with the Z_SYNC_FLUSH marker."""
    fake.add_guild("1100000000000000002", "second")
    async with session.ws_connect(
        f"{fake.gateway_url}?v=10&encoding=json&compress=zlib-stream"
    ) as ws:
        inflate = zlib.decompressobj()
        frames = []
        for expect in ("HELLO", "READY", "GUILD_CREATE", "GUILD_CREATE"):
            message = await ws.receive(timeout=2)
            assert message.type == aiohttp.WSMsgType.BINARY
            assert message.data.endswith(b"\x00\x00\xff\xff")
            frames.append(json.loads(inflate.decompress(message.data)))
            if expect == "HELLO":
                await ws.send_json(
                    {"op": 2, "d": {"token": FAKE_BOT_TOKEN, "intents": 513, "properties": {}}}
                )
    assert [f.get("t") for f in frames] == [None, "READY", "GUILD_CREATE", "GUILD_CREATE"]
    assert frames[1]["d"]["resume_gateway_url"] == fake.gateway_url
    assert [g["unavailable"] for g in frames[1]["d"]["guilds"]] == [True, True]


async def test_privileged_intents_refused(fake: FakeDiscord) -> None:
    """Asking for members/presences/message content the app has not enabled: Discord closes
    4014 and discord.py raises PrivilegedIntentsRequired."""
    bot = make_bot(discord.Intents.all())
    await bot.client.login(FAKE_BOT_TOKEN)
    with pytest.raises(discord.PrivilegedIntentsRequired):
        await bot.client.connect()
    await bot.client.close()
    assert fake.connections[-1].close_code == 4014


async def test_reconnect_resumes_session(fake: FakeDiscord, bot: Bot) -> None:
    """RECONNECT (op 7): discord.py reconnects to resume_gateway_url and RESUMEs; the fake
    replays what it missed and says RESUMED; the session carries on."""
    first = fake.connections[0]
    session_id = first.session.id if first.session else None
    await fake.request_reconnect()
    await fake.wait_for(lambda: len(fake.connections) == 2 and fake.connections[1].ready.is_set())
    resume = next(f for f in fake.connections[1].received if f["op"] == 6)
    assert resume["d"]["session_id"] == session_id
    assert [f["t"] for f in fake.connections[1].sent if f["op"] == 0] == ["RESUMED"]
    sent = await bot.channel().send("still here")
    assert fake.messages(ALERTS)[-1].id == str(sent.id)


async def test_message_create_reaches_the_client(fake: FakeDiscord, bot: Bot) -> None:
    """What the bot posts comes back as MESSAGE_CREATE (GUILD_MESSAGES), content included
    since the app always sees its own messages."""
    waiter = asyncio.ensure_future(bot.client.wait_for("message", timeout=2))
    sent = await bot.channel().send("outage!")
    echoed = await waiter
    assert echoed.id == sent.id
    assert echoed.content == "outage!"
    assert echoed.author.id == int(BOT_USER_ID)


# ------------------------------------------------------- application commands


async def test_sync_commands_to_guild(fake: FakeDiscord, bot: Bot) -> None:
    """The tree's guild commands were bulk-overwritten (PUT) and are listed back; a
    re-sync keeps their ids; global commands stay empty."""
    registered = fake.commands(GUILD)
    assert [c["name"] for c in registered] == ["status", "fallback"]
    status = registered[0]
    assert status["guild_id"] == GUILD
    assert status["application_id"] == APP_ID
    assert status["options"][0]["name"] == "provider"
    assert status["options"][0]["autocomplete"]
    again = await bot.tree.sync(guild=discord.Object(int(GUILD)))
    assert [str(c.id) for c in again] == [c["id"] for c in registered]
    fetched = await bot.tree.fetch_commands(guild=discord.Object(int(GUILD)))
    assert {c.name for c in fetched} == {"status", "fallback"}
    assert await bot.tree.sync() == []
    assert fake.commands() == []
    assert len(fake.calls_to("PUT /applications/{application_id}/guilds/{guild_id}/commands")) == 2
    assert fake.violations == []


async def test_slash_command_answered_ephemerally(fake: FakeDiscord, bot: Bot) -> None:
    """INTERACTION_CREATE for /status → the bot's type 4 callback, ephemeral, timed."""
    body = await fake.interaction(
        "status",
        [{"name": "provider", "type": 3, "value": "acme"}],
        guild_id=GUILD,
        channel_id=ALERTS,
        user_id=TEST_USER_ID,
    )
    assert body["type"] == 4
    assert body["data"]["flags"] & 64
    assert body["data"]["embeds"][0]["title"] == "acme: operational"
    record = fake.interactions[-1]
    assert record.latency is not None
    assert record.latency < 3.0
    assert record.command == "status"
    assert record.acknowledged
    original = fake.message(ALERTS, record.original_id or "")
    assert original.ephemeral
    assert original.type == 20
    assert fake.messages(ALERTS) == []  # ephemeral: not in the channel
    assert fake.calls_to("POST /interactions/{interaction_id}/{interaction_token}/callback")[
        -1
    ].query == {"with_response": "1"}
    assert fake.violations == []


async def test_autocomplete(fake: FakeDiscord, bot: Bot) -> None:
    choices = await fake.autocomplete("status", focused="provider", value="an", guild_id=GUILD)
    assert choices == [{"name": "anthropic", "value": "anthropic"}]
    assert fake.interactions[-1].callback == {"type": 8, "data": {"choices": choices}}
    assert fake.violations == []


async def test_deferred_command_edits_original_and_follows_up(fake: FakeDiscord, bot: Bot) -> None:
    """/fallback: type 5 first, then PATCH @original, then an ephemeral follow-up."""
    body = await fake.interaction("fallback", [{"name": "provider", "type": 3, "value": "openai"}])
    assert body == {"type": 5}
    record = fake.interactions[-1]
    await fake.wait_for(lambda: bool(record.followups))
    original = fake.message(ALERTS, record.original_id or "")
    assert original.content == "Fallbacks for openai: …"
    assert [c for c, _ in original.history] == ["", "Fallbacks for openai: …"]
    assert not original.flags & 128  # no longer "thinking"
    assert [m.id for m in fake.messages(ALERTS)] == [original.id]  # the follow-up is ephemeral
    followup = fake.all_messages[record.followups[0]]
    assert followup.ephemeral
    assert followup.webhook_id == APP_ID
    assert fake.violations == []


async def test_global_command_in_a_dm(fake: FakeDiscord, bot: Bot) -> None:
    """A global command used in a DM: ``user`` instead of ``member``, a DM channel."""

    @bot.tree.command(name="ping", description="Is tocsin alive?")
    async def ping(interaction: discord.Interaction) -> None:
        assert interaction.guild_id is None
        await interaction.response.send_message(f"pong, {interaction.user.name}")

    await bot.tree.sync()
    assert [c["name"] for c in fake.commands()] == ["ping"]
    body = await fake.interaction("ping", dm=True)
    assert body["data"]["content"] == "pong, user0003"
    record = fake.interactions[-1]
    assert "user" in record.payload
    assert "member" not in record.payload
    assert fake.message(record.channel_id, record.original_id or "").content == "pong, user0003"
    assert fake.violations == []


async def test_unregistered_command_or_bad_option_is_a_violation(
    fake: FakeDiscord, bot: Bot
) -> None:
    with pytest.raises(UnknownCommand):
        await fake.interaction("incident")
    with pytest.raises(ValueError, match="not one of its choices"):
        await fake.interaction("fallback", [{"name": "provider", "type": 3, "value": "acme"}])
    assert [v.route for v in fake.violations] == ["INTERACTION_CREATE"] * 2


async def test_late_callback_is_unknown_interaction(fake: FakeDiscord, bot: Bot) -> None:
    """An answer after the deadline (3 s on Discord; shortened here) is 404 10062."""
    fake.interaction_deadline, bot.delay = 0.2, 0.4
    with pytest.raises(InteractionTimeout):
        await fake.interaction("status")
    record = fake.interactions[-1]
    await fake.wait_for(lambda: record.late)
    await fake.wait_for(lambda: bool(bot.errors))
    error = bot.errors[0]
    assert isinstance(error, app_commands.CommandInvokeError)
    assert isinstance(error.original, discord.NotFound)
    assert error.original.code == 10062


# ----------------------------------------------------------- channel messages


async def test_send_with_embed_and_enforced_nonce(fake: FakeDiscord, bot: Bot) -> None:
    """discord.py sends ``nonce`` + ``enforce_nonce``; the same nonce again returns the
    existing message, so a retried notice is not posted twice."""
    embed = discord.Embed(title="Anthropic: major outage", description="Elevated errors")
    embed.add_field(name="Since", value="12:03 UTC", inline=False)
    embed.set_footer(text="tocsin · open · event ev-1")
    first = await bot.channel().send("🔴 Anthropic", embed=embed, nonce="ev-1")
    again = await bot.channel().send("🔴 Anthropic", embed=embed, nonce="ev-1")
    assert again.id == first.id
    posted = fake.messages(ALERTS)
    assert len(posted) == 1
    assert posted[0].nonce == "ev-1"
    assert posted[0].author["id"] == BOT_USER_ID
    assert posted[0].embeds[0]["type"] == "rich"
    assert posted[0].embeds[0]["fields"] == [
        {"inline": False, "name": "Since", "value": "12:03 UTC"}
    ]
    assert [c.body["enforce_nonce"] for c in fake.calls_to(MESSAGES)] == [True, True]
    other = await bot.channel(OTHER).send("elsewhere", nonce="ev-1")
    assert other.id != first.id  # a nonce is only looked up in its channel
    assert fake.violations == []


async def test_file_upload_is_multipart(fake: FakeDiscord, bot: Bot) -> None:
    """A file makes discord.py send ``multipart/form-data`` (``payload_json`` + ``files[0]``)."""
    csv = b"provider,status\nanthropic,major_outage\n"
    report = discord.File(io.BytesIO(csv), "status.csv")
    sent = await bot.channel().send("report", file=report)
    assert sent.attachments[0].filename == "status.csv"
    assert sent.attachments[0].size == len(csv)
    assert fake.calls_to(MESSAGES)[-1].files == ["status.csv"]
    assert fake.violations == []


async def test_reply_and_allowed_mentions(fake: FakeDiscord, bot: Bot) -> None:
    root = await bot.channel().send(
        "@here Anthropic is down", allowed_mentions=discord.AllowedMentions.none()
    )
    loud = await bot.channel().send(
        "@everyone outage", allowed_mentions=discord.AllowedMentions(everyone=True)
    )
    reply = await root.reply("update: recovering", mention_author=False)
    stored = {m.id: m for m in fake.messages(ALERTS)}
    assert not stored[str(root.id)].mention_everyone
    assert stored[str(loud.id)].mention_everyone
    assert stored[str(reply.id)].type == 19
    assert stored[str(reply.id)].message_reference == {
        "type": 0,
        "channel_id": ALERTS,
        "message_id": str(root.id),
        "guild_id": GUILD,
    }
    assert reply.reference is not None
    assert reply.reference.message_id == root.id
    fake.set_permissions(ALERTS, mention_everyone=False)
    muted = await bot.channel().send(
        "@everyone again", allowed_mentions=discord.AllowedMentions(everyone=True)
    )
    assert not fake.message(ALERTS, str(muted.id)).mention_everyone
    assert fake.violations == []


async def test_history_paging(fake: FakeDiscord, bot: Bot) -> None:
    sent = [await bot.channel().send(f"m{i}") for i in range(5)]
    newest = [m.content async for m in bot.channel().history(limit=3)]
    assert newest == ["m4", "m3", "m2"]
    after = [m.content async for m in bot.channel().history(after=sent[1], oldest_first=True)]
    assert after == ["m2", "m3", "m4"]
    before = [m.content async for m in bot.channel().history(before=sent[2], limit=10)]
    assert before == ["m1", "m0"]
    assert fake.calls_to("GET /channels/{channel_id}/messages")[0].query == {"limit": "3"}


async def test_thread_from_message_and_edit(fake: FakeDiscord, bot: Bot) -> None:
    """A thread started from a message has the message's id; posts go to the thread's id;
    an edit keeps the previous version; a second thread on the message is 160004."""
    root = await bot.channel().send("Anthropic: major outage")
    thread = await root.create_thread(name="Anthropic outage")
    assert thread.id == root.id
    assert thread.parent_id == int(ALERTS)
    await thread.send("update 1: identified")
    await thread.send("update 2: monitoring")
    assert [m.content for m in fake.thread_messages(str(thread.id))] == [
        "update 1: identified",
        "update 2: monitoring",
    ]
    assert [m.content for m in fake.messages(ALERTS)] == ["Anthropic: major outage"]
    await root.edit(content="Anthropic: resolved", embed=discord.Embed(title="resolved"))
    stored = fake.message(ALERTS, str(root.id))
    assert [content for content, _ in stored.history] == [
        "Anthropic: major outage",
        "Anthropic: resolved",
    ]
    assert stored.edited_timestamp is not None
    assert stored.thread_id == str(thread.id)
    error = await http_error(root.create_thread(name="again"))
    assert (error.status, error.code) == (400, 160004)


# ----------------------------------------------------- rate limits and errors


async def test_429_is_waited_out_by_discord_py(fake: FakeDiscord, bot: Bot) -> None:
    fake.rate_limit(MESSAGES, times=1, retry_after=0.3)
    message, took = await timed(lambda: bot.channel().send("after a 429"))
    assert took >= 0.3
    calls = fake.calls_to(MESSAGES)
    assert [c.status for c in calls] == [429, 200]
    assert calls[0].response == {
        "message": "You are being rate limited.",
        "retry_after": 0.3,
        "global": False,
    }
    assert calls[1].at - calls[0].at >= 0.3
    assert fake.messages(ALERTS)[-1].id == str(message.id)


async def test_rate_limit_headers(fake: FakeDiscord, session: aiohttp.ClientSession) -> None:
    """Every answer carries its bucket's ``X-RateLimit-*`` headers; a 429 adds
    ``Retry-After`` (whole seconds) and ``X-RateLimit-Scope``, and ``Via`` (discord.py
    treats a 429 without it as a Cloudflare ban)."""
    auth = {"Authorization": f"Bot {FAKE_BOT_TOKEN}"}
    async with session.get(f"{fake.api_url}/channels/{ALERTS}", headers=auth) as response:
        assert response.status == 200
        assert response.headers["X-RateLimit-Limit"] == "50"
        assert response.headers["X-RateLimit-Remaining"] == "49"
        assert float(response.headers["X-RateLimit-Reset-After"]) <= 1.0
        assert len(response.headers["X-RateLimit-Bucket"]) == 32
    fake.rate_limit("*", retry_after=2.5, scope="shared")
    async with session.get(f"{fake.api_url}/channels/{ALERTS}", headers=auth) as response:
        assert response.status == 429
        assert response.headers["Content-Type"] == "application/json"
        assert response.headers["Retry-After"] == "3"
        assert response.headers["X-RateLimit-Remaining"] == "0"
        assert response.headers["X-RateLimit-Reset-After"] == "2.500"
        assert response.headers["X-RateLimit-Scope"] == "shared"
        for name in ("X-RateLimit-Limit", "X-RateLimit-Reset", "X-RateLimit-Bucket", "Via"):
            assert name in response.headers
        assert (await response.json())["message"] == "The resource is being rate limited."


async def test_exhausted_bucket_is_respected_before_a_429(fake: FakeDiscord, bot: Bot) -> None:
    """With Discord-like headers (2 per 0.5 s here) discord.py waits on its own when
    ``X-RateLimit-Remaining`` reaches 0: the third send is late, and no 429 happens."""
    fake.set_bucket(MESSAGES, 2, 0.5)

    async def three() -> None:
        for i in range(3):
            await bot.channel().send(f"n{i}")

    _, took = await timed(three)
    assert took >= 0.4
    assert [c.status for c in fake.calls_to(MESSAGES)] == [200, 200, 200]


async def test_server_error_is_retried(fake: FakeDiscord, bot: Bot) -> None:
    fake.fail(MESSAGES, times=1, status=500)
    await bot.channel().send("after a 500")
    assert [c.status for c in fake.calls_to(MESSAGES)] == [500, 200]
    fake.fail(MESSAGES, times=1, status=503)  # not retried by discord.py
    error = await http_error(bot.channel().send("during a 503"))
    assert isinstance(error, discord.DiscordServerError)
    assert error.status == 503


async def test_permanent_errors_have_discord_codes(fake: FakeDiscord, bot: Bot) -> None:
    unknown = bot.client.get_partial_messageable(1100000000000000099)
    error = await http_error(unknown.send("hello?"))
    assert isinstance(error, discord.NotFound)
    assert error.code == 10003
    assert error.text == "Unknown Channel"

    fake.set_permissions(OTHER, send=False)
    error = await http_error(bot.channel(OTHER).send("hello?"))
    assert isinstance(error, discord.Forbidden)
    assert error.code == 50013

    fake.set_permissions(OTHER, view=False)
    error = await http_error(bot.channel(OTHER).send("hello?"))
    assert isinstance(error, discord.Forbidden)
    assert error.code == 50001

    error = await http_error(bot.channel().fetch_message(1100000000000000098))
    assert isinstance(error, discord.NotFound)
    assert error.code == 10008

    fake.error(MESSAGES, 50013, times=1)
    error = await http_error(bot.channel().send("injected"))
    assert isinstance(error, discord.Forbidden)
    assert error.code == 50013
    await bot.channel().send("and then fine")
    assert fake.violations == []


# ------------------------------------------------------------------- webhooks


def webhook(fake: FakeDiscord, session: aiohttp.ClientSession, url: str) -> discord.Webhook:
    hook_id = url.rstrip("/").split("/")[-2]
    return discord.Webhook.from_url(fake.webhooks[hook_id].discord_url, session=session)


async def test_webhook_send_edit_and_thread(
    fake: FakeDiscord, session: aiohttp.ClientSession
) -> None:
    """``Webhook.from_url`` (discord.py takes only id and token from it and sends to
    ``Route.BASE``): send with wait=True, edit, post into a thread of its channel."""
    url = fake.add_webhook(ALERTS, name="tocsin alerts")
    hook = webhook(fake, session, url)
    embed = discord.Embed(title="OpenAI: degraded", color=0xBF8700).set_footer(text="tocsin")
    sent = await hook.send("🟡 OpenAI", embed=embed, username="tocsin", wait=True)
    assert sent.webhook_id == hook.id
    assert sent.author.name == "tocsin"
    await sent.edit(content="🟢 OpenAI: recovered")
    stored = fake.message(ALERTS, str(sent.id))
    assert [content for content, _ in stored.history] == ["🟡 OpenAI", "🟢 OpenAI: recovered"]
    assert (await hook.fetch_message(sent.id)).content == "🟢 OpenAI: recovered"
    assert fake.webhook_messages(str(hook.id)) == [stored]
    assert stored.author["username"] == "tocsin"
    assert stored.webhook_id == str(hook.id)
    await sent.delete()
    assert stored.deleted
    assert fake.webhook_messages(str(hook.id)) == []
    error = await http_error(hook.fetch_message(sent.id))
    assert isinstance(error, discord.NotFound)
    assert error.code == 10008
    assert fake.violations == []


async def test_webhook_posts_into_thread(
    fake: FakeDiscord, bot: Bot, session: aiohttp.ClientSession
) -> None:
    root = await bot.channel().send("Anthropic: outage")
    thread = await root.create_thread(name="updates")
    hook = webhook(fake, session, fake.add_webhook(ALERTS))
    sent = await hook.send("update via webhook", thread=thread, wait=True)
    assert [m.content for m in fake.thread_messages(str(thread.id))] == ["update via webhook"]
    await sent.edit(content="update via webhook (edited)")
    edit = fake.calls_to("PATCH /webhooks/{webhook_id}/{webhook_token}/messages/{message_id}")[-1]
    assert edit.query["thread_id"] == str(thread.id)
    assert [m.id for m in fake.webhook_messages(str(hook.id))] == [str(sent.id)]
    assert fake.violations == []


async def test_webhook_429_is_honoured(fake: FakeDiscord, session: aiohttp.ClientSession) -> None:
    hook = webhook(fake, session, fake.add_webhook(ALERTS))
    fake.rate_limit(EXECUTE, times=1, retry_after=0.3)
    sent, took = await timed(lambda: hook.send("after a 429", wait=True))
    assert took >= 0.3
    assert [c.status for c in fake.calls_to(EXECUTE)] == [429, 200]
    assert fake.webhook_messages(str(hook.id))[0].id == str(sent.id)


async def test_deleted_webhook_and_bad_token(
    fake: FakeDiscord, session: aiohttp.ClientSession
) -> None:
    url = fake.add_webhook(ALERTS)
    hook = webhook(fake, session, url)
    forged = discord.Webhook.partial(hook.id, "x" * 68, session=session)
    error = await http_error(forged.send("hi", wait=True))
    assert (error.status, error.code) == (401, 50027)
    fake.delete_webhook(str(hook.id))
    error = await http_error(hook.send("hi", wait=True))
    assert isinstance(error, discord.NotFound)
    assert error.code == 10015
    assert fake.webhook_messages(str(hook.id)) == []


async def test_webhook_url_is_served_on_loopback(
    fake: FakeDiscord, session: aiohttp.ClientSession
) -> None:
    """``add_webhook`` gives the fake's own URL: plain HTTP clients post to it directly.
    discord.py's ``from_url`` only accepts discord.com URLs (hence :attr:`discord_url`)."""
    url = fake.add_webhook(ALERTS)
    assert url.startswith(f"{fake.api_url}/webhooks/")
    async with session.post(
        url, params={"wait": "true"}, json={"content": "plain post"}
    ) as response:
        assert response.status == 200
        assert (await response.json())["content"] == "plain post"
    async with session.post(url, json={"content": "no wait"}) as response:
        assert response.status == 204
    with pytest.raises(ValueError, match="Invalid webhook URL"):
        discord.Webhook.from_url(url, session=session)


# ------------------------------------------------------------------ validation


async def test_spec_violation_is_recorded(fake: FakeDiscord, bot: Bot) -> None:
    """An embed with 26 fields: Discord's 400 50035 with its errors tree, recorded."""
    embed = discord.Embed(title="too many fields")
    for i in range(26):
        embed.add_field(name=f"f{i}", value="x")
    error = await http_error(bot.channel().send(embed=embed))
    assert (error.status, error.code) == (400, 50035)
    assert "Must be 25 or fewer in length." in error.text
    (violation,) = fake.violations
    assert violation.route == MESSAGES
    assert violation.errors == {
        "embeds": {
            "0": {
                "fields": {
                    "_errors": [
                        {
                            "code": "BASE_TYPE_MAX_LENGTH",
                            "message": "Must be 25 or fewer in length.",
                        }
                    ]
                }
            }
        }
    }
    assert fake.messages(ALERTS) == []


async def test_documented_limits_beyond_the_spec(fake: FakeDiscord, bot: Bot) -> None:
    """Content over 2000, embeds over 6000 together, empty messages: Discord's docs."""
    error = await http_error(bot.channel().send("x" * 2001))
    assert error.code == 50035
    assert "Must be 2000 or fewer" in error.text
    big = [discord.Embed(description="a" * 3500), discord.Embed(description="b" * 3000)]
    error = await http_error(bot.channel().send(embeds=big))
    assert error.code == 50035
    assert "Embed size exceeds maximum size of 6000" in error.text
    error = await http_error(bot.channel().send())
    assert (error.status, error.code) == (400, 50006)
    assert [v.code for v in fake.violations] == [50035, 50035, 50006]


async def test_requests_outside_the_spec(fake: FakeDiscord, session: aiohttp.ClientSession) -> None:
    auth = {"Authorization": f"Bot {FAKE_BOT_TOKEN}"}
    async with session.post(
        f"{fake.api_url}/channels/abc/messages", json={"content": "x"}, headers=auth
    ) as r:
        assert r.status == 400
        assert (await r.json())["errors"]["channel_id"]["_errors"][0][
            "code"
        ] == "NUMBER_TYPE_COERCE"
    async with session.post(
        f"{fake.api_url}/channels/{ALERTS}/nothing", json={}, headers=auth
    ) as r:
        assert (r.status, await r.json()) == (404, {"message": "404: Not Found", "code": 0})
    async with session.get(f"{fake.api_url}/users/@me") as r:
        assert (r.status, await r.json()) == (401, {"message": "401: Unauthorized", "code": 0})
    assert [v.route for v in fake.violations] == [MESSAGES, f"POST /channels/{ALERTS}/nothing"]


# -------------------------------------------------------------------- components


def _row(*buttons: dict[str, Any]) -> dict[str, Any]:
    return {"type": 1, "components": list(buttons)}


def _button(custom_id: str, label: str = "Go", style: int = 1) -> dict[str, Any]:
    return {"type": 2, "style": style, "label": label, "custom_id": custom_id}


async def test_components_are_checked_as_discord_documents(
    fake: FakeDiscord, session: aiohttp.ClientSession
) -> None:
    """≤ 5 buttons a row, ≤ 5 rows, custom_id ≤ 100 and unique, label ≤ 80; interactive
    components only on an application-owned webhook."""
    auth = {"Authorization": f"Bot {FAKE_BOT_TOKEN}"}
    url = f"{fake.api_url}/channels/{ALERTS}/messages"
    bad = [
        [_row(*(_button(f"b{i}") for i in range(6)))],
        [_row(_button(f"r{i}")) for i in range(6)],
        [_row(_button("x" * 101))],
        [_row(_button("same"), _button("same"))],
        [_row(_button("long", label="L" * 81))],
        [_row({"type": 2, "style": 2, "label": "no id"})],
    ]
    for components in bad:
        async with session.post(url, json={"components": components}, headers=auth) as r:
            assert r.status == 400, components
            assert (await r.json())["code"] == 50035
    async with session.post(url, json={"components": [_row(_button("ok"))]}, headers=auth) as r:
        assert r.status == 200
        sent = await r.json()
    assert sent["components"][0]["id"] == 1  # numbered, as Discord answers them
    assert sent["components"][0]["components"][0]["id"] == 2
    hook = fake.add_webhook(ALERTS)
    async with session.post(f"{hook}?wait=true", json={"components": [_row(_button("w"))]}) as r:
        assert r.status == 400
    assert len(fake.violations) == len(bad) + 1


async def test_a_click_reaches_on_interaction_and_is_answered_once(
    fake: FakeDiscord, bot: Bot, session: aiohttp.ClientSession
) -> None:
    clicked: list[str] = []

    async def on_interaction(interaction: discord.Interaction) -> None:
        if interaction.type is discord.InteractionType.component:
            data: Any = interaction.data
            clicked.append(str(data["custom_id"]))
            assert interaction.message is not None
            await interaction.response.send_message("done", ephemeral=True)

    bot.client.event(on_interaction)
    view = discord.ui.View(timeout=None)
    view.add_item(discord.ui.Button(label="Acknowledge", custom_id="tocsin:ack:x"))
    view.stop()  # rendered only: the click goes to on_interaction
    message = await bot.channel().send("root", view=view)
    body = await fake.click(ALERTS, str(message.id), "tocsin:ack:x")
    assert (body["type"], body["data"]["flags"] & 64) == (4, 64)
    assert clicked == ["tocsin:ack:x"]
    record = fake.interactions[-1]
    assert record.payload["message"]["id"] == str(message.id)
    assert record.payload["data"] == {"custom_id": "tocsin:ack:x", "component_type": 2}
    [answer] = fake.responses(record)
    assert answer.ephemeral
    again = f"{fake.api_url}/interactions/{record.id}/{record.token}/callback"
    async with session.post(again, json={"type": 4, "data": {"content": "twice"}}) as r:
        assert (r.status, (await r.json())["code"]) == (400, 40060)
    assert record.refused == [{"type": 4, "data": {"content": "twice"}}]
    with pytest.raises(LookupError):
        await fake.click(ALERTS, str(message.id), "tocsin:ack:not-on-it")
    assert [v.code for v in fake.violations] == [40060, 50035]


def test_use_fake_discord_restores_discord_py() -> None:
    base = discord.http.Route.BASE
    gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    fake = FakeDiscord()
    fake.port = 1
    with use_fake_discord(fake):
        assert discord.http.Route.BASE == "http://127.0.0.1:1/api/v10"
        assert str(discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY) == "ws://127.0.0.1:1/gateway"
    assert base == discord.http.Route.BASE
    assert gateway == discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
