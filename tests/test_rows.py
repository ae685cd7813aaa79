"""Row-level groups (compute_rows) and the whole executor (compute_batch) end to end."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone as dt_timezone
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from oracles.aggregate_oracle import OracleAggregate, snapshots

from featurebank.engine import compute_batch
from featurebank.io.sources import read_source
from featurebank.engine.rows import compute_rows
from featurebank.compile.group import AggregateSpec, ExprSpec, OutputColumn, SourceRead
from featurebank.compile.run import Plan

ZURICH = "Europe/Zurich"


def compute(spark, plan):
    """The executor as the runner drives it: the source read at the I/O edge, then compute_batch."""
    return compute_batch(read_source(spark, plan.source, plan.timezone), plan)


@pytest.fixture()
def utc_session(spark):
    """compute_batch sets the session zone to the project zone: put the fixture's UTC back."""
    yield spark
    spark.conf.set("spark.sql.session.timeZone", "UTC")


def row_plan(location: str, start: date, end: date, timezone: str = ZURICH) -> Plan:
    features = (
        ExprSpec("segment", "upper(segment)"),  # reuses a source column's name
        ExprSpec("income_band", "case when income < 3000 then 'low' else 'high' end"),
        ExprSpec("segment_raw", "segment"),
    )
    read = SourceRead(
        "customers", "parquet", location, "updated_at", ("customer_id", "segment", "income", "updated_at"),
        (("income", "double"), ("updated_at", "timestamp")), start, end + timedelta(days=1),
    )
    output = [OutputColumn("customer_id", "string", "key"), OutputColumn("feature_date", "date", "partition")]
    output += [OutputColumn("feature_ts", "timestamp", "time")] + [OutputColumn(f.name, "string", "feature") for f in features]
    return Plan(
        group="customer_profile", kind="row", entity="customer", keys=("customer_id",), source=read,
        filter="segment is not null", aggregates=(), derived=(), features=features, ttl_days=None, start=start, end=end,
        timezone=timezone, table_path="/tmp/none", output=tuple(output), checks=(), lineage=(), data_hash="x", metadata_hash="x",
    )


CUSTOMERS = [  # customer, segment, income, wall clock in Zurich
    ("c1", "retail", 1000.0, "2024-03-09 23:30:00"),  # the day before the run
    ("c1", "retail", 2000.0, "2024-03-10 00:00:00"),  # first instant of the run
    ("c1", "premium", 9000.0, "2024-03-11 23:59:00"),
    ("c2", None, 5000.0, "2024-03-10 12:00:00"),  # filtered out
    ("c3", "sme", None, "2024-03-11 23:30:00"),  # 22:30 UTC: still the 11th locally
    ("c3", "sme", 100.0, "2024-03-12 00:30:00"),  # after the run
]


def expected_rows(start: date, end: date) -> list[tuple]:
    out = []
    for customer, segment, income, wall in CUSTOMERS:
        local = datetime.fromisoformat(wall).replace(tzinfo=ZoneInfo(ZURICH))
        if segment is None or not start <= local.date() <= end:
            continue
        band = "low" if income is not None and income < 3000 else "high"  # SQL: NULL < 3000 is not true
        out.append((customer, local.date(), int(local.timestamp()) * 1_000_000, segment.upper(), band, segment))
    return sorted(out)


def customers_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "customer_id": [c[0] for c in CUSTOMERS], "segment": [c[1] for c in CUSTOMERS],
        "income": [c[2] for c in CUSTOMERS], "updated_at": pd.to_datetime([c[3] for c in CUSTOMERS]),
        "region": ["x"] * len(CUSTOMERS),
    })


def collect(df) -> list[tuple]:
    cols = [c if c != "feature_ts" else "unix_micros(feature_ts)" for c in df.columns]
    return sorted(tuple(r) for r in df.selectExpr(*cols).collect())


