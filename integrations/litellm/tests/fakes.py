"""Small aiohttp fakes on 127.0.0.1: an OpenAI-compatible model server and tocsin's contract."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from typing import Any

from aiohttp import web


async def _start(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None
    port: int = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, port


class FakeModel:
    """OpenAI chat completions; ``status`` switches it to 529 (overloaded) or 503."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.status = 200
        self.hits = 0
        self.runner: web.AppRunner | None = None
        self.port = 0

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def _chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.hits += 1
        if self.status == 529:
            err = {"message": "Overloaded", "type": "overloaded_error"}
            return web.json_response({"error": err}, status=529)
        if self.status != 200:
            err = {"message": "upstream unavailable", "type": "server_error"}
            return web.json_response({"error": err}, status=self.status)
        return web.json_response(
            {
                "id": f"chatcmpl-{self.hits}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": f"hi from {self.name}"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 3, "total_tokens": 4},
            }
        )

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        self.runner, self.port = await _start(app)

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


class FakeTocsin:
    """Records signal batches, serves route JSON and the SSE route stream, can be stopped."""

    def __init__(self, token: str = "secret") -> None:
        self.token = token
        self.batches: list[dict[str, Any]] = []
        self.posts = 0
        self.signal_mode = "ok"  # "ok" | "429" | "garbage"
        self.stream_mode = "ok"  # "ok" | "garbage"
        self.routes: dict[str, dict[str, Any]] = {}
        self._subscribers: list[asyncio.Queue[str | None]] = []
        self.runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def signals(self) -> list[dict[str, Any]]:
        return [s for b in self.batches for s in b["signals"]]

    def set_route(self, group: str, members: list[tuple[str, bool]]) -> None:
        """Members as (target, healthy); pushed to every open stream, like a group change."""
        version = self.routes.get(group, {}).get("version", 0) + 1
        ranked = sorted(members, key=lambda m: not m[1])
        self.routes[group] = {
            "group": group,
            "version": version,
            "members": [
                {
                    "target": target,
                    "provider": target.split("/", 1)[0],
                    "model": target.split("/", 1)[1],
                    "status": "operational" if healthy else "major_outage",
                    "healthy": healthy,
                    "confirmed": False,
                    "reason": "fake",
                    "latency_ms": 10.0,
                }
                for target, healthy in ranked
            ],
        }
        for queue in self._subscribers:
            queue.put_nowait(self._event(group))

    def _event(self, group: str) -> str:
        data = "not json {" if self.stream_mode == "garbage" else json.dumps(self.routes[group])
        return f"event: route\ndata: {data}\n\n"

    async def _signals(self, request: web.Request) -> web.Response:
        self.posts += 1
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"error": "bad token"}, status=401)
        if self.signal_mode == "429":
            return web.json_response(
                {"error": "slow down"}, status=429, headers={"Retry-After": "7"}
            )
        body = await request.json()
        if len(body["signals"]) > 1000:
            return web.json_response({"error": "too big"}, status=413)
        self.batches.append(body)
        if self.signal_mode == "garbage":
            return web.Response(status=202, text="<html>nope")
        return web.json_response({"accepted": len(body["signals"]), "rejected": 0}, status=202)

    async def _route(self, request: web.Request) -> web.Response:
        doc = self.routes.get(request.match_info["group"])
        if doc is None:
            return web.json_response({"error": "no such group"}, status=404)
        etag = '"' + hashlib.sha256(json.dumps(doc).encode()).hexdigest()[:16] + '"'
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        return web.json_response(doc, headers={"ETag": etag, "Cache-Control": "max-age=5"})

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._subscribers.append(queue)
        try:
            for group in self.routes:
                await response.write(self._event(group).encode())
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), timeout=15)
                except TimeoutError:
                    item = ": ping\n\n"
                if item is None:
                    break
                await response.write(item.encode())
        finally:
            self._subscribers.remove(queue)
        return response

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/api/v1/signals", self._signals)
        app.router.add_get("/api/v1/route/stream", self._stream)
        app.router.add_get("/api/v1/route/{group}", self._route)
        self.runner, self.port = await _start(app)

    async def stop(self) -> None:
        for queue in list(self._subscribers):
            queue.put_nowait(None)
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
