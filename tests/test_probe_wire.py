"""The inference probe's wire formats (bot/probes) against the fake APIs (tests/fakes/inference.py).

Three things are proved here. The fake speaks the real protocols: the providers' official SDKs
accept its answers and raise their own typed errors for its error answers. Our formats read
every behaviour of the fake right, streamed and not, over real HTTP, and never let the key
out. And no body, however hostile, crashes a reader or yields a diagnostic over 300 characters.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anthropic
import cohere
import httpx
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.logs import register_secret
from bot.models import ProbeError
from bot.probes import WIRE_FORMATS, wire_format
from bot.probes.wire import (
    DETAIL_MAX,
    Answer,
    ProbeCall,
    ProviderError,
    SseParser,
    WireFormat,
    classify,
    merged,
)
from tests.fakes.inference import MODELS_LIST, FakeInferenceAPI

#: The SDKs' own deprecation noise (genai subclasses aiohttp's session; cohere uses pydantic v1
#: names): not ours to fix, not worth a line per test.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:The `__fields__` attribute is deprecated"),
]
PING: Any = [{"role": "user", "content": "ping"}]
STOPS = {
    "anthropic": "max_tokens",
    "openai": "length",
    "gemini": "MAX_TOKENS",
    "cohere": "MAX_TOKENS",
}
ENDS = {
    "anthropic": "message_stop",
    "openai": "[DONE]",
    "gemini": "a finishReason",
    "cohere": "message-end",
}


@pytest.fixture
async def fake() -> AsyncIterator[FakeInferenceAPI]:
    server = await FakeInferenceAPI().start()
    yield server
    await server.close()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10.0) as made:
        yield made


def _model() -> str:
    return f"model-{uuid.uuid4().hex[:8]}"


# ============================================================== 1. the official SDKs


class TestAnthropicSdk:
    @pytest.fixture
    async def sdk(self, fake: FakeInferenceAPI) -> AsyncIterator[anthropic.AsyncAnthropic]:
        async with anthropic.AsyncAnthropic(
            api_key=fake.key, base_url=fake.url, max_retries=0
        ) as made:
            yield made

    async def test_accepts_a_completion_and_both_streams(
        self, sdk: anthropic.AsyncAnthropic, fake: FakeInferenceAPI
    ) -> None:
        message = await sdk.messages.create(model="claude-x", max_tokens=1, messages=PING)
        assert (message.stop_reason, message.content[0].type, message.usage.output_tokens) == (
            "max_tokens",
            "text",
            1,
        )
        async with sdk.messages.stream(model="claude-x", max_tokens=1, messages=PING) as stream:
            final = await stream.get_final_message()
        assert final.stop_reason == "max_tokens"
        assert final.content[0].type == "text"
        assert final.content[0].text == "Pong"
        raw = await sdk.messages.create(model="claude-x", max_tokens=1, messages=PING, stream=True)
        kinds = [event.type async for event in raw]
        assert kinds[0] == "message_start"
        assert kinds[-1] == "message_stop"
        assert "content_block_delta" in kinds
        assert "message_delta" in kinds
        assert [m.id async for m in sdk.models.list()]

    @pytest.mark.parametrize(
        ("behaviour", "kind", "status", "error_type"),
        [
            ("overloaded", anthropic.InternalServerError, 529, "overloaded_error"),
            ("rate_limited", anthropic.RateLimitError, 429, "rate_limit_error"),
            ("auth", anthropic.AuthenticationError, 401, "authentication_error"),
            ("retired", anthropic.NotFoundError, 404, "not_found_error"),
        ],
    )
    async def test_raises_its_typed_errors(
        self,
        sdk: anthropic.AsyncAnthropic,
        fake: FakeInferenceAPI,
        behaviour: str,
        kind: type[anthropic.APIStatusError],
        status: int,
        error_type: str,
    ) -> None:
        fake.set("claude-x", behaviour)
        with pytest.raises(kind) as raised:
            await sdk.messages.create(model="claude-x", max_tokens=1, messages=PING)
        assert (raised.value.status_code, raised.value.type) == (status, error_type)

    async def test_an_error_event_mid_stream_is_raised(
        self, sdk: anthropic.AsyncAnthropic, fake: FakeInferenceAPI
    ) -> None:
        fake.set("claude-x", "overloaded", mid_stream=True)
        stream = await sdk.messages.create(
            model="claude-x", max_tokens=1, messages=PING, stream=True
        )
        with pytest.raises(anthropic.APIStatusError) as raised:
            async for _ in stream:
                pass
        assert raised.value.type == "overloaded_error"

    async def test_a_request_without_max_tokens_is_refused(self, fake: FakeInferenceAPI) -> None:
        async with httpx.AsyncClient() as raw:
            answer = await raw.post(
                f"{fake.url}/v1/messages",
                headers={"x-api-key": fake.key, "anthropic-version": "2023-06-01"},
                json={"model": "claude-x", "messages": PING},
            )
        assert answer.status_code == 400
        assert answer.json()["error"] == {
            "type": "invalid_request_error",
            "message": "max_tokens: Field required",
        }


class TestOpenAISdk:
    @pytest.fixture
    async def sdk(self, fake: FakeInferenceAPI) -> AsyncIterator[openai.AsyncOpenAI]:
        async with openai.AsyncOpenAI(
            api_key=fake.key, base_url=f"{fake.url}/v1", max_retries=0
        ) as made:
            yield made

    async def test_accepts_a_completion_and_a_stream(self, sdk: openai.AsyncOpenAI) -> None:
        done = await sdk.chat.completions.create(model="gpt-x", max_tokens=1, messages=PING)
        assert (done.choices[0].finish_reason, done.choices[0].message.content) == (
            "length",
            "Pong",
        )
        assert done.usage is not None
        assert done.usage.completion_tokens == 1
        stream = await sdk.chat.completions.create(
            model="gpt-x",
            max_tokens=1,
            messages=PING,
            stream=True,
        )
        chunks = [chunk async for chunk in stream]
        assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Pong"
        assert chunks[-1].choices[0].finish_reason == "length"
        assert [m.id async for m in sdk.models.list()]

    @pytest.mark.parametrize(
        ("behaviour", "kind", "code"),
        [
            ("retired", openai.NotFoundError, "model_not_found"),
            ("rate_limited", openai.RateLimitError, "rate_limit_exceeded"),
            ("auth", openai.AuthenticationError, "invalid_api_key"),
            ("overloaded", openai.InternalServerError, None),
        ],
    )
    async def test_raises_its_typed_errors(
        self,
        sdk: openai.AsyncOpenAI,
        fake: FakeInferenceAPI,
        behaviour: str,
        kind: type[openai.APIStatusError],
        code: str | None,
    ) -> None:
        fake.set("gpt-x", behaviour)
        with pytest.raises(kind) as raised:
            await sdk.chat.completions.create(model="gpt-x", max_tokens=1, messages=PING)
        assert raised.value.code == code

    async def test_an_error_chunk_mid_stream_is_raised(
        self, sdk: openai.AsyncOpenAI, fake: FakeInferenceAPI
    ) -> None:
        fake.set("gpt-x", "error_in_200")
        stream = await sdk.chat.completions.create(
            model="gpt-x",
            max_tokens=1,
            messages=PING,
            stream=True,
        )
        with pytest.raises(openai.APIError, match="error while processing"):
            async for _ in stream:
                pass


class TestGeminiSdk:
    @pytest.fixture
    async def sdk(self, fake: FakeInferenceAPI) -> AsyncIterator[genai.Client]:
        made = genai.Client(
            api_key=fake.key, http_options=genai_types.HttpOptions(base_url=fake.url)
        )
        yield made
        await made.aio.aclose()

    async def test_accepts_a_completion_and_a_stream(self, sdk: genai.Client) -> None:
        config = genai_types.GenerateContentConfig(max_output_tokens=1)
        done = await sdk.aio.models.generate_content(
            model="gemini-x", contents="ping", config=config
        )
        assert done.candidates
        assert done.candidates[0].finish_reason == "MAX_TOKENS"
        assert done.text == "Pong"
        stream = await sdk.aio.models.generate_content_stream(
            model="gemini-x", contents="ping", config=config
        )
        chunks = [chunk async for chunk in stream]
        assert "".join(c.text or "" for c in chunks) == "Pong"
        assert chunks[-1].candidates
        assert chunks[-1].candidates[0].finish_reason == "MAX_TOKENS"

    @pytest.mark.parametrize(
        ("behaviour", "kind", "code", "status"),
        [
            ("overloaded", genai_errors.ServerError, 503, "UNAVAILABLE"),
            ("retired", genai_errors.ClientError, 404, "NOT_FOUND"),
            ("rate_limited", genai_errors.ClientError, 429, "RESOURCE_EXHAUSTED"),
            ("auth", genai_errors.ClientError, 400, "INVALID_ARGUMENT"),
        ],
    )
    async def test_raises_its_typed_errors(
        self,
        sdk: genai.Client,
        fake: FakeInferenceAPI,
        behaviour: str,
        kind: type[genai_errors.APIError],
        code: int,
        status: str,
    ) -> None:
        fake.set("gemini-x", behaviour)
        with pytest.raises(kind) as raised:
            await sdk.aio.models.generate_content(model="gemini-x", contents="ping")
        assert (raised.value.code, raised.value.status) == (code, status)

    async def test_the_key_travels_in_a_header(
        self, sdk: genai.Client, fake: FakeInferenceAPI
    ) -> None:
        await sdk.aio.models.generate_content(model="gemini-x", contents="ping")
        path, headers, _ = fake.requests[-1]
        assert fake.key not in path
        assert headers["x-goog-api-key"] == fake.key


class TestCohereSdk:
    @pytest.fixture
    async def sdk(self, fake: FakeInferenceAPI) -> AsyncIterator[cohere.AsyncClientV2]:
        async with cohere.AsyncClientV2(api_key=fake.key, base_url=fake.url, max_retries=0) as made:
            yield made

    async def test_accepts_a_completion_and_a_stream(self, sdk: cohere.AsyncClientV2) -> None:
        done = await sdk.chat(model="command-x", messages=PING, max_tokens=1)
        assert done.finish_reason == "MAX_TOKENS"
        assert done.message.content
        assert isinstance(done.message.content[0], cohere.TextAssistantMessageResponseContentItem)
        assert done.message.content[0].text == "Pong"
        events = [e async for e in sdk.chat_stream(model="command-x", messages=PING, max_tokens=1)]
        assert [e.type for e in events] == [
            "message-start",
            "content-start",
            "content-delta",
            "content-end",
            "message-end",
        ]
        end = events[-1]
        assert isinstance(end, cohere.MessageEndV2ChatStreamResponse)
        assert end.delta is not None
        assert end.delta.finish_reason == "MAX_TOKENS"

    @pytest.mark.parametrize(
        ("behaviour", "kind", "status"),
        [
            ("rate_limited", cohere.TooManyRequestsError, 429),
            ("auth", cohere.UnauthorizedError, 401),
            ("retired", cohere.NotFoundError, 404),
            ("overloaded", cohere.ServiceUnavailableError, 503),
        ],
    )
    async def test_raises_its_typed_errors(
        self,
        sdk: cohere.AsyncClientV2,
        fake: FakeInferenceAPI,
        behaviour: str,
        kind: type[cohere.core.ApiError],
        status: int,
    ) -> None:
        fake.set("command-x", behaviour)
        with pytest.raises(kind) as raised:
            await sdk.chat(model="command-x", messages=PING)
        assert raised.value.status_code == status
        assert isinstance(raised.value.body, dict)
        assert raised.value.body["message"]


# ============================================================== 2. our formats, over HTTP


@dataclass
class Probed:
    answer: Answer
    started: bool = False
    #: Seconds from sending to the response's headers, and to the first token.
    headers_after: float = 0.0
    token_after: float | None = None


def _api_url(name: str, fake: FakeInferenceAPI) -> str:
    return f"{fake.url}/v1" if name == "openai" else fake.url


async def _probe(
    client: httpx.AsyncClient,
    fake: FakeInferenceAPI,
    name: str,
    model: str,
    *,
    stream: bool,
    key: str | None = None,
    extra: dict[str, Any] | None = None,
    pass_key: bool = True,
) -> Probed:
    """One probe call as the inference source makes it: our call, our readers."""
    fmt = wire_format(name)
    key = fake.key if key is None else key
    call = fmt.call(_api_url(name, fake), model, key, stream=stream, extra=extra or {})
    sent = time.perf_counter()
    async with client.stream(call.method, call.url, headers=call.headers, json=call.json) as got:
        headers_after = time.perf_counter() - sent
        ctype = got.headers.get("content-type", "")
        if not (200 <= got.status_code < 300 and ctype.startswith("text/event-stream")):
            body = await got.aread()
            return Probed(fmt.read(got.status_code, body, model, key=key if pass_key else None))
        reading = fmt.stream(model, key=key if pass_key else None)
        parser = SseParser()
        token_after = None
        async for line in got.aiter_lines():
            event = parser.feed_line(line)
            answer = reading.feed(*event) if event else None
            if reading.started and token_after is None:
                token_after = time.perf_counter() - sent
            if answer is not None:
                return Probed(answer, reading.started, headers_after, token_after)
        return Probed(reading.cut(), reading.started, headers_after, token_after)


OVERLOADED = {
    "anthropic": "529 overloaded",
    "openai": "503 overloaded",
    "gemini": "503 overloaded",
    "cohere": "HTTP 503",
}
HTTP_500 = {
    "anthropic": "HTTP 500 (api_error)",
    "openai": "HTTP 500 (server_error)",
    "gemini": "HTTP 500 (INTERNAL)",
    "cohere": "HTTP 500",
}
AUTH = {"gemini": "key refused (HTTP 400)"}
RETIRED = {"openai": "model retired"}


def _expected(name: str, behaviour: str, stream: bool) -> tuple[ProbeError | None, str]:
    """The taxonomy's answer for one format and behaviour (the contract, spelt out)."""
    cut = (ProbeError.ANSWER, f"a stream cut before {ENDS[name]}")
    table: dict[str, tuple[ProbeError | None, str]] = {
        "ok": (None, "a completion"),
        "slow_first_token": (None, "a completion"),
        "overloaded": (ProbeError.HTTP, OVERLOADED[name]),
        "status": (ProbeError.HTTP, HTTP_500[name]),
        "rate_limited": (ProbeError.RATE_LIMITED, "rate limited (HTTP 429)"),
        "auth": (ProbeError.AUTH, AUTH.get(name, "key refused (HTTP 401)")),
        "retired": (ProbeError.MODEL, RETIRED.get(name, "model not found")),
        "error_in_200": (ProbeError.ANSWER, "a 200 with an error object"),
        "empty_200": cut if stream else (ProbeError.ANSWER, "an empty 200"),
        "not_json_200": (
            (ProbeError.ANSWER, "a stream event that is not JSON")
            if stream
            else (ProbeError.ANSWER, "a 200 that is not JSON")
        ),
        "no_stop_reason": (
            cut if stream and name == "gemini" else (ProbeError.ANSWER, "no stop reason")
        ),
        "truncated_stream": cut if stream else (ProbeError.ANSWER, "a 200 that is not JSON"),
    }
    return table[behaviour]


