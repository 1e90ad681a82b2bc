"""Slack end to end, against the local fake Slack over real sockets: a fake status page flips to
an outage → exactly one root message; updates → thread replies and a root edit; recovery → a
final reply and the root edited to resolved; a restart in the middle changes none of it. In
both connection modes, with /status and /fallback answered along the way."""

from __future__ import annotations

import asyncio
import copy
import io
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from bot.app import assemble, run
from bot.dispatcher import Dispatcher, DispatcherSettings, Outcome
from bot.logs import configure
from bot.models import Event, EventIncident, Status, utcnow
from bot.notice_context import NoticeContext
from bot.store import MemoryStore
from config.loader import build_config
from config.schema import TocsinConfig
from handlers import build_targets
from handlers.slack.render import METADATA_TYPE
from tests.fakes.slack import FakeSlack, Message, signed_request, slash_command_body
from tests.fakes.status_server import FakeStatusServer, fixture_json
from tests.redis_server import RedisServer, free_port
from tests.running import Running

API = "k8w3r06qmzrp"
SUMMARY = "/api/v2/summary.json"
MODELS = "/v1/models"
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
ALL, MAJOR, ADMIN = "C0ALL00001", "C0MAJOR001", "C0ADMIN001"


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    fake = await FakeSlack().start()
    for channel, name in ((ALL, "ai-incidents"), (MAJOR, "outages"), (ADMIN, "tocsin-admin")):
        fake.add_channel(channel, name)
    yield fake
    await fake.close()


def _config(
    page: FakeStatusServer, slack: FakeSlack, *, mode: str, store: dict[str, Any], port: int = 0
) -> TocsinConfig:
    credentials = {"app_token": slack.app_token} if mode == "socket" else {"signing_secret": SECRET}
    return build_config(
        {
            "store": store,
            "server": {"enabled": mode == "http", "port": port or free_port()},
            "instance": f"slack-{mode}",
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
                    "probe": {"url": f"{page.url}{MODELS}", "interval": "300ms", "timeout": "1s"},
                    "fallbacks": ["zeta"],
                    "litellm_model": "acme/large",
                    "openrouter_model": "acme/large",
                },
                {
                    "id": "zeta",
                    "name": "Zeta AI",
                    "probe": {
                        "url": f"{page.url}/zeta/models",
                        "interval": "300ms",
                        "timeout": "1s",
                    },
                    "litellm_model": "zeta/large",
                    "openrouter_model": "zeta/large",
                },
            ],
            "slack": {
                "api_url": slack.api_url,
                "bot_token": slack.bot_token,
                **credentials,
                "admin_channel": ADMIN,
                "channels": [
                    {"id": ALL, "providers": "all", "min_status": "degraded"},
                    {
                        "id": MAJOR,
                        "providers": ["acme"],
                        "min_status": "major_outage",
                        "mention": "here",
                    },
                ],
            },
        }
    )


def _outage(status: str, updates: int) -> dict[str, Any]:
    payload = copy.deepcopy(fixture_json("statuspage_summary_anthropic_minor_monitoring.json"))
    incident = payload["incidents"][0]
    incident["components"][0]["id"] = API
    incident["status"] = status
    incident["incident_updates"] = incident["incident_updates"][-updates:]
    for component in payload["components"]:
        if component["id"] == API:
            component["status"] = "major_outage"
    return payload


async def _until(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.05)


class Asker:
    """Types slash commands the way the configured mode receives them."""

    def __init__(self, slack: FakeSlack, mode: str, port: int) -> None:
        self.slack, self.mode, self.port = slack, mode, port

    async def __call__(self, command: str, text: str = "") -> dict[str, Any]:
        if self.mode == "socket":
            await self.slack.wait_for_connection(timeout=10)
            return await self.slack.slash_command(command, text, channel_id=ALL, timeout=3.0)
        body = slash_command_body(command, text, channel_id=ALL)
        headers = {
            **signed_request(SECRET, body),
            "Content-Type": "application/x-www-form-urlencoded",
        }
        async with httpx.AsyncClient() as client:
            response = await client.post(
                f"http://127.0.0.1:{self.port}/slack/events",
                content=body,
                headers=headers,
                timeout=3.0,
            )
        assert response.status_code == 200, response.text
        return dict(response.json())


def _header(message: Message) -> str:
    blocks = message.attachments[0]["blocks"] if message.attachments else message.blocks or []
    return str(blocks[0]["text"]["text"])


