"""Issue 15 end to end, across two replicas of tocsin on one real redis-server: a status page
goes down, both Slack channels get a root with buttons, PagerDuty is paged (the clock moved,
never slept out); Acknowledge is clicked on the *other* replica's HTTP endpoint → PagerDuty
sees the acknowledge and no repeat follows; Silence 1 h in one channel → the next update posts
in the other channel only, the recovery in both; ``/tocsin subscribe`` typed on one replica →
the next outage reaches that new channel, whichever replica delivers it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from config.loader import build_config
from config.schema import TocsinConfig
from tests.chaos import until
from tests.fakes.pager import FakePagerDuty
from tests.fakes.slack import Clicker, FakeSlack, Message, signed_request, slash_command_body
from tests.fakes.status_server import FakeStatusServer, fixture_json
from tests.redis_server import RedisServer, free_port
from tests.running import Running
from tests.test_escalation_e2e import ShiftedClock

pytestmark = pytest.mark.timeout(90)

API = "k8w3r06qmzrp"
SUMMARY = "/api/v2/summary.json"
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
ONE, TWO, NEW = "C0ONE00001", "C0TWO00001", "C0NEW00001"
MARIA = Clicker(id="U0MARIA001", username="maria", name="maria")


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    fake = await FakeSlack().start()
    for channel, name in ((ONE, "ai-one"), (TWO, "ai-two"), (NEW, "ai-new")):
        fake.add_channel(channel, name)
    fake.signing_secret = SECRET
    yield fake
    await fake.close()


@pytest.fixture
async def pagerduty() -> AsyncIterator[FakePagerDuty]:
    async with FakePagerDuty() as fake:
        yield fake


def _config(
    name: str,
    port: int,
    page: FakeStatusServer,
    slack: FakeSlack,
    redis: RedisServer,
    prefix: str,
    pagerduty: FakePagerDuty,
) -> TocsinConfig:
    return build_config(
        {
            "store": {"url": redis.url, "prefix": prefix},
            "server": {"host": "127.0.0.1", "port": port},
            "instance": name,
            "console": {"enabled": False},
            "watch": {"jitter": "0s", "timeout": "2s"},
            "grouping": {"enabled": False},
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
            "slack": {
                "api_url": slack.api_url,
                "bot_token": slack.bot_token,
                "signing_secret": SECRET,
                "channels": [{"id": ONE, "providers": "all"}, {"id": TWO, "providers": "all"}],
            },
            "escalation": [
                {
                    "kind": "pagerduty",
                    "routing_key": pagerduty.routing_key,
                    "url": pagerduty.url,
                    "after": "5m",
                    "repeat": "10m",
                }
            ],
        }
    )


def _page(status: str, *, update: str | None = None) -> dict[str, Any]:
    payload = copy.deepcopy(fixture_json("statuspage_summary_anthropic_minor_monitoring.json"))
    incident = payload["incidents"][0]
    incident["components"][0]["id"] = API
    incident["status"] = "investigating" if update is None else "identified"
    incident["incident_updates"] = incident["incident_updates"][-1:]
    if update is not None:
        newest = copy.deepcopy(incident["incident_updates"][0])
        newest.update({"id": "upd-2", "status": "identified", "body": update})
        incident["incident_updates"].insert(0, newest)
    for component in payload["components"]:
        if component["id"] == API:
            component["status"] = status
    return payload


def _words(message: Message) -> str:
    """Everything a message says (text, blocks, attachments), to look for words in."""
    return json.dumps([message.text, message.blocks, message.attachments])


async def _tocsin(port: int, channel: str, text: str) -> dict[str, Any]:
    body = slash_command_body("/tocsin", text, channel_id=channel, user_id=MARIA.id)
    headers = {**signed_request(SECRET, body), "Content-Type": "application/x-www-form-urlencoded"}
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"http://127.0.0.1:{port}/slack/events", content=body, headers=headers
        )
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_acknowledge_silence_and_subscribe_work_across_replicas(
    status_server: FakeStatusServer,
    redis_server: RedisServer,
    key_prefix: str,
    slack: FakeSlack,
    pagerduty: FakePagerDuty,
) -> None:
    status_server.set_fixture(SUMMARY, "statuspage_summary_anthropic_operational.json")
    ports = [free_port(), free_port()]
    clock = ShiftedClock()
    replicas = []
    #: (event type, target, outcome) as either replica's dispatcher ended each delivery
    outcomes: list[tuple[str, str, str]] = []
    looked: list[timedelta] = []  # the clock as the escalators saw it at each tick

    def ticks_since(offset: timedelta) -> int:
        return sum(1 for seen in looked if seen >= offset)

    def watched() -> datetime:
        looked.append(clock.offset)
        return clock()

    for index, port in enumerate(ports):
        config = _config(
            f"replica-{index}", port, status_server, slack, redis_server, key_prefix, pagerduty
        )
        running = Running(config)
        assert running.runtime.escalator is not None
        assert running.runtime.dispatcher is not None
        running.runtime.escalator.clock = watched
        running.runtime.dispatcher.on_outcome = lambda e, t, o: outcomes.append((e.type, t.key, o))
        replicas.append(running)
    try:
        store = replicas[0].runtime.store

        async def green() -> bool:
            states = await store.states()
            return any(s.provider == "acme" and s.status == "operational" for s in states.values())

        await until(green)  # the page read green before it goes down
        status_server.set_json(SUMMARY, _page("major_outage"))
        await until(lambda: len(slack.top_level(ONE)) == 1 and len(slack.top_level(TWO)) == 1)
        one, two = slack.top_level(ONE)[0], slack.top_level(TWO)[0]
        clock.offset = timedelta(minutes=5, seconds=1)
        await until(lambda: any(e["event_action"] == "trigger" for e in pagerduty.events))

        # Acknowledge, clicked on the replica that did not post the notice (either may have)
        slack.interactivity_url = f"http://127.0.0.1:{ports[1]}/slack/events"
        clicked = await slack.click(ONE, one.ts, "tocsin_ack", clicker=MARIA)
        assert clicked.status == 200
        await until(lambda: any(e["event_action"] == "acknowledge" for e in pagerduty.events))
        [trigger] = [e for e in pagerduty.events if e["event_action"] == "trigger"]
        [ack] = [e for e in pagerduty.events if e["event_action"] == "acknowledge"]
        assert ack["dedup_key"] == trigger["dedup_key"]
        await until(lambda: "Acknowledged" in _words(slack.message(ONE, one.ts)))
        await until(lambda: "Acknowledged" in _words(slack.message(TWO, two.ts)))
        clock.offset = timedelta(minutes=40)  # three repeats would be due by now
        await until(lambda: ticks_since(clock.offset) >= 3)
        assert [e["event_action"] for e in pagerduty.events] == ["trigger", "acknowledge"]

        # Silence 1 h in #two, clicked on the first replica
        slack.interactivity_url = f"http://127.0.0.1:{ports[0]}/slack/events"
        await slack.click(TWO, two.ts, "tocsin_silence_1h", clicker=MARIA)
        await until(lambda: "Silenced here" in _words(slack.message(TWO, two.ts)))
        replies_two = len(slack.replies(TWO, two.ts))
        status_server.set_json(SUMMARY, _page("major_outage", update="We found the cause."))
        await until(
            lambda: any("We found the cause" in m for m in map(_words, slack.replies(ONE, one.ts)))
        )
        await until(lambda: ("incident_update", f"slack:{TWO}", "muted") in outcomes)
        assert len(slack.replies(TWO, two.ts)) == replies_two

        # subscribe #new from the chat on the second replica; recover; the next outage
        answer = await _tocsin(ports[1], NEW, "subscribe acme major_outage")
        assert "This channel now hears Acme AI at major_outage or worse" in answer["text"]
        status_server.set_fixture(SUMMARY, "statuspage_summary_anthropic_operational.json")
        await until(lambda: "Resolved" in _words(slack.message(TWO, two.ts)))
        await until(lambda: any("recovered" in m for m in map(_words, slack.replies(TWO, two.ts))))
        assert any(e["event_action"] == "resolve" for e in pagerduty.events)
        assert slack.top_level(NEW) == []  # it never heard of the first outage
        status_server.set_json(SUMMARY, _page("major_outage"))
        await until(lambda: len(slack.top_level(NEW)) == 1)
        await until(lambda: len(slack.top_level(ONE)) == 2)
        assert len(slack.top_level(NEW)) == 1  # once, though two replicas deliver
    finally:
        for running in replicas:
            await running.halt()
