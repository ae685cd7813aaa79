"""Where a daily run's time goes: one `run_group` of one date on a copy of a bench project, every step
of the runner timed (wall, in order of first call), the batch materialised before the gate as
bench/tasks.py does,.

    PYTHONPATH=lib:tools:. python notes/20-daily-measure.py bench/data/scale-1/project-30d 2025-01-01 [end] [repeats] [k=v ...]
FRESH=1 drops the copy's warehouse (a first publish); FB_STEPS=module:attribute,... times more functions
(patched on their module: a function called through its module's global, e.g. featurebank.io.tables:_commit). The project (conf, features, warehouse) is copied to a temporary directory for each repeat, so every
repeat starts from the same published state.
"""
import os
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path[:0] = [os.environ.get("FB_LIB", "lib"), "tools", "."]

STEPS = [  # (module, attribute): the runner's steps, patched where the runner looks them up
    ("featurebank.review", "refuse_breaking"), ("featurebank.runner", "append_run"), ("featurebank.io.fingerprints", "record_inputs"),
    ("featurebank.io.tables", "check_compatible"), ("featurebank.readiness", "check_source"),
    ("featurebank.gate.drift", "drift_references"), ("featurebank.gate", "run_gate"),
    ("featurebank.runner", "_archive_superseded"), ("featurebank.io.tables", "publish"),
    ("featurebank.runner", "append_final"), ("featurebank.runner", "_store_profiles"),
]


def main() -> None:
    import importlib

    from bench.tasks import spark_session
    from featurebank.definitions import load_project
    from featurebank.io.spark import RUN_SIZE_ENV, run_size

    source, when = Path(sys.argv[1]), date.fromisoformat(sys.argv[2])
    last = date.fromisoformat(sys.argv[3]) if len(sys.argv) > 3 else when
    repeats = int(sys.argv[4]) if len(sys.argv) > 4 else 2
    os.environ.setdefault(RUN_SIZE_ENV, run_size("run", (last - when).days + 1))  # the session `featurebank run` gets
    started = time.perf_counter()
    spark, _ = spark_session(str(source))
    spark.sparkContext.setLogLevel("ERROR")
    for setting in sys.argv[5:]:  # k=v: a session setting over featurebank's
        spark.conf.set(*setting.split("=", 1))
    print(f"session {time.perf_counter() - started:.1f} s", flush=True)
    spent: dict[str, list[float]] = {}

    def timed(name, real):  # noqa: ANN001, ANN202
        def wrapper(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            if name == "run_gate":
                from pyspark import StorageLevel

                batch = args[0]
                t = time.perf_counter()
                batch.persist(StorageLevel.MEMORY_AND_DISK)
                batch.count()
                entry = spent.setdefault("compute (materialise)", [0.0, 0])
                entry[0] += time.perf_counter() - t
                entry[1] += 1
            t = time.perf_counter()
            try:
                return real(*args, **kwargs)
            finally:
                entry = spent.setdefault(name, [0.0, 0])
                entry[0] += time.perf_counter() - t
                entry[1] += 1
        return wrapper

    import featurebank.runner  # noqa: F401 - the modules must exist before patching

    extra = [tuple(step.split(":", 1)) for step in os.environ.get("FB_STEPS", "").split(",") if step]
    for module_name, attribute in [*STEPS, *extra]:  # FB_STEPS=module:attribute,...: more steps timed
        module = importlib.import_module(module_name)
        real = getattr(module, attribute)
        setattr(module, attribute, timed(attribute, real))
    for repeat in range(repeats):
        with tempfile.TemporaryDirectory(prefix="fb-daily-") as tmp:
            project_dir = Path(tmp) / source.name
            shutil.copytree(source, project_dir, ignore=shutil.ignore_patterns("logs"))
            raw = source.parent / "raw"
            (Path(tmp) / "raw").symlink_to(raw.resolve())
            if os.environ.get("FRESH"):  # FRESH=1: nothing published yet (a first backfill)
                shutil.rmtree(project_dir / "warehouse", ignore_errors=True)
            project = load_project(str(project_dir), env="bench")
            spent.clear()
            t = time.perf_counter()
            featurebank.runner.run_group(project, "customer_card_spend_bench", when, last, spark=spark)
            total = time.perf_counter() - t
            print(f"repeat {repeat}: run_group {total:.1f} s; load {os.getloadavg()[0]:.1f}", flush=True)
            for name, (seconds, calls) in spent.items():
                print(f"  {name:28s} {seconds:6.2f} s  ({calls} call{'s' if calls != 1 else ''})", flush=True)
            print(f"  {'(rest)':28s} {total - sum(v[0] for v in spent.values()):6.2f} s")


if __name__ == "__main__":
    main()
