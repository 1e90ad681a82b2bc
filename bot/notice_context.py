"""What notices need besides the event, looked up once per event for all its targets."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Literal

from bot.compose import Notice, compose, compose_root, provider_components
from bot.models import ComponentState, Event
from bot.queries import FallbackOption, fallback_options
from bot.store import Store
from config.schema import TocsinConfig


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
        self._loading: dict[
            str, asyncio.Future[tuple[list[ComponentState], list[FallbackOption]]]
        ] = {}
        self._notices: dict[tuple[str, str], Notice] = {}

    async def lookup(self, event: Event) -> tuple[list[ComponentState], list[FallbackOption]]:
        cached = self._cache.get(event.id)
        if cached is not None:
            return cached
        # the targets' workers ask at once: the first one reads, the others wait for it
        loading = self._loading.get(event.id)
        if loading is None:
            loading = asyncio.ensure_future(self._load(event))
            self._loading[event.id] = loading
            loading.add_done_callback(lambda _: self._loading.pop(event.id, None))
        return await asyncio.shield(loading)

    async def _load(self, event: Event) -> tuple[list[ComponentState], list[FallbackOption]]:
        states = await self.store.states()
        loaded = (
            provider_components(states, event.provider),
            fallback_options(self.config, states, event.provider, probed=self.probed),
        )
        self._cache[event.id] = loaded
        while len(self._cache) > 256:
            self._cache.pop(next(iter(self._cache)))
        return loaded

    async def notice(self, event: Event, which: Literal["message", "root"]) -> Notice:
        key = (event.id, which)
        if key not in self._notices:
            components, fallbacks = await self.lookup(event)
            provider = self.config.provider(event.provider)
            status_url = provider.status_url if provider else None
            self._notices[key] = (
                compose_root(
                    event, components=components, fallbacks=fallbacks, status_url=status_url
                )
                if which == "root"
                else compose(event, fallbacks=fallbacks)
            )
            while len(self._notices) > 512:
                self._notices.pop(next(iter(self._notices)))
        return self._notices[key]
