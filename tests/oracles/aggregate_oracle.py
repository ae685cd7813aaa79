"""Brute-force oracle for aggregation snapshots, written independently of the Spark executor.

For every entity and every snapshot date D it filters the events whose local day lies in
`[D - w, D)` and aggregates them with plain Python: no tiles, no running totals. Slow on
purpose; only for tens or hundreds of events.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Callable
from zoneinfo import ZoneInfo

COUNT_FUNCTIONS = ("count", "count_distinct", "approx_count_distinct")


@dataclass(frozen=True)
class OracleAggregate:
    name: str
    function: str
    value: Callable[[dict[str, Any]], Any] | None  # None: count rows
    windows: tuple[int, ...]


def local_day(instant: datetime, timezone: str) -> date:
    """The calendar date of a tz-aware instant in `timezone`."""
    return instant.astimezone(ZoneInfo(timezone)).date()


def snapshots(
    events: list[dict[str, Any]],
    keys: tuple[str, ...],
    ts: str,
    aggregates: list[OracleAggregate],
    start: date,
    end: date,
    timezone: str,
    keep: Callable[[dict[str, Any]], bool] = lambda e: True,
) -> dict[tuple[Any, ...], dict[str, Any]]:
    """{(key values..., feature_date): {column: value}} for snapshot dates start..end."""
    kept = [e for e in events if keep(e) and e[ts] is not None]
    max_window = max(w for a in aggregates for w in a.windows)
    entities = sorted({tuple(e[k] for k in keys) for e in kept}, key=repr)
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    day = start
    while day <= end:
        for entity in entities:
            mine = [e for e in kept if tuple(e[k] for k in keys) == entity]
            recent = [e for e in mine if day - timedelta(days=max_window) <= local_day(e[ts], timezone) < day]
            if not recent:
                continue
            midnight = datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(timezone))
            row: dict[str, Any] = {"feature_ts": midnight}
            for a in aggregates:
                for w in a.windows:
                    window = [e for e in mine if day - timedelta(days=w) <= local_day(e[ts], timezone) < day]
                    row[f"{a.name}_{w}d"] = aggregate(a, window, ts)
            out[(*entity, day)] = row
        day += timedelta(days=1)
    return out


def aggregate(a: OracleAggregate, window: list[dict[str, Any]], ts: str) -> Any:
    """One aggregate over the events of one window, NULL values ignored."""
    if a.function == "count" and a.value is None:
        return len(window)
    assert a.value is not None
    pairs = [(e[ts], a.value(e)) for e in window]
    values = [v for _, v in pairs if v is not None and not (isinstance(v, float) and math.isnan(v))]
    fn = a.function
    if fn == "count":
        return len(values)
    if fn in ("count_distinct", "approx_count_distinct"):
        return len(set(values))
    if not values:
        return None
    if fn == "sum":
        return sum(values)
    if fn == "avg":
        return sum(values) / len(values)
    if fn == "min":
        return min(values)
    if fn == "max":
        return max(values)
    if fn == "stddev":
        if len(values) < 2:
            return None
        mean = sum(values) / len(values)
        return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    if fn == "last":
        latest = max(t for t, v in pairs if v is not None)
        return max(v for t, v in pairs if v is not None and t == latest)
    raise ValueError(fn)
