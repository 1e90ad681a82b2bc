"""Routing: which targets get an event, and as what (a new thread, a reply, a resolve...).

A target's :class:`Route` is built from its config (``config.base.RouteConfig``); the
dispatcher asks :func:`route` once per (event, target), before anything is composed or sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.models import SEVERITY_ORDER, Event, Status
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

    def wants(self, provider: str) -> bool:
        return self.providers is None or provider in self.providers

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
    if status is not None and status.reaches(r.min_status):
        return Intent.OPEN
    return None


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
