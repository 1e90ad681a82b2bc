"""The nouns every part of tocsin speaks: statuses, observations, incidents, states and events.

Everything persisted (component state, events) is a pydantic model so its JSON shape is defined
in one place; the event JSON is a public contract (DESIGN.md, schema version ``v``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

EVENT_SCHEMA_VERSION = 1


class Status(StrEnum):
    """A component's health. The first four are ordered by severity."""

    OPERATIONAL = "operational"
    DEGRADED = "degraded"
    PARTIAL_OUTAGE = "partial_outage"
    MAJOR_OUTAGE = "major_outage"
    MAINTENANCE = "maintenance"
    UNKNOWN = "unknown"

    @property
    def severity(self) -> int:
        """Outage severity: 0 for operational, maintenance and unknown, 1..3 for outages."""
        return _SEVERITY[self]

    @property
    def rank(self) -> int:
        """Order used to pick the worst of several statuses (unknown beats green: never green
        when we do not know)."""
        return _RANK[self]

    @property
    def is_outage(self) -> bool:
        return self.severity > 0

    def reaches(self, minimum: Status) -> bool:
        """Whether a notice about this status passes a ``min_status`` filter.

        Maintenance counts as ``degraded`` for routing: teams who want degraded notices also
        want to hear about planned work. ``unknown`` never reaches (it is an admin matter).
        """
        if self is Status.UNKNOWN:
            return False
        own = Status.DEGRADED.severity if self is Status.MAINTENANCE else self.severity
        return own >= minimum.severity and (own > 0 or minimum.severity == 0)

    @property
    def label(self) -> str:
        return _LABELS[self]

    @property
    def emoji(self) -> str:
        return EMOJI[self]


_SEVERITY = {
    Status.OPERATIONAL: 0,
    Status.MAINTENANCE: 0,
    Status.UNKNOWN: 0,
    Status.DEGRADED: 1,
    Status.PARTIAL_OUTAGE: 2,
    Status.MAJOR_OUTAGE: 3,
}
_RANK = {
    Status.OPERATIONAL: 0,
    Status.UNKNOWN: 1,
    Status.MAINTENANCE: 2,
    Status.DEGRADED: 3,
    Status.PARTIAL_OUTAGE: 4,
    Status.MAJOR_OUTAGE: 5,
}
_LABELS = {
    Status.OPERATIONAL: "Operational",
    Status.DEGRADED: "Degraded",
    Status.PARTIAL_OUTAGE: "Partial outage",
    Status.MAJOR_OUTAGE: "Major outage",
    Status.MAINTENANCE: "Maintenance",
    Status.UNKNOWN: "Unknown",
}

#: How notices, answers and the console mark a status at a glance.
EMOJI = {
    Status.OPERATIONAL: "✅",
    Status.DEGRADED: "🟡",
    Status.PARTIAL_OUTAGE: "🟠",
    Status.MAJOR_OUTAGE: "🔴",
    Status.MAINTENANCE: "🔧",
    Status.UNKNOWN: "❔",
}


#: Outage-severity statuses, mildest first (what ``min_status`` and ``--fail-on`` accept).
SEVERITY_ORDER = (
    Status.OPERATIONAL,
    Status.DEGRADED,
    Status.PARTIAL_OUTAGE,
    Status.MAJOR_OUTAGE,
)


def worst(statuses: Iterable[Status]) -> Status:
    """The worst of several statuses by :attr:`Status.rank`; operational when given none."""
    return max(statuses, key=lambda s: s.rank, default=Status.OPERATIONAL)


def provider_status_of(statuses: Iterable[Status], states: Iterable[ComponentState]) -> Status:
    """A provider's status from its components': the worst, except that a provider whose
    probed models partly answer is at most a partial outage (one model down is not the whole
    provider down). ``statuses`` are the components' (what the caller counts as known)."""
    status = worst(statuses)
    if status is not Status.MAJOR_OUTAGE:
        return status
    states = list(states)
    down = [s for s in states if s.status is Status.MAJOR_OUTAGE]
    answering = [s for s in states if s.model and s.status in (Status.OPERATIONAL, Status.DEGRADED)]
    return Status.PARTIAL_OUTAGE if answering and all(s.model for s in down) else status


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


class SourceKind(StrEnum):
    """Whether an observation comes from a status page (authoritative, applies at once), a
    synthetic probe (our own evidence, debounced by thresholds), or the apps' own reported
    calls (``traffic``: debounced like a probe, never confirming; see bot/sources/traffic.py)."""

    PAGE = "page"
    PROBE = "probe"
    TRAFFIC = "traffic"

    @property
    def debounced(self) -> bool:
        """Our own evidence (probes, apps' traffic): needs thresholds, never confirms."""
        return self is not SourceKind.PAGE


