"""Config loading and validation (config/loader.py, config/schema.py, config/durations.py).

The contract is DESIGN.md's "Outside interface": one YAML (or JSON) file, catalog providers by
id with overrides, secrets from the environment, durations like ``30s``, and every problem
reported at once as ``path: message`` lines so a broken config never starts half a bot.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from config.catalog import load_catalog
from config.durations import parse_duration
from config.loader import (
    ENV_VARIABLES,
    ConfigError,
    EnvSecrets,
    EnvSettings,
    build_config,
    load_config,
    resolve_path,
)
from config.schema import PagerDutyPolicy, TocsinConfig

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "tocsin.yaml"
CATALOG = load_catalog()
MAIN_IDS = [entry["id"] for entry in CATALOG.main()]
#: Ids and keys of the shape the platforms accept (config/targets.py checks it).
CHANNEL_ID = "223456789012345678"
ROUTING_KEY = "R0UTINGKEY000000000000000000TEST"


def webhook_url(hook_id: str = "323456789012345678", token: str = "T" * 68) -> str:
    """A Discord webhook URL as Discord hands them out (its ``token`` is the secret part)."""
    return f"https://discord.com/api/webhooks/{hook_id}/{token}"


def errors_of(document: dict[str, Any]) -> list[str]:
    """The error lines of a document that must not validate."""
    with pytest.raises(ConfigError) as caught:
        build_config(document)
    assert caught.value.errors, "a ConfigError without any error line"
    return caught.value.errors


def error_at(errors: list[str], path: str) -> str:
    """The one error line for ``path`` (a line is ``path: message``)."""
    found = [line for line in errors if line.startswith(f"{path}: ")]
    assert len(found) == 1, f"expected one error at {path!r}, got {errors}"
    return found[0]


def custom(provider_id: str = "acme", **fields: Any) -> dict[str, Any]:
    """A valid custom provider (a probe on a loopback URL nothing listens on)."""
    provider: dict[str, Any] = {
        "id": provider_id,
        "name": provider_id.title(),
        "probe": {"url": "http://127.0.0.1:9/v1/models"},
    }
    provider.update(fields)
    return provider


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


# -- durations -----------------------------------------------------------------------------


GOOD_DURATIONS: list[tuple[Any, float]] = [
    ("250ms", 0.25),
    ("30s", 30.0),
    ("5m", 300.0),
    ("1h", 3600.0),
    ("1h30m", 5400.0),
    ("1m30s", 90.0),
    ("1.5s", 1.5),
    ("2d", 172_800.0),
    ("0s", 0.0),
    ("45", 45.0),
    (45, 45.0),
    (2.5, 2.5),
]


@pytest.mark.parametrize(("written", "seconds"), GOOD_DURATIONS)
def test_duration_spellings_parse_to_seconds(written: Any, seconds: float) -> None:
    assert parse_duration(written) == pytest.approx(seconds)


@pytest.mark.parametrize(("written", "seconds"), GOOD_DURATIONS)
def test_durations_in_the_config_are_seconds(written: Any, seconds: float) -> None:
    config = build_config({"watch": {"interval": written}, "providers": [custom()]})
    assert config.watch.interval == pytest.approx(seconds)


def test_durations_serialise_back_to_the_way_people_write_them() -> None:
    config = build_config(
        {"watch": {"interval": "90s", "page_interval": 250, "timeout": "250ms"}, "providers": []}
    )
    dumped = config.model_dump(mode="json")["watch"]
    assert (dumped["interval"], dumped["page_interval"], dumped["timeout"]) == (
        "1m30s",
        "4m10s",
        "250ms",
    )


@pytest.mark.parametrize(
    ("written", "hint"),
    [
        ("5 minutes", "30s"),
        ("-1s", "30s"),
        (-1, "negative"),
        (True, "boolean"),
        ("true", "30s"),
        ("", "30s"),
        ("soon", "30s"),
        ("30sec", "30s"),
        ("1.5.2s", "30s"),
        (None, "30s"),
        ([30], "30s"),
    ],
)
def test_bad_durations_are_rejected_with_a_hint(written: Any, hint: str) -> None:
    errors = errors_of({"watch": {"interval": written}, "providers": [custom()]})
    line = error_at(errors, "watch.interval")
    assert hint in line, line
    with pytest.raises(ValueError, match=hint):
        parse_duration(written)


def test_a_bad_duration_in_a_provider_probe_is_reported_there() -> None:
    doc = {
        "providers": [
            custom(),
            custom("beta", probe={"url": "http://127.0.0.1:9/", "interval": "every minute"}),
        ]
    }
    line = error_at(errors_of(doc), "providers[1].probe.interval")
    assert "'every minute' is not a duration" in line


# -- providers: catalog, overrides, custom ---------------------------------------------------


def test_providers_omitted_means_the_catalogs_main_set() -> None:
    config = build_config({})
    assert config.provider_ids == MAIN_IDS
    assert "anthropic" in MAIN_IDS  # the main set is not empty by accident
    assert config.provider("anthropic") is not None


def test_no_file_means_built_in_defaults() -> None:
    config = load_config(None)
    assert config.provider_ids == MAIN_IDS
    assert config.store.url is None  # the embedded store
    assert config.console.enabled
    assert config.slack is None
    assert config.discord is None
    assert config.escalation == []


def test_catalog_provider_by_id_gets_the_whole_entry() -> None:
    config = build_config({"providers": [{"id": "anthropic"}]})
    provider = config.provider("anthropic")
    assert provider is not None
    entry = CATALOG.get("anthropic")
    assert entry is not None
    assert provider.name == entry["name"]
    assert provider.status_page is not None
    assert provider.status_page.url == entry["status_page"]["url"]
    assert provider.probe is not None
    assert provider.probe.url == entry["probe"]["url"]
    assert provider.fallbacks == entry["fallbacks"]


def test_catalog_provider_by_bare_string() -> None:
    config = build_config({"providers": ["anthropic", "openai"]})
    assert config.provider_ids == ["anthropic", "openai"]


def test_overrides_deep_merge_over_the_catalog_entry() -> None:
    entry = CATALOG.get("anthropic")
    assert entry is not None
    config = build_config({"providers": [{"id": "anthropic", "probe": {"interval": "10s"}}]})
    provider = config.provider("anthropic")
    assert provider is not None
    assert provider.probe is not None
    assert provider.probe.interval == 10.0
    # everything the override did not name is the catalog's
    assert provider.probe.url == entry["probe"]["url"]
    assert provider.probe.headers == entry["probe"]["headers"]
    assert provider.probe.auth.env == entry["probe"]["auth"]["env"]
    assert provider.status_page is not None
    assert provider.status_page.url == entry["status_page"]["url"]
    assert provider.name == entry["name"]


def test_overrides_replace_lists_and_scalars() -> None:
    config = build_config(
        {
            "providers": [
                {
                    "id": "anthropic",
                    "name": "Claude",
                    "fallbacks": ["openai"],
                    "status_page": {"components": ["rwppv331jlwc"], "interval": "2m"},
                },
                {"id": "openai"},
            ]
        }
    )
    provider = config.provider("anthropic")
    assert provider is not None
    assert provider.status_page is not None
    assert provider.name == "Claude"
    assert provider.fallbacks == ["openai"]
    assert provider.status_page.components == ["rwppv331jlwc"]
    assert provider.status_page.interval == 120.0
    assert provider.status_page.kind == "statuspage"  # kept from the catalog


def test_an_override_can_drop_a_catalog_source() -> None:
    config = build_config({"providers": [{"id": "anthropic", "probe": None}]})
    provider = config.provider("anthropic")
    assert provider is not None
    assert provider.probe is None
    assert provider.status_page is not None


def test_overrides_do_not_leak_into_the_catalog() -> None:
    build_config({"providers": [{"id": "anthropic", "probe": {"interval": "10s"}}]})
    fresh = build_config({"providers": [{"id": "anthropic"}]}).provider("anthropic")
    assert fresh is not None
    assert fresh.probe is not None
    assert fresh.probe.interval is None
    entry = CATALOG.get("anthropic")
    assert entry is not None
    assert "interval" not in entry["probe"]


def test_custom_provider_with_page_probe_and_fallbacks() -> None:
    doc = {
        "providers": [
            {
                "id": "acme",
                "name": "Acme AI",
                "status_page": {
                    "kind": "statuspage",
                    "url": "http://127.0.0.1:9000",
                    "components": ["k8w3r06qmzrp"],
                    "interval": "60s",
                },
                "probe": {
                    "url": "http://127.0.0.1:9001/v1/models",
                    "interval": "5s",
                    "timeout": "3s",
                },
                "fallbacks": ["openai", "google-gemini"],
            }
        ]
    }
    config = build_config(doc)
    acme = config.provider("acme")
    assert acme is not None
    assert acme.status_page is not None
    assert acme.probe is not None
    assert acme.name == "Acme AI"
    assert acme.status_page.kind == "statuspage"
    assert acme.status_page.components == ["k8w3r06qmzrp"]
    assert acme.status_page.interval == 60.0
    assert (acme.probe.interval, acme.probe.timeout) == (5.0, 3.0)
    # fallbacks may name catalog providers that are not watched
    assert acme.fallbacks == ["openai", "google-gemini"]


def test_catalog_and_custom_providers_mix_in_order() -> None:
    config = build_config({"providers": ["openai", custom(), {"id": "anthropic"}]})
    assert config.provider_ids == ["openai", "acme", "anthropic"]


# -- errors: every one, with its path --------------------------------------------------------


def test_several_schema_errors_are_reported_at_once_with_their_paths() -> None:
    doc = {
        "watch": {"interval": "5 minutes", "failure_treshold": 3, "success_threshold": "two"},
        "server": {"port": 70000},
        "providers": [
            custom("alpha"),
            custom("beta"),
            custom("gamma", probe={"url": "ftp://127.0.0.1/v1/models"}),
        ],
        "slack": {"channels": [{"id": "C1", "min_status": "maintenance", "chanel": "x"}]},
        "slak": {},
    }
    errors = errors_of(doc)
    assert "30s" in error_at(errors, "watch.interval")
    assert error_at(errors, "watch.failure_treshold").endswith(": unknown key (typo?)")
    assert "integer" in error_at(errors, "watch.success_threshold")
    assert "65535" in error_at(errors, "server.port")
    assert "is not an http(s) URL" in error_at(errors, "providers[2].probe.url")
    assert "must be one of operational, degraded, partial_outage, major_outage" in error_at(
        errors, "slack.channels[0].min_status"
    )
    assert error_at(errors, "slack.channels[0].chanel").endswith(": unknown key (typo?)")
    assert error_at(errors, "slak") == "slak: unknown key (typo?)"
    assert len(errors) == 8, errors


def test_config_error_names_its_source_and_every_line() -> None:
    with pytest.raises(ConfigError) as caught:
        build_config({"watch": {"interval": "x"}, "server": {"port": -1}}, source="my.yaml")
    text = str(caught.value)
    assert text.startswith("my.yaml: ")
    assert "watch.interval" in text
    assert "server.port" in text


@pytest.mark.parametrize(
    ("document", "path", "needle"),
    [
        ({"watch": []}, "watch", "dictionary"),
        ({"watch": "30s"}, "watch", "dictionary"),
        ({"providers": "anthropic"}, "providers", "list"),
        ({"escalation": {"kind": "pagerduty"}}, "escalation", "list"),
        ({"server": {"port": "http"}}, "server.port", "integer"),
        ({"server": {"enabled": "maybe"}}, "server.enabled", "bool"),
        ({"store": {"url": "http://127.0.0.1:6390"}}, "store.url", "redis://"),
        ({"slack": {"api_url": "slack.com/api"}}, "slack.api_url", "http(s) URL"),
        ({"slack": {"channels": [{"providers": "all"}]}}, "slack.channels[0].id", "required"),
        ({"log": {"level": "verbose"}}, "log.level", "'debug'"),
    ],
)
def test_wrong_types_and_values_name_their_path(
    document: dict[str, Any], path: str, needle: str
) -> None:
    line = error_at(errors_of({"providers": [], **document}), path)
    assert needle in line, line


def test_min_status_must_be_a_severity() -> None:
    for word in ("maintenance", "unknown"):
        line = error_at(
            errors_of({"providers": [], "slack": {"channels": [{"id": "C1", "min_status": word}]}}),
            "slack.channels[0].min_status",
        )
        assert "must be one of operational, degraded, partial_outage, major_outage" in line


def test_an_invalid_min_status_word_only_suggests_severities() -> None:
    line = error_at(
        errors_of(
            {"providers": [], "slack": {"channels": [{"id": "C1", "min_status": "critical"}]}}
        ),
        "slack.channels[0].min_status",
    )
    assert "maintenance" not in line, line
    assert "unknown" not in line, line


def test_unknown_catalog_id_suggests_the_closest() -> None:
    line = error_at(errors_of({"providers": [{"id": "anthropc"}]}), "providers[0].id")
    assert "'anthropc' is not in the catalog" in line
    assert "did you mean 'anthropic'?" in line
    assert "custom provider" in line  # says how to make it a custom one instead


def test_unknown_catalog_id_without_a_close_match_still_explains() -> None:
    line = error_at(errors_of({"providers": [{"id": "zzzzzz"}]}), "providers[0].id")
    assert "not in the catalog" in line
    assert "did you mean" not in line


def test_errors_after_an_unknown_catalog_id_keep_their_own_index() -> None:
    doc = {
        "providers": [
            {"id": "anthropc"},
            custom(probe={"url": "ftp://127.0.0.1/v1/models"}),
            custom("beta", bogus=1),
        ]
    }
    errors = errors_of(doc)
    assert "did you mean 'anthropic'?" in error_at(errors, "providers[0].id")
    assert "is not an http(s) URL" in error_at(errors, "providers[1].probe.url")
    assert error_at(errors, "providers[2].bogus").endswith("unknown key (typo?)")


def test_custom_provider_needs_a_name_and_a_source() -> None:
    errors = errors_of(
        {
            "providers": [
                {"id": "acme", "probe": {"url": "http://127.0.0.1:9/"}},
                {"id": "beta", "name": "Beta"},
            ]
        }
    )
    assert error_at(errors, "providers[0].name") == "providers[0].name: required"
    assert "nothing to watch" in error_at(errors, "providers[1]")


@pytest.mark.parametrize(
    ("provider", "path", "needle"),
    [
        (
            custom(status_page={"kind": "statuspagee", "url": "http://127.0.0.1:9"}),
            "providers[0].status_page.kind",
            "'statuspage'",
        ),
        (
            custom(
                status_page={"kind": "statuspage", "url": "http://127.0.0.1:9", "components": []}
            ),
            "providers[0].status_page.components",
            "omit the key to watch all",
        ),
        (custom(id="Acme AI"), "providers[0].id", "pattern"),
        (
            custom(probe={"url": "http://127.0.0.1:9/", "method": "PUT"}),
            "providers[0].probe.method",
            "'GET'",
        ),
        (
            custom(failure_threshold=0),
            "providers[0].failure_threshold",
            "greater than or equal to 1",
        ),
    ],
)
def test_provider_field_errors_name_their_path(
    provider: dict[str, Any], path: str, needle: str
) -> None:
    line = error_at(errors_of({"providers": [provider]}), path)
    assert needle in line, line


def test_escalation_errors_skip_the_union_tag_in_the_path() -> None:
    errors = errors_of(
        {
            "providers": [],
            "escalation": [
                {"kind": "pagerduty", "routing_key": ROUTING_KEY, "routing_keyy": "y"},
                {"kind": "webhook"},
                {"kind": "pagerdutyy"},
                {"kind": "opsgenie", "api_key": "x", "region": "asia"},
            ],
        }
    )
    assert error_at(errors, "escalation[0].routing_keyy").endswith("unknown key (typo?)")
    assert error_at(errors, "escalation[1].url") == "escalation[1].url: required"
    assert "'pagerduty', 'opsgenie', 'webhook'" in error_at(errors, "escalation[2]")
    assert "'us' or 'eu'" in error_at(errors, "escalation[3].region")
    assert not any(".pagerduty." in e or ".webhook." in e or ".opsgenie." in e for e in errors)


def test_cross_reference_errors_are_reported_at_once() -> None:
    doc = {
        "providers": [
            {"id": "anthropic", "fallbacks": ["opnai", "groq"]},
            custom(fallbacks=["nothing-like-it"]),
            {"id": "anthropic"},
        ],
        "slack": {"channels": [{"id": "C1", "providers": ["anthropic", "acmee"]}]},
        "discord": {
            "channels": [{"id": CHANNEL_ID, "providers": ["openai"]}],
            "webhooks": [{"url": webhook_url(), "providers": ["acme", "zz"]}],
        },
        "escalation": [
            {"kind": "pagerduty"},
            {"kind": "opsgenie", "providers": ["acme"]},
            {"kind": "webhook", "url": "http://127.0.0.1:9/hook", "providers": ["antropic"]},
        ],
    }
    errors = errors_of(doc)
    assert "unknown provider 'opnai' (did you mean 'openai'?)" in error_at(
        errors, "providers[0].fallbacks[0]"
    )
    assert "unknown provider 'nothing-like-it'" in error_at(errors, "providers[1].fallbacks[0]")
    assert "'anthropic' is listed twice" in error_at(errors, "providers[2].id")
    assert "'acmee' is not a watched provider (did you mean 'acme'?)" in error_at(
        errors, "slack.channels[0].providers[1]"
    )
    # a catalog provider that is not watched cannot be routed
    assert "'openai' is not a watched provider" in error_at(
        errors, "discord.channels[0].providers[0]"
    )
    assert "'zz' is not a watched provider" in error_at(errors, "discord.webhooks[0].providers[1]")
    assert "did you mean 'anthropic'?" in error_at(errors, "escalation[2].providers[0]")
    assert "PAGERDUTY_ROUTING_KEY" in error_at(errors, "escalation[0].routing_key")
    assert "OPSGENIE_API_KEY" in error_at(errors, "escalation[1].api_key")
    assert len(errors) == 9, errors


def test_schema_and_cross_reference_errors_are_reported_together() -> None:
    doc = {
        "watch": {"intervall": "30s"},
        "providers": [custom(fallbacks=["nope"]), custom()],
        "escalation": [{"kind": "pagerduty"}],
    }
    errors = errors_of(doc)
    error_at(errors, "watch.intervall")
    error_at(errors, "providers[0].fallbacks[0]")
    error_at(errors, "providers[1].id")
    error_at(errors, "escalation[0].routing_key")


def test_an_empty_providers_list_is_accepted_as_written() -> None:
    # DESIGN.md: only an omitted `providers` means the catalog's main set
    assert build_config({"providers": []}).provider_ids == []


# -- files -------------------------------------------------------------------------------------


def test_yaml_file_loads(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "tocsin.yaml",
        "# a comment\nwatch:\n  interval: 5s\nproviders:\n  - anthropic\n  - id: openai\n",
    )
    config = load_config(path)
    assert config.watch.interval == 5.0
    assert config.provider_ids == ["anthropic", "openai"]


def test_json_file_is_accepted(tmp_path: Path) -> None:
    doc = {
        "watch": {"interval": "5s", "failure_threshold": 3},
        "providers": [{"id": "openai"}, custom()],
        "slack": {"channels": [{"id": "C1", "providers": ["acme"]}]},
    }
    path = write(tmp_path, "tocsin.json", json.dumps(doc, indent=2))
    config = load_config(path)
    assert config.watch.interval == 5.0
    assert config.watch.failure_threshold == 3
    assert config.provider_ids == ["openai", "acme"]
    assert config.slack is not None
    assert config.slack.channels[0].providers == ["acme"]


def test_invalid_yaml_says_where(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.yaml", "watch:\n  interval: 30s\n   bad: [\nproviders: []\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    [line] = caught.value.errors
    assert line.startswith("line 3, column ")
    assert "invalid YAML" in line
    assert caught.value.source == str(path)


def test_invalid_json_says_where(tmp_path: Path) -> None:
    # a missing comma between two members
    path = write(tmp_path, "broken.json", '{"watch": {"interval": "5s"\n  "timeout": "1s"}}\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    [line] = caught.value.errors
    assert line.startswith("line 2, column ")


def test_tabs_are_invalid_yaml_with_a_position(tmp_path: Path) -> None:
    path = write(tmp_path, "tabs.yaml", "watch:\n\tinterval: 5s\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.errors[0].startswith("line 2, column 1: invalid YAML")


@pytest.mark.parametrize(
    ("content", "kind"),
    [("- anthropic\n- openai\n", "list"), ("just words\n", "str"), ("42\n", "int")],
)
def test_the_top_level_must_be_a_mapping(tmp_path: Path, content: str, kind: str) -> None:
    path = write(tmp_path, "tocsin.yaml", content)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.errors == [f"the top level must be a mapping of sections, not a {kind}"]


@pytest.mark.parametrize("content", ["", "\n\n", "# only a comment\n", "---\n"])
def test_an_empty_file_means_the_defaults(tmp_path: Path, content: str) -> None:
    config = load_config(write(tmp_path, "tocsin.yaml", content))
    assert config.provider_ids == MAIN_IDS
    assert config.store.url is None


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.errors == ["file not found"]
    assert caught.value.source == str(path)


@pytest.mark.parametrize(
    "content",
    [
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01",
        bytes(range(256)),
        b"\x00\x01\x02\x03watch: {}",
    ],
)
def test_a_binary_file_is_a_config_error(tmp_path: Path, content: bytes) -> None:
    path = write(tmp_path, "tocsin.yaml", content)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    [line] = caught.value.errors
    assert "cannot read" in line or "invalid YAML" in line


def test_a_directory_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "conf")
    assert "cannot read" in caught.value.errors[0]


def test_a_utf8_bom_is_tolerated(tmp_path: Path) -> None:
    path = write(tmp_path, "tocsin.yaml", b"\xef\xbb\xbfwatch: {interval: 7s}\nproviders: []\n")
    assert load_config(path).watch.interval == 7.0


def test_a_key_given_twice_is_an_error(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "tocsin.yaml",
        "providers:\n  - anthropic\nwatch: {interval: 5s}\nproviders:\n  - openai\n",
    )
    with pytest.raises(ConfigError):
        load_config(path)


# -- the example config ------------------------------------------------------------------------


def test_the_example_config_validates_and_covers_every_section() -> None:
    config = load_config(EXAMPLE)
    assert config.store.url is not None
    assert config.server.enabled
    assert config.server.port
    assert config.watch.interval == 30.0
    catalog_ids = set(CATALOG.ids())
    # a catalog provider with overrides keeps the catalog's URLs
    overridden = config.provider("anthropic")
    entry = CATALOG.get("anthropic")
    assert overridden is not None
    assert entry is not None
    assert overridden.probe is not None
    assert overridden.probe.interval == 60.0
    assert overridden.probe.url == entry["probe"]["url"]
    # ...and its inference probe the catalog's wire format and API, with the models written
    assert (overridden.probe.kind, overridden.probe.wire) == ("inference", "anthropic")
    assert overridden.probe.api_url == entry["probe"]["api_url"]
    assert overridden.probe.models == ["claude-sonnet-4-5", "claude-haiku-4-5"]
    # a custom provider with a status page, a probe and fallbacks
    customs = [p for p in config.providers if p.id not in catalog_ids]
    assert any(p.status_page and p.probe and p.fallbacks for p in customs)
    assert config.slack is not None
    assert config.slack.channels
    assert config.discord is not None
    assert config.discord.channels
    assert config.discord.webhooks
    assert {p.kind for p in config.escalation} == {"pagerduty", "opsgenie", "webhook"}


def test_the_example_config_uses_only_placeholder_secrets() -> None:
    config = load_config(EXAMPLE)
    assert config.slack is not None
    assert config.discord is not None
    secrets = [
        config.slack.bot_token,
        config.slack.app_token,
        config.slack.signing_secret,
        config.discord.token,
        *(w.url for w in config.discord.webhooks),
        *(
            getattr(p, "routing_key", None)
            or getattr(p, "api_key", None)
            or getattr(p, "secret", None)
            for p in config.escalation
        ),
    ]
    for secret in secrets:
        assert secret is not None
        # a PagerDuty key is letters and digits only: its placeholder says REPLACEME
        assert "REPLACE-ME" in secret.get_secret_value().replace("REPLACEME", "REPLACE-ME")


# -- environment secrets ---------------------------------------------------------------------


def _slack(field: str) -> Callable[[TocsinConfig], str | None]:
    def get(config: TocsinConfig) -> str | None:
        secret = getattr(config.slack, field, None)
        return secret.get_secret_value() if secret else None

    return get


def _discord_token(config: TocsinConfig) -> str | None:
    return (
        config.discord.token.get_secret_value() if config.discord and config.discord.token else None
    )


def _redis_url(config: TocsinConfig) -> str | None:
    return config.store.url.get_secret_value() if config.store.url else None


SECTION_SECRETS = [
    ("SLACK_BOT_TOKEN", {"slack": {"bot_token": "xoxb-file"}}, _slack("bot_token"), "xoxb-env"),
    ("SLACK_APP_TOKEN", {"slack": {"app_token": "xapp-file"}}, _slack("app_token"), "xapp-env"),
    (
        "SLACK_SIGNING_SECRET",
        {"slack": {"signing_secret": "file-secret"}},
        _slack("signing_secret"),
        "env-secret",
    ),
    ("DISCORD_TOKEN", {"discord": {"token": "file-token"}}, _discord_token, "env-token"),
    ("REDIS_URL", {"store": {"url": "redis://127.0.0.1:1/0"}}, _redis_url, "redis://127.0.0.1:2/3"),
]


@pytest.mark.parametrize(("var", "document", "get", "value"), SECTION_SECRETS)
def test_environment_secret_overrides_the_file(
    monkeypatch: pytest.MonkeyPatch,
    var: str,
    document: dict[str, Any],
    get: Callable[[TocsinConfig], str | None],
    value: str,
) -> None:
    file_value = get(build_config({"providers": [], **document}))
    assert file_value is not None
    assert file_value != value
    monkeypatch.setenv(var, value)
    assert get(build_config({"providers": [], **document})) == value


@pytest.mark.parametrize(("var", "document", "get", "value"), SECTION_SECRETS)
def test_environment_secret_fills_a_missing_section(
    monkeypatch: pytest.MonkeyPatch,
    var: str,
    document: dict[str, Any],
    get: Callable[[TocsinConfig], str | None],
    value: str,
) -> None:
    assert get(build_config({"providers": []})) is None
    monkeypatch.setenv(var, value)
    assert get(build_config({"providers": []})) == value
    # also with no file at all
    assert get(load_config(None)) == value


def test_environment_secret_fills_a_section_written_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-env")
    monkeypatch.setenv("DISCORD_TOKEN", "discord-env")
    config = build_config({"providers": [], "slack": None, "discord": {}})
    assert _slack("bot_token")(config) == "xoxb-env"
    assert _discord_token(config) == "discord-env"


@pytest.mark.parametrize(
    ("var", "kind", "field"),
    [
        ("PAGERDUTY_ROUTING_KEY", "pagerduty", "routing_key"),
        ("OPSGENIE_API_KEY", "opsgenie", "api_key"),
    ],
)
def test_environment_fills_escalation_keys(
    monkeypatch: pytest.MonkeyPatch, var: str, kind: str, field: str
) -> None:
    doc = {"providers": [], "escalation": [{"kind": kind}, {"kind": kind, "after": "5m"}]}
    assert var in error_at(errors_of(doc), f"escalation[0].{field}")
    key = ROUTING_KEY if kind == "pagerduty" else "env-key"
    monkeypatch.setenv(var, key)
    config = build_config(doc)
    assert [getattr(p, field).get_secret_value() for p in config.escalation] == [key, key]


def test_a_policy_with_its_own_key_keeps_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Policies may page different services: the environment fills only the missing key."""
    team_b = "TEAMB" + "0" * 27
    monkeypatch.setenv("PAGERDUTY_ROUTING_KEY", ROUTING_KEY)
    config = build_config(
        {
            "providers": [],
            "escalation": [{"kind": "pagerduty", "routing_key": team_b}, {"kind": "pagerduty"}],
        }
    )
    keys = [
        p.routing_key.get_secret_value()
        for p in config.escalation
        if isinstance(p, PagerDutyPolicy) and p.routing_key
    ]
    assert keys == [team_b, ROUTING_KEY]


