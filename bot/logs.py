"""Structured logs (structlog) that never carry a secret.

Two layers of protection: values under secret-looking keys are masked, and every secret value
the config holds is registered with :func:`register_secret` and scrubbed from every string of
every log line, wherever it hides (a URL, an exception message, a header dump).
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
_SECRET_KEY = re.compile(r"(token|secret|password|authorization|api[_-]?key|routing[_-]?key)", re.I)
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None


def register_secret(value: str | SecretStr | None) -> None:
    """Never log this value (nor any string containing it)."""
    global _pattern
    raw = value.get_secret_value() if isinstance(value, SecretStr) else value
    if not raw or len(raw) < 6:  # too short to scrub without mangling ordinary words
        return
    _secrets.add(raw)
    _pattern = re.compile("|".join(re.escape(s) for s in sorted(_secrets, key=len, reverse=True)))


def register_secrets(values: Iterable[str | SecretStr | None]) -> None:
    for value in values:
        register_secret(value)


def scrub(text: str) -> str:
    return _pattern.sub(MASK, text) if _pattern is not None else text


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


def _scrub_rendered(_logger: Any, _method: str, rendered: Any) -> Any:
    return scrub(rendered) if isinstance(rendered, str) else rendered


class _ScrubFilter(logging.Filter):
    """For stdlib loggers of libraries (slack-sdk, discord.py, httpx): scrub their output."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = scrub(record.getMessage())
        record.args = ()
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
    for noisy in ("httpx", "httpcore", "apscheduler", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)
