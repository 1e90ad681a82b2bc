"""Sending with retries, and once more without the optional parts if the content is refused.

Retryable errors wait (Retry-After when the platform gives one, else exponential backoff with
jitter, via tenacity: a well-kept library rather than a hand-written loop); permanent ones are
raised; a notifier's bug gets a few tries before it counts as permanent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_never,
    wait_exponential_jitter,
)

from bot import metrics
from bot.logs import get_logger
from bot.notifier import ContentRejected, Delivery, PermanentError, RetryableError, Target, degraded

log = get_logger("tocsin.dispatcher")

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    initial: float = 0.5
    max: float = 60.0
    #: Unexpected errors (bugs) get this many tries before the delivery is dead-lettered.
    unexpected_attempts: int = 5

    async def degrading(
        self,
        target: Target,
        delivery: Delivery,
        call: Callable[[Target, Delivery], Awaitable[_T]],
    ) -> _T:
        """``call`` with retries; if the platform refuses the notice's content, once more with
        the notice cut to its title and text (a bad link or list must not cost the notice).
        Refused again, or nothing left to drop: the :class:`ContentRejected` is raised."""
        try:
            return await self.retrying(target, delivery, lambda: call(target, delivery))
        except ContentRejected as exc:
            plainer, dropped = degraded(delivery)
            if not dropped:
                raise
            log.warning(
                "notice refused for its content; sending it without " + ", ".join(dropped),
                target=target.label,
                event_id=delivery.event.id,
                dropped=list(dropped),
                reason=str(exc),
            )
            return await self.retrying(target, plainer, lambda: call(target, plainer))

    async def retrying(
        self, target: Target, delivery: Delivery, call: Callable[[], Awaitable[_T]]
    ) -> _T:
        """``call`` until it works or fails for good (see the module docstring)."""
        unexpected = 0
        retrying = AsyncRetrying(
            retry=retry_if_exception_type((RetryableError, _Unexpected)),
            wait=self._wait,
            stop=stop_never,
            before_sleep=lambda state: _retrying_soon(target, delivery, state),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                try:
                    return await call()
                except (RetryableError, PermanentError):
                    raise
                except Exception as exc:  # a bug in a notifier must not lose the notice
                    unexpected += 1
                    log.exception("notifier raised unexpectedly", target=target.label)
                    if unexpected >= self.unexpected_attempts:
                        raise PermanentError(f"{type(exc).__name__}: {exc}") from exc
                    raise _Unexpected(str(exc)) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait(self, state: RetryCallState) -> float:
        backoff = wait_exponential_jitter(initial=self.initial, max=self.max)(state)
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RetryableError) and exc.retry_after is not None:
            return max(exc.retry_after, 0.0)
        return backoff


def _retrying_soon(target: Target, delivery: Delivery, state: RetryCallState) -> None:
    metrics.RETRIES.labels(target.notifier.kind).inc()
    exc = state.outcome.exception() if state.outcome else None
    log.warning(
        "delivery failed; retrying",
        target=target.label,
        event_id=delivery.event.id,
        attempt=state.attempt_number,
        error=str(exc),
        retry_in=round(state.upcoming_sleep, 2),
    )


class _Unexpected(Exception):
    """Marks an unexpected notifier error as worth a few more tries."""
