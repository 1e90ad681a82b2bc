"""``/status``, ``/fallback`` and ``/tocsin`` for Slack, and a notice's buttons, with
slack-bolt's ``AsyncApp``.

The answer is the acknowledgement itself: it comes from the store (bot.answers), so it is
ready long before Slack's 3-second window closes, and nothing has to follow up later. Two
ways in: Socket Mode when an app-level token (``SLACK_APP_TOKEN``) is set (no public URL
needed), else HTTP mode at ``/slack/events`` on tocsin's server, where bolt verifies each
request's signature and rejects stale timestamps.

HTTP mode is open to anyone who finds the URL, and bolt parses a body (JSON, form fields)
before it checks the signature: so the body is capped (:data:`MAX_BODY`, 413), must be UTF-8
with a numeric timestamp (400), and must carry Slack's signature (401) before bolt sees it.
Nothing a stranger sends reaches bolt's parser or its log.

A click on a root's button (issue 15) is a ``block_actions`` payload: acknowledged at once,
handed to :class:`~bot.chatops.actions.ChatOps` (a few store calls), and answered to the
clicker alone (ephemeral, through the payload's ``response_url``, else
``chat.postEphemeral``) after the acknowledgement went, so a slow Slack never holds it past
its 3 seconds. Every field of the payload is read as hostile (:func:`read_click`): one that is
missing, too long or of the wrong type gets "tocsin can't do that" and changes nothing; no
exception reaches bolt.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.authorization.async_authorize import AsyncAuthorize
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.answers import Answers
from bot.chatops.actions import Actor, ChatOps, Reply
from bot.chatops.records import BUTTON_ACTIONS
from bot.hooks import RequestRefused, read_capped
from bot.logs import get_logger
from bot.outside import clip, one_line
from handlers.slack.render import (
    ACTION_ID_MAX,
    ACTION_PREFIX,
    BUTTON_VALUE_MAX,
    TEXT_MAX,
    answer_message,
    escape,
)

log = get_logger("tocsin.slack")

EVENTS_PATH = "/slack/events"
#: The largest body HTTP mode reads. A slash command is about 1 KiB of form fields plus the
#: typed text; a button's click (``block_actions``) carries the whole message it was on: its
#: text (up to 40,000 characters), blocks and attachments (a message Slack takes can hold
#: about 40 KB of blocks), as JSON, then percent-encoded in the ``payload`` form field, which
#: can triple it. tocsin's own roots are a few KiB; 256 KiB holds any message Slack would
#: have posted. Bigger is not Slack; the cap also bounds what a stranger can make tocsin hold
#: (a connection's body at most 256 KiB, and it is refused unread unless signed).
MAX_BODY = 256 * 1024
TIMESTAMP_HEADER = "X-Slack-Request-Timestamp"
SIGNATURE_HEADER = "X-Slack-Signature"
_SECONDS = re.compile(r"[0-9]{1,12}")
COMMANDS = {
    "/status": "Every watched AI provider at a glance, or one in detail",
    "/fallback": "Healthy alternatives to a provider, best first",
    "/tocsin": "Subscribe this channel to a provider, list subscriptions and silences",
}
#: What each command's usage hint says (the manifest's ``usage_hint``).
USAGE = {
    "/status": "[provider]",
    "/fallback": "[provider]",
    "/tocsin": "subscribe <provider> [min_status] [duration] | unsubscribe <provider> | "
    "subscriptions | silences | help",
}
#: Slack's ids as its payloads carry them: channels (C…, G…, D…) and users (U…, W…).
_CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{2,40}")
_USER_ID = re.compile(r"[UW][A-Z0-9]{2,40}")
#: Where a ``response_url`` may point: Slack's hooks host (or the configured API's origin, a
#: proxy or a local fake). Anything else in a payload is not a place tocsin posts to.
SLACK_HOOKS = "https://hooks.slack.com"
URL_MAX = 2000
#: How long telling the clicker may take, after the acknowledgement went.
TELL_TIMEOUT = 5.0
NOT_ENABLED = "Buttons and /tocsin are not enabled on this tocsin."


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
    answers: Answers,
    client: AsyncWebClient,
    bot_token: str,
    signing_secret: str | None,
    *,
    chatops: ChatOps | None = None,
    later: Later | None = None,
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
        command = body.get("command") if isinstance(body, dict) else None
        log.error(
            "slack command failed",
            command=one_line(command, 40),
            error=one_line(f"{type(error).__name__}: {error}", 200),
        )

    interactions = Interactions(chatops, client, later or Later())
    app.command("/status")(status)
    app.command("/fallback")(fallback)
    app.command("/tocsin")(interactions.command)
    app.action(re.compile(f"^{ACTION_PREFIX}"))(interactions.click)
    app.error(failed)
    return app


# ------------------------------------------------------------------- chat operations


@dataclass(frozen=True, slots=True)
class Click:
    """A button's click as tocsin takes it: where, by whom, which button and its value."""

    channel: str
    actor: Actor
    action: str
    value: str


