"""Discord embeds for notices and command answers, within Discord's limits.

Discord's documented limits (discord.com/developers/docs/resources/message#embed-object-
embed-limits): title ≤ 256, description ≤ 4096, ≤ 25 fields (name ≤ 256, value ≤ 1024),
footer ≤ 2048, author ≤ 256, and all embeds of a message together ≤ 6000 characters;
``content`` ≤ 2000. Everything is clipped here.

Every string from outside (a status page's titles and names, a probe's detail, what a user
typed, the config, the store) is escaped for Discord's markdown (:func:`escape`): no emphasis,
code, quote, masked link ``[text](url)``, bare link, ``<@id>``/``<@&id>`` or ``@everyone`` comes
out of it. An embed's ``url`` and a masked link are built only for an http(s) URL. Embeds
never ping; the message's ``content`` carries nothing but tocsin's own configured mention, and
every send and edit says which mention may ping (see ``handlers.discord.notifier``).
"""

from __future__ import annotations

import re
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
from bot.chatops.records import BUTTON_ACTIONS, Button
from bot.compose import Notice
from bot.models import EMOJI, Status, utcnow
from bot.notifier import Intent
from bot.outside import clip, safe_url
from bot.queries import FallbackOption, ProviderRow
from handlers import chat

TITLE_MAX = 256
DESCRIPTION_MAX = 4096
FIELDS_MAX = 25
FIELD_NAME_MAX = 256
FIELD_VALUE_MAX = 1024
FOOTER_MAX = 2048
TOTAL_MAX = 6000
EMBEDS_MAX = 10
CONTENT_MAX = 2000
#: Components (docs/components/reference: Button): ``custom_id`` ≤ 100, ``label`` ≤ 80,
#: at most 5 buttons in an action row.
CUSTOM_ID_MAX = 100
LABEL_MAX = 80
ROW_MAX = 5
CUSTOM_ID_PREFIX = "tocsin:"
BUTTON_STYLES = {"primary": discord.ButtonStyle.primary, "danger": discord.ButtonStyle.danger}
#: What a button's value may hold (an episode, ``{provider}:{started}:{token}``, or
#: ``{provider}|{episode}``: see :func:`bot.chatops.records.button_value`).
_VALUE = re.compile(r"^[A-Za-z0-9._:\-]+(?:\|[A-Za-z0-9._:\-]+)?$")


def _number(color: str) -> int:
    """A ``#rrggbb`` colour as the integer Discord takes."""
    return int(color.removeprefix("#"), 16)


COLORS = {status: _number(color) for status, color in chat.COLORS.items()}
OTHER_COLOR = _number(chat.OTHER_COLOR)
#: The footer carries the event id: how a restarted tocsin recognises what it posted.
FOOTER_PREFIX = "tocsin · "


#: What Discord's markdown gives meaning to: the escape itself, emphasis, code, spoilers, masked
#: links (``[text](url)``), ``<...>`` (mentions, channels, timestamps, emoji, links), quotes;
#: headings and lists at the start of a line; the ``://`` of a bare link. A backslash before
#: any of these shows the character itself.
_MARKUP = re.compile(r"[\\*_~`|\[\]<>]|^\s*[#\-]|:(?=//)", re.MULTILINE)


def escape(text: str) -> str:
    """Text from outside as literal Discord text: markdown escaped, mentions broken (with
    discord.py's ``escape_mentions``: ``@everyone``, ``@here``, ``<@id>``, ``<@&id>``)."""
    escaped = _MARKUP.sub(lambda m: f"{m[0][:-1]}\\{m[0][-1]}", text)
    return discord.utils.escape_mentions(escaped)


def literal(text: str, limit: int) -> str:
    """:func:`escape`, within ``limit`` characters: cut before escaping, so a cut never
    leaves half an escape behind."""
    escaped = escape(text)
    if len(escaped) <= limit:
        return escaped
    fits, over = 0, len(text)  # the longest start of ``text`` that fits, by bisection
    while over - fits > 1:
        middle = (fits + over) // 2
        if len(escape(text[:middle])) < limit:
            fits = middle
        else:
            over = middle
    return escape(text[:fits]) + "…"


def code(text: str) -> str:
    """Text for inside a code span or block, where no escape works: without the backtick
    that would close it (an apostrophe stands in)."""
    return text.replace("`", "'")


