"""Secrets never reach a log line or the console: not in messages, fields, exceptions, library
logs, nor the output of a running ``tocsin`` whose sources fail in every way."""

from __future__ import annotations

import asyncio
import html
import io
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
import pytest
import yaml

from bot import logs
from bot.app import register_config_secrets
from config.loader import build_config
from tests.chaos import until
from tests.fakes.inference import FakeInferenceAPI
from tests.fakes.status_server import FakeStatusServer

SLACK = "xoxb-1111-2222-SECRETSLACKTOKEN"
DISCORD = "MTIz.SECRET-DISCORD-TOKEN.abcdef"
PROBE_KEY = "sk-acme-SECRET-PROBE-KEY-123456"
ROUTING = "R0UTINGKEYSECRET9876500000000000"  # 32 letters and digits, as PagerDuty takes


def test_log_lines_are_scrubbed_everywhere() -> None:
    out = io.StringIO()
    logs.configure("debug", "json", stream=out)
    config = build_config(
        {
            "providers": [
                {
                    "id": "acme",
                    "name": "Acme",
                    "probe": {
                        "url": "http://127.0.0.1:9/",
                        "auth": {"kind": "bearer", "env": "ACME_KEY"},
                    },
                }
            ],
            "slack": {"bot_token": SLACK},
            "escalation": [{"kind": "pagerduty", "routing_key": ROUTING}],
        }
    )
    register_config_secrets(config, env={"ACME_KEY": PROBE_KEY})
    log = logs.get_logger("test")
    log.info(f"posting with {SLACK}")
    log.info(
        "request",
        headers={"Authorization": f"Bearer {PROBE_KEY}"},
        url=f"https://x/?key={PROBE_KEY}",
    )
    log.info("nested", payload={"deep": [f"routing {ROUTING}"]}, token="anything-under-a-token-key")
    try:
        raise RuntimeError(f"auth failed for {SLACK}")
    except RuntimeError:
        log.exception("boom")
    logging.getLogger("slack_sdk").warning("sending token=%s", SLACK)
    text = out.getvalue()
    for secret in (SLACK, PROBE_KEY, ROUTING, "anything-under-a-token-key"):
        assert secret not in text
    assert text.count(logs.MASK) >= 6
    assert "posting with ***" in text


async def test_a_running_tocsin_never_prints_a_secret(
    status_server: FakeStatusServer, tmp_path: Path
) -> None:
    """Every source fails (HTML page, 401 for our key, 5xx), at debug level, with tokens set."""
    status_server.set_html("/api/v2/summary.json")
    status_server.set_status("/v1/models", 401, b'{"error": "invalid x-api-key"}')
    status_server.set_status("/zeta/models", 503)
    status_server.set_status("/pd", 503, b'{"status": "unavailable"}')  # the page is retried
    config = {
        "server": {"enabled": False},
        "log": {"level": "debug"},
        "watch": {"interval": "300ms", "page_interval": "300ms", "jitter": "0s"},
        "providers": [
            {
                "id": "acme",
                "name": "Acme AI",
                "status_page": {"kind": "statuspage", "url": status_server.url},
                "probe": {
                    "url": f"{status_server.url}/v1/models",
                    "auth": {"kind": "header", "header": "x-api-key", "env": "ACME_KEY"},
                },
            },
            {
                "id": "zeta",
                "name": "Zeta AI",
                "probe": {
                    "url": f"{status_server.url}/zeta/models",
                    "auth": {"kind": "bearer", "env": "ZETA_KEY"},
                },
            },
        ],
        "slack": {"channels": []},
        "escalation": [{"kind": "pagerduty", "url": f"{status_server.url}/pd", "after": "0s"}],
    }
    path = tmp_path / "tocsin.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {
        **{k: v for k, v in os.environ.items() if not k.endswith(("_TOKEN", "_KEY", "_SECRET"))},
        "SLACK_BOT_TOKEN": SLACK,
        "DISCORD_TOKEN": DISCORD,
        "PAGERDUTY_ROUTING_KEY": ROUTING,
        "ACME_KEY": PROBE_KEY,
        "ZETA_KEY": PROBE_KEY + "-zeta",
        "COLUMNS": "2000",  # no wrapping: a secret split over two lines would hide from us
    }
    proc = await _tocsin_run(path, env)
    seen = await _until_said(
        proc,
        "probe rejected our key (HTTP 401)",
        "HTML page instead of JSON",
        "delivery failed; retrying",
        within=30,
    )
    await until(lambda: {"/v1/models", "/pd"} <= {r.path for r in status_server.requests}, 30)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 20)
    text = seen + stdout.decode() + stderr.decode()
    assert proc.returncode == 0, text
    # it did see the problems, and said so...
    assert "probe rejected our key (HTTP 401)" in text
    assert "HTML page instead of JSON" in text
    # ...and the keys were really sent (so they were there to leak)
    sent = [r.headers.get("x-api-key") for r in status_server.requests if r.path == "/v1/models"]
    assert sent
    assert set(sent) == {PROBE_KEY}
    pages = [r.body for r in status_server.requests if r.path == "/pd"]
    assert pages  # zeta is down: PagerDuty was paged with the routing key, and retried
    assert ROUTING.encode() in pages[0]
    assert "delivery failed; retrying" in text
    for secret in (SLACK, DISCORD, ROUTING, PROBE_KEY):
        assert secret not in text


