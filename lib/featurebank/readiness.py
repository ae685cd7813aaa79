"""Source guards: may a run publish its dates? Decided before anything is computed.

SPEC, "What a run may publish": a snapshot date D is publishable only when the source's latest
event day is at least `D - 1 - lag` and its readiness signal holds, and a run never replaces
published rows with nothing by accident. `check_source` measures the source with one cheap
aggregate (the reader and range predicate `read_source` uses, so Parquet/Delta skip what they
can), `judge` decides (pure Python, testable without Spark), and a refusal raises
`SourceNotReady` (exit 1) after writing `<feature_root>/_reports/<group>/<run_id>/readiness.json`.

What is measured: rows per event day (project time zone) from the read range's first day
onwards — the read range's days give the per-day counts, the days after it only the latest
event day. When the read range holds no row, a second query counts the source's rows without
an event time and finds its latest event day at all, so the refusal can say why.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from featurebank.days import EPOCH, day_start_instant
from featurebank.errors import SourceNotReady, UsageError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from featurebank.compile.run import Plan


@dataclass(frozen=True)
class SourceFacts:
    """What the guard measured about a run's source."""

    daily_rows: dict[date, int]  # rows per event day of the read range, zero days included
    latest_event_day: date | None  # the latest event day of the source (None: no event time at all)
    total_rows: int  # rows in the read range (the whole source when it has no event time)
    rows_without_event_time: int | None = None  # counted only when the read range is empty
    watermark: datetime | None = None  # max of the readiness watermark column (tz-aware)
    marker_exists: bool | None = None  # None: the source declares no marker


@dataclass(frozen=True)
class Verdict:
    """Which snapshot dates may not be published, and why (one sentence per reason)."""

    refused_dates: tuple[date, ...] = ()
    reasons: tuple[str, ...] = ()
    bad_days: dict[date, int] = field(default_factory=dict)  # daily_rows outside the declared range

    @property
    def ready(self) -> bool:
        return not self.reasons


def refuse_future_dates(end: date, zone: str, today: date | None = None) -> None:
    """Raise `UsageError` when snapshot date `end` is after today in the project time zone.

    Today is publishable (its snapshot covers events before today 00:00); tomorrow's would
    claim a day that has not ended.
    """
    today = today or datetime.now(ZoneInfo(zone)).date()
    if end > today:
        raise UsageError(
            f"snapshot date {end} is in the future: today is {today} in {zone}, and a snapshot for a date covers "
            f"the days before it, so the latest date a run may publish is {today}; run --date {today} or earlier"
        )


def check_source(spark: SparkSession, plan: Plan, run_id: str, feature_root: str) -> dict[date, int]:
    """Measure the plan's source and refuse the run when any of its dates is not publishable.

    Returns the rows per event day of the read range (zeros included; `{}` for a source
    without an event time) for the run log. Raises `SourceNotReady` (exit 1) naming the
    source, what was found and the dates refused, after writing the JSON report.
    """
    facts = measure_source(spark, plan)
    verdict = judge(plan, facts)
    if not verdict.ready:
        report = write_report(spark, plan, run_id, feature_root, facts, verdict)
        days = _dates_text(verdict.refused_dates)
        raise SourceNotReady(
            f"source {plan.source.name} is not ready for feature group {plan.group} (snapshot dates {days} refused): "
            + " ".join(verdict.reasons) + f" Nothing was computed or published; report: {report}",
            report,
        )
    return facts.daily_rows