def link(url: str | None, label: str, limit: int) -> str:
    """``[label](url)`` for an http(s) URL, else the label alone (escaped either way)."""
    text = literal(label, limit)
    safe = safe_url(url)
    if safe is None:
        return text
    target = safe.replace("(", "%28").replace(")", "%29").replace("<", "%3C").replace(">", "%3E")
    return f"[{text}]({target})"


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
    color = _number(chat.notice_color(notice))
    embed = discord.Embed(
        title=literal(f"{notice.emoji} {notice.title}", TITLE_MAX),
        description=literal(notice.text, DESCRIPTION_MAX) or None,
        color=color,
        url=safe_url(notice.url),  # Discord refuses any other scheme (50035), and so do we
        timestamp=utcnow(),
    )
    for name, value in notice.fields[: FIELDS_MAX - 1]:
        embed.add_field(
            name=literal(name, FIELD_NAME_MAX),
            value=literal(value or "-", FIELD_VALUE_MAX),
            inline=False,
        )
    if notice.fallbacks:
        embed.add_field(
            name="Fall back to",
            value=literal(", ".join(_option(o) for o in notice.fallbacks), FIELD_VALUE_MAX),
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
                description=clip(f"⚠️ {answer.message_with(code)}", DESCRIPTION_MAX),
                color=OTHER_COLOR,
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
    if row.incident and safe_url(row.incident.url):
        incident = f" · {link(row.incident.url, row.incident.title, 80)}"
    return (
        f"{EMOJI[row.status]} **{escape(row.name)}** (`{code(row.id)}`): "
        f"{escape(row.status_text)}{since}{incident}"
    )


def _detail(answer: ProviderDetail) -> discord.Embed:
    row = answer.row
    title = literal(f"{EMOJI[row.status]} {row.name}", TITLE_MAX)
    embed = discord.Embed(title=title, color=COLORS[row.status], url=safe_url(answer.status_url))
    embed.add_field(name="Status", value=escape(row.status_text))
    if row.since:
        embed.add_field(name="Since", value=row.since.strftime("%H:%M UTC"))
    embed.add_field(name="Uptime (24 h)", value=percent(answer.uptime))
    if row.latency_ms is not None:
        embed.add_field(name="Probe latency", value=f"{row.latency_ms:.0f} ms")
    components = "\n".join(c.summary for c in answer.components) or "No data yet."
    embed.add_field(name="Components", value=literal(components, FIELD_VALUE_MAX), inline=False)
    if answer.seen_from:  # (issue 17) each vantage's view
        embed.add_field(name="Vantages", value=literal(answer.seen_from, FIELD_VALUE_MAX))
    if row.incident:
        incident = row.incident
        text = link(incident.url, incident.title, 200)
        if incident.update:
            update = " ".join(incident.update.split())
            text += f" ({literal(incident.status, 40)})\n> {literal(update, 700)}"
        embed.add_field(name="Incident", value=clip(text or "-", FIELD_VALUE_MAX), inline=False)
    if answer.fallbacks:
        listed = ", ".join(_option(o) for o in answer.fallbacks)
        embed.add_field(name="Fallbacks", value=literal(listed, FIELD_VALUE_MAX), inline=False)
    return embed


def _fallback(answer: FallbackAnswer) -> discord.Embed:
    row = answer.row
    embed = discord.Embed(
        title=literal(f"Fallbacks for {row.name}", TITLE_MAX),
        description=f"{EMOJI[row.status]} {escape(row.name)} is {escape(row.status_text)}.",
        color=COLORS[answer.best.status] if answer.best else COLORS[row.status],
    )
    if not answer.options:
        embed.description = (
            f"No fallback group is configured for `{code(row.id)}` (set `fallbacks`)."
        )
        return embed
    lines = [
        f"{rank}. {EMOJI[o.status]} **{escape(o.name)}** (`{code(o.provider)}`): {escape(o.facts)}"
        for rank, o in enumerate(answer.options, 1)
    ]
    embed.add_field(name="Best first", value=clip("\n".join(lines), FIELD_VALUE_MAX), inline=False)
    if answer.litellm:
        embed.add_field(name="LiteLLM", value=_snippet(answer.litellm, "py"), inline=False)
    if answer.openrouter:
        embed.add_field(name="OpenRouter", value=_snippet(answer.openrouter, "json"), inline=False)
    return embed


def _snippet(text: str, language: str) -> str:
    """A code block the snippet cannot close, within a field's limit."""
    return f"```{language}\n{clip(code(text), FIELD_VALUE_MAX - 20)}\n```"


def _help(answer: Help) -> discord.Embed:
    lines = [f"`{code(command)}`: {escape(what)}" for command, what in answer.commands]
    embed = discord.Embed(title="tocsin commands", description=_lines(lines), color=OTHER_COLOR)
    embed.set_footer(text=clip("Providers: " + (", ".join(answer.providers) or "none"), FOOTER_MAX))
    return embed


def _lines(lines: Sequence[str]) -> str:
    text = "\n".join(lines)
    return clip(text, DESCRIPTION_MAX)


# ------------------------------------------------------------------------- buttons


def custom_id(button: Button) -> str:
    """A root's button as Discord hands it back on a click: ``tocsin:{action}:{value}``."""
    return f"{CUSTOM_ID_PREFIX}{button.action}:{button.value}"


def read_custom_id(text: object) -> tuple[str, str] | None:
    """``(action, value)`` of one of tocsin's buttons, or ``None`` for anything else (the
    payload is hostile: a forged id, a foreign app's, 10 kB of it)."""
    if not isinstance(text, str) or len(text) > CUSTOM_ID_MAX:
        return None
    if not text.startswith(CUSTOM_ID_PREFIX):
        return None
    action, _, value = text.removeprefix(CUSTOM_ID_PREFIX).partition(":")
    if action not in BUTTON_ACTIONS or not _VALUE.match(value):
        return None
    return action, value


def button_view(buttons: Sequence[Button]) -> discord.ui.View | None:
    """One action row of the root's buttons; ``None`` when there are none, or one's
    ``custom_id`` would be over Discord's 100 characters (then no buttons at all: a row
    missing its Acknowledge is worse than none).

    The view is only rendered (``to_components``), never listened to: clicks come back
    through the gateway bot's ``on_interaction`` (handlers.discord.bot) on whichever replica
    receives them, also after a restart. It is stopped before it is sent, so discord.py
    does not keep it in its view store for every root ever posted."""
    shown = list(buttons)[:ROW_MAX]
    if not shown or any(len(custom_id(b)) > CUSTOM_ID_MAX for b in shown):
        return None
    view = discord.ui.View(timeout=None)
    for button in shown:
        view.add_item(
            discord.ui.Button(
                style=BUTTON_STYLES.get(button.style or "", discord.ButtonStyle.secondary),
                label=clip(button.label, LABEL_MAX),
                custom_id=custom_id(button),
                row=0,
            )
        )
    view.stop()
    return view


def reply_text(lines: Sequence[str]) -> str:
    """A chat-ops answer (plain text from :mod:`bot.chatops`) as literal Discord text."""
    return literal("\n".join(lines), CONTENT_MAX) or "-"
