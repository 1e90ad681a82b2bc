"""Notices through Apprise (https://github.com/caronc/apprise): one Apprise URL per target,
for any of its services (ntfy, Telegram, e-mail, Matrix, Google Chat, Mattermost, a JSON or
form webhook...).

Apprise only sends: no threads, no edits, no way to look a message up. An episode's updates
and its recovery are new messages, their titles marked as replies (``↳``); :meth:`find_sent`
returns ``None``, so a crash between the service taking a message and tocsin recording it can
repeat that one message.

The body is plain text (``NotifyFormat.TEXT``: Apprise escapes it for services that read HTML),
built from the notice like the other platforms' (text, fields, link, fallbacks), each part
clipped, and defanged (:func:`handlers.chat.defang`) for services that read Markdown or parse
mentions anyway. Apprise tells its caller only ``True`` or ``False``: a ``False`` is retried
(a service down and a refused message look the same), its own retries are off (the dispatcher
retries) and its logger is silent (its lines can name a URL, credentials included).
"""

from __future__ import annotations

import apprise

from bot.compose import Notice
from bot.models import Status
from bot.notifier import Delivery, Intent, PermanentError, Receipt, RetryableError, Target
from bot.outside import clip, one_line, safe_url
from config.apprise_urls import quiet
from handlers.chat import OWN_KINDS, defang, headline

TITLE_MAX = 250
TEXT_MAX = 3000
FIELD_MAX = 500
FIELDS_MAX = 12
BODY_MAX = 4000

#: Apprise's notification types by status (services show them as an icon or a colour).
TYPES = {
    Status.OPERATIONAL: apprise.NotifyType.SUCCESS,
    Status.DEGRADED: apprise.NotifyType.WARNING,
    Status.MAINTENANCE: apprise.NotifyType.WARNING,
    Status.PARTIAL_OUTAGE: apprise.NotifyType.FAILURE,
    Status.MAJOR_OUTAGE: apprise.NotifyType.FAILURE,
    Status.UNKNOWN: apprise.NotifyType.INFO,
}


def notify_type(notice: Notice) -> apprise.NotifyType:
    return apprise.NotifyType.INFO if notice.kind in OWN_KINDS else TYPES[notice.status]


def title(notice: Notice, intent: Intent) -> str:
    return clip(defang(one_line(headline(notice, intent))), TITLE_MAX)


def body(notice: Notice) -> str:
    """The notice as plain lines, like :attr:`bot.compose.Notice.plain`, each part bounded."""
    lines = [clip(notice.text, TEXT_MAX)]
    lines += [
        f"{one_line(name, 80)}: {clip(value, FIELD_MAX)}"
        for name, value in notice.fields[:FIELDS_MAX]
    ]
    url = safe_url(notice.url)
    if url:
        lines.append(f"{one_line(notice.url_label or 'Details', 80)}: {url}")
    if notice.fallbacks:
        lines.append("Fall back to: " + one_line(", ".join(f.label for f in notice.fallbacks)))
    return clip(defang("\n".join(line for line in lines if line)), BODY_MAX)


class AppriseNotifier:
    """Messages through Apprise, one :class:`apprise.Apprise` per target URL."""

    kind = "apprise"

    def __init__(self) -> None:
        quiet()
        self._senders: dict[str, apprise.Apprise] = {}

    def _sender(self, target: Target) -> apprise.Apprise:
        sender = self._senders.get(target.key)
        if sender is None:
            asset = apprise.AppriseAsset(async_mode=True, secure_logging=True)
            sender = apprise.Apprise(asset=asset)
            if not sender.add(str(target.options["url"])):
                raise PermanentError(f"apprise {target.key}: Apprise cannot use the URL")
            self._senders[target.key] = sender
        return sender

    async def deliver(self, target: Target, delivery: Delivery) -> Receipt:
        sender = self._sender(target)
        notice = delivery.notice
        sent = await sender.async_notify(
            body=body(notice) or notice.title,
            title=title(notice, delivery.intent),
            notify_type=notify_type(notice),
            body_format=apprise.NotifyFormat.TEXT,
        )
        if not sent:
            raise RetryableError(
                f"apprise {target.key}: the service did not take the notice "
                "(Apprise does not say why)"
            )
        return Receipt({"event": delivery.event.id})

    async def find_sent(self, target: Target, delivery: Delivery) -> Receipt | None:
        return None  # Apprise cannot look a message up (see the module docstring)

    async def close(self) -> None:
        self._senders.clear()
