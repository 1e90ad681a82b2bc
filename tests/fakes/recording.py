"""A stand-in chat platform for dispatcher tests: it records every post, keeps threads, can
be told to fail (rate limits, outages, permanent errors), and can search its own history for
an event id the way Slack's message metadata allows."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import defaultdict
from dataclasses import dataclass, field

from bot.compose import Notice
from bot.notifier import Delivery, Intent, PermanentError, Receipt, RetryableError, Target
from bot.routing import Route


@dataclass
class Posted:
    target: str
    intent: Intent
    event_id: str
    title: str
    text: str
    ts: str
    thread_ts: str | None
    at: float = field(default_factory=time.monotonic)


class RecordingNotifier:
    kind = "recording"

    def __init__(self) -> None:
        self.posts: list[Posted] = []
        self.edits: list[tuple[str, str, str]] = []  # (target, ts, title)
        self.attempts: dict[str, list[float]] = defaultdict(list)
        self.fail_next: dict[str, list[Exception]] = defaultdict(list)
        self.permanent: dict[str, str] = {}
        self.crash_after_post: set[str] = set()
        self._ids = itertools.count(1)
        self.posted = asyncio.Event()
        #: Every root as posted (OPEN) or edited, whole: (target, notice) in order.
        self.roots: list[tuple[str, Notice]] = []

    def target(self, key: str, route: Route | None = None) -> Target:
        return Target(key, self, route or Route(providers=None))

    async def deliver(self, target: Target, delivery: Delivery) -> Receipt:
        self.attempts[target.key].append(time.monotonic())
        if target.key in self.permanent:
            raise PermanentError(self.permanent[target.key])
        if self.fail_next[target.key]:
            raise self.fail_next[target.key].pop(0)
        ts = f"{next(self._ids)}.000"
        thread_ts = (delivery.thread or {}).get("ts")
        self.posts.append(
            Posted(
                target.key,
                delivery.intent,
                delivery.event.id,
                delivery.notice.title,
                delivery.notice.text,
                ts,
                thread_ts,
            )
        )
        if delivery.root is not None and thread_ts:
            self.edits.append((target.key, thread_ts, delivery.root.title))
            self.roots.append((target.key, delivery.root))
        if delivery.intent is Intent.OPEN:
            self.roots.append((target.key, delivery.notice))
        self.posted.set()
        if target.key in self.crash_after_post:
            self.crash_after_post.discard(target.key)
            raise asyncio.CancelledError  # the process dies right after the platform took it
        return Receipt({"ts": thread_ts or ts})

    async def find_sent(self, target: Target, delivery: Delivery) -> Receipt | None:
        for post in self.posts:
            if post.target == target.key and post.event_id == delivery.event.id:
                return Receipt({"ts": post.thread_ts or post.ts})
        return None

    async def close(self) -> None:
        return None

    def for_target(self, key: str) -> list[Posted]:
        return [p for p in self.posts if p.target == key]

    def rate_limit(self, key: str, times: int, retry_after: float) -> None:
        self.fail_next[key].extend(
            RetryableError("ratelimited", retry_after=retry_after) for _ in range(times)
        )
