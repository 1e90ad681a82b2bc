"""Fetching a status page from a hostile server, over real loopback sockets: where redirects
may lead (and the one admin notice a page that moved is worth), and bodies that inflate.

No request leaves loopback. Where a rule is about a public host, a fake resolver stands in
for its DNS answer (the only thing outside the machine here).
"""

from __future__ import annotations

import gzip
import socket
import tracemalloc
from collections.abc import AsyncIterator, Sequence

import httpx
import pytest

from bot.compose import compose
from bot.models import Event, Observation, Status
from bot.sources.fetch import FetchLimits, SourceError, fetch
from bot.sources.redirects import Resolver, Verdict, address_kind, judge_redirect
from bot.sources.statuspage import StatuspageSource
from bot.tracker import Tracker
from tests.fakes.status_server import FakeStatusServer, fixture_bytes

SUMMARY = "/api/v2/summary.json"
FIXTURE = "statuspage_summary_anthropic_operational.json"
CAP = 5 * 1024 * 1024
PUBLIC = ("8.8.8.8", "2606:4700:4700::1111")


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as made:
        yield made


@pytest.fixture
async def other_service() -> AsyncIterator[FakeStatusServer]:
    """Another service on this machine (think Redis, a metadata endpoint, an admin page)."""
    server = await FakeStatusServer().start()
    server.set_bytes("/", b"SECRET-OF-THE-OTHER-SERVICE", content_type="text/plain")
    yield server
    await server.close()


def resolver(answers: dict[str, Sequence[str]]) -> Resolver:
    """DNS answers for public hosts, as a test may fake them (nothing is looked up)."""

    async def resolve(host: str, port: int) -> Sequence[str]:
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return answers[host]

    return resolve


async def _unknown(source: StatuspageSource, client: httpx.AsyncClient) -> Observation:
    observations = await source.check(client)
    assert {o.status for o in observations} == {Status.UNKNOWN}
    return observations[0]


# ----------------------------------------------------------------------------- redirects


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("http://127.0.0.1:{port}/", "another port of the same host"),
        ("http://localhost:{port}/", "loopback address"),  # the system's resolver: /etc/hosts
        ("http://[::ffff:127.0.0.1]:{port}/", "IPv4-mapped loopback"),
    ],
)
async def test_a_redirect_to_another_service_on_the_machine_is_refused_naming_both_urls(
    status_server: FakeStatusServer,
    other_service: FakeStatusServer,
    client: httpx.AsyncClient,
    target: str,
    reason: str,
) -> None:
    location = target.format(port=other_service.port)
    status_server.set_redirect(SUMMARY, location)
    obs = await _unknown(StatuspageSource("anthropic", status_server.url), client)
    detail = obs.detail or ""
    assert f"{status_server.url}{SUMMARY}: redirected to {location}" in detail
    assert reason in detail
    assert detail.endswith(": not followed")
    assert other_service.count("/") == 0
    assert "SECRET" not in detail


async def test_a_redirect_to_a_private_address_behind_a_public_name_is_refused(
    status_server: FakeStatusServer, client: httpx.AsyncClient
) -> None:
    status_server.set_redirect(SUMMARY, "http://metadata.example.com/latest/")
    answers = resolver({"metadata.example.com": [PUBLIC[0], "169.254.169.254"]})
    source = StatuspageSource("anthropic", status_server.url, resolver=answers)
    obs = await _unknown(source, client)
    assert "redirected to http://metadata.example.com/latest/" in (obs.detail or "")
    assert "(link-local address 169.254.169.254): not followed" in (obs.detail or "")


async def test_a_same_origin_redirect_is_followed_and_is_no_move(
    status_server: FakeStatusServer, client: httpx.AsyncClient
) -> None:
    status_server.set_fixture("/v2/summary.json", FIXTURE)
    status_server.set_redirect(SUMMARY, "/v2/summary.json", status=301)
    observations = await StatuspageSource("anthropic", status_server.url).check(client)
    assert {o.status for o in observations} == {Status.OPERATIONAL}
    assert all(o.moved is None for o in observations)
    fetched = await fetch(client, f"{status_server.url}{SUMMARY}", FetchLimits())
    assert fetched.where == (
        f"{status_server.url}{SUMMARY} (redirected to {status_server.url}/v2/summary.json)"
    )


