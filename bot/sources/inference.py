"""The inference probe: one tiny completion per model, read like a user's app would read it.

``GET /models`` stays up through most outages that hurt (529 ``overloaded_error`` on the
completion endpoint, one model failing, completions slowing to 30 s), so this probe calls the
models the team uses, in the provider's own wire format (:mod:`bot.probes`), and reads the
answer, not only its status code. Each model is its own component.

Per model it keeps the last ``window`` calls: the failure counts a notice gives ("5 of 5 calls
answered 529 overloaded") and the latency median that decides ``degraded``, with hysteresis on
the way back (over the budget to enter, under 80 % of it to leave), so one slow call is not news
and a latency hovering at the budget does not flap. A longer reservoir gives p50/p95.
"""

from __future__ import annotations

import asyncio
import codecs
import re
import statistics
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from bot.models import Observation, ProbeError, SourceKind, Status
from bot.outside import one_line
from bot.probes.wire import Answer, ProbeCall, SseParser, WireFormat
from bot.sources import compression
from bot.sources.fetch import capped_chunks

#: The latency median must fall under this share of the budget to leave ``degraded``.
RECOVERY_SHARE = 0.8
#: How many calls the p50/p95 figures cover.
RESERVOIR = 100
#: Bytes of one answer we read at most: a 1-token completion is a few hundred.
MAX_ANSWER_BYTES = 256 * 1024
#: Line ends of an event stream; a CR at the very end may be half of a CRLF.
_EOL = re.compile(r"\r\n|\r(?!$)|\n")


@dataclass(frozen=True, slots=True)
class ProbedModel:
    id: str
    name: str


@dataclass(slots=True)
class _Call:
    failed: bool
    answer: Answer


@dataclass(slots=True)
class ModelWindow:
    """What the probe remembers of one model's recent calls."""

    size: int
    calls: deque[_Call] = field(default_factory=deque)
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=RESERVOIR))
    slow: bool = False

    def add(self, call: _Call, latency_ms: float | None) -> None:
        self.calls.append(call)
        while len(self.calls) > self.size:
            self.calls.popleft()
        if latency_ms is not None:
            self.latencies.append(latency_ms)

    def median(self) -> float | None:
        recent = list(self.latencies)[-self.size :]
        if len(recent) < min(self.size, 3):
            return None
        return float(statistics.median(recent))

    def percentile(self, share: float) -> float | None:
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]

    def judge_latency(self, budget_ms: float) -> bool:
        """Whether the model is slow now: the median over the budget enters, under
        :data:`RECOVERY_SHARE` of it leaves (hysteresis)."""
        median = self.median()
        if median is not None:
            if not self.slow and median > budget_ms:
                self.slow = True
            elif self.slow and median < budget_ms * RECOVERY_SHARE:
                self.slow = False
        return self.slow

    def failures(self) -> str:
        """'5 of 5 calls answered 529 overloaded' (the most frequent reason of the window)."""
        failed = [c.answer for c in self.calls if c.failed]
        reason, _ = Counter(_phrase(a) for a in failed).most_common(1)[0]
        return f"{len(failed)} of {len(self.calls)} calls {reason}"


