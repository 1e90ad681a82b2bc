"""What a notice says, decided once for every platform.

:func:`compose` turns an event (and what the store knows) into a platform-neutral
:class:`Notice`; Slack, Discord and the console only render it. Keeping the wording here means
a Slack reader and a Discord reader learn the same thing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from bot.chatops.records import Button
from bot.models import (
    CONTROL_EVENTS,
    EMOJI,
    MAINTENANCE_AHEAD_EVENTS,
    ComponentState,
    Event,
    EventCause,
    Status,
    worst,
)
from bot.outside import clip, one_line, safe_url
from bot.queries import FallbackOption
from config.durations import humanize

NoticeKind = Literal[
    "outage", "update", "recovery", "flapping", "maintenance", "admin", "drill", "escalation"
]


@dataclass(frozen=True, slots=True)
class Notice:
    kind: NoticeKind
    status: Status
    provider: str
    title: str
    text: str
    event_id: str
    fields: tuple[tuple[str, str], ...] = ()
    url: str | None = None
    url_label: str | None = None
    fallbacks: tuple[FallbackOption, ...] = ()
    #: Whether this is bad enough for targets configured to mention people.
    severity: Status = Status.OPERATIONAL
    #: (issue 15) The buttons a root carries on targets that take them (acknowledge,
    #: silence...): see :mod:`bot.chatops.controls`; platforms without buttons ignore them.
    buttons: tuple[Button, ...] = ()

    @property
    def emoji(self) -> str:
        if self.kind == "flapping":
            return "🔁"
        if self.kind == "admin":
            return "⚠️"
        if self.kind == "drill":
            return "🧪"
        if self.kind == "escalation":
            return "📟"
        return EMOJI[self.status]

    @property
    def plain(self) -> str:
        """The whole notice as plain text (chat fallbacks, logs, the console)."""
        lines = [f"{self.emoji} {self.title}", self.text]
        lines += [f"{name}: {value}" for name, value in self.fields]
        if self.url:
            lines.append(f"{self.url_label or 'Details'}: {self.url}")
        if self.fallbacks:
            lines.append("Fall back to: " + ", ".join(f.label for f in self.fallbacks))
        return "\n".join(line for line in lines if line)


def compose(event: Event, *, fallbacks: Sequence[FallbackOption] = ()) -> Notice:
    """The message for one event (a reply, when the episode already has a root)."""
    if event.type == "drill":
        return _drill(event)
    if event.type in MAINTENANCE_AHEAD_EVENTS:
        return _maintenance_ahead(event)
    if event.type in CONTROL_EVENTS:
        return _control(event)
    if event.audience == "admins" or event.type in ("watcher_health", "config_alert"):
        return _admin(event)
    if event.type == "flapping":
        return _flapping(event)
    if event.type == "escalation":
        return _escalation(event)
    if event.type == "incident_update":
        return _incident_update(event)
    if event.episode_closed:
        return _recovery(event)
    return _change(event, fallbacks)


def compose_root(
    event: Event,
    *,
    components: Sequence[ComponentState] = (),
    fallbacks: Sequence[FallbackOption] = (),
    status_url: str | None = None,
) -> Notice:
    """What an episode's root message says now: the state of the whole provider (and, once
    the episode closes, that it is resolved and how long it lasted)."""
    provider_status = event.provider_status or event.to or Status.UNKNOWN
    name = event.provider_name or event.provider
    affected = [c for c in components if c.status is not Status.OPERATIONAL]
    fields = [("Components", _component_list(affected or components))] if components else []
    if event.episode_started:
        fields.append(("Since", clock_text(event.episode_started)))
    fields.append(("Detection", _detection(event, components)))
    incident = event.incident
    if event.cause is not None and not event.episode_closed:
        fields.append(("Possibly related", cause_line(event.cause)))
    if event.episode_closed:
        lasted = _duration(event)
        return Notice(
            kind="recovery",
            status=Status.OPERATIONAL,
            provider=event.provider,
            title=f"Resolved: {name}" + (f" (lasted {lasted})" if lasted else ""),
            text=f"{name} is operational again.",
            event_id=event.id,
            fields=tuple(fields),
            url=incident.url if incident else status_url,
            url_label=incident.title if incident else "Status page",
        )
    return Notice(
        kind="maintenance" if provider_status is Status.MAINTENANCE else "outage",
        status=provider_status,
        provider=event.provider,
        title=f"{name}: {provider_status.label.lower()}" + _suspicion(event, components),
        text=_headline(event),
        event_id=event.id,
        fields=tuple(fields),
        url=incident.url if incident else status_url,
        url_label=incident.title if incident else "Status page",
        fallbacks=tuple(fallbacks),
        severity=provider_status,
    )


# --------------------------------------------------------------------------- groups

#: How much of an upstream incident's title a notice repeats (a page's title can be 50 kB).
CAUSE_MAX = 300
#: Providers listed one per field in a group root; the rest are counted in one more field
#: (Slack shows at most 10 fields, and a channel reads a short list).
GROUP_LISTED_MAX = 9


@dataclass(frozen=True, slots=True)
class GroupMember:
    """One provider of a group root: its name and where it stands now."""

    provider: str
    name: str
    status: Status
    detail: str = ""


def cause_line(cause: EventCause) -> str:
    """ "Cloudflare — Elevated errors in Europe": the upstream and its incident, one bounded
    line (the renderers escape it)."""
    name = one_line(cause.name, 80) or one_line(cause.upstream, 80)
    incident = one_line(cause.incident, CAUSE_MAX)
    return f"{name} — {incident}" if incident else name


def event_member(event: Event) -> GroupMember:
    """A provider of a group as the event that lists it says it is."""
    return GroupMember(
        event.provider,
        event.provider_name or event.provider,
        event.provider_status or event.to or Status.UNKNOWN,
        clip(_headline(event), CAUSE_MAX),
    )


def member_now(member: GroupMember, components: Sequence[ComponentState]) -> GroupMember:
    """Where a provider of a group stands now: by its components when the store knows
    them (a recovered one shows operational), else as it was listed."""
    known = [c for c in components if c.status is not Status.UNKNOWN]
    if not known:
        return member
    affected = [c for c in known if c.status is not Status.OPERATIONAL]
    detail = _component_list(affected) if affected else "all components operational"
    return GroupMember(
        member.provider, member.name, worst(c.status for c in known), clip(detail, CAUSE_MAX)
    )


def compose_group_root(
    cause: EventCause, members: Sequence[GroupMember], *, event_id: str, provider: str = ""
) -> Notice:
    """The one root a channel gets for several providers down with one likely cause:
    "3 providers down — likely cause: Cloudflare", the upstream incident and its link, and
    one field per provider (its status now). Recomposed as members recover: "1 of 3
    providers down", finally "Resolved"."""
    name = one_line(cause.name, 80) or one_line(cause.upstream, 80)
    total = len(members)
    down = [m for m in members if m.status.is_outage]
    status = worst(m.status for m in members) if members else Status.UNKNOWN
    if not down and members:
        title = f"Resolved: {total} providers — likely cause: {name}"
    elif len(down) == total:
        title = f"{total} providers down — likely cause: {name}"
    else:
        title = f"{len(down)} of {total} providers down — likely cause: {name}"
    listed = list(members[:GROUP_LISTED_MAX]) if total > GROUP_LISTED_MAX + 1 else list(members)
    fields = [(f"{m.status.emoji} {one_line(m.name, 80)}", _member_value(m)) for m in listed]
    if len(listed) < total:
        rest = members[len(listed) :]
        fields.append((f"… and {len(rest)} more", ", ".join(one_line(m.name, 40) for m in rest)))
    incident = one_line(cause.incident, CAUSE_MAX)
    return Notice(
        kind="recovery" if not down and members else "outage",
        status=Status.OPERATIONAL if not down and members else status,
        provider=provider or (members[0].provider if members else cause.upstream),
        title=title,
        text=f"Likely cause: {cause_line(cause)}",
        event_id=event_id,
        fields=tuple(fields),
        url=cause.url,
        url_label=incident or f"{name} status",
        severity=status if down else Status.OPERATIONAL,
    )


