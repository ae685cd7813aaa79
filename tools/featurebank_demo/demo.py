"""`make demo`: the whole product on a synthetic bank, end to end, with visible progress.

    python -m featurebank_demo.demo --project . [--customers N] [--days D] [--run-days R] [--end-date D]

1. validate every definition and the conf (`featurebank.definitions.load_project`) first:
   the conf says where `${raw_root}` is, and a broken definition should stop the demo
   before anything is generated or started;
2. generate the synthetic bank under the project's `${raw_root}` (`featurebank_demo.datagen`),
   unless the marker there says it was already generated with the same parameters; the data
   ends yesterday in the project time zone unless `--end-date` says otherwise;
3. run every feature group through compute → gate → publish (`featurebank.runner`):
   aggregation groups over `run_days` snapshot dates ending the day after the data's last day
   (snapshot D summarises events before D, so that is the first one to see the last day: with
   the default end date, today's — and a fresh catalog says every group is fresh), row-level
   groups over the whole data period (so a lookup as of any spine moment finds the profile
   then in force);
4. build the `card_fraud_v1` training set from the `card_fraud_labels` spine restricted to
   the run's dates (`featurebank.training.api.FeatureStore`) into `warehouse/training/card_fraud_v1`;
5. print a summary: per group the rows, dates, checks, Delta version and table path; the
   training set's path and rows; and a signal check (fraud rate by feature quartile).

Reruns reuse the generated data and compute only the dates not yet published by the current
definitions (`featurebank run --missing`): with nothing changed, nothing is recomputed and no
Delta version is added. Regenerated data republishes every date. Any failure
ends the demo with a one-line message and a non-zero exit code (`errors.exit_code_for`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from featurebank_demo.datagen import GENERATOR_VERSION, DatagenParams, generate, read_marker
from featurebank.console import progress_console, result_console
from featurebank.errors import FeaturebankError, UsageError, exit_code_for
from featurebank.io.spark import spark_output

if TYPE_CHECKING:
    import pandas as pd

    from featurebank.definitions.model import Project

TRAINING_SET = "card_fraud_v1"
SPINE_SOURCE = "card_fraud_labels"
# The features whose quartiles the signal check shows fraud rates for (when present).
SIGNAL_FEATURES = ("decline_rate_30d", "chargeback_rate_90d", "spend_trend_7d_90d", "tenure_days")


@dataclass(frozen=True)
class GroupOutcome:
    """What one group's run did, as the summary shows it."""

    group: str
    kind: str
    start: date
    end: date
    status: str
    rows: int
    delta_version: int | None
    checks: str
    table_path: str
    seconds: float


@dataclass(frozen=True)
class SignalRow:
    """Fraud rate in each quartile of one feature (lowest values first), over `rows` rows."""

    feature: str
    quartile_rates: tuple[float, ...]
    rows: int

    @property
    def spread(self) -> float:
        """Highest quartile rate over lowest (how strongly the feature separates fraud)."""
        low, high = min(self.quartile_rates), max(self.quartile_rates)
        return high / low if low > 0 else float("inf")


@dataclass(frozen=True)
class DemoResult:
    """Everything the demo did, for the summary and for tests."""

    raw_root: Path
    data_reused: bool
    source_rows: dict[str, int]
    run_start: date
    run_end: date
    groups: tuple[GroupOutcome, ...]
    training_path: Path
    training_rows: int
    fraud_rate: float
    signal: tuple[SignalRow, ...] = field(default=())
    pit_outcomes: dict[str, dict[str, float]] = field(default_factory=dict)
    seconds: float = 0.0
    training_kept: bool = False  # the earlier build was still current: not built again


