"""``TocsinLiteLLM``: one LiteLLM ``CustomLogger`` that both reports outcomes and filters routes.

Extension points (litellm 1.110.2, read from the installed source):

* Outcomes: ``CustomLogger.async_log_success_event`` / ``async_log_failure_event``
  (``litellm/integrations/custom_logger.py`` l.190-194), run for every attempt of an async call
  (``litellm_logging.py`` ``_async_failure_handler_body`` passes ``kwargs["exception"]``).
* Routing: ``CustomLogger.async_filter_deployments`` (``custom_logger.py`` l.270-278). The Rust
  router core runs it for every callback in ``litellm.callbacks`` that overrides it
  (``router_rust/steps/callbacks.py``: ``OptionalChecks.filter_deployments`` and
  ``filters_deployments``), on the candidates left after cooldowns, before the strategy picks.
  Chosen over ``CustomRoutingStrategyBase`` (it replaces the user's routing strategy instead of
  narrowing it) and over ``Router(plugins=[RoutingPlugin])`` (it narrows by model name, not
  deployment, and the proxy's ``callbacks:`` list cannot name it). Being a ``CustomLogger``
  method, the very object the proxy loads from ``litellm_settings.callbacks``
  (``proxy/common_utils/callback_utils.py`` -> ``get_instance_fn``) does both jobs.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from litellm.integrations.custom_logger import CustomLogger

from .mapping import classify_error, provider_map, strip_prefix, target_of
from .routing import RouteSnapshot
from .signals import Counters, Signal, SignalReporter

log: Final = logging.getLogger("tocsin_litellm")


def _seconds(start: object, end: object) -> float:
    if isinstance(start, datetime) and isinstance(end, datetime):
        return (end - start).total_seconds()
    if isinstance(start, int | float) and isinstance(end, int | float):
        return float(end) - float(start)
    return 0.0


class TocsinLiteLLM(CustomLogger):
    """Report every LiteLLM call to tocsin and route around what tocsin calls unhealthy.

    ``report=False`` or ``route=False`` switches either half off; ``enabled=False`` makes the
    whole object a no-op (the proxy entry point without ``TOCSIN_URL``).
    """

    def __init__(
        self,
        url: str,
        token: str,
        app: str,
        *,
        groups: Sequence[str] | None = None,
        providers: Mapping[str, str] | None = None,
        report: bool = True,
        route: bool = True,
        enabled: bool = True,
        batch_size: int = 200,
        flush_interval: float = 1.0,
        max_queue: int = 10_000,
        post_timeout: float = 2.0,
        max_age: float = 60.0,
    ) -> None:
        super().__init__()
        self.providers: Final = provider_map(providers)
        self.reporter: Final = SignalReporter(
            url,
            token,
            app,
            batch_size=batch_size,
            flush_interval=flush_interval,
            max_queue=max_queue,
            timeout=post_timeout,
        )
        self.routes: Final = RouteSnapshot(url, token, groups=groups, max_age=max_age)
        self.report: Final = report and enabled
        self.route: Final = route and enabled
        # deployment id (or model string) -> tocsin target: computed once, then a dict lookup.
        self._targets: dict[str, str | None] = {}

    # -- counters --------------------------------------------------------------------------

    @property
    def counters(self) -> Counters:
        return self.reporter.counters

    @property
    def sent(self) -> int:
        return self.reporter.counters.sent

    @property
    def dropped(self) -> int:
        return self.reporter.counters.dropped

    @property
    def failed_posts(self) -> int:
        return self.reporter.counters.failed_posts

    def start(self) -> None:
        """Start the background tasks on the running loop (otherwise the first call does)."""
        if self.report:
            self.reporter.ensure_started()
        if self.route:
            self.routes.ensure_started()

    async def aclose(self) -> None:
        await self.routes.aclose()
        await self.reporter.aclose()

    # -- outcomes --------------------------------------------------------------------------

    def _record(self, kwargs: Mapping[str, Any], ok: bool, start: object, end: object) -> None:
        params = kwargs.get("litellm_params") or {}
        litellm_provider = kwargs.get("custom_llm_provider") or params.get("custom_llm_provider")
        model = kwargs.get("model")
        if not isinstance(litellm_provider, str) or not isinstance(model, str):
            self.reporter.counters.unmapped += 1
            return
        provider = self.providers.get(litellm_provider)
        if provider is None:
            self.reporter.counters.unmapped += 1
            return
        if ok:
            status: int | None = 200
            error_type: str | None = None
        else:
            status, error_type = classify_error(kwargs.get("exception"))
        latency = _seconds(start, end)
        self.reporter.put(
            Signal(
                provider,
                strip_prefix(model, litellm_provider),
                ok,
                status,
                error_type,
                latency * 1000.0,
                time.time() - latency,
            )
        )
        self.reporter.ensure_started()

    async def async_log_success_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        """A served call is a healthy signal: tocsin needs the denominator, not only failures."""
        if not self.report:
            return
        try:
            self._record(kwargs, True, start_time, end_time)
        except Exception:  # never into the app's call
            log.debug("tocsin: could not record a success", exc_info=True)

    async def async_log_failure_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        """A failed attempt, with the status and error type LiteLLM's exception carries."""
        if not self.report:
            return
        try:
            self._record(kwargs, False, start_time, end_time)
        except Exception:
            log.debug("tocsin: could not record a failure", exc_info=True)

    # -- routing ---------------------------------------------------------------------------

    def _target(self, deployment: Mapping[str, Any]) -> str | None:
        info = deployment.get("model_info")
        key = info.get("id") if isinstance(info, Mapping) else None
        params = deployment.get("litellm_params")
        if not isinstance(params, Mapping):
            return None
        if not isinstance(key, str):
            key = str(params.get("model"))
        try:
            return self._targets[key]
        except KeyError:
            target = self._targets[key] = target_of(params, self.providers)
            return target

    async def async_filter_deployments(
        self,
        model: str,
        healthy_deployments: list[Any],
        messages: Any,
        request_kwargs: dict[str, Any] | None = None,
        parent_otel_span: Any = None,
    ) -> list[Any]:
        """Drop deployments tocsin reports unhealthy; fail open in every doubtful case."""
        if not self.route:
            return healthy_deployments
        try:
            snapshot = self.routes
            snapshot.ensure_started()
            unhealthy = snapshot.unhealthy
            if not unhealthy or not snapshot.fresh():
                return healthy_deployments
            kept = [d for d in healthy_deployments if self._target(d) not in unhealthy]
            return kept or healthy_deployments
        except Exception:
            log.debug("tocsin: route filter failed open", exc_info=True)
            return healthy_deployments


def from_env(environ: Mapping[str, str] | None = None) -> TocsinLiteLLM:
    """The proxy's instance, from ``TOCSIN_URL``, ``TOCSIN_TOKEN``, ``TOCSIN_APP`` and optional
    ``TOCSIN_GROUPS`` (comma-separated). Without a URL it is a logged no-op, not a crash:
    tocsin must never be the reason the proxy does not start."""
    env = os.environ if environ is None else environ
    url = env.get("TOCSIN_URL", "").strip()
    groups = [g.strip() for g in env.get("TOCSIN_GROUPS", "").split(",") if g.strip()]
    if not url:
        log.warning("tocsin_litellm: TOCSIN_URL is not set; reporting and routing are off")
    return TocsinLiteLLM(
        url=url or "http://127.0.0.1:0",
        token=env.get("TOCSIN_TOKEN", ""),
        app=env.get("TOCSIN_APP", "litellm-proxy"),
        groups=groups or None,
        enabled=bool(url),
    )
