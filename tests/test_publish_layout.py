"""A cheaper publish (issue 20): statistics for keys and time only, no shuffle before a local
write; same rows, per-file record counts kept, still one commit per run."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
from publish_fixtures import batch_rows, make_batch, make_plan

from featurebank.io.tables import (
    LOCAL_FILES_PER_DATE,
    STATS_COLUMNS_PROPERTY,
    _local_cores,
    clustered,
    publish,
    stats_columns,
)

D1 = date(2024, 3, 1)


def _adds(path: str) -> list[dict]:
    adds = []
    for log in sorted(Path(path, "_delta_log").glob("*.json")):
        for line in log.read_text().splitlines():
            action = json.loads(line)
            if "add" in action:
                adds.append(action["add"])
    return adds


def test_the_table_keeps_statistics_for_keys_and_time_and_every_files_record_count(spark, tmp_path):
    plan = make_plan(str(tmp_path / "spend"), D1, D1 + timedelta(days=2))
    rows = batch_rows(plan.start, plan.end)
    publish(spark, make_batch(spark, rows), plan, "run-1")
    properties = dict(spark.sql(f"SHOW TBLPROPERTIES delta.`{plan.table_path}`").collect())
    assert properties[STATS_COLUMNS_PROPERTY] == "customer_id,feature_ts"
    stats = [json.loads(a["stats"]) for a in _adds(plan.table_path)]
    assert sum(s["numRecords"] for s in stats) == len(rows)
    assert all(set(s["minValues"]) <= {"customer_id", "feature_ts"} for s in stats)
    assert all("customer_id" in s["minValues"] for s in stats)  # data skipping by key still works
    per_date: dict[str, int] = {}
    for add in _adds(plan.table_path):
        per_date[add["partitionValues"]["feature_date"]] = per_date.get(add["partitionValues"]["feature_date"], 0) + 1
    assert max(per_date.values()) <= LOCAL_FILES_PER_DATE


def test_a_second_run_is_one_commit_with_the_same_values(spark, tmp_path):
    plan = make_plan(str(tmp_path / "spend"), D1, D1 + timedelta(days=1))
    rows = batch_rows(plan.start, plan.end)
    assert publish(spark, make_batch(spark, rows), plan, "run-1") == 0
    assert publish(spark, make_batch(spark, rows).repartition(5), plan, "run-2") == 1  # one commit, no ALTER
    read = spark.read.format("delta").load(plan.table_path).toPandas()
    expected = make_batch(spark, rows).toPandas()
    order = ["feature_date", "customer_id"]
    pd.testing.assert_frame_equal(read.sort_values(order).reset_index(drop=True)[expected.columns],
                                  expected.sort_values(order).reset_index(drop=True), check_dtype=False)


def test_a_local_write_coalesces_without_an_exchange(spark):
    batch = make_batch(spark, batch_rows(D1, D1 + timedelta(days=3))).repartition(8, "customer_id").persist()
    try:
        batch.count()  # persisted, as the runner hands it to publish
        laid = clustered(spark, batch, ("customer_id",))
        assert laid.rdd.getNumPartitions() <= min(2, LOCAL_FILES_PER_DATE)
        above_cache = laid._jdf.queryExecution().executedPlan().toString().split("InMemoryTableScan")[0]
        assert "Coalesce" in above_cache and "Exchange" not in above_cache
    finally:
        batch.unpersist()


def test_stats_columns_and_local_cores():
    assert stats_columns(["k1", "feature_date", "k2", "feature_ts", "x"], ("k1", "k2")) == ["k1", "k2", "feature_ts"]
    assert stats_columns(["k", "feature_date", "x"], ("k",)) == ["k"]
    assert _local_cores("local[2]") == 2 and _local_cores("local") == 1 and _local_cores("local[3,4]") == 3
    assert _local_cores("local[*]") >= 1
