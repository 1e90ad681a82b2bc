"""The apps' own traffic as a source: the leader reads the sums of the reported calls.

Apps report their calls (:mod:`bot.signals`) to any replica; the counts land in the store's
10 s buckets. Here, in the leader, one :class:`TrafficSource` per watched provider reads the
window's sums (never the network), every ``signals.interval``:

* a (provider, model) with fewer than ``min_calls`` calls in the window says nothing;
* failures over ``error_rate`` of its calls (429s are rate limiting, never failures) →
  ``major_outage`` of the model's component (the one an inference probe of that model
  uses), in words: "from your app's traffic (checkout): 37 of 40 calls to Claude Sonnet 4.5
  failed in the last 60 s, 529 overloaded"; at or under it → ``operational``. The tracker
  debounces these like a probe's results: suspected, never confirmed.
* a model this source called failing that then has too few calls (apps routed around it, as
  the routing answer told them) is released: ``operational`` with "no longer seen failing",
  like a circuit breaker's half-open state. Calls come back to it; if it still fails, the
  traffic says so again within a window. Without this, a model routed around could never
  recover from traffic alone.

One app seeing ``app_network_providers`` (3) or more providers, each with ``min_calls``, all
failing over the threshold at once is that app's own network (or proxy, or credentials): its
counts are held back from every provider's sums, and :class:`AppTrafficHealth` (provider
``tocsin``, component ``app:<name>``) tells the admins once (a ``config_alert``) until it is
over.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import httpx

from bot.models import Observation, ProbeError, SourceKind, Status
from bot.store import Store
from bot.store.base import SIGNAL_BUCKET, SignalTally

#: Reported times may run this far ahead of now (as bot/signals.py clamps them).
_AHEAD = 5.0


@dataclass(frozen=True, slots=True)
class TrafficSettings:
    window: float = 60.0
    min_calls: int = 20
    error_rate: float = 0.5
    interval: float = 5.0
    app_network_providers: int = 3


@dataclass(slots=True)
class TrafficSnapshot:
    """The window's sums per (provider, model), with the suspect apps' counts held back."""

    pairs: dict[tuple[str, str], SignalTally] = field(default_factory=dict)
    #: App → why its network is the suspect.
    suspects: dict[str, str] = field(default_factory=dict)


class TrafficReader:
    """Reads the window once for every traffic source of a round (briefly cached)."""

    def __init__(
        self,
        store: Store,
        settings: TrafficSettings,
        providers: Iterable[str],
        names: Mapping[str, str] | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.providers = frozenset(providers)
        self.names = dict(names or {})
        self._cached: tuple[float, TrafficSnapshot] | None = None
        self._max_age = min(0.5, settings.interval / 4)

    def buckets(self, now: float) -> list[int]:
        first = math.floor((now - self.settings.window) / SIGNAL_BUCKET)
        last = math.floor((now + _AHEAD) / SIGNAL_BUCKET)
        return list(range(first, last + 1))

    async def snapshot(self) -> TrafficSnapshot:
        started = time.monotonic()
        if self._cached is not None and started - self._cached[0] < self._max_age:
            return self._cached[1]
        sums = await self.store.signal_sums(self.buckets(time.time()))
        pairs = {key: tally for key, tally in sums.items() if key[0] in self.providers}
        snapshot = TrafficSnapshot(pairs, self._suspects(pairs))
        for app in snapshot.suspects:
            for tally in pairs.values():
                _hold_back(tally, app)
        self._cached = (started, snapshot)
        return snapshot

    def _failing(self, calls: int, failures: int) -> bool:
        return failures / calls > self.settings.error_rate

    def _suspects(self, pairs: Mapping[tuple[str, str], SignalTally]) -> dict[str, str]:
        per_app: dict[str, dict[str, list[int]]] = {}
        for (provider, _model), tally in pairs.items():
            for app, calls in tally.app_calls.items():
                counts = per_app.setdefault(app, {}).setdefault(provider, [0, 0])
                counts[0] += calls
                counts[1] += tally.app_failures.get(app, 0)
        out: dict[str, str] = {}
        s = self.settings
        for app, providers in per_app.items():
            busy = {p: c for p, c in providers.items() if c[0] >= s.min_calls}
            if len(busy) < s.app_network_providers:
                continue
            if all(self._failing(calls, failures) for calls, failures in busy.values()):
                named = ", ".join(self.names.get(p, p) for p in sorted(busy))
                calls = sum(c[0] for c in busy.values())
                failures = sum(c[1] for c in busy.values())
                out[app] = (
                    f"app {app}: its calls to {len(busy)} providers all fail at once "
                    f"({failures} of {calls} calls in the last {s.window:g} s: {named}): "
                    "the app's own network, proxy or credentials are the suspect, not the "
                    "providers; its traffic is held back until it recovers"
                )
        return out


def _hold_back(tally: SignalTally, app: str) -> None:
    calls = tally.app_calls.pop(app, 0)
    failures = tally.app_failures.pop(app, 0)
    tally.calls = max(0, tally.calls - calls)
    tally.failures = max(0, tally.failures - failures)
    tally.rate_limited = min(tally.rate_limited, tally.calls)


#: Quiet rounds a released model is reported operational for (the tracker needs
#: ``success_threshold`` of them in a row; at most 100 is allowed).
RELEASE_ROUNDS = 100


class TrafficSource:
    """One watched provider's models as the apps' traffic shows them."""

    kind = SourceKind.TRAFFIC

    def __init__(
        self,
        provider: str,
        reader: TrafficReader,
        *,
        model_names: Mapping[str, str] | None = None,
    ) -> None:
        self.provider = provider
        self.id = f"{provider}:traffic"
        self.reader = reader
        self.interval = reader.settings.interval
        self.model_names = dict(model_names or {})
        #: The models this source last called failing, and those released since their calls
        #: stopped, with how many more quiet rounds say so (enough for any success_threshold).
        self.failing: set[str] = set()
        self.releasing: dict[str, int] = {}

    async def check(self, client: httpx.AsyncClient) -> list[Observation]:
        snapshot = await self.reader.snapshot()
        s = self.reader.settings
        out: list[Observation] = []
        busy: set[str] = set()
        for (provider, model), tally in sorted(snapshot.pairs.items()):
            if provider != self.provider or tally.calls < s.min_calls:
                continue
            busy.add(model)
            self.releasing.pop(model, None)
            failing = tally.failures / tally.calls > s.error_rate
            status = Status.MAJOR_OUTAGE if failing else Status.OPERATIONAL
            (self.failing.add if failing else self.failing.discard)(model)
            out.append(self._observe(model, status, describe(tally, self._name(model), s.window)))
        for model in self.failing - busy:
            self.failing.discard(model)
            self.releasing[model] = RELEASE_ROUNDS
        for model in sorted(self.releasing):
            self.releasing[model] -= 1
            if not self.releasing[model]:
                del self.releasing[model]
            quiet = (
                f"from your app's traffic: {self._name(model)} is no longer seen failing "
                f"(under {s.min_calls} calls in the last {s.window:g} s)"
            )
            out.append(self._observe(model, Status.OPERATIONAL, quiet))
        return out

    def _name(self, model: str) -> str:
        return self.model_names.get(model) or model

    def _observe(self, model: str, status: Status, detail: str) -> Observation:
        return Observation(
            provider=self.provider,
            component=model,
            status=status,
            source=self.id,
            kind=SourceKind.TRAFFIC,
            component_name=self._name(model),
            model=model,
            detail=detail,
        )


def describe(tally: SignalTally, name: str, window: float) -> str:
    """ "from your app's traffic (checkout): 37 of 40 calls to Claude Sonnet 4.5 failed in
    the last 60 s, 529 overloaded" """
    failing_apps = sorted(tally.app_failures, key=lambda a: -tally.app_failures[a])
    apps = failing_apps or sorted(tally.app_calls, key=lambda a: -tally.app_calls[a])
    shown = ", ".join(apps[:3]) + (f" and {len(apps) - 3} more" if len(apps) > 3 else "")
    who = "your app's traffic" if len(apps) <= 1 else "your apps' traffic"
    text = (
        f"from {who}{f' ({shown})' if shown else ''}: {tally.failures} of {tally.calls} calls "
        f"to {name} failed in the last {window:g} s"
    )
    kinds = sorted(tally.errors.items(), key=lambda kv: -kv[1])
    if kinds and tally.failures:
        main = kinds[0][0]
        text += f", {main}" if len(kinds) == 1 else f", mostly {main}"
    if tally.rate_limited:
        text += f" ({tally.rate_limited} rate-limited, not counted as failures)"
    return text