async def test_five_redirects_are_followed_and_a_sixth_is_too_many(
    status_server: FakeStatusServer, client: httpx.AsyncClient
) -> None:
    status_server.set_fixture("/hop/6", FIXTURE)
    for hop in range(6):
        status_server.set_redirect(f"/hop/{hop}", f"/hop/{hop + 1}")
    five = await fetch(client, f"{status_server.url}/hop/1", FetchLimits())
    assert five.url == f"{status_server.url}/hop/6"
    with pytest.raises(SourceError) as refused:
        await fetch(client, f"{status_server.url}/hop/0", FetchLimits())
    assert str(refused.value) == (
        f"{status_server.url}/hop/0: too many redirects (more than 5, the last to "
        f"{status_server.url}/hop/6)"
    )
    assert status_server.count("/hop/6") == 1  # the sixth redirect was not followed


@pytest.mark.parametrize(
    ("origin", "target", "verdict"),
    [
        ("https://a.test/x", "https://a.test/y?z", Verdict(True)),
        ("http://a.test/x", "https://a.test/x", Verdict(True)),  # upgraded to https
        ("http://a.test:8080/x", "https://a.test:8080/x", Verdict(True)),
        (
            "http://a.test/x",
            "https://a.test:8443/x",
            Verdict(False, "another port of the same host"),
        ),
        (
            "http://a.test:8080/",
            "http://a.test:7000/",
            Verdict(False, "another port of the same host"),
        ),
        ("https://a.test/x", "http://a.test/x", Verdict(False, "a downgrade from https to http")),
        ("https://a.test/x", "https://public.test/x", Verdict(True, moved=True)),
        (
            "https://a.test/x",
            "http://public.test/x",
            Verdict(False, "a downgrade from https to http"),
        ),
        ("https://a.test/", "https://8.8.4.4/", Verdict(True, moved=True)),
        ("https://a.test/", "https://mixed.test/", Verdict(False, "private address 10.1.2.3")),
        (
            "https://a.test/",
            "https://nowhere.test/",
            Verdict(False, "cannot resolve nowhere.test: gaierror"),
        ),
        ("https://a.test/", "https://empty.test/", Verdict(False, "empty.test has no addresses")),
        ("https://a.test/", "https://127.0.0.1:7000/", Verdict(False, "loopback")),
        ("https://a.test/", "ftp://public.test/", Verdict(False, "scheme 'ftp' is not http(s)")),
    ],
)
async def test_the_redirect_policy(origin: str, target: str, verdict: Verdict) -> None:
    answers = resolver(
        {
            "public.test": PUBLIC,
            "mixed.test": [PUBLIC[0], "10.1.2.3"],
            "empty.test": [],
        }
    )
    assert await judge_redirect(httpx.URL(origin), httpx.URL(target), answers) == verdict


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("100.64.0.1", "shared (CGNAT)"),
        ("::ffff:10.0.0.1", "IPv4-mapped private"),
        ("::ffff:8.8.8.8", None),
        ("2002:7f00:1::", "tunnelled loopback"),  # 6to4 of 127.0.0.1
        ("192.0.2.1", "private"),  # documentation: not public either
        ("not-an-address", "unreadable"),
    ],
)
def test_what_is_not_a_public_address(address: str, kind: str | None) -> None:
    assert address_kind(address) == kind


async def test_a_page_that_moved_to_another_host_is_one_admin_notice_per_new_location(
    status_server: FakeStatusServer, client: httpx.AsyncClient
) -> None:
    """The page's new host is public as far as DNS tells (the fake resolver answers for
    ``localhost`` what a public host's DNS would); the connection itself stays on loopback."""
    moved_to = f"http://localhost:{status_server.port}/new/api/v2/summary.json"
    status_server.set_redirect(SUMMARY, moved_to, status=301)
    status_server.set_fixture("/new/api/v2/summary.json", FIXTURE)
    source = StatuspageSource(
        "anthropic", status_server.url, resolver=resolver({"localhost": PUBLIC})
    )
    tracker = Tracker(names={"anthropic": "Anthropic"})

    def admin_events(observations: list[Observation]) -> list[Event]:
        return [u.event for u in tracker.observe(observations) if u.event is not None]

    first = await source.check(client)
    assert {o.status for o in first} == {Status.OPERATIONAL}  # followed: the page is read
    assert {o.moved for o in first} == {(f"{status_server.url}{SUMMARY}", moved_to)}
    [event] = admin_events(first)
    assert (event.type, event.audience, event.source) == (
        "config_alert",
        "admins",
        "anthropic:statuspage",
    )
    assert event.detail == (
        f"Anthropic's status page moved: {status_server.url}{SUMMARY} now redirects to "
        f"{moved_to}; update status_page.url"
    )
    assert compose(event).title == "tocsin: check the status page configuration of Anthropic"
    assert admin_events(await source.check(client)) == []  # told once

    again = f"http://localhost:{status_server.port}/newer/api/v2/summary.json"
    status_server.set_fixture("/newer/api/v2/summary.json", FIXTURE)
    status_server.set_redirect(SUMMARY, again, status=301)
    [moved_again] = admin_events(await source.check(client))
    assert moved_again.detail is not None
    assert again in moved_again.detail

    # moved once more, to where the page cannot be read: the move is still told as a move
    broken = f"http://localhost:{status_server.port}/broken/api/v2/summary.json"
    status_server.set_html("/broken/api/v2/summary.json")
    status_server.set_redirect(SUMMARY, broken, status=301)
    told = admin_events(await source.check(client))
    [move] = [e for e in told if e.type == "config_alert"]
    assert move.to is None
    assert compose(move).title == "tocsin: check the status page configuration of Anthropic"
    assert any(e.type == "state_changed" and e.to is Status.UNKNOWN for e in told)


