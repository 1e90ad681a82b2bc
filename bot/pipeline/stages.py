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
from bot.pipeline.groups import (
    MEMBERS_KEPT,
    Claim,
    GroupBook,
    GroupJoin,
    GroupPlan,
    GroupRecord,
    ListedMember,
    root_ref,
    stored_cause,
)
from bot.pipeline.patience import Patience
from bot.pipeline.retry import RetryPolicy
from bot.routing import route
from bot.store import Store

log = get_logger("tocsin.dispatcher")

Outcome = Literal["delivered", "reconciled", "duplicate", "skipped", "muted", "dead"]

#: A silence: says whether a target must not hear an event (nothing is muted by default).
Mute = Callable[[Event, Target], bool]
#: (issue 15) A root as one target shows it (who acknowledged, silenced here, its buttons):
#: :meth:`bot.chatops.controls.Controls.decorate`.
Decorate = Callable[[Notice, Event, Target], Notice]


def _as_is(notice: Notice, event: Event, target: Target) -> Notice:
    return notice


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
    #: Called by a stage about to wait a while (grouping): the target's next job may start.
    park: Callable[[], None] | None = None
    #: Grouping (:mod:`bot.pipeline.grouping`): the claim this event took on its group (let
    #: go when the work ends), a leader's group root, or a late joiner's group.
    claim: Claim | None = None
    group: GroupPlan | None = None
    join: GroupJoin | None = None


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
    """The notice, and for a reply what the thread's root should say now (in a group's
    thread: the group root again, never one provider's root)."""

    def __init__(
        self,
        context: NoticeContext,
        patience: Patience,
        book: GroupBook,
        decorate: Decorate = _as_is,
    ) -> None:
        self.context = context
        self.patience = patience
        self.book = book
        self.decorate = decorate

    async def run(self, work: Work) -> Outcome | None:
        event, intent = work.event, _intent(work)
        if work.group is not None:
            work.delivery = await self._group_root(work, work.group)
            return None
        if intent is Intent.OPEN:
            opening = self.decorate(await self._notice(event, "root"), event, work.target)
            work.delivery = Delivery(event, opening, intent, None, None, work.redelivery)
            return None
        # the root says what the episode is now; after it closed (a late incident update) it
        # already says resolved, and is left alone
        edits_root = intent is Intent.RESOLVE or (
            intent is Intent.UPDATE and not event.episode_closed and event.type != "escalation"
        )
        if work.join is not None:
            record = work.join.record
            listed = [m.shown for m in record.members] + [ListedMember.of(event).shown]
            root: Notice | None = await self.patience.run(
                self.context.group_root, event, record.cause, listed
            )
            message = await self._notice(event, "join")
        else:
            root = await self._root(work, event) if edits_root else None
            if root is not None and not (work.thread or {}).get("group"):
                root = self.decorate(root, event, work.target)  # a group's root has no buttons
            message = await self._notice(event, "message")
        work.delivery = Delivery(event, message, intent, work.thread, root, work.redelivery)
        return None

    async def _group_root(self, work: Work, plan: GroupPlan) -> Delivery:
        listed = [ListedMember.of(m).shown for m in plan.members]
        notice: Notice = await self.patience.run(
            self.context.group_root, plan.root_event, plan.cause, listed
        )
        # mentions go by the worst of the group, not by whichever provider came first
        posted_as = plan.root_event.model_copy(update={"provider_status": notice.status})
        return Delivery(posted_as, notice, Intent.OPEN, None, None, work.redelivery)

    async def _root(self, work: Work, event: Event) -> Notice | None:
        group = (work.thread or {}).get("group")
        if not group:
            return await self._notice(event, "root")
        record = await self.book.read(str(group), work.target.key)
        if record is None:
            return None  # a group's root that cannot be recomposed is left as it is
        listed = [m.shown for m in record.members]
        notice: Notice = await self.patience.run(
            self.context.group_root, event, record.cause, listed
        )
        return notice

    async def _notice(self, event: Event, which: Literal["message", "root", "join"]) -> Notice:
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
    """Mark it sent, and remember the thread an opening notice started (for a group root:
    the group's record, then every member's episode thread, see :mod:`bot.pipeline.grouping`)."""

    def __init__(self, store: Store, patience: Patience, book: GroupBook) -> None:
        super().__init__(store, patience)
        self.book = book

    async def run(self, work: Work) -> Outcome | None:
        delivery, receipt, key = _delivery(work), work.receipt, work.target.key
        assert receipt is not None, "Recording runs after Sending"
        event = work.event
        marked = json.dumps(receipt.ref) or "1"
        if work.group is not None:
            await self._group(work.group, key, receipt.ref, marked)
        elif work.join is not None:
            await self._join(work.join, event, key)
        elif delivery.intent is Intent.OPEN and event.episode:
            ref = {**receipt.ref, "event": event.id}  # which event opened it (see LookUpThread)
            await self.patience.run(self.store.set_thread, event.episode, key, ref)
        await self.patience.run(self.store.mark_sent, event.id, key, marked)
        return "reconciled" if work.found else "delivered"

    async def _group(self, plan: GroupPlan, key: str, ref: dict[str, Any], marked: str) -> None:
        """The record first: once it is written, every member counts as delivered (a crash
        after it is finished by whichever member looks next)."""
        record = GroupRecord(
            cause=stored_cause(plan.cause),
            root=root_ref(ref),
            members=[ListedMember.of(m) for m in plan.members],
        )
        await self.book.write(plan.group, key, record)
        for member in plan.members:
            if member.episode:
                thread = record.thread(plan.group, member.id)
                await self.patience.run(self.store.set_thread, member.episode, key, thread)
        for member in plan.members:
            await self.patience.run(self.store.mark_sent, member.id, key, marked)

    async def _join(self, join: GroupJoin, event: Event, key: str) -> None:
        record = join.record
        if len(record.members) < MEMBERS_KEPT:
            record.members.append(ListedMember.of(event))
        await self.book.write(join.group, key, record)
        if event.episode:
            thread = record.thread(join.group, event.id)
            await self.patience.run(self.store.set_thread, event.episode, key, thread)


def _intent(work: Work) -> Intent:
    assert work.intent is not None, "Composing runs after Routing"
    return work.intent


def _delivery(work: Work) -> Delivery:
    assert work.delivery is not None, "runs after Composing"
    return work.delivery