class ProbeError(StrEnum):
    """Why a probe did not get a healthy answer; decides how the tracker treats it."""

    NETWORK = "network"  # connection refused/reset, DNS: could be our own network
    TIMEOUT = "timeout"  # no answer in time: could be our own network too
    HTTP = "http"  # 5xx/529: the provider answered, badly; proves our network works
    AUTH = "auth"  # 401/403: our key is wrong, a configuration alert, never an outage
    CONFIG = "config"  # 404, redirects, other 4xx: the probe itself is misconfigured
    RATE_LIMITED = "rate_limited"  # 429: up, but we are throttled; never an outage
    #: A 200 that is no completion (an error object, empty, not JSON, no stop reason) or a
    #: stream cut before its end event: the provider answered, badly (a failure).
    ANSWER = "answer"
    #: 404 / ``model_not_found`` / a retired model: a configuration alert naming the model.
    MODEL = "model"

    @property
    def is_network(self) -> bool:
        return self in (ProbeError.NETWORK, ProbeError.TIMEOUT)

    @property
    def is_config(self) -> bool:
        return self in (ProbeError.AUTH, ProbeError.CONFIG, ProbeError.MODEL)


class IncidentUpdate(BaseModel):
    """One post in a status page incident's timeline."""

    model_config = ConfigDict(frozen=True)

    id: str
    status: str
    body: str = ""
    at: datetime | None = None


class Incident(BaseModel):
    """A status page incident (or maintenance) as far as tocsin needs it.

    ``status`` is the page's own lifecycle word (investigating, identified, monitoring,
    resolved, scheduled, in_progress, completed, ...); ``update`` is the newest update's text.
    """

    model_config = ConfigDict(frozen=True)

    id: str
    title: str
    url: str | None = None
    status: str = "investigating"
    impact: Status | None = None
    update: str = ""
    update_id: str | None = None
    updated_at: datetime | None = None
    started_at: datetime | None = None
    maintenance: bool = False

    @property
    def resolved(self) -> bool:
        return self.status in RESOLVED_INCIDENT_STATUSES

    @property
    def revision(self) -> tuple[str, str]:
        """What identifies this exact version of the narrative (a new update changes it)."""
        return (self.id, self.update_id or self.status)


RESOLVED_INCIDENT_STATUSES = frozenset({"resolved", "completed", "postmortem"})


@dataclass(frozen=True, slots=True)
class Observation:
    """One source's reading of one component at one moment."""

    provider: str
    component: str
    status: Status
    source: str  # the source's id, e.g. "anthropic:statuspage"
    kind: SourceKind
    at: datetime = field(default_factory=utcnow)
    component_name: str | None = None
    latency_ms: float | None = None
    incident: Incident | None = None
    detail: str | None = None
    error: ProbeError | None = None
    #: A page that now redirects to another host: (the URL asked for, where it led).
    moved: tuple[str, str] | None = None
    #: The model an inference probe called (its component is that model).
    model: str | None = None
    #: The model's latency percentiles over its recent calls (inference probes).
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None

    @property
    def key(self) -> str:
        return state_key(self.provider, self.component)


def state_key(provider: str, component: str) -> str:
    return f"{provider}/{component}"


class ComponentState(BaseModel):
    """The current state of one (provider, component): what the ``state`` hash holds."""

    provider: str
    component: str
    name: str | None = None
    status: Status = Status.UNKNOWN
    confirmed: bool = False
    since: datetime = Field(default_factory=utcnow)
    checked_at: datetime | None = None
    #: What the status page last said and what the (debounced) probe last concluded.
    page_status: Status | None = None
    probe_status: Status | None = None
    #: False while the status page cannot be read; its last report stands meanwhile.
    page_readable: bool = True
    #: The last status we were sure of (and whether the page confirmed it); unknown never
    #: erases them.
    last_known: Status = Status.UNKNOWN
    last_confirmed: bool = False
    incident: Incident | None = None
    latency_ms: float | None = None
    #: An inference probe's model (this component is that model) and its latency
    #: percentiles over the recent calls.
    model: str | None = None
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    detail: str | None = None
    flapping: bool = False
    #: The provider-level outage episode this component belongs to (threads hang off it).
    episode: str | None = None
    episode_started: datetime | None = None

    @property
    def key(self) -> str:
        return state_key(self.provider, self.component)

    @property
    def display_name(self) -> str:
        return self.name or self.component


EventType = Literal[
    "state_changed",
    "incident_update",
    "flapping",
    "watcher_health",
    "config_alert",
    "drill",
    "escalation",
    # (issue 15) chat operations, see bot/chatops/
    "acknowledged",
    "silenced",
    "unsilenced",
    "subscribed",
    "unsubscribed",
    "reminder",
    # (issue 15) maintenance ahead, see bot/maintenance_ahead.py
    "maintenance_scheduled",
    "maintenance_soon",
]
#: Events that say what a person did from the chat (or what their silence did by expiring).
CONTROL_EVENTS = frozenset(
    {"acknowledged", "silenced", "unsilenced", "subscribed", "unsubscribed", "reminder"}
)
MAINTENANCE_AHEAD_EVENTS = frozenset({"maintenance_scheduled", "maintenance_soon"})
EscalationAction = Literal["trigger", "repeat", "resolve", "acknowledge"]
Audience = Literal["all", "admins"]


