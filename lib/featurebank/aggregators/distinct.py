"""count_distinct, approx_count_distinct: distinct non-NULL values, counted exactly.

approx_count_distinct is computed exactly too (the exact count is within any error bound), so
both paths of engine/aggregate.py give the same value for both functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from featurebank.aggregators.base import EVENT_DAY, Aggregator, Fail, Read, Slot

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame


class CountDistinct(Aggregator):
    """The day's set of values is the tile; occurrence counts make the window count a difference
    of prefix sums over the tiles (see `annotate`)."""

    name = "count_distinct"
    empty = 0
    typed_by_input = False
    words = "exact number of distinct non-NULL values of {x}"

    def output_type(self, input_type: str) -> str:
        return "bigint"

    def update(self, slot: Slot, fail: Fail) -> list[Column]:
        from pyspark.sql import functions as F

        return [F.collect_set(slot.value()).alias(slot.column("set"))]

    def annotate(self, slot: Slot, tiles: DataFrame) -> DataFrame | None:
        """`tiles` with the tile's occurrence counts per window w added (0 without values); the
        day's set itself is dropped (nothing later reads it).

        With `prev`/`next` the previous/next day the same value occurs (per entity), a value
        seen on day o counts for snapshots `o + 1 .. min(next, o + w)`, so the distinct count
        at D is `P(D-1) - F_w(D-1) - E_w(D-w-1)` over running totals of these per-tile
        counts: `p` values on the day, `f{w}` values whose previous occurrence is at most w
        days back (they stop counting the old occurrence today), `e{w}` values that do not
        occur again within w days (they stop counting w days later). One row per (tile,
        value) (`explode_outer`: a tile without values keeps one row), then back to one row
        per tile, all within the entity's partition.
        """
        from pyspark.sql import Window
        from pyspark.sql import functions as F

        keys = list(slot.keys)
        kept = [c for c in tiles.columns if c != slot.column("set")]
        occ = tiles.select(*[F.col(f"`{c}`") for c in kept], F.explode_outer(slot.column("set")).alias("_val"))
        by_value = Window.partitionBy(*keys, "_val").orderBy(EVENT_DAY)
        day, val = F.col(EVENT_DAY), F.col("_val")
        prev, nxt = F.lag(EVENT_DAY).over(by_value), F.lead(EVENT_DAY).over(by_value)
        occ = occ.select("*", F.when(val.isNotNull(), day - prev).alias("_back"),
                         F.when(val.isNotNull(), F.coalesce(nxt - day, F.lit(-1))).alias("_ahead"))
        ahead = F.col("_ahead")
        parts = [F.count(val).alias(slot.column("p"))]
        for w in slot.windows:
            parts.append(F.count(F.when(F.col("_back") <= w, 1)).alias(slot.column(f"f{w}")))
            parts.append(F.count(F.when((ahead == -1) | (ahead > w), 1)).alias(slot.column(f"e{w}")))
        same = [F.first(f"`{c}`").alias(c) for c in kept if c not in (*keys, EVENT_DAY)]  # one value per tile
        return occ.groupBy(*keys, EVENT_DAY).agg(*same, *parts)

    def reads(self, slot: Slot) -> list[Read]:
        occurrences = [(slot.column("p"), slot.column(f"f{w}"), slot.column(f"e{w}")) for w in slot.windows]
        return [Read(slot.column(f"distinct_{w}"), "distinct", tiles, w) for w, tiles in zip(slot.windows, occurrences)]

    def finalize(self, slot: Slot, window: int, fail: Fail) -> Column:
        from pyspark.sql import functions as F

        return F.coalesce(F.col(slot.column(f"distinct_{window}")), F.lit(0)).cast("bigint")

    def direct(self, slot: Slot, window: int, inside: Column, fail: Fail) -> Column:
        from pyspark.sql import functions as F

        return F.size(F.collect_set(F.when(inside, slot.value()))).cast("bigint")

    def direct_apart(self, slot: Slot, rows: DataFrame, by: list[str], age: Column) -> DataFrame | None:
        """A value is in window w at D when its latest event before D is at most w days old: one
        row per (by, value) with that age, then a count per window. Two hash aggregations instead
        of `collect_set` in the one group-by, an object aggregation that sorts every event once
        a task holds over 128 entities (notes/20-daily.md)."""
        from pyspark.sql import functions as F

        columns = [F.col(f"`{c}`") for c in by]
        latest = rows.where(slot.value().isNotNull()).groupBy(*columns, slot.value().alias("_value")).agg(
            F.min(age).alias("_age"))
        return latest.groupBy(*columns).agg(*[
            F.count(F.when(F.col("_age") <= w, 1)).alias(slot.column(f"direct_{w}")) for w in slot.windows])


class ApproxCountDistinct(CountDistinct):
    name = "approx_count_distinct"
    words = "approximate number of distinct non-NULL values of {x} (within 5% relative error)"
