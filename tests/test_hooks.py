"""Status page pushes (``POST /hooks/statuspage/{provider}``) over real HTTP, into a real
runtime whose watcher reads a fake status page: a valid push makes the leader read the page
now instead of in an hour; everything else is refused, logged and changes nothing."""

from __future__ import annotations

import asyncio
import io
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from bot import hooks, logs
from bot.app import Runtime, assemble, config_secrets, run
from bot.hooks import MAX_BODY, SECRET_HEADER
from bot.models import Status
from bot.server import Health, build_app, start_server
from bot.store import MemoryStore, RedisStore, Store
from config.loader import ConfigError, build_config
from config.schema import TocsinConfig
from tests.fakes.status_server import FakeStatusServer, fixture_bytes
from tests.redis_server import RedisServer, free_port
from tests.test_cli import TOCSIN, cli_env

SECRET = "hook-SECRET-7f3a9c41d2e86b05"
SUMMARY = "/api/v2/summary.json"
GREEN = "statuspage_summary_anthropic_operational.json"
TROUBLE = "statuspage_summary_anthropic_minor_monitoring.json"
INCIDENT_PUSH = fixture_bytes("statuspage_webhook_incident_atlassian_example.json")
COMPONENT_PUSH = fixture_bytes("statuspage_webhook_component_update_atlassian_example.json")
CONSOLE = "0qbwn08sd68x"  # degraded, under incident 978mjkgw6mh7, in the TROUBLE fixture
INCIDENT = "978mjkgw6mh7"
JSON = {"Content-Type": "application/json"}


def _document(status_url: str, port: int, **extra: Any) -> dict[str, Any]:
    return {
        "server": {"host": "127.0.0.1", "port": port},
        "console": {"enabled": False},
        "watch": {"jitter": "0s"},
        "providers": [
            {
                "id": "acme",
                "name": "Acme AI",
                "status_page": {"kind": "statuspage", "url": status_url, "interval": "1h"},
            },
            {
                "id": "zeta",
                "name": "Zeta AI",
                "probe": {"url": "http://127.0.0.1:9/v1/models", "enabled": False},
            },
        ],
        "hooks": {"secret": SECRET},
        **extra,
    }


