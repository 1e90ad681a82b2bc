"""What ``/status`` and ``/fallback`` answer, decided once for every chat platform.

:class:`Answers` reads the store (never a live check: Slack and Discord want an answer within
3 s) and returns platform-neutral answers; ``handlers/slack`` and ``handlers/discord`` render
them. The wording of an unknown provider, the ranking of fallbacks and the paste-ready snippets
live here so both platforms say the same thing.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from bot.models import EMOJI, ComponentState, Status, utcnow
from bot.outside import one_line
from bot.queries import (
    FallbackOption,
    ProviderRow,
    fallback_options,
    provider_row,
    provider_rows,
    uptime,
)
from bot.store import Store
from config.schema import TocsinConfig

if TYPE_CHECKING:
    from bot.vantage import VantageView

UPTIME_WINDOW = timedelta(hours=24)
SNIPPET_MODELS = 3  # OpenRouter tries up to three models in order
#: How much of what someone typed an answer quotes back.
ECHO_MAX = 40


@dataclass(frozen=True, slots=True)
class Overview:
    """``/status``: every watched provider at a glance."""

    rows: tuple[ProviderRow, ...]
    at: datetime

    @property
    def trouble(self) -> tuple[ProviderRow, ...]:
        return tuple(r for r in self.rows if r.status.is_outage or r.status is Status.MAINTENANCE)


def percent(share: float | None) -> str:
    return "n/a" if share is None else f"{share * 100:.2f}%"


@dataclass(frozen=True, slots=True)
class ComponentLine:
    state: ComponentState
    uptime: float | None

    @property
    def summary(self) -> str:
        """``🔴 Claude API: major outage · 97.50% up``; a probed model adds its latency
        (``· p50 420 ms, p95 900 ms``)."""
        state = self.state
        latency = ""
        if state.latency_p50_ms is not None and state.latency_p95_ms is not None:
            latency = f" · p50 {state.latency_p50_ms:.0f} ms, p95 {state.latency_p95_ms:.0f} ms"
        return (
            f"{EMOJI[state.status]} {state.display_name}: {state.status.label.lower()} "
            f"· {percent(self.uptime)} up{latency}"
        )


@dataclass(frozen=True, slots=True)
class ProviderDetail:
    """``/status <provider>``: components, open incident, 24 h uptime, fallbacks."""

    row: ProviderRow
    components: tuple[ComponentLine, ...]
    uptime: float | None
    fallbacks: tuple[FallbackOption, ...]
    status_url: str | None
    at: datetime
    #: (issue 17) Each vantage's latest view (with ``watch.quorum`` > 1; else none).
    vantages: tuple[VantageView, ...] = ()

    @property
    def seen_from(self) -> str | None:
        """``Seen from: eu-west ✅ · us-east ❌ timeout`` (plain text: each platform escapes)."""
        if not self.vantages:
            return None
        return "Seen from: " + " · ".join(one_line(v.label, 120) for v in self.vantages)


@dataclass(frozen=True, slots=True)
class FallbackAnswer:
    """``/fallback <provider>``: the group ranked, and snippets to paste."""

    row: ProviderRow
    options: tuple[FallbackOption, ...]
    litellm: str | None
    openrouter: str | None
    at: datetime

    @property
    def best(self) -> FallbackOption | None:
        healthy = [o for o in self.options if o.status is Status.OPERATIONAL]
        return healthy[0] if healthy else None


@dataclass(frozen=True, slots=True)
class TroubleFallbacks:
    """``/fallback`` with no provider: the groups of every provider in trouble now."""

    answers: tuple[FallbackAnswer, ...]
    at: datetime


def echo(typed: str) -> str:
    """What someone typed, fit to be quoted back in a code span on any platform: one line of
    at most :data:`ECHO_MAX` characters, an apostrophe for each backtick (which would close
    the span: Slack has no escape for one, and Discord's backslash does not work inside it)."""
    return one_line(typed, ECHO_MAX).replace("`", "'") or "?"


@dataclass(frozen=True, slots=True)
class UnknownProvider:
    #: What was typed, as :func:`echo` made it.
    given: str
    valid: tuple[str, ...]
    suggestion: str | None

    def message_with(self, code: Callable[[str], str]) -> str:
        """The answer, each code span's content passed through the platform's ``code``
        escape (what was typed comes from outside; so, through the config, do the ids)."""
        hint = f" Did you mean `{code(self.suggestion)}`?" if self.suggestion else ""
        return (
            f"I don't watch a provider called `{code(self.given)}`.{hint} "
            f"Watched: {', '.join(f'`{code(v)}`' for v in self.valid)}."
        )

    @property
    def message(self) -> str:
        return self.message_with(str)


@dataclass(frozen=True, slots=True)
class Help:
    commands: tuple[tuple[str, str], ...] = field(
        default=(
            ("/status", "every watched provider at a glance"),
            ("/status <provider>", "its components, open incident and 24 h uptime"),
            ("/fallback <provider>", "healthy alternatives, best first, with snippets"),
            ("/fallback", "alternatives for every provider in trouble now"),
        )
    )
    providers: tuple[str, ...] = ()


Answer = Overview | ProviderDetail | FallbackAnswer | TroubleFallbacks | UnknownProvider | Help


class Answers:
    def __init__(self, config: TocsinConfig, store: Store, probed: Collection[str] = ()) -> None:
        self.config = config
        self.store = store
        self.probed = frozenset(probed)

    async def status(self, text: str = "") -> Answer:
        words = text.strip().lower().split()
        if not words:
            states = await self.store.states()
            return Overview(tuple(provider_rows(self.config, states)), utcnow())
        if words[0] == "help":
            return self.help()
        provider = self._provider(words[0])
        if isinstance(provider, UnknownProvider):
            return provider
        return await self._detail(provider)

    async def fallback(self, text: str = "") -> Answer:
        words = text.strip().lower().split()
        if words and words[0] == "help":
            return self.help()
        states = await self.store.states()
        if not words:
            rows = [r for r in provider_rows(self.config, states) if r.status.is_outage]
            return TroubleFallbacks(tuple(self._fallback(r, states) for r in rows), utcnow())
        provider = self._provider(words[0])
        if isinstance(provider, UnknownProvider):
            return provider
        config = self.config.provider(provider)
        assert config is not None
        return self._fallback(provider_row(config, states), states)

    def help(self) -> Help:
        return Help(providers=tuple(self.config.provider_ids))

    # ------------------------------------------------------------------ parts

    def _provider(self, given: str) -> str | UnknownProvider:
        ids = self.config.provider_ids
        if given in ids:
            return given
        by_name = {p.name.lower(): p.id for p in self.config.providers}
        if given in by_name:
            return by_name[given]
        close = difflib.get_close_matches(given, [*ids, *by_name], n=1, cutoff=0.5)
        suggestion = by_name.get(close[0], close[0]) if close else None
        return UnknownProvider(echo(given), tuple(ids), suggestion)

    async def _detail(self, provider_id: str) -> ProviderDetail:
        config = self.config.provider(provider_id)
        assert config is not None
        states = await self.store.states()
        row = provider_row(config, states)
        now = utcnow()
        since = now - UPTIME_WINDOW
        lines = []
        for state in row.components:
            changes = await self.store.history(state.key, since - UPTIME_WINDOW * 30)
            lines.append(ComponentLine(state, uptime(changes, state.status, since, now)))
        shares = [line.uptime for line in lines if line.uptime is not None]
        options = fallback_options(self.config, states, provider_id, probed=self.probed)
        vantages: tuple[VantageView, ...] = ()
        if self.config.watch.quorum > 1:  # (issue 17) imported only when it is used
            from bot.vantage import vantage_views

            vantages = tuple(await vantage_views(self.store, provider_id, now=now))
        return ProviderDetail(
            row=row,
            components=tuple(lines),
            uptime=min(shares) if shares else None,
            fallbacks=tuple(options),
            status_url=config.status_url,
            at=now,
            vantages=vantages,
        )

    def _fallback(self, row: ProviderRow, states: dict[str, ComponentState]) -> FallbackAnswer:
        options = fallback_options(self.config, states, row.id, probed=self.probed)
        primary = self.config.provider(row.id)
        return FallbackAnswer(
            row=row,
            options=tuple(options),
            litellm=litellm_snippet(primary.litellm_model if primary else None, options),
            openrouter=openrouter_snippet(primary.openrouter_model if primary else None, options),
            at=utcnow(),
        )


def _usable(options: Sequence[FallbackOption]) -> list[FallbackOption]:
    """The alternatives worth pasting: not down, best first."""
    return [o for o in options if not o.status.is_outage or o.status is Status.DEGRADED]


def litellm_snippet(primary: str | None, options: Sequence[FallbackOption]) -> str | None:
    """LiteLLM's ``completion(..., fallbacks=[...])``: the primary is tried first by itself."""
    models = [o.litellm_model for o in _usable(options) if o.litellm_model][:SNIPPET_MODELS]
    if not models:
        return None
    model = json.dumps(primary or "your-model")
    return f"completion(model={model}, messages=messages, fallbacks={json.dumps(models)})"


def openrouter_snippet(primary: str | None, options: Sequence[FallbackOption]) -> str | None:
    """OpenRouter's ``models`` array: tried in order, up to three."""
    models = [o.openrouter_model for o in _usable(options) if o.openrouter_model]
    chain = ([primary] if primary else []) + models
    chain = list(dict.fromkeys(chain))[:SNIPPET_MODELS]
    if len(chain) < 2 and not models:
        return None
    return json.dumps({"models": chain})
