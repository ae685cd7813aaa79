"""Aggregation groups: filtered events → daily tiles → windowed daily snapshots.

SPEC: the snapshot for entity E and date D aggregates E's filtered events with
`D - w <= event day < D` (days cut at midnight in the project time zone), and a row exists
exactly when E has an event in `[D - max_window, D)`.

How it is computed, without re-reading raw events per date (all DataFrame API, no UDFs):

1. `event_days`: one pass over events: apply the filter, compute each event's local day
   (an integer, days since 1970-01-01), each aggregate's input value and the exact terms
   count/sum/avg/stddev add up (aggregators.py: the numeric contract, README).
2. `daily_tiles`: one row per (keys, day) with mergeable partials: the exact terms' day
   totals (counts, decimal sums), min, max, the day's latest non-NULL value as
   `struct(day, ts, value)` (struct order = later time, then greater value: SPEC's tie
   rule), and the day's set of distinct values. `occurrence_counts` turns each set into
   per-window counts of renewed and expiring values (exact count_distinct, see there;
   approx_count_distinct is computed exactly too — within any error bound).
3. `activity_segments`: per entity, tiles closer than `max_window` days apart form one
   segment; the days with a snapshot row are exactly `[first + 1, last + max_window]` of
   each segment, clipped to the run. Nothing before a segment can reach into it, so the
   window below is partitioned by (keys, segment).
4. `day_grid` makes the segment's days dense (one row per day, the tile's partials on its
   own day), so a frame of k rows is k days, and `rolling_windows` reads every window from
   one sort of that grid with frames that end the row before D:
   - exact terms, distinct-count terms: running totals up to D - 1 minus running totals up
     to D - w - 1 (growing frames: O(1) per row, no re-aggregation); the terms are decimals,
     so the difference is the window's exact total, the same the direct path adds up.
   - min / max: a frame of the w rows before D.
   - last: `last(struct, ignorenulls)` up to D - 1, then an age check `>= D - w`.
   Rows: the segment's days (snapshot days plus at most `max_window` days before the run);
   a one-day run costs one row per entity and lookback day, not a re-read of raw events.
   Runs of at most `DIRECT_MAX_DATES` dates (the daily run) skip steps 2-4: `direct_snapshots`
   aggregates each date's window of events with conditional aggregates, like a hand-written
   daily job, which costs less than a grid of `max_window` lookback days per entity.
5. `snapshot_columns`: one finaliser per function (aggregators.finalize, shared with the
   direct path) turns exact totals into values and applies SPEC's empty-window rules
   (count family 0, everything else NULL); add `feature_date`, `feature_ts`, then derived
   features in order. Both paths give the same bytes (tests/test_numeric_contract.py).
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

from featurebank.engine.aggregators import ADDITIVE, SUFFIXES, Input, failure, finalize, terms
from featurebank.compile.group import AggregateSpec
from featurebank.compile.run import Plan

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

MICROS_PER_DAY = 86_400_000_000
EPOCH = date(1970, 1, 1)
DISTINCT = ("count_distinct", "approx_count_distinct")
# Runs of at most this many snapshot dates (the daily run, a short catch-up) aggregate each
# date's window of events directly: cost ~ events in the window x dates, against the grid's
# ~ entities x (dates + max_window) rows and window sort, which only pays off for backfills.
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
    events, inputs = event_days(events, plan, first_day=start_day - max_window, last_day=end_day - 1)
    if end_day - start_day + 1 <= DIRECT_MAX_DATES:
        return direct_snapshots(events, plan, inputs, start_day, end_day)
    tiles = occurrence_counts(daily_tiles(events, keys, plan.aggregates), keys, plan.aggregates)
    tiles = activity_segments(tiles, keys, max_window)
    grid = day_grid(tiles, keys, plan.aggregates, max_window, end_day)
    rolled = rolling_windows(grid, keys, plan.aggregates, start_day, end_day)
    return snapshot_columns(rolled, plan, inputs)


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


def event_days(events: DataFrame, plan: Plan, first_day: int, last_day: int) -> tuple[DataFrame, dict[int, Input]]:
    """Filtered events with `day` (local epoch day) in `[first_day, last_day]`, inputs `_v{i}`
    and the exact terms `_t{i}_{suffix}` of every additive aggregate; and each input's type."""
    from pyspark.sql import functions as F

    ts = F.col(f"`{plan.source.timestamp}`")
    if plan.filter:
        events = events.filter(F.expr(plan.filter))
    values = [F.expr(a.expr).alias(f"_v{i}") for i, a in enumerate(plan.aggregates) if a.expr is not None]
    out = events.filter(ts.isNotNull()).select(
        *[F.col(f"`{k}`") for k in plan.keys], ts.alias("_ts"), local_epoch_day(ts, plan.timezone).alias("day"), *values
    )
    types = {f.name: f.dataType.simpleString() for f in out.schema.fields}
    inputs = {i: Input(types.get(f"_v{i}", "bigint")) for i in range(len(plan.aggregates))}
    exact_terms = []
    for i, a in enumerate(plan.aggregates):
        if a.function in ADDITIVE:
            v = F.col(f"_v{i}") if a.expr is not None else F.lit(1)
            fail = failure(a, plan.keys, "an event at ", F.col("_ts").cast("string"))
            exact_terms += [t.value.alias(f"_t{i}_{t.suffix}") for t in terms(a, v, inputs[i], fail)]
    out = out.filter((F.col("day") >= first_day) & (F.col("day") <= last_day))
    return out.select("*", *exact_terms), inputs


