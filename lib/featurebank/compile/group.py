"""The compiled group: what a feature group reads, computes, checks and writes, for any dates.

`compile_group(project, group)` turns checked definitions into one plain frozen value (pure
Python: no Spark, no I/O): the output columns and their types, the lineage, the aggregates,
derived and row-level features, the checks, the source's identity and declared types, the
time zone and the table path, owner/description/tags, and two hashes:

- `data_hash` changes exactly when a published value could change: the normalised SQL
  (sqlglot, Spark dialect: whitespace, comments and keyword case do not count) of the filter
  and of every expression, the functions and windows, the output names, the entity keys, the
  source's identity (name, format, options, timestamp column, the group whose table it
  reads) and the declared types of the columns read, the ttl, the project time zone and
  `ENGINE_VERSION`. Conf variables are resolved into the expressions and options before
  hashing, so a variable reaches the hash exactly where it reaches the computation. Where an
  environment keeps the source (its resolved location) is not part of it: dev and prod runs
  of one commit, and two checkouts of one repository, carry the same hashes.
- `metadata_hash` covers what describes or governs the values without changing one:
  descriptions, owners, tags, PII declarations, the checks (they decide whether a batch is
  published, not what it holds) and when a run may publish (lag, readiness, empty input).

Neither changes when a definition moves to another file or line. The catalog, governance
and training sets read the compiled group; a run plan (`compile.run.Plan`) is a compiled
group plus snapshot dates and the source's read range.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from featurebank.definitions.expressions import (
    ExpressionError,
    infer_type,
    normalise_type,
    parse_expression,
    referenced_columns,
)
from featurebank.definitions.loader import did_you_mean
from featurebank.aggregators import UNKNOWN_TYPE, aggregator
from featurebank.definitions.model import DEFAULT_LAG_DAYS, FeatureGroup, Project, Readiness
from featurebank.errors import UsageError

KEY_CHECK = "always"  # CheckSpec.origin of the checks featurebank always adds

# The version of the engine's arithmetic, part of every `data_hash`. Bump it in the same
# commit as any change to how the engine computes a value (a window bound, a merge, a type,
# NULL or empty-window handling, the day cut): every group's data_hash then changes, so
# `featurebank plan` reports a data change and `run --missing` sees the published values as
# stale. Refactors that keep every value bit-for-bit leave it alone.
ENGINE_VERSION = 1


@dataclass(frozen=True)
class SourceRead:
    """Which source, which columns, over which event-time range (None: not bound to dates yet)."""

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


@dataclass(frozen=True, kw_only=True)
class CompiledGroup:
    """One feature group as it computes, for any snapshot dates (see the module docstring)."""

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
    timezone: str
    table_path: str
    output: tuple[OutputColumn, ...]
    checks: tuple[CheckSpec, ...]
    lineage: tuple[tuple[str, tuple[str, ...]], ...]  # feature -> source columns it reads
    data_hash: str
    metadata_hash: str
    feature_hashes: tuple[tuple[str, str], ...] = ()  # (feature, hash of what its values depend on)
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


# --------------------------------------------------------------------------------------------
# Compiling: definitions → CompiledGroup (pure: no Spark, no I/O)
# --------------------------------------------------------------------------------------------

UNKNOWN = UNKNOWN_TYPE


def compile_group(project: Project, group: str | FeatureGroup) -> CompiledGroup:
    """What `group` reads, computes, checks and writes, whatever the dates.

    `project` is a checked project from `load_project`; `group` a name or the definition
    itself. The source's read range is left unset (None): `compile.run.compile_plan` binds it
    to dates. Raises `UsageError` for an unknown group name (with a "did you mean").
    """
    definition = _group(project, group)
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

    read = SourceRead(
        name=source.name,
        format=source.format,
        location=source.location,
        timestamp=source.timestamp,
        columns=tuple(needed),
        declared_types=tuple((name, declared[name]) for name in needed if name in declared),
        read_start=None,
        read_end_exclusive=None,
        options=source.options,
        lag_days=source.lag_days,
        readiness=source.readiness,
    )
    aggregates = tuple(AggregateSpec(a.name, a.function, a.expr, a.windows) for a in definition.aggregations)
    derived_specs = tuple(ExprSpec(d.name, d.expr) for d in definition.derived)
    feature_specs = tuple(ExprSpec(f.name, f.expr) for f in definition.features)
    shared = {  # what every value of the group depends on (the rest is per feature)
        "engine_version": ENGINE_VERSION,
        "kind": definition.kind,
        "keys": keys,
        "timezone": project.config.timezone,
        "source": {"name": source.name, "format": read.format, "options": read.options, "group": source.group,
                   "timestamp": read.timestamp, "declared_types": read.declared_types},
        "filter": normalised_sql(definition.filter),
        "ttl_days": definition.ttl_days,
    }
    return CompiledGroup(
        group=definition.name,
        kind=definition.kind,
        entity=entity.name,
        keys=keys,
        source=read,
        filter=definition.filter,
        aggregates=aggregates,
        derived=derived_specs,
        features=feature_specs,
        ttl_days=definition.ttl_days,
        timezone=project.config.timezone,
        table_path=project.table_path(definition.name),
        output=tuple(output),
        checks=tuple(checks),
        lineage=tuple((c.name, lineage.get(c.name, ())) for c in output if c.role == "feature"),
        data_hash=_digest({**shared, **{
            "aggregates": [(a.name, a.function, normalised_sql(a.expr), a.windows) for a in aggregates],
            "features": [(f.name, normalised_sql(f.expr)) for f in feature_specs],
            "derived": [(d.name, normalised_sql(d.expr)) for d in derived_specs],
        }}),
        feature_hashes=_feature_hashes(shared, aggregates, feature_specs, derived_specs),
        metadata_hash=_metadata_hash(project, definition),
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



# --------------------------------------------------------------------------------------------
# Hashing
# --------------------------------------------------------------------------------------------


def normalised_sql(text: str | None) -> str | None:
    """`text` as sqlglot writes it back in the Spark dialect, comments dropped: two spellings
    Spark evaluates alike (spacing, line breaks, keyword case, comments) give one string."""
    if text is None:
        return None
    try:
        return parse_expression(text).sql(dialect="spark", comments=False)
    except ExpressionError:  # validate refuses it; hash what was written rather than fail here
        return " ".join(text.split())


def _feature_hashes(shared: dict[str, Any], aggregates: tuple[AggregateSpec, ...], features: tuple[ExprSpec, ...],
                    derived: tuple[ExprSpec, ...]) -> tuple[tuple[str, str], ...]:
    """Per output feature, the hash of what its values depend on: what the whole group shares
    (source, filter, keys, time zone, ttl, engine version), and its own function, expression and
    window — a derived feature, its expression and the hashes of the features it reads. Two
    definitions whose hashes agree on a feature compute the same values for it, so `plan` can
    tell an added feature (the others keep their values) from a changed one."""
    hashes: dict[str, str] = {}
    base = _digest(shared)
    for a in aggregates:
        for window, name in zip(a.windows, a.output_names()):
            hashes[name] = _digest([base, a.function, normalised_sql(a.expr), window])
    for f in features:
        hashes[f.name] = _digest([base, normalised_sql(f.expr)])
    for d in derived:  # in order: a derived feature may read an earlier one
        reads = sorted((column, hashes[column]) for column in referenced_columns(d.expr) if column in hashes)
        hashes[d.name] = _digest([base, normalised_sql(d.expr), reads])
    return tuple(hashes.items())


def _digest(document: Any) -> str:
    """First 16 hex digits of the sha256 of `document` as canonical JSON."""
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _metadata_hash(project: Project, definition: FeatureGroup) -> str:
    """The hash of what describes, governs or gates the group (see the module docstring)."""
    source = project.sources[definition.source]
    entity = project.entities[definition.entity]
    documented: list[tuple[str, str, Any, str | None]] = [
        (a.name, a.description, a.tags, None) for a in definition.aggregations]
    documented += [(f.name, f.description, f.tags, f.declassified) for f in (*definition.features, *definition.derived)]
    signal = source.readiness  # the marker's path is where this environment keeps it, like a location
    readiness = None if signal is None else (signal.kind, signal.daily_min, signal.daily_max, signal.watermark)
    return _digest({
        "group": (definition.description, definition.owner, definition.tags),
        "features": documented,
        "source": (source.description, source.pii_columns, source.lag_days, readiness),
        "entity": entity.description,
        "checks": [(c.expectation, c.kwargs, c.severity) for c in definition.checks],
        "empty_input": definition.empty_input,
    })
