"""Which feature, expression and row an ANSI-mode failure came from (issue 24).

With `spark.sql.ansi.enabled=true` (io/spark.py) a division by zero, an overflow or an invalid
cast fails the whole Spark job with Spark's error class and, for SQL text, the fragment that
failed (`spend / n`), but without the group's feature or any row. `locate` finds them: the
candidate expressions are the group's filter, aggregation inputs and row-level features
(evaluated over the source events) and its derived features (over the computed batch); the
one whose text holds the fragment (or, without one, the first with a failing row) is named,
with an example row's keys, found by a predicate that is true exactly where an ANSI operation
of that expression fails: a divisor equal to 0, a `try_cast`/`try_add`/`try_subtract`/
`try_multiply` that gives NULL for non-NULL inputs. DataFrames in, a small result out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from featurebank.compile.run import Plan

MAX_KEYS_SHOWN = 5  # key columns quoted in the sentence


@dataclass(frozen=True)
class AnsiCulprit:
    """The feature (or `filter`), its expression, and an example row's keys (empty: none found)."""

    feature: str
    expression: str
    keys: tuple[tuple[str, Any], ...] = ()


def _squash(sql: str) -> str:
    return re.sub(r"\s+", "", sql).lower()


def candidates(plan: Plan) -> list[tuple[str, str, str]]:
    """(feature, expression, `events` | `batch`): every user expression a run evaluates."""
    found: list[tuple[str, str, str]] = []
    if plan.filter:
        found.append(("filter", plan.filter, "events"))
    found += [(a.name, a.expr, "events") for a in plan.aggregates if a.expr]
    found += [(f.name, f.expr, "events") for f in plan.features]
    found += [(d.name, d.expr, "batch") for d in plan.derived]
    return found


def failing_predicate(expression: str) -> str | None:
    """Spark SQL that is true on a row where evaluating `expression` under ANSI mode fails
    (None when the expression holds no operation ANSI mode can fail on)."""
    import sqlglot
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(expression, read="databricks")  # Spark SQL with ANSI casts ("spark" reads CAST as TRY_CAST)
    except sqlglot.errors.ParseError:
        return None
    tries: dict[type, str] = {exp.Add: "try_add", exp.Sub: "try_subtract", exp.Mul: "try_multiply"}
    parts: list[str] = []
    for node in tree.walk():
        if isinstance(node, (exp.Div, exp.IntDiv, exp.Mod)):
            parts.append(f"({node.expression.sql('spark')}) = 0")
        elif isinstance(node, exp.Cast) and not isinstance(node, exp.TryCast):
            inner, to = node.this.sql("spark"), node.to.sql("spark")
            parts.append(f"(try_cast({inner} AS {to}) IS NULL AND ({inner}) IS NOT NULL)")
        elif type(node) in tries:
            left, right = node.this.sql("spark"), node.expression.sql("spark")
            parts.append(f"({tries[type(node)]}({left}, {right}) IS NULL AND ({left}) IS NOT NULL "
                         f"AND ({right}) IS NOT NULL)")
    return " OR ".join(parts) or None


def locate(events: DataFrame, batch: DataFrame | None, plan: Plan, fragment: str | None) -> AnsiCulprit | None:
    """The expression an ANSI failure (with Spark's `fragment`, if any) came from, and a row's keys.

    Runs at most one small query per candidate expression (`limit 1`). None when no candidate
    matches the fragment and none has a failing row (e.g. a failure inside Spark itself).
    """
    every = candidates(plan)
    matching = [c for c in every if fragment and _squash(fragment) in _squash(c[1])]
    for feature, expression, where in matching or every:
        frame = batch if where == "batch" else events
        keys = _example_keys(frame, plan, feature, expression, fragment if matching else None)
        if keys or matching:
            return AnsiCulprit(feature, expression, keys)
    return None


def _example_keys(frame: DataFrame | None, plan: Plan, feature: str, expression: str,
                  fragment: str | None) -> tuple[tuple[str, Any], ...]:
    """The keys (and time) of one row on which `fragment` (else `expression`) fails; () if none."""
    predicate = failing_predicate(fragment or expression) or (failing_predicate(expression) if fragment else None)
    if frame is None or predicate is None:
        return ()
    from pyspark.sql import functions as F

    if feature != "filter" and plan.filter and frame is not None and "feature_date" not in frame.columns:
        frame = frame.where(F.expr(plan.filter))  # the failing row is one the filter kept
    time = [c for c in ("feature_date", plan.source.timestamp) if c and c in frame.columns][:1]
    shown = [*plan.keys[:MAX_KEYS_SHOWN], *time]
    try:
        rows = frame.where(F.expr(predicate)).select(*[F.col(f"`{c}`") for c in shown]).limit(1).collect()
    except Exception:  # noqa: BLE001 - the search is a courtesy: the original error is reported anyway
        return ()
    return tuple((c, rows[0][c]) for c in shown) if rows else ()
