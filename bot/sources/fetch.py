"""The bounded HTTP fetch every page source reads through.

One GET with an overall deadline and a cap on the bytes read (decoded, and on the wire:
:mod:`bot.sources.compression`), following only the redirects :mod:`bot.sources.redirects`
allows. Anything wrong with the answer becomes :class:`SourceError`, which the source turns
into ``unknown`` observations carrying the diagnostic: never green, never a crash.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

import httpx

from bot.outside import clip, one_line
from bot.sources import compression
from bot.sources.redirects import Resolver, judge_redirect, system_resolver


class SourceError(Exception):
    """The source could not be read; the message names the URL and what was wrong."""


@dataclass(frozen=True, slots=True)
class FetchLimits:
    """How much of a response we are willing to wait for and read."""

    timeout: float = 10.0
    max_bytes: int = 5 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Fetched:
    url: str
    status_code: int
    headers: httpx.Headers
    body: bytes
    redirected_from: str | None = None

    @property
    def etag(self) -> str | None:
        value: str | None = self.headers.get("etag")
        return value

    @property
    def where(self) -> str:
        """The URL asked for, and where it redirected to: how diagnostics name the response."""
        if self.redirected_from:
            return f"{self.redirected_from} (redirected to {self.url})"
        return self.url


#: At most this many redirects are followed for one fetch.
MAX_REDIRECTS = 5
#: How much of a refused redirect's target a diagnostic quotes.
_TARGET_SHOWN = 300


@dataclass(slots=True)
class FetchRound:
    """What the fetches of one round of a source share: how redirect targets are resolved,
    and the moves to another host they followed (the page's first move is told to admins)."""

    resolver: Resolver = system_resolver
    moves: list[tuple[str, str]] = field(default_factory=list)


_ROUND: ContextVar[FetchRound | None] = ContextVar("tocsin_fetch_round", default=None)


@contextmanager
def fetch_round(resolver: Resolver) -> Iterator[FetchRound]:
    """The fetches made inside share one :class:`FetchRound` resolving with ``resolver``."""
    round_ = FetchRound(resolver)
    token = _ROUND.set(round_)
    try:
        yield round_
    finally:
        _ROUND.reset(token)


async def fetch(
    client: httpx.AsyncClient,
    url: str,
    limits: FetchLimits,
    *,
    headers: Mapping[str, str] | None = None,
    accept_not_modified: bool = False,
    resolver: Resolver | None = None,
) -> Fetched:
    """GET ``url`` with an overall deadline and a cap on the bytes read (decoded, and on the
    wire).

    Raises :class:`SourceError` for network errors, timeouts, non-2xx answers, oversized
    bodies and redirects the policy of :mod:`bot.sources.redirects` refuses. Redirects it
    allows are followed (at most :data:`MAX_REDIRECTS`) and reported; one to another host is
    also noted in the current :class:`FetchRound`. ``resolver`` defaults to the round's.
    """
    round_ = _ROUND.get()
    resolve = resolver or (round_.resolver if round_ else system_resolver)
    asked = {"Accept-Encoding": compression.ACCEPTED, **(headers or {})}
    try:
        async with asyncio.timeout(limits.timeout):
            fetched, moved = await _follow(client, url, limits, asked, resolve)
    except TimeoutError:
        raise SourceError(f"{url}: no answer within {limits.timeout:g}s") from None
    except httpx.TimeoutException:
        raise SourceError(f"{url}: timed out after {limits.timeout:g}s") from None
    except httpx.HTTPError as exc:
        raise SourceError(f"{url}: {type(exc).__name__}: {exc or 'connection failed'}") from None
    except httpx.InvalidURL as exc:
        raise SourceError(f"{url}: invalid URL ({exc})") from None
    if fetched.status_code == 304 and not accept_not_modified:
        raise SourceError(f"{fetched.where}: HTTP 304 to a request that was not conditional")
    if moved and round_ is not None:
        round_.moves.append((url, one_line(fetched.url, _TARGET_SHOWN)))
    return fetched


async def _follow(
    client: httpx.AsyncClient,
    url: str,
    limits: FetchLimits,
    headers: Mapping[str, str],
    resolver: Resolver,
) -> tuple[Fetched, bool]:
    """Send, and follow the redirects the policy allows; whether one left for another host."""
    request = client.build_request("GET", url, headers=headers)
    moved = False
    for _hop in range(MAX_REDIRECTS + 1):
        response = await client.send(request, stream=True, follow_redirects=False)
        try:
            target = response.next_request
            if target is None:
                return await _arrived(url, response, limits), moved
        finally:
            await response.aclose()
        verdict = await judge_redirect(request.url, target.url, resolver)
        if not verdict.follow:
            shown = one_line(str(target.url), _TARGET_SHOWN)
            raise SourceError(f"{url}: redirected to {shown} ({verdict.reason}): not followed")
        moved = moved or verdict.moved
        request = target
    shown = one_line(str(request.url), _TARGET_SHOWN)
    raise SourceError(f"{url}: too many redirects (more than {MAX_REDIRECTS}, the last to {shown})")


async def _arrived(url: str, response: httpx.Response, limits: FetchLimits) -> Fetched:
    """The answer that is not a redirect, read, with the URL first asked for if it moved."""
    final = str(response.request.url)
    moved_from = url if final != url else None
    where = f"{url} (redirected to {final})" if moved_from else url
    body = await _read(response, where, limits)
    return Fetched(final, response.status_code, response.headers, body, moved_from)


async def _read(response: httpx.Response, where: str, limits: FetchLimits) -> bytes:
    """The body, decoded in bounded steps: the cap bounds the decoded size, and memory."""
    if response.status_code == 304:
        return b""  # not modified: nothing to read (and nothing to decode if not asked for)
    if response.status_code >= 400 or response.status_code < 200:
        raise SourceError(f"{where}: HTTP {response.status_code}")
    cap = limits.max_bytes
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > cap:
        raise SourceError(f"{where}: body of {int(declared)} bytes exceeds the {cap} byte cap")
    encoding = response.headers.get("content-encoding")
    try:
        return b"".join([chunk async for chunk in capped_chunks(response, cap)])
    except compression.Unsupported as exc:
        raise SourceError(f"{where}: unsupported Content-Encoding {clip(str(exc), 60)!r}") from None
    except compression.TooBig:
        raise SourceError(f"{where}: body exceeds the {cap} byte cap") from None
    except compression.Undecodable as exc:
        raise SourceError(f"{where}: not valid {one_line(encoding, 20)} data ({exc})") from None


async def capped_chunks(response: httpx.Response, cap: int) -> AsyncIterator[bytes]:
    """The body decoded in bounded steps (:mod:`bot.sources.compression`), ``cap`` bytes at
    most on the wire and decoded: never httpx's own decoding, which inflates a whole network
    chunk at once. Raises ``compression.Unsupported``, ``TooBig`` or ``Undecodable``."""
    decode = compression.decoder(response.headers.get("content-encoding"))
    wire = decoded = 0
    async for chunk in response.aiter_raw():
        wire += len(chunk)
        if wire > cap:
            raise compression.TooBig
        piece = decode(chunk, cap - decoded)
        decoded += len(piece)
        yield piece
