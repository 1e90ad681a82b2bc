"""Teams end to end, against the local fake webhook (tests/fakes/teams.py) over real sockets:
the real dispatcher delivers each notice as one Adaptive Card the fake checks as Teams would;
hostile text is shown as text; 429, 5xx and Teams' "200 with an error inside" are retried; a
card refused for its content goes again without its optional parts; the URL is never shown."""

from __future__ import annotations

import asyncio
import io
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.dispatcher import Dispatcher, DispatcherSettings, Outcome
from bot.logs import configure
from bot.models import Event, EventIncident, Status, utcnow
from bot.notice_context import NoticeContext
from bot.store import MemoryStore
from config.loader import build_config
from config.schema import TocsinConfig
from handlers import build_targets
from handlers.chat import digest
from tests.fakes.teams import FakeTeams
from tests.test_cli import atocsin, tocsin, write_config

KEY = "teams:ops"


@pytest.fixture
async def teams() -> AsyncIterator[FakeTeams]:
    fake = await FakeTeams().start()
    yield fake
    await fake.close()


def _document(url: str, **teams: Any) -> dict[str, Any]:
    return {
        "console": {"enabled": False},
        "server": {"enabled": False},
        "providers": [
            {"id": "acme", "name": "Acme AI", "probe": {"url": "http://127.0.0.1:9/v1/models"}},
            {"id": "zeta", "name": "Zeta AI", "probe": {"url": "http://127.0.0.1:9/v1/zeta"}},
        ],
        "teams": {"webhooks": [{"url": url, "name": "ops"}], **teams},
    }


def _event(**kw: Any) -> Event:
    fields: dict[str, Any] = {
        "type": "state_changed",
        "provider": "acme",
        "component": "api",
        "from_": Status.OPERATIONAL,
        "to": Status.MAJOR_OUTAGE,
        "provider_status": Status.MAJOR_OUTAGE,
        "provider_name": "Acme AI",
        "episode": "acme:ep1",
        "episode_started": utcnow(),
    }
    fields.update(kw)
    return Event(**fields)


async def _deliver(config: TocsinConfig, event: Event) -> tuple[dict[str, Outcome], MemoryStore]:
    store = MemoryStore()
    targets = build_targets(config)
    settings = DispatcherSettings(consumer="t", retry_initial=0.05, retry_max=0.5)
    dispatcher = Dispatcher(store, targets, NoticeContext(config, store), settings)
    try:
        return await dispatcher.deliver_now(event), store
    finally:
        for notifier in {id(t.notifier): t.notifier for t in targets}.values():
            await notifier.close()


def _texts(card: dict[str, Any]) -> list[str]:
    texts = [str(e.get("text", "")) for e in card["body"] if e["type"] == "TextBlock"]
    for element in card["body"]:
        if element["type"] == "FactSet":
            texts += [f"{f['title']}\n{f['value']}" for f in element["facts"]]
    return texts


INCIDENT = EventIncident(
    id="i1", title="Elevated errors", status="investigating", url="https://status.acme.test/i1"
)


async def test_a_notice_arrives_as_one_adaptive_card(teams: FakeTeams) -> None:
    outcomes, _ = await _deliver(build_config(_document(teams.url)), _event(incident=INCIDENT))
    assert outcomes[KEY] == "delivered"
    assert teams.violations == []
    [card] = teams.cards
    title, *rest = card["body"]
    assert "Acme AI: major outage" in title["text"]
    assert title["weight"] == "Bolder"
    assert title["color"] == "attention"
    facts = next(e for e in rest if e["type"] == "FactSet")["facts"]
    assert "Detection" in [f["title"] for f in facts]
    assert card["actions"] == [
        {"type": "Action.OpenUrl", "title": "Elevated errors", "url": INCIDENT.url}
    ]
    assert "tocsin · new · event" in rest[-1]["text"]


