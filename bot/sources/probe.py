"""The synthetic probe: a real API call with the team's key (e.g. list models).

Classification (DESIGN.md): a 2xx in time is up; a 2xx slower than the latency budget is
degraded; 5xx, 529, timeouts and connection errors are failures; 429 is up but rate-limited
(never an outage); 401/403 is a configuration alert for the admins, never an outage notice.
Other 4xx and redirects mean the probe itself is misconfigured: also an admin matter, and so
is a request that cannot be sent (a header value with a line break, a URL httpx refuses).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import httpx

from bot.logs import scrub
from bot.models import Observation, ProbeError, SourceKind, Status

#: A short answer is read to its end (for at most this long), so that its connection goes
#: back to the pool: a new TCP connection for every probe costs more than reading it. A
#: longer or slower one is left unread (its connection is closed, as before).
DRAIN_BYTES = 64 * 1024
DRAIN_SECONDS = 0.25


class ProbeSource:
    kind = SourceKind.PROBE
    kind_name = "probe"

    def __init__(
        self,
        provider: str,
        url: str,
        *,
        component: str = "api",
        component_name: str | None = "API",
        method: str = "GET",
        interval: float = 30.0,
        timeout: float = 10.0,
        latency_budget: float = 5.0,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        failure_status: Status = Status.MAJOR_OUTAGE,
        key_hint: str | None = None,
        config_problem: str | None = None,
    ) -> None:
        self.provider = provider
        self.url = url
        self.component = component
        self.component_name = component_name
        self.method = method
        self.interval = interval
        self.timeout = timeout
        self.latency_budget = latency_budget
        self.headers = dict(headers or {})
        self.params = dict(params or {})
        self.json_body = json_body
        self.failure_status = failure_status
        self.key_hint = key_hint
        #: Known at build time to make the request unsendable (a key with a line break inside
        #: it): every round is that configuration alert, and nothing is sent.
        self.config_problem = config_problem
        self.id = f"{provider}:probe"

    async def check(self, client: httpx.AsyncClient) -> list[Observation]:
        return [await self.probe(client)]

    async def probe(self, client: httpx.AsyncClient) -> Observation:
        if self.config_problem:
            return self._result(Status.UNKNOWN, None, ProbeError.CONFIG, self.config_problem)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout):
                async with client.stream(
                    self.method,
                    self.url,
                    headers=self.headers,
                    params=self.params or None,
                    json=self.json_body,
                    timeout=self.timeout,
                    follow_redirects=False,
                ) as response:
                    code = response.status_code  # headers are enough to classify
                    answered = time.perf_counter()
                    await _drain(response)
        except (TimeoutError, httpx.TimeoutException):
            return self._result(
                self.failure_status, None, ProbeError.TIMEOUT, f"no answer within {self.timeout:g}s"
            )
        except (httpx.LocalProtocolError, UnicodeEncodeError):
            return self._unsendable()
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            detail = f"probe URL {scrub(self.url)} cannot be used ({type(exc).__name__})"
            return self._result(
                Status.UNKNOWN, None, ProbeError.CONFIG, f"{detail}: check the probe's url"
            )
        except httpx.HTTPError as exc:
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            return self._result(self.failure_status, None, ProbeError.NETWORK, reason)
        latency = (answered - started) * 1000.0
        return self.classify(code, latency)

    def _unsendable(self) -> Observation:
        """The request could not be put on the wire: a header value with a line break or
        control character (a pasted key, usually), or one that is not ASCII. A configuration
        alert, never an outage; the library's message quotes the header, so it is not shown."""
        where = f"the key in {self.key_hint} or the probe's headers" if self.key_hint else None
        return self._result(
            Status.UNKNOWN,
            None,
            ProbeError.CONFIG,
            "probe request not sent: a header value holds a line break, control or non-ASCII "
            f"character: check {where or 'the probe key and headers'}",
        )

    def classify(self, code: int, latency_ms: float) -> Observation:
        """The DESIGN.md classification of one answer."""
        if 200 <= code < 300:
            if latency_ms > self.latency_budget * 1000.0:
                return self._result(
                    Status.DEGRADED,
                    latency_ms,
                    None,
                    f"slow: {latency_ms:.0f} ms, over the {self.latency_budget:g}s budget",
                )
            return self._result(Status.OPERATIONAL, latency_ms, None, None)
        if code == 429:
            return self._result(
                Status.OPERATIONAL, latency_ms, ProbeError.RATE_LIMITED, "rate limited (HTTP 429)"
            )
        if code in (401, 403):
            hint = f": check {self.key_hint}" if self.key_hint else ""
            return self._result(
                Status.UNKNOWN,
                latency_ms,
                ProbeError.AUTH,
                f"probe rejected our key (HTTP {code}){hint}",
            )
        if code >= 500:
            return self._result(self.failure_status, latency_ms, ProbeError.HTTP, f"HTTP {code}")
        return self._result(
            Status.UNKNOWN,
            latency_ms,
            ProbeError.CONFIG,
            f"probe got HTTP {code} from {self.url}: check the probe's url and method",
        )

    def _result(
        self, status: Status, latency_ms: float | None, error: ProbeError | None, detail: str | None
    ) -> Observation:
        return Observation(
            provider=self.provider,
            component=self.component,
            component_name=self.component_name,
            status=status,
            source=self.id,
            kind=SourceKind.PROBE,
            latency_ms=latency_ms,
            error=error,
            detail=detail,
        )


async def _drain(response: httpx.Response) -> None:
    """Read a short answer to its end (see :data:`DRAIN_BYTES`); never raises."""
    declared = response.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > DRAIN_BYTES):
        return
    read = 0
    try:
        async with asyncio.timeout(DRAIN_SECONDS):
            async for chunk in response.aiter_raw():
                read += len(chunk)
                if read > DRAIN_BYTES:
                    return
    except (TimeoutError, httpx.HTTPError):
        return
