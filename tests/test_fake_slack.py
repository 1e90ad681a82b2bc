"""The fake Slack (tests/fakes/slack.py) behaves like Slack, shown with the real clients:
slack-sdk's ``AsyncWebClient``, ``SocketModeClient`` and ``AsyncWebhookClient``, and slack-bolt's
``AsyncApp`` in both Socket Mode and HTTP mode. Everything stays on 127.0.0.1.

slack-sdk's retry handlers are switched off (``retry_handlers = []``) where they would hide
what Slack answered; one test switches the rate-limit handler back on to show a 429 retried
after ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from tests.fakes.slack import (
    APP_ID,
    BOT_ID,
    BOT_USER_ID,
    TEAM_ID,
    AckTimeout,
    FakeSlack,
    signed_request,
    slash_command_body,
)

pytestmark = pytest.mark.timeout(30)

ALERTS = "C0ALERTS01"
OUTSIDE = "C0OUTSIDE1"
ARCHIVED = "C0ARCHIVE1"
TS = re.compile(r"^\d{10}\.\d{6}$")
SIGNING_SECRET = "8f742231b10e8888abcd99edabcd00d1"


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as server:
        server.add_channel(ALERTS, "ai-alerts")
        server.add_channel(OUTSIDE, "elsewhere", member=False)
        server.add_channel(ARCHIVED, "old-alerts", archived=True)
        yield server


@pytest.fixture
def client(fake: FakeSlack) -> AsyncWebClient:
    web_client = AsyncWebClient(token=fake.bot_token, base_url=fake.api_url, timeout=5)
    web_client.retry_handlers = []  # see what Slack answered, not what the SDK made of it
    return web_client


def notice(event_id: str = "ev-1", title: str = "Anthropic: major outage") -> dict[str, Any]:
    """A message shaped like tocsin's notices: fallback text, a coloured attachment holding
    Block Kit, and message metadata carrying the event id."""
    return {
        "text": f"{title}: elevated error rates on the API",
        "attachments": [
            {
                "color": "#cf222e",
                "fallback": title,
                "blocks": [
                    {"type": "header", "text": {"type": "plain_text", "text": f"🔴 {title}"}},
                    {
                        "type": "section",
                        "text": {"type": "mrkdwn", "text": "Elevated errors on *api*"},
                    },
                    {
                        "type": "section",
                        "fields": [
                            {"type": "mrkdwn", "text": "*Since*\n12:03 UTC"},
                            {"type": "mrkdwn", "text": "*Components*\nAPI, Console"},
                        ],
                    },
                    {"type": "context", "elements": [{"type": "mrkdwn", "text": "tocsin · new"}]},
                ],
            }
        ],
        "metadata": {
            "event_type": "tocsin_notice",
            "event_payload": {"event_id": event_id, "intent": "open"},
        },
    }


async def slack_error(call: Awaitable[Any]) -> SlackApiError:
    with pytest.raises(SlackApiError) as caught:
        await call
    return caught.value


def ts_key(ts: str) -> tuple[int, int]:
    seconds, micros = ts.split(".")
    return int(seconds), int(micros)


# --------------------------------------------------------------------------- auth


async def test_auth_test_answers_per_kind_of_token(fake: FakeSlack, client: AsyncWebClient) -> None:
    answer = await client.auth_test()
    assert answer.data == {
        "ok": True,
        "url": "https://tocsin-test.slack.com/",
        "team": "Tocsin Test",
        "user": "tocsin",
        "team_id": TEAM_ID,
        "user_id": BOT_USER_ID,
        "bot_id": BOT_ID,
        "is_enterprise_install": False,
    }
    anonymous = AsyncWebClient(base_url=fake.api_url)
    assert (await slack_error(anonymous.auth_test())).response["error"] == "not_authed"
    forged = AsyncWebClient(token="xoxb-1-2-nottherealone", base_url=fake.api_url)
    assert (await slack_error(forged.auth_test())).response["error"] == "invalid_auth"
    app_level = AsyncWebClient(token=fake.app_token, base_url=fake.api_url)
    assert (await slack_error(app_level.auth_test())).response["error"] == (
        "not_allowed_token_type"
    )
    fake.revoke_token()
    assert (await slack_error(client.auth_test())).response["error"] == "invalid_auth"
    error = await slack_error(client.chat_postMessage(channel=ALERTS, text="x"))
    assert error.response["error"] == "invalid_auth"
    fake.restore_token()
    assert (await client.auth_test())["ok"]
    assert [c.token for c in fake.calls[:1]] == [fake.bot_token]
    assert fake.violations == []


# ----------------------------------------------------------------------- posting


async def test_post_message_answers_with_the_message_and_increasing_ts(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    posted = await client.chat_postMessage(channel=ALERTS, **notice("ev-1"), unfurl_links=False)
    assert posted["ok"] is True
    assert posted["channel"] == ALERTS
    assert TS.match(posted["ts"])
    message = posted["message"]
    assert message["ts"] == posted["ts"]
    assert message["type"] == "message"
    assert (message["user"], message["bot_id"], message["app_id"]) == (BOT_USER_ID, BOT_ID, APP_ID)
    assert message["text"] == notice()["text"]
    assert message["metadata"] == notice("ev-1")["metadata"]
    attachment = message["attachments"][0]
    assert attachment["color"] == "#cf222e"
    assert attachment["id"] == 1
    assert all(block["block_id"] for block in attachment["blocks"])  # Slack adds block ids
    by_name = await client.chat_postMessage(channel="#ai-alerts", text="plain")
    assert by_name["channel"] == ALERTS  # a name resolves to the id, as on Slack
    more = [(await client.chat_postMessage(channel=ALERTS, text=f"{i}"))["ts"] for i in range(20)]
    stamps = [posted["ts"], by_name["ts"], *more]
    assert stamps == sorted(stamps, key=ts_key)
    assert len(set(stamps)) == len(stamps)
    stored = fake.top_level(ALERTS)
    assert [m.ts for m in stored] == stamps
    assert stored[0].options == {"unfurl_links": False}
    assert stored[0].metadata == notice("ev-1")["metadata"]
    assert fake.calls[0].encoding == "json"
    assert fake.violations == []


async def test_form_encoded_calls_are_understood_too(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    message = notice("ev-form")
    form = {
        "channel": ALERTS,
        "text": message["text"],
        "attachments": json.dumps(message["attachments"]),
        "metadata": json.dumps(message["metadata"]),
    }
    posted = await client.api_call("chat.postMessage", data=form)
    assert posted["message"]["metadata"]["event_payload"]["event_id"] == "ev-form"
    assert fake.calls[-1].encoding == "form"
    assert isinstance(fake.message(ALERTS, posted["ts"]).attachments, list)
    history = await client.conversations_history(channel=ALERTS, limit=1)
    assert history["messages"][0]["ts"] == posted["ts"]
    assert fake.calls[-1].encoding == "query"  # slack-sdk sends readers' arguments as GET
    assert fake.violations == []


async def test_threads_replies_and_broadcasts(fake: FakeSlack, client: AsyncWebClient) -> None:
    root = (await client.chat_postMessage(channel=ALERTS, **notice("ev-1")))["ts"]
    reply = await client.chat_postMessage(channel=ALERTS, thread_ts=root, text="update 1")
    assert reply["message"]["thread_ts"] == root
    assert reply["message"]["parent_user_id"] == BOT_USER_ID
    loud = await client.chat_postMessage(
        channel=ALERTS, thread_ts=root, text="escalated", reply_broadcast=True
    )
    assert [m.ts for m in fake.replies(ALERTS, root)] == [reply["ts"], loud["ts"]]
    assert [m.ts for m in fake.top_level(ALERTS)] == [root]

    thread = await client.conversations_replies(channel=ALERTS, ts=root)
    assert [m["ts"] for m in thread["messages"]] == [root, reply["ts"], loud["ts"]]
    parent = thread["messages"][0]
    assert parent["reply_count"] == 2
    assert parent["latest_reply"] == loud["ts"]
    assert parent["reply_users"] == [BOT_USER_ID]

    history = await client.conversations_history(channel=ALERTS)
    # Newest first; a plain reply stays in its thread, a broadcast one shows in the channel.
    assert [m["ts"] for m in history["messages"]] == [loud["ts"], root]
    assert history["messages"][0]["subtype"] == "thread_broadcast"

    lost = await slack_error(
        client.chat_postMessage(channel=ALERTS, thread_ts="1000000000.000001", text="orphan")
    )
    assert lost.response["error"] == "thread_not_found"
    assert fake.violations == []


async def test_update_edits_in_place_and_keeps_history(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    first = notice("ev-1", "Anthropic: major outage")
    root = (await client.chat_postMessage(channel=ALERTS, **first))["ts"]
    second = notice("ev-2", "Anthropic: degraded")
    second.pop("metadata")  # the root keeps the metadata of the event that opened it
    updated = await client.chat_update(channel=ALERTS, ts=root, **second)
    assert updated["ok"]
    assert (updated["channel"], updated["ts"]) == (ALERTS, root)
    assert updated["text"] == second["text"]
    assert updated["message"]["edited"]["user"] == BOT_USER_ID
    assert TS.match(updated["message"]["edited"]["ts"])
    await client.chat_update(channel=ALERTS, ts=root, text="Anthropic: resolved")

    stored = fake.message(ALERTS, root)
    assert stored.text == "Anthropic: resolved"
    assert stored.attachments is not None  # left out of the update: kept, as on Slack
    assert stored.attachments[0]["blocks"][0]["text"]["text"] == "🔴 Anthropic: degraded"
    assert stored.metadata == first["metadata"]
    assert [edit.text for edit in stored.edits] == [first["text"], second["text"]]
    assert [m.ts for m in fake.top_level(ALERTS)] == [root]  # edited, not reposted

    missing = await slack_error(
        client.chat_update(channel=ALERTS, ts="1000000000.000001", text="x")
    )
    assert missing.response["error"] == "message_not_found"
    someone = fake.inject_message(ALERTS, "a human wrote this")
    theirs = await slack_error(client.chat_update(channel=ALERTS, ts=someone.ts, text="x"))
    assert theirs.response["error"] == "cant_update_message"
    assert fake.violations == []


async def test_post_ephemeral(fake: FakeSlack, client: AsyncWebClient) -> None:
    answer = await client.chat_postEphemeral(channel=ALERTS, user="U0ASKER001", text="just you")
    assert answer["ok"]
    assert TS.match(answer["message_ts"])
    assert [(e.user, e.text) for e in fake.ephemerals] == [("U0ASKER001", "just you")]
    assert fake.messages(ALERTS) == []  # nobody else sees it
    no_user = await slack_error(
        client.api_call("chat.postEphemeral", json={"channel": ALERTS, "text": "x"})
    )
    assert no_user.response["error"] == "invalid_arguments"
    assert [v.error for v in fake.violations] == ["invalid_arguments"]


# ----------------------------------------------------------------------- reading


async def test_metadata_is_returned_only_when_asked(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    one = (await client.chat_postMessage(channel=ALERTS, **notice("ev-1")))["ts"]
    two = (await client.chat_postMessage(channel=ALERTS, **notice("ev-2")))["ts"]
    await client.chat_postMessage(channel=ALERTS, text="no metadata")
    reply = await client.chat_postMessage(channel=ALERTS, thread_ts=one, **notice("ev-3"))

    plain = await client.conversations_history(channel=ALERTS)
    assert all("metadata" not in m for m in plain["messages"])
    full = await client.conversations_history(channel=ALERTS, include_all_metadata=True)
    ids = [m.get("metadata", {}).get("event_payload", {}).get("event_id") for m in full["messages"]]
    assert ids == [None, "ev-2", "ev-1"]

    thread = await client.conversations_replies(channel=ALERTS, ts=one)
    assert all("metadata" not in m for m in thread["messages"])
    thread = await client.conversations_replies(channel=ALERTS, ts=one, include_all_metadata=True)
    assert [m["metadata"]["event_payload"]["event_id"] for m in thread["messages"]] == [
        "ev-1",
        "ev-3",
    ]

    assert [m.ts for m in fake.find_by_metadata(ALERTS, "event_id", "ev-2")] == [two]
    assert [m.ts for m in fake.find_by_metadata(ALERTS, "event_id", "ev-3")] == [reply["ts"]]
    assert len(fake.find_by_metadata(ALERTS, "event_type", "tocsin_notice")) == 3
    assert fake.violations == []


async def test_history_windows_limits_and_cursors(fake: FakeSlack, client: AsyncWebClient) -> None:
    stamps = [(await client.chat_postMessage(channel=ALERTS, text=f"{i}"))["ts"] for i in range(5)]
    newest_first = stamps[::-1]

    page = await client.conversations_history(channel=ALERTS, limit=2)
    assert [m["ts"] for m in page["messages"]] == newest_first[:2]
    assert page["has_more"] is True
    cursor = page["response_metadata"]["next_cursor"]
    page = await client.conversations_history(channel=ALERTS, limit=2, cursor=cursor)
    assert [m["ts"] for m in page["messages"]] == newest_first[2:4]
    page = await client.conversations_history(
        channel=ALERTS, limit=2, cursor=page["response_metadata"]["next_cursor"]
    )
    assert [m["ts"] for m in page["messages"]] == newest_first[4:]
    assert page["has_more"] is False
    assert "response_metadata" not in page.data

    after = await client.conversations_history(channel=ALERTS, oldest=stamps[1])
    assert [m["ts"] for m in after["messages"]] == newest_first[:3]  # oldest is exclusive
    after = await client.conversations_history(channel=ALERTS, oldest=stamps[1], inclusive=True)
    assert [m["ts"] for m in after["messages"]] == newest_first[:4]
    before = await client.conversations_history(channel=ALERTS, latest=stamps[3])
    assert [m["ts"] for m in before["messages"]] == newest_first[2:]
    oldest = f"{float(stamps[2]):.6f}"  # tocsin's own formatting of a datetime
    assert len((await client.conversations_history(channel=ALERTS, oldest=oldest))["messages"]) == 2

    root = stamps[0]
    replies = [
        (await client.chat_postMessage(channel=ALERTS, thread_ts=root, text=f"r{i}"))["ts"]
        for i in range(3)
    ]
    page = await client.conversations_replies(channel=ALERTS, ts=root, limit=2)
    assert [m["ts"] for m in page["messages"]] == [root, replies[0]]
    page = await client.conversations_replies(
        channel=ALERTS, ts=root, limit=2, cursor=page["response_metadata"]["next_cursor"]
    )
    assert [m["ts"] for m in page["messages"]] == replies[1:]
    later = await client.conversations_replies(channel=ALERTS, ts=root, oldest=replies[0])
    assert [m["ts"] for m in later["messages"]] == replies[1:]

    bad = await slack_error(client.conversations_history(channel=ALERTS, cursor="%%%"))
    assert bad.response["error"] == "invalid_cursor"
    gone = await slack_error(client.conversations_replies(channel=ALERTS, ts="1000000000.000001"))
    assert gone.response["error"] == "thread_not_found"
    assert fake.violations == []


# ------------------------------------------------------------------- failures


async def test_rate_limit_is_a_429_with_retry_after(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    fake.rate_limit("chat.postMessage", times=1, retry_after=7)
    error = await slack_error(client.chat_postMessage(channel=ALERTS, text="x"))
    assert error.response.status_code == 429
    assert error.response.headers["Retry-After"] == "7"
    assert error.response["error"] == "ratelimited"
    assert fake.messages(ALERTS) == []  # refused, not posted
    assert (await client.chat_postMessage(channel=ALERTS, text="x"))["ok"]
    assert [c.status for c in fake.calls_to("chat.postMessage")] == [429, 200]


async def test_the_sdk_retry_handler_waits_out_retry_after(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    client.retry_handlers = [AsyncRateLimitErrorRetryHandler(max_retry_count=1)]
    fake.rate_limit("chat.postMessage", times=1, retry_after=1)
    started = time.monotonic()
    posted = await client.chat_postMessage(channel=ALERTS, text="after the wait")
    assert posted["ok"]
    assert time.monotonic() - started >= 1.0
    first, second = fake.calls_to("chat.postMessage")
    assert (first.status, second.status) == (429, 200)
    assert second.at - first.at >= 1.0
    assert len(fake.messages(ALERTS)) == 1


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors(fake: FakeSlack, client: AsyncWebClient, status: int) -> None:
    fake.fail("chat.postMessage", times=1, status=status)
    error = await slack_error(client.chat_postMessage(channel=ALERTS, text="x"))
    assert error.response.status_code == status
    assert fake.messages(ALERTS) == []
    assert (await client.chat_postMessage(channel=ALERTS, text="x"))["ok"]


async def test_the_sdk_server_error_handler_retries_a_503(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    client.retry_handlers = [AsyncServerErrorRetryHandler(max_retry_count=1)]
    fake.fail("*", times=1, status=503)
    assert (await client.chat_postMessage(channel=ALERTS, text="x"))["ok"]
    assert [c.status for c in fake.calls] == [503, 200]


@pytest.mark.parametrize(
    ("channel", "error"),
    [
        ("C0NOSUCH00", "channel_not_found"),
        ("#no-such-channel", "channel_not_found"),
        (OUTSIDE, "not_in_channel"),
        ("#elsewhere", "not_in_channel"),
        (ARCHIVED, "is_archived"),
    ],
)
async def test_channel_errors(
    fake: FakeSlack, client: AsyncWebClient, channel: str, error: str
) -> None:
    refused = await slack_error(client.chat_postMessage(channel=channel, text="x"))
    assert refused.response.status_code == 200  # Slack's errors are HTTP 200, ok: false
    assert refused.response["error"] == error
    assert fake.violations == []  # a wrong channel is a configuration problem, not a bad call


async def test_injected_channel_errors(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.channel_error(ALERTS, "is_archived")
    assert (await slack_error(client.chat_postMessage(channel=ALERTS, text="x"))).response[
        "error"
    ] == "is_archived"
    fake.clear_channel_error(ALERTS)
    fake.channel_error("#ai-alerts", "not_in_channel", methods=["conversations.history"])
    assert (await slack_error(client.conversations_history(channel=ALERTS))).response[
        "error"
    ] == "not_in_channel"
    assert (await client.chat_postMessage(channel=ALERTS, text="x"))["ok"]  # other methods: ok
    fake.clear_channel_error("#ai-alerts")
    assert (await client.conversations_history(channel=ALERTS))["ok"]
    unreadable = await slack_error(client.conversations_history(channel=OUTSIDE))
    assert unreadable.response["error"] == "not_in_channel"


async def test_delay_per_method(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.set_delay("chat.postMessage", 0.3)
    started = time.monotonic()
    await client.chat_postMessage(channel=ALERTS, text="slow")
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    await client.auth_test()
    assert time.monotonic() - started < 0.3
    impatient = AsyncWebClient(token=fake.bot_token, base_url=fake.api_url, timeout=0.1)  # type: ignore[arg-type]
    impatient.retry_handlers = []
    with pytest.raises(TimeoutError):
        await impatient.chat_postMessage(channel=ALERTS, text="too slow")


async def test_unknown_method_is_a_404(fake: FakeSlack, client: AsyncWebClient) -> None:
    error = await slack_error(client.api_call("chat.postMessages", json={"channel": ALERTS}))
    assert error.response.status_code == 404
    assert error.response["error"] == "unknown_method"
    assert [v.error for v in fake.violations] == ["unknown_method"]


# --------------------------------------------------------------------- validation


def blocks_of(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"channel": ALERTS, "text": "fallback", "blocks": list(blocks)}


def header(text: str, kind: str = "plain_text") -> dict[str, Any]:
    return {"type": "header", "text": {"type": kind, "text": text}}


def section(text: str, kind: str = "mrkdwn") -> dict[str, Any]:
    return {"type": "section", "text": {"type": kind, "text": text}}


def fields(count: int, length: int = 10) -> dict[str, Any]:
    return {"type": "section", "fields": [{"type": "mrkdwn", "text": "f" * length}] * count}


def context(count: int) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}] * count}


BAD_CALLS: list[tuple[str, str, dict[str, Any], str, str]] = [
    ("no channel", "chat.postMessage", {"text": "hi"}, "invalid_arguments", "field: channel"),
    (
        "unknown argument",
        "chat.postMessage",
        {"channel": ALERTS, "text": "hi", "colour": "red"},
        "invalid_arg_name",
        "unknown argument: colour",
    ),
    (
        "51 blocks",
        "chat.postMessage",
        blocks_of(*[section("x")] * 51),
        "invalid_blocks",
        "no more than 50 items allowed [json-pointer:/blocks]",
    ),
    (
        "151-char header",
        "chat.postMessage",
        blocks_of(header("h" * 151)),
        "invalid_blocks",
        "must be less than 151 characters [json-pointer:/blocks/0/text/text]",
    ),
    (
        "mrkdwn header",
        "chat.postMessage",
        blocks_of(header("*bold*", kind="mrkdwn")),
        "invalid_blocks",
        "[json-pointer:/blocks/0/text/type]",
    ),
    (
        "3001-char section",
        "chat.postMessage",
        blocks_of(section("s" * 3001)),
        "invalid_blocks",
        "must be less than 3001 characters [json-pointer:/blocks/0/text/text]",
    ),
    (
        "11 fields",
        "chat.postMessage",
        blocks_of(fields(11)),
        "invalid_blocks",
        "no more than 10 items allowed [json-pointer:/blocks/0/fields]",
    ),
    (
        "2001-char field",
        "chat.postMessage",
        blocks_of(fields(2, length=2001)),
        "invalid_blocks",
        "[json-pointer:/blocks/0/fields/0/text]",
    ),
    (
        "11 context elements",
        "chat.postMessage",
        blocks_of(context(11)),
        "invalid_blocks",
        "no more than 10 items allowed [json-pointer:/blocks/0/elements]",
    ),
    (
        "unknown text object type",
        "chat.postMessage",
        blocks_of(section("x", kind="markdown")),
        "invalid_blocks",
        "must be one of: plain_text, mrkdwn [json-pointer:/blocks/0/text/type]",
    ),
    (
        "empty text",
        "chat.postMessage",
        blocks_of(section("")),
        "invalid_blocks",
        "must be more than 0 characters",
    ),
    (
        "unknown block type",
        "chat.postMessage",
        blocks_of({"type": "banner", "text": "x"}),
        "invalid_blocks",
        "unsupported block type: banner",
    ),
    (
        "40001-char text",
        "chat.postMessage",
        {"channel": ALERTS, "text": "t" * 40_001},
        "msg_too_long",
        "over 40000",
    ),
    ("nothing to say", "chat.postMessage", {"channel": ALERTS}, "no_text", ""),
    (
        "metadata payload not an object",
        "chat.postMessage",
        {"channel": ALERTS, "text": "x", "metadata": {"event_type": "t", "event_payload": "s"}},
        "invalid_metadata_format",
        "event_payload must be an object",
    ),
    (
        "metadata without event_type",
        "chat.postMessage",
        {"channel": ALERTS, "text": "x", "metadata": {"event_payload": {}}},
        "invalid_metadata_format",
        "event_type must be a non-empty string",
    ),
    (
        "attachment colour",
        "chat.postMessage",
        {"channel": ALERTS, "text": "x", "attachments": [{"color": "reddish", "text": "x"}]},
        "invalid_attachments",
        "[json-pointer:/attachments/0/color]",
    ),
    (
        "header inside an attachment",
        "chat.postMessage",
        {"channel": ALERTS, "text": "x", "attachments": [{"blocks": [header("h" * 151)]}]},
        "invalid_blocks",
        "[json-pointer:/attachments/0/blocks/0/text/text]",
    ),
    ("update without ts", "chat.update", {"channel": ALERTS, "text": "x"}, "invalid_arguments", ""),
    (
        "update to too long a header",
        "chat.update",
        {**blocks_of(header("h" * 200)), "ts": "1000000000.000001"},
        "invalid_blocks",
        "/blocks/0/text/text",
    ),
]


@pytest.mark.parametrize(
    ("method", "arguments", "error", "says"),
    [case[1:] for case in BAD_CALLS],
    ids=[case[0] for case in BAD_CALLS],
)
async def test_calls_slack_would_refuse_are_refused_and_recorded(
    fake: FakeSlack,
    client: AsyncWebClient,
    method: str,
    arguments: dict[str, Any],
    error: str,
    says: str,
) -> None:
    refused = await slack_error(client.api_call(method, json=arguments))
    assert refused.response["error"] == error
    messages = refused.response.get("response_metadata", {}).get("messages", [])
    assert all(m.startswith("[ERROR] ") for m in messages)
    assert not says or any(says in m for m in messages), messages
    assert [(v.method, v.error) for v in fake.violations] == [(method, error)]
    assert fake.messages(ALERTS) == []


async def test_readers_need_their_arguments(fake: FakeSlack, client: AsyncWebClient) -> None:
    """The 2021 spec leaves ``channel`` optional; today's docs (and Slack) require it."""
    no_channel = await slack_error(client.api_call("conversations.history", http_verb="GET"))
    assert no_channel.response["error"] == "invalid_arguments"
    no_ts = await slack_error(
        client.api_call("conversations.replies", http_verb="GET", params={"channel": ALERTS})
    )
    assert no_ts.response["response_metadata"]["messages"] == ["[ERROR] missing required field: ts"]
    not_json = await slack_error(
        client.api_call("chat.postMessage", data={"channel": ALERTS, "blocks": "[{oops"})
    )
    assert not_json.response["error"] == "invalid_blocks_format"
    assert [v.error for v in fake.violations] == [
        "invalid_arguments",
        "invalid_arguments",
        "invalid_blocks_format",
    ]


