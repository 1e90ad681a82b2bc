"""A scripted 90-day history with figures that can be worked out by hand (issue 16).

Three providers, the clock at ``NOW`` (noon of "today", which is yesterday's UTC date), every
event folded by the real recorder (:class:`bot.history.recorder.HistoryRecorder`) into a real
store:

- ``acme``: up from day -89 00:00 UTC, with three outages:
  1. day -60 10:00 major outage, our probe first; the page confirms at 10:12; back at 11:00
     (60 min down, detection lead 12 min, page lag 12 min);
  2. day -20 08:00 degraded, confirmed by the page at once (no lead), 08:30 partial outage,
     back at 09:30 (30 min degraded + 60 min down, lag 0);
  3. day -1 23:30 major outage, probe first, page at 23:40; back at day 0 00:30: one hour
     across midnight (30 min on each day; lead 10 min, lag 10 min).
- ``zeta``: up from day -89, maintenance on day -10 from 02:00 to 04:00.
- ``newco``: first seen 5 days ago (day -5 00:00); nothing before that is measured.

Hand-worked: acme's last 30 days (days -29 … today until 12:00) measure 29.5 days = 2,548,800 s,
of which 30 + 60 + 60 = 150 min = 9,000 s are not up: uptime 1 - 9000/2548800 = 99.6469 %.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from bot.history.recorder import HistoryRecorder, RecorderSettings
from bot.models import Event, EventIncident, Status, utcnow
from bot.store import Store

#: "Today" is yesterday's UTC date, so ``NOW`` (its noon) is always in the past and the
#: store's own expiry (by the real clock) keeps every record of the script.
TODAY = datetime.combine((utcnow() - timedelta(days=1)).date(), time(), UTC)
NOW = TODAY + timedelta(hours=12)
PROVIDERS = {"acme": "Acme AI", "zeta": "Zeta AI", "newco": "NewCo"}
#: acme's 30-day uptime, worked out by hand (see the module's docstring).
ACME_UPTIME_30D = 1 - 9000 / 2_548_800
#: Titles of acme's incidents as the page named them (hostile text is the browser tests').
INCIDENT_TITLES = (
    "Elevated errors on the API",
    "Degraded performance for Claude models",
    "Outage across all models",
)


def day(offset: int, hour: int = 0, minute: int = 0) -> datetime:
    return TODAY + timedelta(days=offset, hours=hour, minutes=minute)


@dataclass(frozen=True, slots=True)
class Step:
    at: datetime
    provider: str
    status: Status
    episode: str | None = None
    started: datetime | None = None
    confirmed: bool = False
    source: str = "page"
    incident: int | None = None
    update: str = ""


def _episode(provider: str, started: datetime) -> str:
    return f"{provider}:{started:%Y%m%dT%H%M%SZ}:script"


def steps() -> list[Step]:
    one, two, three = day(-60, 10), day(-20, 8), day(-1, 23, 30)
    e1, e2, e3 = _episode("acme", one), _episode("acme", two), _episode("acme", three)
    maint = day(-10, 2)
    return sorted(
        [
            Step(day(-89), "acme", Status.OPERATIONAL),
            Step(day(-89), "zeta", Status.OPERATIONAL),
            Step(day(-5), "newco", Status.OPERATIONAL),
            # 1: probe first, page 12 minutes later
            Step(one, "acme", Status.MAJOR_OUTAGE, e1, one, source="probe"),
            Step(
                one + timedelta(minutes=12),
                "acme",
                Status.MAJOR_OUTAGE,
                e1,
                one,
                confirmed=True,
                incident=0,
                update="We are investigating elevated errors.",
            ),
            Step(day(-60, 11), "acme", Status.OPERATIONAL, e1, one, confirmed=True, incident=0),
            # 2: the page first
            Step(two, "acme", Status.DEGRADED, e2, two, confirmed=True, incident=1),
            Step(
                day(-20, 8, 30),
                "acme",
                Status.PARTIAL_OUTAGE,
                e2,
                two,
                confirmed=True,
                incident=1,
                update="Some models fail.",
            ),
            Step(day(-20, 9, 30), "acme", Status.OPERATIONAL, e2, two, confirmed=True, incident=1),
            # 3: across midnight
            Step(three, "acme", Status.MAJOR_OUTAGE, e3, three, source="probe"),
            Step(
                day(-1, 23, 40), "acme", Status.MAJOR_OUTAGE, e3, three, confirmed=True, incident=2
            ),
            Step(day(0, 0, 30), "acme", Status.OPERATIONAL, e3, three, confirmed=True, incident=2),
            # zeta's planned work
            Step(maint, "zeta", Status.MAINTENANCE, _episode("zeta", maint), maint, True),
            Step(day(-10, 4), "zeta", Status.OPERATIONAL, _episode("zeta", maint), maint, True),
        ],
        key=lambda s: s.at,
    )


def event(step: Step, index: int) -> Event:
    incident = (
        EventIncident(
            id=f"inc-{step.incident}",
            title=INCIDENT_TITLES[step.incident],
            url=f"https://status.example.com/incidents/inc-{step.incident}",
            status="resolved" if step.status is Status.OPERATIONAL else "investigating",
            update=step.update,
        )
        if step.incident is not None
        else None
    )
    return Event(
        id=f"script-{index:03d}",
        type="state_changed",
        provider=step.provider,
        provider_name=PROVIDERS[step.provider],
        component="api",
        to=step.status,
        at=step.at,
        source=f"{step.provider}:{step.source}",
        confirmed=step.confirmed,
        incident=incident,
        episode=step.episode,
        episode_started=step.started,
        provider_status=step.status,
    )


def events() -> list[Event]:
    return [event(step, index) for index, step in enumerate(steps())]


async def write_scripted_history(store: Store, *, until: datetime | None = None) -> int:
    """Fold the script's events (up to ``until``) into ``store`` with the real recorder;
    returns how many were folded."""
    recorder = HistoryRecorder(store, RecorderSettings(instance="script"))
    await recorder.load()
    folded = 0
    for made in events():
        if until is not None and made.at > until:
            break
        await recorder.fold(made)
        folded += 1
    return folded
