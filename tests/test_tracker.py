"""The tracker (bot/tracker.py): observations in, state updates and events out.

The tracker is pure and synchronous, so every test builds its observations by hand with an
explicit ``at`` (seconds after ``T0``): time is fully controlled and nothing sleeps. The rules
under test are DESIGN.md's "Statuses", "Sources" and "Tracker rules" and the tracker's own
module docstring.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from bot.compose import compose
from bot.models import (
    ComponentState,
    Event,
    Incident,
    Observation,
    ProbeError,
    SourceKind,
    StateUpdate,
    Status,
)
from bot.tracker import Thresholds, Tracker, TrackerSettings

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

OPERATIONAL = Status.OPERATIONAL
DEGRADED = Status.DEGRADED
PARTIAL = Status.PARTIAL_OUTAGE
MAJOR = Status.MAJOR_OUTAGE
MAINTENANCE = Status.MAINTENANCE
UNKNOWN = Status.UNKNOWN


# ------------------------------------------------------------------------------------ helpers


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def probe_id(provider: str) -> str:
    return f"{provider}:probe"


def page_id(provider: str) -> str:
    return f"{provider}:statuspage"


def probe(
    provider: str,
    t: float,
    status: Status = OPERATIONAL,
    error: ProbeError | None = None,
    *,
    component: str = "api",
    latency_ms: float | None = None,
    detail: str | None = None,
) -> Observation:
    return Observation(
        provider=provider,
        component=component,
        status=status,
        source=probe_id(provider),
        kind=SourceKind.PROBE,
        at=at(t),
        latency_ms=latency_ms,
        error=error,
        detail=detail,
    )


def ok(provider: str, t: float) -> Observation:
    """A healthy 2xx answer in time."""
    return probe(provider, t, OPERATIONAL, latency_ms=120.0)


def fail(
    provider: str, t: float, error: ProbeError = ProbeError.HTTP, status: Status = MAJOR
) -> Observation:
    """A failed probe: by default an HTTP 5xx (the provider answered, badly)."""
    return probe(provider, t, status, error, detail=f"{error.value} failure")


def net(provider: str, t: float, error: ProbeError = ProbeError.NETWORK) -> Observation:
    """A probe that got no answer at all (connection error or timeout)."""
    return fail(provider, t, error)


def slow(provider: str, t: float) -> Observation:
    """2xx, but slower than the latency budget."""
    return probe(provider, t, DEGRADED, latency_ms=9000.0)


def limited(provider: str, t: float) -> Observation:
    """HTTP 429: up, but we are throttled."""
    return probe(provider, t, OPERATIONAL, ProbeError.RATE_LIMITED, detail="HTTP 429")


def auth(provider: str, t: float, error: ProbeError = ProbeError.AUTH) -> Observation:
    """HTTP 401/403 (or, with ``error=CONFIG``, a 404): our key or probe is wrong."""
    return probe(provider, t, UNKNOWN, error, detail="probe rejected our key (HTTP 401)")


def page(
    provider: str,
    t: float,
    status: Status,
    *,
    component: str = "api",
    incident: Incident | None = None,
    name: str | None = None,
) -> Observation:
    return Observation(
        provider=provider,
        component=component,
        status=status,
        source=page_id(provider),
        kind=SourceKind.PAGE,
        at=at(t),
        incident=incident,
        component_name=name,
        detail="page unreadable" if status is UNKNOWN else None,
    )


def incident(
    incident_id: str = "inc1", update: str = "u1", status: str = "investigating"
) -> Incident:
    return Incident(
        id=incident_id,
        title=f"Elevated errors ({incident_id})",
        url=f"https://status.example.com/incidents/{incident_id}",
        status=status,
        update=f"{status}: text of {update}",
        update_id=f"{incident_id}-{update}",
    )


def feed(tracker: Tracker, *observations: Observation) -> list[StateUpdate]:
    """Observe one observation at a time (one ``observe`` call each), as sources report."""
    updates: list[StateUpdate] = []
    for obs in observations:
        updates.extend(tracker.observe([obs]))
    return updates


def batch(tracker: Tracker, *observations: Observation) -> list[StateUpdate]:
    """Observe several observations in one ``observe`` call (one scheduler round)."""
    return tracker.observe(list(observations))


def events(updates: Sequence[StateUpdate]) -> list[Event]:
    return [u.event for u in updates if u.event is not None]


def user_events(updates: Sequence[StateUpdate]) -> list[Event]:
    return [e for e in events(updates) if e.audience == "all"]


def admin_events(updates: Sequence[StateUpdate]) -> list[Event]:
    return [e for e in events(updates) if e.audience == "admins"]


def of_type(updates: Sequence[StateUpdate], kind: str) -> list[Event]:
    return [e for e in events(updates) if e.type == kind]


def state(tracker: Tracker, provider: str = "acme", component: str = "api") -> ComponentState:
    return tracker.states()[f"{provider}/{component}"]


def suspect(tracker: Tracker) -> bool:
    """Whether the tracker suspects our own network (read fresh: it changes as we observe)."""
    return tracker.network_suspect


def only(items: Sequence[Event]) -> Event:
    assert len(items) == 1, [(e.type, e.from_, e.to, e.audience, e.detail) for e in items]
    return items[0]


def probe_outage(tracker: Tracker, provider: str = "acme", start: float = 0.0) -> Event:
    """A healthy start, then two HTTP failures: the suspected outage event."""
    assert events(feed(tracker, ok(provider, start))) == []
    assert events(feed(tracker, fail(provider, start + 10))) == []
    return only(events(feed(tracker, fail(provider, start + 20))))


def flap_page(tracker: Tracker, provider: str, times: Sequence[float]) -> list[StateUpdate]:
    """Page reports alternating major_outage / operational at the given times."""
    updates: list[StateUpdate] = []
    for i, t in enumerate(times):
        updates += feed(tracker, page(provider, t, MAJOR if i % 2 == 0 else OPERATIONAL))
    return updates


# ------------------------------------------------------------------- probe thresholds


def test_single_probe_failure_is_a_blip_without_event() -> None:
    tracker = Tracker()
    feed(tracker, ok("acme", 0))
    updates = feed(tracker, fail("acme", 10), ok("acme", 20), ok("acme", 30))
    assert events(updates) == []
    assert state(tracker).status is OPERATIONAL


def test_failure_threshold_consecutive_failures_announce_a_suspected_outage() -> None:
    tracker = Tracker()
    feed(tracker, ok("acme", 0))
    assert events(feed(tracker, fail("acme", 10))) == []
    updates = feed(tracker, fail("acme", 20))
    event = only(events(updates))
    assert event.type == "state_changed"
    assert (event.from_, event.to) == (OPERATIONAL, MAJOR)
    assert event.confirmed is False
    assert event.audience == "all"
    assert event.provider == "acme"
    assert event.component == "api"
    assert event.source == probe_id("acme")
    assert event.at == at(20)
    assert updates[-1].status_changed is True
    assert state(tracker).status is MAJOR
    assert state(tracker).since == at(20)
    # further failures are not news
    assert events(feed(tracker, fail("acme", 30), fail("acme", 40))) == []


def test_success_threshold_successes_to_recover() -> None:
    tracker = Tracker()
    probe_outage(tracker)
    assert events(feed(tracker, ok("acme", 30))) == []
    assert state(tracker).status is MAJOR
    event = only(events(feed(tracker, ok("acme", 40))))
    assert (event.type, event.from_, event.to) == ("state_changed", MAJOR, OPERATIONAL)
    assert state(tracker).status is OPERATIONAL


def test_single_success_during_an_outage_is_a_blip() -> None:
    tracker = Tracker()
    probe_outage(tracker)
    updates = feed(tracker, ok("acme", 30), fail("acme", 40), ok("acme", 50), fail("acme", 60))
    assert events(updates) == []
    assert state(tracker).status is MAJOR


@pytest.mark.parametrize("rounds", [2, 5, 20])
def test_alternating_results_never_reach_the_threshold(rounds: int) -> None:
    tracker = Tracker()
    feed(tracker, ok("acme", 0))
    updates: list[StateUpdate] = []
    for i in range(rounds):
        updates += feed(tracker, fail("acme", 10 + 20 * i), ok("acme", 20 + 20 * i))
    assert events(updates) == []
    assert state(tracker).status is OPERATIONAL


def test_alternating_results_during_an_outage_never_recover() -> None:
    tracker = Tracker()
    probe_outage(tracker)
    updates: list[StateUpdate] = []
    for i in range(10):
        updates += feed(tracker, ok("acme", 30 + 20 * i), fail("acme", 40 + 20 * i))
    assert events(updates) == []
    assert state(tracker).status is MAJOR


def test_per_provider_thresholds() -> None:
    tracker = Tracker(thresholds={"strict": Thresholds(failure=3, success=1)})
    feed(tracker, ok("strict", 0), ok("acme", 0))
    # acme keeps the default (2 failures)
    assert events(feed(tracker, fail("acme", 10))) == []
    assert len(events(feed(tracker, fail("acme", 20)))) == 1
    # strict needs 3 failures ...
    assert events(feed(tracker, fail("strict", 10), fail("strict", 20))) == []
    event = only(events(feed(tracker, fail("strict", 30))))
    assert (event.provider, event.to) == ("strict", MAJOR)
    # ... and a single success to recover
    event = only(events(feed(tracker, ok("strict", 40))))
    assert (event.provider, event.to) == ("strict", OPERATIONAL)
    # while acme still needs two
    assert events(feed(tracker, ok("acme", 40))) == []
    assert len(events(feed(tracker, ok("acme", 50)))) == 1


def test_settings_thresholds_are_the_default_for_every_provider() -> None:
    tracker = Tracker(TrackerSettings(thresholds=Thresholds(failure=1, success=3)))
    feed(tracker, ok("acme", 0))
    assert only(events(feed(tracker, fail("acme", 10)))).to is MAJOR
    assert events(feed(tracker, ok("acme", 20), ok("acme", 30))) == []
    assert only(events(feed(tracker, ok("acme", 40)))).to is OPERATIONAL


def test_slow_answers_are_debounced_into_degraded() -> None:
    tracker = Tracker()
    feed(tracker, ok("acme", 0))
    assert events(feed(tracker, slow("acme", 10))) == []
    event = only(events(feed(tracker, slow("acme", 20))))
    assert (event.from_, event.to, event.confirmed) == (OPERATIONAL, DEGRADED, False)
    assert event.latency_ms == 9000.0
    assert state(tracker).latency_ms == 9000.0


def test_a_changing_failure_kind_restarts_the_streak() -> None:
    """Consecutive readings must agree: degraded then major is one of each, not two failures."""
    tracker = Tracker()
    feed(tracker, ok("acme", 0))
    assert events(feed(tracker, slow("acme", 10), fail("acme", 20))) == []
    assert only(events(feed(tracker, fail("acme", 30)))).to is MAJOR


# ------------------------------------------------------------------------------ startup


def test_first_healthy_probe_answer_is_silent() -> None:
    tracker = Tracker()
    updates = feed(tracker, ok("acme", 0))
    assert events(updates) == []
    assert len(updates) == 1
    assert updates[0].state.status is OPERATIONAL
    assert state(tracker).status is OPERATIONAL
    assert state(tracker).last_known is OPERATIONAL


def test_first_healthy_page_report_is_silent() -> None:
    tracker = Tracker()
    updates = feed(tracker, page("acme", 0, OPERATIONAL))
    assert events(updates) == []
    assert state(tracker).status is OPERATIONAL


def test_before_any_conclusion_the_status_is_unknown() -> None:
    tracker = Tracker()
    updates = feed(tracker, fail("acme", 0))
    assert user_events(updates) == []
    assert updates[-1].state.status is UNKNOWN
    assert not any(u.status_changed for u in updates)


def test_a_single_failed_probe_at_startup_is_no_event() -> None:
    tracker = Tracker()
    updates = feed(tracker, fail("acme", 0), ok("acme", 10), ok("acme", 20))
    assert events(updates) == []


def test_a_broken_first_read_is_an_admin_event() -> None:
    """Unknown before, unknown after: no transition, but the admins hear what is wrong."""
    tracker = Tracker()
    updates = feed(tracker, page("acme", 0, UNKNOWN))
    event = only(events(updates))
    assert (event.type, event.from_, event.to, event.audience) == (
        "config_alert",
        None,
        UNKNOWN,
        "admins",
    )
    assert event.detail == "page unreadable"
    assert not updates[-1].status_changed
    # still broken: not news again; then readable and healthy: a first healthy read, silent
    assert events(feed(tracker, page("acme", 10, UNKNOWN))) == []
    assert events(feed(tracker, page("acme", 20, OPERATIONAL))) == []
    assert state(tracker).status is OPERATIONAL


def test_starting_during_a_probe_outage_announces_it() -> None:
    tracker = Tracker()
    assert user_events(feed(tracker, fail("acme", 0))) == []
    event = only(events(feed(tracker, fail("acme", 10))))
    assert (event.type, event.from_, event.to) == ("state_changed", UNKNOWN, MAJOR)
    assert event.audience == "all"
    assert event.confirmed is False


def test_starting_during_a_page_outage_announces_it_at_once() -> None:
    tracker = Tracker()
    event = only(events(feed(tracker, page("acme", 0, PARTIAL))))
    assert (event.type, event.to, event.confirmed, event.audience) == (
        "state_changed",
        PARTIAL,
        True,
        "all",
    )
    assert event.source == page_id("acme")


def test_a_status_page_report_applies_at_once() -> None:
    tracker = Tracker()
    feed(tracker, page("acme", 0, OPERATIONAL))
    event = only(events(feed(tracker, page("acme", 10, DEGRADED))))
    assert (event.from_, event.to, event.confirmed) == (OPERATIONAL, DEGRADED, True)
    event = only(events(feed(tracker, page("acme", 20, OPERATIONAL))))
    assert (event.from_, event.to) == (DEGRADED, OPERATIONAL)


def test_failures_separated_by_the_first_healthy_answer_are_not_consecutive() -> None:
    tracker = Tracker()
    updates = feed(tracker, fail("acme", 0), ok("acme", 10), fail("acme", 20))
    assert user_events(updates) == []
    assert state(tracker).status is OPERATIONAL


def test_no_recheck_needed_after_the_first_healthy_answer_follows_a_failure() -> None:
    tracker = Tracker()
    feed(tracker, fail("acme", 0), ok("acme", 10))
    assert state(tracker).status is OPERATIONAL
    assert tracker.needs_recheck(probe_id("acme")) is False


def test_events_serialise_to_the_v1_contract() -> None:
    tracker = Tracker()
    feed(tracker, page("acme", 0, OPERATIONAL))
    event = only(events(feed(tracker, page("acme", 10, MAJOR, incident=incident()))))
    raw = json.loads(event.to_json())
    contract = {"v", "id", "type", "provider", "component", "from", "to", "at", "source"}
    assert contract | {"confirmed", "incident", "detail"} <= raw.keys()
    assert (raw["v"], raw["type"], raw["from"], raw["to"]) == (
        1,
        "state_changed",
        "operational",
        "major_outage",
    )
    assert {"id", "title", "url", "status", "update"} <= raw["incident"].keys()
    assert Event.from_json(event.to_json()) == event


# ------------------------------------------------------------------ suspected vs confirmed


def test_a_probe_only_outage_is_suspected() -> None:
    tracker = Tracker()
    event = probe_outage(tracker)
    assert event.confirmed is False
    assert state(tracker).confirmed is False


def test_the_status_page_confirms_a_suspected_outage() -> None:
    tracker = Tracker()
    feed(tracker, page("acme", 0, OPERATIONAL))
    probe_outage(tracker)
    updates = feed(tracker, page("acme", 30, MAJOR))
    event = only(events(updates))
    assert event.type == "state_changed"
    assert (event.from_, event.to, event.confirmed) == (MAJOR, MAJOR, True)
    assert event.audience == "all"
    assert updates[-1].status_changed is False
    assert state(tracker).confirmed is True
    # the same report again is not news
    assert events(feed(tracker, page("acme", 40, MAJOR))) == []


def test_a_milder_page_report_still_confirms_the_probe_outage() -> None:
    tracker = Tracker()
    probe_outage(tracker)
    event = only(events(feed(tracker, page("acme", 30, DEGRADED))))
    assert (event.to, event.confirmed) == (MAJOR, True)


def test_page_recovery_while_probes_still_fail_holds_the_status() -> None:
    tracker = Tracker()
    probe_outage(tracker)
    feed(tracker, page("acme", 30, MAJOR))
    updates = feed(tracker, page("acme", 40, OPERATIONAL))
    event = only(events(updates))
    assert event.type == "state_changed"
    assert (event.from_, event.to, event.confirmed) == (MAJOR, MAJOR, False)
    assert updates[-1].status_changed is False
    assert state(tracker).status is MAJOR
    # the probes still fail: nothing more; they recover: the outage ends
    assert events(feed(tracker, fail("acme", 50), page("acme", 55, OPERATIONAL))) == []
    assert events(feed(tracker, ok("acme", 60))) == []
    assert only(events(feed(tracker, ok("acme", 70)))).to is OPERATIONAL


@pytest.mark.parametrize(
    ("page_status", "probe_readings", "expected", "confirmed"),
    [
        (OPERATIONAL, "slow", DEGRADED, False),
        (DEGRADED, "fail", MAJOR, True),
        (MAJOR, "slow", MAJOR, True),
        (PARTIAL, "ok", PARTIAL, True),
        (OPERATIONAL, "fail", MAJOR, False),
        (PARTIAL, "fail", MAJOR, True),
    ],
)
def test_the_effective_status_is_the_worse_of_page_and_probe(
    page_status: Status, probe_readings: str, expected: Status, confirmed: bool
) -> None:
    tracker = Tracker()
    reading = {"slow": slow, "fail": fail, "ok": ok}[probe_readings]
    feed(tracker, ok("acme", 0), page("acme", 0, OPERATIONAL))
    updates = feed(tracker, page("acme", 5, page_status), reading("acme", 10), reading("acme", 20))
    assert state(tracker).status is expected
    assert state(tracker).confirmed is confirmed
    assert user_events(updates)[-1].to is expected
    assert user_events(updates)[-1].confirmed is confirmed


def test_page_maintenance_wins_over_probe_failures() -> None:
    tracker = Tracker()
    feed(tracker, ok("acme", 0), page("acme", 0, OPERATIONAL))
    event = only(events(feed(tracker, page("acme", 10, MAINTENANCE))))
    assert (event.to, event.confirmed) == (MAINTENANCE, True)
    # the probes fail during the planned work: expected, not an outage
    updates = feed(tracker, fail("acme", 20), fail("acme", 30), fail("acme", 40))
    assert events(updates) == []
    assert state(tracker).status is MAINTENANCE


def test_maintenance_announced_over_a_running_probe_outage() -> None:
    tracker = Tracker()
    feed(tracker, page("acme", 0, OPERATIONAL))
    probe_outage(tracker)
    event = only(events(feed(tracker, page("acme", 30, MAINTENANCE))))
    assert (event.from_, event.to) == (MAJOR, MAINTENANCE)


# -------------------------------------------------------------------- 429 and 401/403


def test_rate_limiting_is_never_an_outage() -> None:
    tracker = Tracker()
    updates = feed(tracker, *(limited("acme", t) for t in range(0, 100, 10)))
    assert events(updates) == []
    assert state(tracker).status is OPERATIONAL
    assert tracker.needs_recheck(probe_id("acme")) is False


def test_rate_limited_answers_count_as_up_for_recovery() -> None:
    tracker = Tracker()
    probe_outage(tracker)
    assert events(feed(tracker, limited("acme", 30))) == []
    assert only(events(feed(tracker, limited("acme", 40)))).to is OPERATIONAL


@pytest.mark.parametrize("error", [ProbeError.AUTH, ProbeError.CONFIG])
def test_a_rejected_key_is_one_config_alert_to_the_admins(error: ProbeError) -> None:
    tracker = Tracker()
    feed(tracker, ok("acme", 0))
    updates = feed(tracker, *(auth("acme", t, error) for t in range(10, 100, 10)))
    event = only(events(updates))
    assert event.type == "config_alert"
    assert event.audience == "admins"
    assert event.detail == "probe rejected our key (HTTP 401)"
    assert event.at == at(10)
    assert not any(u.status_changed for u in updates)
    assert all(u.state.status is OPERATIONAL for u in updates)
    assert state(tracker).status is OPERATIONAL


def test_a_config_alert_during_an_outage_changes_nothing() -> None:
    tracker = Tracker()
    probe_outage(tracker)
    updates = feed(tracker, auth("acme", 30), auth("acme", 40))
    assert [e.type for e in events(updates)] == ["config_alert"]
    assert state(tracker).status is MAJOR
    assert not any(u.status_changed for u in updates)


def test_a_config_alert_at_startup_does_not_invent_a_status() -> None:
    tracker = Tracker()
    updates = feed(tracker, auth("acme", 0), auth("acme", 10))
    assert [e.type for e in events(updates)] == ["config_alert"]
    assert state(tracker).status is UNKNOWN
    assert events(feed(tracker, ok("acme", 20))) == []  # then the first healthy answer: silent


def test_a_second_config_alert_only_after_it_cleared_and_recurred() -> None:
    tracker = Tracker()
    feed(tracker, ok("acme", 0))
    updates = feed(tracker, auth("acme", 10), auth("acme", 20), ok("acme", 30))
    assert len(of_type(updates, "config_alert")) == 1
    updates = feed(tracker, auth("acme", 40), auth("acme", 50))
    event = only(events(updates))
    assert (event.type, event.audience) == ("config_alert", "admins")
    assert state(tracker).status is OPERATIONAL


# ------------------------------------------------------------------------------ unknown


def test_a_broken_source_is_an_admin_only_event() -> None:
    tracker = Tracker()
    feed(tracker, page("acme", 0, OPERATIONAL))
    updates = feed(tracker, page("acme", 10, UNKNOWN))
    event = only(events(updates))
    assert (event.type, event.from_, event.to, event.audience) == (
        "state_changed",
        OPERATIONAL,
        UNKNOWN,
        "admins",
    )
    assert state(tracker).status is UNKNOWN
    assert state(tracker).last_known is OPERATIONAL
    # still broken: nothing more
    assert events(feed(tracker, page("acme", 20, UNKNOWN))) == []


def test_unknown_during_an_announced_outage_is_no_recovery_notice() -> None:
    tracker = Tracker()
    feed(tracker, page("acme", 0, OPERATIONAL))
    opened = only(events(feed(tracker, page("acme", 10, MAJOR))))
    updates = feed(tracker, page("acme", 20, UNKNOWN), page("acme", 30, UNKNOWN))
    assert user_events(updates) == []
    event = only(admin_events(updates))
    assert (event.from_, event.to) == (MAJOR, UNKNOWN)
    assert event.provider_status is MAJOR  # the outage we knew of is not forgotten
    assert event.episode == opened.episode
    assert tracker.provider_status("acme") is MAJOR


def test_back_to_the_last_known_status_is_admin_only() -> None:
    tracker = Tracker()
    feed(tracker, page("acme", 0, OPERATIONAL), page("acme", 10, MAJOR), page("acme", 20, UNKNOWN))
    event = only(events(feed(tracker, page("acme", 30, MAJOR))))
    assert (event.from_, event.to, event.audience) == (UNKNOWN, MAJOR, "admins")
    assert state(tracker).status is MAJOR


def test_back_to_operational_after_unknown_without_outage_is_admin_only() -> None:
    tracker = Tracker()
    feed(tracker, page("acme", 0, OPERATIONAL), page("acme", 10, UNKNOWN))
    event = only(events(feed(tracker, page("acme", 20, OPERATIONAL))))
    assert (event.to, event.audience) == (OPERATIONAL, "admins")


def test_back_to_a_different_status_after_unknown_is_a_normal_event() -> None:
    tracker = Tracker()
    feed(tracker, page("acme", 0, OPERATIONAL), page("acme", 10, MAJOR))
    opened = tracker.states()["acme/api"].episode
    feed(tracker, page("acme", 20, UNKNOWN))
    event = only(events(feed(tracker, page("acme", 30, OPERATIONAL))))
    assert (event.type, event.to, event.audience) == ("state_changed", OPERATIONAL, "all")
    assert event.episode == opened
    assert event.episode_closed


def test_a_confirmation_change_across_unknown_is_not_hidden_from_users() -> None:
    tracker = Tracker()
    feed(tracker, page("acme", 0, OPERATIONAL))
    updates = feed(
        tracker,
        page("acme", 10, MAJOR),  # users: major, confirmed
        page("acme", 20, UNKNOWN),  # admins: page unreadable
        fail("acme", 30),
        fail("acme", 40),  # admins: readable again, still major (now only our probes see it)
        page("acme", 50, OPERATIONAL),  # the page no longer reports it
        page("acme", 60, MAJOR),  # the page reports it again
    )
    told = [(e.to, e.confirmed) for e in user_events(updates) if e.type == "state_changed"]
    assert all(a != b for a, b in pairwise(told)), told


def test_unknown_then_a_new_outage_is_announced() -> None:
    tracker = Tracker()
    feed(tracker, page("acme", 0, OPERATIONAL), page("acme", 10, UNKNOWN))
    event = only(events(feed(tracker, page("acme", 20, PARTIAL))))
    assert (event.to, event.audience, event.confirmed) == (PARTIAL, "all", True)


def test_an_unknown_probe_reading_is_ignored() -> None:
    tracker = Tracker()
    feed(tracker, ok("acme", 0))
    updates = feed(tracker, probe("acme", 10, UNKNOWN), probe("acme", 20, UNKNOWN))
    assert events(updates) == []
    assert state(tracker).status is OPERATIONAL


def test_an_unreadable_page_does_not_announce_a_recovery_the_probe_alone_sees() -> None:
    tracker = Tracker()
    feed(tracker, ok("acme", 0), page("acme", 0, OPERATIONAL))
    opened = only(events(feed(tracker, page("acme", 10, MAJOR))))
    updates = feed(tracker, ok("acme", 20), page("acme", 30, UNKNOWN), ok("acme", 40))
    assert user_events(updates) == []
    updates = feed(tracker, page("acme", 50, MAJOR))
    assert user_events(updates) == []
    assert state(tracker).episode == opened.episode


def test_an_unreadable_page_does_not_withdraw_its_confirmation() -> None:
    tracker = Tracker()
    probe_outage(tracker)
    feed(tracker, page("acme", 30, MAJOR))
    assert state(tracker).confirmed is True
    updates = feed(tracker, page("acme", 40, UNKNOWN), page("acme", 50, MAJOR))
    assert user_events(updates) == []


# ------------------------------------------------------------------------- flap damping


def test_flapping_sends_one_notice_then_quiet_until_stable() -> None:
    tracker = Tracker()  # more than 4 changes within 600 s; quiet after 300 s
    feed(tracker, page("acme", 0, OPERATIONAL))
    updates = flap_page(tracker, "acme", [10, 20, 30, 40])
    assert [e.type for e in events(updates)] == ["state_changed"] * 4
    updates = flap_page(tracker, "acme", [50])
    event = only(events(updates))
    assert (event.type, event.from_, event.to, event.audience) == (
        "flapping",
        OPERATIONAL,
        MAJOR,
        "all",
    )
    assert state(tracker).flapping is True
    # it keeps flapping: silence (but the state still follows)
    updates = feed(
        tracker,
        page("acme", 60, OPERATIONAL),
        page("acme", 70, MAJOR),
        page("acme", 80, OPERATIONAL),
        page("acme", 90, MAJOR),
    )
    assert events(updates) == []
    assert [u.status_changed for u in updates] == [True] * 4
    assert state(tracker).status is MAJOR
    # not yet quiet for 300 s
    assert events(feed(tracker, page("acme", 389, MAJOR))) == []
    # stable for 300 s: one "stable again" notice
    event = only(events(feed(tracker, page("acme", 390, MAJOR))))
    assert event.type == "state_changed"
    assert event.audience == "all"
    assert event.to is MAJOR
    assert event.detail is not None
    assert "stable again" in event.detail
    assert state(tracker).flapping is False
    assert events(feed(tracker, page("acme", 400, MAJOR))) == []
    # afterwards changes are announced normally again
    event = only(events(feed(tracker, page("acme", 410, OPERATIONAL))))
    assert (event.type, event.to) == ("state_changed", OPERATIONAL)


def test_changes_spread_wider_than_the_window_do_not_flap() -> None:
    tracker = Tracker(TrackerSettings(flap_threshold=2, flap_window=100, flap_quiet=50))
    feed(tracker, page("acme", 0, OPERATIONAL))
    updates = flap_page(tracker, "acme", [60 * i for i in range(1, 11)])
    assert [e.type for e in events(updates)] == ["state_changed"] * 10
    assert state(tracker).flapping is False


def test_flap_threshold_and_window_are_settings() -> None:
    tracker = Tracker(TrackerSettings(flap_threshold=2, flap_window=100, flap_quiet=50))
    feed(tracker, page("acme", 0, OPERATIONAL))
    updates = flap_page(tracker, "acme", [10, 20, 30])
    assert [e.type for e in events(updates)] == ["state_changed", "state_changed", "flapping"]
    assert events(feed(tracker, page("acme", 79, MAJOR))) == []
    assert only(events(feed(tracker, page("acme", 80, MAJOR)))).type == "state_changed"


def test_probe_flapping_is_damped_too() -> None:
    tracker = Tracker(TrackerSettings(thresholds=Thresholds(failure=1, success=1)))
    feed(tracker, ok("acme", 0))
    updates = feed(
        tracker, *(fail("acme", t) if t % 20 else ok("acme", t) for t in range(10, 200, 10))
    )
    assert [e.type for e in events(updates)] == ["state_changed"] * 4 + ["flapping"]


def test_an_episode_stays_open_while_flapping_and_closes_when_stable() -> None:
    tracker = Tracker()
    feed(tracker, page("acme", 0, OPERATIONAL))
    updates = flap_page(tracker, "acme", [10, 20, 30, 40, 50, 60])
    flapping = only(of_type(updates, "flapping"))
    assert state(tracker).status is OPERATIONAL
    assert state(tracker).episode == flapping.episode is not None
    event = only(events(feed(tracker, page("acme", 360, OPERATIONAL))))
    assert event.detail is not None
    assert "stable again" in event.detail
    assert event.episode == flapping.episode
    assert event.episode_closed
    assert state(tracker).episode is None


def test_stable_again_is_not_a_status_change() -> None:
    tracker = Tracker()
    feed(tracker, page("acme", 0, OPERATIONAL))
    flap_page(tracker, "acme", [10, 20, 30, 40, 50])  # flapping, ends at major at t=50
    since = state(tracker).since
    updates = feed(tracker, page("acme", 350, MAJOR))
    assert only(events(updates)).detail == "stable again after flapping"
    assert updates[-1].state.status is MAJOR
    assert updates[-1].state.since == since
    assert updates[-1].status_changed is False


def test_flapping_is_quiet_for_confirmation_changes_too() -> None:
    tracker = Tracker()
    feed(tracker, ok("acme", 0), page("acme", 0, OPERATIONAL))
    flap_page(tracker, "acme", [10, 20, 30, 40, 50])
    assert state(tracker).flapping is True
    updates = feed(
        tracker,
        fail("acme", 60),
        fail("acme", 70),  # probe now agrees: major either way
        page("acme", 80, OPERATIONAL),
        page("acme", 90, MAJOR),
        page("acme", 100, OPERATIONAL),
    )
    assert state(tracker).flapping is True
    assert user_events(updates) == []


def test_the_end_of_flapping_is_one_notice() -> None:
    tracker = Tracker()
    feed(tracker, ok("acme", 0), page("acme", 0, OPERATIONAL))
    flap_page(tracker, "acme", [10, 20, 30, 40, 50, 60])  # flapping, back at operational
    # while flapping, our probes see it slow: degraded (suspected), quietly
    assert events(feed(tracker, slow("acme", 70), slow("acme", 80))) == []
    assert (state(tracker).status, state(tracker).confirmed) == (DEGRADED, False)
    # quiet for 300 s; then the page reports it too
    updates = feed(tracker, page("acme", 400, DEGRADED))
    event = only(user_events(updates))
    assert (event.to, event.confirmed) == (DEGRADED, True)
    assert state(tracker).flapping is False


def test_flapping_ending_while_unknown_is_not_a_user_notice_about_unknown() -> None:
    tracker = Tracker()
    feed(tracker, page("acme", 0, OPERATIONAL))
    flap_page(tracker, "acme", [10, 20, 30, 40, 50, 60])
    updates = feed(tracker, page("acme", 70, UNKNOWN), page("acme", 400, UNKNOWN))
    assert [e for e in user_events(updates) if e.to is UNKNOWN] == []


# --------------------------------------------------------------------------- self-check


PROVIDERS = ("alpha", "beta", "gamma", "delta")


def healthy_round(tracker: Tracker, t: float, providers: Sequence[str] = PROVIDERS) -> None:
    assert events(batch(tracker, *(ok(p, t) for p in providers))) == []


@pytest.mark.parametrize("error", [ProbeError.NETWORK, ProbeError.TIMEOUT])
def test_everything_failing_with_network_errors_is_one_watcher_health_event(
    error: ProbeError,
) -> None:
    tracker = Tracker()
    healthy_round(tracker, 0)
    updates: list[StateUpdate] = []
    for t in (10, 20, 30, 40, 50):
        updates += batch(tracker, *(net(p, t, error) for p in PROVIDERS))
    event = only(events(updates))
    assert event.type == "watcher_health"
    assert event.audience == "admins"
    assert event.provider == "tocsin"
    assert event.to is MAJOR
    assert event.at == at(10)
    assert suspect(tracker) is True
    assert all(state(tracker, p).status is OPERATIONAL for p in PROVIDERS)
    # the probes are held, so they are rechecked soon
    assert all(tracker.needs_recheck(probe_id(p)) for p in PROVIDERS)
    # recovery: one watcher_health event, no provider events
    updates = batch(tracker, *(ok(p, 60) for p in PROVIDERS))
    updates += batch(tracker, *(ok(p, 70) for p in PROVIDERS))
    event = only(events(updates))
    assert (event.type, event.audience, event.to) == ("watcher_health", "admins", OPERATIONAL)
    assert suspect(tracker) is False
    assert all(state(tracker, p).status is OPERATIONAL for p in PROVIDERS)
    assert not any(tracker.needs_recheck(probe_id(p)) for p in PROVIDERS)


def test_most_providers_failing_with_network_errors_is_enough() -> None:
    tracker = Tracker()
    healthy_round(tracker, 0)
    failing = PROVIDERS[:3]
    updates: list[StateUpdate] = []
    for t in (10, 20, 30):
        updates += batch(tracker, *(net(p, t) for p in failing), ok("delta", t))
    assert [e.type for e in events(updates)] == ["watcher_health"]
    assert suspect(tracker) is True


def test_providers_failing_one_by_one_with_network_errors_are_one_watcher_health_event() -> None:
    """Sources report on their own schedules, one ``observe`` call each."""
    tracker = Tracker()
    healthy_round(tracker, 0)
    updates: list[StateUpdate] = []
    for t in (10, 20, 30):
        for i, p in enumerate(PROVIDERS):
            updates += feed(tracker, net(p, t + i))
    assert [e.type for e in events(updates)] == ["watcher_health"]


def test_half_failing_is_not_most() -> None:
    tracker = Tracker()
    healthy_round(tracker, 0)
    updates: list[StateUpdate] = []
    for t in (10, 20):
        updates += batch(tracker, net("alpha", t), net("beta", t), ok("gamma", t), ok("delta", t))
    assert of_type(updates, "watcher_health") == []
    assert suspect(tracker) is False
    assert {e.provider for e in user_events(updates)} == {"alpha", "beta"}


@pytest.mark.parametrize("failing_first", [True, False])
def test_one_provider_failing_with_network_errors_while_others_answer_is_announced(
    failing_first: bool,
) -> None:
    tracker = Tracker()
    healthy_round(tracker, 0)
    updates: list[StateUpdate] = []
    for t in (10, 20):
        others = [ok(p, t) for p in PROVIDERS[1:]]
        round_ = [net("alpha", t), *others] if failing_first else [*others, net("alpha", t)]
        updates += batch(tracker, *round_)
    event = only(events(updates))
    assert (event.type, event.provider, event.to, event.audience) == (
        "state_changed",
        "alpha",
        MAJOR,
        "all",
    )
    assert event.at == at(20)
    assert suspect(tracker) is False


def test_network_failures_are_held_until_another_provider_answers() -> None:
    tracker = Tracker()
    healthy_round(tracker, 0)
    updates = feed(tracker, net("alpha", 10), net("alpha", 11), net("alpha", 12))
    assert events(updates) == []
    assert state(tracker, "alpha").status is OPERATIONAL
    assert tracker.needs_recheck(probe_id("alpha")) is True
    # another provider answers in the same round as alpha's next failure: proof
    updates = batch(tracker, net("alpha", 13), ok("beta", 13))
    event = only(events(updates))
    assert (event.provider, event.to) == ("alpha", MAJOR)
    assert tracker.needs_recheck(probe_id("alpha")) is False


def test_network_failures_are_announced_once_another_provider_answered_meanwhile() -> None:
    tracker = Tracker()
    healthy_round(tracker, 0)
    assert events(feed(tracker, net("alpha", 10), net("alpha", 11))) == []
    updates = feed(tracker, ok("beta", 12), ok("gamma", 12), net("alpha", 13))
    event = only(events(updates))
    assert (event.provider, event.to) == ("alpha", MAJOR)


@pytest.mark.parametrize("error", [ProbeError.NETWORK, ProbeError.TIMEOUT])
def test_http_failures_never_wait_for_network_proof(error: ProbeError) -> None:
    tracker = Tracker()
    healthy_round(tracker, 0)
    # alpha's provider answers 5xx; nobody else is probed meanwhile
    assert events(feed(tracker, fail("alpha", 10))) == []
    event = only(events(feed(tracker, fail("alpha", 11))))
    assert (event.provider, event.to) == ("alpha", MAJOR)
    # contrast: beta fails the same way but with no answer at all: held
    assert events(feed(tracker, net("beta", 20, error), net("beta", 21, error))) == []


def test_http_failures_are_announced_even_while_the_network_is_suspect() -> None:
    tracker = Tracker()
    healthy_round(tracker, 0)
    updates: list[StateUpdate] = []
    for t in (10, 20, 30):
        updates += batch(tracker, fail("alpha", t), *(net(p, t) for p in PROVIDERS[1:]))
    assert suspect(tracker) is True
    assert len(of_type(updates, "watcher_health")) == 1
    event = only(user_events(updates))
    assert (event.provider, event.to) == ("alpha", MAJOR)


def test_no_self_check_with_fewer_than_three_probed_providers() -> None:
    tracker = Tracker()
    healthy_round(tracker, 0, PROVIDERS[:2])
    updates: list[StateUpdate] = []
    for t in (10, 20):
        updates += batch(tracker, *(net(p, t) for p in PROVIDERS[:2]))
    assert of_type(updates, "watcher_health") == []
    assert sorted(e.provider for e in user_events(updates)) == ["alpha", "beta"]


def test_page_only_providers_do_not_count_for_the_self_check() -> None:
    tracker = Tracker()
    feed(tracker, *(page(p, 0, OPERATIONAL) for p in ("p1", "p2", "p3")))
    healthy_round(tracker, 0, PROVIDERS[:2])
    updates: list[StateUpdate] = []
    for t in (10, 20):
        updates += batch(tracker, *(net(p, t) for p in PROVIDERS[:2]))
    assert of_type(updates, "watcher_health") == []


def test_status_pages_are_still_heard_while_the_network_is_suspect() -> None:
    tracker = Tracker()
    healthy_round(tracker, 0)
    feed(tracker, page("alpha", 0, OPERATIONAL))
    updates = batch(tracker, *(net(p, 10) for p in PROVIDERS))
    assert suspect(tracker) is True
    event = only(events(batch(tracker, page("alpha", 20, MAJOR))))
    assert (event.provider, event.to, event.confirmed) == ("alpha", MAJOR, True)
    assert len(of_type(updates, "watcher_health")) == 1


def test_starting_with_our_network_down_is_one_admin_notice() -> None:
    tracker = Tracker()
    updates: list[StateUpdate] = []
    for t in (0, 10, 20):
        updates += batch(tracker, *(net(p, t) for p in PROVIDERS))
    assert [e.type for e in events(updates)] == ["watcher_health"]


def test_a_network_outage_of_our_own_ends_without_provider_notices() -> None:
    tracker = Tracker()
    healthy_round(tracker, 0)
    updates: list[StateUpdate] = []
    for t in (10, 20, 30):
        updates += batch(tracker, *(net(p, t) for p in PROVIDERS))
    # first answers again in one round: the held failures are dropped, not announced
    for t in (40, 50):
        updates += batch(tracker, *(ok(p, t) for p in PROVIDERS))
    assert [e.type for e in events(updates)] == ["watcher_health", "watcher_health"]
    assert user_events(updates) == []


# ------------------------------------------------------------------------- needs_recheck


def test_needs_recheck_follows_unconfirmed_results() -> None:
    tracker = Tracker()
    source = probe_id("acme")
    assert tracker.needs_recheck(source) is False
    feed(tracker, ok("acme", 0))
    assert tracker.needs_recheck(source) is False
    feed(tracker, fail("acme", 10))
    assert tracker.needs_recheck(source) is True
    feed(tracker, ok("acme", 20))  # the blip turned back
    assert tracker.needs_recheck(source) is False
    feed(tracker, fail("acme", 30))
    assert tracker.needs_recheck(source) is True
    feed(tracker, fail("acme", 40))  # confirmed: the outage is the state now
    assert tracker.needs_recheck(source) is False
    feed(tracker, fail("acme", 50))
    assert tracker.needs_recheck(source) is False
    feed(tracker, ok("acme", 60))
    assert tracker.needs_recheck(source) is True
    feed(tracker, ok("acme", 70))
    assert tracker.needs_recheck(source) is False


def test_needs_recheck_is_per_source() -> None:
    tracker = Tracker()
    feed(tracker, ok("acme", 0), ok("other", 0), page("acme", 0, OPERATIONAL))
    feed(tracker, fail("acme", 10))
    assert tracker.needs_recheck(probe_id("acme")) is True
    assert tracker.needs_recheck(probe_id("other")) is False
    assert tracker.needs_recheck(page_id("acme")) is False
    assert tracker.needs_recheck("nobody:probe") is False


def test_needs_recheck_during_a_page_outage_only_for_the_probe_own_opinion() -> None:
    tracker = Tracker()
    feed(tracker, ok("acme", 0), page("acme", 0, OPERATIONAL), page("acme", 10, MAJOR))
    feed(tracker, ok("acme", 20))  # the probe agrees with its own earlier opinion
    assert tracker.needs_recheck(probe_id("acme")) is False


def test_needs_recheck_at_startup_before_any_conclusion() -> None:
    tracker = Tracker()
    feed(tracker, fail("acme", 0))
    assert tracker.needs_recheck(probe_id("acme")) is True


# ---------------------------------------------------------------------------- incidents


def open_page_outage(tracker: Tracker, inc: Incident | None = None, t: float = 10) -> Event:
    feed(tracker, page("acme", 0, OPERATIONAL))
    return only(events(feed(tracker, page("acme", t, MAJOR, incident=inc))))


def test_the_outage_notice_carries_the_incident() -> None:
    tracker = Tracker()
    event = open_page_outage(tracker, incident("inc1", "u1"))
    assert event.incident is not None
    assert (event.incident.id, event.incident.status) == ("inc1", "investigating")
    assert event.incident.update_id == "inc1-u1"
    assert event.incident.url == "https://status.example.com/incidents/inc1"


def test_an_event_says_whether_its_incident_update_is_news() -> None:
    tracker = Tracker()
    feed(tracker, page("acme", 0, OPERATIONAL, component="files"))
    opened = open_page_outage(tracker, incident("inc1", "u1"))
    assert opened.incident is not None
    assert opened.incident.new_update is True
    update = only(events(feed(tracker, page("acme", 20, MAJOR, incident=incident("inc1", "u2")))))
    assert update.incident is not None
    assert update.incident.new_update is True
    # a state change that carries an update already told: not news again
    event = only(events(feed(tracker, page("acme", 30, DEGRADED, incident=incident("inc1", "u2")))))
    assert (event.type, event.to) == ("state_changed", DEGRADED)
    assert event.incident is not None
    assert event.incident.new_update is False
    # a state change that brings a new update: news
    resolved = incident("inc1", "u3", "resolved")
    event = only(events(feed(tracker, page("acme", 40, OPERATIONAL, incident=resolved))))
    assert event.incident is not None
    assert (event.incident.status, event.incident.new_update) == ("resolved", True)


def test_a_new_incident_update_in_an_open_episode_is_one_event() -> None:
    tracker = Tracker()
    opened = open_page_outage(tracker, incident("inc1", "u1"))
    update = incident("inc1", "u2", "identified")
    updates = feed(tracker, page("acme", 20, MAJOR, incident=update))
    event = only(events(updates))
    assert event.type == "incident_update"
    assert event.audience == "all"
    assert (event.from_, event.to) == (MAJOR, MAJOR)
    assert event.incident is not None
    assert (event.incident.id, event.incident.status, event.incident.update_id) == (
        "inc1",
        "identified",
        "inc1-u2",
    )
    assert event.episode == opened.episode
    assert updates[-1].status_changed is False
    # the same revision again is not news
    assert events(feed(tracker, page("acme", 30, MAJOR, incident=update))) == []


def test_an_incident_first_reported_on_a_known_outage_is_an_event() -> None:
    tracker = Tracker()
    open_page_outage(tracker)
    event = only(events(feed(tracker, page("acme", 20, MAJOR, incident=incident("inc9")))))
    assert event.type == "incident_update"
    assert event.incident is not None
    assert event.incident.id == "inc9"


@pytest.mark.parametrize("one_round", [True, False])
def test_one_incident_on_several_components_is_one_event(one_round: bool) -> None:
    tracker = Tracker()
    components = ("chat", "embeddings", "files")
    feed(tracker, *(page("acme", 0, OPERATIONAL, component=c) for c in components))
    first = incident("inc1", "u1")
    updates = batch(
        tracker, *(page("acme", 10, MAJOR, component=c, incident=first) for c in components)
    )
    assert [e.type for e in events(updates)] == ["state_changed"] * 3
    second = incident("inc1", "u2", "identified")
    observations = [page("acme", 20, MAJOR, component=c, incident=second) for c in components]
    updates = batch(tracker, *observations) if one_round else feed(tracker, *observations)
    event = only(events(updates))
    assert event.type == "incident_update"
    assert event.incident is not None
    assert event.incident.update_id == "inc1-u2"


def test_an_incident_first_seen_already_resolved_is_no_event() -> None:
    tracker = Tracker()
    feed(tracker, page("acme", 0, OPERATIONAL))
    done = incident("old", "u9", "resolved")
    assert events(feed(tracker, page("acme", 10, OPERATIONAL, incident=done))) == []


def test_an_incident_first_seen_resolved_during_another_outage_is_no_event() -> None:
    tracker = Tracker()
    feed(tracker, page("acme", 0, OPERATIONAL, component="files"))
    open_page_outage(tracker)
    done = incident("old", "u9", "resolved")
    updates = feed(tracker, page("acme", 20, OPERATIONAL, component="files", incident=done))
    assert events(updates) == []


def test_the_resolution_of_an_incident_seen_open_is_an_event() -> None:
    tracker = Tracker()
    feed(tracker, page("acme", 0, OPERATIONAL, component="files"))
    opened = open_page_outage(tracker, incident("inc1", "u1"))
    # the page resolves the incident while the component is still listed as degraded
    resolved = incident("inc1", "u2", "resolved")
    updates = feed(tracker, page("acme", 20, MAJOR, incident=resolved))
    event = only(events(updates))
    assert event.type == "incident_update"
    assert event.incident is not None
    assert event.incident.status == "resolved"
    assert event.episode == opened.episode


def test_a_resolution_that_comes_with_the_recovery_is_one_event() -> None:
    tracker = Tracker()
    opened = open_page_outage(tracker, incident("inc1", "u1"))
    resolved = incident("inc1", "u2", "resolved")
    event = only(events(feed(tracker, page("acme", 20, OPERATIONAL, incident=resolved))))
    assert (event.type, event.to) == ("state_changed", OPERATIONAL)
    assert event.incident is not None
    assert event.incident.status == "resolved"
    assert event.episode == opened.episode
    assert event.episode_closed


def test_an_incident_on_an_operational_component_without_episode_is_no_event() -> None:
    tracker = Tracker()
    feed(tracker, page("acme", 0, OPERATIONAL))
    updates = feed(
        tracker,
        page("acme", 10, OPERATIONAL, incident=incident("inc1", "u1")),
        page("acme", 20, OPERATIONAL, incident=incident("inc1", "u2", "monitoring")),
    )
    assert events(updates) == []


def test_incident_updates_during_an_episode_on_another_component_are_events() -> None:
    tracker = Tracker()
    feed(tracker, page("acme", 0, OPERATIONAL, component="files"))
    opened = open_page_outage(tracker)
    updates = feed(
        tracker, page("acme", 20, OPERATIONAL, component="files", incident=incident("inc2"))
    )
    event = only(events(updates))
    assert (event.type, event.component, event.episode) == (
        "incident_update",
        "files",
        opened.episode,
    )


def test_incident_updates_are_quiet_while_flapping() -> None:
    tracker = Tracker()
    feed(tracker, page("acme", 0, OPERATIONAL))
    flap_page(tracker, "acme", [10, 20, 30, 40, 50])
    assert state(tracker).flapping is True
    updates = feed(tracker, page("acme", 60, MAJOR, incident=incident("inc1", "u7")))
    assert events(updates) == []


def test_the_resolution_after_the_component_recovered_is_an_event() -> None:
    tracker = Tracker()
    open_page_outage(tracker, incident("inc1", "u1"))
    monitoring = incident("inc1", "u2", "monitoring")
    recovered = only(events(feed(tracker, page("acme", 20, OPERATIONAL, incident=monitoring))))
    assert recovered.episode_closed
    resolved = incident("inc1", "u3", "resolved")
    event = only(events(feed(tracker, page("acme", 30, OPERATIONAL, incident=resolved))))
    assert event.type == "incident_update"
    assert event.incident is not None
    assert event.incident.status == "resolved"


def test_an_incident_update_with_the_page_readable_again_reaches_users() -> None:
    tracker = Tracker()
    open_page_outage(tracker, incident("inc1", "u1"))
    feed(tracker, page("acme", 20, UNKNOWN))
    updates = feed(tracker, page("acme", 30, MAJOR, incident=incident("inc1", "u2", "identified")))
    carried = [e for e in user_events(updates) if e.incident and e.incident.update_id == "inc1-u2"]
    assert len(carried) == 1


def test_an_incident_update_on_an_unknown_component_is_not_a_user_event_about_unknown() -> None:
    tracker = Tracker()
    feed(tracker, page("acme", 0, OPERATIONAL, component="files"))
    open_page_outage(tracker)
    feed(tracker, page("acme", 20, UNKNOWN, component="files"))  # admins hear of it
    updates = feed(tracker, page("acme", 30, UNKNOWN, component="files", incident=incident("i2")))
    assert [e for e in user_events(updates) if e.to is UNKNOWN] == []


# ----------------------------------------------------------------------------- episodes


def test_episode_lifecycle_across_components() -> None:
    tracker = Tracker(names={"acme": "Acme AI"})
    feed(
        tracker,
        page("acme", 0, OPERATIONAL, component="chat", name="Chat"),
        page("acme", 0, OPERATIONAL, component="files"),
    )
    first = only(events(feed(tracker, page("acme", 10, DEGRADED, component="chat"))))
    assert first.episode is not None
    assert first.episode.startswith("acme:")
    assert first.episode_started == at(10)
    assert first.provider_status is DEGRADED
    assert first.provider_name == "Acme AI"
    assert first.component_name == "Chat"
    assert not first.episode_closed
    assert state(tracker, "acme", "files").episode == first.episode  # grouped provider-wide

    second = only(events(feed(tracker, page("acme", 20, MAJOR, component="files"))))
    assert (second.episode, second.episode_started) == (first.episode, at(10))
    assert second.provider_status is MAJOR

    third = only(events(feed(tracker, page("acme", 30, OPERATIONAL, component="files"))))
    assert third.episode == first.episode
    assert third.provider_status is DEGRADED  # chat is still degraded
    assert not third.episode_closed

    last = only(events(feed(tracker, page("acme", 40, OPERATIONAL, component="chat"))))
    assert last.type == "state_changed"
    assert last.episode_closed
    assert (last.episode, last.episode_started) == (first.episode, at(10))
    assert last.provider_status is OPERATIONAL
    assert all(s.episode is None for s in tracker.states().values())

    again = only(events(feed(tracker, page("acme", 50, PARTIAL, component="files"))))
    assert again.episode is not None
    assert again.episode != first.episode
    assert again.episode_started == at(50)


def test_every_event_of_an_open_episode_carries_it() -> None:
    tracker = Tracker()
    feed(tracker, ok("acme", 0), page("acme", 0, OPERATIONAL))
    opened = probe_outage(tracker, start=0)
    updates = feed(
        tracker,
        page("acme", 30, MAJOR, incident=incident("inc1", "u1")),  # confirmed
        page("acme", 40, MAJOR, incident=incident("inc1", "u2")),  # incident update
        auth("acme", 50),  # config alert
        page("acme", 60, UNKNOWN),  # admins: page unreadable
    )
    assert [e.type for e in events(updates)] == [
        "state_changed",
        "incident_update",
        "config_alert",
        "state_changed",
    ]
    assert {e.episode for e in events(updates)} == {opened.episode}


def test_provider_status_is_the_worst_known_status() -> None:
    tracker = Tracker()
    feed(tracker, *(page("acme", 0, OPERATIONAL, component=c) for c in ("a", "b", "c")))
    assert tracker.provider_status("acme") is OPERATIONAL
    assert (
        only(events(feed(tracker, page("acme", 10, MAJOR, component="a")))).provider_status is MAJOR
    )
    event = only(events(feed(tracker, page("acme", 20, DEGRADED, component="b"))))
    assert event.provider_status is MAJOR
    event = only(events(feed(tracker, page("acme", 30, UNKNOWN, component="a"))))
    assert event.provider_status is MAJOR  # unknown keeps what we knew
    event = only(events(feed(tracker, page("acme", 40, OPERATIONAL, component="a"))))
    assert event.provider_status is DEGRADED
    assert tracker.provider_status("acme") is DEGRADED
    assert tracker.provider_status("nobody") is UNKNOWN


def test_maintenance_is_part_of_the_provider_status() -> None:
    tracker = Tracker()
    feed(
        tracker,
        page("acme", 0, OPERATIONAL, component="a"),
        page("acme", 0, OPERATIONAL, component="b"),
    )
    event = only(events(feed(tracker, page("acme", 10, MAINTENANCE, component="a"))))
    assert event.provider_status is MAINTENANCE
    assert event.episode is not None
    event = only(events(feed(tracker, page("acme", 20, OPERATIONAL, component="a"))))
    assert event.episode_closed


def test_episodes_are_per_provider() -> None:
    tracker = Tracker()
    feed(tracker, page("acme", 0, OPERATIONAL), page("other", 0, OPERATIONAL))
    a = only(events(feed(tracker, page("acme", 10, MAJOR))))
    b = only(events(feed(tracker, page("other", 20, MAJOR))))
    assert a.episode != b.episode
    closed = only(events(feed(tracker, page("acme", 30, OPERATIONAL))))
    assert closed.episode == a.episode
    assert closed.episode_closed
    assert state(tracker, "other").episode == b.episode


# ------------------------------------------------------------------------------ restore


def restarted(tracker: Tracker) -> Tracker:
    """A new tracker seeded from the old one's states, as after a restart (via JSON)."""
    fresh = Tracker()
    fresh.restore(
        ComponentState.model_validate_json(s.model_dump_json()) for s in tracker.states().values()
    )
    return fresh


