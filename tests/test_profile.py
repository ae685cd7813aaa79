"""The run's profiles (engine/profile.py) against a brute force over the same rows: counts, NULLs,
non-finite values, min/mean/max, every histogram bin, top values, and quartiles from exactly the
hash sample of each date; the same profile whatever the batch's partitioning."""

from __future__ import annotations

import json
import math
import random
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest

from featurebank.engine import profile as P

D0 = date(2024, 3, 1)
NUMERIC = ("amount", "count_7d", "exact", "constant", "sparse", "wide", "tiny")
SCHEMA = ("customer_id BIGINT, feature_date DATE, feature_ts TIMESTAMP, amount DOUBLE, count_7d BIGINT, "
          "exact DECIMAL(38,18), constant DOUBLE, sparse DOUBLE, wide DOUBLE, tiny INT, channel STRING, "
          "merchant STRING, last_seen TIMESTAMP")


def _rows(seed: int) -> list[tuple]:
    """Dates of 0, 1, few and many rows (many: over the sample's limit below); NaN, ±inf, NULLs,
    an all-NULL feature on a date, a constant one (zero-width bins), ties."""
    rng = random.Random(seed)
    rows = []
    for day, n in ((0, 1), (1, 7), (2, 240), (4, 90)):
        when = D0 + timedelta(days=day)
        for k in range(n):
            amount = rng.choice([None, float("nan"), float("inf"), -float("inf")] + [round(rng.uniform(-50, 500), 2)] * 8)
            rows.append((
                k * 13 + day, when, datetime(when.year, when.month, when.day), amount,
                rng.choice([None, 0, 1, 1, 2, 40]), None if rng.random() < .1 else Decimal(rng.randint(-10**6, 10**6)) / 1000,
                3.5, None if day == 2 else rng.choice([None, 1.0, 2.0]), rng.uniform(-1e12, 1e12), rng.randint(0, 3),
                rng.choice([None, "web", "pos", "atm"]), f"m{rng.randint(0, 400)}",
                None if rng.random() < .2 else datetime(2024, 1, 1) + timedelta(minutes=rng.randint(0, 10**5)),
            ))
    return rows


def _finite(value: object) -> float | None:
    if value is None:
        return None
    number = float(value)  # type: ignore[arg-type]
    return number if math.isfinite(number) else None


def _nearest_rank(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(math.ceil(p * len(ordered)) - 1, 0)]


@pytest.fixture()
def small_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """A limit small enough that this data samples its big date."""
    monkeypatch.setattr(P, "QUARTILE_ROWS", 100)


def test_every_statistic_matches_a_brute_force_and_quartiles_come_from_the_hash_sample(spark, small_limits) -> None:  # noqa: ANN001
    from pyspark.sql import functions as F

    rows = _rows(7)
    frame = spark.createDataFrame(rows, SCHEMA)
    columns = [c.split()[0] for c in SCHEMA.split(", ")]
    features = tuple(c for c in columns if c not in ("customer_id", "feature_date", "feature_ts"))
    profiles = {p.feature_date: p for p in P.profile_batch(frame, "g", features, run_id="r1", version=3)}
    dates = sorted({r[1] for r in rows})
    assert sorted(profiles) == dates and all(p.version == 3 and p.run_id == "r1" for p in profiles.values())
    # the quartile sample: 1 in ceil(rows / QUARTILE_ROWS) entities of each date, by xxhash64 of the entity
    hashed = {(r["customer_id"], r["feature_date"]): r["h"] for r in frame.select(
        "customer_id", "feature_date", F.xxhash64("customer_id").alias("h")).collect()}
    for when in dates:
        mine = [dict(zip(columns, r)) for r in rows if r[1] == when]
        profile = profiles[when]
        assert profile.rows == len(mine)
        modulus = math.ceil(len(mine) / P.QUARTILE_ROWS)
        sample = [r for r in mine if hashed[(r["customer_id"], when)] % modulus == 0]
        assert (modulus > 1) == (when == D0 + timedelta(days=2))
        assert 0 < len(sample) < len(mine) if modulus > 1 else sample == mine
        for name in features:
            got, values = profile.features[name], [r[name] for r in mine]
            assert got.rows == len(mine) and got.nulls == sum(v is None for v in values), name
            if name not in NUMERIC:
                continue
            finite = [f for f in map(_finite, values) if f is not None]
            assert got.non_finite == sum(v is not None for v in values) - len(finite), name
            if not finite:
                assert got.minimum is None and got.histogram == () and got.quartiles is None, name
                continue
            low, high = min(finite), max(finite)
            assert (got.minimum, got.maximum) == (low, high) and got.mean == pytest.approx(sum(finite) / len(finite)), name
            width = (high - low) / P.BINS
            expected = [0] * (P.BINS if width > 0 else 1)
            for f in finite:
                expected[min(math.floor((f - low) / width), P.BINS - 1) if width > 0 else 0] += 1
            assert [n for _, _, n in got.histogram] == expected, (name, when)
            picked = [f for f in (_finite(r[name]) for r in sample) if f is not None]
            assert got.quartiles == (tuple(_nearest_rank(picked, p) for p in (0.25, 0.5, 0.75)) if picked else None), \
                (name, when)
        channel = [r["channel"] for r in mine if r["channel"] is not None]
        tops = sorted(((v, channel.count(v)) for v in set(channel)), key=lambda kv: (-kv[1], kv[0]))[:P.TOP_VALUES]
        assert list(profile.features["channel"].top_values) == tops
        assert profile.features["merchant"].top_values == () or len(set(r["merchant"] for r in mine)) <= P.MAX_CATEGORIES
        seen = [r["last_seen"] for r in mine if r["last_seen"] is not None]
        assert profile.features["last_seen"].minimum == (str(min(seen)) if seen else None)


def test_the_profile_is_the_same_whatever_the_batch_partitioning(spark, small_limits) -> None:  # noqa: ANN001
    """The same rows sampled and binned, the same quartiles; only the mean's last bits follow the
    order Spark adds the values in."""
    frame = spark.createDataFrame(_rows(11), SCHEMA)
    features = ("amount", "count_7d", "exact", "wide", "channel")

    def documents(batch) -> list[dict]:  # noqa: ANN001
        found = [json.loads(P.profile_json(p)) for p in P.profile_batch(batch, "g", features)]
        for document in found:
            for name, feature in document["features"].items():
                feature["mean"] = pytest.approx(feature["mean"], rel=1e-12) if feature["mean"] is not None else None
        return found

    one, many = documents(frame.coalesce(1)), documents(frame.repartition(7, "customer_id"))
    assert one == many and len(one) == 4


def test_an_empty_batch_has_no_profile_and_unknown_features_are_skipped(spark) -> None:  # noqa: ANN001
    frame = spark.createDataFrame([], SCHEMA)
    assert P.profile_batch(frame, "g", ("amount", "nope")) == []
    one = spark.createDataFrame(_rows(3)[:1], SCHEMA)
    (profile,) = P.profile_batch(one, "g", ("amount", "nope"))
    assert list(profile.features) == ["amount"]
