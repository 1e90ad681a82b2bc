"""Escalation end to end: a status page goes down, the watcher sees it, Redis carries it, the
escalator waits out ``after`` on an injected clock, and fake PagerDuty, Opsgenie and a signed
webhook receiver get the page; the recovery resolves it with the same key, across a restart.
Slack's thread of the outage says who was paged. Only the clock is moved, never slept out."""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from bot.compose import compose
from bot.escalation import Action, Pending, escalation_event
from bot.models import Event, EventIncident, Status, utcnow
from bot.notifier import Delivery, Intent
from config.loader import build_config
from config.schema import TocsinConfig
from handlers.escalation import targets as escalation_targets
from tests.chaos import until
from tests.fakes.pager import FAKE_ROUTING_KEY, FakeOpsgenie, FakePagerDuty, WebhookReceiver
from tests.fakes.slack import FakeSlack
from tests.fakes.status_server import FakeStatusServer, fixture_json
from tests.redis_server import RedisServer, free_port
from tests.running import Running

API = "k8w3r06qmzrp"
SUMMARY = "/api/v2/summary.json"
CHANNEL = "C0ALL00001"
HOOK_SECRET = "placeholder-webhook-secret"


class ShiftedClock:
    """Real time plus an offset the test moves: ``after: 5m`` passes in an instant."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return utcnow() + self.offset


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    fake = await FakeSlack().start()
    fake.add_channel(CHANNEL, "ai-incidents")
    yield fake
    await fake.close()


@pytest.fixture
async def pagerduty() -> AsyncIterator[FakePagerDuty]:
    async with FakePagerDuty() as fake:
        yield fake


@pytest.fixture
async def opsgenie() -> AsyncIterator[FakeOpsgenie]:
    async with FakeOpsgenie() as fake:
        yield fake


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    async with WebhookReceiver(HOOK_SECRET) as fake:
        yield fake


def _config(
    page: FakeStatusServer,
    redis_server: RedisServer,
    prefix: str,
    policies: list[dict[str, Any]],
    slack: FakeSlack | None = None,
) -> TocsinConfig:
    document: dict[str, Any] = {
        "store": {"url": redis_server.url, "prefix": prefix},
        "server": {"enabled": False},
        "instance": "escalation-e2e",
        "console": {"enabled": False},
        "watch": {"jitter": "0s", "timeout": "2s"},
        "providers": [
            {
                "id": "acme",
                "name": "Acme AI",
                "status_page": {
                    "kind": "statuspage",
                    "url": page.url,
                    "components": [API],
                    "interval": "300ms",
                },
            }
        ],
        "escalation": policies,
    }
    if slack is not None:
        document["slack"] = {
            "api_url": slack.api_url,
            "bot_token": slack.bot_token,
            "channels": [{"id": CHANNEL, "providers": "all"}],
        }
    return build_config(document)


def _page_policies(
    pagerduty: FakePagerDuty, opsgenie: FakeOpsgenie, receiver: WebhookReceiver
) -> list[dict[str, Any]]:
    return [
        {
            "kind": "pagerduty",
            "id": "oncall",
            "name": "Platform on-call",
            "routing_key": pagerduty.routing_key,
            "url": pagerduty.url,
            "after": "5m",
        },
        {
            "kind": "opsgenie",
            "api_key": opsgenie.api_key,
            "url": opsgenie.url,
            "after": "5m",
        },
        {"kind": "webhook", "url": receiver.url, "secret": HOOK_SECRET, "after": "5m"},
    ]


def _outage() -> dict[str, Any]:
    payload = copy.deepcopy(fixture_json("statuspage_summary_anthropic_minor_monitoring.json"))
    incident = payload["incidents"][0]
    incident["components"][0]["id"] = API
    incident["status"] = "investigating"
    incident["incident_updates"] = incident["incident_updates"][-1:]
    for component in payload["components"]:
        if component["id"] == API:
            component["status"] = "major_outage"
    return payload


def _running(config: TocsinConfig, clock: ShiftedClock) -> Running:
    """The runtime, its escalator on the test's clock (set before the task first runs)."""
    running = Running(config)
    assert running.runtime.escalator is not None
    running.runtime.escalator.clock = clock
    return running


