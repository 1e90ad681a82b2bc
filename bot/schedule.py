"""When each source runs: one apscheduler job per source, each on a phase of its own.

Interval with jitter, ``max_instances=1``, coalescing. The first rounds are spread over at most
2 s (for more than 500 sources: about 250 first checks a second); after its first run each
source moves onto a phase of its own across its whole interval, so 500 sources at 10 s are 50
checks a second, not a burst. A run can be brought forward (to confirm a differing result, or
because a push asked), never pushed back.
"""

from __future__ import annotations

import math
import random
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from bot.sources.source import Source

Job = Callable[[Source], Awaitable[None]]
#: At most about this many first checks a second when many sources start at once.
FIRST_ROUND_RATE = 250.0


class Schedule:
    """The jobs of the sources while this replica watches; nothing runs while it does not."""

    def __init__(self, jitter_for: Callable[[float], float]) -> None:
        self._jitter_for = jitter_for
        self._scheduler: AsyncIOScheduler | None = None
        self._phases: dict[str, datetime] = {}  # source id → its steady phase (see rephase)
        self._job: Job | None = None

    @property
    def running(self) -> bool:
        return self._scheduler is not None

    def start(self, sources: Sequence[Source], job: Job) -> None:
        """One job per source calling ``job(source)``; the first runs within 2 s."""
        scheduler = AsyncIOScheduler(timezone="UTC")
        self._scheduler = scheduler
        self._job = job
        self.add(sources)  # before it starts: a running scheduler wakes up for every job added
        scheduler.start()

    def add(self, sources: Sequence[Source], *, soon: bool = True) -> None:
        """More sources, scheduled as :meth:`start` schedules its own; with ``soon=False``
        (a shard gained from another replica, which checked it a moment ago) each first
        runs at its own phase, not within 2 s (which would check it twice in a round)."""
        if self._scheduler is None:
            return
        now = datetime.now().astimezone()
        # the first round within 2 s, or at FIRST_ROUND_RATE a second for many sources: a
        # burst of thousands of requests queued in the HTTP pool costs each of them dearly
        spread = max(2.0, len(sources) / FIRST_ROUND_RATE)
        for source in sources:
            jitter = min(self._jitter_for(source.interval), source.interval)
            steady = now + timedelta(seconds=random.uniform(0, source.interval))
            if soon:
                phase = random.uniform(0, min(source.interval, spread))  # spread the first round
                # ...and after it, each source keeps a phase of its own across the whole
                # interval (see rephase): 500 sources at 10 s are 50 checks a second.
                self._phases[source.id] = steady
                first = now + timedelta(seconds=phase)
            else:
                first = steady
            self._scheduler.add_job(
                self._job,
                # apscheduler only adds jitter (0 to j): half of it comes off the period so
                # a source still runs every `interval` on average
                IntervalTrigger(seconds=source.interval - jitter / 2, jitter=jitter),
                args=[source],
                id=source.id,
                name=source.id,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=max(1, int(source.interval)),
                next_run_time=first,
                replace_existing=True,
            )

    def remove(self, sources: Sequence[Source]) -> None:
        """Fewer sources (a shard lost): their jobs go (a run under way is the caller's)."""
        if self._scheduler is None:
            return
        for source in sources:
            self._phases.pop(source.id, None)
            if self._scheduler.get_job(source.id) is not None:
                self._scheduler.remove_job(source.id)

    @property
    def count(self) -> int:
        return len(self._scheduler.get_jobs()) if self._scheduler is not None else 0

    def stop(self) -> None:
        """No more runs (one under way is the caller's to cancel)."""
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None

    def rephase(self, source: Source) -> None:
        """After a source's first run: move its next run onto its own phase (its anchor +
        k * interval).

        apscheduler computes each run from the previous one, so without this every source
        would keep the phase of its first run: all within the first 2 s."""
        anchor = self._phases.pop(source.id, None)
        if anchor is None or self._scheduler is None:
            return
        job = self._scheduler.get_job(source.id)
        if job is None:
            return
        now = datetime.now().astimezone()
        steps = max(1, math.ceil((now - anchor).total_seconds() / source.interval))
        job.modify(next_run_time=anchor + timedelta(seconds=steps * source.interval))

    def run_soon(self, source: Source, delay: float) -> None:
        """Move the source's next run to ``delay`` seconds from now, unless it is sooner."""
        if self._scheduler is None:
            return
        when = datetime.now().astimezone() + timedelta(seconds=delay)
        job = self._scheduler.get_job(source.id)
        if job is not None and (job.next_run_time is None or job.next_run_time > when):
            job.modify(next_run_time=when)
