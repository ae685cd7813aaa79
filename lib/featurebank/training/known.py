"""Training sets as known then (`--as-known-at publish`, issue 22): pin, then join, per group.

`pin_known` records in the manifest what a knowledge-time join needs beyond the group's table:
the source's lag, every (date, run) version with its known interval (`compile.known`, from the
run log as of the pinned table version) and the history table's version. `known_join` builds
the features frame — the table's current rows tagged with the run that published them, plus
the superseded rows of the history table that the run log says were really replaced — and
joins it with `engine.known.known_snapshot_join`. A rebuild reads only the manifest's versions.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import replace
from datetime import date
from typing import TYPE_CHECKING, Any

from featurebank.compile.known import known_versions, target_date
from featurebank.errors import UsageError
from featurebank.training.manifest import GroupRead, PinnedGroup

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def refuse_row_level(reads: Sequence[GroupRead]) -> None:
    """`UsageError` when a row-level group is asked for as known at publish (not supported)."""
    rows = [r.group for r in reads if r.kind != "aggregation"]
    if rows:
        raise UsageError(f"--as-known-at publish supports aggregation groups only; {', '.join(rows)} "
                         f"{'is a row-level group' if len(rows) == 1 else 'are row-level groups'} (their rows carry "
                         "their own feature_ts); build without --as-known-at, or leave them out of the features")


def pin_known(spark: SparkSession, pinned: PinnedGroup, runs: Sequence[Any], lag_days: int, timezone: str,
              feature_root: str) -> PinnedGroup:
    """`pinned` with its known versions (runs up to its Delta version), lag and history version."""
    from featurebank.io.history import history_version, publications

    published = publications(runs, pinned.read.group, through_version=pinned.version)
    return replace(pinned, lag_days=lag_days, known=known_versions(published, lag_days, timezone),
                   history_version=history_version(spark, feature_root, pinned.read.group))


def known_join(spark: SparkSession, spine: DataFrame, table: DataFrame, pinned: PinnedGroup, spine_dates: Collection[date],
               feature_root: str, timezone: str, instant: str, status: str) -> DataFrame:
    """Join `pinned`'s features as known at each spine instant (`table`: keys, time columns, features)."""
    from pyspark.sql import functions as F

    from featurebank.engine.known import KNOWN_FROM, KNOWN_UNTIL, VERSION, known_snapshot_join
    from featurebank.engine.pit import FEATURE_DATE, FEATURE_TS
    from featurebank.io.history import PUBLISHED_BY, SUPERSEDED_BY, read_history

    read, lag = pinned.read, pinned.lag_days or 0
    wanted = {target_date(d, lag) for d in spine_dates}
    versions = [v for v in pinned.known if v.feature_date in wanted]
    current = {v.feature_date: v.run_id for v in versions if v.superseded_by is None}
    superseded = [v for v in versions if v.superseded_by is not None]
    features = table.where(F.col(FEATURE_DATE).isin(sorted(current))) if current else table.limit(0)
    run_of = F.create_map(*(x for d, run in current.items() for x in (F.lit(d), F.lit(run)))) if current else None
    features = features.withColumn(VERSION, run_of[F.col(FEATURE_DATE)] if run_of is not None
                                   else F.lit(None).cast("string")).drop(FEATURE_TS)
    usable = [v for v in versions if v.superseded_by is None]
    if superseded and pinned.history_version is not None:
        history = read_history(spark, feature_root, read.group, pinned.history_version)
        pairs = spark.createDataFrame([(v.feature_date, v.run_id, v.superseded_by) for v in superseded],
                                      f"{FEATURE_DATE} date, {PUBLISHED_BY} string, {SUPERSEDED_BY} string")
        # Only rows whose replacing run really published (a crashed run's archive is ignored).
        old = history.where(F.col(FEATURE_DATE).isin(sorted({v.feature_date for v in superseded}))).join(
            F.broadcast(pairs), on=[FEATURE_DATE, PUBLISHED_BY, SUPERSEDED_BY], how="inner")
        types, stored = dict(table.dtypes), dict((c, f) for f, c in read.features)
        old = old.select(*(_stored(c, stored.get(c, c), history.columns, types[c]) for c in features.columns if c != VERSION),
                         F.col(PUBLISHED_BY).alias(VERSION))
        features = features.unionByName(old)
        archived = {(r[0], r[1]) for r in old.select(FEATURE_DATE, VERSION).distinct().collect()}
        # A superseded version with no archived rows (replaced before history existed) is not known.
        usable += [v for v in superseded if (v.feature_date, v.run_id) in archived]
    frame = spark.createDataFrame(
        [(v.feature_date, v.run_id, v.known_from, v.known_until) for v in usable],
        f"{FEATURE_DATE} date, {VERSION} string, {KNOWN_FROM} timestamp, {KNOWN_UNTIL} timestamp")
    return known_snapshot_join(spine, features, frame, read.keys, timestamp_column=instant, timezone=timezone,
                               lag_days=lag, count_columns=read.count_columns, status_column=status)


def _stored(column: str, name: str, present: Sequence[str], spark_type: str) -> Any:
    """History column `name` as output `column`; NULL for a feature added after the rows were archived."""
    from pyspark.sql import functions as F

    return F.col(f"`{name}`").alias(column) if name in present else F.lit(None).cast(spark_type).alias(column)
