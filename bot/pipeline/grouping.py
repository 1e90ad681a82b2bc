"""Grouping: one story per upstream failure, per channel (Alertmanager's ``group_by`` and
``group_wait``).

When Cloudflare has an incident, three providers that stand on it go down within seconds; a
channel that hears all three should get one root that names the likely cause and lists them,
not three. The watcher attaches :class:`~bot.models.EventCause` to such events (``group`` is
``{upstream}:{incident id}``); this stage groups, per (group, target), the events that would
*open* a root there (:data:`~bot.notifier.Intent.OPEN`). Everything else passes untouched, at
once: an outage without an upstream incident is never slowed.

For one (group, target):

* the first event **claims** it (a lease, ``grouping:{group}:{target}``, held by the event's
  id: two replicas on one store agree on one leader, and a redelivery of the same event takes
  it again), waits ``group_wait``, then collects the **members**: the events of the stream with
  the same group, type ``state_changed``, that route to this target as an opening and are not
  muted. Two or more: one group root (:func:`bot.compose.compose_group_root`); the group's
  record (``kv:group:{group}:{target}``: the cause, the root's reference, the members) and its
  thread (``thread:group:{group}:{target}``) are written, then each member's episode thread
  is the group root (``"event"``: the member's id), so each member's own job finds itself
  delivered. One: its ordinary root (which names the cause as "Possibly related").
* an event that finds the group claimed waits (parked, see below) until the group's record
  exists (it is listed: reconciled, never posted twice) or the claim is free again. A claim
  lasts ``group_wait`` + grace and its holder renews it every third of that while it works
  (waiting, sending with retries), so a member waits as long as a live leader needs and at
  most that long after the leader died: then it takes the claim over and leads. Whoever
  leads posts the root *as the oldest member* (its event id in the message metadata), and
  asks the platform first (``find_sent``, as a redelivery) when that is not itself: a dead
  leader's root that got out before it was recorded is found, not posted twice.
* an event that finds the group's root posted without it (a late joiner) replies in the
  group's thread ("Also down: …"), is added to the record (under the claim, so two joiners
  do not write the list at once), and its episode thread becomes the group root.

Later events of a member (updates, recovery) reply in the group thread; the root edit they
make is the group root again, each member as the store has it now (:class:`Composing`).

Waiting never holds up a target's queue: the stage *parks* the work first (the dispatcher
lets the target's next job start), and the dispatcher's ordering keeps a member's later
events behind its opener meanwhile.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from bot.logs import get_logger
from bot.models import Event, EventCause
from bot.notifier import Intent
from bot.pipeline.groups import (
    Board,
    Claim,
    GroupBook,
    GroupJoin,
    GroupPlan,
    GroupRecord,
    GroupSettings,
    Sleep,
    group_key,
)
from bot.pipeline.patience import Patience
from bot.pipeline.stages import Mute, Outcome, Work
from bot.routing import route
from bot.store import Store

log = get_logger("tocsin.dispatcher")


class _Retry:
    """Look again after a moment (the claim is busy, or the group changed meanwhile)."""


RETRY = _Retry()


@dataclass(frozen=True, slots=True)
class _Grouped:
    """One grouped (event, target): its cause, its group's name and its claim."""

    cause: EventCause
    episode: str
    group: str
    claim: Claim


