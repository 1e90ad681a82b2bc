"""The embedded store in a SQLite file (issue 16): a restart forgets nothing, a hostile file is
read in part or refused by path, one process per data directory, no secret in the file.

Real files in ``tmp_path``, no mocks; the contract suite (tests/test_store.py) runs on it too.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import sqlite3
import stat
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from structlog.testing import capture_logs

from bot.app import register_config_secrets
from bot.history.model import Cursor, DayDelta, EpisodeRecord, LatencySample
from bot.models import ComponentState, Event, StateUpdate, Status, utcnow
from bot.notifier import Intent, Target
from bot.store import NOTIFIERS_GROUP, SqliteStore, StoreRefused, make_store
from bot.store.sqlite import FILE_NAME, SCHEMA_VERSION
from config.loader import build_config
from config.schema import StoreConfig, TocsinConfig
from handlers.console import targets as console_targets
from tests.fakes.recording import RecordingNotifier
from tests.fakes.status_server import FakeStatusServer
from tests.test_cli import atocsin, cli_env, table_status, tocsin
from tests.test_pipeline import API, MODELS, SUMMARY, _until
from tests.test_store_hostile import DROPPED, HOSTILE

GROUP = NOTIFIERS_GROUP


def _update(status: Status, *, component: str = "api", event: bool = True) -> StateUpdate:
    state = ComponentState(provider="acme", component=component, status=status, last_known=status)
    made = Event(type="state_changed", provider="acme", component=component, to=status)
    return StateUpdate(state=state, event=made if event else None, status_changed=True)


async def _opened(data: Path, **kwargs: Any) -> SqliteStore:
    store = SqliteStore(data, **kwargs)
    await store.open()
    return store


# -- a restart forgets nothing -------------------------------------------------------------------


async def test_everything_survives_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = await _opened(data)
    await first.ensure_group(GROUP)
    await first.apply([_update(Status.MAJOR_OUTAGE), _update(Status.DEGRADED, component="web")])
    delivered = await first.read_group(GROUP, "tocsin", count=10, block_ms=100)
    assert len(delivered) == 2
    await first.ack(GROUP, delivered[0].id)  # the second: delivered, never acknowledged
    await first.mark_sent("e1", "chat:C1", "ts-1")
    await first.set_thread("ep1", "chat:C1", {"ts": "1.000"})
    await first.dead_letter({"target": "chat:C1", "error": "channel_not_found"})
    await first.set_value("escalations", "{}")
    await first.set_value("soon", "gone", ttl=0.05)
    assert await first.claim_value("reminder:1", "sent", ttl=60)
    assert await first.put_record("silences", "k1", '{"a": 1}', only_new=True)
    assert await first.acquire_lease("watcher", "me", ttl=60)
    today = utcnow().date()
    days = {today - timedelta(days=1): DayDelta({Status.OPERATIONAL: 86_000.0}, {Status.DEGRADED})}
    cursor = Cursor(status=Status.MAJOR_OUTAGE, since=utcnow(), event_id="e9")
    episode = EpisodeRecord(id="ep1", provider="acme", started=utcnow() - timedelta(hours=1))
    await first.write_history("acme", days, cursor, episode)
    sample = LatencySample("acme", "api", utcnow() - timedelta(minutes=5), 123.0)
    await first.add_latency([sample])
    await first.close()
    await asyncio.sleep(0.06)

    again = await _opened(data)
    states = await again.states()
    assert states["acme/api"].status is Status.MAJOR_OUTAGE
    assert states["acme/web"].status is Status.DEGRADED
    history = await again.history("acme/api", utcnow() - timedelta(days=1))
    assert [s for _, s in history] == [Status.MAJOR_OUTAGE]
    assert [e.to for e in await again.recent_events()] == [Status.DEGRADED, Status.MAJOR_OUTAGE]
    await again.ensure_group(GROUP)
    [pending] = await again.pending_own(GROUP, "tocsin", count=10)
    assert (pending.id, pending.event) == (delivered[1].id, delivered[1].event)
    assert pending.deliveries == 2
    assert await again.read_group(GROUP, "tocsin", count=10, block_ms=50) == []  # nothing anew
    [newer] = await again.apply([_update(Status.OPERATIONAL)])
    assert int(newer.split("-")[0]) > int(delivered[1].id.split("-")[0])
    assert await again.sent("e1", "chat:C1") == "ts-1"
    assert await again.get_thread("ep1", "chat:C1") == {"ts": "1.000"}
    assert await again.dead_letters() == [{"target": "chat:C1", "error": "channel_not_found"}]
    assert await again.get_value("escalations") == "{}"
    assert await again.get_value("soon") is None
    assert not await again.claim_value("reminder:1", "sent", ttl=60)  # still one caller's
    assert not await again.put_record("silences", "k1", "{}", only_new=True)
    assert await again.records("silences") == {"k1": '{"a": 1}'}
    assert await again.lease_holder("watcher") is None  # leases are one process's
    assert (await again.history_cursors())["acme"] == cursor
    [day] = await again.day_records("acme", today - timedelta(days=3), today)
    assert (day.seconds, day.seen) == ({Status.OPERATIONAL: 86_000.0}, {Status.DEGRADED})
    assert [e.id for e in await again.episodes("acme", utcnow())] == ["ep1"]
    assert await again.latency("acme", utcnow() - timedelta(hours=1)) == [sample]
    assert await again.delete_record("silences", "k1", only_if='{"a": 1}')
    await again.close()
    third = await _opened(data)
    assert await third.records("silences") == {}
    await third.close()


async def test_the_file_stays_bounded(tmp_path: Path) -> None:
    store = await _opened(tmp_path / "data", stream_maxlen=100)
    for _ in range(250):
        await store.append(Event(type="escalation", provider="acme"))
    old = LatencySample("acme", "api", utcnow() - timedelta(hours=49), 1.0)
    await store.add_latency([old, LatencySample("acme", "api", utcnow(), 2.0)])
    ancient = {utcnow().date() - timedelta(days=500): DayDelta({Status.OPERATIONAL: 1.0})}
    cursor = Cursor(status=Status.OPERATIONAL, since=utcnow(), event_id="e1")
    await store.write_history("acme", ancient, cursor, None)
    await store.close()
    db = sqlite3.connect(tmp_path / "data" / FILE_NAME)
    assert db.execute("SELECT count(*), min(seq) FROM stream").fetchone() == (100, 151)
    assert db.execute("SELECT count(*) FROM latency").fetchone() == (1,)
    assert db.execute("SELECT count(*) FROM days").fetchone() == (0,)
    db.close()


# -- where, and whose --------------------------------------------------------------------------


async def test_the_directory_and_file_are_the_owners_alone(tmp_path: Path) -> None:
    data = tmp_path / "deep" / "data"
    store = await _opened(data)
    await store.apply([_update(Status.DEGRADED)])
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    for name in os.listdir(data):
        mode = stat.S_IMODE((data / name).stat().st_mode)
        assert mode & 0o077 == 0, (name, oct(mode))
    await store.close()


def test_make_store_picks_the_file_unless_memory(tmp_path: Path) -> None:
    made = make_store(StoreConfig())
    assert isinstance(made, SqliteStore)
    assert made.path == Path("tocsin-data") / FILE_NAME  # relative to the working directory
    assert type(make_store(StoreConfig(data_dir="memory"))).__name__ == "MemoryStore"


def test_the_data_dir_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from config.loader import load_config

    monkeypatch.setenv("TOCSIN_DATA_DIR", "/var/lib/elsewhere")
    assert load_config(None).store.data_dir == "/var/lib/elsewhere"


_HOLDER = """
import asyncio, sys
from bot.store import SqliteStore

