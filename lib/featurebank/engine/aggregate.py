"""Aggregation groups: filtered events → daily tiles → windowed daily snapshots.

SPEC: the snapshot for entity E and date D aggregates E's filtered events with
`D - w <= event day < D` (days cut at midnight in the project time zone, featurebank.days),
and a row exists exactly when E has an event in `[D - max_window, D)`.

This module is the windowing, generic over aggregation functions: what each function
computes at each step is its `Aggregator`'s phase (featurebank.aggregators; the phase names
are in brackets). How it is computed, without re-reading raw events per date (all DataFrame
API, no UDFs):

1. `event_days`: one pass over events: apply the filter, compute each event's local day
   (an integer, days since 1970-01-01) and each aggregation's input value, typed by the
   source, then each aggregation's per-event columns [prepare] (e.g. the exact terms of the
   numeric contract, README).
2. `daily_tiles`: one row per (keys, day) with each aggregation's mergeable partials [update]
   (day totals of exact terms, min, max, the day's latest value, its set of distinct
   values). `annotate_tiles` adds partials that depend on the entity's other tiles
   [annotate] (occurrence counts for distinct counts). The events are repartitioned by the
   keys once before this step; every later group, window and annotation stays within one
   entity, so that is the plan's only shuffle (and its only scan of the events).
   Aggregations of one input expression (sum and avg of `amount`) share their terms, day
   totals and window totals (`Slot.shared_column`): each is computed once.
3. `kernel_reads`: the tiles, sorted by (keys, day) within their partitions, go through
   `mapInArrow` to engine/kernel.py, which makes every snapshot row (an entity has one on D
   exactly when one of its tiles lies in `[D - max_window, D)`) and computes what each
   aggregation reads over its windows (`Read`: exact window totals as sums of the day
   totals, counts, extremes, the latest tile, distinct counts), vectorised per block of
   entities. No dense day grid, no window operator, no running total.
   Runs of at most `DIRECT_MAX_DATES` dates (the daily run) skip steps 2-3: `direct_snapshots`
   aggregates each date's window of events with conditional aggregates [direct], like a
   hand-written daily job, which costs less than a pass over every entity's tiles; an
   aggregator may compute its windows in a frame of their own, joined back by (keys, D)
   [direct_apart] (count_distinct: one row per value first).
4. `snapshot_columns`: each window's value [finalize], with SPEC's empty-window values
   (count family 0, everything else NULL); add `feature_date`, `feature_ts`, then derived
   features in order. Both paths give the same bytes (tests/test_numeric_contract.py).
"""

from __future__ import annotations

from functools import reduce
from typing import TYPE_CHECKING

from featurebank.aggregators import (
    EVENT_DAY, EVENT_TS, SNAPSHOT_DAY, Input, Slot, aggregator, failure, value_column,
)
from featurebank.compile.run import Plan
from featurebank.days import day_date, day_start_ts, epoch_day, local_epoch_day

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

# Runs of at most this many snapshot dates (the daily run, a short catch-up) aggregate each
# date's window of events directly: cost ~ events in the window x dates, against a pass over
# every entity's tiles of the run and its lookback, which only pays off for backfills.
DIRECT_MAX_DATES = 3


def compute_aggregation(events: DataFrame, plan: Plan) -> DataFrame:
    """The snapshot rows of an aggregation group for dates `plan.start..plan.end`.

    `events` are source rows as `read_source` returns them (event time as TIMESTAMP);
    `plan.filter` is applied here. Returns one row per (keys, feature_date) that SPEC says
    exists, with the columns of `plan.output` in that order.
    """
    keys = list(plan.keys)
    max_window = plan.max_window
    start_day, end_day = epoch_day(plan.start), epoch_day(plan.end)
    events, slots = event_days(events, plan, first_day=start_day - max_window, last_day=end_day - 1)
    if end_day - start_day + 1 <= DIRECT_MAX_DATES:
        return direct_snapshots(events, plan, slots, start_day, end_day)
    # The one exchange of the backfill: every later step groups, windows or rolls within one
    # entity, and hash partitioning by the keys satisfies them all (no shuffle after this one).
    events = events.repartition(*[events[f"`{k}`"] for k in keys])
    tiles = annotate_tiles(daily_tiles(events, keys, slots), keys, slots)
    rolled = kernel_reads(tiles, keys, slots, max_window, start_day, end_day)
    return snapshot_columns(rolled, plan, slots)


