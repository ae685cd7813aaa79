"""`featurebank preview`: a group's rows for a few dates on a few entities, as a run computes them.

The rows come from the production compute path itself (`runner.compute`: the source read for
the dates, then `engine.compute_batch`), never from another engine. Only the sampled
entities' events are kept, before any window: every aggregation and row-level feature is
computed per entity, so each previewed row is the row a run publishes for that entity and
date (`tests/test_preview.py` compares them with the published table, bit for bit).

Which entities: `keys` (exact key values), else the first `limit` entities in key order among
the source events of the dates' read range that pass the group's filter (deterministic: the
same definitions and data give the same sample). Which dates: `start..end`, else the
`DEFAULT_DATES` snapshot dates ending on the latest publishable one (the source's latest
event day + 1 + its lag, never after today; readiness markers and watermarks are not asked).

Nothing is written: no table, no run-log row, no gate report (the gate's verdict, `gate=True`,
comes from `gate.judge_batch`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from featurebank.errors import UsageError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from featurebank.compile.group import CompiledGroup
    from featurebank.compile.run import Plan
    from featurebank.definitions.model import Project
    from featurebank.gate import GateResult

DEFAULT_LIMIT = 100  # entities: enough to see a distribution, few enough to read and to compute in seconds
DEFAULT_DATES = 3  # snapshot dates when none are given
PREVIEW_RUN_ID = "preview"  # names the gate's validation; nothing is logged under it


@dataclass(frozen=True)
class Preview:
    """What `preview` computed: the rows of the sampled entities for `start..end`, ordered by
    key, snapshot date and time column, and the gate's verdict on them when asked."""

    group: str
    start: date
    end: date
    keys: tuple[str, ...]
    entities: tuple[tuple[Any, ...], ...]  # the sampled entities' key values, in key order
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    gate: GateResult | None
    seconds: float

    def records(self) -> list[dict[str, Any]]:
        """The rows as column → value dicts."""
        return [dict(zip(self.columns, row)) for row in self.rows]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (`preview --json`): dates as ISO strings, NaN as null, the gate's verdict or null."""
        from featurebank.gate import jsonable

        return {
            "group": self.group, "start": self.start.isoformat(), "end": self.end.isoformat(), "keys": list(self.keys),
            "entities": jsonable(list(self.entities)), "columns": list(self.columns),
            "rows": jsonable(self.records()), "gate": None if self.gate is None else self.gate.to_dict(),
            "seconds": round(self.seconds, 3),
        }


def parse_keys(texts: list[str], key_columns: tuple[str, ...]) -> list[tuple[str, ...]]:
    """`--keys` values as entity keys: one value per key column, comma-separated (entities are
    separate arguments). Raises `UsageError` naming the entity's key columns for a wrong arity."""
    parsed = []
    for text in texts:
        values = tuple(v.strip() for v in text.split(","))
        if len(values) != len(key_columns) or not all(values):
            example = ",".join(f"<{k}>" for k in key_columns)
            raise UsageError(f"--keys '{text}' does not name one entity: the entity's key is ({', '.join(key_columns)}), "
                             f"so give {len(key_columns)} value(s) per entity, comma-separated, and separate entities "
                             f"by spaces (--keys {example} {example})")
        parsed.append(values)
    return parsed