def _text(answer: dict[str, Any]) -> str:
    return str(answer.get("text", "")) + "\n" + str(answer.get("blocks", ""))


@pytest.mark.parametrize("mode", ["socket", "http"])
async def test_outage_update_recovery_in_threads_with_commands(
    mode: str,
    slack: FakeSlack,
    status_server: FakeStatusServer,
    redis_server: RedisServer,
    key_prefix: str,
) -> None:
    status_server.set_fixture(SUMMARY, "statuspage_summary_anthropic_operational.json")
    status_server.set_json(MODELS, {"data": []})
    status_server.set_json("/zeta/models", {"data": []})
    port = free_port()
    config = _config(
        status_server,
        slack,
        mode=mode,
        store={"url": redis_server.url, "prefix": key_prefix},
        port=port,
    )
    ask = Asker(slack, mode, port)
    first = Running(config)
    await asyncio.sleep(1.2)
    assert slack.top_level(ALL) == []

    healthy = await ask("/status")
    assert healthy["response_type"] == "ephemeral"
    assert "All watched providers are operational" in _text(healthy)

    status_server.set_status(MODELS, 503, b'{"error": "overloaded"}')
    await _until(lambda: len(slack.top_level(ALL)) == 1 and len(slack.top_level(MAJOR)) == 1)
    root = slack.top_level(ALL)[0]
    assert _header(root) == "🔴 Acme AI: major outage (suspected)"
    assert root.metadata is not None
    assert root.metadata["event_type"] == METADATA_TYPE
    assert "Zeta AI" in str(root.attachments)  # what to fall back to
    assert slack.top_level(MAJOR)[0].text.startswith("<!here>")
    assert "<!here>" not in root.text

    status = await ask("/status")
    assert "Acme AI" in _text(status)
    assert "major outage (suspected)" in _text(status)
    fallback = await ask("/fallback", "acme")
    assert "Zeta AI" in _text(fallback)
    assert '"models": ["acme/large", "zeta/large"]' in _text(fallback)
    unknown = await ask("/status", "acmee")
    assert unknown["response_type"] == "ephemeral"
    assert "Did you mean `acme`?" in _text(unknown)

    status_server.set_json(SUMMARY, _outage("investigating", 1))
    await _until(lambda: len(slack.replies(ALL, root.ts)) == 1)
    confirmed = slack.replies(ALL, root.ts)[0]
    assert "confirmed by the status page" in confirmed.text
    await _until(
        lambda: _header(slack.message(ALL, root.ts)) == "🔴 Acme AI: major outage (confirmed)"
    )

    await first.halt()  # a restart in the middle of the outage
    second = Running(config)
    await asyncio.sleep(1.2)
    assert len(slack.top_level(ALL)) == 1
    assert len(slack.replies(ALL, root.ts)) == 1

    status_server.set_json(SUMMARY, _outage("identified", 3))
    await _until(lambda: len(slack.replies(ALL, root.ts)) == 2)
    assert "We've identified the cause" in slack.replies(ALL, root.ts)[1].text

    status_server.set_json(MODELS, {"data": []})
    await asyncio.sleep(1.0)  # probes recover first; the page still reports the outage
    assert len(slack.replies(ALL, root.ts)) == 2
    status_server.set_fixture(SUMMARY, "statuspage_summary_anthropic_operational.json")
    await _until(lambda: len(slack.replies(ALL, root.ts)) == 3)
    recovered = slack.replies(ALL, root.ts)[2]
    assert "Acme AI: recovered" in recovered.text
    await _until(
        lambda: _header(slack.message(ALL, root.ts)).startswith("✅ Resolved: Acme AI (lasted")
    )
    await asyncio.sleep(0.6)
    after = await ask("/status", "acme")
    await second.halt()

    assert "Uptime (24 h)" in _text(after)
    for channel in (ALL, MAJOR):
        assert len(slack.top_level(channel)) == 1
    assert len(slack.replies(ALL, root.ts)) == 3
    major_root = slack.top_level(MAJOR)[0]
    assert _header(slack.message(MAJOR, major_root.ts)).startswith("✅ Resolved")
    assert slack.violations == []
    ids = [m.metadata["event_payload"]["event_id"] for m in slack.messages(ALL) if m.metadata]
    assert len(ids) == len(set(ids)) == 4


