"""Governance in definitions: PII lineage, each column's effective tags, and the tag checks.

The `governance:` section of conf (the tag vocabulary, Lake Formation, consumers) is read
with the rest of conf into `Config.governance` (`definitions.config.Governance`, checked by
`definitions.conf_governance`).

PII: a source lists its personal-data columns (`pii_columns: [income, birth_year]`); a group,
aggregation or feature may say `tags: {pii: true}`. Every output column computed from a PII
column is PII — through row-level features, aggregations and derived features alike — unless
its definition says `declassified: "<reason>"` (features and derived features only). So a
hashed or banded PII column can stop being PII on purpose, with a reason, never by accident.

Pure Python, no Spark, no AWS: `load_project` calls `check_governance`; the
`featurebank.governance` package and the training-set access check read `column_pii` and
`column_tags`.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass
from typing import Any

from featurebank.definitions.config import PII, PII_VALUES, Governance, tag_value
from featurebank.definitions.expressions import ExpressionError, referenced_columns
from featurebank.definitions.loader import did_you_mean
from featurebank.definitions.model import FeatureGroup, Location, Project
from featurebank.errors import Problem

TIME_COLUMNS = ("feature_date", "feature_ts")

Lines = dict[tuple[Location, str], int]


# --- PII lineage -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnPii:
    """Whether one output column of a group holds personal data, and why.

    `inputs` are the PII columns it is computed from (`source.column`, or `group.column` for
    a source that reads another group); `declassified` the reason it is not PII despite them.
    """

    pii: bool
    inputs: tuple[str, ...] = ()
    declassified: str | None = None
    marked: bool = False  # a `pii: true` tag on the group, aggregation or feature says so

    @property
    def why(self) -> str:
        """A short reason for messages: `reads customers.income`, `tagged pii: true`, ..."""
        if self.declassified is not None:
            return f"declassified: {self.declassified}"
        if self.inputs:
            return "reads " + ", ".join(self.inputs)
        return "tagged pii: true" if self.marked else "no PII input"


def _tags(pairs: Any) -> dict[str, str]:
    return {str(k): tag_value(v) for k, v in pairs if not isinstance(v, tuple)}


def _reads(expr: str | None) -> tuple[str, ...]:
    if not expr:
        return ()
    try:
        return referenced_columns(expr)
    except ExpressionError:  # reported by validation; a broken expression reads nothing here
        return ()


def source_pii(project: Project, source_name: str, _seen: frozenset[str] = frozenset()) -> dict[str, str]:
    """The PII columns of a source → what they are called in messages (`customers.income`).

    A source that reads another feature group has that group's PII output columns; a source
    over the same data as another (`physical_location`) has the other's PII columns too, so
    a second source without `pii_columns` cannot launder them.
    """
    source = project.sources.get(source_name)
    if source is None:
        return {}
    marks = {c: f"{source.name}.{c}" for c in source.pii_columns}
    where = physical_location(source.format, source.location)
    for other in project.sources.values():  # the same data read again is as personal as the first time
        if other.name != source.name and physical_location(other.format, other.location) == where:
            for column in other.pii_columns:
                marks.setdefault(column, f"{other.name}.{column}")
    if source.group is not None and source.group in project.groups and source.group not in _seen:
        for column, pii in column_pii(project, source.group, _seen | {source.group}).items():
            if pii.pii:
                marks.setdefault(column, f"{source.group}.{column}")
    return marks


def physical_location(format_: str, location: str) -> str:
    """Where a source's data lives, spelt one way: `s3://b/x/`, `s3a://b/./x` → `s3://b/x`; tables lower case."""
    if format_ == "table":
        return "table:" + location.strip().strip("`").lower()
    scheme, sep, rest = location.partition("://")
    if not sep:
        scheme, rest = "file", location.replace(os.sep, "/")
    scheme = {"s3a": "s3", "s3n": "s3"}.get(scheme.lower(), scheme.lower())
    return f"{scheme}:" + posixpath.normpath("/" + rest.lstrip("/"))


def pii_columns_of(project: Project, group: str) -> frozenset[str]:
    """The group's output columns holding personal data (their values are masked in reports and
    stored profiles)."""
    return frozenset(column for column, pii in column_pii(project, group).items() if pii.pii)


