"""A local fake of Discord, on real loopback sockets, for discord.py's own client.

``fake = await FakeDiscord().start()``, then point discord.py at it (:func:`use_fake_discord`
does both and undoes them)::

    discord.http.Route.BASE = fake.api_url                       # REST and webhooks
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)

The second line matters: a plain ``discord.Client`` never asks ``GET /gateway/bot``
(only ``AutoShardedClient`` does); it dials ``DEFAULT_GATEWAY`` directly, then the
``resume_gateway_url`` that READY hands it.

What it serves:

* **REST** under ``/api/v10``: the user and application (``/users/@me``,
  ``/oauth2/applications/@me``, ``/gateway/bot``), channels and messages (create with
  ``nonce``/``enforce_nonce``, replies, ``allowed_mentions``; edit, delete, list with
  ``before``/``after``/``around``/``limit``), threads started from a message (the thread's id
  is the message's, as on Discord), application commands (bulk overwrite and list, global and
  per guild), interaction callbacks (types 4, 5, 8, with or without ``with_response``), the
  ``@original`` response and follow-ups, and webhooks (execute with ``wait``/``thread_id``,
  get/edit/delete their messages). Bodies may be JSON or ``multipart/form-data``
  (``payload_json`` + ``files[n]``).
* **Validation** of every request against Discord's own OpenAPI spec
  (``tests/specs/discord_openapi.json``): the path and method exist, path and query
  parameters and the JSON body validate against the operation's schemas (a small validator
  for the keywords the spec uses: ``$ref``, ``type`` lists, ``nullable``, ``properties``,
  ``required``, ``additionalProperties``, ``min/maxLength``, ``min/maxItems``,
  ``uniqueItems``, ``min/maxProperties``, ``minimum``/``maximum``, ``enum``, ``const``,
  ``pattern``, ``allOf``/``anyOf``/``oneOf``, formats ``uri`` and ``date-time``), then the
  rules Discord documents but the spec does not carry (:data:`DOCUMENTED_RULES`). A bad
  request gets Discord's error (HTTP 400 ``{"code": 50035, "message": "Invalid Form Body",
  "errors": {...}}``, or 50006 for an empty message…) and lands in
  :attr:`FakeDiscord.violations`. The fake's own 2xx answers are validated against the
  spec's response schemas too; a mismatch lands in :attr:`FakeDiscord.response_errors`.
* **Rate limits and failures**: every answer carries ``X-RateLimit-*`` headers from a real
  per-route, per-resource bucket (:meth:`~FakeDiscord.set_bucket`; going over it is a genuine
  429); :meth:`~FakeDiscord.rate_limit` (429 + ``Retry-After``/``X-RateLimit-*``/``Via``),
  :meth:`~FakeDiscord.fail` (5xx), :meth:`~FakeDiscord.error` (any JSON error code),
  :meth:`~FakeDiscord.set_permissions` (50001/50013), :meth:`~FakeDiscord.delete_webhook`
  (10015), :meth:`~FakeDiscord.revoke_token` (401), :meth:`~FakeDiscord.set_delay`.
* **Gateway** at ``/gateway`` (``encoding=json``, ``compress=zlib-stream`` or none): HELLO,
  IDENTIFY (token, intents, privileged intents, shard checked; Discord's close codes
  otherwise), HEARTBEAT → HEARTBEAT_ACK, READY + GUILD_CREATE per guild, sequence numbers,
  RESUME (replays what was missed) and INVALID_SESSION, RECONNECT on request,
  REQUEST_GUILD_MEMBERS → GUILD_MEMBERS_CHUNK, MESSAGE_CREATE/UPDATE/DELETE and
  THREAD_CREATE for what the REST API did (gated by intents, content by MESSAGE_CONTENT).
* **Webhooks**: :meth:`~FakeDiscord.add_webhook` returns the fake's own URL
  (``http://127.0.0.1:PORT/api/v10/webhooks/{id}/{token}``), which plain HTTP clients can
  post to. discord.py's ``Webhook.from_url`` only accepts ``discord.com``/``discordapp.com``
  URLs and takes nothing but the id and token from them (requests go to ``Route.BASE``):
  give it :attr:`Webhook.discord_url`, or use ``Webhook.partial(id, token, session=...)``.
* **Interactions**: :meth:`~FakeDiscord.interaction` (a slash command) and
  :meth:`~FakeDiscord.autocomplete` send INTERACTION_CREATE for a command the app registered
  (an unregistered one, or options that do not fit its definition, are violations), wait for
  the callback within Discord's 3 seconds and time it (:attr:`FakeDiscord.interactions`).
* **Inspection**: guilds, channels, threads, messages with their edit history, webhooks and
  their messages, registered commands, every call, every gateway frame.

Sources (read for this file): Discord's OpenAPI spec (shapes, limits); discord/discord-api-docs
``docs/resources/message.mdx`` (create/edit message params, "at least one of content, embeds,
…", content up to 2000 characters, ``enforce_nonce``, embed limits and the 6000 total,
allowed mentions), ``docs/topics/rate-limits.md`` (headers, 429 body, scopes),
``docs/topics/opcodes-and-status-codes.md`` (gateway opcodes and close codes, JSON error
codes), ``docs/topics/gateway.md`` and ``gateway-events.md`` (HELLO, IDENTIFY, READY,
RESUME, intents, zlib-stream), ``docs/interactions/receiving-and-responding.mdx`` and
``application-commands.mdx`` (payloads, callback types, 3-second deadline, 15-minute
tokens, command naming rules); and discord.py 2.7's ``http.py``, ``gateway.py``,
``state.py``, ``webhook/async_.py`` for what the real client reads. Error *codes* inside
``errors`` (``BASE_TYPE_REQUIRED``, ``BASE_TYPE_MAX_LENGTH``, ``BASE_TYPE_BAD_LENGTH``,
``MAX_EMBED_SIZE_EXCEEDED``, ``STRING_TYPE_CONVERT``, ``MODEL_TYPE_CONVERT``…) are Discord's
as quoted by client libraries; a few for rare cases are the fake's best approximation.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import email.policy
import functools
import hashlib
import itertools
import json
import math
import re
import secrets
import time
import zlib
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesParser
from http import HTTPStatus
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

from aiohttp import WSMsgType, web

SPEC_PATH = Path(__file__).resolve().parent.parent / "specs" / "discord_openapi.json"
API_VERSION = 10
#: Discord's epoch for snowflakes (docs/reference "Snowflakes"): 2015-01-01T00:00:00Z.
DISCORD_EPOCH_MS = 1_420_070_400_000

APP_ID = "1300000000000000001"
#: A bot's user id is its application's id.
BOT_USER_ID = APP_ID
BOT_USERNAME = "tocsin"
OWNER_ID = "1300000000000000002"
TEST_USER_ID = "1300000000000000003"
#: A token shaped like Discord's: base64(user id) . timestamp . HMAC.
FAKE_BOT_TOKEN = (
    base64.urlsafe_b64encode(BOT_USER_ID.encode()).decode().rstrip("=")
    + ".GfAkE1.tocsin-fake-discord-token-for-tests-only0"
)

# Gateway (docs/topics/opcodes-and-status-codes).
OP_DISPATCH, OP_HEARTBEAT, OP_IDENTIFY, OP_PRESENCE, OP_VOICE = 0, 1, 2, 3, 4
OP_RESUME, OP_RECONNECT, OP_REQUEST_MEMBERS, OP_INVALID_SESSION = 6, 7, 8, 9
OP_HELLO, OP_HEARTBEAT_ACK = 10, 11
CLOSE_UNKNOWN_OPCODE, CLOSE_DECODE_ERROR, CLOSE_NOT_AUTHENTICATED = 4001, 4002, 4003
CLOSE_AUTHENTICATION_FAILED, CLOSE_ALREADY_AUTHENTICATED = 4004, 4005
CLOSE_INVALID_SHARD, CLOSE_INVALID_API_VERSION = 4010, 4012
CLOSE_INVALID_INTENTS, CLOSE_DISALLOWED_INTENTS = 4013, 4014
#: Discord's usual heartbeat interval, in milliseconds.
HEARTBEAT_INTERVAL_MS = 41_250

# Intents (docs/topics/gateway "List of Intents").
INTENT_GUILDS = 1 << 0
INTENT_GUILD_MEMBERS = 1 << 1
INTENT_GUILD_PRESENCES = 1 << 8
INTENT_GUILD_MESSAGES = 1 << 9
INTENT_MESSAGE_CONTENT = 1 << 15
PRIVILEGED_INTENTS = INTENT_GUILD_MEMBERS | INTENT_GUILD_PRESENCES | INTENT_MESSAGE_CONTENT
#: Every documented intent bit (0-16, 20, 21, 24, 25); anything else closes 4013.
VALID_INTENTS = (1 << 17) - 1 | 1 << 20 | 1 << 21 | 1 << 24 | 1 << 25

# Permissions (docs/topics/permissions).
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
EMBED_LINKS = 1 << 14
ATTACH_FILES = 1 << 15
READ_MESSAGE_HISTORY = 1 << 16
MENTION_EVERYONE = 1 << 17
USE_APPLICATION_COMMANDS = 1 << 31
CREATE_PUBLIC_THREADS = 1 << 35
SEND_MESSAGES_IN_THREADS = 1 << 38
BOT_PERMISSIONS = (
    VIEW_CHANNEL
    | SEND_MESSAGES
    | EMBED_LINKS
    | ATTACH_FILES
    | READ_MESSAGE_HISTORY
    | MENTION_EVERYONE
    | USE_APPLICATION_COMMANDS
    | CREATE_PUBLIC_THREADS
    | SEND_MESSAGES_IN_THREADS
)
MEMBER_PERMISSIONS = VIEW_CHANNEL | SEND_MESSAGES | READ_MESSAGE_HISTORY | USE_APPLICATION_COMMANDS

# Message flags and types (docs/resources/message).
FLAG_HAS_THREAD = 1 << 5
FLAG_EPHEMERAL = 1 << 6
FLAG_LOADING = 1 << 7
MESSAGE_DEFAULT, MESSAGE_REPLY, MESSAGE_CHAT_INPUT_COMMAND = 0, 19, 20
CHANNEL_GUILD_TEXT, CHANNEL_DM, CHANNEL_GUILD_ANNOUNCEMENT = 0, 1, 5
CHANNEL_PUBLIC_THREAD, CHANNEL_GUILD_FORUM = 11, 15
THREAD_TYPES = frozenset({10, 11, 12})

# Interactions (docs/interactions/receiving-and-responding).
INTERACTION_APPLICATION_COMMAND, INTERACTION_COMPONENT, INTERACTION_AUTOCOMPLETE = 2, 3, 4
CALLBACK_MESSAGE, CALLBACK_DEFERRED, CALLBACK_AUTOCOMPLETE = 4, 5, 8
#: A component's callbacks: acknowledge without a message (6), edit the clicked one (7).
CALLBACK_DEFERRED_UPDATE, CALLBACK_UPDATE = 6, 7
#: Callback types Discord accepts per interaction type (PONG is for HTTP pings only).
CALLBACKS_FOR = {
    INTERACTION_APPLICATION_COMMAND: frozenset({4, 5, 9, 12}),
    INTERACTION_COMPONENT: frozenset({4, 5, 6, 7, 9, 12}),
    INTERACTION_AUTOCOMPLETE: frozenset({8}),
}
# Message components (docs/components/reference): an action row (1) holds up to 5 buttons
# (2); a message without IS_COMPONENTS_V2 holds up to 5 rows. Button styles 1-4 need a
# custom_id (≤ 100, unique in the message), 5 (link) a url and no custom_id, 6 a sku_id.
COMPONENT_ACTION_ROW, COMPONENT_BUTTON = 1, 2
ROWS_MAX, ROW_BUTTONS_MAX, CUSTOM_ID_MAX, LABEL_MAX = 5, 5, 100, 80
FLAG_COMPONENTS_V2 = 1 << 15
#: "you must send an initial response within 3 seconds"; tokens then last 15 minutes.
INTERACTION_DEADLINE = 3.0
INTERACTION_TOKEN_TTL = 15 * 60.0
#: enforce_nonce: "checked for uniqueness in the past few minutes".
NONCE_TTL = 5 * 60.0

#: Discord's JSON error codes the fake answers with: code → (HTTP status, message)
#: (docs/topics/opcodes-and-status-codes "JSON Error Codes").
ERRORS: dict[int, tuple[int, str]] = {
    0: (400, "400: Bad Request"),
    10003: (404, "Unknown Channel"),
    10004: (404, "Unknown Guild"),
    10008: (404, "Unknown Message"),
    10015: (404, "Unknown Webhook"),
    10062: (404, "Unknown interaction"),
    10063: (404, "Unknown application command"),
    40060: (400, "Interaction has already been acknowledged."),
    50001: (403, "Missing Access"),
    50005: (403, "Cannot edit a message authored by another user"),
    50006: (400, "Cannot send an empty message"),
    50013: (403, "Missing Permissions"),
    50027: (401, "Invalid Webhook Token"),
    50035: (400, "Invalid Form Body"),
    50024: (400, "Cannot execute action on this channel type"),
    50041: (400, "Invalid API version provided"),
    50109: (400, "The request body contains invalid JSON."),
    160004: (400, "A thread has already been created for this message"),
    220003: (400, "Webhooks can only create threads in forum channels"),
}

#: What the fake checks beyond the spec, and where Discord documents it.
DOCUMENTED_RULES: dict[str, str] = {
    "content ≤ 2000": "message.mdx, Create/Edit Message: 'Message contents (up to 2000 "
    "characters)' (the spec says 4000 for channel messages: that is the Nitro limit for users)",
    "embeds total ≤ 6000": "message.mdx, Embed Limits: 'the combined sum of characters in all "
    "title, description, field.name, field.value, footer.text, and author.name fields across "
    "all embeds attached to a message must not exceed 6000 characters' (whitespace trimmed)",
    "field name/value non-empty": "message.mdx, Embed Field Structure: name and value are "
    "required strings (Discord answers BASE_TYPE_REQUIRED for empty ones)",
    "author.name, footer.text required": "message.mdx, Embed Author/Footer Structure",
    "not empty": "message.mdx, Create Message: 'at least one of content, embeds, sticker_ids, "
    "components, files[n], or poll' (50006 Cannot send an empty message)",
    "allowed_mentions parse exclusive": "message.mdx, Allowed Mentions Reference: parse "
    "['users'] and users [...] together is a validation error",
    "reply target exists": "message.mdx, Create Message limitations: 'The referenced message "
    "must exist' (unless fail_if_not_exists is false)",
    "command names": "application-commands.mdx, Application Command Naming: CHAT_INPUT names "
    "match ^[-_'\\p{L}\\p{N}]{1,32}$ and are lowercase; description 1-100",
    "unique command names": "application-commands.mdx: names unique per type and scope",
    "required options first": "application-commands.mdx: 'Required options must be listed "
    "before optional options'",
    "autocomplete excludes choices": "application-commands.mdx: 'autocomplete may not be set "
    "to true if choices are present'",
    "callback type fits interaction": "receiving-and-responding.mdx, Interaction Callback "
    "Type: 8 only for autocomplete; 4/5/9 for commands",
    "one initial response": "receiving-and-responding.mdx (40060 Interaction has already "
    "been acknowledged)",
    "components": "components/reference.mdx, Action Row and Button: up to 5 buttons in a row, "
    "up to 5 rows per message (without IS_COMPONENTS_V2); non-link buttons need a custom_id "
    "(max 100 characters, unique per message) and no url; link buttons a url and no custom_id; "
    "label max 80 characters",
    "webhook components": "resources/webhook.mdx, Execute Webhook: interactive components "
    "need an application-owned webhook",
    "one subcommand": "application-commands.mdx, Subcommands and Subcommand Groups: an "
    "interaction runs exactly one subcommand of a command that has them",
    "snowflakes may be integers": "Reference.mdx, ID Serialization: Discord stores ids as "
    "integers; requests may carry them as JSON numbers (discord.py does, in message_reference)",
    "boolean query strings": "Reference.mdx, Boolean Query Strings: True/true/1, False/false/0",
    "Content-Type": "Reference.mdx, Content Type: JSON, form or multipart, else 50035",
    "JSON exactly": "discord.py's json_or_text parses only 'Content-Type: application/json' "
    "(no charset), which is what Discord sends",
    "429 has Via": "discord.py treats a 429 without a Via header as a Cloudflare ban; Discord's "
    "responses carry 'Via: 1.1 google'",
}

CHAT_INPUT_NAME = re.compile(r"^[-_'\w]{1,32}$")
SNOWFLAKE = re.compile(r"^(0|[1-9][0-9]*)$")
USER_MENTION = re.compile(r"<@!?(\d+)>")
ROLE_MENTION = re.compile(r"<@&(\d+)>")
EVERYONE_MENTION = re.compile(r"@(everyone|here)\b")


# ============================================================================ spec


@dataclass(frozen=True)
class FieldError:
    """One entry of Discord's ``errors`` tree: where, Discord's code, its message."""

    path: tuple[str | int, ...]
    code: str
    message: str

    def __str__(self) -> str:
        where = ".".join(str(p) for p in self.path) or "(body)"
        return f"{where}: {self.message} ({self.code})"


def errors_tree(errors: Iterable[FieldError]) -> dict[str, Any]:
    """Discord's nested shape: ``{"embeds": {"0": {"title": {"_errors": [...]}}}}``."""
    tree: dict[str, Any] = {}
    for error in errors:
        node = tree
        for part in error.path:
            node = node.setdefault(str(part), {})
        node.setdefault("_errors", []).append({"code": error.code, "message": error.message})
    return tree


