"""The listening socket, bounded: how many connections, and how long each may stay silent.

aiohttp's server, left to its defaults, keeps a connection that never sends a request for as
long as its keep-alive timeout (an hour), and accepts as many as the process has descriptors:
15,000 idle sockets held the listener for minutes, and with it ``/healthz``. Here every
connection must send its first request's headers within :data:`HEADER_TIMEOUT`, an idle
kept-alive one is closed after :data:`KEEPALIVE_TIMEOUT`, and at most :data:`MAX_CONNECTIONS`
are open at once: one more is answered 503 and closed at once, and the listener serves the
others as before. aiohttp itself bounds the request line and headers (8 KiB a line, 128
headers); each route bounds its own body.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler

from bot.logs import get_logger

log = get_logger("tocsin.server")

#: Seconds a new connection has to send the complete headers of its first request.
HEADER_TIMEOUT = 10.0
#: Seconds a kept-alive connection may sit idle after a response (its next request's headers
#: must also be complete by then). Longer than the idle timeout of the usual reverse proxies
#: in front (nginx, AWS ALB and Traefik close theirs after 60-90 s), so a proxy never reuses a
#: connection tocsin is closing; aiohttp's own default is an hour.
KEEPALIVE_TIMEOUT = 75.0
#: Connections open at once: far above what Slack, a scraper and a few dashboards need, far
#: below the descriptors a process gets (``ulimit -n`` is often 1,024-65,536).
MAX_CONNECTIONS = 1000
#: At most one "at the cap" log line this often, however many connections are refused.
_WARN_EVERY = 60.0
_FULL_BODY = b"too many connections; retry later\n"
_FULL = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nRetry-After: 1\r\n"
    b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(_FULL_BODY), _FULL_BODY)
)


@dataclass(frozen=True)
class Limits:
    """What the listener allows; the defaults are what ``tocsin run`` uses."""

    header_timeout: float = HEADER_TIMEOUT
    keepalive_timeout: float = KEEPALIVE_TIMEOUT
    max_connections: int = MAX_CONNECTIONS


class BoundedSite(web.BaseSite):
    """aiohttp's ``TCPSite``, with a :class:`Gate` in front of its protocol factory."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, limits: Limits) -> None:
        super().__init__(runner)
        self._host = host
        self._port = port
        self._limits = limits

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None  # the runner is set up before a site is made
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            Gate(server, self._limits, loop), self._host, self._port
        )


class Gate:
    """The protocol factory: aiohttp's request handler for each new connection while there
    are fewer than ``max_connections``, a refusal beyond; and a deadline for the first
    request's headers, which aiohttp does not have."""

    def __init__(self, server: web.Server, limits: Limits, loop: asyncio.AbstractEventLoop):
        self.server = server
        self.limits = limits
        self.loop = loop
        self.refused = 0
        self._warned_at = float("-inf")
        #: Connections still waiting for their first request's headers (each leaves at its
        #: first request or at its deadline, whichever comes first).
        self._waiting: set[RequestHandler] = set()
        # Every handler the server makes from now on reads its request factory from here: a
        # call means a request's headers are complete on that connection.
        build_request = server.request_factory

        def requested(
            message: RawRequestMessage,
            payload: StreamReader,
            protocol: RequestHandler,
            writer: AbstractStreamWriter,
            task: asyncio.Task[None],
        ) -> web.BaseRequest:
            self._waiting.discard(protocol)
            return build_request(message, payload, protocol, writer, task)

        server.request_factory = requested

    def __call__(self) -> asyncio.BaseProtocol:
        if len(self.server.connections) >= self.limits.max_connections:
            self._refuse()
            return _Refused()
        handler = self.server()
        self._waiting.add(handler)
        self.loop.call_later(self.limits.header_timeout, self._expire, handler)
        return handler

    def _expire(self, handler: RequestHandler) -> None:
        """Close the connection if its first request's headers have not arrived."""
        if handler in self._waiting:
            self._waiting.discard(handler)
            handler.force_close()

    def _refuse(self) -> None:
        self.refused += 1
        now = time.monotonic()
        if now - self._warned_at >= _WARN_EVERY:
            self._warned_at = now
            log.warning(
                "the listener is at its connection cap: refusing new connections",
                max_connections=self.limits.max_connections,
                refused_so_far=self.refused,
            )


class _Refused(asyncio.Protocol):
    """One connection too many: a 503 that says so, then closed."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(_FULL)
        transport.close()


def server_options(limits: Limits) -> dict[str, Any]:
    """What aiohttp's request handler is told (``web.AppRunner(app, **options)``)."""
    return {"keepalive_timeout": limits.keepalive_timeout}