def test_row_level_group_has_one_row_per_filtered_source_row_dated_in_project_zone(spark):
    plan = row_plan("<memory>", date(2024, 3, 10), date(2024, 3, 11))
    rows = spark.createDataFrame(
        [(c, s, i, datetime.fromisoformat(w).replace(tzinfo=ZoneInfo(ZURICH)).astimezone(dt_timezone.utc)) for c, s, i, w in CUSTOMERS],
        "customer_id string, segment string, income double, updated_at timestamp",
    )
    df = compute_rows(rows, plan)
    assert df.columns == ["customer_id", "feature_date", "feature_ts", "segment", "income_band", "segment_raw"]
    assert collect(df) == expected_rows(date(2024, 3, 10), date(2024, 3, 11))


def test_compute_batch_reads_pandas_parquet_and_builds_row_level_batch(utc_session, tmp_path):
    path = str(tmp_path / "customers.parquet")
    customers_frame().to_parquet(path)  # naive nanosecond timestamps: wall clock in Zurich
    df = compute(utc_session, row_plan(path, date(2024, 3, 10), date(2024, 3, 11)))
    assert collect(df) == expected_rows(date(2024, 3, 10), date(2024, 3, 11))


def test_compute_batch_aggregation_matches_oracle_in_project_zone(utc_session, tmp_path):
    tz = "America/New_York"
    first = datetime(2024, 3, 1, tzinfo=ZoneInfo(tz))
    events = []
    for i in range(60):
        local = first + timedelta(hours=13 * i + (i % 5))  # crosses the DST change of 2024-03-10
        events.append({
            "customer_id": f"c{i % 3}", "amount": None if i % 7 == 0 else float(i % 11),
            "merchant": "m" + str(i % 4), "status": "OK" if i % 6 else "BAD", "event_ts": local,
        })
    frame = pd.DataFrame(events)
    frame["event_ts"] = pd.to_datetime([e["event_ts"].replace(tzinfo=None) for e in events])  # naive wall clock
    path = str(tmp_path / "events.parquet")
    frame.to_parquet(path)

    aggregates = (
        AggregateSpec("n", "count", None, (1, 7)),
        AggregateSpec("spend", "sum", "amount", (7,)),
        AggregateSpec("spend_sd", "stddev", "amount", (7,)),
        AggregateSpec("merchants", "count_distinct", "merchant", (3,)),
    )
    start, end = date(2024, 3, 5), date(2024, 4, 3)
    read = SourceRead(
        "events", "parquet", path, "event_ts", ("customer_id", "amount", "merchant", "status", "event_ts"),
        (("amount", "double"), ("event_ts", "timestamp")), start - timedelta(days=7), end,
    )
    names = [n for a in aggregates for n in a.output_names()]
    output = [OutputColumn("customer_id", "string", "key"), OutputColumn("feature_date", "date", "partition")]
    output += [OutputColumn("feature_ts", "timestamp", "time")] + [OutputColumn(n, "?", "feature") for n in names]
    output += [OutputColumn("per_txn", "double", "feature")]
    plan = Plan(
        group="g", kind="aggregation", entity="customer", keys=("customer_id",), source=read, filter="status = 'OK'",
        aggregates=aggregates, derived=(ExprSpec("per_txn", "spend_7d / nullif(n_7d, 0)"),), features=(), ttl_days=None,
        start=start, end=end, timezone=tz, table_path="/tmp/none", output=tuple(output), checks=(), lineage=(),
        data_hash="x", metadata_hash="x",
    )
    df = compute(utc_session, plan)
    assert df.columns == [c.name for c in output]
    got = {(r.customer_id, r.feature_date): r.asDict() for r in df.collect()}
    oracle = [OracleAggregate(a.name, a.function, None if a.expr is None else (lambda e, c=a.expr: e[c]), a.windows) for a in aggregates]
    want = snapshots(events, ("customer_id",), "event_ts", oracle, start, end, tz, keep=lambda e: e["status"] == "OK")
    assert set(got) == set(want)
    for key, row in want.items():
        for name in names:
            if isinstance(row[name], float):
                assert got[key][name] == pytest.approx(row[name]), (key, name)
            else:
                assert got[key][name] == row[name], (key, name)
        per_txn = None if not row["n_7d"] or row["spend_7d"] is None else row["spend_7d"] / row["n_7d"]
        assert got[key]["per_txn"] == pytest.approx(per_txn), key
