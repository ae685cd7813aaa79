"""Delta retention on storage, through Spark: table properties, retention properties, commit
times and VACUUM. The policy (what registered training sets pin, how long to keep) is
`featurebank.retention`'s; this module only does what it decides.

Delta keeps an old version readable only while its commit file survives log cleanup
(`delta.logRetentionDuration`, default 30 days) and its data files survive VACUUM
(`delta.deletedFileRetentionDuration`, default 7 days); `ensure_retention` raises both.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

PROPERTIES = ("delta.logRetentionDuration", "delta.deletedFileRetentionDuration")
DELTA_DEFAULTS = {"delta.logRetentionDuration": timedelta(days=30),
                  "delta.deletedFileRetentionDuration": timedelta(days=7)}
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
    """The retention conf gave this session (`io.spark.retention_conf`), in days, or None."""
    from featurebank.io.spark import RETENTION_DEFAULTS

    found = parse_interval(spark.conf.get(RETENTION_DEFAULTS[0], None))
    return None if found is None else math.ceil(found / timedelta(days=1))


def ensure_retention(spark: SparkSession, path: str, days: int | None = None, *,
                     lake_formation: bool) -> dict[str, str]:
    """Give the Delta table at `path` at least `days` of log and deleted-file retention.

    `days` None takes the session's configured retention (nothing configured: no change).
    Sets only the properties that are missing or shorter, in one `ALTER TABLE ... SET
    TBLPROPERTIES` commit; returns what it set (empty: nothing to do, no commit). The current
    properties are read from the Delta log without a JVM (`io.metadata`), through Spark's
    `DESCRIBE DETAIL` where `lake_formation` governs the table.
    """
    days = configured_days(spark) if days is None else days
    if days is None:
        return {}
    wanted = timedelta(days=days)
    if lake_formation:
        current = table_properties(spark, path)
    else:
        from featurebank.io.metadata import table_properties as logged_properties

        current = logged_properties(path) or {}
    changes = {key: interval(days) for key in PROPERTIES
               if (parse_interval(current.get(key)) or timedelta(0)) < wanted}
    if changes:
        settings = ", ".join(f"'{k}' = '{v}'" for k, v in changes.items())
        spark.sql(f"ALTER TABLE {_quoted_path(path)} SET TBLPROPERTIES ({settings})")
    return changes


def commit_time(spark: SparkSession, path: str, version: int) -> datetime | None:
    """When `version` of the table was committed (UTC), or None if its log entry is gone."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    row = (DeltaTable.forPath(spark, path).history().where(F.col("version") == version)
           .select(F.unix_micros("timestamp")).first())
    return None if row is None else datetime.fromtimestamp(row[0] / 1e6, tz=timezone.utc)


VACUUM_TASKS_PER_CORE = 4  # tasks of VACUUM's file listing per core of the cluster


def vacuum_table(spark: SparkSession, path: str, hours: int, *, dry_run: bool = False) -> tuple[str, ...]:
    """VACUUM the table at `path` keeping `hours` of history; returns the data files removed (a
    dry run: that would be removed), relative to the table, sorted."""
    from featurebank.io.spark import session_settings

    # Delta lists the table's files in `parallelPartitionDiscovery.parallelism` tasks, 10,000 by
    # default whatever the table's size: a minute of empty tasks on one machine (notes/20-threads.md).
    # A few tasks per core still spreads a big table's directories over the whole cluster.
    listing = {"spark.sql.sources.parallelPartitionDiscovery.parallelism":
               str(VACUUM_TASKS_PER_CORE * spark.sparkContext.defaultParallelism)}
    with session_settings(spark, listing):
        if dry_run:
            rows = spark.sql(f"VACUUM {_quoted_path(path)} RETAIN {hours} HOURS DRY RUN").collect()
            return tuple(sorted(_relative(path, str(r[0])) for r in rows))
        before = _data_files(path)
        spark.sql(f"VACUUM {_quoted_path(path)} RETAIN {hours} HOURS").collect()
        return tuple(sorted(before - _data_files(path)))


def _data_files(path: str) -> set[str]:
    """The files VACUUM considers, relative to the table: all but hidden ones (`.x`, `_x`: the
    Delta log, checksums), local or s3://."""
    from featurebank.io.files import list_files

    return {r for r in list_files(path) if not any(part.startswith((".", "_")) for part in r.split("/"))}


def _relative(table: str, file: str) -> str:
    """A file VACUUM names (absolute URI) relative to the table's directory."""
    from urllib.parse import unquote

    marker = table.rstrip("/").split("://", 1)[-1] + "/"
    text = unquote(file)
    return text.split(marker, 1)[1] if marker in text else text


def commit_removes(path: str, marker: str) -> tuple[str, ...]:
    """The data files (relative to the table) that the table's commits whose `userMetadata`
    contains `marker` removed, read from the Delta log's JSON commits (`remove` actions)."""
    import json

    from featurebank.io.files import join, list_files, read_text

    log = join(path, "_delta_log")
    removed: set[str] = set()
    for name in sorted(f for f in list_files(log) if f.endswith(".json") and "/" not in f):
        actions = [json.loads(line) for line in read_text(join(log, name)).splitlines() if line.strip()]
        info: dict[str, object] = next((a["commitInfo"] for a in actions if "commitInfo" in a), {})
        if marker in str(info.get("userMetadata") or ""):
            removed |= {_relative(path, a["remove"]["path"]) for a in actions if "remove" in a}
    return tuple(sorted(removed))


def unreferenced_files(path: str) -> tuple[str, ...]:
    """Data files on disk (relative to the table) that the current version does not read:
    what older versions still reference, or what a failed write left."""
    from urllib.parse import unquote

    from featurebank.io.metadata import table_files

    current = {unquote(_relative(path, f)) for f, _ in table_files(path) or []}
    return tuple(sorted(f for f in _data_files(path) if unquote(f) not in current))


def purge_files(path: str, files: tuple[str, ...]) -> tuple[str, ...]:
    """A VACUUM limited to `files` (relative to the table), overriding retention for them alone:
    deletes each one the current version does not read, keeps (and leaves out of the result)
    any it does. Returns what it deleted. Versions that read a purged file can no longer be
    time-travelled to."""
    from featurebank.io.files import delete, exists, join

    live = set(files) - set(unreferenced_files(path))
    gone = []
    for relative in files:
        location = join(path, relative)
        if relative in live or not exists(location):
            continue
        delete(location)
        crc = relative.rpartition("/")
        delete(join(path, f"{crc[0]}/.{crc[2]}.crc" if crc[0] else f".{crc[2]}.crc"))  # Hadoop's local checksum
        gone.append(relative)
    return tuple(gone)


def relative_file(table: str, file: str) -> str:
    """A data file Spark names (absolute URI, e.g. `input_file_name()`) relative to the table."""
    return _relative(table, file)
