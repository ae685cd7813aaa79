"""Inline SVG for the docs site: the lineage graph, the run-history chart, small histograms.

Pure string building (no Spark, no network, no JS needed to draw). The lineage layout is a
simple layered one: one column per layer (source columns, features, derived, training sets),
nodes ordered within a column by the barycentre of their neighbours in the previous column
(then the next), which keeps most edges short and uncrossed for catalogs of this size.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from html import escape
from zoneinfo import ZoneInfo

from featurebank.catalog.lineage import LAYER_TITLES, LineageGraph, Node
from featurebank.io.runlog import RunRecord

NODE_W, NODE_H, GAP_Y, GAP_X, TOP = 210, 24, 8, 90, 34
MAX_LABEL = 29


def _label(text: str) -> str:
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"


def _order(columns: list[list[Node]], graph: LineageGraph) -> list[list[Node]]:
    """Barycentre ordering: layer 1 keeps definition order; others follow their neighbours."""
    position: dict[str, float] = {}

    def place(column: list[Node]) -> None:
        for i, node in enumerate(column):
            position[node.id] = float(i)

    if len(columns) > 1:
        place(columns[1])
    ordered = [list(c) for c in columns]
    for index in (0, 2, 3):
        if index >= len(ordered):
            continue
        column = ordered[index]

        def centre(node: Node) -> float:
            neighbours = [position[n] for n in graph.downstream_of(node.id) | graph.upstream_of(node.id) if n in position]
            return sum(neighbours) / len(neighbours) if neighbours else float(len(position))

        keyed = [(centre(node), i, node) for i, node in enumerate(column)]
        ordered[index] = [node for _, _, node in sorted(keyed, key=lambda t: (t[0], t[1]))]
        place(ordered[index])
    return ordered


def lineage_svg(graph: LineageGraph, link: dict[str, str] | None = None) -> str:
    """The lineage graph as an inline SVG; `link` maps node ids to hrefs (e.g. training sets)."""
    link = link or {}
    layers = _order(graph.layers(), graph)
    shown = [(i, column) for i, column in enumerate(layers) if column]
    if not shown:
        return "<p class='muted'>No lineage.</p>"
    tallest = max(len(column) for _, column in shown)
    height = TOP + tallest * (NODE_H + GAP_Y) + 30
    width = len(shown) * NODE_W + (len(shown) - 1) * GAP_X + 4
    coords: dict[str, tuple[float, float]] = {}
    parts = []
    for slot, (layer, column) in enumerate(shown):
        x = 2.0 + slot * (NODE_W + GAP_X)
        offset = TOP + (tallest - len(column)) * (NODE_H + GAP_Y) / 2
        parts.append(f"<text class='title' x='{x}' y='14'>{escape(LAYER_TITLES[layer])}</text>")
        for i, node in enumerate(column):
            coords[node.id] = (x, offset + i * (NODE_H + GAP_Y))
    edges = []
    for upstream, downstream in sorted(graph.edges):
        if upstream not in coords or downstream not in coords:
            continue
        (x1, y1), (x2, y2) = coords[upstream], coords[downstream]
        x1, y1, y2 = x1 + NODE_W, y1 + NODE_H / 2, y2 + NODE_H / 2
        bend = (x2 - x1) / 2
        edges.append(
            f"<path class='edge' data-from='{escape(upstream)}' data-to='{escape(downstream)}' "
            f"d='M{x1:.1f},{y1:.1f} C{x1 + bend:.1f},{y1:.1f} {x2 - bend:.1f},{y2:.1f} {x2:.1f},{y2:.1f}'/>"
        )
    nodes = []
    for node_id, (x, y) in coords.items():
        node = graph.nodes[node_id]
        tip = escape(node.detail or node.label)
        body = (f"<rect x='{x:.1f}' y='{y:.1f}' width='{NODE_W}' height='{NODE_H}' rx='6'/>"
                f"<text x='{x + 9:.1f}' y='{y + 16:.1f}'>{escape(_label(node.label))}</text><title>{tip}</title>")
        if node_id in link:
            body = f"<a href='{escape(link[node_id])}'>{body}</a>"
        nodes.append(f"<g class='node {node.kind}' data-id='{escape(node_id)}'>{body}</g>")
    captions = []
    if graph.filters:
        text = "; ".join(f"{g}: where {f}" for g, f in sorted(graph.filters.items()))
        captions.append(f"<text class='caption' x='2' y='{height - 8}'>filter {escape(_clip(text, 140))}</text>")
    return (f"<svg class='lineage' xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
            f"viewBox='0 0 {width} {height}' role='img' aria-label='lineage graph'>"
            + "".join(parts + edges + nodes + captions) + "</svg>")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def histogram_svg(bins: tuple[tuple[float, float, int], ...], width: int = 132, height: int = 34) -> str:
    """A small bar chart of (low, high, rows) bins; each bar's tooltip gives its range and rows."""
    if not bins:
        return ""
    top = max(rows for _, _, rows in bins) or 1
    bar = width / len(bins)
    rects = []
    for i, (low, high, rows) in enumerate(bins):
        h = 0 if rows == 0 else max(1.5, (height - 2) * rows / top)
        cls = " class='zero'" if rows == 0 else ""
        rects.append(f"<rect{cls} x='{i * bar + .5:.1f}' y='{height - max(h, 1.5):.1f}' width='{max(bar - 1, 1):.1f}' "
                     f"height='{max(h, 1.5):.1f}'><title>{_num(low)} – {_num(high)}: {rows} rows</title></rect>")
    return (f"<svg class='histo' xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
            f"viewBox='0 0 {width} {height}' role='img' aria-label='histogram'>{''.join(rects)}</svg>")


