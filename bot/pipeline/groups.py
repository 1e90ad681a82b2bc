"""What grouping keeps and shares: a group's record in the store, the claim on a group, and
the plans the :class:`~bot.pipeline.grouping.Grouping` stage hands to composing and recording.
See :mod:`bot.pipeline.grouping` for how they are used."""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from bot.compose import GroupMember, event_member
from bot.logs import get_logger
from bot.models import Event, EventCause, Status
from bot.outside import Unreadable, clip, load_json, one_line
from bot.pipeline.patience import Patience
from bot.store import Store
from bot.store.base import THREAD_TTL
from bot.store.decode import drop

log = get_logger("tocsin.dispatcher")

Sleep = Callable[[float], Awaitable[None]]

#: Members a group's record keeps (a root lists a few and counts the rest).
MEMBERS_KEPT = 100
#: A thread reference is a few short strings (see :func:`bot.store.decode.read_thread`).
REF_FIELDS_MAX = 14
REF_VALUE_MAX = 256
#: A group name that is not plain, or too long for a thread reference, goes by its digest.
_PLAIN = re.compile(r"[A-Za-z0-9._:/@-]{1,120}")


@dataclass(frozen=True, slots=True)
class GroupSettings:
    enabled: bool = True
    #: How long the first event of a group waits for the others (config ``group_wait``).
    wait: float = 15.0
    #: How long past ``wait`` a claim outlives a holder that stopped renewing it.
    grace: float = 10.0
    #: How often a waiting event looks again (a leader in this process wakes it at once).
    poll: float = 1.0
    #: How far back in the stream members are looked for: entries, and age.
    lookback: int = 500
    max_age: float = 3600.0

    @property
    def ttl(self) -> float:
        return self.wait + self.grace


def group_key(group: str) -> str:
    """The group's name in store keys and thread references: itself if plain and short,
    else its digest (the name comes from a status page)."""
    if _PLAIN.fullmatch(group):
        return group
    return "h:" + hashlib.sha256(group.encode("utf-8", "replace")).hexdigest()[:32]


# --------------------------------------------------------------------------- the record


class ListedMember(BaseModel):
    """One provider a group root lists: the event that opened it there, and how it was."""

    provider: str = Field(max_length=200)
    name: str = Field(max_length=200)
    episode: str = Field(max_length=1000)
    event: str = Field(max_length=200)
    status: Status
    detail: str = Field("", max_length=2000)

    @classmethod
    def of(cls, event: Event) -> ListedMember:
        member = event_member(event)
        return cls(
            provider=clip(event.provider, 200),
            name=clip(member.name, 200),
            episode=clip(event.episode or "", 1000),
            event=clip(event.id, 200),
            status=member.status,
            detail=clip(member.detail, 2000),
        )

    @property
    def shown(self) -> GroupMember:
        return GroupMember(self.provider, self.name, self.status, self.detail)


class GroupRecord(BaseModel):
    """What the store keeps of one group on one target (``kv:group:{group}:{target}``)."""

    cause: EventCause
    #: The group root's reference, as the platform gave it (the thread to reply under).
    root: dict[str, str]
    members: list[ListedMember] = Field(default_factory=list, max_length=MEMBERS_KEPT)

    def listed(self, event: Event) -> ListedMember | None:
        return next((m for m in self.members if m.episode == event.episode), None)

    def thread(self, group: str, event_id: str | None = None) -> dict[str, Any]:
        ref: dict[str, Any] = {**self.root, "group": group}
        if event_id is not None:
            ref["event"] = event_id
        return ref


def stored_cause(cause: EventCause) -> EventCause:
    """The cause as a record keeps it: bounded (a page's incident title can be 50 kB)."""
    return EventCause(
        upstream=one_line(cause.upstream, 100),
        name=one_line(cause.name, 100),
        incident=one_line(cause.incident, 600),
        url=cause.url if cause.url is None or len(cause.url) <= 2048 else None,
        group=clip(cause.group, 300),
    )


def root_ref(ref: dict[str, Any]) -> dict[str, str]:
    """A platform's receipt as a record keeps it: what finds the message again, no more."""
    kept = {
        str(k): str(v)
        for k, v in ref.items()
        if k not in ("event", "group", "reply") and len(str(v)) <= REF_VALUE_MAX
    }
    return dict(list(kept.items())[:REF_FIELDS_MAX])


