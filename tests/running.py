"""A whole tocsin runtime (``assemble`` + ``run``) inside the test's event loop."""

from __future__ import annotations

import asyncio

from bot.app import Role, Runtime, assemble, run
from bot.store import MemoryStore, RedisStore, Store
from config.schema import TocsinConfig


class Running:
    """``Running(config)`` starts it (the task runs at the test's next await); ``halt()``
    stops it cleanly, as SIGTERM would."""

    def __init__(self, config: TocsinConfig, role: Role = "all") -> None:
        store: Store = (
            RedisStore(config.store.url.get_secret_value(), prefix=config.store.prefix)
            if config.store.url
            else MemoryStore()
        )
        self.runtime: Runtime = assemble(config, role, store=store, env={})
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(run(self.runtime, self.stop))

    async def halt(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 20)
