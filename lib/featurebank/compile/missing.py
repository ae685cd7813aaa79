"""Which snapshot dates `featurebank run --missing` computes, and why it skips the others (pure).

A snapshot date D of a group is up to date when the run that last published it (the highest
Delta version covering D) computed it with the group's current `data_hash`, and the table
still holds what that run wrote: the rows it recorded for D are the rows the table's files
hold for D now, and no commit that could change values without changing counts (a RESTORE,
UPDATE, MERGE, or a write that is not a featurebank publish) came after it. Every other date
is missing and is computed; so is every date an upstream group recomputes (`forced`).

A metadata-only edit (a description, an owner, a check) leaves `data_hash` unchanged, so it
recomputes nothing. Late-arriving source events do not change the hash either: a plain `run`
(without --missing) recomputes what it is given.

`missing_dates` decides from plain values (what `io.published.published_state` read), so it
is tested without Spark or storage.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

# Commits of another writer that cannot change a published value: maintenance and metadata.
KEEPS_VALUES = frozenset({
    "OPTIMIZE", "VACUUM START", "VACUUM END", "SET TBLPROPERTIES", "UNSET TBLPROPERTIES", "ADD COLUMNS",
    "CHANGE COLUMN", "CHANGE COLUMNS", "UPGRADE PROTOCOL", "ADD CONSTRAINT", "DROP CONSTRAINT", "COMPUTE STATS",
    "REORG", "FSCK", "CREATE TABLE", "SET TABLE COMMENT",
})
# Commits whose effect the rows per date show exactly (rows removed), so they stale only the dates they touched.
COUNTED = frozenset({"DELETE", "TRUNCATE"})


@dataclass(frozen=True)
class PublishedDate:
    """What the run that last published one snapshot date recorded about it."""

    data_hash: str
    run_id: str
    version: int  # the Delta version of its commit
    rows: int | None  # the rows it wrote for the date (None: its run-log row did not record rows per date)


@dataclass(frozen=True)
class ForeignCommit:
    """A commit of the group's table that is not a featurebank publish (no run id in its userMetadata)."""

    version: int
    operation: str

    @property
    def may_change_values(self) -> bool:
        """True when it may have changed published values in a way the rows per date do not show."""
        return self.operation.upper() not in KEEPS_VALUES | COUNTED


@dataclass(frozen=True)
class DateSpan:
    """Consecutive snapshot dates `start..end` of `group` that share one decision and its reason."""

    group: str
    start: date
    end: date
    reason: str

    @property
    def dates(self) -> str:
        return str(self.start) if self.start == self.end else f"{self.start}..{self.end}"

    def to_dict(self) -> dict[str, Any]:
        return {"group": self.group, "start": self.start.isoformat(), "end": self.end.isoformat(), "reason": self.reason}


@dataclass(frozen=True)
class MissingDates:
    """The decision for one group over one date range: the spans to compute and the spans skipped."""

    group: str
    run: tuple[DateSpan, ...] = ()
    skipped: tuple[DateSpan, ...] = ()
    skipped_rows: int = 0  # the rows the skipped dates hold, as their runs recorded them
    version: int | None = None  # the latest Delta version that published a skipped date

    @property
    def dates(self) -> frozenset[date]:
        """Every snapshot date to compute."""
        return frozenset(s.start + timedelta(days=i) for s in self.run for i in range((s.end - s.start).days + 1))

    def ranges(self) -> list[tuple[date, date]]:
        """The dates to compute as consecutive ranges (whatever their reasons): one run each."""
        return [(s.start, s.end) for s in _spans(self.group, dict.fromkeys(self.dates, ""))]


def missing_dates(
    group: str,
    data_hash: str,
    start: date,
    end: date,
    published: Mapping[date, PublishedDate],
    table_rows: Mapping[date, int | None] | None,
    foreign: Collection[ForeignCommit] = (),
    forced: Mapping[date, str] | None = None,
) -> MissingDates:
    """Decide, for each snapshot date of `start..end`, whether `run --missing` computes it.

    `published`: per date, the run that last published it (dates never published are absent).
    `table_rows`: the rows per date the table's files hold now (absent dates: none; None:
    there is no table). `foreign`: the table's commits that are not featurebank publishes.
    `forced`: dates to compute whatever was published, with the reason (an upstream group
    recomputes them). Returns the spans to compute and the spans skipped, each with its reason.
    """
    forced = forced or {}
    changers = sorted((c for c in foreign if c.may_change_values), key=lambda c: c.version)
    to_run: dict[date, str] = {}
    to_skip: dict[date, str] = {}
    for offset in range((end - start).days + 1):
        day = start + timedelta(days=offset)
        why = forced.get(day) or _stale(published.get(day), data_hash, day, table_rows, changers)
        if why:
            to_run[day] = why
        else:
            to_skip[day] = f"already published by data_hash {published[day].data_hash}"
    kept = [published[d] for d in to_skip]
    return MissingDates(group, tuple(_spans(group, to_run)), tuple(_spans(group, to_skip)),
                        sum(p.rows or 0 for p in kept), max((p.version for p in kept), default=None))


def _stale(last: PublishedDate | None, data_hash: str, day: date, table_rows: Mapping[date, int | None] | None,
           changers: list[ForeignCommit]) -> str:
    """Why `day` must be computed, or "" when what is published for it is current."""
    if last is None:
        return "not published"
    if table_rows is None:
        return f"published by run {last.run_id}, but the group's table no longer exists"
    if last.data_hash != data_hash:
        return f"published by data_hash {last.data_hash or '(none recorded)'}, the definition now computes {data_hash}"
    held = table_rows.get(day, 0)
    if last.rows is not None and held is not None and held != last.rows:
        return (f"published with {last.rows} rows by run {last.run_id}, but the table holds {held} now "
                "(changed outside featurebank)")
    later = next((c for c in changers if c.version > last.version), None)
    if later is not None:
        return (f"published at version {last.version}, but version {later.version} ({later.operation}) changed the "
                "table outside featurebank since")
    return ""


def _spans(group: str, reasons: Mapping[date, str]) -> list[DateSpan]:
    """Consecutive dates with the same reason, as spans in date order."""
    spans: list[DateSpan] = []
    for day in sorted(reasons):
        last = spans[-1] if spans else None
        if last is not None and last.end + timedelta(days=1) == day and last.reason == reasons[day]:
            spans[-1] = DateSpan(group, last.start, day, last.reason)
        else:
            spans.append(DateSpan(group, day, day, reasons[day]))
    return spans
