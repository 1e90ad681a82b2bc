"""Apps' own call outcomes as a signal: ``POST /api/v1/signals`` and ``POST /v1/traces``.

An app that calls AI providers knows before anyone else when its calls fail. With
``signals.tokens`` configured (:class:`config.schema.SignalsConfig`), it reports them:

* ``POST /api/v1/signals`` with ``Authorization: Bearer <token>`` and
  ``{"app": "checkout", "signals": [{"provider": "anthropic", "model": "claude-sonnet-4-5",
  "ok": false, "status": 529, "error_type": "overloaded", "latency_ms": 812, "at": ...}]}``
  (``app`` defaults to the token's name, ``at`` to now; ISO 8601 or unix seconds) →
  ``202 {"accepted": n, "rejected": m}``;
* ``POST /v1/traces``: OTLP/HTTP JSON as the OpenTelemetry SDKs export it; spans read per
  the GenAI semantic conventions (``gen_ai.provider.name`` or the older ``gen_ai.system``,
  ``gen_ai.request.model``, ``error.type``, span ``status.code`` 2, ``http.response.
  status_code``, the duration from the start and end times) → ``200 {"partialSuccess":
  {"rejectedSpans": n}}``. A span without a GenAI provider is not a model call: ignored (not
  rejected, not counted).

Every token is compared with ``hmac.compare_digest`` (of SHA-256 digests: one length) against
every configured one, whether one was given or not: one answer (401) and one path for a
missing and a wrong token. Each token has a token bucket of ``rate`` batches a second (a burst
of one second's worth, in this replica's memory); beyond it 429 with ``Retry-After``. A body
over ``max_body_bytes`` or a batch over ``max_batch`` is 413. Each item is validated (a watched
provider id, a bounded model of a safe charset, bounded fields): a bad one is counted as
rejected, never a 500, never a state. What is accepted is added to the store's 10 s buckets
(:meth:`bot.store.base.Store.add_signals`), so any replica can take signals and the leader
(:mod:`bot.sources.traffic`) reads the sums.

How a call counts: 429 (or an error type saying rate limit) is rate limiting, never a failure;
5xx, 529, 408, no status at all (timeouts, connection errors) and a 2xx/3xx the app calls not
ok are failures; other 4xx are the app's own mistakes (counted as calls, not failures).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot import metrics
from bot.hooks import RequestRefused, read_capped
from bot.logs import get_logger, register_secrets, scrub
from bot.models import utcnow
from bot.outside import Unreadable, load_json
from bot.store import Store
from bot.store.base import SIGNAL_BUCKET, SIGNAL_LABELS_KEPT, SignalTally
from config.schema import MODEL_ID, PROVIDER_ID, SIGNAL_APP, TocsinConfig

log = get_logger("tocsin.signals")

SIGNALS_ROUTE = "/api/v1/signals"
TRACES_ROUTE = "/v1/traces"
#: How far ahead of now a reported time may be (clocks drift); older than the window is
#: clamped to its start.
FUTURE_SKEW = 5.0
_ERROR_TYPE = r"^[A-Za-z0-9_.:-]{1,64}$"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.:-]+")
_RATE_WORDS = ("rate_limit", "ratelimit", "too_many_requests", "toomanyrequests")

#: GenAI semantic conventions' provider names (``gen_ai.provider.name``, and the older
#: ``gen_ai.system``) → tocsin's provider ids.
GENAI_PROVIDERS: Mapping[str, str] = {
    "anthropic": "anthropic",
    "openai": "openai",
    "gcp.gemini": "google-gemini",
    "gcp.vertex_ai": "google-gemini",
    "gcp.gen_ai": "google-gemini",
    "gemini": "google-gemini",
    "google": "google-gemini",
    "vertex_ai": "google-gemini",
    "groq": "groq",
    "cohere": "cohere",
    "deepseek": "deepseek",
    "xai": "xai",
    "x_ai": "xai",
    "mistral_ai": "mistral",
    "mistralai": "mistral",
    "mistral": "mistral",
    "perplexity": "perplexity",
    "together": "together",
    "together_ai": "together",
    "openrouter": "openrouter",
    "fireworks": "fireworks",
    "fireworks_ai": "fireworks",
}

Outcome = Literal["ok", "failure", "rate_limited", "client_error"]


class SignalItem(BaseModel):
    """One reported call."""

    model_config = ConfigDict(extra="ignore", strict=False)

    provider: Annotated[str, Field(pattern=PROVIDER_ID)]
    model: Annotated[str, Field(pattern=MODEL_ID)]
    ok: bool
    status: Annotated[int, Field(ge=100, le=599)] | None = None
    error_type: Annotated[str, Field(pattern=_ERROR_TYPE)] | None = None
    latency_ms: Annotated[float, Field(ge=0, le=3_600_000)] | None = None
    at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Call:
    """A reported call, validated: what gets counted."""

    provider: str
    model: str
    outcome: Outcome
    label: str | None
    latency_ms: float | None
    at: datetime


def classify(ok: bool, status: int | None, error_type: str | None) -> Outcome:
    """How a call counts (the module's docstring)."""
    words = (error_type or "").lower()
    if status == 429 or any(w in words for w in _RATE_WORDS):
        return "rate_limited"
    if ok and not error_type and (status is None or status < 400):
        return "ok"
    if status is None or status >= 500 or status == 408 or status < 400:
        return "failure"
    return "client_error"


def failure_label(status: int | None, error_type: str | None) -> str:
    """ "529 overloaded", "timeout", "503": the failure's kind in a few words."""
    parts = [str(status)] if status is not None else []
    if error_type and error_type != str(status):
        parts.append(error_type)
    return " ".join(parts) or "error"


class TokenBucket:
    """``rate`` per second, at most ``burst`` at once."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.last = burst, time.monotonic()

    def take(self) -> float:
        """0 when one is taken; else the seconds until one is there."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class Throttled(RequestRefused):
    def __init__(self, retry_after: float) -> None:
        super().__init__(429, "rate_limited", "too many batches from this token; slow down")
        self.retry_after = max(1, math.ceil(retry_after))


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).digest()


