"""Assembly: from a validated config to running parts, by role.

``all`` runs everything in one process (the default and the quick start); ``watcher``,
``notifier`` and ``bot`` split the work across replicas that share one Redis.

Each process has a stable instance name (its notifier's consumer name) and a per-boot token
(its lease holder is both, :mod:`bot.lease`); a second live process under the same name runs
under a derived one instead (:mod:`bot.presence`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import socket
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Literal

from aiohttp import web

from bot.answers import Answers
from bot.chatops.actions import ChatOps, configured_routes
from bot.chatops.controls import Controls
from bot.chatops.reminders import Reminders
from bot.dispatcher import Dispatcher, DispatcherSettings
from bot.escalation import Escalator, EscalatorSettings
from bot.frontends import Frontend
from bot.history.recorder import HistoryRecorder, LatencySampler, RecorderSettings
from bot.lease import sleep_unless
from bot.logs import get_logger
from bot.maintenance_ahead import MaintenanceAhead
from bot.models import SourceKind
from bot.notice_context import NoticeContext
from bot.notifier import Target
from bot.presence import Identity, Presence
from bot.secret_values import config_secrets as config_secrets  # re-exported: its old home
from bot.secret_values import register_config_secrets as register_config_secrets
from bot.server import Health, build_app, start_server
from bot.shards import Shards
from bot.sources import SourcePlan, build_sources, build_traffic_sources
from bot.store import Store, StoreUnavailable, make_store
from bot.vantage import Quorum, Witness, WitnessSettings
from bot.watcher import Watcher, WatcherSettings, make_client, tracker_for
from config.schema import TocsinConfig
from handlers import build_targets, command_frontends, subscription_targets

Role = Literal["all", "watcher", "notifier", "bot"]


log = get_logger("tocsin")


def instance_name(config: TocsinConfig, env: Mapping[str, str] | None = None) -> str:
    """This replica's stable name: the config's, ``$TOCSIN_INSTANCE``, else the host name.

    Stable across restarts on purpose: a restarted notifier finds its own unacknowledged
    entries under the same consumer name.
    """
    env = os.environ if env is None else env
    return config.instance or env.get("TOCSIN_INSTANCE") or socket.gethostname()


class ListenError(Exception):
    """The HTTP listener cannot bind (the port is taken, the address is not this host's)."""


@dataclass
class Runtime:
    """The running parts of one process."""

    config: TocsinConfig
    role: Role
    store: Store
    plan: SourcePlan
    targets: list[Target]
    #: The name this process runs under (its consumer name): the configured one, or a
    #: derived one while another live process has that (set once the store is open).
    instance: str
    #: The stable name and this boot's token (the lease holder is both).
    identity: Identity
    watcher: Watcher | None = None
    #: (issue 17) Runs this vantage's probes for the quorum (``watch.quorum`` > 1).
    witness: Witness | None = None
    dispatcher: Dispatcher | None = None
    escalator: Escalator | None = None
    #: (issue 15) What people do from the chat, and the chat's clock (reminders, silences
    #: that end by themselves).
    chatops: ChatOps | None = None
    reminders: Reminders | None = None
    #: (issue 16) Keeps the days and episodes (one replica at a time, by lease).
    history: HistoryRecorder | None = None
    health: Health | None = None
    #: Chat command front ends (Slack, Discord): started and stopped with the runtime.
    frontends: list[Frontend] = field(default_factory=list)
    runner: web.AppRunner | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def probed(self) -> set[str]:
        return {s.provider for s in self.plan.sources if s.kind is SourceKind.PROBE}


def assemble(
    config: TocsinConfig,
    role: Role = "all",
    *,
    store: Store | None = None,
    targets: list[Target] | None = None,
    env: Mapping[str, str] | None = None,
) -> Runtime:
    store = store or make_store(config.store)
    plan = build_sources(config, env)
    identity = Identity(instance_name(config, env))
    instance = identity.name
    runtime = Runtime(
        config=config,
        role=role,
        store=store,
        plan=plan,
        targets=targets if targets is not None else build_targets(config, store=store),
        instance=instance,
        identity=identity,
    )
    if role in ("all", "watcher"):
        watch = config.watch
        settings = WatcherSettings(
            instance=instance,
            lease=config.store.lease,
            holder=identity.holder,
            confirm_interval=watch.confirm_interval,
            jitter=watch.jitter,
            timeout=watch.timeout,
            max_connections=watch.max_connections,
            user_agent=watch.user_agent,
        )
        tracker = tracker_for(config, plan.sources)
        sources = [*plan.sources, *build_traffic_sources(config, store)]  # signals
        maintenance = (
            MaintenanceAhead(
                store, {p.id: p.name for p in config.providers}, lead=watch.maintenance_lead
            )
            if watch.maintenance_notices
            else None
        )
        runtime.watcher = Watcher(
            sources,
            tracker,
            store,
            settings,
            maintenance=maintenance,
            latency=LatencySampler(store),
            quorum=Quorum(config, store, config.vantage) if watch.quorum > 1 else None,
            shards=Shards(store, identity.holder, config.store.lease) if watch.sharding else None,
            shared_providers=frozenset(u.id for u in config.upstreams),
        )
        recorder = RecorderSettings(
            instance=instance,
            lease=config.store.lease,
            holder=identity.holder,
            providers=frozenset(config.provider_ids),
        )
        runtime.history = HistoryRecorder(store, recorder)
        if watch.quorum > 1:  # (issue 17) this vantage's probes, while another replica leads
            leading = runtime.watcher
            runtime.witness = Witness(
                plan.sources,
                store,
                config.vantage,
                WitnessSettings(instance, config.store.lease, identity.holder, watch.jitter),
                make_client(settings),
                leading=lambda: leading.leader,
            )
    if role in ("all", "notifier"):
        context = NoticeContext(config, store, runtime.probed)
        claim_idle = config.store.claim_idle
        grouping = config.grouping
        dispatcher_settings = DispatcherSettings(
            consumer=instance,
            claim_idle_ms=int(claim_idle * 1000),
            touch_every=min(10.0, claim_idle / 3),  # our own entries never look idle
            grouping=grouping.enabled and "cause" in grouping.group_by,
            group_wait=grouping.group_wait,
        )
        controls = Controls(store, make_target=subscription_targets(config, runtime.targets))
        runtime.dispatcher = Dispatcher(
            store, runtime.targets, context, dispatcher_settings, controls=controls
        )
        runtime.reminders = Reminders(_chatops(runtime), controls, runtime.targets)
        if config.escalation:
            escalator_settings = EscalatorSettings(
                instance=instance, lease=config.store.lease, holder=identity.holder
            )
            runtime.escalator = Escalator(config, store, escalator_settings)
    if role in ("all", "bot"):
        answers = Answers(config, store, runtime.probed)
        runtime.frontends = command_frontends(config, answers, _chatops(runtime))
    watcher = runtime.watcher
    runtime.health = Health(
        store=store,
        role=role,
        leader=(lambda: watcher.leader) if watcher else (lambda: False),
        buffered=(lambda: watcher.buffered) if watcher else (lambda: 0),
    )
    runtime.health.extra["instance"] = lambda: runtime.instance
    if watcher is not None:
        runtime.health.extra["sources_owned"] = lambda: watcher.sources_owned
        if watcher.shards is not None:
            shards = watcher.shards
            runtime.health.extra["shards"] = lambda: {
                "providers": len(shards.owned),
                "members": len(shards.members),
            }
    history = runtime.history
    if history is not None:
        runtime.health.extra["history"] = lambda: {"leader": history.leader}
    escalator = runtime.escalator
    if escalator is not None:
        runtime.health.extra["escalator"] = lambda: {
            "leader": escalator.leader,
            "pending": len(escalator.pending),
        }
    return runtime


def _chatops(runtime: Runtime) -> ChatOps:
    """One :class:`ChatOps` per process (the bot's buttons and the notifier's clock)."""
    if runtime.chatops is None:
        configured = configured_routes(runtime.targets)
        runtime.chatops = ChatOps(runtime.config, runtime.store, configured=configured)
    return runtime.chatops


async def run(runtime: Runtime, stop: asyncio.Event) -> None:
    """Run every part of the runtime until ``stop`` is set; then shut down cleanly."""
    config = runtime.config
    try:
        # Listen first: while Redis is not there yet, /healthz answers (degraded) and
        # /readyz says 503, so an orchestrator sees a live process that waits, not a dead one.
        if config.server.enabled and runtime.health is not None:
            extra = [route for frontend in runtime.frontends for route in frontend.routes()]
            app = build_app(config, runtime.store, runtime.health, extra)
            try:
                runtime.runner = await start_server(app, config.server.host, config.server.port)
            except OSError as exc:
                where = f"{config.server.host}:{config.server.port}"
                raise ListenError(f"cannot listen on {where}: {exc.strerror or exc}") from exc
        await _open_store(runtime, stop)
        await _claim_instance(runtime, stop)
        for frontend in runtime.frontends:
            await frontend.start()
        if runtime.watcher is not None:
            runtime.tasks.append(asyncio.create_task(runtime.watcher.run(stop), name="watcher"))
        if runtime.witness is not None:
            runtime.tasks.append(asyncio.create_task(runtime.witness.run(stop), name="witness"))
        if runtime.dispatcher is not None:
            runtime.tasks.append(
                asyncio.create_task(runtime.dispatcher.run(stop), name="dispatcher")
            )
        if runtime.escalator is not None:
            runtime.tasks.append(asyncio.create_task(runtime.escalator.run(stop), name="escalator"))
        if runtime.history is not None:
            runtime.tasks.append(asyncio.create_task(runtime.history.run(stop), name="history"))
        if runtime.reminders is not None:
            runtime.tasks.append(asyncio.create_task(runtime.reminders.run(stop), name="reminders"))
        await stop.wait()
    finally:
        await _shutdown(runtime)


async def _open_store(runtime: Runtime, stop: asyncio.Event) -> None:
    """Connect, waiting (and saying so) while Redis is not there yet."""
    warned = False
    while not stop.is_set():
        try:
            await runtime.store.open()
            return
        except StoreUnavailable as exc:
            if not warned:
                log.warning("waiting for the store", error=str(exc))
                warned = True
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)


