"""Slack's HTTP mode (``POST /slack/events``) against what a stranger can send: a real runtime
with slack-bolt's real ``AsyncApp``, over real sockets. Whatever comes in, the answer is a
one-line 4xx (never a 500, never a traceback), and nothing unsigned reaches bolt or the log:
a binary body, a timestamp that is not a number, a body over the cap, a body nested to crash
a recursive parser. And a real ``tocsin run``: 20 junk 1 MB posts leave a few lines in its
log, not 20 MB."""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from bot import logs
from bot.answers import Answers
from bot.app import assemble, run
from bot.store import MemoryStore
from config.loader import build_config
from handlers.slack import commands
from handlers.slack.commands import MAX_BODY
from tests.chaos import TocsinProcess
from tests.fakes.slack import signed_request, slash_command_body
from tests.redis_server import free_port

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
JSON = {"Content-Type": "application/json"}
#: What a junk body carries: a response_url, which must never end up in a log.
MARKER = "response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT0%2FJUNK0MARKER"


def _document(port: int | None = None) -> dict[str, Any]:
    document: dict[str, Any] = {
        "console": {"enabled": False},
        "providers": [
            {
                "id": "acme",
                "name": "Acme AI",
                "probe": {"url": "http://127.0.0.1:9/v1/models", "enabled": False},
            }
        ],
        "slack": {
            "api_url": "http://127.0.0.1:9/api/",  # answers come from the store, not Slack
            "bot_token": "xoxb-unreachable",
            "signing_secret": SECRET,
        },
    }
    if port is not None:
        document["server"] = {"host": "127.0.0.1", "port": port}
    return document


@pytest.fixture
async def events_url() -> AsyncIterator[str]:
    port = free_port()
    runtime = assemble(build_config(_document(port)), "bot", store=MemoryStore(), env={})
    stop = asyncio.Event()
    task = asyncio.create_task(run(runtime, stop))
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient() as client:
        for _ in range(200):
            try:
                await client.get(f"{base}/healthz")
                break
            except httpx.TransportError:
                await asyncio.sleep(0.05)
    yield f"{base}/slack/events"
    stop.set()
    await task


def _signed(body: str, timestamp: int | None = None) -> dict[str, str]:
    return {**signed_request(SECRET, body, timestamp), **FORM}


def _refusal(answer: httpx.Response, status: int, phrase: str) -> None:
    """A one-line JSON error with this status: nothing else, and nothing of the internals."""
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert phrase in error, error
    assert "\n" not in error
    assert len(answer.content) < 300
    assert "Traceback" not in answer.text


async def _status_command(client: httpx.AsyncClient, url: str) -> httpx.Response:
    body = slash_command_body("/status", "acme")
    return await client.post(url, content=body, headers=_signed(body))


async def test_a_binary_body_is_a_400(events_url: str) -> None:
    junk = bytes(range(128, 256)) * 8  # not UTF-8
    stamp = {"X-Slack-Request-Timestamp": str(int(time.time())), "X-Slack-Signature": "v0=00"}
    async with httpx.AsyncClient() as client:
        answers = [
            await client.post(events_url, content=junk, headers={**stamp, **FORM}),
            await client.post(events_url, content=junk, headers={**stamp, **JSON}),
            await client.post(events_url, content=b"text=\xc3(", headers=FORM),  # unsigned
        ]
        good = await _status_command(client, events_url)
    for answer in answers:
        _refusal(answer, 400, "the body is not UTF-8 text")
    assert good.status_code == 200
    assert "Acme AI" in good.text


#: Not a timestamp in seconds, though ``int()`` reads some of these (the Arabic-Indic digits).
NOT_SECONDS: dict[str, str | bytes] = {
    "word": "soon",
    "exponent": "1e9",
    "fraction": "17.5",
    "hex": "0x6553f100",
    "empty": "",
    "arabic-digits": ("\u0661\u0667" + "\u0660" * 8).encode(),
    "huge": "9" * 40,
}


@pytest.mark.parametrize("timestamp", list(NOT_SECONDS.values()), ids=list(NOT_SECONDS))
async def test_a_timestamp_that_is_not_seconds_is_a_400(
    events_url: str, timestamp: str | bytes
) -> None:
    body = slash_command_body("/status")
    headers: dict[str, Any] = {
        **_signed(body),
        "X-Slack-Request-Timestamp": timestamp,
    }
    async with httpx.AsyncClient() as client:
        answer = await client.post(events_url, content=body, headers=headers)
        good = await _status_command(client, events_url)
    _refusal(answer, 400, "X-Slack-Request-Timestamp is not in seconds")
    assert good.status_code == 200