def test_restore_does_not_announce_a_known_page_outage_again() -> None:
    old = Tracker()
    opened = open_page_outage(old, incident("inc1", "u1"), t=10)
    tracker = restarted(old)
    assert state(tracker).status is MAJOR
    updates = feed(tracker, page("acme", 100, MAJOR, incident=incident("inc1", "u1")))
    assert events(updates) == []
    # a new update of the same incident is news, in the restored episode
    event = only(events(feed(tracker, page("acme", 110, MAJOR, incident=incident("inc1", "u2")))))
    assert (event.type, event.episode) == ("incident_update", opened.episode)
    # and so is the recovery, which closes the restored episode
    event = only(events(feed(tracker, page("acme", 120, OPERATIONAL))))
    assert (event.type, event.to) == ("state_changed", OPERATIONAL)
    assert event.episode_closed
    assert (event.episode, event.episode_started) == (opened.episode, at(10))


def test_restore_does_not_announce_a_known_probe_outage_again() -> None:
    old = Tracker()
    opened = probe_outage(old)
    tracker = restarted(old)
    assert events(feed(tracker, fail("acme", 100), fail("acme", 110), fail("acme", 120))) == []
    assert events(feed(tracker, ok("acme", 130))) == []
    event = only(events(feed(tracker, ok("acme", 140))))
    assert (event.from_, event.to) == (MAJOR, OPERATIONAL)
    assert event.episode_closed
    assert event.episode == opened.episode


