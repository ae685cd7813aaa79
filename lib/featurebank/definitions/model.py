"""Typed, frozen definitions: what `features/**/*.yaml` says, nothing more (conf: `config.Config`).

Every object carries `loc`, the file and line it came from, so any later stage can point the
user at the exact place to fix. Mappings are stored as tuples of pairs so objects stay
hashable and comparable; use `dict(obj.tags)` to read them. Nothing here knows about Spark.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # the typed conf (definitions/config.py) builds on Location, defined here
    from featurebank.definitions.config import Config

from featurebank.aggregators import AGGREGATION_FUNCTIONS, aggregator

# The count family: 0 over an empty window (filled for missing entities in training sets too).
COUNT_FUNCTIONS = tuple(name for name in AGGREGATION_FUNCTIONS if aggregator(name).empty == 0)
SOURCE_FORMATS = ("parquet", "delta", "csv", "table")
MIN_WINDOW_DAYS = 1
MAX_WINDOW_DAYS = 730
DEFAULT_LAG_DAYS = 1  # a source's data for day X is complete by the end of day X + 1
EMPTY_INPUT = ("refused", "allowed")

Pairs = tuple[tuple[str, Any], ...]


@dataclass(frozen=True, order=True)
class Location:
    """Where a definition (or one of its keys) was written."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


NOWHERE = Location("<generated>", 0)


@dataclass(frozen=True)
class Entity:
    """A thing features describe, identified by its key columns (e.g. customer_id)."""

    name: str
    keys: tuple[str, ...]
    description: str = ""
    loc: Location = NOWHERE


@dataclass(frozen=True)
class Readiness:
    """A source's readiness signal: exactly one of a marker file, a daily row-count range or a
    watermark column (`readiness: {marker: _SUCCESS}` / `{daily_rows: {min: 1000}}` /
    `{watermark: loaded_until}` in YAML).

    `marker` is a resolved path or URI that must exist. `daily_min`/`daily_max` bound the rows
    of every event day the run reads (either may be None: unbounded). `watermark` names a
    timestamp column whose largest value is the instant up to which the source is complete.
    """

    marker: str | None = None
    daily_min: int | None = None
    daily_max: int | None = None
    watermark: str | None = None
    loc: Location = NOWHERE

    @property
    def kind(self) -> Literal["marker", "daily_rows", "watermark"]:
        if self.marker is not None:
            return "marker"
        return "watermark" if self.watermark is not None else "daily_rows"


@dataclass(frozen=True)
class Source:
    """Raw events or rows a feature group reads.

    `location` is the resolved path (or `db.table` for format `table`). `timestamp` is the
    event-time column; `columns` the declared (name, Spark SQL type) pairs, checked against
    the real data before compute. `group` names the feature group whose published table this
    source reads (then `format` is delta and `location` that table's path): a dependency edge.
    `pii_columns` (`pii_columns: [income, birth_year]` in YAML) are the columns holding personal
    data: every feature computed from one of them is PII unless it is declassified with a reason.
    `lag_days` and `readiness` say when the source's data for a day is complete (SPEC, "What a
    run may publish"); they decide when a run may publish, not what it computes.
    """

    name: str
    format: str
    location: str
    timestamp: str | None = None
    columns: tuple[tuple[str, str], ...] = ()
    options: Pairs = ()
    description: str = ""
    loc: Location = NOWHERE
    group: str | None = None
    pii_columns: tuple[str, ...] = ()  # columns holding personal data (governance: PII flows to features)
    lag_days: int = DEFAULT_LAG_DAYS  # snapshot D needs the latest event day >= D - 1 - lag
    readiness: Readiness | None = None

    @property
    def column_types(self) -> dict[str, str]:
        return dict(self.columns)


@dataclass(frozen=True)
class Aggregation:
    """One aggregate over one or more windows: produces `<name>_<N>d` per window."""

    name: str
    function: str
    expr: str | None  # None only for `count` (rows)
    windows: tuple[int, ...]  # whole days
    description: str = ""
    tags: Pairs = ()
    loc: Location = NOWHERE

    def output_names(self) -> tuple[str, ...]:
        return tuple(f"{self.name}_{w}d" for w in self.windows)


@dataclass(frozen=True)
class Feature:
    """A named Spark SQL expression: a row-level feature over source columns, or a derived
    feature over the group's own output columns."""

    name: str
    expr: str
    description: str = ""
    tags: Pairs = ()
    declassified: str | None = None  # reason a PII-derived feature is not PII (governance)
    loc: Location = NOWHERE


@dataclass(frozen=True)
class Check:
    """A Great Expectations expectation (snake_case name + kwargs) that gates a publish."""

    expectation: str
    kwargs: Pairs
    severity: Literal["error", "warn"] = "error"
    loc: Location = NOWHERE


@dataclass(frozen=True)
class FeatureGroup:
    """A set of features over one entity from one source, published as one Delta table.

    Aggregation groups have `aggregations` (and optional `derived`); row-level groups have
    `features` and no aggregations.
    """

    name: str
    entity: str
    source: str
    description: str = ""
    owner: str = ""
    filter: str | None = None
    tags: Pairs = ()
    ttl_days: int | None = None
    aggregations: tuple[Aggregation, ...] = ()
    derived: tuple[Feature, ...] = ()
    features: tuple[Feature, ...] = ()
    checks: tuple[Check, ...] = ()
    loc: Location = NOWHERE
    empty_input: Literal["refused", "allowed"] = "refused"  # allowed: an empty source publishes nothing, normally

    @property
    def kind(self) -> Literal["aggregation", "row"]:
        return "aggregation" if self.aggregations else "row"

    @property
    def max_window(self) -> int:
        return max((w for a in self.aggregations for w in a.windows), default=0)

    def feature_names(self) -> tuple[str, ...]:
        """Output feature columns in table order (keys and time columns excluded)."""
        if self.kind == "row":
            return tuple(f.name for f in self.features)
        names = [n for a in self.aggregations for n in a.output_names()]
        return tuple(names) + tuple(d.name for d in self.derived)


@dataclass(frozen=True)
class TrainingSet:
    """A named list of `group:feature` references (`group:*` for every feature)."""

    name: str
    features: tuple[str, ...]
    description: str = ""
    owner: str = ""
    loc: Location = NOWHERE
    as_known_at: str = "event"  # event (event-time correct) | publish (values as published then)


# How a training set joins time: event-time correct (default) or as published then (issue 22).
AS_KNOWN_AT = ("event", "publish")


@dataclass(frozen=True)
class Project:
    """Everything one project directory defines, for one environment."""

    root: Path
    config: Config
    entities: dict[str, Entity] = field(default_factory=dict)
    sources: dict[str, Source] = field(default_factory=dict)
    groups: dict[str, FeatureGroup] = field(default_factory=dict)
    training_sets: dict[str, TrainingSet] = field(default_factory=dict)

    def table_path(self, group: str) -> str:
        """Where a group's Delta table lives: `<feature_root>/<group>`."""
        return f"{self.config.feature_root.rstrip('/')}/{group}"