def compose_group_join(event: Event) -> Notice:
    """A provider that joins a group after its root was posted: a reply in the group's
    thread, "Also down: Zeta AI"."""
    status = event.provider_status or event.to or Status.UNKNOWN
    name = event.provider_name or event.provider
    fields = [("Detection", _detection(event, ()))]
    incident = event.incident
    if incident is not None:
        fields.append(("Incident", f"{incident.title} ({incident.status})"))
    return Notice(
        kind="maintenance" if status is Status.MAINTENANCE else "update",
        status=status,
        provider=event.provider,
        title=f"Also down: {name}: {status.label.lower()}" + _suspicion(event, ()),
        text=_headline(event),
        event_id=event.id,
        fields=tuple(fields),
        url=incident.url if incident else None,
        url_label=incident.title if incident else None,
        severity=status,
    )


def _member_value(member: GroupMember) -> str:
    label = member.status.label
    return f"{label} — {member.detail}" if member.detail else label


# --------------------------------------------------------------------------- replies


def _change(event: Event, fallbacks: Sequence[FallbackOption]) -> Notice:
    old, new = event.from_ or Status.UNKNOWN, event.to or Status.UNKNOWN
    component = event.component_name or event.component or "service"
    name = event.provider_name or event.provider
    if old == new:
        text = f"{component}: {event.detail or 'status unchanged'}."
    else:
        text = f"{component}: {old.label.lower()} → {new.label.lower()}."
    incident = event.incident
    fields = [("Detection", _detection(event, ()))]
    if incident is not None:
        fields.append(("Incident", f"{incident.title} ({incident.status})"))
        if incident.update and incident.new_update:  # an update already told is not repeated
            fields.append(("Latest update", _clip(incident.update)))
    return Notice(
        kind="maintenance" if new is Status.MAINTENANCE else "update",
        status=new,
        provider=event.provider,
        title=f"{name}: {new.label.lower()}" + _suspicion(event, ()),
        text=text if not event.detail or old == new else f"{text} {event.detail}",
        event_id=event.id,
        fields=tuple(fields),
        url=incident.url if incident else None,
        url_label=incident.title if incident else None,
        fallbacks=tuple(fallbacks) if new.is_outage else (),
        severity=event.provider_status or new,
    )


