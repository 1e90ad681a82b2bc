"""Running incidents from Slack (issue 15), end to end over real sockets: a real tocsin (watcher,
dispatcher, slack-bolt's app) on the real redis-server, the fake Slack, the fake status page.
A notice's root carries its buttons; a click (HTTP mode, signed; Socket Mode, an
``interactive`` envelope) changes the state once and tells only the clicker; ``/tocsin``
subscribes and lists; whatever a payload carries (a forged value, a hostile name, a bad
signature) changes nothing or shows as text. Tests wait on conditions, never fixed times.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from bot.answers import Answers
from bot.app import Runtime
from bot.chatops.actions import ChatOps
from bot.chatops.controls import Controls
from bot.chatops.records import ACKS, SILENCES, SUBSCRIPTIONS, Button, read_button_value
from bot.compose import Notice
from bot.dispatcher import Dispatcher
from bot.models import Status
from bot.notifier import Intent, Target
from bot.store import RedisStore
from config.loader import build_config
from config.schema import TocsinConfig
from handlers import command_frontends, subscription_targets
from handlers.slack.commands import SlackCommands, read_click
from handlers.slack.manifest import manifest
from handlers.slack.render import CONTROLS_BLOCK, notice_message
from tests.fakes.slack import (
    Clicker,
    FakeSlack,
    Interaction,
    Message,
    NoSuchButton,
    attachment_errors,
    signed_request,
    slash_command_body,
)
from tests.fakes.status_server import FakeStatusServer
from tests.redis_server import RedisServer, free_port
from tests.running import Running

pytestmark = pytest.mark.timeout(60)

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
ALL, MAJOR, ADMIN = "C0ALL00001", "C0MAJOR001", "C0ADMIN001"
MODELS, OPENAI_MODELS = "/v1/models", "/openai/models"
LABELS = ["Acknowledge", "Silence 1 h", "Silence 4 h", "Silence until resolved"]
ACTION_IDS = ["tocsin_ack", "tocsin_silence_1h", "tocsin_silence_4h", "tocsin_silence_resolved"]
BROADCAST = re.compile(r"@(channel|here|everyone)\b")
HOSTILE_NAME = "<!channel> @here"


# --------------------------------------------------------------------------- harness


def _config(
    page: FakeStatusServer, slack: FakeSlack, redis: RedisServer, prefix: str, mode: str, port: int
) -> TocsinConfig:
    credentials = {"app_token": slack.app_token} if mode == "socket" else {"signing_secret": SECRET}
    return build_config(
        {
            "store": {"url": redis.url, "prefix": prefix},
            "server": {"enabled": mode == "http", "host": "127.0.0.1", "port": port},
            "instance": f"chatops-{mode}",
            "console": {"enabled": False},
            "watch": {"jitter": "0s", "timeout": "2s"},
            "providers": [
                {
                    "id": "acme",
                    "name": "Acme AI",
                    "probe": {"url": f"{page.url}{MODELS}", "interval": "300ms", "timeout": "1s"},
                },
                {
                    "id": "openai",
                    "name": "OpenAI",
                    "probe": {
                        "url": f"{page.url}{OPENAI_MODELS}",
                        "interval": "300ms",
                        "timeout": "1s",
                    },
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


def _configured(targets: list[Target]) -> dict[str, list[tuple[str, Status]]]:
    """What the config routes to each Slack channel, as ChatOps lists it."""
    found: dict[str, list[tuple[str, Status]]] = {}
    for target in targets:
        if not target.key.startswith("slack:"):
            continue
        providers = target.route.providers
        chosen = ["all"] if providers is None else sorted(providers)
        found[target.key] = [(p, target.route.min_status) for p in chosen]
    return found


def _wire(runtime: Runtime) -> None:
    """The chat's controls on the dispatcher and ChatOps on the Slack app, unless the runtime
    already has them (once ``bot.app`` wires them itself, this changes nothing)."""
    config, store = runtime.config, runtime.store
    dispatcher = runtime.dispatcher
    if dispatcher is not None and dispatcher.controls is None:
        controls = Controls(store, make_target=subscription_targets(config, runtime.targets))
        runtime.dispatcher = Dispatcher(
            store, runtime.targets, dispatcher.context, dispatcher.settings, controls=controls
        )
    slack = [f for f in runtime.frontends if isinstance(f, SlackCommands)]
    if slack and all(f.chatops is None for f in slack):
        chatops = ChatOps(config, store, configured=_configured(runtime.targets))
        answers = Answers(config, store, runtime.probed)
        runtime.frontends = command_frontends(config, answers, chatops=chatops)


async def _until(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.05)


@dataclass
class Live:
    """A running tocsin, its store (read through the store API) and the fake Slack."""

    slack: FakeSlack
    page: FakeStatusServer
    store: RedisStore
    running: Running
    mode: str
    port: int

    @property
    def events_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/slack/events"

    async def outage(self) -> Message:
        """The probe fails: one root in each channel that hears it; the #all one."""
        self.page.set_status(MODELS, 503, b'{"error": "overloaded"}')
        await _until(lambda: len(self.slack.top_level(ALL)) == 1)
        return self.slack.top_level(ALL)[0]

    async def click(
        self, ts: str, action_id: str, clicker: Clicker | None = None, channel: str = ALL
    ) -> Interaction:
        return await self.slack.click(channel, ts, action_id, clicker=clicker, via=self.via)

    @property
    def via(self) -> Any:
        return "socket" if self.mode == "socket" else "http"

    async def answer(self, interaction: Interaction) -> str:
        """What the clicker was told (only them: ephemeral, the original kept)."""
        await _until(lambda: bool(self.slack.answers_to(interaction)), timeout=10)
        [posted] = self.slack.answers_to(interaction)
        assert posted["response_type"] == "ephemeral"
        assert posted["replace_original"] is False
        return str(posted["text"])

    async def tocsin(
        self, text: str, *, channel: str = MAJOR, user: str = "U0TESTUSER1", name: str = "tester"
    ) -> dict[str, Any]:
        """``/tocsin <text>`` typed in ``channel``: the acknowledgement's message."""
        if self.mode == "socket":
            await self.slack.wait_for_connection(timeout=10)
            return await self.slack.slash_command(
                "/tocsin", text, channel_id=channel, user_id=user, user_name=name
            )
        body = slash_command_body("/tocsin", text, channel_id=channel, user_id=user, user_name=name)
        headers = {
            **signed_request(SECRET, body),
            "Content-Type": "application/x-www-form-urlencoded",
        }
        async with httpx.AsyncClient() as client:
            response = await client.post(self.events_url, content=body, headers=headers)
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def events(self, kind: str) -> list[Any]:
        return [e for e in await self.store.recent_events(500) if e.type == kind]


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    fake = await FakeSlack().start()
    for channel, name in ((ALL, "ai-incidents"), (MAJOR, "outages"), (ADMIN, "tocsin-admin")):
        fake.add_channel(channel, name)
    yield fake
    await fake.close()


