"""The drift check of the gate: `expect_column_drift_to_be_below`, judged without GX.

A check of this kind compares each snapshot date of the batch with a reference: the profiles
stored at publish of the group's last `reference_dates` published dates before the run
(`engine.drift.reference_of`; the run's own dates are never in it). Every drift check of the
batch is measured inside the gate's one pass (`drift_sums`, added to `gate.metrics.measure`'s
aggregation grouped by date: per date, the rows in each bucket of each check, the bucket
of a value computed once in a projection). A date's PSI above `threshold` fails the check (an error check blocks
the publish like any other); the report names the worst date, both distributions and the
reference dates. It passes, with a note saying why, when there is no reference (a first
publish, or a feature whose profiles hold no values: personal data), when a date holds fewer
than `min_rows` values, or when the operator accepted the shift (`run --accept-drift FEATURE`,
recorded in the run log).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import date
from typing import TYPE_CHECKING, Any

from featurebank.definitions.expectations import DRIFT_EXPECTATION
from featurebank.engine.drift import DEFAULT_BINS, Reference, bucket_index, psi

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

    from featurebank.compile.group import CheckSpec
    from featurebank.compile.run import Plan
    from featurebank.definitions.model import Project
    from featurebank.engine.profile import GroupProfile
    from featurebank.gate.results import CheckResult
    from featurebank.io.runlog import RunRecord

DRIFT = DRIFT_EXPECTATION
DEFAULTS = {"threshold": 0.25, "reference_dates": 7, "min_rows": 500, "bins": DEFAULT_BINS}


def is_drift(check: CheckSpec) -> bool:
    return check.expectation == DRIFT


def arguments(check: CheckSpec) -> dict[str, Any]:
    """The check's arguments with the defaults filled in."""
    return DEFAULTS | check.arguments


def drift_sums(checks: Sequence[CheckSpec], references: Mapping[str, Reference | None]
               ) -> tuple[dict[str, Column], list[Column]]:
    """What the gate's one pass adds for the drift checks that have a reference: each check's
    bucket index as a projected column (`__fb_drift{i}`, computed once per row: the bucket rule
    compares a value with every cut point) and the aggregates counting, per snapshot date, the
    rows in each bucket (`d{i}_{b}`, comparisons of that small integer). `gate.metrics.measure`
    adds both to its aggregation, grouped by `feature_date`."""
    from pyspark.sql import functions as F

    projected: dict[str, Column] = {}
    sums = []
    for i, check in enumerate(checks):
        reference = references.get(str(check.arguments["column"]))
        if reference is None:
            continue
        name = f"__fb_drift{i}"
        projected[name] = bucket_index(reference, F.col(f"`{check.arguments['column']}`"))
        sums += [F.sum(F.when(F.col(name) == b, 1).otherwise(0)).alias(f"d{i}_{b}") for b in range(reference.buckets)]
    return projected, sums


def judge_drift(batch: DataFrame, checks: Sequence[CheckSpec], references: Mapping[str, Reference | None],
                accepted: Collection[str] = (), measured: Mapping[Any, Sequence[int]] | None = None
                ) -> list[CheckResult]:
    """Each drift check's result on `batch` (persisted by the caller, in the order of `checks`).

    `references` maps a checked column to its reference (None or absent: none exists);
    `accepted` names the features whose drift the operator accepted for this run. `measured`
    holds `drift_sums`' values per `feature_date` as the gate's one pass computed them; without
    it (the one pass could not run) they are measured here, in one pass of their own.
    """
    if measured is None:
        projected, sums = drift_sums(checks, references)
        measured = {row[0]: list(row[1:]) for row in
                    batch.withColumns(projected).groupBy("feature_date").agg(*sums).collect()} if sums else {}
    counts: dict[tuple[int, date], list[int]] = {}
    for day, values in measured.items():
        at = 0
        for i, check in enumerate(checks):
            reference = references.get(str(check.arguments["column"]))
            if reference is None:
                continue
            counts[(i, day)] = [int(v or 0) for v in values[at:at + reference.buckets]]
            at += reference.buckets
    results = []
    for i, check in enumerate(checks):
        column = str(check.arguments["column"])
        by_date = {day: c for (j, day), c in counts.items() if j == i}
        results.append(_result(check, references.get(column), by_date, column in accepted))
    return results


def profiled_span(plan: Plan) -> int:
    """How many of a run's latest snapshot dates (with rows) it profiles at publish: the most
    reference dates a drift check of the group reads, at least the default's (`DEFAULTS`), so the
    next runs' checks and `featurebank docs` find the profiles they read stored. A backfill does
    not profile its older dates; a check that reaches one profiles it then (`drift_references`)."""
    spans = [int(arguments(c)["reference_dates"]) for c in plan.checks if is_drift(c)]
    return max([int(DEFAULTS["reference_dates"]), *spans])


