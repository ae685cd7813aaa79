"""Where the backfill's publish goes at a bench scale: the batch computed and persisted once, then
each variant of the write timed on it (wall, JVM CPU, files written).

    PYTHONPATH=lib:tools:. python notes/20-publish-measure.py --scale 1 [--variants sort,delta,...]
Variants: `scan` (batch to noop), `sort` (clustered(batch) to noop: coalesce + the sort by date),
`sort8` (the sort by date within the compute's partitions, to noop), `delta` (the publish's own
write: clustered, partitioned Delta, stats and encodings as io.tables._commit), `delta4` / `delta8`
(the same from 4 coalesced / all compute partitions, each sorted), `parquet` (clustered, plain
Parquet, Spark's own encodings), `concurrent` (Delta from coalesce(2), unsorted, Spark's concurrent
partition writers: WRITERS, default 512), `range8` / `hash8` (Delta from a shuffle of the batch into 8
partitions by date range / date hash, each sorted: one file per date), `range8sort` (that shuffle and
sort alone, to noop). Prints the persisted batch's cache size first. Spill figures: run it with
`spark.eventLog.enabled` in a `SPARK_CONF_DIR`'s spark-defaults.conf and read the stages' spill metrics.
"""
import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path[:0] = [os.environ.get("FB_LIB", "lib"), "tools", "."]
from importlib.util import module_from_spec, spec_from_file_location  # noqa: E402

_spec = spec_from_file_location("cm", "notes/20-compute-measure.py")
cm = module_from_spec(_spec)
_spec.loader.exec_module(cm)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--variants", default="sort,delta")
    a = ap.parse_args()
    from pyspark import StorageLevel

    from bench.run import prepare_project
    from bench.workload import ensure_workload
    from featurebank.compile.run import compile_plan
    from featurebank.definitions import load_project
    from featurebank.io.spark import get_spark, session_settings
    from featurebank.io.tables import PARTITION_COLUMN, STATS_COLUMNS_PROPERTY, clustered, plain_encoded, stats_columns
    from featurebank.runner import compute

    wl = ensure_workload(a.scale)
    project = load_project(str(prepare_project(wl, "project")), env="bench")
    spark = get_spark(project.config, app_name="featurebank-measure", platform="local")
    spark.sparkContext.setLogLevel("ERROR")
    plan = compile_plan(project, "customer_card_spend_bench", wl.backfill_start, wl.backfill_end)
    pid = cm.jvm_pid()
    t0 = time.perf_counter()
    batch = compute(spark, plan).persist(StorageLevel.MEMORY_AND_DISK)
    print(f"compute + persist: {batch.count()} rows in {time.perf_counter() - t0:.1f} s", flush=True)
    for info in spark.sparkContext._jsc.sc().getRDDStorageInfo():
        print(f"cached: {info.memSize() / 2**30:.2f} GiB in memory, {info.diskSize() / 2**30:.2f} GiB on disk", flush=True)
    settings = plain_encoded(batch.schema, plan.keys)
    stats = ",".join(stats_columns(batch.columns, plan.keys))

    def delta(frame, path):
        with session_settings(spark, settings):
            (frame.write.format("delta").mode("overwrite").partitionBy(PARTITION_COLUMN)
             .option(STATS_COLUMNS_PROPERTY, stats).save(path))

    def concurrent(path):
        with session_settings(spark, {"spark.sql.maxConcurrentOutputFileWriters": os.environ.get("WRITERS", "512")}):
            delta(batch.coalesce(2), path)

    variants = {
        "scan": lambda path: batch.write.format("noop").mode("overwrite").save(),
        "sort": lambda path: clustered(spark, batch).write.format("noop").mode("overwrite").save(),
        "sort8": lambda path: batch.sortWithinPartitions(PARTITION_COLUMN).write.format("noop").mode("overwrite").save(),
        "delta": lambda path: delta(clustered(spark, batch), path),
        "delta4": lambda path: delta(batch.coalesce(4).sortWithinPartitions(PARTITION_COLUMN), path),
        "delta8": lambda path: delta(batch.sortWithinPartitions(PARTITION_COLUMN), path),
        "parquet": lambda path: clustered(spark, batch).write.mode("overwrite").partitionBy(PARTITION_COLUMN).parquet(path),
        "concurrent": concurrent,
        "range8": lambda path: delta(batch.repartitionByRange(8, PARTITION_COLUMN).sortWithinPartitions(PARTITION_COLUMN), path),
        "hash8": lambda path: delta(batch.repartition(8, PARTITION_COLUMN).sortWithinPartitions(PARTITION_COLUMN), path),
        "range8sort": lambda path: batch.repartitionByRange(8, PARTITION_COLUMN).sortWithinPartitions(PARTITION_COLUMN)
        .write.format("noop").mode("overwrite").save(),
    }
    for name in a.variants.split(","):
        path = tempfile.mkdtemp(prefix="fb-publish-")
        c0, t = cm.cpu_seconds(pid), time.perf_counter()
        variants[name](path)
        files = sum(len([f for f in fs if f.endswith(".parquet")]) for _, _, fs in os.walk(path))
        print(f"{name:10s} wall {time.perf_counter() - t:6.1f} s  cpu {cm.cpu_seconds(pid) - c0:6.1f} s  "
              f"files {files}  load {os.getloadavg()[0]:.1f}", flush=True)
        shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    main()
