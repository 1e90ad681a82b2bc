"""Storage behind one protocol: Redis when ``store.url`` is set, else the embedded store."""

from __future__ import annotations

from bot.store.base import Store, StoreUnavailable, StreamEntry
from bot.store.keys import NOTIFIERS_GROUP
from bot.store.memory import MemoryStore
from bot.store.redis import RedisStore
from config.schema import StoreConfig

__all__ = [
    "NOTIFIERS_GROUP",
    "MemoryStore",
    "RedisStore",
    "Store",
    "StoreUnavailable",
    "StreamEntry",
    "make_store",
]


def make_store(config: StoreConfig) -> Store:
    if config.url:
        sentinel_password = config.sentinel_password
        return RedisStore(
            config.url.get_secret_value(),
            prefix=config.prefix,
            stream_maxlen=config.stream_maxlen,
            tls=config.tls,
            sentinel_password=sentinel_password.get_secret_value() if sentinel_password else None,
        )
    return MemoryStore(stream_maxlen=config.stream_maxlen)