async def test_a_body_over_the_cap_is_a_413_before_bolt_reads_it(events_url: str) -> None:
    """Even a correctly signed command: Slack's own are ~1 KiB, so this is not one of them."""
    big = slash_command_body("/status", "acme " + "x" * MAX_BODY)
    signed = _signed(big)

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length to give it away
        for _ in range(64):
            yield b"x" * 65536

    async with httpx.AsyncClient() as client:
        declared = await client.post(events_url, content=big, headers=signed)
        streamed = await client.post(events_url, content=chunks(), headers=signed)
        good = await _status_command(client, events_url)
    _refusal(declared, 413, f"the limit is {MAX_BODY}")
    _refusal(streamed, 413, f"over the limit of {MAX_BODY} bytes")
    assert good.status_code == 200


DEEP = 30_000  # under the cap, far deeper than Python's recursion limit
HOSTILE_BODIES = [
    ("[" * DEEP, JSON),
    ('{"type": "event_callback", "event": ' * (DEEP // 40), JSON),
    ("payload=" + quote("[" * (DEEP // 2)), FORM),  # percent-encoded: 3 bytes a bracket
    ("{not json", JSON),
    ("[]", JSON),  # JSON, but not an object: bolt would call .get on a list
    ('"string"', JSON),
]


async def test_an_unsigned_hostile_body_is_a_401_and_never_parsed(events_url: str) -> None:
    """bolt parses a body before it checks its signature; tocsin checks first."""
    async with httpx.AsyncClient() as client:
        answers = [
            await client.post(events_url, content=body, headers=kind)
            for body, kind in HOSTILE_BODIES
        ]
        good = await _status_command(client, events_url)
    for answer in answers:
        _refusal(answer, 401, "invalid request")
    assert good.status_code == 200


async def test_a_signed_body_bolt_cannot_read_is_a_400(events_url: str) -> None:
    """Only Slack can sign, but a body it signed is still read with care."""
    async with httpx.AsyncClient() as client:
        answers = [
            await client.post(
                events_url, content=body, headers={**signed_request(SECRET, body), **kind}
            )
            for body, kind in HOSTILE_BODIES[:4]
        ]
    for answer in answers:
        _refusal(answer, 400, "the body is not a Slack request")


async def test_junk_posts_leave_a_few_lines_in_the_log_and_never_the_body(
    tmp_path: Path,
) -> None:
    """slack-bolt logs the whole body of every request it cannot verify, at INFO: 20 junk
    1 MB posts grew a real ``tocsin run``'s log by 20 MB, ``response_url``s and all. Now
    they are refused at the cap (413) before bolt sees them; junk under the cap is refused
    unsigned (401) by tocsin, and each costs one short line."""
    replica = await TocsinProcess(tmp_path, "slack-http", _document()).start_healthy()
    url = f"http://127.0.0.1:{replica.port}/slack/events"
    before = len(replica.log())
    megabyte = (MARKER + "&text=" + "x" * 1_000_000).encode()
    under_cap = (MARKER + "&text=" + "y" * (MAX_BODY // 2)).encode()
    try:
        async with httpx.AsyncClient(trust_env=False, timeout=30) as client:
            big = [await client.post(url, content=megabyte, headers=FORM) for _ in range(20)]
            small = [await client.post(url, content=under_cap, headers=FORM) for _ in range(20)]
            good = await _status_command(client, url)
    finally:
        assert await replica.stop() == 0, replica.log()[-3000:]  # all its lines written
    grown = replica.log()[before:]
    assert len(grown) < 16_000, f"{len(grown)} characters: {grown[:2000]}"  # 21 MB were sent
    assert "JUNK0MARKER" not in grown
    assert "yyyyyyyyyy" not in grown
    assert "Traceback" not in grown
    assert [a.status_code for a in big] == [413] * 20
    assert [a.status_code for a in small] == [401] * 20
    assert good.status_code == 200, good.text
    assert grown.count("slack request refused") == 40  # one short line each


def test_bolts_own_loggers_follow_the_quiet_level_tocsin_sets() -> None:
    """bolt gives each of its loggers an explicit level when the app is built (the root's,
    INFO, by default): the WARNING that tocsin's logging sets on ``slack_bolt`` must reach
    them, or bolt's verifier logs every body it refuses."""
    logs.configure("info", "json", stream=io.StringIO())
    config = build_config(_document(free_port()))
    slack = commands(config, Answers(config, MemoryStore()))
    assert slack is not None
    verifier = logging.getLogger("slack_bolt.RequestVerification")
    assert verifier.getEffectiveLevel() == logging.WARNING
    assert not verifier.isEnabledFor(logging.INFO)
