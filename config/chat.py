"""The chat platforms' sections of the file (``slack:``, ``discord:``, ``teams:``,
``apprise:``): one model each.

A platform is registered by one field of :class:`config.schema.TocsinConfig` whose model is a
:class:`ChatConfig`; the field's name is both the file's section and the package in
``handlers/`` that delivers to it. Its lists of :class:`~config.base.RouteConfig` (channels,
webhooks) are found by type, so the loader checks their provider ids without being told.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from bot.models import Status
from config.apprise_urls import check_apprise_url
from config.base import (
    HttpURL,
    Model,
    RouteConfig,
    Secret,
    Severity,
    secret_check,
    section_model,
)
from config.durations import Duration
from config.targets import (
    check_slack_channel,
    check_snowflake,
    check_teams_url,
    check_webhook_url,
)


def _id_text(value: object) -> object:
    """An id written as a bare YAML number (``id: 123456789012345678``) is its digits."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value.strip() if isinstance(value, str) else value


WebhookURL = Annotated[Secret, AfterValidator(secret_check(check_webhook_url))]
TeamsURL = Annotated[Secret, AfterValidator(secret_check(check_teams_url))]
AppriseURL = Annotated[Secret, AfterValidator(secret_check(check_apprise_url))]
Snowflake = Annotated[str, BeforeValidator(_id_text), AfterValidator(check_snowflake)]
SlackChannelId = Annotated[str, BeforeValidator(_id_text), AfterValidator(check_slack_channel)]


class ChatConfig(Model):
    """A chat platform's section: ``handlers/<its field name>/`` delivers it."""


def is_platform(annotation: Any) -> bool:
    """Whether a :class:`~config.schema.TocsinConfig` field is a chat platform's section."""
    model = section_model(annotation)
    return model is not None and issubclass(model, ChatConfig)


class Reminding(Model):
    """(issue 15) A channel's reminders: "still down after 30 min" in the outage's thread,
    every ``remind_every`` until it is acknowledged, silenced or over (off when unset)."""

    remind_every: Duration | None = Field(default=None, ge=60)


class Operating(Model):
    """(issue 15) Who may press a notice's buttons and change subscriptions from the chat:
    anyone in the channel when empty, else these user ids (and, on Discord, role ids)."""

    operators: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        default_factory=list, max_length=1000
    )


class SlackChannel(RouteConfig, Reminding):
    id: SlackChannelId
    #: Mention ``@here``/``@channel`` on notices at or above ``mention_min_status``.
    mention: Literal["none", "here", "channel"] = "none"
    mention_min_status: Severity = Status.MAJOR_OUTAGE


class SlackConfig(ChatConfig, Operating):
    api_url: HttpURL = "https://slack.com/api/"
    bot_token: Secret | None = None
    app_token: Secret | None = None
    signing_secret: Secret | None = None
    channels: list[SlackChannel] = Field(default_factory=list)
    #: Where admin notices (broken sources, bad keys, watcher health) go.
    admin_channel: SlackChannelId | None = None


class DiscordChannel(RouteConfig, Reminding):
    id: Snowflake
    mention: Literal["none", "here", "everyone"] = "none"
    mention_min_status: Severity = Status.MAJOR_OUTAGE


class DiscordWebhook(RouteConfig):
    url: WebhookURL  # the URL carries the webhook's token


class DiscordConfig(ChatConfig, Operating):
    api_url: HttpURL = "https://discord.com/api/v10"
    token: Secret | None = None
    application_id: Snowflake | None = None
    guilds: list[Snowflake] = Field(default_factory=list)
    channels: list[DiscordChannel] = Field(default_factory=list)
    webhooks: list[DiscordWebhook] = Field(default_factory=list)
    admin_channel: Snowflake | None = None


def _distinct_names(routes: list[Any], what: str) -> None:
    """A route's ``name`` is its target's key (the URL is a secret): two alike are an error."""
    names = [r.name for r in routes if r.name]
    if len(set(names)) != len(names):
        raise ValueError(f"two {what} have the same name")


class TeamsWebhook(RouteConfig):
    #: A Workflows ("When a Teams webhook request is received") or Incoming Webhook URL.
    url: TeamsURL
    #: The target's name in logs and drills (default: a digest of the URL, never the URL).
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")] | None = None


class TeamsConfig(ChatConfig):
    webhooks: list[TeamsWebhook] = Field(default_factory=list)
    #: Where admin notices (broken sources, bad keys, watcher health) go.
    admin_webhook: TeamsURL | None = None

    @model_validator(mode="after")
    def _names(self) -> TeamsConfig:
        _distinct_names(self.webhooks, "teams webhooks")
        return self


class AppriseTarget(RouteConfig):
    #: An Apprise URL (``ntfy://``, ``tgram://``, ``mailto://``, ``json://``...): one service.
    url: AppriseURL
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")] | None = None


class AppriseConfig(ChatConfig):
    targets: list[AppriseTarget] = Field(default_factory=list)
    admin_url: AppriseURL | None = None

    @model_validator(mode="after")
    def _names(self) -> AppriseConfig:
        _distinct_names(self.targets, "apprise targets")
        return self