def test_restore_of_a_healthy_provider_is_silent() -> None:
    old = Tracker()
    feed(old, ok("acme", 0), page("acme", 0, OPERATIONAL))
    tracker = restarted(old)
    assert events(feed(tracker, ok("acme", 100), page("acme", 100, OPERATIONAL))) == []


def test_a_broken_read_after_restore_is_an_admin_event_from_the_restored_status() -> None:
    old = Tracker()
    open_page_outage(old)
    tracker = restarted(old)
    event = only(events(feed(tracker, page("acme", 100, UNKNOWN))))
    assert (event.from_, event.to, event.audience) == (MAJOR, UNKNOWN, "admins")
    assert event.provider_status is MAJOR


def test_a_restored_flapping_component_ends_flapping() -> None:
    old = Tracker()
    feed(old, page("acme", 0, OPERATIONAL))
    flap_page(old, "acme", [10, 20, 30, 40, 50, 60])
    assert state(old).flapping is True
    tracker = restarted(old)
    assert state(tracker).flapping is True
    assert events(feed(tracker, page("acme", 100, OPERATIONAL))) == []  # still quiet
    event = only(events(feed(tracker, page("acme", 360, OPERATIONAL))))
    assert event.detail is not None
    assert "stable again" in event.detail
    assert state(tracker).flapping is False
    assert event.episode_closed


