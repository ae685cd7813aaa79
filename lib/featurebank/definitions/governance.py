"""Governance in definitions: the tag vocabulary and consumers of `governance:` in conf, and PII lineage.

Conf (`conf/<env>.yaml`), every key optional:

    governance:
      tags: {domain: [cards, fraud, customer], pii: [true, false]}   # the tags definitions may use
      lake_formation: true          # `featurebank grants` applies LF-tags and grants in this env
      lf_tags: [domain, pii]        # the tag keys that become Lake Formation LF-tags (default: all)
      identity: arn:aws:iam::111122223333:role/fraud-ds   # whom `training-set` checks access as by default
      consumers:                    # one grant each: SELECT on every column whose tags match
        - {principal: arn:aws:iam::111122223333:role/fraud-ds, tag_expression: {domain: [cards, fraud], pii: [false]}}

PII: a source lists its personal-data columns (`pii_columns: [income, birth_year]`); a group,
aggregation or feature may say `tags: {pii: true}`. Every output column computed from a PII
column is PII — through row-level features, aggregations and derived features alike — unless
its definition says `declassified: "<reason>"` (features and derived features only). So a
hashed or banded PII column can stop being PII on purpose, with a reason, never by accident.

Pure Python, no Spark, no AWS: `load_project` calls `load_governance` and
`check_governance`; the `featurebank.governance` package and the training-set access check
read `governance_of` and `column_pii`.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from featurebank.definitions.expressions import ExpressionError, referenced_columns
from featurebank.definitions.loader import Resolver, YList, YMap, did_you_mean, read_yaml
from featurebank.definitions.model import Config, FeatureGroup, Location, Project
from featurebank.errors import ConfigError, Problem

PII = "pii"
PII_VALUES = ("true", "false")
GOVERNANCE_KEYS = ("tags", "lake_formation", "lf_tags", "identity", "consumers")
CONSUMER_KEYS = ("principal", "tag_expression", "description")
TIME_COLUMNS = ("feature_date", "feature_ts")
_PRINCIPAL = re.compile(r"^(\d{12}|arn:aws[a-z-]*:(iam|organizations)::\d{0,12}:[A-Za-z0-9+=,.@_/:-]+)$")
_TAG_KEY = re.compile(r"^[A-Za-z0-9_.:/=+@-]{1,128}$")

Lines = dict[tuple[Location, str], int]


def tag_value(value: Any) -> str:
    """A tag value as Lake Formation stores it: text; YAML booleans become `true` / `false`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class Consumer:
    """One grant conf gives: `principal` may SELECT every column whose tags match `tag_expression`.

    `tag_expression` is (key, allowed values) pairs, keys sorted, values as conf lists them.
    """

    principal: str  # an IAM role/user ARN or a 12-digit account id
    tag_expression: tuple[tuple[str, tuple[str, ...]], ...]
    description: str = ""
    loc: Location = Location("<generated>", 0)

    def allowed(self, key: str) -> tuple[str, ...] | None:
        """The values this grant allows for `key`, or None when the grant does not constrain it."""
        return dict(self.tag_expression).get(key)

    def expression_text(self) -> str:
        """`{domain: [cards, fraud], pii: [false]}`, as conf writes it."""
        return "{" + ", ".join(f"{k}: [{', '.join(v)}]" for k, v in self.tag_expression) + "}"


@dataclass(frozen=True)
class Governance:
    """One environment's `governance:` settings, checked.

    `tags` is the vocabulary (key → allowed values, text); empty means "not declared", and
    then any tag is accepted. `pii` is always a key, with values true and false.
    """

    conf_file: str
    tags: tuple[tuple[str, tuple[str, ...]], ...] = ()
    declared: bool = False  # conf declares `tags:` (then unknown tags in definitions are errors)
    lake_formation: bool = False
    lf_tags: tuple[str, ...] = ()  # the tag keys Lake Formation governs; () = every key (no vocabulary)
    identity: str | None = None
    consumers: tuple[Consumer, ...] = ()

    @property
    def vocabulary(self) -> dict[str, tuple[str, ...]]:
        """Tag key → allowed values, `pii` always included."""
        values = dict(self.tags)
        values.setdefault(PII, PII_VALUES)
        return values

    def grants_of(self, principal: str) -> tuple[Consumer, ...]:
        """Every grant conf gives `principal` (a principal may appear in several entries)."""
        return tuple(c for c in self.consumers if c.principal == principal)