BEHAVIOURS = [
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
    "truncated_stream",
]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("behaviour", BEHAVIOURS)
@pytest.mark.parametrize("name", WIRE_FORMATS)
async def test_every_behaviour_is_read_right(
    fake: FakeInferenceAPI, client: httpx.AsyncClient, name: str, behaviour: str, stream: bool
) -> None:
    model = _model()
    fake.set(model, behaviour, code=500)
    probed = await _probe(client, fake, name, model, stream=stream)
    assert (probed.answer.error, probed.answer.reason) == _expected(name, behaviour, stream)
    assert fake.count(model) == 1
    detail = probed.answer.detail or ""
    assert len(detail) <= DETAIL_MAX
    assert fake.key not in detail
    if probed.answer.error is None:
        assert probed.answer.stop_reason == STOPS[name]
        assert probed.started is stream
    if probed.answer.error is ProbeError.MODEL:
        assert model in detail
        assert detail.endswith("update probe.models")
    if behaviour == "truncated_stream" and stream:
        assert probed.started  # cut after the first token


@pytest.mark.parametrize("name", WIRE_FORMATS)
async def test_an_overload_mid_stream(
    fake: FakeInferenceAPI, client: httpx.AsyncClient, name: str
) -> None:
    """Anthropic's ``event: error`` overloaded and Gemini's UNAVAILABLE chunk are the
    overload they say; OpenAI's and Cohere's error inside a 200 are a bad answer."""
    model = _model()
    fake.set(model, "overloaded", mid_stream=True)
    probed = await _probe(client, fake, name, model, stream=True)
    expected = {
        "anthropic": (ProbeError.HTTP, "529 overloaded"),
        "gemini": (ProbeError.HTTP, "503 overloaded"),
        "openai": (ProbeError.ANSWER, "a 200 with an error object"),
        "cohere": (ProbeError.ANSWER, "a 200 with an error object"),
    }[name]
    assert (probed.answer.error, probed.answer.reason) == expected
    assert probed.answer.detail


