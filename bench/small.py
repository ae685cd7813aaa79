"""`make bench-small`: whole processes at small scale, as a user with a modest project runs them (issue 20).

    python -m bench.small [--repeats N] [--out bench/RESULTS.md] [--transactions N] [--spine-rows N]

Data: 2 M card transactions of 20,000 customers (bench/workload.py at scale 0.2, the same
generator and seed) and a 500,000-row spine inside the last 90 snapshot dates, under
bench/data/small. Each measurement is ONE fresh process, timed from its start to its exit
(Python and JVM start, imports, reading, writing: what the user waits for):
- backfill: `featurebank run customer_card_spend_bench --start D-89 --end D` (compute, gate,
  publish; a fresh feature root each time) against a Python process running the DuckDB baseline
  of bench/baselines.py over the same 90 dates (reads the events, writes Parquet);
- training set: `featurebank training-set --features customer_card_spend_bench:* --spine …`
  against a Python process running DuckDB's ASOF join over the published table.
Before any timing counts, featurebank's 90 dates and DuckDB's are compared value by value
(bench/checks.py, the same tolerances as `make bench`). The section is written into `--out`
between SMALL_BEGIN and SMALL_END; `bench.run` and `bench.loop` keep it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

from bench.loop import SMALL_BEGIN, SMALL_END, replace_section, timed
from bench.report import git_commit, machine
from bench.workload import BENCH_DIR, DATA_DIR, FULL_TRANSACTIONS, Workload, ensure_workload, workload_for

REPO = BENCH_DIR.parent
GROUP = "customer_card_spend_bench"
DATES = 90
SPINE_ROWS = 500_000
TARGETS = {"backfill": 6.0, "training": 50.0}  # the whole-process ratios to DuckDB


def small_workload(transactions: int | None = None, spine_rows: int = SPINE_ROWS) -> Workload:
    """2 M transactions, 20 k customers, a 500 k spine in the last 90 dates (bench/data/small);
    fewer transactions (customers in proportion) and spine rows for a quick check."""
    scale = 0.2 if transactions is None else transactions / FULL_TRANSACTIONS
    return replace(workload_for(scale, DATA_DIR), spine_rows=spine_rows, root=str(DATA_DIR / "small"))


def _duckdb(call: str) -> list[str]:
    """A fresh Python process running one DuckDB baseline of bench/baselines.py."""
    return [sys.executable, "-c", f"from datetime import date\nfrom bench import baselines\nbaselines.{call}"]


def commands(wl: Workload, project: Path) -> dict[str, list[str]]:
    """Every measured process: featurebank's CLI and the DuckDB baselines, on the same files."""
    start, end = wl.end_exclusive - timedelta(days=DATES), wl.end_exclusive - timedelta(days=1)
    featurebank = str(Path(sys.executable).with_name("featurebank"))
    out = Path(wl.root) / "out"
    table = project / "warehouse" / "features" / GROUP
    common = ["--project", str(project), "--env", "bench"]
    return {
        "backfill/featurebank": [featurebank, "run", GROUP, "--start", str(start), "--end", str(end), *common],
        "backfill/DuckDB": _duckdb(f"duckdb_backfill({str(wl.events_path)!r}, date.fromisoformat({str(start)!r}), "
                                   f"date.fromisoformat({str(end)!r}), {str(out / 'duckdb')!r})"),
        "training/featurebank": [featurebank, "training-set", "--features", f"{GROUP}:*", "--spine",
                                 str(wl.spine_path), "--out", str(out / "training_fb"), *common],
        "training/DuckDB": _duckdb(f"duckdb_training_set({str(wl.spine_path)!r}, {str(table)!r}, "
                                   f"{str(out / 'training_duckdb.parquet')!r})"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.small", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per process; medians reported (default 3)")
    parser.add_argument("--out", default=str(BENCH_DIR / "RESULTS.md"), help="report to update (default bench/RESULTS.md)")
    parser.add_argument("--spine-rows", type=int, default=SPINE_ROWS, help="spine rows (default 500,000; fewer for a quick check)")
    parser.add_argument("--transactions", type=int, default=None, help="transactions (default 2,000,000; fewer for a quick check)")
    args = parser.parse_args(argv)

    wl = small_workload(args.transactions, args.spine_rows)
    ensure_workload(wl, log=lambda m: print(f"bench.small: {m}", file=sys.stderr), spine_days=DATES)
    from bench.run import prepare_project

    project = prepare_project(wl, "project")
    cmds = commands(wl, project)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
           "FEATUREBANK_SPARK_MASTER": "local[2]"}
    env.pop("FEATUREBANK_ENV", None)
    load_before = os.getloadavg()[0]
    times: dict[str, list[float]] = {k: [] for k in cmds}
    for r in range(args.repeats):  # the backfill pair, then the training pair; the order alternates
        for pair in (("backfill/featurebank", "backfill/DuckDB"), ("training/featurebank", "training/DuckDB")):
            for key in pair if r % 2 == 0 else reversed(pair):
                if key == "backfill/featurebank":
                    shutil.rmtree(project / "warehouse", ignore_errors=True)
                times[key].append(timed(cmds[key], REPO, env)[0])
                print(f"bench.small: round {r + 1} {key}: {times[key][-1]:.1f} s", file=sys.stderr)
            if r == 0 and pair[0] == "backfill/featurebank":
                check = _check(wl, project)
                if not check.get("agree"):
                    raise SystemExit(f"bench.small: featurebank and DuckDB disagree; no timing counts: {check}")
    section = render(times, wl, load_before)
    out = Path(args.out)
    out.write_text(replace_section(out.read_text() if out.exists() else "# featurebank benchmark results\n",
                                   section, SMALL_BEGIN, SMALL_END))
    print(f"bench.small: {out} updated", file=sys.stderr)
    return 0


