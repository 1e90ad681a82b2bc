"""Compressed bodies inflated in bounded steps, so the byte cap bounds memory too.

A gzip or deflate body can inflate a thousandfold: 200 KB on the wire, 200 MB of zeros in
memory. Letting the HTTP client decode whole network chunks means the cap trips only after a
chunk's full inflation is in memory. Here every step of ``zlib`` produces at most
:data:`STEP` bytes and never more than the room left under the cap, so no body ever occupies
much more than the cap, however well it compresses.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

#: The encodings asked for (``Accept-Encoding``) and understood.
ACCEPTED = "gzip, deflate"
#: The most one inflation step produces.
STEP = 64 * 1024

_GZIP = 16 + zlib.MAX_WBITS
_ZLIB = zlib.MAX_WBITS
_RAW_DEFLATE = -zlib.MAX_WBITS


class Unsupported(ValueError):
    """A ``Content-Encoding`` we did not ask for and cannot decode."""


class TooBig(ValueError):
    """The decoded body would exceed the byte cap."""


class Undecodable(ValueError):
    """The body is not valid data of its declared encoding."""


def decoder(content_encoding: str | None) -> Callable[[bytes, int], bytes]:
    """A decoder for the response's ``Content-Encoding``: ``decode(chunk, room)`` returns the
    chunk's decoded bytes, raising :class:`TooBig` rather than produce more than ``room``."""
    codings = [c.strip().lower() for c in (content_encoding or "").split(",")]
    codings = [c for c in codings if c and c != "identity"]
    if not codings:
        return _identity
    if len(codings) == 1 and codings[0] in ("gzip", "x-gzip"):
        return Inflater(_GZIP).decode
    if len(codings) == 1 and codings[0] == "deflate":
        return Inflater(_ZLIB, fallback=_RAW_DEFLATE).decode
    raise Unsupported(", ".join(codings))


def _identity(chunk: bytes, room: int) -> bytes:
    if len(chunk) > room:
        raise TooBig
    return chunk


class Inflater:
    """One gzip or deflate stream (gzip members may follow one another), inflated in steps.

    ``fallback``: the window bits to retry with when the first bytes do not parse (servers
    send raw deflate as ``Content-Encoding: deflate`` as often as the zlib format it names).
    """

    def __init__(self, wbits: int, *, fallback: int | None = None) -> None:
        self._wbits = wbits
        self._fallback = fallback
        self._inflate = zlib.decompressobj(wbits)
        self._started = False
        #: Whether the current stream follows a whole one (so junk may be ignored), and
        #: whether what follows is being ignored.
        self._member = False
        self._finished = False

    def decode(self, chunk: bytes, room: int) -> bytes:
        out = bytearray()
        pending = chunk
        while pending and not self._finished:
            if self._inflate.eof:  # what follows a whole stream: another gzip member?
                self._inflate = zlib.decompressobj(self._wbits)
                self._member = True
            pending = self._step(pending, out, room)
        return bytes(out)

    def _step(self, data: bytes, out: bytearray, room: int) -> bytes:
        """Inflate at most one step of ``data`` into ``out``; return the input not used yet."""
        limit = min(STEP, room - len(out) + 1)
        try:
            piece = self._inflate.decompress(data, limit)
        except zlib.error as exc:
            if self._member:  # junk after a whole stream: ignored, as browsers do
                self._finished = True
                return b""
            if self._started or self._fallback is None:
                raise Undecodable(str(exc)) from None
            self._wbits, self._fallback = self._fallback, None
            self._inflate = zlib.decompressobj(self._wbits)
            return data
        self._started, self._member = True, False
        out += piece
        if len(out) > room:
            raise TooBig
        if self._inflate.eof:
            return self._inflate.unused_data
        return self._inflate.unconsumed_tail
