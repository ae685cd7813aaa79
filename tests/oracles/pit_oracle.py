"""Brute-force point-in-time oracles: plain Python loops over rows, no Spark, no cleverness.

Rows are dicts; instants are timezone-aware `datetime`s. Each function returns, per spine
row in spine order, the dict of feature values SPEC promises for it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo


def asof_oracle(
    spine: Sequence[dict[str, Any]],
    features: Sequence[dict[str, Any]],
    keys: Sequence[str],
    ts_col: str,
    feature_names: Sequence[str],
    ttl_days: int | None = None,
) -> list[dict[str, Any]]:
    """Row-level groups: the latest row with feature_ts <= ts (and > ts - ttl), else NULLs."""
    out = []
    for s in spine:
        best = None
        ts = s[ts_col]
        if ts is not None and all(s[k] is not None for k in keys):
            for f in features:
                if any(f[k] != s[k] for k in keys):
                    continue
                if f["feature_ts"] > ts:
                    continue
                if ttl_days is not None and f["feature_ts"] <= ts - timedelta(days=ttl_days):
                    continue
                if best is None or f["feature_ts"] > best["feature_ts"]:
                    best = f
        out.append({n: (best[n] if best is not None else None) for n in feature_names})
    return out


def snapshot_oracle(
    spine: Sequence[dict[str, Any]],
    features: Sequence[dict[str, Any]],
    keys: Sequence[str],
    ts_col: str,
    feature_names: Sequence[str],
    timezone: str,
    published_dates: Collection[date],
    count_columns: Collection[str] = (),
) -> list[dict[str, Any]]:
    """Aggregation groups: the row of feature_date = local date(ts); counts 0 on a published
    date without a row; NULL on an unpublished date, a NULL key or a NULL timestamp."""
    zone = ZoneInfo(timezone)
    out = []
    for s in spine:
        ts = s[ts_col]
        if ts is None or any(s[k] is None for k in keys):
            out.append({n: None for n in feature_names})
            continue
        day = ts.astimezone(zone).date()
        rows = [f for f in features if f["feature_date"] == day and all(f[k] == s[k] for k in keys)]
        assert len(rows) <= 1, "(keys, feature_date) must be unique"
        if rows:
            out.append({n: rows[0][n] for n in feature_names})
        elif day in published_dates:
            out.append({n: (0 if n in count_columns else None) for n in feature_names})
        else:
            out.append({n: None for n in feature_names})
    return out


def midnight(day: date, timezone: str) -> datetime:
    """00:00 of `day` in `timezone`, as an aware instant (an aggregation row's feature_ts)."""
    return datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(timezone))
