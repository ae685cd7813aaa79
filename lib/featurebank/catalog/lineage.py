"""Lineage as a graph: source columns → aggregations/row features → derived features → training sets.

Built from the compiled groups' parsed lineage (sqlglot trees, never regexes) and the training sets'
resolved `group:feature` references (`definitions.refs.resolve_features`, the one resolver). Pure:
no Spark, no I/O. Node ids are stable strings, so tests and the HTML can refer to them:

- `source:<source>.<column>` a source column (`source:<source>.*` for "every event", what
  `count` without an expression reads);
- `feature:<group>.<feature>` a feature computed from source columns (layer 1: an
  aggregation output or a row-level feature) or from the group's own columns (layer 2: derived);
- `training_set:<name>` a training set (layer 3).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from featurebank.compile.semantics import group_semantics
from featurebank.definitions.expressions import ExpressionError, referenced_columns
from featurebank.definitions.model import Project
from featurebank.compile.group import CompiledGroup

LAYER_SOURCE, LAYER_FEATURE, LAYER_DERIVED, LAYER_TRAINING = 0, 1, 2, 3
LAYER_TITLES = ("Source columns", "Aggregations & features", "Derived features", "Training sets")
EVERY_EVENT = "*"


@dataclass(frozen=True)
class Node:
    """One box of the lineage graph."""

    id: str
    label: str
    layer: int
    kind: str  # source_column | aggregation | row | derived | training_set
    group: str = ""  # owning feature group (features), source name (source columns)
    detail: str = ""  # tooltip: the expression or the meaning


@dataclass
class LineageGraph:
    """Nodes and directed edges (upstream id, downstream id); `filters` per source: the filter
    each group applies before aggregating, shown beside the source columns."""

    nodes: dict[str, Node] = field(default_factory=dict)
    edges: set[tuple[str, str]] = field(default_factory=set)
    filters: dict[str, str] = field(default_factory=dict)  # group -> filter SQL

    def add(self, node: Node) -> None:
        self.nodes.setdefault(node.id, node)

    def connect(self, upstream: str, downstream: str) -> None:
        self.edges.add((upstream, downstream))

    def upstream_of(self, node_id: str) -> set[str]:
        """Ids with an edge into `node_id`."""
        return {a for a, b in self.edges if b == node_id}

    def downstream_of(self, node_id: str) -> set[str]:
        """Ids `node_id` has an edge to."""
        return {b for a, b in self.edges if a == node_id}

    def layers(self) -> list[list[Node]]:
        """Nodes by layer (0..3), each in insertion order."""
        result: list[list[Node]] = [[] for _ in LAYER_TITLES]
        for node in self.nodes.values():
            result[node.layer].append(node)
        return result


def source_node_id(source: str, column: str) -> str:
    return f"source:{source}.{column}"


def feature_node_id(group: str, feature: str) -> str:
    return f"feature:{group}.{feature}"


def training_node_id(name: str) -> str:
    return f"training_set:{name}"


def _refs(expr: str) -> tuple[str, ...]:
    try:
        return referenced_columns(expr)
    except ExpressionError:
        return ()


def add_group(graph: LineageGraph, compiled: CompiledGroup) -> None:
    """Add one group's columns and features to `graph` (from `compiled.lineage` and its expressions)."""
    source = compiled.source.name
    meanings = group_semantics(compiled)
    if compiled.filter:
        graph.filters[compiled.group] = compiled.filter

    def source_column(column: str) -> str:
        node_id = source_node_id(source, column)
        label = "every event (rows)" if column == EVERY_EVENT else column
        graph.add(Node(node_id, label, LAYER_SOURCE, "source_column", source, f"{source}.{column}"))
        return node_id

    for agg in compiled.aggregates:
        columns = _refs(agg.expr) if agg.expr else (EVERY_EVENT,)
        for name in agg.output_names():
            node = feature_node_id(compiled.group, name)
            graph.add(Node(node, name, LAYER_FEATURE, "aggregation", compiled.group, meanings[name].sentence))
            for column in columns:
                graph.connect(source_column(column), node)
    for feature in compiled.features:
        node = feature_node_id(compiled.group, feature.name)
        graph.add(Node(node, feature.name, LAYER_FEATURE, "row", compiled.group, meanings[feature.name].sentence))
        for column in _refs(feature.expr):
            graph.connect(source_column(column), node)
    own = set(compiled.feature_columns)
    for derived in compiled.derived:
        node = feature_node_id(compiled.group, derived.name)
        graph.add(Node(node, derived.name, LAYER_DERIVED, "derived", compiled.group, meanings[derived.name].sentence))
        for column in _refs(derived.expr):
            # a derived feature reads the group's own outputs; a key or time column is a source column
            graph.connect(feature_node_id(compiled.group, column) if column in own else source_column(column), node)


def add_training_sets(graph: LineageGraph, project: Project, only_groups: set[str] | None = None) -> None:
    """Connect every feature to the training sets that select it (optionally only features of
    `only_groups`; a training set with no such feature is left out)."""
    from featurebank.definitions.refs import resolve_features

    for name, training_set in sorted(project.training_sets.items()):
        try:
            selected = resolve_features(project, training_set.features, where=str(training_set.loc))
        except Exception:  # a broken reference is `validate`'s to report; lineage shows what resolves
            continue
        chosen = [s for s in selected if only_groups is None or s.group in only_groups]
        if not chosen:
            continue
        node = training_node_id(name)
        graph.add(Node(node, name, LAYER_TRAINING, "training_set", "", training_set.description))
        for s in chosen:
            feature = feature_node_id(s.group, s.feature)
            if feature in graph.nodes:
                graph.connect(feature, node)


def group_lineage(project: Project, compiled: CompiledGroup) -> LineageGraph:
    """One group's lineage: its source columns, features, derived features and the training
    sets that use them."""
    graph = LineageGraph()
    add_group(graph, compiled)
    add_training_sets(graph, project, {compiled.group})
    return graph


def project_lineage(project: Project, groups: dict[str, CompiledGroup]) -> LineageGraph:
    """Every group's lineage in one graph (in `groups` order), with every training set."""
    graph = LineageGraph()
    for compiled in groups.values():
        add_group(graph, compiled)
    add_training_sets(graph, project)
    return graph
