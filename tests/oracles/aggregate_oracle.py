"""Brute-force oracle for aggregation snapshots, written independently of the Spark executor.

For every entity and every snapshot date D it filters the events whose local day lies in
`[D - w, D)` and aggregates them with plain Python: no tiles, no running totals. Slow on
purpose; only for tens or hundreds of events. Sums, averages and standard deviations follow
the README's numeric contract with Python's `decimal` (exact sums, one rounding per stated
step), so Spark's values must equal these bit for bit.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Context, Decimal
from datetime import date, datetime, timedelta
from typing import Any, Callable
from zoneinfo import ZoneInfo

EXACT = Context(prec=200)  # wide enough that every sum and product below is exact


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


Pairs = list[tuple[datetime, Any]]  # (event time, value) of a window's events, NULL values left out


def _values(pairs: Pairs) -> list[Any]:
    """The values, NaN left out too."""
    return [v for _, v in pairs if not (isinstance(v, float) and math.isnan(v))]


def _latest(pairs: Pairs) -> Any:
    """The value at the latest time; ties go to the greatest value."""
    latest = max(t for t, _ in pairs)
    return max(v for t, v in pairs if t == latest)


def _null_when_empty(case: Callable[[Pairs, str | None], Any]) -> Callable[[Pairs, str | None], Any]:
    """`case`, NULL when the window has no value."""
    return lambda pairs, input_type: case(pairs, input_type) if _values(pairs) else None


# One case per aggregation function: the window's value from its (time, value) pairs and the
# input's declared type ("decimal(p,s)", else None). tests/test_aggregate.py checks that every
# function featurebank.aggregators registers has its case here, and is compared with it.
ORACLE_CASES: dict[str, Callable[[Pairs, str | None], Any]] = {
    "count": lambda pairs, _: len(_values(pairs)),
    "sum": _null_when_empty(lambda pairs, input_type: contract_value("sum", _values(pairs), input_type)),
    "avg": _null_when_empty(lambda pairs, input_type: contract_value("avg", _values(pairs), input_type)),
    "min": _null_when_empty(lambda pairs, _: min(_values(pairs))),
    "max": _null_when_empty(lambda pairs, _: max(_values(pairs))),
    "stddev": _null_when_empty(lambda pairs, input_type: contract_value("stddev", _values(pairs), input_type)),
    "count_distinct": lambda pairs, _: len(set(_values(pairs))),
    "approx_count_distinct": lambda pairs, _: len(set(_values(pairs))),
    "last": _null_when_empty(lambda pairs, _: _latest(pairs)),
}


def exact(value: Any, scale: int) -> Decimal:
    """The contract's conversion: a float through its shortest decimal form (`repr`, Java's
    `Double.toString`), anything else as it is, rounded half-up to `scale` fractional digits."""
    text = repr(value) if isinstance(value, float) else str(value)
    return Decimal(text).quantize(Decimal(1).scaleb(-scale), rounding=ROUND_HALF_UP, context=EXACT)


def contract_value(fn: str, values: list[Any], input_type: str | None) -> Any:
    """sum / avg / stddev of a non-empty list of non-NULL values, as the numeric contract says."""
    decimal = re.fullmatch(r"decimal\((\d+),(\d+)\)", input_type or "")
    integral = all(isinstance(v, int) for v in values)
    n = len(values)
    if fn == "stddev":
        return stddev(values, n)
    if decimal:
        precision, scale = int(decimal.group(1)), int(decimal.group(2))
        total = EXACT.add(sum((exact(v, scale) for v in values), Decimal(0)), 0)
        if fn == "sum":
            return total
        # Spark's decimal avg: sum / CAST(n AS DECIMAL(20,0)) at Spark's division scale, then
        # the declared type decimal(p+4, s+4), each rounded half-up.
        sum_precision = min(38, precision + 10)
        division_scale = max(6, scale + 21)
        if sum_precision + 21 > 38:
            division_scale = max(38 - (sum_precision - scale), min(division_scale, 6))
        quotient = EXACT.divide(total, Decimal(n))
        step = quotient.quantize(Decimal(1).scaleb(-division_scale), rounding=ROUND_HALF_UP, context=EXACT)
        return step.quantize(Decimal(1).scaleb(-min(38, scale + 4)), rounding=ROUND_HALF_UP, context=EXACT)
    scale = 0 if integral else 18
    total = sum((exact(v, scale) for v in values), Decimal(0))
    if fn == "sum":
        return int(total) if integral else float(total)
    return float(total) / float(n)


def stddev(values: list[Any], n: int) -> float | None:
    """Sample standard deviation by the contract: exact integer-part / fraction sums, centred on
    the integer K nearest the mean, then the stated double operations in the stated order."""
    if n < 2:
        return None
    q = [exact(v, 18) for v in values]
    a = [x.quantize(Decimal(1), rounding=ROUND_HALF_UP) for x in q]
    b = [x - i for x, i in zip(q, a)]
    sa, sb = sum(a, Decimal(0)), sum(b, Decimal(0))
    big_a = sum((i * i for i in a), Decimal(0))
    big_b = sum((EXACT.multiply(i, f) for i, f in zip(a, b)), Decimal(0))
    big_c = sum((EXACT.multiply(f, f).quantize(Decimal("1e-18"), rounding=ROUND_HALF_UP) for f in b), Decimal(0))
    nd = float(n)
    mean = (float(sa) + float(sb)) / nd
    k = Decimal(math.floor(mean + 0.5)) if abs(mean) < 1e18 else Decimal(0)
    centred_int = EXACT.add(EXACT.subtract(EXACT.subtract(big_a, k * sa), k * sa), n * k * k)
    t = float(centred_int) + 2.0 * (float(big_b) - float(k) * float(sb)) + float(big_c)
    d = float(sa - n * k) + float(sb)
    m2 = t - d * d / nd
    return math.sqrt(max(m2 / (nd - 1.0), 0.0))
