"""Hand-made plans and batches for the gate, publish and runner tests (no compile step needed)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from typing import Any

from featurebank.compile.group import KEY_CHECK, AggregateSpec, CheckSpec, OutputColumn, SourceRead
from featurebank.compile.run import Plan

BATCH_DDL = "customer_id STRING, feature_date DATE, feature_ts TIMESTAMP, spend_sum_7d DOUBLE, txn_count_7d BIGINT"

KEY_CHECKS = (
    CheckSpec("expect_column_values_to_not_be_null", (("column", "customer_id"),), "error", KEY_CHECK),
    CheckSpec(
        "expect_compound_columns_to_be_unique", (("column_list", ("customer_id", "feature_date")),), "error", KEY_CHECK
    ),
)
SPEND_NOT_NEGATIVE = CheckSpec(
    "expect_column_values_to_be_between", (("column", "spend_sum_7d"), ("min_value", 0)), "error", "spend.yaml:12"
)
COUNT_MOSTLY_PRESENT = CheckSpec(
    "expect_column_values_to_not_be_null", (("column", "txn_count_7d"), ("mostly", 0.9)), "warn", "spend.yaml:14"
)


def make_plan(table_path: str, start: date, end: date, *, checks: tuple[CheckSpec, ...] | None = None,
              group: str = "spend", data_hash: str = "hash-1") -> Plan:
    """An aggregation plan for a `spend` group with two features, as compile_plan would give."""
    return Plan(
        group=group,
        kind="aggregation",
        entity="customer",
        keys=("customer_id",),
        source=SourceRead("txns", "parquet", "/nowhere", "event_ts", ("customer_id", "amount", "event_ts"), (),
                          start - timedelta(days=7), end),
        filter=None,
        aggregates=(AggregateSpec("spend_sum", "sum", "amount", (7,)), AggregateSpec("txn_count", "count", None, (7,))),
        derived=(),
        features=(),
        ttl_days=None,
        start=start,
        end=end,
        timezone="UTC",
        table_path=table_path,
        output=(
            OutputColumn("customer_id", "string", "key"),
            OutputColumn("feature_date", "date", "partition"),
            OutputColumn("feature_ts", "timestamp", "time"),
            OutputColumn("spend_sum_7d", "double", "feature"),
            OutputColumn("txn_count_7d", "bigint", "feature"),
        ),
        checks=KEY_CHECKS + (SPEND_NOT_NEGATIVE, COUNT_MOSTLY_PRESENT) if checks is None else checks,
        lineage=(),
        data_hash=data_hash,
        metadata_hash="metadata-1",
    )


def with_dates(plan: Plan, start: date, end: date) -> Plan:
    return replace(plan, start=start, end=end)


def batch_rows(start: date, end: date, customers: int = 3, *, spend: float = 10.0) -> list[tuple[Any, ...]]:
    """One row per (customer, date): spend = spend + customer index, count = index + 1."""
    rows = []
    day = start
    while day <= end:
        ts = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
        for i in range(customers):
            rows.append((f"c{i}", day, ts, spend + i, i + 1))
        day += timedelta(days=1)
    return rows


def make_batch(spark, rows: list[tuple[Any, ...]], ddl: str = BATCH_DDL):
    return spark.createDataFrame(rows, schema=ddl)
