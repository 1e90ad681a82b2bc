"""When sources first run: within 2 s for a few, at about 250 a second for many (a burst of
thousands queued in the HTTP pool cost each check dearly: 5,000 sources took minutes to start),
and a shard gained from another replica on its own phase (not twice in a round)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.schedule import FIRST_ROUND_RATE, Schedule


@dataclass
class Fake:
    id: str
    interval: float = 60.0


async def _never(source: object) -> None:
    raise AssertionError("no job runs in this test")


def _first_runs(schedule: Schedule) -> list[datetime]:
    assert schedule._scheduler is not None
    return sorted(job.next_run_time for job in schedule._scheduler.get_jobs())


async def test_a_few_sources_start_within_two_seconds_many_at_a_bounded_rate() -> None:
    few = Schedule(lambda interval: 0.0)
    few.start([Fake(f"f{n}") for n in range(50)], _never)  # type: ignore[list-item]
    runs = _first_runs(few)
    now = datetime.now().astimezone()
    assert runs[-1] - now <= timedelta(seconds=2.1)
    few.stop()
    many = Schedule(lambda interval: 0.0)
    count = 2000
    many.start([Fake(f"m{n}") for n in range(count)], _never)  # type: ignore[list-item]
    runs = _first_runs(many)
    spread = (runs[-1] - runs[0]).total_seconds()
    expected = count / FIRST_ROUND_RATE  # 8 s
    assert expected * 0.8 <= spread <= expected * 1.05
    first_second = sum(1 for r in runs if r - runs[0] < timedelta(seconds=1))
    assert first_second <= FIRST_ROUND_RATE * 1.5  # no burst
    many.stop()


async def test_a_gained_shard_first_runs_on_its_own_phase() -> None:
    schedule = Schedule(lambda interval: 0.0)
    schedule.start([], _never)
    schedule.add([Fake(f"g{n}", 10.0) for n in range(200)], soon=False)  # type: ignore[list-item]
    runs = _first_runs(schedule)
    now = datetime.now().astimezone()
    assert runs[-1] - now > timedelta(seconds=5)  # across the interval, not within 2 s
    assert schedule.count == 200
    schedule.remove([Fake("g0", 10.0)])  # type: ignore[list-item]
    assert schedule.count == 199
    schedule.stop()
