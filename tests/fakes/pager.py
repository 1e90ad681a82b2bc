"""Local fakes of the paging services tocsin escalates to, on real loopback sockets.

Three servers, each ``fake = await Fake().start()`` … ``await fake.stop()`` (or
``async with Fake() as fake:``), each bound to 127.0.0.1 on a free port:

* :class:`FakePagerDuty` — the **Events API v2** (``POST /v2/enqueue``; the real endpoints are
  ``https://events.pagerduty.com/v2/enqueue`` and ``https://events.eu.pagerduty.com/v2/enqueue``).
  Every event is checked against PagerDuty's documented schema: a 32-character alphanumeric
  ``routing_key`` (and, when the fake was given ``routing_keys``, one of them), ``event_action``
  one of trigger/acknowledge/resolve, ``dedup_key`` at most 255 characters and required for
  acknowledge/resolve, a trigger's ``payload`` with ``summary`` (≤ 1024), ``source``,
  ``severity`` (critical/error/warning/info), an ISO 8601 ``timestamp``, ``custom_details``
  an object, ``links``/``images`` lists of objects with their required ``href``/``src``, no
  unknown key, the whole body ≤ 512 KB. A good event is ``202 {"status": "success", "message":
  "Event processed", "dedup_key": …}``; a bad one ``400 {"status": "invalid event", "message":
  "Event object is invalid", "errors": [...]}`` (a body that is not a JSON object: ``400
  {"status": "Unrecognized object", "message": "Event object format is unrecognized",
  "errors": ["JSON parse error"]}``), and lands in :attr:`~FakePagerDuty.violations`.
  PagerDuty's alert de-duplication is modelled in :attr:`~FakePagerDuty.incidents`.
* :class:`FakeOpsgenie` — the **Alert API v2** (base URL; real ones ``https://api.opsgenie.com``
  and ``https://api.eu.opsgenie.com``): ``POST /v2/alerts`` and
  ``POST /v2/alerts/{identifier}/close?identifierType=id|alias|tiny``, authenticated with
  ``Authorization: GenieKey <key>``. Field limits as documented (message ≤ 130, alias ≤ 512,
  description ≤ 15000, ≤ 10 actions of ≤ 50, ≤ 20 tags of ≤ 50, details string→string ≤ 8000
  characters in all, entity ≤ 512, source ≤ 100, priority P1..P5, user ≤ 100, note ≤ 25000).
  Accepted requests are ``202 {"result": "Request will be processed", "took": …, "requestId":
  …}``; bad ones ``422 {"message": "Request body is not processable. Please check the
  errors.", "errors": {field: reason}, "took": …, "requestId": …}``. A wrong key is ``401
  {"message": "Could not authenticate", …}`` — or, as Opsgenie does for a key that is not even
  UUID-shaped, ``422 {"message": "Key format is not valid!", …}``; a key listed in
  ``account_keys`` (an account-level, not an integration, key) is ``403 {"code": 40301, …}``.
  Alias de-duplication (a create for an open alert's alias bumps its ``count``) is modelled in
  :attr:`~FakeOpsgenie.alerts`.
* :class:`WebhookReceiver` — a plain endpoint for tocsin's own signed webhooks. It verifies,
  independently of the bot's code, ``X-Tocsin-Timestamp`` (unix seconds) and
  ``X-Tocsin-Signature: v1=<hex HMAC-SHA256(secret, timestamp + "." + raw body)>`` within
  :data:`WEBHOOK_TOLERANCE` seconds, records ``Idempotency-Key``, and answers 401 to anything
  unsigned, forged or stale. :func:`sign_webhook` makes good headers for tests.

All three share :class:`_PagerFake`: failure injection (:meth:`~_PagerFake.fail` — a status,
optionally with ``Retry-After``, or an HTML error page such as a load balancer's 502, for the
next *n* requests; :meth:`~_PagerFake.set_delay`), monotonic timestamps of every request
(:attr:`~_PagerFake.attempts`, for checking a client's back-off) and
:meth:`~_PagerFake.wait_for` to wait on a condition instead of sleeping.

What the docs do not say, and this fake chose (so a test must not lean on it): PagerDuty
documents no body for 429 ("429 - Request Limit Exceeded"); the fake sends its Error-schema
shape with those words. Opsgenie answers create/close asynchronously: a close for an alert
that does not exist is still 202 (its request status would later say "Alert does not
exist"), so the fake answers 202 and lists it in :attr:`FakeOpsgenie.unmatched`. Opsgenie
ignores fields it does not know; the fake accepts them too but lists them in
:attr:`FakeOpsgenie.ignored_fields`. PagerDuty incidents are keyed by ``dedup_key`` alone
(acknowledge/resolve sent with another routing key than the trigger's are dropped, as
documented; a trigger with another routing key joins the open incident — a simplification).

Sources for the shapes (read for this file):
developer.pagerduty.com/docs/events-api-v2/trigger-events/ (PagerDuty/developer-docs
``docs/events-API-v2/02-Trigger-Events.md``: fields, 32-character routing key, 255/1024 limits,
de-duplication and event-action behaviour), developer.pagerduty.com/docs/events-api-v2/overview/
(``01-Overview.md``: response codes and retry logic, 512 KB limit, PD-CEF),
``05-Rate-Limits.md`` (429 "Request Limit Exceeded"), the Events API v2 OpenAPI document
(PagerDuty/api-schema ``reference/events-v2/openapiv3.json``: request schema, Success and Error
responses), v2.developer.pagerduty.com/docs/send-an-event-events-api-v2 (the 400 "invalid
event" example); PagerDuty's "Invalid routing key" and "cannot contain non-alphanumeric
characters" errors as reported in github.com/robusta-dev/robusta/issues/571 and
github.com/blockpane/tenderduty/issues/10. docs.opsgenie.com/docs/alert-api (create and close
fields and limits, identifierType, 202 "Request will be processed", EU base URL),
docs.opsgenie.com/docs/response (status codes: 400 syntax, 401 unauthenticated, 403 40301, 415,
422, 429), docs.opsgenie.com/docs/alerts-and-alert-fields (tags/actions limits),
docs.opsgenie.com/docs/api-rate-limiting (429); Opsgenie's 401 "Could not authenticate" body as
shown in github.com/streaak/keyhacks/pull/124, 422 "Key format is not valid!" in
github.com/falcosecurity/falcosidekick/issues/719, 403 40301 in
github.com/K-Phoen/backstage-plugin-opsgenie/pull/68, and the 422 error map in opsgenie-go-sdk's
tests.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import re
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from http import HTTPStatus
from types import TracebackType
from typing import Any, Literal, NamedTuple, Self
from urllib.parse import unquote

from aiohttp import web

# ------------------------------------------------------------------------------ common


@dataclass(frozen=True)
class Failure:
    """One injected answer: ``status``, an optional ``Retry-After``, or an HTML error page."""

    status: int
    retry_after: float | None = None
    html: bool = False


def _retry_after_header(seconds: float) -> str:
    """``Retry-After`` is delta-seconds: whole seconds as an integer, else as given."""
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


def _html_error_page(status: int) -> str:
    phrase = HTTPStatus(status).phrase
    return (
        f"<html>\r\n<head><title>{status} {phrase}</title></head>\r\n<body>\r\n"
        f"<center><h1>{status} {phrase}</h1></center>\r\n<hr><center>nginx</center>\r\n"
        "</body>\r\n</html>\r\n"
    )


class _PagerFake:
    """The server, failure injection and waiting, shared by the fakes of this module."""

    #: Largest request body the server reads (above PagerDuty's 512 KB, so it can refuse it).
    client_max_size = 4 * 1024 * 1024

    def __init__(self) -> None:
        self.port = 0
        #: ``time.monotonic()`` of every request, in arrival order (failed ones too).
        self.attempts: list[float] = []
        self._failures: deque[Failure] = deque()
        self._delay = 0.0
        self._runner: web.AppRunner | None = None
        self._changed = asyncio.Condition()
        self._answered = 0

    # ------------------------------------------------------------------ lifecycle

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> Self:
        if self._runner is not None:
            raise RuntimeError(f"{type(self).__name__} is already started")
        app = web.Application(client_max_size=self.client_max_size)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self._runner = runner
        self.port = runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def close(self) -> None:
        """The same as :meth:`stop` (the other fakes of this suite are closed this way)."""
        await self.stop()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # ----------------------------------------------------------- failure injection

    def fail(
        self,
        status: int,
        times: int = 1,
        retry_after: float | None = None,
        *,
        html: bool = False,
    ) -> None:
        """Answer the next ``times`` requests with ``status`` instead of serving them.

        ``retry_after`` adds a ``Retry-After`` header (seconds); ``html=True`` sends an HTML
        error page (``text/html``) as a proxy or load balancer in front of the API would,
        instead of the service's own JSON error body. Injected answers queue up in order.
        """
        if not 400 <= status <= 599:
            raise ValueError(f"fail() takes an error status, not {status}")
        if times < 1:
            raise ValueError("times must be at least 1")
        self._failures.extend(Failure(status, retry_after, html) for _ in range(times))

    def clear_failures(self) -> None:
        self._failures.clear()

    @property
    def pending_failures(self) -> int:
        return len(self._failures)

    def set_delay(self, seconds: float) -> None:
        """Hold every answer ``seconds`` before sending it (0 to stop), for client timeouts."""
        self._delay = max(0.0, seconds)

    # ---------------------------------------------------------------------- waiting

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 3.0) -> None:
        """Return once ``predicate()`` is true; it is checked now and after every request.

        Raises :class:`TimeoutError` if it is still false after ``timeout`` seconds.
        """
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(predicate), timeout)
            except TimeoutError:
                raise TimeoutError(
                    f"{type(self).__name__}: condition still false after {timeout}s "
                    f"({len(self.attempts)} request(s) seen)"
                ) from None

    async def wait_for_requests(self, count: int, timeout: float = 3.0) -> None:
        """Return once at least ``count`` requests (of any outcome) have been answered."""
        await self.wait_for(lambda: self._answered >= count, timeout)

    # --------------------------------------------------------------------- handling

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.attempts.append(time.monotonic())
        body = await request.read()
        self._record(request, body)
        failure = self._failures.popleft() if self._failures else None
        if failure is not None:
            response: web.StreamResponse = self._failure_response(failure)
        else:
            response = self._respond(request, body)
        if self._delay:
            await asyncio.sleep(self._delay)
        self._answered += 1
        async with self._changed:
            self._changed.notify_all()
        return response

    def _failure_response(self, failure: Failure) -> web.Response:
        headers: dict[str, str] = {}
        if failure.retry_after is not None:
            headers["Retry-After"] = _retry_after_header(failure.retry_after)
        if failure.html:
            return web.Response(
                status=failure.status,
                text=_html_error_page(failure.status),
                content_type="text/html",
                headers=headers,
            )
        return web.json_response(
            self._error_body(failure.status), status=failure.status, headers=headers
        )

    # Hooks for the fakes.

    def _record(self, request: web.Request, body: bytes) -> None:
        """Called for every request, before failure injection or validation."""

    def _respond(self, request: web.Request, body: bytes) -> web.StreamResponse:
        raise NotImplementedError

    def _error_body(self, status: int) -> dict[str, Any]:
        raise NotImplementedError


def _parse_json(body: bytes) -> tuple[bool, Any]:
    """``(True, value)`` for a JSON document, ``(False, None)`` for anything else."""
    try:
        return True, json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return False, None


def _is_json_content_type(request: web.Request) -> bool:
    return request.content_type == "application/json" or request.content_type.endswith("+json")


# -------------------------------------------------------------------------- PagerDuty

#: A well-formed Events API v2 routing (integration) key: 32 alphanumeric characters.
FAKE_ROUTING_KEY = "R0TOCSINFAKEROUTINGKEY0000000001"
assert len(FAKE_ROUTING_KEY) == 32

PD_PATH = "/v2/enqueue"
PD_MAX_BODY = 512 * 1024
PD_ROUTING_KEY_LEN = 32
PD_DEDUP_KEY_MAX = 255
PD_SUMMARY_MAX = 1024
PD_EVENT_ACTIONS = ("trigger", "acknowledge", "resolve")
PD_SEVERITIES = ("critical", "error", "warning", "info")
PD_TOP_LEVEL_KEYS = frozenset(
    {
        "routing_key",
        "event_action",
        "dedup_key",
        "payload",
        "client",
        "client_url",
        "links",
        "images",
    }
)
PD_PAYLOAD_KEYS = frozenset(
    {
        "summary",
        "source",
        "severity",
        "timestamp",
        "component",
        "group",
        "class",
        "custom_details",
    }
)
PD_LINK_KEYS = frozenset({"href", "text"})
PD_IMAGE_KEYS = frozenset({"src", "href", "alt"})

PD_SUCCESS_MESSAGE = "Event processed"
PD_INVALID_STATUS = "invalid event"
PD_INVALID_MESSAGE = "Event object is invalid"
PD_UNRECOGNIZED_BODY: dict[str, Any] = {
    "status": "Unrecognized object",
    "message": "Event object format is unrecognized",
    "errors": ["JSON parse error"],
}
#: PagerDuty documents the 429 only as "Request Limit Exceeded"; this is the Error schema
#: (``status``, ``message``) with those words.
PD_THROTTLE_BODY: dict[str, Any] = {
    "status": "Request Limit Exceeded",
    "message": "Too many API calls at a time.",
}

IncidentStatus = Literal["triggered", "acknowledged", "resolved"]


def _is_iso8601(value: str) -> bool:
    if "T" not in value and "t" not in value:
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _string_field(
    errors: list[str], obj: Mapping[str, Any], key: str, where: str, *, required: bool = False
) -> str | None:
    name = f"{where}{key}"
    if key not in obj or obj[key] is None:
        if required:
            errors.append(f"'{name}' is missing or blank")
        return None
    value = obj[key]
    if not isinstance(value, str):
        errors.append(f"'{name}' must be a string")
        return None
    if required and not value.strip():
        errors.append(f"'{name}' is missing or blank")
        return None
    return value


def _context_errors(
    value: Any, name: str, required: str, allowed: frozenset[str], https_only: bool
) -> list[str]:
    if not isinstance(value, list):
        return [f"'{name}' must be an array of objects"]
    errors: list[str] = []
    for i, item in enumerate(value):
        where = f"{name}[{i}]"
        if not isinstance(item, dict):
            errors.append(f"'{where}' must be an object")
            continue
        for key in sorted(set(item) - allowed):
            errors.append(f"'{where}.{key}' is not a recognized field")
        url = _string_field(errors, item, required, f"{where}.", required=True)
        if url is not None and https_only and not url.startswith("https://"):
            errors.append(f"'{where}.{required}' must be served via HTTPS")
        for key in sorted(allowed - {required}):
            _string_field(errors, item, key, f"{where}.")
    return errors


def pagerduty_event_errors(
    event: Mapping[str, Any], routing_keys: frozenset[str] | None = None
) -> list[str]:
    """Everything wrong with one Events API v2 alert event, in PagerDuty's wording where known.

    ``routing_keys``: the integration keys that exist; ``None`` accepts any well-formed key.
    """
    errors: list[str] = []
    for key in sorted(set(event) - PD_TOP_LEVEL_KEYS):
        errors.append(f"'{key}' is not a recognized field")

    routing_key = _string_field(errors, event, "routing_key", "", required=True)
    if routing_key is not None:
        well_formed = True
        if len(routing_key) != PD_ROUTING_KEY_LEN:
            errors.append("Length of 'routing_key' is incorrect (should be 32 characters)")
            well_formed = False
        if not routing_key.isascii() or not routing_key.isalnum():
            errors.append("'routing_key' cannot contain non-alphanumeric characters.")
            well_formed = False
        if well_formed and routing_keys is not None and routing_key not in routing_keys:
            errors.append("Invalid routing key")

    action = _string_field(errors, event, "event_action", "", required=True)
    if action is not None and action not in PD_EVENT_ACTIONS:
        errors.append("'event_action' must be one of trigger, acknowledge or resolve")

    dedup_key = _string_field(
        errors, event, "dedup_key", "", required=action in ("acknowledge", "resolve")
    )
    if dedup_key is not None:
        if not dedup_key:
            errors.append("'dedup_key' is blank")
        elif len(dedup_key) > PD_DEDUP_KEY_MAX:
            errors.append(f"'dedup_key' is longer than {PD_DEDUP_KEY_MAX} characters")

    _string_field(errors, event, "client", "")
    _string_field(errors, event, "client_url", "")
    if "links" in event:
        errors += _context_errors(event["links"], "links", "href", PD_LINK_KEYS, False)
    if "images" in event:
        errors += _context_errors(event["images"], "images", "src", PD_IMAGE_KEYS, True)

    if action == "trigger":
        errors += _payload_errors(event.get("payload"))
    return errors


def _payload_errors(payload: Any) -> list[str]:
    if payload is None:
        return ["'payload' is missing or blank"]
    if not isinstance(payload, dict):
        return ["'payload' must be an object"]
    errors: list[str] = []
    for key in sorted(set(payload) - PD_PAYLOAD_KEYS):
        errors.append(f"'payload.{key}' is not a recognized field")
    summary = _string_field(errors, payload, "summary", "payload.", required=True)
    if summary is not None and len(summary) > PD_SUMMARY_MAX:
        errors.append(
            f"'payload.summary' is longer than {PD_SUMMARY_MAX} characters ({len(summary)})"
        )
    _string_field(errors, payload, "source", "payload.", required=True)
    severity = _string_field(errors, payload, "severity", "payload.", required=True)
    if severity is not None and severity not in PD_SEVERITIES:
        errors.append("'payload.severity' must be one of critical, error, warning or info")
    timestamp = _string_field(errors, payload, "timestamp", "payload.")
    if timestamp is not None and not _is_iso8601(timestamp):
        errors.append("'payload.timestamp' is not a valid ISO 8601 date-time")
    for key in ("component", "group", "class"):
        _string_field(errors, payload, key, "payload.")
    if "custom_details" in payload and not isinstance(payload["custom_details"], dict):
        errors.append("'payload.custom_details' must be an object")
    return errors


@dataclass
class FakeIncident:
    """One PagerDuty alert/incident, as de-duplication built it."""

    number: int
    dedup_key: str
    routing_key: str
    status: IncidentStatus = "triggered"
    #: Every accepted event that touched it, triggers and follow-ups, in order.
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def triggers(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("event_action") == "trigger"]

    @property
    def summary(self) -> str:
        """The latest trigger's summary."""
        triggers = self.triggers
        return str(triggers[-1]["payload"]["summary"]) if triggers else ""

    @property
    def severity(self) -> str:
        triggers = self.triggers
        return str(triggers[-1]["payload"]["severity"]) if triggers else ""