class AppTrafficHealth:
    """The admins hear once when one app's traffic fails everywhere at once (its network)."""

    kind = SourceKind.TRAFFIC

    def __init__(self, reader: TrafficReader) -> None:
        self.provider = "tocsin"
        self.id = "tocsin:traffic"
        self.reader = reader
        self.interval = reader.settings.interval
        self._alerted: set[str] = set()

    async def check(self, client: httpx.AsyncClient) -> list[Observation]:
        snapshot = await self.reader.snapshot()
        out = [
            Observation(
                provider=self.provider,
                component=f"app:{app}",
                component_name=f"App {app}'s network",
                status=Status.UNKNOWN,
                source=self.id,
                kind=SourceKind.TRAFFIC,
                error=ProbeError.CONFIG,
                detail=detail,
            )
            for app, detail in sorted(snapshot.suspects.items())
        ]
        for app in sorted(self._alerted - snapshot.suspects.keys()):
            out.append(
                Observation(
                    provider=self.provider,
                    component=f"app:{app}",
                    component_name=f"App {app}'s network",
                    status=Status.OPERATIONAL,
                    source=self.id,
                    kind=SourceKind.TRAFFIC,
                    detail=f"app {app}: its calls get answers again",
                )
            )
        self._alerted = set(snapshot.suspects)
        return out
