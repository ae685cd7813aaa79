"""The run log: the runs of every feature group, in the Delta table `<feature_root>/_runs`.

A run appends a `started` row before it computes anything, then one final row whatever its
outcome (`published`, `gate_failed`, `failed`, `dry_run`), so `featurebank history` can show
it and training sets can tell which snapshot dates a group really published
(`published_dates`: coverage comes from the log, not from whether a partition happens to hold
rows — a date with no active entity is still published). A published run also records its
rows per snapshot date (`rows_by_date`, JSON `{"2024-03-01": 1234}`), and every run past the
source guard the source's rows per event day it read (`source_rows_by_day`, same shape).

The log never disagrees with the tables: `read_runs` reconciles it with the Delta history of
the groups whose runs are unsettled (a `started` row with no final row, or `failed`). A commit
whose run id has no final row (killed right after the commit, or the final append failed) is
shown as `published` with `repaired=True`, its dates, rows and version taken from the
commit's `userMetadata`; a `started` row with neither a final row nor a commit is shown as
`incomplete` (killed, or still running). Several final rows of one run collapse to one
(`published` wins), so the final append may be retried blindly.

Older `_runs` tables stay readable: columns added since (`rows_by_date`, `source_rows_by_day`, `accepted`) are merged on append
(`mergeSchema`) and read as empty where absent.

Two readers give the same records: `read_runs` through Spark, and `read_runs_direct` with
delta-rs (no JVM: `history` and `status` use it through `read_run_log`, except where Lake
Formation governs the tables and a direct read would bypass its grants).

Instants are stored as Spark timestamps and read back through `unix_micros`, so they come
back as timezone-aware UTC datetimes whatever the session or machine time zone is.
"""

from __future__ import annotations

import getpass
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields, replace
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Literal

from featurebank.redact import redact

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from featurebank.io.tables import RunCommit

RUNS_TABLE = "_runs"
RunStatus = Literal["started", "published", "gate_failed", "failed", "dry_run", "incomplete"]
STATUSES: tuple[str, ...] = ("started", "published", "gate_failed", "failed", "dry_run")  # what is stored
INCOMPLETE: RunStatus = "incomplete"  # shown for a started run with no final row and no commit

_SCHEMA_DDL = (
    "run_id STRING NOT NULL, group STRING NOT NULL, env STRING, start_date DATE, end_date DATE, "
    "status STRING NOT NULL, started_at TIMESTAMP, finished_at TIMESTAMP, rows_written BIGINT, "
    "delta_version BIGINT, definition_hash STRING, checks_summary STRING, user STRING, error STRING, "
    "rows_by_date STRING, source_rows_by_day STRING, accepted STRING"
)
_APPEND_ATTEMPTS = 8


@dataclass(frozen=True)
class RunRecord:
    """One run of one group over snapshot dates `start_date..end_date` (inclusive).

    `started_at`/`finished_at` are timezone-aware UTC instants. `delta_version` is the
    commit the run made (None when it published nothing). `checks_summary` is JSON (see
    `gate.GateResult.to_json`), `error` the one-line failure for `failed`/`gate_failed`.
    `rows_by_date` is JSON `{iso date: rows}` ("" when unknown), `source_rows_by_day` the
    same for the source's rows per event day that the source guard read; `repaired` marks a run whose
    outcome was read from its Delta commit rather than from its final row (never stored).
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
    definition_hash: str  # the plan's data_hash (the column kept its name: notes/17-hashes.md)
    checks_summary: str
    user: str
    error: str | None = None
    rows_by_date: str = ""
    source_rows_by_day: str = ""
    accepted: str = ""  # what the runner accepted to run (`breaking`: --accept-breaking), "" for nothing
    repaired: bool = False

    @property
    def duration_seconds(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()

    def dates(self) -> list[date]:
        """Every snapshot date the run covered."""
        days = (self.end_date - self.start_date).days
        return [self.start_date + timedelta(days=i) for i in range(days + 1)]


def publishers(runs: Iterable[RunRecord]) -> dict[date, RunRecord]:
    """Each snapshot date's last publisher: of the `published` runs covering the date, the one of
    the newest commit (`delta_version`, then `finished_at`). Its rows and its stored profile are
    the date's current ones (`catalog.profile`, `gate.drift`)."""
    last: dict[date, RunRecord] = {}
    for run in sorted((r for r in runs if r.status == "published"),
                      key=lambda r: (-1 if r.delta_version is None else r.delta_version, r.finished_at)):
        last.update(dict.fromkeys(run.dates(), run))
    return last


