"""The stages one (event, target) goes through, each one small object with one method.

A stage fills in its part of the :class:`Work` and returns ``None`` to pass it on, or an
outcome to stop there (skipped, muted, a duplicate, dead...). The order they run in is
written once, in :func:`bot.pipeline.delivery_pipeline`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from bot.compose import Notice
from bot.logs import get_logger
from bot.models import Event
from bot.notice_context import NoticeContext
from bot.notifier import Delivery, Intent, PermanentError, Receipt, Target
from bot.pipeline.dead_letters import DeadLetters
from bot.pipeline.patience import Patience
from bot.pipeline.retry import RetryPolicy
from bot.routing import route
from bot.store import Store

log = get_logger("tocsin.dispatcher")

Outcome = Literal["delivered", "reconciled", "duplicate", "skipped", "muted", "dead"]

#: A silence: says whether a target must not hear an event (nothing is muted by default).
Mute = Callable[[Event, Target], bool]


@dataclass(slots=True)
class Work:
    """One (event, target) on its way through the stages."""

    event: Event
    target: Target
    #: True when this event may already have been delivered by a process that died.
    redelivery: bool = False
    thread: dict[str, Any] | None = None
    intent: Intent | None = None
    delivery: Delivery | None = None
    receipt: Receipt | None = None
    #: The receipt was found on the platform (posted before a crash), not made now.
    found: bool = False


class Stage(Protocol):
    async def run(self, work: Work) -> Outcome | None:
        """Do this stage's part: ``None`` passes the work on, an outcome ends it there."""
        ...


class StoreStage:
    """A stage that reads or writes the store (waiting it out when it is unreachable)."""

    def __init__(self, store: Store, patience: Patience) -> None:
        self.store = store
        self.patience = patience


class LookUpThread(StoreStage):
    """The episode's thread on this target, if any; if this very event opened it, it was
    delivered and only its mark was lost (a crash between posting and marking)."""

    async def run(self, work: Work) -> Outcome | None:
        event = work.event
        if event.episode is None or event.type == "drill":
            return None
        work.thread = await self.patience.run(self.store.get_thread, event.episode, work.target.key)
        if work.thread is not None and work.thread.get("event") == event.id:
            await self.patience.run(self.store.mark_sent, event.id, work.target.key, "thread")
            return "reconciled"
        return None


class Routing:
    """Does this target get this event, and as what? (:func:`bot.routing.route`)"""

    async def run(self, work: Work) -> Outcome | None:
        work.intent = route(work.event, work.target, work.thread)
        return "skipped" if work.intent is None else None


class Muting:
    """Silences: any of ``mutes`` saying so keeps the event from the target."""

    def __init__(self, mutes: Sequence[Mute] = ()) -> None:
        self.mutes = tuple(mutes)

    async def run(self, work: Work) -> Outcome | None:
        if any(mute(work.event, work.target) for mute in self.mutes):
            log.info("notice muted", target=work.target.label, event_id=work.event.id)
            return "muted"
        return None


class Idempotency(StoreStage):
    """Already delivered here (the ``sent:{event}:{target}`` mark): never twice."""

    async def run(self, work: Work) -> Outcome | None:
        if await self.patience.run(self.store.sent, work.event.id, work.target.key):
            return "duplicate"
        return None


class Composing:
    """The notice, and for a reply what the thread's root should say now."""

    def __init__(self, context: NoticeContext, patience: Patience) -> None:
        self.context = context
        self.patience = patience

    async def run(self, work: Work) -> Outcome | None:
        event, intent = work.event, _intent(work)
        if intent is Intent.OPEN:
            opening = await self._notice(event, "root")
            work.delivery = Delivery(event, opening, intent, None, None, work.redelivery)
            return None
        # the root says what the episode is now; after it closed (a late incident update) it
        # already says resolved, and is left alone
        edits_root = intent is Intent.RESOLVE or (
            intent is Intent.UPDATE and not event.episode_closed and event.type != "escalation"
        )
        root = await self._notice(event, "root") if edits_root else None
        message = await self._notice(event, "message")
        work.delivery = Delivery(event, message, intent, work.thread, root, work.redelivery)
        return None

    async def _notice(self, event: Event, which: Literal["message", "root"]) -> Notice:
        notice: Notice = await self.patience.run(self.context.notice, event, which)
        return notice


class Reconciling:
    """After a crash: did a process that died already post this? Asked with the same
    retries as a send: guessing "no" while the platform is down could post it twice."""

    def __init__(self, retry: RetryPolicy) -> None:
        self.retry = retry

    async def run(self, work: Work) -> Outcome | None:
        if not work.redelivery:
            return None
        target, delivery = work.target, _delivery(work)
        try:
            found = await self.retry.degrading(target, delivery, target.notifier.find_sent)
        except PermanentError as exc:
            log.warning(
                "cannot tell whether a notice was already posted; posting it",
                target=target.label,
                event_id=delivery.event.id,
                reason=str(exc),
            )
            return None
        if found is not None:
            work.receipt, work.found = found, True
        return None


class Sending:
    """Deliver it (unless a crashed process already did), with retries; a permanent
    failure is dead-lettered."""

    def __init__(self, retry: RetryPolicy, dead_letters: DeadLetters) -> None:
        self.retry = retry
        self.dead_letters = dead_letters

    async def run(self, work: Work) -> Outcome | None:
        if work.receipt is not None:
            return None
        target, delivery = work.target, _delivery(work)
        try:
            work.receipt = await self.retry.degrading(target, delivery, target.notifier.deliver)
        except PermanentError as exc:
            await self.dead_letters.refused(target, delivery, str(exc))
            return "dead"
        return None


class Recording(StoreStage):
    """Mark it sent, and remember the thread an opening notice started."""

    async def run(self, work: Work) -> Outcome | None:
        delivery, receipt, key = _delivery(work), work.receipt, work.target.key
        assert receipt is not None, "Recording runs after Sending"
        event = delivery.event
        if delivery.intent is Intent.OPEN and event.episode:
            ref = {**receipt.ref, "event": event.id}  # which event opened it (see LookUpThread)
            await self.patience.run(self.store.set_thread, event.episode, key, ref)
        await self.patience.run(self.store.mark_sent, event.id, key, json.dumps(receipt.ref) or "1")
        return "reconciled" if work.found else "delivered"


def _intent(work: Work) -> Intent:
    assert work.intent is not None, "Composing runs after Routing"
    return work.intent


def _delivery(work: Work) -> Delivery:
    assert work.delivery is not None, "runs after Composing"
    return work.delivery
