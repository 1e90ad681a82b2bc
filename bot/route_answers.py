"""Where an app should send its next call: a route group ranked healthy-first.

A route group (config ``routes``) lists targets, ``provider`` or ``provider/model``. A model
target speaks for that model's component (an inference probe's, or the app's own traffic's)
when tocsin has one, else for the whole provider. The answer is what tocsin knows now, from the
store, never a live check, so a client (the LiteLLM hook) can keep it as a local snapshot and
pay nothing per call: ``GET /api/v1/route/<group>`` with an ``ETag``, and a stream of changes.

``healthy`` is false only for a partial or major outage: when tocsin does not know
(``unknown``), the app should route as it would without tocsin (fail-open).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from bot.models import ComponentState, Status, state_key
from bot.outside import one_line
from bot.queries import provider_row
from config.schema import TocsinConfig

#: Healthy first; among the healthy, the ones we know are fine before the ones we do not.
_RANK = {
    Status.OPERATIONAL: 0,
    Status.DEGRADED: 1,
    Status.MAINTENANCE: 2,
    Status.UNKNOWN: 3,
    Status.PARTIAL_OUTAGE: 4,
    Status.MAJOR_OUTAGE: 5,
}
REASON_MAX = 300


@dataclass(frozen=True, slots=True)
class RouteMember:
    target: str
    provider: str
    model: str | None
    status: str
    healthy: bool
    confirmed: bool
    reason: str | None
    latency_ms: float | None


@dataclass(frozen=True, slots=True)
class RouteAnswer:
    group: str
    #: Milliseconds since the epoch of the newest change among the members' states: grows
    #: with every change, and is the same on every replica.
    version: int
    members: tuple[RouteMember, ...]

    def document(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "version": self.version,
            "members": [asdict(m) for m in self.members],
        }

    @property
    def etag(self) -> str:
        body = json.dumps(self.document(), sort_keys=True, separators=(",", ":"))
        return '"' + hashlib.sha256(body.encode()).hexdigest()[:32] + '"'


def route_answer(
    config: TocsinConfig, states: Mapping[str, ComponentState], group: str
) -> RouteAnswer | None:
    """The group ranked healthy-first (then by the config's order); ``None`` if unknown."""
    targets = config.routes.get(group)
    if targets is None:
        return None
    found = [_member(config, states, target) for target in targets]
    ranked = sorted(range(len(found)), key=lambda i: (_RANK[Status(found[i][0].status)], i))
    version = max((found[i][1] for i in ranked), default=0)
    return RouteAnswer(group, version, tuple(found[i][0] for i in ranked))


def route_answers(config: TocsinConfig, states: Mapping[str, ComponentState]) -> list[RouteAnswer]:
    answers = (route_answer(config, states, group) for group in config.routes)
    return [a for a in answers if a is not None]


def _member(
    config: TocsinConfig, states: Mapping[str, ComponentState], target: str
) -> tuple[RouteMember, int]:
    provider_id, _, model = target.partition("/")
    own = states.get(state_key(provider_id, model)) if model else None
    if own is not None:
        return _of_component(target, provider_id, model, own), _ms(own)
    provider = config.provider(provider_id)
    assert provider is not None  # the config checks route groups name watched providers
    row = provider_row(provider, states)
    reason = row.incident.title if row.incident else row.detail
    member = RouteMember(
        target=target,
        provider=provider_id,
        model=model or None,
        status=row.status.value,
        healthy=not row.status.is_outage or row.status is Status.DEGRADED,
        confirmed=row.confirmed,
        reason=_reason(reason) if row.status is not Status.OPERATIONAL else None,
        latency_ms=row.latency_ms,
    )
    return member, max((_ms(c) for c in row.components), default=0)


def _of_component(target: str, provider: str, model: str, state: ComponentState) -> RouteMember:
    status = state.status
    reason = state.incident.title if state.incident else state.detail
    return RouteMember(
        target=target,
        provider=provider,
        model=model,
        status=status.value,
        healthy=not status.is_outage or status is Status.DEGRADED,
        confirmed=state.confirmed,
        reason=_reason(reason) if status is not Status.OPERATIONAL else None,
        latency_ms=state.latency_p50_ms or state.latency_ms,
    )


def _reason(text: str | None) -> str | None:
    """Outside text (a status page's, an API's): one bounded line; JSON escapes the rest."""
    return one_line(text, REASON_MAX) if text else None


def _ms(state: ComponentState) -> int:
    return int(state.since.timestamp() * 1000)


def changed(before: Mapping[str, str], answers: Sequence[RouteAnswer]) -> list[RouteAnswer]:
    """The answers whose ETag differs from what a client was last sent."""
    return [a for a in answers if before.get(a.group) != a.etag]