@dataclass(frozen=True, slots=True)
class ReplyTo:
    """Where the clicker's answer goes: the payload's ``response_url`` (if it is Slack's),
    else an ephemeral message to them in the channel (if both ids read)."""

    response_url: str | None
    channel: str | None
    user: str | None


def read_click(body: object) -> Click | str:
    """The click a ``block_actions`` payload describes, or why tocsin will not take it (a
    field missing, too long, or not what Slack sends)."""
    if not isinstance(body, dict):
        return "that is not a button's click"
    actions = body.get("actions")
    if not isinstance(actions, list) or len(actions) != 1 or not isinstance(actions[0], dict):
        return "that click names no single button"
    pressed = actions[0]
    action_id, value = pressed.get("action_id"), pressed.get("value")
    if pressed.get("type") != "button" or not isinstance(action_id, str):
        return "that is not one of tocsin's buttons"
    action = action_id.removeprefix(ACTION_PREFIX)
    if len(action_id) > ACTION_ID_MAX or action == action_id or action not in BUTTON_ACTIONS:
        return "that is not one of tocsin's buttons"
    if not isinstance(value, str) or not 0 < len(value) <= BUTTON_VALUE_MAX:
        return "that button carries no value tocsin wrote"
    channel = _channel_of(body)
    if channel is None:
        return "that click says no channel tocsin knows"
    user = body.get("user")
    user_id = user.get("id") if isinstance(user, dict) else None
    if not isinstance(user_id, str) or not _USER_ID.fullmatch(user_id):
        return "that click says no user"
    names = [user.get(key) for key in ("username", "name")] if isinstance(user, dict) else []
    name = next((n for n in names if isinstance(n, str) and one_line(n, 80)), user_id)
    actor = Actor(platform="slack", user_id=user_id, name=one_line(name, 80))
    return Click(channel=channel, actor=actor, action=action, value=value)


def _channel_of(body: dict[str, Any]) -> str | None:
    channel = body.get("channel")
    container = body.get("container")
    found = [
        channel.get("id") if isinstance(channel, dict) else None,
        container.get("channel_id") if isinstance(container, dict) else None,
    ]
    return next((c for c in found if isinstance(c, str) and _CHANNEL_ID.fullmatch(c)), None)


def reply_to(body: object, api_url: str) -> ReplyTo:
    """Where to answer a click (whatever else the payload got wrong)."""
    if not isinstance(body, dict):
        return ReplyTo(None, None, None)
    url = body.get("response_url")
    user = body.get("user")
    user_id = user.get("id") if isinstance(user, dict) else None
    return ReplyTo(
        url if isinstance(url, str) and _slacks_url(url, api_url) else None,
        _channel_of(body),
        user_id if isinstance(user_id, str) and _USER_ID.fullmatch(user_id) else None,
    )


