"""The edges: every notification target behind one ``Notifier`` protocol (bot.notify).

Each platform is one module or folder here with a ``targets(config, ...)`` function; this
registry is the one list of them.
"""

from __future__ import annotations

from typing import Any

from bot.notify import Target
from config.schema import TocsinConfig
from handlers import console


def build_targets(config: TocsinConfig, **context: Any) -> list[Target]:
    """Every target the config asks for, console first."""
    found: list[Target] = []
    for platform in (console,):
        found.extend(platform.targets(config, **context))
    return found