@pytest.mark.parametrize("name", WIRE_FORMATS)
async def test_the_first_token_is_timed_after_the_headers(
    fake: FakeInferenceAPI, client: httpx.AsyncClient, name: str
) -> None:
    model = _model()
    fake.set(model, "slow_first_token", delay=0.3)
    probed = await _probe(client, fake, name, model, stream=True)
    assert probed.answer.error is None
    assert probed.token_after is not None
    assert probed.token_after >= 0.25
    assert probed.headers_after < probed.token_after - 0.2  # headers came at once


@pytest.mark.parametrize("name", WIRE_FORMATS)
async def test_a_slow_whole_answer_is_still_a_completion(
    fake: FakeInferenceAPI, client: httpx.AsyncClient, name: str
) -> None:
    model = _model()
    fake.set(model, "slow_first_token", delay=0.1)
    probed = await _probe(client, fake, name, model, stream=False)
    assert probed.answer.reason == "a completion"


@pytest.mark.parametrize("name", WIRE_FORMATS)
async def test_a_connection_reset_mid_stream_is_the_callers_error(
    fake: FakeInferenceAPI, client: httpx.AsyncClient, name: str
) -> None:
    """A stream whose connection is reset (not ended) raises in the HTTP client: the
    inference source reports it; the readers only see a clean EOF as a cut."""
    model = _model()
    fake.set(model, "truncated_stream", abort=True)
    with pytest.raises(httpx.HTTPError):
        await _probe(client, fake, name, model, stream=True)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("name", WIRE_FORMATS)