def daily_tiles(events: DataFrame, keys: list[str], aggregates: tuple[AggregateSpec, ...]) -> DataFrame:
    """One row per (keys, day) with the mergeable partials every aggregate needs.

    Exact terms' day totals are never NULL (0 without values), so a NULL running total of
    them in `rolling_windows` can only be an overflow; a day total that overflows fails here.
    """
    from pyspark.sql import functions as F

    parts: list[Column] = []
    for i, a in enumerate(aggregates):
        v = F.col(f"_v{i}")
        p = f"_a{i}"
        fn = a.function
        if fn in ADDITIVE:
            fail = failure(a, tuple(keys), "event day ", day_date(F.col("day")).cast("string"))
            for sfx in SUFFIXES[fn]:
                t = F.col(f"_t{i}_{sfx}")
                overflow = (F.count(t) > 0) & F.sum(t).isNull()
                day_total = F.when(overflow, fail("a day's exact total overflows")).otherwise(F.coalesce(F.sum(t), F.lit(0)))
                parts.append((F.count(t) if sfx == "n" else day_total).alias(f"{p}_{sfx}"))
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


def activity_segments(tiles: DataFrame, keys: list[str], max_window: int) -> DataFrame:
    """Add `seg` (first tile day of the entity's activity segment) and `seg_last`.

    Tiles more than `max_window` days apart start a new segment: no window can span the gap.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    by_day = Window.partitionBy(*keys).orderBy("day")
    running = by_day.rowsBetween(Window.unboundedPreceding, Window.currentRow)
    gap = F.col("day") - F.lag("day").over(by_day)
    starts = tiles.withColumn("_new", gap.isNull() | (gap > max_window))
    segs = starts.select("*", F.max(F.when(F.col("_new"), F.col("day"))).over(running).alias("seg")).drop("_new")
    return segs.select("*", F.max("day").over(Window.partitionBy(*keys, "seg")).alias("seg_last"))


def additive_columns(aggregates: tuple[AggregateSpec, ...]) -> list[str]:
    """Tile columns whose window value is (running total before D) - (running total before D - w)."""
    return [f"_a{i}_{sfx}" for i, a in enumerate(aggregates) if a.function in ADDITIVE for sfx in SUFFIXES[a.function]]


def occurrence_counts(tiles: DataFrame, keys: list[str], aggregates: tuple[AggregateSpec, ...]) -> DataFrame:
    """Add, per distinct aggregate i and window w, the tile's occurrence counts (0 when none).

    With `prev`/`next` the previous/next day the same value occurs (per entity), a value seen
    on day o counts for snapshots `o + 1 .. min(next, o + w)`, so the distinct count at D is
    `P(D-1) - F_w(D-1) - E_w(D-w-1)` over running totals of these per-tile counts:
    `_a{i}_p` values on the day, `_a{i}_f{w}` values whose previous occurrence is at most w
    days back (they stop counting the old occurrence today), `_a{i}_e{w}` values that do not
    occur again within w days (they stop counting w days later).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    distinct = [(i, a) for i, a in enumerate(aggregates) if a.function in DISTINCT]
    if not distinct:
        return tiles
    counts = None
    for i, a in distinct:
        occ = tiles.select(*keys, "day", F.explode(f"_a{i}_set").alias("_val"))
        by_value = Window.partitionBy(*keys, "_val").orderBy("day")
        prev, nxt = F.lag("day").over(by_value), F.lead("day").over(by_value)
        occ = occ.select(*keys, "day", (F.col("day") - prev).alias("_back"), (nxt - F.col("day")).alias("_ahead"))
        parts = [F.count(F.lit(1)).alias(f"_a{i}_p")]
        for w in a.windows:
            parts.append(F.count(F.when(F.col("_back") <= w, 1)).alias(f"_a{i}_f{w}"))
            parts.append(F.count(F.when(F.col("_ahead").isNull() | (F.col("_ahead") > w), 1)).alias(f"_a{i}_e{w}"))
        per_day = occ.groupBy(*keys, "day").agg(*parts)
        counts = per_day if counts is None else counts.join(per_day, [*keys, "day"], "full")
    assert counts is not None
    joined = tiles.join(counts, [*keys, "day"], "left")
    filled = [c for c in counts.columns if c not in (*keys, "day")]
    return joined.fillna(0, subset=filled)