def test_environment_secrets_do_not_create_escalation_policies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PAGERDUTY_ROUTING_KEY", "env-key")
    monkeypatch.setenv("OPSGENIE_API_KEY", "env-key")
    assert build_config({"providers": []}).escalation == []


def test_a_dotenv_file_in_the_working_directory_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("SLACK_BOT_TOKEN=xoxb-dotenv\n")
    assert _slack("bot_token")(build_config({"providers": []})) == "xoxb-dotenv"


def test_a_bad_redis_url_from_the_environment_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    """Named by its variable: the file (if any) does not hold the value that is wrong."""
    monkeypatch.setenv("REDIS_URL", "localhost:6390")
    assert "redis://" in error_at(errors_of({"providers": []}), "REDIS_URL")


# -- resolve_path ------------------------------------------------------------------------------


def test_resolve_path_precedence(tmp_path: Path) -> None:
    (tmp_path / "tocsin.yaml").write_text("{}")  # the autouse fixture made tmp_path the cwd
    env = {"TOCSIN_CONFIG": "from-env.yaml"}
    assert resolve_path("explicit.yaml", env) == Path("explicit.yaml")
    assert resolve_path(Path("explicit.yaml"), env) == Path("explicit.yaml")
    assert resolve_path(None, env) == Path("from-env.yaml")
    assert resolve_path(None, {}) == Path("tocsin.yaml")
    assert resolve_path(None, {"TOCSIN_CONFIG": ""}) == Path("tocsin.yaml")