Launch = Callable[[str], Awaitable[Live]]


@pytest.fixture
async def launch(
    slack: FakeSlack, status_server: FakeStatusServer, redis_server: RedisServer, key_prefix: str
) -> AsyncIterator[Launch]:
    """``await launch(mode)``: a healthy tocsin in that mode, stopped at the test's end (and
    then the fake must have seen no call Slack would refuse)."""
    started: list[Live] = []

    async def go(mode: str) -> Live:
        status_server.set_json(MODELS, {"data": []})
        status_server.set_json(OPENAI_MODELS, {"data": []})
        port = free_port()
        running = Running(_config(status_server, slack, redis_server, key_prefix, mode, port))
        _wire(running.runtime)  # before its task first runs
        store = RedisStore(redis_server.url, prefix=key_prefix)
        await store.open()
        live = Live(slack, status_server, store, running, mode, port)
        started.append(live)
        if mode == "http":
            slack.interactivity(live.events_url, SECRET)
            async with httpx.AsyncClient() as client:
                for _ in range(200):
                    try:
                        await client.get(f"http://127.0.0.1:{port}/healthz")
                        break
                    except httpx.TransportError:
                        await asyncio.sleep(0.05)
        else:
            await slack.wait_for_connection(timeout=10)
        return live

    yield go
    for live in started:
        await live.running.halt()
        await live.store.close()
    assert slack.violations == []


