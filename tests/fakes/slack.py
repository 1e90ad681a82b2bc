"""A local fake of Slack, on real loopback sockets, for slack-sdk's and slack-bolt's own clients.

``fake = await FakeSlack().start()``, then point the real clients at it::

    AsyncWebClient(token=fake.bot_token, base_url=fake.api_url)
    SocketModeClient(app_token=fake.app_token, web_client=...)   # Socket Mode goes via
                                                                 # apps.connections.open

What it serves:

* **Web API** at ``/api/<method>`` (form-encoded, JSON or query parameters; token in
  ``Authorization: Bearer``): ``auth.test``, ``chat.postMessage``, ``chat.update``,
  ``chat.postEphemeral``, ``conversations.history``, ``conversations.replies``,
  ``apps.connections.open``. Unknown methods are HTTP 404 ``unknown_method``; methods Slack
  has but this fake does not implement answer ``fake_not_implemented`` and land in
  :attr:`FakeSlack.unsupported`.
* **Validation** of every call against Slack's own Web API spec
  (``tests/specs/slack_web_openapi_v2.json``): the method exists, every required argument is
  there, no argument is unknown (plus a short, sourced list of arguments newer than the 2021
  spec, :data:`NEWER_PARAMS`); and Block Kit, attachments, message text and message metadata
  against Slack's documented limits (:func:`block_errors`). A bad call gets Slack's error
  (``invalid_arguments``, ``invalid_blocks``, ``msg_too_long``, ``invalid_metadata_format``…,
  with ``response_metadata.messages`` as Slack words them) and is recorded in
  :attr:`FakeSlack.violations`, so a test can assert our code never made one.
* **Failure injection**: :meth:`~FakeSlack.rate_limit` (HTTP 429 + ``Retry-After``),
  :meth:`~FakeSlack.fail` (HTTP 5xx), :meth:`~FakeSlack.channel_error`,
  :meth:`~FakeSlack.revoke_token`, :meth:`~FakeSlack.set_delay`.
* **State**: channels and their messages (top level, thread replies, edits, metadata), every
  call, helpers :meth:`~FakeSlack.top_level`, :meth:`~FakeSlack.replies`,
  :meth:`~FakeSlack.find_by_metadata`.
* **Socket Mode** at ``/socket``: Slack's ``hello`` on connect, ``slash_commands`` envelopes
  (:meth:`~FakeSlack.slash_command`) whose acks are awaited and timed, ``disconnect`` requests,
  pings both ways, several connections (envelopes go to the newest).
* **response_url** at ``/commands/…``: what a command's delayed responses are posted to; at
  ``/actions/…``: a click's (Slack's limit: 5 uses each).
* **Clicks** (:meth:`~FakeSlack.click`): a person presses a button of a message the fake holds
  (as it is now, after any ``chat.update``; a button it does not have cannot be pressed). The
  ``block_actions`` payload is built as Slack sends it and goes to the app over HTTP (form
  field ``payload``, signed with the signing secret, to :meth:`~FakeSlack.interactivity`'s
  URL) or over Socket Mode (an ``interactive`` envelope whose ack is awaited);
  :meth:`~FakeSlack.send_interaction` sends any payload (what Slack never would: a forged
  value). What the app answers the clicker is in :attr:`FakeSlack.response_url_posts` (and
  :attr:`FakeSlack.ephemerals` for ``chat.postEphemeral``).
* **HTTP mode helpers** (module level): :func:`signed_request` and :func:`slash_command_body`.

Sources for the shapes (Slack's docs, read for this file):
docs.slack.dev/reference/methods/<method> (arguments, errors, example responses),
docs.slack.dev/apis/events-api/using-socket-mode (hello, disconnect, envelope and ack shapes,
slash-command payload), docs.slack.dev/reference/block-kit/blocks/* (limits),
docs.slack.dev/messaging/message-metadata, docs.slack.dev/apis/web-api/rate-limits,
docs.slack.dev/authentication/verifying-requests-from-slack (request signatures),
docs.slack.dev/reference/interaction-payloads/block_actions-payload (a click's payload; its
``container`` is ``message_attachment`` for a button in an attachment's blocks),
docs.slack.dev/reference/block-kit/block-elements/button-element (a button's limits),
docs.slack.dev/interactivity/handling-user-interaction (response_url: 5 uses in 30 minutes).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import functools
import hashlib
import hmac
import itertools
import json
import re
import secrets
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode

import aiohttp
from aiohttp import WSMsgType, web

SPEC_PATH = Path(__file__).resolve().parent.parent / "specs" / "slack_web_openapi_v2.json"

TEAM_ID = "T0TOCSIN01"
TEAM_DOMAIN = "tocsin-test"
TEAM_NAME = "Tocsin Test"
APP_ID = "A0TOCSIN01"
BOT_ID = "B0TOCSIN01"
BOT_USER_ID = "U0TOCSINBOT"
BOT_USER_NAME = "tocsin"
#: Tokens the fake accepts by default: a bot token and an app-level (Socket Mode) token.
FAKE_BOT_TOKEN = "xoxb-1111111111-2222222222-tocsinFakeBotToken"
FAKE_APP_TOKEN = "xapp-1-A0TOCSIN01-3333333333-tocsinFakeAppToken"
#: The legacy verification token Slack still puts in command payloads.
VERIFICATION_TOKEN = "fakeVerificationToken0001"

# --------------------------------------------------------------------------- spec

#: Arguments Slack documents today that the 2021 spec (1.7.0) predates. Each is listed on the
#: method's own page, docs.slack.dev/reference/methods/<method>: ``metadata`` (message metadata,
#: 2022: docs.slack.dev/messaging/message-metadata), ``markdown_text`` (2025),
#: ``reply_broadcast``/``file_ids`` on chat.update, ``include_all_metadata`` on the readers.
NEWER_PARAMS: dict[str, frozenset[str]] = {
    "chat.postMessage": frozenset({"metadata", "markdown_text"}),
    "chat.update": frozenset({"metadata", "markdown_text", "reply_broadcast", "file_ids"}),
    "chat.postEphemeral": frozenset({"markdown_text"}),
    "conversations.history": frozenset({"include_all_metadata"}),
    "conversations.replies": frozenset({"include_all_metadata"}),
}
#: Arguments Slack takes on every method: ``team_id`` picks the workspace for org-wide tokens
#: (listed on most method pages, "required if org token is used"). slack-sdk adds it to every
#: call of a client built with ``team_id`` (``AsyncWebClient.default_params``), and slack-bolt
#: builds each request's client that way, so bolt's own ``auth.test`` carries it.
GLOBAL_PARAMS = frozenset({"team_id"})
#: Arguments today's docs mark required although the 2021 spec leaves them optional; Slack
#: answers ``invalid_arguments`` without them (docs.slack.dev/reference/methods/conversations.*).
NEWER_REQUIRED: dict[str, tuple[str, ...]] = {
    "conversations.history": ("channel",),
    "conversations.replies": ("channel", "ts"),
}
#: Methods newer than the spec, with their arguments: ``apps.connections.open`` (Socket Mode,
#: 2021-01; docs.slack.dev/reference/methods/apps.connections.open) takes only the app token.
NEWER_METHODS: dict[str, dict[str, bool]] = {"apps.connections.open": {"token": True}}

#: Methods that take an app-level token (``xapp-``); every other one takes a bot/user token.
APP_TOKEN_METHODS = frozenset({"apps.connections.open"})


@dataclass(frozen=True)
class MethodSpec:
    name: str
    params: frozenset[str]
    required: frozenset[str]


@functools.cache
def load_spec(path: Path = SPEC_PATH) -> dict[str, MethodSpec]:
    """Every Web API method of Slack's spec, with its argument names and required ones (the
    token, header or form, is checked as authentication, not as an argument)."""
    raw = json.loads(path.read_text())
    methods: dict[str, MethodSpec] = {}
    for path_name, operations in raw["paths"].items():
        name = path_name.lstrip("/")
        params: set[str] = set()
        required: set[str] = set()
        for operation in operations.values():
            for param in operation.get("parameters", []):
                if param["name"] == "token":
                    continue
                params.add(param["name"])
                if param.get("required"):
                    required.add(param["name"])
        params |= NEWER_PARAMS.get(name, frozenset()) | GLOBAL_PARAMS
        required |= set(NEWER_REQUIRED.get(name, ()))
        methods[name] = MethodSpec(name, frozenset(params), frozenset(required))
    for name, args in NEWER_METHODS.items():
        rest = {k: v for k, v in args.items() if k != "token"}
        methods[name] = MethodSpec(
            name, frozenset(rest) | GLOBAL_PARAMS, frozenset(k for k, v in rest.items() if v)
        )
    return methods


# ---------------------------------------------------------------------- Block Kit

#: Documented limits (docs.slack.dev/reference/block-kit/blocks and each block's page; the
#: 40,000-character text cut-off: api.slack.com/changelog/2018-04-truncating-really-long-messages
#: and the chat.postMessage page, "Truncating content").
MAX_BLOCKS = 50
MAX_TEXT = 40_000
MAX_ATTACHMENTS = 100
HEADER_TEXT_MAX = 150
SECTION_TEXT_MAX = 3000
SECTION_FIELDS_MAX = 10
SECTION_FIELD_TEXT_MAX = 2000
CONTEXT_ELEMENTS_MAX = 10
ACTIONS_ELEMENTS_MAX = 25
BLOCK_ID_MAX = 255
BUTTON_TEXT_MAX = 75
ACTION_ID_MAX = 255
BUTTON_VALUE_MAX = 2000
BUTTON_URL_MAX = 3000
BUTTON_FIELDS = frozenset(
    {"type", "text", "action_id", "url", "value", "style", "confirm", "accessibility_label"}
)
#: Interactive elements an actions block takes (docs.slack.dev/reference/block-kit/blocks/
#: actions-block); only buttons are checked field by field.
ACTION_ELEMENT_TYPES = frozenset(
    {
        "button",
        "checkboxes",
        "datepicker",
        "datetimepicker",
        "multi_static_select",
        "multi_external_select",
        "multi_users_select",
        "multi_conversations_select",
        "multi_channels_select",
        "overflow",
        "radio_buttons",
        "static_select",
        "external_select",
        "users_select",
        "conversations_select",
        "channels_select",
        "timepicker",
        "workflow_button",
        "rich_text_input",
        "plain_text_input",
    }
)
#: How often one response_url takes a message (docs.slack.dev/interactivity/
#: handling-user-interaction, "up to 5 times within 30 minutes").
RESPONSE_URL_USES = 5
MARKDOWN_BLOCK_MAX = 12_000
IMAGE_ALT_TEXT_MAX = 2000
IMAGE_URL_MAX = 3000
TEXT_OBJECT_TYPES = ("plain_text", "mrkdwn")
#: Block types Slack accepts in messages (docs.slack.dev/reference/block-kit/blocks).
MESSAGE_BLOCK_TYPES = frozenset(
    {
        "actions",
        "context",
        "context_actions",
        "divider",
        "file",
        "header",
        "image",
        "input",
        "markdown",
        "rich_text",
        "section",
        "table",
        "video",
    }
)
#: Attachment colours: a hex code or one of three names (docs.slack.dev/messaging/
#: formatting-message-text#attachments, "color").
COLOR = re.compile(r"^(#?[0-9a-fA-F]{6}|good|warning|danger)$")


def _limit(pointer: str, text: str) -> str:
    return f"{text} [json-pointer:{pointer}]"


def text_object_errors(
    value: Any, pointer: str, *, max_len: int | None = None, plain_only: bool = False
) -> list[str]:
    """A composition text object: ``plain_text`` or ``mrkdwn``, non-empty, within ``max_len``."""
    if not isinstance(value, dict):
        return [_limit(pointer, "must be an object")]
    kind = value.get("type")
    allowed = ("plain_text",) if plain_only else TEXT_OBJECT_TYPES
    if kind not in allowed:
        return [_limit(f"{pointer}/type", f"must be one of: {', '.join(allowed)}")]
    errors: list[str] = []
    extra = set(value) - {"type", "text", "emoji" if kind == "plain_text" else "verbatim"}
    errors += [_limit(f"{pointer}/{key}", "unsupported property") for key in sorted(extra)]
    text = value.get("text")
    if not isinstance(text, str):
        errors.append(_limit(f"{pointer}/text", "must be a string"))
    elif not text:
        errors.append(_limit(f"{pointer}/text", "must be more than 0 characters"))
    elif max_len is not None and len(text) > max_len:
        errors.append(_limit(f"{pointer}/text", f"must be less than {max_len + 1} characters"))
    return errors


def _image_element_errors(value: dict[str, Any], pointer: str) -> list[str]:
    errors = []
    alt = value.get("alt_text")
    if not isinstance(alt, str) or not alt:
        errors.append(_limit(f"{pointer}/alt_text", "must be a non-empty string"))
    elif len(alt) > IMAGE_ALT_TEXT_MAX:
        errors.append(_limit(f"{pointer}/alt_text", "must be less than 2001 characters"))
    url = value.get("image_url")
    if url is None and value.get("slack_file") is None:
        errors.append(_limit(pointer, "must provide image_url or slack_file"))
    elif url is not None and (not isinstance(url, str) or len(url) > IMAGE_URL_MAX):
        errors.append(_limit(f"{pointer}/image_url", "must be a string of at most 3000 chars"))
    return errors


def _array(value: Any, pointer: str, *, min_items: int, max_items: int) -> list[str]:
    if not isinstance(value, list):
        return [_limit(pointer, "must be an array")]
    if len(value) < min_items:
        return [_limit(pointer, f"must provide at least {min_items} items")]
    if len(value) > max_items:
        return [_limit(pointer, f"no more than {max_items} items allowed")]
    return []


def block_errors(blocks: Any, pointer: str = "/blocks") -> list[str]:
    """Slack's Block Kit rules for a message's ``blocks``, as Slack words its errors
    (``"<what> [json-pointer:/blocks/0/text/text]"``). Empty when the blocks are valid."""
    errors = _array(blocks, pointer, min_items=0, max_items=MAX_BLOCKS)
    if errors:
        return errors
    for i, block in enumerate(blocks):
        where = f"{pointer}/{i}"
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            errors.append(_limit(where, "must be an object with a string type"))
            continue
        kind = block["type"]
        if kind not in MESSAGE_BLOCK_TYPES:
            errors.append(_limit(f"{where}/type", f"unsupported block type: {kind}"))
            continue
        block_id = block.get("block_id")
        if block_id is not None and (not isinstance(block_id, str) or len(block_id) > BLOCK_ID_MAX):
            errors.append(_limit(f"{where}/block_id", "must be less than 256 characters"))
        errors += _block_body_errors(kind, block, where)
    return errors


def _block_body_errors(kind: str, block: dict[str, Any], where: str) -> list[str]:
    errors: list[str] = []
    if kind == "header":
        if "text" not in block:
            return [_limit(f"{where}/text", "missing required field")]
        errors += text_object_errors(
            block["text"], f"{where}/text", max_len=HEADER_TEXT_MAX, plain_only=True
        )
    elif kind == "section":
        if "text" not in block and "fields" not in block:
            return [_limit(where, "must provide either text or fields")]
        if "text" in block:
            errors += text_object_errors(block["text"], f"{where}/text", max_len=SECTION_TEXT_MAX)
        if "fields" in block:
            fields = block["fields"]
            found = _array(fields, f"{where}/fields", min_items=1, max_items=SECTION_FIELDS_MAX)
            errors += found
            if not found:
                for j, item in enumerate(fields):
                    errors += text_object_errors(
                        item, f"{where}/fields/{j}", max_len=SECTION_FIELD_TEXT_MAX
                    )
        accessory = block.get("accessory")
        if accessory is not None and not (
            isinstance(accessory, dict) and isinstance(accessory.get("type"), str)
        ):
            errors.append(_limit(f"{where}/accessory", "must be an element object"))
    elif kind == "context":
        elements = block.get("elements")
        found = _array(elements, f"{where}/elements", min_items=1, max_items=CONTEXT_ELEMENTS_MAX)
        errors += found
        if not found and isinstance(elements, list):
            for j, element in enumerate(elements):
                at = f"{where}/elements/{j}"
                if isinstance(element, dict) and element.get("type") == "image":
                    errors += _image_element_errors(element, at)
                else:
                    errors += text_object_errors(element, at)
    elif kind == "actions":
        elements = block.get("elements")
        found = _array(elements, f"{where}/elements", min_items=1, max_items=ACTIONS_ELEMENTS_MAX)
        errors += found
        if not found and isinstance(elements, list):
            seen: set[str] = set()
            for j, element in enumerate(elements):
                errors += _action_element_errors(element, f"{where}/elements/{j}", seen)
    elif kind == "image":
        errors += _image_element_errors(block, where)
        if "title" in block:
            errors += text_object_errors(
                block["title"], f"{where}/title", max_len=IMAGE_ALT_TEXT_MAX, plain_only=True
            )
    elif kind == "markdown":
        text = block.get("text")
        if not isinstance(text, str) or not text:
            errors.append(_limit(f"{where}/text", "must be a non-empty string"))
        elif len(text) > MARKDOWN_BLOCK_MAX:
            errors.append(_limit(f"{where}/text", "must be less than 12001 characters"))
    elif kind == "rich_text":
        errors += _array(block.get("elements"), f"{where}/elements", min_items=1, max_items=10**6)
    return errors


def _action_element_errors(value: Any, pointer: str, seen: set[str]) -> list[str]:
    """An actions block's element; a button field by field (its text plain, ≤ 75 characters;
    ``action_id`` ≤ 255 and unique in the block; ``value`` ≤ 2000; ``url`` ≤ 3000; ``style``
    primary or danger)."""
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        return [_limit(pointer, "must be an element object")]
    kind = value["type"]
    if kind not in ACTION_ELEMENT_TYPES:
        return [_limit(f"{pointer}/type", f"unsupported element type: {kind}")]
    errors: list[str] = []
    action_id = value.get("action_id")
    if action_id is not None:
        if not isinstance(action_id, str) or not 0 < len(action_id) <= ACTION_ID_MAX:
            errors.append(_limit(f"{pointer}/action_id", "must be less than 256 characters"))
        elif action_id in seen:
            errors.append(_limit(f"{pointer}/action_id", "duplicate action_id"))
        else:
            seen.add(action_id)
    if kind != "button":
        return errors
    extra = set(value) - BUTTON_FIELDS
    errors += [_limit(f"{pointer}/{key}", "unsupported property") for key in sorted(extra)]
    if "text" not in value:
        errors.append(_limit(f"{pointer}/text", "missing required field"))
    else:
        errors += text_object_errors(
            value["text"], f"{pointer}/text", max_len=BUTTON_TEXT_MAX, plain_only=True
        )
    for name, limit in (("value", BUTTON_VALUE_MAX), ("url", BUTTON_URL_MAX)):
        field_value = value.get(name)
        if field_value is not None and (
            not isinstance(field_value, str) or not 0 < len(field_value) <= limit
        ):
            errors.append(_limit(f"{pointer}/{name}", f"must be less than {limit + 1} characters"))
    style = value.get("style")
    if style is not None and style not in ("primary", "danger"):
        errors.append(_limit(f"{pointer}/style", "must be one of: primary, danger"))
    return errors


def attachment_errors(attachments: Any) -> tuple[str | None, list[str]]:
    """(error code, messages) for a message's legacy ``attachments``: an array of at most
    100 objects, each with a valid ``color`` if any and valid Block Kit in ``blocks``."""
    if not isinstance(attachments, list):
        return "invalid_attachments", ["must be an array [json-pointer:/attachments]"]
    if len(attachments) > MAX_ATTACHMENTS:
        return "too_many_attachments", [
            "no more than 100 items allowed [json-pointer:/attachments]"
        ]
    shape: list[str] = []
    blocks: list[str] = []
    for i, attachment in enumerate(attachments):
        where = f"/attachments/{i}"
        if not isinstance(attachment, dict):
            shape.append(_limit(where, "must be an object"))
            continue
        color = attachment.get("color")
        if color is not None and not (isinstance(color, str) and COLOR.match(color)):
            shape.append(_limit(f"{where}/color", "must be a hex colour or good|warning|danger"))
        if "blocks" in attachment:
            blocks += block_errors(attachment["blocks"], f"{where}/blocks")
    if blocks:
        return "invalid_blocks", blocks
    if shape:
        return "invalid_attachments", shape
    return None, []


def metadata_errors(metadata: Any) -> list[str]:
    """Message metadata: ``{"event_type": str, "event_payload": object}``
    (docs.slack.dev/messaging/message-metadata)."""
    if not isinstance(metadata, dict):
        return ["metadata must be an object"]
    errors = []
    event_type = metadata.get("event_type")
    if not isinstance(event_type, str) or not event_type:
        errors.append("metadata.event_type must be a non-empty string")
    if not isinstance(metadata.get("event_payload"), dict):
        errors.append("metadata.event_payload must be an object")
    extra = set(metadata) - {"event_type", "event_payload"}
    errors += [f"metadata.{key} is not a metadata field" for key in sorted(extra)]
    return errors


# ------------------------------------------------------------------- HTTP helpers


def signed_request(signing_secret: str, body: str, timestamp: int | None = None) -> dict[str, str]:
    """The headers Slack signs a request to an app with: ``X-Slack-Signature`` (``v0=`` +
    HMAC-SHA256 of ``v0:{timestamp}:{body}``) and ``X-Slack-Request-Timestamp``
    (docs.slack.dev/authentication/verifying-requests-from-slack). Add the body's
    ``Content-Type`` yourself (``application/x-www-form-urlencoded`` for commands)."""
    ts = int(time.time()) if timestamp is None else int(timestamp)
    base = f"v0:{ts}:{body}".encode()
    digest = hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Signature": f"v0={digest}", "X-Slack-Request-Timestamp": str(ts)}


def slash_command_payload(
    command: str,
    text: str = "",
    *,
    user_id: str = "U0TESTUSER1",
    user_name: str = "tester",
    channel_id: str = "C0TESTCHAN1",
    channel_name: str = "general",
    team_id: str = TEAM_ID,
    team_domain: str = TEAM_DOMAIN,
    api_app_id: str = APP_ID,
    token: str = VERIFICATION_TOKEN,
    response_url: str | None = None,
    trigger_id: str | None = None,
) -> dict[str, str]:
    """The fields Slack sends for a slash command (docs.slack.dev/interactivity/
    implementing-slash-commands and the Socket Mode page's ``slash_commands`` example)."""
    return {
        "token": token,
        "team_id": team_id,
        "team_domain": team_domain,
        "channel_id": channel_id,
        "channel_name": channel_name,
        "user_id": user_id,
        "user_name": user_name,
        "command": command,
        "text": text,
        "api_app_id": api_app_id,
        "response_url": response_url
        or f"https://hooks.slack.com/commands/{team_id}/{secrets.randbelow(10**13)}/"
        f"{secrets.token_hex(12)}",
        "trigger_id": trigger_id or _trigger_id(),
    }


def slash_command_body(command: str, text: str = "", **fields: Any) -> str:
    """A slash command as Slack POSTs it in HTTP mode: form-encoded (same keywords as
    :func:`slash_command_payload`)."""
    return urlencode(slash_command_payload(command, text, **fields))


def _trigger_id() -> str:
    return f"{secrets.randbelow(10**13)}.{secrets.randbelow(10**12)}.{secrets.token_hex(16)}"


# --------------------------------------------------------------------------- state


@dataclass
class Edit:
    """A message as it was before one ``chat.update``; ``at`` is the edit's ts."""

    at: str
    text: str
    blocks: list[Any] | None
    attachments: list[Any] | None
    metadata: dict[str, Any] | None


@dataclass
class Message:
    channel: str
    ts: str
    text: str
    user: str
    blocks: list[Any] | None = None
    attachments: list[Any] | None = None
    metadata: dict[str, Any] | None = None
    thread_ts: str | None = None
    reply_broadcast: bool = False
    bot_id: str | None = None
    #: The other arguments it was posted with (unfurl_links, mrkdwn, icon_emoji…).
    options: dict[str, Any] = field(default_factory=dict)
    edits: list[Edit] = field(default_factory=list)
    edited_ts: str | None = None
    at: float = field(default_factory=time.monotonic)

    @property
    def is_reply(self) -> bool:
        return self.thread_ts is not None and self.thread_ts != self.ts


@dataclass
class Ephemeral:
    channel: str
    user: str
    ts: str
    text: str
    blocks: list[Any] | None
    attachments: list[Any] | None
    thread_ts: str | None


@dataclass
class Channel:
    id: str
    name: str
    member: bool = True
    archived: bool = False
    messages: list[Message] = field(default_factory=list)

    def find(self, ts: str) -> Message | None:
        return next((m for m in self.messages if m.ts == ts), None)

    def thread(self, ts: str) -> list[Message]:
        return [m for m in self.messages if m.thread_ts == ts and m.ts != ts]


@dataclass
class Call:
    """One Web API request as the fake saw it: method, arguments (token excluded), when,
    and what it answered."""

    method: str
    params: dict[str, Any]
    http_method: str
    encoding: str
    token: str | None
    at: float = field(default_factory=time.monotonic)
    status: int = 0
    response: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return bool(self.response and self.response.get("ok"))

    @property
    def error(self) -> str | None:
        return None if self.response is None else self.response.get("error")


@dataclass
class Violation:
    """A request Slack would refuse as malformed: what our code must never send."""

    method: str
    error: str
    messages: list[str]
    params: dict[str, Any]
    at: float = field(default_factory=time.monotonic)


@dataclass
class Failure:
    kind: str  # "ratelimited" | "status"
    status: int
    retry_after: int = 0
    body: bytes | None = None
    content_type: str = "text/html"


@dataclass
class SocketConnection:
    id: int
    ws: web.WebSocketResponse
    ticket: str
    opened_at: float = field(default_factory=time.monotonic)
    closed_at: float | None = None
    received: list[dict[str, Any]] = field(default_factory=list)
    pings_received: int = 0
    hello: dict[str, Any] = field(default_factory=dict)

    @property
    def open(self) -> bool:
        return self.closed_at is None and not self.ws.closed


@dataclass
class Ack:
    """A Socket Mode acknowledgement: its envelope, its payload (``None`` for a bare ack),
    how long after the envelope it came, on which connection, and whether it was late."""

    envelope_id: str
    type: str
    payload: dict[str, Any] | None
    latency: float
    connection: int
    late: bool = False


@dataclass
class ResponseUrlPost:
    path: str
    payload: dict[str, Any]
    at: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class Clicker:
    """Who presses: a ``block_actions`` payload's ``user`` (``username`` is their handle;
    ``name`` the same, kept by Slack for older apps)."""

    id: str = "U0TESTUSER1"
    username: str = "tester"
    name: str = "tester"
    team_id: str = TEAM_ID


@dataclass
class Interaction:
    """One interaction payload sent to the app: how it went (an HTTP status and body, or the
    Socket Mode ack) and its response_url's path (what the app answered is recorded there)."""

    payload: dict[str, Any]
    via: str
    response_path: str
    status: int | None = None
    body: str = ""
    ack: Ack | None = None


class NoSuchButton(LookupError):
    """A click on a button the message does not have (or no longer has)."""


class AckTimeout(TimeoutError):
    """The app did not acknowledge an envelope in time (Slack's limit is 3 seconds)."""


class NoSocketConnection(RuntimeError):
    """An envelope was to be sent, but no Socket Mode connection was open."""


class _Reject(Exception):
    def __init__(self, error: str, messages: Iterable[str] = (), **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.messages = list(messages)
        self.extra = extra

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error": self.error, **self.extra}
        if self.messages:
            body["response_metadata"] = {"messages": [f"[ERROR] {m}" for m in self.messages]}
        return body


@dataclass
class _Pending:
    future: asyncio.Future[Ack]
    type: str
    sent_at: float
    connection: int
    timed_out: bool = False


Handler = Callable[[dict[str, Any], Call], Awaitable[dict[str, Any]]]

_JSON_ARGS = ("blocks", "attachments", "metadata")
_CONTENT_METHODS = frozenset({"chat.postMessage", "chat.update", "chat.postEphemeral"})


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return bool(value)


def _encode_cursor(ts: str) -> str:
    return base64.b64encode(f"next_ts:{ts}".encode()).decode()


def _decode_cursor(cursor: str) -> str:
    try:
        raw = base64.b64decode(cursor.encode(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise _Reject("invalid_cursor") from exc
    if not raw.startswith("next_ts:"):
        raise _Reject("invalid_cursor")
    return raw.removeprefix("next_ts:")


def _ts_key(ts: str) -> tuple[int, int]:
    seconds, _, micros = ts.partition(".")
    return int(seconds), int((micros or "0").ljust(6, "0")[:6])


class FakeSlack:
    """Slack on 127.0.0.1: ``await FakeSlack().start()``, then ``.api_url`` for the Web API
    and the real Socket Mode client through ``apps.connections.open``."""

    def __init__(
        self,
        *,
        bot_token: str = FAKE_BOT_TOKEN,
        app_token: str = FAKE_APP_TOKEN,
        clock: Callable[[], float] = time.time,
        single_use_tickets: bool = True,
    ) -> None:
        self.bot_token = bot_token
        self.app_token = app_token
        self.port = 0
        self.channels: dict[str, Channel] = {}
        self.calls: list[Call] = []
        self.violations: list[Violation] = []
        self.unsupported: list[Call] = []
        self.ephemerals: list[Ephemeral] = []
        self.delays: dict[str, float] = {}
        #: Seconds to hold a successful answer back, after the call took effect (a client
        #: killed meanwhile has posted without knowing it); ``held`` is set when it starts.
        self.holds: dict[str, float] = {}
        self.held = asyncio.Event()
        self.connections: list[SocketConnection] = []
        self.envelopes: list[dict[str, Any]] = []
        self.acks: list[Ack] = []
        self.stray_frames: list[dict[str, Any]] = []
        self.response_url_posts: list[ResponseUrlPost] = []
        self.interactions: list[Interaction] = []
        #: Where clicks go in HTTP mode, and the secret they are signed with.
        self.interactivity_url: str | None = None
        self.signing_secret: str | None = None
        self._response_uses: dict[str, int] = {}
        self.single_use_tickets = single_use_tickets
        self._clock = clock
        self._last_us = 0
        self._failures: dict[str, deque[Failure]] = {}
        self._channel_errors: dict[str, tuple[str, frozenset[str] | None]] = {}
        self._revoked: dict[str, str] = {}
        self._tickets: set[str] = set()
        self._pending: dict[str, _Pending] = {}
        self._response_urls: dict[str, str] = {}
        self._pongs: dict[int, deque[asyncio.Future[float]]] = {}
        self._conn_ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._spec = load_spec()
        self._handlers: dict[str, Handler] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "chat.postEphemeral": self._post_ephemeral,
            "conversations.history": self._history,
            "conversations.replies": self._replies,
            "apps.connections.open": self._connections_open,
        }

    # ---------------------------------------------------------------- lifecycle

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """``base_url`` for slack-sdk's clients (the trailing slash matters to them)."""
        return f"{self.url}/api/"

    async def start(self) -> FakeSlack:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_get("/socket", self._socket)
        app.router.add_post("/commands/{tail:.*}", self._response_url)
        app.router.add_post("/actions/{tail:.*}", self._response_url)
        self._runner = web.AppRunner(
            app, handle_signals=False, access_log=None, shutdown_timeout=1.0
        )
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        self.port = self._runner.addresses[0][1]
        return self

    async def close(self) -> None:
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.cancel()
        for conn in self.connections:
            if not conn.ws.closed:
                await conn.ws.close(code=1001, message=b"server shutdown")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeSlack:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---------------------------------------------------------------- configure

    def add_channel(
        self, id: str, name: str | None = None, *, member: bool = True, archived: bool = False
    ) -> Channel:
        """A conversation the workspace has; ``member=False``: the bot is not in it."""
        channel = Channel(id, name or id.lower(), member=member, archived=archived)
        self.channels[id] = channel
        return channel

    def rate_limit(self, method: str, times: int = 1, retry_after: int = 1) -> None:
        """The next ``times`` calls of ``method`` (``"*"``: any) answer HTTP 429,
        ``Retry-After: retry_after`` and ``{"ok": false, "error": "ratelimited"}``
        (docs.slack.dev/apis/web-api/rate-limits)."""
        queue = self._failures.setdefault(method, deque())
        queue.extend(Failure("ratelimited", 429, retry_after=retry_after) for _ in range(times))

    def fail(
        self,
        method: str,
        times: int = 1,
        status: int = 500,
        *,
        body: bytes | None = None,
        content_type: str = "text/html",
    ) -> None:
        """The next ``times`` calls of ``method`` (``"*"``: any) answer HTTP ``status`` with an
        HTML error page (what Slack's edge serves on a 5xx) unless ``body`` is given."""
        queue = self._failures.setdefault(method, deque())
        queue.extend(
            Failure("status", status, body=body, content_type=content_type) for _ in range(times)
        )

    def channel_error(
        self, channel: str, error: str, *, methods: Iterable[str] | None = None
    ) -> None:
        """Calls naming ``channel`` (id or name) answer ``error`` (``channel_not_found``,
        ``not_in_channel``, ``is_archived``…) until :meth:`clear_channel_error`."""
        self._channel_errors[channel.lstrip("#")] = (
            error,
            frozenset(methods) if methods else None,
        )

    def clear_channel_error(self, channel: str) -> None:
        self._channel_errors.pop(channel.lstrip("#"), None)

    def revoke_token(self, token: str | None = None, error: str = "invalid_auth") -> None:
        """From now on the (bot) token answers ``error`` (Slack says ``invalid_auth`` for a
        token it does not know, ``token_revoked`` for one an admin revoked)."""
        self._revoked[token or self.bot_token] = error

    def restore_token(self, token: str | None = None) -> None:
        self._revoked.pop(token or self.bot_token, None)

    def hold_answer(self, method: str, seconds: float) -> None:
        """Do the call, then keep its answer back for ``seconds``."""
        self.holds[method] = seconds
        self.held.clear()

    def set_delay(self, method: str, seconds: float) -> None:
        """Answer ``method`` (``"*"``: any) only after ``seconds``."""
        self.delays[method] = seconds

    def inject_message(
        self,
        channel: str,
        text: str,
        *,
        user: str = "U0TESTUSER1",
        thread_ts: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Message:
        """A message someone else posted (it is not the bot's, so it cannot be updated)."""
        found = self._channel(channel)
        if found is None:
            raise KeyError(channel)
        message = Message(
            found.id, self._next_ts(), text, user, thread_ts=thread_ts, metadata=metadata
        )
        found.messages.append(message)
        return message

    # ---------------------------------------------------------------- inspect

    def messages(self, channel: str) -> list[Message]:
        """Every message in the channel, top level and replies, oldest first."""
        found = self._channel(channel)
        return list(found.messages) if found else []

    def top_level(self, channel: str) -> list[Message]:
        """Channel messages that are not thread replies, oldest first."""
        return [m for m in self.messages(channel) if not m.is_reply]

    def replies(self, channel: str, ts: str) -> list[Message]:
        """The replies in the thread of ``ts`` (not the parent), oldest first."""
        found = self._channel(channel)
        return found.thread(ts) if found else []

    def message(self, channel: str, ts: str) -> Message:
        found = self._channel(channel)
        message = found.find(ts) if found else None
        if message is None:
            raise KeyError(f"{channel}/{ts}")
        return message

    def find_by_metadata(self, channel: str, key: str, value: Any) -> list[Message]:
        """Messages whose metadata has ``event_payload[key] == value`` (or, for
        ``key="event_type"``, that event type)."""
        found = []
        for message in self.messages(channel):
            metadata = message.metadata or {}
            if key == "event_type":
                if metadata.get("event_type") == value:
                    found.append(message)
            elif (metadata.get("event_payload") or {}).get(key) == value:
                found.append(message)
        return found

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    # ------------------------------------------------------------- Socket Mode

    @property
    def open_connections(self) -> list[SocketConnection]:
        return [c for c in self.connections if c.open]

    async def wait_for_connection(self, count: int = 1, timeout: float = 3.0) -> SocketConnection:
        """Wait until ``count`` connections have been opened in all and the newest is open."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.connections) >= count and self.connections[-1].open:
                return self.connections[-1]
            if time.monotonic() >= deadline:
                raise NoSocketConnection(
                    f"{len(self.connections)} socket connection(s) opened, waited for {count}"
                )
            await asyncio.sleep(0.01)

    async def send_envelope(
        self,
        type: str,
        payload: dict[str, Any],
        *,
        accepts_response_payload: bool = False,
        timeout: float = 3.0,
    ) -> Ack:
        """Send ``{"envelope_id", "type", "payload", "accepts_response_payload"}`` on the
        newest open connection and wait for the app's ack (``AckTimeout`` after
        ``timeout``; an ack that comes later still lands in :attr:`acks`, as late)."""
        started = time.monotonic()
        conn = await self.wait_for_connection(timeout=timeout)
        envelope_id = str(uuid.uuid4())
        envelope = {
            "envelope_id": envelope_id,
            "type": type,
            "payload": payload,
            "accepts_response_payload": accepts_response_payload,
        }
        loop = asyncio.get_running_loop()
        pending = _Pending(loop.create_future(), type, time.monotonic(), conn.id)
        self._pending[envelope_id] = pending
        self.envelopes.append(envelope)
        await conn.ws.send_str(json.dumps(envelope))
        remaining = max(0.0, timeout - (time.monotonic() - started))
        try:
            return await asyncio.wait_for(asyncio.shield(pending.future), remaining)
        except TimeoutError:
            pending.timed_out = True
            raise AckTimeout(
                f"no ack for {type} envelope {envelope_id} within {timeout:.1f}s"
            ) from None

    async def slash_command(
        self,
        command: str = "/status",
        text: str = "",
        *,
        user_id: str = "U0TESTUSER1",
        user_name: str = "tester",
        channel_id: str | None = None,
        channel_name: str | None = None,
        timeout: float = 3.0,
    ) -> dict[str, Any]:
        """A user types ``command text``: Slack's ``slash_commands`` envelope goes to the app,
        and this returns the payload of its ack (``{}`` for a bare ack). The ack's latency is
        in :attr:`acks`; an ack payload Slack would refuse is a :class:`Violation`."""
        if channel_id is None:
            channel_id = next(iter(self.channels), "C0TESTCHAN1")
        known = self.channels.get(channel_id)
        path = f"/commands/{TEAM_ID}/{secrets.randbelow(10**13)}/{secrets.token_hex(12)}"
        self._response_urls[path] = channel_id
        payload = slash_command_payload(
            command,
            text,
            user_id=user_id,
            user_name=user_name,
            channel_id=channel_id,
            channel_name=channel_name or (known.name if known else "general"),
            response_url=f"{self.url}{path}",
        )
        ack = await self.send_envelope(
            "slash_commands", payload, accepts_response_payload=True, timeout=timeout
        )
        return ack.payload or {}

    async def request_disconnect(
        self, reason: str = "refresh_requested", *, close: bool = False
    ) -> SocketConnection:
        """Send Slack's ``disconnect`` message (``warning``, ``refresh_requested``,
        ``link_disabled``) on the newest open connection; ``close``: then close it."""
        conn = await self.wait_for_connection(timeout=0)
        message = {"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-fake"}}
        await conn.ws.send_str(json.dumps(message))
        if close:
            await conn.ws.close(code=1000)
        return conn

    async def ping_client(self, timeout: float = 3.0) -> float:
        """Ping the newest connection; the round trip in seconds once the client pongs."""
        conn = await self.wait_for_connection(timeout=timeout)
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._pongs.setdefault(conn.id, deque()).append(future)
        started = time.monotonic()
        await conn.ws.ping(b"fake-slack-ping")
        await asyncio.wait_for(future, timeout)
        return time.monotonic() - started

    async def drop_connections(self, code: int = 1011) -> None:
        """Close every open connection from Slack's side, without a ``disconnect`` first."""
        for conn in self.open_connections:
            await conn.ws.close(code=code)

    # ------------------------------------------------------------------- clicks

    def interactivity(self, url: str, signing_secret: str) -> None:
        """HTTP mode: the app's Request URL for interactivity, and its signing secret."""
        self.interactivity_url, self.signing_secret = url, signing_secret

    def buttons(self, channel: str, ts: str) -> list[dict[str, Any]]:
        """The buttons the message shows now (top-level blocks, then each attachment's)."""
        return [element for _, _, element in self._buttons(self.message(channel, ts))]

    def _buttons(self, message: Message) -> list[tuple[int | None, dict[str, Any], dict[str, Any]]]:
        """(attachment id or None, actions block, button) for every button of ``message``."""
        found: list[tuple[int | None, dict[str, Any], dict[str, Any]]] = []
        places: list[tuple[int | None, Any]] = [(None, message.blocks or [])]
        for attachment in message.attachments or []:
            if isinstance(attachment, dict):
                places.append((attachment.get("id"), attachment.get("blocks") or []))
        for attachment_id, blocks in places:
            for block in blocks:
                if not isinstance(block, dict) or block.get("type") != "actions":
                    continue
                for element in block.get("elements") or []:
                    if isinstance(element, dict) and element.get("type") == "button":
                        found.append((attachment_id, block, element))
        return found

    def block_actions_payload(
        self,
        channel: str,
        ts: str,
        action_id: str,
        *,
        clicker: Clicker | None = None,
        value: str | None = None,
    ) -> dict[str, Any]:
        """The ``block_actions`` payload Slack sends when ``clicker`` presses the button
        ``action_id`` of the message ``ts`` as it is now (:class:`NoSuchButton` if it has no
        such button, or none with ``value``); its ``response_url`` points at this fake."""
        clicker = clicker or Clicker()
        found = self._channel(channel)
        message = found.find(ts) if found else None
        if found is None or message is None:
            raise NoSuchButton(f"no message {channel}/{ts}")
        chosen = next(
            (
                (attachment_id, block, element)
                for attachment_id, block, element in self._buttons(message)
                if element.get("action_id") == action_id
                and (value is None or element.get("value") == value)
            ),
            None,
        )
        if chosen is None:
            shown = [e.get("action_id") for _, _, e in self._buttons(message)]
            raise NoSuchButton(f"{channel}/{ts} has no button {action_id!r} (it has {shown})")
        attachment_id, block, element = chosen
        path = f"/actions/{TEAM_ID}/{secrets.randbelow(10**13)}/{secrets.token_hex(12)}"
        self._response_urls[path] = found.id
        container: dict[str, Any] = {
            "type": "message" if attachment_id is None else "message_attachment",
            "message_ts": message.ts,
            "channel_id": found.id,
            "is_ephemeral": False,
        }
        if attachment_id is not None:
            container.update(attachment_id=attachment_id, is_app_unfurl=False)
        if message.thread_ts:
            container["thread_ts"] = message.thread_ts
        action: dict[str, Any] = {
            "action_id": element.get("action_id"),
            "block_id": block.get("block_id"),
            "text": copy.deepcopy(element.get("text")),
            "type": "button",
            "action_ts": self._next_ts(),
        }
        if "value" in element:
            action["value"] = element["value"]
        if "style" in element:
            action["style"] = element["style"]
        return {
            "type": "block_actions",
            "user": {
                "id": clicker.id,
                "username": clicker.username,
                "name": clicker.name,
                "team_id": clicker.team_id,
            },
            "api_app_id": APP_ID,
            "token": VERIFICATION_TOKEN,
            "container": container,
            "trigger_id": _trigger_id(),
            "team": {"id": TEAM_ID, "domain": TEAM_DOMAIN},
            "enterprise": None,
            "is_enterprise_install": False,
            "channel": {"id": found.id, "name": found.name},
            "message": self._render(found, message, include_metadata=False),
            "state": {"values": {}},
            "response_url": f"{self.url}{path}",
            "actions": [action],
        }

    async def click(
        self,
        channel: str,
        ts: str,
        action_id: str,
        *,
        clicker: Clicker | None = None,
        via: Literal["http", "socket"] = "http",
        timeout: float = 3.0,
    ) -> Interaction:
        """``clicker`` presses a button of a message the fake holds: the payload goes to the
        app (see :meth:`send_interaction`)."""
        payload = self.block_actions_payload(channel, ts, action_id, clicker=clicker)
        return await self.send_interaction(payload, via=via, timeout=timeout)

    async def send_interaction(
        self,
        payload: dict[str, Any],
        *,
        via: Literal["http", "socket"] = "http",
        timeout: float = 3.0,
        signing_secret: str | None = None,
    ) -> Interaction:
        """Any interaction payload to the app: over HTTP, form-encoded (``payload=<json>``)
        and signed (``signing_secret`` overrides the configured one, e.g. a wrong one), the
        answer's status kept; or as a Socket Mode ``interactive`` envelope, its ack awaited
        (:class:`AckTimeout` after ``timeout``; Slack's limit is 3 seconds)."""
        url = str(payload.get("response_url", ""))
        path = url.removeprefix(self.url) if url.startswith(self.url) else ""
        interaction = Interaction(payload, via, path)
        self.interactions.append(interaction)
        if via == "socket":
            interaction.ack = await self.send_envelope("interactive", payload, timeout=timeout)
            return interaction
        secret = signing_secret or self.signing_secret
        if self.interactivity_url is None or secret is None:
            raise RuntimeError("set the app's interactivity URL and secret first")
        body = urlencode({"payload": json.dumps(payload)})
        headers = {
            **signed_request(secret, body),
            "Content-Type": "application/x-www-form-urlencoded",
        }
        client_timeout = aiohttp.ClientTimeout(total=timeout)
        async with (
            aiohttp.ClientSession(timeout=client_timeout) as session,
            session.post(self.interactivity_url, data=body.encode(), headers=headers) as answer,
        ):
            interaction.status = answer.status
            interaction.body = await answer.text()
        return interaction

    def answers_to(self, interaction: Interaction) -> list[dict[str, Any]]:
        """What the app posted to an interaction's response_url, oldest first."""
        return [p.payload for p in self.response_url_posts if p.path == interaction.response_path]

    # ---------------------------------------------------------------- internals

    def _next_ts(self) -> str:
        """Slack's ``ts``: seconds.microseconds, unique and strictly increasing."""
        micros = max(int(self._clock() * 1_000_000), self._last_us + 1)
        self._last_us = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _channel(self, ref: str) -> Channel | None:
        if ref in self.channels:
            return self.channels[ref]
        name = ref.lstrip("#")
        return next((c for c in self.channels.values() if c.name == name), None)

    def _resolve(self, method: str, ref: Any, *, posting: bool) -> Channel:
        if not isinstance(ref, str) or not ref:
            raise _Reject("channel_not_found")
        channel = self._channel(ref)
        for key in {ref.lstrip("#"), *((channel.id, channel.name) if channel else ())}:
            injected = self._channel_errors.get(key)
            if injected and (injected[1] is None or method in injected[1]):
                raise _Reject(injected[0])
        if channel is None:
            raise _Reject("channel_not_found")
        if posting and channel.archived:
            raise _Reject("is_archived")
        if not channel.member:
            raise _Reject("not_in_channel")
        return channel

    async def _api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        raw = await request.read()
        try:
            params, encoding = self._parse(request, raw)
            parse_error: _Reject | None = None
        except _Reject as reject:
            params, encoding, parse_error = {}, "invalid", reject
        token = self._token(request, params, encoding)
        call = Call(method, dict(params), request.method, encoding, token)
        self.calls.append(call)
        delay = self.delays.get(method, self.delays.get("*", 0.0))
        if delay:
            await asyncio.sleep(delay)
        spec = self._spec.get(method)
        if spec is None:
            self.violations.append(Violation(method, "unknown_method", [], params))
            return self._answer(
                call, {"ok": False, "error": "unknown_method", "req_method": method}, status=404
            )
        problem = parse_error or self._validate(spec, params)
        call.params = dict(params)  # as understood: JSON-in-form arguments decoded
        if problem is not None:
            self.violations.append(Violation(method, problem.error, problem.messages, params))
        failure = self._take_failure(method)
        if failure is not None:
            return self._fail(call, failure)
        auth = self._auth(method, token)
        if auth is not None:
            return self._answer(call, auth.body())
        if problem is not None:
            return self._answer(call, problem.body())
        handler = self._handlers.get(method)
        if handler is None:
            self.unsupported.append(call)
            return self._answer(call, {"ok": False, "error": "fake_not_implemented"})
        try:
            body = await handler(params, call)
        except _Reject as reject:
            body = reject.body()
        hold = self.holds.get(method, 0.0)
        if hold and body.get("ok"):
            self.held.set()  # the message is stored; its answer is held back
            await asyncio.sleep(hold)
        return self._answer(call, body)

    def _answer(self, call: Call, body: dict[str, Any], status: int = 200) -> web.Response:
        call.status, call.response = status, body
        return web.json_response(body, status=status)

    def _take_failure(self, method: str) -> Failure | None:
        for key in (method, "*"):
            queue = self._failures.get(key)
            if queue:
                return queue.popleft()
        return None

    def _fail(self, call: Call, failure: Failure) -> web.Response:
        call.status = failure.status
        if failure.kind == "ratelimited":
            call.response = {"ok": False, "error": "ratelimited"}
            return web.json_response(
                call.response, status=429, headers={"Retry-After": str(failure.retry_after)}
            )
        body = failure.body
        if body is None:
            phrase = HTTPStatus(failure.status).phrase
            body = (
                f"<html><head><title>{failure.status} {phrase}</title></head>"
                f"<body><h1>{phrase}</h1></body></html>"
            ).encode()
        call.response = {"ok": False, "error": f"http_{failure.status}"}
        return web.Response(
            status=failure.status, body=body, content_type=failure.content_type.split(";")[0]
        )

    def _parse(self, request: web.Request, raw: bytes) -> tuple[dict[str, Any], str]:
        params: dict[str, Any] = dict(request.query)
        encoding = "query"
        if raw:
            content_type = request.headers.get("Content-Type")
            if not content_type:
                raise _Reject("missing_post_type")
            kind = request.content_type
            if kind == "application/json":
                try:
                    body = json.loads(raw)
                except ValueError as exc:
                    raise _Reject("invalid_json", ["the body is not valid JSON"]) from exc
                if not isinstance(body, dict):
                    raise _Reject("invalid_json", ["the body must be a JSON object"])
                params.update(body)
                encoding = "json"
            elif kind == "application/x-www-form-urlencoded":
                try:
                    pairs = parse_qsl(raw.decode(), keep_blank_values=True, strict_parsing=True)
                except (ValueError, UnicodeDecodeError) as exc:
                    raise _Reject("invalid_form_data") from exc
                params.update(pairs)
                encoding = "form"
            else:
                raise _Reject("invalid_post_type", [f"unsupported Content-Type: {kind}"])
        return params, encoding

    def _token(self, request: web.Request, params: dict[str, Any], encoding: str) -> str | None:
        header = request.headers.get("Authorization", "")
        from_body = params.pop("token", None)
        if header.startswith("Bearer "):
            return header.removeprefix("Bearer ").strip() or None
        # A JSON body must carry its token in the header (docs.slack.dev/apis/web-api,
        # "JSON-encoded bodies"); form and query arguments may carry it.
        if encoding == "json" or not isinstance(from_body, str):
            return None
        return from_body or None

    def _auth(self, method: str, token: str | None) -> _Reject | None:
        if not token:
            return _Reject("not_authed")
        if token in self._revoked:
            return _Reject(self._revoked[token])
        if token not in (self.bot_token, self.app_token):
            return _Reject("invalid_auth")
        wants_app = method in APP_TOKEN_METHODS
        if (token == self.app_token) != wants_app:
            return _Reject("not_allowed_token_type")
        return None

    def _validate(self, spec: MethodSpec, params: dict[str, Any]) -> _Reject | None:
        """Slack's own spec first (required and known arguments), then the content rules."""
        missing = sorted(spec.required - set(params))
        if missing:
            return _Reject(
                "invalid_arguments", [f"missing required field: {name}" for name in missing]
            )
        unknown = sorted(set(params) - spec.params)
        if unknown:
            return _Reject(
                "invalid_arg_name",
                [
                    f"unknown argument: {name} (not in Slack's spec for {spec.name})"
                    for name in unknown
                ],
            )
        for name in _JSON_ARGS:
            if isinstance(params.get(name), str):
                try:
                    params[name] = json.loads(params[name])
                except ValueError:
                    error = {
                        "blocks": "invalid_blocks_format",
                        "attachments": "invalid_attachments",
                        "metadata": "invalid_metadata_format",
                    }[name]
                    return _Reject(error, [f"{name} is not valid JSON"])
        if spec.name in _CONTENT_METHODS:
            return self._content_problem(params)
        return None

    def _content_problem(self, params: dict[str, Any]) -> _Reject | None:
        text = params.get("text")
        if text is not None and not isinstance(text, str):
            return _Reject("invalid_arguments", ["text must be a string"])
        if isinstance(text, str) and len(text) > MAX_TEXT:
            return _Reject("msg_too_long", [f"text is {len(text)} characters, over {MAX_TEXT}"])
        if "blocks" in params:
            errors = block_errors(params["blocks"])
            if errors:
                format_error = not isinstance(params["blocks"], list)
                code = "invalid_blocks_format" if format_error else "invalid_blocks"
                return _Reject(code, errors, errors=errors)
        if "attachments" in params:
            problem, errors = attachment_errors(params["attachments"])
            if problem is not None:
                return _Reject(problem, errors, errors=errors)
        if "metadata" in params:
            errors = metadata_errors(params["metadata"])
            if errors:
                return _Reject("invalid_metadata_format", errors)
        markdown = params.get("markdown_text")
        if markdown is not None and (text is not None or "blocks" in params):
            return _Reject("invalid_arguments", ["markdown_text excludes text and blocks"])
        has_content = any(
            params.get(k) not in (None, "", []) for k in ("text", "blocks", "attachments")
        )
        if not has_content and not markdown and not params.get("file_ids"):
            return _Reject("no_text")
        return None

    def _render(
        self, channel: Channel, message: Message, *, include_metadata: bool
    ) -> dict[str, Any]:
        """A message as Slack's readers return it."""
        out: dict[str, Any] = {"type": "message"}
        if message.reply_broadcast:
            out["subtype"] = "thread_broadcast"
        out.update(user=message.user, text=message.text, ts=message.ts, team=TEAM_ID)
        if message.bot_id:
            out.update(
                bot_id=message.bot_id,
                app_id=APP_ID,
                bot_profile={
                    "id": message.bot_id,
                    "app_id": APP_ID,
                    "name": BOT_USER_NAME,
                    "deleted": False,
                    "team_id": TEAM_ID,
                },
            )
        if message.blocks is not None:
            out["blocks"] = copy.deepcopy(message.blocks)
        if message.attachments:
            out["attachments"] = copy.deepcopy(message.attachments)
        if message.edited_ts:
            out["edited"] = {"user": message.user, "ts": message.edited_ts}
        if message.thread_ts:
            out["thread_ts"] = message.thread_ts
        if message.is_reply:
            parent = channel.find(message.thread_ts or "")
            if parent is not None:
                out["parent_user_id"] = parent.user
        else:
            thread = channel.thread(message.ts)
            if thread:
                users = list(dict.fromkeys(m.user for m in thread))
                out.update(
                    thread_ts=message.ts,
                    reply_count=len(thread),
                    reply_users_count=len(users),
                    latest_reply=thread[-1].ts,
                    reply_users=users,
                    is_locked=False,
                    subscribed=False,
                )
        if include_metadata and message.metadata is not None:
            out["metadata"] = copy.deepcopy(message.metadata)
        return out

    @staticmethod
    def _with_block_ids(blocks: list[Any] | None) -> list[Any] | None:
        """Slack gives every block without one a ``block_id``."""
        if blocks is None:
            return None
        blocks = copy.deepcopy(blocks)
        for block in blocks:
            if isinstance(block, dict) and "block_id" not in block:
                block["block_id"] = secrets.token_urlsafe(4)
        return blocks

    @classmethod
    def _attachments(cls, attachments: list[Any] | None) -> list[Any] | None:
        if attachments is None:
            return None
        attachments = copy.deepcopy(attachments)
        for i, attachment in enumerate(attachments, start=1):
            attachment.setdefault("id", i)
            if "blocks" in attachment:
                attachment["blocks"] = cls._with_block_ids(attachment["blocks"])
        return attachments

    # ----------------------------------------------------------------- methods

    async def _auth_test(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        return {
            "ok": True,
            "url": f"https://{TEAM_DOMAIN}.slack.com/",
            "team": TEAM_NAME,
            "user": BOT_USER_NAME,
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    async def _post_message(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        channel = self._resolve(call.method, params["channel"], posting=True)
        thread_ts = params.get("thread_ts") or None
        if thread_ts is not None:
            parent = channel.find(str(thread_ts))
            if parent is None:
                raise _Reject("thread_not_found")
            thread_ts = parent.thread_ts if parent.is_reply else parent.ts
        options = {k: v for k, v in params.items() if k not in _MESSAGE_FIELDS}
        message = Message(
            channel=channel.id,
            ts=self._next_ts(),
            text=params.get("text") or params.get("markdown_text") or "",
            user=BOT_USER_ID,
            blocks=self._with_block_ids(params.get("blocks")),
            attachments=self._attachments(params.get("attachments")),
            metadata=copy.deepcopy(params.get("metadata")),
            thread_ts=thread_ts,
            reply_broadcast=bool(thread_ts) and _truthy(params.get("reply_broadcast")),
            bot_id=BOT_ID,
            options=options,
        )
        channel.messages.append(message)
        return {
            "ok": True,
            "channel": channel.id,
            "ts": message.ts,
            "message": self._render(channel, message, include_metadata=True),
        }

    async def _update(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        channel = self._resolve(call.method, params["channel"], posting=True)
        message = channel.find(str(params["ts"]))
        if message is None:
            raise _Reject("message_not_found")
        if message.user != BOT_USER_ID:
            raise _Reject("cant_update_message")
        edited_at = self._next_ts()
        message.edits.append(
            Edit(
                edited_at,
                message.text,
                copy.deepcopy(message.blocks),
                copy.deepcopy(message.attachments),
                copy.deepcopy(message.metadata),
            )
        )
        # Arguments left out keep what the message had (chat.update's page: "If you don't
        # include this field, the message's previous … will be retained").
        if "text" in params:
            message.text = params["text"]
        if "blocks" in params:
            message.blocks = self._with_block_ids(params["blocks"])
        if "attachments" in params:
            message.attachments = self._attachments(params["attachments"])
        if "metadata" in params:
            message.metadata = copy.deepcopy(params["metadata"])
        message.edited_ts = edited_at
        rendered = self._render(channel, message, include_metadata=True)
        return {
            "ok": True,
            "channel": channel.id,
            "ts": message.ts,
            "text": message.text,
            "message": rendered,
        }

    async def _post_ephemeral(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        channel = self._resolve(call.method, params["channel"], posting=True)
        ts = self._next_ts()
        self.ephemerals.append(
            Ephemeral(
                channel.id,
                str(params["user"]),
                ts,
                params.get("text") or "",
                self._with_block_ids(params.get("blocks")),
                self._attachments(params.get("attachments")),
                params.get("thread_ts"),
            )
        )
        return {"ok": True, "message_ts": ts}

    def _window(
        self, params: dict[str, Any], messages: list[Message], *, newest_first: bool
    ) -> tuple[list[Message], bool, str | None]:
        """``oldest``/``latest`` (exclusive unless ``inclusive``), ``cursor`` and ``limit``."""
        bounds: dict[str, tuple[int, int] | None] = {}
        for name in ("oldest", "latest"):
            value = params.get(name)
            if value in (None, ""):
                bounds[name] = None
                continue
            try:
                micros = round(float(value) * 1_000_000)
            except (TypeError, ValueError) as exc:
                raise _Reject(f"invalid_ts_{name}") from exc
            bounds[name] = (micros // 1_000_000, micros % 1_000_000)
        inclusive = _truthy(params.get("inclusive", False))
        try:
            limit = int(params.get("limit") or 0) or 100  # 0 or absent: Slack's default
        except (TypeError, ValueError) as exc:
            raise _Reject("invalid_limit") from exc
        if limit < 0:
            raise _Reject("invalid_limit")

        def inside(message: Message) -> bool:
            key = _ts_key(message.ts)
            oldest, latest = bounds["oldest"], bounds["latest"]
            if oldest is not None and (key < oldest or (key == oldest and not inclusive)):
                return False
            return not (latest is not None and (key > latest or (key == latest and not inclusive)))

        chosen = sorted(
            (m for m in messages if inside(m)), key=lambda m: _ts_key(m.ts), reverse=newest_first
        )
        cursor = params.get("cursor")
        if cursor:
            start = _ts_key(_decode_cursor(str(cursor)))
            chosen = [
                m
                for m in chosen
                if (_ts_key(m.ts) <= start if newest_first else _ts_key(m.ts) >= start)
            ]
        page, rest = chosen[:limit], chosen[limit:]
        return page, bool(rest), (_encode_cursor(rest[0].ts) if rest else None)

    def _listing(
        self, channel: Channel, page: list[Message], has_more: bool, cursor: str | None, meta: bool
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ok": True,
            "messages": [self._render(channel, m, include_metadata=meta) for m in page],
            "has_more": has_more,
        }
        if cursor:
            body["response_metadata"] = {"next_cursor": cursor}
        return body

    async def _history(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        channel = self._resolve(call.method, params["channel"], posting=False)
        # The channel's timeline: top-level messages and replies also sent to the channel.
        timeline = [m for m in channel.messages if not m.is_reply or m.reply_broadcast]
        page, has_more, cursor = self._window(params, timeline, newest_first=True)
        meta = _truthy(params.get("include_all_metadata", False))
        body = self._listing(channel, page, has_more, cursor, meta)
        body.update(pin_count=0, channel_actions_ts=None, channel_actions_count=0)
        return body

    async def _replies(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        channel = self._resolve(call.method, params["channel"], posting=False)
        parent = channel.find(str(params["ts"]))
        if parent is None:
            raise _Reject("thread_not_found")
        thread = [parent] if parent.is_reply else [parent, *channel.thread(parent.ts)]
        page, has_more, cursor = self._window(params, thread, newest_first=False)
        meta = _truthy(params.get("include_all_metadata", False))
        return self._listing(channel, page, has_more, cursor, meta)

    async def _connections_open(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        ticket = uuid.uuid4().hex
        self._tickets.add(ticket)
        url = f"ws://127.0.0.1:{self.port}/socket?ticket={ticket}&app_id={APP_ID}"
        return {"ok": True, "url": url}

    # ------------------------------------------------------- Socket Mode wire

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        if ticket not in self._tickets:
            return web.json_response({"ok": False, "error": "invalid_ticket"}, status=401)
        if self.single_use_tickets:
            self._tickets.discard(ticket)
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        conn = SocketConnection(next(self._conn_ids), ws, ticket)
        self.connections.append(conn)
        conn.hello = {
            "type": "hello",
            "num_connections": len(self.open_connections),
            "debug_info": {
                "host": "applink-fake",
                "build_number": 1,
                "approximate_connection_time": 3600,
            },
            "connection_info": {"app_id": APP_ID},
        }
        try:
            await ws.send_str(json.dumps(conn.hello))
            async for frame in ws:
                if frame.type == WSMsgType.TEXT:
                    self._on_frame(conn, frame.data)
                elif frame.type == WSMsgType.PING:
                    conn.pings_received += 1
                    await ws.pong(frame.data)
                elif frame.type == WSMsgType.PONG:
                    waiters = self._pongs.get(conn.id)
                    if waiters:
                        waiter = waiters.popleft()
                        if not waiter.done():
                            waiter.set_result(time.monotonic())
        except ConnectionResetError:
            pass
        finally:
            conn.closed_at = time.monotonic()
        return ws

    def _on_frame(self, conn: SocketConnection, data: str) -> None:
        try:
            frame = json.loads(data)
        except ValueError:
            self.stray_frames.append({"raw": data})
            return
        conn.received.append(frame)
        envelope_id = frame.get("envelope_id") if isinstance(frame, dict) else None
        pending = self._pending.get(envelope_id) if isinstance(envelope_id, str) else None
        if pending is None or not isinstance(envelope_id, str):
            self.stray_frames.append(frame if isinstance(frame, dict) else {"raw": frame})
            return
        del self._pending[envelope_id]
        payload = frame.get("payload")
        ack = Ack(
            envelope_id,
            pending.type,
            payload if isinstance(payload, dict) else None,
            time.monotonic() - pending.sent_at,
            conn.id,
            late=pending.timed_out,
        )
        self.acks.append(ack)
        if payload is not None:
            self._check_ack_payload(pending.type, payload)
        if not pending.future.done():
            pending.future.set_result(ack)

    def _check_ack_payload(self, kind: str, payload: Any) -> None:
        """An ack's payload for a command is a message: Slack shows the user an error
        instead of one it would refuse."""
        if kind != "slash_commands":
            return
        if not isinstance(payload, dict):
            self.violations.append(
                Violation("socket_mode.ack", "invalid_payload", ["must be an object"], {})
            )
            return
        problem: _Reject | None = None
        response_type = payload.get("response_type")
        if response_type not in (None, "ephemeral", "in_channel"):
            problem = _Reject("invalid_arguments", ["response_type: ephemeral|in_channel"])
        else:
            content = {k: v for k, v in payload.items() if k in ("text", "blocks", "attachments")}
            problem = self._content_problem(content)
        if problem is not None:
            self.violations.append(
                Violation("socket_mode.ack", problem.error, problem.messages, dict(payload))
            )

    async def _response_url(self, request: web.Request) -> web.StreamResponse:
        """A command's ``response_url``: the JSON message is validated and recorded; an
        ``in_channel`` one also lands in the channel."""
        channel_id = self._response_urls.get(request.path)
        if channel_id is None:
            return web.json_response({"ok": False, "error": "invalid_url"}, status=404)
        uses = self._response_uses[request.path] = self._response_uses.get(request.path, 0) + 1
        if uses > RESPONSE_URL_USES:
            return web.json_response({"ok": False, "error": "used_url"}, status=404)
        try:
            payload = await request.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            self.violations.append(Violation("response_url", "invalid_payload", [], {}))
            return web.json_response({"ok": False, "error": "invalid_payload"}, status=400)
        self.response_url_posts.append(ResponseUrlPost(request.path, payload))
        content = {k: v for k, v in payload.items() if k in ("text", "blocks", "attachments")}
        problem = self._content_problem(content)
        if problem is not None:
            self.violations.append(
                Violation("response_url", problem.error, problem.messages, payload)
            )
            return web.json_response(problem.body(), status=400)
        if payload.get("response_type") == "in_channel" and channel_id in self.channels:
            self.channels[channel_id].messages.append(
                Message(channel_id, self._next_ts(), payload.get("text") or "", BOT_USER_ID)
            )
        return web.json_response({"ok": True})


#: Arguments that are the message itself; the rest are kept as :attr:`Message.options`.
_MESSAGE_FIELDS = frozenset(
    {"channel", "text", "blocks", "attachments", "metadata", "thread_ts", "reply_broadcast"}
)
