"""The numeric contract (README "Numeric contract"): bit-identical values whatever the run's shape.

Issue 16 finding 11: rerunning one date (the short-range direct path) changed published sums in
the last digits against the backfill's path. Here every function runs over
order-sensitive values (1e16, 1, -1e16, 0.1, ...) with NULLs, time ties and events at local
midnight, from a Parquet source of 1 file and of 7 files, as a 60-date backfill, 3-date and
1-date runs, three 1-date runs and chunked runs; every value is compared by its bytes (no
tolerance) with each other and with the contract's arithmetic done in Python `decimal`.
"""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta, timezone as dt_timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from oracles.aggregate_oracle import OracleAggregate, snapshots
from test_aggregate import make_plan

from featurebank.engine.aggregate import DIRECT_MAX_DATES, compute_aggregation
from featurebank.compile.group import AggregateSpec
from featurebank.compile.run import Plan
from featurebank.runner import date_chunks

TZ = "Europe/Zurich"
FIRST = date(2024, 3, 1)  # the spring DST change (03-31) lies inside the 60 dates
SCHEMA = "customer_id string, event_ts timestamp, amount double, qty bigint, price decimal(12,2), merchant string, status string"
COLUMNS = ("customer_id", "event_ts", "amount", "qty", "price", "merchant", "status")
WINDOWS = (1, 3, 30)
AGGREGATES = (
    AggregateSpec("rows", "count", None, WINDOWS),
    AggregateSpec("amounts", "count", "amount", WINDOWS),
    AggregateSpec("amount_sum", "sum", "amount", WINDOWS),
    AggregateSpec("qty_sum", "sum", "qty", WINDOWS),
    AggregateSpec("price_sum", "sum", "price", WINDOWS),
    AggregateSpec("amount_avg", "avg", "amount", WINDOWS),
    AggregateSpec("qty_avg", "avg", "qty", WINDOWS),
    AggregateSpec("price_avg", "avg", "price", WINDOWS),
    AggregateSpec("amount_min", "min", "amount", WINDOWS),
    AggregateSpec("price_max", "max", "price", WINDOWS),
    AggregateSpec("amount_std", "stddev", "amount", WINDOWS),
    AggregateSpec("price_std", "stddev", "price", WINDOWS),
    AggregateSpec("merchants", "count_distinct", "merchant", WINDOWS),
    AggregateSpec("merchants_approx", "approx_count_distinct", "merchant", WINDOWS),
    AggregateSpec("last_amount", "last", "amount", WINDOWS),
)
INPUT_TYPES = {"price": "decimal(12,2)"}
ORACLE = [
    OracleAggregate(a.name, a.function, None if a.expr is None else (lambda e, c=a.expr: e[c]), a.windows, INPUT_TYPES.get(a.expr or ""))
    for a in AGGREGATES
]
AMOUNTS = (1e16, 1.0, -1e16, 0.1, 0.2, 0.3, 1282.36, -0.7, 2.5e-7, 123456789.123, None)
PRICES = ("1282.36", "0.10", "-99999999.99", "0.01", "7.05", None)


def contract_events() -> list[dict[str, Any]]:
    """~170 events over 70 days: the order-sensitive values, NULLs, time ties, local midnights."""
    rng = random.Random(16)
    tz = ZoneInfo(TZ)
    events: list[dict[str, Any]] = []

    def event(customer: str, day: int, seconds: int, **values: Any) -> None:
        d = FIRST + timedelta(days=day)
        local = datetime(d.year, d.month, d.day, tzinfo=tz) + timedelta(seconds=seconds)
        price = rng.choice(PRICES)
        row = {
            "customer_id": customer, "event_ts": local.astimezone(dt_timezone.utc), "amount": rng.choice(AMOUNTS),
            "qty": rng.choice([1, 2**40, -(2**40), 3, None]), "price": None if price is None else Decimal(price),
            "merchant": rng.choice(["a", "b", "c", None]), "status": "OK" if rng.random() < 0.9 else "BAD",
        }
        row.update(values)
        events.append(row)

    for day, amount in ((0, 1e16), (0, 1.0), (0, -1e16), (1, 0.1), (1, 0.2), (2, 0.3), (2, 1282.36)):
        event("c1", day + 30, 0 if amount != 1.0 else 86399, amount=amount, status="OK")  # midnight / last second
    for _ in range(3):  # ties on time: `last` takes the greatest value
        day = rng.randrange(70)
        event("c1", day, 43200, amount=1e16)
        event("c1", day, 43200, amount=-1e16)
        event("c1", day, 43200, amount=None)
    for customer in ("c1", "c2", "c3"):
        for _ in range(45):
            event(customer, rng.randrange(70), rng.choice([0, rng.randrange(86400)]))
    return events