async def main():
    store = SqliteStore(sys.argv[1])
    await store.open()
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    await store.close()

asyncio.run(main())
"""


async def test_a_second_process_on_the_same_data_dir_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(data)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parent.parent,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(StoreRefused, match=f"pid {holder.pid}.*{data}"):
            await _opened(data)
        result = await atocsin("run", "--data-dir", str(data), cwd=tmp_path)
        assert result.code == 1, result
        assert "another tocsin" in result.err
        assert str(data) in result.err
        assert "Traceback" not in result.both
    finally:
        assert holder.stdin is not None
        assert holder.stdout is not None
        holder.stdin.close()
        holder.wait(10)
        holder.stdout.close()
    store = await _opened(data)  # free again
    await store.close()


# -- a hostile file ----------------------------------------------------------------------------


async def test_a_newer_or_foreign_file_is_refused_by_path_and_left_alone(tmp_path: Path) -> None:
    newer = tmp_path / "newer"
    store = await _opened(newer)
    await store.apply([_update(Status.DEGRADED)])
    await store.close()
    db = sqlite3.connect(newer / FILE_NAME)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    before = (newer / FILE_NAME).read_bytes()
    with pytest.raises(StoreRefused, match=f"{newer / FILE_NAME}.*newer tocsin"):
        await _opened(newer)
    assert (newer / FILE_NAME).read_bytes() == before

    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / FILE_NAME).write_bytes(b"not a database at all " * 100)
    with pytest.raises(StoreRefused, match=f"{garbage / FILE_NAME} is not a readable"):
        await _opened(garbage)
    assert (garbage / FILE_NAME).read_bytes() == b"not a database at all " * 100
    result = tocsin("run", "--data-dir", str(garbage), cwd=tmp_path)
    assert result.code == 1, result
    assert "is not a readable tocsin store" in result.err
    assert "Traceback" not in result.both


async def test_hostile_rows_are_dropped_once_each_and_the_rest_loads(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = await _opened(data)
    await store.ensure_group(GROUP)
    await store.apply([_update(Status.DEGRADED)])
    await store.set_thread("ep1", "chat:C1", {"ts": "1.000"})
    cursor = Cursor(status=Status.OPERATIONAL, since=utcnow(), event_id="e1")
    await store.write_history("acme", {}, cursor, None)
    await store.close()
    db = sqlite3.connect(data / FILE_NAME)
    for index, value in enumerate(HOSTILE.values()):
        db.execute("INSERT INTO states VALUES (?, CAST(? AS TEXT))", (f"evil/{index}", value))
        db.execute("INSERT INTO cursors VALUES (?, CAST(? AS TEXT))", (f"evil{index}", value))
        db.execute(
            "INSERT INTO episodes VALUES ('acme', ?, ?, CAST(? AS TEXT))",
            (f"ep{index}", time.time(), value),
        )
        db.execute("INSERT INTO dead (body) VALUES (CAST(? AS TEXT))", (value,))
        db.execute("INSERT INTO stream VALUES (?, CAST(? AS TEXT))", (1000 + index, value))
    wrong_types = [
        "INSERT INTO states VALUES ('evil/int', 42)",
        "INSERT INTO states VALUES ('evil/blob', x'00ff')",
        "INSERT INTO changes VALUES ('acme/api', 'yesterday', 'down')",
        "INSERT INTO changes VALUES ('acme/api', 1e300, 'degraded')",
        "INSERT INTO kv VALUES ('thread:x:y', 'v', 'never')",
        "INSERT INTO kv VALUES (7, 'v', NULL)",
        "INSERT INTO pending VALUES ('nobody', 1, 'c', 0, 1)",
        "INSERT INTO pending VALUES ('notifiers', 1, 'c', 'then', 'many')",
        "INSERT INTO days VALUES ('acme', 'not a day', '{}', '')",
        "INSERT INTO days VALUES ('acme', '2999-01-01', '{\"operational\": -5}', '')",
        "INSERT INTO latency VALUES ('acme', 'now', 'api', 'fast')",
        "INSERT INTO records VALUES ('silences', 'k', x'00ff')",
        "INSERT INTO groups VALUES ('other', 'last')",
    ]
    for sql in wrong_types:
        db.execute(sql)
    db.commit()
    db.close()
    with capture_logs() as logs:
        again = await _opened(data)
        states = await again.states()
    dropped = [entry for entry in logs if entry["event"] == DROPPED]
    assert list(states) == ["acme/api"]
    assert await again.get_thread("ep1", "chat:C1") == {"ts": "1.000"}
    assert list(await again.history_cursors()) == ["acme"]
    assert await again.episodes("acme", utcnow()) == []
    assert await again.dead_letters() == []
    assert await again.get_value("thread:x:y") is None
    assert len(await again.history("acme/api", utcnow() - timedelta(days=1))) == 1
    assert await again.latency("acme", utcnow() - timedelta(days=1)) == []
    assert await again.records("silences") == {}
    # the stream keeps what is text and not too big as poison entries (dead-lettered, as
    # Redis's would be); the new entries get ids after every stored one
    entries = await again.read_group(GROUP, "a", count=100, block_ms=0)
    assert entries[0].event is not None  # the good one
    assert len(entries) > 1
    assert all(e.event is None and e.error for e in entries[1:])
    [newer] = await again.apply([_update(Status.OPERATIONAL)])
    assert int(newer.split("-")[0]) >= 1000 + len(HOSTILE)
    await again.close()
    assert len(dropped) >= 4 * len(HOSTILE) + len(wrong_types) - 6
    assert all(len(json.dumps(entry, default=str)) < 2000 for entry in dropped)  # short lines


# -- tocsin status reads the file --------------------------------------------------------------


async def test_status_reads_the_file_without_taking_it(tmp_path: Path) -> None:
    store = await _opened(tmp_path / "tocsin-data")  # the default place, in the working dir
    down = ComponentState(
        provider="acme", component="api", status=Status.MAJOR_OUTAGE, confirmed=True
    )
    await store.apply([StateUpdate(down, status_changed=True)])
    before = (tmp_path / "tocsin-data" / FILE_NAME).stat().st_mtime_ns
    config = {
        "providers": [{"id": "acme", "name": "Acme AI", "probe": {"url": "http://127.0.0.1:9/"}}]
    }
    (tmp_path / "tocsin.yaml").write_text(json.dumps(config))
    result = await atocsin("status", cwd=tmp_path, env=cli_env())  # while tocsin holds it
    assert result.code == 0, result
    assert table_status(result) == "major_outage (confirmed)"
    assert (tmp_path / "tocsin-data" / FILE_NAME).stat().st_mtime_ns == before
    await store.close()
    elsewhere = await atocsin("status", "--data-dir", str(tmp_path / "none"), cwd=tmp_path)
    assert elsewhere.code == 0, elsewhere
    assert "has no file at" in elsewhere.out
    assert not (tmp_path / "none").exists()


# -- end to end: a restart mid-outage announces nothing twice ------------------------------------

SECRETS = {
    "slack_bot": "xoxb-1111-2222-SQLITESECRETSLACK",
    "signing": "sqlitesecretsigning0123456789ab",
    "webhook": "https://discord.com/api/webhooks/123456/" + "SQLITESECRETWEBHOOK" + "x" * 49,
    "routing": "R0UTINGKEYSQLITESECRET0000000000",
    "opsgenie": "0psgen1e-sq11te-5ecret-key-00000000",
    "hook": "hook-secret-SQLITE-0123456789abcdef",
    "probe": "sk-acme-SQLITE-SECRET-PROBE-KEY",
}


def _config(server: FakeStatusServer, data: Path) -> TocsinConfig:
    return build_config(
        {
            "store": {"data_dir": str(data)},
            "server": {"enabled": False},
            "instance": "sqlite-test",
            "watch": {"jitter": "0s", "timeout": "2s"},
            # (no app token nor Discord bot token: they would start chat front ends here)
            "slack": {"bot_token": SECRETS["slack_bot"], "signing_secret": SECRETS["signing"]},
            "discord": {"webhooks": [{"url": SECRETS["webhook"]}]},
            "hooks": {"secret": SECRETS["hook"]},
            "escalation": [
                # (not due during the test: nothing pages anyone)
                {"kind": "pagerduty", "routing_key": SECRETS["routing"], "after": "1h"},
                {"kind": "opsgenie", "api_key": SECRETS["opsgenie"], "after": "1h"},
            ],
            "providers": [
                {
                    "id": "acme",
                    "name": "Acme AI",
                    "status_page": {
                        "kind": "statuspage",
                        "url": server.url,
                        "components": [API],
                        "interval": "300ms",
                    },
                    "probe": {
                        "url": f"{server.url}{MODELS}",
                        "interval": "300ms",
                        "timeout": "1s",
                        "auth": {"kind": "bearer", "env": "ACME_KEY"},
                    },
                }
            ],
        }
    )


class _Runtime:
    def __init__(self, config: TocsinConfig, targets: list[Target]) -> None:
        from bot.app import assemble, run

        self.store = SqliteStore(config.store.data_dir)
        env = {"ACME_KEY": SECRETS["probe"]}
        self.runtime = assemble(config, "all", store=self.store, targets=targets, env=env)
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(run(self.runtime, self.stop))

    async def halt(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 15)


async def test_a_restart_mid_outage_neither_reannounces_nor_loses_the_thread(
    status_server: FakeStatusServer, tmp_path: Path
) -> None:
    status_server.set_fixture(SUMMARY, "statuspage_summary_anthropic_operational.json")
    status_server.set_json(MODELS, {"data": []})
    config = _config(status_server, tmp_path / "data")
    register_config_secrets(config, env={"ACME_KEY": SECRETS["probe"]})
    platform = RecordingNotifier()
    console = Console(file=io.StringIO(), width=100, force_terminal=False)

    def targets() -> list[Target]:
        return [platform.target("chat:C1"), *console_targets(config, console=console)]

    first = _Runtime(config, targets())
    await asyncio.sleep(1.0)
    assert platform.posts == []
    # the key echoed back: what a careless API does; it must not reach the file
    status_server.set_status(MODELS, 503, f'{{"error": "overloaded {SECRETS["probe"]}"}}'.encode())
    await _until(lambda: len(platform.posts) == 1)
    opening = platform.posts[0]
    assert opening.intent is Intent.OPEN
    await asyncio.sleep(0.5)
    await first.halt()  # a restart in the middle of the outage

    second = _Runtime(config, targets())
    await asyncio.sleep(1.5)
    assert len(platform.posts) == 1, "a restarted tocsin must not announce the outage again"
    status_server.set_json(MODELS, {"data": []})
    await _until(lambda: len(platform.posts) == 2)
    recovery = platform.posts[1]
    assert (recovery.intent, recovery.thread_ts) == (Intent.RESOLVE, opening.ts)
    await asyncio.sleep(0.5)
    await second.halt()
    assert [p.intent for p in platform.posts] == [Intent.OPEN, Intent.RESOLVE]

    written = b"".join(path.read_bytes() for path in (tmp_path / "data").iterdir())
    assert b"acme" in written  # the check reads the right files
    for name, secret in SECRETS.items():
        assert secret.encode() not in written, name
    token = SECRETS["webhook"].rsplit("/", 1)[1]
    assert token.encode() not in written


# -- the figures in the notes --------------------------------------------------------------------


async def test_write_latency_and_bytes_per_provider_day(tmp_path: Path) -> None:
    """Not a timing bound (CI machines vary): the figures, printed with ``-s``, and a loose
    guard that a write stays far below a millisecond-scale stall of the loop."""
    store = await _opened(tmp_path / "data")
    started = time.perf_counter()
    for index in range(500):
        await store.set_value(f"sent:e{index}:chat:C1", "1", ttl=3600)
    per_write = (time.perf_counter() - started) / 500
    providers, first = 10, utcnow().date() - timedelta(days=89)
    for offset in range(90):
        day = first + timedelta(days=offset)
        for number in range(providers):
            delta = DayDelta({Status.OPERATIONAL: 80_000.0, Status.DEGRADED: 6_400.0})
            cursor = Cursor(status=Status.OPERATIONAL, since=utcnow(), event_id=f"e{offset}")
            episode = (
                EpisodeRecord(
                    id=f"p{number}-{offset}",
                    provider=f"p{number}",
                    started=utcnow() - timedelta(days=89 - offset),
                    ended=utcnow() - timedelta(days=89 - offset) + timedelta(hours=1),
                )
                if offset % 7 == 0
                else None
            )
            await store.write_history(f"p{number}", {day: delta}, cursor, episode)
    await store.close()
    db = sqlite3.connect(tmp_path / "data" / FILE_NAME)
    db.execute("DELETE FROM kv")
    db.commit()
    db.execute("VACUUM")
    db.close()
    size = (tmp_path / "data" / FILE_NAME).stat().st_size
    print(f"\nwrite: {per_write * 1e6:.0f} µs; {size / (providers * 90):.0f} B per provider-day")
    assert per_write < 0.01
    assert size / (providers * 90) < 1000