async def test_the_fake_accepts_our_requests_as_built(
    fake: FakeInferenceAPI, client: httpx.AsyncClient, name: str, stream: bool
) -> None:
    model = _model()
    probed = await _probe(client, fake, name, model, stream=stream)
    assert probed.answer.ok
    path, headers, body = fake.requests[-1]
    assert fake.key not in path  # never in the URL (Gemini's ?key= included)
    assert fake.key in " ".join(headers.values())
    expected_paths = {
        "anthropic": "/v1/messages",
        "openai": "/v1/chat/completions",
        "gemini": f"/v1beta/models/{model}:"
        + ("streamGenerateContent?alt=sse" if stream else "generateContent"),
        "cohere": "/v2/chat",
    }
    assert path == expected_paths[name]
    if name != "gemini":
        assert body["model"] == model
        assert body.get("stream", False) is stream


async def test_extra_body_replaces_and_removes_fields(
    fake: FakeInferenceAPI, client: httpx.AsyncClient
) -> None:
    """OpenAI's reasoning models refuse ``max_tokens``: the config swaps it."""
    model = _model()
    extra = {"max_tokens": None, "max_completion_tokens": 1}
    probed = await _probe(client, fake, "openai", model, stream=False, extra=extra)
    assert probed.answer.stop_reason == "length"
    body = fake.requests[-1].json
    assert "max_tokens" not in body
    assert body["max_completion_tokens"] == 1


