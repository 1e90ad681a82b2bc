"""Anthropic's Messages API (``POST /v1/messages``).

A completion is a ``message`` with a ``stop_reason`` (``max_tokens`` for our one token). Errors
are ``{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}``. A
stream is named events: ``message_start``, ``content_block_start``, ``content_block_delta``
(the first token), ``message_delta`` (the stop reason), ``message_stop`` (the end), ``ping``,
and ``error`` (an error after the 200, e.g. overloaded mid-stream).
"""

from __future__ import annotations

from types import MappingProxyType
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

#: The API version every Anthropic client may send (newer ones are opt-in).
VERSION = "2023-06-01"
MARKER = "stop_reason"


def error_of(doc: Any) -> ProviderError | None:
    error = dig(doc, "error")
    if not isinstance(error, dict):
        return ProviderError(message=text_of(error)) if dig(doc, "type") == "error" else None
    return ProviderError(
        word_of(error.get("type")),
        word_of(dig(error, "details", "error_code")),
        text_of(error.get("message")),
    )


def stop_of(doc: Any) -> str | None:
    return text_of(dig(doc, "stop_reason")) if dig(doc, "type") == "message" else None


class AnthropicStream(EventReading):
    end = "message_stop"
    marker = MARKER

    def on_event(self, event: str | None, data: str) -> Answer | None:
        doc = self.json(data)
        if event == "error":
            found = None if isinstance(doc, NotJson) else error_of(doc)
            return self.failed(found or ProviderError(message=data))
        if isinstance(doc, NotJson):
            return self.bad(doc, data)
        kind = event or text_of(dig(doc, "type"))
        if kind == "content_block_delta":
            self.started = True
        elif kind == "message_delta":
            self.stop = text_of(dig(doc, "delta", "stop_reason")) or self.stop
        elif kind == "message_stop":
            return self.ended()
        return None


class AnthropicFormat(JsonWire):
    name = "anthropic"
    default_url = "https://api.anthropic.com"
    marker = MARKER
    key_header = "x-api-key"
    key_scheme = ""
    headers = MappingProxyType({"anthropic-version": VERSION})
    error_of = staticmethod(error_of)
    stop_of = staticmethod(stop_of)
    stream_reading = AnthropicStream

    def request(self, model: str, *, stream: bool) -> tuple[str, dict[str, Any]]:
        return "/v1/messages", chat_body(model, stream=stream)


FORMAT: WireFormat = AnthropicFormat()  # mypy checks it speaks the protocol
