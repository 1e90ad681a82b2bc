"""A local fake of the providers' status pages and APIs, on a real loopback socket.

Routes are set per test and can be switched mid-test (outage → update → recovery). Each
route serves a body (a shared fixture, by name, or any bytes) or a misbehaviour: hang forever,
a 50 MB body, a redirect to a login page, an HTML error page, a compressed body or a gzip
bomb. ETag/If-None-Match is honoured so conditional GETs are exercised for real.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import hashlib
import json
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

Behaviour = Callable[[web.Request], Awaitable[web.StreamResponse]]


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def fixture_json(name: str) -> Any:
    return json.loads(fixture_bytes(name))


@functools.cache
def gzip_bomb(size: int) -> bytes:
    """``size`` zero bytes, gzip-compressed a mebibyte at a time (never all in memory)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(1024 * 1024)
    parts = [
        packer.compress(zeros[: min(len(zeros), size - done)])
        for done in range(0, size, len(zeros))
    ]
    return b"".join(parts) + packer.flush()


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    etag: bool = False
    behaviour: Behaviour | None = None


@dataclass
class SeenRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)


class FakeStatusServer:
    """``await server.start()``, then ``server.url``; ``set_*`` switches what a path serves."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        #: Another loopback address (127.0.0.2) is not covered by the subprocesses'
        #: ``NO_PROXY``: a replica given an unreachable proxy cannot reach it (tests/chaos.py).
        self.host = host
        self.routes: dict[str, Route] = {}
        self.requests: list[SeenRequest] = []
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._hung: list[asyncio.Event] = []

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> FakeStatusServer:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def close(self) -> None:
        for event in self._hung:
            event.set()
        if self._runner is not None:
            await self._runner.cleanup()

    # ------------------------------------------------------------- configure

    def set_bytes(self, path: str, body: bytes, **kwargs: Any) -> None:
        self.routes[path] = Route(body=body, **kwargs)

    def set_json(self, path: str, payload: Any, **kwargs: Any) -> None:
        self.set_bytes(path, json.dumps(payload).encode(), **kwargs)

    def set_fixture(self, path: str, name: str, **kwargs: Any) -> None:
        if name.endswith(".xml") and "content_type" not in kwargs:
            kwargs["content_type"] = "application/rss+xml"
        self.set_bytes(path, fixture_bytes(name), **kwargs)

    def set_status(self, path: str, status: int, body: bytes = b"", **kwargs: Any) -> None:
        self.set_bytes(path, body, status=status, **kwargs)

    def set_html(self, path: str, status: int = 200) -> None:
        page = b"<!DOCTYPE html><html><head><title>Just a moment...</title></head>" + (
            b"<body>Checking your browser</body></html>"
        )
        self.set_bytes(path, page, status=status, content_type="text/html; charset=utf-8")

    def set_hang(self, path: str) -> None:
        """Accept the request and never answer."""
        gate = asyncio.Event()
        self._hung.append(gate)

        async def hang(request: web.Request) -> web.StreamResponse:
            await gate.wait()
            return web.Response(status=503)

        self.routes[path] = Route(behaviour=hang)

    def set_slow(self, path: str, delay: float, body: bytes = b'{"data": []}') -> None:
        """Answer 200 after ``delay`` seconds."""

        async def slow(request: web.Request) -> web.StreamResponse:
            await asyncio.sleep(delay)
            return web.Response(body=body, content_type="application/json")

        self.routes[path] = Route(behaviour=slow)

    def set_huge(self, path: str, size: int = 50 * 1024 * 1024, *, declare: bool = True) -> None:
        """Stream ``size`` bytes of JSON-looking data (optionally without Content-Length)."""

        async def huge(request: web.Request) -> web.StreamResponse:
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            if declare:
                response.content_length = size
            await response.prepare(request)
            chunk = b"[" + b"0," * 32767 + b"0"
            sent = 0
            try:
                while sent < size:
                    piece = chunk[: size - sent]
                    await response.write(piece)
                    sent += len(piece)
            except (ConnectionResetError, ConnectionError):
                pass
            return response

        self.routes[path] = Route(behaviour=huge)

    def set_encoded(self, path: str, body: bytes, encoding: str, **kwargs: Any) -> None:
        """Serve ``body`` compressed: ``gzip``, ``deflate`` (zlib) or ``raw-deflate`` (what
        many servers send as ``Content-Encoding: deflate``)."""
        if encoding == "gzip":
            packed = gzip.compress(body)
        elif encoding == "deflate":
            packed = zlib.compress(body)
        else:
            packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
            packed, encoding = packer.compress(body) + packer.flush(), "deflate"
        headers = {**kwargs.pop("headers", {}), "Content-Encoding": encoding}
        self.set_bytes(path, packed, headers=headers, **kwargs)

    def set_gzip_bomb(self, path: str, size: int = 200 * 1024 * 1024) -> None:
        """A gzip body of ``size`` zero bytes: about a thousandth of that on the wire."""
        self.set_bytes(
            path, gzip_bomb(size), headers={"Content-Encoding": "gzip"}, content_type="text/plain"
        )

    def set_redirect(self, path: str, to: str = "/login", status: int = 302) -> None:
        self.routes[path] = Route(status=status, headers={"Location": to})
        if to.startswith("/") and to not in self.routes:
            self.set_html(to)

    # ---------------------------------------------------------------- serve

    def count(self, path: str) -> int:
        return sum(1 for r in self.requests if r.path == path)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(
            SeenRequest(
                request.method, request.path, request.query_string, dict(request.headers), body
            )
        )
        route = self.routes.get(request.path)
        if route is None:
            return web.Response(status=404, text="not found", content_type="text/plain")
        if route.behaviour is not None:
            return await route.behaviour(request)
        headers = dict(route.headers)
        if route.etag:
            tag = '"' + hashlib.sha256(route.body).hexdigest()[:16] + '"'
            headers["ETag"] = tag
            if request.headers.get("If-None-Match") == tag:
                return web.Response(status=304, headers=headers)
        if 300 <= route.status < 400:
            return web.Response(status=route.status, headers=headers)
        return (
            web.Response(status=route.status, body=route.body, headers=headers, content_type=None)
            if "Content-Type" in headers
            else web.Response(
                status=route.status,
                body=route.body,
                headers=headers,
                content_type=route.content_type.split(";")[0],
                charset="utf-8" if "charset" in route.content_type else None,
            )
        )
