"""The ``tocsin`` command (typer + rich).

Exit codes: 0 fine, 1 a watched provider is at or above ``--fail-on`` (``check``) or a drill
failed, 2 a bad config or bad arguments, 3 ``check`` cannot tell (a watched component is
``unknown`` and nothing is down: a broken source must not look green to a script). Every
command takes ``--config FILE`` (default: ``$TOCSIN_CONFIG``, else ``./tocsin.yaml`` if
present, else the built-in defaults).

Everything shown that tocsin did not write (names and details from status pages, the store,
the config file) goes through :func:`_shown`: Rich markup in a component name is text.
"""

from __future__ import annotations

import asyncio
import difflib
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bot.models import SEVERITY_ORDER, Event, ProbeError, Status, utcnow, worst
from bot.outside import one_line
from config.durations import humanize, parse_duration

# What each command needs is imported inside it (issue 17): ``tocsin --help``, ``config
# validate`` and ``check`` must not pay for the chat platforms, the server, the scheduler or
# the store clients they never use (tests/test_startup.py says which each one may import).
if TYPE_CHECKING:
    from bot import app as runtime_app
    from bot.chatops.records import Silence, Subscription
    from bot.escalation import Pending
    from bot.history.queries import ReportRow
    from bot.models import ComponentState, Observation
    from bot.sources import SkippedProbe
    from bot.sources.source import Source
    from config.loader import ConfigError
    from config.schema import TocsinConfig

app = typer.Typer(
    name="tocsin",
    help="Incident alerting for AI-provider outages: faster than the status pages.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Work with config files.", no_args_is_help=True)
app.add_typer(config_app, name="config")


def _console(*, stderr: bool = False) -> Console:
    """Lines and tables; never wrapped when piped (CI logs, grep), so a path or a URL in an
    error message stays whole."""
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else 4000
    return Console(stderr=stderr, highlight=False, soft_wrap=True, width=width)


out = _console()
err = _console(stderr=True)
#: ``config.loader.ROLE_ENV``, spelled here so that registering ``run`` imports no config
#: models (tests/test_startup.py checks that the two agree).
ROLE_ENV = "TOCSIN_ROLE"

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Config file (default: $TOCSIN_CONFIG, else ./tocsin.yaml, else built-in defaults).",
        show_default=False,
    ),
]
DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="The embedded store's directory, without store.url (default: $TOCSIN_DATA_DIR, "
        "else store.data_dir, else ./tocsin-data; 'memory': keep nothing on disk).",
        show_default=False,
    ),
]
SEVERITIES = [s.value for s in SEVERITY_ORDER]
#: ``check``'s exit code when it cannot tell (a watched component is unknown, nothing down).
CANNOT_TELL = 3
#: How much of an outside name or detail a table cell shows.
NAME_MAX, DETAIL_MAX = 200, 500


def _shown(text: object, limit: int = NAME_MAX) -> str:
    """A string from outside, for Rich: one line (no control or bidi characters), clipped,
    its markup escaped (``[/]`` or ``[bold red]`` in a component name is printed as is)."""
    return escape(one_line(text, limit))


def _load(path: Path | None) -> TocsinConfig:
    from config.loader import ConfigError, load_config, resolve_path

    resolved = resolve_path(path)
    try:
        return load_config(resolved)
    except ConfigError as exc:
        _print_config_errors(exc)
        raise typer.Exit(2) from None


def _with_data_dir(cfg: TocsinConfig, data_dir: Path | None) -> TocsinConfig:
    """``--data-dir`` wins over the file and the environment."""
    if data_dir is None:
        return cfg
    store = cfg.store.model_copy(update={"data_dir": str(data_dir)})
    return cfg.model_copy(update={"store": store})


def _print_config_errors(exc: ConfigError) -> None:
    err.print(f"[bold red]error:[/] {_shown(exc.source, DETAIL_MAX)} is not a valid tocsin config:")
    for line in exc.errors:
        err.print(f"  {line}", markup=False)


