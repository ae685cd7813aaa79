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

import hashlib
import json
from dataclasses import dataclass, fields, is_dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal

from featurebank.definitions.expressions import infer_type, normalise_type, referenced_columns
from featurebank.definitions.loader import did_you_mean
from featurebank.aggregators import aggregator
from featurebank.definitions.model import DEFAULT_LAG_DAYS, FeatureGroup, Project, Readiness
from featurebank.definitions.validate import dependencies
from featurebank.errors import DefinitionError, UsageError
from featurebank.redact import redact

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
    lag_days: int = DEFAULT_LAG_DAYS  # snapshot D is publishable when the latest event day >= D - 1 - lag
    readiness: Readiness | None = None  # the source's readiness signal, checked before compute


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
    empty_input_allowed: bool = False  # the group declares an empty source normal (publishes nothing)
    allow_functions: tuple[str, ...] = ()  # refused functions conf allows (checked again on Spark's plan)

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

    def __str__(self) -> str:
        return render(self)


# --------------------------------------------------------------------------------------------
# Compiling: definitions + dates → Plan (pure: no Spark, no I/O)
# --------------------------------------------------------------------------------------------

UNKNOWN = "?"


def compile_plan(project: Project, group: str | FeatureGroup, start: date, end: date) -> Plan:
    """What one run of `group` over snapshot dates `start..end` (inclusive) reads, computes, checks, writes.

    `project` is a checked project from `load_project`. Aggregation groups read source events
    in `[start - max_window, end)`; row-level groups read `[start, end + 1 day)`. Raises
    `UsageError` for an unknown group name (with a "did you mean") or `end < start`.
    """
    definition = _group(project, group)
    if end < start:
        raise UsageError(f"the end date {end} is before the start date {start}; swap them")
    entity = project.entities[definition.entity]
    source = project.sources[definition.source]
    keys = entity.keys
    declared = {name: normalise_type(type_) for name, type_ in source.columns}
    aggregation = definition.kind == "aggregation"

    needed: dict[str, None] = dict.fromkeys(keys)
    if source.timestamp:
        needed.setdefault(source.timestamp, None)
    expressions = [definition.filter] if definition.filter else []
    expressions += [a.expr for a in definition.aggregations if a.expr is not None]
    expressions += [f.expr for f in definition.features]
    for text in expressions:
        needed.update(dict.fromkeys(referenced_columns(text)))

    try:
        if aggregation:
            read_start, read_end = start - timedelta(days=definition.max_window), end
        else:
            read_start, read_end = start, end + timedelta(days=1)
    except OverflowError:
        raise UsageError(f"snapshot dates {start} .. {end} with a {definition.max_window}-day window reach past the "
                         "calendar (years 1 to 9999); give dates between 1900-01-01 and 9998-12-31") from None

    time_column = source.timestamp or ""
    output: list[OutputColumn] = [OutputColumn(k, declared.get(k, UNKNOWN), "key") for k in keys]
    output += [OutputColumn("feature_date", "date", "partition"), OutputColumn("feature_ts", "timestamp", "time")]
    lineage: dict[str, tuple[str, ...]] = {k: (k,) for k in keys}
    lineage["feature_date"] = lineage["feature_ts"] = (time_column,) if time_column else ()
    for agg in definition.aggregations:
        type_ = _aggregate_type(agg.function, agg.expr, declared)
        reads = referenced_columns(agg.expr) if agg.expr else ()
        for window, name in zip(agg.windows, agg.output_names()):
            output.append(OutputColumn(name, type_, "feature", agg.description))
            lineage[name] = reads
    for feature in definition.features:
        output.append(OutputColumn(feature.name, infer_type(feature.expr, declared), "feature", feature.description))
        lineage[feature.name] = referenced_columns(feature.expr)
    for derived in definition.derived:
        known = {c.name: c.type for c in output}
        output.append(OutputColumn(derived.name, infer_type(derived.expr, known), "feature", derived.description))
        reads_from: dict[str, None] = {}
        for column in referenced_columns(derived.expr):
            reads_from.update(dict.fromkeys(lineage.get(column, ())))
        lineage[derived.name] = tuple(reads_from)

    checks = [CheckSpec(c.expectation, c.kwargs, c.severity, str(c.loc)) for c in definition.checks]
    checks += [CheckSpec("expect_column_values_to_not_be_null", (("column", k),), "error", KEY_CHECK) for k in keys]
    unique_on = (*keys, "feature_date" if aggregation else "feature_ts")
    checks.append(CheckSpec("expect_compound_columns_to_be_unique", (("column_list", unique_on),), "error", KEY_CHECK))

    return Plan(
        group=definition.name,
        kind=definition.kind,
        entity=entity.name,
        keys=keys,
        source=SourceRead(
            name=source.name,
            format=source.format,
            location=source.location,
            timestamp=source.timestamp,
            columns=tuple(needed),
            declared_types=tuple((name, declared[name]) for name in needed if name in declared),
            read_start=read_start,
            read_end_exclusive=read_end,
            options=source.options,
            lag_days=source.lag_days,
            readiness=source.readiness,
        ),
        filter=definition.filter,
        aggregates=tuple(AggregateSpec(a.name, a.function, a.expr, a.windows) for a in definition.aggregations),
        derived=tuple(ExprSpec(d.name, d.expr) for d in definition.derived),
        features=tuple(ExprSpec(f.name, f.expr) for f in definition.features),
        ttl_days=definition.ttl_days,
        start=start,
        end=end,
        timezone=project.config.timezone,
        table_path=project.table_path(definition.name),
        output=tuple(output),
        checks=tuple(checks),
        lineage=tuple((c.name, lineage.get(c.name, ())) for c in output if c.role == "feature"),
        definition_hash=definition_hash(project, definition.name),
        owner=definition.owner,
        description=definition.description,
        tags=definition.tags,
        empty_input_allowed=definition.empty_input == "allowed",
        allow_functions=project.config.allow_functions,
    )


