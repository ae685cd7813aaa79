"""The exact meaning of every feature, in words, from its definition (pure: no Spark, no I/O).

A data scientist reading `spend_sum_30d` needs more than "Total settled card spend": which
events, which days, what an empty window gives. `group_semantics` writes that sentence for
every feature of a group from its `CompiledGroup`, following SPEC's rules: the row for
snapshot date D aggregates the filtered source events with timestamp in `[D - window, D)`,
count functions give 0 over an empty window and every other function NULL; derived features
are SQL over the row's own columns; row-level features are SQL over one source row.
"""

from __future__ import annotations

from dataclasses import dataclass

from featurebank.aggregators import aggregator
from featurebank.definitions.expressions import ExpressionError, referenced_columns
from featurebank.compile.group import CompiledGroup


@dataclass(frozen=True)
class FeatureSemantics:
    """What one feature column means.

    `kind` is `aggregation`, `derived` or `row`. `sentence` is the full meaning in words;
    `expression` the SQL it evaluates (the aggregate call for aggregations); `inputs` the
    columns the expression reads directly (source columns, or for derived features the
    group's own columns); `source_columns` every source column it depends on, transitively.
    """

    feature: str
    kind: str
    sentence: str
    expression: str
    inputs: tuple[str, ...]
    source_columns: tuple[str, ...]
    window_days: int | None = None
    function: str | None = None


def window_phrase(days: int) -> str:
    """`the 30 days before the snapshot date` (never the snapshot date itself)."""
    unit = "day" if days == 1 else f"{days} days"
    return f"the {unit} before the snapshot date"


def _code(text: str) -> str:
    return text.strip()


def _filter_phrase(plan: CompiledGroup) -> str:
    return f", only rows where {_code(plan.filter)}" if plan.filter else ""


def aggregation_sentence(plan: CompiledGroup, function: str, expr: str | None, days: int) -> str:
    """The meaning of one aggregation output, e.g.

    `sum of amount over card_transactions events in the 30 days before the snapshot date D
    (event_ts in [D - 30 days, D)), only rows where status = 'SETTLED'; NULL when there is none.`
    """
    function_of = aggregator(function)
    head = function_of.sentence(_code(expr) if expr else None, plan.source.name)
    timestamp = plan.source.timestamp or "the event time"
    span = "1 day" if days == 1 else f"{days} days"
    return (
        f"{head[0].upper()}{head[1:]} in {window_phrase(days)} D "
        f"({timestamp} in [D - {span}, D), D itself excluded){_filter_phrase(plan)}; {function_of.empty_sentence}."
    )


def derived_sentence(expr: str, inputs: tuple[str, ...], source_columns: tuple[str, ...]) -> str:
    """The meaning of a derived feature: its SQL over the same row's columns."""
    uses = ", ".join(inputs) if inputs else "no columns"
    sources = f" (source columns: {', '.join(source_columns)})" if source_columns else ""
    return f"Computed on each snapshot row as {_code(expr)}, from this group's {uses}{sources}."


def row_sentence(plan: CompiledGroup, expr: str, inputs: tuple[str, ...]) -> str:
    """The meaning of a row-level feature: its SQL over one source row, valid from its timestamp."""
    timestamp = plan.source.timestamp or "its timestamp"
    uses = ", ".join(inputs) if inputs else "no columns"
    ttl = (
        f" A training set takes the latest row at or before the spine time and ignores rows older than "
        f"{plan.ttl_days} days."
        if plan.ttl_days is not None
        else " A training set takes the latest row at or before the spine time."
    )
    return (
        f"The value of {_code(expr)} on each {plan.source.name} row{_filter_phrase(plan)} (reads {uses}), "
        f"valid from that row's {timestamp}.{ttl}"
    )


def _columns(expr: str | None) -> tuple[str, ...]:
    if not expr:
        return ()
    try:
        return referenced_columns(expr)
    except ExpressionError:  # validate refuses such definitions; describe them without inputs
        return ()


def group_semantics(plan: CompiledGroup) -> dict[str, FeatureSemantics]:
    """Every feature column of the plan's group (table order) with its meaning in words."""
    lineage = dict(plan.lineage)
    meanings: dict[str, FeatureSemantics] = {}
    for agg in plan.aggregates:
        inputs = _columns(agg.expr)
        call = f"{agg.function}({agg.expr or '*'})"
        for days, name in zip(agg.windows, agg.output_names()):
            meanings[name] = FeatureSemantics(
                name, "aggregation", aggregation_sentence(plan, agg.function, agg.expr, days), call, inputs,
                lineage.get(name, inputs), days, agg.function,
            )
    for feature in plan.features:
        inputs = _columns(feature.expr)
        meanings[feature.name] = FeatureSemantics(
            feature.name, "row", row_sentence(plan, feature.expr, inputs), feature.expr, inputs,
            lineage.get(feature.name, inputs),
        )
    for derived in plan.derived:
        inputs = _columns(derived.expr)
        sources = lineage.get(derived.name, ())
        meanings[derived.name] = FeatureSemantics(
            derived.name, "derived", derived_sentence(derived.expr, inputs, sources), derived.expr, inputs, sources,
        )
    return {name: meanings[name] for name in plan.feature_columns if name in meanings}
