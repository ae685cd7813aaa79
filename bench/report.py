"""bench/RESULTS.md from one run's raw results: machine, versions, the value check, medians,
ratios, targets (met or missed, by how much), gate overhead and peak memory."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import statistics
import subprocess
from datetime import datetime, timezone
from typing import Any

from bench.workload import BACKFILL_DATES, DAYS, Workload

GIB = 1024**3
MEMORY_LIMIT = 24 * GIB


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _java() -> str:
    try:
        out = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=30)
        return (out.stderr or out.stdout).splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unknown"


def git_commit() -> str:
    """The featurebank commit the measured processes import: the work tree's HEAD, with `+`
    when `lib/` or `bench/` has uncommitted edits; "unknown" outside a git checkout."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10,
                              cwd=repo).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "lib", "bench"], capture_output=True, text=True,
                               timeout=10, cwd=repo).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+" if dirty else "") if head else "unknown"


def machine() -> dict[str, str]:
    """Cores, memory and CPU model of this machine (Linux /proc)."""
    model, mem = platform.processor() or "unknown", "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024**2:.1f} GiB"
                break
    except OSError:
        pass
    return {"cores": str(os.cpu_count()), "memory": mem, "cpu": model, "os": platform.platform()}


def _ok(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in results if "error" not in r and "seconds" in r]


def _median(results: list[dict[str, Any]], field: str = "seconds") -> float | None:
    values = [r[field] for r in _ok(results) if r.get(field) is not None]
    return statistics.median(values) if values else None


def _extrapolated(result: dict[str, Any]) -> float:
    per = result["per_date_seconds"]
    return sum(per) / len(per) * BACKFILL_DATES