async def test_an_update_is_a_new_card_marked_as_a_reply(teams: FakeTeams) -> None:
    config = build_config(_document(teams.url))
    store = MemoryStore()
    targets = build_targets(config)
    settings = DispatcherSettings(consumer="t", retry_initial=0.05, retry_max=0.5)
    dispatcher = Dispatcher(store, targets, NoticeContext(config, store), settings)
    try:
        await dispatcher.deliver_now(_event())
        update = _event(from_=Status.MAJOR_OUTAGE, confirmed=True, detail="confirmed")
        outcomes = await dispatcher.deliver_now(update)
    finally:
        await targets[0].notifier.close()
    assert outcomes[KEY] == "delivered"
    assert len(teams.cards) == 2
    assert not teams.titles()[0].startswith("↳")
    assert teams.titles()[1].startswith("↳ ")


HOSTILE = (
    "<at>everyone</at> [click](javascript:alert(1)) <script>x</script> **b** @here {{DATE(x)}}"
)
#: What Teams would make a link, a mention, a tag, emphasis or a template of.
LIVE = re.compile(r"\]\s*\(|<|(?<!\\)\*\*|@here|\{\{|javascript:", re.IGNORECASE)


async def test_hostile_text_is_neutralised_and_bounded(teams: FakeTeams) -> None:
    incident = EventIncident(
        id="i",
        title=HOSTILE,
        status="investigating",
        update="w " * 50_000,
        url="javascript:alert(1)",
    )
    event = _event(incident=incident, provider_name=HOSTILE, detail="d" * 100_000)
    outcomes, store = await _deliver(build_config(_document(teams.url)), event)
    assert outcomes[KEY] == "delivered"
    assert await store.dead_letters() == []
    assert teams.violations == []
    [call] = [c for c in teams.calls if c.status == 200]
    assert len(json.dumps(call.body)) <= 28 * 1024
    [card] = teams.cards
    assert "click" in card["body"][0]["text"]  # the hostile title is there, as text
    for text in _texts(card):
        assert LIVE.search(text) is None, text
    assert "actions" not in card
    assert "javascript" not in json.dumps(card).replace("j\u2060avascript", "")


@pytest.mark.parametrize(
    "fail",
    [
        pytest.param(lambda fake: fake.fail(429, times=1, retry_after=0.5), id="429"),
        pytest.param(lambda fake: fake.fail(500, times=2), id="500"),
        pytest.param(lambda fake: fake.wrap_error(429, times=1), id="200-wrapping-429"),
    ],
)
async def test_rate_limits_and_outages_are_retried(teams: FakeTeams, fail: Any) -> None:
    fail(teams)
    outcomes, _ = await _deliver(build_config(_document(teams.url)), _event())
    assert outcomes[KEY] == "delivered"
    assert len(teams.cards) == 1
    assert len(teams.calls) >= 2


async def test_retry_after_is_honoured(teams: FakeTeams) -> None:
    teams.fail(429, times=1, retry_after=0.6)
    await _deliver(build_config(_document(teams.url)), _event())
    first, second = teams.calls[0], teams.calls[1]
    assert first.status == 429
    assert second.at - first.at >= 0.59


@pytest.mark.parametrize("wrapped", [False, True], ids=["400", "200-wrapping-413"])
async def test_a_refused_card_lands_degraded(teams: FakeTeams, wrapped: bool) -> None:
    log = io.StringIO()
    configure("info", stream=log)
    if wrapped:
        teams.wrap_error(413, times=1)
    else:
        teams.refuse(times=1)
    outcomes, store = await _deliver(build_config(_document(teams.url)), _event(incident=INCIDENT))
    assert outcomes[KEY] == "delivered"
    assert await store.dead_letters() == []
    [card] = teams.cards
    assert "actions" not in card
    assert not any(e["type"] == "FactSet" for e in card["body"])
    assert "Acme AI: major outage" in card["body"][0]["text"]
    refused = [line for line in log.getvalue().splitlines() if "refused for its content" in line]
    assert len(refused) == 1
    assert "413" in refused[0] if wrapped else "HTTP 400" in refused[0]
    assert teams.signature not in log.getvalue()


