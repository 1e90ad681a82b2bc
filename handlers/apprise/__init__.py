"""Apprise: notices to any of Apprise's services, one URL per target. Send only: no threads,
no edits, no commands (see ``handlers.apprise.notifier``)."""

from __future__ import annotations

from typing import Any

from bot.notifier import Target
from config.schema import TocsinConfig
from handlers.apprise.notifier import AppriseNotifier
from handlers.chat import url_targets


def targets(config: TocsinConfig, **_: Any) -> list[Target]:
    """One target per URL (``apprise:<name or digest>``) and the admin one's
    (``apprise-admin:<digest>``, admin notices only); one notifier for all."""
    settings = config.apprise
    if settings is None or not (settings.targets or settings.admin_url):
        return []
    return url_targets("apprise", AppriseNotifier(), settings.targets, settings.admin_url)
