"""The tracker's rules for inference probes (one component per model) and upstream causes.

Pure and synchronous like tests/test_tracker.py: observations are built by hand with explicit
times, nothing sleeps.
"""

from __future__ import annotations

from bot.answers import ComponentLine
from bot.models import Incident, Observation, ProbeError, SourceKind, Status
from bot.queries import fallback_options, provider_rows
from bot.tracker import Tracker, TrackerSettings
from config.loader import build_config
from tests.test_tracker import MAJOR, OPERATIONAL, at, events, feed, only, user_events

SONNET, HAIKU = "claude-sonnet-4-5", "claude-haiku-4-5"
NAMES = {SONNET: "Claude Sonnet 4.5", HAIKU: "Claude Haiku 4.5"}


def call(
    model: str,
    t: float,
    status: Status = OPERATIONAL,
    error: ProbeError | None = None,
    *,
    provider: str = "anthropic",
    detail: str | None = None,
) -> Observation:
    """One inference probe call of ``model``, as bot/sources/inference.py reports it."""
    return Observation(
        provider=provider,
        component=model,
        component_name=NAMES.get(model, model),
        status=status,
        source=f"{provider}:probe",
        kind=SourceKind.PROBE,
        at=at(t),
        latency_ms=300.0,
        error=error,
        detail=detail,
        model=model,
        latency_p50_ms=300.0,
        latency_p95_ms=450.0,
    )


def overloaded(model: str, t: float, n: int, provider: str = "anthropic") -> Observation:
    detail = f"{n} of {n} calls answered 529 overloaded"
    return call(model, t, MAJOR, ProbeError.HTTP, provider=provider, detail=detail)


def upstream_page(upstream: str, t: float, incident: Incident | None) -> Observation:
    return Observation(
        provider=upstream,
        component="network",
        status=MAJOR if incident else OPERATIONAL,
        source=f"{upstream}:statuspage",
        kind=SourceKind.PAGE,
        at=at(t),
        incident=incident,
    )


CLOUDFLARE_INCIDENT = Incident(
    id="cf1", title="Widespread 5xx errors", url="https://www.cloudflarestatus.com/incidents/cf1"
)


def test_one_model_of_two_failing_is_a_partial_outage_named_by_the_model() -> None:
    tracker = Tracker(names={"anthropic": "Anthropic"})
    feed(tracker, call(SONNET, 0), call(HAIKU, 0))
    feed(tracker, overloaded(SONNET, 60, 1), call(HAIKU, 60))
    event = only(user_events(feed(tracker, overloaded(SONNET, 120, 2), call(HAIKU, 120))))
    assert (event.component, event.component_name, event.to) == (SONNET, NAMES[SONNET], MAJOR)
    assert event.provider_status is Status.PARTIAL_OUTAGE
    assert event.detail == "2 of 2 calls answered 529 overloaded; Claude Haiku 4.5 operational"


def test_every_model_down_is_the_whole_provider_down() -> None:
    tracker = Tracker()
    feed(tracker, call(SONNET, 0), call(HAIKU, 0))
    feed(tracker, overloaded(SONNET, 60, 1), overloaded(HAIKU, 60, 1))
    changes = user_events(feed(tracker, overloaded(SONNET, 120, 2), overloaded(HAIKU, 120, 2)))
    assert [e.provider_status for e in changes] == [Status.PARTIAL_OUTAGE, MAJOR]


def test_a_retired_model_is_a_config_alert_not_an_outage() -> None:
    tracker = Tracker()
    detail = "claude-3-opus is not found or retired: update probe.models"
    retired = call("claude-3-opus", 0, Status.UNKNOWN, ProbeError.MODEL, detail=detail)
    alert = only(events(feed(tracker, retired)))
    assert (alert.type, alert.audience, alert.detail) == ("config_alert", "admins", detail)
    assert user_events(feed(tracker, retired)) == []


def test_the_status_answer_and_fallbacks_put_the_sibling_model_first() -> None:
    config = build_config({"providers": ["anthropic", "openai", "google-gemini"]})
    tracker = Tracker()
    feed(tracker, call(SONNET, 0), call(HAIKU, 0))
    feed(tracker, overloaded(SONNET, 60, 1), overloaded(SONNET, 120, 2), call(HAIKU, 120))
    states = tracker.states()
    row = next(r for r in provider_rows(config, states) if r.id == "anthropic")
    assert row.status is Status.PARTIAL_OUTAGE
    assert {c.component for c in row.components} >= {SONNET, HAIKU}
    options = fallback_options(config, states, "anthropic")
    first = options[0]
    assert (first.provider, first.model, first.status) == ("anthropic", HAIKU, OPERATIONAL)
    assert first.litellm_model == f"anthropic/{HAIKU}"
    assert [o.provider for o in options[1:]] == ["openai", "google-gemini"]