def _num(value: float | None) -> str:
    if value is None:
        return "–"
    if abs(value) >= 1e6 or (value != 0 and abs(value) < 1e-3):
        return f"{value:.3g}"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.1f}"


def published_through(runs: list[RunRecord]) -> list[date | None]:
    """For runs oldest first: the last snapshot date the table held after each run (the running
    maximum of published runs' end dates; None before the first publish)."""
    latest: date | None = None
    result = []
    for run in runs:
        if run.status == "published" and (latest is None or run.end_date > latest):
            latest = run.end_date
        result.append(latest)
    return result


def runs_chart_svg(runs: tuple[RunRecord, ...], timezone_name: str, width: int = 1100, height: int = 220) -> str:
    """Rows written per run (bars, coloured by status) and the last snapshot date published as
    of each run (step line, right axis: how freshness advanced), oldest run on the left; at
    most the last 60 runs."""
    history = list(reversed(runs[:60]))
    if not history:
        return "<p class='muted'>No runs yet.</p>"
    left, right, top, bottom = 60, 96, 30, 38
    plot_w, plot_h = width - left - right, height - top - bottom
    most = max(r.rows_written for r in history) or 1
    through = published_through(history)
    known = [d for d in through if d is not None]
    first_day = min(known) if known else None
    span = max(((max(known) - first_day).days if known and first_day else 0), 1)
    step = plot_w / len(history)
    bar_w = min(step * .6, 44.0)
    out = [f"<line class='axis' x1='{left}' y1='{top + plot_h}' x2='{left + plot_w}' y2='{top + plot_h}'/>"]
    for k in range(0, 5):
        y = top + plot_h - plot_h * k / 4
        out.append(f"<line class='gridline' x1='{left}' y1='{y:.1f}' x2='{left + plot_w}' y2='{y:.1f}'/>")
        tick = most * k / 4
        out.append(f"<text x='{left - 6}' y='{y + 4:.1f}' text-anchor='end'>"
                   f"{_num(round(tick) if most >= 8 else tick)}</text>")
        if first_day is not None:
            label = first_day + timedelta(days=round(span * k / 4))
            out.append(f"<text x='{left + plot_w + 6}' y='{y + 4:.1f}'>{label}</text>")
    points = []
    for i, (run, day) in enumerate(zip(history, through)):
        centre = left + i * step + step / 2
        h = plot_h * run.rows_written / most
        tip = (f"{run.run_id}: {run.status}, {run.rows_written:,} rows, snapshot dates {run.start_date} .. "
               f"{run.end_date}; published through {day or 'nothing yet'}")
        out.append(f"<rect class='bar {escape(run.status)}' x='{centre - bar_w / 2:.1f}' y='{top + plot_h - h:.1f}' "
                   f"width='{max(bar_w, 1):.1f}' height='{max(h, 1):.1f}' rx='2'><title>{escape(tip)}</title></rect>")
        if day is not None and first_day is not None:
            points.append((centre, top + plot_h - plot_h * (day - first_day).days / span))
    if points:
        path = f"M{points[0][0]:.1f},{points[0][1]:.1f}"
        for (x0, y0), (x1, y1) in zip(points, points[1:]):
            path += f" L{x1:.1f},{y0:.1f} L{x1:.1f},{y1:.1f}"
        out.append(f"<path class='lag' d='{path}'/>")
        out += [f"<circle class='lagdot' cx='{x:.1f}' cy='{y:.1f}' r='3'/>" for x, y in points]
    for i in sorted({0, len(history) - 1, (len(history) - 1) // 2}):
        when = history[i].started_at.astimezone(ZoneInfo(timezone_name)).strftime("%Y-%m-%d %H:%M")
        out.append(f"<text x='{left + i * step + step / 2:.1f}' y='{height - 14}' text-anchor='middle'>{when}</text>")
    out.append(f"<text x='{left - 6}' y='{top - 16}' text-anchor='end'>rows</text>")
    out.append(f"<text x='{left + plot_w + 6}' y='{top - 16}'>published through</text>")
    return (f"<svg class='chart' xmlns='http://www.w3.org/2000/svg' width='100%' viewBox='0 0 {width} {height}' "
            f"preserveAspectRatio='xMinYMin meet' role='img' aria-label='run history'>{''.join(out)}</svg>")


def format_number(value: float | None) -> str:
    """A number as the site shows it (thousands separators, ~4 significant digits)."""
    return _num(value)


def format_instant(instant: datetime, timezone_name: str) -> str:
    """`2024-03-01 10:15` in the project time zone."""
    return instant.astimezone(ZoneInfo(timezone_name)).strftime("%Y-%m-%d %H:%M")