async def test_outage_pages_after_the_delay_and_recovery_resolves_across_a_restart(
    status_server: FakeStatusServer,
    redis_server: RedisServer,
    key_prefix: str,
    slack: FakeSlack,
    pagerduty: FakePagerDuty,
    opsgenie: FakeOpsgenie,
    receiver: WebhookReceiver,
) -> None:
    status_server.set_fixture(SUMMARY, "statuspage_summary_anthropic_operational.json")
    policies = _page_policies(pagerduty, opsgenie, receiver)
    config = _config(status_server, redis_server, key_prefix, policies, slack)
    clock = ShiftedClock()
    first = _running(config, clock)
    await asyncio.sleep(1.0)
    status_server.set_json(SUMMARY, _outage())
    await until(lambda: len(slack.top_level(CHANNEL)) == 1)
    root = slack.top_level(CHANNEL)[0]
    await asyncio.sleep(1.5)  # the escalator has seen the outage; 5 minutes have not passed
    assert pagerduty.events == []
    assert opsgenie.alerts == {}
    assert receiver.received == []

    clock.offset = timedelta(minutes=5, seconds=1)
    await until(lambda: bool(pagerduty.events and opsgenie.alerts and receiver.received))
    trigger = pagerduty.events[0]
    assert trigger["event_action"] == "trigger"
    dedup_key = trigger["dedup_key"]
    assert dedup_key.startswith("tocsin:acme:")
    assert trigger["payload"]["severity"] == "critical"
    assert trigger["payload"]["summary"].startswith("Acme AI: major outage (confirmed)")
    assert trigger["links"][0]["href"].startswith("https://")
    alert = opsgenie.alerts[dedup_key]
    assert alert.priority == "P1"
    assert alert.status == "open"
    hook = receiver.received[0]
    assert hook.signature_ok is True
    assert hook.json is not None
    assert hook.json["escalation"]["action"] == "trigger"
    assert hook.json["escalation"]["dedup_key"] == dedup_key
    assert hook.idempotency_key == hook.json["id"]
    # the outage's Slack thread says who was paged, once per policy
    await until(lambda: len(slack.replies(CHANNEL, root.ts)) == 3)
    paged = sorted(m.text for m in slack.replies(CHANNEL, root.ts))
    assert any("Paged Platform on-call (pagerduty)" in text for text in paged)
    assert any("Paged Opsgenie" in text for text in paged)

    await first.halt()  # a restart between the page and the recovery
    second = _running(config, clock)
    await asyncio.sleep(1.5)
    assert len(pagerduty.events) == 1  # the restart paged nobody again
    status_server.set_fixture(SUMMARY, "statuspage_summary_anthropic_operational.json")
    await until(lambda: len(pagerduty.events) == 2 and len(receiver.received) == 2)
    await until(lambda: opsgenie.alerts[dedup_key].status == "closed")
    await asyncio.sleep(1.0)
    await second.halt()

    resolve = pagerduty.events[1]
    assert resolve == {
        "routing_key": pagerduty.routing_key,
        "event_action": "resolve",
        "dedup_key": dedup_key,
    }
    assert pagerduty.incident_count == 1
    assert pagerduty.incidents[dedup_key].status == "resolved"
    assert opsgenie.alerts[dedup_key].count == 1
    assert receiver.received[1].json is not None
    assert receiver.received[1].json["escalation"]["action"] == "resolve"
    assert receiver.rejected == 0
    assert pagerduty.violations == opsgenie.violations == []
    assert slack.violations == []


async def test_an_outage_that_recovers_before_after_pages_nobody(
    status_server: FakeStatusServer,
    redis_server: RedisServer,
    key_prefix: str,
    pagerduty: FakePagerDuty,
    opsgenie: FakeOpsgenie,
    receiver: WebhookReceiver,
) -> None:
    status_server.set_fixture(SUMMARY, "statuspage_summary_anthropic_operational.json")
    policies = _page_policies(pagerduty, opsgenie, receiver)
    config = _config(status_server, redis_server, key_prefix, policies)
    clock = ShiftedClock()
    running = _running(config, clock)
    escalator = running.runtime.escalator
    assert escalator is not None
    await asyncio.sleep(1.0)
    status_server.set_json(SUMMARY, _outage())
    await until(lambda: len(escalator.pending) == 3)  # every policy's clock is running
    clock.offset = timedelta(minutes=4)
    status_server.set_fixture(SUMMARY, "statuspage_summary_anthropic_operational.json")
    await until(lambda: not escalator.pending)
    clock.offset = timedelta(hours=1)
    await asyncio.sleep(1.5)
    await running.halt()
    assert pagerduty.attempts == []
    assert opsgenie.requests == []
    assert receiver.received == []


