"""Window totals at the edges of the exact range (issue 20, notes/20-limbs.md, notes/20-kernel.md).

A backfill's kernel (engine/kernel.py) sums a window's exact day totals as 128-bit integers in
32-bit limbs, from prefix sums over the entity's tiles. Here the day totals sit next to the
contract's limit (|total| < 1e19 for doubles), change sign from day to day, cancel to zero, are
-0.0 or come from days whose values are all NULL, and every published value must equal the
brute-force oracle's exact arithmetic bit for bit, on the backfill path and on the short-run
path. A window total that reaches 1e19 fails the run (README "Numeric contract"), with the
contract's sentence.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone as dt_timezone
from typing import Any

import pytest
from oracles.aggregate_oracle import OracleAggregate, snapshots
from test_aggregate import make_plan
from test_numeric_contract import SCHEMA, value_bytes

from featurebank.compile.group import AggregateSpec
from featurebank.engine.aggregate import DIRECT_MAX_DATES, compute_aggregation

NEAR = 9.999999999999998e18  # the largest double below 1e19: exact(x, 18) = 9999999999999998000
WINDOWS = (1, 2, 3)
AGGREGATES = (
    AggregateSpec("n", "count", "amount", WINDOWS),
    AggregateSpec("total", "sum", "amount", WINDOWS),
    AggregateSpec("mean", "avg", "amount", WINDOWS),
    AggregateSpec("qty_total", "sum", "qty", WINDOWS),
)
ORACLE = [OracleAggregate(a.name, a.function, lambda e, c=a.expr: e[c], a.windows) for a in AGGREGATES]
FIRST = date(2024, 3, 1)
# (day, amounts): day totals of alternating sign next to the limit, so the running total swings
# between about +1e19 and -1e19 and every window of 1-3 days fits; days of -0.0, of NULLs only,
# a day with no events, values that cancel to exactly 0 within the day (5e-19 rounds half-up)
DAYS = (
    (0, [NEAR]),
    (1, [-NEAR, -1.5]),
    (2, [NEAR, 0.1]),
    (3, [-0.0]),
    (4, [None, None]),
    (6, [-NEAR, NEAR, -NEAR]),
    (7, [1e-18, -2e-18, 5e-19]),
    (8, [NEAR, -1.0]),
    (9, [-NEAR, 2.5, -0.0]),
)


def edge_events() -> list[dict[str, Any]]:
    events = []
    for day, amounts in DAYS:
        at = datetime(2024, 3, 1, 12, tzinfo=dt_timezone.utc) + timedelta(days=day)
        for i, amount in enumerate(amounts):
            qty = None if amount is None else (2**61 if i % 2 == 0 else -(2**61))
            events.append({"customer_id": "c9", "event_ts": at + timedelta(seconds=i), "amount": amount, "qty": qty})
    return events


def published(spark, events: list[dict[str, Any]], start: date, end: date) -> dict[Any, dict[str, Any]]:
    rows = [(e["customer_id"], e["event_ts"], e["amount"], e["qty"], None, "m", "OK") for e in events]
    plan = make_plan(AGGREGATES, start, end, "UTC")
    out = {}
    for row in compute_aggregation(spark.createDataFrame(rows, SCHEMA), plan).collect():
        d = row.asDict()
        key = (d.pop("customer_id"), d.pop("feature_date"))
        d.pop("feature_ts")
        out[key] = {c: value_bytes(v) for c, v in d.items()}
    return out


def expected(events: list[dict[str, Any]], start: date, end: date) -> dict[Any, dict[str, Any]]:
    want = snapshots(events, ("customer_id",), "event_ts", ORACLE, start, end, "UTC")
    return {k: {c: value_bytes(v) for c, v in row.items() if c != "feature_ts"} for k, row in want.items()}


def test_running_totals_next_to_the_limit_with_sign_changes_zeros_and_null_days_equal_the_oracle(spark):
    events = edge_events()
    start, end = FIRST + timedelta(days=1), FIRST + timedelta(days=12)
    assert end - start >= timedelta(days=DIRECT_MAX_DATES)  # the backfill kernel
    backfill = published(spark, events, start, end)
    want = expected(events, start, end)
    assert set(backfill) == set(want)
    diffs = [(k, c, backfill[k][c], v) for k, row in want.items() for c, v in row.items() if backfill[k][c] != v]
    assert not diffs, f"{len(diffs)} values differ, e.g. (row, feature, got, want): {diffs[:4]}"
    # the cancelling days publish an exact 0, the NULL-only day an empty sum next to its events
    assert backfill[("c9", FIRST + timedelta(days=5))]["total_1d"] == ("NoneType", None)
    assert backfill[("c9", FIRST + timedelta(days=5))]["n_1d"] == ("int", 0)
    assert backfill[("c9", FIRST + timedelta(days=8))]["total_1d"] == ("double", (0.0).hex())
    # the short-run path publishes the same bytes on every date
    for day in range(2, 13, 4):
        d = FIRST + timedelta(days=day)
        assert published(spark, events, d, d) == {k: v for k, v in backfill.items() if k[1] == d}


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_a_window_total_of_exactly_the_limit_fails_the_backfill_naming_the_contract(spark, sign):
    # 5e18 + 5e18 = 1e19 = the limit itself: every 1-day window fits, the 2- and 3-day ones do not
    events = [
        {"customer_id": "c9", "event_ts": datetime(2024, 3, 1 + d, 12, tzinfo=dt_timezone.utc), "amount": sign * 5e18, "qty": 1}
        for d in range(2)
    ]
    start = FIRST + timedelta(days=1)
    with pytest.raises(Exception, match=r"\((sum|avg)\) cannot be computed exactly: an exact window total is outside"):
        published(spark, events, start, start + timedelta(days=DIRECT_MAX_DATES + 1))


def test_long_window_extremes_equal_the_oracle(spark):
    # min/max over long sliding frames: segment starts (gaps longer than the window), NULL-only
    # days, ties, strings and doubles (notes/20-limbs.md: a piecewise fold was measured slower)
    import random

    windows = (13, 14, 30)
    aggregates = (
        AggregateSpec("hi", "max", "amount", windows),
        AggregateSpec("lo", "min", "amount", windows),
        AggregateSpec("first_merchant", "min", "merchant", windows),
        AggregateSpec("last_merchant", "max", "merchant", windows),
    )
    rng = random.Random(20)
    rows, events = [], []
    for customer in ("c1", "c2", "c3"):
        for day in sorted(rng.sample(range(0, 120), 25)):
            for _ in range(rng.randint(1, 3)):
                at = datetime(2024, 1, 1, tzinfo=dt_timezone.utc) + timedelta(days=day, seconds=rng.randrange(86400))
                amount = rng.choice([None, -5.0, 0.5, 7.25, 1e16, -1e16, 3.0, 3.0])
                merchant = rng.choice([None, "a", "b", "zz"])
                rows.append((customer, at, amount, 1, None, merchant, "OK"))
                events.append({"customer_id": customer, "event_ts": at, "amount": amount, "merchant": merchant})
    rows.append(("c4", datetime(2024, 2, 1, tzinfo=dt_timezone.utc), None, 1, None, None, "OK"))  # NULLs only
    events.append({"customer_id": "c4", "event_ts": datetime(2024, 2, 1, tzinfo=dt_timezone.utc), "amount": None, "merchant": None})
    start, end = date(2024, 1, 2), date(2024, 5, 15)
    got = {}
    for row in compute_aggregation(spark.createDataFrame(rows, SCHEMA), make_plan(aggregates, start, end, "UTC")).collect():
        d = row.asDict()
        key = (d.pop("customer_id"), d.pop("feature_date"))
        d.pop("feature_ts")
        got[key] = {c: value_bytes(v) for c, v in d.items()}
    oracle = [OracleAggregate(a.name, a.function, lambda e, c=a.expr: e[c], a.windows) for a in aggregates]
    want = snapshots(events, ("customer_id",), "event_ts", oracle, start, end, "UTC")
    want = {k: {c: value_bytes(v) for c, v in row.items() if c != "feature_ts"} for k, row in want.items()}
    assert set(got) == set(want)
    diffs = [(k, c, got[k][c], v) for k, row in want.items() for c, v in row.items() if got[k][c] != v]
    assert not diffs, f"{len(diffs)} values differ, e.g. (row, feature, got, want): {diffs[:4]}"
