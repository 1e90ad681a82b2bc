"""What a target and a secret must look like before tocsin sends anything to them.

Each rule here is one the platform itself enforces, so a config that breaks it could only be
dead-lettered at the first outage: checked when the config is loaded instead, and nothing more
(a value the platform might accept is accepted). The messages say which rule was broken and
never echo a secret (a webhook URL carries its token).
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import urlsplit

from bot.outside import safe_url

#: A Discord snowflake: a 64-bit unsigned id in decimal (real ones have 17 to 20 digits, but
#: any such number is a well-formed id; one that does not exist is Discord's 404, not ours).
SNOWFLAKE = re.compile(r"[0-9]{1,20}")
_SNOWFLAKE_MAX = 2**64 - 1
#: A Discord webhook URL's path, as Discord hands it out (``/api/webhooks/{id}/{token}``,
#: also with an API version). The notifier finds the id and token with this same pattern, so
#: what the config accepts is what the runtime can use. discord.py's ``Webhook.from_url``
#: takes tokens of 60 or more of these characters (Discord's are 68).
WEBHOOK_PATH = re.compile(
    r"/api(?:/v\d+)?/webhooks/(?P<id>\d{1,20})/(?P<token>[A-Za-z0-9._-]{60,})/?(?=[?#]|$)"
)
_ANY_WEBHOOK_PATH = re.compile(r"/api(?:/v\d+)?/webhooks/(?P<id>[^/]*)/(?P<token>[^/]*)/?")
_WEBHOOK_TOKEN = re.compile(r"[A-Za-z0-9._-]{60,}")
#: A Slack conversation id: a public (C), private (G) or direct (D) channel, in capitals and
#: digits. Names will not do: ``chat.update`` and ``conversations.history`` take ids only.
SLACK_CHANNEL = re.compile(r"[CGD][A-Z0-9]+")
#: A PagerDuty Events API v2 routing key: PagerDuty refuses any other length ("should be 32
#: characters") and anything but letters and digits.
ROUTING_KEY = re.compile(r"[A-Za-z0-9]{32}")


def clean_secret(value: str) -> str:
    """``value`` without surrounding whitespace (a stray newline from a paste). Whitespace or
    control characters left inside cannot be part of a token or a key: an error."""
    value = value.strip()
    if not value:
        raise ValueError("is empty")
    if any(c.isspace() or unicodedata.category(c).startswith("C") for c in value):
        raise ValueError(
            "contains whitespace or control characters (a paste error?); the value is not shown"
        )
    return value


def is_snowflake(value: str) -> bool:
    return bool(SNOWFLAKE.fullmatch(value)) and int(value) <= _SNOWFLAKE_MAX


def check_snowflake(value: str, what: str = "a Discord id") -> str:
    if not is_snowflake(value):
        raise ValueError(
            f"{_shown(value)} is not {what}: Discord ids are numbers, like 123456789012345678 "
            "(Developer Mode, then right-click → Copy ID)"
        )
    return value


def check_slack_channel(value: str) -> str:
    if not SLACK_CHANNEL.fullmatch(value):
        raise ValueError(
            f"{_shown(value)} is not a Slack channel id: ids are C…, G… or D… in capitals and "
            "digits (the channel's About tab shows it); a name will not do, tocsin edits its "
            "messages and Slack needs the id for that"
        )
    return value


def check_webhook_url(url: str) -> str:
    """A Discord webhook URL: any http(s) host (tests point at a local Discord), but the path
    Discord hands out. Says what is wrong without the token."""
    if safe_url(url) is None:
        raise ValueError("is not an http(s) URL (the webhook URL Discord shows, whole)")
    path = urlsplit(url).path
    found = WEBHOOK_PATH.fullmatch(path)
    if found and is_snowflake(found["id"]):
        return url
    parts = _ANY_WEBHOOK_PATH.fullmatch(path)
    if parts is None:
        raise ValueError(
            "is not a Discord webhook URL: the path must be /api/webhooks/<id>/<token> "
            "(the channel's Integrations → Webhooks → Copy Webhook URL)"
        )
    if not is_snowflake(parts["id"]):
        raise ValueError("the webhook id is not a Discord id (a number, like 123456789012345678)")
    if not _WEBHOOK_TOKEN.fullmatch(parts["token"]):
        raise ValueError(
            f"the webhook token is not one Discord makes ({len(parts['token'])} characters; "
            "Discord's are 68 letters, digits, '-' and '_'): copy the whole URL again"
        )
    raise ValueError("is not a Discord webhook URL")  # pragma: no cover - the patterns agree


#: Hosts a Teams webhook may be reached over plain http: this machine only (a local fake).
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def check_teams_url(url: str) -> str:
    """A Teams incoming-webhook or Workflows (Power Automate) URL: https, a host and a path
    (their hosts vary by tenant and cloud, so none is required); http only to this machine,
    for a local fake. Says what is wrong without the URL (its signature is the secret)."""
    if safe_url(url) is None:
        raise ValueError(
            "is not an http(s) URL (the URL the channel's Workflows or Incoming Webhook shows, "
            "whole); the value is not shown"
        )
    parts = urlsplit(url)
    if parts.scheme.lower() != "https" and (parts.hostname or "") not in _LOOPBACK:
        raise ValueError("must be https (Teams gives out https URLs only); the value is not shown")
    if parts.path in ("", "/"):
        raise ValueError("has no path: copy the whole webhook URL again; the value is not shown")
    return url


def check_routing_key(key: str) -> str:
    if not ROUTING_KEY.fullmatch(key):
        found = f"{len(key)} characters" if len(key) != 32 else "other characters"
        raise ValueError(
            "is not a PagerDuty Events API v2 routing key: those are 32 letters and digits "
            f"(the service's Events API v2 integration key; this one has {found})"
        )
    return key


def _shown(value: str) -> str:
    """A non-secret value from the config, quoted, one line, short."""
    text = value if len(value) <= 40 else value[:39] + "…"
    return repr(text)
