"""The profile the catalog shows for a group: the one stored when its latest date was published.

Each run stores the profiles of its latest published snapshot dates (`engine.profile`, JSON at
`gate.profile_location`); the catalog reads the one of the group's latest published date that
holds rows (from the run log's rows per date), through `io.files`, and never starts Spark.
A date published before profiles were stored has none, and the page says so
(`NOT_RECORDED`) rather than computing one; a profile stored by an earlier run than the date's
last publisher describes rows no longer published, and the page says that (`NOT_CURRENT`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date

from featurebank.engine.profile import GroupProfile
from featurebank.gate.report import stored_profile
from featurebank.io.runlog import RunRecord, publishers

NO_ROWS = "no published rows"
NOT_RECORDED = "no profile recorded (published before profiles)"
NOT_CURRENT = "no profile of the rows as last published (the run that published them stored none)"


def latest_rows_date(runs: Sequence[RunRecord]) -> date | None:
    """The newest snapshot date whose latest publish wrote rows; None when none did.

    A date's rows come from its last publisher (`io.runlog.publishers`); a run logged before
    rows per date were recorded counts each of its dates as holding rows when it wrote any.
    """
    with_rows = [day for day, run in publishers(runs).items() if _rows_on(run, day) > 0]
    return max(with_rows) if with_rows else None


def _rows_on(run: RunRecord, day: date) -> int:
    try:
        by_date = {date.fromisoformat(d): int(n) for d, n in json.loads(run.rows_by_date).items()} \
            if run.rows_by_date else None
    except (ValueError, AttributeError, TypeError):
        by_date = None
    return by_date.get(day, 0) if by_date is not None else run.rows_written


def group_profile(feature_root: str, group: str, runs: Sequence[RunRecord]) -> tuple[GroupProfile | None, str]:
    """The profile to show for `group` and, when there is none, why (a phrase for the page):
    `NO_ROWS`, `NOT_RECORDED`, or what makes the stored file unreadable."""
    day = latest_rows_date(runs)
    if day is None:
        return None, NO_ROWS
    try:
        profile = stored_profile(feature_root, group, day)
    except ValueError as problem:
        return None, str(problem)
    if profile is None:
        return None, NOT_RECORDED
    return (profile, "") if profile.run_id == publishers(runs)[day].run_id else (None, NOT_CURRENT)
