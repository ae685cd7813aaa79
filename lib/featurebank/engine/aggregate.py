"""Aggregation groups: filtered events → daily tiles → windowed daily snapshots.

SPEC: the snapshot for entity E and date D aggregates E's filtered events with
`D - w <= event day < D` (days cut at midnight in the project time zone), and a row exists
exactly when E has an event in `[D - max_window, D)`.

How it is computed, without re-reading raw events per date (all DataFrame API, no UDFs):

1. `event_days`: one pass over events: apply the filter, compute each event's local day
   (an integer, days since 1970-01-01) and each aggregate's input value.
2. `daily_tiles`: one row per (keys, day) with mergeable partials: counts, sums, min, max,
   Welford partials (n, mean, M2) for stddev, the day's latest non-NULL value as
   `struct(day, ts, value)` (struct order = later time, then greater value: SPEC's tie
   rule), and the day's set of distinct values.
3. `activity_segments`: per entity, tiles closer than `max_window` days apart form one
   segment; the days with a snapshot row are exactly `[first + 1, last + max_window]` of
   each segment, clipped to the run. Nothing before a segment can reach into it, so every
   later window function is partitioned by (keys, segment).
4. `axis_rows` explodes each tile (no branching: events are scanned and tiled once, and
   there are only two shuffles in the whole plan) into rows on one sorted position axis
   per segment — tile of day t at `2t+1`, "after day X" at `2X+2` — and `rolling_windows`
   reads every window from one sort of that axis:
   - sums and counts: a running total (unbounded-preceding frame, incremental) read at the
     snapshot row D (all tiles before D) minus the same running total read at a "start"
     row after day `D - w - 1` (skipped, i.e. 0, when that is before the segment).
     stddev carries `n`, `Σ(x-K)` and `Σ(x-K)²` per tile, merged exactly from Welford
     partials around a per-segment centre K, so no catastrophic cancellation.
   - min / max: a bounded range frame covering exactly the tiles of `[D - w, D)`.
   - last: `last(struct, ignorenulls)` over the running frame, then an age check `>= D - w`.
   - exact count_distinct (and approx_count_distinct, computed exactly — within any error
     bound): per (entity, value) an occurrence on day o counts for snapshots
     `o + 1 .. min(o + w, next occurrence)`: +1 on the tile, -1 at that stop
     (`distinct_expiries`); the running sum at D is the distinct count.
   Rows: tiles + snapshot rows x (1 + windows) + distinct occurrences; a one-day run costs
   a few rows per entity on top of the tiles, not `max_window` densified days.
5. `snapshot_columns`: pivot the snapshot/start rows back to one row per (keys, D), apply
   SPEC's empty-window rules (count family 0, everything else NULL), add `feature_date`,
   `feature_ts`, then derived features in order.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

from featurebank.plan import AggregateSpec, Plan

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

MICROS_PER_DAY = 86_400_000_000
EPOCH = date(1970, 1, 1)
DISTINCT = ("count_distinct", "approx_count_distinct")
ADDITIVE = ("count", "sum", "avg", "stddev")
EXACT_TYPE = "decimal(38,18)"
EXACT_TILE_LIMIT = 1e15


def compute_aggregation(events: DataFrame, plan: Plan) -> DataFrame:
    """The snapshot rows of an aggregation group for dates `plan.start..plan.end`.

    `events` are source rows as `read_source` returns them (event time as TIMESTAMP);
    `plan.filter` is applied here. Returns one row per (keys, feature_date) that SPEC says
    exists, with the columns of `plan.output` in that order.
    """
    keys = list(plan.keys)
    max_window = plan.max_window
    start_day, end_day = epoch_day(plan.start), epoch_day(plan.end)
    events = event_days(events, plan, first_day=start_day - max_window, last_day=end_day - 1)
    tiles = activity_segments(daily_tiles(events, keys, plan.aggregates), keys, plan.aggregates, max_window)
    rows = axis_rows(tiles, keys, plan.aggregates, max_window, start_day, end_day)
    rows = distinct_expiries(rows, keys, plan.aggregates, end_day)
    rolled = rolling_windows(rows, keys, plan.aggregates)
    return snapshot_columns(rolled, tiles, plan)


def epoch_day(day: date) -> int:
    """Days from 1970-01-01 to `day` (the integer day axis every step here uses)."""
    return (day - EPOCH).days


def local_epoch_day(instant: Column, timezone: str) -> Column:
    """The day (days since 1970-01-01) an instant falls on in `timezone`; session-independent."""
    from pyspark.sql import functions as F

    wall = F.unix_micros(F.from_utc_timestamp(instant, timezone))
    return ((wall - F.pmod(wall, F.lit(MICROS_PER_DAY))) / F.lit(MICROS_PER_DAY)).cast("int")


def day_date(day: Column) -> Column:
    """An epoch-day integer as a DATE."""
    from pyspark.sql import functions as F

    return F.date_add(F.lit(EPOCH), day)


def day_start_ts(day: Column, timezone: str) -> Column:
    """The instant an epoch day begins (00:00) in `timezone`."""
    from pyspark.sql import functions as F

    return F.to_utc_timestamp(F.timestamp_micros(day.cast("bigint") * F.lit(MICROS_PER_DAY)), timezone)


def event_days(events: DataFrame, plan: Plan, first_day: int, last_day: int) -> DataFrame:
    """Filtered events with `day` (local epoch day) in `[first_day, last_day]` and inputs `_v{i}`."""
    from pyspark.sql import functions as F

    ts = F.col(f"`{plan.source.timestamp}`")
    if plan.filter:
        events = events.filter(F.expr(plan.filter))
    values = [F.expr(a.expr).alias(f"_v{i}") for i, a in enumerate(plan.aggregates) if a.expr is not None]
    out = events.filter(ts.isNotNull()).select(
        *[F.col(f"`{k}`") for k in plan.keys], ts.alias("_ts"), local_epoch_day(ts, plan.timezone).alias("day"), *values
    )
    return out.filter((F.col("day") >= first_day) & (F.col("day") <= last_day))


def daily_tiles(events: DataFrame, keys: list[str], aggregates: tuple[AggregateSpec, ...]) -> DataFrame:
    """One row per (keys, day) with the mergeable partials every aggregate needs."""
    from pyspark.sql import functions as F

    parts: list[Column] = []
    for i, a in enumerate(aggregates):
        v = F.col(f"_v{i}")
        p = f"_a{i}"
        fn = a.function
        if fn == "count":
            parts.append((F.count(F.lit(1)) if a.expr is None else F.count(v)).alias(f"{p}_n"))
        elif fn in ("sum", "avg"):
            parts.append(F.sum(v if fn == "sum" else v.cast("double")).alias(f"{p}_s"))
            parts.append(F.count(v).alias(f"{p}_n"))
        elif fn == "stddev":
            x = v.cast("double")
            parts += [F.count(x).alias(f"{p}_n"), F.avg(x).alias(f"{p}_mean"), (F.var_pop(x) * F.count(x)).alias(f"{p}_m2")]
        elif fn in ("min", "max"):
            parts.append((F.min(v) if fn == "min" else F.max(v)).alias(f"{p}_{fn}"))
        elif fn == "last":
            latest = F.when(v.isNotNull(), F.struct(F.col("day").alias("day"), F.col("_ts").alias("ts"), v.alias("v")))
            parts.append(F.max(latest).alias(f"{p}_last"))
        elif fn in DISTINCT:
            parts.append(F.collect_set(v).alias(f"{p}_set"))
        else:
            raise ValueError(f"unknown aggregation function {fn!r}")
    return events.groupBy(*keys, "day").agg(F.count(F.lit(1)).alias("_events"), *parts)


def activity_segments(
    tiles: DataFrame, keys: list[str], aggregates: tuple[AggregateSpec, ...], max_window: int
) -> DataFrame:
    """Add `seg` (first tile day of the entity's activity segment) and `seg_last`.

    Tiles more than `max_window` days apart start a new segment: no window can span the gap.
    Also turns stddev's Welford partials into sums centred on the segment's mean (`_s1`, `_s2`).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    by_day = Window.partitionBy(*keys).orderBy("day")
    running = by_day.rowsBetween(Window.unboundedPreceding, Window.currentRow)
    gap = F.col("day") - F.lag("day").over(by_day)
    starts = tiles.withColumn("_new", gap.isNull() | (gap > max_window))
    segs = starts.select("*", F.max(F.when(F.col("_new"), F.col("day"))).over(running).alias("seg")).drop("_new")
    whole = Window.partitionBy(*keys, "seg")
    segs = segs.select("*", F.max("day").over(whole).alias("seg_last"))
    centres = []
    for i, a in enumerate(aggregates):
        if a.function == "stddev":
            n, mean = F.col(f"_a{i}_n"), F.coalesce(F.col(f"_a{i}_mean"), F.lit(0.0))
            centres.append(F.coalesce(F.sum(n * mean).over(whole) / F.sum(n).over(whole), F.lit(0.0)).alias(f"_a{i}_k"))
    segs = segs.select("*", *centres)
    centred = []
    for i, a in enumerate(aggregates):
        if a.function == "stddev":
            n, d = F.col(f"_a{i}_n"), F.coalesce(F.col(f"_a{i}_mean"), F.lit(0.0)) - F.col(f"_a{i}_k")
            centred += [(n * d).alias(f"_a{i}_s1"), (F.coalesce(F.col(f"_a{i}_m2"), F.lit(0.0)) + n * d * d).alias(f"_a{i}_s2")]
        elif a.function in ("sum", "avg"):
            centred.append(_exact_sum(F.col(f"_a{i}_s"), whole).alias(f"_a{i}_sd"))
    return segs.select("*", *centred)


def _exact_sum(tile_sum: Column, segment: Any) -> Column:
    """The tile sum as decimal(38,18), or NULL for the whole segment if any |tile sum| >= 1e15.

    A running total of doubles minus an earlier one carries rounding noise proportional to
    the segment's total (e.g. 1e-13 instead of 0.0, which a `min_value: 0` check would
    refuse); in decimal the difference is exact. Below 1e15 per tile no running total of a
    segment can overflow decimal(38,18).
    """
    from pyspark.sql import functions as F

    fits = F.max(F.abs(tile_sum.cast("double"))).over(segment) < F.lit(EXACT_TILE_LIMIT)
    return F.when(fits, tile_sum.cast(EXACT_TYPE))


def additive_columns(aggregates: tuple[AggregateSpec, ...]) -> list[str]:
    """Tile columns whose window value is (running total before D) - (running total before D - w).

    Distinct counts are additive too: `_a{i}_p` (+1 per value on the tile's day) and
    `_a{i}_x{w}` (-1 where an occurrence stops counting for window w).
    """
    cols: list[str] = []
    for i, a in enumerate(aggregates):
        p = f"_a{i}"
        if a.function == "count":
            cols.append(f"{p}_n")
        elif a.function in ("sum", "avg"):
            cols += [f"{p}_s", f"{p}_sd", f"{p}_n"]
        elif a.function == "stddev":
            cols += [f"{p}_n", f"{p}_s1", f"{p}_s2"]
    return cols


def axis_rows(tiles: DataFrame, keys: list[str], aggregates: tuple[AggregateSpec, ...], max_window: int, start_day: int, end_day: int) -> DataFrame:
    """Explode each segmented tile into the rows of the per-segment position axis.

    From one input row (no branching, so the events are read and tiled once): the tile
    itself (`_kind` tile, pos `2 day + 1`); for a segment's first tile, every snapshot day D
    of the segment within the run (`end`, pos `2D`: sees the tiles of days < D) and, per
    additive window w, a `start` row after day `D - w - 1` (pos `2(D - w)`), skipped when
    that is before the segment (the total there is 0); and one `occ` row per distinct
    value of the day, for count_distinct.
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import IntegerType

    day, seg = F.col("day"), F.col("seg")
    lo = F.greatest(seg + 1, F.lit(start_day))
    hi = F.least(F.col("seg_last") + max_window, F.lit(end_day))
    snapshot = F.filter(F.sequence(lo, F.greatest(lo, hi)), lambda d: (d <= hi) & (day == seg))
    distinct = [(i, a) for i, a in enumerate(aggregates) if a.function in DISTINCT]
    value_types = {i: tiles.schema[f"_a{i}_set"].dataType.elementType for i, _ in distinct}  # type: ignore[attr-defined]

    def item(kind: str, d: Column | None = None, w: Column | None = None, tag: int | None = None, value: Column | None = None) -> Column:
        fields = [
            F.lit(kind).alias("_kind"),
            (d if d is not None else F.lit(None)).cast(IntegerType()).alias("D"),
            (w if w is not None else F.lit(None)).cast(IntegerType()).alias("_w"),
            F.lit(tag).cast(IntegerType()).alias("_tag"),
        ]
        fields += [
            (value if j == tag and value is not None else F.lit(None)).cast(t).alias(f"_val{j}") for j, t in value_types.items()
        ]
        return F.struct(*fields)

    additive_windows = sorted({w for a in aggregates if a.function in ADDITIVE for w in a.windows})
    parts = [F.array(item("tile")), F.transform(snapshot, lambda d: item("end", d=d))]
    if additive_windows:
        starts = F.flatten(F.transform(snapshot, lambda d: F.array(*[item("start", d=d, w=F.lit(w)) for w in additive_windows])))
        parts.append(F.filter(starts, lambda r: r["D"] - r["_w"] - 1 >= seg))
    for i, _ in distinct:
        parts.append(F.transform(F.col(f"_a{i}_set"), _occurrence(item, i)))
    exploded = tiles.select("*", F.explode(F.concat(*parts)).alias("_item")).select("*", "_item.*").drop("_item")
    pos = (
        F.when(F.col("_kind") == "tile", day.cast("bigint") * 2 + 1)
        .when(F.col("_kind") == "end", F.col("D").cast("bigint") * 2)
        .when(F.col("_kind") == "start", (F.col("D") - F.col("_w")).cast("bigint") * 2)
    )
    is_tile = F.col("_kind") == "tile"
    carried = [*additive_columns(aggregates), *_tile_reads(aggregates)]
    out = exploded.select(
        *keys, "seg", "day", "D", "_w", "_kind", "_tag", *[f"_val{i}" for i, _ in distinct],
        pos.alias("pos"), *[F.when(is_tile, F.col(c)).alias(c) for c in carried],
        *[F.when(is_tile, F.size(f"_a{i}_set")).alias(f"_a{i}_p") for i, _ in distinct],
    )
    return out


def _occurrence(item: Any, tag: int) -> Any:
    """A one-argument lambda for F.transform (a second argument would be the index)."""
    return lambda v: item("occ", tag=tag, value=v)


def distinct_expiries(rows: DataFrame, keys: list[str], aggregates: tuple[AggregateSpec, ...], end_day: int) -> DataFrame:
    """Turn each `occ` row into the -1 rows of exact sliding count_distinct.

    A value seen on day o counts for snapshots `o + 1 .. min(o + w, next occurrence)`: its
    +1 is already in the tile's `_a{i}_p`; here a -1 (`_a{i}_x{w}`) lands at tile position
    `min(o + w, next)`, dropped when that is past the run. Other rows pass through.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    distinct = [(i, a) for i, a in enumerate(aggregates) if a.function in DISTINCT]
    if not distinct:
        return rows
    by_value = Window.partitionBy(*keys, "seg", "_tag", *[f"_val{i}" for i, _ in distinct]).orderBy("day")
    rows = rows.withColumn("_next", F.lead("day").over(by_value))
    is_occ = F.col("_kind") == "occ"
    stop_tags = [(i, w) for i, a in distinct for w in a.windows]
    stops = []
    for i, w in stop_tags:
        until = F.least(F.col("day") + w, F.coalesce(F.col("_next"), F.col("day") + w))
        stop = F.when(F.col("_tag") == i, F.lit(f"{i}_{w}"))  # only the row's own aggregate
        stops.append(F.struct((until.cast("bigint") * 2 + 1).alias("_p"), stop.alias("_stop")))
    keep = F.array(F.struct(F.col("pos").alias("_p"), F.lit(None).cast("string").alias("_stop")))
    live = F.filter(F.array(*stops), lambda r: r["_stop"].isNotNull() & (r["_p"] < 2 * end_day))
    chosen = F.when(is_occ, live).otherwise(keep)
    rows = rows.select("*", F.explode(chosen).alias("_e"))
    expiries = [F.when(F.col("_e._stop") == f"{i}_{w}", F.lit(1)).alias(f"_a{i}_x{w}") for i, w in stop_tags]
    rest = [F.col(c) for c in rows.columns if c not in ("_e", "_next", "pos")]
    return rows.select(*rest, F.col("_e._p").alias("pos"), *expiries)


def rolling_windows(rows: DataFrame, keys: list[str], aggregates: tuple[AggregateSpec, ...]) -> DataFrame:
    """Per (keys, seg, D): every window's raw totals, read from one sorted pass per segment.

    Input: `axis_rows` (+ `distinct_expiries`). Output columns keys, seg, D and the pivoted
    reads `window_value` turns into features.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    additive = additive_columns(aggregates)
    additive_windows = sorted({w for a in aggregates if a.function in ADDITIVE for w in a.windows})
    axis = Window.partitionBy(*keys, "seg").orderBy("pos")
    running = axis.rowsBetween(Window.unboundedPreceding, Window.currentRow)
    computed: list[Column] = [F.sum(c).over(running).alias(f"_rt{c}") for c in additive]
    for i, a in enumerate(aggregates):
        p = f"_a{i}"
        if a.function in ("min", "max"):
            agg = F.min if a.function == "min" else F.max
            for w in a.windows:
                frame = axis.rangeBetween(-(2 * w - 1), -1)
                computed.append(agg(f"{p}_{a.function}").over(frame).alias(f"_r{i}_{w}_{a.function}"))
        elif a.function == "last":
            computed.append(F.last(f"{p}_last", ignorenulls=True).over(running).alias(f"_r{i}_last"))
        elif a.function in DISTINCT:
            plus = F.coalesce(F.sum(f"{p}_p").over(running), F.lit(0))
            for w in a.windows:
                minus = F.coalesce(F.sum(f"{p}_x{w}").over(running), F.lit(0))
                computed.append((plus - minus).alias(f"_r{i}_{w}_distinct"))
    reads = rows.select(*keys, "seg", "D", "_kind", "_w", *computed).filter(F.col("_kind").isin("end", "start"))

    is_end = F.col("_kind") == "end"
    pivot: list[Column] = []
    for c in additive:
        pivot.append(F.max(F.when(is_end, F.col(f"_rt{c}"))).alias(f"_end{c}"))
        pivot += [F.max(F.when((~is_end) & (F.col("_w") == w), F.col(f"_rt{c}"))).alias(f"_start{c}_{w}") for w in additive_windows]
    for col in _read_names(aggregates):
        pivot.append(F.max(F.when(is_end, F.col(col))).alias(col))
    return reads.groupBy(*keys, "seg", "D").agg(*pivot)


def _tile_reads(aggregates: tuple[AggregateSpec, ...]) -> list[str]:
    """Non-additive tile columns the window functions read (min, max, last)."""
    return [f"_a{i}_{a.function}" for i, a in enumerate(aggregates) if a.function in ("min", "max", "last")]


def _read_names(aggregates: tuple[AggregateSpec, ...]) -> list[str]:
    names: list[str] = []
    for i, a in enumerate(aggregates):
        if a.function in ("min", "max"):
            names += [f"_r{i}_{w}_{a.function}" for w in a.windows]
        elif a.function == "last":
            names.append(f"_r{i}_last")
        elif a.function in DISTINCT:
            names += [f"_r{i}_{w}_distinct" for w in a.windows]
    return names


def window_value(a: AggregateSpec, i: int, w: int, sum_type: str | None) -> Column:
    """The value of aggregate `a` over window `w` at a snapshot row of `rolling_windows`."""
    from pyspark.sql import functions as F

    def total(part: str) -> Column:
        c = f"_a{i}_{part}"
        return F.coalesce(F.col(f"_end{c}"), F.lit(0)) - F.coalesce(F.col(f"_start{c}_{w}"), F.lit(0))

    fn = a.function
    if fn == "count":
        return total("n").cast("bigint")
    if fn == "sum" and sum_type not in ("double", "float"):
        return F.when(total("n") > 0, total("s").cast(sum_type or "double"))
    if fn in ("sum", "avg"):
        # Exact decimal difference unless its conversion error (<= w * 1e-18) exceeds the
        # double difference's rounding error (tiny-valued features) or the segment is too big.
        end, start = F.col(f"_end_a{i}_sd"), F.coalesce(F.col(f"_start_a{i}_sd_{w}"), F.lit(0))
        double_error = F.lit(4 * 2.2e-16) * (F.abs(F.col(f"_end_a{i}_s")) + F.abs(F.coalesce(F.col(f"_start_a{i}_s_{w}"), F.lit(0.0))))
        exact = F.when(end.isNotNull() & (double_error > F.lit(w * 1e-18)), (end - start).cast("double"))
        value = F.coalesce(exact, total("s").cast("double"))
        return F.when(total("n") > 0, value if fn == "sum" else value / total("n"))
    if fn == "stddev":
        n, s1, s2 = total("n").cast("double"), total("s1"), total("s2")
        var = (s2 - s1 * s1 / n) / (n - 1)
        return F.when(n >= 2, F.sqrt(F.greatest(var, F.lit(0.0))))
    if fn in ("min", "max"):
        return F.col(f"_r{i}_{w}_{fn}")
    if fn == "last":
        latest = F.col(f"_r{i}_last")
        return F.when(latest["day"] >= F.col("D") - w, latest["v"])
    if fn in DISTINCT:
        return F.coalesce(F.col(f"_r{i}_{w}_distinct"), F.lit(0)).cast("bigint")
    raise ValueError(f"unknown aggregation function {fn!r}")


def snapshot_columns(rolled: DataFrame, tiles: DataFrame, plan: Plan) -> DataFrame:
    """Final snapshot rows: keys, feature_date, feature_ts, `<name>_<w>d`, derived; plan.output order."""
    from pyspark.sql import functions as F

    tile_types = dict((f.name, f.dataType.simpleString()) for f in tiles.schema.fields)
    features = [
        window_value(a, i, w, tile_types.get(f"_a{i}_s")).alias(f"{a.name}_{w}d")
        for i, a in enumerate(plan.aggregates)
        for w in a.windows
    ]
    out = rolled.select(
        *[F.col(f"`{k}`") for k in plan.keys],
        day_date(F.col("D")).alias("feature_date"),
        day_start_ts(F.col("D"), plan.timezone).alias("feature_ts"),
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
