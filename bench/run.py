"""`make bench`: featurebank and its baselines, side by side, on the same data and cores.

    python -m bench.run [--scale S] [--repeats N] [--only backfill,incremental,training]
                        [--out bench/RESULTS.md] [--budget MINUTES] [--per-date-sample K]
                        [--timeout SECONDS] [--single-run-over SECONDS]

Scenarios (each measurement is a fresh subprocess: its own JVM in local[2], or DuckDB with
2 threads, so per-scenario memory is measurable and no side profits from the other's warm
caches; the order of the systems rotates between repeats):
  backfill     featurebank run_group over 365 snapshot dates vs the hand-written per-date
               PySpark job (timed on K evenly spaced dates, extrapolated x 365) vs DuckDB;
               values are compared on the K dates before any timing is reported.
  incremental  featurebank's daily run of one new date, with 30 and with 365 dates of history
               already published (each run on a copy of the project: the date is new every time).
  training     a spine (1M rows at scale 1) against the published table: featurebank's
               FeatureStore.training_set vs the naive join-then-rank in Spark vs DuckDB ASOF.
Gate overhead and peak memory come from the same runs. The report goes to --out.

Rounds: every measurement runs once (round 1, always complete), then rounds 2..--repeats
repeat them while --budget minutes allow; the report shows how many runs each median has and
why any repeat was skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.memory import MemorySampler
from bench.report import git_commit, render_report
from bench.workload import BENCH_DIR, Workload, ensure_workload, workload_for

REPO = BENCH_DIR.parent
SCENARIOS = ("backfill", "incremental", "training")
GROUP = "customer_card_spend_bench"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", type=float, default=1.0,
                   help="1.0 = 100k customers, 10M transactions, 1M spine rows (default); 0.01 for a quick check")
    p.add_argument("--repeats", type=int, default=3, help="runs per measurement; medians are reported (default 3)")
    p.add_argument("--only", default=",".join(SCENARIOS), help=f"comma-separated subset of {','.join(SCENARIOS)}")
    p.add_argument("--render", metavar="RESULTS_JSON", help="only re-render the report from a finished run's results.json")
    p.add_argument("--remark", help="with --render: a note on the run's conditions, kept in results.json and shown in the report")
    p.add_argument("--out", default=str(BENCH_DIR / "RESULTS.md"), help="the report (default bench/RESULTS.md)")
    p.add_argument("--budget", type=float, default=75,
                   help="minutes: after the first round (every measurement once, always run), further rounds "
                        "run a measurement only if its first run's time still fits (default 75: three full rounds at scale 1 take ~60 min on 2 cores; 0 = no limit)")
    p.add_argument("--per-date-sample", type=int, default=6,
                   help="snapshot dates the per-date baseline is timed on, then extrapolated x 365 (default 6)")
    p.add_argument("--timeout", type=float, default=600,
                   help="seconds one baseline measurement may take; a slower one is stopped and reported as a "
                        "lower bound (featurebank's own runs and setup steps may take 4x this)")
    p.add_argument("--single-run-over", type=float, default=300,
                   help="a baseline whose first run took longer than this many seconds is not repeated "
                        "(keeps the default run within ~40 min; the report says which)")
    args = p.parse_args(argv)
    args.scenarios = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(args.scenarios) - set(SCENARIOS))
    if unknown:
        p.error(f"unknown scenario(s) {unknown}; choose from {', '.join(SCENARIOS)}")
    if args.repeats < 1:
        p.error("--repeats must be at least 1")
    return args


class Bench:
    """Runs measurements in subprocesses and keeps every result for the report."""

    def __init__(self, wl: Workload, timeout: float, single_run_over: float, budget_minutes: float = 0) -> None:
        self.wl = wl
        self.started = time.perf_counter()
        self.budget_seconds = budget_minutes * 60
        self.skipped: dict[str, str] = {}
        self.timeout = timeout
        self.single_run_over = single_run_over
        self.logs = Path(wl.root) / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.results: dict[str, list[dict[str, Any]]] = {}
        self.setups: list[dict[str, Any]] = []
        self.checks: dict[str, dict[str, Any]] = {}
        self.count = 0

    def should_repeat(self, key: str) -> bool:
        """False once a measurement timed out, or once a *baseline's* first run exceeded
        --single-run-over (featurebank's own measurements are always repeated)."""
        previous = self.results.get(key, [])
        if not previous:
            return True
        first = previous[0]
        if first.get("timed_out"):
            return False
        is_baseline = key.startswith(("backfill/", "training/")) and not key.endswith("/featurebank")
        return not is_baseline or first.get("wall_seconds", 0) <= self.single_run_over

    def should_run(self, key: str, round_index: int) -> bool:
        """Whether round `round_index` measures `key`: the first round always does; later rounds
        only while the measurement should be repeated and its first run's time still fits in
        the --budget. Records why a run was skipped, for the report."""
        if round_index == 0 or not self.results.get(key):
            return True
        if not self.should_repeat(key):
            first = self.results[key][0]
            self.skipped[key] = ("timed out on its first run (a lower bound)" if first.get("timed_out") else
                                 f"first run over --single-run-over {self.single_run_over:.0f} s")
            return False
        if self.budget_seconds:
            expected = self.results[key][0].get("wall_seconds", 0)
            if time.perf_counter() - self.started + expected > self.budget_seconds:
                self.skipped[key] = f"the --budget of {self.budget_seconds / 60:.0f} min was reached"
                return False
        return True

    def measure(self, key: str | None, spec: dict[str, Any]) -> dict[str, Any]:
        """Run one task in a fresh subprocess, sampling its process tree's memory; record it
        under `key` (None: a setup or check step, kept apart)."""
        self.count += 1
        label = key or spec["task"]
        log_path = self.logs / f"{self.count:03d}-{label.replace(' ', '_').replace('/', '_')}.log"
        result_path = self.logs / f"{self.count:03d}.json"
        env = dict(os.environ, PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable,
                   FEATUREBANK_SPARK_MASTER="local[2]", PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
        print(f"  [{time.strftime('%H:%M:%S')}] {label} ...", end="", flush=True)
        started = time.perf_counter()
        with open(log_path, "w") as log:
            proc = subprocess.Popen([sys.executable, "-m", "bench.tasks", json.dumps(spec), str(result_path)],
                                    cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            sampler = MemorySampler(proc.pid).start()
            baseline = key is not None and key.startswith(("backfill/", "training/")) and not key.endswith("/featurebank")
            limit = self.timeout if baseline else 4 * self.timeout
            try:
                proc.wait(timeout=limit)
                timed_out = False
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)  # the child's own session: it and its JVM
                proc.wait()
                timed_out = True
            peak = sampler.stop()
        wall = time.perf_counter() - started
        if timed_out:
            result: dict[str, Any] = {"error": f"timed out after {limit:.0f} s (stopped)", "timed_out": True}
        elif result_path.exists():
            result = json.loads(result_path.read_text())
        else:
            result = {"error": f"the subprocess exited with {proc.returncode} and no result; see {log_path}"}
        own = result.pop("memory_self", {})
        result["memory"] = {k: max(v, own.get(k, 0)) for k, v in peak.as_dict().items()}
        result["wall_seconds"] = wall
        result["log"] = str(log_path)
        result["task"] = spec["task"]
        if "error" in result:
            print(f" FAILED ({wall:.1f} s): {result['error']}")
        else:
            print(f" {result.get('seconds', wall):.1f} s (process {wall:.1f} s)")
        if key is not None:
            self.results.setdefault(key, []).append(result)
        return result


def prepare_project(wl: Workload, name: str) -> Path:
    """A copy of bench/project next to the generated data; its conf's relative paths
    (`../raw`, `./warehouse`) resolve there."""
    target = Path(wl.root) / name
    target.mkdir(parents=True, exist_ok=True)
    for part in ("features", "conf"):
        shutil.rmtree(target / part, ignore_errors=True)
        shutil.copytree(BENCH_DIR / "project" / part, target / part)
    return target


def _marker(project: Path) -> Path:
    return project / "published.json"


def _history(start: Any, end: Any) -> dict[str, Any]:
    """What a project's marker says it holds. `daily_runs_on_copies`: since daily runs leave the
    published history as it was (a marker without it may be of a table a daily run added to)."""
    return {"start": str(start), "end": str(end), "daily_runs_on_copies": True}


def _publish_history(bench: Bench, project: Path, start: Any, end: Any, label: str) -> bool:
    """Untimed setup: publish snapshot dates start..end with featurebank (fresh table)."""
    marker = _marker(project)
    wanted = _history(start, end)
    if marker.exists() and json.loads(marker.read_text()) == wanted:
        return True
    marker.unlink(missing_ok=True)
    result = bench.measure(None, {"task": "fb_backfill", "project": str(project), "group": GROUP,
                                  "start": str(start), "end": str(end), "fresh": True})
    bench.setups.append({"label": label, **result})
    if "error" in result:
        return False
    marker.write_text(json.dumps(wanted))
    return True


def run_backfill(bench: Bench, project: Path, r: int, sample: int) -> None:
    """Round `r` (0-based) of the backfill scenario; the value check follows the first round."""
    wl = bench.wl
    dates = [str(d) for d in wl.sample_dates(sample)]
    out = Path(wl.root) / "out"
    table = project / "warehouse" / "features" / GROUP
    specs: dict[str, dict[str, Any]] = {
        "backfill/featurebank": {"task": "fb_backfill", "project": str(project), "group": GROUP,
                                 "start": str(wl.backfill_start), "end": str(wl.backfill_end), "fresh": True},
        "backfill/per-date Spark": {"task": "per_date", "project": str(project), "events": str(wl.events_path),
                                    "dates": dates, "out": str(out / "per_date")},
        "backfill/DuckDB": {"task": "duckdb_backfill", "events": str(wl.events_path),
                            "start": str(wl.backfill_start), "end": str(wl.backfill_end), "out": str(out / "duckdb")},
    }
    order = list(specs)
    print(f"backfill, round {r + 1}")
    for key in order[r % 3:] + order[: r % 3]:
        if not bench.should_run(key, r):
            continue
        if key == "backfill/featurebank":
            _marker(project).unlink(missing_ok=True)
        result = bench.measure(key, specs[key])
        if key == "backfill/featurebank" and "error" not in result:
            _marker(project).write_text(json.dumps(_history(wl.backfill_start, wl.backfill_end)))
    if r == 0:
        if all("error" not in bench.results[k][-1] for k in specs):
            check = bench.measure(None, {"task": "check_backfill", "featurebank": str(table),
                                         "per_date": str(out / "per_date"), "duckdb": str(out / "duckdb"),
                                         "dates": dates})
            bench.checks["backfill"] = check
            print(f"  values agree: {check.get('agree')}")
        else:
            bench.checks["backfill"] = {"error": "not run: a system failed (see the errors below)"}


def run_incremental(bench: Bench, project: Path, project30: Path, r: int) -> None:
    """Round `r` of the incremental scenario (publishes the histories first when needed)."""
    wl = bench.wl
    new_date = wl.incremental_date
    ok365 = _publish_history(bench, project, wl.backfill_start, wl.backfill_end, "365 dates of history")
    ok30 = _publish_history(bench, project30, new_date - timedelta(days=30), new_date - timedelta(days=1),
                            "30 dates of history")
    specs = {
        "incremental/30 days of history": (ok30, project30),
        "incremental/365 days of history": (ok365, project),
    }
    print(f"incremental, round {r + 1}")
    for key in list(specs) if r % 2 == 0 else list(reversed(specs)):
        ok, proj = specs[key]
        if ok and bench.should_run(key, r):
            scratch = _copy_project(proj)  # untimed: every measurement publishes a date new to the table
            try:
                bench.measure(key, {"task": "fb_incremental", "project": str(scratch), "group": GROUP,
                                    "date": str(new_date)})
            finally:
                shutil.rmtree(scratch, ignore_errors=True)


def _copy_project(project: Path) -> Path:
    """A copy of `project` (definitions, conf, published warehouse) beside it, for one daily run:
    run on the project itself, every run after the first would re-run a published date, replacing
    it and archiving the rows it supersedes, which a daily run of a new date never does."""
    scratch = project.with_name(f"{project.name}-daily")
    shutil.rmtree(scratch, ignore_errors=True)
    for part in ("features", "conf", "warehouse"):
        shutil.copytree(project / part, scratch / part)
    return scratch


def run_training(bench: Bench, project: Path, r: int) -> None:
    """Round `r` of the training-set scenario; the value check follows the first round."""
    wl = bench.wl
    if not _publish_history(bench, project, wl.backfill_start, wl.backfill_end, "365 dates published"):
        return
    out = Path(wl.root) / "out"
    table = project / "warehouse" / "features" / GROUP
    specs: dict[str, dict[str, Any]] = {
        "training/featurebank": {"task": "fb_training", "project": str(project), "group": GROUP,
                                 "spine": str(wl.spine_path), "out": str(out / "training_fb")},
        "training/naive Spark": {"task": "naive_training", "project": str(project), "spine": str(wl.spine_path),
                                 "table": str(table), "out": str(out / "training_naive")},
        "training/DuckDB ASOF": {"task": "duckdb_training", "spine": str(wl.spine_path), "table": str(table),
                                 "out": str(out / "training_duckdb.parquet")},
    }
    order = list(specs)
    print(f"training set, round {r + 1}")
    for key in order[r % 3:] + order[: r % 3]:
        if bench.should_run(key, r):
            bench.measure(key, specs[key])
    if r == 0:
        if all(bench.results.get(k) and "error" not in bench.results[k][-1] for k in specs):
            check = bench.measure(None, {"task": "check_training", "featurebank": specs[order[0]]["out"],
                                         "naive": specs[order[1]]["out"], "duckdb": specs[order[2]]["out"]})
            bench.checks["training"] = check
            print(f"  values agree: {check.get('agree')}")
        else:
            bench.checks["training"] = {"error": "not run: a system failed (see the errors below)"}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render:  # re-render the report of a finished run (e.g. after a report change)
        raw = json.loads(Path(args.render).read_text())
        if args.remark:
            raw["remark"] = args.remark
            Path(args.render).write_text(json.dumps(raw, indent=1, default=str))
        _write_report(Path(args.out), render_report(raw, workload_for(raw["args"]["scale"])))
        print(f"report: {args.out} (from {args.render})")
        return 0
    started = time.time()
    load_before = os.getloadavg()
    commit = git_commit()
    wl = ensure_workload(args.scale)
    print(f"workload: {wl.customers:,} customers, {wl.transactions:,} transactions, "
          f"{wl.spine_rows:,} spine rows in {wl.root}")
    bench = Bench(wl, args.timeout, args.single_run_over, args.budget)
    project = prepare_project(wl, "project")
    project30 = prepare_project(wl, "project-30d")
    for r in range(args.repeats):  # rounds: every scenario once, then again while the budget lasts
        if "backfill" in args.scenarios:
            run_backfill(bench, project, r, args.per_date_sample)
        if "incremental" in args.scenarios:
            run_incremental(bench, project, project30, r)
        if "training" in args.scenarios:
            run_training(bench, project, r)
    elapsed = time.time() - started
    command = "python -m bench.run " + " ".join(sys.argv[1:] if argv is None else argv)
    raw = {"args": vars(args), "command": command.strip(), "workload": wl.__dict__, "results": bench.results,
           "setups": bench.setups, "checks": bench.checks, "skipped": bench.skipped, "elapsed_seconds": elapsed,
           "load_before": load_before, "load_after": os.getloadavg(), "commit": commit,
           "generated": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    (Path(wl.root) / "results.json").write_text(json.dumps(raw, indent=1, default=str))
    _write_report(Path(args.out), render_report(raw, wl))
    print(f"done in {elapsed / 60:.1f} min; report: {args.out}; raw results: {wl.root}/results.json")
    return 0


def _write_report(out: Path, report: str) -> None:
    """Write the report, keeping the loop section `bench.loop` wrote into the old one."""
    from bench.loop import kept_section

    kept = kept_section(out.read_text()) if out.exists() else ""
    out.write_text(report.rstrip("\n") + "\n\n" + kept if kept else report)


if __name__ == "__main__":
    sys.exit(main())
