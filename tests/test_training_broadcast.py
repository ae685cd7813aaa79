"""Training join without a spine shuffle or a global sort (issue 20): where every group is an
aggregation group and the pruned feature rows fit, they are broadcast and the spine keeps its
order; the rows, their order and their values are those of the sorted build."""

from __future__ import annotations

import random

from test_training import DAYS, _rows, _spine, _store, shared_world  # noqa: F401 - the fixture

from featurebank.training.join import BROADCAST_BYTES_CONF

FEATURES = ["customer_card_spend:*", "merchant_risk:*"]


def _build(world, pdf):
    build = _store(world).build_training_set(features=FEATURES, spine=pdf, allow_missing=True)
    return build.frame


def _plan(frame) -> str:
    return frame._jdf.queryExecution().executedPlan().toString()


def test_a_broadcast_build_has_the_sorted_builds_rows_in_the_same_order(shared_world):  # noqa: F811
    spark = shared_world.spark
    spine, pdf = _spine(random.Random(20), shared_world, DAYS[:8], n=120)
    pdf = pdf.sample(frac=1.0, random_state=5).reset_index(drop=True)  # the spine's order is not the keys'
    fast = _build(shared_world, pdf)
    assert "BroadcastHashJoin" in _plan(fast) and "SortMergeJoin" not in _plan(fast)
    assert "Sort [__fb_row_id" not in _plan(fast)
    spark.conf.set(BROADCAST_BYTES_CONF, "0")  # nothing fits: the shuffled, sorted build
    try:
        slow = _build(shared_world, pdf)
        assert "Sort [__fb_row_id" in _plan(slow)
        columns = fast.columns
        assert slow.columns == columns and "row_id" in columns
        got, expected = _rows(fast, columns), _rows(slow, columns)
        assert got == expected  # same rows, same order, same values (NULLs, duplicates, unseen keys)
        assert [r[columns.index("row_id")] for r in got] == list(pdf["row_id"])  # the spine's order
    finally:
        spark.conf.unset(BROADCAST_BYTES_CONF)


def test_a_row_level_group_or_broadcasts_off_keep_the_sort(shared_world):  # noqa: F811
    spark = shared_world.spark
    _, pdf = _spine(random.Random(21), shared_world, DAYS[:8], n=30)
    store = _store(shared_world)
    with_profile = store.build_training_set(features=["customer_card_spend:*", "customer_profile:segment"],
                                            spine=pdf, allow_missing=True).frame
    assert "Sort [__fb_row_id" in _plan(with_profile)
    spark.conf.set("spark.sql.autoBroadcastJoinThreshold", "-1")
    try:
        assert "Sort [__fb_row_id" in _plan(_build(shared_world, pdf))
    finally:
        spark.conf.unset("spark.sql.autoBroadcastJoinThreshold")


def test_the_default_broadcast_limit_follows_the_drivers_heap_and_result_size(spark):
    from featurebank.training.join import BROADCAST_HEAP_SHARE, broadcast_limit

    heap = int(spark.sparkContext._jvm.java.lang.Runtime.getRuntime().maxMemory())
    result = spark.conf.get("spark.driver.maxResultSize", "1g")
    assert result == "1g"  # the test session's: a broadcast's collect must stay under it
    assert broadcast_limit(spark) == min(heap // BROADCAST_HEAP_SHARE, (1 << 30) // 2)
    assert 0 < broadcast_limit(spark) <= 512 << 20


def _fingerprint_as_recorded_before(frame, columns, instant, zone):
    """The fingerprint as every manifest before session 9 recorded it: the row hashes summed as
    decimal(38,0) over all rows, the dates by collect_set (the oracle of the grouped BIGINT pass)."""
    import hashlib
    import json

    from pyspark.sql import functions as F

    from featurebank.days import local_date

    cols = [F.col(f"`{c}`") for c in columns]
    row = frame.agg(F.count(F.lit(1)).alias("rows"),
                    F.sum(F.xxhash64(*cols).cast("decimal(38,0)")).alias("h1"),
                    F.sum(F.hash(*cols).cast("decimal(38,0)")).alias("h2"),
                    F.collect_set(local_date(F.col(instant), zone)).alias("dates")).first()
    schema = tuple((f.name, f.dataType.simpleString()) for f in frame.schema.fields if f.name in columns)
    text = json.dumps({"schema": schema, "rows": row["rows"], "h1": str(row["h1"]), "h2": str(row["h2"])})
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest(), frozenset(row["dates"] or ())


def test_the_spine_fingerprint_and_dates_are_those_manifests_recorded_before(spark):
    """A spine's fingerprint is compared with its manifest's on every rebuild: the grouped BIGINT
    pass must give the decimal pass's exact sums (negative hashes, NULL values and instants, one
    date or many, an empty spine)."""
    import datetime as dt

    from featurebank.training.spine import profile_spine

    rnd = random.Random(9)
    zone = "America/Sao_Paulo"
    base = dt.datetime(2024, 3, 1, tzinfo=dt.timezone.utc)
    rows = [(i, rnd.choice([None, "c1", "c2", f"c{rnd.randrange(10**6)}"]),
             None if rnd.random() < 0.05 else base + dt.timedelta(seconds=rnd.randrange(40 * 86400)),
             rnd.choice([None, 0, 1, -(2**31)])) for i in range(5000)]
    frame = spark.createDataFrame(rows, "row_id long, customer_id string, ts timestamp, label int")
    columns = ["row_id", "customer_id", "ts", "label"]
    for part in (frame, frame.where("ts < '2024-03-02'"), frame.limit(1), frame.limit(0)):
        profile = profile_spine(part, columns, "ts", zone)
        fingerprint, dates = _fingerprint_as_recorded_before(part, columns, "ts", zone)
        assert (profile.fingerprint, profile.dates) == (fingerprint, dates)
        assert profile.rows == part.count()
    assert len(profile_spine(frame, columns, "ts", zone).dates) > 30
