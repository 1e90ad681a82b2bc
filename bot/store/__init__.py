"""Storage behind one protocol: Redis when ``store.url`` is set, else the embedded store (a
SQLite file in ``store.data_dir``, or this process's memory with ``data_dir: memory``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.store.base import Store, StoreUnavailable, StreamEntry
from bot.store.keys import NOTIFIERS_GROUP
from bot.store.memory import MemoryStore
from bot.store.sqlite import SqliteStore, StoreRefused, store_path
from config.schema import StoreConfig

if TYPE_CHECKING:
    from bot.store.redis import RedisStore


def __getattr__(name: str) -> Any:
    """``RedisStore`` is imported when first asked for: redis-py costs a command that never
    opens a store (``tocsin --help``, ``config validate``) a good part of its start-up."""
    if name == "RedisStore":
        from bot.store.redis import RedisStore

        return RedisStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "NOTIFIERS_GROUP",
    "MemoryStore",
    "RedisStore",
    "SqliteStore",
    "Store",
    "StoreRefused",
    "StoreUnavailable",
    "StreamEntry",
    "embedded_path",
    "make_store",
]


def embedded_path(config: StoreConfig) -> Path | None:
    """The embedded store's file, or ``None`` (Redis, or the embedded store in memory)."""
    return store_path(config.data_dir) if config.persist else None


def make_store(config: StoreConfig, *, readonly: bool = False) -> Store:
    """``readonly``: a SQLite file is read, never written nor locked (``tocsin status``)."""
    if config.url:
        from bot.store.redis import RedisStore

        sentinel_password = config.sentinel_password
        return RedisStore(
            config.url.get_secret_value(),
            prefix=config.prefix,
            stream_maxlen=config.stream_maxlen,
            tls=config.tls,
            sentinel_password=sentinel_password.get_secret_value() if sentinel_password else None,
        )
    if config.persist:
        return SqliteStore(config.data_dir, stream_maxlen=config.stream_maxlen, readonly=readonly)
    return MemoryStore(stream_maxlen=config.stream_maxlen)
