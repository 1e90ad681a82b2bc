"""``redis+sentinel://`` URLs: parsed here, once, for the schema (errors at load time) and the
store (the connection).

redis-py parses ``redis://``, ``rediss://`` and ``unix://`` itself but has no URL form for
Sentinel, so this is the one we document::

    redis+sentinel://[[user]:password@]host1[:26379][,host2[:26379]...]/service_name[/db]

The password is the one of the Redis servers behind the sentinels (the master and, after a
failover, the replica that took over); a sentinel's own password is a separate secret
(``store.sentinel_password``), never in the URL.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

SENTINEL_SCHEME = "redis+sentinel"
SENTINEL_PORT = 26379
FORM = "redis+sentinel://[:password@]host1:26379[,host2:26379...]/service_name[/db]"


@dataclass(frozen=True)
class SentinelURL:
    """Where the sentinels are, which master they watch, and how to log in to it."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None


def is_sentinel_url(url: str) -> bool:
    return url.startswith(f"{SENTINEL_SCHEME}://")


def parse_sentinel_url(url: str) -> SentinelURL:
    """The parts of a sentinel URL; ``ValueError`` saying what is wrong (never the password).

    ``urlsplit`` cannot read a comma-separated host list as one netloc's host and port, so
    the hosts are split here; the rest (credentials, path, query) is ``urlsplit``'s.
    """
    parts = urlsplit(url)
    if parts.scheme != SENTINEL_SCHEME:
        raise ValueError(f"not a {SENTINEL_SCHEME}:// URL")
    if parts.query or parts.fragment:
        raise ValueError(f"a sentinel URL takes no ?query or #fragment: write {FORM}")
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    return SentinelURL(
        sentinels=tuple(_address(item) for item in _items(hostlist)),
        service=_service(parts.path),
        db=_db(parts.path),
        username=unquote(username) or None,
        password=unquote(password) or None,
    )


def _items(hostlist: str) -> list[str]:
    items = [item.strip() for item in hostlist.split(",")]
    if not hostlist or not all(items):
        raise ValueError(f"name at least one sentinel host: {FORM}")
    return items


def _address(item: str) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port``; the port defaults to 26379."""
    if item.startswith("["):
        host, _, rest = item[1:].partition("]")
        port = rest.removeprefix(":") if rest.startswith(":") else rest
    else:
        host, _, port = item.partition(":")
    if not host:
        raise ValueError(f"sentinel address {item!r} has no host")
    if not port:
        return host, SENTINEL_PORT
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"sentinel address {item!r}: {port!r} is not a port")
    return host, int(port)


def _segments(path: str) -> list[str]:
    segments = path.strip("/").split("/") if path.strip("/") else []
    if not segments or len(segments) > 2:
        raise ValueError(f"the path names the master's service name (and a db): {FORM}")
    return segments


def _service(path: str) -> str:
    return unquote(_segments(path)[0])


def _db(path: str) -> int:
    segments = _segments(path)
    if len(segments) == 1:
        return 0
    if not segments[1].isdigit():
        raise ValueError(f"the database must be a number, not {segments[1]!r}")
    return int(segments[1])
