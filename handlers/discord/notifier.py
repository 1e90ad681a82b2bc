"""Discord notices: by the bot in channels, or by channel webhooks (discord.py for both).

By the bot, an episode's first notice is an embed in the channel; its updates go to a thread
started on that message (or, where threads are not allowed, replies to it), and the root embed
is edited to where things stand, finally "resolved"; (issue 15) the root carries the
buttons of ``notice.buttons`` as one action row, and each edit the ones that make sense then
(none once resolved; replies never any). Each post carries a ``nonce`` with
``enforce_nonce``, so Discord itself refuses a duplicate sent within minutes; after a longer
crash, :meth:`BotNotifier.find_sent` finds our message by the event id in the embed footer.

By webhook, notices are posted and edited the same way, but webhooks cannot start threads,
reply or read a channel: updates are follow-up messages. A crash in the instant between
Discord taking a webhook message and tocsin recording it can therefore repeat that one
notice: Discord offers webhooks no idempotency key and no way to look.

Nothing from outside reaches ``content`` (it is only tocsin's own ``@here``/``@everyone``;
the notice is in the embed, escaped by ``handlers.discord.render``), and every send and edit
carries ``allowed_mentions``: the configured mention's kind when there is one, nothing else.

Rate limits are discord.py's own handling (it reads ``X-RateLimit-*`` and ``retry_after``);
what it gives up on comes back here as retryable, and Discord's permanent errors (unknown
channel, missing access, deleted webhook) are dead-lettered by the dispatcher; an Invalid Form
Body (50035: Discord refuses what the message says) is a :class:`~bot.notifier.ContentRejected`,
sent once more without the notice's optional parts before it counts as permanent.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import aiohttp
import discord

from bot.compose import Notice
from bot.logs import get_logger
from bot.notifier import (
    ContentRejected,
    Delivery,
    Intent,
    PermanentError,
    Receipt,
    RetryableError,
    Target,
)
from bot.outside import one_line
from config.targets import WEBHOOK_PATH
from handlers.chat import mention_for
from handlers.discord.render import button_view, event_in_footer, notice_embed

log = get_logger("tocsin.discord")

#: Discord error codes retrying cannot fix.
PERMANENT_CODES = frozenset(
    {
        10003,  # unknown channel
        10008,  # unknown message
        10015,  # unknown webhook
        50001,  # missing access
        50013,  # missing permissions
        50027,  # invalid webhook token
        50083,  # thread is archived
    }
)
#: Discord's "Invalid Form Body": the request's content is refused (an embed url Discord will
#: not take, a field too long), not its target: delivered again without its optional parts.
INVALID_FORM_BODY = 50035
#: The mentions a target can be configured with, and the kind Discord files them under
#: (allowed mentions: ``parse: ["everyone"]`` covers ``@everyone`` and ``@here``).
MENTIONS = frozenset({"here", "everyone"})
NO_MENTIONS = discord.AllowedMentions.none()
THREAD_NAME_MAX = 100
THREAD_ALREADY_EXISTS = 160004
HISTORY_LIMIT = 50


def nonce(event_id: str, target: str) -> str:
    """A per (event, target) nonce within Discord's 25 characters."""
    return hashlib.sha256(f"{event_id}:{target}".encode()).hexdigest()[:25]


def classify(exc: Exception, what: str) -> Exception:
    """A discord.py or network error as retryable or permanent."""
    if isinstance(exc, discord.HTTPException):
        code, status = exc.code, exc.status
        detail = f"{what}: HTTP {status} (code {code}): {exc.text or exc}"
        if status == 429 or status >= 500:
            return RetryableError(detail, retry_after=_retry_after(exc))
        if code == INVALID_FORM_BODY:
            return ContentRejected(detail)
        if code in PERMANENT_CODES or status in (400, 401, 403, 404):
            return PermanentError(detail)
        return RetryableError(detail)
    return RetryableError(f"{what}: {type(exc).__name__}: {exc}")


def _retry_after(exc: discord.HTTPException) -> float | None:
    headers = getattr(exc.response, "headers", None) or {}
    for name in ("Retry-After", "X-RateLimit-Reset-After"):
        value = headers.get(name)
        if value is not None:
            try:
                return float(value)
            except ValueError:
                continue
    return None


NETWORK_ERRORS = (discord.HTTPException, aiohttp.ClientError, OSError, TimeoutError)


async def _call(coro: Any, what: str) -> Any:
    """Await a discord.py call, its failures classified for the dispatcher."""
    try:
        return await coro
    except NETWORK_ERRORS as exc:
        raise classify(exc, what) from exc


def _mention(target: Target, delivery: Delivery) -> str | None:
    """Discord's spelling of the target's mention (``@here``/``@everyone``), when it is due."""
    word = mention_for(target.options, delivery, MENTIONS)
    return f"@{word}" if word else None


