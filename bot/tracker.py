"""The state machine: observations in, state updates and events out.

Pure and synchronous (time comes from the observations), so it is tested exhaustively without
I/O. The rules (DESIGN.md, "Tracker rules"):

* A status page's own report applies at once; a probe's conclusion needs ``failure_threshold``
  consecutive failures, or ``success_threshold`` consecutive successes to recover.
* The effective status of a component is the worse of the page's and the probe's opinions
  (a page's maintenance wins: failures during planned work are expected). It is ``confirmed``
  when the page itself reports the problem, ``suspected`` when only our probes see it.
* ``unknown`` (a broken source) never erases what we knew: it is an admin matter, and leaving
  it back to the status (and confirmation) users last heard is not news either. A page that
  reported a problem and cannot be read now leaves the component ``unknown``: our probes
  alone do not withdraw the page's report.
* More than ``flap_threshold`` changes within ``flap_window`` send one ``flapping`` event; then
  the component is quiet until it has not changed for ``flap_quiet``.
* Self-check: probe failures with network errors only become an outage once another
  provider's probe got an answer during the failure streak; when most probed providers fail
  with network errors together, our own network is the suspect: one ``watcher_health`` event.
* The apps' own reported calls (``traffic`` observations, :mod:`bot.sources.traffic`) are
  treated as a probe of the model's component (source ``{provider}:traffic``): debounced by
  the same thresholds into the same probe opinion, so they can make a state ``suspected``,
  never ``confirmed`` (only pages confirm); they play no part in the self-check.
* Inference probes make each model a component: a provider whose models partly answer is at
  most ``partial_outage`` (one model down is not the whole provider down), and a model's
  change says how its siblings are doing.
* Upstreams (clouds and CDNs the providers stand on): their pages' open incidents are
  remembered, never announced. A provider event while one of its upstreams has an open incident
  carries it as ``cause`` (the dispatcher groups notices by it), and network failures of a
  provider so explained neither wait for the self-check's proof nor count as our network's.
* Outages are grouped in provider-wide *episodes*: the first component to leave operational
  opens one, the last to come back closes it. Chat threads hang off episodes. A new incident
  update is told once per provider within an episode, and an incident resolved shortly after
  its episode closed still gets its last reply.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from bot.models import (
    ComponentState,
    Event,
    EventCause,
    EventIncident,
    EventType,
    Incident,
    Observation,
    ProbeError,
    SourceKind,
    StateUpdate,
    Status,
    provider_status_of,
    state_key,
    worst,
)

_SEEN_LIMIT = 500


@dataclass(frozen=True, slots=True)
class Thresholds:
    failure: int = 2
    success: int = 2


@dataclass(frozen=True, slots=True)
class TrackerSettings:
    thresholds: Thresholds = Thresholds()
    flap_threshold: int = 4
    flap_window: float = 600.0
    flap_quiet: float = 300.0
    self_check_min_providers: int = 3
    self_check_ratio: float = 0.5
    self_check_window: float = 300.0
    #: The providers with a probe. Counted from the start: before the first round is over,
    #: a failure is not an outage just because the other probes have not run yet.
    probed: frozenset[str] = frozenset()
    #: How long after an episode closes its incident's resolution is still told in its thread.
    resolution_grace: float = 3600.0
    #: Provider id → the upstream ids it stands on, and upstream id → its name.
    upstreams: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    upstream_names: Mapping[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class _Track:
    """Per (provider, component) working memory beside the persisted state."""

    state: ComponentState
    candidate: Status | None = None
    candidate_error: ProbeError | None = None
    streak: int = 0
    streak_started: datetime | None = None
    last_failure_at: datetime | None = None
    held: bool = False
    changes: deque[datetime] = field(default_factory=deque)
    flap_from: Status | None = None
    config_alerted: bool = False
    probe_source: str | None = None
    #: Not observed yet in this process (and not restored): a broken first read is news.
    fresh: bool = True
    #: Whether this step's change of source readability is news for the admins.
    admin_news: bool = True
    #: Creation order: what is released together is told in the order tracks were made.
    order: int = 0


@dataclass(slots=True)
class _ProviderTrack:
    episode: str | None = None
    episode_started: datetime | None = None
    seen: dict[tuple[str, str], None] = field(default_factory=dict)
    #: The last episode that closed: (id, started, closed at), for late resolutions.
    closed: tuple[str, datetime | None, datetime] | None = None
    last_probe_at: datetime | None = None
    last_probe_network_error: bool = False
    last_answer_at: datetime | None = None


class Tracker:
    """Turns observations into :class:`StateUpdate` s. One instance per watcher."""

    def __init__(
        self,
        settings: TrackerSettings | None = None,
        *,
        names: Mapping[str, str] | None = None,
        thresholds: Mapping[str, Thresholds] | None = None,
    ) -> None:
        self.settings = settings or TrackerSettings()
        self._names = dict(names or {})
        self._thresholds = dict(thresholds or {})
        self._tracks: dict[str, _Track] = {}
        #: The same tracks by provider and by probe source, and those held by the
        #: self-check: an observation touches its own provider's tracks, never all of them.
        self._by_provider: dict[str, dict[str, _Track]] = {}
        self._by_source: dict[str, dict[str, _Track]] = {}
        self._held: dict[str, _Track] = {}
        self._made = 0
        self._providers: dict[str, _ProviderTrack] = {}
        #: Probed providers by when they were last probed (oldest first) and those whose last
        #: probe failed with a network error: the self-check without a scan of all providers.
        #: ``_in_order`` turns false (for good: the scan is used then) if observation times
        #: ever go backwards.
        self._probe_order: OrderedDict[str, None] = OrderedDict()
        self._network_failing: set[str] = set()
        self._latest: datetime | None = None
        self._in_order = True
        self._network_suspect = False
        #: Page sources that cannot be read now, with why.
        self._broken: dict[str, str] = {}
        #: Page sources that moved to another host, with where the admins were told it went.
        self._moved: dict[str, str] = {}
        #: Upstream id → its open incidents, by the component that reports them.
        self._upstream_open: dict[str, dict[str, Incident]] = {}

    # ----------------------------------------------------------------- public

    def restore(self, states: Iterable[ComponentState]) -> None:
        """Seed from the store after a restart, so known outages are not announced again."""
        for state in states:
            track = self._add(_Track(state=state.model_copy(deep=True), fresh=False))
            if state.flapping:
                track.changes.append(state.since)
                track.flap_from = state.last_known
            prov = self._provider(state.provider)
            if state.episode and not prov.episode:
                prov.episode, prov.episode_started = state.episode, state.episode_started
            if state.incident:
                prov.seen[state.incident.revision] = None
            if state.key == WATCHER_KEY:  # the admins were told; they hear when it is over
                self._network_suspect = state.status is Status.MAJOR_OUTAGE

    def forget(self, providers: Iterable[str]) -> None:
        """(issue 17) Drop what this tracker knows of ``providers``: a shard moved to another
        replica (and a shard taken over is restored from the store afresh)."""
        gone = set(providers)
        for provider in gone:
            for key, track in self._by_provider.pop(provider, {}).items():
                del self._tracks[key]
                self._held.pop(key, None)
                if track.probe_source is not None:
                    self._by_source.get(track.probe_source, {}).pop(key, None)
            self._providers.pop(provider, None)
            self._probe_order.pop(provider, None)
            self._network_failing.discard(provider)

    def states(self) -> dict[str, ComponentState]:
        return {key: track.state for key, track in self._tracks.items()}

    @property
    def network_suspect(self) -> bool:
        return self._network_suspect

    def needs_recheck(self, source: str) -> bool:
        """Whether a probe source has an unconfirmed change (run it again soon)."""
        return any(
            t.candidate is not None or t.held for t in self._by_source.get(source, {}).values()
        )

    def observe(self, observations: Sequence[Observation]) -> list[StateUpdate]:
        out: list[StateUpdate] = []
        for obs in observations:
            out.extend(self._observe(obs))
        if observations:
            now = observations[-1].at
            out.extend(self._release_held(now))
            out.extend(self._self_check(now))
        return out

    # --------------------------------------------------------------- internals

    def _provider(self, provider: str) -> _ProviderTrack:
        return self._providers.setdefault(provider, _ProviderTrack())

    def _add(self, track: _Track) -> _Track:
        """Keep ``track`` (replacing one of the same key), indexed by provider."""
        key = track.state.key
        old = self._tracks.get(key)
        if old is not None and old.probe_source is not None:
            self._by_source.get(old.probe_source, {}).pop(key, None)
        self._held.pop(key, None)
        self._made += 1
        track.order = self._made
        self._tracks[key] = track
        self._by_provider.setdefault(track.state.provider, {})[key] = track
        return track

    def _of(self, provider: str) -> Iterable[_Track]:
        """The provider's tracks."""
        return self._by_provider.get(provider, {}).values()

    def _probed_by(self, track: _Track, source: str) -> None:
        """``source`` is the probe (or traffic) feeding ``track``."""
        if track.probe_source == source:
            return
        key = track.state.key
        if track.probe_source is not None:
            self._by_source.get(track.probe_source, {}).pop(key, None)
        track.probe_source = source
        self._by_source.setdefault(source, {})[key] = track

    def _track(self, obs: Observation) -> _Track:
        track = self._tracks.get(obs.key)
        if track is None:
            state = ComponentState(provider=obs.provider, component=obs.component, since=obs.at)
            track = self._add(_Track(state=state))
            prov = self._provider(obs.provider)
            state.episode, state.episode_started = prov.episode, prov.episode_started
        if obs.component_name:
            track.state.name = obs.component_name
        return track

    def _observe(self, obs: Observation) -> list[StateUpdate]:
        if obs.provider in self.settings.upstream_names:
            self._upstream(obs)
            return []
        track = self._track(obs)
        state = track.state
        state.checked_at = obs.at
        out: list[StateUpdate] = []
        if obs.kind.debounced:
            # probes, and the apps' own traffic (bot/sources/traffic.py) alike: debounced
            # into ``probe_status``, never confirming; traffic is not our network's evidence
            # (no self-check) and carries no latency percentiles of the probe's
            self._probed_by(track, obs.source)
            if obs.error is not None and obs.error.is_config:
                return self._config_alert(track, obs)
            track.config_alerted = False
            traffic = obs.kind is SourceKind.TRAFFIC
            if not traffic:
                self._note_probe(obs)
            if obs.latency_ms is not None:
                state.latency_ms = obs.latency_ms
            if obs.model is not None:
                state.model = obs.model
                if not traffic:
                    state.latency_p50_ms = obs.latency_p50_ms
                    state.latency_p95_ms = obs.latency_p95_ms
            self._debounce(track, obs)
        else:
            self._read_page(state, obs)
        state.detail = obs.detail
        broken_first_read = obs.status is Status.UNKNOWN and bool(obs.detail)
        track.admin_news = self._source_news(obs)
        out.extend(self._settle(track, obs.at, obs.source, broken_first_read))
        out.extend(self._unflap(track, obs.at, obs.source))
        out.extend(self._incident(track, obs, already=_carries_incident(out)))
        out.extend(self._page_moved(track, obs))
        if not out:
            out.append(StateUpdate(state=state.model_copy(deep=True)))
        return out

    def _source_news(self, obs: Observation) -> bool:
        """Whether a page observation changes its source's readability: admins hear of a
        broken (or mended) source once, not once per component it feeds."""
        if obs.kind is not SourceKind.PAGE:
            return True
        if obs.status is Status.UNKNOWN:
            news = obs.source not in self._broken
            self._broken[obs.source] = obs.detail or ""
            return news
        return self._broken.pop(obs.source, None) is not None

    @staticmethod
    def _read_page(state: ComponentState, obs: Observation) -> None:
        """A page that cannot be read says nothing new: its last report (and incident) stand."""
        if obs.status is Status.UNKNOWN:
            state.page_readable = False
            return
        state.page_readable = True
        state.page_status = obs.status
        state.incident = obs.incident

    # upstreams -----------------------------------------------------------------

    def _upstream(self, obs: Observation) -> None:
        """Remember an upstream page's open incident (maintenance is not a cause)."""
        incident = obs.incident
        open_ = self._upstream_open.setdefault(obs.provider, {})
        if obs.status is Status.UNKNOWN:
            return  # an unreadable page withdraws nothing
        if incident is None or incident.resolved or incident.maintenance:
            open_.pop(obs.component, None)
        else:
            open_[obs.component] = incident

    def cause(self, provider: str) -> EventCause | None:
        """The first upstream (in the provider's order) with an open incident, if any."""
        for upstream in self.settings.upstreams.get(provider, ()):
            incidents = self._upstream_open.get(upstream)
            if incidents:
                incident = min(incidents.values(), key=lambda i: i.id)
                return EventCause(
                    upstream=upstream,
                    name=self.settings.upstream_names.get(upstream, upstream),
                    incident=incident.title,
                    url=incident.url,
                    group=f"{upstream}:{incident.id}",
                )
        return None

    # probes ------------------------------------------------------------------

    def _thresholds_for(self, provider: str) -> Thresholds:
        return self._thresholds.get(provider, self.settings.thresholds)

    def _debounce(self, track: _Track, obs: Observation) -> None:
        """Move the probe's opinion only after enough consecutive agreeing results."""
        state = track.state
        reading = obs.status
        if reading is Status.UNKNOWN:
            return
        if state.probe_status is None and reading is Status.OPERATIONAL:
            state.probe_status = reading  # a first healthy answer has nothing to debounce
            self._reset_candidate(track)
            return
        if reading == state.probe_status:
            self._reset_candidate(track)
            return
        if reading != track.candidate:
            track.candidate, track.streak, track.streak_started = reading, 0, obs.at
        track.streak += 1
        track.candidate_error = obs.error
        if reading.is_outage:
            track.last_failure_at = obs.at
        limits = self._thresholds_for(obs.provider)
        needed = limits.success if reading is Status.OPERATIONAL else limits.failure
        if track.streak < needed:
            return
        if obs.error is not None and obs.error.is_network and not self._network_proven(track):
            track.held = True
            self._held[track.state.key] = track
            return
        state.probe_status = reading
        self._reset_candidate(track)

    @staticmethod
    def _reset_candidate(track: _Track) -> None:
        track.candidate, track.candidate_error, track.streak = None, None, 0
        track.streak_started = track.last_failure_at = None
        track.held = False

    def _note_probe(self, obs: Observation) -> None:
        prov = self._provider(obs.provider)
        prov.last_probe_at = obs.at
        prov.last_probe_network_error = bool(obs.error and obs.error.is_network)
        if not prov.last_probe_network_error:
            prov.last_answer_at = obs.at
        if self._latest is not None and obs.at < self._latest:
            self._in_order = False
        self._latest = obs.at if self._latest is None else max(self._latest, obs.at)
        self._probe_order[obs.provider] = None
        self._probe_order.move_to_end(obs.provider)
        if prov.last_probe_network_error:
            self._network_failing.add(obs.provider)
        else:
            self._network_failing.discard(obs.provider)

    def _probed(self) -> dict[str, _ProviderTrack]:
        return {p: t for p, t in self._providers.items() if t.last_probe_at is not None}

    def _network_proven(self, track: _Track) -> bool:
        """Did another provider's probe get an answer while this one kept failing? (An open
        incident upstream of the provider explains the failure as well.)"""
        if self.cause(track.state.provider) is not None:
            return True
        if self._network_suspect:
            return False
        probed = self._probed()
        if len(probed.keys() | self.settings.probed) < self.settings.self_check_min_providers:
            return True
        start, end = track.streak_started, track.last_failure_at
        if start is None or end is None:
            return True
        return any(
            p != track.state.provider
            and t.last_answer_at is not None
            and start <= t.last_answer_at <= end
            for p, t in probed.items()
        )

    def _release_held(self, now: datetime) -> list[StateUpdate]:
        out: list[StateUpdate] = []
        if not self._held:
            return out
        for key in [k for k, t in self._held.items() if not t.held]:
            del self._held[key]
        for track in sorted(self._held.values(), key=lambda t: t.order):
            if track.held and self._network_proven(track) and track.candidate is not None:
                track.state.probe_status = track.candidate
                self._reset_candidate(track)
                out.extend(self._settle(track, now, track.probe_source, False))
        return out

    def _self_check(self, now: datetime) -> list[StateUpdate]:
        """Most probes failing with network errors at once: suspect our own network."""
        window = timedelta(seconds=self.settings.self_check_window)
        recent = self._recent(now, window)
        if len(recent) < self.settings.self_check_min_providers:
            if len(self.settings.probed) >= self.settings.self_check_min_providers:
                return []  # the first round is not over: no verdict either way yet
            suspect = False
        else:
            failing = sum(
                self.cause(p) is None
                for p in self._network_failing
                if p in recent and recent[p].last_probe_network_error
            )
            suspect = failing / len(recent) > self.settings.self_check_ratio
        if suspect == self._network_suspect:
            return []
        self._network_suspect = suspect
        erring = sum(
            recent[p].last_probe_network_error for p in self._network_failing if p in recent
        )
        detail = (
            f"probes to {erring} of "
            f"{len(recent)} "
            "providers fail with network errors: this watcher's own network is the suspect; "
            "provider notices are held until it recovers"
            if suspect
            else "probes get answers again: the watcher's network has recovered"
        )
        event = Event(
            type="watcher_health",
            provider="tocsin",
            at=now,
            to=Status.MAJOR_OUTAGE if suspect else Status.OPERATIONAL,
            detail=detail,
            audience="admins",
            source="self-check",
        )
        return [StateUpdate(state=_watcher_state(suspect, now, detail), event=event)]

    def _recent(self, now: datetime, window: timedelta) -> Mapping[str, _ProviderTrack]:
        """The providers probed within ``window`` of ``now``: those probed before are let go
        from the front of :attr:`_probe_order` (the whole scan if times went backwards)."""
        if not self._in_order or (self._latest is not None and now < self._latest):
            return {
                p: t
                for p, t in self._probed().items()
                if t.last_probe_at and now - t.last_probe_at <= window
            }
        order = self._probe_order
        while order:
            first = next(iter(order))
            seen = self._providers[first].last_probe_at
            if seen is not None and now - seen <= window:
                break
            del order[first]
        return _Recent(order, self._providers)

    def _page_moved(self, track: _Track, obs: Observation) -> list[StateUpdate]:
        """A status page that now redirects to another host: one admin notice per source and
        new location (the config should name the page where it lives now)."""
        if obs.moved is None or self._moved.get(obs.source) == obs.moved[1]:
            return []
        old, new = obs.moved
        self._moved[obs.source] = new
        event = self._event("config_alert", track, obs.at, obs.source, audience="admins")
        event.to = None  # about where the page lives, not about a status
        name = self._names.get(obs.provider, obs.provider)
        event.detail = (
            f"{name}'s status page moved: {old} now redirects to {new}; update status_page.url"
        )
        return [StateUpdate(state=track.state.model_copy(deep=True), event=event)]

    def _config_alert(self, track: _Track, obs: Observation) -> list[StateUpdate]:
        state = track.state
        state.detail = obs.detail
        if track.config_alerted:
            return [StateUpdate(state=state.model_copy(deep=True))]
        track.config_alerted = True
        event = self._event("config_alert", track, obs.at, obs.source, audience="admins")
        event.detail = obs.detail
        return [StateUpdate(state=state.model_copy(deep=True), event=event)]

    # state ---------------------------------------------------------------------

    @staticmethod
    def _effective(state: ComponentState) -> tuple[Status, bool]:
        page, probe = state.page_status, state.probe_status
        if not state.page_readable:
            if page is not None and page.rank >= Status.MAINTENANCE.rank:
                # the page reported a problem and cannot be read now: our probes alone will
                # not withdraw its report, so we do not know
                return Status.UNKNOWN, False
            page = None
        if page is Status.MAINTENANCE:
            return Status.MAINTENANCE, True
        known = [s for s in (page, probe) if s is not None and s is not Status.UNKNOWN]
        if not known:
            return Status.UNKNOWN, False
        status = worst(known)
        confirmed = status.is_outage and page is not None and page.is_outage
        return status, confirmed

    def _settle(
        self, track: _Track, at: datetime, source: str | None, broken_first_read: bool
    ) -> list[StateUpdate]:
        state = track.state
        status, confirmed = self._effective(state)
        fresh, track.fresh = track.fresh, False
        if fresh and broken_first_read and status is Status.UNKNOWN:
            return [self._unknown_change(track, at, source, Status.UNKNOWN)]
        if status == state.status and confirmed == state.confirmed:
            return []
        old = state.status
        if status is Status.UNKNOWN:
            state.status, state.since, state.confirmed = status, at, False
            return [self._unknown_change(track, at, source, old)]
        told = (state.last_known, state.last_confirmed)  # what users last heard
        state.confirmed = confirmed
        if old is Status.UNKNOWN and told == (status, confirmed):
            state.status, state.since = status, at
            return [self._unknown_change(track, at, source, old)]
        came_back = old is Status.UNKNOWN
        if came_back and told[0] is not Status.UNKNOWN:
            old = told[0]  # users never heard of unknown: tell them the change from what they know
        if status == old:
            if came_back:
                state.status, state.since = status, at
            return [self._confirmation(track, at, source, moved=came_back)]
        never_known = state.last_known is Status.UNKNOWN
        state.status, state.since = status, at
        state.last_known, state.last_confirmed = status, confirmed
        if never_known and status is Status.OPERATIONAL:
            return [StateUpdate(state=state.model_copy(deep=True), status_changed=True)]
        return self._change(track, at, source, old)

    def _confirmation(
        self, track: _Track, at: datetime, source: str | None, *, moved: bool
    ) -> StateUpdate:
        """The page starts (or stops) reporting what our probes see: same status, news for
        users (unless the component is flapping). ``moved``: it was unknown until now."""
        state = track.state
        state.last_known, state.last_confirmed = state.status, state.confirmed
        if state.flapping:
            return StateUpdate(state=state.model_copy(deep=True), status_changed=moved)
        detail = (
            "confirmed by the status page"
            if state.confirmed
            else "the status page no longer reports it; our probes still do"
        )
        update = self._emit("state_changed", track, at, source, state.status, detail=detail)
        return replace(update, status_changed=moved)

    def _unknown_change(
        self, track: _Track, at: datetime, source: str | None, old: Status
    ) -> StateUpdate:
        """Into or out of ``unknown``: the admins hear of it (once per source), the channels
        do not. A source that cannot be read from its first read changes no status (unknown
        it was, unknown it stays): that is a ``config_alert`` saying what is wrong with the
        source, not a transition."""
        state = track.state
        if not track.admin_news:
            return StateUpdate(
                state=state.model_copy(deep=True), status_changed=old != state.status
            )
        if old is state.status:
            event = self._event("config_alert", track, at, source, audience="admins")
            event.detail = state.detail
            return StateUpdate(state=state.model_copy(deep=True), event=event)
        detail = (
            state.detail
            if state.status is Status.UNKNOWN
            else (f"source readable again; still {state.status.value}")
        )
        return self._emit("state_changed", track, at, source, old, detail=detail, audience="admins")

    def _change(
        self, track: _Track, at: datetime, source: str | None, old: Status
    ) -> list[StateUpdate]:
        """A user-visible status change, through flap damping."""
        state = track.state
        track.changes.append(at)
        horizon = at - timedelta(seconds=self.settings.flap_window)
        while track.changes and track.changes[0] < horizon:
            track.changes.popleft()
        if state.flapping:
            self._episode(state.provider, at)
            return [StateUpdate(state=state.model_copy(deep=True), status_changed=True)]
        if len(track.changes) > self.settings.flap_threshold:
            state.flapping, track.flap_from = True, old
            detail = (
                f"changed state {len(track.changes)} times in "
                f"{self.settings.flap_window:g}s; quiet until stable for "
                f"{self.settings.flap_quiet:g}s"
            )
            return [self._emit("flapping", track, at, source, old, detail=detail)]
        return [
            self._emit("state_changed", track, at, source, old, detail=self._model_detail(track))
        ]

    def _model_detail(self, track: _Track) -> str | None:
        """A model's change in words: why (the probe's counts), and how its siblings are."""
        state = track.state
        if state.model is None:
            return None
        siblings = [t.state for t in self._of(state.provider) if t.state.model and t is not track]
        said = [state.detail] if state.detail and state.status is not Status.OPERATIONAL else []
        said += [f"{s.display_name} {s.status.label.lower()}" for s in siblings]
        return "; ".join(said) or None

    def _unflap(self, track: _Track, at: datetime, source: str | None) -> list[StateUpdate]:
        state = track.state
        if not state.flapping or not track.changes or state.status is Status.UNKNOWN:
            return []  # while unknown, there is nothing stable to tell
        if (at - track.changes[-1]).total_seconds() < self.settings.flap_quiet:
            return []
        state.flapping = False
        old = track.flap_from or state.status
        track.flap_from = None
        track.changes.clear()
        update = self._emit(
            "state_changed", track, at, source, old, detail="stable again after flapping"
        )
        return [replace(update, status_changed=False)]  # it moved while flapping, not now

    # incidents -----------------------------------------------------------------

    def _incident(self, track: _Track, obs: Observation, *, already: bool) -> list[StateUpdate]:
        """A new incident update is news once per provider, for users, within an episode (or
        as the resolution of one that just closed: pages often resolve after recovery)."""
        incident = obs.incident
        if incident is None:
            return []
        prov = self._provider(obs.provider)
        if incident.revision in prov.seen or track.state.status is Status.UNKNOWN:
            return []  # (while unknown: told with the state change that ends it)
        was_open = _was_open(prov, incident)
        out: list[StateUpdate] = []
        if not already and not track.state.flapping:
            if prov.episode is not None and (was_open or not incident.resolved):
                out.append(
                    self._emit("incident_update", track, obs.at, obs.source, track.state.status)
                )
            elif incident.resolved and was_open and self._just_closed(prov, obs.at):
                out.append(self._late_resolution(prov, track, obs))
        prov.seen[incident.revision] = None
        while len(prov.seen) > _SEEN_LIMIT:
            prov.seen.pop(next(iter(prov.seen)))
        return out

    def _just_closed(self, prov: _ProviderTrack, at: datetime) -> bool:
        closed = prov.closed
        return (
            closed is not None
            and (at - closed[2]).total_seconds() <= self.settings.resolution_grace
        )

    def _late_resolution(
        self, prov: _ProviderTrack, track: _Track, obs: Observation
    ) -> StateUpdate:
        """The resolution of an episode's incident after the episode closed: a last reply in
        its thread."""
        update = self._emit("incident_update", track, obs.at, obs.source, track.state.status)
        assert update.event is not None
        assert prov.closed is not None
        update.event.episode, update.event.episode_started = prov.closed[0], prov.closed[1]
        return update

    # events ----------------------------------------------------------------------

    def _emit(
        self,
        kind: EventType,
        track: _Track,
        at: datetime,
        source: str | None,
        old: Status,
        *,
        detail: str | None = None,
        audience: str = "all",
    ) -> StateUpdate:
        state = track.state
        status_changed = old != state.status
        closing = self._episode(state.provider, at) if audience == "all" else None
        event = self._event(kind, track, at, source, audience=audience)
        event.from_ = old
        event.to = state.status
        event.detail = detail
        if closing is not None:
            event.episode, event.episode_started = closing
        snapshot = state.model_copy(deep=True)
        return StateUpdate(state=snapshot, event=event, status_changed=status_changed)

    def _event(
        self, kind: EventType, track: _Track, at: datetime, source: str | None, *, audience: str
    ) -> Event:
        state = track.state
        prov = self._provider(state.provider)
        return Event(
            type=kind,
            provider=state.provider,
            component=state.component,
            at=at,
            source=source,
            confirmed=state.confirmed,
            incident=(
                EventIncident.of(
                    state.incident, new_update=state.incident.revision not in prov.seen
                )
                if state.incident
                else None
            ),
            to=state.status,
            provider_name=self._names.get(state.provider, state.provider),
            component_name=state.name,
            episode=prov.episode,
            episode_started=prov.episode_started,
            provider_status=self.provider_status(state.provider),
            audience="admins" if audience == "admins" else "all",
            latency_ms=state.latency_ms,
            cause=self.cause(state.provider) if audience != "admins" else None,
        )

    def provider_status(self, provider: str) -> Status:
        """The provider's worst known status (``unknown`` only if nothing is known)."""
        tracks = self._of(provider)
        known = [
            t.state.last_known if t.state.status is Status.UNKNOWN else t.state.status
            for t in tracks
        ]
        known = [s for s in known if s is not Status.UNKNOWN] or [Status.UNKNOWN]
        states = (t.state for t in tracks)
        return provider_status_of(known, states)

    def _episode(self, provider: str, at: datetime) -> tuple[str, datetime | None] | None:
        """Open or close the provider's episode; return (id, start) when this closes it."""
        prov = self._provider(provider)
        status = self.provider_status(provider)
        flapping = any(t.state.flapping for t in self._of(provider))
        closing: tuple[str, datetime | None] | None = None
        if prov.episode is None and status.rank >= Status.MAINTENANCE.rank:
            prov.episode = f"{provider}:{at:%Y%m%dT%H%M%SZ}:{uuid.uuid4().hex[:6]}"
            prov.episode_started = at
        elif prov.episode is not None and status is Status.OPERATIONAL and not flapping:
            closing = (prov.episode, prov.episode_started)
            prov.closed = (prov.episode, prov.episode_started, at)
            prov.episode = prov.episode_started = None
        for t in self._of(provider):
            t.state.episode, t.state.episode_started = prov.episode, prov.episode_started
        return closing


