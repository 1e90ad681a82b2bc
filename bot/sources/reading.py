"""What a page source reads from one response, and each watched component's status from it.

A page source's ``read`` returns a :class:`PageReading` (components and incidents, before
watched-component filtering); :func:`derive_component` turns it into one component's status
and the incident to tell, the same way for every platform. Every incident link leaves through
:func:`drop_unsafe_links`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from bot.models import Incident, Status, worst
from bot.outside import one_line, safe_url, why_not_url

#: The pseudo component used when a page offers no components to name.
PAGE_COMPONENT = "page"


@dataclass(frozen=True, slots=True)
class ComponentReading:
    id: str
    name: str
    status: Status
    #: Whether the page gives this status as the component's own. ``False`` where a platform
    #: lists components bare (incident.io, Flashcat) or builds them from incidents (Google
    #: Cloud): there the incidents' impacts decide.
    stated: bool = True


@dataclass(frozen=True, slots=True)
class IncidentReading:
    """An open (or just resolved) incident or maintenance and the component ids it names.

    ``components`` empty means the page did not say which components are affected.
    ``status`` is what the incident does to the components it names while it is open (the
    impact, or maintenance) where the page gives them no status of their own (see
    :func:`derive_component`); ``None`` leaves the components' own statuses alone.
    """

    incident: Incident
    components: frozenset[str] = frozenset()
    status: Status | None = None


@dataclass(slots=True)
class PageReading:
    """A page source's parse of one response, before watched-component filtering."""

    components: dict[str, ComponentReading] = field(default_factory=dict)
    incidents: list[IncidentReading] = field(default_factory=list)
    #: Set when the page gives no per-component statuses (feeds): incidents alone decide.
    incidents_only: bool = False
    #: Maintenance planned and not started yet (see :mod:`bot.maintenance_ahead`).
    planned: list[PlannedWindow] = field(default_factory=list)


#: At most this many planned windows are kept from one read of a page.
PLANNED_KEPT = 50


@dataclass(frozen=True, slots=True)
class PlannedWindow:
    """A maintenance the page announces and that has not started: when, and on what.

    ``components`` are (id, name) pairs; empty means the page did not say (all of them).
    Text is already one bounded line and ``url`` a safe http(s) link or ``None``.
    """

    id: str
    title: str
    scheduled_for: datetime
    scheduled_until: datetime | None = None
    components: tuple[tuple[str, str], ...] = ()
    url: str | None = None
    update: str = ""


def drop_unsafe_links(reading: PageReading) -> dict[str, str]:
    """Every incident leaves a source through here: a link that is not a plain http(s) URL
    (``javascript:``, ``data:``, a line break inside) is dropped, never shown as a link.

    Returns a diagnostic per incident id whose link was dropped: it goes into the detail of
    the observations carrying the incident (shown by ``tocsin check``, ``tocsin status`` and
    the dashboard; a detail is not a notice, so it cannot spam anyone).
    """
    dropped: dict[str, str] = {}
    for index, r in enumerate(reading.incidents):
        url = r.incident.url
        if url is None or safe_url(url) is not None:
            continue
        dropped[r.incident.id] = (
            f"incident {one_line(r.incident.id, 40)!r}: link dropped ({why_not_url(url)})"
        )
        incident = r.incident.model_copy(update={"url": None})
        reading.incidents[index] = replace(r, incident=incident)
    return dropped


def derive_component(
    component: str, reading: PageReading
) -> tuple[Status, Incident | None, str | None]:
    """One component's status, the incident to attach, and a diagnostic.

    A component the page lists with a status of its own keeps that status: the provider's word
    on the component wins over an incident's impact (the incident is still attached, so its
    story is told). An open incident's impact applies only where the page gives no status of
    its own: feeds (``incidents_only``), the ``page`` pseudo component, components a platform
    lists bare (``stated=False``), and components an open incident names that the page's list
    lacks. An open maintenance that names a green component turns it into ``maintenance``
    either way: platforms rarely set a component's status for planned work, and maintenance is
    never an outage. A page indicator never enters into it: a page may say ``minor`` while the
    component we watch is fine.
    """
    own = reading.components.get(component)
    relevant = [
        r
        for r in reading.incidents
        if component in r.components
        or (not r.components and (reading.incidents_only or component == PAGE_COMPONENT))
    ]
    open_ = [r for r in relevant if not r.incident.resolved]
    if own is None and not reading.incidents_only and not _named_by(component, open_):
        return (
            Status.UNKNOWN,
            None,
            f"component {component!r} is not on the page any more (renamed or removed?)",
        )
    status = own.status if own else Status.OPERATIONAL
    impacts = [r.status for r in open_ if r.status is not None and r.status.is_outage]
    if impacts and not (own and own.stated) and status is Status.OPERATIONAL:
        status = worst(impacts)
    elif status is Status.OPERATIONAL and any(r.status is Status.MAINTENANCE for r in open_):
        status = Status.MAINTENANCE
    incident = _most_relevant(open_ or relevant)
    return status, incident, None


def _named_by(component: str, readings: Sequence[IncidentReading]) -> bool:
    """Whether one of ``readings`` names ``component`` and does something to it."""
    return any(component in r.components and r.status is not None for r in readings)


def state_status(reading: PageReading, component_id: str, status: Status) -> None:
    """Record the page's own word on a listed component's status now.

    An open incident's per-component status (incident.io's ``current_status``, Datadog's
    ``componentsAffected``, Better Stack's ``affected_resources``) is the page speaking for that
    component, as its component list does; the worst of the page's words wins. Components the
    page does not list, and words we cannot read, are left alone.
    """
    known = reading.components.get(component_id)
    if known is None or status is Status.UNKNOWN:
        return
    if known.stated:
        status = worst([known.status, status])
    reading.components[component_id] = replace(known, status=status, stated=True)


def _most_relevant(readings: Sequence[IncidentReading]) -> Incident | None:
    """Prefer real incidents over maintenances, then the most recently updated."""
    if not readings:
        return None

    def order(r: IncidentReading) -> tuple[int, float]:
        stamp = r.incident.updated_at or r.incident.started_at
        return (0 if r.incident.maintenance else 1, stamp.timestamp() if stamp else 0.0)

    return max(readings, key=order).incident