def _incident_update(event: Event) -> Notice:
    incident = event.incident
    assert incident is not None
    name = event.provider_name or event.provider
    return Notice(
        kind="update",
        status=event.to or Status.UNKNOWN,
        provider=event.provider,
        title=f"{name}: {incident.status.replace('_', ' ')}",
        text=_clip(incident.update) or f"{incident.title}: {incident.status}",
        event_id=event.id,
        fields=(("Incident", incident.title),),
        url=incident.url,
        url_label=incident.title,
        severity=event.provider_status or Status.OPERATIONAL,
    )


def _recovery(event: Event) -> Notice:
    name = event.provider_name or event.provider
    lasted = _duration(event)
    text = f"{name} is operational again" + (f" after {lasted}." if lasted else ".")
    incident = event.incident
    fields = []
    if incident is not None and incident.update:
        fields.append(("Final update", _clip(incident.update)))
    return Notice(
        kind="recovery",
        status=Status.OPERATIONAL,
        provider=event.provider,
        title=f"{name}: recovered",
        text=text,
        event_id=event.id,
        fields=tuple(fields),
        url=incident.url if incident else None,
        url_label=incident.title if incident else None,
    )


def _flapping(event: Event) -> Notice:
    name = event.provider_name or event.provider
    component = event.component_name or event.component or "service"
    return Notice(
        kind="flapping",
        status=event.to or Status.UNKNOWN,
        provider=event.provider,
        title=f"{name}: {component} is flapping",
        text=(event.detail or "changing state too often")
        + ". tocsin stays quiet about it until it settles.",
        event_id=event.id,
        severity=event.provider_status or Status.OPERATIONAL,
    )