def test_a_probe_config_alert_keeps_its_title() -> None:
    event = Event(type="config_alert", provider="acme", provider_name="Acme", source="acme:probe")
    assert compose(event).title == "tocsin: check the probe configuration of Acme"


# ----------------------------------------------------------------------------- encodings


async def test_a_gzip_bomb_trips_the_cap_without_inflating_in_memory(
    status_server: FakeStatusServer, client: httpx.AsyncClient
) -> None:
    """200 MB of zeros in about 200 KB of gzip, against a 5 MB cap: the cap bounds memory."""
    status_server.set_gzip_bomb("/bomb")
    tracemalloc.start()
    try:
        with pytest.raises(SourceError) as refused:
            await fetch(client, f"{status_server.url}/bomb", FetchLimits(max_bytes=CAP))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(refused.value) == f"{status_server.url}/bomb: body exceeds the {CAP} byte cap"
    assert peak < 3 * CAP, f"peak {peak / 2**20:.1f} MiB for a {CAP / 2**20:.0f} MiB cap"


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "raw-deflate"])
async def test_compressed_pages_still_parse(
    status_server: FakeStatusServer, client: httpx.AsyncClient, encoding: str
) -> None:
    status_server.set_encoded(SUMMARY, fixture_bytes(FIXTURE), encoding)
    observations = await StatuspageSource("anthropic", status_server.url).check(client)
    assert len(observations) == 6
    assert {o.status for o in observations} == {Status.OPERATIONAL}
    [seen] = status_server.requests
    assert seen.headers["Accept-Encoding"] == "gzip, deflate"


async def test_an_encoding_we_did_not_ask_for_is_named(
    status_server: FakeStatusServer, client: httpx.AsyncClient
) -> None:
    status_server.set_bytes(SUMMARY, b"\x1b\x00\x00", headers={"Content-Encoding": "br"})
    obs = await _unknown(StatuspageSource("anthropic", status_server.url), client)
    assert obs.detail == f"{status_server.url}{SUMMARY}: unsupported Content-Encoding 'br'"


async def test_a_corrupt_gzip_body_is_a_diagnostic(
    status_server: FakeStatusServer, client: httpx.AsyncClient
) -> None:
    status_server.set_bytes(SUMMARY, b"not gzip at all", headers={"Content-Encoding": "gzip"})
    obs = await _unknown(StatuspageSource("anthropic", status_server.url), client)
    assert (obs.detail or "").startswith(f"{status_server.url}{SUMMARY}: not valid gzip data (")


async def test_a_gzip_body_in_several_members_is_read_whole(
    status_server: FakeStatusServer, client: httpx.AsyncClient
) -> None:
    """Concatenated gzip members are one body (RFC 1952); junk after the last is ignored."""
    body = fixture_bytes(FIXTURE)
    half = len(body) // 2
    packed = gzip.compress(body[:half]) + gzip.compress(body[half:]) + b"\n"
    status_server.set_bytes(SUMMARY, packed, headers={"Content-Encoding": "gzip"})
    observations = await StatuspageSource("anthropic", status_server.url).check(client)
    assert {o.status for o in observations} == {Status.OPERATIONAL}
    assert len(observations) == 6