def preview(
    project: Project,
    group: str,
    *,
    start: date | None = None,
    end: date | None = None,
    limit: int = DEFAULT_LIMIT,
    keys: list[str] | None = None,
    gate: bool = False,
    spark: SparkSession | None = None,
    principal: str | None = None,
) -> Preview:
    """Compute `group` for snapshot dates `start..end` on a sample of entities; write nothing.

    See the module docstring for the sample and the default dates. The rows are values a
    training set would hand out, so access is checked first exactly as a training set checks it
    (`training.access.check_access` as `principal`, else conf's identity where Lake Formation
    governs): `AccessDenied` names every column refused, before any read. Raises `UsageError` for
    an unknown group, `--keys` of the wrong arity or of a value the key column cannot hold, a
    `limit` below 1, or a future date; `SourceMismatch` / `DefinitionError` as a run would.
    """
    from featurebank.compile.group import compile_group
    from featurebank.compile.run import plan_for
    from featurebank.readiness import refuse_future_dates
    from featurebank.runner import compute

    began = time.monotonic()
    compiled = compile_group(project, group)
    from featurebank.training.access import check_access

    check_access(project, [(group, feature) for feature in compiled.feature_columns], principal)
    wanted = parse_keys(keys, compiled.keys) if keys else None
    if limit < 1:
        raise UsageError(f"--limit must be at least 1 entity, got {limit}")
    if spark is None:
        from featurebank.io.spark import get_spark

        spark = get_spark(project.config)
    if end is None:
        end = latest_publishable(spark, compiled)
        start = end - timedelta(days=DEFAULT_DATES - 1)
    start = start or end
    refuse_future_dates(end, compiled.timezone)
    plan = plan_for(compiled, start, end)
    entities = _given(spark, plan, wanted) if wanted is not None else _first(spark, plan, limit)
    batch = compute(spark, plan, entities)
    order = [c.name for c in plan.output if c.role in ("key", "partition", "time")]
    batch.persist()  # computed once for the rows and the gate
    try:
        rows = batch.orderBy(*order).collect()
        verdict = None
        if gate:
            from featurebank.gate import judge_batch
            from featurebank.definitions.governance import pii_columns_of

            verdict = judge_batch(batch, plan, PREVIEW_RUN_ID, pii_columns=pii_columns_of(project, group))
    finally:
        batch.unpersist()
    return Preview(group, start, end, plan.keys, tuple(tuple(r) for r in entities.collect()), tuple(batch.columns),
                   tuple(tuple(r) for r in rows), verdict, time.monotonic() - began)


def latest_publishable(spark: SparkSession, compiled: CompiledGroup) -> date:
    """The latest snapshot date a run may publish by the source's data: its latest event day
    + 1 + its lag, never after today (today for a source without an event time). Raises
    `UsageError` when the source holds no event."""
    from pyspark.sql import functions as F

    from featurebank.days import EPOCH, local_epoch_day
    from featurebank.io.sources import read_source

    source, zone = compiled.source, compiled.timezone
    today = datetime.now(ZoneInfo(zone)).date()
    if not source.timestamp:
        return today
    ts = source.timestamp
    probe = replace(source, columns=(ts,), declared_types=tuple((c, t) for c, t in source.declared_types if c == ts),
                    read_start=None, read_end_exclusive=None)
    latest = read_source(spark, probe, zone).agg(F.max(local_epoch_day(F.col(ts), zone))).first()
    if latest is None or latest[0] is None:
        raise UsageError(f"source {source.name} at {source.location} holds no event with a {ts}, so there is no "
                         f"latest date to preview {compiled.group} for; give --date or --start/--end")
    return min(today, EPOCH + timedelta(days=int(latest[0]) + 1 + source.lag_days))


def _first(spark: SparkSession, plan: Plan, limit: int) -> DataFrame:
    """The first `limit` entities in key order among the events of the plan's read range that
    pass its filter, as a small DataFrame of the key columns (collected: computed once)."""
    from pyspark.sql import functions as F

    from featurebank.io.sources import read_source

    events = read_source(spark, plan.source, plan.timezone)
    if plan.filter:  # the filter's time functions read project time, as in the engine
        spark.conf.set("spark.sql.session.timeZone", plan.timezone)
        events = events.where(F.expr(plan.filter))
    keys = events.select(*[F.col(f"`{k}`") for k in plan.keys]).dropna().distinct()
    sample = keys.orderBy(*plan.keys).limit(limit).collect()
    return spark.createDataFrame(sample, schema=keys.schema)


def _given(spark: SparkSession, plan: Plan, wanted: list[tuple[str, ...]]) -> DataFrame:
    """The entities named by `--keys`, typed as the source's key columns. Raises `UsageError`
    for a value the key column's type cannot hold."""
    from pyspark.sql import functions as F

    from featurebank.io.sources import read_source

    schema = read_source(spark, plan.source, plan.timezone).select(*[f"`{k}`" for k in plan.keys]).schema
    text = spark.createDataFrame(wanted, schema=", ".join(f"`{k}` string" for k in plan.keys))
    typed = text.select(*[F.col(f"`{f.name}`").cast(f.dataType).alias(f.name) for f in schema.fields])
    rows = typed.collect()
    for given, row in zip(wanted, rows):
        if any(v is None for v in row):
            types = ", ".join(f"{f.name} {f.dataType.simpleString()}" for f in schema.fields)
            raise UsageError(f"--keys '{','.join(given)}' cannot be a key of {plan.group}: its key column(s) are "
                             f"{types} in source {plan.source.name}; give values of that type")
    return spark.createDataFrame(rows, schema=schema)
