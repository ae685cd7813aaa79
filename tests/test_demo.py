"""The demo, small, end to end in a copy of the example project: every group published as a
Delta table partitioned by feature_date that delta-rs reads exactly as Spark does, and a
training set with one row per labelled transaction of the run's dates."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest
from deltalake import DeltaTable
from rich.console import Console

from featurebank.io import metadata
from featurebank_demo.datagen import DatagenParams
from featurebank_demo.demo import TRAINING_SET, ensure_bank, main, print_summary, run_demo

# Explicit end dates: what the tests generate and publish must not depend on the day they run.
TINY = DatagenParams(customers=200, merchants=40, days=60, end_date=date(2024, 3, 31), seed=5)
RUN_DAYS = 10
TINY_RUN_END = date(2024, 4, 1)  # the day after the data's last day: the first snapshot to see it
SMALL_BANK = DatagenParams(customers=30, merchants=20, days=20, end_date=date(2024, 1, 31), seed=1)


@pytest.fixture(scope="module")
def demo(spark, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN001, ANN201
    import shutil

    from conftest import REPO

    root = tmp_path_factory.mktemp("demo") / "project"
    shutil.copytree(REPO / "features", root / "features")
    shutil.copytree(REPO / "conf", root / "conf")
    console = Console(record=True, width=200)
    first = run_demo(root, params=TINY, run_days=RUN_DAYS, console=console)
    print_summary(first, console)
    return root, first, console.export_text()


def test_demo_publishes_every_group_partitioned_by_feature_date_as_spark_sees_it(spark, demo) -> None:  # noqa: ANN001
    root, result, _ = demo
    assert {g.group for g in result.groups} == {
        "customer_card_spend", "merchant_risk", "account_activity", "customer_profile", "account_profile"}
    for outcome in result.groups:
        assert outcome.status == "published", outcome
        table = DeltaTable(outcome.table_path)
        assert table.metadata().partition_columns == ["feature_date"], outcome.group
        rows = metadata.read_rows(outcome.table_path)
        seen_by_spark = spark.read.format("delta").load(outcome.table_path)
        assert rows.num_rows == seen_by_spark.count() == outcome.rows > 0, outcome.group
        con = duckdb.connect()
        con.register("published", rows)
        by_date_rs = con.execute("select feature_date, count(*) from published group by 1 order by 1").fetchall()
        by_date_spark = sorted((r[0], r[1]) for r in seen_by_spark.groupBy("feature_date").count().collect())
        assert by_date_rs == by_date_spark, outcome.group
        assert min(d for d, _ in by_date_rs) >= outcome.start and max(d for d, _ in by_date_rs) <= outcome.end


def test_aggregation_groups_cover_the_last_run_days_and_row_groups_the_whole_history(demo) -> None:  # noqa: ANN001
    _, result, _ = demo
    assert result.run_end == TINY_RUN_END == TINY.end_date + timedelta(days=1)
    assert (result.run_end - result.run_start).days == RUN_DAYS - 1
    for outcome in result.groups:
        expected_start = result.run_start if outcome.kind == "aggregation" else TINY.start_date
        assert (outcome.start, outcome.end) == (expected_start, TINY_RUN_END), outcome


def test_training_set_has_one_row_per_label_of_the_run_dates(demo) -> None:  # noqa: ANN001
    root, result, _ = demo
    labels = root / "warehouse" / "raw" / "card_fraud_labels" / "*.parquet"
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    expected = con.execute(
        f"select count(*) from read_parquet('{labels}') "
        f"where ts >= '{result.run_start}'::timestamptz and ts < '{result.run_end}'::timestamptz + interval 1 day"
    ).fetchall()[0][0]
    assert result.training_rows == expected > 0
    assert result.training_path == root / "warehouse" / "training" / TRAINING_SET
    assert (result.training_path / "_manifest.json").exists()
    manifest = json.loads((result.training_path / "_manifest.json").read_text())
    assert manifest  # written by the training-set builder; its content is tested there


def test_summary_names_groups_versions_and_the_training_set(demo) -> None:  # noqa: ANN001
    _, result, text = demo
    for outcome in result.groups:
        assert outcome.group in text
    assert TRAINING_SET in text and f"{result.training_rows:,}" in text
    assert "Signal check" in text


def test_rerun_reuses_the_generated_bank_and_other_parameters_regenerate_it(tmp_path: Path) -> None:
    counts, reused = ensure_bank(tmp_path, SMALL_BANK)
    assert not reused and counts["card_transactions"] > 0
    stamp = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.parquet")}
    again, reused = ensure_bank(tmp_path, SMALL_BANK)
    assert reused and again == counts
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.parquet")} == stamp
    other, reused = ensure_bank(tmp_path, DatagenParams(**{**SMALL_BANK.__dict__, "seed": 99}))
    assert not reused and other != counts


def test_rerun_republishes_the_same_dates_with_the_same_rows(spark, demo) -> None:  # noqa: ANN001
    root, first, _ = demo
    from featurebank.definitions import load_project
    from featurebank.runner import run_group

    project = load_project(root)
    before = next(g for g in first.groups if g.group == "merchant_risk")
    (again,) = run_group(project, "merchant_risk", before.start, before.end, spark=spark)
    assert again.rows_written == before.rows
    assert again.delta_version is not None and before.delta_version is not None
    assert again.delta_version > before.delta_version
    assert spark.read.format("delta").load(before.table_path).count() == before.rows


def test_a_second_demo_computes_nothing_when_nothing_changed(spark, demo) -> None:  # noqa: ANN001
    root, first, _ = demo
    versions = {g.group: DeltaTable(g.table_path).version() for g in first.groups}
    again = run_demo(root, params=TINY, run_days=RUN_DAYS, console=Console(record=True, width=200))
    assert again.data_reused
    assert {(g.group, g.status) for g in again.groups} == {(g.group, "up to date") for g in first.groups}
    assert {g.group: DeltaTable(g.table_path).version() for g in again.groups} == versions  # no new Delta version
    assert {g.group: g.rows for g in again.groups} == {g.group: g.rows for g in first.groups}


def test_the_training_set_is_kept_only_while_every_group_it_read_is_unchanged(spark, demo) -> None:  # noqa: ANN001
    from featurebank.definitions import load_project
    from featurebank.runner import run_group
    from featurebank.training.manifest import read_manifest, stale_reasons

    root, first, _ = demo
    run_demo(root, params=TINY, run_days=RUN_DAYS, console=Console(record=True, width=200))  # current whatever ran before
    kept = run_demo(root, params=TINY, run_days=RUN_DAYS, console=Console(record=True, width=200))
    assert kept.training_kept and kept.data_reused
    assert (kept.training_rows, kept.fraud_rate, kept.pit_outcomes) == (first.training_rows, first.fraud_rate,
                                                                        first.pit_outcomes)
    assert kept.signal == first.signal  # read back from the Parquet files, not recomputed
    project = load_project(root)
    manifest = read_manifest(kept.training_path)
    assert stale_reasons(manifest, project) == ()
    merchant = next(g for g in first.groups if g.group == "merchant_risk")
    run_group(project, "merchant_risk", merchant.start, merchant.end, spark=spark)  # a new Delta version
    reasons = stale_reasons(manifest, project)
    assert len(reasons) == 1 and reasons[0].startswith("merchant_risk is at Delta version"), reasons
    rebuilt = run_demo(root, params=TINY, run_days=RUN_DAYS, console=Console(record=True, width=200))
    assert not rebuilt.training_kept and rebuilt.training_rows == first.training_rows


def test_a_broken_definition_fails_with_one_line_and_exit_code_2(example_project: Path, capsys) -> None:  # noqa: ANN001
    broken = example_project / "features" / "broken.yaml"
    broken.write_text("kind: feature_group\nname: broken\nentity: nobody\nsource: nothing\nfeatures: []\n")
    assert main(["--project", str(example_project), "--customers", "20", "--days", "20"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("demo failed:") and len(err.splitlines()) == 1
    assert not (example_project / "warehouse").exists()  # validated before generating anything