def test_a_restored_flapping_component_keeps_quiet_while_it_flaps() -> None:
    old = Tracker()
    feed(old, page("acme", 0, OPERATIONAL))
    flap_page(old, "acme", [10, 20, 30, 40, 50])
    tracker = restarted(old)
    updates = flap_page(tracker, "acme", [100, 110, 120])  # major, op, major
    assert events(updates) == []
    event = only(events(feed(tracker, page("acme", 420, MAJOR))))
    assert event.detail is not None
    assert "stable again" in event.detail


# ------------------------------------------------------------------- property-based


PROBE_RESULTS: tuple[tuple[Status, ProbeError | None], ...] = (
    (OPERATIONAL, None),
    (OPERATIONAL, None),
    (DEGRADED, None),
    (MAJOR, ProbeError.HTTP),
    (PARTIAL, ProbeError.HTTP),
    (MAJOR, ProbeError.NETWORK),
    (MAJOR, ProbeError.TIMEOUT),
    (UNKNOWN, ProbeError.AUTH),
    (UNKNOWN, ProbeError.CONFIG),
    (OPERATIONAL, ProbeError.RATE_LIMITED),
)
INCIDENTS = (
    None,
    None,
    incident("i1", "u1"),
    incident("i1", "u2", "identified"),
    incident("i1", "u3", "resolved"),
    incident("i2", "u1", "monitoring"),
    incident("i2", "u2", "resolved"),
)


