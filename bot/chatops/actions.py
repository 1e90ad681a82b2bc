"""The verbs people use from the chat: acknowledge, silence, unsilence, subscribe.

Every platform calls :class:`ChatOps` with what its payload says (a button's action and
value, a command's words, who did it, in which channel) and renders the :class:`Reply`. The
state changes once: a record is written only where none is (``only_new``), a silence ends only
for the caller that deleted it, and each change is one event in the stream (its id derived
from what changed), which the dispatcher turns into the thread reply and the root's edit on
whichever replica reads it. Everything a payload carries is hostile: a button value that is not
one of ours, a provider nobody watches or a name of 10 kB is refused or cut, never stored.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import ParamSpec

from bot.chatops.records import (
    ACKS,
    BUTTON_ACTIONS,
    SILENCE_SECONDS,
    SILENCES,
    SUBSCRIPTIONS,
    Ack,
    Silence,
    SilenceMode,
    Subscription,
    Who,
    pair_key,
    read_button_value,
    read_records,
    who,
)
from bot.logs import get_logger
from bot.models import (
    SEVERITY_ORDER,
    ComponentState,
    Event,
    EventControl,
    EventIncident,
    EventType,
    Status,
    provider_status_of,
    utcnow,
)
from bot.notifier import Target
from bot.outside import one_line
from bot.store import Store, StoreUnavailable
from config.durations import parse_duration
from config.schema import TocsinConfig

log = get_logger("tocsin.chatops")

#: The longest a subscription from the chat can be given (a typo of "70d" is not forever).
SUBSCRIPTION_MAX = 400 * 24 * 3600.0


@dataclass(frozen=True, slots=True)
class Actor:
    """Who pressed or typed: the platform's ids and name (outside text)."""

    platform: str
    user_id: str
    name: str
    #: Discord role ids (a configured operator list may name a role).
    roles: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Reply:
    """What the person is told (only them: an ephemeral answer). Plain text: the platform
    escapes it. ``changed``: whether state changed; ``refused``: they may not, or it is not
    a thing tocsin knows."""

    text: str
    lines: tuple[str, ...] = ()
    changed: bool = False
    refused: bool = False

    @property
    def plain(self) -> str:
        return "\n".join([self.text, *self.lines])


@dataclass(frozen=True, slots=True)
class SubscriptionRow:
    """One provider a channel hears: from the config (cannot be removed from the chat) or
    subscribed from the chat."""

    provider: str
    min_status: Status
    source: str  # "config" | "chat"
    by: str = ""
    until: datetime | None = None


P = ParamSpec("P")
UNREACHABLE = "tocsin cannot reach its store right now: nothing changed, try again in a moment."


def answers_when_away(
    verb: Callable[P, Awaitable[Reply]],
) -> Callable[P, Awaitable[Reply]]:
    """A verb that meets an unreachable store (Redis restarting) answers so, changing
    nothing, instead of failing the click (the platform must answer within 3 s)."""

    @functools.wraps(verb)
    async def guarded(*args: P.args, **kwargs: P.kwargs) -> Reply:
        try:
            return await verb(*args, **kwargs)
        except StoreUnavailable as exc:
            log.warning("a chat action met an unreachable store", error=str(exc))
            return Reply(UNREACHABLE, refused=True)

    return guarded


