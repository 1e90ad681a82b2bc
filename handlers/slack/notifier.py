"""Slack notices through the Web API (slack-sdk's ``AsyncWebClient``).

An episode's first notice is a channel message; its updates are thread replies, and the root
is edited (``chat.update``) to say where things stand, finally "resolved". ``chat.postMessage``
has no idempotency key, so every message carries its event id in message metadata; after a
crash, :meth:`SlackNotifier.find_sent` looks for it in the channel (or thread) before anything
is posted again.

Retries are the dispatcher's (one policy, Retry-After honoured, for every platform), so the
SDK's own retry handlers are switched off: nested retries would hide failures and hold a
channel's queue twice as long. Errors are classified here: 429 and 5xx and network errors
retry; a channel that does not exist or a token that is revoked will not get better by retrying;
a message Slack refuses for what it says (``invalid_blocks``, ``msg_too_long``...) is a
:class:`~bot.notifier.ContentRejected`, which the dispatcher sends once more without its optional
parts.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

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
from handlers.chat import mention_for
from handlers.slack.render import MENTIONS, METADATA_TYPE, notice_message

log = get_logger("tocsin.slack")

#: Slack errors that retrying cannot fix: the target is wrong, or we are not allowed.
PERMANENT = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "no_permission",
        "missing_scope",
        "restricted_action",
        "ekm_access_denied",
        "team_access_not_granted",
        "no_text",
        "thread_not_found",
        "message_not_found",
        "cant_update_message",
        "edit_window_closed",
    }
)
#: Slack errors that refuse what a message says (a block, an attachment, its length), not
#: where it goes: the dispatcher sends the notice once more without its optional parts.
REFUSED_CONTENT = frozenset(
    {
        "invalid_blocks",
        "invalid_blocks_format",
        "invalid_attachments",
        "too_many_attachments",
        "invalid_arguments",
        "invalid_metadata_format",
        "msg_too_long",
    }
)
#: Slack errors that say "not now".
TRANSIENT = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
RECONCILE_WINDOW = timedelta(minutes=30)
#: Concurrent connections to Slack from one process (fan-out to many channels shares them).
SESSION_CONNECTIONS = 64


def make_client(api_url: str, token: str | None, *, timeout: int = 10) -> AsyncWebClient:
    client = AsyncWebClient(token=token, base_url=api_url, timeout=timeout)
    client.retry_handlers = []  # the dispatcher retries (see module docstring)
    return client


class SlackNotifier:
    kind = "slack"

    def __init__(self, client: AsyncWebClient) -> None:
        self.client = client
        #: Replies posted whose root edit has not gone through yet (a retry must not repost).
        self._replied: dict[tuple[str, str], str] = {}

    async def deliver(self, target: Target, delivery: Delivery) -> Receipt:
        channel = str(target.options["channel"])
        mention = mention_for(target.options, delivery, MENTIONS)
        message = notice_message(
            delivery.notice, delivery.intent, mention=mention, event_id=delivery.event.id
        )
        if delivery.intent in (Intent.OPEN, Intent.NOTICE) or not delivery.thread:
            ts = await self._post(channel, message)
            return Receipt({"channel": channel, "ts": ts})
        root = str(delivery.thread["ts"])
        key = (target.key, delivery.event.id)
        reply = self._replied.get(key)
        if reply is None:
            broadcast = mention is not None  # an escalation worth the channel's attention
            reply = await self._post(channel, message, thread_ts=root, reply_broadcast=broadcast)
            self._replied[key] = reply
        await self._edit_root(channel, root, delivery)
        self._replied.pop(key, None)
        return Receipt({"channel": channel, "ts": root, "reply": reply})

    async def find_sent(self, target: Target, delivery: Delivery) -> Receipt | None:
        """The message this event already produced in the channel (or thread), if any; a
        found reply also gets its root edit, so the reconciled delivery is complete."""
        channel = str(target.options["channel"])
        oldest = (delivery.event.at - RECONCILE_WINDOW).timestamp()
        if delivery.intent in (Intent.OPEN, Intent.NOTICE) or not delivery.thread:
            messages = await self._call(
                "conversations.history",
                channel=channel,
                oldest=f"{oldest:.6f}",
                limit=200,
                include_all_metadata=True,
            )
            found = _with_event(messages.get("messages", []), delivery.event.id)
            return Receipt({"channel": channel, "ts": found}) if found else None
        root = str(delivery.thread["ts"])
        replies = await self._call(
            "conversations.replies", channel=channel, ts=root, limit=200, include_all_metadata=True
        )
        found = _with_event(replies.get("messages", []), delivery.event.id)
        if not found:
            return None
        await self._edit_root(channel, root, delivery)
        return Receipt({"channel": channel, "ts": root, "reply": found})

    def _ensure_session(self) -> None:
        """One pooled HTTP session for every channel (the SDK would open one per call),
        created in the running loop on first use."""
        session = self.client.session
        if session is None or session.closed:
            self.client.session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=SESSION_CONNECTIONS),
                timeout=aiohttp.ClientTimeout(total=self.client.timeout),
            )

    async def close(self) -> None:
        session = self.client.session
        if session is not None and not session.closed:
            await session.close()

    # ------------------------------------------------------------------ calls

    async def _post(self, channel: str, message: dict[str, Any], **extra: Any) -> str:
        response = await self._call("chat.postMessage", channel=channel, **message, **extra)
        return str(response["ts"])

    async def _edit_root(self, channel: str, root: str, delivery: Delivery) -> None:
        if delivery.root is None:
            return
        message = notice_message(delivery.root, Intent.OPEN, event_id=delivery.event.id)
        message.pop("metadata")  # the root keeps the metadata of the event that opened it
        await self._call("chat.update", channel=channel, ts=root, **message)

    async def _call(self, method: str, **params: Any) -> dict[str, Any]:
        """One Web API call through the SDK's own method (it knows each method's HTTP verb
        and encoding), with Slack's errors classified for the dispatcher."""
        self._ensure_session()
        call = getattr(self.client, method.replace(".", "_"))
        try:
            response = await call(**params)
        except SlackApiError as exc:
            raise classify(exc, method, params.get("channel")) from exc
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise RetryableError(f"slack {method}: {type(exc).__name__}: {exc}") from exc
        return dict(response.data) if isinstance(response.data, dict) else {}