ObservationSpec = tuple[str, str, Status, ProbeError | None, Incident | None]


@st.composite
def observation_specs(
    draw: st.DrawFn, unknown_pages: bool, providers: Sequence[str]
) -> ObservationSpec:
    provider = draw(st.sampled_from(providers))
    if draw(st.booleans()):
        status, error = draw(st.sampled_from(PROBE_RESULTS))
        return ("probe", provider, status, error, None)
    statuses = [s for s in Status if unknown_pages or s is not UNKNOWN]
    status = draw(st.sampled_from(statuses))
    return ("page", provider, status, None, draw(st.sampled_from(INCIDENTS)))


class Scenario:
    """Rounds of observations (one ``observe`` call each), printed compactly on failure."""

    def __init__(self, rounds: tuple[tuple[Observation, ...], ...]) -> None:
        self.rounds = rounds

    def __repr__(self) -> str:
        def describe(o: Observation) -> str:
            text = f"{o.provider}/{o.component} {o.kind.value}={o.status.value}"
            if o.error:
                text += f" ({o.error.value})"
            if o.incident:
                text += f" incident={o.incident.id}:{o.incident.status}:{o.incident.update_id}"
            return text

        lines = [
            f"t={(r[0].at - T0).total_seconds():g}: " + " | ".join(map(describe, r))
            for r in self.rounds
        ]
        return "Scenario(\n  " + "\n  ".join(lines) + "\n)"