@pytest.fixture
async def live_http(launch: Launch) -> Live:
    return await launch("http")


@pytest.fixture
async def live_socket(launch: Launch) -> Live:
    return await launch("socket")


def _buttons(slack: FakeSlack, ts: str, channel: str = ALL) -> list[dict[str, Any]]:
    return slack.buttons(channel, ts)


def _texts(value: Any) -> list[str]:
    """Every text a Slack message shows or parses: top-level text, fallbacks, text objects."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("text", "fallback") and isinstance(item, str):
                found.append(item)
            else:
                found += _texts(item)
    elif isinstance(value, list):
        for item in value:
            found += _texts(item)
    return found


# ------------------------------------------------------------------ rendering, offline


def _notice(buttons: tuple[Button, ...]) -> Notice:
    return Notice(
        kind="outage",
        status=Status.MAJOR_OUTAGE,
        provider="acme",
        title="Acme AI: major outage",
        text="Errors.",
        event_id="e" * 32,
        buttons=buttons,
    )


def test_a_roots_buttons_are_one_actions_block_slack_takes() -> None:
    value = "acme|acme:ep1"
    buttons = (
        Button("ack", "Acknowledge", value, "primary"),
        Button("silence_1h", "Silence 1 h", value),
        Button("silence_resolved", "Silence until resolved", value, "danger"),
        Button("silence_4h", "L" * 200, value),  # clipped to 75
        Button("unsilence", "Too big", "v" * 2001),  # over Block Kit's limit: left out
        Button("ack", "Twice", value),  # a second ack: action ids are unique in a block
    )
    message = notice_message(_notice(buttons), Intent.OPEN)
    blocks = message["attachments"][0]["blocks"]
    [actions] = [b for b in blocks if b["type"] == "actions"]
    assert actions["block_id"] == CONTROLS_BLOCK
    assert actions["elements"][0] == {
        "type": "button",
        "action_id": "tocsin_ack",
        "text": {"type": "plain_text", "text": "Acknowledge", "emoji": True},
        "value": value,
        "style": "primary",
    }
    assert [e["action_id"] for e in actions["elements"]] == [
        "tocsin_ack",
        "tocsin_silence_1h",
        "tocsin_silence_resolved",
        "tocsin_silence_4h",
    ]
    assert "style" not in actions["elements"][1]
    assert len(actions["elements"][3]["text"]["text"]) == 75
    assert attachment_errors(message["attachments"]) == (None, [])
    bare = notice_message(_notice(()), Intent.OPEN)
    assert all(b["type"] != "actions" for b in bare["attachments"][0]["blocks"])


def test_the_fake_refuses_buttons_slack_would() -> None:
    bad = [
        {
            "blocks": [
                {
                    "type": "actions",
                    "elements": [
                        {
                            "type": "button",
                            "action_id": "a",
                            "text": {"type": "plain_text", "text": "x" * 76},
                        },
                        {
                            "type": "button",
                            "action_id": "a",
                            "text": {"type": "plain_text", "text": "y"},
                        },
                        {
                            "type": "button",
                            "text": {"type": "mrkdwn", "text": "z"},
                            "style": "blue",
                        },
                        {
                            "type": "button",
                            "text": {"type": "plain_text", "text": "v"},
                            "value": "v" * 2001,
                        },
                    ],
                }
            ]
        }
    ]
    problem, errors = attachment_errors(bad)
    assert problem == "invalid_blocks"
    joined = "\n".join(errors)
    assert "elements/0/text/text" in joined
    assert "duplicate action_id" in joined
    assert "elements/2/text/type" in joined
    assert "elements/2/style" in joined
    assert "elements/3/value" in joined


def test_the_manifest_asks_for_the_command_and_interactivity() -> None:
    http = manifest(socket_mode=False, url="https://tocsin.example.com/")
    socket = manifest()
    commands = {c["command"]: c for c in http["features"]["slash_commands"]}
    assert commands["/tocsin"]["url"] == "https://tocsin.example.com/slack/events"
    assert commands["/tocsin"]["usage_hint"].startswith("subscribe <provider>")
    assert len(commands["/tocsin"]["description"]) <= 100
    assert http["settings"]["interactivity"] == {
        "is_enabled": True,
        "request_url": "https://tocsin.example.com/slack/events",
    }
    assert socket["settings"]["interactivity"] == {"is_enabled": True}
    assert {"chat:write", "commands"} <= set(socket["oauth_config"]["scopes"]["bot"])


HOSTILE_BODIES: list[Any] = [
    None,
    [],
    {"actions": "x"},
    {"actions": [{"action_id": "tocsin_ack", "type": "button", "value": 7}]},
    {"actions": [{"action_id": "tocsin_" + "a" * 300, "type": "button", "value": "a|b"}]},
    {"actions": [{"action_id": "tocsin_nuke", "type": "button", "value": "a|b"}]},
    {"actions": [{"action_id": "tocsin_ack", "type": "button", "value": "a|b"}]},  # no channel
    {
        "actions": [{"action_id": "tocsin_ack", "type": "button", "value": "a|b"}],
        "channel": {"id": ["C0ALL00001"]},
    },
    {
        "actions": [{"action_id": "tocsin_ack", "type": "button", "value": "a|b"}],
        "channel": {"id": ALL},
        "user": {"id": "<!channel>"},
    },
]


@pytest.mark.parametrize("body", HOSTILE_BODIES)
def test_a_payload_that_is_not_a_click_is_refused_with_a_reason(body: Any) -> None:
    refused = read_click(body)
    assert isinstance(refused, str)
    assert refused


# --------------------------------------------------------------------------- buttons


async def test_a_root_carries_the_buttons_and_replies_none(live_http: Live) -> None:
    live = live_http
    root = await live.outage()
    assert [b["text"]["text"] for b in _buttons(live.slack, root.ts)] == LABELS
    assert [b["action_id"] for b in _buttons(live.slack, root.ts)] == ACTION_IDS
    [value] = {b["value"] for b in _buttons(live.slack, root.ts)}
    parsed = read_button_value(value)
    assert parsed is not None
    assert parsed[0] == "acme"  # (provider, episode)
    assert _buttons(live.slack, root.ts)[0]["style"] == "primary"
    assert _buttons(live.slack, root.ts)[3]["style"] == "danger"
    await _until(lambda: len(live.slack.top_level(MAJOR)) == 1)
    [major] = live.slack.top_level(MAJOR)
    assert [b["text"]["text"] for b in _buttons(live.slack, major.ts, MAJOR)] == LABELS
    assert live.slack.violations == []  # the blocks passed the fake's Block Kit checks

    live.page.set_json(MODELS, {"data": []})  # recovery: a reply, and the root resolved
    await _until(lambda: len(live.slack.replies(ALL, root.ts)) >= 1)
    await _until(lambda: _buttons(live.slack, root.ts) == [])  # a resolved root: none
    for reply in live.slack.replies(ALL, root.ts):
        assert live.slack.buttons(ALL, reply.ts) == []
    for call in live.slack.calls_to("chat.postMessage"):
        if call.params.get("thread_ts"):
            assert "tocsin_controls" not in json.dumps(call.params)
    with pytest.raises(NoSuchButton):  # a button the message no longer has
        await live.click(root.ts, "tocsin_ack")


async def test_acknowledge_over_http_tells_only_the_clicker(live_http: Live) -> None:
    live = live_http
    root = await live.outage()
    clicked = await live.click(root.ts, "tocsin_ack", Clicker("U0MARIA001", "maria", "maria"))
    assert clicked.status == 200, clicked.body
    answer = await live.answer(clicked)
    assert answer.startswith("Acknowledged")
    acks = await live.store.records(ACKS)
    [(episode, raw)] = acks.items()
    assert json.loads(raw)["by"]["name"] == "maria"
    assert read_button_value(_buttons(live.slack, root.ts)[0]["value"]) == ("acme", episode)
    assert len(await live.events("acknowledged")) == 1
    assert live.slack.ephemerals == []  # the answer went by the response_url


async def test_a_bad_signature_is_a_401_and_changes_nothing(live_http: Live) -> None:
    live = live_http
    root = await live.outage()
    payload = live.slack.block_actions_payload(ALL, root.ts, "tocsin_ack")
    forged = await live.slack.send_interaction(payload, signing_secret="not-the-secret")
    stale = copy.deepcopy(payload)
    assert forged.status == 401
    assert "Traceback" not in forged.body
    unsigned = await _post_unsigned(live.events_url, stale)
    assert unsigned == 401
    assert await live.store.records(ACKS) == {}
    assert await live.events("acknowledged") == []
    assert live.slack.response_url_posts == []


async def _post_unsigned(url: str, payload: dict[str, Any]) -> int:
    async with httpx.AsyncClient() as client:
        answer = await client.post(
            url,
            data={"payload": json.dumps(payload)},
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    return answer.status_code


FORGED_VALUES = ["x|y", "acme|" + "e" * 10_000, "<!channel>", "acme|<!channel>", ""]


async def test_a_forged_value_is_refused_and_nothing_is_stored(live_http: Live) -> None:
    """What Slack would never send (the value is not one tocsin rendered), signed as if it
    had: each is refused to the clicker in words, and no table or stream changes."""
    live = live_http
    root = await live.outage()
    answers = []
    for value in FORGED_VALUES:
        payload = live.slack.block_actions_payload(ALL, root.ts, "tocsin_ack")
        payload["actions"][0]["value"] = value
        sent = await live.slack.send_interaction(payload)
        assert sent.status == 200, sent.body
        answers.append(await live.answer(sent))
    hostiles: list[dict[str, Any]] = [
        {"actions": "x"},
        {"actions": [], "user": None},
        {"channel": 7},
    ]
    for hostile in hostiles:
        payload = live.slack.block_actions_payload(ALL, root.ts, "tocsin_silence_1h")
        payload.update(hostile)
        sent = await live.slack.send_interaction(payload)
        if sent.status == 200:  # acknowledged: the clicker is told why not
            answers.append(await live.answer(sent))
        else:  # not even the shape of a Slack payload: a one-line 400, never a 500
            assert sent.status == 400, sent.body
            assert "Traceback" not in sent.body
            assert live.slack.answers_to(sent) == []
    for answer in answers:
        assert "can't" in answer or "not one of tocsin's" in answer or "does not watch" in answer
        assert "<!channel>" not in answer
    assert await live.store.records(ACKS) == {}
    assert await live.store.records(SILENCES) == {}
    assert await live.events("acknowledged") == []
    assert await live.events("silenced") == []


async def test_a_double_click_acknowledges_once(live_http: Live) -> None:
    live = live_http
    root = await live.outage()
    first = live.slack.block_actions_payload(ALL, root.ts, "tocsin_ack", clicker=Clicker())
    second = live.slack.block_actions_payload(
        ALL, root.ts, "tocsin_ack", clicker=Clicker("U0OTHER001", "sam", "sam")
    )
    sent = await asyncio.gather(
        live.slack.send_interaction(first), live.slack.send_interaction(second)
    )
    assert [s.status for s in sent] == [200, 200]
    answers = sorted([await live.answer(s) for s in sent])
    assert answers[0].startswith("Acknowledged")
    assert answers[1].startswith("Already acknowledged by @")
    assert len(await live.store.records(ACKS)) == 1
    assert len(await live.events("acknowledged")) == 1


async def test_silence_over_socket_mode_is_acked_and_happens_once(live_socket: Live) -> None:
    live = live_socket
    root = await live.outage()
    clicked = await live.click(root.ts, "tocsin_silence_1h")
    assert clicked.ack is not None
    assert not clicked.ack.late
    assert clicked.ack.latency < 3.0
    answer = await live.answer(clicked)
    assert answer.startswith("Silenced Acme AI here for 1h by @tester")
    assert len(await live.events("silenced")) == 1
    assert list(await live.store.records(SILENCES)) == [f"slack:{ALL}|acme"]
    odd_ones: list[dict[str, Any]] = [{"actions": []}, {"actions": [{"action_id": 7}]}, {"user": 7}]
    for odd_one in odd_ones:
        payload = live.slack.block_actions_payload(ALL, root.ts, "tocsin_ack")
        payload.update(odd_one)
        odd = await live.slack.send_interaction(payload, via="socket")
        assert odd.ack is not None  # acknowledged all the same, and nothing changed
    assert len(await live.events("silenced")) == 1
    assert await live.store.records(ACKS) == {}
    listed = await live.tocsin("silences", channel=ALL)
    assert "Acme AI in slack:C0ALL00001 for 1h by @tester" in str(listed["text"])
    assert live.slack.acks
    assert all(not a.late for a in live.slack.acks)


async def test_buttons_answer_not_enabled_without_chatops(
    slack: FakeSlack, status_server: FakeStatusServer, redis_server: RedisServer, key_prefix: str
) -> None:
    """A tocsin built without ChatOps (its Slack app alone) says so, and changes nothing."""
    status_server.set_json(MODELS, {"data": []})
    status_server.set_json(OPENAI_MODELS, {"data": []})
    config = _config(status_server, slack, redis_server, key_prefix, "socket", free_port())
    running = Running(config, role="bot")
    running.runtime.frontends = command_frontends(
        config, Answers(config, running.runtime.store, running.runtime.probed)
    )
    try:
        message = slack.inject_message(ALL, "root")
        message.attachments = [
            {
                "id": 1,
                "blocks": notice_message(
                    _notice((Button("ack", "Acknowledge", "acme|acme:ep1", "primary"),)),
                    Intent.OPEN,
                )["attachments"][0]["blocks"],
            }
        ]
        await slack.wait_for_connection(timeout=10)
        clicked = await slack.click(ALL, message.ts, "tocsin_ack", via="socket")
        await _until(lambda: bool(slack.answers_to(clicked)), timeout=10)
        assert "not enabled" in slack.answers_to(clicked)[0]["text"]
        typed = await slack.slash_command("/tocsin", "subscriptions", channel_id=ALL)
        assert "not enabled" in typed["text"]
    finally:
        await running.halt()
    assert slack.violations == []


# --------------------------------------------------------------------------- /tocsin


async def test_tocsin_subscribe_list_and_unsubscribe(live_http: Live) -> None:
    live = live_http
    subscribed = await live.tocsin("subscribe openai degraded")
    assert subscribed["response_type"] == "ephemeral"
    assert "This channel now hears OpenAI at degraded or worse" in subscribed["text"]
    rows = await live.store.records(SUBSCRIPTIONS)
    assert list(rows) == [f"slack:{MAJOR}|openai"]
    assert json.loads(rows[f"slack:{MAJOR}|openai"])["min_status"] == "degraded"

    listed = await live.tocsin("subscriptions")
    assert "Acme AI: major_outage or worse (from the config)" in listed["text"]
    assert "OpenAI: degraded or worse (by @tester)" in listed["text"]

    refused = await live.tocsin("unsubscribe acme")
    assert "from the config" in refused["text"]
    assert "cannot be removed from the chat" in refused["text"]
    gone = await live.tocsin("unsubscribe openai")
    assert gone["text"].startswith("Unsubscribed from OpenAI")
    assert await live.store.records(SUBSCRIPTIONS) == {}
    helped = await live.tocsin("")
    assert "/tocsin subscribe &lt;provider&gt;" in helped["text"]


@pytest.mark.parametrize(
    "typed",
    [
        "subscribe <!channel> @everyone <script>",
        "subscribe openai <!channel>",
        "subscribe openai degraded <@U0ATTACKER>",
        "unsubscribe <!here>",
    ],
)
async def test_tocsin_quotes_hostile_text_harmlessly(live_http: Live, typed: str) -> None:
    answer = await live_http.tocsin(typed, name=HOSTILE_NAME)
    text = str(answer["text"])
    assert "<!" not in text
    assert "<@" not in text
    assert "<script" not in text
    assert BROADCAST.search(text) is None
    assert answer["response_type"] == "ephemeral"
    assert await live_http.store.records(SUBSCRIPTIONS) == {}


# --------------------------------------------------------------------------- end to end


async def test_acknowledge_edits_the_root_and_replies_in_the_thread(live_http: Live) -> None:
    live = live_http
    root = await live.outage()
    clicked = await live.click(root.ts, "tocsin_ack", Clicker("U0MARIA001", "maria", "maria"))
    assert (await live.answer(clicked)).startswith("Acknowledged")
    await _until(
        lambda: "tocsin_ack" not in [b["action_id"] for b in _buttons(live.slack, root.ts)]
    )
    edited = live.slack.message(ALL, root.ts)
    assert "Acknowledged" in json.dumps(edited.attachments)
    assert [b["action_id"] for b in _buttons(live.slack, root.ts)] == ACTION_IDS[1:]
    await _until(lambda: bool(live.slack.replies(ALL, root.ts)))
    [reply] = live.slack.replies(ALL, root.ts)
    assert "Acknowledged by @maria" in reply.text
    assert live.slack.buttons(ALL, reply.ts) == []


async def test_a_hostile_display_name_shows_escaped_wherever_it_is_echoed(
    live_http: Live,
) -> None:
    live = live_http
    root = await live.outage()
    calls_before = len(live.slack.calls)
    hostile = Clicker("U0HOSTILE1", HOSTILE_NAME, HOSTILE_NAME)
    first = await live.click(root.ts, "tocsin_ack", hostile)
    assert (await live.answer(first)).startswith("Acknowledged")
    # the answer to a second clicker echoes the name
    payload = live.slack.block_actions_payload(ALL, root.ts, "tocsin_silence_1h", clicker=hostile)
    payload["actions"][0]["action_id"] = "tocsin_ack"
    again = await live.slack.send_interaction(payload)
    echoed = await live.answer(again)
    assert "&lt;!channel&gt;" in echoed
    assert "<!channel>" not in echoed
    assert BROADCAST.search(echoed) is None
    silenced = await live.click(root.ts, "tocsin_silence_1h", hostile)
    told = await live.answer(silenced)
    assert "&lt;!channel&gt;" in told
    assert BROADCAST.search(told) is None
    await _until(lambda: len(live.slack.replies(ALL, root.ts)) >= 2)
    await _until(
        lambda: "Silenced here" in json.dumps(live.slack.message(ALL, root.ts).attachments)
    )
    for call in live.slack.calls[calls_before:]:
        if call.method not in ("chat.postMessage", "chat.update"):
            continue
        for text in _texts({k: call.params.get(k) for k in ("text", "attachments", "blocks")}):
            assert "<!channel>" not in text, text
            if call.params.get("channel") != MAJOR:
                assert "<!here>" not in text, text
            assert BROADCAST.search(text) is None, text
    assert "&lt;!channel&gt;" in json.dumps(live.slack.message(ALL, root.ts).attachments)
