"""Erasure on storage: find an entity's keys in Parquet files, artifacts and Delta logs, and
rewrite or remove them; the `_erasures` log. The policy (which places, in which order) is
`featurebank.erase`'s; this module only does what it decides.

Every write goes through `io.files` (atomic per file: a reader sees the old file or the new
one), so a kill between two files leaves each file whole and a rerun finds what is left.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING, Any

from featurebank.io import files

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

ERASURES = "_erasures"


def parquet_rows_holding(location: str, column: str, keys: Collection[str]) -> int:
    """Rows of the Parquet file at `location` whose `column` is one of `keys` (0: no such column)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(pa.BufferReader(files.read_bytes(location)))
    if column not in parquet.schema_arrow.names:
        return 0
    values = parquet.read(columns=[column]).column(0).cast(pa.string())
    return int(pc.sum(pc.is_in(values, pa.array(sorted(keys), pa.string()))).as_py() or 0)


def rewrite_parquet_without(location: str, column: str, keys: Collection[str]) -> int:
    """Rewrite the Parquet file at `location` without the rows whose `column` is one of `keys`
    (schema and metadata kept; atomic). Returns the rows removed (0: the file is untouched)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(pa.BufferReader(files.read_bytes(location)))
    if column not in table.column_names:
        return 0
    hit = pc.is_in(table.column(column).cast(pa.string()), pa.array(sorted(keys), pa.string()))
    hit = pc.fill_null(hit, False)
    removed = int(pc.sum(hit).as_py() or 0)
    if removed:
        sink = pa.BufferOutputStream()
        pq.write_table(table.filter(pc.invert(hit)), sink)
        files.write_bytes(location, sink.getvalue().to_pybytes())
        _drop_checksum(location)
    return removed


def parquet_files(location: str) -> list[str]:
    """Every `.parquet` file under `location` (absolute locations; none when it does not exist)."""
    return [files.join(location, f) for f in files.list_files(location) if f.endswith(".parquet")]


def holds_bytes(location: str, keys: Iterable[str]) -> bool:
    """Whether the file at `location` holds any of `keys` as UTF-8 bytes."""
    data = files.read_bytes(location)
    return any(k.encode("utf-8") in data for k in keys)


def scrub_log_stats(table: str, column: str, keys: Collection[str]) -> tuple[str, ...]:
    """Remove `keys` from the table's Delta log JSON (commits and `.crc` checksums): `column`'s
    min/max statistics are dropped from every `add`/`remove` action naming a key (statistics are
    optional in Delta: only data skipping on that column is lost for those files), and any other
    text naming a key (the DELETE's own predicate in `commitInfo`) says `<erased>` instead.
    Returns the log files rewritten (each atomically)."""
    log = files.join(table, "_delta_log")
    rewritten = []
    for name in sorted(f for f in files.list_files(log) if f.endswith((".json", ".crc")) and "/" not in f
                       and not f.startswith(".")):
        location = files.join(log, name)
        if not holds_bytes(location, keys):
            continue
        lines = [json.dumps(_scrubbed(json.loads(line), column, keys), separators=(",", ":")) if line.strip() else line
                 for line in files.read_text(location).splitlines()]
        files.write_text(location, "\n".join(lines) + "\n")
        _drop_checksum(location)
        rewritten.append(name)
    return tuple(rewritten)


def _scrubbed(value: Any, column: str, keys: Collection[str]) -> Any:
    """`value` (parsed log JSON) without `keys`: statistics lose `column`'s bounds (a bound
    replaced by other text would make data skipping wrong), other strings get `<erased>`."""
    if isinstance(value, dict):
        result = {}
        for name, item in value.items():
            if name == "stats" and isinstance(item, str) and any(k in item for k in keys):
                stats = json.loads(item)
                for bound in ("minValues", "maxValues"):
                    if isinstance(stats.get(bound), dict):
                        stats[bound].pop(column, None)
                result[name] = json.dumps(_scrubbed(stats, column, keys), separators=(",", ":"))
            else:
                result[name] = _scrubbed(item, column, keys)
        return result
    if isinstance(value, list):
        return [_scrubbed(item, column, keys) for item in value]
    if isinstance(value, str):
        for key in keys:
            value = value.replace(key, "<erased>")
    return value


def log_checkpoints_holding(table: str, keys: Collection[str]) -> tuple[str, ...]:
    """The table's Delta checkpoint files (relative to `_delta_log`) that hold any of `keys`."""
    log = files.join(table, "_delta_log")
    return tuple(f for f in checkpoint_files(table)
                 if (parquet_names_key if f.endswith(".parquet") else holds_bytes)(files.join(log, f), keys))


