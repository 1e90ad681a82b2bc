"""The synthetic probe against a local fake API: the DESIGN.md classification of answers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from bot.app import register_config_secrets
from bot.models import ProbeError, SourceKind, Status
from bot.sources import build_sources
from bot.sources.probe import ProbeSource
from bot.tracker import Tracker
from bot.watcher import check_source
from config.loader import build_config
from config.schema import TocsinConfig
from tests.fakes.status_server import FakeStatusServer

MODELS = "/v1/models"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as made:
        yield made


def _probe(server: FakeStatusServer, **kw: object) -> ProbeSource:
    return ProbeSource("acme", f"{server.url}{MODELS}", key_hint="ACME_API_KEY", **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("code", "status", "error"),
    [
        (200, Status.OPERATIONAL, None),
        (204, Status.OPERATIONAL, None),
        (429, Status.OPERATIONAL, ProbeError.RATE_LIMITED),
        (500, Status.MAJOR_OUTAGE, ProbeError.HTTP),
        (503, Status.MAJOR_OUTAGE, ProbeError.HTTP),
        (529, Status.MAJOR_OUTAGE, ProbeError.HTTP),
        (401, Status.UNKNOWN, ProbeError.AUTH),
        (403, Status.UNKNOWN, ProbeError.AUTH),
        (404, Status.UNKNOWN, ProbeError.CONFIG),
    ],
)
async def test_status_codes_are_classified(
    status_server: FakeStatusServer,
    client: httpx.AsyncClient,
    code: int,
    status: Status,
    error: ProbeError | None,
) -> None:
    status_server.set_status(MODELS, code, b"{}")
    [obs] = await _probe(status_server).check(client)
    assert (obs.status, obs.error) == (status, error)
    assert obs.kind is SourceKind.PROBE
    assert obs.latency_ms is not None
    if error is ProbeError.AUTH:
        assert "ACME_API_KEY" in (obs.detail or "")


async def test_a_redirect_is_a_probe_configuration_problem(
    status_server: FakeStatusServer, client: httpx.AsyncClient
) -> None:
    status_server.set_redirect(MODELS, "/login")
    [obs] = await _probe(status_server).check(client)
    assert (obs.status, obs.error) == (Status.UNKNOWN, ProbeError.CONFIG)


async def test_slow_answers_are_degraded(
    status_server: FakeStatusServer, client: httpx.AsyncClient
) -> None:
    status_server.set_slow(MODELS, 0.3)
    [obs] = await _probe(status_server, latency_budget=0.1).check(client)
    assert obs.status is Status.DEGRADED
    assert obs.latency_ms is not None
    assert obs.latency_ms >= 300


async def test_timeouts_and_refused_connections_are_network_failures(
    status_server: FakeStatusServer, client: httpx.AsyncClient
) -> None:
    status_server.set_hang(MODELS)
    [hung] = await _probe(status_server, timeout=0.3).check(client)
    assert (hung.status, hung.error) == (Status.MAJOR_OUTAGE, ProbeError.TIMEOUT)
    refused = ProbeSource("acme", "http://127.0.0.1:9/v1/models", timeout=1)
    [obs] = await refused.check(client)
    assert (obs.status, obs.error) == (Status.MAJOR_OUTAGE, ProbeError.NETWORK)


async def test_failure_status_is_configurable(
    status_server: FakeStatusServer, client: httpx.AsyncClient
) -> None:
    status_server.set_status(MODELS, 502)
    [obs] = await _probe(status_server, failure_status=Status.PARTIAL_OUTAGE).check(client)
    assert obs.status is Status.PARTIAL_OUTAGE


@pytest.mark.parametrize(
    ("auth", "header", "value", "query"),
    [
        ({"kind": "bearer", "env": "ACME_KEY"}, "Authorization", "Bearer sk-test-123456", ""),
        (
            {"kind": "header", "header": "x-api-key", "env": "ACME_KEY"},
            "x-api-key",
            "sk-test-123456",
            "",
        ),
        ({"kind": "query", "param": "key", "env": "ACME_KEY"}, None, None, "key=sk-test-123456"),
    ],
)
async def test_the_key_is_sent_the_configured_way(
    status_server: FakeStatusServer,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    header: str | None,
    value: str | None,
    query: str,
) -> None:
    status_server.set_status(MODELS, 200, b"{}")
    config = build_config(
        {
            "providers": [
                {
                    "id": "acme",
                    "name": "Acme",
                    "probe": {"url": f"{status_server.url}{MODELS}", "auth": auth},
                }
            ]
        }
    )
    plan = build_sources(config, env={"ACME_KEY": "sk-test-123456"})
    [source] = plan.sources
    await source.check(client)
    seen = status_server.requests[-1]
    if header:
        assert seen.headers.get(header) == value
    assert seen.query == query


async def test_a_probe_without_its_key_is_skipped_with_a_reason() -> None:
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
            ]
        }
    )
    plan = build_sources(config, env={})
    assert plan.sources == []
    assert [s.provider for s in plan.skipped] == ["acme"]
    assert "ACME_KEY" in plan.skipped[0].reason


# -------------------------------------------------------------- keys pasted with a newline

PASTED_KEY = "sk-test-PASTED-7f3a9c"


def _config_with_key(server: FakeStatusServer, auth: dict[str, str]) -> TocsinConfig:
    return build_config(
        {
            "providers": [
                {
                    "id": "acme",
                    "name": "Acme",
                    "probe": {"url": f"{server.url}{MODELS}", "auth": auth},
                }
            ]
        }
    )


@pytest.mark.parametrize(
    ("auth", "header", "value"),
    [
        ({"kind": "bearer", "env": "ACME_KEY"}, "Authorization", f"Bearer {PASTED_KEY}"),
        ({"kind": "header", "header": "x-api-key", "env": "ACME_KEY"}, "x-api-key", PASTED_KEY),
    ],
)
async def test_a_key_pasted_with_a_stray_newline_or_space_is_stripped(
    status_server: FakeStatusServer,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    header: str,
    value: str,
) -> None:
    status_server.set_status(MODELS, 200, b"{}")
    config = _config_with_key(status_server, auth)
    [source] = build_sources(config, env={"ACME_KEY": f" {PASTED_KEY}\n"}).sources
    [obs] = await check_source(source, client)
    assert (obs.status, obs.error, obs.detail) == (Status.OPERATIONAL, None, None)
    assert status_server.requests[-1].headers[header] == value


async def test_a_key_from_the_config_file_is_stripped_too(
    status_server: FakeStatusServer, client: httpx.AsyncClient
) -> None:
    status_server.set_status(MODELS, 200, b"{}")
    auth = {"kind": "bearer", "key": f"{PASTED_KEY}\r\n"}
    [source] = build_sources(_config_with_key(status_server, auth), env={}).sources
    [obs] = await check_source(source, client)
    assert obs.status is Status.OPERATIONAL
    assert status_server.requests[-1].headers["Authorization"] == f"Bearer {PASTED_KEY}"


@pytest.mark.parametrize("kind", ["bearer", "header", "query"])
@pytest.mark.parametrize("inner", ["\n", "\r\n", "\t", "\u00e9"])
async def test_a_key_with_a_line_break_inside_is_a_config_alert_and_never_shown(
    status_server: FakeStatusServer, client: httpx.AsyncClient, kind: str, inner: str
) -> None:
    """Three rounds (past the failure threshold): one admin config alert, no outage, and the
    key in no detail, event or state, in any of its spellings."""
    status_server.set_status(MODELS, 200, b"{}")
    key = f"sk-test-PASTED{inner}7f3a9c\n"
    env = {"ACME_KEY": key}
    config = _config_with_key(status_server, {"kind": kind, "env": "ACME_KEY"})
    register_config_secrets(config, env)
    [source] = build_sources(config, env=env).sources
    tracker = Tracker()
    updates = []
    for _ in range(3):
        [obs] = await check_source(source, client)
        assert (obs.status, obs.error) == (Status.UNKNOWN, ProbeError.CONFIG)
        assert "ACME_KEY" in (obs.detail or "")
        updates += tracker.observe([obs])
    assert status_server.count(MODELS) == 0  # nothing sent with a broken key
    events = [u.event for u in updates if u.event is not None]
    assert [(e.type, e.audience) for e in events] == [("config_alert", "admins")]
    assert tracker.states()["acme/api"].status is Status.UNKNOWN  # never an outage
    stored = " ".join(
        [e.to_json() for e in events] + [s.model_dump_json() for s in tracker.states().values()]
    )
    for piece in ("sk-test-PASTED", "7f3a9c", "PASTED"):
        assert piece not in stored


@pytest.mark.parametrize(
    "headers", [{"X-Org": "org-1\norg-2"}, {"X-Org": "caf\u00e9"}, {"X-Org": "\x00"}]
)
async def test_an_unsendable_header_is_a_config_problem_not_an_outage(
    status_server: FakeStatusServer, client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    status_server.set_status(MODELS, 200, b"{}")
    [obs] = await _probe(status_server, headers=headers).check(client)
    assert (obs.status, obs.error) == (Status.UNKNOWN, ProbeError.CONFIG)
    assert "check the key in ACME_API_KEY or the probe's headers" in (obs.detail or "")
    assert "org-" not in (obs.detail or "")
    assert "caf" not in (obs.detail or "")


@pytest.mark.parametrize("url", ["http://[::1/v1/models", "ftp://127.0.0.1/v1/models"])
async def test_an_unusable_probe_url_is_a_config_problem(
    client: httpx.AsyncClient, url: str
) -> None:
    [obs] = await ProbeSource("acme", url).check(client)
    assert (obs.status, obs.error) == (Status.UNKNOWN, ProbeError.CONFIG)
    assert "check the probe's url" in (obs.detail or "")
