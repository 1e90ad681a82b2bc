"""An outage as the watcher writes it (the state and its event, together), for the tests and
benchmarks that feed the dispatcher directly."""

from __future__ import annotations

import uuid

from bot.models import ComponentState, Event, EventCause, StateUpdate, Status, utcnow


def outage(
    provider: str,
    name: str,
    cause: EventCause | None = None,
    status: Status = Status.MAJOR_OUTAGE,
) -> StateUpdate:
    """``provider``'s API component down (confirmed by its page), opening a new episode."""
    at = utcnow()
    episode = f"{provider}:{uuid.uuid4().hex[:8]}"
    state = ComponentState(
        provider=provider,
        component="api",
        name="API",
        status=status,
        confirmed=True,
        since=at,
        last_known=status,
        episode=episode,
        episode_started=at,
    )
    event = Event(
        type="state_changed",
        provider=provider,
        component="api",
        from_=Status.OPERATIONAL,
        to=status,
        at=at,
        source=f"{provider}:statuspage",
        confirmed=True,
        provider_name=name,
        component_name="API",
        episode=episode,
        episode_started=at,
        provider_status=status,
        cause=cause,
    )
    return StateUpdate(state, event, status_changed=True)
