"""Dead letters: what could not be delivered, kept in the store for an operator to read."""

from __future__ import annotations

from typing import Any

from bot import metrics
from bot.logs import get_logger
from bot.models import Event, utcnow
from bot.notifier import Delivery, Target
from bot.pipeline.patience import Patience
from bot.store import Store

log = get_logger("tocsin.dispatcher")


class DeadLetters:
    def __init__(self, store: Store, patience: Patience) -> None:
        self.store = store
        self.patience = patience

    async def record(self, record: dict[str, Any]) -> None:
        await self.patience.run(self.store.dead_letter, record)

    async def refused(self, target: Target, delivery: Delivery, reason: str) -> None:
        """The target failed the delivery for good (a permanent error)."""
        metrics.DEAD_LETTERS.labels(target.notifier.kind).inc()
        log.error(
            "delivery failed for good; dead-lettered",
            target=target.label,
            event_id=delivery.event.id,
            provider=delivery.event.provider,
            reason=reason,
        )
        await self.record(
            {
                "target": target.key,
                "event": delivery.event.id,
                "provider": delivery.event.provider,
                "intent": delivery.intent.value,
                "error": reason,
                "at": utcnow().isoformat(),
            }
        )

    async def broken(self, target: Target, event: Event, exc: Exception) -> None:
        """A stage raised (a bug): recorded, so the target is not silenced for good."""
        await self.record(
            {
                "target": target.key,
                "event": event.id,
                "provider": event.provider,
                "error": f"pipeline error: {type(exc).__name__}: {exc}",
                "at": utcnow().isoformat(),
            }
        )

    async def unreadable(self, entry_id: str, error: str | None) -> None:
        """A stream entry that is not an event: nobody can be told about it."""
        log.error("unreadable stream entry dead-lettered", entry=entry_id, error=error)
        await self.record({"entry": entry_id, "error": error})
