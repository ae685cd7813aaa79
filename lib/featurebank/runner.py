"""The runner: compile → compute → gate → publish → log, for one group or every group.

A run covers snapshot dates `start..end` (inclusive). With `chunk_days=N` the range is cut
into consecutive chunks of N days; each chunk is a run of its own (its own plan, gate, Delta
commit and run-log row), so a failure at chunk k keeps chunks 1..k-1 published. Resuming a
backfill is rerunning it: each chunk replaces exactly its dates, so a rerun is idempotent.
Chunks already published are recomputed rather than skipped (late-arriving source events
are then picked up, and "same definition hash" is not proof the source is unchanged).
`run_missing` is the other way: it computes only the dates `decide_missing` finds not yet
published, or published by another `data_hash` (`compile.missing` says exactly when).

Every run is logged in `<feature_root>/_runs`: a `started` row before compute, then a final
row, failures included (`gate_failed`, `failed` with the error), and the error is re-raised
for the CLI to map to an exit code. Once the Delta commit landed the run is published, whatever
happens next: it is never logged `failed`; if even retried appends of its final row fail, the
run raises `RunLogUnwritten` and the log repairs itself from the commit (see `runlog`).
`faults.fault_point` marks the places tests kill a run at.

A run's duration has one definition, the run log's: `started_at` → `finished_at` of its row
(`RunRecord.duration_seconds`). `RunOutcome.seconds` and the `done`/`failed` progress events
carry that same number, so `run` and `history` print the same duration; earlier events carry
the time since `started_at` on the same clock.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from functools import partial
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from featurebank.errors import GateFailed, RunLogUnwritten, RuntimeFailure, SourceNotReady, UsageError, Verdict
from featurebank.faults import fault_point
from featurebank.io.runlog import RunRecord, RunStatus, append_final, append_run, current_user, runs_path

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from featurebank.compile.missing import MissingDates
    from featurebank.definitions.model import Project
    from featurebank.gate import GateResult
    from featurebank.compile.run import Plan


@dataclass(frozen=True)
class RunOutcome:
    """What one run (one group, one chunk of dates) did."""

    run_id: str
    group: str
    start: date
    end: date
    status: RunStatus
    rows_written: int
    delta_version: int | None
    seconds: float
    gate: GateResult | None = None
    error: str | None = None


@dataclass(frozen=True)
class ProgressEvent:
    """A step of a run, for a console or a log: `stage` is one of computing, gating, gated
    (the gate passed; `message` is its headline), publishing, done, failed. `details` names
    every warn check that failed (gated, done), one line each (`CheckResult.line`)."""

    group: str
    run_id: str
    chunk: int  # 1-based
    chunks: int
    start: date
    end: date
    stage: str
    checks: int = 0
    rows: int | None = None
    version: int | None = None
    seconds: float = 0.0
    status: str | None = None
    message: str = ""
    details: tuple[str, ...] = ()


Progress = Callable[[ProgressEvent], None]


def new_run_id(now: datetime | None = None) -> str:
    """A run id that sorts by start time: `20240301T101502123Z-a1b2c3` (UTC, ms, random suffix)."""
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return f"{now:%Y%m%dT%H%M%S}{now.microsecond // 1000:03d}Z-{secrets.token_hex(3)}"


def date_chunks(start: date, end: date, chunk_days: int | None) -> list[tuple[date, date]]:
    """`start..end` cut into consecutive inclusive chunks of `chunk_days` days (the last may be
    shorter); one chunk when `chunk_days` is None. Raises UsageError for chunk_days < 1."""
    if end < start:
        raise UsageError(f"the end date {end} is before the start date {start}; swap them")
    if chunk_days is None:
        return [(start, end)]
    if chunk_days < 1:
        raise UsageError(f"--chunk-days must be at least 1, got {chunk_days}")
    chunks = []
    first = start
    while first <= end:
        last = min(first + timedelta(days=chunk_days - 1), end)
        chunks.append((first, last))
        first = last + timedelta(days=1)
    return chunks


def run_group(
    project: Project,
    group: str,
    start: date,
    end: date,
    *,
    spark: SparkSession | None = None,
    dry_run: bool = False,
    chunk_days: int | None = None,
    progress: Progress | None = None,
    accept_breaking: bool = False,
    accept_drift: Collection[str] = (),
    reasons: dict[date, str] | None = None,
) -> list[RunOutcome]:
    """Compute, gate and publish `group` for snapshot dates `start..end`, chunk by chunk.

    Every plan is compiled first (pure), so an unknown group or bad dates raise `UsageError`
    before anything runs. Then each chunk: compute the batch, gate it, publish it in one
    Delta commit (skipped with `dry_run`), log the run. Returns one RunOutcome per chunk.
    Raises the first chunk's error (`GateFailed`, `DefinitionError` for a breaking schema
    change, `SourceMismatch`, or a runtime error) after logging it; earlier chunks stay
    published. Before anything runs, a definition change that breaks features a registered
    training set reads raises `BreakingChangeRefused` unless `accept_breaking` (then every
    chunk's run-log row records the acceptance); a dry run publishes nothing and is not refused.
    `accept_drift` names features whose drift check passes this run whatever its PSI (recorded
    the same way); naming a feature without a drift check is a `UsageError`.
    `reasons`: why each date is recomputed (`run --missing/--restate`), stored with the run's inputs.
    """
    from featurebank.readiness import refuse_future_dates
    from featurebank.compile.run import compile_plan
    from featurebank.review import refuse_breaking

    plans = [compile_plan(project, group, first, last) for first, last in date_chunks(start, end, chunk_days)]
    refuse_future_dates(end, project.config.timezone)
    drifting = _accepted_drift(plans[0], accept_drift)
    session = _session(project, spark)
    breaking = not dry_run and refuse_breaking(project, group, accept=accept_breaking, spark=session)
    accepted = ",".join([*(["breaking"] if breaking else []), *(f"drift:{c}" for c in drifting)])
    outcomes = []
    for index, plan in enumerate(plans, start=1):
        outcomes.append(_run_chunk(session(), project, plan, index, len(plans), dry_run, progress,
                                   accepted=accepted, accepted_drift=drifting, reasons=reasons))
    return outcomes


def _drift_of(project: Project, group: str, features: Collection[str]) -> tuple[str, ...]:
    """Of `features`, those `group` has a drift check on (a run of several groups accepts each
    feature where it is checked)."""
    from featurebank.compile.group import compile_group
    from featurebank.gate.drift import is_drift

    checked = {str(c.arguments["column"]) for c in compile_group(project, group).checks if is_drift(c)}
    return tuple(f for f in features if f in checked)


def _accepted_drift(plan: Plan, features: Collection[str]) -> tuple[str, ...]:
    """The features of `features` the group has a drift check on; any other name is a UsageError."""
    from featurebank.gate.drift import is_drift

    checked = {str(c.arguments["column"]) for c in plan.checks if is_drift(c)}
    unknown = sorted(set(features) - checked)
    if unknown:
        raise UsageError(f"--accept-drift {', '.join(unknown)}: feature group {plan.group} has no drift check on "
                         f"{'it' if len(unknown) == 1 else 'them'} (drift checks: {', '.join(sorted(checked)) or 'none'})")
    return tuple(sorted(set(features)))


def run_all(
    project: Project,
    start: date,
    end: date,
    *,
    spark: SparkSession | None = None,
    dry_run: bool = False,
    chunk_days: int | None = None,
    progress: Progress | None = None,
    accept_breaking: bool = False,
    accept_drift: Collection[str] = (),
) -> list[RunOutcome]:
    """Run every group in dependency order (`plan.run_order`); `accept_*` as `run_group` (a drift
    acceptance applies to the groups with a drift check on that feature).

    A group whose upstream group failed is not run; independent groups still are. When
    anything failed, raises after all runnable groups ran: the first non-gate error if there
    is one (a runtime failure outranks a refused publish), else the first `GateFailed`.
    """
    from featurebank.compile.order import run_order

    session = _session(project, spark)()
    return _in_order(project, [(group, partial(run_group, project, group, start, end, spark=session, dry_run=dry_run,
                                               chunk_days=chunk_days, progress=progress,
                                               accept_breaking=accept_breaking,
                                               accept_drift=_drift_of(project, group, accept_drift)))
                               for group in run_order(project)])


def decide_missing(
    project: Project, group: str | None, start: date, end: date, *, spark: SparkSession | None = None
) -> list[MissingDates]:
    """Which dates of `start..end` `run_missing` computes, for `group` or (None) every group in run order.

    Reads what each group published (`io.published.published_state`: the run log and the
    table's Delta log, JVM-free unless Lake Formation governs the tables) and decides per date
    (`compile.missing.missing_dates`). For every group, a group whose upstream group computes
    a date also computes it, and the dates whose windows read it (up to its longest window
    later), within the range. Raises `UsageError` for an unknown group or a future date.
    """
    from featurebank.compile.group import compile_group
    from featurebank.compile.missing import missing_dates
    from featurebank.compile.order import run_order
    from featurebank.definitions.validate import dependencies
    from featurebank.io.published import published_state
    from featurebank.readiness import refuse_future_dates

    names = run_order(project) if group is None else [compile_group(project, group).group]
    refuse_future_dates(end, project.config.timezone)
    upstream, session = dependencies(project), _session(project, spark)
    decided: dict[str, MissingDates] = {}
    for name in names:
        compiled = compile_group(project, name)
        reach = compiled.max_window if compiled.kind == "aggregation" else 0
        forced: dict[date, str] = {}
        for up in (u for u in upstream.get(name, ()) if u in decided):
            for day in decided[up].dates:
                for later in range(reach + 1):
                    if start <= day + timedelta(days=later) <= end:
                        forced.setdefault(day + timedelta(days=later), f"its upstream group {up} is recomputed for "
                                                                       "dates it reads")
        state = published_state(project.config.feature_root, name, compiled.table_path, spark=session,
                                lake_formation=project.config.governance.lake_formation)
        decided[name] = missing_dates(name, compiled.data_hash, start, end, state.by_date, state.table_rows,
                                      state.foreign, forced)
    return list(decided.values())


def run_missing(
    project: Project,
    decisions: list[MissingDates],
    *,
    spark: SparkSession | None = None,
    dry_run: bool = False,
    chunk_days: int | None = None,
    progress: Progress | None = None,
    accept_breaking: bool = False,
    accept_drift: Collection[str] = (),
) -> list[RunOutcome]:
    """Run the dates `decide_missing` decided, group by group in its order, each consecutive
    range as one `run_group` (cut by `chunk_days`). Spark starts only when there is a date to
    compute. Failures as `run_all`: a group whose upstream failed is not run, the rest are,
    then the first runtime error (else the first refusal) is raised."""
    session = _session(project, spark)

    def runs(decision: MissingDates) -> list[RunOutcome]:
        return [outcome for first, last in decision.ranges() for outcome in run_group(
            project, decision.group, first, last, spark=session(), dry_run=dry_run, chunk_days=chunk_days,
            progress=progress, accept_breaking=accept_breaking,
            accept_drift=_drift_of(project, decision.group, accept_drift), reasons=decision_reasons(decision))]

    return _in_order(project, [(d.group, partial(runs, d)) for d in decisions if d.run])


def decide_restate(
    project: Project, group: str | None, start: date | None = None, end: date | None = None, *,
    spark: SparkSession | None = None,
) -> list[MissingDates]:
    """Which published dates of `start..end` (None: every published date) `run --restate`
    recomputes, for `group` or (None) every group in run order: those whose source changed since
    the run that last published them fingerprinted it (`io.fingerprints.stale_dates`, JVM-free;
    `compile.restate` says exactly which), and those an upstream group restates reach. Run them
    with `run_missing`."""
    from featurebank.compile.group import compile_group
    from featurebank.compile.order import run_order
    from featurebank.compile.restate import restate_dates, upstream_forced
    from featurebank.definitions.validate import dependencies
    from featurebank.io.fingerprints import stale_dates
    from featurebank.io.published import published_state

    names = run_order(project) if group is None else [compile_group(project, group).group]
    upstream, session, governed = dependencies(project), _session(project, spark), project.config.governance.lake_formation
    decided: dict[str, MissingDates] = {}
    for name in names:
        compiled = compile_group(project, name)
        by_date = published_state(project.config.feature_root, name, compiled.table_path, spark=session,
                                  lake_formation=governed).by_date
        by_date = {d: p for d, p in by_date.items() if (start is None or d >= start) and (end is None or d <= end)}
        if not by_date:
            decided[name] = restate_dates(name, date.max, date.min, {}, {})
            continue
        stale, unknown = stale_dates(project.config.feature_root, compiled, by_date, project.config.timezone,
                                     lake_formation=governed)
        reach = compiled.max_window if compiled.kind == "aggregation" else 0
        forced: dict[date, str] = {}
        for up in (u for u in upstream.get(name, ()) if u in decided):
            forced = upstream_forced(decided[up].dates, up, compiled.kind, reach, by_date) | forced
        decided[name] = restate_dates(name, min(by_date), max(by_date), by_date, stale, unknown, forced)
    return list(decided.values())


def decision_reasons(decision: MissingDates) -> dict[date, str]:
    """Why each date a decision runs is computed, per date."""
    return {s.start + timedelta(days=k): s.reason for s in decision.run for k in range((s.end - s.start).days + 1)}


def compute(spark: SparkSession, plan: Plan, entities: DataFrame | None = None) -> DataFrame:
    """The batch of `plan` exactly as a run computes it: the source read for the plan's dates,
    then the engine (`engine.compute_batch`); lazy.

    With `entities` (a DataFrame of the entity key columns), only their events are kept,
    before any window: every aggregation and row-level feature is computed per entity, so
    their rows are the very rows a full run computes for them (`featurebank preview`).
    """
    from featurebank.engine import compute_batch
    from featurebank.io.sources import read_source

    events = read_source(spark, plan.source, plan.timezone)
    if entities is not None:
        from pyspark.sql import functions as F

        events = events.join(F.broadcast(entities), on=list(plan.keys), how="left_semi")
    return compute_batch(events, plan)


def _in_order(project: Project, jobs: list[tuple[str, Callable[[], list[RunOutcome]]]]) -> list[RunOutcome]:
    """Run each group's job in the given (dependency) order; see `run_all` for failures."""
    from featurebank.definitions.validate import dependencies

    upstream = dependencies(project)
    outcomes: list[RunOutcome] = []
    errors: list[BaseException] = []
    failed: set[str] = set()
    for group, job in jobs:
        if failed.intersection(upstream.get(group, ())):
            failed.add(group)
            continue
        try:
            outcomes += job()
        except Exception as error:
            failed.add(group)
            errors.append(error)
    if errors:
        raise next((e for e in errors if not isinstance(e, (GateFailed, SourceNotReady))), errors[0])
    return outcomes


def _session(project: Project, spark: SparkSession | None) -> Callable[[], SparkSession]:
    """The session to run in: `spark`, or the project's, started on first use."""
    held: list[SparkSession] = [spark] if spark is not None else []

    def session() -> SparkSession:
        if not held:
            from featurebank.io.spark import get_spark

            held.append(get_spark(project.config))
        return held[0]

    return session


def _run_chunk(
    spark: SparkSession,
    project: Project,
    plan: Plan,
    chunk: int,
    chunks: int,
    dry_run: bool,
    progress: Progress | None,
    accepted: str = "",
    accepted_drift: Collection[str] = (),
    reasons: dict[date, str] | None = None,
) -> RunOutcome:
    """One run: log started, compute, gate, publish, log; the batch is computed once and persisted.
    `accepted` names what the caller accepted (`breaking`), recorded in every run-log row. The
    source is listed before it is read, and its fingerprint is stored with `reasons` before the
    commit (`io.fingerprints`; not for a dry run)."""
    from featurebank.readiness import check_source
    from featurebank.gate import run_gate
    from featurebank.io.tables import check_compatible, publish

    run_id = new_run_id()
    started = _now()
    feature_root = project.config.feature_root
    user = current_user(feature_root=feature_root)

    def tell(stage: str, **info: Any) -> None:
        if progress is not None:
            info.setdefault("seconds", (_now() - started).total_seconds())
            progress(ProgressEvent(plan.group, run_id, chunk, chunks, plan.start, plan.end, stage, **info))

    def record(status: RunStatus, rows: int, version: int | None, gate: GateResult | None, error: str | None,
               by_date: dict[date, int] | None = None) -> RunRecord:
        return RunRecord(
            run_id=run_id, group=plan.group, env=project.config.env, start_date=plan.start, end_date=plan.end,
            status=status, started_at=started, finished_at=_now(), rows_written=rows,
            delta_version=version, definition_hash=plan.data_hash, checks_summary=gate.to_json() if gate else "",
            user=user, error=error, rows_by_date=_by_date_json(by_date), source_rows_by_day=_by_date_json(source_rows),
            accepted=accepted,
        )

    def log(status: RunStatus, rows: int, version: int | None, gate: GateResult | None, error: str | None,
            by_date: dict[date, int] | None = None) -> RunOutcome:
        fault_point("runlog")
        final = record(status, rows, version, gate, error, by_date)
        append_final(spark, feature_root, final)
        return RunOutcome(run_id, plan.group, plan.start, plan.end, status, rows, version,
                          final.duration_seconds, gate, error)

    source_rows: dict[date, int] | None = None  # set by the source guard; every later row records it
    append_run(spark, feature_root, record("started", 0, None, None, None))  # a killed run still shows
    inputs: threading.Thread | None = None  # the source's fingerprint, read beside the compute
    if not dry_run:  # what it reads, listed before it reads (a file landing meanwhile shows as changed next time)
        from featurebank.io.fingerprints import record_inputs

        inputs = record_inputs(feature_root, plan.group, run_id, plan.source, plan.timezone, reasons={
            d: why for d, why in (reasons or {}).items() if plan.start <= d <= plan.end},
            lake_formation=project.config.governance.lake_formation)
    batch: DataFrame | None = None
    version: int | None = None
    profiling: _Profiling | None = None
    try:
        check_compatible(spark, plan, tuple(c.name for c in plan.output))
        fault_point("before_compute")
        tell("computing")
        source_rows = check_source(spark, plan, run_id, feature_root)  # rows per event day, for the run log
        batch = compute(spark, plan)
        tell("gating", checks=len(plan.checks))
        from featurebank.definitions.governance import pii_columns_of
        from featurebank.gate.drift import drift_references

        personal = pii_columns_of(project, plan.group)
        gate = run_gate(batch, plan, run_id, feature_root, pii_columns=personal,
                        drift_references=drift_references(project, plan, spark), accepted_drift=accepted_drift)
        warned = tuple(c.line() for c in gate.warnings)
        tell("gated", checks=len(plan.checks), rows=gate.row_count, message=gate.headline(), details=warned)
        by_date = dict(gate.rows_by_date)
        if dry_run:
            outcome = log("dry_run", gate.row_count, None, gate, None, by_date)
        else:
            tell("publishing", rows=gate.row_count)
            from featurebank.io.table_metadata import with_column_comments  # comments ride in the commit

            profiling = _Profiling(batch, plan, run_id, by_date)  # beside the publish: its jobs fill the write's idle cores
            _archive_superseded(spark, project, plan, run_id)  # before the commit: a crash loses nothing
            if inputs is not None:  # stored before the commit: every published run has its fingerprint
                inputs.join()
            version = publish(spark, with_column_comments(batch, plan), plan, run_id, catalog_type=project.config.catalog_type,
                              database=project.config.catalog_database, rows=gate.row_count, rows_by_date=by_date,
                              lake_formation=project.config.governance.lake_formation)
            fault_point("after_commit")
            outcome = _log_published(log, gate, version, by_date, plan, run_id, runs_path(feature_root))
            _store_profiles(profiling, plan, run_id, version, feature_root, personal)  # for `docs` and drift, no Spark
            if project.config.catalog_type != "none":  # table properties where a catalog shows them (Glue)
                from featurebank.io.table_metadata import apply_table_metadata, register_published

                if project.config.catalog_type == "glue" and project.config.catalog_database:  # what Athena reads
                    register_published(spark, plan, project.config.catalog_database,
                                       region=project.config.aws.region if project.config.aws else None)
                apply_table_metadata(spark, plan, catalog_type=project.config.catalog_type,
                                     database=project.config.catalog_database)
        tell("done", rows=outcome.rows_written, version=outcome.delta_version, status=outcome.status,
             checks=len(plan.checks), message=gate.headline(), details=warned, seconds=outcome.seconds)
        return outcome
    except GateFailed as error:
        logged = _log_failure(log, "gate_failed", error.result, error)
        tell("failed", status="gate_failed", rows=error.result.row_count, message=_first_line(error), **logged)
        raise
    except SourceNotReady as error:  # refused before compute: logged like a gate refusal
        logged = _log_failure(log, "gate_failed", None, error)
        tell("failed", status="gate_failed", message=_first_line(error), **logged)
        raise
    except BaseException as error:
        if profiling is not None:  # first: its jobs would hold the cores the failure's own jobs need
            profiling.cancel()
        explained = _ansi_explained(spark, plan, error, batch) if version is None else None
        logged = {}
        if version is None:  # a committed run is published: never log it failed
            logged = _log_failure(log, "failed", None, explained or error)
        tell("failed", status="failed" if version is None else "published", message=_first_line(explained or error),
             **logged)
        if explained is not None:
            raise explained from error
        raise
    finally:
        if profiling is not None:  # stored by now, or never will be; its jobs read the persisted batch
            profiling.cancel()
        if inputs is not None:
            inputs.join()
        if batch is not None:
            batch.unpersist()


def _archive_superseded(spark: SparkSession, project: Project, plan: Plan, run_id: str) -> None:
    """Copy the published rows this run is about to replace into the group's history table
    (`io.history`), so a training set `--as-known-at publish` still finds the values known before."""
    from featurebank.days import utc_now
    from featurebank.io.history import archive_superseded, current_versions
    from featurebank.io.runlog import read_run_log

    config = project.config
    runs = read_run_log(config.feature_root, plan.group, spark=lambda: spark,
                        lake_formation=config.governance.lake_formation)
    current = current_versions(runs, plan.group, plan.source.lag_days, plan.timezone)
    archive_superseded(spark, plan.table_path, config.feature_root, plan.group, run_id, plan.replaced_dates, current,
                       retention_days=config.retention_days, now=utc_now(),
                       lake_formation=config.governance.lake_formation)


def _log_published(
    log: Callable[..., RunOutcome], gate: GateResult, version: int, by_date: dict[date, int], plan: Plan, run_id: str,
    where: str,
) -> RunOutcome:
    """The final row of a committed run; if it cannot be written, say so without calling the run failed."""
    try:
        return log("published", gate.row_count, version, gate, None, by_date)
    except Exception as error:
        raise RunLogUnwritten(
            f"run {run_id} published {plan.group} {plan.start}..{plan.end} as Delta version {version}, but its "
            f"run-log row could not be written to {where}: {_first_line(error)}. The table is correct; `featurebank "
            f"history {plan.group}` shows the run as published (repaired from the commit); fix the run log's "
            "location if the next run fails the same way"
        ) from error


class _Profiling:
    """The profile per snapshot date (`engine.profile.profile_batch`, a few passes over the
    persisted batch) of the batch's latest `gate.drift.profiled_span(plan)` dates holding rows
    (`rows_by_date`): what `featurebank docs` and the next runs' drift checks read; a drift check
    that reaches an older date profiles it then. Computed in a thread of its own while the run
    archives and publishes: a daily run's profile jobs are mostly waiting on the scheduler, which
    the write's jobs leave idle. `result()` is the profiles or the exception that stopped them."""

    def __init__(self, batch: DataFrame, plan: Plan, run_id: str, rows_by_date: Mapping[date, int]) -> None:
        from pyspark import InheritableThread  # the job's local properties follow; its JVM thread ends with it
        from pyspark.sql import functions as F

        from featurebank.engine.profile import PARTITION_COLUMN
        from featurebank.gate.drift import profiled_span

        with_rows, span = sorted(day for day, rows in rows_by_date.items() if rows), profiled_span(plan)
        sliced = len(with_rows) > span
        if sliced:
            batch = batch.where(F.col(PARTITION_COLUMN) >= F.lit(with_rows[-span]))
        self.outcome: list[Any] | BaseException = []
        self.context = batch.sparkSession.sparkContext
        self.job_group = f"featurebank-profile-{run_id}"
        self.thread = InheritableThread(target=self._compute, args=(batch, plan, run_id, sliced), daemon=True,
                                        name=f"featurebank-profile-{plan.group}")
        self.thread.start()

    def _compute(self, batch: DataFrame, plan: Plan, run_id: str, sliced: bool) -> None:
        """`sliced`: `batch` is a few dates of the persisted batch, persisted in turn, so that the
        profile's passes do not each read every row of a backfill's batch (measured: 17.8 s waited
        for after a 365-date publish, notes/20-profiles.md)."""
        from pyspark import StorageLevel

        from featurebank.engine.profile import profile_batch

        try:
            self.context.setJobGroup(self.job_group, f"profiles of {plan.group}", interruptOnCancel=True)
            if sliced:
                batch = batch.persist(StorageLevel.MEMORY_AND_DISK)
            self.outcome = profile_batch(batch, plan.group, plan.feature_columns, run_id=run_id, data_hash=plan.data_hash)
        except BaseException as error:  # noqa: BLE001 - handed to the caller by result()
            self.outcome = error
        finally:
            if sliced:
                batch.unpersist()

    def wait(self) -> None:
        self.thread.join()

    def cancel(self) -> None:
        """End the profiling now: a run that failed before storing its profiles never needs them,
        and at scale they take minutes. Cancels the thread's Spark jobs until it has ended (a job
        it starts after one cancel meets the next); nothing to cancel once it ended."""
        while self.thread.is_alive():
            self.context.cancelJobGroup(self.job_group)
            self.thread.join(timeout=0.5)

    def result(self) -> list[Any]:
        self.wait()
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome


def _store_profiles(profiling: _Profiling, plan: Plan, run_id: str, version: int, feature_root: str,
                    personal: frozenset[str]) -> None:
    """Store the published batch's profiles (`_Profiling`), stamped with the commit's `version`,
    one JSON per date at `gate.profile_location`. Never raises: the data is committed, so a
    profile that cannot be computed or written is a warning, and the catalog then says no
    profile was recorded for that date."""
    from dataclasses import replace

    from featurebank.gate import profile_location
    from featurebank.gate.report import write_profiles

    try:
        write_profiles(feature_root, plan.group, [replace(p, version=version) for p in profiling.result()], personal)
    except Exception as error:  # noqa: BLE001 - see the docstring: never fail a published run
        logging.getLogger(__name__).warning(
            "featurebank: published %s %s..%s (run %s) but could not store its profiles under %s: %s", plan.group,
            plan.start, plan.end, run_id, profile_location(feature_root, plan.group, plan.start).rsplit("/", 1)[0],
            _first_line(error))


def _by_date_json(by_date: dict[date, int] | None) -> str:
    return "" if by_date is None else json.dumps({d.isoformat(): n for d, n in sorted(by_date.items())}, sort_keys=True)


def _log_failure(
    log: Callable[[RunStatus, int, int | None, Any, str | None], RunOutcome],
    status: RunStatus,
    gate: Verdict | None,
    error: BaseException,
) -> dict[str, float]:
    """Log a failed run; returns `{"seconds": <its logged duration>}`, or `{}` when it could not
    be logged (a failure to log must not hide the error that caused it)."""
    try:
        return {"seconds": log(status, 0, None, gate, f"{type(error).__name__}: {error}").seconds}
    except Exception:  # pragma: no cover - the original error is the one worth raising
        return {}


def _ansi_explained(spark: SparkSession, plan: Plan, error: BaseException,
                    batch: DataFrame | None) -> RuntimeFailure | None:
    """An ANSI-mode failure (overflow, invalid cast, division by zero) as a sentence naming the
    feature, its expression and an example row's keys (`engine.ansi`); None for any other error."""
    from featurebank.spark_errors import ansi_failure, ansi_sentence, is_storage_error, root_cause

    found = ansi_failure(error) if isinstance(error, Exception) and is_storage_error(error) else None
    if found is None:
        return None
    from featurebank.engine.ansi import locate
    from featurebank.io.sources import read_source

    if batch is not None:  # else Spark's cache manager answers the search from the failed cache
        batch.unpersist()
    try:  # a fresh, unpersisted batch: the search must not recompute the failing column
        culprit = locate(read_source(spark, plan.source, plan.timezone), compute(spark, plan), plan, found[1])
    except Exception:  # noqa: BLE001 - the search is a courtesy: the original error is reported anyway
        culprit = None
    if culprit is None:
        return RuntimeFailure(ansi_sentence(found[0], root_cause(error), None, None, (), plan.group))
    return RuntimeFailure(ansi_sentence(found[0], root_cause(error), culprit.feature, culprit.expression,
                                        culprit.keys, plan.group))


def _now() -> datetime:
    """The run log's clock (`days.utc_now`, the seam tests set a publish time through)."""
    from featurebank.days import utc_now

    return utc_now()


def _first_line(error: BaseException) -> str:
    text = str(error)
    return text.splitlines()[0] if text else type(error).__name__
