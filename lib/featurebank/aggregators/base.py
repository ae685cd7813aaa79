"""The `Aggregator` contract every aggregation function implements, and what its phases read.

Pure Python at import (no pyspark, nothing from featurebank but errors): definitions and
compile ask an aggregator for input checks, output types and sentences without Spark; the
phase methods import pyspark when the engine calls them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, ClassVar

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame
    from pyspark.sql.types import DataType

UNKNOWN_TYPE = "?"  # a type compile cannot infer; the engine sees the real one
INTEGRAL_TYPES = ("tinyint", "smallint", "int", "bigint")
FLOATING_TYPES = ("float", "double")
_NUMBER = r"tinyint|smallint|int|bigint|float|double|decimal(\(\d+,\d+\))?"
FLOAT_SCALE = 18  # fractional digits a floating-point input keeps (CAST AS DECIMAL(38,18))
TOTAL_PRECISION = 37  # exact totals are decimal(37, s): |total| < 10^(37-s)

# Columns the windowing code (engine/aggregate.py) makes and aggregators read; one
# definition for both sides.
EVENT_DAY = "day"  # events and tiles: the local epoch day (featurebank.days) of the event / tile
EVENT_TS = "_ts"  # events: the event time, an instant
SNAPSHOT_DAY = "D"  # snapshot and short-run rows: the snapshot's epoch day

Fail = Callable[[str], "Column"]  # fail(cause): a Column that fails the run naming where


def decimal_of(type_text: str) -> tuple[int, int] | None:
    """(precision, scale) of a Spark `decimal(p,s)` type name, else None."""
    found = re.fullmatch(r"decimal\((\d+),(\d+)\)", type_text)
    return (int(found.group(1)), int(found.group(2))) if found else None


@dataclass(frozen=True)
class Input:
    """What the numeric contract needs to know of an aggregation's input column."""

    type: str  # Spark SQL type, e.g. "double", "bigint", "decimal(12,2)"

    @property
    def decimal(self) -> tuple[int, int] | None:
        return decimal_of(self.type)

    @property
    def scale(self) -> int:
        """Fractional digits of the exact sum: 0 for integers, the input's own for decimals, else 18."""
        decimal = self.decimal
        if self.type in INTEGRAL_TYPES:
            return 0
        return min(decimal[1], TOTAL_PRECISION) if decimal else FLOAT_SCALE


def value_column(index: int) -> str:
    """The events' column holding aggregation `index`'s input value (its `expr`)."""
    return f"_v{index}"


@dataclass(frozen=True)
class Slot:
    """One aggregation of a group as the windowing code runs it: position, names, windows, input.

    `column(part)` names every column the aggregator adds to a frame (events, tiles,
    snapshot rows); names are unique per slot, so aggregators never collide, and only the
    aggregator that makes a column reads it. `shared_column(part)` names a column that is a
    function of the input expression and `part` alone (exact terms, their day totals and
    window totals), so aggregations of the same expression (sum and avg of `amount`) share it:
    the windowing code keeps the first column of each name (`unique_columns`).
    """

    index: int
    name: str  # the aggregation's name (its features are name_{w}d)
    aggregator: Aggregator
    has_input: bool  # False: count rows (no expr)
    windows: tuple[int, ...]
    keys: tuple[str, ...]  # the group's entity keys (named in failures)
    input: Input  # the input's Spark type, as the source makes it
    # index of the group's first aggregation with the same input expression (itself if none):
    # columns named with `shared_column` are one value for all of them, computed once
    shares: int = -1

    def column(self, part: str) -> str:
        return f"_a{self.index}_{part}"

    def shared_column(self, part: str) -> str:
        """A column that depends only on the input expression and `part`: aggregations of the
        same expression name it alike, and the windowing code keeps one column per name."""
        return f"_a{self.index if self.shares < 0 else self.shares}_{part}"

    def value(self) -> Column:
        """The input value per event (1 when the aggregation counts rows)."""
        from pyspark.sql import functions as F

        return F.col(value_column(self.index)) if self.has_input else F.lit(1)


READ_OPS = ("count", "total", "double", "largest", "smallest", "latest", "distinct")


@dataclass(frozen=True)
class Read:
    """One value the backfill's window kernel (engine/kernel.py) computes per snapshot row for
    an aggregation, from tile columns, over the window `[D - window, D)`:

    - "count": the sum of a BIGINT tile column (BIGINT);
    - "total": the exact sum of a decimal tile column, as `decimal(37, scale)`, NULL when it
      does not fit; "double": that sum rounded once to the nearest DOUBLE, as Spark's cast of
      the decimal rounds it (NULL when it does not fit);
    - "largest" / "smallest": the greatest / least non-NULL tile value (the tile's type), NULL
      when there is none;
    - "latest": the entity's latest non-NULL tile before D, any day (the tile's type; `window`
      unused);
    - "distinct": distinct values from the tiles' occurrence counts `tiles = (p, f, e)`
      (CountDistinct.annotate), BIGINT.

    Reads are data (picklable, no Spark) because the kernel runs in Python workers.
    """

    name: str  # the snapshot row's column; finalize reads it
    op: str  # one of READ_OPS
    tiles: tuple[str, ...]  # the tile columns it reads
    window: int = 0
    scale: int = 0  # "total": fractional digits of the decimal

    def spark_type(self, tile_types: dict[str, DataType]) -> DataType:
        """The read's Spark type, given the tile columns' types."""
        from pyspark.sql.types import DecimalType, DoubleType, LongType

        if self.op in ("count", "distinct"):
            return LongType()
        if self.op == "double":
            return DoubleType()
        if self.op == "total":
            return DecimalType(TOTAL_PRECISION, self.scale)
        return tile_types[self.tiles[0]]


