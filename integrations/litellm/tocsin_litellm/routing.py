"""Route snapshot: tocsin's health verdicts, kept locally and fresh from the SSE stream.

Routing must not wait on tocsin, so the router reads a precomputed set; a background task
follows ``/api/v1/route/stream`` and swaps that set when a group changes. Everything fails
open: with no fresh, well-formed snapshot the router sees every deployment it would without us.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Mapping, Sequence
from typing import Final

import httpx

from .signals import stop_task

log: Final = logging.getLogger("tocsin_litellm")


class GroupRoute:
    """One group's members as tocsin ranked them."""

    __slots__ = ("group", "unhealthy", "version")

    def __init__(self, group: str, version: int | None, unhealthy: frozenset[str]) -> None:
        self.group = group
        self.version = version
        self.unhealthy = unhealthy


def parse_route(data: str) -> GroupRoute | None:
    """A ``route`` event's JSON, or None if it is not the contract's shape (garbage fails open)."""
    try:
        doc = json.loads(data)
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    group = doc.get("group")
    members = doc.get("members")
    version = doc.get("version")
    if not isinstance(group, str) or not isinstance(members, list):
        return None
    unhealthy: set[str] = set()
    for member in members:
        if not isinstance(member, dict):
            return None
        target = member.get("target")
        healthy = member.get("healthy")
        if not isinstance(target, str) or not isinstance(healthy, bool):
            return None
        if not healthy:
            unhealthy.add(target)
    return GroupRoute(group, version if isinstance(version, int) else None, frozenset(unhealthy))


class RouteSnapshot:
    """Which tocsin targets are unhealthy now, and whether that knowledge is still fresh."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        groups: Sequence[str] | None = None,
        max_age: float = 60.0,
        connect_timeout: float = 2.0,
        read_timeout: float = 45.0,
        min_backoff: float = 0.5,
        max_backoff: float = 30.0,
    ) -> None:
        self.stream_url: Final = url.rstrip("/") + "/api/v1/route/stream"
        self.groups: Final = frozenset(groups) if groups else None
        self.max_age: Final = max_age
        self._headers: Final = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
        # read_timeout > the stream's 15 s ping: a silent stream is a dead one.
        self._timeout: Final = httpx.Timeout(connect_timeout, read=read_timeout)
        self._min_backoff: Final = min_backoff
        self._max_backoff: Final = max_backoff
        self._routes: dict[str, GroupRoute] = {}
        #: The union of every group's unhealthy targets: the only thing the router reads.
        self.unhealthy: frozenset[str] = frozenset()
        #: Monotonic time of the last byte from tocsin (an event or a ping).
        self.seen_at: float | None = None
        self.connects = 0
        self.bad_events = 0
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    def fresh(self, now: float | None = None) -> bool:
        seen = self.seen_at
        if seen is None:
            return False
        return (time.monotonic() if now is None else now) - seen <= self.max_age

    # -- lifecycle -------------------------------------------------------------------------

    def ensure_started(self) -> None:
        if self._closed:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self._task is not None and self._loop is loop and not self._task.done():
            return
        self._loop = loop
        self._task = loop.create_task(self._follow(), name="tocsin-route-stream")

    async def aclose(self) -> None:
        self._closed = True  # a closed one is not restarted by a late callback
        task, self._task = self._task, None
        await stop_task(task)

    # -- stream ----------------------------------------------------------------------------

    def _apply(self, route: GroupRoute) -> None:
        if self.groups is not None and route.group not in self.groups:
            return
        routes = dict(self._routes)
        routes[route.group] = route
        self._routes = routes
        self.unhealthy = frozenset().union(*(r.unhealthy for r in routes.values()))

    def _forget(self) -> None:
        """Drop what we know: a stream that speaks garbage is not to be believed any more."""
        self._routes = {}
        self.unhealthy = frozenset()
        self.seen_at = None

    def _dispatch(self, event: str, data: list[str]) -> None:
        if event != "route" or not data:
            return
        route = parse_route("\n".join(data))
        if route is None:
            self.bad_events += 1
            self._forget()
            return
        self._apply(route)

    async def _follow(self) -> None:
        backoff = self._min_backoff
        async with httpx.AsyncClient(timeout=self._timeout) as client:
            while not self._closed:
                try:
                    if await self._read_stream(client):
                        backoff = self._min_backoff
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.debug("tocsin route stream error", exc_info=True)
                await asyncio.sleep(backoff * (0.5 + random.random()))  # jitter, not crypto
                backoff = min(self._max_backoff, backoff * 2)

    async def _read_stream(self, client: httpx.AsyncClient) -> bool:
        """Follow one connection until it ends; True if it delivered a well-formed event."""
        good = False
        async with client.stream("GET", self.stream_url, headers=self._headers) as response:
            content_type = response.headers.get("content-type", "")
            if response.status_code != 200 or not content_type.startswith("text/event-stream"):
                return False
            self.connects += 1
            event = "message"
            data: list[str] = []
            async for line in response.aiter_lines():
                if line == "":
                    if data:
                        before = self.bad_events
                        self._dispatch(event, data)
                        if self.bad_events == before and event == "route":
                            self.seen_at = time.monotonic()
                            good = True
                    event, data = "message", []
                elif line.startswith(":"):
                    if self._routes:  # a ping keeps a snapshot fresh, it cannot create one
                        self.seen_at = time.monotonic()
                else:
                    field, _, value = line.partition(":")
                    value = value.removeprefix(" ")
                    if field == "event":
                        event = value
                    elif field == "data":
                        data.append(value)
        return good

    # -- read side -------------------------------------------------------------------------

    def snapshot(self) -> Mapping[str, GroupRoute]:
        return self._routes
