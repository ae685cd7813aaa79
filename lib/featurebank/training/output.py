"""Writing a training set: where it may go, and Parquet that keeps the spine's types.

- `check_output` refuses (before anything is read or written) an `--out` that is, is inside,
  or holds the feature root (every table, `_runs`, `_quarantine`, `_reports`,
  `_training_sets` live there), that is or is inside the spine (or holds it), that is a file,
  or that is a non-empty directory other than an earlier training set (one whose
  `_manifest.json` parses). Spark's overwrite deletes the directory first, so each of these
  would destroy data.
- `write_parquet` writes instants as Parquet INT64 microseconds (never INT96, which readers
  take for naive values), naive timestamps as naive; a spine column that came with a time
  zone other than UTC (recorded in its field metadata under `ZONE_KEY` by the spine reader)
  gets that zone back in the files' Arrow schema, so pandas/pyarrow read the same type the
  spine had.
"""

from __future__ import annotations

import os
import posixpath
from typing import TYPE_CHECKING, Any

from featurebank.errors import UsageError
from featurebank.io import files
from featurebank.training.manifest import MANIFEST_FILE, read_manifest

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

ZONE_KEY = "featurebank.timezone"  # Spark field metadata: the time zone a spine column came with
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


def write_parquet(frame: DataFrame, out: str) -> None:
    """Write `frame` as Parquet under `out` (replacing it), keeping its columns' types.

    Instants are INT64 microseconds adjusted to UTC, TIMESTAMP_NTZ columns naive; columns
    whose field metadata names a time zone (`ZONE_KEY`) other than UTC carry it in the
    files' Arrow schema afterwards.
    """
    spark = frame.sparkSession
    previous = spark.conf.get(_OUTPUT_TIMESTAMP_TYPE)
    spark.conf.set(_OUTPUT_TIMESTAMP_TYPE, "TIMESTAMP_MICROS")
    try:
        frame.write.mode("overwrite").parquet(out)
    finally:
        spark.conf.set(_OUTPUT_TIMESTAMP_TYPE, previous or "INT96")
    zones = {f.name: f.metadata[ZONE_KEY] for f in frame.schema.fields
             if f.dataType.typeName() == "timestamp" and f.metadata.get(ZONE_KEY, "UTC") != "UTC"}
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