ESCAPED_KEY = "sk-ant-api03-Ab+/=&<\"q'\\z SECRET"


@pytest.mark.parametrize(
    "spelled",
    [
        lambda k: k,
        repr,
        json.dumps,
        lambda k: json.dumps(json.dumps(k)),
        lambda k: repr(json.dumps(k)),
        lambda k: quote(k, safe=""),
        quote_plus,
        lambda k: quote(k, safe="").replace("%2F", "%2f"),
        html.escape,
        lambda k: repr(k.encode()),
        lambda k: "".join(f"\\u{ord(c):04x}" for c in k),
        lambda k: "".join(f"&#{ord(c)};" for c in k),
        lambda k: "".join(f"&#x{ord(c):X};" for c in k),
    ],
)
def test_a_secret_is_scrubbed_however_it_is_quoted_or_escaped(spelled: Any) -> None:
    logs.register_secret(ESCAPED_KEY + "\n")  # registered as pasted: with its stray newline
    text = f"before {spelled(ESCAPED_KEY)} after"
    scrubbed = logs.scrub(text)
    assert "Ab" not in scrubbed, scrubbed
    assert "SECRET" not in scrubbed, scrubbed
    assert scrubbed.startswith("before ")
    assert scrubbed.endswith(" after")


@pytest.mark.parametrize("spelled", [repr, json.dumps, lambda k: repr(f"Bearer {k}".encode())])
def test_a_secret_with_a_line_break_inside_is_scrubbed_as_libraries_print_it(
    spelled: Any,
) -> None:
    key = "sk-test-PASTED\n7f3a9c-\tTAB"
    logs.register_secret(key)
    assert "PASTED" not in logs.scrub(spelled(key))
    assert "7f3a9c" not in logs.scrub(spelled(key))


async def test_what_httpx_says_about_a_key_with_a_newline_is_scrubbed(
    status_server: FakeStatusServer,
) -> None:
    """The real exception text of a header that carries a key with a stray newline."""
    key = "sk-acme-NEWLINE-KEY-424242"
    logs.register_secret(key + "\n")
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.HTTPError) as caught:
            await client.get(status_server.url, headers={"x-api-key": key + "\n"})
    said = f"{type(caught.value).__name__}: {caught.value}"
    assert key in said  # the library does quote it...
    assert key not in logs.scrub(said)  # ...and the scrubber catches it


