"""Delta table metadata without a JVM: version, properties, schema and commit history via delta-rs.

`featurebank plan`, `status` and `history` need a table's version, its properties, its
schema or the run log, none of which needs computing. The `deltalake` package (delta-rs)
reads the Delta log directly, so these commands start no JVM. It is one of featurebank's
dependencies, so cluster jobs have it too (a run's review and input fingerprints read with it),
and is imported lazily: where it is missing, these functions raise a `UsageError` saying so.

Every function takes a location (a local path, `file://`, `s3://` or `s3a://`) and returns
None when no Delta table is there. On S3, botocore's standard chain resolves the credentials
and region (`featurebank.io.aws.resolved_credentials`) and `AWS_ENDPOINT_URL` the endpoint;
delta-rs gets them as storage options (Spark keeps its own S3A chain).

Lake Formation: where conf turns it on (`governance.lake_formation`, see
`definitions.governance.governance_of`), it governs every table under the feature root by
column grants that a direct read of the files would bypass. Callers pass
`lake_formation=True` there, and the read is refused with a sentence naming the table: read
it through the catalog (Spark) instead.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from featurebank.errors import RuntimeFailure, UsageError
from featurebank.io.files import is_s3, local_path

INSTALL_HINT = "install featurebank with its dependencies (pip install featurebank), or the deltalake package"
# Delta's type names where Spark's `simpleString()` spells them differently.
_SPARK_NAMES = {"long": "bigint", "integer": "int", "short": "smallint", "byte": "tinyint"}


@dataclass(frozen=True)
class TableColumn:
    """One column of a Delta table: its type spelled as Spark's `DataType.simpleString()`."""

    name: str
    type: str
    nullable: bool
    comment: str = ""


def table_version(location: str, *, lake_formation: bool = False) -> int | None:
    """The latest committed version of the Delta table at `location`, or None if there is none."""
    table = _open(location, lake_formation)
    return None if table is None else int(table.version())


def table_properties(location: str, *, lake_formation: bool = False) -> dict[str, str] | None:
    """The table's properties (Delta's `configuration`: `featurebank.*`, `delta.*`), or None
    if there is no table."""
    table = _open(location, lake_formation)
    return None if table is None else {str(k): str(v) for k, v in table.metadata().configuration.items()}


def table_schema(location: str, *, lake_formation: bool = False) -> tuple[TableColumn, ...] | None:
    """The table's columns in order (types as Spark spells them, comments included), or None."""
    table = _open(location, lake_formation)
    if table is None:
        return None
    document = json.loads(table.schema().to_json())
    return tuple(
        TableColumn(f["name"], spark_type(f["type"]), bool(f.get("nullable", True)),
                    str((f.get("metadata") or {}).get("comment", "")))
        for f in document["fields"]
    )


def table_history(location: str, *, lake_formation: bool = False, limit: int | None = None) -> list[dict[str, Any]]:
    """Every commit's `commitInfo` (newest first; `version`, `timestamp` in epoch milliseconds,
    `userMetadata` when the writer gave one), the newest `limit` only if given; [] when there is no table."""
    table = _open(location, lake_formation)
    return [] if table is None else list(table.history(limit))


def published_hashes(location: str, *, lake_formation: bool = False) -> dict[str, str] | None:
    """The table's properties, with `featurebank.data_hash` / `metadata_hash` / `feature_hashes` taken
    from the newest commit that recorded them when the properties do not hold them (tables
    published where no catalog properties are written); None when there is no table."""
    properties = table_properties(location, lake_formation=lake_formation)
    if properties is None or "featurebank.data_hash" in properties:
        return properties
    for commit in table_history(location, lake_formation=lake_formation):
        try:
            recorded = json.loads(commit.get("userMetadata") or "{}")
        except ValueError:
            continue
        if isinstance(recorded, dict) and "data_hash" in recorded:
            found = {"featurebank.data_hash": str(recorded["data_hash"])}
            if "metadata_hash" in recorded:
                found["featurebank.metadata_hash"] = str(recorded["metadata_hash"])
            if isinstance(recorded.get("feature_hashes"), dict):
                found["featurebank.feature_hashes"] = json.dumps(recorded["feature_hashes"], sort_keys=True)
            return {**properties, **found}
    return properties


