"""min, max, last: functions of an orderable value, read over the window's day tiles."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from featurebank.aggregators.base import EVENT_DAY, EVENT_TS, SNAPSHOT_DAY, Aggregator, Fail, Read, Slot

if TYPE_CHECKING:
    from pyspark.sql import Column


class Extreme(Aggregator):
    """min or max: the day's extreme is the tile; the window's is the extreme of its w tiles."""

    accepts = "ordered"

    def pick(self) -> Callable[[Column], Column]:
        """The Spark aggregate of the same name (`F.min` or `F.max`), over a group or a frame."""
        from pyspark.sql import functions as F

        pick: Callable[[Column], Column] = getattr(F, self.name)
        return pick

    def update(self, slot: Slot, fail: Fail) -> list[Column]:
        return [self.pick()(slot.value()).alias(slot.column(self.name))]

    def reads(self, slot: Slot) -> list[Read]:
        op = "largest" if self.name == "max" else "smallest"
        return [Read(slot.column(f"read_{w}"), op, (slot.column(self.name),), w) for w in slot.windows]

    def finalize(self, slot: Slot, window: int, fail: Fail) -> Column:
        from pyspark.sql import functions as F

        return F.col(slot.column(f"read_{window}"))

    def direct(self, slot: Slot, window: int, inside: Column, fail: Fail) -> Column:
        from pyspark.sql import functions as F

        return self.pick()(F.when(inside, slot.value()))


class Min(Extreme):
    name = "min"
    words = "smallest value of {x}"


class Max(Extreme):
    name = "max"
    words = "largest value of {x}"


class Last(Aggregator):
    """The latest non-NULL value: the greatest `struct(day, ts, value)` (SPEC's tie rule: later
    time, then greater value). The kernel reads the latest tile struct before D and the window
    keeps it when its day is inside the window."""

    name = "last"
    accepts = "ordered"
    words = "latest non-NULL value of {x} (ties on time go to the greatest value)"

    @staticmethod
    def _latest(value: Column, when: Column) -> Column:
        from pyspark.sql import functions as F

        stamped = F.struct(F.col(EVENT_DAY).alias("day"), F.col(EVENT_TS).alias("ts"), value.alias("v"))
        return F.max(F.when(when, stamped))

    def update(self, slot: Slot, fail: Fail) -> list[Column]:
        v = slot.value()
        return [self._latest(v, v.isNotNull()).alias(slot.column("last"))]

    def reads(self, slot: Slot) -> list[Read]:
        return [Read(slot.column("read_last"), "latest", (slot.column("last"),))]

    def finalize(self, slot: Slot, window: int, fail: Fail) -> Column:
        from pyspark.sql import functions as F

        latest = F.col(slot.column("read_last"))
        return F.when(latest["day"] >= F.col(SNAPSHOT_DAY) - window, latest["v"])

    def direct(self, slot: Slot, window: int, inside: Column, fail: Fail) -> Column:
        v = slot.value()
        return self._latest(v, inside & v.isNotNull())["v"]
