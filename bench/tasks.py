"""One measured task, run in a fresh subprocess by `bench.run` (never imported by it).

    python -m bench.tasks TASK_JSON RESULT_PATH

TASK_JSON names a task (`fb_backfill`, `per_date`, `duckdb_backfill`, `fb_training`, ...)
and its arguments; the result (seconds of the measured work, excluding the Spark session's
start, which is reported apart; per-stage seconds; row counts; the process tree's peak
memory read just before the JVM stops) is written to RESULT_PATH as JSON. A task that
cannot run (a featurebank stage not there yet, an error) writes `{"error": ...}`.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import traceback
from datetime import date
from pathlib import Path
from typing import Any, Callable

from bench import baselines
from bench.memory import MemorySampler, tree_cpu_seconds

TASKS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {}
_SPARK: Any = None


def task(fn: Callable[[dict[str, Any]], dict[str, Any]]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    TASKS[fn.__name__] = fn
    return fn


def _d(value: str) -> date:
    return date.fromisoformat(value)


def spark_session(project_dir: str) -> tuple[Any, float]:
    """The session every Spark measurement uses: featurebank's one builder, with the bench
    environment's Spark settings (conf/bench.yaml: local[2], shuffle partitions, driver
    memory), whatever side is measured. Returns (session, seconds it took to start)."""
    global _SPARK
    import yaml

    from featurebank.definitions.config import Config, SparkSettings
    from featurebank.io.spark import get_spark

    raw = yaml.safe_load((Path(project_dir) / "conf" / "bench.yaml").read_text())
    spark_conf = tuple((str(k), str(v)) for k, v in (raw.get("spark", {}).get("conf", {}) or {}).items())
    os.environ["FEATUREBANK_SPARK_MASTER"] = dict(spark_conf).get("spark.master", "local[2]")
    config = Config(env="bench", feature_root="", timezone=raw.get("timezone", "UTC"), spark=SparkSettings(spark_conf))
    started = time.perf_counter()
    _SPARK = get_spark(config, app_name="featurebank-bench", platform="local")
    _SPARK.range(1).count()  # the JVM and its first job are up
    return _SPARK, time.perf_counter() - started


class StageClock:
    """Instrumentation of featurebank's runner: wraps the gate and the publish so their
    seconds are known inside one run. The wrapper around the gate first materialises the
    batch (persist + count), timed as compute, so that what is timed as gate is the checks
    alone (the one pass over the cached batch, GX where it judges, the report), not the
    feature computation Spark would otherwise run lazily inside the gate's one pass (the run
    itself has no count job: that one count is the instrumentation's, a cached scan)."""

    def __init__(self) -> None:
        self.seconds = {"materialize": 0.0, "gate": 0.0, "publish": 0.0}
        self.calls = {"gate": 0, "publish": 0}

    def install(self) -> None:
        import featurebank.gate as gate_module
        import featurebank.io.tables as publish_module

        runner = sys.modules.get("featurebank.runner")
        real_gate, real_publish = gate_module.run_gate, publish_module.publish

        def timed_gate(batch: Any, *args: Any, **kwargs: Any) -> Any:
            from pyspark import StorageLevel

            started = time.perf_counter()
            if not batch.storageLevel.useMemory and not batch.storageLevel.useDisk:
                batch.persist(StorageLevel.MEMORY_AND_DISK)
            batch.count()
            materialized = time.perf_counter()
            try:
                return real_gate(batch, *args, **kwargs)
            finally:
                self.seconds["materialize"] += materialized - started
                self.seconds["gate"] += time.perf_counter() - materialized
                self.calls["gate"] += 1

        def timed_publish(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return real_publish(*args, **kwargs)
            finally:
                self.seconds["publish"] += time.perf_counter() - started
                self.calls["publish"] += 1

        setattr(gate_module, "run_gate", timed_gate)
        setattr(publish_module, "publish", timed_publish)
        for module in (runner,):
            if module is not None:  # a runner that imported the functions by name at module level
                if getattr(module, "run_gate", None) is real_gate:
                    setattr(module, "run_gate", timed_gate)
                if getattr(module, "publish", None) is real_publish:
                    setattr(module, "publish", timed_publish)


def _run_featurebank(args: dict[str, Any], start: date, end: date) -> dict[str, Any]:
    import featurebank.runner as runner
    from featurebank.definitions import load_project
    from featurebank.io.spark import RUN_SIZE_ENV, run_size

    # the session a `featurebank run` of these dates gets (issue 20: short runs start fast)
    os.environ.setdefault(RUN_SIZE_ENV, run_size("run", (end - start).days + 1))
    spark, startup = spark_session(args["project"])
    project = load_project(args["project"], env="bench")
    clock = StageClock()
    clock.install()
    started = time.perf_counter()
    outcomes = runner.run_group(project, args["group"], start, end, spark=spark)
    seconds = time.perf_counter() - started
    rows = sum(int(getattr(o, "rows_written", 0) or 0) for o in outcomes or [])
    return {
        "seconds": seconds,
        "startup_seconds": startup,
        "stages": clock.seconds,
        "stage_calls": clock.calls,
        "rows": rows,
        "outcomes": [repr(o)[:300] for o in outcomes or []],
    }


@task
def fb_backfill(args: dict[str, Any]) -> dict[str, Any]:
    """featurebank: compute + gate + publish snapshot dates start..end (one run_group call)."""
    if args.get("fresh"):
        shutil.rmtree(Path(args["project"]) / "warehouse", ignore_errors=True)
    return _run_featurebank(args, _d(args["start"]), _d(args["end"]))


@task
def fb_incremental(args: dict[str, Any]) -> dict[str, Any]:
    """featurebank: the daily run for one new snapshot date on top of published history."""
    return _run_featurebank(args, _d(args["date"]), _d(args["date"]))


@task
def per_date(args: dict[str, Any]) -> dict[str, Any]:
    """Baseline (a): the hand-written per-date PySpark job over a sample of dates."""
    shutil.rmtree(args["out"], ignore_errors=True)
    spark, startup = spark_session(args["project"])
    dates = [_d(d) for d in args["dates"]]
    started = time.perf_counter()
    per = baselines.per_date_backfill(spark, args["events"], dates, args["out"])
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "startup_seconds": startup, "per_date_seconds": per,
            "dates": args["dates"]}