def event_days(events: DataFrame, plan: Plan, first_day: int, last_day: int) -> tuple[DataFrame, list[Slot]]:
    """Filtered events with their local `day` in `[first_day, last_day]`, each aggregation's
    input and per-event columns [prepare]; and one `Slot` per aggregation, its input typed."""
    from pyspark.sql import functions as F

    ts = F.col(f"`{plan.source.timestamp}`")
    if plan.filter:
        events = events.filter(F.expr(plan.filter))
    values = [F.expr(a.expr).alias(value_column(i)) for i, a in enumerate(plan.aggregates) if a.expr is not None]
    out = events.filter(ts.isNotNull()).select(
        *[F.col(f"`{k}`") for k in plan.keys], ts.alias(EVENT_TS), local_epoch_day(ts, plan.timezone).alias(EVENT_DAY),
        *values,
    )
    types = {f.name: f.dataType.simpleString() for f in out.schema.fields}
    first: dict[str | None, int] = {}  # input expression -> the first aggregation of it
    slots = [
        Slot(i, a.name, aggregator(a.function), a.expr is not None, a.windows, plan.keys,
             Input(types.get(value_column(i), "bigint")), shares=first.setdefault(a.expr, i))
        for i, a in enumerate(plan.aggregates)
    ]
    prepared = unique_columns([
        c for s in slots for c in s.aggregator.prepare(s, failure(s, "an event at ", F.col(EVENT_TS).cast("string")))
    ])
    out = out.filter((F.col(EVENT_DAY) >= first_day) & (F.col(EVENT_DAY) <= last_day))
    return out.select("*", *prepared), slots


def daily_tiles(events: DataFrame, keys: list[str], slots: list[Slot]) -> DataFrame:
    """One row per (keys, day) with the mergeable partials every aggregation needs [update]."""
    from pyspark.sql import functions as F

    at = day_date(F.col(EVENT_DAY)).cast("string")
    parts = unique_columns([c for s in slots for c in s.aggregator.update(s, failure(s, "event day ", at))])
    return events.groupBy(*keys, EVENT_DAY).agg(F.count(F.lit(1)).alias("_events"), *parts)


def annotate_tiles(tiles: DataFrame, keys: list[str], slots: list[Slot]) -> DataFrame:
    """Add the partials that depend on the entity's other tiles [annotate], one aggregator after
    the other, each returning the same tile rows with its columns added (no join: the tiles
    stay in their entity partitions)."""
    return reduce(lambda annotated, s: s.aggregator.annotate(s, annotated) or annotated, slots, tiles)


def kernel_reads(tiles: DataFrame, keys: list[str], slots: list[Slot], max_window: int, start_day: int,
                 end_day: int) -> DataFrame:
    """One row per (keys, D) for every snapshot day `start_day <= D <= end_day` the entity has
    a tile within `max_window` days before, with every aggregation's reads (`Read`), computed
    by engine/kernel.py in each partition's Python worker: keys, `D` (INT), then the reads."""
    from functools import partial

    from pyspark.sql import functions as F
    from pyspark.sql.types import IntegerType, StructField, StructType

    from featurebank.engine.kernel import Spec, roll_partition

    reads = list({r.name: r for s in slots for r in s.aggregator.reads(s)}.values())
    carried = list(dict.fromkeys(c for r in reads for c in r.tiles))
    sorted_tiles = tiles.select(*[F.col(f"`{c}`") for c in (*keys, EVENT_DAY, *carried)]).sortWithinPartitions(
        *[F.col(f"`{c}`") for c in (*keys, EVENT_DAY)])
    types = {f.name: f.dataType for f in sorted_tiles.schema.fields}
    schema = StructType([*[StructField(k, types[k]) for k in keys], StructField(SNAPSHOT_DAY, IntegerType()),
                         *[StructField(r.name, r.spark_type(types)) for r in reads]])
    spec = Spec(tuple(keys), max_window, start_day, end_day, tuple(reads))
    return sorted_tiles.mapInArrow(partial(roll_partition, spec), schema)


def unique_columns(columns: list[Column]) -> list[Column]:
    """`columns` without repeated names, first kept: aggregations of one input expression name
    the values they share alike (`Slot.shared_column`), so each is computed once."""
    kept: dict[str, Column] = {}
    for c in columns:
        kept.setdefault(alias_name(c), c)
    return list(kept.values())


def alias_name(c: Column) -> str:
    """The name a phase column is aliased to (every phase column is an alias), from its text
    `Column<'… AS name'>`: no public API gives it on both lanes (Spark 4's Column has no JVM
    `expr()`), and Spark 3.5 backquotes a name that needs it where 4.x does not."""
    text = str(c)
    body = text[len("Column<'"):-len("'>")] if text.startswith("Column<'") and text.endswith("'>") else ""
    if " AS " not in body:
        raise ValueError(f"a phase column must be an alias (`.alias(name)`), got {text}")
    name = body.rsplit(" AS ", 1)[1]
    if len(name) > 1 and name.startswith("`") and name.endswith("`"):
        name = name[1:-1].replace("``", "`")
    return name