async def test_http_mode_rejects_forged_and_stale_requests(
    slack: FakeSlack, status_server: FakeStatusServer
) -> None:
    port = free_port()
    config = _config(status_server, slack, mode="http", store={}, port=port)
    runtime = assemble(config, "bot", store=MemoryStore(), env={})
    stop = asyncio.Event()
    task = asyncio.create_task(run(runtime, stop))
    url = f"http://127.0.0.1:{port}/slack/events"
    body = slash_command_body("/status", "", channel_id=ALL)
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    try:
        async with httpx.AsyncClient() as client:
            await _until_listening(client, port)
            good = await client.post(
                url, content=body, headers={**signed_request(SECRET, body), **form}
            )
            forged = await client.post(
                url, content=body, headers={**signed_request("not-the-secret", body), **form}
            )
            stale = await client.post(
                url,
                content=body,
                headers={**signed_request(SECRET, body, int(time.time()) - 600), **form},
            )
            unsigned = await client.post(url, content=body, headers=form)
            tampered = await client.post(
                url,
                content=body.replace("status", "fallback"),
                headers={**signed_request(SECRET, body), **form},
            )
    finally:
        stop.set()
        await task
    assert good.status_code == 200
    assert "AI provider status" in good.text
    for refused in (forged, stale, unsigned, tampered):
        assert refused.status_code == 401, refused.text
        assert "AI provider status" not in refused.text


async def _until_listening(client: httpx.AsyncClient, port: int) -> None:
    for _ in range(100):
        try:
            await client.get(f"http://127.0.0.1:{port}/healthz")
            return
        except httpx.TransportError:
            await asyncio.sleep(0.05)
    raise AssertionError("server did not start")


async def test_socket_mode_acks_every_command_within_three_seconds(
    slack: FakeSlack, status_server: FakeStatusServer
) -> None:
    config = _config(status_server, slack, mode="socket", store={})
    runtime = assemble(config, "bot", store=MemoryStore(), env={})
    stop = asyncio.Event()
    task = asyncio.create_task(run(runtime, stop))
    try:
        await slack.wait_for_connection(timeout=10)
        answers = [
            await slack.slash_command("/status", text, channel_id=ALL)
            for text in ("", "acme", "help", "nothing-like-it")
        ] + [
            await slack.slash_command("/fallback", text, channel_id=ALL)
            for text in ("", "zeta", "help")
        ]
    finally:
        stop.set()
        await task
    assert len(slack.acks) == 7
    assert all(ack.latency < 3.0 and not ack.late for ack in slack.acks)
    assert all(a["response_type"] == "ephemeral" for a in answers)
    assert "Watched: `acme`, `zeta`" in _text(answers[3])
    assert "/fallback &lt;provider&gt;" in _text(answers[2])  # mrkdwn escapes <
    assert "no fallback needed" in _text(answers[4])
    assert slack.violations == []


# --------------------------------------------------------------------------- delivery


def _event(**kw: Any) -> Event:
    return Event(
        type="state_changed",
        provider="acme",
        component=API,
        from_=Status.OPERATIONAL,
        to=Status.MAJOR_OUTAGE,
        provider_status=Status.MAJOR_OUTAGE,
        provider_name="Acme AI",
        episode="acme:ep1",
        episode_started=utcnow(),
        **kw,
    )


async def _deliver(
    slack: FakeSlack, config: TocsinConfig, event: Event
) -> tuple[dict[str, Outcome], MemoryStore]:
    store = MemoryStore()
    targets = build_targets(config)
    settings = DispatcherSettings(consumer="t", retry_initial=0.05, retry_max=0.5)
    dispatcher = Dispatcher(store, targets, NoticeContext(config, store), settings)
    try:
        return await dispatcher.deliver_now(event), store
    finally:
        for notifier in {id(t.notifier): t.notifier for t in targets}.values():
            await notifier.close()


def _slack_only(slack: FakeSlack, status_server: FakeStatusServer) -> TocsinConfig:
    return _config(status_server, slack, mode="socket", store={})


async def test_retry_after_is_honoured(slack: FakeSlack, status_server: FakeStatusServer) -> None:
    slack.rate_limit("chat.postMessage", times=1, retry_after=1)
    outcomes, _ = await _deliver(slack, _slack_only(slack, status_server), _event())
    assert set(outcomes.values()) == {"delivered", "skipped"}  # the admin channel skips it
    posts = slack.calls_to("chat.postMessage")
    limited = [c for c in posts if c.status == 429]
    assert len(limited) == 1
    retried = [
        c
        for c in posts
        if c.at > limited[0].at and c.params.get("channel") == limited[0].params.get("channel")
    ]
    assert retried
    assert retried[0].at - limited[0].at >= 0.99
    assert slack.violations == []


