"""count, sum, avg, stddev: the numeric contract's functions, from exact totals of per-event terms.

README "Numeric contract" is the text; this module is its one implementation. Each function
is described by the exact values it adds up per event (`terms`) and by `value`, which turns a
window's exact totals into the published value. Both paths of engine/aggregate.py run the
same terms and the same `value`: the short-run path sums the terms of the window's events,
the backfill sums them per day (Spark) and then each window's day totals (engine/kernel.py,
exact 128-bit integers from prefix sums over the tiles). Decimal and integer addition are
exact, so the totals, and the bytes `value` makes of them, cannot depend on order,
partitioning or the run's shape. Window totals are read as `decimal(37, s)` on every path,
so every path has the same range.

Everything here is DataFrame API (no UDFs). A value the contract cannot hold fails the run through
`raise_error` with the feature, keys and cause named, whether or not ANSI mode is on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, ClassVar

from featurebank.aggregators.base import (
    FLOAT_SCALE, FLOATING_TYPES, INTEGRAL_TYPES, TOTAL_PRECISION, UNKNOWN_TYPE,
    Aggregator, Fail, Input, Read, Slot, decimal_of,
)

if TYPE_CHECKING:
    from pyspark.sql import Column

BIGINT = (-(2**63), 2**63 - 1)


@dataclass(frozen=True)
class Term:
    """One value an aggregation adds up per event: `total(suffix)` is its window total."""

    suffix: str  # one of the function's `suffixes`
    value: Column  # per event; NULL adds nothing
    scale: int | None  # fractional digits of the exact total; None: count the non-NULL values


Total = Callable[[str, "int | None"], "Column"]  # total(suffix, scale): a window's total of a term
# the same, read as decimal(37, scale), range-checked; `as_double=True`: rounded once to DOUBLE
ExactTotal = Callable[..., "Column"]


def narrowed(c: Column, precision: int, scale: int) -> Column:
    """`c`, a decimal of scale `scale`, as `decimal(precision, scale)`, or NULL when it does not
    fit. Never Spark's cast, which raises in ANSI mode without feature or keys; NULL is how
    every caller here detects an overflow and fails the run with its own sentence."""
    from pyspark.sql import functions as F

    target = f"decimal({precision},{scale})"
    if precision >= 38:
        return c.cast(target)  # a decimal of the same scale always fits
    bound = F.lit(str(10 ** (precision - scale))).cast(f"decimal(38,{scale})")
    return F.when((c < bound) & (c > -bound), c.cast(target))


def exact(v: Column, source: Input, scale: int, fail: Fail) -> Column:
    """The contract's conversion of one input value to `decimal(38, scale)`.

    Integers and decimals: their value (decimals rounded half-up if they have more digits).
    Anything else: as DOUBLE, then `CAST(x AS DECIMAL(38, scale))`, which takes the double's
    decimal form (Java's `Double.toString`: 0.1 -> 0.1, 1282.36 -> 1282.36) and rounds it
    half-up. NaN, infinities and values too large fail the run instead of becoming NULL.
    """
    from pyspark.sql import functions as F

    exact_input = source.decimal or source.type in INTEGRAL_TYPES
    numeric = v if exact_input else v.cast("double")
    q = numeric.cast(f"decimal(38,{scale})")
    limit = f"|x| < 1e{38 - scale}"
    # Decided before the cast, not by a NULL after it: in ANSI mode (io/spark.py) the cast of a
    # NaN, an infinity or a value too large raises Spark's own error, without feature or keys.
    # (no abs(): abs of BIGINT's minimum overflows in ANSI mode). The bound is a literal of the
    # input's own type, so the comparison never widens past decimal(38, s) (which would raise).
    bound = 10 ** (38 - scale)
    if exact_input:
        integer_digits = source.decimal[0] - source.decimal[1] if source.decimal else 19  # BIGINT at most
        if integer_digits <= 38 - scale:
            unrepresentable = F.lit(False)  # every value of the input's type fits
        else:
            limit_value = F.lit(str(bound)).cast(source.type if source.decimal else "bigint")
            unrepresentable = (numeric >= limit_value) | (numeric <= -limit_value)
    else:
        unrepresentable = (numeric >= F.lit(float(bound))) | (numeric <= F.lit(-float(bound)))
    if not exact_input:
        unrepresentable = F.isnan(numeric) | unrepresentable
    return F.when(numeric.isNotNull() & unrepresentable, fail(f"a value is NaN, infinite or outside {limit}")).otherwise(q)


class Additive(Aggregator):
    """A function of exact window totals of per-event terms (count, sum, avg, stddev).

    Subclasses give `suffixes` (the terms' names, "n" first: the count of non-NULL values),
    `terms` and `value`; tiles, reads and both paths are shared.
    """

    suffixes: ClassVar[tuple[str, ...]] = ("n",)

    def terms(self, slot: Slot, v: Column, fail: Fail) -> list[Term]:
        """The exact per-event terms (`v` is the input, or 1 when counting rows), one per suffix."""
        return [Term("n", v, None)]

    def value(self, slot: Slot, n: Column, exact_total: ExactTotal, fail: Fail) -> Column:
        """The published value from the window's count `n` (BIGINT) and exact totals."""
        raise NotImplementedError(self.name)

    def _term(self, slot: Slot, suffix: str) -> str:
        return slot.shared_column(f"t_{suffix}")

    def prepare(self, slot: Slot, fail: Fail) -> list[Column]:
        return [t.value.alias(self._term(slot, t.suffix)) for t in self.terms(slot, slot.value(), fail)]

    def update(self, slot: Slot, fail: Fail) -> list[Column]:
        """Day totals of every term; never NULL (0 without values); a day total that overflows
        fails here."""
        from pyspark.sql import functions as F

        parts = []
        for suffix in self.suffixes:
            t = F.col(self._term(slot, suffix))
            # try_sum: NULL on overflow in ANSI mode too (sum would raise without feature or keys)
            overflow = (F.count(t) > 0) & F.try_sum(t).isNull()
            day_total = F.when(overflow, fail("a day's exact total overflows")).otherwise(F.coalesce(F.try_sum(t), F.lit(0)))
            parts.append((F.count(t) if suffix == "n" else day_total).alias(slot.shared_column(suffix)))
        return parts

    def rounded(self, slot: Slot) -> tuple[str, ...]:
        """The exact terms `value` reads only rounded to DOUBLE (`exact_total(..., as_double=True)`):
        the kernel rounds them itself, cheaper than Spark's cast of a 128-bit decimal."""
        return ()

    def reads(self, slot: Slot) -> list[Read]:
        """Per window: the count of values ("n", BIGINT) and each exact term's total, the exact sum
        of the window's day totals as `decimal(37, scale)` (NULL when it does not fit), or that
        total rounded once to DOUBLE for the terms in `rounded`."""
        scales, rounded = self.scales(slot), self.rounded(slot)

        def read(suffix: str, w: int) -> Read:
            tile = (slot.shared_column(suffix),)
            if suffix not in scales:
                return Read(slot.shared_column(f"w_{suffix}_{w}"), "count", tile, w)
            if suffix in rounded:
                return Read(slot.shared_column(f"dx_{suffix}_{w}"), "double", tile, w, scales[suffix])
            return Read(slot.shared_column(f"nx_{suffix}_{w}"), "total", tile, w, scales[suffix])

        return [read(suffix, w) for suffix in self.suffixes for w in slot.windows]

    def scales(self, slot: Slot) -> dict[str, int]:
        """The scale of each exact term's total (the terms counted, like "n", have none)."""
        from pyspark.sql import functions as F

        return {t.suffix: t.scale for t in self.terms(slot, slot.value(), lambda cause: F.lit(None))
                if t.scale is not None}

    def finalize(self, slot: Slot, window: int, fail: Fail) -> Column:
        from pyspark.sql import functions as F

        def total(suffix: str, scale: int | None) -> Column:
            return F.col(slot.shared_column(f"w_{suffix}_{window}" if scale is None else f"nx_{suffix}_{window}"))

        def rounded(suffix: str) -> Column | None:
            return F.col(slot.shared_column(f"dx_{suffix}_{window}")) if suffix in self.rounded(slot) else None

        return self.from_totals(slot, total, fail, rounded)

    def direct(self, slot: Slot, window: int, inside: Column, fail: Fail) -> Column:
        from pyspark.sql import functions as F

        def total(suffix: str, scale: int | None) -> Column:
            t = F.when(inside, F.col(self._term(slot, suffix)))
            return F.count(t) if scale is None else F.try_sum(t)

        return self.from_totals(slot, total, fail)

    def from_totals(self, slot: Slot, total: Total, fail: Fail,
                    rounded: Callable[[str], Column | None] = lambda suffix: None) -> Column:
        """The published value from a window's totals (`total(suffix, scale)`, NULL or 0 when the
        window has no value); every exact total is read as `decimal(37, scale)`, and one that
        does not fit fails the run. `exact_total(suffix, scale, as_double=True)` is that total
        rounded once to DOUBLE: Spark's cast of the decimal, or `rounded(suffix)` where the
        kernel already rounded it the same way (NULL when it does not fit)."""
        from pyspark.sql import functions as F

        n = F.coalesce(total("n", None), F.lit(0)).cast("bigint")

        def exact_total(suffix: str, scale: int, as_double: bool = False) -> Column:
            ready = rounded(suffix) if as_double else None
            t = ready if ready is not None else narrowed(total(suffix, scale), TOTAL_PRECISION, scale)
            outside = f"an exact window total is outside |total| < 1e{TOTAL_PRECISION - scale}"
            checked = F.when((n > 0) & t.isNull(), fail(outside)).otherwise(t)
            return checked.cast("double") if as_double and ready is None else checked

        return self.value(slot, n, exact_total, fail)


class Count(Additive):
    name = "count"
    empty = 0
    typed_by_input = False

    def output_type(self, input_type: str) -> str:
        return "bigint"

    def sentence(self, expr: str | None, source: str) -> str:
        if not expr:
            return f"number of {source} events"
        return f"number of non-NULL values of {expr} over {source} events"

    def value(self, slot: Slot, n: Column, exact_total: ExactTotal, fail: Fail) -> Column:
        return n


def _declared_sum(s: Column, n: Column, source: Input, fail: Fail) -> tuple[Column, Column]:
    """A decimal input's exact sum as Spark's sum type `decimal(p + 10, s)`, and the failure
    (a `when` to continue with `.otherwise`) when it does not fit."""
    from pyspark.sql import functions as F

    assert source.decimal is not None
    precision, scale = source.decimal
    declared = f"decimal({min(38, precision + 10)},{scale})"
    declared_sum = narrowed(s, min(38, precision + 10), scale)
    return declared_sum, F.when((n > 0) & declared_sum.isNull(), fail(f"the sum does not fit {declared}"))


class Sum(Additive):
    name = "sum"
    accepts = "number"
    suffixes = ("n", "s")
    words = "sum of {x}"

    def output_type(self, input_type: str) -> str:
        if input_type in INTEGRAL_TYPES:
            return "bigint"
        if input_type in FLOATING_TYPES:
            return "double"
        decimal = decimal_of(input_type)
        if decimal:
            return f"decimal({min(38, decimal[0] + 10)},{decimal[1]})"
        return UNKNOWN_TYPE

    def terms(self, slot: Slot, v: Column, fail: Fail) -> list[Term]:
        return [Term("n", v, None), Term("s", exact(v, slot.input, slot.input.scale, fail), slot.input.scale)]

    def rounded(self, slot: Slot) -> tuple[str, ...]:
        """A sum of doubles is its exact total rounded to DOUBLE."""
        return () if slot.input.decimal or slot.input.type in INTEGRAL_TYPES else ("s",)

    def value(self, slot: Slot, n: Column, exact_total: ExactTotal, fail: Fail) -> Column:
        from pyspark.sql import functions as F

        source = slot.input
        if "s" in self.rounded(slot):
            return F.when(n > 0, exact_total("s", source.scale, as_double=True))
        s = exact_total("s", source.scale)
        if source.decimal:
            declared_sum, refused = _declared_sum(s, n, source, fail)
            return F.when(n > 0, refused.otherwise(declared_sum))
        fits = s.between(F.lit(BIGINT[0]).cast("decimal(38,0)"), F.lit(BIGINT[1]).cast("decimal(38,0)"))
        return F.when(n > 0, F.when(fits, s.cast("bigint")).otherwise(fail("the sum is outside BIGINT")))


class Avg(Sum):
    name = "avg"
    words = "mean of {x}"

    def output_type(self, input_type: str) -> str:
        decimal = decimal_of(input_type)
        if decimal:
            precision, scale = decimal
            return f"decimal({min(38, precision + 4)},{min(38, scale + 4)})"
        return "double" if input_type in (*INTEGRAL_TYPES, *FLOATING_TYPES, UNKNOWN_TYPE) else UNKNOWN_TYPE

    def rounded(self, slot: Slot) -> tuple[str, ...]:
        """A mean of integers or doubles divides the exact total rounded to DOUBLE."""
        return () if slot.input.decimal else ("s",)

    def value(self, slot: Slot, n: Column, exact_total: ExactTotal, fail: Fail) -> Column:
        from pyspark.sql import functions as F

        source = slot.input
        if not source.decimal:
            return F.when(n > 0, exact_total("s", source.scale, as_double=True) / n.cast("double"))
        s = exact_total("s", source.scale)
        declared_sum, refused = _declared_sum(s, n, source, fail)
        # Spark's decimal avg: sum / CAST(n AS DECIMAL(20,0)), then the declared type.
        mean = (declared_sum / n.cast("decimal(20,0)")).cast(self.output_type(source.type))
        return F.when(n > 0, refused.otherwise(mean))


class Stddev(Additive):
    name = "stddev"
    accepts = "number"
    typed_by_input = False
    suffixes = ("n", "sa", "sb", "aa", "ab", "bb")
    words = "sample standard deviation of {x}"

    def output_type(self, input_type: str) -> str:
        return "double"

    def terms(self, slot: Slot, v: Column, fail: Fail) -> list[Term]:
        # x = a + b: a the nearest integer (half-up), |b| <= 1/2. Every product is exact in 38
        # digits; b*b is rounded half-up to 18 digits (at most 5e-19 per event).
        from pyspark.sql import functions as F

        q = exact(v, slot.input, FLOAT_SCALE, fail)
        # |q| < 1e19 - 1/2 exactly when q rounds half-up into decimal(19, 0); the guard comes
        # before every cast, which would raise in ANSI mode
        bound = F.lit("9999999999999999999.5").cast("decimal(38,18)")
        inside = (q < bound) & (q > -bound)
        whole = F.when(q.isNotNull() & ~inside, fail("a value is outside |x| < 1e19")).otherwise(q.cast("decimal(19,0)"))
        frac = (F.when(inside, q).cast("decimal(37,18)") - whole).cast("decimal(18,18)")
        return [
            Term("n", v, None),
            Term("sa", whole, 0),
            Term("sb", frac, FLOAT_SCALE),
            Term("aa", whole * whole, 0),
            Term("ab", whole * frac, FLOAT_SCALE),
            Term("bb", (frac * frac).cast("decimal(18,18)"), FLOAT_SCALE),
        ]

    def value(self, slot: Slot, n: Column, exact_total: ExactTotal, fail: Fail) -> Column:
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
