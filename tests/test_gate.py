"""The publish gate: GX judges the plan's checks on the exact batch; refusals quarantine and raise."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from aws_fixtures import aws, moto_endpoint  # noqa: F401 - fixtures
from publish_fixtures import COUNT_MOSTLY_PRESENT, KEY_CHECKS, SPEND_NOT_NEGATIVE, batch_rows, make_batch, make_plan

from featurebank.errors import DefinitionError, GateFailed
from featurebank.gate import run_gate, summarize_checks_json
from featurebank.compile.group import CheckSpec
from featurebank.io.tables import publish, table_version

D1, D2 = date(2024, 3, 1), date(2024, 3, 2)


def _files(root: Path) -> set[str]:
    return {p.name for p in root.iterdir()} if root.exists() else set()


def test_passing_batch_returns_result_writes_report_and_no_quarantine(spark, tmp_path):
    root = str(tmp_path / "features")
    plan = make_plan(f"{root}/spend", D1, D2)
    batch = make_batch(spark, batch_rows(D1, D2))
    result = run_gate(batch, plan, "run-ok", root)
    assert result.passed and result.row_count == 6
    assert [c.expectation for c in result.checks] == [c.expectation for c in plan.checks]
    assert all(c.success for c in result.checks)
    assert _files(tmp_path / "features/_reports/spend/run-ok") == {"result.json", "report.html"}
    assert not (tmp_path / "features/_quarantine").exists()
    stored = json.loads((tmp_path / "features/_reports/spend/run-ok/result.json").read_text())
    assert stored["passed"] is True and stored["row_count"] == 6
    assert batch.storageLevel.useMemory or batch.storageLevel.useDisk  # persisted once for gate + publish


def test_failing_error_check_quarantines_batch_reports_and_raises_with_observed_value(spark, tmp_path):
    root = str(tmp_path / "features")
    plan = make_plan(f"{root}/spend", D1, D2)
    rows = batch_rows(D1, D2, customers=5)
    rows[1] = rows[1][:3] + (-5.0,) + rows[1][4:]
    rows[7] = rows[7][:3] + (-1.5,) + rows[7][4:]
    batch = make_batch(spark, rows)
    expected_bad = int((pd.DataFrame(rows)[3] < 0).sum())  # brute-force count of offending rows

    with pytest.raises(GateFailed) as caught:
        run_gate(batch, plan, "run-bad", root)

    message = str(caught.value)
    assert "expect_column_values_to_be_between" in message and "spend_sum_7d" in message
    assert f"{expected_bad} of {len(rows)} rows unexpected" in message and "-5.0" in message
    result = caught.value.result
    assert not result.passed
    [failed] = result.failed
    assert failed.unexpected_count == expected_bad and failed.unexpected_percent == pytest.approx(100 * expected_bad / len(rows))
    quarantined = spark.read.parquet(str(tmp_path / "features/_quarantine/spend/run-bad")).toPandas()
    assert len(quarantined) == len(rows)
    assert sorted(quarantined["spend_sum_7d"]) == sorted(r[3] for r in rows)
    report_dir = tmp_path / "features/_reports/spend/run-bad"
    stored = json.loads((report_dir / "result.json").read_text())
    assert stored["passed"] is False and stored["failed"] == 1
    html = (report_dir / "report.html").read_text()
    assert "REFUSED" in html and "expect_column_values_to_be_between" in html and "spend_sum_7d" in html


def test_failing_gate_leaves_published_table_at_previous_version_and_data(spark, tmp_path):
    root = str(tmp_path / "features")
    plan = make_plan(f"{root}/spend", D1, D2)
    good = make_batch(spark, batch_rows(D1, D2))
    run_gate(good, plan, "run-1", root)
    version = publish(spark, good, plan, "run-1")
    before = spark.read.format("delta").load(plan.table_path).toPandas().sort_values(["feature_date", "customer_id"])

    bad = make_batch(spark, batch_rows(D1, D2, spend=-100.0))
    with pytest.raises(GateFailed):
        run_gate(bad, plan, "run-2", root)

    assert table_version(spark, plan.table_path) == version
    after = spark.read.format("delta").load(plan.table_path).toPandas().sort_values(["feature_date", "customer_id"])
    pd.testing.assert_frame_equal(before.reset_index(drop=True), after.reset_index(drop=True))


def test_warn_check_failure_passes_and_is_reported(spark, tmp_path):
    root = str(tmp_path / "features")
    plan = make_plan(f"{root}/spend", D1, D1)
    rows = batch_rows(D1, D1, customers=4)
    rows[0] = rows[0][:4] + (None,)  # 1 of 4 null: 75% present < mostly 0.9
    result = run_gate(make_batch(spark, rows), plan, "run-warn", root)
    assert result.passed
    [warned] = result.warnings
    assert warned.expectation == COUNT_MOSTLY_PRESENT.expectation and warned.column == "txn_count_7d"
    assert warned.unexpected_count == 1
    assert "1 warned" in summarize_checks_json(result.to_json())
    assert "WARN" in result.summary()


def test_duplicate_entity_key_and_date_fails_always_on_uniqueness_check(spark, tmp_path):
    root = str(tmp_path / "features")
    plan = make_plan(f"{root}/spend", D1, D1, checks=KEY_CHECKS)
    rows = batch_rows(D1, D1, customers=3)
    rows.append(rows[0])
    with pytest.raises(GateFailed) as caught:
        run_gate(make_batch(spark, rows), plan, "run-dup", root)
    [failed] = caught.value.result.failed
    assert failed.expectation == "expect_compound_columns_to_be_unique"
    assert failed.column == "customer_id,feature_date" and failed.unexpected_count == 2


def test_null_entity_key_fails_the_gate(spark, tmp_path):
    root = str(tmp_path / "features")
    plan = make_plan(f"{root}/spend", D1, D1, checks=KEY_CHECKS)
    rows = batch_rows(D1, D1, customers=3)
    rows[2] = (None,) + rows[2][1:]
    with pytest.raises(GateFailed) as caught:
        run_gate(make_batch(spark, rows), plan, "run-null", root)
    assert [c.column for c in caught.value.result.failed] == ["customer_id"]


def test_unknown_expectation_is_a_definition_error(spark, tmp_path):
    root = str(tmp_path / "features")
    check = CheckSpec("expect_column_values_to_be_lovely", (("column", "spend_sum_7d"),), "error", "spend.yaml:9")
    plan = make_plan(f"{root}/spend", D1, D1, checks=(check,))
    with pytest.raises(DefinitionError, match="spend.yaml:9"):
        run_gate(make_batch(spark, batch_rows(D1, D1)), plan, "run-x", root)


def test_check_on_missing_column_fails_instead_of_passing(spark, tmp_path):
    root = str(tmp_path / "features")
    check = CheckSpec("expect_column_values_to_not_be_null", (("column", "no_such_column"),), "error", "spend.yaml:9")
    plan = make_plan(f"{root}/spend", D1, D1, checks=(SPEND_NOT_NEGATIVE, check))
    with pytest.raises(GateFailed, match="no_such_column"):
        run_gate(make_batch(spark, batch_rows(D1, D1)), plan, "run-y", root)


def test_batch_is_computed_once_for_all_checks_and_the_publish(spark, tmp_path):
    from pyspark.sql import functions as F

    root = str(tmp_path / "features")
    plan = make_plan(f"{root}/spend", D1, D2)
    rows = batch_rows(D1, D2, customers=4)
    computed = spark.sparkContext.accumulator(0)

    def touch(value: float) -> float:
        computed.add(1)
        return value

    batch = make_batch(spark, rows).withColumn("spend_sum_7d", F.udf(touch, "double")("spend_sum_7d"))
    result = run_gate(batch, plan, "run-once", root)
    publish(spark, batch, plan, "run-once")
    batch.unpersist()
    assert len(result.checks) == 4
    assert computed.value == len(rows)  # one evaluation per row: GX and the write read the cache


def _bad_spend_rows(value: float) -> list:
    rows = batch_rows(D1, D2, customers=3)
    rows[1] = rows[1][:3] + (value,) + rows[1][4:]
    return rows


def test_verdict_survives_an_unwritable_quarantine_and_report(spark, tmp_path):
    root = tmp_path / "features"
    plan = make_plan(f"{root}/spend", D1, D2)
    (root / "_quarantine").mkdir(parents=True)
    (root / "_quarantine" / "spend").write_text("a file where the group's quarantine directory should be")
    (root / "_reports").mkdir()
    (root / "_reports" / "spend").write_text("a file where the group's report directory should be")

    with pytest.raises(GateFailed) as caught:
        run_gate(make_batch(spark, _bad_spend_rows(-5.0)), plan, "run-bad", str(root))

    message = str(caught.value)
    assert "expect_column_values_to_be_between [spend_sum_7d]" in message and "1 of 6 rows unexpected" in message
    assert f"could not be kept in {root}/_quarantine/spend/run-bad" in message
    assert f"could not be written to {root}/_reports/spend/run-bad" in message
    assert "rejected batch kept in" not in message
    result = caught.value.result
    assert not result.passed and result.quarantine_dir is None and [c.column for c in result.failed] == ["spend_sum_7d"]


def test_passing_gate_still_fails_when_its_report_cannot_be_written(spark, tmp_path):
    root = tmp_path / "features"
    (root / "_reports").mkdir(parents=True)
    (root / "_reports" / "spend").write_text("not a directory")
    plan = make_plan(f"{root}/spend", D1, D1)
    with pytest.raises(OSError):
        run_gate(make_batch(spark, batch_rows(D1, D1)), plan, "run-ok", str(root))


def test_example_values_of_pii_columns_never_leave_the_table(spark, tmp_path):
    root = tmp_path / "features"
    plan = make_plan(f"{root}/spend", D1, D2)
    planted = -98765.4321
    with pytest.raises(GateFailed) as caught:
        run_gate(make_batch(spark, _bad_spend_rows(planted)), plan, "run-pii", str(root),
                 pii_columns={"spend_sum_7d"})
    message = str(caught.value)
    assert "98765" not in message and "e.g. ***" in message and "1 of 6 rows unexpected" in message
    result = caught.value.result
    assert "98765" not in result.to_json() and "98765" not in result.summary()
    report_dir = root / "_reports/spend/run-pii"
    for name in ("result.json", "report.html"):
        text = (report_dir / name).read_text()
        assert "98765" not in text and "***" in text, name
    # the quarantined batch itself is a table: it keeps the rows as they were
    kept = spark.read.parquet(str(root / "_quarantine/spend/run-pii")).toPandas()
    assert planted in set(kept.spend_sum_7d)


def test_values_of_columns_that_are_not_pii_are_shown(spark, tmp_path):
    root = tmp_path / "features"
    plan = make_plan(f"{root}/spend", D1, D2)
    with pytest.raises(GateFailed, match="-98765"):
        run_gate(make_batch(spark, _bad_spend_rows(-98765.0)), plan, "run-open", str(root), pii_columns={"customer_id"})


def test_reports_on_s3_are_written_through_botocores_chain_and_read_back_by_status(spark, aws):
    """A feature root on S3 (a moto server): the gate's report goes through io.files, not the
    JVM's Hadoop file system, and `catalog.status` reads it back the same way."""
    import boto3
    from aws_fixtures import REGION

    from featurebank.catalog.status import read_gate_result

    boto3.client("s3", region_name=REGION).create_bucket(
        Bucket="bank-features", CreateBucketConfiguration={"LocationConstraint": REGION})
    root = "s3a://bank-features/features"
    plan = make_plan(f"{root}/spend", D1, D2)
    result = run_gate(make_batch(spark, batch_rows(D1, D2)), plan, "run-s3", root)
    assert result.report_dir == f"{root}/_reports/spend/run-s3"
    keys = {o["Key"] for o in boto3.client("s3", region_name=REGION).list_objects_v2(Bucket="bank-features")["Contents"]}
    assert keys == {"features/_reports/spend/run-s3/result.json", "features/_reports/spend/run-s3/report.html"}
    stored = read_gate_result(root, "spend", "run-s3")
    assert stored is not None and stored["passed"] is True and stored["row_count"] == 6
    assert read_gate_result(root, "spend", "no-such-run") is None