async def test_a_groq_style_base_url_keeps_its_prefix(
    fake: FakeInferenceAPI, client: httpx.AsyncClient
) -> None:
    call = wire_format("openai").call(f"{fake.url}/openai/v1/", "m", fake.key, stream=False)
    assert call.url == f"{fake.url}/openai/v1/chat/completions"
    answer = await client.post(call.url, headers=call.headers, json=call.json)
    assert wire_format("openai").read(answer.status_code, answer.content, "m").ok


async def test_a_wrong_api_url_is_config_not_a_missing_model(
    fake: FakeInferenceAPI, client: httpx.AsyncClient
) -> None:
    fmt = wire_format("openai")
    call = fmt.call(fake.url, "gpt-x", fake.key, stream=False)  # no /v1
    answer = await client.post(call.url, headers=call.headers, json=call.json)
    read = fmt.read(answer.status_code, answer.content, "gpt-x")
    assert (read.error, read.reason) == (ProbeError.CONFIG, "request refused (HTTP 404)")


async def test_a_wrong_key_is_refused_without_quoting_it(
    fake: FakeInferenceAPI, client: httpx.AsyncClient
) -> None:
    """OpenAI quotes the key it was given back ("Incorrect API key provided: sk-..."): our
    detail masks it, as every format does with any echo of the key."""
    wrong = "sk-wrong-" + uuid.uuid4().hex
    for name in WIRE_FORMATS:
        probed = await _probe(client, fake, name, _model(), stream=False, key=wrong)
        assert probed.answer.error is ProbeError.AUTH
        assert wrong not in (probed.answer.detail or "")
        assert wrong not in probed.answer.reason
    said = json.dumps(fake.requests[-1].headers)
    assert wrong in said  # the fake did see it: the masking is ours


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("name", WIRE_FORMATS)
async def test_an_echoed_key_never_reaches_the_answer(
    fake: FakeInferenceAPI, client: httpx.AsyncClient, name: str, stream: bool
) -> None:
    model = _model()
    fake.set(model, "status", code=400, message="request for {key} refused; Key: {key}")
    probed = await _probe(client, fake, name, model, stream=stream)
    detail = probed.answer.detail or ""
    assert "request for *** refused" in detail
    assert fake.key not in detail
    assert fake.key not in probed.answer.reason
    fake.set(model, "error_in_200", mid_stream=True, message="oops {key}")
    probed = await _probe(client, fake, name, model, stream=stream)
    assert fake.key not in (probed.answer.detail or "")


async def test_a_registered_secret_is_masked_without_the_key_argument(
    fake: FakeInferenceAPI, client: httpx.AsyncClient
) -> None:
    """The app registers every key at start-up: a reader given no key still masks it."""
    secret = "sk-registered-" + uuid.uuid4().hex
    register_secret(secret)
    model = _model()
    fake.set(model, "status", code=503, message=f"upstream said {json.dumps(secret)[1:-1]}!")
    probed = await _probe(client, fake, "anthropic", model, stream=False, pass_key=False)
    assert secret not in (probed.answer.detail or "")
    assert "***" in (probed.answer.detail or "")


@pytest.mark.parametrize("name", WIRE_FORMATS)
def test_the_call_repr_hides_the_key(name: str) -> None:
    key = "sk-secret-" + uuid.uuid4().hex
    call = wire_format(name).call("https://api.example.com", "m", key, stream=True)
    assert key not in repr(call)
    assert key not in str(call)
    assert key not in f"{call}"
    assert key in " ".join(call.headers.values())
    assert key not in call.url


async def test_the_fake_counts_calls_and_switches_mid_test(
    fake: FakeInferenceAPI, client: httpx.AsyncClient
) -> None:
    model = _model()
    first = await _probe(client, fake, "anthropic", model, stream=False)
    fake.set(model, "overloaded")
    second = await _probe(client, fake, "anthropic", model, stream=False)
    fake.set(model, "ok")
    third = await _probe(client, fake, "anthropic", model, stream=False)
    await fake.wait_calls(model, 3)
    assert [first.answer.ok, second.answer.reason, third.answer.ok] == [
        True,
        "529 overloaded",
        True,
    ]


async def test_the_list_models_probes(fake: FakeInferenceAPI, client: httpx.AsyncClient) -> None:
    openai_list = await client.get(
        f"{fake.url}/v1/models", headers={"Authorization": f"Bearer {fake.key}"}
    )
    anthropic_list = await client.get(
        f"{fake.url}/v1/models", headers={"x-api-key": fake.key, "anthropic-version": "2023-06-01"}
    )
    assert openai_list.json()["object"] == "list"
    assert anthropic_list.json()["has_more"] is False
    fake.set(MODELS_LIST, "overloaded")
    failing = await client.get(
        f"{fake.url}/v1/models", headers={"x-api-key": fake.key, "anthropic-version": "2023-06-01"}
    )
    assert failing.status_code == 529
    assert fake.count(MODELS_LIST) == 3


# ============================================================== the taxonomy, row by row