@st.composite
def scenarios(
    draw: st.DrawFn,
    unknown_pages: bool = True,
    providers: Sequence[str] = ("a", "b", "c", "d"),
    components: Sequence[str] = ("api", "files"),
) -> Scenario:
    """Rounds of observations at monotonically increasing times: random probe results (every
    kind of error), random page statuses (``unknown`` unless excluded) and incidents. Fewer
    providers and components make a denser history for each (more flapping, confirmations)."""
    t = 0.0
    rounds: list[tuple[Observation, ...]] = []
    for _ in range(draw(st.integers(1, 30))):
        t += draw(st.sampled_from((0.25, 1, 10, 30, 120, 301, 700)))
        specs = draw(st.lists(observation_specs(unknown_pages, providers), min_size=1, max_size=5))
        round_: list[Observation] = []
        for kind, provider, status, error, inc in specs:
            if kind == "probe":
                round_.append(probe(provider, t, status, error))
            else:
                component = draw(st.sampled_from(components))
                round_.append(page(provider, t, status, component=component, incident=inc))
        rounds.append(tuple(round_))
    return Scenario(tuple(rounds))


@dataclass(frozen=True)
class Round:
    observations: tuple[Observation, ...]
    updates: tuple[StateUpdate, ...]


def run(scenario: Scenario, *, flap_threshold: int = 3) -> list[Round]:
    tracker = Tracker(
        TrackerSettings(flap_threshold=flap_threshold, flap_window=200, flap_quiet=100)
    )
    return [Round(r, tuple(tracker.observe(list(r)))) for r in scenario.rounds]


