"""The chat platforms' sections of the file (``slack:``, ``discord:``): one model each.

A platform is registered by one field of :class:`config.schema.TocsinConfig` whose model is a
:class:`ChatConfig`; the field's name is both the file's section and the package in
``handlers/`` that delivers to it. Its lists of :class:`~config.base.RouteConfig` (channels,
webhooks) are found by type, so the loader checks their provider ids without being told.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field

from bot.models import Status
from config.base import (
    HttpURL,
    Model,
    RouteConfig,
    Secret,
    Severity,
    secret_check,
    section_model,
)
from config.targets import check_slack_channel, check_snowflake, check_webhook_url


def _id_text(value: object) -> object:
    """An id written as a bare YAML number (``id: 123456789012345678``) is its digits."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value.strip() if isinstance(value, str) else value


WebhookURL = Annotated[Secret, AfterValidator(secret_check(check_webhook_url))]
Snowflake = Annotated[str, BeforeValidator(_id_text), AfterValidator(check_snowflake)]
SlackChannelId = Annotated[str, BeforeValidator(_id_text), AfterValidator(check_slack_channel)]


class ChatConfig(Model):
    """A chat platform's section: ``handlers/<its field name>/`` delivers it."""


def is_platform(annotation: Any) -> bool:
    """Whether a :class:`~config.schema.TocsinConfig` field is a chat platform's section."""
    model = section_model(annotation)
    return model is not None and issubclass(model, ChatConfig)


class SlackChannel(RouteConfig):
    id: SlackChannelId
    #: Mention ``@here``/``@channel`` on notices at or above ``mention_min_status``.
    mention: Literal["none", "here", "channel"] = "none"
    mention_min_status: Severity = Status.MAJOR_OUTAGE


class SlackConfig(ChatConfig):
    api_url: HttpURL = "https://slack.com/api/"
    bot_token: Secret | None = None
    app_token: Secret | None = None
    signing_secret: Secret | None = None
    channels: list[SlackChannel] = Field(default_factory=list)
    #: Where admin notices (broken sources, bad keys, watcher health) go.
    admin_channel: SlackChannelId | None = None


class DiscordChannel(RouteConfig):
    id: Snowflake
    mention: Literal["none", "here", "everyone"] = "none"
    mention_min_status: Severity = Status.MAJOR_OUTAGE


class DiscordWebhook(RouteConfig):
    url: WebhookURL  # the URL carries the webhook's token


class DiscordConfig(ChatConfig):
    api_url: HttpURL = "https://discord.com/api/v10"
    token: Secret | None = None
    application_id: Snowflake | None = None
    guilds: list[Snowflake] = Field(default_factory=list)
    channels: list[DiscordChannel] = Field(default_factory=list)
    webhooks: list[DiscordWebhook] = Field(default_factory=list)
    admin_channel: Snowflake | None = None