def partition_rows(location: str, column: str, *, lake_formation: bool = False) -> dict[Any, int | None] | None:
    """Rows per value of the partition column `column` as the table's current files hold them,
    from the per-file record counts in the Delta log (no data file is read); a value whose
    files do not all record a count maps to None. None when there is no table."""
    table = _open(location, lake_formation)
    if table is None:
        return None
    import pyarrow

    actions = pyarrow.table(table.get_add_actions(flatten=True))
    if f"partition.{column}" not in actions.column_names:  # no files (or not partitioned by it)
        return {}
    counts: dict[Any, int | None] = {}
    for row in actions.select([f"partition.{column}", "num_records"]).to_pylist():
        value, rows = row[f"partition.{column}"], row["num_records"]
        held = counts.get(value, 0)
        counts[value] = None if rows is None or held is None else held + int(rows)
    return counts


def table_files(location: str, *, lake_formation: bool = False) -> list[tuple[str, int]] | None:
    """The table's current data files with their sizes in bytes, from the Delta log (no data
    file is read); None when there is no table."""
    table = _open(location, lake_formation)
    if table is None:
        return None
    import pyarrow

    actions = pyarrow.table(table.get_add_actions(flatten=True))
    return [(str(row["path"]), int(row["size_bytes"] or 0)) for row in actions.select(["path", "size_bytes"]).to_pylist()]


def table_file_stats(location: str, *, lake_formation: bool = False) -> tuple[int, list[tuple[str, int, float]]] | None:
    """The table's version and its current data files as (path relative to the table, bytes,
    modification time in epoch seconds), both from one read of the Delta log; None when there
    is no table."""
    table = _open(location, lake_formation)
    if table is None:
        return None
    import pyarrow

    actions = pyarrow.table(table.get_add_actions(flatten=True))
    rows = actions.select(["path", "size_bytes", "modification_time"]).to_pylist()
    return int(table.version()), [(str(r["path"]), int(r["size_bytes"] or 0), int(r["modification_time"] or 0) / 1000)
                                  for r in rows]


def read_rows(location: str, columns: list[str] | None = None, *, lake_formation: bool = False) -> Any:
    """The table's current rows as a `pyarrow.Table` (only `columns` when given, those the
    table has), or None when there is no table. For small featurebank tables (the run log)."""
    table = _open(location, lake_formation)
    if table is None:
        return None
    present = None if columns is None else [c for c in columns if c in {f.name for f in table.schema().fields}]
    return _select(table, present)


def read_partition(location: str, column: str, day: date, keys: Mapping[str, Any], *,
                   lake_formation: bool = False) -> Any:
    """The rows of one date partition (`column` = `day`) whose `keys` columns equal the given
    values, as a `pyarrow.Table`, or None when there is no table. Only that partition's files
    are read (`featurebank explain`)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    table = _open(location, lake_formation)
    if table is None:
        return None
    rows = _select(table, None, f"{_identifier(column)} = DATE '{day.isoformat()}'")
    for key, value in keys.items():  # in Arrow, not SQL: no key value is ever spelled into a statement
        rows = rows.filter(pc.equal(rows[key], pa.scalar(value, type=rows[key].type)))
    return rows


def _select(table: Any, columns: list[str] | None, where: str | None = None) -> Any:
    """`columns` (None: all) of the delta-rs `table` (rows matching the SQL `where`) as a `pyarrow.Table`,
    read by delta-rs's own engine (DataFusion, in Rust). Not `DeltaTable.to_pyarrow_table`: that
    scans through a Python file system on Arrow's I/O threads, which abort the process at its
    exit (`terminate called without an active exception`, exit -6) in a third of the processes
    that exit right after a read (tests/test_metadata.py). Strings come back as Arrow's plain
    `string`, as Spark's writer typed them, not DataFusion's `string_view`."""
    import pyarrow as pa
    from deltalake import QueryBuilder

    if columns == []:
        return pa.table({})
    listed = "*" if columns is None else ", ".join(_identifier(c) for c in columns)
    query = f"SELECT {listed} FROM t" + (f" WHERE {where}" if where else "")
    rows = pa.table(QueryBuilder().register("t", table).execute(query))
    return rows.cast(pa.schema([f.with_type(_plain(f.type)) for f in rows.schema]))


def _plain(type_: Any) -> Any:
    """`type_` with DataFusion's view types, at any depth, as the plain ones Spark writes."""
    import pyarrow as pa

    if type_ == pa.string_view():
        return pa.string()
    if type_ == pa.binary_view():
        return pa.binary()
    if pa.types.is_map(type_):
        return pa.map_(type_.key_field.with_type(_plain(type_.key_type)), type_.item_field.with_type(_plain(type_.item_type)))
    if pa.types.is_list(type_) or pa.types.is_large_list(type_):
        kind = pa.list_ if pa.types.is_list(type_) else pa.large_list
        return kind(type_.value_field.with_type(_plain(type_.value_type)))
    if pa.types.is_struct(type_):
        return pa.struct([f.with_type(_plain(f.type)) for f in type_])
    return type_


