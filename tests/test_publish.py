"""Publish: one Delta commit replacing exactly the run's dates; additive schemas only; crash-safe."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest
from publish_fixtures import batch_rows, make_batch, make_plan, with_dates

from featurebank.errors import DefinitionError
from featurebank.io.tables import publish, table_version

REPO = Path(__file__).resolve().parent.parent
D1 = date(2024, 3, 1)


def _read(spark, path: str) -> pd.DataFrame:
    frame = spark.read.format("delta").load(path).toPandas()
    return frame.sort_values(["feature_date", "customer_id"]).reset_index(drop=True)


def _files_by_date(spark, path: str) -> dict[str, set[str]]:
    """The data files of the current snapshot, per feature_date partition."""
    from pyspark.sql import functions as F

    rows = (
        spark.read.format("delta").load(path)
        .select(F.col("feature_date").cast("string").alias("d"), F.input_file_name().alias("f"))
        .distinct().collect()
    )
    out: dict[str, set[str]] = {}
    for row in rows:
        out.setdefault(row.d, set()).add(row.f)
    return out


def test_first_publish_creates_partitioned_table_with_run_metadata(spark, tmp_path):
    from delta.tables import DeltaTable

    plan = make_plan(str(tmp_path / "spend"), D1, D1 + timedelta(days=2))
    version = publish(spark, make_batch(spark, batch_rows(plan.start, plan.end)), plan, "run-1")
    assert version == 0 == table_version(spark, plan.table_path)
    detail = DeltaTable.forPath(spark, plan.table_path).detail().first()
    assert list(detail.partitionColumns) == ["feature_date"]
    meta = json.loads(DeltaTable.forPath(spark, plan.table_path).history(1).first().userMetadata)
    assert meta == {"run_id": "run-1", "data_hash": "hash-1", "metadata_hash": "metadata-1", "group": "spend", "start": "2024-03-01",
                    "end": "2024-03-03"}
    assert len(_read(spark, plan.table_path)) == 9


def test_rerun_of_same_range_gives_same_rows_and_no_duplicates(spark, tmp_path):
    plan = make_plan(str(tmp_path / "spend"), D1, D1 + timedelta(days=1))
    rows = batch_rows(plan.start, plan.end)
    publish(spark, make_batch(spark, rows), plan, "run-1")
    first = _read(spark, plan.table_path)
    version = publish(spark, make_batch(spark, rows), plan, "run-2")
    assert version == 1
    again = _read(spark, plan.table_path)
    pd.testing.assert_frame_equal(first, again)
    assert not again.duplicated(["customer_id", "feature_date"]).any() and len(again) == len(rows)


def test_run_over_one_range_leaves_other_dates_byte_for_byte_unchanged(spark, tmp_path):
    start, end = D1, D1 + timedelta(days=4)
    plan = make_plan(str(tmp_path / "spend"), start, end)
    publish(spark, make_batch(spark, batch_rows(start, end)), plan, "run-1")
    files_before, rows_before = _files_by_date(spark, plan.table_path), _read(spark, plan.table_path)

    middle = with_dates(plan, D1 + timedelta(days=2), D1 + timedelta(days=2))
    publish(spark, make_batch(spark, batch_rows(middle.start, middle.end, spend=500.0)), middle, "run-2")

    files_after, rows_after = _files_by_date(spark, plan.table_path), _read(spark, plan.table_path)
    changed = str(middle.start)
    assert {d: f for d, f in files_before.items() if d != changed} == {d: f for d, f in files_after.items() if d != changed}
    assert files_after[changed].isdisjoint(files_before[changed])
    others = lambda frame: frame[frame.feature_date.astype(str) != changed].reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(others(rows_before), others(rows_after))
    replaced = rows_after[rows_after.feature_date.astype(str) == changed]
    assert sorted(replaced.spend_sum_7d) == [500.0, 501.0, 502.0]


def test_replaced_date_with_no_rows_is_emptied_not_left_stale(spark, tmp_path):
    plan = make_plan(str(tmp_path / "spend"), D1, D1 + timedelta(days=1))
    publish(spark, make_batch(spark, batch_rows(plan.start, plan.end)), plan, "run-1")
    only_second = make_batch(spark, batch_rows(plan.end, plan.end))
    publish(spark, only_second, plan, "run-2")
    assert set(_read(spark, plan.table_path).feature_date.astype(str)) == {str(plan.end)}


def test_batch_rows_outside_the_run_dates_are_refused(spark, tmp_path):
    plan = make_plan(str(tmp_path / "spend"), D1, D1)
    publish(spark, make_batch(spark, batch_rows(D1, D1)), plan, "run-1")
    with pytest.raises(Exception):
        publish(spark, make_batch(spark, batch_rows(D1, D1 + timedelta(days=1))), plan, "run-2")
    assert table_version(spark, plan.table_path) == 0


def test_new_feature_column_is_merged_into_the_table(spark, tmp_path):
    plan = make_plan(str(tmp_path / "spend"), D1, D1)
    publish(spark, make_batch(spark, batch_rows(D1, D1)), plan, "run-1")
    later = with_dates(plan, D1 + timedelta(days=1), D1 + timedelta(days=1))
    rows = [r + (r[3] * 2,) for r in batch_rows(later.start, later.end)]
    wider = make_batch(spark, rows, "customer_id STRING, feature_date DATE, feature_ts TIMESTAMP, "
                       "spend_sum_7d DOUBLE, txn_count_7d BIGINT, spend_double_7d DOUBLE")
    assert publish(spark, wider, later, "run-2") == 1
    table = _read(spark, plan.table_path)
    assert "spend_double_7d" in table.columns
    assert table[table.feature_date == D1].spend_double_7d.isna().all()
    assert list(table[table.feature_date == later.start].spend_double_7d) == [20.0, 22.0, 24.0]


@pytest.mark.parametrize(
    "ddl, names",
    [
        ("customer_id STRING, feature_date DATE, feature_ts TIMESTAMP, spend_sum_7d DOUBLE", ["txn_count_7d"]),
        ("customer_id STRING, feature_date DATE, feature_ts TIMESTAMP, spend_sum_7d DOUBLE, txn_count_7d STRING",
         ["txn_count_7d", "bigint", "string"]),
    ],
    ids=["dropped_column", "type_change"],
)
def test_breaking_schema_change_is_a_clear_error_and_leaves_table_as_it_was(spark, tmp_path, ddl, names):
    plan = make_plan(str(tmp_path / "spend"), D1, D1)
    publish(spark, make_batch(spark, batch_rows(D1, D1)), plan, "run-1")
    before = _read(spark, plan.table_path)
    rows = [r[: len(ddl.split(","))] for r in batch_rows(D1, D1)]
    if "txn_count_7d STRING" in ddl:
        rows = [r[:4] + (str(r[4]),) for r in rows]
    with pytest.raises(DefinitionError) as caught:
        publish(spark, make_batch(spark, rows, ddl), plan, "run-2")
    message = str(caught.value)
    assert all(n in message for n in names)
    assert "new group name" in message and "drop the table" in message
    assert table_version(spark, plan.table_path) == 0
    pd.testing.assert_frame_equal(before, _read(spark, plan.table_path))


def test_table_is_registered_in_the_catalog_when_conf_has_one(spark, tmp_path):
    plan = make_plan(str(tmp_path / "spend"), D1, D1)
    publish(spark, make_batch(spark, batch_rows(D1, D1)), plan, "run-1", catalog_type="hive", database="fb_test_catalog")
    assert spark.table("fb_test_catalog.spend").count() == 3
    publish(spark, make_batch(spark, batch_rows(D1, D1)), plan, "run-2", catalog_type="hive", database="fb_test_catalog")
    assert spark.table("fb_test_catalog.spend").count() == 3


def test_table_version_of_missing_table_is_none(spark, tmp_path):
    assert table_version(spark, str(tmp_path / "nothing")) is None


WRITER = """
import sys, os
from datetime import date
sys.path.insert(0, {tests!r})
os.environ["FEATUREBANK_SPARK_MASTER"] = "local[1]"
from featurebank.io.spark import get_spark
from featurebank.io.tables import publish
from publish_fixtures import make_plan
from pyspark.sql import functions as F
spark = get_spark(None, app_name="kill-me", platform="local")
spark.conf.set("spark.sql.shuffle.partitions", "2")
plan = make_plan({path!r}, date(2024, 3, 1), date(2024, 3, 2))
batch = (spark.range({rows}).select(
    F.concat(F.lit("k"), F.col("id").cast("string")).alias("customer_id"),
    F.when(F.col("id") % 2 == 0, F.lit("2024-03-01")).otherwise(F.lit("2024-03-02")).cast("date").alias("feature_date"),
    F.current_timestamp().alias("feature_ts"),
    (F.rand(7) * 1000).alias("spend_sum_7d"),
    F.col("id").alias("txn_count_7d")).repartition(8))
