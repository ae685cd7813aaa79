"""Read a training-set spine and profile it in one pass.

A spine is a Spark DataFrame, a pandas DataFrame, or a path (Parquet, Delta or CSV). Its
timestamp column means what SPEC says: with a zone it is an instant; naive (Spark
`TIMESTAMP_NTZ`, pandas without tz, a CSV text without offset) it is wall-clock time in the
project time zone; pandas-written Parquet nanoseconds are read through `engine.sources`
(a Spark DataFrame whose timestamp is a bigint is taken to hold such naive nanoseconds).
The user's columns stay as they are; the reader adds a row id and the instant, for the joins.

Every spine column is marked in its field metadata (`training.output.SPINE_KEY`, holding the
pandas dtype when the spine was a pandas DataFrame), so `training.output.to_pandas` gives
the spine's columns back as they came and the features as features.

A CSV file holds text, and a training set has no declared spine columns, so a CSV spine's
types are decided from its values, in one pass (`csv_types`): the entity keys of the groups
joined take the type the group's table has for them (a key must compare like with like);
every other column takes the first of these that every non-empty value reads as, else stays
a string — `bigint` (an integer of at most 18 digits and no leading zero: `007` and long ids
stay text), `double` (a decimal number with a point or an exponent), `boolean`
(`true`/`false`, any case), `date` (`YYYY-MM-DD`), `timestamp_ntz` (`YYYY-MM-DD hh:mm[:ss[.f]]`,
`T` or a space: naive, so wall-clock time in the project time zone) and `timestamp`
(the same with `Z` or a `+hh:mm` offset: an instant, shown in UTC). So a `label` of 0s and 1s
is an integer, as `pandas.read_csv` would make it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featurebank.days import MICROS_PER_DAY
from featurebank.errors import UsageError
from featurebank.training.output import SPINE_KEY, ZONE_KEY

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

_TIME_KINDS = {"timestamp": "instant", "timestamp_ntz": "ntz", "date": "date", "string": "text",
               "bigint": "nanos_naive"}
# What a CSV column's text may be read as (see the module docstring), first match wins: the
# type, the pattern every non-empty value matches, and whether the value must also cast.
_TIME = "[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}([.][0-9]{1,9})?)?"
_CSV_TYPES: tuple[tuple[str, str, bool], ...] = (
    ("bigint", "^[+-]?(0|[1-9][0-9]{0,17})$", False),
    ("double", "^[+-]?([0-9]+[.][0-9]*|[.][0-9]+|[0-9]+)([eE][+-]?[0-9]+)?$", False),
    ("boolean", "^(?i)(true|false)$", False),
    ("date", "^[0-9]{4}-[0-9]{2}-[0-9]{2}$", True),
    ("timestamp_ntz", f"^{_TIME}$", True),
    ("timestamp", f"^{_TIME}(Z|[+-][0-9]{{2}}:?[0-9]{{2}})$", True),
)
_FRACTION = "[.eE]"  # a double column has a value with a point or an exponent (else: digits, text)


@dataclass(frozen=True)
class SpineProfile:
    """What one pass over the spine tells: size, a content fingerprint and its snapshot dates."""

    rows: int
    fingerprint: str  # sha256 over the schema, the row count and order-free row hashes
    dates: frozenset[date]  # local dates (project time zone) of its non-NULL timestamps
    schema: tuple[tuple[str, str], ...]


def spine_format(spark: SparkSession, path: str) -> str:
    """`delta` for a Delta table, `csv` for `.csv` paths, else `parquet`."""
    from featurebank.io.tables import is_delta_table

    local = Path(path.removeprefix("file://"))
    if is_delta_table(spark, path):
        return "delta"
    if path.lower().rstrip("/").endswith(".csv") or (local.is_dir() and any(local.glob("*.csv"))):
        return "csv"
    return "parquet"


def read_spine(spark: SparkSession, spine: Any, timestamp_column: str, timezone: str, *,
               internal_id: str, internal_ts: str,
               key_types: Mapping[str, str] | None = None) -> tuple[DataFrame, str]:
    """The spine as a DataFrame: its own columns, then `internal_id` (row id) and `internal_ts`
    (the timestamp as an instant). Returns it and a description of where it came from.

    `key_types` (entity key -> the Spark type the feature tables hold it as) types a CSV
    spine's key columns; its other columns are typed from their values (module docstring).
    Every spine column carries `SPINE_KEY` in its field metadata. Raises `UsageError` when
    the spine is of an unknown kind, cannot be read, has no `timestamp_column`, or that
    column holds no times.
    """
    from pyspark.sql import DataFrame
    from pyspark.sql import functions as F

    dtypes: dict[str, str] = {}
    if isinstance(spine, DataFrame):
        frame, source = spine, "DataFrame"
    elif _is_pandas(spine):
        frame, source = _from_pandas(spark, spine, timestamp_column, timezone), "pandas DataFrame"
        dtypes = {str(name): str(dtype) for name, dtype in spine.dtypes.items()}
    elif isinstance(spine, (str, Path)):
        frame, source = _from_path(spark, str(spine), timestamp_column, timezone, key_types or {}), str(spine)
    else:
        raise UsageError(f"a spine is a Spark or pandas DataFrame or a path, not {type(spine).__name__}")
    frame = _with_metadata(frame, {c: {SPINE_KEY: dtypes.get(c, "")} for c in frame.columns})
    if timestamp_column not in frame.columns:
        raise UsageError(f"the spine has no column '{timestamp_column}' (it has {', '.join(frame.columns)}); "
                         "pass --timestamp-column (timestamp_column=) naming its timestamp")
    kind = _TIME_KINDS.get(dict(frame.dtypes)[timestamp_column])
    if kind is None:
        raise UsageError(f"spine column '{timestamp_column}' is {dict(frame.dtypes)[timestamp_column]}, not a "
                         "timestamp; convert it or name another column with --timestamp-column")
    frame = frame.withColumn(internal_id, F.monotonically_increasing_id())
    return frame.withColumn(internal_ts, _instant(timestamp_column, kind, timezone)), source


def profile_spine(frame: DataFrame, columns: list[str], instant: str, timezone: str) -> SpineProfile:
    """Rows, fingerprint and snapshot dates of the spine, in one aggregate pass.

    The fingerprint is a SHA-256 over the schema, the row count and the exact sums of two row
    hashes (`xxhash64` and `hash` over `columns`): order-free, so a reordered spine has the same
    one. The pass groups by the rows' local date (a plain hash aggregation: some hundreds of
    groups) and sums in BIGINT, each 64-bit hash as its signed high and unsigned low 32 bits;
    Python adds the groups' sums exactly. The same numbers as summing the hashes as
    decimal(38,0) over all rows with a `collect_set` of the dates, which cost 2-4 s of a 1 M-row
    spine against 0.5 s (issue 20), so manifests written before keep their fingerprint.
    """
    import hashlib
    import json

    from pyspark.sql import functions as F

    from featurebank.days import local_date

    cols = [F.col(f"`{c}`") for c in columns]
    wide = F.xxhash64(*cols)
    rows = frame.groupBy(local_date(F.col(instant), timezone).alias("date")).agg(
        F.count(F.lit(1)).alias("rows"),
        F.sum(F.shiftright(wide, 32)).alias("high"),  # |high| < 2^31: exact in BIGINT below 2^32 rows a date
        F.sum(wide.bitwiseAND(F.lit(0xFFFFFFFF))).alias("low"),
        F.sum(F.hash(*cols).cast("bigint")).alias("narrow"),
    ).collect()
    count = sum(int(r["rows"]) for r in rows)
    h1 = sum((int(r["high"]) << 32) + int(r["low"]) for r in rows) if rows else None
    h2 = sum(int(r["narrow"]) for r in rows) if rows else None
    schema = tuple((f.name, f.dataType.simpleString()) for f in frame.schema.fields if f.name in columns)
    text = json.dumps({"schema": schema, "rows": count, "h1": str(h1), "h2": str(h2)})
    return SpineProfile(count, "sha256:" + hashlib.sha256(text.encode()).hexdigest(),
                        frozenset(r["date"] for r in rows if r["date"] is not None), schema)


def _instant(column: str, kind: str, timezone: str) -> Column:
    # engine.sources owns what a raw time value means; the spine follows the same rules.
    from featurebank.io.sources import as_instant

    return as_instant(column, kind, timezone)


def _is_pandas(value: Any) -> bool:
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is a dependency
        return False
    return isinstance(value, pd.DataFrame)


def _from_pandas(spark: SparkSession, pdf: Any, timestamp_column: str, timezone: str) -> DataFrame:
    """The pandas frame in Spark with its time types kept: naive columns as TIMESTAMP_NTZ
    (the same wall clock, which `read_spine` reads in the project zone), zoned ones as
    instants recording their zone in the field metadata (`training_output.ZONE_KEY`)."""
    import pandas as pd
    from pyspark.sql.types import StructField, StructType, TimestampNTZType

    zones: dict[str, str] = {}
    naive: list[str] = []
    for name in pdf.columns:
        series = pdf[name]
        if pd.api.types.is_datetime64_any_dtype(series):
            zone = getattr(series.dt, "tz", None)
            if zone is None:
                naive.append(str(name))
            else:
                zones[str(name)] = str(zone)
    frame = spark.createDataFrame(pdf)
    if naive:
        schema = StructType([StructField(f.name, TimestampNTZType(), f.nullable) if f.name in naive else f
                             for f in frame.schema.fields])
        frame = spark.createDataFrame(pdf, schema=schema)
    return _with_zones(frame, zones)


def _with_zones(frame: DataFrame, zones: dict[str, str]) -> DataFrame:
    return _with_metadata(frame, {c: {ZONE_KEY: zone} for c, zone in zones.items()})


def _with_metadata(frame: DataFrame, added: Mapping[str, Mapping[str, str]]) -> DataFrame:
    """`frame` with `added[column]` merged into those columns' field metadata."""
    from pyspark.sql import functions as F

    if not added:
        return frame
    return frame.select(*(F.col(_quoted(f.name)).alias(f.name, metadata={**f.metadata, **added[f.name]})
                          if f.name in added else F.col(_quoted(f.name)) for f in frame.schema.fields))


