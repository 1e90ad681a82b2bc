"""The ``Frontend`` protocol: a chat platform's command side (``/status``, ``/fallback``).

Each platform in ``handlers/`` that answers commands provides one; the runtime starts and stops
them, and mounts their HTTP routes (Slack's HTTP mode) on tocsin's server.
"""

from __future__ import annotations

from typing import Protocol

from bot.server import Handler


class Frontend(Protocol):
    def routes(self) -> list[tuple[str, str, Handler]]: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