def _status_text(status: Status) -> str:
    from handlers.console_style import STYLE

    return f"[{STYLE[status]}]{status.value}[/]"


# --------------------------------------------------------------------------- run


@app.command()
def run(
    config: ConfigOption = None,
    role: Annotated[
        str,
        typer.Option(
            help="What this process does: all | watcher | notifier | bot.", envvar=ROLE_ENV
        ),
    ] = "all",
    data_dir: DataDirOption = None,
) -> None:
    """Watch the providers and deliver notices until stopped (Ctrl-C or SIGTERM)."""
    if role not in ("all", "watcher", "notifier", "bot"):
        err.print(
            "[bold red]error:[/] --role must be all, watcher, notifier or bot, "
            f"not {_shown(repr(role))}"
        )
        raise typer.Exit(2)
    from bot import app as runtime_app
    from bot.logs import configure
    from bot.store import StoreRefused

    cfg = _with_data_dir(_load(config), data_dir)
    configure(cfg.log.level, cfg.log.format)
    runtime_app.register_config_secrets(cfg)
    try:
        asyncio.run(_run(cfg, role))  # type: ignore[arg-type]
    except StoreRefused as exc:
        err.print(f"[bold red]error:[/] {_shown(exc, 4000)}")
        raise typer.Exit(1) from None
    except runtime_app.ListenError as exc:
        err.print(
            f"[bold red]error:[/] {_shown(exc, DETAIL_MAX)}. Set server.port (or "
            "TOCSIN_SERVER_PORT) to a free port, or server.enabled: false."
        )
        raise typer.Exit(1) from None


async def _run(cfg: TocsinConfig, role: runtime_app.Role) -> None:
    import signal

    from bot import app as runtime_app

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runtime = runtime_app.assemble(cfg, role)
    _banner(runtime)
    await runtime_app.run(runtime, stop)
    out.print("[dim]tocsin stopped.[/]")


def _banner(runtime: runtime_app.Runtime) -> None:
    from bot.store import embedded_path

    cfg = runtime.config
    names = ", ".join(p.id for p in cfg.providers)
    path = embedded_path(cfg.store)
    if cfg.store.url:
        store = f"redis ({_redact_url(cfg.store.url.get_secret_value())})"
    elif path is not None:
        store = f"embedded ({path}: one process; set store.url or REDIS_URL to share it)"
    else:
        store = "embedded (in memory: forgotten on exit; set store.data_dir to keep it)"
    count = f"{len(cfg.providers)} provider{'s' if len(cfg.providers) != 1 else ''}"
    targets = ", ".join(t.key for t in runtime.targets) or "nowhere"
    out.print(f"[bold]tocsin[/] {runtime.role} · watching {count}: {_shown(names, 4000)}")
    out.print(f"  store: {_shown(store, DETAIL_MAX)}")
    out.print(f"  notices to: {_shown(targets, 4000)}")
    if cfg.server.enabled:
        out.print(f"  dashboard: {_shown(f'http://{cfg.server.host}:{cfg.server.port}/')}")
    for skipped in runtime.plan.skipped:
        out.print(
            f"  [yellow]probe off[/] for {_shown(skipped.provider)}: "
            f"{_shown(skipped.reason, DETAIL_MAX)}"
        )


def _redact_url(url: str) -> str:
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.split('@', 1)[1]}"


# -------------------------------------------------------------------------- check


