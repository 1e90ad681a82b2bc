"""What every config section is built from: the strict model, the checked value types (http
URLs, severities, secrets) and :class:`RouteConfig`, the routing every target's entry shares.

Its own module so that :mod:`config.schema` (the file as a whole) and :mod:`config.chat` (the
chat platforms' sections) both build on it without importing each other. The helpers at the
end read the schema's types, so code that walks every route (the loader's provider-id check,
``tocsin config validate``) never needs a list of sections.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, SecretStr

from bot.models import SEVERITY_ORDER, Status
from config.targets import clean_secret


def _check_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{value!r} is not an http(s) URL")
    return value


def _check_severity(value: object) -> Status:
    """Only the ordered statuses make sense as a threshold; say which they are."""
    words = {s.value: s for s in SEVERITY_ORDER}
    key = value.value if isinstance(value, Status) else value
    if not isinstance(key, str) or key not in words:
        raise ValueError(f"must be one of {', '.join(words)}")
    return words[key]


def _stripped_secret(value: object) -> object:
    """Secrets lose the whitespace a paste brings along; one with whitespace or control
    characters inside is an error (see :func:`config.targets.clean_secret`)."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return clean_secret(value) if isinstance(value, str) else value


def secret_check(check: Callable[[str], str]) -> Callable[[SecretStr], SecretStr]:
    """A validator running ``check`` on a secret's value (its error never shows the value)."""

    def validate(value: SecretStr) -> SecretStr:
        check(value.get_secret_value())
        return value

    return validate


HttpURL = Annotated[str, AfterValidator(_check_url)]
Severity = Annotated[Status, BeforeValidator(_check_severity)]
#: Every token and key: stripped, no whitespace or control characters inside, never shown.
Secret = Annotated[SecretStr, BeforeValidator(_stripped_secret)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


Providers = Literal["all"] | list[str]


class RouteConfig(Model):
    """Which notices a target wants, as the config says it (the runtime's is
    :class:`bot.routing.Route`)."""

    providers: Providers = "all"
    min_status: Severity = Status.DEGRADED


# ------------------------------------------------------------- reading the schema


def members(annotation: Any) -> tuple[Any, ...]:
    """The types an annotation allows: ``X | None`` → (X, None), ``Annotated[A | B, ...]`` →
    (A, B), ``X`` → (X,)."""
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) in (Union, types.UnionType):
        return get_args(annotation)
    return (annotation,)


def section_model(annotation: Any) -> type[BaseModel] | None:
    """The model a section's field holds (``SlackConfig | None`` → ``SlackConfig``), if one."""
    models = [t for t in members(annotation) if isinstance(t, type) and issubclass(t, BaseModel)]
    return models[0] if len(models) == 1 else None


def is_route_list(annotation: Any) -> bool:
    """Whether a field is a list of routes (``list[SlackChannel]``, the escalation union)."""
    if get_origin(annotation) is not list:
        return False
    return all(
        isinstance(t, type) and issubclass(t, RouteConfig) for t in members(get_args(annotation)[0])
    )


def route_fields(model: type[BaseModel]) -> list[str]:
    """A section's fields that list routes, in the schema's order (``channels``, ``webhooks``)."""
    return [name for name, field in model.model_fields.items() if is_route_list(field.annotation)]
