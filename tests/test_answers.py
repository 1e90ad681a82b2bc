"""/status and /fallback answers, decided once for every platform, from the store."""

from __future__ import annotations

import json
from datetime import timedelta

from bot.answers import (
    Answers,
    FallbackAnswer,
    Help,
    Overview,
    ProviderDetail,
    TroubleFallbacks,
    UnknownProvider,
    litellm_snippet,
    openrouter_snippet,
)
from bot.models import ComponentState, Incident, StateUpdate, Status, utcnow
from bot.queries import FallbackOption
from bot.store import MemoryStore
from config.loader import build_config

CONFIG = build_config(
    {
        "providers": [
            {"id": "anthropic", "fallbacks": ["openai", "google-gemini", "groq"]},
            {"id": "openai"},
            {"id": "google-gemini"},
            {"id": "groq"},
        ]
    }
)


def _state(provider: str, component: str, status: Status, **kw: object) -> ComponentState:
    return ComponentState(
        provider=provider, component=component, status=status, last_known=status, **kw
    )  # type: ignore[arg-type]


async def _store(*states: ComponentState) -> MemoryStore:
    store = MemoryStore()
    await store.apply([StateUpdate(s, status_changed=True) for s in states])
    return store


async def test_overview_lists_every_provider_and_the_trouble() -> None:
    store = await _store(
        _state("anthropic", "k8w3r06qmzrp", Status.MAJOR_OUTAGE, confirmed=True),
        _state("openai", "chat", Status.OPERATIONAL),
    )
    answer = await Answers(CONFIG, store).status("")
    assert isinstance(answer, Overview)
    assert [r.id for r in answer.rows] == ["anthropic", "openai", "google-gemini", "groq"]
    assert [r.id for r in answer.trouble] == ["anthropic"]
    assert answer.rows[2].status is Status.UNKNOWN  # no data yet is unknown, never green


async def test_detail_has_components_incident_uptime_and_fallbacks() -> None:
    now = utcnow()
    incident = Incident(
        id="i1", title="Elevated errors", status="identified", update="A fix is rolling out"
    )
    down = _state(
        "anthropic",
        "k8w3r06qmzrp",
        Status.MAJOR_OUTAGE,
        name="Claude API",
        incident=incident,
        confirmed=True,
        since=now - timedelta(hours=6),
    )
    store = MemoryStore()
    was_up = down.model_copy(
        update={"status": Status.OPERATIONAL, "since": now - timedelta(hours=30)}
    )
    await store.apply(
        [StateUpdate(was_up, status_changed=True), StateUpdate(down, status_changed=True)]
    )
    await store.apply([StateUpdate(_state("openai", "chat", Status.OPERATIONAL, latency_ms=210.0))])
    answer = await Answers(CONFIG, store, probed={"openai"}).status("anthropic")
    assert isinstance(answer, ProviderDetail)
    assert answer.row.incident == incident
    assert [c.state.display_name for c in answer.components] == ["Claude API"]
    assert answer.uptime is not None
    assert abs(answer.uptime - 18 / 24) < 0.01  # down for the last 6 of 24 hours
    assert answer.fallbacks[0].provider == "openai"
    assert answer.fallbacks[0].has_key


async def test_a_provider_may_be_named_by_its_name_too() -> None:
    answer = await Answers(CONFIG, await _store()).status("OpenAI")
    assert isinstance(answer, ProviderDetail)
    assert answer.row.id == "openai"


async def test_unknown_provider_suggests_the_closest_and_lists_the_valid() -> None:
    answer = await Answers(CONFIG, await _store()).status("antropic")
    assert isinstance(answer, UnknownProvider)
    assert answer.suggestion == "anthropic"
    assert answer.valid == ("anthropic", "openai", "google-gemini", "groq")
    assert "`antropic`" in answer.message
    assert "Did you mean `anthropic`?" in answer.message
    nothing_close = await Answers(CONFIG, await _store()).fallback("zzzzzz")
    assert isinstance(nothing_close, UnknownProvider)
    assert nothing_close.suggestion is None


