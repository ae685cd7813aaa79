"""The publish gate: a plan's checks, judged on the exact batch to publish.

`run_gate` persists the batch (if the caller has not), materialises it once with a count,
and judges every check of the plan (the always-on key checks included). The checks the gate
reproduces exactly — not-null, between, in-set and compound uniqueness, with `mostly`,
`row_condition` (Spark SQL) and GX's NULL rules — are judged from one pass over the
persisted batch (`gate.metrics`: one `agg` for every row-level count — grouped by date, with
the drift checks' bucket counts, when there are drift checks — and one grouping per
uniqueness check that moves a few rows per key, not the batch); every other check is validated
by Great Expectations itself on the persisted batch (`gate.gx`), which is imported only
then. GX stays the engine of record: the one pass computes GX's metrics with GX's Spark
expressions and applies GX's rules (`gate.judge.verdict`), and tests/test_gate_one_pass.py
proves the two agree on random batches.

Error-severity checks block the publish; warn checks only report. Whatever the outcome, the
result is written under `<feature_root>/_reports/<group>/<run_id>/` (`result.json`,
`report.html`); a refused batch is also kept as Parquet under
`<feature_root>/_quarantine/<group>/<run_id>/`. A refusal is a refusal even when the
quarantine copy or the report cannot be written: `GateFailed` still names the failed checks,
with one more sentence saying what could not be written and why.

A failed check names its example rows by key and date, not only by value (`-9.0 at
customer_id='c2', feature_date=2024-03-01`), from a second small query paid on failure only.
The console headline names every failed and warned check (`7 checks: 5 passed, 2 warned
(expect_x[col]; expect_y[col])`).

Example values of PII columns never leave the tables: checks on a PII column (see
`definitions.governance.column_pii`) carry `***` instead of the offending values and observed
values, so reports, the run log's checks summary, console lines and errors hold none.

Modules: `results` (CheckResult, GateResult and their words), `metrics` (the one pass),
`judge` (the verdict), `gx` (the GX fallback), `report` (paths and the written report).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from featurebank.errors import GateFailed
from featurebank.faults import fault_point
from featurebank.gate.judge import judge_with
from featurebank.gate.report import artifact_dir, profile_location, render_html, write_report
from featurebank.gate.results import (
    MASK,
    PARTIAL_UNEXPECTED_COUNT,
    CheckResult,
    GateResult,
    headline_of,
    jsonable,
    summarize_checks_json,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from featurebank.compile.run import Plan
    from featurebank.engine.drift import Reference

__all__ = [
    "MASK", "PARTIAL_UNEXPECTED_COUNT", "CheckResult", "GateResult", "artifact_dir", "headline_of", "jsonable",
    "judge_batch", "profile_location", "render_html", "run_gate", "summarize_checks_json",
]


def run_gate(batch: DataFrame, plan: Plan, run_id: str, feature_root: str, *,
             pii_columns: Collection[str] = (), drift_references: Mapping[str, Reference | None] | None = None,
             accepted_drift: Collection[str] = ()) -> GateResult:
    """Validate `batch` against `plan.checks`; write the report; quarantine and raise if refused.

    The batch is persisted if it is not already (the caller publishes the same object, so it
    is computed once) and stays persisted; the caller unpersists it. Example values of checks
    on `pii_columns` are masked (`***`). Returns the GateResult when every error-severity
    check passed (warn failures included in it). Raises `GateFailed` (with `.result`) when
    any error-severity check failed, after writing the quarantine copy and the report — or
    failing to, which the message then says; `DefinitionError` when a check names an unknown
    expectation or arguments GX refuses.
    """
    verdict = judge_batch(batch, plan, run_id, pii_columns=pii_columns, drift_references=drift_references,
                          accepted_drift=accepted_drift)
    fault_point("gate")
    passed = verdict.passed
    report_dir = artifact_dir(feature_root, "_reports", plan.group, run_id)
    quarantine_dir = None if passed else artifact_dir(feature_root, "_quarantine", plan.group, run_id)
    result = replace(verdict, report_dir=report_dir, quarantine_dir=quarantine_dir)
    unwritten: list[str] = []
    if quarantine_dir is not None:
        try:
            batch.write.mode("overwrite").parquet(quarantine_dir)
        except Exception as error:
            unwritten.append(f"the rejected batch could not be kept in {quarantine_dir}: {_first_line(error)}")
            result = replace(result, quarantine_dir=None)
    try:
        write_report(result, plan)
    except Exception as error:
        if passed:  # nothing to hide: a run whose report cannot be written fails as before
            raise
        unwritten.append(f"the gate report could not be written to {report_dir}: {_first_line(error)}")
        result = replace(result, report_dir="")
    if not passed:
        raise GateFailed(_refusal_message(result, unwritten), result)
    return result


def judge_batch(batch: DataFrame, plan: Plan, run_id: str, *, pii_columns: Collection[str] = (),
                drift_references: Mapping[str, Reference | None] | None = None,
                accepted_drift: Collection[str] = ()) -> GateResult:
    """The gate's verdict on `batch`, writing nothing (`run_gate` writes it; `featurebank preview` shows it).

    Persists the batch as `run_gate` says. Drift checks (`gate.drift`) are judged against
    `drift_references` (column → reference; missing: none, the check passes with a note) unless
    their feature is in `accepted_drift`; every other check as `judge.judge_checks` says, the drift
    statistics and the rows per date (`GateResult.rows_by_date`) inside the same pass. Never raises
    `GateFailed`: a refusal is `passed=False`. Raises `DefinitionError` for an unknown
    expectation or refused arguments.
    """
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from featurebank.gate.drift import drift_sums, is_drift, judge_drift

    if not batch.storageLevel.useMemory and not batch.storageLevel.useDisk:
        batch.persist(StorageLevel.MEMORY_AND_DISK)
    index = tuple(c for c in (*plan.keys, "feature_date") if c in batch.columns)  # how example rows are named
    drift = tuple(c for c in plan.checks if is_drift(c))
    references = drift_references or {}
    projected, sums = drift_sums(drift, references)
    # The pass that materialises the batch also counts its rows per date: no count job, and the
    # publish's rows per date need no pass of their own.
    judged, measured = judge_with(batch, tuple(c for c in plan.checks if not is_drift(c)), f"{plan.group}-{run_id}",
                                  frozenset(pii_columns), index, [F.count(F.lit(1)).alias("__fb_rows"), *sums],
                                  projected)
    if measured is None:  # the one pass could not run: rows per date in a pass of their own
        by_date = {row[0]: int(row[1]) for row in batch.groupBy("feature_date").count().collect()}
        drift_measured = None
    else:
        by_date = {day: int(values[0]) for day, values in measured.items()}
        drift_measured = {day: values[1:] for day, values in measured.items()}
    drifted = judge_drift(batch, drift, references, accepted_drift, drift_measured) if drift else []
    by_kind = {True: iter(drifted), False: iter(judged)}
    checks = [next(by_kind[is_drift(c)]) for c in plan.checks]  # the plan's order
    return GateResult(plan.group, run_id, not any(c.blocks for c in checks), sum(by_date.values()), tuple(checks),
                      rows_by_date=by_date)


def _refusal_message(result: GateResult, unwritten: Collection[str] = ()) -> str:
    lines = [
        f"the gate refused to publish {result.group} (run {result.run_id}): "
        f"{len(result.failed)} error check(s) failed on {result.row_count} rows"
    ]
    lines += ["  " + c.line() for c in result.failed]
    if result.quarantine_dir:
        lines.append(f"  rejected batch kept in {result.quarantine_dir}")
    if result.report_dir:
        lines.append(f"  report: {result.report_dir}/report.html")
    lines += [f"  {problem}; nothing was published, fix the location and rerun to keep it" for problem in unwritten]
    return "\n".join(lines)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__