def run_demo(
    project_dir: Path,
    *,
    params: DatagenParams = DatagenParams(),
    run_days: int = 60,
    env: str = "local",
    console: Console | None = None,
) -> DemoResult:
    """Validate, generate, run every group, build the training set; return what happened.

    `params.end_date` None means yesterday in the project time zone. `run_days` snapshot
    dates ending the day after the data's last day are run (row-level groups: the whole data
    period). Uses the active SparkSession if there is one (it is not stopped).
    Raises FeaturebankError subclasses for definition, gate or usage problems; anything
    else is a runtime failure of a stage.
    """
    from featurebank.definitions import load_project

    console = console or Console()
    began = time.monotonic()
    if run_days < 1 or run_days > params.days - 1:
        raise UsageError(f"--run-days {run_days} must be between 1 and --days - 1 ({params.days - 1}); change one of them")

    with _progress(console) as progress:
        stages = progress.add_task("demo", total=5)

        progress.update(stages, description="validating definitions and conf")
        project = load_project(project_dir, env=env)
        _require_demo_catalog(project)
        params = params.resolved(project.config.timezone)
        run_end = params.last_date + timedelta(days=1)
        run_start = run_end - timedelta(days=run_days - 1)
        raw_root = _raw_root(project)
        progress.advance(stages)

        progress.update(stages, description=f"generating the synthetic bank under {raw_root}")
        source_rows, reused = ensure_bank(raw_root, params)
        progress.advance(stages)

        spark = _LazySpark(project, progress, stages)  # started only when something is computed
        groups = _run_groups(project, spark, progress, params.start_date, run_start, run_end, missing=reused)
        progress.advance(stages)

        progress.update(stages, description=f"building training set {TRAINING_SET}")
        training_path = Path(project.root) / "warehouse" / "training" / TRAINING_SET
        kept = _current_training_set(project, training_path, run_start, run_end) if reused else None
        if kept is not None:
            training, pit_outcomes = kept
        else:
            training, pit_outcomes = _training_set(project, spark(), raw_root, run_start, run_end, training_path,
                                                   progress, stages)
        progress.advance(stages)

        progress.update(stages, description="checking the features carry signal")
        fraud_rate = float(training["is_fraud"].mean()) if len(training) else 0.0
        signal = signal_check(training, "is_fraud", SIGNAL_FEATURES)
        progress.advance(stages)
        progress.update(stages, description="done")

    return DemoResult(
        raw_root=raw_root,
        data_reused=reused,
        source_rows=source_rows,
        run_start=run_start,
        run_end=run_end,
        groups=groups,
        training_path=training_path,
        training_rows=len(training),
        fraud_rate=fraud_rate,
        signal=signal,
        pit_outcomes=pit_outcomes,
        seconds=time.monotonic() - began,
        training_kept=kept is not None,
    )


def ensure_bank(raw_root: Path, params: DatagenParams) -> tuple[dict[str, int], bool]:
    """The synthetic bank under `raw_root`, generated only if not already there with `params`.

    Returns the row count of each table and whether the existing data was reused (its
    marker records exactly these parameters and this generator version). Anything else
    regenerates every table.
    """
    marker = read_marker(raw_root)
    if marker is not None and marker.get("generator") == GENERATOR_VERSION and marker.get("params") == params.to_json():
        return {str(k): int(v) for k, v in dict(marker["rows"]).items()}, True  # type: ignore[call-overload]
    return generate(raw_root, params), False


def signal_check(frame: pd.DataFrame, label: str, features: tuple[str, ...]) -> tuple[SignalRow, ...]:
    """Fraud rate by quartile of each numeric feature present in `frame`.

    Rows where the feature is NULL are left out; ties are split by row order so the four
    quartiles have equal sizes. A feature with fewer than 4 distinct values is skipped.
    """
    import pandas as pd

    rows = []
    for feature in features:
        if feature not in frame.columns:
            continue
        values = frame[[feature, label]].dropna()
        values = values.assign(**{feature: values[feature].astype(float)})
        if values[feature].nunique() < 4:
            continue
        quartile = pd.qcut(values[feature].rank(method="first"), 4, labels=False)
        rates = values.groupby(quartile)[label].mean()
        rows.append(SignalRow(feature, tuple(float(r) for r in rates), len(values)))
    return tuple(rows)


