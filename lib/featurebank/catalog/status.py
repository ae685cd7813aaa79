"""Is a group fresh and healthy? Its status from the run log and the gate's reports.

Freshness is defined against the **expected latest snapshot date = today in the project time
zone**: the row for D only aggregates events before D, so D can be computed from D 00:00 on,
and a daily job that ran today has published today. `freshness_days` is how many days the
last published snapshot date is behind that (0 = fresh; None = never published).

The run log (`<feature_root>/_runs`) is read once for all groups, without a JVM (delta-rs,
`io.runlog.read_run_log`); only where Lake Formation governs the tables is it read
through Spark. Gate reports are read through `io.files` (local or S3).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from featurebank.definitions.expectations import tested_columns
from featurebank.io.runlog import RUNS_TABLE, RunRecord

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from featurebank.definitions.model import Project

RECENT_RUNS = 5
NEVER_RUN = "never run"
SparkProvider = Callable[[], "SparkSession"]


@dataclass(frozen=True)
class CheckOutcome:
    """One check of a run, as its gate reported it (`result.json`)."""

    expectation: str
    column: str
    severity: str
    success: bool
    observed: str
    kwargs: dict[str, Any]


@dataclass(frozen=True)
class GroupStatus:
    """A group's freshness and health as of `expected_date`.

    `runs` is the whole logged history, newest first; `recent_runs` its first five.
    `last_checks` are the check outcomes of the newest run the gate judged (from its
    `result.json`, else from the run log's checks summary), `checks_run_id` that run.
    """

    group: str
    expected_date: date
    last_published_date: date | None
    runs: tuple[RunRecord, ...]
    last_checks: tuple[CheckOutcome, ...] = ()
    checks_run_id: str | None = None

    @property
    def freshness_days(self) -> int | None:
        """Days the last published snapshot date is behind `expected_date` (None: never published)."""
        if self.last_published_date is None:
            return None
        return (self.expected_date - self.last_published_date).days

    @property
    def freshness(self) -> str:
        """`fresh`, `N days behind`, `never published` or `never run`."""
        if not self.runs:
            return NEVER_RUN
        days = self.freshness_days
        if days is None:
            return "never published"
        if days <= 0:
            return "fresh"
        return f"{days} day{'s' if days != 1 else ''} behind"

    @property
    def last_run(self) -> RunRecord | None:
        return self.runs[0] if self.runs else None

    @property
    def last_status(self) -> str:
        """The newest run's status, or `never run`."""
        return self.runs[0].status if self.runs else NEVER_RUN

    @property
    def recent_runs(self) -> tuple[RunRecord, ...]:
        return self.runs[:RECENT_RUNS]

    @property
    def delta_version(self) -> int | None:
        """The Delta version of the newest published run (None if none published)."""
        return next((r.delta_version for r in self.runs if r.status == "published"), None)


def expected_date(timezone_name: str, now: datetime | None = None) -> date:
    """Today in the project time zone: the snapshot date a daily job is expected to have published."""
    instant = now or datetime.now(timezone.utc)
    if instant.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return instant.astimezone(ZoneInfo(timezone_name)).date()


def group_status(group: str, runs: list[RunRecord], expected: date,
                 results: Callable[[RunRecord], dict[str, Any] | None] | None = None) -> GroupStatus:
    """Summarise `runs` (newest first, any groups: only `group`'s are used) as of `expected`.

    `results(run)` returns a run's gate `result.json` as a dict (or None); without it, or when
    it has none, the run log's `checks_summary` is used.
    """
    own = tuple(r for r in runs if r.group == group)
    published = [r.end_date for r in own if r.status == "published"]
    judged = next((r for r in own if r.checks_summary), None)
    checks: tuple[CheckOutcome, ...] = ()
    if judged is not None:
        document = results(judged) if results else None
        if document is None:
            try:
                document = json.loads(judged.checks_summary)
            except ValueError:
                document = None
        checks = _check_outcomes(document or {})
    return GroupStatus(group, expected, max(published) if published else None, own, checks,
                       judged.run_id if judged else None)


def _check_outcomes(document: dict[str, Any]) -> tuple[CheckOutcome, ...]:
    from featurebank.gate import CheckResult

    outcomes = []
    for c in document.get("checks", []):
        try:
            observed = CheckResult(
                c["expectation"], c.get("column"), c.get("severity", "error"), bool(c.get("success")),
                c.get("observed_value"), c.get("unexpected_count"), c.get("unexpected_percent"),
                c.get("element_count"), tuple(c.get("partial_unexpected") or ()), exception=c.get("exception"),
            ).describe_observed()
        except (KeyError, TypeError):
            continue
        outcomes.append(CheckOutcome(c["expectation"], c.get("column") or "", c.get("severity", "error"),
                                     bool(c.get("success")), observed, dict(c.get("kwargs") or {})))
    return tuple(outcomes)


def report_dir(feature_root: str, group: str, run_id: str) -> str:
    """Where the gate wrote a run's `result.json` and `report.html`."""
    from featurebank.gate import artifact_dir

    return artifact_dir(feature_root, "_reports", group, run_id)


def read_text(uri: str) -> str | None:
    """A small text file (a gate report) from a local path or S3, or None if absent or unreadable."""
    from featurebank.io import files

    try:
        return files.read_text(uri)
    except (OSError, UnicodeDecodeError):  # absent or unreadable: the status falls back to the run log
        return None


def read_gate_result(feature_root: str, group: str, run_id: str) -> dict[str, Any] | None:
    """A run's gate `result.json` as a dict, or None when there is none."""
    text = read_text(f"{report_dir(feature_root, group, run_id)}/result.json")
    if text is None:
        return None
    try:
        document = json.loads(text)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def collect_statuses(project: Project, spark: SparkProvider, now: datetime | None = None) -> dict[str, GroupStatus]:
    """Every group's status (by name, sorted), reading the run log once."""
    from featurebank.io.runlog import read_run_log

    feature_root = project.config.feature_root
    expected = expected_date(project.config.timezone, now)
    runs = read_run_log(feature_root, spark=spark, lake_formation=project.config.governance.lake_formation)

    def results(run: RunRecord) -> dict[str, Any] | None:
        return read_gate_result(feature_root, run.group, run.run_id)

    return {name: group_status(name, runs, expected, results) for name in sorted(project.groups)}


def check_column(kwargs: dict[str, Any]) -> str:
    """The column a check is about, spelled as the gate reports it (lists comma-joined)."""
    return ",".join(tested_columns(kwargs))


def match_checks(checks: Any, outcomes: tuple[CheckOutcome, ...]) -> list[tuple[Any, CheckOutcome | None]]:
    """Pair each of a plan's `CheckSpec`s with its outcome in the last judged run (None: not
    judged then, e.g. a check added since)."""
    left = list(outcomes)
    pairs = []
    for check in checks:
        column = check_column(dict(check.kwargs))
        match = next((o for o in left if o.expectation == check.expectation and o.column == column
                      and o.severity == check.severity), None)
        if match is not None:
            left.remove(match)
        pairs.append((check, match))
    return pairs


def outcome_word(outcome: CheckOutcome | None) -> str:
    """PASS, FAIL (error check failed), WARN (warn check failed) or `not run yet`."""
    if outcome is None:
        return "not run yet"
    if outcome.success:
        return "PASS"
    return "FAIL" if outcome.severity == "error" else "WARN"
