"""Microsoft Teams: notices as Adaptive Cards through channel webhooks (Workflows or Incoming
Webhook). Post only: no threads, no edits, no commands (see ``handlers.teams.notifier``)."""

from __future__ import annotations

from typing import Any

from bot.notifier import Target
from config.schema import TocsinConfig
from handlers.chat import url_targets
from handlers.teams.notifier import TeamsNotifier


def targets(config: TocsinConfig, **_: Any) -> list[Target]:
    """One target per URL (``teams:<name or digest>``) and the admin one's
    (``teams-admin:<digest>``, admin notices only); one notifier for all."""
    settings = config.teams
    if settings is None or not (settings.webhooks or settings.admin_webhook):
        return []
    return url_targets("teams", TeamsNotifier(), settings.webhooks, settings.admin_webhook)
