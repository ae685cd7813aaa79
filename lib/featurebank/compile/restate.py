"""Which published snapshot dates `featurebank run --restate` recomputes, and why (pure).

A run records a fingerprint of its source, taken just before it read it (`io.fingerprints`):
per file its size, modification time and the event days (project time zone) its rows hold;
for a Delta source also the table version. A published date is stale when the source changed
since the run that last published it fingerprinted it:

- changed event days = the days of the files added or modified since (read now) and the days
  of the files removed or modified since (as that run recorded them);
- an event day T reaches the snapshot dates whose input holds T: for an aggregation group
  `T+1 … T+max_window` (snapshot D reads `[D - window, D)`), for a row-level group `T` itself
  (its rows for date D are the events of day D).

Only dates already published are restated (a date never published is `--missing`'s job), and
a date whose run recorded no fingerprint (published before fingerprints were recorded, or the
fingerprint could not be taken) is reported, never guessed. `restate_dates` decides from plain
values, so it is tested without Spark or storage.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date, timedelta

from featurebank.compile.missing import MissingDates, PublishedDate, _spans

SHOWN_FILES = 3  # files named per changed event day in a reason; the rest are counted


@dataclass(frozen=True)
class FileEntry:
    """One source file as a fingerprint records it: size, modification time (epoch seconds) and
    the event days its rows hold (None: its days could not be read, so any change to it is
    treated as touching every published date)."""

    path: str
    size: int
    mtime: float
    days: tuple[date, ...] | None
    # per event day: (rows, digest) — the digest is the sum mod 2**64 of a hash of each row, so it
    # does not depend on row order or on which file holds a row; None: not recorded
    digests: tuple[tuple[date, int, int], ...] | None = None

    def same_file(self, other: FileEntry) -> bool:
        """Whether `other` is this file unchanged (same size and modification time)."""
        return self.size == other.size and self.mtime == other.mtime


@dataclass(frozen=True)
class Fingerprint:
    """What one run read: its source's files (by path relative to the source's location) and,
    for a Delta source, the table version."""

    source: str
    location: str
    files: Mapping[str, FileEntry]
    version: int | None = None


@dataclass(frozen=True)
class DayChange:
    """An event day that changed, with the file changes that touched it
    (`card_transactions/part-03.parquet modified`)."""

    day: date | None  # None: a changed file whose days are unknown
    files: tuple[str, ...]

    def sentence(self) -> str:
        shown = ", ".join(self.files[:SHOWN_FILES])
        more = f" and {len(self.files) - SHOWN_FILES} more" if len(self.files) > SHOWN_FILES else ""
        what = f"event day {self.day}" if self.day else "event days unknown"
        return f"{what} changed: {shown}{more}"


def changed_days(then: Fingerprint, now: Fingerprint) -> dict[date | None, DayChange]:
    """The event days that differ between two fingerprints of one source, each with the files
    that changed it: added and modified files contribute their days now, removed and modified
    files their days then. Key None collects changed files whose days are unknown.

    When every changed file recorded per-day digests, a day whose rows (count and digest over
    the changed files, then and now) are the same is not a change: a file rewritten with one
    corrected row changes that row's day only, and files compacted into others change nothing.
    """
    touched: dict[date | None, list[str]] = {}
    before: list[FileEntry] = []
    after: list[FileEntry] = []

    def note(path: str, days: Collection[date] | None, how: str) -> None:
        for day in days if days is not None else (None,):
            touched.setdefault(day, []).append(f"{then.source}/{path} {how}")

    for path, entry in now.files.items():
        old = then.files.get(path)
        if old is None:
            note(path, entry.days, "added")
            after.append(entry)
        elif not old.same_file(entry):  # both the days it held and the days it holds now
            note(path, None if old.days is None or entry.days is None else {*old.days, *entry.days}, "modified")
            before.append(old)
            after.append(entry)
    for path, entry in then.files.items():
        if path not in now.files:
            note(path, entry.days, "removed")
            before.append(entry)
    if all(e.digests is not None for e in (*before, *after)):
        old_totals, new_totals = _day_totals(before), _day_totals(after)
        touched = {d: f for d, f in touched.items() if d is None or old_totals.get(d) != new_totals.get(d)}
    return {day: DayChange(day, tuple(sorted(set(files)))) for day, files in touched.items()}


def _day_totals(entries: Collection[FileEntry]) -> dict[date, tuple[int, int]]:
    """Per event day, the rows and the digest (sum mod 2**64) over `entries`."""
    totals: dict[date, tuple[int, int]] = {}
    for entry in entries:
        for day, rows, digest in entry.digests or ():
            held = totals.get(day, (0, 0))
            totals[day] = (held[0] + rows, (held[1] + digest) % 2**64)
    return totals


def affected_dates(changes: Mapping[date | None, DayChange], kind: str, max_window: int,
                   published: Collection[date]) -> dict[date, str]:
    """Of the `published` dates, those whose input holds a changed event day, each with the
    reason (the changed days reaching it, latest first). `kind`: `aggregation` (day T reaches
    T+1 … T+max_window) or `row_level` (T reaches T); unknown days reach every date."""
    reasons: dict[date, list[DayChange]] = {}
    reach = range(1, max_window + 1) if kind == "aggregation" else range(0, 1)
    wanted = set(published)
    for day, change in changes.items():
        hits = wanted if day is None else {day + timedelta(days=k) for k in reach} & wanted
        for hit in hits:
            reasons.setdefault(hit, []).append(change)
    return {d: "; ".join(c.sentence() for c in sorted(found, key=lambda c: c.day or date.max, reverse=True))
            for d, found in reasons.items()}


def restate_dates(group: str, start: date, end: date, published: Mapping[date, PublishedDate],
                  stale: Mapping[str, Mapping[date, str]], unknown: Collection[str] = (),
                  forced: Mapping[date, str] | None = None) -> MissingDates:
    """Decide, for each published snapshot date of `start..end`, whether `run --restate` recomputes it.

    `published`: per date, the run that last published it. `stale`: per run id, the dates its
    source changes reach with the reason (`affected_dates` against that run's fingerprint).
    `unknown`: run ids that recorded no fingerprint (their dates are skipped, saying so).
    `forced`: dates to recompute whatever (an upstream group restates them), with the reason.
    """
    forced = forced or {}
    to_run: dict[date, str] = {}
    to_skip: dict[date, str] = {}
    for offset in range((end - start).days + 1):
        day = start + timedelta(days=offset)
        last = published.get(day)
        if last is None:
            continue
        why = forced.get(day) or stale.get(last.run_id, {}).get(day, "")
        if why:
            to_run[day] = why
        elif last.run_id in unknown:
            to_skip[day] = (f"published by run {last.run_id}, which recorded no fingerprint of its source: cannot tell "
                            "whether it changed (run the date once to start tracking it)")
        else:
            to_skip[day] = f"source unchanged since run {last.run_id} read it"
    kept = [published[d] for d in to_skip]
    return MissingDates(group, tuple(_spans(group, to_run)), tuple(_spans(group, to_skip)),
                        sum(p.rows or 0 for p in kept), max((p.version for p in kept), default=None))


def union(first: MissingDates, second: MissingDates) -> MissingDates:
    """Two decisions for one group as one (`run --missing --restate`): a date runs when either
    runs it, with both reasons; a date is skipped when neither runs it."""
    reasons: dict[date, list[str]] = {}
    for decision in (first, second):
        for span in decision.run:
            for k in range((span.end - span.start).days + 1):
                reasons.setdefault(span.start + timedelta(days=k), []).append(span.reason)
    skipped: dict[date, str] = {}
    for span in (*first.skipped, *second.skipped):
        for k in range((span.end - span.start).days + 1):
            day = span.start + timedelta(days=k)
            if day not in reasons:
                skipped.setdefault(day, span.reason)
    return MissingDates(first.group, tuple(_spans(first.group, {d: "; ".join(r) for d, r in reasons.items()})),
                        tuple(_spans(first.group, skipped)), first.skipped_rows, first.version)


def upstream_forced(dates: Collection[date], upstream: str, kind: str, max_window: int, published: Collection[date],
                    verb: str = "restated") -> dict[date, str]:
    """The published dates of a group reading `upstream` (a group) that `upstream`'s recomputed
    `dates` reach: upstream date D is the downstream's event day D (its rows' `feature_ts` is D
    00:00), which reaches D+1 … D+max_window (aggregation) or D (row-level)."""
    read: dict[date, list[str]] = {}
    for day in sorted(dates, reverse=True):
        for hit in affected_dates({day: DayChange(day, ())}, kind, max_window, published):
            read.setdefault(hit, []).append(str(day))
    return {hit: f"its upstream group {upstream} is {verb} for {', '.join(days)}" for hit, days in read.items()}

