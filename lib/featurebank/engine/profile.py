"""A profile of every feature per snapshot date of a batch, in a few passes, and its stored format.

The runner profiles the latest dates of the batch it has just published (`profile_batch`, on
the persisted batch the gate judged; `gate.drift.profiled_span`) and stores one small JSON
document per snapshot date beside the gate reports (`gate.profile_location`); `featurebank docs`
shows the latest one without starting Spark, and a drift check pools a few as its reference
(profiling from the published table a reference date that has no current one). Nothing here
reads or writes storage.

Pass 1 is one `groupBy(feature_date).agg(...)` computing, for every feature at once: non-NULL
count, min/mean/max for numeric features, min/max and an approximate distinct count for the
others. The quartiles (`percentile_approx`) come from one more aggregation over a sample of at
most about `QUARTILE_ROWS` rows per date, picked by a hash of the row's entity (so a rerun
profiles the same rows): the sketch sorts boxed values, and over every row it cost five times
the rest of pass 1 (issue 20, notes/20-profiles.md). The histograms: for every numeric feature the rows
of each equal-width bin (bins from that date's pass-1 min and max), counted by numpy in one
`mapInArrow` pass over every numeric feature (`_bin_counts`: each partition's counts per feature,
date and bin, summed by Spark): Spark's conditional counts took a pass per few features and
several times the time (notes/20-session18.md). For every low-cardinality categorical feature the
rows of each value. Never one query per date and never a row per (row, feature): a few scans of
the persisted batch whatever its dates.

NaN and ±Infinity in floating features are left out of the numeric statistics (they would
make min/max meaningless) and counted separately as `non_finite`.

The stored format (`FORMAT`, `FORMAT_VERSION` 1), one JSON object per group and date:

    {"format": "featurebank.profile", "version": 1,
     "group": "customer_card_spend", "feature_date": "2024-03-20", "rows": 1234,
     "run_id": "20240321T...", "delta_version": 7, "data_hash": "d06f...",
     "features": {"<feature>": {"type": "double", "rows": 1234, "nulls": 3, "non_finite": 0,
                                "minimum": 0.0, "mean": 12.5, "maximum": 99.0,
                                "quartiles": [3.0, 9.5, 20.0] | null, "distinct": null,
                                "histogram": [[low, high, rows], ...],      # numeric: BINS bins
                                "top_values": [[value, rows], ...]}}}       # categorical
`minimum`/`maximum` are numbers for numeric features, ISO strings for date and timestamp
ones, null otherwise; `distinct` is set for non-numeric features. A reader refuses another
`format` or a newer `version` (`profile_from_json` raises ValueError); fields added within a
version are optional.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from functools import partial
from typing import TYPE_CHECKING, Any

from featurebank.aggregators import FLOATING_TYPES

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import Column, DataFrame

BINS = 12
TOP_VALUES = 6
MAX_CATEGORIES = 40  # a categorical feature with more distinct values shows only its distinct count
NUMERIC_TYPES = ("tinyint", "smallint", "int", "bigint", "float", "double")
TIME_TYPES = ("date", "timestamp", "timestamp_ntz")
PARTITION_COLUMN = "feature_date"
QUARTILE_ROWS = 10_000  # quartiles from a sample of about this many rows per date at most
FORMAT = "featurebank.profile"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class FeatureProfile:
    """One feature on one snapshot date. `histogram` holds (bin low, bin high, rows) for numeric
    features; `top_values` (value, rows) for categorical ones, most frequent first."""

    feature: str
    type: str
    rows: int
    nulls: int
    non_finite: int = 0
    minimum: float | str | None = None
    mean: float | None = None
    maximum: float | str | None = None
    quartiles: tuple[float, float, float] | None = None
    distinct: int | None = None
    histogram: tuple[tuple[float, float, int], ...] = ()
    top_values: tuple[tuple[str, int], ...] = ()
    masked: bool = False  # personal data: only counts are kept (`without_values`)

    @property
    def null_share(self) -> float:
        return self.nulls / self.rows if self.rows else 0.0

    @property
    def numeric(self) -> bool:
        return is_numeric(self.type)


@dataclass(frozen=True)
class GroupProfile:
    """Every feature's profile on one snapshot date (`feature_date`) of a group, as published by
    run `run_id` in Delta version `version` with definition `data_hash` (None where unknown)."""

    group: str
    feature_date: date
    rows: int
    features: dict[str, FeatureProfile] = field(default_factory=dict)
    version: int | None = None
    run_id: str | None = None
    data_hash: str | None = None


def is_numeric(type_: str) -> bool:
    """Whether a Spark type (`simpleString()`) gets numeric statistics and a histogram."""
    return type_ in NUMERIC_TYPES or type_.startswith("decimal")


def _finite(name: str, type_: str) -> Column:
    """The column with NaN/±Infinity as NULL (floating types), else as it is, as a double."""
    from pyspark.sql import functions as F

    column = F.col(f"`{name}`")
    if type_ in FLOATING_TYPES:
        bad = F.isnan(column) | (column == float("inf")) | (column == float("-inf"))
        return F.when(bad, F.lit(None)).otherwise(column).cast("double")
    return column.cast("double")


def profile_batch(frame: DataFrame, group: str, features: tuple[str, ...], *, version: int | None = None,
                  run_id: str | None = None, data_hash: str | None = None) -> list[GroupProfile]:
    """Profile `features` of `frame` for each of its `feature_date`s, in a few passes (see the
    module docstring); one GroupProfile per date holding rows, oldest first, each feature in
    `features` order. Unknown columns are skipped; dates without rows get no profile."""
    from pyspark.sql import functions as F

    types = {f.name: f.dataType.simpleString() for f in frame.schema.fields}
    present = [c for c in features if c in types]
    day = F.col(PARTITION_COLUMN)
    # ---- pass 1: one aggregate per date over every feature
    stats: list[Column] = [F.count(F.lit(1)).alias("__rows")]
    for i, name in enumerate(present):
        column, type_ = F.col(f"`{name}`"), types[name]
        stats.append(F.count(column).alias(f"n{i}"))
        if is_numeric(type_):
            value = _finite(name, type_)
            stats += [F.count(value).alias(f"f{i}"), F.min(value).alias(f"min{i}"), F.avg(value).alias(f"avg{i}"),
                      F.max(value).alias(f"max{i}")]
        elif type_ in TIME_TYPES:
            stats += [F.min(column).alias(f"min{i}"), F.max(column).alias(f"max{i}"),
                      F.approx_count_distinct(column).alias(f"d{i}")]
        else:
            stats.append(F.approx_count_distinct(column).alias(f"d{i}"))
    firsts = {r[PARTITION_COLUMN]: r.asDict() for r in frame.groupBy(day).agg(*stats).collect()}
    for when, quartiles in _quartiles(frame, present, types, firsts).items():
        firsts[when].update(quartiles)
    counts = _bucket_counts(frame, present, types, firsts)
    return [_group_profile(group, when, row, present, types, counts.get(when, {}), version, run_id, data_hash)
            for when, row in sorted(firsts.items())]


def _edges(row: dict[str, Any], i: int) -> tuple[float, float] | None:
    """A numeric feature's histogram range (min, max) on one date; None when it has no value."""
    if row.get(f"min{i}") is None:
        return None
    return float(row[f"min{i}"]), float(row[f"max{i}"])


