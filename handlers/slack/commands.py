"""``/status`` and ``/fallback`` for Slack, with slack-bolt's ``AsyncApp``.

The answer is the acknowledgement itself: it comes from the store (bot.answers), so it is
ready long before Slack's 3-second window closes, and nothing has to follow up later. Two
ways in: Socket Mode when an app-level token (``SLACK_APP_TOKEN``) is set (no public URL
needed), else HTTP mode at ``/slack/events`` on tocsin's server, where bolt verifies each
request's signature and rejects stale timestamps.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.authorization.async_authorize import AsyncAuthorize
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from bot.answers import Answers
from bot.logs import get_logger
from handlers.slack.render import answer_message

log = get_logger("tocsin.slack")

EVENTS_PATH = "/slack/events"
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

    def __init__(self, app: AsyncApp, app_token: str | None) -> None:
        self.app = app
        self.app_token = app_token
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
        response = await self.app.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(response)

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