def runs_path(feature_root: str) -> str:
    """Where the run log lives: `<feature_root>/_runs`."""
    return f"{feature_root.rstrip('/')}/{RUNS_TABLE}"


# --- who ran it --------------------------------------------------------------------------

def _aws_caller_identity() -> str | None:
    """The ARN of the AWS principal this process runs as, or None where it cannot be known."""
    try:
        from featurebank.io.aws import client

        sts = client("sts", None, connect_timeout=5, read_timeout=5, retries={"max_attempts": 2})
        return str(sts.get_caller_identity()["Arn"])
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
        from featurebank.io.spark import detect_platform

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


def append_run(spark: SparkSession, feature_root: str, record: RunRecord) -> None:
    """Append one run to `<feature_root>/_runs`, creating the table on first use.

    Appends are blind (they read nothing), so concurrent runs of different groups do not
    conflict; the rare conflict (two first writers creating the table) is retried with a
    short backoff. New columns of the log are merged into an older table. Raises ValueError on
    naive instants or an unknown status.
    """
    from featurebank.io.tables import backoff, is_retryable_conflict

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
        record.rows_by_date or None,
        record.source_rows_by_day or None,
        record.accepted or None,
    )
    frame = spark.createDataFrame([row], schema=_SCHEMA_DDL)
    path = runs_path(feature_root)
    for attempt in range(_APPEND_ATTEMPTS):
        try:
            frame.write.format("delta").mode("append").option("mergeSchema", "true").save(path)
            return
        except Exception as error:
            if attempt == _APPEND_ATTEMPTS - 1 or not is_retryable_conflict(error):
                raise
            backoff(attempt, base=0.2, cap=2.0)


def append_final(spark: SparkSession, feature_root: str, record: RunRecord, attempts: int = 3) -> None:
    """Append a run's final row, retrying any failure `attempts` times (a duplicate row is
    harmless: readers keep one row per run). Raises the last error."""
    from featurebank.io.tables import backoff

    for attempt in range(attempts):
        try:
            append_run(spark, feature_root, record)
            return
        except Exception:
            if attempt == attempts - 1:
                raise
            backoff(attempt)


# --- read ----------------------------------------------------------------------------------

def _from_micros(micros: int | None) -> datetime:
    if micros is None:
        return datetime.fromtimestamp(0, tz=timezone.utc)
    return datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=int(micros))


def read_runs(spark: SparkSession, feature_root: str, group: str | None = None) -> list[RunRecord]:
    """Every run (of `group`, or of all groups), one record per run, newest first.

    The log reconciled with the tables (see the module docstring): a run whose commit landed
    is `published` even without its final row, a started run that neither finished nor
    committed is `incomplete`. Returns [] when nothing was ever logged. Ordered by
    `started_at`, then `run_id` (run ids sort by time), both descending.
    """
    from featurebank.io.tables import committed_runs

    records = _reconcile(feature_root, _stored_runs(spark, feature_root, group), lambda path: committed_runs(spark, path))
    records.sort(key=lambda r: (r.started_at, r.run_id), reverse=True)
    return records


def read_run_log(feature_root: str, group: str | None = None, *, spark: Callable[[], SparkSession],
                 lake_formation: bool) -> list[RunRecord]:
    """The run log as `history` and `status` show it: JVM-free (`read_runs_direct`), or through
    Spark (`read_runs`, the session from `spark()`) where Lake Formation governs the tables."""
    if lake_formation:
        return read_runs(spark(), feature_root, group)
    return read_runs_direct(feature_root, group)


