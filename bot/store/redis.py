"""The Redis store: state hash, capped event stream with a consumer group, history, marks,
threads, leases and presence records (key names in :mod:`bot.store.keys`).

State, history and events of one tracker step are written in one MULTI, so the state hash and
the stream never disagree. Any connection trouble surfaces as :class:`StoreUnavailable`; the
callers decide whether to buffer or retry. What is read back is decoded by
:mod:`bot.store.decode`: a hostile value (too deep, too big, not UTF-8, the wrong JSON or Redis
type) is dropped with one log line, never raised to the reader.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar, cast

import redis.asyncio as aioredis
from pydantic import BaseModel
from redis import exceptions as redis_errors
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import MasterNotFoundError, Sentinel
from redis.backoff import ExponentialWithJitterBackoff

from bot.history.model import (
    EPISODES_READ,
    LATENCY_KEPT,
    LATENCY_SAMPLES_MAX,
    Cursor,
    DayDelta,
    DayRecord,
    EpisodeRecord,
    LatencySample,
    day_field,
    month_expiry,
    month_of,
    months,
    read_day_fields,
    seen_field,
)
from bot.logs import get_logger
from bot.models import ComponentState, Event, StateUpdate, Status, utcnow
from bot.outside import one_line
from bot.store.base import (
    DEAD_LETTERS_KEPT,
    HISTORY_DAYS,
    POLL_REQUESTS_KEPT,
    RECORD_KEY_MAX,
    RECORD_VALUE_MAX,
    RECORDS_READ,
    SENT_TTL,
    SIGNAL_PAIRS_READ,
    THREAD_TTL,
    SignalCounts,
    SignalTally,
    StoreUnavailable,
    StreamEntry,
    decode_entry,
)
from bot.store.decode import decode_state, drop, read_record, read_thread
from bot.store.keys import Keys
from config.redis_urls import is_sentinel_url, parse_sentinel_url
from config.schema import StoreTLS

log = get_logger("tocsin.store")

_ACQUIRE = """
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
_DELETE_IF = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
#: Compare-and-set with expiry: ARGV = value, ttl ms, "absent" or "equal", expected value.
_CLAIM = """
local current = redis.call('GET', KEYS[1])
if (ARGV[3] == 'absent' and current == false) or (ARGV[3] == 'equal' and current == ARGV[4]) then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""


def _text(value: object) -> str:
    """redis-py types replies as ``bytes | str``; with ``decode_responses`` they are str."""
    return value.decode() if isinstance(value, bytes) else str(value)


def _maybe_text(value: object) -> str | None:
    return None if value is None else _text(value)


@contextmanager
def other_type_ignored(what: str, key: str) -> Iterator[None]:
    """A key holding another kind of Redis value (a string where a hash belongs) reads as
    empty, said once: it is not something tocsin wrote, and must not stop the reader."""
    try:
        yield
    except redis_errors.ResponseError as exc:
        if "WRONGTYPE" not in str(exc):
            raise
        drop(what, key, "WRONGTYPE", "the key holds another kind of Redis value")


Parsed = TypeVar("Parsed", bound=BaseModel)


def _model(kind: type[Parsed], what: str, name: str, raw: object) -> Parsed | None:
    """A stored JSON value as ``kind``, or ``None`` (dropped, said once)."""
    text = _maybe_text(raw)
    if text is None or len(text) > RECORD_VALUE_MAX:
        drop(what, name, str(raw)[:200], "not text, or too big")
        return None
    try:
        return kind.model_validate_json(text)
    except (ValueError, RecursionError) as exc:
        drop(what, name, text, one_line(f"{type(exc).__name__}: {exc}", 200))
        return None


def _latency_sample(provider: str, member: str) -> LatencySample | None:
    """``{at}|{component}|{ms}`` as a sample; anything else is ignored."""
    parts = member.split("|")
    if len(parts) != 3 or len(parts[1]) > 200:
        return None
    try:
        at, ms = float(parts[0]), float(parts[2])
        when = datetime.fromtimestamp(at, UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return LatencySample(provider, parts[1], when, ms) if 0 <= ms < 3_600_000 else None


def _entries(raw: Any) -> list[StreamEntry]:
    """Stream entries ``[(id, {field: value}), ...]`` decoded, foreign ones kept as errors."""
    out = []
    for entry_id, fields in raw or []:
        event = (fields or {}).get("event")
        out.append(decode_entry(_text(entry_id), _maybe_text(event)))
    return out


@contextmanager
def unavailable_as_error() -> Iterator[None]:
    """Connection-level failures become :class:`StoreUnavailable` (with the reason), and so
    does a write refused because one of tocsin's keys holds another kind of Redis value
    (:class:`ForeignValue`): the caller waits and retries, as for an outage, while the store
    moves the foreign value aside."""
    try:
        yield
    except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError) as exc:
        raise StoreUnavailable(f"redis unreachable: {_reason(exc)}") from exc
    except redis_errors.ResponseError as exc:
        if "WRONGTYPE" not in str(exc):
            raise
        raise ForeignValue("a key of tocsin's holds another kind of Redis value") from exc


class ForeignValue(StoreUnavailable):
    """A key tocsin writes holds a value of another Redis type (not tocsin's)."""


def _reason(exc: BaseException) -> str:
    """The error in one line. redis-py's MasterNotFoundError carries the whole repr of every
    sentinel client; what each sentinel answered (``auth:AuthenticationError``) is the part
    that says what to fix."""
    text = str(exc)
    if not isinstance(exc, MasterNotFoundError):
        return text
    head = text.split(" : ", 1)[0]
    answers = re.findall(r" - (\w+:\w+)", text)
    return f"{head} (sentinels: {', '.join(answers)})" if answers else head


#: How far back (seconds) a consumer group that vanished with its stream is made again.
REGROUP_BACK = 300.0
#: Connections per process, and how long a call waits for one when all are busy.
POOL_SIZE = 100
POOL_WAIT = 5.0
#: Every connection: fail fast when Redis is away (callers buffer or retry), and notice a
#: connection a NAT or a failover silently dropped before using it.
_SOCKET_OPTIONS: dict[str, Any] = {"socket_connect_timeout": 2.0, "socket_timeout": 5.0}
_CLIENT_OPTIONS: dict[str, Any] = {
    **_SOCKET_OPTIONS,
    "decode_responses": True,
    # Bytes that are not UTF-8 (tocsin writes none) become U+FFFD instead of failing the
    # whole reply: one foreign value in the state hash must not hide every other state.
    "encoding_errors": "replace",
    "health_check_interval": 15,
}


def tls_options(tls: StoreTLS | None) -> dict[str, Any]:
    """``store.tls`` as redis-py's ``ssl_*`` keywords (only the ones given, so redis-py's
    own defaults and a URL's ``?ssl_...`` parameters stay in force otherwise)."""
    if tls is None:
        return {}
    options: dict[str, Any] = {
        "ssl_ca_certs": tls.ca_file,
        "ssl_certfile": tls.cert_file,
        "ssl_keyfile": tls.key_file,
    }
    options = {name: value for name, value in options.items() if value}
    if not tls.verify:
        options.update(ssl_cert_reqs="none", ssl_check_hostname=False)
    return options


def connect(
    url: str, *, tls: StoreTLS | None = None, sentinel_password: str | None = None
) -> tuple[aioredis.Redis, Sentinel | None]:
    """A client for ``url``, and for a ``redis+sentinel://`` URL the Sentinel it asks.

    Through Sentinel, the client's pool asks the sentinels for the master's address on every
    new connection, and drops connections to a master that became a replica: after a
    failover the next command (the callers retry) lands on the new master.
    """
    if not is_sentinel_url(url):
        # A blocking pool: a burst (a fan-out to hundreds of channels) waits for a free
        # connection instead of failing with "Too many connections", which would read as
        # Redis being away.
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=POOL_SIZE, timeout=POOL_WAIT, **_CLIENT_OPTIONS, **tls_options(tls)
        )
        return aioredis.Redis.from_pool(pool), None
    target = parse_sentinel_url(url)
    sentinel = Sentinel(  # type: ignore[no-untyped-call,unused-ignore]  # untyped before redis-py 8.2
        list(target.sentinels),
        sentinel_kwargs={**_SOCKET_OPTIONS, "password": sentinel_password, "retry": _retry()},
        username=target.username,
        password=target.password,
        db=target.db,
    )
    client = sentinel.master_for(
        target.service, redis_class=aioredis.Redis, retry=_retry(), **_CLIENT_OPTIONS
    )
    return client, sentinel


