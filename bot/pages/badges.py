"""Two-part SVG badges in the shields.io look: ``Acme AI | operational``, ``uptime 30d | 99.65 %``.

A badge is a standalone SVG document (embedded as ``<img>`` in READMEs, or opened directly
under tocsin's Content-Security-Policy): presentation attributes only, no ``<style>``, no
script, no external font (a system font stack). Its label can be a provider's name, which is
outside text: it is clipped here and XML-escaped by the template (:mod:`bot.pages.render`).
Text widths are estimated per character (Verdana 11 px, like shields.io), so no font file is
read at runtime.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.models import Status
from bot.outside import one_line

LABEL_MAX = 40
#: A state's colour on a badge (shields.io's palette where it has one).
COLOURS = {
    Status.OPERATIONAL: "#2ea44f",
    Status.DEGRADED: "#dbab09",
    Status.PARTIAL_OUTAGE: "#e36209",
    Status.MAJOR_OUTAGE: "#cb2431",
    Status.MAINTENANCE: "#0969da",
    Status.UNKNOWN: "#9f9f9f",
}
GREY = "#9f9f9f"
LABEL_COLOUR = "#555"
_NARROW = set("fijlrtI!|.,:;'`()[] ")
_WIDE = set("mwMW@%&#")


def text_width(text: str) -> float:
    """Roughly how wide ``text`` is in Verdana at 11 px."""
    width = 0.0
    for char in text:
        if char in _NARROW:
            width += 4.0
        elif char in _WIDE:
            width += 10.5
        elif char.isupper() or char.isdigit():
            width += 7.5
        else:
            width += 6.8
    return width


@dataclass(frozen=True, slots=True)
class Badge:
    label: str
    message: str
    colour: str
    label_width: int
    message_width: int

    @property
    def width(self) -> int:
        return self.label_width + self.message_width

    @property
    def label_x(self) -> float:
        return self.label_width / 2

    @property
    def message_x(self) -> float:
        return self.label_width + self.message_width / 2

    @property
    def title(self) -> str:
        return f"{self.label}: {self.message}"


def badge(label: str, message: str, colour: str) -> Badge:
    label, message = one_line(label, LABEL_MAX) or "tocsin", one_line(message, LABEL_MAX)
    return Badge(
        label=label,
        message=message,
        colour=colour,
        label_width=round(text_width(label)) + 10,
        message_width=round(text_width(message)) + 10,
    )


def status_badge(name: str, status: Status) -> Badge:
    return badge(name, status.label.lower(), COLOURS[status])


def uptime_badge(uptime: float | None, days: int = 30) -> Badge:
    if uptime is None:
        return badge(f"uptime {days}d", "no data", GREY)
    if uptime >= 0.999:
        colour = COLOURS[Status.OPERATIONAL]
    elif uptime >= 0.99:
        colour = "#97ca00"
    elif uptime >= 0.95:
        colour = COLOURS[Status.PARTIAL_OUTAGE]
    else:
        colour = COLOURS[Status.MAJOR_OUTAGE]
    return badge(f"uptime {days}d", f"{uptime * 100:.2f} %", colour)


def unknown_badge() -> Badge:
    return badge("tocsin", "unknown", GREY)
