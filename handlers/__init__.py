"""The edges: every notification target behind one ``Notifier`` protocol (bot.notifier).

The console and the escalation policies are named here; a chat platform is found by its
section: a :class:`config.chat.ChatConfig` field of :class:`config.schema.TocsinConfig` (the
registry) names the package ``handlers/<section>/`` that provides ``targets(config, ...)`` and,
if it answers commands, ``commands(config, answers)``. What platforms share is
:mod:`handlers.chat`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, Protocol, cast

from bot.answers import Answers
from bot.frontends import Frontend
from bot.notifier import Target
from config.schema import TocsinConfig
from handlers import console, escalation

Commands = Callable[[TocsinConfig, Answers], Frontend | None]


class ChatPlatform(Protocol):
    """What ``handlers/<section>/__init__.py`` provides (``commands`` too, optionally)."""

    def targets(self, config: TocsinConfig, **context: Any) -> list[Target]: ...


def chat_platforms(config: TocsinConfig) -> list[ChatPlatform]:
    """The packages of the chat platforms the config has a section for, in the file's order
    (a platform left out of the file is never imported)."""
    return [
        cast(ChatPlatform, importlib.import_module(f"handlers.{section}"))
        for section in config.chat_platforms()
        if getattr(config, section) is not None
    ]


def build_targets(config: TocsinConfig, **context: Any) -> list[Target]:
    """Every target the config asks for, console first."""
    found = console.targets(config, **context)
    for platform in chat_platforms(config):
        found.extend(platform.targets(config, **context))
    found.extend(escalation.targets(config, **context))
    return found


def command_frontends(config: TocsinConfig, answers: Answers) -> list[Frontend]:
    """The chat platforms' command sides the config enables."""
    found: list[Frontend] = []
    for platform in chat_platforms(config):
        commands: Commands | None = getattr(platform, "commands", None)
        frontend = commands(config, answers) if commands is not None else None
        if frontend is not None:
            found.append(frontend)
    return found
