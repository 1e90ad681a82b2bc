"""OpenAI Chat Completions (``POST {api_url}/chat/completions``), and the APIs that copy it
(Groq, Together, Fireworks, DeepSeek, xAI, Mistral, OpenRouter, Perplexity): ``api_url`` is the
base with its version path (``https://api.openai.com/v1``, ``https://api.groq.com/openai/v1``).

A completion has ``choices[0].finish_reason``. Errors are ``{"error": {"message", "type",
"code"}}``; copies also send ``{"error": "text"}``, ``{"detail": ...}`` (FastAPI) or a bare
``{"object": "error", "message": ...}`` (Mistral). A stream is ``data: {chunk}`` events ending
with ``data: [DONE]``; a chunk carrying ``error`` is an error after the 200 (OpenRouter).
"""

from __future__ import annotations

import json
from typing import Any

from bot.probes.wire import (
    Answer,
    EventReading,
    JsonWire,
    NotJson,
    ProviderError,
    WireFormat,
    chat_body,
    dig,
    text_of,
    word_of,
)

MARKER = "choices[0].finish_reason"
DONE = "[DONE]"


def error_of(doc: Any) -> ProviderError | None:
    if not isinstance(doc, dict):
        return None
    error = doc.get("error")
    if isinstance(error, dict) and error:
        message = text_of(error.get("message")) or text_of(error.get("metadata"))
        return ProviderError(word_of(error.get("type")), word_of(error.get("code")), message)
    if isinstance(error, str) and error:
        return ProviderError(message=error)
    if "choices" in doc:
        return None
    if "detail" in doc:
        return ProviderError(message=_detail(doc["detail"]))
    if doc.get("object") == "error" or isinstance(doc.get("message"), str):
        message = text_of(doc.get("message"))
        return ProviderError(word_of(doc.get("type")), word_of(doc.get("code")), message)
    return None


def _detail(detail: Any) -> str:
    """FastAPI's ``detail``: a string, or a list of ``{"loc", "msg"}`` validation errors."""
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        said = [text_of(dig(item, "msg")) for item in detail[:5]]
        return "; ".join(s for s in said if s) or "invalid request"
    return json.dumps(detail)[:400]


def stop_of(doc: Any) -> str | None:
    return text_of(dig(doc, "choices", 0, "finish_reason"))


class OpenAIStream(EventReading):
    end = DONE
    marker = MARKER

    def on_event(self, event: str | None, data: str) -> Answer | None:
        if data.strip() == DONE:
            return self.ended()
        doc = self.json(data)
        if isinstance(doc, NotJson):
            return self.bad(doc, data)
        found = error_of(doc)
        if found is not None or event == "error":
            return self.failed(found or ProviderError(message=data))
        choices = dig(doc, "choices")
        for choice in choices if isinstance(choices, list) else []:
            self.started = self.started or _has_token(dig(choice, "delta"))
            self.stop = text_of(dig(choice, "finish_reason")) or self.stop
        return None


def _has_token(delta: Any) -> bool:
    """A delta with anything but its role: content, reasoning, a refusal, a tool call."""
    return isinstance(delta, dict) and any(v for k, v in delta.items() if k != "role")


class OpenAIFormat(JsonWire):
    name = "openai"
    default_url = "https://api.openai.com/v1"
    marker = MARKER
    error_of = staticmethod(error_of)
    stop_of = staticmethod(stop_of)
    stream_reading = OpenAIStream

    def request(self, model: str, *, stream: bool) -> tuple[str, dict[str, Any]]:
        return "/chat/completions", chat_body(model, stream=stream)


FORMAT: WireFormat = OpenAIFormat()  # mypy checks it speaks the protocol