def _quoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def csv_types(frame: DataFrame, key_types: Mapping[str, str]) -> dict[str, str]:
    """The Spark type each text column of a CSV spine reads as (module docstring), in one pass.

    Keys in `key_types` take that type; a column no rule fits stays `string`.
    """
    from pyspark.sql import functions as F

    checks = []
    for i, name in enumerate(frame.columns):
        if name in key_types:
            continue
        value = F.col(_quoted(name))
        for j, (type_, pattern, must_cast) in enumerate(_CSV_TYPES):
            fits = value.rlike(pattern)
            if must_cast:
                fits = fits & F.expr(f"try_cast({_quoted(name)} as {type_})").isNotNull()
            checks.append(F.bool_and(value.isNull() | fits).alias(f"c{i}_{j}"))
        checks.append(F.count(value).alias(f"c{i}_n"))
        checks.append(F.bool_or(value.rlike(_FRACTION)).alias(f"c{i}_f"))
    first = frame.agg(*checks).first() if checks else None
    row = first.asDict() if first is not None else {}
    types = {}
    for i, name in enumerate(frame.columns):
        if name in key_types:
            types[name] = key_types[name]
            continue
        fitting = [t for j, (t, _, _) in enumerate(_CSV_TYPES) if row[f"c{i}_{j}"]]
        if not row[f"c{i}_n"] or not fitting or (fitting[0] == "double" and not row[f"c{i}_f"]):
            fitting = ["string"]  # empty, text, or digits an integer cannot hold exactly (ids)
        types[name] = fitting[0]
    return types


