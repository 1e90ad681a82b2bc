"""A generic signed webhook: the escalation event's JSON, POSTed to any URL.

Receivers check two headers (README "Escalation" has a verification snippet):

- ``X-Tocsin-Timestamp``: Unix seconds when it was signed (reject old ones: replays);
- ``X-Tocsin-Signature``: ``v1=`` + hex HMAC-SHA256, keyed with the policy's ``secret``,
  over ``{timestamp}.{raw body}`` (the Stripe/Slack scheme: the timestamp is signed too);

and ``Idempotency-Key`` (the event id) lets them drop a redelivery. 2xx is success; 408, 429
and 5xx are retried with backoff (Retry-After honoured); other answers are dead-lettered.
"""

from __future__ import annotations

import hashlib
import hmac
import time

import httpx

from bot.notifier import Delivery, Receipt, Target
from handlers.escalation.http import error_for, post

SIGNATURE_VERSION = "v1"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"{SIGNATURE_VERSION}={digest.hexdigest()}"


class SignedWebhookNotifier:
    kind = "webhook"

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def deliver(self, target: Target, delivery: Delivery) -> Receipt:
        event = delivery.event
        body = event.to_json().encode()
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": event.id,
            "X-Tocsin-Event": f"escalation.{event.escalation.action if event.escalation else ''}",
        }
        secret = target.options.get("secret")
        if secret is not None:
            stamp = str(int(time.time()))
            headers["X-Tocsin-Timestamp"] = stamp
            headers["X-Tocsin-Signature"] = sign(secret.get_secret_value(), stamp, body)
        what = f"webhook ({target.options['policy']})"
        response = await post(
            self.client, what, target.options["url"], content=body, headers=headers
        )
        if not response.is_success:
            raise error_for(what, response)
        return Receipt({"status": response.status_code})

    async def find_sent(self, target: Target, delivery: Delivery) -> Receipt | None:
        return None  # the receiver drops a redelivery by its Idempotency-Key

    async def close(self) -> None:
        await self.client.aclose()
