"""Status sources: one file per platform, all behind :class:`bot.sources.source.Source`.

A status platform is found by its ``kind`` (the config's ``status_page.kind``): the module
``bot/sources/<kind>.py`` holds one :class:`~bot.sources.source.PageSource` subclass whose
``kind_name`` is that kind. Adding a platform is adding that one file (and its name to
``config.schema.StatusPageKind``).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.sources.fetch import FetchLimits
from bot.sources.probe import ProbeSource
from bot.sources.source import PageSource, Source
from config.schema import (
    ProbeConfig,
    ProviderConfig,
    StatusPageConfig,
    TocsinConfig,
    UpstreamConfig,
)

if TYPE_CHECKING:
    from bot.sources.inference import InferenceProbeSource
    from bot.store import Store


def page_source_class(kind: str) -> type[PageSource]:
    module = importlib.import_module(f"bot.sources.{kind}")
    for value in vars(module).values():
        if (
            isinstance(value, type)
            and issubclass(value, PageSource)
            and getattr(value, "kind_name", None) == kind
        ):
            return value
    raise LookupError(f"bot/sources/{kind}.py defines no PageSource with kind_name {kind!r}")


@dataclass(frozen=True)
class SkippedProbe:
    provider: str
    reason: str


@dataclass(frozen=True)
class SourcePlan:
    """What the watcher will run, and which probes were left out (and why)."""

    sources: list[Source]
    skipped: list[SkippedProbe]


def build_sources(config: TocsinConfig, env: Mapping[str, str] | None = None) -> SourcePlan:
    env = os.environ if env is None else env
    sources: list[Source] = []
    skipped: list[SkippedProbe] = []
    for provider in config.providers:
        if provider.status_page is not None:
            sources.append(_page_source(config, provider.id, provider.status_page))
        if provider.probe is not None:
            probe = _probe_source(config, provider, provider.probe, env)
            if isinstance(probe, SkippedProbe):
                skipped.append(probe)
            else:
                sources.append(probe)
    sources.extend(_page_source(config, u.id, u.status_page) for u in watched_upstreams(config))
    return SourcePlan(sources, skipped)


def build_traffic_sources(config: TocsinConfig, store: Store) -> list[Source]:
    """With ``signals`` on: one traffic source per watched provider (reading the apps'
    reported calls from the store, :mod:`bot.sources.traffic`) and the apps' network check."""
    if not config.signals.enabled:
        return []
    from bot.sources.traffic import AppTrafficHealth, TrafficReader, TrafficSettings, TrafficSource

    signals = config.signals
    settings = TrafficSettings(
        window=signals.window,
        min_calls=signals.min_calls,
        error_rate=signals.error_rate,
        interval=signals.interval,
        app_network_providers=signals.app_network_providers,
    )
    names = {p.id: p.name for p in config.providers}
    reader = TrafficReader(store, settings, names, names)
    sources: list[Source] = [
        TrafficSource(p.id, reader, model_names=p.probe.model_names if p.probe else None)
        for p in config.providers
    ]
    sources.append(AppTrafficHealth(reader))
    return sources


def watched_upstreams(config: TocsinConfig) -> list[UpstreamConfig]:
    """The upstream pages worth reading: those some watched provider stands on."""
    named = {u for p in config.providers for u in p.upstreams}
    return [u for u in config.upstreams if u.id in named]


def _page_source(config: TocsinConfig, owner: str, page: StatusPageConfig) -> PageSource:
    watch = config.watch
    limits = FetchLimits(timeout=page.timeout or watch.timeout, max_bytes=watch.max_body_bytes)
    cls = page_source_class(page.kind)
    return cls(
        owner,
        page.url,
        components=page.components,
        interval=page.interval or watch.page_interval,
        limits=limits,
        options=page.options,
        names=page.names,
    )


def _probe_source(
    config: TocsinConfig, provider: ProviderConfig, probe: ProbeConfig, env: Mapping[str, str]
) -> ProbeSource | InferenceProbeSource | SkippedProbe:
    auth = probe.auth
    key = probe_key(probe, env)
    if probe.enabled is False:
        return SkippedProbe(provider.id, "disabled in the config")
    if auth.kind != "none" and not key:
        how = f"set {auth.env}" if auth.env else "give probe.auth.key"
        return SkippedProbe(provider.id, f"no API key ({how} to probe {provider.name})")
    where = auth.env or f"{provider.id}'s probe.auth.key"
    problem = _key_problem(key, where) if auth.kind != "none" else None
    if problem:
        key = None  # never sent, never quoted: the probe reports a configuration alert
    if probe.kind == "inference":
        return _inference_source(config, provider, probe, key, problem)
    assert probe.url is not None  # the schema requires it for kind models
    headers = dict(probe.headers)
    params: dict[str, str] = {}
    if auth.kind == "bearer" and key:
        headers[auth.header] = f"Bearer {key}"
    elif auth.kind == "header" and key:
        headers[auth.header] = key
    elif auth.kind == "query" and key:
        params[auth.param] = key
    headers.setdefault("User-Agent", config.watch.user_agent)
    page = provider.status_page
    page_components = page.components if page else None
    component = probe.component or (page_components[0] if page_components else "api")
    known_name = page.names.get(component) if page else None
    return ProbeSource(
        provider.id,
        probe.url,
        component=component,
        component_name=probe.component_name or known_name or (None if page_components else "API"),
        method=probe.method,
        interval=probe.interval or config.watch.interval,
        timeout=probe.timeout,
        latency_budget=probe.latency_budget,
        headers=headers,
        params=params,
        json_body=probe.json_body,
        failure_status=probe.failure_status,
        key_hint=auth.env,
        config_problem=problem,
    )


def _inference_source(
    config: TocsinConfig,
    provider: ProviderConfig,
    probe: ProbeConfig,
    key: str | None,
    problem: str | None,
) -> InferenceProbeSource:
    # imported here: a config without inference probes never loads the wire formats
    from bot.probes import wire_format
    from bot.sources.inference import InferenceProbeSource, ProbedModel

    assert probe.wire is not None  # the schema requires them
    assert probe.api_url is not None
    return InferenceProbeSource(
        provider.id,
        wire_format(probe.wire),
        probe.api_url,
        [ProbedModel(m, probe.model_name(m)) for m in probe.models],
        key,
        interval=probe.interval or config.watch.interval,
        timeout=probe.timeout,
        latency_budget=probe.latency_budget,
        window=probe.latency_window,
        stream=probe.stream,
        extra_body=probe.extra_body,
        headers={"User-Agent": config.watch.user_agent, **probe.headers},
        failure_status=probe.failure_status,
        key_hint=probe.auth.env,
        config_problem=problem,
    )


def probe_key(probe: ProbeConfig, env: Mapping[str, str]) -> str | None:
    """The probe's API key (the config's, else its environment variable's), stripped: a
    stray newline or space pasted around a key is not part of it (and would make the request
    unsendable). The stripped form is also what the log scrubber registers."""
    auth = probe.auth
    raw = auth.key.get_secret_value() if auth.key else (env.get(auth.env) if auth.env else None)
    return raw.strip() if raw else None


def _key_problem(key: str | None, where: str) -> str | None:
    """Why ``key`` cannot go into a request (a line break pasted inside it), naming where it
    comes from and never quoting it."""
    if key is None or (key.isascii() and key.isprintable()):
        return None
    return (
        f"the API key in {where} contains a line break, control or non-ASCII character "
        f"inside it (a copy-paste accident?): set it again"
    )
