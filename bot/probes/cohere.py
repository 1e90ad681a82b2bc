"""Cohere's v2 Chat API (``POST {api_url}/v2/chat``).

A completion has a ``finish_reason`` (``MAX_TOKENS`` for our one token); ``ERROR`` and
``TIMEOUT`` are the API failing inside a 200. Errors are ``{"id": ..., "message": "..."}``. A
stream is named events (``message-start``, ``content-start``, ``content-delta``: the first
token, ``content-end``, ``message-end``: the end, carrying the finish reason or an ``error``),
then ``data: [DONE]``.
"""

from __future__ import annotations

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
)

MARKER = "finish_reason"
#: Finish reasons that are the API failing, not the model stopping.
FAILED = frozenset({"ERROR", "TIMEOUT"})
#: Stream events that carry generated content.
_CONTENT = frozenset({"content-delta", "tool-plan-delta", "tool-call-start", "tool-call-delta"})


def error_of(doc: Any) -> ProviderError | None:
    if not isinstance(doc, dict):
        return None
    finish = text_of(doc.get("finish_reason"))
    if finish and finish.upper() in FAILED:
        return ProviderError(type=f"finish_reason {finish}", message=text_of(doc.get("error")))
    message = doc.get("message")
    if isinstance(message, str):
        return ProviderError(message=message or None)
    error = doc.get("error")
    return ProviderError(message=error) if isinstance(error, str) and error else None


def stop_of(doc: Any) -> str | None:
    return text_of(dig(doc, "finish_reason"))


class CohereStream(EventReading):
    end = "message-end"
    marker = MARKER

    def on_event(self, event: str | None, data: str) -> Answer | None:
        if data.strip() == "[DONE]":
            return self.cut()
        doc = self.json(data)
        if isinstance(doc, NotJson):
            return self.bad(doc, data)
        kind = event or text_of(dig(doc, "type"))
        if kind in _CONTENT:
            self.started = True
        if kind == "message-end":
            delta = dig(doc, "delta")
            found = error_of(delta) if isinstance(delta, dict) else None
            if found is None and text_of(dig(delta, "error")):
                found = ProviderError(type="error", message=text_of(dig(delta, "error")))
            if found is not None:
                return self.failed(found)
            self.stop = text_of(dig(delta, "finish_reason"))
            return self.ended()
        found = error_of(doc) if kind is None or kind == "error" else None
        return self.failed(found) if found is not None else None


class CohereFormat(JsonWire):
    name = "cohere"
    default_url = "https://api.cohere.com"
    marker = MARKER
    error_of = staticmethod(error_of)
    stop_of = staticmethod(stop_of)
    stream_reading = CohereStream

    def request(self, model: str, *, stream: bool) -> tuple[str, dict[str, Any]]:
        return "/v2/chat", chat_body(model, stream=stream)


FORMAT: WireFormat = CohereFormat()  # mypy checks it speaks the protocol