def _mentions(content: str | None) -> discord.AllowedMentions:
    """Who may be pinged: with tocsin's own mention in ``content``, its kind (``everyone``,
    which is also ``@here``'s); never a user, a role or the author of a replied-to message."""
    return discord.AllowedMentions(
        everyone=content is not None, users=False, roles=False, replied_user=False
    )


class BotNotifier:
    """Notices posted by tocsin's bot user (a channel id per target)."""

    kind = "discord"

    def __init__(self, client: discord.Client, token: str) -> None:
        self.client = client
        self.token = token
        #: Messages posted whose delivery is not complete yet (a retry must not repost).
        self._posted: dict[tuple[str, str], int] = {}
        self._login = asyncio.Lock()
        self._said_too_long = False

    async def _ready(self) -> discord.Client:
        """Logged in, once: channels deliver concurrently, and each login would open (and
        leak) an HTTP session of its own."""
        async with self._login:
            if self.client.user is None:
                try:
                    await self.client.login(self.token)
                except discord.LoginFailure as exc:
                    raise PermanentError(f"discord login: {exc}") from exc
                except NETWORK_ERRORS as exc:
                    raise classify(exc, "discord login") from exc
        return self.client

    async def deliver(self, target: Target, delivery: Delivery) -> Receipt:
        client = await self._ready()
        channel_id = int(target.options["channel"])
        embed = notice_embed(delivery.notice, delivery.intent, delivery.event.id)
        content = _mention(target, delivery)
        key = (target.key, delivery.event.id)
        if delivery.intent in (Intent.OPEN, Intent.NOTICE) or not delivery.thread:
            root = self._posted.get(key)
            if root is None:  # a retry after a failed thread start must not post again
                view = (
                    self._view(delivery.notice, target) if delivery.intent is Intent.OPEN else None
                )
                root = await self._send(
                    client, channel_id, delivery, target, embed, content, view=view
                )
                self._posted[key] = root
            ref = {"channel": str(channel_id), "message": str(root)}
            if delivery.intent is Intent.OPEN:
                thread = await self._start_thread(client, channel_id, root, delivery)
                if thread is not None:
                    ref["thread"] = str(thread)
            self._posted.pop(key, None)
            return Receipt(ref)
        root = int(delivery.thread["message"])
        reply = self._posted.get(key)
        if reply is None:
            thread = delivery.thread.get("thread")
            where, reference = (int(thread), None) if thread else (channel_id, root)
            reply = await self._send(
                client, where, delivery, target, embed, content, reply_to=reference
            )
            self._posted[key] = reply
        await self._edit_root(client, channel_id, root, delivery)
        self._posted.pop(key, None)
        return Receipt({**delivery.thread, "reply": str(reply)})

    async def _send(
        self,
        client: discord.Client,
        channel_id: int,
        delivery: Delivery,
        target: Target,
        embed: discord.Embed,
        content: str | None,
        *,
        reply_to: int | None = None,
        view: discord.ui.View | None = None,
    ) -> int:
        reference: discord.MessageReference | None = None
        if reply_to is not None:
            reference = discord.MessageReference(
                message_id=reply_to, channel_id=channel_id, fail_if_not_exists=False
            )
        replying: dict[str, Any] = {"reference": reference} if reference is not None else {}
        if view is not None:
            replying["view"] = view
        message = await _call(
            client.get_partial_messageable(channel_id).send(
                content=content,
                embed=embed,
                nonce=nonce(delivery.event.id, target.key),
                allowed_mentions=_mentions(content),
                **replying,
            ),
            f"discord channel {channel_id}",
        )
        return int(message.id)

    async def _start_thread(
        self, client: discord.Client, channel_id: int, root: int, delivery: Delivery
    ) -> int | None:
        """A thread on the episode's first message, for its updates (its id is the
        message's); ``None`` where threads are not allowed: updates are replies then."""
        name = one_line(delivery.notice.title, THREAD_NAME_MAX) or "tocsin"
        try:
            # the HTTP call itself: a partial message lacks the guild the high-level API wants
            await client.http.start_thread_with_message(
                channel_id, root, name=name, auto_archive_duration=1440
            )
        except discord.HTTPException as exc:
            if exc.code == THREAD_ALREADY_EXISTS:
                return root
            if exc.status in (400, 403):
                log.info(
                    "no thread on the notice; replies instead", channel=channel_id, reason=exc.text
                )
                return None
            raise classify(exc, f"discord thread on {root}") from exc
        except NETWORK_ERRORS as exc:
            raise classify(exc, f"discord thread on {root}") from exc
        return root

    async def _edit_root(
        self, client: discord.Client, channel_id: int, root: int, delivery: Delivery
    ) -> None:
        if delivery.root is None:
            return
        embed = notice_embed(delivery.root, Intent.OPEN, delivery.event.id)
        partial = client.get_partial_messageable(channel_id).get_partial_message(root)
        # the buttons that make sense now; none (``components: []``) once it is resolved
        view = self._view(delivery.root, None)
        await _call(
            partial.edit(embed=embed, view=view, allowed_mentions=NO_MENTIONS),
            f"discord message {root}",
        )

    def _view(self, notice: Notice, target: Target | None) -> discord.ui.View | None:
        """The root's buttons as one action row (issue 15), or ``None``."""
        if not notice.buttons:
            return None
        view = button_view(notice.buttons)
        if view is None and not self._said_too_long:
            self._said_too_long = True
            log.warning(
                "a notice's buttons are too long for Discord (custom_id over 100 characters);"
                " roots go without them",
                provider=notice.provider,
                target=target.key if target else None,
            )
        return view

    async def find_sent(self, target: Target, delivery: Delivery) -> Receipt | None:
        """Our message for this event, by the event id in its embed footer; what a found
        delivery left undone (the thread, the root's edit) is finished here."""
        client = await self._ready()
        channel_id = int(target.options["channel"])
        if delivery.intent in (Intent.OPEN, Intent.NOTICE) or not delivery.thread:
            found = await self._search(client, channel_id, delivery.event.id)
            if found is None:
                return None
            ref = {"channel": str(channel_id), "message": str(found)}
            if delivery.intent is Intent.OPEN:
                thread = await self._start_thread(client, channel_id, found, delivery)
                if thread is not None:
                    ref["thread"] = str(thread)
            return Receipt(ref)
        thread = delivery.thread.get("thread")
        where = int(thread) if thread else channel_id
        found = await self._search(client, where, delivery.event.id)
        if found is None:
            return None
        await self._edit_root(client, channel_id, int(delivery.thread["message"]), delivery)
        return Receipt({**delivery.thread, "reply": str(found)})

    async def _search(self, client: discord.Client, channel_id: int, event_id: str) -> int | None:
        me = client.user.id if client.user else None
        try:
            async for message in client.get_partial_messageable(channel_id).history(
                limit=HISTORY_LIMIT
            ):
                if me is not None and message.author.id != me:
                    continue
                if any(event_in_footer(e.footer.text, event_id) for e in message.embeds):
                    return int(message.id)
        except discord.NotFound:
            return None  # no thread there: nothing was posted in it
        except NETWORK_ERRORS as exc:
            raise classify(exc, f"discord history of {channel_id}") from exc
        return None

    async def close(self) -> None:
        if not self.client.is_closed():
            await self.client.close()