@dataclass(frozen=True)
class Operation:
    """One method of one path of the spec."""

    method: str
    template: str
    operation_id: str
    path_params: dict[str, Any]
    query_params: dict[str, Any]
    body_schema: dict[str, Any] | None
    body_required: bool
    auth: Literal["bot", "optional"]
    responses: dict[str, Any]

    @property
    def key(self) -> str:
        return f"{self.method} {self.template}"


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return bool(a == b)


def _is_type(value: Any, kind: str) -> bool:
    if kind == "null":
        return value is None
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        if isinstance(value, bool):
            return False
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "string":
        return isinstance(value, str)
    if kind == "array":
        return isinstance(value, list)
    if kind == "object":
        return isinstance(value, dict)
    return True


def _choices(path: tuple[str | int, ...], allowed: list[Any]) -> FieldError:
    """As Discord words it (Reference, "Error Messages"): ``Value must be one of (0, 1).``"""
    return FieldError(path, "BASE_TYPE_CHOICES", f"Value must be one of {tuple(allowed)!r}.")


def _length_error(
    path: tuple[str | int, ...], size: int, low: int | None, high: int | None
) -> FieldError | None:
    if (high is None or size <= high) and (low is None or size >= low):
        return None
    if low and high is not None:
        return FieldError(
            path, "BASE_TYPE_BAD_LENGTH", f"Must be between {low} and {high} in length."
        )
    if high is not None and size > high:
        return FieldError(path, "BASE_TYPE_MAX_LENGTH", f"Must be {high} or fewer in length.")
    return FieldError(path, "BASE_TYPE_MIN_LENGTH", f"Must be {low} or more in length.")


class Spec:
    """Discord's OpenAPI document: operations by path and method, and a validator for its
    schemas (the subset of JSON Schema 2020-12 / OpenAPI 3.1 the document uses)."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw
        self.operations: list[tuple[tuple[str, ...], dict[str, Operation]]] = []
        for template, item in raw["paths"].items():
            shared = {p["name"]: p for p in item.get("parameters", [])}
            ops: dict[str, Operation] = {}
            for method, op in item.items():
                if method == "parameters":
                    continue
                params = dict(shared)
                params.update({p["name"]: p for p in op.get("parameters", [])})
                body = op.get("requestBody")
                schema = None
                if body is not None:
                    content = body.get("content", {})
                    chosen: dict[str, Any] = content.get("application/json") or next(
                        iter(content.values()), {}
                    )
                    schema = chosen.get("schema")
                security = op.get("security") or [{}]
                ops[method.upper()] = Operation(
                    method=method.upper(),
                    template=template,
                    operation_id=op.get("operationId", ""),
                    path_params={
                        n: p.get("schema", {}) for n, p in params.items() if p.get("in") == "path"
                    },
                    query_params={
                        n: p.get("schema", {}) for n, p in params.items() if p.get("in") == "query"
                    },
                    body_schema=schema,
                    body_required=bool(body and body.get("required")),
                    auth="optional" if {} in security else "bot",
                    responses=op.get("responses", {}),
                )
            self.operations.append((tuple(template.strip("/").split("/")), ops))

    # ------------------------------------------------------------------- paths

    def match(self, method: str, path: str) -> tuple[Operation | None, dict[str, str], bool]:
        """(operation, path parameters, whether the path exists at all). Literal segments
        win over parameters (``/messages/@original`` before ``/messages/{message_id}``)."""
        parts = tuple(path.strip("/").split("/"))
        best: tuple[int, dict[str, Operation], dict[str, str]] | None = None
        for segments, ops in self.operations:
            if len(segments) != len(parts):
                continue
            params: dict[str, str] = {}
            literals = 0
            for seg, part in zip(segments, parts, strict=True):
                if seg.startswith("{") and seg.endswith("}"):
                    if not part:
                        break
                    params[seg[1:-1]] = part
                elif seg == part:
                    literals += 1
                else:
                    break
            else:
                if best is None or literals > best[0]:
                    best = (literals, ops, params)
        if best is None:
            return None, {}, False
        return best[1].get(method.upper()), best[2], True

    def response_schema(self, op: Operation, status: int) -> dict[str, Any] | None:
        response = op.responses.get(str(status))
        if response is None:
            return None
        response = self.resolve(response)
        content = response.get("content", {}).get("application/json")
        return None if content is None else content.get("schema")

    # ---------------------------------------------------------------- schemas

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        seen = 0
        while isinstance(schema, dict) and "$ref" in schema and len(schema) == 1:
            schema = self._pointer(schema["$ref"])
            seen += 1
            if seen > 64:
                raise ValueError("$ref cycle")
        return schema

    @functools.cache  # noqa: B019 - one Spec per process, never freed
    def _pointer(self, ref: str) -> dict[str, Any]:
        if not ref.startswith("#/"):
            raise ValueError(f"external $ref not supported: {ref}")
        node: Any = self.raw
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node  # type: ignore[no-any-return]

    def _types(self, schema: Any) -> set[str] | None:
        """The JSON types a schema admits at its top level (``None``: any)."""
        if not isinstance(schema, dict):
            return None
        schema = self.resolve(schema)
        found: set[str] | None = None

        def narrow(kinds: set[str] | None) -> None:
            nonlocal found
            if kinds is not None:
                found = kinds if found is None else found & kinds

        if "type" in schema:
            kinds = schema["type"]
            narrow(set([kinds] if isinstance(kinds, str) else kinds))
        if "$ref" in schema:
            narrow(self._types(self._pointer(schema["$ref"])))
        for key in ("oneOf", "anyOf"):
            if key in schema:
                union: set[str] = set()
                for branch in schema[key]:
                    kinds = self._types(branch)
                    if kinds is None:
                        union = set()
                        break
                    union |= kinds
                if union:
                    narrow(union)
        if "const" in schema:
            narrow({_json_type(schema["const"])})
        if found is not None and schema.get("nullable"):
            found = found | {"null"}
        if found is not None and "number" in found:
            found = found | {"integer"}
        return found

    def validate(
        self, value: Any, schema: Any, path: tuple[str | int, ...] = ()
    ) -> list[FieldError]:
        if not isinstance(schema, dict) or not schema:
            return []
        out: list[FieldError] = []
        if "$ref" in schema:
            out += self.validate(value, self._pointer(schema["$ref"]), path)
            if out and any(e.path == path and e.code.endswith("_CONVERT") for e in out):
                return out
        for sub in schema.get("allOf", ()):
            out += self.validate(value, sub, path)
        if "anyOf" in schema:
            out += self._union(value, schema["anyOf"], path, exactly_one=False)
        if "oneOf" in schema:
            out += self._union(value, schema["oneOf"], path, exactly_one=True)
        if schema.get("format") == "snowflake" and _is_type(value, "integer"):
            # Discord stores ids as integers and takes them as JSON numbers too (Reference,
            # "ID Serialization"); discord.py sends message_reference ids that way.
            value = str(int(value))
        kinds = schema.get("type")
        if kinds is not None:
            allowed = [kinds] if isinstance(kinds, str) else list(kinds)
            if schema.get("nullable"):
                allowed.append("null")
            if not any(_is_type(value, k) for k in allowed):
                return [*out, self._type_error(value, allowed, path)]
        if "const" in schema and not _same(value, schema["const"]):
            out.append(_choices(path, [schema["const"]]))
        if "enum" in schema and not any(_same(value, e) for e in schema["enum"]):
            out.append(_choices(path, schema["enum"]))
        if isinstance(value, str):
            out += self._string(value, schema, path)
        elif _is_type(value, "number"):
            out += self._number(value, schema, path)
        elif isinstance(value, list):
            out += self._array(value, schema, path)
        elif isinstance(value, dict):
            out += self._object(value, schema, path)
        return out

    def _type_error(
        self, value: Any, allowed: list[str], path: tuple[str | int, ...]
    ) -> FieldError:
        if value is None:
            return FieldError(path, "BASE_TYPE_REQUIRED", "This field is required")
        wanted = next((k for k in allowed if k != "null"), "null")
        shown = _show(value)
        code, message = {
            "object": ("MODEL_TYPE_CONVERT", "Expected an object/dictionary."),
            "array": ("LIST_TYPE_CONVERT", "Only iterables may be used in a ListType"),
            "string": ("STRING_TYPE_CONVERT", f'Could not interpret "{shown}" as string.'),
            "integer": ("NUMBER_TYPE_COERCE", f'Value "{shown}" is not int.'),
            "number": ("NUMBER_TYPE_COERCE", f'Value "{shown}" is not a number.'),
            "boolean": ("BOOLEAN_TYPE_CONVERT", f'Could not interpret "{shown}" as boolean.'),
        }.get(wanted, ("BASE_TYPE_CHOICES", "Value must be null."))
        return FieldError(path, code, message)

    def _union(
        self, value: Any, branches: list[Any], path: tuple[str | int, ...], *, exactly_one: bool
    ) -> list[FieldError]:
        tags = [self._discriminator(branch) for branch in branches]
        if isinstance(value, dict) and all(t is not None for t in tags):
            # A union keyed by ``type`` (callbacks, options, components): pick by the key.
            kind = value.get("type")
            chosen = [
                b
                for b, t in zip(branches, tags, strict=True)
                if any(_same(kind, x) for x in t or ())
            ]
            if not chosen:
                every = sorted(
                    {x for t in tags for x in t or ()}, key=lambda x: (isinstance(x, str), x)
                )
                return [_choices((*path, "type"), every)]
            branches = chosen
        results = [self.validate(value, branch, path) for branch in branches]
        passing = sum(1 for r in results if not r)
        if passing == 1 or (passing and not exactly_one):
            return []
        if passing > 1:
            return [
                FieldError(path, "UNION_TYPE_AMBIGUOUS", "Value matches more than one variant.")
            ]
        kind = _json_type(value)
        fitting = [
            r
            for r, branch in zip(results, branches, strict=True)
            if (kinds := self._types(branch)) is None or kind in kinds
        ]
        if not fitting:
            allowed: set[str] = set()
            for branch in branches:
                allowed |= self._types(branch) or set()
            return [self._type_error(value, sorted(allowed - {"null"}) or ["null"], path)]
        return min(fitting, key=len)

    def _discriminator(self, branch: Any) -> list[Any] | None:
        if not isinstance(branch, dict):
            return None
        branch = self.resolve(branch)
        tag = (branch.get("properties") or {}).get("type")
        if isinstance(tag, dict) and isinstance(tag.get("enum"), list):
            return list(tag["enum"])
        return None

    def _string(
        self, value: str, schema: dict[str, Any], path: tuple[str | int, ...]
    ) -> list[FieldError]:
        out: list[FieldError] = []
        error = _length_error(path, len(value), schema.get("minLength"), schema.get("maxLength"))
        if error is not None:
            out.append(error)
        pattern = schema.get("pattern")
        if pattern and not re.search(pattern, value):
            if schema.get("format") == "snowflake" or pattern == SNOWFLAKE.pattern:
                out.append(
                    FieldError(path, "NUMBER_TYPE_COERCE", f'Value "{value}" is not snowflake.')
                )
            else:
                out.append(
                    FieldError(
                        path, "STRING_TYPE_REGEX", "String value did not match validation regex."
                    )
                )
        fmt = schema.get("format")
        if fmt == "uri":
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https", "attachment"):
                out.append(
                    FieldError(
                        path,
                        "URL_TYPE_INVALID_SCHEME",
                        f'Scheme "{parts.scheme}" is not supported. Scheme must be one of '
                        "('http', 'https').",
                    )
                )
            elif not parts.netloc:
                out.append(FieldError(path, "URL_TYPE_INVALID_URL", "Not a well formed URL."))
        elif fmt == "date-time":
            try:
                datetime.fromisoformat(value)
            except ValueError:
                out.append(
                    FieldError(
                        path, "DATE_TYPE_PARSE", f"Could not parse {value}. Should be ISO8601."
                    )
                )
        return out

    @staticmethod
    def _number(
        value: float, schema: dict[str, Any], path: tuple[str | int, ...]
    ) -> list[FieldError]:
        out: list[FieldError] = []
        low, high = schema.get("minimum"), schema.get("maximum")
        if low is not None and value < low:
            out.append(
                FieldError(
                    path, "NUMBER_TYPE_MIN", f"int value should be greater than or equal to {low}."
                )
            )
        if high is not None and value > high:
            out.append(
                FieldError(
                    path, "NUMBER_TYPE_MAX", f"int value should be less than or equal to {high}."
                )
            )
        return out

    def _array(
        self, value: list[Any], schema: dict[str, Any], path: tuple[str | int, ...]
    ) -> list[FieldError]:
        out: list[FieldError] = []
        error = _length_error(path, len(value), schema.get("minItems"), schema.get("maxItems"))
        if error is not None:
            out.append(error)
        if schema.get("uniqueItems"):
            seen: list[str] = []
            for item in value:
                key = json.dumps(item, sort_keys=True)
                if key in seen:
                    out.append(
                        FieldError(
                            path,
                            "SET_TYPE_ALREADY_CONTAINS_VALUE",
                            "The set already contains this value.",
                        )
                    )
                    break
                seen.append(key)
        items = schema.get("items")
        if items is not None:
            for i, item in enumerate(value):
                out += self.validate(item, items, (*path, i))
        return out

    def _object(
        self, value: dict[str, Any], schema: dict[str, Any], path: tuple[str | int, ...]
    ) -> list[FieldError]:
        out: list[FieldError] = []
        properties: dict[str, Any] = schema.get("properties", {})
        for name in schema.get("required", ()):
            if name not in value:
                out.append(
                    FieldError((*path, name), "BASE_TYPE_REQUIRED", "This field is required")
                )
        for name, item in value.items():
            if name in properties:
                out += self.validate(item, properties[name], (*path, name))
                continue
            extra = schema.get("additionalProperties", True)
            if extra is False:
                out.append(FieldError((*path, name), "BASE_TYPE_INVALID", "Unknown field."))
            elif isinstance(extra, dict):
                out += self.validate(item, extra, (*path, name))
        error = _length_error(
            path, len(value), schema.get("minProperties"), schema.get("maxProperties")
        )
        if error is not None:
            out.append(error)
        return out

    def query_errors(self, op: Operation, query: dict[str, str]) -> list[FieldError]:
        """Query strings are text: coerce to the parameter's type, then validate. Unknown
        parameters are ignored, as Discord ignores them."""
        out: list[FieldError] = []
        for name, raw in query.items():
            schema = op.query_params.get(name)
            if schema is None:
                continue
            kinds = self._types(schema) or {"string"}
            value: Any = raw
            if "boolean" in kinds:
                # Reference, "Boolean Query Strings": True, true or 1; False, false or 0.
                value = {"True": True, "true": True, "1": True}.get(raw, raw)
                value = {"False": False, "false": False, "0": False}.get(raw, value)
            elif "integer" in kinds:
                with contextlib.suppress(ValueError):
                    value = int(raw)
            out += self.validate(value, schema, (name,))
        return out


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


@functools.cache
def load_spec(path: Path = SPEC_PATH) -> Spec:
    return Spec(json.loads(path.read_text()))


# ====================================================== Discord's documented rules


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def embed_errors(embeds: Any) -> list[FieldError]:
    """The embed rules Discord documents beyond the spec's per-field limits: field name and
    value, author name and footer text present and non-empty, and at most 6000 characters
    (whitespace trimmed) across all the message's embeds."""
    if not isinstance(embeds, list):
        return []
    out: list[FieldError] = []
    total = 0
    for i, embed in enumerate(embeds):
        if not isinstance(embed, dict):
            continue
        total += len(_text(embed.get("title"))) + len(_text(embed.get("description")))
        fields = embed.get("fields")
        if isinstance(fields, list):
            for j, item in enumerate(fields):
                if not isinstance(item, dict):
                    continue
                for key in ("name", "value"):
                    if isinstance(item.get(key), str) and not _text(item[key]):
                        out.append(
                            FieldError(
                                ("embeds", i, "fields", j, key),
                                "BASE_TYPE_REQUIRED",
                                "This field is required",
                            )
                        )
                total += len(_text(item.get("name"))) + len(_text(item.get("value")))
        for part, key in (("author", "name"), ("footer", "text")):
            sub = embed.get(part)
            if isinstance(sub, dict):
                if not _text(sub.get(key)):
                    out.append(
                        FieldError(
                            ("embeds", i, part, key), "BASE_TYPE_REQUIRED", "This field is required"
                        )
                    )
                total += len(_text(sub.get(key)))
    if total > 6000:
        out.append(
            FieldError(
                ("embeds",), "MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000"
            )
        )
    return out


