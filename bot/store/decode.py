"""Reading back what the store holds: every stored value is hostile until it parses.

Redis is shared: an older tocsin, another program or anyone who can write to it may leave
anything under tocsin's keys (nesting 100,000 deep, megabytes, the wrong JSON type, bytes that
are not UTF-8, an event of a schema version this tocsin does not know). Each reader here turns
one stored value into tocsin's model or drops it, and never raises for what the value holds.
A dropped value is logged once, not once per read: the dashboard reads the states every few
seconds, and one bad value must not flood the log.

Details read back pass through :func:`bot.logs.scrub_detail`: a value stored by an older
version may still carry a key that version did not scrub.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any

from bot.logs import get_logger, scrub_detail
from bot.models import EVENT_SCHEMA_VERSION, ComponentState, Event
from bot.outside import Unreadable, clip, load_json, one_line

log = get_logger("tocsin.store")

#: Bad values already reported (by what, name and a digest of the value), newest last.
_REPORTED_KEPT = 4096
_reported: OrderedDict[tuple[str, str, str], None] = OrderedDict()


def drop(what: str, name: str, raw: object, reason: str) -> None:
    """Say once that the stored ``what`` called ``name`` is unreadable and is ignored.

    The same bad value read again says nothing; another bad value under the same name does.
    """
    digest = hashlib.sha256(_as_bytes(raw)).hexdigest()[:16]
    key = (what, name, digest)
    if key in _reported:
        _reported.move_to_end(key)
        return
    _reported[key] = None
    while len(_reported) > _REPORTED_KEPT:
        _reported.popitem(last=False)
    log.error(
        "an unreadable value in the store is ignored",
        what=what,
        name=one_line(name, 200),
        reason=one_line(reason, 300),
    )


def _as_bytes(raw: object) -> bytes:
    if isinstance(raw, bytes | bytearray):
        return bytes(raw)
    return str(raw).encode("utf-8", "replace")


def read_object(what: str, name: str, raw: str | bytes | None) -> dict[str, Any] | None:
    """A stored JSON object, or ``None`` (dropped, and said once) if it is anything else."""
    if raw is None:
        return None
    try:
        loaded = load_json(raw)
    except Unreadable as exc:
        drop(what, name, raw, str(exc))
        return None
    if not isinstance(loaded, dict):
        drop(what, name, raw, f"a JSON {type(loaded).__name__}, not an object")
        return None
    return loaded


#: A thread reference is a few short ids (Slack's channel and ts, Discord's message ids).
THREAD_FIELDS_MAX = 16
THREAD_VALUE_MAX = 256


def read_thread(name: str, raw: str | bytes | None) -> dict[str, str] | None:
    """A stored thread reference: a small object of short strings, as the notifiers write
    it; anything else is dropped (the update is then told as a message of its own)."""
    body = read_object("thread", name, raw)
    if body is None:
        return None
    fine = len(body) <= THREAD_FIELDS_MAX and all(
        isinstance(value, str) and len(value) <= THREAD_VALUE_MAX for value in body.values()
    )
    if not fine:
        drop("thread", name, raw, "not an object of a few short strings")
        return None
    return body


def read_record(what: str, name: str, raw: str | bytes | None) -> dict[str, Any] | None:
    """A stored flat record (a dead letter): an object of strings, numbers, booleans and
    nulls, as the dispatcher writes it; anything nested is dropped."""
    body = read_object(what, name, raw)
    if body is None:
        return None
    if not all(isinstance(value, str | int | float | bool | None) for value in body.values()):
        drop(what, name, raw, "not a flat object")
        return None
    return body


def decode_state(name: str, raw: str | bytes | None) -> ComponentState | None:
    """One entry of the state hash, or ``None`` (dropped) if it is not a state tocsin wrote."""
    body = read_object("state", name, raw)
    if body is None:
        return None
    try:
        state = ComponentState.model_validate(body)
    except Exception as exc:  # whatever a hostile value makes the model raise
        drop("state", name, raw, _why(exc))
        return None
    detail = scrub_detail(state.detail)
    return state if detail == state.detail else state.model_copy(update={"detail": detail})


def decode_event(raw: str | bytes) -> Event:
    """One event of the stream; raises :class:`Unreadable` (saying why) for anything that is
    not a v1 event: unknown schema versions are not guessed at."""
    body = load_json(raw)
    if not isinstance(body, dict):
        raise Unreadable(f"a JSON {type(body).__name__}, not an event object")
    version = body.get("v", EVENT_SCHEMA_VERSION)
    if type(version) is not int or version != EVENT_SCHEMA_VERSION:
        shown = clip(repr(version), 40)
        raise Unreadable(f"event schema version {shown}, this tocsin reads v{EVENT_SCHEMA_VERSION}")
    try:
        event = Event.model_validate(body)
    except Exception as exc:  # whatever a hostile value makes the model raise
        raise Unreadable(_why(exc)) from None
    detail = scrub_detail(event.detail)
    return event if detail == event.detail else event.model_copy(update={"detail": detail})


def _why(exc: Exception) -> str:
    """An exception in one short line (a validation error lists every field, on many lines)."""
    return one_line(f"{type(exc).__name__}: {exc}", 300)