async def _until(predicate: Callable[[], bool | Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result if isinstance(result, bool) else await result:
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def _serving(base: str) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(200):
            try:
                await client.get(f"{base}/healthz")
                return
            except httpx.TransportError:
                await asyncio.sleep(0.05)
    raise AssertionError(f"{base} never answered")


def _reads(server: FakeStatusServer) -> int:
    return server.count(SUMMARY)


@dataclass
class Served:
    runtime: Runtime
    store: Store
    base: str
    status: FakeStatusServer

    def hook(self, provider: str = "acme") -> str:
        return f"{self.base}/hooks/statuspage/{provider}"


@pytest.fixture
async def served(status_server: FakeStatusServer) -> AsyncIterator[Served]:
    """The whole runtime (watcher, dispatcher, server) on the embedded store, its status page
    read once at start and then not for an hour."""
    status_server.set_fixture(SUMMARY, GREEN)
    port = free_port()
    config = build_config(_document(status_server.url, port))
    store = MemoryStore()
    runtime = assemble(config, "all", store=store, targets=[], env={})
    stop = asyncio.Event()
    task = asyncio.create_task(run(runtime, stop))
    base = f"http://127.0.0.1:{port}"
    await _serving(base)
    await _until(lambda: _reads(status_server) == 1)
    yield Served(runtime, store, base, status_server)
    stop.set()
    await task


async def _hooks_counted(client: httpx.AsyncClient, base: str, result: str) -> float:
    text = (await client.get(f"{base}/metrics")).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "tocsin_hooks_total" and sample.labels.get("result") == result:
                return float(sample.value)
    return 0.0


async def _incident_recorded(store: Store) -> bool:
    state = (await store.states()).get(f"acme/{CONSOLE}")
    return (
        state is not None
        and state.status is Status.DEGRADED
        and state.incident is not None
        and state.incident.id == INCIDENT
    )


# -- accepted pushes ------------------------------------------------------------------------


async def test_an_incident_push_makes_the_watcher_read_the_page_now(served: Served) -> None:
    served.status.set_fixture(SUMMARY, TROUBLE)  # the page changed; the next read is in 1 h
    async with httpx.AsyncClient() as client:
        accepted_before = await _hooks_counted(client, served.base, "accepted")
        pushed = time.monotonic()
        answer = await client.post(
            served.hook(), params={"secret": SECRET}, content=INCIDENT_PUSH, headers=JSON
        )
        assert answer.status_code == 202
        assert answer.json() == {"accepted": True, "provider": "acme", "poll": "requested"}
        await _until(lambda: _incident_recorded(served.store), timeout=5)
        took = time.monotonic() - pushed
        accepted_after = await _hooks_counted(client, served.base, "accepted")
    assert _reads(served.status) == 2
    assert took < 3.0  # the poll loop's half second plus one read, not the hour
    assert accepted_after == accepted_before + 1
    events = await served.store.recent_events(20)
    assert any(e.incident is not None and e.incident.id == INCIDENT for e in events)


async def test_a_component_push_with_the_secret_in_a_header(served: Served) -> None:
    served.status.set_fixture(SUMMARY, TROUBLE)
    async with httpx.AsyncClient() as client:
        answer = await client.post(
            served.hook(), content=COMPONENT_PUSH, headers={**JSON, SECRET_HEADER: SECRET}
        )
    assert answer.status_code == 202
    assert answer.json()["poll"] == "requested"
    await _until(lambda: _incident_recorded(served.store), timeout=5)
    assert _reads(served.status) == 2


async def test_a_burst_of_pushes_costs_at_most_one_read_a_second(served: Served) -> None:
    async with httpx.AsyncClient() as client:
        pushes = [
            client.post(served.hook(), params={"secret": SECRET}, content=INCIDENT_PUSH)
            for _ in range(50)
        ]
        answers = await asyncio.gather(*pushes)
    assert {a.status_code for a in answers} == {202}
    await _until(lambda: _reads(served.status) >= 2, timeout=3)
    await asyncio.sleep(2.0)
    reads = [r.at for r in served.status.requests if r.path == SUMMARY][1:]
    assert 1 <= len(reads) <= 2, reads
    if len(reads) == 2:  # the burst straddled two takes: the second read waits out the gap
        assert reads[1] - reads[0] >= 0.95


# -- refused pushes -------------------------------------------------------------------------


async def test_a_wrong_or_missing_secret_is_401_and_reads_nothing(served: Served) -> None:
    served.status.set_fixture(SUMMARY, TROUBLE)
    wrong = "hook-WRONG-0000000000000000"
    attempts: list[dict[str, Any]] = [
        {},
        {"params": {"secret": wrong}},
        {"headers": {SECRET_HEADER: wrong}},
        {"params": {"secret": SECRET[:-1]}},
        {"params": {"token": SECRET}},  # not where tocsin looks
        {"headers": {"Authorization": f"Bearer {SECRET}"}},
    ]
    async with httpx.AsyncClient() as client:
        before = await _hooks_counted(client, served.base, "unauthorized")
        answers = [
            await client.post(served.hook(), content=INCIDENT_PUSH, **attempt)
            for attempt in attempts
        ]
        after = await _hooks_counted(client, served.base, "unauthorized")
    assert [a.status_code for a in answers] == [401] * len(attempts)
    assert all("missing or wrong secret" in a.json()["error"] for a in answers)
    assert all(SECRET not in a.text for a in answers)
    assert after == before + len(attempts)
    await asyncio.sleep(1.5)  # three turns of the poll loop
    assert _reads(served.status) == 1
    assert not await _incident_recorded(served.store)


MALFORMED = [
    (b"{not json", "application/json", 400, "the body is not JSON"),
    (b"\xff\xfe{\x00", "application/json", 400, "the body is not JSON"),
    (b"", "application/json", 400, "the body is empty"),
    (
        b"<!DOCTYPE html><html><body>Just a moment...</body></html>",
        "text/html",
        400,
        "the body is HTML",
    ),
    (b"[]", "application/json", 400, "must be a JSON object, not an array"),
    (b'"incident"', "application/json", 400, "must be a JSON object, not a string"),
    (b'{"incident": {"id": "x"}}', "application/json", 400, "`page` is missing"),
    (b'{"page": "up", "incident": {"id": "x"}}', "application/json", 400, "`page` must be"),
    (b'{"page": {"id": "p"}}', "application/json", 400, "neither `incident` nor"),
    (b'{"page": {"id": "p"}, "incident": {"name": "x"}}', "application/json", 400, "incident.id"),
    (
        b'{"page": {"id": "p"}, "component_update": {"new_status": "major_outage"}}',
        "application/json",
        400,
        "`component_update.component_id` is missing",
    ),
    (
        b'{"page": {"id": "p"}, "incident": {"id": "i"}, '
        b'"component_update": {"component_id": "c"}}',
        "application/json",
        400,
        "both `incident` and `component_update`",
    ),
    (b'{"page": {"id": 7}, "incident": {"id": "i"}}', "application/json", 400, "`page.id` must"),
    # Nested 100,000 deep: refused before the recursive parser could raise RecursionError.
    (b"[" * 100_000, "application/json", 400, "nested 100000 deep (at most 64)"),
    (
        b'{"page": {"id": "p"}, "incident": {"id": "i", "name": ' + b'{"a": ' * 50_000 + b"1",
        "application/json",
        400,
        "nested 50002 deep",
    ),
    (b"{" + b" " * MAX_BODY + b"}", "application/json", 413, "the limit is"),
]


async def test_malformed_bodies_are_refused_and_the_server_keeps_serving(served: Served) -> None:
    async with httpx.AsyncClient() as client:
        before = await _hooks_counted(client, served.base, "bad_request")
        for body, content_type, status, phrase in MALFORMED:
            answer = await client.post(
                served.hook(),
                params={"secret": SECRET},
                content=body,
                headers={"Content-Type": content_type},
            )
            assert answer.status_code == status, (body[:60], answer.text)
            reason = answer.json()["error"]
            assert phrase in reason, reason
            assert "\n" not in reason
        after = await _hooks_counted(client, served.base, "bad_request")
        assert after == before + len(MALFORMED) - 1  # the oversized one counts as too_large
        await asyncio.sleep(1.2)
        assert _reads(served.status) == 1  # not one of them asked for a read
        good = await client.post(served.hook(), params={"secret": SECRET}, content=INCIDENT_PUSH)
        health = await client.get(f"{served.base}/healthz")
    assert good.status_code == 202
    assert health.json()["status"] == "ok"
    await _until(lambda: _reads(served.status) == 2, timeout=3)


async def test_an_oversized_body_without_a_length_is_cut_off(served: Served) -> None:
    """Chunked, so no Content-Length gives it away: the reader stops at the cap."""
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        piece = b" " * 65536
        for _ in range(64):  # 4 MiB
            sent += len(piece)
            yield piece

    async with httpx.AsyncClient() as client:
        answer = await client.post(served.hook(), params={"secret": SECRET}, content=chunks())
        health = await client.get(f"{served.base}/healthz")
    assert answer.status_code == 413
    assert "over the limit" in answer.json()["error"]
    assert health.status_code == 200


async def test_a_body_that_trickles_in_is_408_and_frees_the_connection(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Headers sent, then the body a byte at a time (or not at all): the push is refused once
    its time is up, instead of holding the connection for as long as the sender likes."""
    monkeypatch.setattr(hooks, "BODY_TIMEOUT", 0.5)
    port = int(served.base.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            f"POST /hooks/statuspage/acme?secret={SECRET} HTTP/1.1\r\nHost: x\r\n"
            "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{".encode()
        )
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(4096), 10)  # a guard, not a timing
    finally:
        writer.close()
        await writer.wait_closed()
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b"longer than 0.5s" in answer
    assert _reads(served.status) == 1


async def test_an_unknown_provider_is_404_and_one_without_a_page_409(served: Served) -> None:
    async with httpx.AsyncClient() as client:
        unknown = await client.post(
            served.hook("acmee"), params={"secret": SECRET}, content=INCIDENT_PUSH
        )
        pageless = await client.post(
            served.hook("zeta"), params={"secret": SECRET}, content=INCIDENT_PUSH
        )
        unauthenticated = await client.post(served.hook("acmee"), content=INCIDENT_PUSH)
    assert unknown.status_code == 404
    assert unknown.json()["error"] == ("unknown provider 'acmee'; configured providers: acme, zeta")
    assert pageless.status_code == 409
    assert "nothing to re-poll" in pageless.json()["error"]
    assert unauthenticated.status_code == 401  # which providers exist is not for strangers
    await asyncio.sleep(1.2)
    assert _reads(served.status) == 1


async def test_the_secret_never_reaches_the_logs(status_server: FakeStatusServer) -> None:
    """Not registered with the scrubber here, so nothing hides a leak: the code must not log
    it at all. (``tocsin run`` registers it too, as it does every SecretStr of the config.)"""
    out = io.StringIO()
    logs.configure("debug", "json", stream=out)
    status_server.set_fixture(SUMMARY, GREEN)
    port = free_port()
    config = build_config(_document(status_server.url, port))
    assert SECRET in [s.get_secret_value() for s in config_secrets(config)]
    assert SECRET not in repr(config)
    runtime = assemble(config, "all", store=MemoryStore(), targets=[], env={})
    stop = asyncio.Event()
    task = asyncio.create_task(run(runtime, stop))
    base = f"http://127.0.0.1:{port}"
    await _serving(base)
    await _until(lambda: _reads(status_server) == 1)
    wrong = "hook-WRONG-1111111111111111"
    async with httpx.AsyncClient() as client:
        hook = f"{base}/hooks/statuspage/acme"
        await client.post(hook, params={"secret": SECRET}, content=INCIDENT_PUSH)
        await client.post(hook, headers={SECRET_HEADER: SECRET}, content=COMPONENT_PUSH)
        await client.post(hook, params={"secret": wrong}, content=INCIDENT_PUSH)
        await client.post(hook, params={"secret": SECRET}, content=b"<html>" + SECRET.encode())
        await client.post(f"{base}/hooks/statuspage/nope", params={"secret": SECRET})
    await _until(lambda: _reads(status_server) >= 2, timeout=5)
    stop.set()
    await task
    text = out.getvalue()
    assert text.count("status page push accepted") == 2
    assert text.count("status page push refused") == 3
    assert "reading a status page early" in text
    assert SECRET not in text
    assert wrong not in text


async def test_without_a_secret_there_is_no_inbound_route(status_server: FakeStatusServer) -> None:
    document = _document(status_server.url, free_port())
    del document["hooks"]
    config = build_config(document)
    port = free_port()
    app = build_app(config, MemoryStore(), Health(store=MemoryStore()))
    runner = await start_server(app, "127.0.0.1", port)
    try:
        async with httpx.AsyncClient() as client:
            hook = f"http://127.0.0.1:{port}/hooks/statuspage/acme"
            answer = await client.post(hook, params={"secret": SECRET}, content=INCIDENT_PUSH)
    finally:
        await runner.cleanup()
    assert not config.hooks.enabled
    assert answer.status_code == 404


async def test_only_post_is_answered(served: Served) -> None:
    async with httpx.AsyncClient() as client:
        answer = await client.get(served.hook(), params={"secret": SECRET})
    assert answer.status_code == 405


# -- across replicas --------------------------------------------------------------------------


async def test_a_push_to_a_replica_without_a_watcher_is_read_by_the_watcher_process(
    status_server: FakeStatusServer, redis_server: RedisServer, key_prefix: str, tmp_path: Path
) -> None:
    """The push lands on a ``bot`` replica (no watcher); a ``tocsin run --role watcher``
    process on the same Redis takes the request and reads the page."""
    status_server.set_fixture(SUMMARY, GREEN)
    port = free_port()
    store_section = {"store": {"url": redis_server.url, "prefix": key_prefix}}
    document = _document(status_server.url, port, **store_section)
    path = tmp_path / "tocsin.yaml"
    path.write_text(yaml.safe_dump({**document, "server": {"enabled": False}}))
    watcher = await asyncio.create_subprocess_exec(
        str(TOCSIN),
        "run",
        "--role",
        "watcher",
        "--config",
        str(path),
        cwd=tmp_path,
        env=cli_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    receiver = assemble(build_config(document), "bot", targets=[], env={})
    assert receiver.watcher is None
    stop = asyncio.Event()
    task = asyncio.create_task(run(receiver, stop))
    reader = RedisStore(redis_server.url, prefix=key_prefix)
    try:
        await _serving(f"http://127.0.0.1:{port}")
        await _until(lambda: _reads(status_server) == 1, timeout=20)  # the watcher leads
        status_server.set_fixture(SUMMARY, TROUBLE)
        async with httpx.AsyncClient() as client:
            answer = await client.post(
                f"http://127.0.0.1:{port}/hooks/statuspage/acme",
                params={"secret": SECRET},
                content=INCIDENT_PUSH,
            )
        assert answer.status_code == 202
        await _until(lambda: _incident_recorded(reader), timeout=10)
        assert _reads(status_server) == 2
    finally:
        stop.set()
        await task
        await reader.close()
        watcher.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(watcher.communicate(), 20)
    assert watcher.returncode == 0, (out + err).decode()
    assert b"reading a status page early" in out + err


async def test_a_push_while_redis_is_away_is_503_and_the_replica_lives_on(
    status_server: FakeStatusServer, own_redis: RedisServer
) -> None:
    port = free_port()
    document = _document(status_server.url, port, store={"url": own_redis.url})
    receiver = assemble(build_config(document), "bot", targets=[], env={})
    stop = asyncio.Event()
    task = asyncio.create_task(run(receiver, stop))
    hook = f"http://127.0.0.1:{port}/hooks/statuspage/acme"
    try:
        await _serving(f"http://127.0.0.1:{port}")
        own_redis.kill()
        async with httpx.AsyncClient() as client:
            away = await client.post(hook, params={"secret": SECRET}, content=INCIDENT_PUSH)
            own_redis.start()
            back = await client.post(hook, params={"secret": SECRET}, content=INCIDENT_PUSH)
    finally:
        stop.set()
        await task
    assert away.status_code == 503
    assert away.json()["error"] == "the store is unreachable; try again later"
    assert back.status_code == 202


# -- configuration ----------------------------------------------------------------------------


def test_the_secret_can_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not build_config({"providers": []}).hooks.enabled
    monkeypatch.setenv("TOCSIN_HOOK_SECRET", SECRET)
    config: TocsinConfig = build_config({"providers": []})
    assert config.hooks.secret is not None
    assert config.hooks.secret.get_secret_value() == SECRET
    overridden = build_config({"providers": [], "hooks": {"secret": "file-secret-0123456789"}})
    assert overridden.hooks.secret is not None
    assert overridden.hooks.secret.get_secret_value() == SECRET  # the environment wins


def test_a_short_secret_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as caught:
        build_config({"providers": [], "hooks": {"secret": "hunter2"}})
    [line] = caught.value.errors
    assert line.startswith("hooks.secret: use at least 16 characters")
    assert "hunter2" not in line
