"""The one day-cut rule: which local day an instant falls on, and the instant a local day begins.

SPEC: days are cut at midnight in the project time zone. Local day D holds exactly the
instants `[start(D), start(D + 1))`, where `start(D)` is D 00:00 wall clock in that zone.
Every stage that needs a day of an instant (the aggregation windows, row-level
`feature_date`, the point-in-time join, readiness probes) or the instant of a day (source
range predicates, `feature_ts`, DATE columns read as instants) asks this module.

Days are integers on one axis, `epoch_day` = days since 1970-01-01 (`EPOCH`), so window
arithmetic is integer arithmetic. The Spark forms take the zone as an argument and never read
the session time zone. Rank 0: nothing from featurebank is imported; pyspark only inside the
Column-building functions, so `validate` and `plan` never load it.
"""

from __future__ import annotations

from datetime import date, datetime, time
from collections.abc import Iterable
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from pyspark.sql import Column

MICROS_PER_DAY = 86_400_000_000
EPOCH = date(1970, 1, 1)


def date_runs(days: Iterable[date]) -> list[tuple[date, date]]:
    """`days` as inclusive (first, last) runs of consecutive days, oldest first."""
    runs: list[list[date]] = []
    for day in sorted(set(days)):
        if runs and (day - runs[-1][1]).days == 1:
            runs[-1][1] = day
        else:
            runs.append([day, day])
    return [(first, last) for first, last in runs]


def epoch_day(day: date) -> int:
    """Days from 1970-01-01 to `day` (the integer day axis the engine uses)."""
    return (day - EPOCH).days


def day_start_instant(day: date, timezone: str) -> datetime:
    """The instant `day` 00:00 begins in `timezone` (IANA name), tz-aware."""
    return datetime.combine(day, time(0), tzinfo=ZoneInfo(timezone))


def utc_now() -> datetime:
    """The current instant, UTC, tz-aware: the one clock a publish time is read from.

    A seam: tests replace it (monkeypatch `featurebank.days.utc_now`) to publish "at" a chosen
    instant; callers import it at call time so the replacement is seen.
    """
    from datetime import timezone as utc_zone

    return datetime.now(utc_zone.utc)


def local_epoch_day(instant: Column, timezone: str) -> Column:
    """The local day (days since 1970-01-01, INT) a TIMESTAMP instant falls on in `timezone`.

    `from_utc_timestamp` shifts the instant's microseconds by the zone's offset at that instant
    (daylight saving honoured); whole days of the shifted wall clock, floored exactly in
    integers, are the local day. NULL in, NULL out. Independent of the session time zone.
    """
    from pyspark.sql import functions as F

    wall = F.unix_micros(F.from_utc_timestamp(instant, timezone))
    return ((wall - F.pmod(wall, F.lit(MICROS_PER_DAY))) / F.lit(MICROS_PER_DAY)).cast("int")


def local_date(instant: Column, timezone: str) -> Column:
    """The local calendar date (DATE) a TIMESTAMP instant falls on in `timezone`."""
    return day_date(local_epoch_day(instant, timezone))


def day_date(day: Column) -> Column:
    """An epoch-day integer column as a DATE."""
    from pyspark.sql import functions as F

    return F.date_add(F.lit(EPOCH), day)


def day_start_ts(day: Column, timezone: str) -> Column:
    """The instant (TIMESTAMP) an epoch-day integer column's day begins (00:00) in `timezone`."""
    from pyspark.sql import functions as F

    return F.to_utc_timestamp(F.timestamp_micros(day.cast("bigint") * F.lit(MICROS_PER_DAY)), timezone)