# --- conf ------------------------------------------------------------------------------------


def load_governance(root: Path, config: Config, environ: Mapping[str, str] | None = None) -> Governance:
    """Read and check `governance:` of `conf/<env>.yaml`.

    Raises `ConfigError` with every problem (unknown key with a did-you-mean, a value of the
    wrong type, a consumer tag expression using a tag key or value the vocabulary does not
    know, an unreadable principal, Lake Formation without `pii` among `lf_tags`), each at
    `conf/<env>.yaml:line`.
    """
    rel = f"conf/{config.env}.yaml"
    if not config.governance:
        return Governance(conf_file=rel)
    environ = os.environ if environ is None else environ
    problems: list[Problem] = []
    documents = read_yaml(root / rel, rel, problems, Resolver(dict(config.variables), environ, rel))
    data = documents[0].data.get("governance") if documents and isinstance(documents[0].data, YMap) else None
    if not isinstance(data, YMap):  # the loader already accepted it as a mapping; be safe anyway
        raise ConfigError(Problem(rel, config.loc.line, "'governance' must be a mapping; write governance: {...}"))

    def problem(line: int, message: str) -> None:
        problems.append(Problem(rel, line, message))

    for key in data:
        if key not in GOVERNANCE_KEYS:
            problem(data.line_of(key), f"unknown governance key '{key}'"
                                       f"{did_you_mean(key, GOVERNANCE_KEYS) or '; remove it (allowed: ' + ', '.join(GOVERNANCE_KEYS) + ')'}")

    tags: dict[str, tuple[str, ...]] = {}
    raw_tags = data.get("tags")
    if raw_tags is not None:
        if not isinstance(raw_tags, YMap):
            problem(data.line_of("tags"), "governance.tags must map each tag key to its allowed values; "
                                          "write tags: {domain: [cards, fraud], pii: [true, false]}")
        else:
            for key, values in raw_tags.items():
                line = raw_tags.line_of(key)
                if not _TAG_KEY.match(key):
                    problem(line, f"tag key '{key}' is not a valid Lake Formation tag key; use letters, digits and _.:/=+@-")
                if not isinstance(values, YList) or not values or any(isinstance(v, (YMap, YList)) or v is None for v in values):
                    problem(line, f"governance.tags.{key} must be a non-empty list of values; write {key}: [a, b]")
                    continue
                tags[key] = tuple(tag_value(v) for v in values)
            if PII in tags and set(tags[PII]) != set(PII_VALUES):
                problem(raw_tags.line_of(PII), f"governance.tags.pii must be [true, false], not [{', '.join(tags[PII])}]; "
                                               "featurebank computes pii for every column")
            tags[PII] = PII_VALUES
    vocabulary = dict(tags) or {PII: PII_VALUES}

    lake_formation = data.get("lake_formation", False)
    if not isinstance(lake_formation, bool):
        problem(data.line_of("lake_formation"), f"governance.lake_formation must be true or false, not {lake_formation!r}")
        lake_formation = False

    # Without a declared vocabulary every tag key a definition uses counts (lf_tags = ()).
    lf_tags: tuple[str, ...] = tuple(vocabulary) if raw_tags is not None else ()
    raw_lf = data.get("lf_tags")
    if raw_lf is not None:
        if not isinstance(raw_lf, YList) or not all(isinstance(k, str) for k in raw_lf):
            problem(data.line_of("lf_tags"), "governance.lf_tags must be a list of tag keys; write lf_tags: [domain, pii]")
        else:
            lf_tags = tuple(raw_lf)
            for index, key in enumerate(raw_lf):
                if key not in vocabulary:
                    problem(raw_lf.line_of(index), f"LF-tag '{key}' is not a tag key of governance.tags"
                                                   f"{did_you_mean(key, vocabulary) or '; declare it under governance.tags with its values'}")
    if lake_formation and raw_tags is None:
        problem(data.line_of("lake_formation"), "Lake Formation needs the LF-tag values; declare them under governance.tags, "
                                                "e.g. tags: {domain: [cards, fraud], pii: [true, false]}")
    elif lake_formation and PII not in lf_tags:
        problem(data.line_of("lf_tags"), "governance.lf_tags must include pii when lake_formation is on, "
                                         "or PII columns are not protected; add pii to lf_tags")
    if lake_formation and config.catalog_type != "glue":
        problem(data.line_of("lake_formation"), "Lake Formation governs tables of the Glue Data Catalog, but this environment "
                                                "has no Glue catalog; set catalog: {type: glue, database: <name>} or lake_formation: false")

    identity = data.get("identity")
    if identity is not None and (not isinstance(identity, (str, int)) or not _PRINCIPAL.match(str(identity))):
        problem(data.line_of("identity"), f"governance.identity '{identity}' is not a principal; write an IAM role ARN "
                                          "(arn:aws:iam::<account>:role/<name>) or a 12-digit account id")
        identity = None

    consumers: list[Consumer] = []
    raw_consumers = data.get("consumers")
    if raw_consumers is not None:
        if not isinstance(raw_consumers, YList):
            problem(data.line_of("consumers"), "governance.consumers must be a list; write - {principal: ..., tag_expression: {...}}")
        else:
            for index, item in enumerate(raw_consumers):
                consumer = _consumer(item, raw_consumers.line_of(index), rel, vocabulary, lf_tags, problem)
                if consumer is not None:
                    consumers.append(consumer)
    if problems:
        raise ConfigError(problems)
    return Governance(
        conf_file=rel,
        tags=tuple(tags.items()),
        declared=raw_tags is not None,
        lake_formation=lake_formation,
        lf_tags=lf_tags,
        identity=None if identity is None else str(identity),
        consumers=tuple(consumers),
    )


