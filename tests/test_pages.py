"""The status pages over real HTTP: the overview and a provider's page rendered from the
scripted 90-day history (:mod:`tests.history_script`) at its clock, and from a store that
holds what a hostile status page (or anyone who can write to Redis) would put there."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest

from bot.history.model import Cursor, DayDelta, EpisodeIncident, EpisodeRecord, TimelineUpdate
from bot.models import ComponentState, Event, EventIncident, Incident, StateUpdate, Status
from bot.pages import views
from bot.server import CONTENT_SECURITY_POLICY, Health, build_app, start_server
from bot.store import MemoryStore, Store
from config.loader import build_config
from config.schema import TocsinConfig
from tests.history_script import NOW, PROVIDERS, day, write_scripted_history
from tests.redis_server import free_port

HOSTILE_TITLE = "<script>alert(1)</script>"
HOSTILE_URL = "javascript:alert(1)"
TEMPLATE_TEXT = "{{7*7}}"
HOSTILE_NAME = '<img src=x onerror="alert(2)">Evil {{7*7}}'
HOSTILE_COMPONENT = '"><svg onload=alert(3)>'
HOSTILE_UPDATE = "</li><script>alert(4)</script>{% raw %}"


def scripted_config(extra: list[dict[str, Any]] | None = None) -> TocsinConfig:
    providers = [
        {"id": p, "name": n, "probe": {"url": "http://127.0.0.1:9/"}} for p, n in PROVIDERS.items()
    ]
    return build_config({"console": {"enabled": False}, "providers": providers + (extra or [])})


class Served:
    def __init__(self, store: Store, client: httpx.AsyncClient) -> None:
        self.store = store
        self.client = client


async def serving(
    config: TocsinConfig, fill: Callable[[Store], Any] | None = None
) -> AsyncIterator[Served]:
    """A real server on a free port, its store filled with the script (and ``fill``)."""
    store = MemoryStore()
    await write_scripted_history(store)
    if fill is not None:
        await fill(store)
    port = free_port()
    runner = await start_server(
        build_app(config, store, Health(store=store), now=lambda: NOW), "127.0.0.1", port
    )
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        yield Served(store, client)
    await runner.cleanup()


async def hostile_fill(store: Store) -> None:
    """Provider ``evil``: an open major outage whose incident, updates and component are
    hostile, its links ``javascript:``."""
    started = NOW - timedelta(hours=1)
    episode = EpisodeRecord(
        id="evil:ep1",
        provider="evil",
        started=started,
        worst=Status.MAJOR_OUTAGE,
        suspected_at=started,
        suspected_by=HOSTILE_COMPONENT,
        incidents=[EpisodeIncident(id="i1", title=HOSTILE_TITLE, url=HOSTILE_URL)],
        updates=[
            TimelineUpdate(at=started, status=HOSTILE_TITLE, text=HOSTILE_UPDATE),
            TimelineUpdate(
                at=started + timedelta(minutes=5), status="identified", text=TEMPLATE_TEXT
            ),
        ],
    )
    delta = DayDelta()
    delta.seen.add(Status.MAJOR_OUTAGE)
    cursor = Cursor(status=Status.MAJOR_OUTAGE, since=started, event_id="evil-1")
    await store.write_history("evil", {started.date(): delta}, cursor, episode)
    incident = Incident(
        id="i1", title=HOSTILE_TITLE, url=HOSTILE_URL, status="investigating", update=TEMPLATE_TEXT
    )
    state = ComponentState(
        provider="evil",
        component="api",
        name=HOSTILE_COMPONENT,
        status=Status.MAJOR_OUTAGE,
        incident=incident,
        detail=HOSTILE_UPDATE,
    )
    event = Event(
        type="state_changed",
        provider="evil",
        component="api",
        to=Status.MAJOR_OUTAGE,
        incident=EventIncident.of(incident),
    )
    await store.apply([StateUpdate(state, event, status_changed=True)])


EVIL = {"id": "evil", "name": HOSTILE_NAME, "probe": {"url": "http://127.0.0.1:9/"}}


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    async for one in serving(scripted_config([EVIL]), hostile_fill):
        yield one


class Markup(HTMLParser):
    """Every tag and attribute of a page, as a browser's parser would see them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parsed(html: str) -> Markup:
    markup = Markup()
    markup.feed(html)
    markup.close()
    return markup


