"""The one pass: every metric the covered checks need, from one `agg` over the persisted batch.

A check is *covered* when its expectation is in `COVERED` and every argument it sets is one
this module reproduces exactly (`covers`); anything else — another expectation, a
`condition_parser` other than `spark`, a missing column, arguments GX would refuse — goes to GX
(`gate.gx`), which stays the engine of record. For a covered check the metrics are the ones
GX's Spark engine computes, built from the same Spark expressions, so the counts are equal
by construction (tests/test_gate_one_pass.py compares them with GX on random batches):

- column checks: GX filters the batch by `row_condition` (`DataFrame.filter(text)`: rows
  where it is TRUE), counts the rows (element count), the NULLs of the column, and the rows
  where `column IS NOT NULL AND NOT <condition>` is TRUE (the unexpected count; a NULL
  condition is not unexpected). `expect_column_values_to_not_be_null` counts NULLs as its
  unexpected rows instead. NaN is not NULL (Spark's `isNull`).
- `expect_compound_columns_to_be_unique`: GX drops the rows `ignore_row_if` names, then a row
  is unexpected when its tuple of values (NULLs equal, as in a window partition) occurs more
  than once. When the tuple holds a DATE (the always-on key check: keys and `feature_date`),
  one bit per day in a BIGINT per 64 days proves every tuple distinct from a grouping each
  task folds to a few rows per key (`_day_bitmaps`); otherwise, or when it finds a tuple
  twice, the count is a `groupBy` of the columns and the rows of each tuple.

Every row-level count of every check is one `sum(CASE ...)` in a single `agg`: one scan of
the in-memory batch for all of them, where GX runs one job per metric domain. Uniqueness is
one more scan per compound check (normally one: the always-on key check).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from featurebank.definitions.expectations import tested_columns

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

    from featurebank.compile.group import CheckSpec

_COMMON = frozenset({"mostly", "row_condition", "condition_parser"})
COVERED: dict[str, frozenset[str]] = {
    "expect_column_values_to_not_be_null": _COMMON | {"column"},
    "expect_column_values_to_be_between": _COMMON | {"column", "min_value", "max_value", "strict_min", "strict_max"},
    "expect_column_values_to_be_in_set": _COMMON | {"column", "value_set"},
    "expect_compound_columns_to_be_unique": _COMMON | {"column_list", "ignore_row_if"},
}
UNIQUE = "expect_compound_columns_to_be_unique"
NOT_NULL = "expect_column_values_to_not_be_null"
_IGNORE_ROW_IF = ("all_values_are_missing", "any_value_is_missing", "never")


@dataclass(frozen=True)
class Counts:
    """What GX's verdict on one check is computed from.

    `element_count`: rows in the check's domain (after `row_condition`); `considered`: the rows
    the `mostly` ratio is over (non-NULL for column checks, all for not-null, the rows
    `ignore_row_if` keeps for uniqueness); `unexpected_count`: rows that fail the check, None
    when GX's sum runs over no rows at all (an empty domain; for uniqueness, no kept row).
    """

    element_count: int
    considered: int
    unexpected_count: int | None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def covers(check: CheckSpec, columns: tuple[str, ...]) -> bool:
    """True when the one pass reproduces GX exactly for `check` on a batch with `columns`."""
    allowed = COVERED.get(check.expectation)
    arguments = check.arguments
    if allowed is None or not set(arguments) <= allowed:
        return False
    tested = tested_columns(arguments)
    if not tested or not set(tested) <= set(columns):
        return False  # GX reports a missing column as a failed, unevaluated check
    mostly = arguments.get("mostly", 1)
    if not _number(mostly) or not 0 <= mostly <= 1:
        return False
    condition = arguments.get("row_condition")
    parser = arguments.get("condition_parser")
    if condition is not None and (not isinstance(condition, str) or parser != "spark"):
        return False
    if condition is None and parser not in (None, "spark"):
        return False
    if check.expectation == "expect_column_values_to_be_between":
        return _bounds_ok(arguments)
    if check.expectation == "expect_column_values_to_be_in_set":
        value_set = arguments.get("value_set")
        return isinstance(value_set, (list, tuple)) and all(_number(v) or isinstance(v, str) for v in value_set)
    if check.expectation == UNIQUE:
        rule = arguments.get("ignore_row_if", "all_values_are_missing")
        return rule in _IGNORE_ROW_IF and len(set(tested)) == len(tested)
    return True


def _bounds_ok(arguments: dict[str, Any]) -> bool:
    low, high = arguments.get("min_value"), arguments.get("max_value")
    if low is None and high is None:
        return False  # GX raises; let it say so
    bounds = [b for b in (low, high) if b is not None]
    if not all(_number(b) for b in bounds):
        return False  # GX refuses string bounds; dates and the like stay with GX
    flags = [arguments.get("strict_min", False), arguments.get("strict_max", False)]
    if not all(isinstance(f, bool) for f in flags):
        return False
    return low is None or high is None or low <= high


def domain(check: CheckSpec) -> Column:
    """The rows GX looks at for `check`: its `row_condition` (TRUE only), else every row."""
    from pyspark.sql import functions as F

    condition = check.arguments.get("row_condition")
    return F.expr(condition) if isinstance(condition, str) else F.lit(True)


def expected(check: CheckSpec) -> Column:
    """GX's Spark condition for a covered column check (`column_values.between`, `.in_set`)."""
    from pyspark.sql import functions as F

    arguments = check.arguments
    column = F.col(arguments["column"])
    if check.expectation == "expect_column_values_to_be_in_set":
        return column.isin(list(arguments["value_set"]))
    low, high = arguments.get("min_value"), arguments.get("max_value")
    above = (column > F.lit(low)) if arguments.get("strict_min") else (column >= F.lit(low))
    below = (column < F.lit(high)) if arguments.get("strict_max") else (column <= F.lit(high))
    if low is None:
        return below
    if high is None:
        return above
    return above & below


