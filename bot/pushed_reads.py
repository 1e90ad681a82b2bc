"""Early reads a status page's push asked for.

A push (:mod:`bot.hooks`) is only a hint: any replica may receive it and leaves a poll
request in the store; the leader takes the requests and brings that page's next run forward,
at most once per ``pushed_gap`` per page, so a forged or stale push can cost one extra read but
never set a state. A push that lands while the page is being read asks for one more read right
after it (the page may have been fetched before the change).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress

from bot import metrics
from bot.logs import get_logger
from bot.models import SourceKind
from bot.schedule import Schedule
from bot.sources.source import Source
from bot.store import Store, StoreUnavailable

log = get_logger("tocsin.watcher")

#: Seconds between the end of a read and the re-read a push asked for during it.
RERUN_AFTER = 0.05


class PushedReads:
    """The poll requests of the pages in ``sources``, turned into runs of ``schedule``."""

    def __init__(
        self,
        store: Store,
        sources: Sequence[Source],
        schedule: Schedule,
        *,
        poll_check: float,
        pushed_gap: float,
        owns: Callable[[str], bool] | None = None,
    ) -> None:
        self.store = store
        #: (issue 17) With shards, whether this replica watches a provider now: a request for
        #: another's page is put back for its owner.
        self.owns = owns
        self.schedule = schedule
        self.poll_check = poll_check
        self.pushed_gap = pushed_gap
        self._pages = {s.provider: s for s in sources if s.kind is SourceKind.PAGE}
        self._pushed_at: dict[str, float] = {}  # source id → when its last pushed read runs
        self._in_flight: set[str] = set()
        self._rerun: set[str] = set()  # pushed while running: read again once it is done
        self._failing = False

    async def take_requests(self) -> None:
        """While leading (until cancelled): take the poll requests pushes left in the store
        (any replica may have received them) and read those pages now."""
        while True:
            await asyncio.sleep(self.poll_check)
            requests = await self._requests()
            owns = self.owns
            theirs = [p for p in requests if owns and p in self._pages and not owns(p)]
            for provider in requests:
                if provider not in theirs:
                    self.read(provider)
            for provider in dict.fromkeys(theirs):  # another shard's page: for its owner
                with suppress(StoreUnavailable):
                    await self.store.request_poll(provider)

    async def _requests(self) -> list[str]:
        """The pending requests; none (and the loop goes on) when the store cannot say."""
        try:
            providers = await self.store.take_poll_requests()
        except StoreUnavailable:
            return []  # the lease loop already says the store is away
        except Exception:  # e.g. a foreign value under our key: say so once, keep watching
            if not self._failing:
                log.exception("cannot take poll requests from the store")
            self._failing = True
            return []
        self._failing = False
        return providers

    def read(self, provider: str) -> None:
        """Read this provider's page now, or a gap after its last pushed read if that was
        recent; one read already on its way covers every push until it runs."""
        source = self._pages.get(provider)
        if source is None or not self.schedule.running:  # not ours, or no longer leading
            log.debug("poll request not for this watcher", provider=provider)
            return
        if source.id in self._in_flight:
            self._rerun.add(source.id)  # it may have fetched the page before the change
            return
        now = time.monotonic()
        last = self._pushed_at.get(source.id)
        if last is not None and last > now:
            return
        when = now if last is None else max(now, last + self.pushed_gap)
        self._pushed_at[source.id] = when
        self.schedule.run_soon(source, when - now)
        metrics.POLLS_REQUESTED.labels(provider).inc()
        delay = round(when - now, 2)
        log.info("reading a status page early: a push asked", source=source.id, in_s=delay)

    @contextmanager
    def reading(self, source: Source) -> Iterator[None]:
        """While ``source`` runs: a push meanwhile asks for one more read after it."""
        self._in_flight.add(source.id)
        try:
            yield
        finally:
            self._in_flight.discard(source.id)

    def after_run(self, source: Source) -> None:
        """The run is over: read again if a push came during it."""
        if source.id in self._rerun:
            self._rerun.discard(source.id)
            # Once apscheduler has counted this run as over: it skips a run while one is on.
            asyncio.get_running_loop().call_later(RERUN_AFTER, self.read, source.provider)

    def forget(self) -> None:
        """Stepping down: pushed reads planned for this leadership are not ours any more."""
        self._pushed_at.clear()
        self._rerun.clear()
