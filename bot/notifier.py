"""The ``Notifier`` protocol and what flows through it.

A *target* is one place a notice can go (a Slack channel, a Discord webhook, a PagerDuty
service, the console); a *notifier* knows how to talk to one platform and serves many targets.
Notifiers only know their platform: routing, idempotency, retries and dead letters live in the
dispatcher, once (see :mod:`bot.dispatcher`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from bot.compose import Notice
from bot.models import Event

if TYPE_CHECKING:
    from bot.routing import Route


class Intent(StrEnum):
    """What a delivery does on the platform."""

    OPEN = "open"  # the first notice of an episode: a new message others reply under
    UPDATE = "update"  # a reply in the episode's thread (and the root edited to match)
    RESOLVE = "resolve"  # the last reply, and the root edited to "resolved"
    NOTICE = "notice"  # a standalone message (admin notices, drills, flapping)


@dataclass(frozen=True, slots=True)
class Delivery:
    event: Event
    notice: Notice
    intent: Intent
    #: The root message of the episode on this target (for UPDATE and RESOLVE)...
    thread: dict[str, Any] | None = None
    #: ...and what that root should say now (edited on UPDATE and RESOLVE).
    root: Notice | None = None
    #: True when this event may already have been delivered by a process that died.
    redelivery: bool = False


@dataclass(frozen=True, slots=True)
class Receipt:
    """What the platform gave back: enough to find the message again (thread root)."""

    ref: dict[str, Any] = field(default_factory=dict)


class DeliveryError(Exception):
    """A delivery failed; subclasses say whether trying again can help."""


class RetryableError(DeliveryError):
    """Rate limits, 5xx, network errors: try again (after ``retry_after`` if given)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(DeliveryError):
    """The target cannot take this notice (unknown channel, bad token...): dead-letter it."""


class ContentRejected(PermanentError):
    """The platform refused what the notice says, not where it goes (Discord's 50035 "Invalid
    Form Body", Slack's ``invalid_blocks``...): one bad optional field (a link, a list) must
    not cost the notice, so the dispatcher delivers it once more as :func:`degraded`."""


#: What a notice can lose and still say what happened: its link, its fields, its fallbacks.
OPTIONAL_PARTS = ("url", "fields", "fallbacks")


def degraded(delivery: Delivery) -> tuple[Delivery, tuple[str, ...]]:
    """``delivery`` with its notice (and root) cut to title and text, and the names of the
    parts that were dropped (``root.url`` for the root's); nothing dropped: nothing to try."""
    notice, dropped = _plainer(delivery.notice)
    root, root_dropped = _plainer(delivery.root) if delivery.root else (None, ())
    lost = dropped + tuple(f"root.{part}" for part in root_dropped)
    return replace(delivery, notice=notice, root=root), lost


def _plainer(notice: Notice) -> tuple[Notice, tuple[str, ...]]:
    dropped = tuple(part for part in OPTIONAL_PARTS if getattr(notice, part))
    return replace(notice, url=None, url_label=None, fields=(), fallbacks=()), dropped


@runtime_checkable
class Notifier(Protocol):
    kind: str

    async def deliver(self, target: Target, delivery: Delivery) -> Receipt:
        """Post (or reply, or edit) on the platform; raise a :class:`DeliveryError`."""
        ...

    async def find_sent(self, target: Target, delivery: Delivery) -> Receipt | None:
        """After a crash: the message this event already produced there, if any.

        Platforms without idempotency keys (Slack's chat.postMessage) look for the event id
        in recent messages' metadata, and finish what a found delivery left undone if that
        is idempotent (an edit); others return ``None``. Errors as for :meth:`deliver`.
        """
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Target:
    key: str  # stable: idempotency marks and thread refs are keyed by it
    notifier: Notifier
    route: Route
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.key