@app.command()
def check(
    providers: Annotated[
        list[str] | None, typer.Argument(help="Provider ids to check (default: all watched).")
    ] = None,
    fail_on: Annotated[
        str, typer.Option(help=f"Exit 1 at or above this status: {', '.join(SEVERITIES)}.")
    ] = Status.PARTIAL_OUTAGE.value,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="JSON instead of the table: every component with its status, source, detail "
            "and incident, and each provider's verdict.",
        ),
    ] = False,
    config: ConfigOption = None,
) -> None:
    """One round of every source now: a table; exit 1 if a provider is at or above --fail-on,
    3 if a watched component is unknown and nothing is down (a broken source is not green)."""
    if fail_on not in SEVERITIES:
        err.print(f"[bold red]error:[/] --fail-on must be one of {', '.join(SEVERITIES)}")
        raise typer.Exit(2)
    from bot.logs import configure
    from bot.secret_values import register_config_secrets
    from bot.sources import build_sources

    cfg = _load(config)
    configure("warning", cfg.log.format)
    register_config_secrets(cfg)
    chosen = _choose(cfg, providers or [])
    plan = build_sources(cfg)
    wanted = set(chosen or cfg.provider_ids)  # upstream pages only ever name a cause
    plan.sources[:] = [s for s in plan.sources if s.provider in wanted]
    observations = asyncio.run(_check_round(cfg, plan.sources))
    threshold = Status(fail_on)
    rounds = [
        _provider_round(cfg, provider_id, observations, plan.skipped, threshold)
        for provider_id in chosen or cfg.provider_ids
    ]
    code = _check_exit_code(rounds)
    if as_json:
        sys.stdout.write(json.dumps(_check_document(rounds, threshold, code), indent=2) + "\n")
    else:
        out.print(_check_table(rounds))
    raise typer.Exit(code)