@pytest.mark.parametrize("status", [401, 403, 404])
async def test_a_webhook_that_is_gone_is_dead_lettered(teams: FakeTeams, status: int) -> None:
    log = io.StringIO()
    configure("info", stream=log)
    teams.fail(status, times=5)
    outcomes, store = await _deliver(build_config(_document(teams.url)), _event())
    assert outcomes[KEY] == "dead"
    [dead] = await store.dead_letters()
    assert f"HTTP {status}" in dead["error"]
    assert len(teams.calls) == 1
    assert teams.signature not in json.dumps(dead) + log.getvalue()


async def test_network_errors_are_retried_without_the_url(teams: FakeTeams) -> None:
    log = io.StringIO()
    configure("info", stream=log)
    url = teams.url
    await teams.close()  # nothing listens there now
    with pytest.raises(TimeoutError):  # retried until the test stops waiting
        await asyncio.wait_for(_deliver(build_config(_document(url)), _event()), 1.0)
    retried = [line for line in log.getvalue().splitlines() if "retrying" in line]
    assert retried
    assert "ConnectError" in retried[0]
    assert teams.signature not in log.getvalue()


async def test_admin_webhook_hears_only_admin_notices(teams: FakeTeams) -> None:
    config = build_config(_document(teams.url, admin_webhook=teams.url + "&admin=1"))
    outcomes, _ = await _deliver(config, _event())
    admin = f"teams-admin:{digest(teams.url + '&admin=1')}"
    assert outcomes[admin] == "skipped"
    assert outcomes[KEY] == "delivered"


async def test_a_drill_reaches_teams_through_the_cli(teams: FakeTeams, tmp_path: Path) -> None:
    path = write_config(tmp_path, _document(teams.url))
    result = await atocsin("drill", "--config", str(path), cwd=tmp_path)
    assert result.code == 0, result
    assert KEY in result.out
    assert teams.signature not in result.both
    [card] = teams.cards
    assert "tocsin drill" in card["body"][0]["text"]
    assert card["body"][0]["color"] == "accent"


# --------------------------------------------------------------------------- config

SIGNATURE = "s3cr3tSignatureValue0123456789abcdef"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        (f"http://teams.example/workflows/x?sig={SIGNATURE}", "must be https"),
        (f"ftp://teams.example/x?sig={SIGNATURE}", "is not an http(s) URL"),
        (f"https://teams.example/?sig={SIGNATURE}", "has no path"),
    ],
)
def test_validate_refuses_a_bad_teams_url_without_showing_it(
    tmp_path: Path, url: str, says: str
) -> None:
    path = write_config(tmp_path, _document(url))
    result = tocsin("config", "validate", str(path), cwd=tmp_path)
    assert result.code == 2, result
    assert "teams.webhooks[0].url" in result.both
    assert says in result.both
    assert SIGNATURE not in result.both


def test_validate_sums_up_teams_without_the_url(tmp_path: Path) -> None:
    url = f"https://acme.webhook.office.com/webhookb2/x/IncomingWebhook/{SIGNATURE}/y"
    path = write_config(tmp_path, _document(url))
    result = tocsin("config", "validate", str(path), cwd=tmp_path)
    assert result.code == 0, result
    assert "teams webhooks: 1" in result.out
    assert SIGNATURE not in result.both


def test_two_webhooks_with_one_name_are_refused(tmp_path: Path) -> None:
    url = f"https://acme.webhook.office.com/webhookb2/{SIGNATURE}"
    document = _document(url)
    document["teams"]["webhooks"].append({"url": url + "2", "name": "ops"})
    result = tocsin("config", "validate", str(write_config(tmp_path, document)), cwd=tmp_path)
    assert result.code == 2, result
    assert "same name" in result.both
    assert SIGNATURE not in result.both
