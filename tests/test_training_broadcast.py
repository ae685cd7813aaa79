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
