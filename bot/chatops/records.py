"""What chat operations keep in the store: one table each, small JSON records.

``acks`` is keyed by episode (an acknowledgement is the whole outage's, in every channel);
``silences`` and ``subscriptions`` by ``{target}|{provider}`` (a silence mutes one provider in
one channel). Everything read back is hostile (another version, a hand edit, a foreign
writer): a record that does not validate, or is dated where no clock can be, is dropped with
one log line and costs only itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, TypeVar

from pydantic import BaseModel, Field, ValidationError

from bot.models import Status
from bot.outside import one_line
from bot.store.decode import drop

ACKS = "acks"
SILENCES = "silences"
SUBSCRIPTIONS = "subscriptions"

#: How much of a person's display name is kept and shown.
NAME_MAX = 80
ID_MAX = 100
#: A record dated outside [now - OLDEST, now + AHEAD] is not one tocsin wrote.
OLDEST = timedelta(days=3650)
AHEAD = timedelta(days=400)

#: The buttons a notice's root can carry, by action id.
BUTTON_ACTIONS = ("ack", "silence_1h", "silence_4h", "silence_resolved", "unsilence")
SilenceMode = Literal["1h", "4h", "resolved"]
SILENCE_SECONDS: dict[str, float | None] = {"1h": 3600.0, "4h": 4 * 3600.0, "resolved": None}


@dataclass(frozen=True, slots=True)
class Button:
    """One button on a root: the platform renders it (Slack ``action_id`` ``tocsin_{action}``,
    Discord ``custom_id`` ``tocsin:{action}:{value}``) and hands both back on a click."""

    action: str
    label: str
    #: ``{provider}|{episode}``: what the click is about (read back as hostile).
    value: str
    style: Literal["primary", "danger"] | None = None


def button_value(provider: str, episode: str) -> str:
    """What a button carries: the episode (``{provider}:{started}:{token}``, so it names its
    provider), or ``{provider}|{episode}`` for an episode id that does not start with it."""
    return episode if episode.startswith(f"{provider}:") else f"{provider}|{episode}"


def read_button_value(value: object) -> tuple[str, str] | None:
    """``(provider, episode)`` from a button's value, or ``None`` for anything else (the
    caller still checks that the provider is watched and the episode is open)."""
    if not isinstance(value, str) or not 0 < len(value) <= 2 * ID_MAX + 1 or not value.isascii():
        return None
    if not all(c.isalnum() or c in "-_.:|" for c in value) or value.count("|") > 1:
        return None
    if "|" in value:
        provider, episode = value.split("|")
    else:
        provider, episode = value.split(":", 1)[0], value
    if not provider or not episode or ":" in provider:
        return None
    return provider, episode


class Who(BaseModel):
    """Who did it: the platform's user id and display name (outside text, kept short)."""

    platform: str = Field(max_length=20)
    id: str = Field(max_length=ID_MAX)
    name: str = Field(max_length=NAME_MAX)


class Ack(BaseModel):
    episode: str = Field(max_length=ID_MAX)
    provider: str = Field(max_length=ID_MAX)
    by: Who
    at: datetime


class Silence(BaseModel):
    target: str = Field(max_length=ID_MAX * 2)
    provider: str = Field(max_length=ID_MAX)
    mode: SilenceMode
    #: ``None`` for "until resolved" (then ``episode`` says which outage's).
    until: datetime | None = None
    episode: str | None = Field(default=None, max_length=ID_MAX)
    by: Who
    at: datetime

    def active(self, now: datetime, episode: str | None = None) -> bool:
        """Still muting at ``now`` (an "until resolved" one: only that episode)."""
        if self.until is not None:
            return now < self.until
        return episode is None or episode == self.episode

    def expired(self, now: datetime, open_episodes: set[str]) -> bool:
        """Over: its hour has passed, or its episode is no longer open."""
        if self.until is not None:
            return now >= self.until
        return self.episode not in open_episodes


class Subscription(BaseModel):
    target: str = Field(max_length=ID_MAX * 2)
    platform: str = Field(max_length=20)
    channel: str = Field(max_length=ID_MAX)
    provider: str = Field(max_length=ID_MAX)
    min_status: Status = Status.DEGRADED
    until: datetime | None = None
    by: Who
    at: datetime

    def active(self, now: datetime) -> bool:
        return self.until is None or now < self.until


def pair_key(target: str, provider: str) -> str:
    return f"{target}|{provider}"


Record = TypeVar("Record", Ack, Silence, Subscription)


def read_records(
    kind: type[Record], table: str, raw: dict[str, str], now: datetime
) -> dict[str, Record]:
    """The records of a table that read as ``kind`` and are plausibly dated; the rest are
    dropped, each said once."""
    found: dict[str, Record] = {}
    for key, value in raw.items():
        try:
            record = kind.model_validate(json.loads(value))
        except (ValueError, ValidationError, RecursionError) as exc:
            drop(f"{table} record", key, value, one_line(f"{type(exc).__name__}: {exc}", 200))
            continue
        if not now - OLDEST <= record.at <= now + AHEAD or record.at.utcoffset() is None:
            drop(f"{table} record", key, value, "dated where no clock can be")
            continue
        found[key] = record
    return found


def who(platform: str, user_id: str, name: str) -> Who:
    """A person as kept: their id and name as one short line each."""
    return Who(
        platform=one_line(platform, 20),
        id=one_line(user_id, ID_MAX),
        name=one_line(name, NAME_MAX) or one_line(user_id, ID_MAX),
    )
