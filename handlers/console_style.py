"""How the console colours a status (Rich styles): the console's notices and the CLI's tables
share it, and a one-shot command (``tocsin check``) gets it without the console notifier's
imports."""

from __future__ import annotations

from bot.models import Status

STYLE = {
    Status.OPERATIONAL: "green",
    Status.DEGRADED: "yellow",
    Status.PARTIAL_OUTAGE: "dark_orange",
    Status.MAJOR_OUTAGE: "red",
    Status.MAINTENANCE: "blue",
    Status.UNKNOWN: "grey50",
}
