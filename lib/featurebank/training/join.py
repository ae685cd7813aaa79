"""One group's point-in-time join into a training set: the one rule for which snapshot or version a row gets.

`join_group` is the step a build runs per group (`training.api.FeatureStore._build`) and the
step `featurebank explain --at` runs on a one-row spine (`training.joined`), so what explain
says a training-set row was joined with is what a build joins, by construction: an
aggregation group's snapshot of the row's local date (`engine.pit.snapshot_join`, with the
pinned version's published dates and the count features' 0-fill), a row-level group's latest
version at or before the row's instant within the ttl (`engine.pit.asof_join`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

    from featurebank.training.manifest import PinnedGroup
    from featurebank.training.spine import SpineProfile

JOINED_DATE = "__fb_joined_date"  # with `chosen`: the snapshot date a row was joined with (NULL: none)
JOINED_TS = "__fb_joined_ts"  # with `chosen`: the row-level version's feature_ts a row was joined with


def group_columns(pinned: PinnedGroup) -> list[Column]:
    """The columns a join reads from `pinned`'s table: keys, date and time, features as their
    training-set column names."""
    from pyspark.sql import functions as F

    from featurebank.engine import pit

    read = pinned.read
    columns = [F.col(f"`{k}`") for k in read.keys]
    columns += [F.col(pit.FEATURE_DATE), F.col(pit.FEATURE_TS)]
    return columns + [F.col(f"`{feature}`").alias(column) for feature, column in read.features]


def join_group(spine: DataFrame, table: DataFrame, pinned: PinnedGroup, profile: SpineProfile, *, instant: str,
               timezone: str, status_column: str, small_spine: bool, chosen: bool = False) -> DataFrame:
    """`spine` (with the instant column `instant`) joined with `pinned`'s features from `table`
    (the group's table at the pinned version), one row per spine row, and `status_column`
    saying why each row got what it got (`engine.pit.STATUS_*`). With `chosen`, two more
    columns name the snapshot date / version each row was joined with (`JOINED_DATE`, `JOINED_TS`)."""
    from pyspark.sql import functions as F

    from featurebank.engine import pit

    read = pinned.read
    columns = group_columns(pinned)
    if chosen:
        columns += [F.col(pit.FEATURE_DATE).alias(JOINED_DATE), F.col(pit.FEATURE_TS).alias(JOINED_TS)]
    if read.kind == "aggregation":
        wanted = sorted(profile.dates)
        table = table.where(F.col(pit.FEATURE_DATE).isin(wanted)) if wanted else table.limit(0)
        return pit.snapshot_join(spine, table.select(*columns), read.keys, timestamp_column=instant,
                                 timezone=timezone, published_dates=pinned.published,
                                 count_columns=read.count_columns, status_column=status_column,
                                 small_spine=small_spine)
    from featurebank.training.reads import prune_row_level

    table = prune_row_level(table, profile, read.ttl_days)
    return pit.asof_join(spine, table.select(*columns).drop(pit.FEATURE_DATE), read.keys, instant,
                         read.ttl_days, status_column=status_column)
