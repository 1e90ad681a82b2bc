"""A ready Slack app manifest (``tocsin slack-manifest``): paste it at api.slack.com/apps →
Create New App → From a manifest, install, and copy the tokens into the environment."""

from __future__ import annotations

from typing import Any

from handlers.slack.commands import COMMANDS, EVENTS_PATH, USAGE

#: What tocsin needs, and why.
BOT_SCOPES = (
    "chat:write",  # post notices, reply in threads, edit the root on recovery
    "chat:write.public",  # post in public channels without being invited first
    "commands",  # /status, /fallback and /tocsin
    "channels:history",  # after a crash, find a notice already posted (public channels)
    "groups:history",  # the same in private channels
)


def manifest(
    *, socket_mode: bool = True, url: str | None = None, name: str = "tocsin"
) -> dict[str, Any]:
    """The manifest for Socket Mode (no public URL), or HTTP mode at ``url``. Interactivity
    is on (a notice's buttons): in HTTP mode its clicks come to the same ``/slack/events``."""
    base = (url or "https://tocsin.example.com").rstrip("/")
    commands = []
    for command, description in COMMANDS.items():
        entry: dict[str, Any] = {
            "command": command,
            "description": description,
            "usage_hint": USAGE.get(command, "[provider]"),
            "should_escape": False,
        }
        if not socket_mode:
            entry["url"] = f"{base}{EVENTS_PATH}"
        commands.append(entry)
    interactivity: dict[str, Any] = {"is_enabled": True}
    if not socket_mode:
        interactivity["request_url"] = f"{base}{EVENTS_PATH}"
    return {
        "display_information": {
            "name": name,
            "description": "AI-provider outage alerts: first to know, what to switch to.",
            "background_color": "#1f2328",
        },
        "features": {
            "bot_user": {"display_name": name, "always_online": True},
            "slash_commands": commands,
        },
        "oauth_config": {"scopes": {"bot": list(BOT_SCOPES)}},
        "settings": {
            "interactivity": interactivity,
            "org_deploy_enabled": False,
            "socket_mode_enabled": socket_mode,
            "token_rotation_enabled": False,
        },
    }
