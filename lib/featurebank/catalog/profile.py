"""A profile of each feature in a group's latest published partition, in two passes per group.

Pass 1 is one `agg(...)` over the partition computing, for every feature at once: non-NULL
count, min/mean/max and quartiles (`percentile_approx`) for numeric features, approximate
distinct count for the others. Pass 2 is one `groupBy` over the partition unpivoted with
`stack(...)`: for every numeric feature the equal-width histogram bin of each value (bins from
pass 1's min and max), for every low-cardinality categorical feature the value itself. Never
one query per feature: the cost is two scans of one partition whatever the group's width.

NaN and ±Infinity in floating features are left out of the numeric statistics (they would
make min/max meaningless) and counted separately as `non_finite`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from featurebank.aggregators import FLOATING_TYPES

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

    from featurebank.compile.group import CompiledGroup

BINS = 12
TOP_VALUES = 6
MAX_CATEGORIES = 40  # a categorical feature with more distinct values shows only its distinct count
NUMERIC_TYPES = ("tinyint", "smallint", "int", "bigint", "float", "double")


@dataclass(frozen=True)
class FeatureProfile:
    """One feature in one partition. `histogram` holds (bin low, bin high, rows) for numeric
    features; `top_values` (value, rows) for categorical ones, most frequent first."""

    feature: str
    type: str
    rows: int
    nulls: int
    non_finite: int = 0
    minimum: float | str | None = None
    mean: float | None = None
    maximum: float | str | None = None
    quartiles: tuple[float, float, float] | None = None
    distinct: int | None = None
    histogram: tuple[tuple[float, float, int], ...] = ()
    top_values: tuple[tuple[str, int], ...] = ()

    @property
    def null_share(self) -> float:
        return self.nulls / self.rows if self.rows else 0.0

    @property
    def numeric(self) -> bool:
        return _is_numeric(self.type)


@dataclass(frozen=True)
class GroupProfile:
    """Every feature's profile in the group's latest partition (`feature_date`), at `version`."""

    group: str
    feature_date: date
    rows: int
    features: dict[str, FeatureProfile] = field(default_factory=dict)
    version: int | None = None


def _is_numeric(type_: str) -> bool:
    return type_ in NUMERIC_TYPES or type_.startswith("decimal")


def _finite(name: str, type_: str) -> Column:
    """The column with NaN/±Infinity as NULL (floating types), else as it is."""
    from pyspark.sql import functions as F

    column = F.col(f"`{name}`")
    if type_ in FLOATING_TYPES:
        bad = F.isnan(column) | (column == float("inf")) | (column == float("-inf"))
        return F.when(bad, F.lit(None)).otherwise(column).cast("double")
    return column.cast("double")


def latest_partition(spark: SparkSession, table_path: str) -> tuple[DataFrame, date, int] | None:
    """The table's rows of its latest `feature_date`, that date and the table version; None
    when there is no table or it holds no rows."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    from featurebank.io.tables import is_delta_table

    if not is_delta_table(spark, table_path):
        return None
    version_row = DeltaTable.forPath(spark, table_path).history(1).select("version").first()
    version = int(version_row[0]) if version_row else 0
    table = spark.read.format("delta").option("versionAsOf", version).load(table_path)
    latest = table.agg(F.max("feature_date")).first()
    if latest is None or latest[0] is None:
        return None
    return table.where(F.col("feature_date") == F.lit(latest[0])), latest[0], version


