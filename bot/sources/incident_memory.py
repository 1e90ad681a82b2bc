"""Incidents a source saw open, so that each one's end is reported exactly once."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import replace

from bot.models import Incident
from bot.sources.reading import IncidentReading

#: What a vanished incident's end says when nothing tells how it ended.
NO_LONGER_LISTED = "No longer listed on the status page."


class IncidentMemory:
    """Incidents a source saw open, so that each one's end is reported exactly once.

    Pages keep resolved incidents for weeks, or drop one the moment it ends. Passing old
    resolutions on would pin stale narratives to green components; a vanished one would never
    be told as over. So :meth:`settle`, once a round: open incidents pass; a resolved one
    passes only if we saw it open; one that vanished while open comes back once, resolved. A
    source that can look up how an incident ended asks :meth:`vanished` which ones to look up
    and hands the answers to :meth:`settle` as ``ended``. An end is always a new revision,
    even when the page added no update to say so.
    """

    def __init__(self) -> None:
        self._open: dict[str, tuple[Incident, frozenset[str]]] = {}

    def vanished(self, readings: Iterable[IncidentReading]) -> list[str]:
        """Ids of incidents seen open that ``readings`` no longer list (to look up their end)."""
        present = {r.incident.id for r in readings}
        return [incident_id for incident_id in self._open if incident_id not in present]

    def settle(
        self,
        readings: Iterable[IncidentReading],
        ended: Mapping[str, Incident] | None = None,
        *,
        watched: Collection[str] | None = None,
    ) -> list[IncidentReading]:
        """The readings to pass on this round, and remember the open ones for the next.

        A vanished incident comes back as ``ended`` has it when that version is resolved,
        else closed as no longer listed (``completed``, for a maintenance), on the components
        it had when open. With ``watched``, only incidents naming one of those components are
        remembered (for sources where a vanished incident costs a lookup).
        """
        readings = list(readings)
        ended = ended or {}
        out = [r for r in readings if not r.incident.resolved]
        out += [
            _news(r, self._open[r.incident.id][0])
            for r in readings
            if r.incident.resolved and r.incident.id in self._open
        ]
        for incident_id in self.vanished(readings):
            known, components = self._open[incident_id]
            end = ended.get(incident_id)
            incident = end if end is not None and end.resolved else _gone(known)
            out.append(_news(IncidentReading(incident, components), known))
        still_open: dict[str, tuple[Incident, frozenset[str]]] = {}
        for r in readings:
            if not r.incident.resolved:
                earlier = still_open.get(r.incident.id, (r.incident, frozenset()))[1]
                still_open[r.incident.id] = (r.incident, earlier | r.components)
        self._open = {
            incident_id: entry
            for incident_id, entry in still_open.items()
            if watched is None or not entry[1].isdisjoint(watched)
        }
        return out


def _news(reading: IncidentReading, known: Incident) -> IncidentReading:
    """The end must read as news even when the page added no update to say so."""
    if reading.incident.revision != known.revision:
        return reading
    update_id = f"{reading.incident.update_id}:{reading.incident.status}"
    return replace(reading, incident=reading.incident.model_copy(update={"update_id": update_id}))


def _gone(incident: Incident) -> Incident:
    """An incident that left the page without a trace of its end: call it over."""
    return incident.model_copy(
        update={
            "status": "completed" if incident.maintenance else "resolved",
            "update": NO_LONGER_LISTED,
            "update_id": f"{incident.update_id or incident.status}:gone",
        }
    )
