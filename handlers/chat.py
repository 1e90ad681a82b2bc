"""What every chat platform shares: when to mention, which colour a notice is, and how its
configured channels and webhooks become targets.

A platform (``handlers/<section>/``, registered by its section in
:class:`config.schema.TocsinConfig`) keeps only what is its own: how it spells a mention
(Slack ``<!here>``, Discord ``@here`` with ``allowed_mentions``), how it escapes outside text
for its markup (``render.escape``/``code``/``link``: Slack's mrkdwn entities, Discord's
backslashes), its limits (clipped with :func:`bot.outside.clip`) and its API.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from bot.compose import Notice
from bot.models import Status
from bot.notifier import Delivery, Intent, Notifier, Target
from bot.routing import Route

#: A notice's colour by its status (Slack's attachment bar, Discord's embed), as hex.
COLORS = {
    Status.OPERATIONAL: "#1a7f37",
    Status.DEGRADED: "#bf8700",
    Status.PARTIAL_OUTAGE: "#d1581b",
    Status.MAJOR_OUTAGE: "#cf222e",
    Status.MAINTENANCE: "#0969da",
    Status.UNKNOWN: "#6e7781",
}
#: tocsin's own notices (admin notices, flapping, drills) and answers about no one status.
OTHER_COLOR = "#8250df"
OWN_KINDS = frozenset({"admin", "flapping", "drill"})


def notice_color(notice: Notice) -> str:
    """The colour a notice is shown in: by its status, or tocsin's own for its own kinds."""
    return OTHER_COLOR if notice.kind in OWN_KINDS else COLORS[notice.status]


def mention_for(
    options: Mapping[str, Any], delivery: Delivery, words: frozenset[str]
) -> str | None:
    """The target's configured mention (one of the platform's ``words``: ``here``...) when
    this notice is the one that crosses its ``mention_min_status``: the opening notice, or an
    escalation inside the thread. ``None`` otherwise: a mention wakes people, once."""
    mention = options.get("mention", "none")
    if mention not in words or delivery.intent in (Intent.RESOLVE, Intent.NOTICE):
        return None
    threshold = Status(options.get("mention_min_status", Status.MAJOR_OUTAGE))
    event = delivery.event
    if not (event.provider_status or event.to or Status.UNKNOWN).reaches(threshold):
        return None
    if delivery.intent is Intent.UPDATE and (
        (event.from_ or Status.UNKNOWN).reaches(threshold) or event.type != "state_changed"
    ):
        return None
    return str(mention)


# ------------------------------------------------------------------------- targets


class Routed(Protocol):
    """A configured route (:class:`config.base.RouteConfig` or any of its subclasses)."""

    @property
    def providers(self) -> str | list[str]: ...

    @property
    def min_status(self) -> Status: ...


class Channel(Routed, Protocol):
    """A configured chat channel: an id, and the mention its notices may carry."""

    @property
    def id(self) -> str: ...

    @property
    def mention(self) -> str: ...

    @property
    def mention_min_status(self) -> Status: ...


def target(
    key: str, notifier: Notifier, config: Routed, options: dict[str, Any], **route: Any
) -> Target:
    """The target for one configured route: its runtime :class:`~bot.routing.Route` from the
    config's ``providers`` and ``min_status`` (``route`` adds to it, e.g. ``updates=False``)."""
    return Target(key, notifier, Route.of(config.providers, config.min_status, **route), options)


def channel_targets(
    platform: str, notifier: Notifier, channels: Sequence[Channel], admin_channel: str | None
) -> list[Target]:
    """One target per channel (``<platform>:<id>``), and the admin channel's
    (``<platform>-admin:<id>``), which hears only admin notices; one notifier for all."""
    found = [
        target(
            f"{platform}:{channel.id}",
            notifier,
            channel,
            {
                "channel": channel.id,
                "mention": channel.mention,
                "mention_min_status": channel.mention_min_status.value,
            },
        )
        for channel in channels
    ]
    if admin_channel:
        route = Route(providers=frozenset(), admin=True)
        found.append(
            Target(f"{platform}-admin:{admin_channel}", notifier, route, {"channel": admin_channel})
        )
    return found
