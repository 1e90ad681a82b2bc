"""Answers from the store, shared by every front end (/status, /fallback, the dashboard,
``tocsin status``, outage notices). Never a live check: commands must answer in milliseconds.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.models import EMOJI, ComponentState, Incident, Status, provider_status_of
from config.durations import humanize
from config.schema import ProviderConfig, TocsinConfig

#: Order in which alternatives are recommended: healthy first, unknown after degraded.
_PREFERENCE = {
    Status.OPERATIONAL: 0,
    Status.DEGRADED: 1,
    Status.UNKNOWN: 2,
    Status.MAINTENANCE: 3,
    Status.PARTIAL_OUTAGE: 4,
    Status.MAJOR_OUTAGE: 5,
}


@dataclass(frozen=True, slots=True)
class FallbackOption:
    """An alternative provider, as /fallback and outage notices show it."""

    provider: str
    name: str
    status: Status
    latency_ms: float | None = None
    has_key: bool = False
    litellm_model: str | None = None
    openrouter_model: str | None = None
    #: A sibling model of the provider that is down (its other models still answer).
    model: str | None = None

    @property
    def label(self) -> str:
        latency = f", {self.latency_ms:.0f} ms" if self.latency_ms is not None else ""
        return f"{self.name} ({self.status.label.lower()}{latency})"

    @property
    def summary(self) -> str:
        """``✅ OpenAI (operational, 230 ms)``: how notices list it."""
        return f"{EMOJI[self.status]} {self.label}"

    @property
    def facts(self) -> str:
        """``operational · 230 ms · your key``: how /fallback ranks it."""
        parts = [self.status.label.lower()]
        if self.latency_ms is not None:
            parts.append(f"{self.latency_ms:.0f} ms")
        if self.has_key:
            parts.append("🔑 your key")
        return " · ".join(parts)


@dataclass(frozen=True, slots=True)
class ProviderRow:
    """One provider at a glance."""

    id: str
    name: str
    status: Status
    components: tuple[ComponentState, ...]
    incident: Incident | None
    since: datetime | None
    checked_at: datetime | None
    latency_ms: float | None
    detail: str | None

    @property
    def confirmed(self) -> bool:
        return any(c.confirmed for c in self.components)

    @property
    def status_text(self) -> str:
        """``major outage (suspected)``: the status, and who says so when it is an outage."""
        text = self.status.label.lower()
        if self.status.is_outage:
            text += " (confirmed)" if self.confirmed else " (suspected)"
        return text

    def outage_for(self, now: datetime) -> str | None:
        """How long the current outage has lasted (``None`` when there is none)."""
        if not self.status.is_outage or self.since is None:
            return None
        return humanize((now - self.since).total_seconds())


def provider_row(provider: ProviderConfig, states: Mapping[str, ComponentState]) -> ProviderRow:
    components = tuple(
        sorted(
            (s for s in states.values() if s.provider == provider.id),
            key=lambda s: s.display_name,
        )
    )
    status = (
        provider_status_of((c.status for c in components), components)
        if components
        else Status.UNKNOWN
    )
    incidents = [c.incident for c in components if c.incident and not c.incident.resolved]
    latencies = [c.latency_ms for c in components if c.latency_ms is not None]
    not_ok = [c for c in components if c.status == status] or [
        c for c in components if c.status.is_outage
    ]
    checked = [c.checked_at for c in components if c.checked_at]
    details = [c.detail for c in not_ok if c.detail]
    return ProviderRow(
        id=provider.id,
        name=provider.name,
        status=status,
        components=components,
        incident=incidents[0] if incidents else None,
        since=min((c.since for c in not_ok), default=None),
        checked_at=max(checked, default=None),
        latency_ms=min(latencies, default=None),
        detail=details[0] if details else None,
    )


def provider_rows(config: TocsinConfig, states: Mapping[str, ComponentState]) -> list[ProviderRow]:
    return [provider_row(p, states) for p in config.providers]


def fallback_options(
    config: TocsinConfig,
    states: Mapping[str, ComponentState],
    provider_id: str,
    *,
    probed: Collection[str] = (),
) -> list[FallbackOption]:
    """The provider's fallback group, best first: by current state, then probe latency.

    ``probed`` names the providers the team has keys for (a configured, enabled probe).
    """
    provider = config.provider(provider_id)
    if provider is None:
        return []
    options = []
    for fallback_id in provider.fallbacks:
        other = config.provider(fallback_id)
        row = provider_row(other, states) if other else None
        options.append(
            FallbackOption(
                provider=fallback_id,
                name=other.name if other else fallback_id,
                status=row.status if row else Status.UNKNOWN,
                latency_ms=row.latency_ms if row else None,
                has_key=fallback_id in probed,
                litellm_model=other.litellm_model if other else None,
                openrouter_model=other.openrouter_model if other else None,
            )
        )
    ranked = sorted(
        options,
        key=lambda o: (
            _PREFERENCE[o.status],
            o.latency_ms is None,
            o.latency_ms or 0.0,
            not o.has_key,
        ),
    )
    return sibling_models(provider, states, probed) + ranked


def sibling_models(
    provider: ProviderConfig, states: Mapping[str, ComponentState], probed: Collection[str]
) -> list[FallbackOption]:
    """When some of a provider's probed models are down, its models that still answer come
    first: switching model is the smallest change an app can make (same key, same SDK)."""
    models = [s for s in states.values() if s.provider == provider.id and s.model]
    if not any(s.status.is_outage for s in models):
        return []
    prefix = provider.litellm_model.split("/", 1)[0] if provider.litellm_model else None
    answering = [s for s in models if s.status in (Status.OPERATIONAL, Status.DEGRADED)]
    return [
        FallbackOption(
            provider=provider.id,
            name=f"{s.display_name} ({provider.name})",
            status=s.status,
            latency_ms=s.latency_p50_ms or s.latency_ms,
            has_key=provider.id in probed,
            litellm_model=f"{prefix}/{s.model}" if prefix else None,
            model=s.model,
        )
        for s in sorted(answering, key=lambda s: (_PREFERENCE[s.status], s.latency_ms or 0.0))
    ]


def uptime(
    changes: Sequence[tuple[datetime, Status]], current: Status, since: datetime, now: datetime
) -> float | None:
    """Share of ``[since, now]`` spent up (operational or in maintenance), from the recorded
    status changes. Time in ``unknown``, or before the first record, is not counted at all;
    ``None`` when nothing in the window was measured."""
    ordered = sorted(changes, key=lambda change: change[0])
    prior = [status for at, status in ordered if at <= since]
    inside = [(at, status) for at, status in ordered if since < at <= now]
    if prior:
        cursor, status = since, prior[-1]
    elif inside:
        (cursor, status), inside = inside[0], inside[1:]
    else:
        cursor, status = since, current
    up = measured = 0.0
    for at, next_status in [*inside, (now, current)]:
        span = max(0.0, (at - cursor).total_seconds())
        if status is not Status.UNKNOWN:
            measured += span
            if status in (Status.OPERATIONAL, Status.MAINTENANCE):
                up += span
        cursor, status = at, next_status
    return up / measured if measured > 0 else None