#: Invariants that hold: enough examples to exercise flapping, self-check and episodes.
PROPERTY_SETTINGS = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
#: The wider invariants (they once found bugs): more examples.
WIDE_PROPERTY_SETTINGS = settings(PROPERTY_SETTINGS, max_examples=200)


#: One component watched by a probe and a page: every observation lands on the same history.
dense_scenarios = scenarios(providers=("a",), components=("api",))


def _all_updates(rounds: Sequence[Round]) -> list[StateUpdate]:
    return [u for r in rounds for u in r.updates]


def _is_stable_again(event: Event | None) -> bool:
    return event is not None and "stable again" in (event.detail or "")


def check_no_repeated_user_notice(rounds: Sequence[Round]) -> None:
    """Two consecutive user-audience state_changed events of one component never say the same
    thing (same to, same confirmed); a flapping notice in between resets the comparison."""
    last: dict[str, tuple[Status | None, bool] | None] = {}
    for update in _all_updates(rounds):
        event = update.event
        if event is None or event.audience != "all" or event.component is None:
            continue
        key = f"{event.provider}/{event.component}"
        if event.type == "flapping":
            last[key] = None
        elif event.type == "state_changed":
            said = (event.to, event.confirmed)
            assert last.get(key) != said, event
            last[key] = said


def check_events_match_their_state(rounds: Sequence[Round]) -> None:
    """Every event's ``to`` is the status of the snapshot it travels with, its time is the
    round's, and an open episode is on every event of its provider."""
    for round_ in rounds:
        now = round_.observations[-1].at
        for update in round_.updates:
            event = update.event
            if event is None:
                continue
            assert event.to == update.state.status, event
            assert event.at == now
            if event.provider == "tocsin":
                assert (event.type, event.audience) == ("watcher_health", "admins")
                continue
            assert (event.provider, event.component) == (
                update.state.provider,
                update.state.component,
            )
            if update.state.episode is not None:
                assert event.episode == update.state.episode, event
                assert event.episode_started == update.state.episode_started
            elif event.episode is not None:
                assert event.episode_closed, event  # only the closing event names a closed one
            status = event.provider_status
            if event.audience == "all" and status is not None and status.rank >= MAINTENANCE.rank:
                assert event.episode is not None, event


