"""On-call escalation: when an outage has lasted long enough, page someone; resolve it after.

A chat notice is for everyone; a page wakes one person, so it must be rare, deduplicated and
resolved by itself. This module decides *when*, in two pure functions:

- :func:`observe` folds one event into a policy's pending escalation for a provider (an
  outage at or above ``min_status`` starts the clock; dropping below it before ``after``
  stops it; the episode closing resolves a page);
- :func:`due` says what the clock owes at a given moment (the first page once ``after`` has
  passed outside quiet hours, then a repeat every ``repeat``);

and :class:`Escalator` runs them. It holds the ``escalator`` lease (one process decides: the
holder is unique per process, :mod:`bot.lease`), reads the event stream in its own consumer
group, ticks a timer, keeps pending escalations in the store (a restart resumes them, and can
still resolve a page it sent before), and appends an ``escalation`` event for every page,
repeat and resolve. Those events have ids derived from (policy, episode, action, repeat):
appending one twice after a crash cannot page twice, because the dispatcher delivers them like
any other event, idempotency marks included, to the policy's target (PagerDuty, Opsgenie, a
webhook) and, as a thread reply, to the chat channels that carry the outage ("📟 Paged
Platform on-call via PagerDuty at 12:05 UTC").

What the store holds is read as hostile (:func:`read_pending`): a value that is not a JSON
object of readable, plausibly dated escalations is dropped with one log line, so a bad value
costs what it held, never paging itself.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from pydantic import BaseModel

from bot import metrics
from bot.lease import Lease, unique_holder
from bot.leased_reader import LeasedReader, LeaseSettings
from bot.logs import get_logger, scrub_detail
from bot.models import EscalationAction, Event, EventEscalation, Status, utcnow
from bot.store import Store
from bot.store.decode import drop, read_object
from config.schema import EscalationBase, EscalationPolicy, TocsinConfig

log = get_logger("tocsin.escalation")

#: Its consumer group, its one consumer name (one decider at a time, by lease: a successor
#: finds what its predecessor read and never acknowledged under the same name), its lease.
GROUP = LEASE = "escalator"
STATE = "escalations"
#: A stored escalation dated outside [now - OLDEST, now + AHEAD] is not one tocsin wrote (and
#: the year 9999 would overflow the clock's arithmetic).
OLDEST = timedelta(days=3650)
AHEAD = timedelta(days=1)


class Pending(BaseModel):
    """One policy's escalation for one provider's outage episode, waiting or paged."""

    policy: str
    provider: str
    episode: str
    #: When the provider reached the policy's ``min_status`` (and stayed there).
    since: datetime
    #: The worst provider status seen meanwhile.
    status: Status
    paged_at: datetime | None = None
    last_sent: datetime | None = None
    repeats: int = 0
    #: Paged, then below ``min_status`` without recovering: no repeats, resolve on recovery.
    below: bool = False
    #: (issue 15) Someone acknowledged the outage from the chat: no first page if none went
    #: out yet, no repeats; the page is acknowledged too, and resolved on recovery.
    acknowledged: bool = False
    #: The episode's latest event: what a page says about the outage.
    snapshot: Event

    @property
    def key(self) -> str:
        return pending_key(self.policy, self.provider)

    @property
    def dedup_key(self) -> str:
        """PagerDuty's ``dedup_key``, Opsgenie's ``alias``: one per provider incident."""
        return f"tocsin:{self.episode}"


def pending_key(policy: str, provider: str) -> str:
    return f"{policy}|{provider}"


@dataclass(frozen=True, slots=True)
class Action:
    kind: EscalationAction
    pending: Pending


def wants(policy: EscalationBase, provider: str) -> bool:
    return policy.providers == "all" or provider in policy.providers


def observe(
    policy: EscalationBase, pending: Pending | None, event: Event
) -> tuple[Pending | None, list[Action]]:
    """The pending escalation after ``event`` (``None``: nothing pending), and any resolves."""
    if event.type == "acknowledged":
        return _acknowledged(pending, event)
    status = event.provider_status
    relevant = (
        event.type in ("state_changed", "incident_update")
        and event.audience == "all"
        and event.episode is not None
        and status is not None
        and wants(policy, event.provider)
    )
    if not relevant or status is None or event.episode is None:
        return pending, []
    actions: list[Action] = []
    if pending is not None and pending.episode != event.episode:
        # a new episode while we held the old one: its close went by unseen
        if pending.paged_at is not None:
            actions.append(Action("resolve", pending.model_copy(update={"snapshot": event})))
        pending = None
    if event.episode_closed:
        if pending is not None and pending.paged_at is not None:
            actions.append(Action("resolve", pending.model_copy(update={"snapshot": event})))
        return None, actions
    if status.reaches(policy.min_status):
        if pending is None:
            return _start(policy, event, status), actions
        worst = max(pending.status, status, key=lambda s: s.severity)
        return pending.model_copy(
            update={"status": worst, "snapshot": event, "below": False}
        ), actions
    if status is Status.UNKNOWN:
        return pending, actions  # not knowing is neither worse nor better
    if pending is None or pending.paged_at is None:
        return None, actions  # eased before anyone was paged: the clock starts over
    return pending.model_copy(update={"below": True, "snapshot": event}), actions


def _acknowledged(pending: Pending | None, event: Event) -> tuple[Pending | None, list[Action]]:
    """An acknowledgement of this pending escalation's episode: held from now on, and the
    page (if one went out) acknowledged on the pager; twice is once."""
    if pending is None or pending.episode != event.episode or pending.acknowledged:
        return pending, []
    held = pending.model_copy(update={"acknowledged": True})
    return held, [Action("acknowledge", held)] if held.paged_at is not None else []


def _start(policy: EscalationBase, event: Event, status: Status) -> Pending:
    assert event.episode is not None
    return Pending(
        policy=policy.policy_id,
        provider=event.provider,
        episode=event.episode,
        since=event.at,
        status=status,
        snapshot=event,
    )


def due(policy: EscalationBase, pending: Pending, now: datetime) -> tuple[Pending, list[Action]]:
    """What the clock owes at ``now``: the first page, or a repeat; quiet hours postpone
    both (a resolve is never held back: closing a page wakes nobody)."""
    if pending.acknowledged:
        return pending, []  # someone is on it: no page, no repeat (a resolve still goes)
    if pending.paged_at is None:
        if now < pending.since + timedelta(seconds=policy.after) or quiet(policy, now):
            return pending, []
        paged = pending.model_copy(update={"paged_at": now, "last_sent": now})
        return paged, [Action("trigger", paged)]
    last = pending.last_sent or pending.paged_at
    if (
        policy.repeat is None
        or pending.below
        or now < last + timedelta(seconds=policy.repeat)
        or quiet(policy, now)
    ):
        return pending, []
    again = pending.model_copy(update={"last_sent": now, "repeats": pending.repeats + 1})
    return again, [Action("repeat", again)]


def quiet(policy: EscalationBase, now: datetime) -> bool:
    """Whether ``now`` falls in the policy's quiet hours (in its time zone; may span midnight)."""
    if policy.quiet_hours is None:
        return False
    start_text, end_text = policy.quiet_hours.split("-")
    start, end = time.fromisoformat(start_text), time.fromisoformat(end_text)
    local = now.astimezone(ZoneInfo(policy.timezone)).time()
    if start < end:
        return start <= local < end
    return local >= start or local < end


