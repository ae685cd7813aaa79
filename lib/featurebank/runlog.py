"""The run log: one row per run of one feature group, in the Delta table `<feature_root>/_runs`.

Every run is logged, whatever its outcome (`published`, `gate_failed`, `failed`, `dry_run`),
so `featurebank history` can show it and training sets can tell which snapshot dates a group
really published (`published_dates`: coverage comes from the log, not from whether a
partition happens to hold rows — a date with no active entity is still published).

Instants are stored as Spark timestamps and read back through `unix_micros`, so they come
back as timezone-aware UTC datetimes whatever the session or machine time zone is.
"""

from __future__ import annotations

import getpass
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Literal

from featurebank.redact import redact

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

RUNS_TABLE = "_runs"
RunStatus = Literal["published", "gate_failed", "failed", "dry_run"]
STATUSES: tuple[str, ...] = ("published", "gate_failed", "failed", "dry_run")

_SCHEMA_DDL = (
    "run_id STRING NOT NULL, group STRING NOT NULL, env STRING, start_date DATE, end_date DATE, "
    "status STRING NOT NULL, started_at TIMESTAMP, finished_at TIMESTAMP, rows_written BIGINT, "
    "delta_version BIGINT, definition_hash STRING, checks_summary STRING, user STRING, error STRING"
)
_APPEND_ATTEMPTS = 8


@dataclass(frozen=True)
class RunRecord:
    """One run of one group over snapshot dates `start_date..end_date` (inclusive).

    `started_at`/`finished_at` are timezone-aware UTC instants. `delta_version` is the
    commit the run made (None when it published nothing). `checks_summary` is JSON (see
    `gate.GateResult.to_json`), `error` the one-line failure for `failed`/`gate_failed`.
    """

    run_id: str
    group: str
    env: str
    start_date: date
    end_date: date
    status: RunStatus
    started_at: datetime
    finished_at: datetime
    rows_written: int
    delta_version: int | None
    definition_hash: str
    checks_summary: str
    user: str
    error: str | None = None

    @property
    def duration_seconds(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()

    def dates(self) -> list[date]:
        """Every snapshot date the run covered."""
        days = (self.end_date - self.start_date).days
        return [self.start_date + timedelta(days=i) for i in range(days + 1)]


def runs_path(feature_root: str) -> str:
    """Where the run log lives: `<feature_root>/_runs`."""
    return f"{feature_root.rstrip('/')}/{RUNS_TABLE}"


# --- who ran it --------------------------------------------------------------------------

def _aws_caller_identity() -> str | None:
    """The ARN of the AWS principal this process runs as, or None where it cannot be known."""
    try:
        import boto3
        from botocore.config import Config

        config = Config(connect_timeout=5, read_timeout=5, retries={"max_attempts": 2})
        return str(boto3.client("sts", config=config).get_caller_identity()["Arn"])
    except Exception:  # no credentials, no network: the user is then unknown, not an error
        return None


# The hook: platforms whose runs are attributed to a cloud principal rather than an OS user.
USER_RESOLVERS: dict[str, Callable[[], str | None]] = {
    "glue": _aws_caller_identity,
    "emr": _aws_caller_identity,
}


def current_user(platform: str | None = None, feature_root: str | None = None) -> str:
    """Who is running: `$FEATUREBANK_USER`, else the AWS caller identity (STS) on Glue/EMR or
    when `feature_root` is on S3, else the OS user. Never raises; falls back to "unknown"."""
    explicit = os.environ.get("FEATUREBANK_USER")
    if explicit:
        return explicit
    if platform is None:
        from featurebank.engine.session import detect_platform

        platform = detect_platform()
    resolver = USER_RESOLVERS.get(platform)
    if resolver is None and feature_root is not None and feature_root.startswith(("s3://", "s3a://")):
        resolver = _aws_caller_identity
    if resolver is not None:
        who = resolver()
        if who:
            return who
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


# --- write ---------------------------------------------------------------------------------

def _to_utc(instant: datetime) -> datetime:
    if instant.tzinfo is None:
        raise ValueError(f"run log instants must be timezone-aware, got naive {instant!r}")
    return instant.astimezone(timezone.utc)


def _is_retryable(error: Exception) -> bool:
    """A Delta optimistic-concurrency conflict (another writer committed first)."""
    from delta.exceptions import (
        ConcurrentAppendException,
        ConcurrentWriteException,
        MetadataChangedException,
        ProtocolChangedException,
    )

    if isinstance(
        error,
        (ConcurrentAppendException, ConcurrentWriteException, MetadataChangedException, ProtocolChangedException),
    ):
        return True
    text = str(error)
    # Two first writers racing to create the table: the loser sees the other's commit 0.
    return "ConcurrentModification" in text or "already exists" in text and "_delta_log" in text


def append_run(spark: SparkSession, feature_root: str, record: RunRecord) -> None:
    """Append one run to `<feature_root>/_runs`, creating the table on first use.

    Appends are blind (they read nothing), so concurrent runs of different groups do not
    conflict; the rare conflict (two first writers creating the table) is retried with a
    short backoff. Raises ValueError on naive instants or an unknown status.
    """
    if record.status not in STATUSES:
        raise ValueError(f"unknown run status {record.status!r}; expected one of {STATUSES}")
    row = (
        record.run_id,
        record.group,
        record.env,
        record.start_date,
        record.end_date,
        record.status,
        _to_utc(record.started_at),
        _to_utc(record.finished_at),
        int(record.rows_written),
        None if record.delta_version is None else int(record.delta_version),
        record.definition_hash,
        redact(record.checks_summary),
        record.user,
        None if record.error is None else redact(record.error),  # no ${env:...} value is stored
    )
    frame = spark.createDataFrame([row], schema=_SCHEMA_DDL)
    path = runs_path(feature_root)
    for attempt in range(_APPEND_ATTEMPTS):
        try:
            frame.write.format("delta").mode("append").save(path)
            return
        except Exception as error:
            if attempt == _APPEND_ATTEMPTS - 1 or not _is_retryable(error):
                raise
            time.sleep(0.2 * (attempt + 1))


# --- read ----------------------------------------------------------------------------------

def _table_exists(spark: SparkSession, path: str) -> bool:
    from delta.tables import DeltaTable

    try:
        return bool(DeltaTable.isDeltaTable(spark, path))
    except Exception:
        return False


def _from_micros(micros: int | None) -> datetime:
    if micros is None:
        return datetime.fromtimestamp(0, tz=timezone.utc)
    return datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=int(micros))


