"""Ordering: a later event of an episode waits for the one that opens the episode's thread.

Replicas share the stream, not an order: the event that opens the episode's thread may still
be with another replica (a dead one's until it is claimed), and routing a later event without
that thread would post a second root, or drop the recovery as noise. The wait never blocks a
target's queue (the dispatcher puts the job back a moment later): the earlier event may be
queued behind it, claimed by this very replica.
"""

from __future__ import annotations

from bot.logs import get_logger
from bot.notifier import Target
from bot.pipeline.inflight import InFlight, Job
from bot.pipeline.patience import Patience
from bot.store import Store

log = get_logger("tocsin.dispatcher")


class Ordering:
    def __init__(self, store: Store, patience: Patience, inflight: InFlight, group: str) -> None:
        self.store = store
        self.patience = patience
        self.inflight = inflight
        self.group = group

    async def waits(self, target: Target, job: Job) -> bool:
        """Must this event wait for an earlier one of its episode?"""
        event = job.event
        if (
            event.episode is None
            or event.episode_started == event.at  # it opened the episode
            or event.audience != "all"
            or event.type in ("drill", "escalation")
            or target.route.policy is not None
        ):
            return False
        try:
            if await self.patience.run(self.store.get_thread, event.episode, target.key):
                return False
            earlier = await self.patience.run(
                self.store.pending_before, self.group, job.flight.entry.id, self.inflight.limit
            )
        except Exception:  # a bug here must not stop the target's worker
            log.exception("cannot tell whether an earlier notice is pending", target=target.label)
            return False
        for entry in earlier or []:
            if entry.event is None or entry.event.episode != event.episode:
                continue
            if not self.inflight.done_here(entry.id, target.key):
                log.debug("waiting for an earlier notice", event_id=event.id, entry=entry.id)
                return True
        return False
