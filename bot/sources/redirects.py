"""Which redirects a status-page fetch may follow.

A page is fetched from a URL the config names, but a redirect is the page's say: followed
blindly, a hostile or compromised page could point tocsin at a service on its own machine or
network (Redis on ``127.0.0.1:6379``, a cloud metadata address) and have that service's answer
shown in a diagnostic. So a redirect is followed only to the same origin, to the same host
upgraded from http to https, or to another host whose every address is public.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import httpx

#: How a host name becomes addresses: ``(host, port) -> IP addresses``. Injectable, so that a
#: test can stand in for the DNS answers of public hosts.
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Carrier-grade NAT (RFC 6598): neither private nor global to ``ipaddress``, never public.
_SHARED = ipaddress.ip_network("100.64.0.0/10")
_DEFAULT_PORTS = {"http": 80, "https": 443}


async def system_resolver(host: str, port: int) -> list[str]:
    """The running loop's ``getaddrinfo``: what the HTTP client will connect to."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether one redirect may be followed; ``reason`` says why not, ``moved`` whether it
    leaves for another host (a page that moved: worth telling the admins)."""

    follow: bool
    reason: str = ""
    moved: bool = False


async def judge_redirect(origin: httpx.URL, target: httpx.URL, resolver: Resolver) -> Verdict:
    """The redirect policy for one hop from ``origin`` to ``target``."""
    if target.scheme not in _DEFAULT_PORTS:
        return Verdict(False, f"scheme {target.scheme or 'none'!r} is not http(s)")
    if target.host == origin.host:
        return _same_host(origin, target)
    if origin.scheme == "https" and target.scheme == "http":
        return Verdict(False, "a downgrade from https to http")
    problem = await _not_public_host(target, resolver)
    return Verdict(False, problem) if problem else Verdict(True, moved=True)


def _same_host(origin: httpx.URL, target: httpx.URL) -> Verdict:
    if (origin.scheme, _port(origin)) == (target.scheme, _port(target)):
        return Verdict(True)
    if origin.scheme == "http" and target.scheme == "https" and origin.port == target.port:
        return Verdict(True)  # the same host upgraded: default ports, or the same explicit one
    if origin.scheme == "https" and target.scheme == "http":
        return Verdict(False, "a downgrade from https to http")
    return Verdict(False, "another port of the same host")


def _port(url: httpx.URL) -> int:
    return url.port or _DEFAULT_PORTS.get(url.scheme, 0)


async def _not_public_host(target: httpx.URL, resolver: Resolver) -> str | None:
    """Why ``target``'s host is not a public one (``None`` when all its addresses are)."""
    host = target.host
    try:
        addresses: Sequence[str] = [str(ipaddress.ip_address(host))]
    except ValueError:
        try:
            addresses = await resolver(host, _port(target))
        except (OSError, UnicodeError, ValueError) as exc:
            return f"cannot resolve {host}: {type(exc).__name__}"
    if not addresses:
        return f"{host} has no addresses"
    for address in addresses:
        kind = address_kind(address)
        if kind is not None:
            return f"{kind} address {address}" if address != host else kind
    return None


def address_kind(address: str) -> str | None:
    """What makes ``address`` not a public one (``loopback``, ``private``...), or ``None``."""
    try:
        ip: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])  # no IPv6 zone
    except ValueError:
        return "unreadable"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:  # ::ffff:a.b.c.d is a.b.c.d
            inner = _kind(ip.ipv4_mapped)
            return f"IPv4-mapped {inner}" if inner else None
        tunnelled = ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        inner = _kind(tunnelled) if tunnelled is not None else None
        if inner is not None:
            return f"tunnelled {inner}"
    return _kind(ip)


def _kind(ip: IPAddress) -> str | None:
    checks = (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("shared (CGNAT)", isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED),
        ("reserved", ip.is_reserved),
        ("private", ip.is_private),
        ("non-public", not ip.is_global),
    )
    return next((kind for kind, applies in checks if applies), None)
