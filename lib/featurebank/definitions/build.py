"""Located YAML documents → typed, frozen definitions, checking the shape of each document.

Shape means: known keys, required keys, value types, lower snake_case names, whole-day
windows. Cross-references (does the entity exist? does the expression parse?) are checked
afterwards by `validate`. Every document that has a name becomes an object even when parts
of it are wrong, so later checks still run and every problem is reported at once.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from featurebank.aggregators import AGGREGATION_FUNCTIONS
from featurebank.definitions.loader import Document, YList, YMap, did_you_mean, freeze, resolve_path
from featurebank.definitions.model import (
    AS_KNOWN_AT,
    DEFAULT_LAG_DAYS,
    EMPTY_INPUT,
    MAX_WINDOW_DAYS,
    MIN_WINDOW_DAYS,
    SOURCE_FORMATS,
    Aggregation,
    Check,
    Entity,
    Feature,
    FeatureGroup,
    Location,
    Readiness,
    Source,
    TrainingSet,
)
from featurebank.errors import Problem

KINDS = ("entity", "source", "feature_group", "training_set")
ENTITY_KEYS = ("kind", "name", "keys", "description")
SOURCE_KEYS = ("kind", "name", "format", "path", "table", "group", "timestamp", "columns", "options", "description",
               "pii_columns", "lag", "readiness")
READINESS_KEYS = ("marker", "daily_rows", "watermark")
GROUP_KEYS = ("kind", "name", "entity", "source", "filter", "description", "owner", "tags", "ttl",
              "aggregations", "derived", "features", "checks", "empty_input")
AGGREGATION_KEYS = ("name", "function", "expr", "windows", "description", "tags")
FEATURE_KEYS = ("name", "expr", "description", "tags", "declassified")
TRAINING_SET_KEYS = ("kind", "name", "features", "description", "owner", "as_known_at")
SEVERITIES = ("error", "warn")
NAME = re.compile(r"^[a-z][a-z0-9_]*$")
NAME_OR_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DAYS = re.compile(r"^([0-9]+)d$")

# Key lines other stages need for precise messages: (object location, key) -> line.
Lines = dict[tuple[Location, str], int]


# Units a window is often written in, as days (a month as 30: the hint says so).
UNIT_DAYS = {"d": 1, "day": 1, "days": 1, "w": 7, "wk": 7, "week": 7, "weeks": 7,
             "mo": 30, "month": 30, "months": 30, "y": 365, "year": 365, "years": 365}
WRITTEN_NUMBER = re.compile(r"^\s*([0-9]+)\s*([a-z]*)\s*$")


def as_days(value: Any) -> str:
    """The hint for a number of days written another way, in the user's own number:
    `30` or `'30 days'` → `'30d'`, `'2 weeks'` → `'14d'`, `'3 months'` → `'90d' (3 months of 30 days)`;
    `'7d'` only when no number can be read from it."""
    match = WRITTEN_NUMBER.match(str(value).lower()) if not isinstance(value, (bool, float)) else None
    if match is None:
        return "'7d'"
    number, unit = int(match.group(1)), match.group(2)
    if unit in ("h", "hour", "hours") and number % 24 == 0:
        return f"'{number // 24}d'"
    days = number * UNIT_DAYS.get(unit, 1)
    return f"'{days}d'" if UNIT_DAYS.get(unit, 1) != 30 else f"'{days}d' ({number} months of 30 days)"


def snake_case(name: str) -> str:
    """A lower snake_case spelling of `name`, for the rename hint."""
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    text = re.sub(r"[^0-9a-zA-Z]+", "_", text).strip("_").lower()
    return text if NAME.match(text) else "x_" + text


@dataclass
class Built:
    """What building produced: objects by kind, in file order (duplicates kept), key lines."""

    entities: list[Entity] = field(default_factory=list)
    sources: list[Source] = field(default_factory=list)
    source_groups: dict[str, str] = field(default_factory=dict)  # source name -> group it reads
    groups: list[FeatureGroup] = field(default_factory=list)
    training_sets: list[TrainingSet] = field(default_factory=list)
    lines: Lines = field(default_factory=dict)
    # Aggregations whose windows were refused (already reported): their outputs are unknown,
    # so a later reference to one of them is not reported again with a misleading "did you mean".
    unknown_windows: set[Location] = field(default_factory=set)


class Builder:
    """Builds one project's definitions, appending every problem found to `problems`."""

    def __init__(self, root: Path, feature_root: str, problems: list[Problem]) -> None:
        self.root = root
        self.feature_root = feature_root
        self.problems = problems
        self.built = Built()

    # -- helpers -------------------------------------------------------------------------
    def problem(self, file: str, line: int, message: str) -> None:
        self.problems.append(Problem(file, line, message))

    def check_keys(self, file: str, data: YMap, allowed: Sequence[str], required: Sequence[str], what: str) -> None:
        for key in data:
            if key not in allowed:
                hint = did_you_mean(key, allowed) or f"; remove it (allowed: {', '.join(allowed)})"
                if data[key] is None and " " in key:
                    hint = ("; an unquoted comma inside {...} starts a new key, so quote the text before it "
                            "(e.g. description: \"a, b\")")
                self.problem(file, data.line_of(key), f"unknown key '{key}' in {what}{hint}")
        for key in required:
            if key not in data or data[key] is None:
                self.problem(file, data.line_of(key), f"{what} has no '{key}'; add {key}: ...")

    def text(self, file: str, data: YMap, key: str, what: str, default: str = "") -> str:
        value = data.get(key)
        if value is None:
            return default
        if isinstance(value, (YMap, YList)):
            self.problem(file, data.line_of(key), f"'{key}' of {what} must be text, not a {'mapping' if isinstance(value, YMap) else 'list'}; write {key}: <text>")
            return default
        if isinstance(value, bool):
            self.problem(file, data.line_of(key), f"'{key}' of {what} must be text, not {str(value).lower()}; quote it")
            return default
        return str(value)

    def name(self, file: str, data: YMap, what: str) -> str | None:
        value = data.get("name")
        if value is None:
            return None
        if not isinstance(value, str):
            self.problem(file, data.line_of("name"), f"the name of {what} must be text, not {value!r}; write name: <lower_snake_case>")
            return str(value)
        if not NAME.match(value):
            self.problem(file, data.line_of("name"), f"name '{value}' is not lower snake_case; rename it to '{snake_case(value)}'")
        return value

    def names_list(self, file: str, data: YMap, key: str, what: str) -> tuple[str, ...]:
        value = data.get(key)
        if value is None:
            return ()
        if isinstance(value, str):
            self.problem(file, data.line_of(key), f"'{key}' of {what} must be a list; write {key}: [{value}]")
            return (value,)
        if not isinstance(value, YList) or not all(isinstance(v, str) for v in value):
            self.problem(file, data.line_of(key), f"'{key}' of {what} must be a list of names; write {key}: [a, b]")
            return ()
        if not value:
            self.problem(file, data.line_of(key), f"'{key}' of {what} is empty; list at least one")
        return tuple(value)

    def pairs(self, file: str, data: YMap, key: str, what: str) -> tuple[tuple[str, Any], ...]:
        value = data.get(key)
        if value is None:
            return ()
        if not isinstance(value, YMap):
            self.problem(file, data.line_of(key), f"'{key}' of {what} must be a mapping; write {key}: {{name: value}}")
            return ()
        frozen: tuple[tuple[str, Any], ...] = freeze(value)
        return frozen

    def days(self, file: str, line: int, value: Any, what: str, low: int = MIN_WINDOW_DAYS, high: int = MAX_WINDOW_DAYS) -> int | None:
        match = DAYS.match(value) if isinstance(value, str) else None
        if not match:
            self.problem(file, line, f"{what} {value!r} is not a whole number of days; write it as {as_days(value)}")
            return None
        days = int(match.group(1))
        if not low <= days <= high:
            self.problem(file, line, f"{what} '{value}' is outside {low}d..{high}d; use a {what} from {low}d to {high}d")
            return None
        return days

    def items(self, file: str, data: YMap, key: str, what: str) -> list[tuple[YMap, int]]:
        value = data.get(key)
        if value is None:
            return []
        if not isinstance(value, YList):
            self.problem(file, data.line_of(key), f"'{key}' of {what} must be a list of items (- name: ...); write it as a YAML list")
            return []
        result = []
        for index, item in enumerate(value):
            if not isinstance(item, YMap):
                self.problem(file, value.line_of(index), f"each item of '{key}' in {what} must be a mapping like {{name: ..., expr: ...}}, not {item!r}")
                continue
            result.append((item, value.line_of(index)))
        return result

    def remember(self, loc: Location, data: YMap) -> None:
        for key in data:
            self.built.lines[(loc, key)] = data.line_of(key)
        tags = data.get("tags")
        if isinstance(tags, YMap):
            for key in tags:
                self.built.lines[(loc, f"tag:{key}")] = tags.line_of(key)

    # -- documents -----------------------------------------------------------------------
    def build(self, documents: Sequence[Document]) -> Built:
        """Build every document; returns the objects and the key lines."""
        for doc in documents:
            if not isinstance(doc.data, YMap):
                self.problem(doc.file, doc.line, "a definition must be a mapping with kind: and name:; rewrite this document as one")
                continue
            kind = doc.data.get("kind")
            if kind is None:
                self.problem(doc.file, doc.data.line, f"this document has no 'kind'; add kind: with one of {', '.join(KINDS)}")
                continue
            if kind not in KINDS:
                self.problem(doc.file, doc.data.line_of("kind"), f"unknown kind '{kind}'{did_you_mean(str(kind), KINDS)} (one of: {', '.join(KINDS)})")
                continue
            getattr(self, f"_{kind}")(doc.file, doc.data)
        return self.built

    def _entity(self, file: str, data: YMap) -> None:
        name = self.name(file, data, "entity")
        what = f"entity '{name}'" if name else "this entity"
        self.check_keys(file, data, ENTITY_KEYS, ("name", "keys"), what)
        if name is None:
            return
        loc = Location(file, data.line)
        self.remember(loc, data)
        keys = self.names_list(file, data, "keys", what)
        self.built.entities.append(Entity(name, keys, self.text(file, data, "description", what), loc))

    def _source(self, file: str, data: YMap) -> None:
        name = self.name(file, data, "source")
        what = f"source '{name}'" if name else "this source"
        self.check_keys(file, data, SOURCE_KEYS, ("name",), what)
        if name is None:
            return
        loc = Location(file, data.line)
        self.remember(loc, data)
        where = [k for k in ("path", "table", "group") if data.get(k) is not None]
        if len(where) != 1:
            found = "none of" if not where else "more than one of"
            self.problem(file, data.line_of(where[1] if len(where) > 1 else "name"),
                         f"{what} has {found} path, table, group; give exactly one (path: for files, table: for a catalog table, group: to read another feature group)")
        fmt = self.text(file, data, "format", what)
        location = ""
        if where:
            value = self.text(file, data, where[0], what)
            if where[0] == "path":
                location = resolve_path(value, self.root) if value else ""
                if not fmt:
                    self.problem(file, data.line, f"{what} reads a path but has no 'format'; add format: with one of parquet, delta, csv")
            elif where[0] == "table":
                if fmt and fmt != "table":
                    self.problem(file, data.line_of("format"), f"{what} reads a catalog table, so its format is 'table', not '{fmt}'; write format: table or drop format:")
                fmt, location = "table", value
            else:
                if fmt and fmt != "delta":
                    self.problem(file, data.line_of("format"), f"{what} reads feature group '{value}', a Delta table; drop format: (or write format: delta)")
                fmt = "delta"
                location = f"{self.feature_root.rstrip('/')}/{value}"
                self.built.source_groups[name] = value
        if fmt and fmt not in SOURCE_FORMATS:
            self.problem(file, data.line_of("format"), f"unknown format '{fmt}'{did_you_mean(fmt, SOURCE_FORMATS)} (one of: {', '.join(SOURCE_FORMATS)})")
        timestamp = data.get("timestamp")
        if timestamp is not None and not isinstance(timestamp, str):
            self.problem(file, data.line_of("timestamp"), f"'timestamp' of {what} must be a column name; write timestamp: <column>")
            timestamp = None
        columns: list[tuple[str, str]] = []
        raw_columns = data.get("columns")
        if raw_columns is not None:
            if not isinstance(raw_columns, YMap):
                self.problem(file, data.line_of("columns"), f"'columns' of {what} must map column names to Spark SQL types; write columns: {{customer_id: string, amount: double}}")
            else:
                for column, type_ in raw_columns.items():
                    if not isinstance(type_, str):
                        self.problem(file, raw_columns.line_of(column), f"the type of column '{column}' must be a Spark SQL type name like string or double, not {type_!r}")
                        continue
                    columns.append((column, type_))
        lag = None
        if data.get("lag") is not None:
            lag = self.days(file, data.line_of("lag"), data["lag"], "lag", 0, MAX_WINDOW_DAYS)
        if data.get("lag") is not None and timestamp is None:
            self.problem(file, data.line_of("lag"), f"{what} has a lag but no timestamp; add timestamp: <event-time column> (the lag is counted in event days)")
        self.built.sources.append(
            Source(name, fmt, location, timestamp, tuple(columns), self.pairs(file, data, "options", what),
                   self.text(file, data, "description", what), loc, self.built.source_groups.get(name),
                   pii_columns=self.names_list(file, data, "pii_columns", what),
                   lag_days=DEFAULT_LAG_DAYS if lag is None else lag,
                   readiness=self._readiness(file, data, what, fmt, location, dict(columns), timestamp))
        )

    def _readiness(self, file: str, data: YMap, what: str, fmt: str, location: str, columns: dict[str, str],
                   timestamp: str | None) -> Readiness | None:
        """`readiness: {marker: ...}`, `{daily_rows: {min: N, max: M}}` or `{watermark: <column>}`."""
        raw = data.get("readiness")
        if raw is None:
            return None
        line = data.line_of("readiness")
        example = "readiness: {marker: _SUCCESS}, {daily_rows: {min: 1000, max: 50000}} or {watermark: <column>}"
        if not isinstance(raw, YMap) or len(raw) != 1:
            self.problem(file, line, f"'readiness' of {what} must name exactly one signal; write {example}")
            return None
        (kind, value), = raw.items()
        line, loc = raw.line_of(kind), Location(file, raw.line_of(kind))
        if kind not in READINESS_KEYS:
            self.problem(file, line, f"unknown readiness signal '{kind}'{did_you_mean(str(kind), READINESS_KEYS)} "
                                     f"(one of: {', '.join(READINESS_KEYS)})")
            return None
        if kind == "marker":
            if not isinstance(value, str) or not value.strip():
                self.problem(file, line, f"the readiness marker of {what} must be a path; write marker: _SUCCESS "
                                         "(a name inside the source's path) or marker: <path or URI>")
                return None
            if "/" not in value and fmt == "table":
                self.problem(file, line, f"{what} reads a catalog table, so its readiness marker needs a full path or URI, not '{value}'")
                return None
            marker = f"{location.rstrip('/')}/{value}" if "/" not in value else resolve_path(value, self.root)
            return Readiness(marker=marker, loc=loc)
        if kind == "watermark":
            if not isinstance(value, str) or not NAME_OR_COLUMN.match(value):
                self.problem(file, line, f"the readiness watermark of {what} must be a column name; write watermark: <column>")
                return None
            if value == timestamp:
                self.problem(file, line, f"the readiness watermark of {what} is its event-time column; name the column "
                                         "that says how far loading got (e.g. loaded_until), or use lag: alone")
                return None
            if columns.get(value, "").strip().lower() not in ("timestamp", "timestamp_ntz", "timestamp_ltz", "date"):
                self.problem(file, line, f"the readiness watermark '{value}' of {what} must be a declared time column; "
                                         f"add it to columns: as {value}: timestamp")
                return None
            return Readiness(watermark=value, loc=loc)
        bounds: dict[str, int] = {}
        if isinstance(value, YMap):
            for key, bound in value.items():
                if key not in ("min", "max") or not isinstance(bound, int) or isinstance(bound, bool) or bound < 0:
                    self.problem(file, value.line_of(key), f"daily_rows of {what} takes min: and max: as whole numbers >= 0, "
                                                           f"not {key}: {bound!r}; write daily_rows: {{min: 1000, max: 50000}}")
                    return None
                bounds[key] = bound
        if not bounds:
            self.problem(file, line, f"daily_rows of {what} needs min:, max: or both; write daily_rows: {{min: 1000, max: 50000}}")
            return None
        if "min" in bounds and "max" in bounds and bounds["min"] > bounds["max"]:
            self.problem(file, line, f"daily_rows of {what} has min {bounds['min']} above max {bounds['max']}; swap them")
            return None
        if timestamp is None:
            self.problem(file, line, f"daily_rows of {what} counts rows per event day, so the source needs timestamp: <column>")
            return None
        return Readiness(daily_min=bounds.get("min"), daily_max=bounds.get("max"), loc=loc)

    def _feature_group(self, file: str, data: YMap) -> None:
        name = self.name(file, data, "feature group")
        what = f"feature group '{name}'" if name else "this feature group"
        self.check_keys(file, data, GROUP_KEYS, ("name", "entity", "source"), what)
        if name is None:
            return
        loc = Location(file, data.line)
        self.remember(loc, data)
        has_aggs, has_features = data.get("aggregations") is not None, data.get("features") is not None
        if has_aggs and has_features:
            self.problem(file, data.line_of("features"), f"{what} has both aggregations and features; split it into an aggregation group and a row-level group")
        elif not has_aggs and not has_features:
            self.problem(file, data.line, f"{what} has neither aggregations nor features; add aggregations: (daily snapshots) or features: (row-level)")
        if data.get("derived") is not None and not has_aggs:
            self.problem(file, data.line_of("derived"), f"{what} has derived features but no aggregations; move them to features: (row-level groups compute features directly)")
        ttl = None
        if data.get("ttl") is not None:
            ttl = self.days(file, data.line_of("ttl"), data["ttl"], "ttl", 1, 100_000)
            if has_aggs:
                self.problem(file, data.line_of("ttl"), f"{what} is an aggregation group, and ttl applies only to row-level groups; remove ttl (windows already bound how far back it looks)")
        filter_ = data.get("filter")
        if filter_ is not None and not isinstance(filter_, str):
            self.problem(file, data.line_of("filter"), f"'filter' of {what} must be a Spark SQL predicate in quotes; write filter: \"status = 'SETTLED'\"")
            filter_ = None
        empty_input = data.get("empty_input", "refused")
        if empty_input not in EMPTY_INPUT:
            self.problem(file, data.line_of("empty_input"), f"empty_input of {what} is {empty_input!r}; write empty_input: allowed "
                                                            "(an empty source is normal) or leave it out (refused)")
            empty_input = "refused"
        self.built.groups.append(FeatureGroup(
            name=name,
            entity=self.text(file, data, "entity", what),
            source=self.text(file, data, "source", what),
            description=self.text(file, data, "description", what),
            owner=self.text(file, data, "owner", what),
            filter=filter_,
            tags=self.pairs(file, data, "tags", what),
            ttl_days=ttl,
            aggregations=tuple(self._aggregation(file, item, line, what) for item, line in self.items(file, data, "aggregations", what)),
            derived=tuple(self._feature(file, item, line, "derived feature", what) for item, line in self.items(file, data, "derived", what)),
            features=tuple(self._feature(file, item, line, "feature", what) for item, line in self.items(file, data, "features", what)),
            checks=tuple(c for item, line in self.items(file, data, "checks", what) if (c := self._check(file, item, line, what))),
            loc=loc,
            empty_input=empty_input,
        ))

    def _aggregation(self, file: str, data: YMap, line: int, group_what: str) -> Aggregation:
        name = self.name(file, data, f"an aggregation of {group_what}") or ""
        what = f"aggregation '{name}'" if name else f"an aggregation of {group_what}"
        self.check_keys(file, data, AGGREGATION_KEYS, ("name", "function", "windows"), what)
        loc = Location(file, line)
        self.remember(loc, data)
        function = self.text(file, data, "function", what)
        if function and function not in AGGREGATION_FUNCTIONS:
            self.problem(file, data.line_of("function"), f"unknown aggregation function '{function}'{did_you_mean(function, AGGREGATION_FUNCTIONS)} (one of: {', '.join(AGGREGATION_FUNCTIONS)})")
        expr: str | None = self.text(file, data, "expr", what) or None
        if expr is None and function and function != "count":
            self.problem(file, line, f"{what} uses {function} but has no expr; add expr: <column or Spark SQL expression>")
        windows: list[int] = []
        raw = data.get("windows")
        if not isinstance(raw, YList) or not raw:  # missing or not a list: reported, outputs unknown
            self.built.unknown_windows.add(loc)
        if raw is not None:
            if not isinstance(raw, YList):
                raw_list = YList(data.line_of("windows"))
                raw_list.append(raw)
                self.problem(file, data.line_of("windows"), f"'windows' of {what} must be a list; write windows: [{raw}]")
                raw = raw_list
            for index, value in enumerate(raw):
                days = self.days(file, raw.line_of(index) if raw.item_lines else data.line_of("windows"), value, "window")
                if days is None:
                    self.built.unknown_windows.add(loc)
                else:
                    if days in windows:
                        self.problem(file, data.line_of("windows"), f"window '{value}' is listed twice in {what}; list it once")
                    else:
                        windows.append(days)
            if not raw:
                self.problem(file, data.line_of("windows"), f"{what} has no windows; list at least one, e.g. windows: [7d, 30d]")
        return Aggregation(name, function, expr, tuple(windows), self.text(file, data, "description", what),
                           self.pairs(file, data, "tags", what), loc)

    def _feature(self, file: str, data: YMap, line: int, kind: str, group_what: str) -> Feature:
        name = self.name(file, data, f"a {kind} of {group_what}") or ""
        what = f"{kind} '{name}'" if name else f"a {kind} of {group_what}"
        self.check_keys(file, data, FEATURE_KEYS, ("name", "expr"), what)
        loc = Location(file, line)
        self.remember(loc, data)
        declassified = data.get("declassified")
        return Feature(name, self.text(file, data, "expr", what), self.text(file, data, "description", what),
                       self.pairs(file, data, "tags", what),
                       None if declassified is None else self.text(file, data, "declassified", what), loc)

    def _check(self, file: str, data: YMap, line: int, group_what: str) -> Check | None:
        loc = Location(file, line)
        self.remember(loc, data)
        names = [k for k in data if k != "severity"]
        if len(names) != 1:
            self.problem(file, line, f"a check of {group_what} must name exactly one expectation (plus optional severity:), found {len(names)}; write - expect_...: {{column: ...}}")
            return None
        expectation = names[0]
        kwargs = data[expectation]
        if kwargs is None:
            kwargs = YMap(line)
        if not isinstance(kwargs, YMap):
            self.problem(file, data.line_of(expectation), f"the arguments of {expectation} must be a mapping; write {expectation}: {{column: ...}}")
            kwargs = YMap(line)
        severity = data.get("severity", "error")
        if severity not in SEVERITIES:
            self.problem(file, data.line_of("severity"), f"severity '{severity}' is not error or warn; write severity: error (gates the publish) or severity: warn (only reports)")
            severity = "error"
        for key in kwargs:
            self.built.lines[(loc, f"arg:{key}")] = kwargs.line_of(key)
        return Check(expectation, freeze(kwargs), severity, loc)

    def _training_set(self, file: str, data: YMap) -> None:
        name = self.name(file, data, "training set")
        what = f"training set '{name}'" if name else "this training set"
        self.check_keys(file, data, TRAINING_SET_KEYS, ("name", "features"), what)
        if name is None:
            return
        loc = Location(file, data.line)
        self.remember(loc, data)
        raw = data.get("features")
        if isinstance(raw, YList):
            for index, _ in enumerate(raw):
                self.built.lines[(loc, f"feature:{index}")] = raw.line_of(index)
        as_known_at = data.get("as_known_at", "event")
        if as_known_at not in AS_KNOWN_AT:
            self.problem(file, data.line_of("as_known_at"), f"as_known_at of {what} is {as_known_at!r}; write "
                         "as_known_at: publish (values as published then) or event (the default, event-time correct)")
            as_known_at = "event"
        self.built.training_sets.append(TrainingSet(
            name, self.names_list(file, data, "features", what), self.text(file, data, "description", what),
            self.text(file, data, "owner", what), loc, str(as_known_at)))