def test_no_sibling_is_suggested_while_every_model_answers() -> None:
    config = build_config({"providers": ["anthropic", "openai"]})
    tracker = Tracker()
    feed(tracker, call(SONNET, 0), call(HAIKU, 0))
    options = fallback_options(config, tracker.states(), "anthropic")
    assert [(o.provider, o.model) for o in options] == [("openai", None), ("google-gemini", None)]


def settings_with_upstreams(**kw: object) -> TrackerSettings:
    return TrackerSettings(
        upstreams=dict.fromkeys(("openai", "groq", "xai"), ("cloudflare",)),
        upstream_names={"cloudflare": "Cloudflare"},
        **kw,  # type: ignore[arg-type]
    )


def test_an_open_upstream_incident_is_the_cause_of_its_providers_events() -> None:
    tracker = Tracker(settings_with_upstreams())
    assert feed(tracker, upstream_page("cloudflare", 0, CLOUDFLARE_INCIDENT)) == []
    assert "cloudflare/network" not in tracker.states()  # read, never a watched provider
    feed(tracker, call("gpt", 0, provider="openai"), call("m", 0, provider="mistral"))
    feed(tracker, overloaded("gpt", 60, 1, "openai"), overloaded("m", 60, 1, "mistral"))
    out = feed(tracker, overloaded("gpt", 120, 2, "openai"), overloaded("m", 120, 2, "mistral"))
    by_provider = {e.provider: e for e in user_events(out)}
    cause = by_provider["openai"].cause
    assert cause is not None
    assert (cause.upstream, cause.name) == ("cloudflare", "Cloudflare")
    assert cause.group == "cloudflare:cf1"
    assert (cause.incident, cause.url) == (CLOUDFLARE_INCIDENT.title, CLOUDFLARE_INCIDENT.url)
    assert by_provider["mistral"].cause is None  # it does not stand on Cloudflare


def test_a_resolved_or_planned_upstream_incident_is_no_cause() -> None:
    tracker = Tracker(settings_with_upstreams())
    feed(tracker, upstream_page("cloudflare", 0, CLOUDFLARE_INCIDENT))
    assert tracker.cause("openai") is not None
    resolved = CLOUDFLARE_INCIDENT.model_copy(update={"status": "resolved"})
    feed(tracker, upstream_page("cloudflare", 10, resolved))
    assert tracker.cause("openai") is None
    planned = CLOUDFLARE_INCIDENT.model_copy(update={"id": "m1", "maintenance": True})
    feed(tracker, upstream_page("cloudflare", 20, planned))
    assert tracker.cause("openai") is None


def test_network_failures_explained_upstream_are_not_our_network() -> None:
    """Without an upstream incident, three of four providers timing out is our own network
    (today's self-check); with Cloudflare's incident open, they are Cloudflare's outage."""

    def run(with_incident: bool) -> tuple[bool, set[str]]:
        tracker = Tracker(settings_with_upstreams(self_check_min_providers=3))
        if with_incident:
            feed(tracker, upstream_page("cloudflare", 0, CLOUDFLARE_INCIDENT))
        providers = ("openai", "groq", "xai", "mistral")
        for p in providers:
            feed(tracker, call("m", 0, provider=p))
        down: set[str] = set()
        for t in (60, 120, 180):
            for p in providers:
                obs = (
                    call("m", t, provider=p)
                    if p == "mistral"
                    else call("m", t, MAJOR, ProbeError.TIMEOUT, provider=p, detail="timeout")
                )
                down |= {e.provider for e in user_events(feed(tracker, obs)) if e.to is MAJOR}
        return tracker.network_suspect, down

    assert run(with_incident=False) == (True, set())
    assert run(with_incident=True) == (False, {"openai", "groq", "xai"})


def test_status_lists_each_model_with_its_latency_percentiles() -> None:
    tracker = Tracker()
    feed(tracker, call(SONNET, 0), call(HAIKU, 0))
    line = ComponentLine(tracker.states()[f"anthropic/{SONNET}"], 1.0).summary
    assert line == "✅ Claude Sonnet 4.5: operational · 100.00% up · p50 300 ms, p95 450 ms"
