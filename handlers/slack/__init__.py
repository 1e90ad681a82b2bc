"""Slack: notices by the Web API (notifier), /status, /fallback, /tocsin and a notice's
buttons (commands), app manifest."""

from __future__ import annotations

from typing import Any

from bot.answers import Answers
from bot.chatops.actions import ChatOps
from bot.logs import get_logger
from bot.notifier import Notifier, Target
from config.chat import SlackConfig
from config.schema import TocsinConfig
from handlers.chat import channel_targets, subscribed_target
from handlers.slack.commands import Later, SlackCommands, build_app
from handlers.slack.notifier import SlackNotifier, make_client

log = get_logger("tocsin.slack")


def _token(slack: SlackConfig) -> str | None:
    return slack.bot_token.get_secret_value() if slack.bot_token else None


def targets(config: TocsinConfig, **_: Any) -> list[Target]:
    """One target per configured channel (plus the admin channel), one shared client."""
    slack = config.slack
    if slack is None or not (slack.channels or slack.admin_channel):
        return []
    found = notifier(config)
    if found is None:
        log.warning("slack channels are configured but no bot token: set SLACK_BOT_TOKEN")
        return []
    return channel_targets("slack", found, slack.channels, slack.admin_channel, buttons=True)


def notifier(config: TocsinConfig) -> SlackNotifier | None:
    """The notifier for Slack's targets (those of chat subscriptions too), if there is a token."""
    token = _token(config.slack) if config.slack else None
    return (
        SlackNotifier(make_client(config.slack.api_url, token)) if config.slack and token else None
    )


def subscribed(config: TocsinConfig, channel: str, shared: Notifier | None) -> Target | None:
    """(issue 15) A channel only a chat subscription names, on the configured notifier."""
    found = shared or notifier(config)
    return subscribed_target("slack", found, channel, buttons=True) if found else None


def commands(
    config: TocsinConfig, answers: Answers, *, chatops: ChatOps | None = None
) -> SlackCommands | None:
    """The slash-command app, if Slack is configured for it (a bot token, and an app token
    for Socket Mode or a signing secret for HTTP mode)."""
    slack = config.slack
    token = _token(slack) if slack else None
    if slack is None or not token:
        return None
    app_token = slack.app_token.get_secret_value() if slack.app_token else None
    secret = slack.signing_secret.get_secret_value() if slack.signing_secret else None
    if not app_token and not secret:
        log.warning(
            "slack commands are off: set SLACK_APP_TOKEN (Socket Mode) or SLACK_SIGNING_SECRET "
            "(HTTP mode at /slack/events)"
        )
        return None
    client = make_client(slack.api_url, None)  # the token comes with each request's context
    later = Later()
    app = build_app(answers, client, token, secret, chatops=chatops, later=later)
    return SlackCommands(app, app_token, secret, later, chatops=chatops)