def print_summary(result: DemoResult, console: Console) -> None:
    """The end-of-demo summary: groups, training set, signal check, time taken."""
    data = "reused" if result.data_reused else "generated"
    counts = ", ".join(f"{name} {rows:,}" for name, rows in result.source_rows.items())
    console.print(f"[bold]Synthetic bank[/] ({data}) under {result.raw_root}: {counts}")

    table = Table(title="Feature groups published (compute → gate → publish)", title_justify="left",
                  box=box.SIMPLE_HEAD)
    for column in ("group", "snapshot dates", "rows", "checks", "version", "secs"):
        table.add_column(column, justify="right" if column in ("rows", "version", "secs") else "left",
                         no_wrap=True)
    for g in result.groups:
        table.add_row(g.group, f"{g.start}..{g.end:%m-%d}" if g.start.year == g.end.year else f"{g.start}..{g.end}",
                      f"{g.rows:,}", g.checks, "" if g.delta_version is None else str(g.delta_version),
                      f"{g.seconds:.0f}")
    console.print(table)
    roots = sorted({str(Path(g.table_path).parent) for g in result.groups})
    console.print(f"Delta tables (partitioned by feature_date): {', '.join(roots)}/<group>; run log in {roots[0]}/_runs"
                  if roots else "No feature groups were run.")

    kept = "; kept: every group it read is unchanged" if result.training_kept else ""
    console.print(f"[bold]Training set[/] {TRAINING_SET}: {result.training_rows:,} rows at {result.training_path} "
                  f"(fraud rate {result.fraud_rate:.2%}{kept})")
    for group, shares in sorted(result.pit_outcomes.items()):
        parts = ", ".join(f"{status} {share:.0%}" for status, share in sorted(shares.items(), key=lambda kv: -kv[1]) if share)
        console.print(f"  {group}: {parts}")
    if result.signal:
        signal = Table(title="Signal check: fraud rate by feature quartile (Q1 = lowest values)", title_justify="left")
        for column in ("feature", "Q1", "Q2", "Q3", "Q4", "max/min", "rows"):
            signal.add_column(column, justify="left" if column == "feature" else "right")
        for s in result.signal:
            spread = "∞" if s.spread == float("inf") else f"{s.spread:.1f}x"
            signal.add_row(s.feature, *(f"{r:.2%}" for r in s.quartile_rates), spread, f"{s.rows:,}")
        console.print(signal)
    console.print(f"Demo finished in {result.seconds:.0f} s.")


# ---------------------------------------------------------------- stages (edges)


def _progress(console: Console) -> Progress:
    """A progress bar on a terminal; elsewhere (a log, a pipe) nothing: the summary says it all."""
    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=not console.is_terminal,
    )


def _checks_text(gate: Any) -> str:
    """`5/5 ok`, or `3/4 ok, 1 warn` (a failed error check never gets here: it stops the run)."""
    if gate is None:
        return ""
    total, warned, failed = len(gate.checks), len(gate.warnings), len(gate.failed)
    text = f"{total - warned - failed}/{total} ok"
    return text + (f", {warned} warn" if warned else "") + (f", {failed} failed" if failed else "")


def _require_demo_catalog(project: Project) -> None:
    """The demo needs the example catalog's sources and training set; say so if they are gone."""
    missing = [n for n in ("card_transactions", "customers", "accounts") if n not in project.sources]
    if TRAINING_SET not in project.training_sets:
        missing.append(TRAINING_SET)
    if missing:
        raise UsageError(f"the demo needs the example catalog, but {', '.join(missing)} is not defined; "
                         "run it in a copy of the featurebank repository")


def _raw_root(project: Project) -> Path:
    """The project's `${raw_root}` as a local directory (relative = to the project)."""
    raw = dict(project.config.variables).get("raw_root")
    if not raw:
        raise UsageError(f"conf/{project.config.env}.yaml defines no variables.raw_root; add raw_root: ./warehouse/raw")
    if "://" in str(raw):
        raise UsageError(f"the demo writes local files, but raw_root is {raw}; run it with a local conf (--env local)")
    path = Path(str(raw))
    return path if path.is_absolute() else (Path(project.root) / path).resolve()


class _LazySpark:
    """The demo's SparkSession, started on the first call (a rerun with nothing to compute never
    starts one)."""

    def __init__(self, project: Project, progress: Progress, task: Any) -> None:
        self.project, self.progress, self.task = project, progress, task
        self.session: Any = None

    def __call__(self) -> Any:
        if self.session is None:
            from featurebank.io.spark import get_spark

            self.progress.update(self.task, description="starting Spark (the first start downloads Delta's jars)")
            self.session = get_spark(self.project.config, app_name="featurebank-demo")
        return self.session