class SignalReceiver:
    """The two routes; mounted by :func:`bot.server.build_app` when tokens are configured."""

    def __init__(self, config: TocsinConfig, store: Store) -> None:
        settings = config.signals
        if not settings.enabled:
            raise ValueError("signals.tokens is empty: no inbound endpoint without a token")
        register_secrets(t.token for t in settings.tokens)
        self.settings = settings
        self.store = store
        self.watched = frozenset(config.provider_ids)
        self._tokens = [(t.name, _digest(t.token.get_secret_value())) for t in settings.tokens]
        burst = max(1.0, settings.rate)
        self._buckets = {t.name: TokenBucket(settings.rate, burst) for t in settings.tokens}

    def routes(self) -> list[web.RouteDef]:
        return [web.post(SIGNALS_ROUTE, self.receive), web.post(TRACES_ROUTE, self.traces)]

    @property
    def ttl(self) -> float:
        return self.settings.window + 3 * SIGNAL_BUCKET

    # ---------------------------------------------------------------- the door

    def _authenticate(self, request: web.Request) -> str:
        """The token's name; every configured token is compared, given one or not."""
        scheme, _, offered = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            offered = ""
        digest = _digest(offered.strip())
        found: str | None = None
        for name, known in self._tokens:
            if hmac.compare_digest(digest, known) and found is None:
                found = name
        if found is None:
            raise RequestRefused(401, "unauthorized", "missing or wrong bearer token")
        return found

    def _throttle(self, token: str) -> None:
        wait = self._buckets[token].take()
        if wait > 0:
            metrics.SIGNALS_RATE_LIMITED.labels(token).inc()
            raise Throttled(wait)

    async def _document(self, request: web.Request, endpoint: str) -> tuple[str, Any]:
        token = self._authenticate(request)
        self._throttle(token)
        if endpoint == "otlp" and "protobuf" in request.content_type:
            raise RequestRefused(415, "unsupported", "only OTLP/HTTP JSON is taken here")
        body = await read_capped(request, self.settings.max_body_bytes)
        try:
            document = load_json(body, limit=self.settings.max_body_bytes)
        except Unreadable as exc:
            raise RequestRefused(400, "bad_request", f"the body is not JSON: {exc}") from None
        if not isinstance(document, dict):
            raise RequestRefused(400, "bad_request", "the body must be a JSON object")
        return token, document

    def _refuse(self, endpoint: str, refused: RequestRefused) -> web.Response:
        metrics.SIGNAL_BATCHES.labels(endpoint, refused.result).inc()
        log.warning(
            "signals refused", endpoint=endpoint, status=refused.status, reason=refused.reason
        )
        headers = {}
        if isinstance(refused, Throttled):
            headers["Retry-After"] = str(refused.retry_after)
        return web.json_response({"error": refused.reason}, status=refused.status, headers=headers)

    # ---------------------------------------------------------------- the routes

    async def receive(self, request: web.Request) -> web.Response:
        try:
            token, document = await self._document(request, "signals")
            items = document.get("signals")
            if not isinstance(items, list):
                raise RequestRefused(400, "bad_request", "`signals` must be a list")
            self._bounded(len(items))
            app = document.get("app", token)
            if not isinstance(app, str) or not re.match(SIGNAL_APP, app) or _secret_in(app):
                raise RequestRefused(400, "bad_request", f"`app` must match {SIGNAL_APP}")
        except RequestRefused as refused:
            return self._refuse("signals", refused)
        calls = [self._item(item) for item in items]
        accepted = await self._count({app: [c for c in calls if c is not None]})
        rejected = len(items) - accepted
        self._counted("signals", accepted, rejected)
        return web.json_response({"accepted": accepted, "rejected": rejected}, status=202)

    async def traces(self, request: web.Request) -> web.Response:
        try:
            token, document = await self._document(request, "otlp")
            spans = list(_spans(document))
            self._bounded(len(spans))
        except RequestRefused as refused:
            return self._refuse("otlp", refused)
        by_app: dict[str, list[Call]] = {}
        rejected = 0
        for resource, span in spans:
            service = resource.get("service.name")
            app = token
            if isinstance(service, str) and re.match(SIGNAL_APP, service):
                app = token if _secret_in(service) else service
            try:
                call = self._span(resource, span)
            except _Ignored:
                continue
            if call is None:
                rejected += 1
            else:
                by_app.setdefault(app, []).append(call)
        accepted = await self._count(by_app)
        self._counted("otlp", accepted, rejected)
        answer: dict[str, Any] = {"rejectedSpans": rejected}
        if rejected:
            answer["errorMessage"] = (
                f"{rejected} spans were not GenAI calls tocsin can read (a watched provider, a "
                "model, sane times)"
            )
        return web.json_response({"partialSuccess": answer}, status=200)

    def _bounded(self, count: int) -> None:
        if count > self.settings.max_batch:
            raise RequestRefused(
                413, "too_large", f"{count} items; at most {self.settings.max_batch} per batch"
            )

    def _counted(self, endpoint: str, accepted: int, rejected: int) -> None:
        metrics.SIGNAL_BATCHES.labels(endpoint, "accepted").inc()
        metrics.SIGNALS.labels("accepted").inc(accepted)
        metrics.SIGNALS.labels("rejected").inc(rejected)

    # ---------------------------------------------------------------- reading items

    def _item(self, raw: object) -> Call | None:
        if not isinstance(raw, dict):
            return None
        try:
            item = SignalItem.model_validate(raw)
        except (ValidationError, ValueError, TypeError, OverflowError):
            return None
        if item.provider not in self.watched or _secret_in(item.model, item.error_type):
            return None
        outcome = classify(item.ok, item.status, item.error_type)
        label = failure_label(item.status, item.error_type) if outcome == "failure" else None
        return self._call(item.provider, item.model, outcome, label, item.latency_ms, item.at)

    def _span(self, resource: Mapping[str, object], span: object) -> Call | None:
        if not isinstance(span, dict):
            return None
        attrs = {**resource, **_attributes(span.get("attributes"))}
        system = attrs.get("gen_ai.provider.name") or attrs.get("gen_ai.system")
        if system is None:
            raise _Ignored
        provider = GENAI_PROVIDERS.get(str(system).lower()[:64])
        model = attrs.get("gen_ai.request.model") or attrs.get("gen_ai.response.model")
        if provider not in self.watched or not isinstance(model, str):
            return None
        status = _int(attrs.get("http.response.status_code"))
        if status is not None and not 100 <= status <= 599:
            return None
        error = attrs.get("error.type")
        error_type = _UNSAFE.sub("_", str(error))[:64] if error not in (None, "") else None
        if not re.match(MODEL_ID, model) or _secret_in(model, error_type):
            return None
        span_status = span.get("status")
        code = span_status.get("code") if isinstance(span_status, dict) else None
        failed = code in (2, "2", "STATUS_CODE_ERROR")
        start, end = _int(span.get("startTimeUnixNano")), _int(span.get("endTimeUnixNano"))
        if (start is None and span.get("startTimeUnixNano") not in (None, "", 0)) or (
            end is None and span.get("endTimeUnixNano") not in (None, "", 0)
        ):
            return None  # a time that is no unix-nanos integer
        latency: float | None = None
        at: datetime | None = None
        if end is not None:
            if start is not None and not 0 <= end - start <= 3_600 * 10**9:
                return None
            try:
                at = datetime.fromtimestamp(end / 1e9, UTC)
            except (OverflowError, OSError, ValueError):
                return None
            latency = (end - start) / 1e6 if start is not None else None
        outcome = classify(not failed, status, error_type)
        label = failure_label(status, error_type) if outcome == "failure" else None
        return self._call(provider, model, outcome, label, latency, at)

    def _call(
        self,
        provider: str,
        model: str,
        outcome: Outcome,
        label: str | None,
        latency: float | None,
        at: datetime | None,
    ) -> Call:
        now = utcnow()
        earliest = now - timedelta(seconds=self.settings.window)
        latest = now + timedelta(seconds=FUTURE_SKEW)
        when = at if at is not None and at.tzinfo is not None else now
        when = min(max(when, earliest), latest)
        return Call(provider, model, outcome, label, latency, when)

    async def _count(self, by_app: Mapping[str, Iterable[Call]]) -> int:
        """Add the calls to their buckets in one store write; how many were counted."""
        counts: dict[tuple[str, str, int], SignalTally] = {}
        accepted = 0
        for app, call in ((app, call) for app, calls in by_app.items() for call in calls):
            bucket = int(call.at.timestamp()) // SIGNAL_BUCKET
            tally = counts.setdefault((call.provider, call.model, bucket), SignalTally())
            tally.calls += 1
            tally.app_calls[app] = tally.app_calls.get(app, 0) + 1
            if call.outcome == "rate_limited":
                tally.rate_limited += 1
            elif call.outcome == "failure":
                tally.failures += 1
                tally.app_failures[app] = tally.app_failures.get(app, 0) + 1
                label = call.label or "error"
                if label not in tally.errors and len(tally.errors) >= SIGNAL_LABELS_KEPT:
                    label = "other"
                tally.errors[label] = tally.errors.get(label, 0) + 1
            if call.latency_ms is not None:
                tally.latency_ms += round(call.latency_ms)
                tally.latency_n += 1
            accepted += 1
        await self.store.add_signals(counts, self.ttl)
        return accepted


