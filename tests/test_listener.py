"""The listener's bounds, over real sockets: a connection that never finishes its headers is
closed, an idle kept-alive one too, and beyond the connection cap a new one is answered 503
and closed while the others (and ``/healthz``, once some are freed) are served as before.

Small limits (``bot.listener.Limits``) keep it quick; every wait is for a condition (the
server closing the socket), bounded, never a sleep that decides the outcome.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from contextlib import suppress
from dataclasses import dataclass

import httpx
import pytest
from aiohttp import web

from bot import logs
from bot.listener import Limits
from bot.server import Health, build_app, start_server
from bot.store import MemoryStore
from config.loader import build_config
from tests.chaos import until
from tests.redis_server import free_port

#: Longer than any limit below: a socket still open after this was not closed by the server.
PATIENCE = 15.0
HALF_REQUEST = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slow"


@dataclass
class Listening:
    runner: web.AppRunner
    port: int

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def open_connections(self) -> int:
        assert self.runner.server is not None
        return len(self.runner.server.connections)

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port)


async def _listen(limits: Limits) -> Listening:
    config = build_config({"providers": [], "console": {"enabled": False}})
    store = MemoryStore()
    app = build_app(config, store, Health(store=store))
    port = free_port()
    return Listening(await start_server(app, "127.0.0.1", port, limits), port)


@pytest.fixture
async def strict() -> AsyncIterator[Listening]:
    """Half a second for headers and for an idle keep-alive; room for 5 connections."""
    listening = await _listen(Limits(header_timeout=0.5, keepalive_timeout=0.5, max_connections=5))
    yield listening
    await listening.runner.cleanup()


@pytest.fixture
async def patient() -> AsyncIterator[Listening]:
    """Room for 3 connections, and a minute for headers: only the cap closes anything."""
    listening = await _listen(Limits(header_timeout=60, keepalive_timeout=60, max_connections=3))
    yield listening
    await listening.runner.cleanup()


async def _closed_by_server(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sent until it closed the connection (fails after PATIENCE)."""
    received = b""
    async with asyncio.timeout(PATIENCE):
        while chunk := await reader.read(65536):
            received += chunk
    return received


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with suppress(ConnectionError):
        await writer.wait_closed()


async def test_connections_that_never_finish_their_headers_are_closed(
    strict: Listening,
) -> None:
    silent = [await strict.connect() for _ in range(2)]
    slow = [await strict.connect() for _ in range(3)]
    for (_, writer), sent in zip(slow, [b"GE", b"GET /heal", HALF_REQUEST], strict=True):
        writer.write(sent)  # half a request line, or the line and half the headers
        await writer.drain()
    try:
        received = await asyncio.gather(*(_closed_by_server(r) for r, _ in silent + slow))
    finally:
        for _, writer in silent + slow:
            await _close(writer)
    assert received == [b""] * 5  # closed without an answer: there was no request to answer
    await until(lambda: strict.open_connections() == 0, timeout=5)
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{strict.base}/healthz")).status_code == 200


async def test_an_idle_kept_alive_connection_is_closed(strict: Listening) -> None:
    reader, writer = await strict.connect()
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        await writer.drain()
        answer = await _closed_by_server(reader)
    finally:
        await _close(writer)
    head = answer.split(b"\r\n", 1)[0]
    assert head == b"HTTP/1.1 200 OK"  # answered, kept alive, then closed once idle
    assert b"Connection: close" not in answer


async def test_beyond_the_cap_a_connection_is_refused_and_healthz_answers_once_freed(
    patient: Listening,
) -> None:
    out = io.StringIO()
    logs.configure("info", "json", stream=out)
    held = [await patient.connect() for _ in range(3)]
    try:
        await until(lambda: patient.open_connections() == 3, timeout=5)
        extra = [await patient.connect() for _ in range(4)]
        refusals = await asyncio.gather(*(_closed_by_server(r) for r, _ in extra))
        for _, writer in extra:
            await _close(writer)
        async with httpx.AsyncClient() as client:
            full = await client.get(f"{patient.base}/healthz")
            reader, writer = held[0]  # the cap refuses new connections, not the ones open
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            await writer.drain()
            still = await _closed_by_server(reader)
            await _close(held[1][1])  # held[0] is closed too (it asked to)
            await until(lambda: patient.open_connections() == 1, timeout=5)
            freed = await client.get(f"{patient.base}/healthz")
    finally:
        for _, writer in held:
            await _close(writer)
    assert full.status_code == 503
    assert "too many connections" in full.text
    assert still.startswith(b"HTTP/1.1 200 OK\r\n")
    for refusal in refusals:
        assert refusal.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
        assert refusal.endswith(b"too many connections; retry later\n")
    assert freed.status_code == 200
    assert freed.json()["status"] == "ok"
    # Five refusals, one line: a flood of connections does not become a flood of log lines.
    assert out.getvalue().count("the listener is at its connection cap") == 1