def _run_groups(project: Project, spark: _LazySpark, progress: Progress, data_start: date,
                run_start: date, run_end: date, *, missing: bool = False) -> tuple[GroupOutcome, ...]:
    """Run every group (compute → gate → publish) in dependency order, one progress step each.

    Aggregation groups run `run_start..run_end`; row-level groups the whole data period, so
    the profile in force at any spine moment is published. With `missing` (the generated data
    was reused) only the dates not yet published by the current definitions are computed
    (`featurebank run --missing`); the others show as `up to date`. Raises the run's error
    (e.g. GateFailed) at the first group that fails.
    """
    from featurebank.compile.order import run_order
    from featurebank.runner import ProgressEvent, decide_missing, run_group, run_missing

    names = run_order(project)
    task = progress.add_task("feature groups", total=len(names))

    def tell(event: ProgressEvent) -> None:
        detail = f"{event.rows:,} rows" if event.rows is not None else ""
        progress.update(task, description=f"{event.group} {event.start} .. {event.end}: {event.stage} {detail}".rstrip())

    outcomes = []
    for name in names:
        kind = project.groups[name].kind
        start = run_start if kind == "aggregation" else data_start
        progress.update(task, description=f"{name} {start} .. {run_end}: starting")
        if missing:
            [decision] = decide_missing(project, name, start, run_end)
            runs = run_missing(project, [decision], spark=spark() if decision.ranges() else None, progress=tell)
            if decision.skipped:
                outcomes.append(GroupOutcome(
                    group=name, kind=kind, start=decision.skipped[0].start, end=decision.skipped[-1].end,
                    status="up to date", rows=decision.skipped_rows, delta_version=decision.version,
                    checks="skipped", table_path=project.table_path(name), seconds=0.0,
                ))
        else:
            runs = run_group(project, name, start, run_end, spark=spark(), progress=tell)
        for run in runs:
            outcomes.append(GroupOutcome(
                group=name, kind=kind, start=run.start, end=run.end, status=run.status, rows=run.rows_written,
                delta_version=run.delta_version, checks=_checks_text(run.gate),
                table_path=project.table_path(name), seconds=run.seconds,
            ))
        progress.advance(task)
    progress.update(task, description="feature groups published")
    return tuple(outcomes)


def _training_set(project: Project, spark: Any, raw_root: Path, run_start: date, run_end: date,
                  out: Path, progress: Progress, task: Any) -> tuple[pd.DataFrame, dict[str, dict[str, float]]]:
    """Build card_fraud_v1 on the labels of the run's dates into `out`.

    Returns the label and signal-check columns as pandas, and the point-in-time join
    outcome shares per group (matched / filled / no_row ...).
    """
    from pyspark.sql import functions as F

    from featurebank.training.api import FeatureStore

    spine = (
        spark.read.parquet(str(raw_root / SPINE_SOURCE))
        .where(F.col("ts") >= F.lit(run_start.isoformat()).cast("timestamp"))
        .where(F.col("ts") < F.lit((run_end + timedelta(days=1)).isoformat()).cast("timestamp"))
    )
    store = FeatureStore(project, spark=spark,
                         progress=lambda message: progress.update(task, description=f"training set: {message}"))
    written = store.write_training_set(TRAINING_SET, spine=spine, out=str(out))
    _marker_of(out).write_text(json.dumps({
        "run_start": run_start.isoformat(), "run_end": run_end.isoformat(),
        "manifest_created_at": written.manifest.created_at, "pit_outcomes": written.statistics.status_share,
    }, indent=2, sort_keys=True) + "\n")
    return _signal_columns(out), written.statistics.status_share