def write_source(spark, events: list[dict[str, Any]], path: str, files: int) -> Any:
    """The events as a Parquet source of exactly `files` files, read back as the engine would."""
    rows = [tuple(e[c] for c in COLUMNS) for e in (events if files > 1 else list(reversed(events)))]
    spark.createDataFrame(rows, SCHEMA).repartition(files).write.parquet(path)
    written = spark.read.parquet(path)
    assert written.inputFiles() and len([f for f in written.inputFiles() if f.endswith(".parquet")]) == files
    return written.repartition(files) if files > 1 else written.coalesce(1)


def value_bytes(value: Any) -> Any:
    """A value as something equal only when the published bytes are: floats by `float.hex`."""
    if isinstance(value, float):
        return ("double", value.hex())
    if isinstance(value, Decimal):
        return ("decimal", str(value))
    return (type(value).__name__, value)


def published(spark, source, plan: Plan) -> dict[tuple[Any, ...], dict[str, Any]]:
    """{(customer, date): {feature: value bytes}} of one run."""
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in compute_aggregation(source, plan).collect():
        d = row.asDict()
        key = (d.pop("customer_id"), d.pop("feature_date"))
        d.pop("feature_ts")
        out[key] = {c: value_bytes(v) for c, v in d.items()}
    return out


def plan_for(start: date, end: date) -> Plan:
    return make_plan(AGGREGATES, start, end, TZ)


@pytest.fixture(scope="module")
def sources(spark, tmp_path_factory):
    events = contract_events()
    root = tmp_path_factory.mktemp("contract")
    return events, {files: write_source(spark, events, str(root / f"files{files}"), files) for files in (1, 7)}


@pytest.fixture(scope="module")
def backfill(spark, sources):
    """The 60-date backfill (the kernel path) from the 1-file source."""
    _, by_files = sources
    return published(spark, by_files[1], plan_for(FIRST + timedelta(days=5), FIRST + timedelta(days=64)))


def oracle_bytes(events, start: date, end: date) -> dict[tuple[Any, ...], dict[str, Any]]:
    expected = snapshots(events, ("customer_id",), "event_ts", ORACLE, start, end, TZ, keep=lambda e: e["status"] == "OK")
    return {k: {c: value_bytes(v) for c, v in row.items() if c != "feature_ts"} for k, row in expected.items()}


def assert_same_bytes(actual: dict, expected: dict, what: str) -> None:
    assert set(actual) == set(expected), f"{what}: rows differ: {sorted(set(actual) ^ set(expected))[:5]}"
    diffs = [(k, c, actual[k][c], v) for k, row in expected.items() for c, v in row.items() if actual[k][c] != v]
    assert not diffs, f"{what}: {len(diffs)} values differ, e.g. (row, feature, got, want): {diffs[:4]}"


def test_backfill_values_equal_the_contracts_exact_arithmetic_bit_for_bit(sources, backfill):
    events, _ = sources
    expected = oracle_bytes(events, FIRST + timedelta(days=5), FIRST + timedelta(days=64))
    assert_same_bytes(backfill, expected, "60-date backfill vs contract oracle")
    sums = {row["amount_sum_3d"] for row in backfill.values()}
    assert ("double", 1.0.hex()) in sums  # 1e16 + 1 - 1e16 kept exactly, not 0.0 or 2.0


def test_source_in_seven_files_publishes_the_same_bytes_as_one_file(spark, sources, backfill):
    _, by_files = sources
    plan = plan_for(FIRST + timedelta(days=5), FIRST + timedelta(days=64))
    assert_same_bytes(published(spark, by_files[7], plan), backfill, "7-file backfill vs 1-file backfill")


@pytest.mark.parametrize("files", [1, 7])
def test_short_runs_publish_the_backfills_bytes(spark, sources, backfill, files):
    # 3 dates and 1 date take the direct path; both must equal the backfill's bytes.
    _, by_files = sources
    start = FIRST + timedelta(days=31)
    for dates in (DIRECT_MAX_DATES, 1):
        end = start + timedelta(days=dates - 1)
        got = published(spark, by_files[files], plan_for(start, end))
        want = {k: v for k, v in backfill.items() if start <= k[1] <= end}
        assert got, f"{dates}-date run published nothing"
        assert_same_bytes(got, want, f"{dates}-date run from {files} file(s) vs backfill")


def test_three_dates_as_three_one_date_runs_and_chunked_runs_publish_the_backfills_bytes(spark, sources, backfill):
    _, by_files = sources
    start, end = FIRST + timedelta(days=30), FIRST + timedelta(days=37)
    shapes = {
        "three 1-date runs": date_chunks(start, start + timedelta(days=2), 1),
        "8 dates in chunks of 4 (kernel)": date_chunks(start, end, 4),
    }
    for shape, chunks in shapes.items():
        got: dict[tuple[Any, ...], dict[str, Any]] = {}
        for first, last in chunks:
            got.update(published(spark, by_files[7], plan_for(first, last)))
        last_date = chunks[-1][1]
        want = {k: v for k, v in backfill.items() if start <= k[1] <= last_date}
        assert_same_bytes(got, want, shape)


