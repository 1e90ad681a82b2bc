"""The pages' HTML and the badges' SVG, from Jinja2 templates (``bot/pages/templates``).

Why Jinja2 and not strings built by hand: every value the pages show came from outside (a
status page's titles, updates and links, the config's names, whatever is in the store), and
with ``autoescape`` on for every template, each ``{{ value }}`` is escaped for HTML/XML
(``& < > " '``, so attribute values too) unless a template says otherwise, which none of
these do (no ``|safe``, no ``Markup``). A forgotten call to ``escape()`` in a string built by
hand is an injection; a forgotten escape here is impossible by default. Jinja2 is a
well-kept library (Pallets), pure Python over MarkupSafe. Outside text is data handed to
templates, never a template itself: ``{{7*7}}`` in a title stays those characters.
``StrictUndefined`` turns a typo in a template into an error in the tests, not a blank.

Links: a template makes a link only from a view's ``href``, which
:func:`bot.outside.safe_url` set (http(s) or nothing). The pages need no inline script or
style (the CSP forbids both): tooltips are CSS (``:hover``/``:focus``), charts inline SVG
with classes and presentation attributes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cache

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from bot.history.queries import ProviderHistory
from bot.outside import one_line
from bot.pages import views
from bot.pages.badges import Badge

STATUSES = [
    ("operational", "operational"),
    ("degraded", "degraded"),
    ("partial_outage", "partial outage"),
    ("major_outage", "major outage"),
    ("maintenance", "maintenance"),
    ("none", "no data"),
]


@cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("bot.pages", "templates"),
        autoescape=select_autoescape(
            enabled_extensions=("html", "svg"), default_for_string=True, default=True
        ),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.globals["legend"] = STATUSES
    return env


def overview(histories: Sequence[ProviderHistory], now: datetime) -> str:
    shown = [views.provider_view(h, now) for h in histories[: views.PROVIDERS_MAX]]
    return (
        environment()
        .get_template("overview.html")
        .render(
            providers=shown,
            more=max(0, len(histories) - views.PROVIDERS_MAX),
            now=views.when(now),
            root="",
        )
    )


def provider(history: ProviderHistory, now: datetime) -> str:
    page = views.provider_page(history, now)
    return (
        environment()
        .get_template("provider.html")
        .render(page=page, p=page.head, now=views.when(now), root="../")
    )


def not_found(what: str, root: str = "../") -> str:
    return (
        environment()
        .get_template("not_found.html")
        .render(what=one_line(what, 100), root=root, now="")
    )


def badge_svg(shown: Badge) -> str:
    return environment().get_template("badge.svg").render(b=shown)
