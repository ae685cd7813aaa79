"""What a training-set build reads from each group's table: columns, coverage, partitions.

`group_reads` turns resolved features into one `GroupRead` per group; `published_dates` says
which snapshot dates a pinned table version covers (from the run log); `held_dates` which of
some dates hold rows anyway; `prune_row_level` skips the partitions of a row-level table no
spine row can see. `training.api.FeatureStore` calls them, in that order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from featurebank.definitions.refs import SelectedFeature
from featurebank.training.manifest import GroupRead, PinnedGroup

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from featurebank.definitions.model import Project


def group_reads(project: Project, selected: Sequence[SelectedFeature]) -> tuple[GroupRead, ...]:
    """What to read from each group's table for these features (groups in first-request order)."""
    from featurebank.definitions.model import COUNT_FUNCTIONS

    reads: dict[str, list[SelectedFeature]] = {}
    for s in selected:
        reads.setdefault(s.group, []).append(s)
    result = []
    for name, features in reads.items():
        group = project.groups[name]
        counts = {n for a in group.aggregations if a.function in COUNT_FUNCTIONS for n in a.output_names()}
        result.append(GroupRead(
            group=name,
            kind=group.kind,
            keys=project.entities[group.entity].keys,
            ttl_days=group.ttl_days,
            table_path=project.table_path(name),
            features=tuple((s.feature, s.column) for s in features),
            count_columns=tuple(s.column for s in features if s.feature in counts),
        ))
    return tuple(result)


def published_dates(runs: Sequence[Any], group: str, version: int) -> tuple[Any, ...]:
    """Snapshot dates of `group` published by runs whose commit is part of table `version`.

    Coverage comes from the run log (a date with no active entity is still published), as of
    the version read: a run committed after it does not cover dates for this read.
    """
    dates = set()
    for record in runs:
        if record.group == group and record.status == "published" and (
                record.delta_version is None or record.delta_version <= version):
            dates.update(record.dates())
    return tuple(sorted(dates))


def held_dates(spark: SparkSession, pinned: PinnedGroup, dates: Sequence[Any]) -> set[Any]:
    """Which of `dates` hold rows in the group's table at the pinned version (partition-pruned)."""
    from pyspark.sql import functions as F

    from featurebank.engine.pit import FEATURE_DATE

    table = spark.read.format("delta").option("versionAsOf", pinned.version).load(pinned.read.table_path)
    return {row[0] for row in table.where(F.col(FEATURE_DATE).isin(list(dates))).select(FEATURE_DATE).distinct().collect()}


def prune_row_level(table: DataFrame, profile: Any, ttl_days: int | None) -> DataFrame:
    """Skip partitions no spine row can see: after its last date, or older than its ttl."""
    from datetime import timedelta

    from pyspark.sql import functions as F

    from featurebank.engine.pit import FEATURE_DATE

    if not profile.dates:
        return table.limit(0)
    # A day of slack either side: feature_date and the spine dates may be cut in different zones.
    table = table.where(F.col(FEATURE_DATE) <= F.lit(max(profile.dates) + timedelta(days=1)))
    if ttl_days is not None:
        table = table.where(F.col(FEATURE_DATE) >= F.lit(min(profile.dates) - timedelta(days=ttl_days + 1)))
    return table