def unexpected(check: CheckSpec) -> Column:
    """TRUE on a row of the check's domain that fails a covered column check (GX's condition)."""
    from pyspark.sql import functions as F

    column = F.col(check.arguments["column"])
    if check.expectation == NOT_NULL:
        return ~column.isNotNull()
    return column.isNotNull() & ~expected(check)


def kept(check: CheckSpec) -> Column:
    """The rows of a uniqueness check's domain that `ignore_row_if` keeps."""
    from pyspark.sql import functions as F

    columns = [F.col(c) for c in tested_columns(check.arguments)]
    rule = check.arguments.get("ignore_row_if", "all_values_are_missing")
    if rule == "never":
        return domain(check)
    missing = [c.isNull() for c in columns]
    combine = (lambda a, b: a & b) if rule == "all_values_are_missing" else (lambda a, b: a | b)
    dropped = missing[0]
    for condition in missing[1:]:
        dropped = combine(dropped, condition)
    return domain(check) & ~dropped


def one_pass(batch: DataFrame, checks: tuple[CheckSpec, ...]) -> list[Counts]:
    """The `Counts` of each covered check (in order): one `agg` for every column check plus
    one `groupBy` per uniqueness check, over the persisted batch."""
    return measure(batch, checks)[0]


def measure(batch: DataFrame, checks: tuple[CheckSpec, ...], per_date: Sequence[Column] = (),
            projected: Mapping[str, Column] | None = None) -> tuple[list[Counts], dict[Any, list[int]]]:
    """`one_pass`'s counts, and the `per_date` sums (each an aggregate Column, e.g. the drift
    checks' bucket counts, which may read the `projected` columns added to the batch first)
    for each `feature_date` of the batch, from the same scan.

    With `per_date`, the one `agg` becomes `groupBy(feature_date).agg(...)`: every row-level
    count is the sum of its per-date sums (a NULL date is a group of its own), so the checks'
    counts are the same, and the drift statistics cost no scan of their own (issue 21)."""
    from pyspark.sql import functions as F

    def count_true(condition: Column) -> Column:
        # GX's own aggregate: sum(CASE WHEN cond THEN 1 ELSE 0 END); NULL is not counted
        return F.sum(F.when(condition, 1).otherwise(0))

    sums: list[Column] = []
    slots: list[tuple[int, ...]] = []
    for check in checks:
        start = len(sums)
        if check.expectation == UNIQUE:
            sums.append(count_true(domain(check)))
        else:
            column = F.col(check.arguments["column"])
            where = domain(check)
            sums += [count_true(where), count_true(where & column.isNull()), count_true(where & unexpected(check))]
        slots.append(tuple(range(start, len(sums))))
    by_date: dict[Any, list[int]] = {}
    if per_date:
        values = [0] * len(sums)
        for row in batch.withColumns(dict(projected or {})).groupBy("feature_date").agg(*sums, *per_date).collect():
            for i in range(len(sums)):
                values[i] += int(row[1 + i] or 0)
            by_date[row[0]] = [int(v or 0) for v in row[1 + len(sums):]]
    else:
        values = [int(v or 0) for v in batch.agg(*sums).first()] if sums else []  # type: ignore[union-attr]
    counts: list[Counts] = []
    for check, slot in zip(checks, slots):
        if check.expectation == UNIQUE:
            considered, duplicated = _uniqueness(batch, check)
            counts.append(Counts(values[slot[0]], considered, duplicated if considered else None))
        elif check.expectation == NOT_NULL:
            total, nulls, _ = (values[i] for i in slot)
            counts.append(Counts(total, total, nulls if total else None))
        else:
            total, nulls, bad = (values[i] for i in slot)
            counts.append(Counts(total, total - nulls, bad if total else None))
    return counts, by_date