async def test_throttling_and_outages_of_pagerduty_are_retried_into_one_page(
    status_server: FakeStatusServer,
    redis_server: RedisServer,
    key_prefix: str,
    pagerduty: FakePagerDuty,
) -> None:
    status_server.set_fixture(SUMMARY, "statuspage_summary_anthropic_operational.json")
    policy = {
        "kind": "pagerduty",
        "routing_key": pagerduty.routing_key,
        "url": pagerduty.url,
        "after": "0s",
    }
    config = _config(status_server, redis_server, key_prefix, [policy])
    pagerduty.fail(429, retry_after=1)
    pagerduty.fail(502, html=True)
    pagerduty.fail(500)
    running = _running(config, ShiftedClock())
    await asyncio.sleep(0.5)
    status_server.set_json(SUMMARY, _outage())
    await until(lambda: len(pagerduty.events) == 1)
    await asyncio.sleep(1.0)
    await running.halt()
    assert len(pagerduty.attempts) == 4
    assert pagerduty.attempts[1] - pagerduty.attempts[0] >= 0.95  # Retry-After: 1 was kept
    assert pagerduty.incident_count == 1
    assert pagerduty.violations == []


async def test_a_rejected_page_is_dead_lettered_with_pagerdutys_reason(
    status_server: FakeStatusServer, redis_server: RedisServer, key_prefix: str
) -> None:
    pagerduty = await FakePagerDuty(routing_keys=[FAKE_ROUTING_KEY]).start()
    status_server.set_fixture(SUMMARY, "statuspage_summary_anthropic_operational.json")
    policy = {
        "kind": "pagerduty",
        "routing_key": "X" * 32,  # well formed, but no such integration
        "url": pagerduty.url,
        "after": "0s",
    }
    config = _config(status_server, redis_server, key_prefix, [policy])
    running = _running(config, ShiftedClock())
    await asyncio.sleep(0.5)
    status_server.set_json(SUMMARY, _outage())
    store = running.runtime.store
    dead: list[dict[str, Any]] = []

    async def dead_letters() -> list[dict[str, Any]]:
        return await store.dead_letters()

    deadline = time.monotonic() + 15
    while not dead and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        dead = await dead_letters()
    await running.halt()
    await pagerduty.stop()
    assert len(pagerduty.attempts) == 1  # a 400 is not retried
    assert dead, "the rejected page was not dead-lettered"
    assert dead[0]["target"] == "escalation:pagerduty"
    assert "HTTP 400" in dead[0]["error"]
    assert "Invalid routing key" in json.dumps(dead[0])
    assert "X" * 32 not in json.dumps(dead[0])


async def test_every_region_and_a_huge_incident_stay_within_the_apis_limits(
    pagerduty: FakePagerDuty, opsgenie: FakeOpsgenie
) -> None:
    """Directly through the notifiers: Opsgenie's 130-character message, PagerDuty's
    1024-character summary, and the EU host when ``region: eu``."""
    config = build_config(
        {
            "providers": [{"id": "anthropic"}],
            "escalation": [
                {"kind": "pagerduty", "routing_key": pagerduty.routing_key, "url": pagerduty.url},
                {"kind": "opsgenie", "api_key": opsgenie.api_key, "url": opsgenie.url},
                {"kind": "opsgenie", "api_key": opsgenie.api_key, "region": "eu"},
                {"kind": "opsgenie", "api_key": opsgenie.api_key},
            ],
        }
    )
    found = escalation_targets(config)
    assert [t.options["url"] for t in found[2:]] == [
        "https://api.eu.opsgenie.com",
        "https://api.opsgenie.com",
    ]
    policy = config.escalation[0]
    started = utcnow() - timedelta(minutes=7)
    incident = EventIncident(
        id="inc1", title="Elevated errors " * 200, status="investigating", update="x" * 30_000
    )
    snapshot = Event(
        type="state_changed",
        provider="anthropic",
        provider_name="Anthropic (Claude)",
        to=Status.MAJOR_OUTAGE,
        provider_status=Status.MAJOR_OUTAGE,
        episode="anthropic:ep",
        confirmed=True,
        incident=incident,
        at=started,
    )
    pending = Pending(
        policy=policy.policy_id,
        provider="anthropic",
        episode="anthropic:ep",
        since=started,
        status=Status.MAJOR_OUTAGE,
        snapshot=snapshot,
    )
    for target in found[:2]:
        page = escalation_event(policy, Action("trigger", pending), utcnow())
        await target.notifier.deliver(target, Delivery(page, compose(page), Intent.NOTICE))
    for target in found:
        await target.notifier.close()
    assert len(pagerduty.events) == 1
    assert len(pagerduty.events[0]["payload"]["summary"]) == 1024
    alert = next(iter(opsgenie.alerts.values()))
    assert len(alert.message) == 130
    assert pagerduty.violations == opsgenie.violations == []


