"""Descriptions flow into the table: Delta column comments and table properties.

Every column of a group's Delta table carries a comment (the feature's description and its
exact meaning, see `semantics`); the table carries a comment (the group's description) and
properties `featurebank.owner`, `featurebank.tags` (JSON), `featurebank.data_hash`,
`featurebank.metadata_hash`, `featurebank.entity`, `featurebank.kind`. Anything reading the
table (Spark `DESCRIBE`, delta-rs, Athena, the Glue console) then shows what a column means,
and `featurebank plan` whether a definition changed its data or only its metadata
(`compile.change.change_kind`). The `featurebank.definition_hash` an older featurebank wrote
is removed with the first update (notes/17-hashes.md).

Two ways in, because SPEC promises one Delta commit per run:
- `with_column_comments(batch, plan)`: the comments as column metadata of the batch, so the
  publish commit itself stores them when it creates the table or adds a column (Delta keeps
  an existing column's metadata on later writes). Costs no commit; the runner uses it.
- `apply_table_metadata(spark, plan)`: ALTER TABLE ... ALTER COLUMN ... COMMENT, SET
  TBLPROPERTIES and COMMENT ON TABLE for whatever differs from the table's current metadata
  (properties, and comments whose description changed). Each statement is a Delta metadata
  commit (and metadata commits conflict with concurrent writers of the table), so nothing is
  emitted for what already matches and a rerun of an unchanged definition adds no commit.

Where the environment configures a catalog (`catalog_type` glue or hive), the statements
address `<database>.<group>` instead of `delta.\\`<path>\\``: Delta's catalog then updates the
Delta log and the metastore entry together, which on AWS is the Glue Data Catalog (through the
Glue-backed Hive metastore client the session is configured with).
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from featurebank.compile.change import (
    DATA_HASH_PROPERTY,
    FEATURE_HASHES_PROPERTY,
    METADATA_HASH_PROPERTY,
    OLD_HASH_PROPERTY,
)
from featurebank.compile.semantics import group_semantics
from featurebank.redact import redact

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from featurebank.compile.group import CompiledGroup

log = logging.getLogger(__name__)
PROPERTY_PREFIX = "featurebank."
MAX_COMMENT = 1000


def sql_string(text: str) -> str:
    """A Spark SQL string literal (backslash escapes, as Spark's parser expects)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", " ") + "'"


def column_comments(plan: CompiledGroup) -> dict[str, str]:
    """The comment each output column should carry: description, then meaning in words."""
    meanings = group_semantics(plan)
    comments = {}
    for column in plan.output:
        if column.role == "key":
            text = f"Key of entity {plan.entity}."
        elif column.role == "partition":
            text = ("Snapshot date D (partition): features aggregate source events before D 00:00 "
                    f"{plan.timezone}." if plan.kind == "aggregation"
                    else f"Date of feature_ts in {plan.timezone} (partition).")
        elif column.role == "time":
            text = (f"D 00:00 in {plan.timezone}: the instant the row becomes valid." if plan.kind == "aggregation"
                    else f"The source row's {plan.source.timestamp or 'timestamp'}: when the row becomes valid.")
        else:
            meaning = meanings.get(column.name)
            parts = [column.description.rstrip(".") + "." if column.description else "",
                     meaning.sentence if meaning else ""]
            text = " ".join(p for p in parts if p)
        comments[column.name] = redact(text)[:MAX_COMMENT]  # comments reach the Glue catalog
    return comments


def with_column_comments(batch: DataFrame, plan: CompiledGroup) -> DataFrame:
    """`batch` with each known column's comment in its schema metadata (same rows, same plan
    underneath, so a persisted batch is not recomputed)."""
    from pyspark.sql import functions as F

    comments = column_comments(plan)
    return batch.select(*[
        F.col(f"`{f.name}`").alias(f.name, metadata={**f.metadata, "comment": comments[f.name]})
        if f.name in comments else F.col(f"`{f.name}`")
        for f in batch.schema.fields
    ])


def group_properties(plan: CompiledGroup) -> dict[str, str]:
    """The `featurebank.*` table properties the group's table should carry."""
    properties = {
        f"{PROPERTY_PREFIX}owner": plan.owner,
        f"{PROPERTY_PREFIX}tags": json.dumps(dict(plan.tags), sort_keys=True, default=str),
        DATA_HASH_PROPERTY: plan.data_hash,
        METADATA_HASH_PROPERTY: plan.metadata_hash,
        FEATURE_HASHES_PROPERTY: json.dumps(dict(plan.feature_hashes), sort_keys=True),
        f"{PROPERTY_PREFIX}entity": plan.entity,
        f"{PROPERTY_PREFIX}kind": plan.kind,
    }
    return {key: redact(value) for key, value in properties.items()}


def table_reference(plan: CompiledGroup, catalog_type: str = "none", database: str | None = None) -> str:
    """How SQL names the table: `<database>.<group>` with a catalog, else delta.`<path>`."""
    if catalog_type in ("glue", "hive") and database:
        return f"`{database}`.`{plan.group}`"
    return f"delta.`{plan.table_path}`"


def metadata_statements(plan: CompiledGroup, table: str, current_comments: dict[str, str],
                        current_properties: dict[str, str], current_description: str | None) -> list[str]:
    """The ALTER/COMMENT statements that bring the table's metadata to what `plan` says (pure).

    Columns the table does not have are skipped; nothing is emitted for what already matches.
    """
    statements = []
    for column, comment in column_comments(plan).items():
        if column in current_comments and current_comments[column] != comment:
            statements.append(f"ALTER TABLE {table} ALTER COLUMN `{column}` COMMENT {sql_string(comment)}")
    wanted = group_properties(plan)
    changed = {k: v for k, v in wanted.items() if current_properties.get(k) != v}
    if changed:
        pairs = ", ".join(f"{sql_string(k)} = {sql_string(v)}" for k, v in sorted(changed.items()))
        statements.append(f"ALTER TABLE {table} SET TBLPROPERTIES ({pairs})")
    if OLD_HASH_PROPERTY in current_properties:  # superseded by the two hashes; a stale one would mislead
        statements.append(f"ALTER TABLE {table} UNSET TBLPROPERTIES IF EXISTS ({sql_string(OLD_HASH_PROPERTY)})")
    description = redact(plan.description) if plan.description else ""
    if description and (current_description or "") != description:
        statements.append(f"COMMENT ON TABLE {table} IS {sql_string(description)}")
    return statements


def apply_table_metadata(spark: SparkSession, plan: CompiledGroup, *, catalog_type: str = "none",
                         database: str | None = None) -> list[str]:
    """Write column comments and table properties for `plan`'s published table.

    Call after a successful publish. Returns the statements executed ([] when the metadata
    already matched or the table does not exist). Never raises: the data is already
    committed, so a refused statement is logged as a warning rather than failing the run.
    """
    from delta.tables import DeltaTable

    from featurebank.io.tables import is_delta_table

    try:
        if not is_delta_table(spark, plan.table_path):
            return []
        detail = DeltaTable.forPath(spark, plan.table_path).detail().first()
        schema = spark.read.format("delta").load(plan.table_path).schema
        comments = {f.name: str(f.metadata.get("comment", "")) for f in schema.fields}
        properties = dict(detail["properties"] or {}) if detail is not None else {}
        description = detail["description"] if detail is not None else None
        statements = metadata_statements(plan, table_reference(plan, catalog_type, database), comments,
                                         properties, description)
        for statement in statements:
            spark.sql(statement)
        return statements
    except Exception as error:  # noqa: BLE001 - see the docstring: never fail a published run
        log.warning("featurebank: could not write column comments/properties of %s: %s",
                    plan.table_path, str(error).splitlines()[0] if str(error) else type(error).__name__)
        return []


# --- the Glue Data Catalog entry Athena reads (boto3, not Spark's saveAsTable) ----------------------
#
# What Athena (engine v3) needs to read a Delta table, from AWS's documentation ("Query Delta
# Lake tables" / "Get started with Delta Lake tables", docs.aws.amazon.com/athena/latest/ug/
# delta-lake-tables-getting-started.html): the table exists in the Glue Data Catalog, its
# LOCATION is the table's root (s3://, the folder holding _delta_log) and its table property
# `table_type` is `DELTA`; Athena reads the schema and the live files from the Delta log itself.
# Lake Formation column grants, the Glue console and Redshift Spectrum read the catalog's
# columns, so those are written too, from the Delta log, and kept in sync after every additive
# schema change. Spark's `saveAsTable` through the Glue catalog is not used: it has been
# reported to register a wrong (placeholder `col array<string>`) schema (delta-io/delta#1679).
# Fields written: TableType EXTERNAL_TABLE; Parameters table_type=DELTA, EXTERNAL=TRUE,
# spark.sql.sources.provider=delta (Spark's Glue client then opens it as Delta), classification=
# delta (what a Glue crawler's native Delta table carries); StorageDescriptor.Location = the
# table path as s3://; Columns = every column in Delta order (partition column included: Athena
# takes partitioning from the log, so no PartitionKeys); the Parquet SerDe and formats of the
# data files.
GLUE_COMMENT_LIMIT = 255  # Glue's Column.Comment maximum
GLUE_PARAMETERS = {"table_type": "DELTA", "EXTERNAL": "TRUE", "spark.sql.sources.provider": "delta",
                   "classification": "delta"}
PARQUET_SERDE = {"SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"}
PARQUET_INPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
PARQUET_OUTPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
# Spark types Hive/Athena spell differently.
_HIVE_TYPES = {"timestamp_ntz": "timestamp"}


def glue_table_input(name: str, location: str, columns: Any, description: str | None = None) -> dict[str, Any]:
    """The Glue `TableInput` for a Delta table `name` at `location` with `columns` (pure).

    `columns` are `io.metadata.TableColumn`s (name, Spark type, comment) in Delta order.
    """
    from featurebank.io.files import s3_location

    s3 = s3_location(location)
    table: dict[str, Any] = {
        "Name": name,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": dict(GLUE_PARAMETERS),
        "StorageDescriptor": {
            "Columns": [{"Name": c.name, "Type": _HIVE_TYPES.get(c.type, c.type),
                         **({"Comment": c.comment[:GLUE_COMMENT_LIMIT]} if c.comment else {})} for c in columns],
            "Location": f"s3://{s3.bucket}/{s3.key}".rstrip("/"),
            "InputFormat": PARQUET_INPUT,
            "OutputFormat": PARQUET_OUTPUT,
            "SerdeInfo": dict(PARQUET_SERDE),
        },
    }
    if description:
        table["Description"] = redact(description)[:2048]
    return table


def spark_columns(spark: SparkSession, location: str) -> tuple[Any, ...]:
    """The Delta table's columns at `location` as `TableColumn`s, read through Spark (on a
    cluster, where delta-rs is not installed)."""
    from featurebank.io.metadata import TableColumn

    schema = spark.read.format("delta").load(location).schema
    return tuple(TableColumn(f.name, f.dataType.simpleString(), f.nullable, str(f.metadata.get("comment", "")))
                 for f in schema.fields)


def sync_glue_table(plan: CompiledGroup, database: str, *, region: str | None = None,
                    columns: Any = None) -> str:
    """Create or update the Glue Data Catalog table `<database>.<group>` for `plan`'s Delta table.

    `columns`: the table's columns (`spark_columns` on a cluster); None reads them from the
    Delta log with delta-rs (`io.metadata.table_schema`). Returns `create`, `update` or
    `unchanged` (nothing is called when the entry already says what the log says). Raises a
    `RuntimeFailure` naming the table when Glue refuses (the database must exist: `deploy`
    and `grants` create it).
    """
    from botocore.exceptions import ClientError

    from featurebank.errors import RuntimeFailure
    from featurebank.io.aws import client
    from featurebank.io.metadata import table_schema

    if columns is None:
        columns = table_schema(plan.table_path) or ()
    want = glue_table_input(plan.group, plan.table_path, columns, plan.description)
    glue = client("glue", region)
    try:
        try:
            have = glue.get_table(DatabaseName=database, Name=plan.group)["Table"]
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "EntityNotFoundException":
                raise
            glue.create_table(DatabaseName=database, TableInput=want)
            return "create"
        if all(have.get(k) == v for k, v in want.items() if k != "StorageDescriptor") and all(
                have.get("StorageDescriptor", {}).get(k) == v for k, v in want["StorageDescriptor"].items()):
            return "unchanged"
        glue.update_table(DatabaseName=database, TableInput=want)
        return "update"
    except ClientError as error:
        answer = error.response.get("Error", {})
        raise RuntimeFailure(
            f"the Glue Data Catalog refused to register {database}.{plan.group} ({plan.table_path}): "
            f"{answer.get('Code', 'no error code')}: {answer.get('Message', error)}; the data is published, only "
            "the catalog entry Athena reads is stale; check that the database exists and the job role may "
            "glue:CreateTable/UpdateTable on it, then run the group again") from error


def register_published(spark: SparkSession, plan: CompiledGroup, database: str, *, region: str | None = None) -> str | None:
    """After a publish: bring the Glue table of `plan` in line with its Delta log (`sync_glue_table`,
    columns through Spark). Returns what was done, or None when Glue refused; like
    `apply_table_metadata` it never fails a published run: the refusal is logged as a warning."""
    try:
        return sync_glue_table(plan, database, region=region, columns=spark_columns(spark, plan.table_path))
    except Exception as error:  # noqa: BLE001 - the data is committed; see the docstring
        log.warning("featurebank: %s", str(error).splitlines()[0] if str(error) else type(error).__name__)
        return None
