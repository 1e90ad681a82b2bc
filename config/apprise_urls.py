"""Apprise URLs (``json://``, ``ntfy://``, ``tgram://``, ``mailto://``...): checked here at load
time, by Apprise itself, so a URL it cannot use is a config error and not a dead letter.

An Apprise URL carries its service's credentials (a bot token, a password, a key), so nothing
here ever shows more of one than its scheme, and Apprise's own logger (which names a URL it
cannot load) is kept quiet: :func:`quiet` is called before Apprise first sees a URL, by the
config check and by the notifier alike.
"""

from __future__ import annotations

import logging
import re

#: What an Apprise URL's scheme looks like (``json``, ``mailtos``, ``ntfy``...).
_SCHEME = re.compile(r"([a-z][a-z0-9+.-]{0,31})://", re.IGNORECASE)
#: Apprise's logger (``apprise.logger.LOGGER_NAME``): every plugin logs under it.
LOGGER_NAME = "apprise"


def quiet() -> None:
    """Apprise's log records go nowhere: they can name a URL, credentials included (on a URL
    it cannot load, or a plugin's debug line), and tocsin reports failures itself."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.propagate = False
    logger.setLevel(logging.CRITICAL + 1)
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())


def scheme(url: str) -> str | None:
    """An Apprise URL's scheme, lower case (the only part of it that may be shown)."""
    found = _SCHEME.match(url)
    return found[1].lower() if found else None


def check_apprise_url(url: str) -> str:
    """A URL Apprise can load: its scheme is one of Apprise's services and the rest parses
    for that service. Says which without showing the URL."""
    import apprise  # here, not at import: only a config with an apprise section pays for it

    quiet()
    found = scheme(url)
    if found is None:
        raise ValueError(
            "is not an Apprise URL: they start with a service's scheme, like json://, ntfy://, "
            "tgram:// or mailto:// (the value is not shown)"
        )
    if not _known(found):
        raise ValueError(
            f"scheme {found!r} is not a service Apprise knows (see Apprise's list of "
            "services; the rest of the URL is not shown)"
        )
    if not apprise.Apprise().add(url):
        raise ValueError(
            f"Apprise cannot use this {found}:// URL: a part that service needs is missing or "
            "malformed (a token, a host, a target); the URL is not shown"
        )
    return url


def _known(found: str) -> bool:
    """Whether Apprise has a plugin for ``found`` (its plugin manager's own lookup)."""
    from apprise.manager_plugins import NotificationManager

    return found in NotificationManager()  # type: ignore[no-untyped-call]
