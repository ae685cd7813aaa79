"""`make bench-loop`: the analytics engineer's loop, timed as a user feels it (issue 18).

    python -m bench.loop [--repeats N] [--out bench/RESULTS.md] [--customers N]

On a copy of the repository's example project (features/ and conf/) under bench/out/loop:
1. `python -m featurebank_demo.demo` twice (what `make demo` runs): the first generates the
   bank and publishes everything, the second finds nothing to compute;
2. each look-up command as a fresh process (`featurebank validate`, `list --json`, `describe
   --json`, `history --json`, `docs`, `run --all --missing --json`), then `preview --json` (100
   entities, 3 dates, Spark's start included), `--repeats` times each; medians of the wall time.

Every `--json` command's stdout must parse as one JSON document with Spark's own logging at its
defaults (no --verbose, no log4j conf of ours), or the benchmark fails before any figure is
reported. The section is written into `--out` between LOOP_BEGIN and LOOP_END (the rest of the
file, `python -m bench.run`'s report, is kept; `bench.run` keeps this section in turn).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from bench.report import git_commit, machine

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
LOOP_BEGIN = "<!-- bench.loop: begin -->"
LOOP_END = "<!-- bench.loop: end -->"
GROUP = "customer_card_spend"

# (label, featurebank arguments, the target in seconds, stdout is JSON)
COMMANDS: tuple[tuple[str, tuple[str, ...], float, bool], ...] = (
    ("validate", ("validate",), 1.0, False),
    ("list --json", ("list", "--json"), 2.0, True),
    (f"describe {GROUP} --json", ("describe", GROUP, "--json"), 2.0, True),
    (f"history {GROUP} --json", ("history", GROUP, "--json"), 2.0, True),
    ("docs --out warehouse/docs", ("docs", "--out", "warehouse/docs"), 2.0, False),
    ("run --all --missing --json (all published)", ("run", "--all", "--missing", "--json"), 2.0, True),
    (f"preview {GROUP} --json (100 entities, 3 dates)", ("preview", GROUP, "--json"), 20.0, True),
)


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Run `argv` as a fresh process; its wall seconds and its result (raises on a failure)."""
    began = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"bench.loop: {' '.join(argv)} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return seconds, done


# Sections of RESULTS.md written by their own commands, kept when another command rewrites the file.
SMALL_BEGIN = "<!-- bench.small: begin -->"
SMALL_END = "<!-- bench.small: end -->"
KEPT_SECTIONS = ((LOOP_BEGIN, LOOP_END), (SMALL_BEGIN, SMALL_END))


def replace_section(report: str, section: str, begin: str = LOOP_BEGIN, end: str = LOOP_END) -> str:
    """`report` with the section between `begin` and `end` replaced by `section` (appended when absent)."""
    block = f"{begin}\n{section.rstrip()}\n{end}\n"
    if begin in report and end in report:
        head, _, rest = report.partition(begin)
        _, _, tail = rest.partition(end)
        return head + block + tail.lstrip("\n")
    return report.rstrip("\n") + "\n\n" + block


def kept_section(report: str) -> str:
    """The sections of an existing report other commands own (bench.loop's, bench.small's), markers
    included ('' when it has none): what `bench.run` carries over when it rewrites the file."""
    kept = []
    for begin, end in KEPT_SECTIONS:
        if begin in report and end in report:
            kept.append(begin + report.partition(begin)[2].partition(end)[0] + end + "\n")
    return "\n".join(kept)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.loop", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per command; medians reported (default 3)")
    parser.add_argument("--out", default=str(BENCH_DIR / "RESULTS.md"), help="report to update (default bench/RESULTS.md)")
    parser.add_argument("--customers", type=int, default=None, help="demo bank size (default: the demo's)")
    args = parser.parse_args(argv)

    project = BENCH_DIR / "out" / "loop" / "project"
    shutil.rmtree(project.parent, ignore_errors=True)
    project.mkdir(parents=True)
    for part in ("features", "conf"):
        shutil.copytree(REPO / part, project / part)
    env = {**os.environ, "PYTHONPATH": str(REPO / "tools")}
    env.pop("FEATUREBANK_ENV", None)
    featurebank = str(Path(sys.executable).with_name("featurebank"))
    demo = [sys.executable, "-m", "featurebank_demo.demo", "--project", str(project)]
    if args.customers:
        demo += ["--customers", str(args.customers)]
    load_before = os.getloadavg()[0]

    print("bench.loop: first demo (generates the bank, publishes every group)", file=sys.stderr)
    first, _ = timed(demo, project, env)
    print(f"bench.loop: first demo {first:.1f} s; second demo", file=sys.stderr)
    second, done = timed(demo, project, env)
    if "kept" not in done.stdout or "skipped" not in done.stdout:
        raise SystemExit(f"bench.loop: the second demo recomputed something:\n{done.stdout[-3000:]}")

    rows = []
    for label, command, target, is_json in COMMANDS:
        times = []
        for _ in range(args.repeats):
            seconds, done = timed([featurebank, *command], project, env)
            if is_json:
                json.loads(done.stdout)  # the only stdout: one JSON document
            times.append(seconds)
        rows.append((label, statistics.median(times), times, target))
        print(f"bench.loop: {label}: median {rows[-1][1]:.2f} s", file=sys.stderr)

    facts = machine()
    lines = [
        "## The analytics engineer's loop (issue 18)",
        "",
        f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by `python -m bench.loop` (`make bench-loop`), "
        f"featurebank commit `{git_commit()}`, on {facts['cores']} cores ({facts['cpu']}); load average (1 min) {load_before:.2f} "
        f"before, {os.getloadavg()[0]:.2f} after. The demo project (a copy of features/ and conf/); every "
        f"command a fresh process from the project directory, wall time, median of {args.repeats}. "
        "Spark's logging at its defaults; every `--json` stdout parsed as JSON.",
        "",
        "| command | median s | runs s | target s | met |",
        "|---|---|---|---|---|",
        f"| `make demo` (first: generate + publish + training set + docs) | {first:.1f} | {first:.1f} | — | — |",
        f"| `make demo` again (nothing changed: no Spark) | {second:.1f} | {second:.1f} | 30 | "
        f"{'yes' if second < 30 else 'no'} |",
    ]
    for label, median, times, target in rows:
        runs = ", ".join(f"{t:.2f}" for t in times)
        lines.append(f"| `featurebank {label}` | {median:.2f} | {runs} | {target:g} | {'yes' if median < target else 'no'} |")
    out = Path(args.out)
    out.write_text(replace_section(out.read_text() if out.exists() else "# featurebank benchmark results\n",
                                   "\n".join(lines)))
    print(f"bench.loop: {out} updated", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