def parquet_names_key(location: str, keys: Iterable[str]) -> bool:
    """Whether any value of the Parquet file at `location`, in any column (nested ones as their
    JSON text: a checkpoint's `add.stats`), contains one of `keys`. Pages are compressed, so a
    byte grep of the file would miss them."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(pa.BufferReader(files.read_bytes(location)))
    wanted = tuple(keys)
    for column in table.column_names:
        text = json.dumps(table.column(column).to_pylist(), default=str)
        if any(k in text for k in wanted):
            return True
    return False


def log_commit_versions(table: str) -> frozenset[int]:
    """The versions whose JSON commit file is in the table's `_delta_log` (log cleanup removes
    the oldest ones; a checkpoint then stands in for them)."""
    log = files.join(table, "_delta_log")
    return frozenset(int(f[:-5]) for f in files.list_files(log)
                     if "/" not in f and f.endswith(".json") and f[:-5].isdigit())


def checkpoint_version(name: str) -> int:
    """The version a checkpoint file summarises (`<version>.checkpoint[.<part>.<parts>|.<uuid>].parquet`)."""
    return int(name.rpartition("/")[2].split(".", 1)[0])


def checkpoint_files(table: str) -> tuple[str, ...]:
    """Every checkpoint file of the table (relative to `_delta_log`; multi-part and V2 sidecars too)."""
    log = files.join(table, "_delta_log")
    return tuple(sorted(f for f in files.list_files(log) if (".checkpoint." in f or f.startswith("_sidecars/"))
                        and not f.rpartition("/")[2].startswith(".")))


def changes_data_between(table: str, pinned: int, version: int) -> bool:
    """Whether any commit of the table after `pinned` and before `version` changed its rows
    (an `add`/`remove` with `dataChange`; property changes and compactions written with
    `dataChange=false` do not). A commit file log cleanup removed counts as a change."""
    log = files.join(table, "_delta_log")
    for between in range(pinned + 1, version):
        location = files.join(log, f"{between:020d}.json")
        if not files.exists(location):
            return True
        for line in files.read_text(location).splitlines():
            action = json.loads(line) if line.strip() else {}
            if any(isinstance(action.get(k), dict) and action[k].get("dataChange", True) for k in ("add", "remove")):
                return True
    return False


def write_checkpoint(spark: SparkSession, table: str) -> int:
    """Write a Delta checkpoint of the table's latest version with delta-spark (the writer of
    featurebank's tables: the same checkpoint schema and `_last_checkpoint`, through the
    session's LogStore, S3 included); returns its version.

    Delta's cached snapshots are dropped first: the erasure rewrote commit files in place
    (`scrub_log_stats`), and the checkpoint must be built from what is on disk now."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    delta_log = jvm.org.apache.spark.sql.delta.DeltaLog
    delta_log.clearCache()
    log = delta_log.forTable(spark._jsparkSession, table)
    log.checkpoint()
    return int(log.unsafeVolatileSnapshot().version())


def deletion_vectors(spark: SparkSession, table: str) -> tuple[bool, int]:
    """Whether the table enables Delta deletion vectors (`delta.enableDeletionVectors`), and how
    many of its current files carry one (rows a DELETE hid but did not remove from the file)."""
    from featurebank.io.retention import table_properties

    enabled = table_properties(spark, table).get("delta.enableDeletionVectors", "false").lower()
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    snapshot = jvm.org.apache.spark.sql.delta.DeltaLog.forTable(spark._jsparkSession, table).unsafeVolatileSnapshot()
    with_vectors = int(snapshot.allFiles().where("deletionVector IS NOT NULL").count())
    return enabled == "true", with_vectors


def delete_log_files(table: str, names: Iterable[str]) -> None:
    """Delete files of the table's `_delta_log` (and their Hadoop checksums)."""
    log = files.join(table, "_delta_log")
    for name in names:
        files.delete(files.join(log, name))
        _drop_checksum(files.join(log, name))


def delete_file(location: str) -> None:
    """Delete one file (and its local Hadoop checksum)."""
    files.delete(location)
    _drop_checksum(location)


def list_under(location: str) -> list[str]:
    """Every file under `location`, absolute (none when it does not exist)."""
    return [files.join(location, f) for f in files.list_files(location)]


def read_text(location: str) -> str:
    return files.read_text(location)


def write_text(location: str, text: str) -> None:
    files.write_text(location, text)


def erasures_path(feature_root: str) -> str:
    """Where the erasure log lives: `<feature_root>/_erasures` (one JSON file per erasure)."""
    return files.join(feature_root, ERASURES)


def record_erasure(feature_root: str, record: dict[str, Any]) -> str:
    """Write one erasure record as `_erasures/<id>.json` (atomic; a rerun of the same erasure
    replaces it); returns its location."""
    location = files.join(erasures_path(feature_root), f"{record['id']}.json")
    files.write_text(location, json.dumps(record, indent=2, sort_keys=True) + "\n")
    return location


def read_erasures(feature_root: str) -> list[dict[str, Any]]:
    """Every erasure record, oldest first (by its `at`)."""
    root = erasures_path(feature_root)
    records = [json.loads(files.read_text(files.join(root, f))) for f in files.list_files(root) if f.endswith(".json")]
    return sorted(records, key=lambda r: str(r.get("at")))


def _drop_checksum(location: str) -> None:
    """Remove Hadoop's local `.<name>.crc` beside a rewritten or deleted file (now stale)."""
    if files.is_s3(location):
        return
    head, _, name = str(location).rpartition("/")
    files.delete(f"{head}/.{name}.crc")
