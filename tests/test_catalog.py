"""The built-in provider catalog (config/providers.yaml): every entry is a valid provider config,
names only real catalog ids and real status-source kinds, and the default set is the `main` one.

Component ids are checked against the real payloads in tests/fixtures, so an id typed wrong (or
made up) fails here rather than silently watching nothing.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from bot.app import assemble, run
from bot.models import Status
from bot.sources import build_sources, page_source_class
from bot.sources.source import PageSource
from bot.store import MemoryStore
from config.catalog import load_catalog
from config.loader import build_config, load_config
from config.schema import ProviderConfig
from tests.chaos import until
from tests.fakes.status_server import FakeStatusServer
from tests.redis_server import free_port

FIXTURES = Path(__file__).parent / "fixtures"

CATALOG = load_catalog()
ENTRIES = {entry["id"]: entry for entry in CATALOG.entries}
IDS = list(ENTRIES)

REQUIRED_IDS = {
    "anthropic",
    "openai",
    "google-gemini",
    "groq",
    "cohere",
    "perplexity",
    "deepseek",
    "xai",
    "together",
    "openrouter",
    "mistral",
    "fireworks",
}
MAIN_IDS = ["anthropic", "openai", "google-gemini"]


def resolved(provider_id: str) -> ProviderConfig:
    """The catalog entry as a user gets it by writing only its id."""
    config = build_config({"providers": [{"id": provider_id}]})
    assert config.provider_ids == [provider_id]
    provider = config.provider(provider_id)
    assert provider is not None
    return provider


def page_kinds() -> list[str]:
    return sorted({e["status_page"]["kind"] for e in CATALOG.entries if "status_page" in e})


# -- ids ---------------------------------------------------------------------------------------


def test_catalog_covers_the_required_providers() -> None:
    missing = REQUIRED_IDS - set(IDS)
    assert not missing, f"catalog lacks {sorted(missing)}"


def test_ids_are_unique() -> None:
    ids = CATALOG.ids()
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    assert not duplicates, f"ids listed more than once: {duplicates}"


def test_the_whole_catalog_loads_together() -> None:
    """All entries at once: the loader's own cross-checks (duplicates, fallbacks) pass too."""
    config = build_config({"providers": [{"id": i} for i in IDS]})
    assert config.provider_ids == IDS


# -- each entry ----------------------------------------------------------------------------------


@pytest.mark.parametrize("provider_id", IDS)
def test_entry_validates_through_the_loader(provider_id: str) -> None:
    provider = resolved(provider_id)
    assert provider.name.strip()
    assert provider.status_url
    assert urlsplit(provider.status_url).scheme == "https"
    assert provider.status_page is not None or provider.probe is not None


@pytest.mark.parametrize("provider_id", IDS)
def test_entry_has_paste_ready_model_names(provider_id: str) -> None:
    provider = resolved(provider_id)
    # LiteLLM routes on a "<provider>/" prefix; OpenRouter slugs are "<vendor>/<model>".
    assert provider.litellm_model
    assert re.fullmatch(r"[a-z_]+/\S+", provider.litellm_model)
    assert provider.openrouter_model
    assert re.fullmatch(r"[a-z0-9-]+/\S+", provider.openrouter_model)


@pytest.mark.parametrize("provider_id", IDS)
def test_fallbacks_name_other_catalog_entries(provider_id: str) -> None:
    fallbacks = resolved(provider_id).fallbacks
    assert fallbacks, f"{provider_id} suggests no fallback"
    assert len(set(fallbacks)) == len(fallbacks), f"{provider_id} repeats a fallback"
    assert provider_id not in fallbacks, f"{provider_id} falls back to itself"
    unknown = [f for f in fallbacks if f not in ENTRIES]
    assert not unknown, f"{provider_id} falls back to ids not in the catalog: {unknown}"


@pytest.mark.parametrize("provider_id", IDS)
def test_probe_is_a_keyed_get_naming_its_env_var(provider_id: str) -> None:
    probe = resolved(provider_id).probe
    assert probe is not None, f"{provider_id} has no probe"
    assert probe.method == "GET"
    assert urlsplit(probe.url).scheme == "https"
    assert probe.auth.kind in ("bearer", "header", "query"), f"{provider_id} probe sends no key"
    assert probe.auth.env, f"{provider_id} probe names no environment variable for its key"
    assert re.fullmatch(r"[A-Z][A-Z0-9_]*_API_KEY", probe.auth.env), probe.auth.env
    assert probe.auth.key is None, "the catalog must never carry a key"
    if probe.auth.kind == "header":
        assert probe.auth.header != "Authorization", "use kind: bearer for Authorization"


def test_probe_env_vars_are_distinct() -> None:
    envs = [e["probe"].get("auth", {}).get("env") for e in CATALOG.entries if "probe" in e]
    assert len(set(envs)) == len(envs), f"two providers share a key variable: {envs}"