def test_a_log_line_is_one_line_and_bounded() -> None:
    out = io.StringIO()
    logs.configure("info", "console", stream=out)
    log = logs.get_logger("test")
    log.info("provider said\nFAKE 2026-01-01 [error] forged line", body="x" * 1_000_000)
    logging.getLogger("slack_bolt").warning("unsigned body %s", "\nforged" + "y" * 1_000_000)
    logging.getLogger("slack_bolt").info("request body: %s", "z" * 100)  # quiet at INFO
    lines = out.getvalue().splitlines()
    assert len(lines) == 2, lines[:3]
    assert all(len(line) < logs.RECORD_MAX + 200 for line in lines)
    assert "\\nFAKE" in lines[0]
    assert "\\nforged" in lines[1]
    assert "zzz" not in out.getvalue()


async def _tocsin_run(path: Path, env: dict[str, str]) -> asyncio.subprocess.Process:
    """``tocsin run --config path`` in a real process, its output piped to us."""
    return await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "tocsin"),
        "run",
        "--config",
        str(path),
        cwd=path.parent,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _until_said(proc: asyncio.subprocess.Process, *phrases: str, within: float) -> str:
    """Read ``proc``'s output until every phrase has appeared (or ``within`` seconds pass):
    a condition, not a fixed sleep that a loaded machine outlasts. What was read is returned."""
    assert proc.stdout is not None
    assert proc.stderr is not None
    said: list[str] = []

    async def pump(stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            said.append(line.decode())
            if all(phrase in "".join(said) for phrase in phrases):
                return

    readers = [asyncio.create_task(pump(s)) for s in (proc.stdout, proc.stderr)]
    await asyncio.wait(readers, timeout=within, return_when=asyncio.FIRST_COMPLETED)
    for reader in readers:
        reader.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    return "".join(said)


async def test_an_inference_probe_key_never_leaves_the_request(tmp_path: Path) -> None:
    """The inference probes' keys, echoed back by the APIs (Anthropic's 500 quoting the key,
    OpenAI's 401 "Incorrect API key provided: sk-..."), at debug level: never in what tocsin
    prints, though the fake saw them in the requests."""
    api = await FakeInferenceAPI(key=PROBE_KEY).start()
    try:
        api.set("claude-haiku-4-5", "status", code=500, message="bad key {key} upstream")
        config = {
            "server": {"enabled": False},
            "log": {"level": "debug"},
            "watch": {"interval": "300ms", "jitter": "0s"},
            "upstreams": [],
            "providers": [
                {
                    "id": "anthropic",
                    "status_page": None,
                    "probe": {"kind": "inference", "api_url": api.url},
                },
                {
                    "id": "openai",
                    "status_page": None,
                    "probe": {"kind": "inference", "api_url": api.url + "/v1"},
                },
            ],
        }
        path = tmp_path / "tocsin.yaml"
        path.write_text(yaml.safe_dump(config))
        wrong = PROBE_KEY + "-wrong"
        env = {
            **{k: v for k, v in os.environ.items() if not k.endswith(("_TOKEN", "_KEY"))},
            "ANTHROPIC_API_KEY": PROBE_KEY,
            "OPENAI_API_KEY": wrong,
            "COLUMNS": "2000",
        }
        proc = await _tocsin_run(path, env)
        said = ("refused the probe's API key (HTTP 401", "calls answered HTTP 500")
        seen = await _until_said(proc, *said, within=30)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 20)
        text = seen + stdout.decode() + stderr.decode()
        assert proc.returncode == 0, text
        assert all(phrase in text for phrase in said), text  # it saw both, and said so
        sent = {str(r.headers) for r in api.requests}
        assert any(PROBE_KEY in h for h in sent)
        assert any(wrong in h for h in sent)
        assert PROBE_KEY not in text
        assert PROBE_KEY[-10:] not in text
    finally:
        await api.close()