class FakePagerDuty(_PagerFake):
    """PagerDuty's Events API v2: ``fake.url`` is the ``/v2/enqueue`` endpoint.

    ``routing_keys``: the integration keys that exist (others get PagerDuty's 400 "Invalid
    routing key"); by default any well-formed key is accepted.
    """

    def __init__(self, routing_keys: Iterable[str] | None = None) -> None:
        super().__init__()
        self.routing_keys: frozenset[str] | None = (
            frozenset(routing_keys) if routing_keys is not None else None
        )
        #: A key this fake accepts, for tests that need one.
        self.routing_key = sorted(self.routing_keys)[0] if self.routing_keys else FAKE_ROUTING_KEY
        #: How many requests arrived (any path, any outcome).
        self.requests = 0
        #: Accepted events, in order (as sent).
        self.events: list[dict[str, Any]] = []
        #: Why each rejected request was rejected (one line per error).
        self.violations: list[str] = []
        #: The current incident for each dedup_key (a re-trigger after resolve replaces it).
        self.incidents: dict[str, FakeIncident] = {}
        #: Every incident ever opened, in order.
        self.incident_history: list[FakeIncident] = []
        #: Accepted acknowledge/resolve events that matched no open incident (PD drops them).
        self.dropped: list[dict[str, Any]] = []

    @property
    def url(self) -> str:
        return f"{self.base_url}{PD_PATH}"

    @property
    def incident_count(self) -> int:
        """How many incidents were opened (re-triggers after a resolve count anew)."""
        return len(self.incident_history)

    def open_incidents(self) -> list[FakeIncident]:
        return [i for i in self.incidents.values() if i.status != "resolved"]

    # ------------------------------------------------------------------- handling

    def _record(self, request: web.Request, body: bytes) -> None:
        self.requests += 1

    def _error_body(self, status: int) -> dict[str, Any]:
        if status == HTTPStatus.TOO_MANY_REQUESTS:
            return dict(PD_THROTTLE_BODY)
        if status == HTTPStatus.BAD_REQUEST:
            return {"status": PD_INVALID_STATUS, "message": PD_INVALID_MESSAGE, "errors": []}
        phrase = HTTPStatus(status).phrase
        return {"status": phrase, "message": f"{status} {phrase}", "errors": []}

    def _reject(self, what: str, errors: list[str]) -> web.Response:
        self.violations.extend(f"{what}: {e}" for e in errors)
        return web.json_response(
            {"status": PD_INVALID_STATUS, "message": PD_INVALID_MESSAGE, "errors": errors},
            status=400,
        )

    def _respond(self, request: web.Request, body: bytes) -> web.StreamResponse:
        what = f"{request.method} {request.path}"
        if request.path != PD_PATH:
            self.violations.append(f"{what}: no such endpoint (events go to {PD_PATH})")
            return web.json_response(
                {"status": "Not Found", "message": "Not Found", "errors": []}, status=404
            )
        if request.method != "POST":
            self.violations.append(f"{what}: events are POSTed")
            return web.json_response(
                {"status": "Method Not Allowed", "message": "Method Not Allowed", "errors": []},
                status=405,
                headers={"Allow": "POST"},
            )
        if len(body) > PD_MAX_BODY:
            return self._reject(what, [f"Event payload exceeds 512 KB ({len(body)} bytes)"])
        ok, event = _parse_json(body)
        if not _is_json_content_type(request) or not ok or not isinstance(event, dict):
            reason = (
                f"Content-Type is {request.content_type!r}, not application/json"
                if not _is_json_content_type(request)
                else "body is not a JSON object"
            )
            self.violations.append(f"{what}: {reason}")
            return web.json_response(PD_UNRECOGNIZED_BODY, status=400)
        errors = pagerduty_event_errors(event, self.routing_keys)
        if errors:
            return self._reject(what, errors)
        dedup_key = self._apply(event)
        return web.json_response(
            {"status": "success", "message": PD_SUCCESS_MESSAGE, "dedup_key": dedup_key},
            status=202,
        )

    def _apply(self, event: dict[str, Any]) -> str:
        """PagerDuty's de-duplication; returns the event's dedup_key."""
        self.events.append(event)
        action = event["event_action"]
        routing_key = event["routing_key"]
        dedup_key = event.get("dedup_key") or uuid.uuid4().hex
        current = self.incidents.get(dedup_key)
        is_open = current is not None and current.status != "resolved"
        if action == "trigger":
            if current is None or not is_open:
                current = FakeIncident(self.incident_count + 1, dedup_key, routing_key)
                self.incidents[dedup_key] = current
                self.incident_history.append(current)
            current.events.append(event)
        elif current is None or not is_open or current.routing_key != routing_key:
            self.dropped.append(event)
        else:
            current.events.append(event)
            current.status = "acknowledged" if action == "acknowledge" else "resolved"
        return dedup_key