@dataclass
class ChatOps:
    config: TocsinConfig
    store: Store
    clock: Callable[[], datetime] = utcnow
    #: The configured routes per target key (``slack:C0123`` → providers, min_status), to
    #: list what the config says a channel hears.
    configured: dict[str, list[tuple[str, Status]]] = field(default_factory=dict)

    # ----------------------------------------------------------------- buttons

    @answers_when_away
    async def press(
        self, platform: str, channel: str, action: str, value: str, actor: Actor
    ) -> Reply:
        """A button on a notice's root was clicked in ``channel``."""
        refused = self._refused(platform, actor)
        if refused is not None:
            return refused
        parsed = read_button_value(value)
        if action not in BUTTON_ACTIONS or parsed is None:
            return Reply("That button is not one of tocsin's.", refused=True)
        provider, episode = parsed
        if self.config.provider(provider) is None:
            return Reply("tocsin does not watch that provider.", refused=True)
        target = target_key(platform, channel)
        states = [s for s in (await self.store.states()).values() if s.provider == provider]
        if action == "unsilence":
            return await self.unsilence(target, provider, actor, states)
        if episode not in {s.episode for s in states if s.episode}:
            return Reply("That outage is over: nothing to do.")
        if action == "ack":
            return await self._acknowledge(provider, episode, actor, states)
        mode: SilenceMode = action.removeprefix("silence_")  # type: ignore[assignment]
        return await self._silence(target, provider, episode, mode, actor, states)

    async def _acknowledge(
        self, provider: str, episode: str, actor: Actor, states: list[ComponentState]
    ) -> Reply:
        now = self.clock()
        ack = Ack(episode=episode, provider=provider, by=_who(actor), at=now)
        if not await self.store.put_record(ACKS, episode, ack.model_dump_json(), only_new=True):
            known = read_records(Ack, ACKS, await self._one(ACKS, episode), now).get(episode)
            by = f" by @{known.by.name} at {_clock(known.at)}" if known else ""
            return Reply(f"Already acknowledged{by}.")
        control = EventControl(platform=actor.platform, by=ack.by.id, by_name=ack.by.name)
        await self._append("acknowledged", provider, episode, states, control, f"ack|{episode}")
        return Reply("Acknowledged: escalation repeats stop.", changed=True)

    async def _silence(
        self,
        target: str,
        provider: str,
        episode: str,
        mode: SilenceMode,
        actor: Actor,
        states: list[ComponentState],
    ) -> Reply:
        now = self.clock()
        seconds = SILENCE_SECONDS[mode]
        silence = Silence(
            target=target,
            provider=provider,
            mode=mode,
            until=now + timedelta(seconds=seconds) if seconds else None,
            episode=episode if seconds is None else None,
            by=_who(actor),
            at=now,
        )
        key = pair_key(target, provider)
        written = await self.store.put_record(
            SILENCES, key, silence.model_dump_json(), only_new=True
        )
        if not written:
            raw = await self._one(SILENCES, key)
            known = read_records(Silence, SILENCES, raw, now).get(key)
            if known is not None and not known.expired(now, {episode}):
                return Reply(f"Already silenced here {silence_words(known)}.")
            # an expired (or unreadable) one is still there: end it, then try once more
            await self.store.delete_record(SILENCES, key, only_if=raw.get(key))
            if not await self.store.put_record(
                SILENCES, key, silence.model_dump_json(), only_new=True
            ):
                return Reply("Someone silenced it a moment ago.")
        control = EventControl(
            platform=actor.platform,
            target=target,
            by=silence.by.id,
            by_name=silence.by.name,
            mode=mode,
            until=silence.until,
        )
        identity = f"silence|{key}|{now.isoformat()}"
        await self._append("silenced", provider, episode, states, control, identity)
        return Reply(
            f"Silenced {self._name(provider)} here {silence_words(silence)}.", changed=True
        )

    async def unsilence(
        self,
        target: str,
        provider: str,
        actor: Actor | None,
        states: Sequence[ComponentState] | None = None,
        *,
        reason: str = "unsilenced",
    ) -> Reply:
        """End a silence (a person's click, or its own end: ``reason`` expired/resolved);
        of two callers, one ends it and says so."""
        key = pair_key(target, provider)
        raw = await self._one(SILENCES, key)
        if key not in raw:
            return Reply("Not silenced here.")
        if not await self.store.delete_record(SILENCES, key, only_if=raw[key]):
            return Reply("Not silenced here.")
        if states is None:
            states = [s for s in (await self.store.states()).values() if s.provider == provider]
        episodes = sorted({s.episode for s in states if s.episode})
        control = EventControl(
            platform=actor.platform if actor else "",
            target=target,
            by=_who(actor).id if actor else "",
            by_name=_who(actor).name if actor else "",
            reason=reason,
        )
        identity = f"unsilence|{key}|{raw[key]}"
        await self._append(
            "unsilenced", provider, episodes[0] if episodes else None, states, control, identity
        )
        return Reply(f"{self._name(provider)} is no longer silenced here.", changed=True)

    # ----------------------------------------------------------------- subscriptions

    @answers_when_away
    async def subscribe(
        self,
        platform: str,
        channel: str,
        provider: str,
        min_status: str | None,
        actor: Actor,
        *,
        duration: str | None = None,
    ) -> Reply:
        refused = self._refused(platform, actor)
        if refused is not None:
            return refused
        provider = one_line(provider, 64).lower()
        if self.config.provider(provider) is None:
            return Reply(f"tocsin does not watch {provider!r}.", self._watched(), refused=True)
        threshold = _threshold(min_status)
        if threshold is None:
            words = ", ".join(s.value for s in SEVERITY_ORDER[1:])
            return Reply(f"min_status is one of {words}.", refused=True)
        until = None
        if duration:
            try:
                seconds = parse_duration(duration)
            except (ValueError, TypeError):
                return Reply("A duration is like 30m, 12h or 7d.", refused=True)
            if not 0 < seconds <= SUBSCRIPTION_MAX:
                return Reply("A subscription lasts from a minute to 400 days.", refused=True)
            until = self.clock() + timedelta(seconds=seconds)
        target = target_key(platform, channel)
        row = Subscription(
            target=target,
            platform=platform,
            channel=one_line(channel, 100),
            provider=provider,
            min_status=threshold,
            until=until,
            by=_who(actor),
            at=self.clock(),
        )
        await self.store.put_record(
            SUBSCRIPTIONS, pair_key(target, provider), row.model_dump_json()
        )
        control = EventControl(
            platform=platform,
            target=target,
            by=row.by.id,
            by_name=row.by.name,
            min_status=threshold,
            until=until,
        )
        await self._append("subscribed", provider, None, [], control, None)
        ends = f" until {_clock(until)}" if until else ""
        also = (
            " (the config already routes it here too)"
            if self._from_config(target, provider)
            else ""
        )
        hears = f"{self._name(provider)} at {threshold.value} or worse"
        return Reply(f"This channel now hears {hears}{ends}{also}.", changed=True)

    @answers_when_away
    async def unsubscribe(self, platform: str, channel: str, provider: str, actor: Actor) -> Reply:
        refused = self._refused(platform, actor)
        if refused is not None:
            return refused
        provider = one_line(provider, 64).lower()
        target = target_key(platform, channel)
        deleted = await self.store.delete_record(SUBSCRIPTIONS, pair_key(target, provider))
        configured = self._from_config(target, provider)
        if not deleted:
            if configured:
                return Reply(
                    f"{self._name(provider)} reaches this channel from the config; "
                    "it cannot be removed from the chat.",
                    refused=True,
                )
            return Reply(f"This channel was not subscribed to {provider!r} from the chat.")
        control = EventControl(
            platform=platform, target=target, by=_who(actor).id, by_name=_who(actor).name
        )
        await self._append("unsubscribed", provider, None, [], control, None)
        still = " (it still hears it from the config)" if configured else ""
        return Reply(f"Unsubscribed from {self._name(provider)}{still}.", changed=True)

    @answers_when_away
    async def subscriptions(self, platform: str, channel: str) -> Reply:
        """What a channel hears: from the config, and from the chat."""
        target = target_key(platform, channel)
        rows = await self.subscription_rows(target)
        if not rows:
            return Reply("This channel hears no provider. Try /tocsin subscribe <provider>.")
        lines = []
        for row in rows:
            origin = "from the config" if row.source == "config" else f"by @{row.by}"
            ends = f", until {_clock(row.until)}" if row.until else ""
            lines.append(
                f"{self._name(row.provider)}: {row.min_status.value} or worse ({origin}{ends})"
            )
        return Reply("This channel hears:", tuple(lines))

    async def subscription_rows(self, target: str) -> list[SubscriptionRow]:
        rows = [
            SubscriptionRow(provider, status, "config")
            for provider, status in self.configured.get(target, [])
        ]
        now = self.clock()
        raw = await self.store.records(SUBSCRIPTIONS)
        for sub in read_records(Subscription, SUBSCRIPTIONS, raw, now).values():
            if sub.target == target and sub.active(now):
                rows.append(
                    SubscriptionRow(sub.provider, sub.min_status, "chat", sub.by.name, sub.until)
                )
        return sorted(rows, key=lambda r: (r.provider, r.source))

    @answers_when_away
    async def silences(self, platform: str | None = None, channel: str | None = None) -> Reply:
        """The silences in force (in one channel, or everywhere)."""
        found = await active_silences(self.store, self.clock())
        if platform and channel:
            found = [s for s in found if s.target == target_key(platform, channel)]
        if not found:
            return Reply("Nothing is silenced" + (" here." if channel else "."))
        lines = tuple(f"{self._name(s.provider)} in {s.target} {silence_words(s)}" for s in found)
        return Reply("Silenced:", lines)

    def provider_choices(self, current: str, limit: int = 25) -> list[tuple[str, str]]:
        """Watched providers whose id or name starts with (or contains) ``current``."""
        typed = one_line(current, 64).lower()
        found = [
            (p.id, p.name or p.id)
            for p in self.config.providers
            if typed in p.id or typed in (p.name or "").lower()
        ]
        return found[:limit]

    @answers_when_away
    async def command(self, platform: str, channel: str, text: str, actor: Actor) -> Reply:
        """``/tocsin <words>`` as typed (Slack): subscribe, unsubscribe, subscriptions,
        silences, help."""
        words = one_line(text, 300).split()
        verb = words[0].lower() if words else "help"
        args = words[1:]
        if verb == "subscribe" and args:
            duration = args[2] if len(args) > 2 else None
            return await self.subscribe(
                platform,
                channel,
                args[0],
                args[1] if len(args) > 1 else None,
                actor,
                duration=duration,
            )
        if verb == "unsubscribe" and args:
            return await self.unsubscribe(platform, channel, args[0], actor)
        if verb == "subscriptions":
            return await self.subscriptions(platform, channel)
        if verb == "silences":
            return await self.silences(platform, channel)
        return Reply("Usage:", HELP_LINES)

    # ----------------------------------------------------------------- helpers

    def _refused(self, platform: str, actor: Actor) -> Reply | None:
        """Anyone in the channel may, unless the platform's ``operators`` lists who may."""
        section = getattr(self.config, platform, None)
        operators = set(getattr(section, "operators", None) or [])
        if not operators or actor.user_id in operators or operators & set(actor.roles):
            return None
        log.info("a chat action was refused", platform=platform, user=one_line(actor.user_id, 100))
        return Reply("Only the configured operators can do that here.", refused=True)

    def _name(self, provider: str) -> str:
        config = self.config.provider(provider)
        return config.name if config and config.name else provider

    def _watched(self) -> tuple[str, ...]:
        return ("Watched: " + ", ".join(p.id for p in self.config.providers[:50]),)

    def _from_config(self, target: str, provider: str) -> bool:
        return any(p in (provider, "all") for p, _ in self.configured.get(target, []))

    async def _one(self, table: str, key: str) -> dict[str, str]:
        """One record as a table of one (what :func:`read_records` reads), or empty."""
        value = await self.store.record(table, key)
        return {key: value} if value is not None else {}

    async def _append(
        self,
        kind: EventType,
        provider: str,
        episode: str | None,
        states: Sequence[ComponentState],
        control: EventControl,
        identity: str | None,
    ) -> None:
        await self.store.append(
            control_event(
                self.config, kind, provider, episode, states, control, self.clock(), identity
            )
        )


