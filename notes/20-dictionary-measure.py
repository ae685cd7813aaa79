"""Publish-like write of N dates of the bench feature table with and without Parquet dictionary
encoding on the floating/decimal feature columns; then a full decode of what was written."""
import os, sys, time, shutil
sys.path[:0] = ["lib", "tools", "."]
from featurebank.io.spark import get_spark
from featurebank.io.tables import clustered
from pyspark import StorageLevel
from pyspark.sql import functions as F

src = "bench/data/scale-1/project/warehouse/features/customer_card_spend_bench"
dates = int(sys.argv[1]) if len(sys.argv) > 1 else 60
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 2
spark = get_spark(None, app_name="dict", platform="local")
spark.sparkContext.setLogLevel("ERROR")
t = spark.read.format("delta").load(src)
last = t.agg(F.max("feature_date")).first()[0]
batch = t.where(F.col("feature_date") > F.date_sub(F.lit(last), dates)).repartition(8, "customer_id").persist(StorageLevel.MEMORY_AND_DISK)
n = batch.count()
floating = [f.name for f in batch.schema.fields if f.dataType.typeName() in ("double", "float", "decimal")]
print(f"{n} rows, {dates} dates; floating columns: {len(floating)} of {len(batch.columns)}", flush=True)
VARIANTS = {"dict": [], "plain": floating, "plainkey": floating + ["customer_id"]}
def setdict(variant):
    for c in batch.columns:
        spark.conf.unset(f"parquet.enable.dictionary#{c}")
    for c in VARIANTS[variant]:
        spark.conf.set(f"parquet.enable.dictionary#{c}", "false")
for r in range(rounds):
    order = list(VARIANTS)
    for variant in order[r % 3:] + order[:r % 3]:
        setdict(variant)
        out = f"/tmp/dict-measure/out-{variant}"
        shutil.rmtree(out, ignore_errors=True)
        t0 = time.perf_counter()
        clustered(spark, batch, ["customer_id"]).write.format("delta").partitionBy("feature_date") \
            .option("delta.dataSkippingStatsColumns", "customer_id,feature_ts").save(out)
        w = time.perf_counter() - t0
        size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(out) for f in fs if f.endswith(".parquet"))
        t0 = time.perf_counter()
        spark.read.format("delta").load(out).write.format("noop").mode("overwrite").save()
        rd = time.perf_counter() - t0
        print(f"round {r} {variant:5s}: write {w:6.1f} s, read {rd:5.1f} s, {size/2**20:7.1f} MiB", flush=True)
