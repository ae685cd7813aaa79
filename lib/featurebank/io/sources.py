"""Read a source: check its declared types, normalise its time columns, keep what a run needs.

`read_source` is the only place the executor touches raw data. It

1. opens the source (`parquet`, `delta`, `csv` or a catalog `table`);
2. checks, before anything is computed, that every column the run needs exists and that
   each declared `(column, type)` matches the real schema, raising `SourceMismatch` naming
   the source, the column, the found and the declared type;
3. restricts to the event-time range `[read_start, read_end_exclusive)` (days cut at
   midnight in the project time zone) with a predicate on the *raw* column, so Spark can
   push it into the scan (Parquet/Delta file and row-group skipping);
4. turns every time column the definition declares as `timestamp` (and the event-time
   column) into a Spark `TIMESTAMP`, i.e. an instant.

What a raw time column means (SPEC, "Timestamps in sources and spines"):

- `timestamp` (with time zone): already an instant.
- `timestamp_ntz` (naive): wall-clock time in the project time zone.
- `bigint` holding nanoseconds: what pandas/pyarrow write, read as longs because the session
  sets `spark.sql.legacy.parquet.nanosAsLong=true`. The Parquet footer says whether the
  column was zoned (an instant) or naive (wall-clock time in the project zone); it is read
  through Spark's own Hadoop file system (same paths, globs and credentials as the data), and
  when it cannot be read the read is refused (`SourceUnreadable`), never guessed.
- `date`: midnight of that day in the project time zone.
- `string` (CSV): an ISO timestamp; with an offset or `Z` it is an instant, without one it
  is wall-clock time in the project time zone.

Every conversion here is independent of the Spark session time zone: it uses only the
project time zone passed in.
"""

from __future__ import annotations

import re
from datetime import date
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from featurebank.days import MICROS_PER_DAY, day_start_instant, day_start_ts, epoch_day
from featurebank.definitions.expressions import normalise_type
from featurebank.errors import SourceMismatch, SourceUnreadable
from featurebank.compile.group import SourceRead
from featurebank.spark_errors import root_cause, storage_step

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

EPOCH_NTZ = "TIMESTAMP_NTZ'1970-01-01 00:00:00'"

# Spellings Spark accepts for one type, mapped to the name `DataType.simpleString()` gives.
_TIME_TYPES = ("timestamp", "timestamp_ntz")
_OFFSET_SUFFIX = r"(Z|z|[+-]\d{2}(:?\d{2})?)$"


def read_source(spark: SparkSession, source: SourceRead, timezone: str) -> DataFrame:
    """Read `source` as a DataFrame of exactly `source.columns`, time columns as instants.

    Rows are restricted to `read_start <= event time < read_end_exclusive`, with day
    boundaries at midnight in `timezone` (either bound may be None: unbounded). Raises
    `SourceMismatch` (before any computation) when a needed column is missing, a declared
    type differs from the real one, or the event-time column is not a time.
    """
    with storage_step(f"reading source {source.name} at {source.location}"):
        raw = _open(spark, source)
    found = {f.name: f.dataType.simpleString() for f in raw.schema.fields}
    nanos = [c for c in _time_columns(source) if found.get(c) == "bigint"]
    footer = parquet_time_columns(spark, source, raw.inputFiles(), nanos) if nanos and source.format == "parquet" else {}
    kinds = _check_schema(source, found, footer)

    df = raw
    if source.timestamp and (source.read_start or source.read_end_exclusive):
        df = df.filter(_raw_range_predicate(source, kinds[source.timestamp], timezone))
    selected = [as_instant(c, kinds[c], timezone).alias(c) if c in kinds else _col(c) for c in source.columns]
    if source.format == "csv":
        declared = dict(source.declared_types)
        selected = [
            s if c in kinds or c not in declared else _col(c).cast(normalise_type(declared[c])).alias(c)
            for c, s in zip(source.columns, selected)
        ]
    df = df.select(*selected)
    if source.format == "csv" and source.timestamp and (source.read_start or source.read_end_exclusive):
        # CSV has no types to push a predicate into: filter on the parsed instant.
        df = df.filter(instant_range_predicate(source.timestamp, source.read_start, source.read_end_exclusive, timezone))
    return df


def instant_range_predicate(column: str, start: date | None, end_exclusive: date | None, timezone: str) -> Column:
    """`start 00:00 <= column < end_exclusive 00:00` (project time zone) on a TIMESTAMP column."""
    from pyspark.sql import functions as F

    cond = F.lit(True)
    if start is not None:
        cond = cond & (_col(column) >= F.lit(day_start_instant(start, timezone)))
    if end_exclusive is not None:
        cond = cond & (_col(column) < F.lit(day_start_instant(end_exclusive, timezone)))
    return cond