def _identifier(name: str) -> str:
    """`name` as a quoted SQL identifier: any character stays part of the name."""
    return '"' + name.replace('"', '""') + '"'


def spark_type(delta_type: Any) -> str:
    """A Delta schema type (its JSON form) spelled as Spark's `simpleString()`."""
    if isinstance(delta_type, str):
        return _SPARK_NAMES.get(delta_type, delta_type)
    kind = delta_type["type"]
    if kind == "array":
        return f"array<{spark_type(delta_type['elementType'])}>"
    if kind == "map":
        return f"map<{spark_type(delta_type['keyType'])},{spark_type(delta_type['valueType'])}>"
    if kind == "struct":
        return "struct<" + ",".join(f"{f['name']}:{spark_type(f['type'])}" for f in delta_type["fields"]) + ">"
    raise ValueError(f"unknown Delta type {delta_type!r}")


def storage_options(location: str) -> dict[str, str]:
    """What delta-rs needs to reach `location`: for S3, botocore's resolved credentials, region
    and endpoint (plain-HTTP endpoints allowed, as a local S3 fake uses); {} for local paths.

    Raises `RuntimeFailure` when the chain finds no credentials for an S3 location.
    """
    if not is_s3(location):
        return {}
    from featurebank.io.aws import endpoint_url, resolved_credentials

    credentials, region = resolved_credentials()
    if credentials is None:
        raise RuntimeFailure(f"cannot read the Delta log of {location}: botocore's credential chain found no AWS "
                             "credentials; set AWS_PROFILE or the AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY pair, or run "
                             "where an instance or task role applies")
    options = {"AWS_ACCESS_KEY_ID": credentials.access_key, "AWS_SECRET_ACCESS_KEY": credentials.secret_key}
    if credentials.token:
        options["AWS_SESSION_TOKEN"] = credentials.token
    if region:
        options["AWS_REGION"] = region
    endpoint = endpoint_url("s3")
    if endpoint:
        options["AWS_ENDPOINT_URL"] = endpoint
        if endpoint.startswith("http://"):
            options["AWS_ALLOW_HTTP"] = "true"
    return options


def _uri(location: str) -> str:
    """The location as delta-rs names it: `s3://` for every S3 spelling, local paths absolute."""
    if is_s3(location):
        return "s3://" + location.split("://", 1)[1]
    return str(Path(local_path(location)).resolve())


def _open(location: str, lake_formation: bool) -> Any:
    """The delta-rs table at `location`, or None when there is none; refusals as the module says."""
    if lake_formation:
        raise UsageError(f"the Delta table at {location} is governed by Lake Formation (governance.lake_formation in "
                         "conf), whose column grants a direct read of its files would bypass; read it through the "
                         "catalog (Spark) instead")
    try:
        from deltalake import DeltaTable
        from deltalake.exceptions import TableNotFoundError
    except ImportError:
        raise UsageError(f"reading Delta tables without Spark needs the deltalake package: {INSTALL_HINT}") from None
    uri = _uri(location)
    options = storage_options(location)
    try:
        return DeltaTable(uri, storage_options=options or None)
    except TableNotFoundError:
        return None
    except OSError as error:
        raise RuntimeFailure(f"cannot read the Delta log of {location}: {str(error).splitlines()[0]}; check the path "
                             "and access to it") from None
