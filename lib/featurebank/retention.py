"""Retention that keeps promises: Delta table properties from conf, and a vacuum that spares
every file a registered training set needs.

Conf's `retention: <N>d` is the promise: a registered training-set manifest rebuilds for at
least N days. Delta keeps old versions readable only while (a) their commit files survive log
cleanup (`delta.logRetentionDuration`, Delta's default 30 days, applied at each checkpoint)
and (b) the data files they read survive VACUUM (`delta.deletedFileRetentionDuration`). So:

- new tables get both properties from the session defaults `io.spark` sets from conf;
- `ensure_retention` (`io.retention`, with the other Delta calls this policy makes) raises them on an existing table where they are missing or shorter
  (publish calls it after each commit; `vacuum` before each table), never lowers them;
- `vacuum` runs Delta's VACUUM with a retention of at least conf's, the table's own, and the
  age of the oldest version a registered manifest (`<feature_root>/_training_sets`) pins plus
  `SAFETY_MARGIN` (for transactions that ran beside that commit): files only older,
  unregistered versions needed go; what a registered manifest reads stays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from featurebank.io.retention import (
    DELTA_DEFAULTS,
    commit_time,
    ensure_retention,
    parse_interval,
    table_properties,
    vacuum_table,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from featurebank.definitions.model import Project

SAFETY_MARGIN = timedelta(days=1)


@dataclass(frozen=True)
class VacuumResult:
    """What vacuum did (or, in a dry run, would do) to one table."""

    table: str
    path: str
    retention_hours: int
    why: str  # which bound set the retention
    files: tuple[str, ...]  # removed (dry run: would be removed)
    dry_run: bool
    properties_set: tuple[str, ...] = ()


def pinned_versions(feature_root: str) -> dict[str, tuple[int, str]]:
    """{table path: (oldest version a registered manifest pins, that manifest's location)}."""
    from featurebank.training.manifest import registered_manifests

    pins: dict[str, tuple[int, str]] = {}
    for location, manifest in registered_manifests(feature_root):
        for group in manifest.groups:
            read = [(group.read.table_path.rstrip("/"), group.version)]
            if group.history_version is not None:  # an as-known-at build also read the group's history
                from featurebank.io.history import history_path

                read.append((history_path(feature_root, group.read.group), group.history_version))
            for path, version in read:
                if path not in pins or version < pins[path][0]:
                    pins[path] = (version, location)
    return pins


def vacuum(spark: SparkSession, project: Project, *, dry_run: bool = False) -> list[VacuumResult]:
    """VACUUM every group table and `_runs`, keeping what registered manifests and `retention` need.

    Per table the retention is the longest of: conf's `retention`, the table's own
    `delta.deletedFileRetentionDuration`, and the age of the oldest version any registered
    manifest pins plus `SAFETY_MARGIN`. A dry run
    lists what would go and removes nothing (it still raises the tables' retention properties
    where the retention needs them: that only strengthens what is kept). Retention is in whole
    days. Raises `UsageError` when a registry entry is not a manifest.
    """
    from featurebank.io.tables import table_version
    from featurebank.io.runlog import runs_path

    config = project.config
    pins = pinned_versions(config.feature_root)
    from featurebank.io.history import history_path

    tables = [(name, project.table_path(name)) for name in sorted(project.groups)]
    tables += [(f"{name} history", history_path(config.feature_root, name)) for name in sorted(project.groups)]
    tables.append(("_runs", runs_path(config.feature_root)))
    results = []
    for name, path in tables:
        if table_version(spark, path) is None:
            continue
        hours, why = _retention_hours(spark, path, config.retention_days, pins.get(path.rstrip("/")))
        # Delta drops tombstones older than deletedFileRetentionDuration from the table state, and
        # VACUUM then deletes their files whatever RETAIN says: the property must cover the retention.
        days = math.ceil(hours / 24)
        set_now = tuple(ensure_retention(spark, path, days, lake_formation=config.governance.lake_formation))
        hours = days * 24
        files = vacuum_table(spark, path, hours, dry_run=dry_run)
        results.append(VacuumResult(name, path, hours, why, files, dry_run, set_now))
    return results


def _retention_hours(spark: SparkSession, path: str, days: int, pin: tuple[int, str] | None) -> tuple[int, str]:
    """The VACUUM retention for one table, in whole hours (rounded up), and why."""
    key = "delta.deletedFileRetentionDuration"
    bounds = [(timedelta(days=days), f"conf retention {days}d")]
    own = parse_interval(table_properties(spark, path).get(key)) or DELTA_DEFAULTS[key]
    bounds.append((own, f"the table's {key}"))
    if pin is not None:
        version, location = pin
        committed = commit_time(spark, path, version)
        if committed is not None:
            age = datetime.now(timezone.utc) - committed + SAFETY_MARGIN
            bounds.append((age, f"registered manifest {location} pins version {version} ({committed:%Y-%m-%d %H:%M} UTC)"))
    longest, why = max(bounds, key=lambda b: b[0])
    return math.ceil(longest / timedelta(hours=1)), why
