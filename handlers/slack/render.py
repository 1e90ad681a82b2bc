"""Block Kit for notices and command answers, within Slack's limits.

Slack's documented limits (api.slack.com/reference/block-kit): at most 50 blocks, a header's
plain text ≤ 150 characters, a section's text ≤ 3000, at most 10 fields of ≤ 2000 each, at most
10 context elements, at most 25 elements in an ``actions`` block (a root's buttons: a
button's text ≤ 75, its ``action_id`` ≤ 255, its ``value`` ≤ 2000); a message's top-level
``text`` (the notification and fallback) should stay well under 40,000 (we keep it under
3000). Every piece is clipped here, so no provider payload, however long, makes Slack refuse
a notice. A root's buttons ride in its attachment's blocks, under the colour bar; a click
comes back as a ``block_actions`` payload (container ``message_attachment``).

Every string from outside (a status page's titles and names, a probe's detail, what a user
typed, the config, the store) is escaped for mrkdwn (``&``, ``<``, ``>``: Slack's control
characters, docs.slack.dev/messaging/formatting-message-text#escaping) in every field: the
top-level ``text``, the attachment's ``fallback``, sections, fields, context. mrkdwn objects are
``verbatim`` (Slack links no bare URL or channel name and parses no mention in them), messages
go with ``parse: none`` and ``link_names: false``, and a link is built only for an http(s) URL.
The only live mention is tocsin's own: the channel's configured ``<!here>``/``<!channel>``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

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
from bot.chatops.records import Button
from bot.compose import Notice
from bot.models import EMOJI, utcnow
from bot.notifier import Intent
from bot.outside import clip, safe_url
from bot.queries import FallbackOption, ProviderRow
from handlers.chat import notice_color

HEADER_MAX = 150
SECTION_MAX = 3000
FIELD_MAX = 2000
FIELDS_MAX = 10
BLOCKS_MAX = 50
CONTEXT_MAX = 10
TEXT_MAX = 3000
#: Block Kit's limits for an ``actions`` block and its buttons (docs.slack.dev/reference/
#: block-kit/blocks/actions-block, .../block-elements/button-element): at most 25 elements,
#: a button's plain text ≤ 75 characters, its ``action_id`` ≤ 255, its ``value`` ≤ 2000.
ACTIONS_MAX = 25
BUTTON_TEXT_MAX = 75
ACTION_ID_MAX = 255
BUTTON_VALUE_MAX = 2000
#: A root's buttons: one ``actions`` block, each button's ``action_id`` ``tocsin_{action}``
#: (what :mod:`handlers.slack.commands` listens for).
CONTROLS_BLOCK = "tocsin_controls"
ACTION_PREFIX = "tocsin_"

METADATA_TYPE = "tocsin_notice"
#: The mentions a channel can be configured with (``slack.channels[].mention``).
MENTIONS = frozenset({"here", "channel"})
#: How a message is sent: Slack turns nothing in its text into a link or a mention
#: (docs.slack.dev/reference/methods/chat.postMessage, ``parse`` and ``link_names``).
SEND_AS = {"parse": "none", "link_names": False}

#: ``@channel``, ``@here``, ``@everyone`` as plain words (docs.slack.dev/messaging/
#: formatting-message-text#automatic-parsing).
_BROADCAST = re.compile(r"@(channel|here|everyone)\b", re.IGNORECASE)

Message = dict[str, Any]


def escape(text: str) -> str:
    """Text from outside as literal mrkdwn: &, < and > are Slack's control characters (links,
    mentions, ``<!channel>``), so they go as HTML entities; and a plain ``@channel``, which
    Slack's automatic parsing would make a mention where ``parse: none`` cannot be asked for
    (a command's answer), gets a zero-width space after its ``@``."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _BROADCAST.sub("@\u200b\\1", escaped)


def code(text: str) -> str:
    """Text for inside a code span or block: escaped, and with no backtick that could close it
    (mrkdwn has no escape for one: an apostrophe stands in)."""
    return escape(text).replace("`", "'")


def link(url: str | None, label: str | None) -> str:
    """``<url|label>`` for an http(s) URL; anything else (``javascript:``...) is no link, only
    its escaped label."""
    safe = safe_url(url)
    if safe is None:
        return escape(label or "")
    target = escape(safe).replace("|", "%7C")
    return f"<{target}|{escape(label or safe)}>"


# ------------------------------------------------------------------------- notices


def notice_message(
    notice: Notice, intent: Intent, *, mention: str | None = None, event_id: str | None = None
) -> Message:
    """``chat.postMessage``/``chat.update`` arguments for a notice: a colour bar by severity,
    Block Kit inside, a plain-text fallback (with the mention, which is what notifies)."""
    notice = replace(notice, url=safe_url(notice.url))  # a link only where it may be one
    prefix = f"<!{mention}> " if mention in MENTIONS else ""
    blocks: list[dict[str, Any]] = [_header(f"{notice.emoji} {notice.title}")]
    if notice.text or prefix:
        blocks.append(_section(prefix + escape(notice.text)))
    if notice.fields:
        blocks.append(
            {
                "type": "section",
                "fields": [
                    _mrkdwn(clip(f"*{escape(name)}*\n{escape(value)}", FIELD_MAX))
                    for name, value in notice.fields[:FIELDS_MAX]
                ],
            }
        )
    if notice.fallbacks:
        blocks.append(
            _section("*Fall back to:* " + ", ".join(_option(o) for o in notice.fallbacks))
        )
    controls = controls_block(notice.buttons)
    if controls is not None:
        blocks.append(controls)
    context = []
    if notice.url:
        context.append(_mrkdwn(link(notice.url, notice.url_label or "Status page")))
    context.append(
        _mrkdwn(f"tocsin · {_intent_label(intent)} · event `{code(notice.event_id[:12])}`")
    )
    blocks.append({"type": "context", "elements": context[:CONTEXT_MAX]})
    color = notice_color(notice)
    plain = escape(notice.plain)
    return {
        "text": clip(prefix + plain, TEXT_MAX),
        "attachments": [
            {
                "color": color,
                "blocks": blocks[:BLOCKS_MAX],
                "fallback": clip(plain, TEXT_MAX),
            }
        ],
        "metadata": notice_metadata(event_id or notice.event_id, intent),
        **SEND_AS,
    }


def controls_block(buttons: Sequence[Button]) -> dict[str, Any] | None:
    """A root's buttons (acknowledge, silence: issue 15) as one ``actions`` block, or ``None``
    when it has none (a reply, a resolved root, a target that takes no buttons). A button
    Block Kit would refuse (a value or action id over its limit) is left out, not sent."""
    elements = []
    seen: set[str] = set()
    for button in buttons:
        action_id = f"{ACTION_PREFIX}{button.action}"
        too_long = len(action_id) > ACTION_ID_MAX or not 0 < len(button.value) <= BUTTON_VALUE_MAX
        if too_long or action_id in seen:  # action ids are unique within a block
            continue
        seen.add(action_id)
        element: dict[str, Any] = {
            "type": "button",
            "action_id": action_id,
            "text": {
                "type": "plain_text",
                "text": clip(button.label, BUTTON_TEXT_MAX) or button.action,
                "emoji": True,
            },
            "value": button.value,
        }
        if button.style in ("primary", "danger"):
            element["style"] = button.style
        elements.append(element)
    if not elements:
        return None
    return {"type": "actions", "block_id": CONTROLS_BLOCK, "elements": elements[:ACTIONS_MAX]}


def notice_metadata(event_id: str, intent: Intent) -> dict[str, Any]:
    """Message metadata carrying the event id: how a restarted tocsin finds what it posted."""
    return {
        "event_type": METADATA_TYPE,
        "event_payload": {"event_id": event_id, "intent": intent.value},
    }


def _intent_label(intent: Intent) -> str:
    return {
        Intent.OPEN: "new",
        Intent.UPDATE: "update",
        Intent.RESOLVE: "resolved",
        Intent.NOTICE: "notice",
    }[intent]


def _option(option: FallbackOption) -> str:
    return escape(option.summary)


# ------------------------------------------------------------------------- answers


def answer_message(answer: Answer) -> Message:
    """The response to a slash command (ephemeral: only the asker sees it)."""
    if isinstance(answer, Overview):
        blocks = _overview(answer)
    elif isinstance(answer, ProviderDetail):
        blocks = _detail(answer)
    elif isinstance(answer, FallbackAnswer):
        blocks = _fallback(answer)
    elif isinstance(answer, TroubleFallbacks):
        blocks = _trouble(answer)
    elif isinstance(answer, UnknownProvider):
        blocks = [_section(f":warning: {answer.message_with(code)}")]
    else:
        blocks = _help(answer)
    return {
        "response_type": "ephemeral",
        "text": clip(_plain(blocks), TEXT_MAX),
        "blocks": blocks[:BLOCKS_MAX],
    }


def _overview(answer: Overview) -> list[dict[str, Any]]:
    if not answer.rows:
        return [_section("No providers are watched. Add some to the `providers` list.")]
    headline = (
        "All watched providers are operational."
        if not answer.trouble
        else f"{len(answer.trouble)} of {len(answer.rows)} providers have trouble."
    )
    lines = [_row_line(row) for row in answer.rows]
    return [
        _header("AI provider status"),
        _section(headline),
        *_sections(lines),
        _context(f"from tocsin's store · {_clock(answer.at)} · /status <provider> for details"),
    ]


def _row_line(row: ProviderRow) -> str:
    lasted = row.outage_for(utcnow())
    since = f" for {lasted}" if lasted else ""
    incident = f" · {link(row.incident.url, row.incident.title)}" if row.incident else ""
    return (
        f"{EMOJI[row.status]} *{escape(row.name)}* (`{code(row.id)}`): "
        f"{escape(row.status_text)}{since}{incident}"
    )


def _detail(answer: ProviderDetail) -> list[dict[str, Any]]:
    row = answer.row
    fields = [("Status", row.status_text)]
    if row.since:
        fields.append(("Since", _clock(row.since)))
    fields.append(("Uptime (24 h)", percent(answer.uptime)))
    if row.latency_ms is not None:
        fields.append(("Probe latency", f"{row.latency_ms:.0f} ms"))
    blocks: list[dict[str, Any]] = [
        _header(f"{EMOJI[row.status]} {row.name}"),
        {"type": "section", "fields": [_mrkdwn(f"*{escape(n)}*\n{escape(v)}") for n, v in fields]},
    ]
    lines = [
        escape(c.summary) + (f" · _{escape(clip(c.state.detail, 200))}_" if c.state.detail else "")
        for c in answer.components
    ]
    blocks += _sections(["*Components*", *lines] if lines else ["_No data yet._"])
    if answer.seen_from:  # (issue 17) each vantage's view
        blocks.append(_context(escape(answer.seen_from)))
    if row.incident:
        incident = row.incident
        text = f"*Incident:* {link(incident.url, incident.title)} ({escape(incident.status)})"
        if incident.update:
            text += f"\n>{escape(clip(' '.join(incident.update.split()), 1500))}"
        blocks.append(_section(text))
    if answer.fallbacks:
        blocks.append(_section("*Fallbacks:* " + ", ".join(_option(o) for o in answer.fallbacks)))
    if answer.status_url:
        blocks.append(_context(link(answer.status_url, "Status page")))
    return blocks


def _fallback(answer: FallbackAnswer) -> list[dict[str, Any]]:
    row = answer.row
    blocks = [
        _header(f"Fallbacks for {row.name}"),
        _section(f"{EMOJI[row.status]} {escape(row.name)} is {escape(row.status_text)}."),
    ]
    if not answer.options:
        blocks.append(
            _section(f"No fallback group is configured for `{code(row.id)}` (set `fallbacks`).")
        )
        return blocks
    blocks += _sections(
        [
            f"{rank}. {EMOJI[o.status]} *{escape(o.name)}* (`{code(o.provider)}`): "
            f"{escape(o.facts)}"
            for rank, o in enumerate(answer.options, 1)
        ]
    )
    if answer.litellm:
        blocks.append(_section(f"*LiteLLM*\n```{code(answer.litellm)}```"))
    if answer.openrouter:
        blocks.append(_section(f"*OpenRouter*\n```{code(answer.openrouter)}```"))
    return blocks


def _trouble(answer: TroubleFallbacks) -> list[dict[str, Any]]:
    if not answer.answers:
        return [
            _section(
                "Every watched provider is operational: no fallback needed. "
                "`/fallback <provider>` shows a provider's group anyway."
            )
        ]
    blocks: list[dict[str, Any]] = []
    for one in answer.answers:
        blocks += _fallback(one)
    return blocks


def _help(answer: Help) -> list[dict[str, Any]]:
    lines = [f"`{code(command)}`: {escape(what)}" for command, what in answer.commands]
    providers = ", ".join(f"`{code(p)}`" for p in answer.providers) or "none"
    return [_header("tocsin commands"), *_sections(lines), _context(f"Providers: {providers}")]


# --------------------------------------------------------------------------- pieces


def _header(text: str) -> dict[str, Any]:
    return {
        "type": "header",
        "text": {"type": "plain_text", "text": clip(text, HEADER_MAX), "emoji": True},
    }


def _mrkdwn(text: str) -> dict[str, Any]:
    """A mrkdwn text object Slack takes as written: no bare URL, channel name or mention is
    turned into a link (``verbatim``, docs.slack.dev/reference/block-kit/composition-objects/
    text-object); only the markup built here (``<url|label>``, ``<!here>``) is live."""
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": _mrkdwn(clip(text, SECTION_MAX))}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [_mrkdwn(clip(text, SECTION_MAX))]}


def _sections(lines: Sequence[str]) -> list[dict[str, Any]]:
    """Lines packed into as few sections as the 3000-character limit allows."""
    blocks: list[dict[str, Any]] = []
    current = ""
    for line in lines:
        line = clip(line, SECTION_MAX)
        if current and len(current) + 1 + len(line) > SECTION_MAX:
            blocks.append(_section(current))
            current = ""
        current = f"{current}\n{line}" if current else line
    if current:
        blocks.append(_section(current))
    return blocks


def _plain(blocks: Sequence[dict[str, Any]]) -> str:
    """The blocks' text as the message's top-level ``text`` (mrkdwn): the headers' plain
    text is escaped on the way, the rest already is."""
    parts = []
    for block in blocks:
        text = block.get("text")
        if isinstance(text, dict):
            parts.append(_as_mrkdwn(text))
        for element in block.get("fields", []) + block.get("elements", []):
            parts.append(_as_mrkdwn(element))
    return "\n".join(p for p in parts if p)


def _as_mrkdwn(text: dict[str, Any]) -> str:
    raw = str(text.get("text", ""))
    return escape(raw) if text.get("type") == "plain_text" else raw


def _clock(at: datetime) -> str:
    return at.strftime("%H:%M UTC")
