"""Vantage points and a quorum (issue 17): only alert when checks from enough places agree.

Each replica runs from one *vantage* (config ``vantage``, a region or a network; default
``default``). With ``watch.quorum: N`` (N > 1) our own evidence (probe observations) only
makes a component ``suspected`` when probes from at least N vantages fail it within
``watch.quorum_window``; status-page readings, and the apps' own reported calls (``traffic``:
one tally from every app, the same for every replica, so no vantage's view) pass untouched.

- A :class:`Witness` in every replica (roles ``all`` and ``watcher``) holds the lease
  ``witness:{vantage}`` (one prober per vantage) and runs the probe sources on their
  intervals, publishing each result in the store's ``vantage`` records table under
  ``{vantage}|{source}|{component}``. The leader's vantage needs no witness: the leader
  publishes its own results in :meth:`Quorum.combine`, so a witness whose replica leads keeps
  its lease (no other replica of that vantage probes twice) and runs nothing.
- :meth:`Quorum.combine` (the leader's watcher, every batch) publishes this vantage's results,
  reads the others' (the table at most once a second), and hands the tracker a failing
  observation only where enough vantages fail ("failing from a and b"), else an operational
  one: the tracker's thresholds, recovery and self-check work on unchanged.
- A vantage failing alone (it fails checks of ``watch.self_check_min_providers`` providers,
  or all it is compared on, while other vantages checked *after* its failures began and saw
  them fine) is that vantage's problem: one ``watcher_health`` admin notice naming it per
  episode, and one when it agrees again; ids derive from the episode, so two leaders after a
  handover append the same event (the dispatcher's marks deliver it once).

What the table holds is read as hostile: a record that does not validate is ignored (said
once, :func:`bot.store.decode.drop`); a detail is scrubbed and clipped.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bot.checks import check_source
from bot.lease import Lease, hold, sleep_unless, unique_holder
from bot.logs import get_logger, scrub_detail
from bot.models import EMOJI, Event, Observation, ProbeError, SourceKind, Status, utcnow
from bot.outside import Unreadable, load_json, one_line
from bot.schedule import Schedule
from bot.sources.source import Source
from bot.store import Store, StoreUnavailable
from bot.store.decode import drop
from config.schema import VANTAGE_ID, TocsinConfig

log = get_logger("tocsin.vantage")

#: The records table of the vantages' latest results, and of what the admins were told.
TABLE = "vantage"
HEALTH_TABLE = "vantage-health"
DEFAULT_VANTAGE = "default"
#: A published detail at most (what a probe said: one line).
DETAIL_MAX = 300
#: The records table is read at most this often by the leader (not once per observation).
READ_EVERY = 1.0

Clock = Callable[[], datetime]


def witness_lease(vantage: str) -> str:
    return f"witness:{vantage}"


def quorum_window(config: TocsinConfig) -> float:
    """``watch.quorum_window``, else 3 x the longest probe interval (a vantage's result is
    then fresh across two of its missed rounds)."""
    watch = config.watch
    if watch.quorum_window is not None:
        return watch.quorum_window
    intervals = [
        p.probe.interval or watch.interval for p in config.providers if p.probe is not None
    ]
    return 3 * max(intervals, default=watch.interval)


def is_failing(obs: Observation) -> bool:
    """A failing check, as the tracker counts one: an outage status, or a network, timeout,
    HTTP or answer error. Rate limits and configuration errors (auth, URL, model) are not."""
    error = obs.error
    if error is not None and (error.is_config or error is ProbeError.RATE_LIMITED):
        return False
    if obs.status is Status.UNKNOWN:
        return False
    return obs.status.is_outage or error is not None


class VantageResult(BaseModel):
    """One vantage's latest check of one (source, component): what a record holds."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    vantage: Annotated[str, Field(pattern=VANTAGE_ID)]
    source: Annotated[str, Field(min_length=1, max_length=200)]
    provider: Annotated[str, Field(min_length=1, max_length=100)]
    component: Annotated[str, Field(min_length=1, max_length=200)]
    failing: bool
    status: Status
    error: ProbeError | None = None
    detail: str | None = None
    at: datetime
    #: When this vantage's current run of failures began (None: not failing).
    since: datetime | None = None

    @field_validator("detail", mode="before")
    @classmethod
    def _clip(cls, value: object) -> object:
        if isinstance(value, str):
            return one_line(scrub_detail(value), DETAIL_MAX) or None
        return value

    @field_validator("at", "since")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("a naive time")
        return value

    @property
    def key(self) -> str:
        return record_key(self.vantage, self.source, self.component)

    @property
    def pair(self) -> tuple[str, str]:
        return (self.source, self.component)

    @property
    def label(self) -> str:
        """``✅`` or ``❌ timeout`` (what went wrong, in a word)."""
        if not self.failing:
            return EMOJI[Status.OPERATIONAL] if self.status is Status.OPERATIONAL else "❔"
        return f"❌ {self.error.value if self.error else self.status.label.lower()}"