# --------------------------------------------------------------------------- Opsgenie

#: The integration API key the fake accepts by default (Opsgenie keys are UUIDs).
FAKE_OPSGENIE_KEY = "7c51f0a4-0000-4e01-8a1e-70c5170c5100"

OG_ALERTS_PATH = "/v2/alerts"
OG_ACCEPTED = "Request will be processed"
OG_UNPROCESSABLE = "Request body is not processable. Please check the errors."
OG_UNAUTHENTICATED = "Could not authenticate"
OG_BAD_KEY_FORMAT = "Key format is not valid!"
OG_NOT_INTEGRATION_KEY = "To perform this action, use an API key from an API integration."
OG_PRIORITIES = ("P1", "P2", "P3", "P4", "P5")
OG_IDENTIFIER_TYPES = ("id", "alias", "tiny")
OG_RESPONDER_TYPES = ("team", "user", "escalation", "schedule")
OG_VISIBLE_TO_TYPES = ("team", "user")
#: Documented string limits of a create request (docs.opsgenie.com/docs/alert-api).
OG_CREATE_LIMITS: dict[str, int] = {
    "message": 130,
    "alias": 512,
    "description": 15_000,
    "entity": 512,
    "source": 100,
    "user": 100,
    "note": 25_000,
}
OG_CLOSE_LIMITS: dict[str, int] = {"user": 100, "source": 100, "note": 25_000}
OG_CREATE_KEYS = frozenset(
    {*OG_CREATE_LIMITS, "responders", "visibleTo", "actions", "tags", "details", "priority"}
)
OG_ACTIONS_MAX, OG_ACTION_LEN = 10, 50
OG_TAGS_MAX, OG_TAG_LEN = 20, 50
OG_DETAILS_TOTAL = 8000
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

