"""LiteLLM provider prefixes and exceptions, translated into tocsin's vocabulary.

Tocsin names providers by its own ids and models without LiteLLM's routing prefix; a signal or a
route target that does not use them is one tocsin cannot match against a status page.
"""

from __future__ import annotations

from collections.abc import Mapping

#: LiteLLM provider prefix -> tocsin provider id (tocsin's config/providers.yaml ids).
DEFAULT_PROVIDER_MAP: Mapping[str, str] = {
    "anthropic": "anthropic",
    "openai": "openai",
    "gemini": "google-gemini",
    "vertex_ai": "google-gemini",
    "groq": "groq",
    "cohere": "cohere",
    "cohere_chat": "cohere",
    "perplexity": "perplexity",
    "deepseek": "deepseek",
    "xai": "xai",
    "together_ai": "together",
    "openrouter": "openrouter",
    "mistral": "mistral",
    "fireworks_ai": "fireworks",
}

#: The exception classes LiteLLM maps provider errors to -> tocsin's error types (Anthropic's
#: vocabulary where one exists, since that is what most status pages and SDKs speak).
_ERROR_TYPES: Mapping[str, str] = {
    "RateLimitError": "rate_limit_error",
    "Timeout": "timeout_error",
    "APITimeoutError": "timeout_error",
    "APIConnectionError": "connection_error",
    "ServiceUnavailableError": "service_unavailable_error",
    "BadGatewayError": "bad_gateway_error",
    "InternalServerError": "api_error",
    "APIError": "api_error",
    "AuthenticationError": "authentication_error",
    "PermissionDeniedError": "permission_error",
    "NotFoundError": "not_found_error",
    "ContextWindowExceededError": "context_window_exceeded_error",
    "ContentPolicyViolationError": "content_policy_error",
    "BadRequestError": "invalid_request_error",
    "UnprocessableEntityError": "invalid_request_error",
}


def provider_map(overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """The default mapping with the caller's entries on top (self-hosted or renamed prefixes)."""
    merged = dict(DEFAULT_PROVIDER_MAP)
    if overrides:
        merged.update(overrides)
    return merged


def strip_prefix(model: str, litellm_provider: str) -> str:
    """``openai/gpt-4o`` -> ``gpt-4o``: tocsin's model names carry no routing prefix."""
    prefix = litellm_provider + "/"
    return model[len(prefix) :] if model.startswith(prefix) else model


def target_of(litellm_params: Mapping[str, object], providers: Mapping[str, str]) -> str | None:
    """A deployment's tocsin target (``<tocsin provider>/<model>``), or None when unmapped.

    Reads only the deployment's own ``litellm_params`` (``custom_llm_provider`` or the model's
    prefix) so it needs no network and no LiteLLM model-cost lookup.
    """
    model = litellm_params.get("model")
    if not isinstance(model, str) or not model:
        return None
    explicit = litellm_params.get("custom_llm_provider")
    if isinstance(explicit, str) and explicit:
        litellm_provider = explicit
    elif "/" in model:
        litellm_provider = model.split("/", 1)[0]
    else:
        return None
    tocsin_provider = providers.get(litellm_provider)
    if tocsin_provider is None:
        return None
    return f"{tocsin_provider}/{strip_prefix(model, litellm_provider)}"


def classify_error(exc: BaseException | None) -> tuple[int | None, str]:
    """(HTTP status, error type) of a failed call, from what LiteLLM's exceptions carry.

    529 is Anthropic's "overloaded", the single most telling outage sign, so it wins over the
    class name LiteLLM happened to map it to (``APIError`` for an OpenAI-compatible 529).
    """
    if exc is None:
        return None, "unknown_error"
    status: int | None = None
    for attr in ("status_code", "provider_status_code"):
        value = getattr(exc, attr, None)
        if isinstance(value, int) and not isinstance(value, bool):
            status = value
            if value == 529:
                break
    message = str(exc).lower()
    if status == 529 or (status in (None, 500, 503) and "overloaded" in message):
        return (529 if status in (None, 529) else status), "overloaded_error"
    for cls in type(exc).__mro__:
        error_type = _ERROR_TYPES.get(cls.__name__)
        if error_type is not None:
            return status, error_type
    if isinstance(exc, TimeoutError):
        return status, "timeout_error"
    return status, "unknown_error"