def escalation_event(policy: EscalationBase, action: Action, at: datetime) -> Event:
    """The stream event for one action; its id is the same however often it is built."""
    pending = action.pending
    count = pending.repeats if action.kind == "repeat" else 0
    identity = f"{pending.policy}|{pending.provider}|{pending.episode}|{action.kind}|{count}"
    snapshot = pending.snapshot
    return Event(
        id=hashlib.sha256(identity.encode()).hexdigest()[:32],
        type="escalation",
        provider=pending.provider,
        provider_name=snapshot.provider_name,
        component=snapshot.component,
        component_name=snapshot.component_name,
        to=pending.status,
        at=at,
        source="tocsin:escalation",
        confirmed=snapshot.confirmed,
        incident=snapshot.incident,
        detail=snapshot.detail,
        episode=pending.episode,
        episode_started=snapshot.episode_started,
        provider_status=snapshot.provider_status,
        escalation=EventEscalation(
            policy=pending.policy,
            kind=policy.kind,
            action=action.kind,
            dedup_key=pending.dedup_key,
            label=policy.label,
            since=pending.since,
            min_status=policy.min_status,
            after=policy.after,
            count=count,
        ),
    )


@dataclass(frozen=True, slots=True)
class EscalatorSettings(LeaseSettings):
    """The escalator's (pages are due to the second, not to the tick)."""


