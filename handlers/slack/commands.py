"""``/status`` and ``/fallback`` for Slack, with slack-bolt's ``AsyncApp``.

The answer is the acknowledgement itself: it comes from the store (bot.answers), so it is
ready long before Slack's 3-second window closes, and nothing has to follow up later. Two
ways in: Socket Mode when an app-level token (``SLACK_APP_TOKEN``) is set (no public URL
needed), else HTTP mode at ``/slack/events`` on tocsin's server, where bolt verifies each
request's signature and rejects stale timestamps.

HTTP mode is open to anyone who finds the URL, and bolt parses a body (JSON, form fields)
before it checks the signature: so the body is capped (:data:`MAX_BODY`, 413), must be UTF-8
with a numeric timestamp (400), and must carry Slack's signature (401) before bolt sees it.
Nothing a stranger sends reaches bolt's parser or its log.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.authorization.async_authorize import AsyncAuthorize
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from bot.answers import Answers
from bot.hooks import RequestRefused, read_capped
from bot.logs import get_logger
from bot.outside import one_line
from handlers.slack.render import answer_message

log = get_logger("tocsin.slack")

EVENTS_PATH = "/slack/events"
#: The largest body HTTP mode reads. tocsin's app has slash commands only (its manifest asks
#: for nothing else): Slack posts one as about 1 KiB of form fields plus the typed text, so
#: 64 KiB holds thousands of characters even percent-encoded as emoji. Bigger is not Slack;
#: the cap also bounds what a stranger can make tocsin hold (1,000 connections at 64 KiB each).
MAX_BODY = 64 * 1024
TIMESTAMP_HEADER = "X-Slack-Request-Timestamp"
SIGNATURE_HEADER = "X-Slack-Signature"
_SECONDS = re.compile(r"[0-9]{1,12}")
COMMANDS = {
    "/status": "Every watched AI provider at a glance, or one in detail",
    "/fallback": "Healthy alternatives to a provider, best first",
}


class StaticAuthorize(AsyncAuthorize):
    """Single-workspace authorization without a network call.

    Bolt's default calls ``auth.test`` before it will run the first command, and again after
    every failure: a command would then wait on Slack's API (or fail with it), when its answer
    comes from our own store. The bot token is all a command's context needs.
    """

    def __init__(self, bot_token: str) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.bot_token = bot_token

    async def __call__(
        self,
        *,
        context: AsyncBoltContext,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None,
        actor_enterprise_id: str | None = None,
        actor_team_id: str | None = None,
        actor_user_id: str | None = None,
    ) -> AuthorizeResult:
        return AuthorizeResult(
            enterprise_id=enterprise_id, team_id=team_id, bot_token=self.bot_token, user_id=user_id
        )


def build_app(
    answers: Answers, client: AsyncWebClient, bot_token: str, signing_secret: str | None
) -> AsyncApp:
    app = AsyncApp(
        client=client,
        authorize=StaticAuthorize(bot_token),
        signing_secret=signing_secret or "",
        request_verification_enabled=bool(signing_secret),
        process_before_response=True,  # answer in the ack: no work after it
        name="tocsin",
        # bolt copies its base logger's level into each logger of its own when the app is
        # built: by default the root's (INFO, at which it logs every unverified request's
        # whole body). Based on "slack_bolt", they follow the level tocsin sets there.
        logger=logging.getLogger("slack_bolt"),
    )

    async def status(ack: Callable[..., Awaitable[None]], command: dict[str, Any]) -> None:
        await ack(**answer_message(await answers.status(command.get("text", ""))))

    async def fallback(ack: Callable[..., Awaitable[None]], command: dict[str, Any]) -> None:
        await ack(**answer_message(await answers.fallback(command.get("text", ""))))

    async def failed(error: Exception, body: dict[str, Any]) -> None:
        log.error("slack command failed", command=body.get("command"), error=str(error))

    app.command("/status")(status)
    app.command("/fallback")(fallback)
    app.error(failed)
    return app


class SlackCommands:
    """Runs the command app in Socket Mode, or serves it over HTTP on tocsin's server."""

    def __init__(
        self, app: AsyncApp, app_token: str | None, signing_secret: str | None = None
    ) -> None:
        self.app = app
        self.app_token = app_token
        self._verifier = SignatureVerifier(signing_secret) if signing_secret else None
        self._socket: AsyncSocketModeHandler | None = None

    @property
    def mode(self) -> str:
        return "socket" if self.app_token else "http"

    def routes(
        self,
    ) -> list[tuple[str, str, Callable[[web.Request], Awaitable[web.StreamResponse]]]]:
        """The HTTP-mode route for tocsin's server (none in Socket Mode)."""
        if self.app_token:
            return []
        return [("POST", EVENTS_PATH, self.handle_http)]

    async def handle_http(self, request: web.Request) -> web.StreamResponse:
        try:
            bolt_request = await self._bolt_request(request)
        except RequestRefused as refused:
            log.info(
                "slack request refused",
                status=refused.status,
                reason=refused.reason,
                remote=request.remote,
            )
            return web.json_response({"error": refused.reason}, status=refused.status)
        response = await self.app.async_dispatch(bolt_request)
        return await to_aiohttp_response(response)

    async def _bolt_request(self, request: web.Request) -> AsyncBoltRequest:
        """The request as bolt takes it, once it is known to be a sane one from Slack."""
        raw = await read_capped(request, MAX_BODY)
        try:
            body = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise RequestRefused(400, "bad_request", "the body is not UTF-8 text") from None
        timestamp = request.headers.get(TIMESTAMP_HEADER)
        if timestamp is not None and not _SECONDS.fullmatch(timestamp):
            shown = one_line(timestamp, 40)
            raise RequestRefused(
                400, "bad_request", f"{TIMESTAMP_HEADER} is not in seconds: {shown!r}"
            )
        signature = request.headers.get(SIGNATURE_HEADER)
        if self._verifier is not None and not self._verifier.is_valid(body, timestamp, signature):
            raise RequestRefused(401, "unauthorized", "invalid request")  # bolt's own words
        headers: Any = request.headers  # a multidict: bolt reads it as the mapping it is
        try:
            return AsyncBoltRequest(body=body, query=request.query_string, headers=headers)
        except (ValueError, RecursionError) as exc:  # signed, yet not JSON or form fields
            reason = f"the body is not a Slack request: {one_line(str(exc), 120)}"
            raise RequestRefused(400, "bad_request", reason) from None

    async def start(self) -> None:
        if not self.app_token:
            return
        self._socket = AsyncSocketModeHandler(self.app, self.app_token, web_client=self.app.client)
        await self._socket.connect_async()  # type: ignore[no-untyped-call]
        log.info("slack socket mode connected")

    async def stop(self) -> None:
        if self._socket is not None:
            await self._socket.close_async()  # type: ignore[no-untyped-call]
            self._socket = None
