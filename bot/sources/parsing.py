"""Reading a status platform's payload: the body as JSON, keys of the expected type, the
common status words and impacts, times, and incident updates in order.

Each helper raises :class:`~bot.sources.fetch.SourceError` naming what was wrong, or returns a
neutral value (``unknown``, ``None``, nothing) for what a page may simply leave out.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import httpx

from bot.models import IncidentUpdate, Status
from bot.sources.fetch import Fetched, FetchLimits, SourceError, fetch


def looks_like_html(fetched: Fetched) -> bool:
    ctype = fetched.headers.get("content-type", "").lower()
    head = fetched.body[:512].lstrip().lower()
    return "html" in ctype or head.startswith((b"<!doctype html", b"<html"))


def decode_json(fetched: Fetched) -> Any:
    """The body as JSON, or a :class:`SourceError` saying why it is not."""
    where = fetched.where
    if looks_like_html(fetched):
        raise SourceError(
            f"{where}: got an HTML page instead of JSON (a login, challenge or error page?)"
        )
    if not fetched.body.strip():
        raise SourceError(f"{where}: empty body")
    try:
        return json.loads(fetched.body.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise SourceError(f"{where}: body is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise SourceError(f"{where}: invalid JSON ({exc.msg} at byte {exc.pos})") from None
    except RecursionError:
        raise SourceError(f"{where}: JSON nested too deeply") from None


async def fetch_json(
    client: httpx.AsyncClient, url: str, limits: FetchLimits, **kwargs: Any
) -> Any:
    return decode_json(await fetch(client, url, limits, **kwargs))


_WORDS = {
    "operational": Status.OPERATIONAL,
    "up": Status.OPERATIONAL,
    "degraded_performance": Status.DEGRADED,
    "degraded": Status.DEGRADED,
    "partial_outage": Status.PARTIAL_OUTAGE,
    "major_outage": Status.MAJOR_OUTAGE,
    "full_outage": Status.MAJOR_OUTAGE,
    "downtime": Status.MAJOR_OUTAGE,
    "under_maintenance": Status.MAINTENANCE,
    "maintenance": Status.MAINTENANCE,
}

#: Statuspage incident ``impact`` → what it does to the components it names.
IMPACT = {
    "none": None,
    "maintenance": Status.MAINTENANCE,
    "minor": Status.DEGRADED,
    "major": Status.PARTIAL_OUTAGE,
    "critical": Status.MAJOR_OUTAGE,
}


def status_word(word: object) -> Status:
    """A component status as the common status platforms spell it (``unknown`` otherwise)."""
    if not isinstance(word, str):
        return Status.UNKNOWN
    return _WORDS.get(word.strip().lower(), Status.UNKNOWN)


def parse_time(value: object) -> datetime | None:
    """An ISO-8601 time (``Z`` accepted), or ``None`` for anything else."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def require(payload: Any, key: str, kind: type, where: str) -> Any:
    """``payload[key]`` if it is a ``kind``; a :class:`SourceError` naming the key otherwise."""
    if not isinstance(payload, dict):
        raise SourceError(f"{where}: expected a JSON object, got {type(payload).__name__}")
    value = payload.get(key)
    if not isinstance(value, kind):
        found = "missing" if key not in payload else f"a {type(value).__name__}"
        raise SourceError(f"{where}: expected key {key!r} ({kind.__name__}), found {found}")
    return value


def optional_list(payload: dict[str, Any], key: str, where: str) -> list[dict[str, Any]]:
    """The objects in the list at ``payload[key]``: none when the key is missing or ``null``,
    a :class:`SourceError` when it holds anything but a list."""
    value = payload.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise SourceError(f"{where}: {key!r} is a {type(value).__name__}, expected a list")
    return [item for item in value if isinstance(item, dict)]


def newest_first(updates: Iterable[IncidentUpdate]) -> list[IncidentUpdate]:
    """An incident's updates, newest first (undated ones last, in their given order)."""
    return sorted(updates, key=lambda u: u.at.timestamp() if u.at else 0.0, reverse=True)