async def _claim_instance(runtime: Runtime, stop: asyncio.Event) -> None:
    """Take this process's consumer name, unless another live process has it (then run under
    a derived one), and keep the presence record that says so to the next one.

    Only a notifier reads under its name, and only a shared store has other processes."""
    if runtime.dispatcher is None or not runtime.store.shared:
        return
    presence = Presence(runtime.store, runtime.identity, runtime.config.store.lease)
    while not stop.is_set():
        try:
            runtime.instance = await presence.claim(stop)
            break
        except StoreUnavailable as exc:
            log.warning("store unreachable; waiting to claim the instance name", error=str(exc))
            await sleep_unless(stop, 1.0)
    if runtime.instance == runtime.identity.name:
        runtime.tasks.append(asyncio.create_task(presence.keep(stop), name="presence"))
    dispatcher = runtime.dispatcher
    dispatcher.settings = dataclasses.replace(dispatcher.settings, consumer=runtime.instance)


async def _shutdown(runtime: Runtime) -> None:
    for frontend in runtime.frontends:
        with suppress(Exception):
            await frontend.stop()
    for task in runtime.tasks:
        with suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(task, 10)
    if runtime.runner is not None:
        await runtime.runner.cleanup()
    notifiers = {id(t.notifier): t.notifier for t in runtime.targets}
    for notifier in notifiers.values():
        with suppress(Exception):
            await notifier.close()
    await runtime.store.close()