AlertStatus = Literal["open", "closed"]


class OpsgenieRequest(NamedTuple):
    """One request as it arrived: ``(method, path, query, json)``; ``json`` is None without
    a JSON body."""

    method: str
    path: str
    query: dict[str, str]
    json: Any


@dataclass
class FakeAlert:
    """One Opsgenie alert, as alias de-duplication built it."""

    id: str
    tiny_id: str
    alias: str
    message: str
    priority: str
    status: AlertStatus = "open"
    #: Acknowledged (``POST /v2/alerts/{id}/acknowledge``): still open, someone is on it.
    acknowledged: bool = False
    #: 1 on creation, +1 for every create with this alias while it is open.
    count: int = 1
    #: The create and close requests that touched it, in order.
    requests: list[OpsgenieRequest] = field(default_factory=list)

    @property
    def creates(self) -> list[OpsgenieRequest]:
        return [r for r in self.requests if r.path == OG_ALERTS_PATH]


def _og_string(errors: dict[str, str], body: Mapping[str, Any], key: str, limit: int) -> None:
    if key not in body or body[key] is None:
        return
    value = body[key]
    if not isinstance(value, str):
        errors[key] = f"{key} must be a string"
    elif len(value) > limit:
        errors[key] = f"{key} can not be longer than {limit} characters ({len(value)})"


