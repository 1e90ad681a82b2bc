"""Discord embeds for notices and command answers, within Discord's limits.

Discord's documented limits (discord.com/developers/docs/resources/message#embed-object-
embed-limits): title ≤ 256, description ≤ 4096, ≤ 25 fields (name ≤ 256, value ≤ 1024),
footer ≤ 2048, author ≤ 256, and all embeds of a message together ≤ 6000 characters;
``content`` ≤ 2000. Everything is clipped here.
"""

from __future__ import annotations

from collections.abc import Sequence

import discord

from bot.answers import (
    Answer,
    FallbackAnswer,
    Help,
    Overview,
    ProviderDetail,
    TroubleFallbacks,
    UnknownProvider,
    percent,
)
from bot.models import Status, utcnow
from bot.notices import EMOJI, FallbackOption, Notice
from bot.notify import Intent
from bot.queries import ProviderRow

TITLE_MAX = 256
DESCRIPTION_MAX = 4096
FIELDS_MAX = 25
FIELD_NAME_MAX = 256
FIELD_VALUE_MAX = 1024
FOOTER_MAX = 2048
TOTAL_MAX = 6000
EMBEDS_MAX = 10

COLORS = {
    Status.OPERATIONAL: 0x1A7F37,
    Status.DEGRADED: 0xBF8700,
    Status.PARTIAL_OUTAGE: 0xD1581B,
    Status.MAJOR_OUTAGE: 0xCF222E,
    Status.MAINTENANCE: 0x0969DA,
    Status.UNKNOWN: 0x6E7781,
}
OTHER_COLOR = 0x8250DF
#: The footer carries the event id: how a restarted tocsin recognises what it posted.
FOOTER_PREFIX = "tocsin · "


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def footer(intent: Intent, event_id: str) -> str:
    return f"{FOOTER_PREFIX}{intent.value} · event {event_id}"


def event_in_footer(text: str | None, event_id: str) -> bool:
    return (
        bool(text)
        and text is not None
        and text.startswith(FOOTER_PREFIX)
        and text.endswith(f"event {event_id}")
    )


# ------------------------------------------------------------------------- notices


def notice_embed(notice: Notice, intent: Intent, event_id: str) -> discord.Embed:
    color = OTHER_COLOR if notice.kind in ("admin", "flapping", "drill") else COLORS[notice.status]
    embed = discord.Embed(
        title=clip(f"{notice.emoji} {notice.title}", TITLE_MAX),
        description=clip(notice.text, DESCRIPTION_MAX) or None,
        color=color,
        url=notice.url,
        timestamp=utcnow(),
    )
    for name, value in notice.fields[: FIELDS_MAX - 1]:
        embed.add_field(
            name=clip(name, FIELD_NAME_MAX), value=clip(value or "-", FIELD_VALUE_MAX), inline=False
        )
    if notice.fallbacks:
        embed.add_field(
            name="Fall back to",
            value=clip(", ".join(_option(o) for o in notice.fallbacks), FIELD_VALUE_MAX),
            inline=False,
        )
    embed.set_footer(text=clip(footer(intent, event_id), FOOTER_MAX))
    return fit(embed)


def fit(embed: discord.Embed) -> discord.Embed:
    """Drop fields (then trim the description) until the embed fits the 6000 total."""
    while len(embed) > TOTAL_MAX and embed.fields:
        embed.remove_field(len(embed.fields) - 1)
    if len(embed) > TOTAL_MAX and embed.description:
        excess = len(embed) - TOTAL_MAX
        embed.description = clip(embed.description, max(1, len(embed.description) - excess - 1))
    return embed


def _option(option: FallbackOption) -> str:
    return option.summary


# ------------------------------------------------------------------------- answers


def answer_embeds(answer: Answer) -> list[discord.Embed]:
    if isinstance(answer, Overview):
        embeds = [_overview(answer)]
    elif isinstance(answer, ProviderDetail):
        embeds = [_detail(answer)]
    elif isinstance(answer, FallbackAnswer):
        embeds = [_fallback(answer)]
    elif isinstance(answer, TroubleFallbacks):
        embeds = [_fallback(a) for a in answer.answers][:EMBEDS_MAX] or [
            discord.Embed(
                description="Every watched provider is operational: no fallback needed. "
                "`/fallback <provider>` shows a provider's group anyway.",
                color=COLORS[Status.OPERATIONAL],
            )
        ]
    elif isinstance(answer, UnknownProvider):
        embeds = [
            discord.Embed(
                description=clip(f"⚠️ {answer.message}", DESCRIPTION_MAX), color=OTHER_COLOR
            )
        ]
    else:
        embeds = [_help(answer)]
    return _within_total([fit(e) for e in embeds])


