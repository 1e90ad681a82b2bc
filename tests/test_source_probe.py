"""The synthetic probe against a local fake API: the DESIGN.md classification of answers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from bot.models import ProbeError, SourceKind, Status
from bot.sources import build_sources
from bot.sources.probe import ProbeSource
from config.loader import build_config
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