def content_errors(body: dict[str, Any]) -> list[FieldError]:
    """``content`` ≤ 2000 characters, the embed rules, and ``allowed_mentions`` sanity."""
    out: list[FieldError] = []
    content = body.get("content")
    if isinstance(content, str) and len(content) > 2000:
        out.append(
            FieldError(("content",), "BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length.")
        )
    out += embed_errors(body.get("embeds"))
    out += component_errors(body.get("components"), body.get("flags"))
    mentions = body.get("allowed_mentions")
    if isinstance(mentions, dict):
        parse = mentions.get("parse") or []
        for kind in ("users", "roles"):
            if kind in parse and mentions.get(kind):
                out.append(
                    FieldError(
                        ("allowed_mentions",),
                        "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE",
                        f'parse:["{kind}"] and {kind}: [ids...] are mutually exclusive.',
                    )
                )
    return out


def component_errors(components: Any, flags: Any = 0) -> list[FieldError]:
    """The component rules Discord documents beyond the spec's shapes (the spec allows 40
    top-level components, the limit of components v2): ≤ 5 action rows, each of ≤ 5
    buttons; non-link buttons with a unique ``custom_id`` and no ``url``, link buttons the
    other way round."""
    if not isinstance(components, list):
        return []
    out: list[FieldError] = []
    v2 = isinstance(flags, int) and bool(flags & FLAG_COMPONENTS_V2)
    if not v2 and len(components) > ROWS_MAX:
        out.append(
            FieldError(
                ("components",), "BASE_TYPE_MAX_LENGTH", f"Must be {ROWS_MAX} or fewer in length."
            )
        )
    seen: set[str] = set()
    for i, row in enumerate(components):
        if not isinstance(row, dict):
            continue
        if not v2 and row.get("type") != COMPONENT_ACTION_ROW:
            out.append(
                FieldError(
                    ("components", i, "type"),
                    "UI_COMPONENTS_V2_REQUIRED",
                    "Only action rows are allowed without the IS_COMPONENTS_V2 flag",
                )
            )
            continue
        items = row.get("components")
        if not isinstance(items, list):
            continue
        if len(items) > ROW_BUTTONS_MAX:
            out.append(
                FieldError(
                    ("components", i, "components"),
                    "BASE_TYPE_MAX_LENGTH",
                    f"Must be {ROW_BUTTONS_MAX} or fewer in length.",
                )
            )
        for j, item in enumerate(items):
            if not isinstance(item, dict) or item.get("type") != COMPONENT_BUTTON:
                continue
            where = ("components", i, "components", j)
            style, custom_id, url = item.get("style"), item.get("custom_id"), item.get("url")
            if style in (1, 2, 3, 4):
                if not isinstance(custom_id, str) or not custom_id:
                    out.append(
                        FieldError(
                            (*where, "custom_id"), "BASE_TYPE_REQUIRED", "A custom id is required"
                        )
                    )
                elif custom_id in seen:
                    out.append(
                        FieldError(
                            (*where, "custom_id"),
                            "COMPONENT_CUSTOM_ID_DUPLICATED",
                            "Component custom id cannot be duplicated",
                        )
                    )
                else:
                    seen.add(custom_id)
                if isinstance(custom_id, str) and len(custom_id) > CUSTOM_ID_MAX:
                    out.append(
                        FieldError(
                            (*where, "custom_id"),
                            "BASE_TYPE_MAX_LENGTH",
                            f"Must be {CUSTOM_ID_MAX} or fewer in length.",
                        )
                    )
                if url is not None:
                    out.append(
                        FieldError(
                            (*where, "url"),
                            "BUTTON_COMPONENT_URL_NOT_ALLOWED",
                            "A non-link button cannot have a url",
                        )
                    )
            elif style == 5 and (not url or custom_id is not None):
                out.append(
                    FieldError(
                        where,
                        "BUTTON_COMPONENT_INVALID",
                        "A link button needs a url and no custom id",
                    )
                )
            label = item.get("label")
            if isinstance(label, str) and len(label) > LABEL_MAX:
                out.append(
                    FieldError(
                        (*where, "label"),
                        "BASE_TYPE_MAX_LENGTH",
                        f"Must be {LABEL_MAX} or fewer in length.",
                    )
                )
            if style in (1, 2, 3, 4, 5) and not label and not item.get("emoji"):
                out.append(
                    FieldError(
                        where,
                        "BUTTON_COMPONENT_LABEL_OR_EMOJI_REQUIRED",
                        "A button needs a label or an emoji",
                    )
                )
    return out


def interactive(components: Any) -> bool:
    """Whether any component sends an interaction (a button other than a link, a select)."""
    if not isinstance(components, list):
        return False
    for item in components:
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind == COMPONENT_BUTTON and item.get("style") not in (5, 6):
            return True
        if kind in (3, 5, 6, 7, 8):
            return True
        if interactive(item.get("components")):
            return True
    return False


def buttons_of(components: Any) -> list[dict[str, Any]]:
    """Every button in a message's components (rows and nested containers)."""
    found: list[dict[str, Any]] = []
    for item in components if isinstance(components, list) else []:
        if not isinstance(item, dict):
            continue
        if item.get("type") == COMPONENT_BUTTON:
            found.append(item)
        found += buttons_of(item.get("components"))
    return found


def is_empty_message(body: dict[str, Any], *, files: int = 0) -> bool:
    """No content, embeds, stickers, components, files or poll (50006)."""
    return (
        not _text(body.get("content"))
        and not body.get("embeds")
        and not body.get("sticker_ids")
        and not body.get("components")
        and not body.get("poll")
        and not files
    )


def command_errors(commands: Any) -> list[FieldError]:
    """Application command rules from the docs, on a bulk-overwrite body."""
    if not isinstance(commands, list):
        return []
    out: list[FieldError] = []
    seen: set[tuple[int, str]] = set()
    for i, command in enumerate(commands):
        if not isinstance(command, dict) or not isinstance(command.get("name"), str):
            continue
        kind = command.get("type") or 1
        name = command["name"]
        if (kind, name) in seen:
            out.append(
                FieldError(
                    (i, "name"),
                    "APPLICATION_COMMANDS_DUPLICATE_NAME",
                    f"Application command names must be unique ({name})",
                )
            )
        seen.add((kind, name))
        if kind == 1:
            if not CHAT_INPUT_NAME.match(name) or name != name.lower():
                out.append(
                    FieldError(
                        (i, "name"), "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid"
                    )
                )
            if not _text(command.get("description")):
                out.append(
                    FieldError((i, "description"), "BASE_TYPE_REQUIRED", "This field is required")
                )
        out += _option_rules(command.get("options"), (i, "options"))
    return out


def _option_rules(options: Any, path: tuple[str | int, ...]) -> list[FieldError]:
    if not isinstance(options, list):
        return []
    out: list[FieldError] = []
    optional_seen = False
    for j, option in enumerate(options):
        if not isinstance(option, dict):
            continue
        where = (*path, j)
        name = option.get("name")
        if isinstance(name, str) and (not CHAT_INPUT_NAME.match(name) or name != name.lower()):
            out.append(
                FieldError(
                    (*where, "name"), "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid"
                )
            )
        if option.get("type") in (1, 2):
            out += _option_rules(option.get("options"), (*where, "options"))
            continue
        if option.get("required"):
            if optional_seen:
                out.append(
                    FieldError(
                        where,
                        "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                        "Required options must be placed before non-required options",
                    )
                )
        else:
            optional_seen = True
        if option.get("autocomplete") and option.get("choices"):
            out.append(
                FieldError(
                    (*where, "autocomplete"),
                    "AUTOCOMPLETE_CHOICES_EXCLUSIVE",
                    "Autocomplete cannot be enabled on an option with choices",
                )
            )
    return out


# =========================================================================== state


def _iso(ms: float) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="microseconds")


def snowflake_time(snowflake: str) -> float:
    """Unix seconds a snowflake was made at."""
    return ((int(snowflake) >> 22) + DISCORD_EPOCH_MS) / 1000


@dataclass
class Edit:
    """A message as it was before one edit; ``body`` is the edit request."""

    at: float
    edited_timestamp: str
    content: str
    embeds: list[dict[str, Any]]
    flags: int
    components: list[Any]
    body: dict[str, Any]


@dataclass
class Message:
    id: str
    channel_id: str
    guild_id: str | None
    author: dict[str, Any]
    content: str = ""
    embeds: list[dict[str, Any]] = field(default_factory=list)
    timestamp: str = ""
    type: int = MESSAGE_DEFAULT
    flags: int = 0
    tts: bool = False
    nonce: str | int | None = None
    components: list[Any] = field(default_factory=list)
    attachments: list[dict[str, Any]] = field(default_factory=list)
    mentions: list[str] = field(default_factory=list)
    mention_roles: list[str] = field(default_factory=list)
    mention_everyone: bool = False
    allowed_mentions: dict[str, Any] | None = None
    message_reference: dict[str, Any] | None = None
    webhook_id: str | None = None
    application_id: str | None = None
    interaction_id: str | None = None
    edited_timestamp: str | None = None
    edits: list[Edit] = field(default_factory=list)
    thread_id: str | None = None
    deleted: bool = False
    at: float = field(default_factory=time.monotonic)

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & FLAG_EPHEMERAL)

    @property
    def history(self) -> list[tuple[str, list[dict[str, Any]]]]:
        """(content, embeds) of every version, oldest first, the current one last."""
        return [(e.content, e.embeds) for e in self.edits] + [(self.content, self.embeds)]


@dataclass
class Channel:
    id: str
    guild_id: str | None
    name: str
    type: int = CHANNEL_GUILD_TEXT
    position: int = 0
    topic: str | None = None
    parent_id: str | None = None
    owner_id: str | None = None
    messages: list[str] = field(default_factory=list)
    view: bool = True
    send: bool = True
    threads: bool = True
    mention_everyone: bool = True
    auto_archive_duration: int = 1440
    rate_limit_per_user: int = 0
    created_ms: float = 0.0
    message_count: int = 0
    total_message_sent: int = 0
    deleted: bool = False

    @property
    def is_thread(self) -> bool:
        return self.type in THREAD_TYPES


@dataclass
class Guild:
    id: str
    name: str
    bot_role_id: str
    channels: list[str] = field(default_factory=list)
    joined_ms: float = 0.0
    #: Roles besides @everyone and the bot's: id → name (:meth:`FakeDiscord.add_role`).
    roles: dict[str, str] = field(default_factory=dict)
    #: The roles each member has (user id → role ids).
    member_roles: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class Webhook:
    id: str
    token: str
    channel_id: str
    guild_id: str | None
    name: str
    base: str
    deleted: bool = False

    @property
    def url(self) -> str:
        """The fake's own URL for it (what ``POST``/``PATCH`` go to)."""
        return f"{self.base}/webhooks/{self.id}/{self.token}"

    @property
    def discord_url(self) -> str:
        """As Discord hands it out; the form ``discord.Webhook.from_url`` accepts. discord.py
        only takes the id and token from it and sends to ``Route.BASE``, i.e. to the fake."""
        return f"https://discord.com/api/webhooks/{self.id}/{self.token}"


@dataclass
class Call:
    """One REST request as the fake saw it, and what it answered."""

    method: str
    path: str
    route: str
    params: dict[str, str]
    query: dict[str, str]
    body: Any
    files: list[str] = field(default_factory=list)
    authorization: str | None = None
    at: float = field(default_factory=time.monotonic)
    status: int = 0
    response: Any = None


@dataclass
class Violation:
    """A request Discord would refuse as malformed (or one the fake could not have sent)."""

    route: str
    problems: list[str]
    body: Any
    status: int = 400
    code: int = 50035
    errors: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.monotonic)


@dataclass
class Failure:
    kind: Literal["ratelimit", "status", "error"]
    status: int
    remaining: int | None
    retry_after: float = 0.0
    scope: str = "user"
    is_global: bool = False
    code: int = 0
    message: str = ""
    body: bytes | None = None


@dataclass
class Bucket:
    hash: str
    limit: int
    per: float
    remaining: int = 0
    reset_at: float = 0.0


@dataclass
class GatewaySession:
    id: str
    intents: int
    shard: list[int] | None
    identify: dict[str, Any]
    seq: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    connection: GatewayConnection | None = None


@dataclass
class GatewayConnection:
    id: int
    ws: web.WebSocketResponse
    compress: str | None
    encoding: str
    version: str
    opened_at: float = field(default_factory=time.monotonic)
    closed_at: float | None = None
    close_code: int | None = None
    session: GatewaySession | None = None
    received: list[dict[str, Any]] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    heartbeats: list[float] = field(default_factory=list)
    compressor: Any = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def open(self) -> bool:
        return self.closed_at is None and not self.ws.closed


@dataclass
class Interaction:
    """One INTERACTION_CREATE the fake sent: its payload, the app's callback and how long it
    took, then what the app did with the token (original response, follow-ups)."""

    id: str
    token: str
    type: int
    command: str
    guild_id: str | None
    channel_id: str
    user_id: str
    payload: dict[str, Any]
    sent_at: float
    callback: dict[str, Any] | None = None
    latency: float | None = None
    late: bool = False
    original_id: str | None = None
    followups: list[str] = field(default_factory=list)
    future: asyncio.Future[dict[str, Any]] | None = field(default=None, repr=False)
    #: A component interaction's: the message clicked and the component's ``custom_id``.
    message_id: str | None = None
    custom_id: str | None = None
    #: Callbacks refused after the first (``40060``: another replica answered already).
    refused: list[dict[str, Any]] = field(default_factory=list)

    @property
    def acknowledged(self) -> bool:
        return self.callback is not None and not self.late


class InteractionTimeout(TimeoutError):
    """The app did not answer an interaction within Discord's 3 seconds."""


class UnknownCommand(LookupError):
    """An interaction was asked for a command the app has not registered."""


class NoGatewaySession(RuntimeError):
    """Nothing is connected and identified to the fake gateway."""


class _Reject(Exception):
    def __init__(
        self,
        code: int,
        errors: list[FieldError] | None = None,
        *,
        status: int | None = None,
        message: str | None = None,
    ) -> None:
        known_status, known_message = ERRORS.get(code, (400, "400: Bad Request"))
        self.code = code
        self.status = status or known_status
        self.message = message or known_message
        self.errors = errors or []
        super().__init__(f"{self.code} {self.message}")

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.errors:
            body["errors"] = errors_tree(self.errors)
        return body


@dataclass
class _Ctx:
    """What a route handler gets."""

    op: Operation
    params: dict[str, str]
    query: dict[str, str]
    body: Any
    files: list[dict[str, Any]]
    call: Call


Handler = Callable[[_Ctx], Awaitable[tuple[int, Any]]]


