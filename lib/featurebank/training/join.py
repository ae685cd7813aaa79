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
    from collections.abc import Sequence

    from pyspark.sql import Column, DataFrame, SparkSession

    from featurebank.training.manifest import PinnedGroup
    from featurebank.training.spine import SpineProfile

JOINED_DATE = "__fb_joined_date"  # with `chosen`: the snapshot date a row was joined with (NULL: none)
JOINED_TS = "__fb_joined_ts"  # with `chosen`: the row-level version's feature_ts a row was joined with

# The most bytes of pruned feature rows a build broadcasts to keep the spine unshuffled (`broadcasts`);
# conf's `spark.conf` may set it. Spark's own `spark.sql.autoBroadcastJoinThreshold` = -1 turns it off.
BROADCAST_BYTES_CONF = "spark.featurebank.training.broadcastBytes"
BROADCAST_BYTES = 128 * 1024 * 1024  # where the driver's heap cannot be read
# Unset, the limit is this share of the driver's heap (the driver collects the rows, builds the hash
# table and cuts it into blocks: about three copies), and at most half of `spark.driver.maxResultSize`,
# which a broadcast's collect must stay under.
BROADCAST_HEAP_SHARE = 16
_BYTES_PER_VALUE = {"string": 32, "date": 4, "boolean": 1, "int": 4, "smallint": 2, "tinyint": 1}  # else 8 (16: decimal)


def group_columns(pinned: PinnedGroup) -> list[Column]:
    """The columns a join reads from `pinned`'s table: keys, date and time, features as their
    training-set column names."""
    from pyspark.sql import functions as F

    from featurebank.engine import pit

    read = pinned.read
    columns = [F.col(f"`{k}`") for k in read.keys]
    columns += [F.col(pit.FEATURE_DATE), F.col(pit.FEATURE_TS)]
    return columns + [F.col(f"`{feature}`").alias(column) for feature, column in read.features]


def broadcasts(spark: SparkSession, tables: Sequence[tuple[PinnedGroup, DataFrame]], rows: int) -> bool:
    """Whether a build of a `rows`-row spine joins every group by broadcasting its pruned feature rows.

    Only aggregation groups (a row-level as-of join sorts by time per entity anyway), and only
    when each group's pruned rows fit: at most one feature row per spine row (a snapshot row is
    unique per keys and date), estimated at `rows` x the columns' width, under conf's
    `BROADCAST_BYTES_CONF` (default `broadcast_limit`). False when Spark's broadcasts are off.
    """
    if not tables or any(p.read.kind != "aggregation" for p, _ in tables):
        return False
    if str(spark.conf.get("spark.sql.autoBroadcastJoinThreshold", None)).strip() == "-1":
        return False
    limit = int(spark.conf.get(BROADCAST_BYTES_CONF, None) or broadcast_limit(spark))
    for pinned, table in tables:
        types = dict(table.dtypes)
        names = [*pinned.read.keys, *(feature for feature, _ in pinned.read.features)]
        width = 24 + sum(_BYTES_PER_VALUE.get(types.get(n, ""), 16 if types.get(n, "").startswith("decimal") else 8)
                         for n in names)
        if rows * width > limit:
            return False
    return True


def broadcast_limit(spark: SparkSession) -> int:
    """The bytes of pruned feature rows a build may broadcast when conf does not say: a
    `BROADCAST_HEAP_SHARE`th of the driver's heap (an 8 GiB driver: 512 MiB, a 1 GiB one: 64 MiB),
    at most half of `spark.driver.maxResultSize`; `BROADCAST_BYTES` where the driver's JVM cannot be
    asked (Spark Connect). A 1 M-row spine of 15 features needs ~180 MB (notes/20-training.md)."""
    from featurebank.io.spark import driver_memory

    memory = driver_memory(spark)
    if memory is None:
        return BROADCAST_BYTES
    heap, result = memory
    limit = heap // BROADCAST_HEAP_SHARE
    return min(limit, result // 2) if result > 0 else limit


def join_group(spine: DataFrame, table: DataFrame, pinned: PinnedGroup, profile: SpineProfile, *, instant: str,
               timezone: str, status_column: str, small_spine: bool, chosen: bool = False,
               broadcast: bool = False) -> DataFrame:
    """`spine` (with the instant column `instant`) joined with `pinned`'s features from `table`
    (the group's table at the pinned version), one row per spine row, and `status_column`
    saying why each row got what it got (`engine.pit.STATUS_*`). With `chosen`, two more
    columns name the snapshot date / version each row was joined with (`JOINED_DATE`, `JOINED_TS`).
    With `broadcast` (`broadcasts` said so; aggregation groups) the pruned feature rows are
    broadcast and the spine keeps its order."""
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
                                 small_spine=small_spine, broadcast_features=broadcast)
    from featurebank.training.reads import prune_row_level

    table = prune_row_level(table, profile, read.ttl_days)
    return pit.asof_join(spine, table.select(*columns).drop(pit.FEATURE_DATE), read.keys, instant,
                         read.ttl_days, status_column=status_column)