def duplicate_groups(batch: DataFrame, check: CheckSpec) -> DataFrame:
    """Each distinct tuple of a uniqueness check's columns among the rows it keeps, with its
    row count `n`: a `groupBy` on the columns (no exchange when the batch is partitioned by a
    subset of them)."""
    from pyspark.sql import functions as F

    columns = list(tested_columns(check.arguments))
    return batch.where(kept(check)).groupBy(*columns).agg(F.count(F.lit(1)).alias("n"))


def _uniqueness(batch: DataFrame, check: CheckSpec) -> tuple[int, int]:
    """(rows kept, rows whose tuple occurs more than once) for a uniqueness check: from
    `_day_bitmaps` when the tuple has a DATE and it finds every tuple once, else from the
    tuples' row counts (`duplicate_groups`)."""
    from pyspark.sql import functions as F

    kept_rows = _day_bitmaps(batch, check)
    if kept_rows is not None:
        return kept_rows, 0
    n = F.col("n")
    row = duplicate_groups(batch, check).agg(F.sum(n), F.sum(F.when(n > 1, n).otherwise(0))).first()
    assert row is not None  # a global aggregate always returns one row
    return int(row[0] or 0), int(row[1] or 0)


def _day_bitmaps(batch: DataFrame, check: CheckSpec) -> int | None:
    """The rows a uniqueness check keeps when no tuple of its columns occurs twice; None when
    one might (or the tuple has no DATE column).

    A tuple that holds a DATE is grouped by its other columns and the date's 64-day block
    (`floor(days / 64)`, NULL for a NULL date), each row setting bit `days mod 64` of a BIGINT
    (bit 0 for a NULL date): a group's rows are pairwise distinct tuples exactly when the
    number of bits its `bit_or` sets equals its row count. Each task's partial aggregate
    folds a key's rows into one row per 64 days, so the exchange moves a key's blocks, not
    its rows: the uniqueness of a year of daily snapshots costs a scan, where the rows'
    own `groupBy` shuffles and hashes every row (20.6 s of a 35.9 M-row backfill's 23 s gate).
    Any group in doubt (a duplicate) sends the caller to the exact count.
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import DateType

    columns = list(tested_columns(check.arguments))
    dated = [c for c in columns if isinstance(batch.schema[c].dataType, DateType)]
    if not dated:
        return None
    days = F.datediff(F.col(dated[0]), F.lit("1970-01-01").cast("date"))
    bit = F.call_function("shiftleft", F.lit(1).cast("bigint"), F.coalesce(F.pmod(days, F.lit(64)), F.lit(0)))
    others = [F.col(c) for c in columns if c != dated[0]]
    blocks = (batch.where(kept(check)).groupBy(*others, F.floor(days / 64).alias("__fb_block"))
              .agg(F.count(F.lit(1)).alias("n"), F.bit_or(bit).alias("bits")))
    n = F.col("n")
    row = blocks.agg(F.sum(n), F.sum(F.when(n != F.bit_count("bits"), 1).otherwise(0))).first()
    assert row is not None  # a global aggregate always returns one row
    return None if row[1] else int(row[0] or 0)


def examples(batch: DataFrame, check: CheckSpec, index: tuple[str, ...], limit: int) -> list[dict[str, Any]]:
    """Up to `limit` offending rows of a failed covered check, as dicts: the checked column(s)
    first, then the `index` columns (keys, `feature_date`). A second small query, run on
    failure only."""
    from pyspark.sql import functions as F

    columns = tested_columns(check.arguments)
    if check.expectation == UNIQUE:
        rows = duplicate_groups(batch, check).where(F.col("n") > 1).select(*columns).limit(limit).collect()
        return [row.asDict() for row in rows]
    shown = list(dict.fromkeys((*columns, *index)))
    rows = batch.where(domain(check) & unexpected(check)).select(*shown).limit(limit).collect()
    return [row.asDict() for row in rows]