def _json_response(
    payload: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """JSON as Discord sends it: ``Content-Type: application/json`` exactly, no charset
    (discord.py's ``json_or_text`` compares the header to that string)."""
    return web.Response(
        body=json.dumps(payload).encode(),
        status=status,
        headers={**(headers or {}), "Content-Type": "application/json"},
    )


def _truthy(value: str | None) -> bool:
    return value in ("True", "true", "1")


# ============================================================================ fake


class FakeDiscord:
    """Discord on 127.0.0.1: ``await FakeDiscord().start()``, then ``.api_url`` for REST and
    webhooks and ``.gateway_url`` for the gateway (see :func:`use_fake_discord`)."""

    def __init__(
        self,
        *,
        token: str = FAKE_BOT_TOKEN,
        privileged_intents: int = 0,
        heartbeat_interval_ms: int = HEARTBEAT_INTERVAL_MS,
        interaction_deadline: float = INTERACTION_DEADLINE,
        nonce_ttl: float = NONCE_TTL,
        bucket_limit: int = 50,
        bucket_per: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.token = token
        #: Privileged intents switched on for the app in the developer portal.
        self.privileged_intents = privileged_intents
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.interaction_deadline = interaction_deadline
        self.nonce_ttl = nonce_ttl
        self.port = 0
        self.guilds: dict[str, Guild] = {}
        self.channels: dict[str, Channel] = {}
        self.webhooks: dict[str, Webhook] = {}
        self.all_messages: dict[str, Message] = {}
        self.calls: list[Call] = []
        self.violations: list[Violation] = []
        #: The fake's own 2xx answers that do not match the spec's response schema.
        self.response_errors: list[str] = []
        #: Calls to routes Discord has but the fake does not implement.
        self.unsupported: list[Call] = []
        self.interactions: list[Interaction] = []
        self.connections: list[GatewayConnection] = []
        self.sessions: dict[str, GatewaySession] = {}
        self.delays: dict[str, float] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self._commands: dict[str | None, list[dict[str, Any]]] = {}
        self._command_ids: dict[tuple[str | None, int, str], str] = {}
        self._nonces: dict[tuple[str, str, str], tuple[float, str]] = {}
        self._failures: dict[str, deque[Failure]] = {}
        self._bucket_config: dict[str, tuple[int, float]] = {}
        self._buckets: dict[str, Bucket] = {}
        self._default_bucket = (bucket_limit, bucket_per)
        self._revoked = False
        self._clock = clock
        self._last_ms = 0
        self._increment = 0
        self._conn_ids = itertools.count(1)
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._spec = load_spec()
        self._session_starts = 0
        self._handlers: dict[str, Handler] = {
            "GET /users/@me": self._get_me,
            "GET /gateway": self._get_gateway,
            "GET /gateway/bot": self._get_gateway_bot,
            "GET /oauth2/applications/@me": self._get_application,
            "GET /applications/@me": self._get_application,
            "GET /channels/{channel_id}": self._get_channel,
            "GET /channels/{channel_id}/messages": self._list_messages,
            "POST /channels/{channel_id}/messages": self._create_message,
            "GET /channels/{channel_id}/messages/{message_id}": self._get_message,
            "PATCH /channels/{channel_id}/messages/{message_id}": self._edit_message,
            "DELETE /channels/{channel_id}/messages/{message_id}": self._delete_message,
            "POST /channels/{channel_id}/messages/{message_id}/threads": self._start_thread,
            "GET /applications/{application_id}/commands": self._get_commands,
            "PUT /applications/{application_id}/commands": self._put_commands,
            "GET /applications/{application_id}/guilds/{guild_id}/commands": self._get_commands,
            "PUT /applications/{application_id}/guilds/{guild_id}/commands": self._put_commands,
            "POST /interactions/{interaction_id}/{interaction_token}/callback": self._callback,
            f"GET {_WEBHOOK}": self._get_webhook,
            f"POST {_WEBHOOK}": self._execute_webhook,
        }
        for message in ("@original", "{message_id}"):
            self._handlers[f"GET {_WEBHOOK}/messages/{message}"] = self._get_wh_message
            self._handlers[f"PATCH {_WEBHOOK}/messages/{message}"] = self._edit_wh_message
            self._handlers[f"DELETE {_WEBHOOK}/messages/{message}"] = self._delete_wh_message
        self.bot_user: dict[str, Any] = self._user(BOT_USER_ID, BOT_USERNAME, bot=True)
        self._user(OWNER_ID, "tocsin-owner")

    # -------------------------------------------------------------- lifecycle

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """``Route.BASE`` for discord.py."""
        return f"{self.url}/api/v{API_VERSION}"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    async def start(self) -> FakeDiscord:
        app = web.Application(client_max_size=26 * 1024 * 1024)  # "25 MiB" per request
        app.router.add_get("/gateway", self._gateway)
        app.router.add_route("*", "/api/v{version:[0-9]+}/{tail:.*}", self._rest)
        self._runner = web.AppRunner(
            app, handle_signals=False, access_log=None, shutdown_timeout=1.0
        )
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        self.port = self._runner.addresses[0][1]
        return self

    async def close(self) -> None:
        for record in self.interactions:
            if record.future is not None and not record.future.done():
                record.future.cancel()
        for conn in self.connections:
            if conn.open:
                await conn.ws.close(code=1001, message=b"fake discord shutting down")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -------------------------------------------------------------- configure

    def add_guild(self, id: str | None = None, name: str = "tocsin test") -> Guild:
        """A guild the bot is in (it appears in READY and gets a GUILD_CREATE)."""
        guild = Guild(
            id or self.snowflake(), name, bot_role_id=self.snowflake(), joined_ms=self._now_ms()
        )
        self.guilds[guild.id] = guild
        return guild

    def add_role(self, guild_id: str, name: str = "on-call") -> str:
        """A role in a guild (in its GUILD_CREATE); returns its id."""
        role_id = self.snowflake()
        self.guilds[guild_id].roles[role_id] = name
        return role_id

    def add_user(
        self,
        user_id: str | None = None,
        username: str = "maria",
        *,
        global_name: str | None = None,
        guild_id: str | None = None,
        roles: Iterable[str] = (),
    ) -> str:
        """A person (their display name ``global_name``, outside text), a member of
        ``guild_id`` with ``roles`` there; returns their id."""
        user_id = user_id or self.snowflake()
        self.users.pop(user_id, None)
        self._user(user_id, username)
        self.users[user_id]["global_name"] = global_name or username
        if guild_id is not None:
            self.guilds[guild_id].member_roles[user_id] = list(roles)
        return user_id

    def add_channel(
        self,
        guild_id: str,
        id: str | None = None,
        name: str = "alerts",
        type: int = CHANNEL_GUILD_TEXT,
    ) -> Channel:
        guild = self.guilds[guild_id]
        channel = Channel(
            id or self.snowflake(),
            guild_id,
            name,
            type=type,
            position=len(guild.channels),
            created_ms=self._now_ms(),
        )
        self.channels[channel.id] = channel
        guild.channels.append(channel.id)
        return channel

    def remove_channel(self, channel_id: str) -> None:
        """The channel is deleted: from now on it is ``10003 Unknown Channel``."""
        self.channels[channel_id].deleted = True

    def set_permissions(
        self,
        channel_id: str,
        *,
        view: bool = True,
        send: bool = True,
        threads: bool = True,
        mention_everyone: bool = True,
    ) -> None:
        """The bot's permissions in a channel (a member overwrite on it): without ``view``
        every call on it is ``403 50001 Missing Access``; without ``send`` posting is
        ``403 50013 Missing Permissions``; ``threads`` likewise for starting threads;
        without ``mention_everyone`` @everyone/@here silently do not ping."""
        channel = self.channels[channel_id]
        channel.view, channel.send, channel.threads = view, send, threads
        channel.mention_everyone = mention_everyone

    def add_webhook(self, channel_id: str, name: str = "tocsin") -> str:
        """An incoming webhook on a channel; returns its full URL on the fake
        (``http://127.0.0.1:PORT/api/v10/webhooks/{id}/{token}``). The :class:`Webhook` is
        in :attr:`webhooks`, with :attr:`Webhook.discord_url` for ``Webhook.from_url``."""
        channel = self.channels[channel_id]
        hook = Webhook(
            self.snowflake(),
            secrets.token_urlsafe(51),
            channel.id,
            channel.guild_id,
            name,
            self.api_url,
        )
        self.webhooks[hook.id] = hook
        return hook.url

    def delete_webhook(self, webhook_id: str) -> None:
        """Someone deleted the webhook: from now on it is ``404 10015 Unknown Webhook``."""
        self.webhooks[webhook_id].deleted = True

    def revoke_token(self) -> None:
        """The bot token is reset: REST answers 401, IDENTIFY closes 4004."""
        self._revoked = True

    def restore_token(self) -> None:
        self._revoked = False

    def rate_limit(
        self,
        route: str,
        times: int = 1,
        retry_after: float = 1.0,
        *,
        scope: Literal["user", "shared", "global"] = "user",
    ) -> None:
        """The next ``times`` requests to ``route`` answer HTTP 429 with Discord's body
        ``{"message": "You are being rate limited.", "retry_after": x, "global": false}`` and
        its headers (``Retry-After``, ``X-RateLimit-Limit``, ``-Remaining: 0``, ``-Reset``,
        ``-Reset-After``, ``-Bucket``, ``-Scope``; ``-Global`` for the global limit).

        ``route``: ``"POST /channels/{channel_id}/messages"`` (the spec's template), a
        concrete ``"POST /channels/123/messages"``, or ``"*"``."""
        self._queue(route).extend(
            Failure(
                "ratelimit",
                429,
                1,
                retry_after=retry_after,
                scope=scope,
                is_global=scope == "global",
            )
            for _ in range(times)
        )

    def fail(
        self, route: str, times: int = 1, status: int = 500, *, body: bytes | None = None
    ) -> None:
        """The next ``times`` requests to ``route`` answer HTTP ``status`` (a JSON
        ``{"message": "500: Internal Server Error", "code": 0}`` for 500, the edge's HTML page
        for 502/503/504, unless ``body`` is given)."""
        self._queue(route).extend(Failure("status", status, 1, body=body) for _ in range(times))

    def error(
        self, route: str, code: int, *, times: int | None = None, message: str | None = None
    ) -> None:
        """Requests to ``route`` answer Discord's JSON error ``code`` (10003, 10008, 10015,
        50001, 50013, 50027…: status and message from :data:`ERRORS`), ``times`` times or,
        by default, until :meth:`clear_failures`."""
        status, known = ERRORS.get(code, (400, f"Error {code}"))
        self._queue(route).append(
            Failure("error", status, times, code=code, message=message or known)
        )

    def clear_failures(self, route: str | None = None) -> None:
        if route is None:
            self._failures.clear()
        else:
            self._failures.pop(route, None)

    def set_bucket(self, route: str, limit: int, per: float) -> None:
        """Requests per window for a route's buckets (one per channel, guild or webhook, as on
        Discord). The default is generous; ``set_bucket("POST /channels/{channel_id}/messages",
        5, 5.0)`` models Discord's usual message limit. Going over answers a real 429."""
        self._bucket_config[route] = (limit, per)

    def set_delay(self, route: str, seconds: float) -> None:
        """Answer ``route`` (``"*"``: any) only after ``seconds``."""
        self.delays[route] = seconds

    # ---------------------------------------------------------------- inspect

    def messages(self, channel_id: str) -> list[Message]:
        """Messages visible in a channel or thread (not deleted, not ephemeral), oldest first."""
        channel = self.channels.get(channel_id)
        if channel is None:
            return []
        found = (self.all_messages[m] for m in channel.messages)
        return [m for m in found if not m.deleted and not m.ephemeral]

    def thread_messages(self, thread_id: str) -> list[Message]:
        """Messages in a thread, oldest first (the starter message stays in the parent)."""
        thread = self.channels.get(thread_id)
        if thread is None or not thread.is_thread:
            raise KeyError(f"{thread_id} is not a thread")
        return self.messages(thread_id)

    def threads(self, channel_id: str) -> list[Channel]:
        return [c for c in self.channels.values() if c.parent_id == channel_id and not c.deleted]

    def message(self, channel_id: str, message_id: str) -> Message:
        """A message (also a deleted or ephemeral one), with its :attr:`Message.edits`."""
        message = self.all_messages.get(message_id)
        if message is None or message.channel_id != channel_id:
            raise KeyError(f"{channel_id}/{message_id}")
        return message

    def webhook_messages(self, webhook_id: str) -> list[Message]:
        return [
            m for m in self.all_messages.values() if m.webhook_id == webhook_id and not m.deleted
        ]

    def commands(self, guild_id: str | None = None) -> list[dict[str, Any]]:
        """The registered commands, global (``None``) or of a guild, as Discord returns them."""
        return copy.deepcopy(self._commands.get(guild_id, []))

    def calls_to(self, route: str) -> list[Call]:
        return [c for c in self.calls if c.route == route or f"{c.method} {c.path}" == route]

    def interaction_record(self, interaction_id: str) -> Interaction:
        return next(i for i in self.interactions if i.id == interaction_id)

    @property
    def ready_sessions(self) -> list[GatewaySession]:
        return [s for s in self.sessions.values() if s.connection is not None and s.connection.open]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 3.0) -> None:
        """Wait until ``predicate()`` holds: checked whenever the fake's state changes, and
        every 20 ms besides (for conditions on the client's side)."""
        async with asyncio.timeout(timeout):
            while not predicate():
                async with self._changed:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait(), 0.02)

    async def wait_until_ready(self, timeout: float = 5.0) -> GatewaySession:
        """Wait for an identified, connected gateway session (after READY was sent)."""
        await self.wait_for(lambda: bool(self.ready_sessions), timeout)
        return self.ready_sessions[-1]

    # ------------------------------------------------------------ interactions

    async def interaction(
        self,
        command: str,
        options: list[dict[str, Any]] | None = None,
        *,
        guild_id: str | None = None,
        channel_id: str | None = None,
        user_id: str = TEST_USER_ID,
        dm: bool = False,
        locale: str = "en-US",
        timeout: float | None = None,
        allow_unregistered: bool = False,
        subcommand: str | None = None,
    ) -> dict[str, Any]:
        """A user runs ``/command`` with ``options``: INTERACTION_CREATE (type 2) goes to the
        app, and this returns its callback body (``{"type": 4, "data": {...}}``). The record,
        with its latency, is in :attr:`interactions`. ``subcommand``: ``/command subcommand``,
        ``options`` being the subcommand's (nested in it, as Discord sends them).

        The command must be registered (for the guild, or globally) and the options must fit
        its definition, as only then can a user send it; otherwise this is a violation and
        :class:`UnknownCommand`/``ValueError`` is raised (``allow_unregistered``: send it
        anyway, as a stale client cache can)."""
        given = options or []
        if subcommand is not None:
            given = [_subcommand(subcommand, given)]
        record = self._new_interaction(
            INTERACTION_APPLICATION_COMMAND,
            command,
            given,
            guild_id=guild_id,
            channel_id=channel_id,
            user_id=user_id,
            dm=dm,
            locale=locale,
            allow_unregistered=allow_unregistered,
        )
        return await self._send_interaction(record, timeout)

    async def autocomplete(
        self,
        command: str,
        focused: str,
        value: str | int | float = "",
        options: list[dict[str, Any]] | None = None,
        *,
        guild_id: str | None = None,
        channel_id: str | None = None,
        user_id: str = TEST_USER_ID,
        dm: bool = False,
        locale: str = "en-US",
        timeout: float | None = None,
        subcommand: str | None = None,
    ) -> list[dict[str, Any]]:
        """A user types ``value`` into option ``focused``: INTERACTION_CREATE (type 4) goes to
        the app; returns the ``choices`` of its type 8 callback. ``subcommand``: an option
        of ``/command subcommand``."""
        record = self._new_interaction(
            INTERACTION_AUTOCOMPLETE,
            command,
            options or [],
            guild_id=guild_id,
            channel_id=channel_id,
            user_id=user_id,
            dm=dm,
            locale=locale,
            focused=(focused, value),
            subcommand=subcommand,
        )
        body = await self._send_interaction(record, timeout)
        data = body.get("data") or {}
        return list(data.get("choices") or [])

    async def click(
        self,
        channel_id: str,
        message_id: str,
        custom_id: str,
        *,
        user_id: str = TEST_USER_ID,
        timeout: float | None = None,
        everywhere: bool = False,
        forge: bool = False,
    ) -> dict[str, Any]:
        """A member clicks the button ``custom_id`` on a message: INTERACTION_CREATE (type 3,
        MESSAGE_COMPONENT) with the message as it is now (after its edits) goes to the app;
        returns its callback body. Only a button the message carries can be clicked (else a
        violation and ``LookupError``); ``forge``: send it anyway, as a modified client can
        (Discord does not check what a component interaction claims). ``everywhere``: to
        every connected session (replicas of one bot), as Discord does."""
        message = self.message(channel_id, message_id)
        if message.deleted:
            raise LookupError(f"message {message_id} is deleted")
        ids = [b.get("custom_id") for b in buttons_of(message.components)]
        if custom_id not in ids and not forge:
            self._violation(
                "INTERACTION_CREATE",
                [f"message {message_id} has no button {custom_id[:120]!r}"],
                {"custom_id": custom_id[:200], "buttons": ids},
            )
            raise LookupError(custom_id[:120])
        channel = self.channels[channel_id]
        guild_id = channel.guild_id
        interaction_id = self.snowflake()
        token = "aW50ZXJhY3Rpb246" + secrets.token_urlsafe(120)
        payload: dict[str, Any] = {
            "id": interaction_id,
            "application_id": APP_ID,
            "type": INTERACTION_COMPONENT,
            "data": {"custom_id": custom_id, "component_type": COMPONENT_BUTTON},
            "message": {**self._render_message(message), "guild_id": guild_id}
            if guild_id
            else self._render_message(message),
            "channel_id": channel_id,
            "channel": {
                **self._render_channel(channel),
                "permissions": str(self._member_permissions()),
            },
            "token": token,
            "version": 1,
            "app_permissions": str(self._bot_permissions(channel)),
            "locale": "en-US",
            "entitlements": [],
            "entitlement_sku_ids": [],
            "attachment_size_limit": 10 * 1024 * 1024,
        }
        if guild_id:
            payload.update(
                guild_id=guild_id,
                guild={"id": guild_id, "locale": "en-US", "features": []},
                guild_locale="en-US",
                member={
                    **self._member(user_id, self.guilds.get(guild_id)),
                    "permissions": str(self._member_permissions()),
                },
                authorizing_integration_owners={"0": guild_id},
                context=0,
            )
        else:
            payload.update(
                user=self._user(user_id), authorizing_integration_owners={"0": "0"}, context=1
            )
        record = Interaction(
            interaction_id,
            token,
            INTERACTION_COMPONENT,
            custom_id,
            guild_id,
            channel_id,
            user_id,
            payload,
            sent_at=0.0,
            message_id=message_id,
            custom_id=custom_id,
        )
        self.interactions.append(record)
        return await self._send_interaction(record, timeout, everywhere=everywhere)

    def responses(self, record: Interaction) -> list[Message]:
        """What the app answered an interaction with: the original response's message (its
        current version), then the follow-ups."""
        ids = ([record.original_id] if record.original_id else []) + record.followups
        return [self.all_messages[i] for i in ids]

    def _new_interaction(
        self,
        kind: int,
        command: str,
        options: list[dict[str, Any]],
        *,
        guild_id: str | None,
        channel_id: str | None,
        user_id: str,
        dm: bool,
        locale: str,
        allow_unregistered: bool = False,
        focused: tuple[str, Any] | None = None,
        subcommand: str | None = None,
    ) -> Interaction:
        channel: dict[str, Any]
        if dm:
            guild_id = None
            channel_id = channel_id or self.snowflake()
            channel = {
                "id": channel_id,
                "type": CHANNEL_DM,
                "last_message_id": None,
                "flags": 0,
                "recipients": [self._user(user_id)],
            }
        else:
            if channel_id is None:
                guild = self.guilds[guild_id] if guild_id else next(iter(self.guilds.values()))
                channel_id = next(c for c in guild.channels if not self.channels[c].is_thread)
            found = self.channels[channel_id]
            guild_id = guild_id or found.guild_id
            channel = {
                **self._render_channel(found),
                "permissions": str(self._member_permissions()),
            }
        registered = self._find_command(command, guild_id)
        options = copy.deepcopy(options)
        if focused is not None:
            options = [o for o in options if o.get("name") != focused[0]]
            options.append(
                {
                    "name": focused[0],
                    "type": self._option_type(registered, focused[0], subcommand),
                    "value": focused[1],
                    "focused": True,
                }
            )
            if subcommand is not None:
                options = [_subcommand(subcommand, options)]
        if registered is None:
            if not allow_unregistered:
                self._violation(
                    "INTERACTION_CREATE",
                    [f"/{command} is not registered for guild {guild_id} nor globally"],
                    {"command": command, "options": options},
                )
                raise UnknownCommand(command)
            registered = {"id": self.snowflake(), "name": command, "type": 1, "options": []}
        else:
            problems = self._option_problems(
                registered.get("options") or [], options, partial=focused is not None
            )
            if problems:
                self._violation(
                    "INTERACTION_CREATE", problems, {"command": command, "options": options}
                )
                raise ValueError("; ".join(problems))
        interaction_id = self.snowflake()
        token = "aW50ZXJhY3Rpb246" + secrets.token_urlsafe(120)
        data: dict[str, Any] = {
            "id": registered["id"],
            "name": command,
            "type": registered.get("type", 1),
        }
        if options:
            data["options"] = options
        if registered.get("guild_id"):
            data["guild_id"] = registered["guild_id"]
        user = self._user(user_id)
        payload: dict[str, Any] = {
            "id": interaction_id,
            "application_id": APP_ID,
            "type": kind,
            "data": data,
            "channel_id": channel_id,
            "channel": channel,
            "token": token,
            "version": 1,
            "app_permissions": str(self._bot_permissions(self.channels.get(channel_id or ""))),
            "locale": locale,
            "entitlements": [],
            "entitlement_sku_ids": [],
            "attachment_size_limit": 10 * 1024 * 1024,
        }
        if guild_id:
            payload.update(
                guild_id=guild_id,
                guild={"id": guild_id, "locale": "en-US", "features": []},
                guild_locale="en-US",
                member={
                    **self._member(user_id, self.guilds.get(guild_id)),
                    "permissions": str(self._member_permissions()),
                },
                authorizing_integration_owners={"0": guild_id},
                context=0,
            )
        else:
            payload.update(user=user, authorizing_integration_owners={"0": "0"}, context=1)
        record = Interaction(
            interaction_id,
            token,
            kind,
            command,
            guild_id,
            channel_id or "",
            user_id,
            payload,
            sent_at=0.0,
        )
        self.interactions.append(record)
        return record

    async def _send_interaction(
        self, record: Interaction, timeout: float | None, *, everywhere: bool = False
    ) -> dict[str, Any]:
        try:
            session = await self.wait_until_ready(timeout=5.0)
        except TimeoutError:
            raise NoGatewaySession("no client is connected and identified") from None
        loop = asyncio.get_running_loop()
        record.future = loop.create_future()
        record.sent_at = time.monotonic()
        for each in self.ready_sessions if everywhere else [session]:
            await self._dispatch(each, "INTERACTION_CREATE", copy.deepcopy(record.payload))
        limit = self.interaction_deadline if timeout is None else timeout
        try:
            return await asyncio.wait_for(asyncio.shield(record.future), limit)
        except TimeoutError:
            raise InteractionTimeout(
                f"no callback for interaction {record.id} (/{record.command}) within {limit:.1f}s"
            ) from None

    def _find_command(self, name: str, guild_id: str | None) -> dict[str, Any] | None:
        scopes: list[str | None] = [guild_id, None] if guild_id else [None]
        for scope in scopes:
            for command in self._commands.get(scope, []):
                if command["name"] == name and command.get("type", 1) == 1:
                    return command
        return None

    @staticmethod
    def _option_type(
        command: dict[str, Any] | None, name: str, subcommand: str | None = None
    ) -> int:
        options = (command or {}).get("options") or []
        if subcommand is not None:
            inner: dict[str, Any] = next((o for o in options if o.get("name") == subcommand), {})
            options = inner.get("options") or []
        for option in options:
            if option.get("name") == name:
                return int(option.get("type", 3))
        return 3

    def _option_problems(
        self, defined: list[dict[str, Any]], given: list[dict[str, Any]], *, partial: bool
    ) -> list[str]:
        by_name = {o["name"]: o for o in defined}
        problems: list[str] = []
        if any(o.get("type") in (1, 2) for o in defined):
            chosen = [o for o in given if by_name.get(o.get("name", ""), {}).get("type") in (1, 2)]
            if len(chosen) != 1 or len(given) != 1:
                problems.append("a command with subcommands runs exactly one of them")
        for option in given:
            spec = by_name.get(option.get("name", ""))
            if spec is None:
                problems.append(f"option {option.get('name')!r} is not defined")
                continue
            if option.get("type") != spec.get("type"):
                given_type, defined_type = option.get("type"), spec.get("type")
                problems.append(
                    f"option {spec['name']!r} has type {given_type}, not {defined_type}"
                )
            if spec.get("type") in (1, 2):
                problems += self._option_problems(
                    spec.get("options") or [], option.get("options") or [], partial=partial
                )
                continue
            value = option.get("value")
            expected: dict[int, type | tuple[type, ...]] = {
                3: str,
                4: int,
                5: bool,
                6: str,
                7: str,
                8: str,
                9: str,
                10: (int, float),
                11: str,
            }
            kind: type | tuple[type, ...] = expected.get(spec.get("type", 3), object)
            if not isinstance(value, kind) or (
                spec.get("type") in (4, 10) and isinstance(value, bool)
            ):
                problems.append(
                    f"option {spec['name']!r}: {value!r} does not fit type {spec.get('type')}"
                )
            if option.get("focused"):
                if not spec.get("autocomplete"):
                    problems.append(f"option {spec['name']!r} does not have autocomplete")
            elif spec.get("choices") and value not in [c["value"] for c in spec["choices"]]:
                problems.append(f"option {spec['name']!r}: {value!r} is not one of its choices")
        if not partial:
            names = {o.get("name") for o in given}
            subcommand = any(o.get("type") in (1, 2) for o in defined)
            for spec in defined:
                if spec.get("required") and spec["name"] not in names and not subcommand:
                    problems.append(f"required option {spec['name']!r} is missing")
        return problems

    # ------------------------------------------------------------ gateway API

    async def request_reconnect(self) -> None:
        """Send RECONNECT (op 7) on every open connection: clients reconnect and RESUME."""
        for session in self.ready_sessions:
            assert session.connection is not None
            await self._send(
                session.connection, {"op": OP_RECONNECT, "d": None, "s": None, "t": None}
            )

    async def drop_gateway(self, code: int = 4000) -> None:
        """Close every gateway connection from Discord's side with ``code``."""
        for conn in self.connections:
            if conn.open:
                await conn.ws.close(code=code)

    # =============================================================== internals

    def _now_ms(self) -> float:
        return self._clock() * 1000

    def snowflake(self) -> str:
        """A new Discord snowflake: milliseconds since 2015 << 22 | worker | process | n."""
        ms = max(int(self._now_ms()) - DISCORD_EPOCH_MS, self._last_ms)
        if ms == self._last_ms:
            self._increment += 1
            if self._increment >= 4096:
                ms, self._increment = ms + 1, 0
        else:
            self._increment = 0
        self._last_ms = ms
        return str(ms << 22 | 1 << 17 | 1 << 12 | self._increment)

    def _user(
        self, user_id: str, username: str | None = None, *, bot: bool = False
    ) -> dict[str, Any]:
        if user_id not in self.users:
            self.users[user_id] = {
                "id": user_id,
                "username": username or f"user{user_id[-4:]}",
                "avatar": None,
                "discriminator": "0",
                "public_flags": 0,
                "flags": 0,
                "banner": None,
                "accent_color": None,
                "global_name": None if bot else (username or f"User {user_id[-4:]}"),
                "avatar_decoration_data": None,
                "collectibles": None,
                "primary_guild": None,
                **({"bot": True} if bot else {}),
            }
        return copy.deepcopy(self.users[user_id])

    def _member(self, user_id: str, guild: Guild | None = None) -> dict[str, Any]:
        roles = [guild.bot_role_id] if guild is not None and user_id == BOT_USER_ID else []
        if guild is not None:
            roles += guild.member_roles.get(user_id, [])
        joined = guild.joined_ms if guild is not None else self._now_ms()
        return {
            "user": self._user(user_id),
            "roles": roles,
            "joined_at": _iso(joined),
            "nick": None,
            "avatar": None,
            "banner": None,
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "communication_disabled_until": None,
        }

    def _bot_permissions(self, channel: Channel | None) -> int:
        if channel is None:
            return BOT_PERMISSIONS
        source = self.channels.get(channel.parent_id or "") if channel.is_thread else channel
        source = source or channel
        perms = BOT_PERMISSIONS
        if not source.view:
            perms &= ~VIEW_CHANNEL
        if not source.send:
            perms &= ~(SEND_MESSAGES | SEND_MESSAGES_IN_THREADS)
        if not source.threads:
            perms &= ~CREATE_PUBLIC_THREADS
        if not source.mention_everyone:
            perms &= ~MENTION_EVERYONE
        return perms

    @staticmethod
    def _member_permissions() -> int:
        return MEMBER_PERMISSIONS

    def _overwrites(self, channel: Channel) -> list[dict[str, Any]]:
        denied = BOT_PERMISSIONS & ~self._bot_permissions(channel)
        if not denied or channel.is_thread:
            return []
        return [{"id": BOT_USER_ID, "type": 1, "allow": "0", "deny": str(denied)}]

    def _render_channel(self, channel: Channel, *, in_guild_create: bool = False) -> dict[str, Any]:
        last = next(
            (m for m in reversed(channel.messages) if not self.all_messages[m].deleted), None
        )
        out: dict[str, Any] = {
            "id": channel.id,
            "type": channel.type,
            "last_message_id": last,
            "flags": 0,
            "name": channel.name,
            "rate_limit_per_user": channel.rate_limit_per_user,
        }
        if not in_guild_create:
            out["guild_id"] = channel.guild_id
        if channel.is_thread:
            out.update(
                parent_id=channel.parent_id,
                owner_id=channel.owner_id,
                message_count=channel.message_count,
                member_count=1,
                total_message_sent=channel.total_message_sent,
                thread_metadata={
                    "archived": False,
                    "archive_timestamp": _iso(channel.created_ms),
                    "auto_archive_duration": channel.auto_archive_duration,
                    "locked": False,
                    "create_timestamp": _iso(channel.created_ms),
                },
                member={
                    "id": channel.id,
                    "user_id": BOT_USER_ID,
                    "join_timestamp": _iso(channel.created_ms),
                    "flags": 1,
                },
                guild_id=channel.guild_id,
            )
            return out
        out.update(
            position=channel.position,
            permission_overwrites=self._overwrites(channel),
            parent_id=None,
            topic=channel.topic,
            nsfw=False,
            default_auto_archive_duration=1440,
        )
        return out

    def _render_message(self, message: Message, *, referenced: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": message.type,
            "content": message.content,
            "mentions": [self._user(u) for u in message.mentions],
            "mention_roles": list(message.mention_roles),
            "attachments": copy.deepcopy(message.attachments),
            "embeds": copy.deepcopy(message.embeds),
            "timestamp": message.timestamp,
            "edited_timestamp": message.edited_timestamp,
            "flags": message.flags,
            "components": copy.deepcopy(message.components),
            "id": message.id,
            "channel_id": message.channel_id,
            "author": copy.deepcopy(message.author),
            "pinned": False,
            "mention_everyone": message.mention_everyone,
            "tts": message.tts,
        }
        if message.nonce is not None:
            out["nonce"] = message.nonce
        if message.webhook_id is not None:
            out["webhook_id"] = message.webhook_id
        if message.application_id is not None:
            out["application_id"] = message.application_id
        if message.message_reference is not None:
            out["message_reference"] = copy.deepcopy(message.message_reference)
            if referenced:
                target = self.all_messages.get(message.message_reference.get("message_id", ""))
                out["referenced_message"] = (
                    None
                    if target is None or target.deleted
                    else self._render_message(target, referenced=False)
                )
        if message.interaction_id is not None:
            record = self.interaction_record(message.interaction_id)
            out["interaction_metadata"] = {
                "id": record.id,
                "type": record.type,
                "name": record.command,
                "command_type": 1,
                "user": self._user(record.user_id),
                "authorizing_integration_owners": record.payload.get(
                    "authorizing_integration_owners", {}
                ),
            }
            if record.type == INTERACTION_COMPONENT:
                out["interaction_metadata"] = {
                    "id": record.id,
                    "type": record.type,
                    "user": self._user(record.user_id),
                    "authorizing_integration_owners": record.payload.get(
                        "authorizing_integration_owners", {}
                    ),
                    "interacted_message_id": record.message_id,
                }
            out["interaction"] = {
                "id": record.id,
                "type": record.type,
                "name": record.command,
                "user": self._user(record.user_id),
            }
        if message.thread_id is not None and message.thread_id in self.channels:
            out["thread"] = self._render_channel(self.channels[message.thread_id])
        channel = self.channels.get(message.channel_id)
        if channel is not None and channel.is_thread:
            out["position"] = channel.messages.index(message.id)
        return out

    async def _bump(self) -> None:
        """Wake :meth:`wait_for` waiters: the fake's state changed."""
        async with self._changed:
            self._changed.notify_all()

    def _violation(
        self,
        route: str,
        problems: list[str],
        body: Any,
        *,
        status: int = 400,
        code: int = 50035,
        errors: list[FieldError] | None = None,
    ) -> None:
        self.violations.append(
            Violation(route, problems, copy.deepcopy(body), status, code, errors_tree(errors or []))
        )

    def _queue(self, route: str) -> deque[Failure]:
        return self._failures.setdefault(route, deque())

    def _take_failure(self, route: str, concrete: str) -> Failure | None:
        for key in (route, concrete, "*"):
            queue = self._failures.get(key)
            if not queue:
                continue
            failure = queue[0]
            if failure.remaining is not None:
                failure.remaining -= 1
                if failure.remaining <= 0:
                    queue.popleft()
            return failure
        return None

    # ------------------------------------------------------------ rate limits

    def _bucket(self, op: Operation, params: dict[str, str]) -> Bucket:
        major = "+".join(
            params[k]
            for k in ("channel_id", "guild_id", "webhook_id", "webhook_token", "interaction_id")
            if k in params
        )
        limit, per = self._bucket_config.get(op.key, self._default_bucket)
        key = f"{op.key}:{major}"
        bucket = self._buckets.get(key)
        if bucket is None:
            digest = hashlib.sha1(op.key.encode(), usedforsecurity=False).hexdigest()[:32]
            bucket = self._buckets[key] = Bucket(digest, limit, per, remaining=limit)
        return bucket

    @staticmethod
    def _consume(bucket: Bucket, now: float) -> float | None:
        """Take one request from the bucket; the seconds to wait if it is exhausted."""
        if now >= bucket.reset_at:
            bucket.remaining, bucket.reset_at = bucket.limit, now + bucket.per
        if bucket.remaining <= 0:
            return bucket.reset_at - now
        bucket.remaining -= 1
        return None

    def _limit_headers(self, bucket: Bucket, now: float) -> dict[str, str]:
        after = max(0.0, bucket.reset_at - now)
        return {
            "X-RateLimit-Limit": str(bucket.limit),
            "X-RateLimit-Remaining": str(bucket.remaining),
            "X-RateLimit-Reset": f"{self._clock() + after:.3f}",
            "X-RateLimit-Reset-After": f"{after:.3f}",
            "X-RateLimit-Bucket": bucket.hash,
        }

    def _too_many(
        self, call: Call, bucket: Bucket, retry_after: float, *, scope: str, is_global: bool
    ) -> web.Response:
        headers = {
            "Retry-After": str(max(1, math.ceil(retry_after))),
            "X-RateLimit-Scope": scope,
            "Via": "1.1 google",
        }
        if is_global:
            headers["X-RateLimit-Global"] = "true"
        else:
            headers.update(
                {
                    "X-RateLimit-Limit": str(bucket.limit),
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": f"{self._clock() + retry_after:.3f}",
                    "X-RateLimit-Reset-After": f"{retry_after:.3f}",
                    "X-RateLimit-Bucket": bucket.hash,
                }
            )
        message = (
            "The resource is being rate limited."
            if scope == "shared"
            else "You are being rate limited."
        )
        body = {"message": message, "retry_after": round(retry_after, 3), "global": is_global}
        call.status, call.response = 429, body
        return _json_response(body, status=429, headers=headers)

    # ------------------------------------------------------------------- REST

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        version = request.match_info["version"]
        path = "/" + request.match_info["tail"]
        query = dict(request.query)
        raw = await request.read()
        call = Call(
            request.method,
            path,
            "",
            {},
            query,
            None,
            authorization=request.headers.get("Authorization"),
        )
        self.calls.append(call)
        try:
            body, files = await self._parse_body(request, raw)
        except _Reject as reject:
            call.route = f"{request.method} {path}"
            self._violation(
                call.route, [reject.message], raw.decode(errors="replace"), code=reject.code
            )
            return self._answer(call, reject.status, reject.body())
        call.body = copy.deepcopy(body)
        call.files = [f["filename"] for f in files]
        if version != str(API_VERSION):
            call.route = f"{request.method} {path}"
            self._violation(
                call.route, [f"API version v{version}, not v{API_VERSION}"], body, code=50041
            )
            return self._answer(call, 400, _Reject(50041).body())
        op, params, path_known = self._spec.match(request.method, path)
        if op is None:
            call.route = f"{request.method} {path}"
            if path_known:
                self._violation(
                    call.route,
                    ["method not in Discord's spec for this path"],
                    body,
                    status=405,
                    code=0,
                )
                return self._answer(call, 405, {"message": "405: Method Not Allowed", "code": 0})
            self._violation(call.route, ["path not in Discord's spec"], body, status=404, code=0)
            return self._answer(call, 404, {"message": "404: Not Found", "code": 0})
        call.route, call.params = op.key, params
        concrete = f"{op.method} {path}"
        delay = self.delays.get(op.key, self.delays.get(concrete, self.delays.get("*", 0.0)))
        if delay:
            await asyncio.sleep(delay)

        problems = self._request_errors(op, params, query, body, files)
        if problems:
            self._violation(op.key, [str(p) for p in problems], body, errors=problems)

        now = time.monotonic()
        bucket = self._bucket(op, params)
        failure = self._take_failure(op.key, concrete)
        if failure is not None:
            return self._fail(call, failure, bucket, now)
        auth = self._auth(op, call.authorization)
        if auth is not None:
            return self._answer(call, auth.status, auth.body())
        wait = self._consume(bucket, now)
        if wait is not None:
            return self._too_many(call, bucket, wait, scope="user", is_global=False)
        headers = self._limit_headers(bucket, now)
        if problems:
            return self._answer(call, 400, _Reject(50035, problems).body(), headers)
        handler = self._handlers.get(op.key)
        if handler is None:
            self.unsupported.append(call)
            return self._answer(call, 501, {"message": "fake_not_implemented", "code": 0}, headers)
        try:
            status, payload = await handler(_Ctx(op, params, query, body, files, call))
        except _Reject as reject:
            await self._bump()
            if reject.code in (50006, 50035, 40060, 160004, 220003, 50041):
                self._violation(
                    op.key,
                    [str(e) for e in reject.errors] or [reject.message],
                    body,
                    status=reject.status,
                    code=reject.code,
                    errors=reject.errors,
                )
            return self._answer(call, reject.status, reject.body(), headers)
        if 200 <= status < 300 and payload is not None:
            schema = self._spec.response_schema(op, status)
            if schema is not None:
                self.response_errors += [
                    f"{op.key} → {e}" for e in self._spec.validate(payload, schema)
                ]
        await self._bump()
        return self._answer(call, status, payload, headers)

    def _answer(
        self, call: Call, status: int, payload: Any, headers: dict[str, str] | None = None
    ) -> web.Response:
        call.status, call.response = status, payload
        headers = {"Via": "1.1 google", **(headers or {})}
        if status == 204 or payload is None:
            return web.Response(status=status if status != 200 else 204, headers=headers)
        return _json_response(payload, status=status, headers=headers)

    def _fail(self, call: Call, failure: Failure, bucket: Bucket, now: float) -> web.Response:
        if failure.kind == "ratelimit":
            return self._too_many(
                call, bucket, failure.retry_after, scope=failure.scope, is_global=failure.is_global
            )
        headers = {"Via": "1.1 google", **self._limit_headers(bucket, now)}
        call.status = failure.status
        if failure.kind == "error":
            call.response = {"message": failure.message, "code": failure.code}
            return _json_response(call.response, status=failure.status, headers=headers)
        phrase = HTTPStatus(failure.status).phrase
        if failure.body is not None:
            call.response = failure.body
            return web.Response(status=failure.status, body=failure.body, headers=headers)
        if failure.status == 500:
            call.response = {"message": "500: Internal Server Error", "code": 0}
            return _json_response(call.response, status=500, headers=headers)
        title = f"{failure.status} {phrase}"
        page = f"<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>"
        call.response = page
        return web.Response(
            status=failure.status, text=page, content_type="text/html", headers=headers
        )

    def _auth(self, op: Operation, header: str | None) -> _Reject | None:
        if header is None:
            if op.auth == "bot":
                return _Reject(0, status=401, message="401: Unauthorized")
            return None
        if (
            not header.startswith("Bot ")
            or header.removeprefix("Bot ") != self.token
            or self._revoked
        ):
            return _Reject(0, status=401, message="401: Unauthorized")
        return None

    async def _parse_body(
        self, request: web.Request, raw: bytes
    ) -> tuple[Any, list[dict[str, Any]]]:
        """JSON, a form, or ``multipart/form-data`` (``payload_json`` and ``files[n]``)."""
        if not raw:
            return None, []
        kind = request.content_type
        if kind == "application/json":
            try:
                return json.loads(raw), []
            except ValueError as exc:
                raise _Reject(50109) from exc
        if kind == "application/x-www-form-urlencoded":
            return dict(parse_qsl(raw.decode(errors="replace"))), []
        if kind == "multipart/form-data":
            header = request.headers["Content-Type"].encode()
            parsed = BytesParser(policy=email.policy.HTTP).parsebytes(
                b"Content-Type: " + header + b"\r\n\r\n" + raw
            )
            if not isinstance(parsed, EmailMessage) or not parsed.is_multipart():
                raise _Reject(0, message="400: Bad Request (malformed multipart body)")
            body: Any = None
            files: list[dict[str, Any]] = []
            for part in parsed.iter_parts():
                name = part.get_param("name", header="content-disposition")
                data = part.get_payload(decode=True)
                data = data if isinstance(data, bytes) else b""
                filename = part.get_filename()
                if name == "payload_json":
                    try:
                        body = json.loads(data)
                    except ValueError as exc:
                        raise _Reject(50109) from exc
                elif filename is not None:
                    files.append(
                        {
                            "field": name,
                            "filename": filename,
                            "size": len(data),
                            "content_type": part.get_content_type(),
                        }
                    )
                elif isinstance(name, str):
                    body = body if isinstance(body, dict) else {}
                    body[name] = data.decode(errors="replace")
            return body, files
        # Reference, "Content Type": anything else is 50035 Invalid Form Body.
        raise _Reject(50035)

    def _request_errors(
        self,
        op: Operation,
        params: dict[str, str],
        query: dict[str, str],
        body: Any,
        files: list[dict[str, Any]],
    ) -> list[FieldError]:
        out: list[FieldError] = []
        for name, schema in op.path_params.items():
            if name in params:
                out += self._spec.validate(params[name], schema, (name,))
        out += self._spec.query_errors(op, query)
        # A missing required body is validated as an empty one (a thread without a name is
        # BASE_TYPE_REQUIRED); an empty message is left to the handler's 50006.
        wanted = body is not None or (op.body_required and op.key not in _MESSAGE_ROUTES)
        if op.body_schema is not None and wanted:
            out += self._spec.validate({} if body is None else body, op.body_schema)
        if isinstance(body, dict):
            if op.key in _MESSAGE_ROUTES:
                out += content_errors(body)
            elif op.key.startswith("POST /interactions/") and isinstance(body.get("data"), dict):
                out += [
                    FieldError(("data", *e.path), e.code, e.message)
                    for e in content_errors(body["data"])
                ]
        if op.key in _COMMAND_ROUTES:
            out += command_errors(body)
        return out

    # ------------------------------------------------------------ state helpers

    def _channel(self, channel_id: str, need: Literal["send", "threads"] | None = None) -> Channel:
        """The channel as the bot may use it: 10003 if unknown, 50001 without VIEW_CHANNEL,
        50013 without the permission ``need`` asks for."""
        channel = self.channels.get(channel_id)
        if (
            channel is None
            or channel.deleted
            or (channel.guild_id and channel.guild_id not in self.guilds)
        ):
            raise _Reject(10003)
        perms = self._bot_permissions(channel)
        if not perms & VIEW_CHANNEL:
            raise _Reject(50001)
        needed = 0
        if need == "send":
            needed = SEND_MESSAGES_IN_THREADS if channel.is_thread else SEND_MESSAGES
        elif need == "threads":
            needed = CREATE_PUBLIC_THREADS
        if needed and not perms & needed:
            raise _Reject(50013)
        return channel

    def _find(self, channel: Channel, message_id: str) -> Message:
        message = self.all_messages.get(message_id)
        if message is None or message.deleted or message.channel_id != channel.id:
            raise _Reject(10008)
        return message

    @staticmethod
    def _normalize_embed(embed: dict[str, Any]) -> dict[str, Any]:
        """As Discord stores it: ``type`` rich, text trimmed (docs: "Leading and trailing
        whitespace characters are not included (they are trimmed automatically)")."""
        out = {k: copy.deepcopy(v) for k, v in embed.items() if v is not None}
        out["type"] = "rich"
        for key in ("title", "description"):
            if isinstance(out.get(key), str):
                out[key] = out[key].strip()
        for item in out.get("fields") or []:
            if isinstance(item, dict):
                for key in ("name", "value"):
                    if isinstance(item.get(key), str):
                        item[key] = item[key].strip()
                item.setdefault("inline", False)
        for part, key in (("author", "name"), ("footer", "text")):
            sub = out.get(part)
            if isinstance(sub, dict) and isinstance(sub.get(key), str):
                sub[key] = sub[key].strip()
        return out

    @staticmethod
    def _mentions(
        content: str, allowed: Any, reply_author: str | None, *, can_everyone: bool
    ) -> tuple[list[str], list[str], bool]:
        """Who a message pings, by Discord's allowed-mentions rules (message.mdx, "Allowed
        Mentions Reference"); @everyone/@here also need MENTION_EVERYONE."""
        users_in = list(dict.fromkeys(USER_MENTION.findall(content)))
        roles_in = list(dict.fromkeys(ROLE_MENTION.findall(content)))
        everyone_in = bool(EVERYONE_MENTION.search(content))
        if not isinstance(allowed, dict):
            users, roles, everyone, replied = users_in, roles_in, everyone_in, True
        else:
            parse = set(allowed.get("parse") or [])
            named_users = {str(u) for u in allowed.get("users") or []}
            named_roles = {str(r) for r in allowed.get("roles") or []}
            users = [u for u in users_in if "users" in parse or u in named_users]
            roles = [r for r in roles_in if "roles" in parse or r in named_roles]
            everyone = everyone_in and "everyone" in parse
            replied = bool(allowed.get("replied_user"))
        if reply_author is not None and replied and reply_author not in users:
            users.append(reply_author)
        return users, roles, everyone and can_everyone

    def _reference(self, channel: Channel, ref: Any) -> dict[str, Any] | None:
        if not isinstance(ref, dict):
            return None
        message_id = str(ref.get("message_id"))
        target = self.all_messages.get(message_id)
        wanted_channel = str(ref.get("channel_id") or channel.id)
        if (
            target is None
            or target.deleted
            or target.channel_id != wanted_channel
            or wanted_channel != channel.id
        ):
            if ref.get("fail_if_not_exists") is False:
                return None
            raise _Reject(
                50035,
                [FieldError(("message_reference",), "REPLIES_UNKNOWN_MESSAGE", "Unknown message")],
            )
        out: dict[str, Any] = {"type": 0, "channel_id": channel.id, "message_id": message_id}
        if channel.guild_id:
            out["guild_id"] = channel.guild_id
        return out

    def _attachments(self, channel: Channel, files: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for item in files:
            attachment_id = self.snowflake()
            url = f"{self.url}/attachments/{channel.id}/{attachment_id}/{item['filename']}"
            out.append(
                {
                    "id": attachment_id,
                    "filename": item["filename"],
                    "size": item["size"],
                    "url": url,
                    "proxy_url": url,
                    "content_type": item["content_type"],
                }
            )
        return out

    def _new_message(
        self,
        channel: Channel,
        author: dict[str, Any],
        body: dict[str, Any],
        files: list[dict[str, Any]],
        *,
        reference: dict[str, Any] | None = None,
        webhook_id: str | None = None,
        application_id: str | None = None,
        interaction: Interaction | None = None,
        kind: int | None = None,
        flags: int | None = None,
    ) -> Message:
        message_id = self.snowflake()
        content = body.get("content") or ""
        reply_author = None
        if reference is not None:
            reply_author = self.all_messages[reference["message_id"]].author["id"]
        can_everyone = webhook_id is not None or bool(
            self._bot_permissions(channel) & MENTION_EVERYONE
        )
        users, roles, everyone = self._mentions(
            content, body.get("allowed_mentions"), reply_author, can_everyone=can_everyone
        )
        message = Message(
            id=message_id,
            channel_id=channel.id,
            guild_id=channel.guild_id,
            author=copy.deepcopy(author),
            content=content,
            embeds=[
                self._normalize_embed(e) for e in body.get("embeds") or [] if isinstance(e, dict)
            ],
            timestamp=_iso(snowflake_time(message_id) * 1000),
            type=kind if kind is not None else (MESSAGE_REPLY if reference else MESSAGE_DEFAULT),
            flags=int(body.get("flags") or 0) if flags is None else flags,
            tts=bool(body.get("tts")),
            components=_numbered(body.get("components")),
            attachments=self._attachments(channel, files),
            mentions=users,
            mention_roles=roles,
            mention_everyone=everyone,
            allowed_mentions=copy.deepcopy(body.get("allowed_mentions")),
            message_reference=reference,
            webhook_id=webhook_id,
            application_id=application_id,
            interaction_id=interaction.id if interaction is not None else None,
        )
        self.all_messages[message_id] = message
        channel.messages.append(message_id)
        if channel.is_thread:
            channel.message_count += 1
            channel.total_message_sent += 1
        return message

    def _apply_edit(
        self, message: Message, body: dict[str, Any], files: list[dict[str, Any]]
    ) -> None:
        """Fields left out keep their value; ``null`` clears (message.mdx, Edit Message: "All
        parameters to this endpoint are optional and nullable"). Mentions are recomputed
        from edited content, with default allowances unless the edit says otherwise."""
        before = Edit(
            time.monotonic(),
            message.edited_timestamp or message.timestamp,
            message.content,
            copy.deepcopy(message.embeds),
            message.flags,
            copy.deepcopy(message.components),
            copy.deepcopy(body),
        )
        state = (
            message.content,
            message.embeds,
            message.components,
            message.flags,
            message.attachments,
        )
        if "content" in body:
            message.content = body["content"] or ""
        if "embeds" in body:
            message.embeds = [
                self._normalize_embed(e) for e in body["embeds"] or [] if isinstance(e, dict)
            ]
        if "components" in body:
            message.components = _numbered(body["components"])
        if "flags" in body and body["flags"] is not None:
            editable = 1 << 2 | 1 << 15  # SUPPRESS_EMBEDS, IS_COMPONENTS_V2
            message.flags = (message.flags & ~editable) | (int(body["flags"]) & editable)
        if "attachments" in body:
            kept = {str(a.get("id")) for a in body["attachments"] or [] if isinstance(a, dict)}
            message.attachments = [a for a in message.attachments if a["id"] in kept]
        if files:
            channel = self.channels[message.channel_id]
            message.attachments += self._attachments(channel, files)
        message.flags &= ~FLAG_LOADING
        if is_empty_message(
            {
                "content": message.content,
                "embeds": message.embeds,
                "components": message.components,
            },
            files=len(message.attachments),
        ):
            (
                message.content,
                message.embeds,
                message.components,
                message.flags,
                message.attachments,
            ) = state
            raise _Reject(50006)
        if "content" in body:
            channel = self.channels[message.channel_id]
            can_everyone = message.webhook_id is not None or bool(
                self._bot_permissions(channel) & MENTION_EVERYONE
            )
            reply_author = None
            if message.message_reference is not None:
                target = self.all_messages.get(message.message_reference["message_id"])
                reply_author = target.author["id"] if target is not None else None
            message.mentions, message.mention_roles, message.mention_everyone = self._mentions(
                message.content,
                body.get("allowed_mentions"),
                reply_author,
                can_everyone=can_everyone,
            )
        message.edits.append(before)
        message.edited_timestamp = _iso(self._now_ms())

    # ------------------------------------------------------------ handlers: app

    async def _get_me(self, ctx: _Ctx) -> tuple[int, Any]:
        me = self._user(BOT_USER_ID)
        me.update(mfa_enabled=True, locale="en-US", premium_type=0, email=None, verified=True)
        return 200, me

    async def _get_gateway(self, ctx: _Ctx) -> tuple[int, Any]:
        return 200, {"url": self.gateway_url}

    async def _get_gateway_bot(self, ctx: _Ctx) -> tuple[int, Any]:
        return 200, {
            "url": self.gateway_url,
            "shards": 1,
            "session_start_limit": {
                "total": 1000,
                "remaining": max(0, 1000 - self._session_starts),
                "reset_after": 86_400_000,
                "max_concurrency": 1,
            },
        }

    def _app_flags(self) -> int:
        """Application flags: the gateway intents it may use (LIMITED: not yet verified)."""
        flags = 1 << 23  # APPLICATION_COMMAND_BADGE
        flags |= 1 << 19 if self.privileged_intents & INTENT_MESSAGE_CONTENT else 0
        flags |= 1 << 15 if self.privileged_intents & INTENT_GUILD_MEMBERS else 0
        flags |= 1 << 13 if self.privileged_intents & INTENT_GUILD_PRESENCES else 0
        return flags

    async def _get_application(self, ctx: _Ctx) -> tuple[int, Any]:
        owner = self._user(OWNER_ID)
        return 200, {
            "id": APP_ID,
            "name": BOT_USERNAME,
            "icon": None,
            "description": "AI-provider outage notices (fake Discord)",
            "type": None,
            "bot": self._user(BOT_USER_ID),
            "bot_public": False,
            "bot_require_code_grant": False,
            "verify_key": hashlib.sha256(APP_ID.encode()).hexdigest(),
            "flags": self._app_flags(),
            "flags_new": str(self._app_flags()),
            "redirect_uris": [],
            "interactions_endpoint_url": None,
            "role_connections_verification_url": None,
            "owner": owner,
            "approximate_guild_count": len(self.guilds),
            "approximate_user_install_count": 0,
            "approximate_user_authorization_count": 0,
            "explicit_content_filter": 0,
            "team": None,
            "eligible_oauth2_scopes": ["bot", "applications.commands"],
            "rpc_origins": [],
            "summary": "",
            "install_params": {
                "scopes": ["bot", "applications.commands"],
                "permissions": str(BOT_PERMISSIONS),
            },
            "integration_types_config": {"0": {}},
            "tags": [],
        }

    # -------------------------------------------------------- handlers: channels

    async def _get_channel(self, ctx: _Ctx) -> tuple[int, Any]:
        return 200, self._render_channel(self._channel(ctx.params["channel_id"]))

    async def _list_messages(self, ctx: _Ctx) -> tuple[int, Any]:
        channel = self._channel(ctx.params["channel_id"])
        given = [k for k in ("around", "before", "after") if k in ctx.query]
        if len(given) > 1:
            raise _Reject(
                50035,
                [
                    FieldError(
                        (given[1],),
                        "QUERY_PARAMS_EXCLUSIVE",
                        "before, after and around are mutually exclusive",
                    )
                ],
            )
        limit = int(ctx.query.get("limit", "50"))
        visible = self.messages(channel.id)
        if "before" in ctx.query:
            pivot = int(ctx.query["before"])
            chosen = [m for m in visible if int(m.id) < pivot][-limit:]
        elif "after" in ctx.query:
            pivot = int(ctx.query["after"])
            chosen = [m for m in visible if int(m.id) > pivot][:limit]
        elif "around" in ctx.query:
            pivot = int(ctx.query["around"])
            older = (
                [m for m in visible if int(m.id) < pivot][-(limit // 2) or len(visible) :]
                if limit > 1
                else []
            )
            newer = [m for m in visible if int(m.id) >= pivot][: limit - len(older)]
            chosen = older + newer
        else:
            chosen = visible[-limit:]
        return 200, [self._render_message(m) for m in reversed(chosen)]

    async def _get_message(self, ctx: _Ctx) -> tuple[int, Any]:
        channel = self._channel(ctx.params["channel_id"])
        return 200, self._render_message(self._find(channel, ctx.params["message_id"]))

    async def _create_message(self, ctx: _Ctx) -> tuple[int, Any]:
        channel = self._channel(ctx.params["channel_id"], need="send")
        body = ctx.body if isinstance(ctx.body, dict) else {}
        if is_empty_message(body, files=len(ctx.files)):
            raise _Reject(50006)
        nonce = body.get("nonce")
        key = (channel.id, BOT_USER_ID, str(nonce))
        if nonce is not None and body.get("enforce_nonce"):
            seen = self._nonces.get(key)
            if seen is not None and self._clock() - seen[0] < self.nonce_ttl:
                existing = self.all_messages[seen[1]]
                if existing.deleted:
                    raise _Reject(10008)
                return 200, self._render_message(existing)
        reference = self._reference(channel, body.get("message_reference"))
        message = self._new_message(channel, self.bot_user, body, ctx.files, reference=reference)
        message.nonce = nonce
        if nonce is not None and body.get("enforce_nonce"):
            self._nonces[key] = (self._clock(), message.id)
        await self._message_event("MESSAGE_CREATE", message)
        return 200, self._render_message(message)

    async def _edit_message(self, ctx: _Ctx) -> tuple[int, Any]:
        channel = self._channel(ctx.params["channel_id"])
        message = self._find(channel, ctx.params["message_id"])
        if message.author["id"] != BOT_USER_ID or message.webhook_id is not None:
            raise _Reject(50005)
        self._apply_edit(message, ctx.body if isinstance(ctx.body, dict) else {}, ctx.files)
        await self._message_event("MESSAGE_UPDATE", message)
        return 200, self._render_message(message)

    async def _delete_message(self, ctx: _Ctx) -> tuple[int, Any]:
        channel = self._channel(ctx.params["channel_id"])
        message = self._find(channel, ctx.params["message_id"])
        if message.author["id"] != BOT_USER_ID:
            raise _Reject(50013)
        message.deleted = True
        await self._message_event("MESSAGE_DELETE", message)
        return 204, None

    async def _start_thread(self, ctx: _Ctx) -> tuple[int, Any]:
        channel = self._channel(ctx.params["channel_id"], need="threads")
        if channel.type not in (CHANNEL_GUILD_TEXT, CHANNEL_GUILD_ANNOUNCEMENT):
            raise _Reject(50024)
        message = self._find(channel, ctx.params["message_id"])
        if message.thread_id is not None:
            raise _Reject(160004)
        body = ctx.body if isinstance(ctx.body, dict) else {}
        thread = Channel(
            message.id,
            channel.guild_id,
            str(body.get("name") or "thread"),
            type=10 if channel.type == CHANNEL_GUILD_ANNOUNCEMENT else CHANNEL_PUBLIC_THREAD,
            parent_id=channel.id,
            owner_id=BOT_USER_ID,
            auto_archive_duration=int(body.get("auto_archive_duration") or 1440),
            rate_limit_per_user=int(body.get("rate_limit_per_user") or 0),
            created_ms=self._now_ms(),
        )
        self.channels[thread.id] = thread
        message.thread_id = thread.id
        message.flags |= FLAG_HAS_THREAD
        await self._broadcast(
            "THREAD_CREATE",
            {**self._render_channel(thread), "newly_created": True},
            thread.guild_id,
            INTENT_GUILDS,
        )
        return 201, self._render_channel(thread)

    # -------------------------------------------------------- handlers: commands

    def _command_scope(self, ctx: _Ctx) -> str | None:
        if ctx.params["application_id"] != APP_ID:
            raise _Reject(50001)
        guild_id = ctx.params.get("guild_id")
        if guild_id is not None and guild_id not in self.guilds:
            raise _Reject(50001)  # not in the guild, or no applications.commands scope there
        return guild_id

    async def _get_commands(self, ctx: _Ctx) -> tuple[int, Any]:
        return 200, self.commands(self._command_scope(ctx))

    async def _put_commands(self, ctx: _Ctx) -> tuple[int, Any]:
        """Bulk overwrite: the scope's commands become exactly these. A command keeps its id
        when one of the same name and type existed (docs: "Commands that do not already
        exist will count toward daily application command create limits")."""
        scope = self._command_scope(ctx)
        stored: list[dict[str, Any]] = []
        for given in ctx.body or []:
            kind = int(given.get("type") or 1)
            name = given["name"]
            command_id = self._command_ids.get((scope, kind, name)) or self.snowflake()
            self._command_ids[(scope, kind, name)] = command_id
            permissions = given.get("default_member_permissions")
            command: dict[str, Any] = {
                "id": command_id,
                "application_id": APP_ID,
                "version": self.snowflake(),
                "default_member_permissions": None if permissions is None else str(permissions),
                "type": kind,
                "name": name,
                "description": given.get("description") or "",
                "nsfw": bool(given.get("nsfw")),
                "name_localizations": given.get("name_localizations") or None,
                "description_localizations": given.get("description_localizations") or None,
                "contexts": given.get("contexts"),
                "integration_types": given.get("integration_types") or [0],
            }
            if given.get("options"):
                command["options"] = copy.deepcopy(given["options"])
            if scope is not None:
                command["guild_id"] = scope
            else:
                command["dm_permission"] = given.get("dm_permission", True) is not False
            stored.append(command)
        self._commands[scope] = stored
        return 200, copy.deepcopy(stored)

    # ---------------------------------------------------- handlers: interactions

    def _interaction_channel(self, record: Interaction) -> Channel:
        channel = self.channels.get(record.channel_id)
        if channel is None:  # a DM with the user
            channel = Channel(
                record.channel_id, None, "dm", type=CHANNEL_DM, created_ms=self._now_ms()
            )
            self.channels[channel.id] = channel
        return channel

    async def _callback(self, ctx: _Ctx) -> tuple[int, Any]:
        record = next((i for i in self.interactions if i.id == ctx.params["interaction_id"]), None)
        if record is None or not secrets.compare_digest(
            record.token, ctx.params["interaction_token"]
        ):
            raise _Reject(10062)
        now = time.monotonic()
        body = ctx.body if isinstance(ctx.body, dict) else {}
        if record.acknowledged:
            record.refused.append(copy.deepcopy(body))
            raise _Reject(40060)
        if record.callback is None and now - record.sent_at > self.interaction_deadline:
            record.late, record.callback, record.latency = (
                True,
                copy.deepcopy(body),
                now - record.sent_at,
            )
            raise _Reject(10062)
        if record.late:
            raise _Reject(10062)
        kind = body.get("type")
        allowed = CALLBACKS_FOR.get(record.type, frozenset())
        if kind not in allowed:
            raise _Reject(
                50035,
                [
                    FieldError(
                        ("type",),
                        "BASE_TYPE_CHOICES",
                        f"Value must be one of {tuple(sorted(allowed))!r}.",
                    )
                ],
            )
        data = body.get("data") if isinstance(body.get("data"), dict) else {}
        assert isinstance(data, dict)
        if kind == CALLBACK_MESSAGE and is_empty_message(data, files=len(ctx.files)):
            raise _Reject(50006)
        if kind == CALLBACK_AUTOCOMPLETE:
            self._check_choices(record, data)
        message: Message | None = None
        if kind == CALLBACK_UPDATE and record.message_id is not None:
            clicked = self.all_messages[record.message_id]
            self._apply_edit(clicked, data, ctx.files)
            await self._message_event("MESSAGE_UPDATE", clicked)
        if kind in (CALLBACK_MESSAGE, CALLBACK_DEFERRED):
            flags = int(data.get("flags") or 0) & (FLAG_EPHEMERAL | 1 << 2 | 1 << 12)
            if kind == CALLBACK_DEFERRED:
                flags |= FLAG_LOADING
            message = self._new_message(
                self._interaction_channel(record),
                self.bot_user,
                data if kind == CALLBACK_MESSAGE else {},
                ctx.files if kind == CALLBACK_MESSAGE else [],
                webhook_id=APP_ID,
                application_id=APP_ID,
                interaction=record,
                kind=MESSAGE_CHAT_INPUT_COMMAND
                if record.type != INTERACTION_COMPONENT
                else MESSAGE_DEFAULT,
                flags=flags,
            )
            record.original_id = message.id
            await self._message_event("MESSAGE_CREATE", message)
        record.callback, record.latency = copy.deepcopy(body), now - record.sent_at
        if record.future is not None and not record.future.done():
            record.future.set_result(copy.deepcopy(body))
        if not _truthy(ctx.query.get("with_response")):
            return 204, None
        answer: dict[str, Any] = {"interaction": {"id": record.id, "type": record.type}}
        if message is not None:
            answer["interaction"].update(
                response_message_id=message.id,
                response_message_loading=kind == CALLBACK_DEFERRED,
                response_message_ephemeral=message.ephemeral,
            )
            if kind == CALLBACK_MESSAGE:  # the spec's resource has no variant for type 5
                answer["resource"] = {"type": kind, "message": self._render_message(message)}
        return 200, answer

    def _check_choices(self, record: Interaction, data: dict[str, Any]) -> None:
        focused = _focused(record.payload["data"].get("options", []))
        kind = (focused or {}).get("type", 3)
        types: dict[int, type | tuple[type, ...]] = {4: int, 10: (int, float)}
        expected = types.get(kind, str)
        bad = [
            FieldError(
                ("data", "choices", i, "value"),
                "BASE_TYPE_CHOICES",
                f"Choice value does not fit option type {kind}.",
            )
            for i, choice in enumerate(data.get("choices") or [])
            if isinstance(choice, dict)
            and (
                not isinstance(choice.get("value"), expected)
                or isinstance(choice.get("value"), bool)
            )
        ]
        if bad:
            raise _Reject(50035, bad)

    # -------------------------------------------------------- handlers: webhooks

    def _hook(self, ctx: _Ctx) -> tuple[Webhook | None, Interaction | None]:
        """A webhook, or an interaction (``/webhooks/{application_id}/{interaction token}``)."""
        webhook_id, token = ctx.params["webhook_id"], ctx.params["webhook_token"]
        if webhook_id == APP_ID:
            record = next((i for i in self.interactions if i.token == token), None)
            if record is None or not record.acknowledged:
                raise _Reject(10015)
            if time.monotonic() - record.sent_at > INTERACTION_TOKEN_TTL:
                raise _Reject(50027)
            return None, record
        hook = self.webhooks.get(webhook_id)
        if hook is None or hook.deleted:
            raise _Reject(10015)
        if not secrets.compare_digest(hook.token, token):
            raise _Reject(50027)
        return hook, None

    def _render_webhook(self, hook: Webhook) -> dict[str, Any]:
        return {
            "application_id": None,
            "avatar": None,
            "channel_id": hook.channel_id,
            "guild_id": hook.guild_id,
            "id": hook.id,
            "name": hook.name,
            "type": 1,
            "token": hook.token,
            "url": hook.discord_url,
        }

    async def _get_webhook(self, ctx: _Ctx) -> tuple[int, Any]:
        hook, _ = self._hook(ctx)
        if hook is None:
            raise _Reject(10015)
        return 200, self._render_webhook(hook)

    async def _execute_webhook(self, ctx: _Ctx) -> tuple[int, Any]:
        hook, record = self._hook(ctx)
        body = ctx.body if isinstance(ctx.body, dict) else {}
        if is_empty_message(body, files=len(ctx.files)):
            raise _Reject(50006)
        if record is not None:  # an interaction follow-up
            channel = self._interaction_channel(record)
            flags = int(body.get("flags") or 0) & (FLAG_EPHEMERAL | 1 << 2 | 1 << 12)
            message = self._new_message(
                channel,
                self.bot_user,
                body,
                ctx.files,
                webhook_id=APP_ID,
                application_id=APP_ID,
                interaction=record,
                flags=flags,
            )
            record.followups.append(message.id)
        else:
            assert hook is not None
            channel = self.channels.get(hook.channel_id) or Channel(hook.channel_id, None, "?")
            if channel.deleted or channel.id not in self.channels:
                raise _Reject(10003)
            thread_id = ctx.query.get("thread_id")
            if thread_id:
                thread = self.channels.get(thread_id)
                if thread is None or thread.deleted or thread.parent_id != channel.id:
                    raise _Reject(10003)
                channel = thread
            if body.get("thread_name") and channel.type != CHANNEL_GUILD_FORUM:
                raise _Reject(220003)
            if interactive(body.get("components")):
                raise _Reject(
                    50035,
                    [
                        FieldError(
                            ("components",),
                            "COMPONENT_INTERACTIVE_REQUIRES_APPLICATION_WEBHOOK",
                            "Interactive components need an application-owned webhook",
                        )
                    ],
                )
            author = {
                **self._user(hook.id, hook.name, bot=True),
                "username": body.get("username") or hook.name,
                "discriminator": "0000",
            }
            author.pop("banner", None)
            message = self._new_message(
                channel,
                author,
                body,
                ctx.files,
                webhook_id=hook.id,
                flags=int(body.get("flags") or 0) & (1 << 2 | 1 << 12),
            )
        await self._message_event("MESSAGE_CREATE", message)
        if _truthy(ctx.query.get("wait")):
            return 200, self._render_message(message)
        return 204, None

    def _webhook_target(self, ctx: _Ctx) -> Message:
        hook, record = self._hook(ctx)
        message_id = ctx.params.get("message_id")
        if message_id is None:  # @original
            if record is None or record.original_id is None:
                raise _Reject(10008)
            message_id = record.original_id
        message = self.all_messages.get(message_id)
        owner = hook.id if hook is not None else APP_ID
        if message is None or message.deleted or message.webhook_id != owner:
            raise _Reject(10008)
        if record is not None and message.interaction_id != record.id:
            raise _Reject(10008)
        channel = self.channels.get(message.channel_id)
        thread_id = ctx.query.get("thread_id")
        in_thread = channel is not None and channel.is_thread and record is None
        if (in_thread and thread_id != message.channel_id) or (thread_id and not in_thread):
            raise _Reject(10008)  # a webhook message in a thread is only found with thread_id
        return message

    async def _get_wh_message(self, ctx: _Ctx) -> tuple[int, Any]:
        return 200, self._render_message(self._webhook_target(ctx))

    async def _edit_wh_message(self, ctx: _Ctx) -> tuple[int, Any]:
        message = self._webhook_target(ctx)
        self._apply_edit(message, ctx.body if isinstance(ctx.body, dict) else {}, ctx.files)
        await self._message_event("MESSAGE_UPDATE", message)
        return 200, self._render_message(message)

    async def _delete_wh_message(self, ctx: _Ctx) -> tuple[int, Any]:
        message = self._webhook_target(ctx)
        message.deleted = True
        await self._message_event("MESSAGE_DELETE", message)
        return 204, None

    # ================================================================ gateway

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=4 * 1024 * 1024)
        await ws.prepare(request)
        conn = GatewayConnection(
            next(self._conn_ids),
            ws,
            request.query.get("compress"),
            request.query.get("encoding", "json"),
            request.query.get("v", ""),
        )
        self.connections.append(conn)
        try:
            if conn.version != str(API_VERSION):
                await self._close(conn, CLOSE_INVALID_API_VERSION, "Invalid API version.")
                return ws
            if conn.encoding != "json":
                self._violation(
                    "GATEWAY",
                    [f"encoding={conn.encoding}: the fake speaks json only"],
                    dict(request.query),
                )
                await self._close(conn, CLOSE_DECODE_ERROR, "Error while decoding payload.")
                return ws
            if conn.compress not in (None, "zlib-stream"):
                self._violation(
                    "GATEWAY",
                    [f"compress={conn.compress}: the fake does zlib-stream only"],
                    dict(request.query),
                )
                await self._close(conn, CLOSE_DECODE_ERROR, "Error while decoding payload.")
                return ws
            if conn.compress == "zlib-stream":
                conn.compressor = zlib.compressobj()
            hello = {
                "heartbeat_interval": self.heartbeat_interval_ms,
                "_trace": ['["gateway-fake",{"micros":0.0}]'],
            }
            await self._send(conn, {"op": OP_HELLO, "d": hello, "s": None, "t": None})
            async for frame in ws:
                if frame.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    data = (
                        frame.data
                        if isinstance(frame.data, str)
                        else frame.data.decode(errors="replace")
                    )
                    await self._on_frame(conn, data)
                elif frame.type == WSMsgType.ERROR:
                    break
        except ConnectionResetError:
            pass
        finally:
            conn.closed_at = time.monotonic()
            conn.close_code = conn.close_code or ws.close_code
            if conn.session is not None and conn.session.connection is conn:
                conn.session.connection = None
            await self._bump()
        return ws

    async def _close(self, conn: GatewayConnection, code: int, reason: str) -> None:
        conn.close_code = code
        await conn.ws.close(code=code, message=reason.encode())

    async def _send(self, conn: GatewayConnection, payload: dict[str, Any]) -> None:
        """One gateway message: JSON text, or with zlib-stream a binary frame from the
        connection's single compressor, each flushed with Z_SYNC_FLUSH (gateway.md,
        "Transport Compression")."""
        data = json.dumps(payload, separators=(",", ":"))
        async with conn.lock:
            if not conn.open:
                return
            try:
                if conn.compressor is not None:
                    chunk = conn.compressor.compress(data.encode()) + conn.compressor.flush(
                        zlib.Z_SYNC_FLUSH
                    )
                    await conn.ws.send_bytes(chunk)
                else:
                    await conn.ws.send_str(data)
            except ConnectionResetError:
                return
        conn.sent.append(payload)

    async def _on_frame(self, conn: GatewayConnection, data: str) -> None:
        try:
            payload = json.loads(data)
        except ValueError:
            await self._close(conn, CLOSE_DECODE_ERROR, "Error while decoding payload.")
            return
        if not isinstance(payload, dict) or not isinstance(payload.get("op"), int):
            await self._close(conn, CLOSE_DECODE_ERROR, "Error while decoding payload.")
            return
        conn.received.append(payload)
        op, d = payload["op"], payload.get("d")
        if op == OP_HEARTBEAT:
            conn.heartbeats.append(time.monotonic())
            await self._send(conn, {"op": OP_HEARTBEAT_ACK, "d": None, "s": None, "t": None})
        elif op == OP_IDENTIFY:
            await self._identify(conn, d)
        elif op == OP_RESUME:
            await self._resume(conn, d)
        elif conn.session is None:
            await self._close(conn, CLOSE_NOT_AUTHENTICATED, "Not authenticated.")
        elif op == OP_REQUEST_MEMBERS and isinstance(d, dict):
            await self._members_chunk(conn.session, d)
        elif op in (OP_PRESENCE, OP_VOICE):
            pass  # recorded in conn.received
        else:
            await self._close(conn, CLOSE_UNKNOWN_OPCODE, "Unknown opcode.")

    @staticmethod
    def _on_shard(guild_id: str, shard: list[int] | None) -> bool:
        """docs/topics/gateway "Sharding Formula": (guild_id >> 22) % num_shards."""
        return shard is None or (int(guild_id) >> 22) % shard[1] == shard[0]

    async def _identify(self, conn: GatewayConnection, d: Any) -> None:
        if conn.session is not None:
            await self._close(conn, CLOSE_ALREADY_AUTHENTICATED, "Already authenticated.")
            return
        if not isinstance(d, dict):
            await self._close(conn, CLOSE_DECODE_ERROR, "Error while decoding payload.")
            return
        if d.get("token") != self.token or self._revoked:
            await self._close(conn, CLOSE_AUTHENTICATION_FAILED, "Authentication failed.")
            return
        intents = d.get("intents")
        if (
            not isinstance(intents, int)
            or isinstance(intents, bool)
            or intents < 0
            or intents & ~VALID_INTENTS
        ):
            await self._close(conn, CLOSE_INVALID_INTENTS, "Invalid intent(s).")
            return
        if intents & PRIVILEGED_INTENTS & ~self.privileged_intents:
            await self._close(conn, CLOSE_DISALLOWED_INTENTS, "Disallowed intent(s).")
            return
        shard = d.get("shard")
        if shard is not None and not (
            isinstance(shard, list)
            and len(shard) == 2
            and all(isinstance(x, int) for x in shard)
            and 0 <= shard[0] < shard[1]
        ):
            await self._close(conn, CLOSE_INVALID_SHARD, "Invalid shard.")
            return
        session = GatewaySession(secrets.token_hex(16), intents, shard, copy.deepcopy(d))
        self.sessions[session.id] = session
        session.connection, conn.session = conn, session
        self._session_starts += 1
        guilds = [g for g in self.guilds.values() if self._on_shard(g.id, shard)]
        me = {**self._user(BOT_USER_ID), "verified": True, "mfa_enabled": True, "email": None}
        ready: dict[str, Any] = {
            "v": API_VERSION,
            "user_settings": {},
            "user": me,
            "session_type": "normal",
            "session_id": session.id,
            "resume_gateway_url": self.gateway_url,
            "relationships": [],
            "private_channels": [],
            "presences": [],
            "guilds": [{"id": g.id, "unavailable": True} for g in guilds],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": ["us-east", "us-central"],
            "auth": {},
            "application": {"id": APP_ID, "flags": self._app_flags()},
            "_trace": ['["gateway-fake",{"micros":0.0}]'],
        }
        if shard is not None:
            ready["shard"] = shard
        await self._dispatch(session, "READY", ready)
        if intents & INTENT_GUILDS:
            for guild in guilds:
                await self._dispatch(session, "GUILD_CREATE", self._guild_create(guild))
        conn.ready.set()
        await self._bump()

    async def _resume(self, conn: GatewayConnection, d: Any) -> None:
        if not isinstance(d, dict) or d.get("token") != self.token or self._revoked:
            await self._close(conn, CLOSE_AUTHENTICATION_FAILED, "Authentication failed.")
            return
        session = self.sessions.get(str(d.get("session_id")))
        seq = d.get("seq")
        if session is None or not isinstance(seq, int) or seq > session.seq:
            await self._send(conn, {"op": OP_INVALID_SESSION, "d": False, "s": None, "t": None})
            return
        old = session.connection
        if old is not None and old is not conn and old.open:
            await old.ws.close(code=4000, message=b"session resumed elsewhere")
        session.connection, conn.session = conn, session
        for event in session.events:
            if event["s"] > seq:
                await self._send(conn, event)
        await self._dispatch(session, "RESUMED", {"_trace": ['["gateway-fake",{"micros":0.0}]']})
        conn.ready.set()
        await self._bump()

    async def _dispatch(self, session: GatewaySession, event: str, data: dict[str, Any]) -> None:
        session.seq += 1
        payload = {"op": OP_DISPATCH, "t": event, "s": session.seq, "d": data}
        session.events.append(payload)
        del session.events[:-1000]
        if session.connection is not None and session.connection.open:
            await self._send(session.connection, payload)

    async def _broadcast(
        self, event: str, data: dict[str, Any], guild_id: str | None, intent: int
    ) -> None:
        """An event to every live session that asked for ``intent`` and has the guild."""
        for session in self.ready_sessions:
            if not session.intents & intent:
                continue
            if guild_id is not None and not self._on_shard(guild_id, session.shard):
                continue
            await self._dispatch(session, event, copy.deepcopy(data))

    async def _message_event(self, event: str, message: Message) -> None:
        """MESSAGE_CREATE/UPDATE/DELETE for a guild message (GUILD_MESSAGES intent). Without
        MESSAGE_CONTENT, content, embeds, attachments and components arrive empty, except
        in the app's own messages (gateway.md, "Message Content Intent")."""
        if message.guild_id is None or message.ephemeral:
            return
        if event == "MESSAGE_DELETE":
            data: dict[str, Any] = {
                "id": message.id,
                "channel_id": message.channel_id,
                "guild_id": message.guild_id,
            }
            await self._broadcast(event, data, message.guild_id, INTENT_GUILD_MESSAGES)
            return
        data = {**self._render_message(message), "guild_id": message.guild_id}
        if message.webhook_id is None:
            guild = self.guilds.get(message.guild_id)
            member = self._member(message.author["id"], guild)
            member.pop("user")
            data["member"] = member
        for session in self.ready_sessions:
            if not session.intents & INTENT_GUILD_MESSAGES or not self._on_shard(
                message.guild_id, session.shard
            ):
                continue
            out = copy.deepcopy(data)
            own = message.author["id"] == BOT_USER_ID or BOT_USER_ID in message.mentions
            if not session.intents & INTENT_MESSAGE_CONTENT and not own:
                out.update(content="", embeds=[], attachments=[], components=[])
            await self._dispatch(session, event, out)

    async def _members_chunk(self, session: GatewaySession, d: dict[str, Any]) -> None:
        guild = self.guilds.get(str(d.get("guild_id")))
        if guild is None:
            return
        members = [self._member(BOT_USER_ID, guild)]
        await self._dispatch(
            session,
            "GUILD_MEMBERS_CHUNK",
            {
                "guild_id": guild.id,
                "members": members,
                "chunk_index": 0,
                "chunk_count": 1,
                "not_found": [],
                **({"nonce": d["nonce"]} if "nonce" in d else {}),
            },
        )

    def _guild_create(self, guild: Guild) -> dict[str, Any]:
        """A GUILD_CREATE as discord.py needs it to call the guild available: roles (with
        @everyone, id = guild id), channels, the bot's member, active threads."""
        everyone = {
            "id": guild.id,
            "name": "@everyone",
            "permissions": str(MEMBER_PERMISSIONS),
            "position": 0,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "managed": False,
            "mentionable": False,
            "icon": None,
            "unicode_emoji": None,
            "flags": 0,
        }
        bot_role = {
            **everyone,
            "id": guild.bot_role_id,
            "name": BOT_USERNAME,
            "permissions": str(BOT_PERMISSIONS),
            "position": 1,
            "managed": True,
            "tags": {"bot_id": BOT_USER_ID},
        }
        channels = [self.channels[c] for c in guild.channels if not self.channels[c].deleted]
        threads = [
            c
            for c in self.channels.values()
            if c.is_thread and c.guild_id == guild.id and not c.deleted
        ]
        return {
            "id": guild.id,
            "name": guild.name,
            "icon": None,
            "description": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "features": [],
            "owner_id": OWNER_ID,
            "application_id": None,
            "afk_channel_id": None,
            "afk_timeout": 300,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "widget_enabled": False,
            "verification_level": 0,
            "default_message_notifications": 0,
            "mfa_level": 0,
            "explicit_content_filter": 0,
            "max_presences": None,
            "max_members": 500_000,
            "max_video_channel_users": 25,
            "vanity_url_code": None,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "preferred_locale": "en-US",
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "safety_alerts_channel_id": None,
            "nsfw": False,
            "nsfw_level": 0,
            "premium_progress_bar_enabled": False,
            "roles": [
                everyone,
                bot_role,
                *(
                    {**everyone, "id": role_id, "name": name, "position": 2 + i}
                    for i, (role_id, name) in enumerate(guild.roles.items())
                ),
            ],
            "emojis": [],
            "stickers": [],
            "joined_at": _iso(guild.joined_ms),
            "large": False,
            "unavailable": False,
            "member_count": 2,
            "voice_states": [],
            "members": [self._member(BOT_USER_ID, guild)],
            "channels": [self._render_channel(c, in_guild_create=True) for c in channels],
            "threads": [self._render_channel(t) for t in threads],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
            "embedded_activities": [],
            "incidents_data": None,
            "lazy": True,
        }


_WEBHOOK = "/webhooks/{webhook_id}/{webhook_token}"
#: Routes whose body is (or holds) a message: content and embed rules apply.
_MESSAGE_ROUTES = frozenset(
    {
        "POST /channels/{channel_id}/messages",
        "PATCH /channels/{channel_id}/messages/{message_id}",
        "POST /webhooks/{webhook_id}/{webhook_token}",
        "PATCH /webhooks/{webhook_id}/{webhook_token}/messages/{message_id}",
        "PATCH /webhooks/{webhook_id}/{webhook_token}/messages/@original",
    }
)
_COMMAND_ROUTES = frozenset(
    {
        "PUT /applications/{application_id}/commands",
        "PUT /applications/{application_id}/guilds/{guild_id}/commands",
    }
)


def _numbered(components: Any) -> list[Any]:
    """Components as Discord keeps them: each with an ``id`` (numbered in order where the
    request gave none: "auto-populated through increment")."""
    out = copy.deepcopy(components) if isinstance(components, list) else []
    taken = {c.get("id") for c in _walk(out)}
    counter = itertools.count(1)
    for item in _walk(out):
        if item.get("id") is None:
            number = next(counter)
            while number in taken:
                number = next(counter)
            item["id"] = number
    return out


def _walk(components: list[Any]) -> Iterator[dict[str, Any]]:
    for item in components:
        if isinstance(item, dict):
            yield item
            inner = item.get("components")
            if isinstance(inner, list):
                yield from _walk(inner)


def _subcommand(name: str, options: list[dict[str, Any]]) -> dict[str, Any]:
    """A subcommand option as Discord nests it (its own options inside, when it has any)."""
    return {"name": name, "type": 1, **({"options": options} if options else {})}


def _focused(options: Any) -> dict[str, Any] | None:
    """The focused option of an autocomplete, also inside a subcommand."""
    for option in options if isinstance(options, list) else []:
        if not isinstance(option, dict):
            continue
        if option.get("focused"):
            return option
        inner = _focused(option.get("options"))
        if inner is not None:
            return inner
    return None


@contextlib.contextmanager
def use_fake_discord(fake: FakeDiscord) -> Iterator[None]:
    """Point discord.py at the fake (REST, webhooks and the gateway) and back afterwards."""
    import discord.gateway
    import discord.http
    import yarl

    base = discord.http.Route.BASE
    gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    discord.http.Route.BASE = fake.api_url
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)
    try:
        yield
    finally:
        discord.http.Route.BASE = base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = gateway
