"""The verdict: covered checks judged from the one pass's counts, the rest by GX.

`judge_checks` (and `judge_with`, which also returns the drift checks' per-date counts from the same
pass) splits a plan's checks: those `metrics.covers` are judged here from `metrics.one_pass`
with GX's own rules (`verdict`: `mostly` over the non-NULL rows, the vacuous pass of an
empty domain, `unexpected_percent` over the rows considered), the rest go to `gx.gx_judge`,
which imports great_expectations only then. The results keep the plan's order and the same
`CheckResult` fields whichever engine judged a check.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from featurebank.definitions.expectations import tested_columns
from featurebank.gate import metrics
from featurebank.gate.results import MASK, PARTIAL_UNEXPECTED_COUNT, CheckResult, jsonable

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from pyspark.sql import Column, DataFrame

    from featurebank.compile.group import CheckSpec


def judge_checks(batch: DataFrame, checks: tuple[CheckSpec, ...], name: str,
                 pii: frozenset[str] = frozenset(), index: tuple[str, ...] = ()) -> list[CheckResult]:
    """Every check's result on the (persisted) batch, in order: covered checks from one pass,
    the others from one GX validation; `pii` columns' values masked; failed checks' example
    rows named by their `index` columns. When Spark cannot analyse the one pass (a
    `row_condition` naming a column the batch lacks, a comparison it refuses), every check
    goes to GX, which reports such a check as failed with its reason, as it always did."""
    return judge_with(batch, checks, name, pii, index)[0]


def judge_with(batch: DataFrame, checks: tuple[CheckSpec, ...], name: str, pii: frozenset[str] = frozenset(),
               index: tuple[str, ...] = (), per_date: Sequence[Column] = (),
               projected: Mapping[str, Column] | None = None
               ) -> tuple[list[CheckResult], dict[Any, list[int]] | None]:
    """`judge_checks`, and the `per_date` aggregates (the drift checks' bucket counts, over the
    `projected` columns) per `feature_date`, measured in the same pass (`metrics.measure`);
    None for them when the one pass could not run (the caller measures them on its own then)."""
    from pyspark.errors import AnalysisException

    columns = tuple(batch.columns)
    covered = [i for i, c in enumerate(checks) if metrics.covers(c, columns)]
    ours = tuple(checks[i] for i in covered)
    by_date: dict[Any, list[int]] | None
    try:
        counted, by_date = metrics.measure(batch, ours, per_date, projected)
    except AnalysisException:
        covered, ours, counted, by_date = [], (), [], None
    rest = [i for i in range(len(checks)) if i not in set(covered)]
    results: list[CheckResult | None] = [None] * len(checks)
    for i, check, counts in zip(covered, ours, counted):
        result = verdict(check, counts)
        if result.unexpected_count:
            rows = metrics.examples(batch, check, index, PARTIAL_UNEXPECTED_COUNT)
            result = _with_examples(result, check, rows, index, pii)
        results[i] = _masked(result, pii)
    if rest:
        from featurebank.gate.gx import gx_judge

        for i, result in zip(rest, gx_judge(batch, tuple(checks[i] for i in rest), name, pii=pii, index=index)):
            results[i] = result
    return [r for r in results if r is not None], by_date


def verdict(check: CheckSpec, counts: metrics.Counts) -> CheckResult:
    """GX's result for a covered check from its counts (`ColumnMapExpectation._validate`,
    `ExpectColumnValuesToNotBeNull._validate`, `MulticolumnMapExpectation._validate` and
    `_format_map_output` in GX 1.x), as a `CheckResult` without examples."""
    mostly = check.arguments.get("mostly", 1)
    total, considered, bad = counts.element_count, counts.considered, counts.unexpected_count
    if bad is None or total == 0 or considered == 0:
        success = True  # GX: vacuously true
    else:
        success = (float(considered) - float(bad)) / float(considered) >= mostly
    percent = bad / considered * 100 if bad is not None and total > 0 and considered > 0 else None
    columns = tested_columns(check.arguments)
    return CheckResult(
        expectation=check.expectation,
        column=",".join(columns) if columns else None,
        severity=check.severity,
        success=success,
        observed_value=None,  # GX's map expectations report counts, no observed value
        unexpected_count=bad,
        unexpected_percent=percent,
        element_count=total,
        partial_unexpected=(),
        kwargs=check.arguments,
        origin=check.origin,
    )


def _with_examples(result: CheckResult, check: CheckSpec, rows: list[dict[str, Any]], index: tuple[str, ...],
                   pii: frozenset[str]) -> CheckResult:
    columns = tested_columns(check.arguments)
    if check.expectation == metrics.UNIQUE:
        values: list[Any] = [{c: row.get(c) for c in columns} for row in rows]
    else:
        values = [row.get(columns[0]) for row in rows]
    named = [{k: MASK if k in pii else v for k, v in row.items()} for row in rows] if index else []
    return replace(result, partial_unexpected=tuple(jsonable(values)), example_rows=tuple(jsonable(named)))


def _masked(result: CheckResult, pii: frozenset[str]) -> CheckResult:
    """Values of personal data stay in the tables (as `gx._check_result` does)."""
    if not pii.intersection(tested_columns(result.kwargs)):
        return result
    return replace(result, observed_value=None if result.observed_value is None else MASK,
                   partial_unexpected=tuple(MASK for _ in result.partial_unexpected))
