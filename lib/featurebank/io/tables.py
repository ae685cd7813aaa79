"""Publish: one Delta commit that replaces exactly the run's snapshot dates of a group's table.

The table lives at `plan.table_path`, partitioned by `feature_date`. A run over dates
`start..end` overwrites with `replaceWhere` on the partition column only, which Delta turns
into a metadata-only delete of those partitions plus the new files, in one atomic commit:
readers see the old or the new version, never a mix; other dates are untouched; a rerun
gives the same rows, never duplicates. (Dynamic partition overwrite is not used: it would
keep dates that now have no rows.) Delta's replaceWhere constraint check also refuses a batch
holding rows outside the range.

Schemas only grow: a new feature column is merged (`mergeSchema`); a dropped, renamed or
retyped column is refused before anything is written, with the way out spelled out.

Concurrency: Delta's retryable conflicts (another writer committed first: two first-ever runs
creating the table, an append racing a metadata change) are retried a bounded number of
times with jittered backoff, after checking (by the run id in `userMetadata`) that our commit
did not land after all. Runs over disjoint date ranges of one table therefore both land.
The commit's `userMetadata` carries the run's id, group, dates and rows, so the run log can
be repaired from the table's history (`committed_runs`, used by `runlog.read_runs`).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from featurebank.errors import DefinitionError
from featurebank.io.spark import session_settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

    from featurebank.compile.run import Plan

PARTITION_COLUMN = "feature_date"
PUBLISH_ATTEMPTS = 5
STATS_COLUMNS_PROPERTY = "delta.dataSkippingStatsColumns"
LOCAL_FILES_PER_DATE = 4  # a local publish writes at most this many files per snapshot date


@dataclass(frozen=True)
class SchemaChange:
    """How a batch's columns differ from the published table's."""

    added: tuple[str, ...]
    dropped: tuple[str, ...]
    retyped: tuple[tuple[str, str, str], ...]  # (column, table type, batch type)

    @property
    def breaking(self) -> bool:
        return bool(self.dropped or self.retyped)


def schema_change(table: StructType, batch: StructType) -> SchemaChange:
    """Compare two schemas by column name (nullability ignored: Delta relaxes it itself)."""
    table_types = {f.name: f.dataType.simpleString() for f in table.fields}
    batch_types = {f.name: f.dataType.simpleString() for f in batch.fields}
    return SchemaChange(
        added=tuple(n for n in batch_types if n not in table_types),
        dropped=tuple(n for n in table_types if n not in batch_types),
        retyped=tuple(
            (n, t, batch_types[n]) for n, t in table_types.items() if n in batch_types and batch_types[n] != t
        ),
    )


def breaking_change_error(group: str, path: str, change: SchemaChange) -> DefinitionError:
    """The one clear error for a schema change Delta cannot take as an addition."""
    parts = []
    if change.dropped:
        parts.append(f"no longer produces column(s) {', '.join(change.dropped)} (dropped or renamed)")
    if change.retyped:
        parts.append(
            "changes the type of " + ", ".join(f"{c} from {old} to {new}" for c, old, new in change.retyped)
        )
    return DefinitionError(
        f"feature group {group!r}: the definition {' and '.join(parts)}, but the published table at "
        f"{path} has them; published tables only gain columns. Publish it under a new group name "
        f"(e.g. {group}_v2), or drop the table on purpose (delete {path}) and backfill it again"
    )


def table_version(spark: SparkSession, path: str) -> int | None:
    """The latest committed version of the Delta table at `path`, or None if there is none."""
    from delta.tables import DeltaTable

    if not is_delta_table(spark, path):
        return None
    row = DeltaTable.forPath(spark, path).history(1).select("version").first()
    return None if row is None else int(row[0])


def current_version(path: str, *, spark: Callable[[], SparkSession], lake_formation: bool) -> int | None:
    """`table_version` read from the Delta log with delta-rs (no JVM, no Delta snapshot job),
    through Spark (the session from `spark()`) only where Lake Formation governs the tables."""
    if lake_formation:
        return table_version(spark(), path)
    from featurebank.io.metadata import table_version as logged_version

    return logged_version(path)


def table_schema(spark: SparkSession, path: str) -> StructType | None:
    """The schema of the Delta table at `path`, or None if there is none."""
    if not is_delta_table(spark, path):
        return None
    return spark.read.format("delta").load(path).schema


def check_compatible(spark: SparkSession, plan: Plan, columns: tuple[str, ...]) -> None:
    """Refuse early (before computing) a definition that drops columns of the published table.

    `columns` are the batch's column names as the plan predicts them. Types are compared at
    publish time, against the real batch. Raises DefinitionError.
    """
    schema = table_schema(spark, plan.table_path)
    if schema is None:
        return
    dropped = tuple(f.name for f in schema.fields if f.name not in columns)
    if dropped:
        raise breaking_change_error(plan.group, plan.table_path, SchemaChange((), dropped, ()))


def commit_metadata(run_id: str, data_hash: str, *, metadata_hash: str | None = None, group: str | None = None,
                    start: date | None = None, end: date | None = None, rows: int | None = None,
                    rows_by_date: Mapping[date, int] | None = None,
                    feature_hashes: Mapping[str, str] | None = None) -> str:
    """The commit's `userMetadata`: JSON with the run id and the data hash, plus (when
    given) the metadata hash, the per-feature hashes, the group, the snapshot dates, the rows and
    the rows per date — enough for the run log to be repaired from the table's history, and for
    `plan` to review a change (`compile.change`) where no table properties are written."""
    data: dict[str, Any] = {"run_id": run_id, "data_hash": data_hash}
    if metadata_hash is not None:
        data["metadata_hash"] = metadata_hash
    if feature_hashes:
        data["feature_hashes"] = dict(feature_hashes)
    if group is not None:
        data["group"] = group
    if start is not None and end is not None:
        data["start"], data["end"] = start.isoformat(), end.isoformat()
    if rows is not None:
        data["rows"] = int(rows)
    if rows_by_date is not None:
        data["rows_by_date"] = {d.isoformat(): int(n) for d, n in sorted(rows_by_date.items())}
    return json.dumps(data, sort_keys=True)


def is_retryable_conflict(error: BaseException) -> bool:
    """A Delta optimistic-concurrency conflict: another writer committed first, retrying may work.

    Every `delta.exceptions` concurrency error (append, delete-read, delete-delete, metadata or
    protocol changed, concurrent transaction, concurrent write), and the text forms they take
    when they reach Python unconverted (two first writers racing to create the table).
    """
    from delta.exceptions import DeltaConcurrentModificationException

    if isinstance(error, DeltaConcurrentModificationException):
        return True
    text = str(error)
    names = ("ConcurrentModification", "ConcurrentAppend", "ConcurrentDelete", "ConcurrentTransaction",
             "ConcurrentWrite", "MetadataChanged", "ProtocolChanged")
    return any(n in text for n in names) or ("already exists" in text and "_delta_log" in text)


def backoff(attempt: int, base: float = 0.3, cap: float = 5.0) -> None:
    """Sleep before retry `attempt` (0-based): exponential, capped, jittered ±50%."""
    time.sleep(min(cap, base * 2**attempt) * random.uniform(0.5, 1.5))


def publish(
    spark: SparkSession,
    batch: DataFrame,
    plan: Plan,
    run_id: str,
    *,
    catalog_type: str = "none",
    database: str | None = None,
    rows: int | None = None,
    rows_by_date: Mapping[date, int] | None = None,
    lake_formation: bool = False,
) -> int:
    """Replace snapshot dates `plan.start..plan.end` of the group's table with `batch`, in one commit.

    Creates the table (partitioned by `feature_date`) on the first run. The commit carries
    `userMetadata` = {"run_id", "data_hash", "group", "start", "end"} and, when given,
    "rows" and "rows_by_date". New columns are merged; any other schema change raises
    DefinitionError and writes nothing. Retryable Delta conflicts are retried (see the module
    docstring). With `catalog_type` glue or hive the table is registered as
    `<database>.<group>` (if not already). Returns the new version. After the commit, the
    version and the table's properties are read from the Delta log with delta-rs (no Spark job),
    through Spark where `lake_formation` governs the table.
    """
    from featurebank.faults import fault_point

    path = plan.table_path
    metadata = commit_metadata(run_id, plan.data_hash, metadata_hash=plan.metadata_hash, group=plan.group, start=plan.start, end=plan.end,
                               rows=rows, rows_by_date=rows_by_date, feature_hashes=dict(plan.feature_hashes))
    fault_point("publish")
    for attempt in range(PUBLISH_ATTEMPTS):
        try:
            _commit(spark, batch, plan, metadata)
            break
        except Exception as error:
            if attempt == PUBLISH_ATTEMPTS - 1 or not is_retryable_conflict(error):
                raise
            if landed_version(spark, path, run_id, lake_formation=lake_formation) is not None:
                break  # the commit landed; only its acknowledgement was lost
            backoff(attempt)
    version = _version_of_run(spark, path, run_id, lake_formation=lake_formation)
    from featurebank.io.retention import ensure_retention

    ensure_retention(spark, path, lake_formation=lake_formation)  # at least conf's retention, so registered manifests rebuild
    if catalog_type in ("glue", "hive"):
        register_table(spark, plan.group, path, database, create_database=catalog_type == "hive")
    return version


def _commit(spark: SparkSession, batch: DataFrame, plan: Plan, metadata: str) -> None:
    """One attempt at the replaceWhere commit (schema compared against the table as it is now)."""
    path = plan.table_path
    existing = table_schema(spark, path)
    merge = False
    if existing is not None:
        change = schema_change(existing, batch.schema)
        if change.breaking:
            raise breaking_change_error(plan.group, path, change)
        merge = bool(change.added)
    start, end = plan.replaced_dates
    writer = (
        clustered(spark, batch).write.format("delta")
        .mode("overwrite")
        .partitionBy(PARTITION_COLUMN)
        .option("replaceWhere", f"{PARTITION_COLUMN} >= '{start.isoformat()}' AND {PARTITION_COLUMN} <= '{end.isoformat()}'")
        .option("userMetadata", metadata)
    )
    if existing is None:  # a table property, set by the commit that creates the table (no extra commit)
        writer = writer.option(STATS_COLUMNS_PROPERTY, ",".join(stats_columns(batch.columns, plan.keys)))
    if merge:
        writer = writer.option("mergeSchema", "true")
    with session_settings(spark, plain_encoded(batch.schema, plan.keys)):  # Delta drops Parquet write options
        writer.save(path)


def plain_encoded(schema: StructType, keys: Iterable[str]) -> dict[str, str]:
    """The Parquet writer's settings that store the keys and the floating-point and decimal
    columns without dictionary encoding (`parquet.enable.dictionary#<column>`).

    A feature table holds one row per key and date, so a file's keys are all distinct, and a
    sum, mean or maximum of amounts rarely repeats: the writer hashed every such value into a
    dictionary it then gave up on, or kept one as large as the column. Counts, dates and
    `feature_ts` (one value per date) keep their dictionaries. Measured (issue 20,
    notes/20-codecache.md): the write of 5.9 M bench rows 31% faster, files 2.5% larger, reads alike.
    """
    wanted = set(keys)
    plain = [f.name for f in schema.fields
             if f.name in wanted or f.dataType.typeName() in ("double", "float", "decimal")]
    return {f"parquet.enable.dictionary#{name}": "false" for name in plain}


def stats_columns(columns: Iterable[str], keys: Iterable[str]) -> list[str]:
    """The columns a feature table keeps Delta min/max/null statistics for: the keys and `feature_ts`.

    Readers skip files by key (explain, a one-entity read) and by time (a row-level group's
    as-of read); nobody filters on a feature value, and statistics for every feature column
    cost the publish a pass over each of them (issue 20). `feature_date` is the partition
    column: its value is in every file's partition values. `numRecords` is always kept
    (io.published reads rows per date from it).
    """
    present = set(columns)
    return [c for c in (*keys, "feature_ts") if c in present]


def clustered(spark: SparkSession, batch: DataFrame) -> DataFrame:
    """`batch` laid out for the write: few files per snapshot date, its rows grouped by date.

    On a local master the batch (persisted, already partitioned by the compute's last shuffle)
    is coalesced to the cores, at most `LOCAL_FILES_PER_DATE`, without a shuffle: each date then
    has at most that many files, and the write no longer pays an exchange of the whole batch
    (issue 20: -48% publish time). On a cluster one file per date (a `repartition` by date): a
    year's backfill otherwise writes a file per task and date, thousands of small files that
    every reader then lists, and there the shuffle runs in parallel anyway.

    Sorted by date alone (the partitioned writer's own need), which Spark sorts by radix on the
    date: rows sorted by date and keys cost a comparison sort whose ties on the date compare keys,
    and measured on the bench's 35.9 M rows (notes/20-inputs.md) that was 65-76 s of the write
    against 44-46 s. The keys' order inside a date's file bought only page skipping for a read of
    one entity on one date (`explain`); file skipping by key is the same either way (every file
    of a hash-partitioned batch spans the key range).
    """
    master = spark.sparkContext.master or ""
    if master.startswith("local"):
        cores = _local_cores(master)
        return batch.coalesce(min(cores, LOCAL_FILES_PER_DATE)).sortWithinPartitions(PARTITION_COLUMN)
    return batch.repartition(PARTITION_COLUMN).sortWithinPartitions(PARTITION_COLUMN)


def _local_cores(master: str) -> int:
    """The worker threads of a `local`, `local[N]`, `local[*]` or `local[N,F]` master."""
    import os
    import re

    found = re.match(r"local(?:\[(\d+|\*)(?:,\d+)?\])?$", master)
    if found is None or found.group(1) is None:
        return 1
    if found.group(1) == "*":
        return os.cpu_count() or 1
    return max(1, int(found.group(1)))


def register_table(spark: SparkSession, group: str, path: str, database: str | None, *, create_database: bool = False) -> None:
    """`CREATE TABLE IF NOT EXISTS <database>.<group> USING DELTA LOCATION <path>`.

    Raises ConfigError-like DefinitionError when no database is configured.
    """
    from featurebank.errors import ConfigError

    if not database:
        raise ConfigError("catalog.database is not set in conf; name the database tables are registered in")
    if create_database:
        spark.sql(f"CREATE DATABASE IF NOT EXISTS `{database}`")
    location = path.replace("'", "\\'")
    spark.sql(f"CREATE TABLE IF NOT EXISTS `{database}`.`{group}` USING DELTA LOCATION '{location}'")


def is_delta_table(spark: SparkSession, path: str) -> bool:
    """Whether a Delta table is committed at `path`, as Spark's Delta sees it (same paths and
    credentials as the data). The one such check: any failure to tell counts as no table.
    (Without a JVM, `io.metadata`'s readers return None where there is no table.)"""
    from delta.tables import DeltaTable

    try:
        return bool(DeltaTable.isDeltaTable(spark, path))
    except Exception:
        return False


def _version_of_run(spark: SparkSession, path: str, run_id: str, *, lake_formation: bool = False) -> int:
    """The version of the commit this run made (found by its userMetadata, robust to others'
    commits landing right after ours)."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    version = landed_version(spark, path, run_id, lake_formation=lake_formation)
    if version is not None:
        return version
    row = DeltaTable.forPath(spark, path).history(1).select(F.max("version")).first()
    assert row is not None
    return int(row[0])


def landed_version(spark: SparkSession, path: str, run_id: str, recent: int = 50, *,
                   lake_formation: bool = False) -> int | None:
    """The version of run `run_id`'s commit among the table's last `recent` commits, or None.
    Read from the Delta log with delta-rs (no Spark job), through Spark where `lake_formation`
    governs the table."""
    marker = f'"run_id": "{run_id}"'
    if not lake_formation:
        from featurebank.io.metadata import table_history

        return next((int(c["version"]) for c in table_history(path, limit=recent)
                     if marker in str(c.get("userMetadata") or "")), None)
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    if not is_delta_table(spark, path):
        return None
    history = DeltaTable.forPath(spark, path).history(recent)
    row = history.where(F.col("userMetadata").contains(marker)).select("version").first()
    return None if row is None else int(row[0])


@dataclass(frozen=True)
class RunCommit:
    """A commit of a group's table made by a run: its version, instant (UTC micros), metadata."""

    version: int
    micros: int
    metadata: dict[str, Any]


def committed_runs(spark: SparkSession, path: str) -> dict[str, RunCommit]:
    """Run id → the commit it made, for every commit of the table at `path` whose
    `userMetadata` names a run ({} when there is no table)."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    if not is_delta_table(spark, path):
        return {}
    history = DeltaTable.forPath(spark, path).history().where(F.col("userMetadata").isNotNull())
    return run_commits((int(row[0]), int(row[1] or 0), row[2])
                       for row in history.select("version", F.unix_micros("timestamp"), "userMetadata").collect())


def run_commits(commits: Iterable[tuple[int, int, str | None]]) -> dict[str, RunCommit]:
    """Run id → commit, from (version, UTC micros, userMetadata) of a table's commits: those
    whose metadata is JSON naming a `run_id` (the Spark and the JVM-free readers share this)."""
    found: dict[str, RunCommit] = {}
    for version, micros, text in commits:
        if not text:
            continue
        try:
            metadata = json.loads(text)
        except ValueError:
            continue
        if isinstance(metadata, dict) and metadata.get("run_id"):
            found[str(metadata["run_id"])] = RunCommit(version, micros, metadata)
    return found


def delete_rows(spark: SparkSession, path: str, column: str, keys: Iterable[str], metadata: str) -> int | None:
    """Delta `DELETE` of every row of the table at `path` whose `column` is one of `keys`, in one
    commit carrying `metadata` as its `userMetadata` (an erasure names itself there, so a rerun
    after a kill finds the commit). Returns the new version, or None when no row matched (Delta
    then commits nothing). The files that held the rows stay on disk until purged
    (`io.retention.purge_files`)."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    before = table_version(spark, path)
    with session_settings(spark, {"spark.databricks.delta.commitInfo.userMetadata": metadata}):
        DeltaTable.forPath(spark, path).delete(F.col(column).isin(list(keys)))
    after = table_version(spark, path)
    return None if after == before else after


def landed_erasure_version(spark: SparkSession, path: str, marker: str) -> int | None:
    """The version of the first commit of the table whose `userMetadata` contains `marker` (an
    erasure's DELETE, `delete_rows`), or None."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    if not is_delta_table(spark, path):
        return None
    row = (DeltaTable.forPath(spark, path).history().where(F.col("userMetadata").contains(marker))
           .select(F.min("version")).first())
    return None if row is None or row[0] is None else int(row[0])
