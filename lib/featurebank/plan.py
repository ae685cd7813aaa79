"""The plan: what one run of one feature group will read, compute, check and write.

A plan is a plain frozen value, built from definitions by `compile_plan` (pure Python: no
Spark, no I/O) and the only input the Spark executor, the gate and the publish need.
`str(plan)` is exactly what `featurebank plan` prints.

Time is half-open everywhere: a run covers snapshot dates `start..end` (both inclusive, as
users type them), and reads source events with `read_start <= ts < read_end_exclusive`,
where `read_start = start - max_window` and `read_end_exclusive = end` (an aggregation
snapshot for D never sees D itself). Row-level groups read `[start, end + 1 day)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

KEY_CHECK = "always"  # CheckSpec.origin of the checks featurebank always adds


@dataclass(frozen=True)
class SourceRead:
    """Which source, which columns, over which event-time range."""

    name: str
    format: str  # parquet | delta | csv | table
    location: str  # resolved path, or db.table for format `table`
    timestamp: str | None
    columns: tuple[str, ...]  # columns the run needs (keys, timestamp, expression inputs)
    declared_types: tuple[tuple[str, str], ...]  # (column, Spark SQL type) checked before compute
    read_start: date | None  # first event day read (inclusive), in the project time zone
    read_end_exclusive: date | None  # first event day not read
    options: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class AggregateSpec:
    """One aggregation: `function(expr)` over each window in days."""

    name: str
    function: str  # one of definitions.model.AGGREGATION_FUNCTIONS
    expr: str | None  # Spark SQL over source columns; None = count rows
    windows: tuple[int, ...]

    def output_names(self) -> tuple[str, ...]:
        return tuple(f"{self.name}_{w}d" for w in self.windows)


@dataclass(frozen=True)
class ExprSpec:
    """A named Spark SQL expression: a row-level feature or a derived feature."""

    name: str
    expr: str


@dataclass(frozen=True)
class CheckSpec:
    """One expectation the batch must meet before it is published."""

    expectation: str  # GX snake_case name, e.g. expect_column_values_to_not_be_null
    kwargs: tuple[tuple[str, Any], ...]
    severity: Literal["error", "warn"]
    origin: str  # "definition" (file:line) or KEY_CHECK for always-on key checks

    @property
    def arguments(self) -> dict[str, Any]:
        return dict(self.kwargs)


@dataclass(frozen=True)
class OutputColumn:
    name: str
    type: str  # Spark SQL type name as far as it can be known without Spark ("?" if not)
    role: Literal["key", "partition", "time", "feature"]
    description: str = ""


@dataclass(frozen=True)
class Plan:
    """One run of one group over snapshot dates `start..end` (inclusive)."""

    group: str
    kind: Literal["aggregation", "row"]
    entity: str
    keys: tuple[str, ...]
    source: SourceRead
    filter: str | None
    aggregates: tuple[AggregateSpec, ...]
    derived: tuple[ExprSpec, ...]
    features: tuple[ExprSpec, ...]  # row-level groups only
    ttl_days: int | None
    start: date
    end: date
    timezone: str
    table_path: str
    output: tuple[OutputColumn, ...]
    checks: tuple[CheckSpec, ...]
    lineage: tuple[tuple[str, tuple[str, ...]], ...]  # feature -> source columns it reads
    definition_hash: str
    owner: str = ""
    description: str = ""
    tags: tuple[tuple[str, Any], ...] = ()

    @property
    def max_window(self) -> int:
        return max((w for a in self.aggregates for w in a.windows), default=0)

    @property
    def feature_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.output if c.role == "feature")

    @property
    def replaced_dates(self) -> tuple[date, date]:
        """The `feature_date` range (inclusive) the publish replaces."""
        return (self.start, self.end)