def _categorical(type_: str) -> bool:
    return not is_numeric(type_) and type_ not in TIME_TYPES


def _with_values(present: list[str], types: dict[str, str], firsts: dict[date, dict[str, Any]]) -> list[int]:
    """The indexes of the numeric features that have a value on some date."""
    return [i for i, name in enumerate(present) if is_numeric(types[name])
            and any(_edges(row, i) for row in firsts.values())]


def _quartiles(frame: DataFrame, present: list[str], types: dict[str, str],
               firsts: dict[date, dict[str, Any]]) -> dict[date, dict[str, Any]]:
    """Each numeric feature's quartiles per date (`q<i>`), from the rows whose entity hashes into
    that date's sample: 1 in ceil(rows / QUARTILE_ROWS), so a date of at most QUARTILE_ROWS rows
    is profiled whole. The entity is every column but the features and the snapshot's date
    and time (all columns if there is no other)."""
    from pyspark.sql import functions as F

    numeric = _with_values(present, types, firsts)
    if not numeric:
        return {}
    moduli = [(when, -(-int(row["__rows"]) // QUARTILE_ROWS)) for when, row in firsts.items()]
    rows = frame
    if any(m > 1 for _, m in moduli):
        entity = [c for c in frame.columns if c not in present and c not in (PARTITION_COLUMN, "feature_ts")]
        moduli_frame = frame.sparkSession.createDataFrame(moduli, schema=f"{PARTITION_COLUMN} DATE, __m BIGINT")
        rows = frame.join(F.broadcast(moduli_frame), on=PARTITION_COLUMN, how="inner").where(
            F.pmod(F.xxhash64(*[F.col(f"`{c}`") for c in entity or frame.columns]), F.col("__m")) == 0)
    quartiles = [F.percentile_approx(_finite(present[i], types[present[i]]), [0.25, 0.5, 0.75], 1000).alias(f"q{i}")
                 for i in numeric]
    return {r[PARTITION_COLUMN]: r.asDict() for r in rows.groupBy(PARTITION_COLUMN).agg(*quartiles).collect()}


def _bucket_counts(frame: DataFrame, present: list[str], types: dict[str, str],
                   firsts: dict[date, dict[str, Any]]) -> dict[date, dict[str, dict[str, int]]]:
    """Rows per (date, feature, bucket): a numeric feature's bin index on that date's range
    (`_bin_counts`), a categorical feature's value (only where it has at most MAX_CATEGORIES values)."""
    from functools import reduce

    from pyspark.sql import functions as F

    numeric = _with_values(present, types, firsts)
    categorical = [i for i, name in enumerate(present) if _categorical(types[name])
                   and any((row.get(f"d{i}") or 0) <= MAX_CATEGORIES for row in firsts.values())]
    counts: dict[date, dict[str, dict[str, int]]] = {}

    def found(when: date, i: int, bucket: str, rows: int) -> None:
        if rows:
            counts.setdefault(when, {}).setdefault(present[i], {})[bucket] = int(rows)

    if numeric:  # a feature with values on some date: `firsts` has dates
        days = sorted(firsts)
        edges = [[_edges(firsts[when], i) for when in days] for i in numeric]
        lows = [[None if e is None else e[0] for e in per_date] for per_date in edges]
        widths = [[None if e is None else (e[1] - e[0]) / BINS for e in per_date] for per_date in edges]
        values = frame.select(PARTITION_COLUMN, *[_finite(present[i], types[present[i]]).alias(f"v{i}") for i in numeric])
        binned = values.mapInArrow(partial(_bin_counts, [d.toordinal() for d in days], lows, widths),
                                   "feature INT, day INT, bin INT, rows BIGINT")
        for r in binned.groupBy("feature", "day", "bin").agg(F.sum("rows").alias("rows")).collect():
            found(days[r["day"]], numeric[r["feature"]], str(r["bin"]), r["rows"])
    if categorical:
        values_of = reduce(lambda a, b: a.unionAll(b), [frame.select(
            PARTITION_COLUMN, F.lit(i).alias("feature_index"), F.col(f"`{present[i]}`").cast("string").alias("bucket"))
            for i in categorical])
        for r in values_of.where("bucket is not null").groupBy(PARTITION_COLUMN, "feature_index", "bucket").count().collect():
            found(r[PARTITION_COLUMN], int(r["feature_index"]), r["bucket"], r["count"])
    return counts


def _bin_counts(ordinals: list[int], lows: list[list[float | None]], widths: list[list[float | None]],
                batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """mapInArrow's function: one partition's (feature_date, value per numeric feature) rows in,
    its rows per (feature, date, bin) out, for dates `ordinals` (`date.toordinal()`, ascending;
    `day` is the index into it) and each feature's per-date bin range (`lows[f][day]`,
    `widths[f][day]`; None where the feature has no value on that date). NULL values (a
    non-finite one is NULL here) are in no bin. The bin is Spark's `least(floor((value - low) /
    width), BINS - 1)` in the same IEEE double arithmetic; every value in bin 0 where the width is 0."""
    import numpy as np
    import pyarrow as pa

    epoch = date(1970, 1, 1).toordinal()
    known = np.asarray(ordinals, dtype=np.int64) - epoch  # days since 1970, as Arrow's date32
    low = np.array([[np.nan if v is None else v for v in row] for row in lows], dtype=np.float64)
    width = np.array([[np.nan if v is None else v for v in row] for row in widths], dtype=np.float64)
    cells = len(ordinals) * BINS
    total = np.zeros((len(lows), cells), dtype=np.int64)
    for batch in batches:
        day = np.searchsorted(known, batch.column(0).cast(pa.int32()).to_numpy(zero_copy_only=False))
        for f in range(len(lows)):
            value = batch.column(f + 1).to_numpy(zero_copy_only=False)  # NULL as NaN
            present = ~np.isnan(value)
            on, kept = day[present], value[present]
            bin_low, bin_width = low[f, on], width[f, on]
            bins = np.zeros(len(kept), dtype=np.int64)
            spread = bin_width > 0
            bins[spread] = np.minimum(np.floor((kept[spread] - bin_low[spread]) / bin_width[spread]), BINS - 1)
            total[f] += np.bincount(on * BINS + bins, minlength=cells)
    feature, cell = np.nonzero(total)
    yield pa.RecordBatch.from_arrays(
        [pa.array(feature, pa.int32()), pa.array(cell // BINS, pa.int32()), pa.array(cell % BINS, pa.int32()),
         pa.array(total[feature, cell], pa.int64())], names=["feature", "day", "bin", "rows"])


def _group_profile(group: str, when: date, row: dict[str, Any], present: list[str], types: dict[str, str],
                   counts: dict[str, dict[str, int]], version: int | None, run_id: str | None,
                   data_hash: str | None) -> GroupProfile:
    """One date's pass-1 row and pass-2 counts as a GroupProfile."""
    rows = int(row["__rows"])
    profiles = {}
    for i, name in enumerate(present):
        type_ = types[name]
        non_null = int(row[f"n{i}"])
        values: dict[str, Any] = {}
        if is_numeric(type_):
            finite = int(row[f"f{i}"])
            quartiles = row.get(f"q{i}")
            values = {"non_finite": non_null - finite, "minimum": _float(row[f"min{i}"]), "mean": _float(row[f"avg{i}"]),
                      "maximum": _float(row[f"max{i}"]),
                      "quartiles": tuple(float(q) for q in quartiles) if quartiles else None}
            edges = _edges(row, i)
            if edges is not None:
                low, high = edges
                width = (high - low) / BINS if high > low else 0.0
                bins = BINS if high > low else 1
                found = counts.get(name, {})
                values["histogram"] = tuple(
                    (low + k * width, low + (k + 1) * width if width else high, found.get(str(k), 0)) for k in range(bins))
        else:
            if row.get(f"min{i}") is not None:
                values |= {"minimum": _iso(row[f"min{i}"]), "maximum": _iso(row[f"max{i}"])}
            distinct = int(row.get(f"d{i}") or 0)
            values["distinct"] = distinct
            found = counts.get(name, {}) if distinct <= MAX_CATEGORIES else {}
            values["top_values"] = tuple(sorted(found.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_VALUES])
        profiles[name] = FeatureProfile(name, type_, rows, rows - non_null, **values)
    return GroupProfile(group, when, rows, profiles, version, run_id, data_hash)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _iso(value: Any) -> str:
    """A date or timestamp minimum/maximum as the catalog shows it (`str()` of the value)."""
    return str(value)


# --- the stored format ----------------------------------------------------------------------

def without_values(profile: GroupProfile, personal: frozenset[str]) -> GroupProfile:
    """`profile` with the `personal` features' values dropped: for personal data only rows,
    NULLs, non-finite and distinct counts are stored, never a minimum, mean, quartile, histogram
    bin or top value (each would show a person's value to every reader of the catalog, as the
    gate's reports mask them too)."""
    from dataclasses import replace

    return replace(profile, features={
        name: FeatureProfile(p.feature, p.type, p.rows, p.nulls, p.non_finite, distinct=p.distinct, masked=True)
        if name in personal else p for name, p in profile.features.items()})


def profile_json(profile: GroupProfile) -> str:
    """`profile` as the stored JSON document (format in the module docstring)."""
    document = {
        "format": FORMAT, "version": FORMAT_VERSION, "group": profile.group,
        "feature_date": profile.feature_date.isoformat(), "rows": profile.rows, "run_id": profile.run_id,
        "delta_version": profile.version, "data_hash": profile.data_hash,
        "features": {name: {
            "type": p.type, "rows": p.rows, "nulls": p.nulls, "non_finite": p.non_finite,
            "minimum": _number(p.minimum), "mean": _number(p.mean), "maximum": _number(p.maximum),
            "quartiles": None if p.quartiles is None else [_number(q) for q in p.quartiles],
            "distinct": p.distinct,
            "histogram": [[_number(low), _number(high), n] for low, high, n in p.histogram],
            "top_values": [[value, n] for value, n in p.top_values],
            **({"masked": True} if p.masked else {}),
        } for name, p in profile.features.items()},
    }
    return json.dumps(document, separators=(",", ":"), allow_nan=False) + "\n"


def profile_from_json(text: str) -> GroupProfile:
    """A stored profile document back as a GroupProfile.

    Raises ValueError when `text` is not JSON, not a featurebank profile, of a newer format
    version than this reader knows, or misses a required field.
    """
    document = json.loads(text)
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError(f"not a featurebank profile (format {FORMAT!r} expected)")
    version = document.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(f"profile format version {version!r} is newer than this featurebank reads "
                         f"({FORMAT_VERSION}); upgrade featurebank")
    try:
        features = {str(name): FeatureProfile(
            str(name), str(f["type"]), int(f["rows"]), int(f["nulls"]), int(f.get("non_finite") or 0),
            f.get("minimum"), f.get("mean"), f.get("maximum"),
            None if f.get("quartiles") is None else tuple(float(q) for q in f["quartiles"]),  # type: ignore[arg-type]
            None if f.get("distinct") is None else int(f["distinct"]),
            tuple((float(low), float(high), int(n)) for low, high, n in f.get("histogram") or ()),
            tuple((str(value), int(n)) for value, n in f.get("top_values") or ()),
            bool(f.get("masked", False)),
        ) for name, f in document["features"].items()}
        return GroupProfile(
            str(document["group"]), date.fromisoformat(document["feature_date"]), int(document["rows"]), features,
            None if document.get("delta_version") is None else int(document["delta_version"]),
            document.get("run_id"), document.get("data_hash"))
    except (KeyError, TypeError, AttributeError) as problem:
        raise ValueError(f"a featurebank profile with a missing or malformed field: {problem}") from None


def _number(value: Any) -> Any:
    """NaN and ±Infinity as null (JSON has neither); anything else as it is."""
    return None if isinstance(value, float) and not math.isfinite(value) else value