def _row(
    status: int, type_: str | None = None, code: str | None = None, message: str | None = None
) -> tuple[ProbeError | None, str]:
    answer = classify(status, ProviderError(type_, code, message), "gpt-x")
    assert answer.detail is None or len(answer.detail) <= DETAIL_MAX
    return answer.error, answer.reason


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ((529, "overloaded_error", None, "Overloaded"), (ProbeError.HTTP, "529 overloaded")),
        ((529,), (ProbeError.HTTP, "529 overloaded")),
        ((200, "overloaded_error", None, "Overloaded"), (ProbeError.HTTP, "529 overloaded")),
        ((500, "overloaded_error"), (ProbeError.HTTP, "529 overloaded")),
        (
            (503, "UNAVAILABLE", "503", "The model is overloaded. Please try again later."),
            (ProbeError.HTTP, "503 overloaded"),
        ),
        (
            (200, "UNAVAILABLE", "503", "The model is overloaded."),
            (ProbeError.HTTP, "503 overloaded"),
        ),
        ((502,), (ProbeError.HTTP, "HTTP 502")),
        (
            (500, "api_error", None, "Internal server error"),
            (ProbeError.HTTP, "HTTP 500 (api_error)"),
        ),
        ((504, "timeout_error"), (ProbeError.HTTP, "HTTP 504 (timeout_error)")),
        ((429, "rate_limit_error"), (ProbeError.RATE_LIMITED, "rate limited (HTTP 429)")),
        ((401,), (ProbeError.AUTH, "key refused (HTTP 401)")),
        ((403, "permission_error"), (ProbeError.AUTH, "key refused (HTTP 403)")),
        (
            (400, "INVALID_ARGUMENT", "API_KEY_INVALID", "API key not valid."),
            (ProbeError.AUTH, "key refused (HTTP 400)"),
        ),
        (
            (404, None, "model_not_found", "The model `gpt-x` does not exist"),
            (ProbeError.MODEL, "model not found"),
        ),
        ((404, "not_found_error", None, "model: gpt-x"), (ProbeError.MODEL, "model not found")),
        (
            (404, "NOT_FOUND", "404", "models/gpt-x is not found for API version v1beta"),
            (ProbeError.MODEL, "model not found"),
        ),
        (
            (
                400,
                "invalid_request_error",
                "model_decommissioned",
                "The model `gpt-x` has been decommissioned",
            ),
            (ProbeError.MODEL, "model retired"),
        ),
        ((400, None, None, "The model gpt-x is deprecated"), (ProbeError.MODEL, "model retired")),
        (
            (404, None, None, "That model is no longer available"),
            (ProbeError.MODEL, "model retired"),
        ),
        ((410, None, None, "model gone"), (ProbeError.MODEL, "model retired")),
        (
            (400, "invalid_request_error", None, "Model Not Exist"),
            (ProbeError.MODEL, "model not found"),
        ),
        (
            (400, "invalid_model", "1500", "Invalid model: gpt-x"),
            (ProbeError.MODEL, "model not found"),
        ),
        (
            (404, None, None, "Invalid URL (POST /chat/completions)"),
            (ProbeError.CONFIG, "request refused (HTTP 404)"),
        ),
        (
            (
                400,
                "invalid_request_error",
                "unsupported_parameter",
                "Unsupported parameter: 'max_tokens' is not supported with this model.",
            ),
            (ProbeError.CONFIG, "request refused (HTTP 400)"),
        ),
        (
            (400, None, None, "'functions' is deprecated"),
            (ProbeError.CONFIG, "request refused (HTTP 400)"),
        ),
        ((422, None, None, "field required"), (ProbeError.CONFIG, "request refused (HTTP 422)")),
        ((402, "billing_error"), (ProbeError.CONFIG, "request refused (HTTP 402)")),
        ((302,), (ProbeError.CONFIG, "HTTP 302")),
        ((200, "api_error", None, "boom"), (ProbeError.ANSWER, "a 200 with an error object")),
    ],
)
def test_the_taxonomy(row: tuple[Any, ...], expected: tuple[ProbeError | None, str]) -> None:
    assert _row(*row) == expected


def test_a_model_named_like_a_retirement_is_only_missing() -> None:
    answer = classify(
        404, ProviderError("not_found_error", None, "model: x-deprecated"), "x-deprecated"
    )
    assert answer.reason == "model not found"


@pytest.mark.parametrize("name", WIRE_FORMATS)
def test_a_finished_stream_repeats_its_answer(name: str) -> None:
    """Whatever comes after the end (Cohere's ``[DONE]``, a stray event, EOF) changes nothing."""
    reading = wire_format(name).stream("m")
    ends: dict[str, list[tuple[str | None, str]]] = {
        "anthropic": [
            ("message_delta", '{"delta":{"stop_reason":"max_tokens"}}'),
            ("message_stop", "{}"),
        ],
        "openai": [(None, '{"choices":[{"delta":{},"finish_reason":"length"}]}'), (None, "[DONE]")],
        "gemini": [(None, '{"candidates":[{"finishReason":"MAX_TOKENS"}]}')],
        "cohere": [("message-end", '{"delta":{"finish_reason":"MAX_TOKENS"}}')],
    }
    frames = ends[name]
    answers = [reading.feed(event, data) for event, data in frames]
    assert answers[-1] is not None
    assert answers[-1].reason == "a completion"
    assert reading.feed(None, "[DONE]") == answers[-1]
    assert reading.feed("error", '{"error": {"type": "api_error"}}') == answers[-1]
    assert reading.cut() == answers[-1]