def classify(exc: SlackApiError, method: str, channel: object) -> Exception:
    """A Slack API error as retryable (with Retry-After) or permanent."""
    response = exc.response
    status = getattr(response, "status_code", 0)
    error = str(response.get("error", "")) if response is not None else ""
    where = f"slack {method}" + (f" to {channel}" if channel else "")
    if status == 429 or error == "ratelimited":
        retry_after = _retry_after(response.headers if response is not None else {})
        return RetryableError(f"{where}: rate limited", retry_after=retry_after)
    if status >= 500 or error in TRANSIENT:
        return RetryableError(f"{where}: {error or f'HTTP {status}'}")
    if error in REFUSED_CONTENT:
        return ContentRejected(f"{where}: {error}{_problems(response)}")
    if error in PERMANENT:
        return PermanentError(f"{where}: {error}")
    return PermanentError(f"{where}: {error or f'HTTP {status}'}")


def _problems(response: Any) -> str:
    """What Slack said was wrong (``response_metadata.messages``), for the log line."""
    metadata = response.get("response_metadata") if response is not None else None
    messages = metadata.get("messages") if isinstance(metadata, dict) else None
    if not isinstance(messages, list) or not messages:
        return ""
    return " (" + "; ".join(one_line(m, 200) for m in messages[:3]) + ")"


def _retry_after(headers: Mapping[str, Any]) -> float | None:
    for name, value in headers.items():
        if name.lower() == "retry-after":
            raw = value[0] if isinstance(value, list | tuple) else value
            try:
                return max(0.0, float(raw))
            except (TypeError, ValueError):
                return None
    return None


def _with_event(messages: list[dict[str, Any]], event_id: str) -> str | None:
    for message in messages:
        metadata = message.get("metadata") or {}
        payload = metadata.get("event_payload") or {}
        if metadata.get("event_type") == METADATA_TYPE and payload.get("event_id") == event_id:
            return str(message["ts"])
    return None
