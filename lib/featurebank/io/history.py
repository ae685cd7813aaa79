"""Superseded snapshot values: the history table beside a group's table (knowledge time, issue 22).

`<feature_root>/_history/<group>` is a Delta table partitioned by `feature_date` holding, for
every publish that replaced dates already published, the rows it replaced: the group's
columns plus
- `_published_by`: the run that had published those values,
- `_known_at`: when they became known (`compile.known`: first publication at D + lag, a
  restatement at its publish time), as the run log said when they were archived,
- `_superseded_by`: the run replacing them,
- `_superseded_at`: the instant they were archived, just before that run's commit (its
  publish time, the run log's `finished_at`, is at or after it).
The group's table keeps SPEC's uniqueness and stays what Athena reads; nothing here relies on
Delta time travel (vacuum and log retention would erase it): rows are kept for conf's
`retention` (by `_superseded_at`) and deleted after.

`archive_superseded` writes before the group's overwrite commit, so a crash between the two
loses nothing; the rows of a run that then never published carry a `_superseded_by` the run
log does not list as published, and readers ignore them (`compile.known` versions pair each
`_published_by` with the run that really replaced it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from featurebank.compile.known import KnownVersion, Publication, known_versions

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from featurebank.io.runlog import RunRecord

PUBLISHED_BY = "_published_by"
KNOWN_AT = "_known_at"
SUPERSEDED_BY = "_superseded_by"
SUPERSEDED_AT = "_superseded_at"
HISTORY_COLUMNS = (PUBLISHED_BY, KNOWN_AT, SUPERSEDED_BY, SUPERSEDED_AT)
_DATE = "feature_date"


def history_path(feature_root: str, group: str) -> str:
    """Where `group`'s superseded rows live: `<feature_root>/_history/<group>`."""
    return f"{feature_root.rstrip('/')}/_history/{group}"


def publications(runs: Iterable[RunRecord], group: str, through_version: int | None = None) -> list[Publication]:
    """The published runs of `group` (up to Delta version `through_version`) as `compile.known` takes them."""
    return [Publication(r.run_id, int(r.delta_version), tuple(r.dates()), r.finished_at)
            for r in runs if r.group == group and r.status == "published" and r.delta_version is not None
            and (through_version is None or r.delta_version <= through_version)]


def current_versions(runs: Iterable[RunRecord], group: str, lag_days: int, timezone: str) -> dict[date, KnownVersion]:
    """Per published date of `group`, the version its table holds now (the last publication)."""
    current: dict[date, KnownVersion] = {}
    for version in known_versions(publications(runs, group), lag_days, timezone):
        current[version.feature_date] = version  # sorted by known_from: the last one wins
    return current


def archive_superseded(spark: SparkSession, table_path: str, feature_root: str, group: str, run_id: str,
                       dates: tuple[date, date], current: Mapping[date, KnownVersion], *, retention_days: int,
                       now: datetime, lake_formation: bool) -> int:
    """Copy the rows of published dates `dates` (inclusive) that run `run_id` is about to replace.

    `current` says which run published each date and when it became known (`current_versions`);
    dates it does not list were never published and are not copied. Appends to the history
    table in one commit (new group columns merged), then deletes history rows superseded more
    than `retention_days` before `now`. Returns the rows copied (0: nothing written).
    `lake_formation`: the tables are governed (their properties are read through Spark).
    """
    from pyspark.sql import functions as F

    from featurebank.io.tables import table_version

    first, last = dates
    replaced = {d: v for d, v in current.items() if first <= d <= last}
    if not replaced or table_version(spark, table_path) is None:  # no table (dropped by hand): nothing to keep
        return 0
    table = spark.read.format("delta").load(table_path).where(F.col(_DATE).isin(sorted(replaced)))
    by_run = F.create_map(*(x for d, v in replaced.items() for x in (F.lit(d), F.lit(v.run_id))))
    known = F.create_map(*(x for d, v in replaced.items() for x in (F.lit(d), F.lit(v.known_from))))
    rows = table.select(
        *(F.col(f"`{c}`") for c in table.columns),
        by_run[F.col(_DATE)].alias(PUBLISHED_BY),
        known[F.col(_DATE)].cast("timestamp").alias(KNOWN_AT),
        F.lit(run_id).alias(SUPERSEDED_BY),
        F.lit(now).cast("timestamp").alias(SUPERSEDED_AT),
    ).persist()
    try:
        count = rows.count()
        if count:
            (rows.write.format("delta").mode("append").partitionBy(_DATE).option("mergeSchema", "true")
             .option("userMetadata", f'{{"run_id": "{run_id}", "archived": {count}}}')
             .save(history_path(feature_root, group)))
    finally:
        rows.unpersist()
    if count:
        from featurebank.io.retention import ensure_retention

        ensure_retention(spark, history_path(feature_root, group), retention_days,  # pinned versions rebuild
                         lake_formation=lake_formation)
        expire(spark, feature_root, group, now - timedelta(days=retention_days))
    return count


def expire(spark: SparkSession, feature_root: str, group: str, before: datetime) -> None:
    """Delete history rows superseded before `before` (conf's retention; never time travel)."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    DeltaTable.forPath(spark, history_path(feature_root, group)).delete(
        F.col(SUPERSEDED_AT) < F.lit(before).cast("timestamp"))


def history_version(spark: SparkSession, feature_root: str, group: str) -> int | None:
    """The history table's current Delta version (None: nothing was ever superseded)."""
    from featurebank.io.tables import table_version

    return table_version(spark, history_path(feature_root, group))


def read_history(spark: SparkSession, feature_root: str, group: str, version: int) -> DataFrame:
    """The history table at Delta `version` (pinned by a training set, like the group's table)."""
    return spark.read.format("delta").option("versionAsOf", version).load(history_path(feature_root, group))
