"""Aggregation snapshots against a brute-force oracle (tests/oracles/aggregate_oracle.py)."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta, timezone as dt_timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from oracles.aggregate_oracle import ORACLE_CASES, OracleAggregate, snapshots

from featurebank.aggregators import AGGREGATION_FUNCTIONS
from featurebank.engine.aggregate import DIRECT_MAX_DATES, compute_aggregation
from featurebank.compile.group import AggregateSpec, ExprSpec, OutputColumn, SourceRead
from featurebank.compile.run import Plan

SCHEMA = "customer_id string, event_ts timestamp, amount double, qty int, merchant string, channel string, status string"
COLUMNS = ("customer_id", "event_ts", "amount", "qty", "merchant", "channel", "status")

AGGREGATES = (
    AggregateSpec("txn_count", "count", None, (1, 3, 14)),
    AggregateSpec("amount_count", "count", "amount", (7,)),
    AggregateSpec("spend_sum", "sum", "amount", (1, 7, 14)),
    AggregateSpec("qty_sum", "sum", "qty", (3, 14)),
    AggregateSpec("double_spend", "sum", "amount * 2", (7,)),
    AggregateSpec("spend_avg", "avg", "amount", (3, 14)),
    AggregateSpec("spend_min", "min", "amount", (1, 7)),
    AggregateSpec("spend_max", "max", "amount", (3, 14)),
    AggregateSpec("spend_std", "stddev", "amount", (3, 14)),
    AggregateSpec("merchants", "count_distinct", "merchant", (1, 7, 14)),
    AggregateSpec("merchants_approx", "approx_count_distinct", "merchant", (14,)),
    AggregateSpec("last_channel", "last", "channel", (2, 14)),
)


def _value(expr: str | None):
    if expr is None:
        return None
    if expr == "amount * 2":
        return lambda e: None if e["amount"] is None else e["amount"] * 2
    return lambda e: e[expr]


ORACLE_AGGREGATES = [OracleAggregate(a.name, a.function, _value(a.expr), a.windows) for a in AGGREGATES]


def make_plan(
    aggregates: tuple[AggregateSpec, ...],
    start: date,
    end: date,
    timezone: str = "UTC",
    filter: str | None = "status = 'OK'",
    derived: tuple[ExprSpec, ...] = (),
) -> Plan:
    """A Plan built by hand, as compile_plan would for the test source."""
    max_window = max(w for a in aggregates for w in a.windows)
    source = SourceRead(
        name="events",
        format="parquet",
        location="<in memory>",
        timestamp="event_ts",
        columns=COLUMNS,
        declared_types=(),
        read_start=start - timedelta(days=max_window),
        read_end_exclusive=end,
    )
    output = [OutputColumn("customer_id", "string", "key")]
    output += [OutputColumn("feature_date", "date", "partition"), OutputColumn("feature_ts", "timestamp", "time")]
    output += [OutputColumn(n, "?", "feature") for a in aggregates for n in a.output_names()]
    output += [OutputColumn(d.name, "?", "feature") for d in derived]
    return Plan(
        group="g", kind="aggregation", entity="customer", keys=("customer_id",), source=source, filter=filter,
        aggregates=aggregates, derived=derived, features=(), ttl_days=None, start=start, end=end,
        timezone=timezone, table_path="/tmp/none", output=tuple(output), checks=(), lineage=(), data_hash="x", metadata_hash="x",
    )


def random_events(seed: int, timezone: str, first_day: date, days: int = 40) -> list[dict[str, Any]]:
    """~150-250 events over `days` days: midnight events, NULLs, time ties, gaps, a filtered-out entity."""
    rng = random.Random(seed)
    tz = ZoneInfo(timezone)
    events: list[dict[str, Any]] = []

    def event(customer: str, day: int, seconds: int, **kw: Any) -> None:
        d = first_day + timedelta(days=day)
        local = datetime(d.year, d.month, d.day, tzinfo=tz) + timedelta(seconds=seconds)
        row = {
            "customer_id": customer,
            "event_ts": local.astimezone(dt_timezone.utc),
            "amount": None if rng.random() < 0.15 else round(rng.uniform(-50, 500), 2),
            "qty": None if rng.random() < 0.1 else rng.randint(0, 5),
            "merchant": None if rng.random() < 0.15 else rng.choice("abcdefg"),
            "channel": None if rng.random() < 0.2 else rng.choice(["web", "pos", "atm", "app"]),
            "status": "OK" if rng.random() < 0.85 else "BAD",
        }
        row.update(kw)
        events.append(row)

    for customer in ("c1", "c2", "c3"):
        for _ in range(rng.randint(40, 70)):
            day = rng.randrange(days)
            if rng.random() < 0.2:
                event(customer, day, 0)  # exactly at local midnight: belongs to that day
            else:
                event(customer, day, rng.randrange(86400))
        quiet = rng.randrange(5, days - 5)  # days with no events at all
        events[:] = [e for e in events if not (e["customer_id"] == customer and _day(e, tz, first_day) in (quiet, quiet + 1))]
    for _ in range(4):  # ties on time: `last` takes the greatest value
        t = rng.randrange(days)
        event("c1", t, 43200, channel="atm")
        event("c1", t, 43200, channel="web")
        event("c1", t, 43200, channel=None)
    event("sparse", 2, 3600)
    event("sparse", 2 + 20, 7200, status="OK")  # gap longer than the largest window
    event("sparse", days - 1, 86399, status="OK")
    for day in range(0, days, 3):
        event("filtered_out", day, 600, status="BAD")
    return events


def _day(e: dict[str, Any], tz: ZoneInfo, first_day: date) -> int:
    return (e["event_ts"].astimezone(tz).date() - first_day).days


def spark_snapshots(spark, events: list[dict[str, Any]], plan: Plan) -> dict[tuple[Any, ...], dict[str, Any]]:
    rows = [tuple(e[c] for c in COLUMNS) for e in events]
    df = compute_aggregation(spark.createDataFrame(rows, SCHEMA), plan)
    assert df.columns == [c.name for c in plan.output]
    df = df.selectExpr("*", "unix_micros(feature_ts) as _ts_micros")
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in df.collect():
        d = r.asDict()
        key = (d.pop("customer_id"), d.pop("feature_date"))
        assert key not in out, f"duplicate snapshot row {key}"
        d.pop("feature_ts")
        out[key] = d
    return out


def assert_same(actual: dict, expected: dict, aggregates: tuple[AggregateSpec, ...]) -> None:
    assert set(actual) == set(expected), (
        f"rows only in Spark: {sorted(set(actual) - set(expected))[:5]}; "
        f"rows only in oracle: {sorted(set(expected) - set(actual))[:5]}"
    )
    functions = {n: a.function for a in aggregates for n in a.output_names()}
    for key, want in expected.items():
        got = actual[key]
        midnight = want["feature_ts"]
        assert got["_ts_micros"] == int(midnight.timestamp()) * 1_000_000, key
        for column, function in functions.items():
            g, w = got[column], want[column]
            where = f"{column} at {key}: spark {g!r}, oracle {w!r}"
            if w is None:
                assert g is None, where
            elif function == "approx_count_distinct":
                assert g is not None and abs(g - w) <= 0.05 * w, where
            elif isinstance(w, float):  # the oracle does the numeric contract's arithmetic: same bytes
                assert g is not None and g.hex() == w.hex(), where
            else:
                assert g == w and type(g) is type(w), where


def test_every_registered_function_has_an_oracle_case_and_is_compared_with_it():
    # Adding a function = one class in featurebank.aggregators + its oracle case + a use here.
    assert sorted(ORACLE_CASES) == sorted(AGGREGATION_FUNCTIONS)
    assert {a.function for a in AGGREGATES} == set(AGGREGATION_FUNCTIONS)


@pytest.mark.parametrize(
    ("seed", "timezone", "first_day"),
    [(1, "UTC", date(2024, 1, 1)), (2, "Europe/Zurich", date(2024, 3, 10)), (3, "America/Sao_Paulo", date(2023, 12, 20))],
)
def test_every_snapshot_value_matches_brute_force_oracle(spark, seed, timezone, first_day):
    events = random_events(seed, timezone, first_day)
    start, end = first_day + timedelta(days=10), first_day + timedelta(days=45)
    plan = make_plan(AGGREGATES, start, end, timezone)
    expected = snapshots(
        events, ("customer_id",), "event_ts", ORACLE_AGGREGATES, start, end, timezone, keep=lambda e: e["status"] == "OK"
    )
    actual = spark_snapshots(spark, events, plan)
    assert not any(k[0] == "filtered_out" for k in actual)
    assert any(k[0] == "sparse" for k in actual)
    assert_same(actual, expected, AGGREGATES)


@pytest.mark.parametrize(
    ("seed", "timezone", "first_day", "offset", "dates"),
    [(1, "UTC", date(2024, 1, 1), 10, 1), (2, "Europe/Zurich", date(2024, 3, 10), 17, 3),
     (3, "America/Sao_Paulo", date(2023, 12, 20), 30, 2)],
)
def test_short_runs_aggregate_each_window_directly_and_match_the_oracle(spark, seed, timezone, first_day, offset, dates):
    assert dates <= DIRECT_MAX_DATES  # the direct path, not the backfill kernel the test above runs
    events = random_events(seed, timezone, first_day)
    start = first_day + timedelta(days=offset)
    end = start + timedelta(days=dates - 1)
    plan = make_plan(AGGREGATES, start, end, timezone)
    expected = snapshots(
        events, ("customer_id",), "event_ts", ORACLE_AGGREGATES, start, end, timezone, keep=lambda e: e["status"] == "OK"
    )
    actual = spark_snapshots(spark, events, plan)
    assert actual and not any(k[0] == "filtered_out" for k in actual)
    assert_same(actual, expected, AGGREGATES)


def test_event_at_2330_local_time_belongs_to_that_local_day(spark):
    # 23:30 in Zurich on 2024-01-10 is 22:30 UTC the same day; in New York it is the next UTC day.
    zurich = datetime(2024, 1, 10, 23, 30, tzinfo=ZoneInfo("Europe/Zurich")).astimezone(dt_timezone.utc)
    new_york = datetime(2024, 1, 10, 23, 30, tzinfo=ZoneInfo("America/New_York")).astimezone(dt_timezone.utc)
    aggregates = (AggregateSpec("n", "count", None, (1,)),)
    for tz, instant in (("Europe/Zurich", zurich), ("America/New_York", new_york)):
        events = [dict(customer_id="c", event_ts=instant, amount=1.0, qty=1, merchant="m", channel="x", status="OK")]
        got = spark_snapshots(spark, events, make_plan(aggregates, date(2024, 1, 9), date(2024, 1, 13), tz))
        assert {k[1]: v["n_1d"] for k, v in got.items()} == {date(2024, 1, 11): 1}, tz
        midnight = datetime(2024, 1, 11, tzinfo=ZoneInfo(tz))
        assert got[("c", date(2024, 1, 11))]["_ts_micros"] == int(midnight.timestamp()) * 1_000_000


def test_snapshot_never_includes_its_own_day_and_empty_windows_follow_spec(spark):
    at = datetime(2024, 1, 10, 0, 0, tzinfo=dt_timezone.utc)  # exactly midnight
    events = [dict(customer_id="c", event_ts=at, amount=5.0, qty=2, merchant="m", channel="pos", status="OK")]
    aggregates = (
        AggregateSpec("n", "count", None, (1, 3)),
        AggregateSpec("s", "sum", "amount", (1, 3)),
        AggregateSpec("d", "count_distinct", "merchant", (1,)),
        AggregateSpec("l", "last", "channel", (1,)),
    )
    got = spark_snapshots(spark, events, make_plan(aggregates, date(2024, 1, 9), date(2024, 1, 14)))
    assert sorted(k[1] for k in got) == [date(2024, 1, 11), date(2024, 1, 12), date(2024, 1, 13)]
    first, later = got[("c", date(2024, 1, 11))], got[("c", date(2024, 1, 12))]
    assert (first["n_1d"], first["s_1d"], first["d_1d"], first["l_1d"]) == (1, 5.0, 1, "pos")
    assert (later["n_1d"], later["s_1d"], later["d_1d"], later["l_1d"]) == (0, None, 0, None)
    assert (later["n_3d"], later["s_3d"]) == (1, 5.0)


def test_derived_features_read_earlier_columns_in_order(spark):
    at = datetime(2024, 1, 10, 12, 0, tzinfo=dt_timezone.utc)
    events = [
        dict(customer_id="c", event_ts=at, amount=a, qty=1, merchant="m", channel="pos", status="OK") for a in (4.0, 8.0)
    ]
    aggregates = (AggregateSpec("s", "sum", "amount", (7,)), AggregateSpec("n", "count", None, (7,)))
    derived = (ExprSpec("avg_ticket", "s_7d / nullif(n_7d, 0)"), ExprSpec("avg_ticket_x2", "avg_ticket * 2"))
    plan = make_plan(aggregates, date(2024, 1, 11), date(2024, 1, 11), derived=derived)
    df = compute_aggregation(spark.createDataFrame([tuple(e[c] for c in COLUMNS) for e in events], SCHEMA), plan)
    assert df.columns == ["customer_id", "feature_date", "feature_ts", "s_7d", "n_7d", "avg_ticket", "avg_ticket_x2"]
    row = df.collect()[0]
    assert (row.avg_ticket, row.avg_ticket_x2) == (6.0, 12.0)


def test_result_types_follow_spark(spark):
    plan = make_plan(AGGREGATES, date(2024, 1, 2), date(2024, 1, 3))
    df = compute_aggregation(spark.createDataFrame([], SCHEMA), plan)
    types = dict(df.dtypes)
    assert df.count() == 0
    assert (types["txn_count_1d"], types["merchants_1d"], types["merchants_approx_14d"]) == ("bigint",) * 3
    assert (types["qty_sum_3d"], types["spend_sum_1d"]) == ("bigint", "double")
    assert (types["spend_avg_3d"], types["spend_std_3d"]) == ("double", "double")
    assert (types["spend_min_1d"], types["last_channel_2d"]) == ("double", "string")
    assert (types["feature_date"], types["feature_ts"]) == ("date", "timestamp")


def test_window_sums_carry_no_rounding_noise_from_earlier_days(spark):
    # A running total of doubles would leave ~1e-10 here: a `min_value: 0` gate would refuse it.
    base = datetime(2024, 1, 1, 12, tzinfo=dt_timezone.utc)
    amounts = [(0, 1e6 + 0.1), (1, 3.3), (2, 1e6 + 0.7), (5, 0.0), (6, 0.1), (6, 0.2)]
    events = [
        dict(customer_id="c", event_ts=base + timedelta(days=d), amount=a, qty=1, merchant="m", channel="x", status="OK")
        for d, a in amounts
    ]
    aggregates = (AggregateSpec("s", "sum", "amount", (1, 30)), AggregateSpec("m", "avg", "amount", (1,)))
    got = spark_snapshots(spark, events, make_plan(aggregates, date(2024, 1, 7), date(2024, 1, 8)))
    assert got[("c", date(2024, 1, 8))]["s_30d"] == 2000004.4  # the exact sum, rounded once
    assert (got[("c", date(2024, 1, 7))]["s_1d"], got[("c", date(2024, 1, 7))]["m_1d"]) == (0.0, 0.0)
    assert got[("c", date(2024, 1, 8))]["s_1d"] == 0.3  # exact 0.1 + 0.2, rounded once (not 0.30000000000000004)
