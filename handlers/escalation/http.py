"""What the escalation notifiers share: one httpx client, and HTTP answers as delivery errors.

Retries are the dispatcher's (one policy for every target: Retry-After honoured, exponential
backoff with jitter otherwise), so a notifier only says whether trying again can help.
"""

from __future__ import annotations

import json

import httpx

from bot.notifier import DeliveryError, PermanentError, RetryableError
from bot.outside import retry_after as parse_retry_after

TIMEOUT = httpx.Timeout(10.0, connect=5.0)


def make_client(user_agent: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=TIMEOUT, headers={"User-Agent": user_agent}, follow_redirects=False
    )


async def post(client: httpx.AsyncClient, what: str, url: str, **kwargs: object) -> httpx.Response:
    """POST, with a network failure as a retryable error that names the target."""
    try:
        return await client.post(url, **kwargs)  # type: ignore[arg-type]
    except httpx.TimeoutException as exc:
        raise RetryableError(f"{what}: timed out ({type(exc).__name__})") from exc
    except httpx.HTTPError as exc:
        raise RetryableError(f"{what}: {type(exc).__name__}: {exc}") from exc


def error_for(what: str, response: httpx.Response) -> DeliveryError:
    """A non-2xx answer as retryable (429, 408, 5xx) or permanent (the rest of 4xx)."""
    status = response.status_code
    reason = f"{what}: HTTP {status}: {describe(response)}"
    if status == 429 or status == 408 or status >= 500:
        return RetryableError(reason, retry_after=retry_after(response))
    return PermanentError(reason)


def describe(response: httpx.Response, limit: int = 300) -> str:
    """The service's own explanation, short: its JSON message and errors, else the text
    (an HTML error page is named as such rather than dumped)."""
    kind = response.headers.get("content-type", "")
    if "html" in kind:
        return "an HTML error page (a proxy or load balancer answered)"
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return response.text[:limit].strip() or "(empty body)"
    if isinstance(body, dict):
        parts = [str(body[k]) for k in ("message", "errors", "result") if body.get(k)]
        if parts:
            return "; ".join(parts)[:limit]
    return json.dumps(body)[:limit]


def retry_after(response: httpx.Response) -> float | None:
    """Retry-After in seconds, from either of its forms (seconds, or an HTTP date)."""
    return parse_retry_after(response.headers.get("retry-after"))
