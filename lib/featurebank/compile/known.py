"""Knowledge time: when each published version of a snapshot date became known (pure).

A snapshot date D is published by one or more runs (the run log, ordered by Delta version).
Its first publication is known at `D 00:00 + lag` in the project time zone — the instant the
source's data for the window is complete — whenever the run actually happened, so a backfill
run today does not make the past unknowable. Every later publication of D (a restatement:
`run --restate`, a rerun) is known at its publish time (the run log's `finished_at` of the
published row, written after the Delta commit: never earlier than readers could see it), and
never before the first one. Version i of D is the answer for instants
`[known_from_i, known_until_i)`; the last one has no end.

`target_date` is the snapshot a spine instant asks for under knowledge time: the latest date
whose first publication is known at or before it, `local_date(ts) - lag` (lag in whole days).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from featurebank.days import day_start_instant


@dataclass(frozen=True)
class Publication:
    """One published run of a group: its run id, Delta version, snapshot dates and publish time."""

    run_id: str
    delta_version: int
    dates: tuple[date, ...]
    published_at: datetime  # tz-aware


@dataclass(frozen=True)
class KnownVersion:
    """The values one run published for one snapshot date, and when they were the known ones.

    `superseded_by` is the run whose publish replaced them (None: they are the table's current
    rows); `known_until` is that run's `known_from` (None: still known).
    """

    feature_date: date
    run_id: str
    known_from: datetime
    known_until: datetime | None
    superseded_by: str | None


def first_known(day: date, lag_days: int, timezone: str) -> datetime:
    """When the first publication of snapshot `day` counts as known: `day + lag` 00:00 local."""
    return day_start_instant(day + timedelta(days=lag_days), timezone)


def known_versions(publications: Iterable[Publication], lag_days: int, timezone: str) -> tuple[KnownVersion, ...]:
    """Every (date, run) version with its known interval; sorted by date, then known_from.

    Publications are ordered by Delta version (later versions replace what earlier ones wrote).
    """
    by_date: dict[date, list[Publication]] = {}
    for publication in sorted(publications, key=lambda p: p.delta_version):
        for day in publication.dates:
            by_date.setdefault(day, []).append(publication)
    versions: list[KnownVersion] = []
    for day in sorted(by_date):
        runs = by_date[day]
        starts: list[datetime] = []
        for index, run in enumerate(runs):
            floor = first_known(day, lag_days, timezone) if index == 0 else max(starts[-1], run.published_at)
            starts.append(floor)
        for index, run in enumerate(runs):
            last = index == len(runs) - 1
            versions.append(KnownVersion(day, run.run_id, starts[index], None if last else starts[index + 1],
                                         None if last else runs[index + 1].run_id))
    return tuple(versions)


def target_date(local_day: date, lag_days: int) -> date:
    """The snapshot date a spine instant on `local_day` reads under knowledge time."""
    return local_day - timedelta(days=lag_days)


def value_at(versions: Iterable[KnownVersion], day: date, instant: datetime) -> KnownVersion | None:
    """The version of `day` known at `instant` (None: nothing of it was known yet). The oracle's rule."""
    found = None
    for version in versions:
        if version.feature_date == day and version.known_from <= instant and (
                version.known_until is None or instant < version.known_until):
            found = version
    return found