def _og_string_list(
    errors: dict[str, str], body: Mapping[str, Any], key: str, max_items: int, item_len: int
) -> None:
    value = body.get(key)
    if value is None:
        return
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        errors[key] = f"{key} must be a list of strings"
    elif len(value) > max_items:
        errors[key] = f"{key} can not have more than {max_items} items ({len(value)})"
    elif any(len(v) > item_len for v in value):
        errors[key] = f"each of {key} can not be longer than {item_len} characters"


def _og_recipients(
    errors: dict[str, str], body: Mapping[str, Any], key: str, types: tuple[str, ...]
) -> None:
    value = body.get(key)
    if value is None:
        return
    if not isinstance(value, list):
        errors[key] = f"{key} must be a list of objects"
        return
    for i, item in enumerate(value):
        where = f"{key}[{i}]"
        if not isinstance(item, dict):
            errors[where] = f"{where} must be an object"
        elif item.get("type") not in types:
            errors[f"{where}#type"] = f"Invalid recipient type '{item.get('type')}'"
        elif not any(isinstance(item.get(k), str) and item[k] for k in ("id", "name", "username")):
            errors[where] = f"{where} needs an id, name or username"
        elif "username" in item and item["type"] != "user":
            errors[where] = f"{where}: only a user has a username"