def measure_source(spark: SparkSession, plan: Plan) -> SourceFacts:
    """One aggregate over the source from the read range's first day (or `D - 1 - lag`) on."""
    from pyspark.sql import functions as F

    from featurebank.days import local_epoch_day
    from featurebank.io.sources import path_exists, read_source

    source, signal, tz = plan.source, plan.source.readiness, plan.timezone
    marker = path_exists(spark, signal.marker) if signal is not None and signal.marker else None
    if not source.timestamp:
        total = read_source(spark, replace(source, columns=(), declared_types=()), tz).count()
        return SourceFacts({}, None, total, marker_exists=marker)
    ts = source.timestamp
    watermark = signal.watermark if signal is not None else None
    declared = [(c, t) for c, t in source.declared_types if c == ts] + ([(watermark, "timestamp")] if watermark else [])
    lower = source.read_start
    if lower is not None:
        lower = min(lower, plan.start - timedelta(days=1 + source.lag_days))
    probe = replace(source, columns=(ts, *([watermark] if watermark else [])), declared_types=tuple(declared),
                    read_start=lower, read_end_exclusive=None)
    aggregates = [F.count(F.lit(1)).alias("rows")]
    if watermark:  # as microseconds: collected datetimes would be in the Python process's zone
        aggregates.append(F.unix_micros(F.max(watermark)).alias("watermark"))
    days = read_source(spark, probe, tz).groupBy(local_epoch_day(F.col(ts), tz).alias("day")).agg(*aggregates).collect()

    counted = {EPOCH + timedelta(days=int(r["day"])): int(r["rows"]) for r in days}
    first, end = source.read_start, source.read_end_exclusive
    span_start = first if first is not None else min(counted, default=EPOCH)
    span_end = end if end is not None else max(counted, default=EPOCH) + timedelta(days=1)
    daily = {span_start + timedelta(days=i): 0 for i in range((span_end - span_start).days)}
    for day, rows in counted.items():
        if day in daily:
            daily[day] = rows
    latest = max(counted, default=None)
    marks = [datetime.fromtimestamp(r["watermark"] / 1e6, timezone.utc) for r in days if watermark and r["watermark"] is not None]
    total, without = sum(daily.values()), None
    if total == 0:  # why is it empty? count rows without an event time, find the latest day at all
        whole = read_source(spark, replace(probe, read_start=None), tz)
        row = whole.agg(F.max(local_epoch_day(F.col(ts), tz)).alias("latest"),
                        F.sum(F.when(F.col(ts).isNull(), 1).otherwise(0)).alias("nulls")).first()
        if row is not None and row["latest"] is not None:
            latest = EPOCH + timedelta(days=int(row["latest"]))
        without = int(row["nulls"] or 0) if row is not None else 0
    return SourceFacts(daily, latest, total, without, max(marks, default=None), marker)


def judge(plan: Plan, facts: SourceFacts) -> Verdict:
    """The dates of `plan` that may not be published given `facts`, with a sentence per reason."""
    source, signal = plan.source, plan.source.readiness
    dates = [plan.start + timedelta(days=i) for i in range((plan.end - plan.start).days + 1)]
    refused: set[date] = set()
    reasons: list[str] = []
    span = f"[{source.read_start}, {source.read_end_exclusive})" if source.timestamp else "(the whole source)"
    if facts.total_rows == 0 and not plan.empty_input_allowed:
        refused.update(dates)
        nulls = f"; {facts.rows_without_event_time} rows have no {source.timestamp}" if facts.rows_without_event_time else ""
        reasons.append(f"it has no rows with an event time in {span}{nulls}; publishing would replace these dates "
                       "with nothing (if an empty source is normal for this group, add empty_input: allowed).")
    if source.timestamp:  # applies with empty_input: allowed too, so a stale source is never "fresh"
        late = [d for d in dates if facts.latest_event_day is None or facts.latest_event_day < d - timedelta(days=1 + source.lag_days)]
        if late:
            refused.update(late)
            reasons.append(f"its latest event day is {facts.latest_event_day or 'unknown (no event times)'} and its lag is "
                           f"{source.lag_days}d, so snapshot dates {_dates_text(late)} are not yet publishable (a date D "
                           f"needs events up to D - 1 - lag); wait for the data or run earlier dates.")
    bad: dict[date, int] = {}
    if signal is not None and signal.kind == "marker" and not facts.marker_exists:
        refused.update(dates)
        reasons.append(f"its readiness marker {signal.marker} does not exist; wait until the load writes it.")
    elif signal is not None and signal.kind == "daily_rows":
        bad = _days_out_of_range(facts, signal.daily_min, signal.daily_max)
        if bad:
            refused.update(dates)
            shown = ", ".join(f"{d}: {n} rows" for d, n in sorted(bad.items())[:10])
            reasons.append(f"event days outside its daily_rows range {signal.daily_min or 0}..{signal.daily_max or 'any'} "
                           f"({shown}) look half-landed; wait for the load to finish or correct daily_rows.")
    elif signal is not None and signal.kind == "watermark":
        # Snapshot D needs the events read for it complete: before D 00:00 (aggregation), D + 1 (row-level).
        reach = 0 if plan.kind == "aggregation" else 1
        late = [d for d in dates if facts.watermark is None
                or facts.watermark < day_start_instant(d + timedelta(days=reach), plan.timezone)]
        if late:
            refused.update(late)
            reasons.append(f"its watermark max({signal.watermark}) is {facts.watermark or 'empty'}, so snapshot dates "
                           f"{_dates_text(late)} are not complete yet; wait for the load to pass them.")
    return Verdict(tuple(sorted(refused)), tuple(reasons), bad)