class EventIncident(BaseModel):
    """The incident block of the event JSON (v1)."""

    id: str
    title: str
    url: str | None = None
    status: str
    update: str = ""
    update_id: str | None = None
    impact: Status | None = None
    maintenance: bool = False
    #: Whether ``update`` is news in this event (not already told in an earlier one).
    new_update: bool = True
    #: (issue 15) A scheduled maintenance's window, as the page gives it.
    scheduled_for: datetime | None = None
    scheduled_until: datetime | None = None

    @classmethod
    def of(cls, incident: Incident, *, new_update: bool = True) -> EventIncident:
        return cls(
            id=incident.id,
            title=incident.title,
            url=incident.url,
            status=incident.status,
            update=incident.update,
            update_id=incident.update_id,
            impact=incident.impact,
            maintenance=incident.maintenance,
            new_update=new_update,
        )


class EventEscalation(BaseModel):
    """The escalation block of an ``escalation`` event: a policy paged (or resolved) someone."""

    #: The policy's id (config ``escalation[].id``) and how it reaches people.
    policy: str
    kind: str
    action: EscalationAction
    #: Stable per provider episode: PagerDuty's ``dedup_key``, Opsgenie's ``alias``.
    dedup_key: str
    #: Who gets woken up, in words (the policy's ``name``, else the kind).
    label: str
    #: Since when the provider has been at or above the policy's ``min_status``.
    since: datetime
    #: The policy's threshold and delay, for the notice's wording.
    min_status: Status
    after: float = 0.0
    #: Repeats so far (0 for the first trigger).
    count: int = 0


class EventControl(BaseModel):
    """(issue 15) What a person did from the chat: the block of ``acknowledged``,
    ``silenced``, ``unsilenced``, ``subscribed``, ``unsubscribed`` and ``reminder`` events.
    ``by_name`` is what the platform calls them (outside text: escaped where shown)."""

    platform: str = ""
    #: The target (``slack:C0123``) it applies to; empty for the whole episode (an ack).
    target: str = ""
    by: str = ""
    by_name: str = ""
    #: A silence's kind (``1h``, ``4h``, ``resolved``) and end; a subscription's threshold.
    mode: str = ""
    until: datetime | None = None
    min_status: Status | None = None
    #: Why a silence ended (``unsilenced`` by a person, ``expired``, ``resolved``).
    reason: str = ""
    #: A reminder's count (1 for the first "still down").
    count: int = 0


class EventCause(BaseModel):
    """The likely upstream cause of an outage: an open incident on the page of a cloud or CDN
    the provider stands on (the catalog's ``upstreams``). Notices with the same ``group``
    are grouped per channel into one root (``grouping`` in the config)."""

    #: The upstream's id and name (``cloudflare``, "Cloudflare").
    upstream: str
    name: str
    #: The upstream incident's title and link.
    incident: str
    url: str | None = None
    #: What groups notices together: ``{upstream}:{incident id}``.
    group: str


class Event(BaseModel):
    """One entry of the ``events`` stream (schema v1, see DESIGN.md).

    The contract fields are ``v, id, type, provider, component, from, to, at, source,
    confirmed, incident, detail``; the rest are additions the handlers use (the episode that
    threads hang off, the provider-wide status after this event, who should hear it).
    """

    model_config = ConfigDict(populate_by_name=True)

    v: int = EVENT_SCHEMA_VERSION
    id: str = Field(default_factory=new_id)
    type: EventType
    provider: str
    component: str | None = None
    from_: Status | None = Field(default=None, alias="from")
    to: Status | None = None
    at: datetime = Field(default_factory=utcnow)
    source: str | None = None
    confirmed: bool = False
    incident: EventIncident | None = None
    detail: str | None = None
    # additions
    provider_name: str | None = None
    component_name: str | None = None
    episode: str | None = None
    episode_started: datetime | None = None
    provider_status: Status | None = None
    audience: Audience = "all"
    latency_ms: float | None = None
    escalation: EventEscalation | None = None
    #: The likely upstream cause (an addition of issue 13, see DESIGN.md "Upstream causes").
    cause: EventCause | None = None
    #: (issue 15) Who did what from the chat (see :class:`EventControl`).
    control: EventControl | None = None

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True)

    @classmethod
    def from_json(cls, raw: str | bytes) -> Event:
        return cls.model_validate_json(raw)

    @property
    def episode_closed(self) -> bool:
        """Whether this event ends its episode (the provider is fully back)."""
        return self.episode is not None and self.provider_status is Status.OPERATIONAL


@dataclass(frozen=True, slots=True)
class StateUpdate:
    """What the tracker hands the store: a new state, and the event to append (if any)."""

    state: ComponentState
    event: Event | None = None
    #: Whether the status itself changed (for uptime history).
    status_changed: bool = False
