"""``tocsin report``: the monthly review's table, per provider, from history.

Uptime, incidents, total downtime (partial or major outage), mean time to recovery, median
detection lead (how long before the status page our probes saw it) and median page lag, over
the last N UTC days (today included). Three shapes: a table for the terminal (what a team
pastes into a review), JSON and CSV. Names come from the config, but everything is written as
outside text all the same: Rich markup is escaped, and CSV cells that a spreadsheet would run
as a formula (``=``, ``+``, ``-``, ``@``) are quoted with a leading ``'``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from rich.markup import escape
from rich.table import Table

from bot.history.queries import ReportRow
from bot.outside import one_line
from config.durations import humanize

COLUMNS = ("Provider", "Uptime", "Incidents", "Downtime", "MTTR", "Median lead", "Median page lag")
#: What a spreadsheet reads as a formula at the start of a cell (OWASP's CSV injection list).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def table(rows: Sequence[ReportRow], days: int) -> Table:
    made = Table(title=f"tocsin report: the last {days} days", title_justify="left")
    for column in COLUMNS:
        made.add_column(column, justify="left" if column == "Provider" else "right")
    for row in rows:
        made.add_row(*(escape(cell) for cell in _cells(row)))
    return made


def as_json(rows: Sequence[ReportRow], days: int) -> str:
    return json.dumps({"days": days, "providers": [_document(r) for r in rows]}, indent=2)


def as_csv(rows: Sequence[ReportRow]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        [
            "provider",
            "name",
            "uptime",
            "incidents",
            "downtime_s",
            "mttr_s",
            "median_lead_s",
            "median_page_lag_s",
        ]
    )
    for row in rows:
        document = _document(row)
        writer.writerow([safe_cell(v) for v in document.values()])
    return buffer.getvalue()


def safe_cell(value: object) -> str:
    """A CSV cell no spreadsheet runs: a leading formula character is quoted with ``'``."""
    text = "" if value is None else str(value)
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


def _document(row: ReportRow) -> dict[str, Any]:
    return {
        "provider": row.provider,
        "name": one_line(row.name, 200),
        "uptime": None if row.uptime is None else round(row.uptime, 6),
        "incidents": row.incidents,
        "downtime_s": _seconds(row.downtime),
        "mttr_s": _seconds(row.mttr),
        "median_lead_s": _seconds(row.median_lead),
        "median_page_lag_s": _seconds(row.median_page_lag),
    }


def _cells(row: ReportRow) -> list[str]:
    return [
        one_line(row.name, 200),
        "no data" if row.uptime is None else f"{row.uptime:.3%}",
        str(row.incidents),
        _duration(row.downtime),
        _duration(row.mttr),
        _duration(row.median_lead),
        _duration(row.median_page_lag),
    ]


def _duration(value: timedelta | None) -> str:
    if value is None:
        return "-"
    seconds = value.total_seconds()
    if seconds < 0:
        return f"-{humanize(-seconds)}"
    return humanize(seconds) if seconds else "0s"


def _seconds(value: timedelta | None) -> float | None:
    return None if value is None else round(value.total_seconds(), 3)
