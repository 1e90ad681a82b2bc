"""The delivery pipeline: what happens to one (event, target), as a list of small stages.

Like Alertmanager's ``notify`` stages, each stage is an object with one method (see
:mod:`bot.pipeline.stages`), and the order is written once, here::

    look up thread → route → mute → dedupe → compose → reconcile (after a crash)
        → send with retry (degrading refused content) → record

Before a job reaches the pipeline, :mod:`bot.pipeline.ordering` holds back a later event of an
episode until the one that opens its thread is done: routing needs that thread, so ordering
comes first, not after dedupe.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.notice_context import NoticeContext
from bot.pipeline.dead_letters import DeadLetters
from bot.pipeline.patience import Patience
from bot.pipeline.retry import RetryPolicy
from bot.pipeline.stages import (
    Composing,
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

__all__ = ["Mute", "Outcome", "Pipeline", "Stage", "Work", "delivery_pipeline"]


class Pipeline:
    def __init__(self, stages: Sequence[Stage]) -> None:
        self.stages = tuple(stages)

    async def run(self, work: Work) -> Outcome:
        """Each stage in turn until one says how it ended (the last always does)."""
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
) -> Pipeline:
    """The stages, in the order they run."""
    return Pipeline(
        [
            LookUpThread(store, patience),
            Routing(),
            Muting(mutes),
            Idempotency(store, patience),
            Composing(context, patience),
            Reconciling(retry),
            Sending(retry, dead_letters),
            Recording(store, patience),
        ]
    )
