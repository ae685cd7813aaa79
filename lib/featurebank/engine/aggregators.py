"""The numeric contract's additive functions: per-event exact terms and one finaliser each.

README "Numeric contract" is the text; this module is its one implementation. `count`,
`sum`, `avg` and `stddev` are described by the exact values they add up per event (`terms`)
and by `finalize`, which turns a window's exact totals into the published value. Both paths
of aggregate.py use these helpers: the direct path sums the terms of the window's events,
the grid path sums them per day and subtracts running totals. Decimal addition is exact, so
the totals — and the bytes `finalize` makes of them — cannot depend on order, partitioning or
the run's shape. Totals are cast to `decimal(37, s)` before anything reads them, so the
difference of two running totals is still exact (Spark would round a `decimal(38, s)`
difference to s - 1 digits) and every path has the same range.

Everything is DataFrame API (no UDFs). A value the contract cannot hold fails the run through
`raise_error` with the feature, keys and cause named, whether or not ANSI mode is on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from featurebank.compile.group import INTEGRAL_TYPES, AggregateSpec, aggregate_result_type

if TYPE_CHECKING:
    from pyspark.sql import Column

SUFFIXES = {"count": ("n",), "sum": ("n", "s"), "avg": ("n", "s"), "stddev": ("n", "sa", "sb", "aa", "ab", "bb")}
ADDITIVE = tuple(SUFFIXES)
FLOAT_SCALE = 18  # fractional digits a floating-point input keeps (CAST AS DECIMAL(38,18))
TOTAL_PRECISION = 37  # totals are decimal(37, s): |total| < 10^(37-s)
BIGINT = (-(2**63), 2**63 - 1)


@dataclass(frozen=True)
class Term:
    """One value an aggregate adds up per event: `total(suffix)` is its window total."""

    suffix: str  # one of SUFFIXES[function]
    value: Column  # per event; NULL adds nothing
    scale: int | None  # fractional digits of the exact total; None: count the non-NULL values


@dataclass(frozen=True)
class Input:
    """What the contract needs to know of an aggregate's input column."""

    type: str  # Spark SQL type, e.g. "double", "bigint", "decimal(12,2)"

    @property
    def decimal(self) -> tuple[int, int] | None:
        found = re.fullmatch(r"decimal\((\d+),(\d+)\)", self.type)
        return (int(found.group(1)), int(found.group(2))) if found else None

    @property
    def scale(self) -> int:
        """Fractional digits of the exact sum: 0 for integers, the input's own for decimals, else 18."""
        decimal = self.decimal
        if self.type in INTEGRAL_TYPES:
            return 0
        return min(decimal[1], TOTAL_PRECISION) if decimal else FLOAT_SCALE


def total_type(scale: int) -> str:
    """The decimal type every exact total is read as."""
    return f"decimal({TOTAL_PRECISION},{scale})"


def exact(v: Column, source: Input, scale: int, fail: Callable[[str], Column]) -> Column:
    """The contract's conversion of one input value to `decimal(38, scale)`.

    Integers and decimals: their value (decimals rounded half-up if they have more digits).
    Anything else: as DOUBLE, then `CAST(x AS DECIMAL(38, scale))`, which takes the double's
    decimal form (Java's `Double.toString`: 0.1 -> 0.1, 1282.36 -> 1282.36) and rounds it
    half-up. NaN, infinities and values too large fail the run instead of becoming NULL.
    """
    from pyspark.sql import functions as F

    numeric = v if source.decimal or source.type in INTEGRAL_TYPES else v.cast("double")
    q = numeric.cast(f"decimal(38,{scale})")
    limit = f"|x| < 1e{38 - scale}"
    return F.when(numeric.isNotNull() & q.isNull(), fail(f"a value is NaN, infinite or outside {limit}")).otherwise(q)


def failure(a: AggregateSpec, keys: tuple[str, ...], where: str, at: Column) -> Callable[[str], Column]:
    """`fail(cause)`: a Column that fails the run naming the feature, the keys and `where`+`at`."""
    from pyspark.sql import functions as F

    def fail(cause: str) -> Column:
        named = [F.concat(F.lit(f"{k}="), F.coalesce(F.col(f"`{k}`").cast("string"), F.lit("NULL"))) for k in keys]
        return F.raise_error(
            F.concat(
                F.lit(f"aggregation '{a.name}' ({a.function}) cannot be computed exactly: {cause}, for "),
                F.concat_ws(", ", *named), F.lit(f", {where}"), at,
                F.lit(" (README 'Numeric contract'). Filter such values out in the group's filter, or scale the expression."),
            )
        )

    return fail


