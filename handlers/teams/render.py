"""Adaptive Cards for notices, within what a Teams webhook takes.

The message is Teams' webhook envelope: ``{"type": "message", "attachments": [{"contentType":
"application/vnd.microsoft.card.adaptive", "contentUrl": null, "content": <card>}]}``, one
card of version 1.4 (Teams supports up to 1.5; 1.4 is also what Workflows' "Post card in a
chat or channel" renders). A webhook message is at most 28 KB (Teams' limits and
specifications; Teams answers a bigger one "HTTP error 413"), and reports say the Incoming
Webhook counts some bodies as UTF-16: the whole payload is kept under :data:`PAYLOAD_MAX`
bytes of ASCII JSON (non-ASCII characters escaped), well within either count. Every string is
clipped first; if the card is still too big, facts go, then text.

Teams reads a subset of Markdown in a TextBlock and in a Fact's title and value (bold, italic,
lists, ``[text](url)`` links; no HTML) and expands ``{{DATE(...)}}``. Every string from outside
is :func:`escape`\\ d: :func:`handlers.chat.defang` first (no link, ``<at>`` mention, tag or
template survives it on any client, whatever its Markdown escapes do), then a backslash before
each character Markdown gives meaning to (emphasis, code, headings, lists, quotes). The only
link is the card's ``Action.OpenUrl`` button, built only for an http(s) URL. Webhook cards can
mention no one (mentions need ``msteams.entities``, never sent).
"""

from __future__ import annotations

import json
import re
from typing import Any

from bot.compose import Notice
from bot.models import Status
from bot.notifier import Intent
from bot.outside import clip, one_line, safe_url
from handlers.chat import OWN_KINDS, defang, headline

CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
CARD_VERSION = "1.4"
CARD_TYPE = "application/vnd.microsoft.card.adaptive"
#: Teams' limit is 28 KB; this leaves room for a UTF-16 count and Teams' own wrapping.
PAYLOAD_MAX = 20_000
TITLE_MAX = 250
TEXT_MAX = 8_000
FACTS_MAX = 12
FACT_TITLE_MAX = 80
FACT_VALUE_MAX = 600
FALLBACKS_MAX = 600
BUTTON_MAX = 60

#: A TextBlock's colour by status (Adaptive Cards' named colours).
COLORS = {
    Status.OPERATIONAL: "good",
    Status.DEGRADED: "warning",
    Status.PARTIAL_OUTAGE: "attention",
    Status.MAJOR_OUTAGE: "attention",
    Status.MAINTENANCE: "accent",
    Status.UNKNOWN: "default",
}
INTENTS = {
    Intent.OPEN: "new",
    Intent.UPDATE: "update",
    Intent.RESOLVE: "resolved",
    Intent.NOTICE: "notice",
}

#: What Markdown gives meaning to anywhere in a line, and what it reads at a line's start
#: (headings, quotes, list items, numbered items).
_INLINE = re.compile(r"[\\*_~`\[\]|]")
_LINE_START = re.compile(r"^(\s*)([#>+\-]|\d+(?=[.)]))", re.MULTILINE)
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]")


def escape(text: str) -> str:
    """Outside text as literal Teams card text (see the module docstring)."""
    text = defang(_CONTROL.sub("", text))
    text = _INLINE.sub(lambda m: "\\" + m[0], text)
    return _LINE_START.sub(lambda m: f"{m[1]}\\{m[2]}", text)


def literal(text: str, limit: int) -> str:
    """:func:`escape` of ``text`` cut to ``limit`` characters first (an escape is never cut)."""
    return escape(clip(text, limit))


def color(notice: Notice) -> str:
    return "accent" if notice.kind in OWN_KINDS else COLORS[notice.status]


def message(notice: Notice, intent: Intent) -> dict[str, Any]:
    """The webhook body for a notice, within :data:`PAYLOAD_MAX` (see :func:`size`)."""
    facts, text = min(FACTS_MAX, len(notice.fields)), TEXT_MAX
    body = _message(notice, intent, facts, text)
    while size(body) > PAYLOAD_MAX and facts:
        facts -= 1
        body = _message(notice, intent, facts, text)
    while size(body) > PAYLOAD_MAX and text > 0:
        text = max(0, min(text, len(notice.text)) - (size(body) - PAYLOAD_MAX) - 1)
        body = _message(notice, intent, facts, text)
    return body


def size(body: dict[str, Any]) -> int:
    """The bytes the body is sent as (:func:`encode`)."""
    return len(encode(body))


def encode(body: dict[str, Any]) -> bytes:
    """ASCII JSON: a non-ASCII character is a ``\\uXXXX`` escape, so bytes are characters."""
    return json.dumps(body, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def _message(notice: Notice, intent: Intent, facts: int, text: int) -> dict[str, Any]:
    attachment = {"contentType": CARD_TYPE, "contentUrl": None}
    return {
        "type": "message",
        "attachments": [{**attachment, "content": _card(notice, intent, facts, text)}],
    }


def _card(notice: Notice, intent: Intent, facts: int, text: int) -> dict[str, Any]:
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": literal(one_line(headline(notice, intent), TITLE_MAX), TITLE_MAX + 1),
            "weight": "Bolder",
            "size": "Medium",
            "color": color(notice),
            "wrap": True,
        }
    ]
    if notice.text and text > 0:
        body.append({"type": "TextBlock", "text": _paragraphs(notice.text, text), "wrap": True})
    if notice.fields[:facts]:
        body.append({"type": "FactSet", "facts": [_fact(n, v) for n, v in notice.fields[:facts]]})
    if notice.fallbacks:
        listed = ", ".join(o.summary for o in notice.fallbacks)
        body.append(
            {
                "type": "TextBlock",
                "text": "Fall back to: " + literal(listed, FALLBACKS_MAX),
                "wrap": True,
            }
        )
    footer = f"tocsin · {INTENTS[intent]} · event {one_line(notice.event_id, 40)}"
    body.append(
        {
            "type": "TextBlock",
            "text": escape(footer),
            "isSubtle": True,
            "size": "Small",
            "wrap": True,
        }
    )
    card: dict[str, Any] = {
        "$schema": CARD_SCHEMA,
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "body": body,
        "msteams": {"width": "Full"},
    }
    url = safe_url(notice.url)
    if url is not None:
        label = one_line(notice.url_label or "Status page", BUTTON_MAX) or "Status page"
        card["actions"] = [{"type": "Action.OpenUrl", "title": label, "url": url}]
    return card


def _fact(name: str, value: str) -> dict[str, str]:
    return {
        "title": literal(one_line(name, FACT_TITLE_MAX), FACT_TITLE_MAX + 1),
        "value": literal(value or "-", FACT_VALUE_MAX),
    }


def _paragraphs(text: str, limit: int) -> str:
    """Text with its line breaks kept: a TextBlock needs a blank line to break one."""
    return "\n\n".join(line for line in literal(text, limit).split("\n") if line.strip())
