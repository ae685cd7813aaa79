"""Cross-definition checks: names, references, expressions, checks, training sets, cycles.

`assemble` turns built objects into a `Project` and returns every problem found, each at the
`file:line` where the fix goes, with a "did you mean" where a name is close.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from featurebank.definitions.build import Built, Lines
from featurebank.definitions.expectations import (
    COLUMN_ARGUMENTS,
    COLUMN_LIST_ARGUMENTS,
    catalogue,
    own_argument_problems,
)
from featurebank.definitions.expressions import (
    ExpressionError,
    aggregate_functions,
    infer_type,
    input_type_problem,
    referenced_columns,
    unknown_functions,
    valid_type,
)
from featurebank.definitions.loader import did_you_mean, guess_or
from featurebank.definitions.policy import REFUSED, check_violations, policy_violations
from featurebank.definitions.refs import resolve_references
from featurebank.definitions.spark_functions import spark_functions
from featurebank.definitions.config import Config
from featurebank.definitions.model import (
    Aggregation,
    Check,
    Entity,
    FeatureGroup,
    Location,
    Project,
    Source,
    TrainingSet,
)
from featurebank.errors import Problem

TIME_COLUMNS = ("feature_date", "feature_ts")

Named = TypeVar("Named", Entity, Source, FeatureGroup, TrainingSet)


class Checker:
    """Collects problems about one assembled project."""

    def __init__(self, project: Project, lines: Lines, problems: list[Problem],
                 unknown_windows: Collection[Location] = ()) -> None:
        self.project = project
        self.lines = lines
        self.problems = problems
        self.unknown_windows = frozenset(unknown_windows)  # aggregations whose windows were refused

    def reported(self, group: FeatureGroup, column: str) -> bool:
        """True when `column` may be an output of an aggregation whose windows were refused: that
        problem is already reported, and a "did you mean" on the reference would only mislead."""
        return any(column.startswith(f"{a.name}_") for a in group.aggregations if a.loc in self.unknown_windows)

    def at(self, loc: Location, key: str, message: str) -> None:
        self.problems.append(Problem(loc.file, self.lines.get((loc, key), loc.line), message))

    # -- expressions ---------------------------------------------------------------------
    def expression(self, loc: Location, key: str, text: str, what: str, columns: Sequence[str] | None,
                   scope: str, allow_aggregates: bool = False) -> tuple[str, ...]:
        """Parse `text`; report a parse error, aggregates, and columns outside `columns`."""
        try:
            used = referenced_columns(text)
            aggregates = aggregate_functions(text)
            unknown = unknown_functions(text)
            violations = policy_violations(text, self.project.config.allow_functions)
        except ExpressionError as error:
            self.at(loc, key, f"{what} is not valid Spark SQL ({text!r}): {error}")
            return ()
        for violation in violations:
            self.at(loc, key, f"{what} {violation}")
        for function in (f for f in unknown if f not in REFUSED):
            self.at(loc, key, f"{what} calls {function}(), which is not a Spark SQL function"
                              f"{guess_or(function, spark_functions(), 'check the name against the Spark SQL function reference')}")
        if aggregates and not allow_aggregates:
            self.at(loc, key, f"{what} uses the aggregate function {aggregates[0]}(); {what} is computed per row, "
                              "so aggregate with an aggregation's function: instead")
        if columns is not None and not violations:  # a refused expression's "columns" may be paths
            for column in used:
                if column not in columns:
                    self.at(loc, key, f"{what} uses column '{column}', which is not {scope}{did_you_mean(column, columns)} "
                                      f"(available: {', '.join(columns)})")
        return used

    def input_type(self, aggregation: Aggregation, source: Source) -> None:
        """Report an aggregation whose input type (from the declared columns) its function cannot take."""
        if aggregation.expr is None or not source.columns:
            return
        type_ = infer_type(aggregation.expr, source.column_types)
        reason = input_type_problem(aggregation.function, type_)
        if reason is not None:
            self.at(aggregation.loc, "expr", f"aggregation '{aggregation.name}' applies {aggregation.function} to "
                                             f"{aggregation.expr!r}, of type {type_} (declared by source '{source.name}'), "
                                             f"but {reason}")

    # -- checks ---------------------------------------------------------------------------
    def check(self, group: FeatureGroup, check: Check, outputs: Sequence[str]) -> None:
        spec = catalogue().get(check.expectation)
        if spec is None:
            hint = did_you_mean(check.expectation, catalogue())
            self.at(check.loc, "", f"unknown expectation '{check.expectation}'{hint} "
                                   "(a Great Expectations 1.x expectation name in snake_case)")
            return
        arguments = dict(check.kwargs)
        for name, value in arguments.items():
            loc_key = f"arg:{name}"
            if name not in spec.arguments:
                hint = did_you_mean(name, spec.arguments) or f"; allowed: {', '.join(spec.arguments)}"
                self.at(check.loc, loc_key, f"{check.expectation} has no argument '{name}'{hint}")
                continue
            named: list[Any] = []
            if name in COLUMN_ARGUMENTS:
                named = [value]
            elif name in COLUMN_LIST_ARGUMENTS:
                named = list(value) if isinstance(value, tuple) else [value]
            for column in named:
                if column not in outputs and not self.reported(group, str(column)):
                    self.at(check.loc, loc_key, f"{check.expectation} checks column '{column}', which feature group "
                                                f"'{group.name}' does not output{did_you_mean(str(column), outputs)}")
        for name in spec.required:
            if name not in arguments:
                self.at(check.loc, "", f"{check.expectation} needs the argument '{name}'; add {name}: ...")
        for violation in (*check_violations(arguments), *own_argument_problems(check.expectation, arguments)):
            self.at(check.loc, "", f"{check.expectation} {violation}")
        condition = arguments.get("row_condition")
        if isinstance(condition, str):
            self.expression(check.loc, "arg:row_condition", condition, f"row_condition of {check.expectation}",
                            outputs, f"an output of feature group '{group.name}'")

    # -- groups -----------------------------------------------------------------------------
    def group(self, group: FeatureGroup) -> None:
        project = self.project
        entity = project.entities.get(group.entity)
        source = project.sources.get(group.source)
        if group.entity and entity is None:
            self.at(group.loc, "entity", f"feature group '{group.name}' names entity '{group.entity}', which is not defined"
                                         f"{guess_or(group.entity, project.entities, 'define it (kind: entity) or fix the name')}")
        if group.source and source is None:
            self.at(group.loc, "source", f"feature group '{group.name}' names source '{group.source}', which is not defined"
                                         f"{guess_or(group.source, project.sources, 'define it (kind: source) or fix the name')}")
        keys = entity.keys if entity else ()
        declared = [c for c, _ in source.columns] if source and source.columns else None
        if source is not None:
            if source.timestamp is None and group.aggregations:
                self.at(group.loc, "source", f"feature group '{group.name}' aggregates over event time, but source "
                                             f"'{source.name}' ({source.loc}) has no timestamp; add timestamp: <event-time column> to the source")
            elif source.timestamp is None and group.features:
                self.at(group.loc, "source", f"row-level feature group '{group.name}' takes feature_ts from its source, but source "
                                             f"'{source.name}' ({source.loc}) has no timestamp; add timestamp: <column> to the source")
            if declared is not None:
                for key in keys:
                    if key not in declared:
                        self.at(group.loc, "source", f"entity key '{key}' of '{group.entity}' is not a column of source '{source.name}'"
                                                     f"{guess_or(key, declared, 'add it to the source columns, or read another source')}")
        scope = f"a column of source '{group.source}'"
        if group.filter is not None:
            self.expression(group.loc, "filter", group.filter, "filter", declared, scope)

        outputs: list[str] = [*keys, *TIME_COLUMNS]
        seen: dict[str, Location] = {}

        def add_output(name: str, loc: Location) -> None:
            if not name:
                return
            if name in keys or name in TIME_COLUMNS:
                self.at(loc, "name", f"'{name}' is a key or time column of feature group '{group.name}'; give the feature another name")
            elif name in seen:
                self.at(loc, "name", f"feature group '{group.name}' outputs '{name}' twice (also at {seen[name]}); rename one")
            seen.setdefault(name, loc)
            outputs.append(name)

        aggregation_names: dict[str, Location] = {}
        for aggregation in group.aggregations:
            if aggregation.name in aggregation_names:
                self.at(aggregation.loc, "name", f"aggregation '{aggregation.name}' is defined twice in feature group "
                                                 f"'{group.name}' (also at {aggregation_names[aggregation.name]}); rename one")
            aggregation_names.setdefault(aggregation.name, aggregation.loc)
            if aggregation.expr is not None:
                self.expression(aggregation.loc, "expr", aggregation.expr, f"expr of aggregation '{aggregation.name}'",
                                declared, scope)
                if source is not None:
                    self.input_type(aggregation, source)
            for output in aggregation.output_names():
                add_output(output, aggregation.loc)
        for feature in group.features:
            self.expression(feature.loc, "expr", feature.expr, f"feature '{feature.name}'", declared, scope)
            add_output(feature.name, feature.loc)
        for derived in group.derived:
            used = self.expression(derived.loc, "expr", derived.expr, f"derived feature '{derived.name}'", None, "")
            later = [d.name for d in group.derived]
            fix = ("derived features read only the group's keys, feature_date, feature_ts, <aggregation>_<N>d "
                   "columns and earlier derived features; aggregate source columns with an aggregation first")
            for column in used:
                if column in outputs or self.reported(group, column):
                    continue
                if column in later:
                    self.at(derived.loc, "expr", f"derived feature '{derived.name}' uses '{column}', which is defined after it; "
                                                 f"move '{column}' above '{derived.name}'")
                else:
                    self.at(derived.loc, "expr", f"derived feature '{derived.name}' uses '{column}', which is not an output of "
                                                 f"feature group '{group.name}'{guess_or(column, outputs, fix)}")
            add_output(derived.name, derived.loc)
        for check in group.checks:
            self.check(group, check, outputs)

    def source(self, source: Source) -> None:
        declared = [c for c, _ in source.columns]
        for column, type_ in source.columns:
            if not valid_type(type_):
                self.at(source.loc, "columns", f"column '{column}' of source '{source.name}' has unknown type '{type_}'; "
                                               "use a Spark SQL type such as string, int, bigint, double, decimal(18,2), date, timestamp")
        if source.timestamp and declared and source.timestamp not in declared:
            self.at(source.loc, "timestamp", f"timestamp '{source.timestamp}' of source '{source.name}' is not among its declared columns"
                                             f"{guess_or(source.timestamp, declared, 'declare it under columns: or fix the name')}")
        if source.group is not None and source.group not in self.project.groups:
            self.at(source.loc, "group", f"source '{source.name}' reads feature group '{source.group}', which is not defined"
                                         f"{guess_or(source.group, self.project.groups, 'fix the name or define that feature group')}")

    def training_set(self, training_set: TrainingSet) -> None:
        """Report every reference of the training set that does not resolve, at its own line."""
        resolution = resolve_references(self.project, training_set.features, asker=f"training set '{training_set.name}'")
        for index, message in resolution.problems:
            self.at(training_set.loc, "" if index is None else f"feature:{index}", message)

    def cycles(self) -> None:
        edges = dependencies(self.project)
        state: dict[str, int] = {}
        stack: list[str] = []
        reported: set[frozenset[str]] = set()

        def visit(name: str) -> None:
            state[name] = 1
            stack.append(name)
            for upstream in edges.get(name, ()):
                if state.get(upstream) == 1:
                    members = stack[stack.index(upstream):]
                    if frozenset(members) not in reported:
                        reported.add(frozenset(members))
                        group = self.project.groups[members[0]]
                        chain = " → ".join([*members, members[0]])
                        self.at(group.loc, "source", f"feature groups read each other's tables in a cycle ({chain}); "
                                                     "break the cycle: one of them must read a raw source instead")
                elif state.get(upstream) is None:
                    visit(upstream)
            stack.pop()
            state[name] = 2

        for name in sorted(edges):
            if name not in state:
                visit(name)


def dependencies(project: Project) -> dict[str, tuple[str, ...]]:
    """Feature group → the feature groups whose published tables its source reads."""
    edges: dict[str, tuple[str, ...]] = {}
    for group in project.groups.values():
        source = project.sources.get(group.source)
        upstream = source.group if source is not None else None
        edges[group.name] = (upstream,) if upstream is not None and upstream in project.groups else ()
    return edges


def _unique(items: Iterable[Named], kind: str, problems: list[Problem], lines: Lines) -> dict[str, Named]:
    result: dict[str, Named] = {}
    for item in items:
        first = result.get(item.name)
        if first is not None:
            problems.append(Problem(item.loc.file, lines.get((item.loc, "name"), item.loc.line),
                                    f"duplicate {kind} name '{item.name}' (first defined at {first.loc}); rename one of them"))
            continue
        result[item.name] = item
    return result


def assemble(root: Path, config: Config, built: Built, problems: list[Problem]) -> Project:
    """The project built objects make, after checking every cross-definition rule."""
    project = Project(
        root=root,
        config=config,
        entities=_unique(built.entities, "entity", problems, built.lines),
        sources=_unique(built.sources, "source", problems, built.lines),
        groups=_unique(built.groups, "feature group", problems, built.lines),
        training_sets=_unique(built.training_sets, "training set", problems, built.lines),
    )
    checker = Checker(project, built.lines, problems, built.unknown_windows)
    for source in project.sources.values():
        checker.source(source)
    for group in project.groups.values():
        checker.group(group)
    for training_set in project.training_sets.values():
        checker.training_set(training_set)
    checker.cycles()
    return project