def day_grid(tiles: DataFrame, keys: list[str], aggregates: tuple[AggregateSpec, ...], max_window: int, end_day: int) -> DataFrame:
    """One row per (keys, seg, g) for every day g of each activity segment, dense.

    A segment's grid runs from its first tile day to `min(seg_last + max_window, end_day)`
    (the last snapshot day it has a row on); each tile owns the days up to the next tile.
    The tile's partials sit on the row of its own day (`g == day`), NULL on the other rows,
    so a frame of k rows is exactly k days.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    in_segment = Window.partitionBy(*keys, "seg").orderBy("day")
    last_day = F.least(F.col("seg_last") + max_window, F.lit(end_day))
    owned = F.least(F.coalesce(F.lead("day").over(in_segment) - 1, last_day), last_day)
    carried = [c for c in tile_columns(aggregates) if c in tiles.columns]
    owners = tiles.select(*keys, "seg", "day", owned.alias("_owned"), *carried)
    grid = owners.select("*", F.explode(F.sequence(F.col("day"), F.greatest(F.col("day"), F.col("_owned")))).alias("g"))
    on_tile = F.col("g") == F.col("day")
    return grid.select(*keys, "seg", "g", *[F.when(on_tile, F.col(c)).alias(c) for c in carried])


def tile_columns(aggregates: tuple[AggregateSpec, ...]) -> list[str]:
    """Every per-tile column the window reads."""
    cols = additive_columns(aggregates)
    for i, a in enumerate(aggregates):
        if a.function in ("min", "max", "last"):
            cols.append(f"_a{i}_{a.function}")
        elif a.function in DISTINCT:
            cols.append(f"_a{i}_p")
            cols += [f"_a{i}_{k}{w}" for w in a.windows for k in ("f", "e")]
    return cols


def rolling_windows(grid: DataFrame, keys: list[str], aggregates: tuple[AggregateSpec, ...], start_day: int, end_day: int) -> DataFrame:
    """Per snapshot row (keys, seg, D): every window's raw reads, from one sorted pass.

    On the dense grid every read is a frame of rows ending before D: running totals up to
    D - 1 and up to D - w - 1 (growing frames, O(1) per row), min/max over the w rows before
    D, the latest non-NULL `last` struct. Only days `seg < D`, `start_day <= D <= end_day`
    are snapshot rows.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    axis = Window.partitionBy(*keys, "seg").orderBy("g")

    def before(back: int) -> Any:
        return axis.rowsBetween(Window.unboundedPreceding, -back)

    reads: list[Column] = []
    for i, a in enumerate(aggregates):
        p = f"_a{i}"
        if a.function in ADDITIVE:
            for sfx in SUFFIXES[a.function]:
                reads.append(F.sum(f"{p}_{sfx}").over(before(1)).alias(f"_end{p}_{sfx}"))
                reads += [F.sum(f"{p}_{sfx}").over(before(w + 1)).alias(f"_start{p}_{sfx}_{w}") for w in a.windows]
        elif a.function in ("min", "max"):
            agg = F.min if a.function == "min" else F.max
            reads += [agg(f"{p}_{a.function}").over(axis.rowsBetween(-w, -1)).alias(f"_r{i}_{w}_{a.function}") for w in a.windows]
        elif a.function == "last":
            reads.append(F.last(f"{p}_last", ignorenulls=True).over(before(1)).alias(f"_r{i}_last"))
        elif a.function in DISTINCT:
            seen = F.coalesce(F.sum(f"{p}_p").over(before(1)), F.lit(0))
            for w in a.windows:
                renewed = F.coalesce(F.sum(f"{p}_f{w}").over(before(1)), F.lit(0))
                expired = F.coalesce(F.sum(f"{p}_e{w}").over(before(w + 1)), F.lit(0))
                reads.append((seen - renewed - expired).alias(f"_r{i}_{w}_distinct"))
    rolled = grid.select(*keys, "seg", F.col("g").alias("D"), *reads)
    return rolled.filter((F.col("D") > F.col("seg")) & (F.col("D") >= start_day) & (F.col("D") <= end_day))


