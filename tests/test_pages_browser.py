"""The status pages in a real browser: the system's Chromium, headless, driven by Playwright,
loading a real tocsin server whose store holds the scripted 90-day history
(:mod:`tests.history_script`), rendered at the script's clock.

What must hold: 90 cells a provider, coloured by each day's worst state; the hand-worked
30-day uptime; the provider page's episodes, timelines and detection lead; a day's tooltip
shown on keyboard focus; no console error, no CSP violation, no dialog, and no request
leaving loopback (the pages work offline); a phone's viewport needs no horizontal scroll.
Screenshots of each page, light and dark, go to the test's tmp dir, and with
``TOCSIN_SCREENSHOTS=1`` (``make screenshots``) to ``docs/screenshots/`` for the README.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Browser, BrowserContext, Dialog, Page, Route, async_playwright

from bot.history.model import LatencySample
from bot.models import ComponentState, Event, StateUpdate, Status
from bot.server import CONTENT_SECURITY_POLICY, Health, build_app, start_server
from bot.store import MemoryStore, Store
from config.loader import build_config
from tests.history_script import NOW, PROVIDERS, day, write_scripted_history
from tests.redis_server import free_port
from tests.test_dashboard_browser import FLAGS, _chromium

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
DESKTOP = {"width": 1200, "height": 900}
PHONE = {"width": 390, "height": 844}
LOOPBACK = {"127.0.0.1", "localhost"}


def _date(offset: int) -> str:
    return day(offset).date().isoformat()


async def _fill(store: Store) -> None:
    """The script's history, plus what the live side would hold: acme's two probed models
    and 12 hours of latency samples; zeta's API; newco never checked."""
    await write_scripted_history(store)
    components = [
        ("acme", "api", "API", None, None, None),
        ("acme", "model:fast", "acme-fast", "acme-fast", 212.0, 480.0),
        ("acme", "model:large", "acme-large", "acme-large", 640.0, 1310.0),
        ("zeta", "api", "API", None, None, None),
    ]
    for provider, component, name, model, p50, p95 in components:
        state = ComponentState(
            provider=provider,
            component=component,
            name=name,
            status=Status.OPERATIONAL,
            since=day(0, 0, 30),
            checked_at=NOW,
            model=model,
            latency_p50_ms=p50,
            latency_p95_ms=p95,
        )
        event = Event(
            type="state_changed",
            provider=provider,
            component=component,
            component_name=name,
            from_=Status.UNKNOWN,
            to=Status.OPERATIONAL,
        )
        await store.apply([StateUpdate(state, event, status_changed=True)])
    samples = [
        LatencySample(
            "acme", "model:fast", NOW - timedelta(minutes=10 * i), 230 + 60 * math.sin(i / 7)
        )
        for i in range(72)
    ]
    await store.add_latency(samples)


@dataclass
class Watched:
    """What a page did that it must not: errors, CSP violations, dialogs, requests away."""

    errors: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    away: list[str] = field(default_factory=list)

    def assert_clean(self) -> None:
        assert self.violations == []
        assert self.errors == []
        assert self.dialogs == []
        assert self.away == []


