"""A local fake of a Teams channel webhook, on a real loopback socket, that checks what it gets.

``fake = await FakeTeams().start()``; ``fake.url`` is a webhook URL (its path carries a
signature, as Workflows URLs do: the secret a test looks for in logs).

What it checks, as Teams does (learn.microsoft.com: "Send Adaptive Cards using an Incoming
Webhook", "Limits and specifications for Microsoft Teams", adaptivecards.io's schema):
a JSON body of at most 28 KB; ``type: message``; exactly one attachment, of contentType
``application/vnd.microsoft.card.adaptive``, whose ``content`` is an AdaptiveCard with a
``version`` Teams renders (≤ 1.5) and a ``body`` of known element types; ``actions`` only
``Action.OpenUrl`` with an http(s) ``url``. A card that breaks a rule is answered 400 and
recorded in :attr:`FakeTeams.violations`; one that passes is 200 ``1`` (the Incoming Webhook)
or 202 (Workflows, ``workflows=True``), and recorded in :attr:`FakeTeams.cards`.

Failure injection: :meth:`~FakeTeams.fail` (any status for N calls, ``Retry-After`` for 429),
:meth:`~FakeTeams.wrap_error` (the Incoming Webhook's 200 whose body says "Microsoft Teams
endpoint returned HTTP error 413"), :meth:`~FakeTeams.refuse` (400 for N valid cards: what
Teams says of content it will not show).
"""

from __future__ import annotations

import json
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Self

from aiohttp import web

PAYLOAD_MAX = 28 * 1024
CARD_TYPE = "application/vnd.microsoft.card.adaptive"
VERSIONS = frozenset({"1.0", "1.1", "1.2", "1.3", "1.4", "1.5"})
ELEMENTS = frozenset(
    {
        "TextBlock",
        "FactSet",
        "ColumnSet",
        "Column",
        "Container",
        "Image",
        "ImageSet",
        "RichTextBlock",
    }
)
CHILDREN = {"ColumnSet": "columns", "Column": "items", "Container": "items"}
WRAPPED = (
    "Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP "
    "error {status} with ContextId tcid=0,server=fake,cv=fake.0.."
)


@dataclass
class Call:
    status: int
    at: float = field(default_factory=time.monotonic)
    body: Any = None


@dataclass
class Failure:
    status: int
    retry_after: float | None = None
    wrapped: bool = False


def card_errors(raw: bytes, content_type: str) -> list[str]:
    """Why Teams would refuse this webhook body (empty: it would show the card)."""
    if not content_type.startswith("application/json"):
        return [f"content type {content_type!r} is not JSON"]
    if len(raw) > PAYLOAD_MAX:
        return [f"{len(raw)} bytes: over Teams' 28 KB"]
    try:
        body = json.loads(raw)
    except ValueError:
        return ["not JSON"]
    if not isinstance(body, dict) or body.get("type") != "message":
        return ["type is not 'message'"]
    attachments = body.get("attachments")
    if not isinstance(attachments, list) or len(attachments) != 1:
        return ["not exactly one attachment"]
    (attachment,) = attachments
    if attachment.get("contentType") != CARD_TYPE:
        return [f"contentType {attachment.get('contentType')!r}"]
    card = attachment.get("content")
    if not isinstance(card, dict) or card.get("type") != "AdaptiveCard":
        return ["content is not an AdaptiveCard"]
    errors = [] if card.get("version") in VERSIONS else [f"version {card.get('version')!r}"]
    elements = card.get("body")
    if not isinstance(elements, list) or not elements:
        return [*errors, "no body"]
    errors += [e for element in elements for e in _element_errors(element)]
    for action in card.get("actions") or []:
        url = str(action.get("url", ""))
        if action.get("type") != "Action.OpenUrl" or not url.startswith(("https://", "http://")):
            errors.append(f"action {action.get('type')!r} to {url[:40]!r}")
    return errors


def _element_errors(element: Any) -> list[str]:
    if not isinstance(element, dict) or element.get("type") not in ELEMENTS:
        return [f"unknown element {element!r:.60}"]
    kind = element["type"]
    if kind == "TextBlock" and not isinstance(element.get("text"), str):
        return ["a TextBlock without text"]
    if kind == "FactSet":
        facts = element.get("facts")
        if not isinstance(facts, list) or not all(
            isinstance(f, dict)
            and isinstance(f.get("title"), str)
            and isinstance(f.get("value"), str)
            for f in facts
        ):
            return ["a FactSet whose facts are not {title, value} strings"]
    children = element.get(CHILDREN.get(kind, ""), [])
    return [e for child in children for e in _element_errors(child)]


class FakeTeams:
    def __init__(self, *, workflows: bool = False) -> None:
        self.workflows = workflows
        self.signature = secrets.token_urlsafe(32)
        self.port = 0
        self.calls: list[Call] = []
        self.cards: list[dict[str, Any]] = []
        self.violations: list[list[str]] = []
        self._failures: deque[Failure] = deque()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return (
            f"http://127.0.0.1:{self.port}/workflows/f00d/triggers/manual/paths/invoke"
            f"?api-version=1&sig={self.signature}"
        )

    async def start(self) -> Self:
        app = web.Application(client_max_size=4 * PAYLOAD_MAX)
        app.router.add_post("/workflows/{flow}/triggers/manual/paths/invoke", self._handle)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self._runner = runner
        self.port = runner.addresses[0][1]
        return self

    async def close(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    # ------------------------------------------------------------------ failures

    def fail(self, status: int, *, times: int = 1, retry_after: float | None = None) -> None:
        self._failures.extend(Failure(status, retry_after) for _ in range(times))

    def wrap_error(self, status: int, *, times: int = 1) -> None:
        self._failures.extend(Failure(status, wrapped=True) for _ in range(times))

    def refuse(self, *, times: int = 1) -> None:
        self.fail(400, times=times)

    # ------------------------------------------------------------------ serving

    def titles(self) -> list[str]:
        return [card["body"][0]["text"] for card in self.cards]

    async def _handle(self, request: web.Request) -> web.Response:
        if request.query.get("sig") != self.signature:
            return self._answer(web.Response(status=401, text="unauthorized"), None)
        raw = await request.read()
        errors = card_errors(raw, request.headers.get("Content-Type", ""))
        body = None if errors else json.loads(raw)
        if errors:
            self.violations.append(errors)
            return self._answer(web.Response(status=400, text="; ".join(errors)), body)
        if self._failures:
            failure = self._failures.popleft()
            if failure.wrapped:
                return self._answer(web.Response(text=WRAPPED.format(status=failure.status)), body)
            headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after else {}
            return self._answer(web.Response(status=failure.status, headers=headers), body)
        self.cards.append(body["attachments"][0]["content"])
        if self.workflows:
            return self._answer(web.Response(status=202), body)
        return self._answer(web.Response(text="1"), body)

    def _answer(self, response: web.Response, body: Any) -> web.Response:
        self.calls.append(Call(response.status, body=body))
        return response
