"""Inbound pushes from status pages: ``POST /hooks/statuspage/{provider}``.

Atlassian Statuspage (and pages that copy its format) can POST a JSON notification when an
incident is created or updated, or when a component changes status. A push is a hint, never
the truth: anyone who learns the URL can forge one and a late retry can be stale, so a valid
push only asks the leading watcher, in whichever replica, to read that provider's page now
(:meth:`Store.request_poll`). The page itself stays the only thing that sets a state.

The route exists only when ``hooks.secret`` is set: tocsin opens no unauthenticated inbound
endpoint. Answers: 202 accepted; 401 missing or wrong secret; 404 unknown provider; 409 a
provider without a status page (nothing to re-read); 413 a body over 1 MiB; 400 a body that is
not a Statuspage notification; 503 the store cannot take the request. Every refusal is one log
line, which names what was wrong and never the secret.
"""

from __future__ import annotations

import asyncio
import hmac
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from bot import metrics
from bot.logs import get_logger
from bot.outside import Unreadable, load_json
from bot.store import Store, StoreUnavailable
from config.schema import TocsinConfig

log = get_logger("tocsin.hooks")

ROUTE = "/hooks/statuspage/{provider}"
SECRET_HEADER = "X-Tocsin-Secret"  # noqa: S105 - a header name, not a secret
SECRET_PARAM = "secret"  # noqa: S105 - a query parameter name
#: Statuspage's notifications are a few KiB; a bigger body is not one of them.
MAX_BODY = 1024 * 1024
_CHUNK = 64 * 1024
#: Seconds a body may take to arrive once its headers are in (Slack and Statuspage send a few
#: KiB at once).
BODY_TIMEOUT = 10.0
_SHOWN = 80  # characters of caller-chosen text (provider, ids) a log line or answer repeats