def opsgenie_create_errors(body: Mapping[str, Any]) -> dict[str, str]:
    """Everything wrong with one create-alert body, as Opsgenie's ``errors`` map."""
    errors: dict[str, str] = {}
    message = body.get("message")
    if not isinstance(message, str) or not message.strip():
        errors["message"] = "Message can not be empty."
    for key, limit in OG_CREATE_LIMITS.items():
        if key not in errors:
            _og_string(errors, body, key, limit)
    _og_recipients(errors, body, "responders", OG_RESPONDER_TYPES)
    _og_recipients(errors, body, "visibleTo", OG_VISIBLE_TO_TYPES)
    _og_string_list(errors, body, "actions", OG_ACTIONS_MAX, OG_ACTION_LEN)
    _og_string_list(errors, body, "tags", OG_TAGS_MAX, OG_TAG_LEN)
    details = body.get("details")
    if details is not None:
        if not isinstance(details, dict) or not all(isinstance(v, str) for v in details.values()):
            errors["details"] = "details must be a map of strings to strings"
        elif sum(len(k) + len(v) for k, v in details.items()) > OG_DETAILS_TOTAL:
            errors["details"] = f"details can not be longer than {OG_DETAILS_TOTAL} characters"
    priority = body.get("priority")
    if priority is not None and priority not in OG_PRIORITIES:
        errors["priority"] = f"Priority should be one of {list(OG_PRIORITIES)}"
    return errors


def opsgenie_close_errors(body: Mapping[str, Any]) -> dict[str, str]:
    errors: dict[str, str] = {}
    for key, limit in OG_CLOSE_LIMITS.items():
        _og_string(errors, body, key, limit)
    return errors


