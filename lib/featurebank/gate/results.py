"""What the gate decided: one `CheckResult` per check, a `GateResult` per batch, and their words.

These are the gate's outputs as the runner logs them (`GateResult.to_json` is the run log's
`checks_summary`), `featurebank history` summarises them and the catalog reads them back;
their fields and wording do not depend on which engine (the one pass or GX) judged a check.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any

PARTIAL_UNEXPECTED_COUNT = 5  # sample of offending values kept per check (report + console)
MASK = "***"  # what an example value of a PII column becomes in reports and messages


@dataclass(frozen=True)
class CheckResult:
    """How one check fared on the batch."""

    expectation: str
    column: str | None  # the column (or comma-joined columns) the check is about
    severity: str  # "error" | "warn"
    success: bool
    observed_value: Any  # GX's observed value, or for row checks the unexpected share
    unexpected_count: int | None
    unexpected_percent: float | None
    element_count: int | None
    partial_unexpected: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    origin: str = ""
    exception: str | None = None
    example_rows: tuple[dict[str, Any], ...] = ()  # offending rows: their keys, feature_date and value

    @property
    def name(self) -> str:
        """`expectation[column]`: how a check is named in headlines and the run log."""
        return f"{self.expectation}[{self.column or ''}]"

    @property
    def blocks(self) -> bool:
        """True when this check alone refuses the publish."""
        return self.severity == "error" and not self.success

    def describe_observed(self) -> str:
        """The observed value in words, for consoles and reports."""
        if self.exception:
            return f"could not be evaluated: {self.exception}"
        if isinstance(self.observed_value, dict) and "summary" in self.observed_value:  # featurebank's own checks
            return str(self.observed_value["summary"])
        if self.unexpected_count is not None:
            share = "" if self.unexpected_percent is None else f" ({self.unexpected_percent:.4g}% of non-null)"
            sample = ""
            if self.unexpected_count and self.example_rows:
                sample = ", e.g. " + "; ".join(_example(row, self.column) for row in self.example_rows)
            elif self.unexpected_count and self.partial_unexpected:
                sample = ", e.g. " + ", ".join(_short(v) for v in self.partial_unexpected)
            total = "" if self.element_count is None else f" of {self.element_count}"
            return f"{self.unexpected_count}{total} rows unexpected{share}{sample}"
        return _short(self.observed_value)

    def line(self) -> str:
        """One console line: status, severity, expectation, column, observed value."""
        status = "PASS" if self.success else ("FAIL" if self.severity == "error" else "WARN")
        column = f" [{self.column}]" if self.column else ""
        return f"{status:4} {self.severity:5} {self.expectation}{column}: {self.describe_observed()}"


@dataclass(frozen=True)
class GateResult:
    """Every check's outcome on one batch; `passed` is False when any error check failed."""

    group: str
    run_id: str
    passed: bool
    row_count: int
    checks: tuple[CheckResult, ...]
    report_dir: str = ""
    quarantine_dir: str | None = None
    # rows per `feature_date` (a NULL date is a key of its own), counted in the gate's one pass
    rows_by_date: Mapping[Any, int] = field(default_factory=dict)

    @property
    def failed(self) -> tuple[CheckResult, ...]:
        """The error-severity checks that failed (the reasons a publish was refused)."""
        return tuple(c for c in self.checks if c.blocks)

    @property
    def warnings(self) -> tuple[CheckResult, ...]:
        """The warn-severity checks that failed (published anyway, reported)."""
        return tuple(c for c in self.checks if c.severity == "warn" and not c.success)

    def summary(self) -> str:
        """One line per check (see `CheckResult.line`)."""
        return "\n".join(c.line() for c in self.checks)

    def headline(self) -> str:
        """A short phrase naming what did not pass: `7 checks: 6 passed, 1 warned (expect_x[col])`."""
        head = headline_of(len(self.checks), len(self.failed), len(self.warnings))
        return _named(head, [c.name for c in (*self.failed, *self.warnings)])

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: group, run_id, passed, row_count, per-check results."""
        return jsonable(
            {
                "group": self.group,
                "run_id": self.run_id,
                "passed": self.passed,
                "row_count": self.row_count,
                "failed": len(self.failed),
                "warned": len(self.warnings),
                "checks": [
                    {k: v for k, v in asdict(c).items() if k not in ("kwargs",)} | {"kwargs": c.kwargs}
                    for c in self.checks
                ],
            }
        )

    def to_json(self) -> str:
        """`to_dict()` as compact JSON: what the run log stores as `checks_summary`."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))


def headline_of(total: int, failed: int, warned: int) -> str:
    """`N checks: P passed[, F failed][, W warned]`."""
    parts = [f"{total - failed - warned} passed"]
    if failed:
        parts.append(f"{failed} failed")
    if warned:
        parts.append(f"{warned} warned")
    return f"{total} checks: " + ", ".join(parts)


def summarize_checks_json(text: str) -> str:
    """The headline of a stored `checks_summary` (for `featurebank history`); '' if none."""
    if not text:
        return ""
    try:
        data = json.loads(text)
    except ValueError:
        return text[:60]
    checks = data.get("checks", [])
    failed = [c for c in checks if not c.get("success") and c.get("severity") == "error"]
    warned = [c for c in checks if not c.get("success") and c.get("severity") == "warn"]
    names = [f"{c['expectation']}[{c.get('column') or ''}]" for c in failed + warned]
    return _named(headline_of(len(checks), len(failed), len(warned)), names)


def _named(head: str, names: list[str]) -> str:
    return head + (f" ({'; '.join(names)})" if names else "")


def _example(row: dict[str, Any], column: str | None) -> str:
    """One offending row in words: `-9.0 at customer_id='c2', feature_date=2024-03-01`."""
    checked = (column or "").split(",")
    values = [_short(row[c]) for c in checked if c in row]
    where = ", ".join(f"{k}={_short(v) if k != 'feature_date' else v}" for k, v in row.items() if k not in checked)
    shown = ", ".join(values) if values else ""
    return f"{shown} at {where}" if shown and where else shown or where


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value) if isinstance(value, str) and value != MASK else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def jsonable(value: Any) -> Any:
    """Dates, NaN and other non-JSON values made JSON-safe (dates as ISO strings, NaN as None)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