def test_resolve_path_without_anything_is_none(tmp_path: Path) -> None:
    assert resolve_path(None, {}) is None
    (tmp_path / "tocsin.yaml").mkdir()  # a directory is not a config file
    assert resolve_path(None, {}) is None
    (tmp_path / "tocsin.yml").write_text("{}")  # only the documented name counts
    assert resolve_path(None, {}) is None


def test_resolve_path_reads_the_process_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "tocsin.yaml").write_text("{}")
    assert resolve_path(None) == Path("tocsin.yaml")
    monkeypatch.setenv("TOCSIN_CONFIG", str(tmp_path / "other.yaml"))
    assert resolve_path(None) == tmp_path / "other.yaml"
    assert resolve_path("mine.yaml") == Path("mine.yaml")


# -- secrets stay secret -----------------------------------------------------------------------


def _config_with_every_secret(monkeypatch: pytest.MonkeyPatch) -> tuple[TocsinConfig, list[str]]:
    secrets = {
        "bot": "xoxb-sekrit-bot-0001",
        "app": "xapp-sekrit-app-0002",
        "signing": "sekrit-signing-0003",
        "discord": "sekrit-discord-0004",
        "webhook": webhook_url(token="sekrit-webhook-0005-" + "w" * 48),
        "pagerduty": "sekritpagerduty00060000000000000",
        "opsgenie": "sekrit-opsgenie-0007",
        "signed": "sekrit-signed-0008",
        "probe": "sekrit-probe-key-0009",
        "env-bot": "xoxb-sekrit-env-0010",
    }
    monkeypatch.setenv("SLACK_BOT_TOKEN", secrets["env-bot"])
    doc = {
        "providers": [
            custom(
                probe={
                    "url": "http://127.0.0.1:9/",
                    "auth": {"kind": "bearer", "key": secrets["probe"]},
                }
            )
        ],
        "slack": {
            "bot_token": secrets["bot"],
            "app_token": secrets["app"],
            "signing_secret": secrets["signing"],
        },
        "discord": {"token": secrets["discord"], "webhooks": [{"url": secrets["webhook"]}]},
        "escalation": [
            {"kind": "pagerduty", "routing_key": secrets["pagerduty"]},
            {"kind": "opsgenie", "api_key": secrets["opsgenie"]},
            {"kind": "webhook", "url": "http://127.0.0.1:9/hook", "secret": secrets["signed"]},
        ],
    }
    config = build_config(doc)
    return config, [value.split("/")[-1] for value in secrets.values()]