def test_a_refusal_names_the_key_and_date_of_each_example_row(spark, tmp_path):
    root = str(tmp_path / "features")
    plan = make_plan(f"{root}/spend", D1, D2)
    rows = batch_rows(D1, D2, customers=5)
    rows[1] = rows[1][:3] + (-5.0,) + rows[1][4:]  # c1 on D1
    rows[7] = rows[7][:3] + (-1.5,) + rows[7][4:]  # c2 on D2
    with pytest.raises(GateFailed) as caught:
        run_gate(make_batch(spark, rows), plan, "run-rows", root)
    message = str(caught.value)
    assert "expect_column_values_to_be_between [spend_sum_7d]" in message
    assert "-5.0 at customer_id='c1', feature_date=2024-03-01" in message
    assert "-1.5 at customer_id='c2', feature_date=2024-03-02" in message
    [failed] = caught.value.result.failed
    assert {(r["customer_id"], r["feature_date"]) for r in failed.example_rows} == {("c1", "2024-03-01"), ("c2", "2024-03-02")}


def test_a_passed_gate_names_every_warn_failure_with_its_rows(spark, tmp_path):
    root = str(tmp_path / "features")
    plan = make_plan(f"{root}/spend", D1, D1)
    rows = batch_rows(D1, D1, customers=4)
    rows[0] = rows[0][:4] + (None,)  # c0: 1 of 4 null, under mostly 0.9
    result = run_gate(make_batch(spark, rows), plan, "run-warn-named", root)
    assert result.passed
    assert result.headline().endswith(f"1 warned ({COUNT_MOSTLY_PRESENT.expectation}[txn_count_7d])")
    [warned] = result.warnings
    assert "None at customer_id='c0', feature_date=2024-03-01" in warned.line()