class Grouping:
    """The stage (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        patience: Patience,
        settings: GroupSettings,
        *,
        book: GroupBook,
        mutes: Sequence[Mute] = (),
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.store = store
        self.patience = patience
        self.settings = settings
        self.book = book
        self.mutes = tuple(mutes)
        self.sleep = sleep
        self.board = Board()

    async def run(self, work: Work) -> Outcome | None:
        event, target = work.event, work.target
        cause = event.cause
        if (
            not self.settings.enabled
            or cause is None
            or work.intent is not Intent.OPEN
            or event.type != "state_changed"
            or event.episode is None
        ):
            return None  # not grouped: on at once
        group = group_key(cause.group)
        claim = Claim(
            self.store,
            self.patience,
            self.board,
            f"grouping:{group}:{target.key}",
            event.id,
            self.settings.ttl,
        )
        work.claim = claim
        grouped = _Grouped(cause, event.episode, group, claim)
        if work.park is not None:
            work.park()  # from here on this may take a while: the target's queue moves on
        started = time.monotonic()
        while True:
            outcome: Outcome | _Retry | None = RETRY
            record = await self.book.read(group, target.key)
            if record is not None:
                outcome = await self._in_group(work, grouped, record)
            else:
                thread = await self.patience.run(self.store.get_thread, grouped.episode, target.key)
                if thread is not None:  # another event of its episode opened it meanwhile
                    return await self._as_thread(work, thread)
                if await claim.take():
                    outcome = await self._lead(work, grouped, started)
            if not isinstance(outcome, _Retry):
                return outcome
            await self.board.wait(claim.name, self.settings.poll)

    async def _in_group(
        self, work: Work, grouped: _Grouped, record: GroupRecord
    ) -> Outcome | _Retry | None:
        """The group's root is out: listed (delivered with it), or a late joiner."""
        event, target = work.event, work.target
        listed = record.listed(event)
        if listed is not None:
            thread = await self.patience.run(self.store.get_thread, grouped.episode, target.key)
            if thread is None:  # the leader died before writing it: the record says so
                thread = record.thread(grouped.group, listed.event)
                await self.patience.run(self.store.set_thread, grouped.episode, target.key, thread)
            return await self._as_thread(work, thread)
        if not await grouped.claim.take():
            return RETRY  # the leader, or another joiner, is writing the record
        fresh = await self.book.read(grouped.group, target.key)
        if fresh is None or fresh.listed(event) is not None:
            return RETRY
        work.join = GroupJoin(grouped.group, fresh)
        work.thread = fresh.thread(grouped.group)
        work.intent = Intent.UPDATE
        log.info(
            "a late provider joins a group's thread",
            target=target.label,
            event_id=event.id,
            group=grouped.group,
        )
        return None

    async def _as_thread(self, work: Work, thread: dict[str, Any]) -> Outcome | None:
        """The episode has a thread now: this very event opened it (reconciled), or it is
        routed again as what it now is (a reply)."""
        event, target = work.event, work.target
        if thread.get("event") == event.id:
            await self.patience.run(self.store.mark_sent, event.id, target.key, "group")
            return "reconciled"
        work.thread = thread
        work.intent = route(event, target, thread)
        return "skipped" if work.intent is None else None

    async def _lead(self, work: Work, grouped: _Grouped, started: float) -> Outcome | _Retry | None:
        """Holding the claim: wait out ``group_wait`` (from when this event came), then one
        root for the members, or this event's own."""
        event, target = work.event, work.target
        remaining = started + self.settings.wait - time.monotonic()
        if remaining > 0:
            await self.sleep(remaining)
        if await self.book.read(grouped.group, target.key) is not None:
            return RETRY  # a leader whose claim lapsed recorded it after all
        members = await self._members(work, grouped)
        if len(members) < 2:
            log.info(
                "no other provider with the same cause; its own root",
                target=target.label,
                event_id=event.id,
                group=grouped.group,
            )
            return None  # its own root, "Possibly related"; the claim goes when recorded
        # The root goes out as the oldest member, whoever leads: a leader that died after
        # posting it (and whose claim expired) posted it as that one too, so the platform is
        # asked for it first (Reconciling) whenever this event may not be the first to try.
        root_event = members[0]
        if root_event.id != event.id:
            work.redelivery = True
        work.group = GroupPlan(grouped.group, grouped.cause, members, root_event)
        log.info(
            "one root for a group of providers",
            target=target.label,
            event_id=root_event.id,
            group=grouped.group,
            providers=[m.provider for m in members],
        )
        return None

    async def _members(self, work: Work, grouped: _Grouped) -> list[Event]:
        """The events that would open a root on this target with the same cause, not muted
        and not delivered there, one per episode (the oldest), this one among them."""
        event, target = work.event, work.target
        recent: list[Event] = (
            await self.patience.run(self.store.recent_events, self.settings.lookback) or []
        )
        oldest = event.at - timedelta(seconds=self.settings.max_age)
        chosen: dict[str, Event] = {grouped.episode: event}
        for other in reversed(recent):  # oldest first
            if (
                other.cause is None
                or other.cause.group != grouped.cause.group
                or other.type != "state_changed"
                or other.episode is None
                or other.episode in chosen
                or other.at < oldest
            ):
                continue
            if any(mute(other, target) for mute in self.mutes):
                continue
            thread = await self.patience.run(self.store.get_thread, other.episode, target.key)
            if route(other, target, thread) is not Intent.OPEN:
                continue
            if await self.patience.run(self.store.sent, other.id, target.key):
                continue
            chosen[other.episode] = other
        return sorted(chosen.values(), key=lambda e: (e.at, e.id))
