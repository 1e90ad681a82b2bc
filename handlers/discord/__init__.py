"""Discord: notices by bot or channel webhook (notifier), /status and /fallback as application
commands through the gateway (bot); with chat operations (issue 15), the roots' buttons and
``/tocsin`` too."""

from __future__ import annotations

from typing import Any

import discord
import discord.http

from bot.answers import Answers
from bot.chatops.actions import ChatOps
from bot.logs import get_logger
from bot.notifier import Notifier, Target
from config.chat import DiscordConfig
from config.schema import TocsinConfig
from config.targets import WEBHOOK_PATH
from handlers.chat import channel_targets, subscribed_target, target
from handlers.discord.bot import DiscordBot
from handlers.discord.notifier import BotNotifier, WebhookNotifier

log = get_logger("tocsin.discord")


def use_api(discord_config: DiscordConfig) -> None:
    """Point discord.py (REST, webhooks, the gateway lookup) at ``discord.api_url``."""
    discord.http.Route.BASE = discord_config.api_url.rstrip("/")


def _token(config: DiscordConfig) -> str | None:
    return config.token.get_secret_value() if config.token else None


def targets(config: TocsinConfig, **_: Any) -> list[Target]:
    found: list[Target] = []
    settings = config.discord
    if settings is None:
        return found
    use_api(settings)
    token = _token(settings)
    if settings.channels or settings.admin_channel:
        if token:
            bot = BotNotifier(discord.Client(intents=discord.Intents.none()), token)
            found += channel_targets(
                "discord", bot, settings.channels, settings.admin_channel, buttons=True
            )
        else:
            log.warning("discord channels are configured but no bot token: set DISCORD_TOKEN")
    if settings.webhooks:
        hooks = WebhookNotifier()
        for webhook in settings.webhooks:
            url = webhook.url.get_secret_value()
            match = WEBHOOK_PATH.search(url)
            key = f"discord-webhook:{match['id'] if match else len(found)}"
            found.append(target(key, hooks, webhook, {"url": url, "mention": "none"}))
    return found


def subscribed(config: TocsinConfig, channel: str, shared: Notifier | None) -> Target | None:
    """(issue 15) A channel only a chat subscription names, on the configured bot notifier."""
    settings = config.discord
    token = _token(settings) if settings else None
    if shared is None and settings is not None and token:
        use_api(settings)
        shared = BotNotifier(discord.Client(intents=discord.Intents.none()), token)
    return subscribed_target("discord", shared, channel, buttons=True) if shared else None


def commands(
    config: TocsinConfig, answers: Answers, *, chatops: ChatOps | None = None
) -> DiscordBot | None:
    settings = config.discord
    token = _token(settings) if settings else None
    if settings is None or not token:
        return None
    use_api(settings)
    return DiscordBot(config, answers, token, chatops=chatops)