class FakeOpsgenie(_PagerFake):
    """Opsgenie's Alert API v2: ``fake.url`` is the API base (``…/v2/alerts`` below it).

    ``api_key``: the integration key that authenticates (``Authorization: GenieKey <key>``);
    ``account_keys``: account-level keys, which authenticate but may not create or close
    alerts (403, code 40301).
    """

    def __init__(self, api_key: str = FAKE_OPSGENIE_KEY, account_keys: Iterable[str] = ()) -> None:
        super().__init__()
        self.api_key = api_key
        self.account_keys = frozenset(account_keys)
        #: Every request, in order, whatever its outcome.
        self.requests: list[OpsgenieRequest] = []
        #: Why each rejected request was rejected.
        self.violations: list[str] = []
        #: Fields Opsgenie does not know, sent anyway (it ignores them; so does the fake).
        self.ignored_fields: list[str] = []
        #: The current alert for each alias (a create after close replaces it).
        self.alerts: dict[str, FakeAlert] = {}
        #: Every alert ever created, in order.
        self.alert_history: list[FakeAlert] = []
        #: Accepted closes that found no open alert (Opsgenie answers 202 and drops them).
        self.unmatched: list[OpsgenieRequest] = []
        self._tiny = itertools.count(1)

    @property
    def url(self) -> str:
        return self.base_url

    @property
    def alerts_url(self) -> str:
        return f"{self.base_url}{OG_ALERTS_PATH}"

    def open_alerts(self) -> list[FakeAlert]:
        return [a for a in self.alerts.values() if a.status == "open"]

    # ------------------------------------------------------------------- handling

    def _record(self, request: web.Request, body: bytes) -> None:
        ok, parsed = _parse_json(body) if body else (False, None)
        self.requests.append(
            OpsgenieRequest(
                request.method, request.path, dict(request.query), parsed if ok else None
            )
        )

    @staticmethod
    def _answer(status: int, started: float | None = None, **fields: Any) -> web.Response:
        request_id = str(uuid.uuid4())
        took = round(time.monotonic() - started, 3) if started is not None else 0.0
        return web.json_response(
            {**fields, "took": took, "requestId": request_id},
            status=status,
            headers={"X-Request-ID": request_id, "X-Response-Time": f"{took}"},
        )

    def _error_body(self, status: int) -> dict[str, Any]:
        return {
            "message": HTTPStatus(status).phrase,
            "took": 0.0,
            "requestId": str(uuid.uuid4()),
        }

    def _auth_error(self, request: web.Request, what: str) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        scheme, _, key = header.partition(" ")
        key = key.strip()
        if scheme == "GenieKey" and key == self.api_key:
            return None
        if scheme == "GenieKey" and key in self.account_keys:
            self.violations.append(f"{what}: account API key, not an integration key")
            return self._answer(403, code=40301, message=OG_NOT_INTEGRATION_KEY)
        if scheme == "GenieKey" and key and not _UUID.match(key):
            self.violations.append(f"{what}: API key is not UUID-shaped")
            return self._answer(422, message=OG_BAD_KEY_FORMAT)
        reason = "no Authorization header" if not header else "wrong GenieKey"
        if header and scheme != "GenieKey":
            reason = f"Authorization scheme {scheme!r}, not GenieKey"
        self.violations.append(f"{what}: {reason}")
        return self._answer(401, message=OG_UNAUTHENTICATED)

    def _respond(self, request: web.Request, body: bytes) -> web.StreamResponse:
        started = time.monotonic()
        what = f"{request.method} {request.path}"
        segments = [unquote(s) for s in request.rel_url.raw_path.split("/")]
        # "/v2/alerts" -> ["", "v2", "alerts"]; ".../{id}/close" -> [..., id, "close"]
        is_create = segments == ["", "v2", "alerts"]
        is_close = len(segments) == 5 and segments[:3] == ["", "v2", "alerts"]
        # close and acknowledge take the same body (user, source, note) and identifierType
        is_close = is_close and segments[4] in ("close", "acknowledge") and bool(segments[3])
        if not (is_create or is_close):
            self.violations.append(f"{what}: not an endpoint this fake serves")
            return self._answer(404, started, message="Handler not found")
        if request.method != "POST":
            self.violations.append(f"{what}: method not allowed")
            return self._answer(405, started, message="Method Not Allowed")
        auth_error = self._auth_error(request, what)
        if auth_error is not None:
            return auth_error

        parsed: Any = {}
        if body.strip():
            if not _is_json_content_type(request):
                self.violations.append(f"{what}: Content-Type is {request.content_type!r}")
                return self._answer(415, started, message="Unsupported Media Type")
            ok, parsed = _parse_json(body)
            if not ok:
                self.violations.append(f"{what}: body is not valid JSON")
                return self._answer(400, started, message="Invalid JSON body")
        elif is_create:
            self.violations.append(f"{what}: no body")
            return self._answer(400, started, message="Invalid JSON body")
        if not isinstance(parsed, dict):
            self.violations.append(f"{what}: body is not a JSON object")
            return self._answer(400, started, message="Invalid JSON body")

        record = self.requests[-1]
        if is_create:
            errors = opsgenie_create_errors(parsed)
            known = OG_CREATE_KEYS
        else:
            errors = opsgenie_close_errors(parsed)
            known = frozenset(OG_CLOSE_LIMITS)
            id_type = request.query.get("identifierType", "id")
            if id_type not in OG_IDENTIFIER_TYPES:
                errors["identifierType"] = f"Invalid identifier type [{id_type}]"
        if errors:
            self.violations.extend(f"{what}: {k}: {v}" for k, v in errors.items())
            return self._answer(422, started, message=OG_UNPROCESSABLE, errors=errors)
        self.ignored_fields.extend(f"{what}: {k}" for k in sorted(set(parsed) - known))

        if is_create:
            self._create(parsed, record)
        else:
            verb = segments[4]
            self._close(segments[3], request.query.get("identifierType", "id"), record, verb)
        return self._answer(202, started, result=OG_ACCEPTED)

    def _create(self, body: dict[str, Any], record: OpsgenieRequest) -> None:
        alert_id = str(uuid.uuid4())
        alias = body.get("alias") or alert_id
        current = self.alerts.get(alias)
        if current is not None and current.status == "open":
            current.count += 1
            current.requests.append(record)
            return
        alert = FakeAlert(
            id=alert_id,
            tiny_id=str(next(self._tiny)),
            alias=alias,
            message=body["message"],
            priority=body.get("priority") or "P3",
        )
        alert.requests.append(record)
        self.alerts[alias] = alert
        self.alert_history.append(alert)

    def _close(
        self, identifier: str, id_type: str, record: OpsgenieRequest, verb: str = "close"
    ) -> None:
        alert: FakeAlert | None
        if id_type == "alias":
            alert = self.alerts.get(identifier)
        else:
            attr = "id" if id_type == "id" else "tiny_id"
            alert = next((a for a in self.alert_history if getattr(a, attr) == identifier), None)
        if alert is None or alert.status != "open":
            self.unmatched.append(record)
            return
        if verb == "acknowledge":
            alert.acknowledged = True
        else:
            alert.status = "closed"
        alert.requests.append(record)