def naive_to_instant(wall_clock_sql: str, timezone: str) -> Column:
    """A TIMESTAMP_NTZ expression (Spark SQL text) read as wall-clock time in `timezone`.

    Returns a TIMESTAMP (instant) column. Independent of the session time zone: the NTZ
    value is turned into microseconds since 1970-01-01 00:00 wall clock (pure arithmetic),
    then that wall clock is placed in `timezone`.
    """
    from pyspark.sql import functions as F

    as_utc_wall = F.expr(f"timestamp_micros(timestampdiff(MICROSECOND, {EPOCH_NTZ}, {wall_clock_sql}))")
    return F.to_utc_timestamp(as_utc_wall, timezone)


def _open(spark: SparkSession, source: SourceRead) -> DataFrame:
    options = {str(k): str(v) for k, v in source.options}
    fmt = source.format
    if fmt == "table":
        return spark.table(source.location)
    reader = spark.read.options(**options)
    if fmt == "csv":
        return reader.options(header=options.get("header", "true")).csv(source.location)
    if fmt in ("parquet", "delta"):
        return reader.format(fmt).load(source.location)
    raise SourceMismatch(f"source '{source.name}': format '{fmt}' is not one of parquet, delta, csv, table")


def _check_schema(source: SourceRead, found: dict[str, str], footer: dict[str, str]) -> dict[str, str]:
    """Check needed and declared columns; return {time column: how its raw values are kept}.

    The kinds are `instant`, `ntz`, `nanos_utc`, `nanos_naive`, `date` and `text`.
    """
    where = f"source '{source.name}' ({source.location})"
    needed = list(dict.fromkeys([*source.columns, *(c for c, _ in source.declared_types)]))
    missing = [c for c in needed if c not in found]
    if missing:
        raise SourceMismatch(
            f"{where}: column {missing[0]} is missing (found: {', '.join(sorted(found))}); "
            "fix the source or the definition"
        )
    declared = {c: normalise_type(t) for c, t in source.declared_types}
    time_columns = _time_columns(source)
    for column, want in declared.items():
        if column not in found:
            continue
        have = found[column]
        if column in time_columns:
            continue
        if source.format == "csv" and have == "string":
            continue  # CSV carries no types: the declaration gives them (see read_source).
        if have != want:
            raise SourceMismatch(
                f"{where}: column {column} is {have}, the definition says {want}; fix the source or the definition"
            )
    kinds: dict[str, str] = {}
    for column in sorted(time_columns):
        if column not in found:
            continue
        kind = _time_kind(found[column], footer.get(column), source.format)
        if kind is None:
            what = "the definition says timestamp" if column in declared else "the event-time column must be a timestamp"
            raise SourceMismatch(
                f"{where}: column {column} is {found[column]}, {what}; fix the source or the definition"
            )
        kinds[column] = kind
    return kinds


def _time_columns(source: SourceRead) -> set[str]:
    """The event-time column and every column the definition declares as a time."""
    columns = {c for c, t in source.declared_types if normalise_type(t) in _TIME_TYPES}
    return columns | ({source.timestamp} if source.timestamp else set())


def _time_kind(spark_type: str, footer_type: str | None, fmt: str) -> str | None:
    if spark_type == "timestamp":
        return "instant"
    if spark_type == "timestamp_ntz":
        return "ntz"
    if spark_type == "date":
        return "date"
    if spark_type == "string" and fmt == "csv":
        return "text"
    if spark_type == "bigint" and footer_type is not None:
        if footer_type.startswith("timestamp[ns, tz="):
            return "nanos_utc"
        if footer_type == "timestamp[ns]":
            return "nanos_naive"
    return None


def as_instant(column: str, kind: str, timezone: str) -> Column:
    """`column` as a TIMESTAMP instant, given its raw time `kind` (see `_time_kind`).

    Naive values (TIMESTAMP_NTZ, naive pandas nanoseconds) are wall-clock time in `timezone`;
    sources and training-set spines both read time through this one rule.
    """
    from pyspark.sql import functions as F

    raw = _col(column)
    if kind == "instant":
        return raw
    if kind == "ntz":
        return naive_to_instant(_quoted(column), timezone)
    if kind in ("nanos_utc", "nanos_naive"):
        micros = (raw - F.pmod(raw, F.lit(1000))) / F.lit(1000)  # floor division, exact for longs
        utc = F.timestamp_micros(micros.cast("bigint"))
        return utc if kind == "nanos_utc" else F.to_utc_timestamp(utc, timezone)
    if kind == "date":
        return day_start_ts(F.unix_date(raw), timezone)
    if kind == "text":
        text = F.trim(raw)
        zoned = text.rlike(_OFFSET_SUFFIX)
        naive = naive_to_instant(f"cast(trim({_quoted(column)}) as timestamp_ntz)", timezone)
        return F.when(zoned, text.cast("timestamp")).otherwise(naive)
    raise AssertionError(kind)