def column_pii(project: Project, group: str | FeatureGroup, _seen: frozenset[str] = frozenset()) -> dict[str, ColumnPii]:
    """Every output column of a group (keys, time columns, features) → whether it is PII, and why.

    Row-level features and aggregations inherit PII from the source columns their
    expressions and the group's filter read; derived features from the group's own output columns they read (so a
    declassified feature passes no PII on). A `pii: true` tag on the group, the aggregation
    or the feature makes its feature columns PII; `declassified` (features and derived
    features) makes one not PII. Pure: no Spark, no I/O.
    """
    definition = group if isinstance(group, FeatureGroup) else project.groups[group]
    seen = _seen | {definition.name}
    marks = source_pii(project, definition.source, seen)
    group_marked = _tags(definition.tags).get(PII) == "true"
    entity = project.entities.get(definition.entity)
    result: dict[str, ColumnPii] = {}
    for key in entity.keys if entity else ():
        result[key] = ColumnPii(key in marks, (marks[key],) if key in marks else ())
    source = project.sources.get(definition.source)
    timestamp = source.timestamp if source else None
    for column in TIME_COLUMNS:
        time_inputs: tuple[str, ...] = (marks[timestamp],) if timestamp in marks else ()
        result[column] = ColumnPii(bool(time_inputs), time_inputs)

    def from_source(expr: str | None) -> tuple[str, ...]:
        # The filter decides which rows every feature sees, so what it reads flows into all of them.
        return tuple(dict.fromkeys(marks[c] for c in (*_reads(expr), *_reads(definition.filter)) if c in marks))

    for aggregation in definition.aggregations:
        inputs = from_source(aggregation.expr)
        marked = group_marked or _tags(aggregation.tags).get(PII) == "true"
        for name in aggregation.output_names():
            result[name] = ColumnPii(bool(inputs) or marked, inputs, None, marked)
    for feature in definition.features:
        result[feature.name] = _feature_pii(from_source(feature.expr), group_marked, feature.tags, feature.declassified)
    for derived in definition.derived:
        inputs = tuple(dict.fromkeys((*from_source(None), *(i for c in _reads(derived.expr) if c in result and result[c].pii
                                                            for i in (result[c].inputs or (f"{definition.name}.{c}",))))))
        result[derived.name] = _feature_pii(inputs, group_marked, derived.tags, derived.declassified)
    return result


def _feature_pii(inputs: tuple[str, ...], group_marked: bool, tags: Any, declassified: str | None) -> ColumnPii:
    marked = group_marked or _tags(tags).get(PII) == "true"
    if declassified is not None and declassified.strip():
        return ColumnPii(False, inputs, declassified.strip(), marked)
    return ColumnPii(bool(inputs) or marked, inputs, None, marked)


# --- effective tags ----------------------------------------------------------------------------


def governed(key: str, governance: Governance) -> bool:
    """Whether tag `key` becomes an LF-tag: every key when conf names no `lf_tags`."""
    return not governance.lf_tags or key in governance.lf_tags


def lf_tags(pairs: Any, governance: Governance) -> dict[str, str]:
    """A definition's single-valued tags other than pii, limited to the LF-tag keys."""
    return {str(k): tag_value(v) for k, v in pairs if k != PII and not isinstance(v, tuple) and governed(str(k), governance)}


def column_tags(project: Project, group: str | FeatureGroup, governance: Governance) -> dict[str, dict[str, str]]:
    """Every output column of a group (keys, time columns, features) → its effective LF-tags.

    A column carries its group's tags, overridden by those of its aggregation or feature,
    limited to the LF-tag keys; and `pii` (when governed) from the lineage (`column_pii`),
    explicitly `true` or `false`, so what a grant allows never depends on inheritance.
    Pure: the same rule `featurebank grants` applies and the training-set access check reads.
    """
    definition = group if isinstance(group, FeatureGroup) else project.groups[group]
    base = lf_tags(definition.tags, governance)
    own: dict[str, dict[str, str]] = {}
    for aggregation in definition.aggregations:
        for name in aggregation.output_names():
            own[name] = lf_tags(aggregation.tags, governance)
    for feature in (*definition.features, *definition.derived):
        own[feature.name] = lf_tags(feature.tags, governance)
    result: dict[str, dict[str, str]] = {}
    for column, pii in column_pii(project, definition).items():
        tags = {**base, **own.get(column, {})}
        if governed(PII, governance):
            tags[PII] = "true" if pii.pii else "false"
        result[column] = tags
    return result


# --- checks on definitions -------------------------------------------------------------------