def _consumer(item: Any, line: int, rel: str, vocabulary: dict[str, tuple[str, ...]], lf_tags: tuple[str, ...],
              problem: Any) -> Consumer | None:
    if not isinstance(item, YMap):
        problem(line, "each consumer must be a mapping; write - {principal: arn:aws:iam::<account>:role/<name>, "
                      "tag_expression: {pii: [false]}}")
        return None
    for key in item:
        if key not in CONSUMER_KEYS:
            problem(item.line_of(key), f"unknown consumer key '{key}'"
                                       f"{did_you_mean(key, CONSUMER_KEYS) or '; remove it (allowed: ' + ', '.join(CONSUMER_KEYS) + ')'}")
    principal = item.get("principal")
    if principal is None:
        problem(line, "this consumer has no principal; add principal: arn:aws:iam::<account>:role/<name> (or an account id)")
        return None
    principal = str(principal)
    if not _PRINCIPAL.match(principal):
        problem(item.line_of("principal"), f"consumer principal '{principal}' is not an IAM role or user ARN "
                                           "(arn:aws:iam::<account>:role/<name>) nor a 12-digit account id; fix it")
    expression = item.get("tag_expression")
    if not isinstance(expression, YMap) or not expression:
        problem(item.line_of("tag_expression"), f"consumer {principal} needs a tag_expression mapping tag keys to the values "
                                                "it may read; write tag_expression: {domain: [cards], pii: [false]}")
        return None
    pairs: list[tuple[str, tuple[str, ...]]] = []
    for key, values in expression.items():
        key_line = expression.line_of(key)
        if lf_tags and key not in lf_tags:
            problem(key_line, f"consumer {principal} grants by tag '{key}', which is not an LF-tag"
                              f"{did_you_mean(key, lf_tags) or ' (LF-tags: ' + ', '.join(lf_tags) + ')'}")
            continue
        if not isinstance(values, YList) or not values or any(isinstance(v, (YMap, YList)) or v is None for v in values):
            problem(key_line, f"tag_expression.{key} of consumer {principal} must be a non-empty list; write {key}: [a, b]")
            continue
        texts = tuple(tag_value(v) for v in values)
        for value in texts:
            if key in vocabulary and value not in vocabulary[key]:
                problem(key_line, f"consumer {principal} allows {key}={value}, which governance.tags does not list"
                                  f"{did_you_mean(value, vocabulary.get(key, ())) or ' (values: ' + ', '.join(vocabulary.get(key, ())) + ')'}")
        pairs.append((key, texts))
    description = item.get("description")
    return Consumer(principal, tuple(sorted(pairs)), "" if description is None else str(description), Location(rel, line))


@lru_cache(maxsize=32)
def _cached(root: str, config: Config) -> Governance:
    return load_governance(Path(root), config)


def governance_of(project: Project) -> Governance:
    """The checked `governance:` settings of the project's environment (read once per conf)."""
    return _cached(str(project.root), project.config)


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