def _check(wl: Workload, project: Path) -> dict[str, object]:
    """featurebank's 90 dates against DuckDB's, value by value, on six of them (bench/checks.py)."""
    from bench.checks import compare_pair

    end = wl.end_exclusive - timedelta(days=1)
    dates = [end - timedelta(days=round(i * (DATES - 1) / 5)) for i in range(6)]
    result = compare_pair(str(project / "warehouse" / "features" / GROUP), str(Path(wl.root) / "out" / "duckdb"), dates)
    print(f"bench.small: values agree on {len(dates)} dates: {result.get('agree')} ({result.get('rows')} rows)",
          file=sys.stderr)
    return result


def render(times: dict[str, list[float]], wl: Workload, load_before: float) -> str:
    """The RESULTS.md section: medians, runs, ratios against the issue's targets."""
    med = {k: statistics.median(v) for k, v in times.items() if v}
    facts = machine()
    lines = [
        "## Whole processes at small scale (issue 20)",
        "",
        f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by `python -m bench.small` (`make bench-small`), "
        f"featurebank commit `{git_commit()}`, on {facts['cores']} cores ({facts['cpu']}); load average (1 min) "
        f"{load_before:.2f} before, {os.getloadavg()[0]:.2f} after. {wl.transactions:,} transactions of "
        f"{wl.customers:,} customers, {DATES} snapshot dates, a {wl.spine_rows:,}-row spine; every measurement one "
        "fresh process (Python and JVM start included), wall time; values compared before timing counts.",
        "",
        "| scenario | featurebank (median, runs) | DuckDB process (median, runs) | ratio | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for scenario, label in (("backfill", f"backfill, {DATES} dates (`featurebank run`)"),
                            ("training", f"training set, {wl.spine_rows:,} spine rows (`featurebank training-set`)")):
        fb, dk = med.get(f"{scenario}/featurebank"), med.get(f"{scenario}/DuckDB")
        if fb is None or dk is None:
            continue
        ratio = fb / dk
        runs = {k: ", ".join(f"{t:.1f}" for t in times[f"{scenario}/{k}"]) for k in ("featurebank", "DuckDB")}
        lines.append(f"| {label} | {fb:.1f} s ({runs['featurebank']}) | {dk:.1f} s ({runs['DuckDB']}) | "
                     f"{ratio:.1f}× | ≤ {TARGETS[scenario]:g}× | {'yes' if ratio <= TARGETS[scenario] else 'no'} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