class RequestRefused(Exception):
    """Why a push is answered with an error: the HTTP status, the metric's result, and one
    line for the caller and the log."""

    def __init__(self, status: int, result: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.result = result
        self.reason = reason


# -- the payload (Atlassian's "webhook notifications": page, then incident or component) ----


class _Pushed(BaseModel):
    model_config = ConfigDict(extra="ignore")


class PushedPage(_Pushed):
    id: str
    status_indicator: str | None = None
    status_description: str | None = None


class PushedUpdate(_Pushed):
    status: str | None = None
    body: str | None = None


class PushedIncident(_Pushed):
    id: str
    name: str | None = None
    status: str | None = None
    impact: str | None = None
    incident_updates: list[PushedUpdate] = []


class PushedComponentUpdate(_Pushed):
    component_id: str
    old_status: str | None = None
    new_status: str | None = None


class StatuspagePush(_Pushed):
    """One Statuspage webhook body. Only what a log line needs is read: the page is re-read
    for the facts anyway."""

    page: PushedPage
    incident: PushedIncident | None = None
    component_update: PushedComponentUpdate | None = None
    component: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> StatuspagePush:
        if self.incident is None and self.component_update is None:
            raise ValueError("neither `incident` nor `component_update`: not a notification")
        if self.incident is not None and self.component_update is not None:
            raise ValueError("both `incident` and `component_update`: which one is it?")
        return self

    def summary(self) -> dict[str, str | None]:
        """What the push said, for the log (short: the caller chose these strings)."""
        if self.incident is not None:
            return {
                "notification": "incident",
                "incident": _short(self.incident.id),
                "incident_status": _short(self.incident.status),
            }
        assert self.component_update is not None
        return {
            "notification": "component_update",
            "component": _short(self.component_update.component_id),
            "new_status": _short(self.component_update.new_status),
        }


def parse_notification(body: bytes, content_type: str = "") -> StatuspagePush:
    """The notification in ``body``, or :class:`RequestRefused` (400) with a one-line reason."""
    if not body.strip():
        raise _bad("the body is empty; expected a Statuspage JSON notification")
    if body.lstrip()[:1] == b"<" or content_type.startswith("text/html"):
        raise _bad("the body is HTML, not a Statuspage JSON notification")
    try:  # bounded: a body nested 100,000 deep is refused before the recursive parser
        document = load_json(body, limit=MAX_BODY)
    except Unreadable as exc:  # also invalid UTF-8, and too deep
        raise _bad(f"the body is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise _bad(f"the body must be a JSON object, not {_json_type(document)}")
    try:
        return StatuspagePush.model_validate(document)
    except ValidationError as exc:
        raise _bad(_first_error(exc)) from None


def _bad(reason: str) -> RequestRefused:
    return RequestRefused(400, "bad_request", reason)


def _first_error(exc: ValidationError) -> str:
    """pydantic's first complaint in the payload's own terms (``incident.id`` is missing)."""
    errors = exc.errors(include_url=False)
    error = errors[0]
    path = ".".join(str(part) for part in error["loc"])
    kind = error["type"]
    if kind == "missing":
        message = f"`{path}` is missing"
    elif kind in ("model_type", "dict_type", "model_attributes_type"):
        message = f"`{path}` must be an object"
    elif kind in ("string_type", "list_type"):
        message = f"`{path}` must be a {kind.removesuffix('_type')}"
    else:
        message = str(error["msg"]).removeprefix("Value error, ")
        message = f"`{path}`: {message}" if path else message
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return message + more


def _json_type(value: object) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def _short(value: str | None) -> str | None:
    return value if value is None or len(value) <= _SHOWN else value[:_SHOWN] + "…"


# -- the receiver -------------------------------------------------------------------------------


class StatuspageHooks:
    """The receiver; mounted by :func:`bot.server.build_app` when a secret is configured."""

    def __init__(self, config: TocsinConfig, store: Store) -> None:
        secret = config.hooks.secret
        if secret is None:
            raise ValueError("hooks.secret is not set: no inbound endpoint without one")
        self._secret = secret.get_secret_value().encode()
        self.config = config
        self.store = store

    def routes(self) -> list[web.RouteDef]:
        return [web.post(ROUTE, self.receive)]

    async def receive(self, request: web.Request) -> web.Response:
        provider = request.match_info["provider"]
        try:
            self._authenticate(request)
            self._check_provider(provider)
            body = await read_capped(request, MAX_BODY)
            notification = parse_notification(body, request.content_type)
            await self._request_poll(provider)
        except RequestRefused as refused:
            return _refuse(request, provider, refused)
        metrics.HOOKS.labels("accepted").inc()
        log.info("status page push accepted", provider=provider, **notification.summary())
        answer = {"accepted": True, "provider": provider, "poll": "requested"}
        return web.json_response(answer, status=202)

    def _authenticate(self, request: web.Request) -> None:
        """The secret in the header or the query (Statuspage subscriptions take only a URL)."""
        offered = {
            "header": request.headers.get(SECRET_HEADER),
            "query": request.query.get(SECRET_PARAM),
        }
        given = {where: value for where, value in offered.items() if value}
        if any(hmac.compare_digest(v.encode(), self._secret) for v in given.values()):
            return
        where = " and ".join(given) or "none given"
        raise RequestRefused(
            401,
            "unauthorized",
            f"missing or wrong secret ({where}); give ?{SECRET_PARAM}= or {SECRET_HEADER}",
        )

    def _check_provider(self, provider: str) -> None:
        found = self.config.provider(provider)
        if found is None:
            known = ", ".join(self.config.provider_ids) or "none"
            raise RequestRefused(
                404,
                "unknown_provider",
                f"unknown provider {_short(provider)!r}; configured providers: {known}",
            )
        if found.status_page is None:
            raise RequestRefused(
                409,
                "no_status_page",
                f"provider {provider!r} has no status_page in the config: nothing to re-poll",
            )

    async def _request_poll(self, provider: str) -> None:
        try:
            await self.store.request_poll(provider)
        except StoreUnavailable as exc:
            log.warning("cannot pass a status page push on", provider=provider, error=str(exc))
            reason = "the store is unreachable; try again later"  # its address stays in here
            raise RequestRefused(503, "store_unavailable", reason) from None


async def read_capped(request: web.Request, limit: int, *, within: float | None = None) -> bytes:
    """The body, but never more than ``limit`` bytes of it in memory (413 beyond), and never
    longer than ``within`` seconds to arrive (408: a body sent a byte at a time must not hold
    a connection for ever)."""
    within = BODY_TIMEOUT if within is None else within
    declared = request.content_length
    if declared is not None and declared > limit:
        raise RequestRefused(
            413, "too_large", f"the body is {declared} bytes; the limit is {limit}"
        )
    body = bytearray()
    try:
        async with asyncio.timeout(within):
            async for chunk in request.content.iter_chunked(_CHUNK):
                body += chunk
                if len(body) > limit:
                    raise RequestRefused(
                        413, "too_large", f"the body is over the limit of {limit} bytes"
                    )
    except TimeoutError:
        raise RequestRefused(
            408, "too_slow", f"the body took longer than {within:g}s to arrive"
        ) from None
    return bytes(body)


def _refuse(request: web.Request, provider: str, refused: RequestRefused) -> web.Response:
    metrics.HOOKS.labels(refused.result).inc()
    log.warning(
        "status page push refused",
        provider=_short(provider),
        status=refused.status,
        reason=refused.reason,
        remote=request.remote,
    )
    answer = {"accepted": False, "error": refused.reason}
    return web.json_response(answer, status=refused.status)