class Aggregator:
    """One aggregation function: what it accepts, yields and means, and how Spark computes it.

    Pure attributes and methods (no Spark):
    - `name`: the function's name in definitions (`function: sum`);
    - `empty`: the window value when the window has no value (0 for the count family, else
      None = NULL); `input_problem(type)`, `output_type(type)`, `sentence(expr, source)`.

    Phases (each returns Columns or a DataFrame; each is one stage of engine/aggregate.py,
    whose docstring shows the flow). The tile columns a phase makes are named with
    `slot.column(...)` and read only by this aggregator's later phases:
    1. `prepare(slot, fail)`: per-event columns, next to the input `slot.value()` (default none).
    2. `update(slot, fail)`: aggregate expressions of one day's events: the day tile.
    3. `annotate(slot, tiles)`: optional: `tiles` (one row per (keys, day), partitioned by
       the keys) with columns added that depend on the entity's other tiles (distinct counts);
       the same rows, and no join or shuffle (windows and groups within the entity only).
    4. `reads(slot)`: what the window kernel (engine/kernel.py) computes per snapshot row
       from the tiles (`Read`: window counts, exact totals, extremes, the latest tile).
    5. `finalize(slot, window, fail)`: the published value over `window` days at a snapshot
       row, from the reads, with the empty-window value when the window has no value.
    6. `direct(slot, window, inside, fail)`: short runs: the same value as one aggregate
       expression over the events of a snapshot day's rows where `inside` holds.
    The oracle and numeric-contract tests judge both paths against each other and Python.
    """

    name: ClassVar[str]
    empty: ClassVar[int | None] = None
    accepts: ClassVar[str] = "any"  # "any", "number" or "ordered"
    typed_by_input: ClassVar[bool] = True  # False: output_type ignores the input's type
    words: ClassVar[str] = ""  # what it computes, as the start of a sentence ({x} = the expression)

    # -- definitions and compile (pure) -------------------------------------------------------
    def input_problem(self, type_text: str) -> str | None:
        """Why this function cannot take a value of Spark type `type_text`, or None if it can.

        A number for "number" functions; a value Spark can order (no map, at any depth) for
        "ordered" ones; anything for "any". An unknown type ("?") passes: the runtime check
        sees the real one.
        """
        if type_text == UNKNOWN_TYPE:
            return None
        text = type_text.lower().replace(" ", "")
        if self.accepts == "number" and not re.fullmatch(_NUMBER, text):
            return f"{self.name} needs a number (tinyint, smallint, int, bigint, float, double or decimal); " \
                   f"cast it in the expr (e.g. cast(x as double)) or use another function"
        if self.accepts == "ordered" and "map<" in text:
            return f"{self.name} needs a value Spark can order, and a map cannot be ordered; take a field of it in the expr"
        return None

    def output_type(self, input_type: str) -> str:
        """The published Spark type over an input of type `input_type` ("?" if unknown).

        The one rule the plan declares and the engine computes (README "Numeric contract").
        Default: the input's own type.
        """
        return input_type

    def sentence(self, expr: str | None, source: str) -> str:
        """What one window's value is, as the start of the catalog's sentence (lowercase)."""
        return self.words.format(x=expr or "*") + f" over {source} events"

    @property
    def empty_sentence(self) -> str:
        """The catalog's words for the empty-window value."""
        return f"{'NULL' if self.empty is None else self.empty} when there is none"

    # -- Spark phases (engine/aggregate.py) ----------------------------------------------------
    def prepare(self, slot: Slot, fail: Fail) -> list[Column]:
        return []

    def update(self, slot: Slot, fail: Fail) -> list[Column]:
        raise NotImplementedError(self.name)

    def annotate(self, slot: Slot, tiles: DataFrame) -> DataFrame | None:
        return None

    def reads(self, slot: Slot) -> list[Read]:
        raise NotImplementedError(self.name)

    def finalize(self, slot: Slot, window: int, fail: Fail) -> Column:
        raise NotImplementedError(self.name)

    def direct(self, slot: Slot, window: int, inside: Column, fail: Fail) -> Column:
        raise NotImplementedError(self.name)

    def direct_apart(self, slot: Slot, rows: DataFrame, by: list[str], age: Column) -> DataFrame | None:
        """Optional, direct path: the slot's windows computed apart from the other aggregations,
        as a frame of `by` (keys, snapshot day) and one column per window named
        `slot.column(f"direct_{w}")`, NULL where `rows` gives the pair no row (read as `empty`);
        `rows` are the events joined to their snapshot days, `age` = days before D. None (default):
        the windows are conditional aggregates of the one group-by [direct]."""
        return None


def failure(slot: Slot, where: str, at: Column) -> Fail:
    """`fail(cause)`: a Column that fails the run naming the feature, the keys and `where`+`at`."""
    from pyspark.sql import functions as F

    def fail(cause: str) -> Column:
        named = [F.concat(F.lit(f"{k}="), F.coalesce(F.col(f"`{k}`").cast("string"), F.lit("NULL"))) for k in slot.keys]
        return F.raise_error(
            F.concat(
                F.lit(f"aggregation '{slot.name}' ({slot.aggregator.name}) cannot be computed exactly: {cause}, for "),
                F.concat_ws(", ", *named), F.lit(f", {where}"), at,
                F.lit(" (README 'Numeric contract'). Filter such values out in the group's filter, or scale the expression."),
            )
        )

    return fail