def window_value(a: AggregateSpec, i: int, w: int, source: Input, keys: tuple[str, ...]) -> Column:
    """The value of aggregate `a` over window `w` at a snapshot row of `rolling_windows`."""
    from pyspark.sql import functions as F

    def total(suffix: str, scale: int | None) -> Column:
        # Running total before D minus running total before D - w. The later frame is empty
        # exactly when D - w - 1 < seg (the segment's first row is a tile); otherwise a NULL
        # there is an overflow, which must reach `finalize` as NULL, never as 0.
        c = f"_a{i}_{suffix}"
        end, start = F.col(f"_end{c}"), F.col(f"_start{c}_{w}")
        if scale is None:
            return F.coalesce(end, F.lit(0)) - F.coalesce(start, F.lit(0))
        exact = f"decimal(37,{scale})"
        before_window = F.when(F.col("D") - (w + 1) >= F.col("seg"), start.cast(exact)).otherwise(F.lit(0).cast(exact))
        return end.cast(exact) - before_window

    fn = a.function
    if fn in ADDITIVE:
        return finalize(a, source, total, failure(a, keys, "snapshot date ", day_date(F.col("D")).cast("string")))
    if fn in ("min", "max"):
        return F.col(f"_r{i}_{w}_{fn}")
    if fn == "last":
        latest = F.col(f"_r{i}_last")
        return F.when(latest["day"] >= F.col("D") - w, latest["v"])
    if fn in DISTINCT:
        return F.coalesce(F.col(f"_r{i}_{w}_distinct"), F.lit(0)).cast("bigint")
    raise ValueError(f"unknown aggregation function {fn!r}")


def direct_snapshots(events: DataFrame, plan: Plan, inputs: dict[int, Input], start_day: int, end_day: int) -> DataFrame:
    """Snapshot rows for a short run: each event joins the snapshot days D it is inside the
    largest window of (`D - max_window <= day < D`, clipped to the run), then one group-by
    per (keys, D) computes every window as a conditional aggregate (`D - day <= w`).

    Same rows and bytes as the grid path: additive functions add up the same exact terms
    and go through the same `finalize` (tests/test_numeric_contract.py).
    """
    from pyspark.sql import functions as F

    day = F.col("day")
    days = F.sequence(F.greatest(day + 1, F.lit(start_day)), F.least(day + plan.max_window, F.lit(end_day)))
    rows = events.select("*", F.explode(days).alias("D"))
    age = F.col("D") - day
    features = []
    for i, a in enumerate(plan.aggregates):
        v = F.col(f"_v{i}") if a.expr is not None else F.lit(1)
        for w in a.windows:
            inside = age <= w
            fn = a.function
            if fn in ADDITIVE:

                def total(suffix: str, scale: int | None, i: int = i, inside: Column = inside) -> Column:
                    t = F.when(inside, F.col(f"_t{i}_{suffix}"))
                    return F.count(t) if scale is None else F.sum(t)

                at = failure(a, plan.keys, "snapshot date ", day_date(F.col("D")).cast("string"))
                value = finalize(a, inputs[i], total, at)
            elif fn in ("min", "max"):
                value = (F.min if fn == "min" else F.max)(F.when(inside, v))
            elif fn == "last":
                value = F.max(F.when(inside & v.isNotNull(), F.struct(day.alias("day"), F.col("_ts").alias("ts"), v.alias("v"))))["v"]
            elif fn in DISTINCT:
                value = F.size(F.collect_set(F.when(inside, v))).cast("bigint")
            else:
                raise ValueError(f"unknown aggregation function {fn!r}")
            features.append(value.alias(f"{a.name}_{w}d"))
    per_date = rows.groupBy(*[F.col(f"`{k}`") for k in plan.keys], "D").agg(*features)
    return finish_snapshots(per_date, [F.col(f"`{a.name}_{w}d`") for a in plan.aggregates for w in a.windows], plan)


def snapshot_columns(rolled: DataFrame, plan: Plan, inputs: dict[int, Input]) -> DataFrame:
    """Final snapshot rows of the grid path: window reads turned into features."""
    features = [
        window_value(a, i, w, inputs[i], plan.keys).alias(f"{a.name}_{w}d")
        for i, a in enumerate(plan.aggregates)
        for w in a.windows
    ]
    return finish_snapshots(rolled, features, plan)


def finish_snapshots(rows: DataFrame, features: list[Column], plan: Plan) -> DataFrame:
    """keys, feature_date, feature_ts (from epoch day `D`), `features`, derived; plan.output order."""
    from pyspark.sql import functions as F

    out = rows.select(
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
