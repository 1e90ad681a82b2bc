"""The live dashboard (``/live``) in a real browser: the system's Chromium, headless, driven by
Playwright, loading a real tocsin server whose store holds what a hostile status page would put
there.

What must hold: outside text is shown as text (never markup, never an attribute), an incident
link is a link only when it is an http(s) URL, no script but the dashboard's own ever runs
(no dialog opens, even when the hostile bits are hovered), and the page lives within its own
Content-Security-Policy (the browser reports no violation).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from playwright.async_api import Browser, Dialog, Page, async_playwright

from bot.models import ComponentState, Event, EventIncident, Incident, StateUpdate, Status
from bot.server import CONTENT_SECURITY_POLICY, Health, build_app, start_server
from bot.store import MemoryStore, Store
from config.loader import build_config
from tests.redis_server import free_port

pytestmark = pytest.mark.browser

HOSTILE_URL = 'javascript:alert(1)//" onmouseover="alert(2)"'
HOSTILE_TITLE = '<img src=x onerror="alert(3)">Elevated errors"><b onmouseover="alert(4)">'
HOSTILE_NAME = '<svg onload="alert(5)">API</svg>" onmouseover="alert(6)'
HOSTILE_DETAIL = '"><script>alert(7)</script>'
SAFE_URL = "https://status.zeta.example/incidents/01HZX"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


#: The one line a run without a browser prints for each skipped test.
SKIP_WHY = (
    "no Chromium: `make browser` installs it (apt-get install chromium), "
    "or set CHROMIUM=/path/to/chromium"
)


def _chromium() -> str:
    """The system's Chromium (Playwright downloads no browser here): ``$CHROMIUM``, else the
    one on the PATH (``make browser`` installs it)."""
    found = (
        os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    )
    if not found:
        pytest.skip(SKIP_WHY)
    return found


async def _fill(store: Store) -> None:
    """Acme: a major outage whose incident, component and detail are all hostile.
    Zeta: an ordinary incident with an https link."""
    hostile = Incident(
        id="inc1",
        title=HOSTILE_TITLE,
        url=HOSTILE_URL,
        status="investigating",
        update=HOSTILE_DETAIL,
    )
    safe = Incident(id="inc2", title="Degraded chat", url=SAFE_URL, status="identified")
    rows = [
        ("acme", "api", HOSTILE_NAME, hostile, Status.MAJOR_OUTAGE),
        ("zeta", "chat", "Chat", safe, Status.DEGRADED),
    ]
    for provider, component, name, incident, status in rows:
        state = ComponentState(
            provider=provider,
            component=component,
            name=name,
            status=status,
            incident=incident,
            detail=HOSTILE_DETAIL if provider == "acme" else None,
            # zeta's component is a probed model with its latency percentiles
            model="chat" if provider == "zeta" else None,
            latency_p50_ms=420.4 if provider == "zeta" else None,
            latency_p95_ms=910.0 if provider == "zeta" else None,
        )
        event = Event(
            type="state_changed",
            provider=provider,
            component=component,
            component_name=name,
            from_=Status.OPERATIONAL,
            to=status,
            incident=EventIncident.of(incident),
            detail=HOSTILE_DETAIL if provider == "acme" else None,
        )
        await store.apply([StateUpdate(state, event, status_changed=True)])


@dataclass
class Dashboard:
    page: Page
    url: str
    dialogs: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)

    async def load(self) -> dict[str, str]:
        """Load it, wait for the first refresh to be drawn; the page's response headers."""
        response = await self.page.goto(self.url)
        assert response is not None
        await self.page.wait_for_function(
            "document.getElementById('updated').textContent.startsWith('updated')",
            timeout=10_000,
        )
        return await response.all_headers()

    async def hover_everything(self) -> None:
        """Move the mouse over every cell and link: any injected handler would fire now."""
        for element in await self.page.query_selector_all("td, td *"):
            await element.hover()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=_chromium(), args=FLAGS)
        yield launched
        await launched.close()


@pytest.fixture
async def dashboard(browser: Browser) -> AsyncIterator[Dashboard]:
    config = build_config(
        {
            "console": {"enabled": False},
            "providers": [
                {"id": "acme", "name": "Acme AI", "probe": {"url": "http://127.0.0.1:9/"}},
                {"id": "zeta", "name": "Zeta AI", "probe": {"url": "http://127.0.0.1:9/"}},
            ],
        }
    )
    store = MemoryStore()
    await _fill(store)
    port = free_port()
    runner = await start_server(build_app(config, store, Health(store=store)), "127.0.0.1", port)
    context = await browser.new_context()
    page = await context.new_page()
    board = Dashboard(page, f"http://127.0.0.1:{port}/live")  # the overview is now at /

    async def dialog(opened: Dialog) -> None:
        board.dialogs.append(opened.message)
        await opened.dismiss()

    page.on("dialog", dialog)
    page.on(
        "console",
        lambda message: (
            board.violations.append(message.text)
            if "Content Security Policy" in message.text
            else None
        ),
    )
    yield board
    await context.close()
    await runner.cleanup()


async def test_hostile_text_is_shown_as_text_runs_nothing_and_real_links_stay_links(
    dashboard: Dashboard,
) -> None:
    headers = await dashboard.load()
    page = dashboard.page
    await dashboard.hover_everything()
    assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert headers["x-content-type-options"] == "nosniff"
    for attribute in ("onmouseover", "onerror", "onload"):
        assert await page.locator(f"[{attribute}]").count() == 0, attribute
    assert await page.locator('a[href^="javascript:"]').count() == 0
    assert (
        await page.locator("tbody img, tbody svg, tbody script, tbody b[onmouseover]").count() == 0
    )
    providers = page.locator("#providers tbody")
    acme = providers.locator("tr", has_text="Acme AI")
    assert await acme.locator("a").count() == 0  # its only link was javascript:
    texts = await acme.locator("td").all_inner_texts()
    assert HOSTILE_TITLE in texts[3]  # the title, as the characters it is made of
    assert HOSTILE_DETAIL in texts[3]
    assert HOSTILE_NAME in texts[2]
    assert HOSTILE_DETAIL in texts[1]
    events = await page.locator("#events tbody").inner_text()
    assert HOSTILE_TITLE in events
    assert HOSTILE_NAME in events
    assert dashboard.dialogs == []
    assert dashboard.violations == []  # the page needs nothing its policy forbids
    # An ordinary incident's https link stays a link.
    link = providers.locator("tr", has_text="Zeta AI").locator("a")
    assert await link.count() == 1
    assert await link.get_attribute("href") == SAFE_URL
    assert await link.inner_text() == "Degraded chat"
    # A probed model shows its latency percentiles beside its status.
    zeta = await providers.locator("tr", has_text="Zeta AI").locator("td").all_inner_texts()
    assert "p50 420 ms · p95 910 ms" in zeta[2]