@pytest.mark.parametrize("provider_id", [i for i in IDS if "status_page" in ENTRIES[i]])
def test_status_page_url_is_the_page_root(provider_id: str) -> None:
    """The source knows the endpoint paths; only an RSS feed is given as the feed itself."""
    page = resolved(provider_id).status_page
    assert page is not None
    parts = urlsplit(page.url)
    assert parts.scheme == "https"
    assert not parts.query
    if page.kind == "rss":
        assert parts.path not in ("", "/"), "an rss source needs the feed's own URL"
    else:
        assert parts.path in ("", "/"), f"{page.url} is not a page root"
    if page.kind == "flashcat":
        assert re.fullmatch(r"\d+", str(page.options.get("page_id", ""))), "flashcat needs page_id"
    if page.components is not None:
        assert len(set(page.components)) == len(page.components), "a component is listed twice"
        assert all(isinstance(c, str) and c.strip() for c in page.components)


@pytest.mark.parametrize("kind", page_kinds())
def test_each_status_page_kind_has_a_source(kind: str) -> None:
    cls = page_source_class(kind)
    assert issubclass(cls, PageSource)
    assert cls.kind_name == kind


# -- component ids against the real payloads -----------------------------------------------------


def _fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def _statuspage(name: str) -> set[str]:
    return {c["id"] for c in _fixture(name)["components"]}


def _incidentio(name: str) -> set[str]:
    return {c["id"] for c in _fixture(name)["summary"]["components"]}


def _gcloud(name: str) -> set[str]:
    return {p["id"] for incident in _fixture(name) for p in incident["affected_products"]}


def _flashcat(name: str) -> set[str]:
    return {c["component_id"] for c in _fixture(name)["data"]["page"]["components"]}


def _betterstack(name: str) -> set[str]:
    return {r["id"] for r in _fixture(name)["included"] if r["type"] == "status_page_resource"}


def _datadog(name: str) -> set[str]:
    def leaves(nodes: list[dict[str, Any]]) -> Iterator[str]:
        for node in nodes:
            if node.get("type") == "ComponentGroup":
                yield from leaves(node["components"])
            else:
                yield node["id"]

    return set(leaves(_fixture(name)["components"]))


REAL_COMPONENTS: dict[str, tuple[Callable[[str], set[str]], str]] = {
    "anthropic": (_statuspage, "statuspage_summary_anthropic_operational.json"),
    "openai": (_incidentio, "incidentio_proxy_openai_operational.json"),
    "groq": (_incidentio, "incidentio_proxy_groq_maintenance.json"),
    "perplexity": (_incidentio, "incidentio_proxy_perplexity_operational.json"),
    "google-gemini": (_gcloud, "gcloud_incidents_vertex_gemini_trimmed.json"),
    "deepseek": (_flashcat, "flashcat_active_deepseek_operational.json"),
    "together": (_betterstack, "betterstack_index_together_maintenance.json"),
    "openrouter": (_datadog, "datadog_config_openrouter_resolved.json"),
}


@pytest.mark.parametrize("provider_id", sorted(REAL_COMPONENTS))
def test_watched_components_exist_in_the_real_payload(provider_id: str) -> None:
    page = resolved(provider_id).status_page
    assert page is not None
    assert page.components, f"{provider_id} should pin its API components"
    extract, fixture = REAL_COMPONENTS[provider_id]
    unknown = sorted(set(page.components) - extract(fixture))
    assert not unknown, f"{provider_id} watches ids absent from {fixture}: {unknown}"


def test_the_probe_speaks_for_the_main_api_component() -> None:
    """The first watched component is the one a probe reports on: it must be the API itself."""
    expected = {
        "anthropic": "k8w3r06qmzrp",  # Claude API (api.anthropic.com)
        "openai": "01JMXBRMFE6N2NNT7DG6XZQ6PW",  # Chat Completions
        "groq": "01K053E2FAKWKEYHXEV7WAHJBM",  # API
        "perplexity": "01M2R6E5FPASTEW3A3V8TSYHJ0",  # API
        "openrouter": "9fb5ccff-e128-455a-be20-59572f8d363a",  # Chat (/api/v1/chat/completions)
    }
    first = {}
    for provider_id in expected:
        page = resolved(provider_id).status_page
        assert page is not None
        assert page.components
        first[provider_id] = page.components[0]
    assert first == expected


# -- the default set -------------------------------------------------------------------------------


def test_default_config_is_exactly_the_main_providers() -> None:
    config = load_config(None)
    assert config.provider_ids == [e["id"] for e in CATALOG.main()]
    assert config.provider_ids == MAIN_IDS
    assert all(p.main for p in config.providers)


