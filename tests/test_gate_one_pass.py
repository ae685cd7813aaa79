"""The one-pass gate agrees with Great Expectations itself on every expectation it covers.

Seeded random batches with NULLs, NaN, ties on the bounds, duplicated keys, `mostly` exactly at
the boundary (and a hair above it), `row_condition`s that keep some, all or no rows; each check
is judged by the one pass (`gate.judge`) and by GX (`gate.gx.gx_judge`) on the same persisted
batch, and their unexpected counts, element counts, percentages, success and observed values
must be equal. Checks the one pass does not cover go to GX; uniqueness needs no exchange on
a key-partitioned batch; the key check's day bitmaps decide unique batches alone and never
miss a duplicate (a Python count is their oracle).
"""

from __future__ import annotations

import contextlib
import io
import math
import random
from datetime import date, timedelta

import pytest

from featurebank.compile.group import CheckSpec
from featurebank.gate import metrics
from featurebank.gate.gx import gx_judge
from featurebank.gate.judge import judge_checks, verdict

DDL = "id STRING, feature_date DATE, x DOUBLE, n BIGINT, s STRING"
D0 = date(2024, 3, 1)


def _rows(seed: int, size: int) -> list[tuple]:
    rng = random.Random(seed)
    rows = []
    for _ in range(size):
        x = rng.choice([None, float("nan"), -1.0, 0.0, 0.5, 2.0, 5.0, 5.5, rng.uniform(-2, 7)])
        n = rng.choice([None, 0, 1, 2, 3, 10])
        s = rng.choice([None, "a", "b", "c", ""])
        key = rng.choice([None] + [f"k{i}" for i in range(size // 3 + 1)])  # ties: duplicated keys
        day = rng.choice([None, D0, D0 + timedelta(days=1)])
        rows.append((key, day, x, n, s))
    return rows


def _check(expectation: str, **arguments) -> CheckSpec:
    return CheckSpec(expectation, tuple(arguments.items()), "error", "test.yaml:1")


def _base_checks() -> list[CheckSpec]:
    spark_rc = {"condition_parser": "spark"}
    return [
        _check("expect_column_values_to_not_be_null", column="x"),
        _check("expect_column_values_to_not_be_null", column="id", row_condition="s = 'a'", **spark_rc),
        _check("expect_column_values_to_be_between", column="x", min_value=0, max_value=5),
        _check("expect_column_values_to_be_between", column="x", min_value=0, max_value=5, strict_min=True, strict_max=True),
        _check("expect_column_values_to_be_between", column="x", min_value=0),  # NaN >= 0 in Spark: expected
        _check("expect_column_values_to_be_between", column="x", max_value=5.0, strict_max=True),  # NaN unexpected
        _check("expect_column_values_to_be_between", column="n", min_value=1, max_value=3,
               row_condition="x IS NOT NULL AND x > 0.4", **spark_rc),
        _check("expect_column_values_to_be_in_set", column="s", value_set=["a", "b"]),
        _check("expect_column_values_to_be_in_set", column="n", value_set=[0, 1, 2], row_condition="s <> ''", **spark_rc),
        _check("expect_column_values_to_be_in_set", column="s", value_set=["a"], row_condition="n > 1000", **spark_rc),
        _check("expect_compound_columns_to_be_unique", column_list=["id", "feature_date"]),
        _check("expect_compound_columns_to_be_unique", column_list=["id", "feature_date"],
               ignore_row_if="any_value_is_missing"),
        _check("expect_compound_columns_to_be_unique", column_list=["id", "s"], ignore_row_if="never",
               row_condition="n IS NOT NULL", **spark_rc),
    ]


def _with_boundary_mostly(checks: list[CheckSpec], batch) -> list[CheckSpec]:
    """Each check again with `mostly` exactly at its observed pass ratio (passes) and a hair
    above it (fails), from the one pass's own counts; GX then judges the same thresholds."""
    out = list(checks)
    for check, counts in zip(checks, metrics.one_pass(batch, tuple(checks))):
        if counts.considered and counts.unexpected_count:
            ratio = (float(counts.considered) - float(counts.unexpected_count)) / float(counts.considered)
            for mostly in (ratio, math.nextafter(ratio, 2.0)):
                arguments = dict(check.arguments) | {"mostly": min(mostly, 1.0)}
                out.append(CheckSpec(check.expectation, tuple(arguments.items()), check.severity, check.origin))
    return out


def _comparable(result) -> tuple:
    percent = None if result.unexpected_percent is None else round(result.unexpected_percent, 9)
    return (result.expectation, result.column, result.success, result.unexpected_count, percent,
            result.element_count, result.observed_value, result.exception)


@pytest.mark.parametrize("seed,size", [(1, 40), (7, 120), (23, 9)])
def test_one_pass_verdict_equals_gx_verdict_for_every_covered_check(spark, seed, size):
    batch = spark.createDataFrame(_rows(seed, size), schema=DDL).repartition(3, "id").persist()
    batch.count()
    checks = tuple(_with_boundary_mostly(_base_checks(), batch))
    assert all(metrics.covers(c, tuple(batch.columns)) for c in checks)

    ours = judge_checks(batch, checks, "ours", index=("id", "feature_date"))
    theirs = gx_judge(batch, checks, "gx")

    assert [_comparable(r) for r in ours] == [_comparable(r) for r in theirs]
    assert any(not r.success for r in ours) and any(r.success for r in ours)  # both sides of the line
    boundary = [r for r in ours if "mostly" in r.kwargs]
    assert boundary and {r.success for r in boundary} == {True, False}
    batch.unpersist()


def test_failed_covered_checks_name_offending_rows_that_really_fail(spark):
    batch = spark.createDataFrame(_rows(3, 60), schema=DDL).persist()
    between = _check("expect_column_values_to_be_between", column="x", min_value=0, max_value=5)
    unique = _check("expect_compound_columns_to_be_unique", column_list=["id", "feature_date"])
    [b, u] = judge_checks(batch, (between, unique), "ex", index=("id", "feature_date"))
    assert not b.success and 0 < len(b.example_rows) <= 5
    for row in b.example_rows:
        assert row["x"] is None or not 0 <= row["x"] <= 5  # NaN becomes None in JSON
        assert set(row) == {"x", "id", "feature_date"}
    assert not u.success and u.example_rows
    pairs = [(r["id"], r["feature_date"]) for r in batch.select("id", "feature_date").collect()]
    for row in u.example_rows:
        key = (row["id"], None if row["feature_date"] is None else date.fromisoformat(row["feature_date"]))
        assert pairs.count(key) > 1


def test_uncovered_expectations_fall_back_to_gx_and_covered_ones_never_reach_it(spark, monkeypatch):
    batch = spark.createDataFrame(_rows(5, 30), schema=DDL).persist()
    covered = _check("expect_column_values_to_not_be_null", column="x")
    uncovered = (
        _check("expect_column_max_to_be_between", column="n", min_value=0, max_value=5),
        _check("expect_column_values_to_not_be_null", column="x", row_condition='col("n")>1',
               condition_parser="great_expectations"),
        _check("expect_column_values_to_not_be_null", column="no_such_column"),
        _check("expect_column_values_to_be_between", column="n", min_value=5, max_value=1),  # GX says why
    )
    assert metrics.covers(covered, tuple(batch.columns))
    assert not any(metrics.covers(c, tuple(batch.columns)) for c in uncovered)

    sent: list[str] = []
    real = gx_judge

    def spy(batch, checks, *args, **kwargs):
        sent.extend(c.expectation for c in checks)
        return real(batch, checks, *args, **kwargs)

    monkeypatch.setattr("featurebank.gate.gx.gx_judge", spy)
    results = judge_checks(batch, (covered, *uncovered), "fallback")
    assert sent == [c.expectation for c in uncovered]
    assert [r.expectation for r in results] == [c.expectation for c in (covered, *uncovered)]
    assert results[1].observed_value == max(r.n for r in batch.collect() if r.n is not None)  # GX's own value
    assert not results[3].success  # a missing column fails, as GX says
    assert not results[4].success

    sent.clear()
    bad_condition = _check("expect_column_values_to_not_be_null", column="x", row_condition="no_such_column > 1",
                           condition_parser="spark")
    assert metrics.covers(bad_condition, tuple(batch.columns))  # only Spark's analysis can tell
    [ok, refused] = judge_checks(batch, (covered, bad_condition), "bad-condition")
    assert sent == [covered.expectation, bad_condition.expectation]  # GX judges both, as before
    assert ok.exception is None and not refused.success  # GX: failed, as for a missing column

    sent.clear()
    judge_checks(batch, (covered,), "only-covered")
    assert sent == []  # a plan of covered checks never imports or runs GX


def test_uniqueness_on_a_key_partitioned_cache_needs_no_exchange(spark):
    batch = spark.createDataFrame(_rows(9, 50), schema=DDL).repartition(4, "id").persist()
    batch.count()
    check = _check("expect_compound_columns_to_be_unique", column_list=["id", "feature_date"])
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        metrics.duplicate_groups(batch, check).explain()
    above_cache = text.getvalue().split("InMemoryRelation")[0]  # the cache's own plan holds the repartition
    assert "InMemoryTableScan" in above_cache and "Exchange" not in above_cache, text.getvalue()


def test_verdict_follows_gx_rules_on_empty_and_all_null_domains():
    check = _check("expect_column_values_to_be_between", column="x", min_value=0, mostly=0.5)
    empty = verdict(check, metrics.Counts(0, 0, None))
    assert empty.success and empty.unexpected_percent is None and empty.element_count == 0
    assert empty.unexpected_count is None
    all_null = verdict(check, metrics.Counts(4, 0, 0))
    assert all_null.success and all_null.unexpected_percent is None
    half = verdict(check, metrics.Counts(5, 4, 2))
    assert half.success and half.unexpected_percent == 50.0
    assert not verdict(check, metrics.Counts(5, 4, 3)).success


def test_drift_statistics_ride_in_the_one_pass_and_change_no_count(spark):
    """Issue 21: with the drift checks' per-date bucket sums added, the one pass groups by
    `feature_date`; every check's counts stay those of the plain one pass (NULL dates and an
    empty batch included), and the per-date sums equal a separate drift pass's."""
    from featurebank.engine.drift import reference_of
    from featurebank.engine.profile import FeatureProfile, GroupProfile
    from featurebank.gate.drift import drift_sums, judge_drift

    values = [float(v) for v in range(-2, 8)]
    histogram = tuple((v, v + 1.0, 3) for v in values)
    profile = GroupProfile("g", D0, 30, {"x": FeatureProfile("x", "double", 30, 0, histogram=histogram)})
    reference = reference_of([profile], "x")
    assert reference is not None
    drift = (_check("expect_column_drift_to_be_below", column="x", min_rows=1),
             _check("expect_column_drift_to_be_below", column="n", min_rows=1))  # no reference: no sums
    references = {"x": reference, "n": None}
    checks = tuple(c for c in _base_checks() if metrics.covers(c, tuple(DDL_COLUMNS)))
    for rows in (_rows(5, 150), []):
        batch = spark.createDataFrame(rows, DDL).persist()
        projected, sums = drift_sums(drift, references)
        assert len(sums) == reference.buckets
        counts, by_date = metrics.measure(batch, checks, sums, projected)
        assert counts == metrics.one_pass(batch, checks)
        separate = {r[0]: [int(v or 0) for v in r[1:]]
                    for r in batch.withColumns(projected).groupBy("feature_date").agg(*sums).collect()}
        assert by_date == separate
        assert (None in by_date) == bool(rows)  # a NULL date is a group of its own
        dated = batch.where("feature_date IS NOT NULL")  # a batch the key checks let through
        together = judge_drift(dated, drift, references, (), {d: v for d, v in by_date.items() if d is not None})
        alone = judge_drift(dated, drift, references)
        assert [r.observed_value for r in together] == [r.observed_value for r in alone]
        assert together[0].observed_value != alone[1].observed_value  # x measured, n: no reference
        batch.unpersist()


DDL_COLUMNS = ("id", "feature_date", "x", "n", "s")


def _unique_rows(seed: int, size: int) -> list[tuple]:
    """Rows with no (id, feature_date) twice (NULLs equal): dates far apart, before 1970, on
    the 64-day blocks' edges (bit 63 is BIGINT's sign) and NULL; ids NULL too."""
    rng = random.Random(seed)
    epoch = date(1970, 1, 1)
    edges = [-129, -65, -64, -63, -1, 0, 1, 62, 63, 64, 127, 128, 19_800, 19_863, 19_864]
    rows, seen = [], set()
    while len(rows) < size:
        key = rng.choice([None] + [f"k{i}" for i in range(size // 20 + 1)])
        offset = rng.choice([None, rng.choice(edges), rng.randrange(-40_000, 40_000), rng.randrange(19_700, 19_900)])
        day = None if offset is None else epoch + timedelta(days=offset)
        if (key, day) not in seen:
            seen.add((key, day))
            rows.append((key, day, 1.0, rng.choice([None, 1, 2]), rng.choice([None, "a", ""])))
    return rows


def _python_uniqueness(rows: list[tuple], keep) -> tuple[int, int]:
    """(rows kept, rows whose (id, feature_date) occurs more than once): the oracle."""
    from collections import Counter

    kept_rows = [(r[0], r[1]) for r in rows if keep(r)]
    counts = Counter(kept_rows)
    return len(kept_rows), sum(n for n in counts.values() if n > 1)


@pytest.mark.parametrize("seed", [3, 11, 29])
def test_day_bitmaps_prove_unique_batches_and_never_miss_a_duplicate(spark, seed, monkeypatch):
    """The key check's fast path (`metrics._day_bitmaps`): on a batch with every (id, date)
    once it decides alone (the exact grouping is never asked) and counts the kept rows; add
    one duplicate anywhere (a NULL date's, a date 64 days from another of its key's) and it
    declines, and the exact count names the duplicate rows. Python counts are the oracle."""
    rules = {
        "all_values_are_missing": lambda r: r[0] is not None or r[1] is not None,
        "any_value_is_missing": lambda r: r[0] is not None and r[1] is not None,
        "never": lambda r: True,
    }
    rng = random.Random(seed)
    unique = _unique_rows(seed, 400)
    twins = [unique[0], next(r for r in unique if r[1] is None),
             next(r for r in unique if r[0] is not None and r[1] is not None)]
    late = next(r for r in unique if r[1] is not None)
    near_twin = (late[0], late[1] + timedelta(days=64), *late[2:])  # same bit, next block: no duplicate
    calls = []
    exact = metrics.duplicate_groups
    monkeypatch.setattr(metrics, "duplicate_groups", lambda *a: calls.append(a) or exact(*a))
    for rule, keep in rules.items():
        for condition in (None, "n IS NOT NULL"):
            arguments = {"column_list": ["id", "feature_date"], "ignore_row_if": rule}
            if condition:
                arguments |= {"row_condition": condition, "condition_parser": "spark"}
            check = _check("expect_compound_columns_to_be_unique", **arguments)
            kept = (lambda r, keep=keep: keep(r) and r[3] is not None) if condition else keep
            rows = [r for r in unique if (r[0], r[1]) != (near_twin[0], near_twin[1])]
            rows.append(near_twin)
            rng.shuffle(rows)
            batch = spark.createDataFrame(rows, DDL).repartition(3).persist()
            calls.clear()
            assert metrics._uniqueness(batch, check) == _python_uniqueness(rows, kept)
            assert calls == []  # decided by the bitmaps alone
            batch.unpersist()
            for twin in twins:
                doubled = [*rows, twin]
                rng.shuffle(doubled)
                batch = spark.createDataFrame(doubled, DDL).repartition(3).persist()
                assert metrics._day_bitmaps(batch, check) is None or not kept(twin)
                assert metrics._uniqueness(batch, check) == _python_uniqueness(doubled, kept)
                batch.unpersist()