HELP_LINES = (
    "/tocsin subscribe <provider> [min_status] [duration]: this channel hears that provider",
    "/tocsin unsubscribe <provider>: stop (what the config routes here stays)",
    "/tocsin subscriptions: what this channel hears",
    "/tocsin silences: what is silenced here",
)


def configured_routes(targets: Sequence[Target]) -> dict[str, list[tuple[str, Status]]]:
    """What the config routes to each chat channel (``all`` for every provider), to list
    beside the chat's subscriptions."""
    found: dict[str, list[tuple[str, Status]]] = {}
    for target in targets:
        route = target.route
        if "channel" not in target.options or route.policy is not None:
            continue
        if route.providers is None:
            found[target.key] = [("all", route.min_status)]
        elif route.providers:
            found[target.key] = [(p, route.min_status) for p in sorted(route.providers)]
    return found


def control_event(
    config: TocsinConfig,
    kind: EventType,
    provider: str,
    episode: str | None,
    states: Sequence[ComponentState],
    control: EventControl,
    at: datetime,
    identity: str | None,
) -> Event:
    """The stream event for one change: the episode as the store has it now (so the root
    edited after it says where things stand), and an id derived from ``identity``."""
    mine = [s for s in states if episode is not None and s.episode == episode]
    with_incident = next((s for s in mine if s.incident is not None), None)
    started = min((s.episode_started for s in mine if s.episode_started), default=None)
    config_provider = config.provider(provider)
    event = Event(
        type=kind,
        provider=provider,
        provider_name=config_provider.name if config_provider else None,
        at=at,
        source="tocsin:chat",
        confirmed=any(s.confirmed for s in mine),
        incident=EventIncident.of(with_incident.incident, new_update=False)
        if with_incident and with_incident.incident
        else None,
        episode=episode,
        episode_started=started,
        provider_status=provider_status_of([s.status for s in mine], mine) if mine else None,
        control=control,
    )
    if identity is not None:
        event.id = hashlib.sha256(f"{kind}|{identity}".encode()).hexdigest()[:32]
    return event


