"""The knowledge-time snapshot join: each spine row gets the values as published at its instant.

Pure DataFrame transformation, no I/O (issue 22, `--as-known-at publish`). For a spine row at
instant ts the snapshot date read is `local_date(ts) - lag` (`compile.known.target_date`: the
latest date whose first publication is known by ts), and of that date the version whose
known interval `[known_from, known_until)` holds ts — the values it had then, from the
group's table (the current version) or its history (a superseded one). Where that version
holds no row for the entity, counts are 0 and the rest NULL, as in `pit.snapshot_join`; where
nothing of the date was known at ts (never published, or a superseded version whose rows were
not archived), every feature is NULL with status `STATUS_NOT_KNOWN`.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

from featurebank.days import local_date
from featurebank.engine.pit import (
    FEATURE_DATE,
    STATUS_FILLED,
    STATUS_MATCHED,
    STATUS_NULL_INPUT,
    _check_inputs,
    _spine_key,
    feature_columns_of,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

STATUS_NOT_KNOWN = "not_known"  # nothing of the snapshot date was known (published) at ts
VERSION = "__fb_version"  # the run id that published a feature row (features) / a version (versions)
KNOWN_FROM = "known_from"
KNOWN_UNTIL = "known_until"
_P = "__fb_known_"


def known_snapshot_join(
    spine: DataFrame,
    features: DataFrame,
    versions: DataFrame,
    keys: Sequence[str],
    *,
    timestamp_column: str,
    timezone: str,
    lag_days: int,
    count_columns: Collection[str] = (),
    status_column: str | None = None,
) -> DataFrame:
    """Join each spine row to its entity's snapshot as known at its instant (aggregation groups).

    `features`: keys, `feature_date`, `VERSION` (the run that published the row) and the
    feature columns; (keys, feature_date, VERSION) unique. `versions`: `feature_date`,
    `VERSION`, `known_from`, `known_until` (NULL: still known) — only the versions whose rows
    `features` holds. Returns the spine's columns in order, then the feature columns (and the
    status); one row per spine row. Raises ValueError on a frame that breaks the contract.
    """
    from pyspark.sql import functions as F

    _check_inputs(spine, features, keys, [FEATURE_DATE, VERSION])
    names = [c for c in feature_columns_of(features, keys) if c != VERSION]
    target, ts = f"{_P}date", F.col(timestamp_column)
    left = spine.withColumn(target, F.date_sub(local_date(ts, timezone), lag_days))
    chosen = versions.select(F.col(FEATURE_DATE).alias(f"{_P}vdate"), F.col(VERSION).alias(f"{_P}run"),
                             F.col(KNOWN_FROM).alias(f"{_P}from"), F.col(KNOWN_UNTIL).alias(f"{_P}until"))
    in_force = ((F.col(target) == F.col(f"{_P}vdate")) & (F.col(f"{_P}from") <= ts)
                & (F.col(f"{_P}until").isNull() | (ts < F.col(f"{_P}until"))))
    left = left.join(F.broadcast(chosen), on=in_force, how="left")  # versions: dates x runs, small

    right = features.select(
        *(F.col(k).alias(f"{_P}k{i}") for i, k in enumerate(keys)),
        F.col(FEATURE_DATE).alias(f"{_P}fdate"), F.col(VERSION).alias(f"{_P}frun"), F.lit(True).alias(f"{_P}hit"),
        *names,
    )
    condition = [_spine_key(spine, features, k) == F.col(f"{_P}k{i}") for i, k in enumerate(keys)]
    condition += [F.col(target) == F.col(f"{_P}fdate"), F.col(f"{_P}run") == F.col(f"{_P}frun")]
    joined = left.join(right, on=condition, how="left")

    null_input = ts.isNull()
    for k in keys:
        null_input = null_input | F.col(k).isNull()
    known = F.col(f"{_P}run").isNotNull() & ~null_input
    hit = F.col(f"{_P}hit").isNotNull()
    outputs = []
    for name in names:
        value = F.col(name)
        if name in count_columns:
            value = F.when(known & ~hit, F.lit(0).cast(dict(features.dtypes)[name])).otherwise(value)
        outputs.append(value.alias(name))
    if status_column is not None:
        status = (F.when(null_input, STATUS_NULL_INPUT).when(hit, STATUS_MATCHED).when(known, STATUS_FILLED)
                  .otherwise(STATUS_NOT_KNOWN))
        outputs.append(status.alias(status_column))
    return joined.select(*(F.col(c) for c in spine.columns), *outputs)
