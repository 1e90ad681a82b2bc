"""The ``Source`` protocol, and the base every status-page source shares.

A source turns one HTTP round into observations. Status pages differ only in where their JSON
lives and how it is shaped, so each page source is one file with a ``read`` that fetches
(:mod:`bot.sources.fetch`), parses (:mod:`bot.sources.parsing`) and returns a
:class:`~bot.sources.reading.PageReading`; turning that into observations of the watched
components (component status, incident impact, maintenance) happens once, here and in
:mod:`bot.sources.reading`. A :class:`~bot.sources.fetch.SourceError` becomes ``unknown``
observations carrying the diagnostic: never green, never a crash. Incidents a source saw open
are remembered by :class:`~bot.sources.incident_memory.IncidentMemory`, so that each one's end
is reported exactly once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, ClassVar, Protocol, runtime_checkable

import httpx

from bot.models import Observation, SourceKind, Status, utcnow
from bot.sources.fetch import FetchLimits, SourceError, fetch_round
from bot.sources.incident_memory import IncidentMemory
from bot.sources.reading import (
    PAGE_COMPONENT,
    PageReading,
    PlannedWindow,
    derive_component,
    drop_unsafe_links,
)
from bot.sources.redirects import Resolver, system_resolver


@runtime_checkable
class Source(Protocol):
    """Anything the watcher can schedule: one round of checks yields observations."""

    id: str
    provider: str
    kind: SourceKind
    interval: float

    async def check(self, client: httpx.AsyncClient) -> list[Observation]:
        """Run one round. Must not raise for bad input: return ``unknown`` observations."""
        ...


class PageSource(ABC):
    """Shared behaviour of status-page sources; subclasses implement :meth:`read`."""

    kind: SourceKind = SourceKind.PAGE
    kind_name: ClassVar[str]
    #: The byte cap never goes below this for the platform (feeds that are whole histories).
    body_floor: ClassVar[int] = 0

    def __init__(
        self,
        provider: str,
        url: str,
        *,
        components: Sequence[str] | None = None,
        interval: float = 60.0,
        limits: FetchLimits | None = None,
        options: Mapping[str, Any] | None = None,
        names: Mapping[str, str] | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        self.provider = provider
        self.url = url.rstrip("/")
        self.watched = list(components) if components else None
        self.interval = interval
        limits = limits or FetchLimits()
        if limits.max_bytes < self.body_floor:
            limits = FetchLimits(timeout=limits.timeout, max_bytes=self.body_floor)
        self.limits = limits
        self.options = dict(options or {})
        self.id = f"{provider}:{self.kind_name}"
        #: Component id → name: the config's until the page gives its own.
        self._names: dict[str, str] = dict(names or {})
        #: Incidents seen open: :meth:`read` passes its incidents through ``memory.settle``.
        self.memory = IncidentMemory()
        #: How the hosts of redirect targets are resolved (the system's DNS by default).
        self.resolver = resolver or system_resolver
        #: The planned maintenance the last read found (none after a failed read).
        self.planned: list[PlannedWindow] = []
        #: Bodies parsed, and reads that were not parsed again: a 304, or a body byte for
        #: byte the last one (kinds that keep their last parse; counted for tests and bench).
        self.parsed = 0
        self.not_modified = 0
        self.unchanged = 0

    @abstractmethod
    async def read(self, client: httpx.AsyncClient) -> PageReading:
        """Fetch and parse the page. Raise :class:`SourceError` for anything unexpected."""

    async def check(self, client: httpx.AsyncClient) -> list[Observation]:
        """One round: :meth:`read`'s fetches share a :func:`~bot.sources.fetch.fetch_round`,
        and a move to another host they followed is carried by every observation (the
        tracker tells it)."""
        with fetch_round(self.resolver) as round_:
            observations = await self._check(client)
        if not round_.moves:
            return observations
        return [replace(o, moved=round_.moves[0]) for o in observations]

    async def _check(self, client: httpx.AsyncClient) -> list[Observation]:
        self.planned = []
        try:
            reading = await self.read(client)
            observations = self.observe(reading)
            self.planned = reading.planned
            return observations
        except SourceError as exc:
            return self.unknown(str(exc))
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            return self.unknown(
                f"{self.url}: unexpected payload shape ({type(exc).__name__}: {exc})"
            )

    def unknown(self, diagnostic: str) -> list[Observation]:
        """Observations saying we cannot tell, for every component we know of."""
        known = self.watched or list(self._names) or [PAGE_COMPONENT]
        return [
            Observation(
                provider=self.provider,
                component=component,
                component_name=self._names.get(component),
                status=Status.UNKNOWN,
                source=self.id,
                kind=self.kind,
                detail=diagnostic,
            )
            for component in known
        ]

    def observe(self, reading: PageReading) -> list[Observation]:
        """Observations of the watched components (all, when none are configured)."""
        if not reading.components and not reading.incidents_only:
            raise SourceError(f"{self.url}: the page lists no components (did it move?)")
        dropped = drop_unsafe_links(reading)
        ids = self.watched or list(reading.components) or [PAGE_COMPONENT]
        now = utcnow()
        observations = []
        for component in ids:
            status, incident, detail = derive_component(component, reading)
            if incident is not None and incident.id in dropped:
                detail = "; ".join(filter(None, (detail, dropped[incident.id])))
            name = reading.components[component].name if component in reading.components else None
            if name:
                self._names[component] = name
            observations.append(
                Observation(
                    provider=self.provider,
                    component=component,
                    component_name=name or self._names.get(component),
                    status=status,
                    source=self.id,
                    kind=self.kind,
                    at=now,
                    incident=incident,
                    detail=detail,
                )
            )
        return observations
