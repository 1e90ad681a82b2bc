"""``/status`` and ``/fallback`` as Discord application commands (discord.py 2.x).

A gateway ``Client`` with an ``app_commands.CommandTree``: the commands are synced to the
configured guilds (instant) or globally (Discord may take a while to show them), provider ids
autocomplete, and every answer comes from the store (bot.answers), sent as the interaction's
response right away: Discord's 3-second window is never at risk.
"""

from __future__ import annotations

import asyncio
import contextlib

import discord
import discord.gateway
import discord.http
import yarl
from discord import app_commands

from bot.answers import Answer, Answers
from bot.logs import get_logger
from bot.server import Handler
from config.schema import TocsinConfig
from handlers.discord.render import answer_embeds

log = get_logger("tocsin.discord")

AUTOCOMPLETE_MAX = 25  # Discord shows at most 25 choices
DISCORD_API = "https://discord.com/api/v10"


async def _answer(interaction: discord.Interaction, answer: Answer) -> None:
    """The answer, only to the asker; it echoes what they typed (escaped by the renderer),
    and it pings nobody whatever that was."""
    await interaction.response.send_message(
        embeds=answer_embeds(answer),
        ephemeral=True,
        allowed_mentions=discord.AllowedMentions.none(),
    )


class DiscordBot:
    """The command side of Discord, as a tocsin frontend."""

    def __init__(self, config: TocsinConfig, answers: Answers, token: str) -> None:
        self.config = config
        self.answers = answers
        self.token = token
        self.guilds = [
            discord.Object(id=int(g)) for g in (config.discord.guilds if config.discord else [])
        ]
        self.client = discord.Client(intents=discord.Intents(guilds=True))
        self.tree = app_commands.CommandTree(self.client)
        self.synced = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._register()
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