def _raw_range_predicate(source: SourceRead, kind: str, timezone: str) -> Column:
    """The event-time range as a predicate on the raw column, so the scan can skip data."""
    from pyspark.sql import functions as F

    column, start, end = source.timestamp or "", source.read_start, source.read_end_exclusive
    if kind == "instant":
        return instant_range_predicate(column, start, end, timezone)
    if kind == "text":
        return F.lit(True)  # filtered after parsing, in read_source
    cond = F.lit(True)
    raw = _col(column)
    for bound, is_start in ((start, True), (end, False)):
        if bound is None:
            continue
        literal: Any
        if kind == "ntz":
            literal = F.expr(f"TIMESTAMP_NTZ'{bound.isoformat()} 00:00:00'")
        elif kind == "date":
            literal = F.lit(bound)
        elif kind == "nanos_naive":
            literal = F.lit(epoch_day(bound) * MICROS_PER_DAY * 1000)
        else:  # nanos_utc
            instant = day_start_instant(bound, timezone)
            literal = F.lit(int(instant.timestamp()) * 1_000_000_000)
        cond = cond & ((raw >= literal) if is_start else (raw < literal))
    return cond


def parquet_time_columns(
    spark: SparkSession, source: SourceRead, files: Sequence[str] | None = None, columns: Sequence[str] = ()
) -> dict[str, str]:
    """{column: type} of the timestamp columns in the footer of the source's first Parquet file.

    Types are spelled as Arrow does (`timestamp[ns]` naive, `timestamp[ns, tz=UTC]` zoned).
    The footer is read through Spark's Hadoop file system, so whatever path, glob or
    credentials let Spark read the data also let it read the footer. `files` are the data
    files (default: those Spark lists for the source); `columns` name the columns the caller
    needs to know about, for the message. Raises `SourceUnreadable` when the footer cannot be
    read: a zoned column must never be guessed naive.
    """
    listed = list(files) if files is not None else list(_open(spark, source).inputFiles())
    if not listed:
        return {}
    first = sorted(listed)[0]
    jvm: Any = spark.sparkContext._jvm
    try:
        conf = spark.sparkContext._jsc.hadoopConfiguration()  # type: ignore[attr-defined]
        input_file = jvm.org.apache.parquet.hadoop.util.HadoopInputFile.fromPath(jvm.org.apache.hadoop.fs.Path(first), conf)
        reader = jvm.org.apache.parquet.hadoop.ParquetFileReader.open(input_file)
        try:
            fields = reader.getFooter().getFileMetaData().getSchema().getFields()
        finally:
            reader.close()
        found: dict[str, str] = {}
        for field in fields:
            if not field.isPrimitive():
                continue
            logical = field.getLogicalTypeAnnotation()
            if logical is not None and logical.getClass().getSimpleName() == "TimestampLogicalTypeAnnotation":
                unit = {"NANOS": "ns", "MICROS": "us", "MILLIS": "ms"}[logical.getUnit().name()]
                found[field.getName()] = f"timestamp[{unit}, tz=UTC]" if logical.isAdjustedToUTC() else f"timestamp[{unit}]"
            elif field.asPrimitiveType().getPrimitiveTypeName().name() == "INT96":
                found[field.getName()] = "timestamp[ns]"  # legacy Spark/Impala timestamps: Spark reads them as instants
        return found
    except Exception as error:  # noqa: BLE001 - any failure means "unknown", which must not be guessed
        cause = root_cause(error)
        what = ", ".join(columns) if columns else "its time columns"
        raise SourceUnreadable(
            f"source '{source.name}': cannot read the Parquet footer of {first} to learn whether {what} is zoned: "
            f"{cause}; check access to the path and that the file is Parquet"
        ) from None


def arrow_zoned_columns(path: str) -> dict[str, str]:
    """{column: arrow type} of zoned timestamps as pandas/pyarrow recorded them in the Arrow schema
    of the Parquet files at `path` (a training-set spine; their zone name,
    which the Parquet footer alone reduces to "adjusted to UTC"); empty when unreadable, and
    then the zone comes back as UTC: the same instants, shown in another zone."""
    try:
        import pyarrow.dataset as ds
        import pyarrow.types as pat

        schema = ds.dataset(path.replace("s3a://", "s3://", 1), format="parquet", partitioning="hive").schema
        return {f.name: str(f.type) for f in schema if pat.is_timestamp(f.type) and f.type.tz}
    except Exception:  # noqa: BLE001 - the zone's name is presentation; the instant is already exact
        return {}


def path_exists(spark: SparkSession, uri: str) -> bool:
    """Whether `uri` (a source's readiness marker, say) exists, through the Hadoop file system
    Spark reads the source with: same paths, schemes and credentials as the data."""
    jvm: Any = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(uri)
    return bool(path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()).exists(path))  # type: ignore[attr-defined]


def _quoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _col(name: str) -> Column:
    from pyspark.sql import functions as F

    return F.col(_quoted(name))
