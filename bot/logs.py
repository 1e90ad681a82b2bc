"""Structured logs (structlog) that never carry a secret, and never more than a line's worth.

Two layers of protection: values under secret-looking keys are masked, and every secret value
the config holds is registered with :func:`register_secret` and scrubbed from every string of
every log line, wherever it hides (a URL, an exception message, a header dump), however it is
quoted or escaped there (``repr``, JSON, URL or HTML encoding): each character of a secret is
matched in every spelling those encodings give it. :func:`scrub` is also what every detail
string from outside goes through before it is stored or shown.

Log lines are bounded too: every value is cut at :data:`VALUE_MAX` characters and a library's
record at :data:`RECORD_MAX` (a junk 1 MB request body must not become a 1 MB log line), and a
message never carries a raw line break (a hostile string cannot forge a second log line).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog
from pydantic import SecretStr

MASK = "***"
#: Libraries whose INFO and DEBUG lines describe requests we receive or send (bodies, headers).
QUIET_LIBRARIES = ("httpx", "httpcore", "apscheduler", "slack_bolt", "slack_sdk", "aiohttp")
#: Characters kept of one value of a structured log line, and of a library's whole record.
VALUE_MAX = 2000
RECORD_MAX = 4000
_SECRET_KEY = re.compile(r"(token|secret|password|authorization|api[_-]?key|routing[_-]?key)", re.I)
_SHORTEST = 6  # shorter values cannot be scrubbed without mangling ordinary words
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None
_dirty = False
_NAMED_ENTITIES = {"&": "amp", "<": "lt", ">": "gt", '"': "quot", "'": "apos"}
#: How ``repr`` and JSON spell control characters (``\\n``, ``\\t``...).
_SHORT_ESCAPES = {"\n": "n", "\r": "r", "\t": "t", "\0": "0", "\b": "b", "\f": "f", "\v": "v"}


def register_secret(value: str | SecretStr | None) -> None:
    """Never log or show this value (nor any string containing it, however escaped).

    Surrounding whitespace is not part of a secret (a stray newline pasted with a key), so the
    stripped value is what is scrubbed.
    """
    global _dirty
    raw = value.get_secret_value() if isinstance(value, SecretStr) else value
    raw = raw.strip() if raw else raw
    if not raw or len(raw) < _SHORTEST or raw in _secrets:
        return
    _secrets.add(raw)
    _dirty = True  # compiled once at the next scrub, not once per secret (250 keys: 136 s)


def _compiled() -> re.Pattern[str] | None:
    """The pattern of every registered secret, longest first, compiled when it changed."""
    global _pattern, _dirty
    if _dirty:
        ordered = sorted(_secrets, key=len, reverse=True)
        _pattern = re.compile("|".join(_spellings(s) for s in ordered))
        _dirty = False
    return _pattern


def _spellings(secret: str) -> str:
    """A pattern matching ``secret`` as written, or escaped any way a library prints it."""
    return "".join(_char(c) for c in secret)


def _char(char: str) -> str:
    """One character of a secret in every spelling: itself, ``\\c``, ``\\xHH``,
    ``\\uHHHH``, ``%HH`` (UTF-8 bytes; ``+`` for a space), ``&#N;``, ``&#xH;`` and a named
    entity. Backslash escapes may be doubled (the ``repr`` of a JSON string)."""
    code = ord(char)
    utf8 = char.encode("utf-8")
    spellings = [
        re.escape(char),
        r"\\+" + re.escape(char),
        r"\\+u" + _hex(code, 4),
        "".join("%" + _hex(byte, 2) for byte in utf8),
        f"&#0*{code};",
        "&#[xX]0*" + _hex(code, 0) + ";",
    ]
    if code < 0x100:
        spellings.append(r"\\+x" + _hex(code, 2))
    if char in _SHORT_ESCAPES:
        spellings.append(r"\\+" + _SHORT_ESCAPES[char])
    if char == " ":
        spellings.append(r"\+")
    if char in _NAMED_ENTITIES:
        spellings.append(f"&{_NAMED_ENTITIES[char]};")
    return "(?:" + "|".join(spellings) + ")"


def _hex(number: int, width: int) -> str:
    """``number`` in hex digits, either case: ``%3a`` and ``%3A`` are the same byte."""
    digits = f"{number:0{width}x}"
    return "".join(f"[{d}{d.upper()}]" if d.isalpha() else d for d in digits)


def register_secrets(values: Iterable[str | SecretStr | None]) -> None:
    for value in values:
        register_secret(value)


def scrub(text: str) -> str:
    """``text`` with every registered secret masked, however it is escaped in it."""
    pattern = _compiled()
    return pattern.sub(MASK, text) if pattern is not None else text


def scrub_detail(text: str | None) -> str | None:
    """A detail string from outside (an exception, a page's diagnostic) fit to store and show:
    secrets masked."""
    return None if text is None else scrub(text)


def _scrub_value(key: str, value: Any) -> Any:
    if isinstance(value, SecretStr):
        return MASK
    if _SECRET_KEY.search(key) and isinstance(value, str | bytes) and value:
        return MASK
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: _scrub_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub_value(key, v) for v in value]
    if isinstance(value, BaseException):
        return scrub(f"{type(value).__name__}: {value}")
    return value


def redact(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: mask secret keys and scrub registered secret values."""
    for key in list(event_dict):
        event_dict[key] = _scrub_value(key, event_dict[key])
    return event_dict


def bound(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: every string value cut at :data:`VALUE_MAX`, and the message on
    one line (tracebacks keep theirs: they are rendered after it, below the line)."""
    for key, value in event_dict.items():
        if isinstance(value, str) and key not in ("exception", "stack"):
            event_dict[key] = _clip(value, VALUE_MAX)
    event = event_dict.get("event")
    if isinstance(event, str):
        event_dict["event"] = one_line(event)
    return event_dict


def one_line(text: str) -> str:
    """Line breaks and other control characters shown as escapes: one record, one line."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text) - limit} more)"


def _scrub_rendered(_logger: Any, _method: str, rendered: Any) -> Any:
    return scrub(rendered) if isinstance(rendered, str) else rendered


class _ScrubFilter(logging.Filter):
    """For stdlib loggers of libraries (slack-sdk, discord.py, httpx): scrub their output,
    cut it at :data:`RECORD_MAX` and keep it on one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = one_line(_clip(scrub(record.getMessage()), RECORD_MAX))
        record.args = ()
        if record.exc_info:  # the traceback is rendered after the filters: scrub it here
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text, record.exc_info = _clip(scrub(text), RECORD_MAX * 4), None
        return True


def configure(level: str = "info", fmt: str = "console", stream: Any = None) -> None:
    """Set up structlog and the stdlib root logger (libraries log through it)."""
    numeric = getattr(logging, level.upper(), logging.INFO)
    out = stream or sys.stderr
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=out.isatty() if hasattr(out, "isatty") else False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact,
            bound,
            renderer,
            _scrub_rendered,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(out)
    handler.addFilter(_ScrubFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.INFO))
    # Libraries log requests, bodies and headers at INFO (slack-bolt: every unsigned request's
    # whole body, response_url included): only their warnings are worth a line.
    for noisy in (*QUIET_LIBRARIES, "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)