def _fmt(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return f"{seconds:.1f} s" if seconds < 600 else f"{seconds:.0f} s ({seconds / 60:.1f} min)"


def _gib(n: int) -> str:
    return f"{n / GIB:.2f} GiB"


def _status(met: bool | None) -> str:
    return "—" if met is None else ("**met**" if met else "**missed**")


def render_report(raw: dict[str, Any], wl: Workload) -> str:
    """The Markdown report for one `bench.run` invocation's raw results."""
    res: dict[str, list[dict[str, Any]]] = raw["results"]
    args = raw["args"]
    m = machine()
    lines: list[str] = []
    add = lines.append
    now = raw.get("generated") or datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    add("# featurebank benchmark results\n")
    add(f"Generated {now} by `{raw['command']}` (from the repository root; `make bench` runs the default) "
        f"in {raw['elapsed_seconds'] / 60:.1f} min, featurebank commit `{raw.get('commit') or git_commit()}`.\n")
    la, lb = raw["load_before"], raw["load_after"]
    # Only the load before counts: the load after always includes the benchmark's own last process.
    # A remark (run.py --render --remark) explains the conditions instead of the load rule.
    busy = la[0] > float(m["cores"]) * 0.75 and not raw.get("remark")
    if wl.scale < 1 or busy:
        add("> **Read with care:** " + " ".join(filter(None, [
            f"scale {wl.scale:g} is not the default workload (scale 1);" if wl.scale < 1 else "",
            f"the machine was busy with other work (load average {la[0]:.1f} before, {lb[0]:.1f} after, "
            f"on {m['cores']} cores), so timings are not meaningful;" if busy else "",
            "this run verifies correctness and the report, not performance."])) + "\n")
    if raw.get("remark"):
        add(f"> {raw['remark']}\n")

    add("## Machine and versions\n")
    add("| | |\n|---|---|")
    add(f"| CPU | {m['cpu']}, {m['cores']} cores |")
    add(f"| memory | {m['memory']} |")
    add(f"| OS | {m['os']} |")
    add(f"| load average (1 min) | {la[0]:.2f} before, {lb[0]:.2f} after |")
    add(f"| Python | {platform.python_version()} |")
    add(f"| Java | {_java()} |")
    for label, package in (("PySpark", "pyspark"), ("Delta Lake (delta-spark)", "delta-spark"),
                           ("DuckDB", "duckdb"), ("Great Expectations", "great_expectations"),
                           ("delta-rs (deltalake, for the checks)", "deltalake")):
        add(f"| {label} | {_version(package)} |")
    add("")

    add("## Workload and method\n")
    add(f"- Scale {wl.scale:g}: {wl.customers:,} customers, {wl.transactions:,} card transactions "
        f"(~93% SETTLED) over {DAYS} days `[{wl.data_start}, {wl.end_exclusive})`, {wl.merchants:,} merchants; "
        f"generated by `bench/workload.py` (numpy + pyarrow, fixed seed) into `{os.path.relpath(wl.root)}`.")
    add(f"- Group `customer_card_spend_bench` (`bench/project/features/bench.yaml`): sum, count, avg, max and "
        f"exact count_distinct(merchant_id) of settled amounts over 7, 30 and 90 days = 15 features, "
        f"3 checks + the always-on key checks; {BACKFILL_DATES} snapshot dates `{wl.backfill_start}`..`{wl.backfill_end}`.")
    add("- Every measurement is a fresh subprocess: Spark in `local[2]` (one JVM; conf `bench/project/conf/bench.yaml`, "
        "driver memory 8g, built by featurebank's own session builder for every Spark side), DuckDB with "
        "`threads=2`. Times are the measured work inside the process, *excluding* the Spark session's start "
        "(reported below); the order of the systems rotates between repeats.")
    add(f"- The per-date baseline is timed on {args['per_date_sample']} evenly spaced snapshot dates and "
        f"**extrapolated**: mean seconds per date × {BACKFILL_DATES}. It excludes the JVM start every "
        "scheduled daily job pays, so it flatters the baseline.")
    budget = args.get("budget", 0)
    add(f"- Up to {args['repeats']} rounds; round 1 runs every measurement once, later rounds repeat a "
        f"measurement only while its first run's time fits in the budget "
        f"({f'{budget:.0f} min' if budget else 'no limit'}); a baseline whose first run took over "
        f"{args.get('single_run_over', 300):.0f} s is run once (its ratio is already clear); a baseline is "
        f"stopped after {args['timeout']:.0f} s and reported as a lower bound. The *runs* column lists every "
        "run; medians are over the successful ones.")
    skipped = raw.get("skipped") or {}
    if skipped:
        add("- Fewer runs than rounds: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()) + ".")
    add("")

    add("## Same values? (checked on the first run, before timings count)\n")
    _render_checks(raw["checks"], add)

    add("## Timings (medians)\n")
    add("| scenario | system | median | runs | ratio |\n|---|---|---|---|---|")
    fb_backfill = _median(res.get("backfill/featurebank", []))
    per_date = [_extrapolated(r) for r in _ok(res.get("backfill/per-date Spark", []))]
    per_date_median = statistics.median(per_date) if per_date else None
    duck_backfill = _median(res.get("backfill/DuckDB", []))
    inc30 = _median(res.get("incremental/30 days of history", []))
    inc365 = _median(res.get("incremental/365 days of history", []))
    fb_train = _median(res.get("training/featurebank", []))
    naive_runs = res.get("training/naive Spark", [])
    naive_train = _median(naive_runs)
    naive_timed_out = any(r.get("timed_out") for r in naive_runs)
    if naive_train is None and naive_timed_out:
        naive_train_bound: float | None = args["timeout"]
    else:
        naive_train_bound = naive_train
    duck_train = _median(res.get("training/DuckDB ASOF", []))

    def runs(key: str, extrapolate: bool = False) -> str:
        out = []
        for r in res.get(key, []):
            if "error" in r:
                out.append("timed out" if r.get("timed_out") else "failed")
            else:
                out.append(f"{_extrapolated(r) if extrapolate else r['seconds']:.1f}")
        return ", ".join(out) or "not run"

    def ratio(a: float | None, b: float | None, text: str) -> str:
        return f"{a / b:.2f}× {text}" if a and b else "—"

    add(f"| backfill, {BACKFILL_DATES} dates | featurebank `run_group` (compute + gate + publish) | {_fmt(fb_backfill)} | "
        f"{runs('backfill/featurebank')} | 1 |")
    add(f"| | per-date PySpark job, extrapolated ×{BACKFILL_DATES} | {_fmt(per_date_median)} | "
        f"{runs('backfill/per-date Spark', True)} | {ratio(per_date_median, fb_backfill, 'featurebank faster')} |")
    add(f"| | DuckDB, 2 threads (single-node bar) | {_fmt(duck_backfill)} | {runs('backfill/DuckDB')} | "
        f"{ratio(fb_backfill, duck_backfill, 'featurebank / DuckDB')} |")
    add(f"| incremental, 1 new date | featurebank, 30 dates of history | {_fmt(inc30)} | "
        f"{runs('incremental/30 days of history')} | 1 |")
    add(f"| | featurebank, 365 dates of history | {_fmt(inc365)} | {runs('incremental/365 days of history')} | "
        f"{ratio(inc365, inc30, 'the 30-day time')} |")
    per_date_one = [statistics.mean(r["per_date_seconds"]) for r in _ok(res.get("backfill/per-date Spark", []))
                    if r.get("per_date_seconds")]
    one_date = statistics.median(per_date_one) if per_date_one else None
    add(f"| | per-date PySpark job, one date (mean over its sampled dates) | {_fmt(one_date)} | "
        f"{', '.join(f'{x:.1f}' for x in per_date_one) or 'not run'} | {ratio(inc30, one_date, 'featurebank / per-date job')} |")
    add(f"| training set, {wl.spine_rows:,} spine rows | featurebank `FeatureStore.training_set` | {_fmt(fb_train)} | "
        f"{runs('training/featurebank')} | 1 |")
    naive_cell = _fmt(naive_train) if naive_train is not None else (f"> {args['timeout']:.0f} s" if naive_timed_out else "—")
    add(f"| | naive Spark join-then-rank | {naive_cell} | {runs('training/naive Spark')} | "
        f"{ratio(naive_train_bound, fb_train, 'featurebank faster') + (' (at least)' if naive_train is None and naive_timed_out else '')} |")
    add(f"| | DuckDB ASOF JOIN, 2 threads | {_fmt(duck_train)} | {runs('training/DuckDB ASOF')} | "
        f"{ratio(fb_train, duck_train, 'featurebank / DuckDB')} |")
    starts = [r["startup_seconds"] for rs in res.values() for r in _ok(rs) if r.get("startup_seconds")]
    if starts:
        add(f"\nSpark session start (not included above): median {statistics.median(starts):.1f} s per process.")
    per_date_runs = _ok(res.get("backfill/per-date Spark", []))
    if per_date_runs:
        per = per_date_runs[0]["per_date_seconds"]
        add(f"Per-date job, first run: {len(per)} dates, {min(per):.1f}–{max(per):.1f} s per date "
            f"(mean {sum(per) / len(per):.1f} s; the first date includes the JVM's warm-up).")
    cpu_rows = []
    for key, rs in res.items():
        ok = _ok(rs)
        cpu = [r["cpu_seconds"] for r in ok if r.get("cpu_seconds") is not None]
        if cpu:
            cpu_rows.append(f"| {key} | {statistics.median(cpu):.1f} | "
                            f"{statistics.median(r['wall_seconds'] for r in ok):.1f} |")
    if cpu_rows:
        add("\nCPU seconds (user + system of the whole process tree, Spark start included; less sensitive "
            "than wall time to other work on the machine), median per measurement:\n")
        add("| measurement | CPU seconds | wall seconds of the process |\n|---|---|---|")
        lines.extend(cpu_rows)
    add("")

    gate_share, gate_rows = _gate(res)
    all_runs = [r for rs in res.values() for r in rs] + raw["setups"]
    peak_total = max((r["memory"]["total_bytes"] for r in all_runs if "memory" in r), default=0)
    failures = [r for r in all_runs if "error" in r]
    memory_failures = [r for r in failures if _is_memory_failure(r)]

    add("## Targets (issue 20's Done-when)\n")
    add("| target | measured | status |\n|---|---|---|")
    t1 = per_date_median / fb_backfill if per_date_median and fb_backfill else None
    add(f"| backfill ≥ 10× faster than the per-date job | {f'{t1:.2f}×' if t1 else '—'} | "
        f"{_status(None if t1 is None else t1 >= 10)}{_by(t1, 10, 'x', higher=True)} |")
    t2 = fb_backfill / duck_backfill if fb_backfill and duck_backfill else None
    add(f"| backfill (compute + gate + publish) ≤ 1.5× DuckDB writing Parquet | {f'{t2:.2f}×' if t2 else '—'} | "
        f"{_status(None if t2 is None else t2 <= 1.5)}{_by(t2, 1.5, 'x', higher=False)} |")
    daily = inc365 / one_date if inc365 and one_date else None
    daily_wall = _median_of(res.get("incremental/365 days of history", []), "wall_seconds")
    add(f"| daily run (1 new date, 365 days of history) ≤ 1.5× the hand-written one-date job | "
        f"{f'{daily:.2f}×' if daily else '—'} ({_fmt(inc365)}; whole process {_fmt(daily_wall)}) | "
        f"{_status(None if daily is None else daily <= 1.5)}{_by(daily, 1.5, 'x', higher=False)} |")
    t3 = inc365 / inc30 if inc365 and inc30 else None
    add(f"| daily run: 365 days of history ≤ 1.1× the 30-day run | {f'{t3:.2f}×' if t3 else '—'} | "
        f"{_status(None if t3 is None else t3 <= 1.1)}{_by(t3, 1.1, 'x', higher=False)} |")
    t4 = naive_train_bound / fb_train if naive_train_bound and fb_train else None
    add(f"| training set ≥ 5× faster than the naive join | {f'{t4:.2f}×' if t4 else '—'}"
        f"{' (lower bound)' if naive_train is None and naive_timed_out else ''} | "
        f"{_status(None if t4 is None else t4 >= 5)}{_by(t4, 5, 'x', higher=True)} |")
    t5 = fb_train / duck_train if fb_train and duck_train else None
    add(f"| training set ≤ 1.6× DuckDB ASOF | {f'{t5:.2f}×' if t5 else '—'} | "
        f"{_status(None if t5 is None else t5 <= 1.6)}{_by(t5, 1.6, 'x', higher=False)} |")
    daily_gate = _gate_share(res, "incremental/365 days of history")
    shares = [s for s in (gate_share, daily_gate) if s is not None]
    gate_ok = None if not shares else max(shares) <= 0.10
    add(f"| gate ≤ 10% of the backfill and of the daily run | "
        f"{f'{gate_share:.1%}' if gate_share is not None else '—'} (backfill), "
        f"{f'{daily_gate:.1%}' if daily_gate is not None else '—'} (daily) | {_status(gate_ok)} |")
    mem_ok = None if not all_runs else (peak_total < MEMORY_LIMIT and not memory_failures)
    add(f"| within 24 GiB, no spill failures | largest process tree {_gib(peak_total)}; "
        f"{len(memory_failures)} memory/spill failure(s) ({len(failures)} failed or stopped measurement(s) "
        f"in all, see Errors) | {_status(mem_ok)} |")
    add("")
    _render_limits(add, t1, t2, t3, t4, gate_share, res, daily)

    add("## Gate overhead (featurebank runs)\n")
    add("Measured inside each run by wrapping `featurebank.gate.run_gate` and `featurebank.io.tables.publish`: "
        "the wrapper first materialises the batch (persist + count; counted as compute), so *gate* is the "
        "checks alone (the one pass over the cached batch, GX where it judges, the report).\n")
    add("| run | total | compute (materialise) | gate | publish | gate share |\n|---|---|---|---|---|---|")
    for row in gate_rows:
        add(row)
    add("")

    add("## Peak memory (resident, largest over the runs)\n")
    add("| measurement | JVM (driver = executor, local mode) | Python | whole process tree |\n|---|---|---|---|")
    for key, rs in res.items():
        mems = [r["memory"] for r in rs if "memory" in r]
        if mems:
            add(f"| {key} | {_gib(max(x['jvm_bytes'] for x in mems)) if any(x['jvm_bytes'] for x in mems) else '— (no JVM)'} | "
                f"{_gib(max(x['python_bytes'] for x in mems))} | {_gib(max(x['total_bytes'] for x in mems))} |")
    add("")

    if raw["setups"]:
        add("## Setup steps (untimed)\n")
        for s in raw["setups"]:
            state = s.get("error") or f"{s.get('seconds', 0):.1f} s"
            add(f"- {s['label']}: featurebank backfill — {state}")
        add("")
    if failures:
        add("## Errors\n")
        for r in failures:
            add(f"- `{r['task']}`: {r['error']} (log: `{os.path.relpath(r['log'])}`)")
        add("")
    return "\n".join(lines) + "\n"


MEMORY_ERRORS = ("OutOfMemory", "Java heap space", "GC overhead", "spill", "No space left", "Out of Memory",
                 "exited with -9", "exited with 137", "killed")


def _is_memory_failure(result: dict[str, Any]) -> bool:
    """An error that says memory or spill ran out (a timeout or a bug elsewhere is not one)."""
    text = f"{result.get('error', '')} {result.get('traceback', '')}"
    return any(marker.lower() in text.lower() for marker in MEMORY_ERRORS) and not result.get("timed_out")


def _by(value: float | None, target: float, unit: str, higher: bool) -> str:
    if value is None:
        return ""
    if higher and value < target:
        return f" by {target / value:.2f}× (needs {target:g}{unit})"
    if not higher and value > target:
        return f" by {value / target:.2f}× (needs ≤ {target:g}{unit})"
    return ""


def _render_checks(checks: dict[str, Any], add: Any) -> None:
    if not checks:
        add("Not run (no scenario with a comparison was selected).\n")
        return
    for name, check in checks.items():
        if "error" in check:
            add(f"- **{name}**: could not be checked — {check['error']}\n")
            continue
        verdict = "all agree" if check.get("agree") else "**DISAGREE — the timings below are not comparable**"
        if name == "backfill":
            add(f"**Backfill** on {len(check['dates'])} snapshot dates ({', '.join(check['dates'])}): {verdict}. "
                f"Rows: {check['rows']}. Counts and distinct counts exact; sums, averages, maxima within "
                "1e-6 + 1e-9 × |value|; NULL only against NULL.\n")
        else:
            add(f"**Training set**: {verdict}. Rows: {check['rows']} (distinct row ids {check['distinct_row_ids']}). "
                f"The latest-row joins (naive, ASOF) picked a *stale* older snapshot for "
                f"{check['stale_in_latest_row_joins']:,} spine rows whose customer had no row on date(ts) "
                f"(featurebank gives 0 counts / NULL there, per SPEC) and found nothing for {check['no_row_at_all']:,}.\n")
        add("| pair | rows compared | only left | only right | mismatching values | agree |\n|---|---|---|---|---|---|")
        for pair, p in check["pairs"].items():
            mism = ", ".join(f"{k}: {v}" for k, v in p["mismatches"].items()) or "none"
            add(f"| {pair} | {p['compared']:,} | {p['only_left']:,} | {p['only_right']:,} | {mism} | {'yes' if p['agree'] else 'NO'} |")
        add("")


def _median_of(results: list[dict[str, Any]], field: str) -> float | None:
    values = [r[field] for r in _ok(results) if r.get(field) is not None]
    return statistics.median(values) if values else None


def _gate_share(res: dict[str, list[dict[str, Any]]], key: str) -> float | None:
    """The median over `key`'s runs of the gate's share of the run's time."""
    shares = [r["stages"]["gate"] / r["seconds"] for r in _ok(res.get(key, [])) if r.get("stages") and r["seconds"]]
    return statistics.median(shares) if shares else None


def _gate(res: dict[str, list[dict[str, Any]]]) -> tuple[float | None, list[str]]:
    rows, share = [], None
    for key in ("backfill/featurebank", "incremental/30 days of history", "incremental/365 days of history"):
        ok = [r for r in _ok(res.get(key, [])) if r.get("stages")]
        if not ok:
            continue
        total = statistics.median(r["seconds"] for r in ok)
        stage = {s: statistics.median(r["stages"][s] for r in ok) for s in ("materialize", "gate", "publish")}
        s = _gate_share(res, key)
        if key == "backfill/featurebank":
            share = s
        rows.append(f"| {key} | {total:.1f} s | {stage['materialize']:.1f} s | {stage['gate']:.1f} s | "
                    f"{stage['publish']:.1f} s | {f'{s:.1%}' if s is not None else '—'} |")
    return share, rows


def _render_limits(add: Any, t1: Any, t2: Any, t3: Any, t4: Any, gate_share: Any, res: dict[str, Any],
                   daily: Any = None) -> None:
    """Where a target is missed, say what the run shows limits it (thresholds: issue 20's Done-when)."""
    notes = []
    fb = _ok(res.get("backfill/featurebank", []))
    if fb and fb[0].get("stages") and ((t1 is not None and t1 < 10) or (t2 is not None and t2 > 1.5)):
        st = fb[0]["stages"]
        notes.append(f"The featurebank backfill time splits into compute {st['materialize']:.1f} s, gate {st['gate']:.1f} s, "
                     f"publish {st['publish']:.1f} s (first run); DuckDB writes plain Parquet with no gate, "
                     "no Delta commit and no JVM. The compute makes daily tiles in Spark (a scan, exact decimal "
                     "day totals, one shuffle), rolls every window in featurebank's vectorised kernel (numpy in "
                     f"Python workers, through Arrow), then finalises {fb[0].get('rows', 0):,} snapshot rows in Spark; "
                     "DuckDB does all of it in one vectorised engine, in-process.")
    inc = [r for r in _ok(res.get("incremental/365 days of history", [])) if r.get("stages")]
    if daily is not None and daily > 1.5 and inc:
        st, total = inc[0]["stages"], inc[0]["seconds"]
        rest = total - st["materialize"] - st["gate"] - st["publish"]
        notes.append(f"The daily run (first run, {total:.1f} s) splits into compute {st['materialize']:.1f} s, gate "
                     f"{st['gate']:.1f} s, publish {st['publish']:.1f} s and {rest:.1f} s around them (the source's "
                     "fingerprint, the Delta log and run log, the run log's write, waiting for the profiles); the "
                     "one-date job runs one group-by and writes plain Parquet, with no gate, no Delta commit and no log.")
    if t3 is not None and t3 > 1.1:
        notes.append("The daily run's cost grew with the history length: look at what the run reads or "
                     "rewrites from the published table (Delta log replay, replaceWhere scope).")
    if t4 is not None and t4 < 5:
        notes.append("featurebank's training-set join broadcasts the spine's (keys, date) hashes to keep only the "
                     "snapshot rows some spine row asks for, then broadcasts those rows to the unshuffled spine; what "
                     "remains is the scan of the whole pinned table (every feature column of every published date) "
                     "and a cold JVM's JIT compilation (notes/20-training.md).")
    if gate_share is not None and gate_share > 0.10:
        notes.append("The gate's share is the one pass over the persisted batch, GX where it judges, and the report write.")
    if notes:
        add("What limits the missed targets (from this run's own numbers):\n")
        for note in notes:
            add(f"- {note}")
        add("")
