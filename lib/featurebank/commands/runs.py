"""`featurebank run` and `featurebank history`: drive the runner, read the run log."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from featurebank.console import result_console
from featurebank.errors import EXIT_OK, UsageError

if TYPE_CHECKING:
    from featurebank.compile.missing import MissingDates
    from featurebank.runner import ProgressEvent


def run(args: argparse.Namespace) -> int:
    """Compute, gate and publish one group (`GROUP`) or every group (`--all`) over the dates.

    Prints a line per chunk and stage on stderr and each run's result on stdout; `--missing`
    runs only the dates not yet published by the current data_hash and prints the dates it
    skips and why; `--json` prints one JSON summary on stdout instead (also after a failure).
    Returns 0; a refused publish raises `GateFailed` (exit 1, with the failed expectations and
    observed values), bad input a usage or definition error (exit 2), anything else exits 3.
    """
    from featurebank.commands.dates import resolve_dates
    from featurebank.commands.progress import RunConsole
    from featurebank.definitions import load_project
    from featurebank.runner import decide_missing, decide_restate, run_all, run_group, run_missing
    from featurebank.spark_errors import storage_step

    if bool(args.all) == bool(args.group):
        raise UsageError("name one feature group, or pass --all to run every group")
    project = load_project(args.project, args.env)
    today = datetime.now(ZoneInfo(project.config.timezone)).date()
    start, end = resolve_dates(args, today)
    dated = bool(args.date or args.start or args.end)
    console = result_console()
    show = RunConsole(results=not args.json)  # progress on stderr (a bar on a terminal); results on stdout
    options = {"dry_run": args.dry_run, "chunk_days": args.chunk_days, "progress": show,
               "accept_breaking": args.accept_breaking, "accept_drift": tuple(args.accept_drift)}
    doing = (f"running every feature group into {project.config.feature_root}" if args.all
             else f"running feature group {args.group} into {project.table_path(args.group)}")
    decisions = []
    if args.missing:
        with storage_step(f"reading what is published under {project.config.feature_root}"):
            decisions = decide_missing(project, None if args.all else args.group, start, end)
    if args.restate:  # without dates: every published date; with --missing: the union of both decisions
        with storage_step(f"fingerprinting the sources of what is published under {project.config.feature_root}"):
            restated = decide_restate(project, None if args.all else args.group, *((start, end) if dated else ()))
        decisions = _union(decisions, restated)
    for decision in decisions if not args.json else ():  # why each date is (not) computed, in date order
        said = [(span, "skipped") for span in decision.skipped] + [(span, "running") for span in decision.run]
        for span, verb in sorted(said, key=lambda pair: pair[0].start):
            console.print(f"{span.group}: {span.dates} {span.reason}, {verb}", markup=False)
    try:
        with storage_step(doing), show:  # a Spark or disk failure: one sentence naming the table
            if args.missing or args.restate:
                outcomes = run_missing(project, decisions, **options)
            elif args.all:
                outcomes = run_all(project, start, end, **options)
            else:
                outcomes = run_group(project, args.group, start, end, **options)
    finally:
        if args.json:  # what was done, failures included: the error itself goes to stderr
            sys.stdout.write(json.dumps(run_summary(show.finished, decisions), indent=2) + "\n")
    if not args.json:
        console.print(f"done: {len(outcomes)} run(s), {sum(o.rows_written for o in outcomes)} rows")
    return EXIT_OK


def _union(missing: list[MissingDates], restated: list[MissingDates]) -> list[MissingDates]:
    """`--missing --restate`: per group (in run order), a date runs when either decision runs it."""
    from featurebank.compile.restate import union

    if not missing:
        return restated
    by_group = {d.group: d for d in restated}
    return [union(d, by_group[d.group]) if d.group in by_group else d for d in missing]


def run_summary(finished: list[ProgressEvent], decisions: list[MissingDates]) -> dict[str, Any]:
    """`run --json`: the runs that finished (one per chunk), the snapshot dates they computed,
    their rows, the Delta version each group is at, and the dates `--missing` skipped."""
    runs = [{"group": e.group, "run_id": e.run_id, "start": e.start.isoformat(), "end": e.end.isoformat(),
             "status": e.status, "rows": e.rows or 0, "version": e.version, "seconds": round(e.seconds, 3),
             "checks": e.message} for e in finished]
    return {
        "runs": runs,
        "dates": sum((e.end - e.start).days + 1 for e in finished),
        "rows": sum(r["rows"] for r in runs),
        "versions": {e.group: e.version for e in finished if e.version is not None},
        "skipped": [s.to_dict() for d in decisions for s in d.skipped],
    }


def history(args: argparse.Namespace) -> int:
    """Print the run log of `GROUP`, newest first (at most `--limit` runs; `--json`: a JSON
    document, nothing else on stdout). Reads the run log with delta-rs (no JVM), through Spark
    only where Lake Formation governs the tables.

    `incomplete`: started but neither finished nor committed (killed, or still running);
    `published (repaired)`: its final row is missing but its Delta commit landed.
    """
    from rich.markup import escape
    from rich.table import Table

    from featurebank.definitions import load_project
    from featurebank.io.spark import get_spark
    from featurebank.gate import summarize_checks_json
    from featurebank.io.runlog import read_run_log

    project = load_project(args.project, args.env)
    runs = read_run_log(project.config.feature_root, args.group, spark=lambda: get_spark(project.config),
                        lake_formation=project.config.governance.lake_formation)[: max(args.limit, 0)]
    if not runs and args.group not in project.groups:
        raise UsageError(f"unknown feature group '{args.group}' and no runs logged for it")
    if getattr(args, "json", False):
        import sys

        from featurebank.catalog.render import render_history_json

        sys.stdout.write(render_history_json(args.group, runs))
        return EXIT_OK
    console = result_console()
    if not runs:
        console.print(f"no runs logged for {args.group} yet")
        return EXIT_OK
    table = Table(title=f"runs of {args.group} (newest first)")
    for column in ("run id", "status", "dates", "rows", "version", "user", "started (UTC)", "duration", "checks"):
        table.add_column(column, overflow="fold")
    colours = {"published": "green", "gate_failed": "red", "failed": "red", "dry_run": "yellow", "incomplete": "magenta"}
    for r in runs:
        checks = summarize_checks_json(r.checks_summary)
        if r.error and r.status == "failed":
            checks = (checks + " " if checks else "") + r.error.splitlines()[0][:120]
        if r.status == "incomplete":
            checks = "started, never finished: killed (or still running); nothing was published"
        status = f"{r.status} (repaired)" if r.repaired else r.status
        table.add_row(
            escape(r.run_id),
            f"[{colours.get(r.status, 'white')}]{status}[/]",
            f"{r.start_date}..{r.end_date}" if r.start_date != r.end_date else str(r.start_date),
            str(r.rows_written),
            "" if r.delta_version is None else str(r.delta_version),
            escape(r.user),
            r.started_at.strftime("%Y-%m-%d %H:%M:%S"),
            f"{r.duration_seconds:.1f}s",
            escape(checks),
        )
    console.print(table)
    return EXIT_OK
