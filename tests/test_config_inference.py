"""The inference probe's and the upstreams' configuration: catalog defaults, overrides, errors,
and what ``tocsin config validate`` says the probes will cost."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.probe_cost import inference_cost
from config.loader import ConfigError, build_config, load_config
from tests.test_cli import tocsin, write_config


def test_the_catalog_gives_an_inference_probe_everything_but_the_choice() -> None:
    config = build_config({"providers": [{"id": "anthropic", "probe": {"kind": "inference"}}]})
    probe = config.providers[0].probe
    assert probe is not None
    assert (probe.kind, probe.wire, probe.api_url) == (
        "inference",
        "anthropic",
        "https://api.anthropic.com",
    )
    assert probe.models == ["claude-haiku-4-5"]
    assert probe.model_name("claude-haiku-4-5") == "Claude Haiku 4.5"


def test_the_users_models_replace_the_catalogs() -> None:
    models = ["claude-sonnet-4-5", "claude-haiku-4-5"]
    config = build_config(
        {"providers": [{"id": "anthropic", "probe": {"kind": "inference", "models": models}}]}
    )
    probe = config.providers[0].probe
    assert probe is not None
    assert probe.models == models
    assert probe.model_name("claude-sonnet-4-5") == "Claude Sonnet 4.5"
    assert probe.model_name("my-finetune") == "my-finetune"


@pytest.mark.parametrize(
    ("probe", "message"),
    [
        ({"kind": "inference", "models": []}, "needs models"),
        ({"kind": "inference", "models": ["a", "a"]}, "lists a model twice"),
        ({"kind": "inference", "models": ["<!channel>"]}, "should match pattern"),
        ({"kind": "inference", "wire": "soap"}, "'anthropic', 'openai', 'gemini' or 'cohere'"),
        ({"kind": "inference", "latency_window": 0}, "greater than or equal to 1"),
    ],
)
def test_a_bad_inference_probe_is_a_clear_error(probe: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build_config({"providers": [{"id": "anthropic", "probe": probe}]})
    assert message in str(caught.value)


def test_a_custom_inference_probe_needs_its_wire_and_url() -> None:
    with pytest.raises(ConfigError) as caught:
        build_config(
            {"providers": [{"id": "acme", "name": "Acme", "probe": {"kind": "inference"}}]}
        )
    assert "needs wire and api_url" in str(caught.value)


def test_upstreams_default_to_those_the_watched_providers_stand_on() -> None:
    config = build_config({"providers": ["google-gemini", "cohere"]})
    assert [u.id for u in config.upstreams] == ["google-cloud"]
    assert build_config({"providers": ["deepseek"]}).upstreams == []
    assert build_config({"providers": ["openai"], "upstreams": []}).upstreams == []


def test_an_unknown_upstream_is_an_error_with_a_suggestion() -> None:
    with pytest.raises(ConfigError) as caught:
        build_config({"providers": [{"id": "openai", "upstreams": ["cloudflair"]}]})
    assert "providers[0].upstreams[0]: unknown upstream 'cloudflair'" in str(caught.value)
    assert "did you mean 'cloudflare'" in str(caught.value)


def test_the_cost_counts_calls_and_tokens_a_day() -> None:
    config = build_config(
        {
            "providers": [
                {
                    "id": "anthropic",
                    "probe": {"kind": "inference", "models": ["a", "b"], "interval": "60s"},
                },
                {"id": "openai", "probe": {"kind": "inference", "models": ["c", "d"]}},
            ],
            "watch": {"interval": "60s"},
        }
    )
    cost = inference_cost(config)
    # 4 models, 1440 calls each; anthropic 9 tokens a call, openai 9
    assert (cost.probes, cost.calls_per_day, cost.tokens_per_day) == (4, 5760, 5760 * 9)
    assert str(cost) == "4 inference probes every 60 s ≈ 5,760 calls/day, ≈ 52k tokens/day"


def test_config_validate_prints_the_cost(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        {
            "providers": [
                {"id": "anthropic", "probe": {"kind": "inference", "interval": "10s"}},
                {"id": "openai", "probe": {"kind": "inference", "interval": "60s"}},
            ]
        },
    )
    result = tocsin("config", "validate", str(path), cwd=tmp_path)
    assert result.code == 0, result
    assert "cost: 2 inference probes every 10 to 60 s ≈ 10,080 calls/day, ≈ 91k tokens/day" in (
        " ".join(result.out.split())
    )


def test_signal_tokens_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """``TOCSIN_SIGNAL_TOKENS=checkout:<token>,<token>``: apps and their tokens, secrets that a
    bad value's error never shows."""
    first, second = "checkout-token-0123456789", "bare-token-abcdef012345"
    monkeypatch.setenv("TOCSIN_SIGNAL_TOKENS", f" checkout:{first} , {second}\n")
    tokens = load_config(None).signals.tokens
    assert [(t.name, t.token.get_secret_value()) for t in tokens] == [
        ("checkout", first),
        ("app-2", second),
    ]
    monkeypatch.setenv("TOCSIN_SIGNAL_TOKENS", "checkout:short-SEKRIT")
    with pytest.raises(ConfigError) as caught:
        load_config(None)
    assert "TOCSIN_SIGNAL_TOKENS" in str(caught.value)
    assert "SEKRIT" not in str(caught.value)