def _slacks_url(url: str, api_url: str) -> bool:
    """Slack's hooks host over HTTPS, or the configured API's own origin."""
    if len(url) > URL_MAX:
        return False
    try:
        parts, api = urlsplit(url), urlsplit(api_url)
        port, api_port = parts.port, api.port
    except ValueError:
        return False
    if f"{parts.scheme}://{parts.netloc}" == SLACK_HOOKS:
        return True
    return bool(parts.hostname) and (parts.scheme, parts.hostname, port) == (
        api.scheme,
        api.hostname,
        api_port,
    )


def reply_text(reply: Reply | str) -> str:
    """A reply as mrkdwn: escaped (names and words from outside are in it), clipped."""
    plain = reply.plain if isinstance(reply, Reply) else reply
    return clip(escape(plain), TEXT_MAX)


class Later:
    """The answers sent after an acknowledgement: kept (a task nobody holds can vanish) and
    awaited a moment at shutdown."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[None]] = set()

    def start(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work, name="slack-reply")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def drain(self) -> None:
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=TELL_TIMEOUT)
        for task in list(self.tasks):
            task.cancel()


class Interactions:
    """``/tocsin`` and the buttons, for bolt: both go to :class:`ChatOps` (``None``: not
    enabled on this tocsin, and said so)."""

    def __init__(self, chatops: ChatOps | None, client: AsyncWebClient, later: Later) -> None:
        self.chatops = chatops
        self.api_url = str(client.base_url)
        self.later = later

    async def command(self, ack: Callable[..., Awaitable[None]], command: Any) -> None:
        """``/tocsin <words>``: answered in the acknowledgement, only to whoever typed it."""
        try:
            reply = await self._command(command)
        except Exception as exc:  # the store away, or anything: the typist is told, once
            log.warning("slack /tocsin failed", error=one_line(f"{type(exc).__name__}: {exc}"))
            reply = "tocsin could not do that just now; try again in a moment."
        await ack(response_type="ephemeral", text=reply_text(reply))

    async def _command(self, command: Any) -> Reply | str:
        if self.chatops is None:
            return NOT_ENABLED
        if not isinstance(command, dict):
            return "tocsin can't do that: the command says nothing it can read."
        channel, user = command.get("channel_id"), command.get("user_id")
        if not isinstance(channel, str) or not _CHANNEL_ID.fullmatch(channel):
            return "tocsin can't do that: the command says no channel."
        if not isinstance(user, str) or not _USER_ID.fullmatch(user):
            return "tocsin can't do that: the command says no user."
        text, name = command.get("text"), command.get("user_name")
        name = one_line(name, 80) if isinstance(name, str) else ""
        actor = Actor(platform="slack", user_id=user, name=name or user)
        return await self.chatops.command(
            "slack", channel, text if isinstance(text, str) else "", actor
        )

    async def click(
        self, ack: Callable[..., Awaitable[None]], body: Any, client: AsyncWebClient
    ) -> None:
        """A button on a root: acknowledged first, the state changed once, the clicker told
        after the acknowledgement went."""
        await ack()
        where = reply_to(body, self.api_url)
        try:
            reply = await self._press(body)
        except Exception as exc:
            log.warning("slack button failed", error=one_line(f"{type(exc).__name__}: {exc}"))
            reply = "tocsin could not do that just now; try again in a moment."
        self.later.start(tell(client, where, reply_text(reply)))

    async def _press(self, body: Any) -> Reply | str:
        if self.chatops is None:
            return NOT_ENABLED
        click = read_click(body)
        if isinstance(click, str):
            log.info("a slack click was refused", reason=click)
            return f"tocsin can't do that: {click}."
        return await self.chatops.press(
            "slack", click.channel, click.action, click.value, click.actor
        )


def unreadable(body: object) -> str | None:
    """Why a ``block_actions`` payload cannot even reach bolt: its ``actions`` is not a list
    of objects with an ``action_id`` (bolt reads ``actions[0]["action_id"]`` for every
    listener and middleware, and would raise). ``None`` for any other payload."""
    if not isinstance(body, dict) or body.get("type") != "block_actions":
        return None
    actions = body.get("actions")
    first = actions[0] if isinstance(actions, list) and actions else None
    if isinstance(first, dict) and isinstance(first.get("action_id"), str):
        return None
    return "that click names no button"


async def tell(client: AsyncWebClient | None, where: ReplyTo, text: str) -> None:
    """The clicker's answer, ephemeral: by the response_url, else ``chat.postEphemeral``
    (with ``client``, which carries the bot token). A courtesy: the state already changed,
    so a failure is one log line."""
    try:
        async with asyncio.timeout(TELL_TIMEOUT):
            if where.response_url is not None:
                hook = AsyncWebhookClient(where.response_url, timeout=int(TELL_TIMEOUT))
                message = {"text": text, "response_type": "ephemeral", "replace_original": False}
                sent = await hook.send_dict(message)
                if sent.status_code < 300:
                    return
                log.warning("slack refused a click's answer", status=sent.status_code)
            if client is not None and where.channel and where.user:
                await client.chat_postEphemeral(channel=where.channel, user=where.user, text=text)
    except Exception as exc:  # the type only: a response_url is a capability, kept out of logs
        log.warning("a slack click's answer did not go", error=type(exc).__name__)


def refuse_unreadable(body: object, api_url: str, later: Later) -> bool:
    """A click bolt cannot read (:func:`unreadable`) is refused here, before bolt: the
    clicker is told (by the response_url, if Slack's); ``False`` for any other payload."""
    why = unreadable(body)
    if why is None:
        return False
    log.info("a slack click was refused", reason=why)
    later.start(tell(None, reply_to(body, api_url), reply_text(f"tocsin can't do that: {why}.")))
    return True


class _SocketHandler(AsyncSocketModeHandler):
    """bolt's Socket Mode handler, with what it cannot read acknowledged and refused first,
    and never an exception left to the socket client (an envelope is always acknowledged)."""

    later: Later

    async def handle(self, client: Any, req: SocketModeRequest) -> None:
        payload = req.payload
        if req.type == "interactive" and refuse_unreadable(
            payload, str(self.app.client.base_url), self.later
        ):
            await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))
            return
        try:
            await super().handle(client, req)
        except Exception as exc:
            log.warning(
                "slack socket mode request failed",
                type=one_line(req.type, 40),
                error=one_line(f"{type(exc).__name__}: {exc}", 200),
            )
            await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))


