"""Routing: which targets get an event, and as what (a new thread, a reply, a resolve...).

A target's :class:`Route` is built from its config (``config.base.RouteConfig``); the
dispatcher asks :func:`route` once per (event, target), before anything is composed or sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.models import CONTROL_EVENTS, MAINTENANCE_AHEAD_EVENTS, SEVERITY_ORDER, Event, Status
from bot.notifier import Intent, Target


@dataclass(frozen=True, slots=True)
class Route:
    """Which events a target wants; built from the target's config."""

    providers: frozenset[str] | None = None  # None: all
    min_status: Status = Status.DEGRADED
    admin: bool = False  # receives admin notices (broken sources, bad keys, self-check)
    #: Whether the target keeps threads (chat) or only opens and resolves (pagers).
    updates: bool = True
    #: An escalation target (PagerDuty, Opsgenie, webhook) hears only its policy's pages.
    policy: str | None = None
    #: (issue 15) Providers this channel subscribed to from the chat, each with its own
    #: threshold (the config's route wins where both name a provider).
    chat: Mapping[str, Status] = field(default_factory=dict)

    def wants(self, provider: str) -> bool:
        return self.providers is None or provider in self.providers or provider in self.chat

    def min_status_for(self, provider: str) -> Status:
        """The threshold for ``provider``: the config's, else the chat subscription's."""
        if self.providers is None or provider in self.providers:
            return self.min_status
        return self.chat.get(provider, self.min_status)

    @staticmethod
    def of(providers: str | list[str], min_status: Status, **kwargs: Any) -> Route:
        chosen = None if providers == "all" else frozenset(providers)
        assert min_status in SEVERITY_ORDER
        return Route(providers=chosen, min_status=min_status, **kwargs)


def route(event: Event, target: Target, thread: dict[str, Any] | None) -> Intent | None:
    """Does this target get this event, and as what?"""
    r = target.route
    if r.policy is not None or event.type == "escalation":
        return _route_escalation(event, r, thread)
    if event.type == "drill":
        return Intent.NOTICE
    if event.type in CONTROL_EVENTS:
        return _route_control(event, target, thread)
    if event.type in MAINTENANCE_AHEAD_EVENTS:
        return _route_maintenance_ahead(event, r)
    if event.audience == "admins" or event.type in ("watcher_health", "config_alert"):
        return Intent.NOTICE if r.admin else None
    if not r.wants(event.provider):
        return None
    if thread is not None:
        if event.episode_closed and event.type != "incident_update":
            return Intent.RESOLVE
        return Intent.UPDATE if r.updates else None
    if event.episode_closed or event.episode is None:
        return None  # never told them it started: a recovery would be noise
    status = event.provider_status or event.to
    if status is not None and status.reaches(r.min_status_for(event.provider)):
        return Intent.OPEN
    return None


def _route_control(event: Event, target: Target, thread: dict[str, Any] | None) -> Intent | None:
    """What people did from the chat is told in the outage's thread (and the root edited to
    match): an acknowledgement in every channel that carries the outage, a silence, its end
    and a reminder only in the channel they are about; a subscription only in the stream."""
    control = event.control
    if thread is None or control is None or not target.route.updates:
        return None
    if target.route.policy is not None or event.type in ("subscribed", "unsubscribed"):
        return None
    if event.type == "unsilenced" and control.reason == "resolved":
        return None  # the recovery already said it is over
    if event.type == "acknowledged" or control.target == target.key:
        return Intent.UPDATE
    return None


def _route_maintenance_ahead(event: Event, r: Route) -> Intent | None:
    """Planned work ahead: a notice of its own (no thread) for the chat targets that hear the
    provider at a ``min_status`` maintenance reaches (it counts as degraded); never a pager,
    nor an admin-only target."""
    admin_only = r.admin and r.providers is not None and not r.providers
    if r.policy is not None or admin_only or not r.wants(event.provider):
        return None
    return Intent.NOTICE if Status.MAINTENANCE.reaches(r.min_status_for(event.provider)) else None


def _route_escalation(event: Event, r: Route, thread: dict[str, Any] | None) -> Intent | None:
    """A pager hears only its policy's pages; a chat thread hears that someone was paged."""
    escalation = event.escalation
    if escalation is None or event.type != "escalation":
        return None
    if r.policy is not None:
        return Intent.NOTICE if escalation.policy == r.policy else None
    if thread is not None and r.updates and escalation.action == "trigger":
        return Intent.UPDATE
    return None
