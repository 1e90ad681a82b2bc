"""Every Redis key tocsin uses, in one place (all under a configurable prefix)."""

from __future__ import annotations

from dataclasses import dataclass

#: The consumer group of notifiers on the event stream.
NOTIFIERS_GROUP = "notifiers"


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = "tocsin:"

    @property
    def state(self) -> str:
        """Hash: ``provider/component`` → JSON of the current :class:`ComponentState`."""
        return f"{self.prefix}state"

    @property
    def events(self) -> str:
        """Stream (capped): one entry per event, field ``event`` = event JSON (v1)."""
        return f"{self.prefix}events"

    def history(self, key: str) -> str:
        """Sorted set of status changes of one component, scored by time (for uptime)."""
        return f"{self.prefix}history:{key}"

    def sent(self, event_id: str, target: str) -> str:
        """Idempotency mark: this event reached this target (value: the receipt)."""
        return f"{self.prefix}sent:{event_id}:{target}"

    def thread(self, episode: str, target: str) -> str:
        """The message an episode's updates reply under, per target (JSON)."""
        return f"{self.prefix}thread:{episode}:{target}"

    @property
    def dead(self) -> str:
        """List (capped) of deliveries that failed for good, newest first."""
        return f"{self.prefix}dead"

    def lease(self, name: str) -> str:
        """A lease (``leader`` for the watcher): value = holder, expiry = lease length."""
        return f"{self.prefix}{name}"

    def presence(self, instance: str) -> str:
        """The presence record of one instance name: ``<boot token>:<beat>`` of the live
        process that runs under it, expiring after ``store.lease`` unless renewed (every
        lease / 3). A second process finding another token here that still moves runs under
        a derived name instead."""
        return f"{self.prefix}presence:{instance}"

    def kv(self, name: str) -> str:
        """A small named value (silences, subscriptions, escalation bookkeeping)."""
        return f"{self.prefix}kv:{name}"

    def table(self, name: str) -> str:
        """(issue 15) Hash of small JSON records: ``silences`` (``{target}|{provider}``),
        ``acks`` (``{episode}``), ``subscriptions`` (``{target}|{provider}``)."""
        return f"{self.prefix}table:{name}"

    def days(self, provider: str, month: str) -> str:
        """(issue 16) Hash of one provider's days in one month (``YYYY-MM``): ``{DD}|{status}``
        → seconds, ``{DD}|seen:{status}`` → 1; expires :data:`DAYS_KEPT` days after it."""
        return f"{self.prefix}days:{provider}:{month}"

    def episodes(self, provider: str, month: str) -> str:
        """(issue 16) Hash of one provider's episodes by the month they started: id → JSON."""
        return f"{self.prefix}episodes:{provider}:{month}"

    @property
    def cursors(self) -> str:
        """(issue 16) Hash: provider → JSON of its history cursor."""
        return f"{self.prefix}history:cursors"

    def latency(self, provider: str) -> str:
        """(issue 16) Sorted set of latency samples ``{at}|{component}|{ms}`` by time."""
        return f"{self.prefix}latency:{provider}"

    @property
    def polls(self) -> str:
        """List (capped) of provider ids whose status page the leader should read now: a
        pushed webhook's hint, taken by the watcher wherever it runs."""
        return f"{self.prefix}polls"