class InferenceProbeSource:
    kind = SourceKind.PROBE
    kind_name = "inference"

    def __init__(
        self,
        provider: str,
        wire: WireFormat,
        api_url: str,
        models: Sequence[ProbedModel],
        key: str | None,
        *,
        interval: float = 60.0,
        timeout: float = 30.0,
        latency_budget: float = 8.0,
        window: int = 5,
        stream: bool = False,
        extra_body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        failure_status: Status = Status.MAJOR_OUTAGE,
        key_hint: str | None = None,
        config_problem: str | None = None,
    ) -> None:
        self.provider = provider
        self.wire = wire
        self.api_url = api_url.rstrip("/")
        self.models = tuple(models)
        self._key = key
        self.interval = interval
        self.timeout = timeout
        self.latency_budget = latency_budget
        self.stream = stream
        self.extra_body = dict(extra_body or {})
        self.headers = dict(headers or {})
        self.failure_status = failure_status
        self.key_hint = key_hint
        self.config_problem = config_problem
        self.windows = {m.id: ModelWindow(window) for m in self.models}
        self.id = f"{provider}:probe"

    def __repr__(self) -> str:  # the key is not part of it
        return f"InferenceProbeSource({self.provider!r}, {self.wire.name!r}, {len(self.models)})"

    async def check(self, client: httpx.AsyncClient) -> list[Observation]:
        return list(await asyncio.gather(*(self.probe(client, m) for m in self.models)))

    async def probe(self, client: httpx.AsyncClient, model: ProbedModel) -> Observation:
        if self.config_problem:
            return self._observe(model, None, ProbeError.CONFIG, self.config_problem)
        call = self.wire.call(
            self.api_url, model.id, self._key, stream=self.stream, extra=self.extra_body
        )
        answer, latency = await self._send(client, call, model.id)
        return self._judge(model, answer, latency)

    async def _send(
        self, client: httpx.AsyncClient, call: ProbeCall, model: str
    ) -> tuple[Answer, float | None]:
        """One call; the latency is to the first token when streaming, else to the end."""
        started = time.perf_counter()
        answered = False
        try:
            async with (
                asyncio.timeout(self.timeout),
                client.stream(
                    call.method,
                    call.url,
                    headers={
                        "Accept-Encoding": compression.ACCEPTED,
                        **self.headers,
                        **call.headers,
                    },
                    json=call.json,
                    timeout=self.timeout,
                    follow_redirects=False,
                ) as response,
            ):
                answered = True
                if self.stream and response.is_success and _is_event_stream(response):
                    return await self._read_stream(response, model, started)
                body = b"".join([c async for c in capped_chunks(response, MAX_ANSWER_BYTES)])
                latency = _ms_since(started)
                return self.wire.read(response.status_code, body, model, key=self._key), latency
        except compression.TooBig:
            return _too_big(), None
        except (compression.Unsupported, compression.Undecodable) as exc:
            detail = one_line(f"{type(exc).__name__}: {exc}", 200)
            return Answer(ProbeError.ANSWER, "an answer in an unreadable encoding", detail), None
        except (TimeoutError, httpx.TimeoutException):
            return Answer(ProbeError.TIMEOUT, f"got no answer within {self.timeout:g}s"), None
        except (httpx.LocalProtocolError, UnicodeEncodeError):
            return Answer(ProbeError.CONFIG, "could not be sent", _unsendable(self.key_hint)), None
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            detail = f"the probe's api_url cannot be used ({type(exc).__name__})"
            return Answer(ProbeError.CONFIG, "could not be sent", detail), None
        except httpx.HTTPError as exc:
            if answered:  # the answer began and was cut: the provider's failure, not the network's
                cut = Answer(ProbeError.ANSWER, "were cut off mid-answer", type(exc).__name__)
                return cut, None
            return Answer(ProbeError.NETWORK, f"could not connect ({type(exc).__name__})"), None

    async def _read_stream(
        self, response: httpx.Response, model: str, started: float
    ) -> tuple[Answer, float | None]:
        reading = self.wire.stream(model, key=self._key)
        parser = SseParser()
        first_token: float | None = None
        async for line in _lines(capped_chunks(response, MAX_ANSWER_BYTES)):
            event = parser.feed_line(line)
            if event is None:
                continue
            answer = reading.feed(*event)
            if first_token is None and reading.started:
                first_token = _ms_since(started)
            if answer is not None:
                return answer, first_token
        tail = parser.flush()  # an event not closed by a blank line before EOF
        if tail is not None and (answer := reading.feed(*tail)) is not None:
            return answer, first_token
        return reading.cut(), first_token

    def _judge(self, model: ProbedModel, answer: Answer, latency: float | None) -> Observation:
        error = answer.error
        if error is not None and error.is_config:
            return self._observe(model, latency, error, answer.detail or answer.reason)
        window = self.windows[model.id]
        failed = error is not None and error is not ProbeError.RATE_LIMITED
        window.add(_Call(failed, answer), None if error is not None else latency)
        if failed:
            return self._observe(model, latency, error, window.failures())
        slow = window.judge_latency(self.latency_budget * 1000.0)
        if error is ProbeError.RATE_LIMITED:
            return self._observe(model, latency, error, "rate limited (HTTP 429)")
        if slow:
            median = window.median() or 0.0
            detail = (
                f"slow: median {median:.0f} ms over the last {len(window.calls)} calls, "
                f"over the {self.latency_budget:g}s budget"
            )
            return self._observe(model, latency, None, detail, Status.DEGRADED)
        return self._observe(model, latency, None, None, Status.OPERATIONAL)

    def _observe(
        self,
        model: ProbedModel,
        latency_ms: float | None,
        error: ProbeError | None,
        detail: str | None,
        status: Status | None = None,
    ) -> Observation:
        if status is None:
            config = error is not None and error.is_config
            status = Status.UNKNOWN if config else self.failure_status
            if error is ProbeError.RATE_LIMITED:
                status = Status.OPERATIONAL
        window = self.windows[model.id]
        return Observation(
            provider=self.provider,
            component=model.id,
            component_name=model.name,
            status=status,
            source=self.id,
            kind=SourceKind.PROBE,
            latency_ms=latency_ms,
            error=error,
            detail=detail,
            model=model.id,
            latency_p50_ms=window.percentile(0.5),
            latency_p95_ms=window.percentile(0.95),
        )


def _phrase(answer: Answer) -> str:
    """How the counts say a failure: 'answered 529 overloaded', 'got no answer within 30s'."""
    reason = answer.reason
    if answer.error not in (ProbeError.HTTP, ProbeError.ANSWER) or reason.startswith(
        ("were ", "got ", "could ", "ended ")
    ):
        return reason
    return f"ended in {reason}" if "stream" in reason else f"answered {reason}"


def _is_event_stream(response: httpx.Response) -> bool:
    content_type: str = response.headers.get("content-type", "")
    return content_type.startswith("text/event-stream")


async def _lines(chunks: AsyncIterator[bytes]) -> AsyncIterator[str]:
    """``text/event-stream`` lines (CRLF, LF or CR ended) of UTF-8 ``chunks``; a CR at a
    chunk's end waits for the next chunk, which may begin with its LF."""
    text = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending = ""
    async for chunk in chunks:
        *whole, pending = _EOL.split(pending + text.decode(chunk))
        for line in whole:
            yield line
    for line in re.split(r"\r\n|\r|\n", pending + text.decode(b"", final=True)):
        if line:
            yield line


def _too_big() -> Answer:
    return Answer(ProbeError.ANSWER, f"an answer over {MAX_ANSWER_BYTES // 1024} KiB")


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0


def _unsendable(key_hint: str | None) -> str:
    where = f"the key in {key_hint} or the probe's headers" if key_hint else "the probe key"
    return (
        "probe request not sent: a header value holds a line break, control or non-ASCII "
        f"character: check {where}"
    )
