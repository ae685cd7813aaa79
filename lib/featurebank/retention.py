"""Retention that keeps promises: Delta table properties from conf, and a vacuum that spares
every file a registered training set needs.

Conf's `retention: <N>d` is the promise: a registered training-set manifest rebuilds for at
least N days. Delta keeps old versions readable only while (a) their commit files survive log
cleanup (`delta.logRetentionDuration`, Delta's default 30 days, applied at each checkpoint)
and (b) the data files they read survive VACUUM (`delta.deletedFileRetentionDuration`). So:

- new tables get both properties from the session defaults `engine.session` sets from conf;
- `ensure_retention` raises them on an existing table where they are missing or shorter
  (publish calls it after each commit; `vacuum` before each table), never lowers them;
- `vacuum` runs Delta's VACUUM with a retention of at least conf's, the table's own, and the
  age of the oldest version a registered manifest (`<feature_root>/_training_sets`) pins plus
  `SAFETY_MARGIN` (for transactions that ran beside that commit): files only older,
  unregistered versions needed go; what a registered manifest reads stays.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from featurebank.definitions.model import Project

PROPERTIES = ("delta.logRetentionDuration", "delta.deletedFileRetentionDuration")
DELTA_DEFAULTS = {"delta.logRetentionDuration": timedelta(days=30),
                  "delta.deletedFileRetentionDuration": timedelta(days=7)}
SAFETY_MARGIN = timedelta(days=1)
_UNITS = {"microsecond": 1e-6 / 3600, "millisecond": 1e-3 / 3600, "second": 1 / 3600, "minute": 1 / 60,
          "hour": 1, "day": 24, "week": 24 * 7}


def parse_interval(text: str | None) -> timedelta | None:
    """Delta's `interval <n> <unit>` (units microsecond..week, singular or plural), or None."""
    if not text:
        return None
    match = re.fullmatch(r"\s*(?:interval\s+)?(\d+)\s+([a-z]+?)s?\s*", text.lower())
    if match is None or match.group(2) not in _UNITS:
        return None
    return timedelta(hours=int(match.group(1)) * _UNITS[match.group(2)])


def interval(days: int) -> str:
    """The property value for `days` days, as Delta writes it."""
    return f"interval {days} days"


def _quoted_path(path: str) -> str:
    return "delta.`" + path.replace("`", "``") + "`"


def table_properties(spark: SparkSession, path: str) -> dict[str, str]:
    """The Delta table's properties (`DESCRIBE DETAIL`)."""
    row = spark.sql(f"DESCRIBE DETAIL {_quoted_path(path)}").select("properties").first()
    return dict(row[0] or {}) if row is not None else {}


def configured_days(spark: SparkSession) -> int | None:
    """The retention conf gave this session (`engine.session.retention_conf`), in days, or None."""
    from featurebank.io.spark import RETENTION_DEFAULTS

    found = parse_interval(spark.conf.get(RETENTION_DEFAULTS[0], None))
    return None if found is None else math.ceil(found / timedelta(days=1))


def ensure_retention(spark: SparkSession, path: str, days: int | None = None) -> dict[str, str]:
    """Give the Delta table at `path` at least `days` of log and deleted-file retention.

    `days` None takes the session's configured retention (nothing configured: no change).
    Sets only the properties that are missing or shorter, in one `ALTER TABLE ... SET
    TBLPROPERTIES` commit; returns what it set (empty: nothing to do, no commit).
    """
    days = configured_days(spark) if days is None else days
    if days is None:
        return {}
    wanted = timedelta(days=days)
    current = table_properties(spark, path)
    changes = {key: interval(days) for key in PROPERTIES
               if (parse_interval(current.get(key)) or timedelta(0)) < wanted}
    if changes:
        settings = ", ".join(f"'{k}' = '{v}'" for k, v in changes.items())
        spark.sql(f"ALTER TABLE {_quoted_path(path)} SET TBLPROPERTIES ({settings})")
    return changes


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
            path = group.read.table_path.rstrip("/")
            if path not in pins or group.version < pins[path][0]:
                pins[path] = (group.version, location)
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
    tables = [(name, project.table_path(name)) for name in sorted(project.groups)]
    tables.append(("_runs", runs_path(config.feature_root)))
    results = []
    for name, path in tables:
        if table_version(spark, path) is None:
            continue
        hours, why = _retention_hours(spark, path, config.retention_days, pins.get(path.rstrip("/")))
        # Delta drops tombstones older than deletedFileRetentionDuration from the table state, and
        # VACUUM then deletes their files whatever RETAIN says: the property must cover the retention.
        days = math.ceil(hours / 24)
        set_now = tuple(ensure_retention(spark, path, days))
        hours = days * 24
        if dry_run:
            rows = spark.sql(f"VACUUM {_quoted_path(path)} RETAIN {hours} HOURS DRY RUN").collect()
            files = tuple(sorted(_relative(path, str(r[0])) for r in rows))
        else:
            before = _data_files(path)
            spark.sql(f"VACUUM {_quoted_path(path)} RETAIN {hours} HOURS").collect()
            files = tuple(sorted(before - _data_files(path)))
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
        committed = _commit_time(spark, path, version)
        if committed is not None:
            age = datetime.now(timezone.utc) - committed + SAFETY_MARGIN
            bounds.append((age, f"registered manifest {location} pins version {version} ({committed:%Y-%m-%d %H:%M} UTC)"))
    longest, why = max(bounds, key=lambda b: b[0])
    return math.ceil(longest / timedelta(hours=1)), why


def _commit_time(spark: SparkSession, path: str, version: int) -> datetime | None:
    """When `version` of the table was committed (UTC), or None if its log entry is gone."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    row = (DeltaTable.forPath(spark, path).history().where(F.col("version") == version)
           .select(F.unix_micros("timestamp")).first())
    return None if row is None else datetime.fromtimestamp(row[0] / 1e6, tz=timezone.utc)


def _data_files(path: str) -> set[str]:
    """The files VACUUM considers, relative to the table: all but hidden ones (`.x`, `_x`: the
    Delta log, checksums), local or s3://."""
    from pyarrow import fs

    from featurebank.training.manifest import open_filesystem

    filesystem, inner = open_filesystem(path)
    entries = filesystem.get_file_info(fs.FileSelector(inner, recursive=True, allow_not_found=True))
    relative = (e.path[len(inner):].lstrip("/") for e in entries if e.type == fs.FileType.File)
    return {r for r in relative if not any(part.startswith((".", "_")) for part in r.split("/"))}


def _relative(table: str, file: str) -> str:
    """A file VACUUM names (absolute URI) relative to the table's directory."""
    from urllib.parse import unquote

    marker = _normalised_tail(table) + "/"
    text = unquote(file)
    return text.split(marker, 1)[1] if marker in text else text


def _normalised_tail(table: str) -> str:
    return table.rstrip("/").split("://", 1)[-1]