async def _post(
    webhook: discord.Webhook, embed: discord.Embed, content: str | None, what: str
) -> discord.WebhookMessage:
    """One webhook message (waited for: its id is the receipt), pinging only ``content``'s."""
    message: discord.WebhookMessage = await _call(
        webhook.send(
            content=content or discord.utils.MISSING,
            embed=embed,
            wait=True,
            allowed_mentions=_mentions(content),
        ),
        what,
    )
    return message


class WebhookNotifier:
    """Notices posted through channel webhooks (no bot user needed)."""

    kind = "discord-webhook"

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._replied: dict[tuple[str, str], int] = {}

    def _webhook(self, url: str) -> discord.Webhook:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        match = WEBHOOK_PATH.search(url)
        if match is None:
            raise PermanentError("discord webhook: the URL has no /webhooks/<id>/<token>")
        return discord.Webhook.partial(int(match["id"]), match["token"], session=self._session)

    async def deliver(self, target: Target, delivery: Delivery) -> Receipt:
        webhook = self._webhook(str(target.options["url"]))
        embed = notice_embed(delivery.notice, delivery.intent, delivery.event.id)
        content = _mention(target, delivery)
        what = f"discord webhook {target.key}"
        if delivery.intent in (Intent.OPEN, Intent.NOTICE) or not delivery.thread:
            message = await _post(webhook, embed, content, what)
            return Receipt({"message": str(message.id)})
        root = int(delivery.thread["message"])
        key = (target.key, delivery.event.id)
        if key not in self._replied:
            follow = await _post(webhook, embed, content, what)
            self._replied[key] = int(follow.id)
        if delivery.root is not None:
            root_embed = notice_embed(delivery.root, Intent.OPEN, delivery.event.id)
            await _call(
                webhook.edit_message(root, embed=root_embed, allowed_mentions=NO_MENTIONS), what
            )
        reply = self._replied.pop(key)
        return Receipt({"message": str(root), "reply": str(reply)})

    async def find_sent(self, target: Target, delivery: Delivery) -> Receipt | None:
        return None  # webhooks cannot read a channel (see the module docstring)

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