def _current_training_set(project: Project, out: Path, run_start: date,
                          run_end: date) -> tuple[pd.DataFrame, dict[str, dict[str, float]]] | None:
    """The training set an earlier demo wrote to `out`, if building it again would give the same
    rows: the same labels (the caller knows the generated data was reused), the same run dates,
    and every group it read still at the Delta version and data hash its manifest pinned
    (`training.manifest.stale_reasons`). JVM-free; None means build it."""
    from featurebank.errors import UsageError as NotAManifest
    from featurebank.training.manifest import read_manifest, stale_reasons

    try:
        marker = json.loads(_marker_of(out).read_text())
        manifest = read_manifest(out)
    except (OSError, ValueError, NotAManifest):
        return None
    if (marker.get("run_start"), marker.get("run_end")) != (run_start.isoformat(), run_end.isoformat()) \
            or marker.get("manifest_created_at") != manifest.created_at or stale_reasons(manifest, project):
        return None
    return _signal_columns(out), {str(g): {str(k): float(v) for k, v in shares.items()}
                                  for g, shares in dict(marker.get("pit_outcomes", {})).items()}


def _marker_of(out: Path) -> Path:
    """What the demo remembers of the training set it built at `out` (beside it, not inside it)."""
    return out.parent / f".{out.name}.demo.json"


def _signal_columns(out: Path) -> pd.DataFrame:
    """The label and the signal-check features of the training set at `out` (pyarrow, no Spark)."""
    import pyarrow.dataset as ds

    dataset = ds.dataset(str(out), format="parquet", exclude_invalid_files=True)
    wanted = [c for c in ("is_fraud", *SIGNAL_FEATURES) if c in dataset.schema.names]
    return dataset.to_table(columns=wanted).to_pandas()


def main(argv: list[str] | None = None) -> int:
    """`python -m featurebank_demo.demo`: run the demo, print the summary, return the exit code."""
    defaults = DatagenParams()
    parser = argparse.ArgumentParser(prog="python -m featurebank_demo.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=Path("."), help="project directory (default: .)")
    parser.add_argument("--env", default="local", help="environment: conf/<env>.yaml (default: local)")
    parser.add_argument("--customers", type=int, default=defaults.customers)
    parser.add_argument("--merchants", type=int, default=defaults.merchants)
    parser.add_argument("--days", type=int, default=defaults.days, help="days of generated history")
    parser.add_argument("--run-days", type=int, default=60,
                        help="snapshot dates to run, ending the day after the data's last day")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--end-date", type=date.fromisoformat, default=None,
                        help="the data's last day, YYYY-MM-DD (default: yesterday in the project time zone)")
    parser.add_argument("--debug", action="store_true", help="show the traceback on failure")
    args = parser.parse_args(argv)
    params = DatagenParams(customers=args.customers, merchants=args.merchants, days=args.days,
                           end_date=args.end_date, seed=args.seed)
    console = result_console()  # the summary on stdout, never wrapped or cut off a terminal
    with spark_output(debug=args.debug) as spark:  # Spark's own output off, as in the CLI
        try:
            result = run_demo(args.project, params=params, run_days=args.run_days, env=args.env,
                              console=progress_console())
        except Exception as error:  # one line, not a traceback (--debug shows it)
            if args.debug:
                console.print_exception()
            text = str(error).strip()
            first = text.splitlines()[0] if text else type(error).__name__
            prefix = "" if isinstance(error, FeaturebankError) else f"{type(error).__name__}: "
            more = f" (+{len(text.splitlines()) - 1} more lines)" if len(text.splitlines()) > 1 else ""
            spark.keep = not isinstance(error, FeaturebankError) and spark.log_file is not None \
                and Path(spark.log_file).exists()
            log = f"; Spark's own output is in {spark.log_file}" if spark.keep else ""
            print(f"demo failed: {prefix}{first}{more}{log}", file=sys.stderr)
            return exit_code_for(error)
    print_summary(result, console)
    try:  # last step: the static catalog site (`featurebank docs`) over what the demo published
        from featurebank.catalog.site import build_project_site

        console.print(f"[bold]Feature catalog[/]: {build_project_site(args.project, args.env)}")
    except Exception as error:  # the features are published; say the site failed, in one line
        print(f"docs failed: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}", file=sys.stderr)
        return exit_code_for(error)
    return 0


if __name__ == "__main__":
    sys.exit(main())
