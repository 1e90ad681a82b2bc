"""What notices need besides the event, looked up once per event for all its targets."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from typing import Literal

from bot.compose import (
    GroupMember,
    Notice,
    compose,
    compose_group_join,
    compose_group_root,
    compose_root,
    member_now,
    provider_components,
)
from bot.models import ComponentState, Event, EventCause
from bot.queries import FallbackOption, fallback_options
from bot.store import Store
from config.schema import TocsinConfig

States = dict[str, ComponentState]


class NoticeContext:
    """What notices need besides the event: the provider's components and fallbacks.

    Looked up once per event (not per target), so fanning one outage out to a thousand
    channels reads the store once.
    """

    def __init__(self, config: TocsinConfig, store: Store, probed: Collection[str] = ()) -> None:
        self.config = config
        self.store = store
        self.probed = frozenset(probed)
        self._cache: dict[str, tuple[list[ComponentState], list[FallbackOption]]] = {}
        self._states: dict[str, States] = {}
        self._loading: dict[str, asyncio.Future[States]] = {}
        self._notices: dict[tuple[str, str], Notice] = {}

    async def lookup(self, event: Event) -> tuple[list[ComponentState], list[FallbackOption]]:
        cached = self._cache.get(event.id)
        if cached is not None:
            return cached
        states = await self.states(event)
        loaded = (
            provider_components(states, event.provider),
            fallback_options(self.config, states, event.provider, probed=self.probed),
        )
        self._cache[event.id] = loaded
        while len(self._cache) > 256:
            self._cache.pop(next(iter(self._cache)))
        return loaded

    async def states(self, event: Event) -> States:
        """Every component's state as the store had it when ``event`` was first composed."""
        cached = self._states.get(event.id)
        if cached is not None:
            return cached
        # the targets' workers ask at once: the first one reads, the others wait for it
        loading = self._loading.get(event.id)
        if loading is None:
            loading = asyncio.ensure_future(self._load(event))
            self._loading[event.id] = loading
            loading.add_done_callback(lambda _: self._loading.pop(event.id, None))
        return await asyncio.shield(loading)

    async def _load(self, event: Event) -> States:
        states = await self.store.states()
        self._states[event.id] = states
        while len(self._states) > 256:
            self._states.pop(next(iter(self._states)))
        return states

    async def notice(self, event: Event, which: Literal["message", "root", "join"]) -> Notice:
        key = (event.id, which)
        if key not in self._notices:
            components, fallbacks = await self.lookup(event)
            provider = self.config.provider(event.provider)
            status_url = provider.status_url if provider else None
            if which == "root":
                notice = compose_root(
                    event, components=components, fallbacks=fallbacks, status_url=status_url
                )
            elif which == "join":
                notice = compose_group_join(event)
            else:
                notice = compose(event, fallbacks=fallbacks)
            self._notices[key] = notice
            while len(self._notices) > 512:
                self._notices.pop(next(iter(self._notices)))
        return self._notices[key]

    async def group_root(
        self, event: Event, cause: EventCause, members: Sequence[GroupMember]
    ) -> Notice:
        """The root of a group of providers down with one likely cause, each provider as the
        store has it now (``members`` as they were listed, where it knows nothing). Per
        target (each channel lists the providers it hears), so it is not cached."""
        states = await self.states(event)
        latest = {m.provider: m for m in members}  # a provider down twice is listed once
        now = []
        for member in latest.values():
            provider = self.config.provider(member.provider)
            named = GroupMember(
                member.provider,
                provider.name if provider and provider.name else member.name,
                member.status,
                member.detail,
            )
            now.append(member_now(named, provider_components(states, member.provider)))
        return compose_group_root(cause, now, event_id=event.id, provider=event.provider)
