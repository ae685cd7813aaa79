"""Drift against stored profiles (engine/drift.py): the reference, the buckets, the PSI."""

from __future__ import annotations

import math
import random
from datetime import date, timedelta
from pathlib import Path

import pytest

from featurebank.engine.drift import Reference, bucket_index, observed_index, psi, reference_of
from featurebank.engine.profile import FeatureProfile, GroupProfile

D = date(2024, 3, 1)


def _profile(day: date, feature: FeatureProfile) -> GroupProfile:
    return GroupProfile("g", day, feature.rows, {feature.feature: feature})


def _histogram(values: list[float], bins: int = 12) -> tuple[tuple[float, float, int], ...]:
    low, high = min(values), max(values)
    width = (high - low) / bins
    counts = [0] * bins
    for v in values:
        counts[min(int((v - low) / width), bins - 1) if width else 0] += 1
    return tuple((low + i * width, low + (i + 1) * width, n) for i, n in enumerate(counts))


def _numeric(day: date, values: list[float]) -> GroupProfile:
    return _profile(day, FeatureProfile("x", "double", len(values), 0, histogram=_histogram(values)))


def _counts(reference: Reference, values: list[float | str | None]) -> list[int]:
    counts = [0] * reference.buckets
    for v in values:
        index = observed_index(reference, v)
        if index is not None:
            counts[index] += 1
    return counts


def test_the_same_distribution_is_stable_and_a_shifted_one_is_not() -> None:
    rng = random.Random(7)
    days = [[rng.gauss(100, 15) for _ in range(5000)] for _ in range(7)]
    reference = reference_of([_numeric(D + timedelta(days=i), v) for i, v in enumerate(days)], "x")
    assert reference is not None and reference.kind == "numeric" and reference.buckets == 10
    assert reference.rows == 35_000 and abs(sum(reference.expected) - 1) < 1e-12
    assert all(abs(e - 0.1) < 0.02 for e in reference.expected)  # quantile buckets hold a tenth each
    same = [rng.gauss(100, 15) for _ in range(5000)]
    shifted = [v + 15 for v in same]  # one standard deviation
    assert psi(reference, _counts(reference, same)) < 0.02
    assert psi(reference, _counts(reference, shifted)) > 0.25


def test_a_few_distinct_values_merge_their_cut_points_and_nulls_and_nan_are_left_out() -> None:
    values = [0.0] * 700 + [1.0] * 200 + [5.0] * 100  # point masses: zero-width histogram bins
    profile = _profile(D, FeatureProfile("x", "bigint", 1003, 3, histogram=((0.0, 0.0, 700), (1.0, 1.0, 200),
                                                                            (5.0, 5.0, 100))))
    reference = reference_of([profile], "x")
    assert reference is not None and reference.edges == (0.0, 1.0)
    assert reference.expected == pytest.approx((0.7, 0.2, 0.1))
    assert psi(reference, _counts(reference, [*values, None, math.nan, math.inf])) == pytest.approx(0.0)
    assert psi(reference, _counts(reference, [5.0] * 1000)) > 1


def test_categorical_features_pool_top_values_and_keep_one_bucket_for_the_rest() -> None:
    first = _profile(D, FeatureProfile("c", "string", 100, 10, top_values=(("web", 60), ("pos", 20))))
    second = _profile(D + timedelta(days=1), FeatureProfile("c", "string", 100, 0, top_values=(("web", 50), ("atm", 40))))
    reference = reference_of([first, second], "c")
    assert reference is not None and reference.categories == ("web", "atm", "pos")
    assert reference.expected == pytest.approx((110 / 190, 40 / 190, 20 / 190, 20 / 190))
    assert observed_index(reference, "moto") == 3 and observed_index(reference, None) is None


def test_no_reference_without_values_a_masked_personal_feature_included() -> None:
    masked = _profile(D, FeatureProfile("x", "double", 10, 0, masked=True))
    assert reference_of([masked], "x") is None and reference_of([], "x") is None
    assert reference_of([_numeric(D, [1.0, 2.0])], "other") is None


