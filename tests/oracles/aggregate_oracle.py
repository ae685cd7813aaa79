"""Brute-force oracle for aggregation snapshots, written independently of the Spark executor.

For every entity and every snapshot date D it filters the events whose local day lies in
`[D - w, D)` and aggregates them with plain Python: no tiles, no running totals. Slow on
purpose; only for tens or hundreds of events. Sums, averages and standard deviations follow
the README's numeric contract with Python's `decimal` (exact sums, one rounding per stated
step), so Spark's values must equal these bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Callable
from zoneinfo import ZoneInfo

from featurebank.aggregators import reference


@dataclass(frozen=True)
class OracleAggregate:
    name: str
    function: str
    value: Callable[[dict[str, Any]], Any] | None  # None: count rows
    windows: tuple[int, ...]
    input_type: str | None = None  # "decimal(p,s)" for decimal inputs; else taken from the values


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
    value = a.value
    assert value is not None
    pairs = [(e[ts], v) for e in window if (v := value(e)) is not None]
    return ORACLE_CASES[a.function](pairs, a.input_type)


# The window arithmetic is featurebank's plain-Python reference (aggregators/reference.py), which
# `featurebank explain` also recomputes values with; what is brute force here is the windowing
# above (every event's local day against every snapshot date), written without tiles.
Pairs = reference.Pairs
ORACLE_CASES = reference.CASES
exact = reference.exact
contract_value = reference.contract_value
stddev = reference.stddev