async def _leader_reports(port: int) -> tuple[bool, float]:
    """What ``/healthz`` and ``/metrics`` say of the escalator lease."""
    async with httpx.AsyncClient(trust_env=False, timeout=5.0) as client:
        health = (await client.get(f"http://127.0.0.1:{port}/healthz")).json()
        text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    [gauge] = [
        float(line.split()[1])
        for line in text.splitlines()
        if line.startswith("tocsin_escalator_leader ")
    ]
    return bool(health["escalator"]["leader"]), gauge


async def test_a_hostile_escalations_value_still_pages_a_new_outage_and_health_agrees(
    status_server: FakeStatusServer,
    redis_server: RedisServer,
    key_prefix: str,
    pagerduty: FakePagerDuty,
) -> None:
    """A value nested 100,000 deep under the escalations key used to crash the escalator
    once a second (RecursionError): a new outage paged nobody, and ``/healthz`` said "not
    leading" while ``tocsin_escalator_leader`` said 1. Now the value is dropped with one
    line and the page goes out."""
    raw = aioredis.Redis.from_url(redis_server.url)
    try:
        await raw.set(f"{key_prefix}kv:escalations", b"[" * 100_000 + b"]" * 100_000)
    finally:
        await raw.aclose()
    status_server.set_fixture(SUMMARY, "statuspage_summary_anthropic_operational.json")
    policy = {"kind": "pagerduty", "routing_key": pagerduty.routing_key, "url": pagerduty.url}
    config = _config(status_server, redis_server, key_prefix, [{**policy, "after": "5m"}])
    port = free_port()
    config = config.model_copy(
        update={"server": config.server.model_copy(update={"enabled": True, "port": port})}
    )
    clock = ShiftedClock()
    running = _running(config, clock)
    escalator = running.runtime.escalator
    assert escalator is not None
    try:
        await until(lambda: escalator.leader)
        status_server.set_json(SUMMARY, _outage())
        await until(lambda: bool(escalator.pending))
        assert await _leader_reports(port) == (True, 1.0)
        clock.offset = timedelta(minutes=5, seconds=1)
        await until(lambda: len(pagerduty.events) == 1)
        assert pagerduty.events[0]["event_action"] == "trigger"
        assert await _leader_reports(port) == (True, 1.0)
        saved = await running.runtime.store.get_value("escalations")  # the page's, not the bad one
        assert saved is not None
        assert json.loads(saved)
    finally:
        await running.halt()
    assert pagerduty.violations == []


async def test_an_acknowledge_reaches_pagerduty_opsgenie_and_the_webhook(
    pagerduty: FakePagerDuty, opsgenie: FakeOpsgenie, receiver: WebhookReceiver
) -> None:
    """(issue 15) Acknowledged from the chat: each pager is told by its own API (PagerDuty's
    ``event_action: acknowledge``, Opsgenie's ``/acknowledge`` by alias, a signed webhook's
    ``escalation.acknowledge``); the page stays open until the recovery resolves it."""
    config = build_config(
        {
            "providers": [{"id": "anthropic"}],
            "escalation": _page_policies(pagerduty, opsgenie, receiver),
        }
    )
    found = escalation_targets(config)
    started = utcnow() - timedelta(minutes=7)
    snapshot = Event(
        type="state_changed",
        provider="anthropic",
        to=Status.MAJOR_OUTAGE,
        provider_status=Status.MAJOR_OUTAGE,
        episode="anthropic:ep",
        at=started,
    )
    for policy, target in zip(config.escalation, found, strict=True):
        pending = Pending(
            policy=policy.policy_id,
            provider="anthropic",
            episode="anthropic:ep",
            since=started,
            status=Status.MAJOR_OUTAGE,
            snapshot=snapshot,
        )
        for action in ("trigger", "acknowledge"):
            page = escalation_event(policy, Action(action, pending), utcnow())
            await target.notifier.deliver(target, Delivery(page, compose(page), Intent.NOTICE))
    for target in found:
        await target.notifier.close()
    assert [e["event_action"] for e in pagerduty.events] == ["trigger", "acknowledge"]
    assert pagerduty.events[1]["dedup_key"] == pagerduty.events[0]["dedup_key"]
    alert = opsgenie.alerts["tocsin:anthropic:ep"]
    assert alert.acknowledged
    assert alert.status == "open"
    assert [h.json["escalation"]["action"] for h in receiver.received if h.json] == [
        "trigger",
        "acknowledge",
    ]
    assert pagerduty.violations == opsgenie.violations == []