def _within_total(embeds: list[discord.Embed]) -> list[discord.Embed]:
    kept: list[discord.Embed] = []
    total = 0
    for embed in embeds:
        if total + len(embed) > TOTAL_MAX:
            break
        kept.append(embed)
        total += len(embed)
    return kept


def _overview(answer: Overview) -> discord.Embed:
    worst = max((r.status for r in answer.rows), key=lambda s: s.rank, default=Status.OPERATIONAL)
    headline = (
        "All watched providers are operational."
        if not answer.trouble
        else f"{len(answer.trouble)} of {len(answer.rows)} providers have trouble."
    )
    lines = [headline, ""] + [_row_line(r) for r in answer.rows]
    embed = discord.Embed(
        title="AI provider status", description=_lines(lines), color=COLORS[worst]
    )
    embed.set_footer(text="from tocsin's store · /status <provider> for details")
    return embed


def _row_line(row: ProviderRow) -> str:
    lasted = row.outage_for(utcnow())
    since = f" for {lasted}" if lasted else ""
    incident = ""
    if row.incident and row.incident.url:
        incident = f" · [{clip(row.incident.title, 80)}]({row.incident.url})"
    return f"{EMOJI[row.status]} **{row.name}** (`{row.id}`): {row.status_text}{since}{incident}"


def _detail(answer: ProviderDetail) -> discord.Embed:
    row = answer.row
    title = clip(f"{EMOJI[row.status]} {row.name}", TITLE_MAX)
    embed = discord.Embed(title=title, color=COLORS[row.status], url=answer.status_url)
    embed.add_field(name="Status", value=row.status_text)
    if row.since:
        embed.add_field(name="Since", value=row.since.strftime("%H:%M UTC"))
    embed.add_field(name="Uptime (24 h)", value=percent(answer.uptime))
    if row.latency_ms is not None:
        embed.add_field(name="Probe latency", value=f"{row.latency_ms:.0f} ms")
    components = "\n".join(c.summary for c in answer.components) or "No data yet."
    embed.add_field(name="Components", value=clip(components, FIELD_VALUE_MAX), inline=False)
    if row.incident:
        incident = row.incident
        text = f"[{clip(incident.title, 200)}]({incident.url})" if incident.url else incident.title
        if incident.update:
            text += f" ({incident.status})\n> {clip(' '.join(incident.update.split()), 700)}"
        embed.add_field(name="Incident", value=clip(text, FIELD_VALUE_MAX), inline=False)
    if answer.fallbacks:
        listed = ", ".join(_option(o) for o in answer.fallbacks)
        embed.add_field(name="Fallbacks", value=clip(listed, FIELD_VALUE_MAX), inline=False)
    return embed


def _fallback(answer: FallbackAnswer) -> discord.Embed:
    row = answer.row
    embed = discord.Embed(
        title=clip(f"Fallbacks for {row.name}", TITLE_MAX),
        description=f"{EMOJI[row.status]} {row.name} is {row.status_text}.",
        color=COLORS[answer.best.status] if answer.best else COLORS[row.status],
    )
    if not answer.options:
        embed.description = f"No fallback group is configured for `{row.id}` (set `fallbacks`)."
        return embed
    lines = [
        f"{rank}. {EMOJI[o.status]} **{o.name}** (`{o.provider}`): {o.facts}"
        for rank, o in enumerate(answer.options, 1)
    ]
    embed.add_field(name="Best first", value=clip("\n".join(lines), FIELD_VALUE_MAX), inline=False)
    if answer.litellm:
        snippet = f"```py\n{answer.litellm}\n```"
        embed.add_field(name="LiteLLM", value=clip(snippet, FIELD_VALUE_MAX), inline=False)
    if answer.openrouter:
        snippet = f"```json\n{answer.openrouter}\n```"
        embed.add_field(name="OpenRouter", value=clip(snippet, FIELD_VALUE_MAX), inline=False)
    return embed


def _help(answer: Help) -> discord.Embed:
    lines = [f"`{command}`: {what}" for command, what in answer.commands]
    embed = discord.Embed(title="tocsin commands", description=_lines(lines), color=OTHER_COLOR)
    embed.set_footer(text=clip("Providers: " + (", ".join(answer.providers) or "none"), FOOTER_MAX))
    return embed


def _lines(lines: Sequence[str]) -> str:
    text = "\n".join(lines)
    return clip(text, DESCRIPTION_MAX)
