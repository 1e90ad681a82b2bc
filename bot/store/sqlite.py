"""The embedded store, kept in a local SQLite file (issue 16): restarts forget nothing.

:class:`SqliteStore` is the :class:`~bot.store.memory.MemoryStore` (same semantics, same
in-memory structures, so reads cost what they cost there) that loads everything from
``<data_dir>/tocsin.sqlite3`` on :meth:`open` and writes every change through to the file.
A change that tocsin must not lose (a state and its event, a sent mark, a thread, a record,
history) is committed before memory changes and before the caller hears it is done: a write
that fails raises :class:`~bot.store.base.StoreUnavailable` with memory untouched. What a
crash may lose is the bookkeeping of deliveries (a consumer group's position, a pending entry,
an acknowledgement): then an entry is delivered again, and the sent marks keep it from being
told twice.

The writes are small and run inline on the event loop: in WAL mode with ``synchronous=NORMAL``
a commit is a write to the log, no fsync (tens of microseconds; the figure is in the notes).
Loading at :meth:`open` runs in a worker thread.

What stays in memory only (one process, nothing to share): leases, presence records, poll
requests and apps' signal buckets.

One process per data directory: :meth:`open` takes an exclusive lock (``tocsin.lock``), and a
second tocsin refuses with :class:`StoreRefused`. ``tocsin status`` opens the file read-only
(``readonly=True``), without the lock, and changes nothing in it.

Everything read back is hostile (the file may be old, foreign, edited or damaged): a row that
does not decode is dropped and said once (:func:`bot.store.decode.drop`), the rest loads; a
file that is not a tocsin store, or one written by a newer tocsin, is refused at open, by path,
and never rewritten.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import math
import os
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO, Any, TypeVar

from pydantic import BaseModel

from bot.history.model import (
    DAYS_KEPT,
    EPISODES_READ,
    LATENCY_KEPT,
    LATENCY_SAMPLES_MAX,
    Cursor,
    DayDelta,
    DayRecord,
    EpisodeRecord,
    LatencySample,
)
from bot.logs import get_logger
from bot.models import Event, StateUpdate, Status, utcnow
from bot.outside import STORED_MAX, Unreadable, load_json, one_line
from bot.store.base import (
    DEAD_LETTERS_KEPT,
    HISTORY_DAYS,
    RECORD_KEY_MAX,
    RECORD_VALUE_MAX,
    RECORDS_READ,
    StoreUnavailable,
    StreamEntry,
)
from bot.store.decode import decode_state, drop, read_record
from bot.store.memory import MemoryStore, _Group, _Pending, _seq_of

log = get_logger("tocsin.store")

#: The file's schema version (``PRAGMA user_version``); a newer file is refused.
SCHEMA_VERSION = 1
FILE_NAME = "tocsin.sqlite3"
LOCK_NAME = "tocsin.lock"
#: Values under these names are one process's and stay in memory (see the module doc).
_MEMORY_ONLY = ("lease:", "presence:")
#: Expired values are deleted from the file every this many writes (and at open).
_PURGE_EVERY = 1024
#: At most this many rows of a table are loaded (states, values, component changes).
_ROWS_READ = 200_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS states (key TEXT PRIMARY KEY, body TEXT) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS changes (key TEXT, at REAL, status TEXT);
CREATE INDEX IF NOT EXISTS changes_key_at ON changes (key, at);
CREATE TABLE IF NOT EXISTS stream (seq INTEGER PRIMARY KEY, body TEXT);
CREATE TABLE IF NOT EXISTS groups (name TEXT PRIMARY KEY, last INTEGER) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pending (
    grp TEXT, seq INTEGER, consumer TEXT, delivered REAL, deliveries INTEGER,
    PRIMARY KEY (grp, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS kv (name TEXT PRIMARY KEY, value TEXT, expires REAL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dead (id INTEGER PRIMARY KEY, body TEXT);
CREATE TABLE IF NOT EXISTS records (
    tbl TEXT, key TEXT, value TEXT, PRIMARY KEY (tbl, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS days (
    provider TEXT, day TEXT, seconds TEXT, seen TEXT, PRIMARY KEY (provider, day)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS episodes (
    provider TEXT, id TEXT, started REAL, body TEXT, PRIMARY KEY (provider, id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cursors (provider TEXT PRIMARY KEY, body TEXT) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS latency (provider TEXT, at REAL, component TEXT, ms REAL);
CREATE INDEX IF NOT EXISTS latency_provider_at ON latency (provider, at);
"""