def _escalation(event: Event) -> Notice:
    """ "Paged Platform on-call (PagerDuty) at 12:05 UTC": who was woken up, and when."""
    escalation = event.escalation
    assert escalation is not None
    name = event.provider_name or event.provider
    status = event.to or Status.UNKNOWN
    verbs = {
        "trigger": "Paged",
        "repeat": "Paged again:",
        "resolve": "Resolved the page to",
        "acknowledge": "Acknowledged the page to",
    }
    held = humanize((event.at - escalation.since).total_seconds())
    via = f" ({escalation.kind})" if escalation.label.lower() != escalation.kind else ""
    return Notice(
        kind="escalation",
        status=status,
        provider=event.provider,
        title=f"{name}: {verbs[escalation.action]} {escalation.label}{via}",
        text=(
            f"{verbs[escalation.action]} {escalation.label}{via} at {clock_text(event.at)}: "
            f"{name} has been at {escalation.min_status.label.lower()} or worse for {held}."
        ),
        event_id=event.id,
        fields=(("Page", escalation.dedup_key),),
        severity=Status.OPERATIONAL,  # the outage notice already drew the channel's attention
    )


def _control(event: Event) -> Notice:
    """What someone did from the chat, as a reply in the outage's thread: "Acknowledged by
    @maria at 14:02 UTC", "Silenced here for 1h...", "Still down after 30 min"."""
    control = event.control
    name = event.provider_name or event.provider
    by = f"@{one_line(control.by_name, 80)}" if control and control.by_name else "someone"
    at = clock_text(event.at)
    status = event.provider_status or Status.UNKNOWN
    if event.type == "acknowledged":
        title, text = f"{name}: acknowledged", f"Acknowledged by {by} at {at}."
    elif event.type == "silenced" and control is not None:
        ends = f"until {clock_text(control.until)}" if control.until else "until it is resolved"
        title = f"{name}: silenced here"
        text = f"Silenced here by {by} {ends}: updates stop, the recovery is still posted."
    elif event.type == "unsilenced":
        why = {"expired": "The silence ended", "resolved": "The outage ended"}
        reason = control.reason if control else ""
        title = f"{name}: no longer silenced here"
        text = why.get(reason, f"Unsilenced by {by}") + "."
    elif event.type == "reminder":
        lasted = _duration(event) or "a while"
        title = f"{name}: still {status.label.lower()} after {lasted}"
        text = f"{name} is still {status.label.lower()} after {lasted}; nobody has acknowledged it."
    else:  # subscriptions are told to whoever typed them, not in a thread
        title, text = f"{name}: {event.type}", f"{event.type[0].upper()}{event.type[1:]} by {by}."
    return Notice(
        kind="update",
        status=status,
        provider=event.provider,
        title=title,
        text=text,
        event_id=event.id,
        severity=Status.OPERATIONAL,  # people acting on it wake nobody
    )


def _admin(event: Event) -> Notice:
    return Notice(
        kind="admin",
        status=event.to or Status.UNKNOWN,
        provider=event.provider,
        title=_admin_title(event),
        text=event.detail or "",
        event_id=event.id,
    )


def _admin_title(event: Event) -> str:
    name = event.provider_name or event.provider
    if event.type == "watcher_health":
        return "tocsin: watcher health"
    source = (event.source or "").split(":")[-1] or "source"
    unreadable = event.to is Status.UNKNOWN and source not in ("probe", "source")
    if event.type == "config_alert" and unreadable:  # a page broken from its first read
        return f"tocsin: cannot read {name}'s status page ({source})"
    if event.type == "config_alert":  # a probe's key or request, or a page that moved
        what = "probe" if source in ("probe", "source") else "status page"
        return f"tocsin: check the {what} configuration of {name}"
    what = "probe" if source == "probe" else f"status page ({source})"
    if event.to is Status.UNKNOWN:
        return f"tocsin: cannot read {name}'s {what}"
    return f"tocsin: {name}'s {what} is readable again"