def test_spark_buckets_agree_with_the_python_rule_on_edges_nulls_and_non_finite(spark) -> None:  # noqa: ANN001
    from pyspark.sql import functions as F

    rng = random.Random(3)
    reference = reference_of([_numeric(D, [rng.uniform(0, 10) for _ in range(2000)])], "x")
    assert reference is not None
    values: list[float | None] = [*reference.edges, *(rng.uniform(-1, 11) for _ in range(300)), None, math.nan,
                                  math.inf, -math.inf]
    frame = spark.createDataFrame([(v,) for v in values], "x double")
    got = [r[0] for r in frame.select(bucket_index(reference, F.col("x"))).collect()]
    assert got == [observed_index(reference, v) for v in values]
    categories = reference_of([_profile(D, FeatureProfile("c", "string", 10, 0, top_values=(("a", 6), ("b", 3))))], "c")
    assert categories is not None
    texts = ["a", "b", "z", None]
    got = [r[0] for r in spark.createDataFrame([(t,) for t in texts], "c string")
           .select(bucket_index(categories, F.col("c"))).collect()]
    assert got == [observed_index(categories, t) for t in texts]


# --- the gate: a drift check on a real run ------------------------------------------------------

DRIFT_GROUP = """kind: feature_group
name: daily_spend
entity: customer
source: card_transactions
description: One day's settled spend per customer.
owner: cards-analytics
aggregations:
  - {name: spend, expr: amount, function: sum, windows: [1d], description: Spend of the day before}
checks:
  - expect_column_drift_to_be_below: {column: spend_1d, threshold: 0.25, reference_dates: 4, min_rows: 100}
"""


def _bank(shift_on: date | None = None, customers: int = 300, factor: float = 1.0) -> "pd.DataFrame":  # noqa: F821
    import pandas as pd

    rng = random.Random(11)
    rows = []
    day = date(2024, 2, 25)
    while day <= date(2024, 3, 12):
        for c in range(customers):
            amount = round(rng.gauss(100, 15), 2) * (2.0 if day == shift_on else 1.0) * factor
            rows.append((f"t{len(rows)}", f"c{c}", f"a{c}", "m1", "mcc1", amount, "EUR", "web", "SETTLED",
                         pd.Timestamp(day.isoformat() + " 12:00", tz="UTC")))
        day += timedelta(days=1)
    frame = pd.DataFrame(rows, columns=["txn_id", "customer_id", "account_id", "merchant_id", "mcc", "amount",
                                       "currency", "channel", "status", "event_ts"])
    frame["event_ts"] = frame["event_ts"].astype("datetime64[us, UTC]")
    return frame


def test_a_drift_check_blocks_a_shifted_day_passes_a_stable_one_and_can_be_accepted(spark, example_project) -> None:  # noqa: ANN001
    from test_runner import _write_sources

    from featurebank.definitions import load_project
    from featurebank.errors import GateFailed, UsageError
    from featurebank.io.runlog import read_run_log
    from featurebank.runner import run_group

    (example_project / "features" / "cards" / "daily.yaml").write_text(DRIFT_GROUP)
    shifted = date(2024, 3, 7)  # snapshot 2024-03-08 sums the events of this day
    _write_sources(example_project, _bank(shift_on=shifted))
    project = load_project(example_project, "local")
    [first] = run_group(project, "daily_spend", date(2024, 3, 1), date(2024, 3, 4), spark=spark)
    assert first.gate is not None and first.gate.checks[0].observed_value["summary"] == "no reference: passes"
    [stable] = run_group(project, "daily_spend", date(2024, 3, 5), date(2024, 3, 5), spark=spark)
    drift = next(c for c in stable.gate.checks if c.expectation == "expect_column_drift_to_be_below")
    assert drift.success and drift.observed_value["psi"] < 0.1
    assert drift.observed_value["reference_dates"] == ["2024-03-01", "2024-03-02", "2024-03-03", "2024-03-04"]
    with pytest.raises(GateFailed) as refused:
        run_group(project, "daily_spend", date(2024, 3, 8), date(2024, 3, 8), spark=spark)
    failed = refused.value.result.failed[0]
    assert failed.expectation == "expect_column_drift_to_be_below" and failed.observed_value["psi"] > 1
    assert "PSI" in str(refused.value) and "on 2024-03-08 against 4 reference dates" in str(refused.value)
    assert len(failed.observed_value["expected"]) == len(failed.observed_value["observed"]) == 10  # both distributions
    report = (Path(refused.value.result.report_dir) / "report.html").read_text()
    assert "<th>reference</th><th>2024-03-08</th>" in report
    with pytest.raises(UsageError, match="no drift check on"):
        run_group(project, "daily_spend", date(2024, 3, 8), date(2024, 3, 8), spark=spark, accept_drift=["spend_7d"])
    [accepted] = run_group(project, "daily_spend", date(2024, 3, 8), date(2024, 3, 8), spark=spark,
                           accept_drift=["spend_1d"])
    assert accepted.status == "published"
    logged = {r.run_id: r for r in read_run_log(project.config.feature_root, "daily_spend", spark=None,
                                                 lake_formation=False)}
    assert logged[accepted.run_id].accepted == "drift:spend_1d"