def assert_no_markup_from_outside(html: str) -> None:
    markup = parsed(html)
    scripts = [attrs.get("src") for tag, attrs in markup.tags if tag == "script"]
    assert scripts in ([], ["static/dashboard.js"]), scripts
    for tag, attrs in markup.tags:
        assert tag not in ("img", "svg") or "onerror" not in attrs, (tag, attrs)
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)
        assert "style" not in attrs, (tag, attrs)
        href = attrs.get("href")
        if href is not None:
            assert not href.lower().startswith(("javascript:", "data:")), href
            assert "://" not in href or href.startswith(("http://", "https://")), href
    assert tag_names(markup) <= ALLOWED_TAGS, tag_names(markup) - ALLOWED_TAGS
    assert "<style" not in html


_TAG_NAMES = (
    "html head meta title link script body header main footer nav section h1 h2 p ul ol li span b"
    " i a div dl dt dd time code table thead tbody tr th td svg polyline circle line img br"
)
ALLOWED_TAGS = frozenset(_TAG_NAMES.split())


def tag_names(markup: Markup) -> set[str]:
    return {tag for tag, _ in markup.tags}


async def test_overview_shows_90_days_uptime_and_sparkline_per_provider(served: Served) -> None:
    answer = await served.client.get("/")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    html = answer.text
    markup = parsed(html)
    rows = [a for t, a in markup.tags if t == "li" and a.get("data-provider")]
    assert [a["data-provider"] for a in rows] == [*PROVIDERS, "evil"]
    cells = [a for t, a in markup.tags if t == "li" and "data-day" in a]
    assert len(cells) == 90 * 4
    assert all(a.get("tabindex") == "0" and a.get("aria-label") for a in cells)
    acme = {a["data-day"]: a for a in cells[:90]}
    worked = day(-60).date().isoformat()
    assert acme[worked]["data-worst"] == "major_outage"
    assert acme[worked]["aria-label"] == (
        f"{worked}: major outage, 60 min down, 0 min degraded. Elevated errors on the API"
    )
    assert acme[day(-20).date().isoformat()]["aria-label"].startswith(
        f"{day(-20).date().isoformat()}: partial outage, 60 min down, 30 min degraded."
    )
    newco = {a["data-day"]: a for a in cells[180:270]}
    assert newco[day(-6).date().isoformat()]["data-worst"] == "none"
    assert newco[day(-6).date().isoformat()]["aria-label"].endswith("no data")
    assert "99.65 %" in html
    assert 'href="providers/acme"' in html
    assert html.count("<polyline") == 0  # the script wrote no latency samples
    assert_no_markup_from_outside(html)


async def test_hostile_text_is_text_on_every_page(served: Served) -> None:
    for path in ("/", "/providers/evil"):
        html = (await served.client.get(path)).text
        assert HOSTILE_TITLE not in html, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, path
        assert 'onerror="alert(2)"' not in html, path
        assert "<img src=x" not in html, path
        assert "<svg onload" not in html, path
        assert "javascript:" not in html, path  # not as a link, and not even as text
        assert TEMPLATE_TEXT in html, path  # shown as the characters it is, never run
        assert "Evil 49" not in html, path
        assert ">49<" not in html, path
        assert_no_markup_from_outside(html)
    page = (await served.client.get("/providers/evil")).text
    assert "&lt;/li&gt;&lt;script&gt;alert(4)&lt;/script&gt;{% raw %}" in page
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 2  # the incident and an update
    assert "&#34;&gt;&lt;svg onload=alert(3)&gt;" in page  # the component's name