async def test_5xx_and_network_errors_are_retried(
    slack: FakeSlack, status_server: FakeStatusServer
) -> None:
    slack.fail("chat.postMessage", times=3, status=503)
    outcomes, _ = await _deliver(slack, _slack_only(slack, status_server), _event())
    assert outcomes[f"slack:{ALL}"] == "delivered"
    assert outcomes[f"slack:{MAJOR}"] == "delivered"
    assert len(slack.top_level(ALL)) == len(slack.top_level(MAJOR)) == 1


@pytest.mark.parametrize("error", ["channel_not_found", "not_in_channel", "is_archived"])
async def test_a_channel_that_cannot_take_notices_is_dead_lettered_alone(
    error: str,
    slack: FakeSlack,
    status_server: FakeStatusServer,
) -> None:
    log = io.StringIO()
    configure("info", stream=log)
    slack.channel_error(MAJOR, error)
    outcomes, store = await _deliver(slack, _slack_only(slack, status_server), _event())
    assert outcomes[f"slack:{MAJOR}"] == "dead"
    assert outcomes[f"slack:{ALL}"] == "delivered"
    assert len(slack.top_level(ALL)) == 1
    [dead] = await store.dead_letters()
    assert dead["target"] == f"slack:{MAJOR}"
    assert error in dead["error"]
    lines = [line for line in log.getvalue().splitlines() if "dead-lettered" in line]
    assert len(lines) == 1
    assert error in lines[0]
    assert (
        len([c for c in slack.calls_to("chat.postMessage") if c.params.get("channel") == MAJOR])
        == 1
    )


async def test_a_revoked_token_is_dead_lettered_not_retried_forever(
    slack: FakeSlack, status_server: FakeStatusServer
) -> None:
    slack.revoke_token()
    outcomes, store = await _deliver(slack, _slack_only(slack, status_server), _event())
    assert outcomes[f"slack:{ALL}"] == "dead"
    assert {d["error"].split(": ")[-1] for d in await store.dead_letters()} == {"invalid_auth"}


async def test_a_huge_notice_stays_within_slack_limits(
    slack: FakeSlack, status_server: FakeStatusServer
) -> None:
    incident = EventIncident(
        id="i",
        title="T" * 500,
        status="investigating",
        update="word " * 20_000,
        url="https://x/" + "y" * 3000,
    )
    outcomes, _ = await _deliver(
        slack, _slack_only(slack, status_server), _event(incident=incident, detail="d" * 10_000)
    )
    assert outcomes[f"slack:{ALL}"] == "delivered"
    assert slack.violations == []


async def test_drill_reaches_every_slack_channel(
    slack: FakeSlack, status_server: FakeStatusServer
) -> None:
    outcomes, _ = await _deliver(
        slack, _slack_only(slack, status_server), Event(type="drill", provider="tocsin")
    )
    assert set(outcomes.values()) == {"delivered"}
    for channel in (ALL, MAJOR, ADMIN):
        [message] = slack.top_level(channel)
        assert "tocsin drill" in _header(message)
    assert slack.violations == []


def test_slack_targets_need_a_bot_token() -> None:
    provider = {"id": "acme", "name": "A", "probe": {"url": "http://127.0.0.1:9/"}}
    config = build_config({"providers": [provider], "slack": {"channels": [{"id": "C1"}]}})
    assert [t.key for t in build_targets(config)] == ["console"]


async def test_commands_answer_without_reaching_slacks_web_api(
    status_server: FakeStatusServer,
) -> None:
    """Answers come from the store: even with Slack's Web API unreachable, HTTP mode answers."""
    port = free_port()
    config = build_config(
        {
            "server": {"port": port},
            "console": {"enabled": False},
            "providers": [
                {"id": "acme", "name": "Acme AI", "probe": {"url": f"{status_server.url}/m"}}
            ],
            "slack": {
                "api_url": "http://127.0.0.1:9/api/",
                "bot_token": "xoxb-unreachable",
                "signing_secret": SECRET,
            },
        }
    )
    runtime = assemble(config, "bot", store=MemoryStore(), env={})
    stop = asyncio.Event()
    task = asyncio.create_task(run(runtime, stop))
    body = slash_command_body("/status", "acme")
    headers = {**signed_request(SECRET, body), "Content-Type": "application/x-www-form-urlencoded"}
    try:
        async with httpx.AsyncClient() as client:
            await _until_listening(client, port)
            response = await client.post(
                f"http://127.0.0.1:{port}/slack/events", content=body, headers=headers
            )
    finally:
        stop.set()
        await task
    assert response.status_code == 200, response.text
    assert "Acme AI" in response.text


