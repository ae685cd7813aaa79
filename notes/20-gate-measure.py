"""Time the gate on a persisted batch like the bench's: ~1 M rows x 15 features, local[2].

PYTHONPATH=lib:tools .venv/bin/python notes/20-gate-measure.py [rows]

Prints seconds for: the GX import; GX validating every check (the gate before issue 20);
the one pass (`judge_checks`, the gate after); and, to choose between them, the one pass's
row counts as a separate `agg` after the materialising count versus `DataFrame.observe` on
that count. Each variant runs on a freshly persisted batch so the cache build is not shared.
"""

from __future__ import annotations

import os
import sys
import time

from pyspark.sql import functions as F

from featurebank.compile.group import CheckSpec
from featurebank.gate import metrics
from featurebank.io.spark import get_spark

ROWS = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
DAYS = 100
CHECKS = (
    CheckSpec("expect_column_values_to_not_be_null", (("column", "customer_id"),), "error", "key"),
    CheckSpec("expect_compound_columns_to_be_unique", (("column_list", ("customer_id", "feature_date")),), "error", "key"),
    CheckSpec("expect_column_values_to_be_between", (("column", "spend_sum_90d"), ("min_value", 0)), "error", "b:1"),
    CheckSpec("expect_column_values_to_be_between", (("column", "txn_count_90d"), ("min_value", 1)), "error", "b:2"),
    CheckSpec("expect_column_values_to_not_be_null", (("column", "spend_avg_90d"),), "error", "b:3"),
)


def batch(spark):
    """ROWS rows: ROWS/DAYS customers x DAYS dates, 15 features, hash-partitioned by customer."""
    base = spark.range(ROWS).select(
        F.format_string("c%07d", (F.col("id") % (ROWS // DAYS)).cast("int")).alias("customer_id"),
        F.date_add(F.lit("2024-01-01").cast("date"), (F.col("id") / (ROWS // DAYS)).cast("int")).alias("feature_date"),
        F.col("id"),
    )
    features = []
    for window in (7, 30, 90):
        features += [
            (F.rand(window) * 100 * window).alias(f"spend_sum_{window}d"),
            (F.col("id") % window + 1).alias(f"txn_count_{window}d"),
            F.when((F.rand(window + 1) < 0.01) & F.lit(window == 7), None).otherwise(F.rand(window + 2) * 50).alias(f"spend_avg_{window}d"),
            (F.rand(window + 3) * 500).alias(f"spend_max_{window}d"),
            (F.col("id") % (window + 2)).alias(f"merchants_{window}d"),
        ]
    return base.select("customer_id", "feature_date", *features).repartition(2, "customer_id")


def timed(label, fn):
    started = time.perf_counter()
    value = fn()
    seconds = time.perf_counter() - started
    print(f"{label:55s} {seconds:7.2f} s", flush=True)
    return value


def main() -> None:
    os.environ["FEATUREBANK_SPARK_MASTER"] = "local[2]"
    spark = get_spark(None, app_name="gate-measure", platform="local")
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    print(f"load average before: {os.getloadavg()}")
    timed("import great_expectations", lambda: __import__("great_expectations"))
    from featurebank.gate.gx import gx_judge
    from featurebank.gate.judge import judge_checks

    for round_ in (1, 2, 3):
        df = batch(spark).persist()
        timed(f"[{round_}] materialise (persist + count)", df.count)
        timed(f"[{round_}] before: GX validates every check", lambda: gx_judge(df, CHECKS, "before"))
        timed(f"[{round_}] after: one pass (judge_checks)", lambda: judge_checks(df, CHECKS, "after"))
        row_checks = tuple(c for c in CHECKS if c.expectation != metrics.UNIQUE)
        sums = [F.sum(F.when(metrics.unexpected(c), 1).otherwise(0)) for c in row_checks]
        timed(f"[{round_}]   row counts alone: agg after the count", lambda: df.agg(*sums).first())
        unique = next(c for c in CHECKS if c.expectation == metrics.UNIQUE)
        timed(f"[{round_}]   uniqueness alone: groupBy on the cache", lambda: metrics._uniqueness(df, unique))
        df.unpersist()

        from pyspark.sql import Observation

        fresh = batch(spark).persist()
        observation = Observation("gate")
        timed(f"[{round_}] observe on the materialising count (count + rows)",
              lambda: (fresh.observe(observation, *sums).count(), observation.get))
        fresh.unpersist()
        fresh = batch(spark).persist()
        timed(f"[{round_}] materialising count then agg (count + rows)",
              lambda: (fresh.count(), fresh.agg(*sums).first()))
        fresh.unpersist()
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