def _typed_csv(frame: DataFrame, key_types: Mapping[str, str]) -> DataFrame:
    """A CSV spine (all text) with the types `csv_types` decides; offset timestamps shown in UTC."""
    from pyspark.sql import functions as F

    types = csv_types(frame, key_types)
    typed = frame.select(*(F.expr(f"try_cast({_quoted(c)} as {t})").alias(c) if t != "string" else F.col(_quoted(c))
                           for c, t in types.items()))
    return _with_zones(typed, {c: "UTC" for c, t in types.items() if t == "timestamp" and c not in key_types})


def _from_path(spark: SparkSession, path: str, timestamp_column: str, timezone: str,
               key_types: Mapping[str, str]) -> DataFrame:
    """The spine's own columns with their own types. pandas-written nanoseconds (which Spark
    reads as longs) become what the footer says they were: naive -> TIMESTAMP_NTZ, zoned ->
    an instant with its zone in the field metadata; microsecond zoned columns keep their zone
    the same way."""
    from pyspark.sql import functions as F

    from featurebank.io.sources import arrow_zoned_columns, parquet_time_columns
    from featurebank.compile.group import SourceRead

    fmt = spine_format(spark, path)
    try:
        reader = spark.read.option("header", "true") if fmt == "csv" else spark.read
        frame = reader.format(fmt).load(path)
    except Exception as error:  # a missing or unreadable path is the user's to fix
        raise UsageError(f"cannot read the spine at {path} as {fmt}: {str(error).splitlines()[0]}") from None
    if timestamp_column not in frame.columns:
        raise UsageError(f"the spine at {path} has no column '{timestamp_column}' (it has {', '.join(frame.columns)}); "
                         "pass --timestamp-column naming its timestamp")
    if fmt == "csv":
        return _typed_csv(frame, key_types)
    if fmt != "parquet":
        return frame
    source = SourceRead(name="spine", format=fmt, location=path, timestamp=timestamp_column,
                        columns=tuple(frame.columns), declared_types=(), read_start=None, read_end_exclusive=None)
    footer = {**parquet_time_columns(spark, source), **arrow_zoned_columns(path)}
    types = dict(frame.dtypes)
    zones: dict[str, str] = {}
    columns = []
    for name in frame.columns:
        arrow = footer.get(name, "")
        zone = arrow.partition("tz=")[2].rstrip("]") or None
        column = F.col(f"`{name}`")
        if types[name] == "bigint" and arrow.startswith("timestamp[ns"):
            quoted = "`" + name.replace("`", "``") + "`"
            micros = f"(({quoted} - pmod({quoted}, 1000)) div 1000)"  # floor division, exact for longs
            column = F.expr(f"timestamp_micros({micros})" if zone else _ntz_from_micros(micros))
        if zone and types[name] in ("bigint", "timestamp"):
            zones[name] = zone
        columns.append(column.alias(name))
    return _with_zones(frame.select(*columns), zones)


def _ntz_from_micros(micros: str) -> str:
    """SQL: the TIMESTAMP_NTZ `micros` microseconds after 1970-01-01 00:00 (wall clock), with no
    time zone involved; in steps of days, seconds and microseconds, as `timestampadd` takes an
    int amount."""
    day = f"floor({micros} / {MICROS_PER_DAY})"
    rest = f"({micros} - {day} * {MICROS_PER_DAY})"
    return (f"timestampadd(MICROSECOND, cast({rest} % 1000000 as int), timestampadd(SECOND, cast({rest} div 1000000 "
            f"as int), timestampadd(DAY, cast({day} as int), TIMESTAMP_NTZ'1970-01-01 00:00:00')))")