# --------------------------------------------------------------------------- hostile text

#: A status page's incident title and component name as an attacker would write them.
HOSTILE_TITLE = "<!channel> Elevated errors <@U0ATTACKER> <https://evil.example|click>"
HOSTILE_COMPONENT = "<!here> Claude API <!subteam^S0ATTACK|team> @channel"
TOKEN = re.compile(r"<[^<>]*>")
BROADCAST = re.compile(r"@(channel|here|everyone)\b")


def _mrkdwn_texts(value: Any) -> list[str]:
    """Every mrkdwn text object's text in a Block Kit structure (each must be verbatim)."""
    found: list[str] = []
    if isinstance(value, dict):
        if value.get("type") == "mrkdwn":
            assert value.get("verbatim") is True, value
            found.append(str(value["text"]))
        for item in value.values():
            found += _mrkdwn_texts(item)
    elif isinstance(value, list):
        for item in value:
            found += _mrkdwn_texts(item)
    return found


def _parsed(payload: dict[str, Any]) -> list[str]:
    """What Slack parses for links and mentions in a message: its top-level ``text``, each
    attachment's ``fallback`` and every mrkdwn object (headers are plain text: never parsed)."""
    texts = [str(payload["text"])] if payload.get("text") else []
    for attachment in payload.get("attachments") or []:
        texts.append(str(attachment.get("fallback", "")))
    return texts + _mrkdwn_texts(payload.get("attachments")) + _mrkdwn_texts(payload.get("blocks"))


def _live_tokens(payload: dict[str, Any]) -> set[str]:
    return {token for text in _parsed(payload) for token in TOKEN.findall(text)}


async def test_hostile_status_page_text_neither_pings_nor_links_in_slack(
    slack: FakeSlack, status_server: FakeStatusServer
) -> None:
    """A page whose incident title and component name carry Slack mentions and a masked link
    goes through the whole pipeline (watcher, tracker, store, dispatcher, notifier): every
    field Slack parses shows them as text, and only the channel's own <!here> is live."""
    page = _outage("investigating", 1)
    page["incidents"][0]["name"] = HOSTILE_TITLE
    for component in page["components"]:
        if component["id"] == API:
            component["name"] = HOSTILE_COMPONENT
    status_server.set_json(SUMMARY, page)
    status_server.set_json(MODELS, {"data": []})
    status_server.set_json("/zeta/models", {"data": []})
    running = Running(_config(status_server, slack, mode="socket", store={}))
    try:
        await _until(lambda: len(slack.top_level(ALL)) == 1 and len(slack.top_level(MAJOR)) == 1)
    finally:
        await running.halt()
    posts = slack.calls_to("chat.postMessage")
    assert posts
    for call in posts:
        payload = call.params
        allowed = {"<!here>"} if payload["channel"] == MAJOR else set()
        links = {t[1:-1].split("|")[0] for t in _live_tokens(payload) if t not in allowed}
        assert links == {"https://stspg.io/sjkw7njwf0mt"}  # the incident's, and no other
        assert payload["parse"] == "none"
        assert payload["link_names"] is False
        text = "\n".join(_parsed(payload))
        assert "&lt;!channel&gt; Elevated errors &lt;@U0ATTACKER&gt;" in text
        assert "&lt;!here&gt; Claude API" in text
        assert BROADCAST.search(text) is None  # no plain @channel for Slack to parse
    major = slack.top_level(MAJOR)[0]
    assert major.text.startswith("<!here> ")
    assert major.text.count("<!") == 1  # the configured mention, and nothing from the page
    assert "<!" not in slack.top_level(ALL)[0].text
    assert slack.violations == []


