"""``GET /api/v1/route/<group>`` and ``GET /api/v1/route/stream``: the routing answer over HTTP.

The group answer carries an ``ETag`` (a conditional GET costs a 304) and a short
``Cache-Control``. The stream is Server-Sent Events: one ``route`` event per group on connect,
then one whenever a group changes (the store is read every ``poll`` seconds), and a comment
every ``ping`` seconds so proxies keep the connection. Streams are bounded in number
(``max_streams``): one more is a 503, never an unbounded pile of open connections.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from aiohttp import web

from bot.logs import get_logger
from bot.route_answers import RouteAnswer, changed, route_answer, route_answers
from bot.store import Store, StoreUnavailable
from config.schema import TocsinConfig

log = get_logger("tocsin.route_api")

#: How long a client may reuse an answer without asking again.
MAX_AGE = 5


@dataclass(frozen=True, slots=True)
class StreamSettings:
    poll: float = 1.0
    ping: float = 15.0
    max_streams: int = 200


class RouteApi:
    def __init__(
        self, config: TocsinConfig, store: Store, settings: StreamSettings | None = None
    ) -> None:
        self.config = config
        self.store = store
        self.settings = settings or StreamSettings()
        self.streams = 0
        #: The last answers and when they were made: every stream shares one store read a
        #: ``poll``, however many clients listen.
        self._cache: tuple[float, list[RouteAnswer]] | None = None
        #: Set when the server stops: open streams end within a ``poll`` (aiohttp would wait
        #: for them, and a stream never ends by itself).
        self.closing = False

    async def close(self, app: web.Application | None = None) -> None:
        self.closing = True

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/v1/route/stream", self.stream),  # before the {group} route
            web.get("/api/v1/route/{group}", self.group),
        ]

    async def group(self, request: web.Request) -> web.Response:
        name = request.match_info["group"]
        if name not in self.config.routes:
            return web.json_response({"error": "no such route group"}, status=404)
        answer = route_answer(self.config, await self.store.states(), name)
        assert answer is not None
        headers = {"ETag": answer.etag, "Cache-Control": f"max-age={MAX_AGE}"}
        if answer.etag in _etags(request.headers.get("If-None-Match", "")):
            return web.Response(status=304, headers=headers)
        return web.json_response(answer.document(), headers=headers)

    async def stream(self, request: web.Request) -> web.StreamResponse:
        if self.streams >= self.settings.max_streams:
            return web.json_response({"error": "too many streams"}, status=503)
        self.streams += 1
        try:
            return await self._serve(request)
        finally:
            self.streams -= 1

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",  # nginx: do not hold events back
            }
        )
        await response.prepare(request)
        sent: dict[str, str] = {}
        quiet = 0.0
        while not (self.closing or _gone(request)):
            answers = await self._answers()
            fresh = changed(sent, answers) if answers is not None else []
            for answer in fresh:
                await response.write(_event(answer))
                sent[answer.group] = answer.etag
            if fresh:
                quiet = 0.0
            elif quiet >= self.settings.ping:
                await response.write(b": ping\n\n")
                quiet = 0.0
            await asyncio.sleep(self.settings.poll)
            quiet += self.settings.poll
        return response

    async def _answers(self) -> list[RouteAnswer] | None:
        """Every group now; ``None`` while the store is away (the client keeps what it has)."""
        now = asyncio.get_running_loop().time()
        if self._cache is not None and now - self._cache[0] < self.settings.poll:
            return self._cache[1]
        try:
            answers = route_answers(self.config, await self.store.states())
            self._cache = (now, answers)
            return answers
        except StoreUnavailable:
            log.warning("route stream: the store is unreachable; holding the last answers")
            return None


def _gone(request: web.Request) -> bool:
    """The client hung up (or the server is stopping): aiohttp does not cancel the handler,
    and a quiet stream would only notice at its next write."""
    transport = request.transport
    return transport is None or transport.is_closing()


def _event(answer: RouteAnswer) -> bytes:
    data = json.dumps(answer.document(), separators=(",", ":"))  # one line: JSON escapes \n
    return f"event: route\ndata: {data}\n\n".encode()


def _etags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}