def _secret_in(*values: str | None) -> bool:
    """Whether a value carries a registered secret (a token pasted as a model name): such a
    value is never stored."""
    return any(v is not None and scrub(v) != v for v in values)


class _Ignored(Exception):
    """A span that is no GenAI call (an HTTP server span beside it): not counted at all."""


#: At most this many attributes of a span (or resource) are read.
_ATTRIBUTES_READ = 128


def _attributes(raw: object) -> dict[str, object]:
    """OTLP JSON attributes ``[{key, value: {stringValue|intValue|doubleValue|boolValue}}]``."""
    out: dict[str, object] = {}
    if not isinstance(raw, list):
        return out
    for entry in raw[:_ATTRIBUTES_READ]:
        if not isinstance(entry, dict):
            continue
        key, value = entry.get("key"), entry.get("value")
        if not isinstance(key, str) or len(key) > 128 or not isinstance(value, dict):
            continue
        for kind in ("stringValue", "intValue", "doubleValue", "boolValue"):
            if kind in value:
                found = value[kind]
                if isinstance(found, str) and len(found) > 512:
                    break
                if kind == "intValue":
                    found = _int(found)
                out[key] = found
                break
    return out


def _int(value: object) -> int | None:
    """An OTLP integer: a JSON number or (int64 in proto3 JSON) a string of digits."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20:
        return int(value)
    return None


def _spans(document: Mapping[str, Any]) -> Iterable[tuple[dict[str, object], object]]:
    """Every span with its resource's attributes; a batch not shaped like OTLP is a 400."""
    resources = document.get("resourceSpans")
    if not isinstance(resources, list):
        raise RequestRefused(400, "bad_request", "not OTLP JSON: `resourceSpans` is missing")
    for resource_spans in resources:
        if not isinstance(resource_spans, dict):
            continue
        resource = resource_spans.get("resource")
        attrs = _attributes(resource.get("attributes") if isinstance(resource, dict) else None)
        scopes = resource_spans.get("scopeSpans")
        for scope in scopes if isinstance(scopes, list) else []:
            spans = scope.get("spans") if isinstance(scope, dict) else None
            for span in spans if isinstance(spans, list) else []:
                yield attrs, span