class SlackCommands:
    """Runs the command app in Socket Mode, or serves it over HTTP on tocsin's server."""

    def __init__(
        self,
        app: AsyncApp,
        app_token: str | None,
        signing_secret: str | None = None,
        later: Later | None = None,
        *,
        chatops: ChatOps | None = None,
    ) -> None:
        self.app = app
        self.app_token = app_token
        self.later = later or Later()
        #: Where the buttons and /tocsin go (``None``: they answer "not enabled").
        self.chatops = chatops
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
        if refuse_unreadable(bolt_request.body, str(self.app.client.base_url), self.later):
            return web.Response(status=200)  # acknowledged: the clicker is told why not
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
        except (ValueError, TypeError, RecursionError) as exc:  # signed, yet not Slack's shape
            reason = f"the body is not a Slack request: {one_line(str(exc), 120)}"
            raise RequestRefused(400, "bad_request", reason) from None

    async def start(self) -> None:
        if not self.app_token:
            return
        self._socket = _SocketHandler(self.app, self.app_token, web_client=self.app.client)
        self._socket.later = self.later
        await self._socket.connect_async()  # type: ignore[no-untyped-call]
        log.info("slack socket mode connected")

    async def stop(self) -> None:
        if self._socket is not None:
            await self._socket.close_async()  # type: ignore[no-untyped-call]
            self._socket = None
        await self.later.drain()
