"""Make a LiteLLM app act on tocsin: report each call's outcome, route around outages.

Python ``Router``::

    litellm.callbacks = [TocsinLiteLLM(url=..., token=..., app="my-app")]

LiteLLM proxy ``config.yaml``::

    litellm_settings:
      callbacks: ["tocsin_litellm.proxy_handler_instance"]
"""

from __future__ import annotations

from typing import Any

from .handler import TocsinLiteLLM, from_env
from .mapping import DEFAULT_PROVIDER_MAP, classify_error, target_of
from .routing import RouteSnapshot
from .signals import Counters, Signal, SignalReporter

__all__ = [
    "DEFAULT_PROVIDER_MAP",
    "Counters",
    "RouteSnapshot",
    "Signal",
    "SignalReporter",
    "TocsinLiteLLM",
    "classify_error",
    "from_env",
    "proxy_handler_instance",
    "target_of",
]

_proxy_instance: TocsinLiteLLM | None = None


def __getattr__(name: str) -> Any:
    """``proxy_handler_instance`` is built on first access (the proxy's ``get_instance_fn``), so
    importing the package reads no environment and starts nothing."""
    global _proxy_instance
    if name == "proxy_handler_instance":
        if _proxy_instance is None:
            _proxy_instance = from_env()
        return _proxy_instance
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
