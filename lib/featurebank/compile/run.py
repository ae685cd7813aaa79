"""The run plan: one compiled group bound to snapshot dates and the source's read range.

A plan is a plain frozen value, built by `compile_plan` (pure Python: no Spark, no I/O) and
the only input the Spark executor, the gate and the publish need. `str(plan)` is exactly
what `featurebank plan` prints (`compile.render`).

Time is half-open everywhere: a run covers snapshot dates `start..end` (both inclusive, as
users type them), and reads source events with `read_start <= ts < read_end_exclusive`,
where `read_start = start - max_window` and `read_end_exclusive = end` (an aggregation
snapshot for D never sees D itself). Row-level groups read `[start, end + 1 day)`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from datetime import date, timedelta

from featurebank.compile.group import CompiledGroup, compile_group
from featurebank.definitions.model import FeatureGroup, Project
from featurebank.errors import UsageError


@dataclass(frozen=True, kw_only=True)
class Plan(CompiledGroup):
    """One run of one compiled group over snapshot dates `start..end` (inclusive).

    A plan carries every field of its compiled group (so `plan.keys`, `plan.output`,
    `plan.data_hash` ... read as they always did) with `source` bound to the read range;
    `plan.compiled` gives the date-free compiled group back.
    """

    start: date
    end: date

    @property
    def compiled(self) -> CompiledGroup:
        """The compiled group this plan runs, without dates (the source's read range unset)."""
        values = {f.name: getattr(self, f.name) for f in fields(CompiledGroup)}
        values["source"] = replace(self.source, read_start=None, read_end_exclusive=None)
        return CompiledGroup(**values)

    @property
    def replaced_dates(self) -> tuple[date, date]:
        """The `feature_date` range (inclusive) the publish replaces."""
        return (self.start, self.end)

    def __str__(self) -> str:
        from featurebank.compile.render import render

        return render(self)


def plan_for(compiled: CompiledGroup, start: date, end: date) -> Plan:
    """`compiled` run over snapshot dates `start..end` (inclusive).

    Aggregation groups read source events in `[start - max_window, end)`; row-level groups
    read `[start, end + 1 day)`. Raises `UsageError` for `end < start` or a range whose reads
    leave the calendar.
    """
    if end < start:
        raise UsageError(f"the end date {end} is before the start date {start}; swap them")
    try:
        if compiled.kind == "aggregation":
            read_start, read_end = start - timedelta(days=compiled.max_window), end
        else:
            read_start, read_end = start, end + timedelta(days=1)
    except OverflowError:
        raise UsageError(f"snapshot dates {start} .. {end} with a {compiled.max_window}-day window reach past the "
                         "calendar (years 1 to 9999); give dates between 1900-01-01 and 9998-12-31") from None
    values = {f.name: getattr(compiled, f.name) for f in fields(CompiledGroup)}
    values["source"] = replace(compiled.source, read_start=read_start, read_end_exclusive=read_end)
    return Plan(**values, start=start, end=end)


def compile_plan(project: Project, group: str | FeatureGroup, start: date, end: date) -> Plan:
    """What one run of `group` over snapshot dates `start..end` (inclusive) reads, computes, checks, writes.

    `project` is a checked project from `load_project`. Aggregation groups read source events
    in `[start - max_window, end)`; row-level groups read `[start, end + 1 day)`. Raises
    `UsageError` for an unknown group name (with a "did you mean") or `end < start`.
    """
    return plan_for(compile_group(project, group), start, end)
