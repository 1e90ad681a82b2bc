"""Maintenance ahead: a notice when a watched provider's page schedules maintenance of a
watched component, and one ``watch.maintenance_lead`` before it starts, each once per window.

:func:`upcoming` and :func:`decide` are the pure decision: which planned windows matter, and
which notice one owes at ``now`` given what was already told. :class:`MaintenanceAhead` keeps
the marks of what was told in the store and appends the events; the watcher calls
:meth:`MaintenanceAhead.after_read` after each read of a page. Once per window, across restarts
and replicas: only the leader reads pages; the mark ``maint:{kind}:{provider}:{id}:{start}`` is
read before the append and written after it; and the event id is derived from the window, so a
second append (a crash between append and mark) is delivered once (the dispatcher's ``sent``
marks). A window moved to another start is a new window. Once it starts, the maintenance shows
as the components' ``maintenance`` status, as any open maintenance does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from bot.logs import get_logger
from bot.models import Event, EventIncident, Status, utcnow
from bot.outside import clip
from bot.sources.reading import PlannedWindow
from bot.sources.source import PageSource
from bot.store import Store, StoreUnavailable

log = get_logger("tocsin.maintenance")

Kind = Literal["maintenance_scheduled", "maintenance_soon"]
#: Windows further ahead than this are not announced yet; at most this many per page and read.
HORIZON = timedelta(days=60)
PER_READ = 20
#: A mark outlives its window's start by this much (then nothing can owe a notice for it).
MARK_AFTER = 7 * 86400.0
#: What a window's notice names: its watched components as (id, name); empty for all.
Named = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Due:
    """A notice a window owes now."""

    kind: Kind
    window: PlannedWindow
    components: Named
    #: A "soon" for a window never announced before (first seen inside the lead).
    first: bool = False


def watched_part(window: PlannedWindow, watched: Sequence[str] | None) -> Named | None:
    """The watched components ``window`` names (``()``: it names none, so all); ``None`` when
    it names only components nobody watches."""
    if not window.components or watched is None:
        return window.components
    mine = tuple(c for c in window.components if c[0] in watched)
    return mine or None


def upcoming(
    windows: Iterable[PlannedWindow],
    watched: Sequence[str] | None,
    now: datetime,
    *,
    horizon: timedelta = HORIZON,
    limit: int = PER_READ,
) -> list[tuple[PlannedWindow, Named]]:
    """The windows worth a notice: not started, starting within ``horizon``, naming a watched
    component; soonest first, at most ``limit``."""
    found = []
    for window in windows:
        named = watched_part(window, watched)
        if named is not None and now < window.scheduled_for <= now + horizon:
            found.append((window, named))
    found.sort(key=lambda pair: pair[0].scheduled_for)
    return found[:limit]


def decide(
    start: datetime, now: datetime, lead: timedelta, *, told_scheduled: bool, told_soon: bool
) -> tuple[Kind, bool] | None:
    """The notice a window starting at ``start`` owes at ``now`` (and whether it is the first
    about it), or ``None``. Inside the lead only "soon" is owed: a window first seen there gets
    that one notice, not two."""
    if now >= start:
        return None  # started (or late): the page's maintenance status tells it now
    if now >= start - lead:
        return None if told_soon else ("maintenance_soon", not told_scheduled)
    return None if told_scheduled else ("maintenance_scheduled", False)


def mark_name(kind: Kind, provider: str, window: PlannedWindow) -> str:
    return f"maint:{kind}:{provider}:{window.id}:{_stamp(window.scheduled_for)}"


def event_id(provider: str, window: PlannedWindow, kind: Kind) -> str:
    """Deterministic: appending one notice twice is delivered once."""
    key = f"{provider}|{window.id}|{_stamp(window.scheduled_for)}|{kind}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def event_for(
    due: Due, *, provider: str, provider_name: str | None, source: str, now: datetime, lead: float
) -> Event:
    window = due.window
    names = ", ".join(name for _, name in due.components)
    return Event(
        id=event_id(provider, window, due.kind),
        type=due.kind,
        provider=provider,
        provider_name=provider_name,
        component=due.components[0][0] if len(due.components) == 1 else None,
        component_name=clip(names, 300) or None,
        at=now,
        source=source,
        incident=EventIncident(
            id=window.id,
            title=window.title,
            url=window.url,
            status="scheduled",
            update=window.update,
            impact=Status.MAINTENANCE,
            maintenance=True,
            scheduled_for=window.scheduled_for,
            scheduled_until=window.scheduled_until,
        ),
        detail=f"Just scheduled, less than {round(lead / 60)} min ahead." if due.first else None,
    )


class MaintenanceAhead:
    """Appends the maintenance-ahead notices each read of a watched provider's page owes."""

    def __init__(
        self,
        store: Store,
        providers: Mapping[str, str],
        *,
        lead: float = 3600.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        #: Provider id → name: only these providers' pages are announced (not upstreams').
        self.providers = dict(providers)
        self.lead = lead
        self.clock = clock

    async def after_read(self, source: PageSource) -> list[Event]:
        """Append what ``source``'s last read owes; the events appended. A store that is away
        costs this round (the next read tries again), never the page's observations."""
        if source.provider not in self.providers or not source.planned:
            return []
        now = self.clock()
        appended: list[Event] = []
        try:
            for window, named in upcoming(source.planned, source.watched, now):
                due = await self._due(source.provider, window, named, now)
                if due is None:
                    continue
                event = event_for(
                    due,
                    provider=source.provider,
                    provider_name=self.providers[source.provider],
                    source=source.id,
                    now=now,
                    lead=self.lead,
                )
                await self.store.append(event)
                ttl = (window.scheduled_for - now).total_seconds() + MARK_AFTER
                await self.store.set_value(mark_name(due.kind, source.provider, window), "1", ttl)
                log.info("maintenance ahead", provider=source.provider, kind=due.kind, id=window.id)
                appended.append(event)
        except StoreUnavailable as exc:
            log.warning("store unreachable; maintenance notices wait", error=str(exc))
        return appended

    async def _due(
        self, provider: str, window: PlannedWindow, named: Named, now: datetime
    ) -> Due | None:
        start = window.scheduled_for
        lead = timedelta(seconds=self.lead)
        told_soon = now >= start - lead and await self._told("maintenance_soon", provider, window)
        told_scheduled = await self._told("maintenance_scheduled", provider, window)
        decided = decide(start, now, lead, told_scheduled=told_scheduled, told_soon=told_soon)
        return Due(decided[0], window, named, decided[1]) if decided else None

    async def _told(self, kind: Kind, provider: str, window: PlannedWindow) -> bool:
        return await self.store.get_value(mark_name(kind, provider, window)) is not None


def _stamp(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()