@dataclass
class Site:
    browser: Browser
    base: str
    watched: Watched
    contexts: list[BrowserContext] = field(default_factory=list)

    async def page(self, *, scheme: str = "light", viewport: dict[str, int] = DESKTOP) -> Page:
        context = await self.browser.new_context(
            viewport=viewport,  # type: ignore[arg-type]
            color_scheme=scheme,  # type: ignore[arg-type]
        )
        self.contexts.append(context)
        watched = self.watched

        async def only_loopback(route: Route) -> None:
            host = urlsplit(route.request.url).hostname or ""
            if host in LOOPBACK:
                await route.continue_()
            else:
                watched.away.append(route.request.url)
                await route.abort()

        await context.route("**/*", only_loopback)
        page = await context.new_page()

        async def dialog(opened: Dialog) -> None:
            watched.dialogs.append(opened.message)
            await opened.dismiss()

        def console(message: object) -> None:
            text = getattr(message, "text", "")
            if "Content Security Policy" in text:
                watched.violations.append(text)
            elif getattr(message, "type", "") == "error":
                watched.errors.append(text)

        page.on("dialog", dialog)
        page.on("console", console)
        page.on("pageerror", lambda error: watched.errors.append(str(error)))
        return page

    async def open(self, page: Page, path: str, status: int = 200) -> dict[str, str]:
        response = await page.goto(self.base + path)
        assert response is not None
        assert response.status == status, path
        await page.wait_for_load_state("networkidle")
        return await response.all_headers()


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    executable = _chromium()
    config = build_config(
        {
            "console": {"enabled": False},
            "providers": [
                {"id": p, "name": n, "probe": {"url": "http://127.0.0.1:9/"}}
                for p, n in PROVIDERS.items()
            ],
        }
    )
    store = MemoryStore()
    await _fill(store)
    port = free_port()
    app = build_app(config, store, Health(store=store), now=lambda: NOW)
    runner = await start_server(app, "127.0.0.1", port)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=FLAGS)
        served = Site(browser, f"http://127.0.0.1:{port}", Watched())
        yield served
        for context in served.contexts:
            await context.close()
        await browser.close()
    await runner.cleanup()