def read_runs_direct(feature_root: str, group: str | None = None, *, lake_formation: bool = False) -> list[RunRecord]:
    """`read_runs` without a JVM: the same records in the same order, read with delta-rs
    (`io.metadata`; needs the `cli` extra). Where Lake Formation governs the tables
    (`lake_formation`), it refuses (`UsageError`): use `read_runs` through Spark there.

    One difference: a repaired run's `finished_at` is its commit's own timestamp, where Spark
    reports the commit file's modification time (the two differ by the write's duration).
    """
    from featurebank.io.metadata import read_rows, table_history
    from featurebank.io.tables import run_commits

    def commits(path: str) -> dict[str, RunCommit]:
        history = table_history(path, lake_formation=lake_formation)
        return run_commits((int(h["version"]), int(h.get("timestamp") or 0) * 1000, h.get("userMetadata")) for h in history)

    names = [f.name for f in fields(RunRecord) if f.name != "repaired"]
    table = read_rows(runs_path(feature_root), names, lake_formation=lake_formation)
    rows = [] if table is None else [r for r in table.to_pylist() if group is None or r["group"] == group]
    records = _reconcile(feature_root, [_record(r) for r in rows], commits)
    records.sort(key=lambda r: (r.started_at, r.run_id), reverse=True)
    return records


def _stored_runs(spark: SparkSession, feature_root: str, group: str | None) -> list[RunRecord]:
    """The rows of `_runs` as stored (columns an older table lacks read as empty)."""
    from pyspark.sql import functions as F

    from featurebank.io.tables import is_delta_table

    path = runs_path(feature_root)
    if not is_delta_table(spark, path):
        return []
    frame = spark.read.format("delta").load(path)
    if group is not None:
        frame = frame.where(F.col("group") == group)
    frame = frame.withColumn("started_at", F.unix_micros("started_at")).withColumn(
        "finished_at", F.unix_micros("finished_at")
    )
    names = [f.name for f in fields(RunRecord) if f.name in frame.columns]
    records = []
    for row in frame.select(*names).collect():
        values = row.asDict()
        values["started_at"] = _from_micros(values["started_at"])
        values["finished_at"] = _from_micros(values["finished_at"])
        records.append(_record(values))
    return records


def _record(values: dict[str, Any]) -> RunRecord:
    """A stored row (instants as aware datetimes or None) as a RunRecord; absent text is ""."""
    values = dict(values)
    for instant in ("started_at", "finished_at"):
        found = values.get(instant)
        values[instant] = _from_micros(None) if found is None else found.astimezone(timezone.utc)
    values["rows_written"] = int(values["rows_written"] or 0)
    for text in ("definition_hash", "checks_summary", "user", "env", "rows_by_date", "source_rows_by_day", "accepted"):
        values[text] = values.get(text) or ""
    return RunRecord(**values)


def _reconcile(feature_root: str, stored: list[RunRecord],
               commits_of: Callable[[str], dict[str, RunCommit]]) -> list[RunRecord]:
    """One record per run; unsettled runs settled against their group's Delta history
    (`commits_of(table path)`: run id → commit)."""
    rank = {"published": 3, "gate_failed": 2, "dry_run": 2, "failed": 1, "started": 0}
    best: dict[str, RunRecord] = {}
    for record in stored:  # a final row beats the started row; `published` beats a duplicate
        held = best.get(record.run_id)
        if held is None or (rank.get(record.status, 0), record.finished_at) > (rank.get(held.status, 0), held.finished_at):
            best[record.run_id] = record
    unsettled = sorted({r.group for r in best.values() if r.status in ("started", "failed")})
    for group in unsettled:
        for run_id, commit in commits_of(f"{feature_root.rstrip('/')}/{group}").items():
            unsettled_run = best.get(run_id)
            if unsettled_run is not None and unsettled_run.status in ("started", "failed"):
                best[run_id] = _repaired(unsettled_run, commit.version, commit.micros, commit.metadata)
    return [replace(r, status=INCOMPLETE) if r.status == "started" else r for r in best.values()]


def _repaired(record: RunRecord, version: int, micros: int, metadata: dict[str, Any]) -> RunRecord:
    """`record` (a started or wrongly failed run) as the commit it made says it went."""
    by_date = metadata.get("rows_by_date")
    return replace(
        record,
        status="published",
        delta_version=version,
        finished_at=_from_micros(micros),
        start_date=date.fromisoformat(metadata["start"]) if metadata.get("start") else record.start_date,
        end_date=date.fromisoformat(metadata["end"]) if metadata.get("end") else record.end_date,
        rows_written=int(metadata.get("rows", record.rows_written) or 0),
        rows_by_date=json.dumps(by_date, sort_keys=True) if isinstance(by_date, dict) else record.rows_by_date,
        error=None,
        repaired=True,
    )


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
