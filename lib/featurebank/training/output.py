"""A training set outside Spark: where it may be written, Parquet and pandas that keep its types.

- `check_output` refuses (before anything is read or written) an `--out` that is, is inside,
  or holds the feature root (every table, `_runs`, `_quarantine`, `_reports`,
  `_training_sets` live there), that is or is inside the spine (or holds it), that is a file,
  or that is a non-empty directory other than an earlier training set (one whose
  `_manifest.json` parses). Spark's overwrite deletes the directory first, so each of these
  would destroy data.
- `write_parquet` writes instants as Parquet INT64 microseconds (never INT96, which readers
  take for naive values), naive timestamps as naive; a spine column that came with a time
  zone (recorded in its field metadata under `ZONE_KEY` by the spine reader) gets that zone
  back in the files' Arrow schema, other instants the project time zone, so pandas/pyarrow
  read the same types `to_pandas` gives.
- `to_pandas` gives a training set (or any featurebank frame) to pandas with the types it
  had going in: spine timestamps naive or in the zone they came with, other instants in the
  project time zone; integers never become floats (a spine integer column with a NULL, and
  every integer feature, is a pandas nullable integer: a count of a date the group never
  published is `<NA>`, not `NaN`); a pandas spine's columns get their own dtypes back.
"""

from __future__ import annotations

import os
import posixpath
from typing import TYPE_CHECKING, Any

from featurebank.errors import UsageError
from featurebank.io import files
from featurebank.io.spark import session_settings
from featurebank.training.manifest import MANIFEST_FILE, read_manifest

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame

ZONE_KEY = "featurebank.timezone"  # Spark field metadata: the time zone a spine column came with
SPINE_KEY = "featurebank.spine"  # Spark field metadata on every spine column: its pandas dtype, or ""
# Spark integer types -> (numpy dtype, pandas nullable dtype)
_INTEGERS = {"byte": ("int8", "Int8"), "short": ("int16", "Int16"), "integer": ("int32", "Int32"),
             "long": ("int64", "Int64")}
_OUTPUT_TIMESTAMP_TYPE = "spark.sql.parquet.outputTimestampType"


def _normalised(path: str) -> tuple[str, str]:
    """(scheme, path) comparable across spellings: s3a/s3n are s3, local paths absolute and
    with symlinks resolved, `//`, `.` and `..` collapsed, no trailing slash."""
    text = str(path)
    if text.startswith("file:"):
        text = "/" + text[len("file:"):].lstrip("/")
    if "://" in text:
        scheme, rest = text.split("://", 1)
        scheme = scheme.lower()
        scheme = "s3" if scheme in ("s3a", "s3n") else scheme
        return scheme, posixpath.normpath("/" + rest.lstrip("/"))
    return "", os.path.realpath(os.path.abspath(os.path.expanduser(text)))


def _inside(inner: tuple[str, str], outer: tuple[str, str]) -> bool:
    """True when `inner` is `outer` or below it."""
    return inner[0] == outer[0] and (inner[1] == outer[1] or inner[1].startswith(outer[1].rstrip("/") + "/"))


def output_conflict(out: str, feature_root: str, spine: str | None) -> str | None:
    """Why `out` may not receive a training set, judged from the paths alone, or None.

    Refused: the feature root itself, anything inside it, anything holding it; the spine's
    path, anything inside it, anything holding it (`spine` None: the spine is a DataFrame).
    """
    target, root = _normalised(out), _normalised(feature_root)
    if target == root:
        return f"--out {out} is the feature root, where every feature table and the run log live"
    if _inside(target, root):
        return f"--out {out} is inside the feature root {feature_root}, where only runs write"
    if _inside(root, target):
        return f"--out {out} holds the feature root {feature_root}; writing there would replace every feature table"
    if spine is not None:
        source = _normalised(spine)
        if _inside(target, source) or _inside(source, target):
            return f"--out {out} overlaps the spine {spine} it would be built from"
    return None


def check_output(out: str, feature_root: str, spine: str | None) -> None:
    """Refuse (`UsageError`) an output that would overwrite anything but an earlier training set.

    See `output_conflict` for the path rules; beyond them `out` must not exist, or be an
    empty directory, or be a training set (its `_manifest.json` parses as a manifest).
    """
    fix = ("; nothing was written. Choose a new directory outside the feature root (e.g. "
           "warehouse/training/<name>) or the directory of an earlier training set to replace it")
    conflict = output_conflict(out, feature_root, spine)
    if conflict:
        raise UsageError(conflict + fix)
    found = files.kind(out)
    if found == "file":
        raise UsageError(f"--out {out} is a file, not a directory" + fix)
    if found != "directory":
        return
    names = files.list_names(out)
    if not names:
        return
    if MANIFEST_FILE not in names:
        raise UsageError(f"--out {out} is a non-empty directory and not a training set (it has no {MANIFEST_FILE})"
                         + fix)
    try:
        read_manifest(out)
    except UsageError as error:
        raise UsageError(f"--out {out} is a non-empty directory whose {MANIFEST_FILE} is not a training-set "
                         f"manifest ({error})" + fix) from None


