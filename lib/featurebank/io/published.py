"""What a group's table holds as published, per snapshot date: the input of `run --missing`.

Two records are read, each for what it is reliable about:
- **the run log** (`io.runlog`) says which run last published each date (the highest Delta
  version covering it), by which `data_hash` (its `definition_hash` column), and how many
  rows it wrote per date. It is the durable record: the table's own commit history (whose
  `userMetadata` also carries the hash) is cleaned with the Delta log after the retention
  period, so a date published months ago would look unpublished there. Runs the log missed
  (killed right after their commit) are repaired from the commits by `read_run_log` itself.
- **the table's current files** (the per-file record counts in its Delta log) say whether the
  table still holds what those runs wrote: a date deleted by hand, or a table dropped and
  recreated, shows as rows that differ from the rows recorded. The commits the log still
  holds name the writes featurebank did not make (a RESTORE, an UPDATE, a MERGE).

Without Lake Formation everything is read with delta-rs (no JVM: a `run --missing` with
nothing to compute starts no Spark); where Lake Formation governs the tables, through Spark.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from featurebank.compile.missing import ForeignCommit, PublishedDate
from featurebank.io.runlog import read_run_log
from featurebank.io.tables import PARTITION_COLUMN

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@dataclass(frozen=True)
class PublishedState:
    """A group's published dates (`by_date`), its table's rows per date now (None: no table),
    and its table's commits that are not featurebank publishes."""

    by_date: dict[date, PublishedDate]
    table_rows: dict[date, int | None] | None
    foreign: tuple[ForeignCommit, ...]


def published_state(feature_root: str, group: str, table_path: str, *, lake_formation: bool,
                    spark: Callable[[], SparkSession]) -> PublishedState:
    """Read what `group` has published (see the module docstring); `spark()` is called only
    where Lake Formation governs the tables."""
    by_date: dict[date, PublishedDate] = {}
    runs = read_run_log(feature_root, group, spark=spark, lake_formation=lake_formation)
    published = sorted((r for r in runs if r.status == "published" and r.delta_version is not None),
                       key=lambda r: int(r.delta_version or 0))
    for run in published:  # later versions replace what earlier ones wrote
        rows = _rows_by_date(run.rows_by_date)
        for day in run.dates():
            recorded = None if rows is None else rows.get(day, 0)
            by_date[day] = PublishedDate(run.definition_hash, run.run_id, int(run.delta_version or 0), recorded)
    if lake_formation:
        table_rows, commits = _through_spark(spark(), table_path)
    else:
        from featurebank.io.metadata import partition_rows, table_history

        table_rows = partition_rows(table_path, PARTITION_COLUMN)
        commits = [(int(c["version"]), str(c.get("operation") or ""), c.get("userMetadata"))
                   for c in table_history(table_path)]
    return PublishedState(by_date, table_rows, _foreign(commits))


def _rows_by_date(text: str) -> dict[date, int] | None:
    """A run-log `rows_by_date` JSON as dates → rows; None when the run recorded none."""
    if not text:
        return None
    try:
        return {date.fromisoformat(d): int(n) for d, n in json.loads(text).items()}
    except (ValueError, AttributeError):
        return None


def _foreign(commits: Iterable[tuple[int, str, Any]]) -> tuple[ForeignCommit, ...]:
    """The commits (version, operation, userMetadata) whose userMetadata names no featurebank run."""
    found = []
    for version, operation, metadata in commits:
        try:
            recorded = json.loads(metadata) if metadata else {}
        except ValueError:
            recorded = {}
        if not (isinstance(recorded, dict) and recorded.get("run_id")):
            found.append(ForeignCommit(version, operation))
    return tuple(sorted(found, key=lambda c: c.version))


def _through_spark(spark: SparkSession, path: str) -> tuple[dict[date, int | None] | None, list[tuple[int, str, Any]]]:
    """The table's rows per date and its commits, read through Spark (and so through Lake Formation)."""
    from delta.tables import DeltaTable

    from featurebank.io.tables import is_delta_table

    if not is_delta_table(spark, path):
        return None, []
    counts = spark.read.format("delta").load(path).groupBy(PARTITION_COLUMN).count().collect()
    history = DeltaTable.forPath(spark, path).history().select("version", "operation", "userMetadata").collect()
    return ({r[0]: int(r[1]) for r in counts}, [(int(r[0]), str(r[1] or ""), r[2]) for r in history])
