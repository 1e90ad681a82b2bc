"""The console target: notices printed with rich. The first target, and the one the quick
start uses; it gets everything, admin notices included.

Every string of a notice goes in as a Rich ``Text`` (literal: ``[bold]`` or ``[/]`` in a
component name is shown, never parsed as markup) and through ``one_line`` first: a terminal
would obey the escape sequences a status page could put in a title (``ESC]0;...``, clear
screen), and Rich passes ``ESC`` through."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from bot.compose import Notice
from bot.models import Status
from bot.notifier import Delivery, Intent, Receipt, Target
from bot.outside import one_line
from bot.routing import Route
from config.schema import TocsinConfig
from handlers.chat import OWN_KINDS
from handlers.console_style import STYLE

#: A notice's longest line on the console (Rich wraps it).
LINE_MAX = 4000
_LABEL = {
    Intent.OPEN: "NEW",
    Intent.UPDATE: "UPDATE",
    Intent.RESOLVE: "RESOLVED",
    Intent.NOTICE: "NOTICE",
}


class ConsoleNotifier:
    kind = "console"

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(highlight=False)

    async def deliver(self, target: Target, delivery: Delivery) -> Receipt:
        clock = delivery.event.at.strftime("%H:%M:%S")
        self.console.print(render(delivery.notice, delivery.intent, clock))
        return Receipt({"console": delivery.event.id})

    async def find_sent(self, target: Target, delivery: Delivery) -> Receipt | None:
        return None  # printing twice after a crash is harmless; the console keeps no history

    async def close(self) -> None:
        return None


def render(notice: Notice, intent: Intent, clock: str) -> Panel:
    style = "magenta" if notice.kind in OWN_KINDS else STYLE[notice.status]
    body = Table.grid(padding=(0, 1))
    body.add_column(style="bold", no_wrap=True)
    body.add_column()
    if notice.text:
        body.add_row("", _literal(notice.text))
    for name, value in notice.fields:
        body.add_row(_literal(name), _literal(value))
    if notice.url:
        body.add_row("Link", _literal(notice.url, style="underline"))
    if notice.fallbacks:
        body.add_row("Fall back to", _literal(", ".join(f.label for f in notice.fallbacks)))
    title = _literal(f"{notice.emoji} {notice.title}", style=f"bold {style}")
    return Panel(
        body,
        title=title,
        title_align="left",
        border_style=style,
        subtitle=f"{_LABEL[intent]} · {clock}",
        subtitle_align="right",
    )


def _literal(text: str, style: str = "") -> Text:
    """Outside text for the terminal: no markup, no control character, one line."""
    return Text(one_line(text, LINE_MAX), style=style)


def targets(config: TocsinConfig, *, console: Console | None = None, **_: Any) -> list[Target]:
    if not config.console.enabled:
        return []
    route = Route(providers=None, min_status=Status.OPERATIONAL, admin=True)
    return [Target("console", ConsoleNotifier(console), route)]