def direct_snapshots(events: DataFrame, plan: Plan, slots: list[Slot], start_day: int, end_day: int) -> DataFrame:
    """Snapshot rows for a short run: each event joins the snapshot days D it is inside the
    largest window of (`D - max_window <= day < D`, clipped to the run), then one group-by
    per (keys, D) computes every window as a conditional aggregate (`D - day <= w`) [direct],
    except the windows an aggregator computes apart [direct_apart], joined back on (keys, D)
    NULL-safe, an empty window read as the aggregator's `empty`. The apart frames read the
    events again (Spark scans the source once per aggregation); measured cheaper than
    `collect_set` in the one group-by all the same (notes/20-daily.md).

    Same rows and bytes as the backfill path (tests/test_numeric_contract.py).
    """
    from pyspark.sql import functions as F

    day = F.col(EVENT_DAY)
    days = F.sequence(F.greatest(day + 1, F.lit(start_day)), F.least(day + plan.max_window, F.lit(end_day)))
    rows = events.select("*", F.explode(days).alias(SNAPSHOT_DAY))
    age = F.col(SNAPSHOT_DAY) - day
    at = day_date(F.col(SNAPSHOT_DAY)).cast("string")
    by = [*plan.keys, SNAPSHOT_DAY]
    apart = {s.index: frame for s in slots if (frame := s.aggregator.direct_apart(s, rows, by, age)) is not None}
    features = [
        s.aggregator.direct(s, w, age <= w, failure(s, "snapshot date ", at)).alias(name)
        for s, a in zip(slots, plan.aggregates) if s.index not in apart
        for w, name in zip(a.windows, a.output_names())
    ]
    per_date = rows.groupBy(*[F.col(f"`{c}`") for c in by]).agg(F.count(F.lit(1)).alias("_rows"), *features)
    for frame in apart.values():  # NULL keys match NULL keys (`<=>`), as in the group-by
        renamed = frame.select(*[F.col(f"`{c}`").alias(f"_by{i}") for i, c in enumerate(by)],
                               *[F.col(f"`{c}`") for c in frame.columns if c not in by])
        on = reduce(lambda a, b: a & b, [F.col(f"`{c}`").eqNullSafe(F.col(f"_by{i}")) for i, c in enumerate(by)])
        per_date = per_date.join(renamed, on=on, how="left").drop(*[f"_by{i}" for i in range(len(by))])
    read = [F.coalesce(F.col(s.column(f"direct_{w}")), F.lit(s.aggregator.empty)).alias(name) if s.index in apart
            else F.col(f"`{name}`")
            for s, a in zip(slots, plan.aggregates) for w, name in zip(a.windows, a.output_names())]
    return finish_snapshots(per_date, read, plan)


def snapshot_columns(rolled: DataFrame, plan: Plan, slots: list[Slot]) -> DataFrame:
    """Final snapshot rows of a backfill: the kernel's reads turned into features [finalize]."""
    from pyspark.sql import functions as F

    at = day_date(F.col(SNAPSHOT_DAY)).cast("string")
    features = [
        s.aggregator.finalize(s, w, failure(s, "snapshot date ", at)).alias(name)
        for s, a in zip(slots, plan.aggregates)
        for w, name in zip(a.windows, a.output_names())
    ]
    return finish_snapshots(rolled, features, plan)


def finish_snapshots(rows: DataFrame, features: list[Column], plan: Plan) -> DataFrame:
    """keys, feature_date, feature_ts (from epoch day `D`), `features`, derived; plan.output order."""
    from pyspark.sql import functions as F

    out = rows.select(
        *[F.col(f"`{k}`") for k in plan.keys],
        day_date(F.col(SNAPSHOT_DAY)).alias("feature_date"),
        day_start_ts(F.col(SNAPSHOT_DAY), plan.timezone).alias("feature_ts"),
        *features,
    )
    for d in plan.derived:
        out = out.withColumn(d.name, F.expr(d.expr))
    return out.select(*[F.col(f"`{c}`") for c in output_names(plan)])


def output_names(plan: Plan) -> list[str]:
    """The batch's column names in table order: `plan.output`, or SPEC's order if it is empty."""
    if plan.output:
        return [c.name for c in plan.output]
    if plan.kind == "row":
        features = [f.name for f in plan.features]
    else:
        features = [n for a in plan.aggregates for n in a.output_names()] + [d.name for d in plan.derived]
    return [*plan.keys, "feature_date", "feature_ts", *features]
