"""What the dispatcher asks of the chat's state, from one snapshot per batch of events.

Read once before a batch is handed to the targets (three table reads, whatever the number of
targets), so the rest are plain lookups: is this event muted on this target (a silence), what
an episode's root says and which buttons it carries there (acknowledged by whom, silenced
here), and which channels hear a provider because someone subscribed them from the chat.
Expiry is checked against the clock at each lookup, so a silence ends on time, without a
restart or a new read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime

from bot.chatops.records import (
    ACKS,
    SILENCES,
    SUBSCRIPTIONS,
    Ack,
    Button,
    Silence,
    Subscription,
    button_value,
    pair_key,
    read_records,
)
from bot.compose import Notice, clock_text
from bot.logs import get_logger
from bot.models import Event, Status, utcnow
from bot.notifier import Target
from bot.routing import Route
from bot.store import Store, StoreUnavailable

log = get_logger("tocsin.chatops")

#: What a silence keeps from its channel: the thread's news. A recovery (the episode closing),
#: what people did (acks, silences) and admin notices always pass.
MUTED_TYPES = frozenset({"state_changed", "incident_update", "flapping", "escalation", "reminder"})

#: Makes the target of a channel subscribed from the chat that the config does not list
#: (``None``: that platform cannot, e.g. it is not configured).
TargetMaker = Callable[[Subscription], Target | None]


class Controls:
    def __init__(
        self,
        store: Store,
        *,
        make_target: TargetMaker | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.make_target = make_target
        self.clock = clock
        self.acks: dict[str, Ack] = {}
        self.silences: dict[str, Silence] = {}
        self.subscriptions: list[Subscription] = []
        self._made: dict[str, Target] = {}

    async def refresh(self) -> None:
        """Read the tables again; while the store is away the last snapshot stands."""
        now = self.clock()
        try:
            acks = await self.store.records(ACKS)
            silences = await self.store.records(SILENCES)
            subscriptions = await self.store.records(SUBSCRIPTIONS)
        except StoreUnavailable:
            return
        self.acks = read_records(Ack, ACKS, acks, now)
        self.silences = read_records(Silence, SILENCES, silences, now)
        self.subscriptions = list(
            read_records(Subscription, SUBSCRIPTIONS, subscriptions, now).values()
        )

    # ----------------------------------------------------------------- muting

    def silence(self, target: str, provider: str, episode: str | None = None) -> Silence | None:
        found = self.silences.get(pair_key(target, provider))
        if found is None or not found.active(self.clock(), episode):
            return None
        return found

    def muted(self, event: Event, target: Target) -> bool:
        """A :data:`bot.pipeline.Mute`: the channel silenced this provider, and this is news
        of the thread (not the recovery)."""
        if event.type not in MUTED_TYPES or event.audience == "admins" or event.episode_closed:
            return False
        if event.type == "escalation" and target.route.policy is not None:
            return False  # a silence in a chat channel never holds back a page
        return self.silence(target.key, event.provider, event.episode) is not None

    # ----------------------------------------------------------------- roots

    def decorate(self, notice: Notice, event: Event, target: Target) -> Notice:
        """An episode's root as this target shows it: who acknowledged, whether it is silenced
        here, and the buttons that make sense now (none once resolved, none where the target
        cannot take them)."""
        episode = event.episode
        if episode is None or event.type == "drill" or notice.kind in ("admin", "drill"):
            return notice
        fields = list(notice.fields)
        ack = self.acks.get(episode)
        if ack is not None:
            fields.append(("Acknowledged", f"by @{ack.by.name} at {clock_text(ack.at)}"))
        silence = self.silence(target.key, event.provider, episode)
        if silence is not None and not event.episode_closed:
            fields.append(("Silenced here", _silenced(silence)))
        buttons: tuple[Button, ...] = ()
        if target.options.get("buttons") and not event.episode_closed:
            buttons = root_buttons(event.provider, episode, ack is not None, silence is not None)
        return replace(notice, fields=tuple(fields), buttons=buttons)

    # ----------------------------------------------------------------- subscriptions

    def targets(self, configured: Sequence[Target]) -> list[Target]:
        """The configured targets, each also hearing what its channel subscribed to from the
        chat, and the channels only the chat subscribed."""
        now = self.clock()
        extra: dict[str, dict[str, Status]] = {}
        by_key: dict[str, Subscription] = {}
        for sub in self.subscriptions:
            if sub.active(now):
                extra.setdefault(sub.target, {})[sub.provider] = sub.min_status
                by_key.setdefault(sub.target, sub)
        found = [
            replace(t, route=with_chat(t.route, extra[t.key])) if t.key in extra else t
            for t in configured
        ]
        known = {t.key for t in configured}
        for key, providers in extra.items():
            if key in known:
                continue
            made = self._target(by_key[key])
            if made is not None:
                found.append(replace(made, route=with_chat(made.route, providers)))
        return found

    def _target(self, sub: Subscription) -> Target | None:
        made = self._made.get(sub.target)
        if made is None and self.make_target is not None:
            made = self.make_target(sub)
            if made is not None:
                self._made[sub.target] = made
            else:
                log.warning("a chat subscription's platform cannot post here", target=sub.target)
        return made


def with_chat(route: Route, providers: dict[str, Status]) -> Route:
    return replace(route, chat=dict(providers))


def root_buttons(
    provider: str, episode: str, acknowledged: bool, silenced: bool
) -> tuple[Button, ...]:
    value = button_value(provider, episode)
    buttons = [] if acknowledged else [Button("ack", "Acknowledge", value, "primary")]
    if silenced:
        buttons.append(Button("unsilence", "Unsilence", value))
    else:
        buttons += [
            Button("silence_1h", "Silence 1 h", value),
            Button("silence_4h", "Silence 4 h", value),
            Button("silence_resolved", "Silence until resolved", value, "danger"),
        ]
    return tuple(buttons)


def _silenced(silence: Silence) -> str:
    if silence.until is None:
        return f"until resolved, by @{silence.by.name}"
    return f"until {clock_text(silence.until)}, by @{silence.by.name}"
