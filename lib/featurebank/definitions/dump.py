"""Definitions → YAML text that `load_project` reads back to the same definitions.

Used by the round-trip property test, and by anything that writes definitions for a user
(scaffolding, migrations). Sources are written with their resolved location, so the text
is tied to the environment it was loaded for.
"""

from __future__ import annotations

from typing import Any

import yaml

from featurebank.definitions.model import (
    DEFAULT_LAG_DAYS,
    Aggregation,
    Check,
    Entity,
    Feature,
    FeatureGroup,
    Project,
    Readiness,
    Source,
    TrainingSet,
)


def _thaw(value: Any) -> Any:
    """Tuples of pairs → mappings, other tuples → lists (the inverse of the loader's freeze)."""
    if isinstance(value, tuple):
        if value and all(isinstance(v, tuple) and len(v) == 2 and isinstance(v[0], str) for v in value):
            return {k: _thaw(v) for k, v in value}
        return [_thaw(v) for v in value]
    return value


def _pairs(value: tuple[tuple[str, Any], ...]) -> dict[str, Any]:
    return {k: _thaw(v) for k, v in value}


def _optional(document: dict[str, Any], key: str, value: Any) -> None:
    """Set `key` unless `value` is absent or empty (what the loader reads as absent)."""
    if value is None or value == "" or (isinstance(value, (list, tuple, dict)) and not value):
        return
    document[key] = value


def entity_document(entity: Entity) -> dict[str, Any]:
    """An entity as the mapping a definitions file holds."""
    document: dict[str, Any] = {"kind": "entity", "name": entity.name, "keys": list(entity.keys)}
    _optional(document, "description", entity.description)
    return document


def source_document(source: Source) -> dict[str, Any]:
    """A source as the mapping a definitions file holds (location as resolved)."""
    document: dict[str, Any] = {"kind": "source", "name": source.name}
    if source.group is not None:
        document["group"] = source.group
    elif source.format == "table":
        document["format"] = "table"
        document["table"] = source.location
    else:
        document["format"] = source.format
        document["path"] = source.location
    _optional(document, "timestamp", source.timestamp)
    _optional(document, "columns", dict(source.columns))
    _optional(document, "options", _pairs(source.options))
    _optional(document, "pii_columns", list(source.pii_columns))
    if source.lag_days != DEFAULT_LAG_DAYS:
        document["lag"] = f"{source.lag_days}d"
    if source.readiness is not None:
        document["readiness"] = _readiness(source.readiness)
    _optional(document, "description", source.description)
    return document


def _readiness(readiness: Readiness) -> dict[str, Any]:
    if readiness.kind == "marker":
        return {"marker": readiness.marker}
    if readiness.kind == "watermark":
        return {"watermark": readiness.watermark}
    bounds = {"min": readiness.daily_min, "max": readiness.daily_max}
    return {"daily_rows": {k: v for k, v in bounds.items() if v is not None}}


def _aggregation(aggregation: Aggregation) -> dict[str, Any]:
    item: dict[str, Any] = {"name": aggregation.name, "function": aggregation.function}
    _optional(item, "expr", aggregation.expr)
    item["windows"] = [f"{w}d" for w in aggregation.windows]
    _optional(item, "description", aggregation.description)
    _optional(item, "tags", _pairs(aggregation.tags))
    return item


def _feature(feature: Feature) -> dict[str, Any]:
    item: dict[str, Any] = {"name": feature.name, "expr": feature.expr}
    _optional(item, "description", feature.description)
    _optional(item, "tags", _pairs(feature.tags))
    if feature.declassified is not None:
        item["declassified"] = feature.declassified
    return item


def _check(check: Check) -> dict[str, Any]:
    item: dict[str, Any] = {check.expectation: _pairs(check.kwargs)}
    if check.severity != "error":
        item["severity"] = check.severity
    return item


def group_document(group: FeatureGroup) -> dict[str, Any]:
    """A feature group as the mapping a definitions file holds."""
    document: dict[str, Any] = {"kind": "feature_group", "name": group.name, "entity": group.entity, "source": group.source}
    _optional(document, "filter", group.filter)
    _optional(document, "description", group.description)
    _optional(document, "owner", group.owner)
    _optional(document, "tags", _pairs(group.tags))
    if group.ttl_days is not None:
        document["ttl"] = f"{group.ttl_days}d"
    _optional(document, "aggregations", [_aggregation(a) for a in group.aggregations])
    _optional(document, "derived", [_feature(d) for d in group.derived])
    _optional(document, "features", [_feature(f) for f in group.features])
    _optional(document, "checks", [_check(c) for c in group.checks])
    if group.empty_input != "refused":
        document["empty_input"] = group.empty_input
    return document


def training_set_document(training_set: TrainingSet) -> dict[str, Any]:
    """A training set as the mapping a definitions file holds."""
    document: dict[str, Any] = {"kind": "training_set", "name": training_set.name, "features": list(training_set.features)}
    _optional(document, "description", training_set.description)
    _optional(document, "owner", training_set.owner)
    return document


def dump_documents(documents: list[dict[str, Any]]) -> str:
    """Mappings → one multi-document YAML text (keys in the order given)."""
    return yaml.safe_dump_all(documents, sort_keys=False, allow_unicode=True, width=1000, default_flow_style=False)


def dump_project(project: Project) -> str:
    """Every definition of a project as one multi-document YAML text: entities, sources,
    feature groups, training sets, each in name order."""
    documents = [entity_document(e) for _, e in sorted(project.entities.items())]
    documents += [source_document(s) for _, s in sorted(project.sources.items())]
    documents += [group_document(g) for _, g in sorted(project.groups.items())]
    documents += [training_set_document(t) for _, t in sorted(project.training_sets.items())]
    return dump_documents(documents)