def test_model_and_auth_details_say_what_to_do() -> None:
    gone = classify(404, ProviderError("not_found_error", None, "model: gpt-x"), "gpt-x")
    assert gone.detail
    assert "gpt-x" in gone.detail
    assert gone.detail.endswith("update probe.models")
    long = classify(404, ProviderError(None, "model_not_found", "x" * 5000), "gpt-x")
    assert long.detail
    assert len(long.detail) <= DETAIL_MAX
    assert long.detail.endswith("update probe.models")
    refused = classify(401, ProviderError(message="Incorrect API key provided: sk-abc123"), "m")
    assert refused.detail
    assert "refused the probe's API key" in refused.detail
    assert "sk-abc123" not in refused.detail


@pytest.mark.parametrize("name", WIRE_FORMATS)
@pytest.mark.parametrize(
    "body",
    [
        b'{"error": "model gpt-x does not exist"}',
        b'{"detail": "Not Found"}',
        b'{"detail": [{"loc": ["body", "model"], "msg": "field required"}]}',
        b'{"message": "invalid api token"}',
        b"<html><body>502 Bad Gateway</body></html>",
        b"",
        b"\xff\xfe\x00garbage",
    ],
)
def test_error_bodies_of_any_shape_are_classified(name: str, body: bytes) -> None:
    fmt = wire_format(name)
    for status in (400, 401, 404, 422, 429, 500, 502, 503):
        answer = fmt.read(status, body, "gpt-x")
        assert answer.error is not None
        assert answer.detail is None or len(answer.detail) <= DETAIL_MAX


def test_openai_compatible_error_shapes() -> None:
    fmt = wire_format("openai")
    said = fmt.read(422, b'{"detail": [{"loc": ["body"], "msg": "field required"}]}', "m")
    assert said.error is ProbeError.CONFIG
    assert said.detail
    assert "field required" in said.detail
    text = fmt.read(400, b'{"error": "max_tokens must be at least 1"}', "m")
    assert text.detail
    assert "max_tokens must be at least 1" in text.detail
    mistral = (
        b'{"object":"error","message":"Invalid model: m-x","type":"invalid_model","code":"1500"}'
    )
    assert fmt.read(400, mistral, "m-x").error is ProbeError.MODEL


# ============================================================== building blocks


def test_wire_format_is_found_by_name() -> None:
    for name in WIRE_FORMATS:
        fmt = wire_format(name)
        assert isinstance(fmt, WireFormat)
        assert fmt.name == name
        assert fmt.default_url
    for wrong in ("wire", "__init__", "os", "../bot"):
        with pytest.raises(LookupError):
            wire_format(wrong)


def test_extra_merges_nested_and_removes_with_none() -> None:
    body = {"a": 1, "cfg": {"x": 1, "y": 2}, "keep": [1]}
    extra = {"a": None, "cfg": {"y": None, "z": {"deep": True}}, "new": [2]}
    out = merged(body, extra)
    assert out == {"cfg": {"x": 1, "z": {"deep": True}}, "keep": [1], "new": [2]}
    assert body == {"a": 1, "cfg": {"x": 1, "y": 2}, "keep": [1]}  # untouched
    call = wire_format("gemini").call(
        "https://g",
        "gemini-x",
        "k",
        stream=False,
        extra={"generationConfig": {"thinkingConfig": {"thinkingBudget": 0}}},
    )
    assert call.json["generationConfig"] == {
        "maxOutputTokens": 1,
        "thinkingConfig": {"thinkingBudget": 0},
    }


def test_the_call_shapes() -> None:
    built = {n: wire_format(n).call("https://x/", "m", "K", stream=False) for n in WIRE_FORMATS}
    assert built["anthropic"].headers["x-api-key"] == "K"
    assert built["anthropic"].headers["anthropic-version"] == "2023-06-01"
    assert built["anthropic"].json == {"model": "m", "max_tokens": 1, "messages": PING}
    assert built["openai"].headers["authorization"] == "Bearer K"
    assert built["gemini"].url == "https://x/v1beta/models/m:generateContent"
    assert built["gemini"].json == {
        "contents": [{"role": "user", "parts": [{"text": "ping"}]}],
        "generationConfig": {"maxOutputTokens": 1},
    }
    assert built["cohere"].url == "https://x/v2/chat"
    assert all(c.method == "POST" for c in built.values())
    assert "stream" not in built["cohere"].json
    without = wire_format("openai").call("https://x", "m", None, stream=True)
    assert "authorization" not in without.headers
    assert without.json["stream"] is True
    path = wire_format("gemini").call("https://x", "models/a b", None, stream=True).url
    assert path == "https://x/v1beta/models/a%20b:streamGenerateContent?alt=sse"


def _events(text: str) -> list[tuple[str | None, str]]:
    parser = SseParser()
    found = [parser.feed_line(line) for line in text.splitlines()]
    return [e for e in found if e is not None]