def test_a_backfill_profiles_its_latest_dates_and_a_check_reaching_older_ones_profiles_the_published_rows(
        spark, example_project) -> None:  # noqa: ANN001
    """A run stores the profiles of its latest `profiled_span` dates only (a backfill's older dates
    cost the profile's passes and no reader looks at them); a drift check whose reference dates
    have no profile, or only one made before the date was republished, profiles the published
    rows of those dates first. With the stale profiles of step 3 as its reference, step 4's
    restatement (the values as published, doubled) would be refused as a 2x shift."""
    from test_runner import _write_sources

    from featurebank.compile.run import compile_plan
    from featurebank.definitions import load_project
    from featurebank.engine.profile import profile_from_json
    from featurebank.errors import GateFailed
    from featurebank.gate import profile_location
    from featurebank.gate.drift import profiled_span
    from featurebank.runner import run_group

    (example_project / "features" / "cards" / "daily.yaml").write_text(DRIFT_GROUP)
    project = load_project(example_project, "local")
    root = project.config.feature_root
    days = [date(2024, 3, 1) + timedelta(days=k) for k in range(12)]

    def stored(day: date) -> GroupProfile | None:
        location = Path(profile_location(root, "daily_spend", day))
        return profile_from_json(location.read_text()) if location.exists() else None

    # 1. a backfill of 12 dates profiles its latest 7 (the default reference span; this check reads 4)
    _write_sources(example_project, _bank())
    [backfill] = run_group(project, "daily_spend", days[0], days[-1], spark=spark)
    assert profiled_span(compile_plan(project, "daily_spend", days[0], days[-1])) == 7
    assert [d for d in days if stored(d)] == days[5:]
    assert {stored(d).run_id for d in days[5:]} == {backfill.run_id}
    # 2. a shifted restatement of Mar 5 reaches Mar 1-4, which have no profile: profiled from the table, then refused
    _write_sources(example_project, _bank(shift_on=date(2024, 3, 4)))
    with pytest.raises(GateFailed) as refused:
        run_group(project, "daily_spend", days[4], days[4], spark=spark)
    failed = refused.value.result.failed[0]
    assert failed.observed_value["psi"] > 1
    assert failed.observed_value["reference_dates"] == [d.isoformat() for d in days[:4]]
    assert [(stored(d).run_id, stored(d).version) for d in days[:4]] == [(backfill.run_id, backfill.delta_version)] * 4
    # 3. every date republished with doubled values: Mar 1-4 keep step 2's profiles, now of rows no longer published
    _write_sources(example_project, _bank(factor=2.0))
    [doubled] = run_group(project, "daily_spend", days[0], days[-1], spark=spark)
    assert [stored(d).run_id for d in days[:4]] == [backfill.run_id] * 4
    # 4. restating Mar 5 as published: the reference is the doubled rows, profiled again, so it passes
    [restated] = run_group(project, "daily_spend", days[4], days[4], spark=spark)
    drift = next(c for c in restated.gate.checks if c.expectation == "expect_column_drift_to_be_below")
    assert drift.success and drift.observed_value["psi"] < 0.1, drift.observed_value
    assert [stored(d).run_id for d in days[:4]] == [doubled.run_id] * 4

