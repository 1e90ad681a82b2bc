"""What grouping by likely cause costs: how long until the root notice is out, for

(a) an outage without an upstream cause (never waits: the floor),
(b) one provider whose outage has a cause (waits ``group_wait`` for others, finds none),
(c) three providers with one cause, appended ``--spread`` seconds apart (one group root),

each from the moment its first event is appended to the store to the moment its root is
delivered. Runs the real notifier role (``assemble`` with the config's ``grouping``, the
dispatcher and its pipeline, the embedded store, the console notifier writing to a buffer);
the three cases run side by side in each trial, in one target's queue, as they would in an
incident (so (a) also shows that a waiting group does not hold it up).

    python bench/grouping.py --trials 3               # the default group_wait (15 s)
    python bench/grouping.py --group-wait 5 --trials 5
"""

from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import sys
import time
import uuid
from pathlib import Path

from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.figures import machine, pct
from bot.app import assemble, run
from bot.logs import configure
from bot.models import Event, EventCause, StateUpdate
from bot.notifier import Target
from bot.store import MemoryStore
from config.loader import build_config
from config.schema import GroupingConfig
from handlers.console import targets as console_targets
from tests.outages import outage

PROVIDERS = {
    "plain": "Plain AI",  # (a)
    "lone": "Lone AI",  # (b)
    "first": "First AI",  # (c)
    "second": "Second AI",
    "third": "Third AI",
}


def down(provider: str, cause: EventCause | None) -> StateUpdate:
    """An outage as the watcher writes it: the state and its event, together."""
    return outage(provider, PROVIDERS[provider], cause)


def cause(incident: str) -> EventCause:
    return EventCause(
        upstream="cloudflare",
        name="Cloudflare",
        incident="Elevated errors on the edge network",
        url="https://www.cloudflarestatus.com/incidents/" + incident,
        group=f"cloudflare:{incident}",
    )


async def trials(args: argparse.Namespace) -> dict[str, list[float]]:
    config = build_config(
        {
            "server": {"enabled": False},
            "providers": [
                {"id": p, "name": name, "probe": {"url": "http://127.0.0.1:9/"}}
                for p, name in PROVIDERS.items()
            ],
            "grouping": {"group_wait": f"{args.group_wait}s"},
        }
    )
    store = MemoryStore()
    screen = Console(file=io.StringIO(), width=120)
    runtime = assemble(
        config, "notifier", store=store, targets=console_targets(config, console=screen), env={}
    )
    assert runtime.dispatcher is not None
    delivered: dict[str, float] = {}

    async def seen(event: Event, _: Target, outcome: str) -> None:
        if outcome == "delivered":
            delivered.setdefault(event.id, time.perf_counter())

    runtime.dispatcher.on_outcome = seen
    stop = asyncio.Event()
    task = asyncio.create_task(run(runtime, stop))
    await asyncio.sleep(0.5)  # the consumer group exists and is read
    found: dict[str, list[float]] = {"a": [], "b": [], "c": [], "c_last": []}
    for trial in range(args.trials):
        shared = cause(f"c{trial}-{uuid.uuid4().hex[:6]}")
        cases = {
            "a": [down("plain", None)],
            "b": [down("lone", cause(f"b{trial}-{uuid.uuid4().hex[:6]}"))],
            "c": [down(p, shared) for p in ("first", "second", "third")],
        }
        appended: dict[str, list[float]] = {k: [] for k in cases}
        for key in ("a", "b"):
            appended[key].append(time.perf_counter())
            await store.apply(cases[key])
        for n, update in enumerate(cases["c"]):
            if n:
                await asyncio.sleep(args.spread / 2)
            appended["c"].append(time.perf_counter())
            await store.apply([update])
        ids = {k: [u.event.id for u in v if u.event is not None] for k, v in cases.items()}
        deadline = time.perf_counter() + args.group_wait * 3 + 30
        while not all(any(i in delivered for i in ids[k]) for k in ids):
            if time.perf_counter() > deadline:
                raise SystemExit(f"trial {trial + 1}: a root never came")
            await asyncio.sleep(0.005)
        for key in cases:
            at = min(delivered[i] for i in ids[key] if i in delivered)
            found[key].append(at - appended[key][0])
        found["c_last"].append(found["c"][-1] - (appended["c"][-1] - appended["c"][0]))
        print(
            f"  trial {trial + 1:>2}: (a) {found['a'][-1]:7.3f}s  (b) {found['b'][-1]:7.3f}s  "
            f"(c) {found['c'][-1]:7.3f}s"
        )
    stop.set()
    await task
    shown = screen.file.getvalue()  # type: ignore[attr-defined]
    roots, grouped = shown.count("NEW ·"), shown.count("3 providers down")
    print(
        f"  roots printed: {roots}, of which group roots listing three: {grouped} "
        f"(expected {3 * args.trials} and {args.trials})"
    )
    return found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    default_wait = GroupingConfig().group_wait
    parser.add_argument(
        "--group-wait",
        type=float,
        default=default_wait,
        help=f"grouping.group_wait in seconds (default: the config's, {default_wait:g})",
    )
    parser.add_argument(
        "--spread",
        type=float,
        default=None,
        help="seconds from the first to the third of (c) (default: 2, at most group_wait / 2)",
    )
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args()
    if args.spread is None:
        args.spread = min(2.0, args.group_wait / 2)
    configure("error")
    print(
        f"grouping delay: {args.trials} trials, group_wait {args.group_wait:g}s, "
        f"(c) spread over {args.spread:g}s"
    )
    print(f"machine: {machine()}")
    found = asyncio.run(trials(args))
    print()
    print(f"{'first event appended → root delivered':52}{'median':>10}{'p95':>10}")
    for key, label in (
        ("a", "(a) outage without a cause"),
        ("b", "(b) one provider with a cause"),
        ("c", "(c) three providers, one cause (from the first)"),
        ("c_last", "    … from the third (last) event"),
    ):
        values = found[key]
        print(f"{label:52}{statistics.median(values):>9.3f}s{pct(values, 0.95):>9.3f}s")
    extra = statistics.median(found["b"]) - statistics.median(found["a"])
    print()
    over = extra - args.group_wait
    print(
        f"what a cause costs a root: group_wait {args.group_wait:g}s + {over:.3f}s "
        "(median (b) - median (a) - group_wait)"
    )


if __name__ == "__main__":
    main()