def record_key(vantage: str, source: str, component: str) -> str:
    return f"{vantage}|{source}|{component}"


def read_results(raw: dict[str, str]) -> list[VantageResult]:
    """The table's records that validate (and sit under their own key); the rest are
    dropped, each said once."""
    found: list[VantageResult] = []
    for key, value in raw.items():
        try:
            loaded = load_json(value)
            result = VantageResult.model_validate(loaded)
        except (Unreadable, ValidationError, ValueError, TypeError) as exc:
            drop("vantage result", key, value, one_line(str(exc), 200))
            continue
        if result.key != key:
            drop("vantage result", key, value, "not under its own key")
            continue
        found.append(result)
    return found


class Publisher:
    """Publishes one vantage's results, remembering when each run of failures began."""

    def __init__(self, store: Store, vantage: str) -> None:
        self.store = store
        self.vantage = vantage
        self._since: dict[tuple[str, str], datetime] = {}
        self.latest: dict[tuple[str, str], VantageResult] = {}

    def result(self, obs: Observation) -> VantageResult:
        pair = (obs.source, obs.component)
        failing = is_failing(obs)
        if failing:
            since = self._since.setdefault(pair, obs.at)
        else:
            self._since.pop(pair, None)
        result = VantageResult(
            vantage=self.vantage,
            source=obs.source,
            provider=obs.provider,
            component=obs.component,
            failing=failing,
            status=obs.status,
            error=obs.error,
            detail=obs.detail,
            at=obs.at,
            since=since if failing else None,
        )
        self.latest[pair] = result
        return result

    async def publish(self, observations: Iterable[Observation]) -> list[VantageResult]:
        """Record each probe observation's result (the store away: kept in memory only)."""
        results = [self.result(o) for o in observations if o.kind is SourceKind.PROBE]
        try:
            for result in results:
                await self.store.put_record(TABLE, result.key, result.model_dump_json())
        except StoreUnavailable as exc:
            log.warning("store unreachable; vantage results not published", error=str(exc))
        return results


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a vantage failing alone looks like now."""

    vantage: str
    providers: tuple[str, ...]
    since: datetime


class Quorum:
    """The leader's watcher's hook: the observations as the tracker should see them."""

    def __init__(
        self,
        config: TocsinConfig,
        store: Store,
        vantage: str,
        clock: Clock = utcnow,
        *,
        window: float | None = None,
        hold: float | None = None,
    ) -> None:
        self.quorum = config.watch.quorum
        self.window = window if window is not None else quorum_window(config)
        #: How long a vantage must look alone before the admins hear of it (a check in
        #: flight when a provider fails must not blame the one that saw it first): a third
        #: of the window, by default the longest probe interval.
        self.hold = hold if hold is not None else self.window / 3
        self._looks_alone: dict[str, datetime] = {}
        self.min_providers = config.watch.self_check_min_providers
        self.names = {p.id: p.name for p in config.providers}
        self.store = store
        self.vantage = vantage
        self.clock = clock
        self.own = Publisher(store, vantage)
        self._table: list[VantageResult] = []
        self._read_at: float | None = None
        #: Vantage → the episode start the admins were told of (None: told it agrees).
        self._told: dict[str, datetime | None] = {}
        self._alone: bool | None = None  # whether no other vantage reports (said once)

    async def combine(self, observations: Sequence[Observation]) -> list[Observation]:
        """The observations as the tracker should see them, all vantages counted."""
        if self.quorum <= 1 or not any(o.kind is SourceKind.PROBE for o in observations):
            return list(observations)
        await self.own.publish(observations)
        now = self.clock()
        others = await self._others(now)
        self._say_alone(others)
        by_pair: dict[tuple[str, str], list[VantageResult]] = {}
        for result in others:
            by_pair.setdefault(result.pair, []).append(result)
        combined = [
            self._combined(o, by_pair.get((o.source, o.component), []))
            if o.kind is SourceKind.PROBE
            else o
            for o in observations
        ]
        await self._check_vantages(now, others)
        return combined

    # ------------------------------------------------------------------ the quorum

    def _combined(self, obs: Observation, others: Sequence[VantageResult]) -> Observation:
        if obs.status is Status.UNKNOWN or (obs.error is not None and obs.error.is_config):
            return obs  # a broken or misconfigured probe is this replica's config alert
        own_failing = is_failing(obs)
        failing = sorted(
            {r.vantage for r in others if r.failing} | ({self.vantage} if own_failing else set())
        )
        named = " and ".join(failing)
        if len(failing) >= self.quorum:
            if own_failing:
                detail = f"failing from {named}" + (f": {obs.detail}" if obs.detail else "")
                return dataclasses.replace(obs, detail=detail)
            first = min((r for r in others if r.failing), key=lambda r: r.vantage)
            detail = f"failing from {named}" + (f": {first.detail}" if first.detail else "")
            return dataclasses.replace(
                obs, status=first.status, error=first.error, detail=detail, latency_ms=None
            )
        if own_failing:
            return dataclasses.replace(
                obs,
                status=Status.OPERATIONAL,
                error=None,
                detail=f"failing only from {named}: a quorum of {self.quorum} vantages not met",
            )
        return obs

    async def _others(self, now: datetime) -> list[VantageResult]:
        """The other vantages' results within the window (the table read once a second; the
        store away: the last read, still within the window)."""
        tick = time.monotonic()
        if self._read_at is None or tick - self._read_at >= READ_EVERY:
            try:
                self._table = read_results(await self.store.records(TABLE))
                self._read_at = tick
            except StoreUnavailable as exc:
                log.warning("store unreachable; the last vantage results stand", error=str(exc))
        horizon = now - timedelta(seconds=self.window)
        return [r for r in self._table if r.vantage != self.vantage and r.at >= horizon]

    def _say_alone(self, others: Sequence[VantageResult]) -> None:
        alone = not others
        if alone == self._alone:
            return
        self._alone = alone
        if alone:
            log.warning(
                "no other vantage reports: a quorum of vantages cannot be met, no probe "
                "failure is announced until one does",
                vantage=self.vantage,
                quorum=self.quorum,
            )
        else:
            log.info("other vantages report", vantages=sorted({r.vantage for r in others}))

    # ------------------------------------------------------------ a vantage alone

    def verdicts(self, results: Sequence[VantageResult]) -> dict[str, Verdict | None]:
        """Each vantage compared with another on some check: failing alone (a verdict) or
        not (None). A check counts against a vantage when it fails there and every other
        vantage that checked it since that failure began saw it fine."""
        by_pair: dict[tuple[str, str], list[VantageResult]] = {}
        for result in results:
            by_pair.setdefault(result.pair, []).append(result)
        out: dict[str, Verdict | None] = {}
        for vantage in sorted({r.vantage for r in results}):
            compared: set[tuple[str, str]] = set()
            alone: list[VantageResult] = []
            for pair, views in by_pair.items():
                mine = next((r for r in views if r.vantage == vantage), None)
                rest = [r for r in views if r.vantage != vantage]
                if mine is None or not rest:
                    continue
                compared.add(pair)
                if mine.failing and mine.since is not None:
                    later = [r for r in rest if r.at > mine.since]
                    if later and not any(r.failing for r in later):
                        alone.append(mine)
            if not compared:
                continue  # nothing to judge it by: no verdict either way
            providers = tuple(sorted({r.provider for r in alone}))
            suspect = bool(alone) and (
                len(providers) >= self.min_providers or {r.pair for r in alone} == compared
            )
            out[vantage] = (
                Verdict(vantage, providers, min(r.since for r in alone if r.since))
                if suspect
                else None
            )
        return out

    async def _check_vantages(self, now: datetime, others: Sequence[VantageResult]) -> None:
        horizon = now - timedelta(seconds=self.window)
        own = [r for r in self.own.latest.values() if r.at >= horizon]
        for vantage, verdict in self.verdicts([*own, *others]).items():
            if verdict is None:
                self._looks_alone.pop(vantage, None)
            elif (now - self._looks_alone.setdefault(vantage, now)).total_seconds() < self.hold:
                continue  # not for long enough yet
            told = self._told.get(vantage)
            if (verdict is None and told is None and vantage in self._told) or (
                verdict is not None and told is not None
            ):
                continue
            try:
                await self._tell(vantage, verdict, now)
            except StoreUnavailable as exc:
                log.warning("store unreachable; vantage health not told yet", error=str(exc))

    async def _tell(self, vantage: str, verdict: Verdict | None, now: datetime) -> None:
        """One admin notice per change of a vantage's health (none if the store says it was
        told already, by this replica or an earlier leader)."""
        stored = await self._stored(vantage)
        if verdict is None:
            if stored is None:
                self._told[vantage] = None
                return
            event = self._event(vantage, "agrees", stored, now, None)
        else:
            if stored is not None:
                self._told[vantage] = stored
                return
            event = self._event(vantage, "suspect", verdict.since, now, verdict)
        await self.store.append(event)
        since = verdict.since if verdict else None
        record = {"since": since.isoformat() if since else None, "at": now.isoformat()}
        await self.store.put_record(HEALTH_TABLE, vantage, json.dumps(record))
        self._told[vantage] = since
        log.warning("vantage health", vantage=vantage, detail=event.detail)

    async def _stored(self, vantage: str) -> datetime | None:
        raw = (await self.store.records(HEALTH_TABLE)).get(vantage)
        if raw is None:
            return None
        try:
            loaded: Any = load_json(raw)
            since = loaded.get("since") if isinstance(loaded, dict) else None
            when = datetime.fromisoformat(since) if isinstance(since, str) else None
        except (Unreadable, ValueError) as exc:
            drop("vantage health", vantage, raw, str(exc))
            return None
        return when if when is None or when.tzinfo is not None else when.replace(tzinfo=UTC)

    def _event(
        self, vantage: str, kind: str, since: datetime, now: datetime, verdict: Verdict | None
    ) -> Event:
        digest = hashlib.sha256(f"vantage|{vantage}|{kind}|{since.isoformat()}".encode())
        if verdict is not None:
            names = ", ".join(self.names.get(p, p) for p in verdict.providers)
            detail = (
                f"vantage {vantage} sees failures the others do not: {names} — its network "
                "is the suspect; no outage notice is sent for what only it sees"
            )
        else:
            detail = f"vantage {vantage}'s checks agree with the other vantages again"
        return Event(
            id=digest.hexdigest()[:32],
            type="watcher_health",
            provider="tocsin",
            component=f"vantage:{vantage}",
            at=now,
            to=Status.MAJOR_OUTAGE if verdict is not None else Status.OPERATIONAL,
            detail=detail,
            audience="admins",
            source=f"vantage:{vantage}",
        )


# ---------------------------------------------------------------------------- the witness


@dataclass(frozen=True, slots=True)
class WitnessSettings:
    instance: str
    lease: float = 15.0
    holder: str | None = None
    jitter: float | None = None


class Witness:
    """Runs this vantage's probes while this replica holds ``witness:{vantage}`` and does not
    lead the watcher (the leader publishes its own vantage's results): the
    :class:`bot.lease.Duty` that :func:`bot.lease.hold` drives."""

    def __init__(
        self,
        sources: Sequence[Source],
        store: Store,
        vantage: str,
        settings: WitnessSettings,
        client: httpx.AsyncClient,
        *,
        leading: Callable[[], bool] = lambda: False,
    ) -> None:
        self.sources = [s for s in sources if s.kind is SourceKind.PROBE]
        self.store = store
        self.vantage = vantage
        self.client = client
        self.leading = leading
        self.publisher = Publisher(store, vantage)
        holder = settings.holder or unique_holder(settings.instance)
        self.lease = Lease(store, witness_lease(vantage), holder, settings.lease)
        jitter = settings.jitter
        self.schedule = Schedule(lambda interval: jitter if jitter is not None else interval / 10)
        self.leader = False
        self._running: set[asyncio.Task[None]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await hold(self.lease, stop, self)
        finally:
            self.leader = False
            await self.client.aclose()

    async def take_over(self) -> None:
        self.leader = True
        log.info("witnessing", vantage=self.vantage, probes=len(self.sources))
        self.schedule.start(self.sources, self._job)

    def step_down(self) -> None:
        log.warning("lost the witness lease", vantage=self.vantage)
        self.leader = False
        self._stop_runs()

    async def between_rounds(self, stop: asyncio.Event) -> None:
        await sleep_unless(stop, self.lease.renew_every if self.store.shared else 5.0)

    def after_round(self, error: Exception | None) -> float | None:
        if isinstance(error, StoreUnavailable):
            log.warning("store unreachable; witnessing on", error=str(error))
        elif error is not None:
            log.exception("a witness round failed; trying again")
        return None

    async def stop_work(self) -> None:
        self._stop_runs()
        await asyncio.gather(*self._running, return_exceptions=True)

    def _stop_runs(self) -> None:
        self.schedule.stop()
        for task in list(self._running):
            task.cancel()

    async def _job(self, source: Source) -> None:
        if self.leading():
            return  # the leader's own rounds publish this vantage's results
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        try:
            await self.publisher.publish(await check_source(source, self.client))
        except asyncio.CancelledError:
            return
        finally:
            if task is not None:
                self._running.discard(task)
        self.schedule.rephase(source)


# ---------------------------------------------------------------------------- the views


@dataclass(frozen=True, slots=True)
class VantageView:
    """One vantage's view of one provider: its latest result per component."""

    vantage: str
    components: tuple[VantageResult, ...]
    at: datetime

    @property
    def failing(self) -> bool:
        return any(r.failing for r in self.components)

    @property
    def label(self) -> str:
        """``eu-west ✅``, ``us-east ❌ timeout``."""
        failing = [r for r in self.components if r.failing]
        shown = failing[0] if failing else self.components[0]
        return f"{self.vantage} {shown.label}"

    def as_json(self) -> dict[str, Any]:
        return {
            "vantage": self.vantage,
            "failing": self.failing,
            "at": self.at.isoformat(),
            "components": [
                {
                    "component": one_line(r.component, 200),
                    "status": r.status.value,
                    "failing": r.failing,
                    "error": r.error.value if r.error else None,
                    "detail": r.detail,
                    "at": r.at.isoformat(),
                }
                for r in self.components
            ],
        }


#: Views older than this are not shown (a vantage that stopped reporting).
VIEW_MAX_AGE = 24 * 3600.0


async def vantage_views(
    store: Store, provider: str, *, now: datetime | None = None, max_age: float = VIEW_MAX_AGE
) -> list[VantageView]:
    """Each vantage's latest results for ``provider``, vantages by name."""
    horizon = (now or utcnow()) - timedelta(seconds=max_age)
    grouped: dict[str, list[VantageResult]] = {}
    for result in read_results(await store.records(TABLE)):
        if result.provider == provider and result.at >= horizon:
            grouped.setdefault(result.vantage, []).append(result)
    return [
        VantageView(
            vantage,
            tuple(sorted(results, key=lambda r: r.component)),
            max(r.at for r in results),
        )
        for vantage, results in sorted(grouped.items())
    ]