def read_runs(spark: SparkSession, feature_root: str, group: str | None = None) -> list[RunRecord]:
    """Every logged run (of `group`, or of all groups), newest first.

    Returns [] when nothing was ever logged. Ordered by `started_at`, then `run_id`
    (run ids sort by time), both descending.
    """
    from pyspark.sql import functions as F

    path = runs_path(feature_root)
    if not _table_exists(spark, path):
        return []
    frame = spark.read.format("delta").load(path)
    if group is not None:
        frame = frame.where(F.col("group") == group)
    frame = frame.withColumn("started_at", F.unix_micros("started_at")).withColumn(
        "finished_at", F.unix_micros("finished_at")
    )
    names = [f.name for f in fields(RunRecord)]
    records = []
    for row in frame.select(*names).collect():
        values = row.asDict()
        values["started_at"] = _from_micros(values["started_at"])
        values["finished_at"] = _from_micros(values["finished_at"])
        values["rows_written"] = int(values["rows_written"] or 0)
        values["definition_hash"] = values["definition_hash"] or ""
        values["checks_summary"] = values["checks_summary"] or ""
        values["user"] = values["user"] or ""
        values["env"] = values["env"] or ""
        records.append(RunRecord(**values))
    records.sort(key=lambda r: (r.started_at, r.run_id), reverse=True)
    return records


def published_dates(spark: SparkSession, feature_root: str, group: str) -> set[date]:
    """Every snapshot date of `group` covered by at least one run with status `published`.

    A date stays published once published: a later refused or failed run changes nothing in
    the table, so it does not withdraw coverage.
    """
    covered: set[date] = set()
    for record in read_runs(spark, feature_root, group):
        if record.status == "published":
            covered.update(record.dates())
    return covered
