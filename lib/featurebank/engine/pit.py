"""Point-in-time joins: attach to each spine row the feature values as known at its timestamp.

Pure DataFrame transformations, no I/O. Two joins, one per kind of feature group:

- `snapshot_join` (aggregation groups): the daily snapshot of `feature_date = date(ts)` in the
  project time zone, by a plain equi-join (a snapshot for D is valid from D 00:00 on, so it
  never leaks). Where the date was published but the entity has no row, count-family
  features are 0 and the rest NULL; where the date was never published, everything is NULL.
- `asof_join` (row-level groups): the latest feature row with `feature_ts <= ts` (and
  `feature_ts > ts - ttl`), else NULL. Not join-then-rank (which explodes on hot keys, see
  Feast #1591): the spine rows and the feature rows are unioned and each spine row takes
  `last(struct(...), ignorenulls)` over `PARTITION BY keys ORDER BY ts`, feature rows first
  on equal timestamps — the method of Tecton and Databricks Tempo.

Both keep every spine row (duplicates and NULL keys included) and its columns, unchanged and
in order, and append the feature columns. Both can add a status column saying why a row got
what it got (`STATUS_*`), which the training-set summary counts in one pass.

Contract for `features`: the entity keys (same names as in the spine), `feature_ts`
(instants; aggregation tables also `feature_date`), then the feature columns exactly as they
should be named in the output. Spine timestamps are instants (`TimestampType`).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import date
from typing import TYPE_CHECKING

from featurebank.days import MICROS_PER_DAY, local_date

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

FEATURE_DATE = "feature_date"
FEATURE_TS = "feature_ts"
TIME_COLUMNS = (FEATURE_DATE, FEATURE_TS)

STATUS_MATCHED = "matched"  # a feature row was found (snapshot of date(ts) / latest row in ttl)
STATUS_FILLED = "filled"  # aggregation: date published, entity had no row (counts 0)
STATUS_UNCOVERED = "uncovered"  # aggregation: the group never published date(ts)
STATUS_EXPIRED = "expired"  # row-level: the latest row is older than the ttl
STATUS_NO_ROW = "no_row"  # row-level: no row at or before ts (entity unseen, or ts before its first row)
STATUS_NULL_INPUT = "null_input"  # a spine key or the timestamp is NULL: nothing can match

_P = "__fb_pit_"  # prefix of the join's own temporary columns


def feature_columns_of(features: DataFrame, keys: Sequence[str]) -> list[str]:
    """The feature columns of a features frame: everything but the keys and time columns."""
    return [c for c in features.columns if c not in keys and c not in TIME_COLUMNS]


def _check_inputs(spine: DataFrame, features: DataFrame, keys: Sequence[str], needed: Sequence[str]) -> None:
    missing_spine = [k for k in keys if k not in spine.columns]
    missing_features = [c for c in (*keys, *needed) if c not in features.columns]
    if missing_spine or missing_features:
        raise ValueError(
            f"point-in-time join needs keys {list(keys)} in the spine (missing {missing_spine}) and "
            f"{[*keys, *needed]} in the features (missing {missing_features})"
        )
    clash = [c for c in feature_columns_of(features, keys) if c in spine.columns]
    if clash:
        raise ValueError(f"feature columns {clash} already exist in the spine; rename them first")


def _spine_key(spine: DataFrame, features: DataFrame, key: str) -> Column:
    """The spine's key, cast to the feature table's type when they differ (e.g. CSV ints)."""
    from pyspark.sql import functions as F

    spine_type = dict(spine.dtypes)[key]
    feature_type = dict(features.dtypes)[key]
    column = F.col(key)
    return column if spine_type == feature_type else column.cast(feature_type)


def snapshot_join(
    spine: DataFrame,
    features: DataFrame,
    keys: Sequence[str],
    *,
    timestamp_column: str,
    timezone: str,
    published_dates: Collection[date],
    count_columns: Collection[str] = (),
    status_column: str | None = None,
    small_spine: bool = False,
    broadcast_features: bool = False,
) -> DataFrame:
    """Join each spine row to its entity's daily snapshot of `date(ts)` (aggregation groups).

    With `small_spine` (the spine fits in executor memory: up to a few million rows), the
    feature table is first semi-joined against a broadcast of the spine's (keys, date), so
    only the snapshot rows some spine row asks for are shuffled for the outer join, not the
    whole table. That semi-join compares a 64-bit hash of (keys, date) (`xxhash64`, typed as
    the table holds them): Spark then probes a long-keyed map for each of the table's rows
    instead of hashing and comparing a row of keys (the probe was a quarter of a 1 M-row
    build's CPU, issue 20). A collision only lets a row through that the outer join, on the
    exact keys and date, then matches with no spine row: the result is the same. With
    `broadcast_features` (the caller knows those rows fit in memory) they are broadcast
    instead: the spine is not shuffled and its rows keep their partitions and order (a
    broadcast hash join streams them), so a caller need not sort the result again.

    `features` holds keys, `feature_date` and the feature columns; (keys, feature_date) is
    unique (the publish gate guarantees it). `published_dates` are the snapshot dates the
    group published: for those, a missing entity row means "no events", so `count_columns`
    get 0 and the other features NULL; for any other date every feature is NULL.
    A NULL key or timestamp matches nothing and gets NULLs. Returns the spine's columns in
    order, then the feature columns; one row per spine row. Raises ValueError on a frame
    that breaks the contract (a programming error, not a user one).
    """
    from pyspark.sql import functions as F

    _check_inputs(spine, features, keys, [FEATURE_DATE])
    names = feature_columns_of(features, keys)
    date_col = f"{_P}date"
    right = features.select(
        *(F.col(k).alias(f"{_P}k{i}") for i, k in enumerate(keys)),
        F.col(FEATURE_DATE).alias(date_col),
        F.lit(True).alias(f"{_P}hit"),
        *names,
    )
    left = spine.withColumn(f"{_P}spine_date", local_date(F.col(timestamp_column), timezone))
    condition = [_spine_key(spine, features, k) == F.col(f"{_P}k{i}") for i, k in enumerate(keys)]
    condition.append(F.col(f"{_P}spine_date") == F.col(date_col))
    null_input = F.col(f"{_P}spine_date").isNull()
    for k in keys:
        null_input = null_input | F.col(k).isNull()
    if small_spine:  # (keys, date) asked for, as one 64-bit hash: a long-keyed probe per table row
        asked_keys = [_spine_key(spine, features, k) for k in keys]
        asked = left.where(~null_input).select(F.xxhash64(*asked_keys, F.col(f"{_P}spine_date")).alias(f"{_P}asked"))
        offered = F.xxhash64(*(F.col(f"{_P}k{i}") for i in range(len(keys))), F.col(date_col))
        right = right.join(F.broadcast(asked), on=offered == F.col(f"{_P}asked"), how="left_semi")
    joined = left.join(F.broadcast(right) if broadcast_features else right, on=condition, how="left")

    dates = sorted(set(published_dates))
    covered = F.col(f"{_P}spine_date").isin(dates) if dates else F.lit(False)
    hit = F.col(f"{_P}hit").isNotNull()
    fill_zero = ~hit & covered & ~null_input

    outputs = []
    for name in names:
        value = F.col(name)
        if name in count_columns:
            value = F.when(fill_zero, F.lit(0).cast(dict(features.dtypes)[name])).otherwise(value)
        outputs.append(value.alias(name))
    if status_column is not None:
        status = (
            F.when(null_input, STATUS_NULL_INPUT)
            .when(hit, STATUS_MATCHED)
            .when(covered, STATUS_FILLED)
            .otherwise(STATUS_UNCOVERED)
        )
        outputs.append(status.alias(status_column))
    return joined.select(*(F.col(c) for c in spine.columns), *outputs)


def asof_join(
    spine: DataFrame,
    features: DataFrame,
    keys: Sequence[str],
    ts_col: str,
    ttl_days: int | None = None,
    *,
    status_column: str | None = None,
) -> DataFrame:
    """Give each spine row the latest feature row of its entity at its timestamp (row-level groups).

    Visible rows: `feature_ts <= ts`, and `feature_ts > ts - ttl_days * 24h` when a ttl is
    set (a row stamped exactly at `ts` is visible). No visible row, a NULL key or a NULL
    timestamp: every feature NULL. (keys, feature_ts) is unique in `features` (the publish
    gate guarantees it). Returns the spine's columns in order, then the feature columns; one
    row per spine row, duplicates kept. Raises ValueError on a frame that breaks the contract.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    _check_inputs(spine, features, keys, [FEATURE_TS])
    names = feature_columns_of(features, keys)
    key_cols = [f"{_P}k{i}" for i in range(len(keys))]
    order_col, is_spine, spine_struct, row_struct = f"{_P}t", f"{_P}is_spine", f"{_P}spine", f"{_P}row"
    # One schema for both halves: keys, order time, a flag, and one struct per side (NULL on the other).
    spine_side = spine.select(
        *(_spine_key(spine, features, k).alias(c) for k, c in zip(keys, key_cols)),
        F.col(ts_col).cast("timestamp").alias(order_col),
        F.lit(1).alias(is_spine),
        F.struct(*(F.col(c) for c in spine.columns)).alias(spine_struct),
        F.lit(None).cast(features.select(F.struct(FEATURE_TS, *names)).schema[0].dataType).alias(row_struct),
    )
    not_null = F.lit(True)
    for k in keys:
        not_null = not_null & F.col(k).isNotNull()
    feature_side = features.where(not_null & F.col(FEATURE_TS).isNotNull()).select(
        *(F.col(k).alias(c) for k, c in zip(keys, key_cols)),
        F.col(FEATURE_TS).alias(order_col),
        F.lit(0).alias(is_spine),
        F.lit(None).cast(spine_side.schema[spine_struct].dataType).alias(spine_struct),
        F.struct(FEATURE_TS, *names).alias(row_struct),
    )
    # Feature rows sort before spine rows on equal time, so feature_ts == ts is visible.
    window = (
        Window.partitionBy(*key_cols)
        .orderBy(F.col(order_col).asc_nulls_first(), F.col(is_spine).asc())
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    latest = f"{_P}latest"
    unioned = spine_side.unionByName(feature_side)
    found = unioned.withColumn(latest, F.last(row_struct, ignorenulls=True).over(window)).where(F.col(is_spine) == 1)

    null_input = F.col(order_col).isNull()
    for c in key_cols:
        null_input = null_input | F.col(c).isNull()
    latest_ts = F.col(f"{latest}.{FEATURE_TS}")
    has_row = latest_ts.isNotNull() & ~null_input
    if ttl_days is None:
        visible = has_row
    else:
        horizon = F.unix_micros(F.col(order_col)) - F.lit(ttl_days * MICROS_PER_DAY)
        visible = has_row & (F.unix_micros(latest_ts) > horizon)

    outputs = [F.when(visible, F.col(latest).getField(n)).alias(n) for n in names]
    if status_column is not None:
        status = (
            F.when(null_input, STATUS_NULL_INPUT)
            .when(visible, STATUS_MATCHED)
            .when(has_row, STATUS_EXPIRED)
            .otherwise(STATUS_NO_ROW)
        )
        outputs.append(status.alias(status_column))
    spine_columns = [F.col(spine_struct).getField(c).alias(c) for c in spine.columns]
    return found.select(*spine_columns, *outputs)