def test_the_sse_parser_follows_the_standard() -> None:
    text = (
        ": a comment\n"
        "event: message_start\n"
        'data: {"a":\n'
        "data: 1}\n"
        "id: 7\n"
        "retry: 100\n"
        "\n"
        "event: lonely\n"
        "\n"
        "data:no space\r\n"
        "\r\n"
        "data\n"
        "\n"
        "\n"
    )
    assert _events(text) == [("message_start", '{"a":\n1}'), (None, "no space"), (None, "")]
    parser = SseParser()
    assert parser.feed_line("data: tail") is None
    assert parser.flush() == (None, "tail")


# ============================================================== 3. hostile bodies


def _deep(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


HOSTILE_MESSAGE = "<!channel> \x00\x07\x1b[31mred\x1b[0m\n\rforged line\u202e" + "y" * 20000


HUGE = json.dumps({"padding": "x" * (5 * 1024 * 1024)}).encode()


@pytest.mark.parametrize("name", WIRE_FORMATS)
def test_hostile_bodies_are_bounded(name: str) -> None:
    fmt = wire_format(name)
    bodies = [
        _deep(10_000),
        b'{"a":' * 10_000,
        json.dumps({"error": {"type": "api_error", "message": HOSTILE_MESSAGE}}).encode(),
        json.dumps({"message": HOSTILE_MESSAGE, "detail": HOSTILE_MESSAGE}).encode(),
        json.dumps({"error": HOSTILE_MESSAGE}).encode(),
        json.dumps([{"error": {"message": HOSTILE_MESSAGE, "status": HOSTILE_MESSAGE}}]).encode(),
        bytes(range(256)) * 100,
    ]
    for body in bodies:
        for status in (200, 400, 404, 500, 529):
            answer = fmt.read(status, body, "m")
            assert answer.error is not None
            _assert_bounded(answer)
    for status in (200, 500):  # 5 MB of JSON that is no answer
        answer = fmt.read(status, HUGE, "m")
        assert answer.error is not None
        _assert_bounded(answer)


def _assert_bounded(answer: Answer) -> None:
    for text in (answer.reason, answer.detail or "", answer.stop_reason or ""):
        assert len(text) <= DETAIL_MAX
        assert not any(c in text for c in "\x00\x07\x1b\n\r\u202e")


@pytest.mark.parametrize("name", WIRE_FORMATS)
def test_a_huge_completion_is_still_a_completion(name: str) -> None:
    fmt = wire_format(name)
    big = "x" * (5 * 1024 * 1024)
    bodies = {
        "anthropic": {
            "type": "message",
            "content": [{"type": "text", "text": big}],
            "stop_reason": "max_tokens",
        },
        "openai": {"choices": [{"message": {"content": big}, "finish_reason": "length"}]},
        "gemini": {
            "candidates": [{"content": {"parts": [{"text": big}]}, "finishReason": "MAX_TOKENS"}]
        },
        "cohere": {"message": {"content": [{"text": big}]}, "finish_reason": "MAX_TOKENS"},
    }
    answer = fmt.read(200, json.dumps(bodies[name]).encode(), "m")
    assert answer.reason == "a completion"


@pytest.mark.parametrize("name", WIRE_FORMATS)
def test_hostile_stream_events_are_bounded(name: str) -> None:
    events = [
        (None, _deep(10_000).decode()),
        ("error", HOSTILE_MESSAGE),
        ("message_delta", json.dumps({"delta": {"stop_reason": HOSTILE_MESSAGE}})),
        (None, json.dumps({"error": {"message": HOSTILE_MESSAGE}})),
        ("message-end", json.dumps({"delta": {"error": HOSTILE_MESSAGE}})),
        (None, json.dumps({"candidates": [{"finishReason": HOSTILE_MESSAGE}]})),
        (None, "\x00" * 1000),
    ]
    for event, data in events:
        reading = wire_format(name).stream("m")
        answer = reading.feed(event, data)
        _assert_bounded(answer or reading.cut())
        _assert_bounded(reading.cut())


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "error",
                    "message",
                    "type",
                    "code",
                    "choices",
                    "candidates",
                    "finish_reason",
                    "stop_reason",
                    "detail",
                    "delta",
                    "status",
                ]
            ),
            inner,
            max_size=5,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=_JSON, status=st.sampled_from([200, 201, 400, 401, 404, 429, 500, 503, 529]))
def test_any_json_shape_is_read_without_crashing(doc: Any, status: int) -> None:
    body = json.dumps(doc).encode()
    for name in WIRE_FORMATS:
        fmt = wire_format(name)
        _assert_bounded(fmt.read(status, body, "m"))
        reading = fmt.stream("m")
        answer = reading.feed(None, body.decode())
        _assert_bounded(answer or reading.cut())


@settings(max_examples=100, deadline=None)
@given(body=st.binary(max_size=300))
def test_any_bytes_are_read_without_crashing(body: bytes) -> None:
    for name in WIRE_FORMATS:
        _assert_bounded(wire_format(name).read(200, body, "m"))


def test_probecall_is_frozen() -> None:
    call = ProbeCall("POST", "https://x", {"x-api-key": "k"}, {})
    with pytest.raises(AttributeError):
        call.url = "https://y"  # type: ignore[misc]
