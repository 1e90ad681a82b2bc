"""Strings and data from outside, made safe to keep: one place for the rules every sink relies on.

Everything tocsin did not write itself (a status page, a probe's answer, a chat message, the
config file, a value read back from Redis) is hostile until it is escaped for where it goes.
Escaping is per sink and lives with the sink (Slack mrkdwn in ``handlers/slack``, Discord
markdown in ``handlers/discord``, Rich markup in the console, HTML in the dashboard's script).
What every sink shares is here: which links may be links at all, how long a string may be,
which characters never belong in one line of text, and how to read stored JSON without letting
a hostile value crash the reader.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

#: Schemes a link from outside may have: anything else (``javascript:``, ``data:``,
#: ``file:``) is dropped, never shown as a link.
LINK_SCHEMES = frozenset({"http", "https"})
#: A URL longer than this is not a status page link.
URL_MAX = 2048
#: Stored JSON longer than this is not something tocsin wrote.
STORED_MAX = 4 * 1024 * 1024
#: Nesting deeper than this is not something tocsin wrote (its own documents are < 10 deep).
DEPTH_MAX = 64

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]")
_SPACE = re.compile(r"\s+")


def safe_url(url: object) -> str | None:
    """``url`` if it is an absolute http(s) URL with a host, short and free of whitespace and
    control characters; ``None`` otherwise. A dropped link degrades a notice, never stops it."""
    if not isinstance(url, str) or not url or len(url) > URL_MAX:
        return None
    if _CONTROL.search(url) or any(c.isspace() for c in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in LINK_SCHEMES or not parts.hostname:
        return None
    return url


def why_not_url(url: object) -> str:
    """One line saying why :func:`safe_url` refused ``url`` (for a diagnostic)."""
    if not isinstance(url, str):
        return f"not a string ({type(url).__name__})"
    if len(url) > URL_MAX:
        return f"{len(url)} characters long (at most {URL_MAX})"
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme and scheme not in LINK_SCHEMES:
        return f"scheme {clip(scheme, 20)!r} is not http(s)"
    return "not an absolute http(s) URL"


def one_line(text: object, limit: int = 500) -> str:
    """``text`` as one line of plain text: control and bidi-override characters removed,
    whitespace runs (newlines too) collapsed, clipped to ``limit`` characters."""
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    text = _SPACE.sub(" ", _CONTROL.sub("", text)).strip()
    return clip(text, limit)


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


class Unreadable(ValueError):
    """A stored or received value that is not what tocsin wrote (too big, too deep, not JSON)."""


def load_json(raw: str | bytes | bytearray | None, *, limit: int = STORED_MAX) -> Any:
    """Parse JSON that came from outside (Redis, a push), bounded in size and depth.

    Raises :class:`Unreadable` for *anything* a hostile value can cause: invalid UTF-8 or JSON,
    a body over ``limit``, nesting deeper than :data:`DEPTH_MAX` (checked before parsing, so a
    document nested 100,000 deep never reaches the recursive parser).
    """
    if raw is None:
        raise Unreadable("no value")
    if len(raw) > limit:
        raise Unreadable(f"{len(raw)} bytes (at most {limit})")
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes | bytearray) else raw
    except UnicodeDecodeError:
        raise Unreadable("not UTF-8 text") from None
    depth = nesting(text)
    if depth > DEPTH_MAX:
        raise Unreadable(f"nested {depth} deep (at most {DEPTH_MAX})")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise Unreadable(f"not JSON ({clip(str(exc), 120)})") from None


def nesting(text: str) -> int:
    """How deep the brackets of a JSON text nest (strings skipped), without recursion."""
    depth = deepest = 0
    for bracket in _BRACKETS.findall(_STRINGS.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKETS = re.compile(r"[\[\]{}]")


def retry_after(value: str | None) -> float | None:
    """An HTTP ``Retry-After`` in seconds, from either of its forms (seconds, or an HTTP
    date); ``None`` for anything else (a 429 then waits by the retry policy alone)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None
