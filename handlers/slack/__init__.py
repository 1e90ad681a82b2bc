"""Slack: notices by the Web API (notifier), /status and /fallback (commands), app manifest."""

from __future__ import annotations

from typing import Any

from bot.answers import Answers
from bot.logs import get_logger
from bot.notifier import Target
from config.chat import SlackConfig
from config.schema import TocsinConfig
from handlers.chat import channel_targets
from handlers.slack.commands import SlackCommands, build_app
from handlers.slack.notifier import SlackNotifier, make_client

log = get_logger("tocsin.slack")


def _token(slack: SlackConfig) -> str | None:
    return slack.bot_token.get_secret_value() if slack.bot_token else None


def targets(config: TocsinConfig, **_: Any) -> list[Target]:
    """One target per configured channel (plus the admin channel), one shared client."""
    slack = config.slack
    if slack is None or not (slack.channels or slack.admin_channel):
        return []
    token = _token(slack)
    if not token:
        log.warning("slack channels are configured but no bot token: set SLACK_BOT_TOKEN")
        return []
    notifier = SlackNotifier(make_client(slack.api_url, token))
    return channel_targets("slack", notifier, slack.channels, slack.admin_channel)


def commands(config: TocsinConfig, answers: Answers) -> SlackCommands | None:
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
    return SlackCommands(build_app(answers, client, token, secret), app_token, secret)
