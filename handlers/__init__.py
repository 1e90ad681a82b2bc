"""The edges: every notification target behind one ``Notifier`` protocol (bot.notifier).

Each platform is one module or folder here with a ``targets(config, ...)`` function; this
registry is the one list of them.
"""

from __future__ import annotations

from typing import Any

from bot.answers import Answers
from bot.frontends import Frontend
from bot.notifier import Target
from config.schema import TocsinConfig
from handlers import console, discord, escalation, slack


def build_targets(config: TocsinConfig, **context: Any) -> list[Target]:
    """Every target the config asks for, console first."""
    found: list[Target] = []
    for platform in (console, slack, discord, escalation):
        found.extend(platform.targets(config, **context))
    return found


def command_frontends(config: TocsinConfig, answers: Answers) -> list[Frontend]:
    """The chat platforms' command sides the config enables."""
    found: list[Frontend | None] = [
        slack.commands(config, answers),
        discord.commands(config, answers),
    ]
    return [frontend for frontend in found if frontend is not None]