def drift_references(project: Project, plan: Plan, spark: SparkSession) -> dict[str, Reference | None] | None:
    """Per column a drift check tests, its reference: the profiles of the group's last
    `reference_dates` published dates before `plan.start` (`gate.drift`); None without drift checks.

    A date's stored profile counts only when the run that last published the date made it (the
    run log's newest commit covering the date). A date without one (its run profiled only its
    latest dates, `profiled_span`; or it was republished since, erased from, or published before
    profiles) is profiled from the published table now, in one Spark pass over those dates, and
    stored for the next run: a reference is never a profile of rows that are no longer published.
    """
    from featurebank.engine.drift import reference_of
    from featurebank.gate.report import stored_profile
    from featurebank.io.runlog import publishers, read_run_log

    checks = [c for c in plan.checks if is_drift(c)]
    if not checks:
        return None
    feature_root = project.config.feature_root
    runs = read_run_log(feature_root, plan.group, spark=lambda: spark,
                        lake_formation=project.config.governance.lake_formation)
    publisher = publishers(runs)
    published = sorted(d for d in publisher if d < plan.start)
    reference_days = published[-max(int(arguments(c)["reference_dates"]) for c in checks):]
    profiles = []
    for day in reference_days:
        try:
            profile = stored_profile(feature_root, plan.group, day)
        except ValueError:  # unreadable: profiled below
            continue
        if profile is not None and profile.run_id == publisher[day].run_id:
            profiles.append(profile)
    missing = sorted(set(reference_days) - {p.feature_date for p in profiles})
    if missing:
        profiles += _profile_published(project, plan, spark, {day: publisher[day] for day in missing})
    references: dict[str, Reference | None] = {}
    for check in checks:
        settings = arguments(check)
        recent = [p for p in profiles if p.feature_date in published[-int(settings["reference_dates"]):]]
        references[str(settings["column"])] = reference_of(recent, str(settings["column"]), int(settings["bins"]))
    return references


def _profile_published(project: Project, plan: Plan, spark: SparkSession, publishers: Mapping[date, RunRecord]
                       ) -> list[GroupProfile]:
    """Profiles of the published rows of `publishers`' dates, one pass over the table (dates that
    hold no rows get none), each stamped with the run and commit that published its date and
    stored as the runner stores its own (`gate.report.write_profiles`)."""
    from dataclasses import replace

    from pyspark.sql import functions as F

    from featurebank.definitions.governance import pii_columns_of
    from featurebank.engine.profile import PARTITION_COLUMN, profile_batch
    from featurebank.gate.report import write_profiles

    rows = spark.read.format("delta").load(plan.table_path).where(F.col(PARTITION_COLUMN).isin(sorted(publishers)))
    stamped = []
    for profile in profile_batch(rows, plan.group, plan.feature_columns):
        run = publishers[profile.feature_date]
        stamped.append(replace(profile, run_id=run.run_id, version=run.delta_version, data_hash=run.definition_hash))
    # as stored: a personal feature's values are no reference now either
    return write_profiles(project.config.feature_root, plan.group, stamped, pii_columns_of(project, plan.group))


def _result(check: CheckSpec, reference: Reference | None, by_date: dict[date, list[int]],
            accepted: bool) -> CheckResult:
    """One drift check's CheckResult from its per-date bucket counts."""
    from featurebank.gate.results import CheckResult

    settings = arguments(check)
    column = str(settings["column"])

    def result(success: bool, observed: dict[str, Any]) -> CheckResult:
        return CheckResult(expectation=check.expectation, column=column, severity=check.severity, success=success,
                           observed_value=observed, unexpected_count=None, unexpected_percent=None,
                           element_count=None, partial_unexpected=(), kwargs=check.arguments, origin=check.origin)

    if reference is None:
        return result(True, {"summary": "no reference: passes", "note": "no reference: no earlier published date has a profile of this feature "
                                     "with values (a first publish, or personal data); passes"})
    judged = {day: (psi(reference, c), sum(c)) for day, c in by_date.items() if sum(c) >= int(settings["min_rows"])}
    small = sorted(day.isoformat() for day, c in by_date.items() if sum(c) < int(settings["min_rows"]))
    base = {"reference_dates": [d.isoformat() for d in reference.dates], "threshold": float(settings["threshold"]),
            "reference_rows": reference.rows}
    if small:
        base["too_few_rows"] = small
    if not judged:
        note = f"no date holds {settings['min_rows']} values (min_rows); passes"
        return result(True, base | {"summary": note, "note": note})
    worst = max(judged, key=lambda day: judged[day][0])
    value, rows = judged[worst]
    observed_shares = [n / rows for n in by_date[worst]]
    observed = base | {
        "summary": f"PSI {value:.3f} on {worst} against {len(reference.dates)} reference dates (threshold "
                   f"{float(settings['threshold']):g}, {rows} values)",
        "psi": round(value, 6), "worst_date": worst.isoformat(), "rows": rows,
        "psi_by_date": {d.isoformat(): round(judged[d][0], 6) for d in sorted(judged)},
        "buckets": _bucket_names(reference), "expected": [round(e, 6) for e in reference.expected],
        "observed": [round(o, 6) for o in observed_shares],
    }
    shifted = value > float(settings["threshold"])
    if shifted and accepted:
        return result(True, observed | {"summary": f"{observed['summary']}; accepted for this run (--accept-drift)",
                                        "note": "the shift was accepted for this run (--accept-drift)"})
    return result(not shifted, observed)


def _bucket_names(reference: Reference) -> list[str]:
    """How the report names each bucket: `(a, b]` ranges, or the category (`other` last)."""
    if reference.kind == "categorical":
        return [*reference.categories, "other"]
    edges = ["-inf", *(f"{e:.6g}" for e in reference.edges), "inf"]
    return [f"({a}, {b}]" for a, b in zip(edges, edges[1:])]