class Escalator(LeasedReader):
    """Runs the policies: one replica at a time, resumable, never paging twice."""

    name = "escalator"

    def __init__(
        self,
        config: TocsinConfig,
        store: Store,
        settings: EscalatorSettings,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        holder = settings.holder or unique_holder(settings.instance)
        lease = Lease(store, LEASE, holder, settings.lease, gauge=metrics.ESCALATOR_LEADER)
        super().__init__(store, lease, settings.reading(GROUP))
        self.policies: dict[str, EscalationPolicy] = {p.policy_id: p for p in config.escalation}
        self.settings = settings
        self.clock = clock
        self.pending: dict[str, Pending] = {}

    # ----------------------------------------------------------------- decisions

    async def fold(self, event: Event) -> None:
        """Fold one event into every policy's pending escalations."""
        actions: list[tuple[EscalationPolicy, Action]] = []
        changed = False
        for policy in self.policies.values():
            key = pending_key(policy.policy_id, event.provider)
            before = self.pending.get(key)
            after, found = observe(policy, before, event)
            changed |= after is not before
            self._put(key, after)
            actions += [(policy, action) for action in found]
        await self._carry_out(actions, changed)

    async def tick(self) -> None:
        """Send what has come due."""
        now = self.clock()
        actions: list[tuple[EscalationPolicy, Action]] = []
        for key, pending in list(self.pending.items()):
            policy = self.policies[pending.policy]
            after, found = due(policy, pending, now)
            self.pending[key] = after
            actions += [(policy, action) for action in found]
        await self._carry_out(actions, bool(actions))

    def _put(self, key: str, pending: Pending | None) -> None:
        if pending is None:
            self.pending.pop(key, None)
        else:
            self.pending[key] = pending

    async def _carry_out(
        self, actions: Iterable[tuple[EscalationPolicy, Action]], changed: bool
    ) -> None:
        """Append the events first, then save: a crash in between repeats an append (same
        id, so the dispatcher delivers it once), never loses one."""
        now = self.clock()
        for policy, action in actions:
            event = escalation_event(policy, action, now)
            await self.store.append(event)
            metrics.ESCALATIONS.labels(policy.policy_id, action.kind).inc()
            log.info(
                "escalation " + action.kind,
                policy=policy.policy_id,
                provider=event.provider,
                dedup_key=action.pending.dedup_key,
            )
        if changed:
            await self.save()

    # ----------------------------------------------------------------- persistence

    async def load(self) -> None:
        self.pending = {}
        for pending in read_pending(await self.store.get_value(STATE), self.clock()):
            if pending.policy not in self.policies:
                log.warning(
                    "a pending escalation's policy is gone from the config; dropped "
                    + ("(its page stays open: resolve it by hand)" if pending.paged_at else ""),
                    policy=pending.policy,
                    provider=pending.provider,
                )
                continue
            self.pending[pending.key] = pending
        metrics.PENDING_ESCALATIONS.set(len(self.pending))

    async def save(self) -> None:
        body = {key: p.model_dump(mode="json", by_alias=True) for key, p in self.pending.items()}
        await self.store.set_value(STATE, json.dumps(body))
        metrics.PENDING_ESCALATIONS.set(len(self.pending))


async def pending_escalations(store: Store) -> list[Pending]:
    """What the store holds (for ``tocsin status``): readable entries, oldest first."""
    found = read_pending(await store.get_value(STATE), utcnow())
    return sorted(found, key=lambda p: p.since)


def read_pending(raw: str | None, now: datetime) -> list[Pending]:
    """The pending escalations of the stored value: each one that does not read as one
    (not an object, a field of the wrong type, a date no clock can reach) is dropped, and
    said once. Details are scrubbed (an older version may have stored a key)."""
    stored = read_object("pending escalations", STATE, raw)
    found = []
    for key, value in (stored or {}).items():
        try:
            pending = Pending.model_validate(value)
        except Exception as exc:  # whatever a hostile value makes the model raise
            drop("pending escalation", key, raw, f"{type(exc).__name__}: {exc}")
            continue
        wrong = _implausible(pending, now)
        if wrong is not None:
            drop("pending escalation", key, raw, wrong)
            continue
        snapshot = pending.snapshot
        detail = scrub_detail(snapshot.detail)
        if detail != snapshot.detail:
            snapshot = snapshot.model_copy(update={"detail": detail})
            pending = pending.model_copy(update={"snapshot": snapshot})
        found.append(pending)
    return found


def _implausible(pending: Pending, now: datetime) -> str | None:
    """Why this pending escalation's dates are not ones tocsin wrote, or ``None``."""
    dates = {
        "since": pending.since,
        "paged_at": pending.paged_at,
        "last_sent": pending.last_sent,
        "snapshot.at": pending.snapshot.at,
        "snapshot.episode_started": pending.snapshot.episode_started,
    }
    for name, at in dates.items():
        if at is None:
            continue
        if at.utcoffset() is None:
            return f"{name} has no time zone"
        if not now - OLDEST <= at <= now + AHEAD:
            return f"{name} {at.isoformat()} is not a date tocsin wrote"
    return None