async def test_a_stored_javascript_url_is_never_a_slack_link(
    slack: FakeSlack, status_server: FakeStatusServer
) -> None:
    """An incident URL read back from the store as a page wrote it: no link is built."""
    incident = EventIncident(
        id="i",
        title="Elevated errors <!channel>",
        status="investigating",
        url='javascript:alert(document.cookie)//" onmouseover="x',
    )
    outcomes, store = await _deliver(
        slack, _slack_only(slack, status_server), _event(incident=incident)
    )
    assert outcomes[f"slack:{ALL}"] == outcomes[f"slack:{MAJOR}"] == "delivered"
    assert await store.dead_letters() == []
    for call in slack.calls_to("chat.postMessage"):
        assert "javascript:" not in "\n".join(_parsed(call.params))
        assert "<!channel>" not in "\n".join(_parsed(call.params))
    assert slack.violations == []


async def test_a_notice_slack_refuses_for_its_content_lands_degraded(
    slack: FakeSlack, status_server: FakeStatusServer
) -> None:
    """Slack answers ``invalid_blocks`` once: the notice goes again without its link, fields
    and fallbacks (one log line says so), and lands; nothing is dead-lettered."""
    log = io.StringIO()
    configure("info", stream=log)
    refusal = {
        "ok": False,
        "error": "invalid_blocks",
        "response_metadata": {"messages": ["[ERROR] invalid url [json-pointer:/blocks/3]"]},
    }
    slack.fail(
        "chat.postMessage",
        times=1,
        status=200,
        body=json.dumps(refusal).encode(),
        content_type="application/json",
    )
    incident = EventIncident(
        id="i", title="Elevated errors", status="investigating", url="https://status.example/i/1"
    )
    outcomes, store = await _deliver(
        slack, _slack_only(slack, status_server), _event(incident=incident)
    )
    assert outcomes[f"slack:{ALL}"] == outcomes[f"slack:{MAJOR}"] == "delivered"
    assert await store.dead_letters() == []
    refused, *rest = slack.calls_to("chat.postMessage")
    [again] = [c for c in rest if c.params["channel"] == refused.params["channel"]]
    assert "Zeta AI" in str(refused.params["attachments"])  # what the first try carried
    assert "https://status.example/i/1" in str(refused.params["attachments"])
    landed = str(again.params["attachments"])
    assert "Acme AI: major outage" in landed
    assert "Zeta AI" not in landed
    assert "status.example" not in landed
    assert "Detection" not in landed  # the fields went too
    assert len(slack.top_level(refused.params["channel"])) == 1
    lines = [line for line in log.getvalue().splitlines() if "refused for its content" in line]
    assert len(lines) == 1
    assert "url, fields, fallbacks" in lines[0]
    assert "invalid_blocks" in lines[0]


async def test_a_notice_refused_again_when_degraded_is_dead_lettered_once(
    slack: FakeSlack, status_server: FakeStatusServer
) -> None:
    slack.channel_error(MAJOR, "msg_too_long", methods=["chat.postMessage"])
    outcomes, store = await _deliver(slack, _slack_only(slack, status_server), _event())
    assert outcomes[f"slack:{MAJOR}"] == "dead"
    assert outcomes[f"slack:{ALL}"] == "delivered"
    [dead] = await store.dead_letters()
    assert "msg_too_long" in dead["error"]
    tries = [c for c in slack.calls_to("chat.postMessage") if c.params.get("channel") == MAJOR]
    assert len(tries) == 2  # the notice, then the notice without its optional parts


HOSTILE_TYPED = [
    "x` <!channel> @everyone [a](https://evil.example) `",
    "`<!channel>`<@U0ATTACKER>[a](https://e.x)`",
]


@pytest.mark.parametrize("mode", ["socket", "http"])
async def test_an_unknown_provider_answer_quotes_hostile_text_harmlessly(
    mode: str, slack: FakeSlack, status_server: FakeStatusServer
) -> None:
    port = free_port()
    running = Running(_config(status_server, slack, mode=mode, store={}, port=port))
    ask = Asker(slack, mode, port)
    try:
        if mode == "http":
            async with httpx.AsyncClient() as client:
                await _until_listening(client, port)
        answers = [await ask("/status", typed) for typed in HOSTILE_TYPED]
        answers.append(await ask("/fallback", HOSTILE_TYPED[1]))
    finally:
        await running.halt()
    for answer in answers:
        parsed = _parsed(answer)
        assert _live_tokens(answer) == set(), parsed
        for text in parsed:
            quoted = re.search(r"called `([^`]*)`\.", text)
            assert quoted is not None, text
            assert len(quoted[1]) <= 40 + 20  # clipped (entities add a few characters)
            assert "\n" not in quoted[1]
            assert BROADCAST.search(text) is None
    assert "&lt;!channel&gt;" in str(answers[1]["text"])
    assert slack.violations == []
