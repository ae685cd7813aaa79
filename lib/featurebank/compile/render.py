"""What `featurebank plan` prints: a run plan as a person reads it, and how it changes the table.

Pure functions of plain values (no Spark, no I/O), so golden files pin the text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from featurebank.definitions.model import DEFAULT_LAG_DAYS
from featurebank.redact import redact

if TYPE_CHECKING:
    from featurebank.compile.group import CompiledGroup
    from featurebank.compile.run import Plan


def text_table(rows: Sequence[tuple[str, ...]], indent: str = "") -> list[str]:
    """`rows` as lines of left-aligned columns two spaces apart (trailing spaces dropped)."""
    if not rows:
        return []
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [indent + "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]


def _arguments(kwargs: tuple[tuple[str, Any], ...]) -> str:
    def show(value: Any) -> str:
        if isinstance(value, tuple):
            if value and all(isinstance(v, tuple) and len(v) == 2 for v in value):
                return "{" + ", ".join(f"{k}: {show(v)}" for k, v in value) + "}"
            return "[" + ", ".join(show(v) for v in value) + "]"
        return str(value)

    return ", ".join(f"{k}={show(v)}" for k, v in kwargs)


def _readiness_lines(plan: CompiledGroup) -> list[str]:
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
    lines.append(f"  data hash:      {plan.data_hash} (what the values depend on)")
    lines.append(f"  metadata hash:  {plan.metadata_hash} (descriptions, owners, tags, checks)")
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
        lines += text_table([(a.name, f"{a.function}({a.expr or '*'})", "over " + ", ".join(f"{w}d" for w in a.windows))
                             for a in plan.aggregates], "  ")
        lines += ["", "Derived:"]
        lines += [f"  {d.name} = {d.expr}" for d in plan.derived] or ["  (none)"]
    else:
        lines += ["", "Features:"]
        lines += [f"  {f.name} = {f.expr}" for f in plan.features]
        if plan.ttl_days is not None:
            lines.append(f"  ttl: {plan.ttl_days} days (a training set ignores rows older than that)")
    lines += ["", "Output columns:"]
    lines += text_table([(c.name, c.type, c.role) for c in plan.output], "  ")
    lines += ["", "Checks:"]
    lines += text_table([(c.severity, f"{c.expectation}({_arguments(c.kwargs)})", c.origin) for c in plan.checks], "  ")
    lines += ["", "Writes:", f"  table:    {plan.table_path} (Delta, partitioned by feature_date)"]
    lines.append(f"  replaces: feature_date in [{plan.start}, {plan.end}] in one commit; other dates untouched")
    return redact("\n".join(lines) + "\n")  # no ${env:...} value is printed