@pytest.mark.parametrize("provider_id", MAIN_IDS)
def test_main_providers_have_a_page_and_a_probe(provider_id: str) -> None:
    provider = resolved(provider_id)
    assert provider.status_page is not None
    assert provider.status_page.components
    assert provider.probe is not None


def test_only_the_main_providers_are_main() -> None:
    assert [i for i in IDS if ENTRIES[i].get("main")] == MAIN_IDS


# -- component names (issue 11, item 19) ----------------------------------------------------------


def _names_in(fixture_names: dict[str, str], provider_id: str) -> dict[str, str]:
    page = resolved(provider_id).status_page
    assert page is not None
    return {c: fixture_names[c] for c in page.components or [] if c in fixture_names}


@pytest.mark.parametrize("provider_id", [i for i in IDS if "status_page" in ENTRIES[i]])
def test_every_catalog_component_has_a_name(provider_id: str) -> None:
    """Written `{id: ..., name: ...}`, so a page that was never read shows names, not ids."""
    raw = ENTRIES[provider_id]["status_page"].get("components") or []
    assert all(isinstance(c, dict) and set(c) == {"id", "name"} for c in raw), raw
    page = resolved(provider_id).status_page
    assert page is not None
    assert set(page.names) == set(page.components or [])
    for component, name in page.names.items():
        assert name.strip(), f"{provider_id}: {component} has an empty name"
        assert name != component, f"{provider_id}: {component} is named by its id"


def _real_names() -> dict[str, str]:
    """Component id → name in every captured payload."""
    names = {c["id"]: c["name"] for c in _fixture(REAL_COMPONENTS["anthropic"][1])["components"]}
    for provider_id in ("openai", "groq", "perplexity"):
        summary = _fixture(REAL_COMPONENTS[provider_id][1])["summary"]
        names.update({c["id"]: c["name"] for c in summary["components"]})
    for incident in _fixture(REAL_COMPONENTS["google-gemini"][1]):
        names.update({p["id"]: p["title"] for p in incident["affected_products"]})
    page = _fixture(REAL_COMPONENTS["deepseek"][1])["data"]["page"]
    names.update({c["component_id"]: c["name"] for c in page["components"]})
    for item in _fixture(REAL_COMPONENTS["together"][1])["included"]:
        if item["type"] == "status_page_resource":
            names[item["id"]] = item["attributes"]["public_name"]
    stack = list(_fixture(REAL_COMPONENTS["openrouter"][1])["components"])
    while stack:
        node = stack.pop()
        stack.extend(node.get("components") or [])
        names[node["id"]] = node["name"]
    return names


@pytest.mark.parametrize("provider_id", sorted(REAL_COMPONENTS))
def test_catalog_names_are_the_pages_own(provider_id: str) -> None:
    page = resolved(provider_id).status_page
    assert page is not None
    assert page.names == _names_in(_real_names(), provider_id)


async def test_an_unreadable_page_shows_the_catalog_names_not_ids(
    status_server: FakeStatusServer,
) -> None:
    """The default provider set with Anthropic's page broken (an HTML challenge page, never
    read): the unknown observation, the stored state and /api/status.json carry the name."""
    status_server.set_html("/api/v2/summary.json")
    port = free_port()
    config = build_config(
        {
            "server": {"host": "127.0.0.1", "port": port},
            "console": {"enabled": False},
            "providers": [{"id": "anthropic", "status_page": {"url": status_server.url}}],
            "upstreams": [],  # Anthropic's clouds' pages are not what this test reads
        }
    )
    [source] = build_sources(config, {}).sources
    async with httpx.AsyncClient() as client:
        [observation] = await source.check(client)
    assert (observation.component, observation.status) == ("k8w3r06qmzrp", Status.UNKNOWN)
    assert observation.component_name == "Claude API (api.anthropic.com)"

    store = MemoryStore()
    runtime = assemble(config, "all", store=store, targets=[], env={})
    stop = asyncio.Event()
    task = asyncio.create_task(run(runtime, stop))
    try:
        await until(_has_state(store), timeout=10)
        [state] = (await store.states()).values()
        assert (state.component, state.name, state.status) == (
            "k8w3r06qmzrp",
            "Claude API (api.anthropic.com)",
            Status.UNKNOWN,
        )
        async with httpx.AsyncClient() as client:
            body = (await client.get(f"http://127.0.0.1:{port}/api/status.json")).json()
        [provider] = body["providers"]
        [component] = provider["components"]
        assert (component["id"], component["name"], component["status"]) == (
            "k8w3r06qmzrp",
            "Claude API (api.anthropic.com)",
            "unknown",
        )
        assert "k8w3r06qmzrp" not in component["name"]
    finally:
        stop.set()
        await task


def _has_state(store: MemoryStore) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return bool(await store.states())

    return check
