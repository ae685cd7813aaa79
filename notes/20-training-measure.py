"""Where the bench's training set's time goes: `FeatureStore.training_set` + a Parquet write, as
bench/tasks.py's fb_training runs it, in one fresh process, each step timed; then the executed plan's
operators (exchanges, sorts, joins) and the output's digest (to compare variants row for row).

    PYTHONPATH=lib:tools:. python notes/20-training-measure.py bench/data/scale-1 [repeats] [k=v ...]
k=v: session settings over featurebank's (e.g. spark.featurebank.training.broadcastBytes=0).
"""
import hashlib
import os
import shutil
import sys
import time
from pathlib import Path

sys.path[:0] = [os.environ.get("FB_LIB", "lib"), "tools", "."]


def main() -> None:
    from bench.tasks import spark_session
    from featurebank.training import api, spine

    root = Path(sys.argv[1])
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    started = time.perf_counter()
    spark, _ = spark_session(str(root / "project"))
    spark.sparkContext.setLogLevel("ERROR")
    for setting in sys.argv[3:]:
        spark.conf.set(*setting.split("=", 1))
    print(f"session {time.perf_counter() - started:.1f} s", flush=True)
    spent: dict[str, float] = {}

    def timed(owner, name):  # noqa: ANN001, ANN202
        real = getattr(owner, name)

        def wrapper(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            t = time.perf_counter()
            try:
                return real(*args, **kwargs)
            finally:
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - t
        setattr(owner, name, wrapper)

    timed(spine, "read_spine")
    timed(spine, "profile_spine")
    timed(api.FeatureStore, "_runs")
    out = "/tmp/fb-training-measure"
    for r in range(repeats):
        spent.clear()
        shutil.rmtree(out, ignore_errors=True)
        t0 = time.perf_counter()
        store = api.FeatureStore(str(root / "project"), env="bench", spark=spark)
        frame = store.training_set(features=["customer_card_spend_bench:*"], spine=str(root / "spine.parquet"))
        t1 = time.perf_counter()
        frame.write.mode("overwrite").parquet(out)
        t2 = time.perf_counter()
        steps = ", ".join(f"{k} {v:.2f}" for k, v in spent.items())
        print(f"run {r + 1}: {t2 - t0:.1f} s = build {t1 - t0:.1f} ({steps}) + write {t2 - t1:.1f}", flush=True)
    plan = frame._jdf.queryExecution().executedPlan().toString()
    ops = {op: plan.count(op) for op in ("Exchange", "Sort ", "SortMergeJoin", "BroadcastHashJoin", "BroadcastExchange")}
    print("plan:", ops)
    rows = spark.read.parquet(out)
    digest = hashlib.sha256()
    for row in rows.orderBy("row_id").toLocalIterator():
        digest.update(repr(tuple(row)).encode())
    import pyarrow.parquet as pq

    files = sorted(str(f) for f in Path(out).glob("part-*.parquet"))
    order = pq.read_table(files, columns=["row_id"]).to_pandas()["row_id"]  # file name order = partition order
    print(f"rows {len(order)}, in spine order {bool((order.diff().dropna() > 0).all())}, digest {digest.hexdigest()[:16]}")


if __name__ == "__main__":
    main()
