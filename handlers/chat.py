"""What every chat platform shares: when to mention, which colour a notice is, and how its
configured channels and webhooks become targets.

A platform (``handlers/<section>/``, registered by its section in
:class:`config.schema.TocsinConfig`) keeps only what is its own: how it spells a mention
(Slack ``<!here>``, Discord ``@here`` with ``allowed_mentions``), how it escapes outside text
for its markup (``render.escape``/``code``/``link``: Slack's mrkdwn entities, Discord's
backslashes), its limits (clipped with :func:`bot.outside.clip`) and its API.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from pydantic import SecretStr

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


#: How a platform without threads (a Teams webhook, an Apprise service) marks a notice that
#: would be a thread reply elsewhere: updates and recoveries are new messages there.
REPLY_MARK = "↳ "


def headline(notice: Notice, intent: Intent) -> str:
    """The notice's title line (emoji first), marked as a reply for an update or resolve on a
    platform that cannot thread them (plain text: escape it for the platform's markup)."""
    mark = REPLY_MARK if intent in (Intent.UPDATE, Intent.RESOLVE) else ""
    return f"{mark}{notice.emoji} {notice.title}"


#: What turns outside text into something live on a platform that reads markup in plain
#: text: an inline link's ``](``, a ``<tag>`` (``<at>`` mentions, HTML, ``<!channel>``), a
#: broadcast word, a script scheme, a template's ``{{``. Each is broken, not removed.
_LIVE = re.compile(
    r"\]\s*\(|[<>]|@(?=(?:everyone|here|channel|all)\b)|\{\{|"
    r"(?<![a-z])(?:javascript|vbscript|data)(?=\s*:)",
    re.IGNORECASE,
)
_ANGLES = {"<": "\u2039", ">": "\u203a"}  # single angle quotation marks
_JOINER = "\u2060"  # WORD JOINER: invisible, and breaks the token it sits in


def defang(text: str) -> str:
    """Outside text that no renderer can make a link, a mention, a tag or a template of:
    ``<>`` become single angle quotes (no ``<at>``, ``<script>``), and a word joiner goes
    inside ``](``, ``@here``, ``{{`` and ``javascript:``. The platform's own escaping
    (emphasis...) comes on top."""

    def broken(match: re.Match[str]) -> str:
        token = match[0]
        if token in _ANGLES:
            return _ANGLES[token]
        return f"{token[0]}{_JOINER}{token[1:]}" if len(token) > 1 else f"{token}{_JOINER}"

    return _LIVE.sub(broken, text)


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


def digest(secret: str) -> str:
    """A stable name for a target known only by a secret URL (a Teams webhook, an Apprise
    URL): a digest of it, safe to log and to key marks by; the URL never is."""
    return hashlib.sha256(secret.encode()).hexdigest()[:12]


class UrlRoute(Routed, Protocol):
    """A configured target known by a secret URL (a Teams webhook, an Apprise URL)."""

    @property
    def url(self) -> SecretStr: ...

    @property
    def name(self) -> str | None: ...


def url_targets(
    platform: str, notifier: Notifier, routes: Sequence[UrlRoute], admin_url: SecretStr | None
) -> list[Target]:
    """One target per URL (``<platform>:<name or digest>``) and the admin URL's
    (``<platform>-admin:<digest>``, admin notices only); one notifier for all. The URL is in
    the target's options only: keys, logs and marks know its digest."""
    found: list[Target] = []
    for entry in routes:
        url = entry.url.get_secret_value()
        key = f"{platform}:{entry.name or digest(url)}"
        found.append(target(key, notifier, entry, {"url": url, "mention": "none"}))
    if admin_url is not None:
        url = admin_url.get_secret_value()
        admin = Route(providers=frozenset(), admin=True)
        found.append(Target(f"{platform}-admin:{digest(url)}", notifier, admin, {"url": url}))
    return found


def channel_targets(
    platform: str,
    notifier: Notifier,
    channels: Sequence[Channel],
    admin_channel: str | None,
    *,
    buttons: bool = False,
) -> list[Target]:
    """One target per channel (``<platform>:<id>``), and the admin channel's
    (``<platform>-admin:<id>``), which hears only admin notices; one notifier for all.
    ``buttons``: the platform shows a root's buttons (acknowledge, silence: issue 15)."""
    found = [
        target(
            f"{platform}:{channel.id}",
            notifier,
            channel,
            {
                "channel": channel.id,
                "mention": channel.mention,
                "mention_min_status": channel.mention_min_status.value,
                "buttons": buttons,
                "remind_every": getattr(channel, "remind_every", None),
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


def subscribed_target(platform: str, notifier: Notifier, channel: str, *, buttons: bool) -> Target:
    """(issue 15) The target of a channel only a chat subscription names: it hears what the
    subscription routes to it (:func:`bot.chatops.controls.with_chat`), nothing else."""
    route = Route(providers=frozenset())
    options = {"channel": channel, "mention": "none", "buttons": buttons}
    return Target(f"{platform}:{channel}", notifier, route, options)
