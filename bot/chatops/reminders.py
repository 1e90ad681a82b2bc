"""The chat's clock: "still down after 30 min" reminders, and silences that end by themselves.

Every notifier process ticks (there is no lease to lose): what one tick owes is claimed in
the store first (``claim_value`` on ``remind:{episode}:{target}:{n}``; a silence ends for the
one caller that deletes it), so across replicas a reminder goes out once per interval and a
silence's end is said once. A reminder goes only to a channel that carries the outage (it
has its thread), whose ``remind_every`` is set, and while nobody acknowledged or silenced it;
after a restart, it is the latest one that is owed, never a backlog.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from contextlib import suppress
from datetime import datetime, timedelta

from bot.chatops.actions import ChatOps, control_event
from bot.chatops.controls import Controls
from bot.chatops.records import ACKS
from bot.lease import sleep_unless
from bot.logs import get_logger
from bot.models import ComponentState, EventControl, provider_status_of, utcnow
from bot.notifier import Target
from bot.store import Store, StoreUnavailable

log = get_logger("tocsin.chatops")

#: An acknowledgement is forgotten this long after its outage ended.
ACK_KEPT = timedelta(days=1)


class Reminders:
    def __init__(
        self,
        chatops: ChatOps,
        controls: Controls,
        targets: Sequence[Target],
        *,
        tick: float = 5.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.chatops = chatops
        self.controls = controls
        self.store: Store = chatops.store
        self.targets = list(targets)
        self.every = tick
        self.clock = clock

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.tick()
            except StoreUnavailable:
                pass  # the next tick tries again; nothing is owed twice
            except Exception:
                log.exception("the chat's clock failed; trying again")
            await sleep_unless(stop, self.every)

    async def tick(self) -> int:
        """Do what is owed now; returns how many events were appended."""
        now = self.clock()
        await self.controls.refresh()
        reminding = any(t.options.get("remind_every") for t in self.controls.targets(self.targets))
        if not (reminding or self.controls.silences or self.controls.acks):
            return 0  # nothing owed: the states are not read (they cost every check's CPU)
        states = list((await self.store.states()).values())
        ended = await self._end_silences(now, states)
        await self._forget_acks(now, states)
        return ended + (await self._remind(now, states) if reminding else 0)

    async def _end_silences(self, now: datetime, states: list[ComponentState]) -> int:
        open_episodes = {s.episode for s in states if s.episode}
        count = 0
        for silence in list(self.controls.silences.values()):
            if not silence.expired(now, open_episodes):
                continue
            reason = "expired" if silence.until is not None else "resolved"
            mine = [s for s in states if s.provider == silence.provider]
            reply = await self.chatops.unsilence(
                silence.target, silence.provider, None, mine, reason=reason
            )
            count += reply.changed
        return count

    async def _forget_acks(self, now: datetime, states: list[ComponentState]) -> None:
        open_episodes = {s.episode for s in states if s.episode}
        for episode, ack in self.controls.acks.items():
            if episode not in open_episodes and now - ack.at > ACK_KEPT:
                with suppress(StoreUnavailable):
                    await self.store.delete_record(ACKS, episode)

    async def _remind(self, now: datetime, states: list[ComponentState]) -> int:
        episodes: dict[str, list[ComponentState]] = {}
        for state in states:
            if state.episode:
                episodes.setdefault(state.episode, []).append(state)
        count = 0
        for target in self.controls.targets(self.targets):
            every = target.options.get("remind_every")
            if not every:
                continue
            for episode, mine in episodes.items():
                count += await self._remind_one(target, float(every), episode, mine, now)
        return count

    async def _remind_one(
        self, target: Target, every: float, episode: str, mine: list[ComponentState], now: datetime
    ) -> int:
        provider = mine[0].provider
        status = provider_status_of([s.status for s in mine], mine)
        started = min((s.episode_started for s in mine if s.episode_started), default=None)
        if started is None or not status.is_outage or not target.route.wants(provider):
            return 0
        owed = int((now - started).total_seconds() // every)
        if owed < 1 or episode in self.controls.acks:
            return 0
        if self.controls.silence(target.key, provider, episode) is not None:
            return 0
        if await self.store.get_thread(episode, target.key) is None:
            return 0  # this channel never heard of it
        mark = f"remind:{episode}:{target.key}:{owed}"
        if not await self.store.claim_value(mark, "1", ttl=2 * every):
            return 0
        control = EventControl(platform=target.notifier.kind, target=target.key, count=owed)
        identity = f"{episode}|{target.key}|{owed}"
        event = control_event(
            self.chatops.config, "reminder", provider, episode, mine, control, now, identity
        )
        await self.store.append(event)
        return 1