@task
def duckdb_backfill(args: dict[str, Any]) -> dict[str, Any]:
    """Baseline (b): DuckDB, 2 threads, every snapshot date in one query."""
    started = time.perf_counter()
    rows = baselines.duckdb_backfill(args["events"], _d(args["start"]), _d(args["end"]), args["out"],
                                     threads=args.get("threads", 2))
    return {"seconds": time.perf_counter() - started, "startup_seconds": 0.0, "rows": rows}


@task
def fb_training(args: dict[str, Any]) -> dict[str, Any]:
    """featurebank's point-in-time join: FeatureStore.training_set, written as Parquet."""
    from featurebank.training.api import FeatureStore

    shutil.rmtree(args["out"], ignore_errors=True)
    spark, startup = spark_session(args["project"])
    started = time.perf_counter()
    store = FeatureStore(args["project"], env="bench", spark=spark)
    frame = store.training_set(features=[f"{args['group']}:*"], spine=args["spine"])
    frame.write.mode("overwrite").parquet(args["out"])
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "startup_seconds": startup, "rows": spark.read.parquet(args["out"]).count()}


@task
def naive_training(args: dict[str, Any]) -> dict[str, Any]:
    """Baseline: Spark join-on-key then row_number() by feature_ts desc."""
    shutil.rmtree(args["out"], ignore_errors=True)
    spark, startup = spark_session(args["project"])
    started = time.perf_counter()
    rows = baselines.naive_training_set(spark, args["spine"], args["table"], args["out"])
    return {"seconds": time.perf_counter() - started, "startup_seconds": startup, "rows": rows}


@task
def duckdb_training(args: dict[str, Any]) -> dict[str, Any]:
    """Baseline: DuckDB ASOF LEFT JOIN, 2 threads."""
    shutil.rmtree(args["out"], ignore_errors=True)
    started = time.perf_counter()
    rows = baselines.duckdb_training_set(args["spine"], args["table"], args["out"], threads=args.get("threads", 2))
    return {"seconds": time.perf_counter() - started, "startup_seconds": 0.0, "rows": rows}


@task
def check_backfill(args: dict[str, Any]) -> dict[str, Any]:
    """Compare the three backfills on the per-date sample's dates (no Spark: delta-rs + DuckDB)."""
    from bench.checks import compare_backfills

    return compare_backfills(args["featurebank"], args["per_date"], args["duckdb"], [_d(d) for d in args["dates"]])


@task
def check_training(args: dict[str, Any]) -> dict[str, Any]:
    """Compare the three training sets row by row (DuckDB over their Parquet outputs)."""
    from bench.checks import compare_training_sets

    return compare_training_sets(args["featurebank"], args["naive"], args["duckdb"])


def main(argv: list[str]) -> int:
    spec, result_path = json.loads(argv[0]), Path(argv[1])
    name = spec.pop("task")
    try:
        result = TASKS[name](spec)
    except Exception as error:  # reported in RESULTS.md, not a crash of the whole benchmark
        result = {"error": f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}",
                  "traceback": traceback.format_exc()[-4000:]}
    sampler = MemorySampler(os.getpid())
    sampler.sample()  # the kernel's high-water marks, read while the JVM is still alive
    result["memory_self"] = sampler.peak.as_dict()
    result["cpu_seconds"] = tree_cpu_seconds(os.getpid())  # whole process incl. the JVM and its start
    result_path.write_text(json.dumps(result, default=str))
    if _SPARK is not None:
        _SPARK.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