def profile_partition(frame: DataFrame, features: tuple[str, ...]) -> tuple[int, dict[str, FeatureProfile]]:
    """Profile `features` of `frame` in two passes (see the module docstring); returns the row
    count and each feature's profile, in `features` order. Unknown columns are skipped."""
    from pyspark.sql import functions as F

    types = {f.name: f.dataType.simpleString() for f in frame.schema.fields}
    present = [c for c in features if c in types]
    # ---- pass 1: one aggregate over every feature
    stats: list[Column] = [F.count(F.lit(1)).alias("__rows")]
    for i, name in enumerate(present):
        column, type_ = F.col(f"`{name}`"), types[name]
        stats.append(F.count(column).alias(f"n{i}"))
        if _is_numeric(type_):
            value = _finite(name, type_)
            stats += [F.count(value).alias(f"f{i}"), F.min(value).alias(f"min{i}"), F.avg(value).alias(f"avg{i}"),
                      F.max(value).alias(f"max{i}"),
                      F.percentile_approx(value, [0.25, 0.5, 0.75], 1000).alias(f"q{i}")]
        elif type_ in ("date", "timestamp", "timestamp_ntz"):
            stats += [F.min(column).alias(f"min{i}"), F.max(column).alias(f"max{i}"),
                      F.approx_count_distinct(column).alias(f"d{i}")]
        else:
            stats.append(F.approx_count_distinct(column).alias(f"d{i}"))
    first = frame.agg(*stats).first()
    assert first is not None
    row = first.asDict()
    rows = int(row["__rows"])

    # ---- pass 2: histogram bins and category counts, one groupBy over the unpivoted partition
    buckets: list[tuple[str, Column]] = []
    edges: dict[str, tuple[float, float]] = {}
    for i, name in enumerate(present):
        type_ = types[name]
        if _is_numeric(type_) and row.get(f"min{i}") is not None:
            low, high = float(row[f"min{i}"]), float(row[f"max{i}"])
            edges[name] = (low, high)
            if high > low:
                width = (high - low) / BINS
                value = _finite(name, type_)
                # least() skips NULLs (least(NULL, 11) = 11): keep NULL values out of every bin explicitly
                index = F.when(value.isNotNull(), F.least(F.floor((value - F.lit(low)) / F.lit(width)), F.lit(BINS - 1)))
            else:
                index = F.when(_finite(name, type_).isNotNull(), F.lit(0))
            buckets.append((name, index.cast("string")))
        elif not _is_numeric(type_) and type_ not in ("date", "timestamp", "timestamp_ntz") \
                and (row.get(f"d{i}") or 0) <= MAX_CATEGORIES:
            buckets.append((name, F.col(f"`{name}`").cast("string")))
    counts: dict[str, dict[str, int]] = {}
    if buckets and rows:
        pairs = ", ".join(f"'{i}', b{i}" for i in range(len(buckets)))
        stacked = frame.select(*[expr.alias(f"b{i}") for i, (_, expr) in enumerate(buckets)]).selectExpr(
            f"stack({len(buckets)}, {pairs}) as (feature_index, bucket)")
        for r in stacked.where("bucket is not null").groupBy("feature_index", "bucket").count().collect():
            name = buckets[int(r["feature_index"])][0]
            counts.setdefault(name, {})[r["bucket"]] = int(r["count"])

    profiles = {}
    for i, name in enumerate(present):
        type_ = types[name]
        non_null = int(row[f"n{i}"])
        values: dict[str, Any] = {}
        if _is_numeric(type_):
            finite = int(row[f"f{i}"])
            quartiles = row.get(f"q{i}")
            values = {"non_finite": non_null - finite, "minimum": _float(row[f"min{i}"]), "mean": _float(row[f"avg{i}"]),
                      "maximum": _float(row[f"max{i}"]),
                      "quartiles": tuple(float(q) for q in quartiles) if quartiles else None}
            if name in edges:
                low, high = edges[name]
                width = (high - low) / BINS if high > low else 0.0
                bins = BINS if high > low else 1
                found = counts.get(name, {})
                values["histogram"] = tuple(
                    (low + k * width, low + (k + 1) * width if width else high, found.get(str(k), 0)) for k in range(bins))
        else:
            if row.get(f"min{i}") is not None:
                values |= {"minimum": str(row[f"min{i}"]), "maximum": str(row[f"max{i}"])}
            values["distinct"] = int(row.get(f"d{i}") or 0)
            found = counts.get(name, {})
            values["top_values"] = tuple(sorted(found.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_VALUES])
        profiles[name] = FeatureProfile(name, type_, rows, rows - non_null, **values)
    return rows, profiles


def profile_latest_partition(spark: SparkSession, compiled: CompiledGroup) -> GroupProfile | None:
    """Profile every feature of the group in its latest published partition; None when
    the table does not exist yet or holds no rows."""
    found = latest_partition(spark, compiled.table_path)
    if found is None:
        return None
    frame, day, version = found
    rows, profiles = profile_partition(frame, compiled.feature_columns)
    return GroupProfile(compiled.group, day, rows, profiles, version)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)
