"""Shared fixtures: a real redis-server of our own, the fake status server, isolation.

The suite runs in parallel (``make test``: pytest-xdist, ``-n 4 --dist loadgroup``). Each
worker is its own process with its own session: its own ``redis_server`` (per-worker port
slice, see :mod:`tests.redis_server`), its own temporary directories. The ``chaos`` tests,
which run several real processes each and hold timing bounds, run one at a time in one
``xdist_group`` (on one worker, first), beside the rest of the suite.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
import structlog

from config.loader import ENV_VARIABLES
from tests.fakes.status_server import FakeStatusServer
from tests.redis_server import RedisServer

#: The xdist group of every ``chaos`` test: one at a time, never two of them side by side.
CHAOS_GROUP = "chaos"


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups (--dist loadgroup)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Chaos tests first (the longest part of the suite starts at once instead of ending the
    run last), and all in one xdist group."""
    chaos = [item for item in items if item.get_closest_marker("chaos")]
    for item in chaos:
        if not item.get_closest_marker("xdist_group"):
            item.add_marker(pytest.mark.xdist_group(CHAOS_GROUP))
    if os.environ.get("PYTEST_XDIST_WORKER"):  # a serial run keeps the files' order
        chosen = set(chaos)
        items[:] = chaos + [item for item in items if item not in chosen]


@pytest.hookimpl(tryfirst=True)  # before the xdist worker sends the ids to the controller
def pytest_collection_finish(session: pytest.Session) -> None:
    """``--dist loadgroup`` tells the controller a test's group by a suffix of the id it
    sends (``tests/test_x.py::test_y@chaos``). pytest-xdist writes it to ``item._nodeid``,
    which pytest 9.2 no longer reads (the id is ``item._id``), so no test was grouped at all,
    silently (pytest-dev/pytest-xdist#1386). Until xdist does, the suffix is set here; if
    neither way works, the run stops here rather than lose the groups without a word."""
    if not session.config.getoption("loadgroup", False):  # set in xdist's workers only
        return
    for item in session.items:
        names = {
            str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
            for mark in item.iter_markers("xdist_group")
        }
        if not names:
            continue
        suffix = "@" + "_".join(sorted(names))  # as xdist names a test of several groups
        if item.nodeid.endswith(suffix):
            continue  # xdist's own suffix took effect
        grouped = item.nodeid + suffix
        node_id = getattr(item, "_id", None)
        parse = getattr(type(node_id), "parse", None)
        if parse is not None:
            item._id = parse(grouped)  # type: ignore[attr-defined]
        if item.nodeid != grouped:
            raise pytest.UsageError(
                f"--dist loadgroup cannot group {item.nodeid}: this pytest-xdist and pytest "
                "do not agree on test ids (see tests/conftest.py)"
            )


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the session, on a free port the suite chose."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server for one test, free to be killed and restarted."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def key_prefix() -> str:
    """A prefix of keys no other test uses, so tests share a server without flushing it."""
    return f"t{uuid.uuid4().hex[:10]}:"


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_server.url, decode_responses=False)
    yield client
    await client.aclose()


@pytest.fixture
async def status_server() -> AsyncIterator[FakeStatusServer]:
    server = await FakeStatusServer().start()
    yield server
    await server.close()


@pytest.fixture(autouse=True)
def _no_ambient_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests never read the developer's own secrets, settings or config file."""
    for name in ENV_VARIABLES:  # every variable the loader reads
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(autouse=True)
def _fresh_logging() -> Iterator[None]:
    """A test that configures logging (tocsin's CLI does) does not leak it into the next."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)
