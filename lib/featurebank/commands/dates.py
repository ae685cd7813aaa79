"""The snapshot dates a command covers: `--date`, `--start/--end`, `--chunk-days`, checked at once.

Argument types (`snapshot_date`, `days`) refuse what argparse can judge alone (exit 2 from
argparse); `resolve_dates` refuses combinations and sizes a run could not plan (`UsageError`,
exit 2), before any definition is compiled or Spark starts.
"""

from __future__ import annotations

import argparse
from datetime import date

from featurebank.errors import UsageError

FIRST_DATE = date(1900, 1, 1)  # no feature store holds snapshots older; earlier is a typo
LAST_DATE = date(9998, 12, 31)  # D + 1 and a window before D stay inside the calendar
MAX_DATES = 36_600  # snapshot dates one command may cover (100 years)
MAX_CHUNKS = 10_000  # chunks one backfill may be cut into


def snapshot_date(text: str) -> date:
    """argparse type of `--date/--start/--end`: a YYYY-MM-DD between FIRST_DATE and LAST_DATE."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a date; write it as YYYY-MM-DD") from None
    if not FIRST_DATE <= day <= LAST_DATE:
        raise argparse.ArgumentTypeError(f"{text} is outside the snapshot dates featurebank handles "
                                         f"({FIRST_DATE} .. {LAST_DATE}); check the year")
    return day


def days(text: str) -> int:
    """argparse type of `--chunk-days`: a whole number of days, 1 or more."""
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number of days") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{number} is not a number of days; give 1 or more")
    return number


def resolve_dates(args: argparse.Namespace, today: date) -> tuple[date, date]:
    """`--date D`, or `--start S --end E`, or today; anything else is a usage error."""
    if args.date and (args.start or args.end):
        raise UsageError("give either --date or --start/--end, not both")
    if args.date:
        return args.date, args.date
    if args.start or args.end:
        if not (args.start and args.end):
            raise UsageError("--start and --end go together; give both")
        if args.end < args.start:
            raise UsageError(f"--end {args.end} is before --start {args.start}; swap them")
        _check_size(args.start, args.end, getattr(args, "chunk_days", None))
        return args.start, args.end
    return today, today


def _check_size(start: date, end: date, chunk_days: int | None) -> None:
    """Refuse, at once, a range too large to compile (else planning it runs for hours, silently)."""
    count = (end - start).days + 1
    chunks = -(-count // chunk_days) if chunk_days else 1
    if count > MAX_DATES:
        raise UsageError(f"--start {start} --end {end} holds {count:,} snapshot dates; one command covers at most "
                         f"{MAX_DATES:,} (100 years): check the years, or split the range into several runs")
    if chunks > MAX_CHUNKS:
        raise UsageError(f"--start {start} --end {end} with --chunk-days {chunk_days} makes {chunks:,} chunks; at most "
                         f"{MAX_CHUNKS:,} are allowed: give a larger --chunk-days (e.g. {-(-count // MAX_CHUNKS)})")
