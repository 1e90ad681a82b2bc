"""A local fake of four inference APIs, on a real loopback socket, for our probe and for the
providers' official SDKs alike (tests/test_probe_wire.py drives both against it).

``fake = await FakeInferenceAPI().start()``, then::

    anthropic.AsyncAnthropic(api_key=fake.key, base_url=fake.url)       # POST /v1/messages
    openai.AsyncOpenAI(api_key=fake.key, base_url=fake.url + "/v1")     # POST …/chat/completions
    genai.Client(api_key=fake.key, http_options=HttpOptions(base_url=fake.url))
                                         # POST /v1{,beta}/models/{model}:{stream}generateContent
    cohere.AsyncClientV2(api_key=fake.key, base_url=fake.url)           # POST /v2/chat

plus ``GET /v1/models`` (OpenAI's list, or Anthropic's when the request carries
``anthropic-version``/``x-api-key``; Gemini's with ``x-goog-api-key``) and ``GET /v1beta/models``.

Requests are checked like the real APIs check them: the key (``fake.key``; anything else is
the format's own 401, OpenAI's quoting the key it was given, as OpenAI did), the required
headers and fields (Anthropic without ``max_tokens`` or ``anthropic-version`` is its 400).
Every request is recorded (:attr:`~FakeInferenceAPI.requests`) and counted per model.

What a model answers is set per model, mid-test too: ``fake.set(model, behaviour, **kw)``:
``ok`` (``delay=`` before answering), ``overloaded`` (each API's real storm: Anthropic 529
``overloaded_error``, OpenAI 503 "The server is overloaded or not ready yet.", Gemini 503
``UNAVAILABLE`` "The model is overloaded.", Cohere 503; ``mid_stream=True`` sends it as an error
inside a 200 stream), ``status`` (``code=``, optional ``message=``/``body=``), ``rate_limited``,
``auth``, ``retired`` (each API's own "model not found / deprecated" answer), ``error_in_200``,
``empty_200``, ``not_json_200``, ``no_stop_reason``, ``slow_first_token`` (``delay=``: a stream's
headers at once and its first delta after the delay; a whole answer after it) and
``truncated_stream`` (the stream ends after the first delta, before its end event;
``abort=True`` resets the connection instead). A ``message`` may hold ``{key}``: the key the
request presented is put there (an API that echoes keys back).

Shapes are the APIs' own, read from the official SDKs' sources and the providers' docs (ids,
usage blocks, ``request-id`` headers, ``application/json`` / ``text/event-stream``; Gemini's
events end in CRLF pairs as Google's do; Cohere's stream ends with ``data: [DONE]``).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from aiohttp import web

KEY = "sk-fake-4f1c2b9e7d6a5038"
#: The "model" whose behaviour the list-models endpoints follow.
MODELS_LIST = "(list models)"
BEHAVIOURS = frozenset(
    {
        "ok",
        "overloaded",
        "status",
        "rate_limited",
        "auth",
        "retired",
        "error_in_200",
        "empty_200",
        "not_json_200",
        "no_stop_reason",
        "slow_first_token",
        "truncated_stream",
    }
)
TEXT = "Pong"


class SeenCall(NamedTuple):
    path: str  # the path and query, as sent
    headers: dict[str, str]
    json: Any


@dataclass
class Mode:
    behaviour: str = "ok"
    delay: float = 0.0
    code: int = 500
    message: str | None = None
    body: Any = None
    mid_stream: bool = False
    abort: bool = False


@dataclass
class Frame:
    """One SSE event: its name (or none), its data, and whether it carries a token."""

    event: str | None
    data: Any
    token: bool = False


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


def _id(prefix: str = "") -> str:
    return prefix + uuid.uuid4().hex[:24]


def _dumps(data: Any) -> str:
    return data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))


# ---------------------------------------------------------------------------- the dialects


class Dialect:
    """What one API says; the server decides when it says it."""

    name = ""
    eol = "\n"
    sse_type = "text/event-stream; charset=utf-8"

    def presented(self, request: web.Request) -> str | None:
        return _bearer(request)

    def unauthorized(self, presented: str | None) -> Reply:
        raise NotImplementedError

    def invalid(self, request: web.Request, body: dict[str, Any]) -> Reply | None:
        return None

    def model_of(self, request: web.Request, body: dict[str, Any]) -> str:
        return str(body.get("model"))

    def streaming(self, request: web.Request, body: dict[str, Any]) -> bool:
        return body.get("stream") is True

    def error(self, status: int, message: str | None = None) -> Reply:
        raise NotImplementedError

    def overloaded(self) -> Reply:
        raise NotImplementedError

    def rate_limited(self, model: str) -> Reply:
        raise NotImplementedError

    def retired(self, request: web.Request, model: str) -> Reply:
        raise NotImplementedError

    def stop_for(self, body: dict[str, Any]) -> str:
        raise NotImplementedError

    def completion(self, model: str, stop: str | None) -> Any:
        raise NotImplementedError

    def frames(self, model: str, stop: str | None) -> list[Frame]:
        raise NotImplementedError

    def stream_error(self, error: Reply) -> list[Frame]:
        """An error after the 200 (its body, as this API puts one in a stream)."""
        return [Frame(None, error.body)]

    def preamble(self, model: str) -> list[Frame]:
        """What a stream says before anything can go wrong."""
        return self.frames(model, None)[:1]

    def in_200(self) -> Any:
        """The body of a 200 that is an error."""
        return self.error(500).body

    def headers(self) -> dict[str, str]:
        return {}

    def frame(self, item: Frame) -> bytes:
        head = f"event: {item.event}{self.eol}" if item.event else ""
        return f"{head}data: {_dumps(item.data)}{self.eol}{self.eol}".encode()

    def listing(self, models: list[str]) -> Any:
        raise NotImplementedError


def _bearer(request: web.Request) -> str | None:
    value = request.headers.get("Authorization", "")
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


class Anthropic(Dialect):
    name = "anthropic"
    _TYPES = {
        400: ("invalid_request_error", "Invalid request"),
        401: ("authentication_error", "invalid x-api-key"),
        402: ("billing_error", "Your credit balance is too low to access the Anthropic API."),
        403: ("permission_error", "Your API key does not have permission to use this resource."),
        404: ("not_found_error", "Not found"),
        413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
        429: ("rate_limit_error", "Number of requests has exceeded your rate limit."),
        500: ("api_error", "Internal server error"),
        504: ("timeout_error", "Request timed out"),
        529: ("overloaded_error", "Overloaded"),
    }

    def presented(self, request: web.Request) -> str | None:
        return request.headers.get("x-api-key") or _bearer(request)

    def unauthorized(self, presented: str | None) -> Reply:
        said = "invalid x-api-key" if presented else "x-api-key header is required"
        return self.error(401, said)

    def invalid(self, request: web.Request, body: dict[str, Any]) -> Reply | None:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", request.headers.get("anthropic-version", "")):
            return self.error(400, "anthropic-version: header is required")
        for name in ("model", "max_tokens", "messages"):
            if name not in body:
                return self.error(400, f"{name}: Field required")
        tokens = body["max_tokens"]
        if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 1:
            return self.error(400, "max_tokens: Input should be greater than or equal to 1")
        return None

    def error(self, status: int, message: str | None = None) -> Reply:
        kind, said = self._TYPES.get(status, ("api_error", "Internal server error"))
        if status < 500 and status not in self._TYPES:
            kind = "invalid_request_error"
        body = {"type": "error", "error": {"type": kind, "message": message or said}}
        return Reply(status, {**body, "request_id": _id("req_")})

    def overloaded(self) -> Reply:
        return self.error(529)

    def rate_limited(self, model: str) -> Reply:
        reply = self.error(
            429,
            "Number of request tokens has exceeded your per-minute rate limit "
            "(https://docs.claude.com/en/api/rate-limits); see the response headers for current "
            "usage. Please reduce the prompt length or the maximum tokens requested, or try "
            "again later.",
        )
        reply.headers["retry-after"] = "17"
        return reply

    def retired(self, request: web.Request, model: str) -> Reply:
        return self.error(404, f"model: {model}")

    def stop_for(self, body: dict[str, Any]) -> str:
        return "max_tokens" if body.get("max_tokens") == 1 else "end_turn"

    def _usage(self) -> dict[str, Any]:
        return {
            "input_tokens": 8,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 1,
            "service_tier": "standard",
        }

    def _message(self, model: str, stop: str | None, content: list[Any]) -> dict[str, Any]:
        return {
            "id": _id("msg_01"),
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": self._usage(),
        }

    def completion(self, model: str, stop: str | None) -> Any:
        return self._message(model, stop, [{"type": "text", "text": TEXT}])

    def frames(self, model: str, stop: str | None) -> list[Frame]:
        start = {"type": "message_start", "message": self._message(model, None, [])}
        block = {"type": "content_block_start", "index": 0}
        delta = {"type": "text_delta", "text": TEXT}
        return [
            Frame("message_start", start),
            Frame("content_block_start", {**block, "content_block": {"type": "text", "text": ""}}),
            Frame("ping", '{"type": "ping"}'),
            Frame(
                "content_block_delta",
                {"type": "content_block_delta", "index": 0, "delta": delta},
                True,
            ),
            Frame("content_block_stop", {"type": "content_block_stop", "index": 0}),
            Frame(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop, "stop_sequence": None},
                    "usage": {"output_tokens": 1},
                },
            ),
            Frame("message_stop", {"type": "message_stop"}),
        ]

    def stream_error(self, error: Reply) -> list[Frame]:
        body = {k: v for k, v in error.body.items() if k != "request_id"}
        return [Frame("error", body)]

    def headers(self) -> dict[str, str]:
        return {"request-id": _id("req_011"), "anthropic-organization-id": str(uuid.uuid4())}

    def listing(self, models: list[str]) -> Any:
        data = [
            {
                "type": "model",
                "id": m,
                "display_name": m,
                "created_at": "2025-05-14T00:00:00Z",
                "lifecycle": "active",
            }
            for m in models
        ]
        first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
        return {"data": data, "has_more": False, "first_id": first, "last_id": last}


class OpenAI(Dialect):
    name = "openai"
    #: ``/v1/chat/completions``, under any prefix (Groq's ``/openai/v1``).
    PATH = re.compile(r"^(?:/[\w.-]+)*/v1/chat/completions$")
    _SAID = {
        400: ("invalid_request_error", "Invalid request."),
        403: ("invalid_request_error", "Project does not have access to this model."),
        404: ("invalid_request_error", "Not found."),
        500: (
            "server_error",
            "The server had an error while processing your request. Sorry about that!",
        ),
        503: ("server_error", "The server is overloaded or not ready yet."),
    }

    def unauthorized(self, presented: str | None) -> Reply:
        if presented is None:
            return self.error(
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            )
        said = (
            f"Incorrect API key provided: {presented}. You can find your API key at "
            "https://platform.openai.com/account/api-keys."
        )
        return self.error(401, said, code="invalid_api_key")

    def invalid(self, request: web.Request, body: dict[str, Any]) -> Reply | None:
        if "model" not in body:
            return self.error(400, "you must provide a model parameter")
        if not isinstance(body.get("messages"), list) or not body["messages"]:
            return self.error(
                400, "Missing required parameter: 'messages'.", code="missing_required_parameter"
            )
        return None

    def error(self, status: int, message: str | None = None, *, code: str | None = None) -> Reply:
        kind, said = self._SAID.get(
            status, ("server_error" if status >= 500 else "invalid_request_error", f"HTTP {status}")
        )
        error = {"message": message or said, "type": kind, "param": None, "code": code}
        return Reply(status, {"error": error})

    def overloaded(self) -> Reply:
        return self.error(503)

    def rate_limited(self, model: str) -> Reply:
        reply = self.error(
            429,
            f"Rate limit reached for {model} in organization org-fake on requests per min "
            "(RPM): Limit 3, Used 3, Requested 1. Please try again in 20s. Visit "
            "https://platform.openai.com/account/rate-limits to learn more.",
            code="rate_limit_exceeded",
        )
        reply.body["error"]["type"] = "requests"
        return reply

    def retired(self, request: web.Request, model: str) -> Reply:
        return self.error(
            404,
            f"The model `{model}` has been deprecated, learn more here: "
            "https://platform.openai.com/docs/deprecations",
            code="model_not_found",
        )

    def stop_for(self, body: dict[str, Any]) -> str:
        one = body.get("max_tokens") == 1 or body.get("max_completion_tokens") == 1
        return "length" if one else "stop"

    def _base(self, model: str, kind: str, ident: str) -> dict[str, Any]:
        return {
            "id": ident,
            "object": kind,
            "created": int(time.time()),
            "model": model,
            "service_tier": "default",
            "system_fingerprint": "fp_0a1b2c3d4e",
        }

    def completion(self, model: str, stop: str | None) -> Any:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": TEXT,
            "refusal": None,
            "annotations": [],
        }
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": stop}
        usage = {
            "prompt_tokens": 8,
            "completion_tokens": 1,
            "total_tokens": 9,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }
        base = self._base(model, "chat.completion", _id("chatcmpl-"))
        return {**base, "choices": [choice], "usage": usage}

    def frames(self, model: str, stop: str | None) -> list[Frame]:
        ident = _id("chatcmpl-")

        def chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return {**self._base(model, "chat.completion.chunk", ident), "choices": [choice]}

        frames = [
            Frame(None, chunk({"role": "assistant", "content": "", "refusal": None}, None)),
            Frame(None, chunk({"content": TEXT}, None), True),
        ]
        if stop is not None:
            frames.append(Frame(None, chunk({}, stop)))
        return [*frames, Frame(None, "[DONE]")]

    def headers(self) -> dict[str, str]:
        return {"x-request-id": _id("req_"), "openai-processing-ms": "112"}

    def listing(self, models: list[str]) -> Any:
        data = [
            {"id": m, "object": "model", "created": 1715367049, "owned_by": "system"}
            for m in models
        ]
        return {"object": "list", "data": data}


class Gemini(Dialect):
    name = "gemini"
    eol = "\r\n"
    sse_type = "text/event-stream"
    _STATUS = {
        400: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
        403: ("PERMISSION_DENIED", "The caller does not have permission"),
        404: ("NOT_FOUND", "Requested entity was not found."),
        429: ("RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
        500: (
            "INTERNAL",
            "An internal error has occurred. Please retry or report in "
            "https://developers.generativeai.google/guide/troubleshooting",
        ),
        503: ("UNAVAILABLE", "The service is currently unavailable."),
        504: ("DEADLINE_EXCEEDED", "Deadline expired before operation could complete."),
    }
    PATH = re.compile(
        r"^/(v1|v1beta|v1alpha)/((?:models|tunedModels)/[^/:]+):(generateContent|streamGenerateContent)$"
    )

    def presented(self, request: web.Request) -> str | None:
        return request.headers.get("x-goog-api-key") or request.query.get("key")

    def unauthorized(self, presented: str | None) -> Reply:
        if presented is None:
            return self.error(
                403,
                "Method doesn't allow unregistered callers (callers without established "
                "identity). Please use API Key or other form of API consumer identity to call "
                "this API.",
            )
        reply = self.error(400, "API key not valid. Please pass a valid API key.")
        reply.body["error"]["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            },
            {
                "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                "locale": "en-US",
                "message": "API key not valid. Please pass a valid API key.",
            },
        ]
        return reply

    def invalid(self, request: web.Request, body: dict[str, Any]) -> Reply | None:
        if not isinstance(body.get("contents"), list) or not body["contents"]:
            return self.error(400, "* GenerateContentRequest.contents: contents is not specified\n")
        return None

    def model_of(self, request: web.Request, body: dict[str, Any]) -> str:
        found = self.PATH.match(request.path)
        return found.group(2).split("/", 1)[1] if found else ""

    def streaming(self, request: web.Request, body: dict[str, Any]) -> bool:
        return request.path.endswith(":streamGenerateContent")

    def error(self, status: int, message: str | None = None) -> Reply:
        name, said = self._STATUS.get(status, ("UNKNOWN", f"HTTP {status}"))
        return Reply(
            status, {"error": {"code": status, "message": message or said, "status": name}}
        )

    def overloaded(self) -> Reply:
        return self.error(503, "The model is overloaded. Please try again later.")

    def rate_limited(self, model: str) -> Reply:
        return self.error(
            429,
            "You exceeded your current quota, please check your plan and billing details. For "
            "more information on this error, head to: https://ai.google.dev/gemini-api/docs/"
            "rate-limits.",
        )

    def retired(self, request: web.Request, model: str) -> Reply:
        version = request.path.split("/")[1]
        method = request.path.rsplit(":", 1)[-1]
        return self.error(
            404,
            f"models/{model} is not found for API version {version}, or is not supported for "
            f"{method}. Call ListModels to see the list of available models and their supported "
            "methods.",
        )

    def stop_for(self, body: dict[str, Any]) -> str:
        tokens = (body.get("generationConfig") or {}).get("maxOutputTokens")
        return "MAX_TOKENS" if tokens == 1 else "STOP"

    def _response(self, model: str, text: str | None, stop: str | None) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"role": "model"}, "index": 0}
        if text is not None:
            candidate["content"]["parts"] = [{"text": text}]
        if stop is not None:
            candidate["finishReason"] = stop
        usage = {
            "promptTokenCount": 1,
            "candidatesTokenCount": 1,
            "totalTokenCount": 2,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 1}],
        }
        return {
            "candidates": [candidate],
            "usageMetadata": usage,
            "modelVersion": model,
            "responseId": _id(),
        }

    def completion(self, model: str, stop: str | None) -> Any:
        return self._response(model, TEXT, stop)

    def frames(self, model: str, stop: str | None) -> list[Frame]:
        frames = [Frame(None, self._response(model, TEXT, None), True)]
        if stop is not None:
            frames.append(Frame(None, self._response(model, "", stop)))
        return frames

    def preamble(self, model: str) -> list[Frame]:
        return []

    def listing(self, models: list[str]) -> Any:
        return {
            "models": [
                {
                    "name": f"models/{m}",
                    "displayName": m,
                    "supportedGenerationMethods": ["generateContent", "countTokens"],
                }
                for m in models
            ]
        }

    def headers(self) -> dict[str, str]:
        return {"server-timing": "gfet4t7; dur=120"}


class Cohere(Dialect):
    name = "cohere"
    sse_type = "text/event-stream"
    _SAID = {
        400: "invalid request",
        401: "invalid api token",
        403: "Forbidden",
        404: "Not Found",
        500: "internal server error, this has been reported to our developers.",
        503: "service unavailable",
    }

    def unauthorized(self, presented: str | None) -> Reply:
        return self.error(401, "invalid api token" if presented else "no api key supplied")

    def invalid(self, request: web.Request, body: dict[str, Any]) -> Reply | None:
        if "model" not in body:
            return self.error(400, "invalid request: model must be specified")
        if not isinstance(body.get("messages"), list) or not body["messages"]:
            return self.error(400, "invalid request: messages cannot be empty")
        return None

    def error(self, status: int, message: str | None = None) -> Reply:
        said = message or self._SAID.get(status, f"HTTP {status}")
        return Reply(status, {"id": str(uuid.uuid4()), "message": said})

    def overloaded(self) -> Reply:
        return self.error(503)

    def rate_limited(self, model: str) -> Reply:
        return self.error(
            429,
            "You are using a Trial key, which is limited to 20 API calls / minute. You can "
            "continue to use the Trial key for free or upgrade to a Production key with higher "
            "rate limits at 'https://dashboard.cohere.com/api-keys'.",
        )

    def retired(self, request: web.Request, model: str) -> Reply:
        return self.error(
            404,
            f"model '{model}' not found, make sure the correct model ID was used and that you "
            "have access to the model.",
        )

    def stop_for(self, body: dict[str, Any]) -> str:
        return "MAX_TOKENS" if body.get("max_tokens") == 1 else "COMPLETE"

    def _usage(self) -> dict[str, Any]:
        return {
            "billed_units": {"input_tokens": 1, "output_tokens": 1},
            "tokens": {"input_tokens": 496, "output_tokens": 1},
        }

    def completion(self, model: str, stop: str | None) -> Any:
        message = {"role": "assistant", "content": [{"type": "text", "text": TEXT}]}
        body = {"id": str(uuid.uuid4()), "message": message, "usage": self._usage()}
        return body if stop is None else {**body, "finish_reason": stop}

    def frames(self, model: str, stop: str | None) -> list[Frame]:
        end: dict[str, Any] = {"usage": self._usage()}
        if stop is not None:
            end["finish_reason"] = stop
        start = {
            "role": "assistant",
            "content": [],
            "tool_plan": "",
            "tool_calls": [],
            "citations": [],
        }
        content = {"type": "text", "text": ""}
        return [
            Frame(
                "message-start",
                {"id": str(uuid.uuid4()), "type": "message-start", "delta": {"message": start}},
            ),
            Frame(
                "content-start",
                {"type": "content-start", "index": 0, "delta": {"message": {"content": content}}},
            ),
            Frame(
                "content-delta",
                {
                    "type": "content-delta",
                    "index": 0,
                    "delta": {"message": {"content": {"text": TEXT}}},
                },
                True,
            ),
            Frame("content-end", {"type": "content-end", "index": 0}),
            Frame("message-end", {"type": "message-end", "delta": end}),
            Frame(None, "[DONE]"),
        ]

    def stream_error(self, error: Reply) -> list[Frame]:
        end = {"finish_reason": "ERROR", "error": error.body["message"]}
        return [Frame("message-end", {"type": "message-end", "delta": end}), Frame(None, "[DONE]")]

    def listing(self, models: list[str]) -> Any:
        return {"models": [{"name": m, "endpoints": ["chat"]} for m in models]}


DIALECTS: dict[str, Dialect] = {d.name: d for d in (Anthropic(), OpenAI(), Gemini(), Cohere())}


# ---------------------------------------------------------------------------- the server


class FakeInferenceAPI:
    """``await FakeInferenceAPI().start()``, then ``.url``; :meth:`set` switches a model."""

    def __init__(self, key: str = KEY, host: str = "127.0.0.1") -> None:
        self.key = key
        self.host = host
        self.port = 0
        self.requests: list[SeenCall] = []
        self.calls: Counter[str] = Counter()
        self.modes: dict[str, Mode] = {}
        self._runner: web.AppRunner | None = None
        self._counted = asyncio.Condition()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> FakeInferenceAPI:
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # ------------------------------------------------------------- configure

    def set(self, model: str, behaviour: str, **kw: Any) -> None:
        """What ``model`` answers from now on (see the module docstring)."""
        if behaviour not in BEHAVIOURS:
            raise ValueError(f"unknown behaviour {behaviour!r}")
        self.modes[model] = Mode(behaviour, **kw)

    def count(self, model: str) -> int:
        return self.calls[model]

    async def wait_calls(self, model: str, count: int, timeout: float = 5.0) -> None:
        """Until ``model`` was called ``count`` times (a condition, never a sleep)."""
        async with asyncio.timeout(timeout), self._counted:
            await self._counted.wait_for(lambda: self.calls[model] >= count)

    # ---------------------------------------------------------------- serve

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        self.requests.append(SeenCall(request.path_qs, dict(request.headers), body))
        dialect = self._dialect(request)
        if dialect is None:
            return self._not_found(request)
        if request.method == "GET":
            return await self._list(request, dialect)
        if request.method != "POST":
            return self._reply(dialect, dialect.error(405, "Method Not Allowed"))
        return await self._complete(request, dialect, body)

    def _dialect(self, request: web.Request) -> Dialect | None:
        path = request.path
        if request.method == "GET" and path in ("/v1/models", "/v1beta/models"):
            return DIALECTS[self._who(request)]
        if path == "/v1/messages":
            return DIALECTS["anthropic"]
        if OpenAI.PATH.match(path):
            return DIALECTS["openai"]
        if Gemini.PATH.match(path):
            return DIALECTS["gemini"]
        if path == "/v2/chat":
            return DIALECTS["cohere"]
        return None

    def _who(self, request: web.Request) -> str:
        headers = request.headers
        if "x-goog-api-key" in headers or request.path.startswith("/v1beta"):
            return "gemini"
        if "anthropic-version" in headers or "x-api-key" in headers:
            return "anthropic"
        return "openai"

    def _not_found(self, request: web.Request) -> web.StreamResponse:
        dialect = DIALECTS[self._who(request)]
        if isinstance(dialect, OpenAI):
            reply = dialect.error(404, f"Invalid URL ({request.method} {request.path})")
        else:
            reply = dialect.error(404, "Not Found")
        return self._reply(dialect, reply)

    def _reply(self, dialect: Dialect, reply: Reply) -> web.Response:
        headers = {**dialect.headers(), **reply.headers}
        ctype = (
            "application/json; charset=UTF-8" if isinstance(dialect, Gemini) else "application/json"
        )
        return web.Response(
            status=reply.status,
            body=json.dumps(reply.body).encode(),
            headers={**headers, "Content-Type": ctype},
        )

    async def _list(self, request: web.Request, dialect: Dialect) -> web.StreamResponse:
        if dialect.presented(request) != self.key:
            return self._reply(dialect, dialect.unauthorized(dialect.presented(request)))
        await self._count(MODELS_LIST)
        mode = self.modes.get(MODELS_LIST, Mode())
        failed = self._failure(request, dialect, mode, MODELS_LIST)
        if failed is not None:
            return self._reply(dialect, failed)
        await asyncio.sleep(mode.delay)
        models = [m for m in self.modes if m != MODELS_LIST] or ["model-a", "model-b"]
        return self._reply(dialect, Reply(200, dialect.listing(models)))

    async def _complete(
        self, request: web.Request, dialect: Dialect, body: Any
    ) -> web.StreamResponse:
        presented = dialect.presented(request)
        if presented != self.key:
            return self._reply(dialect, self._echo(dialect.unauthorized(presented), presented))
        if not isinstance(body, dict):
            return self._reply(dialect, dialect.error(400, "The request body is not valid JSON."))
        refused = dialect.invalid(request, body)
        if refused is not None:
            return self._reply(dialect, refused)
        model = dialect.model_of(request, body)
        await self._count(model)
        mode = self.modes.get(model, Mode())
        stream = dialect.streaming(request, body)
        failed = self._failure(request, dialect, mode, model)
        if failed is not None and not (mode.mid_stream and stream):
            await asyncio.sleep(mode.delay)  # a slow 529 is a thing too
            return self._reply(dialect, self._echo(failed, presented))
        if stream and isinstance(dialect, Gemini) and request.query.get("alt") != "sse":
            frames = dialect.frames(model, dialect.stop_for(body))  # the JSON-array form
            return self._reply(dialect, Reply(200, [f.data for f in frames]))
        if stream:
            return await self._stream(request, dialect, mode, model, body, failed)
        return await self._whole(request, dialect, mode, model, body)

    def _echo(self, reply: Reply, presented: str | None) -> Reply:
        """``{key}`` in an error's words becomes the key the request presented."""
        text = json.dumps(reply.body).replace("{key}", presented or "")
        return Reply(reply.status, json.loads(text), reply.headers)

    def _failure(
        self, request: web.Request, dialect: Dialect, mode: Mode, model: str
    ) -> Reply | None:
        """The error answer a failing behaviour gives, ``None`` for the others."""
        made: dict[str, Callable[[], Reply]] = {
            "overloaded": dialect.overloaded,
            "rate_limited": lambda: dialect.rate_limited(model),
            "auth": lambda: dialect.unauthorized(self.key),
            "retired": lambda: dialect.retired(request, model),
            "status": lambda: dialect.error(mode.code, mode.message),
        }
        if mode.behaviour not in made:
            return None
        reply = made[mode.behaviour]()
        if mode.message is not None and mode.behaviour != "status":
            reply = self._reword(dialect, reply, mode.message)
        if mode.body is not None:
            reply = Reply(reply.status, mode.body, reply.headers)
        return reply

    def _reword(self, dialect: Dialect, reply: Reply, message: str) -> Reply:
        body = json.loads(json.dumps(reply.body))
        holder = body.get("error") if isinstance(body.get("error"), dict) else body
        holder["message"] = message
        return Reply(reply.status, body, reply.headers)

    async def _count(self, model: str) -> None:
        async with self._counted:
            self.calls[model] += 1
            self._counted.notify_all()

    async def _whole(
        self, request: web.Request, dialect: Dialect, mode: Mode, model: str, body: dict[str, Any]
    ) -> web.StreamResponse:
        await asyncio.sleep(mode.delay)
        kind = mode.behaviour
        if kind == "empty_200":
            return web.Response(
                status=200,
                body=b"",
                headers={**dialect.headers(), "Content-Type": "application/json"},
            )
        if kind == "not_json_200":
            return web.Response(status=200, text=_HTML, content_type="text/html")
        if kind == "error_in_200":
            return self._reply(dialect, Reply(200, dialect.in_200()))
        stop = None if kind == "no_stop_reason" else dialect.stop_for(body)
        reply = self._reply(dialect, Reply(200, dialect.completion(model, stop)))
        if kind == "truncated_stream":
            assert isinstance(reply.body, bytes)
            reply.body = reply.body[: len(reply.body) // 2]
        return reply

    async def _stream(
        self,
        request: web.Request,
        dialect: Dialect,
        mode: Mode,
        model: str,
        body: dict[str, Any],
        failed: Reply | None,
    ) -> web.StreamResponse:
        kind = mode.behaviour
        if kind == "ok":
            await asyncio.sleep(mode.delay)
        frames = self._frames(dialect, mode, model, body, failed)
        response = web.StreamResponse(
            status=200,
            headers={
                **dialect.headers(),
                "Content-Type": dialect.sse_type,
                "Cache-Control": "no-cache",
            },
        )
        await response.prepare(request)
        try:
            for item in frames:
                if item.token and kind == "slow_first_token":
                    await asyncio.sleep(mode.delay)
                await response.write(dialect.frame(item))
                if item.token and kind == "truncated_stream":
                    if mode.abort and request.transport is not None:
                        request.transport.abort()
                    return response
            await response.write_eof()
        except (ConnectionResetError, ConnectionError):
            pass
        return response

    def _frames(
        self, dialect: Dialect, mode: Mode, model: str, body: dict[str, Any], failed: Reply | None
    ) -> list[Frame]:
        kind = mode.behaviour
        if kind == "empty_200":
            return []
        if kind == "not_json_200":
            return [Frame(None, "<html><body>Bad gateway</body></html>")]
        if failed is not None:  # mid_stream
            return dialect.preamble(model) + dialect.stream_error(failed)
        if kind == "error_in_200":
            return dialect.preamble(model) + dialect.stream_error(Reply(200, dialect.in_200()))
        stop = None if kind == "no_stop_reason" else dialect.stop_for(body)
        return dialect.frames(model, stop)


_HTML = "<!DOCTYPE html><html><head><title>Just a moment...</title></head><body></body></html>"
