"""What every inference wire format shares: the call, the answer, and how answers are judged.

A format (one module each: ``anthropic``, ``openai``, ``gemini``, ``cohere``) only builds its
request and says where its error object and its completion marker are. Judging is written once
here, so "5 of 5 calls answered 529 overloaded" means the same thing for every provider:
:func:`classify` maps a status and the provider's error object to a :class:`ProbeError`, and
:func:`read_body` applies it to a whole answer. Every string taken from an answer is hostile: it
is cleaned (secrets and the key masked, one line, at most :data:`DETAIL_MAX` characters) before
it reaches an :class:`Answer`.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

from bot.logs import MASK, scrub
from bot.models import ProbeError
from bot.outside import Unreadable, clip, load_json, one_line

#: Characters of a diagnostic, whatever the provider sent.
DETAIL_MAX = 300
#: Bytes of a body this module will parse (the network read is bounded by the caller).
BODY_MAX = 64 * 1024 * 1024
#: The one-token prompt every format sends.
PROMPT = "ping"
#: No extra body (a read-only default).
EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True, repr=False)
class ProbeCall:
    """One request, ready for the wire. ``headers`` hold the key: never log or show them."""

    method: str
    url: str
    headers: dict[str, str]
    json: dict[str, Any]

    def __repr__(self) -> str:
        names = ", ".join(sorted(self.headers))
        return scrub(f"ProbeCall({self.method} {self.url}, headers: {names}, json={self.json!r})")


@dataclass(frozen=True, slots=True)
class Answer:
    """What one call proved. ``reason`` is short and countable ("5 of 5 calls answered
    <reason>"); ``detail`` is the diagnostic (the provider's words, cleaned)."""

    error: ProbeError | None
    reason: str
    detail: str | None = None
    stop_reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class ProviderError:
    """The error object a format found in an answer, in the few words classification needs."""

    type: str | None = None
    code: str | None = None
    message: str | None = None


COMPLETION = "a completion"


class StreamReading(Protocol):
    """One streamed answer, fed event by event (after a 2xx ``text/event-stream``)."""

    #: The first content delta (the first token) has arrived.
    started: bool

    def feed(self, event: str | None, data: str) -> Answer | None:
        """One SSE event; the final Answer once the stream ended properly or carried an
        error, ``None`` while it goes on."""
        ...

    def cut(self) -> Answer:
        """The stream hit EOF: the final Answer if it had one, else an ANSWER failure."""
        ...


@runtime_checkable
class WireFormat(Protocol):
    """One API dialect. ``call`` builds the request (``extra`` merged over the body, see
    :func:`merged`); ``read`` judges a whole answer of any status; ``stream`` reads a 2xx
    event stream. ``key``, when given, is masked from every word kept (a secret registered
    with :func:`bot.logs.register_secret` always is)."""

    name: str
    #: The provider's own base URL (``api_url`` in the catalog).
    default_url: str

    def call(
        self,
        api_url: str,
        model: str,
        key: str | None,
        *,
        stream: bool,
        extra: Mapping[str, Any] = EMPTY,
    ) -> ProbeCall: ...

    def read(self, status: int, body: bytes, model: str, *, key: str | None = None) -> Answer: ...

    def stream(self, model: str, *, key: str | None = None) -> StreamReading: ...


# ------------------------------------------------------------------ building calls


def merged(body: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``extra`` over ``body``: mappings merge key by key, a ``None`` removes the key, anything
    else replaces. The config can so say ``{max_tokens: null, max_completion_tokens: 1}``."""
    out = copy.deepcopy(body)
    for name, value in extra.items():
        if value is None:
            out.pop(name, None)
        elif isinstance(value, Mapping) and isinstance(out.get(name), dict):
            out[name] = merged(out[name], value)
        else:
            out[name] = copy.deepcopy(value)
    return out


def base_url(api_url: str) -> str:
    return api_url.rstrip("/")


# ------------------------------------------------------------------ cleaning text

#: "Incorrect API key provided: sk-...": whatever follows is the key, or a part of it.
_KEY_ECHO = re.compile(r"(?i)(api[ _-]?key(?: provided)?\s*[:=]\s*)[^\s,;]+")


def clean(text: object, key: str | None = None, limit: int = DETAIL_MAX) -> str:
    """A provider's string fit for a diagnostic: the key and every registered secret masked,
    control characters removed, one line, at most ``limit`` characters."""
    raw = text if isinstance(text, str) else ("" if text is None else str(text))
    cut = _unkeyed(raw[: limit * 8], key)  # a 5 MB message is cut before any regex runs
    masked = _KEY_ECHO.sub(rf"\g<1>{MASK}", scrub(cut))
    return _unkeyed(one_line(masked, limit), key)  # again: a removed control char may join it


def _unkeyed(text: str, key: str | None) -> str:
    return text.replace(key, MASK) if key else text


def _joined(prefix: str, message: str | None, suffix: str = "") -> str:
    """``prefix: message suffix`` within :data:`DETAIL_MAX`, the message cut first (the
    suffix is the advice, which must survive)."""
    room = DETAIL_MAX - len(prefix) - len(suffix) - 2
    body = f": {clip(message, max(room, 0))}" if message else ""
    return clip(f"{prefix}{body}{suffix}", DETAIL_MAX)


# ------------------------------------------------------------------ classification

_AUTH_STATUSES = frozenset({401, 403, 498})  # 498: Cohere's "invalid token"
_AUTH_CODES = frozenset(
    {"authentication_error", "permission_error", "invalid_api_key", "api_key_invalid"}
    | {"unauthenticated", "permission_denied"}
)
_MODEL_CODES = frozenset(
    {"model_not_found", "model_decommissioned", "invalid_model", "model_not_available"}
)
_RETIRED = re.compile(
    r"retired|deprecated|decommissioned|no longer (?:available|supported|served)|"
    r"(?:has been|was) removed|sunset",
    re.I,
)
_MISSING = re.compile(
    r"not found|does not exist|not exist|no such model|unknown model|invalid model", re.I
)
_MODEL_WORD = re.compile(r"\bmodels?\b", re.I)


def classify(
    status: int, error: ProviderError | None, model: str, *, key: str | None = None
) -> Answer:
    """The one taxonomy of answers that are not a completion (the rules, in order).

    ``status`` is the HTTP status; ``error`` what the format found in the body (``None``:
    nothing readable). A 2xx reaching here carried an error object. ``key`` is masked from
    every word kept (registered secrets always are).
    """
    said = _Said.of(status, error or ProviderError(), key)
    return (
        _overloaded(said)
        or _in_2xx(said)
        or _rate_limited(said)
        or _refused(said)
        or _model_gone(said, model)
        or _by_status(said)
    )


@dataclass(frozen=True, slots=True)
class _Said:
    """An error answer, cleaned: its status, message and type/code words."""

    status: int
    message: str | None
    codes: frozenset[str]
    tag: str  # the type and code as shown ("api_error", "INVALID_ARGUMENT, API_KEY_INVALID")

    @classmethod
    def of(cls, status: int, error: ProviderError, key: str | None) -> _Said:
        words = [w for w in (error.type, error.code) if w and w != str(status)]
        return cls(
            status,
            clean(error.message, key) if error.message else None,
            frozenset(w.lower() for w in (error.type, error.code) if w),
            ", ".join(clean(w, key, 60) for w in words),
        )

    @property
    def where(self) -> str:
        return f"HTTP {self.status}, {self.tag}" if self.tag else f"HTTP {self.status}"


def _overloaded(said: _Said) -> Answer | None:
    """Anthropic's signal (529, or ``overloaded_error`` at any status, mid-stream too) is
    "529 overloaded"; Gemini's (``UNAVAILABLE`` "The model is overloaded", any status) is
    "503 overloaded"; any other 5xx saying it is overloaded is "<status> overloaded"."""
    overloaded = bool(said.message and "overloaded" in said.message.lower())
    if said.status == 529 or "overloaded_error" in said.codes:
        reason = "529 overloaded"
    elif overloaded and "unavailable" in said.codes:
        reason = "503 overloaded"
    elif overloaded and said.status >= 500:
        reason = f"{said.status} overloaded"
    else:
        return None
    return Answer(ProbeError.HTTP, reason, _joined(said.where, said.message))


def _in_2xx(said: _Said) -> Answer | None:
    if not 200 <= said.status < 300:
        return None
    where = f"HTTP {said.status} carried an error ({said.tag or 'no type'})"
    return Answer(
        ProbeError.ANSWER, f"a {said.status} with an error object", _joined(where, said.message)
    )


def _rate_limited(said: _Said) -> Answer | None:
    if said.status != 429:
        return None
    return Answer(
        ProbeError.RATE_LIMITED, "rate limited (HTTP 429)", _joined(said.where, said.message)
    )


def _refused(said: _Said) -> Answer | None:
    """401/403 (and Cohere's 498), or a 4xx whose code says the key is bad (Gemini's 400
    ``API_KEY_INVALID``): the key was refused; its words never quote it (masked)."""
    if said.status not in _AUTH_STATUSES and not (
        400 <= said.status < 500 and said.codes & _AUTH_CODES
    ):
        return None
    prefix = f"the provider refused the probe's API key ({said.where})"
    return Answer(
        ProbeError.AUTH, f"key refused (HTTP {said.status})", _joined(prefix, said.message)
    )


def _by_status(said: _Said) -> Answer:
    if said.status >= 500:
        reason = f"HTTP {said.status} ({clip(said.tag, 40)})" if said.tag else f"HTTP {said.status}"
        return Answer(
            ProbeError.HTTP, reason, _joined(f"the provider failed ({said.where})", said.message)
        )
    if 400 <= said.status < 500:
        prefix = f"the probe request was refused ({said.where})"
        advice = ": check the probe's api_url and extra_body"
        return Answer(
            ProbeError.CONFIG,
            f"request refused (HTTP {said.status})",
            _joined(prefix, said.message, advice),
        )
    prefix = f"unexpected HTTP {said.status} (a redirect?)"
    return Answer(
        ProbeError.CONFIG,
        f"HTTP {said.status}",
        _joined(prefix, said.message, ": check the probe's api_url"),
    )


def _model_gone(said: _Said, model: str) -> Answer | None:
    """The model is not served: a model code (``model_not_found``, ``model_decommissioned``),
    or a 400/404/410 whose words speak of the model (a 404 that does not is a wrong URL, and
    a 400 must name the model itself to say it is retired)."""
    gone = _gone(said, model)
    if gone is None:
        return None
    prefix = f"model {clip(model, 80)} is {gone} ({said.where})"
    return Answer(
        ProbeError.MODEL, f"model {gone}", _joined(prefix, said.message, ": update probe.models")
    )


def _gone(said: _Said, model: str) -> str | None:
    message = said.message or ""
    retired = bool(_RETIRED.search(message.replace(model, "")))  # not "gpt-x-deprecated-1"
    if said.codes & _MODEL_CODES:
        return "retired" if retired or "model_decommissioned" in said.codes else "not found"
    if said.status not in (400, 404, 410) or not message:
        return None
    named = model.lower() in message.lower()
    spoken = named or bool(_MODEL_WORD.search(message))
    if retired and (named or (said.status != 400 and spoken)):
        return "retired"
    if said.status == 410 and spoken:
        return "retired"
    if said.status == 404 and spoken:
        return "not found"
    if said.status == 400 and spoken and _MISSING.search(message):
        return "not found"
    return None


# ------------------------------------------------------------------ whole answers

ErrorOf = Callable[[Any], ProviderError | None]
StopOf = Callable[[Any], str | None]


class NotJson:
    """A body or event that is not JSON, and why (too big, too deep, not UTF-8, not JSON)."""

    def __init__(self, why: str) -> None:
        self.why = why

    @property
    def short(self) -> str:
        """ "not JSON", "nested 10000 deep (at most 64)", "not UTF-8 text"..."""
        return clip("not JSON" if self.why.startswith("not JSON") else self.why, 80)


def parse(body: bytes | str) -> Any:
    """The JSON of a body, or a :class:`NotJson` saying why not (never raises: too big, too
    deep, not UTF-8, not JSON are all answers a provider can send)."""
    try:
        return load_json(body, limit=BODY_MAX)
    except Unreadable as exc:
        return NotJson(str(exc))


def read_body(
    status: int,
    body: bytes,
    model: str,
    *,
    error_of: ErrorOf,
    stop_of: StopOf,
    marker: str,
    key: str | None = None,
) -> Answer:
    """A whole answer judged: ``error_of`` finds the format's error object, ``stop_of`` its
    completion marker (named ``marker`` in diagnostics)."""
    doc = parse(body) if body.strip() else NotJson("empty")
    if not 200 <= status < 300:
        found = _safely(error_of, doc) if not isinstance(doc, NotJson) else _text_error(body)
        return classify(status, found, model, key=key)
    if isinstance(doc, NotJson):
        if doc.why == "empty":
            return Answer(ProbeError.ANSWER, f"an empty {status}", f"HTTP {status} with no body")
        return Answer(
            ProbeError.ANSWER,
            f"a {status} that is not JSON",
            _joined(f"HTTP {status} body is {doc.short}", _excerpt(body, key)),
        )
    found = _safely(error_of, doc)
    if found is not None:
        return classify(status, found, model, key=key)
    stop = _safely(stop_of, doc)
    return completion(stop, f"no {marker} in the answer", _shape(doc, key), key)


def completion(stop: str | None, missing: str, held: str | None, key: str | None) -> Answer:
    """A completion when it has its stop reason; else an ANSWER failure saying what is
    ``missing`` and what the answer ``held`` instead."""
    if stop:
        return Answer(None, COMPLETION, stop_reason=clean(stop, key, 60))
    return Answer(ProbeError.ANSWER, "no stop reason", _joined(missing, held))


def _safely(find: Callable[[Any], Any], doc: Any) -> Any:
    """A format's extractor on a hostile document: any shape it did not expect is nothing."""
    try:
        return find(doc)
    except (LookupError, TypeError, AttributeError, ValueError):
        return None


def _text_error(body: bytes) -> ProviderError | None:
    """A non-JSON error body (a proxy's page): its text, unless it is HTML."""
    text = body[:2000].decode("utf-8", "replace").strip()
    if not text:
        return None
    return ProviderError(message="an HTML page" if text.startswith("<") else text)


def _excerpt(body: bytes, key: str | None) -> str:
    return clean(body[:400].decode("utf-8", "replace"), key, 120)


def _shape(doc: Any, key: str | None) -> str:
    """What a JSON answer held instead (its top-level keys), for the diagnostic."""
    if isinstance(doc, dict):
        return clean("keys: " + ", ".join(str(k) for k in list(doc)[:12]), key, 160)
    return f"a JSON {type(doc).__name__}"


# ------------------------------------------------------------------ streams


class SseParser:
    """``text/event-stream`` lines to events, by the WHATWG rules: ``event:`` names the
    event, ``data:`` lines join with newlines, a blank line dispatches, ``:`` starts a
    comment, other fields (``id``, ``retry``) are ignored, an event with no data is none."""

    def __init__(self) -> None:
        self._event: str | None = None
        self._data: list[str] = []

    def feed_line(self, line: str) -> tuple[str | None, str] | None:
        """One line (its line break optional); ``(event, data)`` when it completes one."""
        line = line.rstrip("\r\n")
        if not line:
            return self.flush()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            self._event = value or None
        elif name == "data":
            self._data.append(value)
        return None

    def flush(self) -> tuple[str | None, str] | None:
        """The pending event, as a blank line would dispatch it (or what a lenient reader
        keeps at EOF; the standard drops it)."""
        event, data = self._event, self._data
        self._event, self._data = None, []
        return (event, "\n".join(data)) if data else None


class EventReading:
    """The bookkeeping every format's stream shares: first token, stop reason, the final
    Answer (kept, so a late ``feed`` or ``cut`` repeats it). A format writes :meth:`on_event`."""

    #: What ends the stream properly, for "a stream cut before <end>".
    end: str = "its end event"
    marker: str = "stop reason"

    def __init__(self, model: str, key: str | None = None) -> None:
        self.model = model
        self.key = key
        self.started = False
        self.stop: str | None = None
        self.answer: Answer | None = None

    def feed(self, event: str | None, data: str) -> Answer | None:
        if self.answer is None:
            self.answer = self.on_event(event, data)
        return self.answer

    def on_event(self, event: str | None, data: str) -> Answer | None:
        raise NotImplementedError

    def cut(self) -> Answer:
        if self.answer is None:
            when = "after the first token" if self.started else "before the first token"
            self.answer = Answer(
                ProbeError.ANSWER,
                f"a stream cut before {self.end}",
                f"the stream ended {when}, without {self.end}",
            )
        return self.answer

    # helpers for on_event

    def json(self, data: str) -> Any:
        """An event's JSON; a :class:`NotJson` is turned into the Answer by :meth:`bad`."""
        return parse(data)

    def bad(self, doc: NotJson, data: str) -> Answer:
        return Answer(
            ProbeError.ANSWER,
            "a stream event that is not JSON",
            _joined(f"a stream event is {doc.short}", clean(data[:400], self.key, 120)),
        )

    def failed(self, error: ProviderError) -> Answer:
        """An error event inside a 200 stream."""
        return classify(200, error, self.model, key=self.key)

    def ended(self) -> Answer:
        """The stream ended properly: a completion if it said why it stopped."""
        missing = f"the stream reached {self.end} without a {self.marker}"
        return completion(self.stop, missing, None, self.key)


def chat_body(model: str, *, stream: bool) -> dict[str, Any]:
    """The body Anthropic, OpenAI (and its copies) and Cohere v2 all take: one user message,
    one token back."""
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": 1,
        "messages": [{"role": "user", "content": PROMPT}],
    }
    if stream:
        body["stream"] = True
    return body


class JsonWire:
    """What every format shares: a JSON POST with the key in one header (never the URL), a
    whole answer judged by :func:`read_body` with the format's own finders, a stream read by
    its :class:`EventReading`. A format says only what differs: :meth:`request` (its path and
    body), its key header, ``error_of``/``stop_of`` and its stream class."""

    name: str
    default_url: str
    #: Where its completion's stop reason is, for "no stop reason (<marker>)".
    marker: str
    key_header: str = "authorization"
    key_scheme: str = "Bearer "
    headers: Mapping[str, str] = EMPTY
    stream_reading: type[EventReading]

    @staticmethod
    def error_of(doc: Any) -> ProviderError | None:
        """The format's error object in a parsed answer, if any."""
        raise NotImplementedError

    @staticmethod
    def stop_of(doc: Any) -> str | None:
        """The format's stop reason in a parsed completion, if any."""
        raise NotImplementedError

    def call(
        self,
        api_url: str,
        model: str,
        key: str | None,
        *,
        stream: bool,
        extra: Mapping[str, Any] = EMPTY,
    ) -> ProbeCall:
        headers = {
            **self.headers,
            "content-type": "application/json",
            "accept": "text/event-stream" if stream else "application/json",
        }
        if key:
            headers[self.key_header] = f"{self.key_scheme}{key}"
        path, body = self.request(model, stream=stream)
        return ProbeCall("POST", f"{base_url(api_url)}{path}", headers, merged(body, extra))

    def request(self, model: str, *, stream: bool) -> tuple[str, dict[str, Any]]:
        """The path under ``api_url`` and the default body of one call."""
        raise NotImplementedError

    def read(self, status: int, body: bytes, model: str, *, key: str | None = None) -> Answer:
        return read_body(
            status,
            body,
            model,
            error_of=self.error_of,
            stop_of=self.stop_of,
            marker=self.marker,
            key=key,
        )

    def stream(self, model: str, *, key: str | None = None) -> StreamReading:
        return self.stream_reading(model, key)


def dig(doc: Any, *path: str | int) -> Any:
    """``doc[a][b]...`` of a hostile document, ``None`` where it has another shape."""
    for step in path:
        if isinstance(step, int):
            if not isinstance(doc, list) or not -len(doc) <= step < len(doc):
                return None
            doc = doc[step]
        elif isinstance(doc, dict):
            doc = doc.get(step)
        else:
            return None
    return doc


def text_of(value: Any) -> str | None:
    """A string field of a hostile document: only a string is one."""
    return value if isinstance(value, str) and value else None


def word_of(value: Any) -> str | None:
    """A code or type field: a string, or a number written as one (Gemini's ``code``)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | str) and str(value):
        return str(value)
    return None


__all__ = [
    "BODY_MAX",
    "COMPLETION",
    "DETAIL_MAX",
    "EMPTY",
    "PROMPT",
    "Answer",
    "EventReading",
    "NotJson",
    "ProbeCall",
    "ProviderError",
    "SseParser",
    "StreamReading",
    "WireFormat",
    "base_url",
    "classify",
    "clean",
    "completion",
    "dig",
    "merged",
    "parse",
    "read_body",
    "text_of",
    "word_of",
]