async def active_silences(store: Store, now: datetime) -> list[Silence]:
    """The silences in force now, oldest first (``tocsin status``, ``/tocsin silences``)."""
    states = (await store.states()).values()
    open_episodes = {s.episode for s in states if s.episode}
    found = read_records(Silence, SILENCES, await store.records(SILENCES), now).values()
    return sorted((s for s in found if not s.expired(now, open_episodes)), key=lambda s: s.at)


def silence_words(silence: Silence) -> str:
    """ "for 1 h by @maria (until 15:02 UTC)" / "until resolved by @maria"."""
    if silence.until is None:
        return f"until resolved, by @{silence.by.name}"
    return f"for {silence.mode} by @{silence.by.name} (until {_clock(silence.until)})"


def target_key(platform: str, channel: str) -> str:
    """The target a channel is (``handlers.chat.channel_targets`` names them so)."""
    return f"{one_line(platform, 20)}:{one_line(channel, 100)}"


def _threshold(text: str | None) -> Status | None:
    if not text:
        return Status.DEGRADED
    try:
        status = Status(one_line(text, 40).lower())
    except ValueError:
        return None
    return status if status in SEVERITY_ORDER[1:] else None


def _who(actor: Actor) -> Who:
    return who(actor.platform, actor.user_id, actor.name)


def _clock(at: datetime) -> str:
    return (
        at.strftime("%H:%M UTC")
        if at.date() == utcnow().date()
        else at.strftime("%Y-%m-%d %H:%M UTC")
    )
