"""Time featurebank's backfill compute alone (noop write) at a bench scale: wall, JVM CPU, plan counts.

    PYTHONPATH=lib:tools:. python notes/20-compute-measure.py --scale 0.1 --repeats 2 [--conf k=v]
CPU = user+sys of the JVM (the Spark driver/executors of local[2]) from /proc, in seconds.
"""
import argparse
import os
import re
import sys
import time
from pathlib import Path

sys.path[:0] = [os.environ.get("FB_LIB", "lib"), "tools", "."]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def jvm_pid() -> int:
    me = str(os.getpid())
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                stat = (p / "stat").read_text().rsplit(")", 1)[1].split()
                cmd = (p / "cmdline").read_bytes()
            except OSError:
                continue
            if stat[1] == me and b"java" in cmd:
                return int(p.name)
    raise SystemExit("no JVM child found")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=0.1)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--plan", action="store_true")
    ap.add_argument("--conf", action="append", default=[], help="k=v: a session setting over featurebank's")
    a = ap.parse_args()
    from bench.run import prepare_project
    from featurebank.io.spark import get_spark
    from bench.workload import ensure_workload
    from featurebank.compile.run import compile_plan
    from featurebank.definitions import load_project
    from featurebank.runner import compute

    wl = ensure_workload(a.scale)
    project_dir = prepare_project(wl, "project")
    project = load_project(str(project_dir), env="bench")
    spark = get_spark(project.config, app_name="featurebank-measure", platform="local")
    plan = compile_plan(project, "customer_card_spend_bench", wl.backfill_start, wl.backfill_end)
    spark.conf.set("spark.sql.debug.maxToStringFields", "10000")
    for setting in a.conf:
        spark.conf.set(*setting.split("=", 1))
    batch = compute(spark, plan)
    text = batch._jdf.queryExecution().executedPlan().toString()
    counts = {k: len(re.findall(p, text)) for k, p in
              {"exchange": r"Exchange ", "sort": r"\bSort \[", "window": r"\bWindow \[", "scan": r"FileScan"}.items()}
    fns = sum(len(re.findall(r" windowspecdefinition", line)) for line in text.splitlines() if "Window [" in line)
    if a.plan:
        print(text)
    pid = jvm_pid()
    print(f"plan: {counts} window functions: {fns}; load {os.getloadavg()}")
    for r in range(a.repeats):
        c0, t0 = cpu_seconds(pid), time.perf_counter()
        batch.write.format("noop").mode("overwrite").save()
        print(f"run {r}: wall {time.perf_counter() - t0:.1f}s cpu {cpu_seconds(pid) - c0:.1f}s load {os.getloadavg()[0]:.2f}",
              flush=True)


if __name__ == "__main__":
    main()
