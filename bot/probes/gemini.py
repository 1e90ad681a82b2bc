"""Google's Gemini API (``POST {api_url}/v1beta/models/{model}:generateContent``).

The key goes in the ``x-goog-api-key`` header, never in the URL (URLs end up in logs). A
completion is a candidate with a ``finishReason`` (``MAX_TOKENS`` for our one token; a thinking
model may send no text at all with it). Errors are ``{"error": {"code": 404, "message": ...,
"status": "NOT_FOUND", "details": [...]}}``; a bad key is a 400 whose ``ErrorInfo`` reason is
``API_KEY_INVALID``. A stream (``:streamGenerateContent?alt=sse``) is ``data:`` events each
holding a whole ``GenerateContentResponse``; the one with a ``finishReason`` is the last.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from bot.probes.wire import (
    PROMPT,
    Answer,
    EventReading,
    JsonWire,
    NotJson,
    ProviderError,
    WireFormat,
    dig,
    text_of,
    word_of,
)

MARKER = "finishReason"
API_VERSION = "v1beta"


def model_path(model: str) -> str:
    """``models/<id>`` (or a ``tunedModels/`` name as given), quoted for a path segment."""
    if not model.startswith(("models/", "tunedModels/")):
        model = f"models/{model}"
    return quote(model, safe="/-._~")


def error_of(doc: Any) -> ProviderError | None:
    if isinstance(doc, list) and len(doc) == 1:  # the JSON-array stream form
        doc = doc[0]
    error = dig(doc, "error")
    if not isinstance(error, dict):
        return None
    details = error.get("details")
    reasons = (
        [dig(d, "reason") for d in details if isinstance(d, dict)]
        if isinstance(details, list)
        else []
    )
    reason = next((word_of(r) for r in reasons if word_of(r)), None)
    return ProviderError(
        word_of(error.get("status")),
        reason or word_of(error.get("code")),
        text_of(error.get("message")),
    )


def stop_of(doc: Any) -> str | None:
    candidates = dig(doc, "candidates")
    for candidate in candidates if isinstance(candidates, list) else []:
        reason = text_of(dig(candidate, "finishReason"))
        if reason and reason != "FINISH_REASON_UNSPECIFIED":
            return reason
    blocked = text_of(dig(doc, "promptFeedback", "blockReason"))
    return f"blocked: {blocked}" if blocked else None


def _has_part(doc: Any) -> bool:
    candidates = dig(doc, "candidates")
    for candidate in candidates if isinstance(candidates, list) else []:
        parts = dig(candidate, "content", "parts")
        if isinstance(parts, list) and any(isinstance(p, dict) and any(p.values()) for p in parts):
            return True
    return False


class GeminiStream(EventReading):
    end = "a finishReason"
    marker = MARKER

    def on_event(self, event: str | None, data: str) -> Answer | None:
        doc = self.json(data)
        if isinstance(doc, NotJson):
            return self.bad(doc, data)
        found = error_of(doc)
        if found is not None:
            return self.failed(found)
        self.started = self.started or _has_part(doc)
        self.stop = stop_of(doc)
        return self.ended() if self.stop else None


class GeminiFormat(JsonWire):
    name = "gemini"
    default_url = "https://generativelanguage.googleapis.com"
    marker = MARKER
    key_header = "x-goog-api-key"
    key_scheme = ""
    error_of = staticmethod(error_of)
    stop_of = staticmethod(stop_of)
    stream_reading = GeminiStream

    def request(self, model: str, *, stream: bool) -> tuple[str, dict[str, Any]]:
        body: dict[str, Any] = {
            "contents": [{"role": "user", "parts": [{"text": PROMPT}]}],
            "generationConfig": {"maxOutputTokens": 1},
        }
        method = "streamGenerateContent?alt=sse" if stream else "generateContent"
        return f"/{API_VERSION}/{model_path(model)}:{method}", body


FORMAT: WireFormat = GeminiFormat()  # mypy checks it speaks the protocol
