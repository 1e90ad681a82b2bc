"""Teams notices through channel webhooks: Workflows (Power Automate's "When a Teams webhook
request is received") or the older Incoming Webhook connector; both take the same card.

A webhook can only post: it cannot thread, edit or read a channel. An episode's updates and
its recovery are new cards, their titles marked as replies (``↳``), and the root card keeps
what it said when it was posted. Nor has a webhook an idempotency key: a crash between Teams
taking a card and tocsin recording it can repeat that one card (:meth:`find_sent` cannot look).

How Teams answers: Workflows 202 Accepted; the Incoming Webhook 200 with body ``1``, and also
200 when it failed, with ``Microsoft Teams endpoint returned HTTP error 413`` (or 400, 429,
500...) in the body (MicrosoftDocs/msteams-docs#1810, #4145, #7425). The code in that text
counts as the status. 429 and 5xx and network errors retry (after ``Retry-After``); 400 and
413 refuse what the card says (:class:`~bot.notifier.ContentRejected`: sent once more without
its optional parts); 401, 403, 404 and other 4xx are permanent. The dispatcher retries; this
never does. The URL is the secret: no error, log line or receipt carries it.
"""

from __future__ import annotations

import re

import httpx

from bot.notifier import (
    ContentRejected,
    Delivery,
    PermanentError,
    Receipt,
    RetryableError,
    Target,
)
from bot.outside import one_line, retry_after
from handlers.teams.render import encode, message

#: Statuses that refuse the card, not the webhook (a body Teams cannot read, too big).
REFUSED = frozenset({400, 413})
#: How much of an answer is read: enough for Teams' error sentence.
ANSWER_MAX = 2048
TIMEOUT = httpx.Timeout(10.0, connect=5.0)
#: The failure Teams' Incoming Webhook wraps in a 200.
_WRAPPED = re.compile(r"returned HTTP error (\d{3})", re.IGNORECASE)
HEADERS = {"Content-Type": "application/json; charset=utf-8"}


class TeamsNotifier:
    """Cards posted to Teams webhooks (one URL per target, one HTTP client for all)."""

    kind = "teams"

    def __init__(self) -> None:
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        """The shared client, made in the running loop on first use."""
        if self._client is None or self._client.is_closed:
            self._client = httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False)
        return self._client

    async def deliver(self, target: Target, delivery: Delivery) -> Receipt:
        url = str(target.options["url"])
        body = encode(message(delivery.notice, delivery.intent))
        what = f"teams webhook {target.key}"
        try:
            async with self._http().stream("POST", url, content=body, headers=HEADERS) as answer:
                text = await _read(answer)
        except httpx.HTTPError as exc:
            # the exception's text can name the URL: only its kind is kept
            raise RetryableError(f"{what}: {type(exc).__name__}") from None
        status, retry_after = _effective(answer, text)
        if status < 300:
            return Receipt({"event": delivery.event.id})
        raise classify(status, f"{what}: HTTP {status}{_said(text, url)}", retry_after)

    async def find_sent(self, target: Target, delivery: Delivery) -> Receipt | None:
        return None  # a webhook cannot read the channel (see the module docstring)

    async def close(self) -> None:
        if self._client is not None and not self._client.is_closed:
            await self._client.aclose()
        self._client = None


def classify(status: int, detail: str, retry_after: float | None = None) -> Exception:
    """An HTTP status (or the one Teams wrapped in a 200) as retryable or permanent."""
    if status == 429 or status >= 500:
        return RetryableError(detail, retry_after=retry_after)
    if status in REFUSED:
        return ContentRejected(detail)
    return PermanentError(detail)


async def _read(answer: httpx.Response) -> str:
    """At most :data:`ANSWER_MAX` bytes of the answer, as text."""
    read = b""
    async for chunk in answer.aiter_bytes():
        read += chunk
        if len(read) >= ANSWER_MAX:
            break
    return read[:ANSWER_MAX].decode("utf-8", "replace")


def _effective(answer: httpx.Response, text: str) -> tuple[int, float | None]:
    """The status that counts (a 200 saying ``returned HTTP error 413`` is a 413), and the
    wait a 429 asks for."""
    status = answer.status_code
    wrapped = _WRAPPED.search(text) if status < 300 else None
    if wrapped:
        status = int(wrapped[1])
    return status, retry_after(answer.headers.get("Retry-After"))


def _said(text: str, url: str) -> str:
    """What Teams said, one short line, never the URL."""
    said = one_line(text.replace(url, "<webhook>"), 200)
    return f": {said}" if said else ""
