"""Time the run's profiles (engine.profile.profile_batch) and their parts on a persisted slice of a
published bench table: wall and JVM CPU per variant, and a digest of what each computes.

    PYTHONPATH=lib:tools:. python notes/20-profile-measure.py <delta table> <dates> [variant ...]
variants: full (profile_batch as the run calls it), quartiles (its sampled quartiles alone), pass1, pass1-noq (pass 1 without the quartiles),
pass2 (the histogram/top-value passes alone, on pass 1's result: since session 18 numpy's counts in one
mapInArrow pass), pass2-int (buckets as int), pass2-cond
(one conditional count per feature and bin, no unpivot). Same digest = same profiles (pass2* agree among
themselves when every feature is numeric).
"""
import hashlib
import os
import sys
import time
from pathlib import Path

sys.path[:0] = [os.environ.get("FB_LIB", "lib"), "tools", "."]


def _measure_helpers():  # cpu_seconds(pid), jvm_pid(): notes/20-compute-measure.py's
    import importlib.util

    spec = importlib.util.spec_from_file_location("compute_measure", Path(__file__).with_name("20-compute-measure.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.cpu_seconds, module.jvm_pid


cpu_seconds, jvm_pid = _measure_helpers()


def main() -> None:
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from bench.tasks import spark_session
    from featurebank.engine import profile as P

    table, days, variants = sys.argv[1], int(sys.argv[2]), [v for v in sys.argv[3:] if "=" not in v] or ["full"]
    spark, _ = spark_session(str(Path(__file__).resolve().parent.parent / "bench" / "project"))
    spark.sparkContext.setLogLevel("ERROR")
    jvm = jvm_pid()
    for setting in (v for v in sys.argv[3:] if "=" in v):  # k=v: a session setting over featurebank's
        spark.conf.set(*setting.split("=", 1))
    df = spark.read.format("delta").load(table)
    last = df.agg(F.max("feature_date")).first()[0]
    batch = df.where(F.col("feature_date") > F.date_sub(F.lit(last), days)).persist(StorageLevel.MEMORY_AND_DISK)
    rows = batch.count()
    features = tuple(c for c in batch.columns if c not in ("customer_id", "feature_date", "feature_ts"))
    types = {f.name: f.dataType.simpleString() for f in batch.schema.fields}
    print(f"{table}: {rows} rows, {days} dates, {len(features)} features", flush=True)

    def pass1(quartiles: bool) -> dict:
        original = F.percentile_approx
        if not quartiles:
            F.percentile_approx = lambda v, q, a: F.array(*[F.lit(None).cast("double")] * 3)  # type: ignore[assignment]
        try:
            stats = [F.count(F.lit(1)).alias("__rows")]
            for i, name in enumerate(features):
                value = P._finite(name, types[name])
                stats += [F.count(F.col(f"`{name}`")).alias(f"n{i}"), F.count(value).alias(f"f{i}"),
                          F.min(value).alias(f"min{i}"), F.avg(value).alias(f"avg{i}"), F.max(value).alias(f"max{i}"),
                          F.percentile_approx(value, [0.25, 0.5, 0.75], 1000).alias(f"q{i}")]
            return {r["feature_date"]: r.asDict() for r in batch.groupBy("feature_date").agg(*stats).collect()}
        finally:
            F.percentile_approx = original

    firsts = pass1(True)
    numeric = [i for i, name in enumerate(features) if P.is_numeric(types[name])
               and any(P._edges(row, i) for row in firsts.values())]

    def edges_frame():
        ranges = []
        for when, row in firsts.items():
            values = [when]
            for i in numeric:
                edges = P._edges(row, i)
                low, high = edges if edges else (None, None)
                values += [low, None if low is None or high is None else (high - low) / P.BINS]
            ranges.append(tuple(values))
        ddl = ", ".join(["feature_date DATE", *[f"lo{i} DOUBLE, w{i} DOUBLE" for i in numeric]])
        return spark.createDataFrame(ranges, schema=ddl)

    def bin_of(i):
        value, low, width = P._finite(features[i], types[features[i]]), F.col(f"lo{i}"), F.col(f"w{i}")
        return F.when(value.isNotNull() & (width > 0),
                      F.least(F.floor((value - low) / width), F.lit(P.BINS - 1))).when(value.isNotNull(), F.lit(0))

    def as_counts(items):  # {date: {feature: {bucket string: rows}}}
        counts = {}
        for when, i, bucket, n in items:
            if n:
                counts.setdefault(when, {}).setdefault(features[i], {})[str(bucket)] = int(n)
        return canonical(counts)

    def canonical(counts):
        return repr(sorted((d, f, b, n) for d, fs in counts.items() for f, bs in fs.items() for b, n in bs.items()))

    def pass2_int():
        joined = batch.join(F.broadcast(edges_frame()), on="feature_date", how="inner")
        pairs = ", ".join(f"{i}, b{i}" for i in numeric)
        stacked = joined.select("feature_date", *[bin_of(i).cast("int").alias(f"b{i}") for i in numeric]).selectExpr(
            "feature_date", f"stack({len(numeric)}, {pairs}) as (feature_index, bucket)")
        rows = stacked.where("bucket is not null").groupBy("feature_date", "feature_index", "bucket").count().collect()
        return as_counts((r[0], r[1], r[2], r[3]) for r in rows)

    def pass2_pos():
        joined = batch.join(F.broadcast(edges_frame()), on="feature_date", how="inner")
        binned = joined.select("feature_date", F.posexplode(F.array(*[bin_of(i).cast("int") for i in numeric])))
        rows = binned.where("col is not null").groupBy("feature_date", "pos", "col").count().collect()
        return as_counts((r[0], numeric[r[1]], r[2], r[3]) for r in rows)

    def pass2_union():
        edges = F.broadcast(edges_frame())
        parts = [batch.select("feature_date", f"`{features[i]}`").join(edges.select("feature_date", f"lo{i}", f"w{i}"),
                                                                         on="feature_date", how="inner")
                 .select("feature_date", F.lit(i).alias("feature_index"), bin_of(i).cast("int").alias("bucket"))
                 for i in numeric]
        stacked = parts[0]
        for part in parts[1:]:
            stacked = stacked.unionAll(part)
        rows = stacked.where("bucket is not null").groupBy("feature_date", "feature_index", "bucket").count().collect()
        return as_counts((r[0], r[1], r[2], r[3]) for r in rows)

    def pass2_arr(chunk=len(features)):
        first_day = min(firsts)
        span = (max(firsts) - first_day).days + 1
        index = F.datediff(F.col("feature_date"), F.lit(first_day)) + 1

        def at(i, which):
            values = [None] * span
            for when, row in firsts.items():
                edges = P._edges(row, i)
                if edges:
                    values[(when - first_day).days] = edges[0] if which == "lo" else (edges[1] - edges[0]) / P.BINS
            return F.element_at(F.array(*[F.lit(v).cast("double") for v in values]), index)

        found = []
        for start in range(0, len(numeric), chunk):
            some = numeric[start:start + chunk]
            aggs = []
            for i in some:
                value, low, width = P._finite(features[i], types[features[i]]), at(i, "lo"), at(i, "w")
                b = F.when(value.isNotNull() & (width > 0),
                           F.least(F.floor((value - low) / width), F.lit(P.BINS - 1))).when(value.isNotNull(), F.lit(0))
                aggs += [F.count_if(b == k).alias(f"c{i}_{k}") for k in range(P.BINS)]
            rows = batch.groupBy("feature_date").agg(*aggs).collect()
            found += [(r["feature_date"], i, k, r[f"c{i}_{k}"]) for r in rows for i in some for k in range(P.BINS)]
        return as_counts(found)

    def pass2_cond(chunk=len(features)):
        edges = F.broadcast(edges_frame())
        found = []
        for first in range(0, len(numeric), chunk):
            some = numeric[first:first + chunk]
            joined = batch.select("feature_date", *[f"`{features[i]}`" for i in some]).join(
                edges.select("feature_date", *[c for i in some for c in (f"lo{i}", f"w{i}")]), on="feature_date")
            binned = joined.select("feature_date", *[bin_of(i).cast("int").alias(f"b{i}") for i in some])
            aggs = [F.count_if(F.col(f"b{i}") == k).alias(f"c{i}_{k}") for i in some for k in range(P.BINS)]
            rows = binned.groupBy("feature_date").agg(*aggs).collect()
            found += [(r["feature_date"], i, k, r[f"c{i}_{k}"]) for r in rows for i in some for k in range(P.BINS)]
        return as_counts(found)

    run = {
        "full": lambda: "".join(P.profile_json(p) for p in P.profile_batch(batch, "g", features)),
        "pass1": lambda: repr(sorted((d, sorted(r.items())) for d, r in pass1(True).items())),
        "pass1-noq": lambda: repr(sorted((d, sorted(r.items())) for d, r in pass1(False).items())),
        "pass2": lambda: canonical(P._bucket_counts(batch, list(features), types, firsts)),
        "quartiles": lambda: repr(sorted(P._quartiles(batch, list(features), types, firsts).items())),
        "pass2-int": pass2_int,
        "pass2-cond": pass2_cond,
        "pass2-arr": pass2_arr,
        "pass2-arr3": lambda: pass2_arr(3),
        "pass2-cond5": lambda: pass2_cond(5),
        "pass2-cond1": lambda: pass2_cond(1),
        "pass2-cond3": lambda: pass2_cond(3),
        "pass2-pos": pass2_pos,
        "pass2-union": pass2_union,
    }
    for variant in variants:
        for repeat in range(2):
            cpu, started = cpu_seconds(jvm), time.perf_counter()
            text = run[variant]()
            wall, used = time.perf_counter() - started, cpu_seconds(jvm) - cpu
            digest = hashlib.sha256(text.encode()).hexdigest()[:16]
            print(f"{variant:10s} run {repeat}: {wall:6.1f} s wall, {used:6.1f} JVM CPU-s, digest {digest}  "
                  f"load {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