async def test_provider_page_shows_episodes_lead_lag_and_timeline(served: Served) -> None:
    answer = await served.client.get("/providers/acme")
    assert answer.status_code == 200
    assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    html = answer.text
    assert html.count('class="episode"') == 3
    assert "probes saw it 12 min before the status page" in html
    assert "probes saw it 10 min before the status page" in html
    assert "the status page saw it; no probe did" in html
    assert "the status page confirmed it 12 min after it began" in html
    assert "the status page confirmed it as it began" in html
    assert "We are investigating elevated errors." in html
    assert "Some models fail." in html
    assert f"{views.when(day(-60, 10))}" in html
    assert "1 h 30 min" in html
    assert 'href="https://status.example.com/incidents/inc-0"' in html
    assert html.count('data-day="') == 90
    assert '<img src="../badge/acme.svg"' in html
    assert '<link rel="stylesheet" href="../static/pages.css">' in html
    assert "<script" not in html
    assert_no_markup_from_outside(html)
    # the open, hostile episode: its timeline is the current incident's
    evil = (await served.client.get("/providers/evil")).text
    current = evil.split('<section class="current">', 1)[1].split("</section>", 1)[0]
    assert '<ol class="timeline">' in current
    assert TEMPLATE_TEXT in current
    assert "ongoing" in evil


async def test_unknown_provider_is_a_404_page_without_a_traceback(served: Served) -> None:
    for path in ("/providers/nope", "/providers/%3Cscript%3Ealert(1)%3C%2Fscript%3E"):
        answer = await served.client.get(path)
        assert answer.status_code == 404, path
        assert answer.headers["content-type"].startswith("text/html")
        assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert "Traceback" not in answer.text
        assert "File " not in answer.text
        assert "<script>alert" not in answer.text
        assert_no_markup_from_outside(answer.text)
    assert "&lt;script&gt;alert(1)" in answer.text


async def test_static_assets_and_the_live_view_stay(served: Served) -> None:
    css = await served.client.get("/static/pages.css")
    assert css.headers["content-type"].startswith("text/css")
    assert "prefers-color-scheme: dark" in css.text
    assert "@import" not in css.text
    assert "url(" not in css.text
    live = await served.client.get("/live")
    assert '<script src="static/dashboard.js" defer>' in live.text
    status = (await served.client.get("/api/status.json")).json()
    assert [p["id"] for p in status["providers"]] == [*PROVIDERS, "evil"]


async def test_pages_are_bounded(served: Served) -> None:
    """At most 50 episodes on a page (the newest), the rest counted."""
    started = NOW - timedelta(days=20)
    for index in range(60):
        at = started + timedelta(hours=index)
        episode = EpisodeRecord(
            id=f"zeta:many:{index}",
            provider="zeta",
            started=at,
            ended=at + timedelta(minutes=10),
            worst=Status.DEGRADED,
            incidents=[EpisodeIncident(id=f"i{index}", title=f"many {index}")],
        )
        cursor = Cursor(status=Status.OPERATIONAL, since=NOW, event_id=f"many-{index}")
        await served.store.write_history("zeta", {}, cursor, episode)
    html = (await served.client.get("/providers/zeta")).text
    assert html.count('class="episode"') == views.EPISODES_SHOWN
    assert "…and 11 older episodes" in html  # 60 + the script's maintenance


def test_formats() -> None:
    assert views.percent(0.9964689) == "99.65 %"
    assert views.percent(None) == "no data"
    assert views.span(timedelta(minutes=12)) == "12 min"
    assert views.span(timedelta(seconds=42)) == "42 s"
    assert views.span(timedelta(minutes=90)) == "1 h 30 min"
    assert views.span(timedelta(days=2, hours=3)) == "2 d 3 h"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", views.when(NOW))
    assert views.sparkline([], NOW) is None
    one = views.sparkline([(NOW, 100.0)], NOW)
    assert one is not None
    assert len(one.points.split()) == 2