def one_entity_run(spark, amounts: list[Any], qtys: list[Any], aggregate: AggregateSpec, dates: int) -> list[Any]:
    """Collect one aggregate's snapshots over events on 2024-03-02 for `dates` dates from 03-03."""
    at = datetime(2024, 3, 2, 12, tzinfo=dt_timezone.utc)
    rows = [("c9", at, a, q, None, "m", "OK") for a, q in zip(amounts, qtys)]
    start = date(2024, 3, 3)
    plan = make_plan((aggregate,), start, start + timedelta(days=dates - 1), "UTC")
    return compute_aggregation(spark.createDataFrame(rows, SCHEMA), plan).collect()


@pytest.mark.parametrize("dates", [1, DIRECT_MAX_DATES + 2])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 1e25])
def test_a_value_exact_arithmetic_cannot_hold_fails_the_run_naming_feature_and_key(spark, bad, dates):
    # Before: NaN/inf summed to NaN and 1e25 fell back to double arithmetic, silently.
    with pytest.raises(Exception, match=r"aggregation 'amount_sum' \(sum\) cannot be computed exactly.*customer_id=c9"):
        one_entity_run(spark, [1.0, bad], [1, 1], AggregateSpec("amount_sum", "sum", "amount", (1, 3)), dates)


@pytest.mark.parametrize("dates", [1, DIRECT_MAX_DATES + 2])
def test_an_integer_sum_beyond_bigint_fails_the_run_instead_of_wrapping(spark, dates):
    with pytest.raises(Exception, match=r"aggregation 'qty_sum' \(sum\) cannot be computed exactly: the sum is outside BIGINT"):
        one_entity_run(spark, [1.0] * 3, [2**62] * 3, AggregateSpec("qty_sum", "sum", "qty", (2,)), dates)


def test_a_backfill_publishes_what_short_runs_publish_when_the_entitys_history_leaves_the_exact_range(spark):
    # 6e18 a day: every 1-day window fits decimal(37,18) (|total| < 1e19), the entity's total over
    # three days does not. Before the kernel the backfill read windows as differences of running
    # totals and refused what a short run of the same dates published; a window's total is now
    # the exact sum of its own days on every path, so both publish the same bytes.
    at = datetime(2024, 3, 1, 12, tzinfo=dt_timezone.utc)
    rows = [("c9", at + timedelta(days=d), 6e18, 1, None, "m", "OK") for d in range(3)]
    events = spark.createDataFrame(rows, SCHEMA)
    aggregate = (AggregateSpec("amount_sum", "sum", "amount", (1,)),)
    start, end = date(2024, 3, 2), date(2024, 3, 2) + timedelta(days=DIRECT_MAX_DATES + 1)
    short = [r for i in range((end - start).days + 1)
             for r in compute_aggregation(events, make_plan(aggregate, start + timedelta(days=i), start + timedelta(days=i), "UTC")).collect()]
    backfill = compute_aggregation(events, make_plan(aggregate, start, end, "UTC")).collect()
    assert [(r.feature_date, r.amount_sum_1d) for r in backfill] == [(r.feature_date, r.amount_sum_1d) for r in short]
    assert [r.amount_sum_1d for r in backfill] == [6e18, 6e18, 6e18]


@pytest.mark.parametrize("dates", [1, DIRECT_MAX_DATES + 2])
def test_a_day_total_beyond_the_exact_range_fails_the_run_in_every_path(spark, dates):
    # Each 6e19 converts exactly; their sum 1.2e20 does not fit decimal(38,18): no double fallback.
    with pytest.raises(Exception, match=r"aggregation 'amount_sum' \(sum\) cannot be computed exactly.*customer_id=c9"):
        one_entity_run(spark, [6e19, 6e19], [1, 1], AggregateSpec("amount_sum", "sum", "amount", (1, 3)), dates)


def test_a_null_key_entity_counts_its_distinct_values_alike_on_both_paths(spark) -> None:  # noqa: ANN001
    """The direct path counts distinct values apart and joins them back: NULL keys must meet NULL keys."""
    at = datetime(2024, 3, 2, 12, tzinfo=dt_timezone.utc)
    rows = [(c, at + timedelta(days=d), 1.0, 1, None, m, "OK")
            for c, m, d in ((None, "m1", 0), (None, "m2", -3), (None, None, 0), (None, "m1", -5), ("c9", "m1", 0))]
    aggregate = AggregateSpec("merchants", "count_distinct", "merchant", (1, 7))
    start = date(2024, 3, 3)
    got = {}
    for dates in (1, DIRECT_MAX_DATES + 2):  # the direct path, the backfill kernel
        plan = make_plan((aggregate,), start, start + timedelta(days=dates - 1), "UTC")
        got[dates] = {(r["customer_id"], r["feature_date"]): (r["merchants_1d"], r["merchants_7d"])
                      for r in compute_aggregation(spark.createDataFrame(rows, SCHEMA), plan).collect()
                      if r["feature_date"] == start}
    assert got[1] == got[DIRECT_MAX_DATES + 2] == {(None, start): (1, 2), ("c9", start): (1, 1)}
