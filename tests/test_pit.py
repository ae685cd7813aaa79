"""Point-in-time joins against a brute-force oracle (tests/oracles/pit_oracle.py)."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta, timezone

import pytest
from oracles.pit_oracle import asof_oracle, midnight, snapshot_oracle

from featurebank.engine.pit import (
    STATUS_EXPIRED,
    STATUS_FILLED,
    STATUS_MATCHED,
    STATUS_NO_ROW,
    STATUS_NULL_INPUT,
    STATUS_UNCOVERED,
    asof_join,
    snapshot_join,
)

UTC = timezone.utc
SPINE_DDL = "row_id INT, customer_id STRING, merchant_id STRING, ts TIMESTAMP, label INT"
PROFILE_DDL = "customer_id STRING, feature_ts TIMESTAMP, feature_date DATE, segment STRING, score INT"
RISK_DDL = "merchant_id STRING, feature_date DATE, feature_ts TIMESTAMP, txn_count_30d BIGINT, spend_sum_30d BIGINT, rate DOUBLE"
DAYS = [date(2024, 3, 5) + timedelta(days=i) for i in range(10)]  # spans the US DST change (03-10)


def _at(day: date, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def _collect(frame, columns):
    return sorted(tuple(r[c] for c in columns) for r in frame.collect())


def _expected(spine, oracle_rows, columns):
    return sorted(tuple({**s, **o}[c] for c in columns) for s, o in zip(spine, oracle_rows))


def _random_case(seed: int, tz: str):
    """Tiny random profile rows, merchant snapshots and a spine full of edge cases."""
    rnd = random.Random(seed)
    customers = [f"c{i}" for i in range(5)]
    merchants = [f"m{i}" for i in range(4)]
    profile, used = [], set()
    for n in range(40):
        cust = rnd.choice(customers[:4])  # c4 never has a profile row
        ts = _at(rnd.choice(DAYS), rnd.randrange(24), rnd.choice([0, 15, 30]))
        if (cust, ts) in used:
            continue
        used.add((cust, ts))
        profile.append({"customer_id": cust, "feature_ts": ts, "feature_date": ts.date(),
                        "segment": rnd.choice(["A", "B", None]), "score": n})
    published = {d for d in DAYS if rnd.random() < 0.8}
    risk = []
    for d in sorted(published):
        for m in merchants[:3]:  # m3 is never active
            if rnd.random() < 0.6:
                cnt = rnd.randrange(1, 9)
                risk.append({"merchant_id": m, "feature_date": d, "feature_ts": midnight(d, tz),
                             "txn_count_30d": cnt, "spend_sum_30d": cnt * 10, "rate": rnd.choice([0.5, None])})
    spine = []
    for i in range(80):
        kind = rnd.random()
        if kind < 0.25:
            ts = midnight(rnd.choice(DAYS), tz)  # exactly at a snapshot's start
        elif kind < 0.45 and profile:
            ts = rnd.choice(profile)["feature_ts"]  # exactly at a profile change
        elif kind < 0.5:
            ts = None
        else:
            ts = _at(rnd.choice(DAYS), rnd.randrange(24), rnd.randrange(60))
        spine.append({"row_id": i, "customer_id": rnd.choice(customers + ["never_seen", None]),
                      "merchant_id": rnd.choice(merchants + [None]), "ts": ts, "label": rnd.randrange(2)})
    spine += [dict(r) for r in rnd.sample(spine, 10)]  # exact duplicate spine rows
    return spine, profile, published, risk


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("ttl_days", [None, 2])
def test_asof_join_matches_oracle_on_random_spines(spark, seed, ttl_days):
    spine, profile, _, _ = _random_case(seed, "UTC")
    result = asof_join(spark.createDataFrame(spine, SPINE_DDL), spark.createDataFrame(profile, PROFILE_DDL),
                       ["customer_id"], "ts", ttl_days)
    assert result.columns == ["row_id", "customer_id", "merchant_id", "ts", "label", "segment", "score"]
    expected = asof_oracle(spine, profile, ["customer_id"], "ts", ["segment", "score"], ttl_days)
    cols = ["row_id", "customer_id", "label", "segment", "score"]
    assert _collect(result, cols) == _expected(spine, expected, cols)


@pytest.mark.parametrize(("seed", "small_spine"), [(4, False), (5, False), (4, True), (5, True)])
@pytest.mark.parametrize("tz", ["UTC", "America/New_York"])
def test_snapshot_join_matches_oracle_on_random_spines(spark, seed, tz, small_spine):
    spine, _, published, risk = _random_case(seed, tz)
    result = snapshot_join(spark.createDataFrame(spine, SPINE_DDL), spark.createDataFrame(risk, RISK_DDL),
                           ["merchant_id"], timestamp_column="ts", timezone=tz, published_dates=published,
                           count_columns={"txn_count_30d", "spend_sum_30d"}, small_spine=small_spine)
    names = ["txn_count_30d", "spend_sum_30d", "rate"]
    assert result.columns == ["row_id", "customer_id", "merchant_id", "ts", "label", *names]
    expected = snapshot_oracle(spine, risk, ["merchant_id"], "ts", names, tz, published, {"txn_count_30d", "spend_sum_30d"})
    cols = ["row_id", "merchant_id", "label", *names]
    assert _collect(result, cols) == _expected(spine, expected, cols)


def test_spine_with_two_entities_gets_both_groups(spark):
    spine, profile, published, risk = _random_case(7, "UTC")
    frame = asof_join(spark.createDataFrame(spine, SPINE_DDL), spark.createDataFrame(profile, PROFILE_DDL),
                      ["customer_id"], "ts", 3)
    frame = snapshot_join(frame, spark.createDataFrame(risk, RISK_DDL), ["merchant_id"], timestamp_column="ts",
                          timezone="UTC", published_dates=published, count_columns={"txn_count_30d"})
    a = asof_oracle(spine, profile, ["customer_id"], "ts", ["segment", "score"], 3)
    b = snapshot_oracle(spine, risk, ["merchant_id"], "ts", ["txn_count_30d", "spend_sum_30d", "rate"], "UTC",
                        published, {"txn_count_30d"})
    cols = ["row_id", "customer_id", "merchant_id", "segment", "score", "txn_count_30d", "spend_sum_30d", "rate"]
    assert frame.count() == len(spine)
    assert _collect(frame, cols) == _expected(spine, [{**x, **y} for x, y in zip(a, b)], cols)


def test_row_stamped_exactly_at_spine_time_is_visible_and_ttl_edge_is_not(spark):
    t = _at(date(2024, 3, 8), 12)
    profile = [
        {"customer_id": "c", "feature_ts": t - timedelta(days=2), "feature_date": None, "segment": "OLD", "score": 1},
        {"customer_id": "c", "feature_ts": t, "feature_date": None, "segment": "NOW", "score": 2},
        {"customer_id": "d", "feature_ts": t - timedelta(days=2), "feature_date": None, "segment": "EDGE", "score": 3},
        {"customer_id": "e", "feature_ts": t - timedelta(days=2) + timedelta(microseconds=1), "feature_date": None,
         "segment": "IN", "score": 4},
        {"customer_id": "f", "feature_ts": t + timedelta(microseconds=1), "feature_date": None, "segment": "FUTURE",
         "score": 5},
    ]
    spine = [{"row_id": i, "customer_id": c, "merchant_id": None, "ts": t, "label": 0}
             for i, c in enumerate(["c", "d", "e", "f", None])]
    out = asof_join(spark.createDataFrame(spine, SPINE_DDL), spark.createDataFrame(profile, PROFILE_DDL),
                    ["customer_id"], "ts", 2, status_column="status")
    got = {r["row_id"]: (r["segment"], r["status"]) for r in out.collect()}
    assert got == {0: ("NOW", STATUS_MATCHED), 1: (None, STATUS_EXPIRED), 2: ("IN", STATUS_MATCHED),
                   3: (None, STATUS_NO_ROW), 4: (None, STATUS_NULL_INPUT)}


def test_spine_at_midnight_uses_that_dates_snapshot_in_project_time_zone(spark):
    tz = "America/New_York"
    d = date(2024, 3, 11)
    risk = [{"merchant_id": "m", "feature_date": day, "feature_ts": midnight(day, tz), "txn_count_30d": n,
             "spend_sum_30d": n, "rate": None} for n, day in enumerate([d - timedelta(days=1), d], start=1)]
    spine = [
        {"row_id": 0, "customer_id": None, "merchant_id": "m", "ts": midnight(d, tz), "label": 0},  # 04:00 UTC
        {"row_id": 1, "customer_id": None, "merchant_id": "m", "ts": midnight(d, tz) - timedelta(microseconds=1),
         "label": 0},
        {"row_id": 2, "customer_id": None, "merchant_id": "x", "ts": midnight(d, tz), "label": 0},
        {"row_id": 3, "customer_id": None, "merchant_id": "m", "ts": midnight(d + timedelta(days=1), tz), "label": 0},
    ]
    out = snapshot_join(spark.createDataFrame(spine, SPINE_DDL), spark.createDataFrame(risk, RISK_DDL),
                        ["merchant_id"], timestamp_column="ts", timezone=tz, published_dates={d - timedelta(days=1), d},
                        count_columns={"txn_count_30d"}, status_column="status")
    got = {r["row_id"]: (r["txn_count_30d"], r["spend_sum_30d"], r["status"]) for r in out.collect()}
    assert got == {0: (2, 2, STATUS_MATCHED), 1: (1, 1, STATUS_MATCHED), 2: (0, None, STATUS_FILLED),
                   3: (None, None, STATUS_UNCOVERED)}


def test_spine_keys_of_another_type_are_cast_to_the_feature_key_type(spark):
    spine = spark.createDataFrame([(1, _at(date(2024, 3, 8), 9))], "customer_id INT, ts TIMESTAMP")
    profile = spark.createDataFrame([("1", _at(date(2024, 3, 8)), None, "A", 1)], PROFILE_DDL)
    out = asof_join(spine, profile, ["customer_id"], "ts").collect()
    assert [(r["customer_id"], r["segment"]) for r in out] == [(1, "A")]
    assert out and isinstance(out[0]["customer_id"], int)  # the spine column itself is unchanged
