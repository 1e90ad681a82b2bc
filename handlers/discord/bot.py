"""``/status`` and ``/fallback`` as Discord application commands (discord.py 2.x), and (issue
15) the buttons on a notice's root and ``/tocsin``.

A gateway ``Client`` with an ``app_commands.CommandTree``: the commands are synced to the
configured guilds (instant) or globally (Discord may take a while to show them), provider ids
autocomplete, and every answer comes from the store (bot.answers), sent as the interaction's
response right away: Discord's 3-second window is never at risk.

A button click is a component interaction (``custom_id`` ``tocsin:{action}:{value}``), read in
``on_interaction`` rather than by a registered view: no state is kept per message, so a root
posted before a restart, or by another replica, works the same. The id is hostile (anyone can
forge an interaction payload's contents through a modified client): anything that is not
exactly one of tocsin's actions and a plain ``{provider}|{episode}`` is answered "not one of
tocsin's" and goes nowhere. :class:`~bot.chatops.actions.ChatOps` decides the rest (who may,
state changed once); the answer goes to the clicker only, escaped, pinging nobody. Where two
replicas receive one click, the second answer is refused by Discord (40060) and dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Any, Literal, cast

import discord
import discord.gateway
import discord.http
import yarl
from discord import app_commands

from bot.answers import Answer, Answers
from bot.chatops.actions import Actor, ChatOps, Reply
from bot.logs import get_logger
from bot.outside import one_line
from bot.server import Handler
from config.schema import TocsinConfig
from handlers.discord.render import answer_embeds, read_custom_id, reply_text

log = get_logger("tocsin.discord")

AUTOCOMPLETE_MAX = 25  # Discord shows at most 25 choices
DISCORD_API = "https://discord.com/api/v10"
#: Discord's "Interaction has already been acknowledged": another replica answered first.
ALREADY_ACKNOWLEDGED = 40060
#: A click answered within this is answered at once; a slower one is deferred (Discord
#: drops an interaction left unanswered for 3 s) and its answer follows.
ANSWER_WITHIN = 2.0
NOT_OURS = "That button is not one of tocsin's."
NO_CHATOPS = "Chat actions are not enabled on this tocsin."
NO_MENTIONS = discord.AllowedMentions.none()
BUTTON = 2  # component type
MinStatus = Literal["degraded", "partial_outage", "major_outage"]


async def _answer(interaction: discord.Interaction, answer: Answer) -> None:
    """The answer, only to the asker; it echoes what they typed (escaped by the renderer),
    and it pings nobody whatever that was."""
    await interaction.response.send_message(
        embeds=answer_embeds(answer),
        ephemeral=True,
        allowed_mentions=discord.AllowedMentions.none(),
    )


def _actor(interaction: discord.Interaction) -> Actor:
    """Who clicked or typed: their id, display name (outside text) and, in a guild, their
    role ids (``discord.operators`` may name a role)."""
    user = interaction.user
    roles = tuple(str(r.id) for r in user.roles) if isinstance(user, discord.Member) else ()
    return Actor(platform="discord", user_id=str(user.id), name=user.display_name, roles=roles)


async def _quietly(call: Awaitable[Any]) -> bool:
    """An interaction response; ``False`` when another replica answered it first (40060:
    the state changed once anyway) or it is gone (expired, 10062)."""
    try:
        await call
    except discord.HTTPException as exc:
        if exc.code == ALREADY_ACKNOWLEDGED:
            log.debug("discord: the interaction was answered elsewhere")
        else:
            log.info("discord: could not answer an interaction", code=exc.code, error=str(exc))
        return False
    return True


async def _tell(interaction: discord.Interaction, text: str) -> bool:
    """Plain (already escaped) text to the one who clicked or typed, pinging nobody."""
    return await _quietly(
        interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_MENTIONS)
    )


async def _defer(interaction: discord.Interaction) -> bool:
    return await _quietly(interaction.response.defer(ephemeral=True, thinking=True))


class DiscordBot:
    """The command side of Discord, as a tocsin frontend."""

    def __init__(
        self,
        config: TocsinConfig,
        answers: Answers,
        token: str,
        *,
        chatops: ChatOps | None = None,
    ) -> None:
        self.config = config
        self.answers = answers
        self.token = token
        self.chatops = chatops
        self.guilds = [
            discord.Object(id=int(g)) for g in (config.discord.guilds if config.discord else [])
        ]
        self.client = discord.Client(intents=discord.Intents(guilds=True))
        self.tree = app_commands.CommandTree(self.client)
        self.synced = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._register()
        if chatops is not None:
            self._register_tocsin(chatops)
        self.client.event(self.on_interaction)
        self.client.setup_hook = self._setup  # type: ignore[method-assign]

    def _register(self) -> None:
        answers = self.answers

        @app_commands.command(
            name="status", description="Every watched AI provider, or one in detail"
        )
        @app_commands.describe(provider="A provider id, e.g. anthropic (leave out for all)")
        async def status(interaction: discord.Interaction, provider: str | None = None) -> None:
            answer = await answers.status(provider or "")
            await _answer(interaction, answer)

        @app_commands.command(
            name="fallback", description="Healthy alternatives to a provider, best first"
        )
        @app_commands.describe(provider="A provider id (leave out for every provider in trouble)")
        async def fallback(interaction: discord.Interaction, provider: str | None = None) -> None:
            answer = await answers.fallback(provider or "")
            await _answer(interaction, answer)

        async def complete(
            interaction: discord.Interaction, current: str
        ) -> list[app_commands.Choice[str]]:
            return self.choices(current)

        status.autocomplete("provider")(complete)
        fallback.autocomplete("provider")(complete)
        self.tree.add_command(status)
        self.tree.add_command(fallback)
        self.tree.on_error = self._failed  # type: ignore[method-assign]

    def _register_tocsin(self, chatops: ChatOps) -> None:
        """``/tocsin subscribe|unsubscribe|subscriptions|silences``, for the channel it is
        typed in; each answer only to the one who typed it."""
        group = app_commands.Group(
            name="tocsin",
            description="Run AI provider outages from this channel",
            guild_only=True,
        )

        @group.command(name="subscribe", description="This channel hears a provider's outages")
        @app_commands.describe(
            provider="A watched provider",
            min_status="The least that is posted (default: degraded)",
            duration="For how long, e.g. 12h or 7d (leave out for good)",
        )
        async def subscribe(
            interaction: discord.Interaction,
            provider: str,
            min_status: MinStatus | None = None,
            duration: str | None = None,
        ) -> None:
            await self._reply(
                interaction,
                chatops.subscribe(
                    "discord",
                    str(interaction.channel_id),
                    provider,
                    min_status,
                    _actor(interaction),
                    duration=one_line(duration, 40) if duration else None,
                ),
            )

        @group.command(name="unsubscribe", description="This channel stops hearing a provider")
        @app_commands.describe(provider="A provider this channel subscribed to from the chat")
        async def unsubscribe(interaction: discord.Interaction, provider: str) -> None:
            await self._reply(
                interaction,
                chatops.unsubscribe(
                    "discord", str(interaction.channel_id), provider, _actor(interaction)
                ),
            )

        @group.command(name="subscriptions", description="What this channel hears")
        async def subscriptions(interaction: discord.Interaction) -> None:
            await self._reply(
                interaction, chatops.subscriptions("discord", str(interaction.channel_id))
            )

        @group.command(name="silences", description="What is silenced in this channel")
        async def silences(interaction: discord.Interaction) -> None:
            await self._reply(interaction, chatops.silences("discord", str(interaction.channel_id)))

        async def watched(
            interaction: discord.Interaction, current: str
        ) -> list[app_commands.Choice[str]]:
            return [
                app_commands.Choice(name=one_line(f"{name} ({id_})", 100), value=id_[:100])
                for id_, name in chatops.provider_choices(current)[:AUTOCOMPLETE_MAX]
            ]

        subscribe.autocomplete("provider")(watched)
        unsubscribe.autocomplete("provider")(watched)
        self.tree.add_command(group)

    async def _reply(self, interaction: discord.Interaction, work: Awaitable[Reply]) -> None:
        """A ``/tocsin`` answer (ChatOps answers for an unreachable store itself)."""
        reply = await work
        await _tell(interaction, reply_text([reply.text, *reply.lines]))

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        """Every interaction (discord.py's tree answers the commands): a button's click."""
        if interaction.type is not discord.InteractionType.component:
            return
        try:
            await self._click(interaction)
        except Exception as exc:  # a click must never take the gateway down
            log.exception("discord: a button click failed", error=str(exc))

    async def _click(self, interaction: discord.Interaction) -> None:
        data = cast(dict[str, Any], interaction.data or {})
        parsed = read_custom_id(data.get("custom_id"))
        if parsed is None or data.get("component_type") != BUTTON:
            await _tell(interaction, NOT_OURS)
            return
        if self.chatops is None:
            await _tell(interaction, NO_CHATOPS)
            return
        action, value = parsed
        channel = str(interaction.channel_id)
        press = asyncio.ensure_future(
            self.chatops.press("discord", channel, action, value, _actor(interaction))
        )
        done, _ = await asyncio.wait({press}, timeout=ANSWER_WITHIN)
        deferred = False
        if not done:  # answer within Discord's 3 seconds: "thinking…", then the answer
            deferred = await _defer(interaction)
        reply = await press
        text = reply_text([reply.text, *reply.lines])
        if deferred:
            await _quietly(
                interaction.edit_original_response(content=text, allowed_mentions=NO_MENTIONS)
            )
        elif done:
            await _tell(interaction, text)

    def choices(self, current: str) -> list[app_commands.Choice[str]]:
        """Provider ids (and names) that start with, then contain, what was typed."""
        typed = current.strip().lower()
        providers = self.config.providers
        first = [p for p in providers if p.id.startswith(typed) or p.name.lower().startswith(typed)]
        then = [
            p for p in providers if p not in first and (typed in p.id or typed in p.name.lower())
        ]
        return [
            app_commands.Choice(name=f"{p.name} ({p.id})"[:100], value=p.id)
            for p in (first + then)[:AUTOCOMPLETE_MAX]
        ]

    async def _setup(self) -> None:
        """Runs once logged in: push the commands to Discord."""
        try:
            if self.guilds:
                for guild in self.guilds:
                    self.tree.copy_global_to(guild=guild)
                    await self.tree.sync(guild=guild)
            else:
                await self.tree.sync()
        except discord.HTTPException as exc:
            log.error("discord: could not register the slash commands", error=str(exc))
        else:
            self.synced.set()

    async def _failed(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        log.error(
            "discord command failed",
            command=getattr(interaction.command, "name", None),
            error=str(error),
        )

    # frontend -----------------------------------------------------------------------

    def routes(self) -> list[tuple[str, str, Handler]]:
        return []  # the gateway brings interactions: no inbound HTTP

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="discord-gateway")

    async def _run(self) -> None:
        try:
            await self.client.login(self.token)
            await self._find_gateway()
            await self.client.connect()
        except discord.LoginFailure as exc:
            log.error("discord: the bot token was refused; commands are off", error=str(exc))
        except Exception as exc:  # the notices go on without the commands
            log.exception("discord gateway stopped", error=str(exc))

    async def _find_gateway(self) -> None:
        """Behind a custom ``api_url`` (a proxy, a test double), ask it where its gateway is:
        discord.py would otherwise go straight to Discord's."""
        if discord.http.Route.BASE == DISCORD_API:
            return
        _, url, _ = await self.client.http.get_bot_gateway()
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(url)

    async def stop(self) -> None:
        await self.client.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