def write_report(spark: SparkSession, plan: Plan, run_id: str, feature_root: str, facts: SourceFacts, verdict: Verdict) -> str:
    """Write `readiness.json` beside the gate's reports; returns its URI."""
    from featurebank.gate import artifact_dir
    from featurebank.io.files import write_text

    uri = f"{artifact_dir(feature_root, '_reports', plan.group, run_id)}/readiness.json"
    document: dict[str, Any] = {
        "group": plan.group, "run_id": run_id, "source": plan.source.name, "location": plan.source.location,
        "snapshot_dates": [str(plan.start), str(plan.end)],
        "read_range": [str(plan.source.read_start), str(plan.source.read_end_exclusive)],
        "lag_days": plan.source.lag_days, "empty_input_allowed": plan.empty_input_allowed,
        "readiness": {k: v for k, v in asdict(plan.source.readiness).items() if k != "loc" and v is not None}
        if plan.source.readiness else None,
        "latest_event_day": str(facts.latest_event_day) if facts.latest_event_day else None,
        "rows_in_read_range": facts.total_rows, "rows_without_event_time": facts.rows_without_event_time,
        "watermark": facts.watermark.isoformat() if facts.watermark else None, "marker_exists": facts.marker_exists,
        "daily_rows": {str(d): n for d, n in facts.daily_rows.items()},
        "days_out_of_range": {str(d): n for d, n in verdict.bad_days.items()},
        "refused_dates": [str(d) for d in verdict.refused_dates], "reasons": list(verdict.reasons),
    }
    write_text(uri, json.dumps(document, indent=2) + "\n")
    return uri


def _days_out_of_range(facts: SourceFacts, low: int | None, high: int | None) -> dict[date, int]:
    """Days from the first with rows to the last the source reached whose count is outside [low, high]."""
    landed = [d for d, n in facts.daily_rows.items() if n]
    if not landed:
        return {}
    last = min(max(facts.daily_rows), facts.latest_event_day or max(landed))
    return {d: n for d, n in facts.daily_rows.items() if min(landed) <= d <= last
            and ((low is not None and n < low) or (high is not None and n > high))}


def _dates_text(dates: tuple[date, ...] | list[date]) -> str:
    """`2024-03-30` or `2024-03-01 .. 2024-03-31` (first .. last) or a short list."""
    ordered = sorted(dates)
    if not ordered:
        return "none"
    if len(ordered) == 1:
        return str(ordered[0])
    if (ordered[-1] - ordered[0]).days + 1 == len(ordered):
        return f"{ordered[0]} .. {ordered[-1]}"
    return ", ".join(str(d) for d in ordered[:10]) + (" ..." if len(ordered) > 10 else "")
