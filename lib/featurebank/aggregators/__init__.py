"""The aggregation functions: one class per function, and the registry everything else asks.

Every aggregation function (`function:` in a feature group) is one `Aggregator` subclass
that owns everything about it, in the style of Chronon's `SimpleAggregators`:

- which input types it accepts (`input_problem`; `validate` and the engine's pre-compute
  check both ask it), its output type (`output_type`: what `plan` declares and the table
  gets), its empty-window value (`empty`: 0 for the count family, else NULL) and the
  sentence the catalog prints (`sentence`, `empty_sentence`);
- how Spark computes it, one method per phase (`prepare` per event, `update` per day tile,
  `annotate`, `reads` what the window kernel computes over a window's tiles, `finalize` the
  window value, `direct` for short runs; `base.Aggregator` documents the contract). The
  windowing code, engine/aggregate.py and engine/kernel.py, is generic over these phases and
  names no function.

`aggregator(name)` returns the one instance of a function; `AGGREGATION_FUNCTIONS` is the
tuple of names, in the order definitions list them. Rank 0: nothing from featurebank is
imported, and pyspark only inside the phase methods, so definitions and compile read types
and sentences without a JVM.

Families: additive.py (count, sum, avg, stddev: the exact numeric contract, window = exact
sum of its day totals), ordered.py (min, max, last),
distinct.py (count_distinct, approx_count_distinct).

To add a function, say `median`:
1. Write `class Median(Aggregator)` (a new module, or ordered.py): `name = "median"`,
   `accepts = "number"`, `words = "median of {x}"`, `output_type` ("double"), and the
   phases: `update` a day tile (e.g. `F.collect_list(slot.value())`), `reads` the window's
   tiles (a new `Read` op, computed in engine/kernel.py's `Block.read`), `finalize` the
   median of what it read, `direct` the same over `F.when(inside, slot.value())`. Name every
   column with `slot.column(...)`.
2. Add it to `_FUNCTIONS` below. Definitions, `plan`, the catalog and the engine pick it up.
3. Add its plain-Python case to aggregators/reference.py (`CASES["median"]`: the window's
   value from its (time, value) pairs; `featurebank explain` and the test oracle both use it)
   and an aggregation using it to test_aggregate.py's `AGGREGATES`; tests/test_aggregate.py
   fails until both exist.
4. If its value must be bit-identical across run shapes (an exact decimal), add it to
   tests/test_numeric_contract.py too.
"""

from __future__ import annotations

from featurebank.aggregators.additive import Avg, Count, Stddev, Sum
from featurebank.aggregators.base import (
    FLOATING_TYPES, INTEGRAL_TYPES, SNAPSHOT_DAY, UNKNOWN_TYPE, EVENT_DAY, EVENT_TS,
    Aggregator, Fail, Input, Read, Slot, failure, value_column,
)
from featurebank.aggregators.distinct import ApproxCountDistinct, CountDistinct
from featurebank.aggregators.ordered import Last, Max, Min

_FUNCTIONS: tuple[Aggregator, ...] = (
    Count(), Sum(), Avg(), Min(), Max(), Stddev(), CountDistinct(), ApproxCountDistinct(), Last(),
)
_BY_NAME = {a.name: a for a in _FUNCTIONS}
AGGREGATION_FUNCTIONS: tuple[str, ...] = tuple(_BY_NAME)


def aggregator(name: str) -> Aggregator:
    """The aggregator of function `name`; raises ValueError for a name definitions would refuse."""
    found = _BY_NAME.get(name)
    if found is None:
        raise ValueError(f"unknown aggregation function '{name}' (one of: {', '.join(AGGREGATION_FUNCTIONS)}); "
                         "featurebank validate reports where it is used")
    return found


__all__ = [
    "AGGREGATION_FUNCTIONS", "EVENT_DAY", "EVENT_TS", "FLOATING_TYPES", "INTEGRAL_TYPES", "SNAPSHOT_DAY",
    "UNKNOWN_TYPE", "Aggregator", "Fail", "Input", "Read", "Slot", "aggregator", "failure", "value_column",
]