def _maintenance_ahead(event: Event) -> Notice:
    """ "OpenAI: maintenance starts in 58 min": planned work, its window in UTC ("Sat
    2026-12-05 02:00 to 04:00 UTC", the end's day too when it differs) and components."""
    incident = event.incident
    name = one_line(event.provider_name or event.provider, 80)
    start = incident.scheduled_for.astimezone(UTC) if incident and incident.scheduled_for else None
    until = incident.scheduled_until if incident else None
    window = start.strftime("%a %Y-%m-%d %H:%M") if start else "time not given"
    if start is not None and until is not None:
        until = until.astimezone(UTC)
        window += "\N{EN DASH}" + until.strftime(
            "%H:%M" if until.date() == start.date() else "%a %Y-%m-%d %H:%M"
        )
    window += " UTC" if start else ""
    components = one_line(event.component_name, 300) or "all components"
    title = one_line(incident.title, 200) if incident else "Planned maintenance"
    fields = [("Window", window), ("Components", components)]
    headline = f"{name}: maintenance scheduled"
    if event.type == "maintenance_soon" and start is not None:
        seconds = (start - event.at).total_seconds()
        minutes = max(1, round(seconds / 60))
        starts_in = f"{minutes} min" if minutes < 60 else humanize(seconds)
        headline = f"{name}: maintenance starts in {starts_in}"
        fields.append(("Starts in", starts_in))
    text = f"{title}. {window}, on {components}."
    if event.detail:
        text = f"{text} {one_line(event.detail, 200)}"
    url = safe_url(incident.url) if incident else None
    return Notice(
        kind="maintenance",
        status=Status.MAINTENANCE,
        provider=event.provider,
        title=headline,
        text=text,
        event_id=event.id,
        fields=tuple(fields),
        url=url,
        url_label=title if url else None,
    )


def _drill(event: Event) -> Notice:
    return Notice(
        kind="drill",
        status=Status.OPERATIONAL,
        provider=event.provider,
        title="tocsin drill: this is a test notice",
        text=event.detail
        or "If you can read this, tocsin can reach this channel. No action needed.",
        event_id=event.id,
    )


# --------------------------------------------------------------------------- helpers


def _detection(event: Event, components: Sequence[ComponentState]) -> str:
    confirmed = event.confirmed or any(c.confirmed for c in components)
    if confirmed:
        return "confirmed by the status page"
    if event.source and event.source.endswith(":probe"):
        return "suspected: our probes fail; the status page does not say so yet"
    if event.source and event.source.endswith(":traffic"):
        return "suspected from your app's traffic; the status page does not say so yet"
    return "reported by the status page"


def _suspicion(event: Event, components: Sequence[ComponentState]) -> str:
    status = event.to or Status.UNKNOWN
    if not status.is_outage:
        return ""
    confirmed = event.confirmed or any(c.confirmed for c in components)
    return " (confirmed)" if confirmed else " (suspected)"


def _headline(event: Event) -> str:
    component = event.component_name or event.component or "service"
    status = (event.to or Status.UNKNOWN).label.lower()
    if event.incident is not None:
        return f"{component}: {status}. {event.incident.title}."
    if event.detail:
        return f"{component}: {status} ({event.detail})."
    return f"{component}: {status}."


def _component_list(components: Sequence[ComponentState]) -> str:
    return ", ".join(f"{c.display_name} ({c.status.label.lower()})" for c in components)


def clock_text(at: datetime) -> str:
    """A moment as notices write it: ``2026-12-04 14:02 UTC``."""
    return at.strftime("%Y-%m-%d %H:%M UTC")


def _duration(event: Event) -> str | None:
    if event.episode_started is None:
        return None
    return humanize((event.at - event.episode_started).total_seconds())


def _clip(text: str, limit: int = 600) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def provider_components(
    states: Mapping[str, ComponentState], provider: str
) -> list[ComponentState]:
    return sorted(
        (s for s in states.values() if s.provider == provider), key=lambda s: s.display_name
    )
