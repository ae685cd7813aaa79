"""`validate`'s warning for a division that can divide by zero (issue 24).

Spark runs in ANSI SQL mode (io/spark.py): `a / b`, `a div b` and `a % b` with `b = 0` fail
the run instead of giving NULL. A divisor is safe when it cannot be 0 by construction:
`nullif(x, 0)` (or `nullif(0, ...)`-free forms of it in parentheses), a non-zero numeric
literal, or a `try_divide`/`try_mod` call instead of the operator. Anything else is reported as a
warning, not an error: whether the divisor can be 0 depends on the data (a count over a
non-empty window never is), which `validate` cannot see; refusing would reject correct
definitions, and a run that does divide by zero still fails with the feature and a row named.
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlglot import exp

from featurebank.definitions.expressions import ExpressionError, parse_expression
from featurebank.definitions.model import Location, Project


def _safe_divisor(node: exp.Expr) -> bool:
    """True when `node` cannot be 0: nullif(x, 0), a non-zero literal (parentheses and a sign allowed)."""
    while isinstance(node, (exp.Paren, exp.Neg)):
        node = node.this
    if isinstance(node, exp.Nullif):
        zero = node.expression
        return isinstance(zero, exp.Literal) and not zero.is_string and _is_zero(zero.this)
    if isinstance(node, exp.Literal) and not node.is_string:
        return not _is_zero(node.this)
    return False


def _is_zero(text: str) -> bool:
    try:
        return float(text) == 0.0
    except ValueError:
        return False


def risky_divisors(text: str) -> list[str]:
    """The divisors of `text`'s `/`, `div` and `%` that can be 0 (their SQL), in order; [] if none
    or if the expression does not parse (validate reports that elsewhere)."""
    try:
        tree = parse_expression(text)
    except ExpressionError:
        return []
    return [node.expression.sql("spark") for node in tree.walk()
            if isinstance(node, (exp.Div, exp.IntDiv, exp.Mod)) and not _safe_divisor(node.expression)]


def _expressions(project: Project) -> Iterator[tuple[Location, str, str]]:
    """(where, what, expression) for every expression of every group."""
    for group in project.groups.values():
        if group.filter:
            yield group.loc, f"group '{group.name}' filter", group.filter
        for aggregation in group.aggregations:
            if aggregation.expr:
                yield aggregation.loc, f"aggregation '{group.name}.{aggregation.name}'", aggregation.expr
        for feature in group.features:
            yield feature.loc, f"feature '{group.name}.{feature.name}'", feature.expr
        for feature in group.derived:
            yield feature.loc, f"derived feature '{group.name}.{feature.name}'", feature.expr


def division_warnings(project: Project) -> list[str]:
    """One line per division that can divide by zero: where, what, the divisor, the fix."""
    lines = []
    for loc, what, text in _expressions(project):
        for divisor in risky_divisors(text):
            lines.append(f"{loc}: warning: {what} divides by `{divisor}`, which can be 0; Spark runs in ANSI mode, "
                         f"where a division by zero fails the run: write `nullif({divisor}, 0)` or use "
                         "try_divide(a, b) if NULL is the meaning")
    return sorted(lines)