def terms(a: AggregateSpec, v: Column, source: Input, fail: Callable[[str], Column]) -> list[Term]:
    """The exact per-event terms of an additive aggregate (`v` is its input, or lit(1) for rows)."""
    from pyspark.sql import functions as F

    n = Term("n", v, None)
    if a.function == "count":
        return [n]
    if a.function in ("sum", "avg"):
        return [n, Term("s", exact(v, source, source.scale, fail), source.scale)]
    if a.function == "stddev":
        # x = a + b: a the nearest integer (half-up), |b| <= 1/2. Every product is exact in 38
        # digits; b*b is rounded half-up to 18 digits (at most 5e-19 per event).
        q = exact(v, source, FLOAT_SCALE, fail)
        whole = q.cast("decimal(19,0)")
        whole = F.when(q.isNotNull() & whole.isNull(), fail("a value is outside |x| < 1e19")).otherwise(whole)
        frac = (q.cast("decimal(37,18)") - whole).cast("decimal(18,18)")
        return [
            n,
            Term("sa", whole, 0),
            Term("sb", frac, FLOAT_SCALE),
            Term("aa", whole * whole, 0),
            Term("ab", whole * frac, FLOAT_SCALE),
            Term("bb", (frac * frac).cast("decimal(18,18)"), FLOAT_SCALE),
        ]
    raise ValueError(f"not an additive aggregation function: {a.function!r}")


Total = Callable[[str, "int | None"], "Column"]


def finalize(a: AggregateSpec, source: Input, total: Total, fail: Callable[[str], Column]) -> Column:
    """The published value from a window's exact totals.

    `total(suffix, scale)` is the window's total of that term (NULL or 0 when the window has no
    value); every exact total is read as `decimal(37, scale)`, and one that does not fit fails
    the run.
    """
    from pyspark.sql import functions as F

    n = F.coalesce(total("n", None), F.lit(0)).cast("bigint")
    fn = a.function
    if fn == "count":
        return n

    def exact_total(suffix: str, scale: int) -> Column:
        t = total(suffix, scale).cast(total_type(scale))
        return F.when((n > 0) & t.isNull(), fail(f"an exact window total is outside |total| < 1e{TOTAL_PRECISION - scale}")).otherwise(t)

    out = aggregate_result_type(fn, source.type)
    if fn in ("sum", "avg"):
        s = exact_total("s", source.scale)
        if source.decimal:
            precision, scale = source.decimal
            declared_sum = s.cast(f"decimal({min(38, precision + 10)},{scale})")
            checked = F.when((n > 0) & declared_sum.isNull(), fail(f"the sum does not fit decimal({min(38, precision + 10)},{scale})"))
            if fn == "sum":
                return F.when(n > 0, checked.otherwise(declared_sum))
            # Spark's decimal avg: sum / CAST(n AS DECIMAL(20,0)), then the declared type.
            return F.when(n > 0, checked.otherwise((declared_sum / n.cast("decimal(20,0)")).cast(out)))
        if fn == "sum" and source.type in INTEGRAL_TYPES:
            fits = s.between(F.lit(BIGINT[0]).cast("decimal(38,0)"), F.lit(BIGINT[1]).cast("decimal(38,0)"))
            return F.when(n > 0, F.when(fits, s.cast("bigint")).otherwise(fail("the sum is outside BIGINT")))
        if fn == "sum":
            return F.when(n > 0, s.cast("double"))
        return F.when(n > 0, s.cast("double") / n.cast("double"))
    if fn == "stddev":
        return stddev(n, exact_total, fail)
    raise ValueError(f"not an additive aggregation function: {fn!r}")


def stddev(n: Column, exact_total: Callable[[str, int], Column], fail: Callable[[str], Column]) -> Column:
    """Sample standard deviation from exact n, Σa, Σb, Σa², Σab, Σb² (x = a + b per event).

    K = floor(mean + 1/2), an integer; Σ(a - K)² = Σa² - 2KΣa + nK² in exact integers, then in
    IEEE doubles, in this order: T = Σ(a-K)² + 2(Σab - K·Σb) + Σb²  (= Σ(x - K)²),
    D = (Σa - nK) + Σb  (= Σx - nK),  M2 = T - D·D/n,  stddev = sqrt(max(M2 / (n - 1), 0)).
    """
    from pyspark.sql import functions as F

    sa, sb = exact_total("sa", 0), exact_total("sb", FLOAT_SCALE)
    aa, ab, bb = exact_total("aa", 0), exact_total("ab", FLOAT_SCALE), exact_total("bb", FLOAT_SCALE)
    nd = n.cast("double")
    mean = (sa.cast("double") + sb.cast("double")) / nd
    k = F.when(F.abs(mean) < F.lit(1e18), F.floor(mean + F.lit(0.5))).otherwise(F.lit(0)).cast("decimal(19,0)")
    nk = n.cast("decimal(19,0)") * k
    k_sa = k * sa
    centred = ((aa - k_sa) - k_sa) + nk * k
    centred = F.when((n >= 2) & centred.isNull(), fail("Σ(a - K)² is outside |x| < 1e38")).otherwise(centred)
    t = centred.cast("double") + F.lit(2.0) * (ab.cast("double") - k.cast("double") * sb.cast("double")) + bb.cast("double")
    d = (sa - nk).cast("double") + sb.cast("double")
    m2 = t - d * d / nd
    return F.when(n >= 2, F.sqrt(F.greatest(m2 / (nd - F.lit(1.0)), F.lit(0.0))))