def _retry() -> Retry:
    """Two quick retries for the sentinel-managed clients. redis-py's default (ten, backing
    off to 1 s, a refused login included) asks the sentinels again and again for seconds
    while there is no master, which would stall ``/healthz`` past its deadline during a
    failover; the store's callers retry on their own."""
    return Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), retries=2)


class RedisStore:
    shared = True

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "tocsin:",
        stream_maxlen: int = 10_000,
        tls: StoreTLS | None = None,
        sentinel_password: str | None = None,
    ) -> None:
        self.url = url
        self.keys = Keys(prefix)
        self.stream_maxlen = stream_maxlen
        self.redis, self.sentinel = connect(url, tls=tls, sentinel_password=sentinel_password)
        #: A write met a foreign value: move it aside before the next one (see _guard).
        self._foreign = True  # checked once at start too

    async def open(self) -> None:
        with unavailable_as_error():
            await self.redis.ping()
        await self._heal()

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """:func:`unavailable_as_error` for the writes to tocsin's typed keys; a
        :class:`ForeignValue` has the next write move the foreign value aside first."""
        try:
            with unavailable_as_error():
                yield
        except ForeignValue:
            self._foreign = True
            raise

    async def _heal(self, *extra: tuple[str, str]) -> None:
        """Move values of the wrong Redis type out of tocsin's keys (renamed aside, not
        deleted: they may be someone's), each said once, so that writing can go on.
        ``extra``: more (key, type) pairs the coming write touches."""
        if not self._foreign:
            return
        kinds = {
            self.keys.state: "hash",
            self.keys.events: "stream",
            self.keys.dead: "list",
            self.keys.polls: "list",
            **dict(extra),
        }
        with unavailable_as_error():
            for key, kind in kinds.items():
                found = _text(await self.redis.type(key))
                if found in ("none", kind):
                    continue
                aside = f"{key}:foreign:{int(utcnow().timestamp())}"
                try:
                    await self.redis.rename(key, aside)
                except redis_errors.ResponseError:
                    continue  # another replica moved it a moment ago
                log.error(
                    "a value of another Redis type was under one of tocsin's keys; moved aside",
                    key=key,
                    found=found,
                    expected=kind,
                    moved_to=aside,
                )
        self._foreign = False

    async def close(self) -> None:
        await self.redis.aclose()
        if self.sentinel is not None:
            await self.sentinel.aclose()

    async def ping(self) -> bool:
        try:
            with unavailable_as_error():
                return bool(await self.redis.ping())
        except StoreUnavailable:
            return False

    # state and events -------------------------------------------------------------

    async def apply(self, updates: Sequence[StateUpdate]) -> list[str]:
        if not updates:
            return []
        horizon = (utcnow() - timedelta(days=HISTORY_DAYS)).timestamp()
        event_slots: list[int] = []
        changed = [u.state.key for u in updates if u.status_changed]
        await self._heal(*((self.keys.history(key), "zset") for key in changed))
        with self._guard():
            async with self.redis.pipeline(transaction=True) as pipe:
                for update in updates:
                    state = update.state
                    pipe.hset(self.keys.state, state.key, state.model_dump_json())
                    if update.status_changed:
                        history = self.keys.history(state.key)
                        stamp = state.since.timestamp()
                        pipe.zadd(history, {f"{stamp:.6f}|{state.status.value}": stamp})
                        pipe.zremrangebyscore(history, "-inf", horizon)
                    if update.event is not None:
                        event_slots.append(len(pipe))
                        pipe.xadd(
                            self.keys.events,
                            {"event": update.event.to_json()},
                            maxlen=self.stream_maxlen,
                            approximate=True,
                        )
                results = await pipe.execute()
        return [str(results[slot]) for slot in event_slots]

    async def append(self, event: Event) -> str:
        await self._heal()
        with self._guard():
            entry_id = await self.redis.xadd(
                self.keys.events,
                {"event": event.to_json()},
                maxlen=self.stream_maxlen,
                approximate=True,
            )
        return str(entry_id)

    async def states(self) -> dict[str, ComponentState]:
        raw: dict[Any, Any] = {}
        with unavailable_as_error(), other_type_ignored("state hash", self.keys.state):
            raw = await self.redis.hgetall(self.keys.state)
        states = {}
        for key, value in raw.items():
            state = decode_state(f"{self.keys.state} {_text(key)}", value)
            if state is not None:  # a foreign or older entry: ignored rather than fatal
                states[_text(key)] = state
        return states

    async def history(self, key: str, since: datetime) -> list[tuple[datetime, Status]]:
        where = self.keys.history(key)
        members: list[Any] = []
        with unavailable_as_error(), other_type_ignored("history", where):
            members = await self.redis.zrangebyscore(where, since.timestamp(), "+inf")
        changes = []
        for member in members:
            stamp, _, status = _text(member).partition("|")
            try:
                changes.append((datetime.fromtimestamp(float(stamp), UTC), Status(status)))
            except (ValueError, OverflowError, OSError) as exc:  # nan, 1e400, year 10000
                drop("history entry", where, member, f"{type(exc).__name__}: {exc}")
        return changes

    async def recent_events(self, count: int = 50) -> list[Event]:
        entries: Any = []
        with unavailable_as_error(), other_type_ignored("event stream", self.keys.events):
            entries = await self.redis.xrevrange(self.keys.events, count=count)
        events = []
        for entry in _entries(entries):
            if entry.event is None:
                drop("stream entry", entry.id, entry.error, entry.error or "unreadable")
            else:
                events.append(entry.event)
        return events

    # consumer groups -----------------------------------------------------------------

    async def ensure_group(self, group: str, *, from_start: bool = False) -> None:
        await self._heal()
        with self._guard():
            try:
                start = "0" if from_start else "$"
                await self.redis.xgroup_create(self.keys.events, group, id=start, mkstream=True)
            except redis_errors.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def _recreate_group(self, group: str) -> None:
        """The group vanished with its stream (a flushed Redis, a foreign value moved aside):
        made again :data:`REGROUP_BACK` back by Redis's clock, not at the end, so the events
        written since (the watcher's next ones) are delivered; sent marks dedupe the rest."""
        with self._guard():
            seconds, micros = await self.redis.time()
            start = int(seconds) * 1000 + int(micros) // 1000 - int(REGROUP_BACK * 1000)
            try:
                await self.redis.xgroup_create(
                    self.keys.events, group, id=f"{max(0, start)}-0", mkstream=True
                )
            except redis_errors.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def read_group(
        self, group: str, consumer: str, count: int, block_ms: int
    ) -> list[StreamEntry]:
        return await self._read(group, consumer, ">", count, block_ms or None)

    async def pending_own(self, group: str, consumer: str, count: int) -> list[StreamEntry]:
        entries = await self._read(group, consumer, "0", count, None)
        return [StreamEntry(e.id, e.event, e.error, deliveries=2) for e in entries]

    async def _read(
        self, group: str, consumer: str, start: str, count: int, block: int | None
    ) -> list[StreamEntry]:
        await self._heal()
        with self._guard():
            try:
                reply = await self.redis.xreadgroup(
                    group, consumer, {self.keys.events: start}, count=count, block=block
                )
            except redis_errors.ResponseError as exc:
                # the stream was deleted (a flushed Redis), before the read or while it waited
                if "NOGROUP" not in str(exc) and "UNBLOCKED" not in str(exc):
                    raise
                await self._recreate_group(group)
                return []
        return [entry for _, entries in cast(Any, reply) or [] for entry in _entries(entries)]

    async def claim_stale(
        self, group: str, consumer: str, min_idle_ms: int, count: int
    ) -> list[StreamEntry]:
        await self._heal()
        with self._guard():
            try:
                reply = await self.redis.xautoclaim(
                    self.keys.events, group, consumer, min_idle_ms, start_id="0-0", count=count
                )
            except redis_errors.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                return []
        claimed = cast(Any, reply)[1] if len(reply) > 1 else []
        return [StreamEntry(e.id, e.event, e.error, deliveries=2) for e in _entries(claimed)]

    async def pending_before(self, group: str, entry_id: str, count: int) -> list[StreamEntry]:
        await self._heal()
        with self._guard():
            try:
                pending = await self.redis.xpending_range(
                    self.keys.events, group, min="-", max=entry_id, count=count
                )
            except redis_errors.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                return []
            ids = [_text(p["message_id"]) for p in pending]
            async with self.redis.pipeline(transaction=False) as pipe:
                for earlier in ids:
                    if earlier != entry_id:
                        pipe.xrange(self.keys.events, earlier, earlier)
                replies = await pipe.execute() if len(pipe) else []
        return [entry for reply in replies for entry in _entries(reply)]  # trimmed ones: gone

    async def touch(self, group: str, consumer: str, entry_ids: Sequence[str]) -> None:
        if not entry_ids:
            return
        with unavailable_as_error():
            await self.redis.xclaim(
                self.keys.events, group, consumer, 0, list(entry_ids), justid=True
            )

    async def ack(self, group: str, entry_id: str) -> None:
        with self._guard():
            await self.redis.xack(self.keys.events, group, entry_id)

    # delivery bookkeeping -------------------------------------------------------------

    async def mark_sent(self, event_id: str, target: str, receipt: str = "1") -> None:
        with unavailable_as_error():
            await self.redis.set(self.keys.sent(event_id, target), receipt, ex=SENT_TTL)

    async def sent(self, event_id: str, target: str) -> str | None:
        key = self.keys.sent(event_id, target)
        raw = None
        with unavailable_as_error(), other_type_ignored("sent mark", key):
            raw = await self.redis.get(key)
        return _maybe_text(raw)

    async def get_thread(self, episode: str, target: str) -> dict[str, Any] | None:
        key = self.keys.thread(episode, target)
        raw = None
        with unavailable_as_error(), other_type_ignored("thread", key):
            raw = await self.redis.get(key)
        return read_thread(key, raw)

    async def set_thread(self, episode: str, target: str, ref: dict[str, Any]) -> None:
        with unavailable_as_error():
            await self.redis.set(self.keys.thread(episode, target), json.dumps(ref), ex=THREAD_TTL)

    async def dead_letter(self, record: dict[str, Any]) -> None:
        await self._heal()
        with self._guard():
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.lpush(self.keys.dead, json.dumps(record, default=str))
                pipe.ltrim(self.keys.dead, 0, DEAD_LETTERS_KEPT - 1)
                await pipe.execute()

    async def dead_letters(self, count: int = 100) -> list[dict[str, Any]]:
        raw: list[Any] = []
        with unavailable_as_error(), other_type_ignored("dead letters", self.keys.dead):
            raw = await self.redis.lrange(self.keys.dead, 0, count - 1)
        records = (read_record("dead letter", self.keys.dead, item) for item in raw)
        return [record for record in records if record is not None]

    # values and leases --------------------------------------------------------------------

    async def get_value(self, name: str) -> str | None:
        key = self.keys.kv(name)
        raw = None
        with unavailable_as_error(), other_type_ignored("value", key):
            raw = await self.redis.get(key)
        return _maybe_text(raw)

    async def set_value(self, name: str, value: str, ttl: float | None = None) -> None:
        with unavailable_as_error():
            await self.redis.set(self.keys.kv(name), value, px=int(ttl * 1000) if ttl else None)

    async def delete_value(self, name: str) -> None:
        with unavailable_as_error():
            await self.redis.delete(self.keys.kv(name))

    # history that lasts (issue 16) --------------------------------------------------------

    async def write_history(
        self,
        provider: str,
        days: Mapping[date, DayDelta],
        cursor: Cursor,
        episode: EpisodeRecord | None,
    ) -> None:
        touched: dict[str, datetime] = {}
        for day in days:
            touched[self.keys.days(provider, month_of(day))] = month_expiry(month_of(day))
        if episode is not None:
            month = month_of(episode.started.date())
            touched[self.keys.episodes(provider, month)] = month_expiry(month)
        await self._heal((self.keys.cursors, "hash"), *((key, "hash") for key in touched))
        with self._guard():
            async with self.redis.pipeline(transaction=True) as pipe:
                for day, delta in days.items():
                    key = self.keys.days(provider, month_of(day))
                    for status, seconds in delta.seconds.items():
                        pipe.hincrbyfloat(key, day_field(day, status), round(seconds, 3))
                    for status in delta.seen:
                        pipe.hset(key, seen_field(day, status), "1")
                if episode is not None:
                    key = self.keys.episodes(provider, month_of(episode.started.date()))
                    pipe.hset(key, episode.id, episode.model_dump_json())
                for key, expiry in touched.items():
                    pipe.expireat(key, expiry)
                pipe.hset(self.keys.cursors, provider, cursor.model_dump_json())
                await pipe.execute()

    async def history_cursors(self) -> dict[str, Cursor]:
        key = self.keys.cursors
        found: dict[str, Cursor] = {}
        with unavailable_as_error(), other_type_ignored("history cursors", key):
            raw = await self.redis.hgetall(key)
            for name, value in list(raw.items())[:RECORDS_READ]:
                cursor = _model(Cursor, "history cursor", f"{key}/{_text(name)}", value)
                if cursor is not None:
                    found[_text(name)] = cursor
        return found

    async def day_records(self, provider: str, first: date, last: date) -> list[DayRecord]:
        spanned = months(first, last)
        found: list[DayRecord] = []
        hashes = await self._hashes(self.keys.days, provider, spanned)
        for month, raw in zip(spanned, hashes, strict=True):
            fields = {_text(k): _text(v) for k, v in list(raw.items())[:2000]}
            found += [r for r in read_day_fields(month, fields) if first <= r.day <= last]
        return found

    async def episodes(self, provider: str, since: datetime) -> list[EpisodeRecord]:
        spanned = months((since - timedelta(days=31)).date(), utcnow().date())
        found: list[EpisodeRecord] = []
        hashes = await self._hashes(self.keys.episodes, provider, spanned)
        for month, raw in zip(spanned, hashes, strict=True):
            key = self.keys.episodes(provider, month)
            for name, value in list(raw.items())[:EPISODES_READ]:
                record = _model(EpisodeRecord, "episode", f"{key}/{_text(name)}", value)
                if record is not None:
                    found.append(record)
        return sorted(found, key=lambda e: e.started)

    async def _hashes(
        self, key: Callable[[str, str], str], provider: str, spanned: Sequence[str]
    ) -> list[dict[Any, Any]]:
        """The month hashes of one provider, in one round trip; one of another Redis type
        reads as empty (said once)."""
        with unavailable_as_error():
            async with self.redis.pipeline(transaction=False) as pipe:
                for month in spanned:
                    pipe.hgetall(key(provider, month))
                answers = await pipe.execute(raise_on_error=False)
        found: list[dict[Any, Any]] = []
        for month, answer in zip(spanned, answers, strict=True):
            if isinstance(answer, dict):
                found.append(answer)
                continue
            if isinstance(answer, redis_errors.ResponseError) and "WRONGTYPE" in str(answer):
                drop("history", key(provider, month), "WRONGTYPE", "another kind of Redis value")
            elif isinstance(answer, Exception):
                raise StoreUnavailable(f"redis: {answer}") from answer
            found.append({})
        return found

    async def add_latency(self, samples: Sequence[LatencySample]) -> None:
        if not samples:
            return
        providers = {s.provider for s in samples}
        #: older than the batch's newest sample by more than LATENCY_KEPT (not by the clock)
        horizon = (max(s.at for s in samples) - LATENCY_KEPT).timestamp()
        await self._heal(*((self.keys.latency(p), "zset") for p in providers))
        with self._guard():
            async with self.redis.pipeline(transaction=False) as pipe:
                for sample in samples:
                    stamp = sample.at.timestamp()
                    member = f"{stamp:.3f}|{sample.component}|{sample.ms:.1f}"
                    pipe.zadd(self.keys.latency(sample.provider), {member: stamp})
                for provider in providers:
                    key = self.keys.latency(provider)
                    pipe.zremrangebyscore(key, "-inf", horizon)
                    pipe.zremrangebyrank(key, 0, -LATENCY_SAMPLES_MAX - 1)
                    pipe.expire(key, int(LATENCY_KEPT.total_seconds()) + 3600)
                await pipe.execute()

    async def latency(self, provider: str, since: datetime) -> list[LatencySample]:
        key = self.keys.latency(provider)
        found: list[LatencySample] = []
        with unavailable_as_error(), other_type_ignored("latency", key):
            raw = await self.redis.zrangebyscore(
                key, since.timestamp(), "+inf", start=0, num=LATENCY_SAMPLES_MAX
            )
            for member in raw:
                sample = _latency_sample(provider, _text(member))
                if sample is not None:
                    found.append(sample)
        return found

    async def claim_value(self, name: str, value: str, ttl: float) -> bool:
        with unavailable_as_error():
            won = await self.redis.set(self.keys.kv(name), value, px=int(ttl * 1000), nx=True)
        return bool(won)

    # records -------------------------------------------------------------------------------

    async def put_record(self, table: str, key: str, value: str, *, only_new: bool = False) -> bool:
        name = self.keys.table(table)
        await self._heal((name, "hash"))
        with self._guard():
            if only_new:
                return bool(await self.redis.hsetnx(name, key, value))
            await self.redis.hset(name, key, value)
        return True

    async def record(self, table: str, key: str) -> str | None:
        name = self.keys.table(table)
        value = None
        with unavailable_as_error(), other_type_ignored("table", name):
            value = _maybe_text(await self.redis.hget(name, key))
        if value is not None and len(value) > RECORD_VALUE_MAX:
            drop("record", f"{name}/{key}", value[:200], "too big")
            return None
        return value

    async def records(self, table: str) -> dict[str, str]:
        name = self.keys.table(table)
        found: dict[str, str] = {}
        with unavailable_as_error(), other_type_ignored("table", name):
            async for field, raw in self.redis.hscan_iter(name, count=500):
                if len(found) >= RECORDS_READ:
                    break
                key, value = _maybe_text(field), _maybe_text(raw)
                if key is None or value is None or len(key) > RECORD_KEY_MAX:
                    continue
                if len(value) > RECORD_VALUE_MAX:
                    drop("record", f"{name}/{key}", value[:200], "too big")
                    continue
                found[key] = value
        return found

    async def delete_record(self, table: str, key: str, *, only_if: str | None = None) -> bool:
        name = self.keys.table(table)
        await self._heal((name, "hash"))
        with self._guard():
            if only_if is None:
                return bool(await self.redis.hdel(name, key))
            return bool(await self.redis.eval(_DELETE_IF, 1, name, key, only_if))

    async def acquire_lease(self, name: str, holder: str, ttl: float) -> bool:
        with unavailable_as_error():
            won = await self.redis.eval(_ACQUIRE, 1, self.keys.lease(name), holder, int(ttl * 1000))
        return bool(won)

    async def release_lease(self, name: str, holder: str) -> None:
        with unavailable_as_error():
            await self.redis.eval(_RELEASE, 1, self.keys.lease(name), holder)

    async def lease_holder(self, name: str) -> str | None:
        with unavailable_as_error():
            return _maybe_text(await self.redis.get(self.keys.lease(name)))

    # presence records -----------------------------------------------------------------------

    async def presence(self, instance: str) -> str | None:
        with unavailable_as_error():
            return _maybe_text(await self.redis.get(self.keys.presence(instance)))

    async def claim_presence(
        self, instance: str, record: str, ttl: float, *, replacing: str | None
    ) -> bool:
        mode, expected = ("absent", "") if replacing is None else ("equal", replacing)
        key = self.keys.presence(instance)
        with unavailable_as_error():
            won = await self.redis.eval(_CLAIM, 1, key, record, int(ttl * 1000), mode, expected)
        return bool(won)

    async def release_presence(self, instance: str, record: str) -> None:
        with unavailable_as_error():
            await self.redis.eval(_RELEASE, 1, self.keys.presence(instance), record)

    # poll requests ----------------------------------------------------------------------------

    async def request_poll(self, provider: str) -> None:
        await self._heal()
        with self._guard():
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.rpush(self.keys.polls, provider)
                pipe.ltrim(self.keys.polls, -POLL_REQUESTS_KEPT, -1)
                await pipe.execute()

    async def take_poll_requests(self) -> list[str]:
        """LRANGE and DEL in one MULTI: a request pushed meanwhile is either taken or kept."""
        await self._heal()
        with self._guard():
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.lrange(self.keys.polls, 0, -1)
                pipe.delete(self.keys.polls)
                raw, _ = await pipe.execute()
        return list(dict.fromkeys(_text(item) for item in raw))

    # apps' reported calls (signals) ---------------------------------------------------------
    #
    # ``{prefix}sig:{provider}/{model}:{bucket}``: hash of counters (SignalTally.fields);
    # ``{prefix}sig:index:{bucket}``: set of the ``provider/model`` pairs counted in the
    # bucket (what the leader reads first). Both expire ``ttl`` after their last write.

    def _signal_key(self, provider: str, model: str, bucket: int) -> str:
        return f"{self.keys.prefix}sig:{provider}/{model}:{bucket}"

    def _signal_index(self, bucket: int) -> str:
        return f"{self.keys.prefix}sig:index:{bucket}"

    async def add_signals(self, counts: SignalCounts, ttl: float) -> None:
        """One pipeline per batch: HINCRBY every counter, SADD the index, EXPIRE both."""
        if not counts:
            return
        ttl_ms = int(ttl * 1000)
        with unavailable_as_error():
            async with self.redis.pipeline(transaction=False) as pipe:
                for (provider, model, bucket), tally in counts.items():
                    key = self._signal_key(provider, model, bucket)
                    for name, value in tally.fields().items():
                        pipe.hincrby(key, name, value)
                    pipe.pexpire(key, ttl_ms)
                    pipe.sadd(self._signal_index(bucket), f"{provider}/{model}")
                    pipe.pexpire(self._signal_index(bucket), ttl_ms)
                await pipe.execute(raise_on_error=False)

    async def signal_sums(self, buckets: Sequence[int]) -> dict[tuple[str, str], SignalTally]:
        """Read defensively: a member that is no ``provider/model``, a key of another Redis
        type, a counter that is no bounded integer, is left out."""
        buckets = list(dict.fromkeys(buckets))
        with unavailable_as_error():
            async with self.redis.pipeline(transaction=False) as pipe:
                for bucket in buckets:
                    pipe.srandmember(self._signal_index(bucket), SIGNAL_PAIRS_READ)
                indexes = await pipe.execute(raise_on_error=False)
            wanted: list[tuple[str, str, int]] = []
            for bucket, members in zip(buckets, indexes, strict=True):
                if not isinstance(members, list):
                    continue  # another Redis type under the index key
                for member in members:
                    provider, sep, model = _text(member).partition("/")
                    if sep and provider and model and len(model) <= 200:
                        wanted.append((provider, model, bucket))
            if not wanted:
                return {}
            async with self.redis.pipeline(transaction=False) as pipe:
                for provider, model, bucket in wanted:
                    pipe.hgetall(self._signal_key(provider, model, bucket))
                hashes = await pipe.execute(raise_on_error=False)
        out: dict[tuple[str, str], SignalTally] = {}
        for (provider, model, _bucket), raw in zip(wanted, hashes, strict=True):
            if not isinstance(raw, dict):
                continue
            fields = {_text(k): v for k, v in raw.items()}
            out.setdefault((provider, model), SignalTally()).add(SignalTally.from_fields(fields))
        return out
