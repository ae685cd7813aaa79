"""The profile the catalog shows for a group: the one stored when its latest date was published.

The runner stores a profile per published snapshot date (`engine.profile`, JSON at
`gate.profile_location`); the catalog reads the one of the group's latest published date that
holds rows (from the run log's rows per date), through `io.files`, and never starts Spark.
A date published before profiles were stored has none, and the page says so
(`NOT_RECORDED`) rather than computing one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date

from featurebank.catalog.status import read_text
from featurebank.engine.profile import GroupProfile, profile_from_json
from featurebank.io.runlog import RunRecord

NO_ROWS = "no published rows"
NOT_RECORDED = "no profile recorded (published before profiles)"


def latest_rows_date(runs: Sequence[RunRecord]) -> date | None:
    """The newest snapshot date whose latest publish wrote rows; None when none did.

    `runs` newest first (`GroupStatus.runs`). A date's rows come from the newest published run
    covering it (`rows_by_date`); a run logged before rows per date were recorded counts each
    of its dates as holding rows when it wrote any.
    """
    rows: dict[date, int] = {}
    for run in runs:
        if run.status != "published":
            continue
        try:
            by_date = {date.fromisoformat(d): int(n) for d, n in json.loads(run.rows_by_date).items()} \
                if run.rows_by_date else None
        except (ValueError, AttributeError, TypeError):
            by_date = None
        for day in run.dates():
            if day not in rows:
                rows[day] = by_date.get(day, 0) if by_date is not None else run.rows_written
    with_rows = [day for day, n in rows.items() if n > 0]
    return max(with_rows) if with_rows else None


def stored_profile(feature_root: str, group: str, feature_date: date) -> GroupProfile | None:
    """The profile stored for `group` on `feature_date`; None when none was stored.

    Raises ValueError naming the file when one is there but cannot be read as a profile.
    """
    from featurebank.gate import profile_location

    location = profile_location(feature_root, group, feature_date)
    text = read_text(location)
    if text is None:
        return None
    try:
        return profile_from_json(text)
    except ValueError as problem:
        raise ValueError(f"the profile {location} cannot be read: {problem}") from None


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
    return (profile, "") if profile is not None else (None, NOT_RECORDED)
