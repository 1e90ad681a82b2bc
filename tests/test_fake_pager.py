"""The paging fakes themselves, over real HTTP: what they accept, reject, model and inject."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.fakes.pager import (
    FAKE_OPSGENIE_KEY,
    FAKE_ROUTING_KEY,
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    FakeOpsgenie,
    FakePagerDuty,
    WebhookReceiver,
    pagerduty_event_errors,
    sign_webhook,
    webhook_signature,
)

SECRET = "whsec-tocsin-test"


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    # trust_env=False: no proxy from the environment; nothing leaves loopback.
    async with httpx.AsyncClient(timeout=5.0, trust_env=False) as client:
        yield client


@pytest.fixture
async def pd() -> AsyncIterator[FakePagerDuty]:
    async with FakePagerDuty() as fake:
        yield fake


@pytest.fixture
async def og() -> AsyncIterator[FakeOpsgenie]:
    async with FakeOpsgenie() as fake:
        yield fake


def trigger(dedup_key: str | None = "openai-outage", **payload: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "routing_key": FAKE_ROUTING_KEY,
        "event_action": "trigger",
        "payload": {
            "summary": "OpenAI API: elevated errors",
            "source": "tocsin",
            "severity": "critical",
            **payload,
        },
    }
    if dedup_key is not None:
        event["dedup_key"] = dedup_key
    return event


def follow_up(action: str, dedup_key: str = "openai-outage") -> dict[str, Any]:
    return {"routing_key": FAKE_ROUTING_KEY, "event_action": action, "dedup_key": dedup_key}


# ------------------------------------------------------------------------- PagerDuty


async def test_pd_trigger_opens_an_incident(pd: FakePagerDuty, http: httpx.AsyncClient) -> None:
    assert pd.url.startswith("http://127.0.0.1:")
    assert pd.url.endswith("/v2/enqueue")
    event = trigger(
        timestamp="2015-07-17T08:42:58.315+0000",
        component="api",
        group="openai",
        custom_details={"error_rate": 0.4},
    )
    event["links"] = [{"href": "https://status.openai.com", "text": "status"}]
    event["images"] = [{"src": "https://example.com/graph.png", "alt": "errors"}]
    event["client"] = "tocsin"
    event["client_url"] = "https://tocsin.example"
    response = await http.post(pd.url, json=event)

    assert response.status_code == 202
    assert response.json() == {
        "status": "success",
        "message": "Event processed",
        "dedup_key": "openai-outage",
    }
    assert pd.violations == []
    assert pd.incident_count == 1
    incident = pd.incidents["openai-outage"]
    assert (incident.number, incident.status, incident.severity) == (1, "triggered", "critical")
    assert pd.events == [event]
    assert incident.events == [event]
    assert pd.requests == 1
    assert len(pd.attempts) == 1


async def test_pd_dedup_ack_resolve_and_retrigger(
    pd: FakePagerDuty, http: httpx.AsyncClient
) -> None:
    assert (await http.post(pd.url, json=trigger())).status_code == 202
    again = await http.post(pd.url, json=trigger(summary="OpenAI API: still erroring"))
    assert again.status_code == 202
    assert pd.incident_count == 1  # same dedup_key, same incident
    incident = pd.incidents["openai-outage"]
    assert len(incident.events) == 2
    assert incident.summary == "OpenAI API: still erroring"

    assert (await http.post(pd.url, json=follow_up("acknowledge"))).status_code == 202
    assert pd.incidents["openai-outage"].status == "acknowledged"
    assert (await http.post(pd.url, json=follow_up("resolve"))).status_code == 202
    assert incident.status == "resolved"
    assert pd.open_incidents() == []

    assert (await http.post(pd.url, json=trigger())).status_code == 202
    assert pd.incident_count == 2  # a trigger after resolve opens a new incident
    assert pd.incidents["openai-outage"] is not incident
    assert pd.incidents["openai-outage"].number == 2
    assert incident.status == "resolved"
    assert pd.violations == []


async def test_pd_generates_a_dedup_key_and_ignores_unknown_resolves(
    pd: FakePagerDuty, http: httpx.AsyncClient
) -> None:
    response = await http.post(pd.url, json=trigger(dedup_key=None))
    key = response.json()["dedup_key"]
    assert response.status_code == 202
    assert key in pd.incidents

    unknown = await http.post(pd.url, json=follow_up("resolve", "never-triggered"))
    assert unknown.status_code == 202
    assert unknown.json()["dedup_key"] == "never-triggered"
    assert pd.incident_count == 1
    assert "never-triggered" not in pd.incidents
    assert pd.dropped == [follow_up("resolve", "never-triggered")]


@pytest.mark.parametrize(
    ("event", "error"),
    [
        (trigger(summary=None), "'payload.summary' is missing or blank"),
        (trigger(severity="high"), "'payload.severity' must be one of"),
        (trigger(summary="x" * 1025), "'payload.summary' is longer than 1024"),
        (trigger(timestamp="yesterday"), "'payload.timestamp' is not a valid ISO 8601"),
        (trigger(custom_details="text"), "'payload.custom_details' must be an object"),
        (trigger(colour="red"), "'payload.colour' is not a recognized field"),
        ({**trigger(), "routing_key": "short"}, "Length of 'routing_key' is incorrect"),
        ({**trigger(), "routing_key": "R0TOCSIN-FAKE-ROUTING-KEY-000001"}, "non-alphanumeric"),
        ({**trigger(), "event_action": "escalate"}, "'event_action' must be one of"),
        ({**trigger(), "dedup_key": "k" * 256}, "'dedup_key' is longer than 255"),
        ({**trigger(), "severity": "critical"}, "'severity' is not a recognized field"),
        ({**trigger(), "links": [{"text": "no href"}]}, "'links[0].href' is missing or blank"),
        ({k: v for k, v in trigger().items() if k != "payload"}, "'payload' is missing"),
        ({k: v for k, v in follow_up("resolve").items() if k != "dedup_key"}, "'dedup_key'"),
    ],
)
async def test_pd_invalid_events_are_400(
    pd: FakePagerDuty, http: httpx.AsyncClient, event: dict[str, Any], error: str
) -> None:
    event["payload"] = {k: v for k, v in event.get("payload", {}).items() if v is not None}
    if not event["payload"]:
        del event["payload"]
    response = await http.post(pd.url, json=event)

    assert response.status_code == 400
    body = response.json()
    assert body["status"] == "invalid event"
    assert body["message"] == "Event object is invalid"
    assert any(error in e for e in body["errors"]), body["errors"]
    assert any(error in v for v in pd.violations)
    assert pd.events == []
    assert pd.incident_count == 0


async def test_pd_unknown_routing_key_and_non_json(http: httpx.AsyncClient) -> None:
    async with FakePagerDuty(routing_keys={"A" * 32}) as pd:
        assert pd.routing_key == "A" * 32
        response = await http.post(pd.url, json=trigger())  # well-formed, but not a key of ours
        assert response.status_code == 400
        assert response.json()["errors"] == ["Invalid routing key"]

        garbage = await http.post(
            pd.url, content=b"summary=down", headers={"Content-Type": "application/json"}
        )
        assert garbage.status_code == 400
        assert garbage.json() == {
            "status": "Unrecognized object",
            "message": "Event object format is unrecognized",
            "errors": ["JSON parse error"],
        }
        form = await http.post(pd.url, data={"routing_key": "A" * 32})
        assert form.status_code == 400
        assert len(pd.violations) == 3
        assert pd.events == []
        assert "Content-Type" in pd.violations[-1]


async def test_pd_throttle_then_success(pd: FakePagerDuty, http: httpx.AsyncClient) -> None:
    pd.fail(429, retry_after=2)
    throttled = await http.post(pd.url, json=trigger())
    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "2"
    assert throttled.json()["status"] == "Request Limit Exceeded"
    assert pd.events == []
    assert pd.pending_failures == 0

    ok = await http.post(pd.url, json=trigger())
    assert ok.status_code == 202
    assert pd.incident_count == 1
    assert pd.requests == 2
    assert pd.attempts[0] <= pd.attempts[1]


async def test_pd_5xx_and_html_502(pd: FakePagerDuty, http: httpx.AsyncClient) -> None:
    pd.fail(500, times=2)
    pd.fail(502, html=True)
    first, second = [await http.post(pd.url, json=trigger()) for _ in range(2)]
    assert first.status_code == second.status_code == 500
    assert first.json()["status"] == "Internal Server Error"
    page = await http.post(pd.url, json=trigger())
    assert page.status_code == 502
    assert page.headers["Content-Type"].startswith("text/html")
    assert "<h1>502 Bad Gateway</h1>" in page.text
    assert (await http.post(pd.url, json=trigger())).status_code == 202
    assert pd.requests == 4
    assert pd.incident_count == 1


async def test_pd_wait_for(pd: FakePagerDuty, http: httpx.AsyncClient) -> None:
    with pytest.raises(TimeoutError):
        await pd.wait_for(lambda: pd.incident_count > 0, timeout=0.05)
    await http.post(pd.url, json=trigger())
    await pd.wait_for(lambda: pd.incident_count == 1, timeout=1)
    await pd.wait_for_requests(1, timeout=1)


def test_pd_validator_accepts_the_documented_example() -> None:
    # The example body of PagerDuty's Events API v2 OpenAPI document, routing key and all.
    example = {
        "payload": {
            "summary": "DISK at 99% on machine prod-datapipe03.example.com",
            "timestamp": "2015-07-17T08:42:58.315+0000",
            "severity": "critical",
            "source": "prod-datapipe03.example.com",
            "component": "mysql",
            "group": "prod-datapipe",
            "class": "disk",
            "custom_details": {"free space": "1%", "ping time": "1500ms", "load avg": 0.75},
        },
        "routing_key": "e93facc04764012d7bfb002500d5d1a6",
        "dedup_key": "srv01/mysql",
        "event_action": "trigger",
        "client": "Sample Monitoring Service",
        "client_url": "https://monitoring.service.com",
        "links": [{"href": "http://pagerduty.example.com", "text": "An example link."}],
        "images": [
            {
                "src": "https://chart.googleapis.com/chart?chs=600x400",
                "href": "https://google.com",
                "alt": "An example link with an image",
            }
        ],
    }
    assert pagerduty_event_errors(example) == []


# -------------------------------------------------------------------------- Opsgenie


def genie(key: str = FAKE_OPSGENIE_KEY) -> dict[str, str]:
    return {"Authorization": f"GenieKey {key}"}


async def test_og_auth_failures(og: FakeOpsgenie, http: httpx.AsyncClient) -> None:
    body = {"message": "OpenAI API down"}
    wrong = await http.post(
        f"{og.url}/v2/alerts", json=body, headers=genie("00000000-0000-4000-8000-000000000000")
    )
    assert wrong.status_code == 401
    assert wrong.json()["message"] == "Could not authenticate"
    assert set(wrong.json()) == {"message", "took", "requestId"}
    missing = await http.post(f"{og.url}/v2/alerts", json=body)
    assert missing.status_code == 401
    malformed = await http.post(f"{og.url}/v2/alerts", json=body, headers=genie("not-a-key"))
    assert malformed.status_code == 422
    assert malformed.json()["message"] == "Key format is not valid!"
    assert og.alerts == {}
    assert len(og.violations) == 3
    assert len(og.requests) == 3


async def test_og_account_key_is_forbidden(http: httpx.AsyncClient) -> None:
    account_key = "11111111-1111-4111-8111-111111111111"
    async with FakeOpsgenie(account_keys=[account_key]) as og:
        response = await http.post(
            f"{og.url}/v2/alerts", json={"message": "x"}, headers=genie(account_key)
        )
        assert response.status_code == 403
        assert response.json()["code"] == 40301


async def test_og_create_dedup_and_close_by_alias(
    og: FakeOpsgenie, http: httpx.AsyncClient
) -> None:
    create = {
        "message": "OpenAI API: elevated errors",
        "alias": "openai-outage",
        "description": "Error rate 40% on chat completions",
        "responders": [{"type": "team", "name": "oncall"}],
        "visibleTo": [{"type": "user", "username": "ops@example.com"}],
        "actions": ["Ack in Slack"],
        "tags": ["openai", "outage"],
        "details": {"provider": "openai", "error_rate": "0.4"},
        "entity": "openai",
        "source": "tocsin",
        "priority": "P1",
        "user": "tocsin",
        "note": "first seen by probe",
    }
    first = await http.post(og.alerts_url, json=create, headers=genie())
    assert first.status_code == 202
    body = first.json()
    assert body["result"] == "Request will be processed"
    assert isinstance(body["took"], float)
    assert len(body["requestId"]) == 36
    assert first.headers["X-Request-ID"] == body["requestId"]
    assert og.violations == []
    assert og.ignored_fields == []

    assert (await http.post(og.alerts_url, json=create, headers=genie())).status_code == 202
    alert = og.alerts["openai-outage"]
    assert (alert.status, alert.count, alert.priority) == ("open", 2, "P1")
    assert len(og.alert_history) == 1
    assert len(alert.creates) == 2

    close = await http.post(
        f"{og.url}/v2/alerts/openai-outage/close",
        params={"identifierType": "alias"},
        json={"user": "tocsin", "source": "tocsin", "note": "recovered"},
        headers=genie(),
    )
    assert close.status_code == 202
    assert close.json()["result"] == "Request will be processed"
    assert alert.status == "closed"
    assert og.open_alerts() == []
    method, path, query, sent = og.requests[-1]
    assert (method, path, query) == (
        "POST",
        "/v2/alerts/openai-outage/close",
        {"identifierType": "alias"},
    )
    assert sent == {"user": "tocsin", "source": "tocsin", "note": "recovered"}
    assert alert.requests[-1] == og.requests[-1]

    reopened = await http.post(og.alerts_url, json=create, headers=genie())
    assert reopened.status_code == 202
    assert og.alerts["openai-outage"] is not alert
    assert og.alerts["openai-outage"].count == 1
    assert len(og.alert_history) == 2


async def test_og_close_by_id_tiny_and_unknown(og: FakeOpsgenie, http: httpx.AsyncClient) -> None:
    for message in ("a", "b"):
        await http.post(og.alerts_url, json={"message": message}, headers=genie())
    a, b = og.alert_history
    assert a.alias == a.id  # Opsgenie gives an alert without alias its id as alias
    by_id = await http.post(f"{og.alerts_url}/{a.id}/close", headers=genie())  # no body
    by_tiny = await http.post(
        f"{og.alerts_url}/{b.tiny_id}/close", params={"identifierType": "tiny"}, headers=genie()
    )
    assert by_id.status_code == by_tiny.status_code == 202
    assert a.status == b.status == "closed"

    unknown = await http.post(
        f"{og.alerts_url}/nope/close", params={"identifierType": "alias"}, headers=genie()
    )
    assert unknown.status_code == 202  # asynchronous: Opsgenie accepts, then finds nothing
    assert len(og.unmatched) == 1
    assert og.violations == []

    bad_type = await http.post(
        f"{og.alerts_url}/x/close", params={"identifierType": "name"}, headers=genie()
    )
    assert bad_type.status_code == 422
    assert "identifierType" in bad_type.json()["errors"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"message": "m" * 131}, "message"),
        ({"description": "no message"}, "message"),
        ({"message": "x", "alias": "a" * 513}, "alias"),
        ({"message": "x", "tags": [f"t{i}" for i in range(21)]}, "tags"),
        ({"message": "x", "tags": ["t" * 51]}, "tags"),
        ({"message": "x", "actions": [f"a{i}" for i in range(11)]}, "actions"),
        ({"message": "x", "details": {"rate": 0.4}}, "details"),
        ({"message": "x", "priority": "P0"}, "priority"),
        ({"message": "x", "source": "s" * 101}, "source"),
        ({"message": "x", "responders": [{"type": "squad", "name": "x"}]}, "responders[0]#type"),
    ],
)
async def test_og_invalid_create_is_422(
    og: FakeOpsgenie, http: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    response = await http.post(og.alerts_url, json=body, headers=genie())
    assert response.status_code == 422
    answer = response.json()
    assert answer["message"] == "Request body is not processable. Please check the errors."
    assert field in answer["errors"]
    assert og.violations
    assert og.alerts == {}


async def test_og_bad_json_unknown_fields_and_failures(
    og: FakeOpsgenie, http: httpx.AsyncClient
) -> None:
    bad = await http.post(
        og.alerts_url,
        content=b"{not json",
        headers={**genie(), "Content-Type": "application/json"},
    )
    assert bad.status_code == 400

    extra = await http.post(og.alerts_url, json={"message": "x", "severity": 1}, headers=genie())
    assert extra.status_code == 202
    assert og.ignored_fields == ["POST /v2/alerts: severity"]

    og.fail(429, retry_after=1.5)
    og.fail(503)
    throttled = await http.post(og.alerts_url, json={"message": "y"}, headers=genie())
    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "1.5"
    assert set(throttled.json()) == {"message", "took", "requestId"}
    unavailable = await http.post(og.alerts_url, json={"message": "y"}, headers=genie())
    assert unavailable.status_code == 503
    assert (await http.post(og.alerts_url, json={"message": "y"}, headers=genie())).is_success
    assert len(og.requests) == 5
    assert len(og.alert_history) == 2


# ------------------------------------------------------------------- WebhookReceiver


async def test_webhook_signed_delivery_is_accepted(http: httpx.AsyncClient) -> None:
    async with WebhookReceiver(SECRET) as hook:
        assert hook.url.endswith("/hook")
        body = json.dumps({"event": "incident.opened", "provider": "openai"}).encode()
        headers = {
            **sign_webhook(SECRET, body),
            IDEMPOTENCY_HEADER: "evt-1",
            "Content-Type": "application/json",
        }
        response = await http.post(hook.url, content=body, headers=headers)

        assert response.status_code == 200
        (got,) = hook.received
        assert got.signature_ok is True
        assert got.reason is None
        assert got.body == body
        assert got.json == {"event": "incident.opened", "provider": "openai"}
        assert got.idempotency_key == "evt-1"
        assert got.headers[IDEMPOTENCY_HEADER] == "evt-1"
        assert hook.rejected == 0
        assert hook.accepted == [got]


async def test_webhook_forged_missing_and_stale_are_rejected(http: httpx.AsyncClient) -> None:
    async with WebhookReceiver(SECRET) as hook:
        body = b'{"event":"incident.resolved"}'
        now = int(time.time())
        forged = sign_webhook("not-the-secret", body)
        tampered = {**sign_webhook(SECRET, body), SIGNATURE_HEADER: "v1=" + "0" * 64}
        stale = sign_webhook(SECRET, body, timestamp=now - 301)
        future = sign_webhook(SECRET, body, timestamp=now + 400)
        upper = {TIMESTAMP_HEADER: str(now)}
        upper[SIGNATURE_HEADER] = webhook_signature(SECRET, str(now), body).upper()
        unsigned: dict[str, str] = {}
        cases = [forged, tampered, stale, future, upper, unsigned]
        for headers in cases:
            response = await http.post(hook.url, content=body, headers=headers)
            assert response.status_code == 401, headers
        assert hook.rejected == len(cases)
        assert all(h.signature_ok is False for h in hook.received)
        reasons = [h.reason or "" for h in hook.received]
        assert "signature does not match" in reasons[0]
        assert "off" in reasons[2]
        assert "off" in reasons[3]
        assert "no X-Tocsin-Timestamp" in reasons[5]

        # A body changed after signing fails too.
        headers = sign_webhook(SECRET, body)
        assert (await http.post(hook.url, content=body + b" ", headers=headers)).status_code == 401
        assert (await http.post(hook.url, content=body, headers=headers)).status_code == 200


async def test_webhook_without_secret_and_failures(http: httpx.AsyncClient) -> None:
    async with WebhookReceiver(None, ok_status=204) as hook:
        hook.fail(503, retry_after=3)
        hook.fail(502, html=True)
        first = await http.post(hook.url, json={"n": 1})
        second = await http.post(hook.url, json={"n": 1})
        third = await http.post(hook.url, json={"n": 1})
        assert (first.status_code, first.headers["Retry-After"]) == (503, "3")
        assert second.status_code == 502
        assert "Bad Gateway" in second.text
        assert third.status_code == 204
        await hook.wait_for(lambda: len(hook.accepted) == 1, timeout=1)
        assert [h.status for h in hook.received] == [503, 502, 204]
        assert all(h.signature_ok is None for h in hook.received)
        assert len(hook.attempts) == 3
        assert hook.rejected == 0
