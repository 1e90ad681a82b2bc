"""Every secret of a config, for the log scrubber (:func:`bot.logs.register_secrets`).

Its own module, light on imports, so that the one-shot commands (``tocsin check``,
``status``, ``report``) register the secrets without importing the runtime (:mod:`bot.app`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, SecretStr

from bot.logs import register_secrets

if TYPE_CHECKING:
    from config.schema import TocsinConfig


def config_secrets(value: Any) -> Iterator[SecretStr]:
    """Every secret in the config, wherever it sits."""
    if isinstance(value, SecretStr):
        yield value
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from config_secrets(getattr(value, name))
    elif isinstance(value, list | tuple):
        for item in value:
            yield from config_secrets(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from config_secrets(item)


def register_config_secrets(config: TocsinConfig, env: Mapping[str, str] | None = None) -> None:
    """Tell the log scrubber every secret: the config's and the probes' API keys."""
    env = os.environ if env is None else env
    register_secrets(config_secrets(config))
    for provider in config.providers:
        if provider.probe and provider.probe.auth.env:
            register_secrets([env.get(provider.probe.auth.env)])
    url = config.store.url.get_secret_value() if config.store.url else ""
    if "@" in url:  # the password alone, wherever a library prints it
        register_secrets([url.split("@")[0].rsplit(":", 1)[-1]])