def _group(project: Project, group: str | FeatureGroup) -> FeatureGroup:
    if isinstance(group, FeatureGroup):
        return group
    found = project.groups.get(group)
    if found is None:
        names = sorted(project.groups)
        raise UsageError(f"unknown feature group '{group}'{did_you_mean(group, names)} (groups: {', '.join(names)})")
    return found


def _aggregate_type(function: str, expr: str | None, declared: dict[str, str]) -> str:
    """The Spark SQL type an aggregate produces, as Spark 3.5 types it (its aggregator's rule)."""
    function_of = aggregator(function)
    return function_of.output_type(infer_type(expr, declared) if expr and function_of.typed_by_input else UNKNOWN)


def aggregate_result_type(function: str, value: str) -> str:
    """The published type of `function` over an input of Spark SQL type `value` ("?" if unknown).

    The one rule the plan declares and the engine computes (README "Numeric contract").
    """
    return aggregator(function).output_type(value)


# Where a definition is written (`loc`) or where its source lives in one environment
# (`location`) is not part of what it computes; nor is which source columns are PII, nor
# when a run may publish (lag, readiness, empty input).
UNHASHED_FIELDS = ("loc", "location", "pii_columns", "lag_days", "readiness", "empty_input")


def _canonical(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _canonical(getattr(value, f.name)) for f in fields(value) if f.name not in UNHASHED_FIELDS}
    if isinstance(value, (tuple, list)):
        return [_canonical(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (date, Path)):
        return str(value)
    return value


def definition_hash(project: Project, group: str) -> str:
    """First 16 hex digits of the sha256 of the group, its source and its entity, locations left out.

    Changes when what the group computes changes; it does not change when a definition moves
    to another file or line, nor between environments or checkouts where the source's
    resolved path differs (dev and prod runs of one commit carry the same hash).
    """
    definition = project.groups[group]
    document = {
        "group": _canonical(definition),
        "source": _canonical(project.sources.get(definition.source)),
        "entity": _canonical(project.entities.get(definition.entity)),
    }
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def run_order(project: Project) -> list[str]:
    """Every feature group, each after the groups whose tables its source reads (ties by name)."""
    edges = dependencies(project)
    remaining = {name: set(upstream) for name, upstream in edges.items()}
    order: list[str] = []
    while remaining:
        ready = sorted(name for name, upstream in remaining.items() if not upstream)
        if not ready:
            raise DefinitionError(f"feature groups {', '.join(sorted(remaining))} read each other in a cycle; "
                                  "run featurebank validate to see where")
        for name in ready:
            order.append(name)
            del remaining[name]
        for upstream in remaining.values():
            upstream.difference_update(ready)
    return order


# --------------------------------------------------------------------------------------------
# Rendering: what `featurebank plan` prints
# --------------------------------------------------------------------------------------------


def _table(rows: list[tuple[str, ...]], indent: str = "  ") -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))] if rows else []
    return [indent + "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]


def _arguments(kwargs: tuple[tuple[str, Any], ...]) -> str:
    def show(value: Any) -> str:
        if isinstance(value, tuple):
            if value and all(isinstance(v, tuple) and len(v) == 2 for v in value):
                return "{" + ", ".join(f"{k}: {show(v)}" for k, v in value) + "}"
            return "[" + ", ".join(show(v) for v in value) + "]"
        return str(value)

    return ", ".join(f"{k}={show(v)}" for k, v in kwargs)


def _readiness_lines(plan: Plan) -> list[str]:
    """When the source is ready, shown only where a definition says more than the defaults."""
    source, lines = plan.source, []
    if source.lag_days != DEFAULT_LAG_DAYS and source.timestamp:
        lines.append(f"  ready when: latest event day >= D - 1 - {source.lag_days} (lag {source.lag_days}d)")
    signal = source.readiness
    if signal is not None and signal.kind == "marker":
        lines.append(f"  ready when: {signal.marker} exists")
    elif signal is not None and signal.kind == "watermark":
        lines.append(f"  ready when: max({signal.watermark}) reaches the end of the snapshot's read range")
    elif signal is not None:
        bounds = f"{signal.daily_min if signal.daily_min is not None else 0} .. {signal.daily_max if signal.daily_max is not None else 'any'}"
        lines.append(f"  ready when: every event day read has {bounds} rows")
    if plan.empty_input_allowed:
        lines.append("  empty:      allowed (a read range without rows publishes no rows, not a refusal)")
    return lines


def render(plan: Plan) -> str:
    """The plan as a person reads it: source, filter, computations, output, checks, writes."""
    days = (plan.end - plan.start).days + 1
    kind = "aggregation group: one row per entity and snapshot date" if plan.kind == "aggregation" else "row-level group: one row per source row"
    lines = [f"Plan for feature group {plan.group} ({kind})"]
    lines.append(f"  snapshot dates: {plan.start} .. {plan.end} ({days} {'date' if days == 1 else 'dates'}), time zone {plan.timezone}")
    lines.append(f"  entity:         {plan.entity} (keys: {', '.join(plan.keys)})")
    if plan.owner:
        lines.append(f"  owner:          {plan.owner}")
    lines.append(f"  definition:     {plan.definition_hash}")
    source = plan.source
    lines += ["", f"Source: {source.name}", f"  format:     {source.format}", f"  location:   {source.location}"]
    lines.append(f"  columns:    {', '.join(source.columns)}")
    if source.read_start is not None and source.read_end_exclusive is not None:
        if plan.kind == "aggregation":
            why = f"({plan.max_window} days before {plan.start} up to {plan.end}, exclusive)"
        else:
            why = f"(event days {plan.start} .. {plan.end})"
        lines.append(f"  event time: {source.timestamp} in [{source.read_start}, {source.read_end_exclusive}) {why}")
    for key, value in source.options:
        lines.append(f"  option:     {key} = {value}")
    lines += _readiness_lines(plan)
    lines += ["", "Filter:", f"  {plan.filter}" if plan.filter else "  (none: every source row)"]
    if plan.kind == "aggregation":
        lines += ["", "Aggregations (events in [D - window, D) for each snapshot date D):"]
        lines += _table([(a.name, f"{a.function}({a.expr or '*'})", "over " + ", ".join(f"{w}d" for w in a.windows))
                         for a in plan.aggregates])
        lines += ["", "Derived:"]
        lines += [f"  {d.name} = {d.expr}" for d in plan.derived] or ["  (none)"]
    else:
        lines += ["", "Features:"]
        lines += [f"  {f.name} = {f.expr}" for f in plan.features]
        if plan.ttl_days is not None:
            lines.append(f"  ttl: {plan.ttl_days} days (a training set ignores rows older than that)")
    lines += ["", "Output columns:"]
    lines += _table([(c.name, c.type, c.role) for c in plan.output])
    lines += ["", "Checks:"]
    lines += _table([(c.severity, f"{c.expectation}({_arguments(c.kwargs)})", c.origin) for c in plan.checks])
    lines += ["", "Writes:", f"  table:    {plan.table_path} (Delta, partitioned by feature_date)"]
    lines.append(f"  replaces: feature_date in [{plan.start}, {plan.end}] in one commit; other dates untouched")
    return redact("\n".join(lines) + "\n")  # no ${env:...} value is printed