def check_governance(project: Project, governance: Governance, lines: Lines, problems: list[Problem]) -> None:
    """Append a problem for every tag or PII mistake in the definitions, each at file:line.

    Tags: values must be single values; when conf declares `governance.tags`, every key and
    value must be in it (with a did-you-mean). PII: a source's `pii_columns` must be its
    columns; `declassified` needs a reason and a PII input; `pii: false` cannot silence a PII
    input (that is what `declassified` is for); aggregations cannot be declassified.
    """

    def at(loc: Location, key: str, message: str) -> None:
        problems.append(Problem(loc.file, lines.get((loc, key), lines.get((loc, "tags"), loc.line)), message))

    vocabulary = governance.vocabulary

    def tags(loc: Location, pairs: Any, what: str) -> None:
        for key, value in pairs:
            if isinstance(value, tuple):
                at(loc, f"tag:{key}", f"tag '{key}' of {what} must be a single value, not a list or mapping; write {key}: <value>")
                continue
            if key == PII and tag_value(value) not in PII_VALUES:
                at(loc, f"tag:{key}", f"tag pii of {what} must be true or false, not {value!r}")
                continue
            if not governance.declared:
                continue
            if key not in vocabulary:
                at(loc, f"tag:{key}", f"unknown tag '{key}' on {what}"
                                      f"{did_you_mean(key, vocabulary) or ''} (tags allowed by {governance.conf_file} "
                                      f"governance.tags: {', '.join(vocabulary)})")
            elif tag_value(value) not in vocabulary[key]:
                allowed = vocabulary[key]
                at(loc, f"tag:{key}", f"tag {key}: {tag_value(value)} on {what} is not an allowed value"
                                      f"{did_you_mean(tag_value(value), allowed) or ''} (allowed: {', '.join(allowed)}; "
                                      f"add it to governance.tags.{key} in {governance.conf_file} if it is new)")

    for source in project.sources.values():
        declared = [c for c, _ in source.columns]
        for column in source.pii_columns:
            if declared and column not in declared:
                at(source.loc, "pii_columns", f"PII column '{column}' of source '{source.name}' is not one of its columns"
                                              f"{did_you_mean(column, declared) or ' (columns: ' + ', '.join(declared) + ')'}")
    for group in project.groups.values():
        what = f"feature group '{group.name}'"
        tags(group.loc, group.tags, what)
        pii = column_pii(project, group)
        for aggregation in group.aggregations:
            tags(aggregation.loc, aggregation.tags, f"aggregation '{aggregation.name}'")
            first = pii[aggregation.output_names()[0]] if aggregation.windows else ColumnPii(False)
            if _tags(aggregation.tags).get(PII) == "false" and first.inputs:
                at(aggregation.loc, f"tag:{PII}", f"aggregation '{aggregation.name}' {first.why}, so it is PII and pii: false "
                                                  "cannot say otherwise; drop the tag, and declassify a derived feature "
                                                  "over it (declassified: \"<reason>\") if a coarser value is not PII")
        for feature in (*group.features, *group.derived):
            kind = "derived feature" if feature in group.derived else "feature"
            tags(feature.loc, feature.tags, f"{kind} '{feature.name}'")
            feature_pii = pii.get(feature.name, ColumnPii(False))
            inputs = feature_pii.inputs
            tagged = _tags(feature.tags).get(PII)
            if feature.declassified is not None:
                if not feature.declassified.strip():
                    at(feature.loc, "declassified", f"{kind} '{feature.name}' is declassified without a reason; write "
                                                    "declassified: \"<why this is not personal data>\" (e.g. \"banded into 3 coarse bands\")")
                elif not inputs and not feature_pii.marked:
                    at(feature.loc, "declassified", f"{kind} '{feature.name}' is declassified, but it reads no PII column, so there "
                                                    "is nothing to declassify; remove declassified")
                elif tagged == "true":
                    at(feature.loc, "declassified", f"{kind} '{feature.name}' is both tagged pii: true and declassified; keep one")
            elif tagged == "false" and (inputs or group_marked(group)):
                reason = feature_pii.why if inputs else f"belongs to {what}, tagged pii: true"
                at(feature.loc, f"tag:{PII}", f"{kind} '{feature.name}' {reason}, so it is PII and pii: false cannot say "
                                              "otherwise; to declassify it on purpose, write declassified: \"<reason>\" instead")


def group_marked(group: FeatureGroup) -> bool:
    """Whether a group says `tags: {pii: true}` (every feature column PII unless declassified)."""
    return _tags(group.tags).get(PII) == "true"