async def test_messages_at_every_documented_limit_pass(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    biggest = [
        header("h" * 150),
        section("s" * 3000),
        fields(10, length=2000),
        context(10),
        *[{"type": "divider"}] * 46,
    ]
    assert len(biggest) == 50
    await client.chat_postMessage(channel=ALERTS, text="t" * 40_000, blocks=biggest)
    await client.chat_postMessage(channel=ALERTS, **notice())
    assert fake.violations == []
    assert len(fake.top_level(ALERTS)) == 2


# -------------------------------------------------------------------- Socket Mode

Listener = Callable[[AsyncBaseSocketModeClient, SocketModeRequest], Awaitable[None]]


def socket_client(fake: FakeSlack, listener: Listener | None = None) -> SocketModeClient:
    web_client = AsyncWebClient(token=fake.bot_token, base_url=fake.api_url)
    socket = SocketModeClient(app_token=fake.app_token, web_client=web_client)
    if listener is not None:
        socket.socket_mode_request_listeners.append(listener)
    return socket


@contextlib.asynccontextmanager
async def connected(socket: SocketModeClient) -> AsyncIterator[SocketModeClient]:
    """slack-sdk's client connected (apps.connections.open, then the WebSocket), then closed."""
    await socket.connect()  # type: ignore[no-untyped-call]
    try:
        yield socket
    finally:
        await socket.close()  # type: ignore[no-untyped-call]


async def test_socket_mode_round_trip(fake: FakeSlack) -> None:
    frames: list[dict[str, Any]] = []

    async def seen(
        client: AsyncBaseSocketModeClient, message: dict[Any, Any], raw: str | None
    ) -> None:
        frames.append(message)

    async def answer(client: AsyncBaseSocketModeClient, request: SocketModeRequest) -> None:
        if request.type == "slash_commands":
            text = f"{request.payload['command']} {request.payload['text']}: all good"
            await client.send_socket_mode_response(
                SocketModeResponse(
                    envelope_id=request.envelope_id,
                    payload={"response_type": "ephemeral", "text": text},
                )
            )

    socket = socket_client(fake, answer)
    socket.message_listeners.append(seen)
    async with connected(socket):
        ack = await fake.slash_command("/status", "anthropic", user_id="U0ASKER001")

    assert ack == {"response_type": "ephemeral", "text": "/status anthropic: all good"}
    hello = frames[0]
    assert hello["type"] == "hello"
    assert hello["num_connections"] == 1
    assert hello["connection_info"] == {"app_id": APP_ID}
    assert set(hello["debug_info"]) >= {"host", "approximate_connection_time"}
    (envelope,) = fake.envelopes
    assert set(envelope) == {"envelope_id", "type", "payload", "accepts_response_payload"}
    assert envelope["type"] == "slash_commands"
    assert envelope["accepts_response_payload"] is True
    payload = envelope["payload"]
    assert set(payload) == {
        "token",
        "team_id",
        "team_domain",
        "channel_id",
        "channel_name",
        "user_id",
        "user_name",
        "command",
        "text",
        "api_app_id",
        "response_url",
        "trigger_id",
    }
    assert (payload["channel_id"], payload["channel_name"]) == (ALERTS, "ai-alerts")
    assert (payload["team_id"], payload["api_app_id"]) == (TEAM_ID, APP_ID)
    assert payload["response_url"].startswith(f"{fake.url}/commands/")
    (recorded,) = fake.acks
    assert recorded.envelope_id == envelope["envelope_id"]
    assert 0 < recorded.latency < 3.0
    assert not recorded.late
    assert [c.ok for c in fake.calls_to("apps.connections.open")] == [True]
    assert fake.connections[0].pings_received >= 1  # the SDK pings a new connection at once
    assert fake.violations == []


async def test_a_missing_or_late_ack_raises(fake: FakeSlack) -> None:
    async def slow(client: AsyncBaseSocketModeClient, request: SocketModeRequest) -> None:
        await asyncio.sleep(0.4)
        await client.send_socket_mode_response(SocketModeResponse(request.envelope_id))

    socket = socket_client(fake, slow)
    async with connected(socket):
        with pytest.raises(AckTimeout):
            await fake.slash_command("/status", timeout=0.2)
        await asyncio.sleep(0.4)
    (late,) = fake.acks
    assert late.late
    assert late.latency >= 0.4
    assert late.payload is None


async def test_an_ack_slack_would_refuse_is_a_violation(fake: FakeSlack) -> None:
    async def too_long(client: AsyncBaseSocketModeClient, request: SocketModeRequest) -> None:
        blocks = [{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}]
        await client.send_socket_mode_response(
            SocketModeResponse(request.envelope_id, {"text": "x", "blocks": blocks})
        )

    socket = socket_client(fake, too_long)
    async with connected(socket):
        await fake.slash_command("/status")
    assert [(v.method, v.error) for v in fake.violations] == [("socket_mode.ack", "invalid_blocks")]


async def test_disconnect_reconnect_and_pings(fake: FakeSlack) -> None:
    async def bare(client: AsyncBaseSocketModeClient, request: SocketModeRequest) -> None:
        await client.send_socket_mode_response(SocketModeResponse(request.envelope_id))

    socket = socket_client(fake, bare)
    async with connected(socket):
        first = await fake.wait_for_connection()
        assert await fake.ping_client() < 1.0
        await fake.request_disconnect("refresh_requested")
        second = await fake.wait_for_connection(count=2)
        assert await fake.slash_command("/fallback", "openai") == {}
        for _ in range(100):
            if not first.open:
                break
            await asyncio.sleep(0.01)
    assert fake.acks[0].connection == second.id  # envelopes go to the newest connection
    assert not first.open
    assert len(fake.calls_to("apps.connections.open")) == 2  # one fresh URL per connection


async def test_apps_connections_open_wants_the_app_token_and_a_fresh_ticket(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    wrong = await slack_error(client.apps_connections_open(app_token=fake.bot_token))
    assert wrong.response["error"] == "not_allowed_token_type"
    url = (await client.apps_connections_open(app_token=fake.app_token))["url"]
    assert url.startswith(f"ws://127.0.0.1:{fake.port}/socket?ticket=")
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url) as ws:
            assert (await ws.receive_json())["type"] == "hello"
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await session.ws_connect(url)  # a ticket is good for one connection
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await session.ws_connect(f"ws://127.0.0.1:{fake.port}/socket?ticket=forged")


# ------------------------------------------------------------------ slack-bolt


def bolt_app(fake: FakeSlack, signing_secret: str | None = None) -> AsyncApp:
    app = AsyncApp(
        client=AsyncWebClient(token=fake.bot_token, base_url=fake.api_url),
        signing_secret=signing_secret or "",
        request_verification_enabled=signing_secret is not None,
        process_before_response=True,
    )

    async def status(ack: Callable[..., Awaitable[None]], command: dict[str, Any]) -> None:
        await ack(response_type="ephemeral", text=f"status of {command['text']}")

    app.command("/status")(status)
    return app


async def test_bolt_in_socket_mode(fake: FakeSlack) -> None:
    app = bolt_app(fake)
    handler = AsyncSocketModeHandler(app, fake.app_token, web_client=app.client)
    await handler.connect_async()  # type: ignore[no-untyped-call]
    try:
        ack = await fake.slash_command("/status", "anthropic", channel_id=ALERTS)
    finally:
        await handler.close_async()  # type: ignore[no-untyped-call]
    assert ack == {"response_type": "ephemeral", "text": "status of anthropic"}
    assert [c.ok for c in fake.calls_to("auth.test")] == [True]  # bolt checked its token
    assert fake.violations == []


async def test_response_url_takes_delayed_answers(fake: FakeSlack) -> None:
    urls: list[str] = []

    async def later(client: AsyncBaseSocketModeClient, request: SocketModeRequest) -> None:
        urls.append(request.payload["response_url"])
        await client.send_socket_mode_response(SocketModeResponse(request.envelope_id))

    socket = socket_client(fake, later)
    async with connected(socket):
        assert await fake.slash_command("/status", channel_id=ALERTS) == {}
    webhook = AsyncWebhookClient(urls[0])
    sent = await webhook.send(text="Anthropic is back", response_type="in_channel")
    assert sent.status_code == 200
    assert [p.payload["text"] for p in fake.response_url_posts] == ["Anthropic is back"]
    assert [m.text for m in fake.top_level(ALERTS)] == ["Anthropic is back"]
    assert fake.violations == []


@pytest.fixture
async def http_app(fake: FakeSlack) -> AsyncIterator[str]:
    """A bolt app in HTTP mode at /slack/events on loopback; yields its URL."""
    app = bolt_app(fake, SIGNING_SECRET)

    async def events(request: web.Request) -> web.StreamResponse:
        return await to_aiohttp_response(await app.async_dispatch(await to_bolt_request(request)))

    server = web.Application()
    server.router.add_post("/slack/events", events)
    runner = web.AppRunner(server, handle_signals=False, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"
    await runner.cleanup()


async def test_signed_slash_commands_over_http(fake: FakeSlack, http_app: str) -> None:
    body = slash_command_body("/status", "openai", channel_id=ALERTS, channel_name="ai-alerts")
    assert "command=%2Fstatus" in body
    assert "text=openai" in body
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    signed = signed_request(SIGNING_SECRET, body)
    verifier = SignatureVerifier(SIGNING_SECRET)
    assert verifier.is_valid(body, signed["X-Slack-Request-Timestamp"], signed["X-Slack-Signature"])
    async with aiohttp.ClientSession() as session:

        async def post(headers: dict[str, str], data: str = body) -> aiohttp.ClientResponse:
            async with session.post(http_app, data=data, headers={**form, **headers}) as resp:
                await resp.read()
                return resp

        ok = await session.post(http_app, data=body, headers={**form, **signed})
        assert ok.status == 200
        assert await ok.json() == {"response_type": "ephemeral", "text": "status of openai"}
        assert (await post(signed_request("not-the-secret", body))).status == 401
        stale = signed_request(SIGNING_SECRET, body, timestamp=int(time.time()) - 600)
        assert (await post(stale)).status == 401
        assert (await post(signed, data=body.replace("openai", "google"))).status == 401
    assert fake.violations == []