def write_parquet(frame: DataFrame, out: str, timezone: str = "UTC") -> None:
    """Write `frame` as Parquet under `out` (replacing it), keeping its columns' types.

    Instants are INT64 microseconds adjusted to UTC, TIMESTAMP_NTZ columns naive; an instant
    column carries, in the files' Arrow schema, the zone its field metadata names (`ZONE_KEY`)
    or else `timezone` (the project's), as `to_pandas` shows it. Only a zone other than UTC
    costs a rewrite of the files.
    """
    with session_settings(frame.sparkSession, {_OUTPUT_TIMESTAMP_TYPE: "TIMESTAMP_MICROS"}):
        frame.write.mode("overwrite").parquet(out)
    zones = {f.name: f.metadata.get(ZONE_KEY, timezone) for f in frame.schema.fields
             if f.dataType.typeName() == "timestamp" and f.metadata.get(ZONE_KEY, timezone) != "UTC"}
    if zones:
        _restore_zones(out, zones)


def _restore_zones(out: str, zones: dict[str, str]) -> None:
    """Rewrite each part file with the zones in its Arrow schema (the instants are unchanged)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    for name in files.list_names(out):
        if not name.endswith(".parquet"):
            continue
        location = files.join(out, name)
        table = pq.read_table(pa.BufferReader(files.read_bytes(location)))
        fields = [pa.field(f.name, pa.timestamp(f.type.unit, tz=zones[f.name]), f.nullable, f.metadata)
                  if f.name in zones and pa.types.is_timestamp(f.type) else f for f in table.schema]
        table = table.cast(pa.schema(fields, metadata=table.schema.metadata))
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        files.write_bytes(location, sink.getvalue().to_pybytes())
        if not files.is_s3(out):
            files.delete(files.join(out, f".{name}.crc"))  # Hadoop's local checksum, now stale


def spine_path(spine: Any) -> str | None:
    """The spine's location when it is a path, else None (a DataFrame has none)."""
    from pathlib import Path

    return str(spine) if isinstance(spine, (str, Path)) else None


def to_pandas(frame: DataFrame, timezone: str) -> pd.DataFrame:
    """`frame` as pandas, with the types its columns had going in (see the module docstring).

    Instants are timezone-aware: in the zone a spine column came with (`ZONE_KEY`), else in
    `timezone`; TIMESTAMP_NTZ columns are naive (the same wall clock). Integer columns are
    read exactly (never through floats): numpy integers for a spine column without NULLs,
    pandas nullable integers (`Int64` for bigint) for every other integer column. A column
    that came from a pandas spine gets its recorded dtype back where pandas can cast to it.
    """
    import pandas as pd
    from pyspark.sql import functions as F

    fields = frame.schema.fields
    stamps = {f.name: f.metadata.get(ZONE_KEY, timezone) for f in fields if f.dataType.typeName() == "timestamp"}
    integers = {f.name: _INTEGERS[f.dataType.typeName()] for f in fields if f.dataType.typeName() in _INTEGERS}
    spine = {f.name: str(f.metadata[SPINE_KEY]) for f in fields if SPINE_KEY in f.metadata}
    columns = []
    for i, f in enumerate(fields):
        column = F.col("`" + f.name.replace("`", "``") + "`")
        if f.name in stamps:
            columns.append(F.unix_micros(column).alias(f.name))
        elif f.name in integers:  # Spark would give a column holding a NULL as float64: values and a mask
            columns += [F.coalesce(column, F.lit(0).cast(f.dataType)).alias(f.name), column.isNull().alias(f"__fb_null_{i}")]
        else:
            columns.append(column)
    pdf: pd.DataFrame = frame.select(*columns).toPandas()
    for i, f in enumerate(fields):
        if f.name in integers:
            nulls = pdf.pop(f"__fb_null_{i}").to_numpy(dtype=bool)
            numpy_type, nullable = integers[f.name]
            values = pdf[f.name].to_numpy(dtype=numpy_type)
            keep_numpy = f.name in spine and not nulls.any()
            pdf[f.name] = values if keep_numpy else pd.arrays.IntegerArray(values, nulls).astype(nullable)
    for name, zone in stamps.items():
        pdf[name] = pd.to_datetime(pdf[name], unit="us", utc=True).dt.tz_convert(zone)
    for name, dtype in spine.items():
        if dtype and str(pdf[name].dtype) != dtype:
            try:
                pdf[name] = pdf[name].astype(dtype)
            except (TypeError, ValueError):  # a dtype pandas cannot cast to from here: keep what Spark gave
                pass
    return pdf
