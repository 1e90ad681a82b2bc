"""Loading: find the file, read YAML, resolve catalog providers, overlay environment secrets,
validate. Every problem is collected into one :class:`ConfigError` whose lines carry the path
of the offending key (``providers[2].probe.url: ...``), so a broken config never starts half a
bot.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from config.catalog import Catalog, load_catalog
from config.schema import TocsinConfig

DEFAULT_FILE = "tocsin.yaml"
CONFIG_ENV = "TOCSIN_CONFIG"


class ConfigError(Exception):
    """A config that cannot be used; ``errors`` holds one line per problem."""

    def __init__(self, errors: Sequence[str], source: str = "config") -> None:
        self.errors = list(errors)
        self.source = source
        super().__init__(f"{source}: " + "; ".join(self.errors))


class EnvSecrets(BaseSettings):
    """Secrets (and the Redis URL) that may come from the environment instead of the file.

    pydantic-settings reads them (and a ``.env`` file when present), so the names below are
    the whole contract; the environment wins over the file.
    """

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=True)

    slack_bot_token: SecretStr | None = Field(None, alias="SLACK_BOT_TOKEN")
    slack_app_token: SecretStr | None = Field(None, alias="SLACK_APP_TOKEN")
    slack_signing_secret: SecretStr | None = Field(None, alias="SLACK_SIGNING_SECRET")
    discord_token: SecretStr | None = Field(None, alias="DISCORD_TOKEN")
    redis_url: SecretStr | None = Field(None, alias="REDIS_URL")
    pagerduty_routing_key: SecretStr | None = Field(None, alias="PAGERDUTY_ROUTING_KEY")
    opsgenie_api_key: SecretStr | None = Field(None, alias="OPSGENIE_API_KEY")


#: Environment variable → where it lands in the config document.
_SECTION_SECRETS = {
    "slack_bot_token": ("slack", "bot_token"),
    "slack_app_token": ("slack", "app_token"),
    "slack_signing_secret": ("slack", "signing_secret"),
    "discord_token": ("discord", "token"),
    "redis_url": ("store", "url"),
}
_POLICY_SECRETS = {
    "pagerduty_routing_key": ("pagerduty", "routing_key"),
    "opsgenie_api_key": ("opsgenie", "api_key"),
}


def resolve_path(explicit: str | Path | None, env: Mapping[str, str] | None = None) -> Path | None:
    """``--config``, else ``$TOCSIN_CONFIG``, else ``./tocsin.yaml`` if present, else none."""
    env = os.environ if env is None else env
    if explicit:
        return Path(explicit)
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV])
    default = Path(DEFAULT_FILE)
    return default if default.is_file() else None


def load_config(
    path: str | Path | None = None, *, catalog: Catalog | None = None
) -> TocsinConfig:
    """The validated config from ``path`` (``None``: the built-in defaults)."""
    catalog = catalog or load_catalog()
    if path is None:
        document: dict[str, Any] = {}
        source = "built-in defaults"
    else:
        document = read_document(Path(path))
        source = str(path)
    return build_config(document, source=source, catalog=catalog)


def read_document(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(["file not found"], str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"cannot read: {exc}"], str(path)) from None
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{where}invalid YAML: {problem}"], str(path)) from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(
            [f"the top level must be a mapping of sections, not a {type(loaded).__name__}"],
            str(path),
        )
    return loaded


def build_config(
    document: Mapping[str, Any],
    *,
    source: str = "config",
    catalog: Catalog | None = None,
) -> TocsinConfig:
    """Validate a config document (environment secrets overlaid); raise :class:`ConfigError`."""
    catalog = catalog or load_catalog()
    doc = dict(document)
    errors: list[str] = []
    doc["providers"] = _resolve_providers(doc.get("providers"), catalog, errors)
    _overlay_env(doc, EnvSecrets())
    try:
        config = TocsinConfig.model_validate(doc)
    except ValidationError as exc:
        errors.extend(format_validation_error(exc))
        raise ConfigError(errors, source) from None
    errors.extend(_cross_checks(config, catalog))
    if errors:
        raise ConfigError(errors, source)
    return config


def _overlay_env(doc: dict[str, Any], secrets: EnvSecrets) -> None:
    for name, (section, key) in _SECTION_SECRETS.items():
        value = getattr(secrets, name)
        if value is None:
            continue
        if section in ("slack", "discord") and doc.get(section) is None:
            doc[section] = {}
        target = doc.setdefault(section, {})
        if isinstance(target, dict):
            target[key] = value.get_secret_value()
    policies = doc.get("escalation")
    if not isinstance(policies, list):
        return
    for name, (kind, key) in _POLICY_SECRETS.items():
        value = getattr(secrets, name)
        if value is None:
            continue
        for policy in policies:
            if isinstance(policy, dict) and policy.get("kind") == kind and not policy.get(key):
                policy[key] = value.get_secret_value()


def _resolve_providers(raw: Any, catalog: Catalog, errors: list[str]) -> Any:
    """Catalog entries by id, with the user's fields deep-merged over them."""
    if raw is None:
        return [dict(entry) for entry in catalog.main()]
    if not isinstance(raw, list):
        return raw  # validation reports the type error with its path
    resolved: list[Any] = []
    for index, entry in enumerate(raw):
        if isinstance(entry, str):
            entry = {"id": entry}
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            resolved.append(entry)
            continue
        base = catalog.get(entry["id"])
        if base is None:
            if set(entry) <= {"id", "fallbacks"}:
                errors.append(
                    f"providers[{index}].id: {entry['id']!r} is not in the catalog"
                    f"{_suggest(entry['id'], catalog.ids())}; give name and status_page or probe "
                    "for a custom provider"
                )
                continue
            resolved.append(entry)
        else:
            resolved.append(deep_merge(base, entry))
    return resolved


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` over ``base``; mappings merge, everything else replaces."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _cross_checks(config: TocsinConfig, catalog: Catalog) -> list[str]:
    errors: list[str] = []
    ids = config.provider_ids
    seen: set[str] = set()
    for index, provider_id in enumerate(ids):
        if provider_id in seen:
            errors.append(f"providers[{index}].id: {provider_id!r} is listed twice")
        seen.add(provider_id)
    known = set(ids) | set(catalog.ids())
    for index, provider in enumerate(config.providers):
        for j, fallback in enumerate(provider.fallbacks):
            if fallback not in known:
                errors.append(
                    f"providers[{index}].fallbacks[{j}]: unknown provider {fallback!r}"
                    f"{_suggest(fallback, sorted(known))}"
                )
    routes: list[tuple[str, Any]] = []
    if config.slack:
        routes += [(f"slack.channels[{i}]", c) for i, c in enumerate(config.slack.channels)]
    if config.discord:
        routes += [(f"discord.channels[{i}]", c) for i, c in enumerate(config.discord.channels)]
        routes += [(f"discord.webhooks[{i}]", c) for i, c in enumerate(config.discord.webhooks)]
    routes += [(f"escalation[{i}]", p) for i, p in enumerate(config.escalation)]
    for where, route in routes:
        if route.providers == "all":
            continue
        for j, provider_id in enumerate(route.providers):
            if provider_id not in ids:
                errors.append(
                    f"{where}.providers[{j}]: {provider_id!r} is not a watched provider"
                    f"{_suggest(provider_id, ids)}"
                )
    for index, policy in enumerate(config.escalation):
        missing = {
            "pagerduty": ("routing_key", "PAGERDUTY_ROUTING_KEY"),
            "opsgenie": ("api_key", "OPSGENIE_API_KEY"),
        }.get(policy.kind)
        if missing and getattr(policy, missing[0]) is None:
            errors.append(
                f"escalation[{index}].{missing[0]}: required (or set {missing[1]})"
            )
    return errors


def _suggest(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def format_validation_error(exc: ValidationError) -> list[str]:
    """pydantic's errors as ``path: message`` lines (``providers[2].probe.url: ...``)."""
    lines = []
    for error in exc.errors(include_url=False):
        path = format_loc(error["loc"])
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key (typo?)"
        elif error["type"] == "missing":
            message = "required"
        message = message.removeprefix("Value error, ")
        lines.append(f"{path}: {message}" if path else message)
    return lines


def format_loc(loc: Sequence[int | str]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in ("pagerduty", "opsgenie", "webhook") and path.endswith("]"):
            continue  # the discriminated union's tag adds nothing to the path
        else:
            path += f".{part}" if path else str(part)
    return path