print("WRITING", flush=True)
publish(spark, batch, plan, "run-killed")
print("DONE", flush=True)
"""


def test_process_killed_mid_publish_leaves_table_readable_and_next_run_succeeds(spark, tmp_path):
    plan = make_plan(str(tmp_path / "spend"), D1, D1 + timedelta(days=1))
    publish(spark, make_batch(spark, batch_rows(plan.start, plan.end)), plan, "run-1")
    old = _read(spark, plan.table_path)
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(tests=str(REPO / "tests"), path=plan.table_path, rows=3_000_000))
    env = dict(os.environ, PYTHONPATH=str(REPO / "lib"))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, env=env, start_new_session=True)
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 240
        line = ""
        while time.monotonic() < deadline and "WRITING" not in line:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
        assert "WRITING" in line, "the writer subprocess never started writing"
        # Kill once the writer's first data files have landed: mid-write, before its commit.
        table_dir = Path(plan.table_path)
        baseline = set(table_dir.rglob("*.parquet"))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if set(table_dir.rglob("*.parquet")) - baseline:
                break
            time.sleep(0.02)
        killed_mid_write = proc.poll() is None and not list((table_dir / "_delta_log").glob("*01.json"))
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)

    version = table_version(spark, plan.table_path)
    assert killed_mid_write, "the writer finished before it could be killed; raise the row count"
    assert version in (0, 1)
    now = _read(spark, plan.table_path)
    if version == 0:
        pd.testing.assert_frame_equal(old, now)
    else:
        assert len(now) == 3_000_000
    rows = batch_rows(plan.start, plan.end, spend=42.0)
    new_version = publish(spark, make_batch(spark, rows), plan, "run-3")
    assert new_version == version + 1
    final = _read(spark, plan.table_path)
    assert len(final) == len(rows) and sorted(final.spend_sum_7d) == sorted(r[3] for r in rows)


def test_two_first_ever_publishes_of_disjoint_dates_in_parallel_both_land(spark, tmp_path):
    import threading

    from delta.tables import DeltaTable

    first = make_plan(str(tmp_path / "spend"), D1, D1 + timedelta(days=1))
    second = with_dates(first, D1 + timedelta(days=5), D1 + timedelta(days=6))
    batches = {p.start: make_batch(spark, batch_rows(p.start, p.end)).cache() for p in (first, second)}
    for batch in batches.values():
        batch.count()
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def run(plan, run_id: str) -> None:
        barrier.wait()
        try:
            publish(spark, batches[plan.start], plan, run_id)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(first, "run-a")), threading.Thread(target=run, args=(second, "run-b"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors
    table = _read(spark, first.table_path)
    assert sorted(set(table.feature_date)) == [first.start, first.end, second.start, second.end]
    assert len(table) == 12
    history = DeltaTable.forPath(spark, first.table_path).history().collect()
    assert sorted(json.loads(h.userMetadata)["run_id"] for h in history) == ["run-a", "run-b"]
