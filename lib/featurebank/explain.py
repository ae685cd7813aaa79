"""`featurebank explain`'s I/O edge: read one entity's rows and its published row, then explain them.

Everything is decided before anything is read: the group, the features, the key columns and
values, the principal's grants (`training.access.check_access`, as training sets do) and
whether the date was published (the run log, JVM-free). Then only the rows needed are read:

- the entity's source rows over the longest window before D (`io.sources.read_source` with
  the range `[D - max window, D)`, pushed into the scan, and an equality on every key
  column, which Parquet row-group statistics prune); a row-level group's rows before
  (D + 1) 00:00, from the ttl's horizon on when it has one. Only the columns the explained
  features and the filter read are selected (no other, possibly personal, column is shown).
  The group's own Spark SQL (the filter and each of its AND terms, the aggregation inputs,
  row-level features) is evaluated on those rows by Spark, in the project time zone, as the
  engine does; everything else is compile/explain.py's pure core.
- the published row: the table filtered on `feature_date` (a partition) and the keys
  (`training.browse.read_group`).

When the entity has no filtered event in the window, one more key-pruned read finds its
latest filtered event before it, for "last event N days before D".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from featurebank.compile.explain import (
    KEEP, Explanation, condition_column, explain_entity, feature_column, filter_conditions,
)
from featurebank.errors import AccessDenied, UsageError

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

    from featurebank.compile.group import CompiledGroup
    from featurebank.definitions.model import Project

_MICROS = "_ts_micros"


def parse_key(texts: Sequence[str], key_columns: tuple[str, ...], group: str) -> dict[str, str]:
    """`--key` values as {key column: text}: `COLUMN=VALUE` each, or a bare `VALUE` when the entity
    has one key column. Raises `UsageError` for an unknown, repeated or missing key column."""
    given: dict[str, str] = {}
    for text in texts:
        column, sep, value = text.partition("=")
        if not sep:
            if len(key_columns) != 1:
                raise UsageError(f"--key '{text}' names no key column, and {group}'s entity has several "
                                 f"({', '.join(key_columns)}); give each as --key COLUMN=VALUE")
            column, value = key_columns[0], text
        column, value = column.strip(), value.strip()
        if column not in key_columns:
            from featurebank.definitions.loader import did_you_mean

            raise UsageError(f"--key '{text}': {column!r} is not a key column of {group}"
                             f"{did_you_mean(column, key_columns)}; its key is ({', '.join(key_columns)})")
        if column in given:
            raise UsageError(f"--key gives {column} twice ({given[column]!r} and {value!r}); give one value per key column")
        if not value:
            raise UsageError(f"--key '{text}' gives no value for {column}")
        given[column] = value
    missing = [k for k in key_columns if k not in given]
    if missing:
        raise UsageError(f"--key gives no value for {', '.join(missing)}: {group}'s entity is keyed by "
                         f"({', '.join(key_columns)}); add --key {missing[0]}=VALUE")
    return given


def explain(
    project: Project,
    group: str,
    keys: Sequence[str],
    day: date,
    *,
    features: Sequence[str] | None = None,
    principal: str | None = None,
    spark: SparkSession | None = None,
    at: datetime | None = None,
) -> Explanation:
    """Explain `group`'s values for the entity `keys` (`--key` texts) on snapshot date `day`
    (a row-level group with `at`: the version in force at that instant, on its local date `day`;
    `training.joined` explains a training-set row so).

    Raises, before any read: `UsageError` for an unknown group, feature or key column, a key
    value its column's type cannot hold, or a date the group never published; `AccessDenied`
    when `principal` (or the environment's identity where Lake Formation governs) may not
    read a requested feature.
    """
    compiled, wanted, given = checked_request(project, group, keys, features, principal)
    # A row-level version in force at `at` may come from any earlier run: no date check then.
    published_hash = None if at is not None and compiled.kind == "row" else _check_published(project, compiled, day,
                                                                                                spark)
    if spark is None:
        from featurebank.io.spark import get_spark

        spark = get_spark(project.config)
    typed = typed_keys(spark, compiled, given)
    rows, input_types = _entity_rows(spark, compiled, typed, day, wanted)
    last_before = None
    if compiled.kind == "aggregation" and not any(r[KEEP] for r in rows):
        last_before = _last_before(spark, compiled, typed, day)
    if at is not None and compiled.kind == "row":
        rows = [r for r in rows if r[compiled.source.timestamp or ""] is None or r[compiled.source.timestamp or ""] <= at]
    at = at if compiled.kind == "row" else None
    first = explain_entity(compiled, rows, day, None, features=wanted, input_types=input_types, last_before=last_before,
                           at=at)
    published, schema = _published_row(spark, project, compiled, typed, day, first)
    if at is not None and not first.row:
        published = None  # a version beyond the ttl at `at` is joined as NULL: nothing in force to compare

    def derive(values: dict[str, Any]) -> dict[str, Any]:
        return derived_values(spark, compiled, typed, values, schema)

    result = explain_entity(compiled, rows, day, published, features=wanted, input_types=input_types,
                            last_before=last_before, derive=derive if compiled.derived else None, at=at)
    return replace(result, published_hash=published_hash, definition_hash=compiled.data_hash)


def checked_request(project: Project, group: str, keys: Sequence[str], features: Sequence[str] | None,
                    principal: str | None) -> tuple[CompiledGroup, tuple[str, ...], dict[str, str]]:
    """The compiled group, the features asked for and the `--key` values by key column, once
    the principal's grants are checked; raises as `explain` says, before anything is read."""
    from featurebank.compile.group import compile_group
    from featurebank.training.access import check_access

    compiled = compile_group(project, group)
    wanted = _features(compiled, features)
    given = parse_key(keys, compiled.keys, group)
    try:
        check_access(project, [(group, f) for f in wanted], principal)
    except AccessDenied as refused:  # the training sets' sentence, told for a read
        raise AccessDenied(str(refused).replace("nothing was built", "nothing was read")) from None
    return compiled, wanted, given


def _features(compiled: CompiledGroup, features: Sequence[str] | None) -> tuple[str, ...]:
    available = compiled.feature_columns
    if not features:
        return available
    for name in features:
        if name not in available:
            from featurebank.definitions.loader import did_you_mean

            raise UsageError(f"feature group '{compiled.group}' has no feature {name!r}{did_you_mean(name, available)}; "
                             f"its features: {', '.join(available)}")
    return tuple(dict.fromkeys(features))


def _check_published(project: Project, compiled: CompiledGroup, day: date, spark: SparkSession | None) -> str:
    """The data_hash `day` was published by; refuses a date the group never published (from the
    run log, without a JVM where no Lake Formation governs)."""
    from featurebank.io.published import published_state

    def session() -> SparkSession:
        from featurebank.io.spark import get_spark

        return spark or get_spark(project.config)

    governed = project.config.governance.lake_formation
    state = published_state(project.config.feature_root, compiled.group, compiled.table_path,
                            lake_formation=governed, spark=session)
    if day in state.by_date:
        return state.by_date[day].data_hash
    if not state.by_date:
        raise UsageError(f"feature group '{compiled.group}' has published nothing yet (no run in the run log of "
                         f"{project.config.feature_root}); run it first: featurebank run {compiled.group} --date {day}")
    dates = sorted(state.by_date)
    raise UsageError(f"feature group '{compiled.group}' never published {day} (published: {len(dates)} dates, "
                     f"{dates[0]} .. {dates[-1]}); pick a published date or run it: "
                     f"featurebank run {compiled.group} --date {day}")


def typed_keys(spark: SparkSession, compiled: CompiledGroup, given: dict[str, str]) -> dict[str, Any]:
    """The key values typed as the source's key columns; `UsageError` for one that does not fit.

    Keys declared as a string or an integer type are typed here (no Spark job: read_source
    checks the declaration against the data later); any other type by Spark's `try_cast`."""
    from featurebank.io.sources import read_source

    declared = dict(compiled.source.declared_types)
    if all(declared.get(k) in _PLAIN_TYPES for k in compiled.keys):
        return {k: _plain_key(compiled, k, declared[k], given[k]) for k in compiled.keys}

    probe = replace(compiled.source, columns=compiled.keys,
                    declared_types=tuple((c, t) for c, t in compiled.source.declared_types if c in compiled.keys))
    schema = read_source(spark, probe, compiled.timezone).schema
    types = {f.name: f.dataType.simpleString() for f in schema.fields}
    text = spark.createDataFrame([tuple(given[k] for k in compiled.keys)],
                                 schema=", ".join(f"`{k}` string" for k in compiled.keys))
    row = text.selectExpr(*[f"try_cast(`{k}` as {types[k]}) as `{k}`" for k in compiled.keys]).first()
    typed = dict(zip(compiled.keys, row or ()))
    for k in compiled.keys:
        if typed.get(k) is None:
            raise UsageError(f"--key {k}={given[k]!r} cannot be a key of {compiled.group}: {k} is {types[k]} in source "
                             f"{compiled.source.name}; give a value of that type")
    return typed


_PLAIN_TYPES = {"string": None, "tinyint": 7, "smallint": 15, "int": 31, "bigint": 63}  # integer: bits of magnitude


def _plain_key(compiled: CompiledGroup, column: str, type_: str, text: str) -> Any:
    bits = _PLAIN_TYPES[type_]
    if bits is None:
        return text
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not -(2**bits) <= value < 2**bits:
        raise UsageError(f"--key {column}={text!r} cannot be a key of {compiled.group}: {column} is {type_} in source "
                         f"{compiled.source.name}; give a value of that type")
    return value


def _read_range(compiled: CompiledGroup, day: date) -> tuple[date | None, date]:
    """[first event day read, first day not read) for the rows `day` needs."""
    if compiled.kind == "aggregation":
        return day - timedelta(days=compiled.max_window), day
    after = day + timedelta(days=1)
    return (None if compiled.ttl_days is None else after - timedelta(days=compiled.ttl_days + 1)), after


def _needed_columns(compiled: CompiledGroup, wanted: tuple[str, ...]) -> tuple[str, ...]:
    """Keys, the event time, and the source columns the filter and the explained features read."""
    from featurebank.definitions.expressions import referenced_columns

    lineage = dict(compiled.lineage)
    needed: dict[str, None] = dict.fromkeys(compiled.keys)
    if compiled.source.timestamp:
        needed[compiled.source.timestamp] = None
    if compiled.filter:
        needed.update(dict.fromkeys(referenced_columns(compiled.filter)))
    for name in wanted:
        needed.update(dict.fromkeys(lineage.get(name, ())))
    return tuple(c for c in compiled.source.columns if c in needed)


def _key_match(compiled: CompiledGroup, typed: dict[str, Any]) -> Column:
    from pyspark.sql import functions as F

    match = F.lit(True)
    for k in compiled.keys:
        match = match & (F.col(f"`{k}`") == F.lit(typed[k]))
    return match


def _entity_events(spark: SparkSession, compiled: CompiledGroup, typed: dict[str, Any],
                   start: date | None, end: date | None) -> DataFrame:
    from featurebank.io.sources import read_source

    source = replace(compiled.source, read_start=start, read_end_exclusive=end)
    spark.conf.set("spark.sql.session.timeZone", compiled.timezone)  # the group's SQL reads project time, as in the engine
    return read_source(spark, source, compiled.timezone).where(_key_match(compiled, typed))


def _keep(compiled: CompiledGroup) -> Column:
    from pyspark.sql import functions as F

    return F.coalesce(F.expr(compiled.filter), F.lit(False)) if compiled.filter else F.lit(True)


def _entity_rows(spark: SparkSession, compiled: CompiledGroup, typed: dict[str, Any], day: date,
                 wanted: tuple[str, ...]) -> tuple[list[dict[str, Any]], dict[int, str]]:
    """The entity's source rows `day` needs, with the reserved columns the core reads, and each
    aggregation's input type."""
    start, end = _read_range(compiled, day)
    frame, input_types = explained_rows(_entity_events(spark, compiled, typed, start, end), compiled, wanted)
    return collect_rows(frame, compiled), input_types


def explained_rows(events: DataFrame, compiled: CompiledGroup,
                   wanted: Sequence[str] = ()) -> tuple[DataFrame, dict[int, str]]:
    """`events` (source rows as `read_source` gives them) with what the core needs: the columns
    the filter and `wanted` features read (all when `wanted` is empty), `KEEP`, each filter
    condition, each aggregation input and row-level feature (on kept rows), the event time in
    microseconds; and each aggregation's input type. Expects the session in the project time zone."""
    from pyspark.sql import functions as F

    from featurebank.aggregators import value_column

    wanted = tuple(wanted) or compiled.feature_columns
    keep = _keep(compiled)
    ts = compiled.source.timestamp or ""
    shown = _needed_columns(compiled, wanted)
    conditions = [F.expr(c).alias(condition_column(j)) for j, c in enumerate(filter_conditions(compiled.filter))]
    values = [F.when(keep, F.expr(a.expr)).alias(value_column(i)) for i, a in enumerate(compiled.aggregates) if a.expr]
    features = [F.when(keep, F.expr(f.expr)).alias(feature_column(f.name)) for f in compiled.features if f.name in wanted]
    frame = events.select(*[F.col(f"`{c}`") for c in shown], keep.alias(KEEP), *conditions, *values, *features,
                          F.unix_micros(F.col(f"`{ts}`")).alias(_MICROS))
    types = {f.name: f.dataType.simpleString() for f in frame.schema.fields}
    return frame, {i: types[value_column(i)] for i, a in enumerate(compiled.aggregates) if a.expr}


def collect_rows(frame: DataFrame, compiled: CompiledGroup) -> list[dict[str, Any]]:
    """`explained_rows`' frame as dicts, the event time a tz-aware instant (never the driver's local time)."""
    rows = []
    for row in frame.collect():
        record = row.asDict()
        micros = record.pop(_MICROS)
        record[compiled.source.timestamp or ""] = None if micros is None else _instant(micros)
        rows.append(record)
    return rows


def _instant(micros: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=micros)


def _last_before(spark: SparkSession, compiled: CompiledGroup, typed: dict[str, Any], day: date) -> datetime | None:
    """The entity's latest filtered event time before the rows read (one key-pruned aggregate)."""
    from pyspark.sql import functions as F

    start, _ = _read_range(compiled, day)
    events = _entity_events(spark, compiled, typed, None, start)
    ts = F.col(f"`{compiled.source.timestamp}`")
    latest = events.where(_keep(compiled)).agg(F.max(F.unix_micros(ts))).first()
    return None if latest is None or latest[0] is None else _instant(int(latest[0]))


def _published_row(spark: SparkSession, project: Project, compiled: CompiledGroup, typed: dict[str, Any], day: date,
                   first: Explanation) -> tuple[dict[str, Any] | None, str | None]:
    """The table's row for (keys, D) (row-level: for the chosen version's feature_ts), and the
    table's columns as a DDL schema. Read JVM-free with delta-rs (one partition, key filters),
    or through Spark where Lake Formation governs the table."""
    when, chosen = day, None
    if compiled.kind == "row":
        chosen = next((first.events[f.events[0]].ts for f in first.features if f.events), None)
        if chosen is None:
            return None, None
        when = chosen.astimezone(_zone(compiled.timezone)).date()
    if project.config.governance.lake_formation:
        rows, schema = _published_through_spark(spark, project, compiled, typed, when, chosen)
    else:
        from featurebank.io.metadata import read_partition, table_schema

        table = read_partition(compiled.table_path, "feature_date", when, typed)
        columns = table_schema(compiled.table_path) or ()
        schema = ", ".join(f"`{c.name}` {c.type}" for c in columns)
        rows = [{k: _as_spark_collects(v) for k, v in r.items()} for r in (table.to_pylist() if table is not None else [])
                if chosen is None or r["feature_ts"] == chosen]
    if len(rows) > 1:
        raise UsageError(f"the table of {compiled.group} holds {len(rows)} rows for this entity on {when}; "
                         "its key check should have refused that publish")
    return (rows[0] if rows else None), schema


def _as_spark_collects(value: Any) -> Any:
    """A value read by delta-rs as Spark's `collect` gives it: an instant as naive local time of this process."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone().replace(tzinfo=None)
    return value


def _published_through_spark(spark: SparkSession, project: Project, compiled: CompiledGroup, typed: dict[str, Any],
                             when: date, chosen: datetime | None) -> tuple[list[dict[str, Any]], str]:
    from pyspark.sql import functions as F

    from featurebank.training.browse import read_group

    match = _key_match(compiled, typed)
    if chosen is not None:
        micros = (chosen - _instant(0)) // timedelta(microseconds=1)
        match = match & (F.unix_micros(F.col("feature_ts")) == F.lit(micros))
    table = read_group(spark, project, compiled.group, when, when)
    return [r.asDict() for r in table.where(match).collect()], ", ".join(
        f"`{f.name}` {f.dataType.simpleString()}" for f in table.schema.fields)


def _zone(name: str) -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


def derived_values(spark: SparkSession, compiled: CompiledGroup, typed: dict[str, Any], values: dict[str, Any],
                   schema: str | None) -> dict[str, Any]:
    """The derived features over the recomputed values, by Spark as the engine computes them
    (one row typed as the table's columns, each derived expression added in order)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StructType, _parse_datatype_string

    if not schema:
        return {}
    names = [*compiled.keys, *[n for a in compiled.aggregates for n in a.output_names()]]
    parsed = _parse_datatype_string(schema)
    assert isinstance(parsed, StructType)
    fields = {f.name: f for f in parsed.fields}
    row_schema = StructType([fields[n] for n in names])
    frame = spark.createDataFrame([tuple({**typed, **values}.get(n) for n in names)], schema=row_schema)
    for d in compiled.derived:
        frame = frame.withColumn(d.name, F.expr(d.expr))
    first = frame.select(*[F.col(f"`{d.name}`") for d in compiled.derived]).first()
    return first.asDict() if first is not None else {}
