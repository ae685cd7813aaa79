"""Every aggregation function in plain Python: a window's value from its events, by the numeric contract.

The Spark phases (additive.py, ordered.py, distinct.py) are the production path; this module is
their reference in Python `decimal` and `float` arithmetic (exact sums, one rounding per stated
step of README "Numeric contract"), so a value recomputed here equals the published one bit for
bit. Two readers: `featurebank explain` (compile/explain.py recomputes one entity's values) and
the test oracle (tests/oracles/aggregate_oracle.py, which compares every function's Spark value
with this over brute-force windows). Pure Python, rank 0: no Spark, nothing from featurebank.

`window_value(function, pairs, input_type)`: `pairs` are the window's (event time, input value)
pairs with NULL values left out (the count of rows passes `1` per event); `input_type` is the
input's Spark type (`decimal(p,s)`, `bigint`, `double`, ...), or None to judge by the values.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from decimal import ROUND_HALF_UP, Context, Decimal
from typing import Any, Callable

EXACT = Context(prec=200)  # wide enough that every sum and product below is exact
_INTEGRAL = ("tinyint", "smallint", "int", "bigint")

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
# input's type. tests/test_aggregate.py checks that every registered function has its case.
CASES: dict[str, Callable[[Pairs, str | None], Any]] = {
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


def window_value(function: str, pairs: Pairs, input_type: str | None = None) -> Any:
    """The published value of `function` over one window's (time, value) pairs (see the module docstring)."""
    return CASES[function](pairs, input_type)


def exact(value: Any, scale: int) -> Decimal:
    """The contract's conversion: a float through its shortest decimal form (`repr`, Java's
    `Double.toString`), anything else as it is, rounded half-up to `scale` fractional digits."""
    text = repr(value) if isinstance(value, float) else str(value)
    return Decimal(text).quantize(Decimal(1).scaleb(-scale), rounding=ROUND_HALF_UP, context=EXACT)


def contract_value(fn: str, values: list[Any], input_type: str | None) -> Any:
    """sum / avg / stddev of a non-empty list of non-NULL values, as the numeric contract says."""
    decimal = re.fullmatch(r"decimal\((\d+),(\d+)\)", input_type or "")
    integral = input_type in _INTEGRAL if input_type else all(isinstance(v, int) for v in values)
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