# ----------------------------------------------------------------- tocsin's webhooks

WEBHOOK_PATH = "/hook"
#: How far ``X-Tocsin-Timestamp`` may be from now, either way, in seconds.
WEBHOOK_TOLERANCE = 300
TIMESTAMP_HEADER = "X-Tocsin-Timestamp"
SIGNATURE_HEADER = "X-Tocsin-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
_SIGNATURE = re.compile(r"^v1=([0-9a-f]{64})$")


def webhook_signature(secret: str, timestamp: str, body: bytes) -> str:
    """``v1=`` + lowercase hex HMAC-SHA256, keyed with ``secret``, of ``timestamp.body``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def sign_webhook(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The signing headers of one delivery (for tests playing the sender)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: webhook_signature(secret, ts, body)}


@dataclass
class ReceivedHook:
    """One request the receiver got, whatever its outcome."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    #: The body parsed as JSON, or None if it is not JSON.
    json: Any
    #: None without a secret; else whether timestamp and signature were good.
    signature_ok: bool | None
    #: Why the signature check failed (None if it passed or there was none).
    reason: str | None
    idempotency_key: str | None
    timestamp: str | None
    signature: str | None
    at: float = field(default_factory=time.monotonic)
    #: The status the receiver answered.
    status: int = 0


class WebhookReceiver(_PagerFake):
    """A receiver of tocsin's signed webhooks: ``fake.url`` is ``…/hook``.

    With ``secret=None`` nothing is verified and every request is accepted.
    """

    def __init__(
        self,
        secret: str | None = None,
        *,
        ok_status: int = 200,
        tolerance: float = WEBHOOK_TOLERANCE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.secret = secret
        self.ok_status = ok_status
        self.tolerance = tolerance
        self._clock = clock
        #: Every request, in order.
        self.received: list[ReceivedHook] = []
        #: How many were answered 401 for a missing, forged or stale signature.
        self.rejected = 0

    @property
    def url(self) -> str:
        return f"{self.base_url}{WEBHOOK_PATH}"

    @property
    def accepted(self) -> list[ReceivedHook]:
        """Requests answered with ``ok_status``."""
        return [h for h in self.received if h.status == self.ok_status]

    def _check(self, timestamp: str | None, signature: str | None, body: bytes) -> str | None:
        """Why the delivery is not authentic, or None if it is."""
        assert self.secret is not None
        if timestamp is None:
            return f"no {TIMESTAMP_HEADER}"
        if signature is None:
            return f"no {SIGNATURE_HEADER}"
        if not timestamp.isascii() or not timestamp.isdigit():
            return f"{TIMESTAMP_HEADER} is not integer unix seconds: {timestamp!r}"
        skew = self._clock() - int(timestamp)
        if abs(skew) > self.tolerance:
            return f"{TIMESTAMP_HEADER} is {skew:+.0f}s off (tolerance {self.tolerance:g}s)"
        if not _SIGNATURE.match(signature):
            return f"{SIGNATURE_HEADER} is not v1=<64 lowercase hex digits>: {signature!r}"
        expected = webhook_signature(self.secret, timestamp, body)
        if not hmac.compare_digest(expected, signature):
            return "signature does not match"
        return None

    def _record(self, request: web.Request, body: bytes) -> None:
        timestamp = request.headers.get(TIMESTAMP_HEADER)
        signature = request.headers.get(SIGNATURE_HEADER)
        reason = self._check(timestamp, signature, body) if self.secret is not None else None
        ok, parsed = _parse_json(body) if body else (False, None)
        self.received.append(
            ReceivedHook(
                method=request.method,
                path=request.path,
                headers=dict(request.headers),
                body=body,
                json=parsed if ok else None,
                signature_ok=None if self.secret is None else reason is None,
                reason=reason,
                idempotency_key=request.headers.get(IDEMPOTENCY_HEADER),
                timestamp=timestamp,
                signature=signature,
            )
        )

    def _failure_response(self, failure: Failure) -> web.Response:
        response = super()._failure_response(failure)
        self.received[-1].status = failure.status
        return response

    def _error_body(self, status: int) -> dict[str, Any]:
        return {"error": HTTPStatus(status).phrase}

    def _respond(self, request: web.Request, body: bytes) -> web.StreamResponse:
        hook = self.received[-1]
        if request.path != WEBHOOK_PATH:
            hook.status = 404
            return web.json_response({"error": "not found"}, status=404)
        if request.method != "POST":
            hook.status = 405
            return web.json_response(
                {"error": "method not allowed"}, status=405, headers={"Allow": "POST"}
            )
        if hook.signature_ok is False:
            self.rejected += 1
            hook.status = 401
            return web.json_response(
                {"error": "invalid signature", "reason": hook.reason}, status=401
            )
        hook.status = self.ok_status
        if self.ok_status == HTTPStatus.NO_CONTENT:
            return web.Response(status=204)
        return web.json_response({"ok": True}, status=self.ok_status)