def check_config_alerts(rounds: Sequence[Round]) -> None:
    """config_alerts go to the admins and never change a status. A probe's comes once until
    cleared by a probe result that is not a configuration error; a page's (unreadable from its
    first read) leaves the component unknown. ``status_changed`` says exactly whether the
    status moved (the "stable again" notice has its own test)."""
    previous: dict[str, Status] = {}
    alerted: dict[str, bool] = {}
    for round_ in rounds:
        probes = [o for o in round_.observations if o.kind is SourceKind.PROBE]
        cleared = {o.key for o in probes if not (o.error and o.error.is_config)}
        for update in round_.updates:
            key = update.state.key
            event = update.event
            if event is not None and event.type == "config_alert":
                assert event.audience == "admins"
                assert update.status_changed is False
                assert update.state.status == previous.get(key, UNKNOWN)
                if event.source != probe_id(event.provider):
                    assert event.source == page_id(event.provider)
                    assert event.from_ is None  # no transition
                else:
                    # a new alert needs a clearing result since the last one (in a round,
                    # the order of results and updates is not checked)
                    assert key in cleared or not alerted.get(key, False), "alerted twice"
                    alerted[key] = True
            if update.state.provider == "tocsin":
                continue
            if not _is_stable_again(event):
                moved = update.state.status != previous.get(key, UNKNOWN)
                assert update.status_changed == moved, update
            previous[key] = update.state.status
        for obs in probes:  # the last result of each probe decides: alerted or cleared
            alerted[obs.key] = bool(obs.error and obs.error.is_config)


#: What a user notice with the same status before and after may say: the page's confirmation
#: changed (by ``confirmed``), or the component is stable again after flapping.
_SAME_STATUS_NEWS = {
    True: "confirmed by the status page",
    False: "the status page no longer reports it; our probes still do",
}


def check_no_event_changes_nothing(rounds: Sequence[Round]) -> None:
    """A state_changed event always changes something: its status, or (for users) the page's
    confirmation of it, or its flapping. Admins never get one from a status to the same."""
    for update in _all_updates(rounds):
        event = update.event
        if event is None or event.type != "state_changed" or event.from_ != event.to:
            continue
        assert event.audience == "all", f"admin event that changes nothing: {event}"
        if not _is_stable_again(event):
            assert event.detail == _SAME_STATUS_NEWS[event.confirmed], event


def check_flapping_once_per_spell(rounds: Sequence[Round]) -> None:
    flapping: dict[str, bool] = {}
    for update in _all_updates(rounds):
        key = update.state.key
        if update.event is not None and update.event.type == "flapping":
            assert not flapping.get(key, False), "a second flapping notice in one spell"
            assert update.state.flapping
        flapping[key] = update.state.flapping


def check_watcher_health_alternates(rounds: Sequence[Round]) -> None:
    suspect = False
    for update in _all_updates(rounds):
        event = update.event
        if event is not None and event.type == "watcher_health":
            assert event.to is (OPERATIONAL if suspect else MAJOR), "watcher_health repeated"
            suspect = not suspect


@PROPERTY_SETTINGS
@given(st.one_of(scenarios(), dense_scenarios))
def test_property_invariants(scenario: Scenario) -> None:
    rounds = run(scenario)
    check_events_match_their_state(rounds)
    check_config_alerts(rounds)
    check_no_event_changes_nothing(rounds)
    check_flapping_once_per_spell(rounds)
    check_watcher_health_alternates(rounds)


@PROPERTY_SETTINGS
@given(
    st.one_of(
        scenarios(unknown_pages=False),
        scenarios(unknown_pages=False, providers=("a",), components=("api",)),
    )
)
def test_property_no_repeated_user_notice_while_readable_and_not_flapping(
    scenario: Scenario,
) -> None:
    """The no-repeat invariant where the known bugs cannot reach: pages never unreadable, flap
    damping off (the full space is the test below)."""
    check_no_repeated_user_notice(run(scenario, flap_threshold=10_000))


@WIDE_PROPERTY_SETTINGS
@given(dense_scenarios)
def test_property_no_repeated_user_notice(scenario: Scenario) -> None:
    check_no_repeated_user_notice(run(scenario))


@WIDE_PROPERTY_SETTINGS
@given(scenarios(providers=("a", "b"), components=("api", "files")))
def test_property_unknown_is_never_told_to_users(scenario: Scenario) -> None:
    for update in _all_updates(run(scenario)):
        event = update.event
        if event is not None and event.audience == "all":
            assert event.to is not UNKNOWN, event


@WIDE_PROPERTY_SETTINGS
@given(dense_scenarios)
def test_property_flapping_is_quiet(scenario: Scenario) -> None:
    """While a component stays flapping, users hear nothing about it."""
    flapping: dict[str, bool] = {}
    for update in _all_updates(run(scenario)):
        key = update.state.key
        event = update.event
        if event is not None and event.audience == "all" and update.state.flapping:
            assert not flapping.get(key, False), f"event while flapping: {event}"
        flapping[key] = update.state.flapping


@WIDE_PROPERTY_SETTINGS
@given(dense_scenarios)
def test_property_status_changed_means_the_status_moved(
    scenario: Scenario,
) -> None:
    previous: dict[str, Status] = {}
    for update in _all_updates(run(scenario)):
        if update.state.provider == "tocsin":
            continue
        key = update.state.key
        assert update.status_changed == (update.state.status != previous.get(key, UNKNOWN))
        previous[key] = update.state.status


@WIDE_PROPERTY_SETTINGS
@given(scenarios(providers=("a", "b"), components=("api", "files")))
def test_property_no_event_changes_nothing(scenario: Scenario) -> None:
    check_no_event_changes_nothing(run(scenario))


def test_a_source_broken_from_the_start_is_one_config_alert_per_source() -> None:
    """Unknown to unknown is no transition: the admins hear, once per source and not once per
    component, that it cannot be read (with why); nothing reaches the channels."""
    tracker = Tracker(names={"acme": "Acme"})
    components = ("chat", "files", "audio")
    updates = feed(tracker, *(page("acme", 0, UNKNOWN, component=c) for c in components))
    event = only(events(updates))
    assert (event.type, event.audience, event.from_, event.to) == (
        "config_alert",
        "admins",
        None,
        UNKNOWN,
    )
    assert (event.source, event.detail) == (page_id("acme"), "page unreadable")
    notice = compose(event)
    assert (notice.title, notice.text) == (
        "tocsin: cannot read Acme's status page (statuspage)",
        "page unreadable",
    )
    assert not any(u.status_changed for u in updates)
    assert {u.state.status for u in updates} == {UNKNOWN}
    assert (
        events(feed(tracker, *(page("acme", 10, UNKNOWN, component=c) for c in components))) == []
    )
    # readable and healthy: a first healthy read, silent; broken later: a real transition
    assert (
        events(feed(tracker, *(page("acme", 20, OPERATIONAL, component=c) for c in components)))
        == []
    )
    later = only(events(feed(tracker, page("acme", 30, UNKNOWN, component="chat"))))
    assert (later.type, later.from_, later.to) == ("state_changed", OPERATIONAL, UNKNOWN)


def test_a_broken_source_feeding_many_components_is_one_admin_notice() -> None:
    tracker = Tracker()
    components = ("chat", "files", "audio")
    feed(tracker, *(page("acme", 0, OPERATIONAL, component=c) for c in components))
    broken = feed(tracker, *(page("acme", 10, UNKNOWN, component=c) for c in components))
    assert [(e.type, e.audience) for e in events(broken)] == [("state_changed", "admins")]
    assert {u.state.status for u in broken} == {UNKNOWN}  # every component says so
    mended = feed(tracker, *(page("acme", 20, OPERATIONAL, component=c) for c in components))
    assert [(e.type, e.audience, e.to) for e in events(mended)] == [
        ("state_changed", "admins", OPERATIONAL)
    ]
    assert {u.state.status for u in mended} == {OPERATIONAL}
    # broken again later: news again
    again = feed(tracker, *(page("acme", 30, UNKNOWN, component=c) for c in components))
    assert len(events(again)) == 1


# --------------------------------------------------- self-check across a start and a failover


def test_a_failure_before_the_other_probes_ran_is_held_not_announced() -> None:
    """A cut-off watcher's first probe fails twice before any other probe ran: no verdict yet
    (the watcher tells the tracker which providers have probes)."""
    tracker = Tracker(TrackerSettings(probed=frozenset(PROVIDERS)))
    updates: list[StateUpdate] = []
    for t in (0, 1, 2):
        updates += batch(tracker, net("alpha", t))
    assert user_events(updates) == []
    # without knowing the others exist, the same failures are a provider outage
    naive = Tracker()
    updates = []
    for t in (0, 1, 2):
        updates += batch(naive, net("alpha", t))
    assert [e.provider for e in user_events(updates)] == ["alpha"]


def test_a_new_leader_remembers_the_network_was_suspect_and_tells_when_it_is_over() -> None:
    first = Tracker()
    healthy_round(first, 0)
    stored: dict[str, ComponentState] = {}  # what the store holds, as the watcher wrote it
    for t in (10, 20, 30):
        stored.update((u.state.key, u.state) for u in batch(first, *(net(p, t) for p in PROVIDERS)))
    assert suspect(first) is True
    successor = Tracker()  # another replica takes the lease and reads the stored states
    successor.restore(stored.values())
    assert suspect(successor) is True
    updates = batch(successor, *(ok(p, 40) for p in PROVIDERS))
    updates += batch(successor, *(ok(p, 50) for p in PROVIDERS))
    event = only(events(updates))
    assert (event.type, event.to) == ("watcher_health", OPERATIONAL)
    assert user_events(updates) == []
