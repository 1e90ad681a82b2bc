"""The edges: every notification target behind one ``Notifier`` protocol (bot.notifier).

The console and the escalation policies are named here; a chat platform is found by its
section: a :class:`config.chat.ChatConfig` field of :class:`config.schema.TocsinConfig` (the
registry) names the package ``handlers/<section>/`` that provides ``targets(config, ...)`` and,
if it answers commands, ``commands(config, answers)``. What platforms share is
:mod:`handlers.chat`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, cast

if TYPE_CHECKING:  # annotations only: ``handlers.chat`` and the CLI must not pay for these
    from bot.answers import Answers
    from bot.chatops.actions import ChatOps
    from bot.chatops.controls import TargetMaker
    from bot.chatops.records import Subscription
    from bot.frontends import Frontend
    from bot.notifier import Notifier, Target
    from config.schema import TocsinConfig

Commands = Callable[..., "Frontend | None"]
#: (issue 15) ``subscribed(config, channel, shared_notifier)``: a channel's target for a chat
#: subscription, on the platform's configured notifier where there is one.
Subscribed = Callable[["TocsinConfig", str, "Notifier | None"], "Target | None"]


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
    from handlers import console, escalation

    found = console.targets(config, **context)
    for platform in chat_platforms(config):
        found.extend(platform.targets(config, **context))
    found.extend(escalation.targets(config, **context))
    return found


def command_frontends(
    config: TocsinConfig, answers: Answers, chatops: ChatOps | None = None
) -> list[Frontend]:
    """The chat platforms' command sides the config enables (buttons and ``/tocsin`` go
    to ``chatops``)."""
    found: list[Frontend] = []
    for platform in chat_platforms(config):
        commands: Commands | None = getattr(platform, "commands", None)
        frontend = commands(config, answers, chatops=chatops) if commands is not None else None
        if frontend is not None:
            found.append(frontend)
    return found


def subscription_targets(config: TocsinConfig, targets: Sequence[Target]) -> TargetMaker:
    """(issue 15) How a channel subscribed from the chat becomes a target: by its platform's
    ``subscribed`` (platforms without one cannot be subscribed from the chat), sharing the
    notifier of that platform's configured channels."""
    by_section = {
        section: importlib.import_module(f"handlers.{section}")
        for section in config.chat_platforms()
        if getattr(config, section) is not None
    }

    def make(subscription: Subscription) -> Target | None:
        module = by_section.get(subscription.platform)
        subscribed: Subscribed | None = getattr(module, "subscribed", None)
        if subscribed is None:
            return None
        shared = next(
            (
                t.notifier
                for t in targets
                if t.key.split(":", 1)[0]
                in (subscription.platform, f"{subscription.platform}-admin")
            ),
            None,
        )
        return subscribed(config, subscription.channel, shared)

    return make