class _Recent(Mapping[str, _ProviderTrack]):
    """A view of the recently probed providers (keys in :attr:`Tracker._probe_order`)."""

    def __init__(self, order: Mapping[str, None], providers: Mapping[str, _ProviderTrack]):
        self._order, self._providers = order, providers

    def __getitem__(self, provider: str) -> _ProviderTrack:
        if provider not in self._order:
            raise KeyError(provider)
        return self._providers[provider]

    def __contains__(self, provider: object) -> bool:
        return provider in self._order

    def __iter__(self) -> Iterator[str]:
        return iter(self._order)

    def __len__(self) -> int:
        return len(self._order)


def _carries_incident(updates: Sequence[StateUpdate]) -> bool:
    """Whether users already get an event from this step (it carries the incident)."""
    return any(u.event is not None and u.event.audience == "all" for u in updates)


def _was_open(prov: _ProviderTrack, incident: Incident) -> bool:
    return any(incident_id == incident.id for incident_id, _ in prov.seen)


#: The self-check's own state: a new leader (or a restart) picks up what the admins were told.
WATCHER_KEY = state_key("tocsin", "watcher")


def _watcher_state(suspect: bool, at: datetime, detail: str) -> ComponentState:
    status = Status.MAJOR_OUTAGE if suspect else Status.OPERATIONAL
    return ComponentState(
        provider="tocsin",
        component="watcher",
        name="Watcher network",
        status=status,
        last_known=status,
        since=at,
        checked_at=at,
        detail=detail,
    )