async def _screenshot(page: Page, name: str, tmp_path: Path) -> None:
    """Each page's screenshot is the test's artefact (its tmp dir); with
    ``TOCSIN_SCREENSHOTS=1`` (``make screenshots``) also the README's, in docs/screenshots/."""
    target = tmp_path / f"{name}.png"
    await page.screenshot(path=str(target), full_page=False)
    assert target.stat().st_size < 300_000, f"{target} is {target.stat().st_size} bytes"
    if os.environ.get("TOCSIN_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(target, SCREENSHOTS / target.name)


async def test_overview_bars_colours_uptime_and_offline(site: Site, tmp_path: Path) -> None:
    page = await site.page()
    headers = await site.open(page, "/")
    assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    for provider in PROVIDERS:
        assert await page.locator(f"#provider-{provider} .bar .day").count() == 90
    acme, zeta, newco = (page.locator(f"#provider-{p}") for p in ("acme", "zeta", "newco"))

    async def worst(row: object, offset: int) -> str | None:
        cell = row.locator(f'.day[data-day="{_date(offset)}"]')  # type: ignore[attr-defined]
        value: str | None = await cell.get_attribute("data-worst")
        return value

    assert await worst(acme, -60) == "major_outage"
    assert await worst(acme, -20) == "partial_outage"
    assert await worst(acme, -1) == "major_outage"
    assert await worst(acme, 0) == "major_outage"  # the half hour after midnight
    assert await worst(acme, -30) == "operational"
    assert await worst(zeta, -10) == "maintenance"
    assert await worst(newco, -6) == "none"
    assert await worst(newco, -5) == "operational"
    # The class draws the colour: an outage day and a day without data look different.
    major = acme.locator(f'.day[data-day="{_date(-60)}"]')
    empty = newco.locator(f'.day[data-day="{_date(-6)}"]')
    colour = "el => getComputedStyle(el).backgroundColor"
    assert await major.evaluate(colour) == "rgb(207, 34, 46)"
    assert await empty.evaluate(colour) != await major.evaluate(colour)
    assert "99.65 %" in await acme.locator(".uptime").inner_text()
    assert await acme.locator("svg.spark polyline").count() == 1
    assert await zeta.locator("svg.spark").count() == 0  # no samples: no sparkline
    assert "Acme AI" in await acme.locator("h2 a").inner_text()
    assert await acme.locator("h2 a").get_attribute("href") == "providers/acme"
    await page.wait_for_function(
        "document.getElementById('updated').textContent.startsWith('updated')"
    )  # the notices' script ran, within the policy
    assert await page.locator("#events tbody tr").count() >= 1
    await _screenshot(page, "overview-light", tmp_path)
    site.watched.assert_clean()


async def test_a_day_shows_its_tooltip_on_keyboard_focus(site: Site) -> None:
    page = await site.page()
    await site.open(page, "/")
    wanted = _date(-60)
    focused: dict[str, str | None] = {}
    for _ in range(200):
        await page.keyboard.press("Tab")
        focused = await page.evaluate(
            "() => ({cls: document.activeElement.className,"
            " day: document.activeElement.dataset.day || null})"
        )
        if focused["day"] == wanted:
            break
    assert focused["day"] == wanted, focused
    cell = page.locator(f'#provider-acme .day[data-day="{wanted}"]')
    tip = cell.locator(".tip")
    assert await tip.is_visible()
    text = await tip.inner_text()
    assert "60 min down" in text
    assert "Elevated errors on the API" in text
    label = await cell.get_attribute("aria-label")
    assert label is not None
    assert "60 min down" in label
    assert "Elevated errors" in label
    # Another day's tooltip stays hidden.
    assert not await page.locator(f'#provider-acme .day[data-day="{_date(-59)}"] .tip').is_visible()
    site.watched.assert_clean()


async def test_provider_page_episodes_timeline_and_badges(site: Site, tmp_path: Path) -> None:
    page = await site.page()
    headers = await site.open(page, "/providers/acme")
    assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert await page.locator(".bar .day").count() == 90
    episodes = page.locator(".episode")
    assert await episodes.count() == 3
    newest, middle, oldest = (episodes.nth(i) for i in range(3))
    assert "probes saw it 10 min before the status page" in await newest.inner_text()
    assert "the status page saw it; no probe did" in await middle.inner_text()
    first = await oldest.inner_text()
    assert "probes saw it 12 min before the status page" in first
    assert "the status page confirmed it 12 min after it began" in first
    assert "We are investigating elevated errors." in first  # its timeline's update
    assert "Some models fail." in await middle.locator(".timeline").inner_text()
    assert await oldest.locator("a").get_attribute("href") == (
        "https://status.example.com/incidents/inc-0"
    )
    components = await page.locator(".components tbody").inner_text()
    assert "acme-fast" in components
    assert "p50 212 ms · p95 480 ms" in components
    assert "99.65 %" in await page.locator(".summary").inner_text()
    for badge in await page.locator(".badges img").all():  # the badges render under the CSP
        assert await badge.evaluate("img => img.complete && img.naturalWidth > 0")
    await _screenshot(page, "provider-light", tmp_path)
    site.watched.assert_clean()
    # An unknown provider is a 404 page (the browser logs the 404 itself; nothing else).
    missing = await site.page()
    await site.open(missing, "/providers/nope", status=404)
    assert "tocsin watches no provider nope" in await missing.locator("main").inner_text()
    assert all("404" in error for error in site.watched.errors)
    site.watched.errors.clear()
    site.watched.assert_clean()


async def test_dark_scheme_screenshots(site: Site, tmp_path: Path) -> None:
    page = await site.page(scheme="dark")
    await site.open(page, "/")
    background = await page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(13, 17, 23)"
    await page.wait_for_function(
        "document.getElementById('updated').textContent.startsWith('updated')"
    )
    await _screenshot(page, "overview-dark", tmp_path)
    await site.open(page, "/providers/acme")
    await _screenshot(page, "provider-dark", tmp_path)
    site.watched.assert_clean()


async def test_a_phone_needs_no_horizontal_scroll(site: Site) -> None:
    page = await site.page(viewport=PHONE)
    for path in ("/", "/providers/acme"):
        await site.open(page, path)
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], (path, width)
        bar = await page.locator(".bar").first.bounding_box()
        assert bar is not None
        assert bar["x"] >= 0
        assert bar["x"] + bar["width"] <= PHONE["width"]
        assert await page.locator(".bar").first.locator(".day").count() == 90
    # A focused day's tooltip stays on the screen too (the last day's opens leftwards).
    await site.open(page, "/")
    last = page.locator("#provider-acme .day").last
    await last.focus()
    tip = await last.locator(".tip").bounding_box()
    assert tip is not None
    assert tip["x"] >= 0
    assert tip["x"] + tip["width"] <= PHONE["width"]
    site.watched.assert_clean()
