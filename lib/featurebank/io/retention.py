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


def commit_time(spark: SparkSession, path: str, version: int) -> datetime | None:
    """When `version` of the table was committed (UTC), or None if its log entry is gone."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    row = (DeltaTable.forPath(spark, path).history().where(F.col("version") == version)
           .select(F.unix_micros("timestamp")).first())
    return None if row is None else datetime.fromtimestamp(row[0] / 1e6, tz=timezone.utc)


def vacuum_table(spark: SparkSession, path: str, hours: int, *, dry_run: bool = False) -> tuple[str, ...]:
    """VACUUM the table at `path` keeping `hours` of history; returns the data files removed (a
    dry run: that would be removed), relative to the table, sorted."""
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
