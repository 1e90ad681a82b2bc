"""The delivery pipeline: what happens to one (event, target), as a list of small stages.

Like Alertmanager's ``notify`` stages, each stage is an object with one method (see
:mod:`bot.pipeline.stages`), and the order is written once, here::

    look up thread → route → mute → dedupe → group (by likely cause) → compose
        → reconcile (after a crash) → send with retry (degrading refused content) → record

Grouping (:mod:`bot.pipeline.grouping`) comes once it is known that the event would open a
root on this target and has not been delivered there: only such an event with an upstream
cause waits (``group_wait``, parked so the target's queue goes on), and it leaves either as
one group root for every provider down with that cause (composed, sent and recorded for all
of them), or as its own root, or found already delivered with another's group root.

Before a job reaches the pipeline, :mod:`bot.pipeline.ordering` holds back a later event of an
episode until the one that opens its thread is done: routing needs that thread, so ordering
comes first, not after dedupe.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from bot.notice_context import NoticeContext
from bot.pipeline.dead_letters import DeadLetters
from bot.pipeline.grouping import Grouping
from bot.pipeline.groups import GroupBook, GroupSettings, Sleep
from bot.pipeline.patience import Patience
from bot.pipeline.retry import RetryPolicy
from bot.pipeline.stages import (
    Composing,
    Decorate,
    Idempotency,
    LookUpThread,
    Mute,
    Muting,
    Outcome,
    Reconciling,
    Recording,
    Routing,
    Sending,
    Stage,
    Work,
)
from bot.store import Store

#: Grouping off: what a pipeline built without a grouping config does.
NO_GROUPING = GroupSettings(enabled=False)

__all__ = [
    "Decorate",
    "GroupSettings",
    "Mute",
    "Outcome",
    "Pipeline",
    "Stage",
    "Work",
    "delivery_pipeline",
]


class Pipeline:
    def __init__(self, stages: Sequence[Stage]) -> None:
        self.stages = tuple(stages)

    async def run(self, work: Work) -> Outcome:
        """Each stage in turn until one says how it ended (the last always does). A group
        claim the work took is let go at the end; after a crash or a shutdown it expires."""
        try:
            outcome = await self._stages(work)
        except BaseException:
            if work.claim is not None:
                work.claim.drop()
            raise
        if work.claim is not None:
            await work.claim.release()
        return outcome

    async def _stages(self, work: Work) -> Outcome:
        for stage in self.stages:
            outcome = await stage.run(work)
            if outcome is not None:
                return outcome
        raise AssertionError(f"no stage ended the work: {self.stages!r}")


def delivery_pipeline(
    store: Store,
    context: NoticeContext,
    *,
    patience: Patience,
    retry: RetryPolicy,
    dead_letters: DeadLetters,
    mutes: Sequence[Mute] = (),
    grouping: GroupSettings = NO_GROUPING,
    sleep: Sleep = asyncio.sleep,
    decorate: Decorate | None = None,
) -> Pipeline:
    """The stages, in the order they run."""
    book = GroupBook(store, patience)
    stages: list[Stage] = [
        LookUpThread(store, patience),
        Routing(),
        Muting(mutes),
        Idempotency(store, patience),
    ]
    if grouping.enabled:  # off: the pipeline is exactly what it was without grouping
        stages.append(Grouping(store, patience, grouping, book=book, mutes=mutes, sleep=sleep))
    stages += [
        Composing(context, patience, book, decorate)
        if decorate
        else Composing(context, patience, book),
        Reconciling(retry),
        Sending(retry, dead_letters),
        Recording(store, patience, book),
    ]
    return Pipeline(stages)