async def test_unknown_provider_quotes_what_was_typed_as_one_short_span() -> None:
    """What someone typed comes back clipped, on one line, and unable to close the code span
    it is quoted in (on every platform: a backtick cannot be escaped inside one)."""
    typed = "x`\u202e<!channel>`@everyone[a](https://evil.example)`" + "y" * 100
    for answer in (
        await Answers(CONFIG, await _store()).status(typed),
        await Answers(CONFIG, await _store()).fallback(typed),
    ):
        assert isinstance(answer, UnknownProvider)
        assert len(answer.given) <= 40
        assert "`" not in answer.given
        assert "\u202e" not in answer.given
        assert answer.given.startswith("x'<!channel>'@everyone")
        assert f"called `{answer.given}`." in answer.message
        quoted = answer.message_with(lambda text: f"<{text}>")
        assert f"called `<{answer.given}>`." in quoted  # each platform escapes the span's text
        assert "`<anthropic>`" in quoted


async def test_fallback_ranks_by_state_then_latency_and_gives_snippets() -> None:
    store = await _store(
        _state("anthropic", "api", Status.MAJOR_OUTAGE),
        _state("openai", "chat", Status.OPERATIONAL, latency_ms=400.0),
        _state("google-gemini", "vertex", Status.OPERATIONAL, latency_ms=120.0),
        _state("groq", "api", Status.PARTIAL_OUTAGE, latency_ms=50.0),
    )
    answer = await Answers(CONFIG, store, probed={"openai"}).fallback("anthropic")
    assert isinstance(answer, FallbackAnswer)
    assert [o.provider for o in answer.options] == ["google-gemini", "openai", "groq"]
    assert answer.best is not None
    assert answer.best.provider == "google-gemini"
    assert [o.has_key for o in answer.options] == [False, True, False]
    gemini, openai = (CONFIG.provider(p) for p in ("google-gemini", "openai"))
    anthropic = CONFIG.provider("anthropic")
    assert answer.litellm == (
        f'completion(model="{anthropic.litellm_model}", messages=messages, '  # type: ignore[union-attr]
        f'fallbacks=["{gemini.litellm_model}", "{openai.litellm_model}"])'  # type: ignore[union-attr]
    )
    assert answer.openrouter is not None
    models = json.loads(answer.openrouter)["models"]
    assert models == [anthropic.openrouter_model, gemini.openrouter_model, openai.openrouter_model]  # type: ignore[union-attr]


async def test_fallback_without_a_provider_covers_everything_in_trouble() -> None:
    store = await _store(
        _state("anthropic", "api", Status.MAJOR_OUTAGE),
        _state("openai", "chat", Status.OPERATIONAL),
    )
    answer = await Answers(CONFIG, store).fallback("")
    assert isinstance(answer, TroubleFallbacks)
    assert [a.row.id for a in answer.answers] == ["anthropic"]
    calm = await Answers(
        CONFIG, await _store(_state("openai", "chat", Status.OPERATIONAL))
    ).fallback("")
    assert isinstance(calm, TroubleFallbacks)
    assert calm.answers == ()


async def test_help() -> None:
    answer = await Answers(CONFIG, await _store()).status("help")
    assert isinstance(answer, Help)
    assert answer.providers == ("anthropic", "openai", "google-gemini", "groq")
    assert isinstance(await Answers(CONFIG, await _store()).fallback("help"), Help)


def test_snippets_leave_out_what_is_down_and_what_has_no_model_name() -> None:
    options = [
        FallbackOption("a", "A", Status.OPERATIONAL, litellm_model="x/a", openrouter_model="x/a"),
        FallbackOption("b", "B", Status.MAJOR_OUTAGE, litellm_model="x/b", openrouter_model="x/b"),
        FallbackOption("c", "C", Status.DEGRADED),
    ]
    assert litellm_snippet("p/main", options) == (
        'completion(model="p/main", messages=messages, fallbacks=["x/a"])'
    )
    assert openrouter_snippet("p/main", options) == '{"models": ["p/main", "x/a"]}'
    assert litellm_snippet("p/main", options[1:]) is None
    assert openrouter_snippet(None, options[1:]) is None