def _choose(cfg: TocsinConfig, wanted: Sequence[str]) -> list[str]:
    ids = cfg.provider_ids
    for name in wanted:
        if name not in ids:
            close = difflib.get_close_matches(name, ids, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            err.print(
                f"[bold red]error:[/] unknown provider {_shown(repr(name))}{_shown(hint)}. "
                f"Watched: {_shown(', '.join(ids), 4000)}"
            )
            raise typer.Exit(2)
    return list(wanted)


async def _check_round(cfg: TocsinConfig, sources: Sequence[Source]) -> list[Observation]:
    from bot.checks import WatcherSettings, check_all, make_client

    settings = WatcherSettings(
        instance="check", timeout=cfg.watch.timeout, user_agent=cfg.watch.user_agent
    )
    async with make_client(settings) as client:
        return await check_all(sources, client)


@dataclass(frozen=True)
class ProviderRound:
    """One provider's readings from one ``check`` round, and what they add up to."""

    id: str
    name: str
    status: Status
    observations: list[Observation]
    skipped: list[str]
    #: At or above ``--fail-on``, and an outage.
    down: bool
    #: Components no reading could tell about (the provider itself when nothing was read).
    unknown: list[str]

    @property
    def verdict(self) -> str:
        if self.down:
            return "down"
        return "cannot_tell" if self.unknown else "ok"


def _provider_round(
    cfg: TocsinConfig,
    provider_id: str,
    observations: Sequence[Observation],
    skipped: Sequence[SkippedProbe],
    threshold: Status,
) -> ProviderRound:
    provider = cfg.provider(provider_id)
    mine = [o for o in observations if o.provider == provider_id]
    status = _round_status(mine)
    components = dict.fromkeys(o.component for o in mine)
    unknown = [c for c in components if not any(_tells(o) for o in mine if o.component == c)]
    return ProviderRound(
        id=provider_id,
        name=provider.name if provider else provider_id,
        status=status,
        observations=mine,
        skipped=[s.reason for s in skipped if s.provider == provider_id],
        down=status.severity >= threshold.severity and status.is_outage,
        unknown=unknown if mine else [provider_id],
    )


def _tells(observation: Observation) -> bool:
    """Does this reading say how the component is? A probe's own misconfiguration does not;
    a 429 does (the provider answered: it is up)."""
    if observation.error is ProbeError.RATE_LIMITED:
        return True
    if observation.error is not None and observation.error.is_config:
        return False
    return observation.status is not Status.UNKNOWN


def _check_exit_code(rounds: Sequence[ProviderRound]) -> int:
    """Down wins over cannot-tell: a script must hear about an outage first."""
    if any(r.down for r in rounds):
        return 1
    return CANNOT_TELL if any(r.unknown for r in rounds) else 0


def _check_table(rounds: Sequence[ProviderRound]) -> Table:
    table = Table(title="tocsin check", title_justify="left")
    for column in ("Provider", "Status", "Components", "Notes"):
        table.add_column(column)
    for r in rounds:
        names = {o.component: o.component_name for o in r.observations if o.component_name}
        components = "\n".join(
            f"{_shown(names.get(o.component, o.component))} "
            f"({_shown(o.source.split(':')[-1])}): {o.status.value}"
            + (f", {o.latency_ms:.0f} ms" if o.latency_ms is not None else "")
            for o in r.observations
        )
        notes = [_shown(o.detail, DETAIL_MAX) for o in r.observations if o.detail]
        notes += [
            f"incident: {_shown(o.incident.title)} ({_shown(o.incident.status)})"
            for o in r.observations
            if o.incident
        ]
        notes += [_shown(reason, DETAIL_MAX) for reason in r.skipped]
        table.add_row(
            _shown(r.name),
            _status_text(r.status),
            components or "-",
            "\n".join(dict.fromkeys(notes)),
        )
    return table


def _check_document(
    rounds: Sequence[ProviderRound], threshold: Status, code: int
) -> dict[str, Any]:
    """``check --json``: plain JSON (strings escaped by the encoder, no Rich markup)."""
    verdicts = {r.verdict for r in rounds}
    verdict = next((v for v in ("down", "cannot_tell") if v in verdicts), "ok")
    return {
        "verdict": verdict,
        "exit_code": code,
        "fail_on": threshold.value,
        "checked_at": utcnow().isoformat(),
        "providers": [
            {
                "id": r.id,
                "name": r.name,
                "status": r.status.value,
                "verdict": r.verdict,
                "unknown": r.unknown,
                "components": [_observation_document(o) for o in r.observations],
                "skipped": r.skipped,
            }
            for r in rounds
        ],
    }


def _observation_document(o: Observation) -> dict[str, Any]:
    return {
        "id": o.component,
        "name": o.component_name,
        "status": o.status.value,
        "source": o.source,
        "kind": o.kind.value,
        "latency_ms": o.latency_ms,
        "detail": o.detail,
        "error": o.error.value if o.error is not None else None,
        "incident": o.incident.model_dump(mode="json") if o.incident is not None else None,
    }


def _round_status(observations: Sequence[Observation]) -> Status:
    """A provider's status from one round: config errors of probes do not count as down."""
    counted = [o.status for o in observations if not (o.error is not None and o.error.is_config)]
    known = [s for s in counted if s is not Status.UNKNOWN]
    if not known and any(o.error is ProbeError.RATE_LIMITED for o in observations):
        return Status.OPERATIONAL
    return worst(known) if known else Status.UNKNOWN


# ------------------------------------------------------------------------- status


@app.command()
def status(config: ConfigOption = None, data_dir: DataDirOption = None) -> None:
    """What the store holds now: Redis, or the embedded store's file (read, not changed)."""
    from bot.logs import configure
    from bot.queries import provider_rows
    from bot.secret_values import register_config_secrets
    from bot.store import StoreRefused, StoreUnavailable, embedded_path

    cfg = _with_data_dir(_load(config), data_dir)
    configure("warning", cfg.log.format)  # what the store says of bad values: stderr
    register_config_secrets(cfg)
    path = embedded_path(cfg.store)
    if not cfg.store.url and (path is None or not path.is_file()):
        where = "lives inside a running tocsin" if path is None else f"has no file at {path} yet"
        out.print(
            f"The embedded store {_shown(where, DETAIL_MAX)}: there is nothing to read from "
            "here.\nSet store.url (or REDIS_URL) to share state, or open the dashboard of a "
            f"running tocsin at http://{cfg.server.host}:{cfg.server.port}/"
        )
        raise typer.Exit(0)
    try:
        states, pending, silences, subscriptions = asyncio.run(_read_states(cfg))
    except (StoreUnavailable, StoreRefused) as exc:
        err.print(f"[bold red]error:[/] {_shown(exc, DETAIL_MAX)}")
        raise typer.Exit(1) from None
    table = Table(title="tocsin status", title_justify="left")
    for column in ("Provider", "Status", "Since", "Components", "Incident"):
        table.add_column(column)
    for row in provider_rows(cfg, states):
        since = humanize((utcnow() - row.since).total_seconds()) + " ago" if row.since else "-"
        table.add_row(
            _shown(row.name),
            _status_text(row.status)
            + (
                ""
                if not row.status.is_outage
                else (" (confirmed)" if row.confirmed else " (suspected)")
            ),
            since,
            "\n".join(f"{_shown(c.display_name)}: {c.status.value}" for c in row.components)
            or "no data",
            f"{_shown(row.incident.title)} ({_shown(row.incident.status)})" if row.incident else "",
        )
    out.print(table)
    if pending:
        out.print(_escalations_table(cfg, pending))
    if silences or subscriptions:
        out.print(_chat_table(silences, subscriptions))


def _chat_table(silences: list[Silence], subscriptions: list[Subscription]) -> Table:
    """(issue 15) What people set from the chat: silences in force, and subscriptions."""
    table = Table(title="from the chat", title_justify="left")
    for column in ("Kind", "Where", "Provider", "Until", "By"):
        table.add_column(column)
    for silence in silences:
        until = silence.until.strftime("%Y-%m-%d %H:%M UTC") if silence.until else "resolved"
        table.add_row(
            "silence",
            _shown(silence.target),
            _shown(silence.provider),
            until,
            _shown(silence.by.name),
        )
    for sub in subscriptions:
        until = sub.until.strftime("%Y-%m-%d %H:%M UTC") if sub.until else "-"
        table.add_row(
            f"subscription ({sub.min_status.value})",
            _shown(sub.target),
            _shown(sub.provider),
            until,
            _shown(sub.by.name),
        )
    return table


def _escalations_table(cfg: TocsinConfig, pending: list[Pending]) -> Table:
    """Pages waiting for their policy's ``after``, and pages sent and not yet resolved."""
    table = Table(title="escalations", title_justify="left")
    for column in ("Policy", "Provider", "At or above since", "Page"):
        table.add_column(column)
    now = utcnow()
    for item in pending:
        policy = cfg.policy(item.policy)
        if item.acknowledged:
            page = "acknowledged from the chat" + (
                f" ({_shown(item.dedup_key)})" if item.paged_at else ""
            )
        elif item.paged_at is not None:
            page = (
                f"sent {humanize((now - item.paged_at).total_seconds())} ago "
                f"({_shown(item.dedup_key)})"
            )
        elif policy is not None:
            due_at = item.since + timedelta(seconds=policy.after)
            left = max(0.0, (due_at - now).total_seconds())
            page = f"waiting: due in {humanize(left)}" if left else "due now"
        else:
            page = "policy no longer configured"
        table.add_row(
            _shown(policy.label if policy else item.policy),
            _shown(item.provider),
            humanize((now - item.since).total_seconds()) + " ago",
            page,
        )
    return table


async def _read_states(
    cfg: TocsinConfig,
) -> tuple[dict[str, ComponentState], list[Pending], list[Silence], list[Subscription]]:
    from bot.chatops.actions import active_silences
    from bot.chatops.records import SUBSCRIPTIONS, Subscription, read_records
    from bot.escalation import pending_escalations
    from bot.store import make_store

    store = make_store(cfg.store, readonly=True)
    try:
        await store.open()
        now = utcnow()
        silences = await active_silences(store, now)
        raw = await store.records(SUBSCRIPTIONS)
        found = read_records(Subscription, SUBSCRIPTIONS, raw, now).values()
        subscriptions = sorted((s for s in found if s.active(now)), key=lambda s: s.target)
        pending = await pending_escalations(store)
        return dict(await store.states()), pending, silences, subscriptions
    finally:
        await store.close()


@app.command()
def report(
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    since: Annotated[
        str, typer.Option("--since", help="How far back: 30d (whole UTC days, today included).")
    ] = "30d",
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV instead of a table.")] = False,
) -> None:
    """Per provider: uptime, incidents, downtime, MTTR, median detection lead and page lag
    (from the history in Redis, or in the embedded store's file)."""
    from bot import report as report_shapes
    from bot.logs import configure
    from bot.secret_values import register_config_secrets
    from bot.store import StoreRefused, StoreUnavailable, embedded_path

    cfg = _with_data_dir(_load(config), data_dir)
    configure("warning", cfg.log.format)
    register_config_secrets(cfg)
    days = _report_days(since)
    if as_json and as_csv:
        err.print("[bold red]error:[/] --json or --csv, not both")
        raise typer.Exit(2)
    path = embedded_path(cfg.store)
    if not cfg.store.url and (path is None or not path.is_file()):
        where = "keeps no history" if path is None else f"has no file at {path} yet"
        err.print(f"The embedded store {_shown(where, DETAIL_MAX)}: nothing to report.")
        raise typer.Exit(1)
    try:
        rows = asyncio.run(_read_report(cfg, days))
    except (StoreUnavailable, StoreRefused) as exc:
        err.print(f"[bold red]error:[/] {_shown(exc, DETAIL_MAX)}")
        raise typer.Exit(1) from None
    if as_json:
        print(report_shapes.as_json(rows, days))
    elif as_csv:
        print(report_shapes.as_csv(rows), end="")
    else:
        out.print(report_shapes.table(rows, days))


def _report_days(since: str) -> int:
    """``--since`` as whole days (1 to 400): ``30d``, ``2w``, ``720h``."""
    from bot.history.model import DAYS_KEPT

    try:
        seconds = parse_duration(since)
    except (TypeError, ValueError):
        err.print(f"[bold red]error:[/] --since is a duration like 30d, not {_shown(since, 40)!r}")
        raise typer.Exit(2) from None
    days = round(seconds / 86_400)
    if not 1 <= days <= DAYS_KEPT:
        err.print(f"[bold red]error:[/] --since is from 1 to {DAYS_KEPT} days")
        raise typer.Exit(2)
    return days


async def _read_report(cfg: TocsinConfig, days: int) -> list[ReportRow]:
    from bot.history.queries import report as history_report
    from bot.store import make_store

    store = make_store(cfg.store, readonly=True)
    try:
        await store.open()
        return await history_report(store, cfg, days=days)
    finally:
        await store.close()


# ------------------------------------------------------------------------- config


@config_app.command("validate")
def config_validate(
    file: Annotated[Path, typer.Argument(help="The config file to check.")],
) -> None:
    """Check a config file: every error with its path; exit 2 if there is any."""
    from bot.probe_cost import inference_cost
    from bot.sources import build_sources
    from bot.store import embedded_path
    from config.loader import ConfigError, load_config

    try:
        cfg = load_config(file)
    except ConfigError as exc:
        _print_config_errors(exc)
        raise typer.Exit(2) from None
    plan = build_sources(cfg)
    out.print(f"[green]✓[/] {_shown(file, DETAIL_MAX)} is valid.")
    out.print(f"  providers: {_shown(', '.join(cfg.provider_ids), 4000)}")
    out.print(f"  sources: {len(plan.sources)} ({len(plan.skipped)} probes off: no key)")
    path = embedded_path(cfg.store)
    shown = "redis" if cfg.store.url else (f"embedded ({path})" if path else "embedded (memory)")
    out.print(f"  store: {_shown(shown, DETAIL_MAX)}")
    cost = inference_cost(cfg)
    if cost.probes:
        out.print(f"  cost: {cost} (a few more calls while a change is being confirmed)")
    for section, lists in _chat_route_counts(cfg).items():
        out.print(f"  {section} " + ", ".join(f"{name}: {count}" for name, count in lists))
    if cfg.escalation:
        out.print(f"  escalation policies: {len(cfg.escalation)}")


def _chat_route_counts(cfg: TocsinConfig) -> dict[str, list[tuple[str, int]]]:
    """Each configured chat platform's route lists and their lengths (``slack``:
    ``[("channels", 2)]``), found by type: a new platform is summed up without a line here."""
    from config.base import route_fields

    counts: dict[str, list[tuple[str, int]]] = {}
    for section in cfg.chat_platforms():
        body = getattr(cfg, section)
        if body is not None:
            counts[section] = [(n, len(getattr(body, n))) for n in route_fields(type(body))]
    return counts


# --------------------------------------------------------------------------- demo


@app.command()
def demo() -> None:
    """A simulated provider goes down, updates and recovers, end to end, in about 30 s."""
    from bot.demo import run_demo
    from bot.logs import configure

    configure("warning")
    asyncio.run(run_demo(Console(highlight=False)))


# -------------------------------------------------------------------------- drill


#: What a drill's target may answer without the drill failing: ``skipped`` is a target that
#: does not take drills (an escalation policy pages for outages only), not a failure.
DRILL_OK = {"delivered": "green", "duplicate": "green", "reconciled": "green", "skipped": "dim"}


@app.command()
def drill(config: ConfigOption = None) -> None:
    """Send a clearly labelled test notice to every target; exit 1 if one fails
    (escalation policies are skipped: a drill pages nobody)."""
    from bot import app as runtime_app
    from bot.logs import configure

    cfg = _load(config)
    configure("warning", cfg.log.format)
    runtime_app.register_config_secrets(cfg)
    outcomes = asyncio.run(_drill(cfg))
    table = Table(title="tocsin drill", title_justify="left")
    table.add_column("Target")
    table.add_column("Result")
    failed = False
    for key, outcome in outcomes.items():
        style = DRILL_OK.get(outcome)
        failed = failed or style is None
        table.add_row(_shown(key), f"[{style or 'red'}]{_shown(outcome)}[/]")
    out.print(table)
    raise typer.Exit(1 if failed else 0)


async def _drill(cfg: TocsinConfig) -> dict[str, str]:
    from bot import app as runtime_app
    from bot.dispatcher import Dispatcher, DispatcherSettings
    from bot.notice_context import NoticeContext
    from bot.store import MemoryStore, make_store

    store = make_store(cfg.store) if cfg.store.url else MemoryStore()
    await store.open()
    try:
        runtime = runtime_app.assemble(cfg, "notifier", store=store)
        grouping = cfg.grouping
        settings = DispatcherSettings(
            consumer="drill",
            grouping=grouping.enabled and "cause" in grouping.group_by,
            group_wait=grouping.group_wait,
        )
        dispatcher = Dispatcher(store, runtime.targets, NoticeContext(cfg, store), settings)
        event = Event(type="drill", provider="tocsin", detail=None)
        outcomes = await dispatcher.deliver_now(event)
        for target in runtime.targets:
            await target.notifier.close()
        return dict(outcomes)
    finally:
        await store.close()


# ------------------------------------------------------------------ slack-manifest


@app.command("slack-manifest")
def slack_manifest(
    http: Annotated[
        str | None,
        typer.Option(
            "--http",
            metavar="URL",
            help="Use HTTP mode: tocsin's public base URL (commands go to URL/slack/events). "
            "Default: Socket Mode (no public URL needed).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of YAML.")] = False,
    name: Annotated[str, typer.Option(help="The app's name in Slack.")] = "tocsin",
) -> None:
    """Print a ready Slack app manifest (scopes, commands, Socket Mode flag)."""
    import yaml

    from handlers.slack.manifest import manifest

    if http is not None and not http.startswith(("https://", "http://")):
        err.print(
            "[bold red]error:[/] --http takes tocsin's public base URL, like https://tocsin.example.com"
        )
        raise typer.Exit(2)
    document = manifest(socket_mode=http is None, url=http, name=name)
    text = json.dumps(document, indent=2) if as_json else yaml.safe_dump(document, sort_keys=False)
    out.print(text, markup=False, highlight=False)


def main() -> None:  # pragma: no cover - console script entry
    app()