def test_key_values_of_pii_keys_are_masked_in_example_rows(spark, tmp_path):
    root = str(tmp_path / "features")
    plan = make_plan(f"{root}/spend", D1, D2)
    with pytest.raises(GateFailed) as caught:
        run_gate(make_batch(spark, _bad_spend_rows(-98765.0)), plan, "run-pii-key", root, pii_columns={"customer_id"})
    assert "-98765.0 at customer_id=***, feature_date=2024-03-01" in str(caught.value)
    assert "'c1'" not in str(caught.value)


@pytest.mark.parametrize("checks", ["plan", "none", "unmeasurable"])
def test_rows_per_date_come_from_the_gates_one_pass_and_equal_a_count(spark, checks):
    """Issue 20: the gate's one pass counts the batch's rows per date (the publish's `rows_by_date`,
    the run log's) with no count job of its own; the figures equal a plain count per date, NULL
    dates, an empty batch and a pass that cannot run (a row_condition naming no column) included."""
    import random

    from featurebank.gate import judge_batch

    bad = CheckSpec("expect_column_values_to_not_be_null", (("column", "spend_sum_7d"), ("row_condition", "nope > 1"),
                                                            ("condition_parser", "spark")), "warn", "test.yaml:1")
    chosen = {"plan": None, "none": (), "unmeasurable": (bad,)}[checks]
    plan = make_plan("/nowhere/spend", D1, D2, checks=chosen)
    rng = random.Random(11)
    rows = batch_rows(D1, date(2024, 3, 9), customers=7)
    sample = [r[:1] + ((None,) if rng.random() < 0.1 else r[1:2]) + r[2:] for r in rng.sample(rows, 40)]
    for picked in (sample, []):
        batch = make_batch(spark, picked)
        result = judge_batch(batch, plan, "run-rows")
        expected: dict = {}
        for row in picked:
            expected[row[1]] = expected.get(row[1], 0) + 1
        assert dict(result.rows_by_date) == expected
        assert result.row_count == len(picked) == batch.count()
        batch.unpersist()