class GroupBook:
    """Reads and writes groups' records (and their threads), defensively."""

    def __init__(self, store: Store, patience: Patience) -> None:
        self.store = store
        self.patience = patience

    @staticmethod
    def name(group: str, target: str) -> str:
        return f"group:{group}:{target}"

    async def read(self, group: str, target: str) -> GroupRecord | None:
        name = self.name(group, target)
        raw = await self.patience.run(self.store.get_value, name)
        if raw is None:
            return None
        try:
            return GroupRecord.model_validate(load_json(raw))
        except (Unreadable, ValueError) as exc:  # pydantic's errors are ValueErrors
            drop("group record", name, raw, one_line(f"{type(exc).__name__}: {exc}", 300))
            return None

    async def write(self, group: str, target: str, record: GroupRecord) -> None:
        """The record first (it says who is listed), then the group's thread."""
        body = record.model_dump_json()
        await self.patience.run(self.store.set_value, self.name(group, target), body, THREAD_TTL)
        await self.patience.run(
            self.store.set_thread, f"group:{group}", target, record.thread(group)
        )


# --------------------------------------------------------------------------- the claim


class Board:
    """Wakes the events of this process waiting on a claim when it is let go (the others,
    and those of other processes, look again every ``poll``)."""

    def __init__(self) -> None:
        self._waiting: dict[str, tuple[asyncio.Event, list[None]]] = {}

    async def wait(self, name: str, at_most: float) -> None:
        woken, waiters = self._waiting.setdefault(name, (asyncio.Event(), []))
        waiters.append(None)
        try:
            with suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), at_most)
        finally:
            waiters.pop()
            if not waiters and self._waiting.get(name, (None,))[0] is woken:
                del self._waiting[name]

    def wake(self, name: str) -> None:
        found = self._waiting.pop(name, None)
        if found is not None:
            found[0].set()


class Claim:
    """One event's claim on one (group, target): a lease held by the event's id, renewed
    while it is held (a holder that dies lets it expire)."""

    def __init__(
        self, store: Store, patience: Patience, board: Board, name: str, holder: str, ttl: float
    ) -> None:
        self.store = store
        self.patience = patience
        self.board = board
        self.name = name
        self.holder = holder
        self.ttl = ttl
        self.held = False
        self._renewing: asyncio.Task[None] | None = None

    async def take(self) -> bool:
        won = bool(
            await self.patience.run(self.store.acquire_lease, self.name, self.holder, self.ttl)
        )
        if won and self._renewing is None:
            self._renewing = asyncio.create_task(self._renew(), name=f"claim:{self.name}")
        self.held = self.held or won
        return won

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self.ttl / 3)
            try:
                ours = await self.store.acquire_lease(self.name, self.holder, self.ttl)
            except Exception as exc:  # the store away: the next round tries again
                log.warning("cannot renew a group claim", claim=self.name, error=str(exc))
                continue
            if not ours:
                log.warning("a group claim was lost (not renewed in time)", claim=self.name)
                return

    def drop(self) -> None:
        """Stop renewing (a crash, a shutdown): the claim expires on its own."""
        if self._renewing is not None:
            self._renewing.cancel()
            self._renewing = None

    async def release(self) -> None:
        """Done: let it go now, and wake this process's waiters."""
        self.drop()
        if self.held:
            await self.patience.run(self.store.release_lease, self.name, self.holder)
            self.held = False
        self.board.wake(self.name)


# --------------------------------------------------------------------------- plans


@dataclass(slots=True)
class GroupPlan:
    """A leader's group root: who it lists, and the event it is posted as."""

    group: str
    cause: EventCause
    members: list[Event]
    #: The event the root is posted as (metadata, ``find_sent``): the leader, or the dead
    #: leader whose claim was taken over (so its root, if it got out, is found, not doubled).
    root_event: Event


@dataclass(slots=True)
class GroupJoin:
    """A late joiner: the group it replies in (its record, read under the claim)."""

    group: str
    record: GroupRecord
