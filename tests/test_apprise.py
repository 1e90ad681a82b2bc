"""Apprise end to end: ``json://`` and ``form://`` targets pointed at a local aiohttp server
(real sockets, Apprise's own HTTP code), driven by the real dispatcher: title and body arrive,
hostile text is bounded and defanged, a failing endpoint is retried until the notice lands,
and the URL's credentials never reach a log line, a dead letter or ``config validate``."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Self

import pytest
from aiohttp import web

from bot.dispatcher import Dispatcher, DispatcherSettings, Outcome
from bot.logs import configure
from bot.models import Event, EventIncident, Status, utcnow
from bot.notice_context import NoticeContext
from bot.store import MemoryStore
from config.loader import build_config
from config.schema import TocsinConfig
from handlers import build_targets
from tests.test_cli import tocsin, write_config

PASSWORD = "hunter2SecretPassw0rd"
TOKEN = "tok3nInThePathXYZ987"


class Receiver:
    """An HTTP endpoint that records what Apprise posts and can fail the first N calls."""

    def __init__(self) -> None:
        self.port = 0
        self.received: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        self.failures = 0
        self._runner: web.AppRunner | None = None

    async def start(self) -> Self:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = self._runner.addresses[0][1]
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        if self.failures:
            self.failures -= 1
            self.statuses.append(500)
            return web.Response(status=500)
        if request.content_type == "application/json":
            body = dict(await request.json())
        else:
            body = dict(await request.post())
        body["_path"] = request.path
        body["_auth"] = request.headers.get("Authorization", "")
        self.received.append(body)
        self.statuses.append(200)
        return web.Response(text="ok")

    def json_url(self) -> str:
        return f"json://tocsin:{PASSWORD}@127.0.0.1:{self.port}/hook/{TOKEN}"

    def form_url(self) -> str:
        return f"form://127.0.0.1:{self.port}/form/{TOKEN}"


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = await Receiver().start()
    yield server
    await server.close()


def _document(*urls: str) -> dict[str, Any]:
    return {
        "console": {"enabled": False},
        "server": {"enabled": False},
        "providers": [
            {"id": "acme", "name": "Acme AI", "probe": {"url": "http://127.0.0.1:9/v1/models"}}
        ],
        "apprise": {"targets": [{"url": url, "name": f"t{i}"} for i, url in enumerate(urls)]},
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
    settings = DispatcherSettings(consumer="t", retry_initial=0.05, retry_max=0.3)
    dispatcher = Dispatcher(store, targets, NoticeContext(config, store), settings)
    try:
        return await dispatcher.deliver_now(event), store
    finally:
        for notifier in {id(t.notifier): t.notifier for t in targets}.values():
            await notifier.close()


INCIDENT = EventIncident(
    id="i1", title="Elevated errors", status="investigating", url="https://status.acme.test/i1"
)


async def test_json_and_form_targets_get_title_and_body(receiver: Receiver) -> None:
    config = build_config(_document(receiver.json_url(), receiver.form_url()))
    outcomes, _ = await _deliver(config, _event(incident=INCIDENT))
    assert outcomes == {"apprise:t0": "delivered", "apprise:t1": "delivered"}
    by_path = {r["_path"]: r for r in receiver.received}
    posted = by_path[f"/hook/{TOKEN}"]
    assert "Acme AI: major outage" in posted["title"]
    assert "Detection:" in posted["message"]
    assert f"Elevated errors: {INCIDENT.url}" in posted["message"]
    assert posted["type"] == "failure"
    assert posted["_auth"].startswith("Basic ")  # the URL's user and password, as Apprise sends
    form = by_path[f"/form/{TOKEN}"]
    assert form["title"] == posted["title"]
    assert form["message"] == posted["message"]


HOSTILE = "<at>everyone</at> [click](javascript:alert(1)) @here <script>x</script>"


async def test_hostile_text_is_bounded_and_defanged(receiver: Receiver) -> None:
    incident = EventIncident(
        id="i", title=HOSTILE, status="investigating", update="w " * 50_000, url="javascript:x"
    )
    event = _event(incident=incident, provider_name=HOSTILE * 50, detail="d" * 100_000)
    outcomes, _ = await _deliver(build_config(_document(receiver.json_url())), event)
    assert outcomes["apprise:t0"] == "delivered"
    [posted] = receiver.received
    assert len(posted["title"]) <= 250
    assert len(posted["message"]) <= 4000
    for text in (posted["title"], posted["message"]):
        assert "<" not in text
        assert "](" not in text
        assert "@here" not in text
        assert "javascript:" not in text


async def test_a_failing_endpoint_is_retried_until_the_notice_lands(receiver: Receiver) -> None:
    log = io.StringIO()
    configure("debug", stream=log)
    receiver.failures = 2
    outcomes, store = await _deliver(build_config(_document(receiver.json_url())), _event())
    assert outcomes["apprise:t0"] == "delivered"
    assert receiver.statuses == [500, 500, 200]
    assert len(receiver.received) == 1
    text = log.getvalue()
    assert "retrying" in text
    assert "Apprise does not say why" in text
    for secret in (PASSWORD, TOKEN):
        assert secret not in text
        assert secret not in json.dumps(await store.dead_letters())


async def test_apprise_logs_nothing_of_the_url(
    receiver: Receiver, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """Apprise's own logger (which names URLs) is silent, even at debug level."""
    caplog.set_level("DEBUG")
    configure("debug")
    receiver.failures = 1
    await _deliver(build_config(_document(receiver.json_url())), _event())
    captured = capsys.readouterr()
    for secret in (PASSWORD, TOKEN):
        assert secret not in captured.out + captured.err
        assert secret not in caplog.text
    assert not [r for r in caplog.records if r.name.startswith("apprise")]


# --------------------------------------------------------------------------- config


def test_validate_refuses_an_unknown_scheme_without_the_secret(tmp_path: Path) -> None:
    path = write_config(tmp_path, _document(f"nosuch://user:{PASSWORD}@host/{TOKEN}"))
    result = tocsin("config", "validate", str(path), cwd=tmp_path)
    assert result.code == 2, result
    assert "apprise.targets[0].url" in result.both
    assert "'nosuch' is not a service Apprise knows" in result.both
    assert PASSWORD not in result.both
    assert TOKEN not in result.both


def test_validate_refuses_a_url_apprise_cannot_use(tmp_path: Path) -> None:
    path = write_config(tmp_path, _document(f"tgram://{PASSWORD}"))  # no chat id, bad token
    result = tocsin("config", "validate", str(path), cwd=tmp_path)
    assert result.code == 2, result
    assert "Apprise cannot use this tgram:// URL" in result.both
    assert PASSWORD not in result.both


def test_validate_sums_up_apprise_without_the_url(tmp_path: Path) -> None:
    path = write_config(tmp_path, _document(f"json://u:{PASSWORD}@127.0.0.1:9/{TOKEN}"))
    result = tocsin("config", "validate", str(path), cwd=tmp_path)
    assert result.code == 0, result
    assert "apprise targets: 1" in result.out
    assert PASSWORD not in result.both
