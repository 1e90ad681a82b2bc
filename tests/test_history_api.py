"""The read API (``/api/v1/...``) and the badges over real HTTP, against the scripted 90-day
history's hand-worked figures (:mod:`tests.history_script`)."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import timedelta
from urllib.parse import quote

import pytest
from defusedxml import ElementTree

from bot.history.model import Cursor, EpisodeIncident, EpisodeRecord
from bot.history_api import CSV_COLUMNS, BadQuery, csv_cell, parse_since
from bot.models import Status
from bot.server import CONTENT_SECURITY_POLICY
from bot.store import Store
from tests.history_script import ACME_UPTIME_30D, NOW, PROVIDERS, day
from tests.test_pages import Served, scripted_config, serving

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE_BADGE_NAME = '<b>"Evil" & co\'s</b>'
FORMULAS = ('=HYPERLINK("http://x")', "@SUM(1)", "+1+1", "-2+3", "\tTAB", "\rCR")


async def formula_fill(store: Store) -> None:
    """An episode of ``zeta`` whose incidents are titled like spreadsheet formulas."""
    started = NOW - timedelta(days=3)
    episode = EpisodeRecord(
        id="=cmd|' /C calc'!A0",
        provider="zeta",
        started=started,
        ended=started + timedelta(minutes=5),
        worst=Status.DEGRADED,
        suspected_at=started,
        suspected_by="@probe",
        confirmed_at=started - timedelta(minutes=2),  # the page was first: a negative lead
        incidents=[EpisodeIncident(id=f"f{i}", title=t) for i, t in enumerate(FORMULAS)],
    )
    cursor = Cursor(status=Status.OPERATIONAL, since=NOW - timedelta(days=1), event_id="f")
    await store.write_history("zeta", {}, cursor, episode)


@pytest.fixture
async def api() -> AsyncIterator[Served]:
    hostile = {"id": "evil", "name": HOSTILE_BADGE_NAME, "probe": {"url": "http://127.0.0.1:9/"}}
    async for one in serving(scripted_config([hostile]), formula_fill):
        yield one


def _days(provider: dict[str, object]) -> dict[str, dict[str, object]]:
    days = provider["days"]
    assert isinstance(days, list)
    return {d["date"]: d for d in days}


async def test_providers_match_the_hand_worked_figures(api: Served) -> None:
    answer = await api.client.get("/api/v1/providers")
    assert answer.status_code == 200
    assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    body = answer.json()
    assert body["generated_at"] == NOW.isoformat()
    providers = {p["id"]: p for p in body["providers"]}
    assert list(providers) == [*PROVIDERS, "evil"]
    acme = providers["acme"]
    assert acme["name"] == "Acme AI"
    assert acme["uptime_30d"] == pytest.approx(ACME_UPTIME_30D, abs=1e-6)
    assert acme["uptime_30d"] == pytest.approx(0.996469, abs=1e-6)
    # 89.5 days measured, 60 + 90 + 60 minutes not up
    assert acme["uptime_90d"] == pytest.approx(1 - 12_600 / (89.5 * 86_400), abs=1e-6)
    assert acme["status"] == "unknown"
    assert acme["confirmed"] is False
    assert acme["open_episode"] is None
    days = _days(acme)
    assert len(days) == 90
    assert list(days)[-1] == NOW.date().isoformat()
    on = lambda offset: days[day(offset).date().isoformat()]  # noqa: E731
    assert on(-60) == {
        "date": day(-60).date().isoformat(),
        "worst": "major_outage",
        "minutes_down": 60,
        "minutes_degraded": 0,
        "incidents": ["Elevated errors on the API"],
    }
    assert (on(-20)["minutes_down"], on(-20)["minutes_degraded"]) == (60, 30)
    assert on(-20)["worst"] == "partial_outage"
    assert (on(-1)["minutes_down"], on(0)["minutes_down"]) == (30, 30)
    assert on(-1)["incidents"] == on(0)["incidents"] == ["Outage across all models"]
    assert on(-30) == {**on(-30), "worst": "operational", "minutes_down": 0, "incidents": []}
    zeta = _days(providers["zeta"])
    assert zeta[day(-10).date().isoformat()]["worst"] == "maintenance"
    assert providers["zeta"]["uptime_30d"] == 1.0  # maintenance is up
    newco = _days(providers["newco"])
    assert newco[day(-6).date().isoformat()]["worst"] is None
    assert newco[day(-5).date().isoformat()]["worst"] == "operational"
    assert providers["newco"]["uptime_30d"] == 1.0
    assert providers["evil"]["uptime_30d"] is None  # nothing measured


async def test_one_provider_has_components_episodes_and_latency(api: Served) -> None:
    body = (await api.client.get("/api/v1/providers/acme")).json()
    acme = body["provider"]
    assert acme["uptime_30d"] == pytest.approx(ACME_UPTIME_30D, abs=1e-6)
    assert acme["components"] == []
    assert acme["latency"] == []
    assert acme["incident"] is None
    newest, middle, oldest = acme["episodes"]
    assert oldest["started"] == day(-60, 10).isoformat()
    assert oldest["ended"] == day(-60, 11).isoformat()
    assert (oldest["duration_s"], oldest["lead_s"], oldest["page_lag_s"]) == (3600, 720, 720)
    assert oldest["worst"] == "major_outage"
    assert oldest["suspected_by"] == "acme:probe"
    assert oldest["suspected_at"] == day(-60, 10).isoformat()
    assert oldest["confirmed_at"] == day(-60, 10, 12).isoformat()
    assert oldest["updates"] == [
        {
            "at": day(-60, 10, 12).isoformat(),
            "status": "investigating",
            "text": "We are investigating elevated errors.",
        }
    ]
    assert oldest["incidents"] == [
        {
            "id": "inc-0",
            "title": "Elevated errors on the API",
            "url": "https://status.example.com/incidents/inc-0",
        }
    ]
    assert (middle["duration_s"], middle["lead_s"], middle["page_lag_s"]) == (5400, None, 0)
    assert middle["worst"] == "partial_outage"
    assert middle["suspected_at"] is None
    assert (newest["duration_s"], newest["lead_s"], newest["page_lag_s"]) == (3600, 600, 600)
    summary = acme["summary_90d"]
    assert summary["episodes"] == 3
    assert summary["downtime_s"] == 3 * 3600  # major, partial, major: an hour each
    assert summary["median_lead_s"] == 660
    assert summary["median_page_lag_s"] == 600
    assert summary["mttr_s"] == pytest.approx((3600 + 5400 + 3600) / 3)


async def test_unknown_provider_is_a_json_404(api: Served) -> None:
    for path in ("/api/v1/providers/nope", "/api/v1/episodes?provider=nope"):
        answer = await api.client.get(path)
        assert answer.status_code == 404, path
        assert answer.json() == {"error": "unknown provider"}
        assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY


async def test_episodes_since_a_date_a_time_or_a_duration(api: Served) -> None:
    async def ids(query: str) -> list[str]:
        answer = await api.client.get(f"/api/v1/episodes?{query}")
        assert answer.status_code == 200, answer.text
        return [e["id"] for e in answer.json()["episodes"]]

    everything = await ids("")
    assert len(everything) == 5  # acme's three, zeta's maintenance and its formulas
    assert await ids("provider=acme&since=30d") == [
        "acme:" + f"{day(-1, 23, 30):%Y%m%dT%H%M%SZ}:script",
        "acme:" + f"{day(-20, 8):%Y%m%dT%H%M%SZ}:script",
    ]
    assert len(await ids("provider=acme&since=2w")) == 1
    assert len(await ids(f"provider=acme&since={day(-61).date().isoformat()}")) == 3
    assert len(await ids(f"provider=acme&since={day(-21, 12).isoformat()}")) == 2  # "+" unencoded
    assert len(await ids(f"provider=acme&since={quote(day(-21, 12).isoformat())}")) == 2
    assert len(await ids("provider=acme&since=" + f"{day(-21, 12):%Y-%m-%dT%H:%M:%S}Z")) == 2
    assert len(await ids("provider=acme&since=2000-01-01")) == 3  # clamped to what is kept
    for bad in ("yesterday", "2025-13-45", "30x", "-30d", "1" * 80, "2025-01-01Tnoon"):
        answer = await api.client.get("/api/v1/episodes", params={"since": bad})
        assert answer.status_code == 400, bad
        assert answer.headers["content-type"].startswith("application/json")
        assert "since" in answer.json()["error"]
        csv_answer = await api.client.get("/api/v1/episodes.csv", params={"since": bad})
        assert csv_answer.status_code == 400


async def test_episodes_csv_has_a_header_and_defuses_formulas(api: Served) -> None:
    answer = await api.client.get("/api/v1/episodes.csv?since=90d")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert "attachment" in answer.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(answer.text)))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == 1 + 5
    by_id = {row[1]: dict(zip(CSV_COLUMNS, row, strict=True)) for row in rows[1:]}
    hostile = by_id["'=cmd|' /C calc'!A0"]  # the id itself started with "="
    assert hostile["suspected_by"] == "'@probe"
    assert hostile["lead_s"] == "-120.0"  # our own number, not a formula
    titles = hostile["incidents"]
    assert titles.startswith("'=HYPERLINK(")  # the cell starts with the first title
    first = by_id[f"acme:{day(-60, 10):%Y%m%dT%H%M%SZ}:script"]
    assert first["started"] == day(-60, 10).isoformat()
    assert (first["duration_s"], first["lead_s"], first["page_lag_s"]) == ("3600.0",) + (
        "720.0",
    ) * 2
    assert first["incident_urls"] == "https://status.example.com/incidents/inc-0"
    for value in FORMULAS:
        assert csv_cell(value) == "'" + value
    assert csv_cell("plain") == "plain"
    assert csv_cell(None) == ""
    assert csv_cell(-1.5) == "-1.5"


def test_since_parsing() -> None:
    assert parse_since(None, NOW) == NOW - timedelta(days=90)
    assert parse_since("30d", NOW) == NOW - timedelta(days=30)
    assert parse_since("1h30m", NOW) == NOW - timedelta(minutes=90)
    assert parse_since("2025-01-31T08:00:00+02:00", NOW).utcoffset() is not None
    with pytest.raises(BadQuery):
        parse_since("soon", NOW)


async def test_badges_are_well_formed_svg_with_the_state_and_uptime(api: Served) -> None:
    answer = await api.client.get("/badge/acme.svg")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("image/svg+xml")
    assert answer.headers["cache-control"] == "max-age=60"
    assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    root = ElementTree.fromstring(answer.text)
    assert root.tag == f"{SVG}svg"
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert texts == ["Acme AI", "Acme AI", "unknown", "unknown"]  # no live state yet
    uptime = await api.client.get("/badge/acme/uptime.svg")
    assert uptime.headers["cache-control"] == "max-age=60"
    root = ElementTree.fromstring(uptime.text)
    assert [t.text for t in root.iter(f"{SVG}text")][2] == "99.65 %"
    assert root.find(f"{SVG}title") is not None
    assert "<style" not in uptime.text
    assert "<script" not in uptime.text
    for path in ("/badge/nope.svg", "/badge/nope/uptime.svg"):
        missing = await api.client.get(path)
        assert missing.status_code == 404
        assert missing.headers["content-type"].startswith("image/svg+xml")
        texts = [t.text for t in ElementTree.fromstring(missing.text).iter(f"{SVG}text")]
        assert "unknown" in texts


async def test_a_hostile_name_is_escaped_in_its_badge(api: Served) -> None:
    answer = await api.client.get("/badge/evil.svg")
    assert "<b>" not in answer.text
    root = ElementTree.fromstring(answer.text)  # still well-formed
    assert next(t.text for t in root.iter(f"{SVG}text")) == HOSTILE_BADGE_NAME
    assert root.get("aria-label") == f"{HOSTILE_BADGE_NAME}: unknown"
    uptime = ElementTree.fromstring((await api.client.get("/badge/evil/uptime.svg")).text)
    assert [t.text for t in uptime.iter(f"{SVG}text")][2] == "no data"
