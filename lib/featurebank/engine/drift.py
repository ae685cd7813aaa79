"""Drift: a feature's distribution in a batch against a reference made of stored profiles.

The reference is the per-date profiles the runner stored at publish (`engine.profile`) of the
last N published dates before the batch. Each holds, per numeric feature, a histogram of equal
bins over that date's range, and per low-cardinality categorical feature its top values.

Numeric features: the dates' histograms are pooled as one distribution (rows spread uniformly
within each bin; a bin of zero width is a point mass), cut at its quantiles into `bins` buckets
(`(e[i-1], e[i]]`, the outer ones open); equal cut points merge, so a feature with a few
distinct values gets fewer buckets. Categorical features: the pooled top values, plus one
bucket for every other value. NULLs (and NaN/±Infinity) are left out on both sides: a change in
the NULL share is the not-null checks' business.

The statistic is the population stability index, PSI = Σ (o − e) · ln(o / e) over buckets, with
o and e the batch's and the reference's shares, each floored at `FLOOR` so an empty bucket
counts as rare, not impossible. Rules of thumb: < 0.1 stable, 0.1–0.25 moderate, > 0.25 a shift.
Pure Python except `bucket_index` (a Spark column for the gate's one pass).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from pyspark.sql import Column

    from featurebank.engine.profile import GroupProfile

FLOOR = 1e-4  # the smallest share a bucket counts with (an empty bucket is rare, not impossible)
DEFAULT_BINS = 10


@dataclass(frozen=True)
class Reference:
    """The reference distribution of one feature: its buckets and the share of each."""

    feature: str
    kind: Literal["numeric", "categorical"]
    edges: tuple[float, ...]  # numeric: the cut points; bucket i is (edges[i-1], edges[i]]
    categories: tuple[str, ...]  # categorical: one bucket each, then one for every other value
    expected: tuple[float, ...]  # the share of each bucket; sums to 1
    rows: int  # non-NULL values the reference holds
    dates: tuple[date, ...]  # the published dates it pools

    @property
    def buckets(self) -> int:
        return len(self.expected)


def reference_of(profiles: Sequence[GroupProfile], feature: str, bins: int = DEFAULT_BINS) -> Reference | None:
    """The pooled reference of `feature` over `profiles`, or None when they hold no values of it
    (no profile, a PII feature whose profile keeps only counts, or a type without a histogram
    or top values)."""
    found = [(p.feature_date, p.features[feature]) for p in profiles if feature in p.features]
    found = [(d, f) for d, f in found if not f.masked]
    if not found:
        return None
    dates = tuple(sorted(d for d, _ in found))
    if any(f.histogram for _, f in found):
        pieces = [(low, high, n) for _, f in found for low, high, n in f.histogram if n > 0]
        rows = sum(n for _, _, n in pieces)
        if rows == 0:
            return None
        edges = _quantile_edges(pieces, rows, bins)
        cumulative = [0.0, *(_cdf(pieces, e) / rows for e in edges), 1.0]
        expected = tuple(max(b - a, 0.0) for a, b in zip(cumulative, cumulative[1:]))
        return Reference(feature, "numeric", edges, (), _normalised(expected), rows, dates)
    counts: dict[str, int] = {}
    rows = 0
    for _, f in found:
        held = f.rows - f.nulls - f.non_finite
        rows += held
        for value, n in f.top_values:
            counts[value] = counts.get(value, 0) + n
    if rows <= 0 or not counts:
        return None
    categories = tuple(sorted(counts, key=lambda v: (-counts[v], v)))
    other = max(rows - sum(counts.values()), 0)
    expected = tuple(counts[c] / rows for c in categories) + (other / rows,)
    return Reference(feature, "categorical", (), categories, _normalised(expected), rows, dates)


def observed_index(reference: Reference, value: float | str | None) -> int | None:
    """The bucket of one value (None for NULL), as `bucket_index` computes it in Spark."""
    if value is None:
        return None
    if reference.kind == "categorical":
        text = str(value)
        return reference.categories.index(text) if text in reference.categories else len(reference.categories)
    number = float(value)
    if math.isnan(number) or math.isinf(number):
        return None
    return bisect_left(reference.edges, number)  # the number of cut points below the value


def psi(reference: Reference, observed: Sequence[int]) -> float:
    """The population stability index of bucket counts `observed` against `reference`."""
    total = sum(observed)
    if total <= 0:
        return 0.0
    value = 0.0
    for e, n in zip(reference.expected, observed):
        o = max(n / total, FLOOR)
        e = max(e, FLOOR)
        value += (o - e) * math.log(o / e)
    return value


def bucket_index(reference: Reference, column: Column) -> Column:
    """The bucket of each value of `column` as a Spark column (NULL for NULL, NaN, ±Infinity):
    what `observed_index` says for one value."""
    from pyspark.sql import functions as F

    if reference.kind == "categorical":
        text = column.cast("string")
        index = F.lit(len(reference.categories))
        for i, category in reversed(list(enumerate(reference.categories))):
            index = F.when(text == F.lit(category), F.lit(i)).otherwise(index)
        return F.when(column.isNull(), F.lit(None)).otherwise(index)
    number = column.cast("double")
    finite = number.isNotNull() & ~F.isnan(number) & (F.abs(number) != F.lit(float("inf")))
    index = F.lit(0)
    for edge in reference.edges:
        index = index + F.when(number > F.lit(edge), F.lit(1)).otherwise(F.lit(0))
    return F.when(finite, index).otherwise(F.lit(None))


def _cdf(pieces: Sequence[tuple[float, float, int]], x: float) -> float:
    """Rows at or below `x`, each bin's rows spread uniformly over it (a zero-width bin: at its point)."""
    total = 0.0
    for low, high, n in pieces:
        if high <= low:
            total += n if x >= low else 0
        elif x >= high:
            total += n
        elif x > low:
            total += n * (x - low) / (high - low)
    return total


def _quantile_edges(pieces: Sequence[tuple[float, float, int]], rows: int, bins: int) -> tuple[float, ...]:
    """The cut points at the pooled distribution's k/bins quantiles (k = 1 .. bins-1), equal ones merged."""
    low = min(p[0] for p in pieces)
    high = max(p[1] for p in pieces)
    edges: list[float] = []
    for k in range(1, bins):
        target = rows * k / bins
        a, b = low, high
        for _ in range(60):  # bisection on the monotone CDF: 60 halvings reach a double's precision
            middle = (a + b) / 2
            if _cdf(pieces, middle) >= target:
                b = middle
            else:
                a = middle
        b = _snapped(pieces, b)
        if not edges or b > edges[-1]:
            edges.append(b)
    return tuple(e for e in edges if e < high or _cdf(pieces, e) < rows)


def _snapped(pieces: Sequence[tuple[float, float, int]], x: float) -> float:
    """`x`, or the bin boundary it converged to (a point mass is reached only to within rounding)."""
    tolerance = 1e-9 * max(1.0, abs(x))
    near = [edge for low, high, _ in pieces for edge in (low, high) if abs(edge - x) <= tolerance]
    return min(near, key=lambda edge: abs(edge - x)) if near else x


def _normalised(shares: tuple[float, ...]) -> tuple[float, ...]:
    total = sum(shares)
    return tuple(s / total for s in shares) if total > 0 else shares