Op = tuple[str, Sequence[object]]
Parsed = TypeVar("Parsed", bound=BaseModel)


class StoreRefused(Exception):
    """The embedded store's file cannot be used (another tocsin holds it, it is not a tocsin
    store, a newer tocsin wrote it, the directory is not writable): a message for the user,
    naming the path; retrying does not help."""


def store_path(data_dir: str | Path) -> Path:
    return Path(data_dir) / FILE_NAME


class SqliteStore(MemoryStore):
    shared = False

    def __init__(
        self, data_dir: str | Path, *, stream_maxlen: int = 10_000, readonly: bool = False
    ) -> None:
        super().__init__(stream_maxlen=stream_maxlen)
        self.data_dir = Path(data_dir)
        self.path = store_path(self.data_dir)
        self.readonly = readonly
        self._db: sqlite3.Connection | None = None
        self._lock: IO[bytes] | None = None
        self._writes = 0

    # opening and closing --------------------------------------------------------------

    async def open(self) -> None:
        if self._db is not None:
            return
        await asyncio.to_thread(self._open_sync)

    def _open_sync(self) -> None:
        try:
            if not self.readonly:
                self._prepare_dir()
                self._take_lock()
            self._db = self._connect()
            self._load()
        except StoreRefused:
            self._close_sync()
            raise
        except sqlite3.Error as exc:
            self._close_sync()
            raise StoreRefused(
                f"{self.path} is not a readable tocsin store ({one_line(str(exc), 200)}); it was "
                "left as it is: move it away (a new one is made) or set store.data_dir"
            ) from None
        except OSError as exc:
            self._close_sync()
            raise StoreRefused(
                f"cannot use {self.data_dir} for the embedded store: {exc.strerror or exc}"
            ) from None

    def _prepare_dir(self) -> None:
        if not self.data_dir.exists():
            self.data_dir.mkdir(mode=0o700, parents=True)
            os.chmod(self.data_dir, 0o700)  # whatever the umask
        if not self.path.exists():
            os.close(os.open(self.path, os.O_CREAT | os.O_RDWR | os.O_EXCL, 0o600))
        if self.path.stat().st_mode & 0o077:  # an older or copied file: ours alone
            os.chmod(self.path, 0o600)

    def _take_lock(self) -> None:
        lock_path = self.data_dir / LOCK_NAME
        handle = open(os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o600), "r+b")  # noqa: SIM115
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = handle.read(20).decode("ascii", "replace").strip()
            handle.close()
            raise StoreRefused(
                f"another tocsin (pid {other or 'unknown'}) is running on {self.data_dir}: "
                "one process per data directory (stop it, or give this one another "
                "--data-dir, or share state through store.url)"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()).encode())
        handle.flush()
        self._lock = handle

    def _connect(self) -> sqlite3.Connection:
        if self.readonly:
            uri = f"{self.path.resolve().as_uri()}?mode=ro"
            db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        else:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.text_factory = _text  # a row of bytes that are not UTF-8 is dropped, not raised
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreRefused(
                    f"{self.path} was written by a newer tocsin (schema {version}, this one "
                    f"reads {SCHEMA_VERSION}); it was left as it is: upgrade tocsin, or move "
                    "the file away"
                )
            check = db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(f"damaged: {check}")
            if not self.readonly:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.executescript(_SCHEMA)
                if version < SCHEMA_VERSION:
                    db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except BaseException:
            db.close()
            raise
        return db

    async def close(self) -> None:
        self._close_sync()

    def _close_sync(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._lock is not None:
            self._lock.close()  # and the lock with it
            self._lock = None

    async def ping(self) -> bool:
        return self._db is not None

    # writing -------------------------------------------------------------------------------

    def _write(self, ops: Iterable[Op]) -> None:
        """Commit ``ops`` in one transaction, or raise StoreUnavailable (nothing written)."""
        db = self._db
        if db is None or self.readonly:
            return
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                for sql, args in ops:
                    db.execute(sql, args)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot write {self.path}: {one_line(str(exc), 200)}") from exc

    def _write_after(self, ops: Iterable[Op]) -> None:
        """Bookkeeping already done in memory: a failed write is logged, not raised (a crash
        then delivers an entry again; its sent mark keeps it from being told twice)."""
        try:
            self._write(ops)
        except StoreUnavailable as exc:
            log.error("the embedded store's file missed a write", error=str(exc))

    # state and events ----------------------------------------------------------------------

    async def apply(self, updates: Sequence[StateUpdate]) -> list[str]:
        ops: list[Op] = []
        horizon = (utcnow() - timedelta(days=HISTORY_DAYS)).timestamp()
        seq = self._seq
        for update in updates:
            state = update.state
            ops.append(
                (
                    "INSERT OR REPLACE INTO states VALUES (?, ?)",
                    (state.key, state.model_dump_json()),
                )
            )
            if update.status_changed:
                ops.append(
                    (
                        "INSERT INTO changes VALUES (?, ?, ?)",
                        (state.key, state.since.timestamp(), state.status.value),
                    )
                )
                ops.append(("DELETE FROM changes WHERE key = ? AND at < ?", (state.key, horizon)))
            if update.event is not None:
                seq += 1
                ops.append(("INSERT INTO stream VALUES (?, ?)", (seq, update.event.to_json())))
        if seq != self._seq:
            ops.append(("DELETE FROM stream WHERE seq <= ?", (seq - self.stream_maxlen,)))
        self._write(ops)
        return await super().apply(updates)

    async def append(self, event: Event) -> str:
        seq = self._seq + 1
        self._write(
            [
                ("INSERT INTO stream VALUES (?, ?)", (seq, event.to_json())),
                ("DELETE FROM stream WHERE seq <= ?", (seq - self.stream_maxlen,)),
            ]
        )
        return await super().append(event)

    # consumer groups ---------------------------------------------------------------------

    async def ensure_group(self, group: str, *, from_start: bool = False) -> None:
        if group not in self._groups:
            await super().ensure_group(group, from_start=from_start)
            last = self._groups[group].last
            try:
                self._write([("INSERT OR IGNORE INTO groups VALUES (?, ?)", (group, last))])
            except StoreUnavailable:
                del self._groups[group]  # as if never made: the caller retries
                raise

    async def read_group(
        self, group: str, consumer: str, count: int, block_ms: int
    ) -> list[StreamEntry]:
        entries = await super().read_group(group, consumer, count, block_ms)
        if entries:
            state = self._groups[group]
            ops = [("UPDATE groups SET last = ? WHERE name = ?", (state.last, group))]
            self._write_after(ops + self._pending_ops(group, entries))
        return entries

    async def pending_own(self, group: str, consumer: str, count: int) -> list[StreamEntry]:
        entries = await super().pending_own(group, consumer, count)
        self._write_after(self._pending_ops(group, entries))
        return entries

    async def claim_stale(
        self, group: str, consumer: str, min_idle_ms: int, count: int
    ) -> list[StreamEntry]:
        entries = await super().claim_stale(group, consumer, min_idle_ms, count)
        self._write_after(self._pending_ops(group, entries))
        return entries

    async def touch(self, group: str, consumer: str, entry_ids: Sequence[str]) -> None:
        await super().touch(group, consumer, entry_ids)
        self._write_after(self._pending_ops(group, entry_ids))

    async def ack(self, group: str, entry_id: str) -> None:
        await super().ack(group, entry_id)
        self._write_after(
            [("DELETE FROM pending WHERE grp = ? AND seq = ?", (group, _seq_of(entry_id)))]
        )

    def _pending_ops(self, group: str, entries: Sequence[StreamEntry] | Sequence[str]) -> list[Op]:
        state = self._groups.get(group)
        if state is None:
            return []
        ops: list[Op] = []
        for entry in entries:
            seq = _seq_of(entry if isinstance(entry, str) else entry.id)
            pending = state.pending.get(seq)
            if pending is not None:
                delivered = _wall(pending.delivered_at)
                row = (group, seq, pending.consumer, delivered, pending.deliveries)
                ops.append(("INSERT OR REPLACE INTO pending VALUES (?, ?, ?, ?, ?)", row))
        return ops

    # delivery bookkeeping and values -----------------------------------------------------

    async def dead_letter(self, record: dict[str, Any]) -> None:
        self._write(
            [
                ("INSERT INTO dead (body) VALUES (?)", (json.dumps(record),)),
                (
                    "DELETE FROM dead WHERE id <= (SELECT max(id) FROM dead) - ?",
                    (DEAD_LETTERS_KEPT,),
                ),
            ]
        )
        await super().dead_letter(record)

    async def set_value(self, name: str, value: str, ttl: float | None = None) -> None:
        if not name.startswith(_MEMORY_ONLY):
            now = time.time()
            ops: list[Op] = [
                (
                    "INSERT OR REPLACE INTO kv VALUES (?, ?, ?)",
                    (name, value, now + ttl if ttl else None),
                )
            ]
            self._writes += 1
            if self._writes % _PURGE_EVERY == 0:  # now and then, forget what has expired
                ops.append(("DELETE FROM kv WHERE expires <= ?", (now,)))
            self._write(ops)
        await super().set_value(name, value, ttl)

    async def delete_value(self, name: str) -> None:
        if not name.startswith(_MEMORY_ONLY):
            self._write([("DELETE FROM kv WHERE name = ?", (name,))])
        await super().delete_value(name)

    # records -----------------------------------------------------------------------------

    async def put_record(self, table: str, key: str, value: str, *, only_new: bool = False) -> bool:
        if only_new and key in self._tables.get(table, {}):
            return False
        self._write([("INSERT OR REPLACE INTO records VALUES (?, ?, ?)", (table, key, value))])
        return await super().put_record(table, key, value, only_new=only_new)

    async def delete_record(self, table: str, key: str, *, only_if: str | None = None) -> bool:
        rows = self._tables.get(table, {})
        if key not in rows or (only_if is not None and rows[key] != only_if):
            return False
        self._write([("DELETE FROM records WHERE tbl = ? AND key = ?", (table, key))])
        return await super().delete_record(table, key, only_if=only_if)

    # history that lasts --------------------------------------------------------------------

    async def write_history(
        self,
        provider: str,
        days: Mapping[date, DayDelta],
        cursor: Cursor,
        episode: EpisodeRecord | None,
    ) -> None:
        kept = self._days.get(provider, {})
        ops: list[Op] = []
        for day, delta in days.items():
            old = kept.get(day)
            seconds = dict(old.seconds) if old else {}
            for status, more in delta.seconds.items():
                seconds[status] = seconds.get(status, 0.0) + more
            seen = (old.seen if old else set()) | delta.seen
            row = (provider, day.isoformat(), _seconds_json(seconds), _seen_text(seen))
            ops.append(("INSERT OR REPLACE INTO days VALUES (?, ?, ?, ?)", row))
        horizon = utcnow() - timedelta(days=DAYS_KEPT)
        ops.append(
            (
                "DELETE FROM days WHERE provider = ? AND day < ?",
                (provider, horizon.date().isoformat()),
            )
        )
        ops.append(
            ("INSERT OR REPLACE INTO cursors VALUES (?, ?)", (provider, cursor.model_dump_json()))
        )
        if episode is not None:
            row2 = (provider, episode.id, episode.started.timestamp(), episode.model_dump_json())
            ops.append(("INSERT OR REPLACE INTO episodes VALUES (?, ?, ?, ?)", row2))
        ops.append(
            (
                "DELETE FROM episodes WHERE provider = ? AND started < ?",
                (provider, horizon.timestamp()),
            )
        )
        self._write(ops)
        await super().write_history(provider, days, cursor, episode)
        episodes = self._episodes.get(provider, {})
        for old_id in [k for k, e in episodes.items() if e.started < horizon]:
            del episodes[old_id]

    async def add_latency(self, samples: Sequence[LatencySample]) -> None:
        if not samples:
            return
        horizon = (utcnow() - LATENCY_KEPT).timestamp()
        ops: list[Op] = [
            (
                "INSERT INTO latency VALUES (?, ?, ?, ?)",
                (s.provider, s.at.timestamp(), s.component, s.ms),
            )
            for s in samples
        ]
        for provider in {s.provider for s in samples}:
            ops.append(("DELETE FROM latency WHERE provider = ? AND at < ?", (provider, horizon)))
        self._write(ops)
        await super().add_latency(samples)
        capped: list[Op] = []
        for provider in {s.provider for s in samples}:
            kept = self._latency.get(provider, [])
            if len(kept) >= LATENCY_SAMPLES_MAX:  # the oldest beyond the cap go
                first = kept[0].at.timestamp()
                capped.append(
                    ("DELETE FROM latency WHERE provider = ? AND at < ?", (provider, first))
                )
        self._write_after(capped)

    # loading (every row is hostile) -------------------------------------------------------

    def _load(self) -> None:
        db = self._db
        assert db is not None
        if not _has_tables(db):  # a new file (read-only: nothing written yet)
            return
        now_wall, now_mono = time.time(), time.monotonic()
        self._load_states(db)
        self._load_stream(db)
        self._load_groups(db, now_wall, now_mono)
        self._load_values(db, now_wall, now_mono)
        self._load_dead(db)
        self._load_records(db)
        self._load_history(db)
        if not self.readonly:
            db.execute("DELETE FROM kv WHERE expires <= ?", (now_wall,))

    def _load_states(self, db: sqlite3.Connection) -> None:
        for key, body in _rows(db, "states", "key", "body", STORED_MAX, "ORDER BY key"):
            state = decode_state(f"states/{key}", body) if isinstance(body, str) else None
            if state is None:
                if not isinstance(body, str):
                    drop("state", f"states/{key}", body, "not text")
                continue
            self._states[state.key] = state
        horizon = (utcnow() - timedelta(days=HISTORY_DAYS)).timestamp()
        query = "SELECT key, at, status FROM changes WHERE at >= ? ORDER BY at LIMIT ?"
        for key, at, status in db.execute(query, (horizon, _ROWS_READ)):
            when, known = _when(at), _status(status)
            if not isinstance(key, str) or when is None or known is None:
                drop("history entry", f"changes/{key}", f"{at}|{status}", "not a time and status")
                continue
            self._history.setdefault(key, []).append((when, known))

    def _load_stream(self, db: sqlite3.Connection) -> None:
        rows = _rows(
            db, "stream", "seq", "body", STORED_MAX, "ORDER BY seq DESC", self.stream_maxlen
        )
        kept: list[tuple[int, str]] = []
        for seq, body in rows:
            if not isinstance(seq, int) or not isinstance(body, str):
                drop("stream entry", f"stream/{seq}", body, "not text")
                continue
            kept.append((seq, body))  # not JSON or not an event: a poison entry, as in Redis
        kept.reverse()
        self._stream.extend(kept)
        last = db.execute("SELECT max(seq) FROM stream").fetchone()[0]
        self._seq = last if isinstance(last, int) else 0

    def _load_groups(self, db: sqlite3.Connection, now_wall: float, now_mono: float) -> None:
        for name, last in db.execute("SELECT name, last FROM groups LIMIT 1000"):
            if not isinstance(name, str) or not isinstance(last, int):
                drop("consumer group", f"groups/{name}", last, "not a name and a position")
                continue
            self._groups[name] = _Group(last=min(last, self._seq))
        query = "SELECT grp, seq, consumer, delivered, deliveries FROM pending LIMIT ?"
        for group, seq, consumer, delivered, deliveries in db.execute(query, (_ROWS_READ,)):
            state = self._groups.get(group) if isinstance(group, str) else None
            fine = (
                state is not None
                and isinstance(seq, int)
                and isinstance(consumer, str)
                and len(consumer) <= RECORD_KEY_MAX
                and _finite(delivered)
                and isinstance(deliveries, int)
                and deliveries >= 1
            )
            if not fine or state is None:
                drop("pending entry", f"pending/{group}/{seq}", consumer, "not a pending entry")
                continue
            at = now_mono - max(0.0, now_wall - float(delivered))
            state.pending[seq] = _Pending(consumer, at, deliveries)

    def _load_values(self, db: sqlite3.Connection, now_wall: float, now_mono: float) -> None:
        query = (
            "SELECT name, value, expires FROM kv WHERE (expires IS NULL OR expires > ?) "
            "AND length(value) <= ? AND length(name) <= ? LIMIT ?"
        )
        for name, value, expires in db.execute(
            query, (now_wall, STORED_MAX, RECORD_KEY_MAX, _ROWS_READ)
        ):
            if not isinstance(name, str) or not isinstance(value, str):
                drop("value", f"kv/{name}", value, "not text")
                continue
            if expires is not None and not _finite(expires):
                drop("value", f"kv/{name}", value, "an expiry that is not a time")
                continue
            ends = None if expires is None else now_mono + (float(expires) - now_wall)
            self._values[name] = (value, ends)
        _say_oversized(db, "kv", "name", "value", STORED_MAX)

    def _load_dead(self, db: sqlite3.Connection) -> None:
        rows = _rows(db, "dead", "id", "body", RECORD_VALUE_MAX, "ORDER BY id", DEAD_LETTERS_KEPT)
        for row_id, body in rows:
            record = (
                read_record("dead letter", f"dead/{row_id}", body)
                if isinstance(body, str)
                else None
            )
            if record is not None:
                self._dead.appendleft(record)

    def _load_records(self, db: sqlite3.Connection) -> None:
        query = (
            "SELECT tbl, key, value FROM records WHERE length(value) <= ? AND length(key) <= ? "
            "LIMIT ?"
        )
        for table, key, value in db.execute(query, (RECORD_VALUE_MAX, RECORD_KEY_MAX, _ROWS_READ)):
            if not (isinstance(table, str) and isinstance(key, str) and isinstance(value, str)):
                drop("record", f"records/{table}/{key}", value, "not text")
                continue
            rows = self._tables.setdefault(table, {})
            if len(rows) < RECORDS_READ:
                rows[key] = value
        _say_oversized(db, "records", "key", "value", RECORD_VALUE_MAX)

    def _load_history(self, db: sqlite3.Connection) -> None:
        horizon = utcnow() - timedelta(days=DAYS_KEPT)
        query = "SELECT provider, day, seconds, seen FROM days WHERE day >= ? LIMIT ?"
        for provider, day, seconds, seen in db.execute(
            query, (horizon.date().isoformat(), _ROWS_READ)
        ):
            record = _day_record(day, seconds, seen)
            if not isinstance(provider, str) or record is None:
                drop("day", f"days/{provider}/{day}", f"{seconds}|{seen}", "not a day record")
                continue
            self._days.setdefault(provider, {})[record.day] = record
        for provider, body in _rows(db, "cursors", "provider", "body", RECORD_VALUE_MAX):
            cursor = _model(Cursor, "history cursor", f"cursors/{provider}", body)
            if cursor is not None and isinstance(provider, str):
                self._cursors[provider] = cursor
        rows = db.execute(
            "SELECT provider, id, body FROM episodes WHERE started >= ? AND length(body) <= ? "
            "ORDER BY started DESC LIMIT ?",
            (horizon.timestamp(), RECORD_VALUE_MAX, _ROWS_READ),
        )
        for provider, episode_id, body in rows:
            episode = _model(EpisodeRecord, "episode", f"episodes/{provider}/{episode_id}", body)
            if episode is None or not isinstance(provider, str):
                continue
            found = self._episodes.setdefault(provider, {})
            if len(found) < EPISODES_READ * 14:  # the months of DAYS_KEPT
                found[episode.id] = episode
        _say_oversized(db, "episodes", "id", "body", RECORD_VALUE_MAX)
        since = (utcnow() - LATENCY_KEPT).timestamp()
        query = "SELECT provider, at, component, ms FROM latency WHERE at >= ? ORDER BY at LIMIT ?"
        for provider, at, component, ms in db.execute(query, (since, _ROWS_READ * 5)):
            when = _when(at)
            fine = (
                isinstance(provider, str)
                and isinstance(component, str)
                and len(component) <= 200
                and when is not None
                and _finite(ms)
                and 0 <= ms < 3_600_000
            )
            if not fine or when is None:
                drop("latency", f"latency/{provider}", f"{at}|{component}|{ms}", "not a sample")
                continue
            self._latency.setdefault(provider, []).append(
                LatencySample(provider, component, when, float(ms))
            )
        for samples in self._latency.values():
            samples[:] = samples[-LATENCY_SAMPLES_MAX:]


def _text(raw: bytes) -> str | bytes:
    """A TEXT column as str, or as the bytes it holds if they are not UTF-8 (then the row
    reads as "not text" and is dropped)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw


def _has_tables(db: sqlite3.Connection) -> bool:
    found = db.execute("SELECT count(*) FROM sqlite_master WHERE name = 'states'").fetchone()
    return bool(found[0])


def _rows(
    db: sqlite3.Connection,
    table: str,
    key: str,
    body: str,
    limit: int,
    order: str = "",
    count: int = _ROWS_READ,
) -> list[tuple[Any, Any]]:
    """``(key, body)`` of a table's rows whose body is at most ``limit`` long (the others
    are said once and not read into memory)."""
    # the names are this module's constants, never a value from outside
    query = f"SELECT {key}, {body} FROM {table} WHERE length({body}) <= ? {order} LIMIT ?"  # noqa: S608
    rows = db.execute(query, (limit, count)).fetchall()
    _say_oversized(db, table, key, body, limit)
    return rows


def _say_oversized(db: sqlite3.Connection, table: str, key: str, body: str, limit: int) -> None:
    query = f"SELECT {key}, length({body}) FROM {table} WHERE length({body}) > ? LIMIT 20"  # noqa: S608
    for name, size in db.execute(query, (limit,)):
        drop(table, f"{table}/{name}", f"{name}:{size}", f"{size} long (at most {limit})")


def _model(kind: type[Parsed], what: str, name: str, raw: object) -> Parsed | None:
    if not isinstance(raw, str):
        drop(what, name, raw, "not text")
        return None
    try:
        return kind.model_validate(load_json(raw))
    except Unreadable as exc:
        drop(what, name, raw, str(exc))
    except (ValueError, TypeError, RecursionError) as exc:  # a ValidationError among them
        drop(what, name, raw, one_line(f"{type(exc).__name__}: {exc}", 200))
    return None


def _wall(monotonic_at: float) -> float:
    return time.time() - (time.monotonic() - monotonic_at)


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _when(value: object) -> datetime | None:
    if not _finite(value):
        return None
    try:
        return datetime.fromtimestamp(float(value), UTC)  # type: ignore[arg-type]
    except (ValueError, OverflowError, OSError):
        return None


def _status(value: object) -> Status | None:
    if not isinstance(value, str):
        return None
    try:
        return Status(value)
    except ValueError:
        return None


def _seconds_json(seconds: Mapping[Status, float]) -> str:
    return json.dumps({s.value: round(v, 3) for s, v in seconds.items()}, separators=(",", ":"))


def _seen_text(seen: set[Status]) -> str:
    return ",".join(sorted(s.value for s in seen))


def _day_record(day: object, seconds: object, seen: object) -> DayRecord | None:
    if not isinstance(day, str) or not isinstance(seconds, str) or not isinstance(seen, str):
        return None
    if len(seconds) > 2000 or len(seen) > 2000:
        return None
    try:
        when = date.fromisoformat(day)
        loaded = load_json(seconds)
    except (ValueError, Unreadable):
        return None
    if not isinstance(loaded, dict):
        return None
    record = DayRecord(when)
    for name, value in loaded.items():
        status = _status(name)
        if status is None or not _finite(value) or not 0 <= value <= 86_400 * 1.01:
            return None
        record.seconds[status] = float(value)
    for name in filter(None, seen.split(",")):
        status = _status(name)
        if status is None:
            return None
        record.seen.add(status)
    return record
