"""The console target: a notice's text from outside is printed as text, never obeyed (Rich
markup, terminal escape sequences)."""

from __future__ import annotations

import io

from rich.console import Console

from bot.dispatcher import Dispatcher, DispatcherSettings
from bot.models import Event, EventIncident, Status, utcnow
from bot.notice_context import NoticeContext
from bot.store import MemoryStore
from config.loader import build_config
from handlers import console

CONFIG = build_config(
    {"providers": [{"id": "acme", "name": "Acme AI", "probe": {"url": "http://127.0.0.1:9/"}}]}
)
#: What a status page could put in a component name and an incident title: Rich markup (a
#: stray closing tag crashes a markup parser) and escape sequences a terminal would obey
#: (set the window title, clear the screen).
COMPONENT = "API [/] [bold red]fake[/bold red] \x1b]0;pwned\x07\x1b[2J"
TITLE = "Errors [link=https://evil.example]click[/link] \x1b[8mhidden\x1b[0m"


async def test_hostile_text_is_printed_literally() -> None:
    buffer = io.StringIO()
    targets = console.targets(CONFIG, console=Console(file=buffer, width=300, highlight=False))
    store = MemoryStore()
    settings = DispatcherSettings(consumer="t")
    dispatcher = Dispatcher(store, targets, NoticeContext(CONFIG, store), settings)
    event = Event(
        type="state_changed",
        provider="acme",
        component="api",
        component_name=COMPONENT,
        from_=Status.OPERATIONAL,
        to=Status.MAJOR_OUTAGE,
        provider_status=Status.MAJOR_OUTAGE,
        provider_name="Acme AI",
        episode="acme:ep1",
        episode_started=utcnow(),
        incident=EventIncident(
            id="i", title=TITLE, status="investigating", url="https://s.example/i"
        ),
    )
    assert await dispatcher.deliver_now(event) == {"console": "delivered"}
    printed = buffer.getvalue()
    assert "API [/] [bold red]fake[/bold red]" in printed
    assert "[link=https://evil.example]click[/link]" in printed
    assert "\x1b" not in printed  # a file is no terminal: any escape would be the page's
    assert "\x07" not in printed
    assert "pwned" in printed
    assert "hidden" in printed