def test_secrets_never_appear_in_repr_or_str(monkeypatch: pytest.MonkeyPatch) -> None:
    config, secrets = _config_with_every_secret(monkeypatch)
    assert config.slack is not None
    assert config.slack.bot_token is not None
    assert config.slack.bot_token.get_secret_value() == "xoxb-sekrit-env-0010"  # really loaded
    for text in (repr(config), str(config), config.model_dump_json(), str(config.model_dump())):
        leaked = [s for s in secrets if s in text]
        assert not leaked, f"secrets shown: {leaked}"
        assert "sekrit" not in text


def test_the_redis_password_never_appears_in_repr_or_str(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://default:hunter2-sekrit@127.0.0.1:6390/0")
    config = build_config({"providers": []})
    assert config.store.url is not None
    assert "hunter2-sekrit" in config.store.url.get_secret_value()
    assert "hunter2-sekrit" not in repr(config)
    assert "hunter2-sekrit" not in str(config)


# -- environment-only settings (README "Environment-only configuration") -------------------------


HOOK_A = webhook_url("123456789012345671", "a" * 68)
HOOK_B = webhook_url("123456789012345672", "b" * 68)
ENV_SETTINGS: list[tuple[str, str, Callable[[TocsinConfig], Any], Any]] = [
    ("TOCSIN_SERVER_HOST", "0.0.0.0", lambda c: c.server.host, "0.0.0.0"),
    ("TOCSIN_SERVER_PORT", "9100", lambda c: c.server.port, 9100),
    ("TOCSIN_LOG_LEVEL", "DEBUG", lambda c: c.log.level, "debug"),
    ("TOCSIN_LOG_FORMAT", "json", lambda c: c.log.format, "json"),
    ("TOCSIN_INSTANCE", "replica-2", lambda c: c.instance, "replica-2"),
    ("TOCSIN_STORE_PREFIX", "staging:", lambda c: c.store.prefix, "staging:"),
    ("TOCSIN_WATCH_INTERVAL", "1m30s", lambda c: c.watch.interval, 90.0),
    ("TOCSIN_PROVIDERS", " openai ,groq,", lambda c: c.provider_ids, ["openai", "groq"]),
    (
        "TOCSIN_SLACK_CHANNELS",
        "C01,C02",
        lambda c: [(ch.id, ch.providers, ch.min_status.value) for ch in c.slack.channels],
        [("C01", "all", "degraded"), ("C02", "all", "degraded")],
    ),
    ("TOCSIN_SLACK_ADMIN_CHANNEL", "C0ADMIN", lambda c: c.slack.admin_channel, "C0ADMIN"),
    (
        "TOCSIN_DISCORD_CHANNELS",
        "123456789012345678,456789012345678901",
        lambda c: [(ch.id, ch.providers) for ch in c.discord.channels],
        [("123456789012345678", "all"), ("456789012345678901", "all")],
    ),
    (
        "TOCSIN_DISCORD_ADMIN_CHANNEL",
        "789012345678901234",
        lambda c: c.discord.admin_channel,
        "789012345678901234",
    ),
    (
        "TOCSIN_DISCORD_WEBHOOKS",
        f"{HOOK_A},{HOOK_B}",
        lambda c: [w.url.get_secret_value() for w in c.discord.webhooks],
        [HOOK_A, HOOK_B],
    ),
]


@pytest.mark.parametrize(
    ("var", "value", "get", "expected"), ENV_SETTINGS, ids=[s[0] for s in ENV_SETTINGS]
)
def test_each_environment_setting_configures_without_a_file(
    monkeypatch: pytest.MonkeyPatch,
    var: str,
    value: str,
    get: Callable[[TocsinConfig], Any],
    expected: Any,
) -> None:
    default = load_config(None)
    monkeypatch.setenv(var, value)
    configured = load_config(None)
    assert get(configured) == expected
    assert configured != default  # the variable made the difference


def test_the_environment_wins_over_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """One rule for settings and secrets alike: file < environment (< command-line flags)."""
    document = {
        "server": {"host": "127.0.0.1", "port": 9000},
        "providers": ["anthropic", custom()],
        "slack": {"channels": [{"id": "CFILE", "providers": ["anthropic"]}], "bot_token": "x"},
        "instance": "from-file",
    }
    monkeypatch.setenv("TOCSIN_SERVER_PORT", "9100")
    monkeypatch.setenv("TOCSIN_PROVIDERS", "openai")
    monkeypatch.setenv("TOCSIN_SLACK_CHANNELS", "CENV")
    monkeypatch.setenv("TOCSIN_INSTANCE", "from-env")
    config = build_config(document)
    assert (config.server.host, config.server.port) == ("127.0.0.1", 9100)  # key by key
    assert config.provider_ids == ["openai"]  # a list variable replaces the file's list
    assert config.slack is not None
    assert [c.id for c in config.slack.channels] == ["CENV"]
    assert config.instance == "from-env"
    assert document["server"] == {"host": "127.0.0.1", "port": 9000}  # the input is untouched
    assert document["instance"] == "from-file"


def test_tocsin_providers_all_is_the_whole_catalog(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOCSIN_PROVIDERS", "all")
    assert load_config(None).provider_ids == CATALOG.ids()


@pytest.mark.parametrize("var", ["SLACK_BOT_TOKEN", "TOCSIN_SERVER_PORT", "REDIS_URL"])
def test_an_empty_variable_counts_as_unset(monkeypatch: pytest.MonkeyPatch, var: str) -> None:
    """compose's ``${SLACK_BOT_TOKEN:-}`` placeholders arrive as empty strings."""
    monkeypatch.setenv(var, "")
    with_empty = load_config(None)
    monkeypatch.delenv(var)
    assert with_empty == load_config(None)


def test_errors_in_environment_values_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOCSIN_SERVER_PORT", "70000")
    monkeypatch.setenv("TOCSIN_WATCH_INTERVAL", "soon")
    monkeypatch.setenv("TOCSIN_LOG_FORMAT", "xml")
    monkeypatch.setenv("TOCSIN_PROVIDERS", "anthropic,opneai")
    errors = errors_of({"watch": {"timeout": "never"}})
    assert "less than or equal to 65535" in error_at(errors, "TOCSIN_SERVER_PORT")
    assert "30s" in error_at(errors, "TOCSIN_WATCH_INTERVAL")
    assert "'console' or 'json'" in error_at(errors, "TOCSIN_LOG_FORMAT")
    assert "(did you mean 'openai'?)" in error_at(errors, "TOCSIN_PROVIDERS (providers[1].id)")
    assert error_at(errors, "watch.timeout")  # the file's own mistake keeps its path
    assert len(errors) == 5, errors


def test_no_file_errors_say_the_environment_is_the_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOCSIN_SERVER_PORT", "http")
    with pytest.raises(ConfigError) as caught:
        load_config(None)
    assert caught.value.source == "the environment (no config file)"
    assert caught.value.errors == [
        "TOCSIN_SERVER_PORT: Input should be a valid integer, unable to parse string as an integer"
    ]


def test_a_section_the_file_got_wrong_is_the_files_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOCSIN_SERVER_PORT", "9100")
    errors = errors_of({"server": "0.0.0.0:8080", "providers": []})
    assert error_at(errors, "server")


def test_environment_webhooks_are_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOCSIN_DISCORD_WEBHOOKS", webhook_url(token="sekrit-hook" + "h" * 57))
    config = load_config(None)
    assert config.discord is not None
    assert len(config.discord.webhooks) == 1
    assert "sekrit-hook" not in repr(config)
    assert "sekrit-hook" not in config.model_dump_json()


def test_the_sentinel_password_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis+sentinel://s1:26390,s2:26390/mymaster/0")
    monkeypatch.setenv("REDIS_SENTINEL_PASSWORD", "sentinel-sekrit")
    store = load_config(None).store
    assert store.sentinel_password is not None
    assert store.sentinel_password.get_secret_value() == "sentinel-sekrit"
    monkeypatch.setenv("REDIS_URL", "redis://store.invalid:6400/0")  # never connected to
    line = error_at(errors_of({"providers": []}), "REDIS_SENTINEL_PASSWORD")
    assert "redis+sentinel://" in line


def test_dotenv_supplies_settings_too(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("TOCSIN_PROVIDERS=groq\nTOCSIN_SERVER_PORT=9200\n")
    config = load_config(None)
    assert (config.provider_ids, config.server.port) == (["groq"], 9200)


def test_every_variable_the_loader_reads_is_listed() -> None:
    """ENV_VARIABLES is what the suite scrubs and the compose test checks against."""
    aliases = {
        field.alias
        for model in (EnvSecrets, EnvSettings)
        for field in model.model_fields.values()
        if field.alias
    }
    assert aliases | {"TOCSIN_CONFIG", "TOCSIN_ROLE"} == set(ENV_VARIABLES)


# -- YAML from a hostile file: aliases, depth, merge keys (issue 11, item 14) --------------------


def test_merge_keys_load_and_a_written_key_overrides_the_merged_one(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "tocsin.yaml",
        "providers:\n"
        "  - id: acme\n"
        "    name: Acme\n"
        "    probe: &probe {url: 'http://127.0.0.1:9/v1/models', timeout: 3s, interval: 15s}\n"
        "  - id: beta\n"
        "    name: Beta\n"
        "    probe:\n"
        "      <<: *probe\n"
        "      timeout: 5s\n"
        "  - id: gamma\n"
        "    name: Gamma\n"
        "    probe:\n"
        "      <<: [*probe, {latency_budget: 2s}]\n",
    )
    config = load_config(path)
    probes = {p.id: p.probe for p in config.providers}
    assert all(probe is not None for probe in probes.values())
    assert probes["beta"] is not None
    assert (probes["beta"].timeout, probes["beta"].interval) == (5.0, 15.0)
    assert probes["gamma"] is not None
    assert (probes["gamma"].timeout, probes["gamma"].latency_budget) == (3.0, 2.0)


def test_a_key_written_twice_next_to_a_merge_is_still_an_error(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "tocsin.yaml",
        "watch: &w {interval: 5s}\nserver:\n  port: 9000\n  <<: {host: 0.0.0.0}\n  port: 9001\n",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.errors == ["line 5, column 3: invalid YAML: the key 'port' is given twice"]


def test_an_alias_bomb_is_refused_where_it_is(tmp_path: Path) -> None:
    lines = ["l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 10)}]" for n in range(1, 9)]
    body = "".join(f"\n        {line}" for line in lines)
    uses = ", ".join(["*headers"] * 50)  # aliases that stay small are fine
    path = write(
        tmp_path,
        "tocsin.yaml",
        "providers:\n  - id: acme\n    name: Acme\n    probe:\n"
        "      url: 'http://127.0.0.1:9/'\n      headers: &headers {x-team: platform}\n"
        f"      json_body: {{many: [{uses}]}}\n"
        "  - id: beta\n    name: Beta\n    probe:\n"
        f"      url: 'http://127.0.0.1:9/'\n      method: POST\n      json_body:{body}\n",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    [line] = caught.value.errors  # only the bomb, where it is
    assert line.startswith("line 18, column 13: this value expands to more than 50,000 values")


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("watch: &w {timeout: *w}\n", "line 1, column 8: this value contains an alias to itself"),
        ("a: &a [1, [2, *a]]\n", "line 1, column 4: this value contains an alias to itself"),
        ("providers: " + "[" * 100_000 + "]" * 100_000 + "\n", "nested deeper than 64 levels"),
        ("x: " + "{a: " * 5_000 + "1" + "}" * 5_000 + "\n", "nested deeper than 64 levels"),
    ],
    ids=["self-alias", "cycle", "deep-flow", "deep-mappings"],
)
def test_recursive_or_deep_documents_are_config_errors(
    tmp_path: Path, content: str, needle: str
) -> None:
    path = write(tmp_path, "tocsin.yaml", content)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    [line] = caught.value.errors
    assert needle in line, line


def test_depth_through_aliases_is_bounded_too(tmp_path: Path) -> None:
    """Each alias can add a level without any nesting written: a chain of 500 anchors."""
    chain = ["l0: &l0 [x]"] + [f"l{n}: &l{n} [*l{n - 1}]" for n in range(1, 500)]
    path = write(tmp_path, "tocsin.yaml", "\n".join(chain) + "\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    [line] = caught.value.errors
    assert "this value nests deeper than 64 levels through its aliases" in line


# -- targets the platforms would refuse (issue 11, item 7) -------------------------------------

GOOD_TOKEN = "Ab_-" * 17  # 68 characters, the alphabet Discord uses


@pytest.mark.parametrize(
    "url",
    [
        f"https://discord.com/api/webhooks/123456789012345678/{GOOD_TOKEN}",
        f"https://discord.com/api/v10/webhooks/12345678901234567/{GOOD_TOKEN}",
        f"https://discordapp.com/api/webhooks/12345678901234567890/{GOOD_TOKEN}/",
        f"http://127.0.0.1:8999/api/v10/webhooks/123456789012345678/{GOOD_TOKEN}?thread_id=1",
    ],
)
def test_webhook_urls_as_discord_hands_them_out_are_accepted(url: str) -> None:
    config = build_config({"providers": [], "discord": {"webhooks": [{"url": url}]}})
    assert config.discord is not None
    assert config.discord.webhooks[0].url.get_secret_value() == url
    # the runtime finds the id and token with the very pattern the config was checked with
    from config.targets import WEBHOOK_PATH
    from handlers.discord import notifier

    assert notifier.WEBHOOK_PATH is WEBHOOK_PATH
    match = WEBHOOK_PATH.search(url)
    assert match is not None
    assert match["token"] == GOOD_TOKEN


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        (f"https://discord.com/api/webhooks/1x/{GOOD_TOKEN}", "not a Discord id"),
        (f"https://discord.com/api/webhooks/hooky/{GOOD_TOKEN}", "not a Discord id"),
        (f"https://discord.com/api/webhooks/18446744073709551616/{GOOD_TOKEN}", "not a Discord id"),
        ("https://discord.com/api/webhooks/123456789012345678/SEKRIT", "6 characters"),
        (f"https://discord.com/api/webhooks/123456789012345678/{GOOD_TOKEN}$", "token"),
        (f"https://discord.com/webhooks/123456789012345678/{GOOD_TOKEN}", "/api/webhooks/"),
        (f"https://discord.com/channels/123456789012345678/{GOOD_TOKEN}", "/api/webhooks/"),
        (f"https://discord.com/api/webhooks/123456789012345678/{GOOD_TOKEN}/x", "/api/webhooks/"),
        (f"ftp://discord.com/api/webhooks/123456789012345678/{GOOD_TOKEN}", "http(s) URL"),
        ("discord.com/api/webhooks/123456789012345678/SEKRIT", "http(s) URL"),
    ],
)
def test_webhook_urls_discord_would_refuse_are_errors_that_hide_the_token(
    url: str, needle: str
) -> None:
    line = error_at(
        errors_of({"providers": [], "discord": {"webhooks": [{"url": url}]}}),
        "discord.webhooks[0].url",
    )
    assert needle in line, line
    assert GOOD_TOKEN not in line
    assert "SEKRIT" not in line


def test_a_bad_webhook_from_the_environment_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    good = webhook_url()
    monkeypatch.setenv(
        "TOCSIN_DISCORD_WEBHOOKS", f"{good},https://discord.com/api/webhooks/9/SEKRIT"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(None)
    [line] = caught.value.errors
    assert line.startswith("TOCSIN_DISCORD_WEBHOOKS (discord.webhooks[1].url): ")
    assert "SEKRIT" not in line


@pytest.mark.parametrize(
    ("discord", "path"),
    [
        ({"channels": [{"id": "-1"}]}, "discord.channels[0].id"),
        ({"channels": [{"id": "18446744073709551616"}]}, "discord.channels[0].id"),
        ({"channels": [{"id": "#alerts"}]}, "discord.channels[0].id"),
        ({"admin_channel": "12345678901234567890123"}, "discord.admin_channel"),
        ({"guilds": ["223456789012345678", "guild"]}, "discord.guilds[1]"),
        ({"application_id": "app"}, "discord.application_id"),
    ],
)
def test_discord_ids_must_be_snowflakes(discord: dict[str, Any], path: str) -> None:
    line = error_at(errors_of({"providers": [], "discord": discord}), path)
    assert "Discord ids are numbers" in line, line


def test_a_discord_id_written_as_a_bare_number_is_its_digits(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "tocsin.yaml",
        "providers: []\ndiscord:\n  guilds: [223456789012345678]\n"
        "  channels: [{id: 123456789012345678}]\n  admin_channel: 323456789012345678\n",
    )
    discord = load_config(path).discord
    assert discord is not None
    assert discord.guilds == ["223456789012345678"]
    assert discord.channels[0].id == "123456789012345678"
    assert discord.admin_channel == "323456789012345678"


SLACK_IDS = ["C0123ABCD", "G0123ABCD", "D0123ABCD", "C01234567890"]
NOT_SLACK_IDS = ["#alerts", "alerts", "c0123abcd", "U0123ABCD", "C0123 ABCD"]


def test_slack_channels_must_be_channel_ids_not_names() -> None:
    channels = [{"id": channel} for channel in SLACK_IDS + NOT_SLACK_IDS]
    errors = errors_of({"providers": [], "slack": {"channels": channels, "admin_channel": "#ops"}})
    for index, channel in enumerate(SLACK_IDS + NOT_SLACK_IDS):
        found = [line for line in errors if line.startswith(f"slack.channels[{index}].id: ")]
        if channel in SLACK_IDS:
            assert not found, found
        else:
            [line] = found
            assert f"{channel!r} is not a Slack channel id" in line
    assert "is not a Slack channel id" in error_at(errors, "slack.admin_channel")
    assert len(errors) == len(NOT_SLACK_IDS) + 1, errors


def test_a_slack_channel_from_the_environment_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TOCSIN_SLACK_CHANNELS", "C0123ABCD,#alerts")
    monkeypatch.setenv("TOCSIN_SLACK_ADMIN_CHANNEL", "admins")
    with pytest.raises(ConfigError) as caught:
        load_config(None)
    errors = caught.value.errors
    assert "'#alerts'" in error_at(errors, "TOCSIN_SLACK_CHANNELS (slack.channels[1].id)")
    assert "'admins'" in error_at(errors, "TOCSIN_SLACK_ADMIN_CHANNEL")


@pytest.mark.parametrize(
    ("key", "needle"),
    [
        ("SEKRIT", "has 6 characters"),
        ("SEKRIT" + "0" * 30, "has 36 characters"),
        ("SEKRIT-" + "0" * 25, "has other characters"),
    ],
)
def test_pagerduty_routing_keys_are_32_letters_and_digits(key: str, needle: str) -> None:
    doc = {"providers": [], "escalation": [{"kind": "pagerduty", "routing_key": key}]}
    line = error_at(errors_of(doc), "escalation[0].routing_key")
    assert "32 letters and digits" in line
    assert needle in line
    assert "SEKRIT" not in line


def test_a_bad_routing_key_from_the_environment_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PAGERDUTY_ROUTING_KEY", "SEKRIT-routing-key")
    errors = errors_of({"providers": [], "escalation": [{"kind": "pagerduty"}]})
    assert "32 letters and digits" in error_at(errors, "PAGERDUTY_ROUTING_KEY")
    assert not any("SEKRIT" in line for line in errors)


# -- secrets are stripped, never half-pasted (issue 11, item 3) --------------------------------

#: Where each secret lives in a document, and a value of the shape its platform takes.
SECRET_PLACES: list[tuple[str, dict[str, Any], Callable[[TocsinConfig], Any]]] = [
    ("slack.bot_token", {"slack": {"bot_token": "xoxb-1-2-abc"}}, lambda c: c.slack.bot_token),
    ("slack.app_token", {"slack": {"app_token": "xapp-1-A-abc"}}, lambda c: c.slack.app_token),
    (
        "slack.signing_secret",
        {"slack": {"signing_secret": "8f742231b10e8888abcd99yyyzzz85a5"}},
        lambda c: c.slack.signing_secret,
    ),
    ("discord.token", {"discord": {"token": "MTIz.abc.def"}}, lambda c: c.discord.token),
    (
        "discord.webhooks[0].url",
        {"discord": {"webhooks": [{"url": webhook_url()}]}},
        lambda c: c.discord.webhooks[0].url,
    ),
    (
        "escalation[0].routing_key",
        {"escalation": [{"kind": "pagerduty", "routing_key": ROUTING_KEY}]},
        lambda c: c.escalation[0].routing_key,
    ),
    (
        "escalation[0].api_key",
        {"escalation": [{"kind": "opsgenie", "api_key": "eb243592-faa2-4ba2-a551-1afdf565c889"}]},
        lambda c: c.escalation[0].api_key,
    ),
    (
        "escalation[0].secret",
        {"escalation": [{"kind": "webhook", "url": "http://127.0.0.1:9/", "secret": "s3cr3t"}]},
        lambda c: c.escalation[0].secret,
    ),
    ("hooks.secret", {"hooks": {"secret": "0123456789abcdef0123"}}, lambda c: c.hooks.secret),
    (
        "providers[0].probe.auth.key",
        {"providers": [custom(probe={"url": "http://127.0.0.1:9/", "auth": {"key": "sk-ant-1"}})]},
        lambda c: c.providers[0].probe.auth.key,
    ),
]


def _with_value(document: dict[str, Any], path: str, value: str) -> dict[str, Any]:
    """``document`` with the secret at ``path`` replaced by ``value``."""
    doc = json.loads(json.dumps(document))
    target: Any = doc
    parts = path.replace("[", ".").replace("]", "").split(".")
    for part in parts[:-1]:
        target = target[int(part)] if part.isdigit() else target[part]
    target[parts[-1]] = value
    return {"providers": [], **doc}


def _secret_at(document: dict[str, Any], path: str) -> str:
    target: Any = document
    for part in path.replace("[", ".").replace("]", "").split("."):
        target = target[int(part)] if part.isdigit() else target[part]
    assert isinstance(target, str)
    return target


@pytest.mark.parametrize(
    ("path", "document", "get"), SECRET_PLACES, ids=[p[0] for p in SECRET_PLACES]
)
def test_every_secret_is_stripped_of_a_pasted_newline_or_space(
    path: str, document: dict[str, Any], get: Callable[[TocsinConfig], Any]
) -> None:
    value = _secret_at(document, path)
    config = build_config(_with_value(document, path, f" \t{value}\r\n"))
    assert get(config).get_secret_value() == value


@pytest.mark.parametrize(
    ("path", "document", "get"), SECRET_PLACES, ids=[p[0] for p in SECRET_PLACES]
)
@pytest.mark.parametrize(
    "inside", [" ", "\n", "\x00", "\u200b"], ids=["space", "nl", "nul", "zwsp"]
)
def test_a_secret_with_whitespace_or_control_characters_inside_is_an_error(
    path: str, document: dict[str, Any], get: Callable[[TocsinConfig], Any], inside: str
) -> None:
    value = _secret_at(document, path)
    half = len(value) // 2
    broken = value[:half] + inside + value[half:]
    errors = errors_of(_with_value(document, path, broken))
    line = error_at(errors, path)
    assert "whitespace or control characters" in line, line
    text = "\n".join(errors)
    assert value[:half] not in text
    assert value[half:] not in text  # neither half of the secret is shown


@pytest.mark.parametrize(
    ("var", "get"),
    [
        ("SLACK_BOT_TOKEN", lambda c: c.slack.bot_token),
        ("DISCORD_TOKEN", lambda c: c.discord.token),
        ("TOCSIN_HOOK_SECRET", lambda c: c.hooks.secret),
        ("REDIS_URL", lambda c: c.store.url),
    ],
)
def test_secrets_from_the_environment_are_stripped_and_checked_too(
    monkeypatch: pytest.MonkeyPatch, var: str, get: Callable[[TocsinConfig], Any]
) -> None:
    value = "redis://127.0.0.1:6390/0" if var == "REDIS_URL" else "SEKRIT-0123456789abcdef"
    monkeypatch.setenv(var, f"{value}\n")
    assert get(load_config(None)).get_secret_value() == value
    monkeypatch.setenv(var, f"{value[:8]}\n{value[8:]}")
    with pytest.raises(ConfigError) as caught:
        load_config(None)
    [line] = caught.value.errors
    assert line.startswith(f"{var}: contains "), line
    assert "control characters" in line
    assert "SEKRIT" not in line


def test_environment_policy_keys_are_stripped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAGERDUTY_ROUTING_KEY", f"  {ROUTING_KEY}\n")
    monkeypatch.setenv("OPSGENIE_API_KEY", "\teb243592-faa2-4ba2-a551-1afdf565c889 ")
    config = build_config(
        {"providers": [], "escalation": [{"kind": "pagerduty"}, {"kind": "opsgenie"}]}
    )
    keys = [
        getattr(p, "routing_key", None) or getattr(p, "api_key", None) for p in config.escalation
    ]
    assert [k.get_secret_value() for k in keys if k] == [
        ROUTING_KEY,
        "eb243592-faa2-4ba2-a551-1afdf565c889",
    ]


def test_redis_urls_are_stripped_but_keep_inner_spaces() -> None:
    """A unix socket path may hold a space; a pasted newline at the end is dropped."""
    url = "unix:///var/run/my redis/redis.sock"
    config = build_config({"providers": [], "store": {"url": f" {url}\n"}})
    assert config.store.url is not None
    assert config.store.url.get_secret_value() == url
    line = error_at(
        errors_of({"providers": [], "store": {"url": "redis://:pw\n@127.0.0.1:6390/0"}}),
        "store.url",
    )
    assert "control characters" in line
    assert "pw" not in line


def test_the_sentinel_password_keeps_inner_spaces_but_not_a_pasted_newline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REDIS_URL", "redis+sentinel://s1:26390/mymaster/0")
    monkeypatch.setenv("REDIS_SENTINEL_PASSWORD", " correct horse battery\n")
    store = load_config(None).store
    assert store.sentinel_password is not None
    assert store.sentinel_password.get_secret_value() == "correct horse battery"
    monkeypatch.setenv("REDIS_SENTINEL_PASSWORD", "correct\x1bhorse")
    line = error_at(errors_of({"providers": []}), "REDIS_SENTINEL_PASSWORD")
    assert "control characters" in line
    assert "horse" not in line
